"""Who may write into a conversation (reply, release, resolve): one rule for the API and the
panel.

The holder writes. A supervisor may also write into a conversation a person holds or awaits
(to cover for a colleague), but never into one the bot holds: the bot and a person must not
both speak (a person claims it first), and never into a closed one."""

from __future__ import annotations

from api.analysts.models import Analyst, Role
from api.conversations.models import Conversation, Holder
from api.errors import Conflict, PermissionDenied


def can_write(conversation: Conversation, analyst: Analyst) -> bool:
    """Whether `analyst` may write into `conversation` now (the panel's reply box asks this)."""
    if conversation.closed_at is not None:
        return False
    if conversation.holder is Holder.HUMAN and conversation.analyst_id == analyst.id:
        return True
    return analyst.has_role(Role.SUPERVISOR) and conversation.holder is not Holder.BOT


def check_can_write(conversation: Conversation, analyst: Analyst) -> None:
    """Raise unless `can_write`: a closed conversation or one the bot holds is a Conflict (claim
    it first), another analyst's is PermissionDenied."""
    if can_write(conversation, analyst):
        return
    if conversation.closed_at is not None:
        raise Conflict("Esta conversa foi encerrada.")
    if conversation.holder is Holder.HUMAN:
        raise PermissionDenied("Outro analista está com esta conversa.")
    raise Conflict("Assuma a conversa antes de escrever nela.")
