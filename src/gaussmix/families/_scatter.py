"""Pieces shared by mclust's constrained families: the regularised scatter and its volumes.

Every constrained M-step maximises the expected complete-data log-likelihood of the
covariances,

    Q(Sigma) = -1/2 sum_k [ N_k log|Sigma_k| + tr(W_k Sigma_k^-1) ],

over the covariances allowed by the model, with ``W_k`` the weighted scatter of component
``k`` about its new mean. ``reg_covar`` enters before the constrained update, as a scatter
``W_k + reg_covar N_k I`` (what ``reg_covar`` adds to an unconstrained covariance), so the
result keeps the model's constraint. Here ``N_k`` includes the M-step's guard, so an empty
component still has a regular (if tiny) scatter.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "constraint_tolerance",
    "det_root",
    "equal_across",
    "geometric_mean",
    "log_geometric_mean",
    "regularised_scatter",
    "symmetrise",
]


def regularised_scatter(statistic, nk, s1, s2, reg_covar, guard):
    """``(W, n_k)``: the scatter about the new means plus ``reg_covar n_k`` on its diagonal.

    Parameters
    ----------
    statistic : {"trace", "diagonal", "full"}
        The form of ``s2`` (and of the returned ``W``): (K,), (K, D) or (K, D, D).
    nk, s1, s2 : ndarray
        Summed statistics about the shift (``gaussmix.stats.SufficientStatistics``).
    reg_covar, guard : float
        ``n_k = nk + guard`` (the divisor of the M-step) scales ``reg_covar``.

    Returns
    -------
    W : ndarray, float64, the shape of ``s2``
    n_k : ndarray of shape (K,), float64
    """
    nk = np.asarray(nk, dtype=np.float64)
    s1 = np.asarray(s1, dtype=np.float64)
    s2 = np.asarray(s2, dtype=np.float64)
    n_features = s1.shape[1]
    d = s1 / np.where(nk > 0, nk, 1.0)[:, None]
    n_k = nk + guard
    if statistic == "trace":
        return s2 - np.sum(s1 * d, axis=1) + reg_covar * n_k * n_features, n_k
    if statistic == "diagonal":
        return s2 - s1 * d + reg_covar * n_k[:, None], n_k
    W = symmetrise(s2 - s1[:, :, None] * d[:, None, :])
    W[:, np.arange(n_features), np.arange(n_features)] += reg_covar * n_k[:, None]
    return W, n_k


def symmetrise(matrices):
    """``(A + A^T) / 2`` over the last two axes."""
    return 0.5 * (matrices + np.swapaxes(matrices, -1, -2))


def log_geometric_mean(values, axis=-1):
    """``mean(log(values))`` along ``axis``: log of the D-th root of a diagonal's product."""
    with np.errstate(divide="ignore"):
        return np.mean(np.log(values), axis=axis)


def geometric_mean(values, axis=-1):
    """``|diag|^(1/D)`` of positive values along ``axis`` (computed in log space)."""
    return np.exp(log_geometric_mean(values, axis))


def det_root(matrices):
    """``|A|^(1/D)`` of symmetric positive semi-definite matrices (0 when singular)."""
    sign, logdet = np.linalg.slogdet(matrices)
    n_features = matrices.shape[-1]
    return np.where(sign > 0, np.exp(logdet / n_features), 0.0)


def constraint_tolerance(precisions) -> float:
    """Tolerance of a constraint check on ``precisions``: a relative difference (float64 or
    float32 rounding of values a user computed, far above either's epsilon)."""
    return 1e-6 if np.asarray(precisions).dtype == np.float64 else 1e-4


def equal_across(log_values, what, family, detail, tolerance):
    """Raise ValueError unless ``log_values`` (one row per component) agree within
    ``tolerance`` (an absolute difference of logs: a relative difference of the values).

    ``what`` names the constrained quantity, ``detail`` how it is computed.
    """
    log_values = np.asarray(log_values, dtype=np.float64).reshape(len(log_values), -1)
    spread = np.max(np.abs(log_values - log_values[:1]), axis=1)
    bad = np.flatnonzero(~(spread <= tolerance))
    if bad.size:
        raise ValueError(
            f"precisions_init breaks the constraint of covariance_type={family.name!r} "
            f"({family.words}): every component must have the same {what} ({detail}), but "
            f"component {int(bad[0])} differs from component 0. Give precisions with equal "
            f"{what}, or choose a covariance_type with variable {what}."
        )
