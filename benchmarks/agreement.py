"""Agreement of gaussmix with scikit-learn from the same starting point.

For each covariance type, dtype and shape: take the initial parameters of a scikit-learn
``max_iter=0`` fit (random rows as means), run 20 EM iterations with ``tol=0`` in both
libraries, and print the largest relative difference over weights, means, covariances
and the final lower bound (weights absolute; means and covariances relative to their
largest entry). Usage: ``python benchmarks/agreement.py`` (needs scikit-learn).
"""

import warnings

import numpy as np
from sklearn.mixture import GaussianMixture as SklearnGM

from gaussmix import GaussianMixture

SHAPES = [(500, 2, 3), (2000, 5, 4), (300, 8, 2)]


def _data(rng, n, d, k, dtype):
    parts = [
        rng.normal(loc=rng.normal(scale=4, size=d), scale=rng.uniform(0.5, 2), size=(n // k, d))
        for _ in range(k)
    ]
    return np.vstack(parts).astype(dtype)


def _max_difference(a, b):
    def rel(x, y):
        return float(np.max(np.abs(x - y)) / np.max(np.abs(x)))

    return max(
        rel(a.means_, b.means_),
        rel(a.covariances_, b.covariances_),
        float(np.max(np.abs(a.weights_ - b.weights_))),
        abs(a.lower_bound_ - b.lower_bound_) / abs(a.lower_bound_),
    )


def main():
    rng = np.random.default_rng(1)
    print("| dtype | covariance | worst relative difference over shapes |")
    print("|---|---|---|")
    for dtype in (np.float64, np.float32):
        for covariance_type in ("full", "tied", "diag", "spherical"):
            worst = 0.0
            for n, d, k in SHAPES:
                X = _data(rng, n, d, k, dtype)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    start = SklearnGM(
                        k, covariance_type=covariance_type, max_iter=0,
                        init_params="random_from_data", random_state=0,
                    ).fit(X)
                    chol = start.precisions_cholesky_
                    if covariance_type in ("full", "tied"):
                        precisions = chol @ np.swapaxes(chol, -1, -2)
                    else:
                        precisions = chol**2
                    kw = dict(
                        n_components=k, covariance_type=covariance_type,
                        weights_init=start.weights_ / start.weights_.sum(),
                        means_init=start.means_, precisions_init=precisions,
                        tol=0, max_iter=20,
                    )
                    theirs = SklearnGM(**kw).fit(X)
                    ours = GaussianMixture(**kw).fit(X)
                worst = max(worst, _max_difference(theirs, ours))
            print(f"| {np.dtype(dtype).name} | {covariance_type} | {worst:.2e} |")


if __name__ == "__main__":
    main()
