"""GaussianMixture: invariants, dtypes, inputs left alone, reproducibility, recovery,
sample_weight, sample(), information criteria, bundled data and docstring examples."""

from __future__ import annotations

import doctest
import importlib

import numpy as np
import pytest

from conftest import (
    COVARIANCE_TYPES,
    INIT_PARAMS,
    cholesky_product,
    covariance_matrices,
    initial_parameters,
    make_blobs,
    precision_matrices,
)
from gaussmix import ConvergenceWarning, GaussianMixture
from gaussmix.datasets import load_faithful

FITTED = ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_")


# --------------------------------------------------------------------------------------
# Invariants of a fit
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_invariants(covariance_type, dtype):
    X, _, _, _ = make_blobs(400, 3, 3, seed=1, dtype=dtype)
    gm = GaussianMixture(3, covariance_type=covariance_type, random_state=0).fit(X)
    tight = dtype == np.float64
    atol = 1e-10 if tight else 1e-4
    K, D = 3, 3

    resp = gm.predict_proba(X)
    assert resp.shape == (400, K)
    assert np.all(resp >= 0) and np.all(resp <= 1)
    np.testing.assert_allclose(resp.sum(axis=1), 1.0, atol=atol)
    assert gm.weights_.shape == (K,)
    assert np.all(gm.weights_ > 0)
    assert float(np.sum(gm.weights_, dtype=np.float64)) == pytest.approx(1.0, abs=atol)

    shapes = {"full": (K, D, D), "tied": (D, D), "diag": (K, D), "spherical": (K,)}
    for name in ("covariances_", "precisions_", "precisions_cholesky_"):
        assert getattr(gm, name).shape == shapes[covariance_type], name
    cov = covariance_matrices(gm)
    prec = precision_matrices(gm)
    for k in range(K):
        np.testing.assert_array_equal(cov[k], cov[k].T)  # exactly symmetric
        assert np.linalg.eigvalsh(cov[k]).min() > 0
        np.testing.assert_allclose(cov[k] @ prec[k], np.eye(D), atol=atol * 10)
    if covariance_type in ("full", "tied"):
        np.testing.assert_allclose(gm.covariances_ @ gm.precisions_,
                                   np.broadcast_to(np.eye(D), gm.covariances_.shape),
                                   atol=atol * 10)
        # upper triangular factors, as scikit-learn
        L = gm.precisions_cholesky_
        np.testing.assert_array_equal(L, np.triu(L))
    else:
        np.testing.assert_allclose(gm.covariances_ * gm.precisions_, 1.0, rtol=atol * 10)
    np.testing.assert_allclose(cholesky_product(gm.precisions_cholesky_, covariance_type),
                               gm.precisions_, rtol=atol * 10, atol=atol)

    assert gm.converged_ is True
    assert isinstance(gm.n_iter_, int) and 1 <= gm.n_iter_ <= gm.max_iter
    assert isinstance(gm.lower_bound_, float)
    assert len(gm.lower_bounds_) == gm.n_iter_
    assert gm.lower_bounds_[-1] == gm.lower_bound_
    assert gm.n_features_in_ == D
    assert not hasattr(gm, "feature_names_in_")
    assert gm.degenerate_ is False and gm.degenerate_reason_ is None
    # score is the mean of score_samples; the total log-likelihood is score * n
    assert gm.score(X) == pytest.approx(float(np.mean(gm.score_samples(X), dtype=np.float64)))
    np.testing.assert_array_equal(gm.predict(X), resp.argmax(axis=1))


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_dtype_preserved_everywhere(covariance_type, dtype):
    X, _, _, _ = make_blobs(200, 2, 2, seed=2, dtype=dtype)
    sw = np.linspace(0.5, 2.0, 200).astype(dtype)
    gm = GaussianMixture(2, covariance_type=covariance_type, random_state=0)
    gm.fit(X, sample_weight=sw)
    for name in FITTED:
        assert getattr(gm, name).dtype == dtype, name
    assert gm.score_samples(X).dtype == dtype
    assert gm.predict_proba(X).dtype == dtype
    assert np.issubdtype(gm.predict(X).dtype, np.integer)
    assert np.issubdtype(gm.fit_predict(X).dtype, np.integer)
    Xs, labels = gm.sample(10, random_state=0)
    assert Xs.dtype == dtype and np.issubdtype(labels.dtype, np.integer)
    for method in ("score", "bic", "aic", "icl"):
        value = getattr(gm, method)(X)
        assert np.isscalar(value) and np.isfinite(value), method
    assert all(isinstance(b, float) for b in gm.lower_bounds_)


@pytest.mark.parametrize("kind", ["int64", "int32", "uint8", "bool", "float16", "list",
                                  "object"])
def test_other_input_types_become_float64(kind):
    rng = np.random.default_rng(3)
    base = rng.integers(0, 10, size=(80, 2))
    if kind == "bool":
        X = base > 4
    elif kind == "list":
        X = base.tolist()
    elif kind == "object":
        X = base.astype(object)
    else:
        X = base.astype(kind)
    gm = GaussianMixture(1, random_state=0).fit(X)
    for name in FITTED:
        assert getattr(gm, name).dtype == np.float64, name
    assert gm.predict_proba(X).dtype == np.float64
    assert gm.score_samples(X).dtype == np.float64


def test_float32_model_on_float64_data_and_back():
    X, _, _, _ = make_blobs(200, 2, 2, seed=4)
    gm64 = GaussianMixture(2, random_state=0).fit(X)
    gm32 = GaussianMixture(2, random_state=0).fit(X.astype(np.float32))
    np.testing.assert_allclose(gm32.predict_proba(X), gm64.predict_proba(X), atol=1e-3)
    np.testing.assert_allclose(gm64.score_samples(X.astype(np.float32)), gm64.score_samples(X),
                               rtol=1e-5)


def test_dataframe_input():
    pd = pytest.importorskip("pandas")
    X, _, _, _ = make_blobs(200, 2, 2, seed=5)
    df = pd.DataFrame(X, columns=["x", "y"])
    gm = GaussianMixture(2, random_state=0).fit(df)
    np.testing.assert_array_equal(gm.feature_names_in_, np.array(["x", "y"], dtype=object))
    ref = GaussianMixture(2, random_state=0).fit(X)
    np.testing.assert_allclose(gm.means_, ref.means_, rtol=1e-12)
    np.testing.assert_array_equal(gm.predict(df), ref.predict(X))
    # float32 frames keep float32
    gm32 = GaussianMixture(2, random_state=0).fit(df.astype(np.float32))
    assert gm32.means_.dtype == np.float32


# --------------------------------------------------------------------------------------
# Inputs are never modified; reproducibility; init_params
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_inputs_never_modified(covariance_type, dtype):
    X, _, _, _ = make_blobs(300, 3, 3, seed=6, dtype=dtype)
    sw = np.random.default_rng(0).uniform(0, 3, 300)
    init = initial_parameters(X, 3, covariance_type)
    copies = {"X": X.copy(), "sw": sw.copy(), **{k: v.copy() for k, v in init.items()}}
    for arr in (X, sw, *init.values()):
        arr.setflags(write=False)  # any write raises
    gm = GaussianMixture(3, covariance_type=covariance_type, **init).fit(X, sample_weight=sw)
    gm.predict(X)
    gm.predict_proba(X)
    gm.score_samples(X)
    gm.bic(X)
    gm.icl(X)
    gm.fit_predict(X, sample_weight=sw)
    GaussianMixture(3, covariance_type=covariance_type, random_state=0).fit(X, sample_weight=sw)
    np.testing.assert_array_equal(X, copies["X"])
    np.testing.assert_array_equal(sw, copies["sw"])
    for key, value in init.items():
        np.testing.assert_array_equal(value, copies[key], err_msg=key)
        assert getattr(gm, key) is value  # parameters are stored as given
    assert not np.shares_memory(gm.means_, init["means_init"])
    assert not np.shares_memory(gm.means_, X)


def test_fitted_arrays_do_not_alias_inputs_or_each_other():
    X, _, _, _ = make_blobs(100, 2, 2, seed=7)
    init = initial_parameters(X, 2, "full")
    with pytest.warns(ConvergenceWarning):
        gm = GaussianMixture(2, max_iter=1, tol=0, **init).fit(X)
    for name in FITTED:
        for arr in init.values():
            assert not np.shares_memory(getattr(gm, name), arr), name


@pytest.mark.parametrize("init_params", INIT_PARAMS)
def test_same_random_state_identical_results(init_params):
    X, _, _, _ = make_blobs(300, 2, 3, seed=8)
    kw = dict(n_components=3, init_params=init_params, n_init=2)
    a = GaussianMixture(random_state=42, **kw).fit(X)
    b = GaussianMixture(random_state=42, **kw).fit(X)
    for name in FITTED:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert a.lower_bounds_ == b.lower_bounds_
    # a RandomState instance with the same seed gives the same result as the int
    c = GaussianMixture(random_state=np.random.RandomState(42), **kw).fit(X)
    np.testing.assert_array_equal(a.means_, c.means_)
    # refitting the same estimator gives the same result
    a.fit(X)
    np.testing.assert_array_equal(a.means_, b.means_)


def test_different_random_state_changes_random_init():
    X, _, _, _ = make_blobs(300, 2, 3, seed=8)
    with pytest.warns(ConvergenceWarning):
        a = GaussianMixture(3, init_params="random", random_state=0, max_iter=2, tol=0).fit(X)
    with pytest.warns(ConvergenceWarning):
        b = GaussianMixture(3, init_params="random", random_state=1, max_iter=2, tol=0).fit(X)
    assert not np.allclose(a.means_, b.means_)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("init_params", INIT_PARAMS)
def test_every_init_params_fits(init_params, covariance_type):
    pytest.importorskip("sklearn")
    X, labels, _, _ = make_blobs(450, 2, 3, seed=9, spread=6.0)
    gm = GaussianMixture(3, covariance_type=covariance_type, init_params=init_params,
                         n_init=5, random_state=0, max_iter=500).fit(X)
    assert gm.converged_
    assert np.all(np.isfinite(gm.means_))
    if (init_params, covariance_type) == ("random", "tied"):
        # Uniform random responsibilities start every component at the data mean with one
        # shared covariance: EM stalls at that symmetric point within tol, exactly as
        # scikit-learn does (see test_default_init_semantics_match_sklearn).
        return
    assert adjusted_rand(labels, gm.predict(X)) >= 0.95


@pytest.mark.parametrize("init_params", INIT_PARAMS)
def test_init_params_with_sample_weight(init_params):
    X, _, _, _ = make_blobs(300, 2, 3, seed=10, spread=6.0)
    sw = np.random.default_rng(1).uniform(0.1, 2.0, 300)
    gm = GaussianMixture(3, init_params=init_params, random_state=0, n_init=2).fit(
        X, sample_weight=sw)
    assert gm.converged_


# --------------------------------------------------------------------------------------
# Recovery of a known mixture
# --------------------------------------------------------------------------------------
def adjusted_rand(a, b):
    from sklearn.metrics import adjusted_rand_score

    return adjusted_rand_score(a, b)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_recovers_known_mixture(covariance_type, dtype):
    pytest.importorskip("sklearn")
    weights = np.array([0.5, 0.3, 0.2])
    X, labels, means, _ = make_blobs(1500, 3, 3, seed=11, spread=6.0, weights=weights,
                                     dtype=dtype)
    gm = GaussianMixture(3, covariance_type=covariance_type, n_init=2, random_state=0).fit(X)
    pred = gm.predict(X)
    assert adjusted_rand(labels, pred) >= 0.95
    # match components to the truth by their means, then compare weights and means
    order = [int(np.argmin(np.linalg.norm(gm.means_ - m, axis=1))) for m in means]
    assert sorted(order) == [0, 1, 2]
    np.testing.assert_allclose(gm.weights_[order], weights, atol=0.04)
    np.testing.assert_allclose(gm.means_[order], means, atol=0.35)


def test_recovers_full_covariances():
    pytest.importorskip("sklearn")
    X, labels, means, covs = make_blobs(6000, 2, 2, seed=12, spread=8.0)
    gm = GaussianMixture(2, random_state=0).fit(X)
    order = [int(np.argmin(np.linalg.norm(gm.means_ - m, axis=1))) for m in means]
    np.testing.assert_allclose(gm.covariances_[order], covs, atol=0.15)
    assert adjusted_rand(labels, gm.predict(X)) >= 0.95


# --------------------------------------------------------------------------------------
# sample_weight
# --------------------------------------------------------------------------------------
def _fit_from_start(X, covariance_type, sw=None, start_from=None, n_iter=15, **extra):
    init = initial_parameters(X if start_from is None else start_from, 3, covariance_type)
    with pytest.warns(ConvergenceWarning):
        return GaussianMixture(3, covariance_type=covariance_type, tol=0, max_iter=n_iter,
                               **init, **extra).fit(X, sample_weight=sw)


def _assert_same_fit(a, b, rtol):
    for name in FITTED:
        x, y = getattr(a, name), getattr(b, name)
        np.testing.assert_allclose(x, y, rtol=rtol, atol=rtol * np.max(np.abs(y)), err_msg=name)
    np.testing.assert_allclose(a.lower_bounds_, b.lower_bounds_, rtol=rtol)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_integer_weights_equal_repeated_rows(covariance_type):
    X, _, _, _ = make_blobs(200, 2, 3, seed=13)
    counts = np.random.default_rng(2).integers(0, 4, 200)
    counts[:3] = 1  # the rows the initial means are drawn from stay present
    weighted = _fit_from_start(X, covariance_type, sw=counts, start_from=X)
    repeated = _fit_from_start(np.repeat(X, counts, axis=0), covariance_type, start_from=X)
    _assert_same_fit(weighted, repeated, 1e-10)
    assert weighted.score(X) == pytest.approx(repeated.score(X), rel=1e-10)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_zero_weight_equals_dropped_row(covariance_type):
    X, _, _, _ = make_blobs(200, 2, 3, seed=14)
    sw = np.ones(200)
    drop = np.array([5, 17, 150])
    sw[drop] = 0.0
    X[drop] += 50.0  # outliers that would matter if they counted
    keep = np.setdiff1d(np.arange(200), drop)
    a = _fit_from_start(X, covariance_type, sw=sw, start_from=X[keep])
    b = _fit_from_start(X[keep], covariance_type, start_from=X[keep])
    _assert_same_fit(a, b, 1e-10)


@pytest.mark.filterwarnings("ignore::gaussmix.DegenerateFitWarning")  # pinned separately
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("scale", [1e-30, 1e-6, 1e6, 1e30, 1e39])
@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_fit_invariant_to_weight_scale(covariance_type, scale, dtype):
    """Multiplying every weight by a constant changes nothing (weights are relative).

    Also for weights a float32 cannot hold (1e39 overflows it, 1e-30 * 1e-16 underflows
    the empty-component guard): the weights are not data and need not be cast to X's dtype.
    """
    X, _, _, _ = make_blobs(200, 2, 3, seed=15, dtype=dtype)
    sw = np.random.default_rng(3).uniform(0.5, 2.0, 200)
    ref = _fit_from_start(X, covariance_type, sw=sw, start_from=X)
    scaled = _fit_from_start(X, covariance_type, sw=sw * scale, start_from=X)
    _assert_same_fit(scaled, ref, 1e-8 if dtype == np.float64 else 1e-4)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_normalised_weights_are_not_degenerate(covariance_type):
    """Weights that sum to 1 (probabilities, importance weights) are a common input: the
    fit must equal the unnormalised one and must not be flagged as degenerate."""
    X, _, _, _ = make_blobs(300, 2, 3, seed=26, spread=6.0)
    sw = np.random.default_rng(5).uniform(0.5, 2.0, 300)
    ref = GaussianMixture(3, covariance_type=covariance_type, random_state=0).fit(
        X, sample_weight=sw)
    gm = GaussianMixture(3, covariance_type=covariance_type, random_state=0).fit(
        X, sample_weight=sw / sw.sum())
    assert gm.degenerate_ is False, gm.degenerate_reason_
    np.testing.assert_allclose(gm.means_, ref.means_, rtol=1e-8)


def test_unit_weights_equal_no_weights():
    X, _, _, _ = make_blobs(200, 2, 3, seed=16)
    a = _fit_from_start(X, "full", sw=np.ones(200), start_from=X)
    b = _fit_from_start(X, "full", start_from=X)
    _assert_same_fit(a, b, 1e-12)
    # a scalar weight is a constant weight
    c = _fit_from_start(X, "full", sw=2.5, start_from=X)
    _assert_same_fit(c, b, 1e-10)


def test_weighted_lower_bound_is_weighted_mean():
    X, _, _, _ = make_blobs(200, 2, 3, seed=17)
    sw = np.random.default_rng(4).uniform(0, 2, 200)
    gm = _fit_from_start(X, "tied", sw=sw, start_from=X, n_iter=5)
    # the last E-step used the parameters before the last M-step: refit one step less
    prev = _fit_from_start(X, "tied", sw=sw, start_from=X, n_iter=4)
    expected = np.average(prev.score_samples(X), weights=sw)
    assert gm.lower_bounds_[-1] == pytest.approx(expected, rel=1e-10)


# --------------------------------------------------------------------------------------
# sample()
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_sample(covariance_type):
    X, _, _, _ = make_blobs(600, 2, 3, seed=18, spread=6.0)
    gm = GaussianMixture(3, covariance_type=covariance_type, random_state=0).fit(X)
    Xs, labels = gm.sample(20000, random_state=1)
    assert Xs.shape == (20000, 2) and labels.shape == (20000,)
    assert np.all(np.diff(labels) >= 0)  # sorted by component, as scikit-learn
    counts = np.bincount(labels, minlength=3)
    assert counts.sum() == 20000
    # multinomial counts: within 5 standard deviations of n * weights
    sd = np.sqrt(20000 * gm.weights_ * (1 - gm.weights_))
    assert np.all(np.abs(counts - 20000 * gm.weights_) < 5 * sd)
    cov = covariance_matrices(gm)
    for k in range(3):
        Z = Xs[labels == k]
        np.testing.assert_allclose(Z.mean(axis=0), gm.means_[k],
                                   atol=6 * np.sqrt(cov[k].diagonal().max() / len(Z)))
        np.testing.assert_allclose(np.cov(Z.T), cov[k], atol=0.1 * np.abs(cov[k]).max())
    # reproducible, and different seeds differ
    again, again_labels = gm.sample(20000, random_state=1)
    np.testing.assert_array_equal(Xs, again)
    np.testing.assert_array_equal(labels, again_labels)
    other, _ = gm.sample(20000, random_state=2)
    assert not np.array_equal(Xs, other)
    # RandomState instances work too
    a, _ = gm.sample(5, random_state=np.random.RandomState(3))
    b, _ = gm.sample(5, random_state=np.random.RandomState(3))
    np.testing.assert_array_equal(a, b)


def test_sample_defaults_to_estimator_random_state():
    X, _, _, _ = make_blobs(200, 2, 2, seed=19)
    gm = GaussianMixture(2, random_state=7).fit(X)
    a, _ = gm.sample(50)
    b, _ = gm.sample(50)
    np.testing.assert_array_equal(a, b)
    c, _ = gm.sample(50, random_state=7)
    np.testing.assert_array_equal(a, c)


def test_sample_arguments():
    X, _, _, _ = make_blobs(200, 2, 2, seed=19)
    gm = GaussianMixture(2, random_state=0).fit(X)
    Xs, labels = gm.sample()
    assert Xs.shape == (1, 2) and labels.shape == (1,)
    assert gm.sample(np.int64(3))[0].shape == (3, 2)
    with pytest.raises(ValueError, match="n_samples"):
        gm.sample(0)
    with pytest.raises((TypeError, ValueError), match="n_samples"):
        gm.sample(2.5)


# --------------------------------------------------------------------------------------
# Information criteria
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "covariance_type, expected", [("spherical", 13), ("diag", 21), ("tied", 26), ("full", 41)]
)
def test_n_parameters(covariance_type, expected):
    X, _, _, _ = make_blobs(200, 5, 2, seed=20)
    gm = GaussianMixture(2, covariance_type=covariance_type, random_state=0).fit(X)
    assert gm._n_parameters() == expected


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_bic_aic_icl_formulas(covariance_type):
    X, _, _, _ = make_blobs(300, 5, 2, seed=21, spread=1.5)
    gm = GaussianMixture(2, covariance_type=covariance_type, random_state=0).fit(X)
    n = X.shape[0]
    log_lik = float(np.sum(gm.score_samples(X)))
    p = gm._n_parameters()
    assert gm.bic(X) == pytest.approx(-2 * log_lik + p * np.log(n), rel=1e-12)
    assert gm.aic(X) == pytest.approx(-2 * log_lik + 2 * p, rel=1e-12)
    resp = gm.predict_proba(X)
    entropy_term = -2 * float(np.sum(np.log(resp.max(axis=1))))
    assert entropy_term > 0  # overlapping clusters: the hard assignment is uncertain
    assert gm.icl(X) == pytest.approx(gm.bic(X) + entropy_term, rel=1e-12)
    assert gm.icl(X) >= gm.bic(X)


def test_icl_equals_bic_for_separated_clusters():
    X, _, _, _ = make_blobs(300, 2, 2, seed=22, spread=50.0)
    gm = GaussianMixture(2, random_state=0).fit(X)
    assert gm.icl(X) == pytest.approx(gm.bic(X), abs=1e-6)


@pytest.mark.parametrize("method", ["bic", "aic", "icl", "score"])
def test_criteria_accept_array_like(method):
    """bic/aic/icl take array-likes like every other method (lists, DataFrames)."""
    X, _, _, _ = make_blobs(100, 2, 2, seed=23)
    gm = GaussianMixture(2, random_state=0).fit(X)
    expected = getattr(gm, method)(X)
    assert getattr(gm, method)(X.tolist()) == pytest.approx(expected, rel=1e-12)
    pd = pytest.importorskip("pandas")
    assert getattr(gm, method)(pd.DataFrame(X)) == pytest.approx(expected, rel=1e-12)


def test_bic_prefers_true_number_of_components():
    X, _, _, _ = make_blobs(600, 2, 3, seed=24, spread=6.0)
    bics = [GaussianMixture(k, random_state=0, n_init=2).fit(X).bic(X) for k in (1, 2, 3, 4, 5)]
    assert int(np.argmin(bics)) + 1 == 3


# --------------------------------------------------------------------------------------
# Bundled data: Old Faithful, the classic mclust case
# --------------------------------------------------------------------------------------
def test_load_faithful():
    X = load_faithful()
    assert X.shape == (272, 2) and X.dtype == np.float64
    assert X[0].tolist() == [3.6, 79.0]
    assert 1.5 < X[:, 0].min() and X[:, 0].max() < 5.2
    assert 40 <= X[:, 1].min() and X[:, 1].max() <= 97
    pytest.importorskip("pandas")
    df = load_faithful(as_frame=True)
    assert list(df.columns) == ["eruptions", "waiting"]
    np.testing.assert_array_equal(df.to_numpy(), X)


def test_faithful_tied_three_components_reaches_mclust():
    """mclust's EEE, G=3: log-likelihood -1126.326; gaussmix must reach >= -1126.33."""
    X = load_faithful()
    gm = GaussianMixture(3, covariance_type="tied", n_init=10, random_state=0, tol=1e-8,
                         max_iter=2000).fit(X)
    total = gm.score(X) * X.shape[0]
    assert total >= -1126.33
    assert gm._n_parameters() == 11
    # mclust's BIC sign is the opposite; -2314.316 there, up to convergence
    assert -gm.bic(X) == pytest.approx(-2314.316, abs=0.05)


# --------------------------------------------------------------------------------------
# Verbose output, repr
# --------------------------------------------------------------------------------------
def test_verbose_output(capsys):
    X, _, _, _ = make_blobs(200, 2, 2, seed=25)
    GaussianMixture(2, random_state=0, verbose=2, verbose_interval=1).fit(X)
    out = capsys.readouterr().out
    assert "Initialization 0" in out
    assert "Iteration 1" in out and "converged" in out
    GaussianMixture(2, random_state=0).fit(X)
    assert capsys.readouterr().out == ""


def test_repr():
    assert repr(GaussianMixture()) == "GaussianMixture()"
    r = repr(GaussianMixture(3, covariance_type="diag", means_init=np.zeros((3, 2))))
    assert "n_components=3" in r and "covariance_type='diag'" in r and "means_init" in r


# --------------------------------------------------------------------------------------
# Docstring examples
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("module", ["gaussmix.mixture", "gaussmix.stats", "gaussmix.datasets",
                                    "gaussmix.em", "gaussmix._covariance"])
def test_docstring_examples(module):
    mod = importlib.import_module(module)
    result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
                             verbose=False, report=True)
    assert result.failed == 0
    if module in ("gaussmix.mixture", "gaussmix.stats", "gaussmix.datasets"):
        assert result.attempted > 0, f"{module} has no examples"


# --------------------------------------------------------------------------------------
# Results are fresh arrays (the E-step reuses workspace buffers internally)
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_outputs_are_not_overwritten_by_later_calls(covariance_type):
    X, _, _, _ = make_blobs(3000, 3, 3, seed=27)
    gm = GaussianMixture(3, covariance_type=covariance_type, random_state=0).fit(X)
    proba, scores = gm.predict_proba(X[:100]), gm.score_samples(X[:100])
    saved = proba.copy(), scores.copy()
    other = gm.predict_proba(X[100:200])
    gm.score_samples(X[::-1])
    gm.fit(X[::-1])
    assert not np.shares_memory(proba, other)
    np.testing.assert_array_equal(proba, saved[0])
    np.testing.assert_array_equal(scores, saved[1])


def test_concurrent_predictions_from_threads():
    """Threads sharing one fitted model (joblib threading, Dask workers) get correct results."""
    from concurrent.futures import ThreadPoolExecutor

    X, _, _, _ = make_blobs(4000, 4, 3, seed=28)
    gm = GaussianMixture(3, random_state=0, block_size=256).fit(X)
    parts = [X[i::4] for i in range(4)]
    expected = [gm.predict_proba(p) for p in parts]
    with ThreadPoolExecutor(4) as pool:
        for _ in range(3):
            got = list(pool.map(gm.predict_proba, parts))
            for g, e in zip(got, expected, strict=True):
                np.testing.assert_array_equal(g, e)
