"""The shortcuts of the selection engine's fast paths give the same mixtures as the long way."""

import warnings

import numpy as np
import pytest

from gaussmix import em, selection
from gaussmix._batch import TYPES, Batch, Rows


def _batch(seed, S=3, K=2, D=2):
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(S, K, D, D))
    cov = A @ np.swapaxes(A, -1, -2) + np.eye(D)
    w = rng.uniform(0.2, 1.0, (S, K))
    return Batch(np.arange(S) % 4, w / w.sum(axis=1, keepdims=True),
                 rng.normal(size=(S, K, D)), cov)


def _snapshot(batch):
    return [a.copy() for a in (batch.weights, batch.means, batch.covariances)]


def _same(batch, arrays):
    return all(np.array_equal(x, y) for x, y in
               zip((batch.weights, batch.means, batch.covariances), arrays, strict=True))


@pytest.mark.parametrize("mask", [[True, True, True], [False, False, False], [True, False, True]])
def test_choose_picks_per_mixture_and_modifies_nothing(mask):
    mask = np.array(mask)
    a, b = _batch(0), _batch(1)
    keep_a, keep_b = _snapshot(a), _snapshot(b)
    out = em._choose(mask, a, b)
    for s in range(3):
        src = a if mask[s] else b
        assert np.array_equal(out.weights[s], src.weights[s])
        assert np.array_equal(out.covariances[s], src.covariances[s])
    assert _same(a, keep_a) and _same(b, keep_b)


@pytest.mark.parametrize("index", [[0, 1, 2], [1], [0, 2]])
def test_assign_replaces_exactly_the_indexed_mixtures(index):
    index = np.array(index)
    target, source = _batch(2), _batch(3, S=index.size)
    before, keep = target.copy(), _snapshot(source)
    em._assign_into(target, index, source)
    for j, s in enumerate(index):
        for name in ("weights", "means", "covariances"):
            assert np.array_equal(getattr(target, name)[s], getattr(source, name)[j])
    for s in set(range(3)) - set(index.tolist()):
        assert np.array_equal(target.means[s], before.means[s])
    assert _same(source, keep)


def test_symmetric_take_matches_explicit_scatter():
    """m_step builds each (D, D) second moment from its upper triangle by one flat take."""
    rng = np.random.default_rng(4)
    X = rng.normal(size=(60, 3))
    rows = Rows(X, None, 1e-6, "full")
    labels = [rng.integers(0, 3, 60) for _ in range(2)]
    batch = rows.from_labels(labels, 3, TYPES)
    G, _, _ = rows.e_step(batch)
    D = 3
    r, c = np.triu_indices(D)
    quad = G[..., D + 1 :]
    explicit = np.empty((*G.shape[:2], D, D))
    explicit[..., r, c] = quad
    explicit[..., c, r] = quad
    taken = quad[..., rows._symmetric].reshape(explicit.shape)
    assert np.array_equal(taken, explicit)


@pytest.mark.parametrize("order", ["C", "F"])
def test_diagonal_view_writes_through_in_either_layout(order):
    from gaussmix._batch import _diagonal_view

    a = np.asarray(np.arange(2 * 3 * 3, dtype=float).reshape(2, 3, 3), order=order)
    expected = a.copy()
    expected[:, [0, 1, 2], [0, 1, 2]] += 0.5
    _diagonal_view(a)[...] += 0.5
    assert np.array_equal(a, expected)


def test_race_keeps_finalists_and_the_best_polished_one_wins(monkeypatch):
    """The race stops at two starts per type; both are polished; the better one is kept."""
    from gaussmix import selection
    from gaussmix.datasets import load_faithful

    X = np.asarray(load_faithful(), dtype=np.float64)
    types = ("spherical", "diag", "tied", "full")
    engine = selection._Engine(X, None, None, types, 1e-6)
    K = 4
    rng = np.random.default_rng(0)
    labels = [rng.integers(0, K, X.shape[0]) for _ in range(8)]
    starts = selection._starts_of_partitions(engine.rows, labels, K, types)
    race = selection._run_race(engine.rows, starts, engine.n_eff, 1e-6, {}, {})
    assert set(race) == {0, 1, 2, 3}
    assert all(len(finalists) == selection._FINALISTS for finalists in race.values())

    seen = []
    original = selection._polish

    def spy(step, rows, cands, errors, **kw):
        out = original(step, rows, cands, errors, **kw)
        seen.append(out)
        return out

    monkeypatch.setattr(selection, "_polish", spy)
    rngs = {t: np.random.default_rng(1) for t in types}
    fitted = selection._fit_components(engine, K, types, starts, rngs, 1e-6)
    polished = seen[0]
    assert len(polished) == 2 * len(types)  # every finalist was polished
    for i, t in enumerate(types):
        best = max(c.log_likelihood for c in polished[2 * i : 2 * i + 2])
        assert fitted[t][0].log_likelihood == best


def test_ward_tree_with_compaction_matches_scipy():
    """Beyond 64 clusters the cost matrix is compacted as clusters merge; the merge costs
    (increases of the within-cluster sum of squares) stay SciPy's Ward heights^2 / 2."""
    hierarchy = pytest.importorskip("scipy.cluster.hierarchy")
    from gaussmix import selection

    rng = np.random.default_rng(0)
    Y = np.vstack([rng.normal(c, 1.0, (100, 3)) for c in (0.0, 6.0, 12.0)])
    merges = selection._ward_tree(Y, np.ones(Y.shape[0]))
    heights = hierarchy.linkage(Y, "ward")[:, 2]
    np.testing.assert_allclose([m[2] for m in merges], np.sort(heights**2 / 2), rtol=1e-9)
    assert all(a < b for a, b, _ in merges)
    cuts = selection._cut_tree(merges, Y.shape[0], [3])
    assert len({tuple(np.unique(cuts[3][i * 100 : (i + 1) * 100])) for i in range(3)}) == 3


def test_final_polish_on_all_rows_never_keeps_a_sample_likelihood(monkeypatch):
    """A winner raced on a sample whose polish on all the rows fails must not keep its
    race result: that log-likelihood is of the 2,000 sampled rows, and with n = all rows
    its BIC would come out far too low and win the selection."""
    from gaussmix import selection

    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(0, 1, (1500, 2)), rng.normal(6, 1, (1500, 2))])
    calls = []
    original = selection.run_squarem

    def failing_on_all_rows(step, batch, **kw):
        calls.append(step)
        if len(calls) > 1:  # the first polish runs on the sample, the second on all rows
            raise FloatingPointError("injected")
        return original(step, batch, **kw)

    monkeypatch.setattr(selection, "run_squarem", failing_on_all_rows)
    with pytest.raises(ValueError, match="injected"):
        selection.select_model(X, n_components=[2], covariance_types=["full"], random_state=0)


def test_finalists_raced_on_a_sample_are_ranked_on_all_the_rows(monkeypatch):
    """On more rows than the race's sample, the finalist of each type that goes on to the
    polish on all the rows is the one whose log-likelihood on all the rows is the highest
    (the sample can rank two maxima the other way): here the polish on the sample reports
    values that rank them upside down, and the choice does not follow them."""
    rng = np.random.default_rng(3)
    X = np.concatenate([rng.normal(0, 1, (1200, 2)), rng.normal(4, 1.5, (900, 2)),
                        rng.normal((0, 6), 0.7, (600, 2))])
    rows_all = Rows(X, None, 1e-6)
    seen = []
    original = selection._polish

    def polish(step, rows_check, cands, errors, **kw):
        out = original(step, rows_check, cands, errors, **kw)
        if kw.get("other_rows"):  # the final polish: what it started from
            seen.append(("final", [c.batch for c in cands]))
        elif not kw:  # the polish on the sample
            seen.append(("sample", [(int(c.batch.types[0]), c.batch) for c in out]))
            for c in out:  # values that would rank the finalists upside down
                c.log_likelihood = -c.log_likelihood
        return out

    monkeypatch.setattr(selection, "_polish", polish)
    selection.select_model(X, n_components=[2, 3], covariance_types=["full", "diag"],
                           random_state=0)
    checked = 0
    for (kind, finalists), (final_kind, started) in zip(seen[::2], seen[1::2], strict=True):
        assert (kind, final_kind) == ("sample", "final")
        for batch in started:
            code = int(batch.types[0])
            mine = [b for c, b in finalists if c == code]
            values = rows_all.e_step(Batch.stack(mine))[1]
            chosen = rows_all.e_step(batch)[1][0]
            assert chosen == values.max()
            checked += len(mine) > 1
    assert checked  # (some type had two finalists to rank)


def test_selected_models_keep_their_polish_trace():
    """A model built by select_model carries the log-likelihood of its polish, one value per
    SQUAREM cycle (non-decreasing, ending at lower_bound_): the CLI's loglik.png plots it
    (it used to hold the final value only, a one-point plot)."""
    from gaussmix.datasets import load_faithful

    model = selection.select_model(load_faithful(), n_components=[3],
                                   covariance_types=["tied"], random_state=0).best_estimator_
    bounds = np.asarray(model.lower_bounds_)
    assert bounds.size >= 2
    assert np.all(np.diff(bounds) >= -1e-12)
    assert bounds[-1] == model.lower_bound_


def _fails_for_diag(real, rows_wanted=None):
    """A step that raises for any batch holding a diag mixture of 3 components (on the rows
    of ``rows_wanted`` many, if given), as a batched eigh raises for one bad mixture."""

    def step(rows, batch):
        if (batch.weights.shape[1] == 3 and np.any(batch.types == TYPES.index("diag"))
                and (rows_wanted is None or rows.Q.shape[0] == rows_wanted)):
            raise np.linalg.LinAlgError("injected")
        return real(rows, batch)

    return step


def test_a_mixture_whose_step_raises_fails_alone(monkeypatch):
    """Every covariance type of a K steps in one batched call: an exception raised by one
    mixture's statistics (iris's 14-model grid: eigh on an EEV extrapolation with NaN) must
    fail that mixture only, not every start of the race or every polish of that K."""
    from gaussmix.datasets import load_faithful

    X = load_faithful()
    kw = dict(n_components=[2, 3], covariance_types=["spherical", "diag", "EEV"],
              random_state=0)
    clean = selection.select_model(X, **kw)
    monkeypatch.setattr(selection, "_em_step", _fails_for_diag(selection._em_step))
    hit = selection.select_model(X, **kw)
    for a, b in zip(clean.table, hit.table, strict=True):
        if (a["covariance_type"], a["n_components"]) == ("diag", 3):
            assert b["log_likelihood"] is None and "injected" in b["error"]
        else:
            assert b["log_likelihood"] == pytest.approx(a["log_likelihood"], abs=1e-6), a


@pytest.mark.parametrize("where", ["weights", "means", "covariances"])
def test_a_mixture_with_a_non_finite_parameter_fails_alone_without_warnings(where):
    """_split_on_error keeps a mixture with an inf or NaN parameter (a SQUAREM
    extrapolation gone astray) out of the step, bad with a NaN log-likelihood and its
    parameters unchanged; the others step as they would alone, and no warning is raised."""
    from gaussmix.datasets import load_faithful

    rows = Rows(load_faithful()[:80], None, 1e-6, "full")
    batch = _batch(3, S=4)
    batch.means += rows.center
    getattr(batch, where)[2].flat[1] = np.inf
    getattr(batch, where)[3].flat[0] = np.nan
    errors = {}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        new, ll, bad = selection._split_on_error(rows.step, batch, errors)
    assert bad.tolist() == [False, False, True, True] and np.isnan(ll[2:]).all()
    alone, ll_alone, _ = rows.step(batch.take([0, 1]))
    assert _same(new.take([0, 1]), _snapshot(alone))
    np.testing.assert_array_equal(ll[:2], ll_alone)
    kept, given = new.take([2, 3]), batch.take([2, 3])
    for a in ("weights", "means", "covariances"):
        assert np.array_equal(getattr(kept, a), getattr(given, a), equal_nan=True)
    assert not errors


def test_a_mixture_whose_step_raises_on_all_rows_fails_alone(monkeypatch):
    """The same in the final polish on all the rows of data larger than the race's sample."""
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(c, 1, (900, 2)) for c in (0, 5, 10)])
    kw = dict(n_components=[3], covariance_types=["spherical", "diag", "full"], random_state=0)
    clean = selection.select_model(X, **kw)
    real = Rows.step
    failing = _fails_for_diag(lambda rows, batch: real(rows, batch), rows_wanted=X.shape[0])
    monkeypatch.setattr(Rows, "step", lambda self, batch: failing(self, batch))
    hit = selection.select_model(X, **kw)
    for a, b in zip(clean.table, hit.table, strict=True):
        if a["covariance_type"] == "diag":
            assert b["log_likelihood"] is None and "injected" in b["error"]
        else:
            assert b["log_likelihood"] == pytest.approx(a["log_likelihood"], abs=1e-6), a


def _greedy_ward_cuts(Y, w, ks):
    """The textbook Ward agglomeration: merge the cheapest pair, one pair per step."""
    clusters = {i: ([i], Y[i].astype(float), float(w[i])) for i in range(len(Y))}
    cuts = {}
    while True:
        if len(clusters) in ks:
            labels = np.empty(len(Y), dtype=np.int64)
            for j, (members, _, _) in enumerate(clusters.values()):
                labels[members] = j
            cuts[len(clusters)] = labels
        if len(clusters) == 1:
            return cuts
        keys = sorted(clusters)
        best = min(((ma * mb / (ma + mb) * float(np.sum((ca - cb) ** 2)), a, b)
                    for i, a in enumerate(keys) for b in keys[i + 1:]
                    for (_, ca, ma), (_, cb, mb) in [(clusters[a], clusters[b])]))
        _, a, b = best
        ia, ca, ma = clusters.pop(a)
        ib, cb, mb = clusters.pop(b)
        clusters[a] = (ia + ib, (ma * ca + mb * cb) / (ma + mb), ma + mb)


def test_ward_rounds_of_reciprocal_pairs_cut_as_the_greedy_agglomeration():
    """The tree is built by rounds that merge every pair of mutual nearest neighbours at
    once; its cuts at every K are the partitions of the one-merge-at-a-time algorithm
    (weighted rows, values rounded to one decimal so that some rows coincide)."""
    from gaussmix import selection

    rng = np.random.default_rng(4)
    Y = np.round(np.vstack([rng.normal(c, 1.0, (25, 2)) for c in (0.0, 3.0, 7.0)]), 1)
    Y = Y[np.unique(Y, axis=0, return_index=True)[1]]  # distinct rows: no tied costs
    w = rng.uniform(0.5, 2.0, Y.shape[0])
    ks = list(range(1, 11))
    expected = _greedy_ward_cuts(Y, w, ks)
    merges = selection._ward_tree(Y, w)
    costs = [c for _, _, c in merges]
    assert costs == sorted(costs) and all(a < b for a, b, _ in merges)
    got = selection._cut_tree(merges, Y.shape[0], ks)
    for K in ks:
        assert selection._canonical(got[K]) == selection._canonical(expected[K]), K


# ------------------------------------------------- exact shortcuts of the small grids


def test_flattest_directions_of_a_stack_equal_each_matrix_alone():
    """The degeneracy check's one eigen-decomposition per fit gives, bit for bit, what one
    call per component gives: flat axes, flat directions, regular matrices, a subset of
    varying features and a non-finite mean among them."""
    from gaussmix._degeneracy import _flattest_direction, _flattest_directions

    rng = np.random.default_rng(3)
    D, K = 4, 7
    A = rng.normal(size=(K, D, D))
    W = A @ np.swapaxes(A, 1, 2)
    W[1, 2, :] = W[1, :, 2] = 0.0  # flat along feature 2
    low, vectors = np.linalg.eigh(W[3])
    W[3] = W[3] - low[0] * np.outer(vectors[:, 0], vectors[:, 0])  # flat along a direction
    means = rng.normal(size=(K, D)) * 10
    means[5, 1] = np.nan
    for varying in (np.arange(D), np.array([0, 1, 3]), np.array([], dtype=np.intp)):
        together = _flattest_directions(W, means, varying, 1e-6, 2.2e-16, 30.0)
        for k in range(K):
            alone = _flattest_direction(W[k], means[k], np.ones(1), varying, 1e-6, 2.2e-16,
                                        30.0)
            if alone is None:
                assert together[k] is None
            else:
                assert together[k][0] == alone[0]
                np.testing.assert_array_equal(together[k][1], alone[1])
    found = _flattest_directions(W, means, np.arange(D), 1e-6, 2.2e-16, 30.0)
    assert found[1] is not None and found[3] is not None and found[0] is None


def test_deferred_degeneracy_verdicts_are_the_full_check_s():
    """``Rows.degeneracy(defer=True)`` (the race's) defers only mixtures that the full
    check calls degenerate, and gives the others' reasons (or None) unchanged."""
    from gaussmix._batch import DEFERRED

    rng = np.random.default_rng(0)
    X = np.round(rng.normal(size=(60, 3)), 1)
    rows = Rows(X, None, 1e-6, "full")
    labels = [rng.integers(0, 2, size=60) for _ in range(6)]
    labels.append(np.r_[np.zeros(57, dtype=int), [1, 1, 1]])  # 3 points: full needs 4
    batch = rows.from_labels(labels, 2, ["full", "diag", "spherical", "tied"])
    deferred = rows.degeneracy(batch, defer=True)
    full = rows.degeneracy(batch)
    assert any(v is DEFERRED for v in deferred)
    for d, f in zip(deferred, full, strict=True):
        if d is DEFERRED:
            assert f is not None and "fewer than" in f
        else:
            assert d == f


def test_kmeans_plusplus_candidates_together_or_block_by_block_agree():
    """The seeding scores every candidate centre in one pass when the rows fit one block,
    else block by block: the same centres either way (weighted too)."""
    from gaussmix._init import kmeans_plusplus

    rng = np.random.default_rng(1)
    X = rng.normal(size=(500, 3)) * [1.0, 10.0, 0.1]
    for w in (None, rng.uniform(0.2, 3.0, size=500)):
        one = kmeans_plusplus(X, 6, np.random.default_rng(5), w)[1]
        blocks = kmeans_plusplus(X, 6, np.random.default_rng(5), w, block_size=64)[1]
        np.testing.assert_array_equal(one, blocks)


@pytest.mark.parametrize("D, K", [(2, 3), (2, 9), (4, 7), (6, 5), (1, 45)])
def test_responsibilities_of_each_mixture_equal_each_alone(D, K):
    """The ICL's responsibilities of a grid point's winners, from shared coefficient
    calls, are each winner's alone to the bit (also with an invalid mixture among them;
    K = 45 in 1-D: one mixture alone is factored entry by entry, as the stacks are)."""
    rng = np.random.default_rng(D * K)
    X = rng.normal(size=(400, D))
    rows = Rows(X, None, 1e-6, "full")
    labels = [np.r_[np.arange(K), rng.integers(0, K, size=400 - K)] for _ in range(5)]
    batch = rows.from_labels(labels, K, ["full", "spherical", "tied"])
    for _ in range(3):
        batch, _, _ = rows.step(batch)
    for b in (batch, batch.put([1], Batch(batch.types[1:2], -batch.weights[1:2],
                                             batch.means[1:2], batch.covariances[1:2]))):
        together = list(rows.responsibilities_each(b))
        assert len(together) == b.size
        for s in range(b.size):
            np.testing.assert_array_equal(together[s], rows.responsibilities(b.take([s])))


@pytest.mark.parametrize("features", ["full", "diag", "spherical"])
def test_accuracy_guard_with_its_variance_bound_equals_the_moments_test(features):
    """The bound that settles the accuracy guard without the moments never changes its
    verdict: against the guard's definition, E_k[u^2] / Var_k[u] <= 1e8, on mixtures with
    variances from far above to far below the data's spread (10 km offsets, 1e-9 widths)."""
    rng = np.random.default_rng(4)
    X = np.vstack([rng.normal(0, 1, size=(100, 3)), rng.normal(1e4, 1e-6, size=(20, 3))])
    rows = Rows(X, None, 1e-12, features)
    types = {"full": ["full", "tied"], "diag": ["diag"], "spherical": ["spherical"]}[features]
    batch = rows.from_labels([np.r_[np.zeros(100, int), np.ones(20, int)],
                              rng.integers(0, 2, size=120)], 2, types)
    scaled = batch.copy()
    factors = np.geomspace(1e3, 1e-9, batch.size)  # the last mixture: far too narrow
    scaled.covariances *= factors[:, None, None, None]
    bound_used = 0
    for b in (batch, scaled, *(batch.take([s]) for s in range(batch.size))):
        var = np.diagonal(b.covariances, axis1=-2, axis2=-1)
        bound_used += bool((var >= rows._accuracy_floor).all())  # (settled by the bound)
        G, _, _ = rows.e_step(b)
        D = X.shape[1]
        nk, quad = G[..., 0], G[..., D + 1:]
        if features == "full":
            second = quad[..., rows._on_diagonal]
        else:
            second = quad if features == "diag" else quad / D
        var = np.diagonal(b.covariances, axis1=-2, axis2=-1)
        with np.errstate(divide="ignore", invalid="ignore"):
            factor = second / (np.where(nk > 0, nk, 1.0)[..., None] * var)
        expected = ~np.any(factor > 1e8, axis=(1, 2))
        np.testing.assert_array_equal(rows.accurate(G, b), expected)
    assert not rows.accurate(*rows.e_step(scaled)[:1], scaled).all()
    assert bound_used  # (the wide mixtures alone: the bound settles them)


@pytest.mark.parametrize("code", range(14))
def test_splits_made_together_equal_each_split_made_alone(code):
    """The starts split from a fit with K - 1 components, made in one pass, are those of
    cutting each chosen component alone (written out here), for every model."""
    import math

    from gaussmix._batch import project

    rng = np.random.default_rng(code)
    K, D = 4, 3
    A = rng.normal(size=(1, K, D, D))
    w = rng.uniform(0.1, 1.0, (1, K))
    batch = project(Batch(np.array([code]), w / w.sum(), rng.normal(size=(1, K, D)),
                          A @ np.swapaxes(A, -1, -2) + np.eye(D)))
    together = selection._splits(batch, 0, 3)
    weights, means, full = batch.weights[0], batch.means[0], batch.covariances[0]
    eigval, eigvec = np.linalg.eigh(full)
    sigma = np.sqrt(np.maximum(eigval[:, -1], 0.0))
    order = np.argsort(-(weights * sigma), kind="stable")[:3]
    shift = math.sqrt(2.0 / math.pi)
    for i, j in enumerate(order):
        v = eigvec[j, :, -1]
        offset = shift * sigma[j] * v
        cov_j = full[j] - shift**2 * sigma[j] ** 2 * np.outer(v, v)
        new_w = np.append(weights, weights[j] / 2.0)
        new_w[j] /= 2.0
        new_m = np.vstack([means, means[j] + offset])
        new_m[j] = means[j] - offset
        new_full = np.concatenate([full, cov_j[None]])
        new_full[j] = cov_j
        np.testing.assert_array_equal(together.weights[i], new_w)
        np.testing.assert_array_equal(together.means[i], new_m)
        np.testing.assert_array_equal(together.covariances[i],
                                      selection._reduce_to_type(new_full, new_w, code))
    assert (together.types == code).all()


@pytest.mark.parametrize("code", [0, 2, 3, 7, 8, 13])
def test_a_one_component_fit_is_split_along_the_datas_principal_axes(code):
    """From one component, the splits cut it along the first principal axes of the data's
    covariance (not of the model's own covariance: a diagonal model's axes are the
    coordinates), largest first, one start per axis."""
    import math

    from gaussmix._batch import project

    rng = np.random.default_rng(code)
    D = 4
    A = rng.normal(size=(D, D))
    data_cov = A @ A.T + np.eye(D)
    fitted = project(Batch(np.array([code]), np.ones((1, 1)), rng.normal(size=(1, 1, D)),
                           data_cov[None, None].copy()))
    splits = selection._splits(fitted, 0, 3, data_cov)
    assert splits.size == 3 and (splits.types == code).all()
    eigval, eigvec = np.linalg.eigh(data_cov)
    mean = fitted.means[0, 0]
    shift = math.sqrt(2.0 / math.pi)
    for j in range(3):
        v, sigma = eigvec[:, -1 - j], math.sqrt(eigval[-1 - j])
        np.testing.assert_allclose(splits.weights[j], [0.5, 0.5])
        np.testing.assert_allclose(splits.means[j, 0], mean - shift * sigma * v)
        np.testing.assert_allclose(splits.means[j, 1], mean + shift * sigma * v)
        half = data_cov - shift**2 * sigma**2 * np.outer(v, v)
        np.testing.assert_allclose(
            splits.covariances[j],
            selection._reduce_to_type(np.stack([half, half]), splits.weights[j], code))
    # without the data's covariance: the fit's own axes (three starts still)
    assert selection._splits(fitted, 0, 3).size == 3


def test_two_components_of_diagonal_models_reach_their_best_maximum_from_the_splits(
        monkeypatch):
    """EEI and EVI with 2 components on the benchmark's synthetic set of 5,000 rows (four
    clusters): the maximum that random starts of the estimator find (the best of them)
    was missed for random_state 1 and 2 while one component was split only along the
    model's own (coordinate) axis; now along the data's principal axes too."""
    import warnings
    from pathlib import Path

    from gaussmix import GaussianMixture

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from bench_select import synthetic

    X = synthetic(5000)
    best = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for t in ("EEI", "EVI"):
            best[t] = min(GaussianMixture(2, covariance_type=t, init_params="random",
                                          random_state=s, tol=1e-8, max_iter=2000)
                          .fit(X).bic(X) for s in range(3))
    for seed in (1, 2):
        result = selection.select_model(X, n_components=[1, 2],
                                        covariance_types=["EEI", "EVI"], random_state=seed)
        for row in result.table:
            if row["n_components"] == 2:
                assert row["bic"] <= best[row["covariance_type"]] + 0.01, (seed, row)


def test_a_grid_point_whose_starts_all_degenerate_reports_the_reason_in_words():
    """The race defers the words of certain verdicts; a grid point reported degenerate
    gets them (full, 5 components on 12 rows in 3-D: every component on fewer than the 4
    points it needs)."""
    from gaussmix._batch import DEFERRED

    rng = np.random.default_rng(0)
    X = rng.normal(size=(12, 3))
    res = selection.select_model(X, n_components=[1, 5], covariance_types=["full"],
                                 random_state=0)
    row = next(r for r in res.table if r["n_components"] == 5)
    assert row["degenerate"] and row["degenerate"] is not DEFERRED
    assert "fewer than the 4 a full component needs" in row["degenerate"]


def test_the_screen_runs_on_every_kth_row_of_many_and_the_fits_stay_good(monkeypatch):
    """With more race rows than _SCREEN_MAX_SAMPLES, the screen of mclust's other models
    steps on every k-th row (a smaller Rows), the polish on all of them; the fits it
    picks are then polished as before: Old Faithful's EEE and VVV grid points still reach
    the log-likelihoods of mclust 6.0.0's printed ``mclustBIC(faithful)`` within 0.01."""
    from gaussmix.datasets import load_faithful

    X = load_faithful()
    monkeypatch.setattr(selection, "_SCREEN_MAX_SAMPLES", 100)
    sizes = set()
    original = selection._em_step

    def recording(rows, batch):
        sizes.add(rows.Q.shape[0])
        return original(rows, batch)

    monkeypatch.setattr(selection, "_em_step", recording)
    result = selection.select_model(X, n_components=[2, 3], covariance_types=["EEE", "VEE",
                                                                               "VVV"],
                                    random_state=0)
    assert sizes == {272, 91}  # all rows, and every 3rd for the screen
    loglik = {(r["covariance_type"], r["n_components"]): r["log_likelihood"]
              for r in result.table}
    # mclust's BIC = 2 loglik - p log n: -2314.316 (EEE, 3) and -2322.192 (VVV, 2), both
    # with p = 11 free parameters, as log-likelihoods
    for key, bic, p in ((("tied", 3), 2314.316, 11), (("full", 2), 2322.192, 11)):
        assert loglik[key] >= -(bic - p * np.log(272)) / 2 - 0.01


def test_a_start_the_screen_on_other_rows_returns_unchanged_ranks_last(monkeypatch):
    """A screen on every k-th row returns a start it could not run (failed or degenerate
    there) as it was, with its log-likelihood of the race's rows: not comparable with the
    screened ones', so it must not be picked for its value; and the picked ones enter
    the polish with their log-likelihood of the race's rows (_rescore)."""
    from gaussmix.datasets import load_faithful

    X = load_faithful()
    monkeypatch.setattr(selection, "_SCREEN_MAX_SAMPLES", 100)
    original = selection._polish
    planted, finalists = [], []

    def polish(step, rows_check, cands, errors, max_steps=selection._POLISH_MAX_ITER, **kw):
        out = original(step, rows_check, cands, errors, max_steps, **kw)
        if max_steps == selection._SCREEN_STEPS:  # the screen: return one start unchanged
            cands[0].log_likelihood = 1e9  # (far above any screened value)
            planted.append(cands[0])
            out[0] = cands[0]
        elif not kw.get("other_rows"):
            finalists.append([(c, c.log_likelihood, c.batch) for c in cands])
        return out

    monkeypatch.setattr(selection, "_polish", polish)
    selection.select_model(X, n_components=[3], covariance_types=["VEE", "EEV"],
                           random_state=0)
    assert planted and finalists
    chosen = [c for c, _, _ in finalists[0]]
    assert not any(c is p for c in chosen for p in planted)
    rows = selection.Rows(X, None, 1e-6, "full")
    for _, value, batch in finalists[0]:
        assert value == rows.e_step(batch)[1][0]  # its value on the race's rows


def test_the_polish_defers_words_only_where_a_degenerate_result_is_dropped(monkeypatch):
    """The screen and the polish on the race's rows drop a degenerate result (the
    candidate keeps its start), so they ask only for the verdict (defer); the final
    polish on all the rows keeps a degenerate result (never selected, but reported), so
    it asks for the words. And no reported row carries the deferred placeholder."""
    import inspect

    from gaussmix._batch import DEFERRED

    rng = np.random.default_rng(1)
    X = np.concatenate([rng.normal(0, 1, (1500, 2)), rng.normal(6, 1, (1500, 2)),
                        np.repeat([[20.0, 20.0]], 3, axis=0)])  # 3 repeated far points
    calls = []  # (other_rows, defer) of the polish's checks
    original = Rows.degeneracy

    def recording(self, batch, *, defer=False):
        caller = inspect.currentframe().f_back
        if caller.f_code.co_name == "_polish":
            calls.append((caller.f_locals["other_rows"], defer))
        return original(self, batch, defer=defer)

    monkeypatch.setattr(Rows, "degeneracy", recording)
    res = selection.select_model(X, n_components=[2, 3, 4], covariance_types=["full", "VEE"],
                                 random_state=0)
    assert {other for other, _ in calls} == {False, True}  # on the sample and on all rows
    assert all(defer is (not other) for other, defer in calls)
    assert all(r["degenerate"] != DEFERRED for r in res.table)
