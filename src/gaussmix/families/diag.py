"""``diag`` (mclust VVI): each component has its own variance per feature."""

from __future__ import annotations

import numpy as np

from . import _scatter
from ._base import VarianceFamily


class Diag(VarianceFamily):
    """diag(sigma_k1^2, ..., sigma_kD^2) per component: K D parameters."""

    name = "diag"
    mclust_name = "VVI"
    aliases = ("VVI",)
    description = "each component has its own diagonal covariance (features uncorrelated)"
    volume, shape, orientation = "variable", "variable", "axis-aligned"
    precision_form = "diagonal"
    statistic = "diagonal"
    covariance_is_scatter = True
    plot_style = ("#ff7f0e", "s", "--")

    def prior_terms(self, dof, n_components, n_features):
        return dof + 3, 1.0

    def covariance_shape(self, n_components, n_features):
        return (n_components, n_features)

    def n_covariance_parameters(self, n_components, n_features):
        return n_components * n_features

    def min_points(self, n_features):
        return 2  # a variance needs two distinct values

    def log_det_cholesky(self, prec_chol, n_features):
        return np.log(prec_chol).sum(axis=1)

    def component_covariance(self, covariances, k, n_features):
        return np.diag(covariances[k])

    def from_full(self, full, weights):
        return np.diagonal(np.asarray(full, dtype=np.float64), axis1=1, axis2=2).copy()

    def scatter(self, Xc, resp):
        return resp.T @ (Xc * Xc)

    def moved_scatter(self, s2, s1, nk, delta):
        return s2 + 2.0 * s1 * delta + nk[:, None] * delta**2

    def m_step_covariances(self, nk, s1, s2, reg_covar, guard=0.0, previous=None):
        d = s1 / np.where(nk > 0, nk, 1.0)[:, None]
        return (s2 - s1 * d) / (nk + guard)[:, None] + reg_covar

    def solve_scatter(self, W, n, n_features, previous=None):
        return W / n[:, None]

    def variance_checks(self, covariances, means, scale):
        K, D = means.shape
        variances = np.asarray(covariances, dtype=np.float64).reshape(K, D)
        data_var = np.diag(scale)
        for k, var in enumerate(variances):
            for j in range(D):
                template = (
                    f"its variance of feature {j} is {{var}}, at the regularisation floor "
                    "(reg_covar={reg}; the data's variance there is {data})"
                )
                yield k, float(var[j]), float(means[k, j] ** 2), float(data_var[j]), template


class ConstrainedDiag(Diag):
    """A diagonal model with a constraint across components (mclust's EEI, VEI, EVI):
    stored as diag, its M-step and projection are ``_constrained`` applied to the
    regularised diagonal scatters (``_scatter.regularised_scatter``)."""

    covariance_is_scatter = False

    def _constrained(self, W, n_k, previous=None):
        """Covariances (K, D) maximising the expected complete-data log-likelihood for
        diagonal scatters ``W`` (K, D) and counts ``n_k`` under the family's constraint."""
        raise NotImplementedError

    def m_step_covariances(self, nk, s1, s2, reg_covar, guard=0.0, previous=None):
        W, n_k = _scatter.regularised_scatter("diagonal", nk, s1, s2, reg_covar, guard)
        return self._constrained(W, n_k, previous)

    def solve_scatter(self, W, n, n_features, previous=None):
        return self._constrained(W, n, previous)

    def from_full(self, full, weights):
        weights = np.asarray(weights, dtype=np.float64)
        diagonal = np.diagonal(np.asarray(full, dtype=np.float64), axis1=1, axis2=2)
        return self._constrained(weights[:, None] * diagonal, weights)


FAMILY = Diag()
