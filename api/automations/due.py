"""Time-based rules: one evaluation pass as of a given moment."""

from __future__ import annotations

import datetime as dt


async def run_due_rules(now: dt.datetime) -> int:
    """Evaluate every time-based rule as of `now`; return how many actions were taken.
    Running it twice for the same moment takes no action the second time."""
    return 0
