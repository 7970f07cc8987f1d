"""Backdrop for losses that do not decompose over samples (F1, ROC AUC), against exact ceilings and
the baselines a practitioner would use instead.

Two problems with a rare positive class whose exact log-likelihood ratio is known
(:mod:`.problems`: Gaussian features, and msgp textures whose coarse scale has the rarer length),
so the best achievable F1 and the exact AUC are known; the surrogate losses and metrics
(:mod:`.losses`); one run of a method (:mod:`.training`: large batches with the full gradient or
with batch backdrop, small batches, cross-entropy with a validation threshold); the plans
(:mod:`.plans`), a run's record read back (:mod:`.records`), running a plan resumably
(:mod:`.execution`), the cost of a step and the dry run (:mod:`.timing`) and the tables and figure
(:mod:`.report`).

This is the non-decomposable family of :mod:`backdrop.runner` (:data:`FAMILY`):
``msgp experiment --plan f1`` and ``--plan auc`` (:func:`backdrop.runner.run`) run them.
"""
from pathlib import Path

from ..runner import Family, cpu_jobs
from .execution import run_plan
from .losses import auc_score, best_threshold, f1_score, pairwise_auc_loss, roc_auc, soft_f1_loss
from .plans import PLANS, NondecomposableError, Plan, Setup, auc_plan, f1_plan, tiny_plan
from .problems import GaussianProblem, MSGPProblem, Sample, ceilings
from .records import check_streams, recorded_result
from .timing import estimate_time, measured_costs, step_costs
from .training import STREAMS, LossRun, backdrop_logits, streams, train_run


def _run(plan: Plan, out: Path, *, progress, jobs: int, report_only: bool, shard) -> dict[str, Path]:
    return run_plan(plan, out, progress=progress, jobs=jobs, report_only=report_only)


def _dry_run(plan: Plan, out: Path, *, jobs: int, shard, name: str | None) -> str:
    return estimate_time(plan, out, jobs)


def _line(event: str, info: dict) -> str | None:
    if event == "ceiling":
        return f"ceilings of {info['problem']} from {info['n']:,} samples"
    if event == "done":
        return (f"  {info['name']}: test F1 {info['test_f1']:.4f}, AUC {info['test_auc']:.4f}, "
                f"{info['train_seconds']:.1f} s")
    return None


FAMILY = Family(name="non-decomposable", plans=PLANS, plan_type=Plan, error=NondecomposableError, run=_run,
                dry_run=_dry_run, default_jobs=cpu_jobs, line=_line)
"""The non-decomposable family, as :mod:`backdrop.runner` drives it (no shards, no methods from files)."""

__all__ = ["FAMILY", "GaussianProblem", "LossRun", "MSGPProblem", "NondecomposableError", "PLANS", "Plan", "STREAMS",
           "Sample", "Setup", "auc_plan", "auc_score", "backdrop_logits", "best_threshold", "ceilings",
           "check_streams", "estimate_time", "f1_plan", "f1_score", "measured_costs", "pairwise_auc_loss",
           "recorded_result", "roc_auc", "run_plan", "soft_f1_loss", "step_costs", "streams", "tiny_plan",
           "train_run"]
