"""Data sets bundled with gaussmix."""

from __future__ import annotations

from importlib.resources import files

import numpy as np

__all__ = ["FAITHFUL_FEATURES", "load_faithful"]

FAITHFUL_FEATURES = ("eruptions", "waiting")


def load_faithful(*, as_frame: bool = False):
    """Old Faithful geyser eruptions: 272 rows, duration (min) and waiting time (min).

    The data of Härdle (1991) as shipped with R (``datasets::faithful``); the classic test
    case of mclust, whose best model by BIC is EEE (gaussmix's ``tied``) with 3 components.

    Parameters
    ----------
    as_frame : bool, default=False
        Return a pandas DataFrame with columns ``eruptions`` and ``waiting`` (needs pandas).

    Returns
    -------
    ndarray of shape (272, 2), float64, or DataFrame

    Examples
    --------
    >>> from gaussmix.datasets import load_faithful
    >>> load_faithful().shape
    (272, 2)
    """
    path = files(__package__).joinpath("data", "faithful.csv")
    with path.open("r", encoding="utf-8") as handle:
        header = handle.readline().strip().split(",")
        data = np.loadtxt(handle, delimiter=",", dtype=np.float64)
    if as_frame:
        import pandas as pd

        return pd.DataFrame(data, columns=header)
    return data
