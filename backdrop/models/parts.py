"""The parts :class:`~backdrop.models.MultiScaleNet` is built from: where each scale's head goes
(receptive fields), the whitening filter of its second input channel, and the pooling and batch
standardisation of its classifiers."""
from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from msgp import spectral
from msgp.errors import MSGPError

# (kernel size, stride) of the convolutions: a stem, then each stage = a stride-2 conv and a conv.
STEM = ((3, 1),)
# (kernel size, stride) of each stage's convolutions: a stride-2 conv, then a stride-1 one.
STAGE = ((3, 2), (3, 1))
# A head's wanted receptive field, in units of its scale's length scale (see place_heads).
RF_FACTOR = 3.0
# The whitening filter's largest gain, relative to the gain of the strongest mode (see whitening_gain).
MAX_WHITENING_GAIN = 1e3


class ModelError(MSGPError, ValueError):
    """Arguments a network cannot be built with, or an input it cannot take; one line naming the
    argument and its value."""


def receptive_field(stage: int) -> int:
    """Receptive field, in pixels per axis, of a unit at the output of ``stage`` (0 = the stem).

    Exact for the chain of convolutions: ``rf = 1 + sum_i (k_i - 1) * prod_{j<i} stride_j``.
    """
    rf, jump = 1, 1
    for kernel, stride in STEM + STAGE * stage:
        rf += (kernel - 1) * jump
        jump *= stride
    return rf


def place_heads(length_scales: Sequence[Sequence[float]], size: int,
                rf_factor: float = RF_FACTOR) -> tuple[int, ...]:
    """The stage each scale's head reads from.

    For scale ``s`` the target is ``rf_factor`` times the geometric mean of its candidate length
    scales (the squared-exponential correlation exp(-r**2 / (2 l**2)) falls to 1% at r = 3 l, so
    the default factor 3 lets a unit see one correlated blob whole); the head goes on the stage ``>= 1``
    whose receptive field is closest to the target in log. Stages stop where the feature
    map would fall below one pixel (``2**stage <= size``).
    """
    if not (rf_factor > 0 and math.isfinite(rf_factor)):
        raise ModelError(f"`rf_factor` must be a positive number, but got {rf_factor}")
    deepest = deepest_stage(size)
    if deepest < 1:
        raise ModelError(f"size must be at least 2 pixels to hold one stride-2 stage, but got {size}")
    stages = []
    for row in length_scales:
        target = rf_factor * math.exp(sum(math.log(v) for v in row) / len(row))
        stages.append(min(range(1, deepest + 1), key=lambda k: abs(math.log(receptive_field(k) / target))))
    return tuple(stages)


def deepest_stage(size: int) -> int:
    """The deepest stage whose feature map keeps at least one pixel of a ``size``-pixel input:
    ``2**stage <= size``."""
    return int(math.floor(math.log2(size)))


def check_head_stages(head_stages: Sequence[int], topology: str = "heads", size: int | None = None
                      ) -> tuple[int, ...]:
    """``head_stages`` as a tuple of ints, or a :class:`ModelError` (a ValueError): a non-empty
    list of stages from 1 (to :func:`deepest_stage` of ``size`` when the input size is known),
    increasing for the series topology (one mask per stage along the trunk)."""
    stages = tuple(int(k) for k in head_stages)
    top = None if size is None else deepest_stage(size)
    if not stages or min(stages) < 1 or (top is not None and max(stages) > top):
        where = "stages >= 1" if top is None else f"stages 1 to {top} (2**stage <= the {size}-pixel images)"
        raise ModelError(f"`head_stages` must be a non-empty list of {where}, but got {stages}")
    if topology == "series" and any(b <= a for a, b in zip(stages, stages[1:])):
        raise ModelError(f"the series topology needs increasing `head_stages` (one mask per stage), but got {stages}")
    return stages


def whitening_gain(spec, max_gain: float = MAX_WHITENING_GAIN) -> np.ndarray:
    """Half-grid gain of the filter that flattens the data's mean power spectrum (over the classes,
    noise included), capped at ``max_gain`` times the gain of the strongest mode and scaled so that
    the filtered fields have unit variance.

    The cap keeps the filter from amplifying modes that hold almost no power (down to 1e-6 of the
    strongest, far above float32 rounding at the defaults) into the whole of the output.
    """
    power = spectral.class_signal(spec).mean(0) + spec.noise**2
    gain = np.minimum(np.sqrt(power.max() / np.maximum(power, power.max() * 1e-300)), max_gain)
    variance = (spectral.half_weights(spec.size, spec.ndim) * power * gain**2).sum() / spec.size**spec.ndim
    return gain / math.sqrt(variance)


class SpectralWhitening(nn.Module):
    """A fixed linear filter of periodic fields ``(N, C, *shape)``, applied by FFT: each Fourier mode
    multiplied by ``gain`` (a buffer on the rfftn half grid of a ``size**ndim`` field, set by
    :func:`whitening_gain`). Computed in float32 whatever the autocast setting."""

    def __init__(self, ndim: int, size: int):
        super().__init__()
        self.ndim, self.size = ndim, size
        self.register_buffer("gain", torch.ones(spectral.half_shape(size, ndim)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = (self.size,) * self.ndim
        if tuple(x.shape[-self.ndim:]) != shape:
            raise ModelError(f"the whitening filter is for whole {'x'.join(map(str, shape))} images, "
                             f"but got {'x'.join(map(str, x.shape[-self.ndim:]))}")
        dims = tuple(range(-self.ndim, 0))
        with torch.autocast(x.device.type, enabled=False):
            modes = torch.fft.rfftn(x.float(), dim=dims, norm="ortho")
            return torch.fft.irfftn(modes * self.gain, s=shape, dim=dims, norm="ortho")

    def extra_repr(self) -> str:
        return f"ndim={self.ndim}, size={self.size}"


def _all_reduce(x: torch.Tensor) -> torch.Tensor:
    """Sum over ranks, differentiable (the gradient is summed over ranks too)."""
    from torch.distributed.nn.functional import all_reduce

    with warnings.catch_warnings():
        # Deprecated in favour of a private module; the public function still does exactly this.
        warnings.simplefilter("ignore", FutureWarning)
        return all_reduce(x)


class BatchStandardize(nn.BatchNorm1d):
    """:class:`torch.nn.BatchNorm1d` whose batch statistics span every process of a distributed run.

    In one process it is BatchNorm1d; under ``torch.distributed`` the batch mean and variance are
    summed over the ranks (autograd-aware all-reduce), so the result is that of one process seeing
    the global batch, and the running statistics are the same on every rank.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        totals = _all_reduce(torch.cat([x.sum(0), x.new_tensor([x.shape[0]])]))
        n = totals[-1]
        mean = totals[:-1] / n
        # Two passes: E[x^2] - mean^2 loses the variance of log-energies (mean -2, spread 0.05) to
        # float32 cancellation, and a 2-process run drifted from the 1-process one by 7e-4.
        var = _all_reduce(((x - mean) ** 2).sum(0)) / n
        with torch.no_grad():
            self.num_batches_tracked += 1
            self.running_mean.lerp_(mean, self.momentum)
            self.running_var.lerp_(var * n / (n - 1), self.momentum)
        return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias


class LogPool(nn.Module):
    """Global average pool of non-negative features, then their logarithm: ``(N, C, *) -> (N, C)``.

    Pooled ReLU features are energies of filtered fields, and the class evidence is a ratio of
    energies (high against low frequencies), while the nuisance, a component's energy fluctuating
    from image to image, multiplies every channel it leaks into. The logarithm turns both into
    sums, which the linear classifier after it separates.
    """

    def __init__(self, eps: float = 1e-3):
        super().__init__()
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.log(x.flatten(2).mean(-1) + self.eps)
