"""Missing values on the command line (issue 12, item 4): fit, predict, score and impute.

Empty, ``NA`` and ``nan`` cells (NaN in ``.npy``, nulls in Parquet) are used by a single
fit, ``predict``, ``score`` and ``impute``, with the library's exact EM; what is not done
yet (``--stream``, ``--scheduler``) is refused with a message saying so. Model selection
(``fit -k auto``, ``select``) runs :func:`gaussmix.selection.select_model` on the NaN.
"""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys

import numpy as np
import pytest

from gaussmix import GaussianMixture
from gaussmix.cli import DEFAULT_N_INIT, DEFAULT_SEED
from gaussmix.datasets import load_faithful
from gaussmix.io import load_model

TOKENS = ("", "NA", "nan")  # the missing-cell spellings, in turn


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


def holed_faithful(share=0.15, seed=1):
    """Old Faithful with ``share`` of its cells NaN (no row left with nothing observed)."""
    X = np.asarray(load_faithful(), dtype=np.float64).copy()
    holes = np.random.default_rng(seed).random(X.shape) < share
    holes[holes.all(axis=1)] = False
    X[holes] = np.nan
    return X


def write_csv(path, X, names=("eruptions", "waiting")):
    """X as CSV, exactly (repr of each float), its NaN cells spelled '', 'NA', 'nan' in turn."""
    lines = [",".join(names)]
    n_missing = 0
    for row in X:
        cells = []
        for value in row:
            if np.isnan(value):
                cells.append(TOKENS[n_missing % len(TOKENS)])
                n_missing += 1
            else:
                cells.append(repr(float(value)))
        lines.append(",".join(cells))
    path.write_text("\n".join(lines) + "\n")
    return path


def read_csv(text):
    rows = list(csv.reader(io.StringIO(text)))
    return rows[0], np.array(rows[1:], dtype=float)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """A CSV with holes, the CLI's fit of it (-k 2 -c full) and the fit's stdout."""
    tmp = tmp_path_factory.mktemp("missing")
    X = holed_faithful()
    src = write_csv(tmp / "holes.csv", X)
    out = tmp / "out"
    result = run("fit", src, "-k", "2", "-c", "full", "--no-plots", "-o", out)
    assert result.returncode == 0, result.stderr
    return X, src, out, result.stdout


def test_every_missing_spelling_is_used():
    X = holed_faithful()
    # The fixture's CSV holds each spelling many times (and a test below fits it).
    assert np.isnan(X).sum() >= 3 * len(TOKENS)


def test_fit_equals_the_library_fit_with_nan(fitted):
    X, _, out, _ = fitted
    model = load_model(out / "model.json")
    expected = GaussianMixture(
        2,
        covariance_type="full",
        init_params="robust",
        n_init=DEFAULT_N_INIT,
        random_state=DEFAULT_SEED,
    ).fit(X)
    np.testing.assert_allclose(model.weights_, expected.weights_, rtol=1e-12)
    np.testing.assert_allclose(model.means_, expected.means_, rtol=1e-12)
    np.testing.assert_allclose(model.covariances_, expected.covariances_, rtol=1e-12)
    np.testing.assert_allclose(model.lower_bound_, expected.lower_bound_, rtol=1e-12)
    # assignments.csv: the library's labels and probabilities, incomplete rows included.
    header, values = read_csv((out / "assignments.csv").read_text())
    assert header[:3] == ["row", "label", "uncertainty"]
    np.testing.assert_array_equal(values[:, 1], expected.predict(X))
    np.testing.assert_allclose(values[:, 3:], expected.predict_proba(X), rtol=1e-10, atol=1e-300)


def test_summary_counts_missing_cells_and_rows(fitted):
    X, _, _, stdout = fitted
    nan = np.isnan(X)
    n_cells, n_rows = int(nan.sum()), int(nan.any(axis=1).sum())
    assert n_cells and n_rows
    expected = (
        f"missing values {n_cells} cells ({n_cells / X.size:.1%}) in {n_rows} rows "
        f"({n_rows / X.shape[0]:.1%})"
    )
    assert expected in one_line(stdout)


def test_summary_without_missing_values_has_no_missing_line(tmp_path):
    X = np.asarray(load_faithful(), dtype=np.float64)
    src = write_csv(tmp_path / "full.csv", X)
    result = run("fit", src, "-k", "1", "-c", "full", "--no-plots", "-o", tmp_path / "o")
    assert result.returncode == 0, result.stderr
    assert "missing values" not in result.stdout


def test_impute_equals_the_library_impute(fitted, tmp_path):
    X, src, out, _ = fitted
    model = load_model(out / "model.json")
    filled = tmp_path / "filled.csv"
    result = run("impute", out / "model.json", src, "-o", filled)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    header, values = read_csv(filled.read_text())
    assert header == ["eruptions", "waiting"]
    expected = model.impute(X)
    assert not np.isnan(values).any()
    np.testing.assert_allclose(values, expected, rtol=1e-12)
    observed = ~np.isnan(X)
    np.testing.assert_array_equal(values[observed], X[observed])  # observed cells unchanged
    # Without -o: the same table on stdout.
    result = run("impute", out, src)
    assert result.returncode == 0, result.stderr
    assert result.stdout == filled.read_text()


def test_impute_takes_the_model_columns_by_name(fitted, tmp_path):
    """Columns in another order, and an extra column, give the model's columns in its order."""
    X, _, out, _ = fitted
    model = load_model(out / "model.json")
    src = tmp_path / "shuffled.csv"
    lines = ["id,waiting,eruptions"]
    for i, (eruptions, waiting) in enumerate(X):
        cells = ["" if np.isnan(v) else repr(float(v)) for v in (waiting, eruptions)]
        lines.append(f"r{i}," + ",".join(cells))
    src.write_text("\n".join(lines) + "\n")
    result = run("impute", out, src)
    assert result.returncode == 0, result.stderr
    header, values = read_csv(result.stdout)
    assert header == ["eruptions", "waiting"]
    np.testing.assert_allclose(values, model.impute(X), rtol=1e-12)


def test_predict_and_score_with_nan_in_npy(fitted, tmp_path):
    X, _, out, _ = fitted
    model = load_model(out / "model.json")
    np.save(tmp_path / "holes.npy", X)
    result = run("predict", out, tmp_path / "holes.npy", "--proba")
    assert result.returncode == 0, result.stderr
    _, values = read_csv(result.stdout)
    np.testing.assert_array_equal(values[:, 1], model.predict(X))
    np.testing.assert_allclose(values[:, 3:], model.predict_proba(X), rtol=1e-10, atol=1e-300)
    result = run("score", out, tmp_path / "holes.npy", "--per-sample")
    assert result.returncode == 0, result.stderr
    _, values = read_csv(result.stdout)
    np.testing.assert_allclose(values[:, 1], model.score_samples(X), rtol=1e-12)
    result = run("score", out, tmp_path / "holes.npy")
    assert result.returncode == 0, result.stderr
    header, values = read_csv(result.stdout)
    assert header[:3] == ["n_samples", "log_likelihood", "mean_log_likelihood"]
    np.testing.assert_allclose(values[0, 1], model.score(X) * X.shape[0], rtol=1e-12)


def test_parquet_nulls_are_missing_values(fitted, tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    X, _, out, _ = fitted
    model = load_model(out / "model.json")
    columns = {
        "eruptions": pa.array([None if np.isnan(v) else float(v) for v in X[:, 0]]),
        "waiting": pa.array([None if np.isnan(v) else float(v) for v in X[:, 1]]),
    }
    pq.write_table(pa.table(columns), tmp_path / "holes.parquet")
    result = run("impute", out, tmp_path / "holes.parquet")
    assert result.returncode == 0, result.stderr
    header, values = read_csv(result.stdout)
    assert header == ["eruptions", "waiting"]
    np.testing.assert_allclose(values, model.impute(X), rtol=1e-12)


# ---------------------------------------------------------------------------------------
# What is still refused


def assert_user_error(result, *fragments):
    assert result.returncode == 2, (result.stdout, result.stderr)
    text = one_line(result.stderr)
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in text, text


def test_infinity_is_refused_with_its_place(tmp_path):
    src = tmp_path / "inf.csv"
    src.write_text("a,b\n1,2\n3,\n4,5\n6,-inf\n7,8\n")
    out = tmp_path / "out"
    assert_user_error(
        run("fit", src, "-k", "1", "-c", "full", "-o", out),
        "infinite value at line 5, column 'b'",
    )
    assert not out.exists()


def test_a_row_with_nothing_observed_is_refused(tmp_path):
    src = tmp_path / "empty-row.csv"
    src.write_text("a,b\n1,2\n3,\nNA,nan\n4,5\n,\n6,7\n")
    out = tmp_path / "out"
    assert_user_error(
        run("fit", src, "-k", "1", "-c", "full", "-o", out),
        "2 rows with no observed value, the first at line 4",
    )
    assert not out.exists()
    X = np.array([[1.0, 2.0], [np.nan, np.nan], [3.0, np.nan]])
    np.save(tmp_path / "x.npy", X)
    assert_user_error(
        run("fit", tmp_path / "x.npy", "-k", "1", "-c", "full", "-o", out),
        "1 row with no observed value, the first at row 1 (counting from 0)",
    )


def test_non_numeric_cells_are_still_refused(tmp_path):
    src = tmp_path / "text.csv"
    src.write_text("a,b\n1,2\n3,NA\n4,oops\n")
    assert_user_error(
        run("fit", src, "-k", "1", "-c", "full", "-o", tmp_path / "out"),
        "non-numeric value 'oops' at line 4 (data row 3), column 'b'",
    )


@pytest.mark.parametrize(
    "command",
    [
        ("fit", "-k", "auto", "--components", "1-3", "-c", "auto"),
        ("select", "--components", "1-3"),
    ],
    ids=["fit-k-auto", "select"],
)
def test_model_selection_uses_missing_values(fitted, tmp_path, command):
    """-k auto / select run the library's select_model on the data with its NaN."""
    from gaussmix.selection import select_model

    X, src, _, _ = fitted
    out = tmp_path / "out"
    result = run(command[0], src, *command[1:], "--no-plots", "-o", out)
    assert result.returncode == 0, result.stderr
    expected = select_model(X, n_components=[1, 2, 3], n_init=DEFAULT_N_INIT,
                            random_state=DEFAULT_SEED)
    rows = {(r["covariance_type"], r["n_components"]): r for r in expected.table}
    lines = list(csv.DictReader(io.StringIO((out / "selection.csv").read_text())))
    assert len(lines) == len(rows) == 3 * 14  # -c auto: mclust's 14 models, as select_model
    for line in lines:
        row = rows[(line["covariance_type"], int(line["n_components"]))]
        assert float(line["bic"]) == pytest.approx(row["bic"], rel=1e-9)
        assert float(line["log_likelihood"]) == pytest.approx(row["log_likelihood"], rel=1e-9)
    model = load_model(out / "model.json")
    best = expected.best_estimator_
    assert model.covariance_type == best.covariance_type
    np.testing.assert_allclose(model.means_, best.means_, rtol=1e-9)
    # The holes were used, not dropped: the model scores the rows with NaN.
    assert np.isfinite(model.score_samples(X)).all()


def test_stream_uses_missing_values(fitted, tmp_path):
    """fit --stream reads the holes and online EM uses them (partial_fit's missing-value
    statistics): the result equals the library's partial_fit over the same batches."""
    X, src, _, _ = fitted
    out = tmp_path / "out"
    result = run("fit", src, "--stream", "-k", "2", "-c", "full", "--batch-size", "100",
                 "--passes", "1", "--no-plots", "-o", out)
    assert result.returncode == 0, result.stderr
    model = load_model(out / "model.json")
    assert np.isfinite(model.score_samples(X)).all()
    from gaussmix._readers import open_chunked

    reference = GaussianMixture(**model.get_params())  # the CLI's settings, as saved
    batches = list(open_chunked(str(src)).batches(100))  # the batches the CLI read
    np.testing.assert_array_equal(np.vstack(batches), X)
    for batch in batches:
        reference.partial_fit(batch)
    np.testing.assert_allclose(model.means_, reference.means_, rtol=1e-6)


def test_impute_error_leaves_no_file(fitted, tmp_path):
    _, _, out, _ = fitted
    src = tmp_path / "bad.csv"
    src.write_text("eruptions,waiting\n1,2\n,\n")
    filled = tmp_path / "filled.csv"
    assert_user_error(run("impute", out, src, "-o", filled), "no observed value")
    assert not filled.exists()
    assert os.listdir(tmp_path) == ["bad.csv"]


def test_dask_takes_missing_values_but_not_in_selection(fitted, tmp_path):
    """--scheduler: predict and fit -k N -c TYPE use the holes (the library's Dask path),
    as in memory; selection on Dask refuses them before any fit, saying what to do."""
    pytest.importorskip("distributed")
    X, _, out, _ = fitted
    np.save(tmp_path / "holes.npy", X)
    on_dask = run("predict", out, tmp_path / "holes.npy", "--scheduler", "local:1")
    in_memory = run("predict", out, tmp_path / "holes.npy")
    assert on_dask.returncode == in_memory.returncode == 0, on_dask.stderr
    assert on_dask.stdout == in_memory.stdout
    fit_out = tmp_path / "dask-fit"
    result = run("fit", tmp_path / "holes.npy", "-k", "2", "-c", "full", "--no-plots",
                 "--scheduler", "local:1", "-o", fit_out)
    assert result.returncode == 0, result.stderr
    dask_model, memory_model = load_model(fit_out / "model.json"), load_model(out / "model.json")
    np.testing.assert_allclose(np.sort(dask_model.means_, axis=0),
                               np.sort(memory_model.means_, axis=0), rtol=1e-3)
    sel_out = tmp_path / "dask-select"
    assert_user_error(
        run("select", tmp_path / "holes.npy", "--components", "1-2", "--scheduler", "local:1",
            "-o", sel_out),
        f"{int(np.isnan(X).sum())} missing values (NaN)",
        "with --scheduler (Dask) does not take missing values yet",
    )
    assert not sel_out.exists()


def test_fit_with_plots_shows_the_complete_rows(fitted, tmp_path):
    from gaussmix.cli import _plotted_rows

    X, src, out, _ = fitted
    model = load_model(out / "model.json")
    complete = ~np.isnan(X).any(axis=1)
    np.testing.assert_array_equal(_plotted_rows(model, X), X[complete])
    # No complete row: the imputed rows are shown.
    alternate = np.asarray(load_faithful(), dtype=np.float64)[:4].copy()
    alternate[[0, 2], 0] = alternate[[1, 3], 1] = np.nan
    np.testing.assert_array_equal(_plotted_rows(model, alternate), model.impute(alternate))
    pytest.importorskip("matplotlib")
    out = tmp_path / "plots"
    result = run("fit", src, "-k", "2", "-c", "diag", "-q", "-o", out)
    assert result.returncode == 0, result.stderr
    assert (out / "clusters.png").stat().st_size > 0
    assert (out / "loglik.png").stat().st_size > 0
