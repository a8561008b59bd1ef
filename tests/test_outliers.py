"""Fits survive far outliers (issue 15, item 2), and the two false degenerate flags.

Reproduction (issue 15, item 2): Old Faithful plus one row whose first value is 1e10
times the data's scale. Before the change every fit with K >= 2 failed ("the component
has collapsed ... raise reg_covar", or a NaN variance from an E-step whose exp()
overflowed), and the fits that completed were flagged degenerate for their *regular*
components (the rounding floor grew with the outlier-inflated variance of the data).
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest

from gaussmix import DegenerateFitWarning, GaussianMixture, select_model
from gaussmix._degeneracy import degeneracy_reason, outlier_components
from gaussmix._init import ISOLATION_SDS, far_rows
from gaussmix.datasets import load_faithful
from gaussmix.stats import MixtureParameters, block_statistics, m_step

FAMILIES = ("full", "tied", "diag", "spherical")
FACTORS = (1e6, 1e8, 1e10, 1e12)
# Largest deviation of "the rest" of a model from the fit without the outlier: means in
# the data's standard deviations, covariances in products of them, weights absolutely.
TOL = 5e-3


def _with_outlier(factor, dtype=np.float64):
    X = load_faithful().astype(np.float64)
    sd = X.std(axis=0)
    outlier = X.mean(axis=0)
    outlier[0] += sd[0] * factor
    return X.astype(dtype), np.vstack([X, outlier]).astype(dtype), sd


def _full(model):
    K, D = model.means_.shape
    return model._family().full_covariances(np.asarray(model.covariances_, np.float64), K, D)


def _deviation_of_rest(model, clean, X, sd):
    """Largest deviation of the components other than the outlier's from ``clean``."""
    k_out = int(model.predict(X[-1:])[0])
    assert float(model.weights_[k_out]) * X.shape[0] == pytest.approx(1.0, rel=1e-5)
    keep = [k for k in range(model.n_components) if k != k_out]
    w = np.asarray(model.weights_, np.float64)[keep]
    w = w / w.sum()
    m = np.asarray(model.means_, np.float64)[keep]
    c = _full(model)[keep]
    w0, m0, c0 = np.asarray(clean.weights_, np.float64), clean.means_, _full(clean)
    best = np.inf
    for perm in itertools.permutations(range(len(keep))):
        p = list(perm)
        best = min(best, max(
            np.max(np.abs(m[p] - m0) / sd),
            np.max(np.abs(c[p] - c0) / np.outer(sd, sd)),
            np.max(np.abs(w[p] - w0)),
        ))
    return best


def _rest_model(model, X):
    """The model without the outlier's component (weights renormalised), unfitted EM."""
    k_out = int(model.predict(X[-1:])[0])
    keep = [k for k in range(model.n_components) if k != k_out]
    w = model.weights_[keep] / model.weights_[keep].sum()
    prec = model.precisions_ if model.covariance_type == "tied" else model.precisions_[keep]
    return GaussianMixture(len(keep), covariance_type=model.covariance_type, weights_init=w,
                           means_init=model.means_[keep], precisions_init=prec,
                           max_iter=0).fit(X[:-1])


def _fit(X, k, covariance_type, init="kmeans"):
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        gm = GaussianMixture(k, covariance_type=covariance_type, init_params=init,
                             random_state=0).fit(X)
    return gm, [str(w.message) for w in record if issubclass(w.category, DegenerateFitWarning)]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("factor", FACTORS)
@pytest.mark.parametrize("covariance_type", FAMILIES)
def test_every_fit_survives_a_far_outlier(covariance_type, factor, dtype):
    """Issue 15 item 2: K = 2..4 (default init) complete; the outlier's component is
    flagged (warning naming it and its 1 point, ``outlier_components_``); the other
    components equal the fit with one component fewer on the data without the outlier."""
    clean, X, sd = _with_outlier(factor, dtype)
    for k in (2, 3, 4):
        gm, messages = _fit(X, k, covariance_type)
        reference, _ = _fit(clean, k - 1, covariance_type)
        assert gm.outlier_rows_.tolist() == [X.shape[0] - 1]
        k_out = int(gm.predict(X[-1:])[0])
        assert gm.outlier_components_.tolist() == [k_out]
        assert any(f"component {k_out} holds 1 effective point," in m for m in messages), messages
        assert gm.degenerate_ is False, gm.degenerate_reason_
        assert _deviation_of_rest(gm, reference, X, sd) <= TOL


@pytest.mark.parametrize("factor", [1e6, 1e12])
@pytest.mark.parametrize("covariance_type", FAMILIES)
def test_robust_start_survives_a_far_outlier(covariance_type, factor):
    clean, X, sd = _with_outlier(factor)
    for k in (2, 3):
        gm, _ = _fit(X, k, covariance_type, "robust")
        reference, _ = _fit(clean, k - 1, covariance_type, "robust")
        assert gm.outlier_components_.size == 1
        assert _deviation_of_rest(gm, reference, X, sd) <= TOL


def test_one_component_absorbs_the_outlier():
    _, X, _ = _with_outlier(1e10)
    gm, messages = _fit(X, 1, "full")
    assert gm.outlier_rows_.size == 0 and gm.outlier_components_.size == 0
    assert messages == []  # nothing collapsed: the one component spans the outlier
    assert np.all(np.isfinite(gm.covariances_))


@pytest.mark.parametrize("factor", FACTORS)
def test_select_model_and_auto_type_complete_and_isolate_the_outlier(factor):
    """``-k auto`` (select_model over K, one type) and ``-c auto`` (all four types): with
    the outlier, the model selected is one with a component holding the outlier alone
    and the rest equal to the clean fit with one component fewer. For one type, that is
    the model selected without the outlier plus the outlier's component. Over all types
    the choice may differ (Old Faithful: full K=3 instead of tied K=3), because the
    outlier's own covariance, at reg_covar, gains -D/2 log(2 pi reg_covar) = +13.8 in
    log-likelihood in families where it has its own covariance, not in tied."""
    clean, X, _ = _with_outlier(factor)
    for types in (["full"], ["diag"], None):
        kwargs = {} if types is None else {"covariance_types": types}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            best = select_model(X, n_components=range(1, 5), random_state=0,
                                **kwargs).best_estimator_
            if types is None:
                kwargs = {"covariance_types": [best.covariance_type]}
                ks = [best.n_components - 1]
            else:
                ks = range(1, 4)
            ref = select_model(clean, n_components=ks, random_state=0,
                               **kwargs).best_estimator_
        assert best.covariance_type == ref.covariance_type
        assert best.n_components == ref.n_components + 1
        found = outlier_components(best.weights_, best.means_, best.covariances_,
                                   best.covariance_type, X.shape[0])
        assert [k for k, _, _ in found] == [int(best.predict(X[-1:])[0])]
        assert best.degenerate_ is False
        # The rest is a fit of the clean data at least as good as the clean selection's
        # (at 1e10, diag: -1127.01 against -1128.56, another local maximum, whence no
        # comparison of parameters here; the fits of GaussianMixture are compared above).
        assert _rest_model(best, X).score(clean) * len(clean) >= (
            ref.score(clean) * len(clean) - 0.05)


def test_selection_log_likelihood_with_a_far_row_in_every_feature():
    """A far row in all three features: the one-component covariance has condition number
    1e11 and every row sits 2.7e4 from the data's centre. The selection table's
    log-likelihood of K = 1 (a unique maximum: the sample mean and covariance) is
    GaussianMixture's, for each type. (It was +41,072 against -622.52 for tied here:
    LAPACK's slightly asymmetric inverse times quadratic features of 1e9.)"""
    rng = np.random.default_rng(66)
    X = rng.normal(size=(37, 3))
    X[0] = 1e6
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = select_model(X, n_components=[1, 2], covariance_types="sklearn",
                              random_state=0)
        for row in result.table:
            if row["n_components"] != 1:
                continue
            single = GaussianMixture(1, covariance_type=row["covariance_type"]).fit(X)
            assert row["log_likelihood"] == pytest.approx(single.score(X) * len(X),
                                                          rel=1e-6)


def test_command_line_k_auto_reports_the_outlier(tmp_path):
    from gaussmix import cli

    _, X, _ = _with_outlier(1e10)
    path = tmp_path / "data.csv"
    np.savetxt(path, X, delimiter=",", header="eruptions,waiting", comments="")
    for extra in (["-k", "auto"], ["-k", "auto", "-c", "auto"]):
        out = tmp_path / f"out{len(extra)}"
        import contextlib
        import io

        stdout = io.StringIO()
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(io.StringIO()):
            code = cli.main(["fit", str(path), *extra, "-o", str(out), "--no-plots"])
        assert code in (0, None)
        text = stdout.getvalue()
        assert "outlier          component" in text and "holds 1 point" in text


# --------------------------------------------------------------------------------------
# The numerical pieces
# --------------------------------------------------------------------------------------
def test_far_rows_finds_the_outlier_and_nothing_in_gaussian_data():
    rng = np.random.default_rng(0)
    X = rng.standard_t(3, size=(20000, 3))  # heavy tails, still no row 1e4 sd out
    assert far_rows(X, None, 3) == []
    X[17, 1] = 1e6
    found = far_rows(X, None, 3)
    assert [row for row, _ in found] == [17] and found[0][1] > ISOLATION_SDS
    weights = np.ones(len(X))
    weights[17] = 0.0
    assert far_rows(X, weights, 3) == []  # a row of zero weight is never isolated


@pytest.mark.parametrize("covariance_type", FAMILIES)
def test_score_of_a_model_with_a_far_component_is_exact(covariance_type):
    """The E-step of predictions had no redo: the shared whitening's expansion about the
    centre put the summary's log-likelihood 200 below the truth (tied, outlier 1e10)."""
    _, X, _ = _with_outlier(1e10)
    gm, _ = _fit(X, 3, covariance_type)
    naive = np.zeros((X.shape[0], 3))
    for k in range(3):
        cov = gm._family().component_covariance(np.asarray(gm.covariances_), k, 2)
        L = np.linalg.cholesky(cov)
        z = np.linalg.solve(L, (X - gm.means_[k]).T)
        naive[:, k] = (np.log(gm.weights_[k]) - 0.5 * np.sum(z**2, axis=0)
                       - np.log(np.diag(L)).sum() - np.log(2 * np.pi))
    top = naive.max(axis=1)
    expected = top + np.log(np.exp(naive - top[:, None]).sum(axis=1))
    # (The E-step's own rounding on the regular rows is ~1e-8; the bug was 200 in total.)
    np.testing.assert_allclose(gm.score_samples(X), expected, rtol=1e-6)


def test_tied_step_of_a_mean_jumping_onto_a_far_outlier():
    """A tied EM step where a component's mean moves 5e9 onto the outlier: the moments
    about the old means cancelled (pooled eigenvalue -30 -> "not positive definite");
    the step is redone about the new means (the reproduction is the robust start of
    K=4 tied at 1e10, before far rows were isolated)."""
    _, X, _ = _with_outlier(1e10)
    base = X[:-1]
    means = np.array([base.mean(axis=0), [X[-1, 0] - 5e9, X[-1, 1]]])
    cov = np.array([[4.4e17, 0.0], [0.0, 35.0]])
    params = MixtureParameters.from_covariances("tied", np.array([0.99, 0.01]), means, cov)
    stats = block_statistics(X, params)
    new = m_step(stats, reg_covar=1e-6)  # raised ValueError before
    from gaussmix.stats import predict_proba

    resp = predict_proba(X, params)  # the two-pass pooled scatter of these
    exact = 1e-6 * np.eye(2)
    for k in range(2):
        mean = resp[:, k] @ X / resp[:, k].sum()
        exact += ((X - mean) * resp[:, [k]]).T @ (X - mean) / len(X)
    np.testing.assert_allclose(new.covariances, exact, rtol=1e-8)


def test_diag_step_with_a_component_on_a_far_outlier_stays_finite():
    """Diagonal precisions with a component at variance reg_covar 1e12 away: the
    quadratic E-step's log-densities rounded by 1e14 and exp() overflowed (a RuntimeWarning
    printed by the command line: "gaussmix: warning: overflow encountered in exp"; in a
    fit, NaN variances when the redo's means were NaN too)."""
    _, X, _ = _with_outlier(1e12)
    base = X[:-1]
    params = MixtureParameters.from_covariances(
        "diag", np.array([272 / 273, 1 / 273]), np.array([base.mean(axis=0), X[-1]]),
        np.array([base.var(axis=0), [1e-6, 1e-6]]))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        new = m_step(block_statistics(X, params), reg_covar=1e-6)
    np.testing.assert_allclose(new.covariances[0], base.var(axis=0) + 1e-6, rtol=1e-10)
    np.testing.assert_allclose(new.covariances[1], 1e-6, rtol=1e-6)


# --------------------------------------------------------------------------------------
# The two false degenerate flags
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("constant", [1.0, 5.0, 1e3])
def test_spherical_with_a_constant_column_is_not_flagged(constant):
    """Reproduction: Old Faithful plus a constant column of 1.0, spherical, K = 1..3:
    "its points have no spread along feature 2 (weighted variance 0, the data's is
    7.1e-30)": the data's variance of the constant column was rounding, not spread."""
    X = np.c_[load_faithful(), np.full(272, constant)]
    for k in (1, 2, 3):
        gm, messages = _fit(X, k, "spherical")
        assert gm.degenerate_ is False, gm.degenerate_reason_
        assert messages == []


@pytest.mark.parametrize("covariance_type", ["tied", "full"])
def test_columns_at_1e_minus_8_and_1e8_are_not_flagged(covariance_type):
    """Reproduction: three blobs (100 rows each, 3-D, unit spread) with the columns
    scaled by 1e-8, 1 and 1e8; tied K=1: "its covariance's smallest eigenvalue -9.38 along
    feature 1 is at the regularisation floor" (the issue saw -2.06): the eigenvalue of the
    covariance itself carries a rounding of eps * 1e16; the check now works on the
    correlation matrix."""
    rng = np.random.default_rng(0)
    B = np.vstack([rng.normal(m, 1, (100, 3)) for m in ([0, 0, 0], [5, 5, 0], [0, 5, 5])])
    X = B * np.array([1e-8, 1.0, 1e8])
    for k in (1, 2, 4):
        gm, _ = _fit(X, k, covariance_type)
        assert gm.degenerate_ is False, (k, gm.degenerate_reason_)


def test_a_truly_flat_component_is_still_flagged_at_any_scale():
    """The scale-free check still sees a component flat along a direction (a line)."""
    u = np.array([1.0, 1.0]) / np.sqrt(2)
    for s in (1e-3, 1.0, 1e6):
        flat = s * 2.0 * np.outer(u, u) + 1e-6 * np.eye(2)
        covs = np.stack([s * np.eye(2) + 1e-6 * np.eye(2), flat])
        scale = s * np.eye(2) * 3
        reason = degeneracy_reason([0.5, 0.5], np.zeros((2, 2)), covs, "full", 100, scale, 1e-6)
        assert reason is not None and "component 1 " in reason and "component 0 " not in reason


def test_selection_over_all_models_completes_on_float32_input_at_1e12():
    """benchmarks/outlier_matrix.py's one failure after the 14-model default landed:
    ``select -c auto`` on float32 data with an outlier at 1e12 stopped with LinAlgError
    (a covariance factored, yet singular to working precision, in the batched E-step)."""
    clean, X, _ = _with_outlier(1e12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = select_model(X.astype(np.float32), n_components=range(1, 5), random_state=0)
    best = result.best_estimator_
    assert best.n_components >= 2
    assert int(best.predict(X[-1:])[0]) not in best.predict(clean)


def _two_clusters_with_holes_and_a_far_row():
    rng = np.random.default_rng(1)
    X = np.vstack([rng.normal(0, 1, (150, 2)), rng.normal(6, 1, (150, 2))])
    rows = np.arange(len(X))
    X[rows % 7 == 0, 0] = np.nan
    X[(rows % 11 == 0) & (rows % 7 != 0), 1] = np.nan
    X[3] = [1e9, np.nan]
    return X


def test_the_start_with_missing_values_is_not_dragged_by_a_far_value():
    # The start filled the holes with the column mean, which the far value moved to 3.9e6:
    # the filled rows formed a second far cluster and the clusters' start mean was 5.6e5.
    X = _two_clusters_with_holes_and_a_far_row()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateFitWarning)
        gm = GaussianMixture(2, max_iter=0, random_state=0).fit(X)
    inliers = int(np.argmin(np.abs(gm.means_[:, 0])))
    assert -1 < gm.means_[inliers, 0] < 7
    assert gm.covariances_[inliers, 0, 0] < 100


@pytest.mark.parametrize("init_params", ["kmeans", "robust"])
def test_a_far_incomplete_row_gets_its_component(init_params):
    # Adding the complete rows' statistics moved the far incomplete row's moments
    # (N = 1, at 1e9) to the complete rows' centre: 1e18 cancelled to a negative variance
    # and the fit failed ("not positive definite ... smallest eigenvalue -128").
    X = _two_clusters_with_holes_and_a_far_row()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateFitWarning)
        gm = GaussianMixture(2, random_state=0, init_params=init_params).fit(X)
    far = int(np.argmax(gm.means_[:, 0]))
    assert gm.means_[far, 0] == pytest.approx(1e9)
    assert np.all(np.linalg.eigvalsh(gm.covariances_) > 0)
    assert list(gm.outlier_components_) == [far]


def test_select_model_with_missing_values_isolates_the_far_row():
    # select_model's missing-value path started every component on partitions in which
    # the far row (1e9, NaN) shared a cluster, and shrank every start variance towards a
    # pooled variance the far row inflated by 1e15: the fits with its own component were
    # flagged degenerate (2 effective points) and never selected (best: tied K=3).
    X = _two_clusters_with_holes_and_a_far_row()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = select_model(X, n_components=range(1, 4), random_state=0,
                              covariance_types=["spherical", "full"])
    best = result.best_estimator_
    assert (best.covariance_type, best.n_components) == ("spherical", 3)
    assert best.degenerate_ is False
    found = outlier_components(best.weights_, best.means_, best.covariances_,
                               best.covariance_type, X.shape[0])
    assert [k for k, _, _ in found] == [int(best.predict(X[3:4])[0])]
    assert not any(row["degenerate"] for row in result.table if row["n_components"] > 1)
