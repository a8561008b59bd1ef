"""EM on rows held in memory, for many mixtures of one covariance family at once.

Model selection runs EM from a dozen starts for every grid point, on data that are often
small (hundreds of rows), where the general engine (:func:`gaussmix.stats.block_statistics`
and :func:`gaussmix.stats.m_step`) spends most of its time in Python rather than in
arithmetic. This module is the lean path for that case. The rows are turned once into
their quadratic features about the data mean ``c`` (``q(u) = (1, u, u_i u_j)`` with
``u = x - c``; diag: ``u_i^2``; spherical: ``|u|^2``), so that for ``S`` mixtures of ``K``
components

* the E-step is one product ``Q @ coef.T`` of the (n, F) features with the (S K, F)
  coefficients of every log-density, a log-sum-exp over each mixture's K columns, and one
  product ``Q^T @ resp`` giving every component's ``(N_k, s1_k, s2_k)`` about ``c``;
* the M-step is :func:`gaussmix.stats.m_step`'s formulas on arrays with a leading mixture
  axis.

The results equal the general path's to rounding (``tests/test_batch.py``): the same
statistics, the moments about one common point (the data mean) rather than each block's
mixture mean. Its accuracy guard is the general path's: the variances lose a factor
``E_k[u_i^2] / Var_k[u_i]`` of relative precision, which must stay below 1e8; a mixture for
which it does not takes the step through the general path instead.

Parameters of S mixtures are a :class:`Batch`: weights (S, K), means (S, K, D) and
covariances (S, K, D, D) full, (S, D, D) tied, (S, K, D) diag, (S, K) spherical.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import stats as _stats
from ._degeneracy import REG_FRACTION, RESOLUTION, degeneracy_reason, min_component_points

_LOG_2PI = float(np.log(2.0 * np.pi))
_CANCELLATION = 1e8  # as stats._QUADRATIC_CANCELLATION for float64


@dataclass
class Batch:
    """Parameters of S mixtures of one covariance family (leading axis: the mixture)."""

    covariance_type: str
    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray

    @property
    def size(self) -> int:
        return self.weights.shape[0]

    def take(self, index) -> Batch:
        """The mixtures at ``index`` (an int array or a boolean mask)."""
        return Batch(
            self.covariance_type,
            self.weights[index],
            self.means[index],
            self.covariances[index],
        )

    def member(self, s: int) -> _stats.MixtureParameters:
        """Mixture ``s`` as :class:`~gaussmix.stats.MixtureParameters` (float64)."""
        return _stats.MixtureParameters.from_covariances(
            self.covariance_type, self.weights[s], self.means[s], self.covariances[s]
        )

    @classmethod
    def stack(cls, members: list[Batch]) -> Batch:
        t = members[0].covariance_type
        return cls(
            t,
            np.concatenate([m.weights for m in members]),
            np.concatenate([m.means for m in members]),
            np.concatenate([m.covariances for m in members]),
        )

    @classmethod
    def of(cls, params: _stats.MixtureParameters) -> Batch:
        """A batch of one from :class:`~gaussmix.stats.MixtureParameters`."""
        return cls(
            params.covariance_type,
            np.asarray(params.weights, dtype=np.float64)[None],
            np.asarray(params.means, dtype=np.float64)[None],
            np.asarray(params.covariances, dtype=np.float64)[None],
        )

    def vector(self) -> np.ndarray:
        """(S, P): every mixture's parameters as one row (for extrapolation)."""
        S = self.size
        return np.concatenate(
            [self.weights, self.means.reshape(S, -1), self.covariances.reshape(S, -1)], axis=1
        )

    def with_vector(self, vec: np.ndarray) -> Batch:
        _S, K = self.weights.shape
        KD = self.means[0].size
        return Batch(
            self.covariance_type,
            vec[:, :K],
            vec[:, K : K + KD].reshape(self.means.shape),
            vec[:, K + KD :].reshape(self.covariances.shape),
        )


class Rows:
    """Rows in memory, as quadratic features for one covariance family.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    sample_weight : ndarray of shape (n_samples,) or None
    covariance_type : {"full", "tied", "diag", "spherical"}
    reg_covar : float
    """

    def __init__(self, X, sample_weight, covariance_type, reg_covar):
        X = np.asarray(X, dtype=np.float64)
        self.X = X
        self.sample_weight = sample_weight
        self.covariance_type = covariance_type
        self.reg_covar = float(reg_covar)
        n, D = X.shape
        self.n_features = D
        w = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        self.weight_sum = float(n if w is None else w.sum())
        self.center = (X.mean(axis=0) if w is None else w @ X / self.weight_sum)
        U = X - self.center
        if covariance_type in ("full", "tied"):
            rows, cols = np.triu_indices(D)
            self._pairs = (rows, cols)
            self._twice = np.where(rows == cols, 1.0, 2.0)
            quad = U[:, rows] * U[:, cols]
        elif covariance_type == "diag":
            quad = U * U
        else:
            quad = np.einsum("nd,nd->n", U, U)[:, None]
        self.Q = np.ascontiguousarray(np.hstack([np.ones((n, 1)), U, quad]))
        self.Qw = self.Q if w is None else np.ascontiguousarray(self.Q * w[:, None])
        self.w = w

    # ------------------------------------------------------------------ E-step
    def coefficients(self, batch: Batch):
        """(S, K, F) coefficients of the log-densities, and a mask of invalid mixtures.

        A mixture is invalid when a covariance is not positive definite or a weight is
        negative or not finite (after an extrapolation).
        """
        t, D = self.covariance_type, self.n_features
        w, m, cov = batch.weights, batch.means - self.center, batch.covariances
        S, K = w.shape
        bad = ~np.all(np.isfinite(w) & (w >= 0), axis=1)
        bad |= ~np.all(np.isfinite(m.reshape(S, -1)), axis=1)
        if t in ("full", "tied"):
            cov_ok = np.where(np.isfinite(cov), cov, 0.0)
            chol, bad_chol = _batched_cholesky(cov_ok)
            bad |= bad_chol if t == "tied" else np.any(bad_chol.reshape(S, K), axis=1)
            # P = L^-T L^-1 from the Cholesky factor of the covariance
            inv_l = np.linalg.inv(chol)
            prec = np.swapaxes(inv_l, -1, -2) @ inv_l
            logdet = 2.0 * np.sum(np.log(np.diagonal(chol, axis1=-2, axis2=-1)), axis=-1)
            if t == "tied":
                prec = np.broadcast_to(prec[:, None], (S, K, D, D))
                logdet = np.broadcast_to(logdet[:, None], (S, K))
            rows, cols = self._pairs
            quad = -0.5 * prec[:, :, rows, cols] * self._twice
            lin = np.einsum("skde,ske->skd", prec, m)
        else:
            positive = np.where(cov > 0, cov, 1.0)
            bad |= ~np.all((cov > 0) & np.isfinite(cov), axis=tuple(range(1, cov.ndim)))
            prec = 1.0 / positive
            if t == "diag":
                logdet = np.sum(np.log(positive), axis=-1)
                quad, lin = -0.5 * prec, prec * m
            else:
                logdet = D * np.log(positive)
                quad, lin = -0.5 * prec[..., None], prec[..., None] * m
        with np.errstate(divide="ignore"):
            log_w = np.log(np.where(w > 0, w, 0.0))
        const = log_w - 0.5 * D * _LOG_2PI - 0.5 * logdet - 0.5 * np.sum(lin * m, axis=-1)
        coef = np.concatenate([const[..., None], lin, quad], axis=-1)
        coef[bad] = 0.0
        return coef, bad

    def e_step(self, batch: Batch):
        """(G (S, K, F), log-likelihood (S,), invalid mask): ``G = sum_n w_n r_nk q(u_n)``."""
        coef, bad = self.coefficients(batch)
        S, K, F = coef.shape
        n = self.Q.shape[0]
        lp = (self.Q @ coef.reshape(S * K, F).T).reshape(n, S, K)
        top = lp.max(axis=2, keepdims=True)
        top[~np.isfinite(top)] = 0.0
        lp -= top
        np.maximum(lp, -700.0, out=lp)  # see stats._exp_clipped
        np.exp(lp, out=lp)
        total = lp.sum(axis=2, keepdims=True)
        lp /= total
        log_norm = np.log(total[..., 0]) + top[..., 0]
        ll = log_norm.sum(axis=0) if self.w is None else self.w @ log_norm
        G = (self.Qw.T @ lp.reshape(n, S * K)).T.reshape(S, K, F)
        ll[bad] = -np.inf
        return G, ll, bad

    def responsibilities(self, batch: Batch) -> np.ndarray:
        """(n, K) responsibilities of a batch of one."""
        coef, _ = self.coefficients(batch)
        lp = self.Q @ coef[0].T
        lp -= lp.max(axis=1, keepdims=True)
        np.exp(lp, out=lp)
        lp /= lp.sum(axis=1, keepdims=True)
        return lp

    # ------------------------------------------------------------------ M-step
    def m_step(self, G, *, shrink: float = 0.0) -> Batch:
        """New parameters from the feature sums (:func:`gaussmix.stats.m_step`'s formulas).

        ``shrink > 0`` (starts only) moves each covariance towards the pooled
        within-component covariance with the weight of ``shrink`` pseudo-points:
        ``(N_k Sigma_k + m Sigma_pooled) / (N_k + m)`` (tied: unchanged).
        """
        t, D, reg = self.covariance_type, self.n_features, self.reg_covar
        nk_exact = G[..., 0]
        nk = nk_exact + 10 * np.finfo(np.float64).eps
        s1 = G[..., 1 : D + 1]
        quad = G[..., D + 1 :]
        d = s1 / np.where(nk_exact > 0, nk_exact, 1.0)[..., None]
        means = self.center + s1 / nk[..., None]
        if t in ("full", "tied"):
            rows, cols = self._pairs
            S, K = nk.shape
            s2 = np.empty((S, K, D, D))
            s2[:, :, rows, cols] = quad
            s2[:, :, cols, rows] = quad
            scatter = s2 - s1[..., :, None] * d[..., None, :]
            if t == "full":
                cov = scatter / nk[..., None, None]
                if shrink:
                    pooled = scatter.sum(axis=1) / nk.sum(axis=1)[:, None, None]
                    cov = (scatter + shrink * pooled[:, None]) / (nk + shrink)[..., None, None]
            else:
                cov = scatter.sum(axis=1) / nk.sum(axis=1)[:, None, None]
            cov = 0.5 * (cov + np.swapaxes(cov, -1, -2))
            idx = np.arange(D)
            cov[..., idx, idx] += reg
        elif t == "diag":
            scatter = quad - s1 * d
            cov = scatter / nk[..., None]
            if shrink:
                pooled = scatter.sum(axis=1) / nk.sum(axis=1)[:, None]
                cov = (scatter + shrink * pooled[:, None]) / (nk + shrink)[..., None]
            cov = cov + reg
        else:
            scatter = quad[..., 0] - np.sum(s1 * d, axis=-1)
            cov = scatter / (nk * D)
            if shrink:
                # the per-feature variances shrunk, then averaged over the features
                pooled = scatter.sum(axis=1) / (nk.sum(axis=1) * D)
                cov = (scatter / D + shrink * pooled[:, None]) / (nk + shrink)
            cov = cov + reg
        weights = nk / nk.sum(axis=1, keepdims=True)
        return Batch(t, weights, means, cov)

    def accurate(self, G, batch: Batch) -> np.ndarray:
        """(S,) whether every component's moments kept float64's accuracy (see module doc)."""
        D = self.n_features
        nk = G[..., 0]
        t = self.covariance_type
        if t in ("full", "tied"):
            rows, cols = self._pairs
            diag = G[..., D + 1 :][..., rows == cols]
            cov = batch.covariances
            var = np.diagonal(cov, axis1=-2, axis2=-1)
            if t == "tied":
                var = var[:, None]
        elif t == "diag":
            diag, var = G[..., D + 1 :], batch.covariances
        else:
            diag, var = G[..., D + 1 :], D * batch.covariances[..., None]
        with np.errstate(divide="ignore", invalid="ignore"):
            factor = (diag / np.where(nk > 0, nk, 1.0)[..., None]) / var
        factor = np.where(nk[..., None] > 0, factor, 0.0)
        return np.all(factor <= _CANCELLATION, axis=(1, 2))

    def step(self, batch: Batch):
        """One EM iteration of every mixture: (new batch, log-likelihood of ``batch``, bad).

        Mixtures whose moments would lose accuracy take the general path
        (:func:`gaussmix.stats.block_statistics` and :func:`gaussmix.stats.m_step`).
        """
        G, ll, bad = self.e_step(batch)
        new = self.m_step(G)
        ok = self.accurate(G, batch) | bad
        for s in np.flatnonzero(~ok):
            try:
                params = batch.member(int(s))
                stats = _stats.block_statistics(self.X, params, self.sample_weight)
                fresh = Batch.of(_stats.m_step(stats, reg_covar=self.reg_covar))
            except ValueError:
                bad[s] = True
                ll[s] = -np.inf
                continue
            new.weights[s], new.means[s] = fresh.weights[0], fresh.means[0]
            new.covariances[s] = fresh.covariances[0]
            ll[s] = stats.log_likelihood
        return new, ll, bad

    # ------------------------------------------------------------------ starts
    def from_responsibilities(self, resp, *, shrink: float = 0.0) -> Batch:
        """Parameters from responsibilities (n, S, K), through the statistics and M-step."""
        n, S, K = resp.shape
        G = (self.Qw.T @ resp.reshape(n, S * K)).T.reshape(S, K, -1)
        return self.m_step(G, shrink=shrink)

    def from_labels(self, labels: list[np.ndarray], K: int, *, shrink: float = 0.0) -> Batch:
        """Parameters from hard partitions (each of n labels in 0..K-1)."""
        n = self.Q.shape[0]
        resp = np.zeros((n, len(labels), K))
        rows = np.arange(n)
        for s, lab in enumerate(labels):
            resp[rows, s, lab] = 1.0
        return self.from_responsibilities(resp, shrink=shrink)

    # ------------------------------------------------------------------ degeneracy
    def degeneracy(self, batch: Batch, resp_of=None) -> list[str | None]:
        """:func:`gaussmix._degeneracy.degeneracy_reason` of every mixture, as a fitted model.

        A vectorised bound settles the clear cases: every component carries its minimum
        number of points and every variance (smallest eigenvalue) exceeds the
        regularisation floor of :func:`degeneracy_reason` computed with the largest
        ``|mu_k|^2`` and the trace of the mixture's covariance, which bound the terms it
        uses. The other mixtures (and spherical ones on data with repeated values, whose
        third sign needs the data) get the full check.
        """
        t, D, reg = self.covariance_type, self.n_features, self.reg_covar
        S, _K = batch.weights.shape
        nk = self.weight_sum * batch.weights
        clear = np.all(nk >= min_component_points(t, D), axis=1)
        cov = batch.covariances
        if t in ("full", "tied"):
            low = np.linalg.eigvalsh(cov)[..., 0].reshape(S, -1).min(axis=1)
            trace_within = np.trace(cov, axis1=-2, axis2=-1)
            if t == "full":
                trace_within = np.sum(batch.weights * trace_within, axis=1)
        elif t == "diag":
            low = cov.min(axis=(1, 2))
            trace_within = np.sum(batch.weights * cov.sum(axis=2), axis=1)
        else:
            low = cov.min(axis=1)
            trace_within = D * np.sum(batch.weights * cov, axis=1)
        centre = np.einsum("sk,skd->sd", batch.weights, batch.means)
        spread = np.einsum("sk,sk->s", batch.weights,
                           np.sum((batch.means - centre[:, None]) ** 2, axis=2))
        mean_sq = np.max(np.sum(batch.means**2, axis=2), axis=1)
        eps = np.finfo(np.float64).eps
        floor = np.maximum(REG_FRACTION * reg, RESOLUTION * eps * (mean_sq + trace_within + spread))
        clear &= low - reg > 2.0 * floor
        if t == "spherical" and self._repeated_values():
            clear[:] = False
        out: list[str | None] = [None] * S
        for s in np.flatnonzero(~clear):
            resp = None
            if t == "spherical" and self._repeated_values():
                resp = self.responsibilities(batch.take([s]))
            out[s] = degeneracy_reason(
                batch.weights[s], batch.means[s], batch.covariances[s], t,
                self.weight_sum, None, reg,
                X=self.X if resp is not None else None, resp=resp,
                sample_weight=self.sample_weight,
            )
        return out

    def _repeated_values(self) -> bool:
        if not hasattr(self, "_repeated"):
            sample = self.X[:: max(1, self.X.shape[0] // 5000)]
            self._repeated = any(len(np.unique(c)) < len(c) for c in sample.T)
        return self._repeated


def _batched_cholesky(cov):
    """Cholesky factors of a stack of matrices, and a mask of the ones that have none."""
    flat = cov.reshape(-1, *cov.shape[-2:])
    try:
        chol = np.linalg.cholesky(flat)
        bad = np.zeros(flat.shape[0], dtype=bool)
    except np.linalg.LinAlgError:
        chol = np.empty_like(flat)
        bad = np.zeros(flat.shape[0], dtype=bool)
        eye = np.eye(flat.shape[-1])
        for i, c in enumerate(flat):
            try:
                chol[i] = np.linalg.cholesky(c)
            except np.linalg.LinAlgError:
                chol[i] = eye
                bad[i] = True
    return chol.reshape(cov.shape), bad.reshape(cov.shape[:-2])
