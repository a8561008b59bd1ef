"""How far float32 fits land from the float64 fit of the same data, from the same start.

For each data set and covariance type: fit the float32 data in float32 (gaussmix, and
scikit-learn when installed) and the same numbers cast to float64 in float64 (gaussmix, the
reference), all from the same weights/means/precisions, ``tol=0``, 20 EM iterations. Prints
the largest difference relative to the largest entry of the reference, for the
covariances, the precisions and the means, and the relative difference of the lower bounds.

Data sets: the benchmark's full-2d and full-32d data (``bench_em.make_data``, 100,000 rows),
three blobs in 3-D (the data of the block-size test), and tight clusters around 1e4
(unit variances, means 8 apart: where the textbook moments cancel in float32).

Usage: ``python benchmarks/float32_accuracy.py``.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_em
from gaussmix import GaussianMixture

try:
    from sklearn.mixture import GaussianMixture as SklearnGM
except ImportError:  # scikit-learn is a bench/test extra
    SklearnGM = None


def _blobs(n, d, k, seed, spread, offset=0.0):
    rng = np.random.default_rng(seed)
    centres = offset + rng.normal(scale=spread, size=(k, d))
    labels = rng.integers(k, size=n)
    return centres[labels] + rng.normal(size=(n, d)) * rng.uniform(0.5, 1.5, size=(k, d))[labels]


def datasets():
    for name, d, k in (("bench full-2d", 2, 8), ("bench full-32d", 32, 16)):
        yield name, bench_em.make_data(100_000, d, k, "f32"), k
    yield "blobs 3-D", _blobs(500, 3, 3, seed=17, spread=4.0).astype(np.float32), 3
    yield "clusters near 1e4", _blobs(3000, 2, 3, seed=5, spread=8.0, offset=1e4).astype(
        np.float32), 3


def _start(X, k, covariance_type):
    init = bench_em.make_init(X, k, covariance_type)
    return {key: np.asarray(value, dtype=np.float64) for key, value in init.items()}


def _errors(fit, reference):
    def rel(a, b):
        return float(np.max(np.abs(np.asarray(a, np.float64) - b)) / np.max(np.abs(b)))

    return (
        rel(fit.covariances_, reference.covariances_),
        rel(fit.precisions_, reference.precisions_),
        rel(fit.means_, reference.means_),
        abs(fit.lower_bound_ - reference.lower_bound_) / abs(reference.lower_bound_),
    )


def main():
    print("| data | covariance | library (float32) | covariances | precisions | means "
          "| lower bound |")
    print("|---|---|---|---|---|---|---|")
    for name, X32, k in datasets():
        for covariance_type in ("full", "tied", "diag", "spherical"):
            start = _start(X32, k, covariance_type)
            kw = dict(n_components=k, covariance_type=covariance_type, tol=0, max_iter=20,
                      init_params="random_from_data")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                reference = GaussianMixture(**kw, **start).fit(X32.astype(np.float64))
                start32 = {key: value.astype(np.float32) for key, value in start.items()}
                fits = [("gaussmix", GaussianMixture)]
                if SklearnGM is not None:
                    fits.append(("scikit-learn", SklearnGM))
                for library, estimator in fits:
                    try:
                        fit = estimator(**kw, **start32).fit(X32)
                    except ValueError as exc:  # scikit-learn issue 30382, for example
                        reason = str(exc).split(".")[0].split(" because ")[-1].split(" (")[0]
                        cells = f"fit failed ({reason}) | | | "
                    else:
                        cells = " | ".join(f"{e:.1e}" for e in _errors(fit, reference))
                    print(f"| {name} | {covariance_type} | {library} | {cells} |")


if __name__ == "__main__":
    main()
