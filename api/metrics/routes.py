"""HTTP API for metrics (JSON and CSV)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
