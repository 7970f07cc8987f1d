"""The training loop. :func:`train` sets a run up (:func:`_set_up`: data, network, optimiser,
random streams, or the state a checkpoint saved), then alternates :func:`train_one_epoch` and
:func:`end_epoch` (scoring, metrics, checkpoint) up to the last epoch, and writes the summary. Every
``config.log_every`` steps a step record goes to the loggers and waits in memory to be written to
``metrics.jsonl`` with its epoch's record, so that the file is rewritten once per epoch as before.

Determinism. Every random stream is explicit and derived from ``config.seed`` with
:class:`numpy.random.SeedSequence` spawn keys: the weight initialisation, the shuffling (a
DistributedSampler whose order is a function of ``(seed, epoch)``), the crop offsets and the
symmetries (one CPU ``torch.Generator`` each, drawing for the whole global batch on every rank,
each rank keeping its own samples' rows) and the backdrop masks (one ``torch.Generator`` per scale
on the run's device, reseeded at every step from the seed, the scale and the step). The checkpoint
stores the CPU generator states, the position inside the epoch and the running sums, so a resumed
run repeats an uninterrupted one exactly on CPU, and it holds nothing tied to a device.
"""
from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler

from msgp.atomic import atomic_open, atomic_write
from msgp.spec import DatasetSpec

from ..distributed import GlobalBatchMasks
from ..models import MultiScaleNet, build_network
from .checkpoints import CHECKPOINT_FORMAT, CHECKPOINT_VERSION, _restore_rng_states, _rng_states, load_checkpoint
from .config import (RESUMABLE, CheckpointError, ConfigError, Interrupted, Progress, TrainConfig, TrainingError,
                     check_config, read_config, resolve_epochs, resolve_sizes)
from .data import (Samples, apply_symmetries, data_identity, draw_symmetries, load_samples, open_data, run_subsets,
                   take_crops)
from .devices import _all_sum, _world, precision_context, resolve_device
from .evaluation import _accuracies, _correct, _summary, _test_metrics, calibrate
from .loggers import Logger, scalars
from .outputs import _append_metrics, _truncate_metrics, _write_config, plot_curves, read_metrics

# Spawn keys of the random streams derived from the seed.
_INIT, _SHUFFLE, _CROP, _BACKDROP, _AUGMENT = range(5)


def train(config: TrainConfig, out: str | Path, *, resume: bool = False,
          progress: Progress | None = None, should_stop: Callable[[], bool] | None = None,
          loggers: Sequence[Logger] = ()) -> dict[str, Any]:
    """Train a :class:`MultiScaleNet` and write the run directory ``out``.

    Parameters
    ----------
    config : the settings. With ``resume`` they must equal the saved run's except ``epochs`` (above
        the epochs done) and ``device``, and the data must be the ones it was trained on.
    out : run directory: ``config.json``, ``metrics.jsonl``, ``checkpoint.pt`` (after every epoch
        and on interruption), ``summary.json`` and ``curves.png`` (if matplotlib is installed),
        each written atomically (whole or not at all).
    resume : continue the run saved in ``out`` from its checkpoint, on its train and test samples;
        a run stopped before its first checkpoint (``config.json`` alone) starts afresh.
    progress : ``progress(event, info)`` with events ``"start"`` (``total_steps``, ``done_steps``,
        ``steps_per_epoch``, ``epochs``, ``device``, ``head_stages``, and the sizes used: ``n_train``, ``n_test``,
        ``n_classes``), ``"step"`` (``loss``, ``images_per_s``)
        and ``"epoch"`` (the epoch's metrics); called on rank 0 only.
    should_stop : polled after every step; when it returns true (on any rank) a checkpoint is
        saved and :class:`Interrupted` is raised.
    loggers : objects with ``log_step(step, scalars)``, ``log_epoch(step, scalars)`` and ``close()``
        (:mod:`backdrop.training.loggers`: :class:`TensorBoardLogger`, :class:`CSVLogger`), given
        every step record and epoch record as ``metrics.jsonl`` gets it, on rank 0 only, and closed
        (on rank 0) when training ends, finished, interrupted or failed, once the set-up has passed.

    Returns
    -------
    The summary written to ``summary.json``: test accuracies beside the oracle's on the same test
    samples (``{"joint": p, "scales": [p_0, ...]}`` each), the chance levels, the run settings.

    Raises
    ------
    TrainingError : a non-finite loss or gradient (no step is taken with it) or non-finite weights;
        no checkpoint is written then, so the last one written (the last good epoch) is kept.
    Interrupted : ``should_stop`` asked to stop; the checkpoint allows resuming (:func:`resume`).
    msgp.MSGPError : bad input (:class:`ConfigError`, :class:`CheckpointError`,
        :class:`IncompatibleDataError`, the data's own errors), one line each, before anything is
        written.
    """
    run = _set_up(config, Path(out), resume)
    config = run.config  # with its sizes resolved
    notify = progress if (progress is not None and run.rank == 0) else (lambda event, info: None)
    notify("start", {"total_steps": run.total_steps, "done_steps": run.epoch * run.steps_per_epoch + run.step,
                     "steps_per_epoch": run.steps_per_epoch, "epochs": config.epochs, "device": str(run.device), "world_size": run.world,
                     "head_stages": list(run.model.head_stages), "method": config.method,
                     "n_train": config.n_train, "n_test": config.n_test, "n_classes": run.spec.n_classes})
    run.loggers = list(loggers) if run.rank == 0 else []
    try:
        while run.epoch < config.epochs:
            train_one_epoch(run, notify, should_stop)
            notify("epoch", end_epoch(run))
        return _finish(run)
    finally:
        # An interruption or a failure leaves step records unwritten; those past the checkpoint are
        # dropped again when the run resumes.
        if run.rank == 0 and run.steps:
            _append_metrics(run.out / "metrics.jsonl", *run.steps)
        for logger in run.loggers:
            logger.close()


def resume(run_dir: str | Path, *, progress: Progress | None = None, should_stop: Callable[[], bool] | None = None,
           loggers: Sequence[Logger] = (), **settings) -> dict[str, Any]:
    """Continue the run saved in ``run_dir`` with its saved settings (``config.json``), as
    ``msgp train --out RUN --resume`` does, and return its summary (see :func:`train`).

    ``settings`` are TrainConfig fields in place of the saved ones (:meth:`TrainConfig.from_options`):
    ``epochs`` (more than the epochs done) and ``device`` may change; any other setting that differs
    from the saved one makes another run, which is refused with a :class:`CheckpointError`. A run
    stopped before its first checkpoint starts afresh with its settings. ``progress``,
    ``should_stop`` and ``loggers`` are :func:`train`'s.

    Example::

        summary = resume("runs/first", epochs=40)   # 10 more epochs of a 30-epoch run
    """
    config = TrainConfig.from_options(read_config(run_dir), **settings)
    return train(config, run_dir, resume=True, progress=progress, should_stop=should_stop, loggers=loggers)


def train_one_epoch(run: _Run, notify: Progress, should_stop: Callable[[], bool] | None = None) -> None:
    """The remaining steps of the current epoch; checkpoints and raises :class:`Interrupted` when
    ``should_stop`` asks, :class:`TrainingError` on a non-finite loss."""
    config, K = run.config, run.spec.n_scales
    run.net.train()
    run.sampler.set_epoch(run.epoch)
    order = torch.as_tensor(list(iter(run.sampler)))
    local_batch = config.batch_size // run.world
    while run.step < run.steps_per_epoch:
        started = time.perf_counter()
        idx = order[run.step * local_batch:(run.step + 1) * local_batch]
        global_step = run.epoch * run.steps_per_epoch + run.step
        lr = learning_rate(global_step, run.total_steps, config.lr, config.warmup)
        stats, norm = _train_step(run, idx, global_step, lr, should_stop)
        run.sums[:K] += stats[:K]
        run.sums[K:] += stats[K:-1]
        run.step += 1
        if config.log_every and (global_step + 1) % config.log_every == 0 and run.rank == 0:
            _log_step(run, {"kind": "step", "step": global_step + 1, "epoch": run.epoch + 1, "lr": lr,
                           "train_loss": stats[:K].tolist(), "grad_norm": norm.item()})
        seconds = time.perf_counter() - started
        run.train_seconds += seconds
        notify("step", {"epoch": run.epoch, "step": run.step, "loss": stats[:K].sum().item(),
                        "images_per_s": stats[-2].item() / seconds})
        if stats[-1] > 0:
            save_checkpoint(run)
            raise Interrupted(f"stopped at epoch {run.epoch + 1}, step {run.step}; the checkpoint in {run.out} "
                              "resumes the run (`resume=True`)")


def _train_step(run: _Run, idx: torch.Tensor, global_step: int, lr: float, should_stop: Callable[[], bool] | None
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimiser step on this rank's images of batch positions ``idx``, at learning rate
    ``lr``. Returns the step's statistics summed over the ranks (per-scale losses averaged, correct
    counts, samples, images, and the stop request) and the gradient norm; raises
    :class:`TrainingError`, before any step is taken, on a non-finite loss or gradient norm."""
    config, K = run.config, run.spec.n_scales
    x, y = _batch(run, idx)
    for group in run.optimizer.param_groups:
        group["lr"] = lr
    # The masks of a step are a function of (seed, scale, step): a checkpoint needs only the
    # step, not the generators' states, which are device-specific (a CUDA generator's 16 bytes
    # do not load into a CPU generator) and would tie a run to the device it started on.
    for s, g in enumerate(run.mask_generators):
        g.manual_seed(stream_seed(config.seed, _BACKDROP, s, global_step))
    logits, losses = forward_losses(run.net, run.model, x, y, config, run.device)
    stats = torch.cat([losses.detach().double(), _correct(run.model, logits.detach(), y),
                       torch.tensor([len(y), len(idx)], dtype=torch.float64, device=run.device),
                       torch.tensor([float(should_stop is not None and should_stop())],
                                    dtype=torch.float64, device=run.device)])
    stats = _all_sum(stats).cpu()
    stats[:K] /= run.world
    if not torch.isfinite(stats[:K]).all():
        raise _diverged(run, "the loss", stats[:K].sum().item())
    # A finite loss can still have an infinite gradient entry; clipping would turn it into NaN
    # weights, so no step is taken with it (DDP gives every rank the same gradient norm).
    norm = apply_gradients(run.model, run.optimizer, losses, config, run.device)
    if not torch.isfinite(norm):
        raise _diverged(run, "the gradient norm", norm.item())
    return stats, norm


def end_epoch(run: _Run) -> dict[str, Any]:
    """Check the weights are finite, score the test set if this epoch is due, append the epoch's
    record to ``metrics.jsonl``, move to the next epoch and checkpoint; returns the record."""
    config, K = run.config, run.spec.n_scales
    check_finite(run)  # before anything of this epoch is written
    epoch = run.epoch + 1
    test = {"loss": None, "joint": None, "scales": None}
    if epoch == config.epochs or (config.eval_every and epoch % config.eval_every == 0):
        with precision_context("fp32", run.device):
            calibrate(run.model, run.train_data, run.device, config.eval_batch_size, config.crop)
            test = _test_metrics(run.model, run.test_data, run.device, config.eval_batch_size, config.crop)
    count, images = run.sums[-2].item(), run.sums[-1].item()
    record = {"epoch": epoch,
              "lr": learning_rate(epoch * run.steps_per_epoch - 1, run.total_steps, config.lr, config.warmup),
              "train_loss": (run.sums[:K] / run.steps_per_epoch).tolist(),
              "train_accuracy": _accuracies(run.sums[K:-2], count),
              "test_loss": test["loss"],
              "test_accuracy": None if test["joint"] is None else {"joint": test["joint"], "scales": test["scales"]},
              "images_per_s": images / run.train_seconds if run.train_seconds > 0 else float("nan")}
    run.epoch, run.step, run.train_seconds = epoch, 0, 0.0
    run.sums.zero_()
    if run.rank == 0:
        _append_metrics(run.out / "metrics.jsonl", *run.steps, record)
        run.steps.clear()
        for logger in run.loggers:
            logger.log_epoch(epoch * run.steps_per_epoch, scalars(record))
    save_checkpoint(run)
    return record


def _log_step(run: _Run, record: dict[str, Any]) -> None:
    """Give a step record to the loggers, and keep it for ``metrics.jsonl`` (written with the epoch's
    record by :func:`end_epoch`)."""
    run.steps.append(record)
    for logger in run.loggers:
        logger.log_step(record["step"], scalars(record))


def check_finite(run: _Run) -> None:
    """Raise :class:`TrainingError` if a weight or an optimiser state of ``run`` is not finite;
    called on every rank (their weights are the same), so that all of them stop."""
    tensors = [*run.model.state_dict().items(),
               *((f"optimizer {name}", t) for state in run.optimizer.state.values() for name, t in state.items())]
    bad = next((name for name, t in tensors if torch.is_tensor(t) and t.is_floating_point()
                and not torch.isfinite(t).all()), None)
    if bad is not None:
        when = f"epoch {run.epoch + 1}, step {run.step}" if run.step else f"the end of epoch {run.epoch}"
        raise TrainingError(f"{bad} became non-finite by {when}; training stopped and {_kept(run)}; "
                            "try a smaller `lr`")


def _diverged(run: _Run, what: str, value: float) -> TrainingError:
    """The error that stops a run whose ``what`` became ``value`` (not finite) during its current step."""
    return TrainingError(f"{what} became {value} at epoch {run.epoch + 1}, step {run.step + 1}; training stopped "
                         f"and {_kept(run)}; try a smaller `lr`")


def _kept(run: _Run) -> str:
    """What the run directory keeps of a run that stopped on non-finite numbers."""
    if run.saved is None:
        return "no checkpoint had been written"
    epoch, step = run.saved
    if step == 0:
        return f"{run.out / 'checkpoint.pt'} keeps the last good epoch ({epoch})"
    return f"{run.out / 'checkpoint.pt'} keeps the last good state (epoch {epoch + 1}, step {step})"


def learning_rate(step: int, total_steps: int, peak: float, warmup: float) -> float:
    """The learning rate of step ``step`` (from 0) of ``total_steps``: a linear warm-up from
    ``peak / w`` to ``peak`` over the first ``w = round(warmup * total_steps)`` steps, then a cosine
    decay from ``peak`` towards zero over the rest (a one-cycle schedule).

    A function of the step alone, so a resumed run needs nothing saved; resumed with another
    ``epochs`` the schedule stretches over the new total.
    """
    warm = round(warmup * total_steps)
    if step < warm:
        return peak * (step + 1) / warm
    return 0.5 * peak * (1.0 + math.cos(math.pi * (step - warm) / max(total_steps - warm, 1)))


# One step, shared with the experiment's step timer ------------------------------------------------------

def transform_batch(x: torch.Tensor, y: torch.Tensor, config: TrainConfig, spec: DatasetSpec,
                    augment_generator: torch.Generator, crop_generator: torch.Generator,
                    rows: slice = slice(None)) -> tuple[torch.Tensor, torch.Tensor]:
    """A step's random symmetries (``config.augment``), then crops (``config.crop``), of the images
    ``x`` and choices ``y``. Both are drawn for the whole global batch of ``config.batch_size``
    images, so that every rank's generators stay in step, and ``rows`` of it are applied."""
    if config.augment:
        drawn = draw_symmetries(config.batch_size, spec.ndim, spec.size, augment_generator)
        x = apply_symmetries(x, *(t[rows] for t in drawn))
    if config.crop is not None:
        per_image = crops_per_image(config, spec)
        offsets = torch.randint(0, spec.size, (config.batch_size, per_image, spec.ndim), generator=crop_generator)[rows]
        x = take_crops(x, offsets, config.crop)
        y = y.repeat_interleave(per_image, dim=0)
    return x, y


def crops_per_image(config: TrainConfig, spec: DatasetSpec) -> int:
    """Training samples cut from each image per step: (size // crop)^ndim, or 1 without crops."""
    return 1 if config.crop is None else (spec.size // config.crop) ** spec.ndim


def make_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """AdamW over the model's parameters at ``config.lr``, with ``config.weight_decay``; the schedule
    sets the learning rate of every step (:func:`learning_rate`)."""
    return torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)


def forward_losses(net: torch.nn.Module, model: MultiScaleNet, x: torch.Tensor, y: torch.Tensor, config: TrainConfig,
                   device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The logits (float32) and per-scale losses of a batch, computed at ``config.precision``."""
    with precision_context(config.precision, device):
        logits = net(x).float()
        return logits, model.scale_losses(logits, y)


def apply_gradients(model: torch.nn.Module, optimizer: torch.optim.Optimizer, losses: torch.Tensor,
                    config: TrainConfig, device: torch.device) -> torch.Tensor:
    """Backward of the summed losses, gradient clipping at ``config.clip_grad``, one AdamW step.

    Returns the gradient's global norm before clipping; when it is not finite no step is taken,
    so the weights stay finite, and the caller decides what to do.
    """
    optimizer.zero_grad(set_to_none=True)
    with precision_context(config.precision, device, autocast=False):
        losses.sum().backward()
    if config.clip_grad is not None:
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip_grad)
    else:
        norm = torch.nn.utils.get_total_norm([p.grad for p in model.parameters() if p.grad is not None])
    if torch.isfinite(norm):
        optimizer.step()
    return norm


# Set-up ---------------------------------------------------------------------------------------------

@dataclass
class _Run:
    """A training run between steps: what it trains, with what, and where it is; a checkpoint saves
    the changing part (weights, optimiser, generators, epoch, step, running sums)."""

    config: TrainConfig
    out: Path
    spec: DatasetSpec
    train_data: Samples
    test_data: Samples
    model: MultiScaleNet
    net: torch.nn.Module  # the model, or its DistributedDataParallel wrapper
    optimizer: torch.optim.Optimizer
    device: torch.device
    rank: int
    world: int
    sampler: DistributedSampler
    mask_generators: list[torch.Generator]
    crop_generator: torch.Generator
    augment_generator: torch.Generator
    epoch: int = 0
    step: int = 0
    # Losses (K), correct counts (K + 1), samples and images of the epoch so far.
    sums: torch.Tensor = field(default=None)
    train_seconds: float = 0.0
    saved: tuple[int, int] | None = None  # (epoch, step) of the checkpoint in ``out``, if any
    # Rank 0's loggers, and its step records not yet in metrics.jsonl; neither is checkpointed.
    loggers: list[Logger] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)

    @property
    def steps_per_epoch(self) -> int:
        return self.config.n_train // self.config.batch_size

    @property
    def total_steps(self) -> int:
        return self.steps_per_epoch * self.config.epochs

    @property
    def crops_per_image(self) -> int:
        return crops_per_image(self.config, self.spec)


def _set_up(config: TrainConfig, out: Path, resume: bool) -> _Run:
    """The run ``train`` starts from: new, or the one saved in ``out`` (``resume``). Every check of the
    settings against the data and the directory comes before anything is written."""
    rank, world = _world()
    device = resolve_device(config.device)
    if config.batch_size % world:
        raise ConfigError(f"`batch_size` ({config.batch_size}) must be divisible by the number of processes ({world})")
    if out.exists() and not out.is_dir():
        raise CheckpointError(f"{out} is a file, not a run directory")
    data = open_data(config.data)
    test_file = None if config.test_data is None else open_data(config.test_data)
    config = resolve_sizes(config, data.spec.n_classes, len(data), None if test_file is None else len(test_file))
    config = resolve_epochs(config, data.spec)
    check_config(config, data.spec)
    ckpt = _saved_run(config, out, world) if resume else None
    if not resume and ((out / "checkpoint.pt").exists() or (out / "config.json").exists()):
        raise CheckpointError(f"{out} already holds a run; pass `resume=True` to continue it or choose another `out`")
    train_set, test_set = run_subsets(config, data, test_file, ckpt)
    spec = train_set.spec
    # Seeded at every step (train_one_epoch); made here so that the model holds them.
    mask_generators = [torch.Generator(device=device) for _ in range(spec.n_scales)] if config.backdrop else []
    model = build_model(config, spec, mask_generators)
    model.to(device)
    net = (DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)
           if dist.is_initialized() else model)
    train_data = load_samples(train_set)
    run = _Run(config=config, out=out, spec=spec, train_data=train_data, test_data=load_samples(test_set), model=model,
               net=net, optimizer=make_optimizer(model, config),
               device=device, rank=rank, world=world,
               sampler=DistributedSampler(range(len(train_data.fields)), num_replicas=world, rank=rank, shuffle=True,
                                          seed=stream_seed(config.seed, _SHUFFLE) % 2**31, drop_last=False),
               mask_generators=mask_generators, crop_generator=_generator(stream_seed(config.seed, _CROP)),
               augment_generator=_generator(stream_seed(config.seed, _AUGMENT)),
               sums=torch.zeros(2 * spec.n_scales + 3, dtype=torch.float64))
    if world > 1 and config.backdrop:
        GlobalBatchMasks(model, rank, world, run.crops_per_image)
    if ckpt is not None:
        _restore(run, ckpt)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        _write_config(out / "config.json", config, spec, model, run.train_data, run.test_data, world)
        _truncate_metrics(out / "metrics.jsonl", run.epoch, run.epoch * run.steps_per_epoch + run.step)
    return run


def build_model(config: TrainConfig, spec: DatasetSpec,
                mask_generators: list[torch.Generator] | None = None) -> MultiScaleNet:
    """The network ``config`` describes for data ``spec``, initialised from the config's seed:
    circular padding on whole images, zeros on crops; backdrop layers drawing from
    ``mask_generators`` (one per scale) when ``config.backdrop``; refused with a ConfigError
    (:func:`check_config`) when the data cannot take it. With ``config.network``, the module that
    network method builds (:func:`backdrop.models.build_network`), under the same seed."""
    check_config(config, spec)
    if config.network is not None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(stream_seed(config.seed, _INIT))
            return build_network(config.network, spec)
    K = spec.n_scales
    probs = config.mask_prob if isinstance(config.mask_prob, tuple) else (config.mask_prob,) * K
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(stream_seed(config.seed, _INIT))
        model = MultiScaleNet.from_spec(spec, rf_factor=config.rf_factor, head_stages=config.head_stages,
                                        width=config.width, mask_prob=probs if config.backdrop else None,
                                        generators=mask_generators if config.backdrop else None,
                                        topology=config.topology,
                                        padding="circular" if config.crop is None else "zeros",
                                        mask_block=config.mask_block if config.backdrop else None,
                                        whiten=config.whiten and config.crop is None,
                                        mask_scope=config.mask_scope)
    return model


def _batch(run: _Run, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """This rank's images and per-scale choices for batch positions ``idx``, with the step's
    symmetries and crops applied, on the run's device."""
    x, y = transform_batch(run.train_data.fields[idx], run.train_data.choices[idx], run.config, run.spec,
                           run.augment_generator, run.crop_generator, rows=slice(run.rank, None, run.world))
    return x.to(run.device), y.to(run.device)


def _finish(run: _Run) -> dict[str, Any]:
    """Write ``summary.json`` and ``curves.png`` (rank 0) and return the summary on every rank."""
    summary = None
    if run.rank == 0:
        summary = _summary(run.config, run.spec, run.test_data, read_metrics(run.out)[-1], run.world)
        atomic_write(run.out / "summary.json", json.dumps(summary, indent=2) + "\n")
        plot_curves(run.out)
    if dist.is_initialized():
        holder = [summary]
        dist.broadcast_object_list(holder, src=0)
        summary = holder[0]
    return summary


# Random streams and checkpoints ----------------------------------------------------------------------

def stream_seed(root: int, *key: int) -> int:
    """A 63-bit seed for the stream ``key`` of the root seed: the first 64 bits of
    ``SeedSequence(root, spawn_key=key)``, shifted right by one (``torch.Generator.manual_seed``
    takes it as it is).

    Examples
    --------
    >>> stream_seed(0, 1) == stream_seed(0, 1) != stream_seed(1, 0)
    True
    """
    return int(np.random.SeedSequence(root, spawn_key=key).generate_state(1, np.uint64)[0] >> np.uint64(1))


def _generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(seed)
    return g


def _saved_run(config: TrainConfig, out: Path, world: int) -> dict[str, Any] | None:
    """The checkpoint a resumed run continues from, refused when it is not the same run
    (:meth:`TrainConfig.changed_from` with :data:`RESUMABLE` ignored), was trained by another number
    of processes, or has done ``config.epochs`` epochs or more; ``None`` for a run stopped before
    its first checkpoint, which starts afresh."""
    path = out / "checkpoint.pt"
    if not path.exists() and (out / "config.json").exists():
        # Stopped during its first epoch: nothing was trained that a fresh start would not repeat.
        _check_resumable_with(read_config(out), config, out)
        return None
    ckpt = load_checkpoint(path)
    if ckpt["version"] != CHECKPOINT_VERSION:
        raise CheckpointError(f"{path} was written by an earlier msgp train (checkpoint version {ckpt['version']}); "
                              "msgp evaluate scores it, but it cannot be resumed")
    saved = TrainConfig.from_dict(ckpt["config"])
    _check_resumable_with(saved, config, out)
    if ckpt.get("world_size") != world:
        raise CheckpointError(f"{out} was trained by {ckpt.get('world_size')} processes; resume it with "
                              f"{ckpt.get('world_size')}, not {world}")
    done = ckpt["epoch"]
    # A run that finished all its epochs resumes to write what a kill after its last checkpoint
    # left unwritten (summary.json); any other run needs epochs still to train.
    finished = done == saved.epochs == config.epochs and ckpt["step"] == 0
    if config.epochs <= done and not finished:
        raise CheckpointError(f"{out} has done {done} epoch{'s' * (done != 1)}, so `epochs={config.epochs}` leaves "
                              f"nothing to train; resume it with `epochs` above {done}")
    return ckpt


def _check_resumable_with(saved: TrainConfig, config: TrainConfig, out: Path) -> None:
    """Refuse to resume the run ``saved`` in ``out`` with settings ``config`` that make another run:
    any difference but those :data:`RESUMABLE` allows."""
    changed = saved.changed_from(config, ignore=RESUMABLE)
    if changed:
        raise CheckpointError(f"cannot resume {out} with other settings ({', '.join(changed)}); "
                              "only `epochs` and `device` may change")


def save_checkpoint(run: _Run) -> None:
    """``checkpoint.pt`` (rank 0): everything a resumed run needs to repeat this one exactly;
    :func:`check_finite` first, so that non-finite weights never replace the last good checkpoint."""
    check_finite(run)
    run.saved = (run.epoch, run.step)
    if run.rank != 0:
        return
    with atomic_open(run.out / "checkpoint.pt", "wb") as f:
        torch.save({
            "format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION,
            "config": run.config.to_dict(), "spec": run.spec.to_dict(), "model": run.model.config(),
            "data": data_identity(run.train_data.spec, run.test_data.spec),
            "train_indices": run.train_data.indices.tolist(), "test_indices": run.test_data.indices.tolist(),
            "state": run.model.state_dict(), "optimizer": run.optimizer.state_dict(),
            "epoch": run.epoch, "step": run.step, "sums": run.sums, "train_seconds": run.train_seconds,
            "world_size": run.world,
            "rng": {**_rng_states(), "crop": run.crop_generator.get_state(),
                    "augment": run.augment_generator.get_state()},
        }, f)


def _restore(run: _Run, ckpt: dict[str, Any]) -> None:
    """Put the state ``save_checkpoint`` saved back into ``run``."""
    try:
        run.model.load_state_dict(ckpt["state"])
        run.optimizer.load_state_dict(ckpt["optimizer"])
        run.crop_generator.set_state(ckpt["rng"]["crop"])
        run.augment_generator.set_state(ckpt["rng"]["augment"])
        _restore_rng_states(ckpt["rng"])
    except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"{run.out / 'checkpoint.pt'} does not fit this run: {str(err).splitlines()[0]}") from None
    run.epoch, run.step = ckpt["epoch"], ckpt["step"]
    run.saved = (run.epoch, run.step)
    run.sums = ckpt["sums"].clone()
    run.train_seconds = ckpt["train_seconds"]
