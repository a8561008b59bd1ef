"""select_model on data with missing values (gaussmix._missing_select)."""

import itertools

import numpy as np
import pytest

from gaussmix import _missing_select
from gaussmix.selection import TABLE_KEYS, SelectionResult, select_model


def _blobs(n=450, missing=0.15, seed=0):
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0, 0.0], [6.0, 0.0, 3.0], [0.0, 6.0, -3.0]])
    labels = rng.integers(3, size=n)
    X = centres[labels] + rng.normal(size=(n, 3))
    Xm = X.copy()
    Xm[rng.random(X.shape) < missing] = np.nan
    keep = ~np.isnan(Xm).all(axis=1)
    return Xm[keep], labels[keep]


def test_selection_with_nan_finds_the_clusters_and_reports_observed_criteria():
    X, _ = _blobs()
    res = select_model(X, n_components=[1, 2, 3, 4], covariance_types=("spherical", "full"),
                       random_state=0)
    assert isinstance(res, SelectionResult)
    assert res.best_params_["n_components"] == 3
    assert [list(r) for r in res.table] == [list(TABLE_KEYS)] * 8
    n = X.shape[0]
    for row in res.table:
        model = res.estimators_[(row["covariance_type"], row["n_components"])]
        # log L is the observed-data log-likelihood of the returned model.
        assert row["log_likelihood"] == pytest.approx(model.score_samples(X).sum(), rel=1e-10)
        p = model._n_parameters()
        assert row["n_parameters"] == p
        assert row["bic"] == pytest.approx(-2 * row["log_likelihood"] + p * np.log(n))
        assert row["aic"] == pytest.approx(-2 * row["log_likelihood"] + 2 * p)
        entropy = -np.log(model.predict_proba(X).max(axis=1)).sum()
        assert row["icl"] == pytest.approx(row["bic"] + 2 * entropy)
    # More components never fit worse (the starts reach the maxima).
    full = [r["log_likelihood"] for r in res.table if r["covariance_type"] == "full"]
    assert all(b >= a - 1e-6 for a, b in itertools.pairwise(full))


def test_sample_weight_is_n_in_the_criteria():
    X, _ = _blobs(n=200, seed=1)
    w = np.random.default_rng(0).integers(1, 4, size=len(X)).astype(float)
    res = select_model(X, n_components=[2, 3], covariance_types="full", sample_weight=w,
                       random_state=0)
    for row in res.table:
        model = res.estimators_[("full", row["n_components"])]
        ll = model.score_samples(X) @ w
        assert row["log_likelihood"] == pytest.approx(ll, rel=1e-10)
        assert row["bic"] == pytest.approx(-2 * ll + row["n_parameters"] * np.log(w.sum()))


def test_starts_on_the_observed_values_recover_the_partition():
    X, labels = _blobs(n=600, missing=0.3, seed=2)
    observed = ~np.isnan(X)
    w = np.ones(len(X))
    parts = _missing_select._partitions(X, observed, w, [3], n_init=1, entropy=0)[3]
    assert parts
    for found in parts:
        # Every found cluster is mostly one true cluster (purity).
        purity = sum(np.bincount(labels[found == c]).max() for c in range(3)) / len(X)
        assert purity > 0.9
    # The hierarchical cuts of the complete rows are among the starts.
    assert len(parts) > 2


def test_progress_and_refusals():
    X, _ = _blobs(n=150, seed=3)
    calls = []
    select_model(X, n_components=[1, 2], covariance_types=("diag", "tied"), random_state=0,
                 progress=lambda *a: calls.append(a))
    assert [c[:2] for c in calls] == [(i, 4) for i in range(1, 5)]
    bad = X.copy()
    bad[[2, 5]] = np.nan
    with pytest.raises(ValueError, match=r"2 rows with no observed value.*first is row 2"):
        select_model(bad, n_components=[1, 2])
    with pytest.raises(TypeError, match="means_init"):
        select_model(X, n_components=[1], means_init=np.zeros((1, 3)))


def test_complete_data_does_not_take_this_path(monkeypatch):
    X, _ = _blobs(n=150, missing=0.0, seed=4)

    def refuse(*args, **kwargs):
        raise AssertionError("complete data went to the missing-value selection")

    monkeypatch.setattr(_missing_select, "select", refuse)
    res = select_model(X, n_components=[1, 2], covariance_types="full", random_state=0)
    assert res.best_params_["n_components"] == 2


def test_a_start_is_made_when_k_means_loses_clusters():
    """Many equal rows: partial-distance k-means may find fewer than K clusters; a random
    partition then starts the grid point, which is fitted (or marked), not left empty."""
    X = np.repeat(np.array([[0.0, 1.0], [np.nan, 2.0], [3.0, np.nan]]), 20, axis=0)
    observed = ~np.isnan(X)
    parts = _missing_select._partitions(X, observed, np.ones(len(X)), [5], 0, entropy=1)[5]
    assert parts and all(len(np.unique(p)) == 5 for p in parts)
    res = select_model(X, n_components=[2, 5], covariance_types="spherical", random_state=0)
    row = next(r for r in res.table if r["n_components"] == 5)
    assert row["error"] is None or "no start could be made" not in row["error"]


def test_every_one_of_the_fourteen_models_is_fitted_with_nan():
    """select_model's default grid (mclust's 14 models) on data with holes: every grid point
    is fitted. (At the merge of 14-model selection, the ten constrained models' starts broke
    their constraint and every K >= 2 of them was an error row.)"""
    X, _ = _blobs(n=300)
    res = select_model(X, n_components=[1, 2, 3], random_state=0)
    assert len(res.table) == 3 * 14
    assert [(r["covariance_type"], r["n_components"]) for r in res.table if r["error"]] == []
    assert res.best_params_["n_components"] == 3


def test_presets_and_argument_checks_are_select_models():
    """With NaN, covariance_types takes the same presets and the arguments get the same
    checks as on complete data (one function checks both; the NaN path's copy refused the
    presets)."""
    X, _ = _blobs(n=200)
    res = select_model(X, n_components=[1, 2], covariance_types="sklearn", random_state=0)
    assert [r["covariance_type"] for r in res.table] == [
        "spherical", "spherical", "diag", "diag", "tied", "tied", "full", "full"]
    for bad, kwargs in [(ValueError, {"n_components": [0]}), (ValueError, {"criterion": "x"}),
                        (ValueError, {"covariance_types": "XYZ"}),
                        (TypeError, {"weights_init": [1.0]})]:
        kwargs.setdefault("n_components", [1, 2])
        with pytest.raises(bad):
            select_model(X, **kwargs)
        with pytest.raises(bad):
            select_model(np.nan_to_num(X), **kwargs)
