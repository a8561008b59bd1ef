"""Figures the README states, asserted at the precision it states them.

* float32 accuracy (README, "Performance"): on the data of ``benchmarks/float32_accuracy.py``
  (which prints the measured figures; all but its 100,000 x 32 data set, whose figures are
  far inside the bounds), gaussmix's float32 fits land within 1e-5 of the
  float64 fit of the same numbers from the same start for the covariances (relative to the
  largest entry) and within 2e-6 (relative) for the lower bound, for every covariance type.
* ``select_model`` fits float32 input in float64 (README, "As a library").
* ``lower_bounds_`` with the default reg_covar in degenerate fits of Old Faithful (README,
  "As a library"): the dips stay below 1e-8. (The general bound, for fits whose variances
  stay above reg_covar, is the hypothesis test of tests/test_stats.py.)
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from gaussmix import GaussianMixture, select_model
from gaussmix.datasets import load_faithful

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import float32_accuracy

COVARIANCES_RTOL = 1e-5
# 2e-6: 6e-7 was measured on one machine, 1.3e-6 (spherical, clusters near 1e4) on another
# whose OpenBLAS kernels sum in another order; about 11 float32 epsilons.
LOWER_BOUND_RTOL = 2e-6
# All of the script's data sets but its 100,000 x 32 one (20 s of the test budget on the
# shared 2-core machine; the script prints its figures, 1.5e-7 and 5.2e-8 today).
DATASETS = {name: (X32, k) for name, X32, k in float32_accuracy.datasets()
            if name != "bench full-32d"}


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
@pytest.mark.parametrize("name", DATASETS)
def test_float32_fit_matches_float64_as_the_readme_states(name, covariance_type):
    X32, k = DATASETS[name]
    start = float32_accuracy._start(X32, k, covariance_type)
    kw = dict(n_components=k, covariance_type=covariance_type, tol=0, max_iter=20,
              init_params="random_from_data")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: tol=0 by design
        reference = GaussianMixture(**kw, **start).fit(X32.astype(np.float64))
        fit = GaussianMixture(**kw, **{key: v.astype(np.float32) for key, v in start.items()}
                              ).fit(X32)
    assert fit.covariances_.dtype == fit.precisions_.dtype == np.float32
    covariances, _, _, lower_bound = float32_accuracy._errors(fit, reference)
    assert covariances <= COVARIANCES_RTOL, covariances
    # The final bound. (On the way, the two fits may part by up to about 1e-3 relative, on
    # the clusters near 1e4 with tied covariance, while EM moves fast, and meet again.)
    assert lower_bound <= LOWER_BOUND_RTOL, lower_bound


def test_select_model_fits_float32_input_in_float64():
    """As the README says: select_model works in float64 whatever the input's dtype, so
    float32 data give the same table as the same numbers in float64, and a float64 model."""
    X32 = load_faithful().astype(np.float32)
    kw = dict(n_components=[1, 2, 3], covariance_types=["tied", "diag"], random_state=0)
    from32 = select_model(X32, **kw)
    from64 = select_model(X32.astype(np.float64), **kw)
    assert [(r["covariance_type"], r["n_components"], r["log_likelihood"]) for r in from32.table] \
        == [(r["covariance_type"], r["n_components"], r["log_likelihood"]) for r in from64.table]
    best = from32.best_estimator_
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        assert getattr(best, name).dtype == np.float64, name
    np.testing.assert_array_equal(best.means_, from64.best_estimator_.means_)


@pytest.mark.parametrize("n_components, seed", [(9, 0), (7, 1)])
def test_old_faithful_degenerate_fits_dip_below_1e8(n_components, seed):
    """The worst dips found on Old Faithful with the default reg_covar (a search over 4
    covariance types, 1 to 9 components, 3 seeds, 3 initialisations, tol=0, 300
    iterations): diag fits in which a variance collapses onto reg_covar (repeated values),
    3.2e-9 and 2.9e-9 per sample. There the regularisation gap is unbounded and EM's
    guarantee says nothing; the README states the bound asserted here."""
    X = load_faithful()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning (tol=0), DegenerateFitWarning
        gm = GaussianMixture(n_components, covariance_type="diag", random_state=seed,
                             init_params="random_from_data", tol=0, max_iter=300).fit(X)
    assert gm.degenerate_ is True
    assert gm.covariances_.min() < 1.01e-6  # a variance at reg_covar
    steps = np.diff(gm.lower_bounds_)
    assert steps.min() < 0  # the dip is real ...
    assert steps.min() >= -1e-8  # ... and small
