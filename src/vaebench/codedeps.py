"""Which source files each pipeline stage runs, read from the code (``vaebench code``).

A stage's closure starts from its subcommand's function in cli.py (plus cli.py's module
level and ``main``, without the other subcommands' functions) and follows every import
statement through the package, at module level or inside a function; imports under
``if TYPE_CHECKING:`` never run and are skipped. A module imported anywhere in a reached
file counts as reached: the closure may be larger than one run's imports, never smaller.

The model registry imports a family by a computed name (``vaebench.models.<family>``),
which the walk cannot follow; a per-model stage adds its model's family module instead,
and ``check`` (which validates every block) adds every family. A module is a family iff
it assigns ``MODEL`` at module level.

``write_fingerprints`` writes one JSON per stage kind (per model for the per-model
stages) listing each closure file with its md5: dvc.yaml's stages depend on these files,
so a stage reruns iff the code it runs changes. Standard library only (and io.py, which
is too): no torch here.
"""
from __future__ import annotations

import ast
import hashlib
import json
import pkgutil
from functools import cache
from pathlib import Path

from vaebench import io

PACKAGE = "vaebench"
SRC = Path(__file__).resolve().parents[1]

# dvc.yaml's stage kinds -> their subcommand; the per-model ones get one file per model.
STAGE_COMMANDS = {"check": "check", "prepare": "prepare", "featurenet": "featurenet",
                  "report": "report", "mlflow": "mlflow-sync", "train": "train",
                  "loglik": "loglik", "robustness": "robustness",
                  "disentangle": "disentangle", "samplequality": "samplequality"}
MODEL_STAGES = ("train", "loglik", "robustness", "disentangle", "samplequality")
ALL_FAMILIES_STAGES = ("check",)   # validates every models block, so loads every family


class CodeDepsError(Exception):
    """A params file or model family the fingerprints cannot be computed for."""


def defines_model(path: Path) -> bool:
    """Whether the module at ``path`` assigns ``MODEL`` at module level (read, not run)."""
    text = path.read_text()
    if "MODEL" not in text:      # most shared modules: no parse needed
        return False
    tree = ast.parse(text, str(path))
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else \
            [node.target] if isinstance(node, ast.AnnAssign) else []
        if any(isinstance(t, ast.Name) and t.id == "MODEL" for t in targets):
            return True
    return False


def family_names(src: Path = SRC) -> list[str]:
    """The modules of ``vaebench.models`` that define ``MODEL``, sorted."""
    folder = src / PACKAGE / "models"
    return sorted(m.name for m in pkgutil.iter_modules([str(folder)])
                  if not m.ispkg and defines_model(folder / f"{m.name}.py"))


def module_file(name: str, src: Path = SRC) -> Path | None:
    """The file of module ``name`` under ``src``, or None (not a vaebench module, or a
    name imported from a module rather than a submodule)."""
    parts = name.split(".")
    if parts[0] != PACKAGE:
        return None
    base = src.joinpath(*parts)
    for path in (base / "__init__.py", base.with_suffix(".py")):
        if path.is_file():
            return path
    return None


def module_name(path: Path, src: Path = SRC) -> str:
    rel = path.relative_to(src).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def _is_type_checking(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"))


def _running_nodes(tree: ast.AST):
    """Every node under ``tree`` except those under ``if TYPE_CHECKING:`` (never run)."""
    stack = list(ast.iter_child_nodes(tree))
    while stack:
        node = stack.pop()
        if _is_type_checking(node):
            stack.extend(node.orelse)
            continue
        yield node
        stack.extend(ast.iter_child_nodes(node))


def dynamic_import(node: ast.AST) -> ast.expr | None:
    """The module argument of ``importlib.import_module(...)`` / ``__import__(...)``."""
    if not isinstance(node, ast.Call) or not node.args:
        return None
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    return node.args[0] if name in ("import_module", "__import__") else None


def imported_names(tree: ast.AST, package: str) -> set[str]:
    """Dotted names of the modules (and candidate submodules) ``tree`` imports;
    ``package`` resolves relative imports. A dynamic import of a constant name counts;
    one of a computed name cannot be followed."""
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
        elif isinstance(arg := dynamic_import(node), ast.Constant):
            names.add(arg.value)
    return names


def with_parents(name: str) -> set[str]:
    """Importing a.b.c runs a/__init__.py and a/b/__init__.py first."""
    parts = name.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts) + 1)}


def closure(names: set[str], src: Path = SRC) -> set[Path]:
    """Files of every vaebench module reachable from importing ``names``."""
    seen: set[Path] = set()
    todo = [n for name in names for n in with_parents(name)]
    while todo:
        path = module_file(todo.pop(), src)
        if path is None or path in seen:
            continue
        seen.add(path)
        todo.extend(_file_imports(path, module_name(path, src), *_stamp(path)))
    return seen


@cache
def _file_imports(path: Path, name: str, mtime_ns: int, size: int) -> frozenset[str]:
    """The modules (with their parents) a file imports; cached per version of the file."""
    own_package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(), str(path))
    return frozenset(n for imp in imported_names(tree, own_package) for n in with_parents(imp))


def command_closure(func: str, others: set[str], src: Path = SRC) -> set[Path]:
    """Files the cli.py subcommand function ``func`` can import: cli.py itself, its module
    level and ``main``'s path, and ``func``, without the functions in ``others``."""
    cli = src / PACKAGE / "cli.py"
    tree = ast.parse(cli.read_text(), str(cli))
    tree.body = [n for n in tree.body
                 if not (isinstance(n, ast.FunctionDef) and n.name in others - {func})]
    # cli.py itself is added, not walked again (that would follow every subcommand)
    return closure(imported_names(tree, PACKAGE) | {PACKAGE}, src) | {cli}


def family_closure(family: str, src: Path = SRC) -> set[Path]:
    return closure({f"{PACKAGE}.models.{family}"}, src)


def fingerprint(files: set[Path], src: Path = SRC) -> dict[str, str]:
    """Repo-relative path (``src/vaebench/...``) -> md5 of its bytes, sorted."""
    root = src.parent
    return {p.relative_to(root).as_posix(): _md5(p, *_stamp(p)) for p in sorted(files)}


def _stamp(path: Path) -> tuple[int, int]:
    """The cache key of a file's version within one process (``vaebench code`` runs once
    per process, so its caches never outlive the files it reads)."""
    stat = path.stat()
    return stat.st_mtime_ns, stat.st_size


@cache
def _md5(path: Path, mtime_ns: int, size: int) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def fingerprints(dispatch: dict[str, str], families: dict[str, str],
                 src: Path = SRC) -> dict[str, dict]:
    """Relative output path -> content, for every stage kind (and model).

    ``dispatch``: each subcommand's function name in cli.py; ``families``: model -> family
    (params.yaml's ``models``)."""
    known = family_names(src)
    for model, family in families.items():
        if family not in known:
            raise CodeDepsError(f"models.{model}.family: unknown family {family!r} (no "
                                f"src/{PACKAGE}/models/{family}.py defining MODEL); "
                                f"valid: {', '.join(known)}")
    family_files = {f: family_closure(f, src) for f in known}   # each walked once
    funcs = set(dispatch.values())
    out = {}
    for stage, command in STAGE_COMMANDS.items():
        if command not in dispatch:
            raise CodeDepsError(f"stage {stage!r}: cli.py has no subcommand {command!r}")
        base = command_closure(dispatch[command], funcs, src)
        if stage in MODEL_STAGES:
            for model, family in families.items():
                out[f"{stage}/{model}.json"] = {
                    "stage": stage, "model": model, "family": family,
                    "files": fingerprint(base | family_files[family], src)}
            continue
        if stage in ALL_FAMILIES_STAGES:
            base = base.union(*family_files.values())
        out[f"{stage}.json"] = {"stage": stage, "files": fingerprint(base, src)}
    return out


def model_families(models: object, where: str) -> dict[str, str]:
    """params.yaml's ``models`` mapping -> {model: family}, with errors naming the key."""
    if not isinstance(models, dict) or not models:
        raise CodeDepsError(f"{where}: `models` must be a non-empty mapping of model blocks")
    out = {}
    for name, block in models.items():
        family = block.get("family") if isinstance(block, dict) else None
        if not isinstance(family, str):
            raise CodeDepsError(f"{where}: models.{name}.family must be a family name")
        out[str(name)] = family
    return out


def write_fingerprints(out_dir: Path, contents: dict[str, dict]) -> list[Path]:
    """Write each file atomically and delete the ``*.json`` under ``out_dir`` that are no
    longer produced (a model removed from params)."""
    written = []
    for rel, obj in sorted(contents.items()):
        io.write_text(out_dir / rel, json.dumps(obj, indent=1, sort_keys=True) + "\n")
        written.append(out_dir / rel)
    for stale in set(out_dir.rglob("*.json")) - set(written):
        stale.unlink()
    return written
