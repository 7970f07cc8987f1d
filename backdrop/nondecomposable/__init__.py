"""Backdrop for losses that do not decompose over samples (F1, ROC AUC), against exact ceilings and
the baselines a practitioner would use instead.

Two problems with a rare positive class whose exact log-likelihood ratio is known
(:mod:`.problems`: Gaussian features, and msgp textures whose coarse scale has the rarer length),
so the best achievable F1 and the exact AUC are known; the surrogate losses and metrics
(:mod:`.losses`); one run of a method (:mod:`.training`: large batches with the full gradient or
with batch backdrop, small batches, cross-entropy with a validation threshold); the plans
(:mod:`.plans`), running one resumably (:mod:`.runner`) and its tables and figure (:mod:`.report`).
``msgp experiment --plan f1`` and ``--plan auc`` run them.
"""
from .losses import auc_score, best_threshold, f1_score, pairwise_auc_loss, roc_auc, soft_f1_loss
from .plans import PLANS, NondecomposableError, Plan, Setup, auc_plan, f1_plan, tiny_plan
from .problems import GaussianProblem, MSGPProblem, ceilings
from .runner import dry_run, run_plan, step_costs
from .training import Run, backdrop_logits, train_run

__all__ = ["GaussianProblem", "MSGPProblem", "NondecomposableError", "PLANS", "Plan", "Run", "Setup", "auc_plan",
           "auc_score", "backdrop_logits", "best_threshold", "ceilings", "dry_run", "f1_plan", "f1_score",
           "pairwise_auc_loss", "roc_auc", "run_plan", "soft_f1_loss", "step_costs", "tiny_plan", "train_run"]
