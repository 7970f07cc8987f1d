"""The experiment driver on a tiny plan: every output with its columns and rows, the paired
statistics, reruns that train nothing, the input-gradient picture, and the CLI's bad options."""
from __future__ import annotations

import csv
import json
import shutil

import matplotlib.figure

import numpy as np
import pytest
from scipy import stats
from click.testing import CliRunner

import torch

import cli
from backdrop import experiment, training
from msgp.spec import DatasetSpec

K = 2


SWEEP = (experiment.masks("heads", (0.5, 0.9)), experiment.masks("heads", (0.25, 0.25)),
         experiment.masks("series", (0.3, 0.9), (1, 2)))


def tiny_plan(**values) -> experiment.ExperimentPlan:
    """Two sizes (two seeds at 1 per class, one at 2), one epoch, 32² images, 16 validation and 16
    report images, every method; two heads settings and one series setting in the sweep, the
    batch-scope methods at the plan's default settings."""
    spec = DatasetSpec(n=4, length_scales=[[1.5, 2.0], [5.0, 8.0]], amplitudes=[1.0, 1.0], size=32)
    return experiment.ExperimentPlan(**{
        "spec": spec, "sizes": (1, 2), "seeds": 1, "small_seeds": 2, "small_max": 1, "images": 1, "min_epochs": 1,
        "methods": experiment.METHODS, "crop": 16, "n_validation": 16, "n_test": 16, "batch_size": 4,
        "device": "cpu", "sweep": SWEEP, **values})


class Recorder:
    def __init__(self):
        self.events = []

    def __call__(self, event, info):
        self.events.append((event, info))

    def count(self, event, **match):
        return sum(e == event and all(i.get(k) == v for k, v in match.items()) for e, i in self.events)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("experiment")
    recorder = Recorder()
    written = experiment.run_experiment(tiny_plan(), out, progress=recorder)
    return out, written, recorder


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# (5 methods without a sweep + 5 backdrop settings: heads x 2, series, backdrop-batch, series-batch)
# x (2 seeds at 1 per class + 1 seed at 2).
MAIN = 5 * 3
RUNS = MAIN + 5 * 3
TABLE_METHODS = [m for m in experiment.METHODS] + [experiment.BEST]


@pytest.mark.slow
def test_writes_every_output(finished):
    out, written, recorder = finished
    names = {"results.csv", "results.md", "comparisons.csv", "comparisons.md", "efficiency.png",
             "input_gradient.png", "choices.csv", "sweep.md", "sweep.png"}
    assert set(written) == names
    for name in names:
        assert (out / name).is_file() and (out / name).stat().st_size > 0
    assert recorder.count("plan", runs=RUNS, to_train=RUNS) == 1
    assert recorder.count("done") == RUNS and recorder.count("generate") == 2


@pytest.mark.slow
def test_runs_are_trained_smallest_size_first(finished):
    # Every method of a size, the sweep's included, before any run of the next size: an
    # experiment stopped part-way leaves whole cells to compare.
    out, written, recorder = finished
    sizes = [info["per_class"] for event, info in recorder.events if event == "done"]
    assert len(sizes) == RUNS and sizes == sorted(sizes) and len(set(sizes)) == 2


@pytest.mark.slow
def test_results_csv_has_one_row_per_run_scored_on_both_whole_sets(finished):
    out, _, _ = finished
    rows = read_csv(out / "results.csv")
    names = ("joint", "scale0", "scale1")
    assert list(rows[0]) == (["method", "masks", "n_train", "per_class", "seed", "data_seed", "validation_seed",
                              "test_seed", "n_validation", "n_test", "epochs"]
                             + [f"{part}_{n}" for part in ("train", "valid", "valid_oracle", "test", "oracle", "ratio")
                                for n in names] + ["wall_s", "status", "reason"])
    assert len(rows) == RUNS
    assert sorted({(r["method"], int(r["per_class"]), int(r["seed"])) for r in rows}) == sorted(
        [(m, 1, s) for m in experiment.METHODS for s in (0, 1)] + [(m, 2, 0) for m in experiment.METHODS])
    for r in rows:
        assert int(r["n_train"]) == int(r["per_class"]) * 2**K and int(r["epochs"]) == 1
        assert int(r["data_seed"]) == int(r["seed"])  # the plan's training seed 0 plus the run's seed
        assert r["status"] == "finished" and r["reason"] == ""
        for col in names:
            # Every run is scored on all 16 images of each set: accuracies are multiples of 1/16.
            for part in ("test", "valid"):
                value = float(r[f"{part}_{col}"])
                assert 0 <= value <= 1 and value * 16 == pytest.approx(round(value * 16))
            # The table rounds ratios to 4 decimals: half a unit of the fourth, relative to a ratio near 1.
            test, oracle = float(r[f"test_{col}"]), float(r[f"oracle_{col}"])
            assert float(r[f"ratio_{col}"]) == pytest.approx(test / oracle, abs=5e-5 * max(1.0, test / oracle))
    masks = {(r["method"], r["masks"]) for r in rows}
    assert masks == {("no-backdrop", ""), ("series-nomask", ""), ("augment", ""), ("crop", ""),
                     ("augment+backdrop", "heads, p 0.5/0.5"), ("backdrop", "heads, p 0.5/0.9"),
                     ("backdrop", "heads, p 0.25/0.25"), ("series", "series, p 0.3/0.9, blocks 1/2"),
                     ("backdrop-batch", "heads, p 0.5/0.5, batch masks"),
                     ("series-batch", "series, p 0.5/0.5, batch masks")}
    # The same validation samples and the same report samples for every run.
    assert len({r["oracle_joint"] for r in rows}) == 1 and len({r["valid_oracle_joint"] for r in rows}) == 1


@pytest.mark.slow
def test_report_scores_are_the_evaluation_of_the_whole_report_file(finished):
    """test_accuracy is msgp evaluate's score of the checkpoint on every sample of the report file
    (calibrated as the trainer calibrates); validation_accuracy is the trainer's own final score."""
    out, _, _ = finished
    run_dir = out / "runs" / "no-backdrop-n1-s1"
    result = json.loads((run_dir / "result.json").read_text())
    scored = training.evaluate(run_dir, out / "data" / "test.h5", n=16, device="cpu")
    assert scored["n"] == result["n_test"] == 16 and result["n_validation"] == 16
    assert result["test_accuracy"]["joint"] == scored["network"]["joint"]["accuracy"]
    assert result["oracle_accuracy"]["scales"] == [s["accuracy"] for s in scored["oracle"]["scales"]]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert result["validation_accuracy"] == summary["test_accuracy"]
    assert (result["data_seed"], result["validation_seed"], result["test_seed"]) == (1, 1000, 2000)


@pytest.mark.slow
def test_runs_are_trained_as_their_method_says(finished):
    out, _, _ = finished
    configs = {p.name: json.loads((p / "config.json").read_text()) for p in (out / "runs").iterdir()}
    assert len(configs) == RUNS
    for name, config in configs.items():
        train, seed = config["train"], int(name.rsplit("-s", 1)[1])
        assert train["eval_every"] == 0 and train["test_data"].endswith("validation.h5") and train["n_test"] == 16
        # The seed's own generated samples, named exactly in the config.
        assert train["data"] == tiny_plan().train_spec(seed, train["n_train"] // 4).to_dict() and train["data"]["seed"] == seed
        assert train["augment"] == name.startswith("augment")
        masked = name.startswith(("backdrop", "augment+backdrop")) or (name.startswith("series")
                                                                        and not name.startswith("series-nomask"))
        assert train["backdrop"] == masked
        assert (train["topology"] == "series") == name.startswith("series")
        assert (train["mask_scope"] == "batch") == name.startswith(("backdrop-batch", "series-batch"))
        assert (train["crop"] == 16) == name.startswith("crop")
        assert config["model"]["padding"] == ("zeros" if name.startswith("crop") else "circular")
    sweep = configs["series-series-p0.3_0.9-b1_2-n1-s1"]
    assert sweep["model"]["topology"] == "series" and sweep["model"]["mask_block"] == [None, 2]
    assert sweep["model"]["mask_prob"] == [0.3, 0.9]
    assert configs["series-batch-series-p0.5_0.5-batch-n2-s0"]["train"]["mask_scope"] == "batch"
    # Methods with the same seed share the training subset: that is what pairs them.
    subsets = {json.dumps(c["train_indices"]) for n, c in configs.items() if n.endswith("-n1-s0")}
    assert len(subsets) == 1


@pytest.mark.slow
def test_comparisons_pair_runs_by_seed(finished):
    out, _, _ = finished
    rows = read_csv(out / "comparisons.csv")
    results = {(r["method"], r["masks"], r["per_class"], r["seed"]): r for r in read_csv(out / "results.csv")}
    row = next(r for r in rows if r["method"] == "series" and r["reference"] == "no-backdrop"
               and r["per_class"] == "1" and r["accuracy"] == "scale 0")
    diffs = [float(results[("series", row["masks"], "1", s)]["test_scale0"])
             - float(results[("no-backdrop", "", "1", s)]["test_scale0"]) for s in ("0", "1")]
    assert int(row["n"]) == 2 and float(row["mean"]) == pytest.approx(np.mean(diffs))
    # Every method and best-backdrop against both references, the references once, and the two
    # controls (series with masks minus without, in either scope), at both sizes, joint and per scale.
    keys = {(r["method"], r["reference"], r["per_class"], r["accuracy"]) for r in rows}
    others = len(TABLE_METHODS) - 2
    assert len(keys) == len(rows) == (2 * others + 1 + 2) * 2 * 3
    assert {(r["method"], r["reference"]) for r in rows} >= {
        ("series", "series-nomask"), ("series-batch", "series-nomask"), ("series-nomask", "no-backdrop"),
        ("best-backdrop", "no-backdrop"), ("best-backdrop", "augment"), ("backdrop-batch", "no-backdrop")}
    assert not any(r["method"] == r["reference"] for r in rows)
    table = (out / "comparisons.md").read_text()
    assert "95% t interval" in table and table.count("\n| ") == len(rows) // 3 + 1
    unfitted = {(r["method"], r["reference"], r["per_class"]) for r in rows if r["fitted"] == "False"}
    assert table.count("| no † |") == len(unfitted) and table.count("| yes |") == len(rows) // 3 - len(unfitted)


def test_a_pair_is_fitted_only_when_both_cells_fitted_their_training_sets():
    def run(method, seed, train):
        acc = {"joint": 0.5 + 0.1 * seed, "scales": [0.7, 0.8]}
        return {"method": method, "per_class": 4, "seed": seed, "masks": None, "test_accuracy": acc,
                "oracle_accuracy": {"joint": 1.0, "scales": [1.0, 1.0]}, "train_accuracy": {"joint": train}}
    results = [run("a", s, 1.0) for s in range(3)] + [run("b", s, 0.95) for s in range(3)]
    results += [run("c", 0, 0.99), run("c", 1, 0.85), run("c", 2, 0.99)]  # mean 0.94, one seed below FITTED
    unlearned = [{"learned": True, "reason": None}, {"learned": False, "reason": "training loss at chance"}]
    results += [{**run("d", s, 1.0), "learned": unlearned if s == 1 else unlearned[:1] * 2} for s in range(3)]
    assert [r["fitted"] for r in experiment.compare(results, "a", "b", 4, K)] == [True] * 3
    assert [r["fitted"] for r in experiment.compare(results, "c", "a", 4, K)] == [False] * 3
    assert [r["fitted"] for r in experiment.compare(results, "d", "a", 4, K)] == [False] * 3
    # A scale at chance on the test set after fitting the training set is an outcome: compared.
    at_chance = [{"learned": True, "reason": None, "basis": None},
                 {"learned": False, "reason": "test accuracy 0.51 is within two standard errors of chance",
                  "basis": "test"}]
    results += [{**run("e", s, 1.0), "learned": at_chance} for s in range(3)]
    assert [r["fitted"] for r in experiment.compare(results, "e", "a", 4, K)] == [True] * 3
    # Records from before verdicts had a basis: the reason says which.
    older = [{k: v for k, v in verdict.items() if k != "basis"} for verdict in at_chance]
    assert experiment.run_fitted({**run("e", 0, 1.0), "learned": older})
    assert not experiment.run_fitted({**run("d", 1, 1.0), "learned": unlearned})
    # The floor is relative to the oracle: where the Bayes rule is right on 93% of images, a run at
    # 0.89 in training learned that rule rather than its images (default3's coarsest scale).
    bayes = {"joint": 0.932, "scales": [1.0, 0.932]}
    assert experiment.fit_floor({**run("f", 0, 0.89), "oracle_accuracy": bayes}) == pytest.approx(0.9 * 0.932)
    assert experiment.run_fitted({**run("f", 0, 0.89), "oracle_accuracy": bayes})
    assert not experiment.run_fitted({**run("f", 0, 0.83), "oracle_accuracy": bayes})
    assert not experiment.run_fitted(run("f", 0, 0.89))  # the same run where the oracle is always right
    assert "† (2 of 3 fitted)" in experiment.summary_table([r for r in results if r["method"] == "c"],
                                                          lambda r: r["method"], ["method"], lambda k: [k], K)
    table = experiment.comparison_table(experiment.compare(results, "a", "b", 4, K)
                                        + experiment.compare(results, "c", "a", 4, K), K)
    assert table.count("| yes |") == 1 and table.count("| no † |") == 1


def test_paired_difference_interval_agrees_with_the_paired_t_test():
    rng = np.random.default_rng(0)
    for shift in (0.0, 0.02, 0.05, 0.1):
        a = rng.normal(0.8, 0.05, 10)
        b = a - shift + rng.normal(0, 0.03, 10)
        d = experiment.paired_difference(a, b)
        assert d["n"] == 10 and d["mean"] == pytest.approx(np.mean(a - b))
        half = stats.t.ppf(0.975, 9) * np.std(a - b, ddof=1) / np.sqrt(10)
        assert d["high"] - d["mean"] == pytest.approx(half) and d["mean"] - d["low"] == pytest.approx(half)
        # The interval excludes zero exactly when the two-sided paired t-test rejects at 5%.
        assert d["effect"] == (stats.ttest_rel(a, b).pvalue < 0.05)
    one = experiment.paired_difference([0.9], [0.8])
    assert one["low"] == -np.inf and not one["effect"]


@pytest.mark.slow
def test_each_backdrop_method_enters_the_tables_at_its_setting_chosen_on_validation(finished):
    out, _, _ = finished
    rows = read_csv(out / "results.csv")
    choices = read_csv(out / "choices.csv")
    assert [(c["per_class"], c["method"]) for c in choices] == [
        (n, m) for n in ("1", "2") for m in (*experiment.BACKDROP_METHODS, experiment.BEST)]
    for c in choices:
        methods = experiment.BACKDROP_METHODS if c["method"] == experiment.BEST else (c["method"],)
        settings = {}
        for r in rows:
            if r["per_class"] == c["per_class"] and r["method"] in methods:
                settings.setdefault(r["masks"], []).append(float(r["valid_joint"]))
        assert int(c["settings"]) == len(settings) == {"backdrop": 2, experiment.BEST: 5}.get(c["method"], 1)
        assert c["masks"] in settings
        assert float(c["validation_joint"]) == pytest.approx(np.mean(settings[c["masks"]]))
    best = {c["per_class"]: float(c["validation_joint"]) for c in choices if c["method"] == experiment.BEST}
    for n in ("1", "2"):
        assert best[n] == max(float(c["validation_joint"]) for c in choices if c["per_class"] == n)
    # The tables' rows are cross-fitted: each seed's run at the setting chosen on the other seeds.
    text = (out / "results.md").read_text()
    # In the plan's order, as the report reads them (a tie on validation goes to the first).
    sweep_runs = [json.loads((out / "runs" / run.name / "result.json").read_text())
                  for run in experiment.sweep_runs(tiny_plan())]
    for c in choices:
        scope = None if c["method"] == experiment.BEST else c["method"]
        picks = experiment.held_out_choices(sweep_runs, int(c["per_class"]), scope)
        assert set(picks.values()) <= set(r["masks"] for r in sweep_runs)
        label = next(iter(picks.values())) if len(set(picks.values())) == 1 else "per seed: "
        assert f"| {c['method']} | {c['per_class']} | {label}" in text
    sweep = (out / "sweep.md").read_text()
    assert "the report set is not read" in sweep and "cross-fitted" in sweep
    assert sweep.count("\n| 1 | backdrop | heads, p ") == 3  # the chosen one, then both settings swept


@pytest.mark.slow
def test_rerun_trains_nothing_and_rebuilds_the_tables(finished):
    out, _, _ = finished
    runs = sorted((out / "runs").iterdir())
    stamps = {p: p.stat().st_mtime_ns for run in runs for p in run.iterdir()}
    (out / "results.csv").unlink()
    recorder = Recorder()
    experiment.run_experiment(tiny_plan(), out, progress=recorder)
    assert recorder.count("plan", runs=RUNS, to_train=0) == 1
    assert recorder.count("done", skipped=True) == RUNS and recorder.count("reuse") == 2
    assert {p: p.stat().st_mtime_ns for run in runs for p in run.iterdir()} == stamps
    assert len(read_csv(out / "results.csv")) == RUNS


@pytest.mark.slow
def test_report_writes_the_tables_of_finished_runs_only(finished, tmp_path):
    out, _, _ = finished
    plan = tiny_plan(sizes=(1, 2, 3))  # size 3 has no finished run; its data would differ, so no reuse check
    (tmp_path / "runs").mkdir()
    for run in experiment.main_runs(tiny_plan(sizes=(1,))):
        (tmp_path / "runs" / run.name).symlink_to(out / "runs" / run.name)
    written = experiment.run_experiment(plan, tmp_path, report_only=True)
    rows = read_csv(written["results.csv"])
    assert len(rows) == 5 * 2 and {r["per_class"] for r in rows} == {"1"}
    assert not (tmp_path / "data").exists()  # nothing generated, nothing trained
    with pytest.raises(experiment.ExperimentError, match="no finished run"):
        experiment.run_experiment(plan, tmp_path / "empty", report_only=True)


@pytest.mark.slow
def test_runs_that_died_early_are_trained_again(finished, tmp_path):
    """A run killed in its first epoch leaves config.json without a checkpoint; one killed later
    leaves a checkpoint to resume; one trained but not recorded keeps its training."""
    out, _, _ = finished
    plan = tiny_plan()
    run = experiment.main_runs(plan)[0]
    run_dir = out / "runs" / run.name
    before = json.loads((run_dir / "result.json").read_text())
    (run_dir / "result.json").unlink()
    again = experiment.execute(run, plan, out, out / "data" / "validation.h5", out / "data" / "test.h5")
    assert again["test_accuracy"] == before["test_accuracy"]
    for name in ("result.json", "summary.json", "checkpoint.pt", "metrics.jsonl"):
        (run_dir / name).unlink()
    assert (run_dir / "config.json").exists()
    again = experiment.execute(run, plan, out, out / "data" / "validation.h5", out / "data" / "test.h5")
    assert again["test_accuracy"] == before["test_accuracy"]


@pytest.mark.slow
def test_parallel_jobs_give_the_same_results(finished, tmp_path):
    out, _, _ = finished
    plan = tiny_plan(methods=("no-backdrop", "series-batch"), sweep=())
    (tmp_path / "data").mkdir()
    for name in ("validation.h5", "test.h5"):
        (tmp_path / "data" / name).symlink_to(out / "data" / name)
    experiment.run_experiment(plan, tmp_path, jobs=2)
    for run in experiment.main_runs(plan) + experiment.sweep_runs(plan):
        ours = json.loads((tmp_path / "runs" / run.name / "result.json").read_text())
        theirs = json.loads((out / "runs" / run.name / "result.json").read_text())
        # One thread per job against torch's threads: the same run up to float reduction order.
        assert ours["test_accuracy"] == theirs["test_accuracy"]
        assert ours["train_loss"] == pytest.approx(theirs["train_loss"], rel=1e-4)


@pytest.mark.slow
def test_a_run_with_other_settings_is_refused(finished, tmp_path):
    """A plan changed under an old --out (here its budget) must not report the old runs as its own."""
    out, _, _ = finished
    plan = tiny_plan()
    run = experiment.main_runs(plan)[0]
    shutil.copytree(out / "runs" / run.name, tmp_path / "runs" / run.name)
    data = out / "data" / "validation.h5", out / "data" / "test.h5"
    assert experiment.execute(run, plan, tmp_path, *data)["skipped"]  # same settings, other paths: reused
    with pytest.raises(experiment.ExperimentError, match=r"other settings \(epochs 1, this plan 2\)"):
        experiment.execute(run, tiny_plan(min_epochs=2), tmp_path, *data)
    (tmp_path / "runs" / run.name / "result.json").unlink()  # an unfinished run is not resumed either
    with pytest.raises(experiment.ExperimentError, match="other settings"):
        experiment.execute(run, tiny_plan(min_epochs=2), tmp_path, *data)


@pytest.mark.slow
def test_report_refuses_runs_trained_with_other_settings(finished, tmp_path):
    """--report applies the check a rerun applies: a run trained with other settings (here an older
    budget) is refused in one line, not tabulated as this plan's."""
    out, _, _ = finished
    plan = tiny_plan()
    for run in experiment.main_runs(plan):
        (tmp_path / "runs").mkdir(exist_ok=True)
        (tmp_path / "runs" / run.name).symlink_to(out / "runs" / run.name)
    assert len(read_csv(experiment.run_experiment(plan, tmp_path, report_only=True)["results.csv"])) == MAIN
    (tmp_path / "results.csv").unlink()
    with pytest.raises(experiment.ExperimentError, match=r"other settings \(epochs 1, this plan 2\)"):
        experiment.run_experiment(tiny_plan(min_epochs=2), tmp_path, report_only=True)
    assert not (tmp_path / "results.csv").exists()


def _copy_out(finished, tmp_path, plan):
    """A new --out holding the finished experiment's data and the plan's finished runs."""
    out, _, _ = finished
    (tmp_path / "data").mkdir()
    for name in ("validation.h5", "test.h5"):
        (tmp_path / "data" / name).symlink_to(out / "data" / name)
    for run in experiment.main_runs(plan) + experiment.sweep_runs(plan):
        shutil.copytree(out / "runs" / run.name, tmp_path / "runs" / run.name)


@pytest.mark.slow
def test_an_unreadable_result_is_finished_again(finished, tmp_path):
    """A result.json cut short (by a crash, before writes were atomic) means unfinished, not a
    JSONDecodeError that stops the experiment; the run's training is kept."""
    plan = tiny_plan(methods=("no-backdrop",), sweep=())
    _copy_out(finished, tmp_path, plan)
    run_dir = tmp_path / "runs" / experiment.main_runs(plan)[0].name
    before = json.loads((run_dir / "result.json").read_text())
    text = (run_dir / "result.json").read_text()
    (run_dir / "result.json").write_text(text[:len(text) // 2])
    checkpoint = (run_dir / "checkpoint.pt").stat().st_mtime_ns
    recorder = Recorder()
    experiment.run_experiment(plan, tmp_path, progress=recorder)
    assert recorder.count("plan", runs=3, to_train=1) == 1
    after = json.loads((run_dir / "result.json").read_text())
    assert {**after, "wall_s": 0} == {**before, "wall_s": 0}
    assert (run_dir / "checkpoint.pt").stat().st_mtime_ns == checkpoint  # not trained again
    assert len(read_csv(tmp_path / "results.csv")) == 3


@pytest.mark.slow
def test_an_interrupted_write_leaves_the_previous_tables_and_figures(finished, tmp_path, monkeypatch):
    """A write that stops half-way (here an error after the first row or bytes; a kill alike)
    leaves the previous table and figure whole."""
    plan = tiny_plan(methods=("no-backdrop",), sweep=())
    _copy_out(finished, tmp_path, plan)
    experiment.run_experiment(plan, tmp_path)
    table, figure = (tmp_path / "results.csv").read_bytes(), (tmp_path / "efficiency.png").read_bytes()

    def one_row_then_fail(self, rows):
        self.writerow(rows[0])
        raise OSError("disk full")
    monkeypatch.setattr(csv.DictWriter, "writerows", one_row_then_fail)
    with pytest.raises(OSError, match="disk full"):
        experiment.run_experiment(plan, tmp_path)
    assert (tmp_path / "results.csv").read_bytes() == table
    monkeypatch.undo()

    def some_bytes_then_fail(self, target, **kwargs):
        if hasattr(target, "write"):
            target.write(b"\x89PNG")
        else:
            with open(target, "wb") as f:
                f.write(b"\x89PNG")
        raise OSError("disk full")
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", some_bytes_then_fail)
    with pytest.raises(OSError, match="disk full"):
        experiment.run_experiment(plan, tmp_path)
    assert (tmp_path / "efficiency.png").read_bytes() == figure
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


@pytest.mark.slow
def test_a_failed_run_is_recorded_and_the_others_go_on(finished, tmp_path, monkeypatch):
    """A run whose loss became NaN is recorded as failed with its reason; every other run is
    trained; the tables count and list it; a rerun keeps the record instead of failing again."""
    out, _, _ = finished
    plan = tiny_plan(methods=("no-backdrop", "backdrop"), sweep=())
    (tmp_path / "data").mkdir()
    for name in ("validation.h5", "test.h5"):
        (tmp_path / "data" / name).symlink_to(out / "data" / name)
    doomed = experiment.make_run("backdrop", 1, 0, plan.backdrop).name
    trained = []
    train = training.train

    def nan_in_one_run(config, run_dir, **kwargs):
        trained.append(run_dir.name)
        if run_dir.name == doomed:
            raise training.TrainingError("the loss became nan at epoch 1, step 1; try a smaller --lr")
        return train(config, run_dir, **kwargs)
    monkeypatch.setattr(training, "train", nan_in_one_run)
    experiment.run_experiment(plan, tmp_path)
    assert sorted(trained) == sorted(r.name for r in experiment.main_runs(plan) + experiment.sweep_runs(plan))
    result = json.loads((tmp_path / "runs" / doomed / "result.json").read_text())
    assert result["status"] == "failed" and result["reason"].startswith("the loss became nan")
    rows = read_csv(tmp_path / "results.csv")
    assert sorted(r["status"] for r in rows) == ["failed"] + ["finished"] * 5
    row = next(r for r in rows if r["status"] == "failed")
    assert (row["method"], row["per_class"], row["seed"], row["test_joint"]) == ("backdrop", "1", "0", "")
    assert row["reason"] == result["reason"]
    text = (tmp_path / "results.md").read_text()
    assert "| method | per class | masks (chosen on validation) | seeds | failed |" in text
    assert "| backdrop | 1 | heads, p 0.5/0.5 | 1 | 1 |" in text and "| no-backdrop | 1 |  | 2 | 0 |" in text
    assert f"- {doomed}: the loss became nan" in text
    # The comparisons at 1 per class pair the seed that finished only.
    pairs = [r for r in read_csv(tmp_path / "comparisons.csv")
             if r["method"] in ("backdrop", "best-backdrop") and r["per_class"] == "1"]
    assert pairs and {r["n"] for r in pairs} == {"1"}
    trained.clear()
    recorder = Recorder()
    experiment.run_experiment(plan, tmp_path, progress=recorder)
    assert trained == [] and recorder.count("plan", runs=6, to_train=0) == 1
    assert recorder.count("done", status="failed", skipped=True) == 1


@pytest.mark.slow
def test_a_nan_run_fails_alone_in_the_process_pool(tmp_path):
    """With jobs 2: a run resumed from a checkpoint whose weights hold NaN fails (a real non-finite
    loss, raised in the worker) and is recorded; the other runs finish."""
    plan = tiny_plan(methods=("no-backdrop",), sweep=(), min_epochs=2)
    experiment.run_experiment(plan, tmp_path, jobs=2)
    run_dir = tmp_path / "runs" / "no-backdrop-n1-s0"
    for name in ("result.json", "summary.json"):
        (run_dir / name).unlink()
    ckpt = torch.load(run_dir / "checkpoint.pt", weights_only=False)
    for tensor in ckpt["state"].values():
        if tensor.is_floating_point():
            tensor.fill_(float("nan"))
    ckpt["epoch"] = 1  # the end of the first of its two epochs
    torch.save(ckpt, run_dir / "checkpoint.pt")
    experiment.run_experiment(plan, tmp_path, jobs=2)
    status = {r["seed"] + "/" + r["per_class"]: r["status"] for r in read_csv(tmp_path / "results.csv")}
    assert status == {"0/1": "failed", "1/1": "finished", "0/2": "finished"}
    result = json.loads((run_dir / "result.json").read_text())
    assert "the loss became nan" in result["reason"]
    assert "| no-backdrop | 1 |  | 1 | 1 |" in (tmp_path / "results.md").read_text()
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "runs").rglob("*")}
    recorder = Recorder()
    experiment.run_experiment(plan, tmp_path, jobs=2, progress=recorder)
    assert recorder.count("plan", runs=3, to_train=0) == 1
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "runs").rglob("*")} == stamps


@pytest.mark.slow
def test_other_data_in_out_is_refused(finished):
    out, _, _ = finished
    with pytest.raises(experiment.ExperimentError, match="another dataset"):
        experiment.run_experiment(tiny_plan(test_seed=7), out)


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
    with pytest.raises(experiment.ExperimentError, match="n_validation"):
        tiny_plan(n_validation=0)
    with pytest.raises(experiment.ExperimentError, match="another seed each"):
        tiny_plan(validation_seed=2000)
    with pytest.raises(experiment.ExperimentError, match="another seed each"):
        tiny_plan(validation_seed=1)  # seed 1's training samples
    with pytest.raises(experiment.ExperimentError, match="scope"):
        experiment.masks("heads", (0.5, 0.5), scope="channel")
    with pytest.raises(experiment.ExperimentError, match="another seed"):
        tiny_plan(test_seed=0)
    with pytest.raises(experiment.ExperimentError, match="one value per scale"):
        tiny_plan(series=experiment.masks("series", (0.5,)))
    with pytest.raises(experiment.ExperimentError, match="jobs"):
        experiment.run_experiment(tiny_plan(), "unused", jobs=0)
    plan = experiment.paper128_plan()
    assert [len(plan.seeds_at(n)) for n in plan.sizes] == [10, 10, 10, 5, 5, 5]
    assert [plan.epochs(n * 4) for n in plan.sizes] == [256, 128, 64, 32, 16, 16]
    assert plan.epochs(8 * 4, "series") == 512 and plan.epochs(4 * 4, "series") == 128  # longer at 8 only
    assert [r.config(plan, "v").epochs for r in experiment.main_runs(plan)
            if r.per_class == 8 and r.method in experiment.METHODS][::10] == \
        [64, 512, 64]  # no-backdrop, series-nomask, augment
    assert {r.config(plan, "v").epochs for r in experiment.sweep_runs(plan) if r.per_class == 8
            and r.method.startswith("series")} == {512}
    assert "series at 8 per class: 16384" in experiment.plan_summary(plan)
    with pytest.raises(experiment.ExperimentError, match="budget"):
        tiny_plan(budgets=(("series", 5, 100),))
    with pytest.raises(experiment.ExperimentError, match="budget"):
        tiny_plan(budgets=(("*", 1, 0),))
    plan = experiment.default3_plan()  # 2048 images a run at 2 per class, 15360 at 8, 30720 at 32
    assert [plan.epochs(n * 8) for n in plan.sizes] == [128, 240, 120]
    assert plan.epochs(32 * 8, "backdrop") == 120 and plan.epochs(8 * 8, "backdrop") == 240
    assert [len(plan.seeds_at(n)) for n in plan.sizes] == [10, 10, 5]
    assert ("B = 2048 training images; every method at 8 per class: 15360; every method at 32 per class: 30720"
            in experiment.plan_summary(plan))
    # A method's own budget wins over "*".
    assert tiny_plan(budgets=(("*", 2, 64), ("series", 2, 128))).images_at(2, "series") == 128
    assert tiny_plan(budgets=(("*", 2, 64), ("series", 2, 128))).images_at(2, "augment") == 64


@pytest.mark.slow
def test_cli_refuses_other_data_in_one_line(finished):
    out, _, _ = finished
    # The paper128 plan's data differ from the tiny plan's: one line, exit code 2, nothing trained.
    result = CliRunner().invoke(cli.main, ["experiment", "--plan", "paper128", "--out", str(out)])
    assert result.exit_code == 2
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "another dataset" in errors[0]
