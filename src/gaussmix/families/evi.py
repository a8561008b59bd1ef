"""``EVI`` (mclust): diagonal covariances lambda B_k of equal volume, variable shape."""

from __future__ import annotations

import numpy as np

from . import _scatter
from ._batched import diagonal_projection, identity
from .diag import ConstrainedDiag


class EVI(ConstrainedDiag):
    """Sigma_k = lambda B_k, B_k diagonal with |B_k| = 1: 1 + K (D - 1) parameters.

    Stored as scikit-learn's diag covariances, shape (K, D); every row has the same
    product (the volume lambda^D).

    M-step (Celeux & Govaert 1995): with W_k the weighted scatter of component k about its
    new mean and n = sum_k N_k, ``B_k = diag(W_k) / |diag(W_k)|^(1/D)`` and
    ``lambda = sum_k |diag(W_k)|^(1/D) / n`` (for a fixed lambda, tr(W_k B_k^-1) is smallest
    for B_k proportional to diag(W_k), and lambda then solves a one-dimensional problem).
    ``reg_covar`` is added to the scatter, ``W_k + reg_covar N_k I``, before the update.
    """

    name = "EVI"
    mclust_name = "EVI"
    aliases = ()
    description = (
        "each component has its own diagonal covariance, all of the same volume "
        "(features uncorrelated)"
    )
    volume, shape, orientation = "equal", "variable", "axis-aligned"
    plot_style = ("#7f7f7f", "p", "-.")

    def prior_terms(self, dof, n_components, n_features):
        return (dof + 2) / n_components, 1.0

    def n_covariance_parameters(self, n_components, n_features):
        return 1 + n_components * (n_features - 1)

    def _constrained(self, W, n_k, previous=None):
        root = _scatter.geometric_mean(W)  # |diag W_k|^(1/D), (K,)
        volume = root.sum() / n_k.sum()
        # A component whose scatter is flat along a feature keeps it flat (singular: the
        # precision Cholesky factor reports the collapse) instead of dividing by zero.
        shape = W / np.where(root > 0, root, 1.0)[:, None]
        return volume * shape

    def check_precisions_init(self, precisions) -> None:
        super().check_precisions_init(precisions)
        _scatter.equal_across(
            _scatter.log_geometric_mean(np.asarray(precisions, dtype=np.float64)),
            "volume", self, "the product of each component's precisions",
            _scatter.constraint_tolerance(precisions),
        )


    # -- many mixtures at once ---------------------------------------------------------
    def batched_covariances(self, W, n_k, previous=None):
        D = W.shape[-1]
        root = np.exp(np.log(W).sum(axis=-1) / D)  # (S, K)
        volume = root.sum(axis=1) / n_k.sum(axis=1)
        # Divided first: volume * W overflowed (1e160 * 1e161) on data of scale 1e80.
        var = volume[:, None, None] * (W / np.where(root > 0, root, 1.0)[..., None])
        return var[..., None] * identity(D)

    def batched_projection(self, cov):
        return diagonal_projection(cov, "volume")


FAMILY = EVI()
