"""A plan's time: seconds per training step of every method (:func:`step_costs`, measured once
into an output directory by :func:`measured_costs`, which the tables' equal-time comparisons
read), and the plan with its estimated time (:func:`estimate_time`, the family's part of
:func:`backdrop.runner.dry_run`)."""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from msgp.atomic import atomic_write

from .. import runner
from .plans import TRAIN_STREAM, NondecomposableError, Plan
from .problems import Sample
from .records import recorded_result
from .training import INIT, MASKS, LossRun, make_network, streams, training_step


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
        methods = {run.tag: run for run in setup.runs(plan.loss, plan.probs, seeds=setup.seeds[:1])}
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


def estimate_time(plan: Plan, out: str | Path, jobs: int = 1) -> str:
    """The plan's runs and their estimated time on this machine, from a few timed training steps of
    every method (:func:`step_costs`; evaluations and the ceilings not counted); the runs recorded
    in ``out`` are not counted again."""
    jobs = runner.check_jobs(jobs, NondecomposableError)
    out = Path(out)
    runs = plan.runs()
    todo = [run for run in runs if recorded_result(out, run) is None] if out.is_dir() else runs
    costs = step_costs(plan, rounds=3, steps=5)
    lines, total = [], 0.0
    for setup in plan.setups:
        rates = costs[setup.problem.name]
        mine = [run for run in todo if run.problem == setup.problem.name]
        seconds = sum(rates[run.tag] * run.steps for run in mine)
        total += seconds
        lines.append(f"  {setup.problem.name}: {setup.problem.describe()}; {setup.n_train} training and "
                     f"{setup.n_test} test samples, {len(setup.seeds)} seeds, {setup.steps} steps of batches of "
                     f"{setup.batch}; {len(mine)} of {len(setup.runs(plan.loss, plan.probs))} runs to train, "
                     f"about {runner.duration(seconds)} on one core")
        lines += [f"    {tag}: {rate * 1e3:.2f} ms per step" for tag, rate in rates.items()]
    lines.append(f"about {runner.duration(total / jobs)} with {jobs} jobs (steps only, an idle machine)")
    return f"Plan {plan.name}: loss {plan.loss}, backdrop p in {', '.join(f'{p:g}' for p in plan.probs)}\n" + \
        "\n".join(lines) + "\n"


def _step_timer(run: LossRun, sample: Sample, prior: float) -> Callable[[int], float]:
    """A function of ``n`` that trains ``n`` steps of ``run``'s method and returns seconds per step."""
    generators = streams(0)
    net = make_network(sample.x.shape[1], prior, generators[INIT])
    optimizer = torch.optim.Adam(net.parameters(), lr=run.lr)
    x, y = sample.x[:run.batch], sample.y[:run.batch]
    training_step(run, net, optimizer, x, y, generators[MASKS])  # the first step allocates

    def timer(n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            training_step(run, net, optimizer, x, y, generators[MASKS])
        return (time.perf_counter() - start) / n
    return timer
