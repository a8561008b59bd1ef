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
warning and the summary; ``D``: ``degenerate_``, a spurious maximizer), and the largest
deviation of "the rest" of the model from the fit without the outlier:

* the outlier's component is the one ``predict`` gives the outlier row; when it holds
  at most 1.5 effective points it is removed and the other weights renormalised;
  otherwise the outlier was absorbed (``abs``) and nothing is compared (k=1 always);
* the reference is the same call on the data without the outlier, with one component
  fewer: for select over K = 1..4, select over K = 1..3 on the clean data; for
  ``-c auto``, the clean selection of the type chosen, with one component fewer (the
  type chosen may differ from the clean ``-c auto`` choice: the outlier's own covariance,
  at ``reg_covar``, gains ``-D/2 log(2 pi reg_covar)`` in the families where it has one);
* the deviation is the largest, over matched components (best permutation), of
  ``|mean difference| / sd`` of the feature, ``|covariance difference| / (sd_i sd_j)``
  (on the covariances as full matrices) and ``|weight difference|``; ``sd`` are the
  clean data's standard deviations. A cell is ``=`` when it is below the tolerance
  ``TOL`` (5e-3: EM stops at ``tol=1e-3`` of the mean log-likelihood, so two runs from
  different starts agree to about that), else the deviation is printed with, in
  parentheses, the rest's log-likelihood on the clean rows minus the clean fit's (>= 0:
  another local maximum, at least as good).

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


def _rest_log_likelihood(model, X, outlier_row):
    """Total log-likelihood on the clean rows of the model without the outlier's
    component (weights renormalised)."""
    k_out = int(model.predict(X[outlier_row : outlier_row + 1])[0])
    keep = [k for k in range(model.n_components) if k != k_out]
    w = model.weights_[keep] / model.weights_[keep].sum()
    prec = model.precisions_ if model.covariance_type == "tied" else model.precisions_[keep]
    clean = np.delete(X, outlier_row, axis=0)
    rest = GaussianMixture(len(keep), covariance_type=model.covariance_type,
                           weights_init=w, means_init=model.means_[keep],
                           precisions_init=prec, max_iter=0).fit(clean)
    return rest.score(clean) * len(clean)


def _cell(make, X, reference, sd, outlier_row):
    """(cell text, deviation or None, model or None) for one configuration.

    ``reference(model)`` gives the clean fit to compare with (or None).
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = make(X)
    except Exception as error:
        return f"ERR:{type(error).__name__}", None, None
    outliers = outlier_components(
        model.weights_, model.means_, model.covariances_, model._family(), X.shape[0])
    flag = "D" if getattr(model, "degenerate_", False) else ("O" if outliers else "ok")
    rest = _rest(model, X, outlier_row)
    if rest is None:
        return f"{flag}/abs", None, model
    ref = reference(model)
    if ref is None:
        return f"{flag}/--", None, model
    dev = _deviation(rest, ref, sd)
    if dev <= TOL:
        return f"{flag}/=", dev, model
    # Another local maximum? The rest's log-likelihood on the clean rows against the
    # clean fit's.
    clean = np.delete(X, outlier_row, axis=0)
    gain = _rest_log_likelihood(model, X, outlier_row) - ref.score(clean) * len(clean)
    return f"{flag}/{dev:.1g}({gain:+.1f})", dev, model


def _clean(make, X):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return make(X)
    except Exception:
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
    header = ["family", "dtype", "factor"] + [f"k={k}" for k in range(1, 5)] + [
        f"rk={k}" for k in range(1, 5)] + ["select"]
    print("cell: completed (ok), with a flagged outlier component (O) or flagged degenerate "
          "(D) / deviation of the rest from the "
          f"clean fit ('=' within {TOL:g}; 'abs': outlier absorbed, not compared)")
    print(" ".join(f"{h:>9}" for h in header))

    def count(cell, dev):
        counts["configs"] += 1
        counts["completed"] += not cell.startswith("ERR")
        counts["flagged"] += cell[0] in "DO"
        if dev is not None:
            counts["compared"] += 1
            counts["within"] += dev <= TOL
            nonlocal_worst.append(dev)

    nonlocal_worst: list[float] = []
    for dtype in dtypes:
        clean_X = base.astype(dtype)
        for family in FAMILIES:
            def fit(k, init, family=family):
                return lambda Z: GaussianMixture(
                    k, covariance_type=family, init_params=init, random_state=0).fit(Z)

            def select(ks, family=family):
                return lambda Z: select_model(
                    Z, n_components=ks, covariance_types=[family], random_state=0
                ).best_estimator_

            refs = {}
            for k in range(1, 4):
                for init in ("kmeans", "robust"):
                    refs[(k, init)] = _clean(fit(k, init), clean_X)
            ref_select = _clean(select(range(1, 4)), clean_X)
            for factor in factors:
                outlier = base.mean(axis=0).copy()
                outlier[0] += sd[0] * factor
                X = np.vstack([base, outlier]).astype(dtype)
                row = [family, np.dtype(dtype).name, f"{factor:.0e}"]
                for init in ("kmeans", "robust"):
                    for k in range(1, 5):
                        ref = refs.get((k - 1, init))
                        cell, dev, _ = _cell(fit(k, init), X, lambda m, ref=ref: ref, sd, n)
                        row.append(cell)
                        count(cell, dev)
                # select over K = 1..4 with the outlier against select over K = 1..3
                # without it.
                cell, dev, _ = _cell(select(range(1, 5)), X, lambda m, r=ref_select: r, sd, n)
                row.append(cell)
                count(cell, dev)
                print(" ".join(f"{c:>9}" for c in row), flush=True)
        clean_auto = _clean(
            lambda X: select_model(X, n_components=range(1, 4), random_state=0).best_estimator_,
            clean_X,
        )
        for factor in factors:
            outlier = base.mean(axis=0).copy()
            outlier[0] += sd[0] * factor
            X = np.vstack([base, outlier]).astype(dtype)

            def auto(X):
                return select_model(X, n_components=range(1, 5), random_state=0).best_estimator_

            def same_type(model, clean_X=clean_X):
                # The clean selection of the chosen type with one component fewer.
                return _clean(lambda Z: select_model(
                    Z, n_components=[model.n_components - 1],
                    covariance_types=[model.covariance_type], random_state=0,
                ).best_estimator_, clean_X)

            cell, dev, chosen = _cell(auto, X, same_type, sd, n)
            count(cell, dev)
            what = (f"{chosen.covariance_type} K={chosen.n_components}"
                    if chosen is not None else "-")
            print(f"select -c auto {np.dtype(dtype).name} {factor:.0e}: {cell} ({what}; "
                  f"clean: {clean_auto.covariance_type} K={clean_auto.n_components})",
                  flush=True)
    worst = max(nonlocal_worst, default=0.0)
    print(f"\n{counts['completed']}/{counts['configs']} configurations completed, "
          f"{counts['flagged']} flagged (outlier component or degenerate); "
          f"{counts['within']}/{counts['compared']} "
          f"compared fits within {TOL:g} of the clean fit (largest deviation {worst:.2g}); "
          f"{time.perf_counter() - start:.0f} s")
    return 0 if counts["completed"] == counts["configs"] else 1


if __name__ == "__main__":
    sys.exit(main())
