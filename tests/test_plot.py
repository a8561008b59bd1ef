"""Plots: valid, non-blank PNGs of the documented size; the right data on the axes."""

from __future__ import annotations

import os
import struct
import sys

import numpy as np
import pytest

from gaussmix import GaussianMixture

pytest.importorskip("matplotlib")

from gaussmix import plot

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(path) -> tuple[int, int]:
    """(width, height) from the IHDR chunk, after checking the PNG signature."""
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == PNG_SIGNATURE, "not a PNG file"
    assert head[12:16] == b"IHDR"
    return struct.unpack(">II", head[16:24])


def assert_valid_png(path, size):
    from matplotlib.image import imread

    assert png_size(path) == size
    pixels = imread(path)
    assert pixels.shape[:2] == (size[1], size[0])
    assert float(np.var(pixels[..., :3])) > 0, "blank image"


def _blobs(n_features, n=90, seed=0):
    rng = np.random.default_rng(seed)
    centers = np.array([[0.0] * 8, [5.0] * 8, [0.0, 6.0] + [2.0] * 6])[:, :n_features]
    return np.vstack([rng.normal(c, 1.0, size=(n // 3, n_features)) for c in centers])


@pytest.fixture(scope="module")
def model2d():
    X = _blobs(2)
    return GaussianMixture(3, covariance_type="full", random_state=0, max_iter=20).fit(X), X


def test_clusters_2d(model2d, tmp_path):
    model, X = model2d
    path = tmp_path / "clusters.png"
    fig = plot.plot_clusters(model, X, feature_names=["length", "width"], path=path)
    assert_valid_png(path, (750, 600))
    ax = fig.axes[0]
    assert ax.get_xlabel() == "length" and ax.get_ylabel() == "width"
    assert "3 components" in ax.get_title()
    # Two ellipses (1σ, 2σ) per component.
    assert len(ax.patches) == 2 * 3
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(t.startswith("component 0") for t in legend) and "mean" in legend
    # The 1σ ellipse of a component spans 2·sqrt(eigenvalue) of its covariance.
    ellipse = ax.patches[0]
    eig = np.linalg.eigvalsh(model.covariances_[0])
    assert ellipse.width == pytest.approx(2 * np.sqrt(eig[-1]))
    assert ellipse.height == pytest.approx(2 * np.sqrt(eig[0]))
    assert ellipse.center == pytest.approx(tuple(model.means_[0]))


def test_point_opacity_follows_certainty(model2d):
    model, X = model2d
    fig = plot.plot_clusters(model, X)
    colors = fig.axes[0].collections[0].get_facecolors()
    certainty = model.predict_proba(X).max(axis=1)
    order = np.argsort(certainty)
    assert colors[order[-1], 3] >= colors[order[0], 3]
    assert colors[:, 3].max() == pytest.approx(0.15 + 0.85 * 1.0, abs=1e-3)


@pytest.mark.parametrize("covariance_type", ["tied", "diag", "spherical"])
def test_clusters_other_covariance_types(covariance_type, tmp_path):
    X = _blobs(2)
    model = GaussianMixture(3, covariance_type=covariance_type, random_state=0, max_iter=10).fit(X)
    path = tmp_path / "c.png"
    plot.plot_clusters(model, X, path=path)
    assert_valid_png(path, (750, 600))


def test_clusters_pairs_plot(tmp_path):
    X = _blobs(3)
    model = GaussianMixture(3, covariance_type="diag", random_state=0, max_iter=10).fit(X)
    path = tmp_path / "pairs.png"
    fig = plot.plot_clusters(model, X, path=path)
    width = round((plot.PAIRS_CELL * 3 + plot.PAIRS_MARGIN) * plot.DPI)
    assert_valid_png(path, (width, round(plot.PAIRS_CELL * 3 * plot.DPI)))
    assert len(fig.axes) == 9
    assert fig.axes[6].get_xlabel() == "x0"


def test_pairs_plot_caps_features():
    X = _blobs(8)
    model = GaussianMixture(2, covariance_type="diag", random_state=0, max_iter=5).fit(X)
    fig = plot.plot_clusters(model, X, max_features=4)
    assert len(fig.axes) == 16
    assert "first 4 of 8 features" in fig._suptitle.get_text()


def test_clusters_1d(tmp_path):
    X = _blobs(1)
    model = GaussianMixture(2, random_state=0, max_iter=10).fit(X)
    path = tmp_path / "one.png"
    fig = plot.plot_clusters(model, X, feature_names=["duration"], path=path)
    assert_valid_png(path, (750, 600))
    ax = fig.axes[0]
    assert ax.get_xlabel() == "duration" and ax.get_ylabel() == "density"
    labels = [line.get_label() for line in ax.lines]
    assert labels == ["component 0", "component 1", "mixture"]
    # Mixture density = sum of the weighted component densities.
    np.testing.assert_allclose(
        ax.lines[2].get_ydata(), ax.lines[0].get_ydata() + ax.lines[1].get_ydata()
    )


def test_loglik(model2d, tmp_path):
    model, X = model2d
    path = tmp_path / "loglik.png"
    fig = plot.plot_loglik(model, n_samples=len(X), path=path)
    assert_valid_png(path, (700, 450))
    ax = fig.axes[0]
    line = ax.lines[0]
    np.testing.assert_allclose(line.get_ydata(), np.asarray(model.lower_bounds_) * len(X))
    np.testing.assert_array_equal(line.get_xdata(), np.arange(1, len(model.lower_bounds_) + 1))
    assert "total log-likelihood" in ax.get_ylabel()
    assert ax.get_xlabel() == "EM iteration"


def test_loglik_without_n_samples_shows_the_mean(model2d):
    model, _ = model2d
    ax = plot.plot_loglik(model).axes[0]
    assert "per sample" in ax.get_ylabel()
    np.testing.assert_allclose(ax.lines[0].get_ydata(), model.lower_bounds_)


def _table():
    rows = []
    for ct, offset in (("spherical", 60.0), ("diag", 30.0), ("tied", 0.0), ("full", 10.0)):
        for k in range(1, 5):
            rows.append(
                {
                    "covariance_type": ct,
                    "n_components": k,
                    "bic": 1000.0 + offset + 5.0 * (k - 3) ** 2,
                    "aic": 900.0 + offset + k,
                    "icl": None,
                    "degenerate": "collapsed" if (ct, k) == ("full", 4) else None,
                    "error": "failed" if (ct, k) == ("spherical", 4) else None,
                }
            )
    return rows


def test_bic_curves(tmp_path):
    path = tmp_path / "bic.png"
    fig = plot.plot_bic(_table(), path=path)
    assert_valid_png(path, (750, 550))
    ax = fig.axes[0]
    assert "−BIC" in ax.get_ylabel() and "higher is better" in ax.get_ylabel()
    assert ax.get_xlabel() == "number of components"
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "tied (EEE)" in legend and "full (VVV)" in legend
    assert "best: tied, 3 components" in legend
    tied = next(line for line in ax.lines if line.get_label() == "tied (EEE)")
    np.testing.assert_allclose(tied.get_ydata(), [-1020.0, -1005.0, -1000.0, -1005.0])
    spherical = next(line for line in ax.lines if line.get_label() == "spherical (VII)")
    assert np.isnan(spherical.get_ydata()[-1])  # the failed fit is a gap


def test_bic_other_criterion():
    ax = plot.plot_bic(_table(), criterion="aic").axes[0]
    assert "AIC" in ax.get_ylabel()
    with pytest.raises(ValueError, match="criterion"):
        plot.plot_bic(_table(), criterion="xyz")


def test_missing_matplotlib_says_how_to_install(model2d, monkeypatch):
    model, _ = model2d
    for name in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(ImportError, match=r'pip install "gaussmix\[plot\]"'):
        plot.plot_loglik(model)


def test_failed_save_leaves_no_file(model2d, tmp_path):
    model, _ = model2d
    with pytest.raises(FileNotFoundError):
        plot.plot_loglik(model, path=tmp_path / "missing" / "loglik.png")
    assert os.listdir(tmp_path) == []


@pytest.fixture(scope="module")
def table_14():
    """A selection table of all 14 models, K = 1..3, from real fits on small data.

    Built with GaussianMixture per model and K (not select_model), with two rows changed:
    VVE at K=2 failed (a gap) and EEV at K=3 absent from the table (also a gap).
    """
    from gaussmix import families

    X = _blobs(2, n=60)
    rows = []
    for name in families.MCLUST_MODELS:
        for k in (1, 2, 3):
            if (name, k) == ("EEV", 3):
                continue
            model = GaussianMixture(
                k, covariance_type=name, random_state=0, max_iter=30, tol=1e-3
            ).fit(X)
            failed = (name, k) == ("VVE", 2)
            rows.append({
                "covariance_type": families.get(name).name,
                "n_components": k,
                "bic": None if failed else model.bic(X),
                "aic": model.aic(X),
                "icl": None,
                "degenerate": None,
                "error": "failed" if failed else None,
            })
    return rows, X


def test_bic_plot_has_one_distinct_curve_per_model_of_mclusts_14(table_14, tmp_path):
    from gaussmix import families

    rows, _ = table_14
    path = tmp_path / "bic14.png"
    fig = plot.plot_bic(rows, path=path)
    assert_valid_png(path, (750, 550))
    ax = fig.axes[0]
    curves = [line for line in ax.lines if not line.get_label().startswith(("best", "_"))]
    # One curve per model, in mclust's order, named by gaussmix's name with mclust's added
    # where they differ.
    expected = [
        name if families.get(name).name == name else f"{families.get(name).name} ({name})"
        for name in families.MCLUST_MODELS
    ]
    assert [line.get_label() for line in curves] == expected
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend[:14] == expected and legend[14].startswith("best: ")
    # 14 distinguishable styles: every colour and every marker differs.
    colors = {line.get_color() for line in curves}
    markers = {line.get_marker() for line in curves}
    assert len(colors) == 14 and len(markers) == 14
    assert {line.get_linestyle() for line in curves} >= {"-", "--", ":", "-."}
    # The values are -BIC; a failed fit and a missing row are gaps (NaN), not joined.
    by_label = {line.get_label(): line for line in curves}
    for row in rows:
        if row["bic"] is None:
            continue
        family = families.get(row["covariance_type"])
        label = expected[families.MCLUST_MODELS.index(family.mclust_name)]
        line = by_label[label]
        assert list(line.get_xdata()) == [1, 2, 3]
        assert line.get_ydata()[row["n_components"] - 1] == pytest.approx(-row["bic"])
    assert np.isnan(by_label["VVE"].get_ydata()[1])
    assert np.isnan(by_label["EEV"].get_ydata()[2])
    assert not np.isnan(by_label["EEV"].get_ydata()[:2]).any()
    # The circled best is the highest -BIC of the table.
    best = min((r for r in rows if r["bic"] is not None), key=lambda r: r["bic"])
    assert legend[14] == f"best: {best['covariance_type']}, {best['n_components']} components"


def test_bic_plot_of_a_four_model_table_keeps_mclusts_order():
    ax = plot.plot_bic(list(reversed(_table()))).axes[0]
    labels = [line.get_label() for line in ax.lines][:4]
    assert labels == ["spherical (VII)", "diag (VVI)", "tied (EEE)", "full (VVV)"]


def test_loglik_of_a_selected_model_says_its_points_are_squarem_cycles():
    """select_model's estimators keep one value per SQUAREM cycle of the final polish,
    while n_iter_ counts EM steps (reviewer r1: the plot said "converged after 20
    iterations" over an "EM iteration" axis of 2 points)."""
    from gaussmix import select_model
    from gaussmix.datasets import load_faithful

    best = select_model(load_faithful(), n_components=[3], covariance_types=["tied"],
                        random_state=0).best_estimator_
    assert len(best.lower_bounds_) != best.n_iter_
    ax = plot.plot_loglik(best).axes[0]
    assert ax.get_xlabel() == "SQUAREM cycle of the final polish (3 EM steps each)"
    assert f"after {best.n_iter_} iterations" in ax.get_title()
    # fit then partial_fit: one value per EM iteration or batch, whatever n_iter_ says
    # (reviewer r2: the count rule called it SQUAREM cycles)
    from gaussmix import GaussianMixture

    X = np.asarray(load_faithful(), dtype=np.float64)
    model = GaussianMixture(2, random_state=0).fit(X).partial_fit(X)
    assert plot.plot_loglik(model).axes[0].get_xlabel() == "EM iteration"
