"""Shared data generators, initial parameters and helpers of the gaussmix test suite.

Everything here is deterministic (seeded) and small: the whole suite must run in well under
two minutes on two cores.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
INIT_PARAMS = ("kmeans", "k-means++", "random", "random_from_data")

# Applied per test (not loaded globally, so other test modules keep their own settings):
# fixed examples, no deadline (EM fits take milliseconds to a second).
PROPERTY_SETTINGS = settings(
    deadline=None,
    max_examples=25,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def make_blobs(n_samples, n_features, n_components, *, seed=0, dtype=np.float64, spread=4.0,
               offset=0.0, scales=None, weights=None):
    """Draw from a known Gaussian mixture; returns (X, labels, means, covariances).

    Component means are N(offset, spread^2) per feature; each covariance is A A^T with
    A = I + 0.4 * N(0, 1) (times ``scales`` per feature when given).
    """
    rng = np.random.default_rng(seed)
    means = offset + rng.normal(0.0, spread, size=(n_components, n_features))
    A = np.eye(n_features) + 0.4 * rng.normal(size=(n_components, n_features, n_features))
    if scales is not None:
        A = A * np.asarray(scales, dtype=np.float64)[None, :, None]
    if weights is None:
        labels = rng.integers(0, n_components, size=n_samples)
    else:
        labels = rng.choice(n_components, size=n_samples, p=weights)
    Z = rng.normal(size=(n_samples, n_features))
    X = means[labels] + np.einsum("nd,nde->ne", Z, np.swapaxes(A, 1, 2)[labels])
    covariances = A @ np.swapaxes(A, 1, 2)
    return X.astype(dtype), labels, means, covariances


def random_precisions(covariance_type, n_components, n_features, rng, scale=1.0):
    """Well-conditioned precision matrices shaped for ``covariance_type``."""
    def spd():
        B = 0.3 * rng.normal(size=(n_features, n_features))
        return (np.eye(n_features) + B @ B.T) / scale

    if covariance_type == "full":
        return np.stack([spd() for _ in range(n_components)])
    if covariance_type == "tied":
        return spd()
    if covariance_type == "diag":
        return rng.uniform(0.5, 2.0, size=(n_components, n_features)) / scale
    return rng.uniform(0.5, 2.0, size=n_components) / scale


def initial_parameters(X, n_components, covariance_type, *, seed=1, scale=1.0):
    """weights_init, means_init, precisions_init (float64) as keyword arguments.

    Means are distinct rows of X, weights a random point of the simplex, precisions random
    well-conditioned matrices (divided by ``scale``, the squared scale of the data).
    """
    rng = np.random.default_rng(seed)
    X64 = np.asarray(X, dtype=np.float64)
    idx = rng.choice(X64.shape[0], size=n_components, replace=False)
    weights = rng.uniform(0.5, 1.5, size=n_components)
    weights /= weights.sum()
    return {
        "weights_init": weights,
        "means_init": X64[idx].copy(),
        "precisions_init": random_precisions(
            covariance_type, n_components, X64.shape[1], rng, scale=scale
        ),
    }


def precision_matrices(model):
    """Full (K, D, D) precision matrices of a fitted model, whatever its covariance type."""
    P = np.asarray(model.precisions_, dtype=np.float64)
    K, D = model.means_.shape
    if model.covariance_type == "full":
        return P
    if model.covariance_type == "tied":
        return np.broadcast_to(P, (K, D, D))
    if model.covariance_type == "diag":
        return np.stack([np.diag(p) for p in P])
    return np.stack([np.eye(D) * p for p in P])


def covariance_matrices(model):
    """Full (K, D, D) covariance matrices of a fitted model."""
    C = np.asarray(model.covariances_, dtype=np.float64)
    K, D = model.means_.shape
    if model.covariance_type == "full":
        return C
    if model.covariance_type == "tied":
        return np.broadcast_to(C, (K, D, D))
    if model.covariance_type == "diag":
        return np.stack([np.diag(c) for c in C])
    return np.stack([np.eye(D) * c for c in C])


def cholesky_product(L, covariance_type):
    """The precision a precisions_cholesky_ factor stands for (L L^T, or L^2)."""
    L = np.asarray(L, dtype=np.float64)
    if covariance_type in ("full", "tied"):
        return L @ np.swapaxes(L, -1, -2)
    return L**2


def assert_close(actual, desired, rtol, name="", atol_scale=None):
    """assert_allclose with an absolute floor of rtol * max|desired| (tiny entries)."""
    actual = np.asarray(actual, dtype=np.float64)
    desired = np.asarray(desired, dtype=np.float64)
    scale = np.max(np.abs(desired)) if atol_scale is None else atol_scale
    np.testing.assert_allclose(actual, desired, rtol=rtol, atol=rtol * scale, err_msg=name)


def max_rel_diff(actual, desired):
    """max |a - d| / max |d|: the figure reported for the agreement tests."""
    actual = np.asarray(actual, dtype=np.float64)
    desired = np.asarray(desired, dtype=np.float64)
    return float(np.max(np.abs(actual - desired)) / max(np.max(np.abs(desired)), 1e-300))


@pytest.fixture
def blobs():
    """Three well separated 2-D clusters (450 points) and their labels."""
    X, labels, _, _ = make_blobs(450, 2, 3, seed=0, spread=5.0)
    return X, labels


def publish_outputs(folder, names, text):
    """A finished run's publication: every file of ``names`` staged with ``text`` and
    committed into ``folder`` (so recorded as gaussmix's)."""
    from gaussmix.io import staged_outputs

    with staged_outputs(str(folder), outputs=names) as out:
        for name in names:
            out.stage(name, text)
        out.commit()
