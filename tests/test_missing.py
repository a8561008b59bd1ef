"""Exact EM with missing values (Ghahramani & Jordan 1994) against a naive reference.

The reference is written straight from the equations: a loop over rows and components,
explicit inverses and determinants of each row's observed block, the conditional mean and
covariance of its missing block, and the textbook M-step of each family.
"""

import numpy as np
import pytest

from gaussmix import ConvergenceWarning, GaussianMixture

FAMILIES = ("full", "tied", "diag", "spherical")


def _data(n=240, seed=0, missing=0.2):
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(3, 3))
    X = np.vstack([
        rng.normal(size=(n // 2, 3)) @ A,
        rng.normal(size=(n - n // 2, 3)) @ A.T * 0.5 + [4.0, -2.0, 1.0],
    ])
    Xm = X.copy()
    Xm[rng.random(X.shape) < missing] = np.nan
    keep = ~np.isnan(Xm).all(axis=1)
    return X[keep], Xm[keep]


def _start(covariance_type, D=3):
    weights = np.array([0.4, 0.6])
    means = np.array([[0.5, 0.2, -0.3], [3.0, -1.5, 1.2]])
    full = np.array([
        [[2.0, 0.3, 0.1], [0.3, 1.5, -0.2], [0.1, -0.2, 1.0]],
        [[1.2, -0.4, 0.2], [-0.4, 1.8, 0.3], [0.2, 0.3, 0.9]],
    ])
    if covariance_type == "full":
        cov, stored = full, full
    elif covariance_type == "tied":
        cov = np.stack([full[0], full[0]])
        stored = full[0]
    elif covariance_type == "diag":
        stored = np.array([[2.0, 1.5, 1.0], [1.2, 1.8, 0.9]])
        cov = np.stack([np.diag(v) for v in stored])
    else:
        stored = np.array([1.3, 0.8])
        cov = np.stack([v * np.eye(D) for v in stored])
    precisions = np.linalg.inv(stored) if covariance_type in ("full", "tied") else 1.0 / stored
    return weights, means, cov, precisions


def _reference_e_step(X, weights, means, cov):
    """Per row: log p(x_o), responsibilities, completed rows and conditional covariances."""
    n, D = X.shape
    K = len(weights)
    log_p = np.empty(n)
    resp = np.empty((n, K))
    completed = np.empty((n, K, D))
    cond = np.zeros((n, K, D, D))
    for i in range(n):
        o = ~np.isnan(X[i])
        m = ~o
        logs = np.empty(K)
        for k in range(K):
            S_oo = cov[k][np.ix_(o, o)]
            inv = np.linalg.inv(S_oo)
            d = X[i, o] - means[k, o]
            logs[k] = np.log(weights[k]) - 0.5 * (
                o.sum() * np.log(2 * np.pi) + np.log(np.linalg.det(S_oo)) + d @ inv @ d
            )
            completed[i, k] = X[i]
            if m.any():
                S_mo = cov[k][np.ix_(m, o)]
                completed[i, k, m] = means[k, m] + S_mo @ inv @ d
                cond[i, k][np.ix_(m, m)] = cov[k][np.ix_(m, m)] - S_mo @ inv @ S_mo.T
        top = logs.max()
        log_p[i] = top + np.log(np.exp(logs - top).sum())
        resp[i] = np.exp(logs - log_p[i])
    return log_p, resp, completed, cond


def _reference_em(X, covariance_type, weights, means, cov, n_iter, reg_covar):
    n, D = X.shape
    bounds = []
    for _ in range(n_iter):
        log_p, resp, completed, cond = _reference_e_step(X, weights, means, cov)
        bounds.append(log_p.mean())
        nk = resp.sum(axis=0)
        means = np.einsum("nk,nkd->kd", resp, completed) / nk[:, None]
        full = np.empty((len(nk), D, D))
        for k in range(len(nk)):
            diff = completed[:, k] - means[k]
            full[k] = (
                np.einsum("n,ni,nj->ij", resp[:, k], diff, diff)
                + np.einsum("n,nij->ij", resp[:, k], cond[:, k])
            ) / nk[k]
        if covariance_type == "full":
            cov = full + reg_covar * np.eye(D)
        elif covariance_type == "tied":
            pooled = np.einsum("k,kij->ij", nk, full) / nk.sum() + reg_covar * np.eye(D)
            cov = np.stack([pooled] * len(nk))
        elif covariance_type == "diag":
            cov = np.stack([np.diag(np.diag(f) + reg_covar) for f in full])
        else:
            cov = np.stack([(np.trace(f) / D + reg_covar) * np.eye(D) for f in full])
        weights = nk / n
    return weights, means, cov, bounds


def _stored(cov, covariance_type):
    if covariance_type == "full":
        return cov
    if covariance_type == "tied":
        return cov[0]
    if covariance_type == "diag":
        return np.diagonal(cov, axis1=1, axis2=2)
    return cov[:, 0, 0]


def _fit_from(Xm, covariance_type, n_iter):
    weights, means, _, precisions = _start(covariance_type)
    gm = GaussianMixture(
        2, covariance_type=covariance_type, weights_init=weights, means_init=means,
        precisions_init=precisions, tol=0.0, max_iter=n_iter,
    )
    with pytest.warns(ConvergenceWarning):
        return gm.fit(Xm)


@pytest.mark.parametrize("covariance_type", FAMILIES)
def test_em_agrees_with_the_naive_reference(covariance_type):
    _, Xm = _data()
    gm = _fit_from(Xm, covariance_type, n_iter=4)
    weights, means, cov, _ = _start(covariance_type)
    ref_w, ref_mu, ref_cov, bounds = _reference_em(
        Xm, covariance_type, weights, means, cov, 4, gm.reg_covar
    )
    np.testing.assert_allclose(gm.weights_, ref_w, rtol=1e-7)
    np.testing.assert_allclose(gm.means_, ref_mu, rtol=1e-7)
    np.testing.assert_allclose(gm.covariances_, _stored(ref_cov, covariance_type), rtol=1e-7)
    np.testing.assert_allclose(gm.lower_bounds_, bounds, rtol=1e-7)
    np.testing.assert_allclose(gm.lower_bound_, bounds[-1], rtol=1e-7)
    # Prediction and imputation of the fitted model agree with the reference's E-step.
    full = np.stack([
        gm._family().component_covariance(gm.covariances_, k, 3) for k in range(2)
    ])
    log_p, resp, completed, _ = _reference_e_step(Xm, gm.weights_, gm.means_, full)
    np.testing.assert_allclose(gm.score_samples(Xm), log_p, rtol=1e-10)
    np.testing.assert_allclose(gm.predict_proba(Xm), resp, rtol=1e-8, atol=1e-12)
    np.testing.assert_array_equal(gm.predict(Xm), resp.argmax(axis=1))
    imputed = np.einsum("nk,nkd->nd", resp, completed)
    np.testing.assert_allclose(gm.impute(Xm), imputed, rtol=1e-10)
    observed = ~np.isnan(Xm)
    assert np.array_equal(gm.impute(Xm)[observed], Xm[observed])
    assert not np.isnan(gm.impute(Xm)).any()


@pytest.mark.parametrize("covariance_type", (*FAMILIES, "EEV", "VEI", "EII"))
def test_em_never_lowers_the_observed_log_likelihood(covariance_type):
    rng = np.random.default_rng(3)
    X = np.vstack([rng.normal(size=(200, 4)), rng.normal(size=(200, 4)) * 0.7 + 2.5])
    X[rng.random(X.shape) < 0.3] = np.nan
    X = X[~np.isnan(X).all(axis=1)]
    gm = GaussianMixture(3, covariance_type=covariance_type, tol=0.0, max_iter=30,
                         random_state=0)
    with pytest.warns(ConvergenceWarning):
        gm.fit(X)
    bounds = np.array(gm.lower_bounds_)
    assert np.all(np.diff(bounds) >= -1e-10 * np.abs(bounds[1:]))
    assert np.isfinite(bounds).all()
    # The final lower bound is the observed-data log-likelihood of its E-step's parameters:
    # score of the returned parameters is at least as high.
    assert gm.score(X) >= bounds[-1] - 1e-10


@pytest.mark.parametrize("covariance_type", FAMILIES)
def test_complete_rows_take_the_fast_path_bit_identically(monkeypatch, covariance_type):
    """With no NaN, nothing of the missing-value path runs, so the results are today's.

    (Checked once against main before this change, bit for bit: see the branch's report.)
    """
    from gaussmix import _missing, mixture

    X, _ = _data(seed=6)
    expected = GaussianMixture(2, covariance_type=covariance_type, random_state=0).fit(X)

    def refuse(*args, **kwargs):
        raise AssertionError("the missing-value path ran on complete data")

    for name in ("incomplete_statistics", "weighted_log_prob", "impute", "condition_row"):
        monkeypatch.setattr(_missing, name, refuse)
    monkeypatch.setattr(mixture, "ArrayData", refuse)  # the filled start is not built
    gm = GaussianMixture(2, covariance_type=covariance_type, random_state=0).fit(X)
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        assert np.array_equal(getattr(gm, name), getattr(expected, name))
    assert gm.lower_bounds_ == expected.lower_bounds_
    np.testing.assert_array_equal(gm.score_samples(X), expected.score_samples(X))
    np.testing.assert_array_equal(gm.predict_proba(X), expected.predict_proba(X))
    np.testing.assert_array_equal(gm.impute(X), X)


def test_recovery_with_20_percent_missing():
    rng = np.random.default_rng(11)
    n = 3000
    X = np.vstack([
        rng.multivariate_normal([0, 0, 0], [[1, 0.6, 0.2], [0.6, 1, 0.3], [0.2, 0.3, 1]], n),
        rng.multivariate_normal([4, 3, -2], [[0.5, -0.2, 0], [-0.2, 0.8, 0.1], [0, 0.1, 0.6]],
                                n),
    ])
    Xm = X.copy()
    Xm[rng.random(X.shape) < 0.2] = np.nan
    keep = ~np.isnan(Xm).all(axis=1)
    X, Xm = X[keep], Xm[keep]
    complete = GaussianMixture(2, random_state=0).fit(X)
    missing = GaussianMixture(2, random_state=0).fit(Xm)
    order = np.argsort(missing.means_[:, 0])
    ref = np.argsort(complete.means_[:, 0])
    np.testing.assert_allclose(missing.weights_[order], complete.weights_[ref], atol=0.02)
    np.testing.assert_allclose(missing.means_[order], complete.means_[ref], atol=0.08)
    np.testing.assert_allclose(
        missing.covariances_[order], complete.covariances_[ref], atol=0.1
    )
    # Imputation beats the column means on the blanked cells.
    holes = np.isnan(Xm)
    filled = missing.impute(Xm)
    column_means = np.nanmean(Xm, axis=0)
    err_mixture = np.mean((filled[holes] - X[holes]) ** 2)
    err_means = np.mean((np.broadcast_to(column_means, X.shape)[holes] - X[holes]) ** 2)
    assert err_mixture < 0.5 * err_means


def test_nan_is_accepted_by_every_scoring_method():
    _, Xm = _data(seed=2)
    gm = GaussianMixture(2, random_state=0).fit(Xm)
    assert np.isfinite(gm.score(Xm))
    assert np.isfinite(gm.bic(Xm)) and np.isfinite(gm.aic(Xm)) and np.isfinite(gm.icl(Xm))
    labels = GaussianMixture(2, random_state=0).fit_predict(Xm)
    np.testing.assert_array_equal(labels, gm.predict(Xm))
    # float32 stays float32
    gm32 = GaussianMixture(2, random_state=0).fit(Xm.astype(np.float32))
    assert gm32.means_.dtype == np.float32
    assert gm32.score_samples(Xm.astype(np.float32)).dtype == np.float32
    assert gm32.impute(Xm.astype(np.float32)).dtype == np.float32


def test_sample_weight_with_nan_equals_repeated_rows():
    _, Xm = _data(n=120, seed=4)
    counts = np.random.default_rng(0).integers(1, 3, size=len(Xm))
    weights, means, _, precisions = _start("full")
    start = {"weights_init": weights, "means_init": means, "precisions_init": precisions}
    a = GaussianMixture(2, tol=0, max_iter=3, **start)
    b = GaussianMixture(2, tol=0, max_iter=3, **start)
    with pytest.warns(ConvergenceWarning):
        a.fit(Xm, sample_weight=counts)
    with pytest.warns(ConvergenceWarning):
        b.fit(np.repeat(Xm, counts, axis=0))
    np.testing.assert_allclose(a.means_, b.means_, rtol=1e-9)
    np.testing.assert_allclose(a.covariances_, b.covariances_, rtol=1e-9)


def test_refused_inputs_are_named():
    X, Xm = _data(seed=1)
    bad = Xm.copy()
    bad[4, 1] = np.inf
    with pytest.raises(ValueError, match=r"1 infinite value.*row 4, column 1"):
        GaussianMixture(2).fit(bad)
    empty = Xm.copy()
    empty[[3, 7]] = np.nan
    with pytest.raises(ValueError, match=r"2 rows with no observed value.*first is row 3"):
        GaussianMixture(2).fit(empty)
    gm = GaussianMixture(2, random_state=0).fit(X)
    for method in ("predict", "predict_proba", "score_samples", "score", "impute"):
        with pytest.raises(ValueError, match=r"no observed value"):
            getattr(gm, method)(empty)
    column = Xm.copy()
    column[:, 2] = np.nan
    column = column[~np.isnan(column).all(axis=1)]
    with pytest.raises(ValueError, match=r"Feature 2 .* no observed value"):
        GaussianMixture(2).fit(column)


@pytest.mark.parametrize("covariance_type", FAMILIES)
def test_condition_is_the_conditional_mixture(covariance_type):
    _, Xm = _data(seed=7)
    gm = GaussianMixture(2, covariance_type=covariance_type, random_state=0).fit(Xm)
    x = np.array([1.0, np.nan, np.nan])
    cond = gm.condition(x)
    assert cond.covariance_type == covariance_type
    full = np.stack([
        gm._family().component_covariance(gm.covariances_, k, 3) for k in range(2)
    ])
    _, resp, completed, cond_cov = _reference_e_step(x[None], gm.weights_, gm.means_, full)
    np.testing.assert_allclose(cond.weights_, resp[0], rtol=1e-9)
    np.testing.assert_allclose(cond.means_, completed[0][:, 1:], rtol=1e-9)
    cond_full = np.stack([
        cond._family().component_covariance(cond.covariances_, k, 2) for k in range(2)
    ])
    np.testing.assert_allclose(cond_full, cond_cov[0][:, 1:, 1:], rtol=1e-9, atol=1e-12)
    # The conditional mixture's mean is the imputation.
    np.testing.assert_allclose(
        cond.weights_ @ cond.means_, gm.impute(x[None])[0, 1:], rtol=1e-9
    )
    samples, _ = cond.sample(5, random_state=0)
    assert samples.shape == (5, 2)
    with pytest.raises(ValueError, match="needs NaN"):
        gm.condition([1.0, 2.0, 3.0])


def test_model_file_round_trip_keeps_the_missing_value_results(tmp_path):
    from gaussmix import load as load_model

    _, Xm = _data(seed=8)
    gm = GaussianMixture(2, random_state=0).fit(Xm)
    path = tmp_path / "model.json"
    gm.save(path)
    loaded = load_model(path)
    np.testing.assert_array_equal(loaded.score_samples(Xm), gm.score_samples(Xm))
    np.testing.assert_array_equal(loaded.impute(Xm), gm.impute(Xm))
    x = np.array([np.nan, 0.5, np.nan])
    np.testing.assert_array_equal(loaded.condition(x).means_, gm.condition(x).means_)


@pytest.mark.parametrize("init_params", ["k-means++", "random_from_data", "robust"])
def test_every_start_sees_the_filled_data_and_lands_on_the_same_fit(init_params):
    _, Xm = _data(n=600, seed=9)
    reference = GaussianMixture(2, random_state=0).fit(Xm)  # k-means start
    gm = GaussianMixture(2, init_params=init_params, random_state=0, n_init=2).fit(Xm)
    assert abs(gm.lower_bound_ - reference.lower_bound_) < 1e-3
    order, ref = np.argsort(gm.means_[:, 0]), np.argsort(reference.means_[:, 0])
    np.testing.assert_allclose(gm.means_[order], reference.means_[ref], atol=0.02)


@pytest.mark.parametrize("n_features", [8, 70])
def test_rows_are_grouped_by_their_exact_pattern(n_features):
    """Integer codes up to 62 features, rows compared whole beyond."""
    from collections import defaultdict

    from gaussmix import _missing

    missing = np.random.default_rng(0).random((500, n_features)) < 0.05
    expected = defaultdict(list)
    for i, row in enumerate(missing):
        expected[tuple(row)].append(i)
    got = {tuple(p): sorted(rows) for p, rows in _missing._patterns(missing)}
    assert got == dict(expected)


def test_readme_worked_example_runs():
    """benchmarks/missing_faithful.py (the README's example): impute beats column means."""
    import re
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "missing_faithful.py"
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=300, check=True).stdout
    rmse = {name: float(v) for name, v in re.findall(r"cells, (impute|column means)\s*: (\S+)",
                                                     out)}
    assert rmse["impute"] < 0.5 * rmse["column means"]


@pytest.mark.parametrize("name", ["EII", "EEI", "EVI", "VEV", "VVE"])
def test_condition_of_mclust_models_holds_the_exact_conditionals(name):
    """condition() of a constrained model: the unconstrained family of the same precision
    form, holding exactly Sigma_mm - Sigma_mo Sigma_oo^-1 Sigma_om per component."""
    import warnings

    from gaussmix import families

    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 3))
    X[:200] += 4
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gm = GaussianMixture(2, covariance_type=name, random_state=0).fit(X)
    cond = gm.condition(np.array([4.0, np.nan, np.nan]))
    full = families.get(name).full_covariances(gm.covariances_, 2, 3)
    expected = full[:, 1:, 1:] - full[:, 1:, :1] @ np.linalg.inv(full[:, :1, :1]) @ full[:, :1, 1:]
    got = families.of_model(cond).full_covariances(cond.covariances_, 2, 2)
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)
