"""Webhooks of the WhatsApp providers other than Twilio, and the numbers API."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
