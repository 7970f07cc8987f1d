"""Running a plan: the ceilings (computed once into ``ceilings.json``), every run in its own
directory (``jobs`` at a time, one thread each, :func:`backdrop.runner.execute_all`), and the
tables and figure (:func:`run_plan`).

A finished run is its ``runs/<name>/result.json``, written atomically when it ends, so an
interrupted plan rerun with the same settings trains only what is missing; a result recorded with
other settings, or with the earlier scheme of random streams, is refused rather than mixed in
(:mod:`.records`).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from msgp.atomic import atomic_write

from .. import runner
from ..training import Progress
from .losses import auc_score, f1_score
from .plans import TEST_STREAM, TRAIN_STREAM, NondecomposableError, Plan, Setup
from .problems import Sample, ceilings
from .records import check_streams, recorded_result
from .report import write_outputs
from .timing import measured_costs
from .training import LossRun, train_run

_SAMPLES: dict[tuple, Sample] = {}


def drawn(setup: Setup, n: int, stream: int) -> Sample:
    """``n`` samples of the setup's problem from ``stream``, drawn once per process."""
    key = (repr(setup.problem), n, stream)
    if key not in _SAMPLES:
        _SAMPLES[key] = setup.problem.draw(n, stream)
    return _SAMPLES[key]


def execute(run: LossRun, setup: Setup, out: Path) -> dict[str, Any]:
    """Train ``run`` and record its result (or return the recorded one, ``skipped``)."""
    recorded = recorded_result(out, run)
    if recorded is not None:
        return {**recorded, "skipped": True}
    train = drawn(setup, setup.n_train, TRAIN_STREAM + run.seed)
    test = drawn(setup, setup.n_test, TEST_STREAM)
    result = train_run(run, train, test, setup.problem.prior)
    runner.write_result(out / "runs" / run.name, result, indent=1, end="")
    return result


def problem_ceilings(setup: Setup) -> dict[str, Any]:
    """The problem's ceilings (:func:`.problems.ceilings`) and the likelihood ratio's own F1 (at the
    ceiling's threshold) and AUC on the plan's test samples, which every run is scored on."""
    found = ceilings(setup.problem, setup.ceiling_n)
    test = drawn(setup, setup.n_test, TEST_STREAM)
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
    out : output directory: ``ceilings.json``, ``step_costs.json`` (:func:`.timing.measured_costs`),
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
    jobs = runner.check_jobs(jobs, NondecomposableError)
    out = Path(out)
    notify = progress or (lambda event, info: None)
    runs = plan.runs()
    recorded = {run: recorded_result(out, run) for run in runs} if out.is_dir() else dict.fromkeys(runs)
    check_streams(out, recorded, report_only)
    if report_only:
        if all(r is None for r in recorded.values()) or not (out / "ceilings.json").exists():
            raise NondecomposableError(f"{out} holds no finished run of plan {plan.name}")
        limits = json.loads((out / "ceilings.json").read_text())
        return write_outputs(plan, out, [r for r in recorded.values() if r is not None], limits,
                             measured_costs(plan, out))
    out.mkdir(parents=True, exist_ok=True)
    notify("plan", {"runs": len(runs), "to_train": sum(r is None for r in recorded.values())})
    limits = prepare_ceilings(plan, out, notify)
    results = runner.execute_all(execute, [(run, plan.setup(run.problem), out) for run in runs], jobs, notify)
    # Timed after the runs, so that they do not compete with it.
    return write_outputs(plan, out, results, limits, measured_costs(plan, out))
