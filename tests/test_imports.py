"""The package's import graph: acyclic, and sources and outputs apart.

A cycle makes the import order decide what works; an arrow between ``sources`` and
``outputs`` ties two sides that should only meet in the daemon. Imports under
``if TYPE_CHECKING:`` do not run, so they do not count.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "monitor"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _type_checking_only(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING"
    )


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """The monitor modules ``path`` imports when it runs (at import or in a function)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _type_checking_only(child):
                for other in child.orelse:
                    visit(other)
                continue
            if isinstance(child, ast.Import):
                found.update(a.name for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.split(".")[: len(package.split(".")) - child.level + 1]
                    base = ".".join([*anchor, *([base] if base else [])])
                found.add(base)
                found.update(f"{base}.{a.name}" for a in child.names)  # a submodule imported by name
            visit(child)

    visit(ast.parse(path.read_text(), str(path)))
    # Importing ``a.b.c`` runs ``a/__init__`` and ``a/b/__init__`` first, and what they import.
    found |= {m.rsplit(".", k)[0] for m in list(found) for k in range(1, m.count(".") + 1)}
    return {m for m in found if m in modules and m != name}


def graph() -> dict[str, set[str]]:
    paths = sorted(PACKAGE.rglob("*.py"))
    modules = {module_name(p) for p in paths}
    return {module_name(p): imports_of(p, modules) for p in paths}


def _parents_free(g: dict[str, set[str]]) -> dict[str, set[str]]:
    """Importing ``a.b`` runs ``a/__init__`` first; that arrow is Python's, not a cycle."""
    return {m: {d for d in deps if not m.startswith(d + ".")} for m, deps in g.items()}


def find_cycle(g: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 on the path, 2 done
    path: list[str] = []

    def walk(m: str) -> list[str] | None:
        state[m] = 1
        path.append(m)
        for d in sorted(g.get(m, ())):
            if state.get(d) == 1:
                return [*path[path.index(d):], d]
            if d not in state and (cycle := walk(d)) is not None:
                return cycle
        path.pop()
        state[m] = 2
        return None

    for m in sorted(g):
        if m not in state and (cycle := walk(m)) is not None:
            return cycle
    return None


def test_the_finder_sees_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_monitor_has_no_import_cycle() -> None:
    cycle = find_cycle(_parents_free(graph()))
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


@pytest.mark.parametrize(("side", "other"), [("monitor.sources", "monitor.outputs"),
                                             ("monitor.outputs", "monitor.sources")])  # fmt: skip
def test_sources_and_outputs_do_not_import_each_other(side: str, other: str) -> None:
    arrows = [
        f"{m} -> {d}"
        for m, deps in graph().items()
        if m == side or m.startswith(side + ".")
        for d in deps
        if d == other or d.startswith(other + ".")
    ]
    assert arrows == []
