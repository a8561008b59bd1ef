"""``EEI`` (mclust): all components share one diagonal covariance, lambda B."""

from __future__ import annotations

import numpy as np

from . import _scatter
from ._batched import diagonal_view, identity
from .diag import ConstrainedDiag


class EEI(ConstrainedDiag):
    """Sigma_k = lambda B for every k, B diagonal with |B| = 1: D parameters.

    Stored as scikit-learn's diag covariances, shape (K, D), the row repeated.

    M-step (Celeux & Govaert 1995): with W = sum_k W_k the pooled scatter about the new
    means and n = sum_k N_k, ``B = diag(W) / |diag(W)|^(1/D)`` and
    ``lambda = |diag(W)|^(1/D) / n``, so ``lambda B = diag(W) / n``. ``reg_covar`` is added to
    the scatter, ``W_k + reg_covar N_k I``, before the update (it adds exactly ``reg_covar``
    to every variance).
    """

    name = "EEI"
    mclust_name = "EEI"
    aliases = ()
    description = (
        "all components share one diagonal covariance (features uncorrelated, equal "
        "volume and shape)"
    )
    volume, shape, orientation = "equal", "equal", "axis-aligned"
    plot_style = ("#8c564b", "<", "--")

    def prior_terms(self, dof, n_components, n_features):
        return (dof + 2) / n_components, 1.0 / n_components

    def n_covariance_parameters(self, n_components, n_features):
        return n_features

    def min_points(self, n_features):
        return 1  # the variances are pooled over all components

    def _constrained(self, W, n_k, previous=None):
        return np.broadcast_to(W.sum(axis=0) / n_k.sum(), W.shape).copy()

    def check_precisions_init(self, precisions) -> None:
        super().check_precisions_init(precisions)
        _scatter.equal_across(
            np.log(precisions), "volume and shape", self, "the same precision of each feature",
            _scatter.constraint_tolerance(precisions),
        )


    # -- many mixtures at once ---------------------------------------------------------
    def batched_covariances(self, W, n_k, previous=None):
        S, K, D = W.shape
        var = W.sum(axis=1) / n_k.sum(axis=1)[:, None]  # (S, D)
        return np.broadcast_to((var[:, :, None] * identity(D))[:, None], (S, K, D, D)).copy()

    def batched_projection(self, cov):
        K, D = cov.shape[1], cov.shape[-1]
        var = diagonal_view(cov).sum(axis=1) / K  # (S, D)
        return np.broadcast_to((var[..., None] * identity(D))[:, None], cov.shape).copy()


FAMILY = EEI()
