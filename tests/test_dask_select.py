"""select_model on dask arrays: the in-memory engine on a sample, the final polish and the
scores on the cluster; and ``gaussmix select --scheduler``."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

import dask  # noqa: E402

from gaussmix import _dask as gdask  # noqa: E402
from gaussmix import selection  # noqa: E402
from gaussmix.io import load_model  # noqa: E402
from gaussmix.selection import select_model  # noqa: E402

GRID = {"n_components": [1, 2, 3], "covariance_types": ("diag", "full")}


@pytest.fixture(scope="module", autouse=True)
def _restore_environ():
    """distributed's nannies write their workers' variables into this process's
    environment; give the other test modules theirs back (as tests/test_dask.py)."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="module")
def client():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cluster = distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=50,
        )
        client = distributed.Client(cluster, set_as_default=False)
    client.wait_for_workers(2)
    yield client
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        client.close()
        cluster.close()


def _blobs(n, seed=0):
    rng = np.random.default_rng(seed)
    parts = [
        rng.normal([0.0, 0.0], [1.0, 0.6], size=(n // 2, 2)),
        rng.normal([4.0, 1.0], [0.5, 0.5], size=(n // 4, 2)),
        rng.normal([1.0, 5.0], [1.5, 0.8], size=(n - n // 2 - n // 4, 2)),
    ]
    X = np.vstack(parts)
    return X[rng.permutation(n)]


def _bics(result):
    return {(r["covariance_type"], r["n_components"]): r["bic"] for r in result.table}


def test_small_dask_array_is_selected_as_in_memory(client):
    # At most 2,000 rows: they are computed, and the whole selection is the in-memory one.
    X = _blobs(600)
    expected = select_model(X, **GRID, random_state=0)
    with dask.config.set(scheduler=client):
        got = select_model(da.from_array(X, chunks=150), **GRID, random_state=0)
    assert got.best_params_ == expected.best_params_
    for key, bic in _bics(expected).items():
        assert _bics(got)[key] == pytest.approx(bic, rel=1e-12)
    model = got.best_estimator_
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        assert type(getattr(model, name)) is np.ndarray, name
        np.testing.assert_allclose(
            getattr(model, name), getattr(expected.best_estimator_, name), rtol=1e-12
        )


def test_large_dask_array_polished_and_scored_on_the_cluster(client, monkeypatch):
    # More than 2,000 rows: starts and race on a 2,000-row sample drawn from the dask
    # array (not the in-memory path's sample), the final polish and the scores on every
    # row on the cluster.
    X = _blobs(5000)
    expected = select_model(X, **GRID, random_state=0)
    steps = []
    real = gdask.DaskData.map_reduce

    def counted(self, func, *shared, **kwargs):
        steps.append((kwargs.get("name"), len(shared[0]) if shared else 0))
        return real(self, func, *shared, **kwargs)

    monkeypatch.setattr(gdask.DaskData, "map_reduce", counted)
    with dask.config.set(scheduler=client):
        got = select_model(da.from_array(X, chunks=1250), **GRID, random_state=0)
    assert got.best_params_ == expected.best_params_
    assert got.n_samples == 5000
    # Another race sample, so another path to the same maximum: measured 9e-16 relative
    # on the best BIC (33,245.614, diag K=3); the tolerance leaves room for other BLAS.
    best = got.best_params_["covariance_type"], got.best_params_["n_components"]
    assert _bics(got)[best] == pytest.approx(_bics(expected)[best], rel=1e-9)
    # The table's numbers are those of the fitted models on all the rows.
    for row in got.table:
        model = got.estimators_[(row["covariance_type"], row["n_components"])]
        assert type(model.means_) is np.ndarray
        assert row["log_likelihood"] == pytest.approx(model.score(X) * 5000, rel=1e-10)
        assert row["bic"] == pytest.approx(model.bic(X), rel=1e-10)
        assert row["icl"] == pytest.approx(model.icl(X), rel=1e-10)
    # The E-steps on the cluster step every covariance type of a K together, and one
    # pass scores every grid point.
    assert any(name == "estep" and n == 2 for name, n in steps)
    assert [n for name, n in steps if name == "score"] == [len(got.table)]


def test_dask_sample_weight(client):
    rng = np.random.default_rng(1)
    X = _blobs(3000, seed=1)
    w = rng.integers(0, 4, size=3000).astype(float)
    expected = select_model(X, **GRID, sample_weight=w, random_state=0)
    with dask.config.set(scheduler=client):
        Xd = da.from_array(X, chunks=1000)
        for weights in (da.from_array(w, chunks=1000), w):
            got = select_model(Xd, **GRID, sample_weight=weights, random_state=0)
            assert got.best_params_ == expected.best_params_
            best = got.best_params_["covariance_type"], got.best_params_["n_components"]
            # measured: 9e-16 relative (another race sample, the same maximum)
            assert _bics(got)[best] == pytest.approx(_bics(expected)[best], rel=1e-9)
            # n in the BIC is the sum of the weights; the log-likelihood is weighted
            for row in got.table:
                model = got.estimators_[(row["covariance_type"], row["n_components"])]
                assert row["bic"] == pytest.approx(_weighted_bic(model, X, w), rel=1e-10)
    # Small weighted data: exactly the in-memory selection.
    small = select_model(X[:500], **GRID, sample_weight=w[:500], random_state=0)
    with dask.config.set(scheduler=client):
        got = select_model(
            da.from_array(X[:500], chunks=100),
            **GRID,
            sample_weight=da.from_array(w[:500], chunks=100),
            random_state=0,
        )
    for key, bic in _bics(small).items():
        assert _bics(got)[key] == pytest.approx(bic, rel=1e-12)


def _weighted_bic(model, X, w):
    log_likelihood = float(model.score_samples(X) @ w)
    return -2.0 * log_likelihood + model._n_parameters() * np.log(w.sum())


def test_select_model_on_dask_keeps_the_in_memory_engine(client, monkeypatch):
    # The dask path is the in-memory engine plus a data source: no second grid.
    calls = []
    real = selection._fit_chain

    def spy(*args, **kwargs):
        calls.append(kwargs.get("source"))
        return real(*args, **kwargs)

    monkeypatch.setattr(selection, "_fit_chain", spy)
    with dask.config.set(scheduler=client):
        select_model(da.from_array(_blobs(2500), chunks=1000), n_components=[1, 2],
                     covariance_types="full", random_state=0)
    assert len(calls) == 1 and isinstance(calls[0], gdask.DaskData)


def test_cli_select_with_a_scheduler(tmp_path):
    X = _blobs(2500, seed=2)
    np.save(tmp_path / "x.npy", X)
    out = tmp_path / "out"
    env = dict(os.environ)
    env.pop("PYTHONWARNINGS", None)
    result = subprocess.run(
        [sys.executable, "-m", "gaussmix", "select", str(tmp_path / "x.npy"),
         "--components", "1-3", "--covariance", "diag,full", "--no-plots", "-q",
         "--scheduler", "local:2", "-o", str(out)],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO((out / "selection.csv").read_text())))
    assert [(r["covariance_type"], r["n_components"]) for r in rows] == [
        (t, str(k)) for t in ("diag", "full") for k in (1, 2, 3)
    ]
    best = min(rows, key=lambda r: float(r["bic"]))
    model = load_model(out / "model.json")
    assert (model.covariance_type, model.n_components) == (
        best["covariance_type"],
        int(best["n_components"]),
    )
    assert float(best["bic"]) == pytest.approx(model.bic(X), rel=1e-9)
    expected = select_model(X, n_components=[1, 2, 3], covariance_types=("diag", "full"),
                            random_state=0)
    assert expected.best_params_ == {
        "covariance_type": model.covariance_type,
        "n_components": model.n_components,
    }


def test_bad_dask_input_is_a_clear_error(client):
    X = _blobs(300)
    X[123, 1] = np.nan
    with dask.config.set(scheduler=client), pytest.raises(
        ValueError, match=r"row 123.*model selection on a Dask array does not take missing "
        r"values yet.*select_model\(X.compute\(\)\)"
    ):
        select_model(da.from_array(X, chunks=100), n_components=[1, 2], random_state=0)
    X[200, 0] = np.inf
    with dask.config.set(scheduler=client), pytest.raises(ValueError, match="infinite"):
        select_model(da.from_array(X, chunks=100), n_components=[1, 2], random_state=0)
