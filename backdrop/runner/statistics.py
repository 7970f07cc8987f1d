"""Paired differences between two methods' runs and Holm's correction over a table of them, the
statistics of both experiment families' comparisons.

Runs of two methods with the same seed share their training samples (and the samples they are
scored on), so differences are paired by seed: :func:`paired_difference` gives the mean difference,
its 95% t interval and the paired t test's p value, and an effect is claimed only when the interval
excludes zero. A table holds many such intervals, so :func:`holm` says which of them still exclude
zero once the whole table is one family of tests (:func:`holm_effects`).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats


def paired_difference(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> dict[str, float]:
    """Mean of ``a[i] - b[i]`` with its two-sided t interval at ``level``.

    Returns ``{"n", "mean", "low", "high", "effect", "p"}``; ``effect`` is true when the interval
    excludes zero, ``p`` is the two-sided paired t test's p value (below ``1 - level`` exactly when
    ``effect`` is). With one pair the interval is infinite and ``p`` is 1; where every pair differs
    by the same amount the interval is that point, and ``p`` is 0 unless the amount is 0.

    Examples
    --------
    >>> paired_difference([3.0, 4.0], [1.0, 1.0])["mean"]
    2.5
    """
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    n = len(d)
    if n == 0:
        raise ValueError("no pairs to compare")
    mean = float(d.mean())
    if n < 2:
        half, p = math.inf, 1.0
    else:
        se = float(d.std(ddof=1)) / math.sqrt(n)
        half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * se
        p = float(2 * stats.t.sf(abs(mean) / se, n - 1)) if se > 0 else float(mean == 0)
    return {"n": n, "mean": mean, "low": mean - half, "high": mean + half,
            "effect": bool(mean - half > 0 or mean + half < 0), "p": p}


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p values of one family of tests, in the order given.

    With the p values sorted, ``p_(1) <= ... <= p_(m)``, the i-th adjusted value is
    ``max_{j <= i} min(1, (m - j + 1) p_(j))``; a test is rejected at family-wise error rate
    ``alpha`` (the chance of any false effect in the family, whichever nulls are true) when its
    adjusted value is below ``alpha``. Holm rather than Benjamini–Hochberg: a starred effect in a
    table is read as a claim on its own, so the guarantee wanted is that every starred effect is
    real with probability ``1 - alpha``, not that a fraction of them is; and Holm needs no
    assumption on how the tests depend on one another, where the intervals of one table share
    seeds, runs and references.

    Examples
    --------
    >>> holm([0.01, 0.04, 0.03])
    [0.03, 0.06, 0.06]
    """
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted, running = [0.0] * m, 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def holm_effects(rows: Sequence[dict[str, Any]], level: float = 0.95) -> list[dict[str, Any]]:
    """``rows`` (each a :func:`paired_difference` with its labels), one family, each with its
    :func:`holm` adjusted p value ``holm_p`` and ``holm_effect``: whether that is below ``1 - level``."""
    adjusted = holm([r["p"] for r in rows])
    return [{**r, "holm_p": q, "holm_effect": q < 1 - level} for r, q in zip(rows, adjusted, strict=True)]
