"""mclust's EVE: equal volume, variable shape, equal orientation."""

from __future__ import annotations

import numpy as np

from ._eigen import CommonOrientationFamily, commutator_error, spread


class EVE(CommonOrientationFamily):
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
    equal_volume = True
    plot_style = ("#843c39", "X", "-.")

    def constraint_violation(self, covariances, rtol=1e-6):
        if commutator_error(covariances) > rtol:
            return "its covariances do not share their eigenvectors (equal orientation)"
        _, log_det = np.linalg.slogdet(covariances)
        if spread(np.exp(log_det / covariances.shape[-1])) > rtol:
            return "its covariances' determinants differ (equal volume)"
        return ""


FAMILY = EVE()
