"""Each stage's code deps in dvc.yaml follow the code: they cover every vaebench module
the stage's command can import, and name no code the stage never imports.

The closure is computed from the source, never listed by hand: the command's
subcommand (parsed by ``cli.build_parser``) picks its dispatch function in cli.py;
every import statement reached from there, at module level or inside a function,
is followed through the package (imports under ``if TYPE_CHECKING:`` never run and
are skipped). A module imported anywhere in a reached file counts as reached: the
closure may be larger than one run's imports, never smaller.
"""
from __future__ import annotations

import argparse
import ast
import shlex
from functools import cache
from pathlib import Path, PurePosixPath

import pytest
import yaml

from vaebench import cli

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
PACKAGE = "vaebench"
CLI = SRC / PACKAGE / "cli.py"


def module_file(name: str) -> Path | None:
    """The file of module ``name`` under src/, or None (not a vaebench module, or a
    name imported from a module rather than a submodule)."""
    parts = name.split(".")
    if parts[0] != PACKAGE:
        return None
    base = SRC.joinpath(*parts)
    for path in (base / "__init__.py", base.with_suffix(".py")):
        if path.is_file():
            return path
    return None


def module_name(path: Path) -> str:
    rel = path.relative_to(SRC).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def _is_type_checking(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"))


def _running_nodes(node: ast.AST):
    """Every node under ``node`` except those under ``if TYPE_CHECKING:`` (never run)."""
    for child in ast.iter_child_nodes(node):
        if _is_type_checking(child):
            for stmt in child.orelse:
                yield stmt
                yield from _running_nodes(stmt)
            continue
        yield child
        yield from _running_nodes(child)


def _dynamic_import(node: ast.AST) -> ast.expr | None:
    """The module argument of ``importlib.import_module(...)`` / ``__import__(...)``."""
    if not isinstance(node, ast.Call) or not node.args:
        return None
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    return node.args[0] if name in ("import_module", "__import__") else None


def imported_names(tree: ast.AST, package: str) -> set[str]:
    """Dotted names of the modules (and candidate submodules) ``tree`` imports;
    ``package`` resolves relative imports. A dynamic import of a constant name counts;
    one of a computed name cannot be followed (see the test below that forbids it)."""
    names = set()
    for node in _running_nodes(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            else:
                base = node.module
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
        elif isinstance(arg := _dynamic_import(node), ast.Constant):
            names.add(arg.value)
    return names


def _with_parents(name: str) -> set[str]:
    """Importing a.b.c runs a/__init__.py and a/b/__init__.py first."""
    parts = name.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts) + 1)}


def closure(start: ast.AST, package: str) -> set[Path]:
    """Files of every vaebench module reachable from the imports in ``start``."""
    seen: set[Path] = set()
    todo = [n for name in imported_names(start, package) for n in _with_parents(name)]
    while todo:
        path = module_file(todo.pop())
        if path is None or path in seen:
            continue
        seen.add(path)
        name = module_name(path)
        own_package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        tree = ast.parse(path.read_text(), str(path))
        todo.extend(n for imp in imported_names(tree, own_package) for n in _with_parents(imp))
    return seen


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = cli.build_parser()
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return action.choices


def dispatch_function(cmd: str) -> str:
    """The cli.py function a stage's ``vaebench <subcommand> ...`` command runs."""
    argv = shlex.split(cmd)
    assert argv[0] == "vaebench", f"stage command does not run vaebench: {cmd!r}"
    return cli.build_parser().parse_args(argv[1:]).func.__name__


@cache
def stage_closure(func: str) -> frozenset[str]:
    """Paths (relative to the repo root) of the modules subcommand function ``func``
    can import: cli.py itself, its module level and ``main``'s path, and ``func``,
    without the other subcommands' functions."""
    others = {p.get_default("func").__name__ for p in _subcommands().values()} - {func}
    tree = ast.parse(CLI.read_text(), str(CLI))
    tree.body = [n for n in tree.body
                 if not (isinstance(n, ast.FunctionDef) and n.name in others)]
    files = closure(tree, PACKAGE) | {CLI}
    for name in _with_parents(module_name(CLI)):
        files.add(module_file(name))
    return frozenset(p.relative_to(ROOT).as_posix() for p in files)


def _stages() -> list[tuple[str, str, list[str]]]:
    """(stage, command, code deps under src/) of every stage in dvc.yaml."""
    pipeline = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    out = []
    for name, stage in pipeline["stages"].items():
        body = stage.get("do", stage)
        deps = [d if isinstance(d, str) else next(iter(d)) for d in body.get("deps", [])]
        out.append((name, " ".join(body["cmd"].split()),
                    [d.rstrip("/") for d in deps if d.startswith("src/")]))
    return out


def _covers(dep: str, file: str) -> bool:
    return file == dep or PurePosixPath(dep) in PurePosixPath(file).parents


def derived_deps(files: frozenset[str], folder: Path = SRC / PACKAGE) -> list[str]:
    """The shortest dep list naming exactly the modules ``files``: a folder where every
    module under it is used, else the used files in it and the same for its subfolders."""
    rel = folder.relative_to(ROOT).as_posix()
    inside = {p.relative_to(ROOT).as_posix() for p in folder.rglob("*.py")}
    if inside and inside <= files:
        return [rel]
    out = sorted(p.relative_to(ROOT).as_posix() for p in folder.glob("*.py")
                 if p.relative_to(ROOT).as_posix() in files)
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        out += derived_deps(files, sub)
    return out


def _fix(stage: str, used: frozenset[str]) -> str:
    return (f"\nthe deps that follow the code, for dvc.yaml's {stage!r}:\n"
            + "".join(f"      - {d}\n" for d in derived_deps(used)))


STAGES = _stages()


@pytest.mark.parametrize("stage,cmd,deps", STAGES, ids=[s[0] for s in STAGES])
def test_code_deps_cover_the_import_closure(stage, cmd, deps):
    used = stage_closure(dispatch_function(cmd))
    missing = sorted(f for f in used if not any(_covers(d, f) for d in deps))
    assert not missing, (f"dvc.yaml stage {stage!r} ({cmd.split()[1]}) imports code that is "
                         f"not among its deps:\n  " + "\n  ".join(missing) + _fix(stage, used))


@pytest.mark.parametrize("stage,cmd,deps", STAGES, ids=[s[0] for s in STAGES])
def test_no_code_dep_names_a_module_the_stage_never_imports(stage, cmd, deps):
    """Such a dep reruns the stage for nothing (e.g. a new model file that it never loads)."""
    used = stage_closure(dispatch_function(cmd))
    named = {p.relative_to(ROOT).as_posix() for d in deps
             for p in ([ROOT / d] if d.endswith(".py") else (ROOT / d).rglob("*.py"))}
    unused = sorted(named - used)
    assert not unused, (f"dvc.yaml stage {stage!r}: deps name modules the command never "
                        f"imports:\n  " + "\n  ".join(unused) + _fix(stage, used))


def test_the_closure_follows_function_level_and_relative_imports():
    """The walker itself, on the real code: train's closure holds the module that cli.py's
    ``_train`` imports inside the function and the parent packages' __init__ files, but
    not another subcommand's module; disentangle's reaches a file that only relative
    imports name; imports under ``if TYPE_CHECKING:`` never run and are not followed."""
    train = stage_closure("_train")
    assert {"src/vaebench/train.py", "src/vaebench/__init__.py", "src/vaebench/cli.py",
            "src/vaebench/models/__init__.py"} <= train
    assert "src/vaebench/report/stage.py" not in train
    assert "src/vaebench/evaluate/disentanglement/_common.py" in stage_closure("_disentangle")
    tree = ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                     "    from vaebench import train\nelse:\n    from . import io\n")
    names = imported_names(tree, "vaebench")
    assert "vaebench.io" in names and "vaebench.train" not in names
    tree = ast.parse("import importlib\ndef f():\n    importlib.import_module('vaebench.runs')\n")
    assert "vaebench.runs" in imported_names(tree, "vaebench")


def test_every_import_in_the_package_names_its_module():
    """A module name computed at run time would hide code from the closure above."""
    hidden = [f"{path.relative_to(ROOT)}:{node.lineno}"
              for path in sorted((SRC / PACKAGE).rglob("*.py"))
              for node in ast.walk(ast.parse(path.read_text()))
              if (arg := _dynamic_import(node)) is not None and not isinstance(arg, ast.Constant)]
    assert not hidden, f"imports of computed module names (the deps test cannot follow): {hidden}"


def test_derived_deps_name_a_folder_only_when_every_module_in_it_is_used():
    models = {p.relative_to(ROOT).as_posix() for p in (SRC / PACKAGE / "models").rglob("*.py")}
    one = sorted(models)[0]
    assert derived_deps(frozenset(models)) == ["src/vaebench/models"]
    assert derived_deps(frozenset(models - {one})) == sorted(models - {one})
