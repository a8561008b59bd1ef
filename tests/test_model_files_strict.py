"""Strict model files (issue 15, item 3) and the command line's limits (item 5).

Each test reproduces a defect found by trying the landed code as a hostile user would; the
reproduction is named in the test's docstring. Every one of them failed before the change.
"""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest

from gaussmix import GaussianMixture, cli
from gaussmix.io import ModelFileError, load_model, model_from_json, model_to_dict, save_model


def _data(dtype=np.float64):
    rng = np.random.default_rng(1)
    X = np.vstack([rng.normal(0.0, 1.0, (50, 2)), rng.normal(5.0, 1.0, (50, 2))])
    return (X @ np.array([[1.0, 0.6], [0.0, 1.0]])).astype(dtype)


def _doc(covariance_type, dtype=np.float64, checksum=False):
    """A valid model document; without its checksum unless asked (to reach each check)."""
    model = GaussianMixture(2, covariance_type=covariance_type, random_state=0).fit(_data(dtype))
    doc = model_to_dict(model, n_samples=100, feature_names=["x", "y"])
    if not checksum:
        del doc["checksum"]
    return doc


def _refused(doc_or_text, match):
    text = doc_or_text if isinstance(doc_or_text, str) else json.dumps(doc_or_text)
    with pytest.raises(ModelFileError, match=match):
        model_from_json(text)


# --------------------------------------------------------------------------------------
# Precision-Cholesky factors


@pytest.mark.parametrize("covariance_type", ["full", "tied"])
def test_sign_flipped_factor_is_refused(covariance_type):
    """Repro: one sign flipped in precisions_cholesky -> predict exited 0 with half the labels
    flipped (full), NaN probabilities (tied). L with a column negated has the same L Lᵀ."""
    doc = _doc(covariance_type)
    factor = np.asarray(doc["precisions_cholesky"])
    if covariance_type == "full":
        factor[0][:, 1] *= -1.0
    else:
        factor[:, 1] *= -1.0
    doc["precisions_cholesky"] = factor.tolist()
    _refused(doc, r"'precisions_cholesky(\[0\])?' must have a positive diagonal")


@pytest.mark.parametrize("covariance_type", ["full", "tied"])
def test_rotated_factor_is_refused(covariance_type):
    """Repro: a rotated, non-triangular factor L·Q was accepted (same L Lᵀ)."""
    doc = _doc(covariance_type)
    c, s = np.cos(0.7), np.sin(0.7)
    q = np.array([[c, -s], [s, c]])
    factor = np.asarray(doc["precisions_cholesky"])
    doc["precisions_cholesky"] = (factor @ q).tolist()
    _refused(doc, r"'precisions_cholesky(\[\d\])?' must be upper triangular")


@pytest.mark.parametrize("covariance_type", ["diag", "spherical"])
def test_negative_variance_factor_is_refused(covariance_type):
    doc = _doc(covariance_type)
    factor = np.asarray(doc["precisions_cholesky"])
    factor.flat[0] *= -1.0
    doc["precisions_cholesky"] = factor.tolist()
    _refused(doc, "'precisions_cholesky' must be positive")


# --------------------------------------------------------------------------------------
# Malformed values are field errors, never OverflowError, TypeError or NumPy errors


def _replace_first_number(text, field, literal):
    start = text.index(f'"{field}"')
    i = start + len(field) + 2
    while text[i] not in "-0123456789":
        i += 1
    j = i
    while text[j] in "-0123456789.eE+":
        j += 1
    return text[:i] + literal + text[j:]


@pytest.mark.parametrize(
    "field, literal, match",
    [
        ("weights", "1e400", "'weights' contains a non-finite value inf"),
        ("means", "1" + "0" * 400, "'means' contains a number out of range"),
        ("means", "1" + "0" * 5000, "not valid JSON"),
        ("lower_bound", "1" + "0" * 400, "'training.lower_bound' is out of range"),
        ("max_iter", "1e400", "'params'"),
    ],
    ids=["1e400", "huge-int-in-array", "int-beyond-4300-digits", "huge-int-number", "inf-param"],
)
def test_numbers_out_of_range_are_field_errors(field, literal, match):
    """Repro: 1e400 (read as inf) and huge integers raised OverflowError or ValueError."""
    text = _replace_first_number(json.dumps(_doc("full")), field, literal)
    _refused(text, match)


@pytest.mark.parametrize(
    "path, value, match",
    [
        (["dtype"], ["float64"], "'dtype'"),
        (["covariance_type"], {"a": 1}, "'covariance_type'"),
        (["params", "weights_init"], [0.5, [0.5]], "'params.weights_init'"),
        (["params", "means_init"], [[0.0, 1.0], [2.0]], r"'params.means_init' has length 1"),
        (["params", "precisions_init"], "full", "'params.precisions_init'"),
        (["params", "random_state"], [1, 2], "'params'"),
        (["training", "lower_bounds"], [1.0, "x"], r"'training.lower_bounds\[1\]'"),
        (["checksum"], 7, "'checksum' must be a string"),
    ],
    ids=[
        "unhashable-dtype", "unhashable-covariance-type", "ragged-weights_init",
        "ragged-means_init", "string-precisions_init", "list-random_state", "bad-lower-bound",
        "checksum-not-string",
    ],
)
def test_malformed_values_are_field_errors(path, value, match):
    """Repro: TypeError for an unhashable dtype, NumPy errors for a ragged weights_init."""
    doc = _doc("full")
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    _refused(doc, match)


def test_command_line_reports_malformed_files_as_user_errors(tmp_path, capsys):
    """Repro: 16 malformed files surfaced as 'internal error', exit 1."""
    doc = _doc("full")
    doc["dtype"] = ["float64"]
    path = tmp_path / "model.json"
    path.write_text(json.dumps(doc))
    data = tmp_path / "x.csv"
    data.write_text("x,y\n1,2\n3,4\n")
    assert cli.main(["predict", str(path), str(data)]) == 2
    err = capsys.readouterr().err
    assert "field 'dtype'" in err and "internal error" not in err


def test_checksum_catches_what_no_other_check_sees():
    doc = _doc("tied", checksum=True)
    model_from_json(json.dumps(doc))  # as written: accepted
    doc["means"][1][0] = doc["means"][1][0] * 1.5
    _refused(doc, "'checksum' does not match")


# --------------------------------------------------------------------------------------
# Size limit


def test_size_limit(tmp_path, monkeypatch):
    model = GaussianMixture(2, random_state=0).fit(_data())
    path = tmp_path / "model.json"
    save_model(model, path)
    size = os.path.getsize(path)
    with pytest.raises(ModelFileError, match=r"larger than the .* limit for model files"):
        load_model(path, max_bytes=size - 1)
    assert load_model(path, max_bytes=size).n_components == 2
    monkeypatch.setenv("GAUSSMIX_MAX_MODEL_MB", str((size - 1) / 2**20))
    with pytest.raises(ModelFileError, match="GAUSSMIX_MAX_MODEL_MB"):
        load_model(path)


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_info_on_dev_zero_stops_at_the_limit(capsys):
    """Repro: `gaussmix info /dev/zero` read until memory ran out."""
    start = time.monotonic()
    assert cli.main(["info", "/dev/zero"]) == 2
    err = capsys.readouterr().err
    assert "larger than the 64 MB limit for model files" in err, err
    assert time.monotonic() - start < 120  # generous: only guards against reading forever


# --------------------------------------------------------------------------------------
# info prints strings from the file escaped


def test_info_escapes_terminal_sequences(tmp_path, capsys):
    """Repro: `info` printed raw terminal escape sequences from strings in the file."""
    doc = _doc("full", checksum=True)
    doc["feature_names"] = ["\x1b[2J\x1b[31mred", "y\u202e"]
    doc["gaussmix_version"] = "\x1b]0;title\x07"
    doc["training"]["degenerate"] = True
    doc["training"]["degenerate_reason"] = "bad\x1b[5m"
    path = tmp_path / "model.json"
    path.write_text(json.dumps(doc))
    assert cli.main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out
    for escaped in (r"\x1b[2J\x1b[31mred", r"y\u202e", r"\x1b]0;title\x07", r"bad\x1b[5m"):
        assert escaped in out, escaped


# --------------------------------------------------------------------------------------
# Limits on --components and sample -n (item 5)


def test_huge_component_range_is_refused_before_allocating(tmp_path, capsys):
    """Repro: `--components 1-100000000` ended in 'internal error: MemoryError'."""
    data = tmp_path / "x.csv"
    data.write_text("x,y\n" + "\n".join(f"{i % 7},{i % 5}" for i in range(30)) + "\n")
    args = ["fit", str(data), "-k", "auto", "--components", "1-100000000", "-o",
            str(tmp_path / "out")]
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert "--components: 100000000 components is more than this command fits" in err
    assert cli.main(["select", str(data), "--components", "1-2000", "-o", str(tmp_path / "o")]) == 2
    assert "at most 1000 are tried in one run" in capsys.readouterr().err
    assert cli.main(["fit", str(data), "-k", "100000000", "-o", str(tmp_path / "o")]) == 2
    assert "-k/--n-components: 100000000 components" in capsys.readouterr().err
    assert not (tmp_path / "out").exists() and not (tmp_path / "o").exists()


def test_huge_sample_count_is_refused_before_allocating(tmp_path, capsys):
    """Repro: `sample -n 1000000000` ended in 'internal error: MemoryError'."""
    path = tmp_path / "model.json"
    save_model(GaussianMixture(2, random_state=0).fit(_data()), path)
    assert cli.main(["sample", str(path), "-n", "1000000000"]) == 2
    err = capsys.readouterr().err
    assert "-n 1000000000 is more samples than one run draws" in err
    assert "at most 25,000,000" in err
