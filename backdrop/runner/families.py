"""The families of experiment plans and the one registry of their named plans.

A family (:class:`Family`) is what the runner needs of one kind of experiment: its named plans,
how to run one and describe one, and the lines a terminal shows for its progress. Each family's
package defines its own (``backdrop.experiment.FAMILY``, ``backdrop.nondecomposable.FAMILY``).
The runner lists them in :data:`FAMILIES` by module, as entry points name their plug-ins, and
loads them on the first lookup: the families import the runner, never the reverse.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from msgp.errors import MSGPError

# The modules whose FAMILY the runner serves, in the order --plan lists their plans.
FAMILIES = ("backdrop.experiment", "backdrop.nondecomposable")


class RunnerError(MSGPError, ValueError):
    """A plan, a request or an output directory that cannot be run; the message is one line.
    Each family's error (:class:`~backdrop.experiment.ExperimentError`,
    :class:`~backdrop.nondecomposable.NondecomposableError`) is one."""


@dataclass(frozen=True)
class Family:
    """One family of experiment plans, as the runner drives it.

    Parameters
    ----------
    name : the family's name in messages (``network``, ``non-decomposable``).
    plans : its named plans: name to a function of no arguments that returns the plan.
    plan_type : the class of its plans, by which a plan object is recognised.
    error : its error class, a :class:`RunnerError`; the runner's checks of its requests raise it.
    run : ``run(plan, out, *, progress, jobs, report_only, shard) -> {file name: path}``.
    dry_run : ``dry_run(plan, out, *, jobs, shard, name, **options) -> str``: the plan and its
        estimated time, as text (``name`` the plan's registry name, or ``None``).
    default_jobs : ``default_jobs(plan) -> int``: runs at once where the caller says nothing.
    line : ``line(event, info) -> str | None``: the line a terminal shows for a progress event
        other than ``plan`` (``None``: none).
    with_methods : ``with_methods(plan, methods) -> plan``, the plan with the methods named by
        ``module:function`` or ``file.py:function`` added; ``None`` where the family takes none.
    shards : whether its runs can be dealt to shards.
    """

    name: str
    plans: Mapping[str, Callable[[], Any]]
    plan_type: type
    error: type[RunnerError]
    run: Callable[..., dict[str, Path]]
    dry_run: Callable[..., str]
    default_jobs: Callable[[Any], int]
    line: Callable[[str, dict], str | None]
    with_methods: Callable[[Any, Sequence[str]], Any] | None = None
    shards: bool = False


def families() -> tuple[Family, ...]:
    """Every family of :data:`FAMILIES`, loaded on first use."""
    return tuple(importlib.import_module(module).FAMILY for module in FAMILIES)


def plans() -> dict[str, Callable[[], Any]]:
    """Every named plan of every family, name to the function that makes it, in the order
    ``msgp experiment --plan`` lists them (the network plans, then the non-decomposable ones)."""
    found: dict[str, Callable[[], Any]] = {}
    for family in families():
        found.update(family.plans)
    return found


def family_of(plan: str | Any) -> Family:
    """The family of ``plan``: a registry name (:func:`plans`) or a plan object."""
    for family in families():
        if (plan in family.plans) if isinstance(plan, str) else isinstance(plan, family.plan_type):
            return family
    if isinstance(plan, str):
        raise RunnerError(f"`plan` must be one of {', '.join(plans())}, but got {plan!r}")
    raise RunnerError(f"`plan` must be a plan's name or a plan of {', '.join(f.name for f in families())} "
                      f"experiments, but got a {type(plan).__name__}")


def plan(name: str, methods: Sequence[str] = ()) -> Any:
    """The named plan (any family's), with the methods ``methods`` (``file.py:function`` or
    ``module:function``, :func:`~backdrop.experiment.methods.load_method`) added where its family
    takes methods from files.

    Examples
    --------
    >>> from backdrop import runner
    >>> runner.plan("smoke").sizes
    (2,)
    """
    return with_methods(family_of(name).plans[name](), methods, name)


def with_methods(plan: Any, methods: Sequence[str], name: str | None = None) -> Any:
    """``plan`` with the methods ``methods`` added (itself for none), where its family takes
    methods from files; ``name``: the plan's name in the message where it does not."""
    if not methods:
        return plan
    family = family_of(plan)
    if family.with_methods is None:
        raise family.error(f"`methods` adds methods to the network plans; `plan={name or getattr(plan, 'name', '')}` "
                           "has its own baselines")
    return family.with_methods(plan, methods)
