"""The covariance families (gaussmix.families): registry, counts, shapes, statistics, M-step.

Every expected value here is computed independently of the families' code: counts from
Celeux & Govaert's volume / shape / orientation decomposition (the formulas behind mclust's
``nVarParams``), covariances from the textbook weighted scatter of MATH.md.
"""

from __future__ import annotations

import doctest
import json
import warnings

import numpy as np
import pytest

from conftest import make_blobs
from gaussmix import ConvergenceWarning, GaussianMixture, families
from gaussmix.families import CovarianceFamily
from gaussmix.stats import statistics_from_responsibilities

NAMES = ("full", "tied", "diag", "spherical")
MCLUST = {"full": "VVV", "tied": "EEE", "diag": "VVI", "spherical": "VII"}


# --------------------------------------------------------------------------------------
# Independent references
# --------------------------------------------------------------------------------------
def mclust_n_var_params(model: str, G: int, d: int) -> int:
    """Covariance parameters of mclust's model ``model`` (e.g. "VEV"), G components, d features.

    Sigma_k = lambda_k D_k A_k D_k^T (Celeux & Govaert 1995): volume lambda (1 or G values),
    shape A (d - 1 free values, once or per component, none for I), orientation D
    (d (d - 1) / 2 rotation angles, once or per component, none for I).
    """
    volume, shape, orientation = model
    count = {"E": 1, "V": G}[volume]
    count += {"I": 0, "E": d - 1, "V": G * (d - 1)}[shape]
    count += {"I": 0, "E": d * (d - 1) // 2, "V": G * d * (d - 1) // 2}[orientation]
    return count


def naive_full(name, covariances, K, D):
    """The (K, D, D) covariance matrices a family's storage stands for."""
    C = np.asarray(covariances, dtype=np.float64)
    if name == "full":
        return C
    if name == "tied":
        return np.stack([C] * K)
    if name == "diag":
        return np.stack([np.diag(c) for c in C])
    return np.stack([np.eye(D) * c for c in C])


def random_covariances(name, K, D, rng):
    """Random valid covariances in the family's storage shape."""
    if name in ("full", "tied"):
        n = K if name == "full" else 1
        A = rng.normal(size=(n, D, D))
        C = A @ np.swapaxes(A, 1, 2) + 0.5 * np.eye(D)
        return C if name == "full" else C[0]
    if name == "diag":
        return rng.uniform(0.2, 3.0, size=(K, D))
    return rng.uniform(0.2, 3.0, size=K)


@pytest.fixture(params=NAMES)
def family(request) -> CovarianceFamily:
    return families.get(request.param)


# --------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------
def test_registry_names_and_order():
    assert families.NAMES[:4] == NAMES  # scikit-learn's first, then mclust's other models
    assert families.SELECTION_ORDER == ("spherical", "diag", "tied", "full")
    assert tuple(f.name for f in families.all_families()) == families.NAMES


@pytest.mark.parametrize("name", NAMES)
def test_lookup_by_name_and_mclust_alias(name):
    family = families.get(name)
    assert family.name == name
    assert family.mclust_name == MCLUST[name]
    assert families.get(MCLUST[name]) is family
    assert families.get(family) is family
    assert MCLUST[name] in family.aliases
    assert family.mclust_name in families.MCLUST_MODELS


@pytest.mark.parametrize("bad", ["foo", "Full", "eee", "", None, 3, ["full"]])
def test_lookup_error_names_the_valid_choices(bad):
    with pytest.raises(ValueError) as info:
        families.get(bad)
    message = str(info.value)
    assert message.startswith("covariance_type must be one of")
    for name in NAMES:
        assert repr(name) in message
    assert "'EEE' (= 'tied')" in message
    assert repr(bad) in message


def test_lookup_error_names_the_parameter():
    with pytest.raises(ValueError, match=r"^covariance_types must be one of"):
        families.get("nope", what="covariance_types")


def test_registering_a_taken_name_is_refused():
    class Other(CovarianceFamily):
        name = "other"
        aliases = ("EEE",)

    with pytest.raises(ValueError, match=r"already registered.*EEE"):
        families.register(Other())
    assert "other" not in families.NAMES
    with pytest.raises(ValueError):
        families.get("other")


def test_vocabulary(family):
    assert family.precision_form in {"full", "shared_full", "diagonal", "scalar"}
    assert family.statistic in {"full", "pooled", "diagonal", "trace"}
    assert family.shared == (family.name == "tied")
    assert family.hides_flat_directions == (family.name == "spherical")
    assert family.description and family.words
    assert len(family.plot_style) == 3
    assert family.name in repr(family) and family.mclust_name in repr(family)


def test_plot_styles_are_distinct():
    styles = [f.plot_style for f in families.all_families()]
    assert len({s[0] for s in styles}) == len(styles)
    assert len({s[1] for s in styles}) == len(styles)


# --------------------------------------------------------------------------------------
# Counts
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("D", range(1, 7))
@pytest.mark.parametrize("K", range(1, 6))
def test_counts_match_mclust(family, K, D):
    expected = mclust_n_var_params(family.mclust_name, K, D)
    assert family.n_covariance_parameters(K, D) == expected
    assert family.n_parameters(K, D) == (K - 1) + K * D + expected


def test_counts_against_the_explicit_formulas():
    K, D = 4, 5
    assert families.get("full").n_covariance_parameters(K, D) == K * D * (D + 1) // 2
    assert families.get("tied").n_covariance_parameters(K, D) == D * (D + 1) // 2
    assert families.get("diag").n_covariance_parameters(K, D) == K * D
    assert families.get("spherical").n_covariance_parameters(K, D) == K


@pytest.mark.parametrize("name", NAMES)
def test_estimator_count_is_the_family_count(name):
    X = make_blobs(300, 3, 2, seed=1)[0]
    gm = GaussianMixture(2, covariance_type=name, random_state=0).fit(X)
    assert gm._n_parameters() == families.get(name).n_parameters(2, 3)


@pytest.mark.parametrize("D", [1, 2, 5])
def test_min_points(D):
    assert families.get("full").min_points(D) == D + 1
    assert families.get("tied").min_points(D) == 1
    assert families.get("diag").min_points(D) == 2
    assert families.get("spherical").min_points(D) == 2


# --------------------------------------------------------------------------------------
# Storage and linear algebra
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("K, D", [(1, 1), (3, 2), (2, 5)])
def test_shape_round_trips(family, K, D):
    rng = np.random.default_rng(K * 10 + D)
    cov = random_covariances(family.name, K, D, rng)
    assert cov.shape == family.covariance_shape(K, D)
    full = naive_full(family.name, cov, K, D)

    chol = family.precision_cholesky(cov)
    assert chol.shape == cov.shape
    np.testing.assert_allclose(family.covariances_from_precisions(chol), cov, rtol=1e-10)

    precisions = family.precisions_from_cholesky(chol)
    assert precisions.shape == cov.shape
    np.testing.assert_allclose(
        naive_full(family.name, precisions, K, D), np.linalg.inv(full), rtol=1e-9, atol=1e-12
    )
    np.testing.assert_allclose(family.precisions(cov), precisions, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(
        family.precision_cholesky_from_precisions(precisions), chol, rtol=1e-9, atol=1e-12
    )
    if family.precision_form in ("full", "shared_full"):
        assert np.all(np.tril(chol, -1) == 0), "the precision factor is upper triangular"

    log_det = np.broadcast_to(family.log_det_cholesky(chol, D), (K,))
    np.testing.assert_allclose(log_det, -0.5 * np.linalg.slogdet(full)[1], rtol=1e-10)

    np.testing.assert_array_equal(family.full_covariances(cov, K, D), full)
    for k in range(K):
        np.testing.assert_array_equal(family.component_covariance(cov, k, D), full[k])


@pytest.mark.parametrize("K, D", [(1, 1), (3, 2), (2, 4)])
def test_from_full_is_a_projection(family, K, D):
    """Onto the family: its own matrices come back unchanged; others by the rules."""
    rng = np.random.default_rng(7)
    weights = rng.uniform(0.1, 1.0, K)
    cov = random_covariances(family.name, K, D, rng)
    np.testing.assert_allclose(
        family.from_full(naive_full(family.name, cov, K, D), weights), cov, rtol=1e-12
    )
    general = random_covariances("full", K, D, rng)
    projected = family.from_full(general, weights)
    assert projected.shape == family.covariance_shape(K, D)
    expected = {
        "full": general,
        "tied": np.einsum("k,kij->ij", weights / weights.sum(), general),
        "diag": np.stack([np.diag(c) for c in general]),
        "spherical": np.array([np.trace(c) / D for c in general]),
    }[family.name]
    np.testing.assert_allclose(projected, expected, rtol=1e-12)


def test_collapse_error_names_the_component(family):
    K, D = 3, 2
    cov = random_covariances(family.name, K, D, np.random.default_rng(0))
    if family.name == "full":
        cov[1] = np.array([[1.0, 1.0], [1.0, 1.0]])  # singular
    elif family.name == "tied":
        cov = np.array([[1.0, 2.0], [2.0, 1.0]])  # indefinite
    elif family.name == "diag":
        cov[1, 1] = -1e-17
    else:
        cov[1] = 0.0
    where = "the tied covariance" if family.shared else "component 1"
    with pytest.raises(ValueError, match=rf"covariance of {where}.*reg_covar=0\.001"):
        family.precision_cholesky(cov, reg_covar=1e-3)


def test_stored_matrices(family):
    K, D = 3, 2
    cov = random_covariances(family.name, K, D, np.random.default_rng(1))
    stored = family.stored_matrices(cov, K, D)
    full = naive_full(family.name, cov, K, D)
    if family.shared:
        assert [s for s, _ in stored] == [""]
    else:
        assert [s for s, _ in stored] == ["[0]", "[1]", "[2]"]
    for k, (_, matrix) in enumerate(stored):
        np.testing.assert_array_equal(matrix, full[k])


def test_precisions_init_checks(family):
    K, D = 2, 2
    good = family.precisions(random_covariances(family.name, K, D, np.random.default_rng(2)))
    family.check_precisions_init(good)
    bad = good.copy()
    if family.precision_form in ("full", "shared_full"):
        bad[..., 0, 1] += 1.0  # no longer symmetric
        with pytest.raises(ValueError, match="symmetric"):
            family.check_precisions_init(bad)
    else:
        bad[0] = -bad[0]
        with pytest.raises(ValueError, match="must be positive"):
            family.check_precisions_init(bad)


# --------------------------------------------------------------------------------------
# Statistics and the M-step
# --------------------------------------------------------------------------------------
def _data(seed=3, n=60, K=3, D=3):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, D)) * [1.0, 3.0, 0.5] + [100.0, -50.0, 7.0]
    resp = rng.dirichlet(np.ones(K), size=n)
    weights = rng.uniform(0.5, 2.0, size=n)
    return X, resp, weights


def _weighted_scatter(X, resp, w):
    """(N_k, Sigma_k): the textbook weighted counts and scatters about the weighted means."""
    rw = resp * w[:, None]
    nk = rw.sum(axis=0)
    mu = rw.T @ X / nk[:, None]
    return nk, np.stack([(rw[:, k, None] * (X - mu[k])).T @ (X - mu[k]) / nk[k]
                         for k in range(resp.shape[1])])


@pytest.mark.parametrize("reg_covar", [0.0, 1e-3])
def test_m_step_covariance_is_the_weighted_scatter(family, reg_covar):
    """MATH.md: Sigma_k = sum_n r_nk (x_n - mu_k)(x_n - mu_k)^T / N_k, reduced per family."""
    X, resp, w = _data()
    K, D = resp.shape[1], X.shape[1]
    stats = statistics_from_responsibilities(X, resp, family.name, shift=X[0], sample_weight=w)
    cov = family.m_step_covariances(stats.nk, stats.s1, stats.s2, reg_covar)

    nk, sigma = _weighted_scatter(X, resp, w)
    expected = {
        "full": sigma + reg_covar * np.eye(D),
        "tied": np.einsum("k,kij->ij", nk, sigma) / nk.sum() + reg_covar * np.eye(D),
        "diag": np.diagonal(sigma, axis1=1, axis2=2) + reg_covar,
        "spherical": np.trace(sigma, axis1=1, axis2=2) / D + reg_covar,
    }[family.name]
    assert cov.shape == family.covariance_shape(K, D)
    np.testing.assert_allclose(cov, expected, rtol=1e-10, atol=1e-12)
    if cov.ndim >= 2 and cov.shape[-1] == cov.shape[-2] == D and family.name != "diag":
        np.testing.assert_array_equal(cov, np.swapaxes(cov, -1, -2))


@pytest.mark.parametrize("model", families.MCLUST_MODELS)
def test_covariance_is_scatter_says_what_the_m_step_does(model):
    """The degeneracy checks read ``covariance_is_scatter``: true exactly for the families
    whose M-step covariance is the weighted scatter reduced to their storage form plus
    reg_covar (scikit-learn's four); the constrained models' differ from it."""
    family = families.get(model)
    X, resp, w = _data()
    D = X.shape[1]
    stats = statistics_from_responsibilities(X, resp, family.name, shift=X[0], sample_weight=w)
    cov = family.m_step_covariances(stats.nk, stats.s1, stats.s2, 1e-3)
    nk, sigma = _weighted_scatter(X, resp, w)
    reduced = {
        "full": sigma + 1e-3 * np.eye(D),
        "shared_full": np.einsum("k,kij->ij", nk, sigma) / nk.sum() + 1e-3 * np.eye(D),
        "diagonal": np.diagonal(sigma, axis1=1, axis2=2) + 1e-3,
        "scalar": np.trace(sigma, axis1=1, axis2=2) / D + 1e-3,
    }[family.precision_form]
    same = np.allclose(cov, reduced, rtol=1e-9, atol=0.0)
    assert same == family.covariance_is_scatter


def test_m_step_guard_only_divides(family):
    """The guard enters the divisor, never the centring (MATH.md, M-step)."""
    X, resp, _ = _data(seed=4)
    stats = statistics_from_responsibilities(X, resp, family.name, shift=X[0])
    guard = 1e-3
    got = family.m_step_covariances(stats.nk, stats.s1, stats.s2, 0.0, guard)
    plain = family.m_step_covariances(stats.nk, stats.s1, stats.s2, 0.0)
    if family.name == "tied":
        scale = stats.nk.sum() / (stats.nk + guard).sum()
    else:
        scale = (stats.nk / (stats.nk + guard)).reshape((-1,) + (1,) * (plain.ndim - 1))
    np.testing.assert_allclose(got, plain * scale, rtol=1e-12)


def test_scatter_shape_and_moving(family):
    """s2 about one shift, moved to another, equals s2 computed about the other."""
    X, resp, w = _data(seed=5)
    K, D = resp.shape[1], X.shape[1]
    a = statistics_from_responsibilities(X, resp, family.name, shift=X[0], sample_weight=w)
    b = statistics_from_responsibilities(X, resp, family.name, shift=X[1], sample_weight=w)
    shapes = {"full": (K, D, D), "pooled": (D, D), "diagonal": (K, D), "trace": (K,)}
    assert a.s2.shape == shapes[family.statistic]
    moved = family.moved_scatter(a.s2, a.s1, a.nk, a.shift - b.shift)
    np.testing.assert_allclose(moved, b.s2, rtol=1e-10)
    np.testing.assert_allclose(a.moved_to(b.shift).s2, b.s2, rtol=1e-10)


# --------------------------------------------------------------------------------------
# Dask arrays
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("model", families.MCLUST_MODELS)
def test_every_model_fits_a_dask_array_as_in_memory(model):
    """docs/dask.md: every covariance model fits a Dask array as it fits NumPy rows (the
    chunks' statistics are the family's; its M-step runs on the client)."""
    da = pytest.importorskip("dask.array")
    X = make_blobs(300, 2, 3, seed=4)[0]
    # one start for both: the parameters of a short fit, which satisfy the model's constraint
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        start = GaussianMixture(3, covariance_type=model, random_state=0, max_iter=2).fit(X)
    kw = dict(n_components=3, covariance_type=model, weights_init=start.weights_,
              means_init=start.means_, precisions_init=start.precisions_, tol=0, max_iter=8)
    with pytest.warns(ConvergenceWarning):
        eager = GaussianMixture(**kw).fit(X)
    with pytest.warns(ConvergenceWarning):
        lazy = GaussianMixture(**kw).fit(da.from_array(X, chunks=70))
    assert lazy.n_iter_ == eager.n_iter_ == 8
    np.testing.assert_allclose(lazy.weights_, eager.weights_, rtol=1e-9)
    np.testing.assert_allclose(lazy.means_, eager.means_, rtol=1e-9)
    np.testing.assert_allclose(lazy.covariances_, eager.covariances_, rtol=1e-8)
    np.testing.assert_allclose(lazy.lower_bounds_, eager.lower_bounds_, rtol=1e-10)


# --------------------------------------------------------------------------------------
# Aliases through the estimator
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_mclust_name_fits_the_same_model_and_shows_the_sklearn_name(name, tmp_path):
    X = make_blobs(400, 2, 3, seed=2)[0]
    by_name = GaussianMixture(3, covariance_type=name, random_state=0).fit(X)
    by_alias = GaussianMixture(3, covariance_type=MCLUST[name], random_state=0).fit(X)
    assert by_alias.covariance_type == MCLUST[name]  # parameters are kept as given
    assert by_alias._fitted_covariance_type == name
    np.testing.assert_array_equal(by_alias.covariances_, by_name.covariances_)
    np.testing.assert_array_equal(by_alias.means_, by_name.means_)
    assert by_alias.bic(X) == by_name.bic(X)
    assert by_alias.sample(5)[0].shape == (5, 2)
    path = tmp_path / "model.json"
    by_alias.save(path)
    assert json.loads(path.read_text())["covariance_type"] == name


def test_estimator_rejects_an_unknown_family():
    X = make_blobs(50, 2, 2)[0]
    with pytest.raises(ValueError, match=r"covariance_type must be one of 'full'.*'EEE'"):
        GaussianMixture(2, covariance_type="XYZ").fit(X)


def test_family_of_a_model():
    X = make_blobs(200, 2, 2, seed=3)[0]
    gm = GaussianMixture(2, covariance_type="VVI", random_state=0)
    assert families.of_model(gm) is families.get("diag")  # before fitting: its parameter
    gm.fit(X)
    gm.set_params(covariance_type="full")  # the fitted family wins over a later parameter
    assert families.of_model(gm) is families.get("diag")


def test_correlated():
    correlated = [f.name for f in families.all_families() if f.correlated]
    assert correlated[:2] == ["full", "tied"]
    assert all(families.get(name).precision_form == "full" for name in correlated[2:])


def test_docstring_examples():
    result = doctest.testmod(families, optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.attempted > 0 and result.failed == 0


@pytest.mark.parametrize("shape", [(3, 47, 47), (3, 64, 64), (2, 130, 130), (100, 100)])
def test_precision_factor_of_many_features_is_the_triangular_inverse(shape):
    """From 48 features on, the precision factors inv(C).T come from the blocked triangular
    inverse (a stack, or one shared matrix): exactly upper triangular, equal to LAPACK's
    solve to rounding, and L L^T is the inverse covariance."""
    rng = np.random.default_rng(41)
    D = shape[-1]
    a = rng.normal(size=shape) / np.sqrt(D)
    cov = a @ np.swapaxes(a, -1, -2) + 0.1 * np.eye(D)
    family = families.get("full" if len(shape) == 3 else "tied")
    got = family.precision_cholesky(cov)
    assert got.shape == shape
    assert not np.any(np.tril(got, -1))
    chol = np.linalg.cholesky(cov)
    expected = np.swapaxes(np.linalg.solve(chol, np.broadcast_to(np.eye(D), shape)), -1, -2)
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12 * np.abs(expected).max())
    identity = got @ np.swapaxes(got, -1, -2) @ cov
    np.testing.assert_allclose(identity, np.broadcast_to(np.eye(D), shape), atol=1e-9)
