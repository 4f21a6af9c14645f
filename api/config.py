"""Settings, read from the environment (and an optional .env file) by one cached getter."""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Annotated
from urllib.parse import parse_qsl, urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from api.errors import ConfigurationError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SQLITE_PATH = PROJECT_ROOT / "var" / "tratativa.db"
# `tratativa setup` writes a random key here (0600) for `make run`; scripts/run.sh exports it.
SECRET_KEY_FILE = PROJECT_ROOT / "var" / "secret_key"
# Public (it is in the source): accepted only with TRATATIVA_ENV=development.
DEV_SECRET_KEY = "dev-insecure-secret-change-me-in-production-0000"
MIN_SECRET_KEY_LENGTH = 32


class _Group(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")


class RasaSettings(_Group):
    """Where the Rasa server is and the secret shared with its gateway channel."""

    model_config = SettingsConfigDict(env_prefix="RASA_", env_file=".env", extra="ignore")

    url: str | None = None
    gateway_secret: SecretStr = SecretStr("dev-gateway-secret")
    # Rasa calls our action server with this token (endpoints.yml: ACTION_ENDPOINT_TOKEN).
    action_token: SecretStr = Field(
        default=SecretStr("dev-action-token"), validation_alias="ACTION_ENDPOINT_TOKEN"
    )
    timeout_seconds: float = 15.0


class TwilioSettings(_Group):
    """Twilio credentials; empty means the local simulator is used."""

    model_config = SettingsConfigDict(env_prefix="TWILIO_", env_file=".env", extra="ignore")

    account_sid: str | None = None
    auth_token: SecretStr | None = None
    whatsapp_from: str | None = None
    messaging_service_sid: str | None = None
    api_base_url: str = "https://api.twilio.com"
    # Hosts media is downloaded from (comma-separated; "*.example.com" is any subdomain), https
    # only, never a private address. The API base URL's host is always allowed and is the only
    # one that receives the account's credentials (its MediaUrl redirects to the CDN).
    media_hosts: Annotated[tuple[str, ...], NoDecode] = ("api.twilio.com", "*.twiliocdn.com")

    @field_validator("media_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(h.strip().lower() for h in value.split(",") if h.strip())
        return value


class SmtpSettings(_Group):
    """Outbound mail server."""

    model_config = SettingsConfigDict(env_prefix="SMTP_", env_file=".env", extra="ignore")

    host: str | None = None
    port: int = 587
    user: str | None = None
    password: SecretStr | None = None
    starttls: bool = True
    ssl: bool = False


class ImapSettings(_Group):
    """Inbound mailbox."""

    model_config = SettingsConfigDict(env_prefix="IMAP_", env_file=".env", extra="ignore")

    host: str | None = None
    port: int = 993
    user: str | None = None
    password: SecretStr | None = None
    ssl: bool = True
    folder: str = "INBOX"


class LoginLimitSettings(_Group):
    """Failed logins tolerated per account and per client address within a sliding window
    (0 turns that limit off). Counted in Redis when REDIS_URL is set, else in the database."""

    model_config = SettingsConfigDict(env_prefix="LOGIN_LIMIT_", env_file=".env", extra="ignore")

    max_failures_per_account: int = Field(default=5, ge=0)
    max_failures_per_address: int = Field(default=20, ge=0)
    window_seconds: int = Field(default=15 * 60, ge=1)


class MetaSettings(_Group):
    """WhatsApp Cloud API straight from Meta (api/channels/whatsapp_cloud)."""

    model_config = SettingsConfigDict(env_prefix="META_", env_file=".env", extra="ignore")

    app_secret: SecretStr | None = None
    verify_token: SecretStr | None = None
    access_token: SecretStr | None = None
    phone_number_id: str | None = None
    # The Graph API base with a pinned version (Meta retires versions; bump it deliberately).
    graph_url: str = "https://graph.facebook.com/v21.0"
    # The display number of META_PHONE_NUMBER_ID (E.164), when it is the default number.
    number: str | None = None
    # Hosts media downloads may be redirected to (besides the Graph API's own host).
    media_hosts: Annotated[tuple[str, ...], NoDecode] = ("lookaside.fbsbx.com", "*.fbcdn.net")

    @field_validator("media_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: object) -> object:
        return _split_csv(value)


class D360Settings(_Group):
    """WhatsApp Cloud API through 360dialog (D360-API-KEY)."""

    model_config = SettingsConfigDict(env_prefix="D360_", env_file=".env", extra="ignore")

    api_key: SecretStr | None = None
    base_url: str = "https://waba-v2.360dialog.io"
    # 360dialog signs nothing: the webhook URL carries this secret, and so does the header
    # below (set it in 360dialog's webhook configuration, "headers").
    webhook_secret: SecretStr | None = None
    webhook_header: str = "X-Tratativa-Webhook-Secret"
    number: str | None = None


class ZapiSettings(_Group):
    """Z-API (unofficial: drives a WhatsApp Web session)."""

    model_config = SettingsConfigDict(env_prefix="ZAPI_", env_file=".env", extra="ignore")

    instance_id: str | None = None
    token: SecretStr | None = None
    client_token: SecretStr | None = None
    base_url: str = "https://api.z-api.io"
    webhook_secret: SecretStr | None = None
    number: str | None = None
    media_hosts: Annotated[tuple[str, ...], NoDecode] = ("*.z-api.io",)

    @field_validator("media_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: object) -> object:
        return _split_csv(value)


class UltramsgSettings(_Group):
    """UltraMsg (unofficial: drives a WhatsApp Web session)."""

    model_config = SettingsConfigDict(env_prefix="ULTRAMSG_", env_file=".env", extra="ignore")

    instance_id: str | None = None
    token: SecretStr | None = None
    base_url: str = "https://api.ultramsg.com"
    webhook_secret: SecretStr | None = None
    number: str | None = None
    media_hosts: Annotated[tuple[str, ...], NoDecode] = ("*.ultramsg.com", "*.wasabisys.com")

    @field_validator("media_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: object) -> object:
        return _split_csv(value)


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return tuple(h.strip().lower() for h in value.split(",") if h.strip())
    return value


class MailboxSettings(_Group):
    """Mailbox connectors beyond the IMAP_* one (api/channels/mailboxes); each mailbox's own
    settings are rows of the mailboxes table (`tratativa mailboxes add`)."""

    model_config = SettingsConfigDict(env_prefix="MAILBOX_", env_file=".env", extra="ignore")

    # Safety-net polling of every mailbox, whatever push hints arrive.
    poll_seconds: float = Field(default=60.0, gt=0)
    # Gmail Pub/Sub push: the subscription's push endpoint carries ?token=<this>, and/or the
    # subscription pushes with authentication (an OIDC token Google signs for this service
    # account and audience; the audience defaults to PUBLIC_BASE_URL/webhooks/gmail/push).
    push_token: SecretStr | None = None
    push_service_account: str | None = None
    push_audience: str | None = None
    push_certs_url: str = "https://www.googleapis.com/oauth2/v1/certs"


class Settings(_Group):
    """Everything the service reads from its environment."""

    database_url: str = Field(default_factory=lambda: f"sqlite+aiosqlite:///{DEFAULT_SQLITE_PATH}")
    # PostgreSQL connections each process keeps open (DB_POOL_SIZE), and how many more it may
    # open for a burst (DB_MAX_OVERFLOW). A burst connection is closed when handed back: under
    # steady load above the pool size every checkout would connect afresh (TLS negotiation,
    # authentication, every statement prepared again), so the pool covers the concurrency a
    # process reaches under load (bot turns, action calls, consumers, webhooks).
    db_pool_size: int = Field(default=20, ge=1, le=200)
    db_max_overflow: int = Field(default=10, ge=0, le=200)
    redis_url: str | None = None
    secret_key: SecretStr = SecretStr(DEV_SECRET_KEY)
    public_base_url: str = "http://127.0.0.1:8000"
    # Proxies whose X-Forwarded-For/-Host/-Proto are believed (comma-separated IPs or CIDRs);
    # from anyone else those headers are ignored. Empty: none.
    trusted_proxies: Annotated[
        tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...], NoDecode
    ] = ()
    host: str = "127.0.0.1"
    port: int = 8000
    # Service processes sharing the port (`tratativa serve --workers`): one Python process uses
    # one core; more need REDIS_URL (live notifications cross processes through Redis).
    service_workers: int = Field(default=1, ge=1, le=64)
    # Bot turns a process runs at once (TURNS_PER_PROCESS); more wait for a slot, in arrival
    # order. Above capacity the backlog waits as small tasks instead of as running turns that
    # hold database connections and crowd the event loop (webhooks are answered promptly).
    # 3, not 8: a turn mostly waits on its own round trips, and 3 keep one core busy; with 8 at
    # 30 msg/s (above this 2-core machine's capacity) webhook acks were p99 358-393 ms against
    # 74-88 ms with 3, and fewer turns were answered within the step; at 10 msg/s no difference.
    turns_per_process: int = Field(default=3, ge=1, le=256)
    # "development" (TRATATIVA_ENV=development) accepts the public SECRET_KEY; anything else,
    # including unset, is treated as production.
    environment: str = Field(default="production", validation_alias="TRATATIVA_ENV")
    token_ttl_minutes: int = 8 * 60
    storage_dir: Path = PROJECT_ROOT / "var" / "storage"
    max_attachment_bytes: int = 10 * 1024 * 1024
    # WhatsApp: free-form text only within this many hours of the infringer's last message.
    whatsapp_window_hours: int = 24
    outbox_max_attempts: int = 8
    # How long a worker owns the rows it claimed; a worker that dies gives them back after this.
    outbox_lease_seconds: float = 60.0
    email_from: str = "Tratativa <atendimento@tratativa.local>"
    firm_name: str = "Tratativa Proteção de Marcas"
    firm_site: str = "https://tratativa.example"
    firm_phone: str = "+55 11 4000-0000"
    firm_email: str = "atendimento@tratativa.example"
    # When analysts answer: the bot tells a waiting infringer when a person will reply.
    business_timezone: str = "America/Sao_Paulo"
    business_hours_start: int = 9
    business_hours_end: int = 18
    business_days: str = "0,1,2,3,4"  # Monday=0 … Sunday=6
    # The business calendar (api/operations/calendar.py). Working shifts, split allowed, e.g.
    # "09:00-12:00,13:00-18:00"; empty: business_hours_start to business_hours_end.
    business_shifts: str = ""
    # A state (UF, e.g. "SP") whose holidays join the national ones; empty: national only.
    business_holidays_state: str = ""
    # Optional holidays (pontos facultativos, names as the `holidays` library spells them in
    # pt_BR) the firm also closes on, comma-separated.
    business_optional_holidays: str = "Carnaval"
    # The firm's own closed days, "2026-01-25,2026-07-09" (admins also add them in the panel).
    business_extra_holidays: str = ""
    # Twilio Content SIDs of approved WhatsApp templates: JSON {"template_name": "HX…"}.
    template_content_sids: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict)

    rasa: RasaSettings = Field(default_factory=RasaSettings)
    twilio: TwilioSettings = Field(default_factory=TwilioSettings)
    smtp: SmtpSettings = Field(default_factory=SmtpSettings)
    imap: ImapSettings = Field(default_factory=ImapSettings)
    login_limit: LoginLimitSettings = Field(default_factory=LoginLimitSettings)
    mailboxes: MailboxSettings = Field(default_factory=MailboxSettings)
    # WhatsApp providers beyond Twilio (issue 15); WHATSAPP_PROVIDER names the default number's.
    whatsapp_provider: str = "twilio"
    meta: MetaSettings = Field(default_factory=MetaSettings)
    d360: D360Settings = Field(default_factory=D360Settings)
    zapi: ZapiSettings = Field(default_factory=ZapiSettings)
    ultramsg: UltramsgSettings = Field(default_factory=UltramsgSettings)
    # Notice sends (api/outreach): notices queued per minute and channel, whatever the batch.
    outreach_email_per_minute: int = Field(default=30, ge=1)
    outreach_whatsapp_per_minute: int = Field(default=20, ge=1)
    # Automations (api/automations): messages rules may queue per case in 24 hours and in all
    # per hour, and how many rules may trigger each other in a chain.
    automation_max_sends_per_case_per_day: int = Field(default=3, ge=0)
    automation_max_sends_per_hour: int = Field(default=500, ge=0)
    automation_max_depth: int = Field(default=3, ge=0, le=20)
    # E-mail backlogs (api/channels/email/imap.py): a pass with at least EMAIL_BATCH_MIN new
    # mails stores them EMAIL_SYNC_BATCH (and EMAIL_SYNC_BATCH_BYTES) per transaction, parsed in
    # EMAIL_PARSE_WORKERS processes (unset: the machine's cores; 0: a thread).
    email_sync_batch: int = Field(default=200, ge=1, le=10_000)
    email_sync_batch_bytes: int = Field(default=32 * 1024 * 1024, ge=64 * 1024)
    email_batch_min: int = Field(default=50, ge=1)
    email_parse_workers: int | None = Field(default=None, ge=0, le=64)

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_networks(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(
                ipaddress.ip_network(part.strip(), strict=False)
                for part in value.split(",")
                if part.strip()
            )
        return value

    @field_validator("template_content_sids", mode="before")
    @classmethod
    def _parse_content_sids(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        if not value.strip():
            return {}
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError("TEMPLATE_CONTENT_SIDS is not valid JSON") from exc
        if not isinstance(parsed, dict):
            raise ValueError('TEMPLATE_CONTENT_SIDS must be a JSON object {"name": "HX…"}')
        return {str(k): str(v) for k, v in parsed.items()}

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, value: str) -> str:
        """Accept plain postgresql:// and sqlite:// URLs and pick the async driver."""
        if value.startswith("postgres://"):
            value = "postgresql://" + value.removeprefix("postgres://")
        if value.startswith("postgresql://"):
            return "postgresql+asyncpg://" + value.removeprefix("postgresql://")
        if value.startswith("sqlite:///"):
            return "sqlite+aiosqlite:///" + value.removeprefix("sqlite:///")
        return value

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def is_development(self) -> bool:
        return self.environment.strip().lower() == "development"


def check_secret_key(settings: Settings) -> None:
    """Refuse to serve with a key anyone can read (the built-in value, an example value) or
    one too short for HS256, unless TRATATIVA_ENV=development."""
    if settings.is_development:
        return
    key = settings.secret_key.get_secret_value()
    if key == DEV_SECRET_KEY or key.lower().startswith("change-me") or not key.strip():
        problem = "SECRET_KEY is not set (or is the public example value)"
    elif len(key) < MIN_SECRET_KEY_LENGTH:
        problem = f"SECRET_KEY is shorter than {MIN_SECRET_KEY_LENGTH} characters"
    else:
        return
    raise ConfigurationError(
        f"{problem}: set a random one, e.g. `python -c 'import secrets; "
        f"print(secrets.token_urlsafe(48))'`, or TRATATIVA_ENV=development on a developer machine"
    )


def ensure_secret_key_file(
    path: Path = SECRET_KEY_FILE, *, settings: Settings | None = None
) -> bool:
    """Create `path` with a random key, readable by its owner only, unless SECRET_KEY is
    configured or the file exists; whether it was created."""
    configured = (settings or get_settings()).secret_key.get_secret_value() != DEV_SECRET_KEY
    if configured or path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_urlsafe(48) + "\n")
    return True


def redis_channel(url: str, name: str) -> str:
    """A pub/sub channel name for the Redis at `url`. Pub/sub ignores the database number, so
    two deployments (or test runs) on one Redis server with different numbers would hear each
    other: the number is part of the name ("tratativa:events" on /3 is "tratativa:events@3")."""
    parts = urlsplit(url)
    number = dict(parse_qsl(parts.query)).get("db", "")
    if not number and parts.scheme in ("redis", "rediss"):
        number = parts.path.strip("/")
    return f"{name}@{number if number.isdigit() else '0'}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Build the settings once per process."""
    return Settings()


def env_secret(name: str) -> str | None:
    """The value of a secret that configuration refers to by its variable's name (a mailbox's
    credentials reference): read from the environment only when needed, never stored."""
    value = os.environ.get(name)
    return value if value else None


def secret_from_environment(name: str) -> SecretStr | None:
    """A secret named by configuration stored elsewhere (a WhatsApp number's `token_env`):
    read from the environment here, the one module that reads it."""
    value = os.environ.get(name.strip()) if name and name.strip() else None
    return SecretStr(value) if value else None
