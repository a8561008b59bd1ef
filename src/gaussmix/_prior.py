"""mclust's conjugate prior and the MAP M-step (Fraley & Raftery 2007).

``GaussianMixture(prior="default")`` regularises EM with the prior of Fraley & Raftery,
"Bayesian regularization for normal mixture estimation and model-based clustering",
Journal of Classification 24:155-181 (2007), as R's mclust applies it with
``priorControl()``: EM then finds the posterior mode (MAP) instead of the maximum of the
likelihood, and the information criteria use the log-likelihood at that mode.

The prior, for component k (the weights have none):

* mean: ``mu_k | Sigma_k ~ N(mu_P, Sigma_k / kappa_P)``;
* covariance: inverse-Wishart (matrix models) or inverse-gamma (variance models) with
  ``nu_P`` degrees of freedom and scale ``Lambda_P`` (a matrix, or a variance ``s_P``).

Hyperparameters (:class:`Prior`), by default (mclust's ``defaultPrior``) from the data::

    shrinkage  kappa_P = 0.01
    mean       mu_P    = the data's mean
    dof        nu_P    = D + 2
    scale      EEE, EEV, VEV, VVV:                 var(X) / K^(2/D)           (D, D)
               EII, VII, EEI, VEI, EVI, VVI:       mean(diag(var(X))) / K^(2/D)  scalar

The M-step. With ``xbar_k`` and ``W_k`` component k's weighted mean and scatter about it,
the mean's posterior mode is ``mu_k = (N_k xbar_k + kappa_P mu_P) / (N_k + kappa_P)``
whatever the covariance, and putting it back leaves the scatter

    P_k = W_k + kappa_P N_k / (N_k + kappa_P) (xbar_k - mu_P)(xbar_k - mu_P)^T.

For every model the rest of the log-posterior has the form

    -1/2 sum_k [ (N_k + c_k) log|Sigma_k| + tr((P_k + Lambda_k) Sigma_k^-1) ],

the expected complete-data log-likelihood of scatters ``P_k + Lambda_k`` and counts
``N_k + c_k``: the posterior mode is the model's maximum-likelihood M-step (closed form or
iterative, :mod:`gaussmix.families`) applied to them. The counts and scales per model
(each family's ``prior_terms``, gathered in :data:`TERMS`; checked against mclust by
``benchmarks/mclust_prior_reference.py``)::

    model  c_k                     Lambda_k      Sigma_k's update
    VVV    nu + D + 2              Lambda        (P_k + Lambda) / (N_k + nu + D + 2)
    EEE    (nu + D + 1 + K) / K    Lambda / K    (Lambda + sum P_k) / (N + nu + D + 1 + K)
    EEV    (nu + D + 2) / K        Lambda        eigenvalues pooled over k, / (N + nu + D + 2)
    VEV    0                       Lambda        VEV's iterative update
    VVI    nu + 3                  s I           (s + diag P_k) / (N_k + nu + 3)
    EEI    (nu + 2) / K            s I / K       (s + diag sum P_k) / (N + nu + 2)
    EVI    (nu + 2) / K            s I           EVI's update, volume / (N + nu + 2)
    VEI    (nu + 3) / D            s I           VEI's iterative update
    VII    1 + (nu + 2) / D        s I / D       (s + tr P_k) / (D N_k + D + nu + 2)
    EII    1 + (nu + 2) / (K D)    0             sum_k tr P_k / (D N + K D + nu + 2)

These are the fixed points of mclust 6.0.0's MAP EM, ``me(..., prior = priorControl())``
(what ``Mclust`` runs). For EEI, EVI and EEV mclust's single ``mstep()`` uses other counts
(N + nu + K + 2, N + nu + K + 2 and N + nu + D + 1, with ``W_k + Lambda`` for EEV), so its
``me()`` does not stop at a fixed point of its ``mstep()``; gaussmix follows ``me()``. In
mclust's EII update the scale does not enter (only the degrees of freedom do); gaussmix
follows it so that the two agree. mclust reports the unshrunk means ``xbar_k`` for EEI
(while using ``P_k``); gaussmix reports the posterior mode ``mu_k`` for every model (they
differ by ``kappa_P / (N_k + kappa_P)`` of ``xbar_k - mu_P``; the log-likelihoods on
faithful agree within 0.0013).

VEE, EVE, VVE and EVV have no prior update in mclust, nor here (a clear error).
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from . import families as _families

__all__ = [
    "DEFAULT_SHRINKAGE",
    "PRIOR_MODELS",
    "TERMS",
    "Prior",
    "check_prior_spec",
    "log_prior",
    "prior_scatter",
    "resolve_prior",
]

DEFAULT_SHRINKAGE = 0.01
#: mclust's models with a prior update, in mclust's order (the families whose
#: ``prior_terms`` are not None).
PRIOR_MODELS = tuple(m for m in _families.MCLUST_MODELS if _families.get(m).has_prior)
_KEYS = ("shrinkage", "mean", "dof", "scale")


def _matrix_scale(model) -> bool:
    """The prior scale is a (D, D) matrix (EEE, EEV, VEV, VVV), else a variance."""
    return _families.get(model).correlated


#: model -> (c_k as a function of (dof, K, D), scale factor as a function of (K, D)): each
#: family's ``prior_terms`` (:meth:`gaussmix.families.CovarianceFamily.prior_terms`).
TERMS = {m: (lambda dof, K, D, m=m: _families.get(m).prior_terms(dof, K, D)[0],
             lambda K, D, m=m: _families.get(m).prior_terms(1.0, K, D)[1])
         for m in PRIOR_MODELS}


@dataclass(frozen=True)
class Prior:
    """Resolved hyperparameters of the conjugate prior for one model and K.

    Attributes
    ----------
    model : str
        mclust's name of the covariance model the prior is for.
    shrinkage : float
        kappa_P > 0 (0: no prior on the means).
    mean : ndarray of shape (D,)
        mu_P.
    dof : float
        nu_P > 0.
    scale : ndarray
        (D, D) for EEE, EEV, VEV, VVV; shape () (a variance) for the other models.
    weight : float
        The factor by which the fit's sample weights were rescaled (1 without weights):
        the log prior is multiplied by it, so that the posterior mode is the one of the
        weights as given (integer weights fit as repeated rows). Not a hyperparameter.
    """

    model: str
    shrinkage: float
    mean: np.ndarray
    dof: float
    scale: np.ndarray
    weight: float = 1.0

    def counts(self, n_components):
        """``c_k``, (K,)."""
        c, _ = _families.get(self.model).prior_terms(self.dof, n_components,
                                                     self.mean.shape[0])
        return np.full(n_components, self.weight * float(c))

    def scatter_term(self, statistic, n_components):
        """``Lambda_k`` reduced as the family's statistic (full, pooled, diagonal, trace)."""
        K, D = n_components, self.mean.shape[0]
        f = self.weight * _families.get(self.model).prior_terms(self.dof, K, D)[1]
        scale = np.asarray(self.scale, dtype=np.float64)
        matrix = scale if scale.ndim == 2 else scale * np.eye(D)
        if statistic == "pooled":
            return K * f * matrix
        if statistic == "full":
            return np.broadcast_to(f * matrix, (K, D, D))
        if statistic == "diagonal":
            return np.broadcast_to(f * np.diag(matrix), (K, D))
        return np.full(K, f * np.trace(matrix))

    def to_dict(self):
        """The four hyperparameters as plain lists and floats (model files)."""
        return {
            "shrinkage": float(self.shrinkage),
            "mean": [float(v) for v in self.mean],
            "dof": float(self.dof),
            "scale": np.asarray(self.scale, dtype=np.float64).tolist(),
        }


def check_prior_spec(prior) -> None:
    """Raise ValueError/TypeError unless ``prior`` is None, "default" or a dict of the four
    hyperparameters (their values are checked against the data when fitting)."""
    if prior is None or (isinstance(prior, str) and prior == "default"):
        return
    if isinstance(prior, Prior):
        return
    if not isinstance(prior, dict):
        raise TypeError(
            "prior must be None (maximum likelihood), \"default\" (mclust's priorControl(): "
            "a conjugate prior with shrinkage 0.01, the data's mean, D + 2 degrees of "
            "freedom and scale var(X) / K^(2/D)) or a dict with some of the keys "
            f"{', '.join(_KEYS)}; got {prior!r}."
        )
    unknown = sorted(set(prior) - set(_KEYS))
    if unknown:
        raise ValueError(
            f"prior has unknown key(s) {unknown}; its keys are {', '.join(_KEYS)} (any "
            "key left out takes mclust's default)."
        )


def _positive(value, name, allow_zero=False):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"prior[{name!r}] must be a number; got {value!r}.")
    value = float(value)
    ok = value >= 0 if allow_zero else value > 0
    if not (np.isfinite(value) and ok):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"prior[{name!r}] must be finite and {bound}; got {value!r}.")
    return value


def _as_array(value, name):
    try:
        arr = np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"prior[{name!r}] must be numbers; got {value!r}.") from None
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"prior[{name!r}] must be finite; it holds NaN or infinity.")
    return arr


def resolve_prior(spec, family, n_components, data_mean, data_cov) -> Prior | None:
    """The :class:`Prior` of ``spec`` for a model, K and data (None when ``spec`` is None).

    ``data_mean`` (D,) and ``data_cov`` (D, D) are the data's mean and covariance (with
    divisor n - 1, as R's ``var``): the defaults are built from them.
    """
    if spec is None:
        return None
    if isinstance(spec, Prior):
        return spec
    check_prior_spec(spec)
    model = family.mclust_name
    if model not in PRIOR_MODELS:
        raise ValueError(
            f"covariance_type={family.name!r} has no update under the conjugate prior (as "
            f"in mclust, which has none for VEE, EVE, VVE and EVV). Use one of "
            f"{', '.join(PRIOR_MODELS)} with a prior, or prior=None."
        )
    given = {} if spec == "default" else dict(spec)
    D = int(np.shape(data_mean)[0])
    K = int(n_components)
    shrinkage = _positive(given.get("shrinkage", DEFAULT_SHRINKAGE), "shrinkage", True)
    dof = _positive(given.get("dof", D + 2), "dof")
    mean = np.array(data_mean, dtype=np.float64) if "mean" not in given else _as_array(
        given["mean"], "mean"
    )
    if mean.shape != (D,):
        raise ValueError(
            f"prior['mean'] must have one value per feature, shape ({D},); got shape "
            f"{mean.shape}."
        )
    if "scale" in given:
        scale = _as_array(given["scale"], "scale")
        scale = _check_scale(scale, model, D)
    else:
        cov = np.asarray(data_cov, dtype=np.float64).reshape(D, D)
        factor = float(K) ** (2.0 / D)
        if _matrix_scale(model):
            scale = cov / factor
        else:
            scale = np.array(np.trace(cov) / D / factor)
        if not np.all(np.linalg.eigvalsh(np.atleast_2d(scale)) > 0):
            raise ValueError(
                "The data's covariance is singular (a constant feature, or fewer distinct "
                "rows than features), so the default prior scale var(X) / K^(2/D) is not "
                "positive definite. Drop constant features, or give the scale yourself "
                "(GaussianMixture(prior={'scale': ...}) in Python)."
            )
    return Prior(model, shrinkage, mean, dof, scale)


def _check_scale(scale, model, D):
    if _matrix_scale(model):
        if scale.ndim == 0:
            scale = float(scale) * np.eye(D)
        if scale.shape != (D, D):
            raise ValueError(
                f"prior['scale'] for {model} must be a ({D}, {D}) positive definite matrix "
                f"(or a positive number, meaning that times the identity); got shape "
                f"{scale.shape}."
            )
        if not np.allclose(scale, scale.T, rtol=1e-10, atol=0.0):
            raise ValueError("prior['scale'] must be symmetric; it is not.")
        if not np.linalg.eigvalsh(scale).min() > 0:
            raise ValueError("prior['scale'] must be positive definite; it has an eigenvalue "
                             "<= 0.")
        return scale
    if scale.ndim != 0:
        raise ValueError(
            f"prior['scale'] for {model} is one variance (a positive number), as mclust's "
            f"for the spherical and diagonal models; got an array of shape {scale.shape}."
        )
    if not float(scale) > 0:
        raise ValueError(f"prior['scale'] must be > 0; got {float(scale)!r}.")
    return scale


def data_moments(X, sample_weight=None, rescale=1.0):
    """Weighted mean (D,) and covariance (D, D) of complete rows ``X``, in float64.

    The covariance divides by ``sum(w) - 1`` (R's ``var`` for unit weights), with the
    weights as the user gave them: ``sample_weight / rescale``.
    """
    X = np.asarray(X, dtype=np.float64)
    w = np.ones(X.shape[0]) if sample_weight is None else np.asarray(sample_weight, np.float64)
    w = w / rescale
    total = w.sum()
    mean = w @ X / total
    Xc = X - mean
    cov = (Xc * w[:, None]).T @ Xc / max(total - 1.0, 1e-300)
    return mean, 0.5 * (cov + cov.T)


def prior_scatter(statistic, nk, s1, s2, shift, prior, reg_covar, guard):
    """``(P_k + Lambda_k + reg_covar n_k I, n_k + c_k, means)``: the MAP M-step's scatters
    and counts for the family's statistic (full, pooled, diagonal or trace), and the means'
    posterior mode (K, D), all in float64 (module docstring)."""
    nk = np.asarray(nk, dtype=np.float64)
    s1 = np.asarray(s1, dtype=np.float64)
    s2 = np.asarray(s2, dtype=np.float64)
    shift = np.asarray(shift, dtype=np.float64)
    K, D = s1.shape
    kappa = prior.shrinkage * prior.weight
    safe = np.where(nk > 0, nk, 1.0)
    d = s1 / safe[:, None]  # xbar_k - c_k
    dev = shift + d - prior.mean  # xbar_k - mu_P
    weight = np.where(nk > 0, kappa * nk / (nk + kappa), 0.0) if kappa > 0 else np.zeros(K)
    n_k = nk + guard
    if kappa > 0:
        means = shift + (s1 + kappa * (prior.mean - shift)) / (nk + kappa)[:, None]
    else:
        means = shift + s1 / n_k[:, None]
    if statistic == "trace":
        P = s2 - np.sum(s1 * d, axis=1) + weight * np.sum(dev * dev, axis=1)
        P = P + reg_covar * n_k * D
    elif statistic == "diagonal":
        P = s2 - s1 * d + weight[:, None] * dev * dev + reg_covar * n_k[:, None]
    elif statistic == "pooled":
        P = s2 - s1.T @ d + (dev * weight[:, None]).T @ dev
        P = 0.5 * (P + P.T)
        P.flat[:: D + 1] += reg_covar * n_k.sum()
    else:
        P = s2 - s1[:, :, None] * d[:, None, :] + (
            weight[:, None, None] * dev[:, :, None] * dev[:, None, :]
        )
        P = 0.5 * (P + np.swapaxes(P, 1, 2))
        P[:, np.arange(D), np.arange(D)] += reg_covar * n_k[:, None]
    P = P + prior.scatter_term(statistic, K)
    return P, n_k + prior.counts(K), means


def log_prior(params, prior) -> float:
    """The log prior density of mixture parameters, up to a constant, in the form the MAP
    M-step maximises (module docstring):

    ``sum_k -1/2 [ kappa (mu_k - mu_P)^T Sigma_k^-1 (mu_k - mu_P) + c_k log|Sigma_k|
    + tr(Lambda_k Sigma_k^-1) ]``, so that EM raises ``log-likelihood + log_prior``.
    """
    family = params.family
    K, D = params.means.shape
    cov = family.full_covariances(params.covariances, K, D)
    chol = np.linalg.cholesky(cov)
    log_det = 2.0 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)
    inv = np.linalg.inv(cov)
    dev = np.asarray(params.means, dtype=np.float64) - prior.mean
    quad = np.einsum("ki,kij,kj->k", dev, inv, dev)
    lam = prior.scatter_term("full", K)
    trace = np.einsum("kij,kji->k", lam, inv)
    c = prior.counts(K)
    kappa = prior.shrinkage * prior.weight
    return float(-0.5 * np.sum(kappa * quad + c * log_det + trace))
