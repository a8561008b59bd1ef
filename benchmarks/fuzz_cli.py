"""A random search of the command line: data files of every kind through chains of commands.

Every case writes a small data file (CSV, TSV or ``.npy``; with or without a header;
clusters at any scale and offset; a constant feature, rounded values, missing cells
(empty, ``NA``, ``nan``; NaN in ``.npy``), in a tenth of the files a cell that is not a
number, blank and comment lines, a byte-order mark, CRLF line ends, float32), runs ``gaussmix
fit`` with random options (a fixed K and one of the 18 covariance names, or ``-k auto``
over a grid, a third of those with ``--jobs 2``; float32, mclust's prior, an
initialisation, a ``--reg-covar`` that may be invalid), and when a model came out, four of
``predict`` (``--proba``), ``score`` (``--per-sample``), ``impute``, ``sample``
(``--labels``) and ``info`` on the same file or on another one drawn alike (its header
sometimes naming other columns).

A problem is:

* a traceback, or an exit code other than 0, 1 or 2;
* exit code 2 without the one-line ``gaussmix: error: ...`` that names the problem;
* a failed command that leaves its ``-o`` file behind (outputs are written whole or not
  at all);
* a command that succeeded without writing its ``-o`` file, or whose per-row output
  (``predict``, ``score --per-sample``, ``impute``) has another number of rows than the
  data (the file's lines less blank lines, comment lines and the header), or a ``sample
  -n N`` without N rows.

    python benchmarks/fuzz_cli.py                        # 100 cases from seed 0
    python benchmarks/fuzz_cli.py --cases 500 --seed 3
    python benchmarks/fuzz_cli.py --seed 3 --only 41 --keep /tmp/case41   # rerun one

Each command runs in its own process (``python -m gaussmix``): 2 to 5 seconds a case.
Exit code 1 if any case was a problem. Written after an ad hoc search of 450 such cases,
which found that empty lines of one-column files were skipped without a word (predict
wrote fewer rows than the file's lines): pandas and R skip blank lines too, and the
data argument's help and the README now say that row numbers count the data rows read.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile

import numpy as np

from fuzz_fits import MODELS  # the 18 covariance names

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(HERE, os.pardir, "src")

FOLLOW_UPS = ("predict", "predict --proba", "score", "score --per-sample", "impute", "sample",
              "info")
PER_ROW = ("predict", "predict --proba", "score --per-sample", "impute")
#: Commands run and fits that wrote a model, over the cases of this process.
COUNTS = {"commands": 0, "models": 0}


def _cell(rng, value, missing: float, bad: float) -> str:
    r = rng.random()
    if r < missing:
        return str(rng.choice(["", "NA", "nan"]))
    if r < missing + bad:
        return str(rng.choice(["inf", "abc", "1e400", "-", " 3 "]))
    return repr(float(value)) if rng.random() < 0.5 else f"{value:.4g}"


def write_data(rng, path_stem: str, n: int, d: int, names) -> tuple[str, int]:
    """A data file of n rows and d features; returns its path and its number of data rows
    (the rows the readers keep)."""
    centres = rng.normal(size=(3, d)) * 5.0
    X = centres[rng.integers(0, 3, n)] + rng.normal(size=(n, d)) * rng.uniform(0.1, 2.0, d)
    X = X * 10.0 ** rng.integers(-3, 4) + rng.choice([0.0, 1e3, -7.0])
    if rng.random() < 0.1:
        X[:, 0] = 1.0  # a constant feature
    if rng.random() < 0.1:
        X = np.round(X, 1)
    kind = rng.choice(["csv", "csv", "csv", "tsv", "npy"])
    if kind == "npy":
        if rng.random() < 0.2:
            X[rng.integers(0, n, 3), 0] = np.nan
        if rng.random() < 0.1:
            X = X.astype(np.float32)
        path = path_stem + ".npy"
        np.save(path, X)
        return path, n
    delimiter = "," if kind == "csv" else "\t"
    lines = [delimiter.join(names)] if names is not None else []
    # missing cells in a third of the files, about one cell that is no number in a tenth
    missing = 0.05 if rng.random() < 1 / 3 else 0.0
    bad = 1.0 / X.size if rng.random() < 0.1 else 0.0
    for row in X:
        lines.append(delimiter.join(_cell(rng, v, missing, bad) for v in row))
        if rng.random() < 0.02:
            lines.append(str(rng.choice(["", "# a comment", "   "])))
    text = "\n".join(lines) + "\n"
    if rng.random() < 0.05:
        text = "\ufeff" + text
    if rng.random() < 0.05:
        text = text.replace("\n", "\r\n")
    path = f"{path_stem}.{kind}"
    with open(path, "w", encoding="utf-8", newline="") as handle:
        handle.write(text)
    # The data rows as the readers count them: blank lines (in one column, also a row whose
    # one cell is empty) and comment lines are skipped.
    data_lines = [line for line in lines if line.strip() and not line.startswith("#")]
    return path, len(data_lines) - (names is not None)


def fit_arguments(rng) -> list[str]:
    args = ["--seed", str(int(rng.integers(0, 10)))]
    if rng.random() < 0.5:
        args += ["-k", str(int(rng.integers(1, 5))), "-c", str(rng.choice(MODELS))]
    else:
        args += ["-k", "auto", "--components", str(rng.choice(["1-3", "2", "1-2"])),
                 "-c", str(rng.choice(["all", "sklearn", "VEV,EII", "full"]))]
        if int(args[1]) % 3 == 0:  # a third of the selections in two processes (no draw:
            args += ["--jobs", "2"]  # the cases of a seed stay the same)
    if rng.random() < 0.2:
        args += ["--dtype", "float32"]
    if rng.random() < 0.15:
        args += ["--prior", "default"]
    if rng.random() < 0.15:
        args += ["--init", str(rng.choice(["robust", "kmeans", "random", "random_from_data"]))]
    if rng.random() < 0.1:
        args += ["--reg-covar", str(rng.choice(["0", "1e-3", "-1", "x"]))]
    return args


def _gaussmix(args: list[str], cwd: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([SRC, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.pop("PYTHONWARNINGS", None)
    return subprocess.run([sys.executable, "-m", "gaussmix", *args], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=600, check=False)


def _rows_written(path: str) -> int:
    """Data rows of a CSV output: its lines less a header (a first cell that is no number)."""
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    if not rows:
        return 0
    try:
        float(rows[0][0])
        return len(rows)
    except (ValueError, IndexError):
        return len(rows) - 1


def run_case(seed: int, case: int, workdir: str) -> list[str]:
    """The problems of one case (empty: none); its files go into ``workdir`` (made if
    needed)."""
    os.makedirs(workdir, exist_ok=True)
    rng = np.random.default_rng([seed, case])
    problems: list[str] = []
    counts = COUNTS

    def check(args, output=None, expected_rows=None):
        result = _gaussmix(args, workdir)
        shown = "gaussmix " + " ".join(os.path.basename(a) if os.sep in a else a for a in args)
        err = result.stderr.strip()
        last = err.splitlines()[-1] if err else ""
        counts["commands"] += 1
        if "Traceback" in result.stderr or result.returncode not in (0, 1, 2):
            problems.append(f"{shown}: exit {result.returncode}\n{err[-1500:]}")
        elif result.returncode == 2 and not last.startswith("gaussmix: error: "):
            problems.append(f"{shown}: exit 2 without a one-line message:\n{err[-800:]}")
        elif result.returncode != 0 and output is not None and os.path.exists(output):
            problems.append(f"{shown}: failed (exit {result.returncode}) and left {output}")
        elif result.returncode == 0 and output is not None:
            if not os.path.exists(output):
                problems.append(f"{shown}: succeeded without writing {output}")
            elif expected_rows is not None and _rows_written(output) != expected_rows:
                problems.append(f"{shown}: {_rows_written(output)} rows written for "
                                f"{expected_rows} data rows")
        return result

    n, d = int(rng.integers(3, 400)), int(rng.integers(1, 5))
    names = [f"f{j}" for j in range(d)] if rng.random() < 0.8 else None
    data, n_rows = write_data(rng, os.path.join(workdir, "data"), n, d, names)
    model_dir = os.path.join(workdir, "model")
    fitted = check(["fit", data, "-q", "--no-plots", "-o", model_dir, *fit_arguments(rng)])
    model = os.path.join(model_dir, "model.json")
    if fitted.returncode != 0 or not os.path.exists(model):
        return problems
    counts["models"] += 1
    if rng.random() < 0.5:
        other_names = names if rng.random() < 0.9 else [f"g{j}" for j in range(d)]
        data, n_rows = write_data(rng, os.path.join(workdir, "other"),
                                  int(rng.integers(1, 50)), d, other_names)
    for command in rng.choice(FOLLOW_UPS, size=4, replace=False):
        output = os.path.join(workdir, command.replace(" --", "-") + ".csv")
        if command == "info":
            check(["info", model])
            continue
        if command == "sample":
            count = int(rng.choice([0, 1, 5, 100]))
            labels = ["--labels"] if rng.random() < 0.5 else []
            check(["sample", model, "-n", str(count), "--seed", "1", "-q", "-o", output,
                   *labels], output, count)
            continue
        verb, *flags = command.split()
        check([verb, model, data, "-q", "-o", output, *flags], output,
              n_rows if command in PER_ROW else None)
    return problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=100, help="cases to run")
    parser.add_argument("--seed", type=int, default=0, help="seed of the cases")
    parser.add_argument("--only", help="run only these case numbers (comma-separated)")
    parser.add_argument("--keep", help="write the cases' files under this folder (kept)")
    parser.add_argument("--show", type=int, default=10, help="problems to print")
    args = parser.parse_args(argv)
    if args.cases < 1:
        parser.error("--cases must be at least 1")
    cases = (range(args.cases) if args.only is None
             else [int(c) for c in args.only.split(",") if c.strip()])
    found = []
    with tempfile.TemporaryDirectory(prefix="fuzz_cli_") as tmp:
        root = args.keep or tmp
        for case in cases:
            found += [(case, p) for p in run_case(args.seed, case,
                                                  os.path.join(root, f"case{case}"))]
    print(f"{len(cases)} cases from seed {args.seed} ({COUNTS['models']} fits wrote a model, "
          f"{COUNTS['commands']} commands in all): {len(found)} problem(s)")
    for case, problem in found[: args.show]:
        print(f"--- case {case}: {problem}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
