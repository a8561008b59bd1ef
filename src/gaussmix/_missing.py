"""Exact EM with missing values (Ghahramani & Jordan 1994), grouped by missingness pattern.

A row with NaN in some coordinates ``m`` and values in the others ``o`` enters EM through
its observed marginal. With ``Sigma = Sigma_k`` and ``mu = mu_k``:

* E-step density: ``N(x_o | mu_o, Sigma_oo)``; the log-likelihood of the fit is the
  observed-data log-likelihood ``sum_n log sum_k pi_k N(x_n,o | mu_k,o, Sigma_k,oo)``.
* The expected sufficient statistics replace the missing coordinates by their conditional
  mean ``xhat_m = mu_m + Sigma_mo Sigma_oo^-1 (x_o - mu_o)`` and add the conditional
  covariance ``C = Sigma_mm - Sigma_mo Sigma_oo^-1 Sigma_om`` to the scatter (in the
  ``(m, m)`` block), per component.

The statistics are the same additive :class:`~gaussmix.stats.SufficientStatistics` as for
complete rows (about the components' current means), reduced to the family's statistic
(full, pooled, diagonal or trace), so the M-step does not change and EM never lowers the
observed-data log-likelihood. Rows sharing a missingness pattern share the factorisations:
one Cholesky of ``Sigma_k,oo`` per pattern and component per iteration. All arithmetic here
is float64 (results are cast by the callers).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "condition_row",
    "impute",
    "incomplete_rows",
    "incomplete_statistics",
    "weighted_log_prob",
]

_LOG_2PI = np.log(2 * np.pi)


def incomplete_rows(X) -> np.ndarray | None:
    """Boolean mask of the rows holding a NaN, or None when X holds none (the fast path).

    A finite sum proves that no value is NaN, so complete data cost one pass of a sum.
    """
    X = np.asarray(X)
    if X.dtype.kind != "f":
        return None
    with np.errstate(over="ignore", invalid="ignore"):
        if not np.isnan(np.sum(X, dtype=np.float64)):
            return None
    mask = np.isnan(X).any(axis=1)
    return mask if mask.any() else None


def _patterns(missing: np.ndarray):
    """``(pattern, rows)`` for every distinct missingness pattern (a boolean (D,) row).

    Patterns are grouped by an integer code (one bit per feature) when D <= 62: sorting
    integers is an order of magnitude faster than ``np.unique(..., axis=0)`` on rows.
    """
    n_features = missing.shape[1]
    if n_features <= 62:
        codes = missing.astype(np.int64) @ (np.int64(1) << np.arange(n_features, dtype=np.int64))
    else:
        codes = np.unique(missing, axis=0, return_inverse=True)[1].reshape(-1)
    order = np.argsort(codes, kind="stable")
    sorted_codes = codes[order]
    starts = np.flatnonzero(np.r_[True, sorted_codes[1:] != sorted_codes[:-1]])
    ends = np.r_[starts[1:], len(codes)]
    for start, end in zip(starts, ends, strict=True):
        rows = order[start:end]
        yield missing[rows[0]], rows


class _Pattern:
    """The factorisations of one missingness pattern under every component.

    Attributes
    ----------
    obs, mis : ndarray of int
        Observed and missing feature indices.
    inv_chol : ndarray of shape (K, |o|, |o|)
        ``L^-1`` with ``Sigma_k,oo = L L^T``.
    log_det : ndarray of shape (K,)
        ``log |Sigma_k,oo|``.
    gain : ndarray of shape (K, |m|, |o|)
        ``Sigma_k,mo Sigma_k,oo^-1`` (the regression of the missing on the observed).
    cond_cov : ndarray of shape (K, |m|, |m|)
        ``Sigma_k,mm - Sigma_k,mo Sigma_k,oo^-1 Sigma_k,om``.
    """

    def __init__(self, covariances: np.ndarray, pattern: np.ndarray):
        self.mis = np.flatnonzero(pattern)
        self.obs = np.flatnonzero(~pattern)
        if self.obs.size == 0:
            raise ValueError(
                "A row has no observed value (every feature is NaN): it carries no "
                "information. Drop the rows that are entirely missing."
            )
        o, m = self.obs, self.mis
        s_oo = covariances[:, o][:, :, o]
        chol = np.linalg.cholesky(s_oo)
        self.inv_chol = np.linalg.inv(chol)
        self.log_det = 2.0 * np.sum(np.log(np.diagonal(chol, axis1=1, axis2=2)), axis=1)
        s_mo = covariances[:, m][:, :, o]
        precision_oo = np.swapaxes(self.inv_chol, 1, 2) @ self.inv_chol
        self.gain = s_mo @ precision_oo
        cond = covariances[:, m][:, :, m] - self.gain @ np.swapaxes(s_mo, 1, 2)
        self.cond_cov = 0.5 * (cond + np.swapaxes(cond, 1, 2))

    def weighted_log_prob(self, X_obs, means, log_weights):
        """``log pi_k + log N(x_o | mu_k,o, Sigma_k,oo)``, shape (K, n), and the residuals."""
        diff = X_obs[None, :, :] - means[:, None, self.obs]  # (K, n, |o|)
        z = diff @ np.swapaxes(self.inv_chol, 1, 2)
        maha = np.einsum("kni,kni->kn", z, z)
        log_prob = -0.5 * (self.obs.size * _LOG_2PI + self.log_det[:, None] + maha)
        return log_prob + log_weights[:, None], diff

    def conditional_offsets(self, diff):
        """``xhat_k,m - mu_k,m = gain_k (x_o - mu_k,o)``, shape (K, n, |m|)."""
        return diff @ np.swapaxes(self.gain, 1, 2)


def _full_parameters(params):
    """Means (K, D), full covariances (K, D, D) and log weights, float64."""
    family = params.family
    K, D = params.n_components, params.n_features
    covariances = family.full_covariances(params.covariances, K, D)
    means = np.asarray(params.means, dtype=np.float64)
    with np.errstate(divide="ignore"):
        log_weights = np.log(np.asarray(params.weights, dtype=np.float64))
    return means, covariances, log_weights


def _normalise(weighted):
    """Responsibilities (K, n) and log p(x) (n,) from weighted log-probabilities (K, n)."""
    top = weighted.max(axis=0)
    log_norm = top + np.log(np.sum(np.exp(weighted - top), axis=0))
    return np.exp(weighted - log_norm), log_norm


def _each_pattern(X, params):
    """``(rows, pattern, resp (K, n), log p (n,), diff (K, n, |o|))`` for every pattern."""
    X = np.asarray(X, dtype=np.float64)
    means, covariances, log_weights = _full_parameters(params)
    for pattern, rows in _patterns(np.isnan(X)):
        pat = _Pattern(covariances, pattern)
        weighted, diff = pat.weighted_log_prob(X[np.ix_(rows, pat.obs)], means, log_weights)
        resp, log_p = _normalise(weighted)
        yield rows, pat, weighted, resp, log_p, diff


def weighted_log_prob(X, params) -> np.ndarray:
    """``log pi_k + log N(x_o | mu_k,o, Sigma_k,oo)`` of rows with NaN, shape (n, K)."""
    out = np.empty((np.asarray(X).shape[0], params.n_components))
    for rows, _, weighted, _, _, _ in _each_pattern(X, params):
        out[rows] = weighted.T
    return out


def incomplete_statistics(X, params, sample_weight=None):
    """Moments of rows with NaN about the components' means: ``(shift, nk, s1, s2, ll, w)``.

    ``s2`` has the family's statistic form (full (K, D, D), pooled (D, D), diagonal (K, D)
    or trace (K,)); everything float64.
    """
    X = np.asarray(X, dtype=np.float64)
    n, D = X.shape
    K = params.n_components
    w = np.ones(n) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    means = np.asarray(params.means, dtype=np.float64)
    nk = np.zeros(K)
    s1 = np.zeros((K, D))
    s2 = np.zeros((K, D, D))
    log_likelihood = 0.0
    for rows, pat, _, resp, log_p, diff in _each_pattern(X, params):
        # The completed, centred row is A_k (x_o - mu_k,o) with A_k = [I; gain_k] (rows in
        # feature order), so its moments are A_k times the observed block's moments: the
        # per-row work stays |o|-dimensional.
        wr = resp * w[rows][None, :]  # (K, n)
        weight_k = wr.sum(axis=1)
        first = np.einsum("kn,kno->ko", wr, diff)
        second = np.swapaxes(diff * wr[:, :, None], 1, 2) @ diff  # (K, |o|, |o|)
        lift = np.zeros((K, D, pat.obs.size))
        lift[:, pat.obs, np.arange(pat.obs.size)] = 1.0
        lift[:, pat.mis, :] = pat.gain
        nk += weight_k
        s1 += np.einsum("kdo,ko->kd", lift, first)
        s2 += lift @ second @ np.swapaxes(lift, 1, 2)
        m = pat.mis
        s2[np.ix_(np.arange(K), m, m)] += weight_k[:, None, None] * pat.cond_cov
        log_likelihood += float(np.dot(w[rows], log_p))
    return means.copy(), nk, s1, _reduce(params.family.statistic, s2), log_likelihood, float(
        w.sum()
    )


def _reduce(statistic: str, s2: np.ndarray) -> np.ndarray:
    """The full (K, D, D) scatter in the family's statistic form."""
    if statistic == "full":
        return s2
    if statistic == "pooled":
        return s2.sum(axis=0)
    diagonal = np.diagonal(s2, axis1=1, axis2=2).copy()
    if statistic == "diagonal":
        return diagonal
    if statistic == "trace":
        return diagonal.sum(axis=1)
    raise ValueError(f"Unknown statistic {statistic!r}.")


def impute(X, params) -> np.ndarray:
    """X with every NaN replaced by ``E[x_m | x_o] = sum_k gamma_k(x_o) xhat_k,m``.

    Observed values are returned unchanged; float64 result.
    """
    X = np.array(X, dtype=np.float64)
    means = np.asarray(params.means, dtype=np.float64)
    for rows, pat, _, resp, _, diff in _each_pattern(X, params):
        if pat.mis.size == 0:
            continue
        xhat = means[:, None, pat.mis] + pat.conditional_offsets(diff)  # (K, n, |m|)
        X[np.ix_(rows, pat.mis)] = np.einsum("kn,knm->nm", resp, xhat)
    return X


def condition_row(x, params):
    """The conditional mixture of one row's missing coordinates given its observed ones.

    Returns
    -------
    missing : ndarray of int
        The missing feature indices (the conditional mixture's features, in order).
    weights : ndarray of shape (K,)
        Posterior probabilities of the components given the observed values.
    means : ndarray of shape (K, |m|)
    covariances : ndarray of shape (K, |m|, |m|)
    """
    x = np.asarray(x, dtype=np.float64).reshape(1, -1)
    means = np.asarray(params.means, dtype=np.float64)
    ((_, pat, _, resp, _, diff),) = list(_each_pattern(x, params))
    cond_means = means[:, pat.mis] + pat.conditional_offsets(diff)[:, 0, :]
    return pat.mis, resp[:, 0], cond_means, pat.cond_cov
