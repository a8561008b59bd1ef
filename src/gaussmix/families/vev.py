"""mclust's VEV: variable volume, equal shape, variable orientation."""

from __future__ import annotations

import numpy as np

from ._eigen import EigenFamily, spread
from ._scatter import geometric_mean


class VEV(EigenFamily):
    """Sigma_k = lambda_k D_k A D_k^T with one shared shape A (det A = 1).

    M-step (Celeux & Govaert 1995, model [lambda_k D_k A D_k^T]): with ``W_k = L_k Omega_k
    L_k^T`` (eigenvalues in decreasing order), ``D_k = L_k`` is exact for any A sorted the
    same way; then alternate the exact maximisers ``lambda_k = tr(Omega_k A^-1) / (D n_k)``
    and ``A = M / det(M)^(1/D)`` with ``M = sum_k Omega_k / lambda_k``, from the previous A
    (else ``sum_k Omega_k / n_k``), until the relative change of the objective is below
    ``inner_tol``. ``W_k`` is the scatter plus ``reg_covar * n_k`` on its diagonal.
    """

    name = "VEV"
    mclust_name = "VEV"
    description = (
        "the components share one shape, each has its own volume and orientation"
    )
    volume, shape, orientation = "variable", "equal", "variable"
    plot_style = ("#637939", "8", "-")

    def fit_scatter(self, W, n, previous=None):
        n_features = W.shape[-1]
        omega, vectors = np.linalg.eigh(W)
        omega = np.maximum(omega[:, ::-1], 1e-300)  # decreasing
        vectors = vectors[:, :, ::-1]
        if previous is not None:
            eig = np.linalg.eigvalsh(np.asarray(previous, dtype=np.float64))[:, ::-1]
            shape = (eig / geometric_mean(eig)[:, None]).mean(axis=0)
        else:
            shape = (omega / n[:, None]).sum(axis=0)
        shape = shape / geometric_mean(shape)
        old = np.inf
        for _ in range(self.inner_max_iter):
            trace = omega @ (1.0 / shape)
            volume = trace / (n_features * n)
            value = float(np.sum(n * n_features * np.log(volume) + trace / volume))
            if self._converged(old, value):
                break
            old = value
            shape = (omega / volume[:, None]).sum(axis=0)
            shape = shape / geometric_mean(shape)
        variances = volume[:, None] * shape
        cov = np.einsum("kia,ka,kja->kij", vectors, variances, vectors)
        return 0.5 * (cov + np.swapaxes(cov, 1, 2))

    def constraint_violation(self, covariances, rtol=1e-6):
        eig = np.linalg.eigvalsh(covariances)
        if spread(eig / geometric_mean(eig)[:, None]) > rtol:
            return "its covariances' eigenvalues are not proportional (equal shape)"
        return ""


FAMILY = VEV()
