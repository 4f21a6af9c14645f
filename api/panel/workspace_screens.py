"""Panel: cases list, people, templates, unmatched mail, users."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
