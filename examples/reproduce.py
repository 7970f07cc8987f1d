"""Train cells of a committed experiment again and compare them with its records: the check that
the code at hand gives the numbers a ``results.csv`` holds.

    python examples/reproduce.py --plan paper128-lean --records results/paper128-v2/results.csv \\
        --cell no-backdrop:2:0 --cell series-nomask:2:0 --out /tmp/reproduce

A cell is METHOD:PER_CLASS:SEED (a method with several mask settings takes a fourth part, the
setting as the tables describe it). Each is trained exactly as ``msgp experiment`` trains it, on
the plan's validation and report sets (generated into ``--out``, or reused from there), and every
accuracy column of its results.csv row is printed beside the recorded one. The exit code is 0
when all agree to 1e-9, 1 otherwise. Runs train with one torch thread, as each run of
``msgp experiment --jobs 2`` (how the committed plans ran) does: another thread count sums in
another order, and a run's numbers then differ in the last bits, and after training, in more.
"""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import torch

from backdrop import experiment
from backdrop.experiment.records import result_row
from confirm import the_run  # examples/confirm.py, beside this file

KEYS = ("method", "masks", "per_class", "seed")


def parse_cell(plan: experiment.ExperimentPlan, text: str) -> experiment.Run:
    """A cell METHOD:PER_CLASS:SEED[:MASKS] as the run the plan trains for it (the masks picked as
    ``examples/confirm.py`` picks them)."""
    method, *numbers = text.split(":", 3)
    if len(numbers) < 2 or not all(n.isdigit() for n in numbers[:2]):
        raise SystemExit(f"--cell must look like METHOD:PER_CLASS:SEED[:MASKS], but got {text!r}")
    if method not in plan.methods or method in experiment.ANCHORS:
        raise SystemExit(f"--cell {text}: {method} is not a network method of the plan")
    if int(numbers[0]) not in plan.sizes:
        raise SystemExit(f"--cell {text}: per class must be one of the plan's sizes {list(plan.sizes)}")
    return the_run(plan, method, int(numbers[0]), int(numbers[1]), numbers[2] if len(numbers) > 2 else None,
                   how="as the cell's fourth part")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--plan", required=True, choices=sorted(experiment.PLANS))
    parser.add_argument("--records", type=Path, required=True, help="the experiment's results.csv")
    parser.add_argument("--cell", action="append", required=True, help="METHOD:PER_CLASS:SEED[:MASKS]")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run (default 1, as the plans ran)")
    parser.add_argument("--jobs", type=int, default=1, help="runs at once, in worker processes of one thread each")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    plan = experiment.PLANS[args.plan]()
    runs = [parse_cell(plan, text) for text in args.cell]
    try:
        with open(args.records, newline="") as f:
            recorded = {tuple(row[k] for k in KEYS): row for row in csv.DictReader(f)}
    except (OSError, KeyError) as err:
        raise SystemExit(f"--records {args.records} is not a readable results.csv: {err}") from None
    validation, test = experiment.prepare_shared_data(plan, args.out)
    results = experiment.execute_runs(runs, plan, args.out, validation, test, args.jobs)
    agree = True
    for result in results.values():
        row = {k: "" if v is None else str(v) for k, v in result_row(result, plan).items()}
        old = recorded.get(tuple(row[k] for k in KEYS))
        if old is None:
            print(f"{result['name']}: no such row in {args.records}")
            agree = False
            continue
        for column in (c for c in old if c.startswith(("train_", "valid_", "test_", "oracle_"))):
            same = abs(float(row[column]) - float(old[column])) <= 1e-9
            agree &= same
            print(f"{result['name']:32s} {column:20s} recorded {float(old[column]):.6f}  now {float(row[column]):.6f}"
                  f"{'' if same else '  DIFFERS'}")
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
