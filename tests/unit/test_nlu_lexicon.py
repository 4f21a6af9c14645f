"""The word classes of bot/lexicon.py only group words the training data uses (issue 17).

A class entry that appears nowhere in data/nlu could only have come from reading the test set;
this keeps the feature honest. The training text is folded as the bot's normalizer folds it
(lowercase, no accents, digits read as 0); multi-word entries are matched as phrases.
"""

import re
import unicodedata
from pathlib import Path

import pytest
import yaml

from bot.lexicon import CLASSES, class_tokens

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]
_ANNOTATION_RE = re.compile(r"\[([^\]]*)\]\{[^}]*\}")


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.lower())
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    plain = re.sub(r"(\w)\1{2,}", r"\1", plain)
    plain = re.sub(r"\d+", "0", plain)
    return " ".join(re.sub(r"[^\w?]+", " ", plain).split())


def _training_text() -> str:
    texts: list[str] = []
    for path in sorted((ROOT / "data" / "nlu").glob("*.yml")):
        for block in yaml.safe_load(path.read_text(encoding="utf-8"))["nlu"]:
            for line in block.get("examples", "").splitlines():
                if line.strip().startswith("- "):
                    texts.append(_fold(_ANNOTATION_RE.sub(r"\1", line.strip()[2:])))
    return "\n".join(texts)


def test_every_class_entry_occurs_in_the_training_data() -> None:
    text = _training_text()
    missing = [
        f"{name}: {entry}"
        for name, entries in CLASSES.items()
        for entry in entries
        if not re.search(
            r"(?<!\S)" + re.escape(entry.rstrip("$")) + (r"(?!\S)" if entry.endswith("$") else ""),
            text,
        )
    ]
    assert missing == []


def test_class_tokens_count_hits_per_class() -> None:
    tokens = class_tokens("ja paguei o boleto , segue comprovante")

    assert tokens.count("__paid") == 2
    assert tokens.count("__payment_means") == 1
    assert class_tokens("xyzzy qwerty") == []
