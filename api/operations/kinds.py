"""The alert kinds, their pt-BR labels and defaults; an admin's changes live in the
`operations_settings` row "alerts" and are merged over these defaults."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from api.db import utcnow
from api.errors import ValidationFailed
from api.operations.models import OperationsSetting

ALERT_SETTINGS_KEY = "alerts"

INFRINGER_REPLIED = "infringer_replied"
EMAIL_IGNORED = "email_ignored"
HANDOFF_FIRST_RESPONSE = "handoff_first_response"
HANDOFF_NEXT_RESPONSE = "handoff_next_response"
FOLLOW_UP_DUE = "follow_up_due"
DEADLINE_APPROACHING = "deadline_approaching"
DEADLINE_PASSED = "deadline_passed"
INSTALLMENT_OVERDUE = "installment_overdue"
PAYMENT_UNCONFIRMED = "payment_unconfirmed"
DELIVERY_FAILED = "delivery_failed"
OPT_OUT = "opt_out"
DATA_REQUEST = "data_request"


@dataclass(frozen=True)
class AlertKind:
    code: str
    label: str
    severity: str
    # Breaches also go to supervisors, whoever owns the case.
    breach: bool
    defaults: dict[str, Any]


ALERT_KINDS: dict[str, AlertKind] = {
    k.code: k
    for k in (
        AlertKind(INFRINGER_REPLIED, "Infrator respondeu", "info", False, {}),
        # "channels": the channels whose silence counts ("e-mail ignored").
        AlertKind(
            EMAIL_IGNORED,
            "E-mail sem resposta",
            "warning",
            False,
            {"business_days": 3, "channels": ["email"]},
        ),
        AlertKind(
            HANDOFF_FIRST_RESPONSE,
            "Atendimento humano aguardando primeira resposta",
            "critical",
            True,
            {"business_minutes": 30},
        ),
        AlertKind(
            HANDOFF_NEXT_RESPONSE,
            "Conversa assumida aguardando resposta",
            "warning",
            True,
            {"business_minutes": 60},
        ),
        AlertKind(FOLLOW_UP_DUE, "Acompanhamento para hoje", "info", False, {}),
        AlertKind(
            DEADLINE_APPROACHING,
            "Prazo da notificação se aproximando",
            "warning",
            False,
            {"business_days_before": 2},
        ),
        AlertKind(DEADLINE_PASSED, "Prazo da notificação vencido", "warning", True, {}),
        AlertKind(INSTALLMENT_OVERDUE, "Parcela vencida", "critical", True, {"grace_days": 0}),
        AlertKind(
            PAYMENT_UNCONFIRMED,
            "Pagamento informado e não confirmado",
            "warning",
            False,
            {"business_days": 2},
        ),
        AlertKind(DELIVERY_FAILED, "Falha na entrega", "warning", False, {}),
        AlertKind(OPT_OUT, "Pedido de descadastro (opt-out)", "critical", True, {}),
        AlertKind(DATA_REQUEST, "Pedido de dados pessoais (LGPD)", "critical", True, {}),
    )
}


def kind_label(code: str) -> str:
    kind = ALERT_KINDS.get(code)
    return kind.label if kind is not None else code


@dataclass(frozen=True)
class AlertSettings:
    """Every kind's effective settings: {"enabled": bool, **thresholds}."""

    values: dict[str, dict[str, Any]]

    def enabled(self, code: str) -> bool:
        return bool(self.values[code].get("enabled", True))

    def get(self, code: str, name: str) -> Any:
        return self.values[code][name]


def merge_alert_settings(override: dict[str, Any] | None) -> AlertSettings:
    values: dict[str, dict[str, Any]] = {}
    for code, kind in ALERT_KINDS.items():
        merged = {"enabled": True, **kind.defaults}
        merged.update((override or {}).get(code) or {})
        values[code] = merged
    return AlertSettings(values)


def check_alert_settings(changes: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Validate an admin's changes: known kinds, known names, sane values."""
    clean: dict[str, dict[str, Any]] = {}
    for code, fields in changes.items():
        kind = ALERT_KINDS.get(code)
        if kind is None:
            raise ValidationFailed(f"Tipo de alerta desconhecido: {code!r}.")
        if not isinstance(fields, dict):
            raise ValidationFailed(f"Configuração inválida para {code!r}.")
        out: dict[str, Any] = {}
        for name, value in fields.items():
            if name == "enabled":
                if not isinstance(value, bool):
                    raise ValidationFailed(f"{code}.enabled deve ser verdadeiro ou falso.")
            elif name == "channels":
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    raise ValidationFailed(f"{code}.channels deve ser uma lista de canais.")
            elif name in kind.defaults:
                if (
                    isinstance(value, bool)
                    or not isinstance(value, int)
                    or not 0 <= value <= 10_000
                ):
                    raise ValidationFailed(f"{code}.{name} deve ser um inteiro entre 0 e 10000.")
            else:
                raise ValidationFailed(f"{code}: opção desconhecida {name!r}.")
            out[name] = value
        clean[code] = out
    return clean


_CACHED = "operations.alert_settings"


async def get_alert_settings(session: AsyncSession) -> AlertSettings:
    """The alert settings in force, read once per session: an event consumer handles a batch
    of events in one transaction, and each event asked for them again."""
    cached = session.info.get(_CACHED)
    if isinstance(cached, AlertSettings):
        return cached
    override = await session.scalar(_alert_settings_statement())
    settings = merge_alert_settings(override)
    session.info[_CACHED] = settings
    return settings


@functools.cache
def _alert_settings_statement() -> sa.Select[dict[str, Any]]:
    """The stored override (built once: every pass of the alert consumers reads it)."""
    return sa.select(OperationsSetting.value).where(OperationsSetting.key == ALERT_SETTINGS_KEY)


async def do_update_alert_settings(
    session: AsyncSession, *, changes: dict[str, Any], analyst_id: int | None
) -> AlertSettings:
    """Merge an admin's validated changes into the stored override."""
    clean = check_alert_settings(changes)
    session.info.pop(_CACHED, None)
    row = await session.get(OperationsSetting, ALERT_SETTINGS_KEY, with_for_update=True)
    current: dict[str, Any] = dict(row.value) if row is not None else {}
    for code, fields in clean.items():
        current[code] = {**(current.get(code) or {}), **fields}
    if row is None:
        session.add(
            OperationsSetting(
                key=ALERT_SETTINGS_KEY, value=current, updated_at=utcnow(), updated_by_id=analyst_id
            )
        )
    else:
        row.value = current
        row.updated_at = utcnow()
        row.updated_by_id = analyst_id
    await session.flush()
    return merge_alert_settings(current)
