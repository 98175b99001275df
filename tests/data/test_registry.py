"""The dataset registry finds each dataset's params class through the module's ``CONFIG``
(a distinct class name per dataset, not three classes named ``Config``)."""
from __future__ import annotations

import pytest

from vaebench.data import DATASETS, dsprites, mnist, moving_sprites, validate_dataset_config
from vaebench.schema import ConfigError

CLASSES = {"mnist": mnist.MNISTConfig, "dsprites": dsprites.DSpritesConfig,
           "moving_sprites": moving_sprites.MovingSpritesConfig}


def test_every_registered_dataset_names_its_own_config_class():
    assert {name: module.CONFIG for name, module in DATASETS.items()} == CLASSES
    assert not any(hasattr(module, "Config") for module in DATASETS.values())


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_a_block_is_validated_against_its_datasets_class(name):
    cfg = validate_dataset_config(name, {"n_test": 7}, f"datasets.{name}")
    assert type(cfg) is CLASSES[name] and cfg.n_test == 7
    with pytest.raises(ConfigError, match=rf"datasets\.{name}\.n_tset"):
        validate_dataset_config(name, {"n_tset": 7}, f"datasets.{name}")
