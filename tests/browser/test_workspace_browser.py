"""The analyst's workspace in real Chromium against the real service (one service for the
module): search by a phone without the ninth digit, the person page with two cases, a WhatsApp
conversation started outside the window (only templates), an upload, a template refused for a
bad variable then used in a reply, an unmatched e-mail confirmed, and a deactivated analyst's
open session rejected. With TRATATIVA_SCREENSHOTS=docs/screenshots each screen is saved."""

from __future__ import annotations

import datetime as dt
import itertools
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa

from api.analysts.models import Role
from api.cases.lifecycle import CaseStatus
from api.contacts.models import ContactPoint
from api.conversations.inbound import InboundMessage, do_receive_message
from api.conversations.models import Attachment, Channel, Conversation, Message
from api.db import unit_of_work, utcnow
from api.inbox.unmatched import Suggested, do_store_suggestions
from tests.browser.conftest import (
    PASSWORD,
    Service,
    png_bytes,
    seed_analyst,
    start_service,
    stop_service,
)
from tests.factories import make_case, make_infringer

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("database_url")]
_seq = itertools.count(int(uuid.uuid4().int % 10_000) * 100)


@pytest.fixture(scope="module")
async def workspace_service(database_url: str, chromium: str) -> AsyncIterator[Service]:
    started = await start_service(database_url)
    yield started
    await stop_service(started)


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context(locale="pt-BR", viewport={"width": 1360, "height": 900})
    context.set_default_timeout(10_000)
    opened = await context.new_page()
    yield opened
    await context.close()


async def log_in(page: Page, base_url: str, email: str) -> None:
    from playwright.async_api import expect

    await page.goto(f"{base_url}/painel/login")
    await page.get_by_label("E-mail").fill(email)
    await page.get_by_label("Senha").fill(PASSWORD)
    await page.get_by_role("button", name="Entrar").click()
    await expect(page).to_have_url(f"{base_url}/painel/caixa")


async def shot(page: Page, directory: Path | None, name: str) -> None:
    if directory is not None:
        await page.screenshot(path=str(directory / name), full_page=True)


def mobile(n: int) -> str:
    """A São Paulo mobile whose old form (without the ninth digit) is valid: +55 11 98xxx-xxxx."""
    return f"+55119{8000_0000 + n % 1000_0000:08d}"


@dataclass(frozen=True)
class Person:
    infringer_id: int
    case_ids: tuple[int, ...]
    references: tuple[str, ...]
    phone: str
    email: str


async def seed_person(*, cases: int = 2, status: CaseStatus = CaseStatus.EM_ATENDIMENTO) -> Person:
    n = next(_seq)
    phone, email = mobile(n * 7919), f"contato{n}@lojabrowser.com.br"
    async with unit_of_work() as session:
        infringer = await make_infringer(
            session, name=f"Helena Navegador {n}", phones=(phone,), emails=(email,)
        )
        made = [
            await make_case(session, infringer=infringer, status=status, listings=())
            for _ in range(cases)
        ]
        return Person(
            infringer.id,
            tuple(c.id for c in made),
            tuple(c.reference for c in made),
            phone,
            email,
        )


async def test_search_by_phone_without_ninth_digit_then_person_page(
    workspace_service: Service, page: Page, screenshot_dir: Path | None
) -> None:
    from playwright.async_api import expect

    person = await seed_person(cases=2)
    async with unit_of_work() as session:
        for i, case_id in enumerate(person.case_ids):
            await do_receive_message(
                session,
                InboundMessage(
                    channel=Channel.WHATSAPP,
                    external_id=f"SM{uuid.uuid4().hex}",
                    sender=f"whatsapp:{person.phone}",
                    text=f"mensagem número {i + 1} sobre o anúncio",
                    received_at=utcnow(),
                    raw={},
                    case_hint=case_id,
                ),
            )
    _, email = await seed_analyst()
    await log_in(page, workspace_service.url, email)
    await page.get_by_role("link", name="Casos").click()
    # Typed as WhatsApp shows old accounts: area code and 8 digits, no ninth digit.
    digits = person.phone.removeprefix("+5511")[1:]
    typed = f"(11) {digits[:4]}-{digits[4:]}"
    await page.get_by_label("Buscar").fill(typed)
    results = page.locator("#resultado")
    for reference in person.references:
        await expect(results).to_contain_text(reference)
    await expect(results).to_contain_text(person.phone)  # "busca entendida como: telefone …"
    await expect(page).to_have_url(re.compile(r"[?&]q="))
    await shot(page, screenshot_dir, "casos.png")

    await results.get_by_role("link", name="Helena Navegador").first.click()
    await expect(page.get_by_role("heading", level=1)).to_contain_text("Helena Navegador")
    for reference in person.references:
        await expect(page.locator(".pessoa")).to_contain_text(reference)
    await expect(page.locator(".mensagens-pessoa")).to_contain_text("mensagem número 1")
    await expect(page.locator(".mensagens-pessoa")).to_contain_text("mensagem número 2")
    await shot(page, screenshot_dir, "pessoa.png")


async def test_whatsapp_outside_the_window_offers_only_templates(
    workspace_service: Service, page: Page, screenshot_dir: Path | None
) -> None:
    from playwright.async_api import expect

    person = await seed_person(cases=1)
    _, email = await seed_analyst()
    await log_in(page, workspace_service.url, email)
    await page.goto(f"{workspace_service.url}/painel/casos/{person.case_ids[0]}")
    await shot(page, screenshot_dir, "caso.png")
    await page.get_by_label("Contato").select_option(label=f"WhatsApp · {person.phone}")
    await page.get_by_role("button", name="Iniciar conversa").click()
    await expect(page).to_have_url(re.compile(r"/painel/conversas/\d+$"))
    # The infringer never wrote: the window is closed, the screen says why, text is disabled.
    await expect(page.locator(".janela.fechada")).to_contain_text("só modelos aprovados")
    await expect(page.locator("#texto")).to_be_disabled()
    await expect(page.get_by_role("button", name="Enviar mensagem")).to_be_disabled()
    await page.locator("#modelo").select_option("primeiro_contato")
    await expect(page.locator("#previa .previa")).to_contain_text("Helena")
    await page.get_by_role("button", name="Enviar modelo").click()
    await expect(page.locator(".msg.saida").last).to_contain_text("Podemos conversar por aqui?")
    await shot(page, screenshot_dir, "conversa-fora-da-janela.png")


async def test_upload_an_attachment_with_ctrl_enter(
    workspace_service: Service, page: Page, screenshot_dir: Path | None, tmp_path: Path
) -> None:
    from playwright.async_api import expect

    person = await seed_person(cases=1)
    _, email = await seed_analyst()
    await log_in(page, workspace_service.url, email)
    await page.goto(f"{workspace_service.url}/painel/casos/{person.case_ids[0]}")
    await page.get_by_label("Contato").select_option(label=f"E-mail · {person.email}")
    await page.get_by_role("button", name="Iniciar conversa").click()
    await expect(page).to_have_url(re.compile(r"/painel/conversas/\d+$"))
    conversation_id = int(page.url.rsplit("/", 1)[1])

    wrong = tmp_path / "planilha.txt"
    wrong.write_text("não é imagem nem PDF")
    await page.locator("#anexo").set_input_files(str(wrong))
    await expect(page.locator("#anexo-recusado")).to_contain_text("não é aceito")
    receipt = tmp_path / "acordo.png"
    receipt.write_bytes(png_bytes())
    await page.locator("#anexo").set_input_files(str(receipt))
    await expect(page.locator("#anexo-recusado")).to_be_hidden()
    await page.locator("#texto").fill("Segue o termo do acordo em anexo.")
    await page.locator("#texto").press("Control+Enter")
    sent = page.locator(".msg.saida", has_text="Segue o termo do acordo")
    await expect(sent).to_be_visible()
    await expect(sent.locator("img.midia, a.arquivo")).to_have_count(1)
    await shot(page, screenshot_dir, "conversa-anexo.png")
    async with unit_of_work() as session:
        names = list(
            await session.scalars(
                sa.select(Attachment.filename)
                .join(Message, Message.id == Attachment.message_id)
                .where(Message.conversation_id == conversation_id)
            )
        )
    assert names == ["acordo.png"]


async def test_template_with_bad_variable_refused_then_used_in_a_reply(
    workspace_service: Service, page: Page, screenshot_dir: Path | None
) -> None:
    from playwright.async_api import expect

    person = await seed_person(cases=1)
    _, email = await seed_analyst(Role.SUPERVISOR)
    await log_in(page, workspace_service.url, email)
    await page.get_by_role("link", name="Modelos").click()
    await shot(page, screenshot_dir, "modelos.png")
    await page.get_by_role("link", name="Novo modelo").click()
    name = f"aviso_navegador_{next(_seq)}"
    await page.get_by_label("Nome").fill(name)
    await page.locator("input[name='canais'][value='email']").check()
    await page.locator("#corpo").fill("Olá {{ infringer_name }}, seu CPF {{ cpf }} consta no caso.")
    await page.locator("#caso-previa").fill(person.references[0])
    await expect(page.locator("#previa-modelo .erro")).to_contain_text("cpf")
    await page.get_by_role("button", name="Criar modelo").click()
    await expect(page.locator(".erro[data-mensagem]")).to_contain_text("Variável desconhecida")
    await expect(page.locator("#corpo")).to_have_value(
        "Olá {{ infringer_name }}, seu CPF {{ cpf }} consta no caso."
    )  # nothing the editor typed is lost
    await shot(page, screenshot_dir, "modelo-recusado.png")
    await page.locator("#corpo").fill(
        "Olá {{ infringer_name }}, aqui é {{ analyst_name }} sobre o caso {{ case_ref }}."
    )
    await page.locator("#caso-previa").fill(person.references[0])
    await expect(page.locator("#previa-modelo .previa")).to_contain_text(person.references[0])
    await page.get_by_role("button", name="Criar modelo").click()
    await expect(page.locator(".versoes")).to_contain_text("Versão 1")

    await page.goto(f"{workspace_service.url}/painel/casos/{person.case_ids[0]}")
    await page.get_by_label("Contato").select_option(label=f"E-mail · {person.email}")
    await page.get_by_role("button", name="Iniciar conversa").click()
    conversation_id = int(page.url.rsplit("/", 1)[1])
    await page.locator("#modelo").select_option(name)
    await expect(page.locator("#previa .previa")).to_contain_text(person.references[0])
    await page.get_by_role("button", name="Enviar modelo").click()
    await expect(page.locator(".msg.saida").last).to_contain_text(person.references[0])
    async with unit_of_work() as session:
        meta = await session.scalar(
            sa.select(Message.meta)
            .where(Message.conversation_id == conversation_id)
            .order_by(Message.id.desc())
            .limit(1)
        )
    assert meta is not None and meta["template"] == name and meta["template_version"] == 1


async def test_confirming_an_unmatched_email(
    workspace_service: Service, page: Page, screenshot_dir: Path | None
) -> None:
    from playwright.async_api import expect

    person = await seed_person(cases=1, status=CaseStatus.NOTIFICADO)
    stranger = f"advogado{next(_seq)}@escritorio.adv.br"
    async with unit_of_work() as session:
        received = await do_receive_message(
            session,
            InboundMessage(
                channel=Channel.EMAIL,
                external_id=f"<{uuid.uuid4().hex}@escritorio.adv.br>",
                sender=stranger,
                text="Represento a loja notificada e gostaria de discutir um acordo.",
                received_at=utcnow() - dt.timedelta(minutes=2),
                raw={},
                subject="Notificação extrajudicial",
                meta={"from": stranger, "from_name": "Dr. Advogado"},
            ),
        )
        await do_store_suggestions(
            session,
            message_id=received.message.id,
            suggestions=[
                Suggested(person.case_ids[0], "name", 0.82, "nome da loja citado no texto")
            ],
        )
        conversation_id = received.conversation.id
    _, email = await seed_analyst()
    await log_in(page, workspace_service.url, email)
    await page.get_by_role("link", name="Não vinculados").click()
    item = page.locator(f"#mensagem-{received.message.id}")
    await expect(item).to_contain_text("82%")
    await expect(item).to_contain_text("nome da loja citado no texto")
    await shot(page, screenshot_dir, "nao-vinculados.png")
    await item.get_by_role("button", name=f"Confirmar {person.references[0]}").click()
    await expect(page.locator(f"#mensagem-{received.message.id}")).to_have_count(0)
    async with unit_of_work() as session:
        conversation = await session.get(Conversation, conversation_id)
        contact = await session.scalar(
            sa.select(ContactPoint).where(ContactPoint.value == stranger)
        )
    assert conversation is not None and conversation.case_id == person.case_ids[0]
    assert contact is not None and contact.infringer_id == person.infringer_id


async def test_a_deactivated_analysts_open_session_is_rejected(
    workspace_service: Service, browser: Browser, page: Page, screenshot_dir: Path | None
) -> None:
    from playwright.async_api import expect

    analyst_id, analyst_email = await seed_analyst()
    _, admin_email = await seed_analyst(Role.ADMIN)
    other = await browser.new_context(locale="pt-BR", viewport={"width": 1360, "height": 900})
    try:
        analyst_page = await other.new_page()
        await log_in(analyst_page, workspace_service.url, analyst_email)

        await log_in(page, workspace_service.url, admin_email)
        await page.get_by_role("link", name="Usuários").click()
        row = page.locator(f"#usuario-{analyst_id}")
        await shot(page, screenshot_dir, "usuarios.png")
        await row.get_by_role("button", name="Desativar").click()
        await expect(page.locator(f"#usuario-{analyst_id}")).to_contain_text("desativado")

        await analyst_page.goto(f"{workspace_service.url}/painel/casos")
        await expect(analyst_page).to_have_url(re.compile(r"/painel/login"))
        await expect(analyst_page.get_by_label("Senha")).to_be_visible()
    finally:
        await other.close()
