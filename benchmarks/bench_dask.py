#!/usr/bin/env python
"""Benchmark EM on Dask against the NumPy path, and fit a cost model for scaling out.

Usage::

    python benchmarks/bench_dask.py             # N = 2e6, D = 10, K = 5, full (~2 minutes)
    python benchmarks/bench_dask.py --quick     # tiny sizes (< 1 minute)
    python benchmarks/bench_dask.py --rows 4000000 --chunk-rows 200000 --json out.json
    python benchmarks/bench_dask.py --out-of-core  # docs/dask.md's example: time, peak memory

Method
------
* The same data (a fixed-seed mixture of K Gaussians, float64) and the same start
  (``weights_init``, ``means_init``, ``precisions_init``; ``tol=0`` so every fit runs exactly
  ``--iters`` iterations) for every path. Seconds per iteration are the median of the gaps
  between consecutive iterations (the estimator's per-iteration callback), so validation,
  initialisation and persisting the data are excluded.
* NumPy path: ``GaussianMixture.fit`` on the in-memory array on one thread: without the
  block thread pool (gaussmix is made to see one core) and with the BLAS limited to one
  thread (threadpoolctl), the same single core a Dask worker process gets (distributed
  starts its workers with ``OMP_NUM_THREADS=1``). The projection's "one NumPy process"
  line scales this measured row to the projected number of rows.
* Dask path: a ``LocalCluster`` of P single-threaded worker processes (P = 1, 2), started
  as ``--scheduler local:P`` starts it (``gaussmix._dask.client_from_scheduler``: without
  distributed's ``MALLOC_TRIM_THRESHOLD_``; ``--malloc-trim`` keeps it), the data persisted
  in ``--chunk-rows`` chunks. The scheduler's task stream gives, per iteration,
  the E-step compute time on every worker; the busiest worker's total is the compute on the
  critical path, and the rest of the iteration is overhead (scheduling, transfers,
  reduction, the M-step on the client).
* Cost-model constants, each measured here:

  - ``c``: E-step seconds per row on one worker process (task compute times, P = 1);
  - ``o``: fixed seconds per iteration: median iteration time of a tiny problem with one
    chunk per worker (a scheduler round trip, the M-step, graph building);
  - ``s``: marginal seconds per chunk task: iteration time of tiny problems with many
    chunks against few, per extra chunk (the scheduler handles tasks one at a time, so this
    cost does not shrink with more workers);
  - ``r``: seconds per level of the reduction tree (fan-in 8): the median time from the
    end of the last E-step task to the end of the reduction in 2-worker runs, per level
    (transfer of partial statistics between workers plus the addition).

  T(P) = c N / P + (o + s n_chunks) + r ceil(log8 n_chunks)
         compute     overhead          reduction

  The model is checked against the measured P = 1, 2 runs and projected to N = 1e9 rows
  on 100 workers, with chunks of 1e6 rows (1000 tasks, 4 reduction levels) and of 1e7
  rows (100 tasks, one per worker, 3 levels).
* The NumPy path is timed before and after the clusters and the faster is kept (the
  machine may be shared; the load average is printed at the start and the end).

A laptop-sized machine runs the client, the scheduler and the workers on the same cores:
with 2 cores, the 2-worker run competes with the scheduler and the client, so its speed-up
is a lower bound of what separate machines give.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
import warnings

import numpy as np

FAN_IN = 8


def make_data(n_rows, n_features, n_components, seed=0):
    rng = np.random.default_rng(seed)
    means = rng.normal(scale=4.0, size=(n_components, n_features))
    labels = rng.integers(n_components, size=n_rows)
    X = rng.standard_normal((n_rows, n_features))
    X *= rng.uniform(0.5, 1.5, size=n_features)
    X += means[labels]
    return X


def start_params(X, n_components, covariance_type, seed=1):
    rng = np.random.default_rng(seed)
    means = X[rng.choice(min(len(X), 10_000), size=n_components, replace=False)]
    cov = np.cov(X[:10_000].T)
    prec = np.linalg.inv(cov)
    precisions = {
        "full": np.stack([prec] * n_components),
        "tied": prec,
        "diag": np.tile(1.0 / np.diag(cov), (n_components, 1)),
        "spherical": np.full(n_components, 1.0 / np.mean(np.diag(cov))),
    }[covariance_type]
    return {
        "weights_init": np.full(n_components, 1.0 / n_components),
        "means_init": means,
        "precisions_init": precisions,
    }


def timed_fit(X, n_iter, kw, client=None):
    """Fit; return (seconds per iteration (median gap), the estimator, iteration end times)."""
    import dask

    from gaussmix import GaussianMixture

    stamps = []
    est = GaussianMixture(tol=0, max_iter=n_iter, **kw)
    est._callback = lambda n, lb, ch: stamps.append(time.perf_counter())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if client is None:
            est.fit(X)
        else:
            with dask.config.set(scheduler=client):
                est.fit(X)
    gaps = np.diff(stamps)
    return float(np.median(gaps)), est, stamps


def numpy_iteration(X, n_iter, kw):
    """The NumPy path on one core: no block thread pool and one BLAS thread.

    gaussmix spreads row blocks over a pool of one thread per available core
    (``gaussmix._parallel.block_executor``); here it sees one core, so it runs the blocks
    in the calling thread, and threadpoolctl pins the BLAS to one thread: the single core
    a Dask worker process gets (distributed starts its workers with OMP_NUM_THREADS=1).
    """
    import threading
    from unittest import mock

    from threadpoolctl import threadpool_limits

    from gaussmix import _parallel

    with threadpool_limits(limits=1), mock.patch.object(_parallel, "available_cores",
                                                        return_value=1):
        with _parallel.block_executor(len(X)) as pool:
            assert pool is None, "the NumPy baseline must not use the block thread pool"
        before = threading.active_count()
        per_iter, est, _ = timed_fit(X, n_iter, kw)
        assert threading.active_count() == before, "the NumPy baseline started threads"
    return per_iter, est


def start_cluster(n_workers, malloc_trim=False):
    """A LocalCluster as ``gaussmix ... --scheduler local:N`` starts it, or (with
    ``malloc_trim``) with distributed's default worker environment."""
    from distributed import Client, LocalCluster

    from gaussmix._dask import client_from_scheduler

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if not malloc_trim:
            client = client_from_scheduler(
                f"local:{n_workers}",
                dashboard_address=None,
                silence_logs=50,
                set_as_default=False,
            )
            client.wait_for_workers(n_workers)
            return None, client
        cluster = LocalCluster(
            n_workers=n_workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=50,
        )
        client = Client(cluster, set_as_default=False)
    client.wait_for_workers(n_workers)
    return cluster, client


def task_times(records, kind):
    """Per iteration token: {worker: compute seconds}, and (first start, last stop)."""
    out = {}
    for rec in records:
        key = rec["key"]
        name = key[0] if isinstance(key, tuple) else str(key)
        if not str(name).startswith(f"gaussmix-{kind}-"):
            continue
        token = str(name).rsplit("-", 1)[1]
        for ss in rec["startstops"]:
            if ss["action"] != "compute":
                continue
            entry = out.setdefault(token, {"workers": {}, "start": math.inf, "stop": 0.0})
            w = entry["workers"]
            w[rec["worker"]] = w.get(rec["worker"], 0.0) + ss["stop"] - ss["start"]
            entry["start"] = min(entry["start"], ss["start"])
            entry["stop"] = max(entry["stop"], ss["stop"])
    return out


def dask_run(client, X_np, chunk_rows, n_iter, kw):
    """Per-iteration time, busiest-worker E-step compute, reduction tail, per iteration."""
    import dask.array as da
    from distributed import get_task_stream

    X = da.from_array(X_np, chunks=(chunk_rows, X_np.shape[1]))
    with get_task_stream(client) as ts:
        per_iter, est, _ = timed_fit(X, n_iter, kw, client)
    estep = task_times(ts.data, "estep")
    reduce_ = task_times(ts.data, "reduce")
    # Skip the first iteration (warm-up: imports and first transfers on the workers).
    tokens = sorted(estep, key=lambda t: estep[t]["start"])[1:]
    busiest = [max(estep[t]["workers"].values()) for t in tokens]
    total = [sum(estep[t]["workers"].values()) for t in tokens]
    tails = [reduce_[t]["stop"] - estep[t]["stop"] for t in tokens if t in reduce_]
    return {
        "per_iter": per_iter,
        "compute_critical": float(np.median(busiest)),
        "compute_total": float(np.median(total)),
        "reduction_tail": float(np.median(tails)) if tails else 0.0,
        "n_chunks": math.ceil(X_np.shape[0] / chunk_rows),
        "estimator": est,
    }


def tiny_iteration(client, n_chunks, n_features, n_components, kw_for, n_iter):
    """Iteration time of a tiny problem (10 rows per chunk): overhead only."""
    rows = max(10 * n_chunks, 10 * n_components)
    X = make_data(rows, n_features, n_components, seed=3)
    import dask.array as da

    Xd = da.from_array(X, chunks=(math.ceil(rows / n_chunks), n_features))
    per_iter, _, _ = timed_fit(Xd, n_iter, kw_for(X), client)
    return per_iter


def _peak_rss_mb():
    """(peak, current) resident memory of this process in MB: VmHWM and VmRSS."""
    values = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(("VmHWM:", "VmRSS:")):
                key, amount, _unit = line.split()
                values[key[:-1]] = int(amount) / 1024
    return values["VmHWM"], values["VmRSS"]


def write_big_file(path, n_rows, n_features=8, seed=0):
    """The out-of-core example's file of docs/dask.md, written block by block."""
    from numpy.lib.format import open_memmap

    X = open_memmap(path, mode="w+", dtype=np.float64, shape=(n_rows, n_features))
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=5.0, size=(3, n_features))
    for start in range(0, n_rows, 1_000_000):
        stop = min(start + 1_000_000, n_rows)
        labels = rng.integers(3, size=stop - start)
        X[start:stop] = centres[labels] + rng.standard_normal((stop - start, n_features))
    X.flush()
    del X


def out_of_core(n_rows, memory_limit="250MB", chunk_rows=250_000, directory=None):
    """docs/dask.md's out-of-core example, timed, with the workers' peak memory.

    Two single-threaded workers of ``memory_limit`` each (distributed's defaults otherwise,
    as in the example) fit a 3-component diag model to a memory-mapped ``.npy`` file of
    ``n_rows`` x 8 float64. Prints the fit's wall time (from ``load_dask_array`` to the end
    of ``fit``) and every worker's peak resident memory (``VmHWM``: the high-water mark
    since the worker started, file-backed pages of the memory map included).
    """
    import tempfile

    from distributed import Client, LocalCluster

    from gaussmix import GaussianMixture
    from gaussmix._dask import load_dask_array

    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        path = os.path.join(tmp, "big.npy")
        t0 = time.perf_counter()
        write_big_file(path, n_rows)
        size_mb = os.path.getsize(path) / 1e6
        print(f"# Out of core: {n_rows:,} x 8 float64 ({size_mb:.0f} MB file, written in "
              f"{time.perf_counter() - t0:.1f} s), 2 workers of {memory_limit}, chunks of "
              f"{chunk_rows:,} rows")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cluster = LocalCluster(n_workers=2, threads_per_worker=1, memory_limit=memory_limit,
                                   dashboard_address=None, silence_logs=50)
            client = Client(cluster, set_as_default=False)
        try:
            client.wait_for_workers(2)
            before = client.run(_peak_rss_mb)
            t0 = time.perf_counter()
            with dask_config_scheduler(client):
                X = load_dask_array(path, chunk_rows=chunk_rows)
                gm = GaussianMixture(n_components=3, covariance_type="diag",
                                     random_state=0).fit(X)
            seconds = time.perf_counter() - t0
            after = client.run(_peak_rss_mb)
        finally:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                client.close()
                cluster.close()
    print(f"n_iter {gm.n_iter_}, converged {gm.converged_}, weights {gm.weights_.round(3)}")
    print(f"fit: {seconds:.1f} s (load_dask_array + fit, machine with {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.2f})")
    print()
    print("| worker | peak RSS before the fit (MB) | peak RSS at the end (MB) | "
          "RSS at the end (MB) |")
    print("|---|---:|---:|---:|")
    for i, address in enumerate(sorted(after)):
        print(f"| {i} | {before[address][0]:.0f} | {after[address][0]:.0f} | "
              f"{after[address][1]:.0f} |")
    return {"seconds": seconds, "peak_rss_mb": [after[a][0] for a in sorted(after)],
            "n_iter": gm.n_iter_}


def dask_config_scheduler(client):
    import dask

    return dask.config.set(scheduler=client)


def levels(n_chunks):
    return math.ceil(math.log(n_chunks, FAN_IN)) if n_chunks > 1 else 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--features", type=int, default=10)
    parser.add_argument("--components", type=int, default=5)
    parser.add_argument("--covariance-type", default="full")
    parser.add_argument("--iters", type=int, default=8)
    parser.add_argument("--chunk-rows", type=int, default=100_000)
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    parser.add_argument("--json", help="write the raw numbers to this file")
    parser.add_argument(
        "--malloc-trim",
        action="store_true",
        help="start the workers with distributed's default MALLOC_TRIM_THRESHOLD_=65536 "
        "(by default they start as with --scheduler local:N, without it)",
    )
    parser.add_argument(
        "--out-of-core",
        type=int,
        nargs="?",
        const=10_000_000,
        metavar="ROWS",
        help="instead: run docs/dask.md's out-of-core example (a memory-mapped file of ROWS "
        "x 8 float64, default 10,000,000 = 640 MB, two workers of 250 MB) and print its "
        "time and the workers' peak memory",
    )
    args = parser.parse_args(argv)
    if args.out_of_core is not None:
        rows = 200_000 if args.quick else args.out_of_core
        out_of_core(rows, chunk_rows=min(250_000, max(rows // 8, 1)))
        return 0
    if args.quick:
        args.rows, args.chunk_rows, args.iters = 100_000, 10_000, 5

    N, D, K, ct = args.rows, args.features, args.components, args.covariance_type
    X = make_data(N, D, K)

    def kw_for(data):
        return dict(n_components=K, covariance_type=ct, **start_params(data, K, ct))

    kw = kw_for(X)
    t0 = time.perf_counter()
    print(f"# gaussmix on Dask: N={N:,}, D={D}, K={K}, {ct}, float64, {args.iters} iterations")
    print(
        f"machine: {os.cpu_count()} CPUs, Python {platform.python_version()}, load average "
        f"{os.getloadavg()[0]:.2f}; chunks of {args.chunk_rows:,} rows; workers "
        + ("with" if args.malloc_trim else "without")
        + " MALLOC_TRIM_THRESHOLD_"
    )
    print()

    np_before, np_est = numpy_iteration(X, args.iters, kw)
    runs = {}
    tiny = {}
    for P in (1, 2):
        cluster, client = start_cluster(P, args.malloc_trim)
        try:
            runs[P] = dask_run(client, X, args.chunk_rows, args.iters, kw)
            tiny[P] = {
                n: tiny_iteration(client, n, D, K, kw_for, max(args.iters, 8))
                for n in ((P, 64, 256) if P == 2 else (P,))
            }
        finally:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                client.close()
                if cluster is not None:
                    cluster.close()

    # NumPy again after the clusters (the machine may be shared): keep the faster.
    np_after, _ = numpy_iteration(X, args.iters, kw)
    np_iter = min(np_before, np_after)

    # Same answer on every path.
    for P, run in runs.items():
        diff = np.max(np.abs(run["estimator"].means_ - np_est.means_))
        scale = np.max(np.abs(np_est.means_))
        assert diff <= 1e-9 * scale, f"P={P}: means differ by {diff}"

    n_chunks = runs[1]["n_chunks"]
    c = runs[1]["compute_total"] / N
    o = tiny[2][2]
    s = max(0.0, (tiny[2][256] - tiny[2][64]) / (256 - 64))
    lv = levels(n_chunks)
    r = runs[2]["reduction_tail"] / max(lv, 1)

    def model(P, rows, chunks):
        compute = c * rows / P
        overhead = o + s * chunks
        reduction = r * levels(chunks)
        return compute, overhead, reduction

    print("## Per-iteration time, same data and start")
    print()
    print(
        "| path | worker processes | s / iteration | E-step on busiest worker (s) | "
        "overhead (s) | vs NumPy | model (s) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    print(f"| NumPy (1 thread: no block pool, 1 BLAS thread) | - | {np_iter:.3f} | "
          f"{np_iter:.3f} | - | 1.00x | - |")
    if abs(np_before - np_after) > 0.1 * np_iter:
        print(f"| (NumPy before/after the clusters) | | {np_before:.3f} / {np_after:.3f} | | | | |")
    for P, run in runs.items():
        over = run["per_iter"] - run["compute_critical"]
        pred = sum(model(P, N, n_chunks))
        print(
            f"| Dask | {P} | {run['per_iter']:.3f} | {run['compute_critical']:.3f} | "
            f"{over:.3f} | {np_iter / run['per_iter']:.2f}x | {pred:.3f} |"
        )
    speedup = runs[1]["per_iter"] / runs[2]["per_iter"]
    print()
    print(f"2 workers vs 1: {speedup:.2f}x faster per iteration ({os.cpu_count()} CPUs here).")
    print()
    print("## Cost model T(P) = c N / P + (o + s n_chunks) + r ceil(log8 n_chunks)")
    print()
    print("| constant | value | measured from |")
    print("|---|---:|---|")
    print(f"| c (s per row, one worker) | {c:.3e} | E-step task times, 1 worker, N={N:,} |")
    print(f"| o (s per iteration) | {o:.4f} | tiny problem, 2 workers, 1 chunk each |")
    print(
        f"| s (s per chunk task) | {s:.2e} | tiny problem, 2 workers, 256 vs 64 chunks "
        f"({tiny[2][256]:.4f} vs {tiny[2][64]:.4f} s/iter) |"
    )
    print(
        f"| r (s per reduction level) | {r:.4f} | last E-step to reduced result, 2 workers, "
        f"{n_chunks} chunks = {lv} level(s) |"
    )
    print()
    big_n, big_p = 10**9, 100
    print(f"## Projection: N = 1e9 rows (D={D}, K={K}, {ct}) on {big_p} workers")
    print()
    print(
        "| chunks | tasks | compute c N / P (s) | overhead o + s n_chunks (s) | "
        "reduction (s) | **s / iteration** | **100 iterations** |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    projections = {}
    for big_chunk in (10**6, 10**7):
        big_chunks = big_n // big_chunk
        comp, over, red = model(big_p, big_n, big_chunks)
        per = comp + over + red
        projections[big_chunk] = {"compute": comp, "overhead": over, "reduction": red, "total": per}
        print(
            f"| {big_chunk:,} rows | {big_chunks} | {comp:.2f} | {over:.3f} | {red:.3f} | "
            f"**{per:.2f}** | **{100 * per:.0f} s ({100 * per / 60:.1f} min)** |"
        )
    print()
    print(
        f"For comparison, one single-threaded NumPy process would take "
        f"{np_iter / N * big_n:.0f} s per iteration on the same rows (the measured NumPy row, "
        f"{np_iter / N:.3e} s per row, times {big_n:.0e} rows). Benchmark runtime "
        f"{time.perf_counter() - t0:.0f} s, load average at the end {os.getloadavg()[0]:.2f}."
    )
    if args.json:
        raw = {
            "config": vars(args),
            "numpy_per_iter": np_iter,
            "dask": {
                P: {k: v for k, v in run.items() if k != "estimator"} for P, run in runs.items()
            },
            "tiny": {P: {str(n): t for n, t in d.items()} for P, d in tiny.items()},
            "constants": {"c": c, "o": o, "s": s, "r": r},
            "projection": projections,
        }
        with open(args.json, "w") as fh:
            json.dump(raw, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
