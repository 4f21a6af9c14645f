"""The intent model the bot runs, in plain scikit-learn so it can be cross-validated quickly.

bot.components.intent_classifier wraps it for Rasa; scripts/nlu_benchmark.py trains the same
class per fold. It reads the normalized text of a message (bot.components.normalizer: lowercase,
no accents, WhatsApp abbreviations expanded, numbers read alike) through three views:

* word unigrams and bigrams (TF-IDF),
* character n-grams inside word boundaries, 2 to 5 (TF-IDF: typos, inflections),
* the domain word classes of bot.lexicon (TF-IDF over class hits: synonyms share weight),

and a linear SVM whose decision values are calibrated into probabilities (Platt scaling,
cross-validated), so the out-of-scope decision can rest on a threshold.

Out of scope (the fallback): a message whose best intent is below `threshold`, or below
`unknown_threshold` when fewer than `min_coverage` of its content words are known from the
in-scope training data ("xyzzy qwerty", "lorem ipsum", "minha sogra chega": words the
case-related examples never use, and an unsure classifier).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.calibration import CalibratedClassifierCV
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.svm import LinearSVC
from spacy.lang.pt.stop_words import STOP_WORDS

from bot.components.normalizer import fold
from bot.lexicon import class_tokens

FALLBACK_INTENT = "nlu_fallback"
OUT_OF_SCOPE = "out_of_scope"
_CONTENT_RE = re.compile(r"[^\W\d_]{2,}|[^\w\s?]", re.UNICODE)
STOPWORDS: frozenset[str] = frozenset(fold(w) for w in STOP_WORDS) | {"?"}


def content_words(normalized: str) -> list[str]:
    """Words that carry meaning: alphabetic (2+ letters) or symbols/emoji, not stopwords."""
    return [w for w in _CONTENT_RE.findall(normalized) if w not in STOPWORDS]


@dataclass
class Decision:
    """What the model makes of one message."""

    intent: str
    confidence: float
    ranking: list[tuple[str, float]]
    coverage: float | None  # share of content words known from in-scope training; None: none
    reason: str = ""  # why it fell back: "unknown words" or "low confidence"


@dataclass
class IntentModel:
    """Normalized text -> intent ranking, with an out-of-scope decision."""

    c: float = 2.0
    lexicon_weight: float = 0.3
    calibration_folds: int = 3
    # Calibrated by scripts/nlu_benchmark.py (see config.yml); below -> nlu_fallback.
    threshold: float = 0.2
    # A message with content words of which fewer than this share are known falls back
    # when its best intent is also below `unknown_threshold`.
    min_coverage: float = 0.34
    unknown_threshold: float = 0.5
    random_state: int = 42
    vocabulary: frozenset[str] = field(default_factory=frozenset)
    pipeline: Any = None

    def _pipeline(self) -> Pipeline:
        features = FeatureUnion(
            [
                (
                    "words",
                    TfidfVectorizer(
                        analyzer="word", ngram_range=(1, 2), sublinear_tf=True, token_pattern=r"\S+"
                    ),
                ),
                (
                    "chars",
                    TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True),
                ),
                ("classes", TfidfVectorizer(analyzer=class_tokens, sublinear_tf=True)),
            ],
            transformer_weights={"words": 1.0, "chars": 1.0, "classes": self.lexicon_weight},
        )
        svm = LinearSVC(C=self.c, random_state=self.random_state)
        # ensemble=False: one SVM on all the data, calibrated on cross-validated decision values
        # (keeping one model instead of one per fold keeps the server's memory down).
        classifier = CalibratedClassifierCV(
            svm, cv=self.calibration_folds, method="sigmoid", ensemble=False
        )
        return Pipeline([("features", features), ("classifier", classifier)])

    def fit(self, normalized: Sequence[str], intents: Sequence[str]) -> IntentModel:
        """Train on normalized texts and their intents."""
        # numpy labels: CalibratedClassifierCV (sklearn 1.1) counts classes with `y == name`.
        self.pipeline = self._pipeline().fit(list(normalized), np.asarray(intents))
        # Known words are those of in-scope examples only: a word seen only in out-of-scope
        # chatter ("sogra", "churrasco") says nothing about the case, so it must not make an
        # unrelated message look familiar.
        self.vocabulary = frozenset(
            w
            for text, intent in zip(normalized, intents, strict=True)
            if intent != OUT_OF_SCOPE
            for w in content_words(text)
        )
        return self

    @property
    def intents(self) -> list[str]:
        """The intents the model knows, in the order of its probability columns."""
        return [str(c) for c in self.pipeline.classes_]

    def coverage(self, normalized: str) -> float | None:
        """Share of the message's content words seen in training (None: no content words)."""
        words = content_words(normalized)
        if not words:
            return None
        return sum(1 for w in words if w in self.vocabulary) / len(words)

    def decide(self, normalized: Sequence[str]) -> list[Decision]:
        """Rank the intents of each text and decide whether it falls back."""
        if self.pipeline is None:
            raise RuntimeError("IntentModel.decide before fit")
        probabilities = self.pipeline.predict_proba(list(normalized))
        names = self.intents
        decisions: list[Decision] = []
        for text, row in zip(normalized, probabilities, strict=True):
            ranking = sorted(
                ((name, float(p)) for name, p in zip(names, row, strict=True)),
                key=lambda item: -item[1],
            )
            best, confidence = ranking[0]
            coverage = self.coverage(text)
            reason = ""
            if (
                coverage is not None
                and coverage < self.min_coverage
                and confidence < self.unknown_threshold
            ):
                reason = "unknown words"
            elif confidence < self.threshold:
                reason = "low confidence"
            intent = FALLBACK_INTENT if reason else best
            decisions.append(Decision(intent, confidence, ranking, coverage, reason))
        return decisions
