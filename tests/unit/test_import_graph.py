"""The service's modules import each other without cycles where the seams were cut: the engine
does not reach back into itself through handoff, and the domain never imports a channel.

The graph is read from the source (module-level imports, `TYPE_CHECKING` blocks left out), so a
cycle dodged by an import inside a function is reported as well: those are counted too.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
API = ROOT / "api"
# Packages whose modules must form no import cycle among themselves.
CHECKED = (
    "api.engine",
    "api.handoff",
    "api.conversations",
    "api.channels",
    "api.templates",
    "api.inbox",
    "api.followups",
)
DOMAIN = ("api.conversations", "api.handoff", "api.templates", "api.inbox", "api.followups")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve(name: str, modules: set[str]) -> str | None:
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> list[str]:
    """Every imported name, at any depth (functions too), except under TYPE_CHECKING."""
    found: list[str] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.extend(f"{node.module}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def import_graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in API.rglob("*.py")}
    modules = set(files)
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        targets = set()
        for imported in _imports(ast.parse(path.read_text(encoding="utf-8"))):
            target = _resolve(imported, modules)
            # A package's __init__ is imported with any of its modules: ignore that edge, as
            # Python does not re-enter a package already being imported.
            if target is not None and target != name and not name.startswith(target + "."):
                targets.add(target)
        graph[name] = targets
    return graph


def cycles(graph: dict[str, set[str]], within: tuple[str, ...]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), restricted to `within`."""
    nodes = [n for n in graph if n.startswith(within)]
    allowed = set(nodes)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def connect(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for target in graph[node] & allowed:
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in nodes:
        if node not in index:
            connect(node)
    return found


def test_no_import_cycle_among_the_seams() -> None:
    assert cycles(import_graph(), CHECKED) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"api.engine.a": {"api.handoff.b"}, "api.handoff.b": {"api.engine.a"}}
    assert cycles(graph, CHECKED) == [["api.engine.a", "api.handoff.b"]]


def test_no_domain_module_imports_a_channel() -> None:
    graph = import_graph()
    offenders = {
        name: sorted(t for t in targets if t.startswith("api.channels"))
        for name, targets in graph.items()
        if name.startswith(DOMAIN)
    }
    assert {name: found for name, found in offenders.items() if found} == {}


def test_no_module_outside_channels_branches_on_a_channel() -> None:
    """`Channel.EMAIL` / `Channel.WHATSAPP` belong to the channel packages: the panel too asks
    the composer (label, reply window, template preview, message view)."""
    offenders = []
    for path in API.rglob("*.py"):
        name = _module_name(path)
        if name.startswith(("api.channels", "api.devtools", "api.migrations")):
            continue
        text = path.read_text(encoding="utf-8")
        if "Channel.EMAIL" in text or "Channel.WHATSAPP" in text:
            offenders.append(name)
    assert offenders == []


@pytest.mark.parametrize(
    "first", ["api.engine.dispatch", "api.handoff.service", "api.engine.turns"]
)
def test_each_seam_module_imports_first_in_a_fresh_interpreter(first: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", f"import {first}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-2000:]


def test_adapters_do_not_schedule_bot_turns() -> None:
    """The inbound pipeline asks for the turn (api.conversations.scheduling); a channel adapter
    only verifies, parses and calls it, so no channel module imports the engine."""
    graph = import_graph()
    offenders = {
        name: sorted(t for t in targets if t.startswith("api.engine"))
        for name, targets in graph.items()
        if name.startswith("api.channels")
    }
    assert {name: found for name, found in offenders.items() if found} == {}
