"""The math: an independent naive reference, additive block statistics, the M-step, EM.

* Each component's density written straight from MATH.md (explicit inverse and
  determinant, slow loops) matches score_samples and predict_proba.
* The M-step from summed statistics matches the MATH.md updates computed from naive
  responsibilities.
* Statistics of blocks add up to those of the whole; the fit does not depend on block_size.
* EM never lowers the log-likelihood with reg_covar=0, and lowers it by at most the
  regularisation gap otherwise (hypothesis property test, float64 and float32).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from conftest import (
    COVARIANCE_TYPES,
    PROPERTY_SETTINGS,
    covariance_matrices,
    initial_parameters,
    make_blobs,
    random_precisions,
)
from gaussmix import (
    ConvergenceWarning,
    DegenerateFitWarning,
    GaussianMixture,
    MixtureParameters,
    RegularizationWarning,
    SufficientStatistics,
    block_statistics,
    m_step,
)
from gaussmix import stats as gstats
from gaussmix._estep import _feature_pairs, _normalize, make_estep


# --------------------------------------------------------------------------------------
# The naive reference, straight from MATH.md
# --------------------------------------------------------------------------------------
def naive_density(x, mu, sigma):
    """N(x | mu, Sigma) = exp(-1/2 (x-mu)^T Sigma^-1 (x-mu)) / ((2 pi)^(D/2) |Sigma|^(1/2))."""
    D = len(mu)
    inv = np.linalg.inv(sigma)
    det = np.linalg.det(sigma)
    diff = x - mu
    return np.exp(-0.5 * diff @ inv @ diff) / ((2 * np.pi) ** (D / 2) * np.sqrt(det))


def naive_posterior(X, weights, means, covariances):
    """p(x_n) and gamma_nk for every row, with explicit loops."""
    N, K = X.shape[0], len(weights)
    joint = np.empty((N, K))
    for n in range(N):
        for k in range(K):
            joint[n, k] = weights[k] * naive_density(X[n], means[k], covariances[k])
    p = joint.sum(axis=1)
    return p, joint / p[:, None]


def naive_m_step(X, resp, sample_weight, covariance_type, reg_covar):
    """MATH.md's M-step with weights w_n multiplying the responsibilities."""
    D = X.shape[1]
    K = resp.shape[1]
    r = resp * sample_weight[:, None]
    nk = r.sum(axis=0)
    means = (r.T @ X) / nk[:, None]
    full = np.empty((K, D, D))
    for k in range(K):
        diff = X - means[k]
        full[k] = (r[:, k, None] * diff).T @ diff / nk[k]
    weights = nk / sample_weight.sum()
    if covariance_type == "full":
        cov = full + reg_covar * np.eye(D)
    elif covariance_type == "tied":
        cov = np.einsum("k,kij->ij", nk, full) / nk.sum() + reg_covar * np.eye(D)
    elif covariance_type == "diag":
        cov = np.stack([np.diag(c) for c in full]) + reg_covar
    else:
        cov = np.array([np.trace(c) / D for c in full]) + reg_covar
    return weights, means, cov


def _full(cov, covariance_type, K, D):
    if covariance_type == "full":
        return cov
    if covariance_type == "tied":
        return np.broadcast_to(cov, (K, D, D))
    if covariance_type == "diag":
        return np.stack([np.diag(c) for c in cov])
    return np.stack([np.eye(D) * c for c in cov])


def _random_parameters(covariance_type, K, D, seed, offset=0.0):
    rng = np.random.default_rng(seed)
    weights = rng.uniform(0.5, 1.5, K)
    weights /= weights.sum()
    means = offset + rng.normal(0, 2.0, (K, D))
    P = random_precisions(covariance_type, K, D, rng)
    return MixtureParameters.from_precisions(covariance_type, weights, means, P)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("shape", [(60, 1, 2), (80, 3, 3), (50, 5, 4)])
def test_naive_reference_fitted_model(covariance_type, shape):
    N, D, K = shape
    X, _, _, _ = make_blobs(N, D, K, seed=D, spread=2.0)
    gm = GaussianMixture(K, covariance_type=covariance_type, random_state=0).fit(X)
    Xt = np.vstack([X, make_blobs(20, D, K, seed=50, spread=2.0)[0]])
    p, resp = naive_posterior(Xt, gm.weights_, gm.means_, covariance_matrices(gm))
    np.testing.assert_allclose(gm.score_samples(Xt), np.log(p), rtol=1e-10)
    np.testing.assert_allclose(gm.predict_proba(Xt), resp, rtol=1e-10, atol=1e-13)
    np.testing.assert_array_equal(gm.predict(Xt), resp.argmax(axis=1))
    assert gm.score(Xt) == pytest.approx(np.mean(np.log(p)), rel=1e-10)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_naive_reference_module_functions(covariance_type):
    """gaussmix.stats.score_samples / predict_proba from given parameters."""
    K, D = 3, 4
    params = _random_parameters(covariance_type, K, D, seed=3)
    X = np.random.default_rng(4).normal(0, 2.0, (70, D))
    p, resp = naive_posterior(X, params.weights, params.means,
                              _full(params.covariances, covariance_type, K, D))
    np.testing.assert_allclose(gstats.score_samples(X, params), np.log(p), rtol=1e-10)
    np.testing.assert_allclose(gstats.predict_proba(X, params), resp, rtol=1e-10, atol=1e-13)
    np.testing.assert_array_equal(gstats.predict(X, params), resp.argmax(axis=1))
    # block_size does not matter
    np.testing.assert_allclose(gstats.score_samples(X, params, block_size=7), np.log(p),
                               rtol=1e-10)
    # the E-step's log-likelihood is the sum of the log-densities
    stats = block_statistics(X, params)
    assert stats.log_likelihood == pytest.approx(np.sum(np.log(p)), rel=1e-12)
    assert stats.mean_log_likelihood == pytest.approx(np.mean(np.log(p)), rel=1e-12)
    assert stats.weight_sum == X.shape[0]


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_naive_reference_float32(covariance_type):
    K, D = 3, 3
    params = _random_parameters(covariance_type, K, D, seed=5)
    X = np.random.default_rng(6).normal(0, 2.0, (60, D))
    p, resp = naive_posterior(X, params.weights, params.means,
                              _full(params.covariances, covariance_type, K, D))
    X32 = X.astype(np.float32)
    ss = gstats.score_samples(X32, params.astype(np.float32))
    assert ss.dtype == np.float32
    np.testing.assert_allclose(ss, np.log(p), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gstats.predict_proba(X32, params.astype(np.float32)), resp,
                               atol=1e-5)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("weighted", [False, True])
def test_m_step_matches_math(covariance_type, weighted):
    """m_step(block_statistics(X, params)) is MATH.md's M-step of the naive responsibilities."""
    K, D, N = 3, 3, 90
    params = _random_parameters(covariance_type, K, D, seed=7)
    rng = np.random.default_rng(8)
    X = rng.normal(0, 2.0, (N, D))
    sw = rng.uniform(0.1, 3.0, N) if weighted else np.ones(N)
    _, resp = naive_posterior(X, params.weights, params.means,
                              _full(params.covariances, covariance_type, K, D))
    w_ref, m_ref, c_ref = naive_m_step(X, resp, sw, covariance_type, reg_covar=1e-3)
    stats = block_statistics(X, params, sw if weighted else None, block_size=16)
    new = m_step(stats, reg_covar=1e-3)
    np.testing.assert_allclose(new.weights, w_ref, rtol=1e-12)
    np.testing.assert_allclose(new.means, m_ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(new.covariances, c_ref, rtol=1e-10, atol=1e-12)
    # and its precision factors stand for the inverse covariances
    prec = _full(gstats.MixtureParameters.from_covariances(
        covariance_type, new.weights, new.means, new.covariances).precisions_cholesky,
        covariance_type, K, D)
    if covariance_type in ("full", "tied"):
        prec = prec @ np.swapaxes(prec, -1, -2)
    else:
        prec = prec**2
    cov = _full(new.covariances, covariance_type, K, D)
    np.testing.assert_allclose(cov @ prec, np.broadcast_to(np.eye(D), (K, D, D)), atol=1e-10)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_statistics_from_responsibilities_consistent(covariance_type):
    """Statistics of explicit responsibilities give the same M-step as the E-step's."""
    K, D, N = 3, 2, 70
    params = _random_parameters(covariance_type, K, D, seed=9, offset=100.0)
    X = np.random.default_rng(10).normal(0, 2.0, (N, D)) + 100.0
    resp = gstats.predict_proba(X, params)
    a = m_step(block_statistics(X, params), reg_covar=1e-6)
    b = m_step(gstats.statistics_from_responsibilities(X, resp, covariance_type, shift=X[0]),
               reg_covar=1e-6)
    for name in ("weights", "means", "covariances", "precisions_cholesky"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-9, atol=1e-12,
                                   err_msg=name)


# --------------------------------------------------------------------------------------
# Additivity of block statistics
# --------------------------------------------------------------------------------------
def _assert_stats_equal(a: SufficientStatistics, b: SufficientStatistics, rtol=1e-12):
    assert a.covariance_type == b.covariance_type
    if not np.array_equal(a.shift, b.shift):
        # A block of a row or two has new variances of 0, below the rounding of moments
        # about the centre: it is redone about the means. Compare about the same points.
        a = a.moved_to(b.shift)
    for name in ("nk", "s1", "s2"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.shape == y.shape, name
        np.testing.assert_allclose(x, y, rtol=rtol, atol=rtol * np.max(np.abs(y)), err_msg=name)
    assert a.log_likelihood == pytest.approx(b.log_likelihood, rel=rtol)
    assert a.weight_sum == pytest.approx(b.weight_sum, rel=rtol)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("weighted", [False, True])
def test_block_statistics_of_halves_add_up(covariance_type, weighted):
    K, D, N = 3, 4, 301
    params = _random_parameters(covariance_type, K, D, seed=11)
    rng = np.random.default_rng(12)
    X = rng.normal(0, 2.0, (N, D))
    sw = rng.uniform(0, 4, N) if weighted else None
    whole = block_statistics(X, params, sw)
    cut = 137
    first = block_statistics(X[:cut], params, None if sw is None else sw[:cut])
    second = block_statistics(X[cut:], params, None if sw is None else sw[cut:])
    _assert_stats_equal(first + second, whole)
    _assert_stats_equal(second + first, whole)
    # three uneven pieces, and tiny sub-blocks inside each
    pieces = [slice(0, 1), slice(1, 200), slice(200, N)]
    total = None
    for s in pieces:
        part = block_statistics(X[s], params, None if sw is None else sw[s], block_size=5)
        total = part if total is None else total + part
    _assert_stats_equal(total, whole)
    # shapes of the statistics
    s2_shape = {"full": (K, D, D), "tied": (D, D), "diag": (K, D), "spherical": (K,)}
    assert whole.s2.shape == s2_shape[covariance_type]
    assert whole.nk.shape == (K,) and whole.s1.shape == (K, D)
    if sw is None:
        assert whole.weight_sum == N
        assert whole.nk.sum() == pytest.approx(N, rel=1e-12)
    else:
        assert whole.weight_sum == pytest.approx(sw.sum(), rel=1e-12)
        assert whole.nk.sum() == pytest.approx(sw.sum(), rel=1e-12)
    # the M-step of the sum is that of the whole
    a, b = m_step(first + second, reg_covar=1e-6), m_step(whole, reg_covar=1e-6)
    np.testing.assert_allclose(a.covariances, b.covariances, rtol=1e-12)
    np.testing.assert_allclose(a.means, b.means, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_blocks_holding_nan_are_left_to_the_missing_value_estep(covariance_type, weighted,
                                                                 dtype):
    """Each E-step thread checks its own blocks for NaN: a block holding one is left out
    and its rows go through the missing-value E-step (its complete rows through the fast
    one). The statistics equal the sum of the complete rows' and the incomplete rows'
    statistics, whatever the block size and the threads."""
    from concurrent.futures import ThreadPoolExecutor

    K, D, N = 3, 4, 400
    params = _random_parameters(covariance_type, K, D, seed=21).astype(dtype)
    rng = np.random.default_rng(22)
    X = rng.normal(0, 2.0, (N, D)).astype(dtype)
    sw = rng.uniform(0, 4, N) if weighted else None
    holes = np.zeros(N, bool)
    holes[[3, 4, 150, 151, 152, 399]] = True  # in a few blocks of 16 rows, not all
    X[holes, rng.integers(0, D, holes.sum())] = np.nan
    complete = block_statistics(X[~holes], params, None if sw is None else sw[~holes])
    incomplete = block_statistics(X[holes], params, None if sw is None else sw[holes])
    expected = complete + incomplete
    rtol = 1e-10 if dtype == np.float64 else 1e-5
    for block_size, threads in ((16, 1), (16, 2), (1000, 1), (1, 2)):
        with ThreadPoolExecutor(threads) as pool:
            got = block_statistics(X, params, sw, block_size=block_size, executor=pool)
        _assert_stats_equal(got, expected, rtol=rtol)
        assert np.isfinite(got.s2).all() and np.isfinite(got.log_likelihood)


@settings(PROPERTY_SETTINGS, max_examples=200)
@given(
    seed=st.integers(0, 2**16),
    covariance_type=st.sampled_from(COVARIANCE_TYPES),
    n_samples=st.integers(2, 120),
    cut_fraction=st.floats(0.0, 1.0),
    block_size=st.integers(1, 50),
    weighted=st.booleans(),
    offset=st.sampled_from([0.0, 1e3, -1e5]),
)
def test_block_statistics_additive_property(seed, covariance_type, n_samples, cut_fraction,
                                            block_size, weighted, offset):
    """Any split, any sub-block size, any data location: the parts add up to the whole."""
    rng = np.random.default_rng(seed)
    K, D = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    params = _random_parameters(covariance_type, K, D, seed=seed, offset=offset)
    X = offset + rng.normal(0, 2.0, (n_samples, D))
    sw = rng.uniform(0, 3, n_samples) if weighted else None
    cut = round(cut_fraction * (n_samples - 1)) + 1  # 1 .. n_samples
    whole = block_statistics(X, params, sw)
    first = block_statistics(X[:cut], params, None if sw is None else sw[:cut],
                             block_size=block_size)
    if cut == n_samples:
        _assert_stats_equal(first, whole, rtol=1e-10)
        return
    second = block_statistics(X[cut:], params, None if sw is None else sw[cut:],
                              block_size=block_size)
    _assert_stats_equal(first + second, whole, rtol=1e-10)


def test_block_statistics_weights_are_repeats():
    params = _random_parameters("full", 2, 3, seed=13)
    X = np.random.default_rng(14).normal(size=(40, 3))
    counts = np.random.default_rng(15).integers(0, 4, 40)
    _assert_stats_equal(block_statistics(X, params, counts.astype(float)),
                        block_statistics(np.repeat(X, counts, axis=0), params), rtol=1e-11)


def test_adding_statistics_of_other_parameters_fails():
    X = np.random.default_rng(16).normal(size=(30, 2))
    a = block_statistics(X, _random_parameters("full", 2, 2, seed=1))
    b = block_statistics(X, _random_parameters("full", 2, 2, seed=2))
    with pytest.raises(ValueError, match="same parameters"):
        a + b
    c = block_statistics(X, _random_parameters("diag", 2, 2, seed=1))
    with pytest.raises(ValueError, match="covariance types"):
        a + c


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fit_independent_of_block_size(covariance_type, dtype):
    X, _, _, _ = make_blobs(500, 3, 3, seed=17, dtype=dtype)
    kw = dict(n_components=3, covariance_type=covariance_type, tol=0, max_iter=15,
              **initial_parameters(X, 3, covariance_type))
    with pytest.warns(ConvergenceWarning):
        a = GaussianMixture(block_size=7, **kw).fit(X)
    with pytest.warns(ConvergenceWarning):
        b = GaussianMixture(**kw).fit(X)
    # float32 full fits run the quadratic mode, whose log-densities round to about
    # eps * (whitened distance from the centre)^2 ~ 1e-5 here: another summation order
    # moves the fitted precisions by up to that much, amplified by their conditioning.
    rtol = 1e-12 if dtype == np.float64 else (3e-4 if covariance_type == "full" else 2e-5)
    for name in ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype == dtype
        np.testing.assert_allclose(x, y, rtol=rtol, atol=rtol * np.max(np.abs(y)), err_msg=name)
    np.testing.assert_allclose(a.lower_bounds_, b.lower_bounds_, rtol=rtol)
    np.testing.assert_allclose(a.predict_proba(X), b.predict_proba(X), atol=rtol)
    # default init too (k-means block by block)
    c = GaussianMixture(3, covariance_type=covariance_type, random_state=0, block_size=7).fit(X)
    d = GaussianMixture(3, covariance_type=covariance_type, random_state=0).fit(X)
    assert c.lower_bound_ == pytest.approx(d.lower_bound_, rel=10 * rtol)


def test_auto_block_size_bounds():
    assert 256 <= gstats.auto_block_size(2, 8) <= 65536
    assert 256 <= gstats.auto_block_size(512, 64) <= 65536
    assert gstats.auto_block_size(32, 16, 4) >= gstats.auto_block_size(32, 16, 8)


# --------------------------------------------------------------------------------------
# The E-step's modes: the quadratic features, their guards, statistics about other shifts
# --------------------------------------------------------------------------------------
def _estep(X, params, dtype, exact=False):
    estep = make_estep(params, np.dtype(dtype), exact)
    estep.accumulate(np.asarray(X, dtype=dtype))
    return estep


@pytest.mark.parametrize("n_features", range(1, 10))
def test_quadratic_feature_pairs_cover_the_upper_triangle_once(n_features):
    rows, cols = _feature_pairs(n_features)
    pairs = sorted(tuple(sorted(p)) for p in zip(rows.tolist(), cols.tolist(), strict=True))
    expected = [(i, j) for i in range(n_features) for j in range(i, n_features)]
    assert pairs == expected


@pytest.mark.parametrize("covariance_type", ["full", "diag", "spherical"])
@pytest.mark.parametrize("weighted", [False, True])
def test_quadratic_mode_matches_exact_mode(covariance_type, weighted):
    """Moments about the centre (quadratic) equal moments about the means (exact)."""
    K, D, N = 4, 5, 400
    params = _random_parameters(covariance_type, K, D, seed=21, offset=50.0)
    rng = np.random.default_rng(22)
    X = 50.0 + rng.normal(0, 2.0, (N, D))
    sw = rng.uniform(0, 3, N) if weighted else None
    quadratic = make_estep(params, np.dtype(np.float64))
    assert quadratic.mode == "quadratic"
    quadratic.accumulate(X, sw)
    if covariance_type == "full":
        exact = make_estep(params, np.dtype(np.float64), exact=True)
        assert exact.mode == "stacked"
        exact.accumulate(X, sw)
        reference = gstats._statistics(exact, params)
    else:  # the naive statistics of the naive responsibilities
        p, resp = naive_posterior(X, params.weights, params.means,
                                  _full(params.covariances, covariance_type, K, D))
        reference = gstats.statistics_from_responsibilities(
            X, resp, covariance_type, shift=X[0], sample_weight=sw)
        reference.log_likelihood = float(np.sum(np.log(p) * (1.0 if sw is None else sw)))
    got = gstats._statistics(quadratic, params)
    assert not np.array_equal(got.shift, reference.shift)
    _assert_stats_equal(got.moved_to(reference.shift), reference, rtol=1e-10)
    new_a, new_b = m_step(got), m_step(reference)
    np.testing.assert_allclose(new_a.covariances, new_b.covariances, rtol=1e-9)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("block_size", [None, 96 * 3, 250])
def test_quadratic_mode_with_many_features_in_pieces(dtype, block_size):
    """D = 16: the products run on pieces of rows (plus a remainder); same statistics."""
    K, D, N = 6, 16, 1000
    params = _random_parameters("full", K, D, seed=31)
    X = np.random.default_rng(32).normal(0, 1.5, (N, D)).astype(dtype)
    fast = make_estep(params.astype(dtype), np.dtype(dtype))
    assert fast.mode == "quadratic" and fast.coef.shape[1] >= 128
    got = block_statistics(X, params.astype(dtype), block_size=block_size)
    exact = make_estep(params, np.dtype(np.float64), exact=True)
    exact.accumulate(X.astype(np.float64))
    reference = gstats._statistics(exact, params)
    rtol = 1e-10 if dtype == np.float64 else 2e-4
    _assert_stats_equal(got.moved_to(reference.shift), reference, rtol=rtol)
    np.testing.assert_allclose(m_step(got).covariances, m_step(reference).covariances,
                               rtol=rtol, atol=rtol)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_statistics_about_different_shifts_add_up(covariance_type):
    """moved_to is exact algebra: blocks computed about other points still add up."""
    K, D, N = 3, 3, 200
    params = _random_parameters(covariance_type, K, D, seed=23)
    X = np.random.default_rng(24).normal(0, 2.0, (N, D))
    whole = block_statistics(X, params)
    first = block_statistics(X[:90], params)
    second = block_statistics(X[90:], params)
    other_shift = np.random.default_rng(25).normal(0, 5.0, (K, D))
    moved = second.moved_to(other_shift)
    np.testing.assert_array_equal(moved.shift, other_shift)
    _assert_stats_equal(first + moved, whole, rtol=1e-11)
    _assert_stats_equal(moved.moved_to(second.shift), second, rtol=1e-11)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_quadratic_mode_only_within_its_reach(dtype):
    """A mean far (in its own standard deviations) from the others: exact modes."""
    K, D = 3, 4
    rng = np.random.default_rng(26)
    means = rng.normal(0, 1.0, (K, D))
    means[0] += {np.float64: 5e4, np.float32: 500.0}[dtype]  # 1e3 / 40 reach, overstepped
    cov = np.stack([np.eye(D)] * K)
    params = MixtureParameters.from_covariances("full", np.full(K, 1 / K), means, cov)
    mode = make_estep(params, np.dtype(dtype)).mode
    assert mode == {np.float64: "stacked", np.float32: "centred"}[dtype]
    params.means[0] -= means[0] - 10.0  # now well within the reach
    assert make_estep(params, np.dtype(dtype)).mode == "quadratic"
    # too few components for the features to pay: whitening
    wide = MixtureParameters.from_covariances("full", np.ones(1), np.zeros((1, 8)), np.eye(8)[None])
    assert make_estep(wide, np.dtype(dtype)).mode == "stacked"


@pytest.mark.parametrize("covariance_type", ["full", "diag", "spherical"])
def test_float32_block_whose_moments_cancel_is_redone(covariance_type):
    """Data 30 sd from every mean: float32 moments about the centre would lose 1e3 x eps."""
    K, D, N = 2, 3, 500
    means = np.array([[-1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    cov = {"full": np.stack([np.eye(D)] * K), "diag": np.ones((K, D)),
           "spherical": np.ones(K)}[covariance_type]
    params = MixtureParameters.from_covariances(covariance_type, np.full(K, 0.5), means, cov)
    centre = np.array([30.0, 5.0, 0.0])
    X = (np.random.default_rng(27).normal(0, 0.5, (N, D)) + centre).astype(np.float32)
    fast = _estep(X, params.astype(np.float32), np.float32)
    assert fast.mode == "quadratic" and fast.dtype == np.float32
    assert not fast.accurate()
    got = block_statistics(X, params.astype(np.float32))
    reference = block_statistics(X.astype(np.float64), params)
    _assert_stats_equal(got.moved_to(reference.shift), reference, rtol=1e-9)
    new, ref = m_step(got), m_step(reference)
    np.testing.assert_allclose(new.covariances, ref.covariances, rtol=1e-9)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("covariance_type", ["full", "diag", "spherical"])
def test_quadratic_mode_rows_far_from_every_component(covariance_type, dtype):
    """Every term underflows for far rows: those rows are redone with the row maximum."""
    K, D = 3, 2
    params = _random_parameters(covariance_type, K, D, seed=28).astype(dtype)
    X = np.array([[0.1, 0.2], [300.0, -200.0], [-5e3, 40.0], [1.0, -1.0]], dtype=dtype)
    estep = make_estep(params, np.dtype(dtype))
    assert estep.mode == "quadratic"
    log_prob, _ = estep.log_prob(X)
    resp, log_norm = estep.normalize(log_prob.copy())
    p64 = params.astype(np.float64)
    _, naive_resp = naive_posterior(X.astype(np.float64)[[0, 3]], p64.weights, p64.means,
                                    _full(p64.covariances, covariance_type, K, D))
    exact = make_estep(p64, np.dtype(np.float64), exact=covariance_type == "full")
    lp64, _ = exact.log_prob(X.astype(np.float64))
    resp64, log_norm64 = exact.normalize(lp64)
    assert np.all(np.isfinite(log_norm)) and np.all(np.isfinite(resp))
    np.testing.assert_allclose(resp.sum(axis=0), 1.0, rtol=1e-6)
    np.testing.assert_allclose(log_norm, log_norm64, rtol=1e-5 if dtype == np.float32 else 1e-9)
    np.testing.assert_allclose(resp[:, [0, 3]].T, naive_resp, atol=1e-5)
    np.testing.assert_allclose(resp, resp64, atol=1e-4 if dtype == np.float32 else 1e-9)
    # Half the rows fell back: the E-step now takes the per-row maximum everywhere.
    assert estep._per_row_maximum
    again_resp, again_log_norm = estep.normalize(estep.log_prob(X)[0])
    np.testing.assert_allclose(again_log_norm, log_norm, rtol=1e-6)
    np.testing.assert_allclose(again_resp, resp, atol=1e-6)


def test_float32_predictions_use_an_exact_mode():
    """Returned float32 densities do not carry the quadratic mode's rounding."""
    X, _, _, _ = make_blobs(300, 3, 3, seed=29, spread=6.0)
    gm = GaussianMixture(3, random_state=0).fit(X)
    X32 = X.astype(np.float32)
    reference = gm.score_samples(X32.astype(np.float64))
    np.testing.assert_allclose(gm.score_samples(X32), reference, rtol=2e-6)
    np.testing.assert_allclose(gm.predict_proba(X32), gm.predict_proba(X32.astype(np.float64)),
                               atol=1e-5)


def test_float64_exp_arguments_below_the_underflow_are_harmless():
    """Raising arguments below -700 to -700 changes no float64 responsibility."""
    log_prob = np.array([[0.0, -10.0, -800.0], [-750.0, -10.5, -801.0], [-2e4, -3000.0, -0.5]])
    clipped = log_prob.copy()
    _normalize(clipped)
    exact = np.exp(log_prob - log_prob.max(axis=0))
    exact /= exact.sum(axis=0)
    np.testing.assert_allclose(clipped, exact, rtol=1e-15, atol=1e-300)


# --------------------------------------------------------------------------------------
# EM never lowers the log-likelihood (reg_covar=0), or by at most the reg_covar bound
# --------------------------------------------------------------------------------------
# A few hundred fixed examples (about 10 s in all), float64 and float32.
EM_PROPERTY_SETTINGS = settings(PROPERTY_SETTINGS, max_examples=300)
# Rounding slack of one step, relative to max(|bound|, 1): the bound is a sum of
# log-densities accumulated in float64 from log-densities computed in the working dtype.
# Measured worst dips with reg_covar=0 over 800 random draws of these parameters:
# float64 7.3e-13 (the quadratic-feature E-step rounds like eps * (distance / sd)^2),
# float32 2.3e-6 (float32 log-densities carry ~1e-7 relative rounding that does not cancel
# between two iterations). The float64 slack was 1e-12 with 25 examples.
STEP_SLACK = {np.float64: 2e-12, np.float32: 1e-5}


def _regularisation_gap(stats, new, reg_covar):
    """How far below the exact M-step's Q the regularised M-step's Q may lie, per sample.

    With s_kj the eigenvalues (full, tied), variances (diag) or variance (spherical, D
    times) of the unregularised covariance, and u = reg_covar / s_kj, the regularised M-step
    (covariance + reg_covar) loses (1 / 2W) sum_k N_k sum_j [log(1 + u) - u / (1 + u)]
    of Q against the exact maximiser, and no more (weights and means are exact). EM's
    inequality L(new) - L(old) >= Q(new) - Q(old) >= -(this gap) then bounds every dip of
    lower_bounds_; it is about D (reg_covar / s)^2 / 4, and 0 for reg_covar=0.
    """
    t, D = stats.covariance_type, stats.shift.shape[1]
    cov = np.asarray(new.covariances, dtype=np.float64)
    if t in ("full", "tied"):
        s = np.linalg.eigvalsh(cov - reg_covar * np.eye(D))
    else:
        s = cov - reg_covar
    if reg_covar == 0:
        return 0.0
    assert np.all(s > 0), s
    u = reg_covar / s
    g = np.log1p(u) - u / (1 + u)
    if t == "tied":
        per_component = np.full(stats.nk.shape, np.sum(g))
    elif t == "spherical":
        per_component = D * g
    else:
        per_component = np.sum(g, axis=1)
    return float(np.sum(stats.nk * per_component) / (2 * stats.weight_sum))


@EM_PROPERTY_SETTINGS
@given(
    seed=st.integers(0, 2**16),
    covariance_type=st.sampled_from(COVARIANCE_TYPES),
    n_features=st.integers(1, 4),
    n_components=st.integers(1, 4),
    weighted=st.booleans(),
    reg_covar=st.sampled_from([0.0, 1e-6, 1e-3, 1e-1]),
    dtype=st.sampled_from([np.float64, np.float32]),
)
def test_em_never_lowers_the_log_likelihood(seed, covariance_type, n_features, n_components,
                                            weighted, reg_covar, dtype):
    """lower_bounds_ is non-decreasing with reg_covar=0, and dips by at most the
    regularisation gap (see _regularisation_gap) with reg_covar > 0, up to rounding.

    The history is recomputed step by step with block_statistics and m_step, the functions
    fit iterates, and checked equal to the estimator's own lower_bounds_. Enough points per
    component and feature keep every covariance non-singular.
    """
    rng = np.random.default_rng(seed)
    n_samples = 25 * n_components * (n_features + 1)
    X, _, _, _ = make_blobs(n_samples, n_features, n_components, seed=seed,
                            spread=float(rng.uniform(0.5, 5)))
    X = (X * rng.uniform(0.1, 10, n_features)).astype(dtype)
    sw = rng.uniform(0.2, 3.0, n_samples) if weighted else None
    init = initial_parameters(X, n_components, covariance_type, seed=seed + 1,
                              scale=float(np.var(X)))
    n_iter = 12
    gm = GaussianMixture(n_components, covariance_type=covariance_type, reg_covar=reg_covar,
                         tol=0, max_iter=n_iter, **init)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", DegenerateFitWarning)
        warnings.simplefilter("ignore", RegularizationWarning)  # reg_covar up to 0.1 here
        try:
            gm.fit(X, sample_weight=sw)
        except ValueError as exc:  # a component emptied out: no longer an EM question
            assume("not positive definite" not in str(exc))
            raise
    bounds = np.asarray(gm.lower_bounds_)
    assert len(bounds) == n_iter and np.all(np.isfinite(bounds))

    params = MixtureParameters.from_precisions(
        covariance_type, init["weights_init"], init["means_init"], init["precisions_init"]
    ).astype(dtype)
    history, gaps = [], []
    for _ in range(n_iter):
        stats = block_statistics(X, params, sw)
        history.append(stats.mean_log_likelihood)
        params = m_step(stats, reg_covar=reg_covar, dtype=dtype)
        gaps.append(_regularisation_gap(stats, params, reg_covar))
    if dtype == np.float64:
        np.testing.assert_allclose(history, bounds, rtol=1e-12, atol=1e-12)
    # (float32: fit and this loop round differently, e.g. the cast of the weights, and EM's
    # fast moves amplify that to ~1e-5 on the way; both histories are checked.)
    gaps = np.asarray(gaps)
    for name, values in (("fit", bounds), ("loop", np.asarray(history))):
        slack = STEP_SLACK[dtype] * np.maximum(np.abs(values[1:]), 1.0)
        steps = np.diff(values)
        assert np.all(steps >= -(gaps[:-1] + slack)), (name, steps, gaps, values)
    slack = STEP_SLACK[dtype] * np.maximum(np.abs(bounds[1:]), 1.0)
    # and the final parameters are at least as good as the last E-step's
    final = np.average(gm.score_samples(X).astype(np.float64), weights=sw)
    assert final >= bounds[-1] - gaps[-1] - slack[-1]


def test_regularisation_gap_is_reached():
    """The bound above is not vacuous: with a large reg_covar the bound does dip, and
    by no more than the gap (one dimension, two components, variances about 0.01)."""
    rng = np.random.default_rng(3)
    X = np.r_[rng.normal(0, 0.1, (200, 1)), rng.normal(1, 0.1, (200, 1))]
    params = MixtureParameters.from_covariances(
        "diag", np.array([0.5, 0.5]), np.array([[0.0], [1.0]]), np.full((2, 1), 0.01))
    stats = block_statistics(X, params)
    new = m_step(stats, reg_covar=0.5)
    gap = _regularisation_gap(stats, new, 0.5)
    step = block_statistics(X, new).mean_log_likelihood - stats.mean_log_likelihood
    assert step < 0  # a real decrease
    assert step >= -gap
