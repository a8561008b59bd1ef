"""gaussmix.GaussianMixture as a drop-in for sklearn.mixture.GaussianMixture.

* Agreement from identical initial parameters (weights_init, means_init, precisions_init),
  tol=0 and a fixed number of iterations: every fitted attribute and every method output
  within rtol 1e-11 (float64) and 1e-4 (float32; responsibilities 1e-3 absolute), all
  covariance types, several shapes (what the README states).
* The same default-initialisation semantics (random streams, n_init, convergence,
  warnings, warm_start, max_iter=0).
* The scikit-learn protocol: check_estimator, Pipeline, GridSearchCV, clone, pickle.
"""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")

from sklearn.base import clone  # noqa: E402
from sklearn.exceptions import ConvergenceWarning as SkConvergenceWarning  # noqa: E402
from sklearn.mixture import GaussianMixture as SkGaussianMixture  # noqa: E402
from sklearn.model_selection import GridSearchCV, KFold  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from conftest import (  # noqa: E402
    COVARIANCE_TYPES,
    assert_close,
    cholesky_product,
    initial_parameters,
    make_blobs,
)
from gaussmix import (  # noqa: E402
    ConvergenceWarning,
    DegenerateFitWarning,
    GaussianMixture,
    NotFittedError,
)

SHAPES = [(500, 2, 3), (1000, 5, 4), (300, 8, 2), (2000, 1, 2)]
# The README's claim. Measured worst gaps on these cases (max |a - b| / (|b| + max |b|)):
# float64 2.1e-13 (precisions_), responsibilities 6.3e-13 absolute; float32 9.9e-6
# (tied precisions_), responsibilities 2.5e-4 absolute (scikit-learn computes them in
# float32 too: a point between two components carries both libraries' rounding).
RTOL = {np.float64: 1e-11, np.float32: 1e-4}
PROBA_ATOL = {np.float64: 1e-11, np.float32: 1e-3}
N_ITER = 20


def _fit_both(X, n_components, covariance_type, max_iter=N_ITER, **extra):
    """Fit sklearn and gaussmix from the same initial parameters, tol=0."""
    params = dict(
        n_components=n_components,
        covariance_type=covariance_type,
        tol=0.0,
        max_iter=max_iter,
        **initial_parameters(X, n_components, covariance_type),
        **extra,
    )
    with pytest.warns(SkConvergenceWarning):
        sk = SkGaussianMixture(**params).fit(X)
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        gm = GaussianMixture(**params).fit(X)
    return sk, gm


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_agreement_with_sklearn_from_same_start(covariance_type, shape, dtype):
    n_samples, n_features, n_components = shape
    X, _, _, _ = make_blobs(n_samples, n_features, n_components, seed=n_features, dtype=dtype)
    sk, gm = _fit_both(X, n_components, covariance_type)
    rtol = RTOL[dtype]

    for name in ("weights_", "means_", "covariances_", "precisions_"):
        ours, theirs = getattr(gm, name), getattr(sk, name)
        assert ours.shape == theirs.shape, name
        assert ours.dtype == dtype, f"{name} is {ours.dtype}, expected {np.dtype(dtype)}"
        assert_close(ours, theirs, rtol, name)
    # Same factor convention as scikit-learn (upper triangular, precision = L L^T), so the
    # factors themselves agree; and the precision they stand for, too.
    assert gm.precisions_cholesky_.shape == sk.precisions_cholesky_.shape
    assert gm.precisions_cholesky_.dtype == dtype
    assert_close(gm.precisions_cholesky_, sk.precisions_cholesky_, rtol, "precisions_cholesky_")
    assert_close(
        cholesky_product(gm.precisions_cholesky_, covariance_type),
        cholesky_product(sk.precisions_cholesky_, covariance_type),
        rtol,
        "precisions_cholesky_ (as L L^T)",
    )
    assert gm.n_iter_ == sk.n_iter_ == N_ITER
    assert gm.converged_ is False and sk.converged_ is False
    assert gm.lower_bound_ == pytest.approx(sk.lower_bound_, rel=rtol)
    assert len(gm.lower_bounds_) == len(sk.lower_bounds_) == N_ITER
    assert_close(gm.lower_bounds_, sk.lower_bounds_, rtol, "lower_bounds_")

    # Methods, on the training data and on fresh points.
    Xt = np.vstack([X, make_blobs(100, n_features, n_components, seed=99, dtype=dtype)[0]])
    proba = gm.predict_proba(Xt)
    assert proba.dtype == dtype
    np.testing.assert_allclose(proba, sk.predict_proba(Xt), rtol=0, atol=PROBA_ATOL[dtype],
                               err_msg="predict_proba")
    ss = gm.score_samples(Xt)
    assert ss.dtype == dtype
    assert_close(ss, sk.score_samples(Xt), rtol, "score_samples")
    agree = np.mean(gm.predict(Xt) == sk.predict(Xt))
    if dtype == np.float64:
        assert agree == 1.0
    else:  # a point on a decision boundary may flip in single precision
        assert agree >= 0.999
    assert gm.score(Xt) == pytest.approx(sk.score(Xt), rel=rtol)
    assert gm.bic(Xt) == pytest.approx(sk.bic(Xt), rel=rtol)
    assert gm.aic(Xt) == pytest.approx(sk.aic(Xt), rel=rtol)
    assert gm._n_parameters() == sk._n_parameters()


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_agreement_with_sklearn_reg_covar_and_partial_init(covariance_type):
    """Only means_init given (covariances from the k-means responsibilities)."""
    X, _, _, _ = make_blobs(400, 3, 3, seed=5)
    means = initial_parameters(X, 3, covariance_type)["means_init"]
    kw = dict(n_components=3, covariance_type=covariance_type, means_init=means,
              reg_covar=1e-2, tol=1e-8, max_iter=200, random_state=0)
    sk = SkGaussianMixture(**kw).fit(X)
    gm = GaussianMixture(**kw).fit(X)
    # The k-means implementations differ, but the start is pinned by means_init and EM then
    # converges to the same optimum.
    assert gm.converged_ and sk.converged_
    assert gm.lower_bound_ == pytest.approx(sk.lower_bound_, rel=1e-7)
    assert_close(gm.means_, sk.means_, 1e-4, "means_")


# --------------------------------------------------------------------------------------
# Default initialisation: same random streams, same n_init / convergence semantics
# --------------------------------------------------------------------------------------
def _three_clusters():
    rng = np.random.default_rng(0)
    return np.vstack([
        rng.normal(-3, 1, (200, 2)),
        rng.normal(3, 1, (150, 2)),
        rng.normal([0, 6], 1, (100, 2)),
    ])


@pytest.mark.parametrize(
    "init_params, covariance_type",
    [("random", t) for t in COVARIANCE_TYPES]
    # Not tied with these two: scikit-learn's tied start from K single rows sums every
    # row's second moment about the origin (a formula for responsibilities that sum to
    # one per row), 1706 wide on iris; gaussmix takes the rows' own scatter (zero, then
    # reg_covar), which does not fail on data with a large offset (README, "As a library").
    + [("random_from_data", t) for t in ("full", "diag", "spherical")]
    + [("k-means++", t) for t in ("full", "diag", "spherical")],
)
def test_default_init_semantics_match_sklearn(init_params, covariance_type):
    """Same random_state, n_init=3, default tol: same runs, same choice, same outcome."""
    X = _three_clusters()
    kw = dict(n_components=3, covariance_type=covariance_type, init_params=init_params,
              random_state=3, n_init=3, max_iter=100)
    sk = SkGaussianMixture(**kw).fit(X)
    gm = GaussianMixture(**kw).fit(X)
    assert gm.n_iter_ == sk.n_iter_
    assert gm.converged_ == sk.converged_
    assert gm.lower_bound_ == pytest.approx(sk.lower_bound_, rel=1e-10)
    # The first bound of a random_from_data start (covariances = reg_covar) is about -1e6,
    # a sum of huge squared distances: both libraries round it at the 1e-8 level.
    np.testing.assert_allclose(gm.lower_bounds_, sk.lower_bounds_, rtol=1e-7)
    assert_close(gm.means_, sk.means_, RTOL[np.float64], "means_")
    assert_close(gm.weights_, sk.weights_, RTOL[np.float64], "weights_")


def test_convergence_warning_and_flags_as_sklearn():
    X = _three_clusters()
    kw = dict(n_components=3, init_params="random", random_state=0, max_iter=2, tol=1e-12)
    with pytest.warns(SkConvergenceWarning):
        sk = SkGaussianMixture(**kw).fit(X)
    with pytest.warns(ConvergenceWarning, match="max_iter") as record:
        gm = GaussianMixture(**kw).fit(X)
    assert issubclass(record[0].category, UserWarning)
    assert gm.converged_ is sk.converged_ is False
    assert gm.n_iter_ == sk.n_iter_ == 2
    # Converged run: no warning at all (filterwarnings=error would turn one into a failure).
    gm = GaussianMixture(3, random_state=0, max_iter=200).fit(X)
    assert gm.converged_ is True and 1 <= gm.n_iter_ < 200


@pytest.mark.parametrize("init_params", ["random", "random_from_data"])
def test_max_iter_zero_as_sklearn(init_params):
    """max_iter=0: initialisation only, no warning, lower_bound_ -inf, empty history.

    No EM ran, so there is no fit to call degenerate: a random_from_data start (covariances
    at reg_covar by construction) must not raise DegenerateFitWarning either.
    """
    X = _three_clusters()
    kw = dict(n_components=3, init_params=init_params, random_state=0, max_iter=0)
    sk = SkGaussianMixture(**kw).fit(X)
    gm = GaussianMixture(**kw).fit(X)
    assert gm.n_iter_ == sk.n_iter_ == 0
    assert gm.converged_ is False
    assert gm.lower_bound_ == sk.lower_bound_ == -np.inf
    assert list(gm.lower_bounds_) == list(sk.lower_bounds_) == []
    assert_close(gm.means_, sk.means_, 1e-12, "means_")
    assert_close(gm.weights_, sk.weights_, 1e-12, "weights_")
    assert_close(gm.covariances_, sk.covariances_, 1e-10, "covariances_")


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_fit_predict_equals_fit_then_predict(covariance_type):
    X = _three_clusters()
    kw = dict(n_components=3, covariance_type=covariance_type, random_state=1)
    labels = GaussianMixture(**kw).fit_predict(X)
    np.testing.assert_array_equal(labels, GaussianMixture(**kw).fit(X).predict(X))
    # Also when EM stops early (the final E-step makes them agree).
    with pytest.warns(ConvergenceWarning):
        labels = GaussianMixture(max_iter=1, tol=0, **kw).fit_predict(X)
    with pytest.warns(ConvergenceWarning):
        again = GaussianMixture(max_iter=1, tol=0, **kw).fit(X).predict(X)
    np.testing.assert_array_equal(labels, again)
    # And as sklearn's from the same start.
    init = initial_parameters(X, 3, covariance_type)
    with pytest.warns(SkConvergenceWarning):
        sk_labels = SkGaussianMixture(3, covariance_type=covariance_type, max_iter=3, tol=0,
                                      **init).fit_predict(X)
    with pytest.warns(ConvergenceWarning):
        gm_labels = GaussianMixture(3, covariance_type=covariance_type, max_iter=3, tol=0,
                                    **init).fit_predict(X)
    np.testing.assert_array_equal(gm_labels, sk_labels)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_warm_start_as_sklearn(covariance_type):
    X, _, _, _ = make_blobs(500, 3, 3, seed=2)
    kw = dict(n_components=3, covariance_type=covariance_type, tol=0, max_iter=4,
              warm_start=True, **initial_parameters(X, 3, covariance_type))
    sk, gm = SkGaussianMixture(**kw), GaussianMixture(**kw)
    for _ in range(3):
        with pytest.warns(SkConvergenceWarning):
            sk.fit(X)
        with pytest.warns(ConvergenceWarning):
            gm.fit(X)
        assert gm.n_iter_ == sk.n_iter_ == 4
        assert_close(gm.means_, sk.means_, RTOL[np.float64], "means_")
        assert_close(gm.covariances_, sk.covariances_, RTOL[np.float64], "covariances_")
        assert_close(gm.lower_bounds_, sk.lower_bounds_, RTOL[np.float64], "lower_bounds_")
    # Three warm fits of 4 iterations = one cold fit of 12 iterations.
    cold_kw = dict(kw, warm_start=False, max_iter=12)
    with pytest.warns(ConvergenceWarning):
        cold = GaussianMixture(**cold_kw).fit(X)
    assert_close(gm.means_, cold.means_, 1e-10, "means_")
    assert gm.lower_bound_ == pytest.approx(cold.lower_bound_, rel=1e-12)


def test_warm_start_converges_immediately_from_converged_fit():
    X = _three_clusters()
    gm = GaussianMixture(3, warm_start=True, random_state=0, tol=1e-6, max_iter=500).fit(X)
    assert gm.converged_
    gm.fit(X)
    assert gm.converged_ and gm.n_iter_ <= 2


def test_n_init_keeps_the_best_lower_bound():
    """n_init=5 equals the best of five single runs drawn from the same random stream."""
    X = _three_clusters()
    kw = dict(n_components=4, covariance_type="diag", init_params="random_from_data",
              max_iter=500)
    rs = np.random.RandomState(7)
    singles = [GaussianMixture(random_state=rs, **kw).fit(X) for _ in range(5)]
    bounds = [m.lower_bound_ for m in singles]
    assert len(set(np.round(bounds, 8))) > 1, "test needs inits that end differently"
    multi = GaussianMixture(n_init=5, random_state=np.random.RandomState(7), **kw).fit(X)
    best = singles[int(np.argmax(bounds))]
    assert multi.lower_bound_ == max(bounds)
    np.testing.assert_array_equal(multi.means_, best.means_)
    assert multi.lower_bounds_ == best.lower_bounds_
    assert multi.n_iter_ == best.n_iter_
    # and as scikit-learn does
    sk = SkGaussianMixture(n_init=5, random_state=np.random.RandomState(7), **kw).fit(X)
    assert multi.lower_bound_ == pytest.approx(sk.lower_bound_, rel=1e-10)


# --------------------------------------------------------------------------------------
# The scikit-learn estimator protocol
# --------------------------------------------------------------------------------------
def _estimator_checks():
    from sklearn.utils.estimator_checks import estimator_checks_generator

    with warnings.catch_warnings():
        # gaussmix deliberately does not inherit from sklearn.base.BaseEstimator.
        warnings.filterwarnings("ignore", message=".*does not inherit from", category=UserWarning)
        return list(estimator_checks_generator(GaussianMixture(), legacy=True, mark=None))


def _check_id(pair):
    check = pair[1]
    func = getattr(check, "func", check)
    return func.__name__


# The array-API checks are for estimators tagged array_api_support=True; gaussmix is
# NumPy-only (like scikit-learn's own GaussianMixture), so they do not apply.
_CHECKS = [c for c in _estimator_checks() if not _check_id(c).startswith("check_array_api")]


def _ignore_check_warnings():
    # sklearn's checks fit tiny or high-dimensional data with few iterations: convergence
    # and degeneracy warnings are expected there and are not failures of the check
    # (check_estimator itself does not turn warnings into errors; our pytest config does).
    warnings.filterwarnings("ignore", category=SkConvergenceWarning)
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    warnings.filterwarnings("ignore", category=DegenerateFitWarning)


@pytest.mark.parametrize("estimator_check", _CHECKS, ids=[_check_id(c) for c in _CHECKS])
def test_sklearn_check_estimator(estimator_check):
    """Every check of sklearn.utils.estimator_checks.check_estimator, one test each."""
    from sklearn.exceptions import SkipTestWarning

    estimator, check = estimator_check
    with warnings.catch_warnings():
        _ignore_check_warnings()
        warnings.filterwarnings("ignore", category=SkipTestWarning)
        try:
            check(estimator)
        except sklearn.utils._testing.SkipTest as exc:  # e.g. array API not enabled
            pytest.skip(str(exc))


def test_check_estimator_as_a_whole():
    from sklearn.utils.estimator_checks import check_estimator

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not inherit from", category=UserWarning)
        warnings.filterwarnings("ignore", category=sklearn.exceptions.SkipTestWarning)
        _ignore_check_warnings()
        results = check_estimator(GaussianMixture(), on_fail=None)
    failed = [(r["check_name"], str(r["exception"])[:200]) for r in results
              if r["status"] == "failed"]
    assert failed == []


def test_not_fitted_error_is_sklearns_kind():
    """sklearn code catches sklearn.exceptions.NotFittedError (check_estimators_unfitted)."""
    from sklearn.exceptions import NotFittedError as SkNotFittedError

    with pytest.raises(NotFittedError) as info:
        GaussianMixture().predict(np.zeros((3, 2)))
    assert isinstance(info.value, ValueError) and isinstance(info.value, AttributeError)
    assert isinstance(info.value, SkNotFittedError)


def test_pipeline_with_standard_scaler():
    X = _three_clusters() * np.array([1.0, 1000.0]) + np.array([0.0, 5e4])
    pipe = Pipeline([("scale", StandardScaler()),
                     ("gm", GaussianMixture(3, random_state=0))]).fit(X)
    Z = StandardScaler().fit_transform(X)
    alone = GaussianMixture(3, random_state=0).fit(Z)
    np.testing.assert_array_equal(pipe.predict(X), alone.predict(Z))
    np.testing.assert_allclose(pipe.predict_proba(X), alone.predict_proba(Z), atol=1e-12)
    np.testing.assert_allclose(pipe.score_samples(X), alone.score_samples(Z), rtol=1e-12)
    assert pipe.score(X) == pytest.approx(alone.score(Z), rel=1e-12)


def test_grid_search_uses_score():
    X = _three_clusters()
    cv = KFold(3, shuffle=True, random_state=0)
    search = GridSearchCV(GaussianMixture(random_state=0),
                          {"n_components": [1, 2, 3], "covariance_type": ["full", "spherical"]},
                          cv=cv).fit(X)
    assert search.best_params_["n_components"] == 3
    # The mean test score is the mean of held-out score() values.
    i = int(np.flatnonzero(
        (search.cv_results_["param_n_components"] == 2)
        & (search.cv_results_["param_covariance_type"] == "full"))[0])
    manual = [GaussianMixture(2, random_state=0).fit(X[tr]).score(X[te])
              for tr, te in cv.split(X)]
    assert search.cv_results_["mean_test_score"][i] == pytest.approx(np.mean(manual), rel=1e-12)
    assert isinstance(search.best_estimator_, GaussianMixture)


def test_clone_and_params():
    init = initial_parameters(_three_clusters(), 3, "diag")
    gm = GaussianMixture(3, covariance_type="diag", reg_covar=1e-4, block_size=64,
                         random_state=5, **init)
    gm.fit(_three_clusters())
    c = clone(gm)
    assert not hasattr(c, "means_")
    params, cparams = gm.get_params(), c.get_params()
    assert params.keys() == cparams.keys()
    assert set(params) == {
        "n_components", "covariance_type", "tol", "reg_covar", "max_iter", "n_init",
        "init_params", "weights_init", "means_init", "precisions_init", "random_state",
        "warm_start", "verbose", "verbose_interval", "block_size",
        "learning_offset", "learning_decay",  # partial_fit's step size (issue 13)
        "prior",  # mclust's conjugate prior, MAP EM (issue 11)
    }
    for key, value in params.items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(cparams[key], value)
        else:
            assert cparams[key] == value
    assert c.set_params(n_components=2) is c and c.n_components == 2
    with pytest.raises(ValueError, match="Invalid parameter"):
        c.set_params(n_component=2)
    assert "reg_covar=0.0001" in repr(gm)


def test_defaults_equal_sklearns():
    ours = GaussianMixture().get_params()
    theirs = SkGaussianMixture().get_params()
    for key, value in theirs.items():
        assert ours[key] == value, key
    assert ours["block_size"] is None


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_pickle_round_trip(dtype):
    X = _three_clusters().astype(dtype)
    gm = GaussianMixture(3, covariance_type="tied", random_state=0).fit(X)
    back = pickle.loads(pickle.dumps(gm))
    for name in ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_"):
        np.testing.assert_array_equal(getattr(back, name), getattr(gm, name))
        assert getattr(back, name).dtype == getattr(gm, name).dtype
    np.testing.assert_array_equal(back.predict_proba(X), gm.predict_proba(X))
    assert back.get_params() == gm.get_params()
    assert back.lower_bounds_ == gm.lower_bounds_ and back.n_iter_ == gm.n_iter_
