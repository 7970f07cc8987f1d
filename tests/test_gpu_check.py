"""benchmarks/gpu_check.py at tiny sizes on the CPU, so that its CUDA path cannot break unseen, and
what it relies on: the training precision option, the oracle scored in batches, the experiment's
dry run and time estimate."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import cli
from backdrop import experiment, training
from msgp import io, oracle
from msgp.spec import DatasetSpec

from scripts import load_script

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"
LENGTHS = [[1.5, 4.0], [6.0, 16.0]]




gpu_check = load_script("gpu_check")


def tiny_spec(**values) -> DatasetSpec:
    return DatasetSpec(**{"n": 96, "length_scales": LENGTHS, "amplitudes": [1.0, 1.0], "size": 32, **values})


def tiny_plan(**values) -> experiment.ExperimentPlan:
    spec = DatasetSpec(n=4, length_scales=[[1.5, 2.0], [5.0, 8.0]], amplitudes=[1.0, 1.0], size=32)
    return experiment.ExperimentPlan(**{
        "spec": spec, "sizes": (1, 2), "seeds": 1, "small_seeds": 2, "small_max": 1, "images": 8, "min_epochs": 1,
        "methods": ("no-backdrop", "backdrop", "crop"), "crop": 16, "n_validation": 16, "n_test": 16, "batch_size": 4,
        "device": "cpu", **values})


RATES = experiment.Rates("cpu", 1, 2, {"no-backdrop": 100.0, "backdrop": 50.0, "crop": 200.0, "augment": 100.0,
                                        "series": 80.0}, test=400.0, oracle=20.0, generate=10.0)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "tiny.h5"
    io.write(tiny_spec(), path)
    return path


# The script --------------------------------------------------------------------------------------

@pytest.mark.slow
def test_tiny_run_passes_every_check_and_leaves_a_few_small_files(tmp_path):
    out = tmp_path / "out"
    # From another folder, without PYTHONPATH: the script finds the checkout it lives in.
    result = subprocess.run([sys.executable, str(SCRIPT), "--device", "cpu", "--tiny", "--budget", "45",
                             "--out", str(out)], cwd=tmp_path, capture_output=True, text=True, timeout=170,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stdout + result.stderr[-4000:]
    assert result.stdout.endswith("every check passed\n") and "FAIL" not in result.stdout
    assert (out / "summary.md").read_text() == result.stdout
    lines = [line for line in result.stdout.splitlines() if line.startswith("| ")]
    assert lines[0] == "| section | check or measurement | result | status |"
    assert {line.split(" | ")[0][2:] for line in lines[1:]} == {"generation", "training", "precision", "experiment",
                                                                 "total"}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["ok"] and summary["tiny"] and summary["wall_s"] <= 45
    rows = summary["rows"]
    compared = [r for r in rows if "labels_equal" in r]  # two sampler sizes and the experiment's file
    assert len(compared) == 3 and all(r["labels_equal"] and r["max_ulps"] <= 1 for r in compared)
    speeds = [r for r in rows if r["section"] == "generation" and "fft_bound" in r]
    assert [r["size"] for r in speeds] == [32, 64]
    assert all(min(r["sampler"], r["fft_bound"], r["cpu_sampler"]) > 0 for r in speeds)
    steps = [r for r in rows if r["section"] == "training"]
    assert [r["size"] for r in steps] == [16, 32, 64]
    assert all(r["plain"] > 0 and r["backdrop"] > 0 and r["status"] in ("ok", "miss") for r in steps)
    speed, accuracy = [r for r in rows if r["section"] == "precision"]
    assert all(speed[p] > 0 for p in training.PRECISIONS)
    assert set(accuracy["accuracy"]) == set(training.PRECISIONS)
    assert accuracy["accuracy"]["tf32"] == accuracy["accuracy"]["fp32"]  # TF32 is CUDA's; on CPU the same run
    run = next(r for r in rows if r["section"] == "experiment" and "took_s" in r)
    assert run["status"] == "ok" and run["runs"] >= 4 and run["estimated_s"] > 0
    assert {"results.md", "results.csv", "comparisons.md", "comparisons.csv"} <= set(run["files"])
    files = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert {"summary.md", "summary.json", "experiment/plan.md", "experiment/results.md"} <= files
    assert not any(name.endswith((".h5", ".pt")) for name in files) and not (out / "errors.txt").exists()
    assert sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) < 2**20
    plan = (out / "experiment" / "plan.md").read_text()
    assert "| method | masks | per class |" in plan and "Estimated time on cpu" in plan


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")
def test_no_cuda_device_is_a_one_line_error(tmp_path):
    result = subprocess.run([sys.executable, str(SCRIPT), "--out", str(tmp_path / "out")], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == "gpu_check: no CUDA device is available; run with --device cpu --tiny\n"
    assert not (tmp_path / "out").exists()


def test_a_section_that_raises_is_a_failed_row_and_the_run_goes_on():
    report = gpu_check.Report()

    def broken():
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB\nmore detail")

    gpu_check.run_section(report, "training", broken)
    report.add("total", "wall time", "1 s", "ok")
    assert report.failed and report.rows[0]["status"] == "FAIL"
    assert report.rows[0]["value"] == "RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB"
    assert "Traceback" in report.errors[0] and report.table().count("\n") == 4
    assert not gpu_check.Report().failed


def test_float32_ulps_measures_rounding_differences():
    rng = np.random.default_rng(0)
    a = rng.standard_normal(4096).astype(np.float32)
    up = np.nextafter(a, np.float32(np.inf))
    assert gpu_check.float32_ulps(a, a) == 0
    assert gpu_check.float32_ulps(a, up) == 1
    assert gpu_check.float32_ulps(a, np.nextafter(up, np.float32(np.inf))) == 2
    # Two float64 transforms of one spectrum (an FFT and a direct DFT), each rounded once to
    # float32, as the CPU and GPU samplers round theirs: at most one ulp apart, even near zero.
    spectrum = rng.standard_normal(257) + 1j * rng.standard_normal(257)
    fft = np.fft.irfft(spectrum, n=512)
    k, t = np.arange(257), np.arange(512)
    weights = np.where((k == 0) | (k == 256), 1.0, 2.0)
    direct = (weights * (spectrum[None, :] * np.exp(2j * np.pi * np.outer(t, k) / 512))).real.sum(1) / 512
    # n * eps bounds the rounding of the direct n-term sum, relative to the sum of its terms' sizes.
    bound = len(k) * np.finfo(np.float64).eps * np.sum(weights * np.abs(spectrum)) / 512
    assert 0 < np.abs(fft - direct).max() < bound
    assert gpu_check.float32_ulps(fft.astype(np.float32), direct.astype(np.float32)) <= 1
    assert gpu_check.float32_ulps(a, a + np.float32(1e-3)) > 100


def test_the_experiment_shrinks_down_the_ladder_to_fit_the_time():
    base = tiny_plan(methods=("no-backdrop", "backdrop", "series", "augment", "crop"), sizes=(1, 2, 4), seeds=3,
                     small_seeds=10, images=4096, min_epochs=16, n_test=512)
    plans = gpu_check.ladder(base)
    totals = [experiment.estimate(p, RATES)["total"] for p in plans]
    assert all(a >= b for a, b in zip(totals, totals[1:])) and totals[0] > totals[-1]
    assert plans[-1].methods == ("no-backdrop", "backdrop") and plans[-1].sizes == (1,)
    assert gpu_check.choose(plans, RATES, math.inf) == (base, totals[0])
    assert gpu_check.choose(plans, RATES, 0) == (plans[-1], totals[-1])
    fits = next(i for i, t in enumerate(totals) if t <= totals[2])
    assert gpu_check.choose(plans, RATES, totals[2])[0] is plans[fits]


# Precision ---------------------------------------------------------------------------------------

def _run(data, tmp_path, precision, **values):
    config = training.TrainConfig(data=data, n_train=32, n_test=32, epochs=1, batch_size=8, device="cpu",
                                  precision=precision, backdrop=True, augment=False, **values)
    summary = training.train(config, tmp_path / precision)
    return summary, training.load_checkpoint(tmp_path / precision / "checkpoint.pt")["state"]


@pytest.mark.slow
def test_precisions_on_cpu(data, tmp_path):
    fp32, weights = _run(data, tmp_path, "fp32")
    tf32, same = _run(data, tmp_path, "tf32")
    bf16, other = _run(data, tmp_path, "bf16")
    # TF32 concerns CUDA only: on the CPU the run is the fp32 run, bit for bit.
    assert all(torch.equal(weights[k], same[k]) for k in weights) and tf32["test_accuracy"] == fp32["test_accuracy"]
    # bfloat16 autocast changes the arithmetic but not the parameters' dtype, and the loss stays finite.
    assert any(not torch.equal(weights[k], other[k]) for k in weights)
    assert all(other[k].dtype == weights[k].dtype for k in weights)
    assert all(math.isfinite(v) for v in training.read_metrics(tmp_path / "bf16")[-1]["train_loss"])
    assert json.loads((tmp_path / "bf16" / "config.json").read_text())["train"]["precision"] == "bf16"
    with pytest.raises(ValueError, match="`precision` must be one of fp32, tf32, bf16, but got 'fp16'"):
        training.TrainConfig(precision="fp16")


def test_precision_context_sets_and_restores_cudas_tf32_switches():
    switches = training.devices._tf32_switches()
    before = [getattr(owner, name) for owner, name, _ in switches]
    cuda = torch.device("cuda")  # the switches exist without a GPU; nothing runs on it here
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # autocast on an absent CUDA device says it is disabled
        for precision, position in (("tf32", 1), ("fp32", 0), ("bf16", 0)):
            with training.precision_context(precision, cuda, autocast=False):
                assert [getattr(owner, name) for owner, name, _ in switches] == [v[position] for _, _, v in switches]
            assert [getattr(owner, name) for owner, name, _ in switches] == before
    with training.precision_context("bf16", torch.device("cpu")):
        assert torch.mm(torch.ones(2, 2), torch.ones(2, 2)).dtype == torch.bfloat16
    with training.precision_context("bf16", torch.device("cpu"), autocast=False):
        assert torch.mm(torch.ones(2, 2), torch.ones(2, 2)).dtype == torch.float32


def test_cli_train_precision(data, tmp_path):
    args = ["train", str(data), "--n-train", "32", "--n-test", "32", "--epochs", "1", "--batch-size", "8",
            "--device", "cpu"]
    result = CliRunner().invoke(cli.main, [*args, "--precision", "fp16", "--out", str(tmp_path / "bad")])
    assert result.exit_code == 2 and result.output.strip().splitlines()[-1].startswith("Error:")
    assert "'fp16' is not one of 'fp32', 'tf32', 'bf16'" in result.output
    result = CliRunner().invoke(cli.main, [*args, "--precision", "bf16", "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert training.read_config(tmp_path / "run").precision == "bf16"


# The oracle in batches ---------------------------------------------------------------------------

def test_oracle_scores_the_test_set_in_batches(tmp_path, monkeypatch):
    spec = tiny_spec(n=24, normalize="sample")
    io.write(spec, tmp_path / "d.h5")
    with io.open_file(tmp_path / "d.h5") as (h5, _):
        fields, labels = h5["fields"][:], h5["labels"][:]
    data = training.Samples(spec, torch.from_numpy(fields)[:, None], torch.from_numpy(spec.choices(labels).astype(np.int64)),
                            np.arange(len(labels)))
    whole = oracle.predict(fields, spec)
    sizes = []
    log_likelihoods = oracle.FourierModel.log_likelihoods
    monkeypatch.setattr(oracle.FourierModel, "log_likelihoods",
                        lambda self, x: sizes.append(len(x)) or log_likelihoods(self, x))
    batched = training.evaluation._oracle_predict(data, pixels=5 * 32 * 32)
    assert sizes == [5, 5, 5, 5, 4]
    np.testing.assert_array_equal(batched.labels, whole.labels)
    np.testing.assert_array_equal(batched.choices, whole.choices)
    # The per-sample amplitude fit stops when a whole batch has converged, so the confidences
    # agree to its tolerance, not bit for bit.
    np.testing.assert_allclose(batched.confidence, whole.confidence, rtol=1e-6)
    assert training.oracle_scores(data)["joint"]["accuracy"] == np.mean(whole.labels == labels)


# Dry run and time estimate -----------------------------------------------------------------------

def test_estimate_adds_up_the_runs():
    plan = tiny_plan()
    runs = list(dict.fromkeys(experiment.main_runs(plan) + experiment.sweep_runs(plan)))
    parts = experiment.estimate(plan, RATES)
    # Sizes 1 and 2 per class (4 and 8 images, epochs ceil(8 / n)): 8 training images per run;
    # seeds 2 and 1, three methods.
    assert len(runs) == 9
    train = sum(8 / RATES.train[r.method] for r in runs)
    # Each run calibrates on its training images twice (after training, and before the report set)
    # and scores the 16 validation and 16 report images, beside the oracle; it generates its
    # training images twice; the two files are generated once.
    test = sum((2 * r.per_class * 4 + 16 + 16) / RATES.test for r in runs)
    per_run_generation = sum(2 * r.per_class * 4 for r in runs) / RATES.generate
    assert parts["train"] == pytest.approx(train) and parts["test"] == pytest.approx(test)
    assert parts["oracle"] == pytest.approx(9 * 32 / RATES.oracle)
    assert parts["generate"] == pytest.approx(per_run_generation + 32 / RATES.generate)
    assert parts["overhead"] == pytest.approx(9 * experiment.RUN_OVERHEAD_S)
    assert parts["total"] == pytest.approx(train + test + parts["oracle"] + parts["overhead"] + parts["generate"])
    two = experiment.estimate(plan, RATES, jobs=2)
    files = 32 / RATES.generate
    assert two["total"] == pytest.approx((parts["total"] - files) / 2 + files)


def test_dry_run_counts_what_out_already_holds(tmp_path):
    plan = tiny_plan()
    text = experiment.describe_plan(plan, tmp_path, rates=RATES)
    assert "| backdrop | heads, p 0.5/0.5 | 1 | 4 | 2 | 8 | 2 | 2 |" in text
    assert "9 runs, 9 to train; 72 training images in all" in text
    assert ("Data files to generate (32^2 px): 16 validation samples, 16 test samples; each run generates its own "
            "training images") in text
    assert "Estimated time on cpu with 1 job:" in text
    done = experiment.main_runs(plan)[0]
    (tmp_path / "runs" / done.name).mkdir(parents=True)
    # A recorded result names its run (an empty or damaged result.json is a run still to finish).
    (tmp_path / "runs" / done.name / "result.json").write_text(json.dumps({"name": done.name}))
    io.write(plan.test_spec, tmp_path / "data" / "test.h5")
    text = experiment.describe_plan(plan, tmp_path, rates=RATES)
    assert "9 runs, 8 to train" in text and "Data files to generate (32^2 px): 16 validation samples;" in text
    assert sorted(p.name for p in tmp_path.rglob("*")) == sorted(["runs", done.name, "result.json", "data", "test.h5"])


def test_measure_rates_times_every_method(tmp_path):
    plan = tiny_plan(methods=experiment.METHODS)
    threads = torch.get_num_threads()
    rates = experiment.measure_rates(plan, seconds=0.01, threads=1)
    assert set(rates.train) == set(experiment.METHODS) and all(r > 0 for r in rates.train.values())
    assert rates.device == "cpu" and rates.batch == 2 and rates.threads == 1
    assert min(rates.test, rates.oracle, rates.generate) > 0
    assert torch.get_num_threads() == threads


def test_cli_dry_run(tmp_path, monkeypatch):
    monkeypatch.setitem(experiment.PLANS, "paper", tiny_plan)
    monkeypatch.setattr(experiment.timing, "measure_rates", lambda plan, threads=None: RATES)  # where describe_plan finds it
    out = tmp_path / "x"
    result = CliRunner().invoke(cli.main, ["experiment", "--plan", "paper", "--dry-run", "--jobs", "1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"Plan paper into {out}.\n\nData: 32^2 px")
    assert "| method | masks | per class | n_train | epochs | images per run | runs | to train |" in result.output
    assert "Estimated time on cpu with 1 job" in result.output and not out.exists()
    assert RATES.describe() in result.output  # the rates given, not measured ones
    result = CliRunner().invoke(cli.main, ["experiment", "--dry-run", "--report", "--out", str(out)])
    assert result.exit_code == 2 and result.output.strip().count("\n") == 0
    assert "--dry-run and --report contradict each other" in result.output
