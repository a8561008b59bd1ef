"""EM on rows held in memory, for many mixtures at once (model selection's lean path).

Model selection runs EM from a dozen starts for every grid point, on data that are often
small (hundreds of rows), where the general engine (:func:`gaussmix.stats.block_statistics`
and :func:`gaussmix.stats.m_step`) spends most of its time in Python rather than in
arithmetic. This module is the lean path for that case. The rows are turned once into
their quadratic features about the data mean ``c`` (``q(u) = (1, u, u_i u_j)`` with
``u = x - c``; only ``u_i^2`` when every mixture is diag or spherical, only ``|u|^2`` when
every one is spherical), so that for ``S`` mixtures of ``K`` components, of any mix of
covariance types,

* the E-step is one product ``Q @ coef.T`` of the (n, F) features with the (S K, F)
  coefficients of every log-density, a log-sum-exp over each mixture's K columns, and one
  product ``Q^T @ resp`` giving every component's ``(N_k, s1_k, s2_k)`` about ``c``;
* the M-step is :func:`gaussmix.stats.m_step`'s formulas on arrays with a leading mixture
  axis: the scatter ``s2_k - s1_k d_k^T`` about the new mean, divided by ``N_k``, then
  kept whole (full), pooled over the components (tied), reduced to its diagonal (diag)
  or to the mean of its diagonal (spherical).

Every covariance is stored as a (D, D) matrix (diagonal for diag and spherical, the same
for every component for tied), so that mixtures of different types share every call.
The results equal the general path's to rounding (``tests/test_batch.py``). The accuracy
guard is the general path's: the variances lose a factor ``E_k[u_i^2] / Var_k[u_i]`` of
relative precision, which must stay below 1e8; a mixture for which it does not takes that
step through the general path.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import stats as _stats
from ._degeneracy import REG_FRACTION, RESOLUTION, degeneracy_reason, min_component_points

_LOG_2PI = float(np.log(2.0 * np.pi))
_CANCELLATION = 1e8  # as stats._QUADRATIC_CANCELLATION for float64
#: Covariance types by code (the ``types`` array of a Batch).
TYPES = ("spherical", "diag", "tied", "full")
SPHERICAL, DIAG, TIED, FULL = range(4)


@dataclass
class Batch:
    """Parameters of S mixtures of K components (leading axis: the mixture).

    Attributes
    ----------
    types : ndarray of shape (S,)
        Covariance type of each mixture, as an index into :data:`TYPES`.
    weights : ndarray of shape (S, K)
    means : ndarray of shape (S, K, D)
    covariances : ndarray of shape (S, K, D, D)
    """

    types: np.ndarray
    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray

    @property
    def size(self) -> int:
        return self.weights.shape[0]

    def take(self, index) -> Batch:
        """The mixtures at ``index`` (an int array or a boolean mask), copied."""
        return Batch(
            self.types[index], self.weights[index], self.means[index], self.covariances[index]
        )

    def copy(self) -> Batch:
        return Batch(
            self.types.copy(), self.weights.copy(), self.means.copy(), self.covariances.copy()
        )

    def put(self, index, source: Batch) -> Batch:
        """A copy with the mixtures at ``index`` replaced by ``source``'s."""
        out = self.copy()
        out.weights[index] = source.weights
        out.means[index] = source.means
        out.covariances[index] = source.covariances
        return out

    def covariance_type(self, s: int) -> str:
        return TYPES[int(self.types[s])]

    def covariances_of(self, s: int) -> np.ndarray:
        """Covariances of mixture ``s`` in its type's shape (as ``covariances_``)."""
        cov = self.covariances[s]
        t = int(self.types[s])
        if t == FULL:
            return cov.copy()
        if t == TIED:
            return cov[0].copy()
        diag = np.diagonal(cov, axis1=-2, axis2=-1)
        return diag.copy() if t == DIAG else diag.mean(axis=1)

    def member(self, s: int) -> _stats.MixtureParameters:
        """Mixture ``s`` as :class:`~gaussmix.stats.MixtureParameters` (float64)."""
        return _stats.MixtureParameters.from_covariances(
            self.covariance_type(s), self.weights[s].copy(), self.means[s].copy(),
            self.covariances_of(s),
        )

    @classmethod
    def stack(cls, members: list[Batch]) -> Batch:
        return cls(*(np.concatenate([getattr(m, a) for m in members])
                     for a in ("types", "weights", "means", "covariances")))

    @classmethod
    def from_family(cls, covariance_type, weights, means, covariances) -> Batch:
        """A batch of one from parameters in their type's shapes."""
        weights = np.asarray(weights, dtype=np.float64)
        means = np.asarray(means, dtype=np.float64)
        cov = np.asarray(covariances, dtype=np.float64)
        K, D = means.shape
        if covariance_type == "full":
            full = cov.copy()
        elif covariance_type == "tied":
            full = np.broadcast_to(cov, (K, D, D)).copy()
        else:
            diag = cov if covariance_type == "diag" else np.repeat(cov[:, None], D, axis=1)
            full = diag[:, :, None] * np.eye(D)
        return cls(np.array([TYPES.index(covariance_type)]), weights[None], means[None],
                   full[None])

    @classmethod
    def of(cls, params: _stats.MixtureParameters) -> Batch:
        """A batch of one from :class:`~gaussmix.stats.MixtureParameters`."""
        return cls.from_family(params.covariance_type, params.weights, params.means,
                               params.covariances)

    def vector(self) -> np.ndarray:
        """(S, P): every mixture's parameters as one row (for extrapolation)."""
        S = self.size
        return np.concatenate(
            [self.weights, self.means.reshape(S, -1), self.covariances.reshape(S, -1)], axis=1
        )

    def with_vector(self, vec: np.ndarray) -> Batch:
        K = self.weights.shape[1]
        KD = self.means[0].size
        return Batch(
            self.types.copy(),
            vec[:, :K].copy(),
            vec[:, K : K + KD].reshape(self.means.shape).copy(),
            vec[:, K + KD :].reshape(self.covariances.shape).copy(),
        )


def features_for(covariance_types) -> str:
    """The smallest feature set serving every type: "full", "diag" or "spherical"."""
    types = set(covariance_types)
    if types & {"full", "tied"}:
        return "full"
    return "diag" if "diag" in types else "spherical"


class Rows:
    """Rows in memory, as quadratic features (see the module documentation).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    sample_weight : ndarray of shape (n_samples,) or None
    reg_covar : float
    features : {"full", "diag", "spherical"}
        Which quadratic terms to hold: every product (any covariance type), the squares
        (diag and spherical mixtures only) or the squared norm (spherical only).
    """

    def __init__(self, X, sample_weight, reg_covar, features="full"):
        X = np.asarray(X, dtype=np.float64)
        self.X = X
        self.sample_weight = sample_weight
        self.reg_covar = float(reg_covar)
        self.features = features
        n, D = X.shape
        self.n_features = D
        w = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        self.w = w
        self.weight_sum = float(n if w is None else w.sum())
        self.center = X.mean(axis=0) if w is None else w @ X / self.weight_sum
        U = X - self.center
        self._diag = np.arange(D)
        self._eye = np.eye(D)
        if features == "full":
            rows, cols = np.triu_indices(D)
            self._pairs = (rows, cols)
            self._twice = np.where(rows == cols, 1.0, 2.0)
            self._on_diagonal = np.flatnonzero(rows == cols)
            # flat (D * D) positions of the upper triangle, and of every entry in it
            self._upper_flat = rows * D + cols
            position = np.empty((D, D), dtype=np.intp)
            position[rows, cols] = np.arange(rows.size)
            position[cols, rows] = np.arange(rows.size)
            self._symmetric = position.ravel()
            quad = U[:, rows] * U[:, cols]
        elif features == "diag":
            quad = U * U
        else:
            quad = np.einsum("nd,nd->n", U, U)[:, None]
        self.Q = np.ascontiguousarray(np.hstack([np.ones((n, 1)), U, quad]))
        self.QT = np.ascontiguousarray(self.Q.T)
        self.Qw = self.Q if w is None else np.ascontiguousarray(self.Q * w[:, None])

    # ------------------------------------------------------------------ E-step
    def coefficients(self, batch: Batch):
        """(S, K, F) coefficients of the log-densities, and a mask of invalid mixtures.

        A mixture is invalid when a covariance is not positive definite or a weight is
        negative (after an extrapolation); non-finite values show in the log-likelihood.
        """
        D = self.n_features
        w, cov = batch.weights, batch.covariances
        m = batch.means - self.center
        chol, bad_chol = _batched_cholesky(cov)
        bad = np.any(bad_chol, axis=1) | ~(w.min(axis=1) >= 0)
        # (the factors of matrices without one are the identity: see _batched_cholesky)
        prec = np.linalg.inv(chol @ np.swapaxes(chol, -1, -2)) if bad.any() else (
            np.linalg.inv(cov)
        )
        logdet = 2.0 * np.sum(np.log(np.diagonal(chol, axis1=-2, axis2=-1)), axis=-1)
        S, K = w.shape
        if self.features == "full":
            quad = -0.5 * prec.reshape(S, K, D * D)[..., self._upper_flat] * self._twice
        else:
            quad = -0.5 * np.diagonal(prec, axis1=-2, axis2=-1)
            if self.features == "spherical":
                quad = quad[..., :1]
        lin = np.einsum("skde,ske->skd", prec, m)
        # log of a zero weight: -690 (exp() of it is 0 next to any other component)
        const = np.log(np.maximum(w, 1e-300)) - 0.5 * (
            D * _LOG_2PI + logdet + np.sum(lin * m, axis=-1)
        )
        coef = np.concatenate([const[..., None], lin, quad], axis=-1)
        if bad.any():
            coef[bad] = 0.0
        return coef, bad

    def e_step(self, batch: Batch):
        """(G (S, K, F), log-likelihood (S,), invalid mask): ``G = sum_n w_n r_nk q(u_n)``.

        Component-major layout, (S, K, n): the reductions over the K components run over
        contiguous rows of n values.
        """
        coef, bad = self.coefficients(batch)
        S, K, F = coef.shape
        n = self.QT.shape[1]
        lp = (coef.reshape(S * K, F) @ self.QT).reshape(S, K, n)
        top = lp.max(axis=1)  # finite: the coefficients are (bad mixtures: zeroed)
        lp -= top[:, None]
        np.maximum(lp, -700.0, out=lp)  # see stats._exp_clipped
        np.exp(lp, out=lp)
        total = lp.sum(axis=1)
        lp /= total[:, None]
        log_norm = np.log(total)
        log_norm += top
        ll = log_norm.sum(axis=1) if self.w is None else log_norm @ self.w
        G = (lp.reshape(S * K, n) @ self.Qw).reshape(S, K, F)
        bad |= ~np.isfinite(ll)
        ll[bad] = -np.inf
        return G, ll, bad

    def responsibilities(self, batch: Batch) -> np.ndarray:
        """(n, K) responsibilities of the first mixture of a batch."""
        coef, _ = self.coefficients(batch.take([0]))
        lp = self.Q @ coef[0].T
        lp -= lp.max(axis=1, keepdims=True)
        np.exp(lp, out=lp)
        lp /= lp.sum(axis=1, keepdims=True)
        return lp

    # ------------------------------------------------------------------ M-step
    def m_step(self, G, types, *, shrink: float = 0.0) -> Batch:
        """New parameters from the feature sums (:func:`gaussmix.stats.m_step`'s formulas).

        ``shrink > 0`` (starts only) moves each covariance towards the pooled
        within-component covariance with the weight of ``shrink`` pseudo-points,
        ``(N_k Sigma_k + m Sigma_pooled) / (N_k + m)``, before it is reduced to its type
        (tied: the pooled covariance itself).
        """
        D, reg = self.n_features, self.reg_covar
        nk_exact = G[..., 0]
        nk = nk_exact + 10 * np.finfo(np.float64).eps
        S, K = nk.shape
        s1 = G[..., 1 : D + 1]
        quad = G[..., D + 1 :]
        d = s1 / np.where(nk_exact > 0, nk_exact, 1.0)[..., None]
        means = self.center + s1 / nk[..., None]
        if self.features == "full":
            s2 = quad[..., self._symmetric].reshape(S, K, D, D)
            scatter = s2 - s1[..., :, None] * d[..., None, :]
        else:
            sq = quad if self.features == "diag" else quad / D + np.zeros(D)
            scatter = np.zeros((S, K, D, D))
            _diagonal_view(scatter)[...] = sq - s1 * d
        if shrink:
            pooled = scatter.sum(axis=1) / nk.sum(axis=1)[:, None, None]
            cov = (scatter + shrink * pooled[:, None]) / (nk + shrink)[..., None, None]
        else:
            cov = scatter / nk[..., None, None]
        tied = types == TIED
        if tied.any():
            pooled = scatter[tied].sum(axis=1) / nk[tied].sum(axis=1)[:, None, None]
            cov[tied] = pooled[:, None]
        diagonal = types <= DIAG
        if diagonal.any():
            var = np.diagonal(cov[diagonal], axis1=-2, axis2=-1)
            spherical = types[diagonal] == SPHERICAL
            if spherical.any():
                var = var.copy()
                var[spherical] = var[spherical].mean(axis=-1, keepdims=True)
            cov[diagonal] = var[..., None] * self._eye
        else:
            cov = 0.5 * (cov + np.swapaxes(cov, -1, -2))
        _diagonal_view(cov)[...] += reg
        weights = nk / nk.sum(axis=1, keepdims=True)
        return Batch(types, weights, means, cov)

    def accurate(self, G, batch: Batch) -> np.ndarray:
        """(S,) whether every component's moments kept float64's accuracy (see module doc)."""
        D = self.n_features
        nk = G[..., 0]
        quad = G[..., D + 1 :]
        if self.features == "full":
            second = quad[..., self._on_diagonal]
        elif self.features == "diag":
            second = quad
        else:
            second = quad / D
        var = np.diagonal(batch.covariances, axis1=-2, axis2=-1)
        with np.errstate(divide="ignore", invalid="ignore"):
            factor = second / (np.where(nk > 0, nk, 1.0)[..., None] * var)
        return ~np.any(factor > _CANCELLATION, axis=(1, 2))

    def step(self, batch: Batch):
        """One EM iteration of every mixture: (new batch, log-likelihood of ``batch``, bad).

        Mixtures whose moments would lose accuracy take the general path
        (:func:`gaussmix.stats.block_statistics` and :func:`gaussmix.stats.m_step`).
        """
        G, ll, bad = self.e_step(batch)
        new = self.m_step(G, batch.types)
        ok = self.accurate(G, batch) | bad
        if not ok.all():
            for s in np.flatnonzero(~ok):
                try:
                    params = batch.member(int(s))
                    stats = _stats.block_statistics(self.X, params, self.sample_weight)
                    fresh = Batch.of(_stats.m_step(stats, reg_covar=self.reg_covar))
                except ValueError:
                    bad[s] = True
                    ll[s] = -np.inf
                    continue
                new = new.put([s], fresh)
                ll[s] = stats.log_likelihood
        return new, ll, bad

    # ------------------------------------------------------------------ starts
    def from_labels(self, labels: list[np.ndarray], K: int, types, *, shrink=0.0) -> Batch:
        """Parameters of every type in ``types`` from every hard partition (labels 0..K-1).

        The statistics of the one-hot responsibilities, then the M-step: mixture
        ``i * len(labels) + j`` has type ``types[i]`` and partition ``j``.
        """
        n = self.Q.shape[0]
        P = len(labels)
        resp = np.zeros((n, P, K))
        rows = np.arange(n)
        for j, lab in enumerate(labels):
            resp[rows, j, lab] = 1.0
        G = (self.Qw.T @ resp.reshape(n, P * K)).T.reshape(P, K, -1)
        codes = np.repeat([TYPES.index(t) for t in types], P)
        return self.m_step(np.tile(G, (len(types), 1, 1)), codes, shrink=shrink)

    # ------------------------------------------------------------------ degeneracy
    def degeneracy(self, batch: Batch) -> list[str | None]:
        """:func:`gaussmix._degeneracy.degeneracy_reason` of every mixture, as a fitted model.

        A vectorised bound settles the clear cases: every component carries its minimum
        number of points and every variance (smallest eigenvalue) exceeds twice the
        regularisation floor of :func:`degeneracy_reason` computed with the largest
        ``|mu_k|^2`` and the trace of the mixture's covariance, which bound the terms it
        uses. The other mixtures (and spherical ones on data with repeated values, whose
        third sign needs the data) get the full check.
        """
        D, reg = self.n_features, self.reg_covar
        S = batch.size
        nk = self.weight_sum * batch.weights
        min_points = np.array([min_component_points(t, D) for t in TYPES])[batch.types]
        clear = np.all(nk >= min_points[:, None], axis=1)
        cov = batch.covariances
        low = np.linalg.eigvalsh(cov)[..., 0].min(axis=1)
        within = np.sum(batch.weights * np.trace(cov, axis1=-2, axis2=-1), axis=1)
        centre = np.einsum("sk,skd->sd", batch.weights, batch.means)
        spread = np.einsum("sk,sk->s", batch.weights,
                           np.sum((batch.means - centre[:, None]) ** 2, axis=2))
        mean_sq = np.max(np.sum(batch.means**2, axis=2), axis=1)
        eps = np.finfo(np.float64).eps
        floor = np.maximum(REG_FRACTION * reg, RESOLUTION * eps * (mean_sq + within + spread))
        clear &= low - reg > 2.0 * floor
        repeated = self._repeated_values()
        if repeated:
            spherical = np.flatnonzero(batch.types == SPHERICAL)
            if spherical.size:
                clear[spherical] &= self._spread_is_clear(batch.take(spherical), eps, reg)
        out: list[str | None] = [None] * S
        for s in np.flatnonzero(~clear):
            t = batch.covariance_type(s)
            resp = None
            if t == "spherical" and repeated:
                resp = self.responsibilities(batch.take([s]))
            out[s] = degeneracy_reason(
                batch.weights[s], batch.means[s], batch.covariances_of(s), t,
                self.weight_sum, None, reg,
                X=self.X if resp is not None else None, resp=resp,
                sample_weight=self.sample_weight,
            )
        return out

    def _spread_is_clear(self, batch: Batch, eps: float, reg: float) -> np.ndarray:
        """(S,) whether no component's points are flat along a direction (third sign).

        The sign compares the smallest eigenvalue of each component's weighted scatter of
        the data with ``max(REG_FRACTION reg, RESOLUTION eps ((mu_k . v)^2 + v' C v))``,
        ``C`` the data covariance; ``|mu_k|^2`` and ``trace(C)`` bound the terms. The
        scatters come from one E-step (full features only; else nothing is clear).
        """
        if self.features != "full":
            return np.zeros(batch.size, dtype=bool)
        D = self.n_features
        G, _, bad = self.e_step(batch)
        nk = G[..., 0]
        s1 = G[..., 1 : D + 1]
        rows, cols = self._pairs
        s2 = np.empty((*nk.shape, D, D))
        s2[..., rows, cols] = G[..., D + 1 :]
        s2[..., cols, rows] = G[..., D + 1 :]
        safe = np.where(nk > 0, nk, 1.0)
        d = s1 / safe[..., None]
        scatter = (s2 - s1[..., :, None] * d[..., None, :]) / safe[..., None, None]
        low = np.linalg.eigvalsh(scatter)[..., 0]
        if not hasattr(self, "_data_trace"):
            U = self.QT[1 : D + 1]
            second = self.Qw[:, 1 : D + 1]
            self._data_trace = float(np.sum(U.T * second) / self.weight_sum)
        mean_sq = np.sum(batch.means**2, axis=2)
        floor = np.maximum(REG_FRACTION * reg, RESOLUTION * eps * (mean_sq + self._data_trace))
        return ~bad & np.all((low > 2.0 * floor) | (nk <= 0), axis=1)

    def _repeated_values(self) -> bool:
        if not hasattr(self, "_repeated"):
            sample = self.X[:: max(1, self.X.shape[0] // 5000)]
            self._repeated = any(len(np.unique(c)) < len(c) for c in sample.T)
        return self._repeated


def _diagonal_view(a):
    """A writeable view of the diagonals of a stack of (D, D) matrices (basic slicing when
    the stack is C-contiguous, else the strided view ``np.einsum`` returns)."""
    D = a.shape[-1]
    if a.flags.c_contiguous:
        return a.reshape(*a.shape[:-2], D * D)[..., :: D + 1]
    return np.einsum("...ii->...i", a)


def _batched_cholesky(cov):
    """Cholesky factors of a stack of matrices, and a mask of the ones that have none."""
    try:
        return np.linalg.cholesky(cov), np.zeros(cov.shape[:-2], dtype=bool)
    except np.linalg.LinAlgError:
        pass
    flat = cov.reshape(-1, *cov.shape[-2:])
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
