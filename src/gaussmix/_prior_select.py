"""Model selection under mclust's conjugate prior: ``select_model(X, prior=...)``.

R's ``Mclust(X, prior = priorControl())`` compares its models by BIC computed at the
posterior mode: BIC = 2 log L(theta_MAP) - npar log n (lower is better here, as gaussmix
reports minus mclust's BIC). gaussmix does the same in two stages:

1. the usual maximum-likelihood selection (:func:`gaussmix.selection.select_model`
   without the prior: its starts, race and polish) gives, for every grid point, the ML
   fit, and for every K the ML fits of the other covariance types;
2. every grid point is then refined by MAP EM from several starts, one per distinct hard
   partition: its own ML fit, one MAP M-step from the responsibilities of each other
   type's ML fit at the same K, and one from each Ward partition into K groups. Every
   start runs MAP EM to a change below 1e-5 per sample, the best three on to 1e-8. The
   MAP EM of every start of every type at one K runs as one batch on the selection's
   lean engine (:mod:`gaussmix._prior_batch`: :class:`gaussmix._batch.Rows`' E-step and
   the general path's MAP M-step on stacked mixtures; plain EM steps, each mixture
   leaving the batch at its own tolerance), the steps of :class:`~gaussmix.GaussianMixture`
   with the prior, which data with NaN still take. Best: regular before degenerate (an
   empty component costs the log-posterior nothing, the weights having no prior), then the
   highest log-likelihood at the mode, the quantity the criteria use (every candidate is
   a posterior mode). The table's log-likelihood, BIC, AIC and ICL are those of that
   mode, and the fitted estimators carry ``prior`` and ``prior_``.

See docs/math.md, section 9.1, for the comparison with mclust on Old Faithful.

The grid. mclust has no prior update for VEE, EVE, VVE and EVV, and its ``Mclust`` with a
prior leaves them out of its 14-model default. So does gaussmix: a grid of all 14 models
(the default, ``"all"``, ``"mclust"``) becomes mclust's 10 prior models; naming one of the
four otherwise is an error.
"""

from __future__ import annotations

import numbers
import warnings
from typing import Any

import numpy as np

from . import families
from ._criteria import information_criteria, map_entropy
from ._prior import PRIOR_MODELS, check_prior_spec, data_moments, log_prior, resolve_prior

__all__ = ["prior_grid", "select_with_prior"]

_MAP_TOL = 1e-8  # per-sample change of the log-likelihood ending the final MAP EM
_MAP_MAX_ITER = 20_000
_LOOSE_TOL = 1e-5  # ... ending MAP EM from every start
_FINALISTS = 3  # starts run on to _MAP_TOL


def prior_grid(types: list[str]) -> list[str]:
    """The covariance types of a selection with a prior (see the module docstring)."""
    names = {t: families.get(t).mclust_name for t in types}
    if len(set(names.values())) == len(families.MCLUST_MODELS):
        return [t for t in types if names[t] in PRIOR_MODELS]
    refused = [t for t in types if names[t] not in PRIOR_MODELS]
    if refused:
        raise ValueError(
            f"covariance_types {refused} have no update under the conjugate prior (as in "
            f"mclust, which has none for VEE, EVE, VVE and EVV). With a prior, use some of "
            f"{', '.join(PRIOR_MODELS)} (the default grid, 'all' and 'mclust' mean these "
            "ten), or prior=None."
        )
    return types


def _map_model(t, K, prior, params, seed):
    from .mixture import GaussianMixture

    kept = {k: v for k, v in params.items() if k not in ("tol", "max_iter", "n_init")}
    return GaussianMixture(n_components=K, covariance_type=t, init_params="robust",
                           random_state=seed, prior=prior, **kept)


def _run(model, X, w, start, max_iter, tol):
    """MAP EM from ``start`` (MixtureParameters) or from the model's current fit."""
    from ._exceptions import ConvergenceWarning, DegenerateFitWarning

    if start is not None:
        model._set_parameters(start)
        model._fitted_covariance_type = start.covariance_type
        model.converged_ = False
        model.lower_bound_ = -np.inf
    model.set_params(warm_start=True, max_iter=max_iter, tol=tol)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", DegenerateFitWarning)
        model.fit(X, sample_weight=w)
    return model


def _log_likelihood(model, X, w):
    scores = model.score_samples(X)
    return float(np.sum(scores if w is None else w * scores))


def _log_posterior(model, X, w):
    prior = model.prior_
    return _log_likelihood(model, X, w) + log_prior(model._get_parameters(), prior) / prior.weight


def _row_of(model, X, w, params) -> dict[str, Any]:
    """A table row's values for a MAP fit: the criteria from the log-likelihood at the
    mode (X's rows, or the sum of the weights, as n), and the fit's iterations and
    verdict. The model gets the user's ``tol`` and ``max_iter`` back, without warm start
    (it was refined with the selection's own)."""
    model.set_params(warm_start=False, tol=params.get("tol", 1e-3),
                     max_iter=params.get("max_iter", 100))
    log_lik = _log_likelihood(model, X, w)
    n_parameters = int(model._n_parameters())
    crit = information_criteria(log_lik, n_parameters,
                                float(X.shape[0] if w is None else np.sum(w)))
    crit["icl"] = crit["bic"] + 2.0 * map_entropy(model.predict_proba(X), w)
    return dict(log_likelihood=log_lik, n_parameters=n_parameters, **crit,
                converged=bool(model.converged_), n_iter=int(model.n_iter_),
                degenerate=model.degenerate_reason_)


def _rank(model, X, w):
    """Among the posterior modes reached from the starts: regular before degenerate (an
    empty component costs the log-posterior nothing, the weights having no prior), then
    the highest log-likelihood at the mode (what BIC, AIC and ICL use)."""
    value = _log_likelihood(model, X, w)
    return (not model.degenerate_, value if np.isfinite(value) else -np.inf)


def _resp_start(resp, t, X, w, prior, reg_covar):
    """One MAP M-step for type ``t`` from responsibilities (another type's fit, or a
    Ward partition as one-hot rows)."""
    from .stats import m_step, statistics_from_responsibilities

    stats = statistics_from_responsibilities(X, resp, t, shift=X.mean(axis=0), sample_weight=w)
    return m_step(stats, reg_covar=reg_covar, prior=prior)


def refine(ml, X, w, prior, params, seeds, progress=None, offset=0, total=None, hc=None):
    """The MAP table and estimators from the ML selection ``ml`` (module docstring).

    Complete data take the batched path (:func:`_refine_batched`: every start of every
    type at one K runs MAP EM as one batch); data with NaN the general one
    (:func:`_refine_general`: one GaussianMixture fit per start)."""
    if np.isnan(X).any():
        return _refine_general(ml, X, w, prior, params, seeds, progress, offset, total, hc)
    from .selection import _one_blas_thread

    # (the batched products are small: a multi-threaded BLAS only waits for its threads,
    # 15x slower per E-step on a busy two-core machine)
    with _one_blas_thread():
        return _refine_batched(ml, X, w, prior, params, seeds, progress, offset, total, hc)


def _refine_general(ml, X, w, prior, params, seeds, progress=None, offset=0, total=None,
                    hc=None):
    """:func:`refine` through GaussianMixture's MAP EM, start after start."""
    from .selection import TABLE_KEYS, _canonical

    reg_covar = params.get("reg_covar", 1e-6)
    # The starts see NaN filled with the column means (as GaussianMixture's start does);
    # the default prior takes one Gaussian's moments of the observed cells, as
    # GaussianMixture(prior=...) does; MAP EM runs on the observed values.
    nan = np.isnan(X)
    filled = np.where(nan, np.nanmean(X, axis=0), X) if nan.any() else X
    if nan.any():
        from ._backends import ArrayData
        from .mixture import _streamed_moments

        source = ArrayData(X, w)
        ratio = 1.0 if w is None else source.weight_sum / float(np.sum(w))
        mean, cov = _streamed_moments(source, ratio)
    else:
        mean, cov = data_moments(X, w)
    hc = {} if hc is None else hc
    resps = {key: model.predict_proba(filled) for key, model in ml.estimators_.items()}
    table, estimators = [], {}
    for i, ml_row in enumerate(ml.table, 1):
        t, K = ml_row["covariance_type"], ml_row["n_components"]
        row: dict[str, Any] = dict.fromkeys(TABLE_KEYS)
        row.update(covariance_type=t, n_components=K)
        try:
            resolved = resolve_prior(prior, families.get(t), K, mean, cov)
            # Starts, one per distinct hard partition (many fits agree on it).
            starts, seen = [], set()
            own = ml.estimators_.get((t, K))
            if own is not None:
                starts.append(own._get_parameters())
                seen.add(_canonical(resps[(t, K)].argmax(axis=1)))
            for t2, K2 in ml.estimators_:
                if K2 != K or t2 == t:
                    continue
                key = _canonical(resps[(t2, K2)].argmax(axis=1))
                if key in seen:
                    continue
                seen.add(key)
                try:
                    starts.append(_resp_start(resps[(t2, K2)], t, filled, w, resolved,
                                              reg_covar))
                except (ValueError, np.linalg.LinAlgError):
                    continue
            for labels in hc.get(K, []):
                if labels.shape[0] != X.shape[0] or _canonical(labels) in seen:
                    continue  # cut on a sample of the rows, or a partition tried already
                seen.add(_canonical(labels))
                try:
                    starts.append(_resp_start(np.eye(K)[labels], t, filled, w, resolved,
                                              reg_covar))
                except (ValueError, np.linalg.LinAlgError):
                    continue
            if not starts:
                raise ValueError(ml_row["error"] or "no start could be made")
            reached, errors = [], []
            for start in starts:  # every start to a loose tolerance ...
                try:
                    model = _run(_map_model(t, K, prior, params, seeds[(t, K)]), X, w,
                                 start, _MAP_MAX_ITER, _LOOSE_TOL)
                    reached.append((_rank(model, X, w), len(reached), model))
                except (ValueError, np.linalg.LinAlgError) as exc:
                    errors.append(str(exc) or type(exc).__name__)
            best, best_value = None, None
            for _, _, model in sorted(reached, reverse=True)[:_FINALISTS]:
                try:  # ... the best few to the tight one
                    loose = model.n_iter_
                    model = _run(model, X, w, None, _MAP_MAX_ITER, _MAP_TOL)
                    model.n_iter_ += loose  # MAP EM iterations from the start
                    value = _rank(model, X, w)
                except (ValueError, np.linalg.LinAlgError) as exc:
                    errors.append(str(exc) or type(exc).__name__)
                    continue
                if best is None or value > best_value:
                    best, best_value = model, value
            if best is None:
                raise ValueError("; ".join(dict.fromkeys(errors)) or "MAP EM failed")
            filled_row = _row_of(best, X, w, params)
        except (ValueError, np.linalg.LinAlgError) as exc:
            row["error"] = str(exc) or type(exc).__name__
        else:
            row.update(filled_row)
            estimators[(t, K)] = best
        table.append(row)
        if progress is not None:
            progress(offset + i, total, t, K)
    return table, estimators


def _refine_batched(ml, X, w, prior, params, seeds, progress=None, offset=0, total=None,
                    hc=None):
    """:func:`refine` on complete rows, one K at a time: the starts of every type at that
    K (the module docstring's) run plain MAP EM together as one batch
    (:func:`gaussmix._prior_batch.run_staged`) to a change below ``_LOOSE_TOL`` per
    sample, converged mixtures leaving the batch; the best ``_FINALISTS`` of every grid
    point run on to ``_MAP_TOL`` in the same batch as soon as all its starts have
    converged. The weights are rescaled to mean 1 and the prior weighted by the same
    factor, as GaussianMixture's fit does, so that every step is the general path's
    (``tests/test_prior_batch.py``). Progress is reported row by row as each K ends."""
    import dataclasses

    from ._batch import TYPES, Batch, Rows, features_for
    from ._prior_batch import DONE, FAILED, map_m_step, run_staged
    from .selection import TABLE_KEYS, _canonical

    reg_covar = params.get("reg_covar", 1e-6)
    n = X.shape[0]
    mean, cov = data_moments(X, w)
    if w is None:
        wr, rescale, given_total = None, 1.0, float(n)
    else:
        given_total = float(np.sum(w, dtype=np.float64))
        wr = np.asarray(w * (n / given_total), dtype=np.float64)
        rescale = float(np.sum(wr)) / given_total
    types = list(dict.fromkeys(r["covariance_type"] for r in ml.table))
    rows = Rows(X, wr, reg_covar, features_for(types))
    hc = {} if hc is None else hc
    resps = {key: model.predict_proba(X) for key, model in ml.estimators_.items()}
    keys = {key: _canonical(r.argmax(axis=1)) for key, r in resps.items()}
    points: dict[int, list] = {}
    for i, ml_row in enumerate(ml.table):
        points.setdefault(ml_row["n_components"], []).append(i)
    table: list[Any] = [None] * len(ml.table)
    estimators = {}
    n_done = 0  # rows finished (progress)
    for K, members in points.items():
        # The distinct hard partitions at K (other types' ML fits, then Ward's cuts), each
        # with the responsibilities of its first occurrence; their feature sums at once.
        partitions, resp_list = [], []
        for key, resp in resps.items():
            if key[1] == K and keys[key] not in partitions:
                partitions.append(keys[key])
                resp_list.append(resp)
        for labels in hc.get(K, []):
            if labels.shape[0] != n or _canonical(labels) in partitions:
                continue  # cut on a sample of the rows, or a partition tried already
            partitions.append(_canonical(labels))
            resp_list.append(np.eye(K)[labels])
        G_parts = None
        if resp_list:
            stacked = np.concatenate(resp_list, axis=1)
            G_parts = (rows.Qw.T @ stacked).T.reshape(len(resp_list), K, -1)
        priors, errors, starts, owner = {}, {}, [], []
        for i in members:
            ml_row = ml.table[i]
            t = ml_row["covariance_type"]
            errors[i] = []
            try:
                family = families.get(t)
                resolved = resolve_prior(prior, family, K, mean, cov)
                if rescale != 1.0:
                    resolved = dataclasses.replace(resolved, weight=rescale)
            except (ValueError, np.linalg.LinAlgError) as exc:
                errors[i].append(str(exc) or type(exc).__name__)
                continue
            code = TYPES.index(family.name)
            priors[code] = resolved
            own = ml.estimators_.get((t, K))
            chosen = []
            if own is not None:
                starts.append(Batch.of(own._get_parameters().astype(np.float64)))
                owner.append(i)
            for j, key in enumerate(partitions):
                if own is None or key != keys[(t, K)]:
                    chosen.append(j)
            if chosen:
                starts.append(map_m_step(rows, G_parts[chosen],
                                         np.full(len(chosen), code), priors))
                owner.extend([i] * len(chosen))
        owner = np.array(owner, dtype=np.int64)
        finals = {}
        if starts:
            # Every start to a loose tolerance, the best few of each point on to the tight
            # one (under the prior nothing is degenerate: the ranking is the
            # log-likelihood at the mode, as _rank's).
            res = run_staged(rows, Batch.stack(starts), priors, owner, loose_tol=_LOOSE_TOL,
                             tight_tol=_MAP_TOL, finalists=_FINALISTS,
                             max_iter=_MAP_MAX_ITER)
            for s in np.flatnonzero(res.stage == FAILED).tolist():
                errors[int(owner[s])].append(
                    "MAP EM failed: a covariance is not positive definite")
            ran = np.flatnonzero(res.stage == DONE)
            for s in ran[np.argsort(res.finalist[ran], kind="stable")].tolist():
                i = int(owner[s])
                best = finals.get(i)
                if best is None or res.value[s] > best[0]:
                    finals[i] = (res.value[s], s)
        for i in members:
            ml_row = ml.table[i]
            t = ml_row["covariance_type"]
            row: dict[str, Any] = dict.fromkeys(TABLE_KEYS)
            row.update(covariance_type=t, n_components=K)
            try:
                if i not in finals:
                    if not np.any(owner == i) and not errors[i]:
                        raise ValueError(ml_row["error"] or "no start could be made")
                    raise ValueError("; ".join(dict.fromkeys(errors[i])) or "MAP EM failed")
                s = finals[i][1]
                code = TYPES.index(families.get(t).name)
                best = _map_model(t, K, prior, params, seeds[(t, K)])
                best._set_parameters(res.batch.member(s))
                _fitted(best, res.batch.covariance_type(s), priors[code], rows,
                        n_iter=int(res.n_loose[s] + res.n_tight[s]),
                        converged=bool(res.converged[s]),
                        lower_bound=float(res.lower_bound[s]),
                        lower_bounds=res.lower_bounds[s], fit_weight=given_total)
                filled_row = _row_of(best, X, w, params)
            except (ValueError, np.linalg.LinAlgError) as exc:
                row["error"] = str(exc) or type(exc).__name__
            else:
                row.update(filled_row)
                estimators[(t, K)] = best
            table[i] = row
            n_done += 1
            if progress is not None:
                progress(offset + n_done, total, t, K)
    return table, estimators


def _fitted(model, covariance_type, prior, rows, *, n_iter, converged, lower_bound,
            lower_bounds, fit_weight):
    """Set what GaussianMixture(prior=...).fit sets after its EM (``_run_inits``), for
    parameters already on the model (``_set_parameters``) reached by batched MAP EM."""
    from ._degeneracy import outlier_components

    model._fitted_covariance_type = covariance_type
    model.converged_ = converged
    model.n_iter_ = n_iter
    model.lower_bound_ = lower_bound
    model.lower_bounds_ = [float(b) for b in lower_bounds]
    model.prior_ = prior
    model.n_features_in_ = rows.n_features
    # MAP EM: the prior keeps every covariance regular (GaussianMixture._check_degenerate)
    model.degenerate_, model.degenerate_reason_ = False, None
    model.outlier_rows_ = np.array([], dtype=np.intp)
    found = outlier_components(model.weights_, model.means_, model.covariances_,
                               model._family(), rows.weight_sum)
    model.outlier_components_ = np.array([k for k, _, _ in found], dtype=np.intp)
    model._fit_weight = fit_weight


def select_with_prior(select_model, X, n_components, covariance_types, criterion, prior, *,
                      n_init, random_state, sample_weight, progress, n_jobs, params):
    """``select_model`` with ``prior`` (module docstring); returns a SelectionResult."""
    from ._backends import _is_dask_array
    from ._validation import check_array, check_sample_weight, feature_names_of
    from .selection import (
        SelectionResult,
        _entropy_from,
        _hierarchical_partitions,
        covariance_types_of,
    )

    check_prior_spec(prior)
    if _is_dask_array(X):
        raise ValueError(
            "select_model with a prior needs the data in memory: give X.compute() (and "
            "sample_weight.compute()), or select without a prior."
        )
    types = prior_grid(covariance_types_of(covariance_types))
    entropy = None if random_state is None else _entropy_from(random_state)
    if not (random_state is None or isinstance(random_state, numbers.Integral)):
        random_state = entropy  # a Generator or RandomState: one draw, for both stages
    n_points = [0]

    def ml_progress(i, n, t, K):
        n_points[0] = n
        if progress is not None:
            progress(i, 2 * n, t, K)

    ml = select_model(X, n_components, types, criterion, n_init=n_init,
                      random_state=random_state, sample_weight=sample_weight,
                      progress=ml_progress, n_jobs=n_jobs, **params)
    feature_names = feature_names_of(X)
    Xa = np.ascontiguousarray(check_array(X, allow_nan=True), dtype=np.float64)
    w = check_sample_weight(sample_weight, Xa.shape[0])
    seeds = {(r["covariance_type"], r["n_components"]): getattr(
        ml.estimators_.get((r["covariance_type"], r["n_components"])), "random_state",
        random_state) for r in ml.table}
    n = n_points[0] or len(ml.table)
    hc = {}
    if not np.isnan(Xa).any():  # Ward cuts, starts akin to mclust's (complete rows)
        ks = sorted({r["n_components"] for r in ml.table if r["n_components"] > 1})
        hc = _hierarchical_partitions(Xa, w, ks, entropy if entropy is not None else 0)
    table, estimators = refine(ml, Xa, w, prior, params, seeds, progress, n, 2 * n, hc)
    if feature_names is not None:
        for model in estimators.values():
            model.feature_names_in_ = feature_names
    return SelectionResult(table, criterion, estimators, ml.n_samples, ml.n_features)
