"""Output folders as one unit (issue 15, item 4).

A run stages its files in a fresh folder and publishes them together under a lock on the
directory; files of an earlier run that this run does not write are removed (and listed);
leftovers of killed runs are cleaned by the next run; SIGTERM cleans up like Ctrl-C. Each
test reproduces a defect of the landed code, named in its docstring; every one failed
before the change.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

from conftest import publish_outputs
from gaussmix import cli
from gaussmix.io import MANIFEST, STAGING_PREFIX, staged_outputs

pytestmark = pytest.mark.skipif(os.name != "posix", reason="flock and signals are POSIX")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(0.0, 1.0, (150, 2)), rng.normal(6.0, 1.0, (150, 2))])
    path = tmp_path_factory.mktemp("data") / "x.csv"
    path.write_text("a,b\n" + "".join(f"{x!r},{y!r}\n" for x, y in X.tolist()))
    return str(path)


def _hidden(directory):
    """Hidden leftovers (gaussmix's record of its files, MANIFEST, is not one)."""
    return sorted(n for n in os.listdir(directory) if n.startswith(".") and n != MANIFEST)


def _contents(directory):
    return {n: (directory / n).read_text() for n in os.listdir(directory) if n != MANIFEST}


def _n_components(directory):
    with open(os.path.join(directory, "model.json")) as f:
        model_k = json.load(f)["n_components"]
    with open(os.path.join(directory, "assignments.csv")) as f:
        header = next(csv.reader(f))
    return model_k, sum(1 for h in header if h.startswith("p"))


def test_second_run_removes_the_first_runs_other_files(data, tmp_path, capsys):
    """Repro: a second `fit` into the same folder left the first run's selection.csv (and
    bic.png) next to the new model.json."""
    out = str(tmp_path / "out")
    assert cli.main(["fit", data, "-k", "auto", "--components", "1-2", "--no-plots",
                     "-q", "-o", out]) == 0
    assert "selection.csv" in os.listdir(out)
    (tmp_path / "out" / "notes.txt").write_text("the user's own file")
    capsys.readouterr()
    assert cli.main(["fit", data, "-k", "2", "-c", "diag", "--no-plots", "-o", out]) == 0
    assert sorted(os.listdir(out)) == [MANIFEST, "assignments.csv", "model.json", "notes.txt"]
    printed = capsys.readouterr().out
    removed = printed.split("removed (written by an earlier run, not by this one):\n", 1)[1]
    assert os.path.join(out, "selection.csv") in removed
    assert "notes.txt" not in removed


def test_a_second_writer_waits_for_the_first_to_publish(tmp_path):
    """Repro: two concurrent runs could end with model.json from one and assignments.csv
    from the other. Here the first run holds the folder while the second tries to write."""
    target = str(tmp_path / "out")
    names = ("model.json", "assignments.csv", "selection.csv")
    first_staged, release_first = threading.Event(), threading.Event()
    waited = threading.Event()
    second_done = threading.Event()

    def first():
        with staged_outputs(target, outputs=names) as out:
            out.stage("model.json", "first")
            out.stage("selection.csv", "first")
            first_staged.set()
            release_first.wait(30)
            out.stage("assignments.csv", "first")
            out.commit()

    def second():
        first_staged.wait(30)
        with staged_outputs(target, outputs=names, on_wait=lambda d: waited.set()) as out:
            out.stage("model.json", "second")
            out.stage("assignments.csv", "second")
            out.commit()
        second_done.set()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    assert waited.wait(30), "the second writer did not wait for the lock"
    assert not second_done.is_set()
    release_first.set()
    for t in threads:
        t.join(60)
    assert second_done.is_set()
    # One run's files, never a mix: the second's set, the first's selection.csv removed.
    contents = _contents(tmp_path / "out")
    assert contents == {"model.json": "second", "assignments.csv": "second"}


def test_concurrent_command_line_runs_leave_one_runs_files(data, tmp_path):
    """Two `gaussmix fit` processes into the same folder at once: both succeed and the
    folder holds one run's model.json with the same run's assignments.csv."""
    out = str(tmp_path / "out")
    env = dict(os.environ)
    env.pop("PYTHONWARNINGS", None)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "gaussmix", "fit", data, "-k", str(k), "-c", "diag",
             "--no-plots", "-q", "-o", out],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )
        for k in (2, 3)
    ]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    model_k, proba_columns = _n_components(out)
    assert model_k == proba_columns
    assert _hidden(out) == []


_SLOW_WRITER = textwrap.dedent(
    """
    import sys, time
    from gaussmix import cli

    ready = sys.argv[1]

    def slow_writer(model, X):
        def write(f):
            f.write("row,label\\n" + "0,0\\n" * 100000)
            f.flush()
            open(ready, "w").close()
            time.sleep(60)
        return write

    cli._assignments_writer = slow_writer
    sys.exit(cli.main(sys.argv[2:]))
    """
)


def _start_slow_fit(data, out, ready):
    env = dict(os.environ)
    env.pop("PYTHONWARNINGS", None)
    proc = subprocess.Popen(
        [sys.executable, "-c", _SLOW_WRITER, str(ready), "fit", data, "-k", "2", "-c",
         "diag", "--no-plots", "-q", "-o", out],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    deadline = time.monotonic() + 120
    while not os.path.exists(ready):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"the run did not start writing: {proc.communicate()}")
        time.sleep(0.05)
    return proc


def test_sigterm_during_writing_cleans_up_like_ctrl_c(data, tmp_path):
    """Repro: SIGTERM during writing left hidden .tmp files that were never removed."""
    out = tmp_path / "out"
    with staged_outputs(str(out)) as earlier:
        earlier.stage("model.json", "earlier run")
        earlier.commit()
    proc = _start_slow_fit(data, str(out), tmp_path / "ready")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "gaussmix: terminated" in err
    # nothing staged is left, nothing replaced
    assert sorted(os.listdir(out)) == [MANIFEST, "model.json"]
    assert (out / "model.json").read_text() == "earlier run"


def test_leftovers_of_a_killed_run_are_cleaned_by_the_next(data, tmp_path, capsys):
    """Repro: SIGKILL during writing left hidden 8-100 MB .tmp files, never removed."""
    out = tmp_path / "out"
    proc = _start_slow_fit(data, str(out), tmp_path / "ready")
    proc.kill()
    proc.communicate(timeout=60)
    leftovers = _hidden(out)
    assert len(leftovers) == 1 and leftovers[0].startswith(STAGING_PREFIX)
    # A leftover of a gaussmix version that staged file by file is cleaned as well.
    stale = out / ".assignments.csv.abc123.tmp"
    stale.write_text("partial")
    os.utime(stale, (time.time() - 60, time.time() - 60))
    assert cli.main(["fit", data, "-k", "2", "-c", "diag", "--no-plots", "-o", str(out)]) == 0
    assert _hidden(out) == []
    assert sorted(os.listdir(out)) == [MANIFEST, "assignments.csv", "model.json"]
    printed = capsys.readouterr().out
    cleaned = printed.split("cleaned up (left by an interrupted run):\n", 1)[1]
    assert leftovers[0] in cleaned and ".assignments.csv.abc123.tmp" in cleaned


def test_a_failed_run_into_a_new_folder_leaves_nothing_for_a_waiting_run(tmp_path):
    """The lock survives the first run removing the folder it created (it failed)."""
    target = tmp_path / "new"
    entered = threading.Event()
    results = {}

    def failing():
        try:
            with staged_outputs(str(target)) as out:
                out.stage("model.json", "x")
                entered.set()
                time.sleep(0.5)
                raise RuntimeError("failed")
        except RuntimeError:
            results["first"] = "failed"

    t = threading.Thread(target=failing)
    t.start()
    entered.wait(30)
    with staged_outputs(str(target)) as out:
        out.stage("model.json", "second")
        out.commit()
    t.join(30)
    assert results == {"first": "failed"}
    assert sorted(os.listdir(target)) == [MANIFEST, "model.json"]
    assert (target / "model.json").read_text() == "second"


def test_atomic_write_removes_a_killed_writers_temporary_file(tmp_path):
    """A temporary file of a killed `predict -o x.csv` is removed by the next write of x.csv;
    one whose writer is alive (it holds the file's lock) is kept."""
    import fcntl

    from gaussmix.io import write_atomic

    stale, live = tmp_path / ".x.csv.dead.tmp", tmp_path / ".x.csv.live.tmp"
    for path in (stale, live):
        path.write_text("partial")
        os.utime(path, (time.time() - 60, time.time() - 60))
    with open(live) as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        write_atomic(tmp_path / "x.csv", "new")
        assert sorted(os.listdir(tmp_path)) == [".x.csv.live.tmp", "x.csv"]
    assert (tmp_path / "x.csv").read_text() == "new"


def test_a_publication_cut_short_by_a_kill_is_completed_by_the_next_run(tmp_path):
    """SIGKILL between two renames of a publication: the killed run's journal lets the next
    run finish it, so the folder never stays a mix of two runs."""
    target = tmp_path / "out"
    names = ("model.json", "assignments.csv", "selection.csv")
    publish_outputs(target, names, "first run")
    # The second run was killed after renaming model.json, before assignments.csv.
    staging = target / f"{STAGING_PREFIX}killed"
    staging.mkdir()
    (staging / ".publishing.json").write_text(json.dumps(["model.json", "assignments.csv"]))
    (staging / "assignments.csv").write_text("second run")
    (target / "model.json").write_text("second run")
    # A third run fails before publishing anything of its own.
    with pytest.raises(RuntimeError), staged_outputs(str(target), outputs=names) as out:
        out.stage("model.json", "third run")
        raise RuntimeError("the third run fails")
    contents = _contents(target)
    assert contents == {"model.json": "second run", "assignments.csv": "second run"}
    assert out.removed == [str(target / "selection.csv")]
    # The completed set is recorded as gaussmix's: a later run replaces and removes it.
    with staged_outputs(str(target), outputs=names) as out:
        out.stage("selection.csv", "fourth run")
        out.commit()
    assert _contents(target) == {"selection.csv": "fourth run"}


def test_a_killed_publication_is_completed_and_recorded(tmp_path):
    """(New with the record of outputs.) A run killed after its first rename (its journal
    holds the files' records, the folder's record is not yet updated): the next run
    completes it, removes the earlier run's other file, records the new set, and leaves a
    user's file alone."""
    from gaussmix.io import OutputDir

    target = tmp_path / "out"
    names = ("model.json", "assignments.csv", "selection.csv")
    publish_outputs(target, names, "first run")
    (target / "notes.txt").write_text("the user's")
    # Stage a second run by hand, then "kill" it after renaming model.json.
    killed = OutputDir(str(target), outputs=names)
    for name in ("model.json", "assignments.csv"):
        killed.stage(name, "second run")
    journal = {"files": {name: killed._records[name] for name in ("model.json", "assignments.csv")}}
    staging = killed._staging
    with open(os.path.join(staging, ".publishing.json"), "w") as f:
        json.dump(journal, f)
    os.replace(os.path.join(staging, "model.json"), target / "model.json")
    killed._release(remove_staging=False)  # the lock dies with the process
    with staged_outputs(str(target), outputs=names) as out:
        out.stage("selection.csv", "third run")
        out.commit()
    # The third run replaced the completed set: only its file and the user's remain.
    assert _contents(target) == {"selection.csv": "third run", "notes.txt": "the user's"}
    assert sorted(os.path.basename(p) for p in out.removed) == [
        "assignments.csv", "model.json", "selection.csv"]
    assert _hidden(target) == []


# ---------------------------------------------------------------------------------------
# A publication stopped between its renames is completed (reviewer's report on the record)


def _fit_k(data, k, out):
    return cli.main(["fit", data, "-k", str(k), "-c", "diag", "--no-plots", "-q", "-o", out])


def _is_staged(src):
    """A rename of a staged output (not of the record, whose temporary name is hidden)."""
    return STAGING_PREFIX in os.fspath(src) and not os.path.basename(os.fspath(src)).startswith(".")


def test_a_run_stopped_after_its_first_rename_publishes_its_whole_set(
    data, tmp_path, monkeypatch
):
    """Repro: Ctrl-C just after the first rename of `fit -k 3 -o k` left model.json of K=3
    with assignments.csv of K=2 (abort removed the journal), and every later run into k was
    refused: 'k/model.json (changed since gaussmix wrote it) ... move it away'."""
    out = str(tmp_path / "k")
    assert _fit_k(data, 2, out) == 0
    real, renamed = os.replace, []

    def stopped(src, dst):
        real(src, dst)
        if _is_staged(src):
            renamed.append(dst)
            if len(renamed) == 1:
                raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", stopped)
    assert _fit_k(data, 3, out) == 130
    monkeypatch.undo()
    assert len(renamed) > 1  # stopped after the first, then the rest was completed
    assert _n_components(out) == (3, 3)
    assert _hidden(out) == []
    assert _fit_k(data, 2, out) == 0
    assert _n_components(out) == (2, 2)


def test_a_publication_whose_completion_is_stopped_too_is_completed_by_the_next_check(
    data, tmp_path, monkeypatch
):
    """Repro: the same, stopped again while completing: the staging folder and its journal
    must stay for the next run, whose early check (before any fit) completes it first."""
    from gaussmix.io import OutputDir

    out = str(tmp_path / "k")
    assert _fit_k(data, 2, out) == 0
    real, renames = os.replace, []

    def stopped(src, dst):
        if _is_staged(src):
            renames.append(dst)
            if len(renames) > 1:  # a second Ctrl-C, as the completion starts
                raise KeyboardInterrupt
        real(src, dst)
        if _is_staged(src):
            raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", stopped)
    assert _fit_k(data, 3, out) == 130
    monkeypatch.undo()
    assert _n_components(out) == (3, 2)  # the mix a second Ctrl-C leaves on disk
    assert len(_hidden(out)) == 1  # with the journal to complete it
    OutputDir(out, cli.OUTPUT_FILES).check_writable()
    assert _n_components(out) == (3, 3)
    assert _hidden(out) == []


_KILLED_AFTER_FIRST_RENAME = textwrap.dedent(
    """
    import os, sys, time
    from gaussmix import cli

    ready, real = sys.argv[1], os.replace

    def replace(src, dst):
        real(src, dst)
        if ".gaussmix-staging-" in str(src) and not os.path.basename(str(src)).startswith("."):
            open(ready, "w").close()
            time.sleep(120)  # killed here, between the first and the second rename

    os.replace = replace
    sys.exit(cli.main(sys.argv[2:]))
    """
)


def test_a_run_killed_after_its_first_rename_is_completed_by_the_next_command(
    data, tmp_path, capsys
):
    """Repro: `fit -k 3 -o k` killed (SIGKILL) after its first rename left model.json of K=3
    next to assignments.csv of K=2 plus its staging folder, and every later `fit -o k` was
    refused (exit 2) before the code that completes the publication could run."""
    out = str(tmp_path / "k")
    assert _fit_k(data, 2, out) == 0
    ready = tmp_path / "ready"
    env = dict(os.environ)
    env.pop("PYTHONWARNINGS", None)
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLED_AFTER_FIRST_RENAME, str(ready), "fit", data, "-k", "3",
         "-c", "diag", "--no-plots", "-q", "-o", out],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    deadline = time.monotonic() + 120
    while not ready.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"the run did not start publishing: {proc.communicate()}")
        time.sleep(0.05)
    proc.kill()
    proc.communicate(timeout=60)
    assert _n_components(out) == (3, 2)  # the mix the kill left
    staging = _hidden(out)
    assert len(staging) == 1 and staging[0].startswith(STAGING_PREFIX)
    capsys.readouterr()
    assert cli.main(["fit", data, "-k", "2", "-c", "diag", "--no-plots", "-o", out]) == 0
    captured = capsys.readouterr()
    assert "changed since" not in captured.err
    assert _n_components(out) == (2, 2)
    assert _hidden(out) == []
    cleaned = captured.out.split("cleaned up (left by an interrupted run):\n", 1)[1]
    assert staging[0] in cleaned


def test_the_early_check_waits_for_a_run_that_is_publishing(tmp_path):
    """Repro: a run's check before its work read the folder without the lock: between
    another run's renames and its record, it refused that run's files ('changed since
    gaussmix wrote it') instead of waiting."""
    from gaussmix.io import OutputDir, OutputError

    target = tmp_path / "out"
    names = ("model.json", "assignments.csv")
    publish_outputs(target, names, "first")
    renamed, go_on = threading.Event(), threading.Event()

    def publishing():
        with staged_outputs(str(target), outputs=names) as out:
            for name in names:
                out.stage(name, "the second run")
            record = out._write_manifest

            def paused(records, staging):  # renamed, not yet recorded
                renamed.set()
                go_on.wait(30)
                record(records, staging)

            out._write_manifest = paused
            out.commit()

    writer = threading.Thread(target=publishing)
    writer.start()
    assert renamed.wait(30)
    waited, result = threading.Event(), {}

    def check():
        try:
            OutputDir(str(target), names, on_wait=lambda d: waited.set()).check_writable()
            result["ok"] = True
        except OutputError as exc:
            result["error"] = str(exc)

    checker = threading.Thread(target=check)
    checker.start()
    while not waited.is_set() and checker.is_alive():
        time.sleep(0.01)
    go_on.set()
    writer.join(30)
    checker.join(30)
    assert waited.is_set()
    assert result == {"ok": True}
    assert _contents(target) == dict.fromkeys(names, "the second run")


def test_removed_and_cleaned_paths_are_printed_escaped(data, tmp_path, capsys):
    """Repro: the 'removed:' list printed a folder name's control characters raw (a
    terminal escape sequence), unlike the 'wrote:' list."""
    out = str(tmp_path / "out\x1b[31m")
    assert cli.main(["fit", data, "-k", "auto", "--components", "1-2", "-c", "diag",
                     "--no-plots", "-q", "-o", out]) == 0
    capsys.readouterr()
    assert cli.main(["fit", data, "-k", "2", "-c", "diag", "--no-plots", "-o", out]) == 0
    printed = capsys.readouterr().out
    assert "\x1b" not in printed
    removed = printed.split("removed (written by an earlier run, not by this one):\n", 1)[1]
    assert "out\\x1b[31m" in removed and "selection.csv" in removed
