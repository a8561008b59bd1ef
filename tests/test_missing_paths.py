"""The missing-value path's two computations (quadratic features, residuals), its row
blocks and pattern groups: all give the same statistics."""

import numpy as np
import pytest

from gaussmix import ConvergenceWarning, GaussianMixture, _missing
from gaussmix.stats import MixtureParameters

FAMILIES = ("full", "tied", "diag", "spherical", "VEV", "EEI")


def _data(n=700, D=5, missing=0.25, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=3.0, size=(3, D))
    X = centres[rng.integers(3, size=n)] + rng.normal(size=(n, D)) @ rng.normal(size=(D, D))
    X[rng.random(X.shape) < missing] = np.nan
    return X[~np.isnan(X).all(axis=1)]


def _params(covariance_type, X, seed=1):
    gm = GaussianMixture(3, covariance_type=covariance_type, max_iter=2, random_state=seed)
    with pytest.warns(ConvergenceWarning):
        gm.fit(X)
    return gm._get_parameters()


def _assert_same(a, b, rtol):
    for x, y in zip(a, b, strict=True):
        np.testing.assert_allclose(x, y, rtol=rtol, atol=rtol * np.max(np.abs(y)))


@pytest.mark.parametrize("covariance_type", FAMILIES)
def test_quadratic_features_agree_with_the_residuals(covariance_type):
    X = _data()
    params = _params(covariance_type, X)
    w = np.random.default_rng(2).uniform(0.2, 3.0, size=len(X))
    fast = _missing.incomplete_statistics(X, params, w)
    nk, s1, s2, ll = _missing._exact_statistics(X, params, w, None)
    exact = (
        fast[0], nk, s1, _missing._reduce(params.family.statistic, s2), ll, float(w.sum())
    )
    _assert_same(fast, exact, 1e-10)


def test_selected_rows_equal_the_copied_rows():
    X = _data(seed=3)
    rows = np.flatnonzero(np.random.default_rng(0).random(len(X)) < 0.6)
    params = _params("full", X)
    w = np.random.default_rng(1).uniform(0.5, 2.0, size=len(rows))
    _assert_same(
        _missing.incomplete_statistics(X, params, w, rows=rows),
        _missing.incomplete_statistics(X[rows].copy(), params, w),
        1e-13,
    )


@pytest.mark.parametrize("block_size", [1, 3, 17])
def test_tiny_row_blocks_give_the_same_results(block_size):
    """A pattern's rows are processed block by block (bounded memory): same results."""
    X = _data(n=400, seed=4)
    params = _params("full", X)
    _assert_same(
        _missing.incomplete_statistics(X, params, block_size=block_size),
        _missing.incomplete_statistics(X, params),
        1e-12,
    )
    np.testing.assert_allclose(
        _missing.weighted_log_prob(X, params, block_size=block_size),
        _missing.weighted_log_prob(X, params), rtol=1e-13,
    )
    np.testing.assert_allclose(
        _missing.impute(X, params, block_size=block_size), _missing.impute(X, params),
        rtol=1e-13,
    )
    exact_small = _missing._exact_statistics(X, params, np.ones(len(X)), block_size)
    exact = _missing._exact_statistics(X, params, np.ones(len(X)), None)
    _assert_same(exact_small, exact, 1e-12)


def test_a_fit_with_tiny_blocks_is_the_same_fit():
    X = _data(n=400, seed=5)
    a = GaussianMixture(3, block_size=5, random_state=0, max_iter=20, tol=0)
    b = GaussianMixture(3, random_state=0, max_iter=20, tol=0)
    with pytest.warns(ConvergenceWarning):
        a.fit(X)
    with pytest.warns(ConvergenceWarning):
        b.fit(X)
    np.testing.assert_allclose(a.means_, b.means_, rtol=1e-9)
    np.testing.assert_allclose(a.covariances_, b.covariances_, rtol=1e-9)
    np.testing.assert_allclose(a.lower_bounds_, b.lower_bounds_, rtol=1e-11)


def test_pattern_groups_split_by_the_budget_give_the_same_results(monkeypatch):
    X = _data(n=500, D=6, missing=0.3, seed=6)
    params = _params("full", X)
    expected = _missing.incomplete_statistics(X, params)
    monkeypatch.setattr(_missing, "_FACTOR_BUDGET", 1)  # one pattern per group
    _assert_same(_missing.incomplete_statistics(X, params), expected, 1e-12)
    np.testing.assert_allclose(
        _missing.impute(X, params), _missing.impute(X, params), rtol=0
    )


def test_moments_that_would_cancel_are_redone_by_the_residuals(monkeypatch):
    """Narrow components far from the centre: the quadratic moments would lose their
    digits (eps times the squared whitened distance), so the exact path runs."""
    rng = np.random.default_rng(7)
    D = 3
    X = np.vstack([rng.normal(size=(200, D)) * 1e-3, rng.normal(size=(200, D)) * 1e-3 + 1e4])
    X[rng.random(X.shape) < 0.2] = np.nan
    X = X[~np.isnan(X).all(axis=1)]
    params = MixtureParameters.from_covariances(
        "full", np.array([0.5, 0.5]), np.array([[0.0] * D, [1e4] * D]),
        np.stack([np.eye(D) * 1e-6] * 2),
    )
    calls = []
    exact = _missing._exact_statistics

    def spy(*args):
        calls.append(1)
        return exact(*args)

    monkeypatch.setattr(_missing, "_exact_statistics", spy)
    _, nk, s1, s2, ll, _ = _missing.incomplete_statistics(X, params)
    assert calls, "the cancelling moments were not redone"
    # The variances about the means (about 1e-6) keep their digits: the quadratic
    # moments' rounding would be about eps * (5e3 / 1e-3)^2 = 5e-3 of them.
    variances = np.diagonal(s2, axis1=1, axis2=2) / nk[:, None] - (s1 / nk[:, None]) ** 2
    nk_e, s1_e, s2_e, ll_e = exact(X, params, np.ones(len(X)), None)
    expected = np.diagonal(s2_e, axis1=1, axis2=2) / nk_e[:, None] - (s1_e / nk_e[:, None]) ** 2
    np.testing.assert_allclose(variances, expected, rtol=1e-9)
    assert np.all(variances > 0.5e-6) and np.all(variances < 2e-6)
    assert ll == pytest.approx(ll_e, rel=1e-12)


def test_incomplete_rows_flags_nan_only():
    X = np.zeros((5, 3))
    X[1, 0] = np.inf
    X[1, 2] = -np.inf  # infinities of both signs: a NaN row sum, but no NaN
    assert _missing.incomplete_rows(X) is None
    X[3, 1] = np.nan
    X[4, :] = [np.nan, np.inf, -np.inf]
    np.testing.assert_array_equal(_missing.incomplete_rows(X), [0, 0, 0, 1, 1])
    assert _missing.incomplete_rows(X.astype(np.float32)).tolist() == [0, 0, 0, 1, 1]
    assert _missing.incomplete_rows(np.arange(6).reshape(2, 3)) is None


def test_an_all_missing_row_is_named():
    X = _data(n=50, seed=8)
    X[7] = np.nan
    params = _params("full", _data(n=100, seed=9))
    with pytest.raises(ValueError, match="no observed value"):
        _missing.incomplete_statistics(X, params)


def test_threads_over_the_row_blocks_give_the_same_statistics():
    from concurrent.futures import ThreadPoolExecutor

    X = _data(n=600, seed=10)
    params = _params("full", X)
    w = np.random.default_rng(3).uniform(0.5, 2.0, size=len(X))
    expected = _missing.incomplete_statistics(X, params, w, block_size=16)
    with ThreadPoolExecutor(2) as pool:
        got = _missing.incomplete_statistics(X, params, w, block_size=16, executor=pool)
    _assert_same(got, expected, 1e-12)


def test_the_speed_benchmark_runs():
    """benchmarks/bench_missing.py (the issue's speed figure) on a small shape."""
    import re
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_missing.py"
    out = subprocess.run(
        [sys.executable, str(script), "--n", "3000", "--repeats", "2", "--fit"],
        capture_output=True, text=True, timeout=300, check=True,
    ).stdout
    assert re.search(r"ratio\s+:\s+\d+\.\d\d", out)
    assert re.search(r"fit, 10 EM iterations: .* ratio \d+\.\d\d", out)
