"""The WhatsApp bench matches each reply to the turn it answers (scripts/bench_whatsapp.py).

A turn's replies leave after the service finished that turn and before the conversation's next
turn runs. Matching by the service's finish time stays right when turns take longer than the
infringer's gap between messages; matching by the infringer's latest message does not.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def bench() -> ModuleType:
    name = "bench_whatsapp_under_test"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "scripts/bench_whatsapp.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def reply(phone: str, at: float) -> dict[str, Any]:
    return {"to": f"whatsapp:{phone}", "received_at": at}


def slow_turns() -> tuple[list[Any], list[dict[str, Any]], dict[str, float]]:
    """One infringer writes at 0 s and 1 s; each turn takes 1.5 s and answers with two bubbles."""
    b = bench()
    first = b.Turn(who="+5511999990001", text="oi", sid="SM1", posted_at=100.0)
    second = b.Turn(who="+5511999990001", text="qual o valor?", sid="SM2", posted_at=101.0)
    finished = {"SM1": 101.5, "SM2": 103.0}
    replies = [
        reply(first.who, 101.51),
        reply(first.who, 101.52),
        reply(second.who, 103.01),
        reply(second.who, 103.02),
    ]
    return [first, second], replies, finished


def test_a_slow_turn_keeps_its_own_replies() -> None:
    turns, replies, finished = slow_turns()
    bench().attribute_by_finish(turns, replies, finished)
    first, second = turns
    assert round(first.latency, 2) == 1.52
    assert round(second.latency, 2) == 2.02


def test_matching_by_the_latest_message_loses_the_slow_turn() -> None:
    # What the bench did before it read the finish times: the first turn's replies arrive after
    # the second message, so they were credited to it and the first turn looked unanswered.
    turns, replies, _finished = slow_turns()
    bench().attribute(turns, replies)
    first, second = turns
    assert first.latency is None
    assert round(second.latency, 2) == 2.02


def test_an_unfinished_or_failed_turn_is_unanswered() -> None:
    b = bench()
    done = b.Turn(who="+5511999990002", text="oi", sid="SM3", posted_at=10.0)
    pending = b.Turn(who="+5511999990002", text="e agora?", sid="SM4", posted_at=11.0)
    failed = b.Turn(who="+5511999990003", text="oi", sid="", posted_at=10.0, error=True)
    replies = [reply(done.who, 10.4), reply(done.who, 12.0), reply(failed.who, 10.5)]
    b.attribute_by_finish([done, pending, failed], replies, {"SM3": 10.3})
    # The reply at 12.0 came while the second turn was unfinished: it is still the first's.
    assert round(done.latency, 1) == 2.0
    assert pending.latency is None
    assert failed.latency is None


def test_a_reply_before_any_finished_turn_is_nobodys() -> None:
    b = bench()
    turn = b.Turn(who="+5511999990004", text="oi", sid="SM5", posted_at=5.0)
    b.attribute_by_finish([turn], [reply(turn.who, 5.1)], {"SM5": 5.2})
    assert turn.latency is None
