"""Panel: automation rules and outreach progress."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
