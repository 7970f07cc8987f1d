"""A plan's runs dealt to shards by their cost (``msgp experiment --shard I/N``): the cost of a
run from its settings alone (:func:`run_cost`), the deal (:func:`shard_assignment`) and one
shard's runs (:func:`shard_runs`)."""
from __future__ import annotations

from pathlib import Path

from ..runner import check_shard, deal
from .methods import is_fitted
from .plans import ExperimentError, ExperimentPlan
from .runs import Run, plan_runs, trained_images

# A training image goes forward and backward: about three forward passes' work, since the backward
# pass computes the gradients of both the activations and the weights, each about a forward's.
TRAIN_PASSES = 3


def run_cost(plan: ExperimentPlan, run: Run) -> int:
    """A run's cost in forward passes of one image, from its settings alone: its trained images
    (:data:`TRAIN_PASSES` each) and the images it scores, as :func:`~.timing.estimate` counts them
    (its training images twice, the validation and report files once; a fitted method fits its
    training images once and scores both files). No rate measured on this machine enters it, so
    every shard's process computes the same costs."""
    config = run.config(plan, Path("validation.h5"))
    scored = plan.n_validation + plan.n_test
    if is_fitted(plan, run.method):
        return config.n_train + scored
    return TRAIN_PASSES * trained_images(config) + 2 * config.n_train + scored


def shard_assignment(plan: ExperimentPlan, count: int) -> list[list[Run]]:
    """The plan's runs dealt to ``count`` shards by cost (:func:`backdrop.runner.deal`: the
    costliest first, each to the shard with the least cost so far, runs of equal cost by name). It
    is a function of the plan alone, so each shard's process computes the same one (whatever order
    the runs come in) and together the shards train every run once. At 16 shards the costliest
    shard holds at most 1.1 times the cheapest's cost on every plan of :data:`~.plans.PLANS`
    (``tests/test_shards.py``)."""
    return deal({run: run_cost(plan, run) for run in plan_runs(plan)}, count, lambda run: run.name)


def shard_runs(plan: ExperimentPlan, shard: tuple[int, int] | None) -> list[Run]:
    """The runs shard ``(I, N)`` trains, shard I of :func:`shard_assignment` into N (every run of
    the plan for ``None``), in the plan's order."""
    every = plan_runs(plan)
    if shard is None:
        return every
    index, count = check_shard(shard, ExperimentError)
    mine = set(shard_assignment(plan, count)[index])
    return [run for run in every if run in mine]


def shard_share(plan: ExperimentPlan, shard: tuple[int, int]) -> str:
    """One line: how many of the plan's runs shard ``(I, N)`` trains and its share of their cost."""
    every, mine = plan_runs(plan), shard_runs(plan, shard)
    share = sum(run_cost(plan, r) for r in mine) / sum(run_cost(plan, r) for r in every)
    return (f"Shard {shard[0]}/{shard[1]} trains {len(mine)} of the plan's {len(every)} runs, "
            f"{share:.1%} of its estimated cost.")
