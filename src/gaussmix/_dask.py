"""Fitting and predicting on Dask arrays: the same EM, mapped over chunks on a cluster.

:class:`DaskData` is the Dask implementation of the data-source protocol of
``gaussmix._backends`` (map-reduce over row blocks plus sampling; initialisation is written
once on it in ``gaussmix._init``). It rechunks ``X`` to whole rows, persists it once
(arrays read from ``.npy`` files by :func:`load_dask_array` are streamed from their memory
map instead), checks it in one pass, and then serves the EM driver: every ``map_reduce``
builds a fresh, fixed-size graph (one task per chunk, a tree of additions with fan-in
``REDUCE_FAN_IN``, small arguments written into the tasks) and computes it once; an E-step
is the ``map_reduce`` of :func:`~gaussmix.stats.block_statistics`. The M-step runs on the
client. Whatever ``distributed.Client`` is active runs the graphs (the default Dask
scheduler otherwise).

:func:`predict`, :func:`predict_proba` and :func:`score_samples` return lazy dask arrays
(``GaussianMixture`` calls them for dask inputs). :func:`client_from_scheduler` and
:func:`load_dask_array` serve the command line.

Dask is imported lazily: importing this module needs only NumPy.
"""

from __future__ import annotations

import logging
import numbers
import os
import uuid
from contextlib import contextmanager, suppress

import numpy as np

from ._backends import sample_indices
from ._validation import (
    check_finite_or_nan,
    check_magnitude,
    check_random_state,
    check_sample_weight,
    non_finite_message,
)
from .stats import (
    MixtureParameters,
    SufficientStatistics,
    auto_block_size,
    block_statistics,
)

__all__ = [
    "MAX_INIT_SAMPLE",
    "REDUCE_FAN_IN",
    "DaskData",
    "DaskFitError",
    "client_from_scheduler",
    "close_client",
    "load_dask_array",
    "predict",
    "predict_proba",
    "score_samples",
]

#: Largest number of rows k-means / k-means++ initialisation runs on (a uniform random
#: sample of the rows, drawn from ``random_state``; all rows when there are fewer).
MAX_INIT_SAMPLE = 100_000

#: Statistics of at most this many chunks are added up by one reduction task.
REDUCE_FAN_IN = 8

#: Arguments whose copies (one per chunk task) total at most this many bytes are written
#: into every task; larger ones are shipped once per worker as a task of their own.
_EMBED_BYTES = 1 << 20

#: Name prefix of arrays read by :func:`load_dask_array` from ``.npy`` files.
_NPY_PREFIX = "gaussmix-npy-"

#: Target bytes per chunk for arrays read from files.
_CHUNK_BYTES = 64 << 20


class DaskFitError(RuntimeError):
    """The Dask cluster failed during a fit (lost workers, lost connection)."""


# --------------------------------------------------------------------------------------
# Validation of dask inputs
# --------------------------------------------------------------------------------------
def _is_dask_collection(obj) -> bool:
    return type(obj).__module__.startswith("dask.") and hasattr(obj, "chunks")


def _float_dtype(dtype, name):
    """float32/float64 kept, other real dtypes -> float64, anything else rejected."""
    dtype = np.dtype(dtype)
    kind = dtype.kind
    if dtype in (np.float32, np.float64):
        return dtype
    if kind in "biuf":
        return np.dtype(np.float64)
    if kind == "c":
        raise ValueError(
            f"{name} is complex ({dtype}); Gaussian mixtures here are real-valued. Pass the "
            f"real and imaginary parts as separate features."
        )
    if kind in "USV":
        raise ValueError(
            f"{name} has dtype {dtype}: it holds strings, not numbers. Convert the columns "
            "to numeric values (or drop the text columns) before fitting."
        )
    if kind in "mM":
        raise TypeError(f"{name} holds dates or times ({dtype}), not numbers.")
    raise TypeError(
        f"{name} has dtype {dtype}; a dask array of numbers is needed. Convert it with "
        f"{name}.astype('float64') (object arrays cannot be checked lazily)."
    )


def _check_dask_X(X, *, name="X", min_samples=1):
    """Shape and dtype checks of a dask array; returns it as float, chunked by whole rows."""
    if X.ndim != 2:
        if X.ndim <= 1:
            raise ValueError(
                f"Expected a 2-D array for {name}, got a {X.ndim}-D dask array of shape "
                f"{X.shape}. Reshape it: {name}.reshape(-1, 1) if it has a single feature."
            )
        raise ValueError(
            f"Expected a 2-D array for {name} (n_samples, n_features), got {X.ndim} "
            f"dimensions with shape {X.shape}."
        )
    if any(np.isnan(c) for c in X.shape):
        raise ValueError(
            f"{name} has unknown chunk sizes (shape {X.shape}); the number of rows must be "
            f"known. Call {name}.compute_chunk_sizes() first, or build it with known "
            "lengths (from a dask DataFrame: df.to_dask_array(lengths=True))."
        )
    n_samples, n_features = (int(s) for s in X.shape)
    if n_samples == 0:
        raise ValueError(f"{name} is empty: 0 samples (shape {X.shape}).")
    if n_features == 0:
        raise ValueError(f"{name} has 0 features (shape {X.shape}); at least 1 is required.")
    if n_samples < min_samples:
        raise ValueError(
            f"{name} has {n_samples} sample{'s' if n_samples != 1 else ''}, but fitting "
            f"needs at least {min_samples}."
        )
    dtype = _float_dtype(X.dtype, name)
    if dtype != X.dtype:
        X = X.astype(dtype)
    if len(X.chunks[1]) != 1:
        X = X.rechunk({1: -1})
    return X


def _check_dask_weights(sample_weight, n_samples, row_chunks, dtype):
    """sample_weight as a dask array chunked like X's rows (values checked later), or None."""
    import dask.array as da

    if sample_weight is None:
        return None
    if _is_dask_collection(sample_weight):
        w = sample_weight
        if w.ndim != 1:
            raise ValueError(
                f"sample_weight must be 1-D of shape ({n_samples},), got shape {w.shape}."
            )
        if np.isnan(w.shape[0]):
            raise ValueError(
                "sample_weight has unknown chunk sizes; call sample_weight.compute_chunk_sizes() "
                "first."
            )
        if int(w.shape[0]) != n_samples:
            raise ValueError(
                f"sample_weight has {int(w.shape[0])} values but X has {n_samples} samples; "
                "pass one weight per row of X."
            )
        if w.dtype.kind not in "biuf":
            raise TypeError(f"sample_weight must hold numbers, got dtype {w.dtype}.")
        w = w.astype(dtype)
        if w.chunks[0] != tuple(row_chunks):
            w = w.rechunk((tuple(row_chunks),))
        return w
    if isinstance(sample_weight, numbers.Number) and not isinstance(sample_weight, bool):
        check_sample_weight(np.array([sample_weight], dtype=np.float64), 1, np.float64)
        return da.full((n_samples,), sample_weight, chunks=(tuple(row_chunks),), dtype=dtype)
    weights = check_sample_weight(sample_weight, n_samples, dtype)
    return da.from_array(weights, chunks=(tuple(row_chunks),))


def _check_chunk(x, w, offset, allow_nan=False):
    """Per-chunk validation summary (counts and first offending positions, global rows).

    With ``allow_nan`` (missing values), NaN is counted but not offending; the chunk also
    reports its rows with no observed value and, per feature, the count and sum of the
    observed values (for the column means of the initialisation's filled view).
    """
    out = {"n_nan": 0, "n_inf": 0, "first_bad": None}
    with np.errstate(over="ignore", invalid="ignore"):
        fast = np.isfinite(np.sum(x, dtype=np.float64))
    if not fast:
        finite = np.isfinite(x)
        if not finite.all():
            nan = np.isnan(x)
            out["n_nan"] = int(nan.sum())
            out["n_inf"] = int((~finite).sum()) - out["n_nan"]
            bad = ~finite if not allow_nan else np.isinf(x)
            if bad.any():
                row, col = np.argwhere(bad)[0]
                out["first_bad"] = (int(row) + offset, int(col))
            if allow_nan:
                empty = nan.all(axis=1)
                out["n_empty"] = int(empty.sum())
                out["first_empty"] = int(np.argmax(empty)) + offset if empty.any() else None
    if out["first_bad"] is None:
        check_magnitude(x, row_offset=offset)
    if allow_nan:
        observed = ~np.isnan(x)
        out["col_count"] = observed.sum(axis=0)
        out["col_sum"] = np.where(observed, x, 0).sum(axis=0, dtype=np.float64)
    if w is not None:
        w64 = w.astype(np.float64)
        finite = np.isfinite(w64)
        out["w_nonfinite"] = int((~finite).sum())
        negative = w64 < 0
        out["w_negative"] = int(negative.sum())
        out["w_first_negative"] = (
            (int(np.argmax(negative)) + offset, float(w64[np.argmax(negative)]))
            if out["w_negative"]
            else None
        )
        out["w_sum"] = float(np.sum(w64[finite]))
        out["w_positive"] = int(np.count_nonzero(w64 > 0))
    return out


def _raise_on_missing_values(summaries):
    """With missing values allowed: refuse infinity, empty rows and empty features."""
    n_inf = sum(s["n_inf"] for s in summaries)
    if n_inf:
        first = next(s["first_bad"] for s in summaries if s["first_bad"] is not None)
        raise ValueError(
            f"X contains {n_inf} infinite value{'s' if n_inf != 1 else ''} (infinity); the "
            f"first is at row {first[0]}, column {first[1]}. NaN marks a missing value, but "
            "infinity is not allowed: replace it with NaN or drop the rows that hold it."
        )
    n_empty = sum(s.get("n_empty", 0) for s in summaries)
    if n_empty:
        first = next(s["first_empty"] for s in summaries if s.get("first_empty") is not None)
        raise ValueError(
            f"X has {n_empty} row{'s' if n_empty != 1 else ''} with no observed value (every "
            f"feature NaN); the first is row {first}. Such rows carry no information: drop "
            "them (for example X[~da.isnan(X).all(axis=1)])."
        )
    counts = sum(s["col_count"] for s in summaries)
    if np.any(counts == 0):
        j = int(np.argmax(counts == 0))
        raise ValueError(
            f"Feature {j} of X has no observed value (every row is NaN there): its mean "
            "and variance cannot be estimated. Drop that column."
        )
    return sum(s["col_sum"] for s in summaries) / counts


def _raise_on_bad_input(summaries, weighted):
    n_nan = sum(s["n_nan"] for s in summaries)
    n_inf = sum(s["n_inf"] for s in summaries)
    if n_nan and not n_inf:  # only model selection reads Dask data without allow_nan
        first = next(s["first_bad"] for s in summaries if s["first_bad"] is not None)
        raise ValueError(
            f"X holds {n_nan} missing value{'s' if n_nan != 1 else ''} (NaN; the first at row "
            f"{first[0]}, column {first[1]}): model selection on a Dask array does not take "
            "missing values yet. Select in memory (select_model(X.compute()) uses exact EM "
            "with missing values), or fit one model on Dask (GaussianMixture.fit takes them)."
        )
    if n_nan or n_inf:
        first = next(s["first_bad"] for s in summaries if s["first_bad"] is not None)
        raise ValueError(
            non_finite_message(
                "X",
                n_nan,
                n_inf,
                f"row {first[0]}, column {first[1]}",
                " (for example X[da.isfinite(X).all(axis=1)])",
            )
        )
    if not weighted:
        return None
    n_bad = sum(s["w_nonfinite"] for s in summaries)
    if n_bad:
        raise ValueError(
            f"sample_weight contains {n_bad} NaN or infinite value{'s' if n_bad != 1 else ''}; "
            "weights must be finite."
        )
    n_neg = sum(s["w_negative"] for s in summaries)
    if n_neg:
        first = next(s["w_first_negative"] for s in summaries if s["w_first_negative"])
        raise ValueError(
            f"sample_weight must be non-negative; found {n_neg} negative value(s), the first "
            f"at index {first[0]} ({first[1]!r})."
        )
    total = sum(s["w_sum"] for s in summaries)
    if not total > 0:
        raise ValueError("sample_weight sums to zero: at least one sample needs weight > 0.")
    return total


# --------------------------------------------------------------------------------------
# Chunk tasks (run on the workers; module-level so they pickle by reference)
# --------------------------------------------------------------------------------------
class _Literal:
    """Wraps a small argument so that dask embeds it as is (no traversal of its fields)."""

    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value


def _unwrap(a):
    return a.value if isinstance(a, _Literal) else a


def _apply(func, x, w, *args):
    return func(x, w, *(_unwrap(a) for a in args))


def _nbytes(obj) -> int:
    if isinstance(obj, np.ndarray):
        return obj.nbytes
    if isinstance(obj, MixtureParameters):
        return sum(
            np.asarray(a).nbytes
            for a in (obj.weights, obj.means, obj.covariances, obj.precisions_cholesky)
        )
    return 64


def _chunk_statistics(x, w, params, block_size):
    return block_statistics(x, params, w, block_size=block_size)


def _sum_statistics(*parts):
    """Sum of the statistics of some chunks (None for an empty chunk)."""
    total = None
    for part in parts:
        if part is not None:
            total = part if total is None else total + part
    return total


def _race_chunk(x, w, seed, count):
    """Candidates of weighted sampling without replacement (Efraimidis-Spirakis race).

    Every row gets the key ``E / w`` with ``E`` standard exponential; the ``count`` rows of
    smallest keys over all the data are a sample without replacement with probabilities
    proportional to ``w`` (uniform when unweighted). Each chunk returns its own ``count``
    smallest (rows of zero weight never), with their keys, rows and weights.
    """
    rng = np.random.default_rng(seed)
    keys = rng.standard_exponential(size=x.shape[0])
    if w is not None:
        w64 = w.astype(np.float64)
        positive = w64 > 0
        with np.errstate(divide="ignore"):
            keys = np.where(positive, keys / np.where(positive, w64, 1.0), np.inf)
        n_positive = int(np.count_nonzero(positive))
    else:
        n_positive = x.shape[0]
    take = min(count, n_positive)
    if take < x.shape[0]:
        idx = np.argpartition(keys, take - 1)[:take] if take > 0 else np.empty(0, np.intp)
    else:
        idx = np.arange(x.shape[0])[np.isfinite(keys)]
    idx = idx[np.argsort(keys[idx], kind="stable")]
    return {
        "keys": keys[idx],
        "rows": np.array(x[idx]),
        "weights": None if w is None else np.array(w[idx]),
    }


def _take_rows(x, w, local):
    return np.array(x[local]), None if w is None else np.array(w[local])


# --------------------------------------------------------------------------------------
# The data source
# --------------------------------------------------------------------------------------
def _reads_npy_files(X) -> bool:
    """Whether X is computed from ``.npy`` files opened by :func:`load_dask_array`
    (possibly through column selections or dtype casts): cheap to re-read at every
    iteration, so not worth holding in the workers' memory."""
    layers = getattr(X.__dask_graph__(), "layers", {})
    return any(str(name).startswith(_NPY_PREFIX) for name in layers)


class DaskData:
    """Rows of a dask array (optionally weighted), served to the EM driver chunk by chunk.

    Implements the data-source protocol of ``gaussmix._backends`` (``map_reduce``,
    ``sample_rows``, ``block_seeds``, ``statistics``, ``parallel``); build it with
    ``gaussmix._backends.data_source``.

    Parameters
    ----------
    X : dask.array.Array of shape (n_samples, n_features)
        Real numbers with known chunk sizes. float32 and float64 keep their dtype; other
        real dtypes become float64. Rechunked to whole rows (one chunk across the columns).
    sample_weight : dask array, array-like, scalar or None
        Non-negative finite weights, one per row, not all zero.
    block_size : int, optional
        Rows per sub-block inside a chunk (bounded memory on the workers).
    persist : bool, optional
        Keep the rows in the workers' memory for the whole fit. By default everything is
        persisted except arrays computed from ``.npy`` files opened by
        :func:`load_dask_array` (also after column selections or casts), which the workers
        re-read from their memory maps at every iteration (out of core).
    min_samples : int, default=2
        Fewer rows are an error.

    Attributes
    ----------
    n_samples, n_features : int
    dtype : numpy.dtype
    weight_sum : float
        Sum of the weights (``n_samples`` when unweighted; not rescaled).
    reference : ndarray of shape (n_features,)
        Mean of the first rows: the point initial statistics are taken about.
    n_chunks : int
    task_counts : list of int
        Number of tasks in the graph of every E-step computed so far (constant).
    """

    def __init__(self, X, sample_weight=None, block_size=None, *, persist=None, min_samples=2,
                 allow_nan=False):
        import dask

        X = _check_dask_X(X, min_samples=min_samples)
        self.n_samples, self.n_features = (int(s) for s in X.shape)
        self.dtype = X.dtype
        self.block_size = block_size
        row_chunks = X.chunks[0]
        w = _check_dask_weights(sample_weight, self.n_samples, row_chunks, self.dtype)
        if persist is None:
            persist = not _reads_npy_files(X)
        self.persisted = bool(persist)
        if persist:
            X, w = dask.persist(X, w)
        self.X = X
        self.sample_weight = w
        self.n_chunks = len(row_chunks)
        self._offsets = np.concatenate([[0], np.cumsum(row_chunks)]).astype(np.int64)
        self._x_keys = [k[0] for k in X.__dask_keys__()]
        self._w_keys = [None] * self.n_chunks if w is None else list(w.__dask_keys__())
        self.task_counts = []

        checks = self._graph(
            _check_chunk,
            per_chunk=[(int(o), bool(allow_nan)) for o in self._offsets[:-1]],
            kind="check",
            reduce=False,
        )
        # A common point for the moments of initial assignments: the mean of the first
        # rows (as the in-memory source does).
        head = X[: min(self.n_samples, 1000)]
        summaries, head = self._compute((checks, head))
        #: Number of NaN (missing) cells, and the observed column means when there are any
        #: (the initialisation's filled view, :meth:`filled_for_start`).
        self.n_missing = 0
        self.column_means = None
        if allow_nan:
            column_means = _raise_on_missing_values(summaries)
            self.n_missing = sum(s["n_nan"] for s in summaries)
            for s in summaries:  # the NaN are dealt with; the weights are checked below
                s["n_nan"] = s["n_inf"] = 0
            if self.n_missing:
                self.column_means = column_means
        total = _raise_on_bad_input(summaries, w is not None)
        self.weight_sum = float(self.n_samples) if total is None else float(total)
        head = np.asarray(head)
        if self.n_missing:
            head = np.where(np.isnan(head), self.column_means, head)
        self.reference = head.mean(axis=0, dtype=np.float64)

    def filled_for_start(self):
        """The rows with each NaN replaced by its column's observed mean (lazily), for the
        initialisation only (as in memory); EM then runs on the rows with their NaN."""
        import dask.array as da

        if self.column_means is None:
            return self
        means = self.column_means.astype(self.dtype)
        filled = da.where(da.isnan(self.X), means, self.X)
        return DaskData(filled, self.sample_weight, self.block_size, persist=False,
                        min_samples=1)

    # ----------------------------------------------------------------------------------
    @property
    def kmeans_rows(self) -> int:
        """k-means initialisation runs on a sample of at most :data:`MAX_INIT_SAMPLE` rows."""
        return MAX_INIT_SAMPLE

    @contextmanager
    def parallel(self):
        """Nothing to set up: the cluster runs the chunks in parallel."""
        yield self

    @staticmethod
    def _compute(obj):
        """One ``dask.compute``; cluster failures become a clear :class:`DaskFitError`."""
        import dask

        try:
            (result,) = dask.compute(obj)
        except Exception as exc:
            if _is_cluster_failure(exc):
                raise DaskFitError(
                    f"The Dask cluster failed during the fit ({type(exc).__name__}: {exc}). "
                    "Workers were lost or the scheduler became unreachable; the estimator "
                    "was left unchanged. Check the workers' logs (memory limits) and fit "
                    "again."
                ) from exc
            raise
        return result

    def _graph(self, func, shared=(), per_chunk=None, *, kind, reduce=True):
        """One low-level graph: ``func(x_j, w_j, *per_chunk[j], *shared)`` for every chunk j.

        With ``reduce``, the chunks' results are added up by a tree of tasks (fan-in
        ``REDUCE_FAN_IN``) and one Delayed is returned; otherwise one Delayed per chunk.
        Small ``shared`` arguments (all their copies together under ``_EMBED_BYTES``) are
        written into every task: no extra task and no transfer between workers. Larger
        ones become one task each, fetched once per worker. The graph is built as a plain
        dict (cheap on the client even with many chunks) on top of the persisted chunks,
        so its size is the same at every iteration.
        """
        from dask.delayed import Delayed
        from dask.highlevelgraph import HighLevelGraph

        token = uuid.uuid4().hex
        name = f"gaussmix-{kind}-{token}"
        layer = {}
        args = []
        for i, a in enumerate(shared):
            if _nbytes(a) * self.n_chunks <= _EMBED_BYTES:
                args.append(_Literal(a))
            else:
                key = (f"gaussmix-arg-{token}", i)
                layer[key] = a
                args.append(key)
        keys = []
        for j in range(self.n_chunks):
            extra = () if per_chunk is None else tuple(per_chunk[j])
            keys.append((name, j))
            layer[keys[-1]] = (_apply, func, self._x_keys[j], self._w_keys[j], *extra, *args)
        dependencies = [self.X] if self.sample_weight is None else [self.X, self.sample_weight]
        if not reduce:
            graph = HighLevelGraph.from_collections(name, layer, dependencies=dependencies)
            return [Delayed(k, graph, layer=name) for k in keys]
        level = 0
        while len(keys) > 1:
            parents = []
            for i in range(0, len(keys), REDUCE_FAN_IN):
                parents.append((f"gaussmix-reduce-{token}", level, i // REDUCE_FAN_IN))
                layer[parents[-1]] = (_sum_statistics, *keys[i : i + REDUCE_FAN_IN])
            keys = parents
            level += 1
        graph = HighLevelGraph.from_collections(name, layer, dependencies=dependencies)
        if kind == "estep":
            self.task_counts.append(len(layer))
        return Delayed(keys[0], graph, layer=name)

    # ----------------------------------------------------------------------------------
    def map_reduce(self, func, *shared, per_block=None, name="map", fixed_blocks=False):
        """Sum of ``func(x_j, w_j, *per_block[j], *shared)`` over the chunks j, on the cluster.

        One graph (``n_chunks`` tasks named ``gaussmix-<name>-...``, a reduction tree)
        and one compute. The blocks are always the chunks (``fixed_blocks`` changes
        nothing).
        """
        return self._compute(self._graph(func, shared, per_block, kind=name))

    def statistics(self, params: MixtureParameters) -> SufficientStatistics:
        """E-step over every chunk on the cluster: summed statistics of ``params``.

        One graph of fixed size per call (``n_chunks`` E-step tasks, the reduction tree,
        the parameters) and one compute.
        """
        block_size = self.block_size or auto_block_size(
            self.n_features, params.n_components, self.dtype.itemsize
        )
        return self.map_reduce(_chunk_statistics, params, block_size, name="estep")

    def block_seeds(self, random_state):
        """One seed per chunk, drawn from ``random_state`` (so draws depend on the chunking)."""
        return [int(s) for s in random_state.randint(np.iinfo(np.int32).max, size=self.n_chunks)]

    def sample_rows(self, n, seed, *, weighted=False):
        """Rows drawn deterministically from ``seed`` (protocol of ``gaussmix._backends``).

        Unweighted: every row when ``n >= n_samples``, else a uniform sample of ``n`` rows
        (in row order); only the chunks holding them are read. ``weighted=True``: a race of
        random keys ``E / w`` (Efraimidis-Spirakis) computed on the chunks, one seed per
        chunk; only candidate rows reach the client.
        """
        random_state = check_random_state(seed)
        if weighted:
            return self._race(n, random_state)
        if self.n_samples <= n:
            X, w = self._compute((self.X, self.sample_weight))
            return np.asarray(X), None if w is None else np.asarray(w)
        idx = sample_indices(random_state, self.n_samples, n)
        chunk_of = np.searchsorted(self._offsets, idx, side="right") - 1
        chunks = np.unique(chunk_of)
        local = [(idx[chunk_of == j] - self._offsets[j],) for j in range(self.n_chunks)]
        tasks = self._graph(_take_rows, per_chunk=local, kind="sample", reduce=False)
        pieces = self._compute([tasks[j] for j in chunks])
        Xs = np.concatenate([p[0] for p in pieces])
        ws = None if self.sample_weight is None else np.concatenate([p[1] for p in pieces])
        return Xs, ws

    def _race(self, n, random_state):
        seeds = self.block_seeds(random_state)
        parts = self._graph(
            _race_chunk,
            (n,),
            per_chunk=[(seed,) for seed in seeds],
            kind="race",
            reduce=False,
        )
        candidates = self._compute(parts)
        keys = np.concatenate([c["keys"] for c in candidates])
        order = np.argsort(keys, kind="stable")[:n]
        rows = np.concatenate([c["rows"] for c in candidates])[order]
        if self.sample_weight is None:
            return rows, None
        return rows, np.concatenate([c["weights"] for c in candidates])[order]


def _is_cluster_failure(exc) -> bool:
    """Whether an exception from a compute means the cluster (not the data) failed.

    Lost workers, lost connections and cancelled futures count; errors of the data
    (a file that vanished, values the E-step rejects) propagate as they are.
    """
    kinds = [ConnectionError, TimeoutError]
    try:
        from distributed.comm.core import CommClosedError
        from distributed.scheduler import KilledWorker

        kinds += [KilledWorker, CommClosedError]
    except ImportError:  # pragma: no cover - dask without distributed
        pass
    from concurrent.futures import CancelledError

    kinds.append(CancelledError)
    if isinstance(exc, tuple(kinds)):
        return True
    # distributed reports connection failures as bare OSErrors (no errno); file errors
    # always carry one.
    return type(exc) is OSError and exc.errno is None


# --------------------------------------------------------------------------------------
# Lazy prediction
# --------------------------------------------------------------------------------------
def _predict_input(est, X):
    X = _check_dask_X(X)
    if X.shape[1] != est.n_features_in_:
        raise ValueError(
            f"X has {X.shape[1]} features, but GaussianMixture is expecting "
            f"{est.n_features_in_} features as input."
        )
    params = est._get_parameters()
    if _nbytes(params) * X.numblocks[0] > _EMBED_BYTES:
        # Too big to copy into every task: one task of its own, fetched once per worker.
        from dask import delayed

        params = delayed(params, traverse=False, name="gaussmix-model-" + uuid.uuid4().hex)
    return X, params


def _row_offset(block_info):
    if block_info and 0 in block_info:
        return block_info[0]["array-location"][0][0]
    return 0


def _finite_block(x, block_info):
    """NaN is a missing value; refuse infinity and rows with no observed value (global
    row numbers; the counts are the block's)."""
    check_finite_or_nan(x, row_offset=_row_offset(block_info))
    check_magnitude(x, row_offset=_row_offset(block_info))


def _impute_block(x, params, block_size, block_info=None):
    from . import _missing

    _finite_block(x, block_info)
    out = np.array(x, copy=True)
    incomplete = _missing.incomplete_rows(x)
    if incomplete is not None:
        out[incomplete] = _missing.impute(x[incomplete], params, block_size=block_size)
    return out


def _predict_block(x, params, block_size, block_info=None):
    from . import stats

    _finite_block(x, block_info)
    return stats.predict(x, params, block_size=block_size)


def _predict_proba_block(x, params, block_size, block_info=None):
    from . import stats

    _finite_block(x, block_info)
    return stats.predict_proba(x, params, block_size=block_size)


def _score_samples_block(x, params, block_size, block_info=None):
    from . import stats

    _finite_block(x, block_info)
    return stats.score_samples(x, params, block_size=block_size)


def predict(est, X):
    """Most probable component of every row of a dask array, lazily.

    Parameters
    ----------
    est : GaussianMixture
        A fitted estimator. Its parameters travel inside the tasks, or as one task of
        their own when the copies for all chunks would exceed 1 MiB.
    X : dask.array.Array of shape (n_samples, n_features)
        Real values with known chunk sizes; rechunked to whole rows. Non-finite values
        raise a ValueError naming their row when the result is computed.

    Returns
    -------
    dask.array.Array
        Integer labels, shape (n_samples,), chunked like X's rows.
    """
    X, params = _predict_input(est, X)
    return X.map_blocks(
        _predict_block,
        params,
        est.block_size,
        drop_axis=1,
        dtype=np.intp,
        meta=np.empty((0,), dtype=np.intp),
        name="gaussmix-predict-" + uuid.uuid4().hex,
    )


def predict_proba(est, X):
    """Responsibilities (posterior probabilities) of every row of a dask array, lazily.

    Parameters
    ----------
    est : GaussianMixture
        A fitted estimator. Its parameters travel inside the tasks, or as one task of
        their own when the copies for all chunks would exceed 1 MiB.
    X : dask.array.Array of shape (n_samples, n_features)
        Real values with known chunk sizes; rechunked to whole rows. Non-finite values
        raise a ValueError naming their row when the result is computed.

    Returns
    -------
    dask.array.Array
        Shape (n_samples, n_components), rows summing to 1, in X's float dtype.
    """
    X, params = _predict_input(est, X)
    n_components = est.means_.shape[0]
    return X.map_blocks(
        _predict_proba_block,
        params,
        est.block_size,
        chunks=(X.chunks[0], (n_components,)),
        dtype=X.dtype,
        meta=np.empty((0, 0), dtype=X.dtype),
        name="gaussmix-predict-proba-" + uuid.uuid4().hex,
    )


def score_samples(est, X):
    """Log-density ``log p(x_n)`` of every row of a dask array, lazily.

    Parameters
    ----------
    est : GaussianMixture
        A fitted estimator. Its parameters travel inside the tasks, or as one task of
        their own when the copies for all chunks would exceed 1 MiB.
    X : dask.array.Array of shape (n_samples, n_features)
        Real values with known chunk sizes; rechunked to whole rows. Non-finite values
        raise a ValueError naming their row when the result is computed.

    Returns
    -------
    dask.array.Array
        Shape (n_samples,), in X's float dtype.
    """
    X, params = _predict_input(est, X)
    return X.map_blocks(
        _score_samples_block,
        params,
        est.block_size,
        drop_axis=1,
        dtype=X.dtype,
        meta=np.empty((0,), dtype=X.dtype),
        name="gaussmix-score-samples-" + uuid.uuid4().hex,
    )


def impute(est, X):
    """X with every NaN replaced by its conditional mean under the fitted mixture, lazily.

    Parameters
    ----------
    est : GaussianMixture
        A fitted estimator (see :meth:`gaussmix.GaussianMixture.impute`).
    X : dask.array.Array of shape (n_samples, n_features)
        Real values with known chunk sizes; rechunked to whole rows. Infinity and rows
        with no observed value raise a ValueError naming their row when computed.

    Returns
    -------
    dask.array.Array
        Shape and chunks of X (whole rows), in X's float dtype; observed values unchanged.
    """
    X, params = _predict_input(est, X)
    return X.map_blocks(
        _impute_block,
        params,
        est.block_size,
        dtype=X.dtype,
        meta=np.empty((0, 0), dtype=X.dtype),
        name="gaussmix-impute-" + uuid.uuid4().hex,
    )


# --------------------------------------------------------------------------------------
# Command-line helpers
# --------------------------------------------------------------------------------------
def client_from_scheduler(spec, **kwargs):
    """A ``distributed.Client`` for the command line's ``--scheduler`` value.

    Parameters
    ----------
    spec : str
        ``"local:N"`` starts a LocalCluster of N single-threaded worker processes (owned by
        the client: ``client.close()`` stops it; started without distributed's
        ``MALLOC_TRIM_THRESHOLD_``, which slows the E-step); ``"local"`` uses one per CPU.
        Anything else is a scheduler address, e.g. ``"tcp://10.0.0.5:8786"``.
    **kwargs
        Passed on to the LocalCluster (for example ``memory_limit="2GB"``) or the Client.

    Returns
    -------
    distributed.Client
        Registered as the default: fits on dask arrays use it.
    """
    try:
        from distributed import Client
    except ImportError:  # pragma: no cover - exercised without the extra
        raise ImportError(
            "--scheduler needs dask.distributed: pip install 'gaussmix[dask]'."
        ) from None
    text = str(spec).strip()
    if text == "local" or text.startswith("local:"):
        count = text.partition(":")[2]
        if count:
            try:
                n_workers = int(count)
            except ValueError:
                n_workers = 0
            if n_workers < 1:
                raise ValueError(
                    f"--scheduler {text!r}: 'local:N' needs a positive whole number of "
                    "worker processes N, e.g. local:4."
                )
        else:
            n_workers = os.cpu_count() or 1
        kwargs.setdefault("threads_per_worker", 1)
        kwargs.setdefault("processes", True)
        import dask

        # distributed starts workers with MALLOC_TRIM_THRESHOLD_=65536, which turns every
        # multi-megabyte temporary of the E-step into a fresh memory map (page faults on
        # every block): the E-step runs about 25-35% slower (benchmarks/bench_dask.py).
        # The short-lived clusters of the command line do without it.
        # (A cluster started earlier in this process leaves the variable in os.environ,
        # whence new workers would inherit it: hide it while these workers start.)
        environ = dict(dask.config.get("distributed.nanny.pre-spawn-environ", {}) or {})
        default = environ.pop("MALLOC_TRIM_THRESHOLD_", None)
        inherited = os.environ.get("MALLOC_TRIM_THRESHOLD_")
        hide = inherited is not None and inherited == str(default)
        if hide:
            del os.environ["MALLOC_TRIM_THRESHOLD_"]
        try:
            with dask.config.set({"distributed.nanny.pre-spawn-environ": environ}):
                return Client(n_workers=n_workers, **kwargs)
        finally:
            if hide:
                os.environ["MALLOC_TRIM_THRESHOLD_"] = inherited
    if not text:
        raise ValueError("--scheduler needs a scheduler address (tcp://host:8786) or local:N.")
    kwargs.setdefault("timeout", 10)
    try:
        return Client(text, **kwargs)
    except OSError as exc:
        raise OSError(
            f"Could not connect to the Dask scheduler at {text!r} ({exc}). Check the address "
            "and that `dask scheduler` runs there, or use --scheduler local:N for a cluster "
            "on this machine."
        ) from None


def close_client(client):
    """Close a client of :func:`client_from_scheduler`; a LocalCluster it started goes quietly.

    A worker that closes while its heartbeat to the scheduler is in flight logs the failed
    heartbeat with a traceback (distributed's own shutdown race). On the command line's
    short-lived clusters that reads as a crash after the command's own message, so the
    worker processes of a cluster the client started stop logging before it closes, and
    this process's ``distributed`` logger (the scheduler's, here; and the workers', when
    they are threads of this process) is quiet while it closes, then back to its level.
    The workers of a cluster given by address are left as they are.
    """
    if getattr(client, "cluster", None) is None:
        client.close()
        return
    with suppress(Exception):
        client.run(_silence_logging, os.getpid())
    logger = logging.getLogger("distributed")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        client.close()
    finally:
        logger.setLevel(level)


def _silence_logging(client_pid):
    """On a worker process about to close: no more log records up to ERROR (see
    close_client); nothing in the client's own process."""
    if os.getpid() != client_pid:
        logging.disable(logging.ERROR)


class _NpyRows:
    """Rows of one or more ``.npy`` files (stacked), read through memory maps.

    It pickles as its paths and shapes only: each worker opens the files itself and reads
    just the rows of its chunk, so the files never travel through the scheduler.
    """

    def __init__(self, paths):
        self.paths = [os.fspath(p) for p in paths]
        lengths = []
        n_features = dtype = None
        for path in self.paths:
            try:
                arr = np.load(path, mmap_mode="r")
            except (OSError, ValueError) as exc:
                raise ValueError(f"{path}: cannot read it as a .npy file ({exc}).") from None
            if arr.ndim != 2:
                raise ValueError(
                    f"{path}: expected a 2-D array (n_samples, n_features), got shape "
                    f"{arr.shape}. Save it with X.reshape(-1, 1) for a single feature."
                )
            if n_features is None:
                n_features, dtype = arr.shape[1], arr.dtype
            elif arr.shape[1] != n_features or arr.dtype != dtype:
                raise ValueError(
                    f"{path}: shape {arr.shape} and dtype {arr.dtype} do not match the first "
                    f"file ({self.paths[0]}: {n_features} features, {dtype}); every file of "
                    "a folder must have the same columns and dtype."
                )
            lengths.append(arr.shape[0])
        self.lengths = lengths
        self.starts = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        self.shape = (int(self.starts[-1]), int(n_features))
        self.dtype = np.dtype(dtype)
        self.ndim = 2

    def __getitem__(self, index):
        rows, cols = index if isinstance(index, tuple) else (index, slice(None))
        start, stop, _ = rows.indices(self.shape[0])
        pieces = []
        for i, path in enumerate(self.paths):
            lo, hi = max(start, self.starts[i]), min(stop, self.starts[i + 1])
            if lo < hi:
                arr = np.load(path, mmap_mode="r")
                pieces.append(np.array(arr[lo - self.starts[i] : hi - self.starts[i], cols]))
        if not pieces:
            return np.empty((0, self.shape[1]), dtype=self.dtype)[:, cols]
        return pieces[0] if len(pieces) == 1 else np.concatenate(pieces)


def _row_chunks(lengths, chunk_rows):
    """Chunks of at most ``chunk_rows`` rows that never straddle two files."""
    chunks = []
    for length in lengths:
        full, rest = divmod(length, chunk_rows)
        chunks += [chunk_rows] * full + ([rest] if rest else [])
    return tuple(chunks)


def load_dask_array(path, *, chunk_rows=None, columns=None):
    """Open a ``.npy`` file, a folder of ``.npy`` files or Parquet data as a dask array.

    Parameters
    ----------
    path : str or path-like
        * a ``.npy`` file: memory-mapped, chunked by rows; read by the workers themselves,
          so it may be larger than their memory (fits stream it at every iteration);
        * a folder of ``.npy`` files: stacked in name order (same columns and dtype);
        * a ``.parquet`` / ``.parq`` file or a folder of them (needs pyarrow): read with
          dask.dataframe, numeric columns only.
    chunk_rows : int, optional
        Rows per chunk (default: about 64 MiB per chunk). For Parquet, the row groups.
    columns : list of str, optional
        Parquet columns to read (default: all, which must be numeric).

    Returns
    -------
    dask.array.Array of shape (n_samples, n_features)
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        entries = sorted(os.listdir(path))
        npy = [os.path.join(path, e) for e in entries if e.endswith(".npy")]
        parquet = [e for e in entries if e.endswith((".parquet", ".parq"))]
        if npy:
            return _load_npy(npy, chunk_rows)
        if parquet:
            return _load_parquet(path, columns)
        raise ValueError(
            f"{path}: the folder holds no .npy or .parquet files; give a .npy file, a folder "
            "of .npy files, or Parquet data."
        )
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file or folder.")
    if path.endswith(".npy"):
        return _load_npy([path], chunk_rows)
    if path.endswith((".parquet", ".parq")):
        return _load_parquet(path, columns)
    raise ValueError(
        f"{path}: unsupported format for --scheduler; give a .npy file, a folder of .npy "
        "files, or .parquet data."
    )


def _load_npy(paths, chunk_rows):
    import dask.array as da
    from dask.base import tokenize

    source = _NpyRows(paths)
    if chunk_rows is None:
        per_row = max(1, source.shape[1] * source.dtype.itemsize)
        chunk_rows = max(1, _CHUNK_BYTES // per_row)
    if int(chunk_rows) < 1:
        raise ValueError(f"chunk_rows must be a positive integer, got {chunk_rows!r}.")
    stamp = [(p, os.path.getmtime(p), os.path.getsize(p)) for p in source.paths]
    return da.from_array(
        source,
        chunks=(_row_chunks(source.lengths, int(chunk_rows)), (source.shape[1],)),
        name=_NPY_PREFIX + tokenize(stamp, chunk_rows),
        meta=np.empty((0, 0), dtype=source.dtype),
        asarray=False,
    )


def _load_parquet(path, columns):
    try:
        import dask.dataframe as dd
    except ImportError as exc:
        raise ImportError(
            f"{path}: reading Parquet with Dask needs dask.dataframe and pyarrow "
            f"(pip install pyarrow) ({exc})."
        ) from None
    df = dd.read_parquet(path, columns=columns)
    bad = [str(c) for c, t in df.dtypes.items() if np.dtype(t).kind not in "biuf"]
    if bad:
        raise ValueError(
            f"{path}: columns {bad} are not numeric; choose numeric columns (columns=...)."
        )
    return df.to_dask_array(lengths=True)
