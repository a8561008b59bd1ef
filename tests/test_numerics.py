"""float32 accuracy on hostile data (issue 3, item 4).

Data far from the origin and features on very different scales are where the textbook
moments E[x x^T] - mu mu^T cancel catastrophically in single precision (scikit-learn issue
30382). For every covariance type gaussmix's float32 fit must keep every variance positive
and its total log-likelihood within 1e-4 (relative) of the float64 fit from the same start.

The float64 reference is fitted on the float32 data cast back to float64, so both fits see
the very same numbers and the comparison measures the arithmetic, not the rounding of X.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from conftest import COVARIANCE_TYPES, covariance_matrices, make_blobs
from gaussmix import ConvergenceWarning, DegenerateFitWarning, GaussianMixture
from gaussmix import stats as gstats

LL_RTOL = 1e-4


def _pair(X):
    X32 = np.asarray(X, dtype=np.float32)
    return X32, X32.astype(np.float64)


def _unit_precisions(covariance_type, K, D, variances=None):
    v = np.ones(D) if variances is None else np.asarray(variances, dtype=np.float64)
    return {
        "full": np.stack([np.diag(1.0 / v)] * K),
        "tied": np.diag(1.0 / v),
        "diag": np.tile(1.0 / v, (K, 1)),
        "spherical": np.full(K, 1.0 / v.mean()),
    }[covariance_type]


def _assert_positive_variances(gm):
    cov = covariance_matrices(gm)
    assert np.all(np.isfinite(cov))
    for k, c in enumerate(cov):
        assert np.all(np.diag(c) > 0), f"component {k}: variances {np.diag(c)}"
        assert np.linalg.eigvalsh(c).min() > 0, f"component {k} not positive definite"


def _fit_pair(X, covariance_type, n_iter=20, **init):
    """float32 and float64 fits from the same start, tol=0, fixed iterations."""
    X32, X64 = _pair(X)
    kw = dict(covariance_type=covariance_type, tol=0.0, max_iter=n_iter, **init)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        # Degeneracy verdicts are pinned by the *_not_flagged_degenerate tests below.
        warnings.simplefilter("ignore", DegenerateFitWarning)
        gm64 = GaussianMixture(len(init["means_init"]), **kw).fit(X64)
        gm32 = GaussianMixture(len(init["means_init"]), **kw).fit(X32)
    return gm32, gm64, X32, X64


def _assert_float32_matches(gm32, gm64, X32, X64, rtol=LL_RTOL):
    for name in ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_"):
        assert getattr(gm32, name).dtype == np.float32, name
    _assert_positive_variances(gm32)
    ll32 = gm32.score(X32) * X32.shape[0]
    ll64 = gm64.score(X64) * X64.shape[0]
    assert abs(ll32 - ll64) <= rtol * abs(ll64), (ll32, ll64, abs(ll32 - ll64) / abs(ll64))
    assert gm32.lower_bound_ == pytest.approx(gm64.lower_bound_, rel=rtol)


def _means_for_each_cluster(X, labels, K):
    return np.stack([X[np.flatnonzero(labels == k)[0]] for k in range(K)]).astype(np.float64)


# --------------------------------------------------------------------------------------
# Tight clusters far from the origin
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_float32_tight_clusters_near_1e4(covariance_type):
    """Unit-variance clusters a few units apart, all around 1e4."""
    X, labels, _, _ = make_blobs(1500, 3, 3, seed=1, spread=4.0, offset=1e4)
    init = dict(weights_init=np.full(3, 1 / 3), means_init=_means_for_each_cluster(X, labels, 3),
                precisions_init=_unit_precisions(covariance_type, 3, 3))
    _assert_float32_matches(*_fit_pair(X, covariance_type, **init))


def _far_apart(n=1500, seed=0):
    """Unit-variance clusters whose means are 1e4 apart (and around 1e4 from the origin)."""
    rng = np.random.default_rng(seed)
    means = np.array([[1e4, 1e4, 1e4], [2e4, 1e4, -1e4], [-1e4, 3e4, 0.0]])
    labels = rng.integers(0, 3, n)
    return means[labels] + rng.normal(size=(n, 3)), labels, means


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_float32_clusters_1e4_apart(covariance_type):
    """Unit-variance clusters 1e4 apart, started with one mean in each cluster."""
    X, labels, _ = _far_apart()
    init = dict(weights_init=np.full(3, 1 / 3), means_init=_means_for_each_cluster(X, labels, 3),
                precisions_init=_unit_precisions(covariance_type, 3, 3))
    _assert_float32_matches(*_fit_pair(X, covariance_type, **init))


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_float32_log_density_of_components_1e4_apart(covariance_type):
    """The E-step alone: log p(x) in float32 for components 1e4 from the mixture mean."""
    X, _, means = _far_apart()
    X32, X64 = _pair(X)
    params = gstats.MixtureParameters.from_precisions(
        covariance_type, np.full(3, 1 / 3), means, _unit_precisions(covariance_type, 3, 3))
    ref = gstats.score_samples(X64, params)
    got = gstats.score_samples(X32, params.astype(np.float32))
    assert got.dtype == np.float32
    # per point: a fraction of a nat at most (the values are about -4.3)
    np.testing.assert_allclose(got, ref, atol=1e-2)
    assert abs(got.sum(dtype=np.float64) - ref.sum()) <= LL_RTOL * abs(ref.sum())


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_float32_means_move_1e4_in_one_step(covariance_type):
    """Two initial means in one cluster, none in the third: in the first M-step a component
    moves 1e4 units. Moments taken about the old means (or the mixture mean) then cancel in
    float32; scikit-learn's two-pass float32 'full' fit survives this (-8014.16 vs -8014.23
    in float64), so must gaussmix's, for every covariance type."""
    X, labels, _ = _far_apart()
    first = np.flatnonzero(labels == 0)[:2]
    second = np.flatnonzero(labels == 1)[0]
    init = dict(weights_init=np.full(3, 1 / 3), means_init=X[[first[0], first[1], second]],
                precisions_init=_unit_precisions(covariance_type, 3, 3))
    _assert_float32_matches(*_fit_pair(X, covariance_type, n_iter=10, **init))


# --------------------------------------------------------------------------------------
# Features on very different scales
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_float32_features_on_very_different_scales(covariance_type):
    """Feature scales 1e-3, 1 and 1e3 (cluster spread and widths alike)."""
    scales = np.array([1e-3, 1.0, 1e3])
    Z, labels, _, _ = make_blobs(1500, 3, 3, seed=2, spread=4.0)
    X = Z * scales
    init = dict(weights_init=np.full(3, 1 / 3), means_init=_means_for_each_cluster(X, labels, 3),
                precisions_init=_unit_precisions(covariance_type, 3, 3, variances=scales**2),
                reg_covar=1e-12)  # the default 1e-6 would swamp the 1e-3 feature's variance
    _assert_float32_matches(*_fit_pair(X, covariance_type, **init))


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_float32_different_scales_far_from_origin(covariance_type):
    """Scales 1e-3 and 1e3, offsets 1e1 and 1e5: both hazards at once (reg_covar below the
    small feature's variance so that it does not swamp it)."""
    scales = np.array([1e-3, 1e3])
    Z, labels, _, _ = make_blobs(1200, 2, 2, seed=3, spread=4.0)
    X = Z * scales + np.array([10.0, 1e5])
    init = dict(weights_init=np.full(2, 0.5), means_init=_means_for_each_cluster(X, labels, 2),
                precisions_init=_unit_precisions(covariance_type, 2, 2, variances=scales**2),
                reg_covar=1e-10)
    _assert_float32_matches(*_fit_pair(X, covariance_type, **init))


# --------------------------------------------------------------------------------------
# scikit-learn issue 30382
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_sklearn_issue_30382_reproducer(covariance_type):
    """Two points 9999 apart, two components, reg_covar=0.1: each component sits on one
    point, so every variance is reg_covar = 0.1 (scikit-learn's float32 fit got this wrong:
    negative variances in the versions of issue 30382)."""
    X32 = np.array([[9999.0], [0.0]], dtype=np.float32)
    with pytest.warns(DegenerateFitWarning):  # two points for two components: degenerate
        gm = GaussianMixture(2, covariance_type=covariance_type, reg_covar=0.1).fit(X32)
    assert gm.covariances_.dtype == np.float32
    np.testing.assert_allclose(gm.covariances_, 0.1, rtol=1e-3)
    np.testing.assert_allclose(np.sort(gm.means_.ravel()), [0.0, 9999.0], atol=1e-2)
    # and the same as the float64 fit of the same two points
    with pytest.warns(DegenerateFitWarning):
        gm64 = GaussianMixture(2, covariance_type=covariance_type, reg_covar=0.1).fit(
            X32.astype(np.float64))
    np.testing.assert_allclose(gm.covariances_, gm64.covariances_, rtol=1e-5)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_float32_two_narrow_clusters_9999_apart(covariance_type):
    """A larger 30382 case with the default initialisation: clusters at 0 and 9999 with
    standard deviation 0.05 in the first feature (scikit-learn 1.9.1's float32 fit raises
    for tied, diag and spherical). The means are 2e5 standard deviations apart, so float32
    resolves the data to about 1/100 of a standard deviation; the log-likelihood tolerance
    is 1e-3 here."""
    rng = np.random.default_rng(4)
    X = np.r_[rng.normal(0, 0.05, (200, 1)), rng.normal(9999, 0.05, (200, 1))]
    X = np.c_[X, rng.normal(0, 1, (400, 1))]
    X32, X64 = _pair(X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateFitWarning)  # pinned separately below
        gm32 = GaussianMixture(2, covariance_type=covariance_type, random_state=0).fit(X32)
        gm64 = GaussianMixture(2, covariance_type=covariance_type, random_state=0).fit(X64)
    _assert_positive_variances(gm32)
    ll32, ll64 = gm32.score(X32) * 400, gm64.score(X64) * 400
    assert abs(ll32 - ll64) <= 1e-3 * abs(ll64), (ll32, ll64)
    np.testing.assert_allclose(np.sort(gm32.means_[:, 0]), [0.0, 9999.0], atol=0.05)


# --------------------------------------------------------------------------------------
# Genuine tight clusters are not "degenerate"
# --------------------------------------------------------------------------------------
def _degenerate_warnings(fit):
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        model = fit()
    return model, [str(w.message) for w in record if issubclass(w.category, DegenerateFitWarning)]


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_clusters_1e4_apart_not_flagged_degenerate(covariance_type):
    """500 distinct unit-variance points per cluster, clusters 1e4 apart (float64): a
    textbook fit, not a component "collapsed onto a few (often repeated) points"."""
    X, _labels, _ = _far_apart()
    gm, flagged = _degenerate_warnings(
        lambda: GaussianMixture(3, covariance_type=covariance_type, random_state=0).fit(X))
    assert flagged == []
    assert gm.degenerate_ is False, gm.degenerate_reason_


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_narrow_clusters_9999_apart_not_flagged_degenerate(covariance_type):
    rng = np.random.default_rng(4)
    X = np.r_[rng.normal(0, 0.05, (200, 1)), rng.normal(9999, 0.05, (200, 1))]
    X = np.c_[X, rng.normal(0, 1, (400, 1))]
    gm, flagged = _degenerate_warnings(
        lambda: GaussianMixture(2, covariance_type=covariance_type, random_state=0).fit(X))
    assert flagged == []
    assert gm.degenerate_ is False, gm.degenerate_reason_


def test_spherical_on_different_scales_not_flagged_degenerate():
    """Each cluster's spread in the 1e-3 feature is a quarter of the data's spread there;
    the spherical check must compare like with like, not with the mean variance."""
    scales = np.array([1e-3, 1.0, 1e3])
    Z, labels, _, _ = make_blobs(1500, 3, 3, seed=2, spread=4.0)
    X = Z * scales
    init = dict(means_init=_means_for_each_cluster(X, labels, 3), reg_covar=1e-12)
    _gm, flagged = _degenerate_warnings(
        lambda: GaussianMixture(3, covariance_type="spherical", random_state=0, **init).fit(X))
    assert flagged == [], flagged


# --------------------------------------------------------------------------------------
# Underflow and overflow of the densities
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_far_outliers_have_finite_scores_and_valid_responsibilities(covariance_type, dtype):
    X, _, _, _ = make_blobs(300, 2, 2, seed=5, spread=3.0, dtype=dtype)
    gm = GaussianMixture(2, covariance_type=covariance_type, random_state=0).fit(X)
    far = np.array([[1e3, 1e3], [-1e4, 5.0], [0.0, 3e4]], dtype=dtype)
    ss = gm.score_samples(far)
    assert np.all(np.isfinite(ss)) and np.all(ss < -1e3)
    resp = gm.predict_proba(far)
    assert np.all(np.isfinite(resp))
    np.testing.assert_allclose(resp.sum(axis=1), 1.0, rtol=1e-5)


def test_tiny_variances_no_overflow():
    """Clusters with standard deviation 1e-6 (densities around 1e5 per feature)."""
    X, _labels, _, _ = make_blobs(400, 2, 2, seed=6, spread=4.0)
    X = X * 1e-6
    gm = GaussianMixture(2, reg_covar=1e-20, random_state=0).fit(X)
    assert np.all(np.isfinite(gm.score_samples(X)))
    assert gm.score(X) > 20  # log-densities are large and positive here
    _assert_positive_variances(gm)
