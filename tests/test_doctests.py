"""The examples in the docstrings of msgp/ and backdrop/ (their ``>>>`` lines) run and print what
they say they print, with the module's own names in scope as ``python -m doctest`` gives them.

Only the files of the two packages are read: cli.py, benchmarks/ and examples/ are never imported
as test modules, and each example runs once, in the module that defines it."""
from __future__ import annotations

import doctest
import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("msgp", "backdrop")
# The extras of setup.cfg: a module that needs one not installed here is skipped, not failed.
OPTIONAL = {"kymatio", "sklearn", "matplotlib", "tensorboard"}
PROMPT = re.compile(r"^\s*>>>( |$)", re.M)
FILES = sorted(path for package in PACKAGES for path in (ROOT / package).rglob("*.py")
               if path.name != "__main__.py" and PROMPT.search(path.read_text()))


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_the_packages_have_examples_to_run():
    assert {module_name(path).split(".")[0] for path in FILES} == set(PACKAGES)


@pytest.mark.parametrize("path", FILES, ids=[path.relative_to(ROOT).as_posix() for path in FILES])
def test_docstring_examples(path):
    name = module_name(path)
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as error:
        if (error.name or "").split(".")[0] in OPTIONAL:
            pytest.skip(f"{name} needs {error.name}, which is not installed")
        raise
    tests = [test for test in doctest.DocTestFinder().find(module, name) if test.examples]
    # Every '>>>' of the file is an example that runs: none sits where the finder cannot reach it.
    assert sum(len(test.examples) for test in tests) == len(PROMPT.findall(path.read_text())), name
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    report: list[str] = []
    for test in tests:
        runner.run(test, out=report.append)
    assert runner.failures == 0, "".join(report)
