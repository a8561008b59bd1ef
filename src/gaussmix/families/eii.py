"""``EII`` (mclust): all components share one spherical covariance, lambda I."""

from __future__ import annotations

import numpy as np

from . import _scatter
from ._batched import diagonal_view, identity
from .spherical import Spherical


class EII(Spherical):
    """Sigma_k = lambda I for every k: one parameter.

    Stored as scikit-learn's spherical covariances, shape (K,), the value repeated.

    M-step (Celeux & Govaert 1995): with W_k the weighted scatter of component k about
    its new mean and n = sum_k N_k, ``lambda = tr(sum_k W_k) / (n D)``. ``reg_covar`` is
    added to the scatter, ``W_k + reg_covar N_k I``, before the update, which adds exactly
    ``reg_covar`` to lambda.
    """

    name = "EII"
    mclust_name = "EII"
    aliases = ()
    description = "all components share one single variance (round clusters of equal size)"
    volume, shape, orientation = "equal", "identity", "identity"
    hides_flat_directions = False  # the variance is pooled: one component cannot collapse
    covariance_is_scatter = False
    plot_style = ("#9467bd", "v", "-")

    def prior_terms(self, dof, n_components, n_features):
        return 1 + (dof + 2) / (n_components * n_features), 0.0

    @property
    def words(self) -> str:
        return f"{self.volume} volume, spherical"

    def n_covariance_parameters(self, n_components, n_features):
        return 1

    def min_points(self, n_features):
        return 1  # the variance is pooled over all components

    def m_step_covariances(self, nk, s1, s2, reg_covar, guard=0.0, previous=None):
        W, n_k = _scatter.regularised_scatter("trace", nk, s1, s2, reg_covar, guard)
        return np.full(n_k.shape[0], np.sum(W) / (np.sum(n_k) * s1.shape[1]))

    def solve_scatter(self, W, n, n_features, previous=None):
        return np.full(n.shape[0], np.sum(W) / (np.sum(n) * n_features))

    def from_full(self, full, weights):
        full = np.asarray(full, dtype=np.float64)
        weights = np.asarray(weights, dtype=np.float64)
        traces = np.trace(full, axis1=1, axis2=2) / full.shape[-1]
        return np.full(full.shape[0], weights @ traces / weights.sum())

    def check_precisions_init(self, precisions) -> None:
        super().check_precisions_init(precisions)
        _scatter.equal_across(
            np.log(precisions), "volume", self, "the single precision 1 / lambda",
            _scatter.constraint_tolerance(precisions),
        )


    # -- many mixtures at once ---------------------------------------------------------
    def batched_covariances(self, W, n_k, previous=None):
        S, K, D = W.shape
        lam = W.sum(axis=(1, 2)) / (D * n_k.sum(axis=1))
        return lam[:, None, None, None] * identity(D) + np.zeros((S, K, D, D))

    def batched_projection(self, cov):
        K, D = cov.shape[1], cov.shape[-1]
        lam = diagonal_view(cov).sum(axis=(1, 2)) / (K * D)
        return np.broadcast_to(lam[:, None, None, None] * identity(D), cov.shape).copy()


FAMILY = EII()
