"""When a person will answer: business hours in the firm's time zone."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from api.config import Settings

_WEEKDAYS_PT = ("segunda-feira", "terça-feira", "quarta-feira", "quinta-feira", "sexta-feira",
                "sábado", "domingo")  # fmt: skip


@dataclass(frozen=True)
class BusinessHours:
    timezone: ZoneInfo
    start_hour: int
    end_hour: int
    days: frozenset[int]

    @classmethod
    def from_settings(cls, settings: Settings) -> BusinessHours:
        days = frozenset(int(d) for d in settings.business_days.split(",") if d.strip())
        return cls(
            ZoneInfo(settings.business_timezone),
            settings.business_hours_start,
            settings.business_hours_end,
            days,
        )

    def is_open(self, moment: dt.datetime) -> bool:
        local = moment.astimezone(self.timezone)
        return local.weekday() in self.days and self.start_hour <= local.hour < self.end_hour

    def next_opening(self, moment: dt.datetime) -> dt.datetime:
        local = moment.astimezone(self.timezone)
        for offset in range(8):
            day = (local + dt.timedelta(days=offset)).date()
            opening = dt.datetime.combine(day, dt.time(self.start_hour), tzinfo=self.timezone)
            if day.weekday() in self.days and opening > local:
                return opening
        raise ValueError("no business day configured")

    def describe_reply_time(self, moment: dt.datetime) -> str:
        """Portuguese phrase for when a person will answer, as the bot tells the infringer."""
        if self.is_open(moment):
            return "em breve, ainda hoje no horário de atendimento"
        opening = self.next_opening(moment)
        local = moment.astimezone(self.timezone)
        if opening.date() == local.date():
            when = "hoje"
        elif opening.date() == local.date() + dt.timedelta(days=1):
            when = "amanhã"
        else:
            # "na segunda-feira", but "no sábado", "no domingo".
            article = "no" if opening.weekday() >= 5 else "na"
            when = f"{article} {_WEEKDAYS_PT[opening.weekday()]}"
        return f"{when} a partir das {opening.hour}h (horário de Brasília)"
