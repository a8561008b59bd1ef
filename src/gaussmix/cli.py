"""The ``gaussmix`` command: fit, select, predict, score, sample, info, demo.

Files in (CSV/TSV with the header and delimiter detected, ``-`` for stdin, ``.npy``, Parquet
when pyarrow is installed), model files, tables and plots out. Every file is written
atomically, and a run that fails leaves no output behind. A user error is one line on stderr
and exit code 2 (``--debug`` adds the traceback); an internal failure exits with 1.

With ``--scheduler ADDRESS`` (or ``local:N``), ``fit``, ``select``, ``predict`` and ``score``
run on a Dask cluster: the data (``.npy`` files, folders of them, Parquet) stay on the
workers and row-wise outputs are computed and written one chunk at a time.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io as _textio
import math
import os
import sys
import textwrap
import traceback
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

import numpy as np

from gaussmix import _progress
from gaussmix.io import (
    ModelFileError,
    _document_from_json,
    _fsync_directory,
    _fsync_file,
    _temporary_file,
    atomic_path,
    model_from_dict,
    model_to_json,
)
from gaussmix.selection import MCLUST_NAMES, TABLE_KEYS, SelectionResult, _full_covariances

PROG = "gaussmix"
EXIT_OK, EXIT_INTERNAL, EXIT_USER = 0, 1, 2
COVARIANCE_TYPES = tuple(MCLUST_NAMES)  # spherical, diag, tied, full
COVARIANCE_WORDS = {
    "full": "each component has its own full covariance matrix",
    "tied": "all components share one full covariance matrix",
    "diag": "each component has its own diagonal covariance (features uncorrelated)",
    "spherical": "each component has its own single variance (round clusters)",
}
MISSING_TOKENS = {"", "na", "nan", "n/a", "null", "none", "?", "."}
PLOT_INSTALL_HINT = 'pip install "gaussmix[plot]"'
DEFAULT_SEED = 0
DEFAULT_N_INIT = 3


class UserError(Exception):
    """A problem with the command's input or arguments (exit code 2, no traceback)."""


# --------------------------------------------------------------------------------------
# Reading data


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
        raise UserError(f"{path} is a directory, not a data file")
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise UserError(f"data file not found: {path}") from None
    except PermissionError:
        raise UserError(f"cannot read {path}: permission denied") from None


def read_data(
    path: str,
    columns: Sequence[str] | None = None,
    dtype: str = "float64",
    prefer: Sequence[str] | None = None,
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

    Returns
    -------
    Dataset

    Raises
    ------
    UserError
        For a missing or unreadable file, a non-numeric cell (naming line and column),
        missing values (their count and the first position), infinite values, ragged rows
        or no data.
    """
    source = "stdin" if path == "-" else path
    lower = path.lower()
    if lower.endswith((".parquet", ".pq")):
        ds = _read_parquet(path, columns, prefer)
    else:
        raw = _read_bytes(path)
        if raw.startswith(b"\x93NUMPY"):
            ds = _read_npy(raw, source, columns)
        elif raw.startswith(b"PAR1"):
            ds = _read_parquet(path, columns, prefer)
        else:
            tsv = lower.endswith((".tsv", ".tab"))
            ds = _read_text(raw, source, columns, tsv, prefer)
    if ds.X.shape[0] == 0:
        raise UserError(f"{source}: no data rows (the input is empty)")
    if ds.X.shape[1] == 0:
        raise UserError(f"{source}: no columns selected")
    ds.X = ds.X.astype(dtype, copy=False)
    if dtype == "float32" and not np.all(np.isfinite(ds.X)):
        raise UserError(f"{source}: values overflow float32; use --dtype float64")
    return ds


def _select_columns(
    names: list[str],
    columns: Sequence[str] | None,
    source: str,
    prefer: Sequence[str] | None = None,
) -> tuple[list[int], list[str]]:
    """Indices and names of the requested columns (names first, then 1-based numbers)."""
    if not columns and prefer and len(set(names)) == len(names) and set(prefer) <= set(names):
        picked = [names.index(n) for n in prefer]
    elif not columns:
        picked = list(range(len(names)))
    else:
        picked = []
        for token in columns:
            if token in names:
                if names.count(token) > 1:
                    raise UserError(
                        f"{source}: column name {token!r} is not unique; use its number"
                    )
                picked.append(names.index(token))
            elif token.isdigit() and 1 <= int(token) <= len(names):
                picked.append(int(token) - 1)
            else:
                raise UserError(
                    f"{source}: no column {token!r}; the columns are {', '.join(names)} "
                    f"(or numbers 1 to {len(names)})"
                )
    return picked, [names[j] for j in picked]


def _check_values(X: np.ndarray, names: list[str], where: Any, source: str) -> None:
    """Error on missing (NaN) or infinite values, with the count and the first position."""
    nan = np.isnan(X)
    if nan.any():
        r, c = (int(i) for i in np.argwhere(nan)[0])
        raise UserError(
            f"{source}: {int(nan.sum())} missing value{'s' if nan.sum() > 1 else ''}, the first "
            f"at {where(r)}, column {names[c]!r}; remove or impute them first"
        )
    inf = np.isinf(X)
    if inf.any():
        r, c = (int(i) for i in np.argwhere(inf)[0])
        raise UserError(
            f"{source}: infinite value at {where(r)}, column {names[c]!r}; the data must be finite"
        )


def _looks_numeric(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return cell.strip().lower() in MISSING_TOKENS
    return True


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


def _read_text(
    raw: bytes,
    source: str,
    columns: Sequence[str] | None,
    tsv: bool,
    prefer: Sequence[str] | None = None,
) -> Dataset:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UserError(
            f"{source}: not a UTF-8 text file; give CSV/TSV, .npy or .parquet data"
        ) from None
    if "\x00" in text[:4096]:
        raise UserError(
            f"{source}: looks like a binary file, not CSV/TSV; give CSV, .npy or .parquet"
        )
    lines = text.splitlines()
    content = [(i + 1, line) for i, line in enumerate(lines) if line.strip() and line[0] != "#"]
    if not content:
        raise UserError(f"{source}: no data rows (the input is empty)")
    delimiter = _sniff_delimiter([line for _, line in content[:50]], tsv)

    def split(line: str) -> list[str]:
        if delimiter is None:
            return line.split()
        return next(csv.reader([line], delimiter=delimiter))

    first = [cell.strip() for cell in split(content[0][1])]
    has_header = not all(_looks_numeric(cell) for cell in first)
    if has_header:
        names = [cell or f"column{j + 1}" for j, cell in enumerate(first)]
        body = content[1:]
    else:
        names = [f"x{j}" for j in range(len(first))]
        body = content
    n_fields = len(names)
    picked, kept = _select_columns(names, columns, source, prefer if has_header else None)
    X = np.empty((len(body), len(picked)))
    line_numbers = np.empty(len(body), dtype=np.int64)
    for r, (line_no, line) in enumerate(body):
        cells = split(line)
        if len(cells) != n_fields:
            what = "the header has" if has_header else "the first row has"
            raise UserError(
                f"{source}: line {line_no} has {len(cells)} fields but {what} {n_fields}"
                + ("" if delimiter is None else f" (delimiter {delimiter!r})")
            )
        line_numbers[r] = line_no
        try:
            X[r] = [float(cells[j]) for j in picked]
        except ValueError:
            for out, j in enumerate(picked):
                try:
                    X[r, out] = float(cells[j])
                except ValueError:
                    if cells[j].strip().lower() not in MISSING_TOKENS:
                        raise UserError(
                            f"{source}: non-numeric value {cells[j].strip()[:40]!r} at line "
                            f"{line_no} (data row {r + 1}), column {names[j]!r}; "
                            "select numeric columns with --columns"
                        ) from None
                    X[r, out] = np.nan
    _check_values(X, kept, lambda r: f"line {line_numbers[r]}", source)
    return Dataset(X, kept, has_header, source)


def _read_npy(raw: bytes, source: str, columns: Sequence[str] | None) -> Dataset:
    try:
        X = np.load(_textio.BytesIO(raw), allow_pickle=False)
    except ValueError as exc:
        raise UserError(f"{source}: cannot read the .npy file ({exc})") from None
    if X.dtype.kind not in "biuf":
        raise UserError(f"{source}: the array must be numeric, got dtype {X.dtype}")
    if X.ndim == 1:
        X = X[:, None]
    if X.ndim != 2:
        raise UserError(f"{source}: the array must have 1 or 2 dimensions, got {X.ndim}")
    names = [f"x{j}" for j in range(X.shape[1])]
    picked, kept = _select_columns(names, columns, source)
    X = np.asarray(X[:, picked], dtype=np.float64)
    _check_values(X, kept, lambda r: f"row {r} (counting from 0)", source)
    return Dataset(X, kept, False, source)


def _read_parquet(
    path: str, columns: Sequence[str] | None, prefer: Sequence[str] | None = None
) -> Dataset:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise UserError(
            f"{path}: reading Parquet needs pyarrow (pip install pyarrow); or give CSV or .npy"
        ) from None
    if not os.path.exists(path):
        raise UserError(f"data file not found: {path}")
    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises its own error types
        raise UserError(f"{path}: cannot read the Parquet file ({exc})") from None
    names = [str(n) for n in table.column_names]
    picked, kept = _select_columns(names, columns, path, prefer)
    out = np.empty((table.num_rows, len(picked)))
    for k, j in enumerate(picked):
        column = table.column(j)
        kind = str(column.type)
        if not any(kind.startswith(t) for t in ("int", "uint", "float", "double", "bool")):
            raise UserError(
                f"{path}: column {names[j]!r} is not numeric (type {kind}); "
                "select numeric columns with --columns"
            )
        values = column.to_numpy(zero_copy_only=False)
        out[:, k] = np.asarray(values, dtype=np.float64)
    _check_values(out, kept, lambda r: f"row {r} (counting from 0)", path)
    return Dataset(out, kept, True, path)


# --------------------------------------------------------------------------------------
# Data on a Dask cluster (--scheduler)


def _is_lazy(X: Any) -> bool:
    """True for a dask array (data read with --scheduler)."""
    return type(X).__module__.startswith("dask")


@contextlib.contextmanager
def _dask_session(args: argparse.Namespace) -> Iterator[Any]:
    """Connect to (or start) the Dask cluster of ``--scheduler`` for the command's duration."""
    spec = getattr(args, "scheduler", None)
    if not spec:
        yield None
        return
    _check_dask_input(getattr(args, "data", None))
    try:
        from gaussmix import _dask
    except ImportError as exc:
        raise UserError(f'--scheduler needs dask: pip install "gaussmix[dask]" ({exc})') from None
    try:
        client = _dask.client_from_scheduler(spec)
    except ImportError as exc:
        raise UserError(str(exc)) from None
    try:
        yield client
    finally:
        with contextlib.suppress(Exception):
            client.close()


def _check_dask_input(path: str | None) -> None:
    """Fail before starting a cluster if the data cannot be read on it."""
    if path is None:
        return
    if path == "-":
        raise UserError("--scheduler reads .npy or Parquet files, not stdin")
    if not os.path.exists(path):
        raise UserError(f"data file not found: {path}")
    if os.path.isfile(path) and not path.lower().endswith((".npy", ".parquet", ".parq")):
        raise UserError(
            f"{path}: unsupported format for --scheduler; give a .npy file, a folder of .npy "
            "files, or .parquet data"
        )


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
    ``_check_dask_input`` before the cluster started.
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
                raise UserError(
                    f"{path}: cannot read the Parquet column names (is pyarrow installed?)"
                )
        picked, kept = _select_columns(names, columns, path, prefer)
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
        raise UserError(f"{path}: no data rows (the input is empty)")
    if X.dtype != np.dtype(dtype):
        X = X.astype(dtype)
    return Dataset(X, kept, has_header, path)


def _input(args: argparse.Namespace, dtype: str, prefer: Sequence[str] | None = None) -> Dataset:
    if getattr(args, "scheduler", None):
        return read_dask_data(args.data, args.columns, dtype, prefer)
    return read_data(args.data, args.columns, dtype, prefer)


def _row_blocks(X: Any, *lazy: Any) -> Iterator[tuple[int, list[np.ndarray]]]:
    """(first row, [computed block of each lazy array]) for every row chunk of X."""
    import dask

    start = 0
    for i in range(X.numblocks[0]):
        blocks = dask.compute(*(a.blocks[i] for a in lazy))
        yield start, [np.asarray(b) for b in blocks]
        start += len(blocks[0])


def _plot_rows(X: Any) -> np.ndarray:
    """The data as NumPy for plotting: all rows, or a fixed random subsample of a dask array.

    The subsample is the one plot_clusters would draw from the whole array.
    """
    if not _is_lazy(X):
        return X
    from gaussmix.plot import MAX_POINTS, _subsample

    if X.shape[0] <= MAX_POINTS:
        return np.asarray(X.compute())
    return np.asarray(X[_subsample(X.shape[0], MAX_POINTS)].compute())


# --------------------------------------------------------------------------------------
# Writing: all files of a run are staged as temporary files, then renamed together


class OutputDir:
    """Stage files in a directory and rename them into place only when all are ready.

    ``commit`` renames every staged file; ``abort`` removes the temporary files and the
    directory itself if this run created it, so a failed run leaves nothing behind.
    """

    def __init__(self, directory: str):
        self.directory = directory
        self.created: list[str] = []
        self.staged: list[tuple[str, str]] = []

    def check_writable(self) -> None:
        """Fail early (before any long computation) if the directory cannot be written."""
        path = os.path.abspath(self.directory)
        if os.path.exists(path):
            if not os.path.isdir(path):
                raise UserError(f"output directory {self.directory} exists and is not a directory")
            target = path
        else:
            target = path
            while not os.path.exists(target):
                target = os.path.dirname(target)
            if not os.path.isdir(target):
                raise UserError(f"cannot create output directory {self.directory}")
        if not os.access(target, os.W_OK | os.X_OK):
            raise UserError(f"cannot write to output directory {self.directory}: permission denied")

    def _ensure(self) -> None:
        path = os.path.abspath(self.directory)
        missing = []
        while not os.path.exists(path):
            missing.append(path)
            path = os.path.dirname(path)
        for d in reversed(missing):
            try:
                os.mkdir(d)
            except OSError as exc:
                raise UserError(
                    f"cannot create output directory {self.directory}: {exc.strerror}"
                ) from None
            self.created.append(d)

    def path(self, name: str) -> str:
        return os.path.join(self.directory, name)

    def stage(
        self,
        name: str,
        text: str | None = None,
        figure: Any = None,
        writer: Callable[[Any], Any] | None = None,
    ) -> str:
        """Write ``text``, a matplotlib ``figure`` (PNG) or ``writer(text_file)`` for ``name``."""
        self._ensure()
        try:
            tmp = _temporary_file(self.directory, name)
        except OSError as exc:
            raise UserError(
                f"cannot write to output directory {self.directory}: {exc.strerror}"
            ) from None
        self.staged.append((tmp, self.path(name)))
        if figure is not None:
            from gaussmix.plot import DPI

            figure.savefig(tmp, format="png", dpi=DPI)
        else:
            with open(tmp, "w", encoding="utf-8", newline="") as f:
                if writer is not None:
                    writer(f)
                else:
                    f.write(text or "")
        _fsync_file(tmp)
        return self.path(name)

    def commit(self) -> list[str]:
        done = []
        for tmp, final in self.staged:
            os.replace(tmp, final)
            done.append(final)
        self.staged = []
        _fsync_directory(self.directory)
        return done

    def abort(self) -> None:
        for tmp, _ in self.staged:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        self.staged = []
        for d in reversed(self.created):
            with contextlib.suppress(OSError):
                os.rmdir(d)  # only succeeds when empty
        self.created = []


@contextlib.contextmanager
def staged_outputs(directory: str) -> Iterator[OutputDir]:
    out = OutputDir(directory)
    try:
        yield out
    except BaseException:
        out.abort()
        raise


def _csv_rows(f: Any, header: Sequence[str] | None, columns: Sequence[np.ndarray]) -> None:
    """Append CSV rows (and the header, if given) to an open text file.

    Whole columns in; floats are written exactly, ints as ints.
    """
    writer = csv.writer(f, lineterminator="\n")
    if header is not None:
        writer.writerow(header)
    writer.writerows(zip(*[np.asarray(c).tolist() for c in columns], strict=True))


def _csv_text(header: Sequence[str], columns: Sequence[np.ndarray]) -> str:
    """CSV text from whole columns."""
    buf = _textio.StringIO()
    _csv_rows(buf, header, columns)
    return buf.getvalue()


def _emit_stream(write: Any, output: str | None) -> None:
    """Stream CSV produced by ``write(text_file)`` to stdout or, atomically, to a file."""
    if output in (None, "-"):
        write(sys.stdout)
        sys.stdout.flush()
        return
    directory = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(directory):
        raise UserError(f"cannot write {output}: directory {directory} does not exist")
    try:
        with atomic_path(output) as tmp, open(tmp, "w", encoding="utf-8", newline="") as f:
            write(f)
    except PermissionError:
        raise UserError(f"cannot write {output}: permission denied") from None


def _emit(text: str, output: str | None) -> None:
    """CSV text to a file (atomically) or to stdout."""
    _emit_stream(lambda f: f.write(text), output)


def _table_writer(
    X: Any,
    header: Sequence[str],
    arrays: Sequence[Any],
    columns: Callable[..., list[Any]] = lambda *arrays: list(arrays),
) -> Callable[[Any], None]:
    """``write(text_file)`` for the CSV of ``row`` and ``columns(*arrays)``.

    ``arrays`` are row-wise results computed from ``X``; for a dask ``X`` they are lazy and
    are computed and written one row chunk at a time.
    """

    def write(f: Any) -> None:
        if not _is_lazy(X):
            _csv_rows(f, header, [np.arange(len(X)), *columns(*arrays)])
            return
        first: Sequence[str] | None = header
        for start, blocks in _row_blocks(X, *arrays):
            rows = np.arange(start, start + len(blocks[0]))
            _csv_rows(f, first, [rows, *columns(*blocks)])
            first = None

    return write


# --------------------------------------------------------------------------------------
# Fitting helpers


def _plots_available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


@contextlib.contextmanager
def _reported_warnings() -> Iterator[None]:
    """Show warnings raised inside the block as one line each on stderr."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    seen = set()
    for w in caught:
        text = " ".join(str(w.message).split())
        if text not in seen:
            seen.add(text)
            print(f"{PROG}: warning: {text}", file=sys.stderr)


@contextlib.contextmanager
def _no_feature_name_warnings() -> Iterator[None]:
    """Predicting from a plain array with a model that has feature names is intended here."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*feature names.*")
        yield


def _parse_components(text: str) -> list[int]:
    """'1-9', '2,3,5' or '4' -> sorted list of component counts."""
    values: set[int] = set()
    try:
        for part in text.split(","):
            part = part.strip()
            if "-" in part:
                lo, hi = (int(p) for p in part.split("-", 1))
                if hi < lo:
                    raise ValueError
                values.update(range(lo, hi + 1))
            else:
                values.add(int(part))
    except ValueError:
        raise UserError(f"--components must look like 1-9, 2,3,5 or 4; got {text!r}") from None
    if not values or min(values) < 1:
        raise UserError(f"--components must be positive numbers; got {text!r}")
    return sorted(values)


def _parse_covariances(text: str) -> tuple[str, ...]:
    if text in ("all", "auto"):
        return COVARIANCE_TYPES
    types = tuple(t.strip() for t in text.split(",") if t.strip())
    bad = [t for t in types if t not in COVARIANCE_TYPES]
    if bad or not types:
        raise UserError(
            f"unknown covariance type {bad[0] if bad else text!r}; choose from "
            f"{', '.join(COVARIANCE_TYPES)} or all"
        )
    return types


def _estimator_params(args: argparse.Namespace) -> dict[str, Any]:
    params: dict[str, Any] = {
        "n_init": args.n_init,
        "random_state": args.seed,
    }
    for name, attr in (
        ("max_iter", "max_iter"),
        ("tol", "tol"),
        ("reg_covar", "reg_covar"),
        ("init_params", "init"),
    ):
        value = getattr(args, attr, None)
        if value is not None:
            params[name] = value
    return params


def _check_components(k_values: Sequence[int], n_samples: int) -> None:
    if min(k_values) > n_samples:
        raise UserError(
            f"cannot fit {min(k_values)} components to {n_samples} samples; "
            "use fewer components or more data"
        )


def _run_selection(
    X: np.ndarray,
    k_values: Sequence[int],
    covariance_types: Sequence[str],
    criterion: str,
    params: dict[str, Any],
    args: argparse.Namespace,
) -> Any:
    k_values = [k for k in k_values if k <= X.shape[0]]
    if _is_lazy(X):
        return _select_on_dask(X, k_values, covariance_types, criterion, params, args)
    from gaussmix.selection import select_model

    if "init_params" in params:
        raise UserError(
            "--init applies to a single fit (-k N -c TYPE) or to --scheduler runs; model "
            "selection makes its own starts, so remove --init"
        )
    show = _progress.enabled(quiet=getattr(args, "quiet", False))
    # A ValueError (a bad argument, or every fit failed) is a user error in main.
    with _progress.grid_progress(show=show) as progress, _reported_warnings():
        return select_model(
            X,
            n_components=k_values,
            covariance_types=tuple(covariance_types),
            criterion=criterion,
            progress=progress,
            **params,
        )


def _fit_one(X: np.ndarray, params: dict[str, Any], args: argparse.Namespace) -> Any:
    from gaussmix import GaussianMixture

    model = GaussianMixture(**params)
    show = _progress.enabled(quiet=getattr(args, "quiet", False))
    with _progress.fit_progress(model, n_samples=X.shape[0], show=show), _reported_warnings():
        model.fit(X)
    return model


# --------------------------------------------------------------------------------------
# Summaries


def _g(x: float, digits: int = 6) -> str:
    return f"{float(x):.{digits}g}"


def _component_table(model: Any, names: Sequence[str]) -> list[str]:
    """Weight, mean and standard deviation of each feature per component, as aligned rows."""
    means = np.asarray(model.means_, dtype=np.float64)
    sds = np.sqrt(np.diagonal(_full_covariances(model), axis1=1, axis2=2))
    header = ["component", "weight"] + [f"mean {n}" for n in names] + [f"sd {n}" for n in names]
    rows = [header]
    for k in range(means.shape[0]):
        rows.append(
            [str(k), f"{float(model.weights_[k]):.4f}"]
            + [_g(v, 5) for v in means[k]]
            + [_g(v, 4) for v in sds[k]]
        )
    widths = [max(len(r[j]) for r in rows) for j in range(len(header))]
    return ["  ".join(cell.rjust(w) for cell, w in zip(r, widths, strict=True)) for r in rows]


def _information_criteria(
    log_likelihood: float, n_parameters: int, n: float
) -> tuple[float, float]:
    """(BIC, AIC) of a total log-likelihood; lower is better."""
    return (
        -2.0 * log_likelihood + n_parameters * math.log(n),
        -2.0 * log_likelihood + 2.0 * n_parameters,
    )


def _describe_fit(model: Any, X: np.ndarray, names: Sequence[str], source: str) -> str:
    n, d = X.shape
    k = np.shape(model.means_)[0]
    ct = model.covariance_type
    with _no_feature_name_warnings():
        total = float(model.score(X)) * n
    bic, _ = _information_criteria(total, model._n_parameters(), n)
    converged = bool(getattr(model, "converged_", False))
    n_iter = int(getattr(model, "n_iter_", 0))
    lines = [
        f"Gaussian mixture fitted to {source} ({n} samples, {d} feature{'s' if d != 1 else ''}: "
        f"{', '.join(names)})",
        f"  covariance type  {ct} ({MCLUST_NAMES.get(ct, '?')}: {COVARIANCE_WORDS.get(ct, '')})",
        f"  components       {k}",
        f"  converged        {'yes' if converged else 'NO'}, after {n_iter} EM iteration"
        f"{'s' if n_iter != 1 else ''}",
        f"  log-likelihood   {total:.6f} (total), {total / n:.6f} per sample",
        f"  BIC              {bic:.6f} (lower is better; mclust's sign: {-bic:.6f})",
        f"  free parameters  {model._n_parameters()}",
    ]
    if getattr(model, "degenerate_", False):
        lines.append(f"  degenerate       {getattr(model, 'degenerate_reason_', '') or 'yes'}")
    lines.append("")
    lines.extend("  " + row for row in _component_table(model, names))
    if ct == "tied":
        cov = np.asarray(model.covariances_, dtype=np.float64)
        lines.append("")
        lines.append("  shared covariance matrix:")
        for row in cov:
            lines.append("    " + "  ".join(f"{v:12.6g}" for v in row))
    return "\n".join(lines)


def _assignments_writer(model: Any, X: Any) -> Callable[[Any], None]:
    """CSV of row, label, uncertainty (1 - largest probability) and every probability."""
    k = np.shape(model.means_)[0]

    def columns(labels: np.ndarray, proba: np.ndarray) -> list[np.ndarray]:
        proba = np.asarray(proba, dtype=np.float64)
        return [labels, 1.0 - proba.max(axis=1), *proba.T]

    with _no_feature_name_warnings():
        arrays = [model.predict(X), model.predict_proba(X)]
    header = ["row", "label", "uncertainty"] + [f"p{j}" for j in range(k)]
    return _table_writer(X, header, arrays, columns)


def _select_on_dask(
    X: Any,
    k_values: Sequence[int],
    covariance_types: Sequence[str],
    criterion: str,
    params: dict[str, Any],
    args: argparse.Namespace,
) -> SelectionResult:
    """Fit every (covariance type, number of components) on the cluster and rank them.

    A plain grid (one fit per grid point with the estimator's own starts), not
    select_model's strategy, which needs the data in memory. ICL is computed only when it
    is the criterion (it costs one more pass over the data).
    """
    from gaussmix import GaussianMixture

    n, n_features = (int(s) for s in X.shape)
    grid = [(ct, k) for ct in covariance_types for k in k_values]
    table: list[dict[str, Any]] = []
    estimators: dict[tuple[str, int], Any] = {}
    show = _progress.enabled(quiet=getattr(args, "quiet", False))
    with _progress.grid_progress(show=show) as progress, _reported_warnings():
        for i, (ct, k) in enumerate(grid, 1):
            row: dict[str, Any] = dict.fromkeys(TABLE_KEYS)
            row.update(covariance_type=ct, n_components=k)
            try:
                model = GaussianMixture(k, covariance_type=ct, **params).fit(X)
                log_likelihood = float(model.score(X)) * n
                p = model._n_parameters()
                bic, aic = _information_criteria(log_likelihood, p, n)
                row.update(
                    log_likelihood=log_likelihood,
                    n_parameters=p,
                    bic=bic,
                    aic=aic,
                    converged=bool(model.converged_),
                    n_iter=int(model.n_iter_),
                    degenerate=model.degenerate_reason_,
                )
                if criterion == "icl":
                    row["icl"] = float(model.icl(X))
                estimators[(ct, k)] = model
            except (ValueError, np.linalg.LinAlgError) as exc:
                row["error"] = " ".join(str(exc).split())
            table.append(row)
            if progress is not None:
                progress(i, len(grid), ct, k)
    # A ValueError when every fit failed or degenerated: a user error in main.
    return SelectionResult(table, criterion, estimators, n, n_features)


def _selection_csv(result: Any) -> str:
    buf = _textio.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(TABLE_KEYS)
    for row in result.table:
        writer.writerow(["" if row.get(key) is None else row.get(key) for key in TABLE_KEYS])
    return buf.getvalue()


def _selection_top(result: Any, n: int = 5) -> str:
    criterion = result.criterion
    rows = [r for r in result.ranked() if math.isfinite(r[criterion])]
    if not rows:
        return ""
    best = rows[0][criterion]
    lines = [f"  {'rank':>4}  {'covariance':<10} {'K':>3}  {criterion.upper():>12}  {'Δ':>9}"]
    for i, r in enumerate(rows[:n], 1):
        lines.append(
            f"  {i:>4}  {r['covariance_type']:<10} {r['n_components']:>3}  "
            f"{r[criterion]:12.3f}  {r[criterion] - best:9.3f}"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------------------
# Subcommands


def _stage_model(out: OutputDir, model: Any, ds: Dataset) -> None:
    out.stage(
        "model.json",
        model_to_json(model, n_samples=ds.X.shape[0], feature_names=list(ds.names)),
    )


def _fit_outputs(
    out: OutputDir,
    model: Any,
    ds: Dataset,
    result: Any,
    plots: bool,
) -> None:
    """Stage model.json, assignments.csv and the plots for a fitted model."""
    names = ds.names
    _stage_model(out, model, ds)
    out.stage("assignments.csv", writer=_assignments_writer(model, ds.X))
    if result is not None:
        out.stage("selection.csv", _selection_csv(result))
    if not plots:
        return
    from gaussmix import plot

    with _no_feature_name_warnings():
        shown = _plot_rows(ds.X)
        figure = plot.plot_clusters(model, shown, feature_names=names)
        out.stage("clusters.png", figure=figure)
    out.stage("loglik.png", figure=plot.plot_loglik(model, n_samples=ds.X.shape[0]))
    if result is not None:
        out.stage("bic.png", figure=plot.plot_bic(result))


def _want_plots(args: argparse.Namespace) -> bool:
    if getattr(args, "no_plots", False):
        return False
    if not _plots_available():
        print(
            f"{PROG}: plots skipped: matplotlib is not installed ({PLOT_INSTALL_HINT})",
            file=sys.stderr,
        )
        return False
    return True


def _finish(args: argparse.Namespace, summary: str, written: list[str]) -> None:
    if args.quiet:
        return
    print(summary)
    print()
    print("wrote:")
    for path in written:
        print(f"  {path}")


def cmd_fit(args: argparse.Namespace) -> int:
    """gaussmix fit: one model, or automatic selection with -k auto / -c auto."""
    ds = _input(args, args.dtype)
    OutputDir(args.output).check_writable()
    if args.n_components == "auto":
        k_values = _parse_components(args.components)
    else:
        try:
            k_values = [int(args.n_components)]
        except ValueError:
            raise UserError(
                f"-k/--n-components must be a positive integer or auto; got {args.n_components!r}"
            ) from None
        if k_values[0] < 1:
            raise UserError(f"-k/--n-components must be >= 1; got {k_values[0]}")
    _check_components(k_values, ds.X.shape[0])
    params = _estimator_params(args)
    if args.n_components == "auto" or args.covariance == "auto":
        types = COVARIANCE_TYPES if args.covariance == "auto" else (args.covariance,)
        result = _run_selection(ds.X, k_values, types, args.criterion, params, args)
        model = result.best_estimator_
    else:
        result = None
        params.update(n_components=k_values[0], covariance_type=args.covariance)
        model = _fit_one(ds.X, params, args)
    plots = _want_plots(args)
    with staged_outputs(args.output) as staged:
        _fit_outputs(staged, model, ds, result, plots)
        written = staged.commit()
    summary = _describe_fit(model, ds.X, ds.names, ds.source)
    if result is not None:
        summary = (
            f"Model selection by {result.criterion.upper()} (best first):\n"
            f"{_selection_top(result)}\n\n{summary}"
        )
    _finish(args, summary, written)
    return EXIT_OK


def cmd_select(args: argparse.Namespace) -> int:
    """gaussmix select: the model-selection table, the best model and bic.png."""
    ds = _input(args, args.dtype)
    OutputDir(args.output).check_writable()
    k_values = _parse_components(args.components)
    types = _parse_covariances(args.covariance)
    _check_components(k_values, ds.X.shape[0])
    result = _run_selection(ds.X, k_values, types, args.criterion, _estimator_params(args), args)
    model = result.best_estimator_
    plots = _want_plots(args)
    with staged_outputs(args.output) as staged:
        _stage_model(staged, model, ds)
        staged.stage("selection.csv", _selection_csv(result))
        if plots:
            from gaussmix import plot

            staged.stage("bic.png", figure=plot.plot_bic(result))
        written = staged.commit()
    best = result.best_params_
    summary = (
        f"{result}\n\nbest by {result.criterion.upper()}: {best['covariance_type']} covariance, "
        f"{best['n_components']} components"
    )
    _finish(args, summary, written)
    return EXIT_OK


def _read_model(path: str) -> tuple[Any, dict[str, Any], str]:
    """The model, its decoded file and the file's path (``path`` or ``path/model.json``)."""
    if os.path.isdir(path):
        candidate = os.path.join(path, "model.json")
        if not os.path.isfile(candidate):
            raise UserError(f"{path} is a directory without a model.json")
        path = candidate
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise UserError(f"model file not found: {path}") from None
    except PermissionError:
        raise UserError(f"cannot read {path}: permission denied") from None
    doc = _document_from_json(data, path)
    return model_from_dict(doc, path), doc, path


def _load(path: str) -> Any:
    return _read_model(path)[0]


def _model_names(model: Any) -> list[str] | None:
    names = getattr(model, "feature_names_in_", None)
    return None if names is None else [str(n) for n in names]


def _aligned(model: Any, ds: Dataset, explicit_columns: bool) -> np.ndarray:
    """Data columns in the model's feature order (by name when both have names)."""
    d = int(model.n_features_in_)
    names = _model_names(model)
    if names and ds.has_header and not explicit_columns and set(names) <= set(ds.names):
        if len(set(ds.names)) == len(ds.names):
            return ds.X[:, [ds.names.index(n) for n in names]]
    if ds.X.shape[1] != d:
        expected = f" ({', '.join(names)})" if names else ""
        raise UserError(
            f"the model expects {d} feature{'s' if d != 1 else ''}{expected} but {ds.source} has "
            f"{ds.X.shape[1]} column{'s' if ds.X.shape[1] != 1 else ''} "
            f"({', '.join(ds.names)}); choose the columns with --columns"
        )
    return ds.X


def _model_dtype(model: Any) -> str:
    return "float32" if np.asarray(model.means_).dtype == np.float32 else "float64"


def cmd_predict(args: argparse.Namespace) -> int:
    """gaussmix predict: labels (and probabilities) as CSV."""
    model = _load(args.model)
    ds = _input(args, _model_dtype(model), prefer=_model_names(model))
    X = _aligned(model, ds, bool(args.columns))
    if args.proba:
        write = _assignments_writer(model, X)
    else:
        with _no_feature_name_warnings():
            write = _table_writer(X, ["row", "label"], [model.predict(X)])
    _emit_stream(write, args.output)
    return EXIT_OK


def cmd_score(args: argparse.Namespace) -> int:
    """gaussmix score: log-likelihood of data under a model, as CSV."""
    model = _load(args.model)
    ds = _input(args, _model_dtype(model), prefer=_model_names(model))
    X = _aligned(model, ds, bool(args.columns))
    with _no_feature_name_warnings():
        log_density = model.score_samples(X)
    if args.per_sample:
        _emit_stream(_table_writer(X, ["row", "log_likelihood"], [log_density]), args.output)
        return EXIT_OK
    n = int(X.shape[0])
    if _is_lazy(X):
        total = float(log_density.sum().compute())
    else:
        total = float(np.sum(log_density, dtype=np.float64))
    bic, aic = _information_criteria(total, model._n_parameters(), n)
    text = _csv_text(
        ["n_samples", "log_likelihood", "mean_log_likelihood", "bic", "aic"],
        [np.array([v]) for v in (n, total, total / n, bic, aic)],
    )
    _emit(text, args.output)
    return EXIT_OK


def cmd_sample(args: argparse.Namespace) -> int:
    """gaussmix sample: draw samples from a model, as CSV."""
    model = _load(args.model)
    if args.n_samples < 1:
        raise UserError(f"-n must be >= 1; got {args.n_samples}")
    X, labels = model.sample(args.n_samples, random_state=args.seed)
    d = X.shape[1]
    names = _model_names(model) or [f"x{j}" for j in range(d)]
    header = list(names)
    columns = [X[:, j] for j in range(d)]
    if args.labels:
        header.append("component")
        columns.append(np.asarray(labels))
    _emit(_csv_text(header, columns), args.output)
    return EXIT_OK


def cmd_info(args: argparse.Namespace) -> int:
    """gaussmix info: what a model file holds, in words and numbers."""
    model, doc, path = _read_model(args.model)
    training = doc.get("training") or {}
    k, d = np.shape(model.means_)
    ct = model.covariance_type
    names = _model_names(model) or [f"x{j}" for j in range(d)]
    n_samples = training.get("n_samples")
    lines = [
        f"{path}: gaussmix model file, format version {doc.get('version')}, "
        f"written by gaussmix {doc.get('gaussmix_version', 'unknown')}",
        f"A mixture of {k} Gaussian component{'s' if k != 1 else ''} over {d} feature"
        f"{'s' if d != 1 else ''} ({', '.join(names)}), {ct} covariance "
        f"({MCLUST_NAMES.get(ct, '?')}: {COVARIANCE_WORDS.get(ct, '')}); "
        f"{model._n_parameters()} free parameters, {doc.get('dtype')}.",
    ]
    n_iter = training.get("n_iter")
    trained = "Trained"
    if n_samples:
        trained += f" on {n_samples} samples"
    converged = training.get("converged")
    trained += f": {'converged' if converged else 'did NOT converge'} after {n_iter} EM iterations"
    lower_bound = training.get("lower_bound")
    if lower_bound is not None:
        trained += f", final EM log-likelihood {lower_bound:.6g} per sample"
        if n_samples:
            total = lower_bound * n_samples
            bic, _ = _information_criteria(total, model._n_parameters(), n_samples)
            trained += f" ({total:.6g} total; BIC {bic:.6g})"
    lines.append(trained + ".")
    params = doc.get("params") or {}
    settings = ", ".join(
        f"{key}={params[key]}"
        for key in ("tol", "reg_covar", "max_iter", "n_init", "init_params", "random_state")
        if key in params
    )
    if settings:
        lines.append(f"Settings: {settings}.")
    if training.get("degenerate"):
        lines.append(f"Degenerate fit: {training.get('degenerate_reason')}")
    lines.append("")
    lines.extend(_component_table(model, names))
    if ct in ("full", "tied") and d > 1:
        cov = _full_covariances(model)
        lines.append("")
        lines.append("correlations:")
        groups = [("shared", cov[0])] if ct == "tied" else list(enumerate(cov))
        for label, c in groups:
            sd = np.sqrt(np.diag(c))
            corr = c / np.outer(sd, sd)
            pairs = [
                f"{names[i]}~{names[j]} {corr[i, j]:+.3f}"
                for i in range(d)
                for j in range(i + 1, d)
            ]
            lines.append(
                f"  component {label}: "
                + ", ".join(pairs[:15])
                + (" ..." if len(pairs) > 15 else "")
            )
    print("\n".join(lines))
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    """gaussmix demo: automatic model selection on Old Faithful, with every output."""
    from gaussmix.datasets import load_faithful

    X = np.asarray(load_faithful(), dtype=np.float64)
    ds = Dataset(X, ["eruptions", "waiting"], True, "the Old Faithful data")
    OutputDir(args.output).check_writable()
    params = {"n_init": args.n_init, "random_state": args.seed}
    result = _run_selection(X, range(1, 10), COVARIANCE_TYPES, "bic", params, args)
    model = result.best_estimator_
    plots = _want_plots(args)
    with staged_outputs(args.output) as staged:
        _fit_outputs(staged, model, ds, result, plots)
        written = staged.commit()
    best = result.best_params_
    summary = "\n".join(
        [
            "gaussmix demo: Old Faithful geyser (eruption length in minutes, waiting time to the",
            "next eruption in minutes), 36 candidate models: 1-9 components x 4 covariance types.",
            "",
            "Model selection by BIC (best first):",
            _selection_top(result),
            "",
            f"Best: {best['covariance_type']} covariance "
            f"({MCLUST_NAMES.get(best['covariance_type'], '?')}), "
            f"{best['n_components']} components (mclust also picks EEE with 3 components).",
            "",
            _describe_fit(model, X, ds.names, ds.source),
        ]
    )
    _finish(args, summary, written)
    return EXIT_OK


# --------------------------------------------------------------------------------------
# Argument parsing


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the epilog's example lines; shows defaults that say something."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (
            "default" in text
            or not action.option_strings
            or action.default in (None, False, argparse.SUPPRESS)
        ):
            return text
        return text + " (default: %(default)s)"


def _wrap(text: str) -> str:
    return textwrap.fill(text, width=80)


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (exit 2) like every user error."""

    commands: tuple[str, ...] = ()  # the subcommands, set by build_parser

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USER, f"{PROG}: error: {message} (see '{self.prog} --help')\n")


def _common(quiet_help: str = "no progress display and no summary") -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    parent.add_argument("-q", "--quiet", action="store_true", help=quiet_help)
    return parent


def _seed(text: str) -> int:
    """argparse type of --seed: a non-negative integer (what NumPy accepts as a seed)."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, got {text!r}")
    return value


def _scheduler_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        default=None,
        help="run on a Dask cluster: a scheduler address (tcp://host:8786), or local:N to "
        "start N local worker processes; DATA must then be a .npy file, a folder of .npy "
        "files, or Parquet (needs gaussmix[dask])",
    )


def _model_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="model file (model.json) or a directory holding one")


def _data_options(parser: argparse.ArgumentParser) -> None:
    """The DATA argument and --columns."""
    parser.add_argument(
        "data", help="CSV/TSV file (header and delimiter detected; - for stdin), .npy or .parquet"
    )
    parser.add_argument(
        "--columns",
        type=lambda s: [c.strip() for c in s.split(",") if c.strip()],
        help="columns to use, by name or 1-based number: a,b,c",
    )


def _output_dir_option(
    parser: argparse.ArgumentParser, default: str = "gaussmix-output", metavar: str = "OUTDIR"
) -> None:
    parser.add_argument(
        "-o",
        "--output",
        default=default,
        metavar=metavar,
        help="output directory (created if needed)",
    )


def _output_file_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-o", "--output", default=None, metavar="FILE", help="CSV file (default stdout)"
    )


def _no_plots_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-plots", action="store_true", help="do not draw PNG plots")


def _fit_options(parser: argparse.ArgumentParser) -> None:
    _data_options(parser)
    parser.add_argument(
        "--n-init",
        type=int,
        default=DEFAULT_N_INIT,
        help="EM runs from different starts per model; the best is kept",
    )
    parser.add_argument(
        "--max-iter",
        type=int,
        default=None,
        help="EM iterations per run (default: the library's, 100)",
    )
    parser.add_argument(
        "--tol",
        type=float,
        default=None,
        help="convergence threshold on the change of the mean log-likelihood "
        "per sample (default 1e-3)",
    )
    parser.add_argument(
        "--reg-covar",
        type=float,
        default=None,
        help="added to covariance diagonals for stability (default 1e-6)",
    )
    parser.add_argument(
        "--init",
        default=None,
        choices=["kmeans", "k-means++", "random", "random_from_data"],
        help="initialisation (default kmeans)",
    )
    parser.add_argument(
        "--seed", type=_seed, default=DEFAULT_SEED, help="random seed (results are reproducible)"
    )
    parser.add_argument(
        "--dtype",
        choices=["float64", "float32"],
        default="float64",
        help="floating-point precision of the fit",
    )
    parser.add_argument(
        "--criterion",
        choices=["bic", "aic", "icl"],
        default="bic",
        help="model-selection criterion (lower is better)",
    )
    _no_plots_option(parser)
    _scheduler_option(parser)
    _output_dir_option(parser)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``gaussmix`` command."""
    from gaussmix.io import _gaussmix_version

    parser = _Parser(
        prog=PROG,
        description=_wrap(
            "Gaussian mixture models fitted by EM: cluster a table, choose the number "
            "of components and the covariance type by BIC, predict, score and sample."
        ),
        epilog="Run 'gaussmix COMMAND --help' for each command's options. "
        "'gaussmix demo' shows everything on the Old Faithful data.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_gaussmix_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, func: Any, description: str, **kwargs: Any) -> argparse.ArgumentParser:
        p = sub.add_parser(
            name,
            parents=[_common()],
            formatter_class=_Formatter,
            description=_wrap(description),
            **kwargs,
        )
        p.set_defaults(func=func)
        return p

    p = command(
        "fit",
        cmd_fit,
        "Fit a Gaussian mixture to DATA. Writes OUTDIR/model.json, "
        "OUTDIR/assignments.csv (row, label, uncertainty = 1 - max probability, one "
        "probability per component), OUTDIR/clusters.png, OUTDIR/loglik.png and, with auto, "
        "OUTDIR/bic.png and OUTDIR/selection.csv; prints a summary.",
        help="fit a mixture to a data file and write the model, assignments and plots",
        epilog="examples:\n  gaussmix fit data.csv -k 3 -c tied -o out\n"
        "  gaussmix fit data.csv -k auto -c auto --components 1-6",
    )
    _fit_options(p)
    p.add_argument(
        "-k",
        "--n-components",
        default="auto",
        metavar="N|auto",
        help="number of components, or auto to choose by --criterion",
    )
    p.add_argument(
        "-c",
        "--covariance",
        default="full",
        choices=[*COVARIANCE_TYPES, "auto"],
        help="covariance type, or auto to choose by --criterion",
    )
    p.add_argument(
        "--components",
        default="1-9",
        help="numbers of components tried with -k auto: 1-9, 2,3,5, ...",
    )

    p = command(
        "select",
        cmd_select,
        "Fit every combination of --components and --covariance, print the table "
        "sorted by the criterion, and write OUTDIR/model.json (the best model), "
        "OUTDIR/selection.csv and OUTDIR/bic.png.",
        help="compare numbers of components and covariance types (BIC table)",
    )
    _fit_options(p)
    p.add_argument("--components", default="1-9", help="numbers of components: 1-9, 2,3,5, ...")
    p.add_argument(
        "--covariance", default="all", help="covariance types: all, or a list such as full,tied"
    )

    p = command(
        "predict",
        cmd_predict,
        "Write row,label (with --proba also uncertainty and p0..pK-1) as CSV. "
        "Columns are matched to the model's feature names when the data has a header.",
        help="assign rows of a data file to components",
    )
    _model_argument(p)
    _data_options(p)
    p.add_argument(
        "--proba",
        action="store_true",
        help="also write the uncertainty and each component's probability",
    )
    _output_file_option(p)
    _scheduler_option(p)

    p = command(
        "score",
        cmd_score,
        "Write n_samples, total and mean log-likelihood, BIC and AIC of DATA under "
        "MODEL as CSV; with --per-sample, each row's log-density instead.",
        help="log-likelihood of a data file under a model",
    )
    _model_argument(p)
    _data_options(p)
    p.add_argument("--per-sample", action="store_true", help="one log-density per row")
    _output_file_option(p)
    _scheduler_option(p)

    p = command(
        "sample",
        cmd_sample,
        "Write N samples drawn from MODEL as CSV (one column per feature; with "
        "--labels also the component each came from).",
        help="draw random samples from a model",
    )
    _model_argument(p)
    p.add_argument(
        "-n", "--n-samples", type=int, default=100, metavar="N", help="number of samples"
    )
    p.add_argument("--seed", type=_seed, default=None, help="random seed")
    p.add_argument("--labels", action="store_true", help="add a component column")
    _output_file_option(p)

    p = command(
        "info",
        cmd_info,
        "Say what MODEL is: covariance type, components, weights, means, spreads, "
        "correlations and how it was trained.",
        help="describe a model file",
    )
    _model_argument(p)

    p = command(
        "demo",
        cmd_demo,
        "Choose the number of components (1-9) and the covariance type by BIC on "
        "the Old Faithful geyser data, then write model.json, assignments.csv, selection.csv, "
        "clusters.png, loglik.png and bic.png to DIR and print a summary.",
        help="automatic model selection on the bundled Old Faithful data",
    )
    _output_dir_option(p, default="demo-output", metavar="DIR")
    p.add_argument("--n-init", type=int, default=DEFAULT_N_INIT, help=argparse.SUPPRESS)
    p.add_argument("--seed", type=_seed, default=DEFAULT_SEED, help=argparse.SUPPRESS)
    _no_plots_option(p)
    parser.commands = tuple(sub.choices)
    return parser


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror.lower()}{where}"
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``gaussmix`` command; returns the exit code (0 ok, 1 internal, 2 user error)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        commands = ", ".join(parser.commands)
        print(f"{PROG}: error: give a command: {commands} (see '{PROG} --help')", file=sys.stderr)
        return EXIT_USER
    debug = getattr(args, "debug", False)
    try:
        with _dask_session(args):
            return int(args.func(args) or EXIT_OK)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (e.g. `gaussmix predict ... | head`): not an error.
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    except (UserError, ModelFileError, ValueError, OSError) as exc:
        if debug:
            traceback.print_exc()
        print(f"{PROG}: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USER
    except Exception as exc:
        if debug:
            traceback.print_exc()
        if type(exc).__name__ == "DaskFitError":  # the cluster failed, not gaussmix
            print(f"{PROG}: error: {_one_line(exc)}", file=sys.stderr)
            return EXIT_INTERNAL
        print(
            f"{PROG}: internal error: {type(exc).__name__}: {_one_line(exc)} "
            "(run again with --debug for the traceback, and please report it)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
