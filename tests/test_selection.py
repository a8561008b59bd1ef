"""Model selection over n_components x covariance_type (gaussmix.selection)."""

from __future__ import annotations

import doctest
import importlib
import math
import warnings

import numpy as np
import pytest

import gaussmix.selection as selection
from gaussmix import GaussianMixture
from gaussmix.datasets import load_faithful
from gaussmix.selection import MCLUST_NAMES, SelectionResult, select_model

TYPES = ("spherical", "diag", "tied", "full")

# mclust's BIC table for Old Faithful, mclustBIC(faithful) with mclust's defaults (mclust BIC
# sign: higher is better), columns VII, VVI, EEE, VVV for G = 1..9. Printed in many
# tutorials; summary: EEE,3 -2314.316 (log-likelihood -1126.326), VVE,2, VEE,3.
MCLUST_FAITHFUL_BIC = {
    1: (-4024.721, -3055.835, -2607.623, -2607.623),
    2: (-3458.305, -2346.065, -2325.220, -2322.192),
    3: (-3336.598, -2342.366, -2314.316, -2349.696),
    4: (-3242.826, -2343.486, -2331.223, -2351.493),
    5: (-3129.080, -2351.017, -2360.659, -2379.388),
    6: (-3038.171, -2373.469, -2347.352, -2387.016),
    7: (-2973.374, -2394.696, -2369.330, -2412.440),
    8: (-2935.082, -2413.705, -2376.104, -2442.018),
    9: (-2919.415, -2432.708, -2389.609, -2460.398),
}


# The whole of mclustBIC(faithful) (mclust 6.0.0, its defaults, all 14 models), columns in
# mclust's order, G = 1..9 (mclust's sign). mclust's pick: EEE,3; then VVE,2 and VEE,3.
MCLUST_MODELS = ("EII", "VII", "EEI", "VEI", "EVI", "VVI", "EEE", "VEE", "EVE", "VVE", "EEV",
                 "VEV", "EVV", "VVV")
MCLUST_FAITHFUL_BIC_14 = {
    "EII": (-4024.721, -3452.998, -3377.701, -3230.264, -3149.394, -3081.414, -2990.367,
            -2978.100, -2953.359),
    "VII": (-4024.721, -3458.305, -3336.598, -3242.826, -3129.080, -3038.171, -2973.374,
            -2935.082, -2919.415),
    "EEI": (-3055.835, -2354.601, -2323.014, -2323.673, -2327.059, -2338.205, -2356.454,
            -2364.140, -2372.790),
    "VEI": (-3055.835, -2350.607, -2332.687, -2331.284, -2350.230, -2360.578, -2368.513,
            -2384.740, -2398.223),
    "EVI": (-3055.835, -2352.618, -2332.205, -2334.749, -2347.564, -2357.660, -2372.851,
            -2389.064, -2407.224),
    "VVI": (-3055.835, -2346.065, -2342.366, -2343.486, -2351.017, -2373.469, -2394.696,
            -2413.705, -2432.708),
    "EEE": (-2607.623, -2325.220, -2314.316, -2331.223, -2360.659, -2347.352, -2369.330,
            -2376.104, -2389.609),
    "VEE": (-2607.623, -2322.972, -2322.103, -2340.173, -2347.337, -2372.287, -2371.175,
            -2390.391, -2406.732),
    "EVE": (-2607.623, -2324.273, -2342.319, -2361.821, -2351.828, -2366.482, -2379.810,
            -2403.934, -2414.089),
    "VVE": (-2607.623, -2320.433, -2336.271, -2362.487, -2368.937, -2386.537, -2402.220,
            -2425.956, -2448.208),
    "EEV": (-2607.623, -2329.115, -2325.322, -2351.523, -2356.856, -2366.087, -2379.071,
            -2392.988, -2407.500),
    "VEV": (-2607.623, -2325.416, -2329.648, -2361.084, -2368.101, -2386.323, -2401.270,
            -2425.426, -2446.726),
    "EVV": (-2607.623, -2327.598, -2339.983, -2344.686, -2364.900, -2384.117, -2398.703,
            -2414.962, -2438.876),
    "VVV": (-2607.623, -2322.192, -2349.696, -2351.493, -2379.388, -2387.016, -2412.440,
            -2442.018, -2460.398),
}


def _mclust_log_likelihood_14(model, K, n=272, D=2):
    """mclust's log-likelihood of any of its 14 models on Old Faithful, from its BIC."""
    from gaussmix import families

    p = families.get(model).n_parameters(K, D)
    return (MCLUST_FAITHFUL_BIC_14[model][K - 1] + p * math.log(n)) / 2.0


def _n_params(covariance_type, K, D):
    cov = {"spherical": K, "diag": K * D, "tied": D * (D + 1) // 2, "full": K * D * (D + 1) // 2}
    return cov[covariance_type] + K * D + K - 1


def _mclust_log_likelihood(covariance_type, K, n=272, D=2):
    """mclust's log-likelihood, recovered from its BIC: BIC_mclust = 2 logL - p log n."""
    bic = MCLUST_FAITHFUL_BIC[K][TYPES.index(covariance_type)]
    return (bic + _n_params(covariance_type, K, D) * math.log(n)) / 2.0


@pytest.fixture(scope="module")
def faithful_result():
    return select_model(load_faithful(), random_state=0)


# ------------------------------------------------------------------------- Old Faithful


def test_faithful_default_grid_selects_tied_3(faithful_result):
    res = faithful_result
    assert res.criterion == "bic"
    assert res.best_params_ == {"covariance_type": "tied", "n_components": 3}
    best = res.ranked()[0]
    assert (best["covariance_type"], best["n_components"]) == ("tied", 3)
    # mclust: EEE, G=3, log-likelihood -1126.326, BIC -2314.316.
    assert best["log_likelihood"] >= -1126.33
    assert abs(best["bic"] - 2314.32) < 0.05
    assert best["n_parameters"] == 11
    assert best["degenerate"] is None and best["error"] is None
    gm = res.best_estimator_
    assert isinstance(gm, GaussianMixture)
    assert gm.covariance_type == "tied" and gm.n_components == 3
    assert gm.degenerate_ is False
    X = load_faithful()
    assert gm.score(X) * X.shape[0] == pytest.approx(best["log_likelihood"], abs=1e-6)
    assert gm.bic(X) == pytest.approx(best["bic"], abs=1e-6)


def test_faithful_every_grid_point_reaches_mclust(faithful_result):
    """The default grid is mclust's: 14 models x G = 1..9, each at least mclust's fit."""
    res = faithful_result
    assert len(res.table) == 14 * 9
    assert [MCLUST_NAMES[r["covariance_type"]] for r in res.table[::9]] == list(MCLUST_MODELS)
    short = []
    for row in res.table:
        t, K = row["covariance_type"], row["n_components"]
        if t in TYPES:
            ref = _mclust_log_likelihood(t, K)
            assert _mclust_log_likelihood_14(MCLUST_NAMES[t], K) == pytest.approx(ref)
            assert row["n_parameters"] == _n_params(t, K, 2)
        else:
            ref = _mclust_log_likelihood_14(t, K)
        # mclust's BIC is printed to 3 decimals: its log-likelihood is known to +-0.001.
        if row["log_likelihood"] < ref - 0.002:
            short.append((t, K, row["log_likelihood"], ref))
        assert row["degenerate"] is None, row
    assert not short, f"below mclust's log-likelihood: {short}"


def test_faithful_best_bic_is_mclusts_pick(faithful_result):
    best = max(bic for row in MCLUST_FAITHFUL_BIC_14.values() for bic in row)
    assert faithful_result.ranked()[0]["bic"] <= -best + 0.002


def test_faithful_text_table(faithful_result):
    text = str(faithful_result)
    lines = text.splitlines()
    assert "Best: tied with 3 components (mclust EEE,3)" in lines[0]
    header = lines[2].split()
    assert header[:4] == ["rank", "covariance", "K", "mclust"]
    first = lines[3].split()
    assert first[:4] == ["1", "tied", "3", "EEE,3"]
    assert first[header.index("BIC") + 1] == "0.000"  # difference to the best ("BIC diff")
    # Sorted by BIC, differences non-decreasing.
    n = len(faithful_result.table)
    bics = [float(line.split()[6]) for line in lines[3:3 + n]]
    assert bics == sorted(bics)
    md = faithful_result.to_markdown()
    assert "| 1 | tied | 3 | EEE,3 |" in md
    assert md.count("\n|") == 2 + n


def test_table_keys_and_criteria_consistency(faithful_result):
    X = load_faithful()
    keys = {
        "covariance_type",
        "n_components",
        "log_likelihood",
        "n_parameters",
        "bic",
        "aic",
        "icl",
        "converged",
        "n_iter",
        "degenerate",
        "error",
    }
    for row in faithful_result.table:
        assert set(row) == keys
        p, ll = row["n_parameters"], row["log_likelihood"]
        assert row["bic"] == pytest.approx(-2 * ll + p * math.log(272))
        assert row["aic"] == pytest.approx(-2 * ll + 2 * p)
        assert row["icl"] >= row["bic"] - 1e-9
    gm = faithful_result.estimators_[("full", 2)]
    row = next(
        r for r in faithful_result.table if (r["covariance_type"], r["n_components"]) == ("full", 2)
    )
    assert gm.icl(X) == pytest.approx(row["icl"], rel=1e-10)
    assert gm.aic(X) == pytest.approx(row["aic"], rel=1e-10)


def test_icl_is_bic_plus_twice_the_map_entropy():
    """ICL (Biernacki, Celeux & Govaert 2000) = BIC - 2 sum_n log max_k r_nk, lower is better.

    Responsibilities are computed here from the parameters with the Gaussian density written
    out, independently of the library.
    """
    X = load_faithful()
    res = select_model(X, n_components=[3], covariance_types=["full"], random_state=0)
    gm, row = res.best_estimator_, res.table[0]
    log_dens = np.empty((X.shape[0], 3))
    for k in range(3):
        diff = X - gm.means_[k]
        cov = gm.covariances_[k]
        maha = np.einsum("ni,ij,nj->n", diff, np.linalg.inv(cov), diff)
        log_dens[:, k] = (
            np.log(gm.weights_[k]) - 0.5 * maha - 0.5 * np.log(np.linalg.det(2 * np.pi * cov))
        )
    log_lik = np.logaddexp.reduce(log_dens, axis=1)
    resp = np.exp(log_dens - log_lik[:, None])
    bic = -2 * log_lik.sum() + 17 * math.log(272)
    entropy = -np.sum(np.log(resp.max(axis=1)))  # -sum_n sum_k z_nk log r_nk, z = MAP
    assert row["log_likelihood"] == pytest.approx(log_lik.sum(), abs=1e-8)
    assert row["bic"] == pytest.approx(bic, abs=1e-8)
    assert row["icl"] == pytest.approx(bic + 2 * entropy, abs=1e-8)
    assert gm.icl(X) == pytest.approx(bic + 2 * entropy, abs=1e-8)
    assert entropy > 1.0  # the term is not trivially zero here


def test_icl_matches_mclust_at_its_published_parameters():
    # summary(Mclust(faithful)): EEE, G=3, BIC -2314.316, ICL -2357.824 (mclust's sign).
    X = load_faithful()
    gm = GaussianMixture(
        3,
        covariance_type="tied",
        weights_init=[0.1656784, 0.3563696, 0.4779520],
        means_init=[[3.793066, 77.521051], [2.037596, 54.491158], [4.463245, 80.833439]],
        precisions_init=np.linalg.inv([[0.07825448, 0.4801979], [0.4801979, 33.7671464]]),
        max_iter=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gm.fit(X)
    # Parameters are printed to 7 digits, hence the tolerances.
    assert gm.bic(X) == pytest.approx(2314.316, abs=0.02)
    assert gm.icl(X) == pytest.approx(2357.824, abs=0.1)


# ------------------------------------------------------------------------- parameter counts


@pytest.mark.parametrize(
    ("covariance_type", "expected"), [("spherical", 13), ("diag", 21), ("tied", 26), ("full", 41)]
)
def test_parameter_counts_5_features_2_components(covariance_type, expected):
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(0, 1, (40, 5)), rng.normal(6, 1, (40, 5))])
    res = select_model(X, n_components=[2], covariance_types=[covariance_type], random_state=0)
    assert res.table[0]["n_parameters"] == expected
    assert res.best_estimator_._n_parameters() == expected


# ------------------------------------------------------------------------- recovery


def _family_data(covariance_type, seed=0, n=450):
    rng = np.random.default_rng(seed)
    means = np.array([[0.0, 0.0], [10.0, 0.0], [5.0, 9.0]])
    rot = np.array([[np.cos(0.6), -np.sin(0.6)], [np.sin(0.6), np.cos(0.6)]])
    if covariance_type == "spherical":
        covs = [np.eye(2) * s for s in (0.3, 1.5, 4.0)]
    elif covariance_type == "diag":
        covs = [np.diag(d) for d in ((4.0, 0.2), (0.2, 4.0), (1.0, 1.0))]
    elif covariance_type == "tied":
        covs = [rot @ np.diag([4.0, 0.3]) @ rot.T] * 3
    else:
        covs = [
            rot @ np.diag([4.0, 0.2]) @ rot.T,
            rot.T @ np.diag([4.0, 0.2]) @ rot,
            np.diag([0.3, 3.0]),
        ]
    labels = np.repeat(np.arange(3), n // 3)
    X = np.vstack([rng.multivariate_normal(means[k], covs[k], n // 3) for k in range(3)])
    return X, labels


@pytest.mark.parametrize("covariance_type", TYPES)
def test_recovers_family_and_number_of_components(covariance_type):
    X, _ = _family_data(covariance_type)
    # scikit-learn's four (over mclust's 14, EVI fits the diag data with fewer parameters)
    res = select_model(X, n_components=range(1, 6), covariance_types="sklearn", random_state=0)
    assert res.best_params_ == {"covariance_type": covariance_type, "n_components": 3}


# ------------------------------------------------------------------------- spurious fits


def _rounded_data(seed=0, n=200):
    """Two clusters; the second feature is rounded to whole numbers (13 distinct values)."""
    rng = np.random.default_rng(seed)
    lab = rng.integers(0, 2, n)
    x1 = np.array([0.0, 4.0])[lab] + rng.normal(0, 0.6, n)
    x2 = np.round(np.array([10.0, 20.0])[lab] + rng.normal(0, 1.0, n))
    return np.column_stack([x1, x2])


def test_repeated_values_do_not_produce_a_selected_degenerate_model():
    X = _rounded_data()
    # Plain EM does find collapsed fits here that BIC would prefer (the test can fail).
    gm = GaussianMixture(
        5, covariance_type="diag", n_init=5, init_params="random_from_data", random_state=1
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gm.fit(X)
    assert gm.degenerate_
    res = select_model(X, n_components=range(1, 7), random_state=0)
    assert gm.bic(X) < res.ranked()[0]["bic"] - 500
    assert res.best_estimator_.degenerate_ is False
    best = res.ranked()[0]
    assert best["degenerate"] is None
    assert res.best_params_["n_components"] == 2


def test_degenerate_grid_point_is_reported_and_never_selected(monkeypatch):
    X = _rounded_data()
    # Make every start of diag/3 look degenerate: the grid point must be marked, not chosen.
    real = selection._reason

    def fake(model):
        if model.covariance_type == "diag" and model.n_components == 3:
            return "component 0 (test): forced"
        return real(model)

    monkeypatch.setattr(selection, "_reason", fake)
    res = select_model(X, n_components=[2, 3], covariance_types=["diag"], random_state=0)
    row = next(r for r in res.table if r["n_components"] == 3)
    assert row["degenerate"] == "component 0 (test): forced"
    assert res.best_params_ == {"covariance_type": "diag", "n_components": 2}
    assert "diag K=3: degenerate" in str(res)
    assert all(r["n_components"] == 2 for r in res.ranked())


# ------------------------------------------------------------------------- failures


def test_failed_fits_are_recorded(monkeypatch):
    real = selection._em_step

    def failing(rows, batch):
        if batch.weights.shape[1] == 2:
            raise np.linalg.LinAlgError("boom")
        return real(rows, batch)

    monkeypatch.setattr(selection, "_em_step", failing)
    X, _ = _family_data("spherical", n=90)
    res = select_model(X, n_components=[1, 2, 3], covariance_types=["spherical"], random_state=0)
    row = next(r for r in res.table if r["n_components"] == 2)
    assert row["error"] is not None and "LinAlgError: boom" in row["error"]
    assert row["bic"] is None and row["log_likelihood"] is None
    assert res.best_params_["n_components"] == 3
    assert "failed: LinAlgError: boom" in str(res)


def test_all_fits_failing_raises(monkeypatch):
    def failing(*args, **kwargs):
        raise ValueError("nope")

    monkeypatch.setattr(selection, "_em_step", failing)
    X, _ = _family_data("spherical", n=60)
    with pytest.raises(ValueError, match="Every fit of the grid failed"):
        select_model(X, n_components=[1, 2], covariance_types=["diag"], random_state=0)


# ------------------------------------------------------------------------- options


def test_progress_callback_and_criterion():
    X, _ = _family_data("tied", n=150)
    calls = []
    res = select_model(
        X,
        n_components=[1, 2, 3],
        covariance_types=["tied", "full"],
        criterion="icl",
        random_state=0,
        progress=lambda *a: calls.append(a),
    )
    assert [c[0] for c in calls] == list(range(1, 7))
    assert all(c[1] == 6 for c in calls)
    assert {(c[2], c[3]) for c in calls} == {(t, k) for t in ("tied", "full") for k in (1, 2, 3)}
    assert res.criterion == "icl"
    ranked = res.ranked()
    assert [r["icl"] for r in ranked] == sorted(r["icl"] for r in ranked)
    assert "ICL diff" in str(res)


def _record_dealt(monkeypatch) -> list:
    """The shares of every grid select_model deals among processes, as it deals them."""
    dealt = []
    fit_dealt = selection._fit_dealt
    monkeypatch.setattr(selection, "_fit_dealt",
                        lambda *a: dealt.append(a[3]) or fit_dealt(*a))
    return dealt


# Python 3.12 and 3.13 warn when a multi-threaded process (BLAS threads) forks.
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_n_jobs_gives_the_same_table(monkeypatch):
    X = load_faithful()
    kw = dict(n_components=[1, 2, 3], covariance_types=["spherical", "tied"], random_state=3)
    serial = select_model(X, **kw)
    dealt = _record_dealt(monkeypatch)
    parallel = select_model(X, n_jobs=2, **kw)
    assert dealt == [[("spherical",), ("tied",)]]  # (two processes, independent chains)
    for a, b in zip(serial.table, parallel.table, strict=True):
        assert a["log_likelihood"] == pytest.approx(b["log_likelihood"], abs=1e-9)
        assert (a["covariance_type"], a["n_components"]) == (
            b["covariance_type"],
            b["n_components"],
        )


def _table_and_best(result):
    rows = [(r["covariance_type"], r["n_components"], r["log_likelihood"], r["bic"])
            for r in result.table]
    return rows, result.best_params_, result.best_estimator_.means_


def test_same_random_state_same_result():
    """The same seed gives the same table, bit for bit; a Generator seeds the run with one
    draw of integers(2**63 - 1), so it equals the run seeded with that very integer."""
    X, _ = _family_data("diag", n=150)
    kw = dict(n_components=[2, 3], covariance_types=["diag", "full"])
    a_rows, a_best, a_means = _table_and_best(select_model(X, random_state=7, **kw))
    c_rows, c_best, c_means = _table_and_best(select_model(X, random_state=7, **kw))
    assert a_rows == c_rows and a_best == c_best
    np.testing.assert_array_equal(a_means, c_means)
    seed = int(np.random.default_rng(7).integers(2**63 - 1))
    g_rows, _, g_means = _table_and_best(
        select_model(X, random_state=np.random.default_rng(7), **kw))
    s_rows, _, s_means = _table_and_best(select_model(X, random_state=seed, **kw))
    assert g_rows == s_rows
    np.testing.assert_array_equal(g_means, s_means)


def test_integer_sample_weight_equals_repeated_rows():
    X, _ = _family_data("full", n=90)
    counts = np.tile([1, 2, 3], 30)
    kw = dict(n_components=[1, 2, 3], covariance_types=["full"], random_state=0)
    weighted = select_model(X, sample_weight=counts, **kw)
    repeated = select_model(np.repeat(X, counts, axis=0), **kw)
    for a, b in zip(weighted.table, repeated.table, strict=True):
        assert a["log_likelihood"] == pytest.approx(b["log_likelihood"], abs=1e-4)
        assert a["bic"] == pytest.approx(b["bic"], abs=1e-3)


def test_dataframe_input_and_params_passthrough():
    pd = pytest.importorskip("pandas")
    df = load_faithful(as_frame=True)
    res = select_model(
        df, n_components=[3], covariance_types=["tied"], random_state=0, reg_covar=1e-5, max_iter=50
    )
    assert isinstance(res, SelectionResult)
    assert res.best_estimator_.reg_covar == 1e-5
    assert list(res.best_estimator_.feature_names_in_) == ["eruptions", "waiting"]
    assert res.best_estimator_.predict(df).shape == (272,)
    assert isinstance(res.to_frame(), pd.DataFrame)


def test_mclust_names():
    assert {t: MCLUST_NAMES[t] for t in TYPES} == {
        "spherical": "VII", "diag": "VVI", "tied": "EEE", "full": "VVV"
    }
    assert sorted(MCLUST_NAMES.values()) == sorted(MCLUST_MODELS)
    others = [m for m in MCLUST_MODELS if m not in ("VII", "VVI", "EEE", "VVV")]
    assert all(MCLUST_NAMES[m] == m for m in others)  # named by mclust's name


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("sklearn", ["spherical", "diag", "tied", "full"]),
        ("all", list(selection.PRESETS["all"])),
        ("MCLUST", list(selection.PRESETS["all"])),
        (["EEE", "tied", "VVE", "diag"], ["tied", "VVE", "diag"]),
        (["sklearn", "EII"], ["spherical", "diag", "tied", "full", "EII"]),
        ("VVV", ["full"]),
    ],
)
def test_covariance_types_presets_and_both_naming_schemes(given, expected):
    assert selection.covariance_types_of(given) == expected
    assert len(selection.PRESETS["all"]) == 14


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"criterion": "bicc"}, ValueError, "criterion"),
        ({"covariance_types": ["ful"]}, ValueError, "covariance_types"),
        ({"n_components": [0, 1]}, ValueError, "positive integers"),
        ({"n_components": [500]}, ValueError, "exceeds n_samples"),
        ({"means_init": [[0, 0]]}, TypeError, "sets means_init itself"),
        ({"n_init": -1}, ValueError, "n_init"),
        ({"sample_weight": [1.0, 2.0]}, ValueError, "sample_weight"),
        ({"random_state": "x"}, TypeError, "random_state"),
        ({"progress": 3}, TypeError, "progress"),
        ({"n_jobs": 0}, ValueError, "n_jobs"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    X, _ = _family_data("spherical", n=60)
    with pytest.raises(error, match=match):
        select_model(X, **{"n_components": [1, 2], **kwargs})


def test_bad_X():
    with pytest.raises(ValueError, match="2-dimensional"):
        select_model(np.arange(10.0))
    # NaN is a missing value (issue 12: gaussmix._missing_select); infinity is refused.
    with pytest.raises(ValueError, match="infinite"):
        select_model(np.array([[1.0, np.nan], [2.0, np.inf], [0.0, 1.0]]), n_components=[1])
    with pytest.raises(ValueError, match="no observed value"):
        select_model(np.array([[np.nan, np.nan], [2.0, 3.0]]), n_components=[1])


def test_docstring_examples_run():
    module = importlib.import_module("gaussmix.selection")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS, verbose=False, report=True)
    assert result.attempted > 0 and result.failed == 0


# ------------------------------------------------------------------------- engine parts


def _naive_ward(Y, w):
    """Ward by brute force: merge the pair with the least increase of the within-SS."""
    clusters = {i: ([i], Y[i].copy(), w[i]) for i in range(len(Y))}
    costs = []
    while len(clusters) > 1:
        best = None
        keys = sorted(clusters)
        for i, a in enumerate(keys):
            for b in keys[i + 1 :]:
                _, ca, ma = clusters[a]
                _, cb, mb = clusters[b]
                c = ma * mb / (ma + mb) * float(np.sum((ca - cb) ** 2))
                if best is None or c < best[0]:
                    best = (c, a, b)
        c, a, b = best
        ia, ca, ma = clusters.pop(a)
        ib, cb, mb = clusters.pop(b)
        clusters[a] = (ia + ib, (ma * ca + mb * cb) / (ma + mb), ma + mb)
        costs.append(c)
    return costs


def test_ward_tree_matches_brute_force():
    rng = np.random.default_rng(0)
    Y = np.vstack([rng.normal(c, 1.0, (12, 2)) for c in (0.0, 5.0, 10.0)])
    w = rng.uniform(0.5, 2.0, Y.shape[0])
    merges = selection._ward_tree(Y, w)
    assert len(merges) == Y.shape[0] - 1
    np.testing.assert_allclose([m[2] for m in merges], _naive_ward(Y, w), rtol=1e-9)
    cuts = selection._cut_tree(merges, Y.shape[0], [3])
    # the three clusters drawn are recovered at K = 3
    assert len({tuple(np.unique(cuts[3][i * 12 : (i + 1) * 12])) for i in range(3)}) == 3


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_grid_with_mclusts_other_models_is_the_same_with_n_jobs(monkeypatch):
    """mclust's other models start from every model's race finalists at the same K: such a
    grid is dealt among processes that exchange them at every K, and fits as in one
    process (up to rounding: a batch holding fewer mixtures can sum the E-step's blocks
    of rows in another order)."""
    X = load_faithful()
    kw = dict(n_components=[1, 2, 3, 4], covariance_types=["tied", "VVE", "EEV", "VEI"],
              random_state=0)
    dealt = _record_dealt(monkeypatch)
    one = select_model(X, **kw)
    assert not dealt
    calls = []
    two = select_model(X, n_jobs=2, progress=lambda *a: calls.append(a), **kw)
    three = select_model(X, n_jobs=3, **kw)
    assert [len(shares) for shares in dealt] == [2, 3]
    for other in (two, three):
        for a, b in zip(one.table, other.table, strict=True):
            assert (a["covariance_type"], a["n_components"]) == (
                b["covariance_type"], b["n_components"])
            assert b["log_likelihood"] == pytest.approx(a["log_likelihood"], rel=1e-10)
            assert (a["converged"], a["degenerate"]) == (b["converged"], b["degenerate"])
        assert other.best_params_ == one.best_params_
    assert [r["covariance_type"] for r in one.table[::4]] == ["tied", "VVE", "EEV", "VEI"]
    # every grid point reported once, counted in order
    assert [c[:2] for c in calls] == [(i, 16) for i in range(1, 17)]
    assert sorted((c[2], c[3]) for c in calls) == sorted(
        (r["covariance_type"], r["n_components"]) for r in one.table)


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_n_jobs_beyond_eight_features_runs_one_task_per_type(monkeypatch):
    """Beyond _SHARED_FEATURES_MAX_D features each type steps alone (no cross finalists):
    a pool of processes, one task per type, the same table as one process."""
    rng = np.random.default_rng(7)
    X = np.vstack([rng.normal(size=(60, 9)), rng.normal(size=(60, 9)) + 4.0])
    kw = dict(n_components=[1, 2], covariance_types=["spherical", "EEV", "diag"],
              random_state=0)
    monkeypatch.setattr(selection, "_fit_dealt", lambda *a: pytest.fail("dealt"))
    pools = []
    executor = selection.ProcessPoolExecutor
    monkeypatch.setattr(selection, "ProcessPoolExecutor",
                        lambda **kwargs: pools.append(kwargs) or executor(**kwargs))
    one = select_model(X, **kw)
    two = select_model(X, n_jobs=2, **kw)
    assert pools == [{"max_workers": 2}]
    for a, b in zip(one.table, two.table, strict=True):
        assert (a["covariance_type"], a["n_components"]) == (
            b["covariance_type"], b["n_components"])
        assert b["log_likelihood"] == pytest.approx(a["log_likelihood"], rel=1e-10)
    assert two.best_params_ == one.best_params_


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_fourteen_models_dealt_ten_ways():
    """Ten shares, one of mclust's other models each, the same table as one process (each
    process decides on the screen from every type's finalist counts, so that a share whose
    model had no regular finalist at some K would still screen its other types')."""
    X = load_faithful()
    kw = dict(n_components=[1, 2, 3], random_state=0)
    one = select_model(X, **kw)
    ten = select_model(X, n_jobs=10, **kw)
    for a, b in zip(one.table, ten.table, strict=True):
        assert b["log_likelihood"] == pytest.approx(a["log_likelihood"], rel=1e-10)
    assert ten.best_params_ == one.best_params_


def test_screen_is_decided_on_every_types_counts():
    """_screened: more than _FINALISTS finalists of some type, cross finalists included
    (each of mclust's other models gets every other donor), as one process counts them."""
    vve, tied = selection.TYPES.index("VVE"), selection.TYPES.index("tied")

    class Donor:
        n_components = 2

    donors = {tied: Donor(), vve: Donor()}
    assert not selection._screened({tied: 2, vve: 1}, {tied: Donor()})  # no crossing
    assert selection._screened({tied: 1, vve: 2}, donors)  # 2 + 1 cross finalist
    assert not selection._screened({tied: 2, vve: 1}, donors)  # 1 + 1
    assert selection._screened({tied: 2, vve: 3}, {vve: Donor()})  # 3 of its own
    Donor.n_components = 1  # one component: no cross finalists
    assert not selection._screened({tied: 1, vve: 2}, donors)


def test_deal_shares_the_types_of_a_grid():
    """Each type in one share, each share in grid order and holding one of mclust's other
    models (the screen's), the shares' costs within one type's cost of each other."""
    grid = selection.covariance_types_of("all")
    for workers in (1, 2, 3, 4, 7, 10, 16):
        shares = selection._deal(grid, workers)
        assert len(shares) == min(workers, 10)
        assert sorted(t for share in shares for t in share) == sorted(grid)
        for share in shares:
            assert list(share) == [t for t in grid if t in share]
            assert any(t not in TYPES for t in share)
        loads = [sum(selection._TYPE_COST[t] for t in share) for share in shares]
        assert max(loads) - min(loads) <= max(selection._TYPE_COST.values())
    assert selection._deal(["tied", "VVE", "full"], 4) == [("tied", "VVE", "full")]
    # scikit-learn's four alone: any share will do
    assert selection._deal(list(TYPES), 2) == [("spherical", "tied"), ("diag", "full")]
    assert selection._deal(list(TYPES), 8) == [(t,) for t in TYPES]


_FORK = pytest.mark.skipif("fork" not in __import__("multiprocessing").get_all_start_methods(),
                           reason="forks a worker that runs a patched chain (no fork here)")


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_dealt_grid_with_the_spawn_start_method(monkeypatch):
    """Workers started by spawn (macOS's default; forkserver is Linux's from Python 3.14)
    import gaussmix afresh and receive everything through pipes: the same table."""
    import multiprocessing

    X = load_faithful()
    kw = dict(n_components=[1, 2], covariance_types=["tied", "VVE"], random_state=0)
    one = select_model(X, **kw)
    monkeypatch.setattr(selection, "_dealt_context", lambda: multiprocessing.get_context("spawn"))
    two = select_model(X, n_jobs=2, **kw)
    for a, b in zip(one.table, two.table, strict=True):
        assert b["log_likelihood"] == pytest.approx(a["log_likelihood"], rel=1e-10)


def _worker_only(monkeypatch, action):
    """Make the dealt grid's other processes (forked) run ``action`` in their chain."""
    import multiprocessing
    import os

    parent = os.getpid()
    fit_chain = selection._fit_chain

    def chain(*args, **kwargs):
        if os.getpid() != parent:
            action()
        return fit_chain(*args, **kwargs)

    monkeypatch.setattr(selection, "_fit_chain", chain)
    monkeypatch.setattr(selection, "_dealt_context", lambda: multiprocessing.get_context("fork"))


@_FORK
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_dealt_grid_raises_what_a_worker_raised(monkeypatch):
    def fail():
        raise ValueError("a worker's own words")

    import multiprocessing

    _worker_only(monkeypatch, fail)
    with pytest.raises(ValueError, match="a worker's own words") as info:
        select_model(load_faithful(), n_components=[1, 2], covariance_types=["EEV", "VEV"],
                     n_jobs=2, random_state=0)
    # the worker's traceback as the cause; no worker left behind
    assert isinstance(info.value.__cause__, selection._RemoteTraceback)
    assert "in fail" in str(info.value.__cause__)
    assert not multiprocessing.active_children()


@_FORK
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_dealt_grid_says_when_a_worker_died(monkeypatch):
    import os

    _worker_only(monkeypatch, lambda: os._exit(3))
    with pytest.raises(RuntimeError, match=r"ended without its results \(exit code 3\).*"
                                           r"n_jobs=None"):
        select_model(load_faithful(), n_components=[1, 2], covariance_types=["EEV", "VEV"],
                     n_jobs=2, random_state=0)


def test_one_constrained_model_alone_reaches_mclust():
    """A grid of one of mclust's other models (no other model's finalists to start from)."""
    X = load_faithful()
    res = select_model(X, n_components=[1, 2, 3], covariance_types="VEV", random_state=0)
    for row in res.table:
        ref = _mclust_log_likelihood_14("VEV", row["n_components"])
        assert row["log_likelihood"] >= ref - 0.01
        assert row["degenerate"] is None


@pytest.mark.parametrize(("model", "scale"), [("EVV", 1e100), ("EVI", 1e80)])
def test_constrained_m_step_on_huge_scales_equals_unit_scale(model, scale):
    """EVV's M-step multiplied the volume (~1e200) by the scatter (~1e200) before dividing
    by its determinant root: inf covariances, and select_model died in ZeroDivisionError.
    The batched EVI M-step did the same with the scatter's diagonal at 1e80: every EVI fit
    'lost positive definiteness'."""
    X = np.random.default_rng(0).normal(size=(30, 2))
    unit = select_model(X, n_components=[1, 2], covariance_types=[model])
    big = select_model(X * scale, n_components=[1, 2], covariance_types=[model])
    for a, b in zip(unit.table, big.table, strict=True):
        assert b["log_likelihood"] == pytest.approx(
            a["log_likelihood"] - X.size * np.log(scale), rel=1e-5  # reg_covar is absolute
        )
    select_model(X * scale, n_components=[1, 2])  # the 14 models: no exception


def test_rows_of_zero_weight_change_nothing():
    """Review finding (r2): rows of weight 0 steered the starts, so some grid points reached
    other optima (EEV K=2: -6.94 against -2.07 without them). They are now left out: the
    table equals the selection on the rows of positive weight."""
    rng = np.random.default_rng(3)
    X = np.vstack([rng.normal(size=(40, 2)), rng.normal(size=(40, 2)) + 5.0])
    junk = np.tile([[20.0, -20.0]], (30, 1))
    w = np.r_[np.ones(80), np.zeros(30)]
    weighted = select_model(np.vstack([X, junk]), n_components=[1, 2, 3], sample_weight=w,
                            random_state=0)
    plain = select_model(X, n_components=[1, 2, 3], sample_weight=np.ones(80), random_state=0)
    for a, b in zip(weighted.table, plain.table, strict=True):
        assert (a["covariance_type"], a["n_components"]) == (b["covariance_type"],
                                                             b["n_components"])
        if b["log_likelihood"] is not None:
            assert a["log_likelihood"] == pytest.approx(b["log_likelihood"], rel=1e-9, abs=1e-9)


@pytest.mark.parametrize("data", ["iris", "far row"])
def test_every_grid_point_reports_the_log_likelihood_of_its_model(data):
    """The table's log-likelihood of every grid point is its estimator's, also for a race
    finalist kept because its polish degenerated: its value was the one of the parameters
    before its last race step (iris diag,9: 0.0046 low; fuzz_fits --seed 31 case 399, far
    row data, full,2: -1617.92 where its model's is -1123.87). The far-row data here
    check the same on a grid whose fits hold a component on one far row."""
    if data == "iris":
        X = np.asarray(importlib.import_module("sklearn.datasets").load_iris().data)
        kw = dict(covariance_types="sklearn", random_state=0)
    else:
        rng = np.random.default_rng(399)
        X = rng.normal(size=(393, 2))
        X[0] = 1e6
        kw = dict(n_components=[1, 2, 3], random_state=20)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = select_model(X, **kw)
    for row in result.table:
        if row["log_likelihood"] is None:
            continue
        model = result.estimators_[(row["covariance_type"], row["n_components"])]
        assert row["log_likelihood"] == pytest.approx(model.score(X) * X.shape[0],
                                                      rel=1e-6), row
