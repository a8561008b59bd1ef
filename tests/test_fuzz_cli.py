"""benchmarks/fuzz_cli.py: a few cases of its random search pass, and its checks catch
what they are for (a traceback, a half-done failure, a short per-row output)."""

import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import fuzz_cli


def test_first_cases_of_seed_0_find_nothing(tmp_path):
    before = dict(fuzz_cli.COUNTS)
    for case in range(4):
        assert fuzz_cli.run_case(0, case, str(tmp_path / f"case{case}")) == []
    # (the cases reach past fit: models written and commands run on them)
    assert fuzz_cli.COUNTS["models"] - before["models"] >= 2
    assert fuzz_cli.COUNTS["commands"] - before["commands"] >= 10


def _fake(returncode, stderr="", rows=None, fit_ok=False):
    """A stand-in for one gaussmix process: its exit code and stderr, and, with ``rows``,
    an -o file of that many data rows written as the real command would (whether it
    succeeds or not). With ``fit_ok``, fit succeeds and writes a model whatever the rest."""
    def run(args, cwd):
        code, err = (0, "") if fit_ok and args[0] == "fit" else (returncode, stderr)
        if args[0] == "fit":
            if code == 0:
                model = Path(args[args.index("-o") + 1])
                model.mkdir(exist_ok=True)
                (model / "model.json").write_text("{}")
        elif rows is not None and "-o" in args:
            out = args[args.index("-o") + 1]
            Path(out).write_text("row,label\n" + "".join(f"{i},0\n" for i in range(rows)))
        return subprocess.CompletedProcess(args, code, "", err)
    return run


@pytest.mark.parametrize("fake, words", [
    (_fake(1, "Traceback (most recent call last):\n  ...\nKeyError: 'x'"), "exit 1"),
    (_fake(2, "something went wrong"), "without a one-line message"),
    (_fake(3, "gaussmix: error: x"), "exit 3"),
])
def test_a_failing_command_is_a_problem(monkeypatch, tmp_path, fake, words):
    monkeypatch.setattr(fuzz_cli, "_gaussmix", fake)
    problems = fuzz_cli.run_case(0, 0, str(tmp_path))
    assert problems and words in problems[0]


def test_outputs_are_checked(monkeypatch, tmp_path):
    # every command succeeds and writes 2 rows: per-row outputs and samples come out short
    monkeypatch.setattr(fuzz_cli, "_gaussmix", _fake(0, rows=2))
    problems = fuzz_cli.run_case(0, 1, str(tmp_path / "a"))
    assert any("rows written for" in p for p in problems), problems
    # the commands after fit fail yet leave their -o file
    monkeypatch.setattr(fuzz_cli, "_gaussmix", _fake(2, "gaussmix: error: no", 1, True))
    problems = fuzz_cli.run_case(0, 1, str(tmp_path / "b"))
    assert any("failed (exit 2) and left" in p for p in problems), problems
    # ... or succeed without writing it
    monkeypatch.setattr(fuzz_cli, "_gaussmix", _fake(0, fit_ok=True))
    problems = fuzz_cli.run_case(0, 1, str(tmp_path / "c"))
    assert any("without writing" in p for p in problems), problems
