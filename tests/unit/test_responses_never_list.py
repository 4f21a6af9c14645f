"""Every response the bot can say stays within DOMAIN.md's "What the bot must never do"."""

import re
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.unit

DOMAIN = yaml.safe_load((Path(__file__).parents[2] / "domain.yml").read_text(encoding="utf-8"))

FORBIDDEN = {
    "threat of prison": r"\bpris[aã]o\b|\bpreso\b|\bcadeia\b|\bdeten[cç][aã]o\b",
    "police": r"\bpol[ií]cia\b|\bdelegacia\b|\bboletim de ocorr[eê]ncia\b",
    "credit bureau": r"\bserasa\b|\bspc\b|\bboa vista\b|nome sujo|negativa[cç][aã]o|negativar",
    "existing lawsuit": r"\bprocesso\b|a[cç][aã]o judicial|\bprocessad|\bjuiz\b|\bju[ií]za\b|"
    r"\btribunal\b|\bsenten[cç]a\b|\bcita[cç][aã]o\b|\bintima[cç][aã]o\b",
    "posing as authority": r"\binpi\b|\bsomos advogad|\bsou advogad|\bpoder judici[aá]rio\b|"
    r"\bminist[eé]rio p[uú]blico\b|\bjusti[cç]a\b",
    "crime talk": r"\bcrime\b|\bcriminos|\bbandid|\bladr[aã]o\b|\bfalsific",
    "invented amount": r"R\$\s*\d|\b\d+[.,]?\d*\s*(reais|mil)\b",
    "invented deadline": r"\b\d+\s*(dias?|horas?|semanas?|meses)\b",
    "legal advice": r"\bvoc[eê] (deve|deveria) (contratar|procurar)\b|\brecomendamos que voc[eê]\b",
    "insult": r"\bidiota\b|\bburro\b|\bvagabund|\bpicaret",
    "exposure": r"\bvamos (divulgar|expor|publicar)\b|\bseus clientes (v[aã]o|ser[aã]o)\b",
    "urgency pressure": r"\b[uú]ltima chance\b|\bimediatamente\b|\burgente\b",
}


def all_texts() -> list[tuple[str, str]]:
    return [
        (name, variant.get("text", ""))
        for name, variants in DOMAIN["responses"].items()
        for variant in variants
    ]


def test_there_are_responses_for_both_channels() -> None:
    for name, variants in DOMAIN["responses"].items():
        channels = {v.get("channel", "default") for v in variants}
        assert channels == {"default", "email"}, name


@pytest.mark.parametrize(("name", "text"), all_texts())
def test_response_has_no_forbidden_content(name: str, text: str) -> None:
    hits = {
        label: match.group(0)
        for label, pattern in FORBIDDEN.items()
        if (match := re.search(pattern, text, re.IGNORECASE))
    }
    assert hits == {}, f"{name}: {hits}"


@pytest.mark.parametrize(
    "text",
    [
        "Se não pagar, vamos chamar a polícia.",
        "Você pode ser preso.",
        "Seu nome vai para o Serasa.",
        "Já existe um processo contra você.",
        "Pague R$ 5.000 hoje.",
        "Você tem 2 dias.",
        "Somos advogados da marca.",
    ],
)
def test_the_scanner_catches_forbidden_examples(text: str) -> None:
    assert any(re.search(p, text, re.IGNORECASE) for p in FORBIDDEN.values())


def test_payment_responses_only_use_values_from_the_database() -> None:
    payment = " ".join(v["text"] for v in DOMAIN["responses"]["utter_payment_details"])
    for variable in ("{pix}", "{boleto}", "{payee}", "{amount}", "{due_date}"):
        assert variable in payment
    assert "conta pessoal" not in payment.lower() or "nunca" in payment.lower()
