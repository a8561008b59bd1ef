"""``EVV`` (mclust): full covariances lambda C_k of equal volume."""

from __future__ import annotations

import numpy as np

from . import _scatter
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


FAMILY = EVV()
