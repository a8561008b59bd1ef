#!/usr/bin/env python
"""Every grid point of ``select_model`` against mclust's ``mclustBIC``, over several seeds.

Usage::

    python benchmarks/select_points.py                          # Old Faithful and iris
    python benchmarks/select_points.py --only synthetic-5k --seeds 0,1
    python benchmarks/select_points.py --seeds 0-4 --grid sklearn
    python benchmarks/select_points.py --grid sklearn --steps   # + the EM steps taken
    python benchmarks/select_points.py --n-init 0 --set _SCREEN_STEPS=12   # other settings

``bench_select.py`` compares the best BIC of a grid and the time; this compares the whole
table: per data set (those of ``bench_select.py``, the same files) and ``random_state``,
how many of the grid points gaussmix fits worse than mclust (BIC above mclust's by more
than ``--tol``), how many better, which are worse and by how much, the summed
log-likelihood of all its grid points (a single number that moves when any fit moves),
and the CPU time of the ``select_model`` call (the best of ``--repeats``). mclust's table
is computed once per data set through ``Rscript``; without R the script stops with a
message. On more than 2,000 rows mclust's hierarchical start runs on a random subset of
2,000 (``mclust.options("subset")``), drawn from R's generator: its table then changes from
one call to the next (measured on synthetic-5k: EEE with 7 components 564 apart in BIC
between two calls), so the script seeds R (``set.seed(1)``) for a table that reruns the
same; treat its worse and better counts on those sets as against one draw of mclust's,
and compare gaussmix with itself there by the summed log-likelihood.

``--n-init`` passes ``select_model``'s ``n_init``; ``--set NAME=VALUE`` (repeatable) sets one
of the strategy's settings in :mod:`gaussmix.selection` (``SETTINGS``: the module constants
its functions read when they run, not as default arguments) for this run only: the table
then shows what a cheaper or costlier strategy gives up or gains against mclust, grid
point by grid point.
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

R_TABLE = r"""
suppressPackageStartupMessages(library(mclust))
args <- commandArgs(trailingOnly = TRUE)
models <- eval(parse(text = args[1]))
X <- as.matrix(read.csv(args[2]))
set.seed(1)  # (mclust's hierarchical start on a random subset of more than 2,000 rows)
b <- mclustBIC(X, G = 1:9, modelNames = models, verbose = FALSE)
write.csv(as.data.frame(unclass(b)[, ]), args[3])
"""


def _seeds(text: str) -> list[int]:
    out = []
    for part in text.split(","):
        if "-" in part:
            lo, hi = part.split("-")
            out.extend(range(int(lo), int(hi) + 1))
        elif part:
            out.append(int(part))
    return out


def mclust_table(path: Path, grid: str, workdir: Path) -> dict[tuple[str, int], float]:
    """{(mclust model, G): BIC in gaussmix's sign} of mclustBIC on the CSV file."""
    import bench_select

    script = workdir / "table.R"
    script.write_text(R_TABLE)
    out = workdir / f"{path.stem}_{grid}_bic.csv"
    proc = subprocess.run(["Rscript", str(script), bench_select.GRIDS[grid][1], str(path),
                           str(out)], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"Rscript failed:\n{proc.stderr}")
    table = {}
    with out.open() as handle:
        rows = csv.reader(handle)
        header = next(rows)
        for row in rows:
            for model, value in zip(header[1:], row[1:], strict=True):
                if value != "NA":
                    table[(model, int(row[0]))] = -float(value)
    return table


def _count_steps(selection, X, grid: str, seed: int, options=None) -> tuple[int, int]:
    """(batched EM steps, mixtures they stepped) of one select_model call, through the
    engine's step hook (selection._em_step)."""
    import bench_select

    counts = [0, 0]
    original = selection._em_step

    def counted(rows, batch):
        counts[0] += 1
        counts[1] += batch.size
        return original(rows, batch)

    selection._em_step = counted
    try:
        selection.select_model(X, covariance_types=bench_select.GRIDS[grid][0],
                               random_state=seed, **(options or {}))
    finally:
        selection._em_step = original
    return counts[0], counts[1]


#: The settings of gaussmix.selection that --set may change: module constants read when the
#: functions run (a default argument, _POLISH_MAX_ITER's, keeps the value it was defined with).
SETTINGS = ("_FIRST_BUDGET", "_HALVING", "_RACE_TOL", "_POLISH_GAIN", "_POLISH_RELATIVE",
            "_N_SPLITS", "_FINALISTS", "_FINALISTS_CONSTRAINED", "_SCREEN_STEPS",
            "_SCREEN_KEEP", "_SCREEN_CHUNK", "_SCREEN_HORIZON", "_SCREEN_MAX_SAMPLES",
            "_TWIN_ROWS", "_PRUNE_CHUNK", "_PRUNE_HORIZON", "_EXTRA_STARTS",
            "_RACE_MAX_SAMPLES", "_HC_MAX_SAMPLES", "_FULL_POLISH_MAX_ITER")


def _settings(pairs: list[str]) -> dict[str, int | float]:
    """{name: value} of ``--set NAME=VALUE`` options; ValueError in words."""
    from gaussmix import selection

    out: dict[str, int | float] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or name not in SETTINGS:
            raise ValueError(f"--set {pair}: not NAME=VALUE with NAME one of {', '.join(SETTINGS)}")
        kind = type(getattr(selection, name))
        try:
            out[name] = kind(text)
        except ValueError:
            raise ValueError(f"--set {pair}: {text!r} is not a {kind.__name__}") from None
    return out


@contextmanager
def _strategy(selection, settings: dict[str, int | float]):
    """``selection``'s settings changed to ``settings`` for the duration, then put back."""
    saved = {name: getattr(selection, name) for name in settings}
    for name, value in settings.items():
        setattr(selection, name, value)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(selection, name, value)


def main(argv=None) -> int:
    import bench_select

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default="faithful,iris",
                        help=f"comma-separated data sets among {', '.join(bench_select.DATASETS)}")
    parser.add_argument("--seeds", default="0", help="random_state values: 0,3 or 0-4")
    parser.add_argument("--grid", default="all", choices=sorted(bench_select.GRIDS))
    parser.add_argument("--tol", type=float, default=0.002,
                        help="BIC difference counted as worse or better")
    parser.add_argument("--repeats", type=int, default=1, help="timings per seed (the best)")
    parser.add_argument("--steps", action="store_true",
                        help="also count the batched EM steps of one more, untimed call (and "
                             "the mixture-steps they hold): the race, the screen and the "
                             "polish on the rows in memory, not a final polish on all rows")
    parser.add_argument("--n-init", type=int, default=None,
                        help="select_model's n_init (default: select_model's own)")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="set one of the strategy's settings in gaussmix.selection "
                             "for this run (repeatable; see SETTINGS)")
    args = parser.parse_args(argv)
    try:
        settings = _settings(args.set)
    except ValueError as exc:
        parser.error(str(exc))
    if args.n_init is not None and args.n_init < 0:
        parser.error("--n-init must be at least 0")
    names = [n for n in args.only.split(",") if n]
    if any(n not in bench_select.DATASETS for n in names):
        parser.error(f"--only: choose among {', '.join(bench_select.DATASETS)}")
    seeds = _seeds(args.seeds)
    if not seeds or args.repeats < 1:
        parser.error("--seeds must name at least one seed, --repeats be at least 1")
    why_not = bench_select.mclust_available()
    if why_not is not None:
        print(f"mclust is needed: {why_not}", file=sys.stderr)
        return 2

    from gaussmix import selection
    from gaussmix.selection import MCLUST_NAMES

    options = {} if args.n_init is None else {"n_init": args.n_init}

    def select_model(X, **kwargs):
        return selection.select_model(X, **kwargs, **options)

    changed = [f"n_init={args.n_init}"] if options else []
    changed += [f"{name}={value}" for name, value in settings.items()]
    print(f"# select_model's grid points against mclustBIC ({args.grid} grid, "
          f"tolerance {args.tol} in BIC{', ' if changed else ''}{', '.join(changed)})")
    print()
    steps_head, steps_rule = (" EM steps (mixture-steps) |", "---:|") if args.steps else ("", "")
    print("| data | seed | CPU s | summed log-lik. | best BIC (mclust) | worse | better | "
          f"worse grid points (BIC above mclust's) |{steps_head}")
    print(f"|---|---:|---:|---:|---|---:|---:|---|{steps_rule}")
    with _strategy(selection, settings), tempfile.TemporaryDirectory(
            prefix="select_points_") as tmp:
        workdir = Path(tmp)
        for name in names:
            X, columns = bench_select.load(name)
            path = workdir / f"{name}.csv"
            X = bench_select.write_csv(path, X, columns)
            reference = mclust_table(path, args.grid, workdir)
            for seed in seeds:
                times = []
                for _ in range(args.repeats):
                    start = time.process_time()
                    result = select_model(X, covariance_types=bench_select.GRIDS[args.grid][0],
                                          random_state=seed)
                    times.append(time.process_time() - start)
                worse, better, total = [], 0, 0.0
                for row in result.table:
                    if row["bic"] is None:
                        continue
                    model = MCLUST_NAMES.get(row["covariance_type"], row["covariance_type"])
                    key = (model, row["n_components"])
                    total += row["log_likelihood"]
                    if key not in reference:
                        continue
                    gap = row["bic"] - reference[key]
                    if gap > args.tol:
                        worse.append(f"{model}{key[1]} {gap:+.3f}")
                    elif gap < -args.tol:
                        better += 1
                best = result.ranked()[0]["bic"]
                counted = ""
                if args.steps:
                    calls, mixtures = _count_steps(selection, X, args.grid, seed, options)
                    counted = f" {calls} ({mixtures}) |"
                print(f"| {name} | {seed} | {min(times):.3f} | {total:.3f} | {best:.3f} "
                      f"({min(reference.values()):.3f}) | {len(worse)} | {better} | "
                      f"{', '.join(worse) or '-'} |{counted}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
