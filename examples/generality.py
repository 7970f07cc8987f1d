"""Does `msgp train` with its defaults learn every kind of dataset `msgp generate` makes? Train each
kind over a few seeds and check the targets run by run.

    python examples/generality.py                       # every kind, 3 seeds, into runs/generality
    python examples/generality.py --kinds 1d,3d --seeds 1 --md docs/results/generality.md

A kind is one change from the default dataset (2-D, 128², three scales of two candidates, squared
exponential, `theory` normalisation): 1-D and 3-D fields, 1 to 5 scales, three candidates per
scale, both Matérn kernels, `sample` normalisation. Each kind's data are written once to
OUT/data/KIND.h5 (1024 samples, or the nearest multiple of its class count above), and each run is
`msgp train DATA --seed S` with every other setting at its default. The targets, per run: every
scale's test accuracy at least 95% of the oracle's on the same test images and the joint accuracy
at least 90% of it, within 10 minutes on 2 CPU cores (the wall time, or the run's CPU time where
the machine was shared and that is smaller: an upper bound on its time on 2 idle cores). Finished
runs are skipped.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from msgp.atomic import atomic_write

# Each kind: the `msgp generate` options that make it (beside --n and -o).
KINDS = {
    "default": [],
    "1d": ["--ndim", "1", "--size", "2048"],
    "3d": ["--ndim", "3", "--size", "32", "--scales", "2", "--lengths", "1.2,1.5;3,4.5"],
    "k1": ["--scales", "1"],
    "k2": ["--scales", "2"],
    "k4": ["--scales", "4"],
    "k5": ["--scales", "5"],
    "m3": ["--scales", "2", "--lengths", "1.5,2,2.7;8,11,15"],
    "matern32": ["--kernel", "matern32"],
    "matern52": ["--kernel", "matern52"],
    "sample": ["--normalize", "sample"],
}
TIME_LIMIT = 600.0  # seconds a run may take on 2 CPU cores


def data(kind: str, out: Path) -> Path:
    """The kind's dataset, generated on first use."""
    path = out / "data" / f"{kind}.h5"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "cli", "generate", *KINDS[kind], "--n", "1024", "-o", str(path)],
                       check=True, stdout=subprocess.DEVNULL)
    return path


def train(kind: str, seed: int, out: Path, extra: list[str]) -> Path:
    """One run of `msgp train` with its defaults (unless finished); its directory."""
    run = out / f"{kind}-s{seed}"
    if not (run / "summary.json").exists():
        started, cpu = time.perf_counter(), _child_cpu()
        command = [sys.executable, "-m", "cli", "train", str(data(kind, out)), "--seed", str(seed), "--out", str(run),
                   *extra, *(["--resume"] if (run / "config.json").exists() else [])]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        # The machine may be shared: the run's own CPU time and the load beside it tell how much.
        atomic_write(run / "wall.json", json.dumps({"seconds": time.perf_counter() - started,
                                                    "cpu_seconds": _child_cpu() - cpu,
                                                    "load5": os.getloadavg()[1]}) + "\n")
    return run


def _child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def check(run: Path) -> dict:
    """The targets of one finished run."""
    summary = json.loads((run / "summary.json").read_text())
    wall_path = run / "wall.json"
    timing = json.loads(wall_path.read_text()) if wall_path.exists() else {}
    wall = timing.get("seconds", math.nan)
    test, oracle = summary["test_accuracy"], summary["oracle_accuracy"]
    ratios = [t / o for t, o in zip(test["scales"], oracle["scales"])]
    joint = test["joint"] / oracle["joint"]
    time = _time(wall, timing)
    return {"test": test, "oracle": oracle, "ratios": ratios, "joint_ratio": joint, "wall": wall,
            "cpu": timing.get("cpu_seconds", math.nan), "load": timing.get("load5", math.nan), "time": time,
            "unlearned": [s for s, v in enumerate(summary["learned"]) if not v["learned"]],
            "ok": min(ratios) >= 0.95 and joint >= 0.9 and not time > TIME_LIMIT}


def _time(wall: float, timing: dict) -> float:
    """A run's time on 2 idle cores: its wall time, or its CPU time where smaller. On a machine
    shared with other work the wall time counts the waiting for a core; the CPU time does not, and
    bounds the wall time on idle cores from above for a run that waits on nothing but the CPU (its
    threads share the work, so it takes at most as long as one thread doing all of it)."""
    cpu = timing.get("cpu_seconds", math.nan)
    return min(wall, cpu) if not math.isnan(cpu) else wall


def table(rows: dict[tuple[str, int], dict]) -> str:
    lines = ["| kind | seed | joint (oracle) | per scale / oracle, finest first | joint / oracle | not learned | wall | CPU | load | targets |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for (kind, seed), r in rows.items():
        lines.append(f"| {kind} | {seed} | {r['test']['joint']:.3f} ({r['oracle']['joint']:.3f}) | "
                     + " / ".join(f"{x:.3f}" for x in r["ratios"]) + f" | {r['joint_ratio']:.3f} | "
                     + (", ".join(f"scale {s}" for s in r["unlearned"]) or "none")
                     + f" | {r['wall'] / 60:.1f} min | {r['cpu'] / 60:.1f} min | {r['load']:.1f} | {'met' if r['ok'] else 'missed'} |")
    return "\n".join(lines)


def per_kind(rows: dict[tuple[str, int], dict]) -> str:
    """Each kind over its seeds: how many met the targets, the worst scale's ratio and the joint ratio."""
    lines = ["| kind | seeds meeting the targets | worst scale / oracle, mean (lowest) | joint / oracle, mean ± sd | time, mean |",
             "|---|---|---|---|---|"]
    for kind in dict.fromkeys(k for k, _ in rows):
        runs = [r for (k, _), r in rows.items() if k == kind]
        worst = [min(r["ratios"]) for r in runs]
        joint = [r["joint_ratio"] for r in runs]
        sd = statistics.stdev(joint) if len(joint) > 1 else math.nan
        lines.append(f"| {kind} | {sum(r['ok'] for r in runs)} of {len(runs)} | {statistics.mean(worst):.3f} "
                     f"({min(worst):.3f}) | {statistics.mean(joint):.3f} ± {sd:.3f} | "
                     f"{statistics.mean(r['time'] for r in runs) / 60:.1f} min |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/generality"))
    parser.add_argument("--kinds", default=",".join(KINDS), help="comma-separated, of: " + ", ".join(KINDS))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--md", type=Path, help="also write the table to this markdown file")
    parser.add_argument("train_options", nargs="*", help="after --: options for every msgp train run")
    args = parser.parse_args()
    kinds = args.kinds.split(",")
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        parser.error(f"unknown kind {unknown[0]!r}; choose from {', '.join(KINDS)}")
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    rows = {(k, s): check(train(k, s, args.out, args.train_options)) for k in kinds for s in range(args.seeds)}
    text = per_kind(rows) + "\n\n" + table(rows)
    print(text)
    if args.md is not None:
        atomic_write(args.md, f"# Generality of the defaults\n\n`python examples/generality.py --kinds {args.kinds} "
                              f"--seeds {args.seeds}`\n\n{text}\n")


if __name__ == "__main__":
    main()
