"""mclust's VEV: variable volume, equal shape, variable orientation."""

from __future__ import annotations

import numpy as np

from ._batched import (
    COLD_ROUNDS,
    INNER_TOL,
    WARM_ROUNDS,
    eigenvalue_projection,
    largest,
    rebuilt,
    symmetrised,
)
from ._batched import geometric_mean as batched_geometric_mean
from ._eigen import EigenFamily, spread
from ._scatter import geometric_mean


class VEV(EigenFamily):
    """Sigma_k = lambda_k D_k A D_k^T with one shared shape A (det A = 1).

    M-step (Celeux & Govaert 1995, model [lambda_k D_k A D_k^T]): with ``W_k = L_k Omega_k
    L_k^T`` (eigenvalues in decreasing order), ``D_k = L_k`` is exact for any A sorted the
    same way; then alternate the exact maximisers ``lambda_k = tr(Omega_k A^-1) / (D n_k)``
    and ``A = M / det(M)^(1/D)`` with ``M = sum_k Omega_k / lambda_k``, from the previous A
    (else ``sum_k Omega_k / n_k``), until A moves by less than ``inner_tol`` (relative).
    ``W_k`` is the scatter plus ``reg_covar * n_k`` on its diagonal.
    """

    iterative = True
    name = "VEV"
    mclust_name = "VEV"
    description = (
        "the components share one shape, each has its own volume and orientation"
    )
    volume, shape, orientation = "variable", "equal", "variable"
    plot_style = ("#637939", "8", "-")

    def prior_terms(self, dof, n_components, n_features):
        return 0.0, 1.0

    def fit_scatter(self, W, n, previous=None):
        """One mixture's update: :meth:`batched_covariances` with S = 1, at most
        ``inner_max_iter`` rounds, to ``inner_tol``."""
        return self._one_of_batch(W, n, previous, rounds=self.inner_max_iter,
                                  tol=self.inner_tol)

    def constraint_violation(self, covariances, rtol=1e-6):
        eig = np.linalg.eigvalsh(covariances)
        if spread(eig / geometric_mean(eig)[:, None]) > rtol:
            return "its covariances' eigenvalues are not proportional (equal shape)"
        return ""


    # -- many mixtures at once ---------------------------------------------------------
    def batched_covariances(self, W, n_k, previous=None, rounds=None, tol=INNER_TOL):
        """The alternating updates above for S mixtures, from the shape of ``previous``
        (at most ``WARM_ROUNDS`` rounds) or of the pooled eigenvalues (``COLD_ROUNDS``),
        or ``rounds``, until A moves by less than ``tol``
        (:mod:`gaussmix.families._batched`)."""
        D = W.shape[-1]
        omega, vectors = np.linalg.eigh(W)
        omega = np.maximum(omega[..., ::-1], 1e-300)  # decreasing, (S, K, D)
        vectors = vectors[..., ::-1]
        if previous is not None:
            eig = np.linalg.eigvalsh(previous)[..., ::-1]
            shape = (eig / batched_geometric_mean(eig)[..., None]).sum(axis=1) / eig.shape[1]
        else:
            shape = (omega / n_k[..., None]).sum(axis=1)
        shape = shape / batched_geometric_mean(shape)[:, None]  # (S, D)
        if rounds is None:
            rounds = COLD_ROUNDS if previous is None else WARM_ROUNDS
        counts = D * n_k
        for _ in range(rounds + 1):
            volume = np.einsum("skd,sd->sk", omega, 1.0 / shape) / counts
            if _ == rounds:
                break
            new = (omega / volume[..., None]).sum(axis=1)
            new = new / batched_geometric_mean(new)[:, None]
            change = largest(new / shape - 1.0)
            shape = new
            if not change > tol:
                volume = np.einsum("skd,sd->sk", omega, 1.0 / shape) / counts
                break
        return symmetrised(rebuilt(vectors, volume[..., None] * shape[:, None]))

    def batched_projection(self, cov):
        return eigenvalue_projection(cov, pool_volume=False)


FAMILY = VEV()
