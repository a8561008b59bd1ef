"""benchmarks/bench_select.py's rounds: the libraries alternate which goes first, and the
ratio shown (and judged) is the median of the per-round ratios. Both libraries' timings
are replaced by fixed numbers here: no R, no timing, only the harness's arithmetic."""

import statistics
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import bench_select


def _cells(line):
    return [c.strip() for c in line.strip().strip("|").split("|")]


def test_rounds_alternate_and_report_the_median_of_the_per_round_ratios(monkeypatch, capsys,
                                                                         tmp_path):
    order = []  # which library ran, in order
    mclust_seconds = iter([1.0, 2.0, 1.0, 4.0])  # per round (one data set)
    gaussmix_seconds = iter([0.5, 2.0, 2.0, 1.0])  # ratios 2, 1, 0.5, 4: median 1.5

    def run_mclust(files, repeats, workdir, grid):
        order.append("mclust")
        return {files[0].name: (next(mclust_seconds), 10.0)}

    def run_gaussmix(X, repeats, grid, n_jobs):
        order.append("gaussmix")
        assert n_jobs is None  # (table's default)
        return next(gaussmix_seconds), 9.0, None

    monkeypatch.setattr(bench_select, "run_mclust", run_mclust)
    monkeypatch.setattr(bench_select, "run_gaussmix", run_gaussmix)
    path = tmp_path / "faithful.csv"
    bench_select.table("sklearn", ["faithful"], [path], {"faithful": np.zeros((5, 2))}, 1,
                       tmp_path, None, rounds=4)
    out = capsys.readouterr().out
    assert order == ["mclust", "gaussmix", "gaussmix", "mclust"] * 2
    row = next(line for line in out.splitlines() if line.startswith("| faithful |"))
    cells = _cells(row)
    assert cells[2] == f"{statistics.median([1.0, 2.0, 1.0, 4.0]):.3f}"  # mclust s
    assert cells[3] == f"{statistics.median([0.5, 2.0, 2.0, 1.0]):.3f}"  # gaussmix s
    assert cells[4] == "1.50x"  # the median of the per-round ratios, not 1.5 / 1.5
    assert "- per-round ratios: faithful 2.00 / 1.00 / 0.50 / 4.00" in out
    assert "not slower on any data set: PASS" in out  # judged on the median (1.5)
    assert "best BIC equal or better: PASS" in out  # 9 against mclust's 10


def test_one_round_is_the_plain_comparison(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(bench_select, "run_mclust",
                        lambda files, repeats, workdir, grid: {files[0].name: (0.9, 10.0)})
    jobs = []
    monkeypatch.setattr(bench_select, "run_gaussmix",
                        lambda X, repeats, grid, n_jobs: jobs.append(n_jobs) or (1.0, 10.5, None))
    path = tmp_path / "iris.csv"
    bench_select.table("all", ["iris"], [path], {"iris": np.zeros((5, 4))}, 1, tmp_path, None,
                       n_jobs=2)
    assert jobs == [2]  # --jobs reaches select_model's n_jobs
    out = capsys.readouterr().out
    assert _cells(next(line for line in out.splitlines() if line.startswith("| iris |")))[4] \
        == "0.90x"
    assert "per-round ratios" not in out
    assert "not slower on any data set: FAIL (slower on iris)" in out
    assert "best BIC equal or better: FAIL (worse on iris)" in out


def test_select_points_counts_the_engine_steps_and_puts_its_hook_back():
    """select_points.py --steps: the batched EM steps of one call, through selection's
    step hook, the hook it found back in place afterwards (no R needed for the count)."""
    import select_points
    from gaussmix import selection
    from gaussmix.datasets import load_faithful

    X = np.asarray(load_faithful(), dtype=np.float64)[::4]
    hook = selection._em_step
    steps = []

    def watched(rows, batch):
        steps.append(batch.size)
        return hook(rows, batch)

    selection._em_step = watched
    try:
        calls, mixtures = select_points._count_steps(selection, X, "sklearn", 0)
        assert selection._em_step is watched  # (the hook it found, back in place)
    finally:
        selection._em_step = hook
    assert calls == len(steps) > 0 and mixtures == sum(steps) >= calls


def test_select_points_settings_are_read_when_selection_runs():
    """select_points.py --set: only settings of gaussmix.selection that its functions read
    when they run (none is a default argument, whose value is fixed at definition), each
    numeric; anything else is refused in words, and values take the setting's type."""
    import ast
    import inspect

    import select_points
    from gaussmix import selection

    tree = ast.parse(inspect.getsource(selection))
    in_defaults = {
        node.id
        for fn in ast.walk(tree) if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef)
        for default in [*fn.args.defaults, *fn.args.kw_defaults] if default is not None
        for node in ast.walk(default) if isinstance(node, ast.Name)
    }
    assert "_POLISH_MAX_ITER" in in_defaults  # (the check sees a default that names one)
    for name in select_points.SETTINGS:
        value = getattr(selection, name)
        assert isinstance(value, int | float) and not isinstance(value, bool), name
        assert name not in in_defaults, name
    assert select_points._settings(["_SCREEN_STEPS=12", "_POLISH_GAIN=0.1"]) == {
        "_SCREEN_STEPS": 12, "_POLISH_GAIN": 0.1}
    for bad in ("_POLISH_MAX_ITER=5", "WARM_ROUNDS=1", "_SCREEN_STEPS", "_SCREEN_STEPS=1.5"):
        with pytest.raises(ValueError, match="--set"):
            select_points._settings([bad])


def test_select_points_strategy_settings_are_put_back():
    import select_points
    from gaussmix import selection

    before = selection._SCREEN_STEPS
    with pytest.raises(RuntimeError), select_points._strategy(selection, {"_SCREEN_STEPS": 3}):
        assert selection._SCREEN_STEPS == 3
        raise RuntimeError
    assert selection._SCREEN_STEPS == before


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_jobs_agreement_reports_the_two_runs_of_a_set(capsys):
    """benchmarks/jobs_agreement.py: one row per set, the ratio the median of the rounds',
    and (here, Old Faithful's 14-model grid dealt into two processes) every grid point
    within its tolerance and the same best model."""
    import jobs_agreement

    assert jobs_agreement.main(["--only", "faithful", "--rounds", "2"]) == 0
    out = capsys.readouterr().out
    row = _cells(next(line for line in out.splitlines() if line.startswith("| faithful |")))
    one, two, ratio, rounds = float(row[1]), float(row[2]), row[3], row[4].split(" / ")
    assert one > 0 and two > 0 and len(rounds) == 2
    # (the per-round ratios are printed rounded: their median within a rounding step)
    assert float(ratio[:-1]) == pytest.approx(statistics.median(float(r) for r in rounds),
                                              abs=0.0051)
    assert float(row[5]) < 1e-6 and row[6] == "0" and row[7] == "yes"
    assert "- every grid point within the tolerance" in out
