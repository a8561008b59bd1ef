"""Spreading row blocks over the cores.

The per-block matrix products are small (a few MFLOP), where a multi-threaded BLAS spends
more time waking and synchronising its threads than computing, dramatically so on a
busy machine. Working on separate blocks in separate threads, each with a
single-threaded BLAS, keeps every core on useful work: NumPy releases the GIL inside its
kernels. Limiting the BLAS needs threadpoolctl (optional, in the ``fast`` extra);
without it gaussmix runs the blocks sequentially and leaves the BLAS as configured.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

# Below this many rows there is about one block: nothing to spread, and setting up the
# pool (0.3 ms) would weigh on the many small fits of a model selection. Above it, even
# small data benefit from the single-threaded BLAS: with 2 BLAS threads on a busy
# machine, N=2e4, D=128, K=8 ran 1.7 s per iteration against 0.5 s with one.
MIN_ROWS_FOR_THREADS = 4096


_CONTROLLER: list = []  # threadpoolctl's view of the loaded libraries, made once


def one_blas_thread():
    """A context manager holding the BLAS to one thread, or None without threadpoolctl.

    The limit takes effect when this is called (threadpoolctl's way), so enter it at
    once: ``with one_blas_thread():``. threadpoolctl's controller is made once: making
    one scans the loaded libraries (0.2 ms in a bare process, 2 ms once scikit-learn is
    imported), which ``threadpool_limits`` would do at every call, two per
    ``select_model``. A BLAS library loaded after the first call is not limited
    (NumPy's own is loaded before gaussmix).
    """
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return None
    if not _CONTROLLER:
        _CONTROLLER.append(ThreadpoolController())
    return _CONTROLLER[0].limit(limits=1, user_api="blas")


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@contextmanager
def block_executor(n_samples: int):
    """A thread pool (one worker per core) with the BLAS pinned to one thread, or None."""
    n_threads = available_cores()
    if n_threads < 2 or n_samples < MIN_ROWS_FOR_THREADS:
        yield None
        return
    limit = one_blas_thread()
    if limit is None:
        yield None
        return
    with limit, ThreadPoolExecutor(n_threads) as pool:
        yield pool
