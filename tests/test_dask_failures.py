"""A real cluster failure during a fit: a worker dies while it runs an E-step task.

The scheduler of this module's own LocalCluster allows no failure per task
(``distributed.scheduler.allowed-failures = 0``), and a worker plugin makes the worker
process exit as soon as it starts an E-step task of gaussmix. The scheduler then marks the
task as having killed a worker (``distributed.KilledWorker``, no monkeypatching), which
gaussmix must report as ``DaskFitError`` (library) and exit code 1 with one line on stderr
(command line, ``--scheduler ADDRESS``), leaving no model behind.
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")
dask = pytest.importorskip("dask")

from gaussmix import GaussianMixture  # noqa: E402
from gaussmix import _dask as gdask  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::gaussmix.ConvergenceWarning")

PLUGIN_NAME = "gaussmix-test-killer"


def _killer_plugin():
    """A WorkerPlugin whose worker exits when it starts a gaussmix E-step task.

    Defined in a function so that it travels to the workers by value (cloudpickle),
    without the workers importing this test module.
    """

    class KillOnEStep(distributed.WorkerPlugin):
        def transition(self, key, start, finish, **kwargs):
            name = key[0] if isinstance(key, tuple) else key
            if finish == "executing" and str(name).startswith("gaussmix-estep-"):
                os._exit(1)

    return KillOnEStep()


@pytest.fixture(scope="module", autouse=True)
def _restore_environ():
    """distributed's nannies write their workers' variables into this process's
    environment; give the other test modules theirs back."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="module")
def fragile_cluster():
    """One worker process; the scheduler tolerates no task that kills a worker."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
            cluster = distributed.LocalCluster(
                n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None,
                silence_logs=50,
            )
        client = distributed.Client(cluster, set_as_default=False)
    client.wait_for_workers(1)
    client.register_plugin(_killer_plugin(), name=PLUGIN_NAME)
    yield cluster, client
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        client.close()
        cluster.close()


def _data(n=600, seed=0):
    rng = np.random.default_rng(seed)
    return np.r_[rng.normal(0, 1, (n // 2, 2)), rng.normal(6, 1, (n // 2, 2))]


def test_killed_worker_raises_dask_fit_error(fragile_cluster):
    _, client = fragile_cluster
    client.wait_for_workers(1)
    X = da.from_array(_data(), chunks=(150, 2))
    est = GaussianMixture(2, random_state=0, max_iter=5)
    with dask.config.set(scheduler=client):
        with pytest.raises(gdask.DaskFitError, match=r"KilledWorker.*left unchanged") as info:
            est.fit(X)
    assert type(info.value.__cause__).__name__ == "KilledWorker"
    assert not hasattr(est, "means_")


def test_killed_worker_command_line_exit_code(fragile_cluster, tmp_path):
    cluster, client = fragile_cluster
    client.wait_for_workers(1)
    path = tmp_path / "data.npy"
    np.save(path, _data())
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "gaussmix", "fit", str(path), "-k", "2", "-c", "full",
         "--seed", "0", "--scheduler", cluster.scheduler_address, "-o", str(out)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 1, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("gaussmix: error: The Dask cluster failed during the fit "
                               "(KilledWorker"), lines[0]
    assert "internal error" not in proc.stderr
    assert not (out / "model.json").exists()
