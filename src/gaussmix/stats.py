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
``_EStep``), else about the components' current means (free, from the whitened residuals
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

from . import families
from ._covariance import log_det_cholesky

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

_LOG_2PI = np.log(2.0 * np.pi)


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
# The E-step, family by family
# --------------------------------------------------------------------------------------
# The additive accumulators of each E-step mode (see _EStep).
_ACCUMULATORS = {
    "stacked": ("M", "nk"),
    "centred": ("M", "nk"),
    "pooled": ("sy0", "G", "nk"),
    "quadratic": ("G",),
}

# Largest whitened distance |L_k^T (mu_k - c)| of a mean from the centre c for which the
# quadratic mode is used, per working dtype: its rounding grows like eps * distance^2.
_QUADRATIC_REACH = {np.dtype(np.float64): 1e3, np.dtype(np.float32): 40.0}
# Largest cancellation factor max_{k,i} E_k[(x_i - c_i)^2] / Var_k[x_i] accepted from a
# quadratic-mode E-step (relative error of the variances ~ eps * factor). Within the
# reach the factor is at most 1 + reach^2; a larger one means the new means or
# variances moved far (a poor start, a collapsing component).
_QUADRATIC_CANCELLATION = {np.dtype(np.float64): 1e8, np.dtype(np.float32): 300.0}
# Rows per piece of the quadratic mode's products when there are many features: small
# enough for OpenBLAS's small-matrix kernels (no packing) at D = 32, K = 16. Measured on
# this project's machine (full-32d, one core): 96 rows 100 ms per iteration, 128 rows
# 140 ms, unpieced 118 ms.
_PIECE = 96
# The products run in pieces from this many features on (F = 153 at D = 16).
_PIECES_FROM_FEATURES = 128


def _centre(weights, means, dtype):
    """The mixture mean sum_k pi_k mu_k rounded to ``dtype``, as float64.

    The very same number is subtracted from the data and from the means.
    """
    return (weights @ means).astype(dtype).astype(np.float64)


def _pieces(a, piece):
    """View of a (rows, n) array, n a multiple of ``piece``, as (n / piece, rows, piece)."""
    return a.reshape(a.shape[0], -1, piece).transpose(1, 0, 2)


# Rows summed by one float32 product of the quadratic mode's M-step.
_FLOAT32_SUM = 2048


#: The E-step of each precision_form (until the E-step itself asks the family).
_ESTEP_KIND = {"full": "full", "shared_full": "tied", "diagonal": "diag", "scalar": "spherical"}


class _EStep:
    """The E-step under fixed parameters, applied block after block.

    Holds the per-iteration constants of the log-densities, reused workspace buffers
    (fresh multi-megabyte temporaries cost page faults on every block) and float64
    accumulators of the statistics.

    Layout: component-major. Log-probabilities and responsibilities are (K, n), so every
    heavy step is a matrix product on contiguous operands and every reduction runs over
    contiguous rows. Everything is centred on c, the mixture mean sum_k pi_k mu_k rounded
    to the working dtype (the shift applied to the data and to the means is the very same
    number).

    One of four modes computes the log-densities and the moments:

    ``quadratic`` (diag and spherical always; full while D + 2 <= 4 K and every mean
    lies within 1000 (float64) or 40 (float32) of its standard deviations of c)
        With u = x - c, m_k = mu_k - c and the precision P_k = L_k L_k^T,
        log pi_k + log N(x | mu_k, Sigma_k) = a_k + b_k.u - 1/2 u^T P_k u, with
        b_k = P_k m_k and a_k = log_const_k - 1/2 m_k.b_k. The quadratic form is linear in
        the features q(u) = (1, u, u_i u_j for i <= j) (diag: u_i^2; spherical: |u|^2),
        so one product of a (K, F) coefficient matrix with the (F, n) features gives every
        log-density, and one product of the responsibilities with the same features gives
        every moment sum_n r_nk q(u_n) = (N_k, s1_k, s2_k) about c. F = 1 + D + D(D+1)/2
        for full: about half the arithmetic of whitening (x - mu_k) per component and
        scattering it again, since q holds each product u_i u_j once. Rounding grows like
        eps * (whitened distance from c)^2, hence the reach limits; the statistics report
        their cancellation factor (see :meth:`accurate`) and a block whose moments would
        lose too much is redone in an exact mode.
    ``stacked`` (full otherwise: float64, and float32 while the means lie within 100 sd of c)
        Whitened residuals y_k = [L_1^T; ...; L_K^T] (x - c) - L_k^T (mu_k - c): one product
        for all components (rounding ~ eps |L_k^T (x - c)|).
    ``centred`` (tied float32, and full float32 with a mean far from the others)
        y_k = L_k^T (x - mu_k), each mean subtracted first, so a cluster far from the
        others keeps its precision (x and mu_k are close: their difference is exact).

    Both whitening modes carry a row of ones under the residuals, z_nk = (y_nk, 1),
    produced by the same product. One product per component, M_k = sum_n r_nk z z^T,
    then holds W_k = sum_n r_nk y y^T, sy_k = sum_n r_nk y and N_k: moments about the
    current means, mapped back to data coordinates once per iteration.
    ``pooled`` (tied, float64)
        One shared whitening y0 = L^T (x - c), m_k = L^T (mu_k - c):
        ||y0 - m_k||^2 = |y0|^2 - 2 m_k.y0 + |m_k|^2, and the moments follow from
        G = sum_n (sum_k r_nk) y0 y0^T and sy0_k = sum_n r_nk y0 (see ``_whitened_moments``): one
        D x D product per block instead of K.
    """

    def __init__(self, params: MixtureParameters, dtype, exact: bool = False):
        # The E-step only depends on how the precisions are stored: a family with
        # precision_form "full" (VVV, VEE, ...) runs the full family's E-step.
        t = _ESTEP_KIND[params.family.precision_form]
        self.family_name = params.covariance_type
        n_components, n_features = params.means.shape
        weights = np.asarray(params.weights, dtype=np.float64)
        means = np.asarray(params.means, dtype=np.float64)
        prec_chol = np.asarray(params.precisions_cholesky, dtype=np.float64)
        work = np.dtype(dtype)
        # log pi_k + log N(x | mu_k, Sigma_k) = log_const_k - 1/2 ||y_k||^2 with
        # log_const_k = log pi_k - D/2 log(2 pi) + log det L_k   (MATH.md section 2:
        # Sigma^-1 = L L^T, so |Sigma|^-1/2 = det L).
        with np.errstate(divide="ignore"):
            log_weights = np.log(weights)
        log_const = -0.5 * n_features * _LOG_2PI + log_det_cholesky(prec_chol, t, n_features)
        log_const = log_const + log_weights
        self.mode, work = self._choose_mode(t, work, weights, means, prec_chol, exact)
        self.covariance_type, self.dtype = t, work
        self.n_components, self.n_features = n_components, n_features
        offset = _centre(weights, means, work)
        self.offset = offset.astype(work)
        means_c = means - offset
        self.log_likelihood = 0.0
        self.weight_sum = 0.0
        self._buffers = {}
        if self.mode == "quadratic":
            self._setup_quadratic(means_c, prec_chol, log_const)
            self.shift = np.broadcast_to(offset, means.shape)
            # Per-feature variances of the components (spherical: their sum over the
            # features), the yardstick of :meth:`accurate`.
            cov = np.asarray(params.covariances, dtype=np.float64)
            if t == "full":
                cov = np.diagonal(cov, axis1=1, axis2=2)
            self._variances = n_features * cov if t == "spherical" else cov
            return
        self.nk = np.zeros(n_components)
        self.log_const = log_const.astype(work)[:, None]
        # full and tied: whitened moments about the current means, mapped back once.
        chol = prec_chol if t == "full" else prec_chol[None]
        self.inv_chol = np.linalg.inv(chol)  # (K, D, D) or (1, D, D)
        self.shift = means
        if self.mode == "pooled":
            self.chol_t = chol[0].T
            self.m = means_c @ prec_chol  # m_k = L^T (mu_k - c), (K, D)
            self.m_sq = np.sum(self.m**2, axis=1)[:, None]
            self.sy0 = np.zeros((n_components, n_features))
            self.G = np.zeros((n_features, n_features))
            return
        # Augmented whitening A_k = [[L_k^T, -L_k^T (mu_k - c)], [0, 1]]: A_k (x - c, 1)
        # = (y_k, 1). In centred mode the mean is subtracted beforehand (no offset column).
        n_chol = chol.shape[0]
        aug = np.zeros((n_chol, n_features + 1, n_features + 1))
        aug[:, :n_features, :n_features] = np.swapaxes(chol, 1, 2)
        aug[:, n_features, n_features] = 1.0
        if self.mode == "stacked":
            aug[:, :n_features, n_features] = -np.einsum("kd,kde->ke", means_c, chol)
            self.chol_t = np.ascontiguousarray(aug.reshape(-1, n_features + 1), dtype=work)
        else:
            self.chol_t = np.ascontiguousarray(aug, dtype=work)
            self.means = means.astype(work)[:, :, None]
        self.M = np.zeros((n_components, n_features + 1, n_features + 1))

    @staticmethod
    def _choose_mode(t, work, weights, means, prec_chol, exact):
        """(mode, working dtype) for these parameters; see the class docstring."""
        K, D = means.shape

        if t == "tied":
            return ("pooled" if work == np.float64 else "centred"), work
        # Largest whitened distance |L_k^T (mu_k - c)| of a mean from the centre.
        m = means - _centre(weights, means, work)
        if t == "full":
            y = np.einsum("kd,kde->ke", m, prec_chol)
        elif t == "diag":
            y = m * prec_chol
        else:
            y = m * prec_chol[:, None]
        reach = float(np.sqrt(np.max(np.sum(y**2, axis=1))))
        if t in ("diag", "spherical"):
            # No exact alternative is needed in float64 (the cancellation is
            # eps * distance^2, harmless there); float32 only within its reach.
            if work == np.float32 and (exact or reach > _QUADRATIC_REACH[work]):
                work = np.dtype(np.float64)
            return "quadratic", work
        if not exact and D + 2 <= 4 * K and reach <= _QUADRATIC_REACH[work]:
            return "quadratic", work
        if work == np.float64:
            return "stacked", work
        # The stacked product rounds y_k to ~eps |L_k^T (x - c)|, which for the points of
        # component k is ~eps |L_k^T (mu_k - c)|: safe in float32 while every mean lies
        # within 100 of its standard deviations of the centre.
        return ("stacked" if reach < 100.0 else "centred"), work

    def _setup_quadratic(self, means_c, prec_chol, log_const):
        """Coefficients (K, F) of the features q(u) = (1, u, quadratic terms of u)."""
        t, D = self.covariance_type, self.n_features
        if t == "full":
            prec = prec_chol @ np.swapaxes(prec_chol, 1, 2)
            rows, cols = _feature_pairs(D)
            self._pairs = (rows, cols)
            # u^T P u = sum_i P_ii u_i^2 + 2 sum_{i<j} P_ij u_i u_j
            quad = -0.5 * prec[:, rows, cols] * np.where(rows == cols, 1.0, 2.0)
            lin = np.einsum("kde,ke->kd", prec, means_c)
        elif t == "diag":
            prec = prec_chol**2
            quad, lin = -0.5 * prec, prec * means_c
        else:
            prec = prec_chol**2
            quad, lin = -0.5 * prec[:, None], prec[:, None] * means_c
        const = log_const - 0.5 * np.sum(lin * means_c, axis=1)
        # Every log-density is at most max_k log_const_k (the quadratic form is >= 0):
        # subtracting it makes exp() of every term <= 1, so the responsibilities need no
        # per-row maximum; rows where every term underflows are redone (see normalize).
        finite = np.isfinite(log_const)
        self.lp_shift = float(np.max(log_const[finite])) if finite.any() else 0.0
        lowest = -np.finfo(self.dtype).max / 4  # a zero weight: exp() gives exactly 0
        const = np.where(np.isfinite(const), const - self.lp_shift, lowest)
        self.coef = np.ascontiguousarray(np.column_stack([const, lin, quad]), dtype=self.dtype)
        self.G = np.zeros(self.coef.shape[::-1])  # (F, K): sum_n q(u_n) r_nk
        self._in_pieces = self.coef.shape[1] >= _PIECES_FROM_FEATURES
        # Below this total the largest of the K terms may be subnormal (lost
        # precision): redo those rows.
        self._tiny = 1e-200 if self.dtype == np.float64 else 1e-35
        self._per_row_maximum = False

    def _workspace(self, n):
        """Two (K, D + 1, n) buffers; the last row of the data buffer holds ones."""
        buffers = self._buffers.get(n)
        if buffers is None:
            shape = (self.n_components, self.n_features + 1, n)
            buffers = (np.empty(shape, self.dtype), np.empty(shape, self.dtype))
            self._buffers[n] = buffers  # at most two sizes: full blocks and the last one
        return buffers

    def _features(self, n):
        """The (F, n) features of the quadratic mode (first row: ones) and their buffer.

        For the full family with D even the buffer has D / 2 more rows, after the F:
        the products are built D rows at a time (see log_prob), the last D / 2 of them
        repeating pairs already there.
        """
        key = ("q", n)
        if key not in self._buffers:
            F, D = self.coef.shape[1], self.n_features
            rows = 1 + D + (D // 2 + 1) * D if self.covariance_type == "full" else F
            buffer = np.empty((rows, n), self.dtype)
            buffer[0] = 1.0
            self._buffers[key] = (buffer[:F], buffer)
        return self._buffers[key]

    def _kn(self, n):
        """Two reused (K, n) buffers: the log-probabilities and the responsibilities."""
        key = ("kn", n)
        buffers = self._buffers.get(key)
        if buffers is None:
            shape = (self.n_components, n)
            buffers = (np.empty(shape, self.dtype), np.empty(shape, self.dtype))
            self._buffers[key] = buffers
        return buffers

    def log_prob(self, Xb):
        """log pi_k + log N(x_n | mu_k, Sigma_k) of a block, shape (K, n), plus reusables.

        In quadratic mode the values are lowered by the constant ``lp_shift``;
        :meth:`normalize` accounts for it. The result lives in a buffer of this E-step
        that the next block overwrites.
        """
        Xb = np.asarray(Xb)
        n = Xb.shape[0]
        D = self.n_features
        maha = self._kn(n)[0]
        if self.mode == "quadratic":
            Q, buffer = self._features(n)
            u = Q[1 : D + 1]
            np.copyto(u, Xb.T)  # a transposing copy, then a contiguous subtraction:
            u -= self.offset[:, None]  # faster than one subtraction from the strided view
            if self.covariance_type == "full":
                # The products u_i u_(i+o mod D), o = 0 .. D/2 (see _feature_pairs):
                # u times each rotation of u, the rotations being overlapping row ranges
                # of u written twice over; one call for all of them.
                twice = self._buffers.get(("u2", n))
                if twice is None:
                    twice = self._buffers[("u2", n)] = np.empty((2 * D, n), self.dtype)
                twice[:D] = u
                twice[D:] = u
                step = twice.strides[0]
                rotations = np.lib.stride_tricks.as_strided(
                    twice, (D // 2 + 1, D, n), (step, step, twice.strides[1]), writeable=False
                )
                products = buffer[D + 1 :].reshape(D // 2 + 1, D, n)
                np.multiply(u, rotations, out=products)
            elif self.covariance_type == "diag":
                np.multiply(u, u, out=Q[D + 1 :])
            else:
                np.einsum("dn,dn->n", u, u, out=Q[D + 1])
            if self._in_pieces:
                # On pieces of a few dozen rows OpenBLAS takes its small-matrix kernels,
                # which read the features in place instead of packing a copy first.
                # One batched call runs them all (no Python call per piece).
                piece = _PIECE
                whole = n - n % piece
                if whole:
                    np.matmul(
                        self.coef, _pieces(Q[:, :whole], piece), out=_pieces(maha[:, :whole], piece)
                    )
                if whole < n:
                    np.matmul(self.coef, Q[:, whole:], out=maha[:, whole:])
            else:
                np.matmul(self.coef, Q, out=maha)
            return maha, Q
        Xb = Xb.astype(self.dtype, copy=False)
        if self.mode in ("stacked", "centred"):
            Z, T = self._workspace(n)
            if self.mode == "centred":
                np.subtract(np.ascontiguousarray(Xb.T), self.means, out=T[:, :D])
                T[:, D] = 1.0
                np.matmul(self.chol_t, T, out=Z)
            else:
                data = T[0]  # (D + 1, n): the centred block, transposed, over a row of ones
                np.subtract(Xb.T, self.offset[:, None], out=data[:D])
                data[D] = 1.0
                np.matmul(self.chol_t, data, out=Z.reshape(-1, n))
            # ||y||^2 = ||(y, 1)||^2 - 1, in one read of Z.
            np.einsum("kdn,kdn->kn", Z, Z, out=maha)
            maha -= 1.0
            extra = Z
        else:  # pooled
            Y0 = np.dot(self.chol_t, (Xb - self.offset).T)  # (D, n)
            np.matmul(self.m, Y0, out=maha)
            maha *= -2.0
            maha += np.einsum("dn,dn->n", Y0, Y0)
            maha += self.m_sq
            extra = Y0
        np.maximum(maha, 0.0, out=maha)  # a squared distance: clip rounding below 0
        maha *= -0.5
        maha += self.log_const
        return maha, extra

    def normalize(self, log_prob):
        """(responsibilities (K, n), log p(x_n) (n,)) from :meth:`log_prob`'s output.

        Both live in buffers of this E-step (the responsibilities may overwrite
        ``log_prob``), valid until the next block.
        """
        if self.mode != "quadratic":
            return log_prob, _normalize(log_prob)
        if self._per_row_maximum:
            log_norm = _normalize(log_prob)
            log_norm += self.lp_shift
            return log_prob, log_norm
        n = log_prob.shape[1]
        resp = self._kn(n)[1]
        key = ("n", n)
        if key not in self._buffers:
            # Row-sized buffers reused block after block: a fresh array of this size is
            # a new memory mapping, and its page faults serialise the threads.
            self._buffers[key] = (np.empty(n, self.dtype), np.empty(n, self.dtype),
                                  np.empty(n, bool))
        total, log_norm, low = self._buffers[key]
        # exp of values <= 0 (up to rounding): no overflow, no per-row maximum needed.
        _exp_clipped(log_prob, out=resp)
        np.sum(resp, axis=0, out=total)
        np.less(total, self._tiny, out=low)
        low = np.flatnonzero(low) if low.any() else None
        if low is not None:
            # Rows far from every component: every term underflowed. Redo these with
            # the per-row maximum.
            part = log_prob[:, low]
            log_norm_low = _normalize(part)
            # Components of very different volumes in many dimensions can put many
            # rows here; past 5% the per-row maximum everywhere is the faster way.
            self._per_row_maximum = low.size > 0.05 * n
            resp[:, low] = part
            total[low] = 1.0
        np.log(total, out=log_norm)
        np.reciprocal(total, out=total)
        resp *= total
        if low is not None:
            log_norm[low] = log_norm_low
        log_norm += self.lp_shift
        return resp, log_norm

    def accumulate(self, Xb, wb=None):
        """Add the statistics of a block (rows Xb, optional weights wb)."""
        log_prob, extra = self.log_prob(Xb)
        resp, log_norm = self.normalize(log_prob)
        if wb is None:
            self.log_likelihood += float(np.sum(log_norm, dtype=np.float64))
            self.weight_sum += Xb.shape[0]
        else:
            resp *= wb.astype(resp.dtype, copy=False)
            self.log_likelihood += float(np.dot(wb.astype(np.float64), log_norm))
            self.weight_sum += float(np.sum(wb, dtype=np.float64))
        if self.mode == "quadratic":
            # sum_n r_nk q(u_n) for every k: N_k, s1_k and s2_k in one product, as
            # (F, n) @ (n, K): the orientation BLAS runs fastest with K small.
            if self._in_pieces:
                # Small-matrix kernels again (see log_prob), on pieces of the features
                # and of the transposed responsibilities, then one float64 sum over the
                # pieces (so float32 sums run over one piece only).
                n = resp.shape[1]
                piece = _PIECE
                whole = n - n % piece
                key = ("rt", n)
                if key not in self._buffers:
                    self._buffers[key] = (
                        np.empty((n, self.n_components), self.dtype),
                        np.empty((whole // piece, *self.G.shape), self.dtype),
                    )
                resp_t, products = self._buffers[key]
                np.copyto(resp_t, resp.T)
                if whole:
                    pieces_t = resp_t[:whole].reshape(-1, piece, self.n_components)
                    np.matmul(_pieces(extra[:, :whole], piece), pieces_t, out=products)
                    self.G += products.sum(axis=0, dtype=np.float64)
                if whole < n:
                    self.G += np.matmul(extra[:, whole:], resp_t[whole:])
                return
            if self.dtype == np.float64:
                # np.dot hands the transposed operand to BLAS as is; matmul copies it
                # first, a fresh array per block whose page faults serialise the threads.
                self.G += np.dot(extra, resp.T)
                return
            # float32 products sum at most _FLOAT32_SUM rows before the float64
            # accumulator takes over (rounding of a long float32 sum grows with its
            # length). Here matmul is the faster: np.dot slows down on column slices.
            n = resp.shape[1]
            for start in range(0, n, _FLOAT32_SUM):
                part = slice(start, start + _FLOAT32_SUM)
                self.G += np.matmul(extra[:, part], resp[:, part].T)
            return
        self.nk += resp.sum(axis=1, dtype=np.float64)
        if self.mode in ("stacked", "centred"):
            Z = extra
            _, T = self._workspace(Z.shape[2])
            np.multiply(Z, resp[:, None, :], out=T)
            # sum_n r_nk z_nk z_nk^T for every k: K products (D + 1, n) @ (n, D + 1).
            self.M += np.matmul(T, np.swapaxes(Z, 1, 2))
        else:  # pooled
            Y0 = extra
            self.sy0 += np.dot(resp, Y0.T)
            self.G += np.dot(Y0 * resp.sum(axis=0), Y0.T)

    def merge(self, other: _EStep) -> None:
        """Add another E-step's accumulators (same parameters, other rows) into this one."""
        for name in _ACCUMULATORS[self.mode]:
            getattr(self, name).__iadd__(getattr(other, name))
        self.log_likelihood += other.log_likelihood
        self.weight_sum += other.weight_sum

    def _whitened_moments(self):
        """(sy, W): per-component sums of r y and r y y^T in whitened coordinates.

        In pooled mode, with y_k = y0 - m_k:  sum_n r_nk y_k = sy0_k - N_k m_k  and
        sum_k sum_n r_nk y_k y_k^T = G - sum_k (m_k sy0_k^T + sy0_k m_k^T) + sum_k N_k m_k m_k^T.
        """
        if self.mode == "pooled":
            m = self.m
            sy = self.sy0 - self.nk[:, None] * m
            cross = m.T @ self.sy0
            W = (self.G - cross - cross.T + (m * self.nk[:, None]).T @ m)[None]
            return sy, W
        D = self.n_features
        return self.M[:, :D, D], self.M[:, :D, :D]

    def _quadratic_moments(self):
        """(N_k, s1, s2) about c from the quadratic mode's feature sums."""
        D, G = self.n_features, self.G.T
        nk, s1, quad = G[:, 0].copy(), G[:, 1 : D + 1].copy(), G[:, D + 1 :]
        if self.covariance_type == "full":
            rows, cols = self._pairs
            s2 = np.empty((len(nk), D, D))
            s2[:, rows, cols] = quad
            s2[:, cols, rows] = quad
        elif self.covariance_type == "diag":
            s2 = quad.copy()
        else:
            s2 = quad[:, 0].copy()
        return nk, s1, s2

    def accurate(self) -> bool:
        """Whether the accumulated moments kept the working precision's accuracy.

        Quadratic mode: the moments are about the centre c, so the M-step's variances,
        E[u_i^2] - E[u_i]^2, lose a factor E[u_i^2] / Var[u_i] of relative precision.
        That factor is measured against the variances of the parameters in use (so that
        a block of a few rows, whose own variance may be tiny, is judged like the whole)
        and accepted up to ``_QUADRATIC_CANCELLATION``. float32 whitening modes: a mean
        may move at most 10 of its standard deviations (moments about the old means
        cancel beyond that).
        """
        if self.mode == "quadratic":
            nk, _, s2 = self._quadratic_moments()
            used = nk > 0
            if not used.any():
                return True
            if self.covariance_type == "full":
                s2 = np.diagonal(s2, axis1=1, axis2=2)
            second = s2[used] / (nk[used][:, None] if s2.ndim == 2 else nk[used])
            factor = second / self._variances[used]
            return bool(np.max(factor) <= _QUADRATIC_CANCELLATION[self.dtype])
        if self.dtype == np.float32:
            return self.max_whitened_shift() <= 10.0
        return True

    def max_whitened_shift(self) -> float:
        """Largest move of a mean, in standard deviations of its component (full, tied)."""
        sy, _ = self._whitened_moments()
        nk = np.where(self.nk > 0, self.nk, 1.0)
        return float(np.sqrt(np.max(np.sum(sy**2, axis=1) / nk**2)))

    def statistics(self) -> SufficientStatistics:
        """The accumulated statistics, moments in data coordinates."""
        if self.mode == "quadratic":
            nk, s1, s2 = self._quadratic_moments()
        else:
            nk = self.nk.copy()
            sy, W = self._whitened_moments()
            # Back from whitened coordinates: x - mu_k = L_k^-T y_k.
            D = self.n_features
            inv = np.broadcast_to(self.inv_chol, (W.shape[0], D, D))
            s1 = np.einsum("kd,kde->ke", sy, np.broadcast_to(self.inv_chol, (len(sy), D, D)))
            s2 = np.swapaxes(inv, 1, 2) @ W @ inv
            if self.covariance_type == "tied":
                s2 = s2.sum(axis=0)
        return SufficientStatistics(
            self.family_name,
            np.array(self.shift, dtype=np.float64),
            nk,
            s1,
            s2,
            self.log_likelihood,
            self.weight_sum,
        )


def _feature_pairs(n_features):
    """(i, j) of the quadratic features u_i u_j of the full family, in the order built.

    Every unordered pair once: for o = 0 .. D/2, the pairs (i, i + o mod D), i < D (only
    i < D/2 for o = D/2 when D is even, the other half being the same pairs). Rotations
    build them in D/2 + 1 vectorised products instead of D row by row.
    """
    D = n_features
    rows, cols = [], []
    for o in range(D // 2 + 1):
        m = D if 2 * o < D else D // 2
        i = np.arange(m)
        rows.append(i)
        cols.append((i + o) % D)
    return np.concatenate(rows), np.concatenate(cols)


def _exp_clipped(values, out):
    """exp(values) for values <= 0, with float64 arguments below -700 raised to -700.

    NumPy's float64 exp is 4-6 times slower on arguments that underflow (below about
    -708) than on others. Terms of exp(-700) = 1e-304 next to a total >= 1e-200 (see
    ``normalize``) or >= 1 (after subtracting the row maximum) change nothing at
    float64 precision, so raising them first is free of error and of that slow path.
    float32 exp has no such slow path.
    """
    if values.dtype == np.float64:
        np.maximum(values, -700.0, out=out)
        return np.exp(out, out=out)
    return np.exp(values, out=out)


def _parameters_id(params: MixtureParameters) -> str:
    """A fingerprint of the parameters (to refuse adding statistics of different ones)."""
    digest = hashlib.blake2b(params.covariance_type.encode(), digest_size=12)
    for a in (params.weights, params.means, params.precisions_cholesky):
        digest.update(np.ascontiguousarray(a, dtype=np.float64).tobytes())
    return digest.hexdigest()


def _normalize(log_prob: np.ndarray):
    """In place: log_prob (K, n) becomes the responsibilities; returns log p(x) (n,).

    log p(x_n) = log sum_k exp(log pi_k + log N_k) computed as m + log sum exp(. - m)
    with m the largest term (no overflow, no underflow of the largest term); the
    responsibilities gamma_nk = exp(log pi_k + log N_k - log p(x_n)) (MATH.md, E-step).
    """
    top = log_prob.max(axis=0)
    top[~np.isfinite(top)] = 0.0
    log_prob -= top
    _exp_clipped(log_prob, out=log_prob)
    total = log_prob.sum(axis=0)
    log_prob /= total
    return np.log(total) + top


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
    iteration, 8,192 rows 56 ms, 32,768 rows 71 ms.
    """
    D, K = n_features, n_components
    if covariance_type in ("diag", "spherical"):
        per_row = itemsize * 4 * (K + D)
    elif covariance_type == "full" and D + 2 <= 4 * K:
        per_row = itemsize * (1 + D + D * (D + 1) // 2 + 2 * K)
    else:
        per_row = itemsize * K * (D + 4)
    return int(np.clip((4 << 20) // per_row, 256, 16384))


def _blocks(n_samples: int, block_size: int):
    for start in range(0, n_samples, block_size):
        yield slice(start, min(start + block_size, n_samples))


def block_statistics(
    X, params: MixtureParameters, sample_weight=None, *, block_size=None, executor=None
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

    Returns
    -------
    SufficientStatistics
        float64 statistics; add them over blocks and pass the sum to :func:`m_step`.
    """
    X = np.asarray(X)
    dtype = _working_dtype(X)
    estep = _estep_over(X, params, sample_weight, dtype, block_size, executor)
    if not estep.accurate() and not (
        estep.dtype == np.float64 and params.covariance_type in ("diag", "spherical")
    ):
        # The moments would lose too much precision: a float32 mean moved more than 10
        # of its standard deviations in one step (a poor start), or the moments about
        # the centre cancel (a component narrow for its distance from the others).
        # Redo this rare iteration in float64, in a mode with moments about the means.
        estep = _estep_over(
            X, params, sample_weight, np.dtype(np.float64), block_size, executor, exact=True
        )
    stats = estep.statistics()
    stats.parameters_id = _parameters_id(params)
    return stats


def _row_blocks(X, params, dtype, block_size):
    """The row slices of X, ``block_size`` rows each (sized for the family by default)."""
    if block_size is None:
        block_size = auto_block_size(
            params.n_features, params.n_components, dtype.itemsize, params.covariance_type
        )
    return list(_blocks(X.shape[0], block_size))


def _estep_over(X, params, sample_weight, dtype, block_size, executor=None, exact=False):
    blocks = _row_blocks(X, params, dtype, block_size)

    def run(part):
        estep = _EStep(params, dtype, exact)
        for rows in part:
            wb = None if sample_weight is None else sample_weight[rows]
            estep.accumulate(X[rows].astype(dtype, copy=False), wb)
        return estep

    esteps = _run_parts(executor, blocks, run)
    for other in esteps[1:]:
        esteps[0].merge(other)
    return esteps[0]


def _run_parts(executor, blocks, run):
    """``run(part)`` on round-robin parts of ``blocks``, one per thread of ``executor``."""
    n_workers = getattr(executor, "_max_workers", 1) if executor is not None else 1
    if n_workers < 2 or len(blocks) < 2 * n_workers:
        return [run(blocks)]
    return list(executor.map(run, [blocks[i::n_workers] for i in range(n_workers)]))


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
    stats: SufficientStatistics, *, reg_covar: float = 1e-6, dtype=np.float64, previous=None
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
    """
    guard = 10 * np.finfo(dtype).eps
    nk = stats.nk + guard
    means = stats.shift + stats.s1 / nk[:, None]
    # Scatter about the new mean: s2 - s1 s1^T / N_k, with the exact N_k (the family mixes
    # in the guarded N_k only as the divisor, see CovarianceFamily.m_step_covariances).
    start = None
    if previous is not None and previous.family is stats.family:
        start = np.asarray(previous.covariances, dtype=np.float64)
    cov = stats.family.m_step_covariances(
        stats.nk, stats.s1, stats.s2, reg_covar, guard, previous=start
    )
    weights = nk / nk.sum()
    params = MixtureParameters.from_covariances(
        stats.covariance_type, weights, means, cov, reg_covar
    )
    return params.astype(dtype)


# --------------------------------------------------------------------------------------
# Prediction, block by block
# --------------------------------------------------------------------------------------
def _working_dtype(X):
    return X.dtype if X.dtype in (np.float32, np.float64) else np.dtype(np.float64)


def _for_each_block(X, params, block_size, executor, write):
    """Call ``write(estep, rows, log_prob)`` on every block, spread over ``executor``'s threads.

    Each thread has its own E-step (its own workspace); the blocks write disjoint rows.
    ``estep.normalize(log_prob)`` gives the responsibilities and log p(x).

    float32 results are computed in an exact mode: the quadratic mode's rounding
    (~eps * distance^2, about 1e-5 relative in float32) is fine inside EM, whose next
    iteration corrects it, but a returned density should be as exact as float32 allows.
    """
    X = np.asarray(X)
    dtype = _working_dtype(X)
    blocks = _row_blocks(X, params, dtype, block_size)
    exact = dtype == np.float32

    def run(part):
        estep = _EStep(params, dtype, exact)
        for rows in part:
            log_prob, _ = estep.log_prob(X[rows])
            write(estep, rows, log_prob)

    _run_parts(executor, blocks, run)


def score_samples(X, params: MixtureParameters, *, block_size=None, executor=None):
    """log p(x_n) = log sum_k pi_k N(x_n | mu_k, Sigma_k) for every row, shape (n_samples,)."""
    X = np.asarray(X)
    out = np.empty(X.shape[0], dtype=_working_dtype(X))

    def write(estep, rows, log_prob):
        out[rows] = estep.normalize(log_prob)[1]

    _for_each_block(X, params, block_size, executor, write)
    return out


def predict_proba(X, params: MixtureParameters, *, block_size=None, executor=None):
    """Responsibilities gamma_nk, shape (n_samples, n_components); rows sum to 1."""
    X = np.asarray(X)
    out = np.empty((X.shape[0], params.n_components), dtype=_working_dtype(X))

    def write(estep, rows, log_prob):
        out[rows] = estep.normalize(log_prob)[0].T

    _for_each_block(X, params, block_size, executor, write)
    return out


def predict(X, params: MixtureParameters, *, block_size=None, executor=None):
    """Most probable component of every row, shape (n_samples,)."""
    X = np.asarray(X)
    out = np.empty(X.shape[0], dtype=np.intp)

    def write(estep, rows, log_prob):
        out[rows] = log_prob.argmax(axis=0)

    _for_each_block(X, params, block_size, executor, write)
    return out
