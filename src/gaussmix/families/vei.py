"""``VEI`` (mclust): diagonal covariances lambda_k B of variable volume, equal shape."""

from __future__ import annotations

import numpy as np

from . import _scatter
from ._batched import (
    COLD_ROUNDS,
    INNER_TOL,
    WARM_ROUNDS,
    diagonal_projection,
    diagonal_view,
    geometric_mean,
    identity,
    largest,
)
from .diag import ConstrainedDiag


class VEI(ConstrainedDiag):
    """Sigma_k = lambda_k B, B diagonal with |B| = 1: K + D - 1 parameters.

    Stored as scikit-learn's diag covariances, shape (K, D); the rows are proportional.

    M-step (Celeux & Govaert 1995, iterative): with W_k the weighted scatter of component
    k about its new mean (its diagonal w_k), the covariance part of the expected
    complete-data log-likelihood is maximised by alternating

    * ``lambda_k = sum_j w_kj / B_j / (D N_k)`` (the best volumes given the shape), and
    * ``B = diag(sum_k W_k / lambda_k) / |diag(sum_k W_k / lambda_k)|^(1/D)`` (the best
      shape given the volumes),

    until the shape moves by less than :attr:`inner_tol` (relative, per feature) or after
    :attr:`max_inner_iter` rounds. Each half-step maximises over its block, so every round
    raises the objective; in the coordinates log lambda_k, log B_j the objective is
    concave (a linear term plus minus a sum of exponentials of linear terms) and the
    constraint linear, so the rounds converge to the unique constrained maximum. The
    rounds start from the shape of ``previous`` when given (the current parameters: the
    update then never lowers the objective, generalised EM), else from EEI's shape
    (the pooled diagonal). ``reg_covar`` is added to the scatter, ``W_k + reg_covar N_k I``,
    before the update.
    """

    iterative = True
    name = "VEI"
    mclust_name = "VEI"
    aliases = ()
    description = (
        "each component has its own diagonal covariance, all of the same shape "
        "(features uncorrelated, variable volume)"
    )
    volume, shape, orientation = "variable", "equal", "axis-aligned"
    plot_style = ("#e377c2", ">", ":")
    #: Largest relative change of the shape B, per feature, at which the rounds stop.
    inner_tol = 1e-10
    #: Most rounds of the alternating updates per M-step.
    max_inner_iter = 1000

    def prior_terms(self, dof, n_components, n_features):
        return (dof + 3) / n_features, 1.0

    def n_covariance_parameters(self, n_components, n_features):
        return n_components + n_features - 1

    def _constrained(self, W, n_k, previous=None):
        """One mixture's update: :meth:`batched_covariances` with S = 1, at most
        :attr:`max_inner_iter` rounds, to :attr:`inner_tol`."""
        start = None
        if previous is not None:
            start = (np.asarray(previous, dtype=np.float64)[..., None] * np.eye(W.shape[1]))[None]
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            cov = self.batched_covariances(W[None], np.asarray(n_k, dtype=np.float64)[None],
                                           start, rounds=self.max_inner_iter, tol=self.inner_tol)
        return np.diagonal(cov[0], axis1=-2, axis2=-1).copy()

    def check_precisions_init(self, precisions) -> None:
        super().check_precisions_init(precisions)
        log_precisions = np.log(np.asarray(precisions, dtype=np.float64))
        _scatter.equal_across(
            log_precisions - log_precisions.mean(axis=1, keepdims=True),
            "shape", self, "precisions proportional from one component to another",
            _scatter.constraint_tolerance(precisions),
        )


    # -- many mixtures at once ---------------------------------------------------------
    def batched_covariances(self, W, n_k, previous=None, rounds=None, tol=INNER_TOL):
        """The alternating rounds above for S mixtures: ``W`` (S, K, D) the regularised
        diagonals; from the shape of ``previous`` at most ``WARM_ROUNDS`` rounds, else
        ``COLD_ROUNDS`` from EEI's shape (:mod:`gaussmix.families._batched`), or ``rounds``,
        until the shape moves by less than ``tol``."""
        D = W.shape[-1]
        if previous is not None:
            log_shape = np.log(diagonal_view(previous)).sum(axis=1) / previous.shape[1]
        else:
            log_shape = np.log(W.sum(axis=1))
        if rounds is None:
            rounds = COLD_ROUNDS if previous is None else WARM_ROUNDS
        shape = np.exp(log_shape - (log_shape.sum(axis=-1) / D)[:, None])  # (S, D)
        counts = D * n_k
        for _ in range(rounds):
            volumes = (W / shape[:, None]).sum(axis=-1) / counts  # (S, K)
            weighted = (W / np.where(volumes > 0, volumes, np.inf)[..., None]).sum(axis=1)
            new = weighted / geometric_mean(weighted)[:, None]
            change = largest(new / shape - 1.0)
            shape = new
            if not change > tol:
                break
        volumes = (W / shape[:, None]).sum(axis=-1) / counts
        return (volumes[..., None] * shape[:, None])[..., None] * identity(D)

    def batched_projection(self, cov):
        return diagonal_projection(cov, "shape")


FAMILY = VEI()
