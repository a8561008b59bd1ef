"""mclust's conjugate prior (Fraley & Raftery 2007): MAP EM against stored mclust numbers.

The reference file is written by benchmarks/mclust_prior_reference.py (R's mclust 6.0.0,
run as a black box); these tests never need R.
"""

import json
import os
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from gaussmix import GaussianMixture, families, load
from gaussmix._exceptions import DegenerateFitWarning
from gaussmix._prior import PRIOR_MODELS, data_moments, log_prior, resolve_prior
from gaussmix.datasets import load_faithful
from gaussmix.stats import (
    MixtureParameters,
    block_statistics,
    m_step,
    statistics_from_responsibilities,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import mclust_prior_reference

REF = os.path.join(os.path.dirname(__file__), "data", "mclust_prior_faithful.json")
# mclust's mstep() and me() agree for these; for EEI, EVI and EEV gaussmix follows me().
MSTEP_MODELS = ("EII", "VII", "VEI", "VVI", "EEE", "VEV", "VVV")


@pytest.fixture(scope="module")
def ref():
    with open(REF) as fh:
        return json.load(fh)


def _fit_from_z(X, model, z, **kwargs):
    # The benchmark's own function (which wrote the reference), not a copy of it.
    return mclust_prior_reference.fit_from_z(X, model, z, **kwargs)


@pytest.mark.parametrize("model", MSTEP_MODELS)
@pytest.mark.parametrize("G", [2, 3, 4])
def test_map_m_step_matches_mclust_mstep(ref, model, G):
    X = load_faithful()
    z = np.asarray(ref["z"][str(G)])
    family = families.get(model)
    prior = resolve_prior("default", family, G, *data_moments(X))
    stats = statistics_from_responsibilities(X, z, family.name, shift=X.mean(axis=0))
    params = m_step(stats, reg_covar=0.0, prior=prior)
    expected = ref["msteps"][f"{model}-{G}"]
    full = family.full_covariances(params.covariances, G, 2)
    np.testing.assert_allclose(full, np.asarray(expected["sigma"]), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(params.means, np.asarray(expected["mean"]), rtol=1e-10)
    np.testing.assert_allclose(params.weights, np.asarray(expected["pro"]), rtol=1e-12)


@pytest.mark.parametrize("model", PRIOR_MODELS)
@pytest.mark.parametrize("G", [2, 3, 4])
def test_map_em_reaches_mclust_me_log_likelihood(ref, model, G):
    expected = ref["mes"][f"{model}-{G}"]
    X = load_faithful()
    gm = _fit_from_z(X, model, np.asarray(ref["z"][str(G)]))
    loglik = gm.score(X) * X.shape[0]
    if expected["loglik"] is None:  # mclust's me() failed from this z (VEI, G = 3, 4)
        assert model == "VEI" and np.isfinite(loglik)
        return
    assert abs(loglik - expected["loglik"]) < 0.01
    # mclust's BIC with a prior: 2 loglik - npar log n at the MAP estimate.
    assert gm.bic(X) == pytest.approx(-(2 * loglik - gm._n_parameters() * np.log(272)))


def _log_posterior(X, params, prior):
    stats = block_statistics(X, params)
    return stats.log_likelihood + log_prior(params, prior)


@pytest.mark.parametrize("model", PRIOR_MODELS)
def test_map_em_is_monotone_in_the_log_posterior(model):
    family = families.get(model)
    for seed in range(4):
        rng = np.random.default_rng(seed)
        D = int(rng.integers(1, 4))
        K = int(rng.integers(1, 4))
        n = int(rng.integers(K + 3, 40))
        X = rng.normal(size=(n, D)) * rng.uniform(0.2, 5.0, size=D)
        X[: n // 2] += rng.normal(scale=3.0, size=D)
        prior = resolve_prior("default", family, K, *data_moments(X))
        z = rng.dirichlet(np.ones(K), size=n)
        stats = statistics_from_responsibilities(X, z, family.name, shift=X[0])
        params = m_step(stats, reg_covar=0.0, prior=prior)
        value = _log_posterior(X, params, prior)
        for _ in range(15):
            stats = block_statistics(X, params)
            params = m_step(stats, reg_covar=0.0, prior=prior, previous=params)
            new = _log_posterior(X, params, prior)
            assert new >= value - 1e-8 * abs(value), (model, seed, value, new)
            value = new


@pytest.mark.parametrize("model", PRIOR_MODELS)
def test_map_m_step_maximises_the_expected_log_posterior(model):
    """Perturbing the M-step's result (means, or covariances within the model) never
    raises the expected complete-data log-posterior."""
    family = families.get(model)
    rng = np.random.default_rng(5)
    X = rng.normal(size=(30, 2)) * [1.0, 3.0]
    K = 2
    prior = resolve_prior("default", family, K, *data_moments(X))
    z = rng.dirichlet(np.ones(K), size=30)
    stats = statistics_from_responsibilities(X, z, family.name, shift=X[0])
    best = m_step(stats, reg_covar=0.0, prior=prior)

    def q(means, covs):
        full = family.full_covariances(covs, K, 2)
        inv = np.linalg.inv(full)
        _, logdet = np.linalg.slogdet(full)
        value = 0.0
        for k in range(K):
            diff = X - means[k]
            value += np.sum(z[:, k] * (-0.5 * logdet[k]
                                       - 0.5 * np.einsum("ni,ij,nj->n", diff, inv[k], diff)))
        from gaussmix.stats import MixtureParameters

        p = MixtureParameters.from_covariances(family.name, best.weights, means, covs)
        return value + log_prior(p, prior)

    top = q(best.means, best.covariances)
    for _ in range(30):
        means = best.means + rng.normal(scale=0.05, size=best.means.shape)
        full = family.full_covariances(best.covariances, K, 2)
        a = np.eye(2) + rng.normal(scale=0.05, size=(2, 2))
        scale = np.exp(rng.normal(scale=0.05, size=K))
        moved = scale[:, None, None] * (a @ full @ a.T)
        covs = family.from_full(moved, best.weights)  # back onto the model's constraint
        assert q(means, covs) <= top + 1e-9 * abs(top)
        assert q(means, best.covariances) <= top + 1e-9 * abs(top)


def test_no_prior_is_unchanged():
    X = load_faithful()
    a = GaussianMixture(2, random_state=0).fit(X)
    b = GaussianMixture(2, random_state=0, prior=None).fit(X)
    np.testing.assert_array_equal(a.covariances_, b.covariances_)
    assert b.prior_ is None


def test_default_prior_hyperparameters():
    X = load_faithful()
    gm = GaussianMixture(3, covariance_type="full", prior="default", random_state=0).fit(X)
    cov = np.cov(X.T)
    np.testing.assert_allclose(gm.prior_.scale, cov / 3 ** (2 / 2))
    np.testing.assert_allclose(gm.prior_.mean, X.mean(axis=0))
    assert gm.prior_.dof == 4 and gm.prior_.shrinkage == 0.01
    gm = GaussianMixture(3, covariance_type="VII", prior="default", random_state=0).fit(X)
    assert float(gm.prior_.scale) == pytest.approx(np.trace(cov) / 2 / 3)


def test_dict_prior_and_model_file_round_trip(tmp_path):
    X = load_faithful()
    gm = GaussianMixture(2, covariance_type="EEV", random_state=0, prior={"shrinkage": 0.1,
                                                                         "dof": 6}).fit(X)
    assert gm.prior_.shrinkage == 0.1 and gm.prior_.dof == 6
    path = tmp_path / "m.json"
    gm.save(path)
    loaded = load(path)
    assert loaded.prior == gm.prior_.to_dict()
    refit = loaded.set_params(warm_start=False).fit(X)
    np.testing.assert_array_equal(refit.covariances_, gm.covariances_)


@pytest.mark.parametrize(
    "prior, message",
    [
        ("mclust", "prior must be None"),
        ({"shrink": 1}, "unknown key"),
        ({"dof": -1}, "dof"),
        ({"shrinkage": float("nan")}, "shrinkage"),
        ({"mean": [1.0]}, "one value per feature"),
        ({"scale": [[1.0, 2.0], [2.0, 1.0]]}, "positive definite"),
    ],
)
def test_bad_priors_are_refused(prior, message):
    X = load_faithful()
    with pytest.raises((ValueError, TypeError), match=message):
        GaussianMixture(2, covariance_type="full", prior=prior).fit(X)


def test_scalar_scale_for_a_variance_model():
    X = load_faithful()
    with pytest.raises(ValueError, match="one variance"):
        GaussianMixture(2, covariance_type="VVI", prior={"scale": np.eye(2)}).fit(X)


@pytest.mark.parametrize("model", ["VEE", "EVE", "VVE", "EVV"])
def test_models_without_a_prior_update(model):
    with pytest.raises(ValueError, match="no update under the conjugate prior"):
        GaussianMixture(2, covariance_type=model, prior="default").fit(load_faithful())


def test_partial_fit_refuses_a_prior():
    with pytest.raises(ValueError, match="partial_fit does not support a prior"):
        GaussianMixture(2, prior="default").partial_fit(load_faithful())


def test_prior_keeps_a_collapsing_component_regular():
    # Three identical points and a cluster: maximum likelihood collapses a full component
    # onto the repeated point; the prior keeps its covariance positive definite.
    rng = np.random.default_rng(0)
    X = np.vstack([np.repeat([[5.0, 5.0]], 3, axis=0), rng.normal(size=(50, 2))])
    means = np.array([[5.0, 5.0], [0.0, 0.0]])
    with warnings.catch_warnings():
        # Under a prior no fit is a spurious maximizer: no DegenerateFitWarning (it was
        # raised, counting 3 points against the 6 a full component needs).
        warnings.simplefilter("error", DegenerateFitWarning)
        gm = GaussianMixture(2, prior="default", reg_covar=0.0, means_init=means).fit(X)
    assert np.all(np.linalg.eigvalsh(gm.covariances_) > 1e-3)
    assert gm.degenerate_ is False and gm.degenerate_reason_ is None
    without = GaussianMixture(2, reg_covar=1e-6, means_init=means)
    with pytest.warns(DegenerateFitWarning):
        without.fit(X)
    assert without.degenerate_


def _fit(X, sample_weight=None, **kwargs):
    options = dict(n_components=2, covariance_type="VVV", prior="default", tol=1e-9,
                   max_iter=5000, means_init=np.array([[2.0, 55.0], [4.3, 80.0]]))
    options.update(kwargs)
    return GaussianMixture(**options).fit(X, sample_weight=sample_weight)


@pytest.mark.parametrize("model", ["VVV", "EEI", "VII"])
def test_integer_weights_fit_as_repeated_rows(model):
    X = load_faithful()
    w = np.ones(len(X))
    w[:30] = 3
    weighted = _fit(X, covariance_type=model, sample_weight=w)
    repeated = _fit(np.vstack([X, X[:30], X[:30]]), covariance_type=model)
    np.testing.assert_allclose(weighted.prior_.scale, repeated.prior_.scale, rtol=1e-12)
    np.testing.assert_allclose(weighted.covariances_, repeated.covariances_, rtol=1e-6)
    np.testing.assert_allclose(weighted.means_, repeated.means_, rtol=1e-7)


def test_float32_keeps_float32_under_a_prior():
    X = load_faithful()
    fit32 = _fit(X.astype(np.float32), tol=1e-6)
    fit64 = _fit(X, tol=1e-6)
    assert fit32.covariances_.dtype == fit32.means_.dtype == np.float32
    np.testing.assert_allclose(fit32.covariances_, fit64.covariances_, rtol=1e-4)


def test_dask_fit_under_a_prior_equals_the_in_memory_fit():
    da = pytest.importorskip("dask.array")
    X = load_faithful()
    lazy = _fit(da.from_array(X, chunks=100))
    eager = _fit(X)
    np.testing.assert_allclose(lazy.prior_.scale, eager.prior_.scale, rtol=1e-12)
    np.testing.assert_allclose(lazy.prior_.mean, eager.prior_.mean, rtol=1e-12)
    np.testing.assert_allclose(lazy.covariances_, eager.covariances_, rtol=1e-8)


def _cli(*args):
    import subprocess
    import sys

    env = dict(os.environ)
    env.pop("PYTHONWARNINGS", None)
    return subprocess.run([sys.executable, "-m", "gaussmix", *map(str, args)],
                          capture_output=True, text=True, env=env)


def test_command_line_fit_with_the_default_prior(tmp_path):
    X = load_faithful()
    data = tmp_path / "faithful.csv"
    data.write_text("eruptions,waiting\n" + "".join(f"{e!r},{w!r}\n" for e, w in X.tolist()))
    out = tmp_path / "out"
    result = _cli("fit", data, "-k", "2", "-c", "VVV", "--prior", "default", "--seed", "0",
                  "-o", out)
    assert result.returncode == 0, result.stderr
    loaded = load(out / "model.json")
    expected = GaussianMixture(2, covariance_type="VVV", prior="default", random_state=0,
                               init_params="robust").fit(X)
    np.testing.assert_array_equal(loaded.covariances_, expected.covariances_)
    assert loaded.prior == expected.prior_.to_dict()
    refused = _cli("fit", data, "-k", "2", "-c", "VEE", "--prior", "default",
                   "-o", tmp_path / "o3")
    assert refused.returncode == 2 and "no update under the conjugate prior" in refused.stderr


def _with_holes(seed=0, fraction=0.4):
    rng = np.random.default_rng(seed)
    cov = np.array([[4.0, 1.5, 0.0], [1.5, 1.0, 0.0], [0.0, 0.0, 9.0]])
    X = rng.multivariate_normal([0.0, 0.0, 0.0], cov, size=3000)
    holed = X.copy()
    holed[rng.random(X.shape) < fraction] = np.nan
    empty = np.isnan(holed).all(axis=1)
    holed[empty, 0] = X[empty, 0]
    return X, holed


def test_default_prior_with_missing_values_uses_the_observed_moments():
    # Filling the holes with column means shrank the default scale by the missing
    # fraction (variances by 40%, the correlation 0.9 -> 0.35); the prior is built from
    # one Gaussian's maximum-likelihood moments of the observed cells instead.
    X, holed = _with_holes()
    complete = GaussianMixture(2, prior="default", random_state=0, max_iter=0).fit(X)
    missing = GaussianMixture(2, prior="default", random_state=0, max_iter=0).fit(holed)
    np.testing.assert_allclose(missing.prior_.scale, complete.prior_.scale, rtol=0.1,
                               atol=0.1)
    np.testing.assert_allclose(missing.prior_.mean, complete.prior_.mean, atol=0.1)


def test_dask_default_prior_with_missing_values_equals_the_in_memory_fit():
    # It raised numpy's LinAlgError (the moments of the NaN sample were NaN).
    da = pytest.importorskip("dask.array")
    _, holed = _with_holes(fraction=0.2)
    eager = GaussianMixture(2, prior="default", random_state=0, max_iter=0).fit(holed)
    lazy = GaussianMixture(2, prior="default", random_state=0, max_iter=0).fit(
        da.from_array(holed, chunks=700))
    np.testing.assert_allclose(lazy.prior_.scale, eager.prior_.scale, rtol=1e-8)
    np.testing.assert_allclose(lazy.prior_.mean, eager.prior_.mean, rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("holes", [False, True])
def test_default_prior_leaves_the_isolated_far_row_out(holes):
    # var(X) with one row at 1e9 was singular in floating point ("the data's covariance
    # is singular (a constant feature ...)"), or, with NaN, inflated the other component's
    # covariance to sd 2.7e6: the far rows isolated at the start are left out of the
    # default prior's moments, so the other component fits as without the far row.
    rng = np.random.default_rng(1)
    X = rng.normal(0, 1, (300, 2))
    if holes:
        X[::7, 0] = np.nan
    far = np.vstack([X[:5], [[1e9, 1e9 if not holes else np.nan]], X[5:]])
    options = dict(covariance_type="VVV", prior="default", random_state=0,
                   init_params="robust")
    clean = GaussianMixture(1, **options).fit(X)
    with pytest.warns(DegenerateFitWarning, match="Far outliers.*the prior's mode"):
        fitted = GaussianMixture(2, **options).fit(far)
    assert list(fitted.outlier_rows_) == [5]
    (inlier,) = [k for k in range(2) if k not in fitted.outlier_components_]
    np.testing.assert_allclose(fitted.prior_.mean, clean.prior_.mean, rtol=1e-6)
    np.testing.assert_allclose(fitted.means_[inlier], clean.means_[0], atol=0.01)
    np.testing.assert_allclose(fitted.covariances_[inlier], clean.covariances_[0],
                               atol=0.05)


def test_summary_and_info_say_the_fit_is_map(tmp_path):
    # Neither the fit summary nor `info` mentioned the prior: a MAP BIC read as an ML one.
    X = load_faithful()
    data = tmp_path / "faithful.csv"
    data.write_text("eruptions,waiting\n" + "".join(f"{e!r},{w!r}\n" for e, w in X.tolist()))
    for prior, expected in ((["--prior", "default"], True), ([], False)):
        out = tmp_path / f"out{len(prior)}"
        fitted = _cli("fit", data, "-k", "2", "-c", "VVV", *prior, "-o", out)
        assert fitted.returncode == 0, fitted.stderr
        info = _cli("info", out / "model.json")
        assert info.returncode == 0, info.stderr
        assert ("prior            conjugate (MAP EM" in fitted.stdout) is expected
        assert ("Prior: conjugate (MAP EM" in info.stdout) is expected
        assert ("shrinkage 0.01, dof 4;" in info.stdout) is expected


@pytest.mark.parametrize("edit", ["mean", "scale", "default"])
def test_a_model_file_prior_needs_its_four_hyperparameters(tmp_path, edit):
    # A file's prior without its mean loaded with mean 0 (the data it was built from are
    # not in the file); without its scale, or as "default", numpy's "cannot reshape".
    from gaussmix.io import ModelFileError

    gm = GaussianMixture(2, covariance_type="VVV", prior="default", random_state=0)
    path = tmp_path / "m.json"
    gm.fit(load_faithful()).save(path)
    doc = json.loads(path.read_text())
    if edit == "default":
        doc["params"]["prior"] = "default"
    else:
        del doc["params"]["prior"][edit]
    path.write_text(json.dumps(doc))
    with pytest.raises(ModelFileError, match=r"resolved hyperparameters.*missing"):
        load(path)


def test_command_line_prior_with_stream_is_refused_in_its_own_words(tmp_path):
    # It said "partial_fit does not support a prior ... set prior=None, or call fit".
    X = load_faithful()
    data = tmp_path / "faithful.csv"
    data.write_text("eruptions,waiting\n" + "".join(f"{e!r},{w!r}\n" for e, w in X.tolist()))
    result = _cli("fit", data, "-k", "2", "-c", "VVV", "--prior", "default", "--stream",
                  "-o", tmp_path / "out")
    assert result.returncode == 2
    assert "--prior does not work with --stream" in result.stderr
    assert "partial_fit" not in result.stderr
    assert not (tmp_path / "out" / "model.json").exists()


def test_n_init_under_a_prior_keeps_the_highest_log_posterior(monkeypatch):
    """Review finding G: the best of n_init starts was the highest log-likelihood; under a
    prior it must be the highest log-posterior (what MAP EM raises). Two made-up EM results:
    the first has the higher log-likelihood, the second the higher log-posterior."""
    import types

    from gaussmix import mixture

    X = load_faithful()
    fitted = GaussianMixture(2, prior="default", random_state=0).fit(X)
    good = fitted._get_parameters()
    sharp = MixtureParameters.from_covariances(
        "full", good.weights, good.means, good.covariances * 1e-4)
    prior = fitted.prior_
    n = X.shape[0]
    results = [
        types.SimpleNamespace(params=sharp, lower_bound=-1.0, lower_bounds=[-1.0],
                              converged=True, n_iter=3),
        types.SimpleNamespace(params=good, lower_bound=-1.5, lower_bounds=[-1.5],
                              converged=True, n_iter=3),
    ]
    assert (results[0].lower_bound + log_prior(sharp, prior) / n
            < results[1].lower_bound + log_prior(good, prior) / n)
    monkeypatch.setattr(mixture, "run_em", lambda *a, **k: results.pop(0))
    gm = GaussianMixture(2, prior="default", n_init=2, random_state=0).fit(X)
    np.testing.assert_array_equal(gm.covariances_, good.covariances)
    assert gm.lower_bound_ == -1.5
