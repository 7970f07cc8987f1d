"""Every file msgp writes has the permissions the user's umask gives any new file (0644 under umask
022), so that collaborators can read the results in a shared output directory. Atomic writes once
went through tempfile.mkstemp, whose 0600 survived the rename."""
from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

import cli
from msgp.atomic import atomic_write

SPEC_OPTIONS = ["--lengths", "1.5,2;6,9", "--amplitudes", "1,2", "--size", "32", "--n", "16", "--workers", "1"]


@contextlib.contextmanager
def umask(mask: int):
    """The process's umask set to ``mask`` inside the block, and the one before restored after it,
    whatever happens, so that no other test sees it."""
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)


def modes(folder: Path) -> dict[str, int]:
    """The mode (type and permission bits) of every file and folder under ``folder``, by relative path."""
    return {str(p.relative_to(folder)): p.stat().st_mode for p in sorted(folder.rglob("*"))}


def invoke(*args: str) -> None:
    result = CliRunner().invoke(cli.main, list(args))
    assert result.exit_code == 0, result.output


def assert_readable_by_all(found: dict[str, int], expected: set[str]) -> None:
    """``expected`` are among the files found (so that a command that wrote nothing fails), and
    every file is 0644 and every folder 0755, as umask 022 gives them."""
    assert expected <= found.keys(), sorted(expected - found.keys())
    wrong = {name: oct(stat.S_IMODE(mode)) for name, mode in found.items()
             if stat.S_IMODE(mode) != (0o755 if stat.S_ISDIR(mode) else 0o644)}
    assert not wrong, wrong
    assert not [name for name in found if name.endswith(".tmp")]


def test_generate_merge_preview_and_train_write_files_of_the_umask(tmp_path):
    with umask(0o022):
        for index in (0, 1):
            invoke("generate", *SPEC_OPTIONS, "--shard", f"{index}/2", "-o", str(tmp_path / f"s{index}.h5"))
        invoke("merge", str(tmp_path / "s0.h5"), str(tmp_path / "s1.h5"), "-o", str(tmp_path / "full.h5"))
        invoke("preview", str(tmp_path / "full.h5"), "-o", str(tmp_path / "grid.png"))
        invoke("train", str(tmp_path / "full.h5"), "--epochs", "1", "--n-train", "8", "--n-test", "8",
               "--batch-size", "4", "--device", "cpu", "--out", str(tmp_path / "run"))
    run = {f"run/{name}" for name in ("config.json", "summary.json", "checkpoint.pt", "metrics.jsonl", "curves.png")}
    assert_readable_by_all(modes(tmp_path), {"s0.h5", "s1.h5", "full.h5", "grid.png", "run"} | run)


@pytest.mark.slow
def test_experiment_writes_files_of_the_umask(tmp_path):
    with umask(0o022):
        invoke("experiment", "--plan", "smoke", "--jobs", "1", "--out", str(tmp_path / "out"))
    found = modes(tmp_path / "out")
    tables = {"results.csv", "results.md", "comparisons.csv", "comparisons.md", "efficiency.png",
              "data/test.h5", "data/validation.h5"}
    run = {"runs/no-backdrop-n2-s0/" + name for name in ("config.json", "summary.json", "checkpoint.pt", "result.json")}
    assert_readable_by_all(found, tables | run)


@pytest.mark.parametrize("mask, mode", [(0o077, 0o600), (0o002, 0o664), (0o022, 0o644)])
def test_an_atomic_write_has_the_mode_of_the_umask(tmp_path, mask, mode):
    """Whatever the umask, and also when the write replaces a file of another mode."""
    path = tmp_path / "summary.json"
    path.write_text("{}")
    path.chmod(0o640)
    with umask(mask):
        atomic_write(path, "{\"epoch\": 1}")
    assert stat.S_IMODE(path.stat().st_mode) == mode and path.read_text() == "{\"epoch\": 1}"
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]
