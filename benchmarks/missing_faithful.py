"""The README's worked example: Old Faithful with 20% of its cells blanked.

Blanks 20% of the cells at random (seed 0; never both cells of a row, which would leave a
row with nothing observed), fits a two-component full mixture by exact EM on the
incomplete rows, and prints it beside the fit of the complete data, then the error of
``impute`` against the true values, beside filling with column means.

Usage::

    python benchmarks/missing_faithful.py
"""

from __future__ import annotations

import numpy as np

from gaussmix import GaussianMixture
from gaussmix.datasets import load_faithful


def main() -> None:
    X = load_faithful()
    rng = np.random.default_rng(0)
    n_cells = round(0.2 * X.size)
    rows = rng.choice(X.shape[0], size=n_cells, replace=False)  # one cell per row
    cols = rng.integers(0, X.shape[1], size=n_cells)
    holes = X.copy()
    holes[rows, cols] = np.nan
    print(f"Old Faithful, {X.shape[0]} rows: {n_cells} cells blanked in {len(rows)} rows")

    def fit(data):
        return GaussianMixture(2, covariance_type="full", init_params="robust", tol=1e-8,
                               random_state=0).fit(data)

    complete, incomplete = fit(X), fit(holes)
    order_c, order_i = np.argsort(complete.means_[:, 0]), np.argsort(incomplete.means_[:, 0])
    for name, model, order in (("complete data", complete, order_c),
                               ("20% blanked", incomplete, order_i)):
        weights = ", ".join(f"{w:.3f}" for w in model.weights_[order])
        means = "; ".join(", ".join(f"{v:.2f}" for v in m) for m in model.means_[order])
        print(f"  {name:14s} weights {weights}   means {means}")
    filled = incomplete.impute(holes)
    column_means = np.where(np.isnan(holes), np.nanmean(holes, axis=0), holes)
    for name, guess in (("impute", filled), ("column means", column_means)):
        err = guess[rows, cols] - X[rows, cols]
        rmse = np.sqrt(np.mean(err**2))
        print(f"  RMSE of the blanked cells, {name:12s}: {rmse:.2f}")


if __name__ == "__main__":
    main()
