"""Renamed parameters: a block that still uses an old name (``beta``, ``k``, ``lam``,
``n_samples``, ..., each of which once meant different things in different families or
sections) is a ConfigError that names the full key, the new name and what it means --
before any work."""
from __future__ import annotations

import copy
import re

import pytest

from vaebench.config import load_config
from vaebench.sections.samplequality import SampleQualityConfig
from vaebench.models import MODELS, validate_model_config
from vaebench.schema import ConfigError, Strict

# The renames of issue 18, per family: old key -> new key. Every VAE-family config
# (VariationalOptions) renamed its Monte Carlo draws, as samplequality's n_samples counts images.
MC = {"n_samples": "mc_samples"}
RENAMED = {
    "vae": MC,
    "beta_vae": {**MC, "beta": "kl_weight"},
    "beta_tc_vae": {**MC, "alpha": "mi_weight", "beta": "tc_weight", "gamma": "dim_kl_weight"},
    "factor_vae": {**MC, "gamma": "tc_weight"},
    "annealed_vae": {**MC, "gamma": "capacity_weight", "c_max": "capacity_max"},
    "dip_vae": MC,
    "info_vae": {**MC, "alpha": "kl_reduction", "lam": "mmd_weight"},
    "linear_vae": MC,
    "ppca": MC,
    "svi_vae": MC,
    "sparse_ae": {"beta": "sparsity_weight"},
    "ksparse_ae": {"k": "top_k"},
    "cae": {"lam": "contraction_weight"},
    "wae": {"lam": "mmd_weight"},
    "rae": {"beta": "code_weight", "lam": "decoder_weight"},
    "iwae": {**MC, "k": "iw_samples"},
    "miwae": {**MC, "k": "iw_samples", "m": "n_bounds"},
    "ciwae": {**MC, "k": "iw_samples"},
    "piwae": {**MC, "k": "iw_samples", "m": "n_bounds"},
    "vqvae": {"prior": "code_prior"},
    "vqvae2": {"prior": "code_prior"},
}
CASES = [(family, old, new) for family, table in RENAMED.items() for old, new in table.items()]


def test_the_registry_declares_exactly_these_renames():
    declared = {f: cls.Config.renamed for f, cls in MODELS.items() if cls.Config.renamed}
    assert declared == RENAMED


def _block_of(raw_params: dict, family: str) -> tuple[str, dict]:
    """The first model of ``family`` in the repository's params.yaml."""
    return next((name, copy.deepcopy(block)) for name, block in raw_params["models"].items()
                if block["family"] == family)


@pytest.mark.parametrize("family, old, new", CASES)
def test_an_old_name_is_an_error_naming_the_new_one_and_its_meaning(raw_params, family, old,
                                                                    new):
    name, block = _block_of(raw_params, family)
    validate_model_config(name, block)                    # valid as the repository has it
    block[old] = block.pop(new, 1)
    meaning = MODELS[family].Config.model_fields[new].description
    assert meaning
    with pytest.raises(ConfigError) as err:
        validate_model_config(name, block)
    assert str(err.value) == f"models.{name}.{old} was renamed to {new} ({meaning})"


def test_load_config_refuses_an_old_model_key_before_any_work(raw_params, write_params):
    raw_params["models"]["dsprites_beta_vae"]["beta"] = 8.0
    with pytest.raises(ConfigError, match=r"^models\.dsprites_beta_vae\.beta was renamed to "
                                          r"kl_weight \(the weight of the KL term; beta in "):
        load_config(write_params(raw_params))


@pytest.mark.parametrize("mutate, where", [
    (lambda r: r["samplequality"].update(k=5), r"samplequality \(profile \w+\)\.k"),
    (lambda r: r["samplequality"].update(datasets={"mnist": {"k": 5}}), r"datasets\.mnist\.k"),
])
def test_samplequality_k_is_now_kth_neighbour(raw_params, write_params, mutate, where):
    mutate(raw_params)
    meaning = SampleQualityConfig.model_fields["kth_neighbour"].description
    with pytest.raises(ConfigError, match=where + " was renamed to kth_neighbour " +
                       re.escape(f"({meaning})")):
        load_config(write_params(raw_params))


def test_a_rename_table_must_point_at_a_described_field():
    with pytest.raises(TypeError, match="'old' -> 'new'"):
        class Bad(Strict):                                  # noqa: F841 -- fails on creation
            new: int = 0                                   # no description
            renamed = {"old": "new"}
