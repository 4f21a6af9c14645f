"""HTTP API for notices and bulk sends."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
