"""Feature names are checked by every command that reads data (issue 15, item 1).

Each test names the reproduction it guards against. Before the check, the first three
printed a wrong answer with exit code 0 (a mean log-likelihood of about -230 instead of
about -1.9), and ``--columns x,x`` fitted two identical columns.
"""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest

from gaussmix import cli
from gaussmix.datasets import load_faithful
from gaussmix.io import load_model


def write_csv(path, header, X):
    lines = [",".join(header)] + [",".join(repr(v) for v in row) for row in X.tolist()]
    path.write_text("\n".join(lines) + "\n")
    return path


def error_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("gaussmix: error: "), err
    return err[0]


def mean_log_likelihood(capsys, *args):
    assert cli.main(["score", *map(str, args)]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    return float(rows[0]["mean_log_likelihood"])


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """A model fitted on Old Faithful with header x,y; returns (model file, X, exact score)."""
    d = tmp_path_factory.mktemp("names")
    X = load_faithful()
    src = write_csv(d / "xy.csv", ["x", "y"], X)
    assert cli.main(["fit", str(src), "-k", "2", "--no-plots", "-q", "-o", str(d / "m")]) == 0
    path = d / "m" / "model.json"
    return path, X, float(load_model(path).score(X))


def test_score_with_renamed_swapped_header_is_an_error(fitted, tmp_path, capsys):
    """Reproduction: header a,b with the columns swapped scored -230.0 with exit 0."""
    model, X, _ = fitted
    src = write_csv(tmp_path / "ab.csv", ["a", "b"], X[:, ::-1])
    assert cli.main(["score", str(model), str(src)]) == 2
    line = error_line(capsys)
    assert "the columns (a, b) are not the model's features (x, y)" in line
    assert "--columns" in line
    assert cli.main(["predict", str(model), str(src)]) == 2
    assert "(a, b) are not the model's features (x, y)" in error_line(capsys)


def test_header_differing_in_case_is_an_error(fitted, tmp_path, capsys):
    """Reproduction: header X,Y was scored as if it were x,y without a word."""
    model, X, _ = fitted
    src = write_csv(tmp_path / "upper.csv", ["Y", "X"], X[:, ::-1])
    assert cli.main(["score", str(model), str(src)]) == 2
    line = error_line(capsys)
    assert "(Y, X) are not the model's features (x, y)" in line
    assert "differ in case" in line


def test_columns_are_reordered_by_name(fitted, tmp_path, capsys):
    """Reproduction: --columns y,x on a file in the model's order fed y as x."""
    model, X, exact = fitted
    src = write_csv(tmp_path / "xy.csv", ["x", "y"], X)
    assert mean_log_likelihood(capsys, model, src, "--columns", "y,x") == pytest.approx(
        exact, rel=1e-12
    )
    # A header naming the model's features in another order, with another column.
    other = write_csv(tmp_path / "yzx.csv", ["y", "z", "x"], np.c_[X[:, 1], X[:, 0], X[:, 0]])
    assert mean_log_likelihood(capsys, model, other) == pytest.approx(exact, rel=1e-12)


def test_columns_map_other_names_in_the_models_order(fitted, tmp_path, capsys):
    model, X, exact = fitted
    src = write_csv(tmp_path / "ab.csv", ["a", "b"], X[:, ::-1])
    assert mean_log_likelihood(capsys, model, src, "--columns", "b,a") == pytest.approx(
        exact, rel=1e-12
    )


def test_columns_mixing_model_names_and_others_is_an_error(fitted, tmp_path, capsys):
    model, X, _ = fitted
    src = write_csv(tmp_path / "xz.csv", ["x", "z"], X)
    assert cli.main(["score", str(model), str(src), "--columns", "z,x"]) == 2
    line = error_line(capsys)
    assert "--columns z, x names some of the model's features (x, y) but not all" in line


@pytest.mark.parametrize("columns", ["x,x", "x,1"])
def test_duplicate_columns_are_an_error(fitted, tmp_path, capsys, columns):
    """Reproduction: --columns x,x was accepted and fitted two identical columns."""
    _, X, _ = fitted
    src = write_csv(tmp_path / "xy.csv", ["x", "y"], X)
    out = tmp_path / "o"
    assert cli.main(["fit", str(src), "-k", "1", "--columns", columns, "-o", str(out)]) == 2
    assert "--columns names column 'x' twice" in error_line(capsys)
    assert not out.exists()


def test_model_without_names_and_data_without_header_match_by_position(tmp_path, capsys):
    X = load_faithful()
    plain = tmp_path / "plain.csv"
    plain.write_text("".join(f"{a!r},{b!r}\n" for a, b in X.tolist()))
    out = tmp_path / "m"
    assert cli.main(["fit", str(plain), "-k", "2", "--no-plots", "-q", "-o", str(out)]) == 0
    exact = float(load_model(out / "model.json").score(X))
    # The model's names are the generated x0, x1: a header of other names is not checked.
    named = write_csv(tmp_path / "ab.csv", ["a", "b"], X)
    assert mean_log_likelihood(capsys, out, named) == pytest.approx(exact, rel=1e-12)
    # A named model and data without a header: by position, as before.
    np.save(tmp_path / "x.npy", X)
    assert mean_log_likelihood(capsys, out, tmp_path / "x.npy") == pytest.approx(exact, rel=1e-12)


def test_parquet_column_names_are_checked(fitted, tmp_path, capsys):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    model, X, exact = fitted
    table = pa.table({"b": X[:, 1], "a": X[:, 0]})
    pq.write_table(table, tmp_path / "ab.parquet")
    assert cli.main(["score", str(model), str(tmp_path / "ab.parquet")]) == 2
    assert "the columns (b, a) are not the model's features (x, y)" in error_line(capsys)
    renamed = table.rename_columns(["y", "x"])
    pq.write_table(renamed, tmp_path / "yx.parquet")
    assert mean_log_likelihood(capsys, model, tmp_path / "yx.parquet") == pytest.approx(
        exact, rel=1e-12
    )
