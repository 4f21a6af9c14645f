"""A Portuguese tokenizer whose tokens carry a normalized form for the featurizers.

WhatsApp Portuguese spells one word many ways ("você", "voce", "vc"; "não", "nao", "ñ", "n";
"obrigado", "obg", "brigado"). Rasa's featurizers read `token.lemma` when `use_lemma` is on
(CountVectorsFeaturizer's default), while entity extractors and the parse result keep the raw
message text and offsets. So instead of rewriting the message text, which would shift every
entity offset and change the text stored in the tracker, this tokenizer keeps each token's raw
text and offsets and puts the normalized form in its lemma:

* lowercase, accents folded, letters repeated 3+ times collapsed ("simmm" -> "sim");
* common WhatsApp abbreviations expanded ("vc" -> "voce", "pfv" -> "por favor");
* links and e-mail addresses read as "link" and "email";
* numbers read alike, digits or words ("5", "cinco", "quinhentos" -> "0"; "5x" -> "0x"),
  using spaCy's Portuguese `like_num` plus the Brazilian spellings it lacks.

spaCy's blank Portuguese pipeline provides the tokenizer (prefix/suffix/infix rules, URL and
e-mail handling, emoji as tokens, Portuguese tokenizer exceptions) and `like_num`; no
pretrained model is needed.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

import spacy
from rasa.engine.graph import ExecutionContext
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.tokenizers.tokenizer import Token, Tokenizer
from rasa.shared.nlu.training_data.message import Message

# Folded (lowercase, no accents) spelling -> normalized words.
ABBREVIATIONS: dict[str, str] = {
    "vc": "voce",
    "vcs": "voces",
    "voce": "voce",
    "ce": "voce",
    "q": "que",
    "oq": "o que",
    "pq": "porque",
    "tb": "tambem",
    "tbm": "tambem",
    "msg": "mensagem",
    "msgs": "mensagens",
    "blz": "beleza",
    "vlw": "valeu",
    "obg": "obrigado",
    "obgd": "obrigado",
    "obgda": "obrigada",
    "brigado": "obrigado",
    "brigada": "obrigada",
    "pfv": "por favor",
    "pf": "por favor",
    "pfvr": "por favor",
    "plmdds": "pelo amor de deus",
    "n": "nao",
    "ñ": "nao",
    "naum": "nao",
    "nn": "nao",
    "kd": "cade",
    "td": "tudo",
    "tds": "todos",
    "hj": "hoje",
    "qdo": "quando",
    "qnd": "quando",
    "qto": "quanto",
    "qt": "quanto",
    "cmg": "comigo",
    "ctz": "certeza",
    "mto": "muito",
    "mt": "muito",
    "mta": "muita",
    "mtos": "muitos",
    "dps": "depois",
    "vdd": "verdade",
    "agr": "agora",
    "aq": "aqui",
    "flw": "falou",
    "fds": "fim de semana",
    "pra": "para",
    "pro": "para o",
    "pros": "para os",
    "ngm": "ninguem",
    "nd": "nada",
    "nda": "nada",
    "tmj": "tamo junto",
    "sdds": "saudades",
    "add": "adicionar",
    "qlq": "qualquer",
    "qq": "qualquer",
    "qr": "quer",
    "qro": "quero",
    "to": "estou",
    "tô": "estou",
    "ta": "esta",
    "tah": "esta",
    "eh": "e",
    "cel": "celular",
    "zap": "whatsapp",
    "wpp": "whatsapp",
    "whats": "whatsapp",
    "adv": "advogado",
    "dr": "doutor",
    "dra": "doutora",
    "sr": "senhor",
    "sra": "senhora",
    "ok": "ok",
    "okay": "ok",
    "okk": "ok",
    "blza": "beleza",
    "sim": "sim",
    "ss": "sim",
    "s": "sim",
    "cpfs": "cpf",
    "cnpjs": "cnpj",
    # More of the usual WhatsApp shorthand (general Brazilian chat spelling).
    "qnto": "quanto",
    "qnt": "quanto",
    "qnta": "quanta",
    "qntos": "quantos",
    "qtos": "quantos",
    "qndo": "quando",
    "qm": "quem",
    "ql": "qual",
    "qls": "quais",
    "oque": "o que",
    "tmb": "tambem",
    "tbem": "tambem",
    "prq": "porque",
    "porq": "porque",
    "pqe": "porque",
    "msm": "mesmo",
    "mtu": "muito",
    "dnv": "de novo",
    "ctg": "contigo",
    "mds": "meu deus",
    "pfvor": "por favor",
    "porfavor": "por favor",
    "porfa": "por favor",
    "obgdo": "obrigado",
    "obgada": "obrigada",
    "obrg": "obrigado",
    "vlws": "valeu",
    "valew": "valeu",
    "bjs": "beijos",
    "bj": "beijo",
    "abs": "abracos",
    "att": "atenciosamente",
    "atte": "atenciosamente",
    "amn": "amanha",
    "amnh": "amanha",
    "ngc": "negocio",
    "nds": "nada",
    "nao": "nao",
    "nã": "nao",
    "neh": "ne",
    "okey": "ok",
    "oks": "ok",
    "oki": "ok",
    "blzinha": "beleza",
    "tranq": "tranquilo",
    "sla": "sei la",
    "cpa": "capaz",
    "fzr": "fazer",
    "fz": "faz",
    "hrs": "horas",
    "tel": "telefone",
    "nro": "numero",
    "info": "informacao",
    "infos": "informacoes",
    "docs": "documentos",
    "doc": "documento",
}

# Laughter, however it is spelled ("kkkk", "hahaha", "rsrs", "huehue"), reads as one word.
_LAUGHTER_RE = re.compile(r"(?:k{2,}|(?:ha){2,}h?|(?:he){2,}|(?:hi){2,}|(?:rs){2,}r?|(?:hue){2,})")
LAUGHTER = "risos"

# Brazilian spellings and other number words spaCy's Portuguese `like_num` list lacks.
EXTRA_NUMBER_WORDS: frozenset[str] = frozenset(
    {
        "dezesseis",
        "dezessete",
        "dezenove",
        "seiscentos",
        "duas",
        "duzentas",
        "trezentas",
        "quatrocentas",
        "quinhentas",
        "seiscentas",
        "setecentas",
        "oitocentas",
        "novecentas",
        "meia",
    }
)
# Number words that are far more often an article or a pronoun.
NOT_NUMBERS: frozenset[str] = frozenset({"um", "uma", "meia"})

_REPEATS_RE = re.compile(r"([^\W\d_])\1{2,}")
_FINAL_DOUBLE_RE = re.compile(r"([^\W\d_])\1$")
_DIGITS_RE = re.compile(r"\d+(?:[.,]\d+)*")
_SKIP_RE = re.compile(r"[^\w$%?]+")


def fold(text: str) -> str:
    """Lowercase and strip accents ("Não" -> "nao"); "ñ" alone is kept for the table."""
    lowered = text.lower()
    if lowered == "ñ":
        return lowered
    decomposed = unicodedata.normalize("NFKD", lowered)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def normalize_word(text: str, like_num: bool) -> str:
    """The normalized form of one token."""
    raw = fold(text)
    if _LAUGHTER_RE.fullmatch(raw):
        return LAUGHTER
    folded = _REPEATS_RE.sub(r"\1", raw)
    if folded not in ABBREVIATIONS and len(folded) > 2:
        # A doubled last letter is stretching ("simm", "oii", "boaa"): Portuguese words do
        # not end in a doubled letter.
        folded = _FINAL_DOUBLE_RE.sub(r"\1", folded)
    if folded in ABBREVIATIONS:
        return ABBREVIATIONS[folded]
    if folded not in NOT_NUMBERS and (like_num or folded in EXTRA_NUMBER_WORDS):
        return "0" if not any(c.isdigit() for c in folded) else _DIGITS_RE.sub("0", folded)
    return _DIGITS_RE.sub("0", folded)


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.MESSAGE_TOKENIZER, is_trainable=False)
class PortugueseTextNormalizer(Tokenizer):
    """spaCy `pt` tokenizer; token.text and offsets raw, token.lemma normalized."""

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        """The component's default config (Tokenizer options plus our own)."""
        return {
            "intent_tokenization_flag": False,
            "intent_split_symbol": "_",
            "token_pattern": None,
            "prefix_separator_symbol": None,
            # Keep "?" as a token: questions vs statements separate several intents.
            "keep_question_mark": True,
        }

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        self._keep_question_mark = bool(config.get("keep_question_mark", True))
        self._nlp = blank_pipeline()

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> PortugueseTextNormalizer:
        """Creates the tokenizer (nothing to train or load)."""
        return cls({**cls.get_default_config(), **config})

    def tokenize(self, message: Message, attribute: str) -> list[Token]:
        """Tokens with raw text and offsets and a normalized lemma."""
        text = message.get(attribute)
        tokens = [
            Token(word, start, end=start + len(word), lemma=lemma)
            for word, start, lemma in lemmatize(self._nlp, text, self._keep_question_mark)
        ]
        if not tokens:
            # Like WhitespaceTokenizer: a message of only punctuation is one token.
            tokens = [Token(text, 0, lemma=fold(text))]
        return self._apply_token_pattern(tokens)


def blank_pipeline() -> Any:
    """spaCy's blank Portuguese pipeline (tokenizer and `like_num` only, no model)."""
    return spacy.blank("pt")


def lemmatize(nlp: Any, text: str, keep_question_mark: bool = True) -> list[tuple[str, int, str]]:
    """(raw word, offset, normalized lemma) for each kept token of `text`."""
    out: list[tuple[str, int, str]] = []
    for word in nlp.make_doc(text):
        if word.is_space:
            continue
        lemma: str | None = None
        if word.like_email:
            lemma = "email"
        elif word.like_url:
            # Which link it is does not change what the message means.
            lemma = "link"
        elif _SKIP_RE.fullmatch(word.text) and not word.like_url:
            if keep_question_mark and "?" in word.text:
                lemma = "?"
            elif not any(unicodedata.category(c) == "So" for c in word.text):
                # Punctuation is dropped, as WhitespaceTokenizer does; emoji are kept.
                continue
        out.append((word.text, word.idx, lemma or normalize_word(word.text, word.like_num)))
    return out


def normalized_text(nlp: Any, text: str) -> str:
    """The lemmas of `text` joined by spaces: what the intent classifier reads."""
    lemmas = [lemma for _, _, lemma in lemmatize(nlp, text)]
    return " ".join(lemmas) if lemmas else fold(text)
