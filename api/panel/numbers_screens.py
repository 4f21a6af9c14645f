"""Panel: WhatsApp numbers (admins)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
