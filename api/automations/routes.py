"""HTTP API for automation rules (`/api/v1/automations`): supervisors manage, analysts read."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from api.analysts.models import Analyst, Role
from api.automations.dryrun import get_dry_run
from api.automations.schemas import DryRunOut, EnabledIn, ExecutionOut, RuleOut, RuleSpec
from api.automations.service import (
    create_rule,
    do_delete_rule,
    do_set_enabled,
    do_update_rule,
    get_all_rules,
    get_executions,
    require_rule,
    rule_out,
)
from api.db import utcnow
from api.errors import ValidationFailed
from api.web.deps import CurrentAnalyst, SessionDep, require_role
from api.web.params import PathId, QueryId

router = APIRouter(prefix="/api/v1/automations", tags=["automations"])
Supervisor = Annotated[Analyst, Depends(require_role(Role.SUPERVISOR))]


@router.get("/rules")
async def list_rules(session: SessionDep, analyst: CurrentAnalyst) -> list[RuleOut]:
    return [rule_out(rule) for rule in await get_all_rules(session)]


@router.post("/rules", status_code=201)
async def post_rule(session: SessionDep, analyst: Supervisor, body: RuleSpec) -> RuleOut:
    rule = await create_rule(session, spec=body, analyst=analyst)
    return rule_out(rule)


@router.get("/rules/{rule_id}")
async def get_rule(session: SessionDep, analyst: CurrentAnalyst, rule_id: PathId) -> RuleOut:
    return rule_out(await require_rule(session, rule_id=rule_id))


@router.put("/rules/{rule_id}")
async def put_rule(
    session: SessionDep, analyst: Supervisor, rule_id: PathId, body: RuleSpec
) -> RuleOut:
    rule = await require_rule(session, rule_id=rule_id)
    return rule_out(await do_update_rule(session, rule=rule, spec=body, analyst=analyst))


@router.put("/rules/{rule_id}/enabled")
async def put_enabled(
    session: SessionDep, analyst: Supervisor, rule_id: PathId, body: EnabledIn
) -> RuleOut:
    rule = await require_rule(session, rule_id=rule_id)
    return rule_out(await do_set_enabled(session, rule=rule, enabled=body.enabled, analyst=analyst))


@router.delete("/rules/{rule_id}", status_code=204)
async def delete_rule(session: SessionDep, analyst: Supervisor, rule_id: PathId) -> Response:
    rule = await require_rule(session, rule_id=rule_id)
    await do_delete_rule(session, rule=rule)
    return Response(status_code=204)


@router.get("/executions")
async def list_executions(
    session: SessionDep,
    analyst: CurrentAnalyst,
    case_id: QueryId = None,
    rule_id: QueryId = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[ExecutionOut]:
    rows = await get_executions(session, case_id=case_id, rule_id=rule_id, limit=limit)
    return [
        ExecutionOut(
            id=execution.id,
            rule_id=execution.rule_id,
            rule_name=name,
            subject=execution.subject,
            trigger_key=execution.trigger_key,
            case_id=execution.case_id,
            conversation_id=execution.conversation_id,
            depth=execution.depth,
            state=execution.state,
            sends=execution.sends,
            summary=execution.summary,
            created_at=execution.created_at,
        )
        for execution, name in rows
    ]


@router.get("/cases/{case_id}/dry-run")
async def dry_run(
    session: SessionDep,
    analyst: CurrentAnalyst,
    case_id: PathId,
    at: Annotated[dt.datetime | None, Query(description="ISO 8601 with offset")] = None,
) -> DryRunOut:
    """Which rules would fire for this case now (or `at`), and what they would do."""
    if at is not None and at.tzinfo is None:
        raise ValidationFailed("Informe 'at' com fuso horário (ex.: 2026-12-07T10:00-03:00).")
    return await get_dry_run(session, case_id=case_id, now=at or utcnow())
