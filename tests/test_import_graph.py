"""The packages follow the pipeline: formats → runtime → engine → serving → train → export → harness → calibration →
benchmarks → pipeline → edge.

Every import (module level or inside a function: a lazy import is still a dependency) is read from the
source with ``ast``; an import of a package later in the order is a back-arrow, and modules that import
each other (directly or round a longer loop) are a circle. Both fail here, naming the files.
"""

import ast
from pathlib import Path

from tests.conftest import REPO

# formats: numpy-only plumbing; runtime: the deploy core; engine + serving: the rest of the device side (imports
# only formats and runtime); train → export → harness → calibration: the training side; benchmarks, then the pipeline
# that uses them, on top; edge assembles the commands.
ORDER = (
    "formats",
    "runtime",
    "engine",
    "serving",
    "train",
    "export",
    "harness",
    "calibration",
    "benchmarks",
    "pipeline",
    "edge",
)
ALLOWED: set[tuple[str, str]] = set()  # no back-arrows, no aliases


def _modules() -> dict[str, Path]:
    found = {}
    for package in ORDER:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _imports(path: Path, known: set[str]) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            candidates = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        else:
            continue
        for name in candidates:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name:
                names.add(name)
                break
    return names


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(path, set(modules)) - {name} for name, path in modules.items()}


def test_no_package_imports_a_later_one():
    rank = {package: i for i, package in enumerate(ORDER)}
    back = sorted(
        f"{a} → {b}"
        for a, targets in _graph().items()
        for b in targets
        if rank[b.split(".")[0]] > rank[a.split(".")[0]] and (a, b) not in ALLOWED
    )
    assert back == [], "imports against the pipeline order:\n" + "\n".join(back)


def test_no_import_circles():
    graph = _graph()
    index, low, stack, on_stack, circles = {}, {}, [], set(), []

    def visit(node):  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                item = stack.pop()
                on_stack.discard(item)
                component.append(item)
                if item == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    assert circles == [], f"modules importing each other: {circles}"


def test_the_graph_sees_real_edges():  # the checks above would pass vacuously on an empty graph
    graph = _graph()
    assert "engine.build" in graph["engine.cache"] and "formats.engine_manifest" in graph["engine.build"]
