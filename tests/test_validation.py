"""Bad input gets a clear error naming the problem and, where there is one, the fix.

Issue 2, item 5: every case raises from fit/predict with the exception type scikit-learn
uses (ValueError, TypeError, NotFittedError) and a message a user can act on.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from conftest import COVARIANCE_TYPES, make_blobs
from gaussmix import DegenerateFitWarning, GaussianMixture, NotFittedError, RegularizationWarning


@pytest.fixture(scope="module")
def X():
    return make_blobs(60, 2, 2, seed=0)[0]


@pytest.fixture(scope="module")
def fitted(X):
    return GaussianMixture(2, random_state=0).fit(X)


# --------------------------------------------------------------------------------------
# X: shape, size, values, types
# --------------------------------------------------------------------------------------
def test_1d_X_suggests_reshape():
    with pytest.raises(ValueError, match=r"2-D.*reshape\(-1, 1\)"):
        GaussianMixture().fit(np.arange(10.0))


def test_1d_X_at_predict_suggests_reshape(fitted):
    with pytest.raises(ValueError, match=r"reshape\(-1, 1\)"):
        fitted.predict(np.arange(2.0))


def test_scalar_X():
    with pytest.raises(ValueError, match="2-D"):
        GaussianMixture().fit(3.0)


def test_3d_X():
    with pytest.raises(ValueError, match=r"2-D.*\(4, 3, 2\)"):
        GaussianMixture().fit(np.zeros((4, 3, 2)))


@pytest.mark.parametrize("shape", [(0, 2), (0, 0)])
def test_empty_X(shape):
    with pytest.raises(ValueError, match=r"empty|0 sample"):
        GaussianMixture().fit(np.zeros(shape))


def test_zero_features():
    with pytest.raises(ValueError, match="0 feature"):
        GaussianMixture().fit(np.zeros((5, 0)))


def test_one_sample():
    with pytest.raises(ValueError, match=r"1 sample.*at least 2"):
        GaussianMixture().fit(np.zeros((1, 2)))


def test_fewer_samples_than_components(X):
    with pytest.raises(ValueError, match=r"n_components = 5.*n_samples = 3"):
        GaussianMixture(5).fit(X[:3])


def test_nan_is_a_missing_value_but_an_empty_row_is_refused(X):
    # NaN marks a missing value (issue 12, tests/test_missing.py); a row with no observed
    # value is refused, counted and located.
    bad = X.copy()
    bad[3, 1] = np.nan
    bad[7, 0] = np.nan
    GaussianMixture().fit(bad)
    bad[[3, 8]] = np.nan
    with pytest.raises(ValueError, match=r"2 rows with no observed value.*first is row 3"):
        GaussianMixture().fit(bad)


def test_inf_says_how_many_and_where(X):
    bad = X.copy()
    bad[5, 0] = np.inf
    bad[9, 1] = -np.inf
    bad[11, 1] = np.nan
    with pytest.raises(ValueError, match=r"2 infinite values.*row 5, column 0"):
        GaussianMixture().fit(bad)


def test_inf_at_predict(fitted, X):
    bad = X[:4].copy()
    bad[2, 0] = np.inf
    for method in ("predict", "predict_proba", "score_samples", "score"):
        with pytest.raises(ValueError, match=r"1 infinite value.*row 2, column 0"):
            getattr(fitted, method)(bad)


def test_strings():
    with pytest.raises((ValueError, TypeError), match=r"string|not a number"):
        GaussianMixture().fit(np.array([["a", "b"], ["c", "d"], ["e", "f"]]))


def test_objects_name_the_bad_value():
    X = np.array([[1.0, 2.0], [3.0, "x"], [5.0, 6.0]], dtype=object)
    with pytest.raises(TypeError, match=r"not a number.*row 1, column 1.*'x'"):
        GaussianMixture().fit(X)


def test_numeric_objects_are_accepted():
    X = np.array([[1, 2.0], [3, 4.5], [5, 6], [0, 1]], dtype=object)
    gm = GaussianMixture().fit(X)
    assert gm.means_.dtype == np.float64


def test_complex():
    with pytest.raises(ValueError, match="complex"):
        GaussianMixture().fit(np.ones((5, 2)) + 1j)


def test_complex_message_is_sklearns():
    """sklearn's check_complex_data looks for 'Complex data not supported'."""
    with pytest.raises(ValueError, match="Complex data not supported"):
        GaussianMixture().fit(np.ones((5, 2)) + 1j)


def test_zero_features_message_is_sklearns():
    """sklearn's check_estimators_empty_data_messages looks for this wording."""
    with pytest.raises(
        ValueError, match=r"0 feature\(s\) \(shape=\(12, 0\)\) while a minimum of \d* is required"
    ):
        GaussianMixture().fit(np.empty((12, 0)))


def test_dates():
    X = np.array([["2020-01-01", "2020-01-02"]] * 3, dtype="datetime64[D]")
    with pytest.raises((TypeError, ValueError), match=r"date|time"):
        GaussianMixture().fit(X)


@pytest.mark.parametrize("fmt", ["csr_matrix", "csc_matrix", "csr_array", "coo_matrix"])
def test_sparse(X, fmt):
    sparse = pytest.importorskip("scipy.sparse")
    Xs = getattr(sparse, fmt)(X)
    with pytest.raises(TypeError, match=r"sparse.*toarray\(\)"):
        GaussianMixture().fit(Xs)


def test_sparse_at_predict(fitted, X):
    sparse = pytest.importorskip("scipy.sparse")
    with pytest.raises(TypeError, match="sparse"):
        fitted.predict(sparse.csr_matrix(X))


@pytest.mark.parametrize("method", ["predict", "predict_proba", "score_samples", "score",
                                    "bic", "aic", "icl"])
def test_wrong_number_of_features_at_predict(fitted, method):
    with pytest.raises(ValueError, match=r"3 features.*expecting 2"):
        getattr(fitted, method)(np.zeros((4, 3)))


def test_different_feature_names_at_predict(X):
    pd = pytest.importorskip("pandas")
    gm = GaussianMixture(2, random_state=0).fit(pd.DataFrame(X, columns=["a", "b"]))
    np.testing.assert_array_equal(gm.feature_names_in_, ["a", "b"])
    with pytest.raises(ValueError, match=r"feature names.*\['a', 'b'\].*\['a', 'c'\]"):
        gm.predict(pd.DataFrame(X, columns=["a", "c"]))
    with pytest.raises(ValueError, match="feature names"):
        gm.score_samples(pd.DataFrame(X, columns=["b", "a"]))  # same names, other order
    with pytest.raises(ValueError, match=r"feature names|features"):
        gm.predict_proba(pd.DataFrame(np.c_[X, X[:, 0]], columns=["a", "b", "c"]))
    # the right names, and plain arrays, work
    gm.predict(pd.DataFrame(X, columns=["a", "b"]))
    gm.predict(X)


def test_refit_on_array_forgets_feature_names(X):
    pd = pytest.importorskip("pandas")
    gm = GaussianMixture(2, random_state=0).fit(pd.DataFrame(X, columns=["a", "b"]))
    gm.fit(X)
    assert not hasattr(gm, "feature_names_in_")


# --------------------------------------------------------------------------------------
# Not fitted
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["predict", "predict_proba", "score_samples", "score",
                                    "bic", "aic", "icl"])
def test_not_fitted(X, method):
    with pytest.raises(NotFittedError, match=r"not fitted.*fit") as info:
        getattr(GaussianMixture(), method)(X)
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, AttributeError)


def test_not_fitted_sample_and_save(tmp_path):
    with pytest.raises(NotFittedError, match="not fitted"):
        GaussianMixture().sample(3)
    with pytest.raises(NotFittedError, match=r"not fitted.*fit"):
        GaussianMixture().save(tmp_path / "model.json")
    assert list(tmp_path.iterdir()) == []  # nothing written
    assert not hasattr(GaussianMixture(), "means_")  # hasattr-style checks see "not fitted"


def test_not_fitted_error_classes():
    assert issubclass(NotFittedError, ValueError)
    assert issubclass(NotFittedError, AttributeError)


# --------------------------------------------------------------------------------------
# Constructor parameters
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "params, exc, match",
    [
        ({"n_components": 0}, ValueError, r"n_components.*>= 1.*0"),
        ({"n_components": -2}, ValueError, r"n_components"),
        ({"n_components": 1.5}, TypeError, r"n_components.*integer"),
        ({"n_components": "2"}, TypeError, r"n_components"),
        ({"n_components": True}, TypeError, r"n_components"),
        ({"covariance_type": "foo"}, ValueError, r"covariance_type.*'full'.*'foo'"),
        ({"covariance_type": "Full"}, ValueError, r"covariance_type"),
        ({"init_params": "bar"}, ValueError, r"init_params.*'kmeans'.*'bar'"),
        ({"tol": -1e-3}, ValueError, r"tol.*>= 0"),
        ({"tol": np.nan}, ValueError, r"tol"),
        ({"tol": "small"}, TypeError, r"tol"),
        ({"reg_covar": -1e-6}, ValueError, r"reg_covar.*>= 0"),
        ({"reg_covar": np.inf}, ValueError, r"reg_covar"),
        ({"max_iter": -1}, ValueError, r"max_iter.*>= 0"),
        ({"max_iter": 10.0}, TypeError, r"max_iter"),
        ({"n_init": 0}, ValueError, r"n_init.*>= 1"),
        ({"verbose_interval": 0}, ValueError, r"verbose_interval"),
        ({"warm_start": "yes"}, TypeError, r"warm_start"),
        ({"block_size": 0}, ValueError, r"block_size"),
        ({"random_state": "seed"}, TypeError, r"random_state"),
    ],
)
def test_invalid_parameters(X, params, exc, match):
    with pytest.raises(exc, match=match):
        GaussianMixture(**params).fit(X)


def test_parameters_validated_at_fit_not_init():
    GaussianMixture(n_components=0, covariance_type="nope")  # sklearn convention: no error


def test_numpy_integer_parameters_are_accepted(X):
    gm = GaussianMixture(np.int64(2), max_iter=np.int32(50), n_init=np.int64(1),
                         random_state=np.int64(0)).fit(X)
    assert gm.means_.shape == (2, 2)


# --------------------------------------------------------------------------------------
# *_init arrays
# --------------------------------------------------------------------------------------
def test_weights_init_shape(X):
    with pytest.raises(ValueError, match=r"weights_init.*shape \(2,\).*\(3,\)"):
        GaussianMixture(2, weights_init=[0.2, 0.3, 0.5]).fit(X)


def test_weights_init_range(X):
    with pytest.raises(ValueError, match=r"weights_init.*\[0, 1\]"):
        GaussianMixture(2, weights_init=[1.5, -0.5]).fit(X)


def test_weights_init_normalisation(X):
    with pytest.raises(ValueError, match=r"weights_init.*sum to 1.*0\.6"):
        GaussianMixture(2, weights_init=[0.3, 0.3]).fit(X)


def test_weights_init_not_finite(X):
    with pytest.raises(ValueError, match=r"weights_init.*NaN"):
        GaussianMixture(2, weights_init=[np.nan, 0.5]).fit(X)


def test_means_init_shape(X):
    with pytest.raises(ValueError, match=r"means_init.*shape \(2, 2\).*\(2, 3\)"):
        GaussianMixture(2, means_init=np.zeros((2, 3))).fit(X)
    with pytest.raises(ValueError, match=r"means_init.*shape"):
        GaussianMixture(2, means_init=np.zeros((3, 2))).fit(X)


def test_means_init_not_finite(X):
    with pytest.raises(ValueError, match=r"means_init.*infinite"):
        GaussianMixture(2, means_init=[[np.inf, 0.0], [0.0, 0.0]]).fit(X)


@pytest.mark.parametrize(
    "covariance_type, shape",
    [("full", (2, 3, 3)), ("full", (2, 2)), ("tied", (2, 2, 2)), ("diag", (2,)),
     ("spherical", (2, 2))],
)
def test_precisions_init_shape(X, covariance_type, shape):
    with pytest.raises(ValueError, match=rf"precisions_init.*shape.*{covariance_type}"):
        GaussianMixture(2, covariance_type=covariance_type,
                        precisions_init=np.ones(shape)).fit(X)


def test_precisions_init_symmetry(X):
    P = np.stack([np.eye(2), [[1.0, 0.5], [0.0, 1.0]]])
    with pytest.raises(ValueError, match=r"precisions_init\[1\].*component 1.*symmetric"):
        GaussianMixture(2, precisions_init=P).fit(X)
    with pytest.raises(ValueError, match=r"precisions_init.*symmetric"):
        GaussianMixture(2, covariance_type="tied",
                        precisions_init=np.array([[1.0, 0.5], [0.0, 1.0]])).fit(X)


def test_precisions_init_positive_definite(X):
    P = np.stack([[[1.0, 2.0], [2.0, 1.0]], np.eye(2)])
    with pytest.raises(ValueError, match=r"precisions_init\[0\].*component 0.*positive definite"):
        GaussianMixture(2, precisions_init=P).fit(X)
    with pytest.raises(ValueError, match=r"precisions_init.*positive definite"):
        GaussianMixture(2, covariance_type="tied",
                        precisions_init=np.array([[1.0, 2.0], [2.0, 1.0]])).fit(X)


@pytest.mark.parametrize("covariance_type, P", [
    ("diag", [[1.0, -2.0], [2.0, 1.0]]),
    ("diag", [[1.0, 0.0], [2.0, 1.0]]),
    ("spherical", [0.0, 1.0]),
    ("spherical", [-1.0, 1.0]),
])
def test_precisions_init_positive(X, covariance_type, P):
    with pytest.raises(ValueError, match=r"precisions_init.*positive"):
        GaussianMixture(2, covariance_type=covariance_type, precisions_init=P).fit(X)


def test_init_arrays_checked_before_any_work(X, monkeypatch):
    """A malformed *_init array fails before the (expensive) initialisation runs."""
    import gaussmix._init as backends

    def boom(*args, **kwargs):
        raise AssertionError("initialisation ran before the *_init arrays were checked")

    monkeypatch.setattr(backends, "kmeans", boom)
    with pytest.raises(ValueError, match="means_init"):
        GaussianMixture(2, means_init=np.zeros((2, 5))).fit(X)


# --------------------------------------------------------------------------------------
# sample_weight
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "sample_weight, match",
    [
        (np.ones(3), r"sample_weight has 3 values.*60 samples"),
        (np.ones((60, 1)), r"sample_weight.*1-D.*\(60,\)"),
        (-np.ones(60), r"non-negative.*60 negative.*index 0"),
        (np.r_[np.ones(10), -0.5, np.ones(49)], r"non-negative.*1 negative.*index 10"),
        (np.zeros(60), r"sums to zero"),
        (np.r_[np.ones(4), np.nan, np.ones(55)], r"sample_weight.*1 NaN.*index 4"),
        (np.r_[np.ones(7), np.inf, np.ones(52)], r"sample_weight.*infinite.*index 7"),
    ],
)
def test_bad_sample_weight(X, sample_weight, match):
    with pytest.raises(ValueError, match=match):
        GaussianMixture().fit(X, sample_weight=sample_weight)


def test_sample_weight_not_numbers(X):
    with pytest.raises(TypeError, match="sample_weight"):
        GaussianMixture().fit(X, sample_weight=np.array(["a"] * 60))


def test_sample_weight_negative_message_is_readable(X):
    """The offending value is printed as a number, not as a NumPy repr."""
    with pytest.raises(ValueError, match="sample_weight") as info:
        GaussianMixture().fit(X, sample_weight=np.r_[np.ones(10), -0.5, np.ones(49)])
    assert "np.float64" not in str(info.value)


@pytest.mark.parametrize("init_params", ["random_from_data", "kmeans", "robust"])
def test_too_few_weighted_rows_for_the_components(X, init_params):
    """Fewer rows of positive weight than components: refused, whatever the start (a
    kmeans start left a component of weight 2e-17; reviewer r1)."""
    sw = np.zeros(60)
    sw[0] = 1.0
    with pytest.raises(ValueError, match=r"Only 1 row of X has a positive sample_weight, "
                                         r"fewer than n_components=2"):
        GaussianMixture(2, init_params=init_params).fit(X, sample_weight=sw)


# --------------------------------------------------------------------------------------
# A collapsed component
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_collapsed_component_is_named_with_the_fixes(covariance_type):
    X = np.repeat(np.array([[0.0, 0.0], [1.0, 1.0], [5.0, 5.0]]), 20, axis=0)
    with pytest.raises(ValueError) as info:
        GaussianMixture(3, covariance_type=covariance_type, reg_covar=0.0,
                        random_state=0).fit(X)
    message = str(info.value)
    assert "not positive definite" in message
    if covariance_type == "tied":
        assert "tied" in message
    else:
        assert "component " in message
    for fix in ("n_components", "reg_covar", "scale the data"):
        assert fix in message, fix


def test_constant_feature_without_regularisation():
    X = np.c_[np.linspace(0, 1, 30), np.ones(30)]
    with pytest.raises(ValueError, match=r"component 0.*reg_covar"):
        GaussianMixture(1, covariance_type="diag", reg_covar=0.0).fit(X)
    # the default reg_covar keeps it finite (whether the fit is also flagged as degenerate
    # is the degeneracy module's call, tested there)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateFitWarning)
        with pytest.warns(RegularizationWarning, match="feature 1 is constant"):
            gm = GaussianMixture(1, covariance_type="diag").fit(X)
    assert np.all(gm.covariances_ > 0)


# --------------------------------------------------------------------------------------
# warm_start with changed structure
# --------------------------------------------------------------------------------------
def test_warm_start_with_other_covariance_type(X):
    gm = GaussianMixture(2, warm_start=True, random_state=0).fit(X)
    gm.set_params(covariance_type="diag")
    with pytest.raises(ValueError, match="warm_start"):
        gm.fit(X)


def test_warm_start_with_other_n_features(X):
    gm = GaussianMixture(2, warm_start=True, random_state=0).fit(X)
    with pytest.raises(ValueError, match=r"warm_start.*features"):
        gm.fit(np.c_[X, X[:, 0]])


def test_warm_start_with_other_n_components(X):
    """A warm start may not silently keep the old number of components."""
    gm = GaussianMixture(2, warm_start=True, random_state=0).fit(X)
    gm.set_params(n_components=3)
    means = gm.means_.copy()
    with pytest.raises(ValueError, match=r"warm_start=True needs the same n_components.*"
                                         r"2 components.*got 3.*warm_start=False"):
        gm.fit(X)
    np.testing.assert_array_equal(gm.means_, means)  # the previous fit is kept as it was
