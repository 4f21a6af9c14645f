"""`POST /actions/webhook`: Rasa's action-server protocol, run by rasa-sdk's executor in-process,
each action at most once per turn (api.engine.ledger)."""

from __future__ import annotations

import hmac
import logging
from functools import lru_cache
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query
from fastapi.responses import JSONResponse
from rasa_sdk.executor import ActionExecutor
from rasa_sdk.interfaces import ActionExecutionRejection, ActionNotFoundException
from sqlalchemy.exc import IntegrityError

from api.config import get_settings
from api.conversations.service import conversation_id_from_sender
from api.db import unit_of_work
from api.engine.ledger import (
    action_key,
    bind_action_session,
    create_execution,
    find_execution,
    get_execution,
)
from api.errors import AuthenticationRequired

log = logging.getLogger(__name__)
router = APIRouter(tags=["rasa"], include_in_schema=False)


@lru_cache(maxsize=1)
def get_executor() -> ActionExecutor:
    executor = ActionExecutor()
    executor.register_package("actions")
    return executor


@router.post("/actions/webhook")
async def run_action(
    action_call: Annotated[dict[str, Any], Body()],
    token: Annotated[str, Query()] = "",
) -> JSONResponse:
    expected = get_settings().rasa.action_token.get_secret_value()
    if not hmac.compare_digest(token.encode(), expected.encode()):
        raise AuthenticationRequired("Token do servidor de ações inválido.")
    try:
        body = await _run_once(action_call)
    except ActionNotFoundException as exc:
        return JSONResponse({"error": exc.message, "action_name": exc.action_name}, 404)
    except ActionExecutionRejection as exc:
        return JSONResponse({"error": exc.message, "action_name": exc.action_name}, 400)
    return JSONResponse(body)


async def _run(action_call: dict[str, Any]) -> dict[str, Any] | None:
    result = await get_executor().run(action_call)
    return result.model_dump() if result else None


async def _run_once(action_call: dict[str, Any]) -> dict[str, Any] | None:
    """Run the action unless this turn already ran it; then answer what it answered then.

    The ledger row and the action's writes commit together, so either both exist or neither.
    """
    key = action_key(action_call)
    if key is None:
        return await _run(action_call)
    try:
        async with unit_of_work() as session:
            found = await find_execution(
                session, key, conversation_id=conversation_id_from_sender(key.sender_id)
            )
            if found.response is not None:
                log.info("action %s of turn %s replayed", key.action_name, key.turn_key)
                return _unwrap(found.response)
            with bind_action_session(session):
                body = await _run(action_call)
            await create_execution(session, key, {"body": body})
            return body
    except IntegrityError:
        # The same turn's action ran concurrently and committed first: ours rolled back.
        async with unit_of_work() as session:
            done = await get_execution(session, key)
        if done is None:
            raise
        return _unwrap(done.response)


def _unwrap(response: dict[str, Any]) -> dict[str, Any] | None:
    body = response.get("body")
    return body if isinstance(body, dict) else None
