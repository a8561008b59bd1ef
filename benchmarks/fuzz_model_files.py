"""Fuzz the model-file reader for longer than the test suite does, and count the outcomes.

Every case is one mutation of a valid model file of one covariance family and dtype (the
strategies of ``tests/model_mutations.py``, shared with ``tests/test_model_fuzz.py``). A
strict reader gives one of two outcomes: the file is refused with a ModelFileError (counted
by the field it names) or it loads as a model predicting exactly what the original does.
Anything else is counted by its exception type ("different predictions" for a model that
loads but predicts otherwise) and the first few are shown.

    python benchmarks/fuzz_model_files.py                 # 20000 files
    python benchmarks/fuzz_model_files.py -n 2000 --seed 1

Exit code 1 if any file had another outcome.
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import time
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, os.pardir, "tests"))

from hypothesis import HealthCheck, given, seed, settings  # noqa: E402

from model_mutations import mutated_files, outcome  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--n-files", type=int, default=20000, help="files to try")
    parser.add_argument("--seed", type=int, default=0, help="hypothesis seed")
    parser.add_argument("--show", type=int, default=5, help="unexpected outcomes to print")
    args = parser.parse_args(argv)

    counts: collections.Counter[str] = collections.Counter()
    unexpected: collections.Counter[str] = collections.Counter()
    examples: list[str] = []

    @seed(args.seed)
    @settings(
        max_examples=args.n_files,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(mutated_files())
    def run(case_description_data):
        case, description, data = case_description_data
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                counts[outcome(case, data)] += 1
        except AssertionError:
            kind = "different predictions"
        except Exception as exc:  # counted: this is what the fuzzing looks for
            kind = type(exc).__name__
        else:
            return
        unexpected[kind] += 1
        if len(examples) < args.show:
            examples.append(f"  {kind}: {case[0]}/{case[1]}, {description}")

    start = time.perf_counter()
    run()
    seconds = time.perf_counter() - start
    total = sum(counts.values()) + sum(unexpected.values())
    print(f"model files tried: {total} ({seconds:.1f} s, hypothesis seed {args.seed})")
    refused = sum(v for k, v in counts.items() if k.startswith("refused"))
    print(f"  refused with ModelFileError: {refused}")
    for key, value in sorted(counts.items(), key=lambda kv: -kv[1]):
        if key.startswith("refused"):
            print(f"    {key[len('refused: '):]:<28} {value}")
    print(f"  loaded, same predictions:    {counts['same predictions']}")
    print(f"  anything else:               {sum(unexpected.values())}")
    for key, value in sorted(unexpected.items(), key=lambda kv: -kv[1]):
        print(f"    {key:<28} {value}")
    if examples:
        print("first unexpected outcomes:")
        print("\n".join(examples))
    return 1 if unexpected else 0


if __name__ == "__main__":
    sys.exit(main())
