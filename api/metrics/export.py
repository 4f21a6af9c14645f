"""The metrics tables as flat rows (CSV and the terminal): nested timings become columns such
as `bot_first_response.wall.median`."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

from pydantic import BaseModel

from api.metrics.schemas import (
    AnalystRow,
    BrandRow,
    ChannelRow,
    EventCountRow,
    MetricsReport,
    ProviderRow,
    ReasonRow,
    StatusRow,
    WeekRow,
)

ROW_MODELS: dict[str, type[BaseModel]] = {
    "channels": ChannelRow,
    "providers": ProviderRow,
    "analysts": AnalystRow,
    "brands": BrandRow,
    "statuses": StatusRow,
    "handoff_reasons": ReasonRow,
    "events": EventCountRow,
    "weeks": WeekRow,
}


def flatten(row: BaseModel) -> dict[str, Any]:
    """One flat dict per row, nested models joined with dots, in field order."""
    flat: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, BaseModel):
            for name in type(value).model_fields:
                walk(f"{prefix}.{name}" if prefix else name, getattr(value, name))
        else:
            flat[prefix] = value

    walk("", row)
    return flat


def table_rows(report: MetricsReport, table: str) -> Sequence[BaseModel]:
    rows = getattr(report, table)
    assert isinstance(rows, list)
    return rows


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}" if abs(value) < 1 else f"{value:.2f}"
    if isinstance(value, Decimal):
        return f"{value:.2f}"
    return str(value)


def to_csv(rows: Iterable[BaseModel], columns: Sequence[str] | None = None) -> str:
    """CSV text (comma-separated, header first; seconds and fractions as numbers)."""
    flat = [flatten(row) for row in rows]
    header = list(columns) if columns is not None else (list(flat[0]) if flat else [])
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for row in flat:
        writer.writerow([_cell(row.get(column)) for column in header])
    return out.getvalue()


def columns_of(model: type[BaseModel]) -> list[str]:
    """The flat column names of a row model (so an empty table still has its header)."""
    names: list[str] = []
    for name, info in model.model_fields.items():
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            names += [f"{name}.{sub}" for sub in columns_of(annotation)]
        else:
            names.append(name)
    return names
