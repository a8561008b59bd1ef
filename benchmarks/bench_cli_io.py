"""Speed and memory of the command line's readers and writers (issue 15, item 5).

Two measurements, with the issue's targets:

1. **Reading CSV**: ``gaussmix._readers.read_data`` (what every command reads a CSV with:
   header and delimiter detection, Apache Arrow's parser, the checks) against
   ``pandas.read_csv`` on the same file, alternately, ``--repeats`` times each. The ratio
   of the medians is printed. Target: at most 2 on a 2,000,000 x 4 CSV. The peak memory
   of each, reading the file once in a child process, is printed too.
2. **Peak memory of the command line on a .npy file**: ``gaussmix fit DATA.npy -k 3 -c full``
   (model.json, assignments.csv, plots) and ``gaussmix predict MODEL DATA.npy --proba``, each
   in a child process whose peak resident set size is read from ``os.wait4`` (the kernel's
   ``ru_maxrss``: it includes the memory-mapped pages of the data file that were read).
   For reference, ``GaussianMixture(3, covariance_type="full", init_params="robust").fit``
   on the memory-mapped array in a child of its own. Target: fit and predict --proba under
   600 MB on 1e7 x 2.

Usage::

    .venv/bin/python benchmarks/bench_cli_io.py            # 2e6 x 4 CSV, 1e6 x 2 .npy
    .venv/bin/python benchmarks/bench_cli_io.py --full     # 2e6 x 4 CSV, 1e7 x 2 .npy
    .venv/bin/python benchmarks/bench_cli_io.py --csv-rows 2000 --npy-rows 5000 --repeats 1

Files are written to a temporary folder (``--workdir`` to choose it) and removed after.
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

import numpy as np

CSV_TARGET = 2.0
PEAK_TARGET_MB = 600.0


def _write_csv(path: str, n: int, d: int, seed: int) -> None:
    """A CSV with a header (x0, x1, ...) and n rows of d floats of about 17 digits."""
    rng = np.random.default_rng(seed)
    names = [f"x{j}" for j in range(d)]
    with open(path, "w") as f:
        f.write(",".join(names) + "\n")
        for start in range(0, n, 200_000):
            block = rng.standard_normal((min(200_000, n - start), d))
            np.savetxt(f, block, delimiter=",", fmt="%.17g")


def _write_npy(path: str, n: int, seed: int) -> None:
    """n x 2 rows from three well-separated Gaussian clusters, written block by block."""
    rng = np.random.default_rng(seed)
    X = np.lib.format.open_memmap(path, mode="w+", dtype=np.float64, shape=(n, 2))
    centres = np.array([[0.0, 0.0], [6.0, 6.0], [-6.0, 6.0]])
    for start in range(0, n, 1_000_000):
        m = min(1_000_000, n - start)
        X[start : start + m] = centres[rng.integers(0, 3, m)] + rng.standard_normal((m, 2))
    X.flush()
    del X


def bench_csv(path: str, repeats: int) -> tuple[float, float, bool]:
    """Median seconds of gaussmix's reader and of pandas.read_csv, and whether they agree."""
    import pandas as pd

    from gaussmix._readers import read_data

    ours, theirs = [], []
    same = True
    for _ in range(repeats):
        start = time.perf_counter()
        ds = read_data(path)
        ours.append(time.perf_counter() - start)
        start = time.perf_counter()
        df = pd.read_csv(path)
        theirs.append(time.perf_counter() - start)
        same = same and np.array_equal(ds.X, df.to_numpy(dtype=np.float64))
        del ds, df
    return statistics.median(ours), statistics.median(theirs), same


# Runs a command and prints its peak resident set size (KiB) and its exit code. A fresh
# small process launches the command: on Linux a child's ru_maxrss starts from the RSS of
# the process it was forked from, which here (after reading the CSV) is large.
_LAUNCHER = """
import os, subprocess, sys
child = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)
_, status, usage = os.wait4(child.pid, 0)
print(usage.ru_maxrss, os.waitstatus_to_exitcode(status))
"""


def peak_of(command: list[str]) -> tuple[float, float]:
    """(peak resident MB, seconds) of a command in a child process; exits if it fails."""
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", _LAUNCHER, *command], capture_output=True, text=True,
        check=False,
    )
    seconds = time.perf_counter() - start
    try:
        kib, code = (int(v) for v in proc.stdout.split())
    except ValueError:
        kib, code = 0, -1
    if code != 0:
        raise SystemExit(f"{' '.join(command)} failed (exit {code}):\n{proc.stderr}")
    return kib / 1024.0, seconds  # ru_maxrss is in KiB on Linux


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--csv-rows", type=int, default=2_000_000)
    parser.add_argument("--csv-columns", type=int, default=4)
    parser.add_argument("--npy-rows", type=int, default=1_000_000)
    parser.add_argument("--full", action="store_true", help="1e7 rows in the .npy file")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-plots", action="store_true", help="fit without the plots")
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args(argv)
    npy_rows = 10_000_000 if args.full else args.npy_rows

    workdir = tempfile.mkdtemp(prefix="bench_cli_io_", dir=args.workdir)
    gaussmix = [sys.executable, "-m", "gaussmix"]
    failed = []
    try:
        csv_path = os.path.join(workdir, "data.csv")
        _write_csv(csv_path, args.csv_rows, args.csv_columns, seed=0)
        ours, pandas_s, same = bench_csv(csv_path, args.repeats)
        ratio = ours / pandas_s
        print(f"Reading a {args.csv_rows:,} x {args.csv_columns} CSV "
              f"({os.path.getsize(csv_path) / 1e6:.0f} MB), median of {args.repeats}:")
        print(f"  gaussmix read_data  {ours:8.3f} s")
        print(f"  pandas.read_csv     {pandas_s:8.3f} s")
        verdict = "PASS" if ratio <= CSV_TARGET else "FAIL"
        print(f"  ratio               {ratio:8.2f}  (target <= {CSV_TARGET:g}: {verdict}); "
              f"same values: {same}")
        if verdict == "FAIL" or not same:
            failed.append("csv")
        for name, code in (
            ("gaussmix read_data", "from gaussmix._readers import read_data as r; r(sys.argv[1])"),
            ("pandas.read_csv", "import pandas; pandas.read_csv(sys.argv[1])"),
        ):
            peak, _ = peak_of([sys.executable, "-c", f"import sys; {code}", csv_path])
            print(f"  peak memory, {name:19s} {peak:5.0f} MB (one child process)")
        os.remove(csv_path)

        npy = os.path.join(workdir, "data.npy")
        _write_npy(npy, npy_rows, seed=1)
        out = os.path.join(workdir, "out")
        fit = [*gaussmix, "fit", npy, "-k", "3", "-c", "full", "-o", out, "-q", "--seed", "0"]
        if args.no_plots:
            fit.append("--no-plots")
        predict = [*gaussmix, "predict", os.path.join(out, "model.json"), npy, "--proba",
                   "-o", os.path.join(workdir, "proba.csv")]
        library = [sys.executable, "-c",
                   "import sys, numpy as np; from gaussmix import GaussianMixture; "
                   "X = np.load(sys.argv[1], mmap_mode='r'); "
                   "GaussianMixture(3, covariance_type='full', init_params='robust', "
                   "random_state=0).fit(X)", npy]
        print(f"\nPeak resident memory on a {npy_rows:,} x 2 .npy file "
              f"({os.path.getsize(npy) / 1e6:.0f} MB), one child process each:")
        for name, command, target in (
            ("gaussmix fit -k 3 -c full", fit, True),
            ("gaussmix predict --proba", predict, True),
            ("library fit on the memmap", library, False),
        ):
            peak, seconds = peak_of(command)
            line = f"  {name:28s} {peak:7.0f} MB  {seconds:7.1f} s"
            if target:
                verdict = "PASS" if peak < PEAK_TARGET_MB else "FAIL"
                line += f"  (target < {PEAK_TARGET_MB:g} MB: {verdict})"
                if verdict == "FAIL":
                    failed.append(name)
            print(line)
        size = os.path.getsize(os.path.join(out, "assignments.csv"))
        print(f"  assignments.csv: {size / 1e6:.0f} MB")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if failed:
        print(f"\nmissed targets: {', '.join(failed)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
