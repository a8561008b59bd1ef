"""Model files: bit-exact round trips, validation of damaged files, atomic writes."""

from __future__ import annotations

import copy
import doctest
import importlib
import json
import os
import warnings

import numpy as np
import pytest

from gaussmix import GaussianMixture, NotFittedError, families
from gaussmix.io import (
    FORMAT_VERSION,
    ModelFileError,
    load_model,
    model_from_dict,
    model_from_json,
    model_to_dict,
    save_model,
    write_atomic,
)

COVARIANCE_TYPES = ["full", "tied", "diag", "spherical"]


def _data(dtype=np.float64, n=120, seed=0):
    rng = np.random.default_rng(seed)
    X = np.vstack(
        [
            rng.normal([0.0, 0.0, 0.0], [1.0, 0.5, 2.0], size=(n // 2, 3)),
            rng.normal([4.0, 3.0, -1.0], [0.7, 1.5, 1.0], size=(n - n // 2, 3)),
        ]
    )
    return (X @ np.array([[1.0, 0.3, 0.0], [0.0, 1.0, 0.2], [0.0, 0.0, 1.0]])).astype(dtype)


@pytest.fixture(
    scope="module",
    params=[(ct, dt) for ct in COVARIANCE_TYPES for dt in ("float64", "float32")],
    ids=lambda p: f"{p[0]}-{p[1]}",
)
def fitted(request):
    covariance_type, dtype = request.param
    X = _data(np.dtype(dtype))
    model = GaussianMixture(2, covariance_type=covariance_type, random_state=0, max_iter=20)
    model.fit(X)
    return model, X


def test_round_trip_is_bit_exact(fitted, tmp_path):
    model, X = fitted
    path = tmp_path / "model.json"
    save_model(model, path)
    loaded = load_model(path)
    assert isinstance(loaded, GaussianMixture)
    for method in ("predict", "predict_proba", "score_samples"):
        expected, got = getattr(model, method)(X), getattr(loaded, method)(X)
        assert got.dtype == expected.dtype
        np.testing.assert_array_equal(got, expected, err_msg=method)
    for attr in ("weights_", "means_", "covariances_", "precisions_cholesky_", "precisions_"):
        expected, got = getattr(model, attr), getattr(loaded, attr)
        assert got.dtype == expected.dtype, attr
        assert got.shape == expected.shape, attr
        np.testing.assert_array_equal(got, expected, err_msg=attr)
    assert loaded.converged_ == model.converged_
    assert loaded.n_iter_ == model.n_iter_
    assert loaded.lower_bound_ == model.lower_bound_
    assert loaded.lower_bounds_ == model.lower_bounds_
    assert loaded.n_features_in_ == model.n_features_in_
    assert loaded.get_params() == model.get_params()
    assert loaded.score(X) == model.score(X)


def test_file_layout(fitted, tmp_path):
    model, _ = fitted
    path = tmp_path / "m.json"
    save_model(model, path, n_samples=120, feature_names=["a", "b", "c"])
    doc = json.loads(path.read_text())
    assert doc["format"] == "gaussmix-model"
    assert doc["version"] == 2  # 2: partial_fit's running statistics (issue 13)
    assert isinstance(doc["gaussmix_version"], str)
    assert doc["covariance_type"] == model.covariance_type
    assert (doc["n_components"], doc["n_features"]) == (2, 3)
    assert doc["dtype"] == model.means_.dtype.name
    assert doc["feature_names"] == ["a", "b", "c"]
    assert doc["training"]["n_samples"] == 120
    assert doc["training"]["converged"] == model.converged_
    assert doc["training"]["lower_bounds"] == [float(b) for b in model.lower_bounds_]
    assert doc["params"]["random_state"] == 0
    assert load_model(path).feature_names_in_.tolist() == ["a", "b", "c"]


def test_save_method_and_dataframe_feature_names(tmp_path):
    pd = pytest.importorskip("pandas")
    X = _data()
    frame = pd.DataFrame(X, columns=["u", "v", "w"])
    model = GaussianMixture(2, random_state=0, max_iter=10).fit(frame)
    path = tmp_path / "m.json"
    model.save(path)
    loaded = load_model(path)
    assert list(loaded.feature_names_in_) == ["u", "v", "w"]
    np.testing.assert_array_equal(loaded.predict(frame), model.predict(frame))


def test_unfitted_model_cannot_be_saved(tmp_path):
    with pytest.raises(NotFittedError, match="not fitted"):
        save_model(GaussianMixture(2), tmp_path / "m.json")
    assert os.listdir(tmp_path) == []


def test_missing_file():
    with pytest.raises(FileNotFoundError):
        load_model("/nonexistent/dir/model.json")


# ---------------------------------------------------------------------------------------
# Damaged and hand-edited files


@pytest.fixture(scope="module")
def good_doc():
    model = GaussianMixture(2, covariance_type="full", random_state=0, max_iter=10).fit(_data())
    return model_to_dict(model, n_samples=120)


def _set(path, value):
    def mutate(doc):
        target = doc
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return mutate


def _scale_weights(doc):
    doc["weights"] = [w * 1.1 for w in doc["weights"]]


def _negative_weight(doc):
    doc["weights"] = [1.5, -0.5]


def _not_pd(doc):
    doc["covariances"][1] = [[1.0, 2.0, 0.0], [2.0, 1.0, 0.0], [0.0, 0.0, 1.0]]


def _not_symmetric(doc):
    doc["covariances"][0][0][1] += 1.0


def _other_covariance(doc):
    doc["covariances"][0] = [[2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 2.0]]


def _drop(key):
    def mutate(doc):
        del doc[key]

    return mutate


DAMAGE = {
    "wrong-format": (_set(["format"], "something-else"), "'format'.*not a gaussmix model file"),
    "newer-version": (_set(["version"], 99), "'version'.*upgrade gaussmix"),
    "missing-means": (_drop("means"), "'means' is missing"),
    "bad-covariance-type": (_set(["covariance_type"], "banana"), "'covariance_type'"),
    "weights-not-summing-to-1": (_scale_weights, "'weights' must sum to 1"),
    "negative-weight": (_negative_weight, "'weights' must be >= 0"),
    "means-wrong-shape": (_set(["means"], [[0.0, 1.0], [2.0, 3.0]]), "'means' has length 2"),
    "means-too-few-rows": (_set(["means"], [[0.0, 1.0, 2.0]]), "'means' has length 1"),
    "string-in-array": (_set(["weights"], ["0.5", 0.5]), "'weights' must contain numbers"),
    "bool-in-array": (_set(["weights"], [True, 0.0]), "'weights' must contain numbers"),
    "n_components-not-int": (_set(["n_components"], 2.5), "'n_components' must be an integer"),
    "not-positive-definite": (_not_pd, r"'covariances\[1\]' is not positive definite"),
    "not-symmetric": (_not_symmetric, r"'covariances\[0\]' is not symmetric"),
    "precisions-disagree": (_other_covariance, "does not match covariances"),
    "bad-dtype": (_set(["dtype"], "int8"), "'dtype'"),
    "bad-feature-names": (_set(["feature_names"], ["a"]), "'feature_names'"),
    "bad-training": (_set(["training", "converged"], "yes"), "'training.converged'"),
    "bad-params": (_set(["params", "max_iter"], -5), "'params'"),
}


# Every kind of "version" a hand-edited or foreign file may carry. The format is at
# version FORMAT_VERSION (1): anything that is not an integer >= 1 is rejected as such,
# and a newer version asks for a newer gaussmix.
VERSIONS = {
    "missing": (_drop("version"), r"'version' is missing"),
    "null": (_set(["version"], None), r"'version' must be an integer, got null"),
    "zero": (_set(["version"], 0), r"'version' must be >= 1, got 0"),
    "negative": (_set(["version"], -1), r"'version' must be >= 1, got -1"),
    "string": (_set(["version"], "1"), r"'version' must be an integer, got the string '1'"),
    "bool": (_set(["version"], True), r"'version' must be an integer, got true"),
    "float": (_set(["version"], 1.0), r"'version' must be an integer, got 1\.0"),
    "list": (_set(["version"], [1]), r"'version' must be an integer, got a list of length 1"),
    "next": (_set(["version"], FORMAT_VERSION + 1),
             rf"'version' is {FORMAT_VERSION + 1}, but this gaussmix reads model files up to "
             rf"version {FORMAT_VERSION}; upgrade gaussmix"),
    "huge": (_set(["version"], 10**30), r"'version' is 10{30}.*upgrade gaussmix"),
}


@pytest.mark.parametrize("mutate, message", VERSIONS.values(), ids=VERSIONS.keys())
def test_model_file_version_is_checked(good_doc, tmp_path, mutate, message):
    doc = copy.deepcopy(good_doc)
    mutate(doc)
    path = tmp_path / "model.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(ModelFileError, match=message):
        load_model(path)


def test_model_file_current_version_loads(good_doc, tmp_path):
    # scikit-learn's four are still written as version 2 (their files did not change in
    # version 3, which added mclust's ten other models); FORMAT_VERSION is what this reads.
    assert good_doc["version"] == 2 and FORMAT_VERSION == 3
    path = tmp_path / "model.json"
    path.write_text(json.dumps(good_doc))
    model = load_model(path)
    np.testing.assert_array_equal(model.means_, np.array(good_doc["means"]))


@pytest.mark.parametrize("mutate, message", DAMAGE.values(), ids=DAMAGE.keys())
def test_hand_edited_file_is_rejected(good_doc, tmp_path, mutate, message):
    doc = copy.deepcopy(good_doc)
    mutate(doc)
    path = tmp_path / "model.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(ModelFileError, match=message):
        load_model(path)


def test_nan_in_file_is_rejected(good_doc):
    text = json.dumps(good_doc).replace(str(good_doc["means"][0][0]), "NaN", 1)
    with pytest.raises(
        ModelFileError, match=r"'means' contains a non-finite value nan at index \(0, 0\)"
    ):
        model_from_json(text)


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "the file is empty"),
        ("{not json", "not valid JSON"),
        ("[1, 2, 3]", "must be a JSON object"),
        (b"\xff\xfe\x00garbage", "not UTF-8"),
    ],
    ids=["empty", "garbage", "array", "binary"],
)
def test_corrupt_file_is_rejected(text, message):
    with pytest.raises(ModelFileError, match=message):
        model_from_json(text)


@pytest.mark.parametrize("fraction", [0.1, 0.25, 0.5, 0.75, 0.99])
def test_truncated_file_is_rejected(good_doc, tmp_path, fraction):
    """Wherever the cut falls (in a number such as "-0.", in a string, between items)."""
    path = tmp_path / "model.json"
    full = json.dumps(good_doc)
    path.write_text(full[: int(len(full) * fraction)])
    with pytest.raises(ModelFileError, match=r"model\.json.*looks truncated"):
        load_model(path)


def test_model_file_error_is_a_value_error():
    assert issubclass(ModelFileError, ValueError)


# ---------------------------------------------------------------------------------------
# Atomic writes


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    target = tmp_path / "out.json"

    def broken_replace(src, dst):
        raise OSError("disk on fire")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk on fire"):
        write_atomic(target, "content")
    assert os.listdir(tmp_path) == []


def test_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    model = GaussianMixture(2, random_state=0, max_iter=5).fit(_data())
    target = tmp_path / "model.json"
    save_model(model, target)
    before = target.read_bytes()

    def broken_fsync(fd):
        raise OSError("no space left")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="no space left"):
        save_model(model, target)
    assert target.read_bytes() == before
    assert os.listdir(tmp_path) == ["model.json"]


def test_write_into_missing_directory_fails_cleanly(tmp_path):
    with pytest.raises(FileNotFoundError):
        write_atomic(tmp_path / "missing" / "x.json", "x")
    assert os.listdir(tmp_path) == []


def test_docstring_examples_run():
    module = importlib.import_module("gaussmix.io")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS, verbose=False, report=True)
    assert result.attempted > 0 and result.failed == 0


# ---------------------------------------------------------------------------------------
# mclust's 14 models (issue 11): format version 3 and the constraint of each model


def _fitted_14(name, dtype=np.float64, X=None):
    X = _data(dtype) if X is None else X.astype(dtype)
    return GaussianMixture(3, covariance_type=name, random_state=0, max_iter=50).fit(X)


@pytest.mark.parametrize("name", families.MCLUST_MODELS)
def test_version_3_only_for_mclusts_ten_other_models(name, tmp_path):
    model = _fitted_14(name)
    family = families.get(name)
    doc = model_to_dict(model)
    assert doc["covariance_type"] == family.name
    assert doc["version"] == (2 if family.name != name else 3)
    # A file of the same model written as version 2 (before version 3 existed) still loads,
    # to the same model.
    del doc["checksum"]
    doc["version"] = 2
    loaded = model_from_dict(json.loads(json.dumps(doc)))
    assert families.of_model(loaded) is family
    np.testing.assert_array_equal(loaded.covariances_, model.covariances_)


def test_older_gaussmix_is_told_to_upgrade_for_version_3():
    doc = model_to_dict(_fitted_14("VVE"))
    doc["version"] = FORMAT_VERSION + 1
    with pytest.raises(ModelFileError, match="upgrade gaussmix"):
        model_from_dict(doc)


def _break(doc, change):
    """``doc`` without its checksum, its covariances changed by ``change`` (in place on a
    float64 array) and its precisions recomputed to match: only the constraint is broken."""
    doc = copy.deepcopy(doc)
    del doc["checksum"]
    family = families.get(doc["covariance_type"])
    cov = np.asarray(doc["covariances"], dtype=np.float64)
    change(cov)
    chol = family.precision_cholesky(cov)
    doc["covariances"] = cov.tolist()
    doc["precisions_cholesky"] = chol.tolist()
    doc["precisions"] = family.precisions_from_cholesky(chol).tolist()
    return doc


def _scale(cov):
    cov[1] *= 1.3


def _swap_diagonal(cov):  # same volume, another shape
    cov[1] = cov[1][::-1].copy()


def _reshape(cov):  # same volume and orientation, another shape
    w, v = np.linalg.eigh(cov[1])
    cov[1] = (v * (w * np.array([1.5, 1.0, 1.0 / 1.5]))) @ v.T


def _rotate(cov):  # same eigenvalues, another orientation
    c, s = np.cos(0.4), np.sin(0.4)
    q = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    cov[1] = q @ cov[1] @ q.T


# (model, edit, the constraint the message names)
BROKEN = [
    ("EII", _scale, "the same volume"),
    ("EEI", _scale, "the same volume"),
    ("EVI", _scale, "the same volume"),
    ("VEI", _swap_diagonal, "proportional to component 0's (equal shape)"),
    ("EEV", _scale, "the same volume"),
    ("EEV", _reshape, "eigenvalues must be proportional"),
    ("VEV", _reshape, "eigenvalues must be proportional"),
    ("EVV", _scale, "the same volume"),
    ("EVE", _scale, "the same volume"),
    ("EVE", _rotate, "share their eigenvectors (equal orientation)"),
    ("VVE", _rotate, "share their eigenvectors (equal orientation)"),
    ("VEE", _reshape, "multiple of component 0's (equal shape and orientation)"),
    ("VEE", _rotate, "multiple of component 0's (equal shape and orientation)"),
]


@pytest.mark.parametrize("name, change, constraint", BROKEN,
                         ids=[f"{n}-{c.__name__[1:]}" for n, c, _ in BROKEN])
def test_file_breaking_the_models_constraint_is_refused(name, change, constraint):
    doc = model_to_dict(_fitted_14(name))
    with pytest.raises(ModelFileError) as info:
        model_from_dict(_break(doc, change))
    message = str(info.value)
    assert "field 'covariances'" in message
    assert f"break the {name} model's constraint" in message and constraint in message
    assert "component 1" in message


@pytest.mark.parametrize("name", ["VII", "VVI", "VVV"])
def test_models_without_a_constraint_accept_any_consistent_edit(name):
    doc = model_to_dict(_fitted_14(name))
    loaded = model_from_dict(_break(doc, _scale))
    np.testing.assert_allclose(loaded.covariances_[1], 1.3 * np.asarray(doc["covariances"])[1])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", families.MCLUST_MODELS)
def test_ill_conditioned_fits_of_every_model_load(name, dtype):
    """Features on scales 1e-4 to 1e4 and a nearly collinear third one: the constraint
    check's tolerance follows the rounding, so every file gaussmix writes loads."""
    rng = np.random.default_rng(3)
    X = _data(np.float64)
    X = np.column_stack(
        [X[:, 0] * 1e-4, X[:, 1] * 1e4, X[:, 0] + 1e-3 * X[:, 1] + rng.normal(0, 1e-6, len(X))]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = _fitted_14(name, dtype, X)
    loaded = model_from_dict(json.loads(json.dumps(model_to_dict(model))))
    np.testing.assert_array_equal(loaded.covariances_, model.covariances_)
