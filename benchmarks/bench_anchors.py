"""Wall time of one experiment run of each anchor beside a network run, on a plan's own data.

    python benchmarks/bench_anchors.py                     # paper128, 2 and 64 images per class
    python benchmarks/bench_anchors.py --plan default3 --sizes 8 --threads 2

Each run is one ``backdrop.experiment.execute`` into a fresh run directory (seed 0), timed as the
experiment times it (``wall_s``: reading the samples, fitting or training, scoring, the oracle);
the oracle's per-process cache is emptied before each. ``scattering`` is timed twice: with an
empty coefficient cache (every image transformed), then with the cache the first run filled (what
every later run of the plan pays). The data files are generated in ``--out/data`` unless there.
Prints a markdown table.
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import torch

from backdrop.experiment import PLANS, execute, make_run, prepare_data
from backdrop.experiment.anchors import scattering_available
from backdrop.training import evaluation


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plan", default="paper128", choices=sorted(PLANS))
    parser.add_argument("--sizes", default="2,64", help="images per class, comma-separated")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--network", default="no-backdrop", help="the network method to time beside the anchors")
    parser.add_argument("--out", type=Path, help="directory with (or for) the plan's data files")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    plan = PLANS[args.plan]()
    out = args.out or Path(tempfile.mkdtemp(prefix="bench_anchors_"))
    validation_path, test_path = prepare_data(plan, out)
    methods = ["whittle", *(["scattering", "scattering"] if scattering_available() else []), args.network]
    print(f"{args.plan}, {args.threads} threads, one run each (seed 0); wall time in seconds\n")
    print("| images per class | " + " | ".join(_label(m, methods[:i]) for i, m in enumerate(methods)) + " |")
    print("|---:|" + "---:|" * len(methods))
    for per_class in (int(v) for v in args.sizes.split(",")):
        cells = []
        shutil.rmtree(out / "cache", ignore_errors=True)
        for method in methods:
            run = make_run(method, per_class, 0)
            shutil.rmtree(out / "runs" / run.name, ignore_errors=True)
            evaluation._ORACLE_SCORES.clear()
            result = execute(run, plan, out, validation_path, test_path)
            cells.append(f"{result['wall_s']:.1f} (joint {result['test_accuracy']['joint']:.3f})")
        print(f"| {per_class} | " + " | ".join(cells) + " |", flush=True)


def _label(method: str, before: list[str]) -> str:
    if method == "scattering":
        return "scattering, warm cache" if "scattering" in before else "scattering, empty cache"
    return method


if __name__ == "__main__":
    main()
