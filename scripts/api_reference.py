"""Write docs/api.md: every public name of msgp's and backdrop's Python API, with the first sentence
of its docstring.

    python scripts/api_reference.py            # rewrite docs/api.md
    python scripts/api_reference.py --check    # exit 1 if docs/api.md is not current
    python scripts/api_reference.py --missing  # the public names that have no docstring

A module's public names are its ``__all__``, or, without one, the functions, classes and
assignments of its own source whose names do not start with an underscore. A class or function is
summed up by its own docstring (never one inherited, nor the signature a dataclass writes in place
of a missing one); a value (a constant, a table, a type alias) by the comment just above its
assignment, the comment at the end of its line, or a string just below it. tests/test_api_reference.py
fails when the page is not what this script writes.
"""
from __future__ import annotations

import argparse
import ast
import dataclasses
import importlib
import importlib.util
import inspect
import re
import sys
import tokenize
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "api.md"
MODULES = ("msgp", "backdrop", "backdrop.functional", "backdrop.models", "backdrop.training", "backdrop.experiment")
COMMAND = "python scripts/api_reference.py"
MISSING = "*(no docstring)*"
# Words whose full stop does not end a sentence.
ABBREVIATIONS = {"e.g", "i.e", "etc", "vs", "cf", "al", "approx", "Fig", "Eq", "no"}

HEADER = f"""# Python API reference

Every public name of the packages (a module's `__all__`, or its public functions, classes and
values where it has none), in alphabetical order, with the first sentence of its docstring (of a
value, the comment beside its assignment). The other pages say how the pieces fit together;
`help(name)` in Python shows the whole docstring.

`{COMMAND}` writes this page from the docstrings, and
`tests/test_api_reference.py` fails when it is not current. Names marked {MISSING} have none yet.
"""


@dataclasses.dataclass(frozen=True)
class Entry:
    """One public name: what it is, and its summary (None when it has no docstring)."""

    name: str
    kind: str
    summary: str | None
    origin: str | None  # the module that defines it, where that is not the one listing it


def first_sentence(text: str) -> str:
    """The first sentence of a docstring's first paragraph, on one line, reST markup made Markdown,
    ending with a full stop."""
    sentence = _first_sentence(text)
    return sentence if sentence[-1:] in ".!?" else f"{sentence}."


def _first_sentence(text: str) -> str:
    paragraph = " ".join(line.strip() for line in inspect.cleandoc(text).split("\n\n")[0].splitlines())
    # :class:`~a.b.Name` reads `Name`, :func:`a.b` reads `a.b`, as Sphinx shows them
    paragraph = re.sub(r":[a-z]+:`(~?)([^`]+)`",
                       lambda m: f"`{m.group(2).split('.')[-1] if m.group(1) else m.group(2)}`", paragraph)
    paragraph = paragraph.replace("``", "`")
    depth, code = 0, False
    for i, char in enumerate(paragraph):
        if char == "`":
            code = not code
        elif code:
            continue
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth = max(depth - 1, 0)
        elif char in ".!?" and depth == 0 and (i + 1 == len(paragraph) or paragraph[i + 1] == " "):
            word = re.search(r"[\w.]*$", paragraph[:i]).group(0)
            if word not in ABBREVIATIONS:
                return paragraph[:i + 1]
    return paragraph


def module_file(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    return Path(spec.origin) if spec is not None and spec.origin and spec.origin.endswith(".py") else None


def absolute(module: str, node: ast.ImportFrom) -> str:
    """The module an ``from ... import`` statement in ``module`` reads from."""
    if not node.level:
        return node.module
    package = module if module_file(module).name == "__init__.py" else module.rpartition(".")[0]
    for _ in range(node.level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{node.module}" if node.module else package


def statements(tree: ast.Module):
    """A module's top-level statements, those under a top-level ``if`` or ``try`` included."""
    for node in tree.body:
        yield node
        if isinstance(node, (ast.If, ast.Try)):
            for block in (node.body, getattr(node, "orelse", []), getattr(node, "finalbody", [])):
                yield from block


def assigned(node: ast.stmt) -> list[str]:
    targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
    return [t.id for t in targets if isinstance(t, ast.Name)]


def definition(module: str, name: str, depth: int = 0):
    """Where ``name`` of ``module`` is assigned: (module, its source lines, the statement, the next
    statement), followed through ``from ... import`` statements; None when it is not found."""
    path = module_file(module)
    if path is None or depth > 10:
        return None
    source = path.read_text()
    body = list(statements(ast.parse(source)))
    for i, node in enumerate(body):
        if name in assigned(node):
            return module, source.splitlines(), node, body[i + 1] if i + 1 < len(body) else None
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if (alias.asname or alias.name) == name:
                    found = definition(absolute(module, node), alias.name, depth + 1)
                    if found is not None:
                        return found
    return None


def comment_summary(lines: list[str], node: ast.stmt, following: ast.stmt | None) -> str | None:
    """The comment above an assignment, else the one ending its line, else a string just below it."""
    above, i = [], node.lineno - 2
    while i >= 0 and lines[i].strip().startswith("#"):
        above.insert(0, lines[i].strip().lstrip("#").strip())
        i -= 1
    if above:
        return capital(first_sentence("\n".join(above)))
    last = lines[node.end_lineno - 1]
    comments = [t.string for t in tokenize.generate_tokens(iter([last + "\n"]).__next__)
                if t.type == tokenize.COMMENT] if "#" in last else []
    if comments:
        return capital(first_sentence(comments[-1].lstrip("#").strip()))
    if (isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)):
        return first_sentence(following.value.value)
    return None


def capital(sentence: str) -> str:
    """A comment made a summary: ``# fitted methods ...`` reads "Fitted methods ..."."""
    return sentence[:1].upper() + sentence[1:]


def own_doc(obj) -> str | None:
    """The object's own docstring: not a base class's, not the signature dataclasses write."""
    doc = vars(obj).get("__doc__") if isinstance(obj, type) else getattr(obj, "__doc__", None)
    if isinstance(obj, type) and dataclasses.is_dataclass(obj) and doc and doc.startswith(f"{obj.__name__}("):
        return None
    return doc if doc and doc.strip() else None


def kind_of(obj) -> str:
    if isinstance(obj, types.ModuleType):
        return "module"
    if isinstance(obj, type):
        return "exception" if issubclass(obj, BaseException) else "class"
    if inspect.isroutine(obj):
        return "function"
    return "value"


def public_names(module: types.ModuleType) -> list[str]:
    if hasattr(module, "__all__"):
        return list(module.__all__)
    path = module_file(module.__name__)
    if path is None:  # a namespace package: no source of its own
        return [n for n in dir(module) if not n.startswith("_")]
    names = []
    for node in statements(ast.parse(path.read_text())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.append(node.name)
        names.extend(assigned(node))
    return [n for n in dict.fromkeys(names) if not n.startswith("_")]


def entry(module: types.ModuleType, name: str) -> Entry:
    obj = getattr(module, name)
    kind = kind_of(obj)
    if kind == "module":
        if obj.__name__.split(".")[0] not in ("msgp", "backdrop"):
            return Entry(name, kind, f"`{obj.__name__}`, re-exported.", None)
        doc = own_doc(obj)
        return Entry(name, kind, first_sentence(doc) if doc else None, None)
    if kind in ("class", "exception", "function"):
        doc = own_doc(obj)
        origin = getattr(obj, "__module__", None)
        return Entry(name, kind, first_sentence(doc) if doc else None, origin if origin != module.__name__ else None)
    found = definition(module.__name__, name)
    if found is None:
        return Entry(name, kind, None, None)
    where, lines, node, following = found
    return Entry(name, kind, comment_summary(lines, node, following), where if where != module.__name__ else None)


def entries(module_name: str) -> list[Entry]:
    module = importlib.import_module(module_name)
    return [entry(module, name) for name in sorted(public_names(module), key=lambda n: (n.lower(), n))]


def render() -> str:
    """The whole page, as this checkout's docstrings make it."""
    parts = [HEADER]
    for name in MODULES:
        module = importlib.import_module(name)
        doc = own_doc(module)
        parts.append(f"## `{name}`\n\n{first_sentence(doc) if doc else MISSING}\n")
        rows = []
        for e in entries(name):
            where = f" From `{e.origin}`." if e.origin else ""
            rows.append(f"- `{e.name}` ({e.kind}): {e.summary or MISSING}{where}")
        parts.append("\n".join(rows) + "\n")
    return "\n".join(parts)


def missing() -> list[str]:
    """The public names (and listed modules) that have no docstring, as ``module.name``."""
    names = [name for name in MODULES if not own_doc(importlib.import_module(name))]
    return names + [f"{module}.{e.name}" for module in MODULES for e in entries(module) if e.summary is None]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--check", action="store_true", help="exit 1 if docs/api.md is not current")
    group.add_argument("--missing", action="store_true", help="list the public names that have no docstring")
    args = parser.parse_args(argv)
    if args.missing:
        print("\n".join(missing()))
        return 0
    page = render()
    if args.check:
        current = PAGE.exists() and PAGE.read_text() == page
        if not current:
            print(f"docs/api.md is not current: run `{COMMAND}`", file=sys.stderr)
        return 0 if current else 1
    PAGE.write_text(page)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
