"""The panel's navigation: each screen module adds its entry at import.

Entries are (label, path under the panel prefix, roles that see it or None for everyone)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class NavItem:
    label: str
    path: str
    roles: frozenset[str] | None = None
    order: int = 100


NAV: list[NavItem] = [NavItem("Caixa de entrada", "/caixa", None, 0)]


def add_nav(item: NavItem) -> None:
    if all(existing.path != item.path for existing in NAV):
        NAV.append(item)
        NAV.sort(key=lambda entry: entry.order)
