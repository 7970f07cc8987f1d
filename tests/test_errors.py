"""One error family: every exception class msgp and backdrop define is an msgp.MSGPError (and the
built-in a Python caller expects), so `except msgp.MSGPError` catches every error a user can
cause, and the command line catches that one class."""
import importlib
import inspect
from pathlib import Path

import pytest

from msgp import MSGPError

ROOT = Path(__file__).resolve().parent.parent
# A requested stop (Ctrl-C, a should_stop callback) is not bad input: the CLI exits 130 on it.
OUTSIDE = {"backdrop.training.config.Interrupted"}
OPTIONAL = {"backdrop.experiment.anchors"}  # imports kymatio when its anchor is asked for, not before


def module_names():
    for path in sorted([*ROOT.glob("msgp/**/*.py"), *ROOT.glob("backdrop/**/*.py")]):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__main__":
            continue
        yield ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def defined_exceptions():
    for name in module_names():
        module = importlib.import_module(name)
        for cls in vars(module).values():
            if inspect.isclass(cls) and issubclass(cls, BaseException) and cls.__module__ == name:
                yield f"{name}.{cls.__qualname__}", cls


def test_every_exception_class_is_in_the_family():
    found = dict(defined_exceptions())
    assert len(found) >= 20, sorted(found)  # the walk saw the packages' classes
    outside = sorted(name for name, cls in found.items() if not issubclass(cls, MSGPError))
    assert outside == sorted(OUTSIDE), outside


@pytest.mark.parametrize("name", sorted(OUTSIDE))
def test_what_stays_outside_says_why(name):
    module, _, cls = name.rpartition(".")
    assert "Not an :class:`msgp.MSGPError`" in getattr(importlib.import_module(module), cls).__doc__


def test_each_error_is_also_a_builtin():
    """``except ValueError`` (or TypeError, RuntimeError) still catches what it caught before."""
    for name, cls in defined_exceptions():
        if issubclass(cls, MSGPError) and cls is not MSGPError:
            assert issubclass(cls, (ValueError, TypeError, RuntimeError, OSError, LookupError)), name
