"""Initialisation, written once on the data-source protocol (``gaussmix._backends``).

:func:`initial_statistics` turns ``init_params`` into the sufficient statistics of an
initial assignment of the rows, for any data source (rows in memory, chunks of a Dask
array); the M-step then turns them into parameters:

* ``"kmeans"``: Lloyd's k-means on ``source.sample_rows(source.kmeans_rows, ...)`` (every
  row in memory, a deterministic sample of at most 100,000 rows on Dask), then one-hot on
  the nearest centre, through ``source.map_reduce`` over all the rows;
* ``"k-means++"``: one-hot on the k-means++ seeds chosen in that sample;
* ``"random"``: uniform random responsibilities, normalised per row, drawn block by block
  from ``source.block_seeds(random_state)`` (in memory: ``random_state`` itself over the
  rows in order, as scikit-learn; on Dask: one seed per chunk);
* ``"random_from_data"``: one-hot on ``n_components`` rows drawn without replacement with
  probability proportional to their weight (``source.sample_rows(..., weighted=True)``).

The moments of a one-hot start are taken about each component's own centre (its k-means
centre, its row), not about one common point: a component far from that point (a far
outlier on its own: one row at 1e10 times the data's scale) would otherwise lose its
variance, and its neighbours theirs, to cancellation (``E[(x - c)^2] - (E[x] - c)^2`` with
``|E[x] - c|`` of 1e10 leaves nothing of a variance of 1 in float64). See
``docs/robustness.md``.

:func:`kmeans_plusplus` and :func:`kmeans` (NumPy, block by block) honour sample weights:
a row of weight w counts as w copies of itself, so integer weights behave as repeated rows.
"""

from __future__ import annotations

import numbers

import numpy as np

from . import families
from .stats import (
    SufficientStatistics,
    _blocks,
    auto_block_size,
    statistics_from_responsibilities,
)

__all__ = ["initial_statistics", "kmeans", "kmeans_plusplus", "nearest_center"]


def _block_size(source, n_components):
    """Rows per block of the initial statistics (as for the E-step of the full family)."""
    if source.block_size is not None:
        return source.block_size
    return auto_block_size(source.n_features, n_components, source.dtype.itemsize)


def initial_statistics(source, method, n_components, random_state, covariance_type):
    """Statistics of the initial responsibilities chosen by ``method`` (see module docstring).

    Parameters
    ----------
    source : ArrayData or DaskData
        The rows (any object with the data-source protocol of ``gaussmix._backends``).
    method : {"kmeans", "k-means++", "random", "random_from_data"}
    n_components : int
    random_state : numpy.random.RandomState
        Consumed: successive calls give successive starts (``n_init``).
    covariance_type : str

    Returns
    -------
    SufficientStatistics
        ``log_likelihood = 0``; ``weight_sum`` is the weight of all the rows, so that the
        initial mixture weights are ``N_k / N`` as scikit-learn's.
    """
    block_size = _block_size(source, n_components)
    if method in ("kmeans", "k-means++"):
        rows, weights = source.sample_rows(source.kmeans_rows, random_state)
        if method == "k-means++":
            _, idx = kmeans_plusplus(rows, n_components, random_state, weights)
            weights = None if weights is None else weights[idx]
            return _one_hot_rows(source, rows[idx], weights, covariance_type)
        centers = kmeans(
            rows, n_components, random_state, weights, block_size=_block_size(source, 1)
        )
        return source.map_reduce(
            _nearest_center_statistics,
            centers,
            covariance_type,
            block_size,
            name="init",
            fixed_blocks=True,  # in memory: the same sums whatever the thread pool
        )
    if method == "random":
        return source.map_reduce(
            _random_statistics,
            n_components,
            covariance_type,
            source.reference,
            block_size,
            per_block=[(seed,) for seed in source.block_seeds(random_state)],
            name="init",
        )
    if method != "random_from_data":
        raise ValueError(f"Unknown init_params {method!r}.")
    rows, weights = source.sample_rows(n_components, random_state, weighted=True)
    if len(rows) < n_components:
        raise ValueError(
            f"init_params='random_from_data' needs at least n_components="
            f"{n_components} rows with positive sample_weight; got {len(rows)}."
        )
    return _one_hot_rows(source, rows, weights, covariance_type)


def _one_hot_rows(source, rows, weights, covariance_type):
    """Component k is the single row ``rows[k]``; the weight of all the data is N.

    The moments are about the rows themselves, so they are exactly zero (no rounding of
    ``(x - c)^2`` about a common point ``c`` to cancel, however far a row lies).
    """
    rows = np.asarray(rows, dtype=np.float64)
    n_rows = len(rows)
    nk = np.ones(n_rows) if weights is None else np.asarray(weights, dtype=np.float64)
    family = families.get(covariance_type)
    zeros = np.zeros_like(rows)
    return SufficientStatistics(
        family.name,
        rows.copy(),
        nk,
        zeros,
        family.scatter(zeros, np.diag(nk)),
        0.0,
        source.weight_sum,
    )


# Block functions of ``source.map_reduce`` (module-level: they travel to Dask workers).
def _responsibility_statistics(X, w, resp_of_rows, covariance_type, shift, block_size):
    """Statistics of ``resp_of_rows(X_b)`` summed over blocks of ``block_size`` rows."""
    total = None
    for rows in _blocks(X.shape[0], block_size):
        Xb = X[rows]
        stats = statistics_from_responsibilities(
            Xb,
            resp_of_rows(Xb),
            covariance_type,
            shift=shift,
            sample_weight=None if w is None else w[rows],
        )
        total = stats if total is None else total + stats
    return total


def _nearest_center_statistics(X, w, centers, covariance_type, block_size):
    """One-hot on the nearest of ``centers``, moments about each row's own centre.

    Two-pass accuracy without a second pass: k-means's centres are (close to) the means
    of their rows, so ``x - c_k`` holds the spread of cluster k without cancellation.
    """
    family = families.get(covariance_type)
    K, D = centers.shape
    # Nearest centre about the centres' mean, as kmeans works about the data's: the
    # expansion |x|^2 - 2 x.c + |c|^2 about the origin lost every distance of data
    # sharing a large offset (timestamps, coordinates: Old Faithful + 1.7e12 put all
    # 272 rows in one cluster).
    reference = centers.mean(axis=0)
    shifted = centers - reference
    centers_sq = np.einsum("kd,kd->k", shifted, shifted)
    nk = np.zeros(K)
    s1 = np.zeros((K, D))
    s2 = None
    for rows in _blocks(X.shape[0], block_size):
        Xb = X[rows].astype(np.float64)
        labels = nearest_center(Xb - reference, shifted, centers_sq)
        wb = np.ones(len(labels)) if w is None else w[rows].astype(np.float64)
        Xc = Xb - centers[labels]
        resp = np.zeros((len(labels), K))
        resp[np.arange(len(labels)), labels] = wb
        nk += resp.sum(axis=0)
        s1 += resp.T @ Xc
        part = family.scatter(Xc, resp)
        s2 = part if s2 is None else s2 + part
    if s2 is None:  # no rows in this block
        s2 = family.scatter(np.zeros((0, D)), np.zeros((0, K)))
    return SufficientStatistics(
        family.name, np.asarray(centers, dtype=np.float64).copy(), nk, s1, s2, 0.0,
        float(X.shape[0] if w is None else np.sum(w, dtype=np.float64)),
    )


def _random_statistics(X, w, seed, n_components, covariance_type, shift, block_size):
    """Uniform random responsibilities normalised per row, drawn in row order from ``seed``
    (an int seeds a fresh generator; a RandomState or Generator is consumed as it is)."""
    rng = np.random.default_rng(seed) if isinstance(seed, numbers.Integral) else seed

    def random_resp(Xb):
        resp = rng.uniform(size=(Xb.shape[0], n_components))
        return resp / resp.sum(axis=1, keepdims=True)

    return _responsibility_statistics(X, w, random_resp, covariance_type, shift, block_size)


def _sq_dist_to_point(X, point, block_size):
    out = np.empty(X.shape[0], dtype=np.float64)
    for rows in _blocks(X.shape[0], block_size):
        diff = X[rows] - point
        out[rows] = np.einsum("nd,nd->n", diff, diff)
    return out


def _weighted_choice(rng, potential, size):
    """Indices drawn with probability proportional to ``potential`` (inverse CDF)."""
    cumulative = np.cumsum(potential)
    draws = rng.uniform(size=size) * cumulative[-1]
    idx = np.searchsorted(cumulative, draws, side="right")
    return np.minimum(idx, len(potential) - 1)


def kmeans_plusplus(X, n_clusters, random_state, sample_weight=None, *, block_size=None):
    """Greedy k-means++ seeding (Arthur & Vassilvitskii 2007).

    Each new centre is the best, by the resulting sum of squared distances, of
    ``2 + log(n_clusters)`` candidates drawn with probability proportional to
    ``w_n D(x_n)^2``.

    Returns
    -------
    centers : ndarray of shape (n_clusters, n_features)
    indices : ndarray of shape (n_clusters,)
        Rows of X chosen as centres.
    """
    n_samples, n_features = X.shape
    if block_size is None:
        block_size = auto_block_size(n_features, 1)
    weights = np.ones(n_samples) if sample_weight is None else sample_weight.astype(np.float64)
    n_trials = 2 + int(np.log(n_clusters))
    indices = np.empty(n_clusters, dtype=np.intp)
    indices[0] = _weighted_choice(random_state, weights, 1)[0]
    closest = _sq_dist_to_point(X, X[indices[0]], block_size)
    for c in range(1, n_clusters):
        potential = closest * weights
        if not potential.sum() > 0:  # every remaining point sits on a centre already
            potential = weights
        candidates = _weighted_choice(random_state, potential, n_trials)
        if n_samples <= block_size:  # every candidate's distances in one pass
            diff = X[None, :, :] - X[candidates][:, None, :]
            dists = np.minimum(closest, np.einsum("tnd,tnd->tn", diff, diff))
            best_j = int(np.argmin([float(d @ weights) for d in dists]))  # (first of equals)
            indices[c], closest = candidates[best_j], dists[best_j]
            continue
        best = None
        for cand in candidates:
            dist = np.minimum(closest, _sq_dist_to_point(X, X[cand], block_size))
            total = float(dist @ weights)
            if best is None or total < best[0]:
                best = (total, cand, dist)
        indices[c], closest = best[1], best[2]
    return X[indices].astype(np.float64), indices


def nearest_center(Xb, centers, centers_sq):
    """Index of the nearest centre for each row of a block (squared Euclidean)."""
    dist = Xb @ centers.T
    dist *= -2.0
    dist += centers_sq
    return dist.argmin(axis=1)


def kmeans(
    X,
    n_clusters,
    random_state,
    sample_weight=None,
    *,
    max_iter=300,
    tol=1e-4,
    block_size=None,
):
    """Lloyd's k-means from a k-means++ seeding; returns the centres (n_clusters, D).

    Stops when the squared centre shift falls below ``tol`` times the mean feature
    variance, or when no label changes. An empty cluster is moved to the point farthest
    from its centre.
    """
    n_samples, n_features = X.shape
    if block_size is None:
        block_size = auto_block_size(n_features, n_clusters)
    weights = None if sample_weight is None else sample_weight.astype(np.float64)
    # Work around the data mean: distances by the expansion |x|^2 - 2 x.c + |c|^2 keep
    # their precision only when x and c are not far from the origin.
    total_w = float(n_samples if weights is None else weights.sum())
    mean = np.zeros(n_features)
    for rows in _blocks(n_samples, block_size):
        Xb = X[rows].astype(np.float64)
        mean += Xb.sum(axis=0) if weights is None else weights[rows] @ Xb
    mean /= total_w
    var = np.zeros(n_features)
    for rows in _blocks(n_samples, block_size):
        diff = X[rows].astype(np.float64) - mean
        var += (diff * diff).sum(axis=0) if weights is None else weights[rows] @ (diff * diff)
    threshold = tol * float(np.mean(var / total_w))

    centers, _ = kmeans_plusplus(X, n_clusters, random_state, weights, block_size=block_size)
    centers = centers - mean
    labels = np.full(n_samples, -1, dtype=np.intp)
    offsets = np.arange(n_features)
    # one block: the rows about the mean are made once, not at every iteration
    whole = X.astype(np.float64) - mean if n_samples <= block_size else None
    for _ in range(max_iter):
        sums = np.zeros((n_clusters, n_features))
        counts = np.zeros(n_clusters)
        changed = 0
        centers_sq = np.einsum("kd,kd->k", centers, centers)
        for rows in _blocks(n_samples, block_size):
            Xb = whole if whole is not None else X[rows].astype(np.float64) - mean
            lab = nearest_center(Xb, centers, centers_sq)
            changed += int(np.count_nonzero(lab != labels[rows]))
            labels[rows] = lab
            wb = None if weights is None else weights[rows]
            counts += np.bincount(lab, weights=wb, minlength=n_clusters)
            # every (cluster, feature) sum in one pass, each over the rows in order (as
            # one bincount per feature would add them)
            values = Xb if wb is None else wb[:, None] * Xb
            bins = (lab[:, None] * n_features + offsets).ravel()
            sums += np.bincount(bins, weights=values.ravel(),
                                minlength=n_clusters * n_features).reshape(sums.shape)
        if changed == 0:
            break
        empty = counts <= 0
        new_centers = centers.copy()
        new_centers[~empty] = sums[~empty] / counts[~empty, None]
        if empty.any():
            far = _farthest_points(X, mean, centers, labels, weights, int(empty.sum()))
            new_centers[empty] = far
        shift = float(np.sum((new_centers - centers) ** 2))
        centers = new_centers
        if shift <= threshold:
            break
    return centers + mean


def _farthest_points(X, mean, centers, labels, weights, count):
    dist = np.empty(X.shape[0])
    for rows in _blocks(X.shape[0], auto_block_size(X.shape[1], 1)):
        diff = X[rows].astype(np.float64) - mean - centers[labels[rows]]
        dist[rows] = np.einsum("nd,nd->n", diff, diff)
    if weights is not None:
        dist[weights <= 0] = -1.0
    far = np.argsort(dist)[::-1][:count]
    return X[far].astype(np.float64) - mean


# --------------------------------------------------------------------------------------
# Far outliers: isolated before the start
# --------------------------------------------------------------------------------------
#: A row lying more than this many standard deviations (of the other rows, in some
#: feature) from the other rows' mean gets a component of its own at the start.
ISOLATION_SDS = 1e4


def far_rows(X, sample_weight, max_rows: int) -> list[tuple[int, float]]:
    """Rows far outside the others, at most ``max_rows``, as ``(row, distance in sd)``.

    Repeatedly: the row with the largest standardised deviation from the mean of the rows
    kept so far is removed when it lies more than :data:`ISOLATION_SDS` standard
    deviations from the mean of the *other* kept rows, along some feature whose spread
    among them is positive. One far outlier inflates the data's variance by ``d**2 / N``,
    so it is measured against the others (leave-one-out), not against all rows. Rows of
    zero weight are never chosen. Gaussian data never come near: the largest deviation of
    1e9 normal draws is about 6 standard deviations. Two passes over X per row examined
    (one when nothing is far).
    """
    if max_rows < 1 or X.shape[0] < 3:
        return []
    n, D = X.shape
    w = np.ones(n) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    kept = w > 0
    found: list[tuple[int, float]] = []
    block = auto_block_size(D, 1)
    while len(found) < max_rows and kept.sum() > 2:
        mean, sd = _weighted_spread(X, w * kept, block)
        positive = sd > 0
        if not positive.any():
            break
        score = np.full(n, -1.0)
        for rows in _blocks(n, block):
            dev = np.abs(X[rows].astype(np.float64) - mean)[:, positive] / sd[positive]
            score[rows] = np.where(kept[rows], dev.max(axis=1), -1.0)
        top = int(np.argmax(score))
        others = kept.copy()
        others[top] = False
        mean_o, sd_o = _weighted_spread(X, w * others, block)
        x = X[top].astype(np.float64)
        usable = sd_o > 0
        if not usable.any():
            break
        distance = float(np.max(np.abs(x - mean_o)[usable] / sd_o[usable]))
        if not distance > ISOLATION_SDS:
            break
        found.append((top, distance))
        kept[top] = False
    return found


def _weighted_spread(X, w, block):
    """Weighted mean and standard deviation per feature (two passes, float64)."""
    total = float(w.sum())
    mean = np.zeros(X.shape[1])
    for rows in _blocks(X.shape[0], block):
        mean += w[rows] @ X[rows].astype(np.float64)
    mean /= total
    var = np.zeros(X.shape[1])
    for rows in _blocks(X.shape[0], block):
        diff = X[rows].astype(np.float64) - mean
        var += w[rows] @ (diff * diff)
    return mean, np.sqrt(var / total)


def with_isolated_rows(stats, rows, weights, weight_sum, covariance_type):
    """``stats`` of the other rows, plus one component per row of ``rows`` (appended).

    The rows' components are one-hot on them (moments exactly zero about the rows);
    ``weight_sum`` becomes the weight of all the data, so that the initial weights are
    N_k / N over every row.
    """
    family = families.get(covariance_type)
    rows = np.asarray(rows, dtype=np.float64)
    nk_rows = np.ones(len(rows)) if weights is None else np.asarray(weights, np.float64)
    zeros = np.zeros_like(rows)
    s2_rows = family.scatter(zeros, np.diag(nk_rows))
    if family.statistic == "pooled":
        s2 = stats.s2 + s2_rows
    else:
        s2 = np.concatenate([stats.s2, s2_rows])
    return SufficientStatistics(
        family.name,
        np.concatenate([stats.shift, rows]),
        np.concatenate([stats.nk, nk_rows]),
        np.concatenate([stats.s1, zeros]),
        s2,
        0.0,
        float(weight_sum),
    )


def statistics_of_parameters(params, weight_sum, reg_covar):
    """Statistics whose M-step (with ``reg_covar``) gives back ``params`` (sklearn's four
    families exactly; the constrained ones their projection): N_k = weight_sum * pi_k,
    moments about the means, scatter N_k (Sigma_k - reg_covar I)."""
    family = params.family
    nk = float(weight_sum) * np.asarray(params.weights, dtype=np.float64)
    means = np.asarray(params.means, dtype=np.float64)
    cov = np.asarray(params.covariances, dtype=np.float64)
    K, D = means.shape
    if family.statistic == "full":
        full = family.full_covariances(cov, K, D) - reg_covar * np.eye(D)
        s2 = nk[:, None, None] * full
    elif family.statistic == "pooled":
        s2 = nk.sum() * (family.component_covariance(cov, 0, D) - reg_covar * np.eye(D))
    elif family.statistic == "diagonal":
        s2 = nk[:, None] * (cov.reshape(K, D) - reg_covar)
    else:
        s2 = nk * D * (cov.reshape(K) - reg_covar)
    return SufficientStatistics(
        family.name, means.copy(), nk, np.zeros_like(means), s2, 0.0, float(weight_sum)
    )
