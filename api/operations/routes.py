"""HTTP API for alerts, ownership and the calendar (`/api/v1`)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query

from api.analysts.models import Analyst, Role
from api.db import utcnow
from api.errors import NotFound, ValidationFailed
from api.operations import consumer as _consumer  # noqa: F401  (registers the consumer here)
from api.operations import live as _live  # noqa: F401  (registers the consumer here)
from api.operations.alerts import (
    count_active,
    do_acknowledge,
    do_resolve,
    do_snooze,
    get_alerts,
    require_alert,
)
from api.operations.calendar import (
    do_add_holiday,
    do_remove_holiday,
    do_update_calendar,
    get_holidays,
    load_calendar,
)
from api.operations.digests import do_set_preferences, get_preferences
from api.operations.due import do_sweep
from api.operations.kinds import ALERT_KINDS, do_update_alert_settings, get_alert_settings
from api.operations.ownership import do_assign_case, do_set_brand_default_analyst
from api.operations.schemas import (
    AlertKindOut,
    AlertOut,
    AlertPage,
    AssigneeIn,
    AssigneeOut,
    BrandDefaultOut,
    CalendarIn,
    CalendarOut,
    HolidayIn,
    HolidayOut,
    PreferencesIn,
    PreferencesOut,
    RunDueOut,
    SnoozeIn,
)
from api.web.deps import CurrentAnalyst, SessionDep, require_role
from api.web.params import PathId

router = APIRouter(prefix="/api/v1", tags=["operations"])
Admin = Annotated[Analyst, Depends(require_role(Role.ADMIN))]
Scope = Annotated[str, Query(pattern="^(active|snoozed|acknowledged|resolved|all)$")]


# Alerts -------------------------------------------------------------------------------------


@router.get("/alerts")
async def list_alerts(
    session: SessionDep,
    analyst: CurrentAnalyst,
    scope: Scope = "active",
    case_id: Annotated[int | None, Query(ge=1)] = None,
    before_id: Annotated[int | None, Query(ge=1)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> AlertPage:
    """The caller's alerts (and supervisors' shared ones), newest first."""
    now = utcnow()
    items = await get_alerts(
        session,
        analyst=analyst,
        now=now,
        scope=scope,
        case_id=case_id,
        limit=limit,
        before_id=before_id,
    )
    return AlertPage(
        items=[AlertOut.model_validate(a) for a in items],
        unread=await count_active(session, analyst=analyst, now=now),
    )


@router.get("/alerts/unread")
async def unread_alerts(session: SessionDep, analyst: CurrentAnalyst) -> dict[str, int]:
    return {"unread": await count_active(session, analyst=analyst, now=utcnow())}


@router.get("/alerts/kinds")
async def alert_kinds(session: SessionDep, _analyst: CurrentAnalyst) -> list[AlertKindOut]:
    """Every alert kind with its effective settings (defaults merged with an admin's)."""
    settings = await get_alert_settings(session)
    return [
        AlertKindOut(
            code=k.code,
            label=k.label,
            severity=k.severity,
            breach=k.breach,
            settings=settings.values[k.code],
        )
        for k in ALERT_KINDS.values()
    ]


@router.put("/alerts/kinds")
async def update_alert_kinds(
    session: SessionDep,
    admin: Admin,
    changes: Annotated[dict[str, dict[str, Any]], Body()],
) -> list[AlertKindOut]:
    """Change kinds' defaults, e.g. {"email_ignored": {"business_days": 5}} (admins)."""
    await do_update_alert_settings(session, changes=changes, analyst_id=admin.id)
    return await alert_kinds(session, admin)


@router.get("/alerts/preferences")
async def my_preferences(session: SessionDep, analyst: CurrentAnalyst) -> PreferencesOut:
    preference = await get_preferences(session, analyst_id=analyst.id)
    if preference is None:
        return PreferencesOut()
    return PreferencesOut(
        email_kinds=list((preference.email_kinds or {}).get("kinds") or []),
        quiet_start=preference.quiet_start,
        quiet_end=preference.quiet_end,
    )


@router.put("/alerts/preferences")
async def set_my_preferences(
    session: SessionDep, analyst: CurrentAnalyst, body: PreferencesIn
) -> PreferencesOut:
    """Which kinds reach me by e-mail (as a digest), and quiet hours."""
    await do_set_preferences(
        session,
        analyst_id=analyst.id,
        email_kinds=body.email_kinds,
        quiet_start=body.quiet_start,
        quiet_end=body.quiet_end,
    )
    return await my_preferences(session, analyst)


@router.get("/alerts/{alert_id}")
async def alert_detail(session: SessionDep, analyst: CurrentAnalyst, alert_id: PathId) -> AlertOut:
    return AlertOut.model_validate(await require_alert(session, alert_id=alert_id, analyst=analyst))


@router.post("/alerts/{alert_id}/acknowledge")
async def acknowledge_alert(
    session: SessionDep, analyst: CurrentAnalyst, alert_id: PathId
) -> AlertOut:
    return AlertOut.model_validate(
        await do_acknowledge(session, alert_id=alert_id, analyst=analyst)
    )


@router.post("/alerts/{alert_id}/snooze")
async def snooze_alert(
    session: SessionDep, analyst: CurrentAnalyst, alert_id: PathId, body: SnoozeIn
) -> AlertOut:
    """Hide it until `until` (or for `minutes`)."""
    now = utcnow()
    if (body.until is None) == (body.minutes is None):
        raise ValidationFailed("Informe `until` ou `minutes`.")
    until = body.until or now + dt.timedelta(minutes=body.minutes or 0)
    return AlertOut.model_validate(
        await do_snooze(session, alert_id=alert_id, analyst=analyst, until=until, now=now)
    )


@router.post("/alerts/{alert_id}/resolve")
async def resolve_alert(session: SessionDep, analyst: CurrentAnalyst, alert_id: PathId) -> AlertOut:
    return AlertOut.model_validate(await do_resolve(session, alert_id=alert_id, analyst=analyst))


# Ownership ----------------------------------------------------------------------------------


@router.put("/cases/{case_id}/assignee")
async def set_case_assignee(
    session: SessionDep, analyst: CurrentAnalyst, case_id: PathId, body: AssigneeIn
) -> AssigneeOut:
    """Make an analyst (or nobody: null) responsible for the case (supervisors)."""
    case = await do_assign_case(session, case_id=case_id, analyst_id=body.analyst_id, by=analyst)
    return AssigneeOut(case_id=case.id, assignee_id=case.assignee_id)


@router.put("/brands/{brand_id}/default-analyst")
async def set_brand_default_analyst(
    session: SessionDep, analyst: CurrentAnalyst, brand_id: PathId, body: AssigneeIn
) -> BrandDefaultOut:
    """The analyst new imported cases of the brand go to (null: round-robin) (supervisors)."""
    await do_set_brand_default_analyst(
        session, brand_id=brand_id, analyst_id=body.analyst_id, by=analyst
    )
    return BrandDefaultOut(brand_id=brand_id, analyst_id=body.analyst_id)


# Calendar -----------------------------------------------------------------------------------


async def _calendar_out(session: SessionDep) -> CalendarOut:
    calendar = await load_calendar(session)
    return CalendarOut(**calendar.describe(), open_now=calendar.is_open(utcnow()))


@router.get("/operations/calendar")
async def get_calendar(session: SessionDep, _analyst: CurrentAnalyst) -> CalendarOut:
    return await _calendar_out(session)


@router.put("/operations/calendar")
async def update_calendar(session: SessionDep, admin: Admin, body: CalendarIn) -> CalendarOut:
    """Change the time zone, shifts ("09:00-12:00,13:00-18:00"), days ("0,1,2,3,4"), state
    (UF) or the optional holidays observed (admins)."""
    await do_update_calendar(
        session, changes=body.model_dump(exclude_none=True), analyst_id=admin.id
    )
    return await _calendar_out(session)


@router.get("/operations/holidays")
async def list_holidays(session: SessionDep, _analyst: CurrentAnalyst) -> list[HolidayOut]:
    return [HolidayOut.model_validate(h) for h in await get_holidays(session)]


@router.post("/operations/holidays", status_code=201)
async def add_holiday(session: SessionDep, admin: Admin, body: HolidayIn) -> HolidayOut:
    return HolidayOut.model_validate(
        await do_add_holiday(session, day=body.day, name=body.name, analyst_id=admin.id)
    )


@router.delete("/operations/holidays/{day}", status_code=204)
async def remove_holiday(session: SessionDep, _admin: Admin, day: dt.date) -> None:
    if not await do_remove_holiday(session, day=day):
        raise NotFound("Feriado não encontrado.")


@router.post("/operations/run-due")
async def run_due(session: SessionDep, _admin: Admin, at: dt.datetime | None = None) -> RunDueOut:
    """One sweep of the time-based alerts now, or as if it were `at` (admins)."""
    if at is not None and at.tzinfo is None:
        raise ValidationFailed("Informe `at` com fuso horário (ex.: 2026-12-07T10:00-03:00).")
    moment = (at or utcnow()).astimezone(dt.UTC)
    result = await do_sweep(session, now=moment)
    return RunDueOut(at=moment, alerts_raised=result.raised)
