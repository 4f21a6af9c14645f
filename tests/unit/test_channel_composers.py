"""What each channel registers with the outbound pipeline, asked without a database."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest

import api.channels  # noqa: F401  (registers every channel's composer)
from api.config import get_settings
from api.conversations.models import Channel, Conversation
from api.conversations.outbound import (
    Outbound,
    WindowClosed,
    channel_label,
    check_can_send,
    has_reply_window,
    window_open_until,
)
from api.errors import ValidationFailed
from api.templates.service import get_template, load_catalog, render_for_conversation

pytestmark = pytest.mark.unit

VARIABLES = {
    "firm_name": "Escritório",
    "brand": "Marca",
    "case_ref": "INF-2026-000001",
    "infringer_name": "Ana",
    "deadline": "01/12/2026",
    "amount": "R$ 1.000,00",
    "payment_link": "https://exemplo/pagamento/x",
}
NOW = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def sids(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TEMPLATE_CONTENT_SIDS", '{"primeiro_contato": "HX0001"}')
    get_settings.cache_clear()
    load_catalog.cache_clear()
    yield
    monkeypatch.delenv("TEMPLATE_CONTENT_SIDS")
    get_settings.cache_clear()
    load_catalog.cache_clear()


def conversation(channel: Channel, last_inbound_at: dt.datetime | None = None) -> Conversation:
    return Conversation(id=1, channel=channel, address="x", last_inbound_at=last_inbound_at)


def test_labels_and_windows_come_from_the_channel() -> None:
    assert channel_label(Channel.WHATSAPP) == "WhatsApp"
    assert channel_label(Channel.EMAIL) == "E-mail"
    email = conversation(Channel.EMAIL, NOW)
    whatsapp = conversation(Channel.WHATSAPP, NOW)
    assert not has_reply_window(email) and window_open_until(email) is None
    assert has_reply_window(whatsapp)
    assert window_open_until(whatsapp) == NOW + dt.timedelta(
        hours=get_settings().whatsapp_window_hours
    )


def test_only_whatsapp_refuses_free_text_after_its_window() -> None:
    late = NOW + dt.timedelta(days=2)
    with pytest.raises(WindowClosed):
        check_can_send(conversation(Channel.WHATSAPP, NOW), None, Outbound(text="oi"), now=late)
    check_can_send(conversation(Channel.EMAIL, NOW), None, Outbound(text="oi"), now=late)


def test_a_template_preview_refuses_what_whatsapp_could_not_send() -> None:
    template = get_template("primeiro_contato")
    with pytest.raises(ValidationFailed, match="Content SID"):
        render_for_conversation(conversation(Channel.WHATSAPP), template, VARIABLES)
    assert "Ana" in render_for_conversation(conversation(Channel.EMAIL), template, VARIABLES)


def test_a_template_with_its_approved_sid_previews_on_whatsapp(sids: None) -> None:
    template = get_template("primeiro_contato")
    text = render_for_conversation(conversation(Channel.WHATSAPP), template, VARIABLES)
    assert text == render_for_conversation(conversation(Channel.EMAIL), template, VARIABLES)
