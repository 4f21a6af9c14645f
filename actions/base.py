"""The one shape of every action: read the turn, run a flow in one transaction, render it."""

from __future__ import annotations

from abc import ABCMeta, abstractmethod
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ConversationPaused, EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from api.assistant.context import BotContext, Turn, load_context
from api.assistant.replies import BotReply
from api.engine.ledger import action_session

Flow = Callable[[BotContext, Tracker], Awaitable[BotReply]]

FALLBACK_INTENTS = frozenset({"nlu_fallback", "out_of_scope"})


def turn_from_tracker(tracker: Tracker) -> Turn:
    latest: dict[str, Any] = tracker.latest_message or {}
    metadata = latest.get("metadata") or {}
    return Turn(
        text=latest.get("text") or "",
        intent=(latest.get("intent") or {}).get("name"),
        entities=list(latest.get("entities") or []),
        slots=dict(tracker.slots),
        channel=str(metadata.get("channel") or "whatsapp"),
    )


def user_intents(tracker: Tracker) -> list[str | None]:
    """Intents of the user's turns in this session, oldest first."""
    return [
        ((event.get("parse_data") or {}).get("intent") or {}).get("name")
        for event in tracker.events
        if event.get("event") == "user"
    ]


def trailing_fallbacks(tracker: Tracker) -> int:
    """How many of the latest user turns in a row the bot did not understand."""
    count = 0
    for intent in reversed(user_intents(tracker)):
        if intent not in FALLBACK_INTENTS:
            break
        count += 1
    return count


def render(reply: BotReply, dispatcher: CollectingDispatcher) -> list[EventType]:
    for say in reply.says:
        dispatcher.utter_message(response=say.response, **say.values)
    events: list[EventType] = [SlotSet(name, value) for name, value in reply.slots.items()]
    if reply.pause:
        events.append(ConversationPaused())
    return events


class FlowAction(Action, metaclass=ABCMeta):
    """Subclasses name the action and the flow; nothing else."""

    action_name: ClassVar[str]

    def name(self) -> str:
        return self.action_name

    @abstractmethod
    async def flow(self, ctx: BotContext, tracker: Tracker) -> BotReply:
        """The api.assistant flow this action runs."""

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        turn = turn_from_tracker(tracker)
        # The action server's transaction, which also records that this turn ran the action.
        async with action_session() as session:
            ctx = await load_context(session, sender_id=tracker.sender_id, turn=turn)
            reply = await self.flow(ctx, tracker)
        return render(reply, dispatcher)
