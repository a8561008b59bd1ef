"""The E-step classes (gaussmix._estep), and two defects from scikit-learn's own test suite.

* ``test_gaussian_mixture_setting_best_params`` (scikit-learn issue 18216): spherical,
  ``reg_covar=0``, components collapsing onto single rows far from the mixture mean. The
  quadratic moments about the mixture mean gave a variance of -1.85e-17 by cancellation.
* ``test_score`` in float32: ``score(X)`` equals ``score_samples(X).mean()`` to 7 decimals.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from conftest import COVARIANCE_TYPES, random_precisions
from gaussmix import (
    ConvergenceWarning,
    DegenerateFitWarning,
    GaussianMixture,
    MixtureParameters,
    families,
)
from gaussmix import stats as gstats
from gaussmix._estep import family_forms, make_estep


def _posterior(X, weights, means, precisions):
    """Responsibilities (N, K) by explicit per-component Gaussians, in log space."""
    D = X.shape[1]
    log_joint = np.empty((X.shape[0], len(weights)))
    for k, (w, m, p) in enumerate(zip(weights, means, precisions, strict=True)):
        diff = X - m
        _, logdet = np.linalg.slogdet(p)
        log_joint[:, k] = (np.log(w) + 0.5 * logdet - 0.5 * D * np.log(2 * np.pi)
                           - 0.5 * np.einsum("nd,de,ne->n", diff, p, diff))
    top = log_joint.max(axis=1, keepdims=True)
    joint = np.exp(log_joint - top)
    return joint / joint.sum(axis=1, keepdims=True), np.log(joint.sum(axis=1)) + top[:, 0]


def _dense_precisions(params):
    K, D = params.means.shape
    L = params.precisions_cholesky
    t = params.covariance_type
    if t == "full":
        return L @ np.swapaxes(L, 1, 2)
    if t == "tied":
        return np.broadcast_to(L @ L.T, (K, D, D))
    if t == "diag":
        return np.stack([np.diag(v**2) for v in L])
    return np.stack([np.eye(D) * v**2 for v in L])


def _parameters(covariance_type, K, D, seed, offset=0.0):
    rng = np.random.default_rng(seed)
    weights = rng.uniform(0.5, 1.5, K)
    means = offset + rng.normal(0, 2.0, (K, D))
    P = random_precisions(covariance_type, K, D, rng)
    return MixtureParameters.from_precisions(covariance_type, weights / weights.sum(), means, P)


# --------------------------------------------------------------------------------------
# The classes behind make_estep
# --------------------------------------------------------------------------------------
# (covariance_type, dtype, exact, offset of the means) -> the class make_estep picks
CHOICES = [
    ("full", np.float64, False, 0.0, "quadratic"),
    ("full", np.float64, True, 0.0, "stacked"),
    ("full", np.float32, True, 0.0, "stacked"),
    ("full", np.float32, True, 1e4, "centred"),
    ("tied", np.float64, False, 0.0, "pooled"),
    ("tied", np.float32, False, 0.0, "centred"),
    ("diag", np.float64, False, 0.0, "quadratic"),
    ("diag", np.float64, True, 0.0, "residual"),
    ("spherical", np.float32, False, 0.0, "quadratic"),
    ("spherical", np.float32, True, 0.0, "residual"),
]


@pytest.mark.parametrize(("covariance_type", "dtype", "exact", "offset", "mode"), CHOICES)
@pytest.mark.parametrize("weighted", [False, True])
def test_every_estep_class_gives_the_naive_statistics(covariance_type, dtype, exact, offset,
                                                      mode, weighted):
    """Each class's log-densities, responsibilities and moments equal the textbook ones."""
    K, D, N = 4, 3, 500
    params = _parameters(covariance_type, K, D, seed=3, offset=0.0)
    if offset:  # one mean far away, in its own standard deviations
        params.means[0] += offset
    rng = np.random.default_rng(4)
    X = params.means[rng.integers(0, K, N)] + rng.normal(0, 1.0, (N, D))
    sw = rng.uniform(0, 2, N) if weighted else None
    estep = make_estep(params.astype(dtype), np.dtype(dtype), exact)
    assert estep.mode == mode
    assert (estep.precision_form, estep.statistic) == family_forms(params)
    estep.accumulate(X.astype(dtype), None if sw is None else sw.astype(dtype))
    got = gstats._statistics(estep, params)
    Xr = X.astype(dtype).astype(np.float64)
    resp, log_p = _posterior(Xr, params.weights, params.means, _dense_precisions(params))
    reference = gstats.statistics_from_responsibilities(
        Xr, resp, covariance_type, shift=Xr[0], sample_weight=sw)
    reference.log_likelihood = float(np.sum(log_p * (1.0 if sw is None else sw)))
    moved = got.moved_to(reference.shift)
    rtol = 1e-9 if dtype == np.float64 else 2e-4
    for name in ("nk", "s1", "s2"):
        x, y = getattr(moved, name), getattr(reference, name)
        np.testing.assert_allclose(x, y, rtol=rtol, atol=rtol * np.max(np.abs(y)), err_msg=name)
    assert got.log_likelihood == pytest.approx(reference.log_likelihood, rel=rtol)


@pytest.mark.parametrize("n_features", [23, 24, 50, 100])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_stacked_whitening_in_triangular_bands(n_features, dtype):
    """Many features: L_k^T's rows in 1 to 8 bands, each product on a prefix of the block.

    The log-densities and moments equal the textbook ones (and the bands do split).
    """
    K, D, N = 3, n_features, 400
    params = _parameters("full", K, D, seed=8)
    rng = np.random.default_rng(9)
    X = params.means[rng.integers(0, K, N)] + rng.normal(0, 1.0, (N, D))
    estep = make_estep(params.astype(dtype), np.dtype(dtype), exact=True)
    assert estep.mode == "stacked"
    assert len(estep.bands) == {23: 1, 24: 2, 50: 4, 100: 8}[D]
    log_dens = estep.log_prob(X.astype(dtype))[0].copy()
    estep.accumulate(X.astype(dtype))
    Xr = X.astype(dtype).astype(np.float64)
    precisions = _dense_precisions(params)
    resp, _ = _posterior(Xr, params.weights, params.means, precisions)
    for k in range(K):
        diff = Xr - params.means[k]
        expected = (np.log(params.weights[k]) + 0.5 * np.linalg.slogdet(precisions[k])[1]
                    - 0.5 * D * np.log(2 * np.pi)
                    - 0.5 * np.einsum("nd,de,ne->n", diff, precisions[k], diff))
        rtol = 1e-10 if dtype == np.float64 else 1e-4
        np.testing.assert_allclose(log_dens[k], expected, rtol=rtol)
    reference = gstats.statistics_from_responsibilities(Xr, resp, "full", shift=Xr[0])
    got = gstats._statistics(estep, params).moved_to(reference.shift)
    rtol = 1e-9 if dtype == np.float64 else 1e-3
    for name in ("nk", "s1", "s2"):
        x, y = getattr(got, name), getattr(reference, name)
        np.testing.assert_allclose(x, y, rtol=rtol, atol=rtol * np.max(np.abs(y)), err_msg=name)


def test_estep_forms_cover_every_covariance_type():
    """Every registered family names a whitening and a statistic the E-step implements."""
    forms = {"full", "shared_full", "diagonal", "scalar"}
    statistics = {"full", "pooled", "diagonal", "trace"}
    seen = {(f.precision_form, f.statistic) for f in families.all_families()}
    assert {f for f, _ in seen} <= forms and {s for _, s in seen} <= statistics
    assert {(f, s) for f, s in seen if f in forms} >= {
        ("full", "full"), ("shared_full", "pooled"), ("diagonal", "diagonal"),
        ("scalar", "trace"),
    }


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_merged_esteps_equal_one_estep(covariance_type):
    """merge() adds every accumulator: two threads' E-steps give one E-step's moments."""
    params = _parameters(covariance_type, 3, 4, seed=5)
    X = np.random.default_rng(6).normal(0, 2.0, (300, 4))
    for exact in (False, True):
        one, a, b = (make_estep(params, np.dtype(np.float64), exact) for _ in range(3))
        one.accumulate(X)
        a.accumulate(X[:120])
        b.accumulate(X[120:])
        a.merge(b)
        for x, y in zip(a.moments(), one.moments(), strict=True):
            np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-12 * np.max(np.abs(y)))
        assert a.log_likelihood == pytest.approx(one.log_likelihood, rel=1e-13)


# --------------------------------------------------------------------------------------
# scikit-learn issue 18216: no negative variance by cancellation
# --------------------------------------------------------------------------------------
MEANS_18216 = np.array([
    [0.670637869618158, 0.21038256107384043, 0.12892629765485303],
    [0.09394051075844147, 0.5759464955561779, 0.929296197576212],
    [0.5033230372781258, 0.9569852381759425, 0.08654043447295741],
    [0.18578301420435747, 0.5531158970919143, 0.19388943970532435],
    [0.4548589928173794, 0.35182513658825276, 0.568146063202464],
    [0.609279894978321, 0.7929063819678847, 0.9620097270828052],
])
PRECISIONS_18216 = np.array([999999.999604483, 999999.9990869573, 553.7603944542167,
                             204.78596008931834, 15.867423501783637, 85.4595728389735])
WEIGHTS_18216 = np.array([0.03333333333333341, 0.03333333333333341, 0.06666666666666674,
                          0.06666666666666674, 0.7000000000000001, 0.10000000000000007])


def test_sklearn_issue_18216_setting_best_params():
    """scikit-learn's test_gaussian_mixture_setting_best_params: the fit does not raise.

    Components 0 and 1 (standard deviation 1e-3) each take one row: their new variance is
    that of a single point, 0 up to the responsibilities of the other rows (below 1e-300).
    About the mixture mean the quadratic moments gave -1.85e-17 (E[u^2] - E[u]^2 with
    E[u^2] ~ 0.1); the redo takes them about the new means, sums of non-negative terms.
    """
    rnd = np.random.RandomState(0)
    X = rnd.uniform(size=(30, 3))
    gm = GaussianMixture(covariance_type="spherical", reg_covar=0, means_init=MEANS_18216,
                         weights_init=WEIGHTS_18216, precisions_init=PRECISIONS_18216,
                         random_state=rnd, n_components=6, max_iter=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", DegenerateFitWarning)
        gm.fit(X)
    assert not gm.converged_
    for attr in ("weights_", "means_", "covariances_", "precisions_cholesky_", "n_iter_",
                 "lower_bound_", "lower_bounds_"):
        assert hasattr(gm, attr)
    # The textbook M-step from the textbook responsibilities (two-pass variances).
    precisions = np.stack([np.eye(3) * p for p in PRECISIONS_18216])
    resp, _ = _posterior(X, WEIGHTS_18216, MEANS_18216, precisions)
    nk = resp.sum(axis=0)
    means = resp.T @ X / nk[:, None]
    variances = np.array([resp[:, k] @ np.sum((X - means[k]) ** 2, axis=1) for k in range(6)])
    variances /= 3 * nk
    assert np.all(gm.covariances_ > 0)
    np.testing.assert_allclose(gm.means_, means, rtol=1e-12)
    np.testing.assert_allclose(gm.covariances_[2:], variances[2:], rtol=1e-10)
    # A single row's variance: zero but for rows of responsibility below 1e-300.
    assert np.all(variances[:2] < 1e-290) and np.all(gm.covariances_[:2] < 1e-290)


@pytest.mark.parametrize("covariance_type", ["diag", "spherical"])
def test_collapsing_component_far_from_the_centre_is_redone_exactly(covariance_type):
    """float64 diag/spherical: the quadratic moments of a collapsing component cancel.

    Component 1 (sd 0.1, 40 from the centre) takes three rows 1e-7 apart: its new variance,
    ~1e-14, is below the quadratic moments' rounding, eps E[u^2] ~ 4e-13. The check (new
    variance above 1024 eps E[u^2]) sends the iteration to the residual E-step about the
    new means: the variances are non-negative sums, equal to the two-pass ones.
    """
    rng = np.random.default_rng(7)
    far = np.array([40.05, -30.05]) + rng.normal(0, 1e-7, (3, 2))
    X = np.vstack([rng.normal(0, 1.0, (300, 2)), far])
    means = np.array([[0.0, 0.0], [40.0, -30.0]])
    cov = {"diag": np.array([[1.0, 1.0], [1e-2, 1e-2]]), "spherical": np.array([1.0, 1e-2])}
    params = MixtureParameters.from_covariances(
        covariance_type, np.array([0.99, 0.01]), means, cov[covariance_type])
    fast = make_estep(params, np.dtype(np.float64))
    fast.accumulate(X)
    assert fast.mode == "quadratic" and not fast.accurate()
    stats = gstats.block_statistics(X, params)
    resp, _ = _posterior(X, params.weights, params.means, _dense_precisions(params))
    nk = resp.sum(axis=0)
    new_means = resp.T @ X / nk[:, None]
    squares = np.stack([resp[:, k] @ (X - new_means[k]) ** 2 for k in range(2)]) / nk[:, None]
    expected = squares if covariance_type == "diag" else squares.mean(axis=1)
    new = gstats.m_step(stats, reg_covar=0.0)
    assert np.all(new.covariances > 0)
    assert np.all(expected[1] < 1e-13)
    np.testing.assert_allclose(new.means, new_means, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(new.covariances[0], expected[0], rtol=1e-12)
    # residuals of 1e-7 next to coordinates of 40 (rounding 7e-15): 1e-7 relative
    np.testing.assert_allclose(new.covariances[1], expected[1], rtol=1e-6)


# --------------------------------------------------------------------------------------
# scikit-learn's test_score in float32
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sklearn_score_equals_mean_of_score_samples(dtype):
    """scikit-learn's test_score: the same data (RandomData(rng, scale=7), full, 2 x 2)."""
    make_spd_matrix = pytest.importorskip("sklearn.datasets").make_spd_matrix
    rng = np.random.RandomState(0)
    K, D, N = 2, 2, 200
    weights = rng.rand(K).astype(dtype)
    weights = weights / weights.sum()
    means = rng.rand(K, D).astype(dtype) * 7
    rng.rand(K)  # the spherical, diag and tied covariances of RandomData, unused here
    rng.rand(K, D)
    make_spd_matrix(D, random_state=rng)
    covariances = [make_spd_matrix(D, random_state=rng).astype(dtype) * 0.5 for _ in range(K)]
    draws = np.random.RandomState(0)  # generate_data's own
    X = np.vstack([draws.multivariate_normal(m, c, int(np.round(w * N))).astype(dtype)
                   for w, m, c in zip(weights, means, covariances, strict=True)])
    assert X.dtype == dtype
    gm = GaussianMixture(n_components=K, n_init=1, max_iter=1, reg_covar=0, random_state=rng,
                         covariance_type="full")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gm.fit(X)
    assert gm.means_.dtype == dtype and gm.covariances_.dtype == dtype
    samples = gm.score_samples(X)
    assert samples.dtype == dtype
    np.testing.assert_almost_equal(gm.score(X), samples.mean(), decimal=7)
    # and still the mean log-density, to float32 rounding of a sum of N terms
    exact = np.mean(samples, dtype=np.float64)
    assert gm.score(X) == pytest.approx(exact, rel=10 * float(np.finfo(dtype).eps))


@pytest.mark.parametrize("separation", [1e3, 1e6, 1e7])
def test_tied_scatter_of_far_apart_clusters_does_not_cancel(separation):
    """The shared whitening's expanded scatter (about the mixture mean) loses eps * s^2 for
    clusters s standard deviations apart (relative error 2e-2 at 1e7 before the guard);
    beyond 1e4 sd the iteration is redone about the means, as exact as the full family."""
    from gaussmix.stats import MixtureParameters, block_statistics, m_step

    rng = np.random.default_rng(0)
    n = 2000
    X = rng.normal(size=(2 * n, 2)) @ np.array([[1.0, 0.0], [0.5, 0.2]])
    X[:n, 0] += separation
    X[n:, 0] -= separation
    means = np.array([X[:n].mean(0), X[n:].mean(0)])
    exact = ((X[:n] - means[0]).T @ (X[:n] - means[0])
             + (X[n:] - means[1]).T @ (X[n:] - means[1])) / (2 * n)
    params = MixtureParameters.from_covariances("tied", np.array([0.5, 0.5]), means, exact)
    new = m_step(block_statistics(X, params), reg_covar=0.0)
    assert np.abs(new.covariances - exact).max() / np.abs(exact).max() < 1e-10


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical", "EII", "VVE"])
def test_an_empty_component_keeps_its_mean(covariance_type):
    """A component no row belongs to keeps its mean through an EM step, in every family
    (the quadratic E-step takes its moments about the mixture mean, which used to become
    the empty component's mean: an arbitrary point inside the data)."""
    from gaussmix.stats import MixtureParameters, block_statistics, m_step

    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(0, 1, (300, 2)), rng.normal(5, 1, (300, 2))])
    full = MixtureParameters.from_covariances(
        "full", np.full(3, 1 / 3), np.array([[0.0, 0.0], [5.0, 5.0], [1e4, 1e4]]),
        np.stack([np.eye(2)] * 3),
    )
    from gaussmix import families

    family = families.get(covariance_type)
    cov = family.from_full(full.covariances, full.weights)
    params = MixtureParameters.from_covariances(family.name, full.weights, full.means, cov)
    new = m_step(block_statistics(X, params), reg_covar=1e-6, previous=params)
    np.testing.assert_array_equal(new.means[2], [1e4, 1e4])
    assert np.all(np.isfinite(new.covariances))


@pytest.mark.parametrize("n_features", [5, 47, 48, 100, 129])
def test_inverse_of_triangular_factors_by_blocks(n_features):
    """The whitening maps its moments back with L_k^-1, inverted by triangular blocks from
    48 features on: equal to the general inverse, and L^-1 L = I to rounding. A factor
    that is not triangular takes the general inverse."""
    from gaussmix._estep import _inverse_factor

    D = n_features
    rng = np.random.default_rng(D)
    a = rng.normal(size=(3, D, D))
    precisions = a @ np.swapaxes(a, 1, 2) / D + 1e-2 * np.eye(D)
    upper = np.swapaxes(np.linalg.cholesky(precisions), 1, 2)  # L, L L^T a precision
    got = _inverse_factor(upper)
    assert np.all(np.tril(got, -1) == 0.0)
    np.testing.assert_allclose(got, np.linalg.inv(upper), rtol=0,
                               atol=1e-12 * np.abs(got).max())
    np.testing.assert_allclose(got @ upper, np.broadcast_to(np.eye(D), (3, D, D)), atol=1e-12)
    full = upper + 1e-3 * np.tril(rng.normal(size=(3, D, D)), -1)
    np.testing.assert_allclose(_inverse_factor(full), np.linalg.inv(full), rtol=1e-12,
                               atol=1e-12 * np.abs(np.linalg.inv(full)).max())


@pytest.mark.parametrize("shares", [None, (0.7, 0.1, 0.1, 0.1)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_scatter_from_the_rows_each_component_holds(dtype, shares, monkeypatch):
    """Separated components: each one's scatter is taken from the rows where it holds a
    responsibility above 1e-30 of the row's largest, its whitened columns gathered. The
    moments equal those of every row (the all-rows path, forced) and the naive ones; a
    block where the components overlap takes the all-rows path, with the same result.
    With ``shares``, one component holds most rows of every block: its scatter takes
    the whitened residuals at hand, the others' their gathered rows, in one block."""
    import gaussmix._estep as estep_module

    K, D, N = 4, 30, 600
    params = _parameters("full", K, D, seed=31)
    spread = params.means + 40.0 * np.eye(K, D)  # components tens of sd apart
    params = MixtureParameters.from_covariances("full", params.weights, spread,
                                                params.covariances)
    rng = np.random.default_rng(32)
    labels = rng.integers(0, K, N) if shares is None else rng.choice(K, N, p=shares)
    if shares is not None:  # the mixed block: one component above _SPARSE_SHARE
        assert all(np.mean(labels[s : s + 128] == 0) > 0.45 for s in range(0, N, 128))
    X = (spread[labels] + rng.normal(0, 0.7, (N, D))).astype(dtype)
    X[:5] = spread.mean(axis=0)  # a few rows between the components

    def statistics():
        estep = make_estep(params.astype(dtype), np.dtype(dtype), exact=True)
        assert estep.mode == "stacked"
        for start in range(0, N, 128):
            estep.accumulate(X[start : start + 128])
        return gstats._statistics(estep, params)

    calls = []
    take = np.take
    monkeypatch.setattr(estep_module.np, "take", lambda *a, **k: calls.append(1) or take(*a, **k))
    gathered = statistics()
    assert calls, "the gathered path did not run"
    monkeypatch.setattr(estep_module, "_SPARSE_SHARE", -1.0)  # every block: all rows
    every_row = statistics()
    Xr = X.astype(np.float64)
    resp, _ = _posterior(Xr, params.weights, params.means, _dense_precisions(params))
    reference = gstats.statistics_from_responsibilities(Xr, resp, "full", shift=Xr[0])
    rtol = 1e-10 if dtype == np.float64 else 1e-4
    for got in (gathered, every_row):
        moved = got.moved_to(reference.shift)
        for name in ("nk", "s1", "s2"):
            x, y = getattr(moved, name), getattr(reference, name)
            np.testing.assert_allclose(x, y, rtol=rtol, atol=rtol * np.max(np.abs(y)),
                                       err_msg=name)
    tight = 1e-13 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(gathered.s2, every_row.s2, rtol=tight,
                               atol=tight * np.abs(every_row.s2).max())
