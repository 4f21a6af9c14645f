"""The mailboxes table: create, list, claim for a sync pass, record what a pass did, push hints,
and the sealed store of rotated refresh tokens."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import random
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy.ext.asyncio import AsyncSession

from api.channels.mailboxes.models import Mailbox, MailboxProvider, MailboxState
from api.config import ImapSettings, env_secret, get_settings
from api.db import utcnow
from api.errors import Conflict, NotFound, ValidationFailed

LEASE = dt.timedelta(minutes=15)  # longer than a pass may take (runner timeout)
MAX_BACKOFF = dt.timedelta(minutes=30)
# What each provider needs in `config` and which secrets it names in `credentials_env`.
REQUIRED_CONFIG: dict[MailboxProvider, tuple[str, ...]] = {
    MailboxProvider.IMAP: ("host", "user"),
    MailboxProvider.GMAIL: ("client_id",),
    MailboxProvider.GRAPH: ("tenant", "client_id"),
}
REQUIRED_SECRETS: dict[MailboxProvider, tuple[str, ...]] = {
    MailboxProvider.IMAP: ("password",),
    MailboxProvider.GMAIL: ("client_secret", "refresh_token"),
    MailboxProvider.GRAPH: ("client_secret",),
}


def _fernet() -> Fernet:
    key = hashlib.sha256(
        b"tratativa-mailbox-token:" + get_settings().secret_key.get_secret_value().encode()
    ).digest()
    return Fernet(base64.urlsafe_b64encode(key))


def seal(value: str) -> str:
    """Encrypt a token with a key derived from SECRET_KEY."""
    return _fernet().encrypt(value.encode()).decode()


def unseal(value: str) -> str | None:
    """The sealed token, or None when SECRET_KEY changed since it was sealed."""
    try:
        return _fernet().decrypt(value.encode()).decode()
    except (InvalidToken, ValueError):
        return None


def secret_hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def check_secret(value: str | None, expected_hash: str | None) -> bool:
    if not value or not expected_hash:
        return False
    return hmac.compare_digest(secret_hash(value), expected_hash)


def credential(box_env: dict[str, Any], key: str) -> str | None:
    """The secret a mailbox names by variable (`credentials_env[key]`), from the environment."""
    name = box_env.get(key)
    return env_secret(str(name)) if name else None


def check_new_mailbox(
    *, provider: MailboxProvider, name: str, address: str, config: dict[str, Any],
    credentials_env: dict[str, str],
) -> None:  # fmt: skip
    if not name.strip() or len(name) > 100:
        raise ValidationFailed("nome da caixa postal inválido (1 a 100 caracteres)")
    if "@" not in address:
        raise ValidationFailed(f"endereço de e-mail inválido: {address!r}")
    delegated = provider is MailboxProvider.GMAIL and bool(credentials_env.get("service_account"))
    required_config = () if delegated else REQUIRED_CONFIG[provider]
    missing = [key for key in required_config if not config.get(key)]
    if missing:
        raise ValidationFailed(f"faltam opções para {provider}: {', '.join(missing)}")
    required_secrets = ("service_account",) if delegated else REQUIRED_SECRETS[provider]
    missing = [key for key in required_secrets if not credentials_env.get(key)]
    if missing:
        raise ValidationFailed(
            f"faltam os nomes das variáveis de ambiente de: {', '.join(missing)}"
        )
    for key, variable in credentials_env.items():
        if not str(variable).replace("_", "").isalnum():
            raise ValidationFailed(
                f"{key}: informe o NOME de uma variável de ambiente, não o segredo"
            )


async def create_mailbox(
    session: AsyncSession,
    *,
    provider: MailboxProvider,
    name: str,
    address: str,
    config: dict[str, Any],
    credentials_env: dict[str, str],
) -> Mailbox:
    check_new_mailbox(
        provider=provider, name=name, address=address, config=config,
        credentials_env=credentials_env,
    )  # fmt: skip
    address = address.strip().lower()
    same_account = sa.and_(Mailbox.provider == provider, Mailbox.address == address)
    if provider is MailboxProvider.IMAP:  # one account, several folders
        same_account = sa.and_(
            same_account,
            Mailbox.config["folder"].as_string() == str(config.get("folder") or "INBOX"),
        )
    clash = await session.scalar(
        sa.select(Mailbox.id).where(sa.or_(Mailbox.name == name, same_account)).limit(1)
    )
    if clash is not None:
        raise Conflict(f"já existe uma caixa postal {name!r} ou {provider} {address}")
    now = utcnow()
    box = Mailbox(
        name=name.strip(),
        provider=provider,
        address=address,
        config=config,
        credentials_env=credentials_env,
        state=MailboxState.ACTIVE,
        failures=0,
        next_attempt_at=now,
        updated_at=now,
    )
    session.add(box)
    await session.flush()
    return box


async def get_mailboxes(session: AsyncSession) -> Sequence[Mailbox]:
    return (await session.scalars(sa.select(Mailbox).order_by(Mailbox.name))).all()


async def get_mailbox(session: AsyncSession, *, name: str) -> Mailbox | None:
    return await session.scalar(sa.select(Mailbox).where(Mailbox.name == name))


async def require_mailbox(session: AsyncSession, *, name: str) -> Mailbox:
    box = await get_mailbox(session, name=name)
    if box is None:
        raise NotFound(f"caixa postal {name!r} não encontrada")
    return box


async def claim_due(
    session: AsyncSession,
    *,
    now: dt.datetime,
    poll_every: dt.timedelta,
    names: Sequence[str] | None = None,
    force: bool = False,
) -> list[Mailbox]:
    """Lease the mailboxes due for a pass: a push hint arrived, the poll interval passed, or
    (force) an operator asked; never one that is disabled, throttled until later, or leased."""
    free = sa.or_(Mailbox.locked_until.is_(None), Mailbox.locked_until < now)
    query = sa.select(Mailbox).where(Mailbox.state != MailboxState.DISABLED, free)
    if names:
        query = query.where(Mailbox.name.in_(list(names)))
    if not force:
        query = query.where(
            Mailbox.next_attempt_at <= now,
            sa.or_(
                Mailbox.sync_requested_at.is_not(None),
                Mailbox.last_synced_at.is_(None),
                Mailbox.last_synced_at <= now - poll_every,
                Mailbox.state != MailboxState.ACTIVE,
            ),
        )
    rows = list(
        (
            await session.scalars(
                query.order_by(Mailbox.id).with_for_update(skip_locked=True, of=Mailbox)
            )
        ).all()
    )
    for row in rows:
        row.locked_until = now + LEASE
        row.sync_requested_at = None
    await session.flush()
    return rows


async def do_record_success(
    session: AsyncSession, *, mailbox_id: int, cursor: str | None, now: dt.datetime
) -> None:
    box = await session.get(Mailbox, mailbox_id)
    if box is None:
        return
    if cursor is not None:
        box.cursor = cursor
    if box.state != MailboxState.DISABLED:
        box.state = MailboxState.ACTIVE
    box.last_error = None
    box.failures = 0
    box.last_synced_at = now
    box.next_attempt_at = now
    box.locked_until = None
    box.updated_at = now


async def do_record_failure(
    session: AsyncSession,
    *,
    mailbox_id: int,
    error: str,
    now: dt.datetime,
    retry_after: float | None = None,
) -> dt.datetime:
    """Failing (backoff 2, 4, 8 … s up to 30 min) or throttled (exactly the provider's
    Retry-After, never sooner); returns when the mailbox is tried again."""
    box = await session.get(Mailbox, mailbox_id)
    if box is None:
        return now
    box.failures += 1
    box.last_error = error[:500]
    if retry_after is not None:
        state = MailboxState.THROTTLED
        box.next_attempt_at = now + dt.timedelta(seconds=retry_after)
    else:
        state = MailboxState.FAILING
        delay = min(MAX_BACKOFF.total_seconds(), 2.0 ** min(box.failures, 20))
        box.next_attempt_at = now + dt.timedelta(seconds=delay * random.uniform(0.8, 1.0))
    if box.state is not MailboxState.DISABLED:  # an operator disabled it during the pass
        box.state = state
    box.locked_until = None
    box.updated_at = now
    return box.next_attempt_at


async def do_save_cursor(session: AsyncSession, *, mailbox_id: int, cursor: str | None) -> None:
    await session.execute(
        sa.update(Mailbox)
        .where(Mailbox.id == mailbox_id)
        .values(cursor=cursor, updated_at=utcnow())
    )


async def do_save_token(session: AsyncSession, *, mailbox_id: int, token: str) -> None:
    """Persist a rotated refresh token (sealed) before anything uses the new access token."""
    await session.execute(
        sa.update(Mailbox)
        .where(Mailbox.id == mailbox_id)
        .values(token_sealed=seal(token), updated_at=utcnow())
    )


async def do_save_push(
    session: AsyncSession,
    *,
    mailbox_id: int,
    push_id: str | None,
    expires_at: dt.datetime | None,
    secret_hash_value: str | None = None,
    keep_secret: bool = False,
) -> None:
    values: dict[str, Any] = {
        "push_id": push_id,
        "push_expires_at": expires_at,
        "updated_at": utcnow(),
    }
    if not keep_secret:
        values["push_secret_hash"] = secret_hash_value
    await session.execute(sa.update(Mailbox).where(Mailbox.id == mailbox_id).values(**values))


async def do_request_sync(session: AsyncSession, *, mailbox_id: int) -> bool:
    """A push hint: sync this mailbox at the next pass (the poll stays the safety net)."""
    result = await session.execute(
        sa.update(Mailbox)
        .where(Mailbox.id == mailbox_id, Mailbox.state != MailboxState.DISABLED)
        .values(sync_requested_at=utcnow())
    )
    return bool(getattr(result, "rowcount", 0))


async def do_set_enabled(session: AsyncSession, *, name: str, enabled: bool) -> Mailbox:
    box = await require_mailbox(session, name=name)
    box.state = MailboxState.ACTIVE if enabled else MailboxState.DISABLED
    box.next_attempt_at = utcnow()
    box.failures = 0
    box.updated_at = utcnow()
    await session.flush()
    return box


async def get_by_address(
    session: AsyncSession, *, provider: MailboxProvider, address: str
) -> Mailbox | None:
    return await session.scalar(
        sa.select(Mailbox)
        .where(Mailbox.provider == provider, Mailbox.address == address.strip().lower())
        .order_by(Mailbox.id)
        .limit(1)
    )


async def get_by_push_id(session: AsyncSession, *, push_id: str) -> Mailbox | None:
    return await session.scalar(sa.select(Mailbox).where(Mailbox.push_id == push_id))


PROVIDER_LABELS = {
    MailboxProvider.IMAP: "IMAP",
    MailboxProvider.GMAIL: "Gmail (API)",
    MailboxProvider.GRAPH: "Microsoft 365 (Graph)",
}
STATE_LABELS = {
    MailboxState.ACTIVE: "Ativa",
    MailboxState.FAILING: "Com falha",
    MailboxState.THROTTLED: "Aguardando o provedor",
    MailboxState.DISABLED: "Desativada",
}


async def get_mailboxes_view(session: AsyncSession) -> list[dict[str, Any]]:
    """The admins' mailbox page: provider, state, cursor, last sync and error, push expiry; never
    a secret (only the names of the variables that hold them)."""
    rows = await get_mailboxes(session)
    return [
        {
            "id": row.id,
            "name": row.name,
            "provider": str(row.provider),
            "provider_label": PROVIDER_LABELS[row.provider],
            "address": row.address,
            "state": str(row.state),
            "state_label": STATE_LABELS[row.state],
            "cursor": short_cursor(row.cursor),
            "last_synced_at": row.last_synced_at,
            "next_attempt_at": row.next_attempt_at
            if row.state is not MailboxState.ACTIVE
            else None,
            "push_expires_at": row.push_expires_at,
            "sync_requested": row.sync_requested_at is not None,
            "last_error": row.last_error,
            "failures": row.failures,
            "credentials": ", ".join(sorted(str(v) for v in (row.credentials_env or {}).values())),
            "token_rotated": row.token_sealed is not None,
            "default_sender": bool((row.config or {}).get("default_sender")),
        }
        for row in rows
    ]


async def do_request_sync_by_id(session: AsyncSession, *, mailbox_id: int) -> None:
    if await session.get(Mailbox, mailbox_id) is None:
        raise NotFound("caixa postal não encontrada")
    await do_request_sync(session, mailbox_id=mailbox_id)


async def do_set_enabled_by_id(session: AsyncSession, *, mailbox_id: int, enabled: bool) -> None:
    box = await session.get(Mailbox, mailbox_id)
    if box is None:
        raise NotFound("caixa postal não encontrada")
    await do_set_enabled(session, name=box.name, enabled=enabled)


def short_cursor(cursor: str | None) -> str:
    """A cursor short enough for a table cell (a Graph deltaLink is a long URL)."""
    if not cursor:
        return "—"
    if "$deltatoken=" in cursor or "$skiptoken=" in cursor:
        kind = "deltaLink" if "$deltatoken=" in cursor else "nextLink"
        token = cursor.rsplit("=", 1)[-1]
        return f"{kind} …{token[-10:]}"
    return cursor if len(cursor) <= 32 else cursor[:12] + "…" + cursor[-12:]


async def do_ensure_settings_mailbox(session: AsyncSession, *, imap: ImapSettings) -> None:
    """The mailbox configured by IMAP_* (read by the worker's own IDLE loop) gets its row, so
    admins see it beside the others; nothing when one exists for that account and folder."""
    if not (imap.host and imap.user):
        return
    exists = await session.scalar(
        sa.select(Mailbox.id)
        .where(
            Mailbox.provider == MailboxProvider.IMAP,
            Mailbox.config["host"].as_string() == imap.host,
            Mailbox.config["user"].as_string() == imap.user,
            Mailbox.config["folder"].as_string() == imap.folder,
        )
        .limit(1)
    )
    if exists is not None:
        return
    taken = set((await session.scalars(sa.select(Mailbox.name))).all())
    name = next(n for n in ("imap", *(f"imap-{i}" for i in range(2, 1000))) if n not in taken)
    now = utcnow()
    session.add(
        Mailbox(
            name=name,
            provider=MailboxProvider.IMAP,
            address=(imap.user if "@" in imap.user else f"{imap.user}@{imap.host}").lower(),
            config={
                "host": imap.host,
                "port": imap.port,
                "user": imap.user,
                "folder": imap.folder,
                "ssl": imap.ssl,
                "from_settings": True,
            },
            credentials_env={"password": "IMAP_PASSWORD"},
            state=MailboxState.ACTIVE,
            failures=0,
            next_attempt_at=now,
            updated_at=now,
        )
    )
    await session.flush()


async def do_release(session: AsyncSession, *, mailbox_id: int) -> None:
    """Give a lease back (a pass interrupted by shutdown): the next worker may start at once."""
    await session.execute(
        sa.update(Mailbox).where(Mailbox.id == mailbox_id).values(locked_until=None)
    )
