import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from api.cases.importer import do_import_rows, read_rows
from api.cases.models import Case, Listing
from api.contacts.models import ContactKind, ContactPoint
from tests.factories import make_brand, valid_cpf

pytestmark = pytest.mark.integration

HEADER = "brand,seller_name,document,phones,emails,marketplace,listing_urls,amount,case_ref\n"


def csv_text(brand: str) -> str:
    good_cpf = valid_cpf(41)
    return HEADER + "".join(
        [
            # line 2: valid, with a reference
            f'{brand},Ana Lima,{good_cpf},"+55 11 98888-1111;(11) 3333-4444",ana@exemplo.com,'
            f'Mercado Livre,"https://produto.mercadolivre.com.br/MLB-1;https://shopee.com.br/x-i.1.2",'
            f'"1.500,00",INF-2026-000900\n',
            # line 3: invalid CPF check digits
            f"{brand},Beto Souza,123.456.789-00,+5511977776666,,Shopee,https://shopee.com.br/a,1500,\n",
            # line 4: valid, no reference (generated), alphanumeric CNPJ
            f"{brand},Loja XPTO LTDA,12.ABC.345/01DE-35,,juridico@xpto.com.br,Instagram,"
            f"https://www.instagram.com/p/abc,2500.00,\n",
            # line 5: unparseable amount
            f"{brand},Carla Dias,,+5521999998888,,OLX,https://olx.com.br/item/1,muito caro,\n",
            # line 6: unparseable phone
            f"{brand},Davi Reis,,12345,,OLX,https://olx.com.br/item/2,900,\n",
            # line 7: unknown brand
            "Marca Inexistente,Eva Prado,,+5531988887777,,OLX,https://olx.com.br/item/3,900,\n",
        ]
    )


async def _import(session: AsyncSession, text: str):  # type: ignore[no-untyped-def]
    return await do_import_rows(session, read_rows(text.splitlines(keepends=True)))


async def test_valid_rows_are_imported_and_bad_rows_reported_by_line(
    session: AsyncSession,
) -> None:
    brand = await make_brand(session)
    summary = await _import(session, csv_text(brand.name))
    assert (summary.imported, summary.updated, summary.unchanged) == (2, 0, 0)
    assert [e.line for e in summary.errors] == [3, 5, 6, 7]
    reasons = {e.line: e.reason for e in summary.errors}
    assert "documento inválido" in reasons[3]
    assert "valor inválido" in reasons[5]
    assert "telefone inválido" in reasons[6]
    assert "não cadastrada" in reasons[7]

    case = await session.scalar(sa.select(Case).where(Case.reference == "INF-2026-000900"))
    assert case is not None and str(case.claimed_amount) == "1500.00"
    urls = set(
        await session.scalars(sa.select(Listing.marketplace).where(Listing.case_id == case.id))
    )
    assert urls == {"Mercado Livre", "Shopee"}
    phones = set(
        await session.scalars(
            sa.select(ContactPoint.value).where(
                ContactPoint.infringer_id == case.infringer_id,
                ContactPoint.kind == ContactKind.PHONE,
            )
        )
    )
    assert phones == {"+5511988881111", "+551133334444"}
    domain = await session.scalar(
        sa.select(ContactPoint).where(
            ContactPoint.kind == ContactKind.EMAIL_DOMAIN, ContactPoint.value == "xpto.com.br"
        )
    )
    assert domain is not None


async def test_importing_the_same_file_twice_changes_nothing(session: AsyncSession) -> None:
    brand = await make_brand(session)
    text = csv_text(brand.name)
    await _import(session, text)
    counts = [
        await session.scalar(sa.select(sa.func.count()).select_from(t))
        for t in (Case, Listing, ContactPoint)
    ]
    second = await _import(session, text)
    assert (second.imported, second.updated, second.unchanged) == (0, 0, 2)
    assert [
        await session.scalar(sa.select(sa.func.count()).select_from(t))
        for t in (Case, Listing, ContactPoint)
    ] == counts


async def test_a_changed_row_updates_its_case(session: AsyncSession) -> None:
    brand = await make_brand(session)
    text = csv_text(brand.name)
    await _import(session, text)
    changed = text.replace('"1.500,00"', '"1.750,00"')
    summary = await _import(session, changed)
    assert (summary.imported, summary.updated, summary.unchanged) == (0, 1, 1)
    case = await session.scalar(sa.select(Case).where(Case.reference == "INF-2026-000900"))
    assert case is not None and str(case.claimed_amount) == "1750.00"


@pytest.mark.slow
def test_cli_import_prints_errors_and_a_summary(tmp_path: Path) -> None:
    db = tmp_path / "cli.db"
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{db}"}
    run = lambda *args: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "api.cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run("db", "upgrade").returncode == 0
    created = run("brands", "create", "Acme", "--base", "2000", "--floor", "1000")
    assert created.returncode == 0, created.stderr
    file = tmp_path / "cases.csv"
    file.write_text(csv_text("Acme"), encoding="utf-8")

    first = run("import", "cases", str(file))
    assert first.returncode == 3  # some rows rejected
    assert "imported=2 updated=0 unchanged=0 rejected=4" in first.stdout
    assert "linha 3:" in first.stderr and "linha 7:" in first.stderr

    second = run("import", "cases", str(file))
    assert "imported=0 updated=0 unchanged=2 rejected=4" in second.stdout


async def _next_generated(session: AsyncSession) -> tuple[int, int]:
    from api.cases.models import CaseRefCounter
    from api.db import utcnow

    year = utcnow().year
    last = await session.scalar(
        sa.select(CaseRefCounter.last_seq).where(CaseRefCounter.year == year)
    )
    return year, (last or 0) + 1


async def test_a_generated_reference_never_takes_one_named_later_in_the_file(
    session: AsyncSession,
) -> None:
    """Issue 9, defect 5: line 3 without case_ref was given the reference line 4 names, and line
    4 was then rejected as belonging to another infringer."""
    from api.identifiers.case_ref import format_case_ref

    brand = await make_brand(session)
    year, seq = await _next_generated(session)
    named = format_case_ref(year, seq)
    text = HEADER + (
        f"{brand.name},Gil Ramos,{valid_cpf()},+5511977770001,,OLX,https://olx.com.br/g,900,\n"
        f"{brand.name},Hugo Melo,{valid_cpf()},+5511977770002,,OLX,https://olx.com.br/h,900,"
        f"{named}\n"
    )
    summary = await _import(session, text)
    assert summary.errors == []
    assert summary.imported == 2
    reference_of = dict(
        (
            await session.execute(
                sa.select(Listing.url, Case.reference)
                .join(Case, Listing.case_id == Case.id)
                .where(Listing.url.in_(["https://olx.com.br/g", "https://olx.com.br/h"]))
            )
        ).all()
    )
    assert reference_of["https://olx.com.br/h"] == named
    assert reference_of["https://olx.com.br/g"] not in {named, None}


async def test_a_generated_reference_skips_one_that_already_exists(
    session: AsyncSession,
) -> None:
    """A case written with an explicit reference the counter never saw is not collided with."""
    from api.cases.references import create_case_reference
    from api.identifiers.case_ref import format_case_ref
    from tests.factories import make_case

    year, seq = await _next_generated(session)
    existing = await make_case(session)  # takes seq
    assert existing.reference == format_case_ref(year, seq)
    existing.reference = format_case_ref(year, seq + 1)  # as if written by hand
    await session.flush()
    generated = await create_case_reference(session, year=year)
    assert generated == format_case_ref(year, seq + 2)
