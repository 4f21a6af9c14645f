"""Rasa wrapper of bot.nlu_model.IntentModel: intents and the out-of-scope fallback.

It reads the normalized lemmas PortugueseTextNormalizer put on the tokens (the same text
bot.nlu_model is cross-validated on), ranks the intents, and sets `nlu_fallback` itself when
the message is out of scope (unknown words or a confidence under the calibrated threshold),
as Rasa's FallbackClassifier would, so that one place decides and the evaluation measures it.

Persistence: the fitted model is stored as plain data (IntentModel.export: the terms and idf of
each view and the in-scope vocabulary as JSON, the SVM coefficients and the sigmoid calibration
as a numpy .npz read with allow_pickle=False), so loading neither refits (which cost the model
server ~30 MB of peak memory and a second or two) nor unpickles anything.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.classifiers.classifier import IntentClassifier
from rasa.nlu.constants import TOKENS_NAMES
from rasa.nlu.tokenizers.tokenizer import Tokenizer
from rasa.shared.nlu.constants import INTENT, INTENT_RANKING_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from api.identifiers.media import media_only_labels
from bot.components.normalizer import fold
from bot.nlu_model import FALLBACK_INTENT, IntentModel

_META_FILE = "intent_model.json"
_ARRAYS_FILE = "intent_model.npz"


def message_text(message: Message) -> str:
    """The normalized text of a tokenized message (its lemmas joined by spaces)."""
    tokens = message.get(TOKENS_NAMES[TEXT]) or []
    lemmas = [t.lemma for t in tokens if t.lemma]
    return " ".join(lemmas) if lemmas else fold(message.get(TEXT) or "")


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=True)
class LexiconIntentClassifier(GraphComponent, IntentClassifier):
    """Calibrated linear SVM over words, characters and domain word classes."""

    @classmethod
    def required_components(cls) -> list[type]:
        """A tokenizer must put the normalized lemmas on the tokens first."""
        return [Tokenizer]

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        """See bot.nlu_model.IntentModel for the meaning of each option."""
        defaults = IntentModel()
        return {
            "c": defaults.c,
            "lexicon_weight": defaults.lexicon_weight,
            "class_weight": defaults.class_weight,
            "threshold": defaults.threshold,
            "min_coverage": defaults.min_coverage,
            "unknown_threshold": defaults.unknown_threshold,
            "ranking_length": 10,
        }

    def __init__(
        self, config: dict[str, Any], model_storage: ModelStorage, resource: Resource
    ) -> None:
        self._config = config
        self._storage = model_storage
        self._resource = resource
        self._model: IntentModel | None = None

    def _new_model(self) -> IntentModel:
        return IntentModel(
            c=float(self._config["c"]),
            lexicon_weight=float(self._config["lexicon_weight"]),
            class_weight=str(self._config["class_weight"]),
            threshold=float(self._config["threshold"]),
            min_coverage=float(self._config["min_coverage"]),
            unknown_threshold=float(self._config["unknown_threshold"]),
        )

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> LexiconIntentClassifier:
        """A new, untrained classifier."""
        return cls({**cls.get_default_config(), **config}, model_storage, resource)

    def train(self, training_data: TrainingData) -> Resource:
        """Fit on the intent examples and store them."""
        examples = [m for m in training_data.intent_examples if m.get(INTENT)]
        texts = [message_text(m) for m in examples]
        intents = [str(m.get(INTENT)) for m in examples]
        if not texts:
            return self._resource
        self._model = self._new_model().fit(texts, intents)
        meta, arrays = self._model.export()
        with self._storage.write_to(self._resource) as directory:
            (directory / _META_FILE).write_text(json.dumps(meta, ensure_ascii=False), "utf-8")
            np.savez(directory / _ARRAYS_FILE, **arrays)
        return self._resource

    @classmethod
    def load(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        **kwargs: Any,
    ) -> LexiconIntentClassifier:
        """Restore the fitted model from plain data (no refit, no pickle)."""
        component = cls.create(config, model_storage, resource, execution_context)
        try:
            with model_storage.read_from(resource) as directory:
                meta = json.loads((directory / _META_FILE).read_text(encoding="utf-8"))
                with np.load(directory / _ARRAYS_FILE, allow_pickle=False) as stored:
                    arrays = {name: stored[name] for name in stored.files}
        except (ValueError, FileNotFoundError):
            return component
        component._model = component._new_model().restore(meta, arrays)
        return component

    def process(self, messages: list[Message]) -> list[Message]:
        """Set the intent (nlu_fallback when out of scope) and the ranking."""
        if self._model is None:
            return messages
        decisions = self._model.decide([message_text(m) for m in messages])
        length = int(self._config["ranking_length"])
        for message, decision in zip(messages, decisions, strict=True):
            ranking = [{"name": n, "confidence": c} for n, c in decision.ranking]
            if media_only_labels(message.get(TEXT) or "") is not None:
                # A voice note, sticker or picture without text: nothing to classify; the
                # fallback answers that the bot cannot listen or look (api.assistant.flows).
                ranking.insert(0, {"name": FALLBACK_INTENT, "confidence": 1.0})
            elif decision.intent != decision.ranking[0][0]:
                # Like FallbackClassifier: nlu_fallback on top, the classifier's view below.
                ranking.insert(0, {"name": decision.intent, "confidence": self._model.threshold})
            message.set(INTENT, ranking[0], add_to_output=True)
            message.set(
                INTENT_RANKING_KEY, ranking[:length] if length > 0 else ranking, add_to_output=True
            )
        return messages
