"""Detection of spurious maximizers (degenerate fits) of a Gaussian mixture likelihood.

The likelihood of a Gaussian mixture is unbounded: a component whose mean sits on a point
and whose covariance shrinks towards a singular matrix sends it to infinity. EM readily
walks into such solutions when the data hold repeated values (rounded measurements, counts,
whole minutes), where a component can settle on a few *identical* points. Only ``reg_covar``
(added to every covariance diagonal) keeps the fit finite, and an information criterion
then rewards the nonsense, because every collapsed point gains about
``-0.5 * log(2 * pi * reg_covar)`` (+6.0 for the default 1e-6) in log-likelihood.
See McLachlan & Peel (2000), *Finite Mixture Models*, section 3.10, on spurious local
maximizers; R's mclust refuses such fits as "singular".

Three signs identify a degenerate component ``k`` (``n_k`` is its effective number of points,
``n_samples * weights[k]`` or the sum of its responsibilities):

1. **Too few points.** ``n_k`` is below the number of points that makes the component's
   own covariance estimable at all, the family's ``min_points``: ``D + 1`` for full (an
   unconstrained D x D covariance from D points or fewer is singular), ``2`` for diag and
   spherical (a variance needs two distinct values), ``1`` for tied (the covariance is
   pooled, so a component needs only its mean; below one point it carries no data at all).
2. **Covariance at the regularisation floor.** The component's scatter without the
   regulariser, ``W = Sigma_k - reg_covar I``, is flat along some direction ``v``:
   zero up to rounding. Checked scale-free (:func:`_flattest_direction`): first each
   feature's own variance ``W_jj`` against
   ``max(REG_FRACTION * reg_covar, RESOLUTION * eps * m_j**2)``; then (matrix families)
   the smallest eigenvalue ``mu`` of the correlation matrix
   ``W_jj^-1/2 W W_jj^-1/2`` against ``RESOLUTION * eps * (1 + (m~ . u)**2)``
   (``m~`` the mean in units of the component's standard deviations, ``u`` the
   eigenvector), or the variance along the direction below ``REG_FRACTION * reg_covar``.
   ``REG_FRACTION = 1e-3``, ``RESOLUTION = 30``, ``eps`` the machine epsilon of the
   covariances' dtype, ``m`` the component's mean (for a shared covariance, the mean of
   the component at the weighted median). Diag and spherical compare their variances
   (``variance_checks``) with the same floor. So ``reg_covar`` makes up (practically) all
   of the component's variance there: its points share one value along ``v``.
3. **The points themselves** (needs the data and the responsibilities). mclust's ten
   constrained models add ``reg_covar`` to the scatter *before* their constrained update,
   so their covariances minus ``reg_covar`` are not the scatter and sign 2 does not
   apply to them. They are judged by the components' responsibility-weighted scatters
   ``S_k`` and the rule their volume, shape and orientation give
   (:func:`scatter_rules`): a piece a component estimates alone collapses with its own
   points (its own shape: ``S_k`` flat along a direction, VVV, EVV, EVE, VVE, or along a
   feature, VVI, EVI; only its own volume: all its points identical, VEI, VEE, VEV); a
   pooled piece only with all of them (``sum_k N_k S_k`` flat: EEE, VEE along a
   direction, EEI, VEI along a feature, EII identical points; EEV, VEV: every ``S_k``
   flat). Without the data (out of core), sign 2 on the parameters stands in. And for
   **spherical components on a flat set of points** (needs the data and the
   responsibilities; families with ``hides_flat_directions``). A spherical covariance
   averages the spread over all features, so a component sitting on points that share
   one value of a feature (one whole minute of waiting time) keeps a moderate variance
   while its density along that feature grows without bound; its parameters look
   regular. The responsibility-weighted scatter of the data around the component's mean
   shows it: its smallest eigenvalue is below the same rounding floor. (For full and
   diag this scatter *is* the fitted covariance minus ``reg_covar``, so sign 2 covers
   them; a tied covariance is shared, so one component cannot collapse alone.) On a
   synthetic two-cluster data set with one feature rounded to integers, EM with 6
   spherical components puts three of them on single integer levels (scatter 1e-29) and
   wins BIC by 30 over the true model; this sign rejects it.

Why these thresholds. A collapse is exact: the points under the component are identical
along ``v``, so its unregularised variance is zero except for rounding in the M-step,
which is of the order of ``eps * m_v**2`` (uncentred second moments, as in
scikit-learn, lose that much; centred ones lose less). The collapsed Old Faithful fit that
scikit-learn reaches (diag, 5 components, log-likelihood -1042 where mclust's VVI,5 has
-1108: one component on the 14 eruptions whose waiting time is exactly 83 minutes) has
``lambda - reg_covar = 1.8e-12``, i.e. 1.2 ``eps * m_v**2``; ``RESOLUTION = 30``
leaves a margin of 25 for longer sums. Genuine components are not near the floor however
narrow or far from the origin they are: the floor is 7e-7 for clusters with standard
deviation 0.05 placed 9999 apart (their variance is 2.5e-3), 7e-6 for unit clusters 1e4
apart, 5e-11 on Old Faithful (the smallest genuine component variance over mclust's grid
is about 1e-2); in float32 (``eps`` 1.2e-7) it is 9e-5 for data of size 5, where a
genuinely thin component with variance 1.4e-3 stays clear of it. The data's variance is
deliberately not the yardstick: clusters far apart relative to their width are
legitimate, and one far outlier inflates it by ``d**2 / N`` (1e17 for an outlier 1e10
standard deviations out), which made every regular component look collapsed. Nor is an
eigenvalue of the covariance itself: it carries an absolute rounding of ``eps`` times
the largest entry, -9.4 for a feature of variance 5 next to one of 1e16; the correlation
matrix has a unit diagonal. ``REG_FRACTION * reg_covar`` keeps the test meaningful when
the data sit near the origin (``m_v = 0``). The point counts of sign 1 are the
identifiability limits of the covariance estimates; they need no tuning. Features along
which the whole data set has no spread (variance at most ``2 reg_covar``, or at most the
rounding of a constant column, ``RESOLUTION * eps * centre**2``) and directions along
which it has none are not held against a component.

A component that holds one far row alone (:func:`outlier_components`: at most 1.5
effective points, more than 1e4 standard deviations from every other component) is an
outlier's, not a spurious maximizer among the data: it is reported by
:func:`outlier_components` and by the estimator (``outlier_components_`` and a warning),
not here (docs/robustness.md).
"""

from __future__ import annotations

import numpy as np

from . import families
from .families import direction_words

__all__ = [
    "OUTLIER_POINTS",
    "OUTLIER_SDS",
    "REG_FRACTION",
    "RESOLUTION",
    "data_covariance",
    "degeneracy_reason",
    "degeneracy_reason_of_estimator",
    "min_component_points",
    "mixture_covariance",
    "outlier_components",
]

#: A component variance without ``reg_covar`` at most this fraction of ``reg_covar`` ...
REG_FRACTION = 1e-3
#: ... or at most this many machine epsilons of ``m_v**2 + s_v`` counts as collapsed.
RESOLUTION = 30.0


def min_component_points(covariance_type: str, n_features: int) -> int:
    """Smallest effective number of points for which a component's estimate is non-singular.

    Parameters
    ----------
    covariance_type : str or CovarianceFamily
    n_features : int

    Returns
    -------
    int
        The family's ``min_points``: ``n_features + 1`` for full, ``2`` for diag and
        spherical, ``1`` for tied.
    """
    return families.get(covariance_type).min_points(n_features)


def data_covariance(X, sample_weight=None) -> np.ndarray:
    """Covariance matrix of the data (maximum likelihood, optionally weighted).

    This is the ``data_scale`` argument of :func:`degeneracy_reason`.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    sample_weight : array-like of shape (n_samples,), default=None

    Returns
    -------
    ndarray of shape (n_features, n_features)
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-dimensional, got shape {X.shape}.")
    if sample_weight is None:
        w = np.full(X.shape[0], 1.0 / max(X.shape[0], 1))
    else:
        w = np.asarray(sample_weight, dtype=np.float64)
        w = w / w.sum()
    mean = w @ X
    Xc = X - mean
    return (Xc * w[:, None]).T @ Xc


def mixture_covariance(weights, means, covariances, covariance_type) -> np.ndarray:
    """Covariance matrix of the mixture distribution itself.

    ``sum_k w_k (Sigma_k + (mu_k - mu)(mu_k - mu)')`` with ``mu = sum_k w_k mu_k``. After an
    M-step this equals the covariance of the training data (plus ``reg_covar``) for full
    and tied, and matches its diagonal for diag and its trace for spherical, which is
    all :func:`degeneracy_reason` uses; so it stands in for the data's scale when the data
    are not at hand (out of core, Dask).

    Parameters
    ----------
    weights : array-like of shape (n_components,)
    means : array-like of shape (n_components, n_features)
    covariances : array-like
        Shaped by ``covariance_type`` as in :func:`degeneracy_reason`.
    covariance_type : str or CovarianceFamily

    Returns
    -------
    ndarray of shape (n_features, n_features)
    """
    family = families.get(covariance_type)
    weights = np.asarray(weights, dtype=np.float64).ravel()
    means = np.atleast_2d(np.asarray(means, dtype=np.float64))
    n_components, n_features = means.shape
    cov = np.asarray(covariances, dtype=np.float64).reshape(
        family.covariance_shape(n_components, n_features)
    )
    full = family.full_covariances(cov, n_components, n_features)
    # (np.tensordot's own product, without its 20 us of Python)
    within = np.dot(weights[None, :], full.reshape(n_components, -1)).reshape(full.shape[1:])
    centre = weights @ means / weights.sum()
    dev = means - centre
    return within + (dev * weights[:, None]).T @ dev


#: A component on at most this many effective points ...
OUTLIER_POINTS = 1.5
#: ... whose mean lies more than this many standard deviations from every other component
#: (gaussmix._init.ISOLATION_SDS) holds an isolated far row: an outlier component.
OUTLIER_SDS = 1e4


def outlier_components(weights, means, covariances, covariance_type, n_samples,
                       resp_sum=None) -> list[tuple[int, float, float]]:
    """Components that hold one far row alone: ``(k, effective points, distance in sd)``.

    Component ``k`` carries at most :data:`OUTLIER_POINTS` effective points and its mean
    lies more than :data:`OUTLIER_SDS` standard deviations from every component with more
    points (Mahalanobis distance in that component's covariance). Such a component is not
    a spurious maximizer sitting among the data: it isolates a far outlier, which keeps
    the other components as they are without it (docs/robustness.md). Its covariance is
    at the regularisation floor, so its likelihood depends on ``reg_covar``.
    """
    family = families.get(covariance_type)
    weights = np.asarray(weights, dtype=np.float64).ravel()
    means = np.atleast_2d(np.asarray(means, dtype=np.float64))
    K, D = means.shape
    nk = (np.asarray(resp_sum, dtype=np.float64).ravel() if resp_sum is not None
          else float(n_samples) * weights)
    small = [k for k in range(K) if 0 < nk[k] <= OUTLIER_POINTS]
    large = [j for j in range(K) if nk[j] > OUTLIER_POINTS]
    if not small or not large:
        return []
    cov = np.asarray(covariances, dtype=np.float64)
    found = []
    for k in small:
        distances = []
        for j in large:
            diff = means[k] - means[j]
            try:
                sq = float(diff @ np.linalg.solve(family.component_covariance(cov, j, D), diff))
            except np.linalg.LinAlgError:
                sq = 0.0
            distances.append(np.sqrt(max(sq, 0.0)))
        if min(distances) > OUTLIER_SDS:
            found.append((k, float(nk[k]), float(min(distances))))
    return found


def _fmt(x: float) -> str:
    return f"{x:.3g}"


def _component_scatters(X, resp, sample_weight):
    """Yield ``(k, weighted scatter (D, D) of the data about component k's mean)``."""
    X = np.asarray(X, dtype=np.float64)
    resp = np.asarray(resp, dtype=np.float64)
    if sample_weight is not None:
        resp = resp * np.asarray(sample_weight, dtype=np.float64)[:, None]
    nk = resp.sum(axis=0)
    for k in range(resp.shape[1]):
        if nk[k] <= 0:
            continue
        r = resp[:, k]
        mean = r @ X / nk[k]
        Xc = X - mean
        yield k, (Xc * r[:, None]).T @ Xc / nk[k]


def _varying_features(data_var, centre, reg_covar, eps, resolution):
    """Indices of the features along which the data have a spread to lose.

    A feature whose variance is at most ``2 * reg_covar`` (``reg_covar`` dominates it) or
    at most the rounding of its values (``resolution * eps * centre**2``: a constant
    column, whose computed variance is 1e-30 rather than 0) is not held against a
    component.
    """
    limit = np.maximum(2.0 * reg_covar, resolution * eps * np.asarray(centre) ** 2)
    return np.flatnonzero(np.asarray(data_var) > limit)


def _weighted_median(values, weights):
    """The weighted median of ``values`` (the lower one at a tie)."""
    if values.shape[0] == 1:  # (one component's mean: the check runs ~10 times per fit)
        return float(values[0])
    order = np.argsort(values)
    cumulative = np.cumsum(np.asarray(weights, dtype=np.float64)[order])
    return float(values[order][np.searchsorted(cumulative, 0.5 * cumulative[-1])])


def _flattest_direction(W, means, weights, varying, reg_covar, eps, resolution,
                        axes_only=False):
    """Where the symmetric (D, D) matrix ``W`` (a scatter, without ``reg_covar``) is flat.

    Returns None, or ``(variance, v)``: the variance of ``W`` along the unit vector ``v``
    (a feature's axis or a direction) that is zero up to rounding. Scale-free: first
    each varying feature's own variance ``W_jj`` against
    ``max(REG_FRACTION * reg_covar, resolution * eps * m_j**2)``; then the smallest
    eigenvalue ``mu`` of the correlation matrix ``R = W_jj^-1/2 W W_jj^-1/2`` against
    ``resolution * eps * (1 + (m~ . u)**2)`` (``m~`` the mean in units of the standard
    deviations, ``u`` the eigenvector). An eigenvalue of ``W`` itself would carry an
    absolute rounding of ``eps * max_j W_jj``: -9.4 along a feature of variance 5 when
    another has 1e16. ``m`` is the mean of the component (of the component at the weighted
    median of ``(m_k . v)**2`` for a shared matrix: a far outlier's component, of weight
    1/N, does not set the rounding of a scatter pooled over all the others).
    """
    if varying.size == 0:
        return None
    J = varying
    every = J.size == W.shape[0]  # (J is sorted: every feature, in order)
    WJ = W if every else W[np.ix_(J, J)]
    MJ = np.atleast_2d(means)
    if not every:
        MJ = MJ[:, J]

    diag = np.diag(WJ)
    # each feature's squared mean (weighted median over the components): (m_k . e_j)^2
    if MJ.shape[0] == 1 and np.isfinite(MJ).all():
        axis_mean_sq = MJ[0] ** 2
    else:
        eye = np.eye(len(J))
        axis_mean_sq = np.array([_weighted_median((MJ @ e) ** 2, weights) for e in eye])
    floors = np.fmax(REG_FRACTION * reg_covar, resolution * eps * axis_mean_sq)  # (as max())
    flat_axes = np.flatnonzero(diag <= floors)
    if flat_axes.size:
        i = int(flat_axes[0])
        v = np.zeros(W.shape[0])
        v[J[i]] = 1.0
        return float(diag[i]), v
    if axes_only:
        return None
    sd = np.sqrt(diag)
    R = WJ / np.outer(sd, sd)
    mu_all, U = np.linalg.eigh(0.5 * (R + R.T))
    mu, u = float(mu_all[0]), U[:, 0]
    relative_mean_sq = _weighted_median((MJ / sd @ u) ** 2, weights)
    return _flat_along_eigenvector(mu, u, sd, relative_mean_sq, J, W.shape[0], reg_covar,
                                   eps, resolution)


def _flat_along_eigenvector(mu, u, sd, relative_mean_sq, J, D, reg_covar, eps, resolution):
    """:func:`_flattest_direction`'s last test: the smallest eigenvalue ``mu`` of the
    correlation matrix (eigenvector ``u``, the features ``J`` with standard deviations
    ``sd``) against the rounding floor; ``(variance, unit direction in R^D)`` or None."""
    direction = u / sd
    length_sq = float(direction @ direction)
    variance = mu / length_sq  # u' R u = v' W v |u / sd|^2 with v the unit direction
    direction /= np.sqrt(length_sq)
    if mu <= resolution * eps * (1.0 + relative_mean_sq) or variance <= REG_FRACTION * reg_covar:
        v = np.zeros(D)
        v[J] = direction
        return variance, v
    return None


def _flattest_directions(W, means, varying, reg_covar, eps, resolution):
    """:func:`_flattest_direction` of each matrix of a (K, D, D) stack, with its own mean
    (``means`` (K, D)), as a list: the same results, from one eigen-decomposition of the
    stack (a fit's components are judged together, not one LAPACK call each)."""
    K = W.shape[0]
    if varying.size == 0:
        return [None] * K
    J = varying
    every = J.size == W.shape[1]
    WJ = W if every else W[:, J][:, :, J]
    MJ = means if every else means[:, J]
    out = [None] * K
    alone = ~np.isfinite(MJ).all(axis=1)  # (their means take _flattest_direction's other path)
    diag = np.diagonal(WJ, axis1=1, axis2=2)
    floors = np.fmax(REG_FRACTION * reg_covar, resolution * eps * MJ**2)
    flat = diag <= floors
    for k in np.flatnonzero(flat.any(axis=1) & ~alone):
        i = int(np.argmax(flat[k]))
        v = np.zeros(W.shape[1])
        v[J[i]] = 1.0
        out[k] = (float(diag[k, i]), v)
    rest = np.flatnonzero(~flat.any(axis=1) & ~alone)
    if rest.size:
        sd = np.sqrt(diag[rest])
        R = WJ[rest] / (sd[:, :, None] * sd[:, None, :])
        try:
            mu_all, U = np.linalg.eigh(0.5 * (R + np.swapaxes(R, 1, 2)))
        except np.linalg.LinAlgError:  # (one matrix cannot stop the others: each alone)
            alone[rest] = True
            rest = rest[:0]
        for j, k in enumerate(rest.tolist()):
            u = U[j, :, 0]
            out[k] = _flat_along_eigenvector(
                float(mu_all[j, 0]), u, sd[j], float((MJ[k : k + 1] / sd[j] @ u)[0] ** 2), J,
                W.shape[1], reg_covar, eps, resolution)
    for k in np.flatnonzero(alone).tolist():
        out[k] = _flattest_direction(W[k], means[k], np.ones(1), varying, reg_covar, eps,
                                     resolution)
    return out


def scatter_rules(covariance_type) -> tuple[str | None, str | None]:
    """Which flat scatters make a fit of this family degenerate: ``(component, pooled)``.

    Read from the family's volume, shape and orientation (Sigma_k = lambda_k D_k A_k
    D_k^T): what a component estimates alone can collapse with its own points, what is
    pooled only with all of them.

    ``component``: a component's scatter flat along ``"any"`` direction (its own shape:
    VVV, EVV, and EVE, VVE, whose shared orientation is free to turn to the flat
    direction), along a feature ``"axes"`` (its own diagonal shape: VVI, EVI), or in
    every direction, ``"all"`` (all its points identical: only its volume is its own: VII, VEI,
    VEE, VEV); None (EII, EEI, EEE, EEV: nothing is its own but the mean).
    ``pooled``: the pooled scatter ``sum_k N_k S_k`` flat along ``"any"`` direction (a
    shared orientation and shape: EEE, VEE), along a feature ``"axes"`` (EEI, VEI), in
    every direction ``"all"`` (EII), or ``"each"``: every component's scatter flat along
    some direction (shared eigenvalues, own orientations: EEV, VEV); None when the
    component rule covers it.
    """
    family = families.get(covariance_type)
    volume, shape, orientation = family.volume, family.shape, family.orientation
    if shape == "variable":
        # A shared orientation is free too: it turns to a component's flat direction (its
        # MM update converges there slowly, so its axes are no yardstick).
        component = "axes" if orientation == "axis-aligned" else "any"
        return component, None
    component = "all" if volume == "variable" else None
    if shape == "identity":
        return component, (None if component else "all")
    pooled = {"axis-aligned": "axes", "equal": "any", "variable": "each"}[orientation]
    return component, pooled


def _scatter_problems(family, X, resp, sample_weight, means, covariances, reg_covar, eps,
                      resolution):
    """Sign 3 for every family: ``{key: [message]}`` from the components' scatters."""
    component_rule, pooled_rule = scatter_rules(family)
    data_cov = data_covariance(X, sample_weight)
    data_centre = np.average(np.asarray(X, dtype=np.float64), axis=0, weights=sample_weight)
    varying = _varying_features(np.diag(data_cov), data_centre, reg_covar, eps, resolution)
    scatters = dict(_component_scatters(X, resp, sample_weight))
    out: dict[int, list[str]] = {}

    def flat(W, mean, weights, rule):
        found = _flattest_direction(W, mean, weights, varying, reg_covar, eps, resolution,
                                    axes_only=rule in ("axes", "all"))
        if found is None:
            return None
        if rule == "all":  # every varying feature flat: all its points identical
            d = np.diag(W)[varying]
            floors = [max(REG_FRACTION * reg_covar, resolution * eps * float(
                np.max(np.atleast_2d(mean)[:, j] ** 2))) for j in varying]
            if not np.all(d <= np.array(floors)):
                return None
        if _data_flat_along(found[1], data_cov, reg_covar, eps, resolution):
            return None
        return found

    def say(found, what):
        variance, v = found
        return (f"{what} no spread along {direction_words(v)} (weighted variance "
                f"{_fmt(max(variance, 0.0))}, the data's is {_fmt(float(v @ data_cov @ v))})")

    if component_rule is not None:
        for k, W in scatters.items():
            found = flat(W, means[k], np.ones(1), component_rule)
            if found is not None:
                what = "its points have" if component_rule != "all" else (
                    "its points are all identical:")
                out.setdefault(k, []).append(
                    say(found, what) + f": they share one value there, and its {family.name} "
                    "covariance has a piece of its own there")
    if pooled_rule is not None and scatters:
        nk = np.array([float(np.sum(resp[:, k])) for k in scatters])
        keys = list(scatters)
        if pooled_rule == "each":
            founds = [flat(scatters[k], means[k], np.ones(1), "any") for k in keys]
            if all(f is not None for f in founds):
                out.setdefault(-1, []).append(
                    "every component's points have no spread along some direction (first: "
                    + say(founds[0], "component's").split("along ", 1)[1] + "), and its "
                    "eigenvalues are pooled")
        else:
            pooled = sum(nk[i] * scatters[k] for i, k in enumerate(keys)) / nk.sum()
            found = flat(pooled, means[keys], nk / nk.sum(),
                         "axes" if pooled_rule == "axes" else (
                             "all" if pooled_rule == "all" else "any"))
            if found is not None:
                out.setdefault(-1, []).append(
                    say(found, "the components' points have") + ": each component's share "
                    "one value there")
    return out


def _data_flat_along(v, scale, reg_covar, eps, resolution) -> bool:
    """Whether the data themselves have no spread along ``v`` (then nothing collapsed)."""
    data_var = float(v @ scale @ v)
    rounding = resolution * eps * float(np.abs(v) @ np.abs(scale) @ np.abs(v))
    return data_var <= max(2.0 * reg_covar, rounding)


def degeneracy_reason(
    weights,
    means,
    covariances,
    covariance_type,
    n_samples,
    data_scale=None,
    reg_covar=1e-6,
    *,
    resp_sum=None,
    X=None,
    resp=None,
    sample_weight=None,
    resolution: float = RESOLUTION,
) -> str | None:
    """Say why a fitted mixture is a spurious (degenerate) maximizer, or return None.

    Parameters
    ----------
    weights : array-like of shape (n_components,)
        Mixture weights.
    means : array-like of shape (n_components, n_features)
    covariances : array-like
        Shapes by ``covariance_type``: full (n_components, n_features, n_features),
        tied (n_features, n_features), diag (n_components, n_features),
        spherical (n_components,). ``reg_covar`` is included, as in ``covariances_``.
    covariance_type : str or CovarianceFamily
    n_samples : float
        Number of samples the model was fitted on (the sum of the sample weights when
        fitted with frequency weights).
    data_scale : array-like of shape (n_features, n_features) or (n_features,), optional
        Covariance matrix of the training data (see :func:`data_covariance`), or only its
        diagonal (per-feature variances; then directions are compared feature by feature).
        If None, the covariance of the fitted mixture (:func:`mixture_covariance`) is used,
        which equals the data's after an M-step.
    reg_covar : float, default=1e-6
        The ``reg_covar`` the model was fitted with.
    resp_sum : array-like of shape (n_components,), default=None
        Sums of the responsibilities (effective numbers of points). If None,
        ``n_samples * weights`` is used.
    X : array-like of shape (n_samples, n_features), optional
        The training data; with ``resp``, enables the check of spherical components against
        the data's own spread (sign 3 of the module documentation).
    resp : array-like of shape (n_samples, n_components), optional
        Responsibilities of the fitted model on ``X`` (``predict_proba(X)``).
    sample_weight : array-like of shape (n_samples,), optional
        Sample weights of ``X``.
    resolution : float, default=30
        Rounding floor in machine epsilons; see the module documentation.

    Returns
    -------
    str or None
        None for a regular fit, else one sentence per degenerate component, naming the
        component (0-based), its weight and effective points, and what collapsed.

    Examples
    --------
    >>> import numpy as np
    >>> degeneracy_reason([0.5, 0.5], [[0.0], [1.0]], [[1.0], [1e-6]], "diag", 100,
    ...                   np.array([[1.5]]), 1e-6) is not None
    True
    """
    family = families.get(covariance_type)
    cov_dtype = np.asarray(covariances).dtype
    eps = float(np.finfo(cov_dtype if cov_dtype.kind == "f" else np.float64).eps)
    weights = np.asarray(weights, dtype=np.float64).ravel()
    means = np.atleast_2d(np.asarray(means, dtype=np.float64))
    n_components, n_features = means.shape
    if weights.shape[0] != n_components:
        raise ValueError(
            f"weights has {weights.shape[0]} entries but means has {n_components} rows."
        )
    if data_scale is None:
        data_scale = mixture_covariance(weights, means, covariances, family)
    scale = np.asarray(data_scale, dtype=np.float64)
    if scale.ndim == 1:
        scale = np.diag(scale)
    if scale.shape != (n_features, n_features):
        raise ValueError(
            f"data_scale must have shape ({n_features}, {n_features}) or ({n_features},), "
            f"got {np.shape(data_scale)}."
        )
    reg_covar = float(reg_covar)
    nk = (
        np.asarray(resp_sum, dtype=np.float64).ravel()
        if resp_sum is not None
        else float(n_samples) * weights
    )

    problems: dict[int, list[str]] = {}

    # 1. Too few points to estimate the component.
    min_points = family.min_points(n_features)
    for k in np.flatnonzero(nk < min_points):
        problems.setdefault(int(k), []).append(
            f"it is carried by {_fmt(nk[k])} effective points, fewer than the {min_points} "
            f"a {family.name} component needs"
        )
    # ... or, for a pooled full matrix, too few points in all: the pooled scatter of N points
    # around K means has rank at most N - K (EEE, VEE); with shared eigenvalues and own
    # orientations (EEV, VEV), every component's scatter must be singular. (At K = 1 the
    # same fit as full's, which the rule above flags.)
    pooled_rule = scatter_rules(family)[1]
    if pooled_rule == "any" and nk.sum() < n_features + n_components:
        problems.setdefault(-1, []).append(
            f"it is pooled from {_fmt(nk.sum())} effective points around {n_components} "
            f"means, fewer than the {n_features + n_components} it needs"
        )
    elif pooled_rule == "each" and np.all(nk < n_features + 1):
        problems.setdefault(-1, []).append(
            f"every component is carried by fewer than the {n_features + 1} effective "
            "points its own orientation needs"
        )

    # 2. A variance (or the smallest along any direction) at the regularisation floor.
    centre = weights @ means / weights.sum() if weights.sum() > 0 else means.mean(axis=0)
    varying = _varying_features(np.diag(scale), centre, reg_covar, eps, resolution)

    def floor(mean_sq: float) -> float:
        return max(REG_FRACTION * reg_covar, resolution * eps * mean_sq)

    constrained = not family.covariance_is_scatter
    with_data = X is not None and resp is not None
    if constrained and with_data:
        pass  # their covariances are not scatter + reg_covar: sign 3 judges the scatters
    elif family.precision_form in ("full", "shared_full"):
        full = family.full_covariances(covariances, n_components, n_features)
        if family.shared:
            keys = [-1]
            founds = [_flattest_direction(full[0] - reg_covar * np.eye(n_features), means,
                                          weights, varying, reg_covar, eps, resolution)]
        else:
            keys = range(n_components)
            founds = _flattest_directions(full - reg_covar * np.eye(n_features), means, varying,
                                          reg_covar, eps, resolution)
        for key, found in zip(keys, founds, strict=True):
            if found is None or _data_flat_along(found[1], scale, reg_covar, eps, resolution):
                continue
            variance, v = found
            problems.setdefault(key, []).append(
                f"its variance along {direction_words(v)} is {_fmt(variance + reg_covar)}, "
                f"at the regularisation floor (reg_covar={_fmt(reg_covar)}; the data's "
                f"variance there is {_fmt(float(v @ scale @ v))})"
            )
    else:
        varying_set = set(varying.tolist())
        checks = family.variance_checks(covariances, means, scale)
        for i, (key, var, mean_sq, data_var, template) in enumerate(checks):
            if family.precision_form == "diagonal":
                if i % n_features not in varying_set:  # yielded per component, per feature
                    continue
            elif data_var <= 2.0 * reg_covar or varying.size == 0:
                continue  # the data themselves have no spread (a constant feature)
            if var - reg_covar <= floor(mean_sq):
                problems.setdefault(key, []).append(
                    template.format(var=_fmt(var), reg=_fmt(reg_covar), data=_fmt(data_var))
                )

    # 3. The components' scatters (the 10 constrained families).
    if constrained and with_data:
        for key, messages in _scatter_problems(
            family, X, resp, sample_weight, means, covariances, reg_covar, eps, resolution
        ).items():
            problems.setdefault(key, []).extend(messages)

    # 4. Spherical components whose points have no spread along some direction.
    if family.hides_flat_directions and X is not None and resp is not None:
        data_cov = data_covariance(X, sample_weight)
        data_centre = np.average(np.asarray(X, dtype=np.float64), axis=0, weights=sample_weight)
        data_varying = _varying_features(
            np.diag(data_cov), data_centre, reg_covar, eps, resolution
        )
        for k, scatter in _component_scatters(X, resp, sample_weight):
            found = _flattest_direction(
                scatter, means[k], np.ones(1), data_varying, reg_covar, eps, resolution
            )
            if found is None or _data_flat_along(found[1], data_cov, reg_covar, eps, resolution):
                continue
            variance, v = found
            problems.setdefault(k, []).append(
                f"its points have no spread along {direction_words(v)} (weighted variance "
                f"{_fmt(max(variance, 0.0))}, the data's is {_fmt(float(v @ data_cov @ v))}): "
                f"they share one value there, which its {family.name} covariance hides"
            )

    # A component holding one far row alone is an outlier's, not a spurious maximizer.
    for k, _, _ in outlier_components(weights, means, covariances, family, n_samples, nk):
        problems.pop(k, None)
    if not problems:
        return None
    parts = [
        (
            f"the shared ({family.name}) covariance: "
            if k < 0
            else f"component {k} (weight {_fmt(weights[k])}, {_fmt(nk[k])} effective points): "
        )
        + " and ".join(msgs)
        for k, msgs in sorted(problems.items())
    ]
    return (
        "; ".join(parts)
        + ". The component has collapsed onto a few (often repeated) points: a spurious "
        "maximizer of the likelihood. Try other initialisations, fewer components, or a "
        "simpler covariance_type."
    )


def _has_repeated_values(X, max_rows: int = 5000) -> bool:
    """True when some feature repeats a value among (an evenly spaced subset of) the rows."""
    sample = X[:: max(1, X.shape[0] // max_rows)]
    return any(len(np.unique(column)) < len(column) for column in sample.T)


def degeneracy_reason_of_estimator(estimator, data=None) -> str | None:
    """:func:`degeneracy_reason` for a fitted ``GaussianMixture``.

    Parameters
    ----------
    estimator : GaussianMixture
        A fitted model (``weights_``, ``means_``, ``covariances_``, ``covariance_type``,
        ``reg_covar``).
    data : object, optional
        The training data as the estimator sees it (the in-memory backend, with ``X``,
        ``sample_weight`` and ``weight_sum``), or a plain ndarray. ``weight_sum`` (or the
        number of rows) gives the effective numbers of points. The data's scale is taken
        from the fitted mixture (see :func:`mixture_covariance`). For a spherical model
        with the data in memory, one E-step checks its components against the data's
        own spread; other covariance types need no pass over the data.

    Returns
    -------
    str or None
    """
    X = sample_weight = None
    if data is None:
        n_samples = None
    elif isinstance(data, np.ndarray):
        n_samples = data.shape[0]
        X = data
    else:
        n_samples = getattr(data, "weight_sum", None)
        if n_samples is None:
            n_samples = getattr(data, "n_samples", None)
        if isinstance(getattr(data, "X", None), np.ndarray):
            X = data.X
            sample_weight = getattr(data, "sample_weight", None)
    if n_samples is None:
        raise ValueError("the number of training samples is unknown; pass the training data.")
    if getattr(estimator, "n_iter_", None) == 0:
        return None  # max_iter=0: no EM ran, so there is no fit to judge
    family = families.of_model(estimator)
    resp = None
    if X is not None and not family.covariance_is_scatter:
        # The constrained families are judged by their components' scatters (sign 3).
        resp = estimator.predict_proba(X)
    elif X is not None and family.hides_flat_directions and _has_repeated_values(X):
        # Sign 3 (points sharing one value of a feature) needs repeated values; continuous
        # data skip its E-step and scatter passes (0.5 s on 1e5 x 32).
        resp = estimator.predict_proba(X)
    return degeneracy_reason(
        estimator.weights_,
        estimator.means_,
        estimator.covariances_,
        family,
        float(n_samples),
        None,
        estimator.reg_covar,
        X=X,
        resp=resp,
        sample_weight=sample_weight,
    )
