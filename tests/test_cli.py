"""Every command with bad values: exit code 2, one `Error:` line, no traceback, nothing written."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

import cli
from msgp import io
from msgp.spec import DatasetSpec


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    good = root / "good.h5"
    io.write(DatasetSpec(n=16, length_scales=[[1.5, 4.0]], amplitudes=[1.0], size=16), good)
    damaged = root / "damaged.h5"
    damaged.write_bytes(b"not an hdf5 file")
    (root / "run").mkdir()
    (root / "run" / "config.json").write_text("{not json")
    (root / "no_n.json").write_text('{"length_scales": [[1.5, 4.0]], "amplitudes": [1.0], "size": 16}')
    (root / "typo.json").write_text('{"n": 8, "length_scales": [[1.5, 4.0]], "amplitudes": [1.0], "sise": 16}')
    return {"good": str(good), "damaged": str(damaged), "run": str(root / "run"), "missing": str(root / "missing.h5"),
            "nodir": str(root / "no" / "such" / "dir" / "out.h5"), "root": root}


CASES = [
    # generate: zero, negative, NaN, unwritable
    ("generate --size 0 -o {root}/a.h5", "size must be an integer of at least 4"),
    ("generate --size -8 -o {root}/a.h5", "size must be an integer of at least 4"),
    ("generate --n 0 -o {root}/a.h5", "n must be a positive integer"),
    ("generate --n -5 -o {root}/a.h5", "n must be a positive integer"),
    ("generate --noise nan -o {root}/a.h5", "noise"),
    ("generate --scales 0 -o {root}/a.h5", "--scales must be between"),
    ("generate --workers 0 -o {root}/a.h5", "--workers must be at least 1"),
    ("generate --batch-size 0 -o {root}/a.h5", "--batch-size must be at least 1"),
    ("generate --amplitudes nan,1,1 -o {root}/a.h5", "amplitude"),
    ("generate --lengths 0,1 --n 8 -o {root}/a.h5", "length"),
    ("generate --shard 3/2 -o {root}/a.h5", "--shard"),
    ("generate --n 8 --size 16 --lengths 2,3 -o {good}", "already exists"),
    ("generate --n 8 --size 16 --lengths 2,3 -o {damaged}/x.h5", ""),
    # info, preview, oracle, merge: missing and damaged files, bad values, unwritable outputs
    ("info {missing}", "does not exist"),
    ("info {damaged}", "not an HDF5 file"),
    ("preview {missing} -o {root}/p.png", "does not exist"),
    ("preview {damaged} -o {root}/p.png", "not an HDF5 file"),
    ("preview {good} -o {nodir}", "does not exist"),
    ("preview {good} --per-class 0 -o {root}/p.png", "--per-class must be at least 1"),
    ("oracle {missing}", "does not exist"),
    ("oracle {damaged}", "not an HDF5 file"),
    ("oracle {good} --crop 0", "crop"),
    ("oracle {good} --crop -4", "crop"),
    ("oracle {good} --indices 5", "--indices"),
    ("merge {damaged} -o {root}/m.h5", "not an HDF5 file"),
    ("merge {missing} -o {root}/m.h5", "does not exist"),
    # train, evaluate, experiment
    ("train {missing} --out {root}/t1", "does not exist"),
    ("train {damaged} --out {root}/t2", "not an HDF5 file"),
    ("train {good} --epochs 0 --out {root}/t3", "epochs must be a positive integer"),
    ("train {good} --lr nan --out {root}/t4", "lr must be a positive number"),
    ("train {good} --lr -1 --out {root}/t5", "lr must be a positive number"),
    ("train {good} --mask-prob 1.5 --out {root}/t6", "mask_prob"),
    ("train {good} --mask-block 0 --out {root}/t7", "mask_block"),
    ("train {good} --warmup 1 --out {root}/t8", "warmup"),
    ("train {good} --clip-grad 0 --out {root}/t9", "clip_grad"),
    ("train {good} --eval-every -1 --out {root}/t10", "eval_every"),
    ("train {good} --weight-decay nan --out {root}/t11", "weight_decay"),
    ("train {good} --n-train 0 --out {root}/t12", "n_train"),
    ("train {good} --batch-size 1 --n-train 8 --n-test 8 --out {root}/t13", "batch_size must be at least 2"),
    ("train {good} --n-train 7 --n-test 2 --batch-size 2 --out {root}/t14", "cannot be balanced over 2 classes"),
    ("train {good} --n-train 16 --n-test 16 --batch-size 2 --out {root}/t15", "is more than the 16 samples"),
    ("train {root}/no_n.json --out {root}/t16", "lacks n, required dataset parameter"),
    ("train {root}/typo.json --out {root}/t17", "unknown parameters sise; known: n, length_scales"),
    ("generate --preset {root}/typo.json -o {root}/a.h5", "unknown parameters sise"),
    ("evaluate {missing}", "not a training run"),
    ("evaluate {run}", "damaged"),
    ("experiment --jobs 0 --out {root}/e", "jobs"),
]


@pytest.mark.parametrize("command, message", CASES, ids=[c for c, _ in CASES])
def test_bad_input_gets_one_error_line_and_exit_code_2(files, command, message):
    args = command.format(**files).split()
    before = sorted(p.name for p in files["root"].rglob("*"))
    result = CliRunner().invoke(cli.main, args)
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)  # not an uncaught error
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and message in errors[0], result.output
    assert sorted(p.name for p in files["root"].rglob("*")) == before  # nothing written


def test_an_internal_error_is_not_reported_as_bad_input(files, monkeypatch):
    """Only the errors that mean bad input become `Error:` lines with exit code 2."""
    from backdrop.models import MultiScaleNet

    def broken(self, x):
        raise ValueError("an internal error")

    monkeypatch.setattr(MultiScaleNet, "forward", broken)
    out = files["root"] / "internal"
    result = CliRunner().invoke(cli.main, ["train", files["good"], "--n-train", "8", "--n-test", "8",
                                           "--batch-size", "4", "--epochs", "1", "--out", str(out)])
    assert result.exit_code == 1 and isinstance(result.exception, ValueError)
    assert "Error:" not in result.output
