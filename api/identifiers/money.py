"""Amounts in BRL and numbers of installments, as Brazilians write them in chats and e-mails."""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from .documents import BOLETO_LINE_RE, fold_text, mask_spans
from .errors import InvalidIdentifier

CENT = Decimal("0.01")

_UNITS = {
    "zero": 0,
    "um": 1,
    "uma": 1,
    "dois": 2,
    "duas": 2,
    "tres": 3,
    "quatro": 4,
    "cinco": 5,
    "seis": 6,
    "sete": 7,
    "oito": 8,
    "nove": 9,
    "dez": 10,
    "onze": 11,
    "doze": 12,
    "treze": 13,
    "quatorze": 14,
    "catorze": 14,
    "quinze": 15,
    "dezesseis": 16,
    "dezasseis": 16,
    "dezeseis": 16,
    "dezessete": 17,
    "dezassete": 17,
    "dezesete": 17,
    "dezoito": 18,
    "dezenove": 19,
    "dezanove": 19,
    "vinte": 20,
    "trinta": 30,
    "quarenta": 40,
    "cinquenta": 50,
    "cincoenta": 50,
    "sessenta": 60,
    "setenta": 70,
    "oitenta": 80,
    "noventa": 90,
    "cem": 100,
    "cento": 100,
    "duzentos": 200,
    "duzentas": 200,
    "trezentos": 300,
    "trezentas": 300,
    "quatrocentos": 400,
    "quatrocentas": 400,
    "quinhentos": 500,
    "quinhentas": 500,
    "seiscentos": 600,
    "seiscentas": 600,
    "setecentos": 700,
    "setecentas": 700,
    "oitocentos": 800,
    "oitocentas": 800,
    "novecentos": 900,
    "novecentas": 900,
}
_SCALES = {
    "mil": 1_000,
    "k": 1_000,
    "milhao": 1_000_000,
    "milhoes": 1_000_000,
    "mi": 1_000_000,
    "bilhao": 1_000_000_000,
    "bilhoes": 1_000_000_000,
}
# Scales that may follow a bare number word ("dois mil"); "k" and "mi" only follow digits.
_WORD_SCALES = ("mil", "milhao", "milhoes", "bilhao", "bilhoes")

_CURRENCY_PREFIX_RE = re.compile(r"^(?:r\s?\$|brl)\s*")
_CURRENCY_SUFFIX_RE = re.compile(r"\s*(?:reais|real|contos?|pilas?|brl|r\$)$")
_CENTS_RE = re.compile(
    r"^(?:(?P<main>.+?)\s*(?:reais|real|contos?|pilas?)\s+e\s+)?(?P<cents>\S.*?)\s+centavos?$"
)
_TOKEN_RE = re.compile(r"\s*(?:(?P<num>\d+(?:[.,]\d+)*)|(?P<word>[a-z]+))")


def _parse_number(token: str) -> Decimal | None:
    """Read "1.500,00", "1,500.00", "1500.00", "1.500", "1,5"; None when ambiguous or malformed."""
    if "," in token and "." in token:
        decimal_sep = "," if token.rfind(",") > token.rfind(".") else "."
        thousands_sep = "." if decimal_sep == "," else ","
        integer, fraction = token.rsplit(decimal_sep, 1)
        groups = integer.split(thousands_sep)
        if decimal_sep in integer or not _is_grouped(groups) or not 1 <= len(fraction) <= 2:
            return None
        return Decimal(f"{''.join(groups)}.{fraction}")
    for sep in ",.":
        if sep in token:
            parts = token.split(sep)
            if len(parts) == 2 and 1 <= len(parts[1]) <= 2:
                return Decimal(f"{parts[0]}.{parts[1]}")
            if _is_grouped(parts):
                return Decimal("".join(parts))
            return None
    return Decimal(token)


def _is_grouped(groups: list[str]) -> bool:
    return 1 <= len(groups[0]) <= 3 and all(len(g) == 3 for g in groups[1:])


def _evaluate(text: str) -> Decimal | None:
    """Value of number words and digits with scales ("2 mil e quinhentos", "1,5k"), or None."""
    tokens: list[tuple[str, str]] = []
    position = 0
    while position < len(text):
        match = _TOKEN_RE.match(text, position)
        if match is None:
            if text[position:].strip():
                return None
            break
        position = match.end()
        if match.group("num") is not None:
            tokens.append(("num", match.group("num")))
        else:
            tokens.append(("word", match.group("word")))
    if not tokens or tokens[0][1] == "e" or tokens[-1][1] == "e":
        return None

    total = Decimal(0)
    group: Decimal | None = None
    limit = 1000  # every word added to the group must be below this place value
    last_scale: int | None = None
    previous = ""
    for kind, token in tokens:
        if kind == "word" and token == "e":
            if previous in ("e", "num"):
                return None
            previous = "e"
            continue
        if kind == "word" and token in _SCALES:
            scale = _SCALES[token]
            after_digits = previous == "num"
            if (last_scale is not None and scale >= last_scale) or (
                token not in _WORD_SCALES and not after_digits
            ):
                return None
            total += (group if group is not None else Decimal(1)) * scale
            last_scale, group, limit = scale, None, 1000
            previous = "scale"
            continue
        if kind == "num":
            value = _parse_number(token)
            if value is None or group is not None:
                return None
            if last_scale is not None and value >= last_scale:
                return None
            group, limit = value, 0
            previous = "num"
            continue
        if token not in _UNITS:
            return None
        word_value = _UNITS[token]
        if word_value >= limit or (word_value == 0 and (group is not None or len(tokens) > 1)):
            return None
        group = (group or Decimal(0)) + word_value
        limit = 100 if word_value >= 100 else 10 if word_value >= 20 else 1
        previous = "word"
    return total + (group if group is not None else Decimal(0))


def words_to_number(text: str) -> int | None:
    """Read a whole number written in Portuguese words ("mil e quinhentos"); None if it is not."""
    value = _evaluate(" ".join(fold_text(text).split()))
    if value is None or value != value.to_integral_value():
        return None
    return int(value)


def parse_amount(text: str) -> Decimal:
    """Parse an amount in BRL ("R$ 1.500,00", "1,5k", "mil e quinhentos reais") to 2 places."""
    folded = " ".join(fold_text(text).split()).rstrip(".!?;:,").strip()
    body = _CURRENCY_PREFIX_RE.sub("", folded)
    if body.startswith("-") or body.startswith("menos ") or folded.startswith("-"):
        raise InvalidIdentifier("amount", "negative amount")
    cents = Decimal(0)
    cents_match = _CENTS_RE.match(body)
    if cents_match is not None:
        cents_value = _evaluate(cents_match.group("cents"))
        if (
            cents_value is None
            or cents_value != cents_value.to_integral_value()
            or cents_value > 99
        ):
            raise InvalidIdentifier("amount", "cents must be a whole number from 0 to 99")
        cents = cents_value * CENT
        body = cents_match.group("main") or ""
    body = _CURRENCY_SUFFIX_RE.sub("", body).strip()
    if not body and cents_match is not None:
        return cents.quantize(CENT)
    value = _evaluate(body)
    if value is None:
        raise InvalidIdentifier("amount", "not an amount of money")
    try:
        return (value + cents).quantize(CENT, rounding=ROUND_HALF_UP)
    except InvalidOperation as exc:
        raise InvalidIdentifier("amount", "amount too large") from exc


def format_brl(amount: Decimal) -> str:
    """Format an amount the Brazilian way: "R$ 1.500,00"."""
    if not amount.is_finite():
        raise InvalidIdentifier("amount", "not a finite number")
    value = amount.quantize(CENT, rounding=ROUND_HALF_UP)
    sign = "-" if value < 0 else ""
    integer, fraction = f"{abs(value):.2f}".split(".")
    grouped = f"{int(integer):,}".replace(",", ".")
    return f"{sign}R$ {grouped},{fraction}"


def _alternation(words: list[str]) -> str:
    return "|".join(sorted(words, key=len, reverse=True))


_NUMBER_WORD = rf"(?<![a-z0-9])(?:{_alternation([*_UNITS, *_WORD_SCALES])})(?![a-z0-9])"
# Bounded runs keep the search linear on long e-mails; real amounts need far fewer words.
_NUMBER_WORDS = rf"{_NUMBER_WORD}(?:\s+(?:e\s+)?{_NUMBER_WORD}){{0,15}}"
_FEW_NUMBER_WORDS = rf"{_NUMBER_WORD}(?:\s+(?:e\s+)?{_NUMBER_WORD}){{0,3}}"
_INSTALLMENT_CUE = r"\s*(?:x(?![a-z])|vez(?:es)?(?![a-z])|parcelas?|prestac|mensalidade|%)"
_NUMERAL = (
    r"(?<![\w.,/:+\-])"
    r"(?:\d{1,3}(?:\.\d{3})+(?:,\d{1,2})?|\d{1,3}(?:,\d{3})+(?:\.\d{1,2})?|\d+(?:[.,]\d{1,2})?)"
    rf"(?!\d|[.,/:\-]\d)(?!{_INSTALLMENT_CUE})"
)
# "r$" after a number only counts when no number follows it ("um R$ 100" is R$ 100).
_CURRENCY_WORD = r"(?:(?:reais|real|contos?|pilas?|brl)(?![a-z])|r\$(?!\s*\d))"
_MULTIPLIER = r"\s*(?:k|mil|milhao|milhoes|mi|bilhao|bilhoes)(?![a-z0-9])"
_HUNDREDS_WORD = (
    rf"(?<![a-z])(?:{_alternation([w for w, v in _UNITS.items() if v >= 100])})(?![a-z0-9])"
)
_EXPRESSION = (
    rf"(?:{_NUMERAL}{_MULTIPLIER}"
    rf"(?:\s+e\s+(?:{_NUMBER_WORDS}|{_NUMERAL})|\s+{_HUNDREDS_WORD}(?:\s+(?:e\s+)?{_NUMBER_WORD}){{0,15}})?"
    rf"|{_NUMBER_WORDS}(?:\s+e\s+{_NUMERAL})?"
    rf"|{_NUMERAL}(?!(?!{_CURRENCY_WORD})[a-z]))"
)
_AMOUNT_RE = re.compile(
    rf"(?P<currency>(?<![\w\-])(?:r\s?\$|brl)\s*)?"
    rf"(?P<expression>{_EXPRESSION})"
    rf"(?P<suffix>\s*{_CURRENCY_WORD}"
    rf"(?:\s+e\s+(?:{_NUMERAL}|{_NUMBER_WORDS})\s+centavos?(?![a-z]))?"
    rf"|\s+centavos?(?![a-z]))?"
)
_SCALE_CUE_RE = re.compile(r"(?<![a-z])(?:k|mil|milhao|milhoes|mi|bilhao|bilhoes)(?![a-z])")
_DECIMAL_COMMA_RE = re.compile(r"\d,\d{2}$")
# "vendi mil unidades", "2k seguidores": a scale word alone is not money before these nouns.
_NOT_MONEY_NOUN_RE = re.compile(
    r"\s+(?:de\s+)?(?:vezes|unidades?|pecas?|itens|produtos?|seguidores|anuncios?|vendas?|"
    r"pessoas|clientes|visualizacoes|views|likes|curtidas|km|kg|g|ml|anos|dias|meses|horas|"
    r"metros|litros|pares|caixas|copias|desculpas|mensagens)(?![a-z])"
)


def find_amounts(text: str) -> list[tuple[Decimal, int, int]]:
    """Find money expressions (with a cue: R$, reais, k, mil, ...) in free text, with offsets."""
    folded = mask_spans(fold_text(text), BOLETO_LINE_RE)
    found: list[tuple[Decimal, int, int]] = []
    for match in _AMOUNT_RE.finditer(folded):
        expression = match.group("expression")
        has_currency = match.group("currency") is not None or match.group("suffix") is not None
        has_scale = _SCALE_CUE_RE.search(expression) is not None
        if not (has_currency or has_scale or _DECIMAL_COMMA_RE.search(expression)):
            continue
        if not has_currency and has_scale and _NOT_MONEY_NOUN_RE.match(folded, match.end()):
            continue
        try:
            amount = parse_amount(match.group())
        except InvalidIdentifier:
            continue
        found.append((amount, match.start(), match.end()))
    return found


MAX_INSTALLMENTS = 120
_INSTALLMENT_NUMBER = r"(?<![\w.,/:+\-])\d{1,3}(?![\d]|[.,]\d)"
_INSTALLMENTS_RE = re.compile(
    rf"(?:(?<![a-z])em\s+)?(?P<x>{_INSTALLMENT_NUMBER})\s?x(?![a-z0-9])"
    rf"|(?:(?<![a-z])(?P<em>em)\s+)?(?P<n>{_INSTALLMENT_NUMBER}|{_FEW_NUMBER_WORDS})\s+"
    r"(?:(?P<times>vezes)|parcelas?|prestac(?:oes|ao)|mensalidades?)(?![a-z])"
    rf"|(?<![a-z])(?:parcel|divid)[a-z]*\s+(?:em\s+)?(?P<split>{_INSTALLMENT_NUMBER}|{_FEW_NUMBER_WORDS})"
    r"(?![a-z0-9]|\s*(?:x(?![a-z])|vezes|parcela|prestac|mensalidade|reais|r\$|mil|k(?![a-z])))"
)
# "liguei 3 vezes" is not a payment plan: "N vezes" needs "em", a payment verb before it, or
# a payment phrase after it ("5 vezes sem juros", "3 vezes de 200").
_PAYMENT_VERB_BEFORE_RE = re.compile(r"(?<![a-z])(?:pag|parcel|divid|quit)[a-z]*\s+$")
_VERB_WINDOW = 40
_PAYMENT_PHRASE_AFTER_RE = re.compile(r"\s+(?:de|sem|com|no|na)(?![a-z])")


# "um"/"uma" before a singular noun is an article ("atraso de uma parcela"), not a count;
# only "em uma parcela" (a plan) counts.
_ARTICLE_RE = re.compile(r"uma?")


def find_installments(text: str, *, article_counts: bool = False) -> list[tuple[int, int, int]]:
    """Find numbers of installments ("5x", "em dez vezes", "3 parcelas") with their offsets.

    `article_counts`: read "uma parcela" as 1 even without "em" (a whole value, not a
    sentence).
    """
    folded = fold_text(text)
    found: list[tuple[int, int, int]] = []
    for match in _INSTALLMENTS_RE.finditer(folded):
        if (
            not article_counts
            and match.group("n") is not None
            and match.group("em") is None
            and _ARTICLE_RE.fullmatch(match.group("n"))
        ):
            continue
        if (
            match.group("times") is not None
            and match.group("em") is None
            and not _PAYMENT_VERB_BEFORE_RE.search(
                folded, max(0, match.start() - _VERB_WINDOW), match.start()
            )
            and not _PAYMENT_PHRASE_AFTER_RE.match(folded, match.end())
        ):
            continue
        number = match.group("x") or match.group("n") or match.group("split") or ""
        count = words_to_number(number)
        if count is None or not 1 <= count <= MAX_INSTALLMENTS:
            continue
        found.append((count, match.start(), match.end()))
    return found


def parse_installments(text: str) -> int:
    """Parse a number of installments: "5x", "em 10 vezes", "doze parcelas", or a bare "5"."""
    found = find_installments(text, article_counts=True)
    if found:
        return found[0][0]
    count = words_to_number(text.strip().rstrip(".!?"))
    if count is None or not 1 <= count <= MAX_INSTALLMENTS:
        raise InvalidIdentifier("installments", "not a number of installments")
    return count


# An amount is an offer unless its own clause says it is something already paid, spent, sold
# or charged ("paguei 50 de frete", "vendi por 30", "custou 200"), or it prices an extra
# ("50 de frete", "R$ 10 de taxa"). The flows take only offers as counteroffers.
_CLAUSE_BREAK_RE = re.compile(r"[.;!?\n,]|\s(?:mas|porem|entao|e)\s")
_NOT_OFFER_VERB_RE = re.compile(
    r"(?<![a-z])(?:pagu?ei|pagamos|pagou|pagaram|gastei|gastamos|gastou|custou|custaram|custa|"
    r"custam|vendi|vendemos|vendeu|vendo|comprei|compramos|comprou|recebi|recebemos|faturei|"
    r"faturamos|lucrei|lucramos|ganhei|ganhamos|cobrei|cobrou|cobraram|saiu|perdi|"
    r"transferi|depositei)(?![a-z])"
)
_OFFER_VERB_RE = re.compile(
    r"(?<![a-z])(?:consigo|posso|podemos|pago|pagaria|pagamos\s+so|ofere[cç]o|oferecemos|"
    r"proponho|propomos|dou|daria|damos|topo|faco|fecho|fechamos|aceito|aceitamos)(?![a-z])"
)
_EXTRA_AFTER_RE = re.compile(
    r"\s*(?:reais\s+)?(?:de|do|da|no|na|pelo|pela|com)\s+(?:frete|taxas?|impostos?|comissao|"
    r"tarifas?|juros|envio|correios?|entrega|lucro|passagem|aluguel|embalagem)(?![a-z])"
)


def is_offer(text: str, start: int, end: int) -> bool:
    """Whether the amount at text[start:end] is offered, rather than merely mentioned."""
    folded = fold_text(text)
    if _EXTRA_AFTER_RE.match(folded, end):
        return False
    clause_start = 0
    for brk in _CLAUSE_BREAK_RE.finditer(folded, 0, start):
        clause_start = brk.end()
    clause = folded[clause_start:start]
    past = list(_NOT_OFFER_VERB_RE.finditer(clause))
    if not past:
        return True
    return any(o.start() > past[-1].start() for o in _OFFER_VERB_RE.finditer(clause))
