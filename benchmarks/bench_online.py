#!/usr/bin/env python
"""Online EM (``GaussianMixture.partial_fit``) against converged batch EM: quality and cost.

Usage::

    python benchmarks/bench_online.py                  # the issue's setting (about a minute)
    python benchmarks/bench_online.py --quick          # 40,000 rows, batches of 500
    python benchmarks/bench_online.py --sweep          # choose learning_offset / learning_decay
    python benchmarks/bench_online.py --memory-csv-gb 2    # + peak memory of
                                                       #   `gaussmix fit --stream` on a 2 GB CSV

Method
------
* Data: ``--rows`` (400,000) rows of a mixture of ``--components`` (4) Gaussians in
  ``--features`` (5) dimensions with random full covariances, means drawn with standard
  deviation 6, rows in random order (online EM assumes a shuffled stream), fixed seed.
* Reference: batch EM (``fit``, full covariance, ``tol=1e-8``, ``max_iter=1000``, k-means
  start, seed 0) run to convergence; its mean log-likelihood per sample on all rows.
* Online: a fresh ``GaussianMixture(4, random_state=0)`` (default ``learning_offset`` and
  ``learning_decay``) fed batches of ``--batch`` (5,000) rows in file order; after each of
  ``--passes`` (3) passes, the mean log-likelihood on all rows. ``gap`` = reference minus
  online (per sample; the targets are 0.002 after one pass and 0.0005 after three).
* Cost, side by side in one process, ``--repeats`` (5) rounds alternating the two: the time of
  one pass of ``partial_fit`` (including the first batch's k-means start), and the time of
  one batch EM iteration over the same rows (E-step of all rows + M-step, the loop body of
  ``fit``), single-threaded as ``partial_fit``'s batches are, and with the thread pool ``fit``
  uses (the pass and the single-threaded iteration run with the BLAS limited to one
  thread, as inside ``fit``'s pool; with its default threads the BLAS of a busy machine
  can slow both down several times). ``ratio`` = median pass time / median iteration
  time (target: at most 4).
* ``--sweep``: the gaps after one and three passes for a grid of ``learning_offset`` x
  ``learning_decay``, on ``--seeds`` data sets; the defaults (10, 0.7) were chosen from it.
* ``--memory-csv-gb G``: writes a CSV of at least G GB (500,000 distinct rows of the same
  mixture, formatted once and written again and again), runs ``gaussmix fit FILE --stream
  -k 4 --passes 1`` in a subprocess, reports its peak resident memory (``ru_maxrss`` of the
  child) and time, and deletes the file.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np

from gaussmix import GaussianMixture
from gaussmix._backends import data_source
from gaussmix.stats import m_step


def mixture(n_rows, n_features, n_components, seed, spread=6.0):
    """Rows of K Gaussians with random full covariances, in random order.

    The means are drawn with standard deviation ``spread``; the covariances have
    eigenvalues of about 0.3 to 2 (1.5: much overlap, batch EM needs ~30 iterations; 6:
    well separated).
    """
    rng = np.random.default_rng(seed)
    means = rng.normal(scale=spread, size=(n_components, n_features))
    labels = rng.integers(n_components, size=n_rows)
    X = np.empty((n_rows, n_features))
    for k in range(n_components):
        A = rng.normal(size=(n_features, n_features)) / np.sqrt(n_features)
        chol = np.linalg.cholesky(A @ A.T + 0.3 * np.eye(n_features))
        rows = labels == k
        X[rows] = means[k] + rng.normal(size=(rows.sum(), n_features)) @ chol.T
    return X


def one_pass(model, X, batch):
    for start in range(0, X.shape[0], batch):
        model.partial_fit(X[start : start + batch])
    return model


def converged_batch(X, n_components):
    return GaussianMixture(n_components, tol=1e-8, max_iter=1000, random_state=0).fit(X)


def gaps(X, n_components, batch, passes, reference, **params):
    model = GaussianMixture(n_components, random_state=0, **params)
    out = []
    for _ in range(passes):
        one_pass(model, X, batch)
        out.append(reference - model.score(X))
    return out


def batch_iteration_seconds(X, params, threaded):
    source = data_source(X)
    start = time.perf_counter()
    if threaded:
        with source.parallel():
            stats = source.statistics(params)
    else:
        stats = source.statistics(params)
    m_step(stats, reg_covar=1e-6)
    return time.perf_counter() - start


def blas_single_thread():
    """The BLAS limited to one thread (as ``fit`` does inside its thread pool), if possible."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def cost(X, n_components, batch, repeats, reference_model):
    params = reference_model._get_parameters()
    passes, single, threaded = [], [], []
    for _ in range(repeats):
        with blas_single_thread():
            model = GaussianMixture(n_components, random_state=0)
            start = time.perf_counter()
            one_pass(model, X, batch)
            passes.append(time.perf_counter() - start)
            single.append(batch_iteration_seconds(X, params, threaded=False))
        threaded.append(batch_iteration_seconds(X, params, threaded=True))
    return statistics.median(passes), statistics.median(single), statistics.median(threaded)


def write_csv(path, gigabytes, n_features, n_components):
    """A CSV of at least ``gigabytes`` GB: 500,000 rows formatted once, written repeatedly."""
    X = mixture(500_000, n_features, n_components, seed=1)
    buffer = io.StringIO()
    np.savetxt(buffer, X, delimiter=",", fmt="%.6f")
    block = buffer.getvalue().encode()
    header = ",".join(f"x{j}" for j in range(n_features)).encode() + b"\n"
    target = int(gigabytes * 1e9)
    written = 0
    with open(path, "wb") as f:
        f.write(header)
        while written < target:
            f.write(block)
            written += len(block)
    return os.path.getsize(path), written // len(block) * X.shape[0]


def memory_run(gigabytes, n_features, n_components, batch, tmpdir):
    directory = tempfile.mkdtemp(prefix="gaussmix-bench-online-", dir=tmpdir)
    try:
        path = os.path.join(directory, "big.csv")
        size, n_rows = write_csv(path, gigabytes, n_features, n_components)
        command = [
            sys.executable, "-m", "gaussmix", "fit", path, "--stream", "-k", str(n_components),
            "--batch-size", str(batch), "--passes", "1", "-o", os.path.join(directory, "out"),
            "--no-plots",
        ]
        start = time.perf_counter()
        proc = subprocess.run(command, capture_output=True, text=True, check=False)
        seconds = time.perf_counter() - start
        peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        if proc.returncode != 0:
            raise SystemExit(f"gaussmix fit --stream failed:\n{proc.stderr}")
        return {"csv_bytes": size, "rows": n_rows, "seconds": seconds,
                "peak_rss_mb": peak_kb / 1024, "stderr": proc.stderr.strip()}
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def sweep(args):
    offsets = [0.0, 2.0, 10.0, 50.0]
    decays = [0.51, 0.6, 0.7, 0.85, 1.0]
    data = []
    for spread in args.spreads:
        for seed in range(args.seeds):
            X = mixture(args.rows, args.features, args.components, seed, spread)
            data.append((X, converged_batch(X, args.components).score(X)))
    print(f"gaps per sample over {len(data)} data sets (spreads {args.spreads}, "
          f"{args.seeds} seeds each)")
    print("| learning_offset | learning_decay | 1 pass: mean, max | 3 passes: mean, max |")
    print("| ---: | ---: | ---: | ---: |")
    for t0 in offsets:
        for alpha in decays:
            one, three = [], []
            for X, reference in data:
                g = gaps(X, args.components, args.batch, 3, reference,
                         learning_offset=t0, learning_decay=alpha)
                one.append(g[0])
                three.append(g[2])
            print(f"| {t0:g} | {alpha:g} | {np.mean(one):.5f}, {np.max(one):.5f} | "
                  f"{np.mean(three):.5f}, {np.max(three):.5f} |", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=400_000)
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--features", type=int, default=5)
    parser.add_argument("--components", type=int, default=4)
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=2, help="data sets per spread (--sweep)")
    parser.add_argument(
        "--spreads",
        type=lambda text: [float(v) for v in text.split(",")],
        default=[1.5, 2.0, 3.0, 6.0],
        help="standard deviations of the means: one data set each (default 1.5,2,3,6)",
    )
    parser.add_argument("--quick", action="store_true", help="40,000 rows in batches of 500")
    parser.add_argument("--sweep", action="store_true")
    parser.add_argument("--memory-csv-gb", type=float, default=None, metavar="G")
    parser.add_argument("--tmpdir", default=None, help="where the CSV of --memory-csv-gb goes")
    parser.add_argument("--json", default=None, metavar="FILE")
    args = parser.parse_args(argv)
    if args.quick:
        args.rows, args.batch, args.repeats = 40_000, 500, 3
    warnings.simplefilter("ignore")
    if args.sweep:
        sweep(args)
        return
    print(f"Online EM vs converged batch EM: {args.rows:,} rows, D = {args.features}, "
          f"K = {args.components}, full, batches of {args.batch:,}")
    print()
    print("| spread | batch EM iterations | batch EM mean log-lik | pass | online mean log-lik "
          "| gap per sample | target |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    result = {"rows": args.rows, "batch": args.batch, "features": args.features,
              "components": args.components, "cores": os.cpu_count(), "gaps": {}}
    for spread in args.spreads:
        X = mixture(args.rows, args.features, args.components, 0, spread)
        reference_model = converged_batch(X, args.components)
        reference = reference_model.score(X)
        gap = gaps(X, args.components, args.batch, args.passes, reference)
        result["gaps"][str(spread)] = {"reference": reference,
                                       "reference_n_iter": reference_model.n_iter_, "gap": gap}
        for i, g in enumerate(gap, 1):
            target = {1: "0.002", 3: "0.0005"}.get(i, "")
            print(f"| {spread:g} | {reference_model.n_iter_} | {reference:.6f} | {i} | "
                  f"{reference - g:.6f} | {g:.6f} | {target} |", flush=True)
    seconds_pass, seconds_iter, seconds_iter_threaded = cost(
        X, args.components, args.batch, args.repeats, reference_model
    )
    result.update(seconds_per_pass=seconds_pass, seconds_per_batch_iteration=seconds_iter,
                  seconds_per_batch_iteration_threaded=seconds_iter_threaded)
    print()
    print(f"cost on the last data set (median of {args.repeats} alternating rounds):")
    print(f"  one pass of partial_fit:                  {seconds_pass * 1e3:8.1f} ms")
    print(f"  one batch EM iteration, single thread:    {seconds_iter * 1e3:8.1f} ms   "
          f"ratio {seconds_pass / seconds_iter:.2f} (target <= 4)")
    print(f"  one batch EM iteration, fit's threads:    {seconds_iter_threaded * 1e3:8.1f} ms   "
          f"ratio {seconds_pass / seconds_iter_threaded:.2f} ({os.cpu_count()} cores)")
    if args.memory_csv_gb:
        memory = memory_run(args.memory_csv_gb, args.features, args.components, args.batch,
                            args.tmpdir)
        result["memory"] = memory
        print()
        print(f"gaussmix fit --stream on a {memory['csv_bytes'] / 1e9:.2f} GB CSV "
              f"({memory['rows']:,} rows): peak resident memory {memory['peak_rss_mb']:.0f} MB, "
              f"{memory['seconds']:.0f} s (file deleted)")
        print(f"  {memory['stderr']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
