"""RegularizationWarning: a feature whose variance is below 10 x reg_covar (reviewer r1:
Old Faithful x 1e-4 selected EEI with one component, its sd at the reg_covar floor, with no
word of why; a constant column fitted with sd 0.001 and a positive log-likelihood)."""

import warnings

import numpy as np
import pytest

from gaussmix import GaussianMixture, RegularizationWarning, select_model
from gaussmix._validation import feature_variances
from gaussmix.datasets import load_faithful

X = np.asarray(load_faithful(), dtype=np.float64)


def test_tiny_units_are_named_with_their_variances():
    with pytest.warns(RegularizationWarning, match=r"features 0 \(1\.3e-08\), 1 \(1\.8e-06\)"
                                                   r" have variances below 10 x reg_covar"):
        GaussianMixture(2, random_state=0).fit(X * 1e-4)
    with pytest.warns(RegularizationWarning, match="lower reg_covar"):
        select_model(X * 1e-4, n_components=[1, 2], covariance_types="sklearn")
    with pytest.warns(RegularizationWarning):
        GaussianMixture(2, random_state=0).partial_fit(X * 1e-4)


def test_a_constant_column_is_named_constant():
    Y = np.c_[X, np.full(X.shape[0], 5.0)]
    with pytest.warns(RegularizationWarning, match="feature 2 is constant"):
        GaussianMixture(2, random_state=0).fit(Y)


def test_no_warning_on_ordinary_data_or_with_a_smaller_reg_covar():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        GaussianMixture(2, random_state=0).fit(X)
        GaussianMixture(2, random_state=0, reg_covar=1e-12).fit(X * 1e-4)
        GaussianMixture(2, random_state=0, reg_covar=0.0).fit(X * 1e-4)


def test_variances_are_weighted_nan_aware_and_offset_safe():
    rng = np.random.default_rng(0)
    Z = rng.normal(size=(1000, 3)) * [1.0, 1e-3, 5.0] + 1e12 * np.array([0, 1, 0])
    Z[::7, 0] = np.nan
    w = rng.uniform(0.5, 2.0, size=1000)
    got = feature_variances(Z, w, block_rows=97)
    for j in range(3):
        ok = ~np.isnan(Z[:, j])
        u = Z[ok, j] - Z[ok, j][0]  # exact: the values differ by little
        m = np.average(u, weights=w[ok])
        ref = np.average((u - m) ** 2, weights=w[ok])
        assert got[j] == pytest.approx(ref, rel=1e-9)


def test_a_missing_first_value_does_not_make_an_offset_column_constant():
    """Reviewer r2: with row 0 missing the reference was 0, so Old Faithful + 1e9 lost its
    spread to cancellation and was called constant."""
    Y = X + 1e9
    Y[0, 0] = np.nan
    var = feature_variances(Y)
    ok = ~np.isnan(Y[:, 0])
    assert var[0] == pytest.approx(np.var(X[ok, 0]), rel=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        GaussianMixture(2, random_state=0).fit(Y)


def test_selection_with_missing_values_warns_too():
    """select_model on data with NaN (exact EM on the observed values) says the same as
    without them, from the observed values, and points at the caller's line."""
    Y = X * 1e-4
    Y[::7, 1] = np.nan
    with pytest.warns(RegularizationWarning, match="lower reg_covar") as record:
        select_model(Y, n_components=[1, 2], covariance_types=["diag"], random_state=0)
    assert any(r.filename == __file__ for r in record)
