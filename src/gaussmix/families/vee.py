"""mclust's VEE: variable volume, equal shape and orientation (Sigma_k = lambda_k C)."""

from __future__ import annotations

import numpy as np

from ._eigen import EigenFamily, normalised, spread


class VEE(EigenFamily):
    """Sigma_k = lambda_k C with one shared C of determinant one: K + D (D + 1) / 2 - 1.

    M-step (Celeux & Govaert 1995, model [lambda_k C]): alternate the exact maximisers
    ``lambda_k = tr(W_k C^-1) / (D n_k)`` and ``C = M / det(M)^(1/D)`` with
    ``M = sum_k W_k / lambda_k``, from the previous C (else the pooled scatter's), until the
    relative change of the objective is below ``inner_tol``. ``W_k`` is the scatter plus
    ``reg_covar * n_k`` on its diagonal (before the update, so C stays shared).
    """

    name = "VEE"
    mclust_name = "VEE"
    description = "the components share one shape and orientation, each has its own volume"
    volume, shape, orientation = "variable", "equal", "equal"
    plot_style = ("#393b79", "P", "--")

    def fit_scatter(self, W, n, previous=None):
        n_features = W.shape[-1]
        if previous is not None:
            shape, _ = normalised(np.asarray(previous, dtype=np.float64))
            shape, _ = normalised(shape.mean(axis=0))
        else:
            shape, _ = normalised(W.sum(axis=0))
        old = np.inf
        for _ in range(self.inner_max_iter):
            inv = np.linalg.inv(shape)
            trace = np.maximum(np.einsum("kij,ji->k", W, inv), 1e-300)
            volume = trace / (n_features * n)
            value = float(np.sum(n * n_features * np.log(volume) + trace / volume))
            if self._converged(old, value):
                break
            old = value
            shape, _ = normalised(np.tensordot(1.0 / volume, W, axes=1))
            shape = 0.5 * (shape + shape.T)
        return volume[:, None, None] * shape

    def constraint_violation(self, covariances, rtol=1e-6):
        shapes, _ = normalised(covariances)
        if spread(shapes) > rtol:
            return "its covariances are not multiples of one matrix (equal shape and orientation)"
        return ""


FAMILY = VEE()
