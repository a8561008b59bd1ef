"""The gaussmix command, run as a subprocess (``python -m gaussmix``)."""

from __future__ import annotations

import csv
import io
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gaussmix import GaussianMixture, cli
from gaussmix.datasets import load_faithful
from gaussmix.io import MANIFEST, load_model, staged_outputs

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
HAVE_MATPLOTLIB = True
try:
    import matplotlib  # noqa: F401
except ImportError:
    HAVE_MATPLOTLIB = False
needs_matplotlib = pytest.mark.skipif(not HAVE_MATPLOTLIB, reason="needs matplotlib")


def run(*args, input=None, env=None, cwd=None):
    """Run ``python -m gaussmix ARGS``; returns the CompletedProcess (text mode)."""
    full_env = dict(os.environ)
    full_env.pop("PYTHONWARNINGS", None)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "gaussmix", *map(str, args)],
        input=input,
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd,
        timeout=300,
    )


def assert_user_error(result, message):
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("gaussmix: error: "), lines[0]
    assert message in lines[0], lines[0]
    assert "Traceback" not in result.stderr


def read_csv(text):
    rows = list(csv.reader(io.StringIO(text)))
    return rows[0], rows[1:]


def assert_png(path, size):
    from matplotlib.image import imread

    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == PNG_SIGNATURE
    assert struct.unpack(">II", head[16:24]) == size
    pixels = imread(path)
    assert float(np.var(pixels[..., :3])) > 0, f"{path} is blank"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("data")
    X = load_faithful().tolist()
    (d / "faithful.csv").write_text("eruptions,waiting\n" + "".join(f"{e!r},{w!r}\n" for e, w in X))
    return d


@pytest.fixture(scope="module")
def fitted(data_dir, tmp_path_factory):
    """One `gaussmix fit` run shared by the tests that read its outputs."""
    out = tmp_path_factory.mktemp("fit") / "out"
    result = run(
        "fit",
        data_dir / "faithful.csv",
        "-k",
        "2",
        "-c",
        "full",
        "--n-init",
        "1",
        "--seed",
        "0",
        "-o",
        out,
    )
    assert result.returncode == 0, result.stderr
    return out, result


# ---------------------------------------------------------------------------------------
# Each subcommand


def test_fit_writes_everything_and_prints_a_summary(fitted):
    out, result = fitted
    expected = {MANIFEST, "model.json", "assignments.csv"}
    if HAVE_MATPLOTLIB:
        expected |= {"clusters.png", "loglik.png"}
    assert set(os.listdir(out)) == expected
    for word in (
        "covariance type",
        "full",
        "converged",
        "iterations",
        "log-likelihood",
        "BIC",
        "weight",
        "mean eruptions",
        "model.json",
    ):
        assert word in result.stdout


def test_fit_assignments(fitted):
    out, _ = fitted
    header, rows = read_csv((out / "assignments.csv").read_text())
    assert header == ["row", "label", "uncertainty", "p0", "p1"]
    assert len(rows) == 272
    values = np.array(rows, dtype=float)
    np.testing.assert_array_equal(values[:, 0], np.arange(272))
    proba = values[:, 3:]
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(values[:, 1], proba.argmax(axis=1))
    # uncertainty = 1 - max, written as the other probabilities' sum (no cancellation)
    largest = np.arange(proba.shape[1]) == proba.argmax(axis=1)[:, None]
    np.testing.assert_array_equal(values[:, 2], np.where(largest, 0.0, proba).sum(axis=1))
    np.testing.assert_allclose(values[:, 2], 1.0 - proba.max(axis=1), rtol=0, atol=1e-15)


def test_fit_matches_the_library_exactly(fitted):
    """The command fits what the library fits, and the saved model predicts bit for bit."""
    out, _ = fitted
    X = load_faithful()
    # The command starts a single fit with init_params="robust" (model selection's starts).
    in_memory = GaussianMixture(
        2, covariance_type="full", n_init=1, random_state=0, init_params="robust"
    ).fit(X)
    loaded = load_model(out / "model.json")
    for attr in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        np.testing.assert_array_equal(getattr(loaded, attr), getattr(in_memory, attr))
    np.testing.assert_array_equal(loaded.predict(X), in_memory.predict(X))
    np.testing.assert_array_equal(loaded.predict_proba(X), in_memory.predict_proba(X))
    np.testing.assert_array_equal(loaded.score_samples(X), in_memory.score_samples(X))
    assert list(loaded.feature_names_in_) == ["eruptions", "waiting"]
    assert json.loads((out / "model.json").read_text())["training"]["n_samples"] == 272


@needs_matplotlib
def test_fit_plots_are_valid_pngs(fitted):
    out, _ = fitted
    assert_png(out / "clusters.png", (750, 600))
    assert_png(out / "loglik.png", (700, 450))


def test_predict_equals_the_saved_model(fitted, data_dir, tmp_path):
    out, _ = fitted
    X = load_faithful()
    model = load_model(out / "model.json")
    result = run("predict", out / "model.json", data_dir / "faithful.csv")
    assert result.returncode == 0, result.stderr
    header, rows = read_csv(result.stdout)
    assert header == ["row", "label"]
    np.testing.assert_array_equal(np.array(rows, dtype=int)[:, 1], model.predict(X))

    target = tmp_path / "proba.csv"
    result = run("predict", out, data_dir / "faithful.csv", "--proba", "-o", target)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    header, rows = read_csv(target.read_text())
    assert header == ["row", "label", "uncertainty", "p0", "p1"]
    # Floats are written with their shortest round-trip repr: exact.
    np.testing.assert_array_equal(np.array(rows, dtype=float)[:, 3:], model.predict_proba(X))


def test_score(fitted, data_dir):
    out, _ = fitted
    X = load_faithful()
    model = load_model(out / "model.json")
    result = run("score", out / "model.json", data_dir / "faithful.csv")
    assert result.returncode == 0, result.stderr
    header, rows = read_csv(result.stdout)
    assert header == ["n_samples", "log_likelihood", "mean_log_likelihood", "bic", "aic"]
    values = dict(zip(header, map(float, rows[0]), strict=True))
    assert values["n_samples"] == 272
    assert values["log_likelihood"] == pytest.approx(model.score(X) * 272, rel=1e-12)
    assert values["bic"] == pytest.approx(model.bic(X), rel=1e-12)

    result = run("score", out / "model.json", data_dir / "faithful.csv", "--per-sample")
    header, rows = read_csv(result.stdout)
    assert header == ["row", "log_likelihood"]
    np.testing.assert_array_equal(np.array(rows, dtype=float)[:, 1], model.score_samples(X))


def test_sample(fitted):
    out, _ = fitted
    first = run("sample", out / "model.json", "-n", "7", "--seed", "3", "--labels")
    assert first.returncode == 0, first.stderr
    header, rows = read_csv(first.stdout)
    assert header == ["eruptions", "waiting", "component"]
    assert len(rows) == 7
    values = np.array(rows, dtype=float)
    assert set(values[:, 2]) <= {0.0, 1.0}
    again = run("sample", out / "model.json", "-n", "7", "--seed", "3", "--labels")
    assert again.stdout == first.stdout


def test_info(fitted):
    out, _ = fitted
    result = run("info", out / "model.json")
    assert result.returncode == 0, result.stderr
    for text in (
        "gaussmix model file",
        "2 Gaussian components",
        "full covariance",
        "eruptions, waiting",
        "272 samples",
        "converged",
        "correlations",
    ):
        assert text in result.stdout


def test_fit_auto_selects_and_draws_bic(data_dir, tmp_path):
    out = tmp_path / "auto"
    result = run(
        "fit",
        data_dir / "faithful.csv",
        "-k",
        "auto",
        "-c",
        "auto",
        "--components",
        "1-2",
        "--n-init",
        "1",
        "-o",
        out,
    )
    assert result.returncode == 0, result.stderr
    assert "Model selection by BIC" in result.stdout
    assert {"model.json", "assignments.csv", "selection.csv"} <= set(os.listdir(out))
    header, rows = read_csv((out / "selection.csv").read_text())
    assert header[:2] == ["covariance_type", "n_components"]
    assert len(rows) == 2 * 14  # -c auto: select_model's default, mclust's 14 models
    if HAVE_MATPLOTLIB:
        assert_png(out / "bic.png", (750, 550))


def test_select(data_dir, tmp_path):
    out = tmp_path / "sel"
    result = run(
        "select",
        data_dir / "faithful.csv",
        "--components",
        "2-3",
        "--covariance",
        "tied,full",
        "--n-init",
        "1",
        "-o",
        out,
    )
    assert result.returncode == 0, result.stderr
    assert "best by BIC: tied covariance, 3 components" in result.stdout
    expected = {MANIFEST, "model.json", "selection.csv"}
    expected |= {"bic.png"} if HAVE_MATPLOTLIB else set()
    assert set(os.listdir(out)) == expected
    model = load_model(out / "model.json")
    assert (model.covariance_type, model.n_components) == ("tied", 3)


def test_demo(tmp_path):
    out = tmp_path / "demo"
    result = run("demo", "-o", out)
    assert result.returncode == 0, result.stderr
    assert "Best: tied covariance (EEE), 3 components" in result.stdout
    for name in ("model.json", "assignments.csv", "selection.csv"):
        assert str(out / name) in result.stdout
    model = load_model(out / "model.json")
    assert (model.covariance_type, model.n_components) == ("tied", 3)
    if HAVE_MATPLOTLIB:
        assert_png(out / "clusters.png", (750, 600))
        assert_png(out / "loglik.png", (700, 450))
        assert_png(out / "bic.png", (750, 550))


# ---------------------------------------------------------------------------------------
# Inputs


def test_stdin_tsv_and_columns(tmp_path):
    X = load_faithful()[:60]
    text = "id\twait\terupt\n" + "".join(
        f"r{i}\t{w!r}\t{e!r}\n" for i, (e, w) in enumerate(X.tolist())
    )
    out = tmp_path / "o"
    result = run(
        "fit",
        "-",
        "-k",
        "2",
        "--columns",
        "erupt,wait",
        "--n-init",
        "1",
        "--no-plots",
        "-q",
        "-o",
        out,
        input=text,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    model = load_model(out / "model.json")
    assert list(model.feature_names_in_) == ["erupt", "wait"]
    expected = GaussianMixture(2, n_init=1, random_state=0, init_params="robust").fit(X)
    np.testing.assert_array_equal(model.means_, expected.means_)
    # Predict picks the model's columns by name from a file with more columns.
    src = tmp_path / "more.tsv"
    src.write_text(text)
    result = run("predict", out / "model.json", src)
    assert result.returncode == 0, result.stderr
    _, rows = read_csv(result.stdout)
    np.testing.assert_array_equal(np.array(rows, dtype=int)[:, 1], expected.predict(X))


def test_npy_and_float32(tmp_path):
    X = load_faithful()[:80]
    np.save(tmp_path / "x.npy", X)
    out = tmp_path / "o"
    result = run(
        "fit",
        tmp_path / "x.npy",
        "-k",
        "2",
        "-c",
        "diag",
        "--dtype",
        "float32",
        "--n-init",
        "1",
        "--no-plots",
        "-o",
        out,
    )
    assert result.returncode == 0, result.stderr
    model = load_model(out / "model.json")
    assert model.means_.dtype == np.float32
    expected = GaussianMixture(
        2, covariance_type="diag", n_init=1, random_state=0, init_params="robust"
    )
    expected.fit(X.astype(np.float32))
    np.testing.assert_array_equal(model.means_, expected.means_)


def test_header_less_csv_with_semicolons(tmp_path):
    src = tmp_path / "plain.txt"
    src.write_text("".join(f"{e!r};{w!r}\n" for e, w in load_faithful()[:50].tolist()))
    out = tmp_path / "o"
    result = run("fit", src, "-k", "1", "--no-plots", "-q", "-o", out)
    assert result.returncode == 0, result.stderr
    assert json.loads((out / "model.json").read_text())["feature_names"] == ["x0", "x1"]


def test_without_matplotlib_everything_but_plots_works(data_dir, tmp_path):
    fake = tmp_path / "site"
    (fake / "matplotlib").mkdir(parents=True)
    (fake / "matplotlib" / "__init__.py").write_text("raise ImportError('no matplotlib here')\n")
    out = tmp_path / "o"
    result = run(
        "fit",
        data_dir / "faithful.csv",
        "-k",
        "2",
        "--n-init",
        "1",
        "-o",
        out,
        env={"PYTHONPATH": str(fake)},
    )
    assert result.returncode == 0, result.stderr
    assert set(os.listdir(out)) == {MANIFEST, "model.json", "assignments.csv"}
    assert 'pip install "gaussmix[plot]"' in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


# ---------------------------------------------------------------------------------------
# User errors: one line, exit 2, nothing left behind


BAD_CSV = {
    "non-numeric": (
        "a,b\n1,2\n3,oops\n",
        "non-numeric value 'oops' at line 3 (data row 2), column 'b'",
    ),
    # Missing cells are used (tests/test_cli_missing.py); a row with none observed is not.
    "nothing-observed": (
        "a,b\n1,2\n3,NaN\n,NA\n",
        "1 row with no observed value, the first at line 4",
    ),
    "ragged": ("a,b\n1,2\n3,4,5\n", "line 3 has 3 fields but the header has 2"),
    "empty": ("", "no data rows"),
    "header-only": ("a,b\n", "no data rows"),
    "infinite": ("a,b\n1,2\n3,inf\n", "infinite value at line 3, column 'b'"),
    "binary": ("\x00\x01\x02garbage", "binary file"),
}


@pytest.mark.parametrize("content, message", BAD_CSV.values(), ids=BAD_CSV.keys())
def test_bad_data(tmp_path, content, message):
    src = tmp_path / "bad.csv"
    src.write_text(content)
    out = tmp_path / "out"
    assert_user_error(run("fit", src, "-k", "1", "-o", out), message)
    assert not out.exists()


def test_missing_data_file(tmp_path):
    out = tmp_path / "out"
    assert_user_error(run("fit", tmp_path / "nope.csv", "-o", out), "data file not found")
    assert not out.exists()


def test_unknown_column(data_dir, tmp_path):
    assert_user_error(
        run("fit", data_dir / "faithful.csv", "--columns", "speed", "-o", tmp_path / "o"),
        "no column 'speed'; the columns are eruptions, waiting",
    )


def test_too_many_components(data_dir, tmp_path):
    src = tmp_path / "small.csv"
    src.write_text("a,b\n1,2\n3,4\n5,7\n")
    assert_user_error(
        run("fit", src, "-k", "5", "-o", tmp_path / "o"), "cannot fit 5 components to 3 samples"
    )
    assert not (tmp_path / "o").exists()


def test_wrong_number_of_columns_at_predict(fitted, tmp_path):
    out, _ = fitted
    src = tmp_path / "three.csv"
    src.write_text("x,y,z\n1,2,3\n4,5,6\n")
    target = tmp_path / "pred.csv"
    assert_user_error(
        run("predict", out / "model.json", src, "-o", target),
        "the model expects 2 features (eruptions, waiting) but",
    )
    assert not target.exists()


def _damaged_models(model_text):
    doc = json.loads(model_text)
    weights = dict(doc, weights=[w * 1.2 for w in doc["weights"]])
    not_pd = json.loads(model_text)
    not_pd["covariances"][0] = [[1.0, 3.0], [3.0, 1.0]]
    wrong_shape = dict(doc, means=doc["means"][:1])
    return {
        "truncated": (model_text[: len(model_text) // 2], "looks truncated"),
        "corrupt": ("this is not json", "not valid JSON"),
        "weights": (json.dumps(weights), "'weights' must sum to 1"),
        "not-positive-definite": (json.dumps(not_pd), "is not positive definite"),
        "wrong-shape": (json.dumps(wrong_shape), "'means' has length 1, expected 2"),
    }


@pytest.mark.parametrize(
    "kind", ["truncated", "corrupt", "weights", "not-positive-definite", "wrong-shape"]
)
def test_damaged_model_file(fitted, data_dir, tmp_path, kind):
    out, _ = fitted
    text, message = _damaged_models((out / "model.json").read_text())[kind]
    bad = tmp_path / "model.json"
    bad.write_text(text)
    target = tmp_path / "pred.csv"
    result = run("predict", bad, data_dir / "faithful.csv", "-o", target)
    assert_user_error(result, message)
    assert "invalid model file" in result.stderr
    assert not target.exists()


def test_missing_model_file(tmp_path):
    assert_user_error(run("info", tmp_path / "none.json"), "model file not found")


def test_unwritable_output_directory(data_dir, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    assert_user_error(
        run("fit", data_dir / "faithful.csv", "-k", "1", "-o", blocker / "out"),
        "cannot create output directory",
    )
    assert blocker.read_text() == "not a directory"


def test_read_only_output_directory(data_dir, tmp_path):
    if os.geteuid() == 0:
        # Permission bits do not bind root, but /proc refuses new files even to root.
        ro = Path("/proc/self/gaussmix-out")
        assert_user_error(
            run("fit", data_dir / "faithful.csv", "-k", "1", "-o", ro), "permission denied"
        )
        assert not ro.exists()
        return
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        assert_user_error(
            run("fit", data_dir / "faithful.csv", "-k", "1", "-o", ro), "permission denied"
        )
        assert os.listdir(ro) == []
    finally:
        ro.chmod(0o755)


def test_debug_shows_the_traceback(tmp_path):
    bad = tmp_path / "model.json"
    bad.write_text("{")
    result = run("info", bad, "--debug")
    assert result.returncode == 2
    assert "Traceback" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("gaussmix: error: invalid model")


# ---------------------------------------------------------------------------------------
# In-process: help, internal errors, failures in the middle of writing


@pytest.mark.parametrize("command", ["fit", "select", "predict", "score", "sample", "info", "demo"])
def test_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([command, "--help"])
    assert exit_info.value.code == 0
    assert f"usage: gaussmix {command}" in capsys.readouterr().out


def test_no_command_is_a_one_line_error(capsys):
    assert cli.main([]) == 2
    err = capsys.readouterr().err
    assert "fit" in err
    assert len(err.strip().splitlines()) == 1 and err.startswith("gaussmix: error: ")


def test_internal_error_exits_1(monkeypatch, capsys, tmp_path):
    def boom(args):
        raise RuntimeError("unexpected")

    monkeypatch.setattr(cli, "cmd_info", boom)
    assert cli.main(["info", str(tmp_path / "m.json")]) == 1
    err = capsys.readouterr().err
    assert "gaussmix: internal error: RuntimeError: unexpected" in err
    assert "Traceback" not in err


def test_failure_while_writing_leaves_no_partial_output(data_dir, tmp_path, monkeypatch, capsys):
    """model.json and assignments.csv are staged first; a later failure removes them."""
    src = str(data_dir / "faithful.csv")

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cli, "_want_plots", lambda args: False)
    monkeypatch.setattr(cli, "_selection_csv", broken)
    monkeypatch.setattr(cli, "_assignments_writer", broken)
    out = tmp_path / "new" / "out"
    assert cli.main(["fit", src, "-k", "1", "-q", "-o", str(out)]) == 2
    assert "no space left on device" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()

    # An existing directory keeps its old files untouched and gets no temporary files.
    existing = tmp_path / "existing"
    with staged_outputs(str(existing)) as earlier:  # an earlier run's (recorded) file
        earlier.stage("model.json", "old")
        earlier.commit()
    assert cli.main(["fit", src, "-k", "1", "-q", "-o", str(existing)]) == 2
    assert "no space left on device" in capsys.readouterr().err
    assert sorted(os.listdir(existing)) == [MANIFEST, "model.json"]
    assert (existing / "model.json").read_text() == "old"


@pytest.mark.parametrize(
    "args, message",
    [
        (["fit"], "the following arguments are required: data"),
        (["fit", "x.csv", "-c", "round"], "invalid choice: 'round'"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (["sample", "m.json", "--seed", "-1"], "argument --seed: must be a non-negative"),
    ],
    ids=["missing-argument", "bad-choice", "unknown-command", "negative-seed"],
)
def test_usage_errors_are_one_line(args, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("gaussmix: error: ") and message in err[0]


def test_init_with_model_selection_is_a_user_error(tmp_path):
    data = tmp_path / "x.csv"
    data.write_text("a,b\n" + "\n".join(f"{i % 7},{i % 5}" for i in range(30)) + "\n")
    result = run("select", data, "--init", "random", "-o", tmp_path / "out")
    assert_user_error(result, "remove --init")
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------------------
# Progress display


def test_progress_is_off_when_quiet_or_not_a_terminal():
    from gaussmix import _progress

    assert not _progress.enabled(quiet=False, file=io.StringIO())
    assert not _progress.enabled(quiet=True, file=sys.stderr)


def test_fit_progress_reports_iterations():
    pytest.importorskip("tqdm")
    from gaussmix import _progress

    X = load_faithful()
    model = GaussianMixture(2, random_state=0, max_iter=30)
    stream = io.StringIO()
    calls = []
    with _progress.fit_progress(model, n_samples=len(X), file=stream) as bar:
        assert bar is not None
        hook = model._callback
        model._callback = lambda *a: (calls.append(a), hook(*a))
        model.fit(X)
        assert bar.n == model.n_iter_
        assert f"log-lik {model.lower_bounds_[-1] * len(X):.6g}" in bar.postfix
    assert not hasattr(model, "_callback")  # the hook is removed afterwards
    assert [c[0] for c in calls] == list(range(1, model.n_iter_ + 1))
    assert "EM" in stream.getvalue()


def test_grid_progress_counts_models():
    pytest.importorskip("tqdm")
    from gaussmix import _progress

    stream = io.StringIO()
    with _progress.grid_progress(file=stream) as progress:
        for i in range(1, 5):
            progress(i, 4, "full", i)
        bar = progress.holder["bar"]
        assert (bar.n, bar.total) == (4, 4)
        assert bar.postfix == "full, 4 components"
    assert "models" in stream.getvalue()
    with _progress.grid_progress(show=False) as progress:
        assert progress is None


# ---------------------------------------------------------------------------------------
# On a Dask cluster (--scheduler local:1 starts a one-worker LocalCluster)


def test_fit_and_predict_on_a_dask_cluster(tmp_path):
    pytest.importorskip("distributed")
    X = load_faithful()[:120]
    np.save(tmp_path / "x.npy", X)
    out = tmp_path / "dask"
    result = run(
        "fit",
        tmp_path / "x.npy",
        "-k",
        "2",
        "-c",
        "diag",
        "--n-init",
        "1",
        "--no-plots",
        "-q",
        "--scheduler",
        "local:1",
        "-o",
        out,
    )
    assert result.returncode == 0, result.stderr
    model = load_model(out / "model.json")
    expected = GaussianMixture(
        2, covariance_type="diag", n_init=1, random_state=0, init_params="robust"
    ).fit(X)
    np.testing.assert_allclose(model.means_, expected.means_, rtol=1e-10)
    _, rows = read_csv((out / "assignments.csv").read_text())
    values = np.array(rows, dtype=float)
    np.testing.assert_array_equal(values[:, 0], np.arange(120))
    np.testing.assert_array_equal(values[:, 1], model.predict(X))
    np.testing.assert_allclose(values[:, 3:], model.predict_proba(X), rtol=1e-12, atol=1e-300)

    result = run("predict", out / "model.json", tmp_path / "x.npy", "--scheduler", "local:1")
    assert result.returncode == 0, result.stderr
    _, rows = read_csv(result.stdout)
    np.testing.assert_array_equal(np.array(rows, dtype=int)[:, 1], model.predict(X))


def test_select_on_a_dask_cluster(tmp_path):
    pytest.importorskip("distributed")
    X = load_faithful()[:120]
    np.save(tmp_path / "x.npy", X)
    out = tmp_path / "dask-select"
    result = run(
        "select",
        tmp_path / "x.npy",
        "--components",
        "1-2",
        "--covariance",
        "diag,tied",
        "--n-init",
        "1",
        "--no-plots",
        "--scheduler",
        "local:1",
        "-o",
        out,
    )
    assert result.returncode == 0, result.stderr
    header, rows = read_csv((out / "selection.csv").read_text())
    table = [dict(zip(header, row, strict=True)) for row in rows]
    assert [(r["covariance_type"], r["n_components"]) for r in table] == [
        ("diag", "1"),
        ("diag", "2"),
        ("tied", "1"),
        ("tied", "2"),
    ]
    best = min(table, key=lambda r: float(r["bic"]))
    model = load_model(out / "model.json")
    assert (model.covariance_type, model.n_components) == (
        best["covariance_type"],
        int(best["n_components"]),
    )
    # select_model on the dask array: 120 rows are computed and selected as in memory.
    from gaussmix.selection import select_model

    expected = select_model(
        X, n_components=[1, 2], covariance_types=("diag", "tied"), n_init=1, random_state=0
    )
    assert (model.covariance_type, model.n_components) == (
        expected.best_params_["covariance_type"],
        expected.best_params_["n_components"],
    )
    assert float(best["bic"]) == pytest.approx(expected.best_estimator_.bic(X), rel=1e-9)
    assert "best by BIC" in result.stdout


def test_scheduler_rejects_csv(data_dir, tmp_path):
    pytest.importorskip("distributed")
    assert_user_error(
        run(
            "fit",
            data_dir / "faithful.csv",
            "-k",
            "1",
            "--scheduler",
            "local:1",
            "-o",
            tmp_path / "o",
        ),
        "unsupported format for --scheduler",
    )
    assert not (tmp_path / "o").exists()


def test_uncertainty_of_confident_rows_is_not_cancelled():
    # Two far clusters: the other component's probability is ~1e-30, so 1 - max(p) in
    # floating point is 0 or 1.1e-16; the uncertainty is the other probabilities' sum.
    rng = np.random.default_rng(0)
    X = np.r_[rng.normal(size=(50, 2)), rng.normal(size=(50, 2)) + 15.0]
    model = GaussianMixture(2, random_state=0).fit(X)
    buf = io.StringIO()
    cli._assignments_writer(model, X)(buf)
    _header, rows = read_csv(buf.getvalue())
    values = np.array(rows, dtype=float)
    proba = model.predict_proba(X)
    others = np.sort(proba, axis=1)[:, 0]
    assert np.all(others > 0) and np.any(others < 1e-20)
    np.testing.assert_allclose(values[:, 2], others, rtol=1e-12)


def test_blank_and_comment_lines_are_skipped_and_rows_count_the_data_rows(tmp_path):
    """As the help says: blank lines and # lines are not data (pandas and R skip blank
    lines), in one column too, so predict's and score's row numbers are those of the data
    rows; a one-column row with nothing observed (NA) is refused with its line."""
    values = [1.0, 1.2, 0.9, 5.0, 5.3, 4.8, 1.1, 5.1]
    clean = tmp_path / "clean.csv"
    clean.write_text("x\n" + "\n".join(map(str, values)) + "\n")
    gappy = tmp_path / "gappy.csv"
    gappy.write_text("x\n1.0\n1.2\n\n0.9\n# a comment\n5.0\n5.3\n   \n4.8\n1.1\n5.1\n\n")
    out = tmp_path / "m"
    fitted = run("fit", clean, "-k", "2", "-c", "diag", "-q", "--no-plots", "-o", out)
    assert fitted.returncode == 0, fitted.stderr
    for command in (["predict", "--proba"], ["score", "--per-sample"]):
        a = run(command[0], out, clean, *command[1:])
        b = run(command[0], out, gappy, *command[1:])
        assert a.returncode == b.returncode == 0, a.stderr + b.stderr
        assert a.stdout == b.stdout
        header, rows = read_csv(b.stdout)
        assert header[0] == "row" and [r[0] for r in rows] == [str(i) for i in range(8)]
    missing = tmp_path / "missing.csv"
    missing.write_text("x\n1.0\nNA\n0.9\n")
    assert_user_error(run("predict", out, missing), "the first at line 3")
