"""A plan's time on this machine, before running it: the training step timed as the trainer takes
it (:class:`StepTimer`), the machine's rates (:func:`measure_rates`), the estimate from them
(:func:`estimate`) and the plan described with its estimate (:func:`describe_plan`, the network
family's part of :func:`backdrop.runner.dry_run`)."""
from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from msgp import oracle
from msgp.generate import Sampler
from msgp.spec import DatasetSpec

from .. import training
from ..runner import check_jobs, duration, read_result
from .data import data_specs, reusable
from .methods import is_fitted
from .plans import BACKDROP_METHODS, ExperimentError, ExperimentPlan
from .report import plan_summary
from .runs import Run, make_run, plan_runs, trained_images
from .statistics import _group

# Seconds per run beyond its training steps, test-time forwards and oracle: building the network,
# reading its subsets, a checkpoint per epoch, summary.json and curves.png (measured: 0.5 to 1 s
# per run of 32² images on one loaded CPU core).
RUN_OVERHEAD_S = 1.0


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class StepTimer:
    """Times the training step and the test-time forward pass of one run's settings.

    A step is what :func:`training.train` does per batch: the method's symmetries or crops on the
    CPU, the copy to the device, forward and losses at ``config.precision``, backward, gradient
    clipping, AdamW, and reading the losses back; the network is built as the trainer builds it.
    The fields are random normal (the time does not depend on their values).

    Parameters
    ----------
    config : the run's settings; its data files are not read.
    spec : the data's description (shape, scales, amplitudes).
    batch : images per step (default ``config.batch_size``; at least 2 for the batch statistics).
    """

    def __init__(self, config: training.TrainConfig, spec: DatasetSpec, batch: int | None = None):
        # The trainer's step on a global batch of ``batch`` images.
        self.config = config if batch is None else dataclasses.replace(config, batch_size=batch,
                                                                         n_train=max(config.n_train, batch))
        self.spec, self.batch = spec, self.config.batch_size
        self.device = training.resolve_device(config.device)
        K = spec.n_scales
        generators = [torch.Generator(self.device).manual_seed(config.seed + s) for s in range(K)]
        self.model = training.build_model(config, spec, generators).to(self.device)
        self.optimizer = training.make_optimizer(self.model, config)
        self.generator = torch.Generator().manual_seed(config.seed)
        self.fields = torch.randn(self.batch, 1, *spec.shape, generator=self.generator)
        self.choices = torch.randint(0, spec.n_choices, (self.batch, K), generator=self.generator)

    def train_step(self) -> float:
        """Seconds of one training step, the device synchronised at both ends."""
        config, device = self.config, self.device
        _synchronize(device)
        started = time.perf_counter()
        x, y = training.transform_batch(self.fields, self.choices, config, self.spec, self.generator, self.generator)
        x, y = x.to(device), y.to(device)
        _, losses = training.forward_losses(self.model, self.model, x, y, config, device)
        training.apply_gradients(self.model, self.optimizer, losses, config, device)
        losses.detach().cpu()
        _synchronize(device)
        return time.perf_counter() - started

    @torch.no_grad()
    def test_step(self) -> float:
        """Seconds of one test-time forward pass over the batch: eval mode, float32, whole images
        (a crop-trained network's tiles hold the same pixels)."""
        self.model.eval()
        _synchronize(self.device)
        started = time.perf_counter()
        with training.precision_context("fp32", self.device):
            self.model(self.fields.to(self.device)).float().cpu()
        _synchronize(self.device)
        self.model.train()
        return time.perf_counter() - started


@dataclass(frozen=True)
class Rates:
    """Throughputs measured on one machine, for :func:`estimate`.

    Parameters
    ----------
    device : where the networks ran, e.g. ``cpu`` or ``cuda (NVIDIA H200)``.
    threads : torch's CPU threads during the measurement.
    batch : images per timed training step.
    train : training images per second, by method.
    test : test-time images per second (forward passes in eval mode).
    oracle : samples per second scored by the oracle (CPU, float64).
    generate : samples per second drawn by the CPU sampler (``msgp generate``, one process).
    """

    device: str
    threads: int
    batch: int
    train: dict[str, float] = field(default_factory=dict)
    test: float = math.nan
    oracle: float = math.nan
    generate: float = math.nan

    def describe(self) -> str:
        methods = ", ".join(f"{m} {_rate(r)}" for m, r in self.train.items())
        return (f"Measured on {self.device}, {self.threads} CPU thread{'s' if self.threads > 1 else ''}, "
                f"batches of {self.batch}: training images/s {methods}; test-time {_rate(self.test)} images/s; "
                f"oracle {_rate(self.oracle)} samples/s; generation {_rate(self.generate)} samples/s.")


def _rate(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def _per_second(run: Callable[[], float], items: int, seconds: float) -> float:
    """``items`` per second of ``run()``, which returns the seconds it took, repeated for about
    ``seconds`` (at least once)."""
    spent, done = 0.0, 0
    while done == 0 or spent < seconds:
        spent += run()
        done += items
    return done / spent


def _methods(plan: ExperimentPlan) -> dict[str, Run]:
    """One run of each method the plan trains (its largest size, seed 0), to time."""
    runs = {}
    for run in plan_runs(plan):
        if not is_fitted(plan, run.method):
            runs.setdefault(run.method, make_run(run.method, max(plan.sizes), 0, run.masks))
    return runs


def measure_rates(plan: ExperimentPlan, seconds: float = 1.0, batch: int | None = None,
                  threads: int | None = None) -> Rates:
    """Measure on this machine what :func:`estimate` needs, for about ``seconds`` each.

    Parameters
    ----------
    plan : the plan to measure (its data size, methods, network and device).
    seconds : time spent on each rate; at least one step or sample is always timed.
    batch : images per timed training step; default the plan's batch on CUDA and 2 on CPU, where
        a step's time is proportional to its images and one step of 16 at 1024² takes a minute.
    threads : torch's CPU threads while measuring (the runs of ``jobs`` > 1 have one each);
        ``None`` leaves them as they are.
    """
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        device = training.resolve_device(plan.device)
        name = f"cuda ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "cpu"
        batch = batch or (plan.batch_size if device.type == "cuda" else 2)
        generate_rate, fields = _generation_rate(plan, seconds)
        oracle_rate = _oracle_rate(plan, fields, seconds)
        train, test = _network_rates(plan, device, batch, seconds)
        return Rates(name, torch.get_num_threads(), batch, train, test, oracle_rate, generate_rate)
    finally:
        torch.set_num_threads(previous)


def _generation_rate(plan: ExperimentPlan, seconds: float) -> tuple[float, np.ndarray]:
    """Training samples drawn per second by the CPU sampler, and the samples drawn."""
    sampler = Sampler(plan.train_spec(0, max(plan.sizes)))
    drawn = []

    def generate() -> float:
        started = time.perf_counter()
        drawn.append(sampler.batch(len(drawn), len(drawn) + 1).fields[0])
        return time.perf_counter() - started

    rate = _per_second(generate, 1, seconds)
    return rate, np.stack(drawn)


def _oracle_rate(plan: ExperimentPlan, fields: np.ndarray, seconds: float) -> float:
    """Samples per second the oracle scores, timed on ``fields``."""
    model = oracle.FourierModel(plan.spec)

    def score() -> float:
        started = time.perf_counter()
        model.log_likelihoods(fields)
        return time.perf_counter() - started

    return _per_second(score, len(fields), seconds)


def _network_rates(plan: ExperimentPlan, device: torch.device, batch: int,
                   seconds: float) -> tuple[dict[str, float], float]:
    """Training images per second of each method the plan trains, and test-time images per second
    (of ``no-backdrop``'s network where the plan has one, else the first method's)."""
    train, test = {}, math.nan
    for method, run in _methods(plan).items():
        timer = StepTimer(run.config(plan, Path("validation.h5")), plan.spec, batch)
        if device.type == "cuda":
            timer.train_step()  # CUDA's lazy initialisation and cuDNN's choice of kernels
            timer.test_step()
        train[method] = _per_second(timer.train_step, batch, seconds)
        if method == "no-backdrop" or math.isnan(test):
            test = _per_second(timer.test_step, batch, seconds)
    return train, test


def estimate(plan: ExperimentPlan, rates: Rates, runs: Sequence[Run] | None = None, jobs: int = 1,
             samples: int | None = None) -> dict[str, float]:
    """Seconds the plan takes on the machine ``rates`` were measured on, by part.

    Parameters
    ----------
    plan : the plan.
    rates : from :func:`measure_rates` on the machine that will run it.
    runs : the runs to train (default: all of the plan's).
    jobs : runs trained at once, each on its own core.
    samples : samples of the validation and report files to generate (default: both files').

    Returns
    -------
    ``{"train", "test", "oracle", "overhead", "generate", "total"}`` in seconds: training steps,
    test-time forwards (the calibration on the training images twice, by the trainer and by the
    report's scoring, the validation and the report file), the oracle on both files,
    :data:`RUN_OVERHEAD_S` per run, generation (each run's training images, twice, and the two
    files); all but the files' generation summed over the runs and divided by ``jobs`` in the total.
    """
    runs = plan_runs(plan) if runs is None else runs
    samples = plan.n_validation + plan.n_test if samples is None else samples
    parts = dict.fromkeys(("train", "test", "oracle", "overhead"), 0.0)
    generated = 0
    for run in runs:
        config = run.config(plan, Path("validation.h5"))
        parts["oracle"] += (plan.n_validation + plan.n_test) / rates.oracle
        parts["overhead"] += RUN_OVERHEAD_S
        if is_fitted(plan, run.method):  # its fit is not timed: counted as nothing beside a network's training
            generated += config.n_train
            continue
        parts["train"] += trained_images(config) / rates.train[run.method]
        parts["test"] += (2 * config.n_train + plan.n_validation + plan.n_test) / rates.test
        generated += 2 * config.n_train
    parts["generate"] = (generated + samples) / rates.generate
    per_run = sum(parts[k] for k in ("train", "test", "oracle", "overhead")) + generated / rates.generate
    parts["total"] = per_run / jobs + samples / rates.generate
    return parts


def describe_plan(plan: ExperimentPlan, out: str | Path, jobs: int = 1, rates: Rates | None = None) -> str:
    """The plan as markdown: its runs by method and size (epochs, training images), what ``out``
    already holds of it, and its estimated time on this machine (the network family's dry run,
    :func:`backdrop.runner.dry_run`).

    Parameters
    ----------
    plan : the plan.
    out : the output directory the experiment would use (finished runs and complete data files
        there are not counted again); nothing is written.
    jobs : runs trained at once.
    rates : the machine's rates; default :func:`measure_rates` (a few seconds, one thread per job
        when ``jobs`` > 1).
    """
    jobs = check_jobs(jobs, ExperimentError)
    out = Path(out)
    if rates is None:
        rates = measure_rates(plan, threads=1 if jobs > 1 else None)
    runs = plan_runs(plan)
    todo = [r for r in runs if read_result(out / "runs" / r.name) is None]
    missing = [(name, spec) for name, spec in data_specs(plan).items()
               if not reusable(out / "data" / f"{name}.h5", spec)]
    parts = estimate(plan, rates, todo, jobs, sum(spec.n for _, spec in missing))
    lines, images = _runs_table(plan, runs, todo)
    s = plan.spec
    data = ", ".join(f"{spec.n} {name} samples" for name, spec in missing) or "none (both files are in place)"
    by_part = ", ".join(f"{k} {duration(parts[k])}" for k in ("train", "test", "oracle", "generate", "overhead"))
    return (plan_summary(plan) + "\n" + "\n".join(lines) + "\n\n"
            f"{len(runs)} runs, {len(todo)} to train; {images:,} training images in all. "
            f"Data files to generate ({s.size}^{s.ndim} px): {data}; each run generates its own training images.\n"
            f"{rates.describe()}\n"
            f"Estimated time on {rates.device} with {jobs} job{'s' if jobs > 1 else ''}: "
            f"{duration(parts['total'])} ({by_part}; the per-run parts divided by the jobs).\n")


def _runs_table(plan: ExperimentPlan, runs: Sequence[Run], todo: Sequence[Run]) -> tuple[list[str], int]:
    """The lines of the dry run's table, one per method, setting and size (the other methods
    first, then the backdrop sweep), and the training images of all the runs."""
    lines = ["| method | masks | per class | n_train | epochs | images per run | runs | to train |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    images = 0
    listed = sorted(runs, key=lambda r: r.method in BACKDROP_METHODS)
    for (method, setting, per_class), group in _group(listed, lambda r: (r.method, r.masks, r.per_class)).items():
        config = group[0].config(plan, Path("validation.h5"))
        if is_fitted(plan, method):
            lines.append(f"| {method} (fitted) | | {per_class} | {config.n_train} | | | {len(group)} | "
                         f"{sum(r in todo for r in group)} |")
            continue
        per_run = trained_images(config)
        images += per_run * len(group)
        lines.append(f"| {method} | {setting.describe() if setting else ''} | {per_class} | {config.n_train} | "
                     f"{config.epochs} | {per_run:,} | {len(group)} | {sum(r in todo for r in group)} |")
    return lines, images
