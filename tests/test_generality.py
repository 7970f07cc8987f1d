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
