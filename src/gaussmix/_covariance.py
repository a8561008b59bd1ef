"""The four covariance families: one function per family and per task, picked by dict.

The model stores, as scikit-learn does, the Cholesky factor ``L`` of each precision matrix
(``precision = L @ L.T``). For the full and tied families ``L`` is upper triangular and
equals ``inv(C).T`` where ``C`` is the lower Cholesky factor of the covariance. For the diag
and spherical families it is ``1 / sqrt(variance)``.

Shapes (K components, D features)::

    family      covariances     precisions_cholesky   free covariance parameters
    full        (K, D, D)       (K, D, D)             K * D * (D + 1) / 2
    tied        (D, D)          (D, D)                D * (D + 1) / 2
    diag        (K, D)          (K, D)                K * D
    spherical   (K,)            (K,)                  K

Everything here is computed in float64; callers cast to the data's dtype afterwards.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "covariances_from_precisions",
    "log_det_cholesky",
    "n_covariance_parameters",
    "precision_cholesky",
    "precision_cholesky_from_precisions",
    "precisions_from_cholesky",
]


def _collapse_error(component: str, reg_covar: float, detail: str) -> ValueError:
    return ValueError(
        f"The covariance of {component} is not positive definite even after adding "
        f"reg_covar={reg_covar:g} to its diagonal ({detail}): the component has collapsed, "
        "for example onto a few identical points. Lower n_components, raise reg_covar "
        "(e.g. to 1e-4), or scale the data (standardize features on very different scales)."
    )


def _triangular_inverse_transpose(chol: np.ndarray) -> np.ndarray:
    """``inv(C).T`` for lower-triangular C (stacked), exactly upper triangular."""
    n_features = chol.shape[-1]
    eye = np.broadcast_to(np.eye(n_features), chol.shape)
    inv = np.linalg.solve(chol, eye)
    return np.triu(np.swapaxes(inv, -1, -2))


def _cholesky_or_raise(matrices: np.ndarray, reg_covar: float, names) -> np.ndarray:
    try:
        return np.linalg.cholesky(matrices)
    except np.linalg.LinAlgError:
        stack = matrices.reshape(-1, *matrices.shape[-2:])
        for name, matrix in zip(names, stack, strict=True):
            try:
                np.linalg.cholesky(matrix)
            except np.linalg.LinAlgError:
                smallest = np.linalg.eigvalsh(matrix).min()
                raise _collapse_error(
                    name, reg_covar, f"smallest eigenvalue {smallest:.3g}"
                ) from None
        raise


def _prec_chol_full(covariances, reg_covar=0.0):
    names = [f"component {k}" for k in range(covariances.shape[0])]
    return _triangular_inverse_transpose(_cholesky_or_raise(covariances, reg_covar, names))


def _prec_chol_tied(covariance, reg_covar=0.0):
    chol = _cholesky_or_raise(covariance, reg_covar, ["the tied covariance (all components)"])
    return _triangular_inverse_transpose(chol)


def _prec_chol_diag(covariances, reg_covar=0.0):
    bad = np.argwhere(~(covariances > 0))
    if bad.size:
        k, d = bad[0]
        raise _collapse_error(
            f"component {k}", reg_covar, f"variance {covariances[k, d]:.3g} of feature {d}"
        )
    return 1.0 / np.sqrt(covariances)


def _prec_chol_spherical(covariances, reg_covar=0.0):
    bad = np.flatnonzero(~(covariances > 0))
    if bad.size:
        k = bad[0]
        raise _collapse_error(f"component {k}", reg_covar, f"variance {covariances[k]:.3g}")
    return 1.0 / np.sqrt(covariances)


_PRECISION_CHOLESKY = {
    "full": _prec_chol_full,
    "tied": _prec_chol_tied,
    "diag": _prec_chol_diag,
    "spherical": _prec_chol_spherical,
}


def precision_cholesky(covariances, covariance_type: str, reg_covar: float = 0.0):
    """Cholesky factors of the precisions from covariances (float64).

    Raises a ValueError naming the component whose covariance is not positive definite.
    """
    covariances = np.asarray(covariances, dtype=np.float64)
    return _PRECISION_CHOLESKY[covariance_type](covariances, reg_covar)


def _flip(a):
    return a[..., ::-1, ::-1]


def precision_cholesky_from_precisions(precisions, covariance_type: str):
    """Upper-triangular ``U`` with ``precision = U @ U.T``, straight from precisions.

    Reversing rows and columns turns the lower Cholesky factor of the reversed matrix
    into the upper factor of the original: ``J P J = L L.T`` gives ``P = (J L J)(J L J).T``.
    """
    precisions = np.asarray(precisions, dtype=np.float64)
    if covariance_type in ("full", "tied"):
        return _flip(np.linalg.cholesky(_flip(precisions)))
    return np.sqrt(precisions)


def precisions_from_cholesky(prec_chol, covariance_type: str):
    """``precision = L @ L.T`` (full, tied) or ``L**2`` (diag, spherical)."""
    if covariance_type in ("full", "tied"):
        return prec_chol @ np.swapaxes(prec_chol, -1, -2)
    return prec_chol**2


def covariances_from_precisions(prec_chol, covariance_type: str):
    """Covariances as the inverse of ``L @ L.T``, computed as ``inv(L).T @ inv(L)``."""
    prec_chol = np.asarray(prec_chol, dtype=np.float64)
    if covariance_type in ("full", "tied"):
        inv = np.linalg.inv(prec_chol)
        return np.swapaxes(inv, -1, -2) @ inv
    return 1.0 / prec_chol**2


def log_det_cholesky(prec_chol, covariance_type: str, n_features: int):
    """``log det L`` per component, which is ``0.5 * log det(precision)``.

    For a triangular factor the determinant is the product of its diagonal, so the
    log-determinant is the sum of the logs of the diagonal.
    """
    if covariance_type == "full":
        return np.log(np.diagonal(prec_chol, axis1=1, axis2=2)).sum(axis=1)
    if covariance_type == "tied":
        return np.log(np.diagonal(prec_chol)).sum()
    if covariance_type == "diag":
        return np.log(prec_chol).sum(axis=1)
    return n_features * np.log(prec_chol)


def n_covariance_parameters(covariance_type: str, n_components: int, n_features: int) -> int:
    """Free parameters of the covariances of a mixture."""
    return {
        "full": n_components * n_features * (n_features + 1) // 2,
        "tied": n_features * (n_features + 1) // 2,
        "diag": n_components * n_features,
        "spherical": n_components,
    }[covariance_type]


def covariance_of_component(covariances, covariance_type: str, k: int, n_features: int):
    """The (D, D) covariance matrix of component ``k`` whatever the family."""
    if covariance_type == "full":
        return covariances[k]
    if covariance_type == "tied":
        return covariances
    if covariance_type == "diag":
        return np.diag(covariances[k])
    return np.eye(n_features) * covariances[k]
