"""The command line's parts: readers, output staging, summaries, and the demo's mclust line."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gaussmix import GaussianMixture, select_model
from gaussmix._readers import DataError, read_data
from gaussmix._summary import compare_with_mclust, describe_fit
from gaussmix.datasets import faithful_mclust_bic, load_faithful
from gaussmix.io import MANIFEST, OutputError, staged_outputs


def run(*args):
    """Run ``python -m gaussmix ARGS``; returns the CompletedProcess (text mode)."""
    env = dict(os.environ)
    env.pop("PYTHONWARNINGS", None)
    return subprocess.run(
        [sys.executable, "-m", "gaussmix", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def one_line(text):
    return " ".join(text.split())


# ---------------------------------------------------------------------------------------
# mclust's published table and the demo's comparison with it


def test_faithful_mclust_bic_table():
    table = faithful_mclust_bic()
    assert sorted(table) == ["EEE", "VII", "VVI", "VVV"]
    assert all(sorted(row) == list(range(1, 10)) for row in table.values())
    # mclust's sign (higher is better): its pick over the whole table is EEE,3.
    best = max((bic, name, k) for name, row in table.items() for k, bic in row.items())
    assert best == (-2314.316, "EEE", 3)
    # One covariance matrix for one component: EEE,1 and VVV,1 are the same model.
    assert table["EEE"][1] == table["VVV"][1]
    table["EEE"][3] = 0.0
    assert faithful_mclust_bic()["EEE"][3] == -2314.316  # a new copy on every call


def _rscript_with_mclust():
    if shutil.which("Rscript") is None:
        return False
    probe = subprocess.run(
        ["Rscript", "-e", "library(mclust)"], capture_output=True, text=True, timeout=120
    )
    return probe.returncode == 0


@pytest.mark.slow
@pytest.mark.skipif(not _rscript_with_mclust(), reason="needs Rscript with mclust")
def test_faithful_mclust_bic_matches_mclust():
    """The bundled table is what mclust prints today (mclust as a black box)."""
    code = (
        "suppressMessages(library(mclust)); "
        'b <- mclustBIC(faithful, G = 1:9, modelNames = c("VII", "VVI", "EEE", "VVV")); '
        'write.table(format(round(unclass(b)[, ], 3), nsmall = 3), quote = FALSE, sep = ",")'
    )
    result = subprocess.run(["Rscript", "-e", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    names = lines[0].split(",")
    table = faithful_mclust_bic()
    for line in lines[1:]:
        k, *values = line.split(",")
        for name, value in zip(names, values, strict=True):
            assert table[name][int(k)] == float(value), (name, k)


@pytest.fixture(scope="module")
def faithful_full():
    """Selection over full covariance only, 1 to 4 components."""
    return select_model(
        load_faithful(), n_components=range(1, 5), covariance_types=("full",), random_state=0
    )


def test_mclust_pick_is_computed_over_the_searched_grid(faithful_full):
    assert faithful_full.best_params_ == {"covariance_type": "full", "n_components": 2}
    text = compare_with_mclust(faithful_full, faithful_mclust_bic())
    # Among VVV only, mclust's best is VVV,2 (-2322.192), not its overall pick EEE,3.
    assert text == (
        "mclust picks VVV (full) with 2 components over the same 4 models "
        "(BIC -2322.192 in mclust's sign); this run agrees."
    )
    assert "EEE" not in text


def test_mclust_pick_disagreement_is_said(faithful_full):
    published = faithful_mclust_bic()
    published["VVV"][3] = -2300.0  # a table in which mclust would pick VVV,3
    text = compare_with_mclust(faithful_full, published)
    assert text.startswith("mclust picks VVV (full) with 3 components over the same 4 models")
    assert text.endswith("; this run does not agree: it picks VVV (full) with 2 components.")


def test_mclust_pick_over_part_of_the_grid():
    X = load_faithful()
    result = select_model(X, n_components=[9, 10], covariance_types=("tied",), random_state=0)
    text = compare_with_mclust(result, faithful_mclust_bic())
    assert text.startswith(
        "mclust picks EEE (tied) with 9 components over the 1 of the 2 searched models in "
        "its table (BIC -2389.609"
    )
    empty = compare_with_mclust(result, {"EEE": {3: -2314.316}})
    assert empty == "mclust's published table holds none of the models searched."


def test_demo_restricted_to_full_reports_mclusts_pick_among_vvv(tmp_path):
    result = run(
        "demo", "--covariance", "full", "--components", "1-4", "--no-plots", "-o", tmp_path / "demo"
    )
    assert result.returncode == 0, result.stderr
    out = one_line(result.stdout)
    assert "4 candidate models: 1-4 components x full covariance." in out
    assert "Best: full covariance (VVV), 2 components." in out
    assert (
        "mclust picks VVV (full) with 2 components over the same 4 models "
        "(BIC -2322.192 in mclust's sign); this run agrees." in out
    )
    assert "EEE" not in out and "mclust also picks" not in out


# ---------------------------------------------------------------------------------------
# Summaries printed by the objects they describe


def test_gaussian_mixture_summary():
    X = load_faithful()
    model = GaussianMixture(2, covariance_type="tied", random_state=0).fit(X)
    text = model.summary(X, feature_names=["eruptions", "waiting"], source="faithful")
    assert text == describe_fit(model, X, ["eruptions", "waiting"], "faithful")
    lines = text.splitlines()
    assert (
        lines[0] == "Gaussian mixture fitted to faithful (272 samples, 2 features: "
        "eruptions, waiting)"
    )
    total = model.score(X) * len(X)
    assert f"log-likelihood   {total:.6f} (total)" in text
    assert f"BIC              {model.bic(X):.6f}" in text
    assert "shared covariance matrix:" in text
    # Without names: the model's own, or x0, x1, ...
    assert "2 features: x0, x1)" in model.summary(X)


# ---------------------------------------------------------------------------------------
# Output staging (gaussmix.io) and readers


def test_staged_outputs_appear_only_on_commit(tmp_path):
    target = tmp_path / "a" / "b"
    with staged_outputs(str(target)) as out:
        out.stage("x.csv", "1,2\n")
        out.stage("y.txt", writer=lambda f: f.write("y"))
        out.stage("z.bin", save=lambda path: Path(path).write_bytes(b"\x00\x01"))
        assert not any(name in os.listdir(target) for name in ("x.csv", "y.txt", "z.bin"))
        written = out.commit()
    assert written == [str(target / n) for n in ("x.csv", "y.txt", "z.bin")]
    assert sorted(os.listdir(target)) == [MANIFEST, "x.csv", "y.txt", "z.bin"]
    assert (target / "z.bin").read_bytes() == b"\x00\x01"


def test_staged_outputs_failure_removes_what_the_run_created(tmp_path):
    target = tmp_path / "new" / "dir"
    with pytest.raises(RuntimeError), staged_outputs(str(target)) as out:
        out.stage("x.csv", "1\n")
        raise RuntimeError("later failure")
    assert os.listdir(tmp_path) == []


def test_output_directory_that_is_a_file(tmp_path):
    (tmp_path / "f").write_text("")
    with pytest.raises(OutputError, match="exists and is not a directory"):
        with staged_outputs(str(tmp_path / "f")) as out:
            out.check_writable()


def test_reader_errors_are_value_errors_naming_the_place(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("a,b\n1,2\n3,oops\n")
    with pytest.raises(DataError, match=r"non-numeric value 'oops' at line 3 .* column 'b'"):
        read_data(str(path))
    assert issubclass(DataError, ValueError)
    ds = read_data(str(path), columns=["a"])
    np.testing.assert_array_equal(ds.X, [[1.0], [3.0]])
    assert ds.names == ["a"] and ds.has_header


# ---------------------------------------------------------------------------------------
# mclust's names on the command line: -c EEE is tied, reported by scikit-learn's name


def test_fit_accepts_mclust_names(tmp_path):
    data = tmp_path / "faithful.csv"
    X = load_faithful()
    np.savetxt(data, X, delimiter=",", header="eruptions,waiting", comments="")
    by_alias = run("fit", data, "-k", "2", "-c", "EEE", "--seed", "0", "-o", tmp_path / "a",
                   "--no-plots")
    by_name = run("fit", data, "-k", "2", "-c", "tied", "--seed", "0", "-o", tmp_path / "b",
                  "--no-plots")
    assert by_alias.returncode == 0 and by_name.returncode == 0, by_alias.stderr + by_name.stderr
    assert "covariance type  tied (EEE:" in by_alias.stdout
    assert (tmp_path / "a" / "model.json").read_text() == (
        tmp_path / "b" / "model.json"
    ).read_text()


def test_select_accepts_mclust_names_and_refuses_unknown_ones(tmp_path):
    data = tmp_path / "faithful.csv"
    np.savetxt(data, load_faithful(), delimiter=",", header="eruptions,waiting", comments="")
    ok = run("select", data, "--components", "1-2", "--covariance", "VVV,tied,EEE",
             "--no-plots", "-o", tmp_path / "sel")
    assert ok.returncode == 0, ok.stderr
    assert "spherical" not in ok.stdout and "tied" in ok.stdout and "full" in ok.stdout
    bad = run("select", data, "--covariance", "VVX", "--quiet", "--no-plots")
    assert bad.returncode == 2
    assert "'VVX'" in bad.stderr and "'EEE' (= 'tied')" in bad.stderr


def test_fit_starts_robustly_by_default(tmp_path):
    """gaussmix fit -k 3 -c tied --seed 0 on Old Faithful: the k-means start alone ends at
    -1140.55 (issue 10); the default robust start reaches mclust's EEE,3 (-1126.326)."""
    data = tmp_path / "faithful.csv"
    np.savetxt(data, load_faithful(), delimiter=",", header="eruptions,waiting", comments="")
    robust = run("fit", data, "-k", "3", "-c", "tied", "--seed", "0", "-o", tmp_path / "r",
                 "--no-plots")
    kmeans = run("fit", data, "-k", "3", "-c", "tied", "--seed", "0", "--init", "kmeans",
                 "-o", tmp_path / "k", "--no-plots")
    assert robust.returncode == 0 and kmeans.returncode == 0, robust.stderr + kmeans.stderr

    def total(out):
        line = next(x for x in out.splitlines() if "log-likelihood" in x)
        return float(line.split()[1])

    assert total(robust.stdout) >= -1126.3165
    assert total(kmeans.stdout) < -1130  # the seed's local optimum, for contrast


def test_selection_refuses_float32(tmp_path):
    data = tmp_path / "faithful.csv"
    np.savetxt(data, load_faithful(), delimiter=",", header="eruptions,waiting", comments="")
    f32 = run("select", data, "--components", "1-2", "--dtype", "float32", "--no-plots",
              "-o", tmp_path / "b")
    assert f32.returncode == 2 and "float64" in f32.stderr
    assert not (tmp_path / "b" / "model.json").exists()


def test_jobs_runs_the_selection_in_processes_and_only_the_selection(tmp_path):
    """--jobs N is select_model's n_jobs: the same table from two processes; a single fit
    (and --stream) refuses it, and N must be a positive integer or -1."""
    data = tmp_path / "faithful.csv"
    np.savetxt(data, load_faithful(), delimiter=",", header="eruptions,waiting", comments="")
    grid = ("--components", "1-3", "-c", "tied,VVE,EEV", "--no-plots", "-q")
    one = run("select", data, *grid, "-o", tmp_path / "one")
    two = run("select", data, *grid, "--jobs", "2", "-o", tmp_path / "two")
    assert one.returncode == 0 and two.returncode == 0, one.stderr + two.stderr

    def table(folder):
        with open(folder / "selection.csv", newline="", encoding="utf-8") as f:
            return {(r["covariance_type"], int(r["n_components"])): float(r["log_likelihood"])
                    for r in csv.DictReader(f)}

    first, second = table(tmp_path / "one"), table(tmp_path / "two")
    assert sorted(first) == sorted(second) and len(first) == 9
    for key, value in first.items():
        assert second[key] == pytest.approx(value, rel=1e-10)
    single = run("fit", data, "-k", "2", "-c", "tied", "--jobs", "2", "--no-plots",
                 "-o", tmp_path / "single")
    assert single.returncode == 2 and "remove --jobs" in single.stderr
    assert not (tmp_path / "single").exists()
    stream = run("fit", data, "-k", "2", "-c", "tied", "--stream", "--jobs", "2",
                 "--no-plots", "-o", tmp_path / "stream")
    assert stream.returncode == 2 and "remove --jobs" in stream.stderr
    for bad in ("0", "-2", "two"):
        out = run("select", data, "--jobs", bad, "--no-plots", "-o", tmp_path / "bad")
        assert out.returncode == 2 and "--jobs" in out.stderr and "-1" in out.stderr


def test_output_to_a_directory_names_the_users_path(tmp_path):
    """predict -o DIR used to report the hidden temporary file next to it."""
    data = tmp_path / "faithful.csv"
    np.savetxt(data, load_faithful(), delimiter=",", header="eruptions,waiting", comments="")
    fit = run("fit", data, "-k", "2", "-c", "full", "--no-plots", "-q", "-o", tmp_path / "m")
    assert fit.returncode == 0, fit.stderr
    (tmp_path / "adir").mkdir()
    out = run("predict", tmp_path / "m" / "model.json", data, "-o", tmp_path / "adir")
    assert out.returncode == 2
    assert f"cannot write {tmp_path / 'adir'}: it is a directory" in out.stderr
    assert ".tmp" not in out.stderr


def test_resume_and_stream_refuse_options_they_would_ignore(tmp_path):
    """--resume used to ignore -c and --init, and --stream --tol / --max-iter, silently."""
    data = tmp_path / "faithful.csv"
    np.savetxt(data, load_faithful(), delimiter=",", header="eruptions,waiting", comments="")
    first = run("fit", data, "--stream", "-k", "2", "-c", "VVE", "-q", "--no-plots",
                "-o", tmp_path / "s")
    assert first.returncode == 0, first.stderr
    model = tmp_path / "s" / "model.json"
    other = run("fit", "--resume", model, data, "-c", "EEE", "-q", "-o", tmp_path / "r1")
    assert other.returncode == 2 and "continues a VVE model; remove -c EEE" in other.stderr
    same = run("fit", "--resume", model, data, "-c", "VVE", "-q", "--no-plots",
               "-o", tmp_path / "r2")
    assert same.returncode == 0, same.stderr
    init = run("fit", "--resume", model, data, "--init", "kmeans", "-q", "-o", tmp_path / "r3")
    assert init.returncode == 2 and "remove --init kmeans" in init.stderr
    tol = run("fit", data, "--stream", "-k", "2", "--tol", "0.5", "-q", "-o", tmp_path / "t")
    assert tol.returncode == 2 and "--tol has no effect with --stream" in tol.stderr
