"""Batched MAP EM (gaussmix._prior_batch) against the general path's MAP M-step, its
monotonicity, and select_model(prior=...) through it against the general path."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest

from gaussmix import _prior_select, families
from gaussmix._batch import TYPES, Batch, Rows
from gaussmix._prior import PRIOR_MODELS, data_moments, log_prior, resolve_prior
from gaussmix._prior_batch import map_m_step, map_step, run_map_em
from gaussmix.datasets import load_faithful
from gaussmix.selection import select_model
from gaussmix.stats import m_step, statistics_from_responsibilities

K = 3


def _data(seed=0, n=150, D=3):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, D)) @ rng.normal(size=(D, D)) + rng.normal(scale=5, size=D)
    w = rng.uniform(0.2, 3.0, size=n)
    return rng, X, w


@pytest.fixture
def converged_warm_updates(monkeypatch):
    """The batched iterative updates run from the previous covariances to convergence,
    as the general path's single-fit updates do. In model selection they stop after
    ``WARM_ROUNDS`` rounds (``WARM_SWEEPS`` sweeps): a generalised EM step, monotone
    (tested below), which the general path's converged step need not equal."""
    from gaussmix.families import _batched, vee, vei, vev

    for module in (vee, vei, vev):
        monkeypatch.setattr(module, "WARM_ROUNDS", _batched.COLD_ROUNDS)
    monkeypatch.setattr(_batched, "WARM_SWEEPS", _batched.COLD_SWEEPS)


def _close(a, b, tol):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape
    scale = max(float(np.max(np.abs(b))), 1e-300)
    assert float(np.max(np.abs(a - b))) <= tol * scale


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("model", PRIOR_MODELS)
def test_batched_map_m_step_equals_the_general_one(model, weighted, converged_warm_updates):
    """On random responsibilities (random statistics), from no previous fit and from one
    (the iterative updates' start, run to convergence), with a prior of weight 1 or not."""
    rng, X, w = _data(hash(model) % 1000)
    w = w if weighted else None
    family = families.get(model)
    code = TYPES.index(family.name)
    features = "full" if family.correlated else "diag" if family.statistic == "diagonal" \
        else "spherical"
    mean, cov = data_moments(X, w)
    prior = resolve_prior("default", family, K, mean, cov)
    if weighted:
        prior = dataclasses.replace(prior, weight=1.7)
    for feats in dict.fromkeys([features, "full"]):
        rows = Rows(X, w, 1e-6, feats)
        previous_batch = previous_params = None
        for _ in range(3):
            resp = rng.dirichlet(np.full(K, 0.5), size=X.shape[0])
            G = (rows.Qw.T @ resp).T[None]
            stats = statistics_from_responsibilities(X, resp, family.name,
                                                     shift=X[0], sample_weight=w)
            ref = m_step(stats, reg_covar=1e-6, prior=prior, previous=previous_params)
            got = map_m_step(rows, G, np.array([code]), {code: prior},
                             previous=previous_batch)
            params = got.member(0)
            _close(params.weights, ref.weights, 1e-12)
            _close(params.means, ref.means, 1e-10)
            _close(params.covariances, ref.covariances, 1e-10)
            previous_batch, previous_params = got, ref


def _starts(rows, X, rng, priors, codes):
    """Every type from a few random soft partitions (one MAP M-step each)."""
    resp = rng.dirichlet(np.full(K, 0.3), size=(4, X.shape[0]))
    G = np.einsum("nf,pnk->pkf", rows.Qw, resp)
    return Batch.stack([map_m_step(rows, G, np.full(4, c), priors) for c in codes])


@pytest.mark.parametrize("weighted", [False, True])
def test_map_em_never_lowers_the_log_posterior(weighted):
    """log-likelihood + log_prior / prior.weight (the log-posterior MAP EM raises, as
    _prior_select._log_posterior) after every step of every type, from rough starts."""
    rng, X, w = _data(3, n=200)
    w = (w * X.shape[0] / w.sum()) if weighted else None
    rows = Rows(X, w, 1e-6, "full")
    mean, cov = data_moments(X, w)
    priors = {}
    for model in PRIOR_MODELS:
        family = families.get(model)
        priors[TYPES.index(family.name)] = resolve_prior("default", family, K, mean, cov)
    batch = _starts(rows, X, rng, priors, sorted(priors))
    previous = None
    for _ in range(40):
        new, ll, bad = map_step(rows, batch, priors)
        assert not bad.any()
        post = np.array([ll[s] + log_prior(batch.member(s), priors[int(batch.types[s])])
                         / priors[int(batch.types[s])].weight for s in range(batch.size)])
        if previous is not None:
            assert np.all(post >= previous - 1e-9 * np.abs(previous)), post - previous
        previous, batch = post, new


def test_the_general_fallback_takes_the_same_step(monkeypatch, converged_warm_updates):
    """Mixtures whose moments would lose accuracy step through the general path: the same
    MAP step (the lean path's iterative updates run to convergence, as the general path's)."""
    rng, X, _ = _data(5)
    rows = Rows(X, None, 1e-6, "full")
    mean, cov = data_moments(X)
    priors = {TYPES.index(families.get(m).name): resolve_prior("default", families.get(m),
                                                               K, mean, cov)
              for m in ("VVV", "VEV", "EII", "VEI")}
    batch = _starts(rows, X, rng, priors, sorted(priors))
    batch, _, _ = map_step(rows, batch, priors)
    lean, ll, _ = map_step(rows, batch, priors)
    monkeypatch.setattr(Rows, "accurate", lambda self, G, b: np.zeros(b.size, dtype=bool))
    general, ll2, _ = map_step(rows, batch, priors)
    np.testing.assert_allclose(ll2, ll, rtol=1e-12)
    for a in ("weights", "means", "covariances"):
        np.testing.assert_allclose(getattr(general, a), getattr(lean, a), rtol=1e-9,
                                   atol=1e-12)


def test_run_map_em_stops_each_mixture_at_its_own_tolerance():
    rng, X, _ = _data(7)
    rows = Rows(X, None, 1e-6, "full")
    mean, cov = data_moments(X)
    code = TYPES.index("full")
    priors = {code: resolve_prior("default", families.get("full"), K, mean, cov)}
    batch = _starts(rows, X, rng, priors, [code])
    res = run_map_em(rows, batch, priors, tol=1e-6, max_iter=5000, history=True)
    assert res.converged.all() and not res.failed.any()
    for s in range(batch.size):
        bounds = res.lower_bounds[s]
        assert len(bounds) == res.n_iter[s] and bounds[-1] == res.lower_bound[s]
        assert abs(bounds[-1] - bounds[-2]) < 1e-6 <= abs(bounds[-2] - bounds[-3])
    assert len(set(res.n_iter.tolist())) > 1  # each stopped on its own


X_FAITHFUL = np.asarray(load_faithful(), dtype=np.float64)
_GRID = dict(n_components=[1, 2, 3], covariance_types=["EII", "spherical", "VEI", "diag",
                                                       "tied", "EEV", "VEV", "full"],
             prior="default", random_state=0)


@pytest.mark.parametrize(("weighted", "types"), [
    (False, _GRID["covariance_types"]), (True, _GRID["covariance_types"]),
    (False, ["EII", "spherical", "EEI", "VEI", "EVI", "diag"]),  # the rows' squares only
    (True, ["EII", "spherical"]),  # the rows' squared norms only
])
def test_selection_equals_the_general_path(monkeypatch, weighted, types):
    """select_model(prior=...) through the batched MAP EM against the general path (one
    GaussianMixture fit per start): the same modes, table and estimators."""
    w = None
    if weighted:
        w = np.random.default_rng(1).integers(1, 4, size=X_FAITHFUL.shape[0]).astype(float)
    grid = {**_GRID, "covariance_types": types}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fast = select_model(X_FAITHFUL, sample_weight=w, **grid)
        monkeypatch.setattr(_prior_select, "_refine_batched", _prior_select._refine_general)
        slow = select_model(X_FAITHFUL, sample_weight=w, **grid)
    for a, b in zip(fast.table, slow.table, strict=True):
        assert (a["covariance_type"], a["n_components"]) == (b["covariance_type"],
                                                             b["n_components"])
        assert a["error"] is None and b["error"] is None
        for key in ("log_likelihood", "bic", "aic", "icl"):
            assert a[key] == pytest.approx(b[key], rel=1e-8), key
        assert a["n_parameters"] == b["n_parameters"]
        assert a["converged"] and b["converged"]
        assert a["degenerate"] is None and b["degenerate"] is None
        # the same EM trajectories (the iterative updates may take other inner rounds)
        assert abs(a["n_iter"] - b["n_iter"]) <= max(2, 0.05 * b["n_iter"])
    for key, slow_model in slow.estimators_.items():
        model = fast.estimators_[key]
        assert set(vars(model)) == set(vars(slow_model))
        assert model.get_params() == slow_model.get_params()
        assert model.prior_.model == slow_model.prior_.model
        assert model.prior_.weight == pytest.approx(slow_model.prior_.weight, rel=1e-12)
        np.testing.assert_allclose(model.prior_.scale, slow_model.prior_.scale, rtol=1e-12)
        np.testing.assert_allclose(model.means_, slow_model.means_, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(model.weights_, slow_model.weights_, rtol=1e-6,
                                   atol=1e-8)
        assert model.lower_bound_ == pytest.approx(slow_model.lower_bound_, rel=1e-8)
        assert model._fit_weight == slow_model._fit_weight
        assert model.converged_ and model.degenerate_ is False
        np.testing.assert_array_equal(model.outlier_components_,
                                      slow_model.outlier_components_)
        assert model.n_features_in_ == slow_model.n_features_in_


def test_staged_run_equals_two_runs():
    """run_staged (the finalists' tight stage overlapping the other points' loose one) takes
    each mixture through the steps of run_map_em to the loose tolerance, then of
    run_map_em from the best few to the tight one."""
    from gaussmix._prior_batch import DONE, DROPPED, run_staged

    rng, X, _ = _data(11)
    rows = Rows(X, None, 1e-6, "full")
    mean, cov = data_moments(X)
    codes = [TYPES.index(families.get(m).name) for m in ("VVV", "VEI", "EII")]
    priors = {c: resolve_prior("default", families.get(TYPES[c]), K, mean, cov)
              for c in codes}
    batch = _starts(rows, X, rng, priors, codes)  # 4 starts per type
    points = np.repeat(np.arange(3), 4)
    res = run_staged(rows, batch, priors, points, loose_tol=1e-4, tight_tol=1e-8,
                     finalists=2, max_iter=10_000)
    loose = run_map_em(rows, batch, priors, tol=1e-4, max_iter=10_000)
    _, value, _ = rows.e_step(loose.batch)
    np.testing.assert_array_equal(res.n_loose, loose.n_iter)
    for p in range(3):
        mine = np.flatnonzero(points == p)
        order = [s for _, s in sorted(((value[s], s) for s in mine), reverse=True)[:2]]
        assert [s for s in mine if res.stage[s] == DONE] == sorted(order)
        assert all(res.stage[s] == DROPPED for s in mine if s not in order)
        assert [res.finalist[s] for s in order] == [0, 1]
        tight = run_map_em(rows, loose.batch.take(order), priors, tol=1e-8,
                           max_iter=10_000, lower_bound=loose.lower_bound[order],
                           history=True)
        np.testing.assert_array_equal(res.n_tight[order], tight.n_iter)
        np.testing.assert_allclose(res.lower_bound[order], tight.lower_bound, rtol=1e-12)
        np.testing.assert_allclose(res.batch.take(order).covariances,
                                   tight.batch.covariances, rtol=1e-9, atol=1e-12)
        assert res.converged[order].all()
        for j, s in enumerate(order):
            np.testing.assert_allclose(res.lower_bounds[s], tight.lower_bounds[j],
                                       rtol=1e-12)
        _, final, _ = rows.e_step(tight.batch)
        np.testing.assert_allclose(res.value[order], final, rtol=1e-12)
