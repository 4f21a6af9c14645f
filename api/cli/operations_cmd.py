"""`tratativa operations` — Alerts, automations and outreach."""

from __future__ import annotations

import typer

operations_app = typer.Typer(help="Alerts, automations and outreach.", no_args_is_help=True)
