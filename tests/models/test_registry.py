"""The registry is the package: family ``x`` is module ``vaebench.models.x`` and its
``MODEL``; families are listed from the files and imported only when looked up."""
from __future__ import annotations

import os
import subprocess
import sys
import typing
from pathlib import Path

import pytest

from vaebench.codedeps import family_names
from vaebench.models import MODELS, Model, validate_model_config
from vaebench.schema import ConfigError

SRC = Path(__file__).resolve().parents[2] / "src"


def test_every_family_module_names_its_class_and_its_family():
    assert list(MODELS) == family_names() and len(MODELS) == len(family_names())
    for family, cls in MODELS.items():
        assert issubclass(cls, Model)
        assert typing.get_args(cls.Config.model_fields["family"].annotation) == (family,)


def test_a_shared_module_is_no_family_and_the_registry_is_read_only():
    for name in ("base", "nets", "estimators", "__init__", "nope"):
        assert name not in MODELS
        with pytest.raises(KeyError):
            MODELS[name]
    with pytest.raises(TypeError):
        MODELS["vae"] = MODELS["ae"]      # a Mapping, not a dict


def test_looking_up_a_family_imports_only_its_module():
    script = ("import sys\nfrom vaebench.models import MODELS\nfams = list(MODELS)\n"
              "MODELS['beta_vae']\n"
              "print(sorted(f for f in fams if f'vaebench.models.{f}' in sys.modules))\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(SRC)}, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[0] == "['beta_vae', 'vae']"


def test_an_unknown_family_lists_the_valid_ones():
    with pytest.raises(ConfigError, match=r"models\.m\.family: unknown family 'nope'.*beta_vae"):
        validate_model_config("m", {"family": "nope"})
