"""Model selection (:func:`gaussmix.selection.select_model`) on data with missing values.

``select_model`` hands data holding NaN to :func:`select`, which returns the same
:class:`~gaussmix.selection.SelectionResult`. For every grid point
``(covariance_type, n_components)``:

1. **Starts on what is observed** (shared by the covariance types of a ``K``):

   * *k-means with partial distances* (``n_init + 1`` runs, k-means++ seeding): the
     squared distance of a row to a centre sums over the row's observed coordinates only,
     scaled by ``D / |o|`` so that rows with holes are not drawn to every centre (Dixon
     1979); a centre is the per-coordinate mean of the observed values of its rows.
   * *hierarchical*: Ward's agglomeration (the engine's own, on the raw, standardised and
     sphered data) of the complete rows (a seeded sample of 1,000 of them beyond that),
     when there are at least ``10 K`` of them; each cut is extended to the other rows by
     the nearest centroid in the same partial distance.

   Each partition starts EM with its clusters' weights, per-coordinate observed means and
   diagonal covariances (observed variances, shrunk towards the pooled ones by ``D + 1``
   pseudo-points so that small clusters do not start singular), in the family's form.

   *Far outliers* (:func:`gaussmix._init.far_rows` on the data with holes filled by the
   column medians, as ``GaussianMixture.fit`` isolates them): for every K above their
   number F, the other rows are partitioned into K - F clusters and each far row gets
   its own, started tight (1e-12 of the pooled variance); they are left out of the
   pooled moments.
2. **Exact EM with missing values** (:mod:`gaussmix._missing`) from every start, through
   :class:`~gaussmix.GaussianMixture` with the caller's ``**params``; the start with the
   highest observed-data log-likelihood among the non-degenerate fits is kept.
3. **Criteria** as for complete data: ``log L`` is the observed-data log-likelihood
   (weighted by ``sample_weight``), the parameter counts are the family's, and the ICL's
   entropy comes from the responsibilities given the observed coordinates.

This path does not use the engine's race and split starts, nor worker processes
(``n_jobs`` is accepted and ignored); Dask arrays with NaN are not handled here.
"""

from __future__ import annotations

import numbers
import warnings
from typing import Any

import numpy as np

from . import _missing, families

__all__ = ["has_missing", "select"]

# Complete rows given to the Ward agglomeration at most (a seeded random sample beyond).
_WARD_ROWS = 1000


def has_missing(X) -> bool:
    """Whether in-memory X holds a NaN (Dask arrays: False, their path is the engine's)."""
    from ._backends import _is_dask_array

    if _is_dask_array(X):
        return False
    try:
        array = np.asarray(X)
    except (TypeError, ValueError):
        return False
    if array.dtype.kind != "f":
        if array.dtype.kind != "O":
            return False
        try:
            array = array.astype(np.float64)
        except (TypeError, ValueError):
            return False
    return array.ndim == 2 and _missing.incomplete_rows(array) is not None


# --------------------------------------------------------------------------- starts


def _partial_sq_dist(X, observed, centres):
    """(n, K) squared distances over each row's observed coordinates, times D / |o|."""
    Xz = np.where(observed, X, 0.0)
    obs = observed.astype(np.float64)
    # sum_o (x - c)^2 = sum_o x^2 - 2 x.c + sum_o c^2
    dist = (Xz**2).sum(axis=1)[:, None] - 2.0 * Xz @ centres.T + obs @ (centres**2).T
    np.maximum(dist, 0.0, out=dist)
    return dist * (X.shape[1] / obs.sum(axis=1))[:, None]


def _centres_of(X, observed, w, labels, K, fallback):
    """Per-coordinate weighted means of the observed values of each cluster."""
    onehot = np.zeros((len(labels), K))
    onehot[np.arange(len(labels)), labels] = w
    Xz = np.where(observed, X, 0.0)
    counts = onehot.T @ observed.astype(np.float64)
    sums = onehot.T @ Xz
    return np.where(counts > 0, sums / np.where(counts > 0, counts, 1.0), fallback)


def _kmeans(X, observed, w, K, rng, n_iter=30):
    """k-means++ seeding and Lloyd iterations in the partial distance; labels (n,)."""
    n = X.shape[0]
    probs = w / w.sum()
    first = rng.choice(n, p=probs)
    column_means = _centres_of(X, observed, w, np.zeros(n, np.intp), 1, 0.0)[0]
    centres = [np.where(observed[first], X[first], column_means)]
    closest = _partial_sq_dist(X, observed, np.array(centres))[:, 0]
    for _ in range(1, K):
        potential = closest * w
        total = potential.sum()
        pick = rng.choice(n, p=potential / total) if total > 0 else rng.choice(n, p=probs)
        centres.append(np.where(observed[pick], X[pick], column_means))
        closest = np.minimum(closest, _partial_sq_dist(X, observed, centres[-1][None])[:, 0])
    centres = np.array(centres)
    labels = None
    for _ in range(n_iter):
        new = _partial_sq_dist(X, observed, centres).argmin(axis=1)
        if labels is not None and np.array_equal(new, labels):
            break
        labels = new
        centres = _centres_of(X, observed, w, labels, K, centres)
    return labels


def _hierarchical(X, observed, w, ks, entropy):
    """Ward cuts of the complete rows (the engine's), extended by nearest centroid."""
    complete = observed.all(axis=1)
    if complete.sum() < 10 * max(ks):
        return {}
    try:
        from .selection import _hierarchical_partitions
    except ImportError:  # pragma: no cover - the engine's helper was renamed
        return {}
    rows = np.flatnonzero(complete)
    if len(rows) > _WARD_ROWS:  # Ward is quadratic in the rows: a seeded sample of them
        rng = np.random.default_rng(np.random.SeedSequence(entropy, spawn_key=(102,)))
        rows = np.sort(rng.choice(rows, _WARD_ROWS, replace=False))
    Xc, wc = X[rows], w[rows]
    out: dict[int, list[np.ndarray]] = {}
    for K, cuts in _hierarchical_partitions(Xc, wc, ks, entropy).items():
        for labels_c in cuts:
            labels_c = np.asarray(labels_c)
            if len(labels_c) != len(Xc):  # pragma: no cover - the engine sampled again
                continue
            centres = _centres_of(Xc, observed[rows], wc, labels_c, K, 0.0)
            labels = _partial_sq_dist(X, observed, centres).argmin(axis=1)
            labels[rows] = labels_c
            out.setdefault(K, []).append(labels)
    return out


def _start_parameters(X, observed, w, labels, K, covariance_type, far=()):
    """weights, means and precisions (the family's stored form) of a partition.

    ``far``: the far rows isolated in the last ``len(far)`` clusters (one each). They are
    left out of the pooled moments (one row at 1e9 inflated every start variance by 1e15)
    and their clusters start with a variance 1e-12 of the pooled one (also along their
    missing coordinates, which EM does not inform), as GaussianMixture.fit's isolated
    rows start at reg_covar.
    """
    D = X.shape[1]
    rest = np.ones(len(X), dtype=bool)
    rest[list(far)] = False
    means = _centres_of(X, observed, w, labels, K, 0.0)
    pooled_mean = _centres_of(
        X[rest], observed[rest], w[rest], np.zeros(int(rest.sum()), np.intp), 1, 0.0
    )[0]
    means = np.where(np.isnan(means), pooled_mean, means)
    onehot = np.zeros((len(X), K))
    onehot[np.arange(len(X)), labels] = w
    obs = observed.astype(np.float64)
    resid = np.where(observed, X - means[labels], 0.0)
    counts = onehot.T @ obs  # (K, D) observed weight per coordinate
    scatter = onehot.T @ resid**2
    total_resid = np.where(observed[rest], X[rest] - pooled_mean, 0.0)
    pooled = (w[rest] @ total_resid**2) / np.maximum(w[rest] @ obs[rest], 1e-300)
    pooled = np.where(pooled > 0, pooled, 1.0)
    prior = D + 1.0
    variances = (scatter + prior * pooled) / (counts + prior)
    if len(far):
        variances[K - len(far):] = 1e-12 * pooled
    weights = onehot.sum(axis=0)
    weights = np.maximum(weights, 1e-3 * weights.sum() / K)
    weights /= weights.sum()
    # The diagonal start projected onto the family's constraint (equal volume, shape or
    # orientation: mclust's other models refuse a start that breaks theirs).
    family = families.get(covariance_type)
    full = np.stack([np.diag(v) for v in variances])
    covariances = family.from_full(full, weights)
    return weights, means, family.precisions(covariances)


def _far(X, observed, w, max_rows):
    """The far rows to isolate (:func:`gaussmix._init.far_rows`, as GaussianMixture.fit
    does), on X with its holes filled by the column medians (which no far value moves)."""
    if max_rows < 1:
        return []
    from ._init import far_rows

    filled = np.where(observed, X, np.nanmedian(X, axis=0))
    return [row for row, _ in far_rows(filled, w, max_rows)]


def _partitions(X, observed, w, ks, n_init, entropy, far=()):
    """{K: [labels, ...]}: k-means runs and the hierarchical cuts, duplicates dropped.

    With ``far`` rows (F of them), every K > F partitions the other rows into K - F
    clusters and gives each far row a cluster of its own (the last F labels).
    """
    F = len(far)
    isolated = [K for K in ks if F and K > F]
    out = _plain_partitions(X, observed, w, [K for K in ks if K not in isolated], n_init,
                            entropy) if len(isolated) < len(ks) else {}
    if isolated:
        rest = np.ones(len(X), dtype=bool)
        rest[list(far)] = False
        sub = _plain_partitions(X[rest], observed[rest], w[rest],
                                [K - F for K in isolated], n_init, entropy)
        for K in isolated:
            out[K] = []
            for labels_rest in sub[K - F]:
                labels = np.empty(len(X), dtype=np.intp)
                labels[rest] = labels_rest
                labels[list(far)] = np.arange(K - F, K)
                out[K].append(labels)
    return out


def _plain_partitions(X, observed, w, ks, n_init, entropy):
    """:func:`_partitions` without far rows."""
    if not ks:
        return {}
    hc = _hierarchical(X, observed, w, ks, entropy)
    out = {}
    for K in ks:
        rng = np.random.default_rng(np.random.SeedSequence(entropy, spawn_key=(K, 101)))
        found, seen = [], set()
        for labels in [*hc.get(K, []), *(_kmeans(X, observed, w, K, rng)
                                         for _ in range(n_init + 1))]:
            key = _canonical(labels)
            if key not in seen and len(np.unique(labels)) == K:
                seen.add(key)
                found.append(labels)
        if not found:  # every run lost a cluster (many equal rows): a random partition
            labels = rng.integers(K, size=len(X))
            labels[rng.choice(len(X), K, replace=False)] = np.arange(K)
            found.append(labels)
        out[K] = found
    return out


def _canonical(labels):
    _, first = np.unique(labels, return_index=True)
    relabel = np.empty(labels.max() + 1, dtype=np.intp)
    relabel[labels[np.sort(first)]] = np.arange(len(first))
    return relabel[labels].tobytes()


# --------------------------------------------------------------------------- fits


def _fit_point(X, w, observed, covariance_type, K, partitions, params, seed, far=()):
    """Best fit of one grid point over the starts: (model or None, errors)."""
    from .mixture import GaussianMixture

    best, best_ll, errors = None, -np.inf, []
    far = far if len(far) and K > len(far) else ()
    for labels in partitions:
        weights, means, precisions = _start_parameters(
            X, observed, w, labels, K, covariance_type, far
        )
        model = GaussianMixture(
            n_components=K, covariance_type=covariance_type, weights_init=weights,
            means_init=means, precisions_init=precisions, random_state=seed, **params,
        )
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # convergence and degeneracy: in the table
                model.fit(X, sample_weight=w)
        except (ValueError, np.linalg.LinAlgError, FloatingPointError) as exc:
            errors.append(str(exc))
            continue
        ll = float(model.score_samples(X) @ w)
        key = (not model.degenerate_, ll)
        if best is None or key > ((not best.degenerate_), best_ll):
            best, best_ll = model, ll
    return best, best_ll, errors


def select(
    X, n_components, covariance_types, criterion, *, n_init=1, random_state=None,
    sample_weight=None, progress=None, n_jobs=None, **params,
):
    """:func:`~gaussmix.selection.select_model` for in-memory data holding NaN."""
    from . import selection
    from ._criteria import information_criteria, map_entropy
    from ._validation import (
        check_array,
        check_sample_weight,
        feature_names_of,
        warn_small_variances,
    )

    feature_names = feature_names_of(X)
    X = np.ascontiguousarray(check_array(X, allow_nan=True), dtype=np.float64)
    n_samples, n_features = X.shape
    observed = ~np.isnan(X)
    empty = ~observed.any(axis=1)
    if empty.any():
        raise ValueError(
            f"{int(empty.sum())} rows with no observed value (every feature is NaN); the "
            f"first is row {int(np.argmax(empty))}. Drop the rows that are entirely missing."
        )
    if not observed.any(axis=0).all():
        j = int(np.argmax(~observed.any(axis=0)))
        raise ValueError(
            f"Feature {j} of X has no observed value (every row is NaN there): its mean "
            "and variance cannot be estimated. Drop that column."
        )
    ks, types = selection._checked_arguments(n_components, covariance_types, criterion,
                                             n_init, params, progress, n_samples)
    w = check_sample_weight(sample_weight, n_samples)
    w = np.ones(n_samples) if w is None else w
    n_eff = float(w.sum())
    # a feature whose observed values barely vary: reg_covar dominates it (as without NaN)
    warn_small_variances(X, w, params.get("reg_covar", 1e-6), stacklevel=4)
    entropy = selection._entropy_from(random_state)
    far = _far(X, observed, w, ks[-1] - 1)  # far outliers: a cluster of their own
    partitions = _partitions(X, observed, w, ks, n_init, entropy, far)
    seed = random_state if random_state is None or isinstance(
        random_state, numbers.Integral) else int(entropy % (2**31 - 1))

    table, estimators, done = [], {}, 0
    results: dict[tuple[str, int], Any] = {}
    for K in ks:
        for t in types:
            results[(t, K)] = _fit_point(X, w, observed, t, K, partitions[K], params, seed,
                                         far)
            done += 1
            if progress is not None:
                progress(done, len(ks) * len(types), t, K)
    for t in types:
        for K in ks:
            model, ll, errors = results[(t, K)]
            row: dict[str, Any] = dict.fromkeys(selection.TABLE_KEYS)
            row.update(covariance_type=t, n_components=K)
            if model is None:
                row["error"] = "; ".join(dict.fromkeys(errors)) or "no start could be made"
            else:
                if feature_names is not None:
                    model.feature_names_in_ = feature_names
                n_parameters = int(model._n_parameters())
                criteria = information_criteria(ll, n_parameters, n_eff)
                criteria["icl"] = criteria["bic"] + 2.0 * map_entropy(
                    model.predict_proba(X), w
                )
                row.update(
                    log_likelihood=ll, n_parameters=n_parameters, **criteria,
                    converged=bool(model.converged_), n_iter=int(model.n_iter_),
                    degenerate=model.degenerate_reason_ if model.degenerate_ else None,
                )
                estimators[(t, K)] = model
            table.append(row)
    return selection.SelectionResult(table, criterion, estimators, n_samples, n_features)
