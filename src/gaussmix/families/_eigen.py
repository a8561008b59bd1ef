"""Shared pieces of mclust's models with iterative M-steps (Sigma_k = lambda_k D_k A_k D_k^T).

The models stored as one full (D, D) matrix per component (shared pieces repeat) whose
M-step has no closed form: VEE, VEV (Celeux & Govaert 1995, "Gaussian parsimonious
clustering models", Pattern Recognition 28(5)), EVE and VVE (Browne & McNicholas 2014,
"Estimating common principal components in high dimensions", ADAC 8(2)).

Every one maximises the expected complete-data log-likelihood of its covariances,

    Q(Sigma) = -1/2 sum_k [ n_k log det Sigma_k + tr(W_k Sigma_k^-1) ],

where ``n_k = N_k + guard`` and ``W_k`` is component k's scatter about its new mean plus
``reg_covar * n_k`` on the diagonal. Adding ``reg_covar`` to the scatter, before the
constrained update, keeps the model's constraint (adding it to the result would not: a
shared shape or orientation would no longer be shared). Without constraint this gives
scikit-learn's ``S_k + reg_covar I``.

The updates are block-coordinate ascents: each block (volumes, shapes, orientations) is set
to its exact maximiser given the others, so ``Q`` never decreases. Started from the
previous covariances (EM's current parameters), the M-step therefore raises the expected
complete-data log-likelihood and EM stays monotone. They stop when the relative change of
``Q`` falls below ``inner_tol`` or after ``inner_max_iter`` iterations (class attributes).
"""

from __future__ import annotations

import functools

import numpy as np

from ._scatter import regularised_scatter
from .full import Full

__all__ = ["EigenFamily", "common_orientation_sweep", "fit_common_orientation", "objective"]

_TINY = np.finfo(np.float64).tiny


def objective(W, n, covariances) -> float:
    """``sum_k n_k log det Sigma_k + tr(W_k Sigma_k^-1)``, which the M-step minimises (-2 Q)."""
    chol = np.linalg.cholesky(covariances)
    log_det = 2.0 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)
    eye = np.broadcast_to(np.eye(W.shape[-1]), W.shape)
    inv_chol = np.linalg.solve(chol, eye)  # C^-1, so Sigma^-1 = C^-T C^-1
    trace = np.einsum("kij,kjl,kil->k", inv_chol, W, inv_chol)
    return float(np.sum(n * log_det + trace))


@functools.lru_cache(maxsize=64)
def _round_robin(n_features):
    """Rounds of disjoint planes (i, j) covering every pair once (the circle method).

    Returns a tuple of ``(I, J)`` index arrays, one per round.
    """
    players = list(range(n_features)) + ([-1] if n_features % 2 else [])
    m = len(players)
    rounds = []
    for _ in range(m - 1):
        pairs = [(players[a], players[m - 1 - a]) for a in range(m // 2)]
        pairs = [(min(i, j), max(i, j)) for i, j in pairs if i >= 0 and j >= 0]
        if pairs:
            first, second = zip(*pairs, strict=True)
            rounds.append((np.array(first, dtype=np.intp), np.array(second, dtype=np.intp)))
        players = [players[0], players[-1], *players[1:-1]]
    return tuple(rounds)


def common_orientation_sweep(B, D, variances):
    """One sweep of plane rotations of a shared orientation D, each lowering the objective.

    ``B`` (K, d, d) holds ``D^T W_k D`` and ``D`` (d, d) the orthogonal orientation; both are
    updated in place. ``variances(diag)`` gives the optimal per-axis variances (K, d) for the
    diagonals ``diag`` (K, d) of ``B`` (the model's volume and shape given D).

    With weights ``w = 1 / variances``, rotating the plane of columns (i, j) by theta changes
    ``sum_k sum_j w_kj (D^T W_k D)_jj`` by ``P cos 2theta + Q sin 2theta - P`` with
    ``P = sum_k (w_ki - w_kj)(b_kii - b_kjj) / 2`` and ``Q = sum_k (w_ki - w_kj) b_kij``; its
    exact minimiser is ``(cos 2theta, sin 2theta) = -(P, Q) / hypot(P, Q)`` (Jacobi's method,
    as in Flury & Gautschi's common principal components). This is Browne & McNicholas'
    majorise-minimise step with the majoriser restricted to one plane, where it is exact:
    the objective falls at least as much.

    The planes of a round are disjoint (:func:`_round_robin`), so their rotations do not
    interact and are applied at once, vectorised; the variances are re-solved (their exact
    maximiser) after every round, so the objective never rises. A sweep (d - 1 rounds, or
    d for odd d) costs O(K d^3) in d NumPy passes.
    """
    weights = 1.0 / variances(np.diagonal(B, axis1=1, axis2=2))
    for I, J in _round_robin(D.shape[0]):
        dw = weights[:, I] - weights[:, J]
        p = 0.5 * np.sum(dw * (B[:, I, I] - B[:, J, J]), axis=0)
        q = np.sum(dw * B[:, I, J], axis=0)
        r = np.hypot(p, q)
        active = p + r > 1e-15 * (np.abs(p) + np.abs(q))
        if not active.any():
            continue
        I, J, p, q, r = I[active], J[active], p[active], q[active], r[active]
        cos2, sin2 = -p / r, -q / r
        c = np.sqrt(np.maximum(0.5 * (1.0 + cos2), 0.0))
        s = np.copysign(np.sqrt(np.maximum(0.5 * (1.0 - cos2), 0.0)), sin2)
        # B <- R^T B R and D <- D R, R the identity with [[c, -s], [s, c]] in each plane.
        for M, axis in ((D, 1), (B, 2), (B, 1)):
            first = np.take(M, I, axis=axis)
            second = np.take(M, J, axis=axis)
            shape = [1] * M.ndim
            shape[axis] = -1
            cc, ss = c.reshape(shape), s.reshape(shape)
            index = [slice(None)] * M.ndim
            index[axis] = I
            M[tuple(index)] = cc * first + ss * second
            index[axis] = J
            M[tuple(index)] = cc * second - ss * first
        weights = 1.0 / variances(np.diagonal(B, axis1=1, axis2=2))


def fit_common_orientation(family, W, n, D, variances):
    """Sigma_k = D diag(variances_k) D^T maximising Q, iterating from orientation ``D``.

    ``variances(diag)`` (K, d) is the exact maximiser of Q over the volumes and shapes for a
    fixed D, where ``diag`` (K, d) is the diagonal of ``D^T W_k D``. Alternates it with
    :func:`common_orientation_sweep` until the objective's relative change is below
    ``family.inner_tol`` (at most ``family.inner_max_iter`` sweeps).
    """
    D = np.array(D, dtype=np.float64)
    old = np.inf
    for _ in range(family.inner_max_iter):
        B = np.einsum("ia,kij,jb->kab", D, W, D)  # recomputed: no drift from the sweeps
        diag = np.diagonal(B, axis1=1, axis2=2)
        sigma = variances(diag)
        value = float(np.sum(n[:, None] * np.log(sigma) + diag / sigma))
        if family._converged(old, value):
            break
        old = value
        common_orientation_sweep(B, D, variances)
    D, _ = np.linalg.qr(D)  # exactly orthogonal again after the rotations' rounding
    sigma = variances(np.einsum("ia,kij,ja->ka", D, W, D))
    cov = np.einsum("ia,ka,ja->kij", D, sigma, D)
    return 0.5 * (cov + np.swapaxes(cov, 1, 2))


class EigenFamily(Full):
    """Base of mclust's models solved iteratively: storage and checks of ``full``, own M-step.

    Attributes
    ----------
    inner_tol : float
        The M-step iterates until the relative change of its objective ``-2 Q`` (module
        docstring) is below this (1e-10: tight enough that no small perturbation of the
        result along the constraint raises ``Q`` beyond rounding).
    inner_max_iter : int
        At most this many iterations per M-step.
    """

    aliases: tuple[str, ...] = ()
    precision_form = "full"
    statistic = "full"
    inner_tol = 1e-10
    inner_max_iter = 1000

    def n_covariance_parameters(self, n_components, n_features):
        volume, shape, orientation = self.mclust_name
        d = n_features
        count = {"E": 1, "V": n_components}[volume]
        count += {"I": 0, "E": d - 1, "V": n_components * (d - 1)}[shape]
        count += {"I": 0, "E": d * (d - 1) // 2, "V": n_components * d * (d - 1) // 2}[
            orientation
        ]
        return count

    def min_points(self, n_features):
        return 2  # one volume per component; shape and orientation are pooled

    def from_full(self, full, weights):
        """The constrained maximiser for scatters ``weights[k] * full[k]`` (projection)."""
        weights = np.asarray(weights, dtype=np.float64)
        full = np.asarray(full, dtype=np.float64)
        return self.fit_scatter(full * weights[:, None, None], weights)

    def m_step_covariances(self, nk, s1, s2, reg_covar, guard=0.0, previous=None):
        W, n = regularised_scatter("full", nk, s1, s2, reg_covar, guard)
        return self.fit_scatter(W, n, previous)

    def solve_scatter(self, W, n, n_features, previous=None):
        return self.fit_scatter(W, n, previous)

    def fit_scatter(self, W, n, previous=None):
        """Covariances maximising ``Q`` (module docstring) for scatters ``W`` and counts ``n``.

        Starts from ``previous`` (covariances satisfying the constraint) when given.
        """
        raise NotImplementedError

    def _converged(self, old, new) -> bool:
        return abs(old - new) <= self.inner_tol * max(abs(new), _TINY)

    # -- checks ------------------------------------------------------------------------
    def check_precisions_init(self, precisions) -> None:
        super().check_precisions_init(precisions)
        covariances = np.linalg.inv(np.asarray(precisions, dtype=np.float64))
        problem = self.constraint_violation(0.5 * (covariances + np.swapaxes(covariances, 1, 2)))
        if problem:
            raise ValueError(
                f"precisions_init does not satisfy the {self.name} model's constraint "
                f"({self.description}): {problem}. Give precisions of that form, or leave "
                "precisions_init unset."
            )

    def constraint_violation(self, covariances, rtol: float = 1e-6) -> str:
        """A sentence saying how ``covariances`` break the constraint, or "" if they do not."""
        raise NotImplementedError


def normalised(matrices):
    """Each (d, d) matrix divided by ``det^(1/d)`` (determinant one), and those roots."""
    d = matrices.shape[-1]
    _, log_det = np.linalg.slogdet(matrices)
    root = np.exp(log_det / d)
    return matrices / root[..., None, None], root


def spread(values, axis=0) -> float:
    """Largest relative deviation of ``values`` from their mean along ``axis``."""
    values = np.asarray(values, dtype=np.float64)
    mean = values.mean(axis=axis, keepdims=True)
    return float(np.max(np.abs(values - mean)) / max(float(np.max(np.abs(mean))), _TINY))


def commutator_error(covariances) -> float:
    """Largest relative ``|S_i S_j - S_j S_i|``: zero when all share their eigenvectors."""
    scaled = covariances / np.linalg.norm(covariances, axis=(1, 2))[:, None, None]
    worst = 0.0
    for i in range(len(scaled)):
        prod = scaled[i] @ scaled[i + 1:]
        worst = max(worst, float(np.max(np.abs(prod - np.swapaxes(prod, 1, 2)), initial=0.0)))
    return worst


def starting_orientation(W, previous=None) -> np.ndarray:
    """The shared orientation an M-step starts from: the previous covariances' common
    eigenvectors (so the update never lowers the objective), else the pooled scatter's."""
    if previous is not None:
        return common_eigenvectors(np.asarray(previous, dtype=np.float64))
    return np.linalg.eigh(W.sum(axis=0))[1]


def common_eigenvectors(covariances) -> np.ndarray:
    """An orthogonal D diagonalising every matrix of a commuting stack (d, d).

    The eigenvectors of a combination with distinct, irrational weights: where it has a
    repeated eigenvalue, every matrix does in the same subspace, so any basis of it works.
    """
    scaled = covariances / np.trace(covariances, axis1=1, axis2=2)[:, None, None]
    weights = np.sqrt(np.arange(2, len(scaled) + 2))
    _, D = np.linalg.eigh(np.tensordot(weights, scaled, axes=1))
    return D
