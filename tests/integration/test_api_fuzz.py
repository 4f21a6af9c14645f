"""Schemathesis over the whole `/api/v1` schema, every check, a bounded number of examples.

The service runs in this process (uvicorn in the test's event loop, so it shares the migrated
test database); Hypothesis drives Schemathesis from a worker thread. Any server error, any status
the schema does not document, any body that does not match it fails the test.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

from api.analysts.models import Role
from api.app import create_app
from api.config import get_settings
from api.db import unit_of_work
from tests.factories import make_analyst
from tests.fixtures.twilio.harness import free_socket

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("database_url"), pytest.mark.slow]

# Per operation and generation mode; FUZZ_EXAMPLES raises it for a longer run by hand, and
# FUZZ_RANDOM=1 draws new examples (the suite's run is deterministic).
MAX_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "12"))
DERANDOMIZE = os.environ.get("FUZZ_RANDOM", "") in ("", "0")
# An endless event stream, and the call that would revoke the token the run uses.
SKIPPED = {("GET", "/api/v1/events"), ("POST", "/api/v1/auth/logout")}
# Checks a schema cannot satisfy for one operation, and why.
EXCLUDED_CHECKS: dict[tuple[str, str], list[Any]] = {
    # "text, a template or attachments, a template alone" spans fields, and a template must
    # name one of the catalog: a schema-valid body is not always an acceptable one.
    ("POST", "/api/v1/conversations/{conversation_id}/messages"): [positive_data_acceptance],
    # A multipart part cannot carry JSON's null: the fuzzer's "file: null" arrives as a file.
    ("POST", "/api/v1/attachments"): [negative_data_rejection],
    # "until or minutes" spans two optional fields: a body with neither is schema-valid.
    ("POST", "/api/v1/alerts/{alert_id}/snooze"): [positive_data_acceptance],
    # Quiet hours need both ends or neither: the same kind of rule across two fields.
    ("PUT", "/api/v1/alerts/preferences"): [positive_data_acceptance],
    # A rule must name templates, events, analysts and status moves that exist and are legal
    # (checked against the data, answered 422 with the reason): schema-valid is not valid.
    ("POST", "/api/v1/automations/rules"): [positive_data_acceptance],
    ("PUT", "/api/v1/automations/rules/{rule_id}"): [positive_data_acceptance],
}
# The run's requests come "through a proxy" from an address of their own (new on every run), so
# the failed logins the fuzzer provokes never throttle the suite's other logins, nor a later run.
FUZZ_CLIENT = f"2001:db8::{secrets.token_hex(2)}:{secrets.token_hex(2)}"


@pytest.fixture
def through_local_proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TRUSTED_PROXIES", "127.0.0.1")
    get_settings.cache_clear()
    yield
    monkeypatch.undo()
    get_settings.cache_clear()


@asynccontextmanager
async def serving() -> AsyncIterator[str]:
    sock = free_socket()
    server = uvicorn.Server(
        uvicorn.Config(create_app(), log_level="warning", lifespan="off", proxy_headers=False)
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    deadline = time.monotonic() + 10
    while not server.started:
        assert not task.done() and time.monotonic() < deadline, "service did not start"
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await task
        sock.close()


def fuzz(base_url: str, headers: dict[str, str]) -> list[str]:
    """Every operation, positive and negative examples; the failures, one line each."""
    schema = schemathesis.openapi.from_dict(httpx.get(f"{base_url}/openapi.json").json())
    failures: list[str] = []
    ran = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        key = (operation.method.upper(), operation.path)
        if key in SKIPPED:
            continue
        excluded = EXCLUDED_CHECKS.get(key, [])
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            calls: list[int] = []

            @settings(
                max_examples=MAX_EXAMPLES,
                deadline=None,
                database=None,
                derandomize=DERANDOMIZE,
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy(generation_mode=mode))
            def run(case: Any) -> None:
                calls.append(1)  # noqa: B023 (the list of this operation and mode)
                case.call_and_validate(
                    base_url=base_url,
                    headers=headers,
                    excluded_checks=excluded,  # noqa: B023
                    timeout=30,
                )

            try:
                run()
            except Unsatisfiable:
                continue  # nothing to violate (an operation without parameters or body)
            except BaseException as exc:
                if not isinstance(exc, Exception | BaseExceptionGroup):  # noqa: F821
                    raise
                first = str(exc).strip().splitlines()[:12]
                failures.append(f"{operation.method.upper()} {operation.path} [{mode.value}]:")
                failures.extend("    " + line for line in first)
            ran += len(calls)
    assert ran > 0, "no example ran"
    return failures


@asynccontextmanager
async def rules_restored() -> AsyncIterator[None]:
    """The fuzzer runs as a supervisor, who may edit, disable or delete automation rules; the
    database is shared with the rest of the suite, so the rules are put back as they were and
    any rule the fuzzer created is disabled."""
    import sqlalchemy as sa

    from api.automations.models import AutomationRule

    table = AutomationRule.__table__
    async with unit_of_work() as session:
        before = [dict(row) for row in (await session.execute(sa.select(table))).mappings()]
    try:
        yield
    finally:
        async with unit_of_work() as session:
            kept = {row["id"] for row in before}
            await session.execute(
                sa.update(table).where(table.c.id.not_in(kept)).values(enabled=False)
            )
            present = set((await session.scalars(sa.select(table.c.id))).all())
            for row in before:
                if row["id"] in present:
                    values = {k: v for k, v in row.items() if k != "id"}
                    await session.execute(
                        sa.update(table).where(table.c.id == row["id"]).values(**values)
                    )
                else:
                    await session.execute(sa.insert(table).values(**row))


async def test_the_whole_api_answers_no_server_error_and_only_documented_statuses(
    through_local_proxy: None,
) -> None:
    async with unit_of_work() as session:
        supervisor = await make_analyst(session, role=Role.SUPERVISOR)
        email = supervisor.email
    async with rules_restored(), serving() as base_url:
        async with httpx.AsyncClient(base_url=base_url) as http:
            token = await http.post(
                "/api/v1/auth/token",
                data={"username": email, "password": "correct-horse"},
                headers={"X-Forwarded-For": FUZZ_CLIENT},
            )
        assert token.status_code == 200, token.text
        headers = {
            "Authorization": f"Bearer {token.json()['access_token']}",
            "X-Forwarded-For": FUZZ_CLIENT,
        }
        failures = await asyncio.to_thread(fuzz, base_url, headers)
    assert failures == [], "\n".join(failures)
