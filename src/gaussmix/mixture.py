"""``GaussianMixture``: the scikit-learn estimator, written on gaussmix's block engine."""

from __future__ import annotations

import dataclasses
import inspect
import sys
import time
import warnings

import numpy as np

from . import _missing, _online, families
from . import stats as _stats
from ._backends import ArrayData, _is_dask_array, data_source
from ._criteria import information_criteria
from ._exceptions import ConvergenceWarning, DegenerateFitWarning, NotFittedError
from ._init import far_rows, initial_statistics, statistics_of_parameters, with_isolated_rows
from ._parallel import block_executor
from ._validation import (
    check_array,
    check_means_init,
    check_parameters,
    check_precisions_init,
    check_random_state,
    check_sample_weight,
    check_weights_init,
    feature_names_of,
    warn_small_variances,
)
from .em import run_em
from .stats import MixtureParameters, SufficientStatistics

__all__ = ["GaussianMixture"]


def _not_fitted_error_class():
    """gaussmix's NotFittedError, also a scikit-learn NotFittedError when sklearn is loaded.

    Code that catches ``sklearn.exceptions.NotFittedError`` then works unchanged, and
    scikit-learn is never imported on our side.
    """
    sklearn_exceptions = sys.modules.get("sklearn.exceptions")
    if sklearn_exceptions is None:
        return NotFittedError
    global _SKLEARN_NOT_FITTED
    if _SKLEARN_NOT_FITTED is None:
        _SKLEARN_NOT_FITTED = type(
            "NotFittedError", (NotFittedError, sklearn_exceptions.NotFittedError), {}
        )
    return _SKLEARN_NOT_FITTED


_SKLEARN_NOT_FITTED = None

# Batches of partial_fit from this many rows spread their E-step over a thread pool.
_ONLINE_THREADED_ROWS = 50_000


class GaussianMixture:
    """Gaussian mixture model fitted by Expectation-Maximization.

    A drop-in replacement for :class:`sklearn.mixture.GaussianMixture`: the same
    parameters, fitted attributes, methods and EM semantics, on NumPy alone. Adds
    ``sample_weight`` in :meth:`fit`, :meth:`icl`, a ``random_state`` for :meth:`sample`,
    :meth:`save`, a degeneracy check, and fitting on Dask arrays.

    The density is ``p(x) = sum_k pi_k N(x | mu_k, Sigma_k)``; see ``docs/math.md``.

    Parameters
    ----------
    n_components : int, default=1
        Number of mixture components K.
    covariance_type : {"full", "tied", "diag", "spherical"}, default="full"
        Structure of the covariances (mclust names: VVV, EEE, VVI, VII)::

            full       each component has its own general covariance   (K, D, D)
            tied       all components share one general covariance     (D, D)
            diag       each component has its own diagonal covariance  (K, D)
            spherical  each component has its own single variance      (K,)

        mclust's names are accepted as aliases ("EEE" is "tied"); the fitted model and
        its files show the scikit-learn name. mclust's ten other models are accepted by
        their names, Sigma_k = lambda_k D_k A_k D_k^T with volume, shape and orientation
        Equal, Variable or Identity (Celeux & Govaert 1995)::

            EII  (K,)        EEI, VEI, EVI  (K, D)     VEE, EVE, VVE, EEV, VEV, EVV  (K, D, D)

        stored in the shape of the scikit-learn family they constrain, a shared piece
        repeated per component. ``reg_covar`` is added to the scatter before the
        constrained update, so it keeps the constraint. Each family is described by one
        object in :mod:`gaussmix.families`.
    tol : float, default=1e-3
        EM stops when the mean per-sample log-likelihood changes by less than ``tol``.
    reg_covar : float, default=1e-6
        Added to the diagonal of every covariance; keeps them positive definite.
    max_iter : int, default=100
        EM iterations per initialisation.
    n_init : int, default=1
        Number of initialisations; the one with the highest final lower bound is kept.
    init_params : {"kmeans", "k-means++", "random", "random_from_data", "robust"}, \
default="kmeans"
        How the initial parameters are chosen. The first four are scikit-learn's (initial
        responsibilities from k-means, k-means++ seeds, random values, random rows).
        ``"robust"`` gives a single fit the start strategy of
        :func:`~gaussmix.selection.select_model` for this ``n_components`` and
        ``covariance_type``: for K = 1 .. n_components in turn, EM from Ward hierarchical,
        k-means and random partitions and from splits of the fit with one component
        fewer, raced by successive halving, the winner run to convergence (SQUAREM). It
        costs a few dozen short EM runs (on at most 2,000 rows, then a final polish on
        all of them) and avoids most poor local maxima: on Old Faithful, 3 tied
        components reach log-likelihood -1126.316 where ``"kmeans"`` with seed 0 stops at
        -1140.55. Deterministic for a given ``random_state``.
    weights_init : array-like of shape (n_components,), optional
    means_init : array-like of shape (n_components, n_features), optional
    precisions_init : array-like, optional
        Initial precisions (inverse covariances), shaped as the covariances.
    random_state : int, RandomState instance or None, default=None
    warm_start : bool, default=False
        Start from the previous fit's parameters (with a single initialisation).
    verbose : int, default=0
    verbose_interval : int, default=10
    block_size : int, optional
        Rows per block of the E-step (bounded memory); chosen automatically by default.
    learning_offset : float, default=2.0
        ``t0`` of the step size ``rho_t = (t + t0) ** -learning_decay`` of
        :meth:`partial_fit` (scikit-learn's name in LatentDirichletAllocation); larger
        values make the early batches count less. The defaults were chosen by
        ``benchmarks/bench_online.py --sweep``.
    learning_decay : float, default=0.7
        ``alpha`` in (0.5, 1] of the step size of :meth:`partial_fit`: 1 averages all the
        batches equally (with ``learning_offset=0``), smaller values forget old batches
        faster.
    prior : None, "default" or dict, default=None
        None: maximum likelihood (scikit-learn's EM). ``"default"``: mclust's
        ``priorControl()``, the conjugate prior of Fraley & Raftery (2007) with shrinkage
        0.01, the data's mean, D + 2 degrees of freedom and scale var(X) / K^(2/D) (a
        variance, the mean of var(X)'s diagonal over K^(2/D), for the spherical and
        diagonal models). EM then finds the posterior mode (MAP): the M-step shrinks the
        means towards the prior mean and the covariances towards the scale, which keeps
        components from collapsing. ``lower_bound_``, :meth:`score` and :meth:`bic` are
        the log-likelihood at that mode, as mclust's BIC with a prior. A dict gives the
        hyperparameters ``shrinkage`` (>= 0), ``mean`` (D,), ``dof`` (> 0) and ``scale``
        (a (D, D) positive definite matrix for EEE/tied, EEV, VEV and VVV/full; a
        positive variance for EII, VII, EEI, VEI, EVI and VVI); a key left out takes the
        default. mclust's models VEE, EVE, VVE and EVV have no update under this prior
        (an error), nor has :meth:`partial_fit`. EM then raises the log-posterior at every
        iteration; the log-likelihood in ``lower_bounds_`` may fall slightly on the way.
        With missing values the default mean and scale are one Gaussian's
        maximum-likelihood moments of the observed cells; the far rows isolated at the
        start are left out of them. See ``docs/math.md``, section 9.

    Attributes
    ----------
    weights_ : ndarray of shape (n_components,)
    means_ : ndarray of shape (n_components, n_features)
    covariances_, precisions_, precisions_cholesky_ : ndarray
        Shaped by ``covariance_type`` as above.
    converged_ : bool
    n_iter_ : int
    lower_bound_ : float
        Mean log-likelihood per sample of the best initialisation.
    lower_bounds_ : list of float
        Its value after every EM iteration.
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Defined only when X was a DataFrame with string column names.
    degenerate_ : bool
        True when the fit looks like a spurious maximizer (a collapsed component).
        Always False under a ``prior``: the posterior mode has no such maximizers (every
        covariance is bounded below by the prior's scale over ``N_k + c_k``), as mclust
        does not flag its MAP fits either.
    degenerate_reason_ : str or None
    outlier_components_ : ndarray of int
        Components that hold one far row alone (at most 1.5 effective points, more than
        1e4 standard deviations from every other component): a far outlier's, named in a
        ``DegenerateFitWarning``; the other components are fitted as without it. See
        ``docs/robustness.md``.
    outlier_rows_ : ndarray of int
        Rows that were given a component of their own at the start: rows more than 1e4
        standard deviations (of the other rows) away, at most ``n_components - 1``.
    n_batch_iter_ : int
        Batches seen by :meth:`partial_fit` (absent before the first one).
    prior_ : gaussmix._prior.Prior or None
        The resolved hyperparameters the last fit used (None without a prior).
    running_statistics_ : SufficientStatistics
        :meth:`partial_fit`'s running averages of the sufficient statistics (per sample);
        saved in model files so that a loaded model continues exactly.
    batch_weight_ : float
        The mean weight of :meth:`partial_fit`'s batches so far (rows, or the sum of their
        sample weights; a fit's rows count as the first batch): a lighter batch takes a
        proportionally smaller step. Saved in model files.

    Notes
    -----
    **Missing values.** NaN in ``X`` marks a missing value (in memory, in
    :meth:`partial_fit` and on Dask arrays). :meth:`fit` then runs exact EM under "missing at
    random" (Ghahramani & Jordan 1994): a row's density is the marginal of its observed
    coordinates, and ``lower_bound_`` is the observed-data log-likelihood, which EM never
    lowers. The initialisation (k-means, k-means++, random, robust) sees the data with each
    NaN replaced by its column's mean, for the start only. :meth:`predict`,
    :meth:`predict_proba`, :meth:`score_samples`, :meth:`score` and the information
    criteria use the observed coordinates; :meth:`impute` fills the holes with their
    conditional means and :meth:`condition` gives the conditional mixture of one row's
    missing coordinates. Infinity, rows with no observed value and features with no
    observed value are refused.

    Examples
    --------
    >>> import numpy as np
    >>> from gaussmix import GaussianMixture
    >>> rng = np.random.default_rng(0)
    >>> X = np.vstack([rng.normal(-3, 1, (200, 2)), rng.normal(3, 1, (200, 2))])
    >>> gm = GaussianMixture(n_components=2, random_state=0).fit(X)
    >>> np.sort(gm.means_[:, 0]).round(0)
    array([-3.,  3.])
    >>> gm.predict_proba(X[:1]).sum().round(6)
    np.float64(1.0)
    """

    def __init__(
        self,
        n_components=1,
        *,
        covariance_type="full",
        tol=1e-3,
        reg_covar=1e-6,
        max_iter=100,
        n_init=1,
        init_params="kmeans",
        weights_init=None,
        means_init=None,
        precisions_init=None,
        random_state=None,
        warm_start=False,
        verbose=0,
        verbose_interval=10,
        block_size=None,
        learning_offset=_online.LEARNING_OFFSET,
        learning_decay=_online.LEARNING_DECAY,
        prior=None,
    ):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weights_init = weights_init
        self.means_init = means_init
        self.precisions_init = precisions_init
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.verbose_interval = verbose_interval
        self.block_size = block_size
        self.learning_offset = learning_offset
        self.learning_decay = learning_decay
        self.prior = prior

    # ----------------------------------------------------------------------------------
    # scikit-learn estimator protocol, without importing scikit-learn
    # ----------------------------------------------------------------------------------
    @classmethod
    def _get_param_names(cls):
        signature = inspect.signature(cls.__init__)
        return sorted(p.name for p in signature.parameters.values() if p.name != "self")

    def get_params(self, deep=True):
        """Parameters of this estimator, as a dict (scikit-learn protocol)."""
        return {name: getattr(self, name) for name in self._get_param_names()}

    def set_params(self, **params):
        """Set parameters (scikit-learn protocol); returns self."""
        valid = self._get_param_names()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(
                    f"Invalid parameter {name!r} for GaussianMixture. "
                    f"Valid parameters are: {', '.join(valid)}."
                )
            setattr(self, name, value)
        return self

    def __repr__(self):
        defaults = {
            p.name: p.default
            for p in inspect.signature(type(self).__init__).parameters.values()
            if p.name != "self"
        }
        changed = []
        for name in self._get_param_names():
            value = getattr(self, name)
            default = defaults[name]
            if isinstance(value, np.ndarray) or isinstance(default, np.ndarray):
                if value is not default:
                    changed.append(f"{name}=array(shape={np.shape(value)})")
                continue
            if value is not default and value != default:
                changed.append(f"{name}={value!r}")
        return f"{type(self).__name__}({', '.join(changed)})"

    def __sklearn_tags__(self):
        from sklearn.utils import InputTags, Tags, TargetTags

        return Tags(
            estimator_type="density_estimator",
            target_tags=TargetTags(required=False),
            transformer_tags=None,
            classifier_tags=None,
            regressor_tags=None,
            input_tags=InputTags(allow_nan=True),
        )

    def __sklearn_is_fitted__(self):
        return hasattr(self, "means_")

    # ----------------------------------------------------------------------------------
    # Fitting
    # ----------------------------------------------------------------------------------
    def fit(self, X, y=None, sample_weight=None):
        """Estimate the parameters with EM (``n_init`` starts, best lower bound kept).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            float64 and float32 keep their dtype; other real types become float64. A
            ``dask.array.Array`` is fitted on the cluster (needs the ``dask`` extra).
        y : ignored
        sample_weight : array-like of shape (n_samples,), optional
            Non-negative weights; integer weights give the fit of repeated rows.

        Returns
        -------
        self
        """
        check_parameters(self)
        feature_names = None if _is_dask_array(X) else feature_names_of(X)
        data = data_source(X, sample_weight, self.block_size, allow_nan=True)
        in_memory = isinstance(getattr(data, "X", None), np.ndarray)
        if in_memory:
            warn_small_variances(data.X, data.sample_weight, self.reg_covar)
        if data.n_samples < self.n_components:
            raise ValueError(
                f"Expected n_samples >= n_components, but got n_components = "
                f"{self.n_components} and n_samples = {data.n_samples}. Lower "
                "n_components or provide more data."
            )
        weights = getattr(data, "sample_weight", None)
        if isinstance(weights, np.ndarray):
            positive = int(np.count_nonzero(weights > 0))
            if positive < self.n_components:
                raise ValueError(
                    f"Only {positive} row{'s' if positive != 1 else ''} of X "
                    f"{'have' if positive != 1 else 'has'} a positive sample_weight, fewer "
                    f"than n_components={self.n_components}: the other components would "
                    "hold no data. Lower n_components or give more rows a positive weight."
                )
        weight_total = None  # the weights' sum as given (ArrayData rescales them to mean 1)
        if self.prior is not None and sample_weight is not None and isinstance(data, ArrayData):
            weight_total = float(np.sum(check_sample_weight(sample_weight, data.n_samples)))
        with data.parallel():
            self._fit(data, feature_names, weight_total)
        # What the fit's rows weigh as a first batch of partial_fit (see _online.step_size).
        self._fit_weight = (_weight_total(data, sample_weight) if in_memory
                            else float(data.weight_sum))
        return self

    def _check_initial_arrays(self, n_features, dtype):
        K = self.n_components
        weights = means = precisions = None
        if self.weights_init is not None:
            weights = check_weights_init(self.weights_init, K, dtype)
        if self.means_init is not None:
            means = check_means_init(self.means_init, K, n_features, dtype)
        if self.precisions_init is not None:
            precisions = check_precisions_init(
                self.precisions_init, self.covariance_type, K, n_features, dtype
            )
        return weights, means, precisions

    def _initial_parameters(self, data, random_state, inits, prior=None):
        weights_init, means_init, precisions_init = inits
        far = [row for row, _ in getattr(self, "_isolated", None) or ()]
        data = _start_data(data, exclude=far)
        dtype = data.dtype
        if weights_init is not None and means_init is not None and precisions_init is not None:
            return MixtureParameters.from_precisions(
                self.covariance_type, weights_init, means_init, precisions_init
            ).astype(dtype)
        isolated = getattr(self, "_isolated", None)
        if isolated:
            params, weights = self._isolating_start(data, random_state, isolated)
        elif self.init_params == "robust":
            params = self._robust_start(data, random_state)
            weights = params.weights
        else:
            stats = initial_statistics(
                data, self.init_params, self.n_components, random_state, self.covariance_type
            )
            params = _stats.m_step(
                stats, reg_covar=self.reg_covar, dtype=np.float64, prior=prior
            )
            # As scikit-learn: initial weights are N_k / N (not renormalised).
            weights = (stats.nk + 10 * np.finfo(dtype).eps) / stats.weight_sum
        if weights_init is not None:
            weights = weights_init
        means = params.means if means_init is None else means_init
        if precisions_init is not None:
            return MixtureParameters.from_precisions(
                self.covariance_type, weights, means, precisions_init
            ).astype(dtype)
        return MixtureParameters(
            self.covariance_type, weights, means, params.covariances, params.precisions_cholesky
        ).astype(dtype)

    def _isolating_start(self, data, random_state, isolated):
        """The start with one component on each far row (``_isolated``, see
        :func:`gaussmix._init.far_rows`) and ``init_params`` on the other rows.

        The other rows get exactly the start they would get without the far ones (same
        method, same random draws), so EM fits them as it would without the outliers,
        whose components hold them alone. Returns ``(parameters, initial weights)``.
        """
        rows = np.array([row for row, _ in isolated])
        others = np.ones(data.n_samples, dtype=bool)
        others[rows] = False
        weights_all = data.sample_weight
        rest = ArrayData(
            data.X[others], None if weights_all is None else weights_all[others],
            data.block_size, data.executor,
        )
        n_rest = self.n_components - len(rows)
        if self.init_params == "robust":
            rest_params = self._robust_start(rest, random_state, n_rest)
            stats = statistics_of_parameters(rest_params, rest.weight_sum, self.reg_covar)
        else:
            stats = initial_statistics(
                rest, self.init_params, n_rest, random_state, self.covariance_type
            )
        row_weights = None if weights_all is None else weights_all[rows]
        # The other rows' weight in the units of all the data (ArrayData rescales weights
        # to mean 1 over the rows it holds).
        scale = (data.weight_sum - (len(rows) if row_weights is None else row_weights.sum())
                 ) / stats.weight_sum
        stats = with_isolated_rows(
            SufficientStatistics(stats.covariance_type, stats.shift, stats.nk * scale,
                                 stats.s1 * scale, stats.s2 * scale, 0.0, data.weight_sum),
            data.X[rows], row_weights, data.weight_sum, self.covariance_type,
        )
        params = _stats.m_step(stats, reg_covar=self.reg_covar, dtype=np.float64)
        return params, (stats.nk + 10 * np.finfo(data.dtype).eps) / stats.weight_sum

    def _far_rows(self, data, inits):
        """Rows to isolate at the start (:func:`gaussmix._init.far_rows`): only for a fresh
        start on data in memory with at least two components and no initial arrays."""
        if self.n_components < 2 or any(a is not None for a in inits):
            return []
        data = _start_data(data, median=True)
        if not isinstance(getattr(data, "X", None), np.ndarray):
            return []
        return far_rows(data.X, data.sample_weight, self.n_components - 1)

    def _robust_start(self, data, random_state, n_components=None) -> MixtureParameters:
        """The start of ``init_params="robust"``: select_model's strategy for this K and type.

        On data in memory, all rows; on a Dask array, a random sample of rows (as k-means
        initialisation: ``data.kmeans_rows`` at most).
        """
        from .selection import robust_parameters

        X, weights = data.sample_rows(data.kmeans_rows, random_state)
        return robust_parameters(
            X,
            weights,
            self.n_components if n_components is None else n_components,
            families.get(self.covariance_type).name,
            reg_covar=self.reg_covar,
            random_state=random_state,
            tol=self.tol,
        )

    def _fit(self, data, feature_names, weight_total=None):
        inits = self._check_initial_arrays(data.n_features, data.dtype)
        do_init = not (self.warm_start and hasattr(self, "converged_"))
        if not do_init and (
            self.means_.shape != (self.n_components, data.n_features)
            or families.get(self.covariance_type).name != self._fitted_covariance_type
        ):
            raise ValueError(
                "warm_start=True needs the same n_components, number of features and "
                f"covariance_type as the previous fit ({self.means_.shape[0]} components, "
                f"{self.means_.shape[1]} features, {self._fitted_covariance_type!r}); got "
                f"{self.n_components}, {data.n_features} and {self.covariance_type!r}. "
                "Set warm_start=False to start afresh."
            )
        n_init = self.n_init if do_init else 1
        # Fail on a model without a prior update before any pass over the data.
        self._resolve_prior(data, weight_total, check_only=True)
        random_state = check_random_state(self.random_state)
        # Far outliers get components of their own at the start (docs/robustness.md).
        self._isolated = self._far_rows(data, inits) if do_init else []
        # ... and are left out of the default prior's mean and scale (one row at 1e9 made
        # var(X) singular in floating point, or inflated every component's covariance).
        prior = self._resolve_prior(data, weight_total, [row for row, _ in self._isolated])
        try:
            self._run_inits(data, feature_names, inits, do_init, n_init, random_state, prior)
        finally:
            self.__dict__.pop("_isolated", None)

    @staticmethod
    def _objective(result, prior, n_samples):
        """The mean log-likelihood EM reached, plus the log prior per sample under a prior."""
        if prior is None or not np.isfinite(result.lower_bound):
            return result.lower_bound
        from ._prior import log_prior

        try:
            return result.lower_bound + log_prior(result.params, prior) / n_samples
        except np.linalg.LinAlgError:  # a covariance without a factor: not a mode to keep
            return -np.inf

    def _run_inits(self, data, feature_names, inits, do_init, n_init, random_state, prior):
        best, best_key = None, -np.inf
        for init in range(n_init):
            if self.verbose:
                print(f"Initialization {init}")
            if do_init:
                params = self._initial_parameters(data, random_state, inits, prior)
                start_bound = -np.inf
            else:
                params = self._get_parameters().astype(data.dtype)
                start_bound = self.lower_bound_
            result = run_em(
                data.statistics,
                params,
                reg_covar=self.reg_covar,
                tol=self.tol,
                max_iter=self.max_iter,
                lower_bound=start_bound,
                callback=self._iteration_callback(),
                prior=prior,
            )
            if self.verbose:
                state = "converged" if result.converged else "did not converge"
                print(f"Initialization {state}. lower bound {result.lower_bound:.5f}.")
            # As scikit-learn: keep the highest lower bound (with max_iter=0 every bound
            # is -inf and the last initialisation is kept); under a prior, the highest
            # log-posterior, which is what MAP EM raises.
            key = self._objective(result, prior, data.n_samples)
            if best is None or key > best_key or best_key == -np.inf:
                best, best_key = result, key
        if not best.converged and self.max_iter > 0:
            warnings.warn(
                "The best initialization did not converge: EM stopped at max_iter="
                f"{self.max_iter} before the log-likelihood changed by less than "
                f"tol={self.tol:g}. Increase max_iter or tol, try other init_params, or "
                "check the data for duplicated or degenerate points.",
                ConvergenceWarning,
                stacklevel=4,
            )
        self._set_parameters(best.params)
        self._fitted_covariance_type = best.params.covariance_type  # the family's name
        self.converged_ = bool(best.converged)
        self.n_iter_ = best.n_iter
        self.lower_bound_ = float(best.lower_bound) if self.max_iter > 0 else -np.inf
        self.lower_bounds_ = [float(b) for b in best.lower_bounds]
        self.prior_ = prior
        self.n_features_in_ = data.n_features
        if feature_names is not None:
            self.feature_names_in_ = feature_names
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        # A new fit replaces partial_fit's running statistics (partial_fit after fit
        # starts from the fitted parameters).
        for name in ("running_statistics_", "n_batch_iter_", "batch_weight_"):
            self.__dict__.pop(name, None)
        if self.max_iter > 0:
            self._check_degenerate(data)
        else:  # only a starting point: nothing was fitted to judge
            self.degenerate_, self.degenerate_reason_ = False, None
        self._report_isolated(data)

    def _report_isolated(self, data):
        """``outlier_rows_``, ``outlier_components_`` and a warning naming them."""
        from ._degeneracy import outlier_components

        isolated = getattr(self, "_isolated", None) or []
        self.outlier_rows_ = np.array([row for row, _ in isolated], dtype=np.intp)
        found = outlier_components(
            self.weights_, self.means_, self.covariances_, self._family(), data.weight_sum
        ) if self.max_iter > 0 else []
        self.outlier_components_ = np.array([k for k, _, _ in found], dtype=np.intp)
        if not found:
            return
        notes = [
            f"component {k} holds {points:.3g} effective point"
            f"{'' if f'{points:.3g}' == '1' else 's'}, "
            f"{distance:.2g} standard deviations from every other component"
            for k, points, distance in found
        ]
        rows = ""
        if len(self.outlier_rows_):
            rows = f" (row{'s' if len(self.outlier_rows_) > 1 else ''} " + ", ".join(
                map(str, self.outlier_rows_)) + ", isolated at the start)"
        warnings.warn(
            "Far outliers: " + "; ".join(notes) + rows + ". Each such component holds a "
            "far row alone (" + ("its covariance is at reg_covar" if self.prior_ is None
                                 else "its mean and covariance are the prior's mode for "
                                 "one point") + "); the other components are "
            "fitted as without it. Drop those rows, or read them as outliers.",
            DegenerateFitWarning,
            stacklevel=5,
        )

    def _resolve_prior(self, data, weight_total=None, exclude=(), check_only=False):
        """The conjugate prior's hyperparameters for this fit (None without a prior).

        ``weight_total`` is the sum of the sample weights as the user gave them, when the
        data source rescaled them (to mean 1): the prior is then weighted by the same
        factor, so that integer weights still fit as repeated rows. ``exclude``: rows
        (the far rows isolated at the start) left out of the data's moments.
        """
        if self.prior is None:
            return None
        from ._prior import data_moments, resolve_prior

        family = families.get(self.covariance_type)
        resolve_prior(self.prior, family, self.n_components, np.zeros(data.n_features),
                      np.eye(data.n_features))
        if check_only:
            return None
        rescale = 1.0 if weight_total is None else data.weight_sum / weight_total
        X = getattr(data, "X", None)
        if isinstance(X, np.ndarray):
            w = data.sample_weight
            if len(exclude):
                kept = np.ones(X.shape[0], dtype=bool)
                kept[list(exclude)] = False
                X, w = X[kept], None if w is None else w[kept]
        if isinstance(X, np.ndarray) and _missing.incomplete_rows(X) is None:
            mean, cov = data_moments(X, w, rescale)
        elif isinstance(X, np.ndarray):
            # With NaN: one Gaussian's (ML) moments of the observed cells, by EM.
            kept = ArrayData(X, w, data.block_size, data.executor)
            ratio = 1.0 if w is None else kept.weight_sum / float(np.sum(w))
            mean, cov = _streamed_moments(kept, rescale * ratio)
        else:  # out of core (and with NaN, as above)
            mean, cov = _streamed_moments(data, rescale)
        prior = resolve_prior(self.prior, family, self.n_components, mean, cov)
        return prior if rescale == 1.0 else dataclasses.replace(prior, weight=rescale)

    def _iteration_callback(self):
        user_callback = getattr(self, "_callback", None)
        if not self.verbose and user_callback is None:
            return None
        start = [time.perf_counter()]

        def callback(n_iter, lower_bound, change):
            if self.verbose and n_iter % self.verbose_interval == 0:
                if self.verbose == 1:
                    print(f"  Iteration {n_iter}")
                else:
                    now = time.perf_counter()
                    print(
                        f"  Iteration {n_iter}\t time lapse {now - start[0]:.5f}s\t "
                        f"ll change {change:.5f}"
                    )
                    start[0] = now
            if user_callback is not None:
                user_callback(n_iter, lower_bound, change)

        return callback

    def _check_degenerate(self, data):
        """Flag fits that look like spurious maximizers (see gaussmix._degeneracy)."""
        self.degenerate_ = False
        self.degenerate_reason_ = None
        if getattr(self, "prior_", None) is not None:
            # MAP EM: the prior's scale keeps every covariance regular, a component with
            # few points included; the likelihood's spurious maximizers do not arise.
            return
        try:
            from ._degeneracy import degeneracy_reason_of_estimator
        except ImportError:  # until the degeneracy module lands
            return
        if isinstance(getattr(data, "X", None), np.ndarray) and (
            _missing.incomplete_rows(data.X) is not None
        ):
            # The checks on the points themselves need complete rows: judge the
            # parameters only (as for data out of core).
            data = _WeightOnly(data.weight_sum)
        reason = degeneracy_reason_of_estimator(self, data)
        if reason:
            self.degenerate_ = True
            self.degenerate_reason_ = reason
            warnings.warn(
                f"The fit looks degenerate: {reason}", DegenerateFitWarning, stacklevel=5
            )

    def _get_parameters(self) -> MixtureParameters:
        return MixtureParameters(
            self.covariance_type if not hasattr(self, "_fitted_covariance_type")
            else self._fitted_covariance_type,
            self.weights_,
            self.means_,
            self.covariances_,
            self.precisions_cholesky_,
        )

    def _set_parameters(self, params: MixtureParameters):
        self.weights_ = params.weights
        self.means_ = params.means
        self.covariances_ = params.covariances
        self.precisions_cholesky_ = params.precisions_cholesky
        self.precisions_ = params.family.precisions_from_cholesky(
            params.precisions_cholesky.astype(np.float64)
        ).astype(params.dtype)

    # ----------------------------------------------------------------------------------
    # Online EM
    # ----------------------------------------------------------------------------------
    def partial_fit(self, X, y=None, sample_weight=None):
        """One step of online (stepwise) EM on a batch of rows; returns self.

        The batch's E-step runs under the current parameters; its sufficient statistics,
        averaged per sample, are blended into the running statistics,
        ``S <- (1 - rho_t) S + rho_t S_batch`` with ``rho_t = (t + learning_offset) **
        -learning_decay`` for the ``t``-th batch (Cappé & Moulines 2009), and the M-step
        runs on ``S``. See :mod:`gaussmix._online`.

        The first batch starts the model: initialisation (``init_params``, the ``*_init``
        arrays), then EM on that batch alone (up to ``max_iter`` iterations, ``tol``; the
        best of ``n_init`` starts), whose statistics become the running statistics. It
        sets ``n_features_in_`` and needs at least ``n_components`` rows. After
        :meth:`fit` (or on a loaded model file without running statistics), the fitted
        parameters are the starting statistics, counted as the first batch (raise
        ``learning_offset`` to give a fit on many rows more weight). A loaded model with
        running statistics continues exactly where it was saved.

        NaN marks a missing value, as in :meth:`fit`: the batch's statistics of its
        incomplete rows are their conditional expectations under the current parameters
        (exact EM with missing values, :mod:`gaussmix._missing`), so a first batch with
        ``rho = 1`` takes exactly the EM iterations :meth:`fit` would.

        Online EM assumes the batches come in random order: shuffle sorted data first.
        A Dask array is taken chunk by chunk, computed one at a time on the client
        (stepwise EM is sequential; for data on a cluster, :meth:`fit` runs each E-step in
        parallel on the workers and is the better call).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : ignored
        sample_weight : array-like of shape (n_samples,), optional
            Non-negative weights. A batch lighter than the mean of the batches so far
            (rows, or the sum of their weights) takes a step scaled down by the ratio,
            ``rho_t * min(1, W_batch / W_mean)``: the short tail of a file, or one row
            after a fit on thousands, moves the model in proportion to its weight. After
            :meth:`fit` the fit's rows count as the first batch.

        Returns
        -------
        self
        """
        check_parameters(self)
        _online.check_schedule(self.learning_offset, self.learning_decay)
        if self.prior is not None:
            raise ValueError(
                "partial_fit does not support a prior (online EM's running statistics are "
                "per-sample averages, which the prior's counts do not fit): set prior=None, "
                "or call fit."
            )
        if _is_dask_array(X):
            for block, weights in _online.dask_row_chunks(X, sample_weight):
                self.partial_fit(block, sample_weight=weights)
            return self
        started = hasattr(self, "means_")
        if started:
            self._check_same_model()
            feature_names = getattr(self, "feature_names_in_", None)
            X = self._validate_X(X, allow_nan=True).astype(self.means_.dtype, copy=False)
        else:
            feature_names = feature_names_of(X)
        data = data_source(X, sample_weight, self.block_size, min_samples=1, allow_nan=True)
        if not started and data.n_samples < self.n_components:
            raise ValueError(
                f"The first batch of partial_fit has {data.n_samples} rows, fewer than "
                f"n_components={self.n_components}: it initialises the model and needs at "
                "least one row per component. Pass a larger first batch."
            )
        n_done = getattr(self, "n_batch_iter_", 0)
        batch_weight = _weight_total(data, sample_weight)
        typical = getattr(self, "batch_weight_", None)
        if started:
            params = self._get_parameters().astype(data.dtype)
            running = getattr(self, "running_statistics_", None)
            stats = self._batch_statistics(data, params)
            if running is None:  # after fit: the fit counts as the first batch's EM
                # Its mean log-likelihood starts the running one (this batch's if unknown).
                bound = getattr(self, "lower_bound_", -np.inf)
                running = _online.statistics_of_parameters(
                    params, self.reg_covar,
                    bound if np.isfinite(bound) else stats.mean_log_likelihood)
                n_done = 1
                # ... and weighs what the fit's rows weighed, when known (fit records it,
                # a model file's training summary may)
                typical = getattr(self, "_fit_weight", None) or getattr(
                    self, "n_samples_fit_", None)
        else:
            running = None
            warn_small_variances(data.X, data.sample_weight, self.reg_covar)
            params, stats = self._first_batch_start(data)
        n_step = n_done + 1
        rho = 1.0 if running is None else _online.step_size(
            n_step, self.learning_offset, self.learning_decay, batch_weight, typical
        )
        blended = _online.blend(running, stats, rho)
        new_params = _stats.m_step(blended, reg_covar=self.reg_covar, dtype=data.dtype)
        # Every computation succeeded: update the model (a failed step changes nothing).
        self._set_parameters(new_params)
        self._fitted_covariance_type = new_params.covariance_type
        self.running_statistics_ = blended
        self.batch_weight_ = _online.typical_weight(typical, n_done if typical else 0,
                                                    batch_weight)
        self.n_batch_iter_ = n_step
        self.n_iter_ = getattr(self, "n_iter_", 0) + 1
        self.converged_ = False  # stepwise EM has no convergence test
        self.lower_bound_ = float(blended.log_likelihood)
        if not hasattr(self, "lower_bounds_"):
            self.lower_bounds_ = []
        if not started:
            self.n_features_in_ = data.n_features
            if feature_names is not None:
                self.feature_names_in_ = feature_names
            elif hasattr(self, "feature_names_in_"):
                del self.feature_names_in_
            self.degenerate_, self.degenerate_reason_ = False, None
        return self

    def _check_same_model(self):
        fitted = getattr(self, "_fitted_covariance_type", None) or families.get(
            self.covariance_type
        ).name
        if (
            self.means_.shape[0] != self.n_components
            or families.get(self.covariance_type).name != fitted
        ):
            raise ValueError(
                "partial_fit continues the fitted model, which has "
                f"{self.means_.shape[0]} components and covariance_type {fitted!r}; got "
                f"n_components={self.n_components} and covariance_type="
                f"{self.covariance_type!r}. Use a new estimator to start afresh."
            )

    def _batch_statistics(self, data, params):
        """The E-step of one batch (threads only for large batches: a pool costs ~1 ms)."""
        if data.n_samples < _ONLINE_THREADED_ROWS:
            return _stats.block_statistics(
                data.X, params, data.sample_weight, block_size=self.block_size
            )
        with block_executor(data.n_samples) as executor:
            return _stats.block_statistics(
                data.X, params, data.sample_weight, block_size=self.block_size,
                executor=executor,
            )

    def _first_batch_start(self, data):
        """Start on the first batch: initialisation, then EM on the batch alone.

        Up to ``max_iter`` iterations (``tol`` as in :meth:`fit`), from each of ``n_init``
        starts; the run with the highest log-likelihood is kept. Returns the parameters
        of its last E-step and that E-step's statistics: partial_fit's M-step on them
        (rho = 1) is the run's last M-step. With ``max_iter=1`` the first batch is one
        EM iteration from the start.
        """
        inits = self._check_initial_arrays(data.n_features, data.dtype)
        random_state = check_random_state(self.random_state)
        best = None
        for _ in range(self.n_init):
            params = self._initial_parameters(data, random_state, inits)
            stats = self._batch_statistics(data, params)
            for _ in range(self.max_iter - 1):
                following = _stats.m_step(stats, reg_covar=self.reg_covar, dtype=data.dtype)
                following_stats = self._batch_statistics(data, following)
                change = following_stats.mean_log_likelihood - stats.mean_log_likelihood
                params, stats = following, following_stats
                if abs(change) < self.tol:
                    break
            if best is None or stats.log_likelihood > best[1].log_likelihood:
                best = (params, stats)
        return best

    def fit_predict(self, X, y=None, sample_weight=None):
        """Fit, then return the most probable component of every row.

        Equals ``fit(X).predict(X)`` for any ``max_iter``, ``tol`` and ``random_state``.
        """
        return self.fit(X, sample_weight=sample_weight).predict(X)

    # ----------------------------------------------------------------------------------
    # Using a fitted model
    # ----------------------------------------------------------------------------------
    def _check_fitted(self):
        if not hasattr(self, "means_"):
            raise _not_fitted_error_class()(
                "This GaussianMixture instance is not fitted yet. Call 'fit' with "
                "appropriate arguments before using this estimator."
            )

    def _validate_X(self, X, allow_nan=False):
        self._check_fitted()
        names = feature_names_of(X)
        fitted_names = getattr(self, "feature_names_in_", None)
        if names is not None and fitted_names is not None:
            if len(names) != len(fitted_names) or np.any(names != fitted_names):
                raise ValueError(
                    "The feature names should match those that were passed during fit. "
                    f"Fitted with {list(fitted_names)}, got {list(names)}."
                )
        X = check_array(X, allow_nan=allow_nan)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {X.shape[1]} features, but GaussianMixture is expecting "
                f"{self.n_features_in_} features as input."
            )
        return X

    def _dask_or(self, X, method):
        if _is_dask_array(X):
            self._check_fitted()
            from . import _dask

            return getattr(_dask, method)(self, X)
        return None

    def score_samples(self, X):
        """Log-density ``log p(x_n)`` of every row, shape (n_samples,)."""
        lazy = self._dask_or(X, "score_samples")
        if lazy is not None:
            return lazy
        X = self._validate_X(X, allow_nan=True)
        with block_executor(X.shape[0]) as executor:
            return _stats.score_samples(
                X, self._get_parameters(), block_size=self.block_size, executor=executor
            )

    def score(self, X, y=None):
        """Mean log-likelihood per sample of X under the model."""
        if _is_dask_array(X):
            return float(self.score_samples(X).mean(dtype=np.float64).compute())
        # The mean in X's dtype, as scikit-learn's score (score_samples(X).mean()): its
        # test_score wants the two equal to 7 decimals in float32, where a float64 mean
        # differs by one float32 rounding (2.4e-7 on its data).
        return float(self.score_samples(X).mean())

    def predict_proba(self, X):
        """Responsibilities (posterior probability of each component), (n_samples, K)."""
        lazy = self._dask_or(X, "predict_proba")
        if lazy is not None:
            return lazy
        X = self._validate_X(X, allow_nan=True)
        with block_executor(X.shape[0]) as executor:
            return _stats.predict_proba(
                X, self._get_parameters(), block_size=self.block_size, executor=executor
            )

    def predict(self, X):
        """Most probable component of every row, shape (n_samples,)."""
        lazy = self._dask_or(X, "predict")
        if lazy is not None:
            return lazy
        X = self._validate_X(X, allow_nan=True)
        with block_executor(X.shape[0]) as executor:
            return _stats.predict(
                X, self._get_parameters(), block_size=self.block_size, executor=executor
            )

    def impute(self, X):
        """X with every NaN replaced by its conditional mean under the fitted mixture.

        A missing coordinate gets ``E[x_m | x_o] = sum_k gamma_k(x_o) xhat_k,m``: the
        components' conditional means ``xhat_k,m = mu_k,m + Sigma_k,mo Sigma_k,oo^-1
        (x_o - mu_k,o)`` weighted by the posterior given the observed values. Observed
        values are returned unchanged. Rows without NaN are copied.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_features), X's dtype (float64 or float32)
        """
        lazy = self._dask_or(X, "impute")
        if lazy is not None:
            return lazy
        X = self._validate_X(X, allow_nan=True)
        out = np.array(X, copy=True)
        incomplete = _missing.incomplete_rows(X)
        if incomplete is not None:
            out[incomplete] = _missing.impute(X[incomplete], self._get_parameters())
        return out

    def condition(self, x):
        """The mixture of one row's missing coordinates given its observed ones.

        Gaussian mixture regression: put NaN in the target columns of ``x``. Component k
        of the result has the posterior weight ``gamma_k(x_o)``, the conditional mean
        ``mu_k,m + Sigma_k,mo Sigma_k,oo^-1 (x_o - mu_k,o)`` and the conditional covariance
        ``Sigma_k,mm - Sigma_k,mo Sigma_k,oo^-1 Sigma_k,om``.

        Parameters
        ----------
        x : array-like of shape (n_features,) or (1, n_features)
            One row with at least one NaN and at least one observed value.

        Returns
        -------
        GaussianMixture
            A fitted mixture over the missing coordinates (in feature order), so that
            ``sample``, ``score_samples``, ``predict`` and so on work on it. Its
            ``covariance_type`` is the model's for "full", "tied", "diag" and
            "spherical" (the conditionals keep that form), "full" otherwise.
        """
        if np.ndim(x) == 1:
            x = np.asarray(x).reshape(1, -1)
        row = self._validate_X(x, allow_nan=True)
        if row.shape[0] != 1:
            raise ValueError(f"condition takes one row; got {row.shape[0]} rows.")
        if not np.isnan(row).any():
            raise ValueError(
                "condition needs NaN in the coordinates to predict (the missing ones); the "
                "row has none."
            )
        _, weights, means, covariances = _missing.condition_row(
            row[0], self._get_parameters()
        )
        return _conditional_mixture(self, weights, means, covariances, row.dtype)

    def sample(self, n_samples=1, random_state=None):
        """Draw samples from the fitted mixture.

        Parameters
        ----------
        n_samples : int, default=1
        random_state : int, RandomState instance or None
            Defaults to the estimator's ``random_state``.

        Returns
        -------
        X : ndarray of shape (n_samples, n_features)
        labels : ndarray of shape (n_samples,)
            The component each sample was drawn from (sorted by component).
        """
        self._check_fitted()
        if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)):
            raise TypeError(f"n_samples must be a positive integer, got {n_samples!r}.")
        if n_samples < 1:
            raise ValueError(
                f"Invalid value for 'n_samples': {n_samples}. The sampling requires at "
                "least one sample."
            )
        rng = check_random_state(self.random_state if random_state is None else random_state)
        n_features = self.means_.shape[1]
        weights = np.asarray(self.weights_, dtype=np.float64)
        counts = rng.multinomial(n_samples, weights / weights.sum())
        covariances = np.asarray(self.covariances_, dtype=np.float64)
        parts = []
        for k, count in enumerate(counts):
            cov = self._family().component_covariance(covariances, k, n_features)
            try:
                chol = np.linalg.cholesky(cov)
            except np.linalg.LinAlgError:
                chol = self._covariance_factor_from_precision(k)
            z = rng.standard_normal(size=(count, n_features))
            parts.append(self.means_[k].astype(np.float64) + z @ chol.T)
        X = np.vstack(parts).astype(self.means_.dtype)
        labels = np.repeat(np.arange(self.n_components), counts)
        return X, labels

    def _covariance_factor_from_precision(self, k):
        """A factor C of component k's covariance (C C^T = Sigma_k) from its precision's:
        Sigma = L^-T L^-1 for P = L L^T, so C = L^-T (lower triangular: Cholesky's).

        For a covariance that, rounded to the model's dtype, is no longer positive definite
        (float32, a component 1e10 times wider along one direction than across it, such as
        one holding a far row); the precision factor keeps the narrow direction.
        """
        factor = np.asarray(self.precisions_cholesky_, dtype=np.float64)
        if factor.ndim == 3:
            factor = factor[k]
        if factor.ndim != 2 or not np.all(np.isfinite(factor)):
            raise ValueError(
                f"The covariance of component {k} is not positive definite in "
                f"{self.means_.dtype}: sample() cannot draw from it. Refit in float64, or "
                "raise reg_covar."
            )
        return np.linalg.inv(factor).T

    # ----------------------------------------------------------------------------------
    # Information criteria
    # ----------------------------------------------------------------------------------
    def _n_parameters(self) -> int:
        """Number of free parameters: covariances + means + (K - 1) weights."""
        return self._family().n_parameters(*self.means_.shape)

    def _family(self) -> families.CovarianceFamily:
        """The covariance family of the fitted model (else of ``covariance_type``)."""
        return families.of_model(self)

    def _n_rows(self, X):
        return X.shape[0] if hasattr(X, "shape") else len(X)

    def _criteria(self, X, resp=None):
        n = self._n_rows(X)
        return information_criteria(self.score(X) * n, self._n_parameters(), n, resp=resp)

    def bic(self, X):
        """Bayesian information criterion, ``-2 log L + p log N``; lower is better.

        mclust reports ``2 log L - p log N`` (higher is better): minus this value.
        """
        return self._criteria(X)["bic"]

    def aic(self, X):
        """Akaike information criterion, ``-2 log L + 2 p``; lower is better."""
        return self._criteria(X)["aic"]

    def icl(self, X):
        """Integrated completed likelihood (Biernacki, Celeux & Govaert 2000); lower is better.

        ``ICL = BIC - 2 sum_n log max_k gamma_nk``: the BIC plus twice the entropy of the
        hard (MAP) assignment, which penalises overlapping components.
        """
        return self._criteria(X, resp=self.predict_proba(X))["icl"]

    # ----------------------------------------------------------------------------------
    # Model files
    # ----------------------------------------------------------------------------------
    def save(self, path):
        """Write the fitted model to a versioned JSON file (atomically).

        Load it back with :func:`gaussmix.load`.
        """
        from .io import save_model

        save_model(self, path)

    # ----------------------------------------------------------------------------------
    # Summary
    # ----------------------------------------------------------------------------------
    def summary(self, X, *, feature_names=None, source="the data"):
        """A plain-text summary of the fit on ``X``: what ``gaussmix fit`` prints.

        Covariance type in words, convergence, log-likelihood, BIC, free parameters and
        each component's weight, means and standard deviations. ``feature_names`` defaults
        to ``feature_names_in_`` (or x0, x1, ...); ``source`` names ``X`` in the first line.
        """
        from ._summary import describe_fit

        return describe_fit(self, X, feature_names, source)


def _streamed_moments(data, rescale=1.0, max_iter=100, tol=1e-10):
    """Mean and covariance (divisor sum(w) - 1) of data out of core or with NaN.

    A one-component model gives every row responsibility 1, so its summed statistics are
    the data's moments about a point near the mean (from a sample: no cancellation). On
    complete rows one pass is exact whatever the parameters. With missing cells the
    statistics hold each row's conditional moments under the current Gaussian, so the
    passes are EM for one Gaussian: they end at the maximum-likelihood mean and covariance
    under "missing at random" (filling the holes with column means instead would shrink the
    variances and correlations by the missing fraction). The divisor is the weights' sum
    as the user gave them (``weight_sum / rescale``) minus 1, as :func:`data_moments`.
    """
    rows, _ = data.sample_rows(1000, 0)
    rows = np.asarray(rows, dtype=np.float64)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a column all NaN in the sample
        centre = np.nan_to_num(np.nanmean(rows, axis=0))
        spread = np.nanvar(rows, axis=0)
    spread = np.where(np.isfinite(spread) & (spread > 0), spread, 1.0)
    cov = np.diag(spread)
    for _ in range(max_iter):
        params = MixtureParameters.from_covariances(
            "full", np.ones(1), centre[None, :], cov[None]
        ).astype(data.dtype)
        stats = data.statistics(params)
        n = float(stats.nk[0])
        mean = stats.shift[0] + stats.s1[0] / n
        scatter = stats.s2[0] - np.outer(stats.s1[0], stats.s1[0]) / n
        new = 0.5 * (scatter + scatter.T) / n
        complete = not getattr(data, "n_missing", 0) and not (
            isinstance(getattr(data, "X", None), np.ndarray)
            and _missing.incomplete_rows(data.X) is not None
        )
        done = complete or (
            np.max(np.abs(new - cov)) <= tol * np.max(np.abs(np.diag(new)))
            and np.max(np.abs(mean - centre) / np.sqrt(np.diag(new))) <= tol ** 0.5
        )
        centre, cov = mean, new
        if done or not np.all(np.isfinite(new)):
            break
    given = n / rescale
    return centre, cov * (given / max(given - 1.0, 1e-300))


def _weight_total(data, sample_weight) -> float:
    """The weight of a batch of rows in memory: the sum of its sample weights as given,
    or its number of rows."""
    if sample_weight is None:
        return float(data.n_samples)
    return float(np.sum(check_sample_weight(sample_weight, data.n_samples)))


class _WeightOnly:
    """The training data's weight, without its rows (for the degeneracy check)."""

    def __init__(self, weight_sum):
        self.weight_sum = weight_sum


def _start_data(data, median=False, exclude=()):
    """The data initialisation sees: NaN filled with the column means, for the start only.

    k-means, k-means++, random starts and the robust start need complete rows; EM then
    runs on the data with its NaN (exact EM on the observed values). The means leave out
    the rows ``exclude`` (the far rows isolated at the start): one far value (1e9) would
    otherwise move every filled cell of its column near it, and the start would see a
    second far cluster. The far-row search itself (``median=True``) fills with the column
    medians, which no far value moves.
    """
    if hasattr(data, "filled_for_start"):  # a Dask source: its NaN filled lazily
        return data.filled_for_start()
    X = getattr(data, "X", None)
    if not isinstance(X, np.ndarray) or _missing.incomplete_rows(X) is None:
        return data
    nan = np.isnan(X)
    observed = (~nan).sum(axis=0)
    if np.any(observed == 0):
        j = int(np.argmax(observed == 0))
        raise ValueError(
            f"Feature {j} of X has no observed value (every row is NaN there): its mean "
            "and variance cannot be estimated. Drop that column."
        )
    if median:
        centre = np.nanmedian(X, axis=0)
    else:
        kept = np.ones(X.shape[0], dtype=bool)
        kept[list(exclude)] = False
        counts = (~nan[kept]).sum(axis=0)
        if not kept.any() or np.any(counts == 0):
            kept[:], counts = True, observed
        centre = np.where(nan[kept], 0.0, X[kept]).sum(axis=0, dtype=np.float64) / counts
    filled = np.where(nan, centre.astype(X.dtype), X)
    return ArrayData(filled, data.sample_weight, data.block_size, data.executor)


_UNCONSTRAINED = {"full": "full", "shared_full": "tied", "diagonal": "diag", "scalar": "spherical"}


def _conditional_mixture(model, weights, means, covariances, dtype):
    """A fitted GaussianMixture of the given conditional components (full (K, m, m))."""
    # Conditionals keep the form of the precision (a shared matrix stays shared, a diagonal
    # stays diagonal, a scalar stays scalar) but not mclust's volume/shape/orientation
    # constraints: the result is the unconstrained family of the same form.
    family = families.get(_UNCONSTRAINED[model._family().precision_form])
    K, n_missing = means.shape
    stored = family.from_full(covariances, weights)
    params = MixtureParameters.from_covariances(
        family.name, weights, means, stored
    ).astype(dtype)
    result = GaussianMixture(
        n_components=K, covariance_type=family.name, reg_covar=model.reg_covar,
        random_state=model.random_state,
    )
    result._set_parameters(params)
    result._fitted_covariance_type = family.name
    result.converged_ = True
    result.n_iter_ = 0
    result.lower_bound_ = -np.inf
    result.lower_bounds_ = []
    result.n_features_in_ = n_missing
    result.degenerate_, result.degenerate_reason_ = False, None
    return result
