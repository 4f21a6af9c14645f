"""`tratativa outreach` — send the extrajudicial notice to one case or a selection."""

from __future__ import annotations

import typer

outreach_app = typer.Typer(help="Extrajudicial notices and bulk sends.", no_args_is_help=True)
