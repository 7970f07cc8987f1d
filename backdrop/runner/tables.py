"""The formats both experiment families write their tables and estimates in: csv files, markdown
text, ``mean ± std`` over seeds, paired intervals with their marks, and durations."""
from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from msgp.atomic import atomic_open, atomic_write


def write_csv(rows: Sequence[dict[str, Any]], path: Path, columns: Sequence[str]) -> Path:
    """``rows`` as a csv file with a header of ``columns``, in that order (a row's other keys are
    left out), written atomically; returns ``path``."""
    with atomic_open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_text(path: Path, text: str) -> Path:
    """``text`` written atomically to ``path``; returns ``path``."""
    atomic_write(path, text)
    return path


def mean_std(values: Sequence[float], digits: int = 3) -> str:
    """``mean ± std`` (sample std over seeds) with ``digits`` decimals; the mean alone for one value.

    Examples
    --------
    >>> mean_std([0.5, 0.7])
    '0.600 ± 0.141'
    """
    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        return f"{values.mean():.{digits}f}"
    return f"{values.mean():.{digits}f} ± {values.std(ddof=1):.{digits}f}"


def format_interval(row: dict[str, Any], digits: int = 3) -> str:
    """A paired difference as ``mean [low, high]`` with its mark: ``*`` for an interval that
    excludes zero, ``**`` for one still an effect after Holm's correction over its table
    (:func:`~backdrop.runner.holm_effects`).

    Examples
    --------
    >>> format_interval({"mean": 0.02, "low": 0.01, "high": 0.03, "effect": True, "holm_effect": False})
    '+0.020 [+0.010, +0.030] *'
    """
    mark = " **" if row["holm_effect"] else " *" if row["effect"] else ""
    return f"{row['mean']:+.{digits}f} [{row['low']:+.{digits}f}, {row['high']:+.{digits}f}]{mark}"


def duration(seconds: float) -> str:
    """``42 s``, ``12 min``, ``2 h 05 min`` or ``8.2 days``.

    Examples
    --------
    >>> duration(7500)
    '2 h 05 min'
    """
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        hours, minutes = divmod(round(seconds / 60), 60)
        return f"{hours} h {minutes:02d} min"
    return f"{seconds / 86400:.1f} days"
