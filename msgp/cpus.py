"""The CPUs this process may use: the default of every ``--workers`` and ``--jobs``.

``os.cpu_count()`` counts the machine's CPUs, not this process's. On a cluster node shared by
several jobs, a process started by SLURM (or in a cgroup cpuset, or under ``taskset``) may run on
a few of them only; a default of one worker per machine CPU then oversubscribes the few it has.
"""
from __future__ import annotations

import os
from collections.abc import Mapping


def available_cpus(environ: Mapping[str, str] | None = None) -> int:
    """The number of CPUs this process may use, at least 1.

    The affinity mask (``os.sched_getaffinity``, where the platform has one; else
    ``os.cpu_count()``), then ``SLURM_CPUS_PER_TASK`` when it is set and smaller: SLURM sets it
    from ``--cpus-per-task``, and without task binding (``TaskPlugin=task/none``) the mask still
    holds the whole node. A value that is not a positive integer is ignored, as SLURM never sets
    one.

    Parameters
    ----------
    environ : the environment to read ``SLURM_CPUS_PER_TASK`` from (default ``os.environ``).

    Examples
    --------
    >>> from msgp.cpus import available_cpus
    >>> available_cpus({"SLURM_CPUS_PER_TASK": "1"})
    1
    """
    environ = os.environ if environ is None else environ
    if hasattr(os, "sched_getaffinity"):
        count = len(os.sched_getaffinity(0))
    else:
        count = os.cpu_count() or 1
    slurm = environ.get("SLURM_CPUS_PER_TASK", "").strip()
    if slurm.isdigit() and 0 < int(slurm) < count:
        count = int(slurm)
    return max(count, 1)
