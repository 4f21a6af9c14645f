import asyncio

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from api.cases.lifecycle import CaseStatus
from api.cases.references import create_case_reference
from api.cases.service import do_change_status
from api.errors import IllegalTransition, PermissionDenied, ValidationFailed
from api.timeline.models import ActorKind, EntryKind, TimelineEntry
from api.timeline.service import Actor, get_case_timeline
from tests.factories import make_analyst, make_case

pytestmark = pytest.mark.integration


async def test_illegal_transition_is_refused_and_changes_nothing(session: AsyncSession) -> None:
    case = await make_case(session, status=CaseStatus.NOTIFICADO)
    before = await get_case_timeline(session, case_id=case.id)
    with pytest.raises(IllegalTransition):
        await do_change_status(
            session, case=case, target=CaseStatus.ACORDO_PROPOSTO, actor=Actor.bot()
        )
    assert case.status is CaseStatus.NOTIFICADO
    assert len(await get_case_timeline(session, case_id=case.id)) == len(before)


async def test_status_change_lands_on_the_timeline_with_the_analyst(session: AsyncSession) -> None:
    case = await make_case(session, status=CaseStatus.NOTIFICADO)
    analyst = await make_analyst(session)
    actor = Actor(ActorKind.ANALYST, analyst_id=analyst.id, name=analyst.name)
    await do_change_status(session, case=case, target=CaseStatus.EM_ATENDIMENTO, actor=actor)
    await session.commit()
    entries = await get_case_timeline(session, case_id=case.id)
    last = entries[-1]
    assert (last.kind, last.analyst_id, last.actor_name) == (
        EntryKind.STATUS_CHANGE,
        analyst.id,
        analyst.name,
    )
    assert last.data == {"from": "NOTIFICADO", "to": "EM_ATENDIMENTO", "reason": None}
    assert (await session.get(type(case), case.id)).status is CaseStatus.EM_ATENDIMENTO  # type: ignore[union-attr]


async def test_the_bot_cannot_mark_a_case_paid(session: AsyncSession) -> None:
    case = await make_case(session, status=CaseStatus.EM_NEGOCIACAO)
    analyst = await make_analyst(session)
    await do_change_status(session, case=case, target=CaseStatus.ACORDO_PROPOSTO, actor=Actor.bot())
    with pytest.raises(PermissionDenied):
        await do_change_status(
            session, case=case, target=CaseStatus.ACORDO_ASSINADO, actor=Actor.bot()
        )
    await do_change_status(
        session,
        case=case,
        target=CaseStatus.ACORDO_ASSINADO,
        actor=Actor(ActorKind.ANALYST, analyst_id=analyst.id, name=analyst.name),
    )
    await do_change_status(
        session, case=case, target=CaseStatus.AGUARDANDO_PAGAMENTO, actor=Actor.system()
    )
    with pytest.raises(PermissionDenied):
        await do_change_status(session, case=case, target=CaseStatus.PAGO, actor=Actor.bot())
    assert case.status is CaseStatus.AGUARDANDO_PAGAMENTO


async def test_closing_requires_a_reason(session: AsyncSession) -> None:
    case = await make_case(session, status=CaseStatus.DETECTADO)
    with pytest.raises(ValidationFailed):
        await do_change_status(
            session, case=case, target=CaseStatus.DESCARTADO, actor=Actor.system(), reason=" "
        )


async def test_case_references_are_unique_under_concurrency(engine: AsyncEngine) -> None:
    maker = async_sessionmaker(engine, expire_on_commit=False)
    year = 2091

    async def issue() -> str:
        async with maker() as s, s.begin():
            return await create_case_reference(s, year=year)

    refs = await asyncio.gather(*(issue() for _ in range(12)))
    assert len(set(refs)) == 12
    assert sorted(refs) == [f"INF-{year}-{n:06d}" for n in range(1, 13)]
    async with maker() as s, s.begin():
        await s.execute(sa.text("DELETE FROM case_ref_counters WHERE year = :y"), {"y": year})


async def test_timeline_entry_cannot_be_changed_or_deleted_by_the_orm(
    session: AsyncSession,
) -> None:
    case = await make_case(session)
    entry = (await get_case_timeline(session, case_id=case.id))[0]
    entry.summary = "rewritten history"
    with pytest.raises(Exception, match="não pode ser alterada"):
        await session.flush()
    await session.rollback()

    case = await make_case(session)
    entry = (await get_case_timeline(session, case_id=case.id))[0]
    await session.delete(entry)
    with pytest.raises(Exception, match="não pode ser apagada"):
        await session.flush()


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE timeline_entries SET summary = 'x' WHERE id = :id",
        "DELETE FROM timeline_entries WHERE id = :id",
    ],
)
async def test_the_database_refuses_timeline_updates_and_deletes(
    session: AsyncSession, statement: str
) -> None:
    case = await make_case(session)
    entry_id = (await get_case_timeline(session, case_id=case.id))[0].id
    with pytest.raises(sa.exc.DBAPIError, match="append-only"):
        async with session.begin_nested():
            await session.execute(sa.text(statement), {"id": entry_id})
    still = await session.scalar(
        sa.select(TimelineEntry.summary).where(TimelineEntry.id == entry_id)
    )
    assert still is not None and still != "x"
