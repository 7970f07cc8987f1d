"""Progress of the long commands, on a terminal and in a log.

On a terminal, :func:`progress_bar` is a tqdm bar. Elsewhere (a SLURM log, a pipe, a file) a bar
is either hidden, so the log says nothing for hours, or redrawn with carriage returns into one
endless line; there it is a :class:`LineProgress`, which prints a plain line to stderr at most
every :data:`STEP` of the total or every :data:`INTERVAL_S` seconds, whichever comes first.
"""
from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import IO, Any

STEP = 0.05
INTERVAL_S = 120.0


def progress_bar(*, total: int | None = None, initial: int = 0, unit: str = "it", desc: str = "",
                 disable: bool = False, file: IO[str] | None = None, **bar_options: Any):
    """A tqdm bar when ``file`` (default stderr) is a terminal, else a :class:`LineProgress`.

    Parameters
    ----------
    total, initial, unit, desc : as tqdm's: the count expected, the count already done, what is
        counted, and the line's name.
    disable : show nothing (e.g. on every rank but the first of a distributed run).
    file : where the progress goes.
    bar_options : further tqdm options, used on a terminal only.
    """
    file = sys.stderr if file is None else file
    if not disable and file.isatty():
        from tqdm import tqdm

        return tqdm(total=total, initial=initial, unit=unit, desc=desc, file=file, **bar_options)
    return LineProgress(total=total, initial=initial, unit=unit, desc=desc, disable=disable, file=file)


class LineProgress:
    """The part of tqdm's interface the commands use, printing plain lines.

    A line such as ``generate: 1200/10000 samples (12%), 41 s, about 5 min left`` is printed when
    the count has grown by :data:`STEP` of the total since the last line, when :data:`INTERVAL_S`
    seconds have passed since it (checked at each update), and when the total is reached.
    :meth:`write` prints a message to stdout, as ``tqdm.write`` does.

    Parameters
    ----------
    total, initial, unit, desc, disable, file : as :func:`progress_bar`'s.
    clock : seconds, monotonic (a test's own clock).
    """

    def __init__(self, total: int | None = None, initial: int = 0, unit: str = "it", desc: str = "",
                 disable: bool = False, file: IO[str] | None = None, clock: Callable[[], float] = time.monotonic):
        self.unit, self.desc, self.disable, self.clock = unit, desc, disable, clock
        self.file = sys.stderr if file is None else file
        self.postfix: dict[str, Any] = {}
        self.reset(total, initial)

    def reset(self, total: int | None = None, initial: int = 0) -> None:
        """Start counting again towards ``total`` from ``initial``."""
        self.total, self.n, self.started_n = total, initial, initial
        self.started = self.last_time = self.clock()
        self.last_n = initial

    def update(self, n: int = 1) -> None:
        self.n += n
        if self.disable:
            return
        now = self.clock()
        reached = self.total is not None and self.n >= self.total > self.last_n
        grown = self.total is not None and self.n - self.last_n >= STEP * self.total
        if reached or grown or now - self.last_time >= INTERVAL_S:
            self.file.write(self.line(now) + "\n")
            self.file.flush()
            self.last_n, self.last_time = self.n, now

    def line(self, now: float) -> str:
        """The progress line at time ``now``."""
        elapsed = now - self.started
        done = f"{self.n}/{self.total}" if self.total else f"{self.n}"
        text = f"{self.desc + ': ' if self.desc else ''}{done} {self.unit}s"
        if self.total:
            text += f" ({100 * self.n / self.total:.0f}%)"
        text += f", {_duration(elapsed)}"
        rate = (self.n - self.started_n) / elapsed if elapsed > 0 else 0.0
        if self.total and rate > 0 and self.n < self.total:
            text += f", about {_duration((self.total - self.n) / rate)} left"
        return text + "".join(f", {key} {value}" for key, value in self.postfix.items())

    def set_postfix(self, postfix: dict[str, Any], refresh: bool = True) -> None:
        """Values shown at the end of the next line (``refresh`` is tqdm's; a line waits for its time)."""
        self.postfix = dict(postfix)

    def write(self, message: str) -> None:
        print(message, file=sys.stdout, flush=True)

    def close(self) -> None:
        """Nothing to clear: the lines stay in the log."""

    def __enter__(self) -> "LineProgress":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _duration(seconds: float) -> str:
    """``42 s``, ``12 min`` or ``2 h 05 min``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    hours, minutes = divmod(round(seconds / 60), 60)
    return f"{hours} h {minutes:02d} min"
