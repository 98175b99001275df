"""The protocol parameters the disentangle stage exposes beyond sample sizes:
SAP's SVM C and DCI's number of boosting stages."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import GradientBoostingClassifier

from vaebench.evaluate.disentanglement import dci, sap

SIZES = (3, 4, 5)


def perfect(f):
    return f.astype(float)


@pytest.mark.parametrize("value", [0, -1.0, float("inf")])
def test_sap_rejects_a_c_that_is_not_positive_and_finite(value):
    with pytest.raises(ValueError, match="svm_c"):
        sap.compute(perfect, SIZES, np.random.default_rng(0), num_train=50, num_test=20,
                    svm_c=value)


def test_sap_svm_c_reaches_the_classifier():
    # C = 0.01 per sample on codes of order 1 under-fits a 5-class factor; a large C
    # separates more of its classes, so the best single-dimension accuracy rises.
    codes = np.repeat(np.arange(5.0), 40)[:, None]
    factors = np.repeat(np.arange(5), 40)[:, None]
    weak = sap.sap_score_matrix(codes, factors, codes, factors, svm_c=0.01)
    strong = sap.sap_score_matrix(codes, factors, codes, factors, svm_c=100.0)
    assert strong[0, 0] > weak[0, 0]


def test_dci_rejects_zero_estimators():
    with pytest.raises(ValueError, match="n_estimators"):
        dci.compute(perfect, SIZES, np.random.default_rng(0), num_train=50, num_test=20,
                    n_estimators=0)


def test_dci_n_estimators_is_the_number_of_boosting_stages(monkeypatch):
    stages = []
    fit = GradientBoostingClassifier.fit

    def spy(self, *args, **kwargs):
        out = fit(self, *args, **kwargs)
        stages.append(self.n_estimators_)
        return out

    monkeypatch.setattr(GradientBoostingClassifier, "fit", spy)
    dci.compute(perfect, SIZES, np.random.default_rng(0), num_train=60, num_test=20,
                n_estimators=7)
    assert stages == [7] * len(SIZES)
