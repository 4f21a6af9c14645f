"""The analyst's workspace over HTTP (ASGI client, real database): cases list, person page and
LGPD actions, case page additions, uploads, templates, unmatched mail, users."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal

import httpx
import pytest
import sqlalchemy as sa

from api.analysts.models import Analyst, AuthSession, Role
from api.cases.lifecycle import CaseStatus
from api.cases.models import Case, Listing
from api.cases.tags import CaseTag
from api.contacts.models import ContactPoint, Infringer
from api.conversations.inbound import InboundMessage, do_receive_message
from api.conversations.models import Attachment, Channel, Conversation, Holder, Message
from api.db import unit_of_work, utcnow
from api.outbox.models import OutboxItem
from api.payments.models import InstallmentStatus
from api.payments.provider import get_payment_provider
from api.payments.service import do_issue_payment_request
from api.templates.models import StoredTemplate, TemplateVersion
from api.timeline.models import TimelineEntry
from api.timeline.service import Actor
from tests.factories import make_analyst, make_brand, make_case, make_infringer
from tests.integration.test_panel import csrf_of, login, panel_app, png_bytes

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("database_url")]
_seq = iter(range(51_000_000, 99_999_999, 104729))


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=panel_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


async def person_with_two_cases() -> tuple[int, list[int], str, str]:
    phone = f"+5511998{next(_seq) % 10**6:06d}"
    email = f"pessoa{next(_seq)}@exemplo.com.br"
    async with unit_of_work() as session:
        person = await make_infringer(
            session, name="Roberta Quintela", phones=(phone,), emails=(email,)
        )
        first = await make_case(session, infringer=person, status=CaseStatus.EM_ATENDIMENTO)
        second = await make_case(session, infringer=person, listings=())
        for text, external in (("primeira mensagem", "SMa"), ("segunda mensagem", "SMb")):
            await do_receive_message(
                session,
                InboundMessage(
                    channel=Channel.WHATSAPP,
                    external_id=f"{external}{uuid.uuid4().hex}",
                    sender=f"whatsapp:{phone}",
                    text=text,
                    received_at=utcnow(),
                    raw={},
                ),
            )
        return person.id, [first.id, second.id], phone, email


async def test_cases_list_search_filters_and_bulk_status(client: httpx.AsyncClient) -> None:
    person_id, case_ids, phone, _ = await person_with_two_cases()
    me = await login(client)
    # The phone typed without the ninth digit finds both cases.
    national = phone[3:5] + " " + phone[6:10] + "-" + phone[10:]
    page = await client.get("/painel/casos", params={"q": national})
    assert page.status_code == 200
    async with unit_of_work() as session:
        refs = list(await session.scalars(sa.select(Case.reference).where(Case.id.in_(case_ids))))
    for ref in refs:
        assert ref in page.text
    assert "Roberta Quintela" in page.text and f"/painel/pessoas/{person_id}" in page.text
    # HTMX asks for the results part only.
    part = await client.get(
        "/painel/casos",
        params={"q": national},
        headers={"HX-Request": "true", "HX-Target": "resultado"},
    )
    assert "<html" not in part.text and refs[0] in part.text
    empty = await client.get("/painel/casos", params={"q": "zzz-nada-encontrado-zzz"})
    assert "Nenhum caso encontrado" in empty.text
    bad = await client.get("/painel/casos", params={"status": "INEXISTENTE"})
    assert bad.status_code == 422 and "Status desconhecido" in bad.text

    # Bulk: move both to "Em triagem"; the one in "Em atendimento" is refused with the reason.
    done = await client.post(
        "/painel/casos/lote",
        data={
            "csrf_token": me.csrf,
            "acao": "status",
            "status": "EM_TRIAGEM",
            "caso": [str(i) for i in case_ids],
            "volta": f"q={national}",
        },
    )
    assert done.status_code == 303
    result = await client.get(done.headers["location"])
    assert "1 caso(s) atualizado(s); 1 recusado(s)" in result.text
    async with unit_of_work() as session:
        statuses = {
            c.id: c.status
            for c in await session.scalars(sa.select(Case).where(Case.id.in_(case_ids)))
        }
    assert statuses == {case_ids[0]: CaseStatus.EM_ATENDIMENTO, case_ids[1]: CaseStatus.EM_TRIAGEM}


async def test_person_page_export_and_restriction(client: httpx.AsyncClient) -> None:
    person_id, case_ids, phone, email = await person_with_two_cases()
    analyst = await login(client)
    page = await client.get(f"/painel/pessoas/{person_id}")
    assert page.status_code == 200
    assert "primeira mensagem" in page.text and "segunda mensagem" in page.text
    assert "Exportar todos os dados" not in page.text  # an analyst sees no LGPD actions
    refused = await client.post(
        f"/painel/pessoas/{person_id}/exportar", data={"csrf_token": analyst.csrf}
    )
    assert refused.status_code == 403

    client.cookies.clear()
    supervisor = await login(client, Role.SUPERVISOR)
    exported = await client.post(
        f"/painel/pessoas/{person_id}/exportar", data={"csrf_token": supervisor.csrf}
    )
    assert exported.status_code == 200
    assert "attachment" in exported.headers["content-disposition"]
    document = json.loads(exported.content)
    assert document["person"]["name"] == "Roberta Quintela"
    assert {c["value"] for c in document["contacts"]} == {phone, email}
    assert len(document["cases"]) == 2
    assert [m["text"] for m in document["messages"]] == ["primeira mensagem", "segunda mensagem"]

    restricted = await client.post(
        f"/painel/pessoas/{person_id}/restringir",
        data={"csrf_token": supervisor.csrf, "motivo": "pedido do titular"},
    )
    assert restricted.status_code == 303
    async with unit_of_work() as session:
        person = await session.get(Infringer, person_id)
        contacts = list(
            await session.scalars(
                sa.select(ContactPoint).where(ContactPoint.infringer_id == person_id)
            )
        )
        entries = list(
            await session.scalars(
                sa.select(TimelineEntry.summary).where(TimelineEntry.case_id.in_(case_ids))
            )
        )
    assert person is not None and person.processing_restricted_at is not None
    assert all(c.opted_out_at is not None for c in contacts)
    assert any("restrito (LGPD)" in s for s in entries)
    assert any("exportados (LGPD)" in s for s in entries)
    page = await client.get(f"/painel/pessoas/{person_id}")
    assert "restrito" in page.text and "Retirar a restrição" in page.text
    # Lifting the restriction releases the addresses it suppressed.
    lifted = await client.post(
        f"/painel/pessoas/{person_id}/liberar-tratamento",
        data={"csrf_token": supervisor.csrf, "motivo": "erro"},
    )
    assert lifted.status_code == 303
    async with unit_of_work() as session:
        opted = list(
            await session.scalars(
                sa.select(ContactPoint.opted_out_at).where(ContactPoint.infringer_id == person_id)
            )
        )
    assert opted == [None, None]


async def test_case_page_tags_follow_up_installment_and_start_conversation(
    client: httpx.AsyncClient,
) -> None:
    email = f"loja{next(_seq)}@exemplo.com.br"
    async with unit_of_work() as session:
        person = await make_infringer(session, name="Loja Teste", emails=(email,))
        brand = await make_brand(session)
        case = await make_case(
            session, brand=brand, infringer=person, status=CaseStatus.EM_NEGOCIACAO
        )
        case.agreed_amount = Decimal("900.00")
        case.agreed_installments = 3
        await session.flush()
        request = await do_issue_payment_request(
            session,
            case=case,
            brand=brand,
            amount=Decimal("900.00"),
            installments=3,
            provider=get_payment_provider(),
            actor=Actor.system(),
        )
        case_id, installment_id = case.id, request.installments[0].id
        contact_id = await session.scalar(
            sa.select(ContactPoint.id).where(ContactPoint.value == email)
        )
    me = await login(client)
    async with unit_of_work() as session:
        listing_id = await session.scalar(sa.select(Listing.id).where(Listing.case_id == case_id))
    for url, data in (
        (f"/painel/casos/{case_id}/anuncios/{listing_id}", {"situacao": "removed", "nota": "ok"}),
        (
            f"/painel/casos/{case_id}/etiquetas",
            {"etiquetas": "Reincidente, prioridade, reincidente"},
        ),
        (f"/painel/casos/{case_id}/acompanhamento", {"data": "2026-12-10"}),
        (f"/painel/casos/{case_id}/parcelas/{installment_id}/paga", {}),
    ):
        response = await client.post(url, data={"csrf_token": me.csrf, **data})
        assert response.status_code == 303, response.text
    again = await client.post(
        f"/painel/casos/{case_id}/parcelas/{installment_id}/paga", data={"csrf_token": me.csrf}
    )
    assert again.status_code == 409 and "já está paga" in again.text
    page = await client.get(f"/painel/casos/{case_id}")
    assert "reincidente" in page.text and "prioridade" in page.text
    assert "10/12/2026" in page.text
    assert "Em negociação" in page.text and "EM_NEGOCIACAO</" not in page.text
    assert "Removido" in page.text and "ainda não verificado" not in page.text
    async with unit_of_work() as session:
        tags = set(await session.scalars(sa.select(CaseTag.tag).where(CaseTag.case_id == case_id)))
        installment_status = await session.scalar(
            sa.text("SELECT status FROM installments WHERE id = :i"), {"i": installment_id}
        )
        paid_entry = await session.scalar(
            sa.select(TimelineEntry.summary).where(
                TimelineEntry.case_id == case_id, TimelineEntry.summary.like("Parcela 1/3%")
            )
        )
    assert tags == {"reincidente", "prioridade"}
    assert installment_status == InstallmentStatus.PAID.value
    assert paid_entry is not None and "paga por" in paid_entry

    started = await client.post(
        f"/painel/casos/{case_id}/conversas", data={"csrf_token": me.csrf, "contato": contact_id}
    )
    assert started.status_code == 303
    conversation_id = int(started.headers["location"].rsplit("/", 1)[1])
    async with unit_of_work() as session:
        conversation = await session.get(Conversation, conversation_id)
    assert conversation is not None
    assert conversation.case_id == case_id and conversation.holder is Holder.HUMAN
    assert conversation.analyst_id == me.analyst_id


async def test_upload_is_sent_as_an_attachment_and_a_bad_file_is_refused(
    client: httpx.AsyncClient,
) -> None:
    email = f"anexo{next(_seq)}@exemplo.com.br"
    async with unit_of_work() as session:
        person = await make_infringer(session, name="Com Anexo", emails=(email,))
        case = await make_case(session, infringer=person, status=CaseStatus.EM_ATENDIMENTO)
        contact_id = await session.scalar(
            sa.select(ContactPoint.id).where(ContactPoint.value == email)
        )
        case_id = case.id
    me = await login(client)
    started = await client.post(
        f"/painel/casos/{case_id}/conversas", data={"csrf_token": me.csrf, "contato": contact_id}
    )
    conversation_id = int(started.headers["location"].rsplit("/", 1)[1])
    page = await client.get(f"/painel/conversas/{conversation_id}")
    assert 'name="anexo"' in page.text and "Ctrl+Enter" in page.text
    refused = await client.post(
        f"/painel/conversas/{conversation_id}/mensagens",
        data={"csrf_token": me.csrf, "texto": "segue"},
        files={"anexo": ("script.exe", b"MZ\x90\x00" + b"\x00" * 100, "image/png")},
    )
    assert refused.status_code == 422 and "Anexo recusado" in refused.text
    sent = await client.post(
        f"/painel/conversas/{conversation_id}/mensagens",
        data={"csrf_token": me.csrf, "texto": "segue o acordo"},
        files={"anexo": ("acordo.png", png_bytes(), "image/png")},
    )
    assert sent.status_code == 303, sent.text
    async with unit_of_work() as session:
        attachments = list(
            await session.scalars(
                sa.select(Attachment)
                .join(Message, Message.id == Attachment.message_id)
                .where(Message.conversation_id == conversation_id)
            )
        )
    assert [(a.filename, a.content_type) for a in attachments] == [("acordo.png", "image/png")]
    async with unit_of_work() as session:
        reference = await session.scalar(sa.select(Case.reference).where(Case.id == case_id))
        payload = await session.scalar(
            sa.select(OutboxItem.payload).where(OutboxItem.conversation_id == conversation_id)
        )
    # E-mail: a threaded message with the case reference in the subject.
    assert payload is not None and reference is not None and reference in payload["subject"]


async def test_template_with_unknown_variable_is_refused_and_versions_are_kept(
    client: httpx.AsyncClient,
) -> None:
    admin = await login(client, Role.ADMIN)
    name = f"modelo_{next(_seq)}"
    bad = await client.post(
        "/painel/modelos",
        data={
            "csrf_token": admin.csrf,
            "nome": name,
            "canais": ["email"],
            "corpo": "Olá {{ infringer_name }}, seu CPF é {{ cpf }}.",
        },
    )
    assert bad.status_code == 422 and "Variável desconhecida" in bad.text and "cpf" in bad.text
    for body in ("Olá {{ infringer_name }}, caso {{ case_ref }}.", "Oi {{ infringer_name }}!"):
        response = await client.post(
            "/painel/modelos",
            data={"csrf_token": admin.csrf, "nome": name, "canais": ["email"], "corpo": body},
        )
        assert response.status_code == 303, response.text
    async with unit_of_work() as session:
        versions = list(
            await session.scalars(
                sa.select(TemplateVersion.body)
                .join(StoredTemplate, StoredTemplate.id == TemplateVersion.template_id)
                .where(StoredTemplate.name == name)
                .order_by(TemplateVersion.version)
            )
        )
    assert versions == [
        "Olá {{ infringer_name }}, caso {{ case_ref }}.",
        "Oi {{ infringer_name }}!",
    ]
    page = await client.get(f"/painel/modelos/{name}")
    assert "Versão 2" in page.text and "Versão 1" in page.text
    client.cookies.clear()
    analyst = await login(client)
    denied = await client.post(
        "/painel/modelos",
        data={"csrf_token": analyst.csrf, "nome": name, "canais": ["email"], "corpo": "x"},
    )
    assert denied.status_code == 403


async def test_users_admin_deactivation_ends_open_sessions(client: httpx.AsyncClient) -> None:
    admin = await login(client, Role.ADMIN)
    email = f"novo{next(_seq)}@tratativa.local"
    created = await client.post(
        "/painel/usuarios",
        data={
            "csrf_token": admin.csrf,
            "nome": "Nova Analista",
            "email": email,
            "papel": "analyst",
            "senha": "senha-forte-1",
        },
    )
    assert created.status_code == 303, created.text
    async with unit_of_work() as session:
        user = await session.scalar(sa.select(Analyst).where(Analyst.email == email))
        assert user is not None
        user_id = user.id
    promoted = await client.post(
        f"/painel/usuarios/{user_id}/papel", data={"csrf_token": admin.csrf, "papel": "supervisor"}
    )
    assert promoted.status_code == 303
    # The new user logs in elsewhere; deactivation ends that session.
    transport = httpx.ASGITransport(app=panel_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as other:
        login_page = await other.get("/painel/login")
        await other.post(
            "/painel/login",
            data={"email": email, "senha": "senha-forte-1", "csrf_token": csrf_of(login_page.text)},
        )
        assert (await other.get("/painel/caixa")).status_code == 200
        deactivated = await client.post(
            f"/painel/usuarios/{user_id}/desativar", data={"csrf_token": admin.csrf}
        )
        assert deactivated.status_code == 303
        after = await other.get("/painel/caixa")
        assert after.status_code in (302, 303) and "/painel/login" in after.headers["location"]
    async with unit_of_work() as session:
        user = await session.get(Analyst, user_id)
        live = await session.scalar(
            sa.select(sa.func.count())
            .select_from(AuthSession)
            .where(AuthSession.analyst_id == user_id, AuthSession.revoked_at.is_(None))
        )
    assert user is not None and not user.active and user.role is Role.SUPERVISOR
    assert live == 0


async def test_unmatched_mail_confirm_and_create_case(client: httpx.AsyncClient) -> None:
    stranger = f"desconhecido{next(_seq)}@outro.com.br"
    async with unit_of_work() as session:
        case = await make_case(session)
        case_id = case.id
        received = await do_receive_message(
            session,
            InboundMessage(
                channel=Channel.EMAIL,
                external_id=f"<{uuid.uuid4().hex}@outro.com.br>",
                sender=stranger,
                text=f"Sobre o caso {case.reference}, gostaria de negociar.",
                received_at=utcnow() - dt.timedelta(minutes=3),
                raw={},
                subject="Notificação",
                meta={"from": stranger, "from_name": "Fulano"},
            ),
        )
        message_id = received.message.id
        conversation_id = received.conversation.id
    assert received.conversation.case_id is None
    me = await login(client)
    queue = await client.get("/painel/nao-vinculados")
    assert queue.status_code == 200 and stranger in queue.text
    confirmed = await client.post(
        f"/painel/nao-vinculados/{message_id}/confirmar",
        data={"csrf_token": me.csrf, "caso": str(case_id)},
    )
    assert confirmed.status_code == 303, confirmed.text
    async with unit_of_work() as session:
        conversation = await session.get(Conversation, conversation_id)
    assert conversation is not None and conversation.case_id == case_id


async def test_bulk_assign_is_a_supervisors_act(client: httpx.AsyncClient) -> None:
    _, case_ids, _, _ = await person_with_two_cases()
    async with unit_of_work() as session:
        assignee = await make_analyst(session)
        assignee_id = assignee.id
    analyst = await login(client)
    form = {"acao": "atribuir", "responsavel": str(assignee_id), "caso": [str(i) for i in case_ids]}
    refused = await client.post("/painel/casos/lote", data={"csrf_token": analyst.csrf, **form})
    assert refused.status_code == 303
    assert "2 recusado(s)" in (await client.get(refused.headers["location"])).text
    client.cookies.clear()
    supervisor = await login(client, Role.SUPERVISOR)
    done = await client.post("/painel/casos/lote", data={"csrf_token": supervisor.csrf, **form})
    assert "2 caso(s) atualizado(s)." in (await client.get(done.headers["location"])).text
    listed = await client.get("/painel/casos", params={"responsavel": str(assignee_id)})
    async with unit_of_work() as session:
        assigned = set(
            await session.scalars(sa.select(Case.assignee_id).where(Case.id.in_(case_ids)))
        )
        refs = list(await session.scalars(sa.select(Case.reference).where(Case.id.in_(case_ids))))
    assert assigned == {assignee_id}
    assert all(ref in listed.text for ref in refs)


async def test_unmatched_mail_becomes_a_new_infringer_and_case(client: httpx.AsyncClient) -> None:
    stranger = f"novaloja{next(_seq)}@outra.com.br"
    async with unit_of_work() as session:
        brand = await make_brand(session)
        brand_id = brand.id
        received = await do_receive_message(
            session,
            InboundMessage(
                channel=Channel.EMAIL,
                external_id=f"<{uuid.uuid4().hex}@outra.com.br>",
                sender=stranger,
                text="Recebemos uma notificação, mas não achamos o número do caso.",
                received_at=utcnow(),
                raw={},
                subject="Dúvida",
                meta={"from": stranger, "from_name": "Nova Loja"},
            ),
        )
        message_id, conversation_id = received.message.id, received.conversation.id
    me = await login(client)
    bad = await client.post(
        f"/painel/nao-vinculados/{message_id}/novo-caso",
        data={
            "csrf_token": me.csrf,
            "nome": "Nova Loja Ltda",
            "marca": brand_id,
            "documento": "123",
        },
    )
    assert bad.status_code == 422 and "CPF/CNPJ inválido" in bad.text
    created = await client.post(
        f"/painel/nao-vinculados/{message_id}/novo-caso",
        data={"csrf_token": me.csrf, "nome": "Nova Loja Ltda", "marca": brand_id},
    )
    assert created.status_code == 303, created.text
    case_id = int(created.headers["location"].rsplit("/", 1)[1])
    async with unit_of_work() as session:
        case = await session.get(Case, case_id)
        conversation = await session.get(Conversation, conversation_id)
        contact = await session.scalar(
            sa.select(ContactPoint).where(ContactPoint.value == stranger)
        )
    assert case is not None and case.brand_id == brand_id
    assert conversation is not None and conversation.case_id == case_id
    assert contact is not None and contact.infringer_id == case.infringer_id
    queue = await client.get("/painel/nao-vinculados")
    assert stranger not in queue.text


async def test_a_supervisor_lifts_an_opt_out_from_the_person_page(
    client: httpx.AsyncClient,
) -> None:
    person_id, _, phone, _ = await person_with_two_cases()
    async with unit_of_work() as session:
        contact = await session.scalar(sa.select(ContactPoint).where(ContactPoint.value == phone))
        assert contact is not None
        contact.opted_out_at = utcnow()
        contact.opt_out_reason = "palavra-chave: sair"
        contact_id = contact.id
    analyst = await login(client)
    page = await client.get(f"/painel/pessoas/{person_id}")
    assert "o próprio contato (pelo bot)" in page.text and "palavra-chave: sair" in page.text
    denied = await client.post(
        f"/painel/pessoas/{person_id}/contatos/{contact_id}/liberar",
        data={"csrf_token": analyst.csrf, "motivo": "pediu para voltar"},
    )
    assert denied.status_code == 403
    client.cookies.clear()
    supervisor = await login(client, Role.SUPERVISOR)
    no_reason = await client.post(
        f"/painel/pessoas/{person_id}/contatos/{contact_id}/liberar",
        data={"csrf_token": supervisor.csrf, "motivo": " "},
    )
    assert no_reason.status_code == 422
    lifted = await client.post(
        f"/painel/pessoas/{person_id}/contatos/{contact_id}/liberar",
        data={"csrf_token": supervisor.csrf, "motivo": "pediu para voltar"},
    )
    assert lifted.status_code == 303
    async with unit_of_work() as session:
        contact = await session.get(ContactPoint, contact_id)
    assert contact is not None and contact.opted_out_at is None
