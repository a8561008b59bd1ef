"""Input and parameter validation.

Every check here runs before any work, names the problem, what was received and, where
there is one, the fix. Nothing here ever writes into the caller's arrays.
"""

from __future__ import annotations

import numbers
import warnings

import numpy as np

from . import families
from ._prior import check_prior_spec

COVARIANCE_TYPES = families.NAMES  # scikit-learn's names; families.get also takes aliases
INIT_PARAMS = ("kmeans", "k-means++", "random", "random_from_data", "robust")


def _is_sparse(X) -> bool:
    module = type(X).__module__ or ""
    return module.startswith("scipy.sparse") or (hasattr(X, "tocsr") and hasattr(X, "nnz"))


def feature_names_of(X):
    """Column names of a DataFrame-like ``X`` when they are all strings, else None."""
    columns = getattr(X, "columns", None)
    if columns is None or isinstance(X, np.ndarray):
        return None
    names = list(columns)
    if names and all(isinstance(name, str) for name in names):
        return np.asarray(names, dtype=object)
    return None


def _first_bad_object(arr: np.ndarray):
    """Position, value and error of the first element of an object array float() rejects."""
    flat = arr.reshape(arr.shape[0], -1) if arr.ndim >= 1 else arr.reshape(1, 1)
    for i, row in enumerate(flat):
        for j, value in enumerate(row):
            try:
                float(value)
            except (TypeError, ValueError) as exc:
                return i, j, value, exc
    return None


def check_array(
    X, *, name: str = "X", min_samples: int = 1, allow_nan: bool = False
) -> np.ndarray:
    """Validate ``X`` and return it as a 2-D float64 or float32 NumPy array.

    float64 and float32 keep their dtype, every other real dtype becomes float64. The
    result may share memory with ``X``: callers must treat it as read-only.

    With ``allow_nan=True``, NaN marks a missing value and is kept; infinity and rows with
    no observed value are still refused.

    Raises
    ------
    TypeError
        For sparse matrices and values that are not numbers.
    ValueError
        For arrays that are not 2-D, empty, too short, complex, or not finite.
    """
    if _is_sparse(X):
        raise TypeError(
            f"{name} is a sparse matrix ({type(X).__name__}); Gaussian mixtures need dense "
            f"data. Convert it with {name}.toarray() if it fits in memory."
        )
    if hasattr(X, "dask") and hasattr(X, "compute"):
        raise TypeError(
            f"{name} is a dask array; this method needs an in-memory NumPy array. "
            f"Use {name}.compute(), or fit on dask arrays with the 'dask' extra."
        )
    if hasattr(X, "to_numpy") and not isinstance(X, np.ndarray):
        X = X.to_numpy()
    try:
        arr = np.asarray(X)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} cannot be read as a numeric array: {exc}") from None
    kind = arr.dtype.kind
    if kind in "USV":
        raise ValueError(
            f"{name} has dtype {arr.dtype}: it holds strings, not numbers. Convert the "
            "columns to numeric values (or drop the text columns) before fitting."
        )
    if kind == "c":
        raise ValueError(
            f"Complex data not supported: {name} is {arr.dtype}. Pass the real and "
            "imaginary parts as separate features."
        )
    if kind == "O":
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError) as exc:
            bad = _first_bad_object(np.asarray(X, dtype=object))
            where = "" if bad is None else f" at row {bad[0]}, column {bad[1]} ({bad[2]!r})"
            raise TypeError(
                f"{name} contains a value that is not a number{where}: {exc}. Convert or "
                "drop non-numeric values before fitting."
            ) from None
    elif kind in "biu" or (kind == "f" and arr.dtype not in (np.float64, np.float32)):
        arr = arr.astype(np.float64)
    elif kind == "M" or kind == "m":
        raise TypeError(f"{name} holds dates or times ({arr.dtype}), not numbers.")

    if arr.ndim != 2:
        if arr.ndim <= 1:
            shape = arr.shape
            raise ValueError(
                f"Expected a 2-D array for {name}, got a {arr.ndim}-D array of shape "
                f"{shape}. Reshape your data: {name}.reshape(-1, 1) if it has a single "
                f"feature, or {name}.reshape(1, -1) if it is a single sample."
            )
        raise ValueError(
            f"Expected a 2-D array for {name} (n_samples, n_features), got "
            f"{arr.ndim} dimensions with shape {arr.shape}."
        )
    n_samples, n_features = arr.shape
    if n_samples == 0:
        raise ValueError(
            f"{name} is empty: 0 samples (shape {arr.shape}); at least 1 sample is required."
        )
    if n_features == 0:
        raise ValueError(
            f"{name} has 0 feature(s) (shape={arr.shape}) while a minimum of 1 is required."
        )
    if n_samples < min_samples:
        raise ValueError(
            f"{name} has {n_samples} sample{'s' if n_samples != 1 else ''} (n_samples = "
            f"{n_samples}), but fitting needs at least {min_samples}."
        )
    if allow_nan:
        check_finite_or_nan(arr, name)
    else:
        check_finite(arr, name)
    if not (arr.flags.c_contiguous or arr.flags.f_contiguous):
        arr = np.ascontiguousarray(arr)
    check_magnitude(arr, name)
    return arr


#: The largest magnitude a value of X may have, by dtype: every squared distance gaussmix
#: computes must stay finite (float64 squares overflow beyond 1.3e154, float32 beyond
#: 1.8e19), with room for sums over rows and features.
MAGNITUDE_LIMIT = {np.dtype(np.float64): 1e150, np.dtype(np.float32): 1e18}


def too_large(arr: np.ndarray) -> tuple[int, int, float] | None:
    """``(row, column, value)`` of the largest value of ``arr`` (2-D, NaN ignored) when it
    is beyond ``MAGNITUDE_LIMIT`` for its dtype, else None."""
    limit = MAGNITUDE_LIMIT.get(arr.dtype)
    if limit is None or arr.size == 0:
        return None
    with np.errstate(all="ignore"):
        if arr.dtype == np.float64 and arr.flags.c_contiguous:
            # One BLAS pass: a sum of squares within limit^2 bounds every value.
            if np.vdot(arr, arr) <= limit * limit:
                return None
        high = float(np.fmax.reduce(arr, axis=None))
        low = float(np.fmin.reduce(arr, axis=None))
    largest = max(abs(high), abs(low)) if np.isfinite(high) else abs(low)
    if not largest > limit:
        return None
    value = high if abs(high) >= abs(low) else low
    row, col = np.argwhere(arr == value)[0]
    return int(row), int(col), value


def check_magnitude(arr: np.ndarray, name: str = "X", row_offset: int = 0) -> None:
    """Refuse values too large for squared distances in ``arr``'s dtype (NaN ignored).

    A value of 1e200 is finite, but its square is not: every density involving it would be
    NaN or infinite. Better a message naming the value than a fit that fails or a NaN.
    """
    found = too_large(arr)
    if found is None:
        return
    row, col, value = found
    limit = MAGNITUDE_LIMIT[arr.dtype]
    tail = (" or pass the data as float64 (X.astype(np.float64))"
            if arr.dtype == np.float32 else "")
    raise ValueError(
        f"{name} holds {value:.3g} at row {row + row_offset}, column {col}: too large for "
        f"{arr.dtype} arithmetic (gaussmix squares distances, which overflow beyond about "
        f"{np.sqrt(np.finfo(arr.dtype).max):.1e}; values up to {limit:.0e} are accepted). "
        f"Rescale that column (divide it by a power of ten){tail}, or drop the row if the "
        "value is an error."
    )


def check_finite(arr: np.ndarray, name: str = "X") -> None:
    """Raise a ValueError counting the NaN and infinite values and locating the first."""
    # Fast path: a finite sum proves every value finite (NaN and inf propagate).
    with np.errstate(over="ignore", invalid="ignore"):
        if np.isfinite(np.sum(arr, dtype=np.float64)):
            return
    finite = np.isfinite(arr)
    if finite.all():
        return
    n_nan = int(np.isnan(arr).sum())
    n_inf = int((~finite).sum()) - n_nan
    first = np.argwhere(~finite)[0]
    at = f"row {first[0]}, column {first[1]}" if arr.ndim == 2 else f"index {first[0]}"
    raise ValueError(non_finite_message(name, n_nan, n_inf, at))


def check_finite_or_nan(arr: np.ndarray, name: str = "X", row_offset: int = 0) -> None:
    """Allow NaN (a missing value) but refuse infinity and rows that are entirely NaN.

    ``row_offset`` is added to the row numbers in the messages (a block of a larger array:
    the counts are then the block's)."""
    with np.errstate(over="ignore", invalid="ignore"):
        if np.isfinite(np.sum(arr, dtype=np.float64)):
            return
    infinite = np.isinf(arr)
    if infinite.any():
        first = np.argwhere(infinite)[0]
        n_inf = int(infinite.sum())
        raise ValueError(
            f"{name} contains {n_inf} infinite value{'s' if n_inf != 1 else ''} (infinity); "
            f"the first is at row {first[0] + row_offset}, column {first[1]}. NaN marks a "
            "missing value, but infinity is not allowed: replace it with NaN or drop the rows "
            "that hold it."
        )
    empty = np.isnan(arr).all(axis=1)
    if empty.any():
        n_empty = int(empty.sum())
        raise ValueError(
            f"{name} has {n_empty} row{'s' if n_empty != 1 else ''} with no observed value "
            f"(every feature NaN); the first is row {int(np.argmax(empty)) + row_offset}. Such "
            "rows carry no information: drop them."
        )


def non_finite_message(name: str, n_nan: int, n_inf: int, at: str, hint: str = "") -> str:
    """'X contains 2 NaN values and 1 infinite value (infinity); the first is at ...'."""
    parts = []
    if n_nan:
        parts.append(f"{n_nan} NaN value{'s' if n_nan != 1 else ''}")
    if n_inf:
        parts.append(f"{n_inf} infinite value{'s' if n_inf != 1 else ''} (infinity)")
    return (
        f"{name} contains {' and '.join(parts)}; the first is at {at}. Gaussian mixtures "
        f"need finite values: drop or impute the rows that hold them{hint}."
    )


def check_sample_weight(sample_weight, n_samples: int, dtype=np.float64):
    """Validate ``sample_weight``: None, a scalar, or shape (n_samples,), finite, >= 0.

    Returns a new array of ``dtype`` (never the caller's), or None.
    """
    if sample_weight is None:
        return None
    if _is_sparse(sample_weight):
        raise TypeError("sample_weight must be a dense 1-D array, not a sparse matrix.")
    if isinstance(sample_weight, numbers.Number) and not isinstance(sample_weight, bool):
        weights = np.full(n_samples, sample_weight, dtype=np.float64)
    else:
        try:
            weights = np.asarray(sample_weight)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"sample_weight cannot be read as numbers: {exc}") from None
        if weights.dtype.kind not in "biuf":
            try:
                weights = weights.astype(np.float64)
            except (TypeError, ValueError):
                raise TypeError(
                    f"sample_weight must hold numbers, got dtype {weights.dtype}."
                ) from None
        if weights.ndim != 1:
            raise ValueError(
                f"sample_weight must be 1-D of shape ({n_samples},), got shape "
                f"{weights.shape}."
            )
        if weights.shape[0] != n_samples:
            raise ValueError(
                f"sample_weight has {weights.shape[0]} values but X has {n_samples} samples; "
                "pass one weight per row of X."
            )
        weights = weights.astype(np.float64)  # a copy: the caller's array stays untouched
    check_finite(weights, "sample_weight")
    if (weights < 0).any():
        first = int(np.argmax(weights < 0))
        raise ValueError(
            f"sample_weight must be non-negative; found {int((weights < 0).sum())} negative "
            f"value(s), the first at index {first} ({float(weights[first])!r})."
        )
    if not weights.sum() > 0:
        raise ValueError("sample_weight sums to zero: at least one sample needs weight > 0.")
    return weights.astype(dtype, copy=False)


def _check_int(value, name, minimum):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer >= {minimum}, got {value!r}.")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")


def _check_real(value, name, minimum=0.0):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number >= {minimum}, got {value!r}.")
    if not np.isfinite(value) or value < minimum:
        raise ValueError(f"{name} must be a finite number >= {minimum}, got {value!r}.")


def check_parameters(est) -> None:
    """Validate the constructor parameters of a GaussianMixture (not the *_init arrays)."""
    _check_int(est.n_components, "n_components", 1)
    families.get(est.covariance_type)  # ValueError naming the valid choices
    if est.init_params not in INIT_PARAMS:
        raise ValueError(
            f"init_params must be one of {', '.join(map(repr, INIT_PARAMS))}; "
            f"got {est.init_params!r}."
        )
    _check_real(est.tol, "tol")
    _check_real(est.reg_covar, "reg_covar")
    _check_int(est.max_iter, "max_iter", 0)
    _check_int(est.n_init, "n_init", 1)
    _check_int(est.verbose, "verbose", 0)
    _check_int(est.verbose_interval, "verbose_interval", 1)
    if not isinstance(est.warm_start, (bool, np.bool_)):
        raise TypeError(f"warm_start must be True or False, got {est.warm_start!r}.")
    if est.block_size is not None:
        _check_int(est.block_size, "block_size", 1)
    check_prior_spec(getattr(est, "prior", None))
    rs = est.random_state
    if not (
        rs is None
        or (isinstance(rs, numbers.Integral) and not isinstance(rs, bool))
        or isinstance(rs, (np.random.RandomState, np.random.Generator))
    ):
        raise TypeError(
            "random_state must be None, an int, a numpy RandomState or Generator; "
            f"got {rs!r}."
        )


def check_random_state(seed) -> np.random.RandomState:
    """Turn None, an int or a RandomState/Generator into a RandomState."""
    if seed is None:
        return np.random.mtrand._rand
    if isinstance(seed, np.random.RandomState):
        return seed
    if isinstance(seed, np.random.Generator):
        return np.random.RandomState(seed.integers(2**32, dtype=np.uint64))
    if isinstance(seed, numbers.Integral) and not isinstance(seed, bool):
        return np.random.RandomState(int(seed))
    raise TypeError(f"random_state must be None, an int or a RandomState; got {seed!r}.")


def _as_float_array(value, name, dtype):
    try:
        arr = np.array(value, dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be an array of numbers: {exc}") from None
    check_finite(arr.reshape(arr.shape[0], -1) if arr.ndim else arr.reshape(1, 1), name)
    return arr


def _check_shape(arr, expected, name, covariance_type=None):
    if arr.shape != expected:
        kind = f" for covariance_type={covariance_type!r}" if covariance_type else ""
        raise ValueError(f"{name} must have shape {expected}{kind}, got {arr.shape}.")


def check_weights_init(weights, n_components, dtype):
    weights = _as_float_array(weights, "weights_init", dtype)
    _check_shape(weights, (n_components,), "weights_init")
    if (weights < 0).any() or (weights > 1).any():
        raise ValueError(
            f"weights_init must lie in [0, 1]; got min {weights.min():.6g}, "
            f"max {weights.max():.6g}."
        )
    total = float(np.sum(weights, dtype=np.float64))
    if not np.isclose(total, 1.0, rtol=0, atol=1e-6):
        raise ValueError(
            f"weights_init must sum to 1, but sums to {total:.10g}. Divide it by its sum."
        )
    return weights


def check_means_init(means, n_components, n_features, dtype):
    means = _as_float_array(means, "means_init", dtype)
    _check_shape(means, (n_components, n_features), "means_init")
    return means


def check_precisions_init(precisions, covariance_type, n_components, n_features, dtype):
    family = families.get(covariance_type)
    precisions = _as_float_array(precisions, "precisions_init", dtype)
    expected = family.covariance_shape(n_components, n_features)
    _check_shape(precisions, expected, "precisions_init", family.name)
    family.check_precisions_init(precisions)
    return precisions


#: A feature whose variance is below this many times ``reg_covar`` draws a
#: RegularizationWarning: ``reg_covar`` is then at least a tenth of its spread.
SMALL_VARIANCE_FACTOR = 10.0


def feature_variances(X: np.ndarray, sample_weight=None, block_rows: int = 65536) -> np.ndarray:
    """Each feature's (weighted) variance over its observed values, in row blocks (no
    copy of ``X``), about each column's first observed value so that a large common offset
    does not cancel."""
    n, d = X.shape
    # Each column's first observed value (row 0 may be missing: a reference of 0 let an
    # offset of 1e9 cancel, and a varying column was called constant).
    head = np.asarray(X[:block_rows], dtype=np.float64)
    observed = ~np.isnan(head)
    first = np.argmax(observed, axis=0)
    reference = np.where(observed.any(axis=0), head[first, np.arange(d)], 0.0)
    total = np.zeros(d)
    s1 = np.zeros(d)
    s2 = np.zeros(d)
    for start in range(0, n, block_rows):
        block = np.asarray(X[start:start + block_rows], dtype=np.float64) - reference
        w = (np.ones(block.shape[0]) if sample_weight is None
             else np.asarray(sample_weight[start:start + block_rows], dtype=np.float64))
        observed = ~np.isnan(block)
        block = np.where(observed, block, 0.0)
        total += w @ observed
        s1 += w @ block
        s2 += w @ (block * block)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = s1 / total
        return np.maximum(s2 / total - mean * mean, 0.0)


def warn_small_variances(X: np.ndarray, sample_weight, reg_covar: float,
                         stacklevel: int = 3) -> None:
    """A RegularizationWarning naming the features whose variance is below
    ``SMALL_VARIANCE_FACTOR * reg_covar`` (constant ones said as such)."""
    if not reg_covar > 0:
        return
    positive = X.shape[0] if sample_weight is None else int(np.count_nonzero(sample_weight))
    if positive < 2:  # one row has no spread to speak of (the fit says what is wrong)
        return
    from ._exceptions import RegularizationWarning

    var = feature_variances(X, sample_weight)
    small = np.flatnonzero(var < SMALL_VARIANCE_FACTOR * reg_covar)
    if not small.size:
        return
    constant = [int(j) for j in small if var[j] == 0.0]
    tiny = [int(j) for j in small if var[j] > 0.0]
    parts = []
    if constant:
        parts.append(f"feature{'s' if len(constant) > 1 else ''} "
                     f"{', '.join(map(str, constant))} {'are' if len(constant) > 1 else 'is'} "
                     "constant: every component's variance there is reg_covar (drop "
                     f"{'them' if len(constant) > 1 else 'it'})")
    if tiny:
        listed = ", ".join(f"{j} ({var[j]:.2g})" for j in tiny[:5])
        more = f" and {len(tiny) - 5} more" if len(tiny) > 5 else ""
        parts.append(
            f"feature{'s' if len(tiny) > 1 else ''} {listed}{more} "
            f"{'have variances' if len(tiny) > 1 else 'has a variance'} below "
            f"{SMALL_VARIANCE_FACTOR:g} x reg_covar = {SMALL_VARIANCE_FACTOR * reg_covar:g}: "
            "reg_covar, added to every covariance's diagonal in the data's units, then "
            "dominates the spread, so the fit reflects reg_covar more than the data. "
            "Standardise the features (or multiply them by a power of ten), or lower "
            "reg_covar")
    warnings.warn("; ".join(parts) + ".", RegularizationWarning, stacklevel=stacklevel)
