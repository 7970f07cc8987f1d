"""Methods from the user's own file (`msgp experiment --method FILE.py:FUNCTION`): the example file
on the smoke plan, pairing with the built-in runs, the recorded source and content hash, resume,
and one `Error:` line for every kind of bad method file."""
from __future__ import annotations

import csv
import json
import shutil
import textwrap
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import cli
from backdrop import experiment
from backdrop.experiment import methods
from backdrop.experiment.records import result_columns

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "my_method.py"


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def invoke(out, *specs, options=("--jobs", "1")):
    args = ["experiment", "--plan", "smoke", "--out", str(out), *options]
    for spec in specs:
        args += ["--method", spec]
    return CliRunner().invoke(cli.main, args)


@pytest.fixture(scope="module")
def example_run(tmp_path_factory):
    """The smoke plan with both methods of examples/my_method.py, from a copy of the file (tests
    change it)."""
    root = tmp_path_factory.mktemp("methods")
    source = root / "my_method.py"
    shutil.copy(EXAMPLE, source)
    out = root / "out"
    result = invoke(out, f"{source}:wide_net", f"{source}:nearest_spectrum")
    assert result.exit_code == 0, result.output
    return root, source, out


def test_example_file_is_short_and_has_one_method_of_each_kind():
    assert len(EXAMPLE.read_text().splitlines()) <= 40
    kinds = {methods.load_method(f"{EXAMPLE}:{name}").kind for name in ("wide_net", "nearest_spectrum")}
    assert kinds == {"network", "fitted"}


@pytest.mark.slow
def test_example_methods_are_run_paired_and_tabulated_like_the_built_in_ones(example_run):
    _, source, out = example_run
    rows = read_csv(out / "results.csv")
    assert list(rows[0]) == result_columns(2)
    assert sorted((r["method"], r["seed"]) for r in rows) == sorted(
        (m, s) for m in ("no-backdrop", "backdrop", "wide_net", "nearest_spectrum") for s in ("0", "1"))
    assert all(r["status"] == "finished" for r in rows)
    for name in ("wide_net", "nearest_spectrum"):
        assert f"| {name} | 2 |" in (out / "results.md").read_text()
        assert any(r["method"] == name for r in read_csv(out / "comparisons.csv"))
    network = json.loads((out / "runs" / "no-backdrop-n2-s0" / "result.json").read_text())
    for name in ("wide_net-n2-s0", "nearest_spectrum-n2-s0"):
        result = json.loads((out / "runs" / name / "result.json").read_text())
        assert set(result) == set(network)
        assert result["oracle_accuracy"] == network["oracle_accuracy"]  # the same test samples
        assert result["wall_s"] > 0
    # The network method's run records its source and the file's content hash.
    config = json.loads((out / "runs" / "wide_net-n2-s0" / "config.json").read_text())
    assert config["train"]["network"] == {"source": f"{source}:wide_net", "sha256": methods.file_hash(source)}
    assert config["train"]["lr"] == 1e-3  # its own setting, over the plan's 2e-3
    assert config["model"] == {"network": config["train"]["network"]}


@pytest.mark.slow
def test_methods_run_in_shards_and_report_like_one_process(example_run, tmp_path):
    _, source, out = example_run
    specs = [f"{source}:wide_net", f"{source}:nearest_spectrum"]
    shared = tmp_path / "shared"
    for shard in ("0/2", "1/2"):
        result = invoke(shared, *specs, options=("--jobs", "1", "--shard", shard))
        assert result.exit_code == 0, result.output
        assert f"(shard {shard})" in result.output
    result = invoke(shared, *specs, options=("--report",))
    assert result.exit_code == 0, result.output

    def rows(path):
        return sorted(tuple((k, v) for k, v in row.items() if k != "wall_s") for row in read_csv(path))
    assert rows(shared / "results.csv") == rows(out / "results.csv")
    assert rows(shared / "comparisons.csv") == rows(out / "comparisons.csv")


@pytest.mark.slow
def test_a_fitted_run_gets_the_samples_a_network_run_with_its_seed_gets(example_run):
    _, source, out = example_run
    for seed in (0, 1):
        trained = json.loads((out / "runs" / f"no-backdrop-n2-s{seed}" / "config.json").read_text())
        recorded = json.loads((out / "runs" / f"nearest_spectrum-n2-s{seed}" / "method.json").read_text())
        assert recorded["sha256"] == methods.file_hash(source)
        # The seed's own generated training samples, and the validation file, as the network run's.
        assert recorded["train"]["data"] == trained["train"]["data"] and recorded["train"]["data"]["seed"] == seed
        assert recorded["train"]["test_data"] == trained["train"]["test_data"]
        train, validation = methods.run_samples(experiment.runs.training.TrainConfig(**recorded["train"]))
        assert train.indices.tolist() == trained["train_indices"]
        assert validation.indices.tolist() == trained["test_indices"]
        network = json.loads((out / "runs" / f"no-backdrop-n2-s{seed}" / "result.json").read_text())
        fitted = json.loads((out / "runs" / f"nearest_spectrum-n2-s{seed}" / "result.json").read_text())
        for key in ("data_seed", "validation_seed", "test_seed", "n_validation", "n_test",
                    "validation_oracle_accuracy", "oracle_accuracy"):
            assert fitted[key] == network[key], key


@pytest.mark.slow
def test_a_rerun_repeats_nothing_and_a_changed_file_is_refused(example_run):
    root, source, out = example_run
    before = (out / "runs" / "wide_net-n2-s0" / "result.json").read_bytes()
    result = invoke(out, f"{source}:wide_net", f"{source}:nearest_spectrum")
    assert result.exit_code == 0 and "8 runs into" in result.output and "0 to train" in result.output
    assert (out / "runs" / "wide_net-n2-s0" / "result.json").read_bytes() == before
    # An interrupted network run resumes from its checkpoint with the same file ...
    for name in ("result.json", "summary.json"):
        (out / "runs" / "wide_net-n2-s1" / name).unlink()
    result = invoke(out, f"{source}:wide_net")
    assert result.exit_code == 0, result.output
    assert (out / "runs" / "wide_net-n2-s1" / "result.json").exists()
    # ... and is refused, in one line, once the file changed; so is a recorded fitted run.
    (out / "runs" / "wide_net-n2-s1" / "result.json").unlink()
    original = source.read_text()
    source.write_text(original + "\n# changed\n")
    try:
        for spec in (f"{source}:wide_net", f"{source}:nearest_spectrum"):
            result = invoke(out, spec)
            assert result.exit_code == 2, result.output
            errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
            assert len(errors) == 1 and "Traceback" not in result.output
            assert "other settings (network" in errors[0] or "changed since" in errors[0]
        # The trainer itself refuses to resume with the changed file.
        config = experiment.runs.training.read_config(out / "runs" / "wide_net-n2-s1")
        with pytest.raises(methods.MethodError, match="changed since the run was configured"):
            experiment.runs.training.train(config, out / "runs" / "wide_net-n2-s1", resume=True)
    finally:
        source.write_text(original)


BAD = {
    "syntax": ("def broken(:\n", "broken", "syntax error at line 1"),
    "no_function": ("x = 1\n", "missing", "has no function 'missing'"),
    "not_callable": ("x = 3\n", "x", "is not callable"),
    "not_marked": ("def plain(fields, labels, spec):\n    return None\n", "plain", "is not marked as a method"),
    "built_in_name": ("""
        from backdrop.experiment.methods import fitted
        @fitted
        def whittle(fields, labels, spec):
            return None
        """, "whittle", "has the name of a built-in method"),
    "bad_setting": ("""
        from backdrop.experiment.methods import network
        @network(epochz=3)
        def net(spec):
            return None
        """, "net", "'epochz' is not a training setting"),
    "no_predict": ("""
        from backdrop.experiment.methods import fitted
        @fitted
        def fit(fields, labels, spec):
            return 3
        """, "fit", "must return a predict function"),
    "shape": ("""
        import numpy as np
        from backdrop.experiment.methods import fitted
        @fitted
        def fit(fields, labels, spec):
            return lambda x: np.full((len(x), spec.n_classes), -np.log(spec.n_classes))
        """, "fit", "must return log-probabilities of shape"),
    "dtype": ("""
        import numpy as np
        from backdrop.experiment.methods import fitted
        @fitted
        def fit(fields, labels, spec):
            return lambda x: np.zeros((len(x), spec.n_scales, spec.n_choices), dtype=np.int64)
        """, "fit", "floating log-probabilities"),
    "non_finite": ("""
        import numpy as np
        from backdrop.experiment.methods import fitted
        @fitted
        def fit(fields, labels, spec):
            def predict(x):
                out = np.full((len(x), spec.n_scales, spec.n_choices), -np.inf)
                out[..., 0] = 0.0
                return out
            return predict
        """, "fit", "non-finite log-probabilities"),
    "not_normalised": ("""
        import numpy as np
        from backdrop.experiment.methods import fitted
        @fitted
        def fit(fields, labels, spec):
            return lambda x: np.zeros((len(x), spec.n_scales, spec.n_choices))
        """, "fit", "not normalised"),
    "fit_raises": ("""
        from backdrop.experiment.methods import fitted
        @fitted
        def fit(fields, labels, spec):
            raise RuntimeError("no convergence")
        """, "fit", "failed to fit: RuntimeError: no convergence"),
    "logits_shape": ("""
        from torch import nn
        from backdrop.experiment.methods import network
        @network
        def net(spec):
            return nn.Sequential(nn.Flatten(), nn.LazyLinear(spec.n_classes))
        """, "net", "must return logits of shape"),
    "not_a_module": ("""
        from backdrop.experiment.methods import network
        @network
        def net(spec):
            return "a network"
        """, "net", "must return a torch.nn.Module"),
}


@pytest.fixture(scope="module")
def smoke_data(tmp_path_factory):
    """The smoke plan's two data files, generated once and copied into each bad case's --out."""
    out = tmp_path_factory.mktemp("smoke")
    experiment.prepare_data(experiment.smoke_plan(), out)
    return out / "data"


@pytest.mark.parametrize("case", [*BAD, "missing_file", "no_colon"])
def test_bad_method_files_get_one_error_line_and_nothing_is_trained(case, tmp_path, smoke_data):
    out = tmp_path / "out"
    shutil.copytree(smoke_data, out / "data")
    if case == "missing_file":
        spec, message = f"{tmp_path / 'nowhere.py'}:fit", "does not exist"
    elif case == "no_colon":
        spec, message = str(EXAMPLE), "must be path/to/file.py:function or module:function"
    else:
        text, name, message = BAD[case]
        (tmp_path / "bad.py").write_text(textwrap.dedent(text))
        spec = f"{tmp_path / 'bad.py'}:{name}"
    result = invoke(out, spec)
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and message in errors[0], result.output
    assert "Traceback" not in result.output
    assert not (out / "runs").exists()  # refused before any run trained


def test_log_probabilities_are_checked_against_float32_rounding():
    spec = experiment.smoke_plan().spec
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(64, spec.n_scales, spec.n_choices)).astype(np.float32)
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))  # normalised in float32
    methods.check_log_probs(log_probs, 64, spec, "f")
    with pytest.raises(methods.MethodError, match="sum to 1.0001"):
        methods.check_log_probs(log_probs + np.float32(1e-4), 64, spec, "f")


@pytest.mark.slow
def test_msgp_evaluate_rebuilds_a_network_method_from_its_file(example_run):
    _, _, out = example_run
    run_dir = out / "runs" / "wide_net-n2-s0"
    recorded = json.loads((run_dir / "result.json").read_text())
    # Calibrated and scored as the trainer scored it, on the run's own test images (the validation set) ...
    scored = experiment.runs.training.evaluate(run_dir, device="cpu")
    assert [s["accuracy"] for s in scored["network"]["scales"]] == recorded["validation_accuracy"]["scales"]
    assert scored["n"] == recorded["n_validation"]
    # ... and as the experiment scored it on the report set.
    scored = experiment.runs.training.evaluate(run_dir, out / "data" / "test.h5", n=recorded["n_test"], device="cpu")
    assert [s["accuracy"] for s in scored["network"]["scales"]] == recorded["test_accuracy"]["scales"]
    assert scored["network"]["joint"]["accuracy"] == recorded["test_accuracy"]["joint"]
    result = CliRunner().invoke(cli.main, ["evaluate", str(run_dir), str(out / "data" / "test.h5"),
                                           "--n", str(recorded["n_test"]), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert f"{recorded['test_accuracy']['joint']:.3f}" in result.output


def test_the_dry_run_lists_fitted_methods_without_training_steps(tmp_path):
    rates = experiment.Rates("cpu", 1, 2, {m: 100.0 for m in experiment.METHODS}, test=400.0, oracle=20.0,
                             generate=10.0)
    text = experiment.describe_plan(experiment.paper128_plan(), tmp_path, rates=rates)
    assert "| whittle (fitted) | | 64 | 256 |" in text and "| scattering (fitted) | | 2 | 8 |" in text


@pytest.mark.slow
def test_report_refuses_a_fitted_run_on_other_samples(example_run, tmp_path):
    """--report applies to a fitted run the check a rerun applies: a method.json that names other
    training samples (a plan changed under an old --out) is refused in one line, not tabulated."""
    _, source, out = example_run
    copy = tmp_path / "out"
    shutil.copytree(out, copy, ignore=shutil.ignore_patterns("*.png"))
    specs = (f"{source}:wide_net", f"{source}:nearest_spectrum")
    assert invoke(copy, *specs, options=("--report",)).exit_code == 0
    recorded = copy / "runs" / "nearest_spectrum-n2-s1" / "method.json"
    stored = json.loads(recorded.read_text())
    stored["train"]["data"] = {**stored["train"]["data"], "seed": 77}
    recorded.write_text(json.dumps(stored))
    result = invoke(copy, *specs, options=("--report",))
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "nearest_spectrum-n2-s1 holds a fitted run on other samples" in errors[0], result.output
