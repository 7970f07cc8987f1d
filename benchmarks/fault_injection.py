"""Fault injection: SIGKILL `msgp train` and `msgp experiment` at random moments, resume, and
check that the result is the uninterrupted one's.

For each part the script first runs the command uninterrupted (the reference, whose wall time T
sets the range of the moments), then, for each of ``--kills`` moments drawn uniformly in
``[0, T)`` from ``--seed`` (as fractions of T, where T becomes the shortest uninterrupted run seen
so far: a command that ended before its kill came was one), starts the command afresh in its own
directory, SIGKILLs its whole process group at that moment (the pool's workers too, as a power cut
or a job scheduler would), checks that every file left behind is readable, resumes, and compares
the final result with the reference's:

- ``train``: `msgp train` (backdrop, symmetries, a test score every 2 epochs) on a dataset
  description whose samples are generated as they are read; resumed with
  ``msgp train --resume --out DIR`` (started again when the kill came before its config.json
  existed: there is no run to resume). Compared: the final checkpoint's weights (state dicts bit-identical), its epoch
  and step, metrics.jsonl and summary.json without their images/s.
- ``experiment``: ``msgp experiment --plan smoke --jobs 2``; resumed by running the same command
  again. Compared: the same for every run directory, each result.json without wall_s, the data
  files' samples, and results.csv (without its wall_s column), results.md, comparisons.csv and
  comparisons.md bit-identical.

Readable after a kill: every ``.json`` parses, every line of ``metrics.jsonl`` parses, every
``checkpoint.pt`` loads (:func:`backdrop.training.load_checkpoint`), every ``.h5`` file's header
reads, every ``.csv`` parses and every ``.png`` ends with its IEND chunk. An atomic write's
leftover temporary file (``*.tmp``) is not a result file and is not counted.

    python benchmarks/fault_injection.py --kills 50 --md faults.md   # both parts, 50 kills each
    python benchmarks/fault_injection.py --part train --kills 5
"""
from __future__ import annotations

import argparse
import csv
import io as text_io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from backdrop import training  # noqa: E402
from msgp import io  # noqa: E402
from msgp.spec import DatasetSpec  # noqa: E402

PARTS = ("train", "experiment")
PNG_END = b"IEND\xaeB`\x82"
# Timings, which differ between any two runs.
WALL_KEYS = ("images_per_s", "wall_s")
TABLES = ("results.csv", "results.md", "comparisons.csv", "comparisons.md")


def train_command(spec_path: Path, out: Path) -> list[str]:
    return ["train", str(spec_path), "--backdrop", "--mask-prob", "0.5", "--n-train", "64", "--n-test", "16",
            "--epochs", "12", "--batch-size", "8", "--eval-every", "2", "--width", "8", "--device", "cpu",
            "--seed", "0", "--out", str(out)]


def experiment_command(out: Path) -> list[str]:
    return ["experiment", "--plan", "smoke", "--jobs", "2", "--out", str(out)]


def msgp(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "cli", *args]


def _environment() -> dict[str, str]:
    # One thread per process, as the experiment's workers have: the same reduction order in every
    # run, and no oversubscription of the cores.
    return {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
            "OMP_NUM_THREADS": "1"}


def run_to_end(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(msgp(args), cwd=ROOT, env=_environment(), capture_output=True, text=True)


def kill_at(args: list[str], moment: float) -> float | None:
    """Start ``msgp args`` and SIGKILL its process group ``moment`` seconds later; returns ``None``
    when the kill landed, else the seconds the command took (it had ended: an uninterrupted run)."""
    started = time.perf_counter()
    process = subprocess.Popen(msgp(args), cwd=ROOT, env=_environment(), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        process.wait(timeout=moment)
        return time.perf_counter() - started
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        return None
    finally:
        # The pool's workers may outlive the parent by an instant; wait until the group is gone.
        for _ in range(200):
            try:
                os.killpg(process.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)


# Readable files ------------------------------------------------------------------------------------

def unreadable(directory: Path) -> list[str]:
    """The files under ``directory`` that a reader cannot use, each with the reason."""
    problems = []
    for path in sorted(p for p in directory.rglob("*") if p.is_file() and not p.name.endswith(".tmp")):
        try:
            if path.suffix == ".json":
                json.loads(path.read_text())
            elif path.name == "metrics.jsonl":
                for line in path.read_text().splitlines():
                    json.loads(line)
            elif path.suffix == ".pt":
                training.load_checkpoint(path)
            elif path.suffix == ".h5":
                io.read_spec(path)
            elif path.suffix == ".csv":
                rows = list(csv.reader(text_io.StringIO(path.read_text())))
                if any(len(row) != len(rows[0]) for row in rows):
                    raise ValueError("rows of unequal length")
            elif path.suffix == ".png" and not path.read_bytes().endswith(PNG_END):
                raise ValueError("no IEND chunk")
        except Exception as err:  # whatever the reader raises, the file is unusable
            problems.append(f"{path.relative_to(directory)}: {str(err).splitlines()[0][:120] if str(err) else type(err).__name__}")
    return problems


# Comparisons ---------------------------------------------------------------------------------------

def _without_timings(value):
    if isinstance(value, dict):
        return {k: _without_timings(v) for k, v in value.items() if k not in WALL_KEYS}
    return value


def _json(path: Path):
    return _without_timings(json.loads(path.read_text()))


def _csv_without_timings(path: Path) -> list[list[str]]:
    rows = list(csv.reader(path.open(newline="")))
    keep = [i for i, name in enumerate(rows[0]) if name not in WALL_KEYS]
    return [[row[i] for i in keep] for row in rows]


def compare_run(ours: Path, reference: Path) -> list[str]:
    """How the run directory ``ours`` differs from ``reference`` (empty: identical)."""
    differences = []
    mine, theirs = training.load_checkpoint(ours / "checkpoint.pt"), training.load_checkpoint(reference / "checkpoint.pt")
    if (mine["epoch"], mine["step"]) != (theirs["epoch"], theirs["step"]):
        differences.append(f"{ours.name}: checkpoint at epoch {mine['epoch']} step {mine['step']}, "
                           f"reference {theirs['epoch']} step {theirs['step']}")
    if mine["state"].keys() != theirs["state"].keys() or not all(
            mine["state"][k].dtype == theirs["state"][k].dtype and torch.equal(mine["state"][k], theirs["state"][k])
            for k in theirs["state"]):
        differences.append(f"{ours.name}: weights differ")
    metrics = [[_without_timings(json.loads(line)) for line in (d / "metrics.jsonl").read_text().splitlines()]
               for d in (ours, reference)]
    if metrics[0] != metrics[1]:
        differences.append(f"{ours.name}: metrics.jsonl differs")
    for name in ("summary.json", "result.json"):
        if (reference / name).exists() and _json(ours / name) != _json(reference / name):
            differences.append(f"{ours.name}: {name} differs")
    return differences


def compare_experiment(ours: Path, reference: Path) -> list[str]:
    differences = []
    for run in sorted((reference / "runs").iterdir()):
        differences += compare_run(ours / "runs" / run.name, run)
    for name in ("validation.h5", "test.h5"):
        with io.open_file(ours / "data" / name) as (a, _), io.open_file(reference / "data" / name) as (b, _):
            if not all(np.array_equal(a[k][:], b[k][:]) for k in ("fields", "labels", "scale_labels")):
                differences.append(f"data/{name}: samples differ")
    for name in TABLES:
        same = (_csv_without_timings(ours / name) == _csv_without_timings(reference / name) if name.endswith(".csv")
                else (ours / name).read_bytes() == (reference / name).read_bytes())
        if not same:
            differences.append(f"{name} differs")
    return differences


# The parts -----------------------------------------------------------------------------------------

@dataclass
class Part:
    """What one part needs: its command, how a killed run is resumed, how results are compared."""

    name: str
    command: Callable[[Path], list[str]]
    resume: Callable[[Path], list[str]]
    compare: Callable[[Path, Path], list[str]]


def _train_part(work: Path) -> Part:
    spec_path = work / "spec.json"
    spec = DatasetSpec(n=96, length_scales=[[1.5, 2.0], [5.0, 8.0]], amplitudes=[1.0, 1.0], size=32, seed=0)
    spec_path.write_text(json.dumps(spec.to_dict()))

    def resume(out: Path) -> list[str]:
        # Killed before config.json was written: there is no run to resume, so it is started again,
        # as its user would.
        return (["train", "--resume", "--out", str(out)] if (out / "config.json").exists()
                else train_command(spec_path, out))
    return Part("train", lambda out: train_command(spec_path, out), resume, compare_run)


def _experiment_part(work: Path) -> Part:
    return Part("experiment", experiment_command, experiment_command, compare_experiment)


@dataclass
class Figures:
    """One part's outcome."""

    part: str
    kills: int
    reference_s: float
    moments: list[float] = field(default_factory=list)
    landed: int = 0
    identical: int = 0
    unreadable: int = 0
    failures: list[str] = field(default_factory=list)


def inject(part_name: str, kills: int, seed: int, work: Path, log=print) -> Figures:
    """Kill ``part_name``'s command ``kills`` times (one fresh directory each), resume, compare."""
    work.mkdir(parents=True, exist_ok=True)
    part = {"train": _train_part, "experiment": _experiment_part}[part_name](work)
    reference = work / f"{part_name}-reference"
    started = time.perf_counter()
    done = run_to_end(part.command(reference))
    duration = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"the uninterrupted {part_name} failed: {done.stderr.strip().splitlines()[-1:]}")
    # The moments are seeded fractions of the uninterrupted run's duration: the reference's, or
    # a shorter one seen since (a command that ended before its kill was an uninterrupted run), so
    # that a load falling after the reference does not push the moments past the end.
    fractions = np.random.default_rng([seed, PARTS.index(part_name)]).uniform(0, 1, kills)
    figures = Figures(part_name, kills, duration)
    for i, fraction in enumerate(fractions):
        out = work / f"{part_name}-kill{i}"
        moment = float(fraction) * duration
        figures.moments.append(moment)
        ended = kill_at(part.command(out), moment)
        landed = ended is None
        figures.landed += landed
        duration = duration if landed else min(duration, ended)
        problems = unreadable(out) if out.exists() else []
        figures.unreadable += len(problems)
        figures.failures += [f"kill {i} at {moment:.2f} s: unreadable {p}" for p in problems]
        resumed = run_to_end(part.resume(out))
        if resumed.returncode != 0:
            last = (resumed.stderr.strip().splitlines() or ["no message"])[-1]
            figures.failures.append(f"kill {i} at {moment:.2f} s: resuming failed: {last}")
            outcome = "resume failed"
        else:
            differences = part.compare(out, reference)
            figures.identical += not differences
            figures.failures += [f"kill {i} at {moment:.2f} s: {d}" for d in differences]
            outcome = "identical" if not differences else "; ".join(differences)
        log(f"{part_name} kill {i + 1}/{kills} at {moment:.2f} s ({fraction:.3f} of the run)"
            f"{'' if landed else ' (ended before)'}: {outcome}" + (f"; unreadable: {problems}" if problems else ""))
        shutil.rmtree(out, ignore_errors=True)
    return figures


def table(results: list[Figures]) -> str:
    lines = ["| part | kills | landed before the end | kill moments (s) | uninterrupted run (s) | "
             "resumed identical | unreadable files | failures |", "|---|---:|---:|---|---:|---:|---:|---:|"]
    for f in results:
        span = f"{min(f.moments):.2f} – {max(f.moments):.2f}" if f.moments else "–"
        lines.append(f"| {f.part} | {f.kills} | {f.landed} | {span} | {f.reference_s:.1f} | {f.identical} / {f.kills} | "
                     f"{f.unreadable} | {len(f.failures)} |")
    text = "\n".join(lines) + "\n"
    failures = [f"- {f.part}, {line}" for f in results for line in f.failures]
    return text + ("\nFailures:\n\n" + "\n".join(failures) + "\n" if failures else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=(*PARTS, "both"), default="both")
    parser.add_argument("--kills", type=int, default=50, help="kills per part")
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill moments")
    parser.add_argument("--work", type=Path, help="working directory (default: a temporary one, removed)")
    parser.add_argument("--md", type=Path, help="also write the table as markdown to this file")
    args = parser.parse_args()
    if args.kills < 1:
        parser.error(f"--kills must be a positive integer, but got {args.kills}")
    work = args.work or Path(tempfile.mkdtemp(prefix="msgp-faults-"))
    try:
        results = [inject(p, args.kills, args.seed, work / p, log=lambda line: print(line, flush=True))
                   for p in (PARTS if args.part == "both" else (args.part,))]
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    text = table(results)
    print("\n" + text, end="")
    if args.md:
        args.md.write_text(f"`python benchmarks/fault_injection.py {' '.join(sys.argv[1:])}`\n\n" + text)
    if any(f.failures or f.identical < f.kills for f in results):
        sys.exit(1)


if __name__ == "__main__":
    main()
