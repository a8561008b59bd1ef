#!/usr/bin/env python
"""Time model selection (``select_model``) against R's mclust (``mclustBIC``), side by side.

Usage::

    python benchmarks/bench_select.py                  # every data set, mclust if installed
    python benchmarks/bench_select.py --repeats 3      # median of 3 timings per library
    python benchmarks/bench_select.py --only faithful,iris --no-mclust
    python benchmarks/bench_select.py --data-dir DIR   # keep the CSV files there
    python benchmarks/bench_select.py --grid sklearn   # only the 4-model grid (or: all)

Method
------
* Grids (``--grid``, default both, one table each):

  - ``sklearn``: K = 1..9 x {spherical, diag, tied, full}, which mclust names VII, VVI, EEE,
    VVV. gaussmix runs ``select_model(X, covariance_types="sklearn", random_state=0)``;
    mclust runs ``mclustBIC(X, G=1:9, modelNames=c("VII","VVI","EEE","VVV"))``.
  - ``all``: K = 1..9 x mclust's 14 models. gaussmix runs ``select_model(X,
    random_state=0)`` (its default grid); mclust runs ``mclustBIC(X, G=1:9)`` (its default
    grid), both with their other defaults.
* Data sets: the bundled Old Faithful (272 x 2), scikit-learn's iris (150 x 4, the four
  measurements), and two synthetic sets of 5,000 x 5 and 20,000 x 5 rows drawn from a fixed
  seed from a mixture of 4 Gaussians with random full covariances. Every set is written to a
  CSV file (17 significant digits) and both libraries read that file, so they see the very
  same numbers.
* Timing: gaussmix's time is the wall-clock time of the ``select_model`` call alone (the data
  already in memory, the module already imported, one warm-up call on a tiny grid before
  the first timing). mclust's time is measured inside R, ``proc.time()`` before and after
  the ``mclustBIC`` call alone (elapsed seconds; reading the CSV and loading the package are
  outside), in one ``Rscript`` process for all data sets, after one warm-up call.
  With ``--repeats R`` each library is timed R times per data set and the median is shown.
* Rounds (``--rounds N``, default 1): the whole comparison of a grid (mclust on every set,
  then gaussmix on every set; gaussmix first in every other round) runs N times, and per
  data set the table shows the median of each library's times and the median of the
  per-round ratios (each round's two timings close in time, so that a change in the
  machine's load between them moves one round, not the verdict); the per-round ratios are
  printed under the table. The targets are judged on those medians.
* BIC: mclust reports ``2 log L - p log n`` (higher is better), gaussmix ``-2 log L + p log n``
  (lower is better). The table shows both best BICs in gaussmix's sign, so "equal or better"
  means gaussmix's value is not larger than mclust's. On more than 2,000 rows mclust's
  hierarchical start runs on a random subset of 2,000 rows (``mclust.options("subset")``,
  R's generator, not seeded here: what a user gets), so its grid points can move between
  calls and rounds; its best BIC on the synthetic sets has not in these runs.
* The machine is shared: the load average at the start and the end is printed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

GRID_K = range(1, 10)
TYPES = ("spherical", "diag", "tied", "full")
MCLUST = {"spherical": "VII", "diag": "VVI", "tied": "EEE", "full": "VVV"}
DATASETS = ("faithful", "iris", "synthetic-5k", "synthetic-20k")
#: gaussmix's covariance_types and mclust's modelNames of each grid.
GRIDS = {
    "sklearn": ("sklearn", 'c("VII", "VVI", "EEE", "VVV")'),
    "all": ("all", "NULL"),
}
GRID_WORDS = {
    "sklearn": "K = 1..9 x spherical/diag/tied/full (mclust VII/VVI/EEE/VVV)",
    "all": "K = 1..9 x mclust's 14 models (mclustBIC's default grid)",
}

R_SCRIPT = r"""
suppressPackageStartupMessages(library(mclust))
args <- commandArgs(trailingOnly = TRUE)
repeats <- as.integer(args[1])
models <- eval(parse(text = args[2]))
files <- args[-(1:2)]
invisible(mclustBIC(as.matrix(read.csv(files[1])), G = 1:2, modelNames = models, verbose = FALSE))
for (f in files) {
  X <- as.matrix(read.csv(f))
  for (r in seq_len(repeats)) {
    t0 <- proc.time()
    b <- mclustBIC(X, G = 1:9, modelNames = models, verbose = FALSE)
    t1 <- proc.time()
    cat(sprintf("%s\t%.6f\t%.6f\n", basename(f), (t1 - t0)[["elapsed"]], max(b, na.rm = TRUE)))
  }
}
"""


def synthetic(n_samples: int, seed: int = 20261202) -> np.ndarray:
    """4 Gaussian clusters in 5 dimensions, random full covariances, fixed seed."""
    rng = np.random.default_rng(seed)
    n_features, n_components = 5, 4
    means = rng.normal(0.0, 3.0, size=(n_components, n_features))
    weights = np.array([0.4, 0.3, 0.2, 0.1])
    counts = rng.multinomial(n_samples, weights)
    parts = []
    for k in range(n_components):
        a = rng.normal(size=(n_features, n_features))
        cov = a @ a.T / n_features + 0.3 * np.eye(n_features)
        parts.append(rng.multivariate_normal(means[k], cov, size=counts[k]))
    X = np.vstack(parts)
    return X[rng.permutation(n_samples)]


def load(name: str) -> tuple[np.ndarray, list[str]]:
    if name == "faithful":
        from gaussmix.datasets import load_faithful

        return np.asarray(load_faithful(), dtype=np.float64), ["eruptions", "waiting"]
    if name == "iris":
        from sklearn.datasets import load_iris

        return np.asarray(load_iris().data, dtype=np.float64), [
            "sepal_length", "sepal_width", "petal_length", "petal_width"
        ]
    n = {"synthetic-5k": 5000, "synthetic-20k": 20000}[name]
    return synthetic(n), [f"x{i + 1}" for i in range(5)]


def write_csv(path: Path, X: np.ndarray, names: list[str]) -> np.ndarray:
    """Write X with 17 significant digits; return what a reader gets back (the same floats)."""
    np.savetxt(path, X, fmt="%.17g", delimiter=",", header=",".join(names), comments="")
    return np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)


def mclust_available() -> str | None:
    """Why mclust cannot run, or None when it can."""
    if shutil.which("Rscript") is None:
        return "Rscript is not installed"
    proc = subprocess.run(
        ["Rscript", "-e", "suppressPackageStartupMessages(library(mclust))"],
        capture_output=True, text=True, check=False,
    )
    if proc.returncode != 0:
        return "the R package mclust is not installed"
    return None


def mclust_version() -> str:
    proc = subprocess.run(
        ["Rscript", "-e", 'cat(as.character(packageVersion("mclust")), R.version.string)'],
        capture_output=True, text=True, check=False,
    )
    return proc.stdout.strip()


def run_mclust(files: list[Path], repeats: int, workdir: Path,
               grid: str = "sklearn") -> dict[str, tuple[float, float]]:
    """{file name: (median seconds, best BIC in gaussmix's sign)} timed inside R."""
    script = workdir / "bench_mclust.R"
    script.write_text(R_SCRIPT)
    proc = subprocess.run(
        ["Rscript", str(script), str(repeats), GRIDS[grid][1], *map(str, files)],
        capture_output=True, text=True, check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"Rscript failed:\n{proc.stderr}")
    times: dict[str, list[float]] = {}
    bics: dict[str, float] = {}
    for line in proc.stdout.splitlines():
        name, seconds, bic = line.split("\t")
        times.setdefault(name, []).append(float(seconds))
        bics[name] = -float(bic)
    return {name: (statistics.median(t), bics[name]) for name, t in times.items()}


def run_gaussmix(X: np.ndarray, repeats: int, grid: str = "sklearn", n_jobs: int | None = None
                 ) -> tuple[float, float, object]:
    from gaussmix.selection import select_model

    seconds = []
    result = None
    for _ in range(repeats):
        start = time.perf_counter()
        result = select_model(X, n_components=GRID_K, covariance_types=GRIDS[grid][0],
                              random_state=0, n_jobs=n_jobs)
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds), result.ranked()[0]["bic"], result


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default=",".join(DATASETS),
                        help=f"comma-separated data sets among {', '.join(DATASETS)}")
    parser.add_argument("--repeats", type=int, default=1, help="timings per library and set")
    parser.add_argument("--rounds", type=int, default=1,
                        help="run each grid's comparison this many times, alternating which "
                             "library goes first; show the median of the per-round ratios")
    parser.add_argument("--no-mclust", action="store_true", help="time gaussmix alone")
    parser.add_argument("--data-dir", help="write the CSV files here (default: a temp dir)")
    parser.add_argument("--grid", default="sklearn,all",
                        help="comma-separated grids among sklearn (4 models), all (14)")
    parser.add_argument("--jobs", type=int, default=None,
                        help="select_model's n_jobs (default: None, one process; mclust "
                             "always runs in one)")
    args = parser.parse_args(argv)
    names = [n for n in args.only.split(",") if n]
    unknown = [n for n in names if n not in DATASETS]
    if unknown:
        parser.error(f"unknown data sets {unknown}; choose among {', '.join(DATASETS)}")
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if args.jobs is not None and args.jobs < 1:
        parser.error("--jobs must be at least 1")
    grids = [g for g in args.grid.split(",") if g]
    if not grids or any(g not in GRIDS for g in grids):
        parser.error(f"--grid: choose among {', '.join(GRIDS)}; got {args.grid!r}")

    import gaussmix

    tmp = None
    if args.data_dir:
        workdir = Path(args.data_dir)
        workdir.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="bench_select_")
        workdir = Path(tmp.name)

    why_not = "--no-mclust" if args.no_mclust else mclust_available()
    print("# Model selection: gaussmix select_model vs mclust mclustBIC")
    print()
    print(f"- gaussmix {gaussmix.__version__} from {Path(gaussmix.__file__).parent}, "
          f"NumPy {np.__version__}, Python {sys.version.split()[0]}; "
          + (f"select_model(n_jobs={args.jobs}): up to {args.jobs} processes"
             if args.jobs is not None else "select_model in one process (n_jobs=None)"))
    if why_not is None:
        print(f"- mclust {mclust_version()}; timed inside R around mclustBIC only (proc.time)")
    else:
        print(f"- mclust not run: {why_not}")
    print(f"- median of {args.repeats} timing(s) per library, grid and data set"
          + (f", in each of {args.rounds} rounds (libraries alternating first)"
             if args.rounds > 1 else ""))
    print(f"- load average at start: {load_average()} ({os.cpu_count()} CPUs)")
    print()

    data = {}
    files = []
    for name in names:
        X, columns = load(name)
        path = workdir / f"{name}.csv"
        data[name] = write_csv(path, X, columns)
        files.append(path)

    from gaussmix.selection import select_model

    select_model(data[names[0]], n_components=[1, 2], covariance_types=["full"], random_state=0)

    for grid in grids:
        print(f"## Grid: {GRID_WORDS[grid]}")
        print()
        print(f"- load average before this grid: {load_average()}")
        print()
        table(grid, names, files, data, args.repeats, workdir, why_not, args.rounds,
              args.jobs)
        print()
    print(f"- load average at end: {load_average()}")
    if tmp is not None:
        tmp.cleanup()
    return 0


def _rounds(grid, names, files, data, repeats, workdir, with_mclust, rounds, n_jobs=None):
    """Per round: {data set: gaussmix seconds}, {file name: (mclust seconds, best BIC)}, and
    gaussmix's best BIC per data set (the same every round: the fit is deterministic)."""
    out = []
    bics = {}
    for r in range(rounds):
        mclust = {}
        if with_mclust and r % 2 == 0:
            mclust = run_mclust(files, repeats, workdir, grid)
        seconds = {}
        for name in names:
            seconds[name], bics[name], _ = run_gaussmix(data[name], repeats, grid, n_jobs)
        if with_mclust and r % 2 == 1:
            mclust = run_mclust(files, repeats, workdir, grid)
        out.append((seconds, mclust))
    return out, bics


def table(grid, names, files, data, repeats, workdir, why_not, rounds=1, n_jobs=None) -> None:
    """Time both libraries on every data set over one grid and print the table."""
    runs, bics = _rounds(grid, names, files, data, repeats, workdir, why_not is None, rounds,
                         n_jobs)
    median = statistics.median
    mclust = {}
    if why_not is None:
        for path in files:
            mclust[path.name] = (median(m[path.name][0] for _, m in runs), runs[0][1][path.name][1])
    ratios = {}  # data set (and "total") -> per-round ratios
    rows = []
    for name, path in zip(names, files, strict=True):
        seconds = median(g[name] for g, _ in runs)
        m_seconds, m_bic = mclust.get(path.name, (None, None))
        if m_seconds is not None:
            ratios[name] = [m[path.name][0] / g[name] for g, m in runs]
        rows.append((name, data[name].shape, seconds, bics[name], m_seconds, m_bic))
    if mclust:
        ratios["total"] = [sum(m[p.name][0] for p in files) / sum(g[n] for n in names)
                           for g, m in runs]

    header = ("data", "rows x features", "mclust s", "gaussmix s", "ratio",
              "best BIC mclust", "best BIC gaussmix", "BIC gain")
    print("| " + " | ".join(header) + " |")
    print("|---|---|" + "---:|" * (len(header) - 2))
    total_g = total_m = 0.0
    for name, shape, seconds, bic, m_seconds, m_bic in rows:
        total_g += seconds
        cells = [name, f"{shape[0]:,} x {shape[1]}"]
        if m_seconds is None:
            cells += ["n/a", f"{seconds:.3f}", "n/a", "n/a", f"{bic:.3f}", "n/a"]
        else:
            total_m += m_seconds
            cells += [f"{m_seconds:.3f}", f"{seconds:.3f}", f"{median(ratios[name]):.2f}x",
                      f"{m_bic:.3f}", f"{bic:.3f}", f"{m_bic - bic:+.3f}"]
        print("| " + " | ".join(cells) + " |")
    if mclust:
        print(f"| total | | {total_m:.3f} | {total_g:.3f} | {median(ratios['total']):.2f}x "
              "| | | |")
    else:
        print(f"| total | | n/a | {total_g:.3f} | n/a | | | |")
    print()
    print("ratio = mclust seconds / gaussmix seconds (above 1: gaussmix is faster)"
          + (", the median of the per-round ratios" if rounds > 1 else "")
          + ". BICs in gaussmix's sign (lower is better; mclust's own printout is minus "
          "these); BIC gain = mclust - gaussmix (>= 0: gaussmix's best is equal or better).")
    if mclust and rounds > 1:
        print()
        print("- per-round ratios: " + "; ".join(
            f"{name} " + " / ".join(f"{x:.2f}" for x in values)
            for name, values in ratios.items()))
    if mclust:
        slower = [r[0] for r in rows if median(ratios[r[0]]) < 1.0]
        worse = [r[0] for r in rows if r[3] > r[5] + 1e-3]
        total_ratio = median(ratios["total"])
        print()
        print(f"- target, at least 5x faster in total: {'PASS' if total_ratio >= 5.0 else 'FAIL'} "
              f"({total_ratio:.2f}x)")
        print(f"- target, not slower on any data set: {'PASS' if not slower else 'FAIL'}"
              + (f" (slower on {', '.join(slower)})" if slower else ""))
        print(f"- target, best BIC equal or better: {'PASS' if not worse else 'FAIL'}"
              + (f" (worse on {', '.join(worse)})" if worse else ""))


if __name__ == "__main__":
    sys.exit(main())
