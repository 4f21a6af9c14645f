"""Entities found by rule on the raw message text: documents, money, contacts, references.

The finders live in `api.identifiers` (pure Python, shared with the service) so the bot and the
service read "R$ 1.500,00" or "145.382.206-20" the same way. The repository root must be on
PYTHONPATH for the Rasa server (scripts/rasa-serve.sh and scripts/rasa-train.sh set it).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.extractors.extractor import EntityExtractorMixin
from rasa.shared.nlu.constants import (
    ENTITIES,
    ENTITY_ATTRIBUTE_END,
    ENTITY_ATTRIBUTE_ROLE,
    ENTITY_ATTRIBUTE_START,
    ENTITY_ATTRIBUTE_TYPE,
    ENTITY_ATTRIBUTE_VALUE,
    TEXT,
)
from rasa.shared.nlu.training_data.message import Message

from api.identifiers import case_ref, contact, documents, money, phones

Found = tuple[str, str, int, int]  # (entity, normalized value, start, end)

# When spans overlap, the earlier kind wins: a URL swallows the ids and names inside it, a
# CPF is never also a phone or an amount, an amount never sits inside a phone or reference.
PRIORITY: tuple[str, ...] = (
    "url",
    "email",
    "case_ref",
    "cnpj",
    "cpf",
    "phone",
    "amount",
    "installments",
    "marketplace",
)
ALL_ENTITIES: frozenset[str] = frozenset(PRIORITY)
MENTION_ROLE = "mention"


def _documents(text: str) -> list[Found]:
    return [(doc.kind, doc.value, start, end) for doc, start, end in documents.find_documents(text)]


def _amounts(text: str) -> list[Found]:
    return [
        ("amount", f"{value:.2f}", start, end) for value, start, end in money.find_amounts(text)
    ]


# "em 3x": the entity is "3x", as the contract writes it ("5x", "em 10 vezes"), and as the
# training data annotates it; "em" belongs to the span only before "vezes"/"parcelas".
_EM_BEFORE_X_RE = re.compile(r"em\s+(?=\d{1,3}\s?x$)", re.IGNORECASE)


def _installments(text: str) -> list[Found]:
    found: list[Found] = []
    for count, start, end in money.find_installments(text):
        lead = _EM_BEFORE_X_RE.match(text[start:end])
        found.append(("installments", str(count), start + (lead.end() if lead else 0), end))
    return found


def _simple(
    entity: str, finder: Callable[[str], list[tuple[str, int, int]]]
) -> Callable[[str], list[Found]]:
    def find(text: str) -> list[Found]:
        return [(entity, value, start, end) for value, start, end in finder(text)]

    return find


# Context rules on top of api.identifiers, for what is only an identifier because of the words
# around it. They rank last, so they never override a finder.
_AMOUNT_CUE_RE = re.compile(
    r"(?<![a-z])(?:"
    r"(?:pag(?:o|ar|aria|amos|aremos)|dou|daria|ofere(?:co|cemos)|consigo|posso|podemos|"
    r"faco|fecho|fechamos|aceito|aceitamos|proponho|topo|cobrem|cobra)"
    r"(?:\s+(?:pagar|dar|oferecer|fazer|fechar))?"
    r"(?:\s+(?:so|apenas|somente|ate|uns|tipo|no\s+maximo|por|com))*"
    r"|\d{1,3}\s?x\s+de|(?:parcelas?|prestac(?:ao|oes)|vezes)\s+de"
    r")\s+"
)
_BARE_NUMBER_RE = re.compile(r"\d{1,3}(?:\.\d{3})+(?:,\d{1,2})?|\d+(?:,\d{1,2})?")
_WORD_RE = re.compile(r"[a-z]+")
_NOT_MONEY_AFTER_RE = re.compile(
    r"\s*(?:x(?![a-z])|vezes|parcela|prestac|mensalidade|dia|mes|meses|semana|ano|hora|h(?![a-z])|"
    r"%|por\s*cento|unidade|peca|iten|produto|anuncio|minuto)"
)
# Below 10 a bare number after "pago"/"dou" is rarely money ("dou uma entrada").
_MIN_CONTEXT_AMOUNT, _MAX_CONTEXT_AMOUNT = 10, 10_000_000
_CNPJ_CUE_RE = re.compile(
    r"(?<![a-z])cnpj[^.;!?\n]{0,30}?(?<![0-9a-z])(?P<value>[0-9a-z]{14})(?![0-9a-z])"
)


def _context_amounts(text: str) -> list[Found]:
    """Bare numbers that are money only in context: "consigo pagar so 300", "4x de 250"."""
    folded = documents.fold_text(text)
    found: list[Found] = []
    for cue in _AMOUNT_CUE_RE.finditer(folded):
        start = cue.end()
        number = _BARE_NUMBER_RE.match(folded, start)
        if number is not None:
            end = number.end()
            digits = number.group().replace(".", "").replace(",", ".")
            value: float | None = float(digits)
        else:
            # Number words: the longest run that reads as a number ("trezentos e cinquenta").
            value, end = None, start
            words: list[re.Match[str]] = []
            for word in _WORD_RE.finditer(folded, start):
                previous_end = words[-1].end() if words else start
                if len(words) == 6 or folded[previous_end : word.start()].strip():
                    break
                words.append(word)
            for last in reversed(words):
                parsed = money.words_to_number(folded[start : last.end()])
                if parsed is not None:
                    value, end = float(parsed), last.end()
                    break
        if value is None or not _MIN_CONTEXT_AMOUNT <= value <= _MAX_CONTEXT_AMOUNT:
            continue
        if _NOT_MONEY_AFTER_RE.match(folded, end):
            continue
        found.append(("amount", f"{value:.2f}", start, end))
    return found


def _context_cnpjs(text: str) -> list[Found]:
    """A bare lowercase alphanumeric CNPJ right after the word "CNPJ"."""
    found: list[Found] = []
    for match in _CNPJ_CUE_RE.finditer(documents.fold_text(text)):
        value = match.group("value").upper()
        if documents.is_valid_cnpj(value):
            found.append(("cnpj", value, match.start("value"), match.end("value")))
    return found


FINDERS: tuple[Callable[[str], list[Found]], ...] = (
    _simple("url", contact.find_urls),
    _simple("email", contact.find_emails),
    _simple("case_ref", case_ref.find_case_refs),
    _documents,
    _simple("phone", phones.find_phones),
    _amounts,
    _installments,
    _simple("marketplace", contact.find_marketplaces),
)
CONTEXT_FINDERS: tuple[Callable[[str], list[Found]], ...] = (_context_cnpjs, _context_amounts)


def find_identifiers(text: str, wanted: frozenset[str] = ALL_ENTITIES) -> list[Found]:
    """All identifiers in `text`, overlaps resolved by PRIORITY, in text order."""
    rank = {entity: index for index, entity in enumerate(PRIORITY)}
    candidates: list[tuple[int, int, int, Found]] = []
    for tier, finders in enumerate((FINDERS, CONTEXT_FINDERS)):
        for finder in finders:
            candidates.extend(
                # Finders before context rules, higher-priority kinds, then longer spans.
                (tier, rank[found[0]], found[2] - found[3], found)
                for found in finder(text)
                if found[0] in wanted
            )
    candidates.sort(key=lambda c: (c[0], c[1], c[2], c[3][2]))
    kept: list[Found] = []
    for *_, candidate in candidates:
        _, _, start, end = candidate
        if any(start < k_end and k_start < end for _, _, k_start, k_end in kept):
            continue
        kept.append(candidate)
    kept.sort(key=lambda f: (f[2], f[3]))
    return kept


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR, is_trainable=False)
class IdentifierEntityExtractor(GraphComponent, EntityExtractorMixin):
    """Adds cpf, cnpj, case_ref, amount, installments, phone, email, url, marketplace."""

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        """Entities to extract (default: all)."""
        return {"entities": list(PRIORITY)}

    def __init__(self, config: dict[str, Any]) -> None:
        unknown = set(config["entities"]) - ALL_ENTITIES
        if unknown:
            raise ValueError(f"IdentifierEntityExtractor: unknown entities {sorted(unknown)}")
        self._wanted = frozenset(config["entities"])

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> IdentifierEntityExtractor:
        """Creates the extractor (nothing to train or load)."""
        return cls({**cls.get_default_config(), **config})

    def process(self, messages: list[Message]) -> list[Message]:
        """Appends the identifiers found in each message's raw text to its entities."""
        for message in messages:
            text = message.get(TEXT)
            if not isinstance(text, str) or not text:
                continue
            found = [
                {
                    ENTITY_ATTRIBUTE_TYPE: entity,
                    ENTITY_ATTRIBUTE_VALUE: value,
                    ENTITY_ATTRIBUTE_START: start,
                    ENTITY_ATTRIBUTE_END: end,
                    # An amount already paid, spent or priced ("paguei 50 de frete") is
                    # mentioned, not offered: the flows take only offers as counteroffers.
                    **(
                        {ENTITY_ATTRIBUTE_ROLE: MENTION_ROLE}
                        if entity == "amount" and not money.is_offer(text, start, end)
                        else {}
                    ),
                }
                for entity, value, start, end in find_identifiers(text, self._wanted)
            ]
            message.set(
                ENTITIES,
                message.get(ENTITIES, []) + self.add_extractor_name(found),
                add_to_output=True,
            )
        return messages
