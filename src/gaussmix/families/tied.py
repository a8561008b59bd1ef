"""``tied`` (mclust EEE): all components share one full covariance matrix."""

from __future__ import annotations

import numpy as np

from ._base import MatrixFamily


class Tied(MatrixFamily):
    """Sigma, one (D, D) matrix for all components: D (D + 1) / 2 parameters."""

    name = "tied"
    mclust_name = "EEE"
    aliases = ("EEE",)
    description = "all components share one full covariance matrix"
    volume, shape, orientation = "equal", "equal", "equal"
    precision_form = "shared_full"
    statistic = "pooled"
    shared = True
    covariance_is_scatter = True
    plot_style = ("#2ca02c", "^", "-.")

    def prior_terms(self, dof, n_components, n_features):
        return (dof + n_features + 1 + n_components) / n_components, 1.0 / n_components

    def covariance_shape(self, n_components, n_features):
        return (n_features, n_features)

    def n_covariance_parameters(self, n_components, n_features):
        return n_features * (n_features + 1) // 2

    def min_points(self, n_features):
        return 1  # the covariance is pooled over all components

    def component_covariance(self, covariances, k, n_features):
        return covariances

    def from_full(self, full, weights):
        weights = np.asarray(weights, dtype=np.float64)
        return np.tensordot(weights / weights.sum(), np.asarray(full, dtype=np.float64), axes=1)

    def scatter(self, Xc, resp):
        return (Xc * resp.sum(axis=1)[:, None]).T @ Xc

    def moved_scatter(self, s2, s1, nk, delta):
        return s2 + self._moved_matrix(s1, nk, delta).sum(axis=0)

    def m_step_covariances(self, nk, s1, s2, reg_covar, guard=0.0, previous=None):
        n_features = s1.shape[1]
        d = s1 / np.where(nk > 0, nk, 1.0)[:, None]
        cov = (s2 - s1.T @ d) / (nk + guard).sum()
        cov = 0.5 * (cov + cov.T)
        cov.flat[:: n_features + 1] += reg_covar
        return cov

    def solve_scatter(self, W, n, n_features, previous=None):
        cov = W / np.sum(n)
        return 0.5 * (cov + cov.T)


FAMILY = Tied()
