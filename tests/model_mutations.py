"""Mutations of valid model files, as hypothesis strategies (for the model-file fuzz test).

Shared by ``tests/test_model_fuzz.py`` (a short run in the test suite) and
``benchmarks/fuzz_model_files.py`` (a long run that counts the outcomes).

A case is a valid model file of one covariance family and dtype, fitted to a small data set,
with one mutation applied: to the decoded document (a value replaced by a hostile one, a key
or list element removed, duplicated or swapped, a number nudged, a precision factor rotated,
sign-flipped or transposed, one component's covariance changed so that it breaks the model's
constraint, with the checksum removed and the precisions recomputed) or to the text
(truncated, a byte changed, a number replaced by an out-of-range literal). :func:`outcome`
loads it: a strict reader either refuses it with a :class:`~gaussmix.io.ModelFileError` or
returns a model that predicts exactly what the original does. """

from __future__ import annotations

import copy
import functools
import json
from typing import Any

import numpy as np
from hypothesis import strategies as st

from gaussmix import GaussianMixture, families
from gaussmix.io import ModelFileError, model_from_json, model_to_json

DTYPES = ("float64", "float32")
CASES = tuple((name, dtype) for name in families.NAMES for dtype in DTYPES)


@functools.cache
def original(covariance_type: str, dtype: str) -> tuple[Any, np.ndarray, str]:
    """(fitted model, the data, the model file text) for one family and dtype."""
    rng = np.random.default_rng(7)
    X = np.vstack(
        [
            rng.normal([0.0, 0.0, 0.0], [1.0, 0.5, 2.0], size=(40, 3)),
            rng.normal([4.0, 3.0, -1.0], [0.7, 1.5, 1.0], size=(40, 3)),
        ]
    )
    X = (X @ np.array([[1.0, 0.4, 0.0], [0.0, 1.0, 0.3], [0.0, 0.0, 1.0]])).astype(dtype)
    model = GaussianMixture(
        2, covariance_type=covariance_type, random_state=0, max_iter=30
    ).fit(X)
    return model, X, model_to_json(model, n_samples=len(X), feature_names=["a", "b", "c"])


# --------------------------------------------------------------------------------------
# Values a hostile or broken file may hold

_HUGE_INTEGERS = st.sampled_from([10**400, -(10**400), 2**63, 2**64 + 1, 10**308 * 10, -1, 0])
_ODD_FLOATS = st.sampled_from(
    [1e308, -1e308, 5e-324, -0.0, 1e-300, 1e300, float("nan"), float("inf"), -float("inf")]
)
_TEXT = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["\x1b[2J\x1b[31mred", "full", "float32", "VVV", "1e400", "", "\u202e"]),
)
_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 5), _HUGE_INTEGERS, _ODD_FLOATS,
    st.floats(allow_nan=False, allow_infinity=False), _TEXT,
)
HOSTILE_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(_TEXT, inner, max_size=3),
    ),
    max_leaves=8,
)


# --------------------------------------------------------------------------------------
# Paths into a document


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path (tuple of keys and indices) to a node of the document, the root excluded."""
    out = []
    if isinstance(node, dict):
        items = list(node.items())
    elif isinstance(node, list):
        items = list(enumerate(node))
    else:
        return out
    for key, value in items:
        out.append((*prefix, key))
        out.extend(_paths(value, (*prefix, key)))
    return out


def _parent(doc: Any, path: tuple) -> Any:
    for key in path[:-1]:
        doc = doc[key]
    return doc


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# --------------------------------------------------------------------------------------
# Mutations of the decoded document: each returns (description, mutated document)


@st.composite
def _replace(draw, doc):
    path = draw(st.sampled_from(_paths(doc)))
    value = draw(HOSTILE_VALUES)
    _parent(doc, path)[path[-1]] = value
    return f"replace {path} by {type(value).__name__}", doc


@st.composite
def _delete(draw, doc):
    path = draw(st.sampled_from(_paths(doc)))
    del _parent(doc, path)[path[-1]]
    return f"delete {path}", doc


@st.composite
def _duplicate(draw, doc):
    lists = [p for p in _paths(doc) if isinstance(_parent(doc, p)[p[-1]], list)]
    path = draw(st.sampled_from(lists))
    target = _parent(doc, path)[path[-1]]
    if target:
        target.append(copy.deepcopy(target[draw(st.integers(0, len(target) - 1))]))
    else:
        target.append(0.0)
    return f"lengthen {path}", doc


@st.composite
def _swap(draw, doc):
    lists = [
        p for p in _paths(doc)
        if isinstance(_parent(doc, p)[p[-1]], list) and len(_parent(doc, p)[p[-1]]) >= 2
    ]
    path = draw(st.sampled_from(lists))
    target = _parent(doc, path)[path[-1]]
    i, j = draw(st.lists(st.integers(0, len(target) - 1), min_size=2, max_size=2, unique=True))
    target[i], target[j] = target[j], target[i]
    return f"swap {path}[{i}] and [{j}]", doc


@st.composite
def _nudge(draw, doc):
    numbers = [p for p in _paths(doc) if _is_number(_parent(doc, p)[p[-1]])]
    path = draw(st.sampled_from(numbers))
    parent = _parent(doc, path)
    x = float(parent[path[-1]])
    how = draw(st.sampled_from(["neg", "next", "double", "zero", "plus1", "tiny"]))
    parent[path[-1]] = {
        "neg": -x,
        "next": float(np.nextafter(x, np.inf)),
        "double": 2.0 * x,
        "zero": 0.0,
        "plus1": x + 1.0,
        "tiny": x * (1.0 + 1e-9),
    }[how]
    return f"nudge {path} ({how})", doc


@st.composite
def _damage_factor(draw, doc):
    """Corrupt the precision factor the way a hand edit or a bug would."""
    field = draw(st.sampled_from(["precisions_cholesky", "covariances", "precisions"]))
    arr = np.asarray(doc[field], dtype=np.float64)
    how = draw(st.sampled_from(["sign", "transpose", "rotate", "scale", "lower"]))
    if arr.ndim >= 2 and arr.shape[-1] == arr.shape[-2]:  # (stacks of) square matrices
        mats = arr.reshape(-1, arr.shape[-2], arr.shape[-1])
        m = draw(st.integers(0, len(mats) - 1))
        d = mats.shape[-1]
        j = draw(st.integers(0, d - 1))
        if how == "sign":
            mats[m][:, j] *= -1.0
        elif how == "transpose":
            mats[m] = mats[m].T.copy()
        elif how == "rotate":
            angle = draw(st.floats(0.1, 3.0))
            q = np.eye(d)
            c, s = np.cos(angle), np.sin(angle)
            a, b = j, (j + 1) % d
            q[a, a], q[a, b], q[b, a], q[b, b] = c, -s, s, c
            mats[m] = mats[m] @ q
        elif how == "scale":
            mats[m] *= draw(st.sampled_from([-1.0, 2.0, 1e-3]))
        else:
            mats[m][d - 1, 0] += 0.25  # below the diagonal
        arr = mats.reshape(arr.shape)
    else:
        i = draw(st.integers(0, arr.size - 1))
        arr.flat[i] *= {"sign": -1.0, "scale": 2.0}.get(how, -1.0)
    doc[field] = arr.tolist()
    return f"{how} {field}", doc


def _rotation(d: int, a: int, b: int, angle: float) -> np.ndarray:
    q = np.eye(d)
    c, s = np.cos(angle), np.sin(angle)
    q[a, a], q[a, b], q[b, a], q[b, b] = c, -s, s, c
    return q


@st.composite
def _break_constraint(draw, doc):
    """A hand edit that breaks the family's constraint and nothing else: the checksum is
    removed and the precisions recomputed from the edited covariances, so that only the
    constraint check can tell (mclust's ten models; the others keep their file as it is,
    without its checksum).

    One component's covariance is changed in the first piece its model shares: its volume
    (scaled), else its shape (two eigenvalues or variances scaled by c and 1 / c), else its
    orientation (rotated in a plane).
    """
    del doc["checksum"]
    family = families.get(doc["covariance_type"])
    k, d = doc["n_components"], doc["n_features"]
    dtype = np.dtype(doc["dtype"])
    equal = [getattr(family, p) == "equal" for p in ("volume", "shape", "orientation")]
    if family.shared or not any(equal):
        return f"remove the checksum ({family.name} has no constraint)", doc
    cov = np.asarray(doc["covariances"], dtype=np.float64)
    m = draw(st.integers(0, k - 1))
    c = draw(st.sampled_from([1.05, 1.5, 3.0, 0.5, 1e-3]))
    if equal[0]:
        how = f"scale component {m}'s covariance by {c}"
        cov[m] = cov[m] * c
    elif equal[1]:
        i, j = draw(st.lists(st.integers(0, d - 1), min_size=2, max_size=2, unique=True))
        how = f"change component {m}'s shape (x{c} and /{c})"
        if cov.ndim == 2:  # variances per feature
            cov[m, i] *= c
            cov[m, j] /= c
        else:
            eigval, eigvec = np.linalg.eigh(cov[m])
            eigval[i] *= c
            eigval[j] /= c
            cov[m] = (eigvec * eigval) @ eigvec.T
    else:
        i, j = draw(st.lists(st.integers(0, d - 1), min_size=2, max_size=2, unique=True))
        angle = draw(st.floats(0.2, 1.3))
        q = _rotation(d, i, j, angle)
        how = f"rotate component {m}'s covariance by {angle:.2f} in plane ({i}, {j})"
        cov[m] = q @ cov[m] @ q.T
    if cov.ndim == 3:
        cov = 0.5 * (cov + np.swapaxes(cov, 1, 2))
    cov = cov.astype(dtype).astype(np.float64)
    chol = family.precision_cholesky(cov)
    doc["covariances"] = cov.tolist()
    doc["precisions_cholesky"] = chol.astype(dtype).astype(np.float64).tolist()
    doc["precisions"] = (
        family.precisions_from_cholesky(chol).astype(dtype).astype(np.float64).tolist()
    )
    return f"{how}, without the checksum", doc


_DOC_MUTATIONS = (
    _replace, _delete, _duplicate, _swap, _nudge, _damage_factor, _break_constraint
)


# --------------------------------------------------------------------------------------
# Mutations of the text


@st.composite
def _text_mutation(draw, text):
    how = draw(st.sampled_from(["truncate", "byte", "insert", "literal"]))
    data = text.encode("utf-8")
    if how == "truncate":
        cut = draw(st.integers(0, len(data) - 1))
        return f"truncate at byte {cut}", data[:cut]
    if how == "byte":
        i = draw(st.integers(0, len(data) - 1))
        b = draw(st.integers(0, 255))
        return f"byte {i} -> {b}", data[:i] + bytes([b]) + data[i + 1:]
    if how == "insert":
        i = draw(st.integers(0, len(data)))
        junk = draw(st.binary(min_size=1, max_size=8))
        return f"insert {junk!r} at {i}", data[:i] + junk + data[i:]
    # A number literal replaced by one Python reads as inf, a huge int or NaN.
    starts = [i for i, ch in enumerate(text) if ch in "-0123456789" and text[i - 1] in " [:"]
    i = draw(st.sampled_from(starts))
    j = i + 1
    while j < len(text) and text[j] in "0123456789.eE+-":
        j += 1
    literal = draw(st.sampled_from(["1e400", "-1e400", "NaN", "Infinity", "1" + "0" * 400,
                                    "1" + "0" * 5000, "1e-400", "0"]))
    return f"literal {text[i:j]} -> {literal[:8]}", (text[:i] + literal + text[j:]).encode()


@st.composite
def mutated_files(draw, cases=CASES):
    """(case, description, mutated file bytes) for one mutation of a valid file."""
    case = draw(st.sampled_from(cases))
    text = original(*case)[2]
    if draw(st.booleans()):
        doc = json.loads(text)
        mutation = draw(st.sampled_from(_DOC_MUTATIONS))
        description, doc = draw(mutation(doc))
        try:
            data = json.dumps(doc).encode("utf-8")
        except ValueError:  # NaN/inf written by json.dumps as NaN/Infinity: kept as text
            data = json.dumps(doc, allow_nan=True).encode("utf-8")
    else:
        description, data = draw(_text_mutation(text))
    return case, description, data


def outcome(case: tuple[str, str], data: bytes) -> str:
    """``"refused: <field>"`` or ``"same predictions"``; anything else raises.

    A refusal for breaking the model's constraint is ``"refused: covariances (the model's
    constraint)"``.

    Raises AssertionError if the file loads but predicts differently from the original, and
    lets any exception other than ModelFileError through.
    """
    model, X, _ = original(*case)
    try:
        loaded = model_from_json(data, source="mutated.json")
    except ModelFileError as error:
        text = str(error)
        field = text.split("field ", 1)[1].split(" ", 1)[0] if "field " in text else "(file)"
        field = field.split("[", 1)[0].strip(chr(39))
        if "model's constraint" in text:
            field += " (the model's constraint)"
        return f"refused: {field}"
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    np.testing.assert_array_equal(loaded.score_samples(X), model.score_samples(X))
    return "same predictions"
