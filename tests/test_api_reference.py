"""docs/api.md is what scripts/api_reference.py makes of this checkout's docstrings, and the script
sums a name up by its own docstring, never one it inherits."""
from __future__ import annotations

import dataclasses
import importlib.util
import sys
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "api_reference.py"


def load():
    spec = importlib.util.spec_from_file_location("api_reference", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["api_reference"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


api = load()


def test_the_page_is_current():
    page = api.render()
    assert (ROOT / "docs" / "api.md").read_text() == page, "docs/api.md is not current: run `python scripts/api_reference.py`"
    for module in api.MODULES:
        assert f"## `{module}`" in page


def test_every_public_name_is_listed():
    for module in api.MODULES:
        names = [entry.name for entry in api.entries(module)]
        assert names and len(names) == len(set(names)), module
        imported = importlib.import_module(module)
        if hasattr(imported, "__all__"):
            assert sorted(names) == sorted(imported.__all__), module


def test_the_first_sentence_of_a_docstring_on_one_line():
    assert api.first_sentence("Draw a mask.\n\nMore.") == "Draw a mask."
    assert api.first_sentence("Score the run (e.g. on\n    its test set, p 0.5). Then more.") == \
        "Score the run (e.g. on its test set, p 0.5)."
    assert api.first_sentence("The :class:`~backdrop.models.MultiScaleNet` of ``x``: no full stop") == \
        "The `MultiScaleNet` of `x`: no full stop."
    assert api.first_sentence("See :func:`msgp.io.write`. Then") == "See `msgp.io.write`."


def test_a_name_without_its_own_docstring_is_marked_missing():
    class Quiet(Exception):
        pass

    @dataclasses.dataclass
    class Plain:
        x: int = 0

    def silent():
        pass

    def spoken():
        """Speaks."""

    module = types.ModuleType("fake_module_for_api_reference")
    module.Quiet, module.Plain, module.silent, module.spoken, module.VALUE = Quiet, Plain, silent, spoken, 3
    module.__all__ = ["Quiet", "Plain", "silent", "spoken", "VALUE"]
    summaries = {name: api.entry(module, name).summary for name in module.__all__}
    assert summaries == {"Quiet": None, "Plain": None, "silent": None, "spoken": "Speaks.", "VALUE": None}
    assert api.entry(module, "Quiet").kind == "exception" and api.entry(module, "VALUE").kind == "value"


def test_a_value_is_summed_up_by_the_comment_beside_it():
    source = ("# Seconds per run beyond its steps: building the network.\n# And more.\nOVERHEAD = 1.0\n"
              "ANCHORS = ('a', 'b')  # fitted methods that are not networks\n"
              "PLANS = {}\n\"\"\"The named plans.\"\"\"\nBARE = 2\n")
    import ast
    body = ast.parse(source).body
    lines = source.splitlines()
    summaries = [api.comment_summary(lines, node, following) for node, following in zip(body, [*body[1:], None])
                 if isinstance(node, ast.Assign)]
    assert summaries == ["Seconds per run beyond its steps: building the network.",
                         "Fitted methods that are not networks.", "The named plans.", None]
