"""Central's feature packages form a tree: no package imports another that (directly or through
others) imports it back, and ``core`` (what they share) imports none of them.

The graph is read from the source (``ast``), every ``import`` anywhere in a module counted,
also those inside functions: a deferred import is still a dependency.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from itertools import pairwise
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

CENTRAL = Path(__file__).resolve().parents[2] / "app" / "central"
PREFIX = "app.central."

# Top-level modules under the features: they may import each other and ``core`` never
# imports anything else from central.
BASE_MODULES = frozenset({"clock", "db", "errors", "logs", "ratelimit", "settings", "types"})


def packages() -> frozenset[str]:
    return frozenset(p.name for p in CENTRAL.iterdir() if (p / "__init__.py").is_file())


def imported_modules(source: str) -> Iterable[str]:
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            # ``from app.central import deps`` names a module too
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def central_target(module: str) -> str | None:
    """The package or top-level module of central that ``module`` is in; None: elsewhere (or
    a name such as ``app.central.__version__``)."""
    if not module.startswith(PREFIX):
        return None
    name = module.removeprefix(PREFIX).split(".")[0]
    exists = (CENTRAL / name / "__init__.py").is_file() or (CENTRAL / f"{name}.py").is_file()
    return name if exists else None


def package_imports() -> dict[str, set[str]]:
    """Package -> the other central packages and top-level modules its modules import."""
    graph: dict[str, set[str]] = {name: set() for name in packages()}
    for name in graph:
        for path in (CENTRAL / name).rglob("*.py"):
            for module in imported_modules(path.read_text()):
                target = central_target(module)
                if target is not None and target != name:
                    graph[name].add(target)
    return graph


def find_cycle(graph: Mapping[str, Iterable[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path that starts and ends at the same node; None: acyclic."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)) is not None:
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)) is not None:
            return found
    return None


def test_feature_packages_form_a_tree() -> None:
    graph = package_imports()
    features = {name: deps & graph.keys() for name, deps in graph.items()}
    assert find_cycle(features) is None, f"import cycle: {' -> '.join(find_cycle(features) or [])}"


def test_core_imports_no_feature_package() -> None:
    graph = package_imports()
    assert "core" in graph
    assert graph["core"] <= BASE_MODULES, graph["core"] - BASE_MODULES


def test_base_modules_import_nothing_above_them() -> None:
    for name in BASE_MODULES:
        imports = {
            central_target(m) for m in imported_modules((CENTRAL / f"{name}.py").read_text())
        } - {None, name}
        assert imports <= BASE_MODULES, (name, imports - BASE_MODULES)


def test_the_scan_sees_deferred_and_module_imports() -> None:
    source = (
        "from app.central import deps\n"
        "def f():\n"
        "    from app.central.lots.service import update_lot\n"
        "    import app.central.events.routes\n"
    )
    found = set(imported_modules(source))
    assert {"app.central.deps", "app.central.lots.service", "app.central.events.routes"} <= found


@given(
    st.dictionaries(
        st.sampled_from("abcdefg"), st.sets(st.sampled_from("abcdefg"), max_size=3), max_size=7
    )
)
def test_find_cycle_agrees_with_a_topological_sort(graph: dict[str, set[str]]) -> None:
    """The checker above is only as good as its cycle finder: it must report a cycle exactly
    when Kahn's algorithm cannot order the graph, and a reported cycle must be real."""
    edges = {n: {m for m in succ if m != n} for n, succ in graph.items()}
    nodes = set(edges) | {m for succ in edges.values() for m in succ}
    indegree = dict.fromkeys(nodes, 0)
    for succ in edges.values():
        for m in succ:
            indegree[m] += 1
    ready = [n for n in nodes if indegree[n] == 0]
    ordered = 0
    while ready:
        n = ready.pop()
        ordered += 1
        for m in edges.get(n, ()):
            indegree[m] -= 1
            if indegree[m] == 0:
                ready.append(m)
    cycle = find_cycle(edges)
    assert (cycle is None) == (ordered == len(nodes))
    if cycle is not None:
        assert cycle[0] == cycle[-1]
        assert all(b in edges.get(a, ()) for a, b in pairwise(cycle))


REPO = CENTRAL.parents[1]
# Top-level folder -> the folders of the repo it must not import: tests and benches share
# ``support/`` and never import each other; the product imports none of them.
FORBIDDEN = {
    "tests": {"bench"},
    "bench": {"tests"},
    "support": {"bench", "tests"},
    "app": {"bench", "support", "tests"},
    "tools": {"bench", "tests"},
}


def test_tests_and_benches_share_support_and_never_import_each_other() -> None:
    offences = []
    for folder, forbidden in FORBIDDEN.items():
        for path in (REPO / folder).rglob("*.py"):
            for module in imported_modules(path.read_text()):
                if module.split(".")[0] in forbidden:
                    offences.append(f"{path.relative_to(REPO)} imports {module}")
    assert offences == []
