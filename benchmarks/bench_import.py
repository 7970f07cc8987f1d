"""Time to import the backdrop layer against importing torch alone, each in a fresh interpreter.

Every statement runs in its own new Python process, which times the statement itself (not the
interpreter's start-up) and prints the seconds. The statements are run in interleaved rounds, the
order rotating from round to round, after one unrecorded warm-up round (it fills the file cache);
the table gives the median over the rounds, and the ratio to ``import torch`` both as a ratio of
medians and as the median of each round's ratio (steadier on a loaded machine).

    python benchmarks/bench_import.py                      # 15 rounds
    python benchmarks/bench_import.py --before /tmp/head   # also a tree of an earlier commit

``--before`` times the same statements with another copy of the sources first on ``sys.path``
(e.g. ``git archive HEAD~1 backdrop msgp | tar -x -C /tmp/head``), for a before/after table.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

STATEMENTS = [
    "import torch",
    "import torch; import backdrop",
    "import torch; from backdrop import Backdrop",
    "import torch; import backdrop.models",
]


def seconds(statement: str, path: Path, cwd: str) -> float:
    """Seconds ``statement`` takes in a fresh interpreter that imports the sources in ``path``."""
    # Run from an empty directory: ``python -c`` puts the working directory first on sys.path,
    # ahead of PYTHONPATH.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(path), os.environ.get("PYTHONPATH")]))}
    script = f"import time; t = time.perf_counter(); {statement}; print(time.perf_counter() - t)"
    done = subprocess.run([sys.executable, "-c", script], cwd=cwd, env=env, capture_output=True, text=True,
                          check=True)
    return float(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--before", help="a source tree of an earlier commit, timed beside this one")
    args = parser.parse_args()

    trees = [("", ROOT)] + ([("before: ", Path(args.before).resolve())] if args.before else [])
    cases = [(label + statement, statement, path) for label, path in trees for statement in STATEMENTS]
    times: dict[str, list[float]] = {name: [] for name, _, _ in cases}
    with tempfile.TemporaryDirectory() as cwd:
        for round_ in range(args.rounds + 1):
            shift = round_ % len(cases)
            for name, statement, path in cases[shift:] + cases[:shift]:
                t = seconds(statement, path, cwd)
                if round_ > 0:
                    times[name].append(t)

    torch_alone = times["import torch"]
    print(f"| statement, fresh interpreter ({args.rounds} interleaved rounds) | median (s) | min (s) "
          f"| beyond import torch (s) | ratio of medians | median of per-round ratios |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, _, _ in cases:
        median, base = statistics.median(times[name]), statistics.median(torch_alone)
        per_round = statistics.median(t / b for t, b in zip(times[name], torch_alone))
        print(f"| `{name}` | {median:.3f} | {min(times[name]):.3f} | {median - base:+.3f} "
              f"| {median / base:.2f} | {per_round:.2f} |")


if __name__ == "__main__":
    main()
