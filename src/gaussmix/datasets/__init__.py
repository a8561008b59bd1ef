"""Data sets bundled with gaussmix."""

from __future__ import annotations

from importlib.resources import files

import numpy as np

__all__ = ["FAITHFUL_FEATURES", "faithful_mclust_bic", "load_faithful"]

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


# mclust's BIC (its sign: 2 log L - p log n, higher is better) on Old Faithful, G = 1..9.
_FAITHFUL_MCLUST_BIC = {
    "VII": (-4024.721, -3458.305, -3336.598, -3242.826, -3129.080, -3038.171, -2973.374,
            -2935.082, -2919.415),
    "VVI": (-3055.835, -2346.065, -2342.366, -2343.486, -2351.017, -2373.469, -2394.696,
            -2413.705, -2432.708),
    "EEE": (-2607.623, -2325.220, -2314.316, -2331.223, -2360.659, -2347.352, -2369.330,
            -2376.104, -2389.609),
    "VVV": (-2607.623, -2322.192, -2349.696, -2351.493, -2379.388, -2387.016, -2412.440,
            -2442.018, -2460.398),
}  # fmt: skip


def faithful_mclust_bic() -> dict[str, dict[int, float]]:
    """mclust's published BIC table for Old Faithful, for the four models gaussmix fits.

    The values R's mclust prints for ``mclustBIC(faithful)`` (mclust 6.0.0, its default
    settings), for models VII, VVI, EEE and VVV (gaussmix's spherical, diag, tied and full)
    with G = 1 to 9 components, to 3 decimals. mclust's sign: ``2 log L - p log n``, higher
    is better, so it is minus gaussmix's BIC. mclust's pick over this grid is EEE with 3
    components (-2314.316). Reproduce with::

        Rscript -e 'library(mclust); mclustBIC(faithful, G = 1:9,
                    modelNames = c("VII", "VVI", "EEE", "VVV"))'

    Reference: Scrucca, Fop, Murphy & Raftery (2016), mclust 5: clustering, classification
    and density estimation using Gaussian finite mixture models, The R Journal 8(1), 289-317
    (the package); Fraley & Raftery (2002), JASA 97, 611-631 (the BIC).

    Returns
    -------
    dict
        ``{model name: {n_components: BIC}}``, a new copy on every call.

    Examples
    --------
    >>> from gaussmix.datasets import faithful_mclust_bic
    >>> table = faithful_mclust_bic()
    >>> table["EEE"][3]
    -2314.316
    >>> max((bic, name, k) for name, row in table.items() for k, bic in row.items())
    (-2314.316, 'EEE', 3)
    """
    return {name: dict(enumerate(row, start=1)) for name, row in _FAITHFUL_MCLUST_BIC.items()}
