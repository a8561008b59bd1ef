"""gaussmix: Gaussian mixture models fitted by EM, from scratch on NumPy.

A drop-in for scikit-learn's ``GaussianMixture`` (same parameters, attributes, methods and
results from the same starting point), model selection over components and covariance
structures as in R's mclust, a command line, and fitting on Dask clusters.

The core imports NumPy only; plots (matplotlib), progress bars (tqdm) and Dask are
optional extras imported when used.
"""

from importlib.metadata import PackageNotFoundError, version

from . import datasets, stats
from ._exceptions import (
    ConvergenceWarning,
    DegenerateFitWarning,
    NotFittedError,
    RegularizationWarning,
)
from .io import ModelFileError
from .io import load_model as load
from .mixture import GaussianMixture
from .selection import SelectionResult, select_model
from .stats import MixtureParameters, SufficientStatistics, block_statistics, m_step

try:
    __version__ = version("gaussmix")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

__all__ = [
    "ConvergenceWarning",
    "DegenerateFitWarning",
    "GaussianMixture",
    "MixtureParameters",
    "ModelFileError",
    "NotFittedError",
    "RegularizationWarning",
    "SelectionResult",
    "SufficientStatistics",
    "__version__",
    "block_statistics",
    "datasets",
    "load",
    "m_step",
    "select_model",
    "stats",
]
