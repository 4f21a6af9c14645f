"""Settings, read from the environment (and an optional .env file) by one cached getter."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SQLITE_PATH = PROJECT_ROOT / "var" / "tratativa.db"


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


class Settings(_Group):
    """Everything the service reads from its environment."""

    database_url: str = Field(default_factory=lambda: f"sqlite+aiosqlite:///{DEFAULT_SQLITE_PATH}")
    redis_url: str | None = None
    secret_key: SecretStr = SecretStr("dev-insecure-secret-change-me-in-production-0000")
    public_base_url: str = "http://127.0.0.1:8000"
    host: str = "127.0.0.1"
    port: int = 8000
    environment: str = "development"
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

    rasa: RasaSettings = Field(default_factory=RasaSettings)
    twilio: TwilioSettings = Field(default_factory=TwilioSettings)
    smtp: SmtpSettings = Field(default_factory=SmtpSettings)
    imap: ImapSettings = Field(default_factory=ImapSettings)

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


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Build the settings once per process."""
    return Settings()
