"""A random search of fits: anything but a clear error, or a broken invariant, is reported.

Every case draws a small data set (clusters, repeated values, a constant feature, rows all
equal, duplicated rows, one far row, very small or very large scales, float32 or float64),
one of the 18 covariance names, a number of components, an initialisation and a
``reg_covar`` of 0 or 1e-6, and runs one of:

* ``fit``: then ``predict_proba`` (rows summing to one), ``score_samples`` (finite),
  ``sample`` and ``bic``; and, with ``reg_covar=0`` on a fit not flagged degenerate and
  without a component of one row, EM never lowering the log-likelihood by more than its
  rounding (10 eps times the covariances' largest condition number, at least 100 eps,
  relative: a float32 log-likelihood itself rounds by a few eps per row):
  with ``reg_covar`` > 0 it may fall by the regularisation's gap (docs/math.md, section
  5), and a component on one row (a far row's own) or collapsed on repeated values has an
  unbounded likelihood, whose floor the first step may move;
* ``missing``: a fit of the data with a share of its cells NaN, the same checks;
* ``weights``: integer sample weights give the fit of the rows repeated (same start);
* ``partial``: ``partial_fit`` on a few chunks, then finite scores;
* ``select``: ``select_model`` over K = 1..3 of scikit-learn's four or mclust's 14 models
  (in odd cases also with ``n_jobs=2``, whose table must be the one process's up to
  rounding: the same grid points fitted and failed, and on data in general position
  (normal, scaled, clusters) the same flagged and log-likelihoods within 1e-6; repeated
  values, a constant feature, duplicated or far rows make ridges and ties that
  rounding-level differences tip to other maxima);
* ``prior``: a fit under mclust's default conjugate prior (``prior="default"``);
* ``save``: a model file round trip predicts the same scores, bit for bit.

A ValueError is the expected way to refuse data (collapsed components, too few rows...): it
counts as a problem only when its message is too short to name the problem, or when it is
NumPy's LinAlgError (words from inside NumPy). Every other exception is a problem, shown
with its traceback's end.

    python benchmarks/fuzz_fits.py                       # 2000 cases from seed 0
    python benchmarks/fuzz_fits.py --cases 20000 --seed 3
    python benchmarks/fuzz_fits.py --seed 3 --cases 500 --only 417   # rerun one case
    python benchmarks/fuzz_fits.py --cases 200 --max-rows 6000      # larger data

Exit code 1 if any case was a problem. It found six bugs when written, all fixed with
tests (tests/test_extreme_values.py, tests/test_fuzz_fits.py): float32 full-covariance
fits returning NaN parameters on a component stretched by one far row; ``select_model``
and ``init_params="robust"`` failing with an IndexError on data whose rows are all equal;
VEE returning NaN parameters with ``reg_covar=0`` and a component on one row; NumPy's
LinAlgError from ``select_model``'s degeneracy check of a failed update, from ``sample()``
on a float32 covariance that rounding left indefinite, and from the VEV and VVE updates
of a component without spread.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import traceback
import warnings

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, os.pardir, "src"))

from gaussmix import GaussianMixture, load, select_model  # noqa: E402

MODELS = ("EII", "VII", "EEI", "VEI", "EVI", "VVI", "EEE", "VEE", "EVE", "VVE", "EEV", "VEV",
          "EVV", "VVV", "full", "tied", "diag", "spherical")
INITS = ("kmeans", "k-means++", "random", "random_from_data", "robust")
KINDS = ("normal", "repeated", "scaled", "clusters", "flat feature", "duplicated rows",
         "far row", "all equal")
WHATS = ("fit", "fit", "fit", "missing", "weights", "partial", "select", "save")
# the names with mclust's conjugate prior (VEE, EVE, VVE and EVV have none)
PRIOR_MODELS = ("EII", "VII", "EEI", "VEI", "EVI", "VVI", "EEE", "EEV", "VEV", "VVV", "full",
                "tied", "diag", "spherical")


def draw_data(rng, kind, max_rows=400):
    n, d = int(rng.integers(3, max_rows)), int(rng.integers(1, 6))
    X = rng.normal(size=(n, d))
    if kind == "repeated":
        X = np.round(X, 1)
    elif kind == "scaled":
        X = X * 10.0 ** rng.integers(-6, 7) + 10.0 ** rng.integers(-3, 8)
    elif kind == "clusters":
        k = int(rng.integers(1, 5))
        X = X + rng.normal(scale=6.0, size=(k, d))[rng.integers(0, k, n)]
    elif kind == "flat feature":
        X[:, 0] = 3.0
    elif kind == "duplicated rows":
        X = X[: max(2, n // 10)][rng.integers(0, max(2, n // 10), n)]
    elif kind == "far row":
        X[0] = 1e6
    elif kind == "all equal":
        X[:] = X[0]
    return X.astype(np.float32) if rng.random() < 0.3 else X


def _condition(model) -> float:
    """The largest condition number of the model's covariances."""
    cov = np.asarray(model.covariances_, dtype=np.float64)
    if cov.ndim == 1 or (cov.ndim == 2 and model.covariance_type not in ("tied", "EEE")):
        var = cov[:, None] if cov.ndim == 1 else cov  # (K,) or (K, D) variances
        return float(np.max(var.max(axis=1) / var.min(axis=1)))
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.max(np.linalg.cond(cov)))


def check_fit(model, X, problems, desc):
    """The invariants of a fitted model on the data it was fitted to."""
    proba = model.predict_proba(X)
    if not np.allclose(proba.sum(axis=1), 1.0, atol=1e-5):
        problems.append((desc, "responsibilities do not sum to one"))
    if not np.all(np.isfinite(model.score_samples(X))):
        problems.append((desc, "score_samples not finite"))
    if not np.all(np.isfinite(model.weights_)):
        problems.append((desc, "weights not finite"))
    bounds = np.asarray(model.lower_bounds_, dtype=np.float64)
    lone = np.min(model.weights_) * X.shape[0] < 1.5  # a component of one (far) row
    if (model.reg_covar == 0.0 and not getattr(model, "degenerate_", False) and not lone
            and bounds.size > 1):
        eps = np.finfo(np.dtype(model.means_.dtype)).eps
        slack = 10 * eps * max(_condition(model), 10.0) * np.abs(bounds).max() + 1e-12
        fall = np.diff(bounds).min()
        if fall < -slack:
            problems.append((desc, f"the log-likelihood fell by {-fall:.3g} per row "
                                   f"(rounding allows {slack:.3g})"))


_GENERAL_POSITION = ("normal", "scaled", "clusters")


def _table_differences(one, other, kind) -> list[str]:
    """How ``other`` (a selection with n_jobs) departs from ``one`` (in one process) beyond
    rounding: a grid point fitted in one only; on data in general position, also flagged
    degenerate in one only, or a log-likelihood 1e-6 (relative) away."""
    out = []
    for a, b in zip(one.table, other.table, strict=True):
        point = f"{a['covariance_type']},{a['n_components']}"
        la, lb = a["log_likelihood"], b["log_likelihood"]
        if (la is None) != (lb is None):
            out.append(f"{point} fitted in one run only")
        elif kind not in _GENERAL_POSITION or la is None:
            continue
        elif (a["degenerate"] is None) != (b["degenerate"] is None):
            out.append(f"{point} flagged degenerate in one run only")
        elif abs(la - lb) > 1e-6 * max(1, abs(la)):
            out.append(f"{point}: log-likelihood {la:.6g} in one process, {lb:.6g} dealt")
    return out


def draw_case(rng, case, max_rows=400) -> dict:
    """Every random choice of a case, drawn up front (a case reruns from its number)."""
    kind = KINDS[rng.integers(len(KINDS))]
    X = draw_data(rng, kind, max_rows)
    c = dict(case=case, kind=kind, X=X, what=WHATS[rng.integers(len(WHATS))])
    c["settings"] = dict(
        n_components=int(rng.integers(1, 6)), covariance_type=MODELS[rng.integers(len(MODELS))],
        init_params=INITS[rng.integers(len(INITS))], reg_covar=0.0 if rng.random() < 0.5
        else 1e-6, random_state=int(rng.integers(1000)), max_iter=200, tol=1e-6)
    c["missing"] = rng.random(X.shape) < rng.uniform(0.01, 0.4)
    c["repeats"] = rng.integers(0, 3, size=X.shape[0])
    c["chunks"] = int(rng.integers(1, 6))
    c["grid"] = "sklearn" if rng.random() < 0.6 else "all"
    if c["what"] == "fit" and case % 3 == 2:  # (no draw: the cases of a seed stay the same)
        c["what"] = "prior"
        c["prior_model"] = PRIOR_MODELS[case // 3 % len(PRIOR_MODELS)]
    s = c["settings"]
    c["desc"] = (f"case {case}: {c['what']} of {kind} data {X.shape} {X.dtype}, "
                 f"{c.get('prior_model', s['covariance_type'])}, K={s['n_components']}, "
                 f"init_params={s['init_params']!r}, reg_covar={s['reg_covar']:g}, "
                 f"random_state={s['random_state']}")
    return c


def run_case(c, tmp, problems):
    X, what, settings, desc = c["X"], c["what"], c["settings"], c["desc"]
    K, init = settings["n_components"], settings["init_params"]
    if what == "fit":
        model = GaussianMixture(**settings).fit(X)
        check_fit(model, X, problems, desc)
        model.sample(5)
        model.bic(X)
    elif what == "missing":
        Xm = X.copy()
        Xm[c["missing"]] = np.nan
        model = GaussianMixture(**settings).fit(Xm)
        check_fit(model, Xm, problems, desc)
    elif what == "weights":
        repeats = c["repeats"]
        if repeats.sum() <= 3 * K or init == "robust":
            return
        start = GaussianMixture(**settings).fit(X)
        same = dict(settings, weights_init=start.weights_, means_init=start.means_,
                    precisions_init=start.precisions_, max_iter=20, tol=0.0)
        weighted = GaussianMixture(**same).fit(X, sample_weight=repeats.astype(np.float64))
        repeated = GaussianMixture(**same).fit(np.repeat(X, repeats, axis=0))
        scale = np.abs(X).max() + 1.0
        if not np.allclose(weighted.means_, repeated.means_, rtol=1e-4, atol=1e-4 * scale):
            gap = np.max(np.abs(weighted.means_ - repeated.means_))
            problems.append((desc, f"weights differ from repeated rows: means {gap:.3g} apart"))
    elif what == "partial":
        model = GaussianMixture(**dict(settings, init_params="kmeans" if init == "robust"
                                       else init))
        for chunk in np.array_split(X, c["chunks"]):
            if chunk.shape[0] >= K:
                model.partial_fit(chunk)
        if hasattr(model, "means_") and not np.all(np.isfinite(model.score_samples(X))):
            problems.append((desc, "partial_fit: score_samples not finite"))
    elif what == "prior":  # MAP EM under mclust's default prior
        model = GaussianMixture(**dict(settings, covariance_type=c["prior_model"],
                                       prior="default")).fit(X)
        if not np.all(np.isfinite(model.score_samples(X))):
            problems.append((desc, "prior: score_samples not finite"))
        model.sample(3)
    elif what == "select":
        grid = dict(n_components=[1, 2, 3], covariance_types=c["grid"],
                    random_state=settings["random_state"])
        result = select_model(X, **grid)
        if not np.isfinite(result.ranked()[0]["bic"]):
            problems.append((desc, "select_model: the best BIC is not finite"))
        if c["case"] % 2:  # the same table from two processes (no draw: see draw_case)
            dealt = select_model(X, n_jobs=2, **grid)
            problems.extend((desc, f"select_model(n_jobs=2): {what}")
                            for what in _table_differences(result, dealt, kind=c["kind"]))
    else:
        model = GaussianMixture(**settings).fit(X)
        path = os.path.join(tmp, f"case{c['case']}.gmm")
        model.save(path)
        if not np.array_equal(model.score_samples(X), load(path).score_samples(X)):
            problems.append((desc, "a model file round trip changed score_samples"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=2000, help="cases to run")
    parser.add_argument("--seed", type=int, default=0, help="seed of the cases")
    parser.add_argument("--show", type=int, default=10, help="problems to print")
    parser.add_argument("--max-rows", type=int, default=400,
                        help="rows of the data sets: up to this many (more than 2,000 takes "
                             "select_model's race sample, more than 1,000 its threads)")
    parser.add_argument("--only", type=lambda t: {int(x) for x in t.split(",")}, default=None,
                        help="run only these case numbers (comma-separated; to rerun one)")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    problems: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (convergence, degeneracy, constant features...)
        for case in range(args.cases):
            c = draw_case(rng, case, args.max_rows)
            if args.only is not None and case not in args.only:
                continue
            try:
                run_case(c, tmp, problems)
            except np.linalg.LinAlgError as exc:  # (a ValueError, but NumPy's own words)
                text = "".join(traceback.format_exception(exc))
                problems.append((c["desc"], text[-1200:]))
            except ValueError as exc:
                if len(str(exc)) < 40:
                    problems.append((c["desc"], f"a terse ValueError: {exc!r}"))
            except Exception as exc:  # what the search looks for
                text = "".join(traceback.format_exception(exc))
                problems.append((c["desc"], text[-1200:]))
    print(f"{args.cases} cases from seed {args.seed}: {len(problems)} problem(s)")
    for desc, what in problems[: args.show]:
        print(f"--- {desc}\n{what}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
