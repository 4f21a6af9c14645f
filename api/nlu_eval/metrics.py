"""Intent and entity metrics over NLU predictions (pure functions, no Rasa import)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypedDict


class EntityDict(TypedDict, total=False):
    """An entity as scripts/rasa_nlu_predict.py writes it."""

    entity: str
    value: Any
    start: int
    end: int
    extractor: str


@dataclass(frozen=True)
class Prediction:
    """One example: what was expected and what the model said."""

    text: str
    expected_intent: str
    predicted_intent: str | None
    confidence: float = 0.0
    expected_entities: tuple[tuple[str, str], ...] = ()
    predicted_entities: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_dict(cls, row: Mapping[str, Any]) -> Prediction:
        """Build from one JSON line of scripts/rasa_nlu_predict.py."""
        return cls(
            text=str(row.get("text", "")),
            expected_intent=str(row["expected_intent"]),
            predicted_intent=(
                None if row.get("predicted_intent") is None else str(row["predicted_intent"])
            ),
            confidence=float(row.get("confidence") or 0.0),
            expected_entities=entity_spans(row.get("expected_entities") or []),
            predicted_entities=entity_spans(row.get("predicted_entities") or []),
        )

    @property
    def is_correct(self) -> bool:
        """Whether the predicted intent is the expected one."""
        return self.predicted_intent == self.expected_intent


@dataclass(frozen=True)
class Scores:
    """Precision, recall, F1 and support (the number of expected items)."""

    precision: float
    recall: float
    f1: float
    support: int

    def as_dict(self) -> dict[str, float | int]:
        """JSON-friendly form."""
        return {
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "support": self.support,
        }


@dataclass(frozen=True)
class ConfusedPair:
    """An expected intent read as another one, and how often."""

    expected: str
    predicted: str
    count: int


@dataclass(frozen=True)
class Report:
    """Everything `tratativa eval nlu` prints."""

    examples: int
    intent_accuracy: float
    intent_macro_f1: float
    per_intent: dict[str, Scores]
    confused_pairs: list[ConfusedPair]
    entity_overall: Scores
    per_entity: dict[str, Scores]
    errors: list[Prediction] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The --json form."""
        return {
            "examples": self.examples,
            "intent_accuracy": self.intent_accuracy,
            "intent_macro_f1": self.intent_macro_f1,
            "per_intent": {name: s.as_dict() for name, s in self.per_intent.items()},
            "confused_pairs": [
                {"expected": p.expected, "predicted": p.predicted, "count": p.count}
                for p in self.confused_pairs
            ],
            "entity_f1": self.entity_overall.f1,
            "entity_precision": self.entity_overall.precision,
            "entity_recall": self.entity_overall.recall,
            "entity": {name: s.as_dict() for name, s in self.per_entity.items()},
        }


def normalize_value(value: Any) -> str:
    """Entity values compared as text ("1500.00", "5", "+5511987654321")."""
    if value is None:
        return ""
    return str(value).strip()


def entity_pairs(entities: Iterable[Mapping[str, Any]]) -> tuple[tuple[str, str], ...]:
    """(entity, normalized value) pairs, sorted, duplicates kept (a multiset)."""
    return tuple(sorted((str(e["entity"]), normalize_value(e.get("value"))) for e in entities))


def entity_spans(entities: Iterable[Mapping[str, Any]]) -> tuple[tuple[str, str], ...]:
    """(entity, "start:end") pairs, as `rasa test` scores entities: by label and span.

    The value is not compared: an extractor that normalizes "145.382.206-20" to
    "14538220620" found the same entity as the annotation. An entity without offsets falls
    back to its value.
    """
    pairs = []
    for e in entities:
        start, end = e.get("start"), e.get("end")
        where = f"{start}:{end}" if start is not None and end is not None else None
        pairs.append((str(e["entity"]), where or normalize_value(e.get("value"))))
    return tuple(sorted(pairs))


def _ratio(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else 0.0


def scores(true_positives: int, predicted: int, expected: int) -> Scores:
    """Precision/recall/F1 from counts; 0.0 where a denominator is zero."""
    precision = _ratio(true_positives, predicted)
    recall = _ratio(true_positives, expected)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return Scores(precision=precision, recall=recall, f1=f1, support=expected)


def intent_scores(predictions: Sequence[Prediction]) -> dict[str, Scores]:
    """Per expected intent; intents only ever predicted (e.g. nlu_fallback) are left out."""
    expected = Counter(p.expected_intent for p in predictions)
    predicted = Counter(p.predicted_intent for p in predictions if p.predicted_intent)
    correct = Counter(p.expected_intent for p in predictions if p.is_correct)
    return {
        name: scores(correct[name], predicted[name], expected[name]) for name in sorted(expected)
    }


def confused_pairs(predictions: Sequence[Prediction], top: int = 10) -> list[ConfusedPair]:
    """The most frequent (expected -> predicted) mistakes, most frequent first."""
    counts = Counter(
        (p.expected_intent, p.predicted_intent or "<none>") for p in predictions if not p.is_correct
    )
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return [ConfusedPair(expected=e, predicted=pr, count=c) for (e, pr), c in ordered[:top]]


def entity_scores(predictions: Sequence[Prediction]) -> tuple[Scores, dict[str, Scores]]:
    """Overall and per-type scores, matching (entity, span) pairs per example as multisets."""
    true_positives: Counter[str] = Counter()
    expected: Counter[str] = Counter()
    predicted: Counter[str] = Counter()
    for p in predictions:
        want = Counter(p.expected_entities)
        got = Counter(p.predicted_entities)
        for (entity, _), n in want.items():
            expected[entity] += n
        for (entity, _), n in got.items():
            predicted[entity] += n
        for (entity, _), n in (want & got).items():
            true_positives[entity] += n
    overall = scores(sum(true_positives.values()), sum(predicted.values()), sum(expected.values()))
    per_type = {
        name: scores(true_positives[name], predicted[name], expected[name])
        for name in sorted(set(expected) | set(predicted))
    }
    return overall, per_type


def evaluate(predictions: Sequence[Prediction], top_confusions: int = 10) -> Report:
    """The full report."""
    per_intent = intent_scores(predictions)
    overall, per_entity = entity_scores(predictions)
    correct = sum(1 for p in predictions if p.is_correct)
    return Report(
        examples=len(predictions),
        intent_accuracy=_ratio(correct, len(predictions)),
        intent_macro_f1=(
            sum(s.f1 for s in per_intent.values()) / len(per_intent) if per_intent else 0.0
        ),
        per_intent=per_intent,
        confused_pairs=confused_pairs(predictions, top_confusions),
        entity_overall=overall,
        per_entity=per_entity,
        errors=[p for p in predictions if not p.is_correct],
    )
