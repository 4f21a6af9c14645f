"""`POST /actions/webhook`: Rasa's action-server protocol, run by rasa-sdk's executor in-process."""

from __future__ import annotations

import hmac
import logging
from functools import lru_cache
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query
from fastapi.responses import JSONResponse
from rasa_sdk.executor import ActionExecutor
from rasa_sdk.interfaces import ActionExecutionRejection, ActionNotFoundException

from api.config import get_settings
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
        result = await get_executor().run(action_call)
    except ActionNotFoundException as exc:
        return JSONResponse({"error": exc.message, "action_name": exc.action_name}, 404)
    except ActionExecutionRejection as exc:
        return JSONResponse({"error": exc.message, "action_name": exc.action_name}, 400)
    return JSONResponse(result.model_dump() if result else None)
