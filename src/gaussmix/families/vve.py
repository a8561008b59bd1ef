"""mclust's VVE: variable volume and shape, equal orientation."""

from __future__ import annotations

import numpy as np

from ._eigen import EigenFamily, commutator_error, fit_common_orientation, starting_orientation


class VVE(EigenFamily):
    """Sigma_k = lambda_k D A_k D^T: one orientation, a volume and shape per component.

    M-step (Browne & McNicholas 2014; the common principal components of Flury): for a
    fixed orientation D the exact maximiser is ``lambda_k A_k = diag(D^T W_k D) / n_k``;
    D is improved by exact plane rotations
    (:func:`~gaussmix.families._eigen.common_orientation_sweep`), re-solving the variances
    after each, from the previous D (else the pooled scatter's eigenvectors), until the
    relative change of the objective is below ``inner_tol``. ``W_k`` is the scatter plus
    ``reg_covar * n_k`` on its diagonal (before the update, so D stays shared).
    """

    name = "VVE"
    mclust_name = "VVE"
    description = "the components share one orientation, each has its own volume and shape"
    volume, shape, orientation = "variable", "variable", "equal"
    plot_style = ("#8c6d31", "d", ":")

    def min_points(self, n_features):
        return n_features + 1  # a shape per component along a shared, free orientation

    def fit_scatter(self, W, n, previous=None):
        start = starting_orientation(W, previous)

        def variances(diag):
            return np.maximum(diag, 1e-300) / n[:, None]

        return fit_common_orientation(self, W, n, start, variances)

    def constraint_violation(self, covariances, rtol=1e-6):
        if commutator_error(covariances) > rtol:
            return "its covariances do not share their eigenvectors (equal orientation)"
        return ""


FAMILY = VVE()
