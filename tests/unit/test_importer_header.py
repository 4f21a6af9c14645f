"""The case importer refuses a file with missing columns before reading any row."""

import pytest

from api.cases.importer import RowRejected, read_rows

pytestmark = pytest.mark.unit


async def test_a_missing_column_is_refused_before_any_row() -> None:
    with pytest.raises(RowRejected, match="faltam as colunas"):
        list(read_rows(["brand,seller_name\n", "X,Y\n"]))
