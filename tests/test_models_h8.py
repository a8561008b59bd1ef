"""mclust's EII, EEI, VEI, EVI, EEV and EVV covariance models (issue 11, item 1).

Every expected value is computed independently of the families' code: the expected
complete-data log-likelihood from its textbook formula, constrained parameter sets from
Celeux & Govaert's decomposition Sigma_k = lambda_k D_k A_k D_k^T, parameter counts and
Old Faithful log-likelihoods from R's mclust 6.0.0 (run as a black box; the commands are
next to the numbers).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from conftest import PROPERTY_SETTINGS, make_blobs
from gaussmix import ConvergenceWarning, DegenerateFitWarning, GaussianMixture, families
from gaussmix.datasets import load_faithful
from gaussmix.em import run_em
from gaussmix.io import load_model, save_model
from gaussmix.stats import block_statistics, m_step, statistics_from_responsibilities

MODELS = ("EII", "EEI", "VEI", "EVI", "EEV", "EVV")

# mclust's nMclustParams(model, d = D, G = K) for D = 1..6 (rows) and K = 1..5 (columns):
#   Rscript -e 'library(mclust); for (m in c("EII","EEI","VEI","EVI","EEV","EVV"))
#     for (d in 1:6) cat(m, d, sapply(1:5, function(g) nMclustParams(m, d = d, G = g)), "\n")'
MCLUST_N_PARAMS = {
    "EII": [[2, 4, 6, 8, 10], [3, 6, 9, 12, 15], [4, 8, 12, 16, 20], [5, 10, 15, 20, 25],
            [6, 12, 18, 24, 30], [7, 14, 21, 28, 35]],
    "EEI": [[2, 4, 6, 8, 10], [4, 7, 10, 13, 16], [6, 10, 14, 18, 22], [8, 13, 18, 23, 28],
            [10, 16, 22, 28, 34], [12, 19, 26, 33, 40]],
    "VEI": [[2, 5, 8, 11, 14], [4, 8, 12, 16, 20], [6, 11, 16, 21, 26], [8, 14, 20, 26, 32],
            [10, 17, 24, 31, 38], [12, 20, 28, 36, 44]],
    "EVI": [[2, 4, 6, 8, 10], [4, 8, 12, 16, 20], [6, 12, 18, 24, 30], [8, 16, 24, 32, 40],
            [10, 20, 30, 40, 50], [12, 24, 36, 48, 60]],
    "EEV": [[2, 4, 6, 8, 10], [5, 9, 13, 17, 21], [9, 16, 23, 30, 37], [14, 25, 36, 47, 58],
            [20, 36, 52, 68, 84], [27, 49, 71, 93, 115]],
    "EVV": [[2, 4, 6, 8, 10], [5, 10, 15, 20, 25], [9, 18, 27, 36, 45], [14, 28, 42, 56, 70],
            [20, 40, 60, 80, 100], [27, 54, 81, 108, 135]],
}

# mclust's log-likelihoods on Old Faithful (272 x 2), G = 1..9, loglik = (BIC + npar log n) / 2:
#   Rscript -e 'library(mclust); n <- nrow(faithful);
#     b <- mclustBIC(faithful, G = 1:9, modelNames = c("EII","EEI","VEI","EVI","EEV","EVV"));
#     for (m in colnames(b)) for (g in 1:9)
#       cat(m, g, sprintf("%.4f", (b[g, m] + nMclustParams(m, d = 2, G = g) * log(n)) / 2), "\n")'
MCLUST_FAITHFUL_LOGLIK = {
    "EII": (-2003.9520, -1709.6818, -1663.6246, -1581.4970, -1532.6537, -1490.2546,
            -1436.3226, -1421.7802, -1401.0011),
    "EEI": (-1516.7058, -1157.6800, -1133.4782, -1125.3986, -1118.6830, -1115.8474,
            -1116.5632, -1111.9977, -1107.9140),
    "VEI": (-1516.7058, -1152.8802, -1132.7084, -1120.7958, -1119.0571, -1113.0193,
            -1105.7751, -1102.6774, -1098.2072),
    "EVI": (-1516.7058, -1153.8856, -1132.4676, -1122.5282, -1117.7239, -1111.5604,
            -1107.9440, -1104.8391, -1102.7077),
    "EEV": (-1289.7967, -1139.3316, -1126.2232, -1128.1121, -1119.5669, -1112.9709,
            -1108.2515, -1103.9984, -1100.0427),
    "EVV": (-1289.7967, -1135.7699, -1127.9480, -1116.2851, -1112.3776, -1107.9716,
            -1101.2500, -1095.3652, -1093.3076),
}

# The same, with EM run to convergence (mclust's default stops at a relative change of 1e-5,
# short of the maximum on several of these): as above with
#   mclustBIC(..., control = emControl(tol = c(1e-11, sqrt(.Machine$double.eps)),
#                                      itmax = c(1e6, 1e6)))
MCLUST_FAITHFUL_LOGLIK_CONVERGED = {
    "EII": (-2003.9520, -1709.6814, -1663.5396, -1581.4734, -1532.5963, -1490.1099,
            -1436.2937, -1421.7640, -1400.9655),
    "EEI": (-1516.7058, -1157.6800, -1133.4554, -1125.3606, -1118.1079, -1114.9662,
            -1116.4860, -1111.9222, -1107.8561),
    "VEI": (-1516.7058, -1152.8802, -1132.6668, -1120.7425, -1117.7305, -1112.0963,
            -1103.3341, -1102.1645, -1098.1493),
    "EVI": (-1516.7058, -1153.8856, -1132.4224, -1122.3982, -1117.6896, -1111.4733,
            -1107.8891, -1104.7890, -1102.6504),
    "EEV": (-1289.7967, -1139.3316, -1126.1633, -1128.0003, -1119.4161, -1112.8735,
            -1108.1776, -1103.9469, -1096.1617),
    "EVV": (-1289.7967, -1135.7699, -1125.6609, -1116.2532, -1112.3214, -1107.9299,
            -1101.1873, -1095.1085, -1093.0784),
}

# mclust's own starting partitions of Old Faithful (its default: model-based hierarchical
# agglomeration, VVV on the SVD-transformed data), cluster labels 1..G of the 272 rows:
#   Rscript -e 'library(mclust); hcp <- hc(faithful, modelName = mclust.options("hcModelName"),
#     use = mclust.options("hcUse")); cl <- hclass(hcp, 1:9);
#     for (g in 1:9) cat(paste(cl[, g], collapse = ""), "\n")'
MCLUST_FAITHFUL_STARTS = (
    (  # G = 1
        "1111111111111111111111111111111111111111111111111111111111111111111111111111111111111111"
        "1111111111111111111111111111111111111111111111111111111111111111111111111111111111111111"
        "1111111111111111111111111111111111111111111111111111111111111111111111111111111111111111"
        "11111111"
    ),
    (  # G = 2
        "1212121121211212212122121121111111122121121211121211212112112121211121121121211111121111"
        "2121212111212121121211121121212121121121212121212121121112121211211111212121112121221111"
        "1211211121121212111111212112121121212111212121211111111212122112121111212121111111211121"
        "22112121"
    ),
    (  # G = 3
        "1232323123213232232322123123333333322321323231323231232332332323213323123323233133323333"
        "2121232333232123323231323323232123321123212321232321323332321233233331212123332321223333"
        "3213233123123232313313232312323123232333212323233333333212122332323331232323331133233323"
        "22332123"
    ),
    (  # G = 4
        "1234323123213232432322143123333333322341343431323431232334334323413343123343433133343333"
        "2141234333234123323231343343234123321123212321232321343334321233433331212143334321223333"
        "3213233123123234313313234312323123432333212323233333333212122334323331234323331133233343"
        "24332123"
    ),
    (  # G = 5
        "1234525125215252452522143125353335322341545431325431232534354525415343125343433135343535"
        "2141234353254125525251345545254123521125212521252521545334321235453351212143334521223355"
        "3213235125125234315513234512323125432333212525235555353212122554325351254325331135253545"
        "24352123"
    ),
    (  # G = 6
        "1234525125215252452522146125356635322641545461325461262534654525415646125346463135343535"
        "2141264653254125525251645545254123521125212521252521545664621265453351212143364521226355"
        "6213265125125264615516264512626125462333212525265555353212122554325351254625361135256545"
        "24652126"
    ),
    (  # G = 7
        "1234565125215656452526147125357735326741545471325471272534754565415747125347473135343535"
        "6141274753254165565251745545654163521165216561652521545774761275453351216143374521627355"
        "7613275125165274715517674512767165476333612525275555353616122554365351254725371135257545"
        "64756167"
    ),
    (  # G = 8
        "1234565125215656452526147125357735326748545471325478272534754565485747125347473135343535"
        "6148274753254865565251745545654863528165286568652521545774768275453351216143374528627355"
        "7613275125165274715517674512767165476333682525275555353616822554365351254725371135257545"
        "64756867"
    ),
    (  # G = 9
        "1234567125215656472526148125358835326849545481325489282734854567495848125348483135343735"
        "6149284853274965565271847545654963529165296569652721545884869285453351216143384729628355"
        "8613285125165284815518684512868165486333692525285555353616922554367351254825381135258545"
        "64856968"
    ),
)


# --------------------------------------------------------------------------------------
# Independent references
# --------------------------------------------------------------------------------------
def letters(model):
    """(volume, shape, orientation) letters of an mclust model name."""
    return tuple(model)


def q_value(full, nk, W):
    """Covariance part of the expected complete-data log-likelihood:
    -1/2 sum_k [N_k log|Sigma_k| + tr(W_k Sigma_k^-1)]."""
    _, logdet = np.linalg.slogdet(full)
    traces = np.einsum("kij,kji->k", W, np.linalg.inv(full))
    return -0.5 * float(np.sum(nk * logdet + traces))


def as_full(model, covariances, K, D):
    """The (K, D, D) matrices a model's storage (scikit-learn's shapes) stands for."""
    C = np.asarray(covariances, dtype=np.float64)
    if model == "EII":
        return np.stack([np.eye(D) * c for c in C])
    if model in ("EEI", "VEI", "EVI"):
        return np.stack([np.diag(c) for c in C])
    return C


def as_storage(model, full):
    """Back from (K, D, D) to the model's storage."""
    if model == "EII":
        return full[:, 0, 0].copy()
    if model in ("EEI", "VEI", "EVI"):
        return np.diagonal(full, axis1=1, axis2=2).copy()
    return full


def decompose(model, full):
    """(V, e) with Sigma_k = V_k diag(e_k) V_k^T: axes for axis-aligned models, else the
    eigenvectors (eigenvalues increasing, so equal shapes have equal rows of e)."""
    if letters(model)[2] == "I":
        K, D = full.shape[:2]
        return np.broadcast_to(np.eye(D), (K, D, D)).copy(), np.diagonal(full, axis1=1,
                                                                          axis2=2).copy()
    e, V = np.linalg.eigh(full)
    return V, e


def compose(V, e):
    full = (V * e[:, None, :]) @ np.swapaxes(V, 1, 2)
    return 0.5 * (full + np.swapaxes(full, 1, 2))


def rotation(D, rng, scale):
    """A random rotation near I: the Cayley transform of a random skew matrix."""
    S = rng.normal(scale=scale, size=(D, D))
    S = S - S.T
    return np.linalg.solve(np.eye(D) - S, np.eye(D) + S)


def move(model, V, e, rng, scale, only=None):
    """Move (V, e) by ~``scale`` along the model's constraint (every move keeps it).

    Volume: e_k times exp(z), z shared (E) or per component (V). Shape: e_k times exp(v),
    sum(v) = 0, v shared (E) or per component (V), none for I. Orientation: V_k turned by
    a rotation per component (V), none for I. ``only`` restricts to one of the three.
    """
    volume, shape, orientation = letters(model)
    K, D = e.shape
    V, e = V.copy(), e.copy()
    if only in (None, "volume"):
        z = rng.normal(scale=scale, size=1 if volume == "E" else K)
        e = e * np.exp(z)[:, None]
    if only in (None, "shape") and shape != "I" and D > 1:
        v = rng.normal(scale=scale, size=(1 if shape == "E" else K, D))
        e = e * np.exp(v - v.mean(axis=1, keepdims=True))
    if only in (None, "orientation") and orientation == "V" and D > 1:
        V = np.stack([rotation(D, rng, scale) @ V[k] for k in range(K)])
    return V, e


def random_constrained(model, K, D, rng):
    """Random covariances (K, D, D) satisfying the model's constraint."""
    volume, shape, orientation = letters(model)
    lam = np.exp(rng.normal(size=1 if volume == "E" else K))
    a = rng.normal(size=(1 if shape == "E" else K, D)) * (shape != "I")
    A = np.exp(a - a.mean(axis=1, keepdims=True))
    e = np.broadcast_to(lam[:, None] * A, (K, D))
    if orientation == "I":
        V = np.broadcast_to(np.eye(D), (K, D, D))
    else:
        V = np.stack([np.linalg.qr(rng.normal(size=(D, D)))[0] for _ in range(K)])
    return compose(V, np.array(e))


def assert_constraint(model, full, rtol=1e-9):
    """The matrices satisfy the model's constraint (checked from their eigenvalues)."""
    volume, shape, orientation = letters(model)
    K, D = full.shape[:2]
    if orientation == "I":
        off = full - np.stack([np.diag(np.diag(c)) for c in full])
        assert np.all(off == 0)
    _, e = decompose(model, full)
    log_e = np.log(e)
    log_volume = log_e.mean(axis=1)
    if volume == "E":
        np.testing.assert_allclose(log_volume, log_volume[0], atol=rtol)
    log_shape = log_e - log_volume[:, None]
    if shape == "I":
        np.testing.assert_allclose(log_shape, 0.0, atol=rtol)
    if shape == "E":
        np.testing.assert_allclose(log_shape, np.broadcast_to(log_shape[0], (K, D)), atol=rtol)


def random_statistics(seed, K, D):
    """Statistics of random weighted data and responsibilities, and the naive (N_k, W_k)."""
    rng = np.random.default_rng(seed)
    n = 8 * K * (D + 1)
    X = rng.normal(size=(n, D)) * rng.uniform(0.2, 5.0, D) @ rng.normal(size=(D, D))
    X = X + rng.normal(scale=10.0, size=D)
    resp = rng.dirichlet(np.full(K, 0.5), size=n)
    w = rng.uniform(0.2, 3.0, n)
    rw = resp * w[:, None]
    nk = rw.sum(axis=0)
    mu = rw.T @ X / nk[:, None]
    W = np.stack([(rw[:, k, None] * (X - mu[k])).T @ (X - mu[k]) for k in range(K)])
    return X, resp, w, nk, W


def family_statistics(model, X, resp, w):
    stats = statistics_from_responsibilities(X, resp, model, shift=X[0], sample_weight=w)
    return stats.nk, stats.s1, stats.s2


# --------------------------------------------------------------------------------------
# Registry, vocabulary and counts
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("model", MODELS)
def test_registered_under_the_mclust_name(model):
    family = families.get(model)
    assert family.name == family.mclust_name == model
    assert model in families.NAMES and model in families.MCLUST_MODELS
    volume, shape, orientation = letters(model)
    assert family.volume == {"E": "equal", "V": "variable"}[volume]
    assert family.shape == {"I": "identity", "E": "equal", "V": "variable"}[shape]
    axes = "identity" if shape == "I" else "axis-aligned"
    assert family.orientation == {"I": axes, "V": "variable"}[orientation]
    assert family.correlated == (orientation == "V")
    assert family.description and family.words


def test_plot_styles_are_distinct_from_every_other_family():
    styles = [f.plot_style for f in families.all_families()]
    assert len({s[0] for s in styles}) == len(styles)
    assert len({s[1] for s in styles}) == len(styles)


@pytest.mark.parametrize("model", MODELS)
def test_counts_match_mclust(model):
    family = families.get(model)
    got = [[family.n_parameters(K, D) for K in range(1, 6)] for D in range(1, 7)]
    assert got == MCLUST_N_PARAMS[model]


@pytest.mark.parametrize("model", MODELS)
def test_storage_shapes_and_round_trips(model):
    family = families.get(model)
    K, D = 3, 3
    rng = np.random.default_rng(1)
    full = random_constrained(model, K, D, rng)
    cov = as_storage(model, full)
    assert cov.shape == family.covariance_shape(K, D)
    np.testing.assert_allclose(family.full_covariances(cov, K, D), full, rtol=1e-12)
    chol = family.precision_cholesky(cov)
    np.testing.assert_allclose(
        as_full(model, family.precisions_from_cholesky(chol), K, D), np.linalg.inv(full),
        rtol=1e-9, atol=1e-12,
    )
    log_det = np.broadcast_to(family.log_det_cholesky(chol, D), (K,))
    np.testing.assert_allclose(log_det, -0.5 * np.linalg.slogdet(full)[1], rtol=1e-10)
    # A constrained set is its own projection; any other is projected onto the model.
    weights = rng.uniform(0.2, 1.0, K)
    np.testing.assert_allclose(family.from_full(full, weights), cov, rtol=1e-9, atol=1e-12)
    projected = family.from_full(random_constrained("VVV", K, D, rng), weights)
    assert_constraint(model, as_full(model, projected, K, D))


# --------------------------------------------------------------------------------------
# The M-step is the constrained maximiser
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("seed, K, D", [(0, 3, 3), (1, 2, 2), (2, 4, 2), (3, 1, 3), (4, 3, 1),
                                        (5, 2, 4)])
def test_m_step_is_the_constrained_maximiser(model, seed, K, D):
    """Q at the M-step's result beats Q at random constrained parameters, far and near, and
    at every small move along the constraint (volume, shape, orientation by 1e-3)."""
    family = families.get(model)
    X, resp, w, nk, W = random_statistics(seed, K, D)
    cov = family.m_step_covariances(*family_statistics(model, X, resp, w), reg_covar=0.0)
    assert cov.shape == family.covariance_shape(K, D)
    best = as_full(model, cov, K, D)
    assert_constraint(model, best)
    q_best = q_value(best, nk, W)
    slack = 1e-10 * abs(q_best)
    rng = np.random.default_rng(100 + seed)
    for _ in range(200):
        assert q_value(random_constrained(model, K, D, rng), nk, W) <= q_best + slack
    V, e = decompose(model, best)
    for scale in (0.3, 0.03):
        for _ in range(100):
            assert q_value(compose(*move(model, V, e, rng, scale)), nk, W) <= q_best + slack
    for only in ("volume", "shape", "orientation"):
        for _ in range(20):
            moved = compose(*move(model, V, e, rng, 1e-3, only=only))
            assert_constraint(model, moved, rtol=1e-8)
            assert q_value(moved, nk, W) <= q_best + slack, only


@pytest.mark.parametrize("model", MODELS)
def test_reg_covar_enters_the_scatter_before_the_constrained_update(model):
    """reg_covar on the statistics = reg_covar N_k I added to every scatter, and the
    result keeps the constraint."""
    family = families.get(model)
    K, D = 3, 3
    X, resp, w, nk, W = random_statistics(7, K, D)
    nk_s, s1, s2 = family_statistics(model, X, resp, w)
    reg = 0.3
    got = family.m_step_covariances(nk_s, s1, s2, reg_covar=reg)
    if family.statistic == "trace":
        s2_reg = s2 + reg * nk_s * D
    elif family.statistic == "diagonal":
        s2_reg = s2 + reg * nk_s[:, None]
    else:
        s2_reg = s2 + reg * nk_s[:, None, None] * np.eye(D)
    np.testing.assert_allclose(
        got, family.m_step_covariances(nk_s, s1, s2_reg, reg_covar=0.0), rtol=1e-9
    )
    assert_constraint(model, as_full(model, got, K, D))
    plain = family.m_step_covariances(nk_s, s1, s2, reg_covar=0.0)
    if model in ("EII", "EEI"):  # pooled variances: reg_covar adds exactly to each
        np.testing.assert_allclose(got, plain + reg, rtol=1e-12)
    # the regularised result maximises Q of the regularised scatter
    W_reg = W + reg * nk[:, None, None] * np.eye(D)
    q_best = q_value(as_full(model, got, K, D), nk, W_reg)
    assert q_best >= q_value(as_full(model, plain, K, D), nk, W_reg)


def test_vei_rounds_start_from_previous_and_never_lower_q(monkeypatch):
    """Generalised EM: one round from ``previous`` already raises Q; many reach the maximum
    from any start."""
    family = families.get("VEI")
    K, D = 3, 3
    X, resp, w, nk, W = random_statistics(8, K, D)
    stats = family_statistics("VEI", X, resp, w)
    best = family.m_step_covariances(*stats, reg_covar=0.0)
    rng = np.random.default_rng(9)
    previous = as_storage("VEI", random_constrained("VEI", K, D, rng))
    from_previous = family.m_step_covariances(*stats, reg_covar=0.0, previous=previous)
    np.testing.assert_allclose(from_previous, best, rtol=1e-7)
    monkeypatch.setattr(type(family), "max_inner_iter", 1)
    one_round = family.m_step_covariances(*stats, reg_covar=0.0, previous=previous)
    q_previous = q_value(as_full("VEI", previous, K, D), nk, W)
    q_one = q_value(as_full("VEI", one_round, K, D), nk, W)
    q_best = q_value(as_full("VEI", best, K, D), nk, W)
    assert q_previous < q_one <= q_best + 1e-10 * abs(q_best)
    assert_constraint("VEI", as_full("VEI", one_round, K, D))


@pytest.mark.parametrize("model", MODELS)
def test_m_step_of_an_empty_component_is_regular(model):
    """A component with no weight keeps a finite constrained covariance (guard and reg)."""
    K, D = 3, 2
    X, resp, w, _, _ = random_statistics(10, K, D)
    resp[:, 2] = 0.0
    resp /= resp.sum(axis=1, keepdims=True)
    stats = statistics_from_responsibilities(X, resp, model, shift=X[0], sample_weight=w)
    params = m_step(stats, reg_covar=1e-6)
    assert np.all(np.isfinite(params.covariances))
    assert_constraint(model, as_full(model, params.covariances, K, D), rtol=1e-6)


# --------------------------------------------------------------------------------------
# EM
# --------------------------------------------------------------------------------------
@PROPERTY_SETTINGS
@given(
    seed=st.integers(0, 2**16),
    model=st.sampled_from(MODELS),
    n_features=st.integers(1, 4),
    n_components=st.integers(1, 4),
    weighted=st.booleans(),
)
def test_em_never_lowers_the_log_likelihood(seed, model, n_features, n_components, weighted):
    """lower_bounds_ is non-decreasing (reg_covar=0: the M-step is the exact maximiser;
    tolerance 1e-12 of the bound's magnitude, rounding only), as in test_stats."""
    rng = np.random.default_rng(seed)
    n_samples = 25 * n_components * (n_features + 1)
    X, _, _, _ = make_blobs(n_samples, n_features, n_components, seed=seed,
                            spread=float(rng.uniform(0.5, 5)))
    X = X * rng.uniform(0.1, 10, n_features)
    sw = rng.uniform(0.2, 3.0, n_samples) if weighted else None
    gm = GaussianMixture(n_components, covariance_type=model, reg_covar=0.0, tol=0,
                         max_iter=12, init_params="random", random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", DegenerateFitWarning)
        try:
            gm.fit(X, sample_weight=sw)
        except ValueError as exc:  # a component emptied out: no longer an EM question
            assume("not positive definite" not in str(exc))
            raise
    bounds = np.asarray(gm.lower_bounds_)
    assert len(bounds) == 12 and np.all(np.isfinite(bounds))
    steps = np.diff(bounds)
    slack = 1e-12 * np.maximum(np.abs(bounds[1:]), 1.0)
    assert np.all(steps >= -slack), (steps.min(), bounds)
    final = np.average(gm.score_samples(X), weights=sw)
    assert final >= bounds[-1] - 1e-12 * max(abs(bounds[-1]), 1.0)
    assert_constraint(model, as_full(model, gm.covariances_, n_components, n_features),
                      rtol=1e-8)


def _faithful():
    return np.asarray(load_faithful(), dtype=np.float64)


@pytest.mark.slow
@pytest.mark.parametrize("model", MODELS)
def test_faithful_reaches_mclust(model):
    """From mclust's own starting partitions, at every G = 1..9: EM reaches at least
    mclust's published-style log-likelihood (within 0.01), and run to convergence it lands
    on the very maximum mclust's EM reaches run to convergence (within 0.01 either way),
    with parameters satisfying the constraint.

    reg_covar=0 as mclust (no prior); EM runs to a mean change below 1e-11 per row (up to
    3,900 iterations: VEI at G = 7 creeps).
    """
    X = _faithful()
    family = families.get(model)
    for G, (start, published, converged) in enumerate(
        zip(MCLUST_FAITHFUL_STARTS, MCLUST_FAITHFUL_LOGLIK[model],
            MCLUST_FAITHFUL_LOGLIK_CONVERGED[model], strict=True),
        start=1,
    ):
        labels = np.array([int(c) - 1 for c in start])
        assert len(labels) == len(X) and labels.max() == G - 1
        stats = statistics_from_responsibilities(X, np.eye(G)[labels], model,
                                                 shift=X.mean(axis=0))
        params = m_step(stats, reg_covar=0.0)
        result = run_em(lambda p: block_statistics(X, p), params, reg_covar=0.0, tol=1e-11,
                        max_iter=20000)
        assert result.converged, (model, G)
        loglik = block_statistics(X, result.params).log_likelihood
        assert loglik >= published - 0.01, (model, G, loglik, published)
        assert abs(loglik - converged) <= 0.01, (model, G, loglik, converged)
        assert_constraint(model, as_full(model, result.params.covariances, G, 2), rtol=1e-8)
        family.check_precisions_init(family.precisions(result.params.covariances))


# --------------------------------------------------------------------------------------
# The estimator, model files, precisions_init
# --------------------------------------------------------------------------------------
@pytest.fixture(scope="module", params=MODELS)
def fitted(request):
    X = make_blobs(300, 3, 3, seed=4)[0]
    gm = GaussianMixture(3, covariance_type=request.param, random_state=0).fit(X)
    return gm, X


def test_estimator_fits_samples_scores_predicts(fitted):
    gm, X = fitted
    model = gm.covariance_type
    family = families.get(model)
    K, D = 3, X.shape[1]
    assert gm.converged_
    assert gm._fitted_covariance_type == model
    assert gm.covariances_.shape == family.covariance_shape(K, D)
    assert gm.precisions_.shape == gm.precisions_cholesky_.shape == gm.covariances_.shape
    assert_constraint(model, as_full(model, gm.covariances_, K, D), rtol=1e-8)
    assert gm._n_parameters() == MCLUST_N_PARAMS[model][D - 1][K - 1]
    loglik = gm.score(X) * len(X)
    assert gm.bic(X) == pytest.approx(-2 * loglik + gm._n_parameters() * np.log(len(X)),
                                      rel=1e-10)
    labels = gm.predict(X)
    assert labels.shape == (len(X),) and set(labels) <= set(range(K))
    np.testing.assert_array_equal(labels, gm.predict_proba(X).argmax(axis=1))
    sample, sample_labels = gm.sample(6000)
    assert sample.shape == (6000, D) and sample_labels.shape == (6000,)
    # The sample comes from the fitted covariances: its pooled within-component covariance
    # matches theirs. About 2000 points per component: sampling error of a few percent
    # (standard error sqrt(2 / 2000) = 3% of a variance), far below the 10% allowed.
    full = as_full(model, gm.covariances_, K, D)
    within = np.stack(
        [np.cov(sample[sample_labels == k].T, bias=False).reshape(D, D) for k in range(K)]
    )
    counts = np.bincount(sample_labels, minlength=K)
    pooled = np.einsum("k,kij->ij", counts, within) / counts.sum()
    expected = np.einsum("k,kij->ij", counts, full) / counts.sum()
    np.testing.assert_allclose(pooled, expected, rtol=0.1, atol=0.05 * np.trace(expected))


def test_model_file_round_trip_is_bit_exact(fitted, tmp_path):
    gm, X = fitted
    path = tmp_path / "model.json"
    save_model(gm, path)
    loaded = load_model(path)
    assert families.of_model(loaded) is families.of_model(gm) is families.get(gm.covariance_type)
    for attr in ("weights_", "means_", "covariances_", "precisions_cholesky_", "precisions_"):
        np.testing.assert_array_equal(getattr(loaded, attr), getattr(gm, attr), err_msg=attr)
    for method in ("predict", "predict_proba", "score_samples"):
        np.testing.assert_array_equal(getattr(loaded, method)(X), getattr(gm, method)(X))


@pytest.mark.parametrize("model", MODELS)
def test_float32_model_file_round_trip_is_bit_exact(model, tmp_path):
    X = make_blobs(200, 2, 2, seed=6, dtype=np.float32)[0]
    gm = GaussianMixture(2, covariance_type=model, random_state=0).fit(X)
    assert gm.covariances_.dtype == np.float32
    path = tmp_path / "model.json"
    save_model(gm, path)
    loaded = load_model(path)
    for attr in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        got, expected = getattr(loaded, attr), getattr(gm, attr)
        assert got.dtype == expected.dtype, attr
        np.testing.assert_array_equal(got, expected, err_msg=attr)
    np.testing.assert_array_equal(loaded.score_samples(X), gm.score_samples(X))


@pytest.mark.parametrize("model", MODELS)
def test_precisions_init_breaking_the_constraint_is_refused(model):
    X = make_blobs(200, 2, 2, seed=5)[0]
    K, D = 2, 2
    family = families.get(model)
    good_full = random_constrained(model, K, D, np.random.default_rng(6))
    good = as_storage(model, np.linalg.inv(good_full))
    family.check_precisions_init(good)
    GaussianMixture(K, covariance_type=model, precisions_init=good, random_state=0).fit(X)
    bad = good.copy()
    if model == "EII":
        bad[1] *= 2.0  # another volume
    elif model == "VEI":
        bad[1, 0] *= 2.0  # another shape
    elif model in ("EEI", "EVI"):
        bad[1, 0] *= 2.0  # another volume
    else:
        bad[1] *= 2.0  # another volume (and eigenvalues)
    gm = GaussianMixture(K, covariance_type=model, precisions_init=bad)
    with pytest.raises(ValueError, match=rf"breaks the constraint of covariance_type='{model}'"):
        gm.fit(X)
