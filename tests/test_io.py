"""Atomic outputs: a stage replaces only a folder it owns, never one it was merely given."""
from __future__ import annotations

import pytest

from vaebench import io
from vaebench.cli import main


def test_atomic_dir_replaces_its_own_previous_output(tmp_path):
    out = tmp_path / "models"
    out.mkdir()
    (out / "seed0.pt").write_text("old")
    (out / "seed1.pt").write_text("stale")
    with io.atomic_dir(out, ("seed*.pt", "config.json")) as tmp:
        (tmp / "seed0.pt").write_text("new")
    assert sorted(p.name for p in out.iterdir()) == ["seed0.pt"]
    assert (out / "seed0.pt").read_text() == "new"


@pytest.mark.parametrize("foreign", ["notes.txt", "subdir/", "seed0.pt/"])
def test_atomic_dir_refuses_a_folder_holding_other_files_before_any_work(tmp_path, foreign):
    out = tmp_path / "mine"
    (out / foreign.rstrip("/")).parent.mkdir(parents=True, exist_ok=True)
    if foreign.endswith("/"):       # a folder, even one named like an own file
        (out / foreign.rstrip("/")).mkdir()
    else:
        (out / foreign).write_text("keep me")
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    with pytest.raises(io.OutputError, match=str(out)):
        with io.atomic_dir(out, ("seed*.pt", "config.json")):
            pytest.fail("the body ran although the folder is refused")
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before
    assert [p.name for p in tmp_path.iterdir()] == ["mine"]   # no temporary folder left


def test_train_cli_refuses_an_out_folder_with_other_files_and_keeps_them(
        tiny_config, tiny_data, tmp_path, capsys):
    params = tmp_path / "params.yaml"        # written by tiny_config
    out = tmp_path / "home"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    code = main(["--params", str(params), "train", "mnist_ppca", "--data",
                 str(tiny_data / "mnist"), "--out", str(out), "--metrics",
                 str(tmp_path / "m.json"), "--plots", str(tmp_path / "plots")])
    err = capsys.readouterr().err
    assert code == 2 and str(out) in err and "thesis.tex" in err
    assert (out / "thesis.tex").read_text() == "years of work"
    assert not (tmp_path / "m.json").exists()           # refused before any work
