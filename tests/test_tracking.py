"""Tracking: step records in metrics.jsonl beside the epoch records (which every reader still gets
alone), the logger protocol, TensorBoard event files and the CSV read back, both continued exactly
by a resumed run, rank 0 alone writing under DDP, and `msgp train --tensorboard`."""
from __future__ import annotations

import csv
import json
import os
import sys

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from click.testing import CliRunner

import cli
from backdrop import training

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")


def config(data, **values) -> training.TrainConfig:
    """2 epochs of 4 steps of 8 images, a step record every 3 steps: after steps 3 and 6."""
    return training.TrainConfig(**{"data": str(data), "augment": False, "n_train": 32, "n_test": 32, "epochs": 2,
                                   "batch_size": 8, "width": 4, "device": "cpu", "log_every": 3, **values})


class Recorder:
    """A logger of one's own: the protocol is three methods."""

    def __init__(self):
        self.calls = []

    def log_step(self, step, scalars):
        self.calls.append(("step", step, scalars))

    def log_epoch(self, step, scalars):
        self.calls.append(("epoch", step, scalars))

    def close(self):
        self.calls.append(("close",))


def records(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def tensorboard(log_dir) -> dict[str, list[tuple[int, float]]]:
    """Every scalar of the event files in ``log_dir``: tag -> [(step, value), ...], as TensorBoard shows them."""
    events = event_accumulator.EventAccumulator(str(log_dir))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def read_csv(path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def without_timing(rows):
    # images/s is a measurement of the machine, the one number a resumed run need not repeat.
    return {k: v for k, v in rows.items() if "images_per_s" not in k} if isinstance(rows, dict) else \
        [without_timing(r) for r in rows]


def test_step_records_sit_beside_the_epoch_records_and_reach_every_logger(data, tmp_path):
    run, recorder = tmp_path / "run", Recorder()
    settings = config(data)
    training.train(settings, run, loggers=[training.TensorBoardLogger(tmp_path / "tb"),
                                           training.CSVLogger(tmp_path / "scalars.csv"), recorder])
    written = records(run)
    assert [(r.get("kind"), r.get("step"), r["epoch"]) for r in written] == [
        ("step", 3, 1), (None, None, 1), ("step", 6, 2), (None, None, 2)]
    steps, epochs = training.read_metrics(run, kind="step"), training.read_metrics(run)
    assert steps == [written[0], written[2]] and epochs == [written[1], written[3]]
    for record in steps:
        assert sorted(record) == ["epoch", "grad_norm", "kind", "lr", "step", "train_loss"]
        assert record["lr"] == training.learning_rate(record["step"] - 1, 8, settings.lr, settings.warmup)
        assert len(record["train_loss"]) == 2 and record["grad_norm"] > 0
    with pytest.raises(ValueError, match="kind must be 'epoch' or 'step'"):
        training.read_metrics(run, kind="steps")

    # Every logger got each record as metrics.jsonl did, named by training.scalars, then one close.
    assert [c[:2] for c in recorder.calls] == [("step", 3), ("epoch", 4), ("step", 6), ("epoch", 8), ("close",)]
    assert [c[2] for c in recorder.calls[:-1]] == [training.scalars(r) for r in written]
    assert training.scalars(steps[0]) == {"epoch": 1.0, "lr": steps[0]["lr"], "grad_norm": steps[0]["grad_norm"],
                                          "train_loss/scale_0": steps[0]["train_loss"][0],
                                          "train_loss/scale_1": steps[0]["train_loss"][1]}
    last = training.scalars(epochs[-1])
    assert last["test_accuracy/joint"] == epochs[-1]["test_accuracy"]["joint"]
    assert last["test_accuracy/scale_1"] == epochs[-1]["test_accuracy"]["scales"][1]

    # The event file read back: float32 values of the records, against the optimiser step.
    scalars = tensorboard(tmp_path / "tb")
    assert scalars["step/lr"] == [(r["step"], np.float32(r["lr"])) for r in steps]
    assert scalars["step/train_loss/scale_1"] == [(r["step"], np.float32(r["train_loss"][1])) for r in steps]
    assert scalars["epoch/test_accuracy/joint"] == [(4 * r["epoch"], np.float32(r["test_accuracy"]["joint"]))
                                                    for r in epochs]
    assert len(scalars) == len(training.scalars(steps[0])) + len(last)

    # The CSV read back: every number exactly, a row per record, empty where a record has none.
    rows = read_csv(tmp_path / "scalars.csv")
    assert [(row["kind"], int(row["step"])) for row in rows] == [("step", 3), ("epoch", 4), ("step", 6), ("epoch", 8)]
    assert float(rows[2]["train_loss/scale_0"]) == steps[1]["train_loss"][0]
    assert float(rows[3]["test_loss/scale_1"]) == epochs[1]["test_loss"][1]
    assert rows[0]["test_accuracy/joint"] == "" and rows[1]["grad_norm"] == ""


def test_a_resumed_run_repeats_the_records_and_continues_the_loggers(data, tmp_path):
    """A second Ctrl-C (KeyboardInterrupt) after step 7 leaves step 6's record past the checkpoint of
    epoch 1 in metrics.jsonl, the event file and the CSV; the resumed run drops it and writes it
    again, so that each holds what an uninterrupted run's holds."""
    settings = config(data, backdrop=True)
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    training.train(settings, whole, loggers=[training.TensorBoardLogger(whole / "tb"),
                                             training.CSVLogger(whole / "scalars.csv")])
    polls = []

    def second_ctrl_c():
        polls.append(1)
        if len(polls) == 7:
            raise KeyboardInterrupt
        return False

    with pytest.raises(KeyboardInterrupt):
        training.train(settings, cut, should_stop=second_ctrl_c,
                       loggers=[training.TensorBoardLogger(cut / "tb"), training.CSVLogger(cut / "scalars.csv")])
    assert training.load_checkpoint(cut / "checkpoint.pt")["epoch"] == 1
    assert [r.get("step") for r in records(cut)] == [3, None, 6]
    assert read_csv(cut / "scalars.csv")[-1]["step"] == "6"
    training.train(settings, cut, resume=True,
                   loggers=[training.TensorBoardLogger(cut / "tb"), training.CSVLogger(cut / "scalars.csv")])
    assert without_timing(records(cut)) == without_timing(records(whole))
    assert without_timing(read_csv(cut / "scalars.csv")) == without_timing(read_csv(whole / "scalars.csv"))
    assert without_timing(tensorboard(cut / "tb")) == without_timing(tensorboard(whole / "tb"))
    assert [step for step, _ in tensorboard(cut / "tb")["step/lr"]] == [3, 6]
    # log_every trains nothing: the same run with another, or none.
    assert settings.changed_from(config(data, backdrop=True, log_every=0)) == []


def test_log_every_zero_writes_no_step_records(data, tmp_path):
    recorder = Recorder()
    training.train(config(data, epochs=1, log_every=0), tmp_path, loggers=[recorder])
    assert training.read_metrics(tmp_path, kind="step") == [] and len(training.read_metrics(tmp_path)) == 1
    assert [c[0] for c in recorder.calls] == ["epoch", "close"]
    for bad in (-1, 1.5, "10"):
        with pytest.raises(training.ConfigError, match="log_every"):
            config(data, log_every=bad)


def test_the_default_writes_a_few_hundred_step_records_at_most():
    """A default run has 32 steps per epoch (512 images in batches of 16) and at most 120 epochs."""
    defaults = training.TrainConfig(data="x.h5")
    steps_per_epoch = training.DEFAULT_SIZE // defaults.batch_size
    assert training.config.MAX_EPOCHS * steps_per_epoch // defaults.log_every <= 400
    assert training.DEFAULT_EPOCHS * steps_per_epoch // defaults.log_every >= 50


def test_loggers_refuse_a_destination_they_cannot_write(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("")
    for make, path, message in [(training.TensorBoardLogger, "file", "is a file, not a directory"),
                                (training.TensorBoardLogger, "file/tb", "file is a file, not a directory"),
                                (training.CSVLogger, ".", "is a directory, not a file"),
                                (training.CSVLogger, "file/s.csv", "file is a file, not a directory")]:
        with pytest.raises(training.LoggerError, match=message):
            make(tmp_path / path)
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    with pytest.raises(training.LoggerError, match="other.csv is not a CSVLogger's file"):
        training.CSVLogger(tmp_path / "other.csv").log_step(1, {"lr": 1.0})
    assert (tmp_path / "other.csv").read_text() == "a,b\n1,2\n"
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # as if tensorboard were not installed
    with pytest.raises(training.LoggerError, match=r"needs the tensorboard package: pip install 'msgp\[tensorboard\]'"):
        training.TensorBoardLogger(tmp_path / "tb")


def _ddp_worker(rank, world, init_file, settings, root):
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    # Every rank builds its loggers, as a script under torchrun would, each with a destination of its own.
    training.train(training.TrainConfig.from_dict(settings), f"{root}/run",
                   loggers=[training.TensorBoardLogger(f"{root}/tb{rank}"), training.CSVLogger(f"{root}/s{rank}.csv")])
    torch.distributed.barrier()
    os._exit(0)  # as tests/test_train.py's workers: tearing gloo down at exit can abort


@pytest.mark.slow
def test_under_ddp_rank_0_alone_writes(data, tmp_path):
    settings = config(data, epochs=1)
    mp.spawn(_ddp_worker, args=(2, str(tmp_path / "init"), settings.to_dict(), str(tmp_path)), nprocs=2)
    assert (tmp_path / "tb0").is_dir() and (tmp_path / "s0.csv").is_file()
    assert not (tmp_path / "tb1").exists() and not (tmp_path / "s1.csv").exists()
    assert [r.get("step") for r in records(tmp_path / "run")] == [3, None]


def test_msgp_train_tensorboard_and_warnings_on_stderr(data, tmp_path, monkeypatch):
    args = ["train", str(data), "--n-train", "16", "--n-test", "16", "--batch-size", "4", "--epochs", "1",
            "--width", "4", "--device", "cpu", "--no-augment"]
    real_train = training.train

    def unlearned(*a, **k):
        summary = real_train(*a, **k)
        return {**summary, "learned": [{"learned": False, "reason": "a reason"}] * len(summary["learned"])}

    monkeypatch.setattr(training, "train", unlearned)
    result = CliRunner().invoke(cli.main, [*args, "--out", str(tmp_path / "run"), "--tensorboard", str(tmp_path / "tb")])
    assert result.exit_code == 0, result.output
    assert "warning: scale 1 has not learned: a reason" in result.stderr
    assert "warning" not in result.stdout and "wrote" in result.stdout
    assert tensorboard(tmp_path / "tb")["epoch/test_accuracy/joint"][0][0] == 4  # 16 images in steps of 4

    # Without the tensorboard package: one line, exit 2, nothing written.
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    result = CliRunner().invoke(cli.main, [*args, "--out", str(tmp_path / "none"), "--tensorboard", str(tmp_path / "tb2")])
    assert result.exit_code == 2 and result.output.strip().splitlines() == [
        "Error: TensorBoard logging needs the tensorboard package: pip install 'msgp[tensorboard]'"]
    assert not (tmp_path / "none").exists() and not (tmp_path / "tb2").exists()
