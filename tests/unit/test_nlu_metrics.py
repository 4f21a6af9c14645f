"""NLU metrics on small handmade predictions with answers worked out by hand."""

from __future__ import annotations

import pytest

from api.nlu_eval.metrics import (
    ConfusedPair,
    Prediction,
    entity_pairs,
    entity_scores,
    evaluate,
    scores,
)

pytestmark = pytest.mark.unit


def _p(
    expected: str,
    predicted: str | None,
    *,
    want: tuple[tuple[str, str], ...] = (),
    got: tuple[tuple[str, str], ...] = (),
) -> Prediction:
    return Prediction(
        text=f"{expected}->{predicted}",
        expected_intent=expected,
        predicted_intent=predicted,
        expected_entities=tuple(sorted(want)),
        predicted_entities=tuple(sorted(got)),
    )


PREDICTIONS = [
    _p("greet", "greet"),
    _p("greet", "greet"),
    _p("greet", "affirm"),
    _p("affirm", "affirm"),
    _p("deny", "affirm"),
    _p("deny", "nlu_fallback"),
]


def test_accuracy_and_macro_f1() -> None:
    report = evaluate(PREDICTIONS)

    # greet: P 2/2, R 2/3, F1 0.8; affirm: P 1/3, R 1/1, F1 0.5; deny: P 0, R 0, F1 0.
    assert report.examples == 6
    assert report.intent_accuracy == pytest.approx(3 / 6)
    assert report.per_intent["greet"].precision == pytest.approx(1.0)
    assert report.per_intent["greet"].recall == pytest.approx(2 / 3)
    assert report.per_intent["greet"].f1 == pytest.approx(0.8)
    assert report.per_intent["affirm"].f1 == pytest.approx(0.5)
    assert report.per_intent["deny"].f1 == 0.0
    assert report.per_intent["deny"].support == 2
    assert report.intent_macro_f1 == pytest.approx((0.8 + 0.5 + 0.0) / 3)


def test_intents_only_predicted_are_not_averaged() -> None:
    report = evaluate(PREDICTIONS)

    assert "nlu_fallback" not in report.per_intent
    assert set(report.per_intent) == {"greet", "affirm", "deny"}


def test_confused_pairs_most_frequent_first() -> None:
    predictions = [*PREDICTIONS, _p("deny", "affirm"), _p("greet", None)]

    pairs = evaluate(predictions).confused_pairs

    assert pairs[0] == ConfusedPair("deny", "affirm", 2)
    assert ConfusedPair("greet", "<none>", 1) in pairs
    assert len(pairs) == 4


def test_confused_pairs_top_n() -> None:
    predictions = [_p(f"i{n}", "other") for n in range(15)]

    assert len(evaluate(predictions, top_confusions=10).confused_pairs) == 10


def test_entity_scores_match_pairs_as_multisets() -> None:
    predictions = [
        # both amounts found, one wrong installment count
        _p(
            "negotiate_amount",
            "negotiate_amount",
            want=(("amount", "800.00"), ("amount", "800.00"), ("installments", "5")),
            got=(("amount", "800.00"), ("amount", "800.00"), ("installments", "4")),
        ),
        # one CPF missed, one spurious phone
        _p("inform_document", "inform_document", want=(("cpf", "14538220620"),)),
        _p("greet", "greet", got=(("phone", "+5511987654321"),)),
    ]

    overall, per_type = entity_scores(predictions)

    # expected 4, predicted 4, true positives 2
    assert overall == scores(2, 4, 4)
    assert overall.f1 == pytest.approx(0.5)
    assert per_type["amount"].f1 == pytest.approx(1.0)
    assert per_type["installments"].f1 == 0.0
    assert per_type["cpf"].recall == 0.0
    assert per_type["cpf"].support == 1
    assert per_type["phone"].precision == 0.0
    assert per_type["phone"].support == 0


def test_duplicate_prediction_counts_once() -> None:
    prediction = _p(
        "ask_amount",
        "ask_amount",
        want=(("amount", "100.00"),),
        got=(("amount", "100.00"), ("amount", "100.00")),
    )

    overall, _ = entity_scores([prediction])

    assert overall.precision == pytest.approx(0.5)
    assert overall.recall == pytest.approx(1.0)


def test_from_dict_reads_predict_script_rows() -> None:
    row = {
        "text": "meu cpf é 145.382.206-20",
        "expected_intent": "inform_document",
        "expected_entities": [{"entity": "cpf", "value": "14538220620", "start": 10, "end": 24}],
        "predicted_intent": "inform_document",
        "confidence": 0.93,
        "predicted_entities": [
            {
                "entity": "cpf",
                "value": "14538220620",
                "start": 10,
                "end": 24,
                "extractor": "IdentifierEntityExtractor",
            }
        ],
    }

    prediction = Prediction.from_dict(row)

    assert prediction.is_correct
    assert prediction.confidence == pytest.approx(0.93)
    assert prediction.expected_entities == (("cpf", "10:24"),)
    assert prediction.predicted_entities == prediction.expected_entities


def test_entities_are_scored_by_label_and_span_not_by_value() -> None:
    """A value normalized to digits is the entity the annotation marks (as `rasa test`)."""
    row = {
        "text": "cnpj 11.222.333/0001-81 e 5x",
        "expected_intent": "inform_document",
        "expected_entities": [
            {"entity": "cnpj", "value": "11.222.333/0001-81", "start": 5, "end": 23},
            {"entity": "installments", "value": "5", "start": 26, "end": 28},
        ],
        "predicted_intent": "inform_document",
        "predicted_entities": [
            {"entity": "cnpj", "value": "11222333000181", "start": 5, "end": 23},
            # right value, wrong span: a miss
            {"entity": "installments", "value": "5", "start": 25, "end": 28},
        ],
    }

    overall, per_type = entity_scores([Prediction.from_dict(row)])

    assert per_type["cnpj"].f1 == pytest.approx(1.0)
    assert per_type["installments"].f1 == 0.0
    assert overall == scores(1, 2, 2)


def test_entity_values_compared_as_text() -> None:
    assert entity_pairs([{"entity": "installments", "value": 5}]) == (("installments", "5"),)
    assert entity_pairs([{"entity": "url"}]) == (("url", ""),)


def test_empty_predictions() -> None:
    report = evaluate([])

    assert report.intent_accuracy == 0.0
    assert report.intent_macro_f1 == 0.0
    assert report.entity_overall.f1 == 0.0


def test_json_form_has_the_documented_keys() -> None:
    data = evaluate(PREDICTIONS).as_dict()

    assert {
        "intent_accuracy",
        "intent_macro_f1",
        "per_intent",
        "entity_f1",
        "entity",
        "confused_pairs",
    } <= set(data)
    assert set(data["per_intent"]["greet"]) == {"precision", "recall", "f1", "support"}
