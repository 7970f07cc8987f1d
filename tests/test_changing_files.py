"""Files that change underneath, with real processes: a file another process is writing is
reported as such; resuming a complete file is a no-op whoever reads it; a Dataset whose file was
written anew since it was made refuses to read it, in the parent and in DataLoader workers (fork
and spawn), rather than give the new fields with the old labels."""
from __future__ import annotations

import contextlib
import multiprocessing
import os
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
from msgp import io
from msgp.spec import DatasetSpec

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
GENERATE = [sys.executable, "-m", "cli", "generate", "--lengths", "1.5,2;6,9", "--amplitudes", "1,2",
            "--size", "32", "--n", "40", "--workers", "1"]  # the command line of small_spec
# Opens argv[1] with h5py in mode argv[2], says so, and keeps it open until its stdin is closed.
HOLD = """
import sys, h5py
f = h5py.File(sys.argv[1], sys.argv[2])
print("open", flush=True)
sys.stdin.read()
"""
# msgp's writer (what msgp generate runs), stopped after each batch until the test sends a line.
WRITE = """
import sys
from msgp import io
from msgp.spec import DatasetSpec
spec = DatasetSpec(n=40, length_scales=[[1.5, 2.0], [6.0, 9.0]], amplitudes=[1.0, 2.0], size=32)
def progress(k):
    print(k, flush=True)
    sys.stdin.readline()
io.write(spec, sys.argv[1], batch_size=10, overwrite=True, progress=progress)
"""


def small_spec(**values) -> DatasetSpec:
    return DatasetSpec(**{"n": 40, "length_scales": [[1.5, 2.0], [6.0, 9.0]], "amplitudes": [1.0, 2.0],
                          "size": 32, **values})


@contextlib.contextmanager
def process_with(script: str, *args):
    """A Python process running ``script``, once it has printed its first line; on leaving, its
    stdin is closed and it is waited for."""
    process = subprocess.Popen([sys.executable, "-c", script, *map(str, args)], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True, env=ENV)
    try:
        assert process.stdout.readline(), "the process ended before it was ready"
        yield process
    finally:
        process.stdin.close()
        process.wait(timeout=60)
        process.stdout.close()


def one_error_line(result) -> str:
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("Error:"), result.output
    return lines[0]


# A file another process is writing --------------------------------------------------------------

def test_a_file_held_for_writing_is_reported_as_being_written(tmp_path):
    path = io.write(small_spec(), tmp_path / "d.h5").path
    with process_with(HOLD, path, "r+"):
        for read in (msgp.MSGPDataset, io.read_spec, io.inspect):
            with pytest.raises(io.FormatError, match="d.h5 is being written by another process .* wait until"):
                read(path)
        line = one_error_line(CliRunner().invoke(cli.main, ["info", str(path)]))
        assert "is being written by another process" in line and "damaged" not in line
        resume = subprocess.run(GENERATE + ["-o", str(path), "--resume"], capture_output=True, text=True, env=ENV)
        assert resume.returncode == 2
        assert resume.stderr.strip().splitlines() == [f"Error: cannot resume: {path} is being written by another "
                                                      "process (HDF5 locks a file while it is written); wait until "
                                                      "that process is done, e.g. until msgp generate has finished "
                                                      "the file, and try again"]
    assert msgp.MSGPDataset(path).labels.shape == (40,)


def test_a_file_msgp_is_generating_is_reported_as_being_written(tmp_path):
    path = tmp_path / "d.h5"
    with process_with(WRITE, path) as writer:  # stopped after its first batch of 10
        with pytest.raises(io.FormatError, match="being written by another process"):
            msgp.MSGPDataset(path)
        assert "being written by another process" in one_error_line(CliRunner().invoke(cli.main, ["info", str(path)]))
    assert writer.returncode == 0
    assert io.inspect(path)["ok"] and len(msgp.MSGPDataset(path)) == 40


# Resume while others read --------------------------------------------------------------------------

def test_resuming_a_complete_file_that_a_reader_holds_changes_nothing(tmp_path):
    path = tmp_path / "d.h5"
    subprocess.run(GENERATE + ["-o", str(path)], check=True, capture_output=True, env=ENV)
    before = path.read_bytes(), path.stat().st_mtime_ns
    with process_with(HOLD, path, "r"):
        resume = subprocess.run(GENERATE + ["-o", str(path), "--resume"], capture_output=True, text=True, env=ENV)
        assert resume.returncode == 0, resume.stderr
        assert resume.stdout.startswith(f"wrote {path}: 40 samples")
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before


def test_resuming_an_incomplete_file_that_a_reader_holds_is_one_line(tmp_path):
    path = tmp_path / "d.h5"
    with process_with(WRITE, path):
        pass  # the writer is stopped after 10 samples; closing its stdin lets it finish
    with h5py.File(path, "r+") as f:  # as a kill after 10 samples leaves it
        f.attrs.modify("n_written", 10)
        f.attrs.modify("complete", False)
    with process_with(HOLD, path, "r"):
        resume = subprocess.run(GENERATE + ["-o", str(path), "--resume"], capture_output=True, text=True, env=ENV)
    assert resume.returncode == 2
    assert resume.stderr.strip().splitlines() == [f"Error: cannot write {path}: another process has it open (HDF5 "
                                                  "locks a file while it is read or written); close it there, or "
                                                  "wait until that process is done"]
    assert io.inspect(path)["n_written"] == 10
    io.write(small_spec(), path, resume=True)
    assert io.inspect(path)["ok"]


# A file written anew under a Dataset -----------------------------------------------------------------

def test_the_file_id_is_drawn_at_creation_and_kept_by_resume(tmp_path):
    path = tmp_path / "d.h5"
    io.write(small_spec(), path)
    first = io.inspect(path)["file_id"]
    assert len(first) == 32 and int(first, 16) >= 0
    with h5py.File(path, "r+") as f:
        f.attrs.modify("complete", False)
    io.write(small_spec(), path, resume=True)
    assert io.inspect(path)["file_id"] == first
    io.write(small_spec(), path, overwrite=True)
    assert io.inspect(path)["file_id"] != first
    shards = [io.write(small_spec(), tmp_path / f"part-{i}.h5", shard=(i, 2)).path for i in range(2)]
    io.merge(shards, tmp_path / "merged.h5")
    ids = {io.inspect(p)["file_id"] for p in [path, *shards, tmp_path / "merged.h5"]}
    assert len(ids) == 4
    assert f"file id       {io.inspect(path)['file_id']}" in CliRunner().invoke(cli.main, ["info", str(path)]).output


@pytest.mark.slow
@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_loader_workers_refuse_a_file_written_anew_after_the_dataset(tmp_path, method):
    path = tmp_path / "d.h5"
    subprocess.run(GENERATE + ["-o", str(path)], check=True, capture_output=True, env=ENV)
    old = msgp.MSGPDataset(path)
    old_first = old[0][0]  # the parent has the old file open before it is replaced
    subprocess.run(GENERATE + ["-o", str(path), "--seed", "1", "--overwrite"], check=True, capture_output=True,
                   env=ENV)
    loader = DataLoader(old, batch_size=8, num_workers=2, multiprocessing_context=multiprocessing.get_context(method))
    batches = []
    with pytest.raises(io.ReplacedFileError, match=f"{path} was replaced after this dataset was made .* "
                                                   "make the dataset again"):
        for batch in loader:
            batches.append(batch)
    assert batches == []
    # The parent's own handle still reads the old file, whose labels these are.
    assert torch.equal(old[0][0], old_first)
    new = msgp.MSGPDataset(path)
    assert not np.array_equal(new.labels, old.labels)
    assert sum(len(labels) for _, labels in DataLoader(new, batch_size=8, num_workers=2)) == 40


def test_a_subset_or_split_keeps_to_the_file_its_labels_came_from(tmp_path):
    path = io.write(small_spec(), tmp_path / "d.h5").path
    dataset = msgp.MSGPDataset(path)
    io.write(small_spec(seed=1), path, overwrite=True)
    train, test = msgp.split(dataset, 8, 8)
    for part in (dataset.subset([0, 1]), train, test):
        with pytest.raises(io.ReplacedFileError, match="was replaced after this dataset was made"):
            part[0]


def _without_file_id(path: Path) -> Path:
    with h5py.File(path, "r+") as f:
        del f.attrs["file_id"]
    return path


def test_files_written_before_the_file_id_are_compared_by_description_and_labels(tmp_path):
    path = _without_file_id(io.write(small_spec(), tmp_path / "d.h5").path)
    same = _without_file_id(io.write(small_spec(), tmp_path / "same.h5").path)
    other = _without_file_id(io.write(small_spec(seed=1), tmp_path / "other.h5").path)
    dataset = msgp.MSGPDataset(path, indices=[3, 5])
    expected = dataset.subset([1])[0][0]
    os.replace(same, path)  # the same samples: nothing to tell them apart by, nor need to
    assert np.array_equal(dataset.subset([1])[0][0], expected)
    os.replace(other, path)
    with pytest.raises(io.ReplacedFileError, match="was replaced"):
        dataset.subset([1])[0]
    io.write(small_spec(), path, overwrite=True)  # a file with an id, where there was none
    with pytest.raises(io.ReplacedFileError, match="was replaced"):
        dataset.subset([1])[0]
