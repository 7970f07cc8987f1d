"""A named plan of either family run, or described before it runs: what ``msgp experiment`` does,
with every decision of the command made here (the plan from the registry, its output directory,
the runs at once from the CPUs this process may use, the shard, the request's consistency)."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from msgp.checks import Checks
from msgp.cpus import available_cpus

from ..training import Progress
from .families import Family, family_of, plan as named_plan, with_methods


def check_jobs(jobs: Any, error: type[Exception]) -> int:
    """``jobs`` (runs at once) as an int, if it is an integer of at least 1, else ``error``."""
    return Checks(error, error, quote=True).integer("jobs", jobs, 1)


def check_shard(shard: tuple[int, int] | str | None, error: type[Exception]) -> tuple[int, int] | None:
    """``shard`` as ``(I, N)``, if it names shard ``I`` of ``N`` (a pair, or the text ``"I/N"``),
    else ``error``; ``None`` stays ``None``."""
    if shard is None:
        return None
    checks = Checks(error, error, quote=True)
    return checks.shard_text("shard", shard) if isinstance(shard, str) else checks.shard("shard", shard)


def cpu_jobs(plan: Any = None) -> int:
    """Runs at once for a plan on the CPU: one per CPU this process may use
    (:func:`msgp.cpus.available_cpus`: the affinity mask, and ``SLURM_CPUS_PER_TASK`` where it is
    smaller)."""
    return available_cpus()


def default_jobs(plan: str | Any) -> int:
    """Runs ``plan`` (a name or a plan) trains at once when the caller does not say: its family's
    choice, :func:`cpu_jobs` for a plan on the CPU and 1 for one whose runs take a GPU."""
    return family_of(plan).default_jobs(named_plan(plan) if isinstance(plan, str) else plan)


@dataclass(frozen=True)
class Request:
    """A checked request (:func:`request`): the plan's family, the plan, its name (``None`` for a
    plan given as an object without one), the output directory, the runs at once, the shard and
    whether only the tables are to be written. :meth:`run` and :meth:`dry_run` carry it out."""

    family: Family
    plan: Any
    name: str | None
    out: Path
    jobs: int
    shard: tuple[int, int] | None
    report_only: bool = False

    def run(self, progress: Progress | None = None) -> dict[str, Path]:
        """Run the plan (:func:`run`); ``progress`` as there."""
        return self.family.run(self.plan, self.out, progress=_with_lines(progress, self), jobs=self.jobs,
                               report_only=self.report_only, shard=self.shard)

    def dry_run(self, **options) -> str:
        """The plan and its estimated time, as text (:func:`dry_run`)."""
        return self.family.dry_run(self.plan, self.out, jobs=self.jobs, shard=self.shard, name=self.name, **options)


def request(plan: str | Any, out: str | Path | None = None, *, jobs: int | None = None,
            shard: tuple[int, int] | str | None = None, methods: Sequence[str] = (),
            report_only: bool = False) -> Request:
    """Check what :func:`run` and :func:`dry_run` are asked, in the order a user meets the
    problems: the plan (a registry name, or a plan), the output directory (default
    ``experiments/<name>``; it must be a directory if it exists), the shard and whether the
    family shards at all, the methods from files and whether the family takes any, and the jobs
    (default :func:`default_jobs`). Raises the family's error (a
    :class:`~backdrop.runner.RunnerError`) for a request that cannot be run.

    Examples
    --------
    >>> from backdrop import runner
    >>> asked = runner.request("smoke", jobs=1)
    >>> str(asked.out), asked.jobs
    ('experiments/smoke', 1)
    """
    family = family_of(plan)
    name = plan if isinstance(plan, str) else getattr(plan, "name", None)
    if out is None:
        if name is None:
            raise family.error("`out` is needed for a plan given as an object: it has no name to default it from")
        out = Path("experiments") / name
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise family.error(f"`out={out}` is not a directory")
    shard = check_shard(shard, family.error)
    if shard is not None and report_only:
        raise family.error("`shard` and `report_only=True` contradict each other: `report_only=True` trains "
                           "nothing and reads every shard's runs")
    if shard is not None and not family.shards:
        raise family.error(f"`shard` splits the network plans; `plan={name}` runs on one machine")
    made = named_plan(plan, methods) if isinstance(plan, str) else with_methods(plan, methods, name)
    jobs = check_jobs(family.default_jobs(made) if jobs is None else jobs, family.error)
    return Request(family, made, name, out, jobs, shard, report_only)


def run(plan: str | Any, out: str | Path | None = None, *, jobs: int | None = None, report_only: bool = False,
        shard: tuple[int, int] | str | None = None, methods: Sequence[str] = (),
        progress: Progress | None = None) -> dict[str, Path]:
    """Run (or finish) a plan of either family into ``out`` and write its tables and figures:
    ``msgp experiment``.

    Parameters
    ----------
    plan : a name of :func:`~backdrop.runner.plans` (``"paper128"``, ``"f1"``) or a plan object
        (:class:`~backdrop.experiment.ExperimentPlan`, :class:`~backdrop.nondecomposable.Plan`).
    out : output directory; default ``experiments/<name>``.
    jobs : runs at once, each in its own process with one thread; default :func:`default_jobs`.
    report_only : train nothing; write the tables of the runs recorded so far.
    shard : ``(I, N)`` or ``"I/N"``: train shard I of N only (network plans).
    methods : methods from the user's files to add (network plans), ``file.py:function`` or
        ``module:function``.
    progress : ``progress(event, info)``, the family's events (see
        :func:`~backdrop.experiment.run_experiment`, :func:`~backdrop.nondecomposable.run_plan`),
        each ``info`` with a ``line`` added: the line a terminal shows for it (``None`` for none),
        the ``plan`` event's saying how many runs go where and how many at once.

    Returns
    -------
    The written files by name.
    """
    return request(plan, out, jobs=jobs, shard=shard, methods=methods, report_only=report_only).run(progress)


def dry_run(plan: str | Any, out: str | Path | None = None, *, jobs: int | None = None,
            shard: tuple[int, int] | str | None = None, methods: Sequence[str] = (), **options) -> str:
    """A plan of either family and its estimated time on this machine, as text, training nothing:
    ``msgp experiment --dry-run``. The parameters are :func:`run`'s; ``options`` go to the
    family's own dry run (``rates`` for a network plan, :func:`~backdrop.experiment.describe_plan`)."""
    return request(plan, out, jobs=jobs, shard=shard, methods=methods).dry_run(**options)


def _with_lines(progress: Progress | None, asked: Request) -> Progress | None:
    """``progress`` with each event's ``line`` added (:func:`run`)."""
    if progress is None:
        return None

    def notify(event: str, info: dict) -> None:
        if event == "plan":
            part = f" (shard {asked.shard[0]}/{asked.shard[1]})" if asked.shard is not None else ""
            line = f"{info['runs']} runs{part} into {asked.out}, {info['to_train']} to train, {asked.jobs} at a time"
        else:
            line = asked.family.line(event, info)
        progress(event, {**info, "line": line})
    return notify
