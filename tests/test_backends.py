"""The data-source protocol (gaussmix._backends): invariants of map_reduce and sample_rows,
for rows in memory and Dask arrays, and initialisation written once on it."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from gaussmix._backends import ArrayData, data_source
from gaussmix._init import initial_statistics
from gaussmix.em import run_em
from gaussmix.stats import MixtureParameters, block_statistics, m_step

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
K = 3


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


@pytest.fixture(scope="module")
def weights(data):
    w = np.random.default_rng(1).integers(0, 4, size=len(data)).astype(np.float64)
    w[:5] = 0.0
    return w


def _params(covariance_type):
    means = np.array([[-2.0, 0.5, 0.0], [1.0, 1.0, 0.0], [0.0, -2.0, 2.0]])
    precisions = {
        "full": np.stack([np.eye(3) * s for s in (1.0, 0.8, 1.2)]),
        "tied": np.eye(3) * 0.9,
        "diag": np.array([[1.0, 0.8, 1.1], [0.7, 1.0, 1.3], [1.2, 0.9, 1.0]]),
        "spherical": np.array([1.0, 0.8, 1.2]),
    }[covariance_type]
    return MixtureParameters.from_precisions(
        covariance_type, np.array([0.2, 0.3, 0.5]), means, precisions
    )


def _estep(X, w, params):
    return block_statistics(X, params, w, block_size=64)


def _assert_same_statistics(got, want, rtol=1e-12):
    got = got.moved_to(want.shift)
    for name in ("nk", "s1", "s2"):
        np.testing.assert_allclose(
            getattr(got, name), getattr(want, name), rtol=rtol, atol=1e-9, err_msg=name
        )
    assert got.log_likelihood == pytest.approx(want.log_likelihood, rel=rtol)
    # Weights summed in other groupings: 1000.0000000000095 against 1000 measured.
    assert got.weight_sum == pytest.approx(want.weight_sum, rel=1e-13)


# --------------------------------------------------------------------------------------
# map_reduce: any blocking gives the statistics of the whole
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("weighted", [False, True])
def test_map_reduce_of_block_statistics_equals_the_whole(data, weights, covariance_type, weighted):
    w = weights if weighted else None
    params = _params(covariance_type)
    source = data_source(data, w)
    whole = source.statistics(params)
    # The E-step fast path is the map-reduce of block statistics, whatever the blocking.
    _assert_same_statistics(source.map_reduce(_estep, params), whole)
    for n_blocks in (2, 7, 1000):
        per_block = [()] * n_blocks
        _assert_same_statistics(source.map_reduce(_estep, params, per_block=per_block), whole)
    with ThreadPoolExecutor(3) as pool:
        threaded = data_source(data, w, executor=pool)
        _assert_same_statistics(threaded.map_reduce(_estep, params), whole)
        _assert_same_statistics(threaded.statistics(params), whole)


@pytest.mark.parametrize("with_nan", [False, True])
def test_statistics_check_for_nan_once_per_source(data, monkeypatch, with_nan):
    """The in-memory source looks for NaN once (a sum of X), not in every block at every
    iteration; data with NaN keep the per-block check and the missing-value E-step."""
    import gaussmix._backends as backends
    import gaussmix.stats as gstats

    X = data.copy()
    if with_nan:
        X[[3, 500], [0, 2]] = np.nan
    params = _params("full")
    want = block_statistics(X, params, block_size=64)
    calls = {"source": 0, "blocks": 0}

    def counting(where, real):
        def holds_nan(Xb):
            calls[where] += 1
            return real(Xb)
        return holds_nan

    monkeypatch.setattr(backends, "_holds_nan", counting("source", backends._holds_nan))
    monkeypatch.setattr(gstats, "_holds_nan", counting("blocks", gstats._holds_nan))
    source = ArrayData(X, block_size=64)
    for _ in range(3):
        _assert_same_statistics(source.statistics(params), want)
    assert calls["source"] == 1
    # With NaN every block is checked at every call (16 blocks of 64 rows, and the
    # complete rows of the blocks left out again); without, none is.
    assert calls["blocks"] >= (3 * 16 if with_nan else 0)
    assert (calls["blocks"] > 0) == with_nan


def test_map_reduce_blocks_follow_the_executor(data):
    def rows_of(X, w, tag=None):
        return [(len(X), tag)]

    source = data_source(data)
    assert source.map_reduce(rows_of) == [(1000, None)]
    with ThreadPoolExecutor(3) as pool:
        source.executor = pool
        assert source.map_reduce(rows_of) == [(333, None), (333, None), (334, None)]
        # fixed_blocks: a result that does not depend on the thread pool.
        assert source.map_reduce(rows_of, fixed_blocks=True) == [(1000, None)]
        # per_block pins the blocking (and runs the blocks in row order).
        got = source.map_reduce(rows_of, per_block=[("a",), ("b",)])
        assert got == [(500, "a"), (500, "b")]


def test_parallel_context_sets_and_clears_the_executor(data, monkeypatch):
    import gaussmix._parallel as parallel

    pytest.importorskip("threadpoolctl")
    monkeypatch.setattr(parallel, "MIN_ROWS_FOR_THREADS", 0)
    monkeypatch.setattr(parallel, "available_cores", lambda: 2)
    source = data_source(data)
    with source.parallel():
        assert source.executor is not None
    assert source.executor is None


# --------------------------------------------------------------------------------------
# sample_rows: deterministic draws
# --------------------------------------------------------------------------------------
def test_sample_rows_in_memory(data, weights):
    source = data_source(data, weights)
    # At least n_samples rows: all of them, in order, and no random number drawn.
    rs = np.random.RandomState(0)
    rows, w = source.sample_rows(5000, rs)
    assert rows is source.X and w is source.sample_weight
    assert rs.randint(1 << 30) == np.random.RandomState(0).randint(1 << 30)
    # Fewer: distinct rows, in row order, the same for the same seed.
    rows, w = source.sample_rows(100, 7)
    index = np.array([int(np.flatnonzero((data == r).all(axis=1))[0]) for r in rows])
    assert len(set(index)) == 100 and np.all(np.diff(index) > 0)
    np.testing.assert_array_equal(w, source.sample_weight[index])
    again, _ = source.sample_rows(100, np.random.RandomState(7))
    np.testing.assert_array_equal(rows, again)
    other, _ = source.sample_rows(100, 8)
    assert not np.array_equal(rows, other)


def test_weighted_sample_rows_skip_zero_weights(data):
    w = np.zeros(len(data))
    allowed = [3, 500, 777, 901]
    w[allowed] = [1.0, 2.0, 3.0, 4.0]
    source = data_source(data, w)
    for seed in range(5):
        rows, weights = source.sample_rows(K, seed, weighted=True)
        index = [int(np.flatnonzero((data == r).all(axis=1))[0]) for r in rows]
        assert set(index) <= set(allowed) and len(set(index)) == K
        np.testing.assert_array_equal(weights, source.sample_weight[index])
    # Up to n rows: only four have a positive weight.
    rows, _ = source.sample_rows(10, 0, weighted=True)
    assert len(rows) == 4
    with pytest.raises(ValueError, match=r"random_from_data.*at least n_components=5.*got 4"):
        initial_statistics(source, "random_from_data", 5, np.random.RandomState(0), "full")


# --------------------------------------------------------------------------------------
# Initialisation written once
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["kmeans", "k-means++", "random", "random_from_data"])
def test_initial_statistics_are_those_of_a_start(data, method):
    source = data_source(data)
    stats = initial_statistics(source, method, K, np.random.RandomState(0), "full")
    assert stats.weight_sum == len(data)
    # One-hot starts on rows give N_k = 1; assignments of every row give sum N_k = N.
    expected_total = K if method in ("k-means++", "random_from_data") else len(data)
    assert stats.nk.sum() == pytest.approx(expected_total, rel=1e-12)
    again = initial_statistics(source, method, K, np.random.RandomState(0), "full")
    np.testing.assert_array_equal(stats.s2, again.s2)


def test_em_on_any_source_as_documented(data):
    # The module docstring's recipe gives the estimator's fit.
    from gaussmix import GaussianMixture

    source = data_source(data)
    with source.parallel():
        stats = initial_statistics(source, "kmeans", K, np.random.RandomState(0), "full")
        params = m_step(stats, reg_covar=1e-6)
        result = run_em(source.statistics, params, reg_covar=1e-6, tol=1e-3, max_iter=100)
    gm = GaussianMixture(K, random_state=0).fit(data)
    assert result.lower_bound == pytest.approx(gm.lower_bound_, rel=1e-10)
    np.testing.assert_allclose(result.params.means, gm.means_, rtol=1e-8)


def test_data_source_validates(data):
    assert isinstance(data_source(data), ArrayData)
    assert data_source(data.astype(np.float32)).dtype == np.float32
    bad = data.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        data_source(bad)
    with pytest.raises(ValueError, match="sample_weight"):
        data_source(data, -np.ones(len(data)))
    with pytest.raises(ValueError, match="1 sample"):
        data_source(data[:1])
    assert data_source(data[:1], min_samples=1).n_samples == 1


# --------------------------------------------------------------------------------------
# Dask: the same protocol (the default scheduler; tests/test_dask.py runs a cluster)
# --------------------------------------------------------------------------------------
CHUNKINGS = {"even": (250, 3), "uneven": (300, 3), "irregular": ((600, 250, 149, 1), (2, 1))}


@pytest.fixture
def sync():
    dask = pytest.importorskip("dask")
    pytest.importorskip("dask.array")
    with dask.config.set(scheduler="sync"):
        yield


@pytest.mark.parametrize("chunks", list(CHUNKINGS))
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_dask_map_reduce_equals_in_memory(sync, data, weights, covariance_type, chunks):
    import dask.array as da

    params = _params(covariance_type)
    want = data_source(data, weights).statistics(params)
    source = data_source(da.from_array(data, chunks=CHUNKINGS[chunks]), weights)
    assert type(source).__name__ == "DaskData"
    # Dask does not rescale the weights to mean 1 as the in-memory source does.
    scale = len(data) / weights.sum()
    got = source.statistics(params)
    for stats in (got, source.map_reduce(_estep, params)):
        for name in ("nk", "s1", "s2"):
            np.testing.assert_allclose(
                getattr(stats.moved_to(want.shift), name) * scale,
                getattr(want, name),
                rtol=1e-12,
                atol=1e-9,
            )
        assert stats.log_likelihood * scale == pytest.approx(want.log_likelihood, rel=1e-12)


def test_dask_sample_rows_as_in_memory(sync, data, weights):
    import dask.array as da

    memory = data_source(data, weights)
    source = data_source(da.from_array(data, chunks=(300, 3)), weights)
    rows, w = source.sample_rows(5000, 0)
    np.testing.assert_array_equal(rows, data)
    np.testing.assert_array_equal(w, weights)
    # A sample: the same row indices as in memory for the same seed.
    rows, w = source.sample_rows(100, 7)
    want, _ = memory.sample_rows(100, 7)
    np.testing.assert_array_equal(rows, want)
    index = [int(np.flatnonzero((data == r).all(axis=1))[0]) for r in rows]
    np.testing.assert_array_equal(w, weights[index])
    # Weighted draws (a race of keys on the chunks): deterministic, positive weights only.
    a, wa = source.sample_rows(K, 3, weighted=True)
    b, _ = source.sample_rows(K, 3, weighted=True)
    np.testing.assert_array_equal(a, b)
    assert len(a) == K and np.all(wa > 0)
    assert len(source.block_seeds(np.random.RandomState(0))) == source.n_chunks


@pytest.mark.parametrize("method", ["kmeans", "k-means++"])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_dask_and_memory_start_alike_when_the_sample_is_all_rows(
    sync, data, method, covariance_type
):
    import dask.array as da

    rs = np.random.RandomState(4)
    want = initial_statistics(data_source(data), method, K, rs, covariance_type)
    source = data_source(da.from_array(data, chunks=(300, 3)))
    got = initial_statistics(source, method, K, np.random.RandomState(4), covariance_type)
    _assert_same_statistics(got, want)


@pytest.mark.parametrize("method", ["random", "random_from_data"])
def test_dask_random_starts_are_deterministic(sync, data, method):
    import dask.array as da

    source = data_source(da.from_array(data, chunks=(300, 3)))
    a = initial_statistics(source, method, K, np.random.RandomState(2), "diag")
    b = initial_statistics(source, method, K, np.random.RandomState(2), "diag")
    c = initial_statistics(source, method, K, np.random.RandomState(3), "diag")
    # The start means (one-hot rows: their moments are about the rows themselves).
    start_a, start_b, start_c = (s.shift + s.s1 / s.nk[:, None] for s in (a, b, c))
    np.testing.assert_array_equal(start_a, start_b)
    assert not np.array_equal(start_a, start_c)
    expected_total = len(data) if method == "random" else K
    assert a.nk.sum() == pytest.approx(expected_total, rel=1e-12)


def test_em_on_a_dask_source_from_starts_on_its_sample(sync, data):
    # How model selection runs on Dask: a start computed in memory from sample_rows,
    # then EM on all the rows through the source's statistics (same fit as in memory).
    import dask.array as da

    source = data_source(da.from_array(data, chunks=(300, 3)))
    rows, _ = source.sample_rows(100_000, 0)
    start = initial_statistics(data_source(rows), "kmeans", K, np.random.RandomState(0), "tied")
    params = m_step(start, reg_covar=1e-6)
    kw = dict(reg_covar=1e-6, tol=0, max_iter=8)
    got = run_em(source.statistics, params, **kw)
    want = run_em(data_source(data).statistics, params, **kw)
    assert got.n_iter == want.n_iter == 8
    np.testing.assert_allclose(got.lower_bounds, want.lower_bounds, rtol=1e-12)
    np.testing.assert_allclose(got.params.covariances, want.params.covariances, rtol=1e-10)
    assert source.task_counts == [5] * 8  # 4 chunks + 1 reduction, at every iteration
