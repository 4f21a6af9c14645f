"""Webhooks and admin API of mailbox connectors."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
