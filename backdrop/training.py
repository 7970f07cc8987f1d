"""Training and evaluating :class:`~backdrop.models.MultiScaleNet` on an msgp dataset.

One function trains (:func:`train`), one evaluates a finished run (:func:`evaluate`). Both work in
one process or under ``torch.distributed`` (DistributedDataParallel with a DistributedSampler;
rank 0 alone writes files). They never print: progress goes to a callback.

Determinism. Every random stream is explicit and derived from ``config.seed`` with
:class:`numpy.random.SeedSequence` spawn keys: the weight initialisation, the shuffling (a
DistributedSampler whose order is a function of ``(seed, epoch)``), the crop offsets (one
``torch.Generator`` drawing the offsets of the whole global batch on every rank, each rank keeping
its own samples' rows) and the backdrop masks (one ``torch.Generator`` per head, the same on every
rank). The
checkpoint stores the generator states, the position inside the epoch and the running sums, so a
resumed run repeats an uninterrupted one exactly on CPU.

Distributed runs with ``W`` processes and global batch ``B`` see the same batches as one process:
rank ``r`` takes batch positions ``r, r + W, ...``, the DistributedSampler's interleaving, and the
gradient is averaged over ranks. Each backdrop layer draws the mask of the whole global batch on
every rank (the masks are per sample, so this is the one-process mask) and keeps its own rows
(:class:`_GlobalMasks`). The result matches one process up to the order of float reductions.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.nn import functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler

from msgp import io, oracle
from msgp.plotting import PlotUnavailable, pyplot

from .functional import draw_mask
from .layer import Backdrop
from msgp.dataset import GeneratedDataset, MSGPDataset, split
from msgp.spec import DatasetSpec

from .models import RF_FACTOR, TOPOLOGIES, MultiScaleNet

CHECKPOINT_FORMAT = "msgp-train-checkpoint"
CHECKPOINT_VERSION = 1
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("fp32", "tf32", "bf16")
# Spawn keys of the random streams derived from the seed.
_INIT, _SHUFFLE, _CROP, _BACKDROP, _AUGMENT = range(5)

Progress = Callable[[str, dict], None]


class TrainingError(RuntimeError):
    """Training cannot go on (a NaN or infinite loss); the message is one line for the user."""


class Interrupted(RuntimeError):
    """Training stopped on request after saving a checkpoint to resume from."""


class CheckpointError(ValueError):
    """A checkpoint or run directory that cannot be used; the message is one line for the user."""


class IncompatibleDataError(ValueError):
    """A dataset whose distribution differs from the one a network was trained on."""


@dataclass
class TrainConfig:
    """Every setting of a training run.

    Parameters
    ----------
    data : the msgp file to train on, or a dataset description (a :class:`~msgp.spec.DatasetSpec`,
        kept as the dict of its fields) whose samples are generated as they are read: the same
        samples, subsets and results as from the file ``msgp generate`` writes for it.
    backdrop : put a Backdrop layer at every scale's depth (off: plain full gradient).
    mask_prob : backdrop mask probability, one value for every scale or one per scale.
    mask_block : side of the square blocks of positions each scale's mask keeps or drops together
        (one value, or one per scale; 1: single positions).
    topology : ``heads`` (one head per scale, each behind its own mask) or ``series`` (the masks
        in series along one trunk, one classifier at the end); see :class:`MultiScaleNet`.
    augment : apply a random symmetry of the data to every training image at every step: a
        periodic shift and one of the ``2**ndim * ndim!`` axis permutations and flips (the eight
        rotations and reflections of a square in 2-D). The fields are stationary and isotropic
        on a torus, so each is an exact symmetry of the distribution.
    crop : train on random crops of this side (``(size // crop)**ndim`` crops per image, so a step
        sees as many pixels as with whole images) and test on whole images; ``None`` for whole images.
    n_train, n_test : class-balanced, disjoint train and test subsets drawn from ``data``.
    test_data : draw the test samples from this compatible file (or description) instead of ``data``.
    epochs : passes over the training subset.
    batch_size : global batch, in images (divided among the processes of a distributed run).
    lr : peak learning rate of AdamW: a linear warm-up from zero over the first ``warmup``
        fraction of the steps, then a cosine decay to zero (:func:`learning_rate`).
    warmup : fraction of the steps spent warming up, in [0, 1).
    weight_decay : AdamW's decoupled weight decay.
    clip_grad : clip the gradient's global norm to this before each step; ``None``: no clipping.
    eval_every : score the test set after every ``eval_every`` epochs, and always after the last;
        0: after the last epoch only.
    device : ``auto`` (CUDA if available), ``cpu`` or ``cuda``.
    precision : arithmetic of the training steps, ``fp32``, ``tf32`` or ``bf16`` (see
        :func:`precision_context`); calibration and test scoring always run in float32.
    seed : root of every random stream (subsets, initialisation, shuffling, crops, masks).
    width : channels of the network's stem (see :class:`MultiScaleNet`).
    head_stages : the backbone stage of each scale's head; ``None`` places them by
        :func:`~backdrop.models.place_heads` with ``rf_factor``.
    rf_factor : receptive field wanted for a head, in units of its scale's length scale.
    eval_batch_size : images per forward pass at test time.
    """

    data: str = str(io.DEFAULT_PATH)
    backdrop: bool = True
    mask_prob: float | tuple[float, ...] = 0.5
    mask_block: int | tuple[int, ...] = 1
    topology: str = "heads"
    augment: bool = False
    crop: int | None = None
    n_train: int = 512
    n_test: int = 512
    test_data: str | None = None
    epochs: int = 30
    batch_size: int = 16
    lr: float = 2e-3
    warmup: float = 0.1
    weight_decay: float = 0.0
    clip_grad: float | None = 1.0
    eval_every: int = 1
    device: str = "auto"
    precision: str = "fp32"
    seed: int = 0
    width: int = 16
    head_stages: tuple[int, ...] | None = None
    rf_factor: float = RF_FACTOR
    eval_batch_size: int = 64

    def __post_init__(self):
        self.data = _data_source(self.data)
        self.test_data = None if self.test_data is None else _data_source(self.test_data)
        if isinstance(self.mask_prob, (list, tuple)):
            self.mask_prob = tuple(float(p) for p in self.mask_prob)
        else:
            self.mask_prob = float(self.mask_prob)
        if isinstance(self.mask_block, (list, tuple)):
            self.mask_block = tuple(self.mask_block)
        if self.head_stages is not None:
            self.head_stages = tuple(int(k) for k in self.head_stages)
        blocks = self.mask_block if isinstance(self.mask_block, tuple) else (self.mask_block,)
        for b in blocks:
            if isinstance(b, bool) or not isinstance(b, int) or b < 1:
                raise ValueError(f"mask_block must be a positive integer, but got {b}")
        if self.topology not in TOPOLOGIES:
            raise ValueError(f"topology must be one of {', '.join(TOPOLOGIES)}, but got {self.topology!r}")
        if not 0.0 <= self.warmup < 1.0:
            raise ValueError(f"warmup must be a fraction of the steps in [0, 1), but got {self.warmup:g}")
        if not (self.weight_decay >= 0 and math.isfinite(self.weight_decay)):
            raise ValueError(f"weight_decay must be a non-negative number, but got {self.weight_decay}")
        if self.clip_grad is not None and not (self.clip_grad > 0 and math.isfinite(self.clip_grad)):
            raise ValueError(f"clip_grad must be a positive number, but got {self.clip_grad}")
        if isinstance(self.eval_every, bool) or not isinstance(self.eval_every, int) or self.eval_every < 0:
            raise ValueError(f"eval_every must be a non-negative integer, but got {self.eval_every}")
        probs = self.mask_prob if isinstance(self.mask_prob, tuple) else (self.mask_prob,)
        for p in probs:
            if not 0.0 <= p < 1.0:
                raise ValueError(f"mask_prob must be in [0, 1), but got {p:g}")
        for name in ("n_train", "epochs", "batch_size", "width", "eval_batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, but got {value}")
        if not isinstance(self.n_test, int) or self.n_test < 1:
            raise ValueError(f"n_test must be a positive integer, but got {self.n_test}")
        if self.batch_size > self.n_train:
            raise ValueError(f"batch_size ({self.batch_size}) must not exceed n_train ({self.n_train})")
        if self.crop is not None and (not isinstance(self.crop, int) or self.crop < 2):
            raise ValueError(f"crop must be an integer of at least 2 pixels, but got {self.crop}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be a positive number, but got {self.lr}")
        if self.device not in DEVICES:
            raise ValueError(f"device must be one of {', '.join(DEVICES)}, but got {self.device!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, but got {self.precision!r}")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, but got {self.seed}")
        if not (self.rf_factor > 0 and math.isfinite(self.rf_factor)):
            raise ValueError(f"rf_factor must be a positive number, but got {self.rf_factor}")

    @property
    def method(self) -> str:
        """``backdrop``, ``backdrop-series``, ``no-backdrop``, ``augment`` or ``crop-<side>``, joined
        by ``+`` where several apply (``augment+backdrop``)."""
        parts = [f"crop-{self.crop}"] if self.crop is not None else []
        if self.augment:
            parts.append("augment")
        if self.backdrop:
            parts.append("backdrop" + ("-series" if self.topology == "series" else ""))
        elif not parts:
            parts.append("no-backdrop" if self.topology == "heads" else "series")
        return "+".join(parts)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        for key in ("mask_prob", "mask_block", "head_stages"):
            if isinstance(d[key], tuple):
                d[key] = list(d[key])
        return d

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})


# Helpers shared by train and evaluate --------------------------------------------------------------

def _seed(root: int, *key: int) -> int:
    """A 63-bit seed for the stream ``key`` of the root seed."""
    return int(np.random.SeedSequence(root, spawn_key=key).generate_state(1, np.uint64)[0] >> np.uint64(1))


def _generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(seed)
    return g


def resolve_device(device: str) -> torch.device:
    """``auto`` means CUDA when available; ranks of a distributed CUDA run use ``LOCAL_RANK``."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("device 'cuda' was asked for, but CUDA is not available")
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device("cpu")


@contextlib.contextmanager
def precision_context(precision: str, device: torch.device, autocast: bool = True):
    """Run the enclosed operations on ``device`` at ``precision``.

    Parameters
    ----------
    precision : ``fp32``: IEEE float32 throughout (on CUDA this also turns off the TF32
        convolutions torch allows by default); ``tf32``: CUDA matrix products and convolutions in
        TensorFloat-32 (10-bit mantissa), everything else in float32, so on CPU it is ``fp32``;
        ``bf16``: ``torch.autocast`` to bfloat16 (the weights, the optimiser and the operations
        autocast keeps in float32 stay float32; bfloat16's range needs no loss scaling).
    device : where the operations run.
    autocast : enter ``torch.autocast`` for ``bf16``; false around a backward pass, which runs
        each operation in the dtype its forward used.

    The TF32 switches are process-wide in torch: they are set on entry and restored on exit.
    """
    switches = _tf32_switches() if device.type == "cuda" else []
    saved = [getattr(owner, name) for owner, name, _ in switches]
    try:
        for owner, name, values in switches:
            setattr(owner, name, values[precision == "tf32"])
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast and precision == "bf16"):
            yield
    finally:
        for (owner, name, _), value in zip(switches, saved):
            setattr(owner, name, value)


def _tf32_switches() -> list[tuple[Any, str, tuple[Any, Any]]]:
    """``(owner, attribute, (off, on))`` of torch's TF32 switches for CUDA matmuls and cuDNN.

    Torch 2.9 added per-backend ``fp32_precision`` settings and deprecated ``allow_tf32``; it
    refuses to read a switch whose two APIs disagree, so only one API is ever written: the new
    one where it exists, for convolutions and RNNs alike (torch also checks those two agree).
    """
    cuda, cudnn = torch.backends.cuda, torch.backends.cudnn
    if hasattr(cudnn, "conv") and hasattr(cudnn.conv, "fp32_precision"):
        return [(cuda.matmul, "fp32_precision", ("ieee", "tf32")),
                (cudnn.conv, "fp32_precision", ("ieee", "tf32")),
                (cudnn.rnn, "fp32_precision", ("ieee", "tf32"))]
    return [(cuda.matmul, "allow_tf32", (False, True)), (cudnn, "allow_tf32", (False, True))]


def init_distributed(device: str = "auto") -> bool:
    """Join the process group described by torchrun's environment (``WORLD_SIZE`` > 1).

    Uses nccl for CUDA and gloo for CPU. Returns whether a process group is now initialised.
    """
    if dist.is_initialized():
        return True
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    cuda = resolve_device(device).type == "cuda"
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    dist.init_process_group("nccl" if cuda else "gloo")
    return True


def _world() -> tuple[int, int]:
    return (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)


def _all_sum(tensor: torch.Tensor) -> torch.Tensor:
    if dist.is_initialized():
        dist.all_reduce(tensor)
    return tensor


@dataclass
class _Data:
    spec: Any
    fields: torch.Tensor  # (n, 1, *shape) float32
    choices: torch.Tensor  # (n, K) int64
    indices: np.ndarray  # sample numbers in the file

    @property
    def labels(self) -> np.ndarray:
        return self.spec.labels(self.choices.numpy())


def _load(dataset: MSGPDataset | GeneratedDataset) -> _Data:
    """All samples of a subset in memory: a few hundred images, read once instead of every epoch.
    The per-scale choices come from the subset's labels, whatever its ``target``."""
    loader = torch.utils.data.DataLoader(dataset, batch_size=256)
    fields = torch.cat([x.float() for x, _ in loader])
    choices = torch.from_numpy(dataset.spec.choices(np.asarray(dataset.labels)).astype(np.int64))
    return _Data(dataset.spec, fields, choices, np.asarray(dataset.indices))


def _data_source(value) -> str | dict[str, Any]:
    """A file's path as a string, or a dataset description as the dict of its (checked) fields, the
    form that config.json stores and a resumed run compares."""
    if isinstance(value, DatasetSpec):
        return value.to_dict()
    if isinstance(value, dict):
        try:
            return DatasetSpec(**value).to_dict()
        except TypeError as err:
            raise ValueError(f"invalid dataset description: {err}") from None
    return str(value)


def _open(source: str | os.PathLike | dict[str, Any]) -> MSGPDataset | GeneratedDataset:
    """The dataset a config names: an msgp file, or a description to generate the samples of."""
    if isinstance(source, dict):
        return GeneratedDataset(DatasetSpec(**source), target="scales")
    if not Path(source).exists():
        raise io.FormatError(f"{source} does not exist; run `msgp generate` first to create a dataset")
    return MSGPDataset(source, target="scales")


def check_compatible(trained, other, what: str = "dataset") -> None:
    """Refuse data whose distribution differs from the training data's (seed and n may differ)."""
    a, b = trained.statistics(), other.statistics()
    different = [k for k in a if a[k] != b.get(k)]
    if different:
        details = ", ".join(f"{k} {b.get(k)} (trained on {a[k]})" for k in different)
        raise IncompatibleDataError(f"the {what} has other parameters than the training data: {details}")


def _subsets(config: TrainConfig) -> tuple[MSGPDataset | GeneratedDataset, MSGPDataset | GeneratedDataset]:
    data = _open(config.data)
    if config.test_data is None:
        return split(data, config.n_train, config.n_test, seed=config.seed)
    test_file = _open(config.test_data)
    check_compatible(data.spec, test_file.spec, "test data")
    if test_file.spec.seed == data.spec.seed:
        raise IncompatibleDataError(
            f"the test data have the training data's seed ({data.spec.seed}), so sample i is the same image in "
            "both and the test would score training samples; generate the test data with another --seed")
    train_set, _ = split(data, config.n_train, 0, seed=config.seed)
    _, test_set = split(test_file, 0, config.n_test, seed=config.seed)
    return train_set, test_set


def _accuracies(correct: torch.Tensor, count: float) -> dict[str, Any]:
    """``{"joint": p, "scales": [p_0, ...]}`` from counts ``(K + 1,)``: per scale, then joint."""
    values = (correct / max(count, 1.0)).tolist()
    return {"joint": values[-1], "scales": values[:-1]}


@torch.no_grad()
def _predict(model: MultiScaleNet, fields: torch.Tensor, device: torch.device, batch_size: int,
             crop: int | None = None) -> torch.Tensor:
    """Logits ``(n, K, M)`` of whole images, in eval mode (no masks).

    A network trained on crops (``crop``) scores a whole image as the mean of the per-scale
    log-probabilities of its ``(size // crop)**ndim`` tiles: fed the whole image at once, its zero
    padding would cover a smaller fraction of the field than in training and shift the pooled
    features past its standardisation statistics (measured: every test image of the default
    dataset given one class at scale 0, against 0.60 train accuracy on crops).
    """
    was_training = model.training
    model.eval()
    out = []
    for x in _eval_inputs(fields, device, batch_size, crop):
        if crop is None:
            out.append(model(x).float().cpu())
            continue
        log_probs = F.log_softmax(model(x).float().cpu(), dim=-1)
        tiles = (fields.shape[-1] // crop) ** (fields.ndim - 2)
        out.append(log_probs.view(-1, tiles, *log_probs.shape[1:]).mean(1))
    model.train(was_training)
    return torch.cat(out) if out else torch.zeros(0, model.n_scales, model.n_choices)


def _eval_inputs(fields: torch.Tensor, device: torch.device, batch_size: int, crop: int | None = None):
    """The network's inputs at test time, ``batch_size`` images at a time: whole images, or the
    ``(size // crop)**ndim`` tiles of each image for a network trained on crops."""
    if crop is not None:
        size, ndim = fields.shape[-1], fields.ndim - 2
        corners = torch.cartesian_prod(*[torch.arange(0, size - crop + 1, crop)] * ndim).view(1, -1, ndim)
    for i in range(0, len(fields), batch_size):
        x = fields[i:i + batch_size]
        if crop is not None:
            x = take_crops(x, corners.expand(len(x), -1, -1), crop)
        yield x.to(device)


def calibrate(model: MultiScaleNet, data: _Data, device: torch.device, batch_size: int,
              crop: int | None = None) -> None:
    """Fit the logit standardisation to the current weights on the training images (each rank
    its own slice), as :meth:`MultiScaleNet.calibrate` explains; called before every evaluation."""
    rank, world = _world()
    model.calibrate(_eval_inputs(data.fields[rank::world], device, batch_size, crop))


def learning_rate(step: int, total_steps: int, peak: float, warmup: float) -> float:
    """The learning rate of step ``step`` (from 0) of ``total_steps``: a linear warm-up from
    ``peak / w`` to ``peak`` over the first ``w = round(warmup * total_steps)`` steps, then a cosine
    decay from ``peak`` towards zero over the rest (a one-cycle schedule).

    A function of the step alone, so a resumed run needs nothing saved; resumed with another
    ``--epochs`` the schedule stretches over the new total.
    """
    warm = round(warmup * total_steps)
    if step < warm:
        return peak * (step + 1) / warm
    return 0.5 * peak * (1.0 + math.cos(math.pi * (step - warm) / max(total_steps - warm, 1)))


def draw_symmetries(batch: int, ndim: int, size: int, generator: torch.Generator
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``batch`` random symmetries of a stationary, isotropic field on a ``size**ndim`` torus:
    an axis permutation ``(batch, ndim)``, a flip of each axis with probability 1/2 ``(batch,
    ndim)`` and a periodic shift uniform over the grid ``(batch, ndim)``; see :func:`apply_symmetries`."""
    axes = torch.argsort(torch.rand(batch, ndim, generator=generator), dim=1)
    flips = torch.rand(batch, ndim, generator=generator) < 0.5
    shifts = torch.randint(0, size, (batch, ndim), generator=generator)
    return axes, flips, shifts


def apply_symmetries(x: torch.Tensor, axes: torch.Tensor, flips: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """Image ``i`` of ``x`` ``(B, 1, *shape)`` (square) with its axes permuted by ``axes[i]``, the
    axes where ``flips[i]`` is true reversed, then rolled by ``shifts[i]`` pixels."""
    ndim = x.ndim - 2
    out = torch.empty_like(x)
    for i in range(len(x)):
        y = x[i, 0].permute(*axes[i].tolist())
        flipped = [d for d in range(ndim) if flips[i, d]]
        if flipped:
            y = y.flip(flipped)
        out[i, 0] = torch.roll(y, shifts[i].tolist(), dims=tuple(range(ndim)))
    return out


def _test_metrics(model: MultiScaleNet, data: _Data, device: torch.device, batch_size: int,
                  crop: int | None = None) -> dict[str, Any]:
    """Test loss per scale and accuracy; each rank scores a slice and the counts are summed."""
    rank, world = _world()
    part = slice(rank, None, world)
    logits = _predict(model, data.fields[part], device, batch_size, crop)
    choices = data.choices[part]
    totals = torch.zeros(2 * model.n_scales + 2, dtype=torch.float64)
    if len(logits):
        losses = F.cross_entropy(logits.transpose(1, 2), choices, reduction="none").sum(0)
        totals[:model.n_scales] = losses.double()
        totals[model.n_scales:-1] = _correct(model, logits, choices)
    totals[-1] = len(logits)
    totals = _all_sum(totals.to(device)).cpu()
    n = totals[-1].item()
    return {"loss": (totals[:model.n_scales] / n).tolist(), **_accuracies(totals[model.n_scales:-1], n)}


def _correct(model: MultiScaleNet, logits: torch.Tensor, choices: torch.Tensor) -> torch.Tensor:
    """Correct predictions per scale and joint, ``(K + 1,)`` float64."""
    per_scale = logits.argmax(-1) == choices
    return torch.cat([per_scale.sum(0), per_scale.all(1).sum()[None]]).double()


# Checkpoints ---------------------------------------------------------------------------------------

def _save_atomic(obj: Any, path: Path) -> None:
    """Write then rename, so an interruption never leaves a half-written checkpoint."""
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint written by :func:`train`, refusing damaged or foreign files."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch.load raises many types for damaged files; all mean the same here
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"{path} is not a readable checkpoint (damaged or not written by msgp train): "
                              f"{reason[:200]}") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not an msgp train checkpoint")
    if ckpt.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(f"{path} is checkpoint version {ckpt.get('version')}; this msgp reads "
                              f"version {CHECKPOINT_VERSION}")
    missing = [k for k in ("config", "model", "state", "spec", "epoch", "step") if k not in ckpt]
    if missing:
        raise CheckpointError(f"{path} is missing {', '.join(missing)}")
    return ckpt


def _build_model(ckpt: dict[str, Any]) -> MultiScaleNet:
    try:
        # Checkpoints written before padding and features were options.
        model = MultiScaleNet(**{"padding": "zeros", "features": "linear", **ckpt["model"]})
        model.load_state_dict(ckpt["state"])
    except (TypeError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"the checkpoint's network cannot be rebuilt: {str(err).splitlines()[0]}") from None
    return model


def _rng_states() -> dict[str, Any]:
    version, state, gauss = random.getstate()
    numpy_state = np.random.get_state(legacy=False)
    return {"torch": torch.get_rng_state(),
            "numpy": {"key": torch.from_numpy(numpy_state["state"]["key"].astype(np.int64)),
                      "pos": int(numpy_state["state"]["pos"])},
            "python": [version, list(state), gauss]}


def _restore_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    np.random.set_state({"bit_generator": "MT19937", "has_gauss": 0, "gauss": 0.0,
                         "state": {"key": states["numpy"]["key"].numpy().astype(np.uint32),
                                   "pos": states["numpy"]["pos"]}})
    version, state, gauss = states["python"]
    random.setstate((version, tuple(state), gauss))


# Training ------------------------------------------------------------------------------------------

def default_run_dir() -> Path:
    return Path("runs") / time.strftime("%Y%m%d-%H%M%S")


def read_config(run_dir: str | os.PathLike) -> TrainConfig:
    """The configuration of the run in ``run_dir`` (its ``config.json``)."""
    path = Path(run_dir) / "config.json"
    try:
        return TrainConfig.from_dict(json.loads(path.read_text())["train"])
    except FileNotFoundError:
        raise CheckpointError(f"{run_dir} is not a training run (no config.json)") from None
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{path} is damaged: {err}") from None


def train(config: TrainConfig, out: str | os.PathLike, *, resume: bool = False,
          progress: Progress | None = None, should_stop: Callable[[], bool] | None = None) -> dict[str, Any]:
    """Train a :class:`MultiScaleNet` and write the run directory ``out``.

    Parameters
    ----------
    config : the settings. With ``resume`` they must equal the saved run's except ``epochs`` and
        ``device``.
    out : run directory: ``config.json``, ``metrics.jsonl``, ``checkpoint.pt`` (after every epoch
        and on interruption), ``summary.json`` and ``curves.png`` (if matplotlib is installed).
    resume : continue the run saved in ``out`` from its checkpoint.
    progress : ``progress(event, info)`` with events ``"start"`` (``total_steps``, ``done_steps``,
        ``steps_per_epoch``, ``device``, ``head_stages``), ``"step"`` (``loss``, ``images_per_s``)
        and ``"epoch"`` (the epoch's metrics); called on rank 0 only.
    should_stop : polled after every step; when it returns true (on any rank) a checkpoint is
        saved and :class:`Interrupted` is raised.

    Returns
    -------
    The summary written to ``summary.json``: test accuracies beside the oracle's on the same test
    samples (``{"joint": p, "scales": [p_0, ...]}`` each), the chance levels, the run settings.

    Raises
    ------
    TrainingError : a non-finite loss; the checkpoint of the last finished epoch is kept.
    Interrupted : ``should_stop`` asked to stop; the checkpoint allows resuming.
    CheckpointError, IncompatibleDataError, msgp.io.MSGPError, ValueError : bad input.
    """
    rank, world = _world()
    out = Path(out)
    device = resolve_device(config.device)
    notify = progress if (progress is not None and rank == 0) else (lambda event, info: None)
    if config.batch_size % world:
        raise ValueError(f"batch_size ({config.batch_size}) must be divisible by the number of processes ({world})")

    ckpt = None
    if resume:
        ckpt = load_checkpoint(out / "checkpoint.pt")
        saved = TrainConfig.from_dict(ckpt["config"])
        changed = [k for k, v in saved.to_dict().items()
                   if k not in ("epochs", "device") and config.to_dict()[k] != v]
        if changed:
            raise CheckpointError(f"cannot resume {out} with other settings ({', '.join(changed)}); "
                                  "only --epochs and --device may change")
        if ckpt.get("world_size") != world:
            raise CheckpointError(f"{out} was trained by {ckpt.get('world_size')} processes; resume it with "
                                  f"{ckpt.get('world_size')}, not {world}")
    elif (out / "checkpoint.pt").exists() or (out / "config.json").exists():
        raise CheckpointError(f"{out} already holds a run; pass --resume to continue it or choose another --out")

    train_set, test_set = _subsets(config)
    spec = train_set.spec
    if ckpt is not None:
        check_compatible(_spec_from_dict(ckpt["spec"]), spec, "data")
    train_data, test_data = _load(train_set), _load(test_set)
    n_scales = spec.n_scales
    probs = config.mask_prob if isinstance(config.mask_prob, tuple) else (config.mask_prob,) * n_scales
    if len(probs) != n_scales:
        raise ValueError(f"got {len(probs)} mask probabilities for {n_scales} scales")
    generators = [_generator(_seed(config.seed, _BACKDROP, s), device) for s in range(n_scales)]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_seed(config.seed, _INIT))
        model = MultiScaleNet.from_spec(spec, rf_factor=config.rf_factor, head_stages=config.head_stages,
                                        width=config.width, mask_prob=probs if config.backdrop else None,
                                        generators=generators if config.backdrop else None,
                                        topology=config.topology,
                                        padding="circular" if config.crop is None else "zeros",
                                        mask_block=config.mask_block if config.backdrop else None)
    if config.crop is not None:
        deepest = 2 ** max(model.head_stages)
        if not deepest <= config.crop <= spec.size:
            raise ValueError(f"crop must be between {deepest} (one pixel at the deepest head's stage) and the "
                             f"image size {spec.size}, but got {config.crop}")
    crops_per_image = 1 if config.crop is None else (spec.size // config.crop) ** spec.ndim
    if world > 1 and config.backdrop:
        _GlobalMasks(model, rank, world, crops_per_image)
    model.to(device)
    net = DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None) \
        if dist.is_initialized() else model
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = config.n_train // config.batch_size
    total_steps = steps_per_epoch * config.epochs
    crop_generator = _generator(_seed(config.seed, _CROP))
    augment_generator = _generator(_seed(config.seed, _AUGMENT))
    sampler = DistributedSampler(range(len(train_data.fields)), num_replicas=world, rank=rank, shuffle=True,
                                 seed=_seed(config.seed, _SHUFFLE) % 2**31, drop_last=False)
    local_batch = config.batch_size // world

    epoch, step = 0, 0
    sums = torch.zeros(2 * n_scales + 3, dtype=torch.float64)  # losses (K), correct (K+1), count, images
    train_seconds = 0.0
    if ckpt is not None:
        try:
            model.load_state_dict(ckpt["state"])
            optimizer.load_state_dict(ckpt["optimizer"])
            crop_generator.set_state(ckpt["rng"]["crop"])
            augment_generator.set_state(ckpt["rng"]["augment"])
            for g, state in zip(generators, ckpt["rng"]["backdrop"], strict=True):
                g.set_state(state)
            _restore_rng_states(ckpt["rng"])
        except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as err:
            raise CheckpointError(f"{out / 'checkpoint.pt'} does not fit this run: {str(err).splitlines()[0]}") from None
        epoch, step = ckpt["epoch"], ckpt["step"]
        sums = ckpt["sums"].clone()
        train_seconds = ckpt["train_seconds"]

    def checkpoint(epoch_: int, step_: int, sums_: torch.Tensor, seconds: float) -> None:
        if rank == 0:
            _save_atomic({
                "format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION,
                "config": config.to_dict(), "spec": spec.to_dict(), "model": model.config(),
                "state": model.state_dict(), "optimizer": optimizer.state_dict(),
                "epoch": epoch_, "step": step_, "sums": sums_, "train_seconds": seconds, "world_size": world,
                "rng": {**_rng_states(), "crop": crop_generator.get_state(),
                        "augment": augment_generator.get_state(),
                        "backdrop": [g.get_state() for g in generators]},
            }, out / "checkpoint.pt")

    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        _write_config(out / "config.json", config, spec, model, train_data, test_data, world)
        _truncate_metrics(out / "metrics.jsonl", epoch)
    notify("start", {"total_steps": total_steps, "done_steps": epoch * steps_per_epoch + step,
                     "steps_per_epoch": steps_per_epoch, "device": str(device), "world_size": world,
                     "head_stages": list(model.head_stages), "method": config.method})

    net.train()
    while epoch < config.epochs:
        sampler.set_epoch(epoch)
        order = torch.as_tensor(list(iter(sampler)))
        while step < steps_per_epoch:
            started = time.perf_counter()
            idx = order[step * local_batch:(step + 1) * local_batch]
            x, y = train_data.fields[idx], train_data.choices[idx]
            if config.augment:
                # Symmetries of the whole global batch, so every rank's generator stays in step.
                drawn = draw_symmetries(config.batch_size, spec.ndim, spec.size, augment_generator)
                x = apply_symmetries(x, *(t[rank::world] for t in drawn))
            if config.crop is not None:
                # Offsets of the whole global batch, so every rank's generator stays in step.
                offsets = torch.randint(0, spec.size, (config.batch_size, crops_per_image, spec.ndim),
                                        generator=crop_generator)[rank::world]
                x = take_crops(x, offsets, config.crop)
                y = y.repeat_interleave(crops_per_image, dim=0)
            x, y = x.to(device), y.to(device)
            lr = learning_rate(epoch * steps_per_epoch + step, total_steps, config.lr, config.warmup)
            for group in optimizer.param_groups:
                group["lr"] = lr
            with precision_context(config.precision, device):
                logits = net(x).float()
                losses = model.scale_losses(logits, y)
            stats = torch.cat([losses.detach().double(), _correct(model, logits.detach(), y),
                               torch.tensor([len(y), len(idx)], dtype=torch.float64, device=device),
                               torch.tensor([float(should_stop is not None and should_stop())],
                                            dtype=torch.float64, device=device)])
            stats = _all_sum(stats).cpu()
            stats[:n_scales] /= world
            if not torch.isfinite(stats[:n_scales]).all():
                kept = (f"{out / 'checkpoint.pt'} keeps the last good epoch ({epoch})" if epoch
                        else "no epoch had finished, so there is no checkpoint")
                raise TrainingError(f"the loss became {stats[:n_scales].sum().item()} at epoch {epoch + 1}, "
                                    f"step {step + 1}; training stopped and {kept}; try a smaller --lr")
            optimizer.zero_grad(set_to_none=True)
            with precision_context(config.precision, device, autocast=False):
                losses.sum().backward()
            if config.clip_grad is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip_grad)
            optimizer.step()
            sums[:n_scales] += stats[:n_scales]
            sums[n_scales:] += stats[n_scales:-1]
            step += 1
            seconds = time.perf_counter() - started
            train_seconds += seconds
            notify("step", {"epoch": epoch, "step": step, "loss": stats[:n_scales].sum().item(),
                            "images_per_s": stats[-2].item() / seconds})
            if stats[-1] > 0:
                checkpoint(epoch, step, sums, train_seconds)
                raise Interrupted(f"stopped at epoch {epoch + 1}, step {step}; the checkpoint in {out} "
                                  "resumes the run (--resume)")
        scored = epoch + 1 == config.epochs or (config.eval_every and (epoch + 1) % config.eval_every == 0)
        test = {"loss": None, "joint": None, "scales": None}
        if scored:
            with precision_context("fp32", device):
                calibrate(model, train_data, device, config.eval_batch_size, config.crop)
                test = _test_metrics(model, test_data, device, config.eval_batch_size, config.crop)
        count, images = sums[-2].item(), sums[-1].item()
        record = {"epoch": epoch + 1,
                  "lr": learning_rate((epoch + 1) * steps_per_epoch - 1, total_steps, config.lr, config.warmup),
                  "train_loss": (sums[:n_scales] / steps_per_epoch).tolist(),
                  "train_accuracy": _accuracies(sums[n_scales:-2], count),
                  "test_loss": test["loss"],
                  "test_accuracy": None if test["joint"] is None else {"joint": test["joint"], "scales": test["scales"]},
                  "images_per_s": images / train_seconds if train_seconds > 0 else float("nan")}
        epoch, step = epoch + 1, 0
        sums.zero_()
        train_seconds = 0.0
        if rank == 0:
            with open(out / "metrics.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")
        checkpoint(epoch, step, sums, train_seconds)
        notify("epoch", record)

    summary = None
    if rank == 0:
        summary = _summary(config, spec, test_data, read_metrics(out)[-1], world)
        (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        plot_curves(out)
    if dist.is_initialized():
        holder = [summary]
        dist.broadcast_object_list(holder, src=0)
        summary = holder[0]
    return summary


class _GlobalMasks:
    """Make each backdrop layer of a distributed run use its rank's rows of the global batch's mask.

    A forward pre-hook draws the mask for the whole global batch with the layer's own generator
    (the same stream on every rank, so the generators stay in step) from a zero-stride stand-in of
    the global input, and sets the layer's ``fixed_mask`` to the rows of this rank's samples: rank
    ``r`` holds images ``r, r + W, ...`` of the batch, each with ``rows_per_image`` rows (crops).
    """

    def __init__(self, model: MultiScaleNet, rank: int, world: int, rows_per_image: int):
        self.rank, self.world, self.rows_per_image = rank, world, rows_per_image
        for layer in model.modules():
            if isinstance(layer, Backdrop):
                layer.register_forward_pre_hook(self)

    def __call__(self, layer: Backdrop, args: tuple[torch.Tensor, ...]) -> None:
        if not layer.training:
            return
        x = args[0]
        stand_in = x.new_empty(()).expand(self.world * x.shape[0], *x.shape[1:])
        mask = draw_mask(stand_in, layer.p, layer.dims, layer.rescale, layer.generator, layer.block)
        per_image = mask.view(-1, self.rows_per_image, *mask.shape[1:])[self.rank::self.world]
        layer.fixed_mask = per_image.reshape(x.shape[0], *mask.shape[1:])


def _spec_from_dict(values: dict[str, Any]) -> DatasetSpec:
    """The dataset description stored (as a dict) in a checkpoint."""
    try:
        return DatasetSpec(**values)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"the checkpoint's dataset description is damaged: {err}") from None


def take_crops(x: torch.Tensor, offsets: torch.Tensor, crop: int) -> torch.Tensor:
    """Crops ``(B * n, 1, crop, ...)`` of images ``(B, 1, *shape)`` at ``offsets`` ``(B, n, ndim)``,
    wrapping around the torus the fields live on."""
    batch, n, ndim = offsets.shape
    size = x.shape[-1]
    offsets = offsets.reshape(batch * n, ndim)
    steps = torch.arange(crop)
    index = [torch.arange(batch).repeat_interleave(n).view(-1, *[1] * ndim)]
    for d in range(ndim):
        shape = [batch * n] + [1] * ndim
        shape[1 + d] = crop
        index.append(((offsets[:, d].view(-1, *[1] * ndim) + steps.view(shape[1:]).unsqueeze(0)) % size).view(shape))
    return x[:, 0][tuple(index)].unsqueeze(1)


def _write_config(path: Path, config: TrainConfig, spec, model: MultiScaleNet, train_data: _Data,
                  test_data: _Data, world: int) -> None:
    path.write_text(json.dumps({
        "train": config.to_dict(), "method": config.method, "dataset": spec.to_dict(),
        "model": model.config(), "world_size": world, "torch": torch.__version__,
        "train_indices": train_data.indices.tolist(), "test_indices": test_data.indices.tolist(),
    }, indent=2) + "\n")


def _truncate_metrics(path: Path, epochs: int) -> None:
    """Keep the records of the epochs the checkpoint holds (a resumed run rewrites the rest)."""
    lines = path.read_text().splitlines(keepends=True)[:epochs] if path.exists() else []
    path.write_text("".join(lines))


def read_metrics(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    path = Path(run_dir) / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def _oracle_predict(data: _Data, pixels: int = io.BATCH_PIXELS) -> oracle.Prediction:
    """The Bayes-optimal decisions on the samples of ``data``, about ``pixels`` pixels at a time as
    ``msgp oracle`` reads them: a whole test set at 1024² would take GBs of float64 spectra."""
    model = oracle.FourierModel(data.spec)
    batch = max(1, pixels // math.prod(data.spec.shape))
    fields = data.fields[:, 0]
    log_lik = np.concatenate([model.log_likelihoods(fields[i:i + batch].numpy())
                              for i in range(0, len(fields), batch)])
    return oracle.decide(oracle.posterior_from_log_likelihoods(log_lik, data.spec))


_ORACLE_SCORES: dict[tuple[str, bytes], dict[str, Any]] = {}


def _oracle_accuracy(data: _Data) -> dict[str, Any]:
    """The Bayes-optimal classifier's accuracy on the same samples.

    Sample i is a function of the description and i alone, so the score of a set of samples is
    kept for the life of the process: an experiment's runs share one test file, and at 1024² its
    oracle costs more than a run's training on a GPU.
    """
    key = (json.dumps(data.spec.to_dict(), sort_keys=True), np.asarray(data.indices, dtype=np.int64).tobytes())
    if key not in _ORACLE_SCORES:
        if len(_ORACLE_SCORES) >= 8:
            _ORACLE_SCORES.pop(next(iter(_ORACLE_SCORES)))
        _ORACLE_SCORES[key] = oracle.score(_oracle_predict(data), data.labels, data.spec)
    return _ORACLE_SCORES[key]


def _summary(config: TrainConfig, spec, test_data: _Data, last: dict[str, Any], world: int) -> dict[str, Any]:
    scored = _oracle_accuracy(test_data)
    return {
        "method": config.method,
        "epochs": last["epoch"],
        "n_train": config.n_train,
        "n_test": len(test_data.fields),
        "test_accuracy": last["test_accuracy"],
        "oracle_accuracy": {"joint": scored["joint"]["accuracy"],
                            "scales": [s["accuracy"] for s in scored["scales"]]},
        "chance": {"joint": 1.0 / spec.n_classes, "scales": [1.0 / spec.n_choices] * spec.n_scales},
        "train_accuracy": last["train_accuracy"],
        "images_per_s": last["images_per_s"],
        "world_size": world,
    }


def plot_curves(run_dir: str | os.PathLike) -> Path | None:
    """``curves.png``: loss and accuracy per epoch; ``None`` when matplotlib is not installed."""
    try:
        plt = pyplot()
    except PlotUnavailable:
        return None
    records = read_metrics(run_dir)
    epochs = [r["epoch"] for r in records]
    scored = [r for r in records if r["test_accuracy"] is not None]  # epochs with a test score
    scored_epochs = [r["epoch"] for r in scored]
    n_scales = len(records[0]["train_loss"])
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for s in range(n_scales):
        line, = ax_loss.plot(epochs, [r["train_loss"][s] for r in records], label=f"scale {s} train")
        ax_loss.plot(scored_epochs, [r["test_loss"][s] for r in scored], "--", marker=".", color=line.get_color(),
                     label=f"scale {s} test")
        ax_acc.plot(scored_epochs, [r["test_accuracy"]["scales"][s] for r in scored], marker=".",
                    color=line.get_color(), label=f"scale {s}")
    ax_acc.plot(scored_epochs, [r["test_accuracy"]["joint"] for r in scored], "k", marker=".", label="joint")
    summary = Path(run_dir) / "summary.json"
    if summary.exists():
        oracle_joint = json.loads(summary.read_text())["oracle_accuracy"]["joint"]
        ax_acc.axhline(oracle_joint, color="k", ls=":", label="oracle joint")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy (nats)", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="test accuracy", title="test accuracy", ylim=(0, 1.02))
    ax_loss.legend(fontsize=7)
    ax_acc.legend(fontsize=7)
    path = Path(run_dir) / "curves.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# Evaluation ----------------------------------------------------------------------------------------

def evaluate(run_dir: str | os.PathLike, data: str | os.PathLike | None = None, *, n: int | None = None,
             device: str = "auto", batch_size: int = 64) -> dict[str, Any]:
    """Score the network of a run beside the oracle, on the same samples.

    Parameters
    ----------
    run_dir : a directory written by :func:`train` (its ``checkpoint.pt`` is scored, finished or not).
    data : an msgp file with the training data's statistics (``spec.statistics()``; seed and n may
        differ). ``None``, or the training file itself: the run's own test samples (generated
        again for a run on a dataset description).
    n : class-balanced samples drawn from ``data`` (default: the run's ``n_test``); ignored when the
        run's own test samples are used.
    device : ``auto``, ``cpu`` or ``cuda``.
    batch_size : images per forward pass.

    Returns
    -------
    ``{"data", "n", "epoch", "network", "oracle"}``; ``network`` and ``oracle`` each hold
    :func:`msgp.oracle.score` (joint and per-scale accuracy with standard errors, per-scale
    confusion matrices, mean confidence) plus ``joint_confusion`` (rows: true class, columns:
    predicted, label order).
    """
    run_dir = Path(run_dir)
    config = read_config(run_dir)
    ckpt = load_checkpoint(run_dir / "checkpoint.pt")
    model = _build_model(ckpt)
    trained = _spec_from_dict(ckpt["spec"])
    own_file = config.test_data or config.data
    if data is None:
        data = own_file
    dataset = _open(data)
    check_compatible(trained, dataset.spec)
    if n is not None and n < 1:
        raise ValueError(f"n must be a positive integer, but got {n}")
    same_samples = dataset.spec.seed == trained.seed or config.test_data is not None
    own_samples = data == own_file if isinstance(own_file, dict) else Path(data).resolve() == Path(own_file).resolve()
    if own_samples and same_samples:
        test_set = dataset.subset(_run_test_indices(run_dir))
    elif dataset.spec.seed == trained.seed:
        raise IncompatibleDataError(
            f"{data if not isinstance(data, dict) else 'the generated data'} has the training data's seed "
            f"({trained.seed}), so its samples are the training samples; score the run on its own test samples "
            "(no DATA) or on data generated with another --seed")
    else:
        _, test_set = split(dataset, 0, config.n_test if n is None else n, seed=config.seed)
    test_data = _load(test_set)
    device = resolve_device(device)
    model.to(device)
    logits = _predict(model, test_data.fields, device, batch_size, config.crop)
    log_joint = model.cpu().joint_log_probs(logits)
    log_marginals = F.log_softmax(logits, dim=-1)
    network = oracle.Prediction(labels=log_joint.argmax(1).numpy(), choices=logits.argmax(-1).numpy(),
                                confidence=log_joint.max(1).values.exp().numpy(),
                                scale_confidence=log_marginals.max(-1).values.exp().numpy())
    truth = test_data.labels
    oracle_prediction = _oracle_predict(test_data)
    name = f"the generated dataset (seed {data['seed']})" if isinstance(data, dict) else str(data)
    result = {"data": name, "n": len(truth), "epoch": ckpt["epoch"], "network": None, "oracle": None}
    for key, prediction in (("network", network), ("oracle", oracle_prediction)):
        confusion = np.zeros((trained.n_classes, trained.n_classes), dtype=np.int64)
        np.add.at(confusion, (truth, prediction.labels), 1)
        result[key] = {**oracle.score(prediction, truth, test_data.spec), "joint_confusion": confusion.tolist()}
    return result


def _run_test_indices(run_dir: Path) -> list[int]:
    try:
        return json.loads((run_dir / "config.json").read_text())["test_indices"]
    except (KeyError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{run_dir / 'config.json'} is damaged: {err}") from None
