"""The import graph of gicho: no cycles, and the layers of DESIGN.md ("who may import whom").

Every module under ``src/gicho`` is parsed with :mod:`ast` (nothing is imported). Every
``import`` / ``from ... import`` statement counts, at module level and inside functions (a
function-level import is still a dependency; it only runs later), and so does one under
``if TYPE_CHECKING:`` (a type-only import still ties the two modules together: DESIGN's rule
is that nothing points back up, for a reader as for the interpreter). Relative imports are resolved against the importing module's package.
``from package import name`` points at the submodule ``package.name`` when there is one, and
at the submodule that defines ``name`` when the package's ``__init__`` only re-exports it
(``from gicho.metrics import r2`` depends on ``gicho.metrics._regression``), so that a package
re-exporting its own private modules is not mistaken for a cycle.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
ROOT = "gicho"

NEURAL_LOW = ("gicho.nn", "gicho.models", "gicho.numerics", "gicho.weights")
APP = ("gicho.train", "gicho.tasks", "gicho.cli", "gicho.runs", "gicho.report")
NUMERICAL_CORE = (
    "gicho.linear", "gicho.decomposition", "gicho.information", "gicho.metrics",
    "gicho.numerics", "gicho.moments",
)  # fmt: skip
NETWORK = ("gicho.nn", "gicho.models", "gicho.train", "gicho.tasks")
LEAVES = ("gicho.rundir", "gicho._io", "gicho._dist")

# (importer prefixes, forbidden prefixes, the rule in words)
LAYER_RULES = [
    (NEURAL_LOW, APP, "models, nn, numerics and weights never import the application layers"),
    (("gicho.train",), ("gicho.models", "gicho.tasks"), "the trainer never imports models or tasks"),
    (NUMERICAL_CORE, NETWORK, "the numerical core imports no network blocks, trainer or tasks"),
    (("gicho.data",), ("gicho.models", "gicho.train", "gicho.tasks"),
     "data never imports models, the trainer or tasks"),
    (("gicho.plots",), ("gicho.models", "gicho.tasks"), "figures take arrays, never models or tasks"),
    (("gicho.tasks",), ("gicho.runs", "gicho.report", "gicho.cli", "gicho.studies"),
     "tasks never import the run's process set-up, the report, the studies or the CLI"),
    # run-directory names, file I/O and the rank from the environment sit below everything that
    # uses them (train, plots, tasks, runs): they import nothing of gicho but each other
    (LEAVES, (*NEURAL_LOW, *APP, *NUMERICAL_CORE, "gicho.data", "gicho.plots", "gicho.studies",
              "gicho.dask"), "rundir, _io and _dist are leaves"),
    # `gicho study` is an application of the library: nothing below the CLI depends on it
    ((*NEURAL_LOW, *APP[:-3], "gicho.runs", "gicho.report", "gicho.data", "gicho.plots", *LEAVES,
      *NUMERICAL_CORE), ("gicho.studies",), "only the CLI imports the studies"),
]

# (importer, imported) pairs that break a rule today, each named with its issue. Remove an entry
# when its import goes; never add one for new code.
KNOWN_EXCEPTIONS: dict[tuple[str, str], str] = {}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, tuple[Path, ast.Module]]:
    out = {}
    for path in sorted((SRC / ROOT).rglob("*.py")):
        out[_module_name(path)] = (path, ast.parse(path.read_text(encoding="utf-8"), str(path)))
    return out


def _import_nodes(tree: ast.AST) -> Iterable[ast.Import | ast.ImportFrom]:
    """Every import statement, at any depth (``if TYPE_CHECKING:`` blocks included)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def _absolute(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    package = module.split(".") if is_package else module.split(".")[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def _reexports(modules: Mapping[str, tuple[Path, ast.Module]]) -> dict[str, dict[str, str]]:
    """For each package ``__init__``: name -> the module it imports that name from."""
    out: dict[str, dict[str, str]] = {}
    for name, (path, tree) in modules.items():
        if path.name != "__init__.py":
            continue
        table = out.setdefault(name, {})
        for node in tree.body:  # module level only: what the package namespace holds
            if isinstance(node, ast.ImportFrom):
                source = _absolute(name, True, node)
                if source.startswith(ROOT):
                    for alias in node.names:
                        table[alias.asname or alias.name] = source
    return out


def build_graph(modules: Mapping[str, tuple[Path, ast.Module]]) -> dict[str, set[str]]:
    """``module -> {gicho modules it imports}`` (self-imports dropped)."""
    reexports = _reexports(modules)

    def resolve(target: str) -> str | None:
        # the longest prefix of `target` that is a gicho module
        parts = target.split(".")
        while parts and ".".join(parts) not in modules:
            parts.pop()
        return ".".join(parts) if parts else None

    def through_reexport(package: str, name: str) -> str:
        seen = set()
        while name in reexports.get(package, {}) and package not in seen:
            seen.add(package)
            source = reexports[package][name]
            if source not in modules:
                break
            package = source
        return package

    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, (path, tree) in modules.items():
        is_package = path.name == "__init__.py"
        for node in _import_nodes(tree):
            targets = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names if alias.name.split(".")[0] == ROOT]
            else:
                source = _absolute(name, is_package, node)
                if source.split(".")[0] != ROOT:
                    continue
                for alias in node.names:
                    sub = f"{source}.{alias.name}"
                    if sub in modules:
                        targets.append(sub)
                    elif source in modules and source != name:
                        targets.append(through_reexport(source, alias.name))
                    else:
                        targets.append(source)
            for target in targets:
                resolved = resolve(target)
                if resolved is not None and resolved != name:
                    graph[name].add(resolved)
    return graph


def find_cycle(graph: Mapping[str, Iterable[str]]) -> list[str] | None:
    """One cycle ``[a, b, ..., a]`` of a directed graph, or None (iterative DFS)."""
    WHITE, GREY, BLACK = 0, 1, 2
    colour = dict.fromkeys(graph, WHITE)
    for start in sorted(graph):
        if colour[start] != WHITE:
            continue
        path = [start]
        stack = [iter(sorted(graph[start]))]
        colour[start] = GREY
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                colour[path.pop()] = BLACK
                stack.pop()
                continue
            if colour.get(nxt, BLACK) == GREY:
                return [*path[path.index(nxt):], nxt]
            if colour.get(nxt) == WHITE:
                colour[nxt] = GREY
                path.append(nxt)
                stack.append(iter(sorted(graph[nxt])))
    return None


def layer_violations(graph: Mapping[str, Iterable[str]],
                     exceptions: Mapping[tuple[str, str], str] = KNOWN_EXCEPTIONS) -> list[str]:
    def under(module: str, prefixes: Iterable[str]) -> bool:
        return any(module == p or module.startswith(p + ".") for p in prefixes)

    bad = []
    for importer, targets in sorted(graph.items()):
        for target in sorted(targets):
            if (importer, target) in exceptions:
                continue
            for sources, forbidden, rule in LAYER_RULES:
                if under(importer, sources) and under(target, forbidden):
                    bad.append(f"{importer} imports {target}: {rule}")
    return bad


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return build_graph(_modules())


def test_the_graph_sees_the_package(graph):
    # a sanity floor, so that a broken parser cannot pass the tests below by seeing nothing
    assert {"gicho.linear._base", "gicho.metrics._streaming", "gicho.cli", "gicho.runs"} <= set(graph)
    assert "gicho.moments" in graph["gicho.linear._base"]
    assert "gicho.dask" in graph["gicho.linear._streaming"]  # function-level import counted
    assert "gicho.metrics._regression" in graph["gicho.tasks.ols"]  # resolved through __init__
    assert "gicho.rundir" in graph["gicho.report"]


def test_no_import_cycle(graph):
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_layers(graph):
    bad = layer_violations(graph)
    assert not bad, "layer rule broken:\n" + "\n".join(bad)


def test_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None
    assert find_cycle({"a": {"a"}}) == ["a", "a"]


def test_graph_sees_a_function_level_cycle(tmp_path, monkeypatch):
    """A cycle closed by an import inside a function, and one through a relative import."""
    pkg = tmp_path / ROOT
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from gicho.sub import thing\n")
    (pkg / "sub" / "__init__.py").write_text("from gicho.sub._impl import thing\n")
    (pkg / "sub" / "_impl.py").write_text("def thing():\n    from ..a import x\n    return x\n")
    (pkg / "b.py").write_text("from gicho import a\n")
    monkeypatch.setitem(globals(), "SRC", tmp_path)
    modules = _modules()
    g = build_graph(modules)
    assert g["gicho.a"] == {"gicho.sub._impl"}
    assert g["gicho.sub._impl"] == {"gicho.a"}
    assert g["gicho.b"] == {"gicho.a"}
    assert find_cycle(g) == ["gicho.a", "gicho.sub._impl", "gicho.a"]


def test_layer_rules_catch_an_upward_import():
    bad = layer_violations({"gicho.nn.attention": {"gicho.train.trainer"}, "gicho.linear._base": {"gicho.moments"}})
    assert bad == [
        "gicho.nn.attention imports gicho.train.trainer: models, nn, numerics and weights never "
        "import the application layers"
    ]


def test_the_added_layer_rules_catch_their_imports():
    bad = layer_violations({
        "gicho.data.text.mlm": {"gicho.models.bert", "gicho.train.trainer", "gicho.tasks.neural"},
        "gicho.plots.curves": {"gicho.models.vit", "gicho.tasks", "gicho.numerics"},
        "gicho.tasks.dates": {"gicho.runs", "gicho.rundir", "gicho.cli", "gicho.models.seq2seq"},
        "gicho.rundir": {"gicho._io", "gicho.train.state"},
        "gicho.runs": {"gicho.studies.pooling", "gicho.tasks"},
    })
    assert [line.split(":")[0] for line in bad] == [
        "gicho.data.text.mlm imports gicho.models.bert",
        "gicho.data.text.mlm imports gicho.tasks.neural",
        "gicho.data.text.mlm imports gicho.train.trainer",
        "gicho.plots.curves imports gicho.models.vit",
        "gicho.plots.curves imports gicho.tasks",
        "gicho.rundir imports gicho.train.state",
        "gicho.runs imports gicho.studies.pooling",
        "gicho.tasks.dates imports gicho.cli",
        "gicho.tasks.dates imports gicho.runs",
    ]
    # a named exception silences exactly its pair
    pair = ("gicho.runs", "gicho.studies.pooling")
    assert layer_violations({"gicho.runs": {"gicho.studies.pooling"}}, exceptions={pair: "why"}) == []
