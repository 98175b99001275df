"""Summaries over seeds: a leaf module (nothing from vaebench), used by the train stage
and by every evaluation stage (through :func:`vaebench.runs.stage_metrics`)."""
from __future__ import annotations

import math


# Two-sided 95% Student-t quantiles for n - 1 degrees of freedom (n = 2..10).
_T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}


def summarise(per_seed: dict[int, dict]) -> dict:
    """Mean over seeds of every numeric leaf (nested dicts kept).

    With several seeds each leaf ``k`` also gets ``k_ci95``: the half-width of the
    95% Student-t interval of the mean over seeds.
    """
    first = next(iter(per_seed.values()))
    out: dict = {}
    n = len(per_seed)
    for k, v in first.items():
        if isinstance(v, dict):
            out[k] = summarise({s: r[k] for s, r in per_seed.items() if isinstance(r.get(k), dict)})
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            values = [float(r[k]) for r in per_seed.values() if k in r]
            mean = sum(values) / len(values)
            out[k] = mean
            if n > 1 and len(values) > 1:
                var = sum((x - mean) ** 2 for x in values) / (len(values) - 1)
                t = _T95.get(len(values) - 1, 1.96)
                out[f"{k}_ci95"] = t * math.sqrt(var / len(values))
    return out
