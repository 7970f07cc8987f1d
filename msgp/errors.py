"""The one family of errors a user of msgp or backdrop can cause.

Every such error is a :class:`MSGPError`; the specific classes also derive from the built-in
exception a Python caller would expect (``ValueError``, ``TypeError``, ``RuntimeError``), so both
``except msgp.MSGPError`` and ``except ValueError`` catch a bad value.

Messages speak Python: they name the parameter and the value a caller passed, in backquotes,
``"`crop` must be at least 1 pixel, but got 0"`` or ``"pass `overwrite=True` to replace it"``.
The command line, and only it, words them as its flags (``--crop``, ``--overwrite``) with
:func:`reword`, so one message serves both.

msgp's own errors are defined here, one class per kind of problem, and each module that raises
one also offers it under its own name (``msgp.spec.SpecError``, ``msgp.io.FormatError``)::

    MSGPError
    ├── ArgumentError (ValueError)          any other bad argument (msgp.checks by default)
    │   └── ArgumentTypeError (TypeError)   ... of the wrong type
    ├── SpecError (ValueError)              a dataset description that cannot be generated
    │   └── SpecTypeError (TypeError)       ... a parameter of the wrong type
    ├── FileError (ValueError)              a file or path msgp cannot read or write
    │   └── FormatError                     not a readable, complete msgp file
    │       └── ReplacedFileError           no longer the file a dataset was made from
    ├── OracleError (ValueError)            a request the oracle cannot serve
    ├── SplitError (ValueError)             sizes a class-balanced split cannot give
    ├── DeviceUnavailable (RuntimeError)    a torch device this machine does not have
    └── PlotUnavailable (RuntimeError)      pictures without matplotlib

This module imports nothing else of msgp's, so the torch-only layer can raise these too.
"""
from __future__ import annotations

import re
from typing import Callable, Mapping, NamedTuple

__all__ = ["ArgumentError", "ArgumentIndexError", "ArgumentTypeError", "DeviceUnavailable", "FileError",
           "FormatError", "MSGPError", "Option", "OracleError", "PlotUnavailable", "ReplacedFileError",
           "SpecError", "SpecTypeError", "SplitError", "as_options", "reword"]


class MSGPError(Exception):
    """Base class of every error a user can cause: a bad argument, a bad or missing file, an
    unusable device, a run that cannot go on. Its message is one line, fit to print as it is."""


class ArgumentError(MSGPError, ValueError):
    """An argument outside what its parameter allows (:class:`msgp.checks.Checks`' default)."""


class ArgumentTypeError(ArgumentError, TypeError):
    """An argument of the wrong type: a TypeError, as Python has it, that is also an
    :class:`ArgumentError`."""


class ArgumentIndexError(MSGPError, IndexError):
    """An index beyond a dataset's samples: an IndexError, as a sequence raises (a loop over
    ``dataset[i]`` ends on it), that is also an :class:`MSGPError`."""


class SpecError(MSGPError, ValueError):
    """A dataset description that cannot be generated; the message is one line for the user."""


class SpecTypeError(SpecError, TypeError):
    """A dataset parameter of the wrong type: a TypeError, as Python has it, that is also a
    :class:`SpecError`, so that a caller catching those (the preset loader, the command line)
    answers a preset's ``"n": "ten"`` in one line too (numpy's AxisError is both a ValueError and
    an IndexError for the same reason)."""


class FileError(MSGPError, ValueError):
    """A problem with a file or a path (missing, not writable, no space, locked by another
    process, already there), described in one line."""


class FormatError(FileError):
    """The file is not a readable msgp format-1 file, or is incomplete."""


class ReplacedFileError(FormatError):
    """The file at a dataset's path is no longer the one the dataset was made from."""


class OracleError(MSGPError, ValueError):
    """A request the oracle cannot serve (bad indices, crop), described in one line."""


class SplitError(MSGPError, ValueError):
    """Sizes a class-balanced split cannot give; the message is one line for the user."""


class DeviceUnavailable(MSGPError, RuntimeError):
    """The requested torch device does not exist on this machine; the message is one line."""


class PlotUnavailable(MSGPError, RuntimeError):
    """matplotlib is not installed; the message is one line for the user."""


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


class Option(NamedTuple):
    """How a command spells a parameter: ``flag`` (``--crop``), whether it is an on/off flag, and
    the flag that turns it off (``--no-whiten``; ``None`` where there is none)."""

    flag: str
    is_flag: bool = False
    off: str | None = None


def as_options(message: str, options: Mapping[str, Option]) -> str:
    """``message`` with each backquoted parameter a command has an option for worded as that option
    (:func:`reword`): ```crop``` as ``--crop``, ```crop=8``` as ``--crop 8``, ```overwrite=True```
    as ``--overwrite``, ```whiten=False``` as ``--no-whiten`` (``no --flag`` where the flag has no
    off form); names not in ``options`` stay as they are.

    Examples
    --------
    >>> as_options("pass `overwrite=True`, or a smaller `crop=8`; `other`",
    ...            {"overwrite": Option("--overwrite", is_flag=True), "crop": Option("--crop")})
    'pass --overwrite, or a smaller --crop 8; `other`'
    """
    def spell(name: str, value: str | None) -> str | None:
        option = options.get(name)
        if option is None:
            return None
        if option.is_flag and value in ("True", "False"):
            return option.flag if value == "True" else option.off or f"no {option.flag}"
        return option.flag if value is None else f"{option.flag} {value}"
    return reword(message, spell)
