"""The cases list's search and filters, against the real database (PostgreSQL or SQLite)."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from api.cases.lifecycle import CaseStatus
from api.cases.search import CaseQuery, search_cases
from api.cases.tags import CaseTag
from api.identifiers.documents import parse_document
from api.operations.models import Alert
from tests.factories import make_case, make_infringer, valid_cpf

pytestmark = pytest.mark.integration


async def _refs(session: AsyncSession, **kwargs: object) -> set[str]:
    page = await search_cases(session, query=CaseQuery(per_page=100, **kwargs))  # type: ignore[arg-type]
    return {row.case.reference for row in page.rows}


async def test_search_understands_what_an_analyst_types(session: AsyncSession) -> None:
    cpf = valid_cpf(7311)
    joana = await make_infringer(
        session,
        name="Joana Prado Figueira",
        document=cpf,
        phones=("+5511987654321",),
        emails=("joana.prado@lojinha.com.br",),
    )
    other = await make_infringer(session, name="Outro Vendedor", phones=("+5521912345678",))
    first = await make_case(
        session, infringer=joana, listings=("https://produto.mercadolivre.com.br/MLB-98765-tenis",)
    )
    second = await make_case(session, infringer=joana, listings=())
    third = await make_case(session, infringer=other, listings=())
    joana_cases = {first.reference, second.reference}

    assert await _refs(session, text=first.reference.lower()) == {first.reference}
    formatted = parse_document(cpf).formatted
    assert await _refs(session, text=formatted) == joana_cases
    assert await _refs(session, text=cpf) == joana_cases
    # The phone in any form, with or without the ninth digit.
    for typed in ("(11) 98765-4321", "+55 11 98765 4321", "11 8765-4321", "551187654321"):
        assert await _refs(session, text=typed) == joana_cases, typed
    assert await _refs(session, text="JOANA.PRADO@lojinha.com.br") == joana_cases
    assert await _refs(session, text="MLB-98765") == {first.reference}
    assert await _refs(session, text="mercadolivre.com.br/MLB-98765-tenis") == {first.reference}
    assert await _refs(session, text="prado fig") == joana_cases
    assert third.reference not in await _refs(session, text="Joana")
    assert await _refs(session, text="ninguém com este nome") == set()
    page = await search_cases(session, query=CaseQuery(text="11 8765-4321"))
    assert any("+5511987654321" in item for item in page.understood)


async def test_filters_sorting_and_pages(session: AsyncSession) -> None:
    person = await make_infringer(session, name="Filtro Teste Silva")
    cases = [await make_case(session, infringer=person, listings=()) for _ in range(3)]
    negotiating = await make_case(session, infringer=person, status=CaseStatus.EM_NEGOCIACAO)
    today = dt.date(2026, 11, 30)
    cases[0].follow_up_on = today - dt.timedelta(days=1)
    cases[1].follow_up_on = today + dt.timedelta(days=3)
    negotiating.response_deadline = today - dt.timedelta(days=2)
    session.add(CaseTag(case_id=cases[2].id, tag="reincidente"))
    await session.flush()
    all_refs = {c.reference for c in [*cases, negotiating]}

    assert await _refs(session, text="Filtro Teste") == all_refs
    assert await _refs(session, text="Filtro Teste", statuses=(CaseStatus.EM_NEGOCIACAO,)) == {
        negotiating.reference
    }
    page = await search_cases(
        session, query=CaseQuery(text="Filtro Teste", follow_up_due=True), today=today
    )
    assert {r.case.reference for r in page.rows} == {cases[0].reference}
    page = await search_cases(
        session, query=CaseQuery(text="Filtro Teste", deadline_passed=True), today=today
    )
    assert {r.case.reference for r in page.rows} == {negotiating.reference}
    assert await _refs(session, text="Filtro Teste", tag="reincidente") == {cases[2].reference}
    session.add(
        Alert(
            key=f"test:{cases[1].id}",
            kind="deadline",
            subject=f"case:{cases[1].id}",
            cycle="1",
            case_id=cases[1].id,
            title="Prazo vencendo",
        )
    )
    session.add(
        Alert(
            key=f"test-resolved:{cases[0].id}",
            kind="deadline",
            subject=f"case:{cases[0].id}",
            cycle="1",
            case_id=cases[0].id,
            title="Antigo",
            state="resolved",
        )
    )
    await session.flush()
    assert await _refs(session, text="Filtro Teste", open_alerts=True) == {cases[1].reference}

    page = await search_cases(
        session, query=CaseQuery(text="Filtro Teste", sort="referencia", descending=False)
    )
    refs = [r.case.reference for r in page.rows]
    assert refs == sorted(refs)
    first = await search_cases(session, query=CaseQuery(text="Filtro Teste", per_page=25))
    assert first.total == 4 and first.pages == 1
    # Page 2 of a 25-row page is empty but still counts everything.
    second = await search_cases(session, query=CaseQuery(text="Filtro Teste", page=2))
    assert list(second.rows) == [] and second.total == 4
