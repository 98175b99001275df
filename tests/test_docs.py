"""The repository stands on its own: sources cite papers, never files outside it, and
every relative link of the markdown docs points to a file that exists.

The patterns are written so that this file does not match them itself.
"""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# What must cite papers (or the docs under docs/) and never outside files.
SCOPE = ("src", "tests", "benchmarks", "studies", "params.yaml", "dvc.yaml", "README.md", "docs")
TEXT_SUFFIXES = {".py", ".md", ".yaml", ".yml", ".json", ".txt", ".toml", ".cfg", ".csv"}

# References that lead out of the repository: the developers' design guide, the course
# notes the project was written from, and those notes' file names / numbers.
FORBIDDEN = {
    "design guide file": re.compile(r"\bDESIGN" r"\.md\b", re.IGNORECASE),
    "course notes": re.compile(r"\blectur[e]", re.IGNORECASE),
    "note file name": re.compile(r"\b\d{3}_[0-9a-f]{16}\.txt\b"),
    "note number": re.compile(r"\bseeds? 0\d\d\b", re.IGNORECASE),
}
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def tracked_files() -> list[Path]:
    """The files of SCOPE that git tracks or would track (every file outside a checkout)."""
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                              "--exclude-standard", "--", *SCOPE], cwd=ROOT, check=True,
                             capture_output=True, text=True).stdout
        files = [ROOT / f for f in out.split("\0") if f]
    except (OSError, subprocess.CalledProcessError):
        files = [p for s in SCOPE for p in ([ROOT / s] if (ROOT / s).is_file()
                                             else (ROOT / s).rglob("*")) if p.is_file()]
    return [f for f in files if f.suffix in TEXT_SUFFIXES and f.is_file()]


def outside_references(text: str) -> list[str]:
    """``line: what`` for every reference in ``text`` that leads out of the repository."""
    return [f"{i}: {what} ({m.group(0)!r})"
            for i, line in enumerate(text.splitlines(), 1)
            for what, pattern in FORBIDDEN.items()
            for m in [pattern.search(line)] if m]


def broken_links(md: Path) -> list[str]:
    """Relative links of a markdown file whose target does not exist."""
    bad = []
    for target in LINK.findall(md.read_text(encoding="utf-8")):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE) or target.startswith("#"):
            continue                     # a URL (http:, mailto:, ...) or an anchor on the page
        path = target.split("#", 1)[0]
        if not (md.parent / path).exists():
            bad.append(target)
    return bad


def test_patterns_catch_outside_references():
    # built at run time, so that this file holds none of them literally
    samples = ["see " + "DESIGN" + ".md, Models", "the " + "Lec" + "ture's smile vector",
               "(seed " + "001_" + "ac8decc5d88a2813" + ".txt, VAE)", "(" + "seeds" + " 002, 003)"]
    for s in samples:
        assert outside_references(s), s
    assert not outside_references("Burda et al. 2016, arXiv:1509.00519; seeds [0, 1, 2]")


def test_scope_is_not_empty():
    files = {f.relative_to(ROOT).as_posix() for f in tracked_files()}
    assert {"params.yaml", "dvc.yaml", "README.md", "src/vaebench/models/base.py"} <= files


def test_no_references_outside_the_repository():
    found = {f.relative_to(ROOT).as_posix(): refs for f in tracked_files()
             if (refs := outside_references(f.read_text(encoding="utf-8", errors="replace")))}
    assert not found, f"cite papers (author, year, title, arXiv id) instead: {found}"


@pytest.mark.parametrize("md", ["README.md", *sorted(p.relative_to(ROOT).as_posix()
                                                     for p in (ROOT / "docs").glob("*.md"))])
def test_relative_links_resolve(md):
    bad = broken_links(ROOT / md)
    assert not bad, f"{md}: links to missing files: {bad}"


def test_broken_link_is_detected(tmp_path):
    page = tmp_path / "page.md"
    (tmp_path / "there.md").write_text("x")
    page.write_text("[ok](there.md#part) [web](https://example.org) [top](#t) "
                    "[missing](nowhere.md) ![img](figs/a.png)")
    assert broken_links(page) == ["nowhere.md", "figs/a.png"]


def test_the_models_page_names_every_family_and_every_params_block():
    """docs/models.md: one row per registered family (with its file), every block of
    params.yaml's `models:` in its family's row, and in its last column the `evaluate:`
    lists that hold any of those blocks."""
    import inspect

    import yaml

    from vaebench.models import MODELS
    rows = {line.split("|")[1].strip(" `"): line
            for line in (ROOT / "docs" / "models.md").read_text().splitlines()
            if line.startswith("| `")}
    assert set(rows) == set(MODELS)
    for family, cls in MODELS.items():
        path = Path(inspect.getsourcefile(cls)).relative_to(ROOT).as_posix()
        assert f"(../{path})" in rows[family], family
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    evaluated = {family: set() for family in MODELS}
    for name, block in params["models"].items():
        assert f"`{name}`" in rows[block["family"]], name
        evaluated[block["family"]] |= {s for s, names in params["evaluate"].items() if name in names}
    for family, stages in evaluated.items():   # the last column: the lists holding its blocks
        cell = rows[family].split("|")[-2].strip()
        assert set(cell.split(", ")) - {"—"} == stages, (family, cell, sorted(stages))
