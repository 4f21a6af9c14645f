"""The intent model the bot runs, in plain scikit-learn so it can be cross-validated quickly.

bot.components.intent_classifier wraps it for Rasa; scripts/nlu_benchmark.py trains the same
class per fold. It reads the normalized text of a message (bot.components.normalizer: lowercase,
no accents, WhatsApp abbreviations expanded, numbers read alike) through three views:

* word unigrams and bigrams (TF-IDF),
* character n-grams inside word boundaries, 2 to 5 (TF-IDF: typos, inflections),
* the domain word classes of bot.lexicon (TF-IDF over class hits: synonyms share weight),

and a linear SVM whose decision values are calibrated into probabilities (Platt scaling,
cross-validated), so the out-of-scope decision can rest on a threshold. The training examples
are put in one order (intent, text) before fitting, and the calibration folds are shuffled, so
the model is the same whichever order Rasa or the benchmark lists the files in.

Out of scope (the fallback): a message whose best intent is below `threshold`, or below
`unknown_threshold` when fewer than `min_coverage` of its content words are known from the
in-scope training data ("xyzzy qwerty", "lorem ipsum", "minha sogra chega": words the
case-related examples never use, and an unsure classifier).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import sparse
from scipy.special import expit
from sklearn.calibration import CalibratedClassifierCV
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.model_selection import StratifiedKFold
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
    # "none", or "balanced" (every intent weighs the same in the SVM's loss; out_of_scope has
    # ~5x the examples of an intent). config.yml says which 5-fold CV chose.
    class_weight: str = "none"
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
    # A fitted model restored from plain data (see `export`/`restore`): no sklearn estimator.
    restored: _Restored | None = None

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
        svm = LinearSVC(
            C=self.c,
            random_state=self.random_state,
            class_weight=None if self.class_weight == "none" else self.class_weight,
        )
        # ensemble=False: one SVM on all the data, calibrated on cross-validated decision values
        # (keeping one model instead of one per fold keeps the server's memory down).
        classifier = CalibratedClassifierCV(
            svm,
            # Shuffled folds: unshuffled, each fold would be one alphabetical run per intent.
            cv=StratifiedKFold(
                self.calibration_folds, shuffle=True, random_state=self.random_state
            ),
            method="sigmoid",
            ensemble=False,
        )
        return Pipeline([("features", features), ("classifier", classifier)])

    def fit(self, normalized: Sequence[str], intents: Sequence[str]) -> IntentModel:
        """Train on normalized texts and their intents."""
        # One order whatever the caller's (Rasa's importer and the benchmark list the examples
        # differently): the calibration folds, and so the probabilities, must not depend on it.
        pairs = sorted(zip(normalized, intents, strict=True), key=lambda p: (str(p[1]), p[0]))
        normalized = [t for t, _ in pairs]
        intents = [str(i) for _, i in pairs]
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
        if self.restored is not None:
            return list(self.restored.classes)
        return [str(c) for c in self.pipeline.classes_]

    def export(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """The fitted model as plain data: JSON-able metadata and numeric arrays.

        What the server needs to predict (each view's terms and idf, the SVM's coefficients,
        the sigmoid calibration of each class, the in-scope vocabulary), so loading it costs
        neither a refit nor a pickle. `restore` reads it back; predictions are the same.
        """
        if self.pipeline is None:
            raise RuntimeError("IntentModel.export before fit")
        features = self.pipeline.named_steps["features"]
        calibrated = self.pipeline.named_steps["classifier"].calibrated_classifiers_[0]
        svm = calibrated.base_estimator
        weights = features.transformer_weights or {}
        views: list[dict[str, Any]] = []
        arrays: dict[str, np.ndarray] = {
            "coef": np.asarray(svm.coef_, dtype=np.float64),
            "intercept": np.asarray(svm.intercept_, dtype=np.float64),
            "sigmoid_a": np.asarray([c.a_ for c in calibrated.calibrators], dtype=np.float64),
            "sigmoid_b": np.asarray([c.b_ for c in calibrated.calibrators], dtype=np.float64),
        }
        for name, vectorizer in features.transformer_list:
            index = vectorizer.vocabulary_
            views.append(
                {
                    "name": name,
                    "weight": float(weights.get(name, 1.0)),
                    "terms": sorted(index, key=index.__getitem__),
                }
            )
            arrays[f"idf_{name}"] = np.asarray(vectorizer.idf_, dtype=np.float64)
        meta = {
            "classes": [str(c) for c in svm.classes_],
            "views": views,
            "vocabulary": sorted(self.vocabulary),
        }
        return meta, arrays

    def restore(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> IntentModel:
        """Load what `export` wrote (the analyzers come from this code's own pipeline)."""
        analyzers = {
            name: vectorizer.build_analyzer()
            for name, vectorizer in self._pipeline().named_steps["features"].transformer_list
        }
        views = [
            _View(
                analyzer=analyzers[view["name"]],
                index={term: i for i, term in enumerate(view["terms"])},
                idf=np.asarray(arrays[f"idf_{view['name']}"]),
                weight=float(view["weight"]),
            )
            for view in meta["views"]
        ]
        self.restored = _Restored(
            classes=tuple(meta["classes"]),
            views=views,
            coef=np.asarray(arrays["coef"]),
            intercept=np.asarray(arrays["intercept"]),
            sigmoid_a=np.asarray(arrays["sigmoid_a"]),
            sigmoid_b=np.asarray(arrays["sigmoid_b"]),
        )
        self.vocabulary = frozenset(meta["vocabulary"])
        self.pipeline = None
        return self

    def probabilities(self, normalized: Sequence[str]) -> np.ndarray:
        """Calibrated probabilities, one row per text, columns in the order of `intents`."""
        if self.restored is not None:
            return self.restored.predict_proba(list(normalized))
        if self.pipeline is None:
            raise RuntimeError("IntentModel used before fit")
        return np.asarray(self.pipeline.predict_proba(list(normalized)))

    def coverage(self, normalized: str) -> float | None:
        """Share of the message's content words seen in training (None: no content words)."""
        words = content_words(normalized)
        if not words:
            return None
        return sum(1 for w in words if w in self.vocabulary) / len(words)

    def decide(self, normalized: Sequence[str]) -> list[Decision]:
        """Rank the intents of each text and decide whether it falls back."""
        probabilities = self.probabilities(normalized)
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


@dataclass
class _View:
    """One restored TF-IDF view: how it reads a text, its terms, their idf, its weight."""

    analyzer: Any
    index: dict[str, int]
    idf: np.ndarray
    weight: float

    def transform(self, texts: Sequence[str]) -> Any:
        """As TfidfVectorizer(sublinear_tf=True, norm="l2") did, times the union's weight."""
        rows: list[int] = []
        cols: list[int] = []
        values: list[float] = []
        for row, text in enumerate(texts):
            counts = Counter(self.index[t] for t in self.analyzer(text) if t in self.index)
            for col, count in counts.items():
                rows.append(row)
                cols.append(col)
                values.append((1.0 + math.log(count)) * float(self.idf[col]))
        matrix = sparse.csr_matrix(
            (values, (rows, cols)), shape=(len(texts), len(self.index)), dtype=np.float64
        )
        norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
        norms[norms == 0.0] = 1.0
        return sparse.diags(self.weight / norms) @ matrix

    def transform_one(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """`transform` of one text as (columns, values), without building sparse matrices."""
        counts = Counter(self.index[t] for t in self.analyzer(text) if t in self.index)
        columns = np.fromiter(counts.keys(), dtype=np.intp, count=len(counts))
        values = np.fromiter(
            ((1.0 + math.log(n)) * float(self.idf[col]) for col, n in counts.items()),
            dtype=np.float64,
            count=len(counts),
        )
        norm = float(np.sqrt(np.dot(values, values))) or 1.0
        return columns, values * (self.weight / norm)


@dataclass
class _Restored:
    """A fitted IntentModel as arrays: views -> linear SVM -> per-class sigmoid, normalized
    (what CalibratedClassifierCV's predict_proba computes for more than two classes)."""

    classes: tuple[str, ...]
    views: list[_View]
    coef: np.ndarray
    intercept: np.ndarray
    sigmoid_a: np.ndarray
    sigmoid_b: np.ndarray

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        if len(texts) == 1:
            # The served case (one message per turn): building scipy's sparse matrices was most
            # of this model's cost per message; the same sums over the text's few terms.
            scores = self._scores_one(texts[0])[np.newaxis, :]
        else:
            features = sparse.hstack([view.transform(texts) for view in self.views]).tocsr()
            scores = np.asarray(features @ self.coef.T) + self.intercept
        proba = expit(-(self.sigmoid_a * scores + self.sigmoid_b))
        total = proba.sum(axis=1, keepdims=True)
        uniform = np.full_like(proba, 1.0 / len(self.classes))
        proba = np.divide(proba, total, out=uniform, where=total != 0)
        proba[(proba > 1.0) & (proba <= 1.0 + 1e-5)] = 1.0
        return proba

    def _scores_one(self, text: str) -> np.ndarray:
        scores = np.array(self.intercept, dtype=np.float64, copy=True).reshape(-1)
        offset = 0
        for view in self.views:
            columns, values = view.transform_one(text)
            if len(columns):
                scores += self.coef[:, offset + columns] @ values
            offset += len(view.index)
        return scores
