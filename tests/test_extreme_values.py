"""Values at the edge of floating point: a far outlier up to 1e150, and values whose squares
overflow, which are refused by name (not fitted into NaN).

A row 1e30 sd from the others used to break the full model's E-step: the stacked
whitening subtracts the mixture mean c (pulled to 3.7e27 by the outlier) from every row,
and x - c rounded away every other row's position (``_estep._STACKED_REACH``).
"""

import re
import subprocess
import sys
import warnings

import numpy as np
import pytest

from gaussmix import GaussianMixture, select_model
from gaussmix.datasets import load_faithful

TYPES = ("full", "tied", "diag", "spherical")


def _with_far_row(value, dtype=np.float64):
    X = np.asarray(load_faithful(), dtype=np.float64)
    return np.vstack([X, [[value, 70.0]]]).astype(dtype)


def _fit(X, covariance_type):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return GaussianMixture(3, covariance_type=covariance_type, random_state=0).fit(X)


@pytest.mark.parametrize("covariance_type", TYPES)
def test_a_far_row_up_to_1e100_gets_its_own_component(covariance_type):
    reference = _fit(_with_far_row(1e6), covariance_type)
    for value in (1e30, 1e60, 1e100):
        model = _fit(_with_far_row(value), covariance_type)
        X = _with_far_row(value)
        far = model.predict(X[-1:])[0]
        assert model.weights_[far] == pytest.approx(1 / X.shape[0], rel=1e-6)
        assert np.all(model.predict(X[:-1]) != far)
        others = [k for k in range(3) if k != far]
        ref_far = reference.predict(_with_far_row(1e6)[-1:])[0]
        ref_others = [k for k in range(3) if k != ref_far]
        np.testing.assert_allclose(model.means_[others], reference.means_[ref_others],
                                   rtol=1e-7)
        np.testing.assert_allclose(model.weights_[others], reference.weights_[ref_others],
                                   rtol=1e-7)
        assert np.isfinite(model.lower_bound_)


@pytest.mark.parametrize("dtype, value, limit", [(np.float64, 1e155, "1e+150"),
                                                 (np.float64, -1e200, "1e+150"),
                                                 (np.float32, 1e20, "1e+18")])
def test_values_whose_squares_overflow_are_refused_by_position(dtype, value, limit):
    X = _with_far_row(value, dtype)
    pattern = (re.escape(f"holds {value:.3g} at row 272, column 0") + ".*"
               + re.escape(f"up to {limit} are accepted") + ".*Rescale that column")
    with pytest.raises(ValueError, match=pattern):
        GaussianMixture(2).fit(X)
    with pytest.raises(ValueError, match="too large"):
        select_model(X, n_components=[1, 2], covariance_types="sklearn")
    with pytest.raises(ValueError, match="too large"):
        GaussianMixture(2).partial_fit(X)
    model = GaussianMixture(2, random_state=0).fit(X[:-1])
    for method in (model.predict, model.predict_proba, model.score_samples):
        with pytest.raises(ValueError, match="at row 272, column 0"):
            method(X)


def test_float32_refusal_suggests_float64_and_float64_takes_the_same_rows():
    X = _with_far_row(1e20, np.float32)
    with pytest.raises(ValueError, match=r"pass the data as float64"):
        GaussianMixture(2).fit(X)
    model = _fit(X.astype(np.float64), "full")
    assert np.isfinite(model.lower_bound_)


def test_missing_values_do_not_hide_a_value_too_large():
    X = _with_far_row(1e200)
    X[5, 1] = np.nan
    with pytest.raises(ValueError, match=r"holds 1e[+]200 at row 272"):
        GaussianMixture(2).fit(X)


def test_dask_input_is_checked_chunk_by_chunk():
    da = pytest.importorskip("dask.array")
    X = _with_far_row(1e200)
    with pytest.raises(ValueError, match=r"holds 1e[+]200 at row 272, column 0"):
        GaussianMixture(2).fit(da.from_array(X, chunks=100))
    model = GaussianMixture(2, random_state=0).fit(X[:-1])
    with pytest.raises(ValueError, match=r"holds 1e[+]200 at row 272, column 0"):
        model.predict(da.from_array(X, chunks=100)).compute()


@pytest.mark.parametrize("stream", [[], ["--stream"], ["--stream", "--batch-size", "5"]])
def test_streamed_csv_names_the_line_and_column(tmp_path, stream):
    """--stream parsed its chunks by Arrow and let a value of 1e200 through to the library,
    which named a 0-based row of the batch (reviewer r2)."""
    path = tmp_path / "data.csv"
    path.write_text("a,b\n" + "".join(f"{i},{i % 7}\n" for i in range(20)) + "1e200,3\n"
                    + "1,2\n" * 5)
    run = subprocess.run([sys.executable, "-m", "gaussmix", "fit", str(path), "-k", "1",
                          "-o", str(tmp_path / "out"), *stream],
                         capture_output=True, text=True)
    assert run.returncode == 2
    assert "1e+200 at line 22, column 'a' is too large" in run.stderr


@pytest.mark.parametrize("suffix", [".csv", ".npy"])
def test_command_line_names_the_line_and_column(tmp_path, suffix):
    path = tmp_path / f"data{suffix}"
    if suffix == ".csv":
        path.write_text("a,b\n1,2\n3,4\n5,6\n1e200,3\n2,2\n")
        where = "line 5, column 'a'"
    else:
        np.save(path, np.array([[1, 2], [3, 4], [1e200, 3.0], [2, 2]]))
        where = "row 2 (counting from 0), column 'x0'"
    out = tmp_path / "out"
    run = subprocess.run([sys.executable, "-m", "gaussmix", "fit", str(path), "-k", "1",
                          "-o", str(out)], capture_output=True, text=True)
    assert run.returncode == 2
    assert f"1e+200 at {where} is too large" in run.stderr
    assert "Traceback" not in run.stderr
    assert not out.exists()


@pytest.mark.parametrize("init_params", ["kmeans", "k-means++", "random_from_data"])
@pytest.mark.parametrize("offset", [1e9, 1.7e12])
def test_data_sharing_a_large_offset_fit_as_without_it(init_params, offset):
    """Millisecond timestamps, projected coordinates: every row shares a large offset.
    k-means's labels were taken by the distance expansion about the origin, which lost
    every distance at 1.7e12: all 272 rows in one cluster, the one-Gaussian fit (-1289.8
    against -1126.9)."""
    X = np.asarray(load_faithful(), dtype=np.float64)
    clean = GaussianMixture(3, init_params=init_params, random_state=0).fit(X)
    shifted = GaussianMixture(3, init_params=init_params, random_state=0).fit(X + offset)
    # The offset rows hold their values to ~eps * offset (2.4e-4 at 1.7e12).
    assert shifted.score(X + offset) == pytest.approx(clean.score(X), abs=1e-4)
    np.testing.assert_allclose(shifted.means_ - offset, clean.means_, atol=1e-3)


def test_summary_shows_means_of_offset_data_to_their_spread():
    """The component table printed every mean of data at 1.7e12 as "1.7e+12" (reviewer r1);
    it now shows each to about a tenth of its component's sd, and ordinary data as before."""
    X = np.asarray(load_faithful(), dtype=np.float64)
    model = GaussianMixture(2, random_state=0).fit(X + 1.7e12)
    table = model.summary(X + 1.7e12).splitlines()[-2:]
    for line, mean in zip(table, model.means_[:, 0], strict=True):
        shown = float(line.split()[2])
        assert abs(shown - mean) < 0.05 * np.sqrt(model.covariances_[:, 0, 0]).min()
    plain = GaussianMixture(2, random_state=0).fit(X).summary(X).splitlines()[-1].split()
    assert plain[2] == f"{GaussianMixture(2, random_state=0).fit(X).means_[1, 0]:.5g}"


@pytest.mark.parametrize("covariance_type", ["full", "VVE", "EVV", "VEV"])
def test_float32_component_stretched_by_one_far_row_stays_finite(covariance_type):
    """One Gaussian over 32 standard normal rows and a row at (1e6, 1e6), in float32: the
    covariance is 3e10 along the diagonal and 1.4 across it. The quadratic features'
    cross terms u_i u_j (about 9e8 for every ordinary row) cancel to that 1.4, below
    float32's rounding: the log-densities came out as noise, exp() overflowed and every
    parameter became NaN, silently (found by a random search of fits). Such a component
    now takes the whitening E-step, and the fit is the float64 one's."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(33, 2))
    X[0] = 1e6
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = GaussianMixture(1, covariance_type=covariance_type,
                                    init_params="k-means++", random_state=0).fit(X)
        model = GaussianMixture(1, covariance_type=covariance_type,
                                init_params="k-means++", random_state=0
                                ).fit(X.astype(np.float32))
    assert model.converged_
    assert np.all(np.isfinite(model.score_samples(X.astype(np.float32))))
    assert model.lower_bound_ == pytest.approx(reference.lower_bound_, rel=1e-4)
    # the narrow direction's variance, from the precision factor
    across = np.array([1.0, -1.0]) / np.sqrt(2.0)
    precision = model.precisions_cholesky_[0].astype(np.float64)
    precision = precision @ precision.T
    expected = reference.precisions_cholesky_[0] @ reference.precisions_cholesky_[0].T
    assert across @ precision @ across == pytest.approx(across @ expected @ across, rel=1e-3)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_constant_data_are_fitted_with_a_warning_not_a_crash(dtype):
    """Every row the same: the sphered view of the data has no direction left, and the
    Ward tree of select_model (and of init_params='robust') indexed its first feature
    (an IndexError from inside NumPy; found by a random search of fits). The features are
    named as constant, and the one-component model is selected."""
    X = np.full((40, 3), 7.0, dtype=dtype)
    with pytest.warns(UserWarning, match="features 0, 1, 2 are constant"):
        result = select_model(X, n_components=[1, 2, 3], random_state=0)
    assert result.ranked()[0]["n_components"] == 1
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = GaussianMixture(2, init_params="robust", random_state=0).fit(X)
    words = [str(w.message) for w in caught]
    assert any("features 0, 1, 2 are constant" in w for w in words)
    assert any("looks degenerate" in w for w in words)  # (two components on one point)
    assert np.all(np.isfinite(model.score_samples(X)))


def test_a_shared_shape_on_one_point_without_reg_covar_raises_not_nan():
    """VEE (one shape for all components) with reg_covar=0 and a component holding only a
    far row: that component's volume is 0 and the shared shape 0/0. LAPACK factors a NaN
    matrix without complaint, so the fit ran on and returned NaN weights, means and
    covariances without a word (found by a random search of fits). It now stops with the
    error the other models give there, naming the component and the remedy."""
    rng = np.random.default_rng(0)
    X = np.vstack([[[1e6, 1e6]], rng.normal(size=(263, 2))])
    for seed in range(3):
        with pytest.raises(ValueError, match=r"component 0 .*not finite.*raise reg_covar"):
            GaussianMixture(3, covariance_type="VEE", init_params="random_from_data",
                            random_state=seed, reg_covar=0.0).fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = GaussianMixture(3, covariance_type="VEE", init_params="random_from_data",
                                random_state=0).fit(X)  # the default reg_covar
    assert np.all(np.isfinite(model.covariances_))
