"""MAP EM under mclust's conjugate prior for many mixtures at once (the lean path of
``select_model(X, prior=...)``).

The E-step is :meth:`gaussmix._batch.Rows.e_step`: every mixture's per-component sums
``(N_k, s1_k, s2_k)`` about the rows' centre. The M-step is the general path's
(:func:`gaussmix.stats.m_step` with ``prior=``, i.e. :func:`gaussmix._prior.prior_scatter`
followed by the family's ``solve_scatter``) on arrays with a leading mixture axis:

* the prior-augmented scatters ``P_k + Lambda_k + reg_covar n_k I`` and counts
  ``n_k + c_k``, and the means' posterior mode ``(N_k xbar_k + kappa mu_P) / (N_k + kappa)``
  (module :mod:`gaussmix._prior`), reduced as the family's statistic (full, pooled,
  diagonal, trace);
* then the constrained update: ``P / n`` reduced to scikit-learn's four types (spherical:
  trace over ``n D``; diag: the diagonal over ``n``; tied: the pooled scatter over
  ``sum n``; full: ``P / n``), the family's ``batched_covariances`` for mclust's other
  models (the iterative ones from the current covariances, so that MAP EM stays monotone).

The weights are ``N_k / N`` (no prior on them). Every mixture of a batch has the same K;
the prior of each covariance type is resolved once (``priors``: type code -> Prior).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import stats as _stats
from ._batch import _FAMILIES, DIAG, FULL, SPHERICAL, TIED, Batch, _groups, _usable
from .families._batched import diagonal_view

__all__ = ["MapResult", "PriorTerms", "StagedResult", "map_m_step", "map_step", "prepared",
           "run_map_em", "run_staged"]

_GUARD = 10 * np.finfo(np.float64).eps  # as stats.m_step's guard against empty components


def _moments(rows, G):
    """``(nk, s1, s2)`` of the feature sums G (S, K, F): s2 as (S, K, D, D) matrices
    (full features), (S, K, D) diagonals (diag features) or (S, K) traces (spherical)."""
    D = rows.n_features
    S, K, _ = G.shape
    nk = G[..., 0]
    s1 = G[..., 1 : D + 1]
    quad = G[..., D + 1 :]
    if rows.features == "full":
        s2 = quad[..., rows._symmetric].reshape(S, K, D, D)
    elif rows.features == "diag":
        s2 = quad
    else:
        s2 = quad[..., 0]
    return nk, s1, s2


def _reduce(s2, statistic):
    """``s2`` in whatever form the features hold it, reduced as ``statistic``."""
    if s2.ndim == 4:
        if statistic in ("full", "pooled"):
            return s2
        diag = np.diagonal(s2, axis1=-2, axis2=-1)
        return diag if statistic == "diagonal" else diag.sum(axis=-1)
    if s2.ndim == 3:
        if statistic == "diagonal":
            return s2
        if statistic == "trace":
            return s2.sum(axis=-1)
    elif statistic == "trace":
        return s2
    raise ValueError(f"the rows' features do not hold the {statistic} statistic")


class PriorTerms:
    """The resolved priors of a batch's types at one K (``priors[code]``), with each
    one's scatter term ``Lambda_k`` reduced as its family's statistic and its counts
    ``c_k``, computed once for the many M-steps of a run."""

    def __init__(self, priors, n_components):
        self.priors = dict(priors)
        self.n_components = K = int(n_components)
        self.terms = {}
        for code, prior in self.priors.items():
            statistic = _FAMILIES[code].statistic
            self.terms[code] = (np.array(prior.scatter_term(statistic, K)),
                                prior.counts(K))
        first = next(iter(self.priors.values()), None)
        # The pieces every type shares (one spec: the same shrinkage, mean and weight),
        # computed once for the whole batch.
        self.shared = first is not None and all(
            p.shrinkage == first.shrinkage and p.weight == first.weight
            and np.array_equal(p.mean, first.mean) for p in self.priors.values())
        self.first = first

    def __getitem__(self, code):
        return self.priors[code]


def prepared(priors, n_components) -> PriorTerms:
    """``priors`` (a dict code -> Prior, or PriorTerms) as :class:`PriorTerms` for K."""
    if isinstance(priors, PriorTerms) and priors.n_components == n_components:
        return priors
    if isinstance(priors, PriorTerms):
        priors = priors.priors
    return PriorTerms(priors, n_components)


def _mean_pieces(nk, s1, shift, prior, guard):
    """``(d, dev, weight, n_k, means)``: ``xbar_k - shift``, ``xbar_k - mu_P``, the
    weight ``kappa N_k / (N_k + kappa)`` of the mean's shrinkage in the scatter, the
    guarded counts and the means' posterior mode (:func:`gaussmix._prior.prior_scatter`)."""
    kappa = prior.shrinkage * prior.weight
    safe = np.where(nk > 0, nk, 1.0)
    d = s1 / safe[..., None]  # xbar_k - shift
    dev = shift + d - prior.mean  # xbar_k - mu_P
    n_k = nk + guard
    if kappa > 0:
        weight = np.where(nk > 0, kappa * nk / (nk + kappa), 0.0)
        means = shift + (s1 + kappa * (prior.mean - shift)) / (nk + kappa)[..., None]
    else:
        weight = np.zeros_like(nk)
        means = shift + s1 / n_k[..., None]
    return d, dev, weight, n_k, means


def batched_prior_scatter(statistic, nk, s1, s2, shift, prior, reg_covar, guard=_GUARD,
                          terms=None):
    """:func:`gaussmix._prior.prior_scatter` for S mixtures sharing one prior.

    ``nk`` (S, K), ``s1`` (S, K, D) and ``s2`` (as :func:`_reduce` takes it) about
    ``shift`` (D,). Returns ``(P, counts, means)``: P (S, K, D, D) for "full", (S, D, D)
    for "pooled", (S, K, D) for "diagonal", (S, K) for "trace"; counts (S, K); means
    (S, K, D). ``terms``: the prior's ``(scatter_term, counts)`` for this statistic and K,
    if known.
    """
    K, D = s1.shape[1:]
    s2 = _reduce(s2, statistic)
    d, dev, weight, n_k, means = _mean_pieces(nk, s1, shift, prior, guard)
    if statistic == "trace":
        P = s2 - np.sum(s1 * d, axis=-1) + weight * np.sum(dev * dev, axis=-1)
        P = P + reg_covar * n_k * D
    elif statistic == "diagonal":
        P = s2 - s1 * d + weight[..., None] * dev * dev + reg_covar * n_k[..., None]
    elif statistic == "pooled":
        P = (s2.sum(axis=1) - np.einsum("ski,skj->sij", s1, d)
             + np.einsum("ski,skj->sij", dev * weight[..., None], dev))
        P = 0.5 * (P + np.swapaxes(P, -1, -2))
        diagonal_view(P)[...] += reg_covar * n_k.sum(axis=1)[:, None]
    else:
        P = s2 - s1[..., :, None] * d[..., None, :] + (
            weight[..., None, None] * dev[..., :, None] * dev[..., None, :]
        )
        P = 0.5 * (P + np.swapaxes(P, -1, -2))
        diagonal_view(P)[...] += reg_covar * n_k[..., None]
    if terms is None:
        terms = (prior.scatter_term(statistic, K), prior.counts(K))
    return P + terms[0], n_k + terms[1], means


def _full_scatters(nk, s1, s2, shift, prior, reg_covar):
    """The full prior-augmented scatters ``P_k + reg_covar n_k I`` (without Lambda_k) of
    every mixture, ``n_k`` and the means, for priors sharing their mean pieces."""
    d, dev, weight, n_k, means = _mean_pieces(nk, s1, shift, prior, _GUARD)
    P = s2 - s1[..., :, None] * d[..., None, :] + (
        weight[..., None, None] * dev[..., :, None] * dev[..., None, :]
    )
    P = 0.5 * (P + np.swapaxes(P, -1, -2))
    diagonal_view(P)[...] += reg_covar * n_k[..., None]
    return P, n_k, means


def _reduced(P, statistic):
    """Full scatters (S, K, D, D) reduced as ``statistic`` (as prior_scatter's)."""
    if statistic == "full":
        return P
    if statistic == "pooled":
        return P.sum(axis=1)
    diag = np.diagonal(P, axis1=-2, axis2=-1)
    return diag.copy() if statistic == "diagonal" else diag.sum(axis=-1)


def map_m_step(rows, G, types, priors, previous: Batch | None = None,
               previous_valid=None) -> Batch:
    """The MAP M-step of every mixture from its feature sums ``G`` (S, K, F) about
    ``rows.center`` (module docstring). ``types`` (S,) codes of
    :data:`gaussmix._batch.TYPES`; ``priors`` maps each code present to its resolved
    :class:`gaussmix._prior.Prior` for this K (a dict, or :class:`PriorTerms`).
    ``previous`` (the batch the E-step used) starts the iterative updates;
    ``previous_valid`` (S,) marks its mixtures whose covariances the E-step factored."""
    terms = prepared(priors, G.shape[1])
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return _map_m_step(rows, G, types, terms, previous, previous_valid)


def _map_m_step(rows, G, types, terms, previous, previous_valid):
    D = rows.n_features
    nk, s1, s2 = _moments(rows, G)
    S, K = nk.shape
    cov = np.zeros((S, K, D, D))
    shared = terms.shared and rows.features == "full"
    if shared:
        full, n_all, means = _full_scatters(nk, s1, s2, rows.center, terms.first,
                                            rows.reg_covar)
    else:
        means = np.empty((S, K, D))
    prev = None
    if previous is not None:
        prev = previous.covariances
    for code, members in _groups(types):
        family = _FAMILIES[code]
        statistic = family.statistic
        lam, counts = terms.terms[code]
        if shared:
            P = _reduced(full[members], statistic) + lam
            n = n_all[members] + counts
        else:
            P, n, mu = batched_prior_scatter(statistic, nk[members], s1[members],
                                             s2[members], rows.center, terms[code],
                                             rows.reg_covar, terms=(lam, counts))
            means[members] = mu
        if code == SPHERICAL:
            diagonal_view(cov[members])[...] = (P / (n * D))[..., None]
        elif code == DIAG:
            diagonal_view(cov[members])[...] = P / n[..., None]
        elif code == TIED:
            pooled = P / n.sum(axis=1)[:, None, None]
            cov[members] = (0.5 * (pooled + np.swapaxes(pooled, -1, -2)))[:, None]
        elif code == FULL:
            c = P / n[..., None, None]
            cov[members] = 0.5 * (c + np.swapaxes(c, -1, -2))
        else:
            if statistic == "trace":
                P = np.repeat((P / D)[..., None], D, axis=-1)
            start = None
            if prev is not None and family.iterative:
                start = prev[members]
                valid = None if previous_valid is None else previous_valid[members]
                if valid is None or not np.all(valid):
                    W = P if P.ndim == 4 else _diagonal_matrices(P)
                    start = _usable(start, W, n)
            cov[members] = family.batched_covariances(P, n, start)
    weights = nk + _GUARD
    weights = weights / weights.sum(axis=1, keepdims=True)
    return Batch(types, weights, means, cov)


def _diagonal_matrices(diagonals):
    out = np.zeros((*diagonals.shape, diagonals.shape[-1]))
    diagonal_view(out)[...] = diagonals
    return out


def map_step(rows, batch: Batch, priors):
    """One MAP EM iteration of every mixture: ``(new batch, log-likelihood of batch (S,),
    bad (S,))``. A mixture whose moments would lose accuracy (``Rows.accurate``) takes
    the step through the general path (:func:`gaussmix.stats.block_statistics` and
    :func:`gaussmix.stats.m_step` with its prior)."""
    G, ll, bad = rows.e_step(batch)
    priors = prepared(priors, G.shape[1])
    new = map_m_step(rows, G, batch.types, priors, previous=batch, previous_valid=~bad)
    return rows.redo_inaccurate(
        G, batch, new, ll, bad,
        lambda stats, params, code: _stats.m_step(stats, reg_covar=rows.reg_covar,
                                                  previous=params, prior=priors[code]))


@dataclass
class MapResult:
    """Outcome of :func:`run_map_em` for a batch of S mixtures.

    Attributes
    ----------
    batch : Batch
        Parameters after the last M-step of each mixture.
    lower_bound : ndarray of shape (S,)
        Mean (weighted) log-likelihood per sample of the parameters the last E-step used
        (as :class:`gaussmix.em.EMResult`'s ``lower_bound``).
    n_iter : ndarray of shape (S,)
    converged : ndarray of shape (S,)
    failed : ndarray of shape (S,)
        Mixtures whose parameters became invalid (their results are meaningless).
    lower_bounds : list of list of float
        Per mixture, ``lower_bound`` after every iteration.
    """

    batch: Batch
    lower_bound: np.ndarray
    n_iter: np.ndarray
    converged: np.ndarray
    failed: np.ndarray
    lower_bounds: list


def run_map_em(rows, batch: Batch, priors, *, tol, max_iter, lower_bound=None,
               history=False) -> MapResult:
    """Plain MAP EM on every mixture of ``batch`` until the change of its mean
    log-likelihood per sample is below ``tol`` (the rule of :func:`gaussmix.em.run_em`),
    or ``max_iter`` iterations; converged and failed mixtures leave the batch.

    ``lower_bound`` (S,): each mixture's previous lower bound (a warm start), else -inf.
    ``history``: keep every lower bound (``MapResult.lower_bounds``).
    """
    S = batch.size
    priors = prepared(priors, batch.weights.shape[1])
    out = batch.copy()
    bound = np.full(S, -np.inf) if lower_bound is None else np.array(lower_bound, float)
    n_iter = np.zeros(S, dtype=np.int64)
    converged = np.zeros(S, dtype=bool)
    failed = np.zeros(S, dtype=bool)
    bounds = [[] for _ in range(S)]
    active = np.arange(S)
    current = batch.copy()
    weight_sum = rows.weight_sum
    for _ in range(max_iter):
        if active.size == 0:
            break
        new, ll, bad = map_step(rows, current, priors)
        value = ll / weight_sum
        change = value - bound[active]
        n_iter[active] += 1
        bound[active] = value
        if history:
            for j, s in enumerate(active.tolist()):
                bounds[s].append(float(value[j]))
        failed[active[bad]] = True
        done = ~bad & (np.abs(change) < tol)
        converged[active[done]] = True
        keep = ~bad & ~done
        finished = ~bad
        idx = active[finished]
        out.weights[idx] = new.weights[finished]
        out.means[idx] = new.means[finished]
        out.covariances[idx] = new.covariances[finished]
        if keep.all():
            current = new
        else:
            current = new.take(keep)
            active = active[keep]
    return MapResult(out, bound, n_iter, converged, failed, bounds)


#: Stages of a mixture in :func:`run_staged`.
LOOSE, RANKING, TIGHT, DONE, FAILED, DROPPED = range(6)


@dataclass
class StagedResult:
    """Outcome of :func:`run_staged` for a batch of S mixtures.

    Attributes
    ----------
    batch : Batch
        Parameters after each mixture's last M-step.
    stage : ndarray of shape (S,)
        DONE (a finalist run to the tight tolerance, or to ``max_iter``), DROPPED (not
        among its point's finalists) or FAILED (its parameters became invalid).
    lower_bound : ndarray of shape (S,)
        Mean log-likelihood per sample of the parameters the last E-step used.
    n_loose, n_tight : ndarray of shape (S,)
        Iterations in each stage.
    converged : ndarray of shape (S,)
        The finalists whose change fell below the tight tolerance.
    finalist : ndarray of shape (S,)
        A finalist's place in its point's ranking after the loose stage (0 the best),
        else -1.
    value : ndarray of shape (S,)
        Log-likelihood (weighted total) of the final parameters of the DONE mixtures, the
        loose stage's of the others (-inf when invalid).
    lower_bounds : list of list of float
        Per mixture, the lower bounds of its tight stage.
    """

    batch: Batch
    stage: np.ndarray
    lower_bound: np.ndarray
    n_loose: np.ndarray
    n_tight: np.ndarray
    converged: np.ndarray
    finalist: np.ndarray
    value: np.ndarray
    lower_bounds: list


def run_staged(rows, batch: Batch, priors, points, *, loose_tol, tight_tol, finalists,
               max_iter) -> StagedResult:
    """Plain MAP EM in two stages, as :func:`run_map_em` twice: every mixture until its
    change per sample is below ``loose_tol``; then, as soon as every mixture of a point
    (``points`` (S,), the grid point of each mixture) has, the best ``finalists`` of that
    point (highest log-likelihood of the parameters reached, ties to the later start)
    go on, from there and with their last lower bound, to ``tight_tol``. The two stages
    of different points overlap in one batch (fewer, fuller steps than two runs one
    after the other); each mixture's steps are those of the two runs. ``max_iter``
    bounds each stage."""
    S = batch.size
    priors = prepared(priors, batch.weights.shape[1])
    weight_sum = rows.weight_sum
    points = np.asarray(points)
    out = batch.copy()
    stage = np.full(S, LOOSE, dtype=np.int8)
    bound = np.full(S, -np.inf)
    n_loose = np.zeros(S, dtype=np.int64)
    n_tight = np.zeros(S, dtype=np.int64)
    converged = np.zeros(S, dtype=bool)
    finalist = np.full(S, -1, dtype=np.int64)
    value = np.full(S, -np.inf)
    tol = np.full(S, float(loose_tol))
    bounds: list[list[float]] = [[] for _ in range(S)]
    pending = {int(p): np.flatnonzero(points == p) for p in np.unique(points)}
    active = np.arange(S)
    current = batch.copy()
    # The state of the active mixtures, aligned with ``active`` (written back when the
    # active set changes): their bound, tolerance, iterations in their stage, and which
    # are in the tight stage.
    a_bound = bound.copy()
    a_tol = tol.copy()
    a_iter = np.zeros(S, dtype=np.int64)
    a_tight = np.zeros(S, dtype=bool)
    tight_at: list[int] = []  # positions of the tight ones in ``active``
    while active.size:
        new, ll, bad = map_step(rows, current, priors)
        now = ll / weight_sum
        change = now - a_bound
        a_bound = now
        a_iter += 1
        for j in tight_at:
            bounds[int(active[j])].append(float(now[j]))
        ended = bad | (np.abs(change) < a_tol) | (a_iter >= max_iter)
        if not ended.any():
            current = new
            continue
        # The active set changes: the state back into the arrays of the whole batch.
        ok = ~bad
        index = active[ok]
        out.weights[index] = new.weights[ok]
        out.means[index] = new.means[ok]
        out.covariances[index] = new.covariances[ok]
        bound[active] = a_bound
        n_tight[active[a_tight]] = a_iter[a_tight]
        n_loose[active[~a_tight]] = a_iter[~a_tight]
        converged[active[ok & a_tight & (np.abs(change) < a_tol)]] = True
        stage[active[bad]] = FAILED
        stage[active[ended & ok & ~a_tight]] = RANKING
        stage[active[ended & ok & a_tight]] = DONE
        keep = ~ended
        added = []
        if np.any(ended & ~a_tight):  # some left the loose stage: points ready to rank
            ready = [p for p, m in pending.items() if not np.any(stage[m] == LOOSE)]
        else:
            ready = []
        for p in ready:
            members = pending.pop(p)
            reached = members[stage[members] == RANKING]
            if reached.size == 0:
                continue
            _, ll_reached, bad_reached = rows.e_step(out.take(reached))
            value[reached] = np.where(bad_reached, -np.inf, ll_reached)
            stage[reached[bad_reached]] = FAILED
            stage[reached[~bad_reached]] = DROPPED
            order = sorted(((value[s], int(s)) for s in reached[~bad_reached]),
                           reverse=True)[:finalists]
            for place, (_, s) in enumerate(order):
                stage[s], tol[s], finalist[s] = TIGHT, float(tight_tol), place
                added.append(s)
        added = np.array(added, dtype=np.int64)
        active = np.concatenate([active[keep], added])
        a_bound = np.concatenate([a_bound[keep], bound[added]])
        a_tol = tol[active]
        a_tight = stage[active] == TIGHT
        a_iter = np.concatenate([a_iter[keep], np.zeros(added.size, dtype=np.int64)])
        tight_at = np.flatnonzero(a_tight).tolist()
        current = out.take(active) if added.size else new.take(keep)
    finished = np.flatnonzero(stage == DONE)
    if finished.size:
        _, ll_final, bad_final = rows.e_step(out.take(finished))
        value[finished] = np.where(bad_final, -np.inf, ll_final)
        stage[finished[bad_final]] = FAILED
    return StagedResult(out, stage, bound, n_loose, n_tight, converged, finalist, value,
                        bounds)
