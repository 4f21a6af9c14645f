"""Numbers a request carries are bounded before they reach the database (422, never a 500),
JSON ids are JSON integers, and the OpenAPI schema says which errors each operation answers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from urllib.parse import quote

import httpx
import pytest

from api.analysts.models import Role
from api.app import create_app
from api.config import get_settings
from api.devtools.twilio_simulator import sign
from tests.fixtures.twilio.harness import AUTH_TOKEN, STATUS_PATH, load_form, new_sid
from tests.integration.test_handoff_api import conversation_for_case, login
from tests.integration.test_panel import login as panel_login
from tests.integration.test_panel import panel_app

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("database_url")]

HUGE = str(2**63)  # one past the largest 64-bit integer
BIG = str(2**31)  # one past the largest id a PostgreSQL integer column holds


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


@pytest.fixture(scope="module")
async def supervisor(database_url: str) -> tuple[dict[str, str], int]:
    """One supervisor's token for the module (a login hashes a password: slow on purpose)."""
    transport = httpx.ASGITransport(app=create_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        headers, analyst_id, _ = await login(client, Role.SUPERVISOR)
    return headers, analyst_id


@pytest.mark.parametrize("number", [HUGE, BIG, "-1", "0"])
@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("GET", "/api/v1/cases/{n}"),
        ("GET", "/api/v1/cases/{n}/timeline"),
        ("GET", "/api/v1/conversations/{n}"),
        ("POST", "/api/v1/conversations/{n}/release"),
        ("POST", "/api/v1/cases/{n}/notes"),
        ("POST", "/api/v1/contacts/{n}/lift-opt-out"),
        ("POST", "/api/v1/email/unmatched/{n}/reject"),
        ("GET", "/api/v1/cases?page={n}"),
        ("GET", "/api/v1/cases?brand_id={n}"),
        ("GET", "/api/v1/handoffs?brand_id={n}"),
        ("GET", "/api/v1/cases/1/timeline?after_id={n}"),
        ("GET", "/api/v1/email/unmatched?offset={n}"),
    ],
)
async def test_out_of_range_integers_are_a_422(
    client: httpx.AsyncClient,
    supervisor: tuple[dict[str, str], int],
    method: str,
    url: str,
    number: str,
) -> None:
    if number == "0" and ("after_id" in url or "offset" in url):
        pytest.skip("0 is a valid cursor and offset")
    headers, _ = supervisor
    body = {"text": "nota", "reason": "motivo", "case_id": 1}
    response = await client.request(method, url.format(n=number), headers=headers, json=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "validation_failed"


@pytest.mark.parametrize("value", [True, "7", 2**63, 2**31, 0, 1.5])
async def test_a_json_id_must_be_an_integer_in_range(
    client: httpx.AsyncClient, supervisor: tuple[dict[str, str], int], value: object
) -> None:
    conversation_id, _ = await conversation_for_case()
    headers, _ = supervisor
    claim = await client.post(
        f"/api/v1/conversations/{conversation_id}/claim",
        json={"analyst_id": value},
        headers=headers,
    )
    confirm = await client.post(
        "/api/v1/email/unmatched/1/confirm", json={"case_id": value}, headers=headers
    )
    for response in (claim, confirm):
        assert response.status_code == 422, response.text
        (error,) = response.json()["error"]["details"]["errors"]
        assert error["loc"][-1] in ("analyst_id", "case_id")


async def test_a_json_id_may_be_written_as_an_integral_number(
    client: httpx.AsyncClient, supervisor: tuple[dict[str, str], int]
) -> None:
    conversation_id, _ = await conversation_for_case()
    headers, analyst_id = supervisor
    claimed = await client.post(
        f"/api/v1/conversations/{conversation_id}/claim",
        json={"analyst_id": float(analyst_id)},
        headers=headers,
    )
    assert claimed.status_code == 200, claimed.text
    assert claimed.json()["analyst_id"] == analyst_id


@pytest.fixture
def twilio_token(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", AUTH_TOKEN)
    monkeypatch.setenv("PUBLIC_BASE_URL", "http://test")
    get_settings.cache_clear()
    yield
    monkeypatch.undo()
    get_settings.cache_clear()


@pytest.mark.parametrize("mid", [HUGE, BIG, "²", "12a"])
async def test_a_status_callback_with_an_impossible_mid_is_still_answered(
    client: httpx.AsyncClient, twilio_token: None, mid: str
) -> None:
    form = load_form("status_delivered", MessageSid=new_sid())
    path = f"{STATUS_PATH}?mid={quote(mid)}"
    response = await client.post(
        path,
        data=form,
        headers={"X-Twilio-Signature": sign("http://test" + path, form, AUTH_TOKEN)},
    )
    assert response.status_code == 200, response.text


async def test_the_openapi_schema_documents_the_error_statuses(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    error_ref = {"$ref": "#/components/schemas/ErrorBody"}
    claim = schema["paths"]["/api/v1/conversations/{conversation_id}/claim"]["post"]
    for status in ("400", "401", "403", "404", "409", "422"):
        assert claim["responses"][status]["content"]["application/json"]["schema"] == error_ref
    token = schema["paths"]["/api/v1/auth/token"]["post"]["responses"]
    assert "401" in token and "404" not in token
    case_id = schema["paths"]["/api/v1/cases/{case_id}"]["get"]["parameters"][0]["schema"]
    assert (case_id["minimum"], case_id["maximum"]) == (1, 2**31 - 1)


@pytest.mark.parametrize(
    "path",
    [
        "/painel/conversas/{n}",
        "/painel/conversas/{n}/linha-do-tempo",
        "/painel/casos/{n}",
        "/painel/anexos/{n}",
        "/painel/mensagens/{n}/inline/a@b",
        "/painel/caixa?marca={n}",
    ],
)
async def test_the_panel_refuses_out_of_range_ids_with_a_page_not_a_500(path: str) -> None:
    transport = httpx.ASGITransport(app=panel_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        await panel_login(client)
        response = await client.get(path.format(n=HUGE))
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("text/html")


async def test_text_with_a_nul_character_is_a_422_and_changes_nothing(
    client: httpx.AsyncClient, supervisor: tuple[dict[str, str], int]
) -> None:
    """PostgreSQL cannot store U+0000: it answered 500 (found by a randomized fuzz run)."""
    headers, _ = supervisor
    conversation_id, _ = await conversation_for_case()
    login_form = await client.post(
        "/api/v1/auth/token", data={"username": "ana\x00@x.com", "password": "x"}
    )
    note = await client.post(
        f"/api/v1/conversations/{conversation_id}/notes",
        json={"text": "nota com \x00 nulo"},
        headers=headers,
    )
    search = await client.get("/api/v1/cases", params={"q": "a\x00b"}, headers=headers)
    for response in (login_form, note, search):
        assert response.status_code == 422, response.text
        assert response.json()["error"]["code"] == "validation_failed"
    timeline = await client.get(f"/api/v1/conversations/{conversation_id}", headers=headers)
    assert timeline.status_code == 200
    # An escaped backslash is just text, not a NUL.
    kept = await client.post(
        f"/api/v1/conversations/{conversation_id}/notes",
        json={"text": "caminho C:\\u0000\\pasta"},
        headers=headers,
    )
    assert kept.status_code == 201, kept.text
