"""The outlier matrix of issue 15, item 2: do fits survive one far outlier?

Old Faithful (272 rows) plus one row: the data's mean with feature 0 moved by ``f``
times that feature's standard deviation, f = 1e6, 1e8, 1e10, 1e12. For each family
(full, tied, diag, spherical), dtype (float64, float32) and factor:

* ``fit k=1..4``: ``GaussianMixture(k, covariance_type=family, random_state=0).fit``
  (default ``init_params="kmeans"``), and the same with ``init_params="robust"``;
* ``select``: ``select_model(X, n_components=range(1, 5), covariance_types=[family],
  random_state=0)`` (what ``gaussmix fit data.csv -k auto -c family`` runs);
* one ``select -c auto`` per dtype and factor (all four families).

Each cell says whether the fit completed (``ok``, else the exception), whether it was
flagged (``O``: a component holds the outlier alone, named by ``outlier_components_``, a
warning and the summary; ``D``: ``degenerate_``, a spurious maximizer), and the largest deviation of "the rest" of the model from
the fit without the outlier:

* the outlier's component is the one ``predict`` gives the outlier row; when it holds
  at most 1.5 effective points it is removed and the other weights renormalised;
  otherwise the outlier was absorbed (``abs``) and nothing is compared (k=1 always);
* the reference is the same call on the data without the outlier, with one component
  fewer (for select: the model select_model picks on the clean data);
* the deviation is the largest, over matched components (best permutation), of
  ``|mean difference| / sd`` of the feature, ``|covariance difference| / (sd_i sd_j)``
  (on the covariances as full matrices) and ``|weight difference|``; ``sd`` are the
  clean data's standard deviations. A cell is ``=`` when it is below the tolerance
  ``TOL`` (5e-3: EM stops at ``tol=1e-3`` of the mean log-likelihood, so two runs from
  different starts agree to about that), else the deviation is printed.

Run: ``python benchmarks/outlier_matrix.py`` (about 3 minutes on one core);
``--quick`` runs float64 and factors 1e6 and 1e12 only.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
import warnings

import numpy as np

from gaussmix import GaussianMixture, select_model
from gaussmix._degeneracy import outlier_components
from gaussmix.datasets import load_faithful

FAMILIES = ("full", "tied", "diag", "spherical")
FACTORS = (1e6, 1e8, 1e10, 1e12)
TOL = 5e-3


def _full(model):
    K, D = model.means_.shape
    return model._family().full_covariances(np.asarray(model.covariances_, np.float64), K, D)


def _rest(model, X, outlier_row):
    """(weights, means, covariances (K', D, D)) without the outlier's component, or None."""
    k_out = int(model.predict(X[outlier_row : outlier_row + 1])[0])
    n_out = float(model.weights_[k_out]) * X.shape[0]
    if model.n_components == 1 or n_out > 1.5:
        return None
    keep = [k for k in range(model.n_components) if k != k_out]
    w = np.asarray(model.weights_, np.float64)[keep]
    return w / w.sum(), np.asarray(model.means_, np.float64)[keep], _full(model)[keep]


def _deviation(rest, clean, sd):
    w, m, c = rest
    w0 = np.asarray(clean.weights_, np.float64)
    m0 = np.asarray(clean.means_, np.float64)
    c0 = _full(clean)
    if len(w) != len(w0):
        return np.inf
    scale = np.outer(sd, sd)
    best = np.inf
    for perm in itertools.permutations(range(len(w))):
        p = list(perm)
        dev = max(
            np.max(np.abs(m[p] - m0) / sd),
            np.max(np.abs(c[p] - c0) / scale),
            np.max(np.abs(w[p] - w0)),
        )
        best = min(best, dev)
    return float(best)


def _cell(make, X, X_clean_ref, sd, outlier_row):
    """'ok'/'D' + deviation mark for one configuration."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = make(X)
    except Exception as error:  # noqa: BLE001 - the matrix reports every failure
        return f"ERR:{type(error).__name__}", None
    outliers = outlier_components(
        model.weights_, model.means_, model.covariances_, model._family(), X.shape[0])
    flag = "D" if getattr(model, "degenerate_", False) else ("O" if outliers else "ok")
    rest = _rest(model, X, outlier_row)
    if rest is None:
        return f"{flag}/abs", None
    if X_clean_ref is None:
        return f"{flag}/--", None
    dev = _deviation(rest, X_clean_ref, sd)
    return (f"{flag}/=" if dev <= TOL else f"{flag}/{dev:.1g}"), dev


def _clean(make, X):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return make(X)
    except Exception:  # noqa: BLE001
        return None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    dtypes = (np.float64,) if args.quick else (np.float64, np.float32)
    factors = (1e6, 1e12) if args.quick else FACTORS
    base = load_faithful().astype(np.float64)
    sd = base.std(axis=0)
    n = base.shape[0]
    start = time.perf_counter()
    counts = {"configs": 0, "completed": 0, "flagged": 0, "compared": 0, "within": 0}
    worst = 0.0
    header = ["family", "dtype", "factor"] + [f"k={k}" for k in range(1, 5)] + [
        f"rk={k}" for k in range(1, 5)] + ["select"]
    print("cell: completed (ok), with a flagged outlier component (O) or flagged degenerate "
          "(D) / deviation of the rest from the "
          f"clean fit ('=' within {TOL:g}; 'abs': outlier absorbed, not compared)")
    print(" ".join(f"{h:>9}" for h in header))
    for dtype in dtypes:
        clean_X = base.astype(dtype)
        for family in FAMILIES:
            def fit(k, init, family=family):
                return lambda X: GaussianMixture(
                    k, covariance_type=family, init_params=init, random_state=0).fit(X)

            def select(family=family):
                return lambda X: select_model(
                    X, n_components=range(1, 5), covariance_types=[family], random_state=0
                ).best_estimator_

            refs = {}
            for k in range(1, 4):
                for init in ("kmeans", "robust"):
                    refs[(k, init)] = _clean(fit(k, init), clean_X)
            ref_select = _clean(select(), clean_X)
            for factor in factors:
                outlier = base.mean(axis=0).copy()
                outlier[0] += sd[0] * factor
                X = np.vstack([base, outlier]).astype(dtype)
                row = [family, np.dtype(dtype).name, f"{factor:.0e}"]
                for init in ("kmeans", "robust"):
                    for k in range(1, 5):
                        ref = refs.get((k - 1, init))
                        cell, dev = _cell(fit(k, init), X, ref, sd, n)
                        row.append(cell)
                        counts["configs"] += 1
                        counts["completed"] += not cell.startswith("ERR")
                        counts["flagged"] += cell[0] in "DO"
                        if dev is not None:
                            counts["compared"] += 1
                            counts["within"] += dev <= TOL
                            worst = max(worst, dev)
                # select on the clean data picks some K; compare with the outlier's
                # selection minus its outlier component.
                cell, dev = _cell(select(), X, ref_select, sd, n)
                row.append(cell)
                counts["configs"] += 1
                counts["completed"] += not cell.startswith("ERR")
                counts["flagged"] += cell[0] in "DO"
                if dev is not None:
                    counts["compared"] += 1
                    counts["within"] += dev <= TOL
                    worst = max(worst, dev)
                print(" ".join(f"{c:>9}" for c in row), flush=True)
        for factor in factors:
            outlier = base.mean(axis=0).copy()
            outlier[0] += sd[0] * factor
            X = np.vstack([base, outlier]).astype(dtype)

            def auto(X):
                return select_model(X, n_components=range(1, 5), random_state=0).best_estimator_

            ref = _clean(auto, clean_X)
            cell, dev = _cell(auto, X, ref, sd, n)
            chosen = _clean(auto, X)
            what = (f"{chosen.covariance_type} K={chosen.n_components}"
                    if chosen is not None else "-")
            counts["configs"] += 1
            counts["completed"] += not cell.startswith("ERR")
            print(f"select -c auto {np.dtype(dtype).name} {factor:.0e}: {cell} ({what}; clean: "
                  f"{ref.covariance_type} K={ref.n_components})", flush=True)
    print(f"\n{counts['completed']}/{counts['configs']} configurations completed, "
          f"{counts['flagged']} flagged (outlier component or degenerate); {counts['within']}/{counts['compared']} "
          f"compared fits within {TOL:g} of the clean fit (largest deviation {worst:.2g}); "
          f"{time.perf_counter() - start:.0f} s")
    return 0 if counts["completed"] == counts["configs"] else 1


if __name__ == "__main__":
    sys.exit(main())
