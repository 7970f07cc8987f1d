"""Writing at scale and reading for training: workers, resume after SIGKILL, shards and merge,
the PyTorch Dataset and split, GPU generation where there is a GPU, and the CLI's bad input."""
from __future__ import annotations

import functools
import multiprocessing
import operator
import pickle
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch.utils.data import DataLoader

import cli
import msgp
from msgp import io, spectral
from msgp.generate import Sampler
from msgp.gpu import TorchSampler
from msgp.spec import DatasetSpec

ROOT = Path(__file__).resolve().parent.parent
DATASETS = ("fields", "labels", "scale_labels", "components")
SPEC_OPTIONS = ["--lengths", "1.5,2;6,9", "--amplitudes", "1,2"]  # the options of small_spec


def small_spec(**values) -> DatasetSpec:
    return DatasetSpec(**{"n": 40, "length_scales": [[1.5, 2.0], [6.0, 9.0]], "amplitudes": [1.0, 2.0],
                          "size": 32, **values})


def contents(path) -> dict:
    """What a file holds, but for its file_id: drawn at random for every file created."""
    with h5py.File(path, "r") as f:
        return {"attrs": {k: np.asarray(v).tolist() for k, v in f.attrs.items() if k != "file_id"},
                **{name: f[name][:] for name in DATASETS if name in f}}


def assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    assert a["attrs"] == b["attrs"]
    for name in a.keys() - {"attrs"}:
        assert a[name].dtype == b[name].dtype and np.array_equal(a[name], b[name]), name


@pytest.fixture(scope="module")
def data_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "d.h5"
    io.write(small_spec(), path)
    return path


# Workers and batch sizes -------------------------------------------------------------------------

@pytest.mark.parametrize("spec", [small_spec(save_components=True), small_spec(normalize="sample", noise=0.1)],
                         ids=["theory+components", "sample+noise"])
def test_file_is_bit_identical_for_any_workers_and_batch_size(tmp_path, spec):
    reference = contents(io.write(spec, tmp_path / "ref.h5", batch_size=32).path)
    for workers, batch_size in [(1, 1), (1, 7), (2, 7), (2, 32)]:
        path = tmp_path / f"w{workers}-b{batch_size}.h5"
        io.write(spec, path, workers=workers, batch_size=batch_size)
        assert_same(contents(path), reference)


# Resume ----------------------------------------------------------------------------------------------

RESUMABLE = [*SPEC_OPTIONS, "--size", "64", "--n", "1500", "--batch-size", "4", "--workers", "1"]
KILLABLE = """
import sys
from msgp import io
from msgp.spec import DatasetSpec
spec = DatasetSpec(n=1500, length_scales=[[1.5, 2.0], [6.0, 9.0]], amplitudes=[1.0, 2.0], size=64)
def progress(k):
    print(k, flush=True)
io.write(spec, sys.argv[1], batch_size=4, resume=sys.argv[2] == "resume", progress=progress)
"""


def kill_after(command: list[str], samples: int) -> None:
    """Run ``command`` (which prints each batch's sample count) and SIGKILL it once it has written
    ``samples``; the kill lands wherever the writer is by then."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    done = 0
    for line in process.stdout:
        done += int(line)
        if done >= samples:
            break
    process.send_signal(signal.SIGKILL)
    process.wait()
    process.stdout.close()


@pytest.mark.slow
def test_resume_after_sigkill_is_bit_identical(tmp_path):
    spec = DatasetSpec(n=1500, length_scales=[[1.5, 2.0], [6.0, 9.0]], amplitudes=[1.0, 2.0], size=64)
    reference = contents(io.write(spec, tmp_path / "ref.h5").path)
    path = str(tmp_path / "killed.h5")
    kill_after([sys.executable, "-c", KILLABLE, path, "new"], 20)
    seen = [int(h5py.File(path, "r").attrs["n_written"])]
    for target in (300, 700):
        kill_after([sys.executable, "-c", KILLABLE, path, "resume"], target)
        seen.append(int(h5py.File(path, "r").attrs["n_written"]))
    assert 0 < seen[0] and seen == sorted(seen) and seen[-1] < 1500, seen
    # The last step goes through the installed command line, as a user would.
    finish = subprocess.run([sys.executable, "-m", "cli", "generate", *RESUMABLE, "-o", path, "--resume"],
                            cwd=ROOT, capture_output=True, text=True)
    assert finish.returncode == 0, finish.stderr
    assert_same(contents(path), reference)
    assert io.inspect(path)["ok"]


@pytest.mark.slow
def test_resume_of_a_killed_command_line_run(tmp_path):
    path = tmp_path / "cli.h5"
    command = [sys.executable, "-m", "cli", "generate", *RESUMABLE, "-o", str(path)]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        process.wait(timeout=1.5)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGKILL)
        process.wait()
    if path.exists():
        finish = subprocess.run(command + ["--resume"], cwd=ROOT, capture_output=True, text=True)
        assert finish.returncode == 0, finish.stderr
    else:  # killed before the file was created (it is made under another name, then renamed)
        subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
    spec = DatasetSpec(n=1500, length_scales=[[1.5, 2.0], [6.0, 9.0]], amplitudes=[1.0, 2.0], size=64)
    assert_same(contents(path), contents(io.write(spec, tmp_path / "ref.h5").path))


def test_resume_with_other_parameters_is_refused(tmp_path):
    path = tmp_path / "d.h5"
    with pytest.raises(KeyboardInterrupt):
        io.write(small_spec(), path, batch_size=10, progress=_interrupt_after(2))
    before = contents(path)
    runner = CliRunner()
    for other in (["--n", "41"], ["--n", "40", "--seed", "1"], ["--n", "40", "--shard", "0/2"]):
        result = runner.invoke(cli.main, ["generate", *SPEC_OPTIONS, "--size", "32", *other, "-o", str(path),
                                          "--resume"])
        assert result.exit_code == 2 and "other parameters" in result.output, result.output
        assert len(result.output.strip().splitlines()) == 1
    assert_same(contents(path), before)
    with pytest.raises(io.FileError, match="other parameters"):
        io.write(small_spec(dtype="float16"), path, resume=True)
    io.write(small_spec(), path, resume=True)
    assert io.inspect(path)["ok"]


def test_resume_refuses_a_damaged_file_in_one_line(tmp_path):
    path = tmp_path / "d.h5"
    path.write_bytes(b"not an hdf5 file")
    result = CliRunner().invoke(cli.main, ["generate", *SPEC_OPTIONS, "--size", "32", "--n", "40",
                                           "-o", str(path), "--resume"])
    assert result.exit_code == 2 and "damaged" in result.output and "Traceback" not in result.output


def _interrupt_after(batches: int):
    calls = []

    def progress(k):
        calls.append(k)
        if len(calls) == batches:
            raise KeyboardInterrupt
    return progress


# Shards and merge --------------------------------------------------------------------------------

def write_shards(folder: Path, spec: DatasetSpec, count: int, **options) -> list[Path]:
    paths = [folder / f"part-{i}.h5" for i in range(count)]
    for i, path in enumerate(paths):
        io.write(spec, path, shard=(i, count), **options)
    return paths


def test_merged_shards_read_exactly_like_a_single_run(tmp_path):
    spec = small_spec(n=43, save_components=True)
    single = contents(io.write(spec, tmp_path / "single.h5").path)
    shards = write_shards(tmp_path / "run" / "shards", spec, 4, workers=2, batch_size=5)
    with h5py.File(shards[1], "r") as f:
        assert (f.attrs["shard_start"], f.attrs["shard_stop"], f.attrs["n"]) == (10, 21, 43)
    result = CliRunner().invoke(cli.main, ["merge", *map(str, reversed(shards)), "-o", str(tmp_path / "run" / "full.h5")])
    assert result.exit_code == 0, result.output
    assert_same(contents(tmp_path / "run" / "full.h5"), single)
    # The directory moves as a whole: the virtual datasets name the shards by relative paths.
    shutil.move(tmp_path / "run", tmp_path / "moved")
    merged = tmp_path / "moved" / "full.h5"
    assert_same(contents(merged), single)
    assert io.inspect(merged)["ok"] and io.read_spec(merged, require_complete=True) == spec
    assert CliRunner().invoke(cli.main, ["info", str(merged)]).exit_code == 0
    dataset = msgp.MSGPDataset(merged)
    assert np.array_equal(dataset[42][0][0].numpy(), single["fields"][42])
    (tmp_path / "moved" / "shards" / "part-2.h5").unlink()
    with pytest.raises(io.FormatError, match="part-2.h5 is missing"):
        msgp.MSGPDataset(merged)


def test_merge_refuses_shards_that_do_not_belong_together(tmp_path):
    spec = small_spec()
    halves = write_shards(tmp_path / "halves", spec, 2)
    quarters = write_shards(tmp_path / "quarters", spec, 4)
    other_seed = write_shards(tmp_path / "seed", spec.replace(seed=1), 2)
    with pytest.raises(KeyboardInterrupt):
        io.write(spec, tmp_path / "incomplete.h5", shard=(1, 2), batch_size=5, progress=_interrupt_after(1))
    single = io.write(spec, tmp_path / "single.h5").path
    cases = {
        "missing": ([halves[0]], "samples 20 to 39 are missing"),
        "gap": ([quarters[0], quarters[2], quarters[3]], "samples 10 to 19 are missing"),
        "overlap": ([halves[0], quarters[1], halves[1]], "overlaps"),
        "duplicate": ([halves[0], halves[0], halves[1]], "overlaps"),
        "mismatched": ([halves[0], other_seed[1]], "another dataset"),
        "incomplete": ([halves[0], tmp_path / "incomplete.h5"], "incomplete"),
        "not a shard": ([halves[0], single], "not a shard"),
        "not a file": ([halves[0], tmp_path / "nothing.h5"], "does not exist"),
    }
    runner = CliRunner()
    for name, (shards, message) in cases.items():
        result = runner.invoke(cli.main, ["merge", *map(str, shards), "-o", str(tmp_path / f"merged {name}.h5")])
        assert result.exit_code == 2 and message in result.output, (name, result.output)
        assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / f"merged {name}.h5").exists()
    io.merge(quarters[:2] + halves[1:], tmp_path / "mixed.h5")
    assert_same(contents(tmp_path / "mixed.h5"), contents(single))
    with pytest.raises(io.FormatError, match="merge the shards first"):
        msgp.MSGPDataset(halves[0])


# The Dataset and split ----------------------------------------------------------------------------

def test_dataset_items_and_targets(data_file):
    stored = contents(data_file)
    spec = io.read_spec(data_file)
    dataset = msgp.MSGPDataset(data_file)
    assert len(dataset) == 40 and dataset.spec == spec and np.array_equal(dataset.labels, stored["labels"])
    field, label = dataset[5]
    assert field.dtype == torch.float32 and field.shape == (1, 32, 32) and type(label) is int
    assert np.array_equal(field[0].numpy(), stored["fields"][5]) and label == stored["labels"][5]
    _, choices = msgp.MSGPDataset(data_file, target="scales")[5]
    assert choices.dtype == torch.int64 and choices.tolist() == stored["scale_labels"][5].tolist()
    _, (label, choices) = msgp.MSGPDataset(data_file, target="both")[5]
    assert label == stored["labels"][5] and choices.tolist() == stored["scale_labels"][5].tolist()
    doubled = msgp.MSGPDataset(data_file, transform=lambda x: 2 * x)
    assert torch.equal(doubled[5][0], 2 * field)
    subset = msgp.MSGPDataset(data_file, indices=[7, 3, 3])
    assert len(subset) == 3 and subset.labels.tolist() == stored["labels"][[7, 3, 3]].tolist()
    assert torch.equal(subset[1][0], dataset[3][0]) and torch.equal(subset[-3][0], dataset[7][0])
    with pytest.raises(IndexError):
        subset[3]


def test_target_transform_and_classes_as_in_torchvision(data_file):
    """``target_transform`` applies to the target of every kind, survives subset, split and pickling,
    and runs in DataLoader workers; ``classes`` names label c at position c."""
    spec = io.read_spec(data_file)
    labels = contents(data_file)["labels"]
    shift = functools.partial(operator.add, 100)  # picklable, unlike a lambda
    for dataset in (msgp.MSGPDataset(data_file, target_transform=shift),
                    msgp.GeneratedDataset(spec, target_transform=shift)):
        assert dataset.classes == ["1.5-6", "2-6", "1.5-9", "2-9"] == list(spec.class_names)
        assert dataset[5][1] == labels[5] + 100 and torch.equal(dataset[5][0], msgp.MSGPDataset(data_file)[5][0])
        subset = dataset.subset([7, 3])
        assert subset.target_transform is shift and subset[1][1] == labels[3] + 100
        train, test = msgp.split(dataset, 8, 8, seed=1)
        assert train.target_transform is test.target_transform is shift and train.classes == dataset.classes
        assert [train[i][1] for i in range(8)] == (train.labels + 100).tolist()
        plain, _ = msgp.split(dataset, 8, 8, seed=1, target_transform=None)
        assert [plain[i][1] for i in range(8)] == train.labels.tolist()
        copied = pickle.loads(pickle.dumps(dataset))
        assert copied[5][1] == labels[5] + 100 and copied.subset([3])[0][1] == labels[3] + 100
        loader = DataLoader(dataset, batch_size=4, num_workers=2)
        assert torch.cat([targets for _, targets in loader]).tolist() == (labels + 100).tolist()
    scales = msgp.MSGPDataset(data_file, target="both", target_transform=lambda target: target[1].sum())
    assert scales[5][1] == contents(data_file)["scale_labels"][5].sum()


def test_float16_files_give_float32_fields(tmp_path):
    path = io.write(small_spec(n=4, dtype="float16"), tmp_path / "half.h5").path
    field, _ = msgp.MSGPDataset(path)[2]
    assert field.dtype == torch.float32
    assert np.array_equal(field[0].numpy(), contents(path)["fields"][2].astype(np.float32))


@pytest.mark.slow
@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_loader_with_two_workers_yields_every_sample_once(data_file, method):
    dataset = msgp.MSGPDataset(data_file, target="both", indices=np.arange(1, 40))
    dataset[0]  # the parent has the file open before the workers start
    loader = DataLoader(dataset, batch_size=4, shuffle=True, num_workers=2,
                        multiprocessing_context=multiprocessing.get_context(method))
    stored = contents(data_file)
    rows = {stored["fields"][i].tobytes(): i for i in range(40)}
    seen = []
    for fields, (labels, choices) in loader:
        for field, label, choice in zip(fields, labels, choices):
            i = rows[field[0].numpy().tobytes()]
            assert label == stored["labels"][i] and choice.tolist() == stored["scale_labels"][i].tolist()
            seen.append(i)
    assert sorted(seen) == list(range(1, 40))


def test_split_is_disjoint_and_balanced(data_file):
    train, test = msgp.split(data_file, 16, 12, seed=3)
    assert len(train) == 16 and len(test) == 12 and not set(train.indices) & set(test.indices)
    assert np.bincount(train.labels).tolist() == [4] * 4 and np.bincount(test.labels).tolist() == [3] * 4
    again, _ = msgp.split(data_file, 16, 12, seed=3)
    assert np.array_equal(again.indices, train.indices)
    scales = msgp.MSGPDataset(data_file, target="scales", indices=np.arange(0, 40, 2))
    inner, outer = msgp.split(scales, 8, 8)
    assert inner.target == "scales" and set(inner.indices) <= set(range(0, 40, 2))
    assert not set(inner.indices) & set(outer.indices)
    with pytest.raises(ValueError, match="multiple of 4, e.g. 8 or 12"):
        msgp.split(data_file, 10, 4)
    with pytest.raises(ValueError, match="more than the 40 samples"):
        msgp.split(data_file, 24, 20)
    with pytest.raises(ValueError, match="fewer than"):
        msgp.split(msgp.MSGPDataset(data_file, indices=np.flatnonzero(contents(data_file)["labels"] != 0)), 8, 4)


def test_dataset_errors_are_clear(data_file, tmp_path):
    with pytest.raises(ValueError, match="target must be one of 'class', 'scales', 'both', but got 'label'"):
        msgp.MSGPDataset(data_file, target="label")
    with pytest.raises(io.FormatError, match="does not exist"):
        msgp.MSGPDataset(tmp_path / "missing.h5")
    with pytest.raises(io.FormatError, match="is a directory"):
        msgp.MSGPDataset(tmp_path)
    with h5py.File(tmp_path / "plain.h5", "w") as f:
        f["x"] = 1
    with pytest.raises(io.FormatError, match="not an msgp file"):
        msgp.MSGPDataset(tmp_path / "plain.h5")
    with pytest.raises(KeyboardInterrupt):
        io.write(small_spec(), tmp_path / "incomplete.h5", batch_size=10, progress=_interrupt_after(1))
    with pytest.raises(io.FormatError, match="incomplete"):
        msgp.MSGPDataset(tmp_path / "incomplete.h5")
    with pytest.raises(IndexError, match="0 to 39"):
        msgp.MSGPDataset(data_file, indices=[0, 40])


# Devices ---------------------------------------------------------------------------------------------

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("normalize", ["theory", "sample"])
def test_statistics_on_every_device(tmp_path, device, normalize):
    """theory: each Fourier mode's power over its class's eigenvalue has mean 1. sample: the
    components are standardised per sample, so each field's pixel mean is that of the noise alone.
    Both: the marginal variance is sum_s a_s^2 + noise^2."""
    spec = small_spec(n=800, noise=0.3, normalize=normalize)
    stored = contents(io.write(spec, tmp_path / "d.h5", device=device, batch_size=64).path)
    fields, n, pixels = stored["fields"].astype(np.float64), spec.n, 32 * 32
    if normalize == "theory":
        sampler = Sampler(spec)
        power = np.abs(spectral.analyze(fields, 2)) ** 2
        expected = np.stack([sampler.spectrum_sqrt(int(c)) ** 2 for c in stored["labels"]])
        ratio = (power / expected).mean(axis=0)
        # Each ratio averages n exponential (variance 1) or chi^2_1 (variance 2) variables.
        assert abs(ratio.mean() - 1) < 5 * np.sqrt(2 / (n * ratio.size))
        assert np.max(np.abs(ratio - 1)) < 6 * np.sqrt(2 / n)
    else:
        means = fields.mean(axis=(1, 2))
        assert np.max(np.abs(means)) < 5 * spec.noise / np.sqrt(pixels)
    variance = sum(a**2 for a in spec.amplitudes) + spec.noise**2
    assert abs(fields.var() / variance - 1) < 0.05


@pytest.mark.parametrize("normalize", ["theory", "sample"])
def test_torch_sampler_matches_the_numpy_sampler(normalize):
    spec = small_spec(normalize=normalize, save_components=True, noise=0.1)
    a, b = Sampler(spec).batch(3, 17), TorchSampler(spec, "cpu").batch(3, 17)
    assert np.array_equal(a.labels, b.labels) and np.array_equal(a.scale_labels, b.scale_labels)
    # Both transform in float64 and round once to float32: at most one float32 step apart.
    eps = np.finfo(np.float32).eps
    for ours, theirs in ((a.fields, b.fields), (a.components, b.components)):
        assert np.allclose(ours, theirs, rtol=eps, atol=eps * np.abs(ours).max())


# Command-line bad input ----------------------------------------------------------------------------

@pytest.mark.parametrize("arguments,message", [
    (["--shard", "3/2"], "--shard 3/2: shards of 2 are numbered 0 to 1"),
    (["--shard", "x"], "--shard must look like I/N"),
    (["--shard", "0/0"], "N must be at least 1"),
    (["--shard", "-1/2"], "--shard must look like I/N"),
    (["--shard", "0/50"], "cannot split 40 samples into 50 shards"),
    (["--workers", "0"], "--workers must be at least 1, but got 0"),
    (["--resume"], "does not exist"),
    (["--resume", "--overwrite"], "contradict"),
] + ([] if torch.cuda.is_available() else [(["--device", "cuda"], "--device cuda: no CUDA device is available")]))
def test_generate_bad_input_is_one_line(tmp_path, arguments, message):
    output = tmp_path / "d.h5"
    result = CliRunner().invoke(cli.main, ["generate", *SPEC_OPTIONS, "--size", "32", "--n", "40",
                                           "-o", str(output), *arguments])
    assert result.exit_code == 2, result.output
    assert message in result.output and len(result.output.strip().splitlines()) == 1
    assert not output.exists()


# The library decides what the commands used to: errors in Python's words -------------------------

def test_every_msgp_error_is_an_msgp_error_and_the_builtin_it_was():
    from msgp import errors

    builtins = {"ArgumentError": ValueError, "ArgumentTypeError": TypeError, "ArgumentIndexError": IndexError,
                "SpecError": ValueError,
                "SpecTypeError": TypeError, "FileError": ValueError, "FormatError": ValueError,
                "ReplacedFileError": ValueError, "OracleError": ValueError, "SplitError": ValueError,
                "DeviceUnavailable": RuntimeError, "PlotUnavailable": RuntimeError}
    assert set(builtins) == {name for name in errors.__all__ if name not in ("MSGPError", "reword", "Option", "as_options")}
    for name, builtin in builtins.items():
        assert issubclass(getattr(errors, name), (msgp.MSGPError)) and issubclass(getattr(errors, name), builtin), name
    from msgp import dataset, gpu, intervals, kernels, oracle, plotting, spec
    assert (spec.SpecError, spec.SpecTypeError, io.FileError, io.FormatError, io.ReplacedFileError, oracle.OracleError,
            dataset.SplitError, gpu.DeviceUnavailable, plotting.PlotUnavailable) == \
        (errors.SpecError, errors.SpecTypeError, errors.FileError, errors.FormatError, errors.ReplacedFileError,
         errors.OracleError, errors.SplitError, errors.DeviceUnavailable, errors.PlotUnavailable)
    assert io.MSGPError is msgp.MSGPError  # the base class, not a file error of its own
    for call, builtin in ((lambda: msgp.GeneratedDataset("spec.json"), TypeError),
                          (lambda: msgp.MSGPDataset(ROOT, transform=3), TypeError),
                          (lambda: msgp.split(small_spec(), 8, 8, colour="red"), TypeError),
                          (lambda: intervals.wilson(1, 0), ValueError),
                          (lambda: kernels.get_kernel("rbf"), ValueError)):
        with pytest.raises(msgp.MSGPError) as raised:
            call()
        assert isinstance(raised.value, builtin)


@pytest.mark.parametrize("options, message", [
    ({"resume": True, "overwrite": True}, "`resume=True` and `overwrite=True` contradict each other; pass one"),
    ({"workers": 0}, "`workers` must be at least 1, but got 0"),
    ({"workers": True}, "`workers` must be at least 1, but got True"),
    ({"batch_size": -1}, "`batch_size` must be at least 1, but got -1"),
    ({"device": "tpu"}, "`device` must be 'cpu' or 'cuda', but got 'tpu'"),
    ({"shard": (3, 2)}, "`shard` 3/2: shards of 2 are numbered 0 to 1"),
    ({"shard": (0, 0)}, "`shard` 0/0: N must be at least 1"),
    ({"shard": (0, 50)}, "cannot split 40 samples into 50 shards"),
])
def test_write_refuses_bad_arguments_before_it_writes(tmp_path, options, message):
    with pytest.raises(msgp.MSGPError, match=re.escape(message)):
        io.write(small_spec(), tmp_path / "d.h5", **options)
    assert list(tmp_path.iterdir()) == []


def test_write_and_merge_refuse_their_output_in_python_words(tmp_path, data_file):
    with pytest.raises(io.FileError, match=re.escape(f"{data_file} already exists; pass `overwrite=True` to replace it")):
        io.write(small_spec(), data_file)
    with pytest.raises(io.FileError, match="is a directory, not a file"):
        io.write(small_spec(), tmp_path, overwrite=True)
    shards = write_shards(tmp_path / "shards", small_spec(), 2)
    with pytest.raises(io.FileError, match="is a directory, not a file"):
        io.merge(shards, tmp_path, overwrite=True)
    with pytest.raises(io.FileError, match="the directory .*nowhere does not exist"):
        io.merge(shards, tmp_path / "nowhere" / "m.h5")
    with pytest.raises(io.FileError, match="already exists; pass `overwrite=True`"):
        io.merge(shards, data_file)
    with pytest.raises(KeyboardInterrupt):
        io.write(small_spec(), tmp_path / "half.h5", shard=(0, 2), batch_size=5, progress=_interrupt_after(1))
    with pytest.raises(io.FileError, match="half.h5 is incomplete .*; finish it with `resume=True`"):
        io.merge([tmp_path / "half.h5", shards[1]], tmp_path / "m.h5")
    assert not (tmp_path / "nowhere").exists()


def test_the_cli_words_the_librarys_parameters_as_its_flags(tmp_path, data_file):
    runner = CliRunner()
    result = runner.invoke(cli.main, ["generate", *SPEC_OPTIONS, "--size", "32", "--n", "40", "-o", str(data_file)])
    assert result.exit_code == 2 and result.output.strip() == \
        f"Error: {data_file} already exists; pass --overwrite to replace it"
    result = runner.invoke(cli.main, ["preview", str(data_file), "--per-class", "0", "-o", str(tmp_path / "p.png")])
    assert result.output.strip() == "Error: --per-class must be at least 1, but got 0"
    result = runner.invoke(cli.main, ["oracle", str(data_file), "--crop", "33"])
    assert result.output.strip() == "Error: --crop 33 is larger than the field (32 px per axis)"


@pytest.mark.parametrize("text, shard", [("0/1", (0, 1)), ("15/16", (15, 16))])
def test_one_check_of_a_shard(text, shard):
    from msgp.checks import Checks

    assert Checks().shard_text("shard", text) == Checks().shard("shard", shard) == shard
    for bad in ((1, 1), (-1, 2), (True, 2), (0.0, 2), "0/2", (0, 1, 2)):
        with pytest.raises(msgp.MSGPError):
            Checks().shard("shard", bad)


def test_the_description_of_generates_options():
    """DatasetSpec.from_options: a preset with its values replaced, or the defaults of a number of
    scales, which must agree with the length scales given."""
    assert DatasetSpec.from_options(size=64, n_scales=1, n=8) == DatasetSpec.default(1, 64, n=8)
    assert DatasetSpec.from_options(length_scales=[[1.5, 2.0], [6.0, 9.0]], amplitudes=[1.0, 2.0], size=32, n=40) \
        == small_spec()
    assert DatasetSpec.from_options("paper-2scale", n=4, size=None) == msgp.spec.load_preset("paper-2scale", n=4)
    with pytest.raises(msgp.spec.SpecError, match="`n_scales` 3 disagrees with `length_scales`, which gives 2 scales"):
        DatasetSpec.from_options(n_scales=3, length_scales=[[1.5, 2.0], [6.0, 9.0]], amplitudes=[1.0, 2.0], size=32)
    with pytest.raises(msgp.spec.SpecError, match="`n_scales` must be between 1 and 5, but got 6"):
        DatasetSpec.from_options(n_scales=6)
