"""Writing outputs never destroys what gaussmix did not write (reviewer's data-loss report).

1. An output folder's files are replaced or removed only if a gaussmix run recorded them
   (``.gaussmix-outputs.json``); a user's file of an output name, or an input of the run,
   is refused with its name and the fix before anything is written.
2. Every destination is checked before the first rename: a run never half-publishes.
3. Single-file writes (``atomic_path``: ``predict -o``, ``save``) write devices and FIFOs
   directly, follow symbolic links, and keep an existing file's permissions.
4. ``save`` and ``load`` errors name the user's path and the fix, never a temporary file.

Each test reproduces a defect of the code before the change (its docstring says what
happened) and failed there, except the two guards of the new record (a record naming files
outside the folder; --resume continuing its model in place), which say so.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import subprocess
import sys

import numpy as np
import pytest

from conftest import publish_outputs
from gaussmix import GaussianMixture, cli, load
from gaussmix.io import MANIFEST, OutputError, atomic_path, staged_outputs, write_atomic

pytestmark = pytest.mark.skipif(os.name != "posix", reason="devices, FIFOs, modes: POSIX")

FAITHFUL = os.path.join(os.path.dirname(cli.__file__), "datasets", "data", "faithful.csv")


def _fit(*args):
    return cli.main(["fit", *map(str, args), "-q", "--no-plots"])


@pytest.fixture(scope="module")
def model():
    X = np.random.default_rng(0).normal(size=(60, 2))
    return GaussianMixture(2, random_state=0, max_iter=20).fit(X)


@pytest.fixture()
def data(tmp_path):
    path = tmp_path / "data.csv"
    with open(FAITHFUL, "rb") as f:
        path.write_bytes(f.read())
    return path


# ---------------------------------------------------------------------------------------
# 1. Only files gaussmix recorded are replaced or removed


def test_users_files_with_output_names_are_refused_not_deleted(data, tmp_path, capsys):
    """Repro: `fit u/data.csv -k 3 -o u` deleted the user's u/selection.csv and u/bic.png
    ("written by an earlier run")."""
    u = tmp_path / "u"
    u.mkdir()
    (u / "data.csv").write_bytes(data.read_bytes())
    (u / "selection.csv").write_text("mine")
    (u / "bic.png").write_text("mine too")
    assert cli.main(["fit", str(u / "data.csv"), "-k", "3", "-q", "-o", str(u)]) == 2
    err = capsys.readouterr().err
    assert str(u / "selection.csv") in err and str(u / "bic.png") in err
    assert "(not recorded in .gaussmix-outputs.json)" in err
    assert "move them away" in err and "-o" in err
    assert sorted(os.listdir(u)) == ["bic.png", "data.csv", "selection.csv"]
    assert (u / "selection.csv").read_text() == "mine"
    assert (u / "bic.png").read_text() == "mine too"


@pytest.mark.parametrize("name", ["selection.csv", "assignments.csv", "model.json"])
def test_an_input_among_the_outputs_is_refused_before_anything_is_written(
    data, tmp_path, monkeypatch, capsys, name
):
    """Repro: `cp data.csv selection.csv; fit selection.csv -k 2 -o .` deleted the input;
    with assignments.csv it was silently overwritten."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / name).write_bytes(data.read_bytes())
    before = sorted(os.listdir(tmp_path))
    fits = []
    monkeypatch.setattr(cli, "_fit_one", lambda *a: fits.append(a))
    assert cli.main(["fit", name, "-k", "2", "-q", "-o", "."]) == 2
    err = capsys.readouterr().err
    assert f"the input file {name} is one of the files this run would replace" in err
    assert "move the input elsewhere" in err
    assert fits == []  # refused before the fit, not after it
    assert sorted(os.listdir(tmp_path)) == before
    assert (tmp_path / name).read_bytes() == data.read_bytes()


def test_an_input_that_gaussmix_wrote_is_refused_too(data, tmp_path, capsys):
    """Repro: `fit out/assignments.csv --columns p0,p1 -o out` overwrote its own input (a
    recorded output), and a link to it was no safer."""
    out = tmp_path / "out"
    assert _fit(data, "-k", "2", "-o", out) == 0
    before = (out / "assignments.csv").read_bytes()
    link = tmp_path / "link.csv"
    link.symlink_to(out / "assignments.csv")
    for source in (out / "assignments.csv", link):
        capsys.readouterr()
        assert _fit(source, "--columns", "p0,p1", "-k", "2", "-o", out) == 2
        assert "is one of the files this run would replace" in capsys.readouterr().err
        assert (out / "assignments.csv").read_bytes() == before


def test_a_recorded_file_the_user_changed_is_refused(data, tmp_path, capsys):
    """Repro: a user's own selection.csv copied over gaussmix's was deleted by the next run
    (now the record's size and checksum tell it from gaussmix's)."""
    out = tmp_path / "out"
    assert _fit(data, "-k", "auto", "--components", "1-2", "-c", "diag", "-o", out) == 0
    (out / "selection.csv").write_text("my notes on the selection\n")
    assert _fit(data, "-k", "2", "-o", out) == 2
    err = capsys.readouterr().err
    assert f"{out / 'selection.csv'} (changed since gaussmix wrote it)" in err
    assert (out / "selection.csv").read_text() == "my notes on the selection\n"


def test_a_copied_output_folder_is_still_gaussmixs(data, tmp_path):
    """A copy (new modification times) is recognised by content: the next run replaces it."""
    out = tmp_path / "out"
    assert _fit(data, "-k", "auto", "--components", "1-2", "-c", "diag", "-o", out) == 0
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in os.listdir(out):
        (copy / name).write_bytes((out / name).read_bytes())
    assert _fit(data, "-k", "2", "-o", copy) == 0
    assert sorted(os.listdir(copy)) == [MANIFEST, "assignments.csv", "model.json"]


def test_a_foreign_file_appearing_during_the_run_stops_the_commit(tmp_path):
    """The check is repeated under the lock at commit (the early check can be outrun)."""
    target = tmp_path / "out"
    names = ("model.json", "bic.png")
    with pytest.raises(OutputError, match=r"bic\.png \(not recorded in \.gaussmix-outputs\.json\)"):
        with staged_outputs(str(target), outputs=names) as out:
            out.stage("model.json", "new")
            (target / "bic.png").write_text("the user's")
            out.commit()
    assert sorted(os.listdir(target)) == ["bic.png"]


def test_a_record_naming_files_outside_the_folder_is_ignored(tmp_path):
    """Guard: a hand-made record cannot make gaussmix remove files elsewhere or hidden."""
    target = tmp_path / "out"
    target.mkdir()
    (tmp_path / "victim.txt").write_text("keep")
    (target / ".hidden").write_text("keep")
    record = {"size": 4, "sha256": "0" * 64}
    doc = {"format": "gaussmix-outputs", "version": 1,
           "files": {"../victim.txt": record, ".hidden": record, "/etc/passwd": record}}
    (target / MANIFEST).write_text(json.dumps(doc))
    with staged_outputs(str(target), outputs=["a.txt"]) as out:
        out.stage("a.txt", "new")
        out.commit()
    assert out.removed == []
    assert (tmp_path / "victim.txt").read_text() == "keep"
    assert (target / ".hidden").read_text() == "keep"


def test_stream_fit_refuses_a_users_model_json(data, tmp_path, capsys):
    """Repro: `fit --stream -o dir` replaced a model.json gaussmix had not written."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "model.json").write_text("my own model")
    assert _fit(data, "--stream", "-k", "2", "-c", "diag", "-o", out) == 2
    assert "(not recorded in .gaussmix-outputs.json)" in capsys.readouterr().err
    assert (out / "model.json").read_text() == "my own model"


def test_resume_may_continue_a_model_in_its_own_folder(data, tmp_path):
    """Guard: --resume's model is not an input the outputs must spare (continuing it in
    place is what a checkpointed stream does)."""
    out = tmp_path / "out"
    assert _fit(data, "--stream", "-k", "2", "-c", "diag", "--batch-size", "100",
                "-o", out) == 0
    first = load(out / "model.json").n_batch_iter_
    assert _fit("--resume", out / "model.json", data, "--batch-size", "100", "-o", out) == 0
    assert load(out / "model.json").n_batch_iter_ == 2 * first


# ---------------------------------------------------------------------------------------
# 1b. A folder without a record (written by a gaussmix before it): its outputs taken over

PNG = b"\x89PNG\r\n\x1a\n" + bytes(32)  # the signature every PNG file starts with


def _without_record(folder):
    """The folder as an older gaussmix left it: the same files, no record of them."""
    (folder / MANIFEST).unlink()


def test_a_folder_without_a_record_has_its_outputs_taken_over(data, tmp_path, capsys):
    """Repro: a folder written by the previous gaussmix (no .gaussmix-outputs.json) was
    refused whole: 'model.json (not written by gaussmix) ... move them away'."""
    out = tmp_path / "out"
    assert _fit(data, "-k", "auto", "--components", "1-2", "-c", "diag", "-o", out) == 0
    for name in ("clusters.png", "loglik.png", "bic.png"):
        (out / name).write_bytes(PNG)
    (out / "notes.txt").write_text("the user's")
    _without_record(out)
    capsys.readouterr()
    assert cli.main(["fit", str(data), "-k", "2", "--no-plots", "-o", str(out)]) == 0
    assert sorted(os.listdir(out)) == [MANIFEST, "assignments.csv", "model.json", "notes.txt"]
    printed = capsys.readouterr().out
    removed = printed.split("removed (written by an earlier run, not by this one):\n", 1)[1]
    for name in ("selection.csv", "clusters.png", "loglik.png", "bic.png"):
        assert str(out / name) in removed


def test_resume_continues_a_model_in_a_folder_without_a_record(data, tmp_path):
    """Repro: `fit --resume out/model.json -o out` was refused for a folder of the previous
    gaussmix ('out/model.json (not written by gaussmix)')."""
    out = tmp_path / "out"
    assert _fit(data, "--stream", "-k", "2", "-c", "diag", "--batch-size", "100",
                "-o", out) == 0
    first = load(out / "model.json").n_batch_iter_
    _without_record(out)
    assert _fit("--resume", out / "model.json", data, "--batch-size", "100", "-o", out) == 0
    assert load(out / "model.json").n_batch_iter_ == 2 * first


def test_demo_writes_over_its_folder_from_an_older_version(tmp_path, monkeypatch):
    """Repro: `gaussmix demo` was refused by the demo-output folder an earlier demo of the
    previous version had written (its default folder, so every earlier user was blocked)."""
    monkeypatch.chdir(tmp_path)
    demo = ["demo", "--components", "1-2", "-c", "diag", "--no-plots", "-q"]
    assert cli.main(demo) == 0
    _without_record(tmp_path / "demo-output")
    assert cli.main(demo) == 0
    assert (tmp_path / "demo-output" / MANIFEST).is_file()


@pytest.mark.parametrize("name", ["model.json", "bic.png", "assignments.csv"])
def test_files_not_recognisably_gaussmixs_are_refused_in_a_folder_without_a_record(
    data, tmp_path, capsys, name
):
    """Guard of the takeover: a model file whose checksum does not match, a plot with no
    gaussmix model.json next to it, a CSV with another header are the user's (refused
    before too, with the message 'not written by gaussmix')."""
    out = tmp_path / "out"
    assert _fit(data, "-k", "2", "-o", out) == 0
    _without_record(out)
    if name == "model.json":  # edited by hand
        doc = json.loads((out / "model.json").read_text())
        doc["checksum"] = "0" * 64
        (out / "model.json").write_text(json.dumps(doc))
    elif name == "bic.png":  # a plot of the user's, in a folder without a model.json
        (out / "model.json").unlink()
        (out / "bic.png").write_bytes(PNG)
    else:
        (out / "assignments.csv").write_text("id,cluster\n1,0\n")
    before = (out / name).read_bytes()
    capsys.readouterr()
    assert _fit(data, "-k", "2", "-o", out) == 2
    err = capsys.readouterr().err
    assert f"{out / name} (not recorded in {MANIFEST})" in err
    assert "recognisably its own" in err
    assert (out / name).read_bytes() == before


# ---------------------------------------------------------------------------------------
# 2. Every destination is checked before the first rename


def test_a_folder_in_the_way_publishes_nothing(data, tmp_path, capsys):
    """Repro: a folder at assignments.csv made the run exit 2 after the new model.json
    had replaced the old one (next to the old plots), naming the staging path."""
    out = tmp_path / "out"
    assert _fit(data, "-k", "3", "-o", out) == 0
    before = {n: (out / n).read_bytes() for n in os.listdir(out) if n != "assignments.csv"}
    (out / "assignments.csv").unlink()
    (out / "assignments.csv").mkdir()
    capsys.readouterr()
    assert _fit(data, "-k", "2", "-o", out) == 2
    err = capsys.readouterr().err
    assert f"{out / 'assignments.csv'} (a folder)" in err
    assert ".gaussmix-staging" not in err
    after = {n: (out / n).read_bytes() for n in os.listdir(out) if n != "assignments.csv"}
    assert after == before


def test_commit_checks_every_destination_before_renaming_any(tmp_path):
    """The same at commit (a folder created after the early check): nothing is renamed and
    the error names the real path."""
    target = tmp_path / "out"
    names = ("model.json", "assignments.csv")
    publish_outputs(target, names, "first")
    (target / "assignments.csv").unlink()
    with pytest.raises(OutputError) as caught:
        with staged_outputs(str(target), outputs=names) as out:
            out.stage("model.json", "second")
            out.stage("assignments.csv", "second")
            (target / "assignments.csv").mkdir()
            out.commit()
    assert str(target / "assignments.csv") in str(caught.value)
    assert "staging" not in str(caught.value)
    assert (target / "model.json").read_text() == "first"
    assert not any(n.startswith(".gaussmix-staging") for n in os.listdir(target))


def test_a_replaced_output_keeps_its_permissions(data, tmp_path):
    """Repro: a `chmod 600` model.json in the output folder became 644 on the next run."""
    out = tmp_path / "out"
    assert _fit(data, "-k", "2", "-o", out) == 0
    os.chmod(out / "model.json", 0o600)
    assert _fit(data, "-k", "3", "-o", out) == 0
    assert stat.S_IMODE(os.stat(out / "model.json").st_mode) == 0o600


# ---------------------------------------------------------------------------------------
# 3. Single files: devices, FIFOs, links, permissions


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                    reason="creating a device node needs root")
def test_a_device_is_written_not_replaced(tmp_path, model):
    """Repro: `-o mynull` (a null device node) and save("mynull2") made it a regular file."""
    for name in ("mynull", "mynull2"):
        os.mknod(tmp_path / name, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    write_atomic(tmp_path / "mynull", "row,label\n0,1\n")
    model.save(str(tmp_path / "mynull2"))
    for name in ("mynull", "mynull2"):
        assert stat.S_ISCHR(os.lstat(tmp_path / name).st_mode)
    assert sorted(os.listdir(tmp_path)) == ["mynull", "mynull2"]  # no temporary file


def test_a_fifo_is_written_to_its_reader(tmp_path, model, data):
    """Repro: `predict -o fifo` replaced the FIFO by a regular file; the reader got nothing."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    reader = subprocess.Popen(
        [sys.executable, "-c", "import sys; print(open(sys.argv[1]).read(), end='')", fifo],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        model_dir = tmp_path / "m"
        assert _fit(data, "-k", "2", "-o", model_dir) == 0
        assert cli.main(["predict", str(model_dir), str(data), "-o", str(fifo)]) == 0
        received, _ = reader.communicate(timeout=60)
    finally:
        reader.kill()
    assert received.startswith("row,label") and len(received.splitlines()) == 273
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_a_symbolic_link_is_followed(tmp_path, model):
    """Repro: `-o link.csv` (-> real.csv) replaced the link; real.csv was not written."""
    (tmp_path / "real.csv").write_text("old")
    (tmp_path / "link.csv").symlink_to("real.csv")
    write_atomic(tmp_path / "link.csv", "new")
    assert os.readlink(tmp_path / "link.csv") == "real.csv"
    assert (tmp_path / "real.csv").read_text() == "new"
    # save follows it too, and a dangling link gets its target created.
    (tmp_path / "model.json").symlink_to("saved.json")
    model.save(str(tmp_path / "model.json"))
    assert os.path.islink(tmp_path / "model.json")
    assert load(tmp_path / "saved.json").n_components == 2
    assert sorted(os.listdir(tmp_path)) == ["link.csv", "model.json", "real.csv", "saved.json"]


def test_dev_stdout_is_written_directly(tmp_path, model, data):
    """Repro: `predict -o /proc/self/fd/1` tried to replace the descriptor's link."""
    if not os.path.exists("/proc/self/fd/1"):
        pytest.skip("no /proc/self/fd")
    out = tmp_path / "m"
    assert _fit(data, "-k", "2", "-o", out) == 0
    env = dict(os.environ)
    env.pop("PYTHONWARNINGS", None)
    result = subprocess.run(
        [sys.executable, "-m", "gaussmix", "predict", str(out), str(data), "-o",
         "/proc/self/fd/1"], capture_output=True, text=True, env=env, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("row,label") and len(result.stdout.splitlines()) == 273


def test_an_existing_file_keeps_its_mode_and_a_new_one_follows_the_umask(tmp_path, model):
    """Repro: an existing `chmod 600` output became 644 after write_atomic or save."""
    for name in ("x.csv", "m.json"):
        (tmp_path / name).write_text("old")
        os.chmod(tmp_path / name, 0o600)
    write_atomic(tmp_path / "x.csv", "new")
    model.save(str(tmp_path / "m.json"))
    old = os.umask(0o027)
    try:
        write_atomic(tmp_path / "new.csv", "new")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "x.csv").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "m.json").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "new.csv").st_mode) == 0o640


# ---------------------------------------------------------------------------------------
# 4. Errors name the user's path and the fix


def test_save_into_a_missing_folder_names_it(tmp_path, model):
    """Repro: FileNotFoundError named `.x.json.kjaa9knp.tmp`."""
    path = tmp_path / "nodir" / "x.json"
    with pytest.raises(FileNotFoundError) as caught:
        model.save(str(path))
    message = str(caught.value)
    assert str(path) in message and "does not exist" in message and "create it" in message
    assert ".tmp" not in message


def test_save_onto_a_folder_names_it(tmp_path, model):
    """Repro: IsADirectoryError named `/tmp/.somedir.6312u0px.tmp`, a file next to it."""
    folder = tmp_path / "somedir"
    folder.mkdir()
    with pytest.raises(IsADirectoryError) as caught:
        model.save(str(folder))
    message = str(caught.value)
    assert str(folder) in message and "folder" in message and "file name" in message
    assert ".tmp" not in message
    assert os.listdir(tmp_path) == ["somedir"]


def test_load_of_a_folder_says_so(tmp_path, model):
    """Repro: load(dir) raised a raw IsADirectoryError."""
    model.save(str(tmp_path / "model.json"))
    with pytest.raises(IsADirectoryError, match="it is a folder; give the model file's name") \
            as caught:
        load(tmp_path)
    assert str(tmp_path / "model.json") in str(caught.value)
    with pytest.raises(FileNotFoundError, match=r"model file not found: .*nothere\.json"):
        load(tmp_path / "nothere.json")


def test_a_failed_write_names_the_destination_not_the_temporary_file(tmp_path):
    """An error about the temporary file (disk full, say) is reported for the user's path."""
    target = tmp_path / "x.csv"
    with pytest.raises(OSError) as caught, atomic_path(target) as tmp:
        raise OSError(errno.ENOSPC, "No space left on device", tmp)
    assert caught.value.errno == errno.ENOSPC
    assert caught.value.filename == str(target)
    assert os.listdir(tmp_path) == []
