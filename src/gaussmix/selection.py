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

Covariance types: by default all of mclust's 14 models, as mclust's ``Mclust`` and
``mclustBIC`` compare them (``covariance_types="all"`` or ``"mclust"``); ``"sklearn"`` is
scikit-learn's four. Lists may mix both naming schemes and presets (``["sklearn", "EEV"]``);
results name scikit-learn's four by scikit-learn's names:

============  ======  ==================================================
gaussmix      mclust  covariance of component k
============  ======  ==================================================
"spherical"   VII     ``sigma_k^2 I`` (variable volume, spherical)
"diag"        VVI     ``diag(sigma_k1^2, ...)`` (variable volume and shape, axis-aligned)
"tied"        EEE     ``Sigma`` shared by all components
"full"        VVV     ``Sigma_k`` unconstrained
"EII" ...     EII...  the other ten of ``lambda_k D_k A_k D_k^T`` (:mod:`gaussmix.families`)
============  ======  ==================================================

How the fits are made (so that every grid point reaches at least mclust's log-likelihood):

1. **Starts shared across the grid.** For every ``K`` a set of hard partitions of the data
   is computed once and used by all covariance types: three cuts of Ward (minimum
   within-cluster sum of squares) agglomerative trees, on the raw, standardised and
   sphered data (mclust starts EM from a model-based agglomeration on sphered data; Ward
   is that agglomeration for the spherical model, and one tree serves every ``K``);
   ``n_init`` runs of gaussmix's k-means (:func:`gaussmix._init.kmeans`); and ``n_init``
   random Voronoi partitions around data points. Duplicate partitions are dropped. Each
   partition becomes starting parameters of every covariance type through the statistics
   of its one-hot responsibilities and the M-step (covariances shrunk towards the pooled
   within-cluster covariance by ``D + 1`` pseudo-points, so small clusters do not start
   singular).
2. **Split starts.** The best fit with ``K - 1`` components of the same type, with one
   component cut in two along its major axis (the three widest components in turn), starts
   ``K``. This is what reaches mclust at large ``K`` (VVV with 7 to 9 components on Old
   Faithful), where random starts rarely do. The fit with one component is cut along each
   of the data's first three principal axes (its own axes can be the coordinates: a
   diagonal model's).
3. **A race, then polish.** EM from every start runs 4 iterations; the better half of each
   covariance type runs on for twice as many, and so on until two per type are left
   (successive halving); both are polished and the better polished one is kept. Starts
   are ranked by the log-likelihood projected a few iterations ahead from the rate at
   which EM is still climbing, because EM stops far from its limit when components
   overlap. The winners then run on, accelerated by SQUAREM
   (Varadhan & Roland 2008, with a monotonicity safeguard: :func:`gaussmix.em.run_squarem`),
   until a cycle of three EM steps gains less than 0.01 in log-likelihood, so the reported
   log-likelihood is the maximum, not where a stopping rule left it.
4. **mclust's ten other models** share the starts and the race, and the M-step of each is
   its family's (closed forms for EII, EEI, EVI, EEV, EVV, batched over the starts; the
   block updates of VEI, VEE, VEV, EVE and VVE, vectorised over the starts, a few rounds
   per EM step from the current parameters: generalised EM, monotone, whose fixed points
   are the constrained maxima). SQUAREM's extrapolations are moved back onto each model's
   constraint before they are used (:meth:`gaussmix._batch.Rows.project`), which keeps the
   safeguard's monotonicity. Their local maxima are many and close, so the race keeps up
   to ``_FINALISTS_CONSTRAINED`` (8) of their starts, each model also gets the best race
   finalist of every other model projected onto it (mclust starts all its models from one
   partition; not with one component, whose maximum is unique), all of these run
   ``_SCREEN_STEPS`` (19) accelerated EM steps together, and the best two of each model
   are polished. The screen runs only one of the starts of a model that share a MAP
   partition of the rows, and stops a run whose MAP partition a better run of its model
   has (both climb to the same maximum), or that cannot catch up with the second best.
5. **No spurious maximizers.** Every fit is checked by
   :func:`gaussmix._degeneracy.degeneracy_reason` (a component on fewer points than its
   covariance needs, a variance at the ``reg_covar`` floor, or a spherical component on
   points sharing one value of a feature; for the ten other models, whose shared volume,
   shape or orientation can keep a component's variance above the floor where its own
   points are flat, that third sign too). Degenerate fits leave the race at once; when
   every start of a grid point degenerates, a few random restarts are tried, and if they
   degenerate too the grid point is marked degenerate in the table, with the reason, and is
   never selected. A mixture whose parameters are not finite (an extrapolation off its
   model) or whose EM step raises fails alone: the others of its batch step on.

The engine: all the starts of all the covariance types of one ``K`` step together, one
E-step and one M-step call per iteration (:mod:`gaussmix._batch`: the rows as quadratic
features, every mixture's log-densities in one product). On data of at least
``_THREADS_MIN_ROWS`` rows, an E-step that takes its rows in several blocks spreads them
over one thread per core (the BLAS held to one thread, as for every fit; the sums added in
the blocks' order, so the results do not depend on the number of cores). With ``n_jobs``,
the grid's types are dealt among processes that run their K-chains in step and exchange
every type's best race finalist at each K (:func:`_fit_dealt`), from which mclust's other
models take their cross finalists as in one process; beyond ``_SHARED_FEATURES_MAX_D``
features (every type in its own batches, no cross finalists) each type is one task of a
process pool.

On data of more than 2,000 rows the starts, the race and a first polish use a fixed
random sample of 2,000 rows (the Ward trees 1,000); the best polished finalist of each
type by its log-likelihood on all the rows (when they are in memory: up to 200,000; the
sample can rank two maxima the other way) is then polished on all the rows, at most 30
EM steps, until a SQUAREM cycle gains less than 1e-6 of the log-likelihood (mclust stops
when one iteration gains less than 1e-5 of it). Only that last polish needs the full
data, through a ``statistics(params)`` callable (:func:`gaussmix.em.statistics_step`), so
a data source that is not in memory only has to provide a sample of rows and its
statistics: a dask array is selected this way (its sample from ``sample_rows``, its final
polish by :func:`source_step`, one pass on the cluster per EM step, and one more pass for
every grid point's log-likelihood and ICL entropy on all the rows). One
:class:`~gaussmix.GaussianMixture` per grid point is built at the end, from the parameters
(no refit). ``GaussianMixture(init_params="robust")`` runs the same chain for one type.

``benchmarks/bench_select.py`` times both grids (scikit-learn's four and mclust's 14)
against mclust's ``mclustBIC``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from typing import Any

import numpy as np

from . import families
from ._batch import (
    DEFERRED,
    DIAG,
    FULL,
    SPHERICAL,
    TIED,
    TYPES,
    Batch,
    Rows,
    all_finite,
    features_for,
    finite_mixtures,
    project_covariances,
)
from ._batch import project as project_batch
from ._covariance import covariance_of_component
from ._criteria import information_criteria, map_entropy
from ._degeneracy import data_covariance
from ._parallel import available_cores, one_blas_thread
from .em import _assign_into, m_step_each, run_squarem, statistics_step
from .stats import MixtureParameters

__all__ = ["MCLUST_NAMES", "PRESETS", "TABLE_KEYS", "SelectionResult", "covariance_types_of",
           "robust_parameters", "select_model"]

#: The covariance types selection compares, in mclust's order (simplest first), with
#: mclust's names (each family says its own; see :mod:`gaussmix.families`): all 14 of
#: mclust's models, scikit-learn's four under scikit-learn's names.
MCLUST_NAMES = {families.get(m).name: m for m in families.MCLUST_MODELS}

_COVARIANCE_TYPES = tuple(MCLUST_NAMES)  # the default grid: mclust's 14 models
_SKLEARN_TYPES = families.SELECTION_ORDER  # spherical, diag, tied, full
#: Named grids of covariance types (``covariance_types="sklearn"``, ...).
PRESETS = {
    "all": _COVARIANCE_TYPES,
    "mclust": _COVARIANCE_TYPES,
    "sklearn": _SKLEARN_TYPES,
}
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
_FIRST_BUDGET = 4  # EM iterations of every start before the first halving
_HALVING = 2  # each stage of the race keeps 1 / _HALVING of the starts of each type
_RACE_TOL = 1e-6  # per-sample change of the mean log-likelihood during the race
_POLISH_GAIN = 1e-2  # polishing stops when a SQUAREM cycle gains less (total log-lik.)
_POLISH_MAX_ITER = 3000  # EM steps
_ROBUST_GAIN = 1e-6  # polish of init_params='robust' (one model, total log-likelihood)
# EM steps of the final polish on all the rows of large data, after the polish on the race
# sample: enough for the models that fit the data (7 to 20 steps on the 20,000-row set of
# bench_select.py); models with spurious components creep on along flat ridges for
# hundreds of steps, a few tenths of a unit per cycle (their row then says converged=no).
_FULL_POLISH_MAX_ITER = 30
# ... and it stops when a SQUAREM cycle (3 EM steps) gains less than this fraction of the
# log-likelihood (mclust stops when one EM iteration gains less than 1e-5 of it).
_FULL_POLISH_RELATIVE = 1e-6
# Rows from which the E-steps of a selection spread their blocks of rows over the cores
# (Rows's pool); fewer rows make one block (at most two) in almost every E-step.
_THREADS_MIN_ROWS = 1000
_HC_MAX_SAMPLES = 1000  # the agglomeration runs on a subsample beyond this size (n^2 memory)
_RACE_MAX_SAMPLES = 2000  # starts and race on a random subset of rows beyond this size
_LEAN_MAX_SAMPLES = 200_000  # final polish on features in memory up to this size
_SHARED_FEATURES_MAX_D = 8  # every covariance type steps together up to this many features
_POLISH_RELATIVE = 1e-7  # ... or less than this fraction of the log-likelihood
_EXTRA_STARTS = 6  # random restarts tried when every start of a grid point degenerated
_N_SPLITS = 3  # components split to start K from the fit with K - 1
# The race stops when at most this many starts of a type are left: they are all polished
# and the best polished one is kept (cheaper than a last race stage, and never worse than
# polishing the one such a stage would keep, up to the polish's stopping rule).
_FINALISTS = 2
# ... for mclust's ten other models, whose local maxima are many and close (their race
# ranks worse): at most this many are left to polish.
_FINALISTS_CONSTRAINED = 8
# EM steps of the accelerated run that screens many finalists before the polish (19: the
# steps the screen took when it was 20 and each of its chunks after the first repeated
# the step the last one had stopped on; a chunk now continues from it).
_SCREEN_STEPS = 19
_SCREEN_KEEP = 2  # ... after which the best this many of each type are polished
_SCREEN_TWINS = True  # ... stopping the runs whose MAP partition a better one has
_TWIN_ROWS = 500  # ... judged on at most this many rows
_SCREEN_CHUNK = 6  # ... looking at the runs (and stopping hopeless ones) every 6 steps
#: ... a run stops when its log-likelihood plus this many times its last cycle's gain is
#: below the _FINALISTS-th best of its type (the screen's gains shrink fast: 4 stopped 12%
#: of the screen's mixture-steps on Old Faithful and iris, the fits unchanged)
_SCREEN_HORIZON = 4.0
#: ... on at most about this many of the race's rows (every k-th): the screen only ranks
#: the finalists of a type, and its E-steps on many finalists were most of the time of
#: larger data
_SCREEN_MAX_SAMPLES = 1000


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
    """Ward agglomeration by rounds of reciprocal nearest neighbours; O(n^2) memory.

    Returns the merges ``(a, b, cost)`` in order of non-decreasing cost, each naming the
    two clusters merged by one of their rows (the merged cluster keeps the smaller,
    ``a < b``). Ward's cost of merging clusters a and b,
    ``m_a m_b / (m_a + m_b) ||c_a - c_b||^2`` (masses m, centroids c), is the increase of
    the within-cluster sum of squares. Ward's linkage is reducible (a merge never brings
    a cluster closer to the others than the nearer of its parts was), so two clusters
    that are each other's nearest neighbour merge in the greedy agglomeration too, and
    every such pair can merge at once (Murtagh 1983; de Rham 1980): each round merges all
    of them, recomputes the cost rows of the merged clusters from their centroids, and
    drops the merged-away rows, about 16 rounds for 272 rows where the greedy algorithm
    makes 271 steps. The merges, sorted by cost, are the greedy algorithm's (its cuts at
    every K the same partitions); a merge's cost is kept at least those of the merges
    that formed its clusters, so that rounding cannot order a merge before its parts.
    """
    Y = np.asarray(Y, dtype=np.float64)
    C = Y - Y.mean(axis=0)
    M = np.array(w, dtype=np.float64)
    n = C.shape[0]
    ids = np.arange(n)  # the smallest row of each cluster (increasing with the position)
    height = np.zeros(n)  # the cost of the merge that formed each cluster
    cost = _ward_costs(C, M, np.arange(n))
    out_c, out_a, out_b = [], [], []
    while C.shape[0] > 1:
        m = C.shape[0]
        nearest = cost.argmin(axis=1)
        a = np.flatnonzero((nearest[nearest] == np.arange(m)) & (np.arange(m) < nearest))
        b = nearest[a]  # (the globally nearest pair is always reciprocal: a.size >= 1)
        c = np.maximum(cost[a, b], np.maximum(height[a], height[b]))
        out_c.append(c)
        out_a.append(ids[a])
        out_b.append(ids[b])
        Ma, Mb = M[a], M[b]
        C[a] = (Ma[:, None] * C[a] + Mb[:, None] * C[b]) / (Ma + Mb)[:, None]
        M[a] = Ma + Mb
        height[a] = c
        keep = np.ones(m, dtype=bool)
        keep[b] = False
        kept = np.flatnonzero(keep)
        C, M, ids, height = C[kept], M[kept], ids[kept], height[kept]
        cost = cost.take(kept, axis=0).take(kept, axis=1)  # (twice faster than cost[ix])
        merged = np.cumsum(keep)[a] - 1  # the merged clusters' new positions
        rows = _ward_costs(C, M, merged)
        cost[merged] = rows
        cost[:, merged] = rows.T
    if not out_c:
        return []
    c, a, b = np.concatenate(out_c), np.concatenate(out_a), np.concatenate(out_b)
    order = np.argsort(c, kind="stable")  # (on ties, a cluster's parts come first)
    return list(zip(a[order].tolist(), b[order].tolist(), c[order].tolist(), strict=True))


def _ward_costs(C: np.ndarray, M: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """(len(rows), m) Ward costs between the clusters ``rows`` and all m clusters (inf with
    themselves): squared distances summed feature by feature (direct differences, no
    cancellation), in blocks of rows."""
    out = np.empty((rows.size, C.shape[0]))
    unit = bool(np.all(M == 1.0))  # singletons of unit weight: each factor is 1 / 2
    for start in range(0, rows.size, 256):
        part = rows[start : start + 256]
        block = out[start : start + 256]
        Cp = C[part]
        if C.shape[1]:
            np.subtract(Cp[:, :1], C[:, 0], out=block)
            np.multiply(block, block, out=block)
        else:  # no feature (the sphered view of constant data): every cost 0
            block[...] = 0.0
        diff = np.empty_like(block) if C.shape[1] > 1 else None
        for d in range(1, C.shape[1]):
            np.subtract(Cp[:, d : d + 1], C[:, d], out=diff)
            np.multiply(diff, diff, out=diff)
            block += diff
        if unit:
            block *= 0.5
        else:
            Mp = M[part][:, None]
            block *= Mp * M / (Mp + M)
        block[np.arange(part.size), part] = np.inf
    return out


def _ward_trees(Ys, ws) -> list[list[tuple[int, int, float]]]:
    """:func:`_ward_tree` of each view of the data (``_SPACES``)."""
    return [_ward_tree(Y, w) for Y, w in zip(Ys, ws, strict=True)]


def _cut_tree(merges, n: int, ks: Iterable[int]) -> dict[int, np.ndarray]:
    """Labels (0..K-1) of the partition into K clusters, for every K in ks."""
    root = np.arange(n)  # each row's cluster, named by its representative row
    wanted = sorted({k for k in ks if 1 <= k <= n}, reverse=True)
    out: dict[int, np.ndarray] = {}
    n_clusters = n

    def snapshot() -> np.ndarray:
        return np.unique(root, return_inverse=True)[1]

    for a, b in [(m[0], m[1]) for m in merges]:
        while wanted and wanted[0] == n_clusters:
            out[wanted.pop(0)] = snapshot()
        if not wanted:
            break
        ra, rb = root[a], root[b]
        if ra != rb:
            root[root == rb] = ra
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


def _hc_partitions(Ys, w, ks, rng) -> list[dict[int, np.ndarray]]:
    """Ward tree cuts for every K of each view of the data in ``Ys`` (:func:`_ward_trees`);
    each view on its own subsample when the data are large."""
    n = Ys[0].shape[0]
    positive = np.flatnonzero(w > 0)
    subs = [np.sort(rng.choice(positive, size=_HC_MAX_SAMPLES, replace=False))
            if positive.size > _HC_MAX_SAMPLES else positive for _ in Ys]
    trees = _ward_trees([Y[sub] for Y, sub in zip(Ys, subs, strict=True)],
                        [w[sub] for sub in subs])
    out = []
    for Y, sub, merges in zip(Ys, subs, trees, strict=True):
        cuts = _cut_tree(merges, sub.size, ks)
        if sub.size != n:
            cuts = {K: _nearest(Y, _centroids(Y[sub], w[sub], lab, K)) for K, lab in cuts.items()}
        out.append(cuts)
    return out


def _kmeans(Y, w, K, rng) -> np.ndarray:
    """Labels of gaussmix's k-means (:func:`gaussmix._init.kmeans`, k-means++ seeded Lloyd)."""
    from ._init import kmeans, nearest_center

    centers = kmeans(Y, K, rng, None if np.all(w == 1.0) else w, max_iter=30)
    return nearest_center(Y, centers, np.einsum("kd,kd->k", centers, centers))


def _voronoi(Y, w, K, rng, distinct=None) -> np.ndarray:
    """Partition around K distinct data points drawn at random (weighted).

    ``distinct``: :func:`_distinct_rows` of ``(Y, w)``, when the caller keeps it (it does
    not depend on K).
    """
    positive, candidates, p = _distinct_rows(Y, w) if distinct is None else distinct
    if candidates.size < K:
        return _nearest(Y, Y[rng.choice(positive, size=K, replace=True)])
    return _nearest(Y, Y[rng.choice(candidates, size=K, replace=False, p=p)])


def _distinct_rows(Y, w):
    """``(rows of positive weight, the first of each distinct one, their probabilities)``
    for :func:`_voronoi` (a sort of the rows: the costliest part of a draw)."""
    positive = np.flatnonzero(w > 0)
    _, first = np.unique(Y[positive], axis=0, return_index=True)
    candidates = positive[first]
    return positive, candidates, w[candidates] / w[candidates].sum()


def _canonical(labels: np.ndarray) -> bytes:
    """Key identifying a partition regardless of how its clusters are numbered."""
    _, first = np.unique(labels, return_index=True)
    relabel = np.empty(labels.max() + 1, dtype=np.int64)
    relabel[labels[np.sort(first)]] = np.arange(first.size)
    return relabel[labels].tobytes()


def _starts_of_partitions(rows, labels_list, K, types) -> Batch | None:
    """Starting parameters of every type in ``types`` from the partitions using all K clusters.

    Through the statistics of the one-hot responsibilities and the M-step, each cluster
    covariance shrunk towards the pooled within-cluster covariance with the weight of
    ``n_features + 1`` pseudo-points, so that small or flat clusters do not start EM at a
    singular matrix (this only affects the start, not the fitted maximum). None when no
    partition uses all K clusters.
    """
    w = np.ones(rows.Q.shape[0]) if rows.w is None else rows.w
    usable = [lab for lab in labels_list if np.all(np.bincount(lab, weights=w, minlength=K) > 0)]
    if not usable:
        return None
    return rows.from_labels(usable, K, types, shrink=rows.n_features + 1.0)


def _full_covariances(model) -> np.ndarray:
    """The fitted covariances as a (K, D, D) stack, whatever the covariance type."""
    K, D = model.means_.shape
    cov = np.asarray(model.covariances_, dtype=np.float64)
    kind = getattr(model, "_fitted_covariance_type", model.covariance_type)
    return np.stack([covariance_of_component(cov, kind, k, D) for k in range(K)])


def _reduce_to_type(full, weights, type_code):
    """(K, D, D) covariances reduced to a type, kept as (K, D, D) matrices."""
    D = full.shape[-1]
    if type_code == FULL:
        return full
    if type_code > FULL:  # mclust's other models: the family's projection (closed forms)
        family = families.get(TYPES[type_code])
        if family.iterative:  # or a cheap move onto the constraint (a start only)
            return project_covariances(family.name, full[None])[0]
        K = full.shape[0]
        return np.array(family.full_covariances(family.from_full(full, weights), K, D))
    if type_code == TIED:
        # (np.tensordot's own product, without its Python)
        pooled = np.dot((weights / weights.sum())[None], full.reshape(full.shape[0], -1))
        return np.repeat(pooled.reshape(1, D, D), full.shape[0], axis=0)
    var = np.diagonal(full, axis1=-2, axis2=-1)
    if type_code == SPHERICAL:
        var = np.repeat(var.mean(axis=1, keepdims=True), D, axis=1)
    return var[:, :, None] * np.eye(D)


def _splits(batch: Batch, s: int, n_splits: int, data_cov=None) -> Batch:
    """Starts with K + 1 components: one component of mixture ``s`` split in two.

    The component is cut along its major axis (standard deviation sigma there): new means
    at ``+-sqrt(2/pi) sigma``, variance along the axis ``(1 - 2/pi) sigma^2``, half
    the weight each. The components with the largest ``weight * sigma`` are split first.
    A fit with one component is cut along each of the first ``n_splits`` principal axes
    of ``data_cov`` (the covariance of the rows, when given; else of its own
    covariance): a constrained model's own axes can miss the data's (a diagonal model's
    are the coordinate axes). On the synthetic set of 5,000 rows, EEI and EVI with 2
    components reached their best maximum (2,924 and 2,363 lower in BIC) only from the
    data's second axis, for 2 of 3 seeds.
    """
    code = batch.types[s]
    weights, means, fitted = batch.weights[s], batch.means[s], batch.covariances[s]
    D = means.shape[1]
    one = weights.size == 1
    full = data_cov[None] if one and data_cov is not None else fitted
    eigval, eigvec = np.linalg.eigh(full)
    sigma = np.sqrt(np.maximum(eigval, 0.0))
    if one:  # its principal axes, largest first
        axis = np.arange(D - 1, max(D - 1 - n_splits, -1), -1)
        order = np.zeros(axis.size, dtype=np.int64)
    else:  # the major axis of each component
        order = np.argsort(-(weights * sigma[:, -1]), kind="stable")[:n_splits]
        axis = np.full(order.size, D - 1)
    shift = math.sqrt(2.0 / math.pi)
    # every split at once (J of them; split j is component order[j] in two)
    J, K = order.size, weights.size
    at = (np.arange(J), order)
    v = eigvec[order, :, axis]  # (J, D)
    sig = sigma[order, axis]
    offset = (shift * sig)[:, None] * v
    cov_j = full[order] - (shift**2 * sig**2)[:, None, None] * (v[:, :, None] * v[:, None, :])
    new_w = np.concatenate([np.tile(weights, (J, 1)), (weights[order] / 2.0)[:, None]], axis=1)
    new_w[at] /= 2.0
    new_m = np.concatenate([np.tile(means, (J, 1, 1)), (means[order] + offset)[:, None]],
                           axis=1)
    new_m[at] = means[order] - offset
    new_full = np.concatenate([np.tile(fitted, (J, 1, 1, 1)), cov_j[:, None]], axis=1)
    new_full[at] = cov_j
    if code in (FULL, DIAG, SPHERICAL):  # (their reductions act on each matrix alone)
        cov = _reduce_to_type(new_full.reshape(J * (K + 1), *fitted.shape[1:]), None,
                              code).reshape(new_full.shape)
    else:
        cov = np.stack([_reduce_to_type(new_full[j], new_w[j], code) for j in range(J)])
    return Batch(np.full(J, code), new_w, new_m, cov)


# --------------------------------------------------------------------------- fitting


def _reason(candidate) -> str | None:
    """Why a fit is degenerate, or None (:func:`gaussmix._degeneracy.degeneracy_reason`).

    ``candidate`` has ``covariance_type``, ``n_components`` and ``reason`` (the verdict
    computed by the engine); a hook for tests.
    """
    return candidate.reason


class _Candidate:
    """One mixture of a grid point: parameters, log-likelihood, verdict, iterations."""

    __slots__ = ("batch", "bounds", "converged", "covariance_type", "entropy",
                 "log_likelihood", "n_components", "n_iter", "reason")

    def __init__(self, batch, log_likelihood, reason, n_iter, converged=False):
        self.batch = batch  # a Batch of one
        self.covariance_type = batch.covariance_type(0)
        self.n_components = batch.weights.shape[1]
        self.log_likelihood = float(log_likelihood)
        self.reason = reason
        self.n_iter = int(n_iter)
        self.converged = bool(converged)
        self.entropy = None  # of the MAP assignment on all the rows, when computed
        self.bounds = [self.log_likelihood]  # total log-likelihoods of the last polish

    def verdict(self):
        self.reason = _reason(self)
        return self.reason


_INVALID = "ValueError: a covariance lost positive definiteness during EM"


def _em_step(rows, batch):
    """One EM iteration of every mixture of ``batch`` (a hook for tests)."""
    return rows.step(batch)


def _step_each(rows, batch, errors):
    """:func:`_em_step`, where an exception fails only the mixtures that raise it
    (:func:`_split_on_error`)."""
    return _split_on_error(lambda b: _em_step(rows, b), batch, errors)


def _split_on_error(step, batch, errors):
    """``step(batch)``, where an exception fails only the mixtures that raise it.

    The engine steps every mixture of the batch in one call: one mixture whose statistics
    are not finite (a SQUAREM extrapolation far off, say) can make a batched
    decomposition raise for all of them. The batch is then split in halves until the
    mixtures that raise are alone; each of those is marked bad (its parameters unchanged,
    its log-likelihood NaN: -inf would make :func:`gaussmix.em.run_squarem`'s first gain
    -inf - -inf) and its error is recorded under its type in ``errors``.
    """
    if not all_finite(batch):
        # Non-finite parameters (a SQUAREM extrapolation projected off its model): invalid
        # for the engine too, and the usual cause of an exception; they stay out of the call.
        finite = finite_mixtures(batch)
        out, ll, bad = batch.copy(), np.full(batch.size, np.nan), np.ones(batch.size, bool)
        if finite.any():
            new, ll[finite], bad[finite] = _split_on_error(step, batch.take(finite), errors)
            out = out.put(np.flatnonzero(finite), new)
        return out, ll, bad
    try:
        return step(batch)
    except Exception as exc:  # a failed mixture is recorded, not raised
        if batch.size == 1:
            errors.setdefault(int(batch.types[0]), []).append(f"{type(exc).__name__}: {exc}")
            return batch.copy(), np.array([np.nan]), np.array([True])
        half = batch.size // 2
        parts = [_split_on_error(step, batch.take(np.arange(half)), errors),
                 _split_on_error(step, batch.take(np.arange(half, batch.size)), errors)]
        return (Batch.stack([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
                np.concatenate([p[2] for p in parts]))


def _run_race(rows, batch, n_eff, race_tol, degenerate, errors):
    """EM from every start of ``batch`` by successive halving, within each covariance type.

    Every start runs ``_FIRST_BUDGET`` iterations; the better half (ranked by the
    log-likelihood projected ahead) of the regular starts of each type runs on with a
    doubled budget, and so on until one is left per type. Starts that converge
    (``race_tol`` per sample) wait for the others; degenerate ones leave the race (into
    ``degenerate[type code]``), as do starts whose EM fails. All the starts of all the
    types step together (one E-step and one M-step call per iteration).

    The race stops for a type when at most ``_FINALISTS`` of its starts are left.
    Returns ``{type code: [finalist candidates, best ranked first]}`` for the types that
    kept a regular start (each with the log-likelihood of the parameters its last step
    started from: the value its history ends with).
    """
    S = batch.size
    history = [[] for _ in range(S)]
    n_iter = np.zeros(S, dtype=np.int64)
    converged = np.zeros(S, dtype=bool)
    alive = np.ones(S, dtype=bool)
    last = np.full(S, -np.inf)  # each start's latest log-likelihood
    current = batch.copy()  # (written in place below: the caller's batch stays as it is)
    moved = np.ones(S, dtype=bool)  # stepped since their last degeneracy check
    budget = _FIRST_BUDGET
    winners = {}
    while alive.any():
        for _ in range(budget):
            idx = np.flatnonzero(alive & ~converged)
            if not idx.size:
                break
            new, ll, bad = _step_each(rows, current if idx.size == S else current.take(idx),
                                      errors)
            for s in idx[bad]:
                alive[s] = False
                errors.setdefault(int(current.types[s]), []).append(_INVALID)
            good = idx[~bad]
            ll_good = ll[~bad]
            # converged: a second value within race_tol of the previous one
            settled = (n_iter[good] > 0) & (np.abs(ll_good - last[good]) < race_tol * n_eff)
            converged[good[settled]] = True
            last[good] = ll_good
            n_iter[good] += 1
            for s, value in zip(good.tolist(), ll_good.tolist(), strict=True):
                history[s].append(value)
            moved[good] = True
            if idx.size == S and not bad.any():
                current = new
            elif bad.any():  # (in place: current is the race's own, a copy or a step's output)
                _assign_into(current, idx[~bad], new.take(~bad))
            else:
                _assign_into(current, idx, new)
        if not alive.any():
            break
        # (a start that has not moved since its last check keeps that verdict: regular)
        idx = np.flatnonzero(alive & moved)
        moved[:] = False
        verdicts = rows.degeneracy(current.take(idx), defer=True) if idx.size else []
        for j, s in enumerate(idx):
            if verdicts[j] is None and _reason is _default_reason:
                continue
            cand = _Candidate(current.take([s]), history[s][-1] if history[s] else -np.inf,
                              verdicts[j], n_iter[s])
            if cand.verdict() is not None:
                alive[s] = False
                degenerate.setdefault(int(current.types[s]), []).append(cand)
        for code in np.unique(current.types[alive]):
            members = np.flatnonzero(alive & (current.types == code))
            ranked = sorted(members,
                            key=lambda s: -_projected(history[s], 2 * budget, converged[s]))
            if code > FULL and len(ranked) <= _FINALISTS_CONSTRAINED:
                keep = ranked  # few enough: polish them all
            else:
                keep = ranked[: max(1, len(ranked) // _HALVING)]
            alive[members] = False
            if len(keep) <= (_FINALISTS if code <= FULL else _FINALISTS_CONSTRAINED):
                winners[int(code)] = [
                    _Candidate(current.take([s]), history[s][-1], None, n_iter[s], converged[s])
                    for s in keep
                ]
            else:
                alive[keep] = True
        budget *= 2
    return winners


_default_reason = _reason


def _projected(history, n_iter, converged) -> float:
    """Log-likelihood expected after ``n_iter`` more EM iterations (Aitken-style).

    EM converges linearly: increments shrink by a roughly constant ratio ``a``, so the next
    ``n_iter`` iterations add about ``d a (1 - a^n_iter) / (1 - a)`` to the last increment
    ``d``. Ranking the race by this, rather than by the current value, keeps slow starters
    that are still climbing fast.
    """
    if not history:
        return -np.inf
    if converged or len(history) < 3:
        return history[-1]
    d_prev = history[-2] - history[-3]
    d = history[-1] - history[-2]
    if not (d > 0 and d_prev > 0):
        return history[-1]
    a = min(d / d_prev, 1.0)
    gain = d * n_iter if a >= 1.0 else d * a * (1.0 - a**n_iter) / (1.0 - a)
    return history[-1] + gain


def _map_keys(rows, batch) -> list[bytes]:
    """Each mixture's MAP partition of ``rows`` (of every k-th row, about ``_TWIN_ROWS`` of
    them, when there are more), regardless of how the components are numbered, from one
    product for the whole batch."""
    coef, _ = rows.coefficients(batch)
    S, K, F = coef.shape
    Q = rows.Q[::-(-rows.Q.shape[0] // _TWIN_ROWS)]
    n = Q.shape[0]
    labels = (Q @ coef.reshape(S * K, F).T).reshape(n, S, K).argmax(axis=2)  # (n, S)
    # each row's cluster named by the first row in it: the same for any numbering
    member = labels.T[:, :, None] == np.arange(K)  # (S, n, K)
    first = np.where(member.any(axis=1), member.argmax(axis=1), n)  # (S, K)
    named = np.ascontiguousarray(np.take_along_axis(first, labels.T, axis=1))  # (S, n)
    return [named[s].tobytes() for s in range(S)]


def _squarem_pruned(step, batch, gain, max_steps, project, keep=1, chunk=None,
                    horizon=None, twins=None):
    """:func:`gaussmix.em.run_squarem` in runs of ``_PRUNE_CHUNK`` EM steps; between runs, a
    mixture that cannot catch up with the best of its covariance type stops. Each run
    continues where the last one stopped (``first=``: the EM step it stopped on is not
    taken again). ``gain``: the stopping gain of each mixture (S,).

    "Cannot catch up": its log-likelihood plus ``_PRUNE_HORIZON`` times its last cycle's
    gain (EM's gains shrink geometrically; this assumes a ratio of at most
    ``1 - 1 / _PRUNE_HORIZON``) is below the ``keep``-th best log-likelihood of its type.
    The caller keeps only the best ``keep`` of each type, so this only shortens the runs
    of losers. ``horizon`` replaces ``_PRUNE_HORIZON``.

    With ``twins`` (the rows, :class:`gaussmix._batch.Rows`), a mixture whose MAP partition
    of the rows is that of a better one of its type also stops (and of starts with the
    same MAP partition, only the first in the batch runs): two runs that assign every row
    alike are climbing to the same maximum (measured on the screens of Old Faithful's and
    iris's 14-model grids, after 6 steps: one pair in about 2,500 reached maxima more
    than 0.01 apart), and the caller wants distinct maxima among the ``keep`` it polishes.
    """
    chunk = _PRUNE_CHUNK if chunk is None else chunk
    horizon = _PRUNE_HORIZON if horizon is None else horizon
    S = batch.size
    codes = batch.types
    result = batch.copy()
    ll = np.full(S, -np.inf)
    n_iter = np.zeros(S, dtype=np.int64)
    failed = np.zeros(S, dtype=bool)
    history: list[list[float]] = [[] for _ in range(S)]
    active = np.arange(S)
    current = batch
    if twins is not None:  # starts of one type with one MAP partition: the first runs
        keys = _map_keys(twins, batch)
        first = {}
        for s in range(S):
            first.setdefault((codes[s], keys[s]), s)
        active = np.array(sorted(first.values()), dtype=np.int64)
        current = batch.take(active)
    resume = None  # (one step of the runs that go on, from where the last chunk left them)
    while active.size:
        budget = min(chunk, max_steps - int(n_iter[active].max()))
        out = run_squarem(step, current, gain=gain[active], max_steps=budget,
                          project=project, first=resume)
        result = result.put(active, out.batch)
        ll[active] = out.log_likelihood
        n_iter[active] += out.n_iter
        failed[active] |= out.failed
        for j, s in enumerate(active):
            history[s].extend(out.history[j])
        done = out.failed | (out.n_iter < budget) | (n_iter[active] >= max_steps)
        if twins is not None and not done.all():
            running = np.flatnonzero(~done)
            keys = dict(zip(running.tolist(), _map_keys(twins, out.batch.take(running)),
                            strict=True))
            seen = set()
            for j in sorted(running.tolist(), key=lambda j: -ll[active[j]]):
                key = (codes[active[j]], keys[j])
                if key in seen:
                    done[j] = True
                seen.add(key)
        # the keep-th best log-likelihood of each type (-inf: too few rivals to stop any)
        bar = {}
        for code in np.unique(codes[active]).tolist():
            rivals = np.sort(ll[(codes == code) & ~failed])[::-1]
            bar[code] = rivals[keep - 1] if rivals.size > keep else -np.inf
        for j, s in enumerate(active.tolist()):
            if done[j]:
                continue
            h = history[s]
            last_gain = h[-1] - h[-2] if len(h) >= 2 else np.inf
            if ll[s] + horizon * last_gain < bar[codes[s]]:
                done[j] = True
        active = active[~done]
        current = out.batch.take(~done)
        # (the ones that go on stopped at the step budget: out.stepped holds their step)
        resume = (out.stepped.take(~done), out.log_likelihood[~done],
                  np.zeros(active.size, dtype=bool)) if active.size else None
    from .em import AcceleratedResult

    return AcceleratedResult(result, ll, n_iter, failed, history)


_PRUNE_CHUNK = 12  # EM steps (4 SQUAREM cycles) between two looks at the polish
_PRUNE_HORIZON = 10.0


def _polish(step, rows_check, cands, errors, max_steps=_POLISH_MAX_ITER, relative=None,
            other_rows=False, keep=1, chunk=None, horizon=None, twins=None):
    """Run the race winners on (SQUAREM, together) until a cycle gains less than the polish gain.

    The gain is ``_POLISH_GAIN`` in total log-likelihood, or ``_POLISH_RELATIVE`` of it on
    large data (of the largest of each type's candidates: a type's polish does not depend
    on which other types share its batch). A winner whose polish failed or degenerated
    keeps its race result, except with ``other_rows`` (the final polish on all the rows of
    a fit raced on a sample): its race result is a log-likelihood of the sample, not of
    these rows, so a failed winner is dropped (None) and a degenerate one is kept as
    polished (never selected).
    Returns the candidates in the same order.
    """
    batch = Batch.stack([c.batch for c in cands])
    try:
        relative = _POLISH_RELATIVE if relative is None else relative
        values = np.abs([c.log_likelihood for c in cands])
        values[~np.isfinite(values)] = 0.0
        gain = np.empty(len(cands))
        for code in np.unique(batch.types).tolist():
            of = batch.types == code
            gain[of] = max(_POLISH_GAIN, relative * values[of].max())
        if other_rows:
            out = run_squarem(step, batch, gain=gain, max_steps=max_steps,
                              project=rows_check.project)
        else:
            out = _squarem_pruned(step, batch, gain, max_steps, rows_check.project, keep, chunk,
                                  horizon, twins)
    except Exception as exc:  # keep the race winners
        errors.setdefault("all", []).append(f"{type(exc).__name__}: {exc}")
        return [None] * len(cands) if other_rows else cands
    # (a degenerate result is dropped for the candidate it came from, except with
    # other_rows: only then are its words ever reported)
    verdicts = rows_check.degeneracy(out.batch, defer=not other_rows)
    result = []
    for s, cand in enumerate(cands):
        if out.failed[s]:  # SQUAREM never lowers the log-likelihood; it can only fail
            errors.setdefault(int(batch.types[s]), []).append(_INVALID)
            result.append(None if other_rows else _as_started(cand, out, s))
            continue
        new = _Candidate(out.batch.take([s]), out.log_likelihood[s], verdicts[s],
                         cand.n_iter + int(out.n_iter[s]),
                         converged=bool(out.n_iter[s] < max_steps))
        if out.history and out.history[s]:
            new.bounds = out.history[s]
        result.append(_as_started(cand, out, s) if new.verdict() is not None
                      and not other_rows else new)
    return result


def _as_started(cand, out, s):
    """``cand`` kept as it came to a run ``out`` (whose result failed or degenerated), with
    the log-likelihood of its own parameters when the run's first step computed it: a
    race finalist's value was the one of the parameters its last race step started from."""
    if out.history and out.history[s]:
        cand.log_likelihood = out.history[s][0]
        cand.bounds = [cand.log_likelihood]
    return cand


class _Engine:
    """The data as the race and the polish see them, for a group of covariance types.

    The starts and the race use ``rows``: every row when the data are small, else a fixed
    random subset of ``_RACE_MAX_SAMPLES`` rows; the screen of many finalists uses
    ``screen_rows``, every k-th of those, at most about ``_SCREEN_MAX_SAMPLES``. The
    winners are polished on ``rows``, then on all the rows (``full_step``) unless they
    were all the rows: in memory up to ``_LEAN_MAX_SAMPLES`` rows, beyond through the
    in-memory data source's ``statistics(params)`` (any data source's would do). With
    ``source`` (a data source not in memory: a Dask array's), ``X`` is a sample of its
    rows, and the final polish runs on the source (:func:`source_step`). ``pool``: threads
    for the E-steps of the rows in memory (:class:`~gaussmix._batch.Rows`), or None.
    """

    def __init__(self, X, w, sample, types, reg_covar, source=None, pool=None):
        features = features_for(types)
        Xs = X if sample is None else X[sample]
        ws = None if w is None else (w if sample is None else w[sample])
        self.rows = Rows(Xs, ws, reg_covar, features, pool)
        self.n_eff = self.rows.weight_sum
        # the screen's rows (every k-th of the race's): only mclust's ten other models
        # have more finalists than the polish takes
        self.screen_rows = self.rows
        screened = any(TYPES.index(t) > FULL for t in types)
        if screened and Xs.shape[0] > _SCREEN_MAX_SAMPLES:
            every = slice(None, None, -(-Xs.shape[0] // _SCREEN_MAX_SAMPLES))
            self.screen_rows = Rows(Xs[every], None if ws is None else ws[every], reg_covar,
                                    features, pool)
        self.full = None
        self.full_step = None
        self.all_rows = None  # every row as features, when they fit in memory
        if source is not None:  # X is a sample of the rows of source (a Dask array)
            self.full = Rows(Xs, ws, reg_covar, features)  # for the degeneracy checks
            self.full.weight_sum = source.weight_sum
            self.full_step = source_step(source, reg_covar)
            return
        if sample is None:
            self.all_rows = self.rows
            return
        if X.shape[0] <= _LEAN_MAX_SAMPLES:
            self.full = self.all_rows = Rows(X, w, reg_covar, features, pool)
            self.full_step = self.full.step
        else:
            from ._backends import ArrayData

            self.full = Rows(Xs, ws, reg_covar, features)  # for the degeneracy checks
            self.full.weight_sum = float(X.shape[0] if w is None else w.sum())
            self.full_step = statistics_step(ArrayData(X, w).statistics, reg_covar)


def _fit_components(engine, K, types, starts, entropy, race_tol, exchange=None):
    """Best regular fit of every type in ``types`` with K components.

    ``exchange``: when the grid's types are dealt among processes in step, a callable that
    takes this process's donors (``{type code: best race finalist}``) and finalist counts
    (``{type code: number}``) and returns those of every type of the grid
    (:func:`_fit_dealt`); None when ``types`` are the whole grid.
    Returns ``{type: (candidate or None, errors)}``; a degenerate candidate when every
    start of a type degenerated (also after ``_EXTRA_STARTS`` random restarts).
    """
    rows = engine.rows
    errors: dict = {}
    degenerate: dict = {}
    winners = {} if starts is None else _run_race(rows, starts, engine.n_eff, race_tol,
                                                  degenerate, errors)
    w = np.ones(rows.Q.shape[0]) if rows.w is None else rows.w
    for t in types:
        code = TYPES.index(t)
        tries = 0
        rng = None  # (made when needed: seeded by K and the type only)
        while code not in winners and tries < _EXTRA_STARTS:
            # every start failed or degenerated: random restarts
            if rng is None:
                rng = np.random.default_rng(np.random.SeedSequence(entropy,
                                                                   spawn_key=(K, code + 1)))
            Ystd = _standardise(rows.X, w)
            labels = [_voronoi(Ystd, w, K, rng) for _ in range(2)]
            tries += 2
            extra = _starts_of_partitions(rows, labels, K, [t])
            if extra is not None:
                winners.update(_run_race(rows, extra, engine.n_eff, race_tol, degenerate,
                                         errors))
    donors = {code: cands[0] for code, cands in winners.items() if cands}
    counts = {code: len(cands) for code, cands in winners.items()}
    if exchange is not None:  # (every type of the grid's, from every process)
        donors, counts = exchange(donors, counts)
    _add_cross_finalists(winners, donors)
    codes = sorted(winners)
    if codes:
        step = lambda b: _step_each(rows, b, errors)  # noqa: E731
        if _screened(counts, donors):
            # Many finalists (mclust's other models): a short accelerated run of all of
            # them, then the best _FINALISTS of each type are polished to the end.
            few = engine.screen_rows
            screened = iter(_polish(lambda b: _step_each(few, b, errors), few,
                                    [c for code in codes for c in winners[code]],
                                    errors, max_steps=_SCREEN_STEPS, keep=_SCREEN_KEEP,
                                    chunk=_SCREEN_CHUNK, horizon=_SCREEN_HORIZON,
                                    twins=few if _SCREEN_TWINS else None))
            for code in codes:
                group = [next(screened) for _ in winners[code]]
                value = [g.log_likelihood for g in group]
                if few is not rows:  # a start the screen returned as it was (failed or
                    # degenerate there) has a value of other rows: it ranks last
                    value = [-np.inf if g is c else v
                             for g, c, v in zip(group, winners[code], value, strict=True)]
                order = sorted(range(len(group)), key=lambda i: -value[i])
                winners[code] = [group[i] for i in sorted(order[:_SCREEN_KEEP])]
            if few is not rows:  # the polish compares them with values of its own rows
                _rescore(rows, [cand for c in codes for cand in winners[c]])
        finalists = [cand for c in codes for cand in winners[c]]
        polished = _polish(step, rows, finalists, errors)
        if engine.full_step is not None and engine.all_rows is not None:
            # The race's rows are a sample: its finalists are ranked by their value on all
            # the rows (one E-step), where the sample can rank two maxima the other way.
            _rescore(engine.all_rows, polished)
        polished = iter(polished)
        # the best polished finalist of each type (the first of equals: the better ranked)
        polished = [max([next(polished) for _ in winners[code]],
                        key=lambda cand: cand.log_likelihood) for code in codes]
        if engine.full_step is not None:
            full_step = lambda b: _split_on_error(engine.full_step, b, errors)  # noqa: E731
            polished = _polish(full_step, engine.full, polished, errors,
                               max_steps=_FULL_POLISH_MAX_ITER, relative=_FULL_POLISH_RELATIVE,
                               other_rows=True)
        winners = {c: p for c, p in zip(codes, polished, strict=True) if p is not None}
    if winners and engine.all_rows is not None:  # the ICL's term, by the lean path
        rows_all = engine.all_rows
        found = list(winners.values())
        for cand, resp in zip(found, rows_all.responsibilities_each(
                Batch.stack([c.batch for c in found])), strict=True):
            cand.entropy = map_entropy(resp, rows_all.w)
    out = {}
    for t in types:
        code = TYPES.index(t)
        errs = errors.get(code, []) + errors.get("all", [])
        if code in winners:
            out[t] = (winners[code], errs)
        elif degenerate.get(code) and engine.full_step is None:
            best = max(degenerate[code], key=lambda c: c.log_likelihood)
            if best.reason is DEFERRED:  # (the race asked only whether)
                best.reason = rows.degeneracy(best.batch)[0]
            out[t] = (best, errs)
        elif degenerate.get(code):  # degenerate on the race's sample: no likelihood of all rows
            out[t] = (None, [*errs, "every start degenerated on the race's sample of rows"])
        else:
            out[t] = (None, errs)
    return out


def _rescore(rows, cands):
    """Set each candidate's log-likelihood (and polish trace) to its value on ``rows``
    (one E-step for all of them): after a screen on other rows."""
    if not cands:
        return
    _, ll, _ = rows.e_step(Batch.stack([c.batch for c in cands]))
    for cand, value in zip(cands, ll.tolist(), strict=True):
        cand.log_likelihood = value
        cand.bounds = [value]


def _screened(counts, donors) -> bool:
    """Whether the finalists of a K go through the screen: when a type of the grid has
    more than ``_FINALISTS``, its cross finalists included (:func:`_add_cross_finalists`
    gives each of mclust's other models every other donor). ``counts``: the number of race
    finalists of every type of the grid, ``donors`` its donors (both from every process
    of a dealt grid, so that all decide alike)."""
    crossing = _crossing(donors)
    return any(n + (len(donors) - (code in donors) if crossing and code > FULL else 0)
               > _FINALISTS for code, n in counts.items())


def _crossing(donors) -> bool:
    """Whether mclust's other models take cross finalists from ``donors``: two donors at
    least, and more than one component (one component has a unique maximum, which its one
    start reaches)."""
    return len(donors) >= 2 and next(iter(donors.values())).n_components > 1


def _add_cross_finalists(winners, donors):
    """Add to each of mclust's ten other models in ``winners`` the best race finalist of
    every other type (``donors``: ``{type code: candidate}``, of every type of the grid),
    projected onto it (``from_full``: same weights and means), as one more finalist (not
    with one component: its maximum is unique, and its one start reaches it). The donors
    come in the order of their codes, wherever their races ran.

    These models share a piece (volume, shape or orientation) with several others, whose
    fits are often near their maximum (mclust starts every model from one partition).
    """
    if not _crossing(donors):
        return
    for code in [c for c in winners if c > FULL]:
        given = [donors[other] for other in sorted(donors) if other != code]
        weights = np.concatenate([d.batch.weights for d in given])
        means = np.concatenate([d.batch.means for d in given])
        full = np.concatenate([d.batch.covariances for d in given])
        if families.get(TYPES[code]).iterative:  # all the donors at once (the same projection)
            cov = project_covariances(TYPES[code], full)
        else:
            cov = np.stack([_reduce_to_type(c, wt, code) for c, wt in zip(full, weights,
                                                                             strict=True)])
        for i, d in enumerate(given):
            start = Batch(np.array([code]), weights[i:i + 1], means[i:i + 1], cov[i:i + 1])
            winners[code].append(_Candidate(start, -np.inf, None, d.n_iter))


def _partitions_for(spaces, weights, K, hc_labels, n_init, entropy, distinct=None):
    """Hard partitions into K clusters shared by every covariance type (seeded by K only).

    The randomised ones cycle through the views of the data in ``spaces`` (``_SPACES``
    applied to it): raw (what the spherical model sees), standardised, and sphered (what
    the full model sees). ``distinct``: :func:`_distinct_rows` of each view, or None.
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
        labels = _voronoi(spaces[i % len(spaces)], weights, K, rng,
                          None if distinct is None else distinct[i % len(spaces)])
        partitions.setdefault(_canonical(labels), labels)
    return list(partitions.values())


def _race_sample(n_samples, w, entropy):
    """Rows of the race (None: all of them), a fixed random subset of large data."""
    if n_samples <= _RACE_MAX_SAMPLES:
        return None
    rng = np.random.default_rng(np.random.SeedSequence(entropy, spawn_key=(0, 1)))
    positive = np.arange(n_samples) if w is None else np.flatnonzero(w > 0)
    if positive.size <= _RACE_MAX_SAMPLES:
        return positive
    return np.sort(rng.choice(positive, size=_RACE_MAX_SAMPLES, replace=False))


@contextmanager
def _one_blas_thread():
    """The BLAS limited to one thread (with threadpoolctl, when installed).

    The engine's products are small (a few MFLOP): a multi-threaded BLAS spends more time
    waking and synchronising its threads than computing, and on a busy machine it is ten
    times slower than one thread (measured: (2000 x 21) @ (21 x 72) 8.6 ms with 2 threads
    under load, 0.5 ms with one).
    """
    limit = one_blas_thread()
    if limit is None:
        yield False
        return
    with limit:
        yield True


@contextmanager
def _row_threads(n_rows: int, wanted: bool):
    """A pool of one thread per core for the E-steps of many rows (:class:`Rows`'s
    ``pool``), or None: on small data (every E-step one block of rows), without the BLAS
    held to one thread, or in one of several processes (``wanted`` False)."""
    cores = available_cores()
    if not wanted or cores < 2 or n_rows < _THREADS_MIN_ROWS:
        yield None
        return
    with ThreadPoolExecutor(cores) as pool:
        yield pool


def _fit_chain(X, w, ks, covariance_types, params, hc, n_init, entropy, on_done=None,
               source=None, threads=True, exchange=None):
    """Fit the grid ``ks x covariance_types``, in increasing K (a task of ``n_jobs``).

    Returns ``{(covariance_type, K): (candidate or None, errors)}``. Every grid point starts
    from the shared partitions of its K and from splits of the fit with K - 1 components of
    the same type (when that K - 1 is in the grid), so the result of a grid point does not
    depend on how the grid is divided among processes. ``source``: the data source of
    which ``X`` is a sample (see :class:`_Engine`), or None. ``threads``: whether the
    E-steps may spread their blocks of rows over the cores (:func:`_row_threads`; not in
    one of several processes). ``exchange``: for a chain that runs one share of a grid
    dealt among processes in step, the callable through which the donors of every K pass
    (:func:`_fit_components`, :func:`_fit_dealt`).
    """
    with _one_blas_thread() as limited, _row_threads(X.shape[0], threads and limited) as pool:
        return _fit_chain_body(X, w, ks, covariance_types, params, hc, n_init, entropy, on_done,
                               source, pool, exchange)


# The share of the time of a 14-model selection that each type takes, roughly (each type's
# grid alone on Old Faithful and iris, 2026-12-03: 40 to 55 ms for VVI, EEE and VVV, 110 to
# 140 for VEI, EVE and VVE), to deal the types of a grid among processes.
_TYPE_COST = {"spherical": 1.0, "diag": 1.0, "tied": 1.0, "full": 1.0, "EII": 2.0, "EEI": 2.0,
              "VEI": 2.5, "EVI": 2.0, "VEE": 2.0, "EVE": 2.5, "VVE": 2.5, "EEV": 1.7,
              "VEV": 2.0, "EVV": 1.5}


def _deal(covariance_types, workers) -> list[tuple[str, ...]]:
    """The types of a grid dealt into at most ``workers`` shares of about equal cost
    (:data:`_TYPE_COST`; the costliest first, each to the cheapest share so far), each
    share in grid order. When the grid has any of mclust's other models, every share
    holds one of them at least: a share of scikit-learn's types alone would skip the
    screen they take part in with those models (and so reach other fits)."""
    constrained = [t for t in covariance_types if TYPES.index(t) > FULL]
    n = max(1, min(workers, len(constrained) or len(covariance_types)))
    order = sorted(covariance_types, key=lambda t: (-_TYPE_COST[t], covariance_types.index(t)))
    shares: list[list[str]] = [[] for _ in range(n)]
    load = [0.0] * n
    for t in order:
        i = load.index(min(load))
        shares[i].append(t)
        load[i] += _TYPE_COST[t]
    return [tuple(t for t in covariance_types if t in share) for share in shares]


def _dealt_worker(conn, args, in_step):
    """One process's share of a dealt grid (:func:`_fit_dealt`): its chain, then
    ``("done", results)``, or ``("error", (exception, traceback text))``. ``in_step``: at
    every K it sends its donors and finalist counts and the grid points it has finished
    through ``conn``, and receives every type's donors and counts. It ends when the
    process that started it does (waiting on that process, not only on the pipe, whose
    other end other forked processes may hold too)."""
    import multiprocessing
    import traceback
    from multiprocessing.connection import wait

    parent = multiprocessing.parent_process()
    finished = {}
    try:
        def exchange(donors, counts):
            conn.send(("donors", (donors, counts), dict(finished)))
            finished.clear()
            if parent is not None and conn not in wait([conn, parent.sentinel]):
                raise SystemExit(1)  # the parent is gone: nothing to fit for
            return conn.recv()

        _fit_chain(*args, on_done=finished.__setitem__, threads=False,
                   exchange=exchange if in_step else None)
        conn.send(("done", dict(finished), None))
    except BaseException as exc:  # (reported to the parent, which raises it)
        text = traceback.format_exc()
        for error in (exc, RuntimeError(f"{type(exc).__name__}: {exc}")):
            try:  # (the exception itself, else its words: it may not pickle)
                conn.send(("error", (error, text), None))
                break
            except Exception:  # not picklable, or the parent is gone
                continue
    finally:
        conn.close()


class _RemoteTraceback(Exception):
    """A worker process's traceback, as the cause of the exception it raised."""

    def __str__(self):
        return self.args[0]


def _dealt_context():
    """The multiprocessing context of a dealt grid's processes: the platform's default
    start method (a hook for tests)."""
    import multiprocessing

    return multiprocessing.get_context()


def _fit_dealt(X, w, ks, shares, params, hc, n_init, entropy, collect):
    """Fit a grid in ``len(shares)`` processes, one share of its types each (:func:`_deal`):
    this process runs the first share and starts one process for each of the others.

    With mclust's other models in the grid the chains run in step: at every K, each sends
    the best race finalist and the number of finalists of each of its types, and every
    chain receives those of all the types, from which its constrained models take their
    cross finalists (:func:`_add_cross_finalists`) and every chain decides on the screen
    (:func:`_screened`) as one process would. Without them the chains are independent.
    ``collect(results)`` gets the grid points as the chains finish them. On an error here
    or in a worker, every worker is stopped and the error raised here (a worker's with
    its traceback as the cause).
    """
    context = _dealt_context()
    in_step = any(TYPES.index(t) > FULL for share in shares for t in share)
    args = (X, w, ks)
    links = []
    ended = False
    try:
        for share in shares[1:]:
            mine, theirs = context.Pipe()
            links.append((mine, None))
            process = context.Process(target=_dealt_worker, daemon=True, args=(
                theirs, (*args, share, params, hc, n_init, entropy), in_step))
            try:
                process.start()
            finally:
                theirs.close()
            links[-1] = (mine, process)

        def lost(process):
            process.join(timeout=1.0)
            return RuntimeError(
                f"a worker process of select_model ended without its results (exit code "
                f"{process.exitcode}); run with n_jobs=None to fit in this process")

        def receive(conn, process, expected):
            try:
                kind, value, finished = conn.recv()
            except EOFError:
                raise lost(process) from None
            except Exception as exc:  # (a message that does not unpickle here)
                raise RuntimeError(f"could not read a message of a worker process of "
                                   f"select_model: {type(exc).__name__}: {exc}") from exc
            if kind == "error":
                error, text = value
                error.__cause__ = _RemoteTraceback(text)
                raise error
            if kind != expected:
                raise RuntimeError(f"a worker process of select_model sent {kind!r}, "
                                   f"expected {expected!r}")
            if finished:
                collect(finished)
            return value

        def exchange(donors, counts):
            donors, counts = dict(donors), dict(counts)
            for conn, process in links:
                theirs, their_counts = receive(conn, process, "donors")
                donors.update(theirs)
                counts.update(their_counts)
            merged = dict(sorted(donors.items())), dict(sorted(counts.items()))
            for conn, process in links:
                try:
                    conn.send(merged)
                except OSError:  # (a broken pipe: the worker is gone)
                    raise lost(process) from None
            return merged

        _fit_chain(*args, shares[0], params, hc, n_init, entropy,
                   on_done=lambda key, value: collect({key: value}), threads=False,
                   exchange=exchange if in_step else None)
        for conn, process in links:
            collect(receive(conn, process, "done"))
        ended = True
    finally:
        for conn, _ in links:
            conn.close()
        for _, process in links:
            if process is None:
                continue
            if not ended:  # (an error: no worker's results are wanted any more)
                process.terminate()
            process.join()


def _type_groups(covariance_types, n_features):
    """Types that share one feature set: all of them while the full features are few."""
    if n_features <= _SHARED_FEATURES_MAX_D:
        return [tuple(covariance_types)]
    return [(t,) for t in covariance_types]


def _fit_chain_body(X, w, ks, covariance_types, params, hc, n_init, entropy, on_done,
                    source=None, pool=None, exchange=None):
    reg_covar = params.get("reg_covar", 1e-6)
    race_tol = min(params.get("tol", 1e-3), _RACE_TOL)
    sample = _race_sample(X.shape[0], w, entropy)
    Xs = X if sample is None else X[sample]
    ws = None if w is None else (w if sample is None else w[sample])
    weights = np.ones(Xs.shape[0]) if ws is None else ws
    spaces = [transform(Xs, weights) for transform in _SPACES]
    distinct = [_distinct_rows(Y, weights) for Y in spaces[:n_init]]  # (the views drawn from)
    groups = [(g, _Engine(X, w, sample, g, reg_covar, source, pool))
              for g in _type_groups(covariance_types, X.shape[1])]
    # (a chain in step with others exchanges once per K: its types are one group)
    assert exchange is None or len(groups) == 1, "a dealt grid's chain steps its types together"
    results = {}
    for K in ks:
        label_sets = _partitions_for(spaces, weights, K, hc.get(K, []), n_init, entropy,
                                     distinct)
        for types, engine in groups:
            parts = []
            base = _starts_of_partitions(engine.rows, label_sets, K, types)
            if base is not None:
                parts.append(base)
            data_cov = data_covariance(engine.rows.X, engine.rows.w) if K == 2 else None
            for t in types:
                previous = results.get((t, K - 1), (None, None))[0]
                if _N_SPLITS and previous is not None and previous.reason is None:
                    parts.append(_splits(previous.batch, 0, _N_SPLITS, data_cov))
            starts = Batch.stack(parts) if parts else None
            fitted = _fit_components(engine, K, types, starts, entropy, race_tol, exchange)
            for t in types:
                results[(t, K)] = fitted[t]
        for t in covariance_types:
            if on_done is not None:
                on_done((t, K), results[(t, K)])
    return results


def robust_parameters(X, sample_weight, n_components, covariance_type, reg_covar=1e-6,
                      random_state=None, tol=1e-3) -> MixtureParameters:
    """The start :func:`select_model` would fit for one ``(n_components, covariance_type)``.

    The chain K = 1 .. n_components of that covariance type, as in :func:`select_model`
    with ``n_init=1``: shared hierarchical, k-means and random partitions, splits of the
    fit with one component fewer, the race and the polish. One of mclust's ten other
    models runs its chain alongside scikit-learn's four, whose race finalists it also
    starts from (as in a grid of the five). Used by
    ``GaussianMixture(init_params="robust")``.

    Returns
    -------
    MixtureParameters
        float64 parameters of the best regular fit (or the best degenerate one when every
        start degenerated).
    """
    X = np.ascontiguousarray(X, dtype=np.float64)
    w = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    family = families.get(covariance_type)
    covariance_type = family.name
    # mclust's other models race alongside scikit-learn's four, whose fits they also start
    # from (as in select_model's grid).
    chain = (covariance_type,) if covariance_type in _SKLEARN_TYPES else (
        *_SKLEARN_TYPES, covariance_type)
    entropy = _entropy_from(random_state)
    ks = list(range(1, n_components + 1))
    hc = _hierarchical_partitions(X, w, ks, entropy)
    out = _fit_chain(X, w, ks, chain, {"reg_covar": reg_covar, "tol": tol}, hc, 1, entropy)
    best, errors = out[(covariance_type, n_components)]
    if best is None:
        raise ValueError(
            f"init_params='robust' found no start for {n_components} {covariance_type} "
            f"components: {'; '.join(dict.fromkeys(errors))}"
        )
    batch = best.batch
    if best.reason is None:
        # One model only: polish it tightly (the grid stops at a gain of _POLISH_GAIN).
        if X.shape[0] <= _LEAN_MAX_SAMPLES:
            step = Rows(X, w, reg_covar, features_for([covariance_type])).step
        else:
            from ._backends import ArrayData

            step = statistics_step(ArrayData(X, w).statistics, reg_covar)
        with _one_blas_thread():
            tight = run_squarem(step, batch, gain=_ROBUST_GAIN, max_steps=_POLISH_MAX_ITER,
                                project=project_batch)
        if not tight.failed[0]:
            batch = tight.batch
    return batch.member(0)


def _hierarchical_partitions(X, w, ks, entropy):
    """Ward tree cuts for every K in the three views of the (race sample of the) data."""
    rng = np.random.default_rng(np.random.SeedSequence(entropy, spawn_key=(0,)))
    sample = _race_sample(X.shape[0], w, entropy)
    Xs = X if sample is None else X[sample]
    weights = np.ones(Xs.shape[0]) if w is None else (w if sample is None else w[sample])
    hc: dict[int, list[np.ndarray]] = {}
    for cuts in _hc_partitions([transform(Xs, weights) for transform in _SPACES], weights, ks,
                               rng):
        for K, labels in cuts.items():
            hc.setdefault(K, []).append(labels)
    return hc


# --------------------------------------------------------------------------- data sources


class _Summed(tuple):
    """A tuple added element by element (``map_reduce`` sums the blocks' results with +)."""

    __slots__ = ()

    def __add__(self, other):
        return _Summed(a + b for a, b in zip(self, other, strict=True))


def _block_statistics_of(X, w, members, block_size):
    """Statistics of every mixture of ``members`` on one block of rows."""
    from .stats import block_statistics

    X = np.asarray(X, dtype=np.float64)
    return _Summed(block_statistics(X, p, w, block_size=block_size) for p in members)


def source_step(source, reg_covar):
    """An EM step of a batch of mixtures on every row of a data source: one pass.

    As :func:`gaussmix.em.statistics_step`, but the statistics of all the mixtures of the
    batch come from one ``source.map_reduce`` (on Dask: one graph and one compute per EM
    step, whatever the number of mixtures).
    """

    def step(batch):
        members, index = [], []
        for s in range(batch.size):
            try:
                members.append(batch.member(s))
                index.append(s)
            except (ValueError, np.linalg.LinAlgError):
                pass  # no valid parameters: marked failed below
        summed = [None] * batch.size
        if members:
            reduced = source.map_reduce(_block_statistics_of, members, source.block_size,
                                        name="estep")
            for s, stats in zip(index, reduced, strict=True):
                summed[s] = stats
        return m_step_each(batch, summed, reg_covar)

    return step


def _block_scores(X, w, members, block_size):
    """``(S, 2)``: every mixture's log-likelihood and MAP entropy on one block of rows."""
    from .stats import _for_each_block

    X = np.asarray(X, dtype=np.float64)
    w = None if w is None else np.asarray(w, dtype=np.float64)
    out = np.zeros((len(members), 2))
    for s, params in enumerate(members):

        def write(estep, rows, log_prob, s=s):
            resp, log_norm = estep.normalize(log_prob)[:2]
            with np.errstate(divide="ignore"):
                log_map = np.log(np.max(resp, axis=0))
            ws = None if w is None else w[rows]
            out[s, 0] += log_norm.sum() if ws is None else log_norm @ ws
            out[s, 1] -= log_map.sum() if ws is None else log_map @ ws

        _for_each_block(X, params, block_size, None, write)
    return out


def _score_on_source(source, candidates):
    """Log-likelihood and MAP entropy of every candidate on all the rows: one pass."""
    if not candidates:
        return
    members = [c.batch.member(0) for c in candidates]
    scores = source.map_reduce(_block_scores, members, source.block_size, name="score")
    for cand, (log_likelihood, entropy) in zip(candidates, scores, strict=True):
        cand.log_likelihood = float(log_likelihood)
        cand.entropy = float(entropy)


def _dask_sample(source, entropy):
    """The rows starts and race run on: all of them (in memory) when there are at most
    ``_RACE_MAX_SAMPLES``, else that many drawn uniformly (``source.sample_rows``, seeded
    by the entropy), without those of zero weight. Returns ``(X, w, all_rows)``."""
    seed = int(np.random.default_rng(np.random.SeedSequence(entropy, spawn_key=(0, 2)))
               .integers(2**31 - 1))
    Xs, ws = source.sample_rows(_RACE_MAX_SAMPLES, seed)
    Xs = np.ascontiguousarray(Xs, dtype=np.float64)
    ws = None if ws is None else np.asarray(ws, dtype=np.float64)
    if Xs.shape[0] == source.n_samples:
        return Xs, ws, True
    if ws is not None:
        keep = ws > 0
        Xs, ws = Xs[keep], ws[keep]
    return Xs, ws, False


# --------------------------------------------------------------------------- result


def _estimator(cand, params, X, w, n_eff, feature_names, seed):
    """A fitted GaussianMixture holding a candidate's parameters (no EM is run)."""
    GaussianMixture = _gaussian_mixture_class()
    mp = cand.batch.member(0)
    K = mp.n_components
    model = GaussianMixture(n_components=K, covariance_type=mp.covariance_type,
                            init_params="robust", random_state=seed, **params)
    model._set_parameters(mp)
    model._fitted_covariance_type = mp.covariance_type
    model.converged_ = bool(cand.converged)
    model.n_iter_ = int(cand.n_iter)
    model.lower_bound_ = cand.log_likelihood / n_eff
    # The polish's trace (one value per SQUAREM cycle of three EM steps), per sample.
    model.lower_bounds_ = [b / n_eff for b in cand.bounds]
    model._history_per_cycle = True  # for plot_loglik's axis
    model.n_features_in_ = X.shape[1]
    model.degenerate_ = cand.reason is not None
    model.degenerate_reason_ = cand.reason
    if feature_names is not None:  # as if fitted on the DataFrame itself
        model.feature_names_in_ = feature_names
    return model


def _criteria(model, X, w, cand, n_eff):
    """The row's criteria; the MAP entropy from the engine, else from ``predict_proba``."""
    n_parameters = int(model._n_parameters())
    out = information_criteria(cand.log_likelihood, n_parameters, n_eff)
    entropy = cand.entropy
    if entropy is None:
        entropy = map_entropy(model.predict_proba(X), w)
    out["icl"] = out["bic"] + 2.0 * entropy
    return {"n_parameters": n_parameters, **out}


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
        ``converged`` says whether the last polish stopped by its gain rule (a SQUAREM
        cycle gaining less than 0.01 in log-likelihood or 1e-7 of it, whichever is larger;
        on data larger than the race's sample of 2,000 rows, 1e-6 of it on all the rows)
        rather than at its cap of EM steps (30 on all the rows of such data: a slow fit,
        stopped there, can be some units of log-likelihood below its maximum).
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


def _checked_arguments(n_components, covariance_types, criterion, n_init, params, progress,
                       n_samples):
    """``(ks, types)``: select_model's arguments checked (also for data with NaN, in
    :mod:`gaussmix._missing_select`): the sorted numbers of components and the families."""
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

    types = covariance_types_of(covariance_types)
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
    return ks, types


def covariance_types_of(covariance_types) -> list[str]:
    """The families a ``covariance_types`` argument names, in order, without repeats.

    A preset name (``"all"`` or ``"mclust"``: mclust's 14 models; ``"sklearn"``:
    scikit-learn's four), one family name, or an iterable of family names and presets, in
    scikit-learn's names or mclust's (``"EEE"`` is ``"tied"``). Results use scikit-learn's
    names for its four types and mclust's for the others.
    """
    if isinstance(covariance_types, str):
        covariance_types = [covariance_types]
    try:
        given = list(covariance_types)
    except TypeError:
        raise TypeError(
            "covariance_types must be a name, a preset ('all', 'mclust', 'sklearn') or an "
            f"iterable of names, got {type(covariance_types).__name__}."
        ) from None
    types = []
    for t in given:
        if isinstance(t, str) and t.lower() in PRESETS:
            types.extend(PRESETS[t.lower()])
            continue
        try:
            types.append(families.get(t, what="each of covariance_types").name)
        except ValueError as exc:
            raise ValueError(
                f"{exc} Presets: 'all' (= 'mclust', the 14 models), 'sklearn' "
                f"{_SKLEARN_TYPES}."
            ) from None
    types = list(dict.fromkeys(types))
    if not types:
        raise ValueError(
            "covariance_types is empty; give some of "
            f"{_COVARIANCE_TYPES} or a preset ('all', 'sklearn')."
        )
    return types


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
    prior=None,
    **params,
) -> SelectionResult:
    """Fit Gaussian mixtures over a grid and select one by BIC, AIC or ICL.

    The grid is every pair of ``n_components`` and ``covariance_types`` (by default
    mclust's ``mclustBIC`` grid: its 14 models, G = 1..9). Each grid point is fitted
    from several starts shared across the grid, degenerate solutions are avoided, and the
    model with the lowest criterion among the regular fits is selected. See the module
    documentation for the criteria, the mclust correspondence and the fitting strategy.

    Parameters
    ----------
    X : array-like or dask.array.Array of shape (n_samples, n_features)
        The data (fitted in float64). With a DataFrame, the fitted models get
        ``feature_names_in_`` as if fitted on it. A dask array goes through the same
        code: when it has at most 2,000 rows they are computed and the result is the
        in-memory one; beyond, the starts, the race and the first polish run on 2,000
        rows drawn from it in memory (``sample_rows`` of its data source, seeded by
        ``random_state``), the final polish on all the rows on the cluster (one compute
        per EM step for all the covariance types of a K), and one more pass computes every
        grid point's log-likelihood and the ICL's entropy on all the rows. The fitted
        models hold NumPy arrays.
    n_components : int or iterable of int, default=range(1, 10)
        Numbers of components to try (mclust's ``G``).
    covariance_types : str or iterable of str, default: mclust's 14 models
        Covariance types to try, in scikit-learn's names or mclust's (``"EEE"`` is
        ``"tied"``), or presets: ``"all"`` / ``"mclust"`` (the 14 models, in mclust's
        order EII VII EEI VEI EVI VVI EEE VEE EVE VVE EEV VEV EVV VVV) and ``"sklearn"``
        (spherical, diag, tied, full). A list may mix names and presets.
    criterion : {"bic", "aic", "icl"}, default="bic"
        Criterion to rank by; lower is better.
    n_init : int, default=1
        Number of k-means++ (Lloyd) starts and of random Voronoi starts per number of
        components, in addition to the three hierarchical (Ward) starts and the splits of
        the fit with one component fewer. Shared by all covariance types. Raise it for
        data with many local maxima; the cost grows about linearly.
    random_state : int, numpy Generator or RandomState, default=None
        Seed of the randomised starts. The fits of scikit-learn's four types do not depend
        on ``n_jobs`` or on which of them are in the grid; in a grid with any of mclust's
        other models they run through the screen of those models' finalists before their
        polish, which can end them at another maximum (on Old Faithful 30 of the 36 fits
        agree within 0.01 in log-likelihood; the others are up to 5.8 higher with them).
        Those of mclust's other models also start from the other models of the grid.
    sample_weight : array-like or dask array of shape (n_samples,), default=None
        Non-negative weights (frequency weights: ``n`` in BIC is their sum).
    progress : callable, default=None
        Called as ``progress(i, n, covariance_type, n_components)`` after each of the
        ``n`` grid points is done (``i`` counts from 1).
    n_jobs : int, default=None
        Number of processes. None or 1 runs in this process; -1 one per CPU this process
        may use. Up to 8 features (where the types of a K step together), the grid's
        types are dealt into at most ``n_jobs`` shares of about equal cost (with mclust's
        other models in the grid, one of those in each share): this process runs the
        first, one process each of the others. With mclust's other models they run in
        step, exchanging at every K the race finalists those models also start from and
        the finalist counts that decide the screen. Beyond 8 features each type runs
        alone, one task per type in a pool of ``n_jobs`` processes. Either way the fits
        are those of one process up to rounding: a batch holding other mixtures can add
        the E-step's blocks of rows in another order (``benchmarks/jobs_agreement.py``
        compares the two grid point by grid point). Each process holds the data, and
        takes about as many batched EM steps as one process alone, with fewer mixtures
        in each: on a 2-core machine with the fork start method, mclust's 14 models ran
        1.33 to 1.61 times faster than in one process, scikit-learn's four 1.13 and 1.27
        times on 5,000 and 20,000 rows but slower on Old Faithful and iris (see the
        README's performance section; with the spawn or forkserver start methods each
        process also imports NumPy and gaussmix). Ignored for a dask array of more than
        2,000 rows (its passes run on the cluster) and for data with NaN.
    prior : None, "default" or dict, default=None
        mclust's conjugate prior (``GaussianMixture(prior=...)``): every grid point is
        refined by MAP EM from the maximum-likelihood fits, and the criteria use the
        log-likelihood at the posterior mode, as ``Mclust(X, prior = priorControl())``.
        The 14-model grid then means mclust's 10 models with a prior update (VEE, EVE,
        VVE and EVV have none; naming one of them is an error). Data in memory only. See
        :mod:`gaussmix._prior_select`.
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
    from ._backends import _is_dask_array, data_source
    from ._validation import (
        check_array,
        check_sample_weight,
        feature_names_of,
        warn_small_variances,
    )

    if prior is not None:  # ML selection, then MAP EM per grid point (_prior_select)
        from ._prior_select import select_with_prior

        return select_with_prior(select_model, X, n_components, covariance_types, criterion,
                                 prior, n_init=n_init, random_state=random_state,
                                 sample_weight=sample_weight, progress=progress,
                                 n_jobs=n_jobs, params=params)
    feature_names = feature_names_of(X)
    if np.ndim(X) != 2:
        raise ValueError(
            f"X must be a 2-dimensional array of shape (n_samples, n_features), got shape "
            f"{np.shape(X)}; reshape a single feature with X.reshape(-1, 1)."
        )
    from . import _missing_select

    if _missing_select.has_missing(X):  # NaN: exact EM on the observed values
        return _missing_select.select(X, n_components, covariance_types, criterion, n_init=n_init,
                                      random_state=random_state, sample_weight=sample_weight,
                                      progress=progress, n_jobs=n_jobs, **params)
    source = None  # the Dask array's data source, when its rows stay on the cluster
    n_total = None
    if _is_dask_array(X):
        source = data_source(X, sample_weight, params.get("block_size"))
        n_total = source.n_samples
        random_state = _entropy_from(random_state)
        X, sample_weight, in_memory = _dask_sample(source, random_state)
        if in_memory:  # every row is now in memory: the in-memory path throughout
            source = None
    X = np.ascontiguousarray(check_array(X), dtype=np.float64)
    n_samples, n_features = X.shape
    if n_total is not None:
        n_samples = n_total

    ks, types = _checked_arguments(n_components, covariance_types, criterion, n_init, params,
                                   progress, n_samples)

    w = check_sample_weight(sample_weight, X.shape[0])
    if w is not None and source is None and not np.all(w > 0):
        # Rows of zero weight add nothing to any likelihood or criterion; left in, they
        # would steer the starts (partitions, k-means, the race) toward other optima.
        X, w = X[w > 0], w[w > 0]
    weights = np.ones(X.shape[0]) if w is None else w
    n_eff = float(weights.sum()) if source is None else source.weight_sum
    warn_small_variances(X, w, params.get("reg_covar", 1e-6))

    entropy = _entropy_from(random_state)
    # Hierarchical partitions, computed once for every K.
    hc = _hierarchical_partitions(X, w, ks, entropy)

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
        workers = available_cores() if n_jobs == -1 else int(n_jobs)
        if workers < 1:
            raise ValueError(f"n_jobs must be a positive integer or -1, got {n_jobs!r}.")
    # Up to _SHARED_FEATURES_MAX_D features every type of a K steps together (fewer,
    # larger batched steps), and mclust's other models also start from the other models'
    # race finalists at the same K: the grid is dealt among processes that run in step and
    # exchange those finalists at every K. Beyond, each type's K-chain is independent.
    dealt = n_features <= _SHARED_FEATURES_MAX_D
    parallel = workers > 1 and len(types) > 1 and source is None
    shares = _deal(types, workers) if parallel and dealt else []
    if len(shares) > 1:
        _fit_dealt(X, w, ks, shares, params, hc, n_init, entropy, collect)
    elif parallel and not dealt:
        # One task per covariance type: the K-chains are independent of each other.
        with ProcessPoolExecutor(max_workers=min(workers, len(types))) as pool:
            futures = [
                pool.submit(_fit_chain, X, w, ks, (t,), params, hc, n_init, entropy,
                            threads=False)
                for t in types
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
            source=source,
        )
    if source is not None:  # log-likelihoods and the ICL's entropies on all the rows
        _score_on_source(source, [best for best, _ in outputs.values() if best is not None])

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
                # The model records the user's seed (an integer or None) as its
                # random_state, as a model file's settings; a Generator or RandomState
                # becomes an integer drawn for this grid point.
                seed = random_state if random_state is None or isinstance(
                    random_state, numbers.Integral) else int(np.random.default_rng(
                        np.random.SeedSequence(
                            entropy, spawn_key=(K, TYPES.index(t) + 1))
                    ).integers(2**31 - 1))
                try:
                    model = _estimator(best, params, X, w, n_eff, feature_names, seed)
                    criteria = _criteria(model, X, w, best, n_eff)
                except (ValueError, np.linalg.LinAlgError) as exc:
                    # e.g. a covariance composed from its eigen-decomposition that rounding
                    # left indefinite (entries near 1e20 next to a far outlier): this grid
                    # point failed, the others stand.
                    row["error"] = str(exc) or type(exc).__name__
                    table.append(row)
                    continue
                row.update(
                    log_likelihood=best.log_likelihood,
                    **criteria,
                    converged=best.converged,
                    n_iter=best.n_iter,
                    degenerate=best.reason,
                )
                estimators[(t, K)] = model
            table.append(row)

    return SelectionResult(table, criterion, estimators, n_samples, n_features)
