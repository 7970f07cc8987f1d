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

KEYS = ("method", "masks", "per_class", "seed")


def parse_cell(plan: experiment.ExperimentPlan, text: str) -> experiment.Run:
    method, per_class, seed, *masks = text.split(":", 3)
    settings = [s for s in plan.settings(method) or (None,) if not masks or (s is not None and s.describe() == masks[0])]
    if len(settings) != 1:
        raise SystemExit(f"--cell {text}: {method} has {len(settings)} settings in this plan; name one as a fourth part")
    return experiment.make_run(method, int(per_class), int(seed), settings[0])


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
    with open(args.records, newline="") as f:
        recorded = {tuple(row[k] for k in KEYS): row for row in csv.DictReader(f)}
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
