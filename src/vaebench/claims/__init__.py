"""Claims from the literature, tested on this run's metrics files.

Every claim is one :class:`~vaebench.claims.core.Claim` entry in a group module
(:mod:`.likelihood`, :mod:`.representation`); :data:`CLAIMS` lists them all. The report
stage evaluates them into ``reports/claims.json`` (:func:`write_claims`) and shows the
verdict table at the top of the report. Rules: docs/claims.md and :mod:`.core`.
"""
from __future__ import annotations

from pathlib import Path

import yaml

from vaebench import io
from vaebench.claims import likelihood, representation
from vaebench.claims.core import (NOT_MEASURED, NOT_REPRODUCED, REPRODUCED, Claim, Context,
                                  evaluate)
from vaebench.config import ConfigError, Params, load_config

CLAIMS: list[Claim] = [*likelihood.CLAIMS, *representation.CLAIMS]
VERDICTS = (REPRODUCED, NOT_REPRODUCED, NOT_MEASURED)


def _unique(claims: list[Claim]) -> None:
    seen = set()
    for c in claims:
        if c.id in seen:
            raise ValueError(f"claim id {c.id!r} is declared twice")
        seen.add(c.id)


_unique(CLAIMS)


def alternatives(params: Path | None, current: str) -> dict[str, Params]:
    """Every other profile of ``params`` resolved (to say which one decides a claim);
    empty when the file is not given or a profile does not resolve."""
    if params is None or not Path(params).is_file():
        return {}
    raw = yaml.safe_load(Path(params).read_text()) or {}
    out = {}
    for name in (raw.get("profiles") or {}):
        if name != current:
            try:
                out[name] = load_config(params, name)
            except ConfigError:
                continue
    return out


def evaluate_claims(ctx: Context, claims: list[Claim] | None = None) -> dict:
    """claims.json's content: every claim's entry and the count of each verdict."""
    rows = [evaluate(c, ctx) for c in (CLAIMS if claims is None else claims)]
    return {"profile": ctx.cfg.profile, "seeds": list(ctx.cfg.seeds),
            "summary": {v.replace(" ", "_"): sum(r["verdict"] == v for r in rows)
                        for v in VERDICTS},
            "claims": rows}


def write_claims(path: Path, result: dict) -> None:
    io.write_json(Path(path), result)
