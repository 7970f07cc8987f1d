"""The command line: errors that are not bad input, library messages worded as flags, and the sizes
msgp train picks by default. Bad input, every option of every command, is test_bad_input.py's table."""
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
    return {"good": str(good), "root": root}


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


def test_library_messages_are_worded_as_the_commands_flags():
    """A parameter the command has an option for becomes its flag (`whiten=False` its off flag,
    `head_stages` its --heads); any other name stays as the library wrote it."""
    message = "`crop` is too large; pass `overwrite=True`, `whiten=False`, other `head_stages` or fewer `workers`"
    assert cli.as_flags(message, cli.train) == \
        "--crop is too large; pass `overwrite=True`, --no-whiten, other --heads or fewer `workers`"
    assert cli.as_flags(message, cli.merge) == \
        "`crop` is too large; pass --overwrite, `whiten=False`, other `head_stages` or fewer `workers`"


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
