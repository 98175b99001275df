"""No import cycles between the modules of ``vaebench`` (issue 18, item 3).

The graph is read statically with :mod:`ast` from every file under ``src/vaebench``, so a
cycle hidden behind a function-level import (which only breaks when the wrong module happens
to be imported first) fails here as surely as a module-level one.

Rules for the edges of module ``m`` (a package's ``__init__.py`` is the node of the package):

* Every ``import`` / ``from ... import`` statement counts, wherever it is (module level, in
  a function, in a class), except inside an ``if TYPE_CHECKING:`` block, which never runs.
  Relative imports are resolved against ``m``'s package.
* ``import a.b.c`` and ``from a.b.c import f`` name ``a.b.c``; ``from a.b import name`` names
  ``a.b.name`` when that is a submodule, else ``a.b`` (the ``__init__`` that defines ``name``).
  A named module is always an edge -- including ``m``'s own parent package: a submodule that
  takes a name from its parent's ``__init__`` while that ``__init__`` imports the submodule
  is a real cycle (the name may not exist yet when the submodule runs).
* Importing ``a.b.c`` also runs the ``__init__`` of ``a`` and ``a.b``: those packages are
  edges too, except the ones that contain ``m``. Python has already started those before
  ``m`` runs, so ``from vaebench.data.base import X`` inside ``vaebench.data.mnist`` does not
  tie ``mnist`` to ``data/__init__`` -- otherwise every ``__init__`` that re-exports its own
  submodules would show a false cycle. From outside the package (``train`` importing
  ``vaebench.data.base``) the ``__init__`` does run, so the edge is kept.
"""
from __future__ import annotations

import ast
from collections import deque
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "vaebench"

Edges = dict[str, dict[str, str]]   # module -> {imported module: "file:line" of the first import}


def module_files(src: Path, package: str) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` under ``src/package``."""
    out = {}
    for path in sorted((src / package).rglob("*.py")):
        parts = path.relative_to(src).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(tree: ast.AST):
    """Every Import / ImportFrom node that can run (skips ``if TYPE_CHECKING:`` bodies)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
            continue
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def _prefixes(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def imported_modules(name: str, path: Path, modules: dict[str, Path]) -> dict[str, int]:
    """The package modules that importing ``name`` (file ``path``) runs -> first line."""
    is_package = path.name == "__init__.py"
    own_package = name if is_package else name.rpartition(".")[0]
    started = set(_prefixes(name)) | {name}        # packages Python starts before m runs
    found: dict[str, int] = {}

    def add(target: str, line: int, explicit: bool) -> None:
        if target in modules and target != name and (explicit or target not in started):
            found.setdefault(target, line)

    for node in _import_nodes(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            named = [alias.name for alias in node.names]
        else:
            if node.level:
                base = own_package.split(".")
                base = base[:len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            named = [f"{source}.{a.name}" if f"{source}.{a.name}" in modules else source
                     for a in node.names]
        for target in named:
            add(target, node.lineno, explicit=True)
            for parent in _prefixes(target):
                add(parent, node.lineno, explicit=False)
    return found


def import_graph(src: Path, package: str) -> Edges:
    modules = module_files(src, package)
    return {name: {t: f"{path.relative_to(src)}:{line}"
                   for t, line in imported_modules(name, path, modules).items()}
            for name, path in modules.items()}


def _components(graph: Edges) -> list[list[str]]:
    """Strongly connected components (Tarjan), iteratively."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    comp = []
                    while True:
                        top = stack.pop()
                        on_stack.discard(top)
                        comp.append(top)
                        if top == node:
                            break
                    out.append(sorted(comp))
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph.get(child, ())))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return out


def find_cycles(graph: Edges) -> list[list[str]]:
    """A shortest cycle through each module that lies on one (first node repeated at the
    end, rotated to start at its smallest name, each set of modules once); empty when the
    graph has none."""
    cycles: dict[frozenset, list[str]] = {}
    for comp in _components(graph):
        members = set(comp)
        if len(comp) == 1 and comp[0] not in graph[comp[0]]:
            continue
        for start in comp:
            cycle = _shortest_cycle(graph, start, members)
            i = cycle.index(min(cycle))
            cycles.setdefault(frozenset(cycle), cycle[i:] + cycle[:i] + [cycle[i]])
    return sorted(cycles.values())


def _shortest_cycle(graph: Edges, start: str, members: set[str]) -> list[str]:
    """BFS inside one component from ``start`` back to it (the nodes, without the return)."""
    previous = {start: None}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        if start in graph[node]:
            path = [node]
            while previous[path[-1]] is not None:
                path.append(previous[path[-1]])
            return path[::-1]
        for child in sorted(graph[node]):
            if child in members and child not in previous:
                previous[child] = node
                queue.append(child)
    raise AssertionError(f"{start} is in a component but on no cycle")


def layers(graph: Edges, package: str) -> Edges:
    """The graph between the parts of ``package``: each subpackage (``vaebench.models``) and
    each top-level module (``vaebench.train``) is one node; imports inside a part drop out."""
    def part(name: str) -> str:
        return ".".join(name.split(".")[:2])
    out: Edges = {part(name): {} for name in graph}
    for name, targets in graph.items():
        for target, where in targets.items():
            if part(target) != part(name):
                out[part(name)].setdefault(part(target), where)
    return out


def describe(cycle: list[str], graph: Edges) -> str:
    hops = [f"{a} -> {b} ({graph[a][b]})" for a, b in zip(cycle, cycle[1:])]
    return "\n    ".join(hops)


def _report(cycles: list[list[str]], graph: Edges, what: str) -> str:
    return f"{len(cycles)} import cycle(s) between {what}:\n" + "\n".join(
        f"  {' -> '.join(c)}\n    {describe(c, graph)}" for c in cycles)


def test_package_has_no_import_cycles():
    graph = import_graph(ROOT / "src", PACKAGE)
    cycles = find_cycles(graph)
    assert not cycles, _report(cycles, graph, f"modules of {PACKAGE}")


def test_subpackages_do_not_import_each_other_in_a_circle():
    """One level up: ``models`` must not reach ``evaluate`` while ``evaluate`` uses
    ``models``, even through different files -- the parts of the package form layers."""
    graph = layers(import_graph(ROOT / "src", PACKAGE), PACKAGE)
    cycles = find_cycles(graph)
    assert not cycles, _report(cycles, graph, f"the parts of {PACKAGE}")


def test_graph_sees_the_real_imports():
    """The walk is not vacuous: known imports of the package are in the graph."""
    graph = import_graph(ROOT / "src", PACKAGE)
    assert "vaebench.models" in graph["vaebench.train"]            # from ... import MODELS
    assert "vaebench.models.base" in graph["vaebench.models.vae"]
    assert "vaebench.evaluate.disentanglement._common" in \
        graph["vaebench.evaluate.disentanglement.mig"]             # relative import
    assert "vaebench.data" in graph["vaebench.cli"]                # function-level import


# -- the rules, on small packages written to tmp_path ------------------------------------

def _package(tmp_path: Path, files: dict[str, str]) -> Edges:
    for rel, text in files.items():
        path = tmp_path / "pkg" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return import_graph(tmp_path, "pkg")


def test_cycle_hidden_in_a_function_is_found(tmp_path):
    graph = _package(tmp_path, {
        "__init__.py": "",
        "a.py": "from pkg.b import g\n",
        "b.py": "def g():\n    from pkg import a\n    return a\n",
    })
    assert find_cycles(graph) == [["pkg.a", "pkg.b", "pkg.a"]]


def test_reexporting_init_is_not_a_cycle(tmp_path):
    graph = _package(tmp_path, {
        "__init__.py": "",
        "sub/__init__.py": "from pkg.sub import one\nfrom .two import Two\n",
        "sub/one.py": "from pkg.sub.two import Two\nfrom . import two\n",
        "sub/two.py": "class Two: ...\n",
        "user.py": "from pkg.sub import one, Two\n",
    })
    assert find_cycles(graph) == []
    assert set(graph["pkg.user"]) == {"pkg.sub", "pkg.sub.one"}


def test_name_from_parent_init_that_imports_back_is_a_cycle(tmp_path):
    graph = _package(tmp_path, {
        "__init__.py": "",
        "sub/__init__.py": "from pkg.sub.one import f\nHELPER = 1\n",
        "sub/one.py": "from pkg.sub import HELPER\n",
    })
    assert find_cycles(graph) == [["pkg.sub", "pkg.sub.one", "pkg.sub"]]


def test_outside_import_runs_the_package_init(tmp_path):
    graph = _package(tmp_path, {
        "__init__.py": "",
        "reg/__init__.py": "from pkg.reg import item\n",
        "reg/item.py": "def f():\n    from pkg import user\n",
        "reg/other.py": "",
        "user.py": "import pkg.reg.other\n",
    })
    assert find_cycles(graph) == [["pkg.reg", "pkg.reg.item", "pkg.user", "pkg.reg"]]


def test_type_checking_imports_do_not_count(tmp_path):
    graph = _package(tmp_path, {
        "__init__.py": "",
        "a.py": "from pkg import b\n",
        "b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import a\n",
    })
    assert find_cycles(graph) == []
