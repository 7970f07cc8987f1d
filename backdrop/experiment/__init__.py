"""The experiment behind the 2018 paper's claim: backdrop against the full gradient, augmentation
and crops, by training-set size, as a fraction of the Bayes-optimal accuracy.

An :class:`ExperimentPlan` names a dataset, the training-set sizes, the seeds, the methods and a
sweep of backdrop settings. :func:`run_experiment` generates (or reuses) a validation file and a
report file with the training data's statistics, trains every planned run in its own directory
(``jobs`` at a time, one thread each) on its seed's own generated training samples, scores each
once at the end on every sample of both files beside the oracle on the same samples, chooses each
backdrop method's setting per size on the validation scores alone, and rebuilds the tables (of
report-set scores) and figures from the run directories, so an interrupted experiment rerun with the same plan repeats
nothing that was finished; a run whose loss becomes non-finite is recorded as failed and the
others go on. Every file it writes is written atomically (:mod:`msgp.atomic`). :func:`dry_run` describes a plan and estimates its time on this
machine from a few timed training steps, oracle scores and samples (:func:`measure_rates`,
:func:`estimate`).

Where things are: :mod:`.plans` (the plan, the methods and mask settings, the named plans),
:mod:`.runs` (a plan's runs, its data files, one run trained or found recorded, the whole plan),
:mod:`.methods` (methods from the user's file, network or fitted, and running a fitted method),
:mod:`.anchors` (the two fitted anchors: the spectral plug-in classifier and wavelet scattering),
:mod:`.records` (results.csv's columns),
:mod:`.timing` (the timed training step, the machine's rates, the estimate and the dry run),
:mod:`.statistics` (accuracy against the oracle's, paired differences, which runs fitted),
:mod:`.report` (the csv and markdown tables, the outputs of recorded runs) and :mod:`.figures`.
"""
from .figures import input_gradient, plot_efficiency, plot_input_gradient, plot_sweep
from .plans import (ANCHORS, BACKDROP_METHODS, BEST, CONTROLS, METHODS, PLANS, REFERENCES, ExperimentError, ExperimentPlan,
                    Masks, default3_plan, masks, paper128_lean_plan, paper128_plan, paper128_sweep, paper_plan,
                    smoke_plan)
from .report import (COMPARISON_COLUMNS, _describe, comparison_table, failed_list, summary_table, write_csv,
                     write_outputs)
from .runs import (Progress, Run, execute, execute_runs, main_runs, make_run, plan_runs, prepare_data, read_result, run_cost,
                   run_experiment, shard_assignment, shard_runs, sweep_runs)
from .statistics import FITTED, choose, chosen, compare, failed, fit_floor, fitted, held_out_choices, paired_difference, ratio, run_fitted
from .timing import RUN_OVERHEAD_S, Rates, StepTimer, dry_run, duration, estimate, measure_rates

__all__ = ["ANCHORS", "BACKDROP_METHODS", "BEST", "COMPARISON_COLUMNS", "CONTROLS", "ExperimentError", "ExperimentPlan", "FITTED",
           "METHODS", "Masks", "PLANS", "Progress", "REFERENCES", "RUN_OVERHEAD_S", "Rates", "Run", "StepTimer",
           "_describe", "choose", "chosen", "compare", "held_out_choices", "comparison_table", "default3_plan", "dry_run", "duration",
           "estimate", "execute", "execute_runs", "failed", "failed_list", "fit_floor", "fitted", "input_gradient", "main_runs", "make_run", "masks",
           "measure_rates", "paired_difference", "paper128_lean_plan", "paper128_plan", "paper128_sweep", "paper_plan",
           "plan_runs", "plot_efficiency", "plot_input_gradient", "plot_sweep", "prepare_data", "ratio", "read_result",
           "run_cost", "run_experiment", "run_fitted", "shard_assignment", "shard_runs", "smoke_plan", "summary_table", "sweep_runs", "write_csv",
           "write_outputs"]
