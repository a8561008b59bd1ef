"""Covariance families: one object per family, behind one registry.

Every place in gaussmix that depends on the covariance structure asks the family object
(:func:`get`) instead of branching on its name. Adding a family means one new module
defining a :class:`CovarianceFamily` subclass, one line in ``_MODULES`` below, and its
tests. The interface and its shapes table are in :mod:`gaussmix.families._base`.

    name        mclust   covariances   precision_form   statistic   free covariance params
    full        VVV      (K, D, D)     full             full        K D (D + 1) / 2
    tied        EEE      (D, D)        shared_full      pooled      D (D + 1) / 2
    diag        VVI      (K, D)        diagonal         diagonal    K D
    spherical   VII      (K,)          scalar           trace       K
    EII         EII      (K,)          scalar           trace       1
    EEI         EEI      (K, D)        diagonal         diagonal    D
    VEI         VEI      (K, D)        diagonal         diagonal    K + D - 1
    EVI         EVI      (K, D)        diagonal         diagonal    1 + K (D - 1)
    VEE         VEE      (K, D, D)     full             full        K + D (D + 1) / 2 - 1
    EVE         EVE      (K, D, D)     full             full        1 + K (D - 1) + D (D - 1) / 2
    VVE         VVE      (K, D, D)     full             full        K D + D (D - 1) / 2
    EEV         EEV      (K, D, D)     full             full        D + K D (D - 1) / 2
    VEV         VEV      (K, D, D)     full             full        K + D - 1 + K D (D - 1) / 2
    EVV         EVV      (K, D, D)     full             full        1 + K (D (D + 1) / 2 - 1)

A model sharing a piece across components (EII's variance, EEI's diagonal, EEV's
eigenvalues) stores it repeated, per component, in scikit-learn's shape.

Examples
--------
>>> from gaussmix import families
>>> families.get("EEE").name
'tied'
>>> families.get("full").n_parameters(3, 2)
17
>>> families.NAMES[:4]
('full', 'tied', 'diag', 'spherical')
>>> families.SELECTION_ORDER
('spherical', 'diag', 'tied', 'full')
"""

from __future__ import annotations

from . import diag, eei, eev, eii, eve, evi, evv, full, spherical, tied, vee, vei, vev, vve
from ._base import CovarianceFamily, MatrixFamily, VarianceFamily, collapse_error, direction_words

__all__ = [
    "MCLUST_MODELS",
    "NAMES",
    "SELECTION_ORDER",
    "CovarianceFamily",
    "MatrixFamily",
    "VarianceFamily",
    "all_families",
    "collapse_error",
    "direction_words",
    "get",
    "of_model",
    "register",
]

#: mclust's 14 models in mclust's own order (simplest first): the order of selection grids.
MCLUST_MODELS = (
    "EII", "VII", "EEI", "VEI", "EVI", "VVI", "EEE", "VEE", "EVE", "VVE", "EEV", "VEV", "EVV",
    "VVV",
)

_FAMILIES: dict[str, CovarianceFamily] = {}
_LOOKUP: dict[str, CovarianceFamily] = {}


def register(family: CovarianceFamily) -> CovarianceFamily:
    """Add ``family`` to the registry under its name and aliases; returns it."""
    keys = (family.name, *family.aliases)
    taken = [key for key in keys if key in _LOOKUP and _LOOKUP[key] is not family]
    if taken:
        raise ValueError(f"covariance family names already registered: {taken}")
    _FAMILIES[family.name] = family
    for key in keys:
        _LOOKUP[key] = family
    return family


_SKLEARN_MODULES = (full, tied, diag, spherical)  # scikit-learn's order
# mclust's other models, in mclust's order (EII VII EEI VEI EVI VVI EEE VEE EVE VVE EEV VEV
# EVV VVV without scikit-learn's four).
_MCLUST_MODULES = (eii, eei, vei, evi, vee, eve, vve, eev, vev, evv)

for _module in (*_SKLEARN_MODULES, *_MCLUST_MODULES):
    register(_module.FAMILY)


def _choices() -> str:
    names = ", ".join(map(repr, _FAMILIES))
    aliases = ", ".join(
        f"{alias!r} (= {name!r})"
        for name, family in _FAMILIES.items()
        for alias in family.aliases
    )
    return f"{names}, or mclust's names {aliases}"


def get(name, what: str = "covariance_type") -> CovarianceFamily:
    """The family called ``name`` (scikit-learn's name or an alias such as mclust's).

    A :class:`CovarianceFamily` is returned as it is. Raises ValueError naming the valid
    choices otherwise; ``what`` names the parameter in that message.
    """
    if isinstance(name, CovarianceFamily):
        return name
    family = _LOOKUP.get(name) if isinstance(name, str) else None
    if family is None:
        raise ValueError(f"{what} must be one of {_choices()}; got {name!r}.")
    return family


def of_model(model) -> CovarianceFamily:
    """The family of a model: the one it was fitted with, else its ``covariance_type``."""
    name = getattr(model, "_fitted_covariance_type", None) or model.covariance_type
    return get(name)


def all_families() -> tuple[CovarianceFamily, ...]:
    """Every registered family, in registration order."""
    return tuple(_FAMILIES.values())


def _mclust_rank(family: CovarianceFamily) -> int:
    return MCLUST_MODELS.index(family.mclust_name)


#: The names of the registered families (scikit-learn's four first; the others are named
#: by mclust's name).
NAMES = tuple(_FAMILIES)
#: The grid ``select_model`` searches today, scikit-learn's four families, in mclust's order
#: (simplest model first). Selection over all 14 models is issue 11, item 2.
SELECTION_ORDER = tuple(
    f.name for f in sorted((m.FAMILY for m in _SKLEARN_MODULES), key=_mclust_rank)
)
