"""Confidence intervals for accuracies: :func:`wilson`, and :func:`format_accuracy` that prints one.

An accuracy is ``correct`` successes in ``n`` independent trials. Its interval is Wilson's score
interval, the set of proportions that a two-sided score test at ``1 - level`` does not reject. The
Wald interval ``p ± z sqrt(p(1 - p)/n)`` that it replaces has width zero at ``p = 0`` and ``p = 1``,
so an oracle right on every one of 64 images read ``100.0% ± 0.0%``, as certain as one right on a
million; Wilson's lower end there is ``n / (n + z²)`` (0.943 for 64 images at 95%). Wilson rather than
Clopper–Pearson's exact interval: Clopper–Pearson guarantees at least the nominal coverage at every
proportion and pays for it with intervals that cover well above it on average, while Wilson's
coverage stays close to the nominal one (Brown, Cai & DasGupta, Statistical Science 16, 2001), and it
has a closed form, so the core package needs no scipy call for it.
"""
from __future__ import annotations

import math
from numbers import Integral
from statistics import NormalDist

from .errors import ArgumentError


def wilson(correct: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson's score interval for a proportion of ``correct`` successes in ``n`` trials.

    Parameters
    ----------
    correct : successes, ``0 <= correct <= n``.
    n : trials, at least 1.
    level : two-sided confidence level, in (0, 1).

    Returns
    -------
    ``(low, high)``, with ``0 <= low <= correct / n <= high <= 1``.

    Examples
    --------
    >>> low, high = wilson(64, 64)
    >>> round(low, 3), high
    (0.943, 1.0)
    """
    if not (isinstance(n, Integral) and n >= 1):
        raise ArgumentError(f"n must be a positive integer, but got {n!r}")
    if not (isinstance(correct, Integral) and 0 <= correct <= n):
        raise ArgumentError(f"correct must be an integer between 0 and n = {n}, but got {correct!r}")
    if not 0.0 < level < 1.0:
        raise ArgumentError(f"level must be between 0 and 1, but got {level!r}")
    z = NormalDist().inv_cdf(0.5 + level / 2)
    p = correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    # At correct = 0 or n the exact ends are 0 and 1; the formula reaches them up to rounding.
    low = 0.0 if correct == 0 else max(0.0, centre - half)
    high = 1.0 if correct == n else min(1.0, centre + half)
    return low, high


def format_accuracy(result: dict) -> str:
    """``92.5% [88.0, 95.4]``: an accuracy (``result["accuracy"]``) and its interval
    (``result["low"]``, ``result["high"]``), in percent to one decimal."""
    return f"{100 * result['accuracy']:.1f}% [{100 * result['low']:.1f}, {100 * result['high']:.1f}]"
