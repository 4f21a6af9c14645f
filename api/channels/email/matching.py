"""Which case an inbound e-mail belongs to, and the unmatched queue an analyst works when no rule
decides.

Rules, strongest first; the first that points at exactly one case wins:
1. thread: In-Reply-To and every References id against the Message-IDs we sent and received;
2. the case reference in the subject ([INF-2026-000123]);
3. the sender's address (a known contact of an infringer);
4. the sender's domain among notified company domains (never a free-mail domain);
5. listing URLs in the body (our quoted notice usually carries them);
6. CPF/CNPJ in the body.
A rule that points at several cases turns them into suggestions; when nothing decides, the
suggestions (plus weaker hints: a reference quoted in the body, the sender's display name) are
ranked and stored for an analyst to confirm or reject in one call.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from api.cases.lifecycle import OPEN_STATUSES, CaseStatus
from api.cases.models import Case, Listing
from api.channels.email.parser import ParsedEmail
from api.contacts.models import ContactKind, ContactPoint, Infringer
from api.contacts.service import FREE_MAIL_DOMAINS
from api.conversations.models import Channel, Conversation, Direction, Message
from api.identifiers.case_ref import find_case_refs
from api.identifiers.contact import find_urls
from api.identifiers.documents import find_documents

# Weight of each rule when its evidence only suggests (ambiguous or weak).
RULE_SCORES: dict[str, float] = {
    "thread": 1.0,
    "subject_reference": 0.95,
    "sender_address": 0.9,
    "sender_domain": 0.8,
    "listing_url": 0.75,
    "document": 0.75,
    "body_reference": 0.7,
    "sender_name": 0.4,
}
AMBIGUITY_PENALTY = 0.8  # a rule that points at several cases is weaker evidence for each
MAX_SUGGESTIONS = 5
_MAX_URLS = 30
_ENGAGE_FROM = (CaseStatus.NOTIFICADO, CaseStatus.SEM_RESPOSTA)


@dataclass(frozen=True)
class Candidate:
    case_id: int
    rule: str
    score: float
    reason: str
    # False for hints that never decide alone (a closed case, a quoted reference).
    decisive: bool = True


@dataclass(frozen=True)
class MatchResult:
    case_id: int | None
    rule: str | None = None
    reason: str | None = None
    suggestions: tuple[Candidate, ...] = field(default=())


async def match_email(session: AsyncSession, parsed: ParsedEmail) -> MatchResult:
    """Apply the rules in order; a unique answer wins, ambiguity becomes suggestions."""
    pending: list[Candidate] = []
    rules = (
        _by_thread,
        _by_subject_reference,
        _by_sender_address,
        _by_sender_domain,
        _by_listing_urls,
        _by_documents,
    )
    for rule in rules:
        found = _distinct(await rule(session, parsed))
        decisive = [c for c in found if c.decisive]
        if len(decisive) == 1:
            return MatchResult(
                case_id=decisive[0].case_id, rule=decisive[0].rule, reason=decisive[0].reason
            )
        penalty = AMBIGUITY_PENALTY if len(decisive) > 1 else 1.0
        pending.extend(
            Candidate(c.case_id, c.rule, round(c.score * penalty, 3), c.reason, decisive=False)
            for c in found
        )
    pending.extend(await _by_body_reference(session, parsed))
    pending.extend(await _by_sender_name(session, parsed))
    return MatchResult(case_id=None, suggestions=rank(pending))


def rank(candidates: Iterable[Candidate]) -> tuple[Candidate, ...]:
    """One suggestion per case: its best evidence, a little more for each further rule."""
    by_case: dict[int, list[Candidate]] = {}
    for candidate in candidates:
        by_case.setdefault(candidate.case_id, []).append(candidate)
    ranked: list[Candidate] = []
    for case_id, found in by_case.items():
        found.sort(key=lambda c: c.score, reverse=True)
        rules = list(dict.fromkeys(c.rule for c in found))
        score = min(0.99, found[0].score + 0.05 * (len(rules) - 1))
        reason = "; ".join(dict.fromkeys(c.reason for c in found))[:300]
        ranked.append(Candidate(case_id, "+".join(rules)[:32], round(score, 3), reason))
    ranked.sort(key=lambda c: (-c.score, c.case_id))
    return tuple(ranked[:MAX_SUGGESTIONS])


def _distinct(candidates: Sequence[Candidate]) -> list[Candidate]:
    seen: dict[int, Candidate] = {}
    for candidate in candidates:
        seen.setdefault(candidate.case_id, candidate)
    return list(seen.values())


async def _by_thread(session: AsyncSession, parsed: ParsedEmail) -> list[Candidate]:
    ids = parsed.thread_ids
    if not ids:
        return []
    rows = (
        await session.execute(
            sa.select(
                Message.provider_id,
                Message.direction,
                sa.func.coalesce(Message.case_id, Conversation.case_id),
            )
            .join(Conversation, Conversation.id == Message.conversation_id)
            .where(Message.channel == Channel.EMAIL, Message.provider_id.in_(ids))
        )
    ).all()
    known = {provider_id: (direction, case_id) for provider_id, direction, case_id in rows}
    # The nearest message of the thread decides; older ones only matter when it has no case.
    for message_id in ids:
        direction, case_id = known.get(message_id, (None, None))
        if case_id is not None:
            who = "enviada por nós" if direction is Direction.OUTBOUND else "recebida"
            return [
                Candidate(case_id, "thread", RULE_SCORES["thread"], f"resposta à mensagem {who}")
            ]
    return []


async def _by_subject_reference(session: AsyncSession, parsed: ParsedEmail) -> list[Candidate]:
    refs = list(dict.fromkeys(ref for ref, _, _ in find_case_refs(parsed.subject)))
    return [
        Candidate(
            case_id, "subject_reference", RULE_SCORES["subject_reference"], f"{ref} no assunto"
        )
        for ref, case_id in await _cases_by_reference(session, refs)
    ]


async def _by_body_reference(session: AsyncSession, parsed: ParsedEmail) -> list[Candidate]:
    refs = list(dict.fromkeys(ref for ref, _, _ in find_case_refs(parsed.text)))[:10]
    return [
        Candidate(case_id, "body_reference", RULE_SCORES["body_reference"], f"{ref} no texto")
        for ref, case_id in await _cases_by_reference(session, refs)
    ]


async def _cases_by_reference(session: AsyncSession, refs: list[str]) -> list[tuple[str, int]]:
    if not refs:
        return []
    rows = await session.execute(sa.select(Case.reference, Case.id).where(Case.reference.in_(refs)))
    return [(reference, case_id) for reference, case_id in rows.all()]


async def _by_sender_address(session: AsyncSession, parsed: ParsedEmail) -> list[Candidate]:
    if not parsed.from_address:
        return []
    infringer_id = await session.scalar(
        sa.select(ContactPoint.infringer_id).where(
            ContactPoint.kind == ContactKind.EMAIL, ContactPoint.value == parsed.from_address
        )
    )
    if infringer_id is None:
        return []
    return await _infringer_cases(
        session, [infringer_id], "sender_address", f"remetente {parsed.from_address} conhecido"
    )


async def _by_sender_domain(session: AsyncSession, parsed: ParsedEmail) -> list[Candidate]:
    if not parsed.from_address or "@" not in parsed.from_address:
        return []
    domain = parsed.from_address.rsplit("@", 1)[1]
    if domain in FREE_MAIL_DOMAINS:
        return []
    infringer_ids = (
        await session.scalars(
            sa.select(ContactPoint.infringer_id).where(
                ContactPoint.kind == ContactKind.EMAIL_DOMAIN,
                ContactPoint.value == domain,
                ContactPoint.infringer_id.is_not(None),
            )
        )
    ).all()
    ids = [i for i in infringer_ids if i is not None]
    return await _infringer_cases(session, ids, "sender_domain", f"domínio {domain} notificado")


async def _by_listing_urls(session: AsyncSession, parsed: ParsedEmail) -> list[Candidate]:
    urls = list(dict.fromkeys(url for url, _, _ in find_urls(parsed.text)))[:_MAX_URLS]
    variants = {variant: url for url in urls for variant in url_variants(url)}
    if not variants:
        return []
    rows = await session.execute(
        sa.select(Listing.case_id, Listing.url).where(Listing.url.in_(list(variants)))
    )
    return [
        Candidate(case_id, "listing_url", RULE_SCORES["listing_url"], f"anúncio {url} no texto")
        for case_id, url in rows.all()
    ]


async def _by_documents(session: AsyncSession, parsed: ParsedEmail) -> list[Candidate]:
    documents = {doc.value: doc for doc, _, _ in find_documents(parsed.text)}
    if not documents:
        return []
    rows = await session.execute(
        sa.select(Infringer.id, Infringer.document).where(Infringer.document.in_(list(documents)))
    )
    found: list[Candidate] = []
    for infringer_id, value in rows.all():
        if value is None:
            continue
        label = f"{documents[value].kind.upper()} {documents[value].formatted} no texto"
        found.extend(await _infringer_cases(session, [infringer_id], "document", label))
    return found


async def _by_sender_name(session: AsyncSession, parsed: ParsedEmail) -> list[Candidate]:
    name = " ".join((parsed.from_name or "").split())
    if len(name.split()) < 2:
        return []
    infringer_ids = (
        await session.scalars(
            sa.select(Infringer.id).where(sa.func.lower(Infringer.name) == name.lower()).limit(5)
        )
    ).all()
    return await _infringer_cases(
        session, list(infringer_ids), "sender_name", f"nome do remetente “{name}”"
    )


async def _infringer_cases(
    session: AsyncSession, infringer_ids: Sequence[int], rule: str, reason: str
) -> list[Candidate]:
    """The newest open case of each infringer (as identification does); an infringer with only
    closed cases yields a weaker candidate, never a match."""
    if not infringer_ids:
        return []
    rows = await session.execute(
        sa.select(Case.id, Case.infringer_id, Case.status)
        .where(Case.infringer_id.in_(list(infringer_ids)))
        .order_by(Case.id.desc())
    )
    newest_open: dict[int, int] = {}
    newest_any: dict[int, int] = {}
    for case_id, infringer_id, status in rows.all():
        newest_any.setdefault(infringer_id, case_id)
        if status in OPEN_STATUSES:
            newest_open.setdefault(infringer_id, case_id)
    score = RULE_SCORES[rule]
    found = [Candidate(case_id, rule, score, reason) for case_id in newest_open.values()]
    closed = [
        Candidate(case_id, rule, round(score * 0.5, 3), f"{reason} (caso encerrado)", False)
        for infringer_id, case_id in newest_any.items()
        if infringer_id not in newest_open
    ]
    return found + closed


def url_variants(url: str) -> list[str]:
    """The spellings a listing URL may be stored under: scheme, "www.", trailing slash; the query
    string and fragment dropped (tracking parameters)."""
    candidate = url.strip()
    if "://" not in candidate:
        candidate = f"https://{candidate}"
    try:
        parts = urlsplit(candidate)
        host = (parts.hostname or "").lower()
    except ValueError:
        return []
    if not host:
        return []
    bare = host.removeprefix("www.")
    path = parts.path.rstrip("/")
    variants = [url.strip()]
    for scheme in ("https", "http"):
        for name in (bare, f"www.{bare}"):
            for tail in (path, f"{path}/"):
                variants.append(f"{scheme}://{name}{tail}")
    return list(dict.fromkeys(variants))
