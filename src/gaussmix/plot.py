"""Figures for fitted mixtures: clusters, EM convergence, model-selection curves.

matplotlib is imported only when a function here is called (``pip install
"gaussmix[plot]"``). Figures are built with matplotlib's object API and the Agg canvas, never
through ``pyplot``, so they do not touch the user's backend or global state; each function
returns the :class:`matplotlib.figure.Figure` and can save it atomically with ``path=``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from gaussmix import families

__all__ = ["plot_bic", "plot_clusters", "plot_loglik"]

DPI = 100
CLUSTERS_SIZE = (7.5, 6.0)  # inches; 750 x 600 pixels at DPI
LOGLIK_SIZE = (7.0, 4.5)  # 700 x 450
BIC_SIZE = (7.5, 5.5)  # 750 x 550
PAIRS_CELL = 2.4  # inches per feature in a pairs plot (plus PAIRS_MARGIN in width)
PAIRS_MARGIN = 2.4
MAX_POINTS = 20000  # larger data are drawn from a fixed random subsample of this size

INSTALL_HINT = 'pip install "gaussmix[plot]"'

_OTHER_STYLE = ("0.3", "o", "-")  # a table row of a family gaussmix does not know


def _family(name: Any) -> families.CovarianceFamily | None:
    """The covariance family called ``name``, or None when there is none."""
    try:
        return families.get(name)
    except ValueError:
        return None


def _mclust_rank(name: str) -> tuple[int, str]:
    """Sort key of a table's covariance type: mclust's order of its 14 models, unknowns last."""
    family = _family(name)
    if family is None or family.mclust_name not in families.MCLUST_MODELS:
        return len(families.MCLUST_MODELS), str(name)
    return families.MCLUST_MODELS.index(family.mclust_name), ""


def _figure(figsize: tuple[float, float]) -> Any:
    """A new Figure attached to an Agg canvas (no pyplot, no global backend change)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError(f"gaussmix plots need matplotlib: {INSTALL_HINT}") from exc
    fig = Figure(figsize=figsize, dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Any, path: str | os.PathLike[str]) -> None:
    """Save ``fig`` to ``path`` atomically; the format follows the extension (default PNG).

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    path : str or path-like
        Destination; its directory must exist.
    """
    from gaussmix.io import atomic_path

    ext = os.path.splitext(os.fspath(path))[1].lower().lstrip(".") or "png"
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=ext, dpi=DPI)


def _colors(n: int) -> np.ndarray:
    """n distinct RGB colours (tab10, then tab20, then evenly spaced hues)."""
    from matplotlib import colormaps

    if n <= 10:
        return np.asarray(colormaps["tab10"].colors)[:n]
    if n <= 20:
        return np.asarray(colormaps["tab20"].colors)[:n]
    cmap = colormaps["hsv"]
    return np.asarray([cmap(i / n)[:3] for i in range(n)])


def _feature_names(model: Any, n_features: int, feature_names: Sequence[str] | None) -> list[str]:
    if feature_names is not None:
        names = [str(n) for n in feature_names]
    elif getattr(model, "feature_names_in_", None) is not None:
        names = [str(n) for n in model.feature_names_in_]
    else:
        names = [f"x{i}" for i in range(n_features)]
    if len(names) != n_features:
        raise ValueError(
            f"feature_names has {len(names)} names but the data has {n_features} features."
        )
    return names


def _ellipses(ax: Any, mean: np.ndarray, cov: np.ndarray, color: Any) -> None:
    """1σ (solid) and 2σ (dashed) ellipses of a 2-D Gaussian, from cov's eigen-decomposition."""
    from matplotlib import patheffects
    from matplotlib.patches import Ellipse

    # A white halo keeps the outline visible over dense points of the same colour.
    halo = [patheffects.withStroke(linewidth=3.2, foreground="white", alpha=0.9)]

    edge = tuple(0.6 * np.asarray(color, dtype=float)[:3])  # a darker shade of the colour
    vals, vecs = np.linalg.eigh(cov)
    vals = np.clip(vals, 0.0, None)
    # The major axis points along the eigenvector of the largest eigenvalue.
    angle = math.degrees(math.atan2(vecs[1, -1], vecs[0, -1]))
    for n_sigma, style, width in ((1, "-", 1.8), (2, "--", 1.2)):
        ax.add_patch(
            Ellipse(
                (float(mean[0]), float(mean[1])),
                2 * n_sigma * math.sqrt(vals[-1]),
                2 * n_sigma * math.sqrt(vals[0]),
                angle=angle,
                fill=False,
                edgecolor=edge,
                linestyle=style,
                linewidth=width,
                zorder=3,
                path_effects=halo,
            )
        )


def _point_colors(labels: np.ndarray, certainty: np.ndarray, colors: np.ndarray) -> np.ndarray:
    """RGBA per point: the label's colour, opacity from 0.15 (uncertain) to 1 (certain)."""
    k = len(colors)
    rgba = np.ones((len(labels), 4))
    rgba[:, :3] = colors[labels]
    lowest = 1.0 / k if k > 1 else 0.0
    scaled = (certainty - lowest) / max(1.0 - lowest, 1e-12)
    rgba[:, 3] = 0.15 + 0.85 * np.clip(scaled, 0.0, 1.0)
    return rgba


def _legend_handles(model: Any, colors: np.ndarray, with_ellipses: bool = True) -> list[Any]:
    from matplotlib.lines import Line2D

    weights = np.asarray(model.weights_, dtype=np.float64)
    handles = [
        Line2D(
            [],
            [],
            color=colors[k],
            marker="o",
            linestyle="none",
            label=f"component {k} (weight {weights[k]:.2f})",
        )
        for k in range(len(weights))
    ]
    handles.append(
        Line2D([], [], color="black", marker="X", linestyle="none", markersize=9, label="mean")
    )
    if with_ellipses:
        handles.append(Line2D([], [], color="gray", linestyle="-", label="1σ ellipse"))
        handles.append(Line2D([], [], color="gray", linestyle="--", label="2σ ellipse"))
    return handles


def _subsample(n: int, max_points: int) -> np.ndarray:
    if n <= max_points:
        return np.arange(n)
    return np.sort(np.random.default_rng(0).choice(n, size=max_points, replace=False))


def _scatter_panel(
    ax: Any,
    X: np.ndarray,
    i: int,
    j: int,
    point_rgba: np.ndarray,
    means: np.ndarray,
    covs: np.ndarray,
    colors: np.ndarray,
    size: float,
) -> None:
    """Feature i on x, feature j on y: points, 1σ/2σ ellipses and means."""
    ax.scatter(X[:, i], X[:, j], c=point_rgba, s=size, linewidths=0, zorder=2)
    idx = [i, j]
    for k in range(len(means)):
        _ellipses(ax, means[k, idx], covs[k][np.ix_(idx, idx)], colors[k])
    ax.scatter(
        means[:, i],
        means[:, j],
        marker="X",
        s=90,
        c=colors,
        edgecolors="black",
        linewidths=1.0,
        zorder=4,
    )


def _density_panel(
    ax: Any,
    x: np.ndarray,
    feature: int,
    model: Any,
    means: np.ndarray,
    covs: np.ndarray,
    colors: np.ndarray,
    legend: bool,
) -> None:
    """Histogram of one feature with each component's weighted marginal density and the sum."""
    weights = np.asarray(model.weights_, dtype=np.float64)
    ax.hist(
        x,
        bins="auto" if len(x) < 5000 else 60,
        density=True,
        color="0.85",
        edgecolor="0.6",
        label="data",
    )
    sd = np.sqrt(np.maximum(covs[:, feature, feature], 1e-300))
    lo = min(float(np.min(x)), float(np.min(means[:, feature] - 3 * sd)))
    hi = max(float(np.max(x)), float(np.max(means[:, feature] + 3 * sd)))
    grid = np.linspace(lo, hi, 400)
    total = np.zeros_like(grid)
    for k in range(len(weights)):
        z = (grid - means[k, feature]) / sd[k]
        dens = weights[k] * np.exp(-0.5 * z * z) / (sd[k] * math.sqrt(2 * math.pi))
        total += dens
        ax.plot(grid, dens, color=colors[k], linewidth=2.2, label=f"component {k}")
    ax.plot(grid, total, color="black", linewidth=1.2, linestyle="--", label="mixture")
    if legend:
        ax.legend(fontsize="small", loc="best")


def plot_clusters(
    model: Any,
    X: Any,
    *,
    feature_names: Sequence[str] | None = None,
    title: str | None = None,
    max_features: int = 6,
    max_points: int = MAX_POINTS,
    path: str | os.PathLike[str] | None = None,
) -> Any:
    """Plot the data coloured by component, with the means and 1σ/2σ ellipses.

    Points take the colour of their most probable component and an opacity that grows with
    the certainty of that assignment (the largest posterior probability). Two features give
    one scatter plot; more give a pairs plot of the first ``max_features`` features (the
    diagonal shows each feature's histogram and the components' marginal densities); one
    feature gives a histogram with the weighted component densities and the mixture density.

    Parameters
    ----------
    model : GaussianMixture
        A fitted model.
    X : array-like of shape (n_samples, n_features)
        Data to draw (usually the training data).
    feature_names : sequence of str, optional
        Axis labels; default ``model.feature_names_in_`` or ``x0, x1, ...``.
    title : str, optional
        Figure title; a default describes the model.
    max_features : int, default=6
        Largest number of features drawn in a pairs plot.
    max_points : int, default=20000
        Larger data are drawn from a fixed random subsample of this size.
    path : str or path-like, optional
        If given, save the figure there atomically (format from the extension).

    Returns
    -------
    matplotlib.figure.Figure
        750 x 600 pixels for 1 or 2 features; a pairs plot is
        ``(2.4 m + 2.4) x 2.4 m`` inches at 100 dpi for ``m`` features drawn.

    Raises
    ------
    ImportError
        If matplotlib is not installed.
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim == 1:
        X = X[:, None]
    n_samples, n_features = X.shape
    means = np.asarray(model.means_, dtype=np.float64)
    if means.shape[1] != n_features:
        raise ValueError(
            f"X has {n_features} features but the model was fitted on {means.shape[1]}."
        )
    names = _feature_names(model, n_features, feature_names)
    keep = _subsample(n_samples, max_points)
    X_draw = X[keep]
    proba = np.asarray(model.predict_proba(X_draw), dtype=np.float64)
    labels = np.argmax(proba, axis=1)
    certainty = np.max(proba, axis=1)
    k = means.shape[0]
    colors = _colors(k)
    family = families.of_model(model)
    covs = family.full_covariances(model.covariances_, k, means.shape[1])
    rgba = _point_colors(labels, certainty, colors)
    size = 14.0 if len(X_draw) <= 2000 else 5.0
    if title is None:
        title = (
            f"Gaussian mixture: {k} component{'s' if k != 1 else ''}, "
            f"{family.name} covariance"
            + (f" ({family.mclust_name})" if family.mclust_name != family.name else "")
        )
    shown = ""
    if n_samples > len(X_draw):
        shown = f" (random {len(X_draw)} of {n_samples} points)"

    if n_features == 1:
        fig = _figure(CLUSTERS_SIZE)
        ax = fig.add_subplot(1, 1, 1)
        _density_panel(ax, X_draw[:, 0], 0, model, means, covs, colors, legend=False)
        ymin = -0.04 * ax.get_ylim()[1]
        ax.scatter(X_draw[:, 0], np.full(len(X_draw), ymin / 2), c=rgba, marker="|", s=60)
        ax.set_ylim(bottom=ymin)
        ax.set_xlabel(names[0])
        ax.set_ylabel("density")
        ax.legend(fontsize="small", loc="best")
        ax.set_title(title + shown)
    elif n_features == 2:
        fig = _figure(CLUSTERS_SIZE)
        ax = fig.add_subplot(1, 1, 1)
        _scatter_panel(ax, X_draw, 0, 1, rgba, means, covs, colors, size)
        ax.set_xlabel(names[0])
        ax.set_ylabel(names[1])
        ax.set_title(title + shown)
        ax.legend(
            handles=_legend_handles(model, colors), fontsize="small", loc="best", framealpha=0.85
        )
        ax.autoscale_view()
    else:
        m = min(n_features, max_features)
        fig = _figure((PAIRS_CELL * m + PAIRS_MARGIN, PAIRS_CELL * m))
        axes = fig.subplots(m, m, squeeze=False)
        for row in range(m):
            for col in range(m):
                ax = axes[row, col]
                if row == col:
                    _density_panel(ax, X_draw[:, col], col, model, means, covs, colors, False)
                    ax.set_yticks([])
                else:
                    _scatter_panel(ax, X_draw, col, row, rgba, means, covs, colors, size / 2)
                    ax.autoscale_view()
                if row == m - 1:
                    ax.set_xlabel(names[col])
                else:
                    ax.tick_params(labelbottom=False)
                if col == 0:
                    ax.set_ylabel(names[row])
                elif col != 0:
                    ax.tick_params(labelleft=False)
                ax.tick_params(labelsize="x-small")
        more = f"; first {m} of {n_features} features" if n_features > m else ""
        fig.suptitle(title + more + shown)
        fig.legend(handles=_legend_handles(model, colors), fontsize="small", loc="center right")
        fig.subplots_adjust(
            left=0.08,
            right=1 - PAIRS_MARGIN / (PAIRS_CELL * m + PAIRS_MARGIN),
            bottom=0.07,
            top=0.93,
            wspace=0.08,
            hspace=0.08,
        )
    if path is not None:
        save_figure(fig, path)
    return fig


def plot_loglik(
    model: Any,
    *,
    n_samples: int | None = None,
    title: str | None = None,
    path: str | os.PathLike[str] | None = None,
) -> Any:
    """Plot the log-likelihood after each EM iteration of the retained initialisation.

    Parameters
    ----------
    model : GaussianMixture
        A fitted model (uses ``lower_bounds_``, the mean log-likelihood per sample after
        each iteration).
    n_samples : int, optional
        Number of training samples; when known (also from ``model.n_samples_fit_``) the
        curve shows the total log-likelihood ``lower_bounds_ * n_samples``, otherwise the mean
        per sample.
    title : str, optional
    path : str or path-like, optional
        If given, save the figure there atomically.

    Returns
    -------
    matplotlib.figure.Figure
        700 x 450 pixels.
    """
    history = np.asarray(getattr(model, "lower_bounds_", []) or [], dtype=np.float64)
    if n_samples is None:
        n_samples = getattr(model, "n_samples_fit_", None)
    fig = _figure(LOGLIK_SIZE)
    ax = fig.add_subplot(1, 1, 1)
    if n_samples is not None:
        values = history * n_samples
        ylabel = f"total log-likelihood (n = {n_samples})"
    else:
        values = history
        ylabel = "mean log-likelihood per sample"
    if len(values):
        iterations = np.arange(1, len(values) + 1)
        ax.plot(
            iterations,
            values,
            color="#1f77b4",
            marker="o" if len(values) <= 60 else None,
            markersize=4,
            linewidth=1.6,
            label="log-likelihood",
        )
        ax.axhline(
            values[-1], color="0.6", linestyle=":", linewidth=1.0, label=f"final: {values[-1]:.6g}"
        )
        ax.legend(loc="lower right", fontsize="small")
        ax.xaxis.get_major_locator().set_params(integer=True)
    else:
        ax.text(0.5, 0.5, "no iteration history", ha="center", va="center", transform=ax.transAxes)
    converged = getattr(model, "converged_", None)
    status = {True: "converged", False: "not converged"}.get(converged, "")
    if title is None:
        k = np.shape(model.means_)[0]
        title = f"EM convergence: {k} components, {families.of_model(model).name} covariance"
        if status:
            title += f"\n{status} after {getattr(model, 'n_iter_', len(values))} iterations"
    # A model built by select_model keeps one value per SQUAREM cycle of its final polish
    # (three EM steps each), not one per EM iteration (selection._estimator marks it).
    per_cycle = bool(len(values)) and getattr(model, "_history_per_cycle", False)
    ax.set_title(title)
    ax.ticklabel_format(axis="y", useOffset=False, style="plain")
    ax.set_xlabel("SQUAREM cycle of the final polish (3 EM steps each)" if per_cycle
                  else "EM iteration")
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
    return fig


_CRITERION_LABELS = {
    "bic": "−BIC = 2 log L − p log n   (higher is better)",
    "aic": "−AIC = 2 log L − 2p   (higher is better)",
    "icl": "−ICL = −BIC − 2 × entropy   (higher is better)",
}


def plot_bic(
    result: Any,
    *,
    criterion: str | None = None,
    title: str | None = None,
    path: str | os.PathLike[str] | None = None,
) -> Any:
    """Plot the selection criterion against the number of components, one curve per family.

    As in mclust, the curves show ``-BIC = 2 log L - p log n`` (higher is better); the
    y-axis label says so. The best model is circled and named. There is one curve per
    covariance model, in mclust's order of its 14 models, each drawn in its family's own
    colour, marker and line style (``plot_style``) and named in the legend by its name, with
    mclust's name added for scikit-learn's four ("tied (EEE)"). A number of components a
    model has no value for (its fit failed, or the table has no row) is a gap in its curve;
    degenerate fits are drawn with hollow markers and never chosen as the best.

    Parameters
    ----------
    result : SelectionResult or list of dict
        The result of :func:`gaussmix.selection.select_model`, or its ``table`` (rows with
        ``covariance_type``, ``n_components`` and the criterion; rows whose ``error`` is set
        are left out, degenerate fits are drawn with hollow markers).
    criterion : {"bic", "aic", "icl"}, optional
        Default: ``result.criterion``, or "bic" for a bare table.
    title : str, optional
    path : str or path-like, optional
        If given, save the figure there atomically.

    Returns
    -------
    matplotlib.figure.Figure
        750 x 550 pixels.
    """
    table = getattr(result, "table", result)
    if criterion is None:
        criterion = getattr(result, "criterion", "bic")
    if criterion not in _CRITERION_LABELS:
        raise ValueError(f"criterion must be one of bic, aic, icl; got {criterion!r}.")
    fig = _figure(BIC_SIZE)
    ax = fig.add_subplot(1, 1, 1)
    best = None
    by_family: dict[str, list[dict[str, Any]]] = {}
    for row in table:
        by_family.setdefault(row["covariance_type"], []).append(row)
    order = sorted(by_family, key=_mclust_rank)
    # Every curve runs over every number of components in the table: one a model lacks (no
    # row, a failed fit, no value) is a gap in its curve, as in mclust's plot.
    all_k = {int(row["n_components"]) for row in table}
    for ct in order:
        rows = {int(row["n_components"]): row for row in by_family[ct]}
        ks, values, hollow = [], [], []
        for k in sorted(all_k):
            row = rows.get(k, {"error": "no fit"})
            value = row.get(criterion)
            ks.append(k)
            if row.get("error") or value is None or not math.isfinite(float(value)):
                values.append(np.nan)
                hollow.append(False)
                continue
            values.append(-float(value))
            hollow.append(bool(row.get("degenerate")))
            if not row.get("degenerate") and (best is None or -float(value) > best[0]):
                best = (-float(value), ct, k)
        family = _family(ct)
        color, marker, style = family.plot_style if family else _OTHER_STYLE
        ks_arr, values_arr = np.asarray(ks), np.asarray(values)
        hollow_arr = np.asarray(hollow, dtype=bool)
        label = (
            f"{ct} ({family.mclust_name})" if family and family.mclust_name != ct else ct
        )
        ax.plot(
            ks_arr,
            values_arr,
            color=color,
            linestyle=style,
            linewidth=1.5,
            marker=marker,
            markersize=6,
            label=label,
        )
        if hollow_arr.any():
            ax.plot(
                ks_arr[hollow_arr],
                values_arr[hollow_arr],
                marker=marker,
                linestyle="none",
                markersize=6,
                markerfacecolor="white",
                markeredgecolor=color,
            )
    best_params = getattr(result, "best_params_", None)
    if best_params is not None:
        for row in table:
            if (
                row["covariance_type"] == best_params.get("covariance_type")
                and row["n_components"] == best_params.get("n_components")
                and row.get(criterion) is not None
            ):
                best = (-float(row[criterion]), row["covariance_type"], row["n_components"])
    if best is not None:
        value, ct, k = best
        ax.plot(
            [k],
            [value],
            marker="o",
            markersize=16,
            markerfacecolor="none",
            markeredgecolor="black",
            markeredgewidth=1.8,
            linestyle="none",
            label=f"best: {ct}, {k} components",
        )
    if all_k:
        ax.set_xticks(sorted(all_k))
    ax.set_xlabel("number of components")
    ax.set_ylabel(_CRITERION_LABELS[criterion])
    ax.set_title(title or f"Model selection by {criterion.upper()} (mclust style)")
    ax.grid(True, alpha=0.3)
    # mclust's legend: one entry per model in the lower right, in two columns when there
    # are many (14 models and the best).
    n_entries = len(order) + (best is not None)
    ax.legend(
        loc="lower right",
        fontsize="x-small" if n_entries > 8 else "small",
        ncol=2 if n_entries > 8 else 1,
        title="covariance type",
        title_fontsize="small",
        framealpha=0.85,
    )
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
    return fig
