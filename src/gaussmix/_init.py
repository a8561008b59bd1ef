"""Initialisation: k-means++ seeding and Lloyd's k-means, in NumPy, block by block.

Both honour sample weights: a row of weight w counts as w copies of itself, so integer
weights behave as repeated rows.
"""

from __future__ import annotations

import numpy as np

from .stats import _blocks, auto_block_size

__all__ = ["kmeans", "kmeans_plusplus", "nearest_center"]


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
    for _ in range(max_iter):
        sums = np.zeros((n_clusters, n_features))
        counts = np.zeros(n_clusters)
        changed = 0
        centers_sq = np.einsum("kd,kd->k", centers, centers)
        for rows in _blocks(n_samples, block_size):
            Xb = X[rows].astype(np.float64) - mean
            lab = nearest_center(Xb, centers, centers_sq)
            changed += int(np.count_nonzero(lab != labels[rows]))
            labels[rows] = lab
            wb = np.ones(len(lab)) if weights is None else weights[rows]
            counts += np.bincount(lab, weights=wb, minlength=n_clusters)
            for d in range(n_features):
                sums[:, d] += np.bincount(lab, weights=wb * Xb[:, d], minlength=n_clusters)
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
