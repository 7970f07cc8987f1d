"""The trainer's defaults on every kind of dataset the generator makes, in miniature: a few epochs
on small images of each kind, and every scale's training loss must leave chance.

The full-size check, with accuracies against the oracle and wall times, is
``examples/generality.py`` (docs/results/generality.md).
"""
from __future__ import annotations

import math

import pytest

from backdrop import training
from backdrop.training.evaluation import LOSS_MARGIN
from msgp.spec import DatasetSpec

TWO = {"length_scales": [[1.5, 3.0], [5.0, 10.0]], "amplitudes": [1.0, 1.0], "size": 32}
# One change at a time from a small 2-D two-scale dataset; every scale of each is one the oracle
# tells apart on nearly every image, so a training loss still at chance is the trainer's failure.
KINDS = {
    "1-D": {"ndim": 1, "size": 1024, "length_scales": [[2.0, 4.0], [8.0, 16.0]], "amplitudes": [1.0, 1.0]},
    "2-D": TWO,
    "3-D": {"ndim": 3, "size": 16, "length_scales": [[1.2, 2.4], [3.0, 6.0]], "amplitudes": [1.0, 1.0]},
    "one scale": {"size": 32, "length_scales": [[2.0, 4.0]], "amplitudes": [1.0]},
    "three candidates": {**TWO, "length_scales": [[1.2, 2.0, 3.2], [5.0, 8.0, 12.0]]},
    "matern32": {**TWO, "kernel": "matern32"},
    "matern52": {**TWO, "kernel": "matern52"},
    "sample normalisation": {**TWO, "normalize": "sample"},
}


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_every_scale_leaves_chance_with_the_default_settings(kind, tmp_path):
    spec = DatasetSpec(n=600, **KINDS[kind])
    n = 16 * spec.n_classes if spec.n_classes > 8 else 128
    # The defaults but the sizes and the epochs (15 of 30); test scoring only at the end.
    summary = training.train(training.TrainConfig(data=spec, n_train=n, n_test=n, epochs=15, device="cpu",
                                                  eval_every=0), tmp_path / "run")
    losses = training.read_metrics(tmp_path / "run")[-1]["train_loss"]
    chance = math.log(spec.n_choices)
    assert all(loss < (1 - LOSS_MARGIN) * chance for loss in losses), (kind, [x / chance for x in losses])
    assert all(v["learned"] for v in summary["learned"]), summary["learned"]


@pytest.mark.parametrize("ndim, size, epochs", [(2, 128, 30), (2, 256, 30), (3, 32, 30), (1, 2048, 120),
                                                (2, 64, 120), (1, 8192, 60), (2, 100, 49), (2, 16, 120),
                                                (1, 64, 120)])
def test_default_epochs_keep_the_pixels_a_run_sees(ndim, size, epochs):
    spec = DatasetSpec(n=8, length_scales=[[1.2, 1.5], [3.0, 4.5]], amplitudes=[1.0, 1.0], size=size, ndim=ndim)
    assert training.default_epochs(spec) == epochs
    # Never fewer pixels than 30 epochs of 128² images, unless capped; never fewer than 30 epochs.
    seen = epochs * size ** ndim
    assert epochs >= training.DEFAULT_EPOCHS
    assert seen >= 0.99 * training.DEFAULT_EPOCHS * 128 ** 2 or epochs == 4 * training.DEFAULT_EPOCHS


@pytest.mark.parametrize("n_scales, ndim, size, epochs", [(1, 2, 128, 30), (4, 2, 128, 30), (5, 2, 128, 60),
                                                         (5, 2, 256, 60), (5, 2, 100, 98), (5, 1, 2048, 120)])
def test_default_epochs_grow_past_four_scales(n_scales, ndim, size, epochs):
    """Five scales at 128² missed the coarsest scale's target with 30 epochs on every seed; the
    epochs double there, and never pass the cap."""
    spec = DatasetSpec(n=8, length_scales=[[1.2 * 2**s, 1.5 * 2**s] for s in range(n_scales)],
                       amplitudes=[1.0] * n_scales, size=size, ndim=ndim)
    assert training.default_epochs(spec) == epochs


def test_a_run_without_epochs_trains_the_default_and_resumes_to_it(tmp_path, monkeypatch):
    """``epochs=None`` resolves to ``default_epochs`` of the data when the run starts; config.json
    stores the number, and a resume that gives none keeps it. (The reference is shrunk so that the
    default is 2 epochs on these 32² images.)"""
    from backdrop.training import config as config_module

    monkeypatch.setattr(config_module, "DEFAULT_EPOCHS", 1)
    monkeypatch.setattr(config_module, "REFERENCE_PIXELS", 2 * 32 ** 2)
    spec = DatasetSpec(n=64, **TWO)
    assert training.default_epochs(spec) == 2
    config = training.TrainConfig(data=spec, n_train=16, n_test=16, batch_size=8, width=4, device="cpu", eval_every=0)
    stops = iter([False, True])  # stop after the first step: epoch 1 of 2 unfinished
    with pytest.raises(training.Interrupted):
        training.train(config, tmp_path / "run", should_stop=lambda: next(stops, False))
    assert training.read_config(tmp_path / "run").epochs == 2
    training.train(config, tmp_path / "run", resume=True)
    assert [r["epoch"] for r in training.read_metrics(tmp_path / "run")] == [1, 2]
