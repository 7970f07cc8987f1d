"""The whitened input channel, and the verdict on whether each scale was learned."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from backdrop import training
from backdrop.models import MultiScaleNet, SpectralWhitening, whitening_gain
from backdrop.training.evaluation import LOSS_MARGIN, learned
from msgp import oracle, spectral
from msgp.generate import Sampler
from msgp.spec import DatasetSpec

EPS32 = float(torch.finfo(torch.float32).eps)


@pytest.mark.parametrize("ndim, size", [(1, 256), (2, 32), (3, 16)])
def test_the_gain_flattens_the_mean_spectrum_and_gives_unit_variance(ndim, size):
    spec = DatasetSpec.default(2, size, ndim=ndim, n=8, length_scales=[[1.5, 2.0], [3.0, 4.0]])
    gain = whitening_gain(spec)
    power = oracle.class_signal(spec).mean(0)
    whitened = power * gain**2
    weights = spectral.half_weights(size, ndim)
    assert (weights * whitened).sum() / size**ndim == pytest.approx(1.0, rel=1e-12)
    # Flat (one value) wherever the cap does not bind; the cap binds only where the power is tiny.
    capped = gain >= gain.min() * 1e3 * (1 - 1e-12)
    assert np.ptp(whitened[~capped]) <= 1e-9 * whitened[~capped].max()
    assert (power[capped] <= power.max() * 1e-6 * (1 + 1e-9)).all()


def test_whitening_multiplies_each_fourier_mode_by_the_gain():
    spec = DatasetSpec.default(2, 32, n=8, length_scales=[[1.5, 2.0], [3.0, 4.0]])
    layer = SpectralWhitening(2, 32)
    layer.gain.copy_(torch.from_numpy(whitening_gain(spec)))
    x = torch.randn(3, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    expected = spectral.synthesize(spectral.analyze(x.numpy(), 2) * whitening_gain(spec), 32, 2)
    got = layer(x).double().numpy()
    # float32 FFTs of 32*32 terms: a few eps times log2(n) of the largest value.
    assert np.abs(got - expected).max() <= 64 * EPS32 * np.abs(expected).max()
    with pytest.raises(ValueError, match="whole 32x32 images"):
        layer(x[..., :16, :16])


def test_whitened_fields_are_white_noise_of_unit_variance():
    """Monte Carlo: 64 one-dimensional fields of 512 px with white noise (so the cap never binds);
    whitened, every pixel is an independent unit normal, and every band of 16 Fourier modes holds
    the same power."""
    spec = DatasetSpec.default(2, 512, ndim=1, n=64, seed=3, noise=0.1)
    gain = whitening_gain(spec)
    assert gain.max() < gain.min() * 1e3  # uncapped
    fields = Sampler(spec).batch(0, 64).fields
    layer = SpectralWhitening(1, 512)
    layer.gain.copy_(torch.from_numpy(gain))
    out = layer(torch.from_numpy(fields[:, None].astype(np.float32))).double().numpy()[:, 0]
    # The sample variance of n independent unit normals has standard error sqrt(2 / n); 5 of them.
    assert out.var() == pytest.approx(1.0, abs=5 * math.sqrt(2 / out.size))
    periodogram = np.abs(np.fft.rfft(out, norm="ortho"))[:, 1:255] ** 2
    bands = periodogram.mean(0)[:240].reshape(-1, 16).mean(1)
    # Each band averages 64 x 16 exponential variables of mean 1: standard error 1/32; 5 of them.
    assert np.abs(bands - 1).max() < 5 / 32


def test_a_whitened_network_has_a_second_input_channel_and_rebuilds_from_its_config():
    spec = DatasetSpec.default(2, 32, n=8, length_scales=[[1.5, 2.0], [3.0, 4.0]])
    model = MultiScaleNet.from_spec(spec, whiten=True)
    assert model.stem[0].in_channels == 2 and model.config()["whiten_size"] == 32
    rebuilt = MultiScaleNet(**model.config())
    rebuilt.load_state_dict(model.state_dict())
    x = torch.randn(4, 1, 32, 32, generator=torch.Generator().manual_seed(1))
    model.eval(), rebuilt.eval()
    assert torch.equal(model(x), rebuilt(x))
    assert MultiScaleNet.from_spec(spec).stem[0].in_channels == 1


def test_settings_saved_before_whitening_existed_read_as_unwhitened():
    old = training.TrainConfig(data="x.h5").to_dict()
    del old["whiten"]
    assert training.TrainConfig.from_dict(old).whiten is False
    assert training.TrainConfig(data="x.h5").whiten is True


def test_learned_names_a_scale_at_chance_by_its_loss_or_its_accuracy():
    line = 0.5 + 2 * math.sqrt(0.25 / 512)  # two standard errors above chance on 512 images
    verdicts = learned(train_loss=[math.log(2) * (1 - LOSS_MARGIN / 2), 0.3, 0.3, 0.3],
                       test_scales=[0.9, line - 0.01, line - 0.01, line + 0.01],
                       oracle_scales=[1.0, 0.9, line - 0.02, 0.9], n_choices=2, n_test=512)
    assert [v["learned"] for v in verdicts] == [False, False, True, True]
    assert "training loss" in verdicts[0]["reason"] and "two standard errors" in verdicts[1]["reason"]
    assert [v["basis"] for v in verdicts] == ["training", "test", None, None]
    # The oracle itself at chance: the data cannot tell the classes apart, so nothing is missed.
    assert verdicts[2]["reason"] is None
