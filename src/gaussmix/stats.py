"""E-step of a block of rows as additive sufficient statistics, and the M-step.

Every EM iteration is a map-reduce: for a block of rows and the current parameters,
:func:`block_statistics` returns a :class:`SufficientStatistics` holding, per component k,

* ``nk[k]   = sum_n w_n r_nk``                          (soft counts, MATH.md: N_k)
* ``s1[k]   = sum_n w_n r_nk (x_n - c_k)``              (first moment about a shift c_k)
* ``s2[k]   = sum_n w_n r_nk (x_n - c_k)(x_n - c_k)^T`` (second moment about c_k; its
  diagonal for ``diag``, its trace for ``spherical``, summed over k for ``tied``)
* ``log_likelihood = sum_n w_n log p(x_n)``

where ``r_nk`` are the responsibilities and ``w_n`` the sample weights (1 by default).
Statistics of two blocks add up (``a + b``) when they were computed with the same
parameters, so the same code fits in memory (a loop over row blocks), out of core and on a
cluster. :func:`m_step` turns summed statistics into new parameters.

The moments are centred: about the mixture mean ``sum_k pi_k mu_k`` when the E-step runs
on quadratic features (diag, spherical, and full while that is accurate and pays, see
:mod:`gaussmix._estep`), else about the components' current means (free, from the whitened residuals
the E-step computes anyway). The M-step then uses
the exact identity ``sum r (x-mu)(x-mu)^T = s2 - nk d d^T`` with ``d = s1 / nk``, where
``d`` is small, instead of the textbook ``E[x x^T] - mu mu^T`` that cancels catastrophically
for clusters far from the origin (scikit-learn issue 30382).

Examples
--------
>>> import numpy as np
>>> from gaussmix.stats import MixtureParameters, block_statistics, m_step
>>> rng = np.random.default_rng(0)
>>> X = rng.normal(size=(1000, 2))
>>> params = MixtureParameters.from_covariances(
...     "full", np.array([0.5, 0.5]), np.array([[-1.0, 0.0], [1.0, 0.0]]),
...     np.stack([np.eye(2), np.eye(2)]))
>>> whole = block_statistics(X, params)
>>> halves = block_statistics(X[:400], params) + block_statistics(X[400:], params)
>>> bool(np.allclose(whole.s2, halves.s2))
True
>>> new = m_step(whole, reg_covar=1e-6)
>>> new.weights.sum().round(12)
np.float64(1.0)
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from . import _missing, families
from ._estep import make_estep

__all__ = [
    "MixtureParameters",
    "SufficientStatistics",
    "auto_block_size",
    "block_statistics",
    "m_step",
    "predict",
    "predict_proba",
    "score_samples",
    "statistics_from_responsibilities",
    "statistics_of_rows",
]

# --------------------------------------------------------------------------------------
# Parameters and statistics
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MixtureParameters:
    """Parameters of a Gaussian mixture: weights pi_k, means mu_k, covariances Sigma_k.

    Attributes
    ----------
    covariance_type : str
        The family's name (an alias such as "EEE" is stored as its name, "tied").
    weights : ndarray of shape (n_components,)
    means : ndarray of shape (n_components, n_features)
    covariances : ndarray
        The family's ``covariance_shape``: (K, D, D) full, (D, D) tied, (K, D) diag,
        (K,) spherical.
    precisions_cholesky : ndarray
        Same shapes; ``precision = L @ L.T`` (full, tied) or ``L**2``.
    """

    covariance_type: str
    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    precisions_cholesky: np.ndarray

    def __post_init__(self):
        object.__setattr__(self, "covariance_type", families.get(self.covariance_type).name)

    @property
    def family(self) -> families.CovarianceFamily:
        """The covariance family (see :mod:`gaussmix.families`)."""
        return families.get(self.covariance_type)

    @property
    def n_components(self) -> int:
        return self.means.shape[0]

    @property
    def n_features(self) -> int:
        return self.means.shape[1]

    @property
    def dtype(self):
        return self.means.dtype

    @classmethod
    def from_covariances(cls, covariance_type, weights, means, covariances, reg_covar=0.0):
        """Build parameters from covariances, computing the precision Cholesky factors.

        Raises ValueError naming the component whose covariance is not positive definite.
        """
        covariances = np.asarray(covariances)
        prec_chol = families.get(covariance_type).precision_cholesky(covariances, reg_covar)
        dtype = np.asarray(means).dtype
        return cls(
            covariance_type,
            np.asarray(weights),
            np.asarray(means),
            covariances,
            prec_chol.astype(dtype, copy=False),
        )

    @classmethod
    def from_precisions(cls, covariance_type, weights, means, precisions):
        """Build parameters from precision matrices (as scikit-learn's ``precisions_init``)."""
        dtype = np.asarray(means).dtype
        family = families.get(covariance_type)
        prec_chol = family.precision_cholesky_from_precisions(precisions)
        covariances = family.covariances_from_precisions(prec_chol)
        return cls(
            covariance_type,
            np.asarray(weights),
            np.asarray(means),
            covariances.astype(dtype),
            prec_chol.astype(dtype),
        )

    def astype(self, dtype) -> MixtureParameters:
        """The same parameters with every array cast to ``dtype``."""
        return MixtureParameters(
            self.covariance_type,
            *(
                np.asarray(a).astype(dtype, copy=False)
                for a in (self.weights, self.means, self.covariances, self.precisions_cholesky)
            ),
        )


@dataclass
class SufficientStatistics:
    """Additive statistics of a set of rows under fixed parameters (see module docstring).

    Attributes
    ----------
    covariance_type : str
    shift : ndarray of shape (n_components, n_features)
        The points ``c_k`` the moments are taken about (data coordinates, float64).
    nk : ndarray of shape (n_components,)
    s1 : ndarray of shape (n_components, n_features)
    s2 : ndarray
        As the family's ``statistic`` says: (K, D, D) full, (D, D) tied (pooled), (K, D)
        diag (diagonal), (K,) spherical (trace).
    log_likelihood : float
        ``sum_n w_n log p(x_n)`` under the parameters the E-step used.
    weight_sum : float
        ``sum_n w_n`` (the number of rows when unweighted).
    parameters_id : str or None
        A fingerprint of the parameters the E-step used (None for statistics of given
        responsibilities). Statistics of different parameters cannot be added.
    """

    covariance_type: str
    shift: np.ndarray
    nk: np.ndarray
    s1: np.ndarray
    s2: np.ndarray
    log_likelihood: float
    weight_sum: float
    parameters_id: str | None = None

    def __post_init__(self):
        self.covariance_type = families.get(self.covariance_type).name

    @property
    def family(self) -> families.CovarianceFamily:
        """The covariance family (see :mod:`gaussmix.families`)."""
        return families.get(self.covariance_type)

    def __add__(self, other: SufficientStatistics) -> SufficientStatistics:
        if not isinstance(other, SufficientStatistics):
            return NotImplemented
        if other.covariance_type != self.covariance_type or other.shift.shape != self.shift.shape:
            raise ValueError(
                "Cannot add statistics of different covariance types or shapes: every "
                "block of one EM iteration must use the same model."
            )
        if other.parameters_id != self.parameters_id:
            raise ValueError(
                "Cannot add statistics computed with different parameters: every block of "
                "one EM iteration must use the same parameters."
            )
        if not np.array_equal(other.shift, self.shift):
            other = other.moved_to(self.shift)
        return SufficientStatistics(
            self.covariance_type,
            self.shift,
            self.nk + other.nk,
            self.s1 + other.s1,
            self.s2 + other.s2,
            self.log_likelihood + other.log_likelihood,
            self.weight_sum + other.weight_sum,
            self.parameters_id,
        )

    def moved_to(self, shift) -> SufficientStatistics:
        """The same statistics with the moments taken about ``shift`` (K, D) instead.

        With delta_k = c_k - c'_k and x - c' = (x - c) + delta (exact algebra):
        s1' = s1 + N delta,  s2' = s2 + s1 delta^T + delta s1^T + N delta delta^T
        (its diagonal for diag, its trace for spherical, summed over k for tied).
        Blocks of one iteration may have been computed about different points (a block
        redone in another precision); this makes them add up.
        """
        shift = np.asarray(shift, dtype=np.float64)
        delta = self.shift - shift
        s1 = self.s1 + self.nk[:, None] * delta
        s2 = self.family.moved_scatter(self.s2, self.s1, self.nk, delta)
        return SufficientStatistics(
            self.covariance_type, shift.copy(), self.nk, s1, s2, self.log_likelihood,
            self.weight_sum, self.parameters_id,
        )

    @property
    def mean_log_likelihood(self) -> float:
        """Weighted mean log-likelihood per sample: scikit-learn's ``lower_bound_``."""
        return self.log_likelihood / self.weight_sum


# --------------------------------------------------------------------------------------
# The E-step of whole arrays, block by block (the per-block work: gaussmix._estep)
# --------------------------------------------------------------------------------------
def _parameters_id(params: MixtureParameters) -> str:
    """A fingerprint of the parameters (to refuse adding statistics of different ones)."""
    # SHA-256 runs on the processor's SHA instructions where there are some: half the
    # time of BLAKE2b (0.6 against 1.3 ms for the 1 MB of K = 8, D = 128, on the serial
    # path between two E-steps).
    digest = hashlib.sha256(params.covariance_type.encode())
    for a in (params.weights, params.means, params.precisions_cholesky):
        # The array's own buffer (no bytes copy: 1 MB per iteration at K = 8, D = 128).
        digest.update(np.ascontiguousarray(a, dtype=np.float64).data)
    return digest.hexdigest()[:24]


def auto_block_size(
    n_features: int, n_components: int, itemsize: int = 8, covariance_type: str = "full"
) -> int:
    """Rows per block: about 4 MiB of per-row workspace per block.

    The workspace of a row is, for the full family, its quadratic features plus two
    (K,) columns, 1 + D + D (D + 1) / 2 + 2 K numbers, when the quadratic mode pays
    (D + 2 <= 4 K), else K (D + 4) (whitened residuals, as for tied); 4 (K + D) for diag
    and spherical. Blocks that size keep the passes over a block in cache and make the
    per-block Python overhead (a few dozen NumPy calls) negligible. Measured on
    N = 1e6, D = 2, K = 8 (full, whitened): 2,730 rows per block ran 156 ms per
    iteration, 8,192 rows 56 ms, 32,768 rows 71 ms. The full family's whitening at
    D = 64, K = 8 (two threads, whole fits side by side): float32 blocks of 1,927 rows
    ran 13% faster than of 963 (one core alone prefers the smaller), float64 blocks of
    963 rows 16% faster than of 640.
    """
    D, K = n_features, n_components
    form = families.get(covariance_type).precision_form
    if form in ("diagonal", "scalar"):
        per_row = itemsize * 4 * (K + D)
    elif form == "full" and D + 2 <= 4 * K:
        per_row = itemsize * (1 + D + D * (D + 1) // 2 + 2 * K)
    else:
        per_row = itemsize * K * (D + 4)
    return int(min(max((4 << 20) // per_row, 256), 16384))  # (np.clip: 40 us on scalars)


def _blocks(n_samples: int, block_size: int):
    for start in range(0, n_samples, block_size):
        yield slice(start, min(start + block_size, n_samples))


def block_statistics(
    X, params: MixtureParameters, sample_weight=None, *, block_size=None, executor=None,
    nan_free=False,
):
    """E-step of a block of rows: its additive sufficient statistics and log-likelihood.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features), float64 or float32
        The rows. Processed in sub-blocks of ``block_size`` rows, so memory stays bounded
        whatever the size of ``X`` (a Dask chunk, a memory-mapped file).
    params : MixtureParameters
        Current parameters; cast to X's dtype for the heavy arithmetic.
    sample_weight : ndarray of shape (n_samples,), optional
        Non-negative weights ``w_n``; they multiply the responsibilities and the
        log-likelihood terms.
    block_size : int, optional
        Rows per sub-block; :func:`auto_block_size` by default.
    executor : concurrent.futures.Executor, optional
        A thread pool to spread the sub-blocks over (NumPy releases the GIL in its
        kernels). Each worker accumulates its own statistics; they are added at the end.
        Best with the BLAS limited to one thread (``GaussianMixture`` does this when
        threadpoolctl is installed).
    nan_free : bool, default=False
        The caller knows X holds no NaN: the blocks are not checked for missing values
        (a sum of every block, every iteration; the in-memory data source checks once).

    Returns
    -------
    SufficientStatistics
        float64 statistics; add them over blocks and pass the sum to :func:`m_step`.
    """
    X = np.asarray(X)
    dtype = _working_dtype(X)
    estep, incomplete = _estep_over(
        X, params, sample_weight, dtype, block_size, executor, check=not nan_free
    )
    if not estep.accurate():
        # The moments would lose too much precision: a float32 mean moved more than 10
        # of its standard deviations in one step (a poor start), or the moments about
        # the centre cancel (a component narrow for its distance from the others, or
        # collapsing). Redo this rare iteration in float64, with moments about the means:
        # for diag and spherical, about the new means this pass found (two-pass form).
        estep, _ = _estep_over(
            X, params, sample_weight, np.dtype(np.float64), block_size, executor,
            exact=True, about=estep.new_means(),
        )
    stats = _statistics(estep, params)
    if incomplete.size:
        # Blocks holding a NaN were left out of the pass above: their rows go through
        # the missing-value E-step (complete rows among them through this one again).
        weight = None if sample_weight is None else np.asarray(sample_weight)[incomplete]
        stats = stats + _statistics_with_missing(
            X[incomplete], params, weight, block_size, executor
        )
    return stats


def _statistics_with_missing(X, params, sample_weight, block_size, executor):
    """Statistics of rows some of which hold a NaN: complete rows by the fast E-step,
    rows with NaN by gaussmix._missing; summed."""
    incomplete = _missing.incomplete_rows(X)
    weight = None if sample_weight is None else np.asarray(sample_weight)
    shift, nk, s1, s2, log_likelihood, weight_sum = _missing.incomplete_statistics(
        X, params, None if weight is None else weight[incomplete],
        block_size=block_size, rows=np.flatnonzero(incomplete), executor=executor,
    )
    stats = SufficientStatistics(
        params.covariance_type, shift, nk, s1, s2, log_likelihood, weight_sum,
        _parameters_id(params),
    )
    complete = ~incomplete
    if complete.any():
        # Added in this order, the complete rows' moments are moved to the incomplete
        # rows' shift (the components' means), not the other way: a component holding
        # one far incomplete row (1e9) moved to the complete rows' centre cancelled
        # (N delta^2 ~ 1e18 against a scatter of 1e-6: a negative variance).
        stats = stats + block_statistics(
            X[complete], params, None if weight is None else weight[complete],
            block_size=block_size, executor=executor,
        )
    return stats


def _statistics(estep, params: MixtureParameters) -> SufficientStatistics:
    """The E-step's accumulated moments as the statistics of ``params``."""
    shift, nk, s1, s2 = estep.moments()
    return SufficientStatistics(
        params.covariance_type, shift, nk, s1, s2, estep.log_likelihood, estep.weight_sum,
        _parameters_id(params),
    )


def _row_blocks(X, params, dtype, block_size):
    """The row slices of X, ``block_size`` rows each (sized for the family by default)."""
    if block_size is None:
        block_size = auto_block_size(
            params.n_features, params.n_components, dtype.itemsize, params.covariance_type
        )
    return list(_blocks(X.shape[0], block_size))


def _estep_over(
    X, params, sample_weight, dtype, block_size, executor=None, exact=False, about=None,
    check=True,
):
    """The E-step of every block of X without NaN, merged over the threads (see
    make_estep), and the indices of the rows of the blocks left out for holding a NaN.

    Each thread checks its own blocks (a sum of the block, in cache, where a serial pass
    over all of X before the E-step cost up to a fifth of a float32 iteration).
    """
    blocks = _row_blocks(X, params, dtype, block_size)
    check = check and X.dtype.kind == "f"

    def run(part):
        estep = make_estep(params, dtype, exact, about)
        left_out = []
        for rows in part:
            Xb = X[rows].astype(dtype, copy=False)
            if check and _holds_nan(Xb):
                left_out.append(rows)
                continue
            wb = None if sample_weight is None else sample_weight[rows]
            estep.accumulate(Xb, wb)
        return estep, left_out

    results = _run_parts(executor, blocks, run)
    estep, left_out = results[0]
    for other, more in results[1:]:
        estep.merge(other)
        left_out = left_out + more
    incomplete = np.sort(np.concatenate(
        [np.arange(s.start, s.stop) for s in left_out] or [np.empty(0, np.intp)]
    ))
    return estep, incomplete


def _holds_nan(Xb) -> bool:
    """Whether a block holds a NaN: a finite sum proves it does not (an overflowing
    sum is checked value by value)."""
    with np.errstate(over="ignore", invalid="ignore"):
        if not np.isnan(np.sum(Xb)):
            return False
    return bool(np.isnan(Xb).any())


def _run_parts(executor, blocks, run):
    """``run(part)`` on round-robin parts of ``blocks``, one per thread of ``executor``;
    the calling thread runs the first part itself (rather than wait idle)."""
    n_workers = getattr(executor, "_max_workers", 1) if executor is not None else 1
    if n_workers < 2 or len(blocks) < 2 * n_workers:
        return [run(blocks)]
    futures = [executor.submit(run, blocks[i::n_workers]) for i in range(1, n_workers)]
    return [run(blocks[0::n_workers])] + [f.result() for f in futures]


def statistics_from_responsibilities(X, resp, covariance_type, *, shift, sample_weight=None):
    """Sufficient statistics of given responsibilities (used for initialisation).

    Parameters
    ----------
    X : ndarray of shape (n_rows, n_features)
    resp : ndarray of shape (n_rows, n_components)
    covariance_type : str or CovarianceFamily
    shift : ndarray of shape (n_features,)
        A common point the moments are taken about (for example a row of the data).
    sample_weight : ndarray of shape (n_rows,), optional

    Returns
    -------
    SufficientStatistics
        With ``log_likelihood = 0`` (no parameters were involved).
    """
    X = np.asarray(X, dtype=np.float64)
    resp = np.asarray(resp, dtype=np.float64)
    if sample_weight is not None:
        resp = resp * sample_weight[:, None]
        weight_sum = float(np.sum(sample_weight))
    else:
        weight_sum = float(X.shape[0])
    shift = np.asarray(shift, dtype=np.float64)
    Xc = X - shift
    n_components = resp.shape[1]
    family = families.get(covariance_type)
    return SufficientStatistics(
        family.name,
        np.broadcast_to(shift, (n_components, X.shape[1])).copy(),
        resp.sum(axis=0),
        resp.T @ Xc,
        family.scatter(Xc, resp),
        0.0,
        weight_sum,
    )


def statistics_of_rows(rows, covariance_type, *, shift, weight_sum, sample_weight=None):
    """Statistics of a one-hot start: component k is the single row ``rows[k]``.

    ``weight_sum`` is the weight of all the data (so that the initial weights are
    N_k / N, as scikit-learn's), not only of these rows.
    """
    stats = statistics_from_responsibilities(
        rows, np.eye(len(rows)), covariance_type, shift=shift, sample_weight=sample_weight
    )
    stats.weight_sum = weight_sum
    return stats


# --------------------------------------------------------------------------------------
# The M-step
# --------------------------------------------------------------------------------------
def m_step(
    stats: SufficientStatistics,
    *,
    reg_covar: float = 1e-6,
    dtype=np.float64,
    previous=None,
    prior=None,
):
    """New parameters from summed statistics (MATH.md, M-step).

    * N_k = sum_n gamma_nk                       (``nk``, plus 10 eps against empty ones)
    * mu_k = (1 / N_k) sum_n gamma_nk x_n        = c_k + s1_k / N_k
    * Sigma_k = (1 / N_k) sum_n gamma_nk (x_n - mu_k)(x_n - mu_k)^T
              = (s2_k - s1_k s1_k^T / N_k) / N_k, plus ``reg_covar`` on the diagonal
              (tied: pooled over k and divided by sum_k N_k; diag: the diagonal;
              spherical: the mean of the diagonal)
    * pi_k = N_k / N

    Computed in float64, returned cast to ``dtype``. Raises ValueError naming the
    component whose covariance is not positive definite even after ``reg_covar``.

    ``previous`` (optional) is the current :class:`MixtureParameters`: a family whose
    M-step is iterative starts from its covariances (ignored if of another family).

    ``prior`` (optional) is a resolved conjugate prior (:class:`gaussmix._prior.Prior`):
    the means and covariances are then the posterior mode (MAP) of Fraley & Raftery
    (2007), see :mod:`gaussmix._prior`; the weights are still N_k / N.
    """
    guard = 10 * np.finfo(dtype).eps
    if prior is not None:
        return _map_step(stats, reg_covar, dtype, previous, prior, guard)
    nk = stats.nk + guard
    means = stats.shift + stats.s1 / nk[:, None]
    empty = stats.nk < guard  # weight below rounding: no rows to place the mean
    if previous is not None and np.any(empty):
        # An empty component keeps its mean (as the whitening E-steps' moments about the
        # means give anyway), not the point the E-step took its moments about.
        means = np.where(empty[:, None], np.asarray(previous.means, np.float64), means)
    # Scatter about the new mean: s2 - s1 s1^T / N_k, with the exact N_k (the family mixes
    # in the guarded N_k only as the divisor, see CovarianceFamily.m_step_covariances).
    start = None
    if previous is not None and previous.family is stats.family:
        start = np.asarray(previous.covariances, dtype=np.float64)
    try:
        cov = stats.family.m_step_covariances(
            stats.nk, stats.s1, stats.s2, reg_covar, guard, previous=start
        )
    except np.linalg.LinAlgError as exc:  # (an eigen-decomposition of a non-finite scatter)
        raise _update_failed(stats.family, reg_covar, exc) from None
    weights = nk / nk.sum()
    params = MixtureParameters.from_covariances(
        stats.covariance_type, weights, means, cov, reg_covar
    )
    return params.astype(dtype)


def _update_failed(family, reg_covar, exc) -> ValueError:
    """The error for a covariance update whose LAPACK call failed: a component without
    spread (all its rows equal, reg_covar=0) leaves the iterative models' shared pieces 0/0,
    and their eigen-decompositions of the NaN do not converge."""
    return ValueError(
        f"The {family.name} covariance update failed ({exc}): a component has collapsed "
        f"onto rows without spread (reg_covar={reg_covar:g}), or its scatter is not "
        "finite. Lower n_components, raise reg_covar (e.g. to 1e-4), or scale the data "
        "(standardize features on very different scales)."
    )


def _map_step(stats, reg_covar, dtype, previous, prior, guard):
    """:func:`m_step` under a conjugate prior: the posterior mode (gaussmix._prior)."""
    start = None
    if previous is not None and previous.family is stats.family:
        start = np.asarray(previous.covariances, dtype=np.float64)
    means, cov = stats.family.map_covariances(
        stats.nk, stats.s1, stats.s2, stats.shift, prior, reg_covar, guard, previous=start
    )
    nk = stats.nk + guard
    params = MixtureParameters.from_covariances(
        stats.covariance_type, nk / nk.sum(), means, cov, reg_covar
    )
    return params.astype(dtype)


# --------------------------------------------------------------------------------------
# Prediction, block by block
# --------------------------------------------------------------------------------------
def _working_dtype(X):
    return X.dtype if X.dtype in (np.float32, np.float64) else np.dtype(np.float64)


def _for_each_block(X, params, block_size, executor, write):
    """Call ``write(estep, rows, log_dens)`` on every block, spread over ``executor``'s threads.

    Each thread has its own E-step (its own workspace); the blocks write disjoint rows.
    ``estep.normalize(log_dens)`` gives the responsibilities and log p(x).

    float32 results are computed in an exact mode: the quadratic mode's rounding
    (~eps * distance^2, about 1e-5 relative in float32) is fine inside EM, whose next
    iteration corrects it, but a returned density should be as exact as float32 allows.
    """
    X = np.asarray(X)
    dtype = _working_dtype(X)
    blocks = _row_blocks(X, params, dtype, block_size)
    exact = dtype == np.float32

    def run(part):
        estep = make_estep(params, dtype, exact)
        for rows in part:
            log_dens, _ = estep.log_prob(X[rows])
            write(estep, rows, log_dens)

    _run_parts(executor, blocks, run)


def _with_missing(X, params, out, fast, from_weighted):
    """Fill ``out``: complete rows by ``fast(X_complete)``, rows with NaN from their observed
    marginals' weighted log-probabilities (n, K) by ``from_weighted``. None without NaN."""
    incomplete = _missing.incomplete_rows(X)
    if incomplete is None:
        return None
    complete = ~incomplete
    if complete.any():
        out[complete] = fast(X[complete])
    out[incomplete] = from_weighted(_missing.weighted_log_prob(X[incomplete], params))
    return out


def _log_sum_exp_rows(weighted):
    top = weighted.max(axis=1, keepdims=True)
    return (top + np.log(np.sum(np.exp(weighted - top), axis=1, keepdims=True)))[:, 0]


def score_samples(X, params: MixtureParameters, *, block_size=None, executor=None):
    """log p(x_n) = log sum_k pi_k N(x_n | mu_k, Sigma_k) for every row, shape (n_samples,).

    A row with NaN gets the density of its observed coordinates (their marginal).
    """
    X = np.asarray(X)
    missing = _with_missing(
        X, params, np.empty(X.shape[0], dtype=_working_dtype(X)),
        lambda Xc: score_samples(Xc, params, block_size=block_size, executor=executor),
        _log_sum_exp_rows,
    )
    if missing is not None:
        return missing
    out = np.empty(X.shape[0], dtype=_working_dtype(X))

    def write(estep, rows, log_dens):
        out[rows] = estep.normalize(log_dens)[1]

    _for_each_block(X, params, block_size, executor, write)
    return out


def predict_proba(X, params: MixtureParameters, *, block_size=None, executor=None):
    """Responsibilities gamma_nk, shape (n_samples, n_components); rows sum to 1.

    A row with NaN gets the posterior given its observed coordinates.
    """
    X = np.asarray(X)
    missing = _with_missing(
        X, params, np.empty((X.shape[0], params.n_components), dtype=_working_dtype(X)),
        lambda Xc: predict_proba(Xc, params, block_size=block_size, executor=executor),
        lambda weighted: np.exp(weighted - _log_sum_exp_rows(weighted)[:, None]),
    )
    if missing is not None:
        return missing
    out = np.empty((X.shape[0], params.n_components), dtype=_working_dtype(X))

    def write(estep, rows, log_dens):
        out[rows] = estep.normalize(log_dens)[0].T

    _for_each_block(X, params, block_size, executor, write)
    return out


def predict(X, params: MixtureParameters, *, block_size=None, executor=None):
    """Most probable component of every row, shape (n_samples,) (NaN: given the observed)."""
    X = np.asarray(X)
    missing = _with_missing(
        X, params, np.empty(X.shape[0], dtype=np.intp),
        lambda Xc: predict(Xc, params, block_size=block_size, executor=executor),
        lambda weighted: weighted.argmax(axis=1),
    )
    if missing is not None:
        return missing
    out = np.empty(X.shape[0], dtype=np.intp)

    def write(estep, rows, log_dens):
        out[rows] = log_dens.argmax(axis=0)

    _for_each_block(X, params, block_size, executor, write)
    return out
