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
from api.identifiers.documents import Document, find_documents

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


@dataclass(frozen=True)
class MatchClues:
    """What the rules look up, read from a mail's text (pure and CPU-bound: an initial sync
    computes it in its parse workers, api/channels/email/prepare.py)."""

    subject_refs: tuple[str, ...]
    body_refs: tuple[str, ...]
    url_variants: dict[str, str]  # every spelling a listing may be stored under → the URL
    documents: dict[str, Document]


def clues_of(parsed: ParsedEmail) -> MatchClues:
    urls = list(dict.fromkeys(url for url, _, _ in find_urls(parsed.text)))[:_MAX_URLS]
    return MatchClues(
        subject_refs=tuple(dict.fromkeys(ref for ref, _, _ in find_case_refs(parsed.subject))),
        body_refs=tuple(dict.fromkeys(ref for ref, _, _ in find_case_refs(parsed.text)))[:10],
        url_variants={variant: url for url in urls for variant in url_variants(url)},
        documents={doc.value: doc for doc, _, _ in find_documents(parsed.text)},
    )


async def match_email(session: AsyncSession, parsed: ParsedEmail) -> MatchResult:
    """Apply the rules in order; a unique answer wins, ambiguity becomes suggestions."""
    return (await match_emails(session, [parsed]))[0]


async def match_emails(
    session: AsyncSession,
    batch: Sequence[ParsedEmail],
    clues: Sequence[MatchClues] | None = None,
) -> list[MatchResult]:
    """`match_email` for a batch of mails in one query per rule (not one per rule and mail): each
    rule is asked only about the mails no earlier rule decided, so every mail gets exactly the
    answer it would get alone. The mails must not depend on each other (the ingestion cuts a
    batch where one answers another or shares its sender)."""
    found_clues = list(clues) if clues is not None else [clues_of(parsed) for parsed in batch]
    pending: list[list[Candidate]] = [[] for _ in batch]
    results: list[MatchResult | None] = [None] * len(batch)
    rules = (
        _by_thread,
        _by_subject_reference,
        _by_sender_address,
        _by_sender_domain,
        _by_listing_urls,
        _by_documents,
    )
    for rule in rules:
        open_ = [i for i, result in enumerate(results) if result is None]
        if not open_:
            break
        answers = await rule(session, [batch[i] for i in open_], [found_clues[i] for i in open_])
        for i, answer in zip(open_, answers, strict=True):
            found = _distinct(answer)
            decisive = [c for c in found if c.decisive]
            if len(decisive) == 1:
                results[i] = MatchResult(
                    case_id=decisive[0].case_id, rule=decisive[0].rule, reason=decisive[0].reason
                )
                continue
            penalty = AMBIGUITY_PENALTY if len(decisive) > 1 else 1.0
            pending[i].extend(
                Candidate(c.case_id, c.rule, round(c.score * penalty, 3), c.reason, decisive=False)
                for c in found
            )
    open_ = [i for i, result in enumerate(results) if result is None]
    if open_:
        undecided, their = [batch[i] for i in open_], [found_clues[i] for i in open_]
        by_reference = await _by_body_reference(session, undecided, their)
        by_name = await _by_sender_name(session, undecided, their)
        for i, body, name in zip(open_, by_reference, by_name, strict=True):
            results[i] = MatchResult(case_id=None, suggestions=rank([*pending[i], *body, *name]))
    return [result for result in results if result is not None]


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


async def _by_thread(
    session: AsyncSession, batch: Sequence[ParsedEmail], clues: Sequence[MatchClues]
) -> list[list[Candidate]]:
    ids = list(dict.fromkeys(i for parsed in batch for i in parsed.thread_ids))
    if not ids:
        return [[] for _ in batch]
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
    found: list[list[Candidate]] = []
    for parsed in batch:
        # The nearest message of the thread decides; older ones only matter when it has no case.
        answer: list[Candidate] = []
        for message_id in parsed.thread_ids:
            direction, case_id = known.get(message_id, (None, None))
            if case_id is not None:
                who = "enviada por nós" if direction is Direction.OUTBOUND else "recebida"
                reason = f"resposta à mensagem {who}"
                answer = [Candidate(case_id, "thread", RULE_SCORES["thread"], reason)]
                break
        found.append(answer)
    return found


async def _by_subject_reference(
    session: AsyncSession, batch: Sequence[ParsedEmail], clues: Sequence[MatchClues]
) -> list[list[Candidate]]:
    refs = [c.subject_refs for c in clues]
    cases = await _cases_by_reference(session, [ref for each in refs for ref in each])
    score = RULE_SCORES["subject_reference"]
    return [
        [
            Candidate(case_id, "subject_reference", score, f"{ref} no assunto")
            for ref, case_id in cases
            if ref in each
        ]
        for each in refs
    ]


async def _by_body_reference(
    session: AsyncSession, batch: Sequence[ParsedEmail], clues: Sequence[MatchClues]
) -> list[list[Candidate]]:
    refs = [c.body_refs for c in clues]
    cases = await _cases_by_reference(session, [ref for each in refs for ref in each])
    score = RULE_SCORES["body_reference"]
    return [
        [
            Candidate(case_id, "body_reference", score, f"{ref} no texto")
            for ref, case_id in cases
            if ref in each
        ]
        for each in refs
    ]


async def _cases_by_reference(session: AsyncSession, refs: list[str]) -> list[tuple[str, int]]:
    if not refs:
        return []
    rows = await session.execute(
        sa.select(Case.reference, Case.id).where(Case.reference.in_(list(dict.fromkeys(refs))))
    )
    return [(reference, case_id) for reference, case_id in rows.all()]


async def _by_sender_address(
    session: AsyncSession, batch: Sequence[ParsedEmail], clues: Sequence[MatchClues]
) -> list[list[Candidate]]:
    addresses = list(dict.fromkeys(p.from_address for p in batch if p.from_address))
    if not addresses:
        return [[] for _ in batch]
    rows = await session.execute(
        sa.select(ContactPoint.value, ContactPoint.infringer_id).where(
            ContactPoint.kind == ContactKind.EMAIL, ContactPoint.value.in_(addresses)
        )
    )
    infringers = {value: infringer_id for value, infringer_id in rows.all()}
    cases = await _CaseIndex.load(session, [i for i in infringers.values() if i is not None])
    found: list[list[Candidate]] = []
    for parsed in batch:
        infringer_id = infringers.get(parsed.from_address or "")
        if infringer_id is None:
            found.append([])
            continue
        reason = f"remetente {parsed.from_address} conhecido"
        found.append(cases.candidates([infringer_id], "sender_address", reason))
    return found


async def _by_sender_domain(
    session: AsyncSession, batch: Sequence[ParsedEmail], clues: Sequence[MatchClues]
) -> list[list[Candidate]]:
    domains = [_domain(p) for p in batch]
    wanted = list(dict.fromkeys(d for d in domains if d is not None))
    if not wanted:
        return [[] for _ in batch]
    rows = await session.execute(
        sa.select(ContactPoint.value, ContactPoint.infringer_id).where(
            ContactPoint.kind == ContactKind.EMAIL_DOMAIN,
            ContactPoint.value.in_(wanted),
            ContactPoint.infringer_id.is_not(None),
        )
    )
    by_domain: dict[str, list[int]] = {}
    for value, infringer_id in rows.all():
        if infringer_id is not None:
            by_domain.setdefault(value, []).append(infringer_id)
    cases = await _CaseIndex.load(session, [i for ids in by_domain.values() for i in ids])
    return [
        []
        if domain is None
        else cases.candidates(
            by_domain.get(domain, []), "sender_domain", f"domínio {domain} notificado"
        )
        for domain in domains
    ]


def _domain(parsed: ParsedEmail) -> str | None:
    if not parsed.from_address or "@" not in parsed.from_address:
        return None
    domain = parsed.from_address.rsplit("@", 1)[1]
    return None if domain in FREE_MAIL_DOMAINS else domain


async def _by_listing_urls(
    session: AsyncSession, batch: Sequence[ParsedEmail], clues: Sequence[MatchClues]
) -> list[list[Candidate]]:
    wanted = [c.url_variants for c in clues]
    every = list(dict.fromkeys(v for variants in wanted for v in variants))
    if not every:
        return [[] for _ in batch]
    rows = (
        await session.execute(sa.select(Listing.case_id, Listing.url).where(Listing.url.in_(every)))
    ).all()
    score = RULE_SCORES["listing_url"]
    return [
        [
            Candidate(case_id, "listing_url", score, f"anúncio {url} no texto")
            for case_id, url in rows
            if url in variants
        ]
        for variants in wanted
    ]


async def _by_documents(
    session: AsyncSession, batch: Sequence[ParsedEmail], clues: Sequence[MatchClues]
) -> list[list[Candidate]]:
    wanted = [c.documents for c in clues]
    every = list(dict.fromkeys(value for documents in wanted for value in documents))
    if not every:
        return [[] for _ in batch]
    rows = (
        await session.execute(
            sa.select(Infringer.id, Infringer.document).where(Infringer.document.in_(every))
        )
    ).all()
    cases = await _CaseIndex.load(session, [infringer_id for infringer_id, _ in rows])
    found: list[list[Candidate]] = []
    for documents in wanted:
        answer: list[Candidate] = []
        for infringer_id, value in rows:
            if value is None or value not in documents:
                continue
            label = f"{documents[value].kind.upper()} {documents[value].formatted} no texto"
            answer.extend(cases.candidates([infringer_id], "document", label))
        found.append(answer)
    return found


async def _by_sender_name(
    session: AsyncSession, batch: Sequence[ParsedEmail], clues: Sequence[MatchClues]
) -> list[list[Candidate]]:
    names = [" ".join((p.from_name or "").split()) for p in batch]
    wanted = list(dict.fromkeys(n.lower() for n in names if len(n.split()) >= 2))
    if not wanted:
        return [[] for _ in batch]
    lowered = sa.func.lower(Infringer.name)
    rows = (
        await session.execute(sa.select(Infringer.id, lowered).where(lowered.in_(wanted)))
    ).all()
    by_name: dict[str, list[int]] = {}
    for infringer_id, name in rows:
        if len(by_name.setdefault(name, [])) < 5:
            by_name[name].append(infringer_id)
    cases = await _CaseIndex.load(session, [i for ids in by_name.values() for i in ids])
    return [
        []
        if len(name.split()) < 2
        else cases.candidates(
            by_name.get(name.lower(), []), "sender_name", f"nome do remetente “{name}”"
        )
        for name in names
    ]


@dataclass(frozen=True)
class _CaseIndex:
    """The cases of some infringers, newest first, read in one query for a whole batch."""

    rows: Sequence[tuple[int, int, CaseStatus]]

    @classmethod
    async def load(cls, session: AsyncSession, infringer_ids: Sequence[int]) -> _CaseIndex:
        if not infringer_ids:
            return cls(())
        rows = await session.execute(
            sa.select(Case.id, Case.infringer_id, Case.status)
            .where(Case.infringer_id.in_(list(dict.fromkeys(infringer_ids))))
            .order_by(Case.id.desc())
        )
        return cls(tuple((c, i, s) for c, i, s in rows.all()))

    def candidates(self, infringer_ids: Sequence[int], rule: str, reason: str) -> list[Candidate]:
        """The newest open case of each infringer (as identification does); an infringer with
        only closed cases yields a weaker candidate, never a match."""
        wanted = set(infringer_ids)
        newest_open: dict[int, int] = {}
        newest_any: dict[int, int] = {}
        for case_id, infringer_id, status in self.rows:
            if infringer_id not in wanted:
                continue
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
