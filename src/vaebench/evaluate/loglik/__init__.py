"""Log-likelihood evaluation at several K (Burda, Grosse & Salakhutdinov 2016,
"Importance Weighted Autoencoders", arXiv:1509.00519; docs/protocols.md).

- ``estimate``: importance-sampling and naive estimates of log p(x) at several K.
- ``posterior``: KL to the prior (total and per dimension), active units.
- ``gaps``: the per-datapoint q* of the approximation / amortisation gaps.
- ``stage``: ``loglik@<model>``, the pipeline stage around them.
"""
from vaebench.evaluate.loglik.estimate import PointEstimates, importance_estimates
from vaebench.evaluate.loglik.stage import evaluate_model, loglik_stage

__all__ = ["PointEstimates", "evaluate_model", "importance_estimates", "loglik_stage"]
