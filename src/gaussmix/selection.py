"""Model selection over the number of components and the covariance type (BIC, AIC, ICL).

:func:`select_model` fits one :class:`~gaussmix.GaussianMixture` per grid point
``(covariance_type, n_components)`` and ranks them by an information criterion, as R's
mclust does with ``mclustBIC``. Criteria use scikit-learn's sign (lower is better):

* ``bic = -2 log L + p log n``  (mclust reports ``2 log L - p log n``: its BIC is minus ours)
* ``aic = -2 log L + 2 p``
* ``icl = bic - 2 sum_n log max_k r_nk`` (Biernacki, Celeux & Govaert 2000: the BIC of the
  *classification* likelihood at the MAP assignment, which adds the hard-assignment
  entropy ``sum_n -log max_k r_nk`` twice; mclust's ICL is minus ours)

where ``L`` is the likelihood, ``p`` the number of free parameters, ``n`` the number of
samples (the sum of the sample weights when given) and ``r_nk`` the responsibilities.

Covariance types and their mclust names:

============  ======  ==================================================
gaussmix      mclust  covariance of component k
============  ======  ==================================================
"spherical"   VII     ``sigma_k^2 I`` (variable volume, spherical)
"diag"        VVI     ``diag(sigma_k1^2, ...)`` (variable volume and shape, axis-aligned)
"tied"        EEE     ``Sigma`` shared by all components
"full"        VVV     ``Sigma_k`` unconstrained
============  ======  ==================================================

How the fits are made (so that every grid point reaches at least mclust's log-likelihood):

1. **Starts shared across the grid.** For every ``K`` a set of hard partitions of the data
   is computed once and used by all covariance types: three cuts of Ward (minimum
   within-cluster sum of squares) agglomerative trees, on the raw, standardised and
   sphered data (mclust starts EM from a model-based agglomeration on sphered data; Ward
   is that agglomeration for the spherical model, and one tree serves every ``K``);
   ``n_init`` k-means++ seeded Lloyd runs; and ``n_init`` random Voronoi partitions around
   data points. Duplicate partitions are dropped. Each partition becomes starting weights,
   means and precisions of the covariance type (covariances shrunk towards the pooled
   within-cluster covariance by ``D + 1`` pseudo-points, so small clusters do not start
   singular).
2. **Split starts.** The best fit with ``K - 1`` components of the same type, with one
   component cut in two along its major axis (the three widest components in turn), starts
   ``K``. This is what reaches mclust at large ``K`` (VVV with 7 to 9 components on Old
   Faithful), where random starts rarely do.
3. **A race, then polish.** EM from every start runs 10 iterations; the better half runs on
   for twice as many, and so on until one is left (successive halving). Starts are ranked by
   the log-likelihood projected a few iterations ahead from the rate at which EM is still
   climbing, because a loose stopping rule stops EM far from its limit when components
   overlap (ten and more log-likelihood units on Old Faithful with 6 components). The
   winner then runs on to a tight tolerance (1e-7 per sample, or until the gain still to
   come, estimated from the rate of convergence, is below 0.01), so the reported
   log-likelihood is the maximum, not where a stopping rule left it.
4. **No spurious maximizers.** Every fit is checked by
   :func:`gaussmix._degeneracy.degeneracy_reason` (a component on fewer points than its
   covariance needs, a variance at the ``reg_covar`` floor, or a spherical component on
   points sharing one value of a feature). Degenerate fits leave the race at once; when
   every start of a grid point degenerates, a few random restarts are tried, and if they
   degenerate too the grid point is marked degenerate in the table, with the reason, and is
   never selected.

On Old Faithful the default grid (36 grid points) takes two to three seconds and every grid
point reaches at least mclust's log-likelihood (see ``tests/test_selection.py``).
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

import numpy as np

from ._covariance import covariance_of_component

__all__ = ["MCLUST_NAMES", "TABLE_KEYS", "SelectionResult", "select_model"]

#: mclust's names of the four covariance types.
MCLUST_NAMES = {"spherical": "VII", "diag": "VVI", "tied": "EEE", "full": "VVV"}

_COVARIANCE_TYPES = tuple(MCLUST_NAMES)  # spherical, diag, tied, full
_CRITERIA = ("bic", "aic", "icl")
#: Keys of a row of :attr:`SelectionResult.table`, in order.
TABLE_KEYS = (
    "covariance_type",
    "n_components",
    "log_likelihood",
    "n_parameters",
    "bic",
    "aic",
    "icl",
    "converged",
    "n_iter",
    "degenerate",
    "error",
)
# Parameters select_model sets itself for every fit.
_RESERVED = (
    "n_components",
    "covariance_type",
    "weights_init",
    "means_init",
    "precisions_init",
    "warm_start",
    "init_params",
)
_FIRST_BUDGET = 10  # EM iterations of every start before the first halving
_RACE_TOL = 1e-6  # per-sample change of the mean log-likelihood during the race
_POLISH_TOL = 1e-7  # ... and when polishing the winner
_POLISH_CHUNK = 50  # polishing checks its progress every this many iterations
_POLISH_GAIN = 1e-2  # ... or when the log-likelihood is within this of its limit
_POLISH_MAX_ITER = 2000
_HC_MAX_SAMPLES = 2000  # the agglomeration runs on a subsample beyond this size
_EXTRA_STARTS = 6  # random restarts tried when every start of a grid point degenerated
_N_SPLITS = 3  # components split to start K from the fit with K - 1


def _gaussian_mixture_class():
    from .mixture import GaussianMixture

    return GaussianMixture


# --------------------------------------------------------------------------- starts


def _standardise(X: np.ndarray, w: np.ndarray) -> np.ndarray:
    mean = w @ X / w.sum()
    sd = np.sqrt(w @ (X - mean) ** 2 / w.sum())
    sd[sd <= 0] = 1.0
    return (X - mean) / sd


def _sphere(X: np.ndarray, w: np.ndarray) -> np.ndarray:
    mean = w @ X / w.sum()
    Xc = X - mean
    cov = (Xc * w[:, None]).T @ Xc / w.sum()
    eigval, eigvec = np.linalg.eigh(cov)
    keep = eigval > eigval.max() * 1e-12
    return Xc @ eigvec[:, keep] / np.sqrt(eigval[keep])


def _raw(X: np.ndarray, w: np.ndarray) -> np.ndarray:
    return X


# Views of the data in which the starting partitions are computed: the raw units (what the
# spherical model sees), standardised features, and sphered data (what full models see).
_SPACES = (_raw, _standardise, _sphere)


def _ward_tree(Y: np.ndarray, w: np.ndarray) -> list[tuple[int, int, float]]:
    """Ward agglomeration by the nearest-neighbour chain; O(n^2 d) time, O(n d) memory.

    Returns the merges ``(a, b, cost)`` sorted by cost; the merged cluster keeps index ``a``.
    Ward's cost of merging clusters a and b, ``m_a m_b / (m_a + m_b) ||c_a - c_b||^2``, is
    the increase of the within-cluster sum of squares (masses m, centroids c).
    """
    n = Y.shape[0]
    cent = Y.astype(np.float64, copy=True)
    mass = w.astype(np.float64, copy=True)
    active = np.ones(n, dtype=bool)
    merges: list[tuple[int, int, float]] = []
    chain: list[int] = []
    n_active = n
    while n_active > 1:
        if not chain:
            chain.append(int(np.flatnonzero(active)[0]))
        a = chain[-1]
        idx = np.flatnonzero(active)
        diff = cent[idx] - cent[a]
        cost = mass[idx] * mass[a] / (mass[idx] + mass[a]) * np.einsum("ij,ij->i", diff, diff)
        cost[idx == a] = np.inf
        pos = int(np.argmin(cost))
        b = int(idx[pos])
        if len(chain) > 1:
            prev = chain[-2]
            prev_cost = cost[np.searchsorted(idx, prev)]
            if prev_cost <= cost[pos]:
                b = prev
        if len(chain) > 1 and b == chain[-2]:
            chain.pop()
            chain.pop()
            lo, hi = min(a, b), max(a, b)
            m = mass[lo] + mass[hi]
            merge_cost = float(mass[lo] * mass[hi] / m * np.sum((cent[lo] - cent[hi]) ** 2))
            cent[lo] = (mass[lo] * cent[lo] + mass[hi] * cent[hi]) / m
            mass[lo] = m
            active[hi] = False
            n_active -= 1
            merges.append((lo, hi, merge_cost))
        else:
            chain.append(b)
    order = sorted(range(len(merges)), key=lambda i: merges[i][2])
    return [merges[i] for i in order]


def _cut_tree(merges, n: int, ks: Iterable[int]) -> dict[int, np.ndarray]:
    """Labels (0..K-1) of the partition into K clusters, for every K in ks."""
    parent = np.arange(n)

    def find(i: int) -> int:
        root = i
        while parent[root] != root:
            root = parent[root]
        while parent[i] != root:
            parent[i], i = root, parent[i]
        return root

    wanted = sorted({k for k in ks if 1 <= k <= n}, reverse=True)
    out: dict[int, np.ndarray] = {}
    n_clusters = n

    def snapshot() -> np.ndarray:
        roots = np.array([find(i) for i in range(n)])
        return np.unique(roots, return_inverse=True)[1]

    for a, b in [(m[0], m[1]) for m in merges]:
        while wanted and wanted[0] == n_clusters:
            out[wanted.pop(0)] = snapshot()
        if not wanted:
            break
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[rb] = ra
            n_clusters -= 1
    while wanted and wanted[0] == n_clusters:
        out[wanted.pop(0)] = snapshot()
    return out


def _nearest(Y: np.ndarray, centers: np.ndarray) -> np.ndarray:
    d2 = (
        np.einsum("ij,ij->i", Y, Y)[:, None]
        - 2.0 * Y @ centers.T
        + np.einsum("ij,ij->i", centers, centers)[None, :]
    )
    return np.argmin(d2, axis=1)


def _centroids(Y: np.ndarray, w: np.ndarray, labels: np.ndarray, K: int) -> np.ndarray:
    mass = np.bincount(labels, weights=w, minlength=K)
    sums = np.zeros((K, Y.shape[1]))
    np.add.at(sums, labels, Y * w[:, None])
    return sums / np.maximum(mass, np.finfo(float).tiny)[:, None]


def _hc_partitions(Y, w, ks, rng) -> dict[int, np.ndarray]:
    """Ward tree cuts for every K; on a subsample when the data are large."""
    n = Y.shape[0]
    positive = np.flatnonzero(w > 0)
    if positive.size > _HC_MAX_SAMPLES:
        sub = np.sort(rng.choice(positive, size=_HC_MAX_SAMPLES, replace=False))
    else:
        sub = positive
    cuts = _cut_tree(_ward_tree(Y[sub], w[sub]), sub.size, ks)
    if sub.size == n:
        return cuts
    out = {}
    for K, lab in cuts.items():
        out[K] = _nearest(Y, _centroids(Y[sub], w[sub], lab, K))
    return out


def _kmeans(Y, w, K, rng, max_iter=30) -> np.ndarray:
    """Lloyd's algorithm from a k-means++ seeding (weighted); returns labels."""
    n = Y.shape[0]
    p = w / w.sum()
    centers = np.empty((K, Y.shape[1]))
    centers[0] = Y[rng.choice(n, p=p)]
    d2 = np.sum((Y - centers[0]) ** 2, axis=1)
    for k in range(1, K):
        q = p * d2
        total = q.sum()
        i = rng.choice(n, p=q / total) if total > 0 else rng.choice(n, p=p)
        centers[k] = Y[i]
        d2 = np.minimum(d2, np.sum((Y - centers[k]) ** 2, axis=1))
    labels = _nearest(Y, centers)
    for _ in range(max_iter):
        centers = _centroids(Y, w, labels, K)
        new = _nearest(Y, centers)
        if np.array_equal(new, labels):
            break
        labels = new
    return labels


def _voronoi(Y, w, K, rng) -> np.ndarray:
    """Partition around K distinct data points drawn at random (weighted)."""
    positive = np.flatnonzero(w > 0)
    _, first = np.unique(Y[positive], axis=0, return_index=True)
    candidates = positive[first]
    if candidates.size < K:
        return _nearest(Y, Y[rng.choice(positive, size=K, replace=True)])
    p = w[candidates] / w[candidates].sum()
    return _nearest(Y, Y[rng.choice(candidates, size=K, replace=False, p=p)])


def _canonical(labels: np.ndarray) -> bytes:
    """Key identifying a partition regardless of how its clusters are numbered."""
    _, first = np.unique(labels, return_index=True)
    relabel = np.empty(labels.max() + 1, dtype=np.int64)
    relabel[labels[np.sort(first)]] = np.arange(first.size)
    return relabel[labels].tobytes()


def _initial_parameters(X, w, labels, K, covariance_type, reg_covar):
    """Weights, means and precisions (GaussianMixture *_init shapes) from a partition.

    Each cluster covariance is shrunk towards the pooled within-cluster covariance with the
    weight of ``n_features + 1`` pseudo-points, so that small or flat clusters do not start
    EM at a singular matrix. This only affects the start, not the fitted maximum.
    """
    D = X.shape[1]
    nk = np.bincount(labels, weights=w, minlength=K)
    if np.any(nk <= 0):
        return None
    means = _centroids(X, w, labels, K)
    diff = X - means[labels]
    wd = diff * w[:, None]
    pooled = wd.T @ diff / nk.sum()
    m = D + 1.0
    weights = nk / nk.sum()
    if covariance_type == "tied":
        cov = pooled + reg_covar * np.eye(D)
        return weights, means, _inv_spd(cov)
    if covariance_type in ("diag", "spherical"):
        sq = np.zeros((K, D))
        np.add.at(sq, labels, wd * diff)
        var = (sq + m * np.diag(pooled)) / (nk + m)[:, None] + reg_covar
        if covariance_type == "diag":
            return weights, means, 1.0 / var
        return weights, means, 1.0 / var.mean(axis=1)
    precisions = np.empty((K, D, D))
    for k in range(K):
        sel = labels == k
        ck = (wd[sel].T @ diff[sel] + m * pooled) / (nk[k] + m) + reg_covar * np.eye(D)
        precisions[k] = _inv_spd(ck)
    return weights, means, precisions


def _inv_spd(cov: np.ndarray) -> np.ndarray:
    inv = np.linalg.inv(cov)
    return (inv + inv.T) / 2.0


def _full_covariances(model) -> np.ndarray:
    """The fitted covariances as a (K, D, D) stack, whatever the covariance type."""
    K, D = model.means_.shape
    cov = np.asarray(model.covariances_, dtype=np.float64)
    kind = getattr(model, "_fitted_covariance_type", model.covariance_type)
    return np.stack([covariance_of_component(cov, kind, k, D) for k in range(K)])


def _from_full(weights, means, full, covariance_type):
    """Starting (weights, means, precisions) of ``covariance_type`` from (K, D, D) covariances."""
    D = means.shape[1]
    if covariance_type == "full":
        prec = np.stack([_inv_spd(c) for c in full])
    elif covariance_type == "diag":
        prec = 1.0 / np.stack([np.diag(c) for c in full])
    elif covariance_type == "spherical":
        prec = 1.0 / np.array([np.trace(c) / D for c in full])
    else:
        prec = _inv_spd(np.tensordot(weights / weights.sum(), full, axes=1))
    return weights, means, prec


def _splits(model, covariance_type: str, n_splits: int):
    """Starts with K + 1 components: one component of a fitted K-component model split in two.

    The component is cut along its major axis into two halves, as a Gaussian's halves are:
    means at ``+-sqrt(2/pi) sigma``, variance along the axis ``(1 - 2/pi) sigma^2``, half
    the weight each. The components with the largest ``weight * sigma`` are split first.
    """
    weights = np.asarray(model.weights_, dtype=np.float64)
    means = np.asarray(model.means_, dtype=np.float64)
    full = _full_covariances(model)
    eigval, eigvec = np.linalg.eigh(full)
    sigma = np.sqrt(np.maximum(eigval[:, -1], 0.0))
    order = np.argsort(-(weights * sigma), kind="stable")[:n_splits]
    out = []
    shift = math.sqrt(2.0 / math.pi)
    for j in order:
        v = eigvec[j, :, -1]
        offset = shift * sigma[j] * v
        cov_j = full[j] - shift**2 * sigma[j] ** 2 * np.outer(v, v)
        new_w = np.concatenate([weights, [weights[j] / 2.0]])
        new_w[j] /= 2.0
        new_m = np.vstack([means, means[j] + offset])
        new_m[j] = means[j] - offset
        new_full = np.concatenate([full, cov_j[None]], axis=0)
        new_full[j] = cov_j
        out.append(_from_full(new_w, new_m, new_full, covariance_type))
    return out


# --------------------------------------------------------------------------- fitting


def _fit(X, w, K, covariance_type, init, params, seed, *, tol=None, max_iter=None):
    """One EM run from explicit starting parameters; returns the fitted model or raises."""
    GaussianMixture = _gaussian_mixture_class()
    kwargs = dict(params)
    if tol is not None:
        kwargs["tol"] = tol
    if max_iter is not None:
        kwargs["max_iter"] = max_iter
    weights, means, precisions = init
    model = GaussianMixture(
        n_components=K,
        covariance_type=covariance_type,
        weights_init=weights,
        means_init=means,
        precisions_init=precisions,
        init_params="random_from_data",
        n_init=1,
        random_state=seed,
        **kwargs,
    )
    with warnings.catch_warnings():
        # Convergence and degeneracy are reported in the table, not as warnings.
        warnings.simplefilter("ignore")
        if w is None:
            model.fit(X)
        else:
            model.fit(X, sample_weight=w)
    return model


def _log_likelihood(model, X, w) -> float:
    ll = model.score_samples(X)
    return float(ll.sum() if w is None else ll @ w)


def _reason(model) -> str | None:
    """Why the fit is degenerate, or None: the verdict GaussianMixture.fit reached."""
    return model.degenerate_reason_


class _Candidate:
    __slots__ = ("converged", "log_likelihood", "model", "n_iter", "reason")

    def __init__(self, model, log_likelihood, reason, n_iter_before=0):
        self.model = model
        self.log_likelihood = log_likelihood
        self.reason = reason
        self.converged = bool(model.converged_)
        self.n_iter = n_iter_before + int(model.n_iter_)


def _fit_grid_point(X, w, K, covariance_type, starts, params, seed, n_eff, rng):
    """Best regular fit over the starts, by successive halving.

    EM from every start runs ``_FIRST_BUDGET`` iterations; the better half (by
    log-likelihood) of the regular fits runs on with a doubled budget, and so on until one
    is left, which is then polished to a tight tolerance. A loose stopping rule (the
    default ``tol=1e-3``) stops EM far from its limit when components overlap (ten and more
    log-likelihood units on Old Faithful with 6 components), so ranking starts after a
    single loose run picks the wrong basin; halving spends the iterations on the starts
    that remain plausible. Degenerate fits leave the race at once.

    Returns ``(candidate or None, errors)``.
    """
    reg_covar = params.get("reg_covar", 1e-6)
    tol = params.get("tol", 1e-3)
    race_tol = min(tol, _RACE_TOL)
    errors: list[str] = []
    degenerate: list[_Candidate] = []

    def run(init, max_iter, tol, n_iter_before=0):
        try:
            model = _fit(X, w, K, covariance_type, init, params, seed, tol=tol, max_iter=max_iter)
            ll = _log_likelihood(model, X, w)
            if not np.isfinite(ll):
                raise FloatingPointError("the log-likelihood is not finite")
        except Exception as exc:  # a failed start is recorded, not raised
            errors.append(f"{type(exc).__name__}: {exc}")
            return None
        cand = _Candidate(model, ll, _reason(model), n_iter_before)
        if cand.reason is not None:
            degenerate.append(cand)
            return None
        return cand

    def race(inits):
        budget = _FIRST_BUDGET
        active = [c for c in (run(i, budget, race_tol) for i in inits) if c is not None]
        finished: list[_Candidate] = []
        while active:
            finished += [c for c in active if c.model.converged_]
            active = [c for c in active if not c.model.converged_]
            pool = sorted(active + finished, key=lambda c: -_projected(c, 2 * budget, n_eff))
            keep = pool[: max(1, len(pool) // 2)]
            active = [c for c in keep if not c.model.converged_]
            finished = [c for c in keep if c.model.converged_]
            if len(keep) == 1:
                break
            budget *= 2
            active = [
                c
                for c in (run(_parameters_of(c.model), budget, race_tol, c.n_iter) for c in active)
                if c is not None
            ]
        pool = active + finished
        return max(pool, key=lambda c: c.log_likelihood) if pool else None

    best = race(starts)
    tries = 0
    if best is None:  # every start failed or degenerated: random restarts
        weights = np.ones(X.shape[0]) if w is None else w
        Ystd = _standardise(X, weights)
    while best is None and tries < _EXTRA_STARTS:
        extra = []
        for _ in range(2):
            labels = _voronoi(Ystd, weights, K, rng)
            init = _initial_parameters(X, weights, labels, K, covariance_type, reg_covar)
            if init is not None:
                extra.append(init)
        tries += 2
        best = race(extra)
    if best is None:
        if not degenerate:
            return None, errors
        return max(degenerate, key=lambda c: c.log_likelihood), errors

    return _polish(best, run, tol, n_eff), errors


def _polish(best, run, tol, n_eff):
    """Run EM on from the race winner until the log-likelihood is within reach of its limit.

    EM runs in chunks of ``_POLISH_CHUNK`` iterations (stopping early at ``_POLISH_TOL``
    per sample); after each chunk the gain still to come is estimated from the rate at
    which the increments shrink (Aitken: ``d a / (1 - a)``), and polishing stops when it is
    below ``_POLISH_GAIN`` in total log-likelihood, whatever the number of samples.
    """
    spent = 0
    current = best
    converged = best.converged
    while spent < _POLISH_MAX_ITER:
        nxt = run(
            _parameters_of(current.model), _POLISH_CHUNK, min(tol, _POLISH_TOL), current.n_iter
        )
        if nxt is None or nxt.log_likelihood < current.log_likelihood - 1e-9:
            break  # failed or degenerated: keep the last regular fit
        spent += int(nxt.model.n_iter_)
        current = nxt
        bounds = list(getattr(nxt.model, "lower_bounds_", None) or [])
        if len(bounds) > 1 and abs(bounds[-1] - bounds[-2]) < tol:
            converged = True  # met the user's tol on the way
        if nxt.model.converged_ or _remaining_gain(bounds) * n_eff < _POLISH_GAIN:
            break
    current.converged = converged or current.converged
    return current


def _remaining_gain(bounds) -> float:
    """Aitken estimate of the per-sample gain EM has still to make; inf if unknown."""
    if len(bounds) < 3:
        return np.inf
    d_prev = bounds[-2] - bounds[-3]
    d = bounds[-1] - bounds[-2]
    if d <= 0:
        return 0.0
    if d_prev <= 0 or d >= d_prev:
        return np.inf
    a = d / d_prev
    return d * a / (1.0 - a)


def _projected(cand, n_iter, n_eff) -> float:
    """Log-likelihood expected after ``n_iter`` more EM iterations (Aitken-style).

    EM converges linearly: increments shrink by a roughly constant ratio ``a``, so the next
    ``n_iter`` iterations add about ``d a (1 - a^n_iter) / (1 - a)`` to the last increment
    ``d``. Ranking the race by this, rather than by the current value, keeps slow starters
    that are still climbing fast.
    """
    model = cand.model
    bounds = getattr(model, "lower_bounds_", None)
    if model.converged_ or bounds is None or len(bounds) < 3:
        return cand.log_likelihood
    d_prev = bounds[-2] - bounds[-3]
    d = bounds[-1] - bounds[-2]
    if not (d > 0 and d_prev > 0):
        return cand.log_likelihood
    a = min(d / d_prev, 1.0)
    gain = d * n_iter if a >= 1.0 else d * a * (1.0 - a**n_iter) / (1.0 - a)
    return cand.log_likelihood + gain * n_eff


def _parameters_of(model):
    return (np.asarray(model.weights_), np.asarray(model.means_), np.asarray(model.precisions_))


def _partitions_for(spaces, weights, K, hc_labels, n_init, entropy):
    """Hard partitions into K clusters shared by every covariance type (seeded by K only).

    The randomised ones cycle through the views of the data in ``spaces`` (``_SPACES``
    applied to it): raw (what the spherical model sees), standardised, and sphered (what
    the full model sees).
    """
    if K == 1:
        return [np.zeros(weights.shape[0], dtype=np.int64)]
    rng = np.random.default_rng(np.random.SeedSequence(entropy, spawn_key=(K,)))
    partitions: dict[bytes, np.ndarray] = {}
    for labels in hc_labels:
        partitions.setdefault(_canonical(labels), labels)
    for i in range(n_init):
        labels = _kmeans(spaces[i % len(spaces)], weights, K, rng)
        partitions.setdefault(_canonical(labels), labels)
    for i in range(n_init):
        labels = _voronoi(spaces[i % len(spaces)], weights, K, rng)
        partitions.setdefault(_canonical(labels), labels)
    return list(partitions.values())


def _fit_chain(X, w, ks, covariance_types, params, hc, n_init, entropy, on_done=None):
    """Fit the grid ``ks x covariance_types``, in increasing K (a task of ``n_jobs``).

    Returns ``{(covariance_type, K): (candidate or None, errors)}``. Every grid point starts
    from the shared partitions of its K and from splits of the fit with K - 1 components of
    the same type (when that K - 1 is in the grid), so the result of a grid point does not
    depend on how the grid is divided among processes.
    """
    weights = np.ones(X.shape[0]) if w is None else w
    n_eff = float(weights.sum())
    reg_covar = params.get("reg_covar", 1e-6)
    spaces = [transform(X, weights) for transform in _SPACES]
    results = {}
    for K in ks:
        label_sets = _partitions_for(spaces, weights, K, hc.get(K, []), n_init, entropy)
        for covariance_type in covariance_types:
            t_index = _COVARIANCE_TYPES.index(covariance_type)
            rng = np.random.default_rng(np.random.SeedSequence(entropy, spawn_key=(K, t_index + 1)))
            seed = int(rng.integers(2**31 - 1))
            starts = []
            for labels in label_sets:
                init = _initial_parameters(X, weights, labels, K, covariance_type, reg_covar)
                if init is not None:
                    starts.append(init)
            previous = results.get((covariance_type, K - 1), (None, None))[0]
            if _N_SPLITS and previous is not None and previous.reason is None:
                starts += _splits(previous.model, covariance_type, _N_SPLITS)
            results[(covariance_type, K)] = _fit_grid_point(
                X, w, K, covariance_type, starts, params, seed, n_eff, rng
            )
            if on_done is not None:
                on_done((covariance_type, K), results[(covariance_type, K)])
    return results


# --------------------------------------------------------------------------- result


def _criteria(model, X, w, log_likelihood, n_eff):
    n_parameters = int(model._n_parameters())
    resp = model.predict_proba(X)
    log_map = np.log(np.maximum(resp.max(axis=1), np.finfo(float).tiny))
    entropy = float(-(log_map.sum() if w is None else log_map @ w))
    bic = -2.0 * log_likelihood + n_parameters * math.log(n_eff)
    return {
        "n_parameters": n_parameters,
        "bic": bic,
        "aic": -2.0 * log_likelihood + 2.0 * n_parameters,
        "icl": bic + 2.0 * entropy,
    }


class SelectionResult:
    """Outcome of :func:`select_model`: the table of fits and the selected model.

    Attributes
    ----------
    table : list of dict
        One row per grid point ``(covariance_type, n_components)``, in grid order, with keys
        ``covariance_type``, ``n_components``, ``log_likelihood`` (total, weighted by
        ``sample_weight``), ``n_parameters``, ``bic``, ``aic``, ``icl``, ``converged``,
        ``n_iter``, ``degenerate`` (the reason, a str, or None) and ``error`` (the error
        text of a failed fit, or None). Numbers are None for a failed fit. ``n_iter``
        counts the EM iterations from the winning start to the end of polishing;
        ``converged`` says whether EM met ``tol`` (it was then run on to 1e-7 per sample).
    criterion : {"bic", "aic", "icl"}
        The criterion used to rank (lower is better).
    best_estimator_ : GaussianMixture
        The fitted model of the best regular (non-degenerate, non-failed) grid point.
    best_params_ : dict
        ``{"covariance_type": ..., "n_components": ...}`` of that model.
    estimators_ : dict
        Fitted model of every grid point that did not fail, keyed by
        ``(covariance_type, n_components)``.
    n_samples, n_features : int
        Shape of the data.

    Parameters
    ----------
    table : list of dict
        The rows, with the keys of :data:`TABLE_KEYS`.
    criterion : {"bic", "aic", "icl"}
    estimators : dict
        Fitted model of every grid point that did not fail, keyed by
        ``(covariance_type, n_components)``.
    n_samples, n_features : int
        Shape of the data.

    Raises
    ------
    ValueError
        If no row is regular (every fit failed or degenerated): there is nothing to select.
    """

    _TEXT_COLUMNS = (1, 3)  # covariance and mclust: left-aligned

    def __init__(self, table, criterion, estimators, n_samples, n_features):
        self.table = table
        self.criterion = criterion
        self.estimators_ = estimators
        self.n_samples = n_samples
        self.n_features = n_features
        ranked = self.ranked()
        if not ranked:
            details = "; ".join(
                f"{r['covariance_type']} K={r['n_components']}: {r['error'] or r['degenerate']}"
                for r in table
            )
            raise ValueError(
                "Every fit of the grid failed or is degenerate, so no model can be selected: "
                f"{details}"
            )
        best = ranked[0]
        self.best_params_ = {
            "covariance_type": best["covariance_type"],
            "n_components": best["n_components"],
        }
        self.best_estimator_ = estimators[(best["covariance_type"], best["n_components"])]

    def ranked(self) -> list[dict[str, Any]]:
        """Regular rows sorted by the criterion (best first).

        Returns
        -------
        list of dict
            The rows of ``table`` that neither failed nor degenerated, by increasing
            criterion (ties: fewer parameters first).
        """
        ok = [r for r in self.table if r["error"] is None and r["degenerate"] is None]
        return sorted(ok, key=lambda r: (r[self.criterion], r["n_parameters"]))

    def _others(self) -> list[dict[str, Any]]:
        deg = [r for r in self.table if r["error"] is None and r["degenerate"] is not None]
        deg.sort(key=lambda r: r[self.criterion])
        return deg + [r for r in self.table if r["error"] is not None]

    def _rows(self):
        crit = self.criterion.upper()
        header = [
            "rank",
            "covariance",
            "K",
            "mclust",
            "log-likelihood",
            "df",
            crit,
            f"{crit} diff",
            *[c.upper() for c in _CRITERIA if c != self.criterion],
            "converged",
        ]
        ranked = self.ranked()
        best = ranked[0][self.criterion]
        rows = []
        for i, r in enumerate(ranked, 1):
            rows.append(
                [
                    str(i),
                    r["covariance_type"],
                    str(r["n_components"]),
                    f"{MCLUST_NAMES[r['covariance_type']]},{r['n_components']}",
                    f"{r['log_likelihood']:.3f}",
                    str(r["n_parameters"]),
                    f"{r[self.criterion]:.3f}",
                    f"{r[self.criterion] - best:.3f}",
                    *[
                        "-" if r[c] is None else f"{r[c]:.3f}"
                        for c in _CRITERIA
                        if c != self.criterion
                    ],
                    "yes" if r["converged"] else "no",
                ]
            )
        return header, rows

    def _notes(self) -> list[str]:
        notes = []
        for r in self._others():
            what = (
                f"degenerate (log-likelihood {r['log_likelihood']:.3f}, never selected): "
                f"{r['degenerate']}"
                if r["error"] is None
                else f"failed: {r['error']}"
            )
            notes.append(f"{r['covariance_type']} K={r['n_components']}: {what}")
        return notes

    def _title(self) -> str:
        b = self.best_params_
        return (
            f"Model selection by {self.criterion.upper()} (lower is better; mclust reports "
            f"minus BIC and ICL) on {self.n_samples} samples x {self.n_features} features. "
            f"Best: {b['covariance_type']} with {b['n_components']} components "
            f"(mclust {MCLUST_NAMES[b['covariance_type']]},{b['n_components']})."
        )

    def __str__(self) -> str:
        header, rows = self._rows()
        widths = [max(len(x) for x in col) for col in zip(header, *rows, strict=True)]

        def fmt(cells):
            return "  ".join(
                c.ljust(wd) if i in self._TEXT_COLUMNS else c.rjust(wd)
                for i, (c, wd) in enumerate(zip(cells, widths, strict=True))
            ).rstrip()

        lines = [self._title(), "", fmt(header)]
        lines += [fmt(r) for r in rows]
        notes = self._notes()
        if notes:
            lines += ["", "Not ranked:"] + ["  " + n for n in notes]
        return "\n".join(lines)

    def __repr__(self) -> str:
        b = self.best_params_
        return (
            f"SelectionResult(criterion={self.criterion!r}, best_params_={b!r}, "
            f"n_fits={len(self.table)})"
        )

    def to_markdown(self) -> str:
        """The ranked table as GitHub-flavoured Markdown (regular fits, then the others).

        Returns
        -------
        str
            A title line, the table of ranked fits and a list of the fits not ranked.
        """
        header, rows = self._rows()
        align = [":---" if i in self._TEXT_COLUMNS else "---:" for i in range(len(header))]
        lines = [self._title(), ""]
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "|".join(align) + "|")
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        notes = self._notes()
        if notes:
            lines += ["", "Not ranked:", ""] + [f"- {n}" for n in notes]
        return "\n".join(lines) + "\n"

    def to_frame(self):
        """The table as a pandas DataFrame (pandas is imported lazily).

        Returns
        -------
        pandas.DataFrame
            One row per grid point, with the columns of :data:`TABLE_KEYS`.
        """
        import pandas as pd

        return pd.DataFrame(self.table)


# --------------------------------------------------------------------------- public


def _entropy_from(random_state) -> int:
    if random_state is None:
        return int(np.random.SeedSequence().entropy)
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        if random_state < 0:
            raise ValueError(f"random_state must be non-negative, got {random_state}.")
        return int(random_state)
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(2**63 - 1))
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(2**31 - 1))
    raise TypeError(
        "random_state must be None, an int, a numpy.random.Generator or a "
        f"numpy.random.RandomState, got {type(random_state).__name__}."
    )


def select_model(
    X,
    n_components=range(1, 10),
    covariance_types=_COVARIANCE_TYPES,
    criterion="bic",
    *,
    n_init=1,
    random_state=None,
    sample_weight=None,
    progress: Callable[[int, int, str, int], Any] | None = None,
    n_jobs=None,
    **params,
) -> SelectionResult:
    """Fit Gaussian mixtures over a grid and select one by BIC, AIC or ICL.

    The grid is every pair of ``n_components`` and ``covariance_types`` (mclust's
    ``mclustBIC`` grid with the models VII, VVI, EEE and VVV). Each grid point is fitted
    from several starts shared across the grid, degenerate solutions are avoided, and the
    model with the lowest criterion among the regular fits is selected. See the module
    documentation for the criteria, the mclust correspondence and the fitting strategy.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        The data (fitted in float64). With a DataFrame, the fitted models get
        ``feature_names_in_`` as if fitted on it.
    n_components : int or iterable of int, default=range(1, 10)
        Numbers of components to try (mclust's ``G``).
    covariance_types : str or iterable of str, default=("spherical", "diag", "tied", "full")
        Covariance types to try.
    criterion : {"bic", "aic", "icl"}, default="bic"
        Criterion to rank by; lower is better.
    n_init : int, default=1
        Number of k-means++ (Lloyd) starts and of random Voronoi starts per number of
        components, in addition to the three hierarchical (Ward) starts and the splits of
        the fit with one component fewer. Shared by all covariance types. Raise it for
        data with many local maxima; the cost grows about linearly.
    random_state : int, numpy Generator or RandomState, default=None
        Seed of the randomised starts. The starts for a given number of components do not
        depend on the rest of the grid or on ``n_jobs``.
    sample_weight : array-like of shape (n_samples,), default=None
        Non-negative weights (frequency weights: ``n`` in BIC is their sum).
    progress : callable, default=None
        Called as ``progress(i, n, covariance_type, n_components)`` after each of the
        ``n`` grid points is done (``i`` counts from 1).
    n_jobs : int, default=None
        Number of worker processes (one number of components per task). None or 1 runs in
        this process; -1 uses all CPUs.
    **params
        Other :class:`~gaussmix.GaussianMixture` parameters (``tol``, ``reg_covar``,
        ``max_iter``, ``block_size``, ...). The starting values, ``n_components`` and
        ``covariance_type`` are set by ``select_model``.

    Returns
    -------
    SelectionResult
        With ``table``, ``best_estimator_``, ``best_params_``; ``str()`` and
        ``to_markdown()`` give the ranked table.

    Raises
    ------
    ValueError
        For bad arguments, or when every fit failed or degenerated.

    Examples
    --------
    >>> from gaussmix.datasets import load_faithful
    >>> from gaussmix.selection import select_model
    >>> res = select_model(load_faithful(), n_components=[2, 3], random_state=0)
    >>> res.best_params_
    {'covariance_type': 'tied', 'n_components': 3}
    """
    from ._validation import check_array, check_sample_weight, feature_names_of

    feature_names = feature_names_of(X)
    if np.ndim(X) != 2:
        raise ValueError(
            f"X must be a 2-dimensional array of shape (n_samples, n_features), got shape "
            f"{np.shape(X)}; reshape a single feature with X.reshape(-1, 1)."
        )
    X = np.ascontiguousarray(check_array(X), dtype=np.float64)
    n_samples, n_features = X.shape

    if isinstance(n_components, numbers.Integral):
        n_components = [n_components]
    ks = list(n_components)
    if not ks or any(
        not isinstance(k, numbers.Integral) or isinstance(k, bool) or k < 1 for k in ks
    ):
        raise ValueError(
            f"n_components must be positive integers, got {n_components!r}; "
            "e.g. n_components=range(1, 10)."
        )
    ks = sorted({int(k) for k in ks})
    if ks[-1] > n_samples:
        raise ValueError(
            f"n_components={ks[-1]} exceeds n_samples={n_samples}; try fewer components."
        )

    if isinstance(covariance_types, str):
        covariance_types = [covariance_types]
    types = list(dict.fromkeys(covariance_types))
    bad = [t for t in types if t not in _COVARIANCE_TYPES]
    if not types or bad:
        raise ValueError(
            f"covariance_types must be among {_COVARIANCE_TYPES}, got {covariance_types!r}."
        )
    if criterion not in _CRITERIA:
        raise ValueError(f"criterion must be one of {_CRITERIA}, got {criterion!r}.")
    if not isinstance(n_init, numbers.Integral) or isinstance(n_init, bool) or n_init < 0:
        raise ValueError(f"n_init must be a non-negative integer, got {n_init!r}.")
    reserved = [p for p in _RESERVED if p in params]
    if reserved:
        raise TypeError(
            f"select_model sets {', '.join(reserved)} itself; remove "
            f"{'it' if len(reserved) == 1 else 'them'} from the arguments."
        )
    if progress is not None and not callable(progress):
        raise TypeError(f"progress must be callable or None, got {type(progress).__name__}.")

    w = check_sample_weight(sample_weight, n_samples)
    weights = np.ones(n_samples) if w is None else w
    n_eff = float(weights.sum())

    entropy = _entropy_from(random_state)
    rng = np.random.default_rng(np.random.SeedSequence(entropy, spawn_key=(0,)))

    # Hierarchical partitions, computed once for every K.
    hc = {}
    for transform in _SPACES:
        for K, labels in _hc_partitions(transform(X, weights), weights, ks, rng).items():
            hc.setdefault(K, []).append(labels)

    n_points = len(ks) * len(types)
    done = 0
    outputs: dict[tuple[str, int], Any] = {}

    def collect(results):
        nonlocal done
        for (t, K), value in sorted(results.items(), key=lambda item: (item[0][1], item[0][0])):
            outputs[(t, K)] = value
            done += 1
            if progress is not None:
                progress(done, n_points, t, K)

    workers = 1
    if n_jobs is not None:
        import os

        workers = (os.cpu_count() or 1) if n_jobs == -1 else int(n_jobs)
        if workers < 1:
            raise ValueError(f"n_jobs must be a positive integer or -1, got {n_jobs!r}.")
    if workers > 1 and len(types) > 1:
        # One task per covariance type: the K-chains are independent of each other.
        with ProcessPoolExecutor(max_workers=min(workers, len(types))) as pool:
            futures = [
                pool.submit(_fit_chain, X, w, ks, (t,), params, hc, n_init, entropy) for t in types
            ]
            for fut in as_completed(futures):
                collect(fut.result())
    else:
        _fit_chain(
            X,
            w,
            ks,
            tuple(types),
            params,
            hc,
            n_init,
            entropy,
            on_done=lambda key, value: collect({key: value}),
        )

    table = []
    estimators = {}
    for t in types:
        for K in ks:
            best, errors = outputs[(t, K)]
            row: dict[str, Any] = dict.fromkeys(TABLE_KEYS)
            row.update(covariance_type=t, n_components=K)
            if best is None:
                row["error"] = "; ".join(dict.fromkeys(errors)) or "no start could be made"
            else:
                model = best.model
                row.update(
                    log_likelihood=best.log_likelihood,
                    **_criteria(model, X, w, best.log_likelihood, n_eff),
                    converged=best.converged,
                    n_iter=best.n_iter,
                    degenerate=best.reason,
                )
                if feature_names is not None:  # as if fitted on the DataFrame itself
                    model.feature_names_in_ = feature_names
                estimators[(t, K)] = model
            table.append(row)

    return SelectionResult(table, criterion, estimators, n_samples, n_features)
