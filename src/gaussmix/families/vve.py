"""mclust's VVE: variable volume and shape, equal orientation."""

from __future__ import annotations

import numpy as np

from ._batched import common_orientation, orientation_projection
from ._eigen import EigenFamily, commutator_error


class VVE(EigenFamily):
    """Sigma_k = lambda_k D A_k D^T: one orientation, a volume and shape per component.

    M-step (Browne & McNicholas 2014; the common principal components of Flury): for a
    fixed orientation D the exact maximiser is ``lambda_k A_k = diag(D^T W_k D) / n_k``;
    D is improved by exact plane rotations
    (:mod:`gaussmix.families._eigen`), re-solving the variances
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
        """One mixture's update: :func:`~gaussmix.families._batched.common_orientation`
        with S = 1, at most ``inner_max_iter`` sweeps, to ``inner_tol`` (objective)."""
        W = np.asarray(W, dtype=np.float64)
        if previous is not None:
            previous = np.asarray(previous, dtype=np.float64)[None]
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return common_orientation(
                W[None], np.asarray(n, dtype=np.float64)[None], previous, equal_volume=False,
                sweeps=self.inner_max_iter, objective_tol=self.inner_tol,
            )[0]

    def constraint_violation(self, covariances, rtol=1e-6):
        if commutator_error(covariances) > rtol:
            return "its covariances do not share their eigenvectors (equal orientation)"
        return ""


    # -- many mixtures at once ---------------------------------------------------------
    joint_solver = staticmethod(common_orientation)
    joint_parameter = False  # equal volume

    def batched_covariances(self, W, n_k, previous=None):
        return common_orientation(W, n_k, previous, equal_volume=False)

    def batched_projection(self, cov):
        return orientation_projection(cov, equal_volume=False)


FAMILY = VVE()
