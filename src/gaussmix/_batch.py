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

from . import families as _families
from . import stats as _stats
from ._degeneracy import (
    OUTLIER_POINTS,
    REG_FRACTION,
    RESOLUTION,
    degeneracy_reason,
    min_component_points,
)
from .families._batched import diagonal_view as _diagonal_view

_LOG_2PI = float(np.log(2.0 * np.pi))
_EPS = float(np.finfo(np.float64).eps)
_CANCELLATION = 1e8  # as stats._QUADRATIC_CANCELLATION for float64
#: The E-step's row blocks: about this many log-densities (1 MiB) per block, and at
#: least this many rows (Rows.e_step).
_E_BLOCK_VALUES = 2**17
_E_BLOCK_MIN_ROWS = 128
#: The E-step factors stacks of at least _SMALL_STACK * D covariances of at most _SMALL_D
#: features entry by entry over the stack (_small_spd): one NumPy operation on the whole
#: stack per entry, fewer than LAPACK's per-matrix calls cost there (measured: even at
#: about 80 matrices for D = 2, 150 for D = 4; 3 times faster at 600).
_SMALL_D = 4
_SMALL_STACK = 40
#: Rows.degeneracy(defer=True)'s verdict for a mixture certainly degenerate, its reason
#: not yet put into words.
DEFERRED = "degenerate (its reason is put into words when reported)"
#: Rows.degeneracy's verdict for a mixture with a parameter not finite (a failed update).
NOT_FINITE = ("its parameters are not finite: an update failed (a component without spread, "
              "for example)")
#: Covariance types by code (the ``types`` array of a Batch): scikit-learn's four first
#: (codes 0 to 3), then mclust's ten other models in mclust's order (codes 4 to 13).
_SKLEARN = ("spherical", "diag", "tied", "full")
TYPES = (*_SKLEARN, *(_families.get(m).name for m in _families.MCLUST_MODELS
                      if _families.get(m).name not in _SKLEARN))
SPHERICAL, DIAG, TIED, FULL = range(4)
#: The family of each code. Those of the codes 4 to 13 take their M-step and their
#: projection from the family (``batched_covariances``, ``batched_projection``).
_FAMILIES = tuple(_families.get(t) for t in TYPES)


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
        return _storage(int(self.types[s]), self.covariances[s])

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
        family = _families.get(covariance_type)
        full = np.array(family.full_covariances(cov, K, D), dtype=np.float64)
        return cls(np.array([TYPES.index(family.name)]), weights[None], means[None],
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
    forms = {_families.get(t).precision_form for t in covariance_types}
    if forms & {"full", "shared_full"}:
        return "full"
    return "diag" if "diagonal" in forms else "spherical"


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
    pool : concurrent.futures.Executor or None
        Threads for the E-steps that take the rows in several blocks: each block's sums
        are computed in a thread, and added in the blocks' order, as without (the same
        bits). The caller holds the BLAS to one thread (NumPy's kernels release the GIL).
    """

    def __init__(self, X, sample_weight, reg_covar, features="full", pool=None):
        X = np.asarray(X, dtype=np.float64)
        self.pool = pool
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
        self._eye = np.eye(D)
        # coefficients(): the quadratic coefficients of every component, -1/2 P_ij (twice
        # off the diagonal), as one product of the flattened precisions with this map
        if features == "full":
            rows, cols = np.triu_indices(D)
            self._pairs = (rows, cols)
            self._on_diagonal = np.flatnonzero(rows == cols)
            position = np.empty((D, D), dtype=np.intp)
            position[rows, cols] = np.arange(rows.size)
            position[cols, rows] = np.arange(rows.size)
            self._symmetric = position.ravel()
            quad = U[:, rows] * U[:, cols]
            self._quad_map = np.zeros((D * D, rows.size))
            self._quad_map[rows * D + cols, np.arange(rows.size)] = np.where(
                rows == cols, -0.5, -1.0)
        elif features == "diag":
            quad = U * U
            self._quad_map = np.zeros((D * D, D))
            self._quad_map[np.arange(D) * (D + 1), np.arange(D)] = -0.5
        else:
            quad = np.einsum("nd,nd->n", U, U)[:, None]
            self._quad_map = np.zeros((D * D, 1))
            self._quad_map[0, 0] = -0.5
        # accurate(): variances at least this are far from losing precision (2 max u_i^2 /
        # _CANCELLATION per feature; spherical features: the squared norm's, over D)
        top = (U * U).max(axis=0, initial=0.0) if features != "spherical" else np.full(
            D, quad.max(initial=0.0) / D)
        self._accuracy_floor = 2.0 * top / _CANCELLATION
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
        bad = ~(np.minimum.reduce(w, axis=1) >= 0)
        singular = None
        if D <= _SMALL_D and cov.shape[0] * cov.shape[1] >= _SMALL_STACK * D:
            prec, logdet, factored = _small_spd(cov)
            any_bad = not factored.all()
            if any_bad:
                bad |= ~factored.all(axis=1)
                prec[~factored] = self._eye
            any_bad |= bool(bad.any())
        else:
            chol, bad_chol = _batched_cholesky(cov)
            if bad_chol is not None:
                bad |= bad_chol.any(axis=1)
            any_bad = bool(np.logical_or.reduce(bad))
            # (the factors of matrices without one are the identity: see _batched_cholesky)
            prec, singular = _inverses(chol @ np.swapaxes(chol, -1, -2) if any_bad else cov)
            # LAPACK's inverse of an ill-conditioned matrix is not symmetric (relative
            # differences up to its condition number times eps); the coefficients below
            # take each pair's product once, so an asymmetry would be multiplied by
            # u_i u_j: 1e-7 x 1e9 on rows far from the centre (a far row pulls it away).
            # Its symmetric part gives the quadratic form that the inverse itself gives.
            prec = prec + np.swapaxes(prec, -1, -2)
            prec *= 0.5
            if singular is not None:  # factored, yet singular to working precision (1e12 apart)
                bad |= np.any(singular, axis=1)
            logdet = 2.0 * np.add.reduce(np.log(_diagonal_view(chol)), axis=-1)
        S, K = w.shape
        coef = np.empty((S, K, 1 + D + self._quad_map.shape[1]))
        # (const, P m, -1/2 P_ij) of every component, the last two written in place
        lin = coef[..., 1 : D + 1]
        np.matmul(prec, m[..., None], out=lin[..., None])
        np.matmul(prec.reshape(S, K, D * D), self._quad_map, out=coef[..., D + 1 :])
        # log of a zero weight: -690 (exp() of it is 0 next to any other component)
        coef[..., 0] = np.log(np.maximum(w, 1e-300)) - 0.5 * (
            D * _LOG_2PI + logdet + np.add.reduce(lin * m, axis=-1)
        )
        if any_bad or singular is not None:
            coef[bad] = 0.0
        return coef, bad

    def e_step(self, batch: Batch):
        """(G (S, K, F), log-likelihood (S,), invalid mask): ``G = sum_n w_n r_nk q(u_n)``.

        Component-major layout, (S, K, n): the reductions over the K components run over
        contiguous rows of n values. Many rows are taken in blocks of about
        ``_E_BLOCK_VALUES / (S K)`` rows, so that each block's (S, K, rows) log-densities
        stay in the CPU's cache through their six passes (measured: 30% less time for
        324 mixture-components x 20,000 rows, 25% for 1,800 x 2,000); an even number of
        equal blocks, at most that size, which :attr:`pool`'s threads share (their sums
        are added in the blocks' order: the same bits with or without threads, on any
        number of cores).
        """
        coef, bad = self.coefficients(batch)
        S, K, F = coef.shape
        n = self.QT.shape[1]
        C = coef.reshape(S * K, F)
        block = max(_E_BLOCK_MIN_ROWS, _E_BLOCK_VALUES // (S * K))
        if n > 2 * block:  # (an even number of equal blocks)
            pairs = -(-n // (2 * block))
            block = -(-n // (2 * pairs))
        if n <= 2 * block:  # (small data: one block, no loop)
            G, log_norm = self._e_block(C, S, K, 0, n)
        else:
            G = np.zeros((S * K, F))
            log_norm = np.empty((S, n))
            starts = range(0, n, block)
            errors = np.geterr()  # (a thread starts with NumPy's default error handling)

            def run(start):
                with np.errstate(**errors):
                    return self._e_block(C, S, K, start, min(start + block, n))

            # the blocks over the pool's threads, if any, their sums added in their order
            parts = (map if self.pool is None else self.pool.map)(run, starts)
            for start, (G_part, part_norm) in zip(starts, parts, strict=True):
                log_norm[:, start : start + block] = part_norm
                G += G_part
        ll = np.add.reduce(log_norm, axis=1) if self.w is None else log_norm @ self.w
        G = G.reshape(S, K, F)
        bad |= ~np.isfinite(ll)
        ll[bad] = -np.inf
        return G, ll, bad

    def _e_block(self, C, S, K, start, stop):
        """((S K, F) feature sums, (S, rows) log-normalisers) of the rows start:stop."""
        lp = (C @ self.QT[:, start:stop]).reshape(S, K, stop - start)
        top = np.maximum.reduce(lp, axis=1)  # finite: the coefficients are (bad mixtures: zeroed)
        lp -= top[:, None]
        np.maximum(lp, -700.0, out=lp)  # see stats._exp_clipped
        np.exp(lp, out=lp)
        total = np.add.reduce(lp, axis=1)
        lp *= (1.0 / total)[:, None]  # (one division per row and mixture, not per component)
        log_norm = np.log(total)
        log_norm += top
        return lp.reshape(S * K, stop - start) @ self.Qw[start:stop], log_norm

    def responsibilities(self, batch: Batch) -> np.ndarray:
        """(n, K) responsibilities of the first mixture of a batch."""
        return next(self.responsibilities_each(batch.take([0])))

    def responsibilities_each(self, batch: Batch):
        """Yield the (n, K) responsibilities of each mixture of ``batch`` in turn: those of
        :meth:`responsibilities` of each mixture alone, to the bit (the coefficients of a
        few mixtures at a time, on the path that one mixture takes)."""
        S, K = batch.weights.shape
        D = self.n_features
        size = S
        if D <= _SMALL_D and K < _SMALL_STACK * D:  # (one mixture: LAPACK's factors)
            size = max(1, (_SMALL_STACK * D - 1) // K)
        for start in range(0, S, size):
            part = batch.take(np.arange(start, min(start + size, S)))
            coef, bad = self.coefficients(part)
            if bad.any() and part.size > 1:  # (an invalid one changes the others' path)
                coef = np.concatenate([self.coefficients(part.take([j]))[0]
                                       for j in range(part.size)])
            for c in coef:
                lp = self.Q @ c.T
                lp -= lp.max(axis=1, keepdims=True)
                np.exp(lp, out=lp)
                lp /= lp.sum(axis=1, keepdims=True)
                yield lp

    # ------------------------------------------------------------------ M-step
    def m_step(self, G, types, *, shrink: float = 0.0, previous: Batch | None = None,
               previous_valid: np.ndarray | None = None) -> Batch:
        """New parameters from the feature sums (:func:`gaussmix.stats.m_step`'s formulas).

        ``shrink > 0`` (starts only) moves each covariance towards the pooled
        within-component covariance with the weight of ``shrink`` pseudo-points,
        ``(N_k Sigma_k + m Sigma_pooled) / (N_k + m)``, before it is reduced to its type
        (tied: the pooled covariance itself).

        mclust's other ten models (codes 4 to 13) take their family's constrained update of
        the regularised scatter (its ``batched_covariances``); the iterative ones start
        from ``previous`` (the batch the E-step used), so that the step never lowers the
        expected complete-data log-likelihood. ``previous_valid`` (S,): the mixtures of
        ``previous`` whose covariances the E-step factored (finite, positive definite).
        """
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return self._m_step(G, types, shrink, previous, previous_valid)

    def _m_step(self, G, types, shrink, previous, previous_valid):
        D, reg = self.n_features, self.reg_covar
        nk_exact = G[..., 0]
        nk = nk_exact + 10 * _EPS
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
            within = scatter.sum(axis=1) / nk.sum(axis=1)[:, None, None]
            cov = (scatter + shrink * within[:, None]) / (nk + shrink)[..., None, None]
        else:
            cov = scatter / nk[..., None, None]
        groups = _groups(types)
        diagonal = False
        for code, members in groups:
            if code == TIED:
                pooled = (np.add.reduce(scatter[members], axis=1)
                          / np.add.reduce(nk[members], axis=1)[:, None, None])
                cov[members] = pooled[:, None]
            elif code <= DIAG:
                diagonal = True
                var = _diagonal_view(cov[members])
                if code == SPHERICAL:  # (np.mean's own sum and division, without its Python)
                    var = np.add.reduce(var, axis=-1, keepdims=True) / D
                cov[members] = var[..., None] * self._eye
        if not diagonal:
            cov = 0.5 * (cov + np.swapaxes(cov, -1, -2))
        _diagonal_view(cov)[...] += reg
        if groups[-1][0] > FULL:
            if shrink:
                W = scatter + shrink * within[:, None]
                n_k = nk + shrink
            else:
                W, n_k = scatter, nk
            self._constrained(W, n_k, groups, cov, previous, previous_valid)
        weights = nk / np.add.reduce(nk, axis=1, keepdims=True)
        return Batch(types, weights, means, cov)

    def _constrained(self, W, n_k, groups, cov, previous, previous_valid):
        """The covariances of mclust's other ten models (codes 4 to 13), into ``cov``.

        The regularised scatters (``W_k + reg_covar n_k I``) and their diagonals are
        formed once for all the mixtures, then each family's update
        (``batched_covariances``) takes its own mixtures.
        """
        D, reg = self.n_features, self.reg_covar
        reg_nk = reg * n_k[..., None]
        W_diag = _diagonal_view(W)
        scatters = {}  # statistic -> regularised diagonals (S, K, D) or matrices
        if previous is not None:
            previous = previous.covariances
            if previous_valid is None or not previous_valid.all():
                previous = _usable(previous, W, n_k)
        joint = {}  # joint solver -> [(members, family), ...]
        for code, members in groups:
            if code <= FULL:
                continue
            family = _FAMILIES[code]
            form = family.statistic
            if form == "diagonal" and self.features == "spherical":
                form = "trace"
            if form not in scatters:
                if form == "trace":
                    scatters[form] = np.repeat(W_diag.sum(axis=-1, keepdims=True) / D, D,
                                               axis=-1) + reg_nk
                elif form == "diagonal":
                    scatters[form] = W_diag + reg_nk
                else:
                    Wf = 0.5 * (W + np.swapaxes(W, -1, -2))
                    _diagonal_view(Wf)[...] += reg_nk
                    scatters[form] = Wf
            if family.joint_solver is not None:
                joint.setdefault(family.joint_solver, []).append((members, family, form))
                continue
            cov[members] = family.batched_covariances(
                scatters[form][members], n_k[members],
                None if previous is None else previous[members],
            )
        for solver, parts in joint.items():
            if len(parts) == 1:
                members, family, form = parts[0]
                cov[members] = family.batched_covariances(
                    scatters[form][members], n_k[members],
                    None if previous is None else previous[members],
                )
                continue
            # several families sharing one solver (EVE and VVE): one call for all
            spans = [np.arange(W.shape[0])[members] for members, _, _ in parts]
            parameter = np.concatenate([np.full(span.size, family.joint_parameter)
                                        for span, (_, family, _) in zip(spans, parts,
                                                                        strict=True)])
            index = np.concatenate(spans)
            if index[-1] - index[0] + 1 == index.size and (np.diff(index) == 1).all():
                index = slice(int(index[0]), int(index[-1]) + 1)  # (views, not copies)
            cov[index] = solver(scatters[parts[0][2]][index], n_k[index],
                                None if previous is None else previous[index], parameter)

    def _variances_clear(self, batch: Batch) -> bool:
        """Whether every variance of ``batch`` is at least ``_accuracy_floor``: then every
        component's moments kept their accuracy (:meth:`accurate`: the second moment is at
        most N_k max_n u_ni^2, and the floor is twice that bound's over _CANCELLATION)."""
        var = _diagonal_view(batch.covariances)
        return bool(np.logical_and.reduce(var >= self._accuracy_floor, axis=None))

    def accurate(self, G, batch: Batch) -> np.ndarray:
        """(S,) whether every component's moments kept float64's accuracy (see module doc)."""
        D = self.n_features
        if self._variances_clear(batch):  # (settled without the moments)
            return np.ones(batch.size, dtype=bool)
        var = np.diagonal(batch.covariances, axis1=-2, axis2=-1)
        nk = G[..., 0]
        quad = G[..., D + 1 :]
        if self.features == "full":
            second = quad[..., self._on_diagonal]
        elif self.features == "diag":
            second = quad
        else:
            second = quad / D
        with np.errstate(divide="ignore", invalid="ignore"):
            factor = second / (np.where(nk > 0, nk, 1.0)[..., None] * var)
        return ~np.any(factor > _CANCELLATION, axis=(1, 2))

    def step(self, batch: Batch):
        """One EM iteration of every mixture: (new batch, log-likelihood of ``batch``, bad).

        Mixtures whose moments would lose accuracy take the general path
        (:func:`gaussmix.stats.block_statistics` and :func:`gaussmix.stats.m_step`).
        """
        G, ll, bad = self.e_step(batch)
        new = self.m_step(G, batch.types, previous=batch, previous_valid=~bad)
        return self.redo_inaccurate(
            G, batch, new, ll, bad,
            lambda stats, params, code: _stats.m_step(stats, reg_covar=self.reg_covar))

    def redo_inaccurate(self, G, batch: Batch, new: Batch, ll, bad, m_step):
        """``(new, ll, bad)`` of a step, with the mixtures whose moments lost accuracy
        (:meth:`accurate`) stepped again through the general path: the statistics of
        :func:`gaussmix.stats.block_statistics` and ``m_step(stats, params, code)``
        (MixtureParameters of the step from ``params``, a mixture of type ``code``). A
        mixture whose general step raises ValueError (LinAlgError included) is bad."""
        if self._variances_clear(batch):  # (the usual case: accurate() without its mask)
            return new, ll, bad
        ok = self.accurate(G, batch) | bad
        if np.logical_and.reduce(ok):
            return new, ll, bad
        for s in np.flatnonzero(~ok):
            try:
                params = batch.member(int(s))
                stats = _stats.block_statistics(self.X, params, self.sample_weight)
                fresh = Batch.of(m_step(stats, params, int(batch.types[s])))
            except ValueError:
                bad[s] = True
                ll[s] = -np.inf
                continue
            new = new.put([s], fresh)
            ll[s] = stats.log_likelihood
        return new, ll, bad

    def project(self, batch: Batch) -> Batch:
        """:func:`project` (the rows play no part; a method so that
        :func:`gaussmix.em.run_squarem` finds it on ``rows.step``)."""
        return project(batch)

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
    def degeneracy(self, batch: Batch, *, defer: bool = False) -> list[str | None]:
        """:func:`gaussmix._degeneracy.degeneracy_reason` of every mixture, as a fitted model.

        With ``defer``, a mixture that is certainly degenerate by the first sign (a
        component on more than ``OUTLIER_POINTS`` and fewer than its minimum of effective
        points: no exception excuses it) gets :data:`DEFERRED` instead of its reason (the
        race needs only the verdict; :meth:`degeneracy` without ``defer`` gives the words).

        A vectorised bound settles the clear cases: every component carries its minimum
        number of points and every variance (smallest eigenvalue) exceeds twice the
        regularisation floor of :func:`degeneracy_reason` computed with the largest
        ``|mu_k|^2`` and the trace of the mixture's covariance, which bound the terms it
        uses. The other mixtures (and spherical ones on data with repeated values, whose
        third sign needs the data) get the full check.
        """
        D, reg = self.n_features, self.reg_covar
        S = batch.size
        if not all_finite(batch):  # (a failed update: no eigenvalues to take)
            finite = finite_mixtures(batch)
            out: list[str | None] = [NOT_FINITE] * S
            if finite.any():
                for s, verdict in zip(np.flatnonzero(finite).tolist(),
                                      self.degeneracy(batch.take(finite), defer=defer),
                                      strict=True):
                    out[s] = verdict
            return out
        nk = self.weight_sum * batch.weights
        if not hasattr(self, "_min_points"):
            self._min_points = np.array([min_component_points(t, D) for t in TYPES])
        min_points = self._min_points[batch.types]
        clear = np.all(nk >= min_points[:, None], axis=1)
        cov = batch.covariances
        low = np.linalg.eigvalsh(cov)[..., 0].min(axis=1)
        within = np.sum(batch.weights * np.trace(cov, axis1=-2, axis2=-1), axis=1)
        centre = np.einsum("sk,skd->sd", batch.weights, batch.means)
        spread = np.einsum("sk,sk->s", batch.weights,
                           np.sum((batch.means - centre[:, None]) ** 2, axis=2))
        mean_sq = np.max(np.sum(batch.means**2, axis=2), axis=1)
        eps = _EPS
        floor = np.maximum(REG_FRACTION * reg, RESOLUTION * eps * (mean_sq + within + spread))
        clear &= low - reg > 2.0 * floor
        repeated = self._repeated_values()
        # The third sign (points flat along a direction) for spherical mixtures, and for
        # mclust's constrained models, whose shared pieces can keep a component's variance
        # above the floor along a direction where its own points have no spread.
        flat_check = (batch.types == SPHERICAL) | (batch.types > FULL)
        if repeated:
            checked = np.flatnonzero(flat_check)
            if checked.size:
                clear[checked] &= self._spread_is_clear(batch.take(checked), eps, reg)
        out: list[str | None] = [None] * S
        certain = (np.any((nk > OUTLIER_POINTS) & (nk < min_points[:, None]), axis=1)
                   if defer else np.zeros(S, dtype=bool))
        for s in np.flatnonzero(~clear):
            if certain[s]:
                out[s] = DEFERRED
                continue
            t = batch.covariance_type(s)
            resp = None
            if flat_check[s] and repeated:
                resp = self.responsibilities(batch.take([s]))
            out[s] = degeneracy_reason(
                batch.weights[s], batch.means[s], batch.covariances_of(s), t,
                self.weight_sum, None, reg,
                X=self.X if resp is not None else None, resp=resp,
                sample_weight=self.sample_weight,
            )
            if out[s] is None and resp is not None and batch.types[s] > FULL:
                out[s] = self._flat_reason(batch.means[s], resp, t, eps, reg)
        return out

    def _flat_reason(self, means, resp, name, eps, reg):
        """The third sign of :func:`gaussmix._degeneracy.degeneracy_reason` for a model
        whose family does not run it: a component whose points have no spread along some
        direction (smallest eigenvalue of their weighted scatter at the floor)."""
        X = self.X
        w = np.ones(X.shape[0]) if self.w is None else self.w
        centre = w @ X / w.sum()
        data_cov = ((X - centre) * w[:, None]).T @ (X - centre) / w.sum()
        parts = []
        for k in range(resp.shape[1]):
            rk = resp[:, k] * w
            nk = rk.sum()
            if nk <= 0:
                continue
            Xc = X - rk @ X / nk
            eigval, eigvec = np.linalg.eigh((Xc * rk[:, None]).T @ Xc / nk)
            lam, v = float(eigval[0]), eigvec[:, 0]
            data_var = float(v @ data_cov @ v)
            floor = max(REG_FRACTION * reg, RESOLUTION * eps * (float(means[k] @ v) ** 2
                                                                + data_var))
            if data_var > 0 and lam <= floor:
                parts.append(
                    f"component {k} ({nk:.3g} effective points): its points have no spread "
                    f"along {_families.direction_words(v)} (weighted variance "
                    f"{max(lam, 0.0):.3g}, the data's is {data_var:.3g}): they share one "
                    f"value there, which the {name} model's shared volume, shape or "
                    "orientation hides"
                )
        if not parts:
            return None
        return ("; ".join(parts) + ". The component has collapsed onto a few (often repeated) "
                "points: a spurious maximizer of the likelihood. Try other initialisations, "
                "fewer components, or a simpler covariance_type.")

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


def project(batch: Batch) -> Batch:
    """``batch`` with the covariances of mclust's constrained models moved onto their
    constraint (each family's ``batched_projection``); the others are returned as they
    are (scikit-learn's four constraints are linear: extrapolations keep them)."""
    groups = _groups(batch.types)
    if groups[-1][0] <= FULL:
        return batch
    out = batch.copy()
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for code, members in groups:
            if code > FULL:
                family = _FAMILIES[code]
                out.covariances[members] = family.batched_projection(out.covariances[members])
    return out


def project_covariances(name, cov):
    """(S, K, D, D) covariances moved onto the constraint of the family ``name`` (its
    ``batched_projection``, :meth:`gaussmix.families.CovarianceFamily.batched_projection`)."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return _families.get(name).batched_projection(cov)


def all_finite(batch: Batch) -> bool:
    """Whether every parameter of every mixture is finite (whole-array reductions: the
    per-mixture mask, :func:`finite_mixtures`, is only needed when one is not)."""
    every = np.logical_and.reduce
    return bool(every(np.isfinite(batch.covariances), axis=None)
                and every(np.isfinite(batch.means), axis=None)
                and every(np.isfinite(batch.weights), axis=None))


def finite_mixtures(batch: Batch) -> np.ndarray:
    """(S,) whether every parameter of each mixture is finite."""
    every = np.logical_and.reduce
    return (every(np.isfinite(batch.covariances).reshape(batch.size, -1), axis=1)
            & every(np.isfinite(batch.means).reshape(batch.size, -1), axis=1)
            & every(np.isfinite(batch.weights), axis=1))


def _usable(previous, W, n_k):
    """``previous`` with the mixtures that are not valid starts (non-finite or without a
    positive diagonal: an extrapolation gone astray) replaced by their scatters."""
    diag = np.diagonal(previous, axis1=-2, axis2=-1)
    bad = ~np.all(np.isfinite(previous), axis=(1, 2, 3)) | ~np.all(diag > 0, axis=(1, 2))
    if not bad.all():
        sign, _ = np.linalg.slogdet(np.where(bad[:, None, None, None], np.eye(W.shape[-1]),
                                             previous))
        bad |= ~np.all(sign > 0, axis=1)
    if not bad.any():
        return previous
    previous = previous.copy()
    D = W.shape[-1]
    previous[bad] = W[bad] / n_k[bad][..., None, None] + np.eye(D) * 1e-300
    return previous


def _inverses(matrices):
    """``(inverses, singular)``: ``np.linalg.inv`` of a stack, and None; when one matrix of
    the stack is singular to working precision, each inverted alone, the singular ones
    replaced by the identity and marked in ``singular`` (so one start cannot stop the rest)."""
    try:
        return np.linalg.inv(matrices), None
    except np.linalg.LinAlgError:
        out, singular = _each_or_identity(np.linalg.inv, matrices.reshape(-1, *matrices.shape[-2:]))
        return out.reshape(matrices.shape), singular.reshape(matrices.shape[:-2])


def _each_or_identity(func, flat):
    """``func`` (a NumPy linear-algebra routine) of each matrix of a (M, D, D) stack, the
    identity where it raises LinAlgError, and the mask of those: the slow path once the
    call on the whole stack has failed."""
    out = np.empty_like(flat)
    failed = np.zeros(flat.shape[0], dtype=bool)
    for i, matrix in enumerate(flat):
        try:
            out[i] = func(matrix)
        except np.linalg.LinAlgError:
            out[i] = np.eye(flat.shape[-1])
            failed[i] = True
    return out, failed


_GROUPS: dict = {}


def _groups(types) -> list:
    """``[(code, members), ...]`` of a ``types`` array, by increasing code: ``members`` a
    slice when the mixtures of that code are consecutive (views, not copies), else their
    indices. Cached: a selection steps the same few arrays of types many times."""
    key = (types.dtype.str, types.tobytes())
    out = _GROUPS.get(key)
    if out is None:
        if types.size and not (types[1:] < types[:-1]).any():  # sorted: one slice per code
            starts = [0, *(np.flatnonzero(types[1:] != types[:-1]) + 1).tolist()]
            stops = [*starts[1:], types.size]
            codes = types[starts].tolist()
            out = [(code, slice(a, b)) for code, a, b in zip(codes, starts, stops, strict=True)]
        else:
            out = []
            for code in np.unique(types).tolist():
                members = np.flatnonzero(types == code)
                if members[-1] - members[0] + 1 == members.size:
                    members = slice(int(members[0]), int(members[-1]) + 1)
                out.append((code, members))
        if len(_GROUPS) > 4096:
            _GROUPS.clear()
        _GROUPS[key] = out
    return out


def _storage(code, cov):
    """(K, D, D) covariances in the storage shape of the family of type ``code``."""
    if code == TIED:
        return cov[0].copy()
    form = _families.get(TYPES[code]).precision_form
    if form == "full":
        return cov.copy()
    diag = np.diagonal(cov, axis1=-2, axis2=-1)
    return diag.copy() if form == "diagonal" else diag.mean(axis=1)


def _small_spd(cov):
    """``(inverses, log-determinants, factored)`` of a (S, K, D, D) stack of symmetric
    matrices (small D) by a Cholesky factorisation ``C C^T`` written out entry by entry,
    each entry one operation on the whole stack: ``C``, then ``Z = C^-1``, the inverse
    ``Z^T Z`` and ``log det = sum_j log c_jj^2``. ``factored`` (S, K): every pivot was
    positive and the inverse finite (LAPACK's test); the other matrices' entries are
    meaningless (the caller replaces them)."""
    S, K, D = cov.shape[0], cov.shape[1], cov.shape[-1]
    M = S * K
    A = cov.reshape(M, D * D).T  # row i D + j: entry (i, j) of every matrix
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        C = {}
        inv_c = []
        logdet = 0.0
        factored = None
        for j in range(D):
            pivot = A[j * D + j]
            for k in range(j):
                pivot = pivot - C[j, k] * C[j, k]
            positive = pivot > 0
            factored = positive if factored is None else factored & positive
            logdet = logdet + np.log(pivot)
            c = np.sqrt(pivot)
            inv_c.append(1.0 / c)
            for i in range(j + 1, D):
                value = A[i * D + j]
                for k in range(j):
                    value = value - C[i, k] * C[j, k]
                C[i, j] = value / c
        Z = {}
        for i in range(D):
            Z[i, i] = inv_c[i]
            for j in range(i):
                value = C[i, j] * Z[j, j]
                for k in range(j + 1, i):
                    value = value + C[i, k] * Z[k, j]
                Z[i, j] = -value * inv_c[i]
        out = np.empty((D * D, M))
        for i in range(D):
            for j in range(i, D):
                value = Z[j, i] * Z[j, j]
                for k in range(j + 1, D):
                    value = value + Z[k, i] * Z[k, j]
                out[i * D + j] = value
                out[j * D + i] = value
        finite = np.isfinite(out).all(axis=0)
    factored = (factored & finite).reshape(S, K)
    return out.T.reshape(S, K, D, D), logdet.reshape(S, K), factored


def _batched_cholesky(cov):
    """Cholesky factors of a stack of matrices, and a mask of the ones that have none
    (None when every matrix has one)."""
    try:
        return np.linalg.cholesky(cov), None
    except np.linalg.LinAlgError:
        pass
    flat = cov.reshape(-1, *cov.shape[-2:])
    eye = np.eye(flat.shape[-1])
    # The matrices with a non-positive (or non-finite) eigenvalue have none; the others
    # are factored together (one call), unless rounding makes one fail after all.
    finite = np.all(np.isfinite(flat), axis=(1, 2))
    low = np.full(flat.shape[0], -np.inf)
    low[finite] = np.linalg.eigvalsh(flat[finite])[:, 0]
    bad = ~(low > 0)
    try:
        chol = np.linalg.cholesky(np.where(bad[:, None, None], eye, flat))
        return chol.reshape(cov.shape), bad.reshape(cov.shape[:-2])
    except np.linalg.LinAlgError:
        pass
    chol, bad = _each_or_identity(np.linalg.cholesky, flat)
    return chol.reshape(cov.shape), bad.reshape(cov.shape[:-2])
