"""`tratativa numbers` — WhatsApp sending numbers and their providers."""

from __future__ import annotations

import typer

numbers_app = typer.Typer(
    help="WhatsApp sending numbers and their providers.", no_args_is_help=True
)
