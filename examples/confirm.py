"""Confirm one comparison of an experiment on fresh seeds: a hint from a plan's tables (one
interval among many that excludes zero) is retested on seeds the plan never used, so the
confirmation is not chosen by the data it reports.

    python examples/confirm.py --plan paper128-lean --method series --reference series-nomask \\
        --per-class 4 --seeds 10-19 --jobs 2 --out results/paper128-v2-confirm

Each seed trains both methods on its own generated images (seeds 10 to 19 draw images no run of
the plan's seeds 0 to 9 saw), exactly as `msgp experiment` trains that cell: same budget, same
validation and report sets (their seeds are the plan's), same scoring. It prints the paired
difference in joint accuracy on the report set, with its 95% t interval, and writes it to
``confirm.json`` in ``--out``. Finished runs are kept: rerun the command to resume.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from backdrop import experiment
from backdrop.experiment.statistics import compare, run_fitted
from msgp.atomic import atomic_write


def parse_seeds(text: str) -> range:
    first, _, last = text.partition("-")
    try:
        seeds = range(int(first), int(last or first) + 1)
    except ValueError:
        raise SystemExit(f"--seeds must be FIRST-LAST (say 10-19), but got {text!r}") from None
    if len(seeds) < 2 or seeds.start < 0:
        raise SystemExit(f"--seeds needs at least two seeds from 0 up, but got {text!r}")
    return seeds


def the_run(plan: experiment.ExperimentPlan, method: str, per_class: int, seed: int, masks: str | None,
            how: str = "with --masks"):
    settings = plan.settings(method) or (None,)
    if masks is not None:
        settings = tuple(s for s in settings if s is not None and s.describe() == masks)
    if len(settings) != 1:
        known = ", ".join(repr(s.describe()) for s in plan.settings(method))
        raise SystemExit(f"{method} has the settings {known} in this plan: name one {how}")
    return experiment.make_run(method, per_class, seed, settings[0])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--plan", default="paper128-lean", choices=sorted(experiment.PLANS))
    parser.add_argument("--method", required=True)
    parser.add_argument("--reference", required=True)
    parser.add_argument("--masks", help="the method's setting, as the tables describe it, where it has several")
    parser.add_argument("--per-class", type=int, required=True)
    parser.add_argument("--seeds", type=parse_seeds, default=parse_seeds("10-19"))
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    plan = experiment.PLANS[args.plan]()
    for name in (args.method, args.reference):
        if name not in plan.methods or name in experiment.ANCHORS:
            raise SystemExit(f"{name} is not a network method of --plan {args.plan}")
    if args.per_class not in plan.sizes:
        raise SystemExit(f"--per-class must be one of the plan's sizes {list(plan.sizes)}, but got {args.per_class}")
    if args.jobs < 1:
        raise SystemExit(f"--jobs must be at least 1, but got {args.jobs}")
    todo = [the_run(plan, m, args.per_class, s, args.masks if m == args.method else None)
            for s in args.seeds for m in (args.method, args.reference)]
    validation, test = experiment.prepare_shared_data(plan, args.out)
    results = list(experiment.execute_runs(todo, plan, args.out, validation, test, args.jobs).values())
    finished = [r for r in results if r["status"] == "finished"]
    rows = compare(finished, args.method, args.reference, args.per_class, plan.spec.n_scales)
    joint = next(row for row in rows if row["accuracy"] == "joint")
    unfitted = [r["name"] for r in finished if not run_fitted(r)]
    summary = {"plan": args.plan, "method": args.method, "reference": args.reference, "per_class": args.per_class,
               "seeds": [args.seeds.start, args.seeds.stop - 1], "joint": joint, "per_scale": rows[1:],
               "runs": len(results), "failed": len(results) - len(finished), "not_fitted": unfitted}
    atomic_write(args.out / "confirm.json", json.dumps(summary, indent=2) + "\n")
    mark = " (excludes zero)" if joint["effect"] else ""
    print(f"{args.method} - {args.reference} at {args.per_class} per class, seeds {args.seeds.start}-{args.seeds.stop - 1} "
          f"({joint['n']} pairs): joint {joint['mean']:+.3f} [{joint['low']:+.3f}, {joint['high']:+.3f}]{mark}; "
          f"runs not fitted: {len(unfitted)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
