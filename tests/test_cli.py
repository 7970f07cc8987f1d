"""The command line: every command with bad values (exit code 2, one `Error:` line, no traceback,
nothing written; every option is in test_bad_input.py), and the sizes msgp train picks by default."""
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


# Sizes that fit the classes ------------------------------------------------------------------------

@pytest.mark.parametrize("n_classes, expected", [(2, 512), (4, 512), (8, 512), (9, 513), (27, 513), (243, 486),
                                                 (1024, 1024)])
def test_default_sizes_are_the_multiple_of_the_classes_nearest_512(n_classes, expected):
    from backdrop import training

    config = training.resolve_sizes(training.TrainConfig(data="x.h5"), n_classes, 10**6)
    assert (config.n_train, config.n_test) == (expected, expected)
    assert expected % n_classes == 0 and abs(expected - 512) <= n_classes / 2 or expected == n_classes


def test_default_sizes_take_what_the_data_hold():
    from backdrop import training

    base = training.TrainConfig(data="x.h5")
    # 90 samples of 9 classes: 10 per class, half for training, half for testing.
    assert (lambda c: (c.n_train, c.n_test))(training.resolve_sizes(base, 9, 90)) == (45, 45)
    # A given size leaves the rest to the other; a test file is drawn on its own.
    given = training.TrainConfig(data="x.h5", n_test=27)
    assert training.resolve_sizes(given, 9, 90).n_train == 63
    assert training.resolve_sizes(base, 9, 90, test_available=9000).n_test == 513
    assert training.resolve_sizes(base, 9, 90, test_available=9000).n_train == 90
    explicit = training.TrainConfig(data="x.h5", n_train=18, n_test=9)
    assert training.resolve_sizes(explicit, 9, 90) is explicit
    with pytest.raises(training.ConfigError, match="9 samples are too few for a class-balanced n_train over 9 classes"):
        training.resolve_sizes(base, 9, 9)


def test_msgp_train_defaults_fit_nine_classes_and_say_the_sizes_first(tmp_path):
    """The default sizes train a 9-class dataset (512 is no multiple of 9); the first line of output
    says the sizes used, and config.json stores them as numbers."""
    import json

    data = tmp_path / "nine.h5"
    io.write(DatasetSpec(n=90, length_scales=[[1.5, 2.0, 2.7], [4.0, 5.5, 7.5]], amplitudes=[1.0, 1.0], size=16),
             data, workers=1)
    out = tmp_path / "run"
    result = CliRunner().invoke(cli.main, ["train", str(data), "--epochs", "1", "--width", "4", "--device", "cpu",
                                           "--eval-every", "0", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0].startswith(f"{out}: 45 train / 45 test images (9 classes), augment on cpu x1")
    stored = json.loads((out / "config.json").read_text())["train"]
    assert (stored["n_train"], stored["n_test"]) == (45, 45)


def test_a_mask_option_turns_backdrop_on(files, tmp_path):
    """--mask-prob or --mask-block alone trains with backdrop (they set nothing else); with
    --no-backdrop they contradict it (the table in test_bad_input.py)."""
    from backdrop import training

    for option, value, field in (("--mask-prob", "0.5", 0.5), ("--mask-block", "2", 2)):
        out = tmp_path / option.strip("-")
        result = CliRunner().invoke(cli.main, ["train", files["good"], option, value, "--n-train", "8", "--n-test", "8",
                                               "--batch-size", "4", "--epochs", "1", "--width", "4", "--device", "cpu",
                                               "--out", str(out)])
        assert result.exit_code == 0, result.output
        stored = training.read_config(out)
        assert stored.backdrop and getattr(stored, option[2:].replace("-", "_")) == field
        assert "backdrop" in result.output.splitlines()[0]
