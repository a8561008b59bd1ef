"""Plain-text summaries: a fitted mixture, a model file, a selection table, mclust's pick.

What ``gaussmix fit``, ``select``, ``info`` and ``demo`` print. :meth:`GaussianMixture.summary`
is :func:`describe_fit`.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from gaussmix import _criteria, families
from gaussmix._readers import no_feature_name_warnings, printable
from gaussmix.selection import TABLE_KEYS

__all__ = [
    "COVARIANCE_WORDS",
    "compare_with_mclust",
    "describe_fit",
    "describe_model_file",
    "information_criteria",
    "missing_counts",
    "model_words",
    "printable",
    "selection_csv",
    "selection_top",
]

#: The covariance families' descriptions, by scikit-learn name (each family says its own).
COVARIANCE_WORDS = {f.name: f.description for f in families.all_families()}


def _mclust(covariance_type: str) -> str:
    """mclust's name of a covariance type (or of an alias of one)."""
    return families.get(covariance_type).mclust_name


def model_words(family: families.CovarianceFamily) -> str:
    """The family's volume, shape and orientation in words, from the family object.

    "variable volume, equal shape, variable orientation" (VEV); a model whose shape is the
    identity is "spherical" (EII: "equal volume, spherical"), one whose orientation is the
    axes is "axis-aligned" (VEI: "variable volume, equal shape, axis-aligned").
    """
    parts = [f"{family.volume} volume"]
    if family.shape == "identity":
        parts.append("spherical")
    else:
        parts.append(f"{family.shape} shape")
        if family.orientation == "axis-aligned":
            parts.append("axis-aligned")
        else:
            parts.append(f"{family.orientation} orientation")
    return ", ".join(parts)


def _type_words(family: families.CovarianceFamily) -> str:
    """mclust's name (where it differs from the family's) and the model in words.

    "variable volume, equal shape, variable orientation" (VEV), "EEE: equal volume, equal
    shape, equal orientation" (tied).
    """
    if family.mclust_name == family.name:
        return model_words(family)
    return f"{family.mclust_name}: {model_words(family)}"


def _full_covariances(model: Any) -> np.ndarray:
    """The (K, D, D) covariance stack of a fitted model, whatever its family."""
    k, d = np.shape(model.means_)
    return families.of_model(model).full_covariances(model.covariances_, k, d)


def information_criteria(log_likelihood: float, n_parameters: int, n: float) -> tuple[float, float]:
    """(BIC, AIC) of a total log-likelihood; lower is better (:mod:`gaussmix._criteria`)."""
    criteria = _criteria.information_criteria(log_likelihood, n_parameters, n)
    return criteria["bic"], criteria["aic"]


def _prior_words(prior) -> str:
    """One line on a fit's conjugate prior (its hyperparameters as in a model file)."""
    try:
        shrinkage, dof = float(prior["shrinkage"]), float(prior["dof"])
    except (KeyError, TypeError, ValueError):
        return "conjugate (MAP EM)"
    return (
        f"conjugate (MAP EM, mclust's priorControl() form): shrinkage {shrinkage:.3g}, "
        f"dof {dof:.3g}; the log-likelihood and BIC are at the posterior mode"
    )


def _setting(value: Any) -> str:
    """A setting from a model file: numbers and strings (escaped) as they are, else its kind."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return printable(value, limit=60)
    return f"<{type(value).__name__}>"


def _g(x: float, digits: int = 6) -> str:
    return f"{float(x):.{digits}g}"


def _feature_names(model: Any, n_features: int) -> list[str]:
    """The model's feature names, or x0, x1, ... when it has none."""
    names = getattr(model, "feature_names_in_", None)
    if names is None:
        return [f"x{j}" for j in range(n_features)]
    return [printable(n, limit=60) for n in names]


def _component_table(model: Any, names: Sequence[str]) -> list[str]:
    """Weight, mean and standard deviation of each feature per component, as aligned rows."""
    means = np.asarray(model.means_, dtype=np.float64)
    sds = np.sqrt(np.diagonal(_full_covariances(model), axis1=1, axis2=2))
    names = [printable(n, limit=60) for n in names]
    header = ["component", "weight"] + [f"mean {n}" for n in names] + [f"sd {n}" for n in names]
    rows = [header]
    # Digits enough to show each mean to about a tenth of the component's sd: data that
    # share a large offset (timestamps at 1.7e12) printed every mean as "1.7e+12".
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.abs(means) / np.where(sds > 0, sds, np.inf)
    digits = np.clip(np.ceil(np.log10(np.maximum(ratio, 1.0))) + 2, 5, 17).astype(int)
    for k in range(means.shape[0]):
        rows.append(
            [str(k), f"{float(model.weights_[k]):.4f}"]
            + [_g(v, d) for v, d in zip(means[k], digits[k], strict=True)]
            + [_g(v, 4) for v in sds[k]]
        )
    widths = [max(len(r[j]) for r in rows) for j in range(len(header))]
    return ["  ".join(cell.rjust(w) for cell, w in zip(r, widths, strict=True)) for r in rows]


def describe_fit(
    model: Any, X: Any, feature_names: Sequence[str] | None = None, source: str = "the data"
) -> str:
    """The summary of a fitted mixture on the data ``X`` it was fitted to.

    Covariance type in words, components, convergence, log-likelihood, BIC, free
    parameters, the degenerate flag, and each component's weight, means and standard
    deviations (and the shared covariance matrix of a tied model).

    Parameters
    ----------
    model : fitted GaussianMixture
    X : array-like of shape (n_samples, n_features)
    feature_names : sequence of str, optional
        Default: the model's ``feature_names_in_``, or x0, x1, ...
    source : str, default="the data"
        What ``X`` is, for the first line ("Gaussian mixture fitted to ...").

    Returns
    -------
    str
        Several lines, without a trailing newline.
    """
    n, d = X.shape
    names = list(feature_names) if feature_names is not None else _feature_names(model, d)
    k = np.shape(model.means_)[0]
    family = families.of_model(model)
    ct = family.name
    with no_feature_name_warnings():
        total = float(model.score(X)) * n
    bic, _ = information_criteria(total, model._n_parameters(), n)
    converged = bool(getattr(model, "converged_", False))
    n_iter = int(getattr(model, "n_iter_", 0))
    shown = ", ".join(printable(name, limit=60) for name in names)
    lines = [
        f"Gaussian mixture fitted to {printable(source)} ({n} samples, "
        f"{d} feature{'s' if d != 1 else ''}: {shown})",
        f"  covariance type  {ct} ({_type_words(family)})",
        f"                   {family.description}",
        f"  components       {k}",
        f"  converged        {'yes' if converged else 'NO'}, after {n_iter} EM iteration"
        f"{'s' if n_iter != 1 else ''}",
        f"  log-likelihood   {total:.6f} (total), {total / n:.6f} per sample",
        f"  BIC              {bic:.6f} (lower is better; mclust's sign: {-bic:.6f})",
        f"  free parameters  {model._n_parameters()}",
    ]
    prior = getattr(model, "prior_", None)
    if prior is not None:
        lines.append(f"  prior            {_prior_words(prior.to_dict())}")
    if getattr(model, "degenerate_", False):
        lines.append(f"  degenerate       {getattr(model, 'degenerate_reason_', '') or 'yes'}")
    from ._degeneracy import outlier_components

    for j, points, distance in outlier_components(
        model.weights_, model.means_, model.covariances_, family, n
    ):
        lines.append(f"  outlier          component {j} holds {points:.3g} point(s), "
                     f"{distance:.2g} sd from every other component")
    missing = missing_counts(X)
    if missing is not None and missing[0]:
        n_cells, n_rows = missing
        lines.append(
            f"  missing values   {n_cells} cell{'s' if n_cells != 1 else ''} "
            f"({n_cells / (n * d):.1%}) in {n_rows} row{'s' if n_rows != 1 else ''} "
            f"({n_rows / n:.1%}); exact EM on the observed values"
        )
    lines.append("")
    lines.extend("  " + row for row in _component_table(model, names))
    if family.shared and family.correlated:
        cov = np.asarray(model.covariances_, dtype=np.float64)
        lines.append("")
        lines.append("  shared covariance matrix:")
        for row in cov:
            lines.append("    " + "  ".join(f"{v:12.6g}" for v in row))
    return "\n".join(lines)


def missing_counts(X: Any) -> tuple[int, int] | None:
    """(missing cells, rows with a missing cell) of an in-memory ``X``; None for dask data."""
    if type(X).__module__.startswith("dask"):
        return None
    nan = np.isnan(np.asarray(X))
    return int(nan.sum()), int(nan.any(axis=1).sum())


def describe_model_file(model: Any, doc: Mapping[str, Any], path: str) -> str:
    """What a model file holds, in words and numbers (``gaussmix info``).

    Parameters
    ----------
    model : GaussianMixture
        The model read from the file.
    doc : mapping
        The file's decoded JSON document (for its version, training record and settings).
    path : str
        The file's path, for the first line.
    """
    training = doc.get("training") or {}
    k, d = np.shape(model.means_)
    family = families.of_model(model)
    ct = family.name
    names = _feature_names(model, d)
    n_samples = training.get("n_samples")
    lines = [
        f"{printable(path)}: gaussmix model file, format version "
        f"{printable(doc.get('version'))}, "
        f"written by gaussmix {printable(doc.get('gaussmix_version', 'unknown'), limit=40)}",
        f"A mixture of {k} Gaussian component{'s' if k != 1 else ''} over {d} feature"
        f"{'s' if d != 1 else ''} ({', '.join(names)}), {ct} covariance "
        f"({_type_words(family)}: {family.description}); "
        f"{model._n_parameters()} free parameters, {doc.get('dtype')}.",
    ]
    n_iter = training.get("n_iter")
    trained = "Trained"
    if n_samples:
        trained += f" on {n_samples} samples"
    converged = training.get("converged")
    trained += f": {'converged' if converged else 'did NOT converge'} after {n_iter} EM iterations"
    lower_bound = training.get("lower_bound")
    if lower_bound is not None:
        # lower_bound_ is the log-likelihood at the last E-step, before the last M-step:
        # within tol of the final parameters' (which `fit` prints), not equal to it.
        trained += f", last EM log-likelihood {lower_bound:.6g} per sample"
        if n_samples:
            total = lower_bound * n_samples
            bic, _ = information_criteria(total, model._n_parameters(), n_samples)
            trained += (f" ({total:.6g} total, BIC {bic:.6g}, at the last E-step; 'gaussmix "
                        "score' on the data gives the final parameters' log-likelihood)")
    online = doc.get("online")
    if online:  # partial_fit (issue 13): no convergence, a running average of batches
        trained = f"Trained by online EM (partial_fit) over {online.get('n_batch_iter')} batches"
        if lower_bound is not None:
            trained += (
                f", running mean log-likelihood {lower_bound:.6g} per sample (recent batches; "
                "'gaussmix score' gives the exact value)"
            )
    lines.append(trained + ".")
    params = doc.get("params") or {}
    settings = ", ".join(
        f"{key}={_setting(params[key])}"
        for key in ("tol", "reg_covar", "max_iter", "n_init", "init_params", "random_state")
        if key in params
    )
    if settings:
        lines.append(f"Settings: {settings}.")
    if isinstance(params.get("prior"), dict):
        lines.append(f"Prior: {_prior_words(params['prior'])}.")
    if training.get("degenerate"):
        lines.append(f"Degenerate fit: {printable(training.get('degenerate_reason'), 1000)}")
    lines.append("")
    lines.extend(_component_table(model, names))
    if family.correlated and d > 1:
        cov = _full_covariances(model)
        lines.append("")
        lines.append("correlations:")
        groups = [("shared", cov[0])] if family.shared else list(enumerate(cov))
        for label, c in groups:
            sd = np.sqrt(np.diag(c))
            corr = c / np.outer(sd, sd)
            pairs = [
                f"{names[i]}~{names[j]} {corr[i, j]:+.3f}"
                for i in range(d)
                for j in range(i + 1, d)
            ]
            lines.append(
                f"  component {label}: "
                + ", ".join(pairs[:15])
                + (" ..." if len(pairs) > 15 else "")
            )
    return "\n".join(lines)


def selection_csv(result: Any) -> str:
    """The whole selection table as CSV (``selection.csv``), in the order it was searched."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(TABLE_KEYS)
    for row in result.table:
        writer.writerow(["" if row.get(key) is None else row.get(key) for key in TABLE_KEYS])
    return buf.getvalue()


def selection_top(result: Any, n: int = 5) -> str:
    """The ``n`` best rows by the result's criterion, with the gap to the best."""
    criterion = result.criterion
    rows = [r for r in result.ranked() if math.isfinite(r[criterion])]
    if not rows:
        return ""
    best = rows[0][criterion]
    lines = [f"  {'rank':>4}  {'covariance':<10} {'K':>3}  {criterion.upper():>12}  {'Δ':>9}"]
    for i, r in enumerate(rows[:n], 1):
        lines.append(
            f"  {i:>4}  {r['covariance_type']:<10} {r['n_components']:>3}  "
            f"{r[criterion]:12.3f}  {r[criterion] - best:9.3f}"
        )
    return "\n".join(lines)


def compare_with_mclust(result: Any, published: Mapping[str, Mapping[int, float]]) -> str:
    """What mclust picks over the grid ``result`` searched, and whether ``result`` agrees.

    Parameters
    ----------
    result : SelectionResult
        A selection by BIC; its table gives the grid searched.
    published : mapping
        mclust's BIC table, ``{mclust model name: {n_components: BIC}}`` in mclust's sign
        (higher is better), for example :func:`gaussmix.datasets.faithful_mclust_bic`.

    Returns
    -------
    str
        One sentence: mclust's best model among the searched models that the table holds,
        and whether the result's best model is the same.
    """
    searched = [(row["covariance_type"], row["n_components"]) for row in result.table]
    known = {
        (ct, k): published[_mclust(ct)][k]
        for ct, k in searched
        if k in published.get(_mclust(ct), {})
    }
    if not known:
        return "mclust's published table holds none of the models searched."
    ct, k = max(known, key=known.__getitem__)  # mclust's sign: higher is better
    if len(known) == len(searched):
        grid = f"the same {len(known)} model{'s' if len(known) != 1 else ''}"
    else:
        grid = f"the {len(known)} of the {len(searched)} searched models in its table"
    sentence = (
        f"mclust picks {_mclust(ct)} ({ct}) with {k} component{'s' if k != 1 else ''} "
        f"over {grid} (BIC {known[ct, k]:.3f} in mclust's sign)"
    )
    best = result.best_params_
    if (best["covariance_type"], best["n_components"]) == (ct, k):
        return sentence + "; this run agrees."
    return sentence + (
        f"; this run does not agree: it picks {_mclust(best['covariance_type'])} "
        f"({best['covariance_type']}) with {best['n_components']} "
        f"component{'s' if best['n_components'] != 1 else ''}."
    )
