"""E-mail end to end: a formal reply ingested, a real Rasa turn with the e-mail variants, one
threaded reply delivered over SMTP (aiosmtpd) with the case reference in the subject."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from email.message import EmailMessage

import pytest
from aiosmtpd.controller import Controller

from api.cases.lifecycle import CaseStatus
from api.channels.email.ingest import do_ingest_email
from api.conversations.scheduling import turn_scheduler
from api.db import unit_of_work, utcnow
from api.engine.dispatch import BACKGROUND_TURNS, wait_for_scheduled_turns
from tests.e2e.stack import Stack, running_stack
from tests.factories import make_brand, make_case, make_infringer
from tests.fixtures.twilio.harness import eventually
from tests.integration.email_servers import SmtpSink, free_port, make_mail

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def smtp() -> Iterator[tuple[SmtpSink, int]]:
    sink = SmtpSink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield sink, port
    finally:
        controller.stop()


@pytest.fixture(scope="module")
async def email_stack(database_url: str, smtp: tuple[SmtpSink, int]) -> AsyncIterator[Stack]:
    env = {
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(smtp[1]),
        "SMTP_STARTTLS": "false",
        "SMTP_SSL": "false",
        "EMAIL_FROM": "Tratativa <atendimento@tratativa.example>",
    }
    async with running_stack(env) as stack:
        yield stack


async def test_a_formal_mail_gets_one_threaded_formal_reply(
    email_stack: Stack, smtp: tuple[SmtpSink, int]
) -> None:
    sink, _ = smtp
    address = "juridico@calcadosbompreco.com.br"
    async with unit_of_work() as session:
        brand = await make_brand(
            session,
            base_amount=Decimal("2500.00"),
            floor_amount=Decimal("1500.00"),
            max_installments=6,
            min_installment_amount=Decimal("250.00"),
        )
        infringer = await make_infringer(session, name="Calçados Bom Preço", emails=(address,))
        case = await make_case(
            session, brand=brand, infringer=infringer, status=CaseStatus.NOTIFICADO
        )
        case.claimed_amount = Decimal("2500.00")
        case.response_deadline = (utcnow() + dt.timedelta(days=8)).date()
        reference = case.reference
    raw = make_mail(
        sender=f"Departamento Jurídico <{address}>",
        subject=f"Re: Notificação extrajudicial [{reference}]",
        body=(
            "Prezados, boa tarde.\n\nQual o valor proposto para o encerramento do caso?\n\n"
            "Atenciosamente,\nDepartamento Jurídico"
        ),
        message_id="juridico-1@calcadosbompreco.com.br",
    )
    # As the worker's IMAP loop does: the engine's scheduler installed, the pipeline asks it.
    with turn_scheduler(BACKGROUND_TURNS):
        async with unit_of_work() as session:
            ingested = await do_ingest_email(session, raw)
    assert ingested.case_id is not None and ingested.conversation_id is not None
    await wait_for_scheduled_turns()

    # The turn's process or the stack's worker (whichever claimed the row) delivers it. The
    # worker also delivers mail other tests of the session left in the outbox: count only ours.
    def ours() -> list[EmailMessage]:
        return [m for m in sink.messages if address in str(m["To"])]

    async def delivered() -> bool:
        return bool(ours())

    assert await eventually(delivered, timeout=20)
    assert len(ours()) == 1
    reply = ours()[0]
    assert reference in reply["Subject"] and reply["Subject"].startswith("Re:")
    assert reply["In-Reply-To"] == "<juridico-1@calcadosbompreco.com.br>"
    assert "juridico-1@calcadosbompreco.com.br" in reply["References"]
    assert reply["Auto-Submitted"] == "auto-replied"
    assert reply["To"].endswith(f"{address}>") or reply["To"] == address
    body = reply.get_body(preferencelist=("plain",))
    assert body is not None
    text = body.get_content()
    assert "R$ 2.500,00" in text
    assert "Pedimos que confirme" in text  # the formal (e-mail) variant, not the WhatsApp one
