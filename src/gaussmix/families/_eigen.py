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
complete-data log-likelihood and EM stays monotone. Each family writes its update once,
for S mixtures at once (``batched_covariances``, shared pieces in
:mod:`gaussmix.families._batched`); a single fit is the case S = 1, run until the shared
piece moves by less than ``inner_tol`` (relative; EVE and VVE: until the relative change
of ``-2 Q`` is at most ``inner_tol``) or for ``inner_max_iter`` rounds (class attributes).

EVE's and VVE's orientation D is improved by sweeps of plane rotations: with weights
``w = 1 / variances``, rotating the plane of columns (i, j) by theta changes
``sum_k sum_j w_kj (D^T W_k D)_jj`` by ``P cos 2theta + Q sin 2theta - P`` with
``P = sum_k (w_ki - w_kj)(b_kii - b_kjj) / 2`` and ``Q = sum_k (w_ki - w_kj) b_kij``; its
exact minimiser is ``(cos 2theta, sin 2theta) = -(P, Q) / hypot(P, Q)`` (Jacobi's method,
as in Flury & Gautschi's common principal components). This is Browne & McNicholas'
majorise-minimise step with the majoriser restricted to one plane, where it is exact: the
objective falls at least as much. The planes of a round are disjoint
(:func:`_round_robin`), so their rotations do not interact and are applied at once; the
variances are re-solved (their exact maximiser) after every round, so the objective never
rises. A sweep takes d - 1 rounds (d for odd d).
"""

from __future__ import annotations

import functools

import numpy as np

from ._batched import common_orientation, orientation_projection
from ._scatter import regularised_scatter
from .full import Full

__all__ = ["EigenFamily", "objective"]

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


class EigenFamily(Full):
    """Base of mclust's models solved iteratively: storage and checks of ``full``, own M-step.

    Attributes
    ----------
    inner_tol : float
        A single fit's M-step iterates until its shared piece moves by less than this,
        relatively (EVE, VVE: until the relative change of ``-2 Q`` is at most this)
        (1e-10: tight enough that no small perturbation of the result along the
        constraint raises ``Q`` beyond rounding).
    inner_max_iter : int
        At most this many iterations per M-step.
    """

    aliases: tuple[str, ...] = ()
    precision_form = "full"
    statistic = "full"
    covariance_is_scatter = False
    inner_tol = 1e-10
    inner_max_iter = 1000

    def prior_terms(self, dof, n_components, n_features):
        return None  # no update under the conjugate prior (none in mclust either)

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

    def _one_of_batch(self, W, n, previous=None, **options):
        """One mixture's update as :meth:`batched_covariances` with S = 1 (the iterative
        models' single fit: the same code as model selection's batched M-step)."""
        W = np.asarray(W, dtype=np.float64)
        if previous is not None:
            previous = np.asarray(previous, dtype=np.float64)[None]
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return self.batched_covariances(
                W[None], np.asarray(n, dtype=np.float64)[None], previous, **options
            )[0]

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


def common_eigenvectors(covariances) -> np.ndarray:
    """An orthogonal D diagonalising every matrix of a commuting stack (d, d).

    The eigenvectors of a combination with distinct, irrational weights: where it has a
    repeated eigenvalue, every matrix does in the same subspace, so any basis of it works.
    """
    scaled = covariances / np.trace(covariances, axis1=1, axis2=2)[:, None, None]
    weights = np.sqrt(np.arange(2, len(scaled) + 2))
    _, D = np.linalg.eigh(np.tensordot(weights, scaled, axes=1))
    return D


class CommonOrientationFamily(EigenFamily):
    """EVE and VVE: one orientation D shared by the components, a shape per component, the
    volume equal (EVE, ``equal_volume``) or per component (VVE). Both M-steps are
    :func:`~gaussmix.families._batched.common_orientation` (Browne & McNicholas 2014:
    exact plane rotations of D, the variances re-solved after each), for one mixture or
    many; the two families step together in one loop (``joint_solver``)."""

    equal_volume = False
    iterative = True

    def min_points(self, n_features):
        return n_features + 1  # a shape per component along a shared, free orientation

    def fit_scatter(self, W, n, previous=None):
        """One mixture's update: :func:`~gaussmix.families._batched.common_orientation`
        with S = 1, at most ``inner_max_iter`` sweeps, to ``inner_tol`` (objective)."""
        return self._one_of_batch(W, n, previous, sweeps=self.inner_max_iter,
                                  objective_tol=self.inner_tol)

    # -- many mixtures at once ---------------------------------------------------------
    joint_solver = staticmethod(common_orientation)

    @property
    def joint_parameter(self):
        return self.equal_volume

    def batched_covariances(self, W, n_k, previous=None, sweeps=None, objective_tol=None):
        return common_orientation(W, n_k, previous, equal_volume=self.equal_volume,
                                  sweeps=sweeps, objective_tol=objective_tol)

    def batched_projection(self, cov):
        return orientation_projection(cov, equal_volume=self.equal_volume)
