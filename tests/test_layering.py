"""The import graph of msgp, backdrop and cli.py points one way (function-level imports included).

Layers, lowest first; a module may import its own layer and the layers below it, never above:

0. msgp's core: the errors, the version, kernels, the spec, spectra, the sampler and the small
   utilities every part uses (argument checks, atomic files, CPU counts, progress, intervals).
1. msgp's files and data: the HDF5 format, the writer, merging, the Datasets, the oracle, preview.
2. the backdrop layer (torch only): ``backdrop``, ``backdrop.functional``, ``backdrop.layer``,
   ``backdrop.distributed``.
3. ``backdrop.models`` (with the registry that builds a network from a user's file).
4. ``backdrop.training``.
5. ``backdrop.runner``: the experiment runner both experiment families share.
6. ``backdrop.experiment`` and ``backdrop.nondecomposable``, which do not import each other.
7. ``cli``.
8. entry points that load the CLI: ``msgp.__main__``.

No cycle anywhere, and no underscore name imported from another package. A package's
``__getattr__`` that loads a submodule on first access (``backdrop.training`` as an attribute of
``backdrop``) is not an import of it: nothing is loaded until a caller asks for that name.
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CORE = {"msgp", "msgp.errors", "msgp.version", "msgp.kernels", "msgp.spec", "msgp.spectral", "msgp.generate",
        "msgp.checks", "msgp.atomic", "msgp.cpus", "msgp.progress", "msgp.intervals"}
LAYER = {"backdrop": 2, "backdrop.functional": 2, "backdrop.layer": 2, "backdrop.distributed": 2}
FAMILIES = ("backdrop.experiment", "backdrop.nondecomposable")


def modules() -> dict[str, Path]:
    found = {}
    for path in [*ROOT.glob("msgp/**/*.py"), *ROOT.glob("backdrop/**/*.py"), ROOT / "cli.py"]:
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def layer(module: str) -> int:
    if module == "msgp.__main__":
        return 8
    if module == "cli":
        return 7
    if module.startswith("msgp"):
        return 0 if module in CORE else 1
    if module in LAYER:
        return LAYER[module]
    for prefix, number in (("backdrop.models", 3), ("backdrop.training", 4), ("backdrop.runner", 5),
                           *((family, 6) for family in FAMILIES)):
        if module == prefix or module.startswith(prefix + "."):
            return number
    raise AssertionError(f"{module} has no layer: add it to tests/test_layering.py")


def package_of(module: str, path: Path) -> str:
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


def imports(known: dict[str, Path]):
    """Yield (importer, imported module, names imported from it) for every import statement."""
    for module, path in known.items():
        package = package_of(module, path)
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name in known:
                        yield module, alias.name, []
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module
                for alias in node.names:
                    child = f"{source}.{alias.name}"
                    if child in known:
                        yield module, child, []
                    elif source in known:
                        yield module, source, [alias.name]


def edges():
    known = modules()
    graph: dict[str, set[str]] = {name: set() for name in known}
    for importer, imported, _ in imports(known):
        if imported != importer:
            graph[importer].add(imported)
    return graph


def test_every_module_has_a_layer():
    for name in modules():
        layer(name)


def test_no_import_points_up_a_layer():
    upward = upward_edges(edges())
    assert not upward, "\n".join(upward)


def test_the_experiment_families_do_not_import_each_other():
    crossing = sorted(f"{a} imports {b}" for a, targets in edges().items() for b in targets
                      if layer(a) == layer(b) == 6 and a.split(".")[1] != b.split(".")[1])
    assert not crossing, "\n".join(crossing)


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path that ends where it starts, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node):
        state[node] = 1
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if target not in state:
                found = visit(target)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def upward_edges(graph: dict[str, set[str]]) -> list[str]:
    return sorted(f"{a} (layer {layer(a)}) imports {b} (layer {layer(b)})"
                  for a, targets in graph.items() for b in targets if layer(b) > layer(a))


def test_the_import_graph_has_no_cycle():
    cycle = find_cycle(edges())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_no_private_name_is_imported_from_another_package():
    known = modules()
    private = sorted(f"{importer} imports {name} from {imported}"
                     for importer, imported, names in imports(known) for name in names
                     if name.startswith("_") and not name.startswith("__")
                     and package_of(imported, known[imported]) != package_of(importer, known[importer]))
    assert not private, "\n".join(private)


def test_the_checks_see_a_planted_cycle_and_an_upward_edge(tmp_path, monkeypatch):
    """The graph reader finds function-level and relative imports (a check that saw nothing would pass)."""
    (tmp_path / "msgp").mkdir()
    (tmp_path / "backdrop").mkdir()
    (tmp_path / "msgp" / "__init__.py").write_text("")
    (tmp_path / "msgp" / "spec.py").write_text("def f():\n    from .io import _read\n")
    (tmp_path / "msgp" / "io.py").write_text("from . import spec\ndef g():\n    import cli\n")
    (tmp_path / "backdrop" / "__init__.py").write_text("")
    (tmp_path / "cli.py").write_text("import msgp.io\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    graph = edges()
    assert graph["msgp.spec"] == {"msgp.io"} and graph["msgp.io"] == {"msgp.spec", "cli"}
    assert find_cycle(graph) == ["cli", "msgp.io", "cli"]
    graph["msgp.io"].discard("cli")
    assert find_cycle(graph) == ["msgp.io", "msgp.spec", "msgp.io"]
    graph["msgp.io"].add("cli")
    assert [edge.split()[0] + ">" + edge.split()[-3] for edge in upward_edges(graph)] == ["msgp.io>cli", "msgp.spec>msgp.io"]
    assert ("msgp.spec", "msgp.io", ["_read"]) in list(imports(modules()))
