"""The package's shape, checked from its source: no import cycles, no private names imported across modules, and
one exception root.

The import graph is read with ``ast`` from every import statement in ``guidance_lite/`` — at module level, inside
functions and under ``if TYPE_CHECKING:`` alike, since an import hidden in a function is still a dependency. An edge
goes to the module an import names: ``from .x import y`` is an edge to ``x`` (or to the submodule ``x.y`` when that
is a module), ``from . import y`` to ``y`` when it is a module, else to the package.
"""

from __future__ import annotations

import ast
import importlib
import inspect
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path
from typing import Optional

import guidance_lite
from guidance_lite.errors import GuidanceLiteError

PACKAGE = Path(guidance_lite.__file__).resolve().parent
Graph = dict[str, dict[str, int]]  # module -> {imported module: first line importing it}


def module_files() -> dict[str, Path]:
    """Every module of the package by dotted name (a package is its ``__init__.py``)."""
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


MODULES = module_files()


def _base_of(module: str, path: Path, node: ast.ImportFrom) -> Optional[str]:
    """The absolute module a ``from … import`` statement reads from (None outside the package)."""
    if not node.level:
        return node.module if (node.module or "").split(".")[0] == "guidance_lite" else None
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    package = package[: len(package) - (node.level - 1)]
    return ".".join(package + ([node.module] if node.module else []))


def parse_imports(source: str, module: str, path: Path) -> Iterator[tuple[str, list[str], int]]:
    """(imported module, names taken from it, line) for every import statement in ``source`` into the package."""
    for node in ast.walk(ast.parse(source, str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "guidance_lite":
                    yield alias.name, [], node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = _base_of(module, path, node)
            if base is None:
                continue
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                if submodule in MODULES:
                    yield submodule, [], node.lineno
                else:
                    yield base, [alias.name], node.lineno


def imports(module: str) -> Iterator[tuple[str, list[str], int]]:
    path = MODULES[module]
    return parse_imports(path.read_text(encoding="utf-8"), module, path)


def import_graph() -> Graph:
    graph: Graph = {m: {} for m in MODULES}
    for module in MODULES:
        for target, _, line in imports(module):
            if target in MODULES and target != module:
                graph[module].setdefault(target, line)
    return graph


def knots(graph: Graph) -> list[list[str]]:
    """The groups of modules that import each other, directly or not (strongly connected components of more than
    one module, by Tarjan's algorithm), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph[node]:
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return sorted(groups)


def shortest_cycle(graph: Graph, group: list[str]) -> list[str]:
    """A shortest cycle [a, …, a] through the group's first module, staying inside the group (breadth-first)."""
    start, members = group[0], set(group)
    came_from: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for nxt in sorted(graph[node]):
                if nxt == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(came_from[path[-1]])
                    return [*reversed(path), start]
                if nxt in members and nxt not in came_from:
                    came_from[nxt] = node
                    following.append(nxt)
        frontier = following
    raise AssertionError(f"no cycle through {start}")  # a strongly connected group always has one


def describe(graph: Graph, group: list[str]) -> str:
    cycle = shortest_cycle(graph, group)
    arrows = [f"    {a} -> {b}  ({MODULES[a].relative_to(PACKAGE.parent)}:{graph[a][b]})" for a, b in pairwise(cycle)]
    return "\n".join([f"  a knot of {len(group)} modules ({', '.join(group)}); one cycle:", *arrows])


# ---- the reader and the graph algorithms, on known input ------------------------------------------------------
def test_the_reader_sees_imports_in_functions_and_under_type_checking() -> None:
    """The imports that hide cycles must be read (guards the checks below against passing vacuously)."""
    source = (
        "from typing import TYPE_CHECKING\nfrom ..errors import _unpickle\nif TYPE_CHECKING:\n"
        "    from ..program import Result\n"
        "def f():\n    from . import block, loops\n    import guidance_lite.state\n    from .. import nodes\n"
    )
    found = parse_imports(source, "guidance_lite.commands.probe", PACKAGE / "commands" / "probe.py")
    assert sorted(found, key=lambda edge: (edge[2], edge[0])) == [
        ("guidance_lite.errors", ["_unpickle"], 2),
        ("guidance_lite.program", ["Result"], 4),
        ("guidance_lite.commands", ["block"], 6),
        ("guidance_lite.commands.loops", [], 6),
        ("guidance_lite.state", [], 7),
        ("guidance_lite.nodes", [], 8),
    ]


def test_every_knot_is_found_with_a_cycle_inside_it() -> None:
    graph = {"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1, "d": 1}, "d": {"e": 1}, "e": {"d": 1}, "f": {"a": 1}}
    assert knots(graph) == [["a", "b", "c"], ["d", "e"]]
    assert [shortest_cycle(graph, group) for group in knots(graph)] == [["a", "b", "c", "a"], ["d", "e", "d"]]
    assert knots({"a": {"b": 1}, "b": {}, "c": {"a": 1}}) == []


def test_the_package_graph_holds_known_edges() -> None:
    graph = import_graph()
    assert "guidance_lite.interpreter" in graph["guidance_lite.program"]
    assert "guidance_lite.nodes" in graph["guidance_lite.parser"]


# ---- the rules -------------------------------------------------------------------------------------------------
def test_no_import_cycles() -> None:
    graph = import_graph()
    found = knots(graph)
    assert not found, "import cycles:\n" + "\n".join(describe(graph, group) for group in found)


def test_no_private_names_imported_across_modules() -> None:
    offences = []
    for module in MODULES:
        for target, names, line in imports(module):
            private = [n for n in names if n.startswith("_") and not (n.startswith("__") and n.endswith("__"))]
            if private and target != module:
                offences.append(
                    f"  {MODULES[module].relative_to(PACKAGE.parent)}:{line} imports {', '.join(private)} from {target}"
                )
    assert not offences, "private names imported across modules:\n" + "\n".join(offences)


def _exception_classes() -> Iterator[type[BaseException]]:
    for module in sorted(MODULES):
        if module.endswith("__main__"):
            continue  # importing it would run the CLI
        loaded = importlib.import_module(module)
        for _, value in inspect.getmembers(loaded, inspect.isclass):
            if issubclass(value, BaseException) and value.__module__ == module:
                yield value


def test_every_exception_class_shares_one_root() -> None:
    classes = list(_exception_classes())
    assert GuidanceLiteError in classes and len(classes) > 5  # the walk found the package's exceptions
    strays = [f"{cls.__module__}.{cls.__qualname__}" for cls in classes if not issubclass(cls, GuidanceLiteError)]
    assert not strays, "exception classes that do not inherit from GuidanceLiteError:\n  " + "\n  ".join(strays)
