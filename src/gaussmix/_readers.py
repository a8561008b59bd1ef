"""Reading the command line's data: CSV/TSV, ``.npy`` and Parquet, in memory or on Dask.

Text files have their header and delimiter detected; ``columns`` picks columns by name or
1-based number, in order. Missing values (empty, ``NA``, ``nan`` cells; NaN in ``.npy``;
Parquet nulls) are read as NaN when the caller allows them, and refused otherwise. Every
problem with a file (missing, unreadable, a non-numeric cell, refused missing values,
infinite values, a row with nothing observed, ragged rows, no data, two columns used with
one name, a ``.npy`` file that is not one) raises :class:`DataError` with one line naming
the file, the place and the fix. Names from a file are quoted escaped (:func:`printable`).

With ``--scheduler``, :func:`read_dask_data` opens ``.npy`` files, folders of them and
Parquet data as a dask array that stays on the workers.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import re
import sys
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._validation import MAGNITUDE_LIMIT, too_large

__all__ = [
    "ChunkedData",
    "DataError",
    "Dataset",
    "check_dask_input",
    "is_lazy",
    "model_columns",
    "no_feature_name_warnings",
    "open_chunked",
    "read_dask_data",
    "read_data",
]

MISSING_TOKENS = {"", "na", "nan", "n/a", "null", "none", "?", "."}

# What a numeric cell may hold (after stripping): ASCII digits with an optional point and
# exponent, or inf/nan. Python's float() takes more (``1_000``, non-ASCII digits), which
# would be misread: such cells are refused instead (see :func:`_cell_error`).
_NUMBER = re.compile(
    r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[+-]?(?:inf|infinity|nan)", re.I | re.ASCII
)
_DECIMAL_COMMA = re.compile(r"[+-]?\d*,\d+", re.ASCII)
_INTEGER = re.compile(r"[+-]?\d+", re.ASCII)


class DataError(ValueError):
    """A data file cannot be read as a finite numeric table (a user error, exit code 2)."""


def printable(value: Any, limit: int = 200) -> str:
    """``str(value)`` safe for a terminal: control characters escaped, long text shortened.

    Strings read from a file (column and feature names, versions, settings) may hold
    terminal escape sequences (``\\x1b[2J`` clears the screen) or other invisible
    characters; they are shown as Python escapes (``\\x1b``) instead. Every message and
    summary that shows such a string passes it through here (``info``, ``fit``'s summary,
    the readers' errors).

    Examples
    --------
    >>> printable("bad\\x1b[31mred")
    'bad\\\\x1b[31mred'
    """
    text = str(value)
    if len(text) > limit:
        text = text[:limit] + "..."
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


def _shown(names: Sequence[str]) -> str:
    """Column or feature names for a message: escaped (see :func:`printable`), comma-separated."""
    return ", ".join(printable(n, limit=60) for n in names)


def _duplicate(names: Sequence[str]) -> tuple[str, int, int] | None:
    """The first name that occurs twice, with its two 0-based positions; None if unique."""
    seen: dict[str, int] = {}
    for j, name in enumerate(names):
        if name in seen:
            return name, seen[name], j
        seen[name] = j
    return None


@dataclass
class Dataset:
    """Numeric data read from a file, with column names and a description of its source."""

    X: np.ndarray
    names: list[str]
    has_header: bool
    source: str


def _read_bytes(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    if os.path.isdir(path):
        raise DataError(f"{path} is a directory, not a data file")
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise DataError(f"data file not found: {path}") from None
    except PermissionError:
        raise DataError(f"cannot read {path}: permission denied") from None


def read_data(
    path: str,
    columns: Sequence[str] | None = None,
    dtype: str = "float64",
    prefer: Sequence[str] | None = None,
    allow_missing: bool = False,
) -> Dataset:
    """Read a numeric table from CSV/TSV (``-`` = stdin), ``.npy`` or Parquet.

    Parameters
    ----------
    path : str
        File name, or ``-`` for standard input (CSV/TSV).
    columns : sequence of str, optional
        Columns to keep, by name or 1-based number, in this order.
    dtype : {"float64", "float32"}
        dtype of the returned array.
    prefer : sequence of str, optional
        Without ``columns``: if the header names all of these, read only them (a model's
        feature names, so other columns such as identifiers may be non-numeric).
    allow_missing : bool, default=False
        Keep missing values (empty, ``NA``, ``nan`` cells; NaN in ``.npy``; Parquet nulls)
        as NaN instead of refusing them. A row with no observed value is still refused.

    Returns
    -------
    Dataset

    Raises
    ------
    DataError
        For a missing or unreadable file, a non-numeric cell (naming line and column),
        missing values unless ``allow_missing`` (their count and the first position), a row
        with nothing observed, infinite values, ragged rows, no data, two of the columns
        read sharing a name (the name and both column numbers), or a file named ``.npy``
        that is not one.
    """
    source = "stdin" if path == "-" else path
    lower = path.lower()
    _check_npy_signature(path)
    if lower.endswith((".parquet", ".pq")):
        ds = _read_parquet(path, columns, prefer, allow_missing)
    elif path != "-" and _magic(path) == b"\x93NUMPY":
        ds = _read_npy_mapped(path, columns, dtype, allow_missing)
    elif path != "-" and _magic(path)[:4] == b"PAR1":
        ds = _read_parquet(path, columns, prefer, allow_missing)
    elif path != "-" and os.path.isfile(path) and os.path.getsize(path) > STREAM_BYTES:
        tsv = lower.endswith((".tsv", ".tab"))
        ds = _read_text_file(path, columns, tsv, prefer, allow_missing)
    else:
        raw = _read_bytes(path)
        if raw.startswith(b"\x93NUMPY"):
            ds = _read_npy(raw, source, columns, allow_missing)
        elif raw.startswith(b"PAR1"):
            ds = _read_parquet(path, columns, prefer, allow_missing)
        else:
            tsv = lower.endswith((".tsv", ".tab"))
            ds = _read_text(raw, source, columns, tsv, prefer, allow_missing)
    if ds.X.shape[0] == 0:
        raise DataError(f"{source}: no data rows (the input is empty)")
    if ds.X.shape[1] == 0:
        raise DataError(f"{source}: no columns selected")
    if ds.X.dtype != np.dtype(dtype):
        ds.X = _converted(ds.X, dtype)
        if dtype == "float32" and any(np.isinf(b).any() for b in _row_blocks(ds.X)):
            raise DataError(f"{source}: values overflow float32; use --dtype float64")
    return ds


# Rows of an array checked or converted at a time (bounded temporaries on large data).
CHECK_ROWS = 1 << 18


def _row_blocks(X: np.ndarray, rows: int = CHECK_ROWS) -> Iterator[np.ndarray]:
    for start in range(0, X.shape[0], rows):
        yield X[start : start + rows]


def _converted(
    X: np.ndarray, dtype: Any, picked: Sequence[int] | None = None, source: str = ""
) -> np.ndarray:
    """``X[:, picked]`` as a new C-ordered ``dtype`` array, copied block by block (no
    temporary of the whole array, e.g. from a memory-mapped file).

    With ``source``: finite values that overflow float32 are a DataError naming it.
    """
    picked = list(range(X.shape[1])) if picked is None else list(picked)
    out = np.empty((X.shape[0], len(picked)), dtype=dtype)
    for start in range(0, X.shape[0], CHECK_ROWS):
        block = X[start : start + CHECK_ROWS][:, picked]
        part = out[start : start + len(block)]
        with np.errstate(over="ignore", invalid="ignore"):
            part[...] = block
        if source and out.dtype == np.float32 and not np.isfinite(part.sum(dtype=np.float64)):
            if (np.isinf(part) & np.isfinite(block)).any():
                raise DataError(f"{source}: values overflow float32; use --dtype float64")
    return out


def _check_npy_signature(path: str) -> None:
    """Refuse a file named ``.npy`` that is not one (nor Parquet): read as text, it gave
    'no data rows' or a wrong table."""
    if not path.lower().endswith(".npy") or not os.path.isfile(path):
        return  # not named .npy, or missing or a folder: the reader says why
    head = _magic(path)
    if head == b"\x93NUMPY" or head[:4] == b"PAR1":
        return
    if not head:
        why = "it is empty"
    else:
        why = "it does not start with the .npy signature \\x93NUMPY"
        if all(32 <= b < 127 or b in b"\t\r\n" for b in head):
            why += "; it looks like text: if it is CSV or TSV, name it .csv or .tsv"
    raise DataError(
        f"{path}: not a valid .npy file: {why}; write it with numpy.save, or give CSV/TSV "
        "or Parquet data"
    )


def _magic(path: str) -> bytes:
    """The first 6 bytes of a file ("" for a directory or a file that cannot be opened:
    the reader then says why)."""
    try:
        with open(path, "rb") as f:
            return f.read(6)
    except OSError:
        return b""


def _read_npy_mapped(
    path: str, columns: Sequence[str] | None, dtype: str, allow_missing: bool
) -> Dataset:
    """A ``.npy`` file, memory-mapped: no copy when its columns and dtype are the ones
    wanted (C order), else one block-wise copy; values checked block by block."""
    X = _open_npy(path)
    picked, kept = _npy_columns(X, path, columns)
    if X.ndim == 1:
        X = X[:, None]
    if X.dtype != np.dtype(dtype) or picked != list(range(X.shape[1])) or not X.flags.c_contiguous:
        X = _converted(X, dtype, picked, path)
    _check_values(X, kept, lambda r: f"row {r} (counting from 0)", path, allow_missing)
    return Dataset(X, kept, False, path)


def _select_columns(
    names: list[str],
    columns: Sequence[str] | None,
    source: str,
    prefer: Sequence[str] | None = None,
) -> tuple[list[int], list[str]]:
    """Indices and names of the requested columns (names first, then 1-based numbers).

    The columns read must have distinct names (a model keeps them as its feature names, and
    ``predict`` matches columns by name): a header that names two of them alike is refused,
    with the name and both column numbers, unless ``columns`` (or ``prefer``) picks columns
    that avoid the repeated name.
    """
    counts: dict[str, int] = {}
    for name in names:
        counts[name] = counts.get(name, 0) + 1
    if (
        not columns
        and prefer
        and len(set(prefer)) == len(prefer)
        and all(counts.get(n) == 1 for n in prefer)
    ):
        picked = [names.index(n) for n in prefer]
    elif not columns:
        picked = list(range(len(names)))
    else:
        picked = []
        for token in columns:
            if token in counts:
                if counts[token] > 1:
                    numbers = [str(j + 1) for j, n in enumerate(names) if n == token]
                    raise DataError(
                        f"{source}: column name {token!r} is not unique (columns "
                        f"{', '.join(numbers[:-1])} and {numbers[-1]}); use its number"
                    )
                picked.append(names.index(token))
            elif token.isdigit() and 1 <= int(token) <= len(names):
                picked.append(int(token) - 1)
            else:
                raise DataError(
                    f"{source}: no column {token!r}; the columns are {_shown(names)} "
                    f"(or numbers 1 to {len(names)})"
                )
        twice = next((j for i, j in enumerate(picked) if j in picked[:i]), None)
        if twice is not None:
            raise DataError(
                f"{source}: --columns names column {names[twice]!r} twice (column {twice + 1})"
            )
    repeated = _duplicate([names[j] for j in picked])
    if repeated is not None:
        name, first, second = repeated
        where = f"columns {picked[first] + 1} and {picked[second] + 1}"
        if columns:
            raise DataError(
                f"{source}: --columns picks two columns named {name!r} ({where}); the columns "
                "used need distinct names: pick one of them, or rename one in the header"
            )
        raise DataError(
            f"{source}: the header names two columns {name!r} ({where}); the columns used "
            "need distinct names: rename one in the header, or pick the columns to use with "
            "--columns (by number)"
        )
    return picked, [names[j] for j in picked]


def _check_values(
    X: np.ndarray,
    names: list[str],
    where: Any,
    source: str,
    allow_missing: bool = False,
    missing_hint: str = "remove or impute them first",
) -> None:
    """Error on infinite values and on missing (NaN) values unless ``allow_missing``.

    With ``allow_missing``, a row with no observed value is still an error (its count and
    the first one). Errors name the count and the first position. ``X`` is read in blocks
    of rows (a memory-mapped file is not loaded whole).
    """
    n_nan = n_empty = 0
    first_nan = first_inf = first_empty = first_large = None
    for start in range(0, X.shape[0], CHECK_ROWS):
        block = np.asarray(X[start : start + CHECK_ROWS])
        if first_large is None and too_large(block) is not None:
            limit = MAGNITUDE_LIMIT[block.dtype]
            with np.errstate(invalid="ignore"):
                r, c = np.argwhere(np.abs(block) > limit)[0]
            first_large = (start + int(r), int(c), block[r, c], block.dtype)
        with np.errstate(over="ignore", invalid="ignore"):
            if np.isfinite(np.sum(block, dtype=np.float64)):
                continue
        nan = np.isnan(block)
        if nan.any():
            n_nan += int(nan.sum())
            if first_nan is None:
                r, c = np.argwhere(nan)[0]
                first_nan = (start + int(r), int(c))
            empty = nan.all(axis=1)
            if empty.any():
                n_empty += int(empty.sum())
                if first_empty is None:
                    first_empty = start + int(np.argmax(empty))
        inf = np.isinf(block)
        if first_inf is None and inf.any():
            r, c = np.argwhere(inf)[0]
            first_inf = (start + int(r), int(c))
    if n_nan and not allow_missing:
        r, c = first_nan
        raise DataError(
            f"{source}: {n_nan} missing value{'s' if n_nan > 1 else ''}, the first "
            f"at {where(r)}, column {names[c]!r}; {missing_hint}"
        )
    if first_inf is not None:
        r, c = first_inf
        raise DataError(
            f"{source}: infinite value at {where(r)}, column {names[c]!r}; the data must be finite"
        )
    if allow_missing and n_empty:
        raise DataError(
            f"{source}: {n_empty} row{'s' if n_empty > 1 else ''} with no observed value, "
            f"the first at {where(first_empty)}; a row needs at least one value: "
            "remove such rows"
        )
    if first_large is not None:
        r, c, value, dtype = first_large
        raise DataError(
            f"{source}: {value:.3g} at {where(r)}, column {names[c]!r} is too large: gaussmix "
            f"squares distances, which overflow {dtype} beyond about "
            f"{np.sqrt(np.finfo(dtype).max):.1e} (values up to {MAGNITUDE_LIMIT[dtype]:.0e} "
            "are accepted); rescale that column (divide it by a power of ten), or drop the row "
            "if the value is an error"
        )


def _to_float(cell: str) -> float:
    """The number in a cell; ValueError for anything but a plain decimal number (see _NUMBER)."""
    stripped = cell.strip()
    if not _NUMBER.fullmatch(stripped):
        raise ValueError(stripped)
    return float(stripped)


def _looks_numeric(cell: str) -> bool:
    try:
        _to_float(cell)
    except ValueError:
        return cell.strip().lower() in MISSING_TOKENS
    return True


def _cell_error(source: str, cell: str, line_no: int, row: int, name: str) -> DataError:
    """The error for a cell that is not a number, with the fix for the usual mistakes."""
    cell = cell.strip()
    bare = cell.strip('"').strip()  # a quoted cell read by whitespace splitting
    where = f"at line {line_no} (data row {row}), column {name!r}"
    if _DECIMAL_COMMA.fullmatch(bare):
        return DataError(
            f"{source}: decimal comma in {cell[:40]!r} {where}; gaussmix reads decimal points "
            f"only: write {bare.replace(',', '.')[:40]!r} (replace the decimal commas with "
            "points, and separate the columns with ';', tabs or commas)"
        )
    if "_" in bare and _NUMBER.fullmatch(bare.replace("_", "")):
        return DataError(
            f"{source}: digits grouped with '_' in {cell[:40]!r} {where}; write the number "
            f"without separators ({bare.replace('_', '')[:40]!r})"
        )
    return DataError(
        f"{source}: non-numeric value {cell[:40]!r} {where}; select numeric columns with "
        "--columns"
    )


def _sniff_delimiter(lines: list[str], tsv: bool) -> str | None:
    """The delimiter giving the same number (> 1) of fields on most sample lines.

    Returns None for whitespace-separated columns (or a single column).
    """
    if tsv:
        return "\t"
    best, best_score = None, 0.0
    for delimiter in ("\t", ",", ";", "|"):
        counts = [len(next(csv.reader([line], delimiter=delimiter))) for line in lines]
        if counts[0] < 2:
            continue
        score = sum(c == counts[0] for c in counts) / len(counts)
        if score > best_score:
            best, best_score = delimiter, score
    return best


def _refuse_ambiguous_commas(content: list[tuple[int, str]], source: str) -> None:
    """Refuse a header-less file whose lines all read ``1,5``: two columns of integers, or
    one column written with decimal commas? Guessing would misread one of the two."""
    rows = [next(csv.reader([line])) for _, line in content]
    if all(len(r) == 2 and all(_INTEGER.fullmatch(c.strip()) for c in r) for r in rows):
        line_no, line = content[0]
        decimal = ".".join(c.strip() for c in rows[0])
        raise DataError(
            f"{source}: line {line_no} ({line.strip()[:40]!r}) is ambiguous: two columns of "
            f"integers, or one number with a decimal comma ({decimal})? gaussmix reads decimal "
            "points only. To read two columns, add a header line naming them (for example "
            f"x,y); to read decimals, write them with a decimal point ({decimal})"
        )


@dataclass
class _TextLayout:
    """How a CSV/TSV file is laid out: delimiter, header, column names, chosen columns."""

    delimiter: str | None
    names: list[str]
    has_header: bool
    picked: list[int]
    kept: list[str]

    @classmethod
    def detect(
        cls,
        content: list[tuple[int, str]],
        source: str,
        columns: Sequence[str] | None,
        tsv: bool,
        prefer: Sequence[str] | None,
    ) -> _TextLayout:
        """From the first (line number, line) pairs of content (not blank, not comments)."""
        delimiter = _sniff_delimiter([line for _, line in content[:50]], tsv)
        layout = cls(delimiter, [], False, [], [])
        first = [cell.strip() for cell in layout.split(content[0][1])]
        layout.has_header = not all(_looks_numeric(cell) for cell in first)
        if layout.has_header:
            layout.names = [cell or f"column{j + 1}" for j, cell in enumerate(first)]
        else:
            layout.names = [f"x{j}" for j in range(len(first))]
        if delimiter == "," and not layout.has_header:
            _refuse_ambiguous_commas(content[:50], source)
        layout.picked, layout.kept = _select_columns(
            layout.names, columns, source, prefer if layout.has_header else None
        )
        return layout

    def split(self, line: str) -> list[str]:
        if self.delimiter is None:
            return line.split()
        return next(csv.reader([line], delimiter=self.delimiter))

    def parse(
        self, body: list[tuple[int, str]], source: str, rows_before: int = 0
    ) -> tuple[np.ndarray, np.ndarray]:
        """The chosen columns of data lines, and their line numbers (errors name them).

        ``rows_before``: data rows before these (a chunk of a file read in pieces).
        """
        names, picked = self.names, self.picked
        n_fields = len(names)
        X = np.empty((len(body), len(picked)))
        line_numbers = np.empty(len(body), dtype=np.int64)
        for r, (line_no, line) in enumerate(body):
            cells = self.split(line)
            if len(cells) != n_fields:
                what = "the header has" if self.has_header else "the first row has"
                raise DataError(
                    f"{source}: line {line_no} has {len(cells)} fields but {what} {n_fields}"
                    + ("" if self.delimiter is None else f" (delimiter {self.delimiter!r})")
                )
            line_numbers[r] = line_no
            for out, j in enumerate(picked):
                try:
                    X[r, out] = _to_float(cells[j])
                except ValueError:
                    if cells[j].strip().lower() not in MISSING_TOKENS:
                        row = rows_before + r + 1
                        raise _cell_error(source, cells[j], line_no, row, names[j]) from None
                    X[r, out] = np.nan
        return X, line_numbers


# Lines Arrow does not skip by itself: comments (# in the first column) and lines of blanks.
_SKIPPED_LINE = re.compile(rb"(?m)^(?:#[^\n]*|[ \t\f\v\r]*)(?:\n|\Z)")
_COMMENT_OR_BLANKS = re.compile(rb"(?m)^(?:#|[ \t\f\v]+\r?$)")
# Arrow's cells read as missing values: MISSING_TOKENS in every combination of case.
_ARROW_NULLS: list[str] = []


def _arrow_nulls() -> list[str]:
    if not _ARROW_NULLS:
        import itertools

        for token in MISSING_TOKENS:
            cases = itertools.product(*({c.lower(), c.upper()} for c in token))
            _ARROW_NULLS.extend(sorted({"".join(c) for c in cases}))
    return _ARROW_NULLS


_LINE = re.compile(rb"[^\r\n]*(?:\r\n|\r|\n|\Z)")


def _skip_to_data(raw: bytes, has_header: bool) -> int:
    """Byte offset of the first data line: after leading blank and comment lines (and the
    header, if any). Lines end with LF, CRLF or CR."""
    pos = 3 if raw.startswith(b"\xef\xbb\xbf") else 0
    while pos < len(raw):
        match = _LINE.match(raw, pos)
        assert match is not None  # the pattern matches at every position
        line, end = match.group(), match.end()
        if line.strip() and not line.startswith(b"#"):
            return end if has_header else pos
        pos = end
    return pos


def _arrow_options(layout: _TextLayout) -> tuple[Any, Any, Any, list[str]]:
    """Arrow's read, parse and convert options for data lines of this layout, and the
    names (f0, f1, ...) of the chosen columns."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    names = [f"f{j}" for j in range(len(layout.names))]
    kept = [names[j] for j in layout.picked]
    return (
        pacsv.ReadOptions(column_names=names, block_size=8 << 20),
        pacsv.ParseOptions(
            # One column: a delimiter that never occurs (a cell holding a comma or a blank
            # is then refused, as by the line parser).
            delimiter=layout.delimiter or "\x1f", quote_char='"', ignore_empty_lines=True
        ),
        pacsv.ConvertOptions(
            column_types=dict.fromkeys(kept, pa.float64()),
            include_columns=kept,
            null_values=_arrow_nulls(),
            strings_can_be_null=True,
            quoted_strings_can_be_null=True,
        ),
        kept,
    )


def _columns_of(table: Any, kept: list[str]) -> np.ndarray:
    """The columns ``kept`` of an Arrow table or record batch as a float64 array (nulls as
    NaN), copied chunk by chunk."""
    X = np.empty((table.num_rows, len(kept)))
    for k, name in enumerate(kept):
        column = table.column(name)
        start = 0
        for chunk in getattr(column, "chunks", [column]):
            X[start : start + len(chunk), k] = chunk.to_numpy(zero_copy_only=False)
            start += len(chunk)
    return X


def _arrow_stream(path: str, offset: int, layout: _TextLayout) -> np.ndarray | None:
    """The data lines of a file from byte ``offset`` on, through Arrow's streaming CSV
    reader (``pyarrow.csv.open_csv``): 8 MB of text at a time, never the whole file in
    memory. None when Arrow refuses the text (as :func:`_arrow_rows`)."""
    try:
        import pyarrow as pa
        import pyarrow.csv as pacsv
    except ImportError:
        return None
    read, parse, convert, kept = _arrow_options(layout)
    blocks = []
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            reader = pacsv.open_csv(
                f, read_options=read, parse_options=parse, convert_options=convert
            )
            for batch in reader:
                blocks.append(_columns_of(batch, kept))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    if not blocks:
        return np.empty((0, len(kept)))
    return np.concatenate(blocks) if len(blocks) > 1 else blocks[0]


def _arrow_rows(body: Any, layout: _TextLayout) -> np.ndarray | None:
    """The chosen columns of CSV data lines (bytes, no header), parsed by Apache Arrow.

    None when Arrow refuses the text (a bad cell, ragged rows): the caller then parses it
    line by line (``_TextLayout.parse``) to name the line and column, or to read what only
    that parser reads (whitespace-padded missing-value tokens). Whitespace-separated
    columns are read by NumPy's C parser (Arrow needs a one-character delimiter).
    """
    n_fields = len(layout.names)
    if layout.delimiter is None and n_fields > 1:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "input contained no data"
                X = np.loadtxt(io.BytesIO(bytes(body)), comments=None, ndmin=2, encoding="utf-8")
        except ValueError:
            return None
        if X.shape[0] and X.shape[1] != n_fields:
            return None
        return X[:, layout.picked].reshape(-1, len(layout.picked))
    try:
        import pyarrow as pa
        import pyarrow.csv as pacsv
    except ImportError:  # the line parser reads it, slowly: pip install "gaussmix[cli]"
        return None
    read, parse, convert, kept = _arrow_options(layout)
    if not bytes(body[:4096]).strip() and not any(bytes(body).split()):
        return np.empty((0, len(kept)))
    try:
        table = pacsv.read_csv(
            pa.py_buffer(body), read_options=read, parse_options=parse, convert_options=convert
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    return _columns_of(table, kept)


def _read_text(
    raw: bytes,
    source: str,
    columns: Sequence[str] | None,
    tsv: bool,
    prefer: Sequence[str] | None = None,
    allow_missing: bool = False,
) -> Dataset:
    head = raw[: 1 << 20]
    if len(raw) > len(head):
        head = head[: head.rfind(b"\n") + 1] or raw[: raw.find(b"\n") + 1] or raw
    layout = _text_layout(head, source, columns, tsv, prefer)
    if not raw.isascii():
        _decode_piece(raw, source, True)  # UTF-8 throughout
    X = _arrow_text(raw, layout)
    if X is not None and _accepted(X, allow_missing):
        return Dataset(X, layout.kept, layout.has_header, source)
    # Arrow refused the text, or it holds values to refuse: the line parser names the line.
    return _read_text_lines(raw, source, layout, allow_missing)


# Text files larger than this are read by Arrow's streaming reader (not loaded whole).
# Below it, the whole file goes to Arrow's multi-threaded reader: on 2 cores, 2,000,000 x 4
# (161 MB) read in 1.45-1.6x pandas.read_csv's time, against 2.1x streamed (one thread),
# for about 160 MB more at the peak (benchmarks/bench_cli_io.py --full).
STREAM_BYTES = 256 << 20


def _read_text_file(
    path: str,
    columns: Sequence[str] | None,
    tsv: bool,
    prefer: Sequence[str] | None,
    allow_missing: bool,
) -> Dataset:
    """A large CSV/TSV file, streamed through Arrow; if Arrow refuses it (a bad cell,
    comment lines among the data), read whole by :func:`_read_text`, which says why."""
    with open(path, "rb") as f:
        head = f.read(1 << 20)
        head += f.readline()
    layout = _text_layout(head, path, columns, tsv, prefer)
    X = None
    if layout.delimiter is not None or len(layout.names) == 1:
        X = _arrow_stream(path, _skip_to_data(head, layout.has_header), layout)
    if X is not None and _accepted(X, allow_missing):
        return Dataset(X, layout.kept, layout.has_header, path)
    return _read_text(_read_bytes(path), path, columns, tsv, prefer, allow_missing)


def _text_layout(
    head: bytes,
    source: str,
    columns: Sequence[str] | None,
    tsv: bool,
    prefer: Sequence[str] | None,
) -> _TextLayout:
    """The layout (delimiter, header, columns) from the first lines (the first MB), as the
    chunked reader does."""
    text = _decode_piece(head, source, True)
    content = [
        (i + 1, line) for i, line in enumerate(text.splitlines()) if line.strip() and line[0] != "#"
    ]
    if not content:
        raise DataError(f"{source}: no data rows (the input is empty)")
    return _TextLayout.detect(content, source, columns, tsv, prefer)


def _within_magnitude(X: np.ndarray) -> bool:
    """No value too large for squared distances (:func:`gaussmix._validation.too_large`)."""
    return too_large(X) is None


def _accepted(X: np.ndarray, allow_missing: bool) -> bool:
    """True if the values need no error: finite, or NaN allowed (no infinity, no row
    without an observed value) and none too large (``check_magnitude``)."""
    if not _within_magnitude(X):
        return False
    with np.errstate(over="ignore", invalid="ignore"):
        if np.isfinite(X.sum()):
            return True
    return allow_missing and not np.isinf(X).any() and not np.isnan(X).all(axis=1).any()


def _arrow_text(raw: bytes, layout: _TextLayout) -> np.ndarray | None:
    """The data rows of a whole text file through :func:`_arrow_rows`, or None."""
    return _arrow_body(memoryview(raw)[_skip_to_data(raw, layout.has_header) :], layout)


def _arrow_body(body: Any, layout: _TextLayout) -> np.ndarray | None:
    """:func:`_arrow_rows` of data lines that may hold comment lines and lines of blanks."""
    X = _arrow_rows(body, layout)
    if X is None and _COMMENT_OR_BLANKS.search(body):
        # Comment lines or lines of blanks among the data: drop them and try again.
        X = _arrow_rows(_SKIPPED_LINE.sub(b"", bytes(body)), layout)
    return X


def _read_text_lines(
    raw: bytes, source: str, layout: _TextLayout, allow_missing: bool
) -> Dataset:
    """Parse text line by line (Python), for exact error messages (line and column)."""
    text = raw.decode("utf-8-sig")
    lines = text.splitlines()
    content = [(i + 1, line) for i, line in enumerate(lines) if line.strip() and line[0] != "#"]
    body = content[1:] if layout.has_header else content
    X, line_numbers = layout.parse(body, source)
    _check_values(X, layout.kept, lambda r: f"line {line_numbers[r]}", source, allow_missing)
    return Dataset(X, layout.kept, layout.has_header, source)


def _read_npy(
    raw: bytes, source: str, columns: Sequence[str] | None, allow_missing: bool = False
) -> Dataset:
    try:
        X = np.load(io.BytesIO(raw), allow_pickle=False)
    except ValueError as exc:
        raise DataError(f"{source}: cannot read the .npy file ({exc})") from None
    picked, kept = _npy_columns(X, source, columns)
    if X.ndim == 1:
        X = X[:, None]
    X = np.asarray(X[:, picked], dtype=np.float64)
    _check_values(X, kept, lambda r: f"row {r} (counting from 0)", source, allow_missing)
    return Dataset(X, kept, False, source)


def _read_parquet(
    path: str,
    columns: Sequence[str] | None,
    prefer: Sequence[str] | None = None,
    allow_missing: bool = False,
) -> Dataset:
    # The schema first: the columns are chosen (and their names checked, see
    # _select_columns) before any is read, and only the chosen ones are read.
    schema = _parquet(path, "read_schema")
    names = [str(n) for n in schema.names]
    picked, kept = _select_columns(names, columns, path, prefer)
    for j in picked:
        _check_parquet_numeric(path, names[j], schema.field(j).type)
    if all(names.count(name) == 1 for name in kept):
        table = _parquet(path, "read_table", columns=kept)
        chosen = [table.column(name) for name in kept]
    else:  # a chosen column shares its name with one not chosen: Arrow reads by name
        table = _parquet(path, "read_table", whole_file=True)
        chosen = [table.column(j) for j in picked]
    out = np.empty((table.num_rows, len(picked)))
    for k, column in enumerate(chosen):
        out[:, k] = _parquet_floats(column)
    _check_values(out, kept, lambda r: f"row {r} (counting from 0)", path, allow_missing)
    return Dataset(out, kept, True, path)


def _parquet(path: str, reader: str, **kwargs: Any) -> Any:
    """``pyarrow.parquet.<reader>(path, **kwargs)`` (read_table or read_schema; the schema of
    a folder of Parquet files is its dataset's), with its errors as DataError: pyarrow
    missing, no such file, or a file pyarrow cannot read."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError(
            f"{path}: reading Parquet needs pyarrow (pip install pyarrow); or give CSV or .npy"
        ) from None
    if not os.path.exists(path):
        raise DataError(f"data file not found: {path}")
    try:
        if reader == "read_schema" and os.path.isdir(path):
            return pq.ParquetDataset(path).schema
        if kwargs.pop("whole_file", False):  # every column, duplicate names too
            return pq.ParquetFile(path).read()
        return getattr(pq, reader)(path, **kwargs)
    except Exception as exc:  # pyarrow raises its own error types
        raise DataError(f"{path}: cannot read the Parquet file ({exc})") from None


def _check_parquet_numeric(path: str, name: str, arrow_type: Any) -> None:
    """Refuse a Parquet column whose type is not a number (or a boolean)."""
    kind = str(arrow_type)
    if not any(kind.startswith(t) for t in ("int", "uint", "float", "double", "bool")):
        raise DataError(
            f"{path}: column {name!r} is not numeric (type {kind}); "
            "select numeric columns with --columns"
        )


def _parquet_floats(column: Any) -> np.ndarray:
    """A numeric Parquet column as float64, its nulls as NaN (missing values)."""
    import pyarrow as pa

    if column.null_count:
        column = column.cast(pa.float64())
    return np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.float64)


def model_columns(
    ds: Dataset, feature_names: Sequence[str] | None, n_features: int, by_columns: bool
) -> Any:
    """The data's columns in the order of a model's features, checked by name.

    Parameters
    ----------
    ds : Dataset
        The data as read (with ``--columns`` applied, if given).
    feature_names : sequence of str or None
        The model's feature names (``feature_names_in_``).
    n_features : int
        The model's number of features.
    by_columns : bool
        True when the user chose the columns with ``--columns``.

    Returns
    -------
    array of shape (n_samples, n_features)
        ``ds.X``, its columns reordered to the model's order when matched by name.

    Raises
    ------
    DataError
        When the number of columns differs from the model's, when a header names other
        features than the model's (in content or case), or when ``--columns`` names some
        of the model's features but not all. The message shows both lists.

    Notes
    -----
    A header that names every model feature is matched by name (other columns are
    ignored). ``--columns`` naming the model's features in another order is reordered by
    name; ``--columns`` naming none of them maps the chosen columns to the model's
    features in order. Data without a header (``.npy``, header-less text) and models
    without names of their own (fitted on such data: x0, x1, ...) are matched by position.
    """
    names = list(feature_names) if feature_names is not None else []
    unique = len(set(ds.names)) == len(ds.names)
    model_unique = len(set(names)) == len(names)
    if names and ds.has_header and unique and model_unique and set(names) <= set(ds.names):
        if not by_columns or len(ds.names) == len(names):
            return ds.X[:, [ds.names.index(n) for n in names]]
    if ds.X.shape[1] != n_features:
        expected = f" ({_shown(feature_names)})" if feature_names else ""
        raise DataError(
            f"the model expects {n_features} feature{'s' if n_features != 1 else ''}{expected} "
            f"but {printable(ds.source)} has {ds.X.shape[1]} "
            f"column{'s' if ds.X.shape[1] != 1 else ''} ({_shown(ds.names)}); choose the "
            "columns with --columns"
        )
    if not names or names == [f"x{j}" for j in range(n_features)] or not ds.has_header:
        return ds.X  # no names to check (x0, x1, ... were made up for data without a header)
    shown, wanted = _shown(ds.names), _shown(names)
    repeated = _duplicate(names)
    if repeated is not None and not by_columns:
        # A model file written before names were checked (or by hand): no column can be
        # matched to a feature named twice.
        name, first, second = repeated
        raise DataError(
            f"{printable(ds.source)}: the model's feature names ({wanted}) name feature "
            f"{name!r} twice (features {first + 1} and {second + 1}), so "
            "the columns cannot be matched by name; choose the columns that stand for the "
            "model's features with --columns, in the model's order"
        )
    if by_columns and repeated is None and set(names) & set(ds.names):
        raise DataError(
            f"{printable(ds.source)}: --columns {shown} names some of the model's features "
            f"({wanted}) but "
            "not all; name all of them (in any order), or only other columns, which are then "
            "taken in the model's order"
        )
    if not by_columns:
        case = (
            " (the names differ in case)"
            if sorted(n.lower() for n in names) == sorted(n.lower() for n in ds.names)
            and sorted(names) != sorted(ds.names)
            else ""
        )
        raise DataError(
            f"{printable(ds.source)}: the columns ({shown}) are not the model's features "
            f"({wanted})"
            f"{case}; rename them in the header, or choose the columns that stand for "
            f"{wanted} with --columns, in that order"
        )
    return ds.X


@contextlib.contextmanager
def no_feature_name_warnings() -> Iterator[None]:
    """Silence the model's feature-name warning for the plain arrays read here.

    A :class:`Dataset` holds its column names next to a plain array, so predicting from
    ``Dataset.X`` with a model fitted with feature names is intended.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*feature names.*")
        yield


# --------------------------------------------------------------------------------------
# Data on a Dask cluster (--scheduler)


def is_lazy(X: Any) -> bool:
    """True for a dask array (data read with --scheduler)."""
    return type(X).__module__.startswith("dask")


def check_dask_input(path: str | None) -> None:
    """Fail before starting a cluster if the data cannot be read on it."""
    if path is None:
        return
    if path == "-":
        raise DataError("--scheduler reads .npy or Parquet files, not stdin")
    if not os.path.exists(path):
        raise DataError(f"data file not found: {path}")
    if os.path.isfile(path) and not path.lower().endswith((".npy", ".parquet", ".parq")):
        raise DataError(
            f"{path}: unsupported format for --scheduler; give a .npy file, a folder of .npy "
            "files, or .parquet data"
        )
    _check_npy_signature(path)


def _parquet_names(path: str) -> list[str] | None:
    """Column names of a Parquet file or folder, if pyarrow can tell."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        return None
    target = path
    if os.path.isdir(path):
        files = sorted(e for e in os.listdir(path) if e.endswith((".parquet", ".parq")))
        if not files:
            return None
        target = os.path.join(path, files[0])
    try:
        return [str(n) for n in pq.read_schema(target).names]
    except Exception:  # pyarrow raises its own error types
        return None


def read_dask_data(
    path: str,
    columns: Sequence[str] | None = None,
    dtype: str = "float64",
    prefer: Sequence[str] | None = None,
) -> Dataset:
    """Open a ``.npy`` file, a folder of ``.npy`` files or Parquet data as a dask array.

    The data stay on the cluster's workers (a ``.npy`` file is memory-mapped by each
    worker). Columns are chosen as in :func:`read_data`. ``path`` has been checked by
    :func:`check_dask_input` before the cluster started.
    """
    from gaussmix._dask import load_dask_array

    entries = os.listdir(path) if os.path.isdir(path) else []
    is_parquet = path.lower().endswith((".parquet", ".parq")) or (
        not any(e.endswith(".npy") for e in entries)
        and any(e.endswith((".parquet", ".parq")) for e in entries)
    )
    if is_parquet:
        names = _parquet_names(path)
        if names is None:
            if columns:
                names = list(columns)
            else:
                raise DataError(
                    f"{path}: cannot read the Parquet column names (is pyarrow installed?)"
                )
        picked, kept = _select_columns(names, columns, path, prefer)
        shared = next((j for j in picked if names.count(names[j]) > 1), None)
        if shared is not None:
            others = [str(i + 1) for i, n in enumerate(names) if n == names[shared] and i != shared]
            raise DataError(
                f"{path}: column {shared + 1} ({names[shared]!r}) shares its name with column "
                f"{', '.join(others)}, and Parquet columns are read by name on Dask; rename one "
                "of them"
            )
        X = load_dask_array(path, columns=kept)
        has_header = True
    else:
        X = load_dask_array(path)
        names = [f"x{j}" for j in range(X.shape[1])]
        picked, kept = _select_columns(names, columns, path)
        if picked != list(range(X.shape[1])):
            X = X[:, picked]
        has_header = False
    if X.shape[0] == 0:
        raise DataError(f"{path}: no data rows (the input is empty)")
    if X.dtype != np.dtype(dtype):
        X = X.astype(dtype)
    return Dataset(X, kept, has_header, path)


# --------------------------------------------------------------------------------------
# Reading in chunks (gaussmix fit --stream): bounded memory whatever the file's size

# Bytes of text parsed at a time (a few times this in memory while parsing).
TEXT_CHUNK_BYTES = 8 << 20
# Rows of a .npy or Parquet file read at a time.
ARRAY_CHUNK_ROWS = 65_536


class ChunkedData:
    """A data file read in chunks of rows, pass after pass, in bounded memory.

    ``.npy`` files are memory-mapped, Parquet is read by record batches and CSV/TSV text
    ``TEXT_CHUNK_BYTES`` at a time (Apache Arrow's CSV parser; a chunk it rejects is parsed
    again line by line for an error naming the line and column). Standard input (``-``) can be
    read only once. Open with :func:`open_chunked`.

    Attributes
    ----------
    names : list of str
        Names of the chosen columns.
    has_header : bool
    source : str
    n_features : int
    rereadable : bool
        False for standard input (one pass only).
    """

    def __init__(self, path, kind, names, has_header, picked, dtype, layout=None, head=b""):
        self.path = path
        self.kind = kind
        self.names = names
        self.has_header = has_header
        self.picked = picked
        self.dtype = dtype
        self.layout = layout
        self.source = "stdin" if path == "-" else path
        self.n_features = len(picked)
        self.rereadable = path != "-"
        self._head = head
        self._passes = 0

    def chunks(self) -> Iterator[np.ndarray]:
        """The chosen columns, chunk after chunk, as ``dtype`` arrays (one pass)."""
        if self._passes and not self.rereadable:
            raise DataError("stdin can be read only once; give a file to make several passes")
        self._passes += 1
        read = {"npy": self._npy_chunks, "parquet": self._parquet_chunks}.get(
            self.kind, self._text_chunks
        )
        n_rows = 0
        for X in read():
            if X.shape[0]:
                n_rows += X.shape[0]
                X = X.astype(self.dtype, copy=False)
                if self.dtype == "float32" and not np.all(np.isfinite(X)):
                    raise DataError(f"{self.source}: values overflow float32; use --dtype float64")
                yield X
        if n_rows == 0:
            raise DataError(f"{self.source}: no data rows (the input is empty)")

    def batches(self, rows: int) -> Iterator[np.ndarray]:
        """Batches of ``rows`` rows (one pass); the last takes the remainder (< 2 rows)."""
        pending: list[np.ndarray] = []
        n_pending = 0
        for X in self.chunks():
            pending.append(X)
            n_pending += X.shape[0]
            if n_pending < 2 * rows:
                continue
            buffer = np.concatenate(pending) if len(pending) > 1 else pending[0]
            stop = (n_pending // rows - 1) * rows  # keep >= rows back for the tail
            for start in range(0, stop, rows):
                yield buffer[start : start + rows]
            pending, n_pending = [buffer[stop:]], n_pending - stop
        if n_pending:
            yield np.concatenate(pending) if len(pending) > 1 else pending[0]

    # -- formats -----------------------------------------------------------------------
    def _npy_chunks(self) -> Iterator[np.ndarray]:
        X = _open_npy(self.path)
        if X.ndim == 1:
            X = X[:, None]
        for start in range(0, X.shape[0], ARRAY_CHUNK_ROWS):
            rows = X[start : start + ARRAY_CHUNK_ROWS]
            chunk = np.asarray(rows[:, self.picked], dtype=np.float64)
            _check_values(chunk, self.names, lambda r, s=start: f"row {s + r} (counting from 0)",
                          self.source, allow_missing=True)
            yield chunk

    def _parquet_chunks(self) -> Iterator[np.ndarray]:
        import pyarrow.parquet as pq

        start = 0
        try:
            parquet = pq.ParquetFile(self.path)
            # By name, unless a chosen column shares its name with one not chosen (Arrow
            # reads by name): then every column, and the chosen ones by position.
            by_name = all(parquet.schema_arrow.names.count(n) == 1 for n in self.names)
            batches = parquet.iter_batches(
                batch_size=ARRAY_CHUNK_ROWS, columns=self.names if by_name else None
            )
            for batch in batches:
                chunk = np.empty((batch.num_rows, len(self.names)))
                for k in range(len(self.names)):
                    column = batch.column(k if by_name else self.picked[k])
                    chunk[:, k] = _parquet_floats(column)
                _check_values(chunk, self.names,
                              lambda r, s=start: f"row {s + r} (counting from 0)", self.source,
                              allow_missing=True)
                start += batch.num_rows
                yield chunk
        except DataError:
            raise
        except Exception as exc:  # pyarrow raises its own error types
            raise DataError(f"{self.path}: cannot read the Parquet file ({exc})") from None

    def _byte_blocks(self) -> Iterator[bytes]:
        if self.path == "-":
            yield self._head
            stream = sys.stdin.buffer
            while block := stream.read(TEXT_CHUNK_BYTES):
                yield block
            return
        with open(self.path, "rb") as f:
            while block := f.read(TEXT_CHUNK_BYTES):
                yield block

    def _text_chunks(self) -> Iterator[np.ndarray]:
        carry = b""
        line_no = 0  # lines before the current piece
        header_pending = self.layout.has_header
        first = True
        n_rows = 0  # data rows before the current piece
        for block in self._byte_blocks():
            data = carry + block
            cut = data.rfind(b"\n") + 1
            if cut == 0:
                carry = data
                continue
            piece, carry = data[:cut], data[cut:]
            text = _decode_piece(piece, self.source, first)
            first = False
            if header_pending:
                text, line_no = _drop_header(text, line_no)
                header_pending = False
            X = self._parse_text(text, line_no, n_rows)
            n_rows += X.shape[0]
            yield X
            line_no += text.count("\n")
        if carry:
            text = _decode_piece(carry, self.source, first)
            if header_pending:
                text, line_no = _drop_header(text, line_no)
            yield self._parse_text(text, line_no, n_rows)

    def _parse_text(self, text: str, line_no: int, rows_before: int) -> np.ndarray:
        """Rows of a piece of text whose first line is line ``line_no + 1``."""
        X = _arrow_body(text.encode("utf-8"), self.layout)
        if X is None:  # a non-numeric cell, ragged rows: name the line
            return self._parse_slow(text, line_no, rows_before)
        if not np.all(np.isfinite(X)) or not _within_magnitude(X):
            # Parse again line by line to name the line.
            return self._parse_slow(text, line_no, rows_before)
        return X

    def _parse_slow(self, text: str, line_no: int, rows_before: int) -> np.ndarray:
        # Every line end (a CR alone too: inside a line the csv module raised its own
        # "new-line character seen in unquoted field"), as the whole-file reader splits.
        lines = text.splitlines()
        body = [
            (line_no + i + 1, line)
            for i, line in enumerate(lines)
            if line.strip() and line[0] != "#"
        ]
        X, numbers = self.layout.parse(body, self.source, rows_before)
        _check_values(X, self.names, lambda r: f"line {numbers[r]}", self.source,
                      allow_missing=True)
        return X


def _decode_piece(piece: bytes, source: str, first: bool) -> str:
    try:
        text = piece.decode("utf-8-sig" if first else "utf-8")
    except UnicodeDecodeError:
        raise DataError(
            f"{source}: not a UTF-8 text file; give CSV/TSV, .npy or .parquet data"
        ) from None
    if "\x00" in text[:4096]:
        raise DataError(
            f"{source}: looks like a binary file, not CSV/TSV; give CSV, .npy or .parquet"
        )
    return text


_TEXT_LINE_END = re.compile(r"\r\n|\r|\n")


def _drop_header(text: str, line_no: int) -> tuple[str, int]:
    """Text after its first content line (the header), and the lines dropped."""
    pos = 0
    while True:
        # Lines end with LF, CRLF or CR (a CR-only file is one "line" for find("\n"):
        # the header and every row were dropped, 'no data rows').
        match = _TEXT_LINE_END.search(text, pos)
        end = -1 if match is None else match.start()
        line = text[pos:] if end < 0 else text[pos:end]
        line_no += 1
        pos = len(text) if match is None else match.end()
        if line.strip() and line[0] != "#":
            return text[pos:], line_no
        if end < 0:
            return "", line_no


def _npy_columns(X: np.ndarray, source: str, columns: Sequence[str] | None):
    """Check a .npy array (numeric, 1 or 2 dimensions) and pick its columns (x0, x1, ...)."""
    if X.dtype.kind not in "biuf":
        raise DataError(f"{source}: the array must be numeric, got dtype {X.dtype}")
    if X.ndim not in (1, 2):
        raise DataError(f"{source}: the array must have 1 or 2 dimensions, got {X.ndim}")
    n_columns = 1 if X.ndim == 1 else X.shape[1]
    return _select_columns([f"x{j}" for j in range(n_columns)], columns, source)


def _open_npy(path: str) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise DataError(f"data file not found: {path}") from None
    except PermissionError:
        raise DataError(f"cannot read {path}: permission denied") from None
    except ValueError as exc:
        raise DataError(f"{path}: cannot read the .npy file ({exc})") from None


def open_chunked(
    path: str,
    columns: Sequence[str] | None = None,
    dtype: str = "float64",
    prefer: Sequence[str] | None = None,
) -> ChunkedData:
    """Open a data file to read in chunks (``gaussmix fit --stream``).

    Parameters are those of :func:`read_data`. The layout (header, delimiter, columns)
    is read here from the start of the file; errors in the rows come when the chunks are
    read.
    """
    lower = path.lower()
    if path != "-" and os.path.isdir(path):
        raise DataError(f"{path} is a directory, not a data file")
    _check_npy_signature(path)
    head = b""
    if path == "-":
        head = sys.stdin.buffer.read(1 << 20)
        head += sys.stdin.buffer.readline()
    elif not lower.endswith((".parquet", ".pq")):
        try:
            with open(path, "rb") as f:
                head = f.read(1 << 20)
                head += f.readline()
        except FileNotFoundError:
            raise DataError(f"data file not found: {path}") from None
        except PermissionError:
            raise DataError(f"cannot read {path}: permission denied") from None
    if lower.endswith((".parquet", ".pq")) or head.startswith(b"PAR1"):
        return _open_parquet_chunked(path, columns, dtype, prefer)
    if head.startswith(b"\x93NUMPY"):
        if path == "-":
            raise DataError("stdin: give .npy data as a file, not on stdin")
        picked, kept = _npy_columns(_open_npy(path), path, columns)
        return ChunkedData(path, "npy", kept, False, picked, dtype)
    source = "stdin" if path == "-" else path
    text = _decode_piece(head, source, True)
    content = [
        (i + 1, line) for i, line in enumerate(text.splitlines()) if line.strip() and line[0] != "#"
    ]
    if not content:
        raise DataError(f"{source}: no data rows (the input is empty)")
    layout = _TextLayout.detect(content, source, columns, lower.endswith((".tsv", ".tab")), prefer)
    return ChunkedData(path, "text", layout.kept, layout.has_header, layout.picked, dtype,
                       layout, head)


def _open_parquet_chunked(path, columns, dtype, prefer) -> ChunkedData:
    schema = _parquet(path, "read_schema")
    names = [str(n) for n in schema.names]
    picked, kept = _select_columns(names, columns, path, prefer)
    for j in picked:
        _check_parquet_numeric(path, names[j], schema.field(j).type)
    return ChunkedData(path, "parquet", kept, True, picked, dtype)
