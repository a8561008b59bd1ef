"""Issue 15, item 5: the command line's readers (Apache Arrow) and writers, in bounded memory.

Reproductions from the issue:

* "A one-column file with decimal commas (``1,5``) is read as two columns, and ``1_000`` is
  read as 1000." Now refused, with the line, the column and the fix.
* "``fit`` on a 1e7 x 2 ``.npy`` peaks at 2.71 GB; ``predict --proba`` on 1e7 rows: 2.71 GB."
  The ``.npy`` file is memory-mapped (not copied) and assignments are computed and written
  block by block; the figures themselves come from ``benchmarks/bench_cli_io.py``, here
  only the mechanisms are checked (no timing or memory assertion).
"""

from __future__ import annotations

import csv
import io
import itertools

import numpy as np
import pytest

from gaussmix import GaussianMixture, _readers, _writers, cli
from gaussmix._readers import DataError, read_data

pytest.importorskip("pyarrow")


def _file(tmp_path, text, name="data.csv"):
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return str(path)


def _cli(capsys, *args):
    code = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


# ---------------------------------------------------------------------------------------
# Decimal commas and digit separators: refused, never misread


def test_one_column_decimal_commas_are_not_read_as_two_columns(tmp_path):
    """Repro (issue 15, 5): a one-column file ``1,5 / 2,25 / 0,5`` was read as two columns
    (1, 5), (2, 25), (0, 5). Without a header, ``1,5`` is ambiguous: refused, with the fix."""
    path = _file(tmp_path, "1,5\n2,25\n0,5\n3,75\n")
    with pytest.raises(DataError) as info:
        read_data(path)
    message = str(info.value)
    assert "line 1" in message and "'1,5'" in message
    assert "decimal comma" in message and "1.5" in message
    assert "header" in message  # the fix for two integer columns


def test_decimal_comma_cli_exit_code(tmp_path, capsys):
    """Repro (issue 15, 5): ``gaussmix fit`` on the one-column ``1,5`` file fitted two
    columns and exited 0."""
    path = _file(tmp_path, "".join(f"{i},5\n" for i in range(30)))
    code, _, err = _cli(capsys, "fit", path, "-k", "1", "-o", tmp_path / "out", "-q")
    assert code == 2
    assert "decimal comma" in err and "line 1" in err
    assert not (tmp_path / "out").exists()


def test_decimal_comma_with_a_header_names_line_and_column(tmp_path):
    """Repro (issue 15, 5): the one-column file with a header ``x`` and cells ``1,5``.
    The error names line, data row and column, and says to write ``1.5``."""
    path = _file(tmp_path, "x\n2.5\n1,5\n")
    with pytest.raises(DataError) as info:
        read_data(path)
    message = str(info.value)
    assert "decimal comma in '1,5' at line 3 (data row 2), column 'x'" in message
    assert "'1.5'" in message


@pytest.mark.parametrize(
    "text, line, column",
    [
        ('x,y\n0.5,1\n"1,5",2\n', 3, "x"),  # quoted: one cell
        ("x;y\n0.5;1\n2;1,5\n", 3, "y"),  # semicolon-separated, decimal commas
        ("x\ty\n0.5\t1\n2\t-0,25\n", 3, "y"),  # tab-separated
    ],
)
def test_quoted_and_separated_decimal_commas_are_refused(tmp_path, text, line, column):
    """Repro (issue 15, 5): ``"1,5"`` quoted, or decimal commas in a ';' or tab-separated
    file, gave a bare "non-numeric value" error; now the message names the decimal comma."""
    path = _file(tmp_path, text)
    with pytest.raises(DataError) as info:
        read_data(path)
    message = str(info.value)
    assert "decimal comma" in message
    assert f"line {line}" in message and f"column {column!r}" in message


def test_underscore_digit_groups_are_refused(tmp_path):
    """Repro (issue 15, 5): ``1_000`` was read as 1000 (Python's float() takes it)."""
    path = _file(tmp_path, "x,y\n1,2\n1_000,3\n")
    with pytest.raises(DataError) as info:
        read_data(path)
    message = str(info.value)
    assert "'1_000' at line 3 (data row 2), column 'x'" in message
    assert "'1000'" in message  # the fix


@pytest.mark.parametrize("cell", ["1_000", "١٢", "0x10", "1,000.5"])
def test_cells_python_float_reads_are_refused_in_the_line_parser(tmp_path, cell):
    """The line parser (used for error messages) refuses what Arrow refuses: it must not
    read a cell that Python's float() would take (``1_000``, non-ASCII digits)."""
    path = _file(tmp_path, f"x;y\n1;2\n{cell};3\n")
    with pytest.raises(DataError, match="line 3"):
        read_data(path)


def test_two_integer_columns_with_a_header_are_read(tmp_path):
    """A header makes ``1,5`` two columns: the refusal above is only for header-less files."""
    path = _file(tmp_path, "a,b\n1,5\n2,25\n")
    ds = read_data(path)
    assert ds.names == ["a", "b"]
    np.testing.assert_array_equal(ds.X, [[1, 5], [2, 25]])


# ---------------------------------------------------------------------------------------
# Arrow's parse agrees with the line parser on everything the old reader took


def _variants():
    cells = ["1.5", " -2e-3", "+.5", "7", "NA", "", "nan", " None ", "1E5", "-0"]
    rng = np.random.default_rng(0)
    for delimiter, crlf, comments, bom, quoted in itertools.product(
        [",", ";", "\t", " "], [False, True], [False, True], [False, True], [False, True]
    ):
        if delimiter == " " and quoted:
            continue
        rows = []
        for _ in range(40):
            row = [cells[i] for i in rng.integers(0, len(cells), 3)]
            if delimiter == " ":
                row = [c.strip() or "nan" for c in row]
            if all(c.strip().lower() in _readers.MISSING_TOKENS for c in row):
                row[0] = "4.25"
            if quoted:
                row = [f'"{c}"' if i == 1 else c for i, c in enumerate(row)]
            rows.append(delimiter.join(row))
        if comments:
            rows.insert(5, "# a comment")
            rows.insert(9, "   ")
            rows.insert(12, "")
        end = "\r\n" if crlf else "\n"
        text = delimiter.join("abc") + end + end.join(rows) + end
        yield ("\ufeff" if bom else "") + text


@pytest.mark.parametrize("text", list(_variants()))
def test_arrow_and_line_parser_agree(tmp_path, text):
    path = _file(tmp_path, text, "data.tsv" if "\t" in text else "data.csv")
    ds = read_data(path, allow_missing=True)
    raw = text.encode("utf-8")
    layout_ds = _readers._read_text_lines(
        raw, path, _layout(raw, path), allow_missing=True
    )
    assert ds.names == layout_ds.names == ["a", "b", "c"]
    np.testing.assert_array_equal(ds.X, layout_ds.X)  # NaN in the same places


def _layout(raw, path):
    text = raw.decode("utf-8-sig")
    content = [(i + 1, s) for i, s in enumerate(text.splitlines()) if s.strip() and s[0] != "#"]
    return _readers._TextLayout.detect(content, path, None, path.endswith(".tsv"), None)


def test_arrow_is_the_parser(tmp_path, monkeypatch):
    """The line parser runs only when Arrow refuses the text (for the error message)."""
    path = _file(tmp_path, "x,y\n" + "".join(f"{i}.5,{-i}e-3\n" for i in range(1000)))

    def fail(*args, **kwargs):
        raise AssertionError("the line parser ran on a valid file")

    monkeypatch.setattr(_readers, "_read_text_lines", fail)
    ds = read_data(path)
    assert ds.X.shape == (1000, 2)
    assert ds.X[3, 0] == 3.5 and ds.X[3, 1] == -3e-3


def test_ragged_and_non_numeric_errors_are_unchanged(tmp_path):
    path = _file(tmp_path, "x,y\n1,2\n3\n")
    with pytest.raises(DataError, match=r"line 3 has 1 fields but the header has 2"):
        read_data(path)
    path = _file(tmp_path, "x,y\n1,2\n3,abc\n")
    with pytest.raises(DataError, match=r"non-numeric value 'abc' at line 3 \(data row 2\), "
                                         r"column 'y'"):
        read_data(path)


# ---------------------------------------------------------------------------------------
# .npy: memory-mapped, checked block by block


def test_npy_is_memory_mapped(tmp_path):
    """Repro (issue 15, 5): the .npy file was read whole into memory (and copied twice)."""
    X = np.random.default_rng(0).normal(size=(1000, 2))
    np.save(tmp_path / "x.npy", X)
    ds = read_data(str(tmp_path / "x.npy"), allow_missing=True)
    assert isinstance(ds.X, np.memmap) or isinstance(ds.X.base, np.memmap)
    np.testing.assert_array_equal(ds.X, X)


def test_npy_conversions_are_copies_of_the_chosen_columns(tmp_path):
    X = np.arange(30, dtype=np.float64).reshape(10, 3)
    np.save(tmp_path / "x.npy", X)
    ds = read_data(str(tmp_path / "x.npy"), columns=["x2", "x0"], dtype="float32")
    assert ds.X.dtype == np.float32 and ds.X.flags.c_contiguous
    np.testing.assert_array_equal(ds.X, X[:, [2, 0]])
    np.save(tmp_path / "big.npy", np.array([[1.0, 1e300]]))
    with pytest.raises(DataError, match="overflow float32"):
        read_data(str(tmp_path / "big.npy"), dtype="float32")


def test_blockwise_value_checks_name_the_first_bad_cell(tmp_path, monkeypatch):
    """Checked in blocks of CHECK_ROWS rows: the count and the first place are those of
    the whole array."""
    monkeypatch.setattr(_readers, "CHECK_ROWS", 3)
    X = np.ones((20, 2))
    X[7, 1] = X[15, 0] = np.nan
    X[11, :] = np.nan
    np.save(tmp_path / "x.npy", X)
    with pytest.raises(DataError, match=r"4 missing values, the first at row 7 \(counting "
                                        r"from 0\), column 'x1'"):
        read_data(str(tmp_path / "x.npy"))
    with pytest.raises(DataError, match=r"1 row with no observed value, the first at row 11"):
        read_data(str(tmp_path / "x.npy"), allow_missing=True)
    X[11, :] = 1.0
    X[13, 0] = -np.inf
    np.save(tmp_path / "x.npy", X)
    with pytest.raises(DataError, match=r"infinite value at row 13 .*column 'x0'"):
        read_data(str(tmp_path / "x.npy"), allow_missing=True)


# ---------------------------------------------------------------------------------------
# Assignments and predictions written block by block


def _blobs(n=500, seed=0):
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0], [6.0, 6.0], [-6.0, 6.0]])
    return centres[rng.integers(0, 3, n)] + rng.normal(size=(n, 2))


def _rows(text):
    rows = list(csv.reader(io.StringIO(text)))
    return rows[0], np.array(rows[1:], dtype=np.float64)


def test_assignments_are_written_block_by_block(tmp_path, capsys, monkeypatch):
    """Repro (issue 15, 5): fit computed predict_proba of every row at once and wrote a
    Python list of every value. Now the estimator sees WRITE_ROWS rows at a time, and the
    file holds the same numbers."""
    X = _blobs()
    np.save(tmp_path / "x.npy", X)
    monkeypatch.setattr(_writers, "WRITE_ROWS", 64)
    seen = []
    original = GaussianMixture.predict_proba

    def spy(self, data):
        seen.append(len(data))
        return original(self, data)

    monkeypatch.setattr(GaussianMixture, "predict_proba", spy)
    out = tmp_path / "out"
    code, _, err = _cli(capsys, "fit", tmp_path / "x.npy", "-k", "3", "-o", out, "-q",
                        "--no-plots", "--seed", "0")
    assert code == 0, err
    assert seen and max(seen) <= 64
    header, values = _rows((out / "assignments.csv").read_text())
    assert header == ["row", "label", "uncertainty", "p0", "p1", "p2"]
    model = cli._load(str(out / "model.json"))
    proba = original(model, X)
    np.testing.assert_array_equal(values[:, 0], np.arange(len(X)))
    np.testing.assert_array_equal(values[:, 1], model.predict(X))
    np.testing.assert_array_equal(values[:, 3:], proba)  # exact: shortest round-trip text
    # uncertainty = 1 - max, written as the other probabilities' sum (no cancellation)
    largest = np.arange(proba.shape[1]) == proba.argmax(axis=1)[:, None]
    np.testing.assert_array_equal(values[:, 2], np.where(largest, 0.0, proba).sum(axis=1))
    np.testing.assert_allclose(values[:, 2], 1.0 - proba.max(axis=1), rtol=0, atol=1e-15)


@pytest.mark.parametrize("extra", [[], ["--proba"]])
def test_predict_output_does_not_depend_on_the_block_size(tmp_path, capsys, monkeypatch,
                                                          extra):
    X = _blobs(300, seed=1)
    np.save(tmp_path / "x.npy", X)
    out = tmp_path / "out"
    code, _, err = _cli(capsys, "fit", tmp_path / "x.npy", "-k", "3", "-o", out, "-q",
                        "--no-plots")
    assert code == 0, err
    texts = []
    for rows in (7, 100_000):
        monkeypatch.setattr(_writers, "WRITE_ROWS", rows)
        target = tmp_path / f"pred{rows}.csv"
        code, _, err = _cli(capsys, "predict", out / "model.json", tmp_path / "x.npy",
                            *extra, "-o", target)
        assert code == 0, err
        texts.append(target.read_text())
    assert texts[0] == texts[1]
    _, values = _rows(texts[0])
    assert len(values) == len(X)


def test_score_total_in_blocks(tmp_path, capsys, monkeypatch):
    X = _blobs(300, seed=2)
    np.save(tmp_path / "x.npy", X)
    out = tmp_path / "out"
    assert _cli(capsys, "fit", tmp_path / "x.npy", "-k", "3", "-o", out, "-q",
                "--no-plots")[0] == 0
    monkeypatch.setattr(cli, "WRITE_ROWS", 16)
    code, text, err = _cli(capsys, "score", out / "model.json", tmp_path / "x.npy")
    assert code == 0, err
    _, values = _rows(text)
    model = cli._load(str(out / "model.json"))
    assert values[0, 1] == pytest.approx(model.score_samples(X).sum(), rel=1e-12)


# ---------------------------------------------------------------------------------------
# The benchmark that prints the figures


@pytest.mark.slow
def test_bench_cli_io_smoke(tmp_path):
    """benchmarks/bench_cli_io.py runs on tiny sizes and prints every figure (the numbers
    themselves are meaningless at this size: nothing about them is asserted)."""
    import subprocess
    import sys
    from pathlib import Path

    pytest.importorskip("pandas")
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_cli_io.py"
    proc = subprocess.run(
        [sys.executable, str(script), "--csv-rows", "500", "--npy-rows", "3000",
         "--repeats", "1", "--no-plots", "--workdir", str(tmp_path)],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = proc.stdout
    assert "same values: True" in text
    for needle in ("gaussmix read_data", "pandas.read_csv", "ratio",
                   "gaussmix fit -k 3 -c full", "gaussmix predict --proba",
                   "library fit on the memmap", "assignments.csv"):
        assert needle in text, needle
    import re

    peaks = re.findall(r"(\d+) MB\s+[\d.]+ s", text)
    assert len(peaks) == 3 and all(int(p) > 0 for p in peaks)
    assert list(tmp_path.iterdir()) == []  # the benchmark's files are removed


def test_without_pyarrow_the_line_parser_reads_the_same(tmp_path, monkeypatch, capsys):
    """pyarrow is in the ``cli`` extra; without it the CSV reader falls back to the line
    parser (slower, same values) and the writers to the csv module."""
    import sys

    text = "x,y\n1.5,NA\n# note\n-2,3e-2\n4,5\n"
    path = _file(tmp_path, text)
    expected = read_data(path, allow_missing=True).X
    for name in ("pyarrow", "pyarrow.csv"):
        monkeypatch.setitem(sys.modules, name, None)  # import pyarrow raises ImportError
    ds = read_data(path, allow_missing=True)
    np.testing.assert_array_equal(ds.X, expected)
    with pytest.raises(DataError, match="'1_000' at line 3"):
        read_data(_file(tmp_path, "x,y\n1,2\n1_000,3\n", "bad.csv"))
    buf = io.StringIO()
    _writers.block_writer(np.zeros((3, 1)), ["row", "v"], lambda b: [b[:, 0] + 0.5])(buf)
    assert buf.getvalue() == "row,v\n0,0.5\n1,0.5\n2,0.5\n"


def test_large_files_are_streamed_with_the_same_result(tmp_path, monkeypatch):
    """Files above STREAM_BYTES go through Arrow's streaming reader (open_csv); the values,
    the names and the errors are those of the whole-file reader."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(3000, 3))
    body = "".join(",".join(repr(float(v)) for v in row) + "\n" for row in X)
    path = _file(tmp_path, "id,a,b\n" + body)
    whole = read_data(path, columns=["b", "id"])
    monkeypatch.setattr(_readers, "STREAM_BYTES", 1000)
    calls = []
    original = _readers._arrow_stream
    monkeypatch.setattr(_readers, "_arrow_stream",
                        lambda *a: calls.append(1) or original(*a))
    streamed = read_data(path, columns=["b", "id"])
    assert calls and streamed.names == whole.names == ["b", "id"]
    np.testing.assert_array_equal(streamed.X, whole.X)
    np.testing.assert_array_equal(streamed.X, X[:, [2, 0]])
    # comment lines: refused by the stream, read whole
    commented = _file(tmp_path, "a,b\n# note\n" + "1.5,2\n" * 400 + "#\n3,4\n", "c.csv")
    np.testing.assert_array_equal(read_data(commented).X[-1], [3, 4])
    bad = _file(tmp_path, "a,b\n" + "1.5,2\n" * 400 + "3,1_000\n", "bad.csv")
    with pytest.raises(DataError, match=r"'1_000' at line 402 \(data row 401\), column 'b'"):
        read_data(bad)


def test_a_failure_while_writing_blocks_leaves_no_file(tmp_path, capsys, monkeypatch):
    """Predictions are computed while the file is written: a failure in a later block
    must leave nothing behind (the staging of io.atomic_path), not a partial CSV."""
    X = _blobs(200, seed=4)
    np.save(tmp_path / "x.npy", X)
    out = tmp_path / "out"
    assert _cli(capsys, "fit", tmp_path / "x.npy", "-k", "3", "-o", out, "-q",
                "--no-plots")[0] == 0
    monkeypatch.setattr(_writers, "WRITE_ROWS", 50)
    original = GaussianMixture.predict
    calls = []

    def failing(self, data):
        calls.append(len(data))
        if len(calls) == 3:
            raise MemoryError("no memory left")
        return original(self, data)

    monkeypatch.setattr(GaussianMixture, "predict", failing)
    target = tmp_path / "pred" / "labels.csv"
    target.parent.mkdir()
    code, _, err = _cli(capsys, "predict", out / "model.json", tmp_path / "x.npy", "-o", target)
    assert code != 0 and "no memory left" in err
    assert len(calls) == 3
    assert list(target.parent.iterdir()) == []


@pytest.mark.parametrize("end", ["\n", "\r\n", "\r"])
def test_line_endings_and_leading_comments(tmp_path, end):
    """The header is found after blank and comment lines, whatever the line ending."""
    text = end.join(["", "# made by hand", "x,y", "1,2", "", "3.5,-4"]) + end
    ds = read_data(_file(tmp_path, text))
    assert ds.names == ["x", "y"] and ds.has_header
    np.testing.assert_array_equal(ds.X, [[1, 2], [3.5, -4]])
