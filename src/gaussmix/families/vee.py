"""mclust's VEE: variable volume, equal shape and orientation (Sigma_k = lambda_k C)."""

from __future__ import annotations

import numpy as np

from ._batched import (
    COLD_ROUNDS,
    INNER_TOL,
    WARM_ROUNDS,
    determinant_projection,
    largest,
    spd_inverse,
)
from ._batched import normalised as unit_determinant
from ._eigen import EigenFamily, normalised, spread


class VEE(EigenFamily):
    """Sigma_k = lambda_k C with one shared C of determinant one: K + D (D + 1) / 2 - 1.

    M-step (Celeux & Govaert 1995, model [lambda_k C]): alternate the exact maximisers
    ``lambda_k = tr(W_k C^-1) / (D n_k)`` and ``C = M / det(M)^(1/D)`` with
    ``M = sum_k W_k / lambda_k``, from the previous C (else the pooled scatter's), until C
    moves by less than ``inner_tol`` (relative). ``W_k`` is the scatter plus
    ``reg_covar * n_k`` on its diagonal (before the update, so C stays shared).
    """

    iterative = True
    name = "VEE"
    mclust_name = "VEE"
    description = "the components share one shape and orientation, each has its own volume"
    volume, shape, orientation = "variable", "equal", "equal"
    plot_style = ("#393b79", "P", "--")

    def fit_scatter(self, W, n, previous=None):
        """One mixture's update: :meth:`batched_covariances` with S = 1, at most
        ``inner_max_iter`` rounds, to ``inner_tol``."""
        return self._one_of_batch(W, n, previous, rounds=self.inner_max_iter,
                                  tol=self.inner_tol)

    def constraint_violation(self, covariances, rtol=1e-6):
        shapes, _ = normalised(covariances)
        if spread(shapes) > rtol:
            return "its covariances are not multiples of one matrix (equal shape and orientation)"
        return ""


    # -- many mixtures at once ---------------------------------------------------------
    def batched_covariances(self, W, n_k, previous=None, rounds=None, tol=INNER_TOL):
        """The alternating updates above for S mixtures, from the normalised mean of the
        ``previous`` covariances (at most ``WARM_ROUNDS`` rounds) or of the scatters
        (``COLD_ROUNDS``), or ``rounds``, until C moves by less than ``tol`` (relative)
        (:mod:`gaussmix.families._batched`)."""
        D = W.shape[-1]
        if previous is not None:
            shape = unit_determinant(unit_determinant(previous).sum(axis=1) / previous.shape[1])
        else:
            shape = unit_determinant(W.sum(axis=1))
        if rounds is None:
            rounds = COLD_ROUNDS if previous is None else WARM_ROUNDS
        counts = D * n_k
        for _ in range(rounds + 1):
            inv = spd_inverse(shape)
            trace = np.maximum(np.einsum("skij,sji->sk", W, inv), 1e-300)
            volume = trace / counts  # (S, K)
            if _ == rounds:
                break
            new = unit_determinant(np.einsum("sk,skij->sij", 1.0 / volume, W))
            new = 0.5 * (new + np.swapaxes(new, -1, -2))
            change = largest(new - shape) / max(largest(new), 1e-300)
            shape = new
            if not change > tol:
                inv = spd_inverse(shape)
                trace = np.maximum(np.einsum("skij,sji->sk", W, inv), 1e-300)
                volume = trace / counts
                break
        return volume[..., None, None] * shape[:, None]

    def batched_projection(self, cov):
        return determinant_projection(cov, "unit")


FAMILY = VEE()
