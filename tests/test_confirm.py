"""examples/confirm.py: one comparison of a plan retested on fresh seeds, on the smoke plan."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from backdrop import experiment

SCRIPT = Path(__file__).resolve().parent.parent / "examples" / "confirm.py"


@pytest.fixture(scope="module")
def confirm():
    spec = importlib.util.spec_from_file_location("confirm", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ARGS = ["--plan", "smoke", "--method", "backdrop", "--reference", "no-backdrop", "--per-class", "2", "--seeds", "5-7"]


@pytest.mark.slow
def test_confirmation_trains_fresh_seeds_and_pairs_them(confirm, tmp_path, capsys):
    assert confirm.main(ARGS + ["--out", str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "confirm.json").read_text())
    results = {}
    for path in (tmp_path / "runs").glob("*/result.json"):
        r = json.loads(path.read_text())
        results[r["method"], r["seed"]] = r
    # Both methods at every fresh seed, each on the seed's own images (not the plan's seeds 0 and 1).
    assert sorted(results) == [(m, s) for m in ("backdrop", "no-backdrop") for s in (5, 6, 7)]
    assert {r["data_seed"] for r in results.values()} == {experiment.smoke_plan().spec.seed + s for s in (5, 6, 7)}
    diffs = [results["backdrop", s]["test_accuracy"]["joint"] - results["no-backdrop", s]["test_accuracy"]["joint"]
             for s in (5, 6, 7)]
    joint = summary["joint"]
    assert joint["n"] == 3 and joint["mean"] == pytest.approx(np.mean(diffs), rel=1e-12, abs=1e-12)
    assert joint["low"] < joint["mean"] < joint["high"]
    assert f"{joint['mean']:+.3f}" in capsys.readouterr().out
    # A rerun trains nothing: every run is recorded.
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "runs").glob("*/result.json")}
    assert confirm.main(ARGS + ["--out", str(tmp_path)]) == 0
    assert stamps == {p: p.stat().st_mtime_ns for p in (tmp_path / "runs").glob("*/result.json")}


@pytest.mark.parametrize("change, message", [
    (["--seeds", "x"], "--seeds must be FIRST-LAST"),
    (["--seeds", "5-5"], "at least two seeds"),
    (["--method", "whittle"], "not a network method"),
    (["--per-class", "3"], "one of the plan's sizes"),
    (["--masks", "heads, p 0.9/0.9"], "name one with --masks"),
])
def test_bad_input_is_one_line(confirm, tmp_path, change, message):
    args = list(ARGS)
    for flag, value in zip(change[::2], change[1::2]):
        if flag in args:
            args[args.index(flag) + 1] = value
        else:
            args += [flag, value]
    with pytest.raises(SystemExit) as caught:
        confirm.main(args + ["--out", str(tmp_path)])
    assert message in str(caught.value) and "\n" not in str(caught.value)
    assert not (tmp_path / "runs").exists()
