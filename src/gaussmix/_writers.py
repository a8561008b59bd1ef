"""Writing the command line's tables: CSV from whole columns, or block by block.

Tables go to stdout or, atomically (temporary file, fsync, rename), to a file; a file
that is not a regular one (``/dev/null``, a FIFO) is written directly, a symbolic link is
followed and an existing file keeps its permissions (:func:`gaussmix.io.atomic_path`). Row-wise
results over large data (``assignments.csv``, ``predict``, ``score --per-sample``) are
computed and written ``WRITE_ROWS`` rows at a time (:func:`block_writer`; for a dask
array, :func:`table_writer` computes one chunk at a time), so memory does not grow with
the number of rows. A failure part-way leaves no partial file (the temporary file is
removed); on stdout the rows already written stay written. Blocks are
formatted by Apache Arrow's CSV writer when pyarrow is installed (floats in their
shortest exact form), else by the csv module.
"""

from __future__ import annotations

import csv
import io
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from gaussmix._readers import is_lazy
from gaussmix.io import OutputError, atomic_path

__all__ = ["block_writer", "csv_rows", "csv_text", "emit", "emit_stream", "table_writer"]

# Rows computed and written at a time by block_writer.
WRITE_ROWS = 65_536


def csv_rows(f: Any, header: Sequence[str] | None, columns: Sequence[np.ndarray]) -> None:
    """Append CSV rows (and the header, if given) to an open text file.

    Whole columns in; floats are written exactly, ints as ints.
    """
    writer = csv.writer(f, lineterminator="\n")
    if header is not None:
        writer.writerow(header)
    if columns:
        writer.writerows(zip(*[np.asarray(c).tolist() for c in columns], strict=True))


def csv_text(header: Sequence[str], columns: Sequence[np.ndarray]) -> str:
    """CSV text from whole columns."""
    buf = io.StringIO()
    csv_rows(buf, header, columns)
    return buf.getvalue()


def emit_stream(write: Any, output: str | None) -> None:
    """Stream CSV produced by ``write(text_file)`` to stdout or, atomically, to a file."""
    if output in (None, "-"):
        write(sys.stdout)
        sys.stdout.flush()
        return
    directory = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(directory):
        raise OutputError(f"cannot write {output}: directory {directory} does not exist")
    if os.path.isdir(output):
        raise OutputError(f"cannot write {output}: it is a directory; give a file name")
    try:
        with atomic_path(output) as tmp, open(tmp, "w", encoding="utf-8", newline="") as f:
            write(f)
    except PermissionError:
        raise OutputError(f"cannot write {output}: permission denied") from None
    except OSError as exc:  # name the user's path, not the temporary file next to it
        if exc.strerror is None:  # atomic_path's own message names the path and the fix
            raise OutputError(str(exc)) from None
        raise OutputError(f"cannot write {output}: {exc.strerror}") from None


def emit(text: str, output: str | None) -> None:
    """CSV text to a file (atomically) or to stdout."""
    emit_stream(lambda f: f.write(text), output)


def table_writer(
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
        if not is_lazy(X):
            csv_rows(f, header, [np.arange(len(X)), *columns(*arrays)])
            return
        first: Sequence[str] | None = header
        for start, blocks in _row_blocks(X, *arrays):
            rows = np.arange(start, start + len(blocks[0]))
            csv_rows(f, first, [rows, *columns(*blocks)])
            first = None

    return write


def block_writer(
    X: Any, header: Sequence[str], columns: Callable[[Any], list[np.ndarray]]
) -> Callable[[Any], None]:
    """``write(text_file)`` for the CSV of ``row`` and ``columns(X_block)``, block by block.

    ``columns`` computes the row-wise results of a block of rows of an in-memory (or
    memory-mapped) ``X``, for instance a model's predict on the block; only
    ``WRITE_ROWS`` rows of results are in memory at a time. (For a dask ``X``, use
    :func:`table_writer` with the lazy results.)
    """

    def write(f: Any) -> None:
        csv_rows(f, header, [])
        for start in range(0, X.shape[0], WRITE_ROWS):
            block = X[start : start + WRITE_ROWS]
            rows = np.arange(start, start + len(block))
            _write_block(f, [rows, *columns(block)])

    return write


def _write_block(f: Any, columns: Sequence[np.ndarray]) -> None:
    """CSV rows (no header) of whole columns, by pyarrow if it is installed."""
    try:
        import pyarrow as pa
        import pyarrow.csv as pacsv
    except ImportError:
        csv_rows(f, None, columns)
        return
    table = pa.table({f"c{j}": np.asarray(c) for j, c in enumerate(columns)})
    options = pacsv.WriteOptions(include_header=False)
    binary = getattr(f, "buffer", None)  # a text file's bytes: no decoding
    if binary is not None:
        f.flush()
        pacsv.write_csv(table, binary, options)
        return
    buf = io.BytesIO()
    pacsv.write_csv(table, buf, options)
    f.write(buf.getvalue().decode("utf-8"))


def _row_blocks(X: Any, *lazy: Any) -> Iterator[tuple[int, list[np.ndarray]]]:
    """(first row, [computed block of each lazy array]) for every row chunk of X."""
    import dask

    start = 0
    for i in range(X.numblocks[0]):
        blocks = dask.compute(*(a.blocks[i] for a in lazy))
        yield start, [np.asarray(b) for b in blocks]
        start += len(blocks[0])
