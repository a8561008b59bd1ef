#!/usr/bin/env python
"""``select_model`` in one process against ``n_jobs`` processes: time and agreement.

Usage::

    python benchmarks/jobs_agreement.py                 # n_jobs=2, bench_select's four sets
    python benchmarks/jobs_agreement.py --jobs 3 --only faithful,iris --rounds 5
    python benchmarks/jobs_agreement.py --grid sklearn  # scikit-learn's four types

Method
------
* Data: ``bench_select.py``'s sets (Old Faithful, iris, the synthetic 5,000 and 20,000 x 5).
* Per set and round, ``select_model(X, random_state=0)`` (over ``--grid``: ``all``, mclust's
  14 models, or ``sklearn``) runs with ``n_jobs=None`` and with ``n_jobs=--jobs``, taking
  turns to go first; each time is the wall-clock time of the call (process start-up
  included). The table shows the median time of each and the median of the per-round
  ratios (one process / ``n_jobs``: above 1, the processes are faster).
* Agreement: the largest difference of a grid point's log-likelihood between the two
  (they fit the same starts; a batch holding other mixtures can round differently), every
  grid point whose log-likelihood differs by more than ``--tol``, and whether both select
  the same model.
* The machine may be shared: the load average is printed at the start and the end.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_select import DATASETS, load, load_average


def _timed(X, grid, n_jobs):
    from gaussmix import select_model

    start = time.perf_counter()
    result = select_model(X, covariance_types=grid, random_state=0, n_jobs=n_jobs)
    return time.perf_counter() - start, result


def _log_likelihoods(result) -> dict:
    return {(r["covariance_type"], r["n_components"]): r["log_likelihood"] for r in result.table}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=2, help="n_jobs of the second run")
    parser.add_argument("--only", default=",".join(DATASETS),
                        help=f"comma-separated data sets among {', '.join(DATASETS)}")
    parser.add_argument("--grid", default="all", choices=["all", "sklearn"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tol", type=float, default=1e-6,
                        help="list the grid points whose log-likelihoods differ by more")
    args = parser.parse_args(argv)
    names = [n for n in args.only.split(",") if n]
    if any(n not in DATASETS for n in names):
        parser.error(f"--only: choose among {', '.join(DATASETS)}")
    if args.jobs < 2:
        parser.error("--jobs must be at least 2")
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")

    import gaussmix

    print(f"# select_model: one process against n_jobs={args.jobs}, grid {args.grid}")
    print()
    print(f"- gaussmix {gaussmix.__version__} from {Path(gaussmix.__file__).parent}, "
          f"NumPy {np.__version__}, Python {sys.version.split()[0]}")
    print(f"- {args.rounds} round(s), the two taking turns to go first; "
          f"load average at start: {load_average()} ({os.cpu_count()} CPUs)")
    print()
    print(f"| data | one process s | n_jobs={args.jobs} s | ratio | per round | "
          f"largest |d log L| | points beyond {args.tol:g} | same best |")
    print("|---|---:|---:|---:|---|---:|---:|---|")
    details = []
    _timed(load(names[0])[0], ["full"], None)  # (warm-up: imports)
    for name in names:
        X = load(name)[0]
        one, many, ratios = [], [], []
        for r in range(args.rounds):
            order = (None, args.jobs) if r % 2 == 0 else (args.jobs, None)
            runs = {n_jobs: _timed(X, args.grid, n_jobs) for n_jobs in order}
            one.append(runs[None][0])
            many.append(runs[args.jobs][0])
            ratios.append(runs[None][0] / runs[args.jobs][0])
        a, b = _log_likelihoods(runs[None][1]), _log_likelihoods(runs[args.jobs][1])
        gaps = {key: b[key] - a[key] for key in a
                if a[key] is not None and b[key] is not None}
        beyond = sorted((key for key, gap in gaps.items() if abs(gap) > args.tol),
                        key=lambda key: -abs(gaps[key]))
        missing = [key for key in a if (a[key] is None) != (b[key] is None)]
        same = runs[None][1].best_params_ == runs[args.jobs][1].best_params_
        largest = max((abs(g) for g in gaps.values()), default=0.0)
        print(f"| {name} | {statistics.median(one):.3f} | {statistics.median(many):.3f} | "
              f"{statistics.median(ratios):.2f}x | "
              f"{' / '.join(f'{x:.2f}' for x in ratios)} | {largest:.2g} | {len(beyond)} | "
              f"{'yes' if same else 'NO'} |")
        for key in beyond:
            details.append(f"- {name} {key[0]},{key[1]}: one process {a[key]:.4f}, "
                           f"n_jobs={args.jobs} {b[key]:.4f} ({gaps[key]:+.4f})")
        for key in missing:
            details.append(f"- {name} {key[0]},{key[1]}: fitted in one run only")
    print()
    print("\n".join(details) if details else "- every grid point within the tolerance")
    print()
    print(f"- load average at end: {load_average()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
