"""Does `msgp train` converge with its defaults? Train the default dataset over several seeds, with
and without backdrop, and check the targets run by run.

    msgp generate                        # data/msgp.h5, the default dataset
    python examples/convergence.py       # 5 seeds x 2 methods into runs/convergence, resumable

Each run is `msgp train` with its defaults (512 training and 512 test images, 30 epochs, random
symmetries of every training image, test set
scored after every epoch) and `--seed S`, which picks the split and every random stream. The
targets, per run: every scale's test accuracy at least 95% of the oracle's on the same test
images, the joint accuracy at least 90% of the oracle's, and over the last third of the epochs no
scale's test accuracy more than 3 points below its final value. Finished runs are skipped.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from backdrop import experiment, training
from msgp import io

METHODS = {"backdrop": ["--backdrop"], "no-backdrop": ["--no-backdrop"]}


def train(method: str, seed: int, data: Path, out: Path, threads: int) -> float:
    """Train one run (unless finished); its wall time in seconds, 0 when it was already there."""
    run = out / f"{method}-s{seed}"
    if (run / "config.json").exists():
        # A run of another default (say an older --mask-prob) is not this command's: refuse it.
        spec = io.read_spec(data)
        # msgp train's default sizes and epochs, resolved for these data as the trainer resolves them.
        wanted = training.resolve_sizes(training.TrainConfig(data=str(data), backdrop=method == "backdrop", seed=seed),
                                        spec.n_classes, spec.n)
        wanted = training.resolve_epochs(wanted, spec)
        stored = training.read_config(run)
        changed = wanted.changed_from(stored)
        if changed:
            k = changed[0]
            sys.exit(f"{run} was trained with other settings ({k} {getattr(stored, k)!r}, now {getattr(wanted, k)!r}); "
                     "move it away or choose another --out")
    if (run / "summary.json").exists():
        return 0.0
    started = time.perf_counter()
    command = [sys.executable, "-m", "msgp", "train", str(data), *METHODS[method], "--seed", str(seed),
               "--out", str(run), *(["--resume"] if (run / "checkpoint.pt").exists() else [])]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env={**os.environ, "OMP_NUM_THREADS": str(threads)})
    return time.perf_counter() - started


def check(run: Path) -> dict:
    """The targets of one finished run."""
    summary = json.loads((run / "summary.json").read_text())
    records = training.read_metrics(run)
    test, oracle = summary["test_accuracy"], summary["oracle_accuracy"]
    ratios = [t / o for t, o in zip(test["scales"], oracle["scales"])]
    last_third = records[len(records) - len(records) // 3:]
    drops = [max(test["scales"][s] - r["test_accuracy"]["scales"][s] for r in last_third)
             for s in range(len(ratios))]
    return {"test": test, "oracle": oracle, "ratios": ratios, "joint_ratio": test["joint"] / oracle["joint"],
            "max_drop": drops, "ok": min(ratios) >= 0.95 and test["joint"] / oracle["joint"] >= 0.9 and max(drops) <= 0.03}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("data/msgp.h5"))
    parser.add_argument("--out", type=Path, default=Path("runs/convergence"))
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=1, help="runs at once (each gets 2 // jobs threads, at least 1)")
    args = parser.parse_args()
    jobs = [(m, s) for s in range(args.seeds) for m in METHODS]
    threads = max(1, 2 // args.jobs)
    with ThreadPoolExecutor(args.jobs) as pool:
        walls = dict(zip(jobs, pool.map(lambda job: train(*job, args.data, args.out, threads), jobs)))
    rows = {job: check(args.out / f"{job[0]}-s{job[1]}") for job in jobs}
    print("| method | seed | joint (oracle) | per scale / oracle | joint / oracle | largest drop, last third | targets | wall |")
    print("|---|---|---|---|---|---|---|---|")
    for (method, seed), r in rows.items():
        wall = walls[(method, seed)]
        print(f"| {method} | {seed} | {r['test']['joint']:.3f} ({r['oracle']['joint']:.3f}) | "
              + " / ".join(f"{x:.3f}" for x in r["ratios"]) + f" | {r['joint_ratio']:.3f} | "
              + " / ".join(f"{x:.3f}" for x in r["max_drop"]) + f" | {'met' if r['ok'] else 'missed'} | "
              + (f"{wall / 60:.1f} min |" if wall else "(earlier) |"))
    print()
    K = len(next(iter(rows.values()))["ratios"])
    names = ["joint"] + [f"scale {s}" for s in range(K)]
    seeds = range(args.seeds)
    print("backdrop minus no-backdrop, paired by seed, mean [95% interval]:")
    for i, name in enumerate(names):
        get = (lambda r: r["test"]["joint"]) if i == 0 else (lambda r, s=i - 1: r["test"]["scales"][s])
        d = experiment.paired_difference([get(rows[("backdrop", s)]) for s in seeds],
                                         [get(rows[("no-backdrop", s)]) for s in seeds])
        print(f"  {name}: {d['mean']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]" + (" (effect)" if d["effect"] else ""))
    for method in METHODS:
        joint = np.array([rows[(method, s)]["joint_ratio"] for s in seeds])
        print(f"{method}: targets met in {sum(rows[(method, s)]['ok'] for s in seeds)} of {args.seeds} seeds; "
              f"joint / oracle {joint.mean():.3f} ± {joint.std(ddof=1):.3f}")


if __name__ == "__main__":
    main()
