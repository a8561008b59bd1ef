"""Where the data lives: one data-source protocol for rows in memory and Dask arrays.

A data source is map-reduce plus sampling. Initialisation (``gaussmix._init``), the E-step
of the EM driver (``gaussmix.em.run_em``) and the estimator are written once on it:

``map_reduce(func, *shared, per_block=None, name="map", fixed_blocks=False)``
    ``func(X_b, w_b, *per_block[b], *shared)`` for every row block ``b`` (``w_b`` the
    block's weights, or None), the results summed with ``+`` (None results are skipped).
    ``func`` takes a block of any length: it works on bounded sub-blocks itself. In
    memory the blocks are contiguous row ranges, one per thread of the executor (one
    block without); on Dask they are the chunks, computed on the cluster with a tree
    reduction and one compute. ``per_block`` (one tuple per block) pins the blocking:
    its length must be that of ``block_seeds``. ``fixed_blocks=True`` asks for a result
    that does not depend on the executor (in memory: one block, summed in row order).
``sample_rows(n, seed, weighted=False)``
    ``(rows, weights)`` as NumPy arrays (``weights`` None when unweighted), drawn
    deterministically from ``seed`` (an int or a RandomState, consumed). Unweighted:
    every row in order when ``n >= n_samples`` (no draw), else ``n`` distinct rows
    uniformly at random, in row order. ``weighted=True``: ``min(n, rows of positive
    weight)`` rows without replacement with probability proportional to the weights, in
    draw order (``random_from_data``); always drawn.
``block_seeds(random_state)``
    The random streams of ``map_reduce(per_block=...)``, one per block: in memory
    ``[random_state]`` (one block, the rows in order: scikit-learn's stream); on Dask one
    int seed per chunk drawn from ``random_state``.
``statistics(params)``
    The E-step over every row: ``map_reduce`` of :func:`~gaussmix.stats.block_statistics`
    (a fast path: in memory one call of it over the thread executor; on Dask one graph of
    constant size per iteration).
``n_samples``, ``n_features``, ``dtype``, ``block_size``, ``weight_sum``, ``reference``
    ``weight_sum`` is the sum of the weights (``n_samples`` unweighted); ``reference``, a
    point near the data (the mean of the first rows), about which initial statistics are
    taken; ``kmeans_rows``, the number of rows k-means initialisation runs on at most.
``parallel()``
    A context manager inside which the in-memory source spreads its blocks over a thread
    pool (no-op on Dask).

:func:`data_source` builds the right source for a NumPy or Dask array. EM on any source::

    source = data_source(X, sample_weight)
    with source.parallel():
        stats = initial_statistics(source, "kmeans", K, random_state, "full")
        params = m_step(stats, reg_covar=1e-6)
        result = run_em(source.statistics, params, reg_covar=1e-6, tol=1e-3, max_iter=100)

Model selection on a Dask array works the same way: starts computed in memory from
``X0, w0 = source.sample_rows(100_000, seed)`` (all rows when fewer), then EM on all
rows through ``source.statistics``.
"""

from __future__ import annotations

import itertools
from contextlib import contextmanager

import numpy as np

from ._parallel import block_executor
from ._validation import check_array, check_random_state, check_sample_weight
from .stats import MixtureParameters, SufficientStatistics, _holds_nan, block_statistics

__all__ = ["ArrayData", "data_source"]


def _is_dask_array(X) -> bool:
    return type(X).__module__.startswith("dask.") and hasattr(X, "chunks")


def data_source(
    X, sample_weight=None, block_size=None, executor=None, *, min_samples=2, allow_nan=False
):
    """The data source of ``X``: :class:`ArrayData` in memory, ``DaskData`` for Dask.

    Parameters
    ----------
    X : array-like or dask.array.Array of shape (n_samples, n_features)
        Validated here (finite reals, at least ``min_samples`` rows). float32 and float64
        keep their dtype; other real dtypes become float64.
    sample_weight : array-like, scalar, dask array or None
        Non-negative finite weights, one per row.
    block_size : int, optional
        Rows per block of the E-step (sized for the covariance family by default).
    executor : concurrent.futures.Executor, optional
        A thread pool for the in-memory blocks (or use ``with source.parallel():``).
    min_samples : int, default=2
    allow_nan : bool, default=False
        Keep NaN as missing values (see ``gaussmix._missing``).

    Returns
    -------
    ArrayData or gaussmix._dask.DaskData
    """
    if _is_dask_array(X):
        from ._dask import DaskData

        return DaskData(X, sample_weight, block_size, min_samples=min_samples,
                        allow_nan=allow_nan)
    X = check_array(X, min_samples=min_samples, allow_nan=allow_nan)
    sample_weight = check_sample_weight(sample_weight, X.shape[0])
    return ArrayData(X, sample_weight, block_size, executor)


def sample_indices(rng, n, m):
    """``m`` distinct indices below ``n``, uniformly at random, sorted (without O(n) memory
    when ``n`` is large)."""
    if n <= 10_000_000:
        return np.sort(rng.choice(n, size=m, replace=False))
    chosen = np.unique(rng.randint(0, n, size=m, dtype=np.int64))
    while len(chosen) < m:
        extra = rng.randint(0, n, size=m - len(chosen), dtype=np.int64)
        chosen = np.union1d(chosen, extra)
    return chosen


def _row_ranges(n_samples, n_parts):
    bounds = np.linspace(0, n_samples, n_parts + 1).astype(np.intp)
    return [slice(int(a), int(b)) for a, b in itertools.pairwise(bounds)]


class ArrayData:
    """An in-memory (or memory-mapped) array of rows, with optional sample weights.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features), float64 or float32
        Already validated (see :func:`data_source`).
    sample_weight : ndarray of shape (n_samples,) or None
        Already validated; rescaled here to mean 1.
    block_size : int, optional
    executor : concurrent.futures.Executor, optional
    """

    def __init__(self, X: np.ndarray, sample_weight=None, block_size=None, executor=None):
        self.X = X
        self.executor = executor
        self.n_samples, self.n_features = X.shape
        if sample_weight is not None:
            # Rescale to mean 1: the fit does not depend on the scale of the weights, but
            # the 10 * eps guard on N_k would for tiny ones.
            total = float(np.sum(sample_weight, dtype=np.float64))
            sample_weight = (sample_weight * (self.n_samples / total)).astype(X.dtype)
        self.sample_weight = sample_weight
        self.dtype = X.dtype
        self.block_size = block_size
        self.weight_sum = (
            float(self.n_samples) if sample_weight is None else float(np.sum(sample_weight))
        )
        # A common point for the moments of initial assignments: the mean of a few rows.
        self.reference = X[: min(self.n_samples, 1000)].mean(axis=0, dtype=np.float64)
        self._nan_free = None  # whether X holds no NaN, found on the first E-step

    @property
    def kmeans_rows(self) -> int:
        """k-means initialisation runs on every row in memory."""
        return self.n_samples

    @contextmanager
    def parallel(self):
        """Spread the blocks over a thread pool (one per core, BLAS pinned to one thread)
        for the duration, when the data are large enough and no executor was given."""
        if self.executor is not None:
            yield self
            return
        with block_executor(self.n_samples) as executor:
            self.executor = executor
            try:
                yield self
            finally:
                self.executor = None

    def map_reduce(self, func, *shared, per_block=None, name="map", fixed_blocks=False):
        """Sum of ``func(X_b, w_b, *per_block[b], *shared)`` over contiguous row blocks.

        Without ``per_block``: one block per thread of the executor (one block without an
        executor, or with ``fixed_blocks``). With it: ``len(per_block)`` blocks, run in
        order. ``name`` is unused (it names the tasks on Dask).
        """
        threaded = per_block is None and self.executor is not None and not fixed_blocks
        if per_block is None:
            n_threads = getattr(self.executor, "_max_workers", 1) if threaded else 1
            blocks = _row_ranges(self.n_samples, max(1, min(n_threads, self.n_samples)))
            per_block = [()] * len(blocks)
        else:
            per_block = list(per_block)
            blocks = _row_ranges(self.n_samples, len(per_block))

        def run(b):
            rows = blocks[b]
            w = None if self.sample_weight is None else self.sample_weight[rows]
            return func(self.X[rows], w, *per_block[b], *shared)

        if threaded and len(blocks) > 1:
            results = list(self.executor.map(run, range(len(blocks))))
        else:
            results = [run(b) for b in range(len(blocks))]
        total = None
        for part in results:
            if part is not None:
                total = part if total is None else total + part
        return total

    def block_seeds(self, random_state):
        """One block, the rows in order, drawing from ``random_state`` (scikit-learn's
        stream for ``init_params="random"``)."""
        return [random_state]

    def sample_rows(self, n, seed, *, weighted=False):
        """Rows drawn deterministically from ``seed`` (see the module docstring)."""
        X, weights = self.X, self.sample_weight
        if not weighted and n >= self.n_samples:
            return X, weights
        random_state = check_random_state(seed)
        if not weighted:
            idx = sample_indices(random_state, self.n_samples, n)
        elif weights is None:
            idx = random_state.choice(self.n_samples, size=min(n, self.n_samples), replace=False)
        else:
            positive = np.flatnonzero(weights > 0)
            p = weights[positive] / weights[positive].sum()
            size = min(n, len(positive))
            idx = positive[random_state.choice(len(positive), size=size, replace=False, p=p)]
        return X[idx], None if weights is None else weights[idx]

    def statistics(self, params: MixtureParameters) -> SufficientStatistics:
        """E-step over every row: summed statistics of ``params``.

        Equal to ``map_reduce`` of :func:`~gaussmix.stats.block_statistics` (up to the
        order of the sums); one call of it spreads its blocks over the executor.
        """
        if self._nan_free is None:
            # Once per data source in memory, rather than a sum of every block at every
            # iteration (a memory-mapped file keeps the per-block check: no extra read).
            self._nan_free = self.X.dtype.kind != "f" or (
                not isinstance(self.X, np.memmap) and not _holds_nan(self.X)
            )
        return block_statistics(
            self.X,
            params,
            self.sample_weight,
            block_size=self.block_size,  # None: sized for the covariance family
            executor=self.executor,
            nan_free=self._nan_free,
        )
