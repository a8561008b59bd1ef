"""benchmarks/full_bound.py: its table, on a small row (timings are not checked)."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import full_bound


def test_both_modes_of_a_row_against_the_allowance(monkeypatch, capsys):
    """Each row gets one line per mode, the mode gaussmix takes marked, the perfect
    two-thread time half the one-thread one, and a verdict that follows from the two."""
    monkeypatch.setitem(full_bound.ROWS, "tiny", (3000, 6, 4, "f64"))
    assert full_bound.main(["--rows", "tiny", "--repeats", "1", "--iterations", "2",
                            "--matmul-size", "128"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines()
             if line.startswith("| tiny |")]
    assert len(lines) == 2
    marked = 0
    for line in lines:
        cells = [c.strip() for c in line.strip("|").split("|")]
        one, two, allowed = float(cells[7]), float(cells[8]), float(cells[9])
        assert one > 0 and two == pytest.approx(one / 2, abs=0.06)
        assert cells[10] == ("yes" if two <= allowed + 0.05 else "no") or \
            abs(two - allowed) <= 0.05  # (the cells are rounded to 0.1 ms)
        marked += "(gaussmix's)" in cells[6]
    assert marked == 1  # D + 2 <= 4K: gaussmix takes the quadratic features
    assert "(gaussmix's)" in lines[0]


def test_unknown_row_is_refused(capsys):
    with pytest.raises(SystemExit):
        full_bound.main(["--rows", "full-7d"])
    assert "choose among" in capsys.readouterr().err


def test_the_timed_quadratic_calls_are_the_e_step(monkeypatch):
    """The three calls timed per block add up to the E-step's own feature sums."""
    from gaussmix import GaussianMixture, stats
    from gaussmix._estep import QuadraticEStep, family_forms

    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(size=(300, 3)), rng.normal(3, 1, size=(300, 3))])
    params = GaussianMixture(2, covariance_type="full", random_state=0).fit(X)._get_parameters()
    made = []
    real = QuadraticEStep.__init__

    def keep(self, *args):
        real(self, *args)
        made.append(self)

    monkeypatch.setattr(QuadraticEStep, "__init__", keep)
    full_bound.quadratic_parts(X, params, 128, repeats=1)
    reference = stats._estep_over(X, params, None, X.dtype, 128)[0]
    assert type(reference) is QuadraticEStep and family_forms(params)[1] == "full"
    np.testing.assert_allclose(made[-1].feature_sums, reference.feature_sums, rtol=1e-12)


def test_rows_are_bench_ems_full_rows_from_32_features():
    assert set(full_bound.ROWS) == {f"full-{d}d{s}" for d in (32, 64, 96, 128)
                                    for s in ("", "-f32")}
    assert full_bound.ROWS["full-64d-f32"] == (50_000, 64, 8, "f32")
