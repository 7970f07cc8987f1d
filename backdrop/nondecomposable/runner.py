"""Running a plan: the ceilings (computed once into ``ceilings.json``), every run in its own
directory (``jobs`` at a time, one thread each), and the tables and figure; and the dry run.

A finished run is its ``runs/<name>/result.json``, written atomically when it ends, so an
interrupted plan rerun with the same settings trains only what is missing; a result recorded with
other settings is refused rather than mixed in.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import torch

from msgp.atomic import atomic_write

from ..experiment.runs import read_result as read_run_result
from .losses import auc_score, f1_score
from .plans import TEST_STREAM, TRAIN_STREAM, NondecomposableError, Plan, Setup
from .problems import Split, ceilings
from .report import write_outputs
from .training import Run, make_network, train_run, training_step

Progress = Callable[[str, dict], None]

_SPLITS: dict[tuple, Split] = {}


def _split(setup: Setup, n: int, stream: int) -> Split:
    """A problem's samples, drawn once per process."""
    key = (repr(setup.problem), n, stream)
    if key not in _SPLITS:
        _SPLITS[key] = setup.problem.draw(n, stream)
    return _SPLITS[key]


def read_result(out: Path, run: Run) -> dict[str, Any] | None:
    """The recorded result of ``run`` under ``out``, ``None`` when it has not finished (or its
    ``result.json`` cannot be read, so the run is trained again, as the network experiment does),
    or a :class:`NondecomposableError` when the recorded run had other settings."""
    path = out / "runs" / run.name / "result.json"
    result = read_run_result(path.parent)
    if result is None:
        return None
    if result.get("settings") != run.settings():
        raise NondecomposableError(f"{path} was trained with other settings than this plan's; move it away or "
                                   f"pass another --out")
    return result


def execute(run: Run, setup: Setup, out: Path) -> dict[str, Any]:
    """Train ``run`` and record its result (or return the recorded one, ``skipped``)."""
    recorded = read_result(out, run)
    if recorded is not None:
        return {**recorded, "skipped": True}
    train = _split(setup, setup.n_train, TRAIN_STREAM + run.seed)
    test = _split(setup, setup.n_test, TEST_STREAM)
    result = train_run(run, train, test, setup.problem.prior)
    directory = out / "runs" / run.name
    directory.mkdir(parents=True, exist_ok=True)
    atomic_write(directory / "result.json", json.dumps(result, indent=1))
    return result


def _execute_one_thread(*args) -> dict[str, Any]:
    torch.set_num_threads(1)
    return execute(*args)


def problem_ceilings(setup: Setup) -> dict[str, Any]:
    """The problem's ceilings (:func:`.problems.ceilings`) and the likelihood ratio's own F1 (at the
    ceiling's threshold) and AUC on the plan's test samples, which every run is scored on."""
    found = ceilings(setup.problem, setup.ceiling_n)
    test = _split(setup, setup.n_test, TEST_STREAM)
    labels = test.y.numpy()
    return {"problem": setup.problem.name, "description": setup.problem.describe(), "prior": setup.problem.prior,
            **found, "test_f1": f1_score(test.llr, labels, found["threshold"]), "test_auc": auc_score(test.llr, labels),
            "test_positives": int(labels.sum()), "n_test": len(labels)}


def prepare_ceilings(plan: Plan, out: Path, progress: Progress) -> dict[str, dict[str, Any]]:
    """The ceilings of every problem of ``plan``, read from ``out/ceilings.json`` when they are
    there for the same problem and sample sizes, computed (and written) otherwise."""
    path = out / "ceilings.json"
    known = json.loads(path.read_text()) if path.exists() else {}
    for setup in plan.setups:
        entry = known.get(setup.problem.name)
        if (entry is None or entry["description"] != setup.problem.describe()
                or entry["n_per_class"] != 2 * setup.ceiling_n or entry["n_test"] != setup.n_test):
            progress("ceiling", {"problem": setup.problem.name, "n": 4 * setup.ceiling_n})
            known[setup.problem.name] = problem_ceilings(setup)
            atomic_write(path, json.dumps(known, indent=1))
    return {s.problem.name: known[s.problem.name] for s in plan.setups}


def run_plan(plan: Plan, out: str | Path, progress: Progress | None = None, jobs: int = 1,
             report_only: bool = False) -> dict[str, Path]:
    """Run (or finish) ``plan`` into ``out`` and write its tables and figure.

    Parameters
    ----------
    plan : what to run.
    out : output directory: ``ceilings.json``, ``step_costs.json`` (:func:`measured_costs`),
        ``runs/<name>/result.json`` and the outputs.
    progress : ``progress(event, info)``, events ``plan`` (``{"runs", "to_train"}``), ``ceiling``
        (a problem's ceilings being computed) and ``done`` (a run's result, ``skipped`` when it was
        recorded before).
    jobs : runs trained at once, each in its own process with one thread (1: in this process).
    report_only : train nothing; write the outputs of the runs recorded so far.

    Returns
    -------
    The written files by name (see :func:`.report.write_outputs`).
    """
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise NondecomposableError(f"jobs must be a positive integer, but got {jobs}")
    out = Path(out)
    notify = progress or (lambda event, info: None)
    runs = plan.runs()
    recorded = {run: read_result(out, run) for run in runs} if out.is_dir() else {run: None for run in runs}
    if report_only:
        if all(r is None for r in recorded.values()) or not (out / "ceilings.json").exists():
            raise NondecomposableError(f"{out} holds no finished run of plan {plan.name}")
        limits = json.loads((out / "ceilings.json").read_text())
        return write_outputs(plan, out, [r for r in recorded.values() if r is not None], limits,
                             measured_costs(plan, out))
    out.mkdir(parents=True, exist_ok=True)
    notify("plan", {"runs": len(runs), "to_train": sum(r is None for r in recorded.values())})
    limits = prepare_ceilings(plan, out, notify)
    results = []
    if jobs == 1:
        for run in runs:
            results.append(execute(run, plan.setup(run.problem), out))
            notify("done", results[-1])
    else:
        with ProcessPoolExecutor(jobs, mp_context=get_context("spawn")) as pool:
            futures = [pool.submit(_execute_one_thread, run, plan.setup(run.problem), out) for run in runs]
            for future in as_completed(futures):
                results.append(future.result())
                notify("done", results[-1])
    # Timed after the runs, so that they do not compete with it.
    return write_outputs(plan, out, results, limits, measured_costs(plan, out))


def step_costs(plan: Plan, rounds: int = 7, steps: int = 10) -> dict[str, dict[str, float]]:
    """Seconds per training step of every method of every problem, on one thread.

    Each round times ``steps`` steps of every method in turn and the median over rounds is kept:
    whatever else the machine runs meanwhile falls on every method alike, which the runs' own
    clocks (each run timed while others come and go) do not promise.
    """
    torch.set_num_threads(1)
    costs = {}
    for setup in plan.setups:
        sample = setup.problem.draw(setup.batch, stream=TRAIN_STREAM - 1)
        methods = {run.tag: run for run in setup.runs(plan.loss, plan.probs) if run.seed == setup.seeds[0]}
        timers = {tag: _step_timer(run, sample, setup.problem.prior) for tag, run in methods.items()}
        times = {tag: [] for tag in methods}
        for _ in range(rounds):
            for tag, timer in timers.items():
                times[tag].append(timer(steps))
        costs[setup.problem.name] = {tag: float(np.median(t)) for tag, t in times.items()}
    return costs


def measured_costs(plan: Plan, out: Path) -> dict[str, dict[str, float]]:
    """:func:`step_costs`, measured once into ``out/step_costs.json``."""
    path = out / "step_costs.json"
    known = json.loads(path.read_text()) if path.exists() else {}
    if not all(set(known.get(s.problem.name, {})) >= {r.tag for r in s.runs(plan.loss, plan.probs)} for s in plan.setups):
        known = step_costs(plan)
        atomic_write(path, json.dumps(known, indent=1))
    return known


def dry_run(plan: Plan, out: str | Path, jobs: int = 1) -> str:
    """The plan's runs and their estimated time on this machine, from a few timed training steps of
    every method (:func:`step_costs`; evaluations and the ceilings not counted)."""
    out = Path(out)
    runs = plan.runs()
    todo = [run for run in runs if read_result(out, run) is None] if out.is_dir() else runs
    costs = step_costs(plan, rounds=3, steps=5)
    lines, total = [], 0.0
    for setup in plan.setups:
        rates = costs[setup.problem.name]
        mine = [run for run in todo if run.problem == setup.problem.name]
        seconds = sum(rates[run.tag] * run.steps for run in mine)
        total += seconds
        lines.append(f"  {setup.problem.name}: {setup.problem.describe()}; {setup.n_train} training and "
                     f"{setup.n_test} test samples, {len(setup.seeds)} seeds, {setup.steps} steps of batches of "
                     f"{setup.batch}; {len(mine)} of {len(setup.seeds) * (2 * len(plan.probs) + 2)} runs to train, "
                     f"about {seconds / 60:.1f} min on one core")
        lines += [f"    {tag}: {rate * 1e3:.2f} ms per step" for tag, rate in rates.items()]
    lines.append(f"about {total / 60 / jobs:.0f} min with {jobs} jobs (steps only, an idle machine)")
    return f"Plan {plan.name}: loss {plan.loss}, backdrop p in {', '.join(f'{p:g}' for p in plan.probs)}\n" + \
        "\n".join(lines) + "\n"


def _step_timer(run: Run, sample: Split, prior: float) -> Callable[[int], float]:
    """A function of ``n`` that trains ``n`` steps of ``run``'s method and returns seconds per step."""
    net = make_network(sample.x.shape[1], prior)
    optimizer = torch.optim.Adam(net.parameters(), lr=run.lr)
    generator = torch.Generator().manual_seed(0)
    x, y = sample.x[:run.batch], sample.y[:run.batch]
    training_step(run, net, optimizer, x, y, generator)  # the first step allocates

    def timer(n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            training_step(run, net, optimizer, x, y, generator)
        return (time.perf_counter() - start) / n
    return timer
