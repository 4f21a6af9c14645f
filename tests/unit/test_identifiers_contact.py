"""E-mail addresses, URLs and marketplaces."""

from __future__ import annotations

import pytest

from api.identifiers.contact import (
    MARKETPLACES,
    canonical_marketplace,
    email_domain,
    find_emails,
    find_marketplaces,
    find_urls,
    marketplace_from_url,
    normalize_email,
)
from api.identifiers.errors import InvalidIdentifier

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Fulano.Silva@Loja.com.br", "fulano.silva@loja.com.br"),
        ("  contato@empresa.com  ", "contato@empresa.com"),
        ("<juridico+notif@escritorio.adv.br>", "juridico+notif@escritorio.adv.br"),
        ("mailto:Vendas@Shop.io", "vendas@shop.io"),
    ],
)
def test_normalize_email(text: str, expected: str) -> None:
    assert normalize_email(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "fulano",
        "fulano@",
        "@loja.com",
        "fulano@loja",
        "ful ano@loja.com",
        "fulano..silva@loja.com",
        ".fulano@loja.com",
        "fulano@loja..com",
        "fulano@-loja.com",
        "a@b@loja.com",
    ],
)
def test_normalize_email_rejects(text: str) -> None:
    with pytest.raises(InvalidIdentifier) as caught:
        normalize_email(text)
    assert caught.value.kind == "email"


def test_email_domain() -> None:
    assert email_domain("Fulano@Escritorio.ADV.br") == "escritorio.adv.br"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Contato: Fulano.Silva@Loja.com.br. Cópia: <juridico@adv.com>",
            [
                ("fulano.silva@loja.com.br", "Fulano.Silva@Loja.com.br"),
                ("juridico@adv.com", "juridico@adv.com"),
            ],
        ),
        ("sem e-mail aqui @ nada", []),
    ],
)
def test_find_emails(text: str, expected: list[tuple[str, str]]) -> None:
    assert [(email, text[start:end]) for email, start, end in find_emails(text)] == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "veja https://produto.mercadolivre.com.br/MLB-123-abc.",
            ["https://produto.mercadolivre.com.br/MLB-123-abc"],
        ),
        ("(link: http://loja.com/p?id=1)", ["http://loja.com/p?id=1"]),
        ("https://pt.wikipedia.org/wiki/A_(b)!", ["https://pt.wikipedia.org/wiki/A_(b)"]),
        ("site www.minhaloja.com.br, confira", ["www.minhaloja.com.br"]),
        ("anuncio em shopee.com.br/produto-i.1.2;", ["shopee.com.br/produto-i.1.2"]),
        (
            "mercadolivre.com.br/anuncio e amzn.to/3xYz",
            ["mercadolivre.com.br/anuncio", "amzn.to/3xYz"],
        ),
        ("fulano@shopee.com.br", []),
        ("fim da frase.com isso", []),
    ],
)
def test_find_urls(text: str, expected: list[str]) -> None:
    found = find_urls(text)
    assert [url for url, _, _ in found] == expected
    assert [text[start:end] for _, start, end in found] == expected


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://produto.mercadolivre.com.br/MLB-123", "Mercado Livre"),
        ("https://meli.la/abc", "Mercado Livre"),
        ("shopee.com.br/x", "Shopee"),
        ("https://s.shopee.com.br/x", "Shopee"),
        ("https://www.amazon.com.br/dp/B0", "Amazon"),
        ("https://www.magazineluiza.com.br/p", "Magalu"),
        ("https://www.olx.com.br/d/anuncio", "OLX"),
        ("https://www.instagram.com/loja", "Instagram"),
        ("https://m.facebook.com/marketplace/item/1", "Facebook"),
        ("https://www.tiktok.com/@loja", "TikTok Shop"),
        ("https://br.shein.com/p", "Shein"),
        ("https://pt.aliexpress.com/item/1.html", "AliExpress"),
        ("https://minhaloja.com.br", None),
        ("https://notshopee.com.br/x", None),
        ("not a url", None),
    ],
)
def test_marketplace_from_url(url: str, expected: str | None) -> None:
    assert marketplace_from_url(url) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mercadolivre", "Mercado Livre"),
        ("Mercado Livre", "Mercado Livre"),
        ("mercado-livre", "Mercado Livre"),
        ("ML", "Mercado Livre"),
        ("meli", "Mercado Livre"),
        ("MLB", None),
        ("shopee", "Shopee"),
        ("Shoppe", "Shopee"),
        ("xopee", "Shopee"),
        ("AMAZON", "Amazon"),
        ("magalu", "Magalu"),
        ("Magazine Luiza", "Magalu"),
        ("olx", "OLX"),
        ("insta", "Instagram"),
        ("Instagram", "Instagram"),
        ("IG", "Instagram"),
        ("face", "Facebook"),
        ("fb", "Facebook"),
        ("marketplace do face", "Facebook"),
        ("TikTok", "TikTok Shop"),
        ("tik tok", "TikTok Shop"),
        ("tiktok shop", "TikTok Shop"),
        ("SHEIN", "Shein"),
        ("aliexpress", "AliExpress"),
        ("Ali Express", "AliExpress"),
        ("meu site", "own website"),
        ("site próprio", "own website"),
        ("site proprio", "own website"),
        ("loja virtual própria", "own website"),
        ("https://shopee.com.br/x", "Shopee"),
        ("vendo só na shopee", "Shopee"),
        ("", None),
        ("feira", None),
        ("shopee e mercado livre", None),
    ],
)
def test_canonical_marketplace(text: str, expected: str | None) -> None:
    assert canonical_marketplace(text) == expected


@pytest.mark.parametrize("name", MARKETPLACES)
def test_canonical_names_map_to_themselves(name: str) -> None:
    assert canonical_marketplace(name) == name


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Vendo no ML e na Shopee",
            [("Mercado Livre", "ML"), ("Shopee", "Shopee")],
        ),
        (
            "anúncio no insta, no marketplace do face e no Tik Tok",
            [
                ("Instagram", "insta"),
                ("Facebook", "marketplace do face"),
                ("TikTok Shop", "Tik Tok"),
            ],
        ),
        ("só no meu site próprio", [("own website", "meu site próprio")]),
        (
            "link https://produto.mercadolivre.com.br/MLB-1 da loja",
            [("Mercado Livre", "https://produto.mercadolivre.com.br/MLB-1")],
        ),
        ("escreva para vendas@shopee.com.br", []),
        # "MLB" alone is not Mercado Livre; a Mercado Livre listing code is.
        ("MLB", []),
        ("vi o jogo da MLB ontem", []),
        ("o anúncio MLB-1234567890 já saiu", [("Mercado Livre", "MLB-1234567890")]),
        ("código mlb3456789012", [("Mercado Livre", "mlb3456789012")]),
        ("frasco de 500 ML", []),
        ("o html do site", []),
        ("a floresta amazônica", []),
        ("ali na esquina", []),
    ],
)
def test_find_marketplaces(text: str, expected: list[tuple[str, str]]) -> None:
    found = [(name, text[start:end]) for name, start, end in find_marketplaces(text)]
    assert found == expected
