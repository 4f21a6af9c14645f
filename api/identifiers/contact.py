"""E-mail addresses, URLs and marketplaces mentioned by sellers."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from .documents import fold_text
from .errors import InvalidIdentifier

MERCADO_LIVRE = "Mercado Livre"
SHOPEE = "Shopee"
AMAZON = "Amazon"
MAGALU = "Magalu"
OLX = "OLX"
INSTAGRAM = "Instagram"
FACEBOOK = "Facebook"
TIKTOK_SHOP = "TikTok Shop"
SHEIN = "Shein"
ALIEXPRESS = "AliExpress"
OWN_WEBSITE = "own website"

MARKETPLACES: tuple[str, ...] = (
    MERCADO_LIVRE,
    SHOPEE,
    AMAZON,
    MAGALU,
    OLX,
    INSTAGRAM,
    FACEBOOK,
    TIKTOK_SHOP,
    SHEIN,
    ALIEXPRESS,
    OWN_WEBSITE,
)

# Folded (lowercase, no accents) names people use, longest phrases first when searched.
_SYNONYMS: dict[str, tuple[str, ...]] = {
    MERCADO_LIVRE: (
        "mercado livre",
        "mercadolivre",
        "mercado libre",
        "mercadolibre",
        "meli",
    ),
    SHOPEE: ("shopee", "shoppe", "shoppee", "xopee", "xope", "shopii"),
    AMAZON: ("amazon", "amazon com br", "amazon br"),
    MAGALU: ("magalu", "magazine luiza", "magazineluiza"),
    OLX: ("olx",),
    INSTAGRAM: ("instagram", "insta", "ig"),
    FACEBOOK: (
        "facebook",
        "face",
        "fb",
        "marketplace do face",
        "marketplace do facebook",
        "facebook marketplace",
    ),
    TIKTOK_SHOP: ("tiktok shop", "tik tok shop", "tiktok", "tik tok", "tiktokshop"),
    SHEIN: ("shein",),
    ALIEXPRESS: ("aliexpress", "ali express"),
    OWN_WEBSITE: (
        "own website",
        "meu site",
        "meu site proprio",
        "nosso site",
        "site proprio",
        "site da loja",
        "loja propria",
        "loja virtual",
        "loja virtual propria",
        "minha loja virtual",
        "ecommerce proprio",
        "e-commerce proprio",
    ),
}
# Whole-value synonyms that are too ambiguous to look for inside a sentence.
_VALUE_ONLY_SYNONYMS: dict[str, str] = {"ml": MERCADO_LIVRE, "site": OWN_WEBSITE}

_HOSTS: dict[str, str] = {
    "mercadolivre.com.br": MERCADO_LIVRE,
    "mercadolivre.com": MERCADO_LIVRE,
    "mercadolibre.com": MERCADO_LIVRE,
    "meli.la": MERCADO_LIVRE,
    "mlstatic.com": MERCADO_LIVRE,
    "shopee.com.br": SHOPEE,
    "shopee.com": SHOPEE,
    "shope.ee": SHOPEE,
    "amazon.com.br": AMAZON,
    "amazon.com": AMAZON,
    "amzn.to": AMAZON,
    "amzn.com": AMAZON,
    "a.co": AMAZON,
    "magazineluiza.com.br": MAGALU,
    "magalu.com.br": MAGALU,
    "magalu.com": MAGALU,
    "olx.com.br": OLX,
    "instagram.com": INSTAGRAM,
    "instagr.am": INSTAGRAM,
    "facebook.com": FACEBOOK,
    "fb.com": FACEBOOK,
    "fb.me": FACEBOOK,
    "fb.watch": FACEBOOK,
    "tiktok.com": TIKTOK_SHOP,
    "shein.com": SHEIN,
    "shein.com.br": SHEIN,
    "aliexpress.com": ALIEXPRESS,
    "aliexpress.us": ALIEXPRESS,
    "a.aliexpress.com": ALIEXPRESS,
}

_EMAIL_LOCAL = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
_EMAIL_DOMAIN = r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}"
_EMAIL_RE = re.compile(rf"{_EMAIL_LOCAL}@{_EMAIL_DOMAIN}")
_EMAIL_IN_TEXT_RE = re.compile(
    rf"(?<![A-Za-z0-9!#$%&'*+/=?^_`{{|}}~.-]){_EMAIL_LOCAL}@{_EMAIL_DOMAIN}(?![A-Za-z0-9-])"
)

_HOST_ALTERNATION = "|".join(
    re.escape(host) for host in sorted(_HOSTS, key=len, reverse=True) if "." in host
)
_URL_RE = re.compile(
    r"https?://[^\s<>\"'`]+"
    r"|(?<![\w@./-])www\.[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+(?:[/?#][^\s<>\"'`]*)?"
    rf"|(?<![\w@./-])(?:[A-Za-z0-9-]+\.)*(?:{_HOST_ALTERNATION})(?![\w-])(?:[/?#][^\s<>\"'`]*)?",
    re.IGNORECASE,
)
_TRAILING_PUNCTUATION = ".,;:!?'\"»…"
_CLOSING_BRACKETS = {")": "(", "]": "[", "}": "{"}


def normalize_email(text: str) -> str:
    """Lowercase and validate an e-mail address ("<Fulano@Loja.com.br>" -> "fulano@loja.com.br")."""
    address = text.strip()
    if address.lower().startswith("mailto:"):
        address = address[len("mailto:") :]
    address = address.strip().removeprefix("<").removesuffix(">").strip().lower()
    if len(address) > 254 or not _EMAIL_RE.fullmatch(address):
        raise InvalidIdentifier("email", "not an e-mail address")
    return address


def email_domain(address: str) -> str:
    """The domain of an e-mail address, lowercased."""
    return normalize_email(address).rsplit("@", 1)[1]


def find_emails(text: str) -> list[tuple[str, int, int]]:
    """Find e-mail addresses in free text, normalized, with their offsets."""
    found: list[tuple[str, int, int]] = []
    for match in _EMAIL_IN_TEXT_RE.finditer(text):
        try:
            found.append((normalize_email(match.group()), match.start(), match.end()))
        except InvalidIdentifier:
            continue
    return found


def _trim_url(url: str) -> str:
    while url:
        last = url[-1]
        unbalanced = last in _CLOSING_BRACKETS and url.count(last) > url.count(
            _CLOSING_BRACKETS[last]
        )
        if last not in _TRAILING_PUNCTUATION and not unbalanced:
            break
        url = url[:-1]
    return url


def find_urls(text: str) -> list[tuple[str, int, int]]:
    """Find URLs (http(s)://, www. and bare marketplace hosts) in free text, with offsets."""
    found: list[tuple[str, int, int]] = []
    for match in _URL_RE.finditer(text):
        url = _trim_url(match.group())
        if "." not in url:
            continue
        found.append((url, match.start(), match.start() + len(url)))
    return found


def _key(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9]+", " ", fold_text(text)).split())


_BY_KEY: dict[str, str] = {
    _key(synonym): name for name, synonyms in _SYNONYMS.items() for synonym in synonyms
}
_BY_KEY.update({_key(name): name for name in MARKETPLACES})
_BY_COMPACT_KEY: dict[str, str] = {key.replace(" ", ""): name for key, name in _BY_KEY.items()}


def marketplace_from_url(url: str) -> str | None:
    """The marketplace a URL belongs to, from its host; None for other sites."""
    candidate = url.strip()
    if "://" not in candidate:
        candidate = f"http://{candidate}"
    try:
        host = (urlsplit(candidate).hostname or "").lower().rstrip(".")
    except ValueError:
        return None
    while host:
        if host in _HOSTS:
            return _HOSTS[host]
        if "." not in host:
            return None
        host = host.split(".", 1)[1]
    return None


def canonical_marketplace(text: str) -> str | None:
    """The canonical marketplace name for a name, synonym or URL ("mercadolivre" -> "Mercado Livre")."""
    key = _key(text)
    if not key:
        return None
    if key in _BY_KEY:
        return _BY_KEY[key]
    if key in _VALUE_ONLY_SYNONYMS:
        return _VALUE_ONLY_SYNONYMS[key]
    compact = key.replace(" ", "")
    if compact in _BY_COMPACT_KEY:
        return _BY_COMPACT_KEY[compact]
    if re.fullmatch(r"\S+\.\S+", text.strip()):
        return marketplace_from_url(text)
    names = {name for name, _, _ in find_marketplaces(text)}
    return names.pop() if len(names) == 1 else None


def _phrase_pattern(phrase: str) -> str:
    return r"[\s-]*".join(re.escape(part) for part in phrase.split())


_MARKETPLACE_RE = re.compile(
    r"(?<![a-z0-9])(?:"
    + "|".join(
        _phrase_pattern(phrase)
        for phrase in sorted(
            {_key(s) for synonyms in _SYNONYMS.values() for s in synonyms}, key=len, reverse=True
        )
    )
    + r")(?![a-z0-9])"
)
# "ML" means Mercado Livre only in capitals and not after a number ("500 ML" is a volume).
_ML_RE = re.compile(r"(?<![A-Za-z0-9])(?<!\d )ML(?![A-Za-z0-9])")
# "MLB" alone is not Mercado Livre (baseball, a brand, an acronym); a Mercado Livre listing
# code ("MLB-1234567890", "MLB1234567890") is.
_MLB_ITEM_RE = re.compile(r"(?<![A-Za-z0-9])MLB-?\d{6,}(?![0-9])", re.IGNORECASE)


def find_marketplaces(text: str) -> list[tuple[str, int, int]]:
    """Find marketplaces named or linked in free text, canonical, with their offsets."""
    found: list[tuple[str, int, int]] = []
    urls = find_urls(text)
    for url, start, end in urls:
        name = marketplace_from_url(url)
        if name is not None:
            found.append((name, start, end))
    # A name inside a link or an e-mail address is not a separate mention.
    taken = [(start, end) for _, start, end in [*urls, *find_emails(text)]]

    def is_free(start: int, end: int) -> bool:
        return not any(start < t_end and t_start < end for t_start, t_end in taken)

    folded = fold_text(text)
    for match in _MARKETPLACE_RE.finditer(folded):
        if is_free(match.start(), match.end()):
            found.append((_BY_KEY[_key(match.group())], match.start(), match.end()))
    for pattern in (_ML_RE, _MLB_ITEM_RE):
        for match in pattern.finditer(text):
            if is_free(match.start(), match.end()):
                found.append((MERCADO_LIVRE, match.start(), match.end()))
    found.sort(key=lambda item: item[1])
    return found
