"""partial_fit's step follows the batch's weight (reviewer r1: one row given to --resume
after a fit on 10,000 rows dragged a component's mean 17 sd towards itself), and partial_fit
after fit starts from the fit's log-likelihood (it started from 0: lower_bound_ -1.59 where
the data's mean log-likelihood is -4.19)."""

import numpy as np
import pytest

from gaussmix import GaussianMixture, _online
from gaussmix import load as load_model
from gaussmix.datasets import load_faithful


def _two_clusters(seed=0):
    rng = np.random.default_rng(seed)
    A = np.vstack([rng.normal(0, 1, (5000, 2)), rng.normal(6, 1, (5000, 2))])
    rng.shuffle(A)
    return A


def test_step_size_scales_a_light_batch_only():
    rho = _online.step_size(5, 2.0, 0.7)
    assert _online.step_size(5, 2.0, 0.7, 5000.0, 5000.0) == rho
    assert _online.step_size(5, 2.0, 0.7, 8000.0, 5000.0) == rho
    assert _online.step_size(5, 2.0, 0.7, 2500.0, 5000.0) == pytest.approx(rho / 2)
    assert _online.typical_weight(5000.0, 2, 2500.0) == pytest.approx(12500 / 3)
    assert _online.typical_weight(None, 0, 7.0) == 7.0


def test_one_far_row_after_large_batches_moves_the_model_as_one_row():
    A = _two_clusters()
    gm = GaussianMixture(2, random_state=0).partial_fit(A[:5000]).partial_fit(A[5000:])
    assert gm.batch_weight_ == 5000.0
    means, weights = gm.means_.copy(), gm.weights_.copy()
    gm.partial_fit(np.array([[40.0, 40.0]]))
    # one row among ~5,000 of its component: its pull is about (40 - 6) / 5,000
    assert np.max(np.abs(gm.means_ - means)) < 0.02
    assert np.max(np.abs(gm.weights_ - weights)) < 1e-3
    assert np.sqrt(gm.covariances_[:, 0, 0]).max() < 1.1
    assert gm.batch_weight_ == pytest.approx((5000 * 2 + 1) / 3)


def test_sample_weights_make_a_batch_heavy():
    A = _two_clusters()
    light = GaussianMixture(2, random_state=0).partial_fit(A[:5000])
    heavy = GaussianMixture(2, random_state=0).partial_fit(A[:5000])
    row = np.array([[40.0, 40.0]])
    light.partial_fit(row)
    heavy.partial_fit(row, sample_weight=[5000.0])
    assert np.abs(heavy.means_).max() > np.abs(light.means_).max() + 1.0


def test_resume_after_fit_counts_the_fit_as_a_batch_of_its_rows():
    X = np.asarray(load_faithful(), dtype=np.float64)
    model = GaussianMixture(3, covariance_type="tied", random_state=0).fit(X)
    truth = model.score(X)
    model.partial_fit(X[:1])  # one row after a fit on 272
    assert model.score(X) == pytest.approx(truth, abs=0.05)
    assert model.batch_weight_ == pytest.approx((272 + 1) / 2)


def test_lower_bound_after_fit_continues_the_fits():
    X = np.asarray(load_faithful(), dtype=np.float64)
    model = GaussianMixture(3, covariance_type="tied", random_state=0).fit(X)
    for _ in range(2):
        model.partial_fit(X)
        assert model.lower_bound_ == pytest.approx(model.score(X), abs=1e-3)


def test_batch_weight_is_saved_and_a_file_without_it_loads(tmp_path):
    import json

    A = _two_clusters()
    gm = GaussianMixture(2, random_state=0).partial_fit(A[:5000]).partial_fit(A[5000:6000])
    path = tmp_path / "m.json"
    gm.save(path)
    loaded = load_model(path)
    assert loaded.batch_weight_ == gm.batch_weight_
    doc = json.loads(path.read_text())
    del doc["online"]["batch_weight"]
    path.write_text(json.dumps(doc))
    old = load_model(path)
    assert not hasattr(old, "batch_weight_")
    old.partial_fit(A[6000:7000])  # continues; the mean batch weight starts again
    assert old.batch_weight_ == 1000.0
    doc["online"]["batch_weight"] = -1.0
    path.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match=r"online\.batch_weight"):
        load_model(path)


def test_a_saved_fit_still_counts_as_a_batch_of_its_rows(tmp_path):
    """Reviewer r2: through gm.save/load the fit's weight was lost (no n_samples in the
    file), and one far row moved the means 18.7."""
    A = _two_clusters()
    model = GaussianMixture(2, random_state=0).fit(A)
    model.save(tmp_path / "m.json")
    loaded = load_model(tmp_path / "m.json")
    means = loaded.means_.copy()
    loaded.partial_fit(np.array([[40.0, 40.0]]))
    assert np.max(np.abs(loaded.means_ - means)) < 0.02
    assert loaded.batch_weight_ == pytest.approx((10_000 + 1) / 2)
