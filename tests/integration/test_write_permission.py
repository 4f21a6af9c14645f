"""One write-permission rule for the API and the panel (api/handoff/permissions.py), driven
through both surfaces with the same cases: the holder writes; a supervisor may cover a
conversation a person holds or awaits, never one the bot holds (the bot and a person must not
both speak) nor a closed one. Before issue 11 a supervisor could write through the API into a
conversation the bot held, where the panel refused."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest
import sqlalchemy as sa

from api.analysts.models import Analyst, Role
from api.conversations.models import Conversation, Direction, Holder, Message
from api.db import unit_of_work
from api.handoff.service import do_claim, do_request_handoff, do_resolve
from api.timeline.service import Actor
from tests.factories import make_analyst
from tests.integration.test_handoff_api import conversation_for_case
from tests.integration.test_panel import csrf_of, panel_app

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("database_url")]

Send = Callable[[int, str], Awaitable[int]]

# (conversation state, who writes, refusal status or None when allowed)
CASES = [
    ("bot", "supervisor", 409),
    ("bot", "analyst", 409),
    ("waiting", "supervisor", None),
    ("waiting", "analyst", 409),
    ("held", "holder", None),
    ("held", "analyst", 403),
    ("held", "supervisor", None),
    ("closed", "supervisor", 409),
    ("closed", "analyst", 409),
]


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=panel_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


async def new_analyst(role: Role) -> Analyst:
    async with unit_of_work() as session:
        return await make_analyst(session, role=role)


async def api_writer(client: httpx.AsyncClient, analyst: Analyst) -> Send:
    token = await client.post(
        "/api/v1/auth/token", data={"username": analyst.email, "password": "correct-horse"}
    )
    assert token.status_code == 200
    headers = {"Authorization": f"Bearer {token.json()['access_token']}"}

    async def send(conversation_id: int, text: str) -> int:
        response = await client.post(
            f"/api/v1/conversations/{conversation_id}/messages",
            json={"text": text},
            headers=headers,
        )
        return 201 if response.status_code == 201 else response.status_code

    return send


async def panel_writer(client: httpx.AsyncClient, analyst: Analyst) -> Send:
    page = await client.get("/painel/login")
    logged = await client.post(
        "/painel/login",
        data={"email": analyst.email, "senha": "correct-horse", "csrf_token": csrf_of(page.text)},
    )
    assert logged.status_code == 303
    csrf = csrf_of((await client.get("/painel/caixa")).text)

    async def send(conversation_id: int, text: str) -> int:
        response = await client.post(
            f"/painel/conversas/{conversation_id}/mensagens",
            data={"texto": text, "csrf_token": csrf},
        )
        return 201 if response.status_code == 303 else response.status_code

    return send


async def conversation_in(state: str, *, holder: Analyst) -> int:
    """A WhatsApp conversation on a case, its window open, in `state`; made without an inbound
    message so no bot turn runs meanwhile and the holder stays what the case says."""
    conversation_id, _case_id = await conversation_for_case(last_inbound_hours_ago=0.1)
    async with unit_of_work() as session:
        if state != "bot":
            conversation = await session.get(Conversation, conversation_id)
            assert conversation is not None
            await do_request_handoff(
                session, conversation=conversation, reason="pediu", actor=Actor.bot()
            )
        if state == "held":
            await do_claim(session, conversation_id=conversation_id, analyst=holder)
        if state == "closed":
            await do_resolve(session, conversation_id=conversation_id, analyst=holder)
    async with unit_of_work() as session:
        conversation = await session.get(Conversation, conversation_id)
        assert conversation is not None
        expected = {"bot": Holder.BOT, "waiting": Holder.WAITING_HUMAN, "held": Holder.HUMAN}
        assert conversation.holder is expected.get(state, Holder.BOT)
        assert (conversation.closed_at is not None) is (state == "closed")
    return conversation_id


async def outbound_count(conversation_id: int) -> int:
    async with unit_of_work() as session:
        count = await session.scalar(
            sa.select(sa.func.count())
            .select_from(Message)
            .where(
                Message.conversation_id == conversation_id,
                Message.direction == Direction.OUTBOUND,
            )
        )
    return int(count or 0)


@pytest.mark.parametrize("surface", ["api", "panel"])
@pytest.mark.parametrize(("state", "who", "refused"), CASES)
async def test_the_same_write_rule_on_api_and_panel(
    client: httpx.AsyncClient, surface: str, state: str, who: str, refused: int | None
) -> None:
    holder = await new_analyst(Role.ANALYST)
    writer = (
        holder
        if who == "holder"
        else await new_analyst(Role.SUPERVISOR if who == "supervisor" else Role.ANALYST)
    )
    conversation_id = await conversation_in(state, holder=holder)
    send = await (api_writer if surface == "api" else panel_writer)(client, writer)
    before = await outbound_count(conversation_id)

    status = await send(conversation_id, "Olá, aqui é da equipe de proteção de marca.")

    assert status == (refused or 201)
    assert await outbound_count(conversation_id) == before + (0 if refused else 1)
    if surface == "panel":
        page = await client.get(f"/painel/conversas/{conversation_id}")
        # The reply box says what the rule says.
        assert ("Assuma a conversa para responder." in page.text) is (refused is not None)
