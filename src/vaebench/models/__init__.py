"""Model registry: the ``family`` of a ``models.<name>`` block -> its class.

To add a variant: write one file with its config and class, add it here, and
add a block to params.yaml.
"""
from __future__ import annotations

from typing import Any

from vaebench.models.ae import AE
from vaebench.models.annealed_vae import AnnealedVAE
from vaebench.models.base import LossTerms, Model, ModelConfig
from vaebench.models.beta_tc_vae import BetaTCVAE
from vaebench.models.beta_vae import BetaVAE
from vaebench.models.dip_vae import DIPVAE
from vaebench.models.factor_vae import FactorVAE
from vaebench.models.info_vae import InfoVAE
from vaebench.models.iwae import IWAE
from vaebench.models.linear_vae import LinearVAE
from vaebench.models.ppca import PPCA
from vaebench.models.rae import RAE
from vaebench.models.svi_vae import SVIVAE
from vaebench.models.ciwae import CIWAE
from vaebench.models.miwae import MIWAE
from vaebench.models.piwae import PIWAE
from vaebench.models.cae import CAE
from vaebench.models.dae import DAE
from vaebench.models.ksparse_ae import KSparseAE
from vaebench.models.sparse_ae import SparseAE
from vaebench.models.tdvae import TDVAE
from vaebench.models.vae import VAE
from vaebench.models.vqvae import VQVAE
from vaebench.models.vqvae2 import VQVAE2
from vaebench.models.wae import WAE
from vaebench.schema import ConfigError, validate

MODELS: dict[str, type[Model]] = {
    "ae": AE,
    "dae": DAE,
    "sparse_ae": SparseAE,
    "ksparse_ae": KSparseAE,
    "cae": CAE,
    "wae": WAE,
    "rae": RAE,
    "vae": VAE,
    "beta_vae": BetaVAE,
    "beta_tc_vae": BetaTCVAE,
    "dip_vae": DIPVAE,
    "factor_vae": FactorVAE,
    "annealed_vae": AnnealedVAE,
    "info_vae": InfoVAE,
    "svi_vae": SVIVAE,
    "iwae": IWAE,
    "miwae": MIWAE,
    "ciwae": CIWAE,
    "piwae": PIWAE,
    "linear_vae": LinearVAE,
    "ppca": PPCA,
    "vqvae": VQVAE,
    "vqvae2": VQVAE2,
    "tdvae": TDVAE,
}


def validate_model_config(name: str, block: Any) -> ModelConfig:
    """Validate ``models.<name>`` against its family's config (errors name the key)."""
    if not isinstance(block, dict):
        raise ConfigError(f"models.{name}: expected a mapping, got {type(block).__name__}")
    family = block.get("family")
    if family not in MODELS:
        raise ConfigError(f"models.{name}.family: unknown family {family!r}; "
                          f"valid: {', '.join(sorted(MODELS))}")
    return validate(MODELS[family].Config, block, f"models.{name}")


def build_model(cfg: ModelConfig, image_shape: tuple[int, ...]) -> Model:
    return MODELS[cfg.family](cfg, image_shape)


__all__ = ["MODELS", "LossTerms", "Model", "ModelConfig", "build_model", "validate_model_config"]
