"""The cases list: one search box that understands what an analyst types (a case reference, a
CPF/CNPJ with or without punctuation, a phone in any form — with or without the ninth digit —,
an e-mail address, a piece of a listing URL, a name), filters, sorting and pages.

Each kind of term is matched through an index: the reference and the document by equality,
phones and addresses through `contact_points` (unique on kind, value), names, URLs and partial
addresses by ILIKE, which PostgreSQL answers from trigram indexes (migration 0013)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload

from api.analysts.models import Analyst
from api.brands.models import Brand
from api.cases.lifecycle import OPEN_STATUSES, CaseStatus
from api.cases.models import Case, Listing
from api.cases.tags import CaseTag, get_all_tags, get_tags_of_cases
from api.contacts.models import ContactKind, ContactPoint, Infringer
from api.conversations.models import Channel, Conversation
from api.identifiers.case_ref import parse_case_ref
from api.identifiers.contact import normalize_email
from api.identifiers.documents import only_document_chars, parse_document
from api.identifiers.errors import InvalidIdentifier
from api.identifiers.phones import normalize_phone, phone_variants
from api.operations.models import Alert

PAGE_SIZES = (25, 50, 100)
MIN_PARTIAL = 3  # shorter pieces would match half the database
# "2026-0001", "INF-2026-00": a piece of a case reference (other text is not looked up in
# references, which have no trigram index).
_REFERENCE_PIECE = re.compile(r"^(inf)?[-\s]?\d[\d-]*$", re.IGNORECASE)
# Counting every match of a very broad term costs more than the page itself: count up to this.
COUNT_CAP = 1000
_URL_HINT = re.compile(r"^(https?://|www\.)|\.[a-z]{2,}(/|$)", re.IGNORECASE)


class Sort:
    """Sort keys the list accepts (URL value → column), newest first by default."""

    KEYS: dict[str, str] = {
        "recentes": "Mais recentes",
        "antigos": "Mais antigos",
        "referencia": "Referência",
        "prazo": "Prazo de resposta",
        "acompanhamento": "Acompanhamento",
        "status": "Status",
        "nome": "Nome do infrator",
    }


@dataclass(frozen=True)
class CaseQuery:
    text: str = ""
    statuses: tuple[CaseStatus, ...] = ()
    brand_id: int | None = None
    channel: Channel | None = None
    assignee_id: int | None = None
    tag: str | None = None
    follow_up_due: bool = False
    deadline_passed: bool = False
    open_alerts: bool = False
    sort: str = "recentes"
    descending: bool = True
    page: int = 1
    per_page: int = 25


@dataclass(frozen=True)
class CaseRow:
    case: Case
    tags: Sequence[str]
    channels: Sequence[Channel]
    assignee: str | None = None


@dataclass(frozen=True)
class CasePage:
    rows: Sequence[CaseRow]
    total: int
    page: int
    per_page: int
    understood: Sequence[str] = field(default_factory=tuple)
    # More than COUNT_CAP matched: `total` is the cap ("mais de 1000").
    capped: bool = False

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _contact_cases(values: Sequence[str], kind: ContactKind) -> sa.Select[Any]:
    infringers = sa.select(ContactPoint.infringer_id).where(
        ContactPoint.kind == kind, ContactPoint.value.in_(list(values))
    )
    return sa.select(Case.id).where(Case.infringer_id.in_(infringers))


def _infringer_cases(condition: sa.ColumnElement[bool]) -> sa.Select[Any]:
    return sa.select(Case.id).where(Case.infringer_id.in_(sa.select(Infringer.id).where(condition)))


def _listing_cases(pattern: str) -> sa.Select[Any]:
    return sa.select(Listing.case_id).where(Listing.url.ilike(pattern, escape="\\"))


def search_matches(text: str) -> tuple[list[sa.Select[Any]], list[str]]:
    """The ways a typed term can match a case, each a query of case ids (any of them), and
    how the term was read. Each one is answered by an index; the caller joins them with a
    UNION (an OR across tables made PostgreSQL scan every case)."""
    term = text.strip()
    if not term:
        return [], []
    matches: list[sa.Select[Any]] = []
    understood: list[str] = []
    try:
        reference = parse_case_ref(term)
    except InvalidIdentifier:
        pass
    else:
        matches.append(sa.select(Case.id).where(Case.reference == reference))
        understood.append(f"referência {reference}")
    try:
        document = parse_document(term)
    except InvalidIdentifier:
        pass
    else:
        matches.append(_infringer_cases(Infringer.document == document.value))
        understood.append(f"{document.kind.upper()} {document.formatted}")
    if "@" in term:
        try:
            address = normalize_email(term)
        except InvalidIdentifier:
            address = None
        if address is not None:
            matches.append(_contact_cases([address], ContactKind.EMAIL))
            understood.append(f"e-mail {address}")
        elif len(term) >= MIN_PARTIAL:
            matches.append(
                sa.select(Case.id).where(
                    Case.infringer_id.in_(
                        sa.select(ContactPoint.infringer_id).where(
                            ContactPoint.kind == ContactKind.EMAIL,
                            ContactPoint.value.ilike(_like(term.lower()), escape="\\"),
                        )
                    )
                )
            )
            understood.append("parte de e-mail")
        return matches, understood
    if any(c.isdigit() for c in term) and not any(c.isalpha() for c in term):
        try:
            phones = phone_variants(normalize_phone(term))
        except InvalidIdentifier:
            phones = []
        if phones:
            matches.append(_contact_cases(phones, ContactKind.PHONE))
            understood.append("telefone " + " ou ".join(phones))
        digits = only_document_chars(term)
        if not phones and len(digits) >= 6 and not matches:
            # A piece of a number: a phone's tail.
            matches.append(
                sa.select(Case.id).where(
                    Case.infringer_id.in_(
                        sa.select(ContactPoint.infringer_id).where(
                            ContactPoint.kind == ContactKind.PHONE,
                            ContactPoint.value.like(_like(digits), escape="\\"),
                        )
                    )
                )
            )
            understood.append("parte de telefone")
    if _URL_HINT.search(term) and " " not in term:
        piece = re.sub(r"^https?://(www\.)?", "", term, flags=re.IGNORECASE).rstrip("/")
        if len(piece) >= MIN_PARTIAL:
            matches.append(_listing_cases(_like(piece)))
            understood.append("anúncio (URL)")
    if not matches and len(term) >= MIN_PARTIAL:
        pattern = _like(term)
        matches.append(_infringer_cases(Infringer.name.ilike(pattern, escape="\\")))
        understood.append("nome")
        if _REFERENCE_PIECE.match(term):
            matches.append(sa.select(Case.id).where(Case.reference.ilike(pattern, escape="\\")))
            understood.append("parte da referência")
        if " " not in term:
            matches.append(_listing_cases(pattern))
            understood.append("parte da URL de um anúncio")
    return matches, understood


def _order(query: CaseQuery) -> list[Any]:
    def direction(column: Any) -> Any:
        return column.desc().nulls_last() if query.descending else column.asc().nulls_last()

    match query.sort:
        case "antigos":
            return [Case.created_at.asc(), Case.id.asc()]
        case "referencia":
            return [direction(Case.reference)]
        case "prazo":
            return [direction(Case.response_deadline), Case.id.desc()]
        case "acompanhamento":
            return [direction(Case.follow_up_on), Case.id.desc()]
        case "status":
            return [direction(Case.status), Case.id.desc()]
        case "nome":
            # Names are never null: a plain order walks the name index (nulls_last would not).
            if query.descending:
                return [Infringer.name.desc(), Case.id.desc()]
            return [Infringer.name.asc(), Case.id.asc()]
        case _:
            return [Case.created_at.desc(), Case.id.desc()]


def filter_conditions(
    query: CaseQuery, *, today: dt.date
) -> tuple[list[sa.ColumnElement[bool]], list[str]]:
    conditions: list[sa.ColumnElement[bool]] = []
    matches, understood = search_matches(query.text)
    if query.text.strip() and not matches:
        conditions.append(sa.false())
    elif len(matches) == 1:
        conditions.append(Case.id.in_(matches[0]))
    elif matches:
        conditions.append(Case.id.in_(sa.union(*matches)))
    if query.statuses:
        conditions.append(Case.status.in_(list(query.statuses)))
    if query.brand_id is not None:
        conditions.append(Case.brand_id == query.brand_id)
    if query.channel is not None:
        conditions.append(
            sa.exists().where(
                Conversation.case_id == Case.id, Conversation.channel == query.channel
            )
        )
    if query.assignee_id is not None:
        conditions.append(Case.assignee_id == query.assignee_id)
    if query.open_alerts:
        conditions.append(sa.exists().where(Alert.case_id == Case.id, Alert.state != "resolved"))
    if query.tag:
        conditions.append(sa.exists().where(CaseTag.case_id == Case.id, CaseTag.tag == query.tag))
    if query.follow_up_due:
        conditions.append(Case.follow_up_on <= today)
    if query.deadline_passed:
        conditions.append(Case.response_deadline < today)
        conditions.append(Case.status.in_(sorted(OPEN_STATUSES)))
    return conditions, understood


async def search_cases(
    session: AsyncSession, *, query: CaseQuery, today: dt.date | None = None
) -> CasePage:
    """One page of cases for the list, with the total, the tags and channels of each row."""
    today = today or dt.date.today()
    conditions, understood = filter_conditions(query, today=today)
    per_page = query.per_page if query.per_page in PAGE_SIZES else PAGE_SIZES[0]
    page = max(1, query.page)
    needs_infringer = query.sort == "nome"
    base = sa.select(Case.id).where(*conditions)
    if needs_infringer:
        base = base.join(Infringer, Infringer.id == Case.infringer_id)
    ids = list(
        await session.scalars(
            base.order_by(*_order(query)).offset((page - 1) * per_page).limit(per_page)
        )
    )
    capped = False
    if page == 1 and len(ids) < per_page:
        total = len(ids)
    else:
        bounded = sa.select(Case.id).where(*conditions).limit(COUNT_CAP + 1).subquery()
        total = int(await session.scalar(sa.select(sa.func.count()).select_from(bounded)) or 0)
        if total > COUNT_CAP:
            total, capped = COUNT_CAP, True
    if not ids:
        return CasePage((), total, page, per_page, tuple(understood), capped)
    cases = {
        c.id: c
        for c in await session.scalars(
            sa.select(Case)
            .where(Case.id.in_(ids))
            .options(joinedload(Case.brand), joinedload(Case.infringer))
        )
    }
    tags = await get_tags_of_cases(session, case_ids=ids)
    channels: dict[int, set[Channel]] = {}
    for case_id, channel in (
        await session.execute(
            sa.select(Conversation.case_id, Conversation.channel)
            .where(Conversation.case_id.in_(ids))
            .distinct()
        )
    ).all():
        if case_id is not None:
            channels.setdefault(case_id, set()).add(channel)
    assignee_ids = {c.assignee_id for c in cases.values() if c.assignee_id is not None}
    names: dict[int, str] = {}
    if assignee_ids:
        names = {
            analyst_id: name
            for analyst_id, name in await session.execute(
                sa.select(Analyst.id, Analyst.name).where(Analyst.id.in_(assignee_ids))
            )
        }
    rows = [
        CaseRow(
            cases[i],
            tags.get(i, []),
            sorted(channels.get(i, set())),
            names.get(cases[i].assignee_id or 0),
        )
        for i in ids
        if i in cases
    ]
    return CasePage(rows, total, page, per_page, tuple(understood), capped)


@dataclass(frozen=True)
class ListOptions:
    """What the list's filters offer."""

    brands: Sequence[Brand]
    analysts: Sequence[Analyst]
    tags: Sequence[str]
    can_assign: bool


async def get_list_options(session: AsyncSession) -> ListOptions:
    brands = (await session.scalars(sa.select(Brand).order_by(Brand.name))).all()
    analysts = (
        await session.scalars(
            sa.select(Analyst).where(Analyst.active.is_(True)).order_by(Analyst.name)
        )
    ).all()
    return ListOptions(
        brands=brands,
        analysts=analysts,
        tags=await get_all_tags(session),
        can_assign=True,
    )
