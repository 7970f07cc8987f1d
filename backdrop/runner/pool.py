"""Running an experiment's runs: in this process, or ``jobs`` at a time, each in a process of its
own with one torch thread (runs at once would otherwise share the cores' threads and each go
slower than alone)."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from typing import Any

import torch

from ..training import Progress


def _one_thread(work: Callable[..., dict[str, Any]], *args) -> dict[str, Any]:
    torch.set_num_threads(1)
    return work(*args)


def execute_all(work: Callable[..., dict[str, Any]], tasks: Sequence[tuple], jobs: int = 1,
                notify: Progress | None = None) -> list[dict[str, Any]]:
    """``work(*task)`` for every task, and ``notify("done", result)`` as each ends.

    With ``jobs`` 1 the tasks run in this process, in order, with torch's threads; otherwise
    ``jobs`` at a time, each in its own spawned process with one thread (``work`` and the tasks
    must then pickle: a module-level function and plain values). The results come back in the
    tasks' order, however the runs finished.
    """
    notify = notify or (lambda event, info: None)
    if jobs == 1:
        results = []
        for task in tasks:
            results.append(work(*task))
            notify("done", results[-1])
        return results
    done: dict[int, dict[str, Any]] = {}
    with ProcessPoolExecutor(jobs, mp_context=get_context("spawn")) as pool:
        futures = {pool.submit(_one_thread, work, *task): i for i, task in enumerate(tasks)}
        for future in as_completed(futures):
            done[futures[future]] = future.result()
            notify("done", done[futures[future]])
    return [done[i] for i in range(len(tasks))]
