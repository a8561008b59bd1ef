"""Compatibility functions over :mod:`gaussmix.families` (``covariance_type`` as a string).

Each function looks the family up and calls its method of the same purpose; new code should
call the family directly (``families.get(covariance_type).precision_cholesky(...)``).
"""

from __future__ import annotations

from . import families

__all__ = [
    "covariance_of_component",
    "covariances_from_precisions",
    "log_det_cholesky",
    "n_covariance_parameters",
    "precision_cholesky",
    "precision_cholesky_from_precisions",
    "precisions_from_cholesky",
]


def precision_cholesky(covariances, covariance_type: str, reg_covar: float = 0.0):
    """Cholesky factors of the precisions from covariances (float64).

    Raises a ValueError naming the component whose covariance is not positive definite.
    """
    return families.get(covariance_type).precision_cholesky(covariances, reg_covar)


def precision_cholesky_from_precisions(precisions, covariance_type: str):
    """The precision Cholesky factors straight from precisions."""
    return families.get(covariance_type).precision_cholesky_from_precisions(precisions)


def precisions_from_cholesky(prec_chol, covariance_type: str):
    """``precision = L @ L.T`` (full, tied) or ``L**2`` (diag, spherical)."""
    return families.get(covariance_type).precisions_from_cholesky(prec_chol)


def covariances_from_precisions(prec_chol, covariance_type: str):
    """Covariances as the inverse of the precisions given by their Cholesky factors."""
    return families.get(covariance_type).covariances_from_precisions(prec_chol)


def log_det_cholesky(prec_chol, covariance_type: str, n_features: int):
    """``log det L`` per component, which is ``0.5 * log det(precision)``."""
    return families.get(covariance_type).log_det_cholesky(prec_chol, n_features)


def n_covariance_parameters(covariance_type: str, n_components: int, n_features: int) -> int:
    """Free parameters of the covariances of a mixture."""
    return families.get(covariance_type).n_covariance_parameters(n_components, n_features)


def covariance_of_component(covariances, covariance_type: str, k: int, n_features: int):
    """The (D, D) covariance matrix of component ``k`` whatever the family."""
    return families.get(covariance_type).component_covariance(covariances, k, n_features)
