"""Importing cases from a detection tool's CSV export: validate every row, upsert the good ones."""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from api.brands.models import Brand
from api.cases.models import Case, Listing
from api.cases.references import (
    create_case_reference,
    do_reserve_case_reference,
    do_reserve_case_references,
)
from api.contacts.models import ContactKind, ContactPoint, Infringer, InfringerKind
from api.contacts.service import FREE_MAIL_DOMAINS, get_contact_point, get_contact_points
from api.db import utcnow
from api.errors import AppError
from api.identifiers.case_ref import parse_case_ref
from api.identifiers.contact import (
    canonical_marketplace,
    email_domain,
    marketplace_from_url,
    normalize_email,
)
from api.identifiers.documents import Document, parse_document
from api.identifiers.errors import InvalidIdentifier
from api.identifiers.money import parse_amount
from api.identifiers.phones import normalize_phone, phone_variants
from api.operations.ownership import do_assign_on_import
from api.timeline.models import EntryKind
from api.timeline.service import Actor, create_entry

COLUMNS = (
    "brand",
    "seller_name",
    "document",
    "phones",
    "emails",
    "marketplace",
    "listing_urls",
    "amount",
    "case_ref",
)
REQUIRED_COLUMNS = frozenset(COLUMNS) - {"case_ref"}
Outcome = Literal["imported", "updated", "unchanged"]


class RowRejected(AppError):
    code = "row_rejected"
    status_code = 422


@dataclass(frozen=True)
class ImportRow:
    line: int
    brand: str
    seller_name: str
    document: Document | None
    phones: tuple[str, ...]
    emails: tuple[str, ...]
    listings: tuple[tuple[str, str], ...]  # (url, marketplace)
    amount: Decimal | None
    case_ref: str | None


@dataclass(frozen=True)
class RowError:
    line: int
    reason: str


@dataclass
class ImportSummary:
    imported: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[RowError] = field(default_factory=list)

    @property
    def rejected(self) -> int:
        return len(self.errors)

    def line(self) -> str:
        return (
            f"imported={self.imported} updated={self.updated} unchanged={self.unchanged} "
            f"rejected={self.rejected}"
        )


def _split(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(";") if part.strip()]


def check_header(header: Iterable[str] | None) -> None:
    present = {h.strip().lower() for h in header or []}
    missing = sorted(REQUIRED_COLUMNS - present)
    if missing:
        raise RowRejected(
            f"Cabeçalho inválido: faltam as colunas {', '.join(missing)}. "
            f"Esperado: {','.join(COLUMNS)}."
        )


def parse_row(line: int, raw: dict[str, str | None]) -> ImportRow:
    """Validate one CSV row; raises RowRejected with the reason."""
    row = {(k or "").strip().lower(): (v or "").strip() for k, v in raw.items()}
    brand = row.get("brand", "")
    seller = row.get("seller_name", "")
    if not brand:
        raise RowRejected("marca (brand) vazia")
    if not seller:
        raise RowRejected("nome do vendedor (seller_name) vazio")
    try:
        document = parse_document(row["document"]) if row.get("document") else None
    except InvalidIdentifier as exc:
        raise RowRejected(f"documento inválido {row['document']!r}: {exc}") from exc
    phones: list[str] = []
    for raw_phone in _split(row.get("phones")):
        try:
            phones.append(normalize_phone(raw_phone))
        except InvalidIdentifier as exc:
            raise RowRejected(f"telefone inválido {raw_phone!r}: {exc}") from exc
    emails: list[str] = []
    for raw_email in _split(row.get("emails")):
        try:
            emails.append(normalize_email(raw_email))
        except InvalidIdentifier as exc:
            raise RowRejected(f"e-mail inválido {raw_email!r}: {exc}") from exc
    column_marketplace = None
    if row.get("marketplace"):
        column_marketplace = canonical_marketplace(row["marketplace"])
        if column_marketplace is None:
            raise RowRejected(f"marketplace desconhecido {row['marketplace']!r}")
    listings: list[tuple[str, str]] = []
    for url in _split(row.get("listing_urls")):
        if not url.lower().startswith(("http://", "https://")):
            raise RowRejected(f"URL de anúncio inválida {url!r} (use http:// ou https://)")
        marketplace = marketplace_from_url(url) or column_marketplace or "own website"
        listings.append((url, marketplace))
    amount = None
    if row.get("amount"):
        try:
            amount = parse_amount(row["amount"])
        except InvalidIdentifier as exc:
            raise RowRejected(f"valor inválido {row['amount']!r}: {exc}") from exc
    case_ref = None
    if row.get("case_ref"):
        try:
            case_ref = parse_case_ref(row["case_ref"])
        except InvalidIdentifier as exc:
            raise RowRejected(f"referência de caso inválida {row['case_ref']!r}") from exc
    if not (phones or emails):
        raise RowRejected("nenhum telefone ou e-mail de contato")
    return ImportRow(
        line=line,
        brand=brand,
        seller_name=seller,
        document=document,
        phones=tuple(dict.fromkeys(phones)),
        emails=tuple(dict.fromkeys(emails)),
        listings=tuple(dict.fromkeys(listings)),
        amount=amount,
        case_ref=case_ref,
    )


def read_rows(lines: Iterable[str]) -> Iterator[ImportRow | RowError]:
    """Parse CSV text; yields a row or the error of that line (1 is the header)."""
    reader = csv.DictReader(lines)
    check_header(reader.fieldnames)
    for raw in reader:
        line = reader.line_num
        if not any((v or "").strip() for v in raw.values() if isinstance(v, str)):
            continue
        try:
            yield parse_row(line, raw)
        except RowRejected as exc:
            yield RowError(line=line, reason=exc.message)


def import_key(brand_id: int, row: ImportRow) -> str:
    who = row.document.value if row.document else row.seller_name.strip().lower()
    urls = "|".join(sorted(url for url, _ in row.listings))
    return hashlib.sha256(f"{brand_id}\n{who}\n{urls}".encode()).hexdigest()


async def _resolve_infringer(session: AsyncSession, row: ImportRow) -> tuple[Infringer, bool]:
    infringer: Infringer | None = None
    if row.document is not None:
        infringer = await session.scalar(
            sa.select(Infringer).where(Infringer.document == row.document.value)
        )
    if infringer is None:
        # No document (or a new one): an address we already know tells who this is.
        known = [
            *await get_contact_points(
                session,
                kind=ContactKind.PHONE,
                values=[v for p in row.phones for v in phone_variants(p)],
            ),
            *await get_contact_points(session, kind=ContactKind.EMAIL, values=row.emails),
        ]
        owner_ids = {c.infringer_id for c in known if c.infringer_id is not None}
        if row.document is None and len(owner_ids) == 1:
            infringer = await session.get(Infringer, owner_ids.pop())
    if infringer is not None:
        changed = infringer.name != row.seller_name
        infringer.name = row.seller_name
        return infringer, changed
    kind = (
        InfringerKind.COMPANY
        if row.document is not None and row.document.kind == "cnpj"
        else InfringerKind.PERSON
    )
    infringer = Infringer(
        kind=kind,
        name=row.seller_name,
        document=row.document.value if row.document else None,
    )
    session.add(infringer)
    await session.flush()
    return infringer, True


async def _attach(
    session: AsyncSession, infringer: Infringer, kind: ContactKind, value: str
) -> bool:
    contact = await get_contact_point(session, kind=kind, value=value)
    if contact is None:
        session.add(ContactPoint(kind=kind, value=value, infringer_id=infringer.id))
        return True
    if contact.infringer_id is None:
        contact.infringer_id = infringer.id  # an unmatched sender is now known
        return True
    if contact.infringer_id != infringer.id:
        if kind is ContactKind.EMAIL_DOMAIN:
            return False  # a shared domain stays with its first company
        raise RowRejected(
            f"o contato {value} já pertence a outro infrator (id {contact.infringer_id})"
        )
    return False


async def do_import_row(session: AsyncSession, row: ImportRow) -> Outcome:
    """Upsert one validated row: the same row imported twice changes nothing."""
    brand = await session.scalar(
        sa.select(Brand).where(sa.func.lower(Brand.name) == row.brand.lower())
    )
    if brand is None:
        raise RowRejected(
            f"marca {row.brand!r} não cadastrada (cadastre com `tratativa brands create`)"
        )
    infringer, changed = await _resolve_infringer(session, row)
    for phone in row.phones:
        changed |= await _attach(session, infringer, ContactKind.PHONE, phone)
    for email in row.emails:
        changed |= await _attach(session, infringer, ContactKind.EMAIL, email)
        domain = email_domain(email)
        if infringer.kind is InfringerKind.COMPANY and domain not in FREE_MAIL_DOMAINS:
            changed |= await _attach(session, infringer, ContactKind.EMAIL_DOMAIN, domain)

    key = import_key(brand.id, row)
    if row.case_ref:
        case = await session.scalar(sa.select(Case).where(Case.reference == row.case_ref))
    else:
        case = await session.scalar(sa.select(Case).where(Case.import_key == key))
    created = case is None
    if case is None:
        if row.case_ref:
            _, year, seq = row.case_ref.split("-")
            await do_reserve_case_reference(session, year=int(year), seq=int(seq))
            reference = row.case_ref
        else:
            reference = await create_case_reference(session, year=utcnow().year)
        case = Case(
            reference=reference,
            brand_id=brand.id,
            infringer_id=infringer.id,
            claimed_amount=row.amount,
            import_key=None if row.case_ref else key,
        )
        session.add(case)
        await session.flush()
    else:
        if case.brand_id != brand.id or case.infringer_id != infringer.id:
            raise RowRejected(f"o caso {case.reference} pertence a outra marca ou outro infrator")
        if row.amount is not None and case.claimed_amount != row.amount:
            case.claimed_amount = row.amount
            changed = True
    existing_urls = set(
        await session.scalars(sa.select(Listing.url).where(Listing.case_id == case.id))
    )
    for url, marketplace in row.listings:
        if url not in existing_urls:
            session.add(Listing(case_id=case.id, url=url, marketplace=marketplace))
            changed = True
    await session.flush()
    if created:
        await create_entry(
            session,
            kind=EntryKind.SYSTEM,
            actor=Actor.system(),
            case_id=case.id,
            summary=f"Caso importado (linha {row.line}).",
            data={"line": row.line},
        )
        await do_assign_on_import(session, case=case)
        return "imported"
    if changed:
        case.updated_at = utcnow()
        await create_entry(
            session,
            kind=EntryKind.SYSTEM,
            actor=Actor.system(),
            case_id=case.id,
            summary=f"Caso atualizado por importação (linha {row.line}).",
            data={"line": row.line},
        )
        return "updated"
    return "unchanged"


async def do_import_rows(
    session: AsyncSession,
    rows: Iterable[ImportRow | RowError],
    *,
    on_row: Callable[[], None] | None = None,
) -> ImportSummary:
    """Import every row, each in its own savepoint so one bad row rejects only itself.

    The references a file names are reserved first: a row without one, earlier in the file, is
    never given a reference a later row names."""
    summary = ImportSummary()
    items = list(rows)
    await do_reserve_case_references(
        session, [i.case_ref for i in items if isinstance(i, ImportRow) and i.case_ref]
    )
    for item in items:
        if isinstance(item, RowError):
            summary.errors.append(item)
        else:
            try:
                async with session.begin_nested():
                    outcome = await do_import_row(session, item)
            except RowRejected as exc:
                summary.errors.append(RowError(line=item.line, reason=exc.message))
            except sa.exc.IntegrityError as exc:
                summary.errors.append(
                    RowError(line=item.line, reason=f"conflito no banco: {exc.orig}")
                )
            else:
                setattr(summary, outcome, getattr(summary, outcome) + 1)
        if on_row is not None:
            on_row()
    return summary
