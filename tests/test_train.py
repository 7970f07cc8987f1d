"""The multi-scale network and its trainer: head placement, backdrop's effect on gradients, learning,
exact resume, two-process DDP against one process, robustness, the CLI and bad input."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from click.testing import CliRunner

import cli
from backdrop import Backdrop, training
from backdrop.models import BatchStandardize, MultiScaleNet, place_heads, receptive_field
from msgp import io
from msgp.spec import DatasetSpec
from tiny import LENGTHS, tiny_spec

ROOT = Path(__file__).resolve().parent.parent

def config(data, **values) -> training.TrainConfig:
    # Backdrop on and no symmetries, the settings these tests were written for (not the defaults).
    return training.TrainConfig(**{"data": data, "backdrop": True, "augment": False, "n_train": 64, "n_test": 64,
                                   "epochs": 2, "batch_size": 16,
                                   "device": "cpu", **values})


def final_weights(run_dir):
    return training.load_checkpoint(run_dir / "checkpoint.pt")["state"]


# The network -------------------------------------------------------------------------------------

def test_receptive_fields_and_head_placement():
    # rf = 1 + sum (k - 1) * jump over stem conv (3, 1) then per stage (3, 2), (3, 1).
    assert [receptive_field(k) for k in range(5)] == [3, 9, 21, 45, 93]
    # The default dataset: targets 3 x (1.22, 8.66, 20.9) px -> receptive fields 9, 21, 45.
    assert place_heads(DatasetSpec.default(3).length_scales, 128) == (1, 2, 3)
    assert place_heads(LENGTHS, 32) == (1, 2)
    assert place_heads([[40.0, 60.0]], 16) == (4,)  # capped where the feature map reaches one pixel
    model = MultiScaleNet.from_spec(tiny_spec(), head_stages=(2, 3))
    assert model.head_stages == (2, 3) and len(model.stages) == 3
    with pytest.raises(ValueError, match="rf_factor"):
        place_heads(LENGTHS, 32, rf_factor=0)
    with pytest.raises(ValueError, match=r"head_stages.*\(0, 1\)"):
        MultiScaleNet(2, 2, (0, 1))
    with pytest.raises(ValueError, match="3 mask probabilities for 2 heads"):
        MultiScaleNet(2, 2, (1, 2), mask_prob=(0.1, 0.2, 0.3))


@pytest.mark.parametrize("ndim,size", [(1, 64), (2, 32), (3, 16)])
def test_any_ndim_and_input_size(ndim, size):
    model = MultiScaleNet(ndim, 3, (1, 2), mask_prob=0.5)
    for side in (size, size // 2):  # whole images and crops
        assert model(torch.randn(2, 1, *[side] * ndim)).shape == (2, 2, 3)
    assert "head_stages=(1, 2)" in repr(model) and "mask_prob=0.5,0.5" in repr(model)


def test_joint_log_probs_sum_the_scales():
    model = MultiScaleNet(2, 2, (1, 2))
    logits = torch.randn(5, 2, 2)
    joint = model.joint_log_probs(logits)
    logp = torch.log_softmax(logits, -1)
    assert torch.allclose(joint.exp().sum(1), torch.ones(5))
    label = 1 * 1 + 0 * 2  # choice 1 at scale 0, choice 0 at scale 1
    assert torch.allclose(joint[:, label], logp[:, 0, 1] + logp[:, 1, 0])


def test_crop_trained_networks_score_whole_images_by_their_tiles():
    """Each whole image counts as the mean of the per-scale log-probabilities of its 4 tiles."""
    torch.manual_seed(0)
    model = MultiScaleNet(2, 2, (1, 2))
    images = torch.randn(3, 1, 32, 32)
    tiled = training.evaluation._predict(model, images, torch.device("cpu"), batch_size=2, crop=16)
    model.eval()
    with torch.no_grad():
        tiles = [images[:, :, r:r + 16, c:c + 16] for r in (0, 16) for c in (0, 16)]
        expected = torch.stack([torch.log_softmax(model(t), -1) for t in tiles]).mean(0)
    assert torch.allclose(tiled, expected, atol=1e-6)
    whole = training.evaluation._predict(model, images, torch.device("cpu"), batch_size=2)
    assert not torch.allclose(tiled.log_softmax(-1), whole.log_softmax(-1), atol=1e-3)


def test_backdrop_changes_weight_gradients_not_outputs():
    with torch.random.fork_rng():
        torch.manual_seed(0)
        plain = MultiScaleNet(2, 2, (1, 2))
    masked = MultiScaleNet(2, 2, (1, 2), mask_prob=0.75, generators=[torch.Generator().manual_seed(s) for s in (1, 2)])
    masked.load_state_dict(plain.state_dict())
    assert not any(isinstance(m, Backdrop) for m in plain.modules())  # absent, not p = 0
    assert sum(isinstance(m, Backdrop) for m in masked.modules()) == 2
    x, y = torch.randn(4, 1, 32, 32), torch.randint(0, 2, (4, 2))
    grads = []
    for model in (plain, masked):
        logits = model(x)
        model.scale_losses(logits, y).sum().backward()
        grads.append({name: p.grad for name, p in model.named_parameters()})
    assert torch.equal(plain(x), masked(x))
    assert not torch.allclose(grads[0]["stem.0.weight"], grads[1]["stem.0.weight"])
    # The mask sits in front of the head, so the head's own weights get the full gradient.
    assert torch.allclose(grads[0]["heads.0.3.weight"], grads[1]["heads.0.3.weight"])
    plain.eval(), masked.eval()
    assert torch.equal(plain(x), masked(x))


def test_series_gradients_reach_each_stage_only_through_the_masks_in_front_of_it():
    """In the series topology the gradient at stage k's output is its mask times the backward pass
    of the deeper stages, each masked in turn: computed here by hand, stage by stage."""
    torch.manual_seed(0)
    model = MultiScaleNet(2, 2, (1, 2), mask_prob=(0.5, 0.75), topology="series",
                          generators=[torch.Generator().manual_seed(s) for s in (1, 2)])
    x, y = torch.randn(4, 1, 32, 32), torch.randint(0, 2, (4, 2))
    outputs = []
    hooks = [stage.register_forward_hook(lambda m, a, out: outputs.append(out)) for stage in model.stages]
    logits = model(x)
    for h in hooks:
        h.remove()
    for out in outputs:
        out.retain_grad()
    model.scale_losses(logits, y).sum().backward()
    fine, coarse = (m.last_mask for m in model.masks)
    assert fine.shape == (4, 1, 16, 16) and coarse.shape == (4, 1, 8, 8)
    assert (fine == 0).any() and (coarse == 0).any()

    h1 = outputs[0].detach().requires_grad_()
    h2 = model.stages[1](h1)
    h2_leaf = h2.detach().requires_grad_()
    loss = model.scale_losses(model.classifier(h2_leaf).view(4, 2, 2), y).sum()
    g2, = torch.autograd.grad(loss, h2_leaf)
    g1, = torch.autograd.grad(h2, h1, g2 * coarse)
    torch.testing.assert_close(outputs[1].grad, g2 * coarse, rtol=1e-6, atol=0)
    torch.testing.assert_close(outputs[0].grad, g1 * fine, rtol=1e-6, atol=0)
    assert torch.all(outputs[0].grad[(fine == 0).expand_as(outputs[0].grad)] == 0)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), model.classifier(model.stages[1](model.stages[0](model.stem(x)))).view(4, 2, 2))


def test_series_topology_checks_and_checkpoint_config():
    with pytest.raises(ValueError, match="increasing `head_stages`"):
        MultiScaleNet(2, 2, (2, 2), mask_prob=0.5, topology="series")
    with pytest.raises(ValueError, match="topology"):
        MultiScaleNet(2, 2, (1, 2), topology="ring")
    with pytest.raises(ValueError, match="mask_block is only used with backdrop"):
        MultiScaleNet(2, 2, (1, 2), mask_block=2)
    model = MultiScaleNet(2, 2, (1, 3), mask_prob=(0.3, 0.95), topology="series", mask_block=(1, 2))
    assert model.masks[1].block == 2 and model.masks[0].block is None
    again = MultiScaleNet(**model.config())
    again.load_state_dict(model.state_dict())
    assert again.config() == model.config() and "topology=series" in repr(again)


def test_calibrate_sets_the_exact_statistics_of_the_logits():
    torch.manual_seed(0)
    model = MultiScaleNet(2, 2, (1, 2))
    images = torch.randn(10, 1, 32, 32)
    model.calibrate([images[:4], images[4:]])  # in two batches
    assert model.training  # left in the mode it was in
    model.eval()
    for head, k in zip(model.heads, model.head_stages):
        features = model.stem(images)
        for stage in model.stages[:k]:
            features = stage(features)
        at = next(i for i, m in enumerate(head) if isinstance(m, BatchStandardize))
        raw = head[:at](features).double()
        standardize = head[at]
        # A mean (variance) near zero of large features is known to one float32 step of the
        # largest feature (its square) at best; elsewhere the stored float32 rounds it (rtol).
        resolution = torch.finfo(torch.float32).eps * raw.abs().max().item()
        torch.testing.assert_close(standardize.running_mean.double(), raw.mean(0), rtol=1e-5, atol=resolution)
        torch.testing.assert_close(standardize.running_var.double(), raw.var(0, unbiased=False), rtol=1e-5,
                                   atol=resolution * raw.abs().max().item())


def test_learning_rate_warms_up_then_decays_on_a_cosine():
    lr = [training.learning_rate(step, 100, 2e-3, 0.1) for step in range(100)]
    assert lr[0] == pytest.approx(2e-4) and lr[9] == pytest.approx(2e-3)  # 10 warm-up steps
    assert all(a < b for a, b in zip(lr[:10], lr[1:10]))
    assert all(a > b for a, b in zip(lr[10:], lr[11:]))  # then strictly decreasing
    assert lr[10] == pytest.approx(2e-3) and lr[55] == pytest.approx(1e-3)  # halfway down the cosine
    assert 0 < lr[-1] < 1e-5
    assert training.learning_rate(0, 100, 2e-3, 0.0) == pytest.approx(2e-3)  # no warm-up


@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_symmetries_are_permutations_flips_and_periodic_shifts(ndim):
    x = torch.arange(2 * 6**ndim, dtype=torch.float32).view(2, 1, *[6] * ndim)
    g = torch.Generator().manual_seed(0)
    axes, flips, shifts = training.draw_symmetries(2, ndim, 6, g)
    y = training.apply_symmetries(x, axes, flips, shifts)
    for i in range(2):
        expected = x[i, 0].permute(*axes[i].tolist())
        for d in range(ndim):
            if flips[i, d]:
                expected = expected.flip(d)
        expected = torch.roll(expected, shifts[i].tolist(), tuple(range(ndim)))
        assert torch.equal(y[i, 0], expected)
        assert torch.equal(y[i].flatten().sort().values, x[i].flatten().sort().values)
    identity = (torch.arange(ndim).expand(2, ndim), torch.zeros(2, ndim, dtype=torch.bool),
                torch.zeros(2, ndim, dtype=torch.long))
    assert torch.equal(training.apply_symmetries(x, *identity), x)
    if ndim == 2:  # a transpose then a flip of the first axis is a 90-degree rotation
        rotation = (torch.tensor([[1, 0]] * 2), torch.tensor([[True, False]] * 2), torch.zeros(2, 2, dtype=torch.long))
        assert torch.equal(training.apply_symmetries(x, *rotation)[:, 0], torch.rot90(x[:, 0], 1, (1, 2)))
    # All 2**ndim * ndim! elements of the group come up.
    many = training.draw_symmetries(4000, ndim, 6, g)
    group = {(tuple(a.tolist()), tuple(f.tolist())) for a, f in zip(many[0], many[1])}
    assert len(group) == 2**ndim * math.factorial(ndim)


# Training ----------------------------------------------------------------------------------------

@pytest.mark.slow
def test_learns_far_above_chance_and_writes_the_run(data, tmp_path):
    n_test = 128
    summary = training.train(config(data, n_train=128, n_test=n_test, epochs=8, lr=3e-3), tmp_path)
    # Chance is 1/2 per scale and 1/4 joint; ask for 5 binomial standard errors of chance above it.
    for accuracy, chance in [(summary["test_accuracy"]["scales"][0], 0.5), (summary["test_accuracy"]["joint"], 0.25)]:
        assert accuracy > chance + 5 * math.sqrt(chance * (1 - chance) / n_test)
    oracle = summary["oracle_accuracy"]
    assert len(oracle["scales"]) == 2 and oracle["scales"][0] > 0.95
    for name in ("config.json", "metrics.jsonl", "checkpoint.pt", "summary.json", "curves.png"):
        assert (tmp_path / name).is_file()
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["dataset"]["length_scales"] == LENGTHS and saved["train"]["epochs"] == 8
    assert not set(saved["train_indices"]) & set(saved["test_indices"])
    records = training.read_metrics(tmp_path)
    assert [r["epoch"] for r in records] == list(range(1, 9))
    assert len(records[0]["train_loss"]) == 2 and records[0]["images_per_s"] > 0
    assert json.loads((tmp_path / "summary.json").read_text()) == summary


def test_resume_repeats_an_uninterrupted_run(data, tmp_path):
    # Exercises the shuffling, crop, symmetry and mask generators.
    settings = config(data, crop=16, epochs=2, augment=True)
    whole = training.train(settings, tmp_path / "whole")
    steps = []
    with pytest.raises(training.Interrupted, match="resumes the run"):
        training.train(settings, tmp_path / "cut", should_stop=lambda: steps.append(1) or len(steps) == 6)
    assert training.load_checkpoint(tmp_path / "cut" / "checkpoint.pt")["step"] == 2  # mid-epoch 2
    resumed = training.train(settings, tmp_path / "cut", resume=True)
    assert resumed["test_accuracy"] == whole["test_accuracy"]
    assert training.read_metrics(tmp_path / "cut")[-1]["train_loss"] == training.read_metrics(tmp_path / "whole")[-1]["train_loss"]
    a, b = final_weights(tmp_path / "whole"), final_weights(tmp_path / "cut")
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(training.CheckpointError, match="only `epochs` and `device`"):
        training.train(config(data, crop=16, epochs=2, augment=True, lr=1e-2), tmp_path / "cut", resume=True)
    with pytest.raises(training.CheckpointError, match="already holds a run"):
        training.train(settings, tmp_path / "cut")


def test_resume_after_an_interruption_on_the_last_step_of_an_epoch(data, tmp_path):
    """The checkpoint then has step == steps_per_epoch: the resumed run scores that epoch and goes on."""
    settings = config(data, n_train=8, batch_size=8, epochs=2)
    whole = training.train(settings, tmp_path / "whole")
    with pytest.raises(training.Interrupted):
        training.train(settings, tmp_path / "cut", should_stop=lambda: True)
    assert training.load_checkpoint(tmp_path / "cut" / "checkpoint.pt")["step"] == 1  # one step per epoch
    resumed = training.train(settings, tmp_path / "cut", resume=True)
    assert resumed["test_accuracy"] == whole["test_accuracy"]
    assert training.read_metrics(tmp_path / "cut") == [
        {**r, "images_per_s": r2["images_per_s"]}
        for r, r2 in zip(training.read_metrics(tmp_path / "whole"), training.read_metrics(tmp_path / "cut"))]


def test_eval_every_scores_the_chosen_epochs_and_the_last(data, tmp_path):
    training.train(config(data, epochs=5, eval_every=2), tmp_path / "two")
    scored = [r["epoch"] for r in training.read_metrics(tmp_path / "two") if r["test_accuracy"] is not None]
    assert scored == [2, 4, 5]
    training.train(config(data, epochs=3, eval_every=0), tmp_path / "end")
    records = training.read_metrics(tmp_path / "end")
    assert [r["test_loss"] is None for r in records] == [True, True, False]
    assert (tmp_path / "end" / "curves.png").is_file()


def _ddp_worker(rank, world, init_file, settings, out):
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    training.train(training.TrainConfig.from_dict(settings), out)
    torch.distributed.barrier()
    # Leave without running C++ destructors: tearing the gloo group down at exit aborted about one
    # run in ten ("terminate called without an active exception", SIGABRT), with or without
    # destroy_process_group, after every file had been written.
    os._exit(0)


@pytest.mark.slow
@pytest.mark.parametrize("mask_scope", ["sample", "batch"])
def test_two_process_ddp_matches_one_process(data, tmp_path, mask_scope):
    settings = config(data, crop=16, epochs=1, n_train=64, mask_scope=mask_scope)
    single = training.train(settings, tmp_path / "one")
    mp.spawn(_ddp_worker, args=(2, str(tmp_path / "init"), settings.to_dict(), str(tmp_path / "two")), nprocs=2)
    a, b = final_weights(tmp_path / "one"), final_weights(tmp_path / "two")
    # The runs differ only in the order of float32 sums, the longest a weight gradient over
    # batch x crop^2 terms (split over the ranks, then all-reduced); n * eps bounds the relative
    # rounding of an n-term sum, and each tensor is compared relative to its own largest entry
    # (the running variances are about 4). Adam adds a second, absolute difference: it divides a
    # gradient by its running size, so reordered sums in a near-zero gradient become different
    # steps of up to about lr (measured up to 0.09 lr over seeds 0-2, 4 steps). With rank-local
    # batch statistics instead the weights drift by 1e-2 and the running variances by 0.6.
    tol = settings.batch_size * settings.crop**2 * torch.finfo(torch.float32).eps
    for name, ref in a.items():
        assert (ref - b[name]).abs().max().item() <= 0.25 * settings.lr + tol * ref.abs().max().item(), name
    two = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert two["world_size"] == 2
    assert two["test_accuracy"]["scales"] == pytest.approx(single["test_accuracy"]["scales"], abs=1.5 / 64)
    ours, theirs = training.read_metrics(tmp_path / "one")[0], training.read_metrics(tmp_path / "two")[0]
    assert ours["train_loss"] == pytest.approx(theirs["train_loss"], rel=1e-5)


def _launch(*args, nproc: int | None = None) -> subprocess.CompletedProcess:
    """``python -m backdrop.training.launch ARGS``, or under ``torchrun`` with ``nproc`` processes."""
    start = ([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc)]
             if nproc else [sys.executable])
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run([*start, "-m", "backdrop.training.launch", *map(str, args)], env=env, capture_output=True,
                          text=True, timeout=600)


@pytest.mark.slow
def test_torchrun_trains_a_run_from_a_settings_file(data, tmp_path):
    """The entry point for distributed runs takes a TrainConfig as JSON (a run's config.json or the
    fields alone); bad input is one Error: line worded as its own options."""
    settings = config(data, crop=16, epochs=1)
    (tmp_path / "settings.json").write_text(json.dumps(settings.to_dict()))
    done = _launch(tmp_path / "settings.json", "--out", tmp_path / "two", nproc=2)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("wrote") == 1  # rank 0 alone prints
    summary = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert summary["world_size"] == 2 and training.read_config(tmp_path / "two") == settings
    again = _launch(tmp_path / "two" / "config.json", "--out", tmp_path / "two")
    assert again.returncode == 2 and again.stderr.strip().splitlines() == [
        f"Error: {tmp_path / 'two'} already holds a run; pass --resume to continue it or choose another --out"]
    done = _launch("--out", tmp_path / "two", "--resume", "--epochs", "2")
    assert done.returncode == 2 and "was trained by 2 processes; resume it with 2, not 1" in done.stderr


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(data, tmp_path, monkeypatch):
    calls = []
    original = MultiScaleNet.scale_losses

    def poisoned(self, logits, choices):
        calls.append(1)
        losses = original(self, logits, choices)
        return losses * float("nan") if len(calls) > 5 else losses  # 4 steps per epoch: NaN in epoch 2

    monkeypatch.setattr(MultiScaleNet, "scale_losses", poisoned)
    with pytest.raises(training.TrainingError, match=r"loss became nan at epoch 2.*keeps the last good epoch \(1\)"):
        training.train(config(data, epochs=3), tmp_path)
    assert training.load_checkpoint(tmp_path / "checkpoint.pt")["epoch"] == 1
    assert len(training.read_metrics(tmp_path)) == 1


def test_damaged_or_foreign_checkpoints_are_refused(tmp_path):
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(training.CheckpointError, match="not a readable checkpoint"):
        training.load_checkpoint(path)
    torch.save({"format": "something else"}, path)
    with pytest.raises(training.CheckpointError, match="not an msgp train checkpoint"):
        training.load_checkpoint(path)
    with pytest.raises(training.CheckpointError, match="no checkpoint"):
        training.load_checkpoint(tmp_path / "missing.pt")


# The command line --------------------------------------------------------------------------------

def test_cli_train_evaluate_and_compatibility(data, tmp_path):
    runner = CliRunner()
    run = tmp_path / "run"
    result = runner.invoke(cli.main, ["train", str(data), "--epochs", "1", "--n-train", "32", "--n-test", "32",
                                      "--batch-size", "8", "--device", "cpu", "--out", str(run)])
    assert result.exit_code == 0, result.output
    assert "oracle" in result.output and (run / "summary.json").is_file()
    result = runner.invoke(cli.main, ["evaluate", str(run)])
    assert result.exit_code == 0, result.output
    assert "scale 1" in result.output and "joint confusion" in result.output
    other_seed = tmp_path / "seed.h5"
    io.write(tiny_spec(seed=5, n=48), other_seed)
    result = runner.invoke(cli.main, ["evaluate", str(run), str(other_seed), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["n"] == 32 and len(report["network"]["joint_confusion"]) == 4
    # The same description as a spec .json: its samples are generated as they are read, the same bits.
    described = tmp_path / "seed.json"
    described.write_text(json.dumps(tiny_spec(seed=5, n=48).to_dict()))
    result = runner.invoke(cli.main, ["evaluate", str(run), str(described), "--json"])
    assert result.exit_code == 0, result.output
    generated = json.loads(result.output)
    assert generated["data"] == "the generated dataset (seed 5)"
    assert {k: generated[k] for k in ("network", "oracle")} == {k: report[k] for k in ("network", "oracle")}
    described.write_text(json.dumps(tiny_spec(n=48).to_dict()))  # the training seed: refused
    result = runner.invoke(cli.main, ["evaluate", str(run), str(described)])
    assert result.exit_code == 2 and "training data's seed" in result.output
    # Same statistics and the training seed: its samples are the training samples, so it is refused
    # for evaluation and as --test-data.
    same_seed = tmp_path / "same-seed.h5"
    io.write(tiny_spec(n=400), same_seed)
    result = runner.invoke(cli.main, ["evaluate", str(run), str(same_seed)])
    assert result.exit_code == 2 and "training data's seed" in result.output
    result = runner.invoke(cli.main, ["train", str(data), "--test-data", str(same_seed), "--epochs", "1",
                                      "--n-train", "32", "--n-test", "32", "--out", str(tmp_path / "leak")])
    assert result.exit_code == 2 and "training data's seed" in result.output
    assert not (tmp_path / "leak").exists()
    other = tmp_path / "other.h5"
    io.write(tiny_spec(amplitudes=[1.0, 2.0], n=16), other)
    result = runner.invoke(cli.main, ["evaluate", str(run), str(other)])
    assert result.exit_code == 2 and "other parameters" in result.output and "amplitudes" in result.output
    result = runner.invoke(cli.main, ["train", str(data), "--out", str(run), "--resume", "--epochs", "2",
                                      "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert len(training.read_metrics(run)) == 2
    (run / "checkpoint.pt").write_bytes(b"\0" * 64)
    result = runner.invoke(cli.main, ["evaluate", str(run)])
    assert result.exit_code == 2 and "not a readable checkpoint" in result.output


def test_cli_defaults_are_the_api_defaults(data, tmp_path):
    """`msgp train --backdrop` trains as TrainConfig(backdrop=True) does: the measured defaults
    (symmetries on, p 0.25, clipping, warm-up, ...) live in one place."""
    result = CliRunner().invoke(cli.main, ["train", str(data), "--backdrop", "--n-train", "64", "--n-test", "64",
                                           "--epochs", "1", "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    stored = training.read_config(tmp_path / "run")
    defaults = training.TrainConfig(data=str(data), backdrop=True, n_train=64, n_test=64, epochs=1)
    assert defaults.changed_from(stored) == []
    assert (stored.mask_prob, stored.augment, stored.clip_grad) == (0.25, True, 1.0)


def test_changed_from_names_the_settings_that_change_a_run():
    base = training.TrainConfig(data="a.h5", backdrop=True)
    assert base.changed_from(training.TrainConfig(data="elsewhere/a.h5", device="cpu", backdrop=True)) == []
    assert base.changed_from(training.TrainConfig(data="a.h5", backdrop=True, mask_prob=0.5, epochs=3)) == \
        ["mask_prob", "epochs"]
    # Without backdrop the mask settings train nothing, so they do not count.
    plain = training.TrainConfig(data="a.h5")
    assert plain.changed_from(training.TrainConfig(data="a.h5", mask_prob=0.9, mask_block=2)) == []
    assert plain.changed_from(training.TrainConfig(data="a.h5", topology="series")) == ["topology"]


def test_options_replace_saved_settings_and_a_mask_option_asks_for_backdrop():
    """TrainConfig.from_options is how `msgp train` reads its options, over a saved run's settings
    (--resume, --config) or the defaults."""
    saved = training.TrainConfig(data="a.h5", lr=0.01, augment=False)
    assert training.TrainConfig.from_options(saved, width=8).to_dict() == {**saved.to_dict(), "width": 8}
    assert training.TrainConfig.from_options() == training.TrainConfig()
    for mask in ({"mask_prob": 0.5}, {"mask_block": 2}, {"mask_scope": "batch"}):
        assert training.TrainConfig.from_options(saved, **mask).backdrop
        assert training.TrainConfig.from_options(**mask, backdrop=True).backdrop
        with pytest.raises(training.ConfigError, match=f"`{next(iter(mask))}` sets backdrop's masks, which "
                                                       "`backdrop=False` turns off; pass one of them"):
            training.TrainConfig.from_options(saved, **mask, backdrop=False)


def test_a_settings_file_is_a_runs_config_json_or_an_object_of_fields(tmp_path):
    wanted = training.TrainConfig(data="a.h5", backdrop=True, seed=3)
    (tmp_path / "fields.json").write_text(json.dumps({"data": "a.h5", "backdrop": True, "seed": 3}))
    (tmp_path / "config.json").write_text(json.dumps({"train": wanted.to_dict(), "method": wanted.method}))
    assert training.TrainConfig.from_json(tmp_path / "fields.json") == wanted
    assert training.TrainConfig.from_json(tmp_path / "config.json") == wanted
    with pytest.raises(training.CheckpointError, match="none.json does not exist"):
        training.TrainConfig.from_json(tmp_path / "none.json")
    (tmp_path / "bad.json").write_text(json.dumps({"data": "a.h5", "lr": -1}))
    with pytest.raises(training.CheckpointError, match="bad.json is damaged: `lr` must be a positive number"):
        training.TrainConfig.from_json(tmp_path / "bad.json")


def test_missing_default_dataset_says_to_generate(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli.main, ["train"])
    assert result.exit_code == 2 and "run `msgp generate` first" in result.output
    result = CliRunner().invoke(cli.main, ["evaluate", str(tmp_path)])
    assert result.exit_code == 2 and "no config.json" in result.output


def test_the_oracle_scores_a_set_of_samples_once_per_process(data, tmp_path, monkeypatch):
    calls = []
    original = training.evaluation._oracle_predict
    monkeypatch.setattr(training.evaluation, "_oracle_predict", lambda d, *a: calls.append(len(d.fields)) or original(d, *a))
    monkeypatch.setattr(training.evaluation, "_ORACLE_SCORES", {})
    first = training.train(config(data, epochs=1, seed=3), tmp_path / "a")
    second = training.train(config(data, epochs=1, seed=3, backdrop=False), tmp_path / "b")
    assert calls == [64] and first["oracle_accuracy"] == second["oracle_accuracy"]  # same test samples
    training.train(config(data, epochs=1, seed=4), tmp_path / "c")  # another split: scored anew
    assert calls == [64, 64]
