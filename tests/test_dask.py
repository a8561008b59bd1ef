"""GaussianMixture on dask arrays: same results as NumPy, on real worker processes."""

from __future__ import annotations

import logging
import os
import signal
import warnings

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

import dask  # noqa: E402

from gaussmix import GaussianMixture  # noqa: E402
from gaussmix import _dask as gdask  # noqa: E402
from gaussmix._backends import ArrayData  # noqa: E402
from gaussmix._init import initial_statistics  # noqa: E402
from gaussmix.stats import MixtureParameters  # noqa: E402

# Fits with tol=0 run exactly max_iter iterations and warn that they did not converge.
pytestmark = pytest.mark.filterwarnings("ignore::gaussmix.ConvergenceWarning")

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
K = 3


def _start_cluster(n_workers):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cluster = distributed.LocalCluster(
            n_workers=n_workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=50,
        )
        client = distributed.Client(cluster, set_as_default=False)
    return cluster, client


def _stop_cluster(cluster, client):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        client.close()
        cluster.close()


@pytest.fixture(scope="module", autouse=True)
def _restore_environ():
    """distributed's nannies write their workers' variables (OMP_NUM_THREADS=1, ...) into
    this process's environment; give the other test modules theirs back."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="module")
def client2():
    cluster, client = _start_cluster(2)
    client.wait_for_workers(2)
    yield client
    _stop_cluster(cluster, client)


@pytest.fixture(scope="module")
def client1():
    # Started by the command line's helper (a client that owns its LocalCluster).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        client = gdask.client_from_scheduler(
            "local:1", dashboard_address=None, silence_logs=50, set_as_default=False
        )
    yield client
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        client.close()


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = np.vstack(
        [
            rng.normal([-3.0, 0.0, 1.0], [1.0, 0.5, 0.7], size=(400, 3)),
            rng.normal([2.0, 2.0, -1.0], [0.6, 1.2, 0.5], size=(350, 3)),
            rng.normal([0.0, -3.0, 3.0], [0.8, 0.8, 1.5], size=(250, 3)),
        ]
    )
    return X[rng.permutation(len(X))]


def _init_params(covariance_type, n_features=3):
    """Fixed starting parameters (scikit-learn's *_init arguments)."""
    weights = np.array([0.2, 0.3, 0.5])
    means = np.array([[-2.0, 0.5, 0.0], [1.0, 1.0, 0.0], [0.0, -2.0, 2.0]])
    precisions = {
        "full": np.stack([np.eye(n_features) * s for s in (1.0, 0.8, 1.2)]),
        "tied": np.eye(n_features) * 0.9,
        "diag": np.array([[1.0, 0.8, 1.1], [0.7, 1.0, 1.3], [1.2, 0.9, 1.0]]),
        "spherical": np.array([1.0, 0.8, 1.2]),
    }[covariance_type]
    return {"weights_init": weights, "means_init": means, "precisions_init": precisions}


FITTED = ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_")


def _assert_same_fit(a, b, rtol=1e-10):
    for name in FITTED:
        got, want = getattr(b, name), getattr(a, name)
        assert type(got) is np.ndarray, name
        np.testing.assert_allclose(got, want, rtol=rtol, atol=0, err_msg=name)
    np.testing.assert_allclose(b.lower_bounds_, a.lower_bounds_, rtol=rtol, atol=0)
    np.testing.assert_allclose(b.lower_bound_, a.lower_bound_, rtol=rtol, atol=0)
    assert b.n_iter_ == a.n_iter_
    assert b.converged_ == a.converged_
    assert b.n_features_in_ == a.n_features_in_


def _fit(client, X, **kw):
    with dask.config.set(scheduler=client):
        return GaussianMixture(**kw).fit(X)


def _workers_of(task_stream, prefix):
    return {t["worker"] for t in task_stream.data if prefix in str(t["key"])}


# --------------------------------------------------------------------------------------
# Where the work runs, and the shape of the per-iteration graph
# --------------------------------------------------------------------------------------
def test_estep_runs_on_the_workers_with_a_constant_graph(client2, data):
    X = da.from_array(data, chunks=(125, 3))
    params = MixtureParameters.from_precisions(**_init_args("full"))
    with dask.config.set(scheduler=client2):
        with distributed.get_task_stream(client2) as ts:
            source = gdask.DaskData(X, None, None)
            stats = [source.statistics(params) for _ in range(3)]
    workers = set(client2.scheduler_info()["workers"])
    ran_on = _workers_of(ts, "gaussmix-estep")
    assert ran_on and ran_on <= workers
    # The E-step ran where the persisted chunks live (a worker may also fetch a chunk from
    # the other to balance the load).
    name = source.X.name
    held = client2.run(
        lambda dask_worker: sorted(str(k) for k in dask_worker.data if name in str(k))
    )
    assert ran_on <= {w for w, keys in held.items() if keys}
    assert len(set().union(*held.values())) == source.n_chunks
    n_estep = sum("gaussmix-estep" in str(t["key"]) for t in ts.data)
    assert n_estep == 3 * source.n_chunks == 24
    # Fixed-size graph: 8 E-step tasks and 1 reduction (the small parameters travel inside
    # the tasks), at every iteration.
    assert source.task_counts == [9, 9, 9]
    # Same statistics as the in-memory source.
    want = ArrayData(data, None, None).statistics(params)
    for got in stats:
        np.testing.assert_allclose(got.s2, want.s2, rtol=1e-12)
        np.testing.assert_allclose(got.nk, want.nk, rtol=1e-12)
        assert got.log_likelihood == pytest.approx(want.log_likelihood, rel=1e-13)
        assert got.weight_sum == want.weight_sum


def _init_args(covariance_type):
    kw = _init_params(covariance_type)
    return {
        "covariance_type": covariance_type,
        "weights": kw["weights_init"],
        "means": kw["means_init"],
        "precisions": kw["precisions_init"],
    }


# --------------------------------------------------------------------------------------
# Same fit as NumPy from the same start
# --------------------------------------------------------------------------------------
CHUNKINGS = {
    "even": (250, 3),
    "uneven-last": (300, 3),  # 300, 300, 300, 100
    "irregular": ((600, 250, 149, 1), (2, 1)),  # also split across columns
}


def test_a_fit_computes_one_graph_of_constant_size_per_iteration(client2, data, monkeypatch):
    sources = []

    class Recording(gdask.DaskData):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            sources.append(self)

    monkeypatch.setattr(gdask, "DaskData", Recording)
    kw = dict(n_components=K, tol=0, max_iter=7, **_init_params("full"))
    est = _fit(client2, da.from_array(data, chunks=(100, 3)), **kw)
    (source,) = sources
    # 10 E-step tasks + 2 reductions (8 + 2 chunks) + 1 root, at each of the 7 iterations.
    assert source.task_counts == [13] * est.n_iter_ == [13] * 7


@pytest.mark.parametrize("chunks", list(CHUNKINGS), ids=list(CHUNKINGS))
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_dask_fit_equals_numpy_fit_two_workers(client2, data, covariance_type, chunks):
    kw = dict(
        n_components=K,
        covariance_type=covariance_type,
        tol=0,
        max_iter=12,
        **_init_params(covariance_type),
    )
    want = GaussianMixture(**kw).fit(data)
    got = _fit(client2, da.from_array(data, chunks=CHUNKINGS[chunks]), **kw)
    _assert_same_fit(want, got)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_dask_fit_equals_numpy_fit_one_worker(client1, data, covariance_type):
    kw = dict(
        n_components=K,
        covariance_type=covariance_type,
        tol=0,
        max_iter=12,
        **_init_params(covariance_type),
    )
    want = GaussianMixture(**kw).fit(data)
    with distributed.get_task_stream(client1) as ts:
        got = _fit(client1, da.from_array(data, chunks=(300, 3)), **kw)
    _assert_same_fit(want, got)
    assert len(_workers_of(ts, "gaussmix-estep")) == 1
    assert len(client1.scheduler_info()["workers"]) == 1
    env = client1.run(lambda: os.environ.get("MALLOC_TRIM_THRESHOLD_"))
    assert list(env.values()) == [None]


@pytest.mark.parametrize("init_params", ["kmeans", "random", "random_from_data"])
def test_large_parameters_as_graph_tasks_and_empty_chunks(client2, data, monkeypatch, init_params):
    # Parameters too big to copy into every task travel as one task of their own; a chunk
    # may have no rows at all.
    monkeypatch.setattr(gdask, "_EMBED_BYTES", 0)
    X = da.from_array(data, chunks=((500, 0, 300, 0, 200), (3,)))
    kw = dict(n_components=K, tol=0, max_iter=4, random_state=0, init_params=init_params)
    got = _fit(client2, X, **kw)
    if init_params == "kmeans":
        _assert_same_fit(GaussianMixture(**kw).fit(data), got, rtol=1e-8)
    else:
        again = _fit(client2, X, **kw)
        np.testing.assert_array_equal(got.means_, again.means_)


def test_without_a_client_the_default_scheduler_is_used(data):
    kw = dict(n_components=K, tol=0, max_iter=5, **_init_params("full"))
    want = GaussianMixture(**kw).fit(data)
    with dask.config.set(scheduler="sync"):
        got = GaussianMixture(**kw).fit(da.from_array(data, chunks=(300, 3)))
    _assert_same_fit(want, got)


def test_sample_weight_as_dask_array(client2, data):
    rng = np.random.default_rng(1)
    w = rng.integers(0, 4, size=len(data)).astype(np.float64)
    kw = dict(n_components=K, covariance_type="diag", tol=0, max_iter=10, **_init_params("diag"))
    want = GaussianMixture(**kw).fit(data, sample_weight=w)
    X = da.from_array(data, chunks=(300, 3))
    with dask.config.set(scheduler=client2):
        # Weights chunked differently from X: realigned to X's rows.
        got = GaussianMixture(**kw).fit(X, sample_weight=da.from_array(w, chunks=170))
        got_np = GaussianMixture(**kw).fit(X, sample_weight=w)
    _assert_same_fit(want, got)
    _assert_same_fit(want, got_np)
    # Integer weights are repeated rows.
    repeated = np.repeat(data, w.astype(int), axis=0)
    _assert_same_fit(GaussianMixture(**kw).fit(repeated), got, rtol=1e-8)


def test_dtypes(client2, data):
    kw = dict(n_components=K, tol=0, max_iter=5, **_init_params("full"))
    X32 = data.astype(np.float32)
    got = _fit(client2, da.from_array(X32, chunks=(300, 3)), **kw)
    want = GaussianMixture(**kw).fit(X32)
    assert got.means_.dtype == np.float32
    np.testing.assert_allclose(got.means_, want.means_, rtol=1e-5)
    Xint = np.round(data * 1000).astype(np.int64)
    kw = dict(n_components=K, random_state=0, max_iter=5, tol=0)
    got = _fit(client2, da.from_array(Xint, chunks=(300, 3)), **kw)
    assert got.means_.dtype == np.float64
    _assert_same_fit(GaussianMixture(**kw).fit(Xint), got, rtol=1e-8)


# --------------------------------------------------------------------------------------
# Initialisation, n_init, warm_start
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("init_params", ["kmeans", "k-means++"])
def test_n_init_with_kmeans_matches_numpy_on_small_data(client2, data, init_params):
    # At most MAX_INIT_SAMPLE rows: k-means runs on all of them with the same random draws.
    kw = dict(n_components=K, n_init=3, init_params=init_params, random_state=3, max_iter=30)
    want = GaussianMixture(**kw).fit(data)
    got = _fit(client2, da.from_array(data, chunks=(300, 3)), **kw)
    # Several starts reach the same optimum, in different component orders; which one is
    # kept is decided by rounding (last-digit differences of the lower bounds, which
    # depend on the summation order of chunks and blocks). Same mixture, up to the order.
    np.testing.assert_allclose(got.lower_bound_, want.lower_bound_, rtol=1e-8, atol=0)
    order_got, order_want = np.argsort(got.means_[:, 0]), np.argsort(want.means_[:, 0])
    for name in FITTED:  # all per-component arrays (full covariance)
        g, w = getattr(got, name)[order_got], getattr(want, name)[order_want]
        np.testing.assert_allclose(g, w, rtol=1e-6, atol=0, err_msg=name)


def test_warm_start(client2, data):
    kw = dict(n_components=K, warm_start=True, tol=0, max_iter=4, random_state=0)
    X = da.from_array(data, chunks=(300, 3))
    want = GaussianMixture(**kw)
    want.fit(data)
    want.fit(data)
    got = GaussianMixture(**kw)
    with dask.config.set(scheduler=client2):
        got.fit(X)
        first = got.lower_bounds_[-1]
        got.fit(X)
    assert got.lower_bounds_[0] >= first
    _assert_same_fit(want, got, rtol=1e-8)


@pytest.mark.filterwarnings("ignore::gaussmix._exceptions.DegenerateFitWarning")
def test_kmeans_init_on_a_bounded_sample_is_deterministic(client2, data, monkeypatch):
    monkeypatch.setattr(gdask, "MAX_INIT_SAMPLE", 200)
    X = da.from_array(data, chunks=(300, 3))
    kw = dict(n_components=K, random_state=7, max_iter=0)
    a, b, c = (_fit(client2, X, **kw, init_params="kmeans") for _ in range(3))
    np.testing.assert_array_equal(a.means_, b.means_)
    c = _fit(client2, X, **{**kw, "random_state": 8})
    assert not np.array_equal(a.means_, c.means_)
    # The sample is 200 rows, so k-means starts differently from the full-data run, but
    # it still finds the three clusters.
    full = _fit(client2, X, n_components=K, random_state=7)
    np.testing.assert_allclose(np.sort(full.means_[:, 0]), [-3.0, 0.0, 2.0], atol=0.2)


@pytest.mark.filterwarnings("ignore::gaussmix._exceptions.DegenerateFitWarning")
@pytest.mark.parametrize("init_params", ["random", "random_from_data"])
def test_random_inits_are_deterministic_and_stay_on_the_cluster(client2, data, init_params):
    X = da.from_array(data, chunks=(300, 3))
    kw = dict(n_components=K, random_state=5, init_params=init_params, max_iter=0)
    with distributed.get_task_stream(client2) as ts:
        a = _fit(client2, X, **kw)
    b = _fit(client2, X, **kw)
    np.testing.assert_array_equal(a.means_, b.means_)
    prefix = "gaussmix-init" if init_params == "random" else "gaussmix-race"
    assert len(_workers_of(ts, prefix)) >= 1
    if init_params == "random_from_data":
        # The means are data rows.
        dist = np.abs(data[None, :, :] - a.means_[:, None, :]).sum(axis=2).min(axis=1)
        np.testing.assert_allclose(dist, 0.0, atol=1e-12)


def test_random_from_data_respects_zero_weights(client2, data):
    w = np.zeros(len(data))
    allowed = np.array([3, 500, 777, 901])
    w[allowed] = [1.0, 2.0, 3.0, 4.0]
    with dask.config.set(scheduler=client2):
        source = gdask.DaskData(da.from_array(data, chunks=(300, 3)), da.from_array(w), None)
        for seed in range(5):
            rows, weights = source.sample_rows(K, np.random.RandomState(seed), weighted=True)
            # K distinct rows of positive weight, with their weights.
            drawn = [int(np.flatnonzero((data == row).all(axis=1))[0]) for row in rows]
            assert set(drawn) <= set(allowed) and len(set(drawn)) == K
            np.testing.assert_array_equal(weights, w[drawn])
            stats = initial_statistics(
                source, "random_from_data", K, np.random.RandomState(seed), "full"
            )
            np.testing.assert_array_equal(stats.nk, w[drawn])
            assert stats.weight_sum == w.sum()
        with pytest.raises(ValueError, match="positive sample_weight"):
            initial_statistics(source, "random_from_data", 5, np.random.RandomState(0), "full")


# --------------------------------------------------------------------------------------
# Using a fitted model on dask arrays
# --------------------------------------------------------------------------------------
def test_lazy_predict_and_scores(client2, data):
    est = GaussianMixture(n_components=K, random_state=0).fit(data)
    X = da.from_array(data, chunks=(300, 3))
    labels = est.predict(X)
    proba = est.predict_proba(X)
    dens = est.score_samples(X)
    for lazy in (labels, proba, dens):
        assert isinstance(lazy, da.Array)
    assert proba.shape == (len(data), K)
    with dask.config.set(scheduler=client2):
        np.testing.assert_array_equal(labels.compute(), est.predict(data))
        np.testing.assert_allclose(proba.compute(), est.predict_proba(data), rtol=1e-12)
        np.testing.assert_allclose(dens.compute(), est.score_samples(data), rtol=1e-12)
        assert est.score(X) == pytest.approx(est.score(data), rel=1e-12)
        assert est.bic(X) == pytest.approx(est.bic(data), rel=1e-12)
        assert est.aic(X) == pytest.approx(est.aic(data), rel=1e-12)
        assert est.icl(X) == pytest.approx(est.icl(data), rel=1e-12)
        with pytest.raises(ValueError, match="expecting 3 features"):
            est.predict(da.from_array(data[:, :2], chunks=100))
        bad = data.copy()
        bad[650, 1] = np.inf  # (NaN is a missing value: tests/test_dask_missing.py)
        lazy = est.predict(da.from_array(bad, chunks=(300, 3)))  # lazy: no error yet
        with pytest.raises(ValueError, match="row 650, column 1"):
            lazy.compute()


def test_lazy_predict_with_the_model_as_a_task(client2, data, monkeypatch):
    monkeypatch.setattr(gdask, "_EMBED_BYTES", 0)
    est = GaussianMixture(n_components=K, random_state=0).fit(data)
    X = da.from_array(data, chunks=(300, 3))
    lazy = [est.predict(X), est.predict_proba(X), est.score_samples(X)]
    assert any("gaussmix-model" in str(k) for k in dict(lazy[0].__dask_graph__()))
    with dask.config.set(scheduler=client2):
        labels, proba, dens = dask.compute(*lazy)
    np.testing.assert_array_equal(labels, est.predict(data))
    np.testing.assert_allclose(proba, est.predict_proba(data), rtol=1e-12)
    np.testing.assert_allclose(dens, est.score_samples(data), rtol=1e-12)


def test_fit_on_dask_saves_numpy_attributes(client2, data, tmp_path):
    est = _fit(client2, da.from_array(data, chunks=(300, 3)), n_components=K, random_state=0)
    for name in FITTED:
        assert type(getattr(est, name)) is np.ndarray
    assert isinstance(est.lower_bound_, float)
    est.save(tmp_path / "model.json")
    from gaussmix.io import load_model

    loaded = load_model(tmp_path / "model.json")
    _assert_same_fit(est, loaded, rtol=0)
    np.testing.assert_array_equal(loaded.predict(data), est.predict(data))


# --------------------------------------------------------------------------------------
# Input validation
# --------------------------------------------------------------------------------------
def test_invalid_inputs(client2, data):
    X = da.from_array(data, chunks=(300, 3))
    with dask.config.set(scheduler=client2):
        with pytest.raises(ValueError, match="2-D"):
            GaussianMixture().fit(X[:, 0])
        bad = data.copy()
        bad[[10, 700], 2] = [np.nan, np.inf]
        # NaN is a missing value (tests/test_dask_missing.py); infinity is refused.
        with pytest.raises(ValueError, match=r"1 infinite value.*row 700, column 2"):
            GaussianMixture().fit(da.from_array(bad, chunks=(300, 3)))
        with pytest.raises(ValueError, match="unknown chunk sizes"):
            GaussianMixture().fit(X[X[:, 0] > 0])
        with pytest.raises(ValueError, match="complex"):
            GaussianMixture().fit(X.astype(np.complex128))
        w = np.ones(len(data))
        with pytest.raises(ValueError, match="999 values but X has 1000"):
            GaussianMixture().fit(X, sample_weight=da.from_array(w[:-1]))
        w[400] = -2.0
        with pytest.raises(ValueError, match=r"non-negative.*index 400"):
            GaussianMixture().fit(X, sample_weight=da.from_array(w, chunks=300))
        with pytest.raises(ValueError, match="non-negative"):
            GaussianMixture().fit(X, sample_weight=w)  # NumPy weights, same checks
        with pytest.raises(ValueError, match="sums to zero"):
            GaussianMixture().fit(X, sample_weight=da.zeros(len(data), chunks=300))
        with pytest.raises(ValueError, match="n_samples >= n_components"):
            GaussianMixture(n_components=5).fit(X[:4])


# --------------------------------------------------------------------------------------
# Files and the command-line helpers
# --------------------------------------------------------------------------------------
def test_load_npy_file_and_folder_and_fit_out_of_core(client2, data, tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, data)
    X = gdask.load_dask_array(path, chunk_rows=300)
    assert X.chunks == ((300, 300, 300, 100), (3,))
    np.testing.assert_array_equal(X.compute(scheduler="sync"), data)
    folder = tmp_path / "parts"
    folder.mkdir()
    np.save(folder / "a.npy", data[:450])
    np.save(folder / "b.npy", data[450:])
    Y = gdask.load_dask_array(folder, chunk_rows=200)
    assert Y.chunks[0] == (200, 200, 50, 200, 200, 150)  # chunks never straddle files
    np.testing.assert_array_equal(Y.compute(scheduler="sync"), data)
    # Read from the memory map on every iteration (not persisted), same result.
    kw = dict(n_components=K, tol=0, max_iter=6, **_init_params("tied"), covariance_type="tied")
    with dask.config.set(scheduler=client2):
        assert not gdask.DaskData(X, None, None).persisted
        got = GaussianMixture(**kw).fit(Y)
    _assert_same_fit(GaussianMixture(**kw).fit(data), got)
    (folder / "c.npy").write_bytes(b"not an npy file")
    with pytest.raises(ValueError, match=r"c\.npy"):
        gdask.load_dask_array(folder)
    with pytest.raises(ValueError, match="unsupported format"):
        gdask.load_dask_array(_touch(tmp_path / "data.csv"))


def _touch(path):
    path.write_text("a,b\n1,2\n")
    return path


def test_load_parquet(tmp_path, data):
    pytest.importorskip("pyarrow")
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(data, columns=["a", "b", "c"])
    frame.to_parquet(tmp_path / "x.parquet")
    X = gdask.load_dask_array(tmp_path / "x.parquet")
    assert X.shape == data.shape
    np.testing.assert_array_equal(X.compute(scheduler="sync"), data)


def test_client_from_scheduler(client2):
    for bad in ("local:0", "local:two", "  "):
        with pytest.raises(ValueError, match=r"local:N|scheduler"):
            gdask.client_from_scheduler(bad)
    address = client2.scheduler.address
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        other = gdask.client_from_scheduler(address, set_as_default=False)
    try:
        assert set(other.scheduler_info()["workers"]) == set(client2.scheduler_info()["workers"])
    finally:
        gdask.close_client(other)
    # Workers of a cluster given by address keep their logging.
    assert all(client2.run(_logs_errors).values())


def _logs_errors():
    return logging.getLogger("distributed.worker").isEnabledFor(logging.ERROR)


def test_a_cluster_the_client_started_closes_quietly():
    """Its workers stop logging before it closes: a heartbeat in flight when a worker
    closes is logged with a traceback, which on the command line reads as a crash."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        client = gdask.client_from_scheduler(
            "local:1", dashboard_address=None, set_as_default=False
        )
    before = client.run(_logs_errors)
    at_close = {}
    close = client.close

    def close_and_record():
        at_close.update(client.run(_logs_errors))
        at_close["here"] = logging.getLogger("distributed.scheduler").isEnabledFor(
            logging.ERROR)
        close()

    client.close = close_and_record
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gdask.close_client(client)
    finally:
        del client.close
    assert len(before) == 1 and all(before.values())
    assert len(at_close) == 2 and not any(at_close.values())
    assert client.status == "closed"
    # (this process's scheduler logger is back as it was)
    assert logging.getLogger("distributed.scheduler").isEnabledFor(logging.ERROR)


def test_a_cluster_of_threads_closes_without_silencing_this_process():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        client = gdask.client_from_scheduler(
            "local:1", processes=False, dashboard_address=None, set_as_default=False
        )
        try:
            assert list(client.run(os.getpid).values()) == [os.getpid()]
        finally:
            gdask.close_client(client)
    assert client.status == "closed"
    assert _logs_errors()


def test_cluster_failure_is_a_clear_error_and_nothing_is_half_fitted(client2, data, monkeypatch):
    from distributed.comm.core import CommClosedError

    X = da.from_array(data, chunks=(300, 3))
    est = GaussianMixture(n_components=K, tol=0, max_iter=6, random_state=0, warm_start=True)
    real_compute = dask.compute
    calls = []

    def failing_compute(*args, **kwargs):
        calls.append(1)
        if len(calls) == 5:  # a few EM iterations in
            raise CommClosedError("simulated: connection to the scheduler lost")
        return real_compute(*args, **kwargs)

    monkeypatch.setattr(dask, "compute", failing_compute)
    with dask.config.set(scheduler=client2):
        with pytest.raises(gdask.DaskFitError, match="left unchanged"):
            est.fit(X)
    assert not hasattr(est, "means_")
    # A warm start that fails keeps the previous fit exactly.
    monkeypatch.setattr(dask, "compute", real_compute)
    with dask.config.set(scheduler=client2):
        est.fit(X)
    before = {name: getattr(est, name).copy() for name in FITTED}
    calls.clear()
    monkeypatch.setattr(dask, "compute", failing_compute)
    with dask.config.set(scheduler=client2):
        with pytest.raises(gdask.DaskFitError):
            est.fit(X)
    for name in FITTED:
        np.testing.assert_array_equal(getattr(est, name), before[name])


def test_file_errors_are_not_reported_as_cluster_failures():
    assert gdask._is_cluster_failure(OSError("Timed out trying to connect to tcp://x:1"))
    assert not gdask._is_cluster_failure(FileNotFoundError(2, "No such file", "big.npy"))
    assert not gdask._is_cluster_failure(ValueError("bad data"))


# --------------------------------------------------------------------------------------
# Losing a worker (keep last: it kills a worker process of the module's cluster)
# --------------------------------------------------------------------------------------
def test_worker_killed_during_fit(client2, data):
    kw = dict(n_components=K, tol=0, max_iter=8, **_init_params("full"))
    want = GaussianMixture(**kw).fit(data)
    client2.wait_for_workers(2)
    pids = client2.run(os.getpid)
    victim = sorted(pids.values())[0]
    killed = []

    def kill_after_three(n_iter, lower_bound, change):
        if n_iter == 3:
            os.kill(victim, signal.SIGKILL)
            killed.append(n_iter)

    est = GaussianMixture(**kw)
    est._callback = kill_after_three
    try:
        with dask.config.set(scheduler=client2):
            est.fit(da.from_array(data, chunks=(125, 3)))
    except gdask.DaskFitError as exc:  # allowed outcome: a clear error, nothing fitted
        assert "left unchanged" in str(exc)
        assert not hasattr(est, "means_")
    else:  # Dask recomputed the lost chunks: the very same fit
        _assert_same_fit(want, est)
    assert killed == [3]
