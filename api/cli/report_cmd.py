"""`tratativa report` — the metrics tables in the terminal, and as CSV."""

from __future__ import annotations


def report() -> None:
    """Metrics report (per channel, per analyst, per brand)."""
    raise SystemExit("erro: relatório ainda não disponível")
