"""The checks behind the workspace's forms: template drafts (variables from the fixed list,
WhatsApp order, Content SID), tags, and an analyst's upload (size and type on the bytes)."""

from __future__ import annotations

import pytest

from api.cases.tags import parse_tags
from api.conversations.uploads import UploadRefused, check_upload
from api.errors import ValidationFailed
from api.templates.store import TemplateDraft, UnknownTemplateVariable, check_draft

pytestmark = pytest.mark.unit


def draft(**changes: object) -> TemplateDraft:
    values: dict[str, object] = {
        "name": "Lembrete_Novo",
        "description": "  um   lembrete ",
        "channels": ("email", "whatsapp"),
        "body": "Olá {{ infringer_name }},\n caso {{ case_ref }}.",
        "whatsapp_variables": ("infringer_name", "case_ref"),
        "content_sid": "HX" + "0" * 32,
    }
    values.update(changes)
    return TemplateDraft(**values)  # type: ignore[arg-type]


def test_a_good_draft_is_normalized() -> None:
    checked = check_draft(draft())
    assert checked.name == "lembrete_novo"
    assert checked.body == "Olá {{ infringer_name }}, caso {{ case_ref }}."
    assert checked.description == "um lembrete"
    assert checked.channels == ("email", "whatsapp")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"body": "Seu CPF é {{ cpf }}"}, "Variável desconhecida no modelo: cpf"),
        ({"body": "Olá {{ infringer_name "}, "Erro de sintaxe"),
        ({"name": "x"}, "Nome inválido"),
        ({"channels": ()}, "ao menos um canal"),
        ({"channels": ("sms",)}, "Canal desconhecido"),
        ({"whatsapp_variables": ("infringer_name", "brand")}, "não usa: brand"),
        ({"whatsapp_variables": ("infringer_name",)}, "faltam: case_ref"),
        ({"content_sid": "HX123"}, "Content SID inválido"),
    ],
)
def test_a_bad_draft_says_what_is_wrong(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        check_draft(draft(**changes))
    assert message in refused.value.message


def test_unknown_variable_is_its_own_error() -> None:
    with pytest.raises(UnknownTemplateVariable) as refused:
        check_draft(draft(body="{{ brand }} {{ senha }} {{ cpf }}", whatsapp_variables=()))
    assert refused.value.details["unknown"] == ["cpf", "senha"]


def test_tags_are_normalized_and_unique() -> None:
    assert parse_tags(" Reincidente,  ALTA  prioridade , reincidente,, ") == [
        "reincidente",
        "alta prioridade",
    ]
    with pytest.raises(ValidationFailed):
        parse_tags("x" * 41)


PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n"


def test_upload_type_is_read_from_the_bytes(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    monkeypatch.setenv("STORAGE_DIR", str(tmp_path))
    from api.config import get_settings

    get_settings.cache_clear()
    try:
        stored = check_upload("termo.pdf", PDF)
        assert stored.content_type == "application/pdf" and stored.size == len(PDF)
        with pytest.raises(UploadRefused) as refused:
            check_upload("foto.png", b"MZ\x90\x00 not an image at all")
        assert "não é aceito" in refused.value.message
        with pytest.raises(UploadRefused, match="vazio"):
            check_upload("nada.png", b"")
        monkeypatch.setenv("MAX_ATTACHMENT_BYTES", "10")
        get_settings.cache_clear()
        with pytest.raises(UploadRefused, match="o limite é"):
            check_upload("grande.png", PNG)
    finally:
        get_settings.cache_clear()
