"""The command line's own pieces for data on a Dask cluster (``--scheduler``).

:func:`select_on_dask` is a plain selection grid, separate from :func:`select_model`
(which needs the data in memory today). It goes away once ``select_model`` accepts Dask
arrays; nothing else depends on it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from gaussmix._readers import is_lazy
from gaussmix._summary import information_criteria
from gaussmix.selection import TABLE_KEYS, SelectionResult

__all__ = ["plot_rows", "select_on_dask"]


def select_on_dask(
    X: Any,
    n_components: Sequence[int],
    covariance_types: Sequence[str],
    criterion: str = "bic",
    progress: Callable[[int, int, str, int], Any] | None = None,
    **params: Any,
) -> SelectionResult:
    """Fit every (covariance type, number of components) on the cluster and rank them.

    A plain grid (one fit per grid point with the estimator's own starts), not
    select_model's strategy, which needs the data in memory. ICL is computed only when it
    is the criterion (it costs one more pass over the data). Called as
    :func:`~gaussmix.selection.select_model` is.

    Parameters
    ----------
    X : dask array of shape (n_samples, n_features)
    n_components : sequence of int
    covariance_types : sequence of str
    criterion : {"bic", "aic", "icl"}, default="bic"
    progress : callable, optional
        ``progress(done, total, covariance_type, n_components)`` after each grid point.
    **params
        Further ``GaussianMixture`` parameters (n_init, random_state, ...).

    Raises
    ------
    ValueError
        When every fit failed or degenerated.
    """
    from gaussmix import GaussianMixture

    n, n_features = (int(s) for s in X.shape)
    grid = [(ct, k) for ct in covariance_types for k in n_components]
    table: list[dict[str, Any]] = []
    estimators: dict[tuple[str, int], Any] = {}
    for i, (ct, k) in enumerate(grid, 1):
        row: dict[str, Any] = dict.fromkeys(TABLE_KEYS)
        row.update(covariance_type=ct, n_components=k)
        try:
            model = GaussianMixture(k, covariance_type=ct, **params).fit(X)
            log_likelihood = float(model.score(X)) * n
            p = model._n_parameters()
            bic, aic = information_criteria(log_likelihood, p, n)
            row.update(
                log_likelihood=log_likelihood,
                n_parameters=p,
                bic=bic,
                aic=aic,
                converged=bool(model.converged_),
                n_iter=int(model.n_iter_),
                degenerate=model.degenerate_reason_,
            )
            if criterion == "icl":
                row["icl"] = float(model.icl(X))
            estimators[(ct, k)] = model
        except (ValueError, np.linalg.LinAlgError) as exc:
            row["error"] = " ".join(str(exc).split())
        table.append(row)
        if progress is not None:
            progress(i, len(grid), ct, k)
    return SelectionResult(table, criterion, estimators, n, n_features)


def plot_rows(X: Any) -> np.ndarray:
    """The data as NumPy for plotting: all rows, or a fixed random subsample of a dask array.

    The subsample is the one plot_clusters would draw from the whole array.
    """
    if not is_lazy(X):
        return X
    from gaussmix.plot import MAX_POINTS, _subsample

    if X.shape[0] <= MAX_POINTS:
        return np.asarray(X.compute())
    return np.asarray(X[_subsample(X.shape[0], MAX_POINTS)].compute())
