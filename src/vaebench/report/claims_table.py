"""The report's claims section: claims.json as a verdict table (one row per claim) and a
table of every comparison behind it."""
from __future__ import annotations

import math

import pandas as pd

from vaebench.claims import NOT_MEASURED

# a failing claim stands out; nothing is softened
_BADGE = {"reproduced": "reproduced", "not reproduced": "NOT REPRODUCED",
          NOT_MEASURED: "not measured"}


def _num(x: float) -> str:
    return f"{x:.4g}" if abs(x) >= 1e-3 or x == 0 else f"{x:.2e}"


def statistic(row: dict) -> str:
    """``label: value ± h (method)``; ``value (no uncertainty)``; or a dash."""
    if row.get("value") is None:
        return "—"
    half = row.get("half_width")
    head = f"{row['shown']}: " if row.get("shown") else ""
    body = _num(row["value"]) + (f" ± {_num(half)}" if half is not None and math.isfinite(half)
                                 else " (no uncertainty)")
    return f"{head}{body} [{row.get('method', '')}]"


def verdict(row: dict) -> str:
    text = _BADGE.get(row["verdict"], row["verdict"])
    counts = row.get("counts") or {}
    total = sum(counts.values())
    if total > 1:
        text += " (" + ", ".join(f"{n} {v}" for v, n in counts.items() if n) + ")"
    return text + (f": {row['reason']}" if row.get("reason") and row["verdict"] != "reproduced"
                   else "")


def verdict_table(result: dict) -> pd.DataFrame:
    rows = [{"id": r["id"], "claim": r["statement"], "source": r["source"],
             "models": ", ".join(r.get("models") or []) or "—",
             "statistic ± 95% half-width": f"{r['statistic']} — {statistic(r)}",
             "verdict": verdict(r), "what we found": r.get("finding", "")}
            for r in result.get("claims", [])]
    return pd.DataFrame(rows, columns=["id", "claim", "source", "models",
                                       "statistic ± 95% half-width", "verdict",
                                       "what we found"])


def comparisons_table(result: dict) -> pd.DataFrame:
    rows = []
    for r in result.get("claims", []):
        for c in r.get("comparisons", []):
            half = c.get("half_width")
            rows.append({"claim": r["id"], "comparison": c["label"],
                         "value": _num(c["value"]) if c.get("value") is not None else "—",
                         "± 95%": _num(half) if half is not None else "—",
                         "seeds": len(c.get("seeds") or []) or "—",
                         "verdict": c["verdict"], "why": c.get("reason", "")})
    return pd.DataFrame(rows, columns=["claim", "comparison", "value", "± 95%", "seeds",
                                       "verdict", "why"])
