"""The structure figures of the codebase: import cycles and upward edges (the layers of
tests/test_layering.py), lines of library code, and the longest functions.

    python benchmarks/code_structure.py            # this checkout
    python benchmarks/code_structure.py --top 20   # more of the longest functions

A function's length is its code lines, from the first statement after its docstring to its last.
"""
from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
import test_layering as layering  # noqa: E402


def code_lines(function: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    body = function.body
    first = body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        body = body[1:]
    return body[-1].end_lineno - body[0].lineno + 1 if body else 0


def library_files() -> list[Path]:
    return sorted([*ROOT.glob("msgp/**/*.py"), *ROOT.glob("backdrop/**/*.py")])


def counted_lines(path: Path) -> int:
    """Lines that are neither blank nor comments (docstrings count)."""
    return sum(1 for line in path.read_text().splitlines() if line.strip() and not line.strip().startswith("#"))


def longest_functions(paths: list[Path]) -> list[tuple[int, str]]:
    rows = []
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                rows.append((code_lines(node), f"{path.relative_to(ROOT)}:{node.lineno} {node.name}"))
    return sorted(rows, reverse=True)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module: each is one or more cycles."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def connect(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph[node]:
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--top", type=int, default=10, help="longest functions to list")
    args = parser.parse_args()
    graph = layering.edges()
    upward = layering.upward_edges(graph)
    components = cycles(graph)
    print(f"modules in import cycles: {len(components)} groups")
    for component in components:
        print("  " + ", ".join(component))
    print(f"upward edges: {len(upward)}")
    for edge in upward:
        print("  " + edge)
    library = library_files()
    print(f"library code: {sum(map(counted_lines, library))} lines in {len(library)} files "
          f"(msgp/, backdrop/); cli.py {counted_lines(ROOT / 'cli.py')}")
    rows = longest_functions([*library, ROOT / "cli.py"])
    print(f"functions over 60 code lines: {sum(length > 60 for length, _ in rows)}")
    for length, where in rows[:args.top]:
        print(f"  {length:4d}  {where}")


if __name__ == "__main__":
    main()
