"""Model files: a fitted GaussianMixture as versioned, human-readable JSON.

A model file is one JSON object::

    {"format": "gaussmix-model", "version": 2 | 3,
     "gaussmix_version": "0.1.0",
     "covariance_type": "tied", "n_components": 3, "n_features": 2, "dtype": "float64",
     "feature_names": ["eruptions", "waiting"] | null,
     "weights": [...], "means": [[...]], "covariances": ..., "precisions_cholesky": ...,
     "precisions": ...,
     "training": {"converged": true, "n_iter": 7, "lower_bound": ..., "lower_bounds": [...],
                  "n_samples": 272 | null, "weight_sum": 272.0 (optional),
                  "reg_covar": ..., "tol": ..., "random_state": 0 | null,
                  "degenerate": false, "degenerate_reason": null},
     "params": {...every constructor parameter...},
     "online": null | {"n_batch_iter": 80,
                       "statistics": {"shift": [[...]], "nk": [...], "s1": [[...]],
                                      "s2": ..., "log_likelihood": ..., "weight_sum": 1.0}},
     "checksum": "sha256:..."}

``version`` is 3 for mclust's ten models scikit-learn does not have (covariance_type EII,
EEI, VEI, EVI, VEE, EVE, VVE, EEV, VEV or EVV, stored in the shape of the scikit-learn type
each specialises, shared pieces repeated) and 2 for scikit-learn's four, whose files did not
change (so older gaussmix versions still read them, and refuse a version-3 file with
"upgrade gaussmix"). Files of versions 1 and 2 still load, of any covariance type.

``online`` (version 2) holds ``partial_fit``'s running statistics (per-sample averages,
``s2`` shaped as the covariances), its step count and (optional, added later) the mean
weight of its batches, so that a loaded model continues its stream exactly; it is null for
models fitted by ``fit``. Version-1 files (without it)
still load.

Every float is written with Python's shortest round-trip representation of the float64
value, so it reads back bit-exact (float32 models are written as the exact float64 value of
each float32 and cast back on loading). Loading checks everything (schema, types, shapes,
finiteness, weights, symmetric positive definite covariances, agreement of covariances and
precisions, precision-Cholesky factors that are upper triangular with a positive diagonal,
covariances that keep their model's constraint (an equal volume, shape or orientation across
components, :func:`_check_constraint`), and the checksum of the numbers that decide the
predictions, :func:`model_checksum`) and raises :class:`ModelFileError` naming the field and
the problem, whatever the file holds: numbers out of range, wrong types and ragged lists are
field errors too. Files larger than 64 MB are refused before they are read whole
(``GAUSSMIX_MAX_MODEL_MB`` or ``max_bytes`` raises the limit). Nothing is ever unpickled or
evaluated.

Every write goes to a temporary file in the destination directory, is flushed to disk and
then renamed over the destination (:func:`write_atomic`, :func:`atomic_path`), so a failed
write leaves no partial file; the new file keeps the old one's permissions, a symbolic
link is followed, and a device or FIFO is written directly instead of replaced.
:func:`staged_outputs` does this for a run's set of files in one output directory: they
are written into a staging folder and published together under a lock on the directory,
files an earlier run wrote and this one does not are removed, and leftovers of killed runs
are cleaned up (:class:`OutputDir`). Only files gaussmix recorded in the folder's
:data:`MANIFEST` are ever replaced or removed; any other file in the way stops the run
before anything is renamed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import numbers
import os
import shutil
import stat
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np

from . import families
from ._exceptions import NotFittedError
from ._online import check_schedule
from ._validation import COVARIANCE_TYPES, check_parameters
from .families._eigen import common_eigenvectors

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "MANIFEST",
    "STAGING_PREFIX",
    "ModelFileError",
    "OutputDir",
    "OutputError",
    "atomic_path",
    "load_model",
    "model_checksum",
    "model_from_json",
    "model_to_json",
    "read_model_bytes",
    "save_model",
    "staged_outputs",
    "write_atomic",
]

FORMAT_NAME = "gaussmix-model"
# 2: the "online" field (partial_fit's running statistics). 3: mclust's ten other
# covariance models (covariance_type EII, EEI, VEI, EVI, VEE, EVE, VVE, EEV, VEV, EVV).
FORMAT_VERSION = 3
#: The version written for scikit-learn's four covariance types, whose files did not change
#: in version 3 (so gaussmix versions that read version 2 still read them).
_SKLEARN_FORMAT_VERSION = 2
#: Model files larger than this many megabytes are refused unless the environment variable
#: ``GAUSSMIX_MAX_MODEL_MB`` (or ``load_model(max_bytes=...)``) raises the limit.
DEFAULT_MAX_MODEL_MB = 64
MAX_MODEL_SIZE_ENV = "GAUSSMIX_MAX_MODEL_MB"

_DTYPES = {"float64": np.float64, "float32": np.float32}

# Constructor parameters written to the file; array-valued ones are written as lists.
_PARAM_NAMES = (
    "n_components",
    "covariance_type",
    "tol",
    "reg_covar",
    "max_iter",
    "n_init",
    "init_params",
    "weights_init",
    "means_init",
    "precisions_init",
    "random_state",
    "warm_start",
    "verbose",
    "verbose_interval",
    "block_size",
    "learning_offset",
    "learning_decay",
    "prior",
)
_ARRAY_PARAMS = ("weights_init", "means_init", "precisions_init")


class ModelFileError(ValueError):
    """A model file is not a valid gaussmix model file.

    Raised by :func:`load_model` for unreadable JSON, a wrong format or version, missing
    or mistyped fields, wrong shapes, non-finite numbers, weights that do not sum to one or
    covariances that are not symmetric positive definite. The message names the file, the
    field and the problem.
    """


# --------------------------------------------------------------------------------------
# Atomic writes


def _file_mode() -> int:
    """Permission bits a plain ``open(path, "w")`` would give a new file (0o666 & ~umask)."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def _fsync_directory(directory: str) -> None:
    """Flush a directory entry to disk after a rename (best effort, POSIX only)."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _temporary_file(directory: str, name: str, mode: int | None = None) -> tuple[str, int]:
    """A new empty temporary file for ``name`` in ``directory``, with a new file's mode.

    ``mode`` (default: what ``open`` gives a new file, :func:`_file_mode`) sets its
    permission bits. Returns its path and an open descriptor holding an exclusive
    ``flock`` on it (where ``flock`` exists) until it is closed: the mark of a live writer,
    which :func:`_remove_stale_temporaries` leaves alone.
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
    try:
        _flock(fd, blocking=False)
        os.chmod(tmp, _file_mode() if mode is None else mode)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return tmp, fd


def _flock(fd: int, blocking: bool) -> bool:
    """Take an exclusive ``flock`` on ``fd``; False if another process holds it."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
    except BlockingIOError:
        return False
    return True


def _remove_stale_temporaries(directory: str, name: str, min_age: float = 5.0) -> list[str]:
    """Remove temporary files for ``name`` left by killed writers; return their paths.

    A temporary file is stale when no process holds its lock and it has not been written
    for ``min_age`` seconds (a writer locks its file right after creating it).
    """
    prefix = f".{name}."
    removed = []
    try:
        entries = os.listdir(directory)
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        if not (entry.startswith(prefix) and entry.endswith(".tmp")):
            continue
        path = os.path.join(directory, entry)
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            if now - os.fstat(fd).st_mtime >= min_age and _flock(fd, blocking=False):
                os.unlink(path)
                removed.append(path)
        except OSError:
            pass
        finally:
            os.close(fd)
    return removed


def _fsync_file(path: str) -> None:
    """Flush a written file's content to disk."""
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def _write_target(path: str) -> tuple[str, os.stat_result | None, bool]:
    """Where and how a write of ``path`` goes: (file to replace, its status, write directly).

    A symbolic link is followed: the file it points to is replaced, the link kept. A path
    that is, or links to, something other than a regular file (a device such as /dev/null,
    a FIFO, a socket, a /proc/self/fd descriptor) is written directly, never replaced by a
    regular file. A folder, or a missing parent folder, is an error naming ``path``.
    """
    try:
        status: os.stat_result | None = os.stat(path)  # follows symbolic links
    except OSError:
        status = None  # missing (or a dangling link): the checks below name the problem
    if status is not None and stat.S_ISDIR(status.st_mode):
        raise IsADirectoryError(
            f"cannot write {path}: it is a folder; give a file name (a path inside it)"
        )
    if status is not None and not stat.S_ISREG(status.st_mode):
        return path, status, True
    target = os.path.realpath(path)
    if target.startswith("/proc/"):  # e.g. /dev/stdout when stdout is a regular file
        return path, status, True
    directory = os.path.dirname(target)
    if not os.path.isdir(directory):
        shown = os.path.dirname(path) or "."
        if target != os.path.abspath(path):
            shown = f"{shown} (where the link {path} points: {directory})"
        problem = "is not a folder" if os.path.exists(directory) else "does not exist"
        error = NotADirectoryError if os.path.exists(directory) else FileNotFoundError
        raise error(f"cannot write {path}: the folder {shown} {problem}; create it first")
    return target, status, False


def _naming(exc: OSError, tmp: str, path: str) -> OSError:
    """``exc`` naming ``path`` instead of the temporary file ``tmp`` written for it."""
    if tmp not in (exc.filename, exc.filename2) or exc.errno is None:
        return exc
    return type(exc)(exc.errno, exc.strerror or str(exc), path)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[str]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` if the block succeeds.

    The temporary file lives in the destination directory (so the final ``os.replace`` is
    atomic), is fsynced before the rename, and is removed if the block raises: either the
    complete new file is at ``path`` or nothing changed. Temporary files for ``path`` left
    by a killed writer (no live process holds their lock) are removed first.

    The new file keeps the permission bits (and, where allowed, the owner) of the file it
    replaces; a new file gets those a plain ``open`` gives (``0o666`` less the umask). A
    symbolic link is followed: the file it points to is replaced and the link kept. A
    ``path`` that is not a regular file (a device such as ``/dev/null``, a FIFO, a socket,
    ``/dev/stdout``) is yielded itself, to be written directly: replacing it by a regular
    file would break it.

    Parameters
    ----------
    path : str or path-like
        Final destination. Its directory must exist and be writable.

    Yields
    ------
    tmp_path : str
        Where to write the content (the file exists and is empty, or is ``path`` itself
        when that is not a regular file).

    Raises
    ------
    IsADirectoryError
        If ``path`` is a folder.
    FileNotFoundError, NotADirectoryError
        If the folder of ``path`` does not exist, or is not a folder.
    OSError
        If writing fails; the error names ``path``, not the temporary file.

    Examples
    --------
    >>> import tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> with atomic_path(os.path.join(d, "out.txt")) as tmp:
    ...     with open(tmp, "w") as f:
    ...         _ = f.write("hello")
    >>> with open(os.path.join(d, "out.txt")) as f:
    ...     f.read()
    'hello'
    """
    path = os.fspath(path)
    target, status, direct = _write_target(path)
    if direct:
        yield path
        return
    directory, name = os.path.split(target)
    _remove_stale_temporaries(directory, name)
    mode = None if status is None else stat.S_IMODE(status.st_mode)
    try:
        tmp, lock_fd = _temporary_file(directory, name, mode)
    except OSError as exc:
        raise type(exc)(exc.errno, exc.strerror or str(exc), path) from None
    try:
        if status is not None and (status.st_uid, status.st_gid) != _owner(lock_fd):
            with contextlib.suppress(OSError):  # allowed for root, or a group of one's own
                os.chown(tmp, status.st_uid, status.st_gid)
                os.chmod(tmp, stat.S_IMODE(status.st_mode))  # chown clears set-id bits
        yield tmp
        _fsync_file(tmp)
        os.replace(tmp, target)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise _naming(exc, tmp, path) from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    finally:
        os.close(lock_fd)
    _fsync_directory(directory)


def _owner(fd: int) -> tuple[int, int]:
    status = os.fstat(fd)
    return status.st_uid, status.st_gid


def write_atomic(path: str | os.PathLike[str], data: str | bytes) -> None:
    """Write ``data`` to ``path`` atomically (temporary file, fsync, rename).

    Parameters
    ----------
    path : str or path-like
        Destination file; its directory must exist.
    data : str or bytes
        Content; str is encoded as UTF-8.
    """
    payload = data.encode("utf-8") if isinstance(data, str) else data
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(payload)


# --------------------------------------------------------------------------------------
# Output folders: all files of a run are staged as temporary files, then renamed together


class OutputError(OSError):
    """An output file or directory cannot be written; the message says which and why."""


STAGING_PREFIX = ".gaussmix-staging-"
#: The record, in an output folder, of the files gaussmix wrote there (name, size,
#: modification time and SHA-256 of each): only those are ever replaced or removed.
MANIFEST = ".gaussmix-outputs.json"
_MANIFEST_FORMAT = "gaussmix-outputs"
_JOURNAL = ".publishing.json"  # in a staging folder: the files being published
_HASH_BLOCK = 1 << 20


def _plain_name(name: Any) -> bool:
    """A file name of the folder itself (no path, not hidden): what a record may name."""
    return (
        isinstance(name, str)
        and name == os.path.basename(name)
        and name not in ("", ".", "..")
        and not name.startswith(".")
        and "\\" not in name
        and "\0" not in name
    )


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def _record(path: str) -> dict[str, Any]:
    """What identifies the file gaussmix wrote at ``path``: size, mtime and SHA-256."""
    status = os.stat(path)
    return {"size": status.st_size, "mtime_ns": status.st_mtime_ns, "sha256": _sha256(path)}


def _valid_record(record: Any) -> bool:
    return (
        isinstance(record, dict)
        and isinstance(record.get("size"), int)
        and isinstance(record.get("sha256"), str)
    )


def _unchanged(path: str, status: os.stat_result, record: dict[str, Any]) -> bool:
    """Whether the regular file at ``path`` is still the one ``record`` describes.

    The same size and modification time, or (a copied folder has new times) the same
    size and content.
    """
    if not stat.S_ISREG(status.st_mode) or status.st_size != record["size"]:
        return False
    if status.st_mtime_ns == record.get("mtime_ns"):
        return True
    try:
        return _sha256(path) == record["sha256"]
    except OSError:
        return False


def _kind(status: os.stat_result) -> str:
    """'a folder', 'a symbolic link', ... for a directory entry that is not a regular file."""
    mode = status.st_mode
    for test, words in (
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISFIFO, "a named pipe"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a device"),
        (stat.S_ISBLK, "a device"),
    ):
        if test(mode):
            return words
    return "not a regular file"


class OutputDir:
    """Write a run's set of files into a staging folder, then publish them as one unit.

    The files are written into a fresh hidden folder inside the directory
    (``.gaussmix-staging-*``) and flushed to disk. :meth:`commit` renames each into place,
    then removes the files an earlier run recorded that this run did not write (for
    example its ``selection.csv`` next to a new single-model fit), so the folder holds one
    run's files, never a mix. :meth:`abort` removes the staging folder and the directories
    this run created, so a failed run changes nothing.

    Only files gaussmix wrote are ever replaced or removed. Each commit records the files
    it published (name, size, modification time, SHA-256) in :data:`MANIFEST`
    (``.gaussmix-outputs.json``) in the folder. Before the first rename, :meth:`commit`
    checks every file it would replace or remove, and every file named in ``outputs``:
    one that is not in the record, or has changed since, or is not a regular file (a
    folder, a link), or that is one of the run's ``inputs``, stops the run with an
    :class:`OutputError` naming it, and nothing is published. :meth:`check_writable` makes
    the same checks before a long computation. In a folder without a record (written by a
    gaussmix before it), the outputs recognisably gaussmix's count as recorded: a
    ``model.json`` that loads with a valid checksum, CSV files with gaussmix's headers, and
    the plots next to such a model.json.

    Once the checks pass, the set is listed in a journal in the staging folder, and from
    then on it is published whole: a commit stopped between its renames (Ctrl-C, SIGTERM,
    an error) completes them before it raises; a run killed there leaves the journal, and
    the next run into the folder completes the publication first.

    A lock on the directory (``flock``, released by the operating system even when the
    process is killed) is held from the first :meth:`stage` to :meth:`commit` or
    :meth:`abort`, and during :meth:`check_writable`: a second run writing to (or checking)
    the same directory waits until the first has published (``on_wait`` is called once when
    it starts waiting). Staging folders found while holding the lock were left by killed
    runs; they are completed (if they had started publishing) or removed, first, and
    listed in :attr:`cleaned`. Use it through :func:`staged_outputs`.

    Parameters
    ----------
    directory : str
        The output directory; it and its missing parents are created on the first
        :meth:`stage`.
    outputs : iterable of str, optional
        Every file name a run may write into the directory. A file of one of these names
        that gaussmix did not record is refused (it would look like this run's), even if
        this run does not write it.
    on_wait : callable, optional
        ``on_wait(directory)`` is called if another run holds the directory's lock.
    inputs : iterable of str, optional
        Files the run reads: the run is refused if one of them is a file it would replace
        or remove.

    Attributes
    ----------
    removed : list of str
        Files of an earlier run removed by :meth:`commit`.
    cleaned : list of str
        Leftovers of killed runs (staging folders, temporary files) removed.

    Examples
    --------
    >>> import os, tempfile
    >>> d = os.path.join(tempfile.mkdtemp(), "run")
    >>> with staged_outputs(d, outputs=["a.txt", "b.txt", "c.txt"]) as out:
    ...     _ = out.stage("a.txt", "first")
    ...     _ = out.stage("b.txt", writer=lambda f: f.write("second"))
    ...     os.listdir(d)[0].startswith(".gaussmix-staging-")  # only the staging folder so far
    ...     written = out.commit()
    True
    >>> sorted(os.listdir(d))
    ['.gaussmix-outputs.json', 'a.txt', 'b.txt']
    >>> with staged_outputs(d, outputs=["a.txt", "b.txt", "c.txt"]) as out:
    ...     _ = out.stage("c.txt", "a later run writes only c.txt")
    ...     written = out.commit()
    >>> sorted(os.listdir(d)), [os.path.basename(p) for p in out.removed]
    (['.gaussmix-outputs.json', 'c.txt'], ['a.txt', 'b.txt'])
    """

    def __init__(
        self,
        directory: str,
        outputs: Iterable[str] = (),
        on_wait: Callable[[str], Any] | None = None,
        inputs: Iterable[str | os.PathLike[str]] = (),
    ):
        self.directory = directory
        self.outputs = tuple(outputs)
        self.on_wait = on_wait
        self.inputs = tuple(os.fspath(p) for p in inputs)
        self.created: list[str] = []
        self.staged: list[tuple[str, str]] = []
        self.removed: list[str] = []
        self.cleaned: list[str] = []
        self._records: dict[str, dict[str, Any]] = {}
        self._staging: str | None = None
        self._lock_fd: int | None = None

    def check_writable(self) -> None:
        """Fail early (before any long computation) if the directory cannot be written.

        Also makes :meth:`commit`'s checks of the files already there (see the class
        description), so that a folder holding files gaussmix did not write, or one of
        the run's inputs, is refused before the run starts. The checks are made under
        the directory's lock (waiting for a run that is publishing), after completing a
        publication a killed run cut short.

        Raises
        ------
        OutputError
            If the path is a file, cannot be created, or is not writable, or holds a file
            the run would replace or remove that gaussmix did not write.
        """
        path = os.path.abspath(self.directory)
        if os.path.exists(path):
            if not os.path.isdir(path):
                raise OutputError(
                    f"output directory {self.directory} exists and is not a directory"
                )
            target = path
        else:
            target = path
            while not os.path.exists(target):
                target = os.path.dirname(target)
            if not os.path.isdir(target):
                raise OutputError(f"cannot create output directory {self.directory}")
        if not os.access(target, os.W_OK | os.X_OK):
            raise OutputError(
                f"cannot write to output directory {self.directory}: permission denied"
            )
        if target == path:
            # Under the lock: a run publishing now is waited for (between its renames and
            # its record the folder looks foreign), and a publication a killed or stopped
            # run cut short is completed first (its files are gaussmix's).
            with self._locked() as held:
                if held:
                    self._clean_leftovers()
                    self._check_folder(())

    @contextlib.contextmanager
    def _locked(self) -> Iterator[bool]:
        """Hold the directory's lock in the block (yields False if the directory is gone)."""
        if self._lock_fd is not None:
            yield True
            return
        fd = None
        while fd is None:
            if not os.path.isdir(self.directory):
                yield False
                return
            fd = _lock_directory(self.directory, self.on_wait)
        try:
            yield True
        finally:
            if fd >= 0:
                os.close(fd)

    # ---- the record of what gaussmix wrote, and the checks before publishing

    def _read_manifest(self) -> dict[str, dict[str, Any]] | None:
        """The folder's record of the files gaussmix wrote.

        None if the folder has no record (an older gaussmix kept none, or it was deleted) or
        an unreadable one; {} if the record's name is taken by a folder or a link.
        """
        path = self.path(MANIFEST)
        try:
            if not stat.S_ISREG(os.lstat(path).st_mode):
                return {}
            with open(path, encoding="utf-8") as f:
                doc = json.load(f)
        except (OSError, ValueError):
            return None
        if not isinstance(doc, dict) or doc.get("format") != _MANIFEST_FORMAT:
            return None
        files = doc.get("files")
        if not isinstance(files, dict):
            return None
        return {
            name: record
            for name, record in files.items()
            if _plain_name(name) and _valid_record(record)
        }

    def _recorded(self) -> dict[str, dict[str, Any]]:
        """The files gaussmix wrote: its record, or in a folder without one (written by a
        gaussmix before the record), the outputs recognisable as gaussmix's."""
        recorded = self._read_manifest()
        return self._recognised() if recorded is None else recorded

    def _recognised(self) -> dict[str, dict[str, Any]]:
        """Outputs in a folder without a record that are recognisably gaussmix's.

        A ``model.json`` that loads as a gaussmix model file with a valid checksum; an
        ``assignments.csv`` or ``selection.csv`` with the header gaussmix writes; the plots
        (PNG files) next to such a model.json. Their records hold size and modification
        time (compared within this run; no checksum is computed).
        """
        found: dict[str, dict[str, Any]] = {}
        for name in sorted(self.outputs, key=lambda n: n != "model.json"):
            recognise = _RECOGNISED.get(name)
            path = self.path(name)
            try:
                status = os.lstat(path)
            except OSError:
                continue
            if not stat.S_ISREG(status.st_mode) or recognise is None:
                continue
            if name.endswith(".png") and "model.json" not in found:
                continue
            try:
                ok = recognise(path)
            except Exception:  # anything unreadable or malformed is not recognised
                ok = False
            if ok:
                found[name] = {"size": status.st_size, "mtime_ns": status.st_mtime_ns,
                               "sha256": ""}
        return found

    def _check_folder(self, written: Iterable[str]) -> list[str]:
        """Check the files a run writing ``written`` would replace or remove.

        Returns the paths of recorded files to remove (written by an earlier run, not by
        this one). Raises :class:`OutputError` naming every file in the way: one that
        gaussmix did not record (or that changed since), one that is not a regular file,
        an input of the run.
        """
        written = list(written)
        recorded = self._recorded()
        names = list(dict.fromkeys([*self.outputs, *written, *recorded]))
        remove, problems, inputs = [], [], []
        for name in names:
            path = self.path(name)
            try:
                status = os.lstat(path)
            except OSError:
                continue
            source = next((p for p in self.inputs if _same_file(p, path)), None)
            if source is not None:
                same = os.path.abspath(source) == os.path.abspath(path)
                inputs.append(source if same else f"{source} (as {path})")
                continue
            if name in recorded and _unchanged(path, status, recorded[name]):
                if name not in written:
                    remove.append(path)
                continue
            if name not in written and name not in self.outputs:
                continue  # recorded, then changed by someone else: no longer gaussmix's
            if not stat.S_ISREG(status.st_mode):
                problems.append(f"{path} ({_kind(status)})")
            elif name in recorded:
                problems.append(f"{path} (changed since gaussmix wrote it)")
            else:
                problems.append(f"{path} (not recorded in {MANIFEST})")
        manifest = self.path(MANIFEST)
        if os.path.lexists(manifest) and not os.path.isfile(manifest):
            problems.append(f"{manifest} (gaussmix's record of its files, but not a file)")
        if inputs:
            raise OutputError(
                f"the input file {_listed(inputs)} is one of the files this run would "
                f"replace or remove in the output folder {self.directory}: move the input "
                "elsewhere, or choose another output folder (-o)"
            )
        if problems:
            one = len(problems) == 1
            record = (
                f"listed in {MANIFEST}"
                if self._read_manifest() is not None
                else f"listed in {MANIFEST}; in a folder without it, as here, the outputs "
                "recognisably its own: a model file with a valid checksum, its CSV headers, "
                "its plots next to such a model.json"
            )
            raise OutputError(
                f"the output folder {self.directory} holds {_listed(problems)}, which this "
                f"run would replace or remove; gaussmix replaces only the files it wrote "
                f"there ({record}): move {'it' if one else 'them'} away, or choose another "
                "output folder (-o)"
            )
        return remove

    def _write_manifest(self, records: dict[str, dict[str, Any]], staging: str) -> None:
        """Record ``records`` as the folder's files (written in ``staging``, then renamed)."""
        doc = {"format": _MANIFEST_FORMAT, "version": 1, "files": records}
        fd, tmp = tempfile.mkstemp(prefix=".manifest.", suffix=".tmp", dir=staging)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(doc, f, indent=1, sort_keys=True)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, _file_mode())
            os.replace(tmp, self.path(MANIFEST))
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    # ---- staging and publishing

    def _create_missing(self) -> None:
        path = os.path.abspath(self.directory)
        missing = []
        while not os.path.exists(path):
            missing.append(path)
            path = os.path.dirname(path)
        for d in reversed(missing):
            try:
                os.mkdir(d)
            except FileExistsError:
                continue  # another run created it meanwhile
            except OSError as exc:
                raise OutputError(
                    f"cannot create output directory {self.directory}: {exc.strerror}"
                ) from None
            self.created.append(d)

    def _ensure(self) -> None:
        """Create the directory, lock it, clean leftovers and make the staging folder."""
        if self._staging is not None:
            return
        while self._lock_fd is None:
            self._create_missing()
            self._lock_fd = _lock_directory(self.directory, self.on_wait)
        self._clean_leftovers()
        try:
            self._staging = tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=self.directory)
        except OSError as exc:
            raise OutputError(
                f"cannot write to output directory {self.directory}: {exc.strerror}"
            ) from None

    def _clean_leftovers(self) -> None:
        """Remove staging folders and temporary files of killed runs (the lock is held)."""
        try:
            entries = sorted(os.listdir(self.directory))
        except OSError:
            return
        for entry in entries:
            path = os.path.join(self.directory, entry)
            if entry.startswith(STAGING_PREFIX) and os.path.isdir(path):
                self._finish_publishing(path)
                shutil.rmtree(path, ignore_errors=True)
                if not os.path.lexists(path):
                    self.cleaned.append(path)
        for name in self.outputs:  # single files (atomic_path, or older gaussmix versions)
            self.cleaned.extend(_remove_stale_temporaries(self.directory, name))

    def _finish_publishing(self, staging: str) -> bool:
        """Complete the publication a killed or stopped run had started (its journal lists
        its files); return whether it is complete (or there was none to complete).

        A run stopped between its first and last rename would leave a mix of two runs'
        files; its journal names the whole set (checked by that run before its first
        rename), so the rest is renamed into place, the earlier run's other recorded files
        are removed and the set is recorded, as the stopped run would have done. A file
        that appeared at one of the names since, and that gaussmix did not write, is left
        alone (and so not recorded).
        """
        try:
            with open(os.path.join(staging, _JOURNAL), encoding="utf-8") as f:
                journal = json.load(f)
        except (OSError, ValueError):
            return True  # killed before publishing: the folder still holds the earlier run
        if isinstance(journal, list):  # gaussmix versions before the record: names only
            journal = {"files": {name: None for name in journal if isinstance(name, str)}}
        files = journal.get("files") if isinstance(journal, dict) else None
        if not isinstance(files, dict):
            return True
        files = {name: record for name, record in files.items() if _plain_name(name)}
        recorded = self._recorded()  # the earlier run's files (the record is not updated yet)
        complete = True
        for name, record in files.items():
            staged, final = os.path.join(staging, name), self.path(name)
            if not os.path.isfile(staged):
                continue  # renamed already
            try:
                status = os.lstat(final)
            except FileNotFoundError:
                status = None
            except OSError:
                complete = False
                continue
            if status is not None and not (
                (name in recorded and _unchanged(final, status, recorded[name]))
                or (_valid_record(record) and _unchanged(final, status, record))
            ):
                continue  # not gaussmix's: left alone
            try:
                if status is not None:  # keep the permissions of the file replaced
                    os.chmod(staged, stat.S_IMODE(status.st_mode))
                os.replace(staged, final)
            except OSError:
                complete = False
        for name, record in recorded.items():
            path = self.path(name)
            with contextlib.suppress(OSError):
                if name not in files and _unchanged(path, os.lstat(path), record):
                    os.unlink(path)
                    self.removed.append(path)
        records = {}
        for name, record in files.items():
            path = self.path(name)
            with contextlib.suppress(OSError):
                status = os.lstat(path)
                if _valid_record(record) and _unchanged(path, status, record):
                    records[name] = record
                elif record is None and stat.S_ISREG(status.st_mode):
                    records[name] = _record(path)
        try:
            self._write_manifest(records, staging)
            _fsync_directory(self.directory)
        except OSError:
            return False
        return complete

    def path(self, name: str) -> str:
        """Final path of the file ``name``."""
        return os.path.join(self.directory, name)

    def stage(
        self,
        name: str,
        text: str | None = None,
        *,
        writer: Callable[[Any], Any] | None = None,
        save: Callable[[str], Any] | None = None,
    ) -> str:
        """Write the file ``name`` into the staging folder; return its final path.

        Parameters
        ----------
        name : str
            File name inside the directory (not hidden, no folder part).
        text : str, optional
            Content, written as UTF-8.
        writer : callable, optional
            ``writer(text_file)`` writes the content to an open text file (UTF-8, no newline
            translation).
        save : callable, optional
            ``save(path)`` writes the content to the (existing, empty) file at ``path``, for
            example a matplotlib figure's ``savefig``.
        """
        if not _plain_name(name):
            raise ValueError(f"an output file name must be a plain, not hidden name; got {name!r}")
        self._ensure()
        assert self._staging is not None
        tmp = os.path.join(self._staging, name)
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, _file_mode())
        except OSError as exc:
            raise OutputError(
                f"cannot write to output directory {self.directory}: {exc.strerror}"
            ) from None
        os.close(fd)
        self.staged.append((tmp, self.path(name)))
        if save is not None:
            save(tmp)
        else:
            with open(tmp, "w", encoding="utf-8", newline="") as f:
                if writer is not None:
                    writer(f)
                else:
                    f.write(text or "")
        _fsync_file(tmp)
        self._records[name] = _record(tmp)
        return self.path(name)

    def commit(self) -> list[str]:
        """Publish: rename every staged file onto its name, remove an earlier run's others.

        Every destination is checked first (see the class description); if one is in the
        way, :class:`OutputError` names it and nothing is renamed. A file replaced keeps
        its permission bits. Returns the final paths written; the removed files are in
        :attr:`removed`.

        Raises
        ------
        OutputError
            If a file this run would replace or remove was not written by gaussmix, or
            is one of the run's inputs.
        """
        names = [os.path.basename(final) for _, final in self.staged]
        if self._staging is None:  # nothing staged: an empty run publishes nothing
            self._release(remove_staging=True)
            return []
        remove = self._check_folder(names)
        records = {name: self._records[name] for name in names}
        journal = os.path.join(self._staging, _JOURNAL)  # a killed publication is completed
        with open(journal, "w", encoding="utf-8") as f:
            json.dump({"files": records}, f)
        _fsync_file(journal)
        # From here the set is published whole: if the renames are stopped (Ctrl-C,
        # SIGTERM, an error), the journal is used to complete them now, or, if even that is
        # stopped, by the next run into the folder (the staging folder is kept for it).
        done = []
        try:
            for tmp, final in self.staged:
                with contextlib.suppress(OSError):  # keep the permissions of the file replaced
                    os.chmod(tmp, stat.S_IMODE(os.lstat(final).st_mode))
                try:
                    os.replace(tmp, final)
                except OSError as exc:
                    raise OutputError(f"cannot write {final}: {exc.strerror or exc}") from None
                done.append(final)
            self.staged = []
            for path in remove:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
                    self.removed.append(path)
            self._write_manifest(records, self._staging)
            _fsync_directory(self.directory)
        except BaseException:
            self._complete_stopped_publication()
            raise
        self._release(remove_staging=True)
        return done

    def _complete_stopped_publication(self) -> None:
        """Complete a publication stopped after its journal was written (see commit)."""
        staging, self._staging, self.staged = self._staging, None, []
        complete = False
        try:
            assert staging is not None
            complete = self._finish_publishing(staging)
        finally:
            if complete and staging is not None:
                shutil.rmtree(staging, ignore_errors=True)
            self._release(remove_staging=False)

    def abort(self) -> None:
        """Remove the staging folder and the (empty) directories this run created."""
        self.staged = []
        if self._staging is not None:
            shutil.rmtree(self._staging, ignore_errors=True)
            self._staging = None
        # Still holding the lock: a run waiting for it then finds the directory gone and
        # creates it again, instead of writing into a directory being removed.
        for d in reversed(self.created):
            with contextlib.suppress(OSError):
                os.rmdir(d)  # only succeeds when empty
        self.created = []
        self._release(remove_staging=False)

    def _release(self, remove_staging: bool) -> None:
        if remove_staging and self._staging is not None:
            shutil.rmtree(self._staging, ignore_errors=True)
        self._staging = None
        if self._lock_fd is not None:
            if self._lock_fd >= 0:
                os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _first_line(path: str, limit: int = 1 << 16) -> str:
    with open(path, "rb") as f:
        return f.readline(limit).decode("utf-8").rstrip("\r\n")


def _is_model_file(path: str) -> bool:
    """A gaussmix model file whose checksum matches its numbers (it loads)."""
    import warnings

    doc = _document_from_json(read_model_bytes(path), path)
    if not isinstance(doc, dict) or not isinstance(doc.get("checksum"), str):
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model_from_dict(doc, path)  # raises if the checksum or any field is wrong
    return True


def _is_assignments(path: str) -> bool:
    return _first_line(path).split(",")[:4] == ["row", "label", "uncertainty", "p0"]


def _is_selection(path: str) -> bool:
    return _first_line(path).split(",")[:4] == [
        "covariance_type", "n_components", "log_likelihood", "n_parameters"
    ]


def _is_png(path: str) -> bool:
    with open(path, "rb") as f:
        return f.read(len(_PNG_SIGNATURE)) == _PNG_SIGNATURE


#: How an output of a folder without a record is recognised as gaussmix's (the plots only
#: next to a recognised model.json).
_RECOGNISED: dict[str, Callable[[str], bool]] = {
    "model.json": _is_model_file,
    "assignments.csv": _is_assignments,
    "selection.csv": _is_selection,
    "clusters.png": _is_png,
    "loglik.png": _is_png,
    "bic.png": _is_png,
}


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _listed(items: list[str]) -> str:
    if len(items) <= 2:
        return " and ".join(items)
    return ", ".join(items[:-1]) + f" and {items[-1]}"


def _lock_directory(directory: str, on_wait: Callable[[str], Any] | None) -> int | None:
    """An open descriptor of ``directory`` holding an exclusive ``flock``, waiting for it.

    Returns None if the directory was removed or replaced while waiting (a failed run
    removes the directory it created): the caller creates it again and retries. Returns -1
    (no lock) where ``flock`` does not exist.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no lock
        return -1
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError as exc:
        raise OutputError(f"cannot open output directory {directory}: {exc.strerror}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                on_wait(directory)
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:  # a file system without flock (some network mounts): no lock
            os.close(fd)
            return -1
        held = os.fstat(fd)
        try:
            now = os.stat(directory)
        except FileNotFoundError:
            now = None
    except BaseException:
        os.close(fd)
        raise
    if now is None or (now.st_dev, now.st_ino) != (held.st_dev, held.st_ino):
        os.close(fd)
        return None
    return fd


@contextlib.contextmanager
def staged_outputs(
    directory: str,
    outputs: Iterable[str] = (),
    on_wait: Callable[[str], Any] | None = None,
    inputs: Iterable[str | os.PathLike[str]] = (),
) -> Iterator[OutputDir]:
    """An :class:`OutputDir` for ``directory`` that is aborted if the block raises."""
    out = OutputDir(directory, outputs, on_wait, inputs)
    try:
        yield out
    except BaseException:
        out.abort()
        raise
    if out.staged or out._lock_fd is not None:  # the block did not commit: publish nothing
        out.abort()


# --------------------------------------------------------------------------------------
# Writing


def _gaussmix_version() -> str:
    from gaussmix import __version__

    return __version__


def _float_list(a: np.ndarray) -> Any:
    """Nested lists of Python floats; float(x) of a float64 reprs as its shortest round trip."""
    return np.asarray(a, dtype=np.float64).tolist()


def _json_param(name: str, value: Any) -> Any:
    """A constructor parameter as a JSON value (None for what JSON cannot hold faithfully)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        value = float(value)
        return value if math.isfinite(value) else None
    if name in _ARRAY_PARAMS:
        arr = np.asarray(value, dtype=np.float64)
        return arr.tolist() if np.all(np.isfinite(arr)) else None
    # e.g. a numpy RandomState or Generator as random_state: not reproducible from a file.
    return None


def _check_fitted(model: Any) -> None:
    missing = [
        a
        for a in ("weights_", "means_", "covariances_", "precisions_cholesky_")
        if not hasattr(model, a)
    ]
    if missing:
        raise NotFittedError(
            f"This {type(model).__name__} instance is not fitted yet (no {missing[0]}); "
            "call fit(X) before saving it."
        )


def model_to_dict(
    model: Any,
    *,
    n_samples: int | None = None,
    feature_names: list[str] | None = None,
) -> dict[str, Any]:
    """The JSON-ready dict of a fitted model (see the module docstring for the layout).

    Parameters
    ----------
    model : GaussianMixture
        A fitted gaussmix (or scikit-learn) GaussianMixture.
    n_samples : int, optional
        Number of training samples, if known (written to the training summary).
    feature_names : list of str, optional
        Names of the features (default: ``model.feature_names_in_`` if set).

    Returns
    -------
    dict
    """
    _check_fitted(model)
    means = np.asarray(model.means_)
    dtype_name = "float32" if means.dtype == np.float32 else "float64"
    arrays = {
        "weights": model.weights_,
        "means": model.means_,
        "covariances": model.covariances_,
        "precisions_cholesky": model.precisions_cholesky_,
    }
    if hasattr(model, "precisions_"):
        arrays["precisions"] = model.precisions_
    for field, value in arrays.items():
        if not np.all(np.isfinite(np.asarray(value, dtype=np.float64))):
            raise ValueError(
                f"cannot save a model whose {field} contain NaN or infinity; refit it "
                "(increase reg_covar, or scale the input data)."
            )
    n_components, n_features = means.shape
    params = {}
    if hasattr(model, "get_params"):
        all_params = model.get_params(deep=False)
        params = {k: _json_param(k, all_params[k]) for k in _PARAM_NAMES if k in all_params}
        # The prior as the hyperparameters the fit resolved (a loaded model refits the same).
        resolved = getattr(model, "prior_", None)
        if "prior" in params:
            params["prior"] = None if resolved is None else resolved.to_dict()
    if feature_names is None:
        feature_names = getattr(model, "feature_names_in_", None)
    if feature_names is not None:
        if len(feature_names) != n_features:
            raise ValueError(
                f"feature_names has {len(feature_names)} names but the model has "
                f"{n_features} features."
            )
        feature_names = [str(name) for name in feature_names]
    if n_samples is None:
        n_samples = getattr(model, "n_samples_fit_", None)

    def finite_or_none(x: Any) -> float | None:
        if x is None:
            return None
        x = float(x)
        return x if math.isfinite(x) else None

    lower_bounds = getattr(model, "lower_bounds_", None)
    degenerate_reason = getattr(model, "degenerate_reason_", None)
    training = {
        "converged": bool(getattr(model, "converged_", False)),
        "n_iter": int(getattr(model, "n_iter_", 0)),
        "lower_bound": finite_or_none(getattr(model, "lower_bound_", None)),
        "lower_bounds": (
            None if lower_bounds is None else [finite_or_none(x) for x in lower_bounds]
        ),
        "n_samples": None if n_samples is None else int(n_samples),
        # the fit's total sample weight (rows, without weights): what partial_fit after
        # loading counts the fit as (gaussmix._online.step_size)
        **({} if getattr(model, "_fit_weight", None) is None
           else {"weight_sum": float(model._fit_weight)}),
        "reg_covar": params.get("reg_covar"),
        "tol": params.get("tol"),
        "random_state": params.get("random_state"),
        "degenerate": bool(getattr(model, "degenerate_", False)),
        "degenerate_reason": None if degenerate_reason is None else str(degenerate_reason),
    }
    doc: dict[str, Any] = {
        "format": FORMAT_NAME,
        "version": _file_version(families.of_model(model)),
        "gaussmix_version": _gaussmix_version(),
        "covariance_type": families.of_model(model).name,
        "n_components": int(n_components),
        "n_features": int(n_features),
        "dtype": dtype_name,
        "feature_names": feature_names,
    }
    doc.update({field: _float_list(value) for field, value in arrays.items()})
    doc["training"] = training
    doc["params"] = params
    doc["online"] = _online_to_dict(model)
    doc["checksum"] = model_checksum(doc)
    return doc


def _file_version(family: families.CovarianceFamily) -> int:
    """The format version a model of ``family`` is written with: the lowest that holds it.

    Version 3 for mclust's ten models that scikit-learn does not have (an older gaussmix then
    says "upgrade gaussmix" instead of refusing the covariance type), version 2 for
    scikit-learn's four.
    """
    return _SKLEARN_FORMAT_VERSION if family.mclust_name != family.name else FORMAT_VERSION


def _online_to_dict(model: Any) -> dict[str, Any] | None:
    """partial_fit's running statistics and step count, or None (see the module docstring)."""
    stats = getattr(model, "running_statistics_", None)
    if stats is None:
        return None
    fields = {"shift": stats.shift, "nk": stats.nk, "s1": stats.s1, "s2": stats.s2}
    for name, value in fields.items():
        if not np.all(np.isfinite(value)):
            raise ValueError(f"cannot save running statistics whose {name} are not finite")
    batch_weight = getattr(model, "batch_weight_", None)
    return {
        "n_batch_iter": int(model.n_batch_iter_),
        **({} if batch_weight is None else {"batch_weight": float(batch_weight)}),
        "statistics": {
            **{name: _float_list(value) for name, value in fields.items()},
            "log_likelihood": float(stats.log_likelihood),
            "weight_sum": float(stats.weight_sum),
        },
    }


def _online_from_dict(
    chk: _Checker, online: Any, family: families.CovarianceFamily, k: int, d: int
) -> tuple[int, Any] | None:
    """The step count, SufficientStatistics and mean batch weight (None if not recorded)
    of a file's ``online`` field (or None)."""
    if online is None:
        return None
    if not isinstance(online, dict):
        raise chk.fail("online", f"must be an object or null, got {_describe(online)}")
    from .stats import SufficientStatistics

    n_batch_iter = chk.integer(chk.get(online, "n_batch_iter", "online.n_batch_iter"),
                               "online.n_batch_iter", minimum=1)
    stats = chk.get(online, "statistics", "online.statistics")
    if not isinstance(stats, dict):
        raise chk.fail("online.statistics", f"must be an object, got {_describe(stats)}")
    shapes = {"shift": (k, d), "nk": (k,), "s1": (k, d), "s2": family.covariance_shape(k, d)}
    arrays = {
        name: chk.array(chk.get(stats, name, f"online.statistics.{name}"),
                        f"online.statistics.{name}", shape, np.float64)
        for name, shape in shapes.items()
    }
    if np.any(arrays["nk"] < 0):
        raise chk.fail("online.statistics.nk", "must be >= 0")
    log_likelihood = chk.number(
        chk.get(stats, "log_likelihood", "online.statistics.log_likelihood"),
        "online.statistics.log_likelihood",
    )
    weight_sum = chk.number(
        chk.get(stats, "weight_sum", "online.statistics.weight_sum"),
        "online.statistics.weight_sum",
    )
    if weight_sum <= 0:
        raise chk.fail("online.statistics.weight_sum", f"must be > 0, got {weight_sum!r}")
    running = SufficientStatistics(
        family.name, arrays["shift"], arrays["nk"], arrays["s1"], arrays["s2"],
        log_likelihood, weight_sum, None,
    )
    batch_weight = online.get("batch_weight")  # absent from files before it existed
    if batch_weight is not None:
        batch_weight = chk.number(batch_weight, "online.batch_weight")
        if not batch_weight > 0:
            raise chk.fail("online.batch_weight", f"must be > 0, got {batch_weight!r}")
    return n_batch_iter, running, batch_weight


# What the checksum covers: everything that decides the model's predictions.
_CHECKSUM_FIELDS = (
    "covariance_type",
    "n_components",
    "n_features",
    "dtype",
    "weights",
    "means",
    "covariances",
    "precisions_cholesky",
    "precisions",
)


def model_checksum(doc: dict[str, Any]) -> str:
    """``"sha256:..."`` of the fields of a model document that decide its predictions.

    The hash is over a canonical JSON text of those fields (sorted keys, no spaces); JSON
    floats round-trip exactly, so the checksum of a document read back from its file equals
    the one written. Feature names, the training record and the settings are not covered:
    they can be edited by hand without changing what the model computes.
    """
    covered = [doc.get(field) for field in _CHECKSUM_FIELDS]
    text = json.dumps(covered, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def model_to_json(
    model: Any, *, n_samples: int | None = None, feature_names: list[str] | None = None
) -> str:
    """The model file text of a fitted model (see :func:`save_model`).

    Parameters
    ----------
    model : GaussianMixture
        A fitted model.
    n_samples : int, optional
        Number of training samples, recorded in the training summary.
    feature_names : list of str, optional
        Feature names to record (default: ``model.feature_names_in_`` if set).

    Returns
    -------
    str
        The JSON text, ending with a newline.
    """
    doc = model_to_dict(model, n_samples=n_samples, feature_names=feature_names)
    return _dumps(doc) + "\n"


def _dumps(obj: Any, level: int = 0) -> str:
    """JSON with objects indented and each innermost list of numbers on one line."""
    pad = "  " * (level + 1)
    if isinstance(obj, dict):
        if not obj:
            return "{}"
        items = [f"{pad}{json.dumps(str(k))}: {_dumps(v, level + 1)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + "  " * level + "}"
    if isinstance(obj, list) and any(isinstance(v, (list, dict)) for v in obj):
        items = [pad + _dumps(v, level + 1) for v in obj]
        return "[\n" + ",\n".join(items) + "\n" + "  " * level + "]"
    return json.dumps(obj, allow_nan=False)


def save_model(
    model: Any,
    path: str | os.PathLike[str],
    *,
    n_samples: int | None = None,
    feature_names: list[str] | None = None,
) -> None:
    """Save a fitted GaussianMixture to a JSON model file, atomically.

    Parameters
    ----------
    model : GaussianMixture
        A fitted model.
    path : str or path-like
        Destination (conventionally ``*.json``). Written to a temporary file in the same
        directory, flushed and renamed, so a failure leaves no partial file; an existing
        file keeps its permissions, a symbolic link is followed (its target replaced, the
        link kept), and a device or FIFO (``/dev/null``, a named pipe) is written directly
        (see :func:`atomic_path`).
    n_samples : int, optional
        Number of training samples, recorded in the training summary.
    feature_names : list of str, optional
        Feature names to record (default: ``model.feature_names_in_`` if set).

    Raises
    ------
    NotFittedError
        If the model is not fitted.
    FileNotFoundError, IsADirectoryError
        If the folder of ``path`` does not exist, or ``path`` is a folder (the message
        names ``path`` and the fix).
    OSError
        If the directory is not writable, or writing fails (the message names ``path``).

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from gaussmix import GaussianMixture
    >>> X = np.random.default_rng(0).normal(size=(50, 2))
    >>> gm = GaussianMixture(2, random_state=0).fit(X)
    >>> path = os.path.join(tempfile.mkdtemp(), "model.json")
    >>> save_model(gm, path)
    >>> bool((load_model(path).predict(X) == gm.predict(X)).all())
    True
    """
    write_atomic(path, model_to_json(model, n_samples=n_samples, feature_names=feature_names))


# --------------------------------------------------------------------------------------
# Reading and validation


class _Checker:
    """Field checks that raise ModelFileError with the source and the field name."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, field: str | None, problem: str) -> ModelFileError:
        where = f" field {field!r}" if field else ""
        return ModelFileError(f"invalid model file {self.source}:{where} {problem}")

    def get(self, obj: dict[str, Any], key: str, field: str | None = None) -> Any:
        if key not in obj:
            raise self.fail(field or key, "is missing")
        return obj[key]

    def integer(self, value: Any, field: str, minimum: int | None = None) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(field, f"must be an integer, got {_describe(value)}")
        if minimum is not None and value < minimum:
            raise self.fail(field, f"must be >= {minimum}, got {value}")
        return value

    def number(self, value: Any, field: str, allow_none: bool = False) -> float | None:
        if value is None and allow_none:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(field, f"must be a number, got {_describe(value)}")
        number = _as_float(value)
        if number is None:
            raise self.fail(field, f"is out of range: {_describe(value)}")
        if not math.isfinite(number):
            raise self.fail(field, f"must be finite, got {number}")
        return number

    def boolean(self, value: Any, field: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(field, f"must be true or false, got {_describe(value)}")
        return value

    def array(self, value: Any, field: str, shape: tuple[int, ...], dtype: type) -> np.ndarray:
        """A nested list of numbers of exactly ``shape``, as a finite array of ``dtype``."""
        self._check_nesting(value, field, shape, ())
        arr = np.array(value, dtype=np.float64)
        if not np.all(np.isfinite(arr)):
            bad = tuple(int(i) for i in np.argwhere(~np.isfinite(arr))[0])
            raise self.fail(field, f"contains a non-finite value {arr[bad]} at index {bad}")
        with np.errstate(over="ignore"):
            out = arr.astype(dtype)
        if not np.all(np.isfinite(out)):
            raise self.fail(field, f"overflows {np.dtype(dtype).name}")
        return out

    def _check_nesting(
        self, value: Any, field: str, shape: tuple[int, ...], index: tuple[int, ...]
    ) -> None:
        where = f" at index {index}" if index else ""
        if not shape:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise self.fail(field, f"must contain numbers, got {_describe(value)}{where}")
            if _as_float(value) is None:
                raise self.fail(field, f"contains a number out of range{where}")
            return
        if not isinstance(value, list):
            raise self.fail(
                field,
                f"must be a list of length {shape[0]} (expected shape {_shape_str(shape)}), "
                f"got {_describe(value)}{where}",
            )
        if len(value) != shape[0]:
            raise self.fail(
                field,
                f"has length {len(value)}{where}, expected {shape[0]} "
                f"(expected shape {_shape_str(shape)})",
            )
        for i, v in enumerate(value):
            self._check_nesting(v, field, shape[1:], (*index, i))


def _as_float(value: int | float) -> float | None:
    """``float(value)``, or None for an integer too large for a float (e.g. 10**400)."""
    try:
        return float(value)
    except OverflowError:
        return None


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"the string {value[:40]!r}" + (" (shortened)" if len(value) > 40 else "")
    if isinstance(value, list):
        return f"a list of length {len(value)}"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, int) and abs(value) >= 10**20:
        return f"an integer of about {int(value.bit_length() * math.log10(2)) + 1} digits"
    return repr(value)


def _shape_str(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def _check_covariances(
    chk: _Checker,
    family: families.CovarianceFamily,
    covariances: np.ndarray,
    precisions_cholesky: np.ndarray,
    precisions: np.ndarray | None,
    k: int,
    d: int,
) -> None:
    """Symmetric positive definite covariances, consistent with the stored precisions."""
    cov = family.stored_matrices(covariances.astype(np.float64), k, d)
    for suffix, c in cov:
        name = "covariances" + suffix
        scale = max(float(np.max(np.abs(c))), np.finfo(np.float64).tiny)
        if np.max(np.abs(c - c.T)) > 1e-8 * scale:
            raise chk.fail(name, "is not symmetric")
        try:
            np.linalg.cholesky(c)
        except np.linalg.LinAlgError:
            raise chk.fail(
                name,
                "is not positive definite (its Cholesky factorisation fails); the file is "
                "damaged or was edited by hand",
            ) from None
    # The precision Cholesky factor L satisfies L Lᵀ = Σ⁻¹; check Σ L Lᵀ ≈ I.
    pchol = precisions_cholesky.astype(np.float64)
    if not family.correlated:  # variances: L = 1 / sqrt(variance), elementwise
        if np.any(pchol <= 0):
            raise chk.fail("precisions_cholesky", "must be positive")
        ok = np.abs(covariances.astype(np.float64) * pchol**2 - 1.0)
        tol = 1e-4 if covariances.dtype == np.float32 else 1e-8
        if not np.max(ok) <= tol:
            raise chk.fail("precisions_cholesky", "does not match covariances")
    else:
        chol = family.stored_matrices(pchol, k, d)
        eps = float(np.finfo(covariances.dtype).eps)
        for (_, c), (suffix, lc) in zip(cov, chol, strict=True):
            _check_triangular_factor(chk, "precisions_cholesky" + suffix, lc)
            prec = lc @ lc.T
            eig = np.linalg.eigvalsh(c)
            cond = float(eig[-1] / eig[0]) if eig[0] > 0 else math.inf
            with np.errstate(over="ignore", invalid="ignore"):
                err = float(np.max(np.abs(c @ prec - np.eye(d))))
            if not err <= 1e-6 + 1e3 * d * eps * cond:
                raise chk.fail(
                    "precisions_cholesky" + suffix,
                    "does not match covariances (it must be the Cholesky "
                    "factor of the inverse covariance)",
                )
    if precisions is not None:
        expected = family.precisions_from_cholesky(pchol)
        got = precisions.astype(np.float64)
        scale = max(float(np.max(np.abs(expected))), np.finfo(np.float64).tiny)
        tol = 1e-4 if covariances.dtype == np.float32 else 1e-10
        if not np.max(np.abs(expected - got)) <= tol * scale:
            raise chk.fail("precisions", "does not match precisions_cholesky")


def _check_constraint(
    chk: _Checker, family: families.CovarianceFamily, covariances: np.ndarray, k: int, d: int
) -> None:
    """The covariances satisfy the family's constraint (mclust's Sigma_k = lambda_k D_k A_k D_k^T).

    Read from the family's own words, ``volume``, ``shape`` and ``orientation`` ("equal",
    "variable", "identity" or "axis-aligned"): an equal volume is an equal ``det^(1/D)``, an
    equal shape equal eigenvalues after dividing by it (the diagonal, in feature order, for
    axis-aligned models), an equal orientation covariances that commute (share their
    eigenvectors), and an equal shape and orientation covariances that are multiples of one
    matrix. Identity shapes and axis-aligned orientations are kept by the storage itself
    ((K,) variances, (K, D) diagonals), and a shared covariance (tied) is stored once.

    The tolerance is a relative difference: 1e-6 (1e-4 for float32 files), widened by the
    rounding of the eigenvalues of ill-conditioned matrices (``D * eps * condition number``),
    so that every file gaussmix writes loads, while a hand edit that breaks the constraint
    (a file whose checksum was removed) is refused naming the field and the constraint.
    """
    if family.shared or k == 1:
        return
    equal = {p: getattr(family, p) == "equal" for p in ("volume", "shape", "orientation")}
    if not any(equal.values()):
        return
    eps = float(np.finfo(covariances.dtype).eps)
    cov = (
        family.full_covariances(covariances, k, d)
        if family.correlated
        else np.asarray(covariances, dtype=np.float64)
    )
    base = 1e-6 if covariances.dtype == np.float64 else 1e-4

    def fail(constraint: str, where: str) -> ModelFileError:
        return chk.fail(
            "covariances",
            f"break the {family.mclust_name} model's constraint ({family.description}): "
            f"{constraint}, but {where}. The file is damaged or was edited by hand",
        )

    def first_differing(values: np.ndarray, tol: Any) -> int | None:
        """The first component whose ``values`` differ from component 0's by more than
        ``tol`` (a number, or one per value and component)."""
        values = values.reshape(k, -1)
        tol = np.broadcast_to(np.asarray(tol, dtype=np.float64).reshape(k, -1)
                              if np.ndim(tol) else tol, values.shape)
        bad = np.flatnonzero(~np.all(np.abs(values - values[:1]) <= tol, axis=1))
        return int(bad[0]) if bad.size else None

    if family.orientation == "axis-aligned" or family.shape == "identity":
        # (K,) variances or (K, D) diagonals: elementwise logs, exact to rounding.
        log_var = np.log(cov.reshape(k, -1))
        if family.shape == "identity":
            log_var = np.repeat(log_var, d, axis=1)
        log_volume = log_var.mean(axis=1)
        if equal["volume"]:
            bad = first_differing(log_volume, base)
            if bad is not None:
                raise fail(
                    "every component must have the same volume (the product of its variances)",
                    f"component {bad}'s differs from component 0's",
                )
        if equal["shape"]:
            bad = first_differing(log_var - log_volume[:, None], base)
            if bad is not None:
                raise fail(
                    "every component's variances must be proportional to component 0's "
                    "(equal shape)",
                    f"component {bad}'s are not",
                )
        return
    eigval = np.linalg.eigvalsh(cov)
    if not np.all(eigval[:, 0] > 0):
        return  # singular to rounding: the constraint cannot be told from rounding
    if equal["volume"]:
        # log det from the Cholesky factor: its rounding follows the condition number of
        # the correlation matrix (features on different scales do not widen it).
        log_volume = 2.0 * np.log(np.diagonal(np.linalg.cholesky(cov), axis1=1, axis2=2))
        log_volume = log_volume.sum(axis=1) / d
        sd = np.sqrt(np.diagonal(cov, axis1=1, axis2=2))
        corr_eig = np.linalg.eigvalsh(cov / (sd[:, :, None] * sd[:, None, :]))
        # Per component: its rounding and component 0's (an edit cannot widen component
        # 0's, and scaling a covariance leaves its correlations as they are).
        cond = corr_eig[:, -1] / np.maximum(corr_eig[:, 0], np.finfo(np.float64).tiny)
        bad = first_differing(log_volume, base + 4.0 * d * eps * (cond + cond[0]))
        if bad is not None:
            raise fail(
                "every component must have the same volume (determinant)",
                f"component {bad}'s differs from component 0's",
            )
    if equal["shape"] and equal["orientation"]:
        # Multiples of one matrix: the matrices scaled to a unit norm agree. Each feature is
        # first divided by a scale common to all components (which keeps multiples
        # multiples), so that a feature of small variance counts as much as the others.
        scale = np.sqrt(np.diagonal(cov, axis1=1, axis2=2).mean(axis=0))
        unit = cov / (scale[:, None] * scale[None, :])
        unit = unit / np.linalg.norm(unit, axis=(1, 2))[:, None, None]
        bad = first_differing(unit, base)
        if bad is not None:
            raise fail(
                "every component's covariance must be a multiple of component 0's (equal "
                "shape and orientation)",
                f"component {bad}'s is not",
            )
    elif equal["shape"]:
        # Proportional eigenvalues: equal ratios to the largest. Eigenvalue i is rounded by
        # about eps times the largest, a relative error of eps * largest / eigenvalue i; of
        # two components with equal shapes that bound is the same, so the smaller of the
        # two is taken (an edit that makes one component ill-conditioned cannot widen it).
        ratio = eigval / eigval[:, -1:]
        rounding = np.minimum(1.0 / ratio, 1.0 / ratio[:1])
        bad = first_differing(np.log(ratio), base + 8.0 * d * eps * rounding)
        if bad is not None:
            raise fail(
                "every component's eigenvalues must be proportional to component 0's "
                "(equal shape)",
                f"component {bad}'s are not",
            )
    elif equal["orientation"]:
        bad = _not_commuting(cov, eigval[:, -1], base)
        if bad is not None:
            raise fail(
                "all components must share their eigenvectors (equal orientation)",
                f"component {bad}'s covariance does not commute with the others'",
            )


def _not_commuting(cov: np.ndarray, largest: np.ndarray, tol: float) -> int | None:
    """A component whose covariance does not commute with the others', or None.

    Quick test: every matrix is diagonal (to ``tol`` times its largest eigenvalue) in the
    eigenvectors of a combination of them all (the families' ``common_eigenvectors``). Only
    if that fails (or the combination's eigenvectors are ill-determined) are the matrices
    compared pairwise, ``|S_i S_j - S_j S_i|`` for unit-norm S, which rounding alone keeps
    near eps whatever their eigenvalues.
    """
    d = cov.shape[-1]
    basis = common_eigenvectors(cov)
    rotated = np.swapaxes(basis, 0, 1) @ cov @ basis
    off = np.abs(rotated * (1.0 - np.eye(d))).max(axis=(1, 2)) / largest
    if np.all(off <= tol):
        return None
    unit = cov / np.linalg.norm(cov, axis=(1, 2))[:, None, None]
    for i in range(len(unit)):
        product = unit[i] @ unit[i + 1:]
        error = np.max(np.abs(product - np.swapaxes(product, 1, 2)), axis=(1, 2), initial=0.0)
        bad = np.flatnonzero(~(error <= tol))
        if bad.size:
            return i + 1 + int(bad[0])
    return None


def _check_triangular_factor(chk: _Checker, field: str, factor: np.ndarray) -> None:
    """An upper-triangular matrix with a positive diagonal (the unique Cholesky factor).

    ``L`` and ``L Q`` (Q orthogonal, e.g. a column with its sign flipped) give the same
    precision ``L Lᵀ``, but only the triangular factor with a positive diagonal gives the
    right log-determinant; anything else is a damaged file.
    """
    below = np.tril(factor, -1)
    if np.any(below != 0):
        i, j = (int(v) for v in np.argwhere(below != 0)[0])
        raise chk.fail(
            field,
            f"must be upper triangular (the Cholesky factor of the precision), but entry "
            f"({i}, {j}) below the diagonal is {factor[i, j]!r}",
        )
    diagonal = np.diagonal(factor)
    if not np.all(diagonal > 0):
        j = int(np.argmin(diagonal > 0))
        raise chk.fail(
            field, f"must have a positive diagonal, but entry ({j}, {j}) is {diagonal[j]!r}"
        )


def _check_checksum(chk: _Checker, doc: dict[str, Any]) -> None:
    """The file's checksum, if it has one, matches its numbers (see :func:`model_checksum`).

    Files written by gaussmix carry one; files without it (hand-made, or from versions
    before it) are accepted on the other checks alone.
    """
    if "checksum" not in doc:
        return
    stored = doc["checksum"]
    if not isinstance(stored, str):
        raise chk.fail("checksum", f"must be a string, got {_describe(stored)}")
    if stored != model_checksum(doc):
        raise chk.fail(
            "checksum",
            "does not match the model's numbers: the file was changed after gaussmix wrote "
            "it (damaged, or edited by hand; to accept hand edits, delete the checksum field)",
        )


def _estimator_class() -> type:
    from gaussmix import GaussianMixture

    return GaussianMixture


def model_from_dict(doc: Any, source: str = "<model>") -> Any:
    """Validate a decoded model file and build the fitted GaussianMixture.

    Parameters
    ----------
    doc : object
        The decoded JSON document.
    source : str
        File name used in error messages.

    Returns
    -------
    GaussianMixture
        A fitted :class:`gaussmix.GaussianMixture`.

    Raises
    ------
    ModelFileError
        If anything in the document is invalid.
    """
    chk = _Checker(source)
    if not isinstance(doc, dict):
        raise chk.fail(None, f"the top level must be a JSON object, got {_describe(doc)}")
    if doc.get("format") != FORMAT_NAME:
        raise chk.fail(
            "format",
            f"must be {FORMAT_NAME!r}, got {_describe(doc.get('format'))}: "
            "this is not a gaussmix model file",
        )
    version = chk.integer(chk.get(doc, "version"), "version", minimum=1)
    if version > FORMAT_VERSION:
        raise chk.fail(
            "version",
            f"is {version}, but this gaussmix reads model files up to version "
            f"{FORMAT_VERSION}; upgrade gaussmix",
        )
    covariance_type = chk.get(doc, "covariance_type")
    # A file holds scikit-learn's name.
    if not isinstance(covariance_type, str) or covariance_type not in COVARIANCE_TYPES:
        raise chk.fail(
            "covariance_type",
            f"must be one of {', '.join(COVARIANCE_TYPES)}; got {_describe(covariance_type)}",
        )
    family = families.get(covariance_type)
    k = chk.integer(chk.get(doc, "n_components"), "n_components", minimum=1)
    d = chk.integer(chk.get(doc, "n_features"), "n_features", minimum=1)
    dtype_name = chk.get(doc, "dtype")
    if not isinstance(dtype_name, str) or dtype_name not in _DTYPES:
        raise chk.fail("dtype", f"must be 'float64' or 'float32', got {_describe(dtype_name)}")
    dtype = _DTYPES[dtype_name]

    feature_names = doc.get("feature_names")
    if feature_names is not None:
        if (
            not isinstance(feature_names, list)
            or len(feature_names) != d
            or not all(isinstance(n, str) for n in feature_names)
        ):
            raise chk.fail(
                "feature_names", f"must be null or a list of {d} strings (one per feature)"
            )

    weights = chk.array(chk.get(doc, "weights"), "weights", (k,), dtype)
    if np.any(weights < 0):
        raise chk.fail("weights", f"must be >= 0, got {float(np.min(weights))!r}")
    total = float(np.sum(weights, dtype=np.float64))
    tol = 1e-4 if dtype == np.float32 else 1e-6
    if abs(total - 1.0) > tol:
        raise chk.fail("weights", f"must sum to 1, they sum to {total!r}")
    means = chk.array(chk.get(doc, "means"), "means", (k, d), dtype)
    cov_shape = family.covariance_shape(k, d)
    covariances = chk.array(chk.get(doc, "covariances"), "covariances", cov_shape, dtype)
    precisions_cholesky = chk.array(
        chk.get(doc, "precisions_cholesky"), "precisions_cholesky", cov_shape, dtype
    )
    precisions = None
    if doc.get("precisions") is not None:
        precisions = chk.array(doc["precisions"], "precisions", cov_shape, dtype)
    with np.errstate(all="ignore"):  # huge entries overflow: the checks then fail cleanly
        _check_covariances(chk, family, covariances, precisions_cholesky, precisions, k, d)
        _check_constraint(chk, family, covariances, k, d)

    _check_checksum(chk, doc)

    training = doc.get("training") or {}
    if not isinstance(training, dict):
        raise chk.fail("training", f"must be an object, got {_describe(training)}")
    converged = chk.boolean(training.get("converged", False), "training.converged")
    n_iter = chk.integer(training.get("n_iter", 0), "training.n_iter", minimum=0)
    lower_bound = chk.number(training.get("lower_bound"), "training.lower_bound", True)
    lower_bounds = training.get("lower_bounds")
    if lower_bounds is not None:
        if not isinstance(lower_bounds, list):
            raise chk.fail("training.lower_bounds", "must be a list of numbers or null")
        lower_bounds = [
            chk.number(x, f"training.lower_bounds[{i}]", True) for i, x in enumerate(lower_bounds)
        ]
    n_samples = training.get("n_samples")
    if n_samples is not None:
        chk.integer(n_samples, "training.n_samples", minimum=1)
    fit_weight = training.get("weight_sum")  # absent from files before it existed
    if fit_weight is not None:
        fit_weight = chk.number(fit_weight, "training.weight_sum")
        if not fit_weight > 0:
            raise chk.fail("training.weight_sum", f"must be > 0, got {fit_weight!r}")
    degenerate = chk.boolean(training.get("degenerate", False), "training.degenerate")
    degenerate_reason = training.get("degenerate_reason")
    if degenerate_reason is not None and not isinstance(degenerate_reason, str):
        raise chk.fail("training.degenerate_reason", "must be a string or null")

    params = doc.get("params") or {}
    if not isinstance(params, dict):
        raise chk.fail("params", f"must be an object, got {_describe(params)}")
    cls = _estimator_class()
    known = set(cls().get_params(deep=False))
    kwargs = {name: value for name, value in params.items() if name in known}
    kwargs["n_components"] = k
    kwargs["covariance_type"] = covariance_type
    shapes = {"weights_init": (k,), "means_init": (k, d), "precisions_init": cov_shape}
    for name in _ARRAY_PARAMS:
        if kwargs.get(name) is not None:
            kwargs[name] = chk.array(kwargs[name], f"params.{name}", shapes[name], np.float64)
    try:
        with np.errstate(all="ignore"):
            model = cls(**kwargs)
            check_parameters(model)  # the estimator's own checks (run by fit, not __init__)
            check_schedule(model.learning_offset, model.learning_decay)
    except (TypeError, ValueError, OverflowError) as exc:
        raise chk.fail("params", f"are not valid GaussianMixture parameters: {exc}") from None

    if precisions is None:
        precisions = family.precisions_from_cholesky(precisions_cholesky)
    model.weights_ = weights
    model.means_ = means
    model.covariances_ = covariances
    model.precisions_cholesky_ = precisions_cholesky
    model.precisions_ = precisions
    model.converged_ = converged
    model.n_iter_ = n_iter
    model.lower_bound_ = -math.inf if lower_bound is None else lower_bound
    model.lower_bounds_ = [] if lower_bounds is None else lower_bounds
    model.n_features_in_ = d
    model.degenerate_ = degenerate
    model.degenerate_reason_ = degenerate_reason
    if feature_names is not None:
        model.feature_names_in_ = np.asarray(feature_names, dtype=object)
    if n_samples is not None:
        model.n_samples_fit_ = n_samples
    if fit_weight is not None:
        model._fit_weight = fit_weight
    if getattr(model, "prior", None) is not None:
        from ._prior import resolve_prior

        # A file holds the hyperparameters the fit resolved, all four: a missing one
        # would take a default built from data the file does not have (the mean was
        # silently zero; a missing scale was numpy's "cannot reshape" error).
        missing = [key for key in ("shrinkage", "mean", "dof", "scale")
                   if not isinstance(model.prior, dict) or key not in model.prior]
        if missing:
            raise chk.fail(
                "params.prior",
                "must be the fit's resolved hyperparameters, a mapping with shrinkage, "
                f"mean, dof and scale; {', '.join(missing)} missing (got "
                f"{str(model.prior)[:60]!r})",
            )
        try:
            model.prior_ = resolve_prior(model.prior, family, k, np.zeros(d), None)
        except (TypeError, ValueError) as exc:
            raise chk.fail("params.prior", str(exc)) from None
    online = _online_from_dict(chk, doc.get("online"), family, k, d)
    if online is not None:
        model.n_batch_iter_, model.running_statistics_, batch_weight = online
        if batch_weight is not None:
            model.batch_weight_ = batch_weight
    return model


def model_from_json(text: str | bytes, source: str = "<model>") -> Any:
    """Parse and validate model file text; see :func:`load_model`.

    Parameters
    ----------
    text : str or bytes
        The file's content (bytes are decoded as UTF-8).
    source : str
        File name used in error messages.

    Returns
    -------
    GaussianMixture
        A fitted :class:`gaussmix.GaussianMixture`.

    Raises
    ------
    ModelFileError
        If the text is not a valid model file.
    """
    return model_from_dict(_document_from_json(text, source), source)


def _unclosed(text: str) -> bool:
    """Whether a JSON text ends inside a string, an object or an array: what a file cut
    short looks like, wherever the cut fell (in a number, a string, between items)."""
    depth, in_string, escaped = 0, False, False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
    return in_string or depth > 0


def _document_from_json(text: str | bytes, source: str) -> Any:
    """The decoded JSON document of model file text (not yet validated)."""
    chk = _Checker(source)
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise chk.fail(None, f"is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    if not text.strip():
        raise chk.fail(None, "the file is empty")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        hint = " (the file looks truncated)" if _unclosed(text) else ""
        raise chk.fail(
            None, f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}{hint}"
        ) from None
    except RecursionError:
        raise chk.fail(None, "not valid JSON: nested too deeply") from None
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        raise chk.fail(None, f"not valid JSON: {exc}") from None
    return doc


def _max_model_bytes() -> int:
    """The size limit for model files: ``GAUSSMIX_MAX_MODEL_MB`` megabytes, default 64."""
    text = os.environ.get(MAX_MODEL_SIZE_ENV, "").strip()
    if not text:
        return DEFAULT_MAX_MODEL_MB * 2**20
    try:
        megabytes = float(text)
    except ValueError:
        megabytes = math.nan
    if not (megabytes > 0 and math.isfinite(megabytes)):
        raise ValueError(
            f"{MAX_MODEL_SIZE_ENV} must be a positive number of megabytes; got {text!r}"
        )
    return int(megabytes * 2**20)


def read_model_bytes(path: str | os.PathLike[str], max_bytes: int | None = None) -> bytes:
    """The content of a model file, refusing files larger than ``max_bytes``.

    Reads at most ``max_bytes + 1`` bytes, so an endless source (``/dev/zero``, a pipe)
    stops at the limit instead of filling the memory.

    Parameters
    ----------
    path : str or path-like
        The file.
    max_bytes : int, optional
        The limit; default ``GAUSSMIX_MAX_MODEL_MB`` megabytes from the environment, or 64 MB.

    Raises
    ------
    ModelFileError
        If the file is larger than the limit.
    FileNotFoundError, IsADirectoryError
        If there is no file at ``path``, or it is a folder (the message names ``path``).
    OSError
        If the file cannot be read.
    """
    limit = _max_model_bytes() if max_bytes is None else int(max_bytes)
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except IsADirectoryError:
        inside = os.path.join(os.fspath(path), "model.json")
        hint = f" such as {inside}" if os.path.isfile(inside) else ""
        raise IsADirectoryError(
            f"cannot read the model file {os.fspath(path)}: it is a folder; give the model "
            f"file's name{hint}"
        ) from None
    except FileNotFoundError:
        folder = os.path.dirname(os.fspath(path)) or "."
        where = "" if os.path.isdir(folder) else f" (the folder {folder} does not exist)"
        raise FileNotFoundError(f"model file not found: {os.fspath(path)}{where}") from None
    if len(data) > limit:
        raise _Checker(os.fspath(path)).fail(
            None,
            f"the file is larger than the {_megabytes(limit)} limit for model files (a guard "
            "against reading a huge or endless file; to read a bigger model, raise the limit "
            f"with the environment variable {MAX_MODEL_SIZE_ENV}=<megabytes>, or max_bytes= "
            "in load_model)",
        )
    return data


def _megabytes(n_bytes: int) -> str:
    return f"{n_bytes / 2**20:g} MB"


def load_model(path: str | os.PathLike[str], *, max_bytes: int | None = None) -> Any:
    """Load a model file written by :func:`save_model` and validate it.

    Parameters
    ----------
    path : str or path-like
        A gaussmix JSON model file.
    max_bytes : int, optional
        Refuse files larger than this (default ``GAUSSMIX_MAX_MODEL_MB`` megabytes from the
        environment, or 64 MB): a guard against reading a huge or endless file.

    Returns
    -------
    GaussianMixture
        A fitted :class:`gaussmix.GaussianMixture` whose ``predict``, ``predict_proba`` and
        ``score_samples`` equal those of the saved model bit for bit.

    Raises
    ------
    FileNotFoundError, IsADirectoryError, PermissionError
        If the file cannot be read (missing, a folder, not readable); the message names
        ``path``.
    ModelFileError
        If the file is not a valid model file (corrupt or truncated JSON, another format or
        a newer version, missing or mistyped fields, wrong shapes, non-finite numbers,
        weights that do not sum to 1, covariances that are not symmetric positive definite),
        or larger than ``max_bytes``.
    """
    data = read_model_bytes(path, max_bytes)
    return model_from_json(data, source=os.fspath(path))
