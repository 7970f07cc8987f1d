"""msgp.atomic: a write is all or nothing, whatever happens during it."""
import os

import pytest

from msgp.atomic import atomic_open, atomic_write


def test_atomic_write_replaces_the_whole_file(tmp_path):
    path = tmp_path / "result.json"
    atomic_write(path, "old\n")
    atomic_write(path, '{"new": 1}\n')
    assert path.read_text() == '{"new": 1}\n'
    atomic_write(path, b"\x00bytes")
    assert path.read_bytes() == b"\x00bytes"
    assert sorted(os.listdir(tmp_path)) == ["result.json"]  # no temporary file left behind


def test_an_error_during_the_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "summary.json"
    atomic_write(path, "complete\n")
    with pytest.raises(RuntimeError, match="stopped"):
        with atomic_open(path) as f:
            f.write("half of a fi")
            raise RuntimeError("stopped half way")
    assert path.read_text() == "complete\n"
    assert sorted(os.listdir(tmp_path)) == ["summary.json"]


def test_nothing_appears_at_the_path_until_the_write_is_complete(tmp_path):
    path = tmp_path / "table.csv"
    with atomic_open(path, newline="") as f:
        f.write("a,b\n")
        assert not path.exists()
    assert path.read_text() == "a,b\n"


def test_append_mode_is_refused(tmp_path):
    with pytest.raises(ValueError, match="whole files"):
        with atomic_open(tmp_path / "x", "a"):
            pass
