"""HTTP API for alerts, ownership and the calendar."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
