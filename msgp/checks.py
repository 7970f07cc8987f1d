"""Argument checks for the public constructors, in the manner of ``torch.nn.Dropout``: a bad
argument is refused where it is given, with one line that names the argument and the value it got.

A value of the wrong type raises a :class:`TypeError`, a value of the right type outside what the
argument allows a :class:`ValueError`. Each module passes its own pair of classes, so that the
errors its callers already catch (``SpecError``, ``ConfigError``) keep coming.
"""
from __future__ import annotations

import math
import os
from collections.abc import Callable

import numpy as np


class Checks:
    """The checks of one module.

    Parameters
    ----------
    value_error : raised for a value outside what the argument allows (a ValueError subclass).
    type_error : raised for a value of the wrong type (a TypeError subclass).
    """

    def __init__(self, value_error: type[ValueError] = ValueError, type_error: type[TypeError] = TypeError):
        self.value_error = value_error
        self.type_error = type_error

    def _refuse(self, name: str, value, what: str, wrong_type: bool):
        error = self.type_error if wrong_type else self.value_error
        raise error(f"{name} must be {what}, but got {value!r}")

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
