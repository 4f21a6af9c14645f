"""Cutting a long WhatsApp text into parts Twilio accepts (1,600 characters each)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.channels.whatsapp_twilio.composer import MAX_BODY_CHARS, split_text

pytestmark = pytest.mark.unit


def test_a_short_text_is_one_part() -> None:
    assert split_text("Olá! Tudo bem?") == ["Olá! Tudo bem?"]


def test_cuts_between_paragraphs_first() -> None:
    first, second = "a" * 1000, "b" * 1000
    assert split_text(f"{first}\n\n{second}") == [first, second]


def test_cuts_after_a_sentence_when_a_paragraph_is_too_long() -> None:
    sentence = "O acordo prevê o pagamento em parcelas sem juros. "
    text = sentence * 60  # one paragraph, about 3,000 characters
    parts = split_text(text)
    assert len(parts) == 2
    assert all(len(p) <= MAX_BODY_CHARS for p in parts)
    assert parts[0].endswith("juros.")
    assert " ".join(parts) == text.strip()


def test_a_word_longer_than_the_limit_is_cut_where_it_must() -> None:
    parts = split_text("x" * 4000)
    assert [len(p) for p in parts] == [1600, 1600, 800]


@given(
    st.lists(
        st.text(alphabet=st.sampled_from("abcç .!?\n"), min_size=0, max_size=900),
        min_size=1,
        max_size=8,
    )
)
def test_parts_fit_and_lose_nothing_but_whitespace(chunks: list[str]) -> None:
    text = "".join(chunks)
    parts = split_text(text)
    assert all(len(p) <= MAX_BODY_CHARS for p in parts)
    assert "".join("".join(parts).split()) == "".join(text.split())
