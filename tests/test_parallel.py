"""The threaded block path gives the sequential result (up to summation order)."""

import numpy as np
import pytest

import gaussmix._parallel as parallel
from gaussmix import GaussianMixture

pytest.importorskip("threadpoolctl")


@pytest.mark.filterwarnings("ignore::gaussmix.ConvergenceWarning")  # tol=0 on purpose
@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_threaded_blocks_equal_sequential(monkeypatch, covariance_type, dtype):
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(c, 1.0, size=(700, 3)) for c in (-4, 0, 4)]).astype(dtype)
    kw = dict(n_components=3, covariance_type=covariance_type, random_state=0,
              block_size=64, tol=0, max_iter=15)
    sequential = GaussianMixture(**kw).fit(X)
    monkeypatch.setattr(parallel, "MIN_ROWS_FOR_THREADS", 0)
    monkeypatch.setattr(parallel, "available_cores", lambda: 3)
    threaded = GaussianMixture(**kw).fit(X)
    rtol = 1e-10 if dtype == np.float64 else 1e-4
    for name in ("weights_", "means_", "covariances_"):
        np.testing.assert_allclose(getattr(threaded, name), getattr(sequential, name),
                                   rtol=rtol, atol=rtol)
    np.testing.assert_allclose(threaded.lower_bounds_, sequential.lower_bounds_, rtol=rtol)
    assert threaded.means_.dtype == dtype


def test_block_executor_is_off_for_small_data():
    with parallel.block_executor(10) as executor:
        assert executor is None


def test_threaded_prediction_equals_sequential(monkeypatch):
    rng = np.random.default_rng(1)
    X = np.vstack([rng.normal(c, 1.0, size=(500, 2)) for c in (-3, 3)])
    gm = GaussianMixture(2, random_state=0, block_size=50).fit(X)
    expected = (gm.predict_proba(X), gm.predict(X), gm.score_samples(X))
    monkeypatch.setattr(parallel, "MIN_ROWS_FOR_THREADS", 0)
    monkeypatch.setattr(parallel, "available_cores", lambda: 3)
    got = (gm.predict_proba(X), gm.predict(X), gm.score_samples(X))
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_array_equal(g, e)  # same blocks, same arithmetic: bit-identical


def test_one_blas_thread_holds_the_blas_to_one_thread_and_restores_it():
    """The cached controller limits the BLAS as threadpool_limits does, every time."""
    from threadpoolctl import threadpool_info

    def blas_threads():
        return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]

    before = blas_threads()
    assert before  # (NumPy's BLAS is seen)
    for _ in range(2):  # (the second use: the controller made by the first)
        limit = parallel.one_blas_thread()
        with limit:
            assert all(n == 1 for n in blas_threads())
        assert blas_threads() == before
