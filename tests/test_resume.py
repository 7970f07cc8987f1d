"""What a run directory promises: resume continues the same run on the same samples (or refuses with
one line), on another device too, a run stopped before its first checkpoint resumes afresh, no
checkpoint holds non-finite weights, every file is written whole, and `msgp evaluate` scores a
checkpoint exactly as the trainer does."""
from __future__ import annotations

import json
import os

import pytest
import torch
from click.testing import CliRunner

import cli
from backdrop import training
from backdrop.models import MultiScaleNet
from msgp import io
from tiny import tiny_spec

EPS = torch.finfo(torch.float32).eps


def config(data, **values) -> training.TrainConfig:
    """4 steps of 8 images per epoch."""
    return training.TrainConfig(**{"data": str(data), "backdrop": True, "augment": False, "n_train": 32,
                                   "n_test": 32, "epochs": 2, "batch_size": 8, "device": "cpu", **values})


def stop_after(steps: int):
    """A ``should_stop`` that asks to stop after ``steps`` steps."""
    count = []
    return lambda: count.append(1) or len(count) == steps


def weights(run_dir):
    return training.load_checkpoint(run_dir / "checkpoint.pt")["state"]


def assert_same_weights(a, b):
    a, b = weights(a), weights(b)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def one_line_error(result) -> str:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    return result.output


# Resume: the same run, on the same samples -------------------------------------------------------

def test_resume_refuses_changed_data_and_reuses_the_stored_indices(tmp_path, monkeypatch):
    path, run = tmp_path / "tiny.h5", tmp_path / "run"
    io.write(tiny_spec(), path)
    settings = config(path)
    with pytest.raises(training.Interrupted):
        training.train(settings, run, should_stop=stop_after(2))
    stored = json.loads((run / "config.json").read_text())
    # The same path regenerated with more samples: the split would now draw other images, and a
    # test index could name an image the run trained on.
    io.write(tiny_spec(n=640), path, overwrite=True)
    with pytest.raises(training.IncompatibleDataError, match=r"training data changed.*n 640 \(trained on 320\)") as err:
        training.train(settings, run, resume=True)
    assert "\n" not in str(err.value)
    assert "n 640 (trained on 320)" in one_line_error(
        CliRunner().invoke(cli.main, ["train", "--out", str(run), "--resume"]))
    io.write(tiny_spec(seed=7), path, overwrite=True)
    with pytest.raises(training.IncompatibleDataError, match=r"seed 7 \(trained on 0\)"):
        training.train(settings, run, resume=True)
    assert training.load_checkpoint(run / "checkpoint.pt")["step"] == 2  # nothing was touched

    # The data as they were: the run goes on with the indices it stored, never drawing a split again.
    io.write(tiny_spec(), path, overwrite=True)

    def no_split(*args, **kwargs):
        raise AssertionError("a resumed run draws its train and test samples again")

    monkeypatch.setattr(training.data, "split", no_split)
    training.train(settings, run, resume=True)
    again = json.loads((run / "config.json").read_text())
    assert (again["train_indices"], again["test_indices"]) == (stored["train_indices"], stored["test_indices"])
    ckpt = training.load_checkpoint(run / "checkpoint.pt")
    assert ckpt["train_indices"] == stored["train_indices"] and ckpt["test_indices"] == stored["test_indices"]
    assert ckpt["data"] == {"train": tiny_spec().to_dict(), "test": tiny_spec().to_dict()}


def test_resume_refuses_epochs_already_done(data, tmp_path):
    run = tmp_path / "cut"
    with pytest.raises(training.Interrupted):  # at epoch 3 of 4, step 2, no test scores before the last
        training.train(config(data, epochs=4, eval_every=0), run, should_stop=stop_after(10))
    before = (run / "checkpoint.pt").read_bytes(), (run / "metrics.jsonl").read_text()
    for epochs in (2, 1):
        with pytest.raises(training.CheckpointError, match=f"has done 2 epochs, so `epochs={epochs}` leaves "
                                                           "nothing to train; resume it with `epochs` above 2"):
            training.train(config(data, epochs=epochs, eval_every=0), run, resume=True)
    assert ((run / "checkpoint.pt").read_bytes(), (run / "metrics.jsonl").read_text()) == before
    assert not (run / "summary.json").exists()

    finished = tmp_path / "finished"
    summary = training.train(config(data, epochs=2), finished)
    assert "has done 2 epochs" in one_line_error(CliRunner().invoke(
        cli.main, ["train", "--out", str(finished), "--resume", "--epochs", "1"]))
    # With the epochs it was trained for, a finished run only writes what a kill after its last
    # checkpoint would have left unwritten.
    (finished / "summary.json").unlink()
    assert training.train(config(data, epochs=2), finished, resume=True) == summary


def test_resume_and_the_experiment_share_one_definition_of_the_same_run(data, tmp_path):
    """TrainConfig.changed_from: without backdrop the mask settings train nothing, so a resumed run
    may name others; every other setting but the epochs and the device must stay."""
    plain = config(data, backdrop=False)
    training.train(plain, tmp_path / "whole")
    with pytest.raises(training.Interrupted):
        training.train(plain, tmp_path / "cut", should_stop=stop_after(3))
    with pytest.raises(training.CheckpointError, match=r"other settings \(lr\); only `epochs` and `device` may change"):
        training.train(config(data, backdrop=False, lr=1e-2), tmp_path / "cut", resume=True)
    training.train(config(data, backdrop=False, mask_prob=0.5, mask_block=2), tmp_path / "cut", resume=True)
    assert_same_weights(tmp_path / "whole", tmp_path / "cut")
    assert training.RESUMABLE == ("epochs", "device")
    # The experiment's comparison keeps its default: where the data are read does not count.
    assert plain.changed_from(config("elsewhere.h5", backdrop=False, device="auto")) == []


def test_a_run_stopped_before_its_first_checkpoint_resumes_afresh(data, tmp_path):
    settings = config(data)
    training.train(settings, tmp_path / "whole")

    def killed(event, info):
        if event == "step":
            raise KeyboardInterrupt  # a kill during epoch 1: no checkpoint yet

    with pytest.raises(KeyboardInterrupt):
        training.train(settings, tmp_path / "cut", progress=killed)
    assert sorted(os.listdir(tmp_path / "cut")) == ["config.json", "metrics.jsonl"]
    assert "already holds a run; pass --resume" in one_line_error(CliRunner().invoke(
        cli.main, ["train", str(data), "--out", str(tmp_path / "cut")]))
    with pytest.raises(training.CheckpointError, match=r"other settings \(lr\)"):
        training.train(config(data, lr=1e-2), tmp_path / "cut", resume=True)
    result = CliRunner().invoke(cli.main, ["train", "--out", str(tmp_path / "cut"), "--resume"])
    assert result.exit_code == 0, result.output
    assert_same_weights(tmp_path / "whole", tmp_path / "cut")
    strip = [{k: v for k, v in r.items() if k != "images_per_s"} for r in training.read_metrics(tmp_path / "whole")]
    assert [{k: v for k, v in r.items() if k != "images_per_s"} for r in training.read_metrics(tmp_path / "cut")] == strip
    with pytest.raises(training.CheckpointError, match="no checkpoint at"):  # not a run at all
        training.train(settings, tmp_path / "empty", resume=True)


@pytest.mark.slow
def test_resume_continues_a_run_with_its_saved_settings(data, tmp_path):
    """training.resume(RUN) is `msgp train --out RUN --resume`: the saved settings, with only
    `epochs` and `device` free to change, and the run is the one an uninterrupted run is."""
    training.train(config(data), tmp_path / "whole")
    with pytest.raises(training.Interrupted):
        training.train(config(data), tmp_path / "cut", should_stop=stop_after(6))  # epoch 2, step 2
    with pytest.raises(training.CheckpointError, match=r"other settings \(lr\)"):
        training.resume(tmp_path / "cut", lr=1e-2)
    assert training.resume(tmp_path / "cut", device="cpu") == json.loads((tmp_path / "cut" / "summary.json").read_text())
    assert_same_weights(tmp_path / "whole", tmp_path / "cut")
    training.resume(tmp_path / "cut", epochs=3)
    assert [r["epoch"] for r in training.read_metrics(tmp_path / "cut")] == [1, 2, 3]
    with pytest.raises(training.CheckpointError, match="not a training run"):
        training.resume(tmp_path / "nothing")


# Resume on another device ------------------------------------------------------------------------

class _DeviceGenerator(torch.Generator):
    """Draws as a CPU generator, but its state is 16 bytes (a Philox seed and offset), as a CUDA
    generator's is, and only such a state loads into it."""

    def get_state(self) -> torch.Tensor:
        return torch.zeros(16, dtype=torch.uint8)

    def set_state(self, state: torch.Tensor) -> None:
        if state.numel() != 16:
            raise RuntimeError(f"RNG state is wrong size: {state.numel()} bytes, a device generator's is 16")


def test_resume_on_another_device_repeats_the_run(data, tmp_path, monkeypatch):
    """The run starts with the generators it makes for its device standing for a GPU's, and is
    resumed on CPU: the checkpoint must hold nothing that only that device could load."""
    settings = config(data, crop=16, augment=True)  # every random stream: shuffle, crops, symmetries, masks
    training.train(settings, tmp_path / "whole")
    original = training.loop._generator

    def on_device(seed, *device):
        if not device:
            return original(seed)
        g = _DeviceGenerator()
        g.manual_seed(seed)
        return g

    monkeypatch.setattr(training.loop, "_generator", on_device)
    with pytest.raises(training.Interrupted):
        training.train(settings, tmp_path / "cut", should_stop=stop_after(6))
    monkeypatch.setattr(training.loop, "_generator", original)
    ckpt = training.load_checkpoint(tmp_path / "cut" / "checkpoint.pt")
    for name in ("crop", "augment"):
        torch.Generator().set_state(ckpt["rng"][name])  # CPU generator states, loadable anywhere
    training.train(settings, tmp_path / "cut", resume=True)
    assert_same_weights(tmp_path / "whole", tmp_path / "cut")


# Non-finite numbers ------------------------------------------------------------------------------

class _InfiniteGradient(torch.autograd.Function):
    """The identity, whose backward puts +inf in the first entry of the gradient."""

    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        grad = grad.contiguous().clone()
        grad.view(-1)[0] = float("inf")
        return grad


def test_an_infinite_gradient_with_a_finite_loss_keeps_the_last_good_checkpoint(data, tmp_path, monkeypatch):
    calls = []
    original = MultiScaleNet.scale_losses

    def poisoned(self, logits, choices):
        calls.append(1)
        return original(self, _InfiniteGradient.apply(logits) if len(calls) == 8 else logits, choices)

    monkeypatch.setattr(MultiScaleNet, "scale_losses", poisoned)  # the last step of epoch 2
    with pytest.raises(training.TrainingError, match=r"gradient norm became (inf|nan) at epoch 2, step 4; "
                                                     r"training stopped and .* keeps the last good epoch \(1\)") as err:
        training.train(config(data, epochs=3), tmp_path)
    assert "\n" not in str(err.value)
    ckpt = training.load_checkpoint(tmp_path / "checkpoint.pt")
    assert ckpt["epoch"] == 1 and all(torch.isfinite(t).all() for t in ckpt["state"].values() if t.is_floating_point())
    assert len(training.read_metrics(tmp_path)) == 1


def test_non_finite_weights_are_never_checkpointed(data, tmp_path, monkeypatch):
    calls = []
    original = torch.optim.AdamW.step

    def step(self, *args, **kwargs):
        calls.append(1)
        out = original(self, *args, **kwargs)
        if len(calls) == 8:  # the last step of epoch 2
            with torch.no_grad():
                self.param_groups[0]["params"][0].view(-1)[0] = float("nan")
        return out

    monkeypatch.setattr(torch.optim.AdamW, "step", step)
    with pytest.raises(training.TrainingError, match=r"stem.0.weight became non-finite by epoch 2, step 4; "
                                                     r"training stopped and .* keeps the last good epoch \(1\)"):
        training.train(config(data, epochs=3), tmp_path)
    assert training.load_checkpoint(tmp_path / "checkpoint.pt")["epoch"] == 1
    assert len(training.read_metrics(tmp_path)) == 1


# Files -------------------------------------------------------------------------------------------

def test_every_file_of_a_run_is_written_whole(data, tmp_path, monkeypatch):
    """Each file arrives by a rename of a complete temporary file (msgp.atomic), so a kill leaves
    the old file or the new one; metrics.jsonl is rewritten whole at every epoch."""
    replaced = []
    original = os.replace
    monkeypatch.setattr(os, "replace", lambda src, dst: replaced.append(os.path.basename(dst)) or original(src, dst))
    training.train(config(data, epochs=2), tmp_path)
    written = sorted(os.listdir(tmp_path))
    assert written == ["checkpoint.pt", "config.json", "curves.png", "metrics.jsonl", "summary.json"]
    assert set(replaced) == set(written)
    assert replaced.count("metrics.jsonl") == 3  # emptied at the start, then once per epoch


# Calibration and evaluation ----------------------------------------------------------------------

@pytest.mark.parametrize("features", ["log", "linear"])
def test_calibrated_logits_of_the_calibration_images_are_their_training_logits(features):
    """A training step standardises with the batch's mean and biased variance; calibrating on the
    same images must give them the same logits in eval mode."""
    torch.manual_seed(0)
    model = MultiScaleNet(2, 2, (1, 2), features=features)
    # Amplitudes spread over a factor of e^2, so that the standardised features are O(1) without
    # cancellation: their float32 error is a few eps.
    images = torch.randn(8, 1, 32, 32) * torch.randn(8, 1, 1, 1).exp()
    with torch.no_grad():
        in_training = model(images)
    model.calibrate([images[:3], images[3:]])
    model.eval()
    with torch.no_grad():
        calibrated = model(images)
    # A logit sums at most 64 standardised features, each within ~8 eps (8 images) of its value.
    scale = in_training.abs().max().item()
    torch.testing.assert_close(calibrated, in_training, rtol=0, atol=64 * 8 * EPS * scale)


def test_evaluate_scores_a_checkpoint_as_the_trainer_does(data, tmp_path):
    """An interrupted run, its test set not scored (eval_every 0), against the same weights scored by
    the trainer: evaluate must calibrate as the trainer does, not use the running averages."""
    scored = tmp_path / "scored"
    training.train(config(data, n_test=64, eval_every=1, backdrop=False), scored)
    cut = tmp_path / "cut"
    with pytest.raises(training.Interrupted):  # after the last step of epoch 1: the same weights
        training.train(config(data, n_test=64, eval_every=0, backdrop=False), cut, should_stop=stop_after(4))
    trainer = training.read_metrics(scored)[0]["test_accuracy"]
    result = training.evaluate(cut, device="cpu")
    assert result["epoch"] == 0 and result["n"] == 64
    assert result["network"]["joint"]["accuracy"] == trainer["joint"]
    assert [s["accuracy"] for s in result["network"]["scales"]] == trainer["scales"]
    final = json.loads((scored / "summary.json").read_text())["test_accuracy"]
    assert training.evaluate(scored, device="cpu")["network"]["joint"]["accuracy"] == final["joint"]
