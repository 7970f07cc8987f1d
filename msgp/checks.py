"""Argument checks for the public constructors, in the manner of ``torch.nn.Dropout``: a bad
argument is refused where it is given, with one line that names the argument and the value it got.

A value of the wrong type raises a :class:`TypeError`, a value of the right type outside what the
argument allows a :class:`ValueError`: by default :class:`~msgp.errors.ArgumentTypeError` and
:class:`~msgp.errors.ArgumentError`, both of the :class:`~msgp.errors.MSGPError` family. Each
module may pass its own pair of classes, so that the errors its callers already catch
(``SpecError``, ``ConfigError``) keep coming.

Every count of processes, threads or jobs (``workers``, ``jobs``) is checked with
:meth:`Checks.integer` and a minimum of 1, and every shard ``(index, count)`` with
:meth:`Checks.shard` (or :meth:`Checks.shard_text` for the ``"I/N"`` a command line takes).
"""
from __future__ import annotations

import math
import os
from collections.abc import Callable

import numpy as np

from .errors import ArgumentError, ArgumentTypeError


class Checks:
    """The checks of one module.

    Parameters
    ----------
    value_error : raised for a value outside what the argument allows (a ValueError subclass).
    type_error : raised for a value of the wrong type (a TypeError subclass).
    quote : name the argument in backquotes (```workers` must be at least 1``), as a message that
        the command line words as its flag (``--workers``) does. The dataset description's checks
        do not: their names are also the keys of a preset file, which is no flag.

    Examples
    --------
    >>> Checks(quote=True).integer("workers", 0, 1, what="at least 1")
    Traceback (most recent call last):
    ...
    msgp.errors.ArgumentError: `workers` must be at least 1, but got 0
    """

    def __init__(self, value_error: type[ValueError] = ArgumentError, type_error: type[TypeError] = ArgumentTypeError,
                 *, quote: bool = False):
        self.value_error = value_error
        self.type_error = type_error
        self.quote = quote

    def _name(self, name: str) -> str:
        return f"`{name}`" if self.quote else name

    def _refuse(self, name: str, value, what: str, wrong_type: bool):
        error = self.type_error if wrong_type else self.value_error
        raise error(f"{self._name(name)} must be {what}, but got {value!r}")

    def integer(self, name: str, value, minimum: int, maximum: int | None = None, what: str | None = None) -> int:
        """``value`` as an int, if it is an integer (not a bool) from ``minimum`` to ``maximum``."""
        what = what or (_at_least(minimum) if maximum is None else f"an integer from {minimum} to {maximum}")
        if not is_integer(value):
            self._refuse(name, value, what, True)
        if value < minimum or (maximum is not None and value > maximum):
            self._refuse(name, value, what, False)
        return int(value)

    def number(self, name: str, value, what: str, allowed: Callable[[float], bool] = lambda v: True) -> float:
        """``value`` as a float, if it is a finite real number (not a bool) that ``allowed`` accepts."""
        if not is_number(value):
            self._refuse(name, value, what, True)
        if not (math.isfinite(value) and allowed(float(value))):
            self._refuse(name, value, what, False)
        return float(value)

    def flag(self, name: str, value) -> bool:
        """``value`` as a bool, if it is one (``0`` and ``"no"`` are not)."""
        if not isinstance(value, (bool, np.bool_)):
            self._refuse(name, value, "True or False", True)
        return bool(value)

    def choice(self, name: str, value, choices, what: str | None = None) -> str:
        """``value``, if it is one of the strings ``choices``."""
        what = what or "one of " + ", ".join(choices)
        if not isinstance(value, str):
            self._refuse(name, value, what, True)
        if value not in choices:
            self._refuse(name, value, what, False)
        return value

    def numbers(self, name: str, value, what: str) -> tuple[float, ...]:
        """``value`` as a tuple of floats, if it is a sequence of real numbers (bools and strings are not)."""
        if not is_sequence(value) or not all(is_number(v) for v in value):
            self._refuse(name, value, what, True)
        return tuple(float(v) for v in value)

    def path(self, name: str, value, what: str = "a path (a str or an os.PathLike)") -> str | os.PathLike:
        """``value``, if it names a file: a str or an ``os.PathLike``."""
        if not isinstance(value, (str, os.PathLike)):
            self._refuse(name, value, what, True)
        return value


    def shard(self, name: str, value) -> tuple[int, int]:
        """``value`` as ``(index, count)``, if it names shard ``index`` of ``count``: two integers
        (not bools) with ``0 <= index < count``."""
        if not (is_sequence(value) and len(value) == 2 and all(map(is_integer, value))):
            self._refuse(name, value, "a pair (index, count) of integers", True)
        index, count = int(value[0]), int(value[1])
        if count < 1:
            raise self.value_error(f"{self._name(name)} {index}/{count}: N must be at least 1")
        if not 0 <= index < count:
            raise self.value_error(f"{self._name(name)} {index}/{count}: shards of {count} are numbered 0 to {count - 1}")
        return index, count

    def shard_text(self, name: str, text: str) -> tuple[int, int]:
        """The shard ``"I/N"`` (``"3/16"``) as ``(I, N)``, checked as :meth:`shard` checks it."""
        if not isinstance(text, str):
            self._refuse(name, text, "a shard 'I/N' such as '0/16'", True)
        index, _, count = text.partition("/")
        if not (index.isdigit() and count.isdigit()):
            raise self.value_error(f"{self._name(name)} must look like I/N, e.g. 0/16, but got {text!r}")
        return self.shard(name, (int(index), int(count)))


def is_integer(value) -> bool:
    """An int or a numpy integer; not a bool, which is an int to Python but never meant as a count."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def is_number(value) -> bool:
    """A real number: an int, a float or a numpy one; not a bool."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def is_sequence(value) -> bool:
    """A list, tuple or 1-D-or-more array; a string is a sequence of characters, never of values."""
    return isinstance(value, (list, tuple)) or (isinstance(value, np.ndarray) and value.ndim >= 1)


def _at_least(minimum: int) -> str:
    if minimum == 1:
        return "a positive integer"
    if minimum == 0:
        return "a non-negative integer"
    return f"an integer of at least {minimum}"
