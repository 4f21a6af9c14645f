"""HTTP API for automation rules."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
