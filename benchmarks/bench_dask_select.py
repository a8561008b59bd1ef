#!/usr/bin/env python
"""Model selection on a dask array against the same data in memory, side by side.

Usage::

    python benchmarks/bench_dask_select.py                     # 20,000 and 200,000 x 5 rows
    python benchmarks/bench_dask_select.py --rows 20000 --workers 2 --chunk-rows 50000

Method
------
* Data: ``bench_select.synthetic`` (a fixed-seed mixture of 4 Gaussians in 5 dimensions,
  float64), the grid K = 1..9 x {spherical, diag, tied, full}, ``random_state=0``.
* NumPy: ``select_model(X)`` on the array in memory. Dask: ``select_model`` on
  ``da.from_array(X, chunks=--chunk-rows)`` with a ``LocalCluster`` of ``--workers``
  single-threaded worker processes (started once, before the timings). Wall-clock time of
  the ``select_model`` call alone; for Dask it includes persisting and checking the array.
* Both runs start and race on a 2,000-row sample (different rows: in memory
  ``_race_sample``, on Dask the data source's ``sample_rows``), then polish on all the rows.
  The best model and its BIC are printed for both.
* The machine may be shared: the load average is printed at the start and the end.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_select import synthetic


def best(result):
    t, k = result.best_params_["covariance_type"], result.best_params_["n_components"]
    row = next(r for r in result.table if (r["covariance_type"], r["n_components"]) == (t, k))
    return f"{t},{k}", row["bic"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="20000,200000")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--chunk-rows", type=int, default=50_000)
    args = parser.parse_args(argv)

    import dask
    import dask.array as da
    import distributed

    from gaussmix.selection import select_model

    print(f"load average at start: {os.getloadavg()}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cluster = distributed.LocalCluster(n_workers=args.workers, threads_per_worker=1,
                                           processes=True, dashboard_address=None,
                                           silence_logs=50)
        client = distributed.Client(cluster, set_as_default=False)
    print("| rows x features | NumPy s | Dask s | best NumPy | best Dask | BIC NumPy | BIC Dask |")
    print("|---|---:|---:|---|---|---:|---:|")
    try:
        for n in (int(r) for r in args.rows.split(",")):
            X = synthetic(n)
            t0 = time.perf_counter()
            a = select_model(X, random_state=0)
            t1 = time.perf_counter()
            with dask.config.set(scheduler=client):
                b = select_model(da.from_array(X, chunks=args.chunk_rows), random_state=0)
            t2 = time.perf_counter()
            (na, ba), (nb, bb) = best(a), best(b)
            print(f"| {n:,} x {X.shape[1]} | {t1 - t0:.2f} | {t2 - t1:.2f} | {na} | {nb} "
                  f"| {ba:.3f} | {bb:.3f} |")
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            client.close()
            cluster.close()
    print(f"load average at end: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
