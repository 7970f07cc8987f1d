"""The one family of errors a user of msgp or backdrop can cause.

Every such error is a :class:`MSGPError`; the specific classes also derive from the built-in
exception a Python caller would expect (``ValueError``, ``TypeError``, ``RuntimeError``), so both
``except msgp.MSGPError`` and ``except ValueError`` catch a bad value.

Messages speak Python: they name the parameter and the value a caller passed, in backquotes,
``"`crop` must be at least 1 pixel, but got 0"`` or ``"pass `overwrite=True` to replace it"``.
The command line, and only it, words them as its flags (``--crop``, ``--overwrite``) with
:func:`reword`, so one message serves both.

This module imports nothing else of msgp's, so the torch-only layer can raise these too.
"""
from __future__ import annotations

import re
from typing import Callable

__all__ = ["MSGPError", "reword"]


class MSGPError(Exception):
    """Base class of every error a user can cause: a bad argument, a bad or missing file, an
    unusable device, a run that cannot go on. Its message is one line, fit to print as it is."""


# `name` or `name=value`, where name is a Python identifier: a parameter named in a message.
_NAMED = re.compile(r"`([A-Za-z_][A-Za-z0-9_]*)(?:=([^`]*))?`")


def reword(message: str, spell: Callable[[str, str | None], str | None]) -> str:
    """``message`` with each backquoted parameter, ```name``` or ```name=value```, replaced by
    ``spell(name, value)`` (``value`` is ``None`` for a bare name, else its text); where ``spell``
    returns ``None`` the backquoted text stays as it is."""
    def replace(match: re.Match) -> str:
        worded = spell(match[1], match[2])
        return match[0] if worded is None else worded
    return _NAMED.sub(replace, message)
