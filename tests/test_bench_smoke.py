"""Smoke test of benchmarks/bench_em.py: ``--quick`` runs and prints a well-formed table.

Nothing here asserts anything about time: the quick sizes are tiny and the numbers meaningless.
"""

import json
import re
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("sklearn")  # the benchmark compares against scikit-learn

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_em.py"
# a fit row (in float32), the prediction row and the memory row: every code path of the
# harness, in 6 short subprocesses (+ the matmul reference)
ROWS = ["full-2d-f32", "predict", "memory"]  # in the order of the script
N_COLUMNS = 15
SECONDS = re.compile(r"^-?\d+(\.\d+)?(e[+-]?\d+)? m?s$")
NUMBER_OR_NA = re.compile(r"^(-?\d+(\.\d+)?(e[+-]?\d+)?|n/a)$")


def _cells(line):
    assert line.startswith("|") and line.endswith("|"), line
    return [c.strip() for c in line[1:-1].split("|")]


def _run(*args, timeout=240):
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.slow
def test_quick_run_prints_well_formed_table(tmp_path):
    raw = tmp_path / "bench.json"
    proc = _run("--quick", "--repeats", "1", "--only", ",".join(ROWS), "--json", str(raw))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()

    # machine description
    text = proc.stdout
    for needle in ("- Machine:", "- Software:", "- BLAS used by NumPy", "OPENBLAS_CORETYPE",
                   "- NumPy matmul", "- Flop model"):
        assert needle in text, needle

    # main table: header, separator, one line per requested row, in order
    start = next(i for i, line in enumerate(lines) if line.startswith("| row |"))
    header = _cells(lines[start])
    assert len(header) == N_COLUMNS
    assert header[6] == "gaussmix s/iter" and header[7] == "sklearn s/iter"
    assert set(_cells(lines[start + 1])) == {"---"}
    body = [_cells(line) for line in lines[start + 2 : start + 2 + len(ROWS)]]
    assert [cells[0] for cells in body] == ROWS
    assert not lines[start + 2 + len(ROWS)].startswith("|")  # nothing more in the table
    for cells in body:
        assert len(cells) == N_COLUMNS, cells
        assert SECONDS.match(cells[6]), cells  # gaussmix s/iter
        assert SECONDS.match(cells[7]), cells  # sklearn s/iter
        assert re.match(r"^(-?\d+(\.\d+)?x|n/a)$", cells[8]), cells  # ratio
        # of matmul: wherever there is a GFLOP/s (not on the memory row)
        assert NUMBER_OR_NA.match(cells[9]) and (cells[9] == "n/a") == (cells[10] == "n/a"), cells
        assert NUMBER_OR_NA.match(cells[11]) and cells[11] != "n/a", cells  # matmul GFLOP/s
        assert re.match(r"^\d+ MB$", cells[12]) and re.match(r"^\d+ MB$", cells[13]), cells
    assert body[0][4] == "full" and body[0][5] == "f32"

    # targets with verdicts
    t0 = next(i for i, line in enumerate(lines) if line.startswith("### Targets"))
    targets = [_cells(line) for line in lines[t0 + 4 :] if line.startswith("|")]
    assert targets, "no targets printed"
    assert all(t[2] in {"PASS", "FAIL", "n/a"} for t in targets), targets
    assert any("predict_proba" in t[0] for t in targets)
    assert any("peak RSS" in t[0] for t in targets)

    # raw results
    data = json.loads(raw.read_text())
    assert [d["name"] for d in data["derived"]] == ROWS
    assert data["matmul"]["f64"] > 0 and data["matmul"]["f32"] > 0
    for name in ROWS:
        for who in ("cand", "sk"):
            cell = data["results"][name][who]
            assert cell["ok"], cell
            assert cell["data"]["peak_rss_mb"] > 0


def test_unknown_row_is_a_clear_error():
    proc = _run("--quick", "--only", "no-such-row", timeout=60)
    assert proc.returncode == 2
    assert "unknown row" in proc.stderr and "--list" in proc.stderr


@pytest.mark.slow
def test_rounds_report_the_median_of_the_per_round_ratios(tmp_path):
    raw = tmp_path / "bench.json"
    # full-32d: large enough at --quick sizes for a positive time per iteration
    proc = _run("--quick", "--repeats", "3", "--rounds", "3", "--only", "full-32d",
                "--json", str(raw))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "- Rounds: 3" in proc.stdout
    per_round = next(line for line in proc.stdout.splitlines()
                     if line.startswith("- Ratio per round: "))
    printed = [float(r) for r in re.findall(r"(\d+(?:\.\d+)?)x", per_round)]
    data = json.loads(raw.read_text())
    assert len(data["rounds"]) == 3
    ratios = [d[0]["ratio"] for d in data["derived_per_round"]]
    # A round is n/a when its difference of two timings came out below zero: on a loaded
    # machine that can be most rounds, so the count of valid rounds is not asserted.
    valid = [r for r in ratios if r is not None]
    assert len(printed) == len(valid)
    row = next(line for line in proc.stdout.splitlines() if line.startswith("| full-32d |"))
    if not valid:
        assert data["derived"][0]["ratio"] is None and _cells(row)[8] == "n/a"
        return
    median = statistics.median(valid)
    assert data["derived"][0]["ratio"] == median
    assert _cells(row)[8] == f"{median:.1f}x"
