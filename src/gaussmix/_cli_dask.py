"""The command line's own piece for data on a Dask cluster (``--scheduler``).

Model selection needs nothing here: :func:`~gaussmix.selection.select_model` takes the
dask array itself. :func:`plot_rows` gives the plots their rows.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gaussmix._readers import is_lazy

__all__ = ["plot_rows"]


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
