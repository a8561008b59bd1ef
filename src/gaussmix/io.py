"""Model files: a fitted GaussianMixture as versioned, human-readable JSON.

A model file is one JSON object::

    {"format": "gaussmix-model", "version": 2,
     "gaussmix_version": "0.1.0",
     "covariance_type": "tied", "n_components": 3, "n_features": 2, "dtype": "float64",
     "feature_names": ["eruptions", "waiting"] | null,
     "weights": [...], "means": [[...]], "covariances": ..., "precisions_cholesky": ...,
     "precisions": ...,
     "training": {"converged": true, "n_iter": 7, "lower_bound": ..., "lower_bounds": [...],
                  "n_samples": 272 | null, "reg_covar": ..., "tol": ..., "random_state": 0 | null,
                  "degenerate": false, "degenerate_reason": null},
     "params": {...every constructor parameter...},
     "online": null | {"n_batch_iter": 80,
                       "statistics": {"shift": [[...]], "nk": [...], "s1": [[...]],
                                      "s2": ..., "log_likelihood": ..., "weight_sum": 1.0}}}

``online`` (version 2) holds ``partial_fit``'s running statistics (per-sample averages,
``s2`` shaped as the covariances) and its step count, so that a loaded model continues
its stream exactly; it is null for models fitted by ``fit``. Version-1 files (without it)
still load.

Every float is written with Python's shortest round-trip representation of the float64
value, so it reads back bit-exact (float32 models are written as the exact float64 value of
each float32 and cast back on loading). Loading checks everything (schema, types, shapes,
finiteness, weights, symmetric positive definite covariances, agreement of covariances and
precisions) and raises :class:`ModelFileError` naming the field and the problem. Nothing is
ever unpickled or evaluated.

Every write goes to a temporary file in the destination directory, is flushed to disk and
then renamed over the destination (:func:`write_atomic`, :func:`atomic_path`), so a failed
write leaves no partial file. :func:`staged_outputs` does the same for a set of files in one
output directory: they are renamed into place only once all are written, and a failure
before then leaves none of them.
"""

from __future__ import annotations

import contextlib
import json
import math
import numbers
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from . import families
from ._exceptions import NotFittedError
from ._online import check_schedule
from ._validation import COVARIANCE_TYPES, check_parameters

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "ModelFileError",
    "OutputDir",
    "OutputError",
    "atomic_path",
    "load_model",
    "model_from_json",
    "model_to_json",
    "save_model",
    "staged_outputs",
    "write_atomic",
]

FORMAT_NAME = "gaussmix-model"
FORMAT_VERSION = 2  # 2: the "online" field (partial_fit's running statistics)

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


def _temporary_file(directory: str, name: str) -> str:
    """A new empty temporary file for ``name`` in ``directory``, with a new file's mode."""
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
    os.close(fd)
    try:
        os.chmod(tmp, _file_mode())
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return tmp


def _fsync_file(path: str) -> None:
    """Flush a written file's content to disk."""
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[str]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` if the block succeeds.

    The temporary file lives in the destination directory (so the final ``os.replace`` is
    atomic), is fsynced before the rename, and is removed if the block raises: either the
    complete new file is at ``path`` or nothing changed.

    Parameters
    ----------
    path : str or path-like
        Final destination. Its directory must exist and be writable.

    Yields
    ------
    tmp_path : str
        Where to write the content (the file exists and is empty).

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
    directory = os.path.dirname(os.path.abspath(path))
    tmp = _temporary_file(directory, os.path.basename(path))
    try:
        yield tmp
        _fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_directory(directory)


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


class OutputDir:
    """Stage files in a directory and rename them into place only when all are ready.

    Each file is written to a temporary file in the directory and flushed to disk;
    :meth:`commit` renames every staged file onto its name, :meth:`abort` removes the
    temporary files and the directories this run created, so a failed run leaves nothing
    behind. Use it through :func:`staged_outputs`.

    Parameters
    ----------
    directory : str
        The output directory; it and its missing parents are created on the first
        :meth:`stage`.

    Examples
    --------
    >>> import os, tempfile
    >>> d = os.path.join(tempfile.mkdtemp(), "run")
    >>> with staged_outputs(d) as out:
    ...     _ = out.stage("a.txt", "first")
    ...     _ = out.stage("b.txt", writer=lambda f: f.write("second"))
    ...     sorted(os.listdir(d))[0].startswith(".a.txt.")  # only temporary files so far
    ...     written = out.commit()
    True
    >>> sorted(os.listdir(d))
    ['a.txt', 'b.txt']
    """

    def __init__(self, directory: str):
        self.directory = directory
        self.created: list[str] = []
        self.staged: list[tuple[str, str]] = []

    def check_writable(self) -> None:
        """Fail early (before any long computation) if the directory cannot be written.

        Raises
        ------
        OutputError
            If the path is a file, cannot be created, or is not writable.
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
                raise OutputError(
                    f"cannot create output directory {self.directory}: {exc.strerror}"
                ) from None
            self.created.append(d)

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
        """Write the file ``name`` to a temporary file; return its final path.

        Parameters
        ----------
        name : str
            File name inside the directory.
        text : str, optional
            Content, written as UTF-8.
        writer : callable, optional
            ``writer(text_file)`` writes the content to an open text file (UTF-8, no newline
            translation).
        save : callable, optional
            ``save(path)`` writes the content to the (existing, empty) file at ``path``, for
            example a matplotlib figure's ``savefig``.
        """
        self._ensure()
        try:
            tmp = _temporary_file(self.directory, name)
        except OSError as exc:
            raise OutputError(
                f"cannot write to output directory {self.directory}: {exc.strerror}"
            ) from None
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
        return self.path(name)

    def commit(self) -> list[str]:
        """Rename every staged file onto its name; return the final paths."""
        done = []
        for tmp, final in self.staged:
            os.replace(tmp, final)
            done.append(final)
        self.staged = []
        _fsync_directory(self.directory)
        return done

    def abort(self) -> None:
        """Remove the staged temporary files and the (empty) directories this run created."""
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
    """An :class:`OutputDir` for ``directory`` that is aborted if the block raises."""
    out = OutputDir(directory)
    try:
        yield out
    except BaseException:
        out.abort()
        raise


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
        "reg_covar": params.get("reg_covar"),
        "tol": params.get("tol"),
        "random_state": params.get("random_state"),
        "degenerate": bool(getattr(model, "degenerate_", False)),
        "degenerate_reason": None if degenerate_reason is None else str(degenerate_reason),
    }
    doc: dict[str, Any] = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
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
    return doc


def _online_to_dict(model: Any) -> dict[str, Any] | None:
    """partial_fit's running statistics and step count, or None (see the module docstring)."""
    stats = getattr(model, "running_statistics_", None)
    if stats is None:
        return None
    fields = {"shift": stats.shift, "nk": stats.nk, "s1": stats.s1, "s2": stats.s2}
    for name, value in fields.items():
        if not np.all(np.isfinite(value)):
            raise ValueError(f"cannot save running statistics whose {name} are not finite")
    return {
        "n_batch_iter": int(model.n_batch_iter_),
        "statistics": {
            **{name: _float_list(value) for name, value in fields.items()},
            "log_likelihood": float(stats.log_likelihood),
            "weight_sum": float(stats.weight_sum),
        },
    }


def _online_from_dict(
    chk: _Checker, online: Any, family: families.CovarianceFamily, k: int, d: int
) -> tuple[int, Any] | None:
    """The step count and SufficientStatistics of a file's ``online`` field (or None)."""
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
    return n_batch_iter, running


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
        directory, flushed and renamed, so a failure leaves no partial file.
    n_samples : int, optional
        Number of training samples, recorded in the training summary.
    feature_names : list of str, optional
        Feature names to record (default: ``model.feature_names_in_`` if set).

    Raises
    ------
    NotFittedError
        If the model is not fitted.
    OSError
        If the directory is missing or not writable.

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
        if not math.isfinite(value):
            raise self.fail(field, f"must be finite, got {value}")
        return float(value)

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


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"the string {value[:40]!r}"
    if isinstance(value, list):
        return f"a list of length {len(value)}"
    if isinstance(value, dict):
        return "an object"
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
    if family.precision_form in ("diagonal", "scalar"):
        if np.any(pchol <= 0):
            raise chk.fail("precisions_cholesky", "must be positive")
        ok = np.abs(covariances.astype(np.float64) * pchol**2 - 1.0)
        tol = 1e-4 if covariances.dtype == np.float32 else 1e-8
        if np.max(ok) > tol:
            raise chk.fail("precisions_cholesky", "does not match covariances")
    else:
        chol = family.stored_matrices(pchol, k, d)
        eps = float(np.finfo(covariances.dtype).eps)
        for (_, c), (suffix, lc) in zip(cov, chol, strict=True):
            prec = lc @ lc.T
            eig = np.linalg.eigvalsh(c)
            cond = float(eig[-1] / eig[0]) if eig[0] > 0 else math.inf
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
        if np.max(np.abs(expected - got)) > tol * scale:
            raise chk.fail("precisions", "does not match precisions_cholesky")


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
    if covariance_type not in COVARIANCE_TYPES:  # a file holds scikit-learn's name
        raise chk.fail(
            "covariance_type",
            f"must be one of {', '.join(COVARIANCE_TYPES)}; got {_describe(covariance_type)}",
        )
    family = families.get(covariance_type)
    k = chk.integer(chk.get(doc, "n_components"), "n_components", minimum=1)
    d = chk.integer(chk.get(doc, "n_features"), "n_features", minimum=1)
    dtype_name = chk.get(doc, "dtype")
    if dtype_name not in _DTYPES:
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
    _check_covariances(chk, family, covariances, precisions_cholesky, precisions, k, d)

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
    for name in _ARRAY_PARAMS:
        if kwargs.get(name) is not None:
            kwargs[name] = np.asarray(kwargs[name], dtype=np.float64)
    try:
        model = cls(**kwargs)
        check_parameters(model)  # the estimator's own checks (run by fit, not __init__)
        check_schedule(model.learning_offset, model.learning_decay)
    except (TypeError, ValueError) as exc:
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
    online = _online_from_dict(chk, doc.get("online"), family, k, d)
    if online is not None:
        model.n_batch_iter_, model.running_statistics_ = online
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
        hint = " (the file looks truncated)" if exc.pos >= len(text.rstrip()) else ""
        raise chk.fail(
            None, f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}{hint}"
        ) from None
    except RecursionError:
        raise chk.fail(None, "not valid JSON: nested too deeply") from None
    return doc


def load_model(path: str | os.PathLike[str]) -> Any:
    """Load a model file written by :func:`save_model` and validate it.

    Parameters
    ----------
    path : str or path-like
        A gaussmix JSON model file.

    Returns
    -------
    GaussianMixture
        A fitted :class:`gaussmix.GaussianMixture` whose ``predict``, ``predict_proba`` and
        ``score_samples`` equal those of the saved model bit for bit.

    Raises
    ------
    FileNotFoundError, PermissionError
        If the file cannot be read.
    ModelFileError
        If the file is not a valid model file (corrupt or truncated JSON, another format or
        a newer version, missing or mistyped fields, wrong shapes, non-finite numbers,
        weights that do not sum to 1, covariances that are not symmetric positive definite).
    """
    data = Path(path).read_bytes()
    return model_from_json(data, source=os.fspath(path))
