"""Running a plan: one run trained, resumed, fitted or found recorded in its own directory and
scored on both sets (:func:`execute`), the whole plan ``jobs`` runs at a time
(:func:`run_experiment`), and the tables of the runs recorded so far (:func:`report_recorded`)."""
from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .. import training
from ..runner import check_jobs, execute_all, read_result, write_result
from ..training import Progress
from . import methods
from .data import prepare_shared_data, refuse_earlier_design
from .plans import ExperimentError, ExperimentPlan
from .report import write_outputs
from .runs import Run, main_runs, plan_runs, sweep_runs
from .shards import shard_runs


def _check_recorded_settings(run_dir: Path, config: training.TrainConfig) -> None:
    """Refuse to reuse or resume a run directory whose ``config.json`` records other samples or
    other settings than ``config`` (a plan changed under an old ``out``): its result would be
    reported as this plan's."""
    if not (run_dir / "config.json").exists():
        return
    try:
        stored = training.read_config(run_dir)
    except training.CheckpointError:
        return  # damaged: the trainer's own checks report it when it resumes
    if stored.data != config.data:
        raise ExperimentError(f"{run_dir} holds a run trained on other samples ({_source(stored.data)}, this plan "
                              f"{_source(config.data)}); remove it or choose another `out`")
    changed = config.changed_from(stored)
    if changed:
        k = changed[0]
        raise ExperimentError(f"{run_dir} holds a run with other settings ({k} {getattr(stored, k)!r}, this plan "
                              f"{getattr(config, k)!r}); remove it or choose another `out`")


def _source(data: str | dict[str, Any]) -> str:
    return f"generated, seed {data['seed']}, n {data['n']}" if isinstance(data, dict) else f"the file {data}"


def _read_summary(run_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((run_dir / "summary.json").read_text())
    except (FileNotFoundError, UnicodeDecodeError, json.JSONDecodeError):
        return None


def check_recorded_run(run: Run, plan: ExperimentPlan, out: Path, config: training.TrainConfig):
    """Refuse ``run``'s directory when what it holds was made with other settings or samples than
    ``config`` (a network run) or than the plan's fitted method and samples (a fitted run); the
    fitted method and its ``fit``, or ``None`` for a network."""
    run_dir = out / "runs" / run.name
    fitted = methods.fitted_method(plan, run.method, out)
    if fitted is not None:
        methods.check_recorded(fitted[0], run_dir, config)
    else:
        _check_recorded_settings(run_dir, config)
    return fitted


def execute(run: Run, plan: ExperimentPlan, out: Path, validation_path: Path, test_path: Path) -> dict[str, Any]:
    """Train ``run`` (resuming an interrupted one) unless its ``result.json`` exists, and return
    the result: the trainer scores the whole validation file once, after the last epoch
    (``validation_accuracy``, what choices are made on), and :func:`~backdrop.training.evaluate`
    then scores the whole report file, calibrated as the trainer calibrates (``test_accuracy``,
    what the tables report), each beside the oracle on the same samples.

    A run whose training fails (:class:`~backdrop.training.TrainingError`: a non-finite loss) is
    recorded as failed, with the reason, in its ``result.json``, and the experiment goes on; its
    training is deterministic, so a rerun keeps the record rather than repeating the failure
    (remove ``runs/<name>/`` to train it again from the start)."""
    run_dir = out / "runs" / run.name
    config = run.config(plan, validation_path)
    fitted = check_recorded_run(run, plan, out, config)
    recorded = read_result(run_dir)
    if recorded is not None:
        return {**recorded, "skipped": True}
    started = time.perf_counter()
    result = {"name": run.name, "method": run.method, "n_train": config.n_train, "per_class": run.per_class,
              "seed": run.seed, "masks": None if run.masks is None else run.masks.describe(),
              "epochs": None if fitted else config.epochs, "data_seed": config.data["seed"],
              "validation_seed": plan.validation_seed, "test_seed": plan.test_seed}
    if fitted is not None:
        result.update(methods.fit_and_score(*fitted, config, run_dir, test_path, plan.n_test))
    else:
        result.update(_train_and_score(config, run_dir, test_path, plan))
    result["wall_s"] = time.perf_counter() - started
    write_result(run_dir, result)
    return result


def _train_and_score(config: training.TrainConfig, run_dir: Path, test_path: Path,
                     plan: ExperimentPlan) -> dict[str, Any]:
    """A network run's scores: trained (or resumed, or its summary read), then the report file
    scored; ``{"status": "failed", "reason"}`` where training fails."""
    summary = _read_summary(run_dir)
    if summary is None:
        resume = (run_dir / "checkpoint.pt").exists()
        if not resume and (run_dir / "config.json").exists():
            (run_dir / "config.json").unlink()  # died before its first checkpoint: start it again
        try:
            summary = training.train(config, run_dir, resume=resume)
        except training.TrainingError as err:
            return {"status": "failed", "reason": str(err)}
    last = training.read_metrics(run_dir)[-1]
    report = training.evaluate(run_dir, test_path, n=plan.n_test, device=plan.device)

    def accuracy(scored: dict[str, Any]) -> dict[str, Any]:
        return {"joint": scored["joint"]["accuracy"], "scales": [s["accuracy"] for s in scored["scales"]]}
    return {"status": "finished", "n_validation": summary["n_test"], "validation_accuracy": summary["test_accuracy"],
            "validation_oracle_accuracy": summary["oracle_accuracy"], "n_test": report["n"],
            "test_accuracy": accuracy(report["network"]), "oracle_accuracy": accuracy(report["oracle"]),
            "train_accuracy": summary["train_accuracy"], "train_loss": last["train_loss"],
            "learned": summary["learned"]}


def execute_runs(runs: Sequence[Run], plan: ExperimentPlan, out: Path, validation_path: Path, test_path: Path,
                 jobs: int = 1, notify: Progress | None = None) -> dict[Run, dict[str, Any]]:
    """:func:`execute` every run (:func:`backdrop.runner.execute_all`: in this process for ``jobs``
    1, else ``jobs`` processes of one thread), ``notify("done", result)`` as each ends; the
    results by run."""
    tasks = [(run, plan, out, validation_path, test_path) for run in runs]
    return dict(zip(runs, execute_all(execute, tasks, check_jobs(jobs, ExperimentError), notify)))


def run_experiment(plan: ExperimentPlan, out: str | Path, progress: Progress | None = None,
                   jobs: int = 1, report_only: bool = False, shard: tuple[int, int] | None = None) -> dict[str, Path]:
    """Run (or finish) the whole plan into ``out`` and write the tables and figures.

    Parameters
    ----------
    plan : what to run.
    out : output directory: ``data/`` (the validation and report files), ``runs/<name>/`` (one per
        run: the trainer's files and ``result.json``), and the outputs listed below.
    progress : ``progress(event, info)`` with events ``plan`` (``{"runs", "to_train"}``, first),
        ``generate``/``reuse`` (a data file) and ``done`` (a run finished, failed, or found
        recorded: its result, whose ``status`` is ``finished`` or ``failed``).
    jobs : runs trained at once, each in its own process with one thread (1: in this process,
        with torch's threads).
    report_only : train nothing; write the tables and figures of the runs recorded so far. A run
        trained with other settings than the plan's is refused, as a rerun refuses it.
    shard : ``(I, N)``: train only shard I of the N of :func:`~.shards.shard_assignment`, which
        deals the runs by cost (N processes on a cluster, one ``out`` on a shared file system),
        then write the tables of every run recorded in ``out`` so far, this shard's and the
        others'. The last shard to finish writes the complete tables; ``report_only`` rebuilds
        them at any time.

    Returns
    -------
    The written files by name: ``results.csv``, ``results.md``, ``comparisons.csv``,
    ``comparisons.md``, ``efficiency.png``, ``input_gradient.png`` and, with a sweep,
    ``sweep.md``, ``choices.csv``, ``sweep.png``.
    """
    jobs = check_jobs(jobs, ExperimentError)
    out = Path(out)
    refuse_earlier_design(out)
    notify = progress or (lambda event, info: None)
    mine = shard_runs(plan, shard)
    if report_only:
        return report_recorded(plan, out)
    todo = [r for r in mine if read_result(out / "runs" / r.name) is None]
    notify("plan", {"runs": len(mine), "to_train": len(todo)})
    # Smallest sizes first, every method of a size before the next size: an experiment stopped
    # part-way leaves whole cells to compare (at the small sizes, where the variance is), not the
    # sweep of every size without a baseline. The shards' partition is unchanged.
    mine = sorted(mine, key=lambda r: r.per_class)
    validation_path, test_path = prepare_shared_data(plan, out, progress)
    methods.check_methods(plan, validation_path, test_path)
    results = execute_runs(mine, plan, out, validation_path, test_path, jobs, notify)
    if shard is not None:
        return report_recorded(plan, out)
    return write_outputs(plan, out, [results[r] for r in main_runs(plan)], [results[r] for r in sweep_runs(plan)])


def report_recorded(plan: ExperimentPlan, out: str | Path) -> dict[str, Path]:
    """The tables and figures of the runs recorded in ``out`` (by this process or by others),
    after the check :func:`execute` applies: a run trained with other settings is not this
    plan's result."""
    out = Path(out)
    recorded = {r: read_result(out / "runs" / r.name) for r in plan_runs(plan)}
    if all(result is None for result in recorded.values()):
        raise ExperimentError(f"{out} holds no finished run of this plan")
    for r, result in recorded.items():
        if result is not None:
            check_recorded_run(r, plan, out, r.config(plan, out / "data" / "validation.h5"))
    return write_outputs(plan, out, [recorded[r] for r in main_runs(plan) if recorded[r] is not None],
                         [recorded[r] for r in sweep_runs(plan) if recorded[r] is not None])
