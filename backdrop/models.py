"""A fully convolutional multi-scale classifier, with backdrop masks at the depths of the scales.

The backbone is a stem convolution followed by stride-2 stages; scale ``s`` is tied to the stage
whose receptive field best matches its length scales (see :func:`place_heads`). Two topologies:

* ``heads`` (default): one classifier head per scale reads its stage, behind its own backdrop
  layer, so each scale's gradient is masked where that scale's features live;
* ``series`` (the 2018 paper's): one trunk with a backdrop layer after each scale's stage, finest
  first, and one classifier at the end; the gradient reaching a stage has passed every mask
  deeper than it, so the early layers see the product of all the masks.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn import functional as F

from msgp import spectral
from msgp.spec import choices_of

from .functional import check_block_size
from .layer import Backdrop

# (kernel size, stride) of the convolutions: a stem, then each stage = a stride-2 conv and a conv.
STEM = ((3, 1),)
STAGE = ((3, 2), (3, 1))
RF_FACTOR = 3.0
MAX_WHITENING_GAIN = 1e3
TOPOLOGIES = ("heads", "series")
MASK_SCOPES = ("sample", "batch")
PADDINGS = ("circular", "zeros")

_CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
_POOL = {1: nn.AdaptiveAvgPool1d, 2: nn.AdaptiveAvgPool2d, 3: nn.AdaptiveAvgPool3d}


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
        raise ValueError(f"rf_factor must be a positive number, but got {rf_factor}")
    deepest = deepest_stage(size)
    if deepest < 1:
        raise ValueError(f"size must be at least 2 pixels to hold one stride-2 stage, but got {size}")
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
    """``head_stages`` as a tuple of ints, or a ValueError: a non-empty list of stages from 1 (to
    :func:`deepest_stage` of ``size`` when the input size is known), increasing for the series
    topology (one mask per stage along the trunk)."""
    stages = tuple(int(k) for k in head_stages)
    top = None if size is None else deepest_stage(size)
    if not stages or min(stages) < 1 or (top is not None and max(stages) > top):
        where = "stages >= 1" if top is None else f"stages 1 to {top} (2**stage <= the {size}-pixel images)"
        raise ValueError(f"head_stages must be a non-empty list of {where}, but got {stages}")
    if topology == "series" and any(b <= a for a, b in zip(stages, stages[1:])):
        raise ValueError(f"the series topology needs increasing head_stages (one mask per stage), but got {stages}")
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
            raise ValueError(f"the whitening filter is for whole {'x'.join(map(str, shape))} images, "
                             f"but got {'x'.join(map(str, x.shape[-self.ndim:]))}")
        dims = tuple(range(-self.ndim, 0))
        with torch.autocast(x.device.type, enabled=False):
            modes = torch.fft.rfftn(x.float(), dim=dims, norm="ortho")
            return torch.fft.irfftn(modes * self.gain, s=shape, dim=dims, norm="ortho")

    def extra_repr(self) -> str:
        return f"ndim={self.ndim}, size={self.size}"


def _all_reduce(x: torch.Tensor) -> torch.Tensor:
    """Sum over ranks, differentiable (the gradient is summed over ranks too)."""
    import warnings

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


class MultiScaleNet(nn.Module):
    """Backbone of stride-2 stages with per-scale classification, backdrop-masked at matched depths.

    ``topology="heads"``: head ``s`` is :class:`~backdrop.Backdrop` on the feature map of stage
    ``head_stages[s]`` (its own mask probability; ``nn.Identity`` when backdrop is off, so the
    graph is the plain network), then the classifier: with ``features="log"`` (the default) the
    log of each channel's global mean (:class:`LogPool`), a batch standardisation of those
    log-energies (:class:`BatchStandardize`) and a linear layer to ``n_choices`` logits; with
    ``features="linear"`` a 1x1 convolution to ``n_choices`` channels, a global average pool and a
    batch standardisation of the logits.

    ``topology="series"``: a :class:`~backdrop.Backdrop` layer follows stage ``head_stages[s]`` in
    the trunk itself (the forward pass is unchanged), and one classifier after the deepest stage
    gives every scale's logits (``n_scales * n_choices`` outputs). The gradient that reaches
    stage ``k`` is masked by every mask at or after stage ``k``.

    Global pooling makes the network accept any input size, so crops and full images go through
    the same model. The class evidence is a ratio of filtered-field energies that differs by a few
    percent (1.19 vs 1.25 px at the finest default scale) under image-to-image fluctuations of the
    coarser components' energy. With linear features the finest head of the default dataset sat
    at chance (training loss ln 2) for 16 of 16 epochs on seeds 0 and 1 whatever the padding or
    learning rate (2e-3 to 1e-2); with log features it left chance within 3 epochs on both.

    Parameters
    ----------
    ndim : spatial dimensions of the fields, 1, 2 or 3.
    n_choices : candidate length scales per scale (logits per scale), M.
    head_stages : the backbone stage of each scale, scale 0 (the finest) first; each at least 1
        (distinct and increasing for ``series``). The backbone has ``max(head_stages)`` stages.
    width : channels of the stem; stage ``k`` has ``min(width * 2**k, max_width)``.
    max_width : cap on the channels of a stage.
    mask_prob : ``None`` for no backdrop, else the mask probability of each scale's backdrop
        layer (one number for all, or one per scale).
    input_std : the inputs are divided by this (the data's standard deviation) so that the first
        layers see unit-variance fields whatever the amplitudes.
    generators : one ``torch.Generator`` per scale for its backdrop masks (``None``: the global
        generator); only with ``mask_prob``.
    topology : ``heads`` or ``series`` (see above).
    features : ``log`` or ``linear``: the classifier's input (see above).
    mask_scope : ``sample`` (the default: each sample has its own mask over the positions, at least
        one position kept and the kept ones rescaled per sample) or ``batch`` (the 2018 reference's
        estimator: one mask over the positions shared by every sample and channel of the batch,
        at least one position kept and rescaled over the whole mask); only with ``mask_prob``.
    mask_block : side of the square blocks each scale's mask keeps or drops together, in positions
        of its stage's feature map (one int for all, or one per scale; ``None`` or 1: single
        positions); only with ``mask_prob``.
    whiten_size : ``None`` (the default) feeds the stem the field alone; an image size feeds it two
        channels, the field and the field whitened by :class:`SpectralWhitening` (whose gain
        :meth:`from_spec` sets from the data's description; only whole images of that size are
        accepted then). Each scale's evidence is a ratio of powers in its own band; in the raw field
        the bands of fine scales hold a tiny fraction of the energy, and the finest head of a 1-D
        dataset (19 vs 20 px at 2048 px) stayed at chance for 90 epochs whatever the learning rate,
        width or head depth, while with the whitened field it reached 0.98 (the oracle: 1.00).
    padding : ``circular`` (the default: the fields are periodic, so every position sees a piece
        of the same stationary field) or ``zeros`` (for crops, which are not periodic). With zero
        padding the field's jump to zero at the border is high-frequency energy of the size of the
        coarse components, and it buried the finest scale's evidence: the finest head of the
        default dataset stayed at chance for 16 of 16 epochs with zero padding (seed 0).

    Notes
    -----
    The backbone has no normalisation layers; the only batch statistics are those of the logits,
    taken over the global batch in a distributed run, so splitting a batch across processes does
    not change the computation. :meth:`calibrate` replaces their running averages by the exact
    statistics of a set of images before evaluation.
    """

    def __init__(self, ndim: int, n_choices: int, head_stages: Sequence[int], *, width: int = 16,
                 max_width: int = 64, mask_prob: float | Sequence[float] | None = None,
                 input_std: float = 1.0, generators: Sequence[torch.Generator] | None = None,
                 topology: str = "heads", mask_block: int | Sequence[int | None] | None = None,
                 padding: str = "circular", features: str = "log", whiten_size: int | None = None,
                 mask_scope: str = "sample"):
        super().__init__()
        if ndim not in _CONV:
            raise ValueError(f"ndim must be 1, 2 or 3, but got {ndim}")
        if n_choices < 2:
            raise ValueError(f"n_choices must be at least 2, but got {n_choices}")
        if width < 1 or max_width < width:
            raise ValueError(f"need 1 <= width <= max_width, but got width={width}, max_width={max_width}")
        if not (input_std > 0 and math.isfinite(input_std)):
            raise ValueError(f"input_std must be a positive number, but got {input_std}")
        if features not in ("log", "linear"):
            raise ValueError(f"features must be 'log' or 'linear', but got {features!r}")
        if padding not in PADDINGS:
            raise ValueError(f"padding must be one of {', '.join(PADDINGS)}, but got {padding!r}")
        if topology not in TOPOLOGIES:
            raise ValueError(f"topology must be one of {', '.join(TOPOLOGIES)}, but got {topology!r}")
        if mask_scope not in MASK_SCOPES:
            raise ValueError(f"mask_scope must be one of {', '.join(MASK_SCOPES)}, but got {mask_scope!r}")
        head_stages = check_head_stages(head_stages, topology)
        n_heads = len(head_stages)
        blocks = (None,) * n_heads
        if mask_prob is not None:
            probs = (float(mask_prob),) * n_heads if isinstance(mask_prob, (int, float)) else tuple(map(float, mask_prob))
            if len(probs) != n_heads:
                raise ValueError(f"got {len(probs)} mask probabilities for {n_heads} heads")
            if generators is not None and len(generators) != n_heads:
                raise ValueError(f"got {len(generators)} generators for {n_heads} heads")
            if mask_block is not None:
                blocks = (mask_block,) * n_heads if isinstance(mask_block, int) else tuple(mask_block)
                if len(blocks) != n_heads:
                    raise ValueError(f"got {len(blocks)} mask block sizes for {n_heads} heads")
                blocks = tuple(None if b is None or check_block_size(b) == 1 else b for b in blocks)
        elif generators is not None:
            raise ValueError("generators are only used with backdrop (mask_prob is None)")
        elif mask_block is not None:
            raise ValueError("mask_block is only used with backdrop (mask_prob is None)")
        self.ndim, self.n_choices, self.head_stages = ndim, n_choices, head_stages
        self.width, self.max_width, self.input_std = width, max_width, float(input_std)
        self.mask_prob = None if mask_prob is None else probs
        self.topology, self.mask_block, self.padding, self.features = topology, blocks, padding, features
        self.mask_scope = mask_scope
        self.whitening = None if whiten_size is None else SpectralWhitening(ndim, int(whiten_size))

        conv = _CONV[ndim]

        def block(c_in, c_out, stride):
            return [conv(c_in, c_out, 3, stride=stride, padding=1, padding_mode=padding), nn.ReLU(inplace=True)]

        def mask(s):
            # One mask value per position, shared by the channels; per sample, or shared by the batch.
            if mask_prob is None:
                return nn.Identity()
            positions = tuple(range(-ndim, 0))
            return Backdrop(probs[s], dims=(0,) + positions if mask_scope == "sample" else positions, block=blocks[s],
                            generator=None if generators is None else generators[s])

        def classifier(c_in, n_out):
            if features == "log":
                return [LogPool(), BatchStandardize(c_in), nn.Linear(c_in, n_out)]
            return [conv(c_in, n_out, 1, bias=False),  # a bias would be removed by the standardisation
                    _POOL[ndim](1), nn.Flatten(), BatchStandardize(n_out)]

        channels = [width] + [min(width * 2**k, max_width) for k in range(1, max(head_stages) + 1)]
        self.stem = nn.Sequential(*block(1 if whiten_size is None else 2, width, 1))
        self.stages = nn.ModuleList(
            nn.Sequential(*block(channels[k - 1], channels[k], 2), *block(channels[k], channels[k], 1))
            for k in range(1, len(channels)))
        if topology == "heads":
            self.heads = nn.ModuleList(nn.Sequential(mask(s), *classifier(channels[k], n_choices))
                                       for s, k in enumerate(head_stages))
        else:
            self.masks = nn.ModuleList(mask(s) for s in range(n_heads))
            self.classifier = nn.Sequential(*classifier(channels[-1], n_heads * n_choices))
        for m in self.modules():
            if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        choices = torch.from_numpy(choices_of(np.arange(n_choices**n_heads), n_heads, n_choices))
        self.register_buffer("_choices", choices, persistent=False)

    @classmethod
    def from_spec(cls, spec, *, rf_factor: float = RF_FACTOR, head_stages: Sequence[int] | None = None,
                  whiten: bool = False, **kwargs) -> "MultiScaleNet":
        """The network for an msgp :class:`~msgp.spec.DatasetSpec`: heads placed by
        :func:`place_heads` unless ``head_stages`` is given; inputs scaled by the data's
        theoretical standard deviation ``sqrt(sum_s a_s**2 + noise**2)``; with ``whiten``, a second
        input channel whitened by the data's mean spectrum (:func:`whitening_gain`)."""
        stages = place_heads(spec.length_scales, spec.size, rf_factor) if head_stages is None else head_stages
        std = math.sqrt(sum(a * a for a in spec.amplitudes) + spec.noise**2)
        model = cls(spec.ndim, spec.n_choices, stages, input_std=std, whiten_size=spec.size if whiten else None,
                    **kwargs)
        if whiten:
            model.whitening.gain.copy_(torch.from_numpy(whitening_gain(spec)))
        return model

    @property
    def n_scales(self) -> int:
        return len(self.head_stages)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(batch, n_scales, n_choices)`` of fields ``(batch, 1, *spatial)``."""
        inputs = x / self.input_std
        if self.whitening is not None:
            inputs = torch.cat([inputs, self.whitening(x).to(inputs.dtype)], dim=1)
        x = self.stem(inputs)
        if self.topology == "series":
            masks = dict(zip(self.head_stages, self.masks))
            for k, stage in enumerate(self.stages, start=1):
                x = stage(x)
                if k in masks:
                    x = masks[k](x)
            return self.classifier(x).view(len(x), self.n_scales, self.n_choices)
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return torch.stack([head(features[k - 1]) for head, k in zip(self.heads, self.head_stages)], dim=1)

    @torch.no_grad()
    def calibrate(self, batches) -> None:
        """Set the logit standardisations' running mean and variance to the exact statistics of the
        images in ``batches`` (an iterable of input tensors), computed in eval mode: the mean and
        the biased variance (divided by the number of images), the estimator a training batch is
        normalised with, so that the calibrated network gives those images the logits a training
        step would give them as one batch.

        The running averages trail the weights while they still move (momentum 0.1 over the last
        steps of a high learning rate), which made test accuracy swing from epoch to epoch;
        the statistics of the final weights on the training images do not. Under
        ``torch.distributed`` the sums are taken over every rank's batches.
        """
        layers = [m for m in self.modules() if isinstance(m, BatchStandardize)]
        sums = {m: None for m in layers}

        def record(module, args):
            x = args[0].double()
            part = torch.cat([x.sum(0), (x * x).sum(0), x.new_tensor([len(x)])])
            sums[module] = part if sums[module] is None else sums[module] + part

        hooks = [m.register_forward_pre_hook(record) for m in layers]
        was_training = self.training
        self.eval()
        try:
            for x in batches:
                self(x)
        finally:
            for h in hooks:
                h.remove()
            self.train(was_training)
        for m in layers:
            if sums[m] is None:
                continue
            total = sums[m]
            if dist.is_initialized() and dist.get_world_size() > 1:
                dist.all_reduce(total)
            n = total[-1]
            mean = total[:m.num_features] / n
            var = total[m.num_features:-1] / n - mean**2
            m.running_mean.copy_(mean.to(m.running_mean.dtype))
            m.running_var.copy_(var.clamp_min(0).to(m.running_var.dtype))

    def scale_losses(self, logits: torch.Tensor, choices: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of each scale, ``(n_scales,)``, averaged over the batch; the training loss is
        their sum."""
        return F.cross_entropy(logits.transpose(1, 2), choices, reduction="none").mean(0)

    def joint_log_probs(self, logits: torch.Tensor) -> torch.Tensor:
        """Log-probability ``(batch, n_choices**n_scales)`` of each joint class
        ``label = sum_s choice_s * M**s``: the sum of the per-scale log-probabilities."""
        logp = F.log_softmax(logits, dim=-1)
        return logp[:, torch.arange(self.n_scales, device=logits.device), self._choices].sum(-1)

    def extra_repr(self) -> str:
        backdrop = "off" if self.mask_prob is None else "mask_prob=" + ",".join(f"{p:g}" for p in self.mask_prob)
        if any(b is not None for b in self.mask_block):
            backdrop += ", mask_block=" + ",".join(str(b or 1) for b in self.mask_block)
        if self.mask_prob is not None and self.mask_scope != "sample":
            backdrop += f", mask_scope={self.mask_scope}"
        return (f"ndim={self.ndim}, n_choices={self.n_choices}, topology={self.topology}, padding={self.padding}, "
                f"head_stages={self.head_stages}, "
                f"receptive_fields={tuple(receptive_field(k) for k in self.head_stages)}, "
                f"input_std={self.input_std:.4g}, whiten={self.whitening is not None}, backdrop {backdrop}")

    def config(self) -> dict:
        """The constructor arguments (without generators), to rebuild the network from a checkpoint."""
        return {"ndim": self.ndim, "n_choices": self.n_choices, "head_stages": list(self.head_stages),
                "width": self.width, "max_width": self.max_width, "input_std": self.input_std,
                "mask_prob": None if self.mask_prob is None else list(self.mask_prob),
                "topology": self.topology, "padding": self.padding, "features": self.features,
                "mask_block": None if self.mask_prob is None else list(self.mask_block),
                "mask_scope": self.mask_scope,
                "whiten_size": None if self.whitening is None else self.whitening.size}
