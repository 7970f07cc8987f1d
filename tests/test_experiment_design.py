"""The experiment's design, checked without training: every seed trains on its own images with
sizes nested within a seed, the backdrop setting is chosen on validation scores alone, the
series control starts from the series network's initial weights, the reference's batch masks are
a method of their own, and an output directory of the earlier design is refused."""
from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import cli
from backdrop import experiment, training
from backdrop.training.data import load_samples, open_data, run_subsets
from msgp.spec import DatasetSpec


def tiny_plan(**values) -> experiment.ExperimentPlan:
    spec = DatasetSpec(n=4, length_scales=[[1.5, 2.0], [5.0, 8.0]], amplitudes=[1.0, 1.0], size=32)
    return experiment.ExperimentPlan(**{
        "spec": spec, "sizes": (1, 2, 4), "seeds": 2, "small_seeds": 3, "small_max": 2, "images": 1,
        "min_epochs": 1, "methods": experiment.METHODS, "crop": 16, "n_validation": 16, "n_test": 16,
        "batch_size": 4, "device": "cpu", **values})


def training_images(plan: experiment.ExperimentPlan) -> dict[tuple[int, int], tuple[dict, np.ndarray, np.ndarray]]:
    """(seed, per class) -> (training description, the sample indices the trainer draws from it,
    their labels), through the trainer's own choice of subsets; every run of a (seed, size) is
    checked to name the same samples."""
    images = {}
    validation = open_data(plan.validation_spec.to_dict())
    for run in experiment.main_runs(plan) + experiment.sweep_runs(plan):
        config = run.config(plan, "validation.h5")
        key = (run.seed, run.per_class)
        if key in images:
            assert config.data == images[key][0], run.name  # the methods of a seed are paired
            continue
        train_set, _ = run_subsets(config, open_data(config.data), validation)
        images[key] = (config.data, np.asarray(train_set.indices), np.asarray(train_set.labels))
    return images


@pytest.mark.parametrize("name", sorted(experiment.PLANS))
def test_no_two_seeds_share_a_training_image_and_sizes_are_nested(name):
    plan = experiment.PLANS[name]()
    images = training_images(plan)
    C = plan.spec.n_classes
    held = {}  # (description seed, sample index) -> the seed that trains on it
    for (seed, per_class), (data, indices, labels) in images.items():
        # Sample i of a description is drawn from the stream of (its seed, i) alone.
        assert {k: v for k, v in data.items() if k not in ("seed", "n")} == \
            {k: v for k, v in plan.spec.to_dict().items() if k not in ("seed", "n")}
        assert data["seed"] not in (plan.validation_seed, plan.test_seed)
        assert np.array_equal(np.bincount(labels, minlength=C), np.full(C, per_class))  # class-balanced
        for i in indices:
            assert held.setdefault((data["seed"], int(i)), seed) == seed, (name, seed, per_class, i)
    for seed in range(plan.n_seeds):
        sizes = sorted(n for s, n in images if s == seed)
        for small, large in zip(sizes, sizes[1:]):
            a, b = images[(seed, small)], images[(seed, large)]
            assert a[0]["seed"] == b[0]["seed"] and set(a[1]) < set(b[1])


def test_no_two_seeds_share_a_training_image_pixel_for_pixel():
    """The identity above, checked on the pixels: no training image of one seed is an image of
    another seed, of the validation set or of the report set."""
    plan = tiny_plan()
    largest = max(plan.sizes)
    fields = {}
    for seed in range(plan.n_seeds):
        data = load_samples(open_data(plan.train_spec(seed, largest).to_dict()))
        fields[seed] = {f.numpy().tobytes() for f in data.fields}
        assert len(fields[seed]) == largest * plan.spec.n_classes
    for name, spec in (("validation", plan.validation_spec), ("test", plan.test_spec)):
        fields[name] = {f.numpy().tobytes() for f in load_samples(open_data(spec.to_dict())).fields}
    for a in fields:
        for b in fields:
            if a != b:
                assert not fields[a] & fields[b], (a, b)


def _result(method, masks, per_class, seed, validation, test, train=1.0, status="finished"):
    return {"method": method, "masks": masks, "per_class": per_class, "seed": seed, "status": status,
            "validation_accuracy": {"joint": validation, "scales": [validation, validation]},
            "validation_oracle_accuracy": {"joint": 0.9, "scales": [0.95, 0.95]},
            "test_accuracy": {"joint": test, "scales": [test, test]},
            "oracle_accuracy": {"joint": 0.9, "scales": [0.95, 0.95]}, "train_accuracy": {"joint": train}}


def _sweep(validation: dict[str, list[float]], test: dict[str, list[float]], per_class=4, train=None):
    method = {"heads, p 0.25/0.25": "backdrop", "heads, p 0.5/0.9": "backdrop",
              "heads, p 0.25/0.25, batch masks": "backdrop-batch", "series, p 0.3/0.95": "series"}
    train = train or {}
    return [_result(method[m], m, per_class, s, v, t, train.get(m, 1.0))
            for m in validation for s, (v, t) in enumerate(zip(validation[m], test[m]))]


def test_the_choice_reads_validation_scores_only():
    validation = {"heads, p 0.25/0.25": [0.70, 0.72, 0.71], "heads, p 0.5/0.9": [0.66, 0.69, 0.67],
                  "heads, p 0.25/0.25, batch masks": [0.74, 0.73, 0.75], "series, p 0.3/0.95": [0.5, 0.52, 0.51]}
    # On the report set the order is the other way round: a choice that read it would differ.
    test = {"heads, p 0.25/0.25": [0.60, 0.61, 0.60], "heads, p 0.5/0.9": [0.80, 0.81, 0.82],
            "heads, p 0.25/0.25, batch masks": [0.50, 0.50, 0.51], "series, p 0.3/0.95": [0.9, 0.9, 0.9]}
    results = _sweep(validation, test)
    methods = ("backdrop", "series", "backdrop-batch")
    expected = {"backdrop": "heads, p 0.25/0.25", "backdrop-batch": "heads, p 0.25/0.25, batch masks",
                "series": "series, p 0.3/0.95", None: "heads, p 0.25/0.25, batch masks"}
    for method, setting in expected.items():
        assert experiment.choose(results, 4, method) == setting
    _, choices = experiment.chosen(results, methods, experiment.BEST)
    rng = random.Random(0)
    for _ in range(20):  # any report-set scores, the same choices
        shuffled = [v for r in results for v in [r["test_accuracy"]["joint"]]]
        rng.shuffle(shuffled)
        permuted = [{**r, "test_accuracy": {"joint": t, "scales": [t, t]}} for r, t in zip(results, shuffled)]
        assert experiment.chosen(permuted, methods, experiment.BEST)[1] == choices
    # The validation scores do decide: raise 0.5/0.9's and it is chosen, for backdrop and best.
    raised = _sweep({**validation, "heads, p 0.5/0.9": [0.80, 0.79, 0.81]}, test)
    assert experiment.choose(raised, 4, "backdrop") == experiment.choose(raised, 4) == "heads, p 0.5/0.9"
    best_rows, _ = experiment.chosen(raised, methods, experiment.BEST)
    best = [r for r in best_rows if r["method"] == experiment.BEST]
    assert [r["masks"] for r in best] == ["heads, p 0.5/0.9"] * 3 and [r["seed"] for r in best] == [0, 1, 2]


def test_each_seeds_row_is_chosen_on_the_other_seeds():
    # 0.25/0.25 is best on all three seeds only through seed 0's lucky run; without seed 0 it loses.
    validation = {"heads, p 0.25/0.25": [0.95, 0.60, 0.60], "heads, p 0.5/0.9": [0.70, 0.70, 0.70]}
    test = {"heads, p 0.25/0.25": [0.91, 0.61, 0.62], "heads, p 0.5/0.9": [0.71, 0.72, 0.73]}
    results = _sweep(validation, test)
    assert experiment.choose(results, 4, "backdrop") == "heads, p 0.25/0.25"
    assert experiment.held_out_choices(results, 4, "backdrop") == {
        0: "heads, p 0.5/0.9", 1: "heads, p 0.25/0.25", 2: "heads, p 0.25/0.25"}
    rows, choices = experiment.chosen(results, ("backdrop",), experiment.BEST)
    for method in ("backdrop", experiment.BEST):
        mine = sorted((r for r in rows if r["method"] == method), key=lambda r: r["seed"])
        # Seed 0's row is its 0.5/0.9 run, not the lucky run that made 0.25/0.25 the choice.
        assert [r["test_accuracy"]["joint"] for r in mine] == [0.71, 0.61, 0.62]
        assert {r["masks"] for r in mine} == {"per seed: heads, p 0.25/0.25 (2 seeds); heads, p 0.5/0.9 (1 seed)"}
    # The choice on every seed is still what choices.csv and sweep.md name.
    assert [c["masks"] for c in choices] == ["heads, p 0.25/0.25"] * 2
    # One seed has nothing else to choose on: its own scores choose.
    single = [r for r in results if r["seed"] == 0]
    assert experiment.held_out_choices(single, 4, "backdrop") == {0: "heads, p 0.25/0.25"}


def test_the_choice_prefers_settings_whose_runs_all_fitted_and_finished():
    validation = {"heads, p 0.25/0.25": [0.70, 0.72, 0.71], "heads, p 0.5/0.9": [0.80, 0.81, 0.82]}
    test = {k: [0.5] * 3 for k in validation}
    unfitted = _sweep(validation, test, train={"heads, p 0.5/0.9": 0.5})
    assert experiment.choose(unfitted, 4, "backdrop") == "heads, p 0.25/0.25"
    results = _sweep(validation, test)
    results[3] = {**results[3], "status": "failed"}  # a run of 0.5/0.9
    assert experiment.choose(results, 4, "backdrop") == "heads, p 0.25/0.25"
    assert experiment.choose(results, 8, "backdrop") is None


def test_series_without_masks_starts_from_the_series_networks_initial_weights():
    plan = tiny_plan()
    spec = plan.spec
    runs = {run.method: run for run in experiment.main_runs(plan) + experiment.sweep_runs(plan)
            if run.per_class == 2 and run.seed == 1}
    weights = {}
    for method in ("series-nomask", "series", "series-batch"):
        config = runs[method].config(plan, "validation.h5")
        assert config.topology == "series" and config.backdrop == (method != "series-nomask")
        weights[method] = training.build_model(config, spec, [torch.Generator() for _ in range(2)]).state_dict()
    for method in ("series", "series-batch"):
        assert weights[method].keys() == weights["series-nomask"].keys()
        for name, value in weights["series-nomask"].items():
            assert torch.equal(value, weights[method][name]), (method, name)
    other = experiment.make_run("series-nomask", 2, 0).config(plan, "validation.h5")
    other_weights = training.build_model(other, spec).state_dict()
    assert any(not torch.equal(v, other_weights[k]) for k, v in weights["series-nomask"].items()
               if v.is_floating_point() and v.numel() > 1)


def test_the_references_batch_masks_are_methods_of_both_topologies():
    # Sample scope adds nothing to a tag: run directories named before scopes existed keep their names.
    assert experiment.masks("heads", (0.5, 0.9)).tag == "heads-p0.5_0.9"
    assert experiment.masks("series", (0.3, 0.95), (1, 2)).tag == "series-p0.3_0.95-b1_2"
    batch = experiment.masks("heads", (0.5, 0.9), scope="batch")
    assert batch.tag == "heads-p0.5_0.9-batch" and batch.method == "backdrop-batch"
    assert batch.describe() == "heads, p 0.5/0.9, batch masks"
    plan = tiny_plan()
    scopes = {(r.method, r.config(plan, "v").topology, r.config(plan, "v").mask_scope)
              for r in experiment.sweep_runs(plan)}
    assert scopes == {("backdrop", "heads", "sample"), ("series", "series", "sample"),
                      ("backdrop-batch", "heads", "batch"), ("series-batch", "series", "batch")}
    for name in ("paper128", "paper128-lean", "default3"):
        swept = experiment.PLANS[name]().sweep
        assert {m.method for m in swept} == set(experiment.BACKDROP_METHODS), name


def test_an_output_directory_of_the_earlier_design_is_refused(tmp_path):
    """Its seeds shared one training file: its runs are refused in one line, and nothing is written."""
    out = tmp_path / "old"
    (out / "data").mkdir(parents=True)
    (out / "data" / "train.h5").write_bytes(b"an earlier experiment's training file")
    result = CliRunner().invoke(cli.main, ["experiment", "--plan", "smoke", "--out", str(out)])
    assert result.exit_code == 2
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "earlier design" in errors[0]
    assert sorted(p.name for p in out.rglob("*")) == ["data", "train.h5"]
    result = CliRunner().invoke(cli.main, ["experiment", "--plan", "smoke", "--out", str(out), "--report"])
    assert result.exit_code == 2 and "earlier design" in result.output


def test_a_run_trained_on_other_samples_is_refused(tmp_path):
    """A run directory whose config names another training source (an earlier design's shared
    file, or another seed's samples) is not this plan's run, whatever its other settings."""
    plan = tiny_plan(methods=("no-backdrop",), sizes=(1,))
    run = experiment.main_runs(plan)[0]
    config = run.config(plan, tmp_path / "validation.h5")
    run_dir = tmp_path / "runs" / run.name
    run_dir.mkdir(parents=True)
    for data, message in (("/old/data/train.h5", "the file /old/data/train.h5"),
                          (plan.train_spec(1, 1).to_dict(), "generated, seed 1, n 4")):
        stored = training.TrainConfig.from_dict({**config.to_dict(), "data": data})
        (run_dir / "config.json").write_text(json.dumps({"train": stored.to_dict()}))
        with pytest.raises(experiment.ExperimentError, match=f"other samples \\({message}, this plan generated, "
                                                             "seed 0, n 4\\)"):
            experiment.execute(run, plan, tmp_path, tmp_path / "validation.h5", tmp_path / "test.h5")
