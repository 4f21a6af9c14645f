"""What a flow answers: responses to utter (by name, with values), slots to set, pause or not."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Say:
    response: str
    values: dict[str, str] = field(default_factory=dict)


@dataclass
class BotReply:
    says: list[Say] = field(default_factory=list)
    slots: dict[str, Any] = field(default_factory=dict)
    pause: bool = False

    def say(self, response: str, **values: str) -> BotReply:
        self.says.append(Say(response, values))
        return self
