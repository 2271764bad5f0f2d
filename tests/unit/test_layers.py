"""The import graph keeps the layers of docs/architecture.md: no lower layer imports a higher one, and no
package that a newcomer changes often (cluster/, server/) hides a circle. Every import counts: module level,
inside functions (where circles used to hide) and under TYPE_CHECKING.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"


def _modules() -> dict[str, Path]:
    found = {}
    for path in (SRC / "vask").rglob("*.py"):
        parts = path.relative_to(SRC).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


MODULES = _modules()


def _imports(module: str) -> set[str]:
    tree = ast.parse(MODULES[module].read_text())
    package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                target = f"{base}.{alias.name}"
                if target in MODULES:
                    out.add(target)
                elif base in MODULES:
                    out.add(base)
        elif isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names if alias.name in MODULES)
    out.discard(module)
    return out


GRAPH = {module: _imports(module) for module in MODULES}


def _cycles(prefix: str) -> list[list[str]]:
    """Strongly connected components of more than one module among the modules under ``prefix``."""
    nodes = [m for m in GRAPH if m.startswith(prefix)]
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH[v]:
            if not w.startswith(prefix):
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in nodes:
        if v not in index:
            visit(v)
    return found


@pytest.mark.parametrize("package", ["vask.cluster.", "vask.server.", "vask.core.", "vask.protocol."])
def test_no_import_circle_inside(package: str) -> None:
    assert _cycles(package) == []


# module prefix → the prefixes it may import (besides itself); see docs/architecture.md
ALLOWED = {
    "vask.protocol.": ("vask.apps.base",),
    "vask.core.": ("vask.protocol.", "vask.apps.base", "vask.console.feed", "vask.console.events",
                   "vask.console.filters", "vask.console.logs", "vask.broker.base"),
    "vask.cluster.": ("vask.core.", "vask.protocol.", "vask.apps.base", "vask.broker.", "vask.billing.counters",
                      "vask.tasks"),
}


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_a_lower_layer_imports_no_higher_one(layer: str) -> None:
    wrong = {m: sorted(d for d in deps if not d.startswith((layer, *ALLOWED[layer])))
             for m, deps in GRAPH.items() if m.startswith(layer)}
    assert {m: d for m, d in wrong.items() if d} == {}


def test_the_graph_sees_function_level_and_type_checking_imports() -> None:
    # Guards the test itself: these edges exist only inside a function or under TYPE_CHECKING.
    assert "vask.cluster.redis_store" in GRAPH["vask.factory"]
    assert "vask.console.stats" in GRAPH["vask.server.node"]
