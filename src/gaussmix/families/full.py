"""``full`` (mclust VVV): each component has its own unconstrained covariance matrix."""

from __future__ import annotations

import numpy as np

from . import _scatter
from ._base import MatrixFamily


class Full(MatrixFamily):
    """Sigma_k, one full (D, D) matrix per component: K D (D + 1) / 2 parameters."""

    name = "full"
    mclust_name = "VVV"
    aliases = ("VVV",)
    description = "each component has its own full covariance matrix"
    volume, shape, orientation = "variable", "variable", "variable"
    precision_form = "full"
    statistic = "full"
    covariance_is_scatter = True
    plot_style = ("#d62728", "D", ":")

    def prior_terms(self, dof, n_components, n_features):
        return dof + n_features + 2, 1.0

    def covariance_shape(self, n_components, n_features):
        return (n_components, n_features, n_features)

    def n_covariance_parameters(self, n_components, n_features):
        return n_components * n_features * (n_features + 1) // 2

    def min_points(self, n_features):
        return n_features + 1  # a D x D covariance from D points or fewer is singular

    def component_covariance(self, covariances, k, n_features):
        return covariances[k]

    def full_covariances(self, covariances, n_components, n_features):
        return np.asarray(covariances, dtype=np.float64).reshape(
            n_components, n_features, n_features
        )

    def from_full(self, full, weights):
        return np.asarray(full, dtype=np.float64)

    def scatter(self, Xc, resp):
        return np.einsum("nk,ni,nj->kij", resp, Xc, Xc)

    def moved_scatter(self, s2, s1, nk, delta):
        return s2 + self._moved_matrix(s1, nk, delta)

    def m_step_covariances(self, nk, s1, s2, reg_covar, guard=0.0, previous=None):
        n_features = s1.shape[1]
        d = s1 / np.where(nk > 0, nk, 1.0)[:, None]
        cov = (s2 - s1[:, :, None] * d[:, None, :]) / (nk + guard)[:, None, None]
        cov = 0.5 * (cov + np.swapaxes(cov, 1, 2))
        cov[:, np.arange(n_features), np.arange(n_features)] += reg_covar
        return cov

    def solve_scatter(self, W, n, n_features, previous=None):
        return _scatter.symmetrise(W / n[:, None, None])


class ConstrainedFull(Full):
    """A full-matrix model with a closed-form constraint across components (mclust's EEV,
    EVV): stored as full, its M-step and projection are ``_constrained`` applied to the
    regularised scatters (``_scatter.regularised_scatter``)."""

    covariance_is_scatter = False

    def _constrained(self, W, n_k):
        """Covariances (K, D, D) maximising the expected complete-data log-likelihood for
        scatters ``W`` (K, D, D) and counts ``n_k`` under the family's constraint."""
        raise NotImplementedError

    def m_step_covariances(self, nk, s1, s2, reg_covar, guard=0.0, previous=None):
        W, n_k = _scatter.regularised_scatter("full", nk, s1, s2, reg_covar, guard)
        return self._constrained(W, n_k)

    def solve_scatter(self, W, n, n_features, previous=None):
        return self._constrained(W, n)

    def from_full(self, full, weights):
        weights = np.asarray(weights, dtype=np.float64)
        full = np.asarray(full, dtype=np.float64)
        return self._constrained(weights[:, None, None] * full, weights)


FAMILY = Full()
