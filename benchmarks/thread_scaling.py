#!/usr/bin/env python
"""How the E-step's two threads scale, and what limits them (issue 14's diagnosis).

Usage::

    python benchmarks/thread_scaling.py                       # full-64d-f32's data
    python benchmarks/thread_scaling.py --rows full-128d --blocks 1024,2048,4096
    python benchmarks/thread_scaling.py --blocks default --trace 11   # along the fit

Up to three measurements (the third with ``--trace``), each as the best of ``--repeats``
timings (the first two interleaved):

1. **NumPy calls in two threads.** The same loop of calls run twice in one thread, then
   once in each of two threads (the BLAS pinned to one thread, as gaussmix's block pool
   does): the scaling is the serial time over the two-thread time (2.0 is perfect). Matrix
   products (the E-step's bands, the scatter's symmetric products) against small
   element-wise calls on (8, 512) arrays (the normalisation's kind). A small call releases
   and retakes the GIL; with two threads doing so, each hand-over costs a wake-up, which
   can make two threads slower than one.
2. **The E-step over every row** (``gaussmix.stats._estep_over``) of one of
   ``benchmarks/bench_em.py``'s rows, from the parameters after ``--iterations`` EM
   iterations of its start: one thread against the block pool of
   :func:`gaussmix._parallel.block_executor`, for several rows per block (the default is
   ``gaussmix.stats.auto_block_size``), and against two processes (forked, one thread
   each) each taking half of the rows: what two cores give without a GIL to share, so
   the gap between the two scalings is what the threads lose to it.

3. **The E-step along the fit** (``--trace``): from the parameters after 1, 2, ..., N
   iterations of the row's start, the E-step over every row in one thread, the number of
   components each row holds a responsibility for (above ``1e-30`` of its largest, the
   scatter's rule: ``gaussmix._estep.StackedWhitening``) and the E-step's rate by the
   4NKD^2 model as a fraction of the one-thread matrix-product rate measured in the same
   run (``bench_em.matmul_rates``): where ``bench_em.py``'s 10 timed iterations spend
   their time.

Timings only: nothing is asserted (the machine is shared and noisy).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_em

ROWS = bench_em.full_rows()  # name: (N, D, K, dtype)


def _best(func, repeats):
    func()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return min(times)


def call_scaling(repeats: int) -> None:
    """Serial time of two loops over the time of the two loops in two threads."""
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)

    def arrays():
        f32 = np.float32
        return {
            "band": rng.standard_normal((8, 11, 65)).astype(f32),
            "data": rng.standard_normal((65, 512)).astype(f32),
            "out": np.empty((8, 11, 512), f32),
            "y": rng.standard_normal((8, 65, 512)).astype(f32),
            "scatter": np.empty((8, 65, 65), f32),
            "small": rng.uniform(-5.0, 0.0, (8, 512)).astype(f32),
        }

    def products(a, n=400):
        for _ in range(n):
            np.matmul(a["band"], a["data"], out=a["out"])

    def symmetric(a, n=100):
        y = a["y"]
        for _ in range(n):
            np.matmul(y, np.swapaxes(y, 1, 2), out=a["scatter"])

    def small(a, n=1000):
        e = a["small"]
        for _ in range(n):
            top = e.max(axis=0)
            np.subtract(e, top, out=e)
            np.exp(e, out=e)
            np.log(e, out=e)

    print("| NumPy calls | one thread, twice (ms) | two threads (ms) | scaling |")
    print("|---|---:|---:|---:|")
    with threadpool_limits(1, user_api="blas"), ThreadPoolExecutor(2) as pool:
        for name, loop in (("batched products (8 x (11 x 65) @ (65 x 512)), f32", products),
                           ("symmetric products (8 x (65 x 512) @ its transpose), f32",
                            symmetric),
                           ("small element-wise calls on (8, 512), f32", small)):
            one, two = arrays(), arrays()

            def serial(loop=loop, one=one):
                loop(one)
                loop(one)

            def threaded(loop=loop, one=one, two=two):
                future = pool.submit(loop, two)
                loop(one)
                future.result()

            t1, t2 = _best(serial, repeats), _best(threaded, repeats)
            print(f"| {name} | {1e3 * t1:.1f} | {1e3 * t2:.1f} | {t1 / t2:.2f} |")


_SHARED: dict = {}  # the forked processes' data (set before the pool is made)


def _half_estep(i: int) -> None:
    """The E-step over half ``i`` of the rows in ``_SHARED``, the BLAS on one thread."""
    X, params, size = _SHARED["X"], _SHARED["params"], _SHARED["size"]
    half = X.shape[0] // 2
    _one_thread_estep(X[:half] if i == 0 else X[half:], params, size)


def _row_data(row: str):
    """(X, start) of a bench_em row: its data and its initial parameters."""
    n, d, k, dtype = ROWS[row]
    X = bench_em.make_data(n, d, k, dtype)
    return X, bench_em.make_init(X, k, "full")


def _fitted(X, k: int, init: dict, iterations: int):
    """The model after ``iterations`` EM iterations from bench_em's start."""
    from gaussmix import GaussianMixture

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (a few iterations: not converged)
        return GaussianMixture(k, covariance_type="full", max_iter=iterations, tol=0,
                               init_params="random_from_data", **init).fit(X)


def _one_thread_estep(X, params, size: int) -> None:
    """The E-step over every row of X in this thread, the BLAS on one thread."""
    from threadpoolctl import threadpool_limits

    from gaussmix import stats

    with threadpool_limits(1, user_api="blas"):
        stats._estep_over(X, params, None, X.dtype, size, None)


def estep_scaling(row: str, X, init: dict, blocks: list[int | None], iterations: int,
                  repeats: int) -> None:
    """The E-step over every row of a bench_em row, one thread against the block pool."""
    from gaussmix import stats
    from gaussmix._parallel import block_executor

    n, d, k, dtype = ROWS[row]
    params = _fitted(X, k, init, iterations)._get_parameters()
    default = stats.auto_block_size(d, k, X.dtype.itemsize, "full")
    print()
    print(f"E-step over all {n:,} rows of {row} (D = {d}, K = {k}, {dtype}), parameters after "
          f"{iterations} iterations; default block {default} rows")
    print()
    print("| rows per block | one thread (ms) | two threads, block pool (ms) | scaling "
          "| two processes, half each (ms) | scaling |")
    print("|---:|---:|---:|---:|---:|---:|")
    import multiprocessing

    for block in blocks:
        size = default if block is None else block
        _SHARED.update(X=X, params=params, size=size)
        procs = multiprocessing.get_context("fork").Pool(2)

        def forked(procs=procs):
            procs.map(_half_estep, [0, 1], chunksize=1)

        def pooled(size=size):
            with block_executor(X.shape[0]) as executor:
                stats._estep_over(X, params, None, X.dtype, size, executor)

        def alone(size=size):
            _one_thread_estep(X, params, size)

        one, two, apart = [], [], []
        with procs:
            for _ in range(repeats):  # interleaved: the machine's load moves them alike
                one.append(_best(alone, 1))
                two.append(_best(pooled, 1))
                apart.append(_best(forked, 1))
        t1, t2, t3 = min(one), min(two), min(apart)
        label = f"{size} (default)" if block is None else f"{size}"
        print(f"| {label} | {1e3 * t1:.1f} | {1e3 * t2:.1f} | {t1 / t2:.2f} | {1e3 * t3:.1f} "
              f"| {t1 / t3:.2f} |")


def estep_trace(row: str, X, init: dict, iterations: int, repeats: int) -> None:
    """The one-thread E-step from the parameters after each of the first iterations."""
    from threadpoolctl import threadpool_limits

    from gaussmix import stats

    n, d, k, dtype = ROWS[row]
    size = stats.auto_block_size(d, k, X.dtype.itemsize, "full")
    with threadpool_limits(1, user_api="blas"):
        gemm = bench_em.matmul_rates(2048, max(3, repeats), (dtype,))[dtype] * 1e9
    model_flops = 4.0 * n * k * d * d
    print()
    print(f"E-step over all {n:,} rows of {row} in one thread, along the fit from bench_em's "
          f"start; one-thread matmul {gemm / 1e9:.0f} GFLOP/s ({dtype})")
    print()
    print("| after iterations | components held per row | E-step (ms) | of matmul by 4NKD^2 |")
    print("|---:|---:|---:|---:|")
    for it in range(1, iterations + 1):
        model = _fitted(X, k, init, it)
        params = model._get_parameters()
        resp = model.predict_proba(X)
        held = float(np.mean(np.sum(resp > 1e-30 * resp.max(axis=1, keepdims=True), axis=1)))
        t = _best(lambda params=params: _one_thread_estep(X, params, size), repeats)
        print(f"| {it} | {held:.2f} | {1e3 * t:.1f} | {model_flops / t / gemm:.2f} |")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", default="full-64d-f32", choices=sorted(ROWS),
                        help="bench_em.py row whose data and start are used")
    parser.add_argument("--blocks", default="default,1024,4096",
                        help="comma-separated rows per block ('default': gaussmix's choice)")
    parser.add_argument("--iterations", type=int, default=5,
                        help="EM iterations from the start before the E-step is timed")
    parser.add_argument("--repeats", type=int, default=5, help="timings per measurement")
    parser.add_argument("--trace", type=int, default=0, metavar="N",
                        help="also time the E-step after each of the first N iterations")
    args = parser.parse_args(argv)
    try:
        blocks = [None if b == "default" else int(b) for b in args.blocks.split(",") if b]
    except ValueError:
        parser.error(f"--blocks: integers or 'default', got {args.blocks!r}")
    if args.repeats < 1 or args.iterations < 1 or any(b is not None and b < 1 for b in blocks):
        parser.error("--repeats, --iterations and every block size must be at least 1")
    if args.trace < 0:
        parser.error("--trace must be 0 (off) or a number of iterations")
    try:
        import threadpoolctl  # noqa: F401
    except ImportError:
        parser.error("threadpoolctl is needed (pip install threadpoolctl)")
    print("# Two threads in the E-step: what scales")
    print()
    call_scaling(args.repeats)
    X, init = _row_data(args.rows)
    estep_scaling(args.rows, X, init, blocks, args.iterations, args.repeats)
    if args.trace:
        estep_trace(args.rows, X, init, args.trace, args.repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
