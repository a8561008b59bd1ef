"""The EM driver: iterate E-step and M-step until the log-likelihood stabilises.

It knows nothing about covariance families or where the data lives: it is handed a
``statistics`` callable (parameters -> summed :class:`~gaussmix.stats.SufficientStatistics`
over all the data, computed however the data source likes: row blocks in memory, chunks
on a Dask cluster) and calls :func:`~gaussmix.stats.m_step` on the result.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .stats import MixtureParameters, SufficientStatistics, m_step

__all__ = ["EMResult", "run_em"]


@dataclass
class EMResult:
    """Outcome of one EM run.

    Attributes
    ----------
    params : MixtureParameters
        Parameters after the last M-step.
    lower_bound : float
        Mean log-likelihood per sample of the parameters the last E-step used.
    lower_bounds : list of float
        ``lower_bound`` after every iteration (non-decreasing: EM never lowers it).
    n_iter : int
    converged : bool
    """

    params: MixtureParameters
    lower_bound: float
    n_iter: int
    converged: bool
    lower_bounds: list = field(default_factory=list)


def run_em(
    statistics: Callable[[MixtureParameters], SufficientStatistics],
    params: MixtureParameters,
    *,
    reg_covar: float,
    tol: float,
    max_iter: int,
    lower_bound: float = -np.inf,
    callback: Callable[[int, float, float], None] | None = None,
) -> EMResult:
    """Run EM from ``params``.

    Each iteration computes the statistics of the current parameters (E-step; their
    log-likelihood ``ln p(X) = sum_n ln sum_k pi_k N(x_n | mu_k, Sigma_k)``, MATH.md step 4,
    comes with them), then new parameters (M-step). It stops when the change of the mean
    per-sample log-likelihood is below ``tol`` (scikit-learn's rule) or after ``max_iter``
    iterations.

    Parameters
    ----------
    statistics : callable
        ``statistics(params)`` returns the statistics summed over all the data.
    params : MixtureParameters
        Starting parameters, in the working dtype.
    reg_covar, tol, max_iter : float, float, int
        As in :class:`~gaussmix.GaussianMixture`.
    lower_bound : float
        The previous lower bound (for warm starts), else -inf.
    callback : callable, optional
        ``callback(n_iter, lower_bound, change)`` after every iteration.
    """
    dtype = params.dtype
    lower_bounds = []
    converged = False
    n_iter = 0
    for n_iter in range(1, max_iter + 1):
        previous = lower_bound
        stats = statistics(params)
        params = m_step(stats, reg_covar=reg_covar, dtype=dtype, previous=params)
        lower_bound = stats.mean_log_likelihood
        lower_bounds.append(lower_bound)
        change = lower_bound - previous
        if callback is not None:
            callback(n_iter, lower_bound, change)
        if abs(change) < tol:
            converged = True
            break
    return EMResult(params, lower_bound, n_iter, converged, lower_bounds)
