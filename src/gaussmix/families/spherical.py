"""``spherical`` (mclust VII): each component has its own single variance."""

from __future__ import annotations

import numpy as np

from ._base import VarianceFamily


class Spherical(VarianceFamily):
    """sigma_k^2 I per component: K parameters."""

    name = "spherical"
    mclust_name = "VII"
    aliases = ("VII",)
    description = "each component has its own single variance (round clusters)"
    volume, shape, orientation = "variable", "identity", "identity"
    precision_form = "scalar"
    statistic = "trace"
    hides_flat_directions = True
    covariance_is_scatter = True
    plot_style = ("#1f77b4", "o", "-")

    def prior_terms(self, dof, n_components, n_features):
        return 1 + (dof + 2) / n_features, 1.0 / n_features

    @property
    def words(self) -> str:
        return f"{self.volume} volume, spherical"

    def covariance_shape(self, n_components, n_features):
        return (n_components,)

    def n_covariance_parameters(self, n_components, n_features):
        return n_components

    def min_points(self, n_features):
        return 2  # a variance needs two distinct values

    def log_det_cholesky(self, prec_chol, n_features):
        return n_features * np.log(prec_chol)

    def component_covariance(self, covariances, k, n_features):
        return np.eye(n_features) * covariances[k]

    def from_full(self, full, weights):
        full = np.asarray(full, dtype=np.float64)
        return np.trace(full, axis1=1, axis2=2) / full.shape[-1]

    def scatter(self, Xc, resp):
        return resp.T @ np.einsum("nd,nd->n", Xc, Xc)

    def moved_scatter(self, s2, s1, nk, delta):
        return s2 + np.sum(2.0 * s1 * delta + nk[:, None] * delta**2, axis=1)

    def m_step_covariances(self, nk, s1, s2, reg_covar, guard=0.0, previous=None):
        n_features = s1.shape[1]
        d = s1 / np.where(nk > 0, nk, 1.0)[:, None]
        return (s2 - np.sum(s1 * d, axis=1)) / ((nk + guard) * n_features) + reg_covar

    def solve_scatter(self, W, n, n_features, previous=None):
        return W / (n * n_features)

    def variance_checks(self, covariances, means, scale):
        K = means.shape[0]
        variances = np.asarray(covariances, dtype=np.float64).reshape(K)
        mean_var = float(np.mean(np.diag(scale)))
        template = (
            "its variance {var} is at the regularisation floor (reg_covar={reg}; the data's "
            "mean variance is {data})"
        )
        for k, var in enumerate(variances):
            yield k, float(var), float(np.mean(means[k] ** 2)), mean_var, template


FAMILY = Spherical()
