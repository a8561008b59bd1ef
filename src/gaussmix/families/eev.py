"""``EEV`` (mclust): full covariances lambda D_k A D_k^T of equal volume and shape."""

from __future__ import annotations

import numpy as np

from . import _scatter
from ._batched import eigenvalue_projection, symmetrised
from .full import ConstrainedFull


class EEV(ConstrainedFull):
    """Sigma_k = lambda D_k A D_k^T, |A| = 1: D + K D (D - 1) / 2 parameters.

    ``D_k`` is orthogonal (each component's orientation), ``A`` diagonal (the shape).

    Stored as scikit-learn's full covariances, shape (K, D, D); every matrix has the same
    eigenvalues (lambda A), along its own orientation D_k.

    M-step (Celeux & Govaert 1995): with W_k = L_k Omega_k L_k^T the eigen-decomposition of
    the weighted scatter of component k about its new mean (eigenvalues in increasing
    order) and n = sum_k N_k, ``D_k = L_k``, ``A = sum_k Omega_k / |sum_k Omega_k|^(1/D)``
    and ``lambda = |sum_k Omega_k|^(1/D) / n``, that is ``Sigma_k = L_k (sum_j Omega_j / n)
    L_k^T``. (For a fixed A, tr(W_k D_k A^-1 D_k^T) is smallest, by von Neumann's trace
    inequality, when D_k pairs the largest eigenvalue of W_k with the largest of A; A then
    solves EEI's problem on the summed eigenvalues.) ``reg_covar`` is added to the scatter,
    ``W_k + reg_covar N_k I``, before the update.
    """

    name = "EEV"
    mclust_name = "EEV"
    aliases = ()
    description = (
        "each component has its own orientation, all of the same volume and shape "
        "(the same eigenvalues)"
    )
    volume, shape, orientation = "equal", "equal", "variable"
    plot_style = ("#bcbd22", "*", "--")

    def prior_terms(self, dof, n_components, n_features):
        return (dof + n_features + 2) / n_components, 1.0

    def n_covariance_parameters(self, n_components, n_features):
        return n_features + n_components * n_features * (n_features - 1) // 2

    def min_points(self, n_features):
        return 1  # the eigenvalues are pooled over all components

    def _constrained(self, W, n_k):
        eigval, eigvec = np.linalg.eigh(W)  # increasing eigenvalues, (K, D), (K, D, D)
        pooled = eigval.sum(axis=0) / n_k.sum()  # lambda A, (D,)
        return _scatter.symmetrise((eigvec * pooled) @ np.swapaxes(eigvec, 1, 2))

    def check_precisions_init(self, precisions) -> None:
        super().check_precisions_init(precisions)
        eigval = np.linalg.eigvalsh(np.asarray(precisions, dtype=np.float64))
        _scatter.equal_across(
            np.log(eigval), "volume and shape", self, "the same eigenvalues",
            _scatter.constraint_tolerance(precisions),
        )


    # -- many mixtures at once ---------------------------------------------------------
    def batched_covariances(self, W, n_k, previous=None):
        eigval, eigvec = np.linalg.eigh(W)
        pooled = eigval.sum(axis=1) / n_k.sum(axis=1)[:, None]  # (S, D)
        return symmetrised((eigvec * pooled[:, None, None, :]) @ np.swapaxes(eigvec, -1, -2))

    def batched_projection(self, cov):
        return eigenvalue_projection(cov, pool_volume=True)


FAMILY = EEV()
