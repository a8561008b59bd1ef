"""The lean in-memory EM path (gaussmix._batch) equals the general engine, and SQUAREM."""

from __future__ import annotations

import numpy as np
import pytest

from gaussmix import stats
from gaussmix._batch import TYPES, Batch, Rows, features_for
from gaussmix.datasets import load_faithful
from gaussmix.em import run_em, run_squarem, statistics_step
from gaussmix.families._eigen import objective

# mclust's models whose M-step iterates (the lean path takes a few rounds per EM step from
# the current parameters: generalised EM); the others have closed forms, equal to the
# general path's to rounding.
ITERATIVE = ("VEI", "VEE", "EVE", "VVE", "VEV")
CLOSED = tuple(t for t in TYPES if t not in ITERATIVE)


def _data(seed=0, n=300, D=3):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 4, size=(3, D))
    X = centres[rng.integers(0, 3, n)] + rng.normal(size=(n, D)) @ rng.normal(size=(D, D))
    return X + 100.0  # away from the origin: the moments are taken about the data mean


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("features", ["full", "diag", "spherical"])
def test_one_step_equals_the_general_path(features, weighted):
    X = _data()
    w = np.random.default_rng(1).uniform(0.5, 2.0, X.shape[0]) if weighted else None
    types = {"full": CLOSED, "diag": ("spherical", "diag", "EII", "EEI", "EVI"),
             "spherical": ("spherical", "EII")}[features]
    assert features_for(types) == features
    rows = Rows(X, w, 1e-6, features)
    rng = np.random.default_rng(2)
    labels = [rng.integers(0, 3, X.shape[0]) for _ in range(2)]
    batch = rows.from_labels(labels, 3, types)
    assert batch.size == 2 * len(types)
    new, ll, bad = rows.step(batch)
    assert not bad.any()
    for s in range(batch.size):
        params = batch.member(s)
        assert params.covariance_type == types[s // 2]
        st = stats.block_statistics(X, params, w)
        ref = stats.m_step(st, reg_covar=1e-6)
        got = new.member(s)
        assert ll[s] == pytest.approx(st.log_likelihood, rel=1e-12)
        np.testing.assert_allclose(got.weights, ref.weights, rtol=1e-11)
        np.testing.assert_allclose(got.means, ref.means, rtol=1e-11)
        np.testing.assert_allclose(got.covariances, ref.covariances, rtol=1e-9)


def test_starts_are_the_statistics_and_m_step_of_the_partitions():
    X = _data(D=2)
    rows = Rows(X, None, 1e-6, "full")
    labels = np.random.default_rng(3).integers(0, 3, X.shape[0])
    batch = rows.from_labels([labels], 3, CLOSED)
    resp = np.eye(3)[labels]
    for s, t in enumerate(CLOSED):
        st = stats.statistics_from_responsibilities(X, resp, t, shift=X.mean(axis=0))
        ref = stats.m_step(st, reg_covar=1e-6)
        got = batch.member(s)
        np.testing.assert_allclose(got.means, ref.means, rtol=1e-11)
        np.testing.assert_allclose(got.covariances, ref.covariances, rtol=1e-9)


def _q(W, n, covariances):
    """-2 Q of covariances (the constrained M-step minimises it)."""
    return objective(W, n, covariances)


@pytest.mark.parametrize("covariance_type", ITERATIVE)
def test_iterative_m_steps_raise_q_and_reach_the_family_maximum(covariance_type):
    """Each lean EM step of an iterative model raises the expected complete-data
    log-likelihood from the current covariances (generalised EM), and from a partition
    (many rounds) it reaches the family's own constrained maximiser."""
    from gaussmix import families

    family = families.get(covariance_type)
    X = _data(D=3)
    rows = Rows(X, None, 1e-6, features_for([covariance_type]))
    rng = np.random.default_rng(7)
    batch = rows.from_labels([rng.integers(0, 3, X.shape[0]) for _ in range(3)], 3,
                             [covariance_type])
    for _ in range(3):  # a few EM steps: Q of the new covariances >= Q of the old ones
        G, _, bad = rows.e_step(batch)
        assert not bad.any()
        new = rows.m_step(G, batch.types, previous=batch)
        for s in range(batch.size):
            params = batch.member(s)
            st = stats.block_statistics(X, params)
            ref = stats.m_step(st, reg_covar=1e-6, previous=params)  # converged rounds
            # the objective on the regularised scatter about the new means
            nk = st.nk + 10 * np.finfo(float).eps
            d = st.s1 / st.nk[:, None]
            if st.s2.ndim == 2:  # diagonal statistics: a diagonal scatter
                scat = (st.s2 - st.s1 * d)[..., None] * np.eye(3)
            else:
                scat = st.s2 - st.s1[:, :, None] * d[:, None, :]
            W = 0.5 * (scat + np.swapaxes(scat, 1, 2)) + 1e-6 * nk[:, None, None] * np.eye(3)
            old = _q(W, nk, family.full_covariances(params.covariances, 3, 3))
            mine = _q(W, nk, new.covariances[s])
            best = _q(W, nk, family.full_covariances(ref.covariances, 3, 3))
            assert mine <= old + 1e-9 * abs(old)
            assert best <= mine + 1e-9 * abs(mine)
        batch = new


def test_mixed_types_step_independently():
    """A mixture's step does not depend on the other mixtures of its batch."""
    X = _data()
    rows = Rows(X, None, 1e-6, "full")
    labels = [np.random.default_rng(4).integers(0, 3, X.shape[0])]
    batch = rows.from_labels(labels, 3, TYPES)
    together, ll, _ = rows.step(batch)
    for s in range(batch.size):
        alone, ll_alone, _ = rows.step(batch.take([s]))
        assert ll_alone[0] == pytest.approx(ll[s], rel=1e-13)
        np.testing.assert_allclose(alone.covariances[0], together.covariances[s], rtol=1e-12)


@pytest.mark.parametrize("n", [2000, 2049])
def test_threads_share_the_blocks_of_rows_with_the_same_bits(n):
    """An E-step whose rows make several blocks gives the same bits with a pool of threads
    as without one: each block's sums computed alone, added in the blocks' order."""
    from concurrent.futures import ThreadPoolExecutor

    X = _data(n=n, D=4)
    w = np.random.default_rng(3).uniform(0.5, 2.0, n)
    labels = [np.random.default_rng(s).integers(0, 6, n) for s in range(8)]
    alone = Rows(X, w, 1e-6, "full")
    batch = alone.from_labels(labels, 6, ("full", "tied", "diag", "spherical"))
    assert batch.size * 6 * n > 2 * 2**17  # (several blocks: _E_BLOCK_VALUES each)
    with ThreadPoolExecutor(2) as pool:
        shared = Rows(X, w, 1e-6, "full", pool)
        G1, ll1, bad1 = alone.e_step(batch)
        G2, ll2, bad2 = shared.e_step(batch)
        new1, _, _ = alone.step(batch)
        new2, _, _ = shared.step(batch)
    np.testing.assert_array_equal(G1, G2)
    np.testing.assert_array_equal(ll1, ll2)
    np.testing.assert_array_equal(bad1, bad2)
    np.testing.assert_array_equal(new1.covariances, new2.covariances)
    # and the blocks are the rows: the same sums as one block of all of them
    one = Rows(X, w, 1e-6, "full")
    G_one, ll_one = one._e_block(one.coefficients(batch)[0].reshape(-1, G1.shape[-1]),
                                 batch.size, 6, 0, n)
    np.testing.assert_allclose(G1.reshape(G_one.shape), G_one, rtol=1e-10, atol=1e-8)
    np.testing.assert_allclose(ll1, ll_one @ w, rtol=1e-12)


def test_selection_spreads_rows_over_threads_only_on_many_rows():
    from gaussmix import selection

    with selection._row_threads(selection._THREADS_MIN_ROWS - 1, True) as pool:
        assert pool is None
    with selection._row_threads(10 * selection._THREADS_MIN_ROWS, False) as pool:
        assert pool is None  # (one of several processes, or the BLAS not held to one thread)
    with selection._row_threads(10 * selection._THREADS_MIN_ROWS, True) as pool:
        assert (pool is None) == (selection.available_cores() < 2)


def test_invalid_covariance_is_flagged_not_raised():
    X = _data(D=2)
    rows = Rows(X, None, 1e-6, "full")
    batch = rows.from_labels([np.arange(X.shape[0]) % 2], 2, ("full", "full"))
    batch.covariances[1, 0] = [[1.0, 2.0], [2.0, 1.0]]  # not positive definite
    _, ll, bad = rows.step(batch)
    assert list(bad) == [False, True]
    assert np.isfinite(ll[0]) and ll[1] == -np.inf


@pytest.mark.parametrize("covariance_type", TYPES)
def test_squarem_reaches_the_em_limit_in_fewer_steps(covariance_type):
    X = np.asarray(load_faithful(), dtype=np.float64)
    rows = Rows(X, None, 1e-6, features_for([covariance_type]))
    labels = np.random.default_rng(5).integers(0, 4, X.shape[0])
    start = rows.from_labels([labels], 4, [covariance_type])
    fast = run_squarem(rows.step, start, gain=1e-6, max_steps=5000)
    assert not fast.failed[0]
    # plain EM, through run_em and the general engine, to a tight tolerance
    plain = run_em(
        lambda p: stats.block_statistics(X, p), start.member(0), reg_covar=1e-6, tol=1e-11,
        max_iter=20000,
    )
    limit = plain.lower_bound * X.shape[0]
    assert fast.log_likelihood[0] >= limit - 1e-3
    assert fast.n_iter[0] < plain.n_iter


def test_squarem_never_lowers_the_log_likelihood():
    X = np.asarray(load_faithful(), dtype=np.float64)
    rows = Rows(X, None, 1e-6, "full")
    labels = np.random.default_rng(6).integers(0, 6, X.shape[0])
    start = rows.from_labels([labels], 6, ["full"])
    seen = []

    def step(batch):
        new, ll, bad = rows.step(batch)
        return new, ll, bad

    previous = -np.inf
    for max_steps in (3, 6, 9, 30, 60, 120):
        out = run_squarem(step, start, gain=0.0, max_steps=max_steps)
        seen.append(out.log_likelihood[0])
        assert out.log_likelihood[0] >= previous - 1e-9
        previous = out.log_likelihood[0]
    assert seen[-1] > seen[0]


def test_squarem_continued_from_its_step_budget_is_one_run_without_a_repeated_step():
    """A run stopped by max_steps and continued with ``first=`` (its ``stepped`` result)
    takes the same path as one longer run: the same parameters, log-likelihoods and
    cycle-start history, and no EM step spent twice."""
    X = np.asarray(load_faithful(), dtype=np.float64)
    rows = Rows(X, None, 1e-6, "full")
    rng = np.random.default_rng(8)
    start = rows.from_labels([rng.integers(0, 5, X.shape[0]) for _ in range(2)], 5,
                             ["full", "tied", "diag"])
    S = start.size
    calls = []

    def step(batch):
        calls.append(batch.size)
        return rows.step(batch)

    whole = run_squarem(step, start, gain=0.0, max_steps=13)
    n_whole = len(calls)
    calls.clear()
    part = run_squarem(step, start, gain=0.0, max_steps=7)
    assert part.stepped is not None and (part.n_iter == 7).all()
    rest = run_squarem(step, part.batch, gain=0.0, max_steps=6, project=None,
                       first=(part.stepped, part.log_likelihood, np.zeros(S, dtype=bool)))
    assert len(calls) == n_whole  # (the step that stopped the first run is not repeated)
    assert (part.n_iter + rest.n_iter == whole.n_iter).all()
    np.testing.assert_array_equal(rest.log_likelihood, whole.log_likelihood)
    np.testing.assert_array_equal(rest.batch.covariances, whole.batch.covariances)
    for s in range(S):
        assert part.history[s] + rest.history[s] == whole.history[s]
    # a run that converged within its budget has nothing to continue
    assert run_squarem(rows.step, whole.batch, gain=np.inf, max_steps=13).stepped is None


def test_statistics_step_drives_any_data_source():
    """The same SQUAREM through a data source's statistics(params) reaches the same limit."""
    X = _data(D=2, n=400)
    rows = Rows(X, None, 1e-6, "full")
    start = rows.from_labels([np.arange(X.shape[0]) % 3], 3, ("tied",))
    lean = run_squarem(rows.step, start, gain=1e-7, max_steps=3000)
    general = run_squarem(
        statistics_step(lambda p: stats.block_statistics(X, p), 1e-6),
        start, gain=1e-7, max_steps=3000,
    )
    assert general.log_likelihood[0] == pytest.approx(lean.log_likelihood[0], abs=1e-5)
    assert isinstance(general.batch, Batch)


CONSTRAINED = TYPES[4:]  # mclust's ten other models: batched update and projection


def _random_spd(rng, S, K, D):
    A = rng.normal(size=(S, K, D, D))
    return A @ np.swapaxes(A, -1, -2) + 0.5 * np.eye(D)


@pytest.mark.parametrize("covariance_type", CONSTRAINED)
def test_projection_lands_on_the_constraint_and_keeps_what_satisfies_it(covariance_type):
    """Each family's batched projection gives covariances that pass the family's own
    constraint check, and leaves covariances already on the constraint unchanged."""
    from gaussmix import families
    from gaussmix._batch import _storage, project_covariances

    family = families.get(covariance_type)
    code = TYPES.index(covariance_type)
    rng = np.random.default_rng(3)
    S, K, D = 4, 3, 3
    cov = _random_spd(rng, S, K, D)
    if family.statistic != "full":  # the diagonal models store diagonal matrices
        cov = np.diagonal(cov, axis1=-2, axis2=-1)[..., None] * np.eye(D)
    projected = project_covariances(covariance_type, cov)
    assert np.all(np.isfinite(projected))
    for s in range(S):
        stored = _storage(code, projected[s])
        family.check_precisions_init(family.precisions(stored))  # raises if off the constraint
    again = project_covariances(covariance_type, projected)
    np.testing.assert_allclose(again, projected, rtol=1e-9, atol=1e-12)


def test_eve_and_vve_step_together_as_each_alone():
    """The joint common-orientation loop (EVE and VVE mixtures in one call) gives each
    mixture what its own family's update gives it."""
    from gaussmix import families
    from gaussmix.families._batched import common_orientation

    rng = np.random.default_rng(5)
    S, K, D = 6, 3, 4
    W = _random_spd(rng, S, K, D) * 10.0
    n_k = rng.uniform(5, 20, size=(S, K))
    eve = np.array([True, False, True, True, False, False])
    previous = np.concatenate([
        families.get("EVE").batched_covariances(W[eve], n_k[eve]),
        families.get("VVE").batched_covariances(W[~eve], n_k[~eve]),
    ])
    order = np.concatenate([np.flatnonzero(eve), np.flatnonzero(~eve)])
    start = np.empty_like(previous)
    start[order] = previous
    for prev in (None, start):
        together = common_orientation(W, n_k, prev, eve)
        for flag, name in ((True, "EVE"), (False, "VVE")):
            mask = eve == flag
            alone = families.get(name).batched_covariances(
                W[mask], n_k[mask], None if prev is None else prev[mask])
            np.testing.assert_allclose(together[mask], alone, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("covariance_type", ITERATIVE)
def test_single_fit_and_the_batched_update_reach_the_same_maximum(covariance_type):
    """A single fit's iterative M-step is the family's batched update with S = 1 run to
    its tolerance; the batched update as selection runs it (from a partition) reaches the
    same constrained maximum of Q."""
    from gaussmix import families

    family = families.get(covariance_type)
    rng = np.random.default_rng(11)
    K, D = 3, 3
    W = _random_spd(rng, 1, K, D)[0] * 5.0
    n = rng.uniform(5, 20, size=K)
    diagonal = family.statistic != "full"
    given = np.diagonal(W, axis1=-2, axis2=-1) if diagonal else W
    single = family.full_covariances(family.solve_scatter(given, n, D), K, D)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        batched = family.batched_covariances(given[None], n[None])[0]
    Wq = np.diagonal(W, axis1=-2, axis2=-1)[..., None] * np.eye(D) if diagonal else W
    best, mine = objective(Wq, n, single), objective(Wq, n, batched)
    assert abs(mine - best) <= 1e-8 * abs(best)


@pytest.mark.parametrize("D", [1, 2, 3, 4])
def test_small_stack_factorisation_equals_lapack(D):
    """The E-step's entry-by-entry Cholesky (_small_spd): LAPACK's inverses and
    log-determinants to rounding, and the matrices without a factor flagged."""
    from gaussmix._batch import _small_spd

    rng = np.random.default_rng(D)
    cov = _random_spd(rng, 30, 4, D) * rng.lognormal(0, 3, size=(30, 4, 1, 1))
    cov[3, 1] = -np.eye(D)  # not positive definite
    cov[5, 2, 0, 0] = np.nan
    prec, logdet, factored = _small_spd(cov)
    expected = np.ones((30, 4), dtype=bool)
    expected[3, 1] = expected[5, 2] = False
    np.testing.assert_array_equal(factored, expected)
    ok = expected
    scale = np.abs(np.linalg.inv(cov[ok])).max(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(prec[ok] / scale, np.linalg.inv(cov[ok]) / scale, atol=1e-12)
    np.testing.assert_allclose(logdet[ok], np.linalg.slogdet(cov[ok])[1], rtol=1e-12,
                               atol=1e-12)


def test_invalid_covariance_in_a_large_stack_is_flagged():
    """As above, with enough mixtures that the E-step factors the stack entry by entry."""
    X = _data(D=2)
    rows = Rows(X, None, 1e-6, "full")
    labels = [np.random.default_rng(s).integers(0, 2, X.shape[0]) for s in range(60)]
    batch = rows.from_labels(labels, 2, ("full",))
    batch.covariances[7, 0] = [[1.0, 2.0], [2.0, 1.0]]  # not positive definite
    _, ll, bad = rows.step(batch)
    assert np.flatnonzero(bad).tolist() == [7]
    assert ll[7] == -np.inf and np.isfinite(np.delete(ll, 7)).all()
    # every other mixture as it steps alone (LAPACK's factors: a stack of one)
    for s in (0, 8, 59):
        _, ll_alone, _ = rows.step(batch.take([s]))
        assert ll_alone[0] == pytest.approx(ll[s], rel=1e-12)


def _far_row_data():
    """36 standard normal rows and one at (1e6, 1e6, 1e6): the one-component covariance
    has eigenvalues about 1, 1.4 and 8e10, and every row lies about 2.7e4 from the centre
    (the far row pulls it), where the quadratic features u_i u_j are about 1e9."""
    rng = np.random.default_rng(66)
    X = rng.normal(size=(37, 3))
    X[0] = 1e6
    return X


@pytest.mark.parametrize("n_mixtures", [1, 150])  # LAPACK's inverse; _small_spd's (a guard)
def test_log_densities_of_an_ill_conditioned_covariance(n_mixtures):
    """The log-likelihood of every row under a covariance of condition number 1e11: the
    Gaussian log-density computed from a Cholesky factor, within 1e-6. LAPACK's inverse of
    such a matrix is not symmetric (1e-7 relative); taken as it was, the features' sum
    of each pair once made the log-likelihood +69,320 where it is -628.07."""
    X = _far_row_data()
    mean = X.mean(axis=0)
    cov = np.cov(X.T, bias=True) + 1e-6 * np.eye(3)
    assert np.linalg.cond(cov) > 1e10
    z = np.linalg.solve(np.linalg.cholesky(cov), (X - mean).T)
    logdet = np.linalg.slogdet(cov)[1]
    reference = -0.5 * (np.sum(z * z, axis=0) + 3 * np.log(2 * np.pi) + logdet)
    rows = Rows(X, None, 1e-6, "full")
    batch = Batch(np.full(n_mixtures, TYPES.index("full")), np.ones((n_mixtures, 1)),
                  np.repeat(mean[None, None], n_mixtures, axis=0),
                  np.repeat(cov[None, None], n_mixtures, axis=0))
    _, ll, bad = rows.e_step(batch)
    assert not bad.any()
    np.testing.assert_allclose(ll, reference.sum(), rtol=1e-6)
    # row by row: the far row's features (about 1e12) leave an error of about
    # eps x 1e12 x |P| (1e-4) in a sum of -33.5 (every other row's was 52 off, its 68,000)
    coef, _ = rows.coefficients(batch)
    np.testing.assert_allclose(rows.Q @ coef[0, 0], reference, rtol=1e-6, atol=1e-3)
