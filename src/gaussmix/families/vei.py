"""``VEI`` (mclust): diagonal covariances lambda_k B of variable volume, equal shape."""

from __future__ import annotations

import numpy as np

from . import _scatter
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

    def n_covariance_parameters(self, n_components, n_features):
        return n_components + n_features - 1

    def _constrained(self, W, n_k, previous=None):
        n_features = W.shape[1]
        if previous is not None:
            log_shape = np.log(np.asarray(previous, dtype=np.float64)).mean(axis=0)
        else:
            log_shape = np.log(W.sum(axis=0))
        shape = np.exp(log_shape - log_shape.mean())
        volumes = None
        for _ in range(self.max_inner_iter):
            volumes = (W / shape).sum(axis=1) / (n_features * n_k)
            # A component with no scatter at all (volume 0) adds nothing to the shape.
            weighted = np.divide(
                W, volumes[:, None], out=np.zeros_like(W), where=volumes[:, None] > 0
            ).sum(axis=0)
            new_shape = weighted / _scatter.geometric_mean(weighted)
            change = np.max(np.abs(new_shape / shape - 1.0))
            shape = new_shape
            if not change > self.inner_tol:
                break
        volumes = (W / shape).sum(axis=1) / (n_features * n_k)
        return volumes[:, None] * shape

    def check_precisions_init(self, precisions) -> None:
        super().check_precisions_init(precisions)
        log_precisions = np.log(np.asarray(precisions, dtype=np.float64))
        _scatter.equal_across(
            log_precisions - log_precisions.mean(axis=1, keepdims=True),
            "shape", self, "precisions proportional from one component to another",
            _scatter.constraint_tolerance(precisions),
        )


FAMILY = VEI()
