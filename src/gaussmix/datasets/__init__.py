"""Data sets bundled with gaussmix."""

from __future__ import annotations

from importlib.resources import files

import numpy as np

__all__ = ["FAITHFUL_FEATURES", "faithful_mclust_bic", "faithful_mclust_table", "load_faithful"]

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


#: scikit-learn's four models by mclust's name, in mclust's order.
_SKLEARN_MODELS = ("VII", "VVI", "EEE", "VVV")


def faithful_mclust_table() -> list[dict]:
    """mclust's 14-model BIC table for Old Faithful, G = 1..9, at full precision.

    What R's ``mclustBIC(faithful)`` gives (mclust 6.0.0, R 4.2.2, its default settings:
    all 14 models, G = 1 to 9 components), as produced by ``Rscript
    benchmarks/mclust_faithful_table.R`` (R's mclust run as a black box) and stored in
    ``gaussmix/datasets/data/faithful_mclust_bic.csv``. gaussmix needs no R to read it.

    Returns
    -------
    list of dict
        One row per model and number of components, in mclust's order of the models, with
        ``model`` (mclust's name), ``n_components``, ``bic`` (mclust's sign: ``2 log L -
        p log n``, higher is better, minus gaussmix's BIC), ``n_parameters`` (mclust's
        ``nMclustParams``) and ``log_likelihood`` (``(bic + p log n) / 2``). A new list on
        every call.

    Examples
    --------
    >>> from gaussmix.datasets import faithful_mclust_table
    >>> rows = faithful_mclust_table()
    >>> len(rows), len({row["model"] for row in rows})
    (126, 14)
    >>> best = max(rows, key=lambda row: row["bic"])
    >>> best["model"], best["n_components"], round(best["bic"], 3)
    ('EEE', 3, -2314.316)
    """
    path = files(__package__).joinpath("data", "faithful_mclust_bic.csv")
    rows = []
    with path.open("r", encoding="utf-8") as handle:
        lines = [line.strip() for line in handle if line.strip() and not line.startswith("#")]
    header = lines[0].split(",")
    for line in lines[1:]:
        cells = dict(zip(header, line.split(","), strict=True))
        rows.append({
            "model": cells["model"],
            "n_components": int(cells["G"]),
            "bic": float(cells["bic"]),
            "n_parameters": int(cells["n_parameters"]),
            "log_likelihood": float(cells["loglik"]),
        })
    return rows


def faithful_mclust_bic(models="sklearn") -> dict[str, dict[int, float]]:
    """mclust's published BIC table for Old Faithful, G = 1..9, to 3 decimals.

    The values R's mclust prints for ``mclustBIC(faithful)`` (mclust 6.0.0, its default
    settings) with G = 1 to 9 components, to 3 decimals, from
    :func:`faithful_mclust_table`. mclust's sign: ``2 log L - p log n``, higher is better,
    so it is minus gaussmix's BIC. mclust's pick over this grid is EEE with 3 components
    (-2314.316), over the four models and over all 14. Reproduce with::

        Rscript -e 'library(mclust); mclustBIC(faithful, G = 1:9,
                    modelNames = c("VII", "VVI", "EEE", "VVV"))'

    or ``Rscript benchmarks/mclust_faithful_table.R`` for all 14 models.

    Reference: Scrucca, Fop, Murphy & Raftery (2016), mclust 5: clustering, classification
    and density estimation using Gaussian finite mixture models, The R Journal 8(1), 289-317
    (the package); Fraley & Raftery (2002), JASA 97, 611-631 (the BIC).

    Parameters
    ----------
    models : {"sklearn", "all"} or iterable of str, default="sklearn"
        The models: scikit-learn's four (VII, VVI, EEE and VVV: gaussmix's spherical, diag,
        tied and full), all 14 of mclust's, or a list of mclust names.

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
    >>> len(faithful_mclust_bic("all")), faithful_mclust_bic("all")["VEE"][3]
    (14, -2322.103)
    """
    rows = faithful_mclust_table()
    known = list(dict.fromkeys(row["model"] for row in rows))
    if isinstance(models, str) and models == "sklearn":
        wanted = list(_SKLEARN_MODELS)
    elif isinstance(models, str) and models == "all":
        wanted = known
    else:
        wanted = [models] if isinstance(models, str) else list(models)
        unknown = [m for m in wanted if m not in known]
        if unknown:
            raise ValueError(
                f"models must be 'sklearn', 'all' or mclust's names {', '.join(known)}; "
                f"got {unknown[0]!r}."
            )
    table: dict[str, dict[int, float]] = {name: {} for name in wanted}
    for row in rows:
        if row["model"] in table:
            table[row["model"]][row["n_components"]] = round(row["bic"], 3)
    return table
