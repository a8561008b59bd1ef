"""The E-step under fixed parameters, block after block: one class per way of computing it.

An E-step object holds the per-iteration constants of the log-densities, reused workspace
buffers (fresh multi-megabyte temporaries cost page faults on every block) and float64
accumulators of the moments. Its life: :func:`make_estep`, then :meth:`~EStep.accumulate`
on every block (or :meth:`~EStep.log_prob` and :meth:`~EStep.normalize` for predictions),
:meth:`~EStep.merge` of the per-thread E-steps, :meth:`~EStep.accurate`, and
:meth:`~EStep.moments`.

Layout: component-major. Log-densities and responsibilities are (K, n), so every heavy step
is a matrix product on contiguous operands and every reduction runs over contiguous rows
(``StackedWhitening``'s whitened residuals are feature-major, (D + 1, K, n): see there).
The centre c is the mixture mean sum_k pi_k mu_k rounded to the working dtype (the shift
applied to the data and to the means is the very same number).

The classes, and when :func:`make_estep` picks them (see each class for its algebra):

=====================  ==================================================================
``QuadraticEStep``     every precision form but the shared one, while the features pay
                       and the means lie within reach of the centre (full: and the cross
                       terms u_i u_j resolve the narrowest direction); moments about c
``StackedWhitening``   full precisions otherwise (float64, or float32 means within 100 sd)
``CentredWhitening``   full float32 with a far mean; shared precision in float32, or in
                       float64 with a mean beyond PooledWhitening's reach
``PooledWhitening``    shared precision in float64
``ResidualEStep``      diagonal and scalar precisions when moments about c would cancel,
                       or with a mean beyond ``_RESIDUAL_REACH`` (a far outlier's component)
``AboutWhitening``     full and shared precisions, a redone iteration: moments about the
                       new means (a mean that jumped onto a far outlier)
=====================  ==================================================================

The whitening and residual classes take their moments about the components' current means,
the two-pass form: no cancellation, whatever the distance of a component from the others.
"""

from __future__ import annotations

import itertools
from typing import NamedTuple

import numpy as np


def family_forms(params) -> tuple[str, str]:
    """``(precision_form, statistic)`` of the parameters' covariance family: the whitening
    ("full", "shared_full", "diagonal", "scalar") and the second moment accumulated
    ("full", "pooled", "diagonal", "trace"). Nothing below looks at the family's name."""
    family = params.family
    return family.precision_form, family.statistic


_LOG_2PI = np.log(2.0 * np.pi)

# Largest whitened distance |L_k^T (mu_k - c)| of a mean from the centre c for which the
# quadratic features are used, per working dtype: their rounding grows like
# eps * distance^2.
_QUADRATIC_REACH = {np.dtype(np.float64): 1e3, np.dtype(np.float32): 40.0}
# Largest whitened distance of a mean from the centre for which diagonal and scalar
# precisions take the quadratic features at all: beyond it their log-densities round by
# eps * reach^2 > 1e-4 (a component of one far outlier, docs/robustness.md).
_RESIDUAL_REACH = 1e6
_STACKED_REACH = 1e10
# Largest eps-free rounding factor lambda_max(P_k) E_k|x - c|^2 of the quadratic features
# of full precisions (_cross_terms_resolved): their log-densities round by about eps
# times it, 6e-3 in float32 at 1e5 and 2e-5 in float64 at 1e11.
_CROSS_TERMS = {np.dtype(np.float64): 1e11, np.dtype(np.float32): 1e5}
# Largest cancellation factor max_{k,i} E_k[(x_i - c_i)^2] / Var_k[x_i] accepted from a
# quadratic E-step (relative error of the variances ~ eps * factor). Within the reach the
# factor is at most 1 + reach^2; a larger one means the new means or variances moved far
# (a poor start, a collapsing component).
_QUADRATIC_CANCELLATION = {np.dtype(np.float64): 1e8, np.dtype(np.float32): 300.0}
# Largest relative rounding accepted from the shared whitening's expanded scatter
# (eps * squared whitened distance of a mean from the centre; see PooledWhitening).
_POOLED_ROUNDING = 1e-11
# A new variance from the quadratic moments must exceed its rounding error, about
# eps * E[(x_i - c_i)^2], this many times over (relative error below 1e-3).
_NEW_VARIANCE_NOISE = 1024.0
# Rows per piece of the quadratic products when there are many features: small enough for
# OpenBLAS's small-matrix kernels (no packing) at D = 32, K = 16. Measured on this
# project's machine (full-32d, one core): 96 rows 100 ms per iteration, 128 rows 140 ms,
# unpieced 118 ms.
_PIECE = 96
# The products run in pieces from this many features on (F = 153 at D = 16).
_PIECES_FROM_FEATURES = 128
# Rows summed by one float32 product of the quadratic moments.
_FLOAT32_SUM = 2048
# Largest move of a mean, in standard deviations of its component, accepted from a float32
# whitening E-step (its moments are about the old means and cancel beyond that).
_FLOAT32_MAX_SHIFT = 10.0


class Moments(NamedTuple):
    """Accumulated moments, float64, about the points ``shift`` (K, D).

    ``nk`` (K,) soft counts; ``s1`` (K, D) first moments; ``s2`` second moments: (K, D, D)
    full, (D, D) pooled, (K, D) diagonal, (K,) trace (see :mod:`gaussmix.stats`).
    """

    shift: np.ndarray
    nk: np.ndarray
    s1: np.ndarray
    s2: np.ndarray


def make_estep(params, dtype, exact: bool = False, about=None) -> EStep:
    """The E-step for ``params`` with blocks of ``dtype``.

    ``exact``: moments about the components' means and log-densities without the quadratic
    features' rounding (redone iterations, float32 predictions). ``about`` (K, D): the
    points the residual E-step (diagonal and scalar precisions, exact) takes its moments
    about, by default the means; the new means of a first pass make it the two-pass form.
    The whitening E-steps take theirs about the means.
    """
    precision_form, statistic = family_forms(params)
    work = np.dtype(dtype)
    if exact and about is not None and precision_form in ("full", "shared_full"):
        return AboutWhitening(params, np.dtype(np.float64), statistic, about)
    if precision_form == "shared_full":
        if exact:  # moments about the means: no cancellation, whatever the distances
            return CentredWhitening(params, np.dtype(np.float64), statistic)
        if work == np.float64 and not _pooled_within_reach(params, work):
            # The expanded scatter and log-densities would cancel (a component on a far
            # outlier): predictions have no redo, so take the means out first.
            return CentredWhitening(params, work, statistic)
        cls = PooledWhitening if work == np.float64 else CentredWhitening
        return cls(params, work, statistic)
    reach = _reach(params, precision_form, work)
    if precision_form in ("diagonal", "scalar"):
        if exact:
            return ResidualEStep(params, np.dtype(np.float64), statistic, about)
        # The quadratic rounding is eps * reach^2: harmless in float64 (a block whose
        # moments cancel anyway is redone, see accurate); float32 only within its reach.
        # Beyond _RESIDUAL_REACH (a component on a far outlier) the log-densities
        # themselves are lost (exp overflows): residuals about the means from the start.
        if reach > _RESIDUAL_REACH:
            return ResidualEStep(params, np.dtype(np.float64), statistic, about)
        if work == np.float32 and reach > _QUADRATIC_REACH[work]:
            work = np.dtype(np.float64)
        return QuadraticEStep(params, work, statistic)
    K, D = params.means.shape
    if (not exact and D + 2 <= 4 * K and reach <= _QUADRATIC_REACH[work]
            and _cross_terms_resolved(params, work)):
        return QuadraticEStep(params, work, statistic)
    # The stacked product rounds y_k to ~eps |L_k^T (x - c)|, which for the points of
    # component k is ~eps |L_k^T (mu_k - c)|: safe in float32 while every mean lies within
    # 100 of its standard deviations of the centre.
    if (work == np.float64 and reach <= _STACKED_REACH) or reach < 100.0:
        return StackedWhitening(params, work, statistic)
    return CentredWhitening(params, work, statistic)


def _pooled_within_reach(params, work) -> bool:
    """Whether PooledWhitening's expansion about the centre keeps float64's accuracy:
    eps * max_k |L^T (mu_k - c)|^2 <= _POOLED_ROUNDING (as its :meth:`accurate`)."""
    weights = np.asarray(params.weights, dtype=np.float64)
    means = np.asarray(params.means, dtype=np.float64)
    m = (means - _centre(weights, means, work)) @ np.asarray(
        params.precisions_cholesky, dtype=np.float64)
    reach_sq = float(np.max(np.sum(m**2, axis=1)))
    return np.finfo(np.float64).eps * reach_sq <= _POOLED_ROUNDING


def _cross_terms_resolved(params, work) -> bool:
    """Whether the quadratic features of full precisions keep the log-densities' accuracy.

    u^T P_k u = sum_ij P_ij u_i u_j (u = x - c) rounds by about eps sum_ij |P_ij u_i u_j|,
    at most eps lambda_max(P_k) |u|^2; for the points of component k that is
    eps lambda_max(P_k) E_k|x - c|^2, E_k|x - c|^2 = tr(Sigma_k) + |mu_k - c|^2. The reach
    of the means bounds the second term, not the first: a component narrow along a
    direction in which it spreads far (one far outlier stretching a covariance along the
    diagonal: variances 3e10 with 1.4 across) makes the terms u_i u_j cancel to 1 part in
    1e10, and float32 log-densities come out as noise (exp() overflows, the parameters
    NaN). Beyond ``_CROSS_TERMS[work]`` the whitening E-steps take over (exact in
    whitened coordinates). The Frobenius norm of the factor bounds lambda_max; the
    eigenvalues only when that bound is over.
    """
    means = np.asarray(params.means, dtype=np.float64)
    spread = np.trace(np.asarray(params.covariances, dtype=np.float64), axis1=1, axis2=2)
    spread = spread + np.sum((means - _centre(params.weights, means, work)) ** 2, axis=1)
    chol = np.asarray(params.precisions_cholesky, dtype=np.float64)
    limit = _CROSS_TERMS[work]
    if not np.max(np.einsum("kij,kij->k", chol, chol) * spread) > limit:
        return True
    with np.errstate(invalid="ignore"):
        largest = np.linalg.eigvalsh(chol @ np.swapaxes(chol, 1, 2))[:, -1]
    return bool(np.max(largest * spread) <= limit)


def _reach(params, precision_form, work) -> float:
    """Largest whitened distance |L_k^T (mu_k - c)| of a mean from the centre."""
    weights = np.asarray(params.weights, dtype=np.float64)
    means = np.asarray(params.means, dtype=np.float64)
    prec_chol = np.asarray(params.precisions_cholesky, dtype=np.float64)
    m = means - _centre(weights, means, work)
    if precision_form == "full":
        y = np.einsum("kd,kde->ke", m, prec_chol)
    elif precision_form == "diagonal":
        y = m * prec_chol
    else:
        y = m * prec_chol[:, None]
    return float(np.sqrt(np.max(np.sum(y**2, axis=1))))


def _centre(weights, means, dtype):
    """The mixture mean sum_k pi_k mu_k rounded to ``dtype``, as float64.

    The very same number is subtracted from the data and from the means.
    """
    return (weights @ means).astype(dtype).astype(np.float64)


def _pieces(a, piece):
    """View of a (rows, n) array, n a multiple of ``piece``, as (n / piece, rows, piece)."""
    return a.reshape(a.shape[0], -1, piece).transpose(1, 0, 2)


class EStep:
    """What every E-step does: log-densities, responsibilities, accumulated moments.

    Subclasses set ``mode`` (a short name), ``accumulators`` (the names of their additive
    float64 arrays, merged across threads) and implement :meth:`log_prob`,
    :meth:`_add_moments` and :meth:`moments`.
    """

    mode = ""
    accumulators: tuple[str, ...] = ()

    def __init__(self, params, dtype, statistic):
        self.statistic = statistic
        self.precision_form = family_forms(params)[0]
        self.dtype = np.dtype(dtype)
        self.n_components, self.n_features = params.means.shape
        self.weights = np.asarray(params.weights, dtype=np.float64)
        self.means = np.asarray(params.means, dtype=np.float64)
        self.prec_chol = np.asarray(params.precisions_cholesky, dtype=np.float64)
        # log pi_k + log N(x | mu_k, Sigma_k) = log_const_k - 1/2 ||y_k||^2 with
        # log_const_k = log pi_k - D/2 log(2 pi) + log det L_k   (MATH.md section 2:
        # Sigma^-1 = L L^T, so |Sigma|^-1/2 = det L).
        with np.errstate(divide="ignore"):
            log_weights = np.log(self.weights)
        D = self.n_features
        log_det = params.family.log_det_cholesky(self.prec_chol, D)
        self.log_const = -0.5 * D * _LOG_2PI + log_det + log_weights  # (K,) float64
        centre = _centre(self.weights, self.means, self.dtype)
        self.centre = centre.astype(self.dtype)  # c, subtracted from the data
        self.means_c = self.means - centre  # mu_k - c, float64
        self.log_likelihood = 0.0
        self.weight_sum = 0.0
        self._buffers = {}
        self._moments = None  # moments() of the accumulators as they are (see _Whitening)

    def _kn(self, n):
        """Two reused (K, n) buffers: the log-densities and the responsibilities."""
        key = ("kn", n)
        buffers = self._buffers.get(key)
        if buffers is None:
            shape = (self.n_components, n)
            buffers = (np.empty(shape, self.dtype), np.empty(shape, self.dtype))
            self._buffers[key] = buffers
        return buffers

    def log_prob(self, Xb):
        """(log_dens, reusable): log pi_k + log N(x_n | mu_k, Sigma_k) (K, n) of a block.

        ``reusable`` is what :meth:`accumulate` needs again for the moments (features,
        whitened residuals). Both live in buffers of this E-step that the next block
        overwrites.
        """
        raise NotImplementedError

    def normalize(self, log_dens):
        """(responsibilities (K, n), log p(x_n) (n,)) from :meth:`log_prob`'s output.

        The responsibilities may overwrite ``log_dens``.
        """
        return log_dens, _normalize(log_dens)

    def accumulate(self, Xb, wb=None):
        """Add the moments of a block (rows Xb, optional weights wb)."""
        self._moments = None
        log_dens, reusable = self.log_prob(Xb)
        resp, log_norm = self.normalize(log_dens)
        if wb is None:
            self.log_likelihood += float(np.sum(log_norm, dtype=np.float64))
            self.weight_sum += Xb.shape[0]
        else:
            resp *= wb.astype(resp.dtype, copy=False)
            self.log_likelihood += float(np.dot(wb.astype(np.float64), log_norm))
            self.weight_sum += float(np.sum(wb, dtype=np.float64))
        self._add_moments(resp, reusable)

    def _add_moments(self, resp, reusable):
        raise NotImplementedError

    def merge(self, other: EStep) -> None:
        """Add another E-step's accumulators (same parameters, other rows) into this one."""
        self._moments = None
        for name in self.accumulators:
            getattr(self, name).__iadd__(getattr(other, name))
        self.log_likelihood += other.log_likelihood
        self.weight_sum += other.weight_sum

    def accurate(self) -> bool:
        """Whether the accumulated moments kept the working precision's accuracy."""
        return True

    def moments(self) -> Moments:
        """The accumulated moments in data coordinates."""
        raise NotImplementedError

    def new_means(self) -> np.ndarray:
        """The means the M-step will take from these moments (old ones where N_k = 0)."""
        shift, nk, s1, _ = self.moments()
        used = nk > 0
        moved = shift + s1 / np.where(used, nk, 1.0)[:, None]
        return np.where(used[:, None], moved, self.means)


# --------------------------------------------------------------------------------------
# Quadratic features: moments about the centre
# --------------------------------------------------------------------------------------
class QuadraticEStep(EStep):
    """Log-densities and moments as products with quadratic features of u = x - c.

    With m_k = mu_k - c and the precision P_k = L_k L_k^T,
    log pi_k + log N(x | mu_k, Sigma_k) = a_k + b_k.u - 1/2 u^T P_k u, with b_k = P_k m_k
    and a_k = log_const_k - 1/2 m_k.b_k. The quadratic form is linear in the features
    q(u) = (1, u, u_i u_j for i <= j) (diagonal: u_i^2; scalar: |u|^2), so one product of
    the (K, F) ``coef`` with the (F, n) features gives every log-density, and one product
    of the responsibilities with the same features gives ``feature_sums``
    sum_n r_nk q(u_n) = (N_k, s1_k, s2_k) about c. F = 1 + D + D(D+1)/2 for full
    precisions: about half the arithmetic of whitening (x - mu_k) per component and
    scattering it again, since q holds each product u_i u_j once. Rounding grows like
    eps * (whitened distance from c)^2, hence the reach limits of :func:`make_estep`; the
    moments report their cancellation factor (:meth:`accurate`) and an iteration whose
    moments would lose too much is redone with moments about the means.

    The log-densities are lowered by the constant ``lp_shift`` (the largest log_const_k),
    which :meth:`normalize` adds back.
    """

    mode = "quadratic"
    accumulators = ("feature_sums",)

    def __init__(self, params, dtype, statistic):
        super().__init__(params, dtype, statistic)
        # Per-feature variances of the components (trace: their sum over the features),
        # the yardstick of accurate().
        cov = np.asarray(params.covariances, dtype=np.float64)
        if statistic == "full":
            cov = np.diagonal(cov, axis1=1, axis2=2)
        self._variances = self.n_features * cov if statistic == "trace" else cov
        self._setup_coefficients()

    def _setup_coefficients(self):
        """Coefficients (K, F) of the features q(u) = (1, u, quadratic terms of u)."""
        means_c, prec_chol, log_const = self.means_c, self.prec_chol, self.log_const
        if self.precision_form == "full":
            prec = prec_chol @ np.swapaxes(prec_chol, 1, 2)
            rows, cols = _feature_pairs(self.n_features)
            self._pairs = (rows, cols)
            # u^T P u = sum_i P_ii u_i^2 + 2 sum_{i<j} P_ij u_i u_j
            quad = -0.5 * prec[:, rows, cols] * np.where(rows == cols, 1.0, 2.0)
            lin = np.einsum("kde,ke->kd", prec, means_c)
        elif self.precision_form == "diagonal":
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
        self.feature_sums = np.zeros(self.coef.shape[::-1])  # (F, K): sum_n q(u_n) r_nk
        self._in_pieces = self.coef.shape[1] >= _PIECES_FROM_FEATURES
        # Below this total the largest of the K terms may be subnormal (lost
        # precision): redo those rows.
        self._tiny = 1e-200 if self.dtype == np.float64 else 1e-35
        self._per_row_maximum = False

    def _features(self, n):
        """The (F, n) features (first row: ones) and their buffer.

        For full precisions with D even the buffer has D / 2 more rows, after the F: the
        products are built D rows at a time (see log_prob), the last D / 2 of them
        repeating pairs already there.
        """
        key = ("q", n)
        if key not in self._buffers:
            F, D = self.coef.shape[1], self.n_features
            rows = 1 + D + (D // 2 + 1) * D if self.precision_form == "full" else F
            buffer = np.empty((rows, n), self.dtype)
            buffer[0] = 1.0
            self._buffers[key] = (buffer[:F], buffer)
        return self._buffers[key]

    def log_prob(self, Xb):
        """(log_dens lowered by ``lp_shift`` (K, n), features (F, n)) of a block."""
        Xb = np.asarray(Xb)
        n = Xb.shape[0]
        D = self.n_features
        log_dens = self._kn(n)[0]
        features, buffer = self._features(n)
        u = features[1 : D + 1]
        np.copyto(u, Xb.T)  # a transposing copy, then a contiguous subtraction:
        u -= self.centre[:, None]  # faster than one subtraction from the strided view
        if self.precision_form == "full":
            self._pair_products(u, buffer[D + 1 :], n)
        elif self.precision_form == "diagonal":
            np.multiply(u, u, out=features[D + 1 :])
        else:
            np.einsum("dn,dn->n", u, u, out=features[D + 1])
        if self._in_pieces:
            # On pieces of a few dozen rows OpenBLAS takes its small-matrix kernels,
            # which read the features in place instead of packing a copy first.
            # One batched call runs them all (no Python call per piece).
            piece = _PIECE
            whole = n - n % piece
            if whole:
                np.matmul(
                    self.coef,
                    _pieces(features[:, :whole], piece),
                    out=_pieces(log_dens[:, :whole], piece),
                )
            if whole < n:
                np.matmul(self.coef, features[:, whole:], out=log_dens[:, whole:])
        else:
            np.matmul(self.coef, features, out=log_dens)
        return log_dens, features

    def _pair_products(self, u, out, n):
        """The products u_i u_(i+o mod D), o = 0 .. D/2, into ``out`` (see _feature_pairs).

        u times each rotation of u, the rotations being overlapping row ranges of u
        written twice over; one call for all of them.
        """
        D = self.n_features
        twice = self._buffers.get(("u2", n))
        if twice is None:
            twice = self._buffers[("u2", n)] = np.empty((2 * D, n), self.dtype)
        twice[:D] = u
        twice[D:] = u
        step = twice.strides[0]
        rotations = np.lib.stride_tricks.as_strided(
            twice, (D // 2 + 1, D, n), (step, step, twice.strides[1]), writeable=False
        )
        np.multiply(u, rotations, out=out.reshape(D // 2 + 1, D, n))

    def normalize(self, log_dens):
        if self._per_row_maximum:
            log_norm = _normalize(log_dens)
            log_norm += self.lp_shift
            return log_dens, log_norm
        n = log_dens.shape[1]
        resp = self._kn(n)[1]
        key = ("n", n)
        if key not in self._buffers:
            # Row-sized buffers reused block after block: a fresh array of this size is
            # a new memory mapping, and its page faults serialise the threads.
            self._buffers[key] = (np.empty(n, self.dtype), np.empty(n, self.dtype),
                                  np.empty(n, bool))
        total, log_norm, low = self._buffers[key]
        # exp of values <= 0 (up to rounding): no overflow, no per-row maximum needed.
        _exp_clipped(log_dens, out=resp)
        np.sum(resp, axis=0, out=total)
        np.less(total, self._tiny, out=low)
        low = np.flatnonzero(low) if low.any() else None
        if low is not None:
            # Rows far from every component: every term underflowed. Redo these with
            # the per-row maximum.
            part = log_dens[:, low]
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

    def _add_moments(self, resp, features):
        # sum_n r_nk q(u_n) for every k: N_k, s1_k and s2_k in one product, as
        # (F, n) @ (n, K): the orientation BLAS runs fastest with K small.
        if self._in_pieces and self.dtype == np.float64:
            self._add_moments_in_pieces(resp, features)
        elif self.dtype == np.float64:
            # np.dot hands the transposed operand to BLAS as is; matmul copies it
            # first, a fresh array per block whose page faults serialise the threads.
            self.feature_sums += np.dot(features, resp.T)
        else:
            # float32 products sum at most _FLOAT32_SUM rows before the float64
            # accumulator takes over (rounding of a long float32 sum grows with its
            # length). Here matmul is the faster: np.dot slows down on column slices.
            # Also with many features: float32 products in pieces, then their float64
            # sum, took 0.50 ms per block of 1,768 rows at D = 32, K = 16 against 0.44
            # for these (one core; the float64 conversion of the pieces' products).
            n = resp.shape[1]
            for start in range(0, n, _FLOAT32_SUM):
                part = slice(start, start + _FLOAT32_SUM)
                self.feature_sums += np.matmul(features[:, part], resp[:, part].T)

    def _add_moments_in_pieces(self, resp, features):
        """Small-matrix kernels again (see log_prob), on pieces of the features and of
        the transposed responsibilities, then one sum over the pieces (float64 only: in
        float32 the chunked products of _add_moments are the faster)."""
        n = resp.shape[1]
        piece = _PIECE
        whole = n - n % piece
        key = ("rt", n)
        if key not in self._buffers:
            self._buffers[key] = (
                np.empty((n, self.n_components), self.dtype),
                np.empty((whole // piece, *self.feature_sums.shape), self.dtype),
            )
        resp_t, products = self._buffers[key]
        np.copyto(resp_t, resp.T)
        if whole:
            pieces_t = resp_t[:whole].reshape(-1, piece, self.n_components)
            np.matmul(_pieces(features[:, :whole], piece), pieces_t, out=products)
            self.feature_sums += products.sum(axis=0, dtype=np.float64)
        if whole < n:
            self.feature_sums += np.matmul(features[:, whole:], resp_t[whole:])

    def moments(self) -> Moments:
        """(N_k, s1, s2) about c from the feature sums."""
        D, sums = self.n_features, self.feature_sums.T
        nk, s1, quad = sums[:, 0].copy(), sums[:, 1 : D + 1].copy(), sums[:, D + 1 :]
        if self.statistic == "full":
            rows, cols = self._pairs
            s2 = np.empty((len(nk), D, D))
            s2[:, rows, cols] = quad
            s2[:, cols, rows] = quad
        elif self.statistic == "diagonal":
            s2 = quad.copy()
        else:
            s2 = quad[:, 0].copy()
        shift = np.broadcast_to(self.centre.astype(np.float64), self.means.shape).copy()
        return Moments(shift, nk, s1, s2)

    def accurate(self) -> bool:
        """Whether the variances E[u_i^2] - E[u_i]^2 the M-step takes from these moments
        keep the working precision.

        Their rounding error is about eps * E[u_i^2], a relative error of eps times the
        cancellation factor E[u_i^2] / Var[u_i]. Two checks:

        * against the variances of the parameters in use (so that a block of a few rows,
          whose own variance may be tiny, is judged like the whole): a factor up to
          ``_QUADRATIC_CANCELLATION``;
        * against the new variances themselves: each must exceed its rounding error
          ``_NEW_VARIANCE_NOISE`` times over. A component collapsing onto a point far
          from the centre fails it (its variance could come out negative, scikit-learn
          issue 18216); its moments are then redone about the means, which is exact.
        """
        _, nk, s1, s2 = self.moments()
        used = nk > 0
        if not used.any():
            return True
        if self.statistic == "full":
            s2 = np.diagonal(s2, axis1=1, axis2=2)
        nk, s1, s2 = nk[used], s1[used], s2[used]
        mean_sq = s1**2 / nk[:, None]
        if s2.ndim == 1:
            mean_sq = mean_sq.sum(axis=1)
        else:
            nk = nk[:, None]
        second = s2 / nk
        new_variances = second - mean_sq / nk
        noise = _NEW_VARIANCE_NOISE * np.finfo(self.dtype).eps * second
        factor = second / self._variances[used]
        return bool(
            np.max(factor) <= _QUADRATIC_CANCELLATION[self.dtype]
            and np.all(new_variances > noise)
        )


def _feature_pairs(n_features):
    """(i, j) of the quadratic features u_i u_j of full precisions, in the order built.

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


# --------------------------------------------------------------------------------------
# Residuals about the means, diagonal and scalar precisions: the two-pass form
# --------------------------------------------------------------------------------------
class ResidualEStep(EStep):
    """Residuals x - mu_k for every component, one component at a time.

    log pi_k + log N(x | mu_k, Sigma_k) = log_const_k - 1/2 sum_i (l_ki (x_i - mu_ki))^2.
    The moments sum_n r_nk e_k and sum_n r_nk e_k^2 (diagonal; trace: summed over i) are
    of the residuals e_k = x - a_k about the points ``about`` (a_k, default the means).
    About the new means of a first pass (what :func:`gaussmix.stats.block_statistics`
    does when the quadratic moments cancel) this is the two-pass form: sums of
    non-negative terms, sum_n r_nk e_k ~ 0, so the M-step's variances cancel nothing and
    are never negative, whatever the distance of a component from the others or the
    smallness of its variance (a component collapsing onto a row). Always float64. Also
    gives the float32 predictions. K passes over the (D, n) block; no (K, D, n) workspace.
    """

    mode = "residual"
    accumulators = ("nk", "sum_residuals", "sum_squares")

    def __init__(self, params, dtype, statistic, about=None):
        super().__init__(params, dtype, statistic)
        K, D = self.n_components, self.n_features
        scale = self.prec_chol if self.precision_form == "diagonal" else self.prec_chol[:, None]
        self.scale = np.broadcast_to(scale, (K, D)).astype(self.dtype)[:, :, None]
        self.means_w = self.means.astype(self.dtype)[:, :, None]  # (K, D, 1)
        self.about = self.means if about is None else np.asarray(about, dtype=np.float64)
        self.about_w = self.about.astype(self.dtype)[:, :, None]
        self.nk = np.zeros(K)
        self.sum_residuals = np.zeros((K, D))
        self.sum_squares = np.zeros((K, D)) if statistic == "diagonal" else np.zeros(K)

    def _residual(self, data, points, n):
        """data - points for the transposed block ``data`` (D, n), in a reused buffer."""
        key = ("e", n)
        if key not in self._buffers:
            self._buffers[key] = np.empty((self.n_features, n), self.dtype)
        return np.subtract(data, points, out=self._buffers[key])

    def log_prob(self, Xb):
        """(log_dens (K, n), the block transposed (D, n))."""
        data = np.ascontiguousarray(np.asarray(Xb, dtype=self.dtype).T)
        n = data.shape[1]
        log_dens = self._kn(n)[0]
        for k in range(self.n_components):
            y = self._residual(data, self.means_w[k], n)
            y *= self.scale[k]
            np.einsum("dn,dn->n", y, y, out=log_dens[k])
        log_dens *= -0.5
        log_dens += self.log_const.astype(self.dtype)[:, None]
        return log_dens, data

    def _add_moments(self, resp, data):
        n = data.shape[1]
        self.nk += resp.sum(axis=1, dtype=np.float64)
        for k in range(self.n_components):
            e = self._residual(data, self.about_w[k], n)
            self.sum_residuals[k] += e @ resp[k]
            e *= e
            if self.statistic == "diagonal":
                self.sum_squares[k] += e @ resp[k]
            else:
                self.sum_squares[k] += np.sum(e @ resp[k])

    def moments(self) -> Moments:
        return Moments(self.about.copy(), self.nk.copy(), self.sum_residuals.copy(),
                       self.sum_squares.copy())


# --------------------------------------------------------------------------------------
# Whitening, full and shared precisions: moments about the means, in whitened coordinates
# --------------------------------------------------------------------------------------
class _Whitening(EStep):
    """Whitened residuals y_k = L_k^T (x - mu_k); moments about the current means.

    Subclasses accumulate ``nk`` and give :meth:`_whitened_moments`: per component
    sum_n r_nk y_k and sum_n r_nk y_k y_k^T, mapped back to data coordinates once per
    iteration by x - mu_k = L_k^-T y_k.
    """

    def __init__(self, params, dtype, statistic):
        super().__init__(params, dtype, statistic)
        self.nk = np.zeros(self.n_components)
        self.log_const_w = self.log_const.astype(self.dtype)[:, None]
        chol = self.prec_chol if self.precision_form == "full" else self.prec_chol[None]
        self.chol = chol  # (K, D, D) or (1, D, D)
        self._inv_chol = None

    @property
    def inv_chol(self):
        """L_k^-1 (K or 1, D, D), computed when first needed: only the E-step the others
        are merged into maps its moments back (a thread's E-step never needs it)."""
        if self._inv_chol is None:
            self._inv_chol = _inverse_factor(self.chol)
        return self._inv_chol

    def _finish_log_dens(self, log_dens):
        """Squared distances (K, n), in place, to log pi_k + log N(x | mu_k, Sigma_k)."""
        np.maximum(log_dens, 0.0, out=log_dens)  # a squared distance: clip rounding below 0
        log_dens *= -0.5
        log_dens += self.log_const_w
        return log_dens

    def _whitened_moments(self):
        """(sum_n r y (K, D), sum_n r y y^T (K or 1, D, D)) in whitened coordinates."""
        raise NotImplementedError

    def moments(self) -> Moments:
        """The moments in data coordinates, computed once after the last block: accurate()
        and the statistics both ask for them, on the serial path between two E-steps
        (2 ms at K = 8, D = 128). Callers must not modify the arrays."""
        if self._moments is None:
            self._moments = self._data_moments()
        return self._moments

    def _data_moments(self) -> Moments:
        sy, W = self._whitened_moments()
        D = self.n_features
        inv = np.broadcast_to(self.inv_chol, (W.shape[0], D, D))
        s1 = np.einsum("kd,kde->ke", sy, np.broadcast_to(self.inv_chol, (len(sy), D, D)))
        s2 = np.swapaxes(inv, 1, 2) @ W @ inv
        if self.statistic == "pooled":
            s2 = s2.sum(axis=0)
        return Moments(self.means.copy(), self.nk.copy(), s1, s2)

    def accurate(self) -> bool:
        """float32: a mean may move at most ``_FLOAT32_MAX_SHIFT`` of its standard
        deviations (moments about the old means cancel beyond that). Any dtype: the new
        variances must be resolved (:meth:`new_variances_resolved`)."""
        if self.dtype == np.float32 and self.max_whitened_shift() > _FLOAT32_MAX_SHIFT:
            return False
        return self.new_variances_resolved()

    def new_variances_resolved(self) -> bool:
        """Whether every new variance exceeds ``_NEW_VARIANCE_NOISE`` times its rounding.

        The moments are about the old means; the M-step's variance of feature i is
        E[u_i^2] - E[u_i]^2 (u = x - old mean), rounded by about eps * E[u_i^2]. A mean
        jumping onto a far point in one step (a component collapsing onto a far
        outlier: a move of 1e10 for a new variance of 1) loses it all; the iteration
        is then redone about the new means (:class:`AboutWhitening`).
        """
        _, nk, s1, s2 = self.moments()
        used = nk > 0
        if not used.any():
            return True
        if self.statistic == "pooled":
            n = float(nk[used].sum())
            second = np.diagonal(s2) / n
            new = second - np.sum(s1[used] ** 2 / nk[used, None], axis=0) / n
        else:
            nk, s1 = nk[used, None], s1[used]
            second = np.diagonal(s2[used], axis1=1, axis2=2) / nk
            new = second - (s1 / nk) ** 2
        noise = _NEW_VARIANCE_NOISE * np.finfo(self.dtype).eps * second
        return bool(np.all(new > noise))

    def max_whitened_shift(self) -> float:
        """Largest move of a mean, in standard deviations of its component."""
        sy, _ = self._whitened_moments()
        nk = np.where(self.nk > 0, self.nk, 1.0)
        return float(np.sqrt(np.max(np.sum(sy**2, axis=1) / nk**2)))


# A responsibility below this fraction of its row's largest is left out of the scatter
# (StackedWhitening._add_moments): its term r z z^T is below 1e-30 (1 + |z|^2), and
# |z|^2 only grows like -2 log r.
_NEGLIGIBLE = 1e-30
# Largest share of a block's rows a component may hold for its scatter to be taken from
# those rows gathered (a product and a symmetric product on m columns, against a
# symmetric product on all n: the gathered way costs about 2.2 times more per row).
_SPARSE_SHARE = 0.4

# Order from which _inverse_factor splits a triangular factor in two.
_INVERSE_SPLIT = 48


def _inverse_factor(chol):
    """L^-1 of a stack of factors (n, D, D), float64.

    An upper triangular L is inverted by blocks, L = [[A, B], [0, C]] giving
    L^-1 = [[A^-1, -A^-1 B C^-1], [0, C^-1]] (LAPACK's trtri by recursion): a third of
    the arithmetic of a general inverse, most of it in matrix products. At K = 8,
    D = 128 the general inverse cost 3 ms per iteration, on the serial path between
    two E-steps. Anything else (a factor given not triangular): the general inverse.
    """
    D = chol.shape[-1]
    if D < _INVERSE_SPLIT or np.any(np.tril(chol, -1)):
        return np.linalg.inv(chol)
    return _blocked_inverse(chol)


def _blocked_inverse(chol):
    """L^-1 of a stack of upper triangular factors (n, D, D), by blocks (_inverse_factor)."""
    D = chol.shape[-1]
    if D < _INVERSE_SPLIT:
        return np.linalg.inv(chol)
    h = D // 2
    a_inv = _blocked_inverse(chol[:, :h, :h])
    c_inv = _blocked_inverse(chol[:, h:, h:])
    inv = np.zeros_like(chol, dtype=np.float64)
    inv[:, :h, :h] = a_inv
    inv[:, h:, h:] = c_inv
    inv[:, :h, h:] = -(a_inv @ chol[:, :h, h:]) @ c_inv
    return inv


class _PerComponentWhitening(_Whitening):
    """Whitened residuals y_k per component, and their scatter by symmetric products.

    With a_nk = sqrt(r_nk) (y_nk, 1), one symmetric rank-n product per component,
    ``augmented_scatter`` M_k = sum_n a_nk a_nk^T (BLAS syrk: NumPy computes ``A @ A.T``
    on one buffer that way, half the arithmetic of a general product), holds
    W_k = sum_n r_nk y y^T, sy_k = sum_n r_nk y and N_k.

    :meth:`log_prob` gives the whitened residuals as a list of (first row, (K, rows, n))
    parts (rows of y_k, for all k); :class:`StackedWhitening` has its own layout and
    scatter.
    """

    accumulators = ("nk", "augmented_scatter")

    def __init__(self, params, dtype, statistic):
        super().__init__(params, dtype, statistic)
        D = self.n_features
        self.augmented_scatter = np.zeros((self.n_components, D + 1, D + 1))

    def _buffer(self, name, shape):
        key = (name, shape)
        buffer = self._buffers.get(key)
        if buffer is None:  # at most two sizes each: full blocks and the last one
            buffer = self._buffers[key] = np.empty(shape, self.dtype)
        return buffer

    def _squared_norms(self, parts, n):
        """||y_k||^2 (K, n) of the parts, into the log-density buffer."""
        log_dens, partial = self._kn(n)
        for i, (_, y) in enumerate(parts):
            np.einsum("kdn,kdn->kn", y, y, out=log_dens if i == 0 else partial)
            if i:
                log_dens += partial
        return log_dens

    def _add_moments(self, resp, parts):
        self.nk += resp.sum(axis=1, dtype=np.float64)
        K, D, n = self.n_components, self.n_features, resp.shape[1]
        weighted = self._buffer("a", (K, D + 1, n))
        root = weighted[:, D]  # the row of sqrt(r) under sqrt(r) y
        np.sqrt(resp, out=root)
        for first, y in parts:
            np.multiply(y, root[:, None, :], out=weighted[:, first : first + y.shape[1]])
        # sum_n r_nk z_nk z_nk^T for every k in one call: NumPy's matmul takes the
        # symmetric product (syrk) for each (D + 1, n) matrix times its own transpose.
        scatter = self._buffer("s", (K, D + 1, D + 1))
        np.matmul(weighted, np.swapaxes(weighted, 1, 2), out=scatter)
        self.augmented_scatter += scatter

    def _whitened_moments(self):
        D = self.n_features
        return self.augmented_scatter[:, :D, D], self.augmented_scatter[:, :D, :D]


# Parts of the stacked whitening by number of features: the rows of the lower-triangular
# L_k^T split into this many bands, band q a product with the first (q + 1) D / parts
# columns only: (parts + 1) / (2 parts) of the full arithmetic. Bands of 12 to 16 rows
# still run at the full matrix-product rate: measured (one core, K = 8, CPU time of the
# E-step), 8 bands against 3 saved 3% at D = 96 and 128, 6 against 3 5% at D = 64.
_TRIANGLE_PARTS = ((96, 8), (64, 6), (48, 4), (24, 2))


class StackedWhitening(_PerComponentWhitening):
    """y_k = [L_1^T; ...; L_K^T] (x - c) - L_k^T (mu_k - c): the components' products on
    one block.

    On the block (1, x - c), with the offsets as a first column. Rounding ~ eps
    |L_k^T (x - c)|. The precision factor L_k is upper triangular (scikit-learn's
    ``precisions_cholesky_``), so L_k^T is lower triangular: its rows split into bands,
    band q multiplying only the data rows up to its last row (a contiguous slice of the
    block), which saves up to half the arithmetic at many features.

    The whitened residuals land in one (D + 1, K, n) buffer, feature-major: a band's rows
    of every component are one matrix, so each band is one product ((rows x K) x
    (last row + 1) times the block's first rows), and every (component, row) column is a
    column of one (D + 1, K n) matrix. The last row takes sqrt(r) in :meth:`_add_moments`:
    the scatter then scales y_k in place and takes the symmetric product of the buffer
    itself (no weighted copy), or gathers the columns of every component's rows in one
    call. Measured against the component-major layout ((K, D + 1, n), a batched product
    per band and a gather per component), E-step over 50,000 x 64, K = 8, in two threads
    (``benchmarks/thread_scaling.py``): 47.8 and 54.4 ms against 34.5 and 32.7 ms in
    float32; ``benchmarks/bench_em.py --rounds 3``, ms per iteration: full-64d-f32 50.3
    against 43.3, full-64d 84.1 against 77.0, at D = 96 and 128 the same within the
    machine's noise.
    """

    mode = "stacked"

    def __init__(self, params, dtype, statistic):
        super().__init__(params, dtype, statistic)
        D, K = self.n_features, self.n_components
        # A_k = [-L_k^T (mu_k - c), L_k^T]: A_k (1, x - c) = y_k.
        aug = np.zeros((K, D, D + 1))
        aug[:, :, 0] = -np.einsum("kd,kde->ke", self.means_c, self.chol)
        aug[:, :, 1:] = np.swapaxes(self.chol, 1, 2)
        lower = not np.any(np.triu(aug[:, :, 1:], 1))
        parts = next((p for d, p in _TRIANGLE_PARTS if D >= d), 1) if lower else 1
        bounds = np.linspace(0, D, parts + 1).astype(int)
        # band q: rows lo:hi of every A_k, row (d - lo) K + k of the band holding A_k[d]
        self.bands = [
            (lo, hi, np.ascontiguousarray(
                np.swapaxes(aug[:, lo:hi, : hi + 1], 0, 1).reshape((hi - lo) * K, hi + 1),
                dtype=self.dtype))
            for lo, hi in itertools.pairwise(bounds)
        ]

    def log_prob(self, Xb):
        """(log_dens (K, n), whitened residuals (D + 1, K, n), the last row unset)."""
        Xb = np.asarray(Xb).astype(self.dtype, copy=False)
        n, D, K = Xb.shape[0], self.n_features, self.n_components
        data = self._buffer("data", (D + 1, n))  # ones over the centred block, transposed
        data[0] = 1.0
        np.subtract(Xb.T, self.centre[:, None], out=data[1:])
        y = self._buffer("y", (D + 1, K, n))
        rows = y.reshape((D + 1) * K, n)
        for lo, hi, band in self.bands:
            np.matmul(band, data[: hi + 1], out=rows[lo * K : hi * K])
        log_dens = self._kn(n)[0]
        np.einsum("dkn,dkn->kn", y[:D], y[:D], out=log_dens)
        return self._finish_log_dens(log_dens), y

    def _add_moments(self, resp, y):
        """The scatter of every component from the rows where it holds a responsibility.

        A row's term r_nk z z^T for a component it lies far from (r_nk below 1e-30 of the
        row's largest responsibility; its squared distance only grows like -log r_nk)
        changes no digit of the scatter. Once the components separate (a few
        iterations), each row counts for one or two of them: the columns sqrt(r) (y_k, 1)
        of every component's m_k rows are then gathered in one call, component after
        component, and each component takes the symmetric product of its own, instead
        of all n. Components holding more than ``_SPARSE_SHARE`` of the rows take every
        column, and blocks where most do take the symmetric products of the whole buffer.
        """
        K, D, n = self.n_components, self.n_features, resp.shape[1]
        self.nk += resp.sum(axis=1, dtype=np.float64)
        root = y[D]  # sqrt(r) under y_k: z = sqrt(r) (y_k, 1)
        np.sqrt(resp, out=root)
        held = resp > _NEGLIGIBLE * resp.max(axis=0)
        counts = np.count_nonzero(held, axis=1)
        if counts.sum() > _SPARSE_SHARE * K * n:
            y[:D] *= root
            # sum_n z z^T for every k in one call: the symmetric product (syrk) of each
            # (D + 1, n) matrix (a strided view) and its own transpose.
            z = np.swapaxes(y, 0, 1)
            scatter = self._buffer("s", (K, D + 1, D + 1))
            np.matmul(z, np.swapaxes(z, 1, 2), out=scatter)
            self.augmented_scatter += scatter
            return
        every = counts > _SPARSE_SHARE * n
        for k in np.flatnonzero(every):  # most rows: every column
            z = y[:, k]
            z[:D] *= root[k]
            self.augmented_scatter[k] += z @ z.T  # syrk
        if every.any():
            held[every] = False
            counts[every] = 0
        total = int(counts.sum())
        if not total:
            return
        # (at most _SPARSE_SHARE K n columns: more took the branch above)
        z = self._buffer("g", ((D + 1) * int(_SPARSE_SHARE * K * n + 1),))[
            : (D + 1) * total].reshape(D + 1, total)
        # the held (component, row) pairs in order, component by component; mode="clip":
        # no bounds check (a buffered copy of z) on valid indices
        np.take(y.reshape(D + 1, K * n), np.flatnonzero(held), axis=1, out=z, mode="clip")
        z[:D] *= z[D]
        stop = 0
        for k in np.flatnonzero(counts):
            start, stop = stop, stop + int(counts[k])
            part = z[:, start:stop]
            self.augmented_scatter[k] += part @ part.T  # syrk


class CentredWhitening(_PerComponentWhitening):
    """y_k = L_k^T (x - mu_k), each mean subtracted first.

    A cluster far from the others keeps its precision (x and mu_k are close: their
    difference is exact). float32 only (full with a far mean; shared precision).
    """

    mode = "centred"

    def __init__(self, params, dtype, statistic):
        super().__init__(params, dtype, statistic)
        self.chol_t = np.ascontiguousarray(np.swapaxes(self.chol, 1, 2), dtype=self.dtype)
        self.means_w = self.means.astype(self.dtype)[:, :, None]

    def log_prob(self, Xb):
        """(log_dens (K, n), whitened residuals as one (0, (K, D, n)) part)."""
        Xb = np.asarray(Xb).astype(self.dtype, copy=False)
        n, D, K = Xb.shape[0], self.n_features, self.n_components
        residuals = self._buffer("e", (K, D, n))
        whitened = self._buffer("y", (K, D, n))
        np.subtract(np.ascontiguousarray(Xb.T), self.means_w, out=residuals)
        np.matmul(self.chol_t, residuals, out=whitened)
        parts = [(0, whitened)]
        return self._finish_log_dens(self._squared_norms(parts, n)), parts


class AboutWhitening(CentredWhitening):
    """Log-densities as :class:`CentredWhitening` (float64); moments of the residuals
    x - a_k about given points a_k (the new means of a first pass), in data coordinates.

    The two-pass form for full and shared precisions, as :class:`ResidualEStep` is for
    diagonal and scalar ones: sum_n r_nk (x - a_k) ~ 0, so the M-step's covariances
    cancel nothing. Only for the rare iteration whose moments about the old means would
    (a mean jumping onto a far outlier); K products of (D, n) blocks.
    """

    mode = "about"
    accumulators = ("nk", "sum_residuals", "sum_scatter")

    def __init__(self, params, dtype, statistic, about):
        super().__init__(params, dtype, statistic)
        K, D = self.n_components, self.n_features
        self.about = np.asarray(about, dtype=np.float64)
        self.sum_residuals = np.zeros((K, D))
        self.sum_scatter = np.zeros((D, D) if statistic == "pooled" else (K, D, D))

    def log_prob(self, Xb):
        """(log_dens (K, n), the block itself)."""
        log_dens, _ = super().log_prob(Xb)
        return log_dens, Xb

    def _add_moments(self, resp, Xb):
        self.nk += resp.sum(axis=1, dtype=np.float64)
        data = np.asarray(Xb, dtype=np.float64)
        for k in range(self.n_components):
            e = data - self.about[k]
            weighted = e * resp[k][:, None]
            self.sum_residuals[k] += weighted.sum(axis=0)
            if self.statistic == "pooled":
                self.sum_scatter += weighted.T @ e
            else:
                self.sum_scatter[k] += weighted.T @ e

    def moments(self) -> Moments:
        return Moments(self.about.copy(), self.nk.copy(), self.sum_residuals.copy(),
                       self.sum_scatter.copy())

    def accurate(self) -> bool:
        return True


class PooledWhitening(_Whitening):
    """One shared whitening y0 = L^T (x - c) for every component (shared precision).

    With m_k = L^T (mu_k - c): ||y0 - m_k||^2 = |y0|^2 - 2 m_k.y0 + |m_k|^2, and the
    moments follow from ``shared_scatter`` G = sum_n (sum_k r_nk) y0 y0^T and
    ``whitened_sums`` sy0_k = sum_n r_nk y0 (see :meth:`_whitened_moments`): one D x D
    product per block instead of K.
    """

    mode = "pooled"
    accumulators = ("nk", "whitened_sums", "shared_scatter")

    def __init__(self, params, dtype, statistic):
        super().__init__(params, dtype, statistic)
        D = self.n_features
        self.chol_t = self.chol[0].T
        self.m = self.means_c @ self.prec_chol  # m_k = L^T (mu_k - c), (K, D)
        self.m_sq = np.sum(self.m**2, axis=1)[:, None]
        self.whitened_sums = np.zeros((self.n_components, D))
        self.shared_scatter = np.zeros((D, D))

    def log_prob(self, Xb):
        """(log_dens (K, n), the shared whitened block y0 (D, n))."""
        Xb = np.asarray(Xb).astype(self.dtype, copy=False)
        n = Xb.shape[0]
        whitened = np.dot(self.chol_t, (Xb - self.centre).T)  # (D, n)
        log_dens = self._kn(n)[0]
        np.matmul(self.m, whitened, out=log_dens)
        log_dens *= -2.0
        log_dens += np.einsum("dn,dn->n", whitened, whitened)
        log_dens += self.m_sq
        return self._finish_log_dens(log_dens), whitened

    def _add_moments(self, resp, whitened):
        self.nk += resp.sum(axis=1, dtype=np.float64)
        self.whitened_sums += np.dot(resp, whitened.T)
        self.shared_scatter += np.dot(whitened * resp.sum(axis=0), whitened.T)

    def accurate(self) -> bool:
        """Whether the expanded scatter below kept float64's accuracy: its rounding is
        about eps * max_k |m_k|^2 relative (m_k a mean's whitened distance from the centre),
        so means within about 1e4 standard deviations of the centre; and the new
        variances are resolved (see :meth:`_Whitening.new_variances_resolved`). Otherwise
        the iteration is redone with the moments about the means."""
        reach_sq = float(np.max(self.m_sq)) if self.m_sq.size else 0.0
        return (
            np.finfo(np.float64).eps * reach_sq <= _POOLED_ROUNDING
            and self.new_variances_resolved()
        )

    def _whitened_moments(self):
        """With y_k = y0 - m_k:  sum_n r_nk y_k = sy0_k - N_k m_k  and
        sum_k sum_n r_nk y_k y_k^T = G - sum_k (m_k sy0_k^T + sy0_k m_k^T) + sum_k N_k m_k m_k^T.
        """
        m = self.m
        sy = self.whitened_sums - self.nk[:, None] * m
        cross = m.T @ self.whitened_sums
        W = (self.shared_scatter - cross - cross.T + (m * self.nk[:, None]).T @ m)[None]
        return sy, W


# --------------------------------------------------------------------------------------
# Normalisation
# --------------------------------------------------------------------------------------
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
