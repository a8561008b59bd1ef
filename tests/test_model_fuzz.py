"""Property-based fuzz test of model files (issue 15, item 3).

One mutation of a valid model file of any covariance family and dtype either is refused
with a ModelFileError naming the field, or loads as a model predicting exactly what the
original does: no other exception (OverflowError, TypeError, NumPy errors), no warning and
no different model. ``benchmarks/fuzz_model_files.py`` runs the same cases longer and counts
the outcomes.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gaussmix import families
from gaussmix.io import ModelFileError, model_from_json
from model_mutations import CASES, _break_constraint, mutated_files, original, outcome


@settings(
    max_examples=800,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(mutated_files())
def test_mutated_model_file_is_refused_or_predicts_the_same(case_description_data):
    case, description, data = case_description_data
    result = outcome(case, data)  # raises on anything but the two allowed outcomes
    assert result == "same predictions" or result.startswith("refused: "), description


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-{c[1]}")
def test_unmutated_files_load_with_the_same_predictions(case):
    """The fuzz test's originals are valid (so a refusal is the mutation's doing)."""
    assert outcome(case, original(*case)[2].encode()) == "same predictions"


def test_a_nudged_mean_is_refused_by_the_checksum():
    """A change no other check can see (a mean moved) is caught by the checksum."""
    doc = json.loads(original("full", "float64")[2])
    doc["means"][0][0] += 1.0
    with pytest.raises(ModelFileError, match="'checksum' does not match the model's numbers"):
        model_from_json(json.dumps(doc))
    del doc["checksum"]  # a hand edit, accepted as such without the checksum
    assert np.allclose(model_from_json(json.dumps(doc)).means_, doc["means"])


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-{c[1]}")
@settings(max_examples=10, derandomize=True, deadline=None, database=None)
@given(data=st.data())
def test_a_hand_edit_breaking_the_constraint_is_refused(case, data):
    """Without its checksum, a file whose covariances break the model's constraint (and
    whose precisions were recomputed to match) is refused by the constraint check; models
    without a constraint load the file without its checksum as it is."""
    family = families.get(case[0])
    constrained = not family.shared and "equal" in (
        family.volume, family.shape, family.orientation
    )
    description, doc = data.draw(_break_constraint(json.loads(original(*case)[2])))
    result = outcome(case, json.dumps(doc).encode())
    if constrained:
        assert result == "refused: covariances (the model's constraint)", description
    else:
        assert result == "same predictions", description
