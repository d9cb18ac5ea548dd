"""The package's layers, checked on its import graph (imports inside functions included).

docs/architecture.md draws the picture these tests hold the code to: what may import what, and
that no two modules need each other. A function-level import hides a dependency from Python's
import machinery, not from the design, so every ``import`` statement counts, wherever it stands.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO

PACKAGE = "airflow_mlops"
ROOT = REPO / "operators" / PACKAGE

# Which first-level parts of the package each part may import. ``core`` is the lifecycle as
# plain Python; ``serving`` runs in the serving image beside it; everything else is the Airflow
# face or the embedded stack. ``exceptions`` and ``settings`` are stdlib-only leaves.
LEAVES = {"exceptions", "settings", "__init__"}
ALLOWED: dict[str, set[str]] = {
    "core": {"core"} | LEAVES,
    "serving": {"serving", "core"} | LEAVES,
    "ui": {"ui", "core"} | LEAVES,
}
# Nothing a task or a DAG imports may reach the demo and the embedded stack.
NOT_FROM_TASKS = "devstack"
TASK_SIDE = {"hooks", "operators", "sensors", "triggers", "links", "dags", "plugins", "ui"}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def imported_names(module: str, path: Path) -> Iterator[tuple[str, int]]:
    """Every absolute name an import statement of the module reaches, with its line."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = module.split(".")
                keep = len(parts) - node.level + (1 if is_package else 0)
                base = ".".join(parts[:keep] + ([base] if base else []))
            yield base, node.lineno
            for alias in node.names:
                yield f"{base}.{alias.name}", node.lineno


def internal(name: str) -> str | None:
    """The package module a name belongs to (the longest known prefix), or None."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for module, path in MODULES.items():
        targets = {internal(name) for name, _ in imported_names(module, path)}
        edges[module] = {t for t in targets if t and t not in (module, PACKAGE)}
    return edges


def part(module: str) -> str:
    """First-level part of the package: ``core``, ``serving``, ``settings``..."""
    return module.split(".")[1] if "." in module else "__init__"


def strongly_connected(edges: dict[str, set[str]]) -> list[set[str]]:
    """Groups of nodes that reach each other (Tarjan, iterative), larger than one."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    groups: list[set[str]] = []
    for start in edges:
        if start in index:
            continue
        work = [(start, iter(sorted(edges.get(start, ()))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.add(member)
                    if member == node:
                        break
                if len(group) > 1:
                    groups.append(group)
    return groups


def test_the_graph_sees_function_level_imports():
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert strongly_connected(edges) == [{"a", "b", "c"}]
    assert strongly_connected({"a": {"b"}, "b": set()}) == []
    # The package itself has imports inside functions; the graph must count them.
    inner = [
        node
        for path in MODULES.values()
        for fn in ast.walk(ast.parse(path.read_text()))
        if isinstance(fn, ast.FunctionDef)
        for node in ast.walk(fn)
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(PACKAGE)
    ]
    assert inner, "expected function-level imports in the package"
    edges = graph()
    assert sum(len(targets) for targets in edges.values()) > len(MODULES)


def test_no_import_cycle_between_modules():
    cycles = [sorted(group) for group in strongly_connected(graph())]
    assert cycles == [], "modules that import each other (docs/architecture.md): " + "; ".join(
        " <-> ".join(group) for group in cycles
    )


def test_no_import_cycle_between_subpackages():
    """Subpackages of core/ (and serving/) point one way: a cycle between two of them means a
    type or a helper lives on the wrong side."""

    def unit(module: str) -> str:
        parts = module.split(".")
        return ".".join(parts[:3]) if part(module) == "core" else ".".join(parts[:2])

    edges: dict[str, set[str]] = {}
    for module, targets in graph().items():
        edges.setdefault(unit(module), set()).update(
            unit(t) for t in targets if unit(t) != unit(module)
        )
    cycles = [sorted(group) for group in strongly_connected(edges)]
    assert cycles == [], "subpackages that import each other: " + "; ".join(
        " <-> ".join(group) for group in cycles
    )


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_layer_imports_only_what_it_may(layer):
    wrong: set[str] = set()
    for module, path in MODULES.items():
        if part(module) != layer:
            continue
        for name, line in imported_names(module, path):
            top = name.split(".")[0]
            target = internal(name) if top == PACKAGE else None
            if top == "airflow" or (target and part(target) not in ALLOWED[layer]):
                wrong.add(f"{path.relative_to(REPO)}:{line} imports {target or name}")
    assert sorted(wrong) == []


def test_tasks_and_dags_never_import_the_embedded_stack():
    wrong = [
        f"{module} -> {target}"
        for module, targets in graph().items()
        if part(module) in TASK_SIDE or part(module) in ALLOWED
        for target in targets
        if part(target) == NOT_FROM_TASKS
    ]
    assert wrong == []
