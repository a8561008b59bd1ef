"""``EVV`` (mclust): full covariances lambda C_k of equal volume."""

from __future__ import annotations

import numpy as np

from . import _scatter
from ._batched import determinant_projection
from .full import ConstrainedFull


class EVV(ConstrainedFull):
    """Sigma_k = lambda C_k, |C_k| = 1: 1 + K (D (D + 1) / 2 - 1) parameters.

    ``C_k = D_k A_k D_k^T`` holds each component's shape and orientation.

    Stored as scikit-learn's full covariances, shape (K, D, D); every matrix has the same
    determinant (the volume lambda^D).

    M-step (Celeux & Govaert 1995): with W_k the weighted scatter of component k about its
    new mean and n = sum_k N_k, ``C_k = W_k / |W_k|^(1/D)`` and
    ``lambda = sum_k |W_k|^(1/D) / n`` (for a fixed lambda, tr(W_k C_k^-1) with |C_k| = 1 is
    smallest for C_k proportional to W_k). ``reg_covar`` is added to the scatter,
    ``W_k + reg_covar N_k I``, before the update.
    """

    name = "EVV"
    mclust_name = "EVV"
    aliases = ()
    description = "each component has its own full covariance matrix, all of the same volume"
    volume, shape, orientation = "equal", "variable", "variable"
    plot_style = ("#17becf", "h", "-")

    def prior_terms(self, dof, n_components, n_features):
        return None  # no update under the conjugate prior (none in mclust either)

    def n_covariance_parameters(self, n_components, n_features):
        return 1 + n_components * (n_features * (n_features + 1) // 2 - 1)

    def _constrained(self, W, n_k):
        root = _scatter.det_root(W)  # |W_k|^(1/D), (K,)
        volume = root.sum() / n_k.sum()
        # A singular scatter stays singular (the Cholesky factor reports the collapse).
        # Divided first: volume * W overflowed (1e200 * 1e200) on data of scale 1e100.
        return volume * (W / np.where(root > 0, root, 1.0)[:, None, None])

    def check_precisions_init(self, precisions) -> None:
        super().check_precisions_init(precisions)
        _sign, log_det = np.linalg.slogdet(np.asarray(precisions, dtype=np.float64))
        _scatter.equal_across(
            log_det / precisions.shape[-1], "volume", self, "the same determinant",
            _scatter.constraint_tolerance(precisions),
        )


    # -- many mixtures at once ---------------------------------------------------------
    def batched_covariances(self, W, n_k, previous=None):
        D = W.shape[-1]
        sign, logdet = np.linalg.slogdet(W)
        root = np.where(sign > 0, np.exp(logdet / D), 0.0)  # (S, K)
        volume = root.sum(axis=1) / n_k.sum(axis=1)
        scale = volume[:, None] / np.where(root > 0, root, 1.0)
        return scale[..., None, None] * W

    def batched_projection(self, cov):
        return determinant_projection(cov, "volume")


FAMILY = EVV()
