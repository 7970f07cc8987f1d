"""Shards: a plan's runs dealt by cost to ``N`` processes (a cluster's job array, one output
directory on a shared file system), so that each computes the same deal and together they run
every run once."""
from __future__ import annotations

import heapq
from collections.abc import Callable, Hashable, Mapping
from typing import TypeVar

Item = TypeVar("Item", bound=Hashable)


def deal(costs: Mapping[Item, float], count: int, name: Callable[[Item], str]) -> list[list[Item]]:
    """The items of ``costs`` dealt to ``count`` shards: the costliest first, each to the shard
    with the least cost so far (the first such shard on a tie), items of equal cost by ``name``.
    The deal depends on the costs alone, not on the order the items come in.

    Examples
    --------
    >>> deal({"a": 3, "b": 2, "c": 2, "d": 1}, 2, str)
    [['a', 'd'], ['b', 'c']]
    """
    shards: list[list[Item]] = [[] for _ in range(count)]
    heap = [(0, index) for index in range(count)]
    for item in sorted(costs, key=lambda i: (-costs[i], name(i))):
        load, index = heapq.heappop(heap)
        shards[index].append(item)
        heapq.heappush(heap, (load + costs[item], index))
    return shards
