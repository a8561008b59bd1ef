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

The moments are centred: about the components' current means for the ``full`` and
``tied`` families (free, from the whitened residuals the E-step computes anyway), and about
the mixture mean ``sum_k pi_k mu_k`` for ``diag`` and ``spherical``. The M-step then uses
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

from dataclasses import dataclass

import numpy as np

from ._covariance import (
    covariances_from_precisions,
    log_det_cholesky,
    precision_cholesky,
    precision_cholesky_from_precisions,
)

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
]

_LOG_2PI = np.log(2.0 * np.pi)


# --------------------------------------------------------------------------------------
# Parameters and statistics
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MixtureParameters:
    """Parameters of a Gaussian mixture: weights pi_k, means mu_k, covariances Sigma_k.

    Attributes
    ----------
    covariance_type : {"full", "tied", "diag", "spherical"}
    weights : ndarray of shape (n_components,)
    means : ndarray of shape (n_components, n_features)
    covariances : ndarray
        (K, D, D) full, (D, D) tied, (K, D) diag, (K,) spherical.
    precisions_cholesky : ndarray
        Same shapes; ``precision = L @ L.T`` (full, tied) or ``L**2``.
    """

    covariance_type: str
    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    precisions_cholesky: np.ndarray

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
        prec_chol = precision_cholesky(covariances, covariance_type, reg_covar)
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
        prec_chol = precision_cholesky_from_precisions(precisions, covariance_type)
        covariances = covariances_from_precisions(prec_chol, covariance_type)
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
        (K, D, D) full, (D, D) tied, (K, D) diag, (K,) spherical.
    log_likelihood : float
        ``sum_n w_n log p(x_n)`` under the parameters the E-step used.
    weight_sum : float
        ``sum_n w_n`` (the number of rows when unweighted).
    """

    covariance_type: str
    shift: np.ndarray
    nk: np.ndarray
    s1: np.ndarray
    s2: np.ndarray
    log_likelihood: float
    weight_sum: float

    def __add__(self, other: SufficientStatistics) -> SufficientStatistics:
        if not isinstance(other, SufficientStatistics):
            return NotImplemented
        if other.covariance_type != self.covariance_type or not np.array_equal(
            other.shift, self.shift
        ):
            raise ValueError(
                "Cannot add statistics computed with different parameters or covariance "
                "types: every block of one EM iteration must use the same parameters."
            )
        return SufficientStatistics(
            self.covariance_type,
            self.shift,
            self.nk + other.nk,
            self.s1 + other.s1,
            self.s2 + other.s2,
            self.log_likelihood + other.log_likelihood,
            self.weight_sum + other.weight_sum,
        )

    @property
    def mean_log_likelihood(self) -> float:
        """Weighted mean log-likelihood per sample: scikit-learn's ``lower_bound_``."""
        return self.log_likelihood / self.weight_sum


# --------------------------------------------------------------------------------------
# The E-step, family by family
# --------------------------------------------------------------------------------------
class _Prepared:
    """Per-iteration constants of the E-step, in the data's dtype."""

    def __init__(self, covariance_type, dtype):
        self.covariance_type = covariance_type
        self.dtype = np.dtype(dtype)
        self.offset = self.shift = self.log_const = None
        self.a = self.b = self.c = self.inv_chol = None


def _prepare(params: MixtureParameters, dtype) -> _Prepared:
    """Constants of the log-density of every component, centred on the mixture mean.

    log N(x | mu_k, Sigma_k) = -D/2 log(2 pi) + log det L_k - 1/2 ||(x - mu_k) L_k||^2
    (MATH.md section 2, with Sigma_k^-1 = L_k L_k^T, so |Sigma_k|^-1/2 = det L_k).
    """
    t = params.covariance_type
    n_features = params.n_features
    weights = np.asarray(params.weights, dtype=np.float64)
    means = np.asarray(params.means, dtype=np.float64)
    prec_chol = np.asarray(params.precisions_cholesky, dtype=np.float64)
    p = _Prepared(t, dtype)
    # Centre on the mixture mean, rounded to the working dtype so that the shift used for
    # the data and for the means is the very same number.
    offset = (weights @ means).astype(dtype).astype(np.float64)
    p.offset = offset.astype(dtype)
    means_c = means - offset
    with np.errstate(divide="ignore"):
        log_weights = np.log(weights)
    p.log_const = (
        -0.5 * n_features * _LOG_2PI
        + log_det_cholesky(prec_chol, t, n_features)
        + log_weights
    ).astype(dtype)
    if t == "full":
        # One product X_c @ [L_1 ... L_K] gives every whitened residual at once.
        p.a = np.ascontiguousarray(prec_chol.transpose(1, 0, 2).reshape(n_features, -1))
        p.b = np.einsum("kd,kde->ke", means_c, prec_chol)
        p.inv_chol = np.linalg.inv(prec_chol)
        p.shift = means
    elif t == "tied":
        p.a = prec_chol
        p.b = means_c @ prec_chol
        p.inv_chol = np.linalg.inv(prec_chol)
        p.shift = means
    elif t == "diag":
        precisions = prec_chol**2
        p.a = precisions.T  # (D, K)
        p.b = (means_c * precisions).T
        p.c = np.sum(means_c**2 * precisions, axis=1)
        p.shift = np.broadcast_to(offset, means.shape)
    else:
        precisions = prec_chol**2
        p.a = precisions  # (K,)
        p.b = (means_c * precisions[:, None]).T
        p.c = precisions * np.sum(means_c**2, axis=1)
        p.shift = np.broadcast_to(offset, means.shape)
    for name in ("a", "b", "c"):
        value = getattr(p, name)
        if value is not None:
            setattr(p, name, np.ascontiguousarray(value, dtype=dtype))
    return p


def _weighted_log_prob(Xb: np.ndarray, p: _Prepared):
    """log pi_k + log N(x_n | mu_k, Sigma_k) for a block, plus what the moments reuse.

    Returns (weighted_log_prob (B, K), extra) where extra is the whitened residuals
    (B, K, D) for full/tied and the centred block and its squares for diag/spherical.
    """
    Xc = Xb - p.offset
    n = Xc.shape[0]
    t = p.covariance_type
    if t == "full":
        n_components = p.b.shape[0]
        Y = (Xc @ p.a).reshape(n, n_components, -1)
        Y -= p.b
        maha = np.einsum("nkd,nkd->nk", Y, Y)
        extra = Y
    elif t == "tied":
        Y = (Xc @ p.a)[:, None, :] - p.b
        maha = np.einsum("nkd,nkd->nk", Y, Y)
        extra = Y
    elif t == "diag":
        # ||(x - mu) * l||^2 expanded as x^2.P - 2 x.(mu P) + mu^2.P on centred data.
        X2 = Xc * Xc
        maha = X2 @ p.a
        maha -= 2.0 * (Xc @ p.b)
        maha += p.c
        extra = (Xc, X2)
    else:
        X2 = np.einsum("nd,nd->n", Xc, Xc)
        maha = np.outer(X2, p.a)
        maha -= 2.0 * (Xc @ p.b)
        maha += p.c
        extra = (Xc, X2)
    np.maximum(maha, 0.0, out=maha)  # a squared distance; clip rounding below zero
    maha *= -0.5
    maha += p.log_const
    return maha, extra


def _normalize(log_prob: np.ndarray):
    """In place: log_prob (B, K) becomes the responsibilities; returns log p(x) (B,).

    log p(x_n) = log sum_k exp(log pi_k + log N_k) computed as m + log sum exp(. - m)
    with m the row maximum (no overflow, no underflow of the largest term); the
    responsibilities gamma_nk = exp(log pi_k + log N_k - log p(x_n)) (MATH.md, E-step).
    """
    row_max = log_prob.max(axis=1, keepdims=True)
    row_max[~np.isfinite(row_max)] = 0.0
    log_prob -= row_max
    np.exp(log_prob, out=log_prob)
    total = log_prob.sum(axis=1, keepdims=True)
    log_prob /= total
    return np.log(total[:, 0]) + row_max[:, 0]


def _block_moments(resp, extra, p: _Prepared):
    """Weighted moments of one block about ``p.shift`` (resp already holds w_n r_nk)."""
    t = p.covariance_type
    if t in ("full", "tied"):
        Y = extra
        Yr = Y * resp[:, :, None]
        sy = Yr.sum(axis=0).astype(np.float64)
        if t == "full":
            # sum_n r_nk y_nk y_nk^T for every k: one batched product, K (D,B)@(B,D).
            W = np.matmul(Yr.transpose(1, 2, 0), Y.transpose(1, 0, 2)).astype(np.float64)
            # Back from whitened to data coordinates: x - mu_k = y L_k^-1.
            s1 = np.einsum("kd,kde->ke", sy, p.inv_chol)
            s2 = np.swapaxes(p.inv_chol, 1, 2) @ W @ p.inv_chol
        else:
            n_features = Y.shape[2]
            W = (Yr.reshape(-1, n_features).T @ Y.reshape(-1, n_features)).astype(np.float64)
            s1 = sy @ p.inv_chol
            s2 = p.inv_chol.T @ W @ p.inv_chol
        return s1, s2
    Xc, X2 = extra
    s1 = (resp.T @ Xc).astype(np.float64)
    s2 = (resp.T @ X2).astype(np.float64)
    return s1, s2


def auto_block_size(n_features: int, n_components: int, itemsize: int = 8) -> int:
    """Rows per block so that the largest per-block temporary stays near 4 MiB.

    The per-row workspace is about K*D (whitened residuals) plus a few K and D wide rows.
    """
    per_row = itemsize * (2 * n_components * n_features + 4 * n_components + 3 * n_features)
    return int(np.clip((4 << 20) // per_row, 256, 65536))


def _blocks(n_samples: int, block_size: int):
    for start in range(0, n_samples, block_size):
        yield slice(start, min(start + block_size, n_samples))


def _empty_statistics(p: _Prepared, n_components, n_features) -> SufficientStatistics:
    s2_shape = {
        "full": (n_components, n_features, n_features),
        "tied": (n_features, n_features),
        "diag": (n_components, n_features),
        "spherical": (n_components,),
    }[p.covariance_type]
    return SufficientStatistics(
        p.covariance_type,
        np.array(p.shift, dtype=np.float64),
        np.zeros(n_components),
        np.zeros((n_components, n_features)),
        np.zeros(s2_shape),
        0.0,
        0.0,
    )


def _accumulate(stats: SufficientStatistics, Xb, wb, p: _Prepared):
    log_prob, extra = _weighted_log_prob(Xb, p)
    log_norm = _normalize(log_prob)
    resp = log_prob
    if wb is None:
        stats.log_likelihood += float(np.sum(log_norm, dtype=np.float64))
        stats.weight_sum += Xb.shape[0]
    else:
        resp *= wb[:, None]
        stats.log_likelihood += float(np.dot(wb.astype(np.float64), log_norm))
        stats.weight_sum += float(np.sum(wb, dtype=np.float64))
    stats.nk += resp.sum(axis=0, dtype=np.float64)
    s1, s2 = _block_moments(resp, extra, p)
    stats.s1 += s1
    stats.s2 += s2


def block_statistics(X, params: MixtureParameters, sample_weight=None, *, block_size=None):
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

    Returns
    -------
    SufficientStatistics
        float64 statistics; add them over blocks and pass the sum to :func:`m_step`.
    """
    X = np.asarray(X)
    dtype = _working_dtype(X)
    p = _prepare(params, dtype)
    n_samples, n_features = X.shape
    n_components = params.n_components
    if block_size is None:
        block_size = auto_block_size(n_features, n_components, dtype.itemsize)
    stats = _empty_statistics(p, n_components, n_features)
    for rows in _blocks(n_samples, block_size):
        wb = None if sample_weight is None else sample_weight[rows]
        _accumulate(stats, X[rows].astype(dtype, copy=False), wb, p)
    return stats


def statistics_from_responsibilities(X, resp, covariance_type, *, shift, sample_weight=None):
    """Sufficient statistics of given responsibilities (used for initialisation).

    Parameters
    ----------
    X : ndarray of shape (n_rows, n_features)
    resp : ndarray of shape (n_rows, n_components)
    covariance_type : str
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
    if covariance_type == "full":
        s2 = np.einsum("nk,ni,nj->kij", resp, Xc, Xc)
    elif covariance_type == "tied":
        s2 = (Xc * resp.sum(axis=1)[:, None]).T @ Xc
    elif covariance_type == "diag":
        s2 = resp.T @ (Xc * Xc)
    else:
        s2 = resp.T @ np.einsum("nd,nd->n", Xc, Xc)
    return SufficientStatistics(
        covariance_type,
        np.broadcast_to(shift, (n_components, X.shape[1])).copy(),
        resp.sum(axis=0),
        resp.T @ Xc,
        s2,
        0.0,
        weight_sum,
    )


# --------------------------------------------------------------------------------------
# The M-step
# --------------------------------------------------------------------------------------
def m_step(stats: SufficientStatistics, *, reg_covar: float = 1e-6, dtype=np.float64):
    """New parameters from summed statistics (MATH.md, M-step).

    * N_k = sum_n gamma_nk                       (``nk``, plus 10 eps against empty ones)
    * mu_k = (1 / N_k) sum_n gamma_nk x_n        = c_k + s1_k / N_k
    * Sigma_k = (1 / N_k) sum_n gamma_nk (x_n - mu_k)(x_n - mu_k)^T
              = s2_k / N_k - d_k d_k^T with d_k = s1_k / N_k, plus ``reg_covar`` on the
              diagonal (tied: pooled over k and divided by sum_k N_k; diag: the diagonal;
              spherical: the mean of the diagonal)
    * pi_k = N_k / N

    Computed in float64, returned cast to ``dtype``. Raises ValueError naming the
    component whose covariance is not positive definite even after ``reg_covar``.
    """
    t = stats.covariance_type
    n_features = stats.shift.shape[1]
    nk = stats.nk + 10 * np.finfo(dtype).eps
    d = stats.s1 / nk[:, None]
    means = stats.shift + d
    if t == "full":
        cov = stats.s2 / nk[:, None, None] - d[:, :, None] * d[:, None, :]
        cov = 0.5 * (cov + np.swapaxes(cov, 1, 2))
        cov[:, np.arange(n_features), np.arange(n_features)] += reg_covar
    elif t == "tied":
        cov = (stats.s2 - np.einsum("k,ki,kj->ij", nk, d, d)) / nk.sum()
        cov = 0.5 * (cov + cov.T)
        cov.flat[:: n_features + 1] += reg_covar
    elif t == "diag":
        cov = stats.s2 / nk[:, None] - d * d + reg_covar
    else:
        cov = stats.s2 / (nk * n_features) - np.mean(d * d, axis=1) + reg_covar
    weights = nk / nk.sum()
    params = MixtureParameters.from_covariances(t, weights, means, cov, reg_covar)
    return params.astype(dtype)


# --------------------------------------------------------------------------------------
# Prediction, block by block
# --------------------------------------------------------------------------------------
def _working_dtype(X):
    return X.dtype if X.dtype in (np.float32, np.float64) else np.dtype(np.float64)


def _posterior_blocks(X, params, block_size):
    dtype = _working_dtype(X)
    p = _prepare(params, dtype)
    if block_size is None:
        block_size = auto_block_size(params.n_features, params.n_components, dtype.itemsize)
    for rows in _blocks(X.shape[0], block_size):
        log_prob, _ = _weighted_log_prob(X[rows].astype(dtype, copy=False), p)
        yield rows, log_prob


def score_samples(X, params: MixtureParameters, *, block_size=None) -> np.ndarray:
    """log p(x_n) = log sum_k pi_k N(x_n | mu_k, Sigma_k) for every row, shape (n_samples,)."""
    X = np.asarray(X)
    out = np.empty(X.shape[0], dtype=_working_dtype(X))
    for rows, log_prob in _posterior_blocks(X, params, block_size):
        out[rows] = _normalize(log_prob)
    return out


def predict_proba(X, params: MixtureParameters, *, block_size=None) -> np.ndarray:
    """Responsibilities gamma_nk, shape (n_samples, n_components); rows sum to 1."""
    X = np.asarray(X)
    out = np.empty((X.shape[0], params.n_components), dtype=_working_dtype(X))
    for rows, log_prob in _posterior_blocks(X, params, block_size):
        _normalize(log_prob)
        out[rows] = log_prob
    return out


def predict(X, params: MixtureParameters, *, block_size=None) -> np.ndarray:
    """Most probable component of every row, shape (n_samples,)."""
    X = np.asarray(X)
    out = np.empty(X.shape[0], dtype=np.intp)
    for rows, log_prob in _posterior_blocks(X, params, block_size):
        out[rows] = log_prob.argmax(axis=1)
    return out
