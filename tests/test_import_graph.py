"""The shape of the house: the packages of ``routstr/`` import each other in one direction (no cycle),
and no module grows past ~400 lines without a written reason.

A package is the first name under ``routstr/``: ``routstr/api/admin.py`` is ``api``, ``routstr/node.py``
is ``node``, ``routstr/__init__.py`` is ``routstr``. Every import counts, wherever it is written: at the
top, inside a function (the CLI imports lazily), and under ``if TYPE_CHECKING:`` (a type-only import
is still a dependency of the code's meaning; a component that needs the settings' type declares a
``Protocol`` of what it reads instead, as ``storage/node_secret.py`` and ``discovery/publisher.py`` do).
Imports inside a package are not checked: a cycle there is that package's business.
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "routstr"
MAX_LINES = 400
# Modules allowed past MAX_LINES, each with why splitting it would not help a reader. Empty: none is.
LONG_MODULES: dict[str, str] = {}

Edge = tuple[str, str, int]  # importing module, imported module, line


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _is_module(name: str, root: Path) -> bool:
    rel = Path(*name.split(".")[1:]) if "." in name else Path()
    return (root / rel).with_suffix(".py").is_file() or (root / rel / "__init__.py").is_file()


def _imports(path: Path, root: Path) -> Iterator[tuple[str, int]]:
    """Every ``routstr`` module ``path`` imports (absolute or relative, at any depth), with its line."""
    module = _module_name(path, root)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:  # ``from routstr import cli`` imports the module routstr.cli
                sub = f"{target}.{alias.name}"
                yield (sub if _is_module(sub, root) else target), node.lineno


def package_edges(root: Path = ROOT) -> dict[tuple[str, str], list[Edge]]:
    """(importing package, imported package) -> the imports that make that edge."""
    edges: dict[tuple[str, str], list[Edge]] = {}
    for path in sorted(root.rglob("*.py")):
        source = _module_name(path, root)
        for target, line in _imports(path, root):
            if target != root.name and not target.startswith(root.name + "."):
                continue
            a, b = _package(source), _package(target)
            if a == b:
                continue
            found = edges.setdefault((a, b), [])
            if (source, target, line) not in found:  # one line may import several names
                found.append((source, target, line))
    return edges


def find_cycle(edges: dict[tuple[str, str], list[Edge]]) -> list[str] | None:
    """One cycle of packages (first package repeated at the end), or None."""
    graph: dict[str, list[str]] = {}
    for a, b in sorted(edges):
        graph.setdefault(a, []).append(b)
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(p: str) -> list[str] | None:
        state[p] = 1
        path.append(p)
        for q in graph.get(p, []):
            if state.get(q) == 1:
                return [*path[path.index(q) :], q]
            if q not in state and (found := visit(q)) is not None:
                return found
        path.pop()
        state[p] = 2
        return None

    for p in sorted(graph):
        if p not in state and (found := visit(p)) is not None:
            return found
    return None


def describe(cycle: list[str], edges: dict[tuple[str, str], list[Edge]]) -> str:
    lines = [" -> ".join(cycle)]
    for a, b in itertools.pairwise(cycle):
        for source, target, line in edges[(a, b)][:5]:
            lines.append(f"  {a} -> {b}: {source} imports {target} (line {line})")
    return "\n".join(lines)


def test_packages_import_each_other_in_one_direction() -> None:
    edges = package_edges()
    assert ("api", "node") in edges and ("admin", "operator") in edges  # the graph is really read
    cycle = find_cycle(edges)
    if cycle is not None:
        pytest.fail("import cycle between packages:\n" + describe(cycle, edges))


def test_the_operator_layer_and_the_dashboard_know_no_http_routes() -> None:
    """``api/`` and ``admin/`` call ``operator/``; neither the dashboard nor the operator imports an
    HTTP route module, and the composition root imports none of its callers."""
    edges = package_edges()
    for a, b in [("admin", "api"), ("operator", "api"), ("operator", "admin"), ("cli_catalogue", "cli")]:
        assert (a, b) not in edges, describe([a, b], edges)
    for caller in ("api", "admin", "operator", "app", "jobs", "cli"):
        assert ("node", caller) not in edges, describe(["node", caller], edges)


def test_the_check_finds_a_cycle_through_a_function_and_a_relative_import(tmp_path: Path) -> None:
    """The checker itself: a cycle made of a lazy import and a relative one is found and named."""
    root = tmp_path / "routstr"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    (root / "__init__.py").write_text("")
    (root / "a" / "__init__.py").write_text("")
    (root / "b" / "__init__.py").write_text("")
    (root / "a" / "x.py").write_text("def f():\n    from routstr.b.y import g\n    return g\n")
    (root / "b" / "y.py").write_text("from ..a import x\n\ndef g():\n    return x\n")
    (root / "c.py").write_text("from routstr import a\n")
    edges = package_edges(root)
    assert sorted(edges) == [("a", "b"), ("b", "a"), ("c", "a")]
    cycle = find_cycle(edges)
    assert cycle == ["a", "b", "a"]
    assert "routstr.a.x imports routstr.b.y (line 2)" in describe(cycle, edges)
    (root / "b" / "y.py").write_text("def g():\n    return 1\n")
    assert find_cycle(package_edges(root)) is None


def test_no_module_is_over_400_lines_without_a_reason() -> None:
    long = {
        str(p.relative_to(ROOT.parent)): n
        for p in sorted(ROOT.rglob("*.py"))
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    unexplained = {f: n for f, n in long.items() if f not in LONG_MODULES}
    assert not unexplained, f"over {MAX_LINES} lines, split or give a reason in LONG_MODULES: {unexplained}"
    stale = sorted(set(LONG_MODULES) - set(long))
    assert not stale, f"no longer over {MAX_LINES} lines, drop from LONG_MODULES: {stale}"
    assert all(reason.strip() for reason in LONG_MODULES.values())
