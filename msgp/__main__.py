"""``python -m msgp ...`` runs the ``msgp`` command, as the console script (``cli:main``) does."""
import importlib.util
import sys
from pathlib import Path


def load_cli():
    """The ``cli`` module installed beside the ``msgp`` package, where the wheel and the checkout
    both put it.

    Loaded from its file, not imported by name: ``python -m`` puts the current directory first on
    ``sys.path``, so ``import cli`` would run a user's own ``cli.py`` there instead.
    """
    path = Path(__file__).parent.parent / "cli.py"
    if not path.is_file():
        raise SystemExit(f"Error: {path} is missing, though msgp installs it beside the msgp package; "
                         "reinstall msgp")
    spec = importlib.util.spec_from_file_location("cli", path)
    module = importlib.util.module_from_spec(spec)
    # Registered before it runs, as an import would, so that a later ``import cli`` is this module.
    sys.modules["cli"] = module
    spec.loader.exec_module(module)
    return module


if __name__ == "__main__":
    load_cli().main(prog_name="msgp")
