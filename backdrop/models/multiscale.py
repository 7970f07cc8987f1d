"""A fully convolutional multi-scale classifier, with backdrop masks at the depths of the scales.

The backbone is a stem convolution followed by stride-2 stages; scale ``s`` is tied to the stage
whose receptive field best matches its length scales (see :func:`~backdrop.models.place_heads`).
Two topologies:

* ``heads`` (default): one classifier head per scale reads its stage, behind its own backdrop
  layer, so each scale's gradient is masked where that scale's features live;
* ``series`` (the 2018 paper's): one trunk with a backdrop layer after each scale's stage, finest
  first, and one classifier at the end; the gradient reaching a stage has passed every mask
  deeper than it, so the early layers see the product of all the masks.

:class:`MultiScaleNet` is put together from small builders: :class:`ScaleMasks` (each scale's
backdrop layer), :func:`backbone` (the stem and the stages) and :func:`classifier` (a head's
pooling, standardisation and logits).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn import functional as F

from msgp.spec import choices_of

from ..functional import check_block_size, layout_dims
from ..layer import Backdrop
from .parts import (RF_FACTOR, BatchStandardize, LogPool, ModelError, SpectralWhitening, check_head_stages,
                    place_heads, receptive_field, whitening_gain)

# Where the masks sit: one head per scale behind its own mask, or the masks in series along one trunk.
TOPOLOGIES = ("heads", "series")
# What a mask covers: each sample its own, or one shared by the batch (the 2018 reference's).
MASK_SCOPES = ("sample", "batch")
# The convolutions' padding: periodic, as the fields are, or zeros, for crops.
PADDINGS = ("circular", "zeros")
# A classifier's input: the log of each channel's mean energy, or a linear read-out of the channels.
FEATURES = ("log", "linear")

_CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
_POOL = {1: nn.AdaptiveAvgPool1d, 2: nn.AdaptiveAvgPool2d, 3: nn.AdaptiveAvgPool3d}


@dataclass(frozen=True)
class ScaleMasks:
    """The backdrop layer of each scale: its mask probability, block size and generator.

    ``probs`` is ``None`` without backdrop (every scale's layer is ``nn.Identity``); ``blocks``
    holds ``None`` for single positions. Build it with :meth:`of`, which checks the arguments.
    """

    ndim: int
    scope: str
    probs: tuple[float, ...] | None
    blocks: tuple[int | None, ...]
    generators: Sequence[torch.Generator] | None = None

    @classmethod
    def of(cls, ndim: int, n_heads: int, mask_prob: float | Sequence[float] | None,
           generators: Sequence[torch.Generator] | None, mask_block: int | Sequence[int | None] | None,
           scope: str) -> "ScaleMasks":
        """The masks :class:`MultiScaleNet`'s arguments describe, one per head, or a
        :class:`~backdrop.models.ModelError`."""
        if mask_prob is None:
            if generators is not None:
                raise ModelError("generators are only used with backdrop (mask_prob is None)")
            if mask_block is not None:
                raise ModelError("mask_block is only used with backdrop (mask_prob is None)")
            return cls(ndim, scope, None, (None,) * n_heads)
        probs = (float(mask_prob),) * n_heads if isinstance(mask_prob, (int, float)) else tuple(map(float, mask_prob))
        if len(probs) != n_heads:
            raise ModelError(f"got {len(probs)} mask probabilities for {n_heads} heads")
        if generators is not None and len(generators) != n_heads:
            raise ModelError(f"got {len(generators)} generators for {n_heads} heads")
        blocks = (None,) * n_heads
        if mask_block is not None:
            blocks = (mask_block,) * n_heads if isinstance(mask_block, int) else tuple(mask_block)
            if len(blocks) != n_heads:
                raise ModelError(f"got {len(blocks)} mask block sizes for {n_heads} heads")
            blocks = tuple(None if b is None or check_block_size(b) == 1 else b for b in blocks)
        return cls(ndim, scope, probs, blocks, generators)

    def layer(self, s: int) -> nn.Module:
        """Scale ``s``'s layer: one mask value per position, shared by the channels; per sample
        (the layer's default layout, :func:`~backdrop.functional.layout_dims`), or one shared by
        the batch (the positions alone)."""
        if self.probs is None:
            return nn.Identity()
        dims = layout_dims(self.ndim + 2)
        return Backdrop(self.probs[s], dims=dims if self.scope == "sample" else dims[1:], block=self.blocks[s],
                        generator=None if self.generators is None else self.generators[s])


def stage_channels(width: int, max_width: int, stages: int) -> list[int]:
    """Channels of the stem and of stages 1 to ``stages``: ``min(width * 2**k, max_width)``."""
    return [width] + [min(width * 2**k, max_width) for k in range(1, stages + 1)]


def conv_block(ndim: int, c_in: int, c_out: int, stride: int, padding: str) -> list[nn.Module]:
    """A 3-wide convolution and its ReLU."""
    return [_CONV[ndim](c_in, c_out, 3, stride=stride, padding=1, padding_mode=padding), nn.ReLU(inplace=True)]


def backbone(ndim: int, channels: Sequence[int], padding: str, in_channels: int = 1
             ) -> tuple[nn.Sequential, nn.ModuleList]:
    """The stem (one convolution) and the stages (each a stride-2 and a stride-1 convolution) of
    :func:`stage_channels`' ``channels``."""
    stem = nn.Sequential(*conv_block(ndim, in_channels, channels[0], 1, padding))
    stages = nn.ModuleList(
        nn.Sequential(*conv_block(ndim, channels[k - 1], channels[k], 2, padding),
                      *conv_block(ndim, channels[k], channels[k], 1, padding))
        for k in range(1, len(channels)))
    return stem, stages


def classifier(ndim: int, features: str, c_in: int, n_out: int) -> list[nn.Module]:
    """``n_out`` standardised logits of a ``c_in``-channel feature map: ``log`` features
    (:class:`~backdrop.models.LogPool`, standardised, a linear layer) or ``linear`` ones (a 1x1
    convolution, a global average, standardised)."""
    if features == "log":
        return [LogPool(), BatchStandardize(c_in), nn.Linear(c_in, n_out)]
    return [_CONV[ndim](c_in, n_out, 1, bias=False),  # a bias would be removed by the standardisation
            _POOL[ndim](1), nn.Flatten(), BatchStandardize(n_out)]


def init_convolutions(module: nn.Module) -> None:
    """He-normal weights and zero biases for every convolution of ``module``, in module order."""
    for m in module.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def _check_arguments(ndim: int, n_choices: int, width: int, max_width: int, input_std: float,
                     features: str, padding: str, topology: str, mask_scope: str) -> None:
    if ndim not in _CONV:
        raise ModelError(f"ndim must be 1, 2 or 3, but got {ndim}")
    if n_choices < 2:
        raise ModelError(f"n_choices must be at least 2, but got {n_choices}")
    if width < 1 or max_width < width:
        raise ModelError(f"need 1 <= width <= max_width, but got width={width}, max_width={max_width}")
    if not (input_std > 0 and math.isfinite(input_std)):
        raise ModelError(f"input_std must be a positive number, but got {input_std}")
    if features not in FEATURES:
        raise ModelError(f"features must be 'log' or 'linear', but got {features!r}")
    for name, value, allowed in (("padding", padding, PADDINGS), ("topology", topology, TOPOLOGIES),
                                 ("mask_scope", mask_scope, MASK_SCOPES)):
        if value not in allowed:
            raise ModelError(f"{name} must be one of {', '.join(allowed)}, but got {value!r}")


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
    coarser components' energy, which log features separate and linear ones did not (the
    measurements behind this, the whitened channel and the padding: docs/training.md).

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
        the bands of fine scales hold a tiny fraction of the energy.
    padding : ``circular`` (the default: the fields are periodic, so every position sees a piece
        of the same stationary field) or ``zeros`` (for crops, which are not periodic). With zero
        padding the field's jump to zero at the border is high-frequency energy of the size of the
        coarse components, which buries the finest scale's evidence.

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
        _check_arguments(ndim, n_choices, width, max_width, input_std, features, padding, topology, mask_scope)
        head_stages = check_head_stages(head_stages, topology)
        n_heads = len(head_stages)
        masks = ScaleMasks.of(ndim, n_heads, mask_prob, generators, mask_block, mask_scope)
        self.ndim, self.n_choices, self.head_stages = ndim, n_choices, head_stages
        self.width, self.max_width, self.input_std = width, max_width, float(input_std)
        self.mask_prob, self.mask_block, self.mask_scope = masks.probs, masks.blocks, mask_scope
        self.topology, self.padding, self.features = topology, padding, features
        # The modules are made in this order, which the random initialisation (and so every trained
        # result) and the state_dict's keys follow.
        self.whitening = None if whiten_size is None else SpectralWhitening(ndim, int(whiten_size))
        channels = stage_channels(width, max_width, max(head_stages))
        self.stem, self.stages = backbone(ndim, channels, padding, 1 if whiten_size is None else 2)
        if topology == "heads":
            self.heads = nn.ModuleList(
                nn.Sequential(masks.layer(s), *classifier(ndim, features, channels[k], n_choices))
                for s, k in enumerate(head_stages))
        else:
            self.masks = nn.ModuleList(masks.layer(s) for s in range(n_heads))
            self.classifier = nn.Sequential(*classifier(ndim, features, channels[-1], n_heads * n_choices))
        init_convolutions(self)
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
