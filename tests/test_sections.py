"""Each stage owns its section of params.yaml (vaebench.sections.<stage>): its schema, its
checks and, for a per-model evaluation, which models it applies to; config.py only composes."""
from __future__ import annotations

import ast
import importlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from vaebench import config
from vaebench.config import ConfigError, check_applicable, load_config

ROOT = Path(__file__).resolve().parents[1]
CONFIG_PY = ROOT / "src" / "vaebench" / "config.py"
EVALUATIONS = sorted(config.EVALUATE_REQUIRES)


def test_every_section_comes_from_its_own_module():
    for section in config.ALL_SECTIONS:
        module = importlib.import_module(f"vaebench.sections.{section.name}")
        assert module.SECTION is section
        assert config.SECTIONS[section.name] is section.schema
        assert section.schema.__module__ == module.__name__


def test_every_model_list_stage_has_an_applicability_rule():
    """Each ``foreach: ${evaluate.<stage>}`` of dvc.yaml is a list under ``evaluate:``, and
    each such list belongs to a section that declares which models it applies to."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    listed = {m.group(1) for stage in stages.values()
              if (m := re.fullmatch(r"\$\{evaluate\.(\w+)\}", str(stage.get("foreach", ""))))}
    # EVALUATE_REQUIRES holds exactly the sections that declare ``applies``
    assert listed == set(EVALUATIONS) == set(config.EvaluateLists.model_fields)


@pytest.mark.parametrize("stage", EVALUATIONS)
def test_each_rule_refuses_a_family_naming_model_family_and_evaluation(stage):
    from vaebench.models import MODELS
    test, missing = importlib.import_module(f"vaebench.sections.{stage}").SECTION.applies
    refused = sorted(f for f, cls in MODELS.items() if not test(cls))
    accepted = sorted(f for f, cls in MODELS.items() if test(cls))
    assert refused and accepted, f"{stage}: a rule should split the families"
    check_applicable(stage, "any_name", SimpleNamespace(family=accepted[0]))   # no error
    with pytest.raises(ConfigError) as err:
        check_applicable(stage, "any_name", SimpleNamespace(family=refused[0]))
    assert str(err.value) == (f"evaluate.{stage}: model 'any_name' (family {refused[0]!r}) "
                              f"{missing}; families it applies to: {', '.join(accepted)}")


# A model of params.yaml each evaluation cannot take, for the whole-file check.
REFUSED = {"loglik": ("mnist_ae", "ae", "is not probabilistic"),
           "robustness": ("mnist_svi_vae", "svi_vae", "has no amortised encoder"),
           "disentangle": ("moving_sprites_tdvae", "tdvae", "does not encode single images"),
           "samplequality": ("moving_sprites_tdvae", "tdvae", "generates no single images")}


@pytest.mark.parametrize("stage", EVALUATIONS)
def test_check_refuses_a_listed_model_its_evaluation_cannot_take(stage, raw_params,
                                                                 write_params):
    assert set(REFUSED) == set(EVALUATIONS)
    name, family, missing = REFUSED[stage]
    raw_params["evaluate"][stage].append(name)
    with pytest.raises(ConfigError, match=rf"^evaluate\.{stage}: model '{name}' "
                                          rf"\(family '{family}'\) {missing}"):
        load_config(write_params(raw_params))


def test_config_py_defines_no_section_schema_and_names_no_evaluation():
    """config.py composes: its only schema is the whole file's (Params), and no string in
    it names an evaluation stage (their keys and messages live in their sections)."""
    tree = ast.parse(CONFIG_PY.read_text())
    classes = {node.name for node in ast.walk(tree) if isinstance(node, ast.ClassDef)}
    assert classes == {"Params", "_UniqueKeyLoader"}
    strings = [node.value for node in ast.walk(tree)
               if isinstance(node, ast.Constant) and isinstance(node.value, str)]
    for stage in EVALUATIONS:
        assert not [s for s in strings if stage in s], stage
    assert len(CONFIG_PY.read_text().splitlines()) < 300


def test_sections_and_config_import_without_torch():
    probe = ("import json, sys, vaebench.config\n"
             "import vaebench.sections.loglik, vaebench.sections.robustness\n"
             "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules}"
             " & {'torch', 'sklearn', 'mlflow', 'pandas'})))")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == []
