"""`import gaussmix` imports NumPy only (README, "Installation and extras").

Checked in a fresh interpreter, where nothing else has been imported yet: the optional
dependencies (SciPy, scikit-learn, matplotlib, Dask, pandas, tqdm, threadpoolctl, pyarrow)
must be absent from sys.modules after importing the package and its public names, and
NumPy present.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

OPTIONAL = ("scipy", "sklearn", "matplotlib", "dask", "distributed", "pandas", "tqdm",
            "threadpoolctl", "pyarrow")

_PROBE = """
import json, sys
import {statement}
roots = sorted({{name.split(".")[0] for name in sys.modules}})
print(json.dumps(roots))
"""


def _imported_roots(statement):
    out = subprocess.run(
        [sys.executable, "-c", _PROBE.format(statement=statement)],
        capture_output=True, text=True, check=True, timeout=120,
    )
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("statement", [
    "gaussmix",
    "gaussmix.datasets",
    "gaussmix.io",
])
def test_import_gaussmix_imports_numpy_only(statement):
    roots = _imported_roots(statement)
    assert "numpy" in roots and "gaussmix" in roots
    assert sorted(roots & set(OPTIONAL)) == []


def test_public_names_import_numpy_only():
    # what the README's library example imports
    roots = _imported_roots("gaussmix; from gaussmix import GaussianMixture, select_model, load")
    assert sorted(roots & set(OPTIONAL)) == []


def test_the_probe_sees_an_optional_import():
    """The check can fail: importing the CLI's plotting module does import matplotlib."""
    pytest.importorskip("matplotlib")
    assert "matplotlib" in _imported_roots("gaussmix.plot, matplotlib")
