"""mclust's EVE: equal volume, variable shape, equal orientation."""

from __future__ import annotations

import numpy as np

from ._batched import common_orientation, orientation_projection
from ._eigen import EigenFamily, commutator_error, spread


class EVE(EigenFamily):
    """Sigma_k = lambda D A_k D^T: one volume and orientation, a shape per component.

    M-step (Browne & McNicholas 2014): for a fixed orientation D the exact maximisers are
    ``A_k = diag(D^T W_k D) / g_k`` with ``g_k`` its geometric mean and
    ``lambda = sum_k g_k / sum_k n_k``; D is improved by exact plane rotations
    (:mod:`gaussmix.families._eigen`), re-solving A_k and lambda
    after each, from the previous D (else the pooled scatter's eigenvectors), until the
    relative change of the objective is below ``inner_tol``. ``W_k`` is the scatter plus
    ``reg_covar * n_k`` on its diagonal (before the update, so D stays shared).
    """

    name = "EVE"
    mclust_name = "EVE"
    description = "the components share one volume and orientation, each has its own shape"
    volume, shape, orientation = "equal", "variable", "equal"
    plot_style = ("#843c39", "X", "-.")

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
                W[None], np.asarray(n, dtype=np.float64)[None], previous, equal_volume=True,
                sweeps=self.inner_max_iter, objective_tol=self.inner_tol,
            )[0]

    def constraint_violation(self, covariances, rtol=1e-6):
        if commutator_error(covariances) > rtol:
            return "its covariances do not share their eigenvectors (equal orientation)"
        _, log_det = np.linalg.slogdet(covariances)
        if spread(np.exp(log_det / covariances.shape[-1])) > rtol:
            return "its covariances' determinants differ (equal volume)"
        return ""


    # -- many mixtures at once ---------------------------------------------------------
    joint_solver = staticmethod(common_orientation)
    joint_parameter = True  # equal volume

    def batched_covariances(self, W, n_k, previous=None):
        return common_orientation(W, n_k, previous, equal_volume=True)

    def batched_projection(self, cov):
        return orientation_projection(cov, equal_volume=True)


FAMILY = EVE()
