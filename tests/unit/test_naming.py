"""`access_*` names only for functions that check permission (STYLE.md, after Zulip): one that
only fetches or raises NotFound is `require_*` (issue 11)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOTS = [Path(__file__).resolve().parents[2] / name for name in ("api", "actions")]
PERMISSION_CHECKS = {"PermissionDenied", "check_can_write", "require_role", "has_role"}


def _access_functions() -> list[tuple[str, ast.AST]]:
    found = []
    for root in ROOTS:
        for path in root.rglob("*.py"):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and (
                    node.name.startswith("access_")
                ):
                    found.append((f"{path.name}:{node.name}", node))
    return found


def _names_used(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)} | {
        n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)
    }


def test_every_access_function_checks_permission() -> None:
    without_check = [
        name for name, node in _access_functions() if not (_names_used(node) & PERMISSION_CHECKS)
    ]
    assert without_check == []


def test_the_fetchers_are_named_require() -> None:
    from api.analysts.service import require_analyst_by_email
    from api.cases.service import require_case
    from api.handoff.service import require_conversation

    assert all(callable(f) for f in (require_case, require_conversation, require_analyst_by_email))
    assert [name for name, _ in _access_functions()] == []
