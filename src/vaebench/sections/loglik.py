"""``loglik:`` -- the schema of the log-likelihood stage's section (vaebench.evaluate.loglik),
its checks, and which models it evaluates."""
from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from pydantic import (
    Field,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    field_validator,
    model_validator,
)

from vaebench.schema import ConfigError, Strict
from vaebench.sections import Applicability, Device, Section, capabilities, warn

if TYPE_CHECKING:
    from vaebench.config import Params


class LoglikConfig(Strict):
    """``loglik:`` -- log p(x) at several numbers of importance samples K (Burda et al. 2016).

    Memory is bounded by the two chunk sizes: one decoder call sees
    ``chunk_samples * chunk_points`` rows, and the codes of one K-chunk for the
    whole test subset (``chunk_samples * n_test * latent`` numbers) are held at once.
    ``datasets.<name>`` overrides any key for the models of one dataset (a conv
    decoder on 64x64 images costs ~100x the MLP's per sample on a CPU).
    """

    ks: Annotated[list[PositiveInt], Field(min_length=1)] = Field(
        description="numbers of importance samples K, strictly increasing")
    n_test: PositiveInt | None = None     # the first n_test test images (None: all)
    chunk_points: PositiveInt = 50        # test points per decoder call
    chunk_samples: PositiveInt = 50       # importance samples per decoder call
    active_threshold: PositiveFloat = 0.01  # a unit is active if Var_x E_q[z_u] exceeds it
    kl_dim_samples: PositiveInt = 256     # MC samples for KL per dimension without a closed form
    gap_n: NonNegativeInt = 50            # test points for the inference gaps (0: skip)
    gap_steps: PositiveInt = 100          # Adam steps of the per-datapoint q*
    gap_lr: PositiveFloat = 0.01
    gap_samples: PositiveInt = 8          # reparameterised samples per step
    gap_eval_samples: PositiveInt = 500   # samples for the final ELBOs of q and q*
    seed: NonNegativeInt = 0
    device: Device | None = None          # None: the top-level ``device``
    datasets: dict[str, dict[str, Any]] = {}  # dataset name -> overrides of the keys above

    def for_dataset(self, dataset: str) -> "LoglikConfig":
        """This section with the overrides of ``datasets.<dataset>`` applied."""
        over = self.datasets.get(dataset)
        if not over:
            return self
        return LoglikConfig.model_validate({**self.model_dump(exclude={"datasets"}), **over})

    @field_validator("ks")
    @classmethod
    def _increasing(cls, ks: list[int]) -> list[int]:
        if any(b <= a for a, b in zip(ks, ks[1:])):
            raise ValueError("must be strictly increasing positive integers, e.g. [1, 10, 100]")
        return ks

    @model_validator(mode="after")
    def _consistent(self):
        if self.n_test is not None and self.gap_n > self.n_test:
            raise ValueError(f"gap_n ({self.gap_n}) must not exceed n_test ({self.n_test})")
        for name, over in self.datasets.items():
            if "datasets" in over:
                raise ValueError(f"datasets.{name}: overrides cannot nest 'datasets'")
            try:
                self.for_dataset(name)
            except ValidationError as err:
                e = err.errors()[0]
                where = ".".join(["datasets", name, *map(str, e["loc"])])
                raise ValueError(f"{where}: {e['msg'].removeprefix('Value error, ')}") from None
        return self


def check(cfg: Params, overlay: dict[str, Any], profile: str) -> None:
    """``loglik.datasets`` overrides only datasets that exist."""
    for name in cfg.section("loglik").datasets:
        if name not in cfg.datasets:
            raise ConfigError(f"loglik.datasets.{name} (profile {profile}): no dataset {name!r}; "
                              f"known: {sorted(cfg.datasets)}")


# Above this many decoder evaluations per model and seed, ``check`` warns with the estimate.
COST_WARN_DECODER_ROWS = 10**9


def warn_cost(cfg: Params, profile: str) -> None:
    """Warn about an enormous log-likelihood estimate: K_max * n_test decoder rows per
    model and seed (one warning per dataset, naming its models)."""
    lcfg = cfg.section("loglik")
    by_dataset: dict[str, list[str]] = {}
    for name in cfg.evaluate.loglik:
        by_dataset.setdefault(cfg.models[name].dataset, []).append(name)
    for dataset, names in by_dataset.items():
        d = lcfg.for_dataset(dataset)
        n_test = d.n_test or getattr(cfg.datasets[dataset], "n_test", None) or 10_000
        rows = max(d.ks) * n_test
        if rows > COST_WARN_DECODER_ROWS:
            warn(f"loglik.ks (profile {profile}): K = {max(d.ks):,} on {n_test:,} {dataset} "
                 f"test images is ~{rows:.2g} decoder evaluations per model and seed "
                 f"(~{rows / 1e6 / 3600:,.0f} hours at 1e6 a second), for {len(names)} "
                 f"model(s): {', '.join(names)}")


APPLIES = Applicability(
    lambda cls: issubclass(cls, capabilities().Probabilistic),
    "is not probabilistic (it needs a decoder likelihood, a prior and a q(z|x) "
    "with a density to estimate log p(x))")

SECTION = Section("loglik", LoglikConfig, applies=APPLIES, check=check, warn=warn_cost)
