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

__all__ = ["AcceleratedResult", "EMResult", "run_em", "run_squarem", "statistics_step"]


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
    prior=None,
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
    prior : gaussmix._prior.Prior, optional
        A resolved conjugate prior: the M-step is then the posterior mode (MAP EM, which
        raises the log-posterior; the lower bound is still the log-likelihood).
    """
    dtype = params.dtype
    lower_bounds = []
    converged = False
    n_iter = 0
    for n_iter in range(1, max_iter + 1):
        previous = lower_bound
        stats = statistics(params)
        params = m_step(stats, reg_covar=reg_covar, dtype=dtype, previous=params, prior=prior)
        lower_bound = stats.mean_log_likelihood
        lower_bounds.append(lower_bound)
        change = lower_bound - previous
        if callback is not None:
            callback(n_iter, lower_bound, change)
        if abs(change) < tol:
            converged = True
            break
    return EMResult(params, lower_bound, n_iter, converged, lower_bounds)


# --------------------------------------------------------------------------------------
# Accelerated EM (model selection and robust starts)
# --------------------------------------------------------------------------------------
@dataclass
class AcceleratedResult:
    """Outcome of :func:`run_squarem` for a batch of S mixtures.

    Attributes
    ----------
    batch : gaussmix._batch.Batch
        Parameters reached (after an M-step), one row per mixture.
    log_likelihood : ndarray of shape (S,)
        Total (weighted) log-likelihood of those parameters.
    n_iter : ndarray of shape (S,)
        EM steps (E-step and M-step pairs) spent on each mixture.
    failed : ndarray of shape (S,)
        Mixtures whose parameters became invalid (a covariance not positive definite).
    history : list of list of float
        Per mixture, the total log-likelihood at the start of every cycle (every third EM
        step), non-decreasing; its last value is ``log_likelihood``.
    stepped : gaussmix._batch.Batch or None
        One EM step from ``batch``, for the mixtures stopped by ``max_steps`` (their
        log-likelihood above came from that step's E-step; the other rows are not
        meaningful): ``run_squarem(..., first=)`` continues them without repeating it.
    """

    batch: object
    log_likelihood: np.ndarray
    n_iter: np.ndarray
    failed: np.ndarray
    history: list = field(default_factory=list)
    stepped: object = None


def statistics_step(statistics, reg_covar: float):
    """An EM step on a batch of mixtures, through a data source's ``statistics(params)``.

    Returns ``step(batch) -> (new batch, log-likelihood (S,), failed (S,))`` for
    :func:`run_squarem`: the E-step is the data source's (in memory, Dask...), mixture
    after mixture, the M-step :func:`~gaussmix.stats.m_step`.
    """

    def step(batch):
        summed = []
        for s in range(batch.size):
            try:
                summed.append(statistics(batch.member(s)))
            except (ValueError, np.linalg.LinAlgError):
                summed.append(None)
        return m_step_each(batch, summed, reg_covar)

    return step


def m_step_each(batch, summed, reg_covar: float):
    """The M-step of every mixture of ``batch`` from its summed statistics.

    ``summed[s]`` is mixture s's :class:`~gaussmix.stats.SufficientStatistics`, or None
    when its E-step failed. Returns ``(new batch, log-likelihood (S,), failed (S,))``, the
    step :func:`run_squarem` takes; a mixture whose E-step or M-step failed keeps its
    parameters and is marked failed.
    """
    from ._batch import Batch

    out = batch.copy()
    ll = np.full(batch.size, -np.inf)
    failed = np.zeros(batch.size, dtype=bool)
    for s, stats in enumerate(summed):
        if stats is None:
            failed[s] = True
            continue
        try:
            new = Batch.of(m_step(stats, reg_covar=reg_covar))
        except (ValueError, np.linalg.LinAlgError):
            failed[s] = True
            continue
        out = out.put([s], new)
        ll[s] = stats.log_likelihood
    return out, ll, failed


def run_squarem(step, batch, *, gain: float | np.ndarray, max_steps: int, project=None,
                first=None) -> AcceleratedResult:
    """EM accelerated by SQUAREM (Varadhan & Roland 2008, scheme S3) with a safeguard.

    A cycle takes two EM steps from theta_0 (theta_1, theta_2), extrapolates
    ``theta' = theta_0 - 2 a r + a^2 v`` with ``r = theta_1 - theta_0``,
    ``v = theta_2 - 2 theta_1 + theta_0`` and ``a = -|r| / |v|`` (at most -1; ``a = -1``
    gives theta_2), then one EM step from theta'. The next cycle starts from that step's
    result when the log-likelihood at theta' is at least the one at theta_1 and theta'
    is a valid mixture, else from theta_2. Either way the log-likelihood of every cycle's
    start is at least the previous one's: EM's monotonicity is kept.

    Each of the S mixtures of the batch has its own step length; a mixture stops when a
    cycle gains less than ``gain`` (total log-likelihood) or after ``max_steps`` EM steps.

    Parameters
    ----------
    step : callable
        ``step(batch) -> (new batch, log-likelihood of batch (S,), failed (S,))``: one EM
        iteration of every mixture (:meth:`gaussmix._batch.Rows.step`, or
        :func:`statistics_step` for a data source).
    batch : gaussmix._batch.Batch
    gain : float or ndarray of shape (S,)
        The stopping gain, of all the mixtures or of each.
    max_steps : int
    project : callable, optional
        ``project(batch) -> batch``: the extrapolated parameters moved onto each model's
        constraint (the extrapolation of two mixtures with, say, equal volumes need not
        have equal volumes, and EM's monotonicity only holds from a point of the model).
        By default the ``project`` method of the object ``step`` is bound to, if any
        (:meth:`gaussmix._batch.Rows.project`).
    first : tuple, optional
        ``step(batch)``, already computed and counted (a run that stopped at its step
        budget, continued: its result's ``stepped`` and ``log_likelihood``, and no
        failure); the run then starts without repeating it, and its first cycle is not
        judged (it was, when that run stopped).
    """
    if project is None:
        project = getattr(getattr(step, "__self__", None), "project", None)
    theta0 = batch
    S = theta0.size
    n_iter = np.zeros(S, dtype=np.int64)
    failed = np.zeros(S, dtype=bool)
    result = theta0.copy()  # (written in place: each mixture's result so far)
    result_ll = np.full(S, -np.inf)
    previous = np.full(S, -np.inf)
    history: list[list[float]] = [[] for _ in range(S)]
    stepped = None  # (for the mixtures stopped by max_steps: one step from their result)
    active = np.arange(S)
    while active.size:
        budget = None  # the mixtures stopped by max_steps alone
        if first is not None:  # (the caller has its log-likelihood, and judged it)
            theta1, ll0, bad0 = first
            first = None
            any_bad = bool(bad0.any())
            good = active[~bad0] if any_bad else active
            finish = bad0
        else:
            theta1, ll0, bad0 = step(theta0)
            n_iter[active] += 1
            any_bad = bool(bad0.any())
            good = active[~bad0] if any_bad else active
            for i, value in zip(good.tolist(), (ll0[~bad0] if any_bad else ll0).tolist(),
                                strict=True):
                history[i].append(value)
            # theta0 is the start of this cycle: its log-likelihood is now known.
            converged = ll0 - previous[active] < (gain if np.ndim(gain) == 0 else gain[active])
            over = n_iter[active] >= max_steps
            finish = bad0 | converged | over
            if over.any():
                budget = over & ~bad0
        # theta0 (an M-step output, or the start) is each mixture's result so far.
        if any_bad:
            _assign_into(result, good, _subset(theta0, ~bad0))
            result_ll[good] = ll0[~bad0]
            failed[active[bad0]] = True
        else:
            _assign_into(result, active, theta0)
            result_ll[active] = ll0
        if budget is not None and budget.any():  # (kept for a run that continues them)
            if stepped is None:
                stepped = result.copy()
            _assign_into(stepped, active[budget], _subset(theta1, budget))
        cont = ~finish
        if not cont.any():
            break
        active = active[cont]
        theta0, theta1, ll0 = _subset(theta0, cont), _subset(theta1, cont), ll0[cont]
        previous[active] = ll0
        theta2, ll1, bad1 = step(theta1)
        n_iter[active] += 1
        t0, t1, t2 = theta0.vector(), theta1.vector(), theta2.vector()
        r = t1 - t0
        v = t2 - t1 - r
        rr = np.einsum("sp,sp->s", r, r)
        vv = np.einsum("sp,sp->s", v, v)
        with np.errstate(divide="ignore", invalid="ignore"):
            alpha = -np.sqrt(rr / vv)
        alpha = np.where(np.isfinite(alpha), np.minimum(alpha, -1.0), -1.0)
        a = alpha[:, None]
        tp = t0 - 2.0 * a * r + a * a * v
        thetap = theta0.with_vector(tp)
        wsum = thetap.weights.sum(axis=1, keepdims=True)
        thetap.weights = thetap.weights / np.where(wsum > 0, wsum, 1.0)
        if project is not None:  # back onto the models' constraints (see docstring)
            thetap = project(thetap)
        theta3, llp, badp = step(thetap)
        n_iter[active] += 1
        accept = ~badp & (llp >= ll1) & ~bad1
        if bad1.any():
            # theta1 was valid (an M-step output of a valid theta0); theta2 likewise,
            # unless its M-step failed: fall back to theta1 then.
            theta2 = _choose(bad1, theta1, theta2)
        theta0 = _choose(accept, theta3, theta2)
    return AcceleratedResult(result, result_ll, n_iter, failed, history, stepped)


def _subset(batch, mask):
    """The mixtures of ``batch`` where ``mask`` (the batch itself when all are kept)."""
    return batch if mask.all() else batch.take(mask)


def _choose(mask, a, b):
    """Mixtures of ``a`` where ``mask``, else of ``b`` (no batch is modified in place)."""
    if mask.all():
        return a
    if not mask.any():
        return b
    out = b.take(np.arange(b.size))
    out.weights[mask] = a.weights[mask]
    out.means[mask] = a.means[mask]
    out.covariances[mask] = a.covariances[mask]
    return out


def _assign_into(target, index, source):
    """``target``'s mixtures at ``index`` (increasing, distinct positions) replaced by
    ``source``'s, in place."""
    if index.size == target.size == source.size:  # (so index is every position, in order)
        target.weights[...] = source.weights
        target.means[...] = source.means
        target.covariances[...] = source.covariances
        return
    target.weights[index] = source.weights
    target.means[index] = source.means
    target.covariances[index] = source.covariances
