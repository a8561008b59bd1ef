"""Missing values on Dask arrays: fit (additive missing-value statistics per chunk) and
lazy predict / predict_proba / score_samples / impute, the same as in memory."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

da = pytest.importorskip("dask.array")

import dask  # noqa: E402

from gaussmix import GaussianMixture  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::gaussmix.ConvergenceWarning")

FAMILIES = ("full", "tied", "diag", "spherical")


def _holed(n=900, seed=0, missing=0.2):
    rng = np.random.default_rng(seed)
    X = np.vstack([
        rng.normal(size=(n // 2, 3)) @ rng.normal(size=(3, 3)),
        rng.normal(size=(n - n // 2, 3)) + np.array([4.0, 4.0, -2.0]),
    ])
    X[rng.random(X.shape) < missing] = np.nan
    return X[~np.isnan(X).all(axis=1)]


def _start(covariance_type):
    start = {"weights_init": [0.5, 0.5], "means_init": [[0.0, 0.0, 0.0], [4.0, 4.0, -2.0]]}
    precisions = {
        "full": np.stack([np.eye(3)] * 2), "tied": np.eye(3),
        "diag": np.ones((2, 3)), "spherical": np.ones(2),
    }
    return {**start, "precisions_init": precisions[covariance_type]}


@pytest.fixture(autouse=True)
def _synchronous():
    with dask.config.set(scheduler="synchronous"):
        yield


@pytest.mark.parametrize("covariance_type", FAMILIES)
def test_fit_on_dask_with_nan_equals_the_in_memory_fit(covariance_type):
    X = _holed()
    w = np.random.default_rng(1).uniform(0.5, 2.0, size=len(X))
    kwargs = {"covariance_type": covariance_type, "tol": 0.0, "max_iter": 6,
              **_start(covariance_type)}
    lazy = GaussianMixture(2, **kwargs).fit(
        da.from_array(X, chunks=(200, 3)), sample_weight=da.from_array(w, chunks=200)
    )
    memory = GaussianMixture(2, **kwargs).fit(X, sample_weight=w)
    for name in ("weights_", "means_", "covariances_"):
        np.testing.assert_allclose(getattr(lazy, name), getattr(memory, name), rtol=1e-10)
    np.testing.assert_allclose(lazy.lower_bounds_, memory.lower_bounds_, rtol=1e-12)


def test_initialisation_on_dask_sees_the_filled_rows_and_finds_the_fit():
    X = _holed(seed=2)
    lazy = GaussianMixture(2, random_state=0).fit(da.from_array(X, chunks=(300, 3)))
    memory = GaussianMixture(2, random_state=0).fit(X)
    order, ref = np.argsort(lazy.means_[:, 0]), np.argsort(memory.means_[:, 0])
    np.testing.assert_allclose(lazy.means_[order], memory.means_[ref], atol=1e-4)
    assert lazy.lower_bound_ == pytest.approx(memory.lower_bound_, abs=1e-6)
    assert np.isfinite(lazy.covariances_).all()


def test_lazy_predictions_and_imputation_with_nan():
    X = _holed(seed=3)
    gm = GaussianMixture(2, random_state=0).fit(X)
    Xd = da.from_array(X, chunks=(250, 3))
    for method in ("predict", "predict_proba", "score_samples", "impute"):
        lazy = getattr(gm, method)(Xd)
        assert isinstance(lazy, da.Array), method  # nothing computed yet
        np.testing.assert_allclose(lazy.compute(), getattr(gm, method)(X), rtol=1e-12,
                                   err_msg=method)
    filled = gm.impute(Xd).compute()
    observed = ~np.isnan(X)
    assert np.array_equal(filled[observed], X[observed])
    assert not np.isnan(filled).any()
    # float32 stays float32
    gm32 = GaussianMixture(2, random_state=0).fit(X.astype(np.float32))
    assert gm32.impute(Xd.astype(np.float32)).dtype == np.float32


def test_refusals_name_the_global_row():
    X = _holed(n=600, seed=4)
    gm = GaussianMixture(2, random_state=0).fit(X)
    bad = X.copy()
    bad[437] = np.nan
    with pytest.raises(ValueError, match=r"1 row with no observed value.*row 437"):
        GaussianMixture(2).fit(da.from_array(bad, chunks=(100, 3)))
    with pytest.raises(ValueError, match=r"no observed value.*row 437"):
        gm.impute(da.from_array(bad, chunks=(100, 3))).compute()
    inf = X.copy()
    inf[250, 1] = np.inf
    with pytest.raises(ValueError, match=r"1 infinite value.*row 250, column 1"):
        GaussianMixture(2).fit(da.from_array(inf, chunks=(100, 3)))
    with pytest.raises(ValueError, match=r"infinite.*row 250, column 1"):
        gm.predict(da.from_array(inf, chunks=(100, 3))).compute()
    column = X.copy()
    column[:, 1] = np.nan
    column = column[~np.isnan(column).all(axis=1)]
    with pytest.raises(ValueError, match=r"Feature 1 .* no observed value"):
        GaussianMixture(2).fit(da.from_array(column, chunks=(100, 3)))


def test_fit_with_nan_on_a_local_cluster():
    distributed = pytest.importorskip("distributed")
    X = _holed(seed=5)
    kwargs = {"tol": 0.0, "max_iter": 4, **_start("full")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                      dashboard_address=None) as cluster, \
                distributed.Client(cluster) as client:
            Xd = da.from_array(X, chunks=(200, 3))
            lazy = GaussianMixture(2, **kwargs).fit(Xd)
            filled = client.compute(lazy.impute(Xd)).result()
    memory = GaussianMixture(2, **kwargs).fit(X)
    np.testing.assert_allclose(lazy.means_, memory.means_, rtol=1e-10)
    np.testing.assert_allclose(filled, memory.impute(X), rtol=1e-9, atol=1e-12)
