"""The settings of a training run (:class:`TrainConfig`), its errors, and reading a run's settings back."""
from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from msgp import io
from msgp.checks import Checks, is_integer, is_number, is_sequence
from msgp.errors import MSGPError
from msgp.spec import DatasetSpec, SpecError

from ..functional import check_block_size, check_p
from ..models import MASK_SCOPES, RF_FACTOR, TOPOLOGIES, check_head_stages, place_heads

# Where a run trains: auto (CUDA when there is a GPU), cpu or cuda.
DEVICES = ("auto", "cpu", "cuda")
# The arithmetic of the training steps (see precision_context).
PRECISIONS = ("fp32", "tf32", "bf16")
# Training and test images when n_train or n_test is not given: the nearest multiple of the class count.
DEFAULT_SIZE = 512
# Epochs when none are given: DEFAULT_EPOCHS on images of REFERENCE_PIXELS (128², where the defaults
# were tuned) or more; on smaller images, as many more as keep the pixels a run sees, up to
# MAX_EPOCHS, past which a step's fixed cost, not its pixels, sets the time (see default_epochs).
DEFAULT_EPOCHS = 30
REFERENCE_PIXELS = 128 ** 2
MAX_EPOCHS = 4 * DEFAULT_EPOCHS
# Beyond this many scales each further scale doubles, triples, ... the epochs (see default_epochs).
SCALES_AT_DEFAULT_EPOCHS = 4

# ``progress(event, info)``: what train calls with its progress (see train).
Progress = Callable[[str, dict], None]

# What a resumed run may change (``TrainConfig.changed_from(..., ignore=RESUMABLE)``): where it
# runs, and how many epochs it trains; the data, read from the same place, must be the same.
RESUMABLE = ("epochs", "device")


class TrainingError(MSGPError, RuntimeError):
    """Training cannot go on (a non-finite loss, gradient norm or weight); the message is one line for the user."""


class Interrupted(RuntimeError):
    """Training stopped on request after saving a checkpoint to resume from.

    Not an :class:`msgp.MSGPError`: nothing was wrong, so a caller that reports every MSGPError as
    bad input (the command line's ``Error:`` lines, exit code 2) must not report this one; the
    command line ends with exit code 130 and says how to go on.
    """


class ConfigError(MSGPError, ValueError):
    """Settings that cannot train (bad values, or values the data or the machine cannot serve);
    the message is one line for the user."""


class ConfigTypeError(ConfigError, TypeError):
    """A setting of the wrong type: a TypeError that is also a :class:`ConfigError`, which the
    command line and the experiment catch (as :class:`~msgp.spec.SpecTypeError` is for the data)."""


_ARGS = Checks(ConfigError, ConfigTypeError, quote=True)
DATA = "a path to an msgp file, or a dataset description (a DatasetSpec or the dict of its fields)"
# The settings of backdrop's masks: giving one of them asks for backdrop (TrainConfig.from_options).
MASK_SETTINGS = ("mask_prob", "mask_block", "mask_scope")


class CheckpointError(MSGPError, ValueError):
    """A checkpoint or run directory that cannot be used; the message is one line for the user."""


class IncompatibleDataError(MSGPError, ValueError):
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
    mask_prob : backdrop mask probability, one value for every scale or one per scale (like
        ``mask_block``, used, and checked against the data's scales, only with ``backdrop``).
    mask_scope : ``sample`` (each sample its own mask) or ``batch`` (one mask shared by the batch and
        the channels, rescaled over the whole mask: the 2018 reference's estimator); with ``backdrop``.
    mask_block : side of the square blocks of positions each scale's mask keeps or drops together
        (one value, or one per scale; 1: single positions).
    topology : ``heads`` (one head per scale, each behind its own mask) or ``series`` (the masks
        in series along one trunk, one classifier at the end); see :class:`MultiScaleNet`.
    augment : apply a random symmetry of the data to every training image at every step: a
        periodic shift and one of the ``2**ndim * ndim!`` axis permutations and flips (the eight
        rotations and reflections of a square in 2-D). The fields are stationary and isotropic
        on a torus, so each is an exact symmetry of the distribution.
    whiten : give the network a second input channel, the field whitened by the data's mean power
        spectrum (see :class:`~backdrop.models.MultiScaleNet`); needs whole images, so runs with
        ``crop`` are not whitened whatever this says.
    crop : train on random crops of this side (``(size // crop)**ndim`` crops per image, so a step
        sees as many pixels as with whole images) and test on whole images; ``None`` for whole images.
    n_train, n_test : class-balanced, disjoint train and test subsets drawn from ``data``; ``None``:
        the multiple of the class count nearest :data:`DEFAULT_SIZE` (512) that the data hold,
        resolved by :func:`resolve_sizes` when the run starts (``config.json`` stores the numbers).
    test_data : draw the test samples from this compatible file (or description) instead of ``data``.
    epochs : passes over the training subset; ``None``: :func:`default_epochs` of the data, resolved
        by :func:`resolve_epochs` when the run starts (``config.json`` stores the number).
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
    log_every : after every ``log_every``-th optimiser step, a step record (the step's per-scale
        training loss, learning rate and gradient norm) in ``metrics.jsonl`` and to the loggers; 0:
        none. The default writes 96 on a default run (30 epochs of 32 steps) and at most 384 (120
        epochs). Logging trains nothing, so :meth:`changed_from` ignores it.
    network : ``None`` for :class:`MultiScaleNet`, or the network method to train instead,
        ``{"source": "/path/file.py:function", "sha256": <the file's>}``
        (:mod:`backdrop.experiment.methods`); a file whose content changed is refused.
    """

    data: str = str(io.DEFAULT_PATH)
    backdrop: bool = False
    mask_prob: float | tuple[float, ...] = 0.25
    mask_block: int | tuple[int, ...] = 1
    mask_scope: str = "sample"
    topology: str = "heads"
    augment: bool = True
    whiten: bool = True
    crop: int | None = None
    n_train: int | None = None
    n_test: int | None = None
    test_data: str | None = None
    epochs: int | None = None
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
    log_every: int = 10
    network: dict[str, str] | None = None

    def __post_init__(self):
        # Each setting checked and put in its one form (tuples, floats, dicts), in field order.
        self.data = _data_source("data", self.data)
        self.test_data = None if self.test_data is None else _data_source("test_data", self.test_data)
        for name in ("backdrop", "augment", "whiten"):
            setattr(self, name, _ARGS.flag(name, getattr(self, name)))
        self._check_masks()
        self.topology = _ARGS.choice("topology", self.topology, TOPOLOGIES)
        self._check_sizes()
        self._check_schedule()
        self.device = _ARGS.choice("device", self.device, DEVICES)
        self.precision = _ARGS.choice("precision", self.precision, PRECISIONS)
        self.seed = _ARGS.integer("seed", self.seed, 0)
        self._check_network()

    def _check_masks(self) -> None:
        self.mask_prob = _one_or_per_scale("mask_prob", self.mask_prob, is_number, "a probability in [0, 1)", float)
        for p in self.mask_prob if isinstance(self.mask_prob, tuple) else (self.mask_prob,):
            _as_config_error("mask_prob", check_p, p)
        self.mask_block = _one_or_per_scale("mask_block", self.mask_block, is_integer, "a positive int (a block's side)", int)
        for b in self.mask_block if isinstance(self.mask_block, tuple) else (self.mask_block,):
            _as_config_error("mask_block", check_block_size, b)
        self.mask_scope = _ARGS.choice("mask_scope", self.mask_scope, MASK_SCOPES)

    def _check_sizes(self) -> None:
        """The crop, the sample counts, the epochs, the batches and the width."""
        if self.crop is not None:
            self.crop = _ARGS.integer("crop", self.crop, 2, what="an integer of at least 2 pixels")
        for name in ("n_train", "n_test", "epochs"):
            if getattr(self, name) is not None:
                setattr(self, name, _ARGS.integer(name, getattr(self, name), 1))
        for name in ("batch_size", "width", "eval_batch_size"):
            setattr(self, name, _ARGS.integer(name, getattr(self, name), 1))
        if self.batch_size < 2:
            raise ConfigError(f"`batch_size` must be at least 2 (the logits are standardised over the batch), "
                              f"but got {self.batch_size}")
        if self.n_train is not None and self.batch_size > self.n_train:
            raise ConfigError(f"`batch_size` ({self.batch_size}) must not exceed `n_train` ({self.n_train})")

    def _check_schedule(self) -> None:
        """The optimiser's settings and how often the run scores and logs."""
        self.lr = _ARGS.number("lr", self.lr, "a positive number", lambda v: v > 0)
        self.warmup = _ARGS.number("warmup", self.warmup, "a fraction of the steps in [0, 1)", lambda v: 0 <= v < 1)
        self.weight_decay = _ARGS.number("weight_decay", self.weight_decay, "a non-negative number", lambda v: v >= 0)
        if self.clip_grad is not None:
            self.clip_grad = _ARGS.number("clip_grad", self.clip_grad, "a positive number or None", lambda v: v > 0)
        self.eval_every = _ARGS.integer("eval_every", self.eval_every, 0)
        self.log_every = _ARGS.integer("log_every", self.log_every, 0)

    def _check_network(self) -> None:
        """The head stages (their range depends on the image size: :func:`check_config` checks it
        against the data), the receptive-field factor and a network method's record."""
        if self.head_stages is not None:
            if not is_sequence(self.head_stages) or not all(map(is_integer, self.head_stages)):
                raise ConfigTypeError(f"`head_stages` must be a list of stages (ints), one per scale, or None, "
                                      f"but got {self.head_stages!r}")
            if len(self.head_stages) == 0:
                raise ConfigError(f"`head_stages` must be a non-empty list of stages, one per scale, or None, "
                                  f"but got {self.head_stages!r}")
            self.head_stages = tuple(int(k) for k in self.head_stages)
        self.rf_factor = _ARGS.number("rf_factor", self.rf_factor, "a positive number", lambda v: v > 0)
        if self.network is not None and (not isinstance(self.network, dict)
                                         or sorted(self.network) != ["sha256", "source"]):
            error = ConfigError if isinstance(self.network, dict) else ConfigTypeError
            raise error(f"network must be {{'source': ..., 'sha256': ...}} or None, but got {self.network!r}")

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

    def changed_from(self, other: "TrainConfig", ignore: Sequence[str] = ("data", "test_data", "device")) -> list[str]:
        """The settings in which ``other`` trains differently from this one (field names, in order):
        the mask settings count only with backdrop, ``log_every`` and ``ignore`` not at all: by default
        where the data are read and the run runs; :data:`RESUMABLE` for a resumed run. Empty when
        ``other`` is the same run."""
        mine, theirs = self.to_dict(), other.to_dict()
        skip = set(ignore) | {"log_every"} | (set() if self.backdrop or other.backdrop else {"mask_prob", "mask_block", "mask_scope"})
        return [k for k in mine if k not in skip and mine[k] != theirs[k]]

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainConfig":
        """The settings :meth:`to_dict` gave (``config.json``'s ``train`` entry); unknown keys are
        ignored, and settings saved before whitening was an option read as ``whiten=False``."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{"whiten": False, **{k: v for k, v in values.items() if k in names}})

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> "TrainConfig":
        """The settings in the JSON file ``path``: a run's ``config.json`` (its ``train`` entry, what
        :func:`read_config` reads) or an object of TrainConfig fields (``{"data": ..., "backdrop":
        true}``, the others at their defaults); a :class:`CheckpointError` for a file that is
        missing or holds neither."""
        path = Path(path)
        try:
            values = json.loads(path.read_text())
            return cls.from_dict(values["train"]) if "train" in values else cls(**values)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise CheckpointError(f"{path} does not exist") from None
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
            raise CheckpointError(f"{path} is damaged: {err}") from None

    @classmethod
    def from_options(cls, base: "TrainConfig | None" = None, **options) -> "TrainConfig":
        """The settings ``options`` (TrainConfig fields) give, in place of ``base``'s (a saved run's
        settings, :func:`read_config`) or of the defaults: how ``msgp train`` reads the options
        given on its command line, with ``--resume`` and ``--config`` alike.

        Giving a mask setting (``mask_prob``, ``mask_block``, ``mask_scope``) asks for backdrop, so
        it implies ``backdrop=True``; with ``backdrop=False`` given too, a :class:`ConfigError`.
        """
        masks = [name for name in MASK_SETTINGS if name in options]
        if masks and not options.get("backdrop", True):
            raise ConfigError(f"`{masks[0]}` sets backdrop's masks, which `backdrop=False` turns off; pass one of them")
        if masks:
            options["backdrop"] = True
        return cls(**{**(base.to_dict() if base is not None else {}), **options})


def _as_config_error(name: str, check: Callable, value) -> None:
    """``check(value)`` (a rule of the layer the setting goes to), its ValueError as a ConfigError naming
    the setting."""
    try:
        check(value)
    except ValueError as err:
        raise ConfigError(f"{name}: {err}") from None


def check_config(config: TrainConfig, spec: DatasetSpec) -> None:
    """Refuse settings that data described by ``spec`` cannot train, with a one-line :class:`ConfigError`.

    Every rule that needs the data's description is here, so that the trainer can check a run
    before it writes anything: one head stage per scale, each stage on the images (a feature map of
    at least one pixel), increasing stages for the series topology, one mask probability and one
    mask block size per scale (or one for all) with backdrop, and crops no smaller than the deepest
    head's stage and no larger than the images. Class balance and sample counts are the split's
    (:func:`msgp.split`).
    """
    K = spec.n_scales
    if config.head_stages is not None and len(config.head_stages) != K:
        raise ConfigError(f"got {len(config.head_stages)} head stage{'s' * (len(config.head_stages) != 1)} for "
                          f"{K} scales; give one per scale, finest first")
    try:
        stages = check_head_stages(place_heads(spec.length_scales, spec.size, config.rf_factor)
                                   if config.head_stages is None else config.head_stages, config.topology, spec.size)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    if config.backdrop:
        for what, value in (("mask probabilities", config.mask_prob), ("mask block sizes", config.mask_block)):
            if isinstance(value, tuple) and len(value) != K:
                raise ConfigError(f"got {len(value)} {what} for {K} scales; give one per scale, or one for all")
    if config.crop is not None:
        deepest = 2 ** max(stages)
        if not deepest <= config.crop <= spec.size:
            raise ConfigError(f"`crop` must be between {deepest} (one pixel at the deepest head's stage) and the "
                              f"image size {spec.size}, but got {config.crop}")


def resolve_sizes(config: TrainConfig, n_classes: int, available: int, test_available: int | None = None
                  ) -> TrainConfig:
    """``config`` with ``n_train`` and ``n_test`` given: each one left ``None`` becomes the multiple of
    ``n_classes`` nearest :data:`DEFAULT_SIZE` that the data hold.

    Parameters
    ----------
    config : the settings.
    n_classes : classes of the data.
    available : samples of ``config.data``; the training and (without ``test_available``) the
        test subset are drawn from them, disjoint.
    test_available : samples of ``config.test_data``, where the test subset comes from.
    """
    missing = [name for name in ("n_train", "n_test") if getattr(config, name) is None]
    if not missing:
        return config
    wanted = max(1, round(DEFAULT_SIZE / n_classes))
    other = {"n_train": "n_test", "n_test": "n_train"}
    sizes = {}
    for name in missing:
        beside = None
        if test_available is not None:
            held = available if name == "n_train" else test_available
            room = held // n_classes
        else:
            # Both subsets come from the same samples: a given one leaves the rest, else each gets half.
            held, beside = available, getattr(config, other[name])
            room = held // n_classes - beside // n_classes if beside is not None else held // n_classes // 2
        if room < 1:
            raise ConfigError(f"{other[name]}={beside} is more than the {held} samples can hold beside a "
                              f"class-balanced {name} over {n_classes} classes" if beside is not None else
                              f"{held} samples are too few for a class-balanced {name} over {n_classes} classes")
        sizes[name] = min(wanted, room) * n_classes
    return dataclasses.replace(config, **sizes)


def default_epochs(spec: DatasetSpec) -> int:
    """Epochs of a run on ``spec``'s data when none are given: :data:`DEFAULT_EPOCHS` on images of
    :data:`REFERENCE_PIXELS` or more, else as many more as see the same number of pixels; times
    ``K - 3`` for ``K`` > :data:`SCALES_AT_DEFAULT_EPOCHS` scales; at most :data:`MAX_EPOCHS` (120 on
    the 2048-pixel lines of ``msgp generate --ndim 1`` and on 64² images, 60 for five scales at 128²).

    Small images are cheap, and a run on them took too few optimiser steps to learn with 30
    epochs, while the whole pixel budget of 30 epochs at 128² overfitted, hence the cap; five
    scales needed more epochs than four (the measurements: docs/training.md, **Epochs**)."""
    pixels = spec.size ** spec.ndim
    by_pixels = max(DEFAULT_EPOCHS, round(DEFAULT_EPOCHS * REFERENCE_PIXELS / pixels))
    return min(MAX_EPOCHS, by_pixels * max(1, spec.n_scales - SCALES_AT_DEFAULT_EPOCHS + 1))


def resolve_epochs(config: TrainConfig, spec: DatasetSpec) -> TrainConfig:
    """``config`` with ``epochs`` given: :func:`default_epochs` of ``spec`` when it is ``None``."""
    return config if config.epochs is not None else dataclasses.replace(config, epochs=default_epochs(spec))


def _data_source(name: str, value) -> str | dict[str, Any]:
    """A file's path as a string, or a dataset description as the dict of its (checked) fields, the
    form that config.json stores and a resumed run compares."""
    if isinstance(value, DatasetSpec):
        return value.to_dict()
    if isinstance(value, dict):
        try:
            return DatasetSpec.from_dict(value).to_dict()
        except SpecError as err:
            error = ConfigTypeError if isinstance(err, TypeError) else ConfigError
            raise error(f"{name} is an invalid dataset description: {err}") from None
    return str(_ARGS.path(name, value, DATA))


def _one_or_per_scale(name: str, value, is_one: Callable, what: str, convert: Callable):
    """``value`` as one ``convert``-ed setting for every scale, or a tuple of them, one per scale (its
    length is checked against the data's scales by :func:`check_config`)."""
    if is_sequence(value):
        if not all(map(is_one, value)):
            raise ConfigTypeError(f"`{name}` must be {what} or a list of them, one per scale, but got {value!r}")
        if len(value) == 0:
            raise ConfigError(f"`{name}` must be {what} or a non-empty list of them, one per scale, but got {value!r}")
        return tuple(convert(v) for v in value)
    if not is_one(value):
        raise ConfigTypeError(f"`{name}` must be {what} or a list of them, one per scale, but got {value!r}")
    return convert(value)


def default_run_dir() -> Path:
    """``runs/<date-time>``: where a run goes when no directory is given."""
    return Path("runs") / time.strftime("%Y%m%d-%H%M%S")


def read_config(run_dir: str | os.PathLike) -> TrainConfig:
    """The configuration of the run in ``run_dir`` (its ``config.json``)."""
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise CheckpointError(f"{run_dir} is not a training run (no config.json)")
    try:
        return TrainConfig.from_dict(json.loads(path.read_text())["train"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{path} is damaged: {err}") from None
