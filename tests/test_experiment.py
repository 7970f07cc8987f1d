"""The experiment driver on a tiny plan: every output with its columns and rows, reruns that train
nothing, the input-gradient picture, and the CLI's bad options."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from click.testing import CliRunner

import cli
from backdrop import experiment
from msgp.spec import DatasetSpec

K = 2


def tiny_plan(**values) -> experiment.ExperimentPlan:
    """Two sizes, one seed, one epoch, 32² images, 16 test images, a two-setting-per-head sweep."""
    spec = DatasetSpec(n=4, length_scales=[[1.5, 2.0], [5.0, 8.0]], amplitudes=[1.0, 1.0], size=32)
    return experiment.ExperimentPlan(**{
        "spec": spec, "sizes": (1, 2), "seeds": (0,), "images": 1, "crop": 16, "n_test": 16,
        "monitor_per_class": 1, "batch_size": 4, "device": "cpu", "sweep_size": 1, "sweep_probs": (0.0, 0.5),
        "sweep_seeds": (0,), **values})


class Recorder:
    def __init__(self):
        self.events = []

    def __call__(self, event, info):
        if not event.startswith("train-"):
            self.events.append((event, info.get("run")))

    def count(self, event):
        return sum(e == event for e, _ in self.events)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("experiment")
    recorder = Recorder()
    written = experiment.run_experiment(tiny_plan(), out, progress=recorder)
    return out, written, recorder


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_writes_every_output(finished):
    out, written, recorder = finished
    names = {"results.csv", "results.md", "accuracy_vs_ntrain.png", "input_gradient.png",
             "mask_prob_sweep.csv", "mask_prob_sweep.md", "mask_prob_sweep.png"}
    assert set(written) == names
    for name in names:
        assert (out / name).is_file() and (out / name).stat().st_size > 0
    # 3 methods x 2 sizes, plus the sweep's 2 settings other than the backdrop run it shares.
    assert recorder.count("train") == 8
    assert recorder.count("generate") == 2


def test_without_matplotlib_the_tables_are_still_written(finished, tmp_path, monkeypatch):
    out, _, _ = finished

    def unavailable():
        raise experiment.PlotUnavailable("pictures need matplotlib")

    monkeypatch.setattr(experiment, "pyplot", unavailable)
    for name in ("results.csv", "results.md", "accuracy_vs_ntrain.png"):
        (out / name).rename(tmp_path / name)
    try:
        written = experiment.run_experiment(tiny_plan(), out)
        assert {"results.csv", "results.md", "mask_prob_sweep.csv", "mask_prob_sweep.md"} == set(written)
        assert (out / "results.csv").is_file() and not (out / "accuracy_vs_ntrain.png").exists()
    finally:
        (tmp_path / "accuracy_vs_ntrain.png").rename(out / "accuracy_vs_ntrain.png")


def test_results_csv_has_one_row_per_run(finished):
    out, _, _ = finished
    rows = read_csv(out / "results.csv")
    assert list(rows[0]) == ["method", "n_train", "per_class", "seed", "mask_prob", "epochs",
                             "test_joint", "test_scale0", "test_scale1",
                             "oracle_joint", "oracle_scale0", "oracle_scale1", "wall_s"]
    assert sorted((r["method"], int(r["per_class"])) for r in rows) == sorted(
        (m, n) for m in experiment.METHODS for n in (1, 2))
    n_classes = 2**K
    for r in rows:
        assert int(r["n_train"]) == int(r["per_class"]) * n_classes
        assert int(r["epochs"]) == 1
        assert float(r["wall_s"]) > 0
        for key in ("test_joint", "test_scale0", "test_scale1", "oracle_joint", "oracle_scale0", "oracle_scale1"):
            value = float(r[key])
            # Scored on the 16 test images: accuracies are multiples of 1/16.
            assert 0 <= value <= 1 and value * 16 == pytest.approx(round(value * 16))
        assert (r["mask_prob"] == "0.5/0.5") == (r["method"] == "backdrop")
    # Every run is scored on the same test set, so the oracle's accuracy is the same in every row.
    assert len({r["oracle_joint"] for r in rows}) == 1


def test_results_md_has_one_row_per_method_and_size(finished):
    out, _, _ = finished
    table = [line for line in (out / "results.md").read_text().splitlines() if line.startswith("| ")]
    assert table[0].startswith("| method | n_train (per class) | seeds | joint | scale 0 | scale 1 | oracle joint")
    assert len(table) == 1 + 6


def test_sweep_varies_each_head_alone(finished):
    out, _, _ = finished
    rows = read_csv(out / "mask_prob_sweep.csv")
    assert [r["mask_prob"] for r in rows] == ["0.5/0.5", "0/0.5", "0.5/0"]
    assert {r["per_class"] for r in rows} == {"1"}
    table = [line for line in (out / "mask_prob_sweep.md").read_text().splitlines() if line.startswith("| ")]
    assert len(table) == 1 + 3
    # The plan's own setting is the main grid's backdrop run, not a second training.
    main = {(r["method"], r["per_class"], r["mask_prob"]): r for r in read_csv(out / "results.csv")}
    assert rows[0]["test_joint"] == main[("backdrop", "1", "0.5/0.5")]["test_joint"]


def test_rerun_trains_nothing_and_rebuilds_the_tables(finished):
    out, _, _ = finished
    runs = sorted((out / "runs").iterdir())
    stamps = {p: p.stat().st_mtime_ns for run in runs for p in run.iterdir()}
    (out / "results.csv").unlink()
    recorder = Recorder()
    experiment.run_experiment(tiny_plan(), out, progress=recorder)
    assert recorder.count("train") == 0 and recorder.count("done") == 0
    assert recorder.count("skip") == len(runs) == 8
    assert recorder.count("reuse") == 2
    assert {p: p.stat().st_mtime_ns for run in runs for p in run.iterdir()} == stamps
    assert len(read_csv(out / "results.csv")) == 6


def test_trained_but_unscored_run_is_scored_without_training(finished, tmp_path):
    out, _, _ = finished
    plan = tiny_plan(methods=("no-backdrop",), sizes=(1,), sweep_size=None)
    run = experiment.main_runs(plan)[0]
    result = json.loads((out / "runs" / run.name / "result.json").read_text())
    (out / "runs" / run.name / "result.json").unlink()
    recorder = Recorder()
    again = experiment.execute(run, plan, out, out / "data" / "train.h5", out / "data" / "test.h5", recorder)
    assert recorder.count("train") == 0 and recorder.count("done") == 1
    assert again["test_accuracy"] == result["test_accuracy"]


def test_other_data_in_out_is_refused(finished):
    out, _, _ = finished
    other = tiny_plan(test_seed=7)
    with pytest.raises(experiment.ExperimentError, match="another dataset"):
        experiment.run_experiment(other, out)


def test_input_gradient_is_the_product_of_the_masks():
    grad, fine, coarse = experiment.input_gradient(size=32, probs=(0.5, 0.75), seed=3)
    assert grad.shape == fine.shape == coarse.shape == (32, 32)
    assert (fine == 0).any() and (coarse == 0).any()
    # The gradient is zero wherever the fine mask, one 3x3 conv before the input, blocks every
    # position the input pixel feeds.
    blocked = np.ones_like(fine, dtype=bool)
    padded = np.pad(fine, 1)
    for dy in range(3):
        for dx in range(3):
            blocked &= padded[dy:dy + 32, dx:dx + 32] == 0
    assert np.all(grad[blocked] == 0)
    assert (grad > 0).any()
    again = experiment.input_gradient(size=32, probs=(0.5, 0.75), seed=3)
    assert np.array_equal(again[0], grad)


def test_plan_checks():
    with pytest.raises(experiment.ExperimentError, match="unknown method"):
        tiny_plan(methods=("dropout",))
    with pytest.raises(experiment.ExperimentError, match="n_test"):
        tiny_plan(n_test=10)
    with pytest.raises(experiment.ExperimentError, match="another seed"):
        tiny_plan(test_seed=0)


@pytest.mark.parametrize("args, message", [
    (["--quick", "--paper"], "contradict"),
    (["--bogus"], "No such option"),
])
def test_cli_bad_options(args, message, tmp_path):
    result = CliRunner().invoke(cli.main, ["experiment", *args, "--out", str(tmp_path / "x")])
    assert result.exit_code == 2
    assert message in result.output
    assert not (tmp_path / "x").exists()


def test_cli_refuses_other_data_in_one_line(finished):
    out, _, _ = finished
    # The quick plan's data differ from the tiny plan's: one line, exit code 2, nothing trained.
    result = CliRunner().invoke(cli.main, ["experiment", "--quick", "--out", str(out)])
    assert result.exit_code == 2
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "another dataset" in errors[0]
