"""Tiny data and models for the variational-family tests (gradient estimators,
theta/phi schedules, per-datapoint SVI)."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from vaebench.data.base import PreparedData
from vaebench.models import build_model, validate_model_config

SHAPE = (1, 8, 8)


def prototype_data(n_train=64, n_test=16, seed=0) -> PreparedData:
    """Binary 8x8 images: four random prototypes with 5% of the pixels flipped."""
    g = torch.Generator().manual_seed(seed)
    protos = torch.bernoulli(torch.full((4, *SHAPE), 0.5), generator=g)
    x = protos[torch.randint(4, (n_train + n_test,), generator=g)]
    flip = torch.bernoulli(torch.full(x.shape, 0.05), generator=g)
    x = (x + flip).remainder(2).to(torch.uint8)
    meta = {"dataset": "mnist", "max_value": 1, "image_shape": list(SHAPE),
            "factor_names": ["label"], "factor_sizes": [10]}
    return PreparedData(name="tiny", meta=meta, x_train=x[:n_train], x_test=x[n_train:],
                        x_test_binary=x[n_train:], factors_train=torch.zeros(n_train, 1, dtype=torch.long),
                        factors_test=torch.zeros(n_test, 1, dtype=torch.long))


def tiny_model(family="vae", **options):
    cfg = validate_model_config("t", {"family": family, "dataset": "mnist", "backbone": "mlp",
                                      "latent_dim": 3, "hidden": [16, 16], **options})
    torch.manual_seed(0)
    return build_model(cfg, SHAPE)


@pytest.fixture(scope="session")
def tiny():
    """``tiny.shape`` (1, 8, 8); ``tiny.data(...)`` prototype images as PreparedData;
    ``tiny.model(family, **options)`` an MLP model (hidden 16-16, latent 3), seeded."""
    return SimpleNamespace(shape=SHAPE, data=prototype_data, model=tiny_model)
