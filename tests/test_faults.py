"""benchmarks/fault_injection.py, short: `msgp train` and `msgp experiment --jobs 2` SIGKILLed at 5
seeded moments each, resumed, and compared with an uninterrupted run; and its checks, so that
"identical" and "readable" cannot pass by checking nothing."""
from __future__ import annotations

import json
import shutil

import pytest
import torch

from scripts import load_script

faults = load_script("fault_injection")
KILLS = 5


@pytest.fixture(scope="module")
def injected(tmp_path_factory):
    work = tmp_path_factory.mktemp("faults")
    return work, {part: faults.inject(part, KILLS, seed=0, work=work / part, log=lambda line: None)
                  for part in faults.PARTS}


@pytest.mark.slow
@pytest.mark.parametrize("part", faults.PARTS)
def test_killed_and_resumed_runs_end_as_the_uninterrupted_one(part, injected):
    figures = injected[1][part]
    assert figures.failures == []
    assert figures.unreadable == 0 and figures.identical == KILLS
    # The moments span the run: at least one kill lands before it ends.
    assert figures.landed >= 1 and max(figures.moments) < figures.reference_s
    assert "| 5 / 5 | 0 | 0 |" in faults.table([figures])


@pytest.mark.slow
def test_comparison_sees_one_changed_weight_or_table_cell(injected):
    reference = injected[0] / "experiment" / "experiment-reference"
    copy = injected[0] / "changed"
    shutil.copytree(reference, copy)
    assert faults.compare_experiment(copy, reference) == []
    run = sorted((copy / "runs").iterdir())[0]
    ckpt = torch.load(run / "checkpoint.pt", weights_only=True)
    name = next(iter(ckpt["state"]))
    ckpt["state"][name] = ckpt["state"][name].clone()
    ckpt["state"][name].view(-1)[0] = torch.nextafter(ckpt["state"][name].view(-1)[0], torch.tensor(float("inf")))
    torch.save(ckpt, run / "checkpoint.pt")
    text = (copy / "results.csv").read_text().splitlines()
    text[1] = text[1].replace(",finished,", ",failed,")
    (copy / "results.csv").write_text("\n".join(text) + "\n")
    assert faults.compare_experiment(copy, reference) == [f"{run.name}: weights differ", "results.csv differs"]
    # The timings alone may differ.
    result = json.loads((run / "result.json").read_text())
    (run / "result.json").write_text(json.dumps({**result, "wall_s": result["wall_s"] + 1}))
    assert faults.compare_run(run, reference / "runs" / run.name) == [f"{run.name}: weights differ"]


def test_unreadable_files_are_found(tmp_path):
    good = {"a.json": b'{"x": 1}', "metrics.jsonl": b'{"epoch": 1}\n', "t.csv": b"a,b\n1,2\n",
            "f.png": b"\x89PNG...IEND\xaeB`\x82", ".result.json.x1.tmp": b'{"x'}
    for name, data in good.items():
        (tmp_path / name).write_bytes(data)
    assert faults.unreadable(tmp_path) == []
    for name, data in {"b.json": b'{"x": ', "metrics.jsonl": b'{"epoch": 1}\n{"ep', "u.csv": b"a,b\n1,2\n3",
                       "g.png": b"\x89PNG...", "checkpoint.pt": b"PK\x03\x04", "d.h5": b"\x89HDF"}.items():
        (tmp_path / name).write_bytes(data)
    assert [p.split(":")[0] for p in faults.unreadable(tmp_path)] == [
        "b.json", "checkpoint.pt", "d.h5", "g.png", "metrics.jsonl", "u.csv"]
