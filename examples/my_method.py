"""Two methods of one's own for `msgp experiment --method examples/my_method.py:NAME`.

wide_net: a network method, trained by the project's loop like the built-in networks.
nearest_spectrum: a fitted method, numpy only: each scale's choice from the log-power of the
image along its last axis in eight frequency bands, by the nearest class mean in those features.
"""
import numpy as np
from torch import nn

from backdrop.experiment.methods import fitted, network


@network(lr=1e-3)
def wide_net(spec):
    """Two strided convolutions of 32 channels, a global average, one linear layer of K x M logits."""
    conv = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[spec.ndim]
    pool = {1: nn.AdaptiveAvgPool1d, 2: nn.AdaptiveAvgPool2d, 3: nn.AdaptiveAvgPool3d}[spec.ndim]
    return nn.Sequential(conv(1, 32, 5, stride=2, padding=2), nn.ReLU(), conv(32, 32, 5, stride=2, padding=2),
                         nn.ReLU(), pool(1), nn.Flatten(), nn.Linear(32, spec.n_scales * spec.n_choices),
                         nn.Unflatten(1, (spec.n_scales, spec.n_choices)))


@fitted
def nearest_spectrum(fields, labels, spec):
    def features(x):
        power = (np.abs(np.fft.rfft(x, axis=-1)) ** 2).reshape(len(x), -1, x.shape[-1] // 2 + 1).mean(1)
        return np.log(np.stack([band.mean(1) for band in np.array_split(power[:, 1:], 8, axis=1)], axis=1))

    train, choices = features(fields), spec.choices(labels)
    means = [[train[choices[:, s] == m].mean(0) for m in range(spec.n_choices)] for s in range(spec.n_scales)]

    def predict(x):
        f = features(x)
        d = -np.array([[((f - m) ** 2).sum(1) for m in row] for row in means]).transpose(2, 0, 1)
        return d - np.logaddexp.reduce(d, axis=-1, keepdims=True)

    return predict
