"""mclust's VVE: variable volume and shape, equal orientation."""

from __future__ import annotations

from ._eigen import CommonOrientationFamily, commutator_error


class VVE(CommonOrientationFamily):
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
    equal_volume = False
    plot_style = ("#8c6d31", "d", ":")

    def constraint_violation(self, covariances, rtol=1e-6):
        if commutator_error(covariances) > rtol:
            return "its covariances do not share their eigenvectors (equal orientation)"
        return ""


FAMILY = VVE()
