"""The experiment behind the 2018 paper's claim: backdrop against the full gradient, augmentation
and crops, by training-set size, as a fraction of the Bayes-optimal accuracy.

An :class:`ExperimentPlan` names a dataset, the training-set sizes, the seeds, the methods and a
sweep of backdrop settings. :func:`run_experiment` generates (or reuses) a validation file and a
report file with the training data's statistics, trains every planned run in its own directory
(``jobs`` at a time, one thread each) on its seed's own generated training samples, scores each
once at the end on every sample of both files beside the oracle on the same samples, chooses each
backdrop method's setting per size on the validation scores alone, and rebuilds the tables (of
report-set scores) and figures from the run directories, so an interrupted experiment rerun with
the same plan repeats nothing that was finished; a run whose loss becomes non-finite is recorded as
failed and the others go on. Every file it writes is written atomically (:mod:`msgp.atomic`).
:func:`describe_plan` describes a plan and estimates its time on this machine from a few timed
training steps, oracle scores and samples (:func:`measure_rates`, :func:`estimate`).

This is the network family of :mod:`backdrop.runner` (:data:`FAMILY`): :func:`backdrop.runner.run`
and :func:`backdrop.runner.dry_run` run and describe its plans by name, beside the other family's.

Where things are: :mod:`.plans` (the plan, the methods and mask settings, the named plans),
:mod:`.runs` (a run's settings and the runs a plan makes), :mod:`.data` (the validation and report
files), :mod:`.execution` (one run trained or found recorded, the whole plan), :mod:`.shards` (runs
dealt to shards by cost), :mod:`.methods` (methods from the user's file, network or fitted, and
running a fitted method), :mod:`.anchors` (the two fitted anchors: the spectral plug-in classifier
and wavelet scattering), :mod:`.records` (results.csv's columns), :mod:`.timing` (the timed
training step, the machine's rates, the estimate and the dry run), :mod:`.statistics` (accuracy
against the oracle's, paired comparisons, which runs fitted), :mod:`.report` (the csv and markdown
tables, the outputs of recorded runs) and :mod:`.figures`.
"""
from pathlib import Path

from ..models import MethodError
from ..runner import Family, cpu_jobs, paired_difference, read_result, write_csv
from .data import prepare_data, prepare_shared_data
from .execution import check_recorded_run, execute, execute_runs, report_recorded, run_experiment
from .figures import input_gradient, plot_efficiency, plot_input_gradient, plot_sweep
from .plans import (ANCHORS, BACKDROP_METHODS, BEST, CONTROLS, METHODS, PLANS, REFERENCES, ExperimentError, ExperimentPlan,
                    Masks, default3_plan, masks, paper128_lean_plan, paper128_plan, paper128_sweep, paper_plan,
                    smoke_plan)
from .report import COMPARISON_COLUMNS, comparison_table, failed_list, plan_summary, summary_table, write_outputs
from .runs import Run, main_runs, make_run, plan_runs, sweep_runs, trained_images
from .shards import run_cost, shard_assignment, shard_runs, shard_share
from .statistics import FITTED, choose, chosen, compare, failed, fit_floor, fitted, held_out_choices, ratio, run_fitted
from .timing import RUN_OVERHEAD_S, Rates, StepTimer, describe_plan, estimate, measure_rates


def _run(plan: ExperimentPlan, out: Path, *, progress, jobs: int, report_only: bool, shard) -> dict[str, Path]:
    return run_experiment(plan, out, progress=progress, jobs=jobs, report_only=report_only, shard=shard)


def _dry_run(plan: ExperimentPlan, out: Path, *, jobs: int, shard, name: str | None, **options) -> str:
    text = describe_plan(plan, out, jobs, **options)
    if name is not None:
        text = f"Plan {name} into {out}.\n\n" + text
    return text + (shard_share(plan, shard) + "\n" if shard is not None else "")


def _default_jobs(plan: ExperimentPlan) -> int:
    return cpu_jobs(plan) if plan.device == "cpu" else 1


def _with_methods(plan: ExperimentPlan, specs) -> ExperimentPlan:
    from .methods import load_method

    return plan.with_methods([load_method(text) for text in specs])


def _line(event: str, info: dict) -> str | None:
    if event in ("generate", "reuse"):
        return f"{'generating' if event == 'generate' else 'reusing'} {info['path']} ({info['n']} samples)"
    if event == "done" and info.get("status") == "failed":
        return f"  {info['name']}: failed ({info['reason']}), {info['wall_s']:.0f} s"
    if event == "done":
        return (f"  {info['name']}: joint {info['test_accuracy']['joint']:.3f} "
                f"(oracle {info['oracle_accuracy']['joint']:.3f}), {info['wall_s']:.0f} s")
    return None


FAMILY = Family(name="network", plans=PLANS, plan_type=ExperimentPlan, error=ExperimentError, run=_run,
                dry_run=_dry_run, default_jobs=_default_jobs, line=_line, with_methods=_with_methods, shards=True)
"""The network family, as :mod:`backdrop.runner` drives it."""

__all__ = ["ANCHORS", "BACKDROP_METHODS", "BEST", "COMPARISON_COLUMNS", "CONTROLS", "ExperimentError", "ExperimentPlan",
           "FAMILY", "FITTED", "METHODS", "Masks", "MethodError", "PLANS", "REFERENCES", "RUN_OVERHEAD_S", "Rates", "Run",
           "StepTimer", "check_recorded_run", "choose", "chosen", "compare", "comparison_table", "default3_plan",
           "describe_plan", "estimate", "execute", "execute_runs", "failed", "failed_list", "fit_floor", "fitted", "held_out_choices",
           "input_gradient", "main_runs", "make_run", "masks", "measure_rates", "paired_difference",
           "paper128_lean_plan", "paper128_plan", "paper128_sweep", "paper_plan", "plan_runs", "plan_summary",
           "plot_efficiency", "plot_input_gradient", "plot_sweep", "prepare_data", "prepare_shared_data", "ratio",
           "read_result", "report_recorded", "run_cost", "run_experiment", "run_fitted", "shard_assignment",
           "shard_runs", "shard_share", "smoke_plan", "summary_table", "sweep_runs", "trained_images", "write_csv",
           "write_outputs"]
