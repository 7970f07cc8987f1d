"""GeneratedDataset: item for item the file `msgp generate` writes, in any order, batched, in
DataLoader workers; split and training on it give what the file gives; the CLI's DATA forms."""
from __future__ import annotations

import json
import multiprocessing
import pickle

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch.utils.data import DataLoader

import cli
import msgp
from backdrop import training
from msgp import generate, io
from msgp.generate import Sampler
from msgp.spec import DatasetSpec


def small_spec(**values) -> DatasetSpec:
    """Two scales, two candidates each (4 classes), on a 32-pixel grid."""
    return DatasetSpec(**{"n": 40, "length_scales": [[1.5, 2.0], [6.0, 9.0]], "amplitudes": [1.0, 2.0],
                          "size": 32, **values})


LENGTHS_16 = [[1.5, 2.0], [4.0, 6.0]]  # within size/2 on a 16-pixel grid


@pytest.fixture(scope="module")
def spec_and_file(tmp_path_factory):
    spec = small_spec()
    return spec, io.write(spec, tmp_path_factory.mktemp("data") / "d.h5").path


def assert_same_items(a, b):
    (field_a, target_a), (field_b, target_b) = a, b
    assert field_a.dtype == field_b.dtype == torch.float32 and torch.equal(field_a, field_b)
    assert repr(target_a) == repr(target_b)


# Items -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("values", [
    {"normalize": "theory", "ndim": 1, "size": 64, "noise": 0.1},
    {"normalize": "theory", "ndim": 2, "save_components": True},
    {"normalize": "theory", "ndim": 3, "size": 16, "dtype": "float16", "length_scales": LENGTHS_16},
    {"normalize": "sample", "ndim": 1, "size": 64},
    {"normalize": "sample", "ndim": 2, "noise": 0.1},
    {"normalize": "sample", "ndim": 3, "size": 16, "length_scales": LENGTHS_16},
], ids=["theory-1d", "theory-2d-components", "theory-3d-float16", "sample-1d", "sample-2d", "sample-3d"])
def test_items_are_bit_identical_to_the_written_file_in_any_order(tmp_path, values):
    spec = small_spec(n=23, **values)  # blocks of 4 labels, the last one cut
    path = io.write(spec, tmp_path / "d.h5", batch_size=5).path
    for target in ("class", "both"):
        stored = msgp.MSGPDataset(path, target=target)
        generated = msgp.GeneratedDataset(spec, target=target)
        assert len(generated) == 23 and np.array_equal(generated.labels, stored.labels)
        order = np.random.default_rng(1).permutation(23)
        for i, item in zip(order, generated.__getitems__(order.tolist())):
            assert_same_items(item, stored[i])
        for i in (0, 22, -1, -23):
            assert_same_items(generated[i], stored[i])


def test_any_index_below_n_and_nothing_else(spec_and_file):
    spec, path = spec_and_file
    huge = msgp.GeneratedDataset(spec.replace(n=10**12))
    assert len(huge) == 10**12
    field, label = huge[10**12 - 1]
    assert field.shape == (1, 32, 32) and 0 <= label < 4
    # Sample i does not depend on n: the first samples are the small file's.
    assert_same_items(huge[7], msgp.MSGPDataset(path)[7])
    for bad in (10**12, -10**12 - 1):
        with pytest.raises(IndexError, match="out of range"):
            huge[bad]
    with pytest.raises(IndexError):
        msgp.GeneratedDataset(spec, indices=[0, 40])
    with pytest.raises(ValueError, match="target must be one of"):
        msgp.GeneratedDataset(spec, target="label")
    with pytest.raises(TypeError, match="spec must be a DatasetSpec"):
        msgp.GeneratedDataset(str(path))


def test_indices_transform_and_subset_match_the_file(spec_and_file):
    spec, path = spec_and_file
    double = lambda x: 2 * x  # noqa: E731
    stored = msgp.MSGPDataset(path, target="scales", transform=double, indices=[9, 3, 3, 31])
    generated = msgp.GeneratedDataset(spec, target="scales", transform=double, indices=[9, 3, 3, 31])
    assert generated.indices.tolist() == [9, 3, 3, 31] and np.array_equal(generated.labels, stored.labels)
    for k in range(4):
        assert_same_items(generated[k], stored[k])
    sub = generated.subset([3, 0])
    assert sub.indices.tolist() == [31, 9] and sub.target == "scales" and sub.transform is double
    assert_same_items(sub[0], stored[3])
    assert "4 of 40 samples" in repr(generated)


def test_a_batch_is_drawn_with_batched_ffts_in_chunks_of_bounded_pixels(spec_and_file, monkeypatch):
    spec, path = spec_and_file
    calls = []
    synthesize = Sampler._synthesize
    monkeypatch.setattr(Sampler, "_synthesize", lambda self, spectra: calls.append(len(spectra)) or
                        synthesize(self, spectra))
    stored = msgp.MSGPDataset(path)
    loader = DataLoader(msgp.GeneratedDataset(spec), batch_size=16, shuffle=True,
                        generator=torch.Generator().manual_seed(0))
    batches = list(loader)
    assert calls == [16, 16, 8]  # one inverse FFT per batch, not one per item
    monkeypatch.setattr(generate, "BATCH_PIXELS", 5 * 32 * 32)
    calls.clear()
    order = [39, 2, 17, 5, 5, 30, 11]
    items = msgp.GeneratedDataset(spec).__getitems__(order)
    assert calls == [5, 2]
    for i, item in zip(order, items):
        assert_same_items(item, stored[i])
    assert sum(len(fields) for fields, _ in batches) == 40


def test_loader_with_two_workers_yields_every_sample_once(spec_and_file):
    spec, path = spec_and_file
    dataset = msgp.GeneratedDataset(spec, target="both", indices=np.arange(1, 40))
    dataset[0]  # the parent has its sampler before the workers start
    # Forked workers; spawned ones get the pickled dataset, which test_pickles_without_its_sampler covers.
    loader = DataLoader(dataset, batch_size=4, shuffle=True, num_workers=2,
                        multiprocessing_context=multiprocessing.get_context("fork"))
    stored = msgp.MSGPDataset(path, target="both")
    rows = {stored[i][0].numpy().tobytes(): i for i in range(40)}
    seen = []
    for fields, (labels, choices) in loader:
        for field, label, choice in zip(fields, labels, choices):
            i = rows[field.numpy().tobytes()]
            assert label == stored.labels[i] and torch.equal(choice, stored[i][1][1])
            seen.append(i)
    assert sorted(seen) == list(range(1, 40))


def test_pickles_without_its_sampler(spec_and_file):
    spec, _ = spec_and_file
    dataset = msgp.GeneratedDataset(spec)
    first = dataset[0]
    assert dataset._sampler is not None
    copy = pickle.loads(pickle.dumps(dataset))
    assert copy._sampler is None  # a spawned worker builds its own, at its first item
    assert_same_items(copy[0], first)
    assert copy._sampler is not None


# Split and training ------------------------------------------------------------------------------

def test_split_of_a_description_is_the_split_of_its_file(spec_and_file):
    spec, path = spec_and_file
    for source in (spec, msgp.GeneratedDataset(spec, target="scales")):
        train, test = msgp.split(source, 16, 12, seed=3)
        file_train, file_test = msgp.split(path, 16, 12, seed=3)
        assert isinstance(train, msgp.GeneratedDataset)
        assert np.array_equal(train.indices, file_train.indices) and np.array_equal(test.indices, file_test.indices)
        assert np.bincount(train.labels).tolist() == [4] * 4
    assert train.target == "scales"
    assert_same_items(test[5], msgp.MSGPDataset(path, target="scales")[int(test.indices[5])])
    with pytest.raises(ValueError, match="multiple of 4"):
        msgp.split(spec, 10, 4)


def run_results(run_dir) -> dict:
    """Everything a run's results consist of, less the timings."""
    metrics = [{k: v for k, v in m.items() if k != "images_per_s"} for m in training.read_metrics(run_dir)]
    config = json.loads((run_dir / "config.json").read_text())
    return {"metrics": metrics, "indices": (config["train_indices"], config["test_indices"]),
            "state": training.load_checkpoint(run_dir / "checkpoint.pt")["state"]}


def assert_same_results(a: dict, b: dict) -> None:
    assert a["metrics"] == b["metrics"] and a["indices"] == b["indices"]
    assert a["state"].keys() == b["state"].keys()
    assert all(torch.equal(a["state"][k], b["state"][k]) for k in a["state"])


@pytest.mark.slow
def test_training_on_a_description_repeats_training_on_its_file(tmp_path):
    spec = small_spec(n=64, length_scales=[[1.5, 4.0], [6.0, 16.0]])
    path = io.write(spec, tmp_path / "d.h5").path
    settings = {"n_train": 16, "n_test": 16, "epochs": 2, "batch_size": 8, "width": 4, "device": "cpu"}
    training.train(training.TrainConfig(data=path, **settings), tmp_path / "file")
    training.train(training.TrainConfig(data=spec, **settings), tmp_path / "generated")
    assert_same_results(run_results(tmp_path / "file"), run_results(tmp_path / "generated"))
    assert training.read_config(tmp_path / "generated").data == spec.to_dict()
    with pytest.raises(ValueError, match="invalid dataset description: unknown parameters colour"):
        training.TrainConfig(data={**spec.to_dict(), "colour": "red"})


# The command line --------------------------------------------------------------------------------

TRAIN = ["--n-train", "8", "--n-test", "8", "--epochs", "1", "--batch-size", "8", "--width", "4", "--device", "cpu"]


def test_cli_train_generate_repeats_training_on_the_generated_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    result = runner.invoke(cli.main, ["generate", "--n", "48", "--workers", "1", "-o", "d.h5"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(cli.main, ["train", "d.h5", *TRAIN, "--out", "file"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(cli.main, ["train", "--generate", "48", *TRAIN, "--out", "generated"])
    assert result.exit_code == 0, result.output
    assert_same_results(run_results(tmp_path / "file"), run_results(tmp_path / "generated"))
    assert training.read_config(tmp_path / "generated").data == io.read_spec("d.h5").to_dict()
    result = runner.invoke(cli.main, ["train", "--out", "generated", "--resume", "--epochs", "2"])
    assert result.exit_code == 0, result.output
    assert len(training.read_metrics(tmp_path / "generated")) == 2
    result = runner.invoke(cli.main, ["evaluate", "generated"])
    assert result.exit_code == 0, result.output
    assert "8 samples of the generated dataset (seed 0)" in result.output


def test_cli_spec_json_and_file_description_as_data(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = small_spec(n=32)
    io.write(spec, tmp_path / "d.h5")
    (tmp_path / "spec.json").write_text(json.dumps({"description": "two scales", **spec.to_dict()}))
    (tmp_path / "test.json").write_text(json.dumps(spec.replace(seed=7).to_dict()))
    runner = CliRunner()
    for args, out in [(["d.h5"], "file"), (["spec.json"], "json"), (["d.h5", "--generate", "32"], "regenerated"),
                      (["spec.json", "--test-data", "test.json"], "json-test")]:
        result = runner.invoke(cli.main, ["train", *args, *TRAIN, "--out", out])
        assert result.exit_code == 0, (args, result.output)
    reference = run_results(tmp_path / "file")
    for out in ("json", "regenerated"):
        assert_same_results(run_results(tmp_path / out), reference)
    # --generate N draws N samples of DATA's description: more than the file holds, same first ones.
    config = training.read_config(tmp_path / "json-test")
    assert config.data == spec.to_dict() and config.test_data == spec.replace(seed=7).to_dict()
    result = runner.invoke(cli.main, ["train", "d.h5", "--generate", "400", *TRAIN, "--out", "more"])
    assert result.exit_code == 0, result.output
    assert training.read_config(tmp_path / "more").data == spec.replace(n=400).to_dict()


@pytest.mark.parametrize("args,contents,message", [
    (["--generate", "0"], None, "--generate must be a positive number of samples, but got 0"),
    (["d.h5", "--generate", "-2"], None, "--generate must be a positive number of samples, but got -2"),
    (["spec.json"], "{not json", "spec.json is not valid JSON"),
    (["spec.json"], "[1, 2]", "must hold a JSON object"),
    (["spec.json"], '{"n": 8, "length_scales": [[2, 1]], "amplitudes": [1]}', "must be increasing, but got 2,1"),
    (["spec.json"], '{"n": 8, "length_scales": [[1.5, 2]], "amplitudes": [1], "colour": 1}', "colour"),
    (["missing.json"], None, "missing.json does not exist"),
    (["paper-9scale"], None, "unknown preset 'paper-9scale'"),
    (["spec.json", "--n-train", "800"], '{"n": 40, "length_scales": [[1.5, 2]], "amplitudes": [1], "size": 16}',
     "more than the 40 samples"),
])
def test_bad_data_gets_one_line_errors(tmp_path, monkeypatch, args, contents, message):
    monkeypatch.chdir(tmp_path)
    if contents is not None:
        (tmp_path / "spec.json").write_text(contents)
    result = CliRunner().invoke(cli.main, ["train", *args, "--out", "run"])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "run").exists()
