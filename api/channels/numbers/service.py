"""Which number and provider a WhatsApp message comes in on and leaves through.

Numbers live in `whatsapp_numbers` (managed by admins from the CLI and the panel); with none
there, the environment is the single-number shortcut (WHATSAPP_PROVIDER and that provider's
variables). A conversation keeps the provider and number it was opened on; a reply leaves
through the provider and number of the infringer's latest message (`reply_route`).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession

from api.channels.numbers.models import Provider, WhatsAppNumber
from api.config import Settings, get_settings, secret_from_environment
from api.conversations.models import Conversation, Direction, Message
from api.db import utcnow
from api.errors import Conflict, NotFound, ValidationFailed

_NUMBER_RE = re.compile(r"^\+?[0-9]{8,15}$")
_PREFIX_RE = re.compile(r"^\s*(?:whatsapp|tel)\s*:\s*", re.IGNORECASE)
_ENV_NAME_RE = re.compile(r"^[A-Z][A-Z0-9_]{0,119}$")
# How a reply's route rides in the outbox ("from"): "<provider>:<E.164>". Twilio's own form
# ("whatsapp:+1415…", what its webhooks say) stays as it was.
ROUTE_SEPARATOR = ":"


def parse_provider(value: str) -> Provider:
    try:
        return Provider(value.strip().lower())
    except ValueError as exc:
        names = ", ".join(p.value for p in Provider)
        raise ValidationFailed(f"Provedor desconhecido: {value!r} (use {names}).") from exc


def normalize_number(raw: str) -> str:
    """Our own number as E.164 ("+5511…"); lenient on the plan (Meta's test numbers are +1 555)."""
    text = _PREFIX_RE.sub("", raw or "")
    digits = re.sub(r"[\s().\-/]", "", text)
    if not _NUMBER_RE.fullmatch(digits):
        raise ValidationFailed(f"Número inválido: {raw!r} (use o formato +5511999999999).")
    return "+" + digits.lstrip("+")


@dataclass(frozen=True)
class NumberConfig:
    """A number ready to use: provider, E.164 number, the provider's account id and token."""

    provider: Provider
    number: str | None
    account_id: str | None = None
    token: SecretStr | None = field(default=None, repr=False)
    id: int | None = None
    label: str = ""

    @property
    def route(self) -> str:
        return make_route(self.provider, self.number)


def make_route(provider: Provider, number: str | None) -> str:
    if provider is Provider.TWILIO:
        return f"whatsapp:{number}" if number else ""
    return f"{provider.value}{ROUTE_SEPARATOR}{number or ''}"


def parse_route(route: str | None) -> tuple[Provider, str | None]:
    """(provider, number) from an outbox "from"; anything else is Twilio's."""
    if route:
        head, sep, tail = route.partition(ROUTE_SEPARATOR)
        if sep and head.lower() != "whatsapp":
            try:
                return Provider(head.lower()), tail or None
            except ValueError:
                pass
        if sep and head.lower() == "whatsapp":
            return Provider.TWILIO, tail or None
        return Provider.TWILIO, route
    return Provider.TWILIO, None


def default_provider(settings: Settings | None = None) -> Provider:
    return parse_provider((settings or get_settings()).whatsapp_provider)


def env_number(provider: Provider, settings: Settings | None = None) -> NumberConfig:
    """The number the environment describes for a provider (the single-number shortcut)."""
    s = settings or get_settings()
    if provider is Provider.META:
        return NumberConfig(
            provider=provider,
            number=maybe_number(s.meta.number),
            account_id=s.meta.phone_number_id,
            token=s.meta.access_token,
        )
    if provider is Provider.D360:
        return NumberConfig(
            provider=provider, number=maybe_number(s.d360.number), token=s.d360.api_key
        )
    if provider is Provider.ZAPI:
        return NumberConfig(
            provider=provider,
            number=maybe_number(s.zapi.number),
            account_id=s.zapi.instance_id,
            token=s.zapi.token,
        )
    if provider is Provider.ULTRAMSG:
        return NumberConfig(
            provider=provider,
            number=maybe_number(s.ultramsg.number),
            account_id=s.ultramsg.instance_id,
            token=s.ultramsg.token,
        )
    return NumberConfig(
        provider=provider,
        number=maybe_number(s.twilio.whatsapp_from),
        token=s.twilio.auth_token,
    )


def maybe_number(raw: str | None) -> str | None:
    if not raw:
        return None
    try:
        return normalize_number(raw)
    except ValidationFailed:
        return None


def _config_of(row: WhatsAppNumber, settings: Settings) -> NumberConfig:
    provider = Provider(row.provider)
    fallback = env_number(provider, settings)
    token = secret_from_environment(row.token_env) if row.token_env else fallback.token
    return NumberConfig(
        provider=provider,
        number=row.number,
        account_id=row.account_id or fallback.account_id,
        token=token,
        id=row.id,
        label=row.label,
    )


async def list_numbers(
    session: AsyncSession, *, include_inactive: bool = True
) -> list[WhatsAppNumber]:
    query = sa.select(WhatsAppNumber).order_by(WhatsAppNumber.provider, WhatsAppNumber.number)
    if not include_inactive:
        query = query.where(WhatsAppNumber.active.is_(True))
    return list((await session.scalars(query)).all())


async def get_number(session: AsyncSession, *, number_id: int) -> WhatsAppNumber | None:
    return await session.get(WhatsAppNumber, number_id)


async def create_number(
    session: AsyncSession,
    *,
    provider: str,
    number: str,
    label: str = "",
    account_id: str | None = None,
    token_env: str | None = None,
    brand_id: int | None = None,
    is_default: bool = False,
) -> WhatsAppNumber:
    """Add one of our numbers; a Cloud API number needs its phone-number id, an unofficial one
    its instance id (unless the environment's single number gives it)."""
    chosen = parse_provider(provider)
    e164 = normalize_number(number)
    account = (account_id or "").strip() or None
    env_name = (token_env or "").strip() or None
    if env_name is not None and not _ENV_NAME_RE.fullmatch(env_name):
        raise ValidationFailed(
            "token_env deve ser o NOME de uma variável de ambiente (ex.: ZAPI_TOKEN_MARCA2), "
            "nunca o próprio token."
        )
    needs_account = chosen in (Provider.META, Provider.ZAPI, Provider.ULTRAMSG)
    if account is None and needs_account and env_number(chosen).account_id is None:
        what = "phone-number id" if chosen is Provider.META else "id da instância"
        raise ValidationFailed(f"Informe o {what} (account_id) do número {chosen.value}.")
    existing = await session.scalar(
        sa.select(WhatsAppNumber).where(
            WhatsAppNumber.provider == chosen.value, WhatsAppNumber.number == e164
        )
    )
    if existing is not None:
        raise Conflict(f"O número {e164} já está cadastrado para {chosen.value}.")
    if is_default:
        await _clear_default(session)
    row = WhatsAppNumber(
        provider=chosen.value,
        number=e164,
        label=label.strip()[:120],
        account_id=account,
        token_env=env_name,
        brand_id=brand_id,
        is_default=is_default,
        active=True,
    )
    session.add(row)
    await session.flush()
    return row


async def _clear_default(session: AsyncSession) -> None:
    await session.execute(
        sa.update(WhatsAppNumber)
        .where(WhatsAppNumber.is_default.is_(True))
        .values(is_default=False, updated_at=utcnow())
    )
    await session.flush()


async def do_set_default(session: AsyncSession, *, number_id: int) -> WhatsAppNumber:
    row = await _require(session, number_id)
    if not row.active:
        raise Conflict("Um número desativado não pode ser o padrão.")
    await _clear_default(session)
    row.is_default = True
    row.updated_at = utcnow()
    await session.flush()
    return row


async def do_set_active(session: AsyncSession, *, number_id: int, active: bool) -> WhatsAppNumber:
    """Deactivate (or reactivate) a number. Conversations opened on it keep their route: a
    reply to an infringer still leaves through the number they wrote to."""
    row = await _require(session, number_id)
    row.active = active
    if not active:
        row.is_default = False
    row.updated_at = utcnow()
    await session.flush()
    return row


async def _require(session: AsyncSession, number_id: int) -> WhatsAppNumber:
    row = await session.get(WhatsAppNumber, number_id)
    if row is None:
        raise NotFound(f"Número {number_id} não existe.")
    return row


# The statements of every message's route, built once (building them per call cost more CPU
# than running them): each call binds its values.


@functools.cache
def _number_statement(*, by_number: bool, by_account: bool) -> sa.Select[WhatsAppNumber]:
    """One of our numbers of a provider by its number, its account id or either (an active one
    first, then the oldest); one statement per combination of what is looked up by."""
    conditions: list[Any] = []
    if by_number:
        conditions.append(
            WhatsAppNumber.number == sa.bindparam("number", type_=WhatsAppNumber.number.type)
        )
    if by_account:
        conditions.append(
            WhatsAppNumber.account_id
            == sa.bindparam("account_id", type_=WhatsAppNumber.account_id.type)
        )
    assert conditions, "looked up by neither number nor account id"
    return (
        sa.select(WhatsAppNumber)
        .where(
            WhatsAppNumber.provider == sa.bindparam("provider", type_=WhatsAppNumber.provider.type),
            sa.or_(*conditions),
        )
        .order_by(WhatsAppNumber.active.desc(), WhatsAppNumber.id)
        .limit(1)
    )


@functools.cache
def _latest_inbound_meta_statement() -> sa.Select[Any]:
    """The meta of a conversation's latest inbound message (provider, our number, account)."""
    return (
        sa.select(Message.meta)
        .where(
            Message.conversation_id
            == sa.bindparam("conversation_id", type_=Message.conversation_id.type),
            Message.direction == Direction.INBOUND,
        )
        .order_by(Message.id.desc())
        .limit(1)
    )


async def find_number(
    session: AsyncSession,
    provider: Provider,
    *,
    number: str | None = None,
    account_id: str | None = None,
) -> NumberConfig | None:
    """One of our numbers by provider and its number or account id (table, then environment)."""
    settings = get_settings()
    if number or account_id:
        params: dict[str, Any] = {"provider": provider.value}
        if number:
            params["number"] = number
        if account_id:
            params["account_id"] = account_id
        row = await session.scalar(
            _number_statement(by_number=bool(number), by_account=bool(account_id)), params
        )
        if row is not None:
            return _config_of(row, settings)
    env = env_number(provider, settings)
    matches = (
        (account_id is not None and env.account_id == account_id)
        or (number is not None and env.number == number)
        or (account_id is None and number is None)
    )
    if matches or (env.number is None and account_id is None):
        return NumberConfig(
            provider=provider,
            number=number or env.number,
            account_id=env.account_id,
            token=env.token,
        )
    return None


async def default_number(session: AsyncSession) -> NumberConfig:
    """The number a conversation without one uses: the table's default, else the environment's."""
    settings = get_settings()
    row = await session.scalar(
        sa.select(WhatsAppNumber).where(
            WhatsAppNumber.is_default.is_(True), WhatsAppNumber.active.is_(True)
        )
    )
    if row is not None:
        return _config_of(row, settings)
    return env_number(default_provider(settings), settings)


async def do_assign_number(
    session: AsyncSession, conversation: Conversation, *, provider: Provider, number: str | None
) -> None:
    """Record the provider and number a conversation was opened on (only the first time)."""
    if conversation.provider is None:
        conversation.provider = provider.value
        conversation.provider_number = number


async def reply_route(session: AsyncSession, conversation: Conversation) -> NumberConfig:
    """Where a reply leaves from: the provider and number of the infringer's latest message,
    else the conversation's own, else the default number (then kept for the conversation)."""
    meta = await session.scalar(
        _latest_inbound_meta_statement(), {"conversation_id": conversation.id}
    )
    meta = meta or {}
    provider_name = meta.get("provider") or conversation.provider
    if provider_name:
        provider = parse_provider(str(provider_name))
        to = meta.get("to") if meta.get("provider") else conversation.provider_number
        number = maybe_number(str(to)) if to else conversation.provider_number
        found = await find_number(
            session,
            provider,
            number=number,
            account_id=str(meta["account_id"]) if meta.get("account_id") else None,
        )
        if found is not None:
            return NumberConfig(
                provider=provider,
                number=number or found.number,
                account_id=found.account_id,
                token=found.token,
                id=found.id,
                label=found.label,
            )
        return NumberConfig(provider=provider, number=number)
    chosen = await default_number(session)
    await do_assign_number(session, conversation, provider=chosen.provider, number=chosen.number)
    return chosen


@dataclass(frozen=True)
class NumberView:
    """A number as the admins' panel shows it."""

    id: int
    provider: str
    provider_label: str
    number: str
    label: str
    account_id: str
    token_env: str
    is_default: bool
    active: bool
    unofficial: bool


PROVIDER_LABELS = {
    Provider.TWILIO: "Twilio",
    Provider.META: "Meta (Cloud API)",
    Provider.D360: "360dialog",
    Provider.ZAPI: "Z-API (não oficial)",
    Provider.ULTRAMSG: "UltraMsg (não oficial)",
}


async def get_numbers_view(session: AsyncSession) -> dict[str, Any]:
    """The numbers page: every number, and what the environment gives when none is default."""
    rows = await list_numbers(session)
    views = [
        NumberView(
            id=row.id,
            provider=row.provider,
            provider_label=PROVIDER_LABELS[Provider(row.provider)],
            number=row.number,
            label=row.label,
            account_id=row.account_id or "",
            token_env=row.token_env or "",
            is_default=row.is_default,
            active=row.active,
            unofficial=Provider(row.provider).unofficial,
        )
        for row in rows
    ]
    env = env_number(default_provider())
    return {
        "numbers": views,
        "env_default": None
        if any(v.is_default and v.active for v in views)
        else {
            "provider": PROVIDER_LABELS[env.provider],
            "number": env.number or "",
            "unofficial": env.provider.unofficial,
        },
        "providers": [(p.value, PROVIDER_LABELS[p]) for p in Provider],
        "any_unofficial": any(v.unofficial for v in views) or env.provider.unofficial,
    }
