"""`tratativa mailboxes` — Mailboxes (IMAP, Gmail, Microsoft 365)."""

from __future__ import annotations

import typer

mailboxes_app = typer.Typer(help="Mailboxes (IMAP, Gmail, Microsoft 365).", no_args_is_help=True)
