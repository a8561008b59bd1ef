"""partial_fit (online EM) with missing values: the batch statistics of incomplete rows are
their conditional expectations under the current parameters."""

import numpy as np
import pytest

from gaussmix import GaussianMixture, _online
from gaussmix.stats import block_statistics
from test_missing import _data, _reference_em, _start, _stored

FAMILIES = ("full", "tied", "diag", "spherical")


@pytest.mark.parametrize("covariance_type", FAMILIES)
def test_first_batch_with_rho_one_is_one_em_iteration(covariance_type):
    """By the definition: rho = 1 on one batch, max_iter=1, is one EM iteration with NaN
    from the start (checked against the naive reference written from the equations)."""
    _, Xm = _data(seed=12)
    weights, means, cov, precisions = _start(covariance_type)
    gm = GaussianMixture(2, covariance_type=covariance_type, weights_init=weights,
                         means_init=means, precisions_init=precisions, max_iter=1)
    gm.partial_fit(Xm)
    ref_w, ref_mu, ref_cov, bounds = _reference_em(
        Xm, covariance_type, weights, means, cov, 1, gm.reg_covar
    )
    np.testing.assert_allclose(gm.weights_, ref_w, rtol=1e-9)
    np.testing.assert_allclose(gm.means_, ref_mu, rtol=1e-9)
    np.testing.assert_allclose(gm.covariances_, _stored(ref_cov, covariance_type), rtol=1e-9)
    # The running log-likelihood is the observed-data one of the starting parameters.
    assert gm.lower_bound_ == pytest.approx(bounds[0], rel=1e-10)


def test_later_batches_blend_the_missing_value_statistics():
    _, Xm = _data(n=400, seed=13)
    first, second = Xm[:200], Xm[200:]
    assert np.isnan(second).any()
    gm = GaussianMixture(2, random_state=0, max_iter=3).partial_fit(first)
    before = gm._get_parameters()
    running = gm.running_statistics_
    gm.partial_fit(second)
    # (the second batch has fewer rows than the first: its step is scaled by the ratio)
    rho = _online.step_size(2, gm.learning_offset, gm.learning_decay, second.shape[0],
                            first.shape[0])
    expected = _online.blend(running, block_statistics(second, before), rho)
    got = gm.running_statistics_.moved_to(expected.shift)
    np.testing.assert_allclose(got.nk, expected.nk, rtol=1e-12)
    np.testing.assert_allclose(got.s1, expected.s1, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(got.s2, expected.s2, rtol=1e-10)
    # And the batch statistics of the incomplete rows are not those of the rows with the
    # NaN dropped or zero-filled: the holes count through their conditional expectations.
    complete = second[~np.isnan(second).any(axis=1)]
    assert block_statistics(second, before).nk.sum() > block_statistics(complete, before).nk.sum()
    assert np.isfinite(gm.means_).all() and np.isfinite(gm.score(Xm))


def test_partial_fit_after_fit_with_nan_continues():
    _, Xm = _data(n=300, seed=14)
    gm = GaussianMixture(2, random_state=0).fit(Xm)
    gm.partial_fit(Xm[:100])
    assert gm.n_batch_iter_ == 2
    assert np.isfinite(gm.covariances_).all()
    with pytest.raises(ValueError, match="no observed value"):
        bad = Xm[:10].copy()
        bad[3] = np.nan
        gm.partial_fit(bad)
