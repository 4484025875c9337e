"""The package's import graph has no circle and its module names are unique (issue 19).

The graph is read from the source with ``ast``, not by importing: every ``import x`` and
``from x import y`` of a ``lightning_sig`` module, at module level or inside a function (a
deferred import is still a dependency: it only hides the circle until the call), with relative
imports resolved and ``from pkg import module`` counted as an edge to ``pkg.module``. Edges go
to the module named, not to the packages above it (importing ``a.b.c`` runs ``a/__init__``
and ``a/b/__init__`` too, but a package importing its own modules is not a circle a reader
has to untangle). Imports built at run time (``importlib.import_module(name)``, the lazy
public names of ``lightning_sig/__init__.py``) are not seen.
"""
from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path
from typing import Dict, List, Optional, Set, Tuple

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "lightning_sig"
Graph = Dict[str, Set[str]]

#: Import edges that close a circle (importer, imported): none since issue 19's parts landed
#: (a listed edge that is gone fails the test, so the list only shrinks).
ALLOWED_CYCLE_EDGES: Set[Tuple[str, str]] = set()
#: Module names (file stems) used twice: none (lightning/saturation.py became
#: lightning/saturation_monitor.py beside gradients/saturation.py).
ALLOWED_DUPLICATE_NAMES: Set[str] = set()


def module_files(root: Path, package: str) -> Dict[str, Tuple[Path, bool]]:
    """Dotted module name → (file, is a package ``__init__``) for every ``.py`` under ``root``
    (the folder of ``package``)."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = [package, *path.relative_to(root).with_suffix("").parts]
        is_package = parts[-1] == "__init__"
        found[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return found


def _imported(node: ast.AST, here: str, modules: Dict[str, Tuple[Path, bool]]) -> List[str]:
    """The modules of ``modules`` that the import statement ``node`` names; ``here`` is the
    package a relative import starts from."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name in modules]
    if not isinstance(node, ast.ImportFrom):
        return []
    base = node.module or ""
    if node.level:
        parent = here.split(".")[:len(here.split(".")) - (node.level - 1)]
        base = ".".join(parent + ([node.module] if node.module else []))
    return [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
            for a in node.names if f"{base}.{a.name}" in modules or base in modules]


def import_graph(root: Path, package: str = PACKAGE) -> Graph:
    """Module → the package's modules it imports (module or function level), from ``ast``."""
    modules = module_files(root, package)
    graph: Graph = {name: set() for name in modules}
    for name, (path, is_package) in modules.items():
        here = name if is_package else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            graph[name].update(m for m in _imported(node, here, modules) if m != name)
    return graph


def find_cycle(graph: Graph) -> Optional[List[str]]:
    """One import circle of ``graph`` as ``[a, b, ..., a]``, or None (depth-first search)."""
    state: Dict[str, int] = {}  # 1: on the current path, 2: finished
    path: List[str] = []

    def visit(node: str) -> Optional[List[str]]:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = 2
        path.pop()
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def without(graph: Graph, edges: Set[Tuple[str, str]]) -> Graph:
    """``graph`` less ``edges``."""
    return {a: {b for b in targets if (a, b) not in edges} for a, targets in graph.items()}


def duplicate_names(root: Path, package: str = PACKAGE) -> Dict[str, List[str]]:
    """File stem → the modules of that name, for stems used more than once (``__init__`` and
    ``__main__`` excluded)."""
    stems = Counter(m.rsplit(".", 1)[-1] for m, (_, pkg) in module_files(root, package).items()
                    if not pkg)
    return {stem: sorted(m for m in module_files(root, package) if m.rsplit(".", 1)[-1] == stem)
            for stem, n in stems.items() if n > 1 and stem != "__main__"}


# --- the package -------------------------------------------------------------------------


def test_the_package_has_no_import_circle_but_the_listed_ones():
    graph = import_graph(ROOT / PACKAGE)
    assert "lightning_sig.experiments.sweep_plan" in graph["lightning_sig.experiments.sweep_cli"]
    cycle = find_cycle(without(graph, ALLOWED_CYCLE_EDGES))
    assert cycle is None, f"import circle: {' -> '.join(cycle)}"


def test_every_allowed_cycle_edge_still_exists_and_closes_a_circle():
    """An entry whose import is gone, or no longer part of a circle, must leave the list."""
    graph = import_graph(ROOT / PACKAGE)
    for edge in sorted(ALLOWED_CYCLE_EDGES):
        assert edge[1] in graph[edge[0]], f"{edge} is imported no more: delete it from the list"
        assert find_cycle(without(graph, ALLOWED_CYCLE_EDGES - {edge})) is not None, \
            f"{edge} closes no circle any more: delete it from ALLOWED_CYCLE_EDGES"


def test_the_sweep_flows_one_way():
    """parse → plan → launch → task → summarise: no sweep module reaches back to the CLI or a
    launcher, and the plan reaches no launcher."""
    graph = import_graph(ROOT / PACKAGE)
    exp = "lightning_sig.experiments."
    assert graph["lightning_sig.sweep"] == {exp + "sweep_cli"}

    def reach(start: str) -> Set[str]:
        seen, todo = set(), [start]
        while todo:
            for nxt in graph[todo.pop()] - seen:
                seen.add(nxt)
                todo.append(nxt)
        return seen

    launchers = {exp + "sweep_local", exp + "sweep_submitit"}
    assert launchers <= reach(exp + "sweep_cli")
    assert not (reach(exp + "sweep_plan") & (launchers | {exp + "sweep_cli", exp + "sweep_task"}))
    for module in (exp + "sweep_task", exp + "summary_sweep", *launchers):
        assert exp + "sweep_cli" not in reach(module), module
    assert not reach(exp + "sweep_local") & {exp + "sweep_submitit"}


def test_module_names_are_unique_but_the_listed_ones():
    duplicates = duplicate_names(ROOT / PACKAGE)
    assert set(duplicates) == ALLOWED_DUPLICATE_NAMES, duplicates
    graph = import_graph(ROOT / PACKAGE)
    assert "lightning_sig.gradients.saturation" in graph
    assert "lightning_sig.lightning.saturation_monitor" in graph
    assert "lightning_sig.lightning.saturation" not in graph


# --- the checks on a package made here ----------------------------------------------------


def _package(root: Path, files: Dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / "pkg" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "pkg"


def test_a_circle_through_relative_and_function_level_imports_is_found(tmp_path):
    """a → b (``from . import b``), b → sub.c (``from .sub.c import f`` inside a function),
    sub.c → a (``from ..a import x``): the circle is named in order."""
    root = _package(tmp_path, {
        "__init__.py": "", "a.py": "from . import b\nx = 1\n",
        "b.py": "def g():\n    from .sub.c import f\n    return f\n",
        "sub/__init__.py": "", "sub/c.py": "from ..a import x\n\ndef f():\n    return x\n",
        "d.py": "import pkg.a\nimport os\n"})
    graph = import_graph(root, "pkg")
    assert graph == {"pkg": set(), "pkg.a": {"pkg.b"}, "pkg.b": {"pkg.sub.c"}, "pkg.sub": set(),
                     "pkg.sub.c": {"pkg.a"}, "pkg.d": {"pkg.a"}}
    assert find_cycle(graph) == ["pkg.a", "pkg.b", "pkg.sub.c", "pkg.a"]
    assert find_cycle(without(graph, {("pkg.sub.c", "pkg.a")})) is None


def test_from_package_import_module_is_an_edge_to_the_module(tmp_path):
    """``from pkg.sub import c`` → pkg.sub.c; ``from pkg.sub import name`` → pkg.sub (its
    ``__init__``); absolute ``import pkg.sub.c`` → pkg.sub.c; other packages are ignored."""
    root = _package(tmp_path, {
        "__init__.py": "", "sub/__init__.py": "VALUE = 2\n", "sub/c.py": "",
        "x.py": "from pkg.sub import c\nfrom pkg.sub import VALUE\nimport json\n",
        "y.py": "import pkg.sub.c as c\n"})
    graph = import_graph(root, "pkg")
    assert graph["pkg.x"] == {"pkg.sub.c", "pkg.sub"} and graph["pkg.y"] == {"pkg.sub.c"}
    assert find_cycle(graph) is None


def test_a_module_importing_itself_is_not_a_circle_but_a_two_module_one_is(tmp_path):
    root = _package(tmp_path, {"__init__.py": "", "a.py": "import pkg.a\nimport pkg.b\n",
                               "b.py": "def f():\n    import pkg.a\n"})
    assert find_cycle(import_graph(root, "pkg")) == ["pkg.a", "pkg.b", "pkg.a"]


def test_duplicate_module_names_are_found(tmp_path):
    root = _package(tmp_path, {"__init__.py": "", "plot.py": "", "one/__init__.py": "",
                               "one/plot.py": "", "two/__init__.py": "", "two/other.py": ""})
    assert duplicate_names(root, "pkg") == {"plot": ["pkg.one.plot", "pkg.plot"]}


@pytest.mark.parametrize("level, module, expected", [
    (1, "b", "pkg.sub.b"), (2, "b", "pkg.b"), (2, None, "pkg.b")])
def test_relative_imports_resolve_from_the_importing_package(tmp_path, level, module, expected):
    root = _package(tmp_path, {"__init__.py": "", "b.py": "", "sub/__init__.py": "",
                               "sub/b.py": "", "sub/a.py": ""})
    stmt = f"from {'.' * level}{module or ''} import {'f' if module else 'b'}\n"
    (root / "sub" / "a.py").write_text(stmt)
    assert import_graph(root, "pkg")["pkg.sub.a"] == {expected}
