"""A bot turn's case (api.assistant.context.load_case) comes with what its templates read —
brand, infringer, every listing — in one statement, on both databases."""

from __future__ import annotations

import pytest

from api.assistant.context import load_case
from api.db import unit_of_work
from tests.factories import make_brand, make_case, make_infringer
from tests.helpers.queries import count_queries

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("database_url")]


@pytest.mark.parametrize("listings", [0, 1, 3])
async def test_the_case_and_its_listings_load_in_one_statement(listings: int) -> None:
    urls = tuple(f"https://produto.mercadolivre.com.br/MLB-{n}" for n in range(listings))
    async with unit_of_work() as session:
        brand = await make_brand(session)
        infringer = await make_infringer(session, name="Maria da Silva")
        case = await make_case(session, brand=brand, infringer=infringer, listings=urls)
        case_id, brand_name = case.id, brand.name
    async with unit_of_work() as session:
        with count_queries() as log:
            loaded = await load_case(session, case_id)
            assert loaded is not None
            seen = (
                loaded.brand.name,
                loaded.infringer.name,
                sorted(item.url for item in loaded.listings),
            )
        assert log.count == 1, log
    assert seen == (brand_name, "Maria da Silva", sorted(urls))


async def test_a_missing_case_is_none() -> None:
    async with unit_of_work() as session:
        assert await load_case(session, 2_147_480_000) is None
