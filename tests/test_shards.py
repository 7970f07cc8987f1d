"""`msgp experiment --shard I/N`: shards partition a plan's runs at near-equal costs, several
shards writing into one output directory give the same tables as one process, and shards started
at once share the data files safely."""
from __future__ import annotations

import csv
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

import cli
from backdrop import experiment
from backdrop.experiment import data, runs
from backdrop.experiment import shards as dealt
from backdrop.experiment.methods import is_fitted
from msgp import io
from msgp.spec import DatasetSpec


def tiny_plan() -> experiment.ExperimentPlan:
    """Two sizes, the full gradient and backdrop with two settings to choose from: runs of a second
    or two on 16² images."""
    spec = DatasetSpec(n=4, length_scales=[[1.5, 2.0], [4.0, 6.0]], amplitudes=[1.0, 1.0], size=16)
    return experiment.ExperimentPlan(spec=spec, sizes=(1, 2), seeds=1, small_seeds=2, small_max=1, images=1,
                                     min_epochs=1, methods=("no-backdrop", "backdrop"), n_validation=8, n_test=8,
                                     batch_size=4, width=4, device="cpu",
                                     sweep=(experiment.masks("heads", (0.5, 0.9)), experiment.masks("heads", (0.25, 0.25))))


def read_rows(path: Path) -> list[dict]:
    """A table's rows without its wall times, which differ between any two executions."""
    with open(path, newline="") as f:
        return [{k: v for k, v in row.items() if "wall" not in k} for row in csv.DictReader(f)]


@pytest.mark.parametrize("count", [1, 2, 3, 7, 16])
def test_shards_partition_the_plan(count):
    plan = experiment.paper128_plan()
    every = experiment.plan_runs(plan)
    shards = [experiment.shard_runs(plan, (i, count)) for i in range(count)]
    names = [run.name for shard in shards for run in shard]
    assert sorted(names) == sorted(run.name for run in every)
    assert len(set(names)) == len(names)


@pytest.mark.parametrize("name", sorted(experiment.PLANS))
def test_shards_of_every_plan_carry_equal_costs(name):
    """At 16 shards the costliest holds at most 1.1 times the cheapest's cost, and at most 1.1
    times its training images; a plan of fewer runs than shards gets one run a shard at most."""
    plan = experiment.PLANS[name]()
    shards = experiment.shard_assignment(plan, 16)
    if len(experiment.plan_runs(plan)) < 16:
        assert max(map(len, shards)) == 1
        return
    costs = [sum(experiment.run_cost(plan, run) for run in shard) for shard in shards]
    assert max(costs) <= 1.1 * min(costs), costs
    images = [sum(runs.trained_images(run.config(plan, Path("validation.h5"))) for run in shard
                  if not is_fitted(plan, run.method)) for shard in shards]
    assert max(images) <= 1.1 * min(images), images


def test_every_shard_computes_the_same_assignment(monkeypatch):
    """Each shard's process deals the runs itself: the deal depends on the plan, not on the order
    the runs are listed in, so processes that list them differently still partition the plan."""
    plan = experiment.default3_plan()
    first = experiment.shard_assignment(plan, 16)
    listed = runs.plan_runs(plan)
    monkeypatch.setattr(dealt, "plan_runs", lambda p: list(reversed(listed)))
    assert [set(shard) for shard in dealt.shard_assignment(plan, 16)] == [set(shard) for shard in first]


@pytest.mark.slow
def test_two_shards_give_the_tables_of_one_process(tmp_path):
    plan = tiny_plan()
    whole = experiment.run_experiment(plan, tmp_path / "one")
    first = experiment.run_experiment(plan, tmp_path / "sharded", shard=(0, 2))
    # The first shard alone tables only its own runs; the second, finishing last, tables them all.
    assert len(read_rows(first["results.csv"])) < len(read_rows(whole["results.csv"]))
    second = experiment.run_experiment(plan, tmp_path / "sharded", shard=(1, 2))
    for name in ("results.csv", "comparisons.csv", "choices.csv"):
        assert read_rows(second[name]) == read_rows(whole[name]), name
    report = experiment.run_experiment(plan, tmp_path / "sharded", report_only=True)
    assert read_rows(report["results.csv"]) == read_rows(whole["results.csv"])


@pytest.mark.slow
def test_a_shard_trains_only_its_own_runs(tmp_path):
    plan = tiny_plan()
    experiment.run_experiment(plan, tmp_path, shard=(1, 3))
    trained = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert trained == sorted(run.name for run in experiment.shard_runs(plan, (1, 3)))


def test_shards_started_together_generate_each_data_file_once(tmp_path, monkeypatch):
    """Two shards preparing the data at once (threads here, processes on a cluster): the lock lets
    one generate each file while the other waits, then reuses it. Generation is slowed so that,
    without the lock, both would find no file and write the same one together."""
    write, calls = io.write, []

    def slow_write(*args, **kwargs):
        calls.append(args[1])
        time.sleep(0.5)
        return write(*args, **kwargs)

    monkeypatch.setattr(io, "write", slow_write)
    plan, results, errors = tiny_plan(), [], []

    def shard():
        try:
            results.append(data.prepare_shared_data(plan, tmp_path))
        except Exception as err:  # noqa: BLE001 - reported by the assertion below
            errors.append(err)

    threads = [threading.Thread(target=shard) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(Path(p).name for p in calls) == ["test.h5", "validation.h5"]
    assert results[0] == results[1]
    assert io.read_spec(results[0][0], require_complete=True) == plan.validation_spec
    assert io.read_spec(results[0][1], require_complete=True) == plan.test_spec


@pytest.mark.slow
def test_cli_runs_one_shard(tmp_path):
    result = CliRunner().invoke(cli.main, ["experiment", "--plan", "smoke", "--out", str(tmp_path), "--jobs", "1",
                                           "--shard", "1/2"])
    assert result.exit_code == 0, result.output
    assert "(shard 1/2)" in result.output
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == \
        sorted(r.name for r in experiment.shard_runs(experiment.smoke_plan(), (1, 2)))


@pytest.mark.parametrize("value, message", [("2/2", "numbered 0 to 1"), ("-1/2", "must look like I/N"),
                                            ("1", "must look like I/N"), ("a/b", "must look like I/N"),
                                            ("1/0", "N must be at least 1"), ("0/", "must look like I/N")])
def test_cli_refuses_a_bad_shard(value, message, tmp_path):
    result = CliRunner().invoke(cli.main, ["experiment", "--plan", "smoke", "--out", str(tmp_path), "--shard", value])
    assert result.exit_code == 2
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert "Traceback" not in result.output


def test_cli_refuses_shard_with_report(tmp_path):
    result = CliRunner().invoke(cli.main, ["experiment", "--plan", "smoke", "--out", str(tmp_path),
                                           "--shard", "0/2", "--report"])
    assert result.exit_code == 2
    assert "--shard and --report" in result.output


def test_the_api_refuses_a_bad_shard(tmp_path):
    with pytest.raises(experiment.ExperimentError, match="shards of 2 are numbered 0 to 1"):
        experiment.run_experiment(tiny_plan(), tmp_path, shard=(2, 2))
