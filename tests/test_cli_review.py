"""A new user's review of the command line and its readers, one test per finding.

``fit -c LIST`` (documented, refused by argparse); duplicate column names (accepted by
``fit``, then unusable); terminal escape sequences from headers printed raw; a column with
no observed value named from 0 and without its name; a junk ``.npy`` file read as text;
``--checkpoint`` (and ``--passes``, ``--batch-size``) silently ignored without ``--stream``.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pytest

from gaussmix import cli
from gaussmix._readers import DataError, Dataset, model_columns
from gaussmix.datasets import load_faithful
from gaussmix.io import load_model


def gm(capsys, *args):
    """Run ``gaussmix ARGS`` in this process: (exit code, stdout, stderr)."""
    try:
        code = cli.main([str(a) for a in args])
    except SystemExit as exc:  # argparse's usage errors and --help
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_user_error(code, err, *fragments):
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("gaussmix: error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture
def faithful(tmp_path):
    path = tmp_path / "faithful.csv"
    np.savetxt(path, load_faithful(), delimiter=",", header="eruptions,waiting", comments="")
    return path


def selection_rows(out):
    with open(out / "selection.csv", newline="") as f:
        return list(csv.DictReader(f))


# ---------------------------------------------------------------------------------------
# 1. fit -c LIST, as README and docs/models.md promise


def test_fit_with_a_list_at_one_k_chooses_among_the_list(faithful, tmp_path, capsys):
    code, out, err = gm(capsys, "fit", faithful, "-k", "3", "-c", "VVV,EEE,VVE", "--no-plots",
                        "-o", tmp_path / "fit")
    assert code == 0, err
    assert "Model selection by BIC" in out
    rows = selection_rows(tmp_path / "fit")
    assert {(r["covariance_type"], r["n_components"]) for r in rows} == {
        ("full", "3"), ("tied", "3"), ("VVE", "3")
    }
    best = min(rows, key=lambda r: float(r["bic"]))
    model = load_model(tmp_path / "fit" / "model.json")
    assert model.covariance_type == best["covariance_type"]
    assert model.n_components == 3
    # The same selection as `select` over that list at K = 3.
    code, _, err = gm(capsys, "select", faithful, "--components", "3", "-c", "VVV,EEE,VVE",
                      "--no-plots", "-q", "-o", tmp_path / "sel")
    assert code == 0, err
    for name in ("selection.csv", "model.json"):
        assert (tmp_path / "fit" / name).read_text() == (tmp_path / "sel" / name).read_text()


def test_fit_auto_with_a_list_selects_k_and_type_among_the_list(faithful, tmp_path, capsys):
    code, _, err = gm(capsys, "fit", faithful, "-k", "auto", "-c", "VVV,EEE", "--components",
                      "1-2", "--no-plots", "-q", "-o", tmp_path / "fit")
    assert code == 0, err
    rows = selection_rows(tmp_path / "fit")
    assert sorted((r["covariance_type"], r["n_components"]) for r in rows) == [
        ("full", "1"), ("full", "2"), ("tied", "1"), ("tied", "2")
    ]
    code, _, err = gm(capsys, "select", faithful, "--components", "1-2", "-c", "VVV,EEE",
                      "--no-plots", "-q", "-o", tmp_path / "sel")
    assert code == 0, err
    assert (tmp_path / "fit" / "selection.csv").read_text() == (
        tmp_path / "sel" / "selection.csv"
    ).read_text()


def test_fit_with_a_list_of_one_type_is_one_fit(faithful, tmp_path, capsys):
    code, _, err = gm(capsys, "fit", faithful, "-k", "2", "-c", "EEE,tied", "--no-plots", "-q",
                      "-o", tmp_path / "one")
    assert code == 0, err
    assert not (tmp_path / "one" / "selection.csv").exists()
    code, _, err = gm(capsys, "fit", faithful, "-k", "2", "-c", "tied", "--no-plots", "-q",
                      "-o", tmp_path / "named")
    assert code == 0, err
    assert (tmp_path / "one" / "model.json").read_text() == (
        tmp_path / "named" / "model.json"
    ).read_text()


def test_fit_list_errors_say_what_works(faithful, tmp_path, capsys):
    code, _, err = gm(capsys, "fit", faithful, "-k", "3", "-c", "VVV,VVX", "-q")
    assert_user_error(code, err, "invalid choice: 'VVX'", "such as VVV,EEE,VVE")
    code, _, err = gm(capsys, "fit", faithful, "--stream", "-k", "3", "-c", "VVV,EEE", "-q",
                      "-o", tmp_path / "s")
    assert_user_error(code, err, "--stream fits one model")
    code, _, err = gm(capsys, "fit", faithful, "-k", "2", "-c", "VVE", "--stream", "-q",
                      "-o", tmp_path / "m")
    assert code == 0, err
    code, _, err = gm(capsys, "fit", "--resume", tmp_path / "m" / "model.json", faithful,
                      "-c", "VVE,EEE", "-q", "-o", tmp_path / "r")
    assert_user_error(code, err, "continues a VVE model")


def test_fit_help_documents_the_list(capsys):
    code, out, _ = gm(capsys, "fit", "--help")
    assert code == 0
    assert "VVV,EEE,VVE" in " ".join(out.split())


# ---------------------------------------------------------------------------------------
# 2. Duplicate column names are refused when read (unless --columns avoids them)


def _write_table(path, names, X, kind):
    if kind == "parquet":
        pa = pytest.importorskip("pyarrow")
        pq = pytest.importorskip("pyarrow.parquet")
        table = pa.table([pa.array(X[:, j]) for j in range(X.shape[1])], names=names)
        pq.write_table(table, path)
        return
    sep = "\t" if kind == "tsv" else ","
    lines = [sep.join(names)] + [sep.join(repr(float(v)) for v in row) for row in X]
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture
def three_columns():
    rng = np.random.default_rng(0)
    return rng.normal(size=(40, 3)) + np.array([0.0, 10.0, -5.0])


@pytest.mark.parametrize("kind", ["csv", "tsv", "parquet"])
def test_duplicate_header_names_are_refused(kind, three_columns, tmp_path, capsys):
    data = tmp_path / f"dup.{kind}"
    _write_table(data, ["a", "a", "b"], three_columns, kind)
    out = tmp_path / "out"
    code, _, err = gm(capsys, "fit", data, "-k", "1", "--no-plots", "-q", "-o", out)
    assert_user_error(code, err, "two columns 'a' (columns 1 and 2)", "--columns")
    assert not (out / "model.json").exists()
    code, _, err = gm(capsys, "fit", data, "-k", "1", "--stream", "-q", "-o", out)
    assert_user_error(code, err, "two columns 'a' (columns 1 and 2)")
    # Picking both by number is refused too; by name, 'a' is ambiguous.
    code, _, err = gm(capsys, "fit", data, "-k", "1", "--columns", "1,2", "-q", "-o", out)
    assert_user_error(code, err, "--columns picks two columns named 'a' (columns 1 and 2)")
    code, _, err = gm(capsys, "fit", data, "-k", "1", "--columns", "a,b", "-q", "-o", out)
    assert_user_error(code, err, "'a' is not unique (columns 1 and 2)")


@pytest.mark.parametrize("kind", ["csv", "parquet"])
@pytest.mark.parametrize("stream", [False, True])
def test_columns_that_avoid_a_duplicate_name_work(kind, stream, three_columns, tmp_path, capsys):
    data = tmp_path / f"dup.{kind}"
    _write_table(data, ["a", "a", "b"], three_columns, kind)
    out = tmp_path / "out"
    extra = ["--stream"] if stream else ["--no-plots"]
    code, _, err = gm(capsys, "fit", data, "-k", "1", "--columns", "3,2", *extra, "-q",
                      "-o", out)
    assert code == 0, err
    model = load_model(out / "model.json")
    assert list(model.feature_names_in_) == ["b", "a"]
    # The second column, not the first of the same name (means 10 and 0 apart).
    np.testing.assert_allclose(model.means_[0], three_columns[:, [2, 1]].mean(axis=0))
    # predict with the same --columns works; without, the duplicate is named.
    code, labels, err = gm(capsys, "predict", out, data, "--columns", "3,2")
    assert code == 0, err
    assert len(labels.strip().splitlines()) == 1 + len(three_columns)
    code, _, err = gm(capsys, "predict", out, data)
    assert_user_error(code, err, "two columns 'a' (columns 1 and 2)")


def test_predict_ignores_a_duplicate_name_among_other_columns(three_columns, tmp_path, capsys):
    plain = tmp_path / "ab.csv"
    _write_table(plain, ["a", "b"], three_columns[:, 1:], "csv")
    code, _, err = gm(capsys, "fit", plain, "-k", "2", "--no-plots", "-q", "-o", tmp_path / "m")
    assert code == 0, err
    code, expected, err = gm(capsys, "predict", tmp_path / "m", plain)
    assert code == 0, err
    extra = tmp_path / "extra.csv"  # two id columns named alike, then the model's b and a
    X = np.column_stack([three_columns[:, 0], three_columns[:, 0], three_columns[:, [2, 1]]])
    _write_table(extra, ["id", "id", "b", "a"], X, "csv")
    code, labels, err = gm(capsys, "predict", tmp_path / "m", extra)
    assert code == 0, err
    assert labels == expected


def test_a_model_with_a_repeated_feature_name_is_not_matched_by_name(
    three_columns, tmp_path, capsys
):
    """Such a model (written before fit refused the names) gave 'internal error: KeyError:
    Field "f1" exists 2 times' on a header b,a."""
    plain = tmp_path / "ab.csv"
    _write_table(plain, ["a", "b"], three_columns[:, 1:], "csv")
    code, _, err = gm(capsys, "fit", plain, "-k", "1", "--no-plots", "-q", "-o", tmp_path / "m")
    assert code == 0, err
    path = tmp_path / "m" / "model.json"
    doc = json.loads(path.read_text())
    doc["feature_names"] = ["a", "a"]
    path.write_text(json.dumps(doc))
    ba = tmp_path / "ba.csv"
    _write_table(ba, ["b", "a"], three_columns[:, 1:], "csv")
    code, _, err = gm(capsys, "predict", path, ba)
    assert_user_error(code, err, "'a' twice (features 1 and 2)", "--columns")
    code, _, err = gm(capsys, "predict", path, ba, "--columns", "1,2")
    assert code == 0, err


def test_equal_names_are_not_said_to_differ_in_case():
    """The mismatch error claimed '(the names differ in case)' for a, a against a, a."""
    ds = Dataset(np.zeros((2, 2)), ["a", "a"], True, "d.csv")
    with pytest.raises(DataError) as info:
        model_columns(ds, ["a", "a"], 2, False)
    assert "differ in case" not in str(info.value)
    ds = Dataset(np.zeros((2, 2)), ["A", "b"], True, "d.csv")
    with pytest.raises(DataError, match="differ in case"):
        model_columns(ds, ["a", "b"], 2, False)


# ---------------------------------------------------------------------------------------
# 3. Names from a header are printed with their control characters escaped

ESC_NAME = "a\x1b[31mRED"


def test_fit_summary_escapes_header_names(three_columns, tmp_path, capsys):
    data = tmp_path / "esc.csv"
    _write_table(data, [ESC_NAME, "b"], three_columns[:, 1:], "csv")
    code, out, err = gm(capsys, "fit", data, "-k", "1", "--no-plots", "-o", tmp_path / "m")
    assert code == 0, err
    assert "\x1b" not in out + err
    first = out.splitlines()[0]
    assert first.startswith("Gaussian mixture fitted to") and "a\\x1b[31mRED, b" in first


def test_errors_escape_header_names(three_columns, tmp_path, capsys):
    plain = tmp_path / "ab.csv"
    _write_table(plain, ["a", "b"], three_columns[:, 1:], "csv")
    code, _, err = gm(capsys, "fit", plain, "-k", "1", "--no-plots", "-q", "-o", tmp_path / "m")
    assert code == 0, err
    two = tmp_path / "esc2.csv"
    _write_table(two, [ESC_NAME, "b"], three_columns[:, 1:], "csv")
    three = tmp_path / "esc3.csv"
    _write_table(three, [ESC_NAME, "b", "c"], three_columns, "csv")
    for args, fragment in [
        (("predict", tmp_path / "m", two), "the columns (a\\x1b[31mRED, b) are not"),
        (("predict", tmp_path / "m", three, "--columns", "1,2,3"), "3 columns (a\\x1b[31mRED"),
        (("predict", tmp_path / "m", two, "--columns", "zz"), "the columns are a\\x1b[31mRED"),
    ]:
        code, out, err = gm(capsys, *args)
        assert_user_error(code, err, fragment)
        assert "\x1b" not in out + err


def test_summaries_and_errors_never_print_a_raw_escape(three_columns, tmp_path, capsys):
    """Whatever a summary or a message quotes (a file name, a cell), it is escaped."""
    data = tmp_path / "x\x1b[2J.csv"
    _write_table(data, ["a", "b"], three_columns[:, 1:], "csv")
    code, out, err = gm(capsys, "fit", data, "-k", "1", "--no-plots", "-o", tmp_path / "m")
    assert code == 0, err
    assert "\x1b" not in out + err
    assert "x\\x1b[2J.csv" in out.splitlines()[0]
    data.write_text("a,b\n1,2\n3,\x1b[2J\n")
    code, out, err = gm(capsys, "fit", data, "-k", "1", "-q")
    assert_user_error(code, err, "non-numeric value", "x\\x1b[2J.csv")
    assert "\x1b" not in out + err


# ---------------------------------------------------------------------------------------
# 4a. A column with no observed value is named as the command line names columns


@pytest.mark.parametrize(
    "command", [("fit", "-k", "1"), ("fit", "-k", "auto", "--components", "1-2"), ("select",)]
)
def test_a_column_with_no_observed_value_is_named(command, tmp_path, capsys):
    data = tmp_path / "empty.csv"
    data.write_text("a,b,c\n" + "".join(f"{i},{i * i % 7},\n" for i in range(12)))
    code, _, err = gm(capsys, *command, data, "--no-plots", "-q", "-o", tmp_path / "o")
    assert_user_error(code, err, "column 'c' (column 3) has no observed value")
    headerless = tmp_path / "headerless.csv"
    headerless.write_text("".join(f"{i},{i * i % 7},\n" for i in range(12)))
    code, _, err = gm(capsys, *command, headerless, "--no-plots", "-q", "-o", tmp_path / "o")
    assert_user_error(code, err, "column 3 has no observed value")


def test_stream_names_a_column_empty_in_its_first_batch(tmp_path, capsys):
    data = tmp_path / "late.csv"
    rows = [f"{i},{i % 5}," for i in range(10)] + [f"{i},{i % 5},{i % 3}" for i in range(30)]
    data.write_text("a,b,c\n" + "\n".join(rows) + "\n")
    code, _, err = gm(capsys, "fit", data, "--stream", "-k", "1", "--batch-size", "5", "-q",
                      "-o", tmp_path / "o")
    assert_user_error(code, err, "column 'c' (column 3) has no observed value in the first batch")


def test_dask_names_a_column_with_no_observed_value(tmp_path):
    pytest.importorskip("distributed")
    X = np.random.default_rng(0).normal(size=(50, 3))
    X[:, 1] = np.nan
    np.save(tmp_path / "x.npy", X)
    # In a process of its own, as a user runs it (the cluster's warnings stay there).
    result = subprocess.run(
        [sys.executable, "-m", "gaussmix", "fit", str(tmp_path / "x.npy"), "-k", "1",
         "--n-init", "1", "--no-plots", "-q", "--scheduler", "local:1",
         "-o", str(tmp_path / "o")],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 2, result.stderr
    assert "gaussmix: error: " in result.stderr
    assert "column 2 has no observed value" in result.stderr


# ---------------------------------------------------------------------------------------
# 4b. A file named .npy that is not one


@pytest.mark.parametrize(
    "content, fragment",
    [(b"hello\n", "it looks like text"), (b"", "it is empty"), (bytes(range(200)), "signature")],
)
@pytest.mark.parametrize("stream", [False, True])
def test_a_junk_npy_file_is_said_to_be_invalid(content, fragment, stream, tmp_path, capsys):
    path = tmp_path / "junk.npy"
    path.write_bytes(content)
    extra = ["--stream"] if stream else []
    code, _, err = gm(capsys, "fit", path, "-k", "1", *extra, "-q", "-o", tmp_path / "o")
    assert_user_error(code, err, "junk.npy: not a valid .npy file", fragment)


def test_a_valid_npy_file_is_still_read(tmp_path, capsys):
    X = load_faithful()
    np.save(tmp_path / "x.npy", X)
    code, _, err = gm(capsys, "fit", tmp_path / "x.npy", "-k", "1", "--no-plots", "-q",
                      "-o", tmp_path / "o")
    assert code == 0, err
    np.testing.assert_allclose(load_model(tmp_path / "o" / "model.json").means_[0], X.mean(axis=0))


# ---------------------------------------------------------------------------------------
# 4c. Online-EM options without --stream


@pytest.mark.parametrize(
    "option", [("--checkpoint",), ("--passes", "2"), ("--batch-size", "100")]
)
def test_online_options_without_stream_are_refused(option, faithful, tmp_path, capsys):
    out = tmp_path / "o"
    code, _, err = gm(capsys, "fit", faithful, "-k", "2", *option, "--no-plots", "-q", "-o", out)
    assert_user_error(code, err, f"{option[0]} applies to online EM", "add --stream")
    assert not out.exists()


def test_online_options_with_stream_work(faithful, tmp_path, capsys):
    out = tmp_path / "o"
    code, _, err = gm(capsys, "fit", faithful, "-k", "2", "--stream", "--checkpoint",
                      "--passes", "2", "--batch-size", "100", "-o", out)
    assert code == 0, err
    assert "pass 2/2: 272 rows in 2 batches" in err
    assert load_model(out / "model.json").n_components == 2
