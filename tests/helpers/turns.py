"""A turn scheduler that only records what the inbound pipeline asked for."""

from __future__ import annotations

from dataclasses import dataclass, field

from api.conversations.scheduling import TurnRequest


@dataclass
class RecordingScheduler:
    requests: list[TurnRequest] = field(default_factory=list)

    def request_turn(self, request: TurnRequest) -> None:
        self.requests.append(request)

    @property
    def conversation_ids(self) -> list[int]:
        return [r.conversation_id for r in self.requests]
