"""Detection of spurious maximizers (gaussmix._degeneracy) and its use by GaussianMixture."""

from __future__ import annotations

import doctest
import importlib
import warnings

import numpy as np
import pytest

from gaussmix import DegenerateFitWarning, GaussianMixture, RegularizationWarning
from gaussmix._degeneracy import (
    data_covariance,
    degeneracy_reason,
    degeneracy_reason_of_estimator,
    min_component_points,
    mixture_covariance,
)
from gaussmix.datasets import load_faithful

# The collapsed fit scikit-learn reaches on Old Faithful with covariance_type="diag",
# 5 components (init_params="random_from_data", random_state=76): log-likelihood -1042.2,
# i.e. 66 above mclust's VVI,5 (-1108.2), because component 1 sits on the 14 eruptions
# whose waiting time is exactly 83 minutes; its waiting variance is reg_covar.
SPURIOUS_DIAG5 = {
    "weights": np.array(
        [
            0.19028756884227252,
            0.05138076117704898,
            0.16664667791160362,
            0.2220922094177133,
            0.36959278265136153,
        ]
    ),
    "means": np.array(
        [
            [1.8723771599192605, 52.58625208041541],
            [4.203352374938994, 83.0],
            [2.229450628141324, 56.702844176821905],
            [4.586226062278308, 83.28723061029494],
            [4.127315244760881, 77.59664489241044],
        ]
    ),
    "covariances": np.array(
        [
            [1.0550516151111326e-02, 2.2955338435368166e01],
            [1.9731038814217325e-01, 1.0000018189894035e-06],
            [7.3005549612539550e-02, 3.7412007378743624e01],
            [6.0060113380596331e-02, 2.9934733102962699e01],
            [1.4722755260685969e-01, 3.0592642339261719e01],
        ]
    ),
}

# mclust's EEE, G=3 fit of Old Faithful as printed by summary(Mclust(faithful)).
MCLUST_EEE3 = {
    "weights": np.array([0.1656784, 0.3563696, 0.4779520]),
    "means": np.array([[3.793066, 77.521051], [2.037596, 54.491158], [4.463245, 80.833439]]),
    "covariances": np.array([[0.07825448, 0.4801979], [0.4801979, 33.7671464]]),
}


def _log_likelihood(X, weights, means, variances):
    """Total log-likelihood of a diagonal mixture, written naively."""
    dens = np.zeros(X.shape[0])
    for w, m, v in zip(weights, means, variances, strict=True):
        dens += w * np.prod(np.exp(-0.5 * (X - m) ** 2 / v) / np.sqrt(2 * np.pi * v), axis=1)
    return float(np.log(dens).sum())


def test_sklearn_spurious_diag5_on_faithful_is_flagged():
    X = load_faithful()
    p = SPURIOUS_DIAG5
    assert _log_likelihood(X, p["weights"], p["means"], p["covariances"]) == pytest.approx(
        -1042.2, abs=0.1
    )
    reason = degeneracy_reason(
        p["weights"], p["means"], p["covariances"], "diag", X.shape[0], data_covariance(X), 1e-6
    )
    assert reason is not None
    assert "component 1 " in reason
    assert "feature 1" in reason and "regularisation floor" in reason
    # Without the data, the mixture's own covariance stands in for the data's scale.
    assert (
        degeneracy_reason(
            p["weights"], p["means"], p["covariances"], "diag", X.shape[0], None, 1e-6
        )
        == reason
    )


def test_mclust_best_fit_on_faithful_is_not_flagged():
    X = load_faithful()
    p = MCLUST_EEE3
    for scale in (data_covariance(X), None):
        assert (
            degeneracy_reason(p["weights"], p["means"], p["covariances"], "tied", 272, scale, 1e-6)
            is None
        )


def test_estimator_fit_sets_flag_and_warns_on_the_collapsed_start():
    X = load_faithful()
    p = SPURIOUS_DIAG5
    gm = GaussianMixture(
        5,
        covariance_type="diag",
        weights_init=p["weights"],
        means_init=p["means"],
        precisions_init=1.0 / p["covariances"],
    )
    with pytest.warns(DegenerateFitWarning, match="component 1"):
        gm.fit(X)
    assert gm.degenerate_ is True
    assert "regularisation floor" in gm.degenerate_reason_
    assert gm.score(X) * X.shape[0] > -1050


def test_estimator_regular_fit_is_not_flagged():
    X = load_faithful()
    p = MCLUST_EEE3
    gm = GaussianMixture(
        3,
        covariance_type="tied",
        weights_init=p["weights"],
        means_init=p["means"],
        precisions_init=np.linalg.inv(p["covariances"]),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", DegenerateFitWarning)
        gm.fit(X)
    assert gm.degenerate_ is False and gm.degenerate_reason_ is None
    assert degeneracy_reason_of_estimator(gm, X) is None


@pytest.mark.parametrize(
    ("covariance_type", "expected"),
    [("full", 4), ("diag", 2), ("spherical", 2), ("tied", 1)],
)
def test_min_component_points(covariance_type, expected):
    assert min_component_points(covariance_type, 3) == expected


def test_too_few_points_full():
    scale = np.eye(2)
    covs = np.stack([np.eye(2), np.eye(2) * 0.5])
    reason = degeneracy_reason([0.99, 0.01], [[0, 0], [3, 3]], covs, "full", 200, scale, 1e-6)
    assert reason is not None and "component 1 " in reason and "2 effective points" in reason
    assert degeneracy_reason([0.9, 0.1], [[0, 0], [3, 3]], covs, "full", 200, scale, 1e-6) is None


def test_full_covariance_flat_along_a_diagonal_direction():
    v = np.array([1.0, -1.0]) / np.sqrt(2)
    u = np.array([1.0, 1.0]) / np.sqrt(2)
    flat = 2.0 * np.outer(u, u) + 1e-6 * np.outer(v, v)  # points on a line, plus reg_covar
    covs = np.stack([np.eye(2), flat])
    reason = degeneracy_reason([0.5, 0.5], np.zeros((2, 2)), covs, "full", 100, np.eye(2), 1e-6)
    assert reason is not None and "direction" in reason and "component 1 " in reason


def test_tied_floor_names_the_shared_covariance():
    cov = np.diag([1.0, 1e-6 + 1e-13])
    reason = degeneracy_reason([0.5, 0.5], np.zeros((2, 2)), cov, "tied", 100, np.eye(2), 1e-6)
    assert reason is not None and reason.startswith("the shared (tied) covariance")


def test_spherical_floor():
    reason = degeneracy_reason(
        [0.5, 0.5], np.zeros((2, 2)), [1.0, 1e-6 + 1e-13], "spherical", 100, np.eye(2), 1e-6
    )
    assert reason is not None and "component 1 " in reason


def test_genuinely_tight_cluster_is_not_flagged():
    # Standard deviation 1/300 of the data's: narrow, but far above the floor.
    covs = np.array([[1.0, 1.0], [1e-5, 1e-5]]) + 1e-6
    reason = degeneracy_reason([0.5, 0.5], np.zeros((2, 2)), covs, "diag", 100, np.ones(2), 1e-6)
    assert reason is None


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_narrow_clusters_far_apart_are_not_flagged(covariance_type):
    # Standard deviation 0.05, 9999 apart: 2e5 standard deviations, yet a textbook fit.
    rng = np.random.default_rng(4)
    X = np.r_[rng.normal(0, 0.05, (200, 1)), rng.normal(9999, 0.05, (200, 1))]
    X = np.c_[X, rng.normal(0, 1, (400, 1))]
    gm = GaussianMixture(2, covariance_type=covariance_type, means_init=[[0, 0], [9999, 0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error", DegenerateFitWarning)
        gm.fit(X)
    assert gm.degenerate_ is False
    resp = gm.predict_proba(X)
    assert (
        degeneracy_reason(
            gm.weights_,
            gm.means_,
            gm.covariances_,
            covariance_type,
            400,
            data_covariance(X),
            gm.reg_covar,
            X=X,
            resp=resp,
        )
        is None
    )


def test_max_iter_zero_is_not_judged():
    X = load_faithful()
    gm = GaussianMixture(9, init_params="random_from_data", max_iter=0, random_state=0)
    gm.fit(X)
    assert degeneracy_reason_of_estimator(gm, X) is None


def test_spherical_component_on_one_level_of_a_rounded_feature():
    # Points share feature 1 exactly; the spherical variance (0.5) looks regular.
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.normal(size=60), np.r_[np.full(30, 5.0), rng.normal(0, 3, 30)]])
    resp = np.zeros((60, 2))
    resp[:30, 0] = 1.0
    resp[30:, 1] = 1.0
    args = ([0.5, 0.5], [[0.0, 5.0], [0.0, 0.0]], [0.5, 5.0], "spherical", 60, data_covariance(X))
    assert degeneracy_reason(*args, 1e-6) is None  # parameters alone look fine
    reason = degeneracy_reason(*args, 1e-6, X=X, resp=resp)
    assert reason is not None and "component 0 " in reason and "feature 1" in reason


def test_mixture_covariance_equals_data_covariance_after_an_m_step():
    X = load_faithful()
    for covariance_type in ("full", "tied", "diag", "spherical"):
        gm = GaussianMixture(3, covariance_type=covariance_type, random_state=0, max_iter=5)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gm.fit(X)
        mix = mixture_covariance(gm.weights_, gm.means_, gm.covariances_, covariance_type)
        data = data_covariance(X)
        if covariance_type in ("full", "tied"):
            np.testing.assert_allclose(mix, data, rtol=1e-3)
        elif covariance_type == "diag":
            np.testing.assert_allclose(np.diag(mix), np.diag(data), rtol=1e-3)
        else:
            assert np.trace(mix) == pytest.approx(np.trace(data), rel=1e-3)


def test_bad_arguments():
    with pytest.raises(ValueError, match="covariance_type"):
        degeneracy_reason([1.0], [[0.0]], [[1.0]], "banana", 10, np.eye(1), 1e-6)
    with pytest.raises(ValueError, match="data_scale"):
        degeneracy_reason([1.0], [[0.0, 0.0]], [[1.0, 1.0]], "diag", 10, np.eye(3), 1e-6)
    with pytest.raises(ValueError, match="weights"):
        degeneracy_reason([0.5, 0.5], [[0.0]], [[1.0]], "diag", 10, np.eye(1), 1e-6)


def test_constant_feature_is_not_held_against_components():
    rng = np.random.default_rng(0)
    X = np.column_stack([np.r_[rng.normal(0, 1, 50), rng.normal(8, 1, 50)], np.full(100, 3.0)])
    gm = GaussianMixture(2, covariance_type="diag", random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DegenerateFitWarning)
        # not degenerate, but said: its variance is reg_covar in every component
        with pytest.warns(RegularizationWarning, match="feature 1 is constant"):
            gm.fit(X)
    assert gm.degenerate_ is False
    assert degeneracy_reason_of_estimator(gm, X) is None


def test_docstring_examples_run():
    module = importlib.import_module("gaussmix._degeneracy")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS, verbose=False, report=True)
    assert result.attempted > 0 and result.failed == 0


# --------------------------------------------------------------------------------------
# Degeneracy rules per model (issue 11, item 4): each of the 14 with a collapsing component
# --------------------------------------------------------------------------------------
from gaussmix import families as _families  # noqa: E402
from gaussmix._degeneracy import scatter_rules  # noqa: E402

# Which collapse each model can have. "one": component 1's points share one value of
# feature 1 (the other component's points spread); "all": both components' points share
# one value of feature 1 each. A model collapses when a piece that sees the flat scatter
# has no other points to pool with.
_ONE_FLAT = {"VVV", "EVV", "VVI", "EVI", "EVE", "VVE", "VII"}
_ALL_FLAT = _ONE_FLAT | {"EEE", "VEE", "EEI", "VEI", "EEV", "VEV"}  # not EII: pooled trace


def _flat_data(both):
    rng = np.random.default_rng(3)
    a = np.c_[rng.normal(0, 1, 80), rng.normal(0, 1, 80) if not both else np.full(80, -2.0)]
    b = np.c_[rng.normal(8, 1, 40), np.full(40, 6.0)]
    X = np.r_[a, b]
    resp = np.zeros((120, 2))
    resp[:80, 0] = 1.0
    resp[80:, 1] = 1.0
    return X, resp


def _judged(model_name, both):
    X, resp = _flat_data(both)
    gm = GaussianMixture(2, covariance_type=model_name, means_init=[[0, 0], [8, 6]],
                         max_iter=200, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gm.fit(X)
    # EM keeps the two clusters apart (8 standard deviations): the responsibilities are
    # the clusters'.
    np.testing.assert_array_equal(gm.predict(X), resp.argmax(axis=1))
    return gm, degeneracy_reason_of_estimator(gm, X)


@pytest.mark.parametrize("model_name", _families.MCLUST_MODELS)
def test_each_model_with_one_flat_component(model_name):
    """Component 1 sits on points sharing one value of feature 1. Models with a piece of
    their own there (their own shape: VVV, EVV, VVI, EVI, EVE, VVE; VII's hidden flat
    direction) are degenerate and name component 1; models that pool that piece with
    component 0's spread (EII, EEI, VEI, EEE, VEE, EEV, VEV) are regular."""
    gm, reason = _judged(model_name, both=False)
    if model_name in _ONE_FLAT:
        assert reason is not None and "component 1 " in reason, reason
        assert "component 0 " not in reason, reason
        assert gm.degenerate_ is True
    else:
        assert reason is None, reason
        assert gm.degenerate_ is False


@pytest.mark.parametrize("model_name", _families.MCLUST_MODELS)
def test_each_model_with_every_component_flat(model_name):
    """Both components sit on points sharing one value of feature 1 each: every model but
    EII (one pooled variance, which the other feature keeps up) is degenerate."""
    gm, reason = _judged(model_name, both=True)
    if model_name in _ALL_FLAT:
        assert reason is not None and "feature 1" in reason, reason
    else:
        assert reason is None, reason
    assert gm.degenerate_ is (reason is not None)


def test_scatter_rules_follow_volume_shape_orientation():
    rules = {name: scatter_rules(name) for name in _families.MCLUST_MODELS}
    assert rules["VVV"] == ("any", None) and rules["EVV"] == ("any", None)
    assert rules["VVI"] == ("axes", None) and rules["EVI"] == ("axes", None)
    assert rules["EVE"] == ("any", None) and rules["VVE"] == ("any", None)
    assert rules["EEE"] == (None, "any") and rules["VEE"] == ("all", "any")
    assert rules["EEI"] == (None, "axes") and rules["VEI"] == ("all", "axes")
    assert rules["EEV"] == (None, "each") and rules["VEV"] == ("all", "each")
    assert rules["EII"] == (None, "all") and rules["VII"] == ("all", None)


@pytest.mark.parametrize("model_name", ["VEI", "VEE", "VEV"])
def test_variable_volume_models_collapse_on_identical_points(model_name):
    """A component of variable volume on identical points (here 5 copies of one row)
    shrinks its volume to reg_covar: degenerate, though it has min_points rows."""
    rng = np.random.default_rng(0)
    X = np.r_[rng.normal(0, 1, (100, 2)), np.repeat([[9.0, 9.0]], 5, axis=0)]
    resp = np.zeros((105, 2))
    resp[:100, 0] = 1.0
    resp[100:, 1] = 1.0
    gm = GaussianMixture(2, covariance_type=model_name, means_init=[[0, 0], [9, 9]],
                         random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gm.fit(X)
    reason = degeneracy_reason_of_estimator(gm, X)
    assert reason is not None and "component 1 " in reason and "identical" in reason, reason


def test_pooled_full_covariance_from_too_few_points_is_degenerate():
    # 5 points in 8 dimensions: at K = 1 the fourteen models' full-matrix members are one
    # and the same fit, singular but for reg_covar; full, EVE, VVE, EVV were flagged by
    # the count rule while tied, VEE, EEV and VEV were ranked (and selected).
    from gaussmix import select_model

    X = np.random.default_rng(5).normal(size=(5, 8))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = select_model(X, n_components=[1])
    full_matrix = {"full", "tied", "EVE", "VVE", "EVV", "VEE", "EEV", "VEV"}
    rows = {row["covariance_type"]: row for row in result.table}
    assert {t for t, row in rows.items() if row["degenerate"]} == full_matrix
    assert result.best_params_["covariance_type"] not in full_matrix


def test_flattest_direction_reads_each_feature_s_mean_as_the_unit_vectors_did():
    """_flattest_direction's per-feature floors (the squared mean along each axis: one
    component's mean squared, or the weighted median over several) give the verdicts of
    the products with the unit vectors, feature by feature."""
    from gaussmix._degeneracy import _flattest_direction, _weighted_median

    eps = np.finfo(np.float64).eps
    rng = np.random.default_rng(3)
    for _ in range(300):
        D = int(rng.integers(1, 5))
        A = rng.normal(size=(D, D))
        W = A @ A.T * 10.0 ** rng.integers(-12, 2)
        K = int(rng.choice([1, 3]))
        means = rng.normal(size=(K, D)) * 10.0 ** rng.integers(-2, 8)
        weights = np.full(K, 1.0 / K)
        varying = np.arange(D)
        found = _flattest_direction(W, means, weights, varying, 1e-6, eps, 100.0, True)
        expected = None
        for j in range(D):
            floor = max(_floor(1e-6), 100.0 * eps * _weighted_median(
                (means @ np.eye(D)[j]) ** 2, weights))
            if W[j, j] <= floor:
                expected = j
                break
        assert (found is None) == (expected is None)
        if found is not None:
            assert found[0] == W[expected, expected] and found[1][expected] == 1.0


def _floor(reg_covar):
    from gaussmix._degeneracy import REG_FRACTION

    return REG_FRACTION * reg_covar
