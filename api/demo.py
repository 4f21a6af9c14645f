"""Demo data: one brand with a policy, analysts, and cases with WhatsApp and e-mail contacts."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from api.analysts.models import Analyst, Role
from api.analysts.service import create_analyst
from api.brands.service import create_brand, get_brand_by_name
from api.cases.importer import do_import_rows, read_rows
from api.cases.lifecycle import CaseStatus
from api.cases.models import Case
from api.cases.service import deadline_from_notice, do_advance_status
from api.db import utcnow
from api.identifiers.documents import cnpj_check_digits, cpf_check_digits
from api.timeline.service import Actor

DEMO_BRAND = "Aurora Calçados"
DEMO_PASSWORD = "tratativa-demo"
DEMO_ANALYSTS = (
    ("ana.souza@tratativa.local", "Ana Souza", Role.ANALYST),
    ("bruno.lima@tratativa.local", "Bruno Lima", Role.ANALYST),
    ("carla.mendes@tratativa.local", "Carla Mendes", Role.SUPERVISOR),
    ("admin@tratativa.local", "Administração", Role.ADMIN),
)


def _cpf(first9: str) -> str:
    return first9 + cpf_check_digits(first9)


def _cnpj(first12: str) -> str:
    return first12 + cnpj_check_digits(first12)


def demo_csv() -> str:
    rows = [
        ("Maria Aparecida Santos", _cpf("145382206"), "+5511987654321", "",
         "Mercado Livre", "https://produto.mercadolivre.com.br/MLB-3210987654-tenis-aurora-runner",
         "2500,00", "INF-2026-000101"),
        ("Loja Passo Certo LTDA", _cnpj("112223330001"), "+5521998765432",
         "contato@passocerto.com.br", "Shopee",
         "https://shopee.com.br/Tenis-Aurora-Classic-i.123.456;https://shopee.com.br/Sandalia-Aurora-i.123.789",
         "3.800,00", "INF-2026-000102"),
        ("João Pedro Oliveira", _cpf("529982247"), "", "joaopedro.vendas@gmail.com",
         "Instagram", "https://www.instagram.com/p/Aurora_replicas", "1500", "INF-2026-000103"),
        ("Calçados Bom Preço ME", _cnpj("12ABC34501DE"), "+5531991234567",
         "juridico@bompreco.com.br", "Magalu",
         "https://www.magazineluiza.com.br/tenis-aurora-fake/p/abc123/", "5000.00",
         "INF-2026-000104"),
        ("Rafael Costa", _cpf("390533447"), "+5541988887777", "rafa.costa@hotmail.com", "OLX",
         "https://sp.olx.com.br/calcados/tenis-aurora-novo-123456", "1.200,00",
         "INF-2026-000105"),
    ]  # fmt: skip
    lines = ["brand,seller_name,document,phones,emails,marketplace,listing_urls,amount,case_ref"]
    for name, doc, phone, email, marketplace, urls, amount, ref in rows:
        lines.append(
            f'{DEMO_BRAND},"{name}",{doc},{phone},{email},{marketplace},"{urls}","{amount}",{ref}'
        )
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class SeedResult:
    created: bool
    cases: int
    analysts: tuple[str, ...]


async def is_empty(session: AsyncSession) -> bool:
    return not await session.scalar(sa.select(sa.func.count()).select_from(Case))


async def do_seed_demo(session: AsyncSession) -> SeedResult:
    """Create the demo data unless it is already there (idempotent)."""
    if await get_brand_by_name(session, name=DEMO_BRAND) is not None:
        count = await session.scalar(sa.select(sa.func.count()).select_from(Case))
        return SeedResult(created=False, cases=int(count or 0), analysts=())
    brand = await create_brand(
        session,
        name=DEMO_BRAND,
        legal_name="Aurora Calçados S.A.",
        base_amount=Decimal("2500.00"),
        floor_amount=Decimal("1500.00"),
        max_installments=6,
        min_installment_amount=Decimal("250.00"),
        response_days=10,
        pix_key="12345678000195",
        payee_name="Tratativa Protecao de Marcas",
        payee_city="Sao Paulo",
        payment_instructions="Pagamento somente por Pix ou boleto em nome de Tratativa "
        "Proteção de Marcas (CNPJ 12.345.678/0001-95).",
    )
    emails = []
    for email, name, role in DEMO_ANALYSTS:
        exists = await session.scalar(sa.select(Analyst).where(Analyst.email == email))
        if exists is None:
            await create_analyst(session, email=email, password=DEMO_PASSWORD, role=role, name=name)
            emails.append(email)
    summary = await do_import_rows(session, read_rows(demo_csv().splitlines(keepends=True)))
    if summary.errors:
        raise RuntimeError(f"demo data rejected: {summary.errors}")
    notice_at = utcnow() - dt.timedelta(days=2)
    cases = (await session.scalars(sa.select(Case).where(Case.brand_id == brand.id))).all()
    for case in cases:
        await do_advance_status(
            session,
            case=case,
            path=[CaseStatus.EM_TRIAGEM, CaseStatus.APTO_NOTIFICAR, CaseStatus.NOTIFICADO],
            actor=Actor.system(),
            reason="dados de demonstração",
        )
        case.notice_sent_at = notice_at
        case.response_deadline = deadline_from_notice(notice_at, brand.response_days)
    await session.flush()
    return SeedResult(created=True, cases=len(cases), analysts=tuple(emails))
