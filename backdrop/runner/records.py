"""A run's record: ``runs/<name>/result.json`` in the experiment's output directory, written
atomically when the run ends, so that a run is finished exactly when its record can be read."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from msgp.atomic import atomic_write


def read_result(run_dir: Path) -> dict[str, Any] | None:
    """The run's ``result.json``, or ``None`` when the run has not finished: no file, or one that
    cannot be read (cut short by a crash before writes were atomic, or damaged), so the run is
    finished again rather than stopping the experiment."""
    try:
        result = json.loads((Path(run_dir) / "result.json").read_text())
    except (FileNotFoundError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return result if isinstance(result, dict) and "name" in result else None


def write_result(run_dir: Path, result: dict[str, Any], indent: int = 2, end: str = "\n") -> Path:
    """Record ``result`` in ``run_dir/result.json`` (the directory made if need be), as JSON
    indented by ``indent`` and followed by ``end``; returns the file's path."""
    path = Path(run_dir) / "result.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(result, indent=indent) + end)
    return path
