"""The experiment behind the 2018 paper's claim: backdrop against the full gradient, augmentation
and crops, by training-set size, as a fraction of the Bayes-optimal accuracy.

An :class:`ExperimentPlan` names a dataset, the training-set sizes, the seeds, the methods, each
backdrop method's masks, and a sweep of mask settings. :func:`run_experiment` generates (or
reuses) a training file and a separate test file with the same statistics, trains every planned
run in its own directory (``jobs`` at a time, one thread each), scores each once at the end on
every sample of the test file beside the oracle on the same samples, and rebuilds the tables and
figures from the run directories, so an interrupted experiment rerun with the same plan repeats
nothing that was finished; a run whose loss becomes non-finite is recorded as failed and the
others go on. Every file it writes is written atomically (:mod:`msgp.atomic`). :func:`dry_run` describes a plan and estimates its time on this
machine from a few timed training steps, oracle scores and samples (:func:`measure_rates`,
:func:`estimate`).

Methods (:data:`METHODS`): ``no-backdrop`` (the full gradient), ``backdrop`` (one head per
scale, each behind its own mask), ``series`` (the paper's topology: the masks in series along one
trunk, one classifier), ``augment`` (random periodic shifts, flips and axis permutations, exact
symmetries of the data, full gradient), ``augment+backdrop`` and ``crop`` (random crops, whole
test images scored by their tiles).

Statistics. Runs of two methods with the same seed share the training subset (and the test
file), so differences are paired by seed: :func:`paired_difference` gives the mean difference and
its 95% t interval, and an effect is claimed only when the interval excludes zero.
"""
from __future__ import annotations

import csv
import dataclasses
import json
import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch
from scipy import stats

from msgp import io, oracle
from msgp.atomic import atomic_open, atomic_write
from msgp.generate import Sampler
from msgp.plotting import PlotUnavailable, pyplot
from msgp.spec import DatasetSpec, load_preset

from . import training
from .layer import Backdrop

METHODS = ("no-backdrop", "backdrop", "series", "augment", "augment+backdrop", "crop")
REFERENCES = ("no-backdrop", "augment")  # what every other method is compared with
Progress = Callable[[str, dict], None]


class ExperimentError(ValueError):
    """An output directory or plan that cannot be used; the message is one line for the user."""


@dataclass(frozen=True)
class Masks:
    """A backdrop setting: topology, mask probability per scale, mask block side per scale."""

    topology: str
    probs: tuple[float, ...]
    blocks: tuple[int, ...]

    @property
    def tag(self) -> str:
        tag = f"{self.topology}-p" + "_".join(f"{p:g}" for p in self.probs)
        return tag + ("-b" + "_".join(str(b) for b in self.blocks) if any(b > 1 for b in self.blocks) else "")

    def describe(self) -> str:
        text = f"{self.topology}, p {'/'.join(f'{p:g}' for p in self.probs)}"
        return text + (f", blocks {'/'.join(str(b) for b in self.blocks)}" if any(b > 1 for b in self.blocks) else "")


def masks(topology: str, probs: Sequence[float], blocks: Sequence[int] | None = None) -> Masks:
    probs = tuple(float(p) for p in probs)
    return Masks(topology, probs, tuple(int(b) for b in blocks) if blocks is not None else (1,) * len(probs))


@dataclass(frozen=True)
class ExperimentPlan:
    """Everything an experiment runs.

    Parameters
    ----------
    spec : the training data; its ``n`` is raised if needed to hold the largest training set. The
        test file is ``spec`` with ``seed=test_seed`` and ``n=n_test``.
    sizes : training-set sizes, in samples per class.
    seeds : seeds at sizes above ``small_max`` (seeds ``0 .. seeds-1``); each picks the training
        subset, the initialisation, the order, the masks, the crops and the symmetries of a run.
    small_seeds : seeds at sizes up to ``small_max`` per class, where the spread is largest.
    methods : any of :data:`METHODS`.
    images : training images seen per run; ``epochs = max(min_epochs, ceil(images / n_train))``.
    budgets : ``(method, per_class, images)``: runs of ``method`` (``"*"``: every method) at
        ``per_class`` see ``images`` training images instead of ``images``; a method's own entry
        wins over ``"*"``. For statistics whose finest scale needs many more optimiser steps than
        a tiny training set needs to be fitted, and for a method slower to fit than the others
        (methods are compared only once each has fitted its training set).
    min_epochs : the fewest passes over a (large) training set.
    backdrop : the setting of the ``backdrop`` and ``augment+backdrop`` methods (``heads`` topology).
    series : the setting of the ``series`` method.
    crop : side of the random crops of the ``crop`` method.
    n_test : samples in the test file, every one scored (a multiple of the number of classes).
    test_seed : seed of the test file (must differ from ``spec.seed``).
    batch_size : images per step (at most the training-set size).
    lr, width, device : as in :class:`~backdrop.training.TrainConfig`.
    sweep : backdrop settings tried at ``sweep_size`` per class with ``small_seeds`` seeds beside
        ``no-backdrop`` and ``augment``.
    sweep_size : training-set size (per class) of the sweep; ``None``: no sweep.
    """

    spec: DatasetSpec
    sizes: tuple[int, ...]
    seeds: int = 5
    small_seeds: int = 10
    small_max: int = 8
    methods: tuple[str, ...] = ("no-backdrop", "backdrop", "series", "augment")
    images: int = 2048
    budgets: tuple[tuple[str, int, int], ...] = ()
    min_epochs: int = 16
    backdrop: Masks | None = None
    series: Masks | None = None
    crop: int = 32
    n_test: int = 512
    test_seed: int = 1000
    batch_size: int = 16
    lr: float = 2e-3
    width: int = 16
    device: str = "auto"
    sweep: tuple[Masks, ...] = ()
    sweep_size: int | None = None

    def __post_init__(self):
        for name in ("sizes", "methods", "sweep", "budgets"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        K = self.spec.n_scales
        if self.backdrop is None:
            object.__setattr__(self, "backdrop", masks("heads", (0.5,) * K))
        if self.series is None:
            object.__setattr__(self, "series", masks("series", (0.5,) * K))
        C = self.spec.n_classes
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            raise ExperimentError(f"unknown method {unknown[0]!r}; choose from {', '.join(METHODS)}")
        if not self.sizes or any(not isinstance(n, int) or n < 1 for n in self.sizes):
            raise ExperimentError(f"sizes must be positive integers (samples per class), but got {self.sizes}")
        for name in ("seeds", "small_seeds", "images", "min_epochs"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ExperimentError(f"{name} must be a positive integer, but got {value}")
        if self.n_test < C or self.n_test % C:
            raise ExperimentError(f"n_test must be a positive multiple of the {C} classes, but got {self.n_test}")
        if self.test_seed == self.spec.seed:
            raise ExperimentError(f"the test file needs another seed than the training file ({self.spec.seed})")
        for setting in (self.backdrop, self.series, *self.sweep):
            if len(setting.probs) != K or len(setting.blocks) != K:
                raise ExperimentError(f"mask setting {setting.describe()} needs one value per scale ({K})")
        for method, per_class, images in self.budgets:
            if (method != "*" and method not in self.methods) or per_class not in self.sizes \
                    or not isinstance(images, int) or images < 1:
                raise ExperimentError(f"budget ({method}, {per_class}, {images}) needs a method (or *) and a size "
                                      "of the plan and a positive number of images")
        if self.sweep and self.sweep_size is None:
            raise ExperimentError("a sweep needs its training-set size (sweep_size)")

    def seeds_at(self, per_class: int) -> range:
        return range(self.small_seeds if per_class <= self.small_max else self.seeds)

    def images_at(self, per_class: int, method: str | None = None) -> int:
        """Training images per run of ``method`` at ``per_class`` samples per class."""
        given = {m: images for m, n, images in self.budgets if n == per_class}
        return given.get(method, given.get("*", self.images))

    def epochs(self, n_train: int, method: str | None = None) -> int:
        return max(self.min_epochs, math.ceil(self.images_at(n_train // self.spec.n_classes, method) / n_train))

    @property
    def train_spec(self) -> DatasetSpec:
        needed = max(self.sizes + ((self.sweep_size,) if self.sweep_size else ())) * self.spec.n_classes
        return self.spec.replace(n=max(self.spec.n, needed))

    @property
    def test_spec(self) -> DatasetSpec:
        return self.spec.replace(seed=self.test_seed, n=self.n_test)


def paper128_plan() -> ExperimentPlan:
    """The paper's two-scale statistics at 128² (the ``paper-2scale`` length scales divided by 8, so
    an image holds the paper's number of blobs per scale), 2 to 64 images per class; 10 seeds up to
    8 per class, 5 above; a sweep of heads and series settings at 4 per class. The series topology
    at 8 per class sees 16384 images (512 epochs), where 2048 left it short of fitting its training set."""
    spec = DatasetSpec.default(2, 128, normalize="sample", n=4, seed=0)
    return ExperimentPlan(spec=spec, sizes=(2, 4, 8, 16, 32, 64), small_max=8, device="cpu",
                          backdrop=masks("heads", (0.5, 0.9)), series=masks("series", (0.3, 0.95)),
                          seeds=5, sweep_size=4, budgets=(("series", 8, 16384),),
                          sweep=(masks("heads", (0.25, 0.25)), masks("heads", (0.5, 0.5)), masks("heads", (0.5, 0.9)),
                                 masks("heads", (0.5, 0.97)), masks("heads", (0.5, 0.97), (1, 2)),
                                 masks("series", (0.3, 0.95))))


def default3_plan() -> ExperimentPlan:
    """The default three-scale dataset (``msgp generate``: 128², normalize=theory) at 2, 8 and 32
    images per class (10 seeds at 2 and 8, 3 at 32): the full gradient, backdrop and augmentation.
    At 8 per class a run sees 15360 images, the default training's 960 steps of 16: the finest scale
    needs hundreds of steps to leave chance. At 32 per class every run sees 30720: with 15360
    backdrop's coarse head (p 0.9) was still learning (training accuracy 0.96, loss falling)."""
    spec = DatasetSpec.default(3, 128, n=8, seed=0)
    return ExperimentPlan(spec=spec, sizes=(2, 8, 32), small_max=8, seeds=3, device="cpu",
                          budgets=(("*", 8, 15360), ("*", 32, 30720)),
                          methods=("no-backdrop", "backdrop", "augment"),
                          backdrop=masks("heads", (0.5, 0.5, 0.9)), series=masks("series", (0.3, 0.5, 0.95)))


def paper_plan() -> ExperimentPlan:
    """The ``paper-2scale`` preset at 1024², 4 to 64 images per class, for a GPU."""
    return ExperimentPlan(spec=load_preset("paper-2scale"), sizes=(4, 16, 64), seeds=3, small_seeds=10,
                          small_max=4, images=4096, crop=256, device="auto",
                          methods=("no-backdrop", "backdrop", "series", "augment", "crop"),
                          backdrop=masks("heads", (0.5, 0.9)), series=masks("series", (0.3, 0.95)))


def smoke_plan() -> ExperimentPlan:
    """Four runs of seconds each on 32² images (the full gradient and backdrop, 2 images per class,
    2 seeds, 8 epochs): checks that the whole pipeline works here, and is what
    ``benchmarks/fault_injection.py`` kills and resumes. Its numbers mean nothing."""
    spec = DatasetSpec(n=8, length_scales=[[1.5, 2.0], [5.0, 8.0]], amplitudes=[1.0, 1.0], size=32, seed=0)
    return ExperimentPlan(spec=spec, sizes=(2,), small_seeds=2, small_max=2, methods=("no-backdrop", "backdrop"),
                          images=8, min_epochs=8, n_test=32, batch_size=4, width=8, device="cpu",
                          backdrop=masks("heads", (0.5, 0.5)))


PLANS = {"paper128": paper128_plan, "default3": default3_plan, "paper": paper_plan, "smoke": smoke_plan}


@dataclass(frozen=True)
class Run:
    """One training run of the plan: its directory name and its training settings."""

    name: str
    method: str
    per_class: int
    seed: int
    masks: Masks | None = None  # the backdrop setting, for methods with backdrop

    def config(self, plan: ExperimentPlan, train_path: Path, test_path: Path) -> training.TrainConfig:
        n_train = self.per_class * plan.spec.n_classes
        setting = self.masks
        return training.TrainConfig(
            data=str(train_path), test_data=str(test_path), n_train=n_train, n_test=plan.n_test,
            backdrop=setting is not None,
            mask_prob=setting.probs if setting else 0.5, mask_block=setting.blocks if setting else 1,
            topology=setting.topology if setting else "heads", augment=self.method.startswith("augment"),
            crop=plan.crop if self.method == "crop" else None, epochs=plan.epochs(n_train, self.method),
            batch_size=min(plan.batch_size, n_train), lr=plan.lr, device=plan.device, seed=self.seed,
            width=plan.width, eval_every=0)


def make_run(method: str, per_class: int, seed: int, setting: Masks | None = None) -> Run:
    tag = method if setting is None else f"{method}-{setting.tag}"
    return Run(f"{tag}-n{per_class}-s{seed}", method, per_class, seed, setting)


def _setting(plan: ExperimentPlan, method: str) -> Masks | None:
    return {"backdrop": plan.backdrop, "augment+backdrop": plan.backdrop, "series": plan.series}.get(method)


def main_runs(plan: ExperimentPlan) -> list[Run]:
    """Every method at every size and seed."""
    return [make_run(m, n, s, _setting(plan, m)) for n in plan.sizes for m in plan.methods for s in plan.seeds_at(n)]


def sweep_runs(plan: ExperimentPlan) -> list[Run]:
    """The sweep's backdrop settings and its two references, at ``sweep_size`` with ``small_seeds`` seeds."""
    if plan.sweep_size is None:
        return []
    n, seeds = plan.sweep_size, range(plan.small_seeds)
    runs = [make_run(m, n, s) for m in REFERENCES for s in seeds]
    runs += [make_run("series" if m.topology == "series" else "backdrop", n, s, m) for m in plan.sweep for s in seeds]
    return runs


def prepare_data(plan: ExperimentPlan, out: Path, progress: Progress | None = None) -> tuple[Path, Path]:
    """The training and test files in ``out/data``, generated unless a complete file with the same
    description is there (an incomplete one is finished)."""
    notify = progress or (lambda event, info: None)
    paths = []
    for name, spec in (("train", plan.train_spec), ("test", plan.test_spec)):
        path = out / "data" / f"{name}.h5"
        if path.exists():
            try:
                stored = io.read_spec(path)
            except io.MSGPError as err:
                raise ExperimentError(f"{path} cannot be reused ({err}); remove it or choose another --out") from None
            if stored != spec:
                raise ExperimentError(f"{path} holds another dataset than this plan's (another experiment?); "
                                      "remove it or choose another --out")
        # An incomplete file is not reusable as it is: io.write(resume=True) finishes it.
        if not _reusable(path, spec):
            notify("generate", {"path": str(path), "n": spec.n})
            io.write(spec, path, resume=path.exists())
        else:
            notify("reuse", {"path": str(path), "n": spec.n})
        paths.append(path)
    return paths[0], paths[1]


def _check_same_run(run_dir: Path, config: training.TrainConfig) -> None:
    """Refuse to reuse or resume a run directory whose run had other settings (a plan changed
    under an old ``--out``): its result would be reported as this plan's."""
    if not (run_dir / "config.json").exists():
        return
    try:
        stored = training.read_config(run_dir)
    except training.CheckpointError:
        return  # damaged: the trainer's own checks report it when it resumes
    changed = config.changed_from(stored)
    if changed:
        k = changed[0]
        raise ExperimentError(f"{run_dir} holds a run with other settings ({k} {getattr(stored, k)!r}, this plan "
                              f"{getattr(config, k)!r}); remove it or choose another --out")


def read_result(run_dir: Path) -> dict[str, Any] | None:
    """The run's ``result.json``, or ``None`` when the run has not finished: no file, or one that
    cannot be read (cut short by a crash before writes were atomic, or damaged), so the run is
    finished again rather than stopping the experiment."""
    try:
        result = json.loads((run_dir / "result.json").read_text())
    except (FileNotFoundError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return result if isinstance(result, dict) and "name" in result else None


def failed(result: dict[str, Any]) -> bool:
    """Whether a run's result records a failure (results written before failures were recorded
    have no status: they finished)."""
    return result.get("status", "finished") == "failed"


def _read_summary(run_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((run_dir / "summary.json").read_text())
    except (FileNotFoundError, UnicodeDecodeError, json.JSONDecodeError):
        return None


def execute(run: Run, plan: ExperimentPlan, out: Path, train_path: Path, test_path: Path) -> dict[str, Any]:
    """Train ``run`` (resuming an interrupted one) unless its ``result.json`` exists, and return
    the result: the trainer scores the whole test file once, after the last epoch, beside the
    oracle on the same samples.

    A run whose training fails (:class:`~backdrop.training.TrainingError`: a non-finite loss) is
    recorded as failed, with the reason, in its ``result.json``, and the experiment goes on; its
    training is deterministic, so a rerun keeps the record rather than repeating the failure
    (remove ``runs/<name>/`` to train it again from the start)."""
    run_dir = out / "runs" / run.name
    result_path = run_dir / "result.json"
    config = run.config(plan, train_path, test_path)
    _check_same_run(run_dir, config)
    recorded = read_result(run_dir)
    if recorded is not None:
        return {**recorded, "skipped": True}
    started = time.perf_counter()
    result = {"name": run.name, "method": run.method, "n_train": config.n_train, "per_class": run.per_class,
              "seed": run.seed, "masks": None if run.masks is None else run.masks.describe(), "epochs": config.epochs}
    summary = _read_summary(run_dir)
    if summary is None:
        resume = (run_dir / "checkpoint.pt").exists()
        if not resume and (run_dir / "config.json").exists():
            (run_dir / "config.json").unlink()  # died before its first checkpoint: start it again
        try:
            summary = training.train(config, run_dir, resume=resume)
        except training.TrainingError as err:
            result.update(status="failed", reason=str(err), wall_s=time.perf_counter() - started)
            run_dir.mkdir(parents=True, exist_ok=True)
            atomic_write(result_path, json.dumps(result, indent=2) + "\n")
            return result
    last = training.read_metrics(run_dir)[-1]
    result.update({
        "status": "finished", "n_test": summary["n_test"],
        "test_accuracy": summary["test_accuracy"], "oracle_accuracy": summary["oracle_accuracy"],
        "train_accuracy": summary["train_accuracy"], "train_loss": last["train_loss"],
        "learned": summary["learned"], "wall_s": time.perf_counter() - started,
    })
    atomic_write(result_path, json.dumps(result, indent=2) + "\n")
    return result


def _execute_one_thread(*args) -> dict[str, Any]:
    torch.set_num_threads(1)
    return execute(*args)


def run_experiment(plan: ExperimentPlan, out: str | Path, progress: Progress | None = None,
                   jobs: int = 1, report_only: bool = False) -> dict[str, Path]:
    """Run (or finish) the whole plan into ``out`` and write the tables and figures.

    Parameters
    ----------
    plan : what to run.
    out : output directory: ``data/`` (the two HDF5 files), ``runs/<name>/`` (one per run: the
        trainer's files and ``result.json``), and the outputs listed below.
    progress : ``progress(event, info)`` with events ``plan`` (``{"runs", "to_train"}``, first),
        ``generate``/``reuse`` (a data file) and ``done`` (a run finished, failed, or found
        recorded: its result, whose ``status`` is ``finished`` or ``failed``).
    jobs : runs trained at once, each in its own process with one thread (1: in this process,
        with torch's threads).
    report_only : train nothing; write the tables and figures of the runs recorded so far. A run
        trained with other settings than the plan's is refused, as a rerun refuses it.

    Returns
    -------
    The written files by name: ``results.csv``, ``results.md``, ``comparisons.csv``,
    ``comparisons.md``, ``efficiency.png``, ``input_gradient.png`` and, with a sweep,
    ``sweep.csv``, ``sweep.md``, ``sweep.png``.
    """
    if not isinstance(jobs, int) or jobs < 1:
        raise ExperimentError(f"jobs must be a positive integer, but got {jobs}")
    out = Path(out)
    notify = progress or (lambda event, info: None)
    runs, sweep = main_runs(plan), sweep_runs(plan)
    unique = list(dict.fromkeys(sweep + runs))  # the sweep first: it picks the backdrop setting
    recorded = {r: read_result(out / "runs" / r.name) for r in unique}
    todo = [r for r in unique if recorded[r] is None]
    if report_only:
        if len(todo) == len(unique):
            raise ExperimentError(f"{out} holds no finished run of this plan")
        # The check execute applies: a run trained with other settings is not this plan's result.
        data = out / "data"
        for r in unique:
            if recorded[r] is not None:
                _check_same_run(out / "runs" / r.name, r.config(plan, data / "train.h5", data / "test.h5"))
        return write_outputs(plan, out, [recorded[r] for r in runs if recorded[r] is not None],
                             [recorded[r] for r in sweep if recorded[r] is not None])
    notify("plan", {"runs": len(unique), "to_train": len(todo)})
    train_path, test_path = prepare_data(plan, out, progress)
    results = {}
    if jobs == 1:
        for run in unique:
            results[run] = execute(run, plan, out, train_path, test_path)
            notify("done", results[run])
    else:
        with ProcessPoolExecutor(jobs, mp_context=get_context("spawn")) as pool:
            futures = {pool.submit(_execute_one_thread, run, plan, out, train_path, test_path): run for run in unique}
            for future in as_completed(futures):
                results[futures[future]] = future.result()
                notify("done", results[futures[future]])
    return write_outputs(plan, out, [results[r] for r in runs], [results[r] for r in sweep])


# Dry run: the plan and its time on this machine ------------------------------------------------------

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
    for run in sweep_runs(plan) + main_runs(plan):
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
        sampler = Sampler(plan.train_spec)
        drawn = []

        def generate() -> float:
            started = time.perf_counter()
            drawn.append(sampler.batch(len(drawn), len(drawn) + 1).fields[0])
            return time.perf_counter() - started

        generate_rate = _per_second(generate, 1, seconds)
        model = oracle.FourierModel(plan.spec)
        fields = np.stack(drawn)

        def score() -> float:
            started = time.perf_counter()
            model.log_likelihoods(fields)
            return time.perf_counter() - started

        oracle_rate = _per_second(score, len(fields), seconds)
        train, test = {}, math.nan
        for method, run in _methods(plan).items():
            timer = StepTimer(run.config(plan, Path("train.h5"), Path("test.h5")), plan.spec, batch)
            if device.type == "cuda":
                timer.train_step()  # CUDA's lazy initialisation and cuDNN's choice of kernels
                timer.test_step()
            train[method] = _per_second(timer.train_step, batch, seconds)
            if method == "no-backdrop" or math.isnan(test):
                test = _per_second(timer.test_step, batch, seconds)
        return Rates(name, torch.get_num_threads(), batch, train, test, oracle_rate, generate_rate)
    finally:
        torch.set_num_threads(previous)


def estimate(plan: ExperimentPlan, rates: Rates, runs: Sequence[Run] | None = None, jobs: int = 1,
             samples: int | None = None) -> dict[str, float]:
    """Seconds the plan takes on the machine ``rates`` were measured on, by part.

    Parameters
    ----------
    plan : the plan.
    rates : from :func:`measure_rates` on the machine that will run it.
    runs : the runs to train (default: all of the plan's).
    jobs : runs trained at once, each on its own core.
    samples : samples to generate (default: the training and test files').

    Returns
    -------
    ``{"train", "test", "oracle", "overhead", "generate", "total"}`` in seconds: training steps,
    test-time forwards (the calibration on the training images and the test file), the oracle
    on the test file, :data:`RUN_OVERHEAD_S` per run, generation; the first four summed over the
    runs, and divided by ``jobs`` in the total.
    """
    runs = list(dict.fromkeys(sweep_runs(plan) + main_runs(plan))) if runs is None else runs
    samples = plan.train_spec.n + plan.test_spec.n if samples is None else samples
    parts = dict.fromkeys(("train", "test", "oracle", "overhead"), 0.0)
    for run in runs:
        config = run.config(plan, Path("train.h5"), Path("test.h5"))
        parts["train"] += config.epochs * (config.n_train // config.batch_size) * config.batch_size / rates.train[run.method]
        parts["test"] += (config.n_train + plan.n_test) / rates.test
        parts["oracle"] += plan.n_test / rates.oracle
        parts["overhead"] += RUN_OVERHEAD_S
    parts["generate"] = samples / rates.generate
    parts["total"] = sum(parts[k] for k in ("train", "test", "oracle", "overhead")) / jobs + parts["generate"]
    return parts


def duration(seconds: float) -> str:
    """``42 s``, ``12 min``, ``2 h 05 min`` or ``8.2 days``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        hours, minutes = divmod(round(seconds / 60), 60)
        return f"{hours} h {minutes:02d} min"
    return f"{seconds / 86400:.1f} days"


def _reusable(path: Path, spec: DatasetSpec) -> bool:
    """Whether :func:`prepare_data` would reuse ``path`` as it is (complete, same description)."""
    try:
        return path.exists() and io.read_spec(path, require_complete=True) == spec
    except io.MSGPError:
        return False


def dry_run(plan: ExperimentPlan, out: str | Path, jobs: int = 1, rates: Rates | None = None) -> str:
    """The plan as markdown: its runs by method and size (epochs, training images), what ``out``
    already holds of it, and its estimated time on this machine.

    Parameters
    ----------
    plan : the plan.
    out : the output directory the experiment would use (finished runs and complete data files
        there are not counted again); nothing is written.
    jobs : runs trained at once.
    rates : the machine's rates; default :func:`measure_rates` (a few seconds, one thread per job
        when ``jobs`` > 1).
    """
    if not isinstance(jobs, int) or jobs < 1:
        raise ExperimentError(f"jobs must be a positive integer, but got {jobs}")
    out = Path(out)
    if rates is None:
        rates = measure_rates(plan, threads=1 if jobs > 1 else None)
    runs = list(dict.fromkeys(main_runs(plan) + sweep_runs(plan)))
    todo = [r for r in runs if read_result(out / "runs" / r.name) is None]
    missing = [(name, spec) for name, spec in (("training", plan.train_spec), ("test", plan.test_spec))
               if not _reusable(out / "data" / f"{'train' if name == 'training' else 'test'}.h5", spec)]
    parts = estimate(plan, rates, todo, jobs, sum(spec.n for _, spec in missing))
    lines = ["| method | masks | per class | n_train | epochs | images per run | runs | to train |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    images = 0
    for (method, setting, per_class), group in _group(runs, lambda r: (r.method, r.masks, r.per_class)).items():
        config = group[0].config(plan, Path("train.h5"), Path("test.h5"))
        per_run = config.epochs * (config.n_train // config.batch_size) * config.batch_size
        images += per_run * len(group)
        lines.append(f"| {method} | {setting.describe() if setting else ''} | {per_class} | {config.n_train} | "
                     f"{config.epochs} | {per_run:,} | {len(group)} | {sum(r in todo for r in group)} |")
    s = plan.spec
    data = ", ".join(f"{spec.n} {name} samples" for name, spec in missing) or "none (both files are in place)"
    split = ", ".join(f"{k} {duration(parts[k])}" for k in ("train", "test", "oracle", "generate", "overhead"))
    return (_describe(plan) + "\n" + "\n".join(lines) + "\n\n"
            f"{len(runs)} runs, {len(todo)} to train; {images:,} training images in all. "
            f"Data to generate ({s.size}^{s.ndim} px): {data}.\n"
            f"{rates.describe()}\n"
            f"Estimated time on {rates.device} with {jobs} job{'s' if jobs > 1 else ''}: "
            f"{duration(parts['total'])} ({split}; the per-run parts divided by the jobs).\n")


# Statistics ----------------------------------------------------------------------------------------

def _accessors(n_scales: int) -> list[tuple[str, Callable[[dict], float]]]:
    """(name, accuracy getter) of the joint accuracy and each scale's."""
    return [("joint", lambda a: a["joint"])] + [(f"scale {s}", lambda a, s=s: a["scales"][s]) for s in range(n_scales)]


def ratio(result: dict[str, Any], get: Callable[[dict], float]) -> float:
    """A run's accuracy as a fraction of the oracle's on the same test samples."""
    return get(result["test_accuracy"]) / get(result["oracle_accuracy"])


def paired_difference(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> dict[str, float]:
    """Mean of ``a[i] - b[i]`` with its two-sided t interval at ``level``.

    Returns ``{"n", "mean", "low", "high", "effect"}``; ``effect`` is true when the interval
    excludes zero. With one pair the interval is infinite.
    """
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    n = len(d)
    if n == 0:
        raise ValueError("no pairs to compare")
    mean = float(d.mean())
    half = math.inf if n < 2 else float(stats.t.ppf(0.5 + level / 2, n - 1) * d.std(ddof=1) / math.sqrt(n))
    return {"n": n, "mean": mean, "low": mean - half, "high": mean + half,
            "effect": bool(mean - half > 0 or mean + half < 0)}


# Below this final training accuracy (joint) a run has not fitted its training set. A cell with
# such a run, or with a run one of whose scales did not learn (the trainer's verdict in
# summary.json), is marked † in the tables, hollow in the figure, and not to be compared.
FITTED = 0.9


def run_fitted(result: dict[str, Any]) -> bool:
    """Whether one run fitted its training set (final training accuracy ≥ FITTED) and learned every
    scale (runs recorded before the trainer gave that verdict count as learned)."""
    return (result["train_accuracy"]["joint"] >= FITTED
            and all(v["learned"] for v in result.get("learned") or []))


def fitted(runs: Sequence[dict[str, Any]]) -> bool:
    """Whether every run of a cell fitted (:func:`run_fitted`): one seed that did not is not hidden
    by the others' mean."""
    return all(run_fitted(r) for r in runs)


def compare(results: Sequence[dict[str, Any]], method: str, reference: str, per_class: int,
            n_scales: int, masks_of: Callable[[dict], Any] = lambda r: None) -> list[dict[str, Any]]:
    """Paired differences ``method - reference`` in accuracy at one size, joint and per scale,
    over the seeds both have (``masks_of`` picks one backdrop setting of the method)."""
    ours = {r["seed"]: r for r in results if r["method"] == method and r["per_class"] == per_class
            and masks_of(r) in (None, r["masks"])}
    theirs = {r["seed"]: r for r in results if r["method"] == reference and r["per_class"] == per_class}
    seeds = sorted(set(ours) & set(theirs))
    if not seeds:
        return []
    both_fitted = fitted([ours[s] for s in seeds]) and fitted([theirs[s] for s in seeds])
    rows = []
    for name, get in _accessors(n_scales):
        diff = paired_difference([get(ours[s]["test_accuracy"]) for s in seeds],
                                 [get(theirs[s]["test_accuracy"]) for s in seeds])
        rows.append({"method": method, "masks": ours[seeds[0]]["masks"] or "", "reference": reference,
                     "per_class": per_class, "accuracy": name, **diff, "fitted": both_fitted})
    return rows


# Tables --------------------------------------------------------------------------------------------

def _columns(n_scales: int) -> list[str]:
    names = ["joint"] + [f"scale{s}" for s in range(n_scales)]
    return (["method", "masks", "n_train", "per_class", "seed", "epochs"] + [f"test_{n}" for n in names]
            + [f"oracle_{n}" for n in names] + [f"ratio_{n}" for n in names] + ["train_joint", "wall_s",
                                                                                  "status", "reason"])


def _row(result: dict[str, Any], n_scales: int) -> dict[str, Any]:
    """A run's row of results.csv; a failed run's accuracies are empty and its reason is given."""
    row = {k: result[k] for k in ("method", "n_train", "per_class", "seed", "epochs")}
    row["masks"] = result["masks"] or ""
    row["wall_s"] = round(result["wall_s"], 2)
    row["status"], row["reason"] = result.get("status", "finished"), result.get("reason", "")
    if failed(result):
        return row
    for (name, get), col in zip(_accessors(n_scales), ["joint"] + [f"scale{s}" for s in range(n_scales)]):
        row[f"test_{col}"] = get(result["test_accuracy"])
        row[f"oracle_{col}"] = get(result["oracle_accuracy"])
        row[f"ratio_{col}"] = round(ratio(result, get), 4)
    row["train_joint"] = result["train_accuracy"]["joint"]
    return row


def write_csv(rows: Sequence[dict[str, Any]], path: Path, columns: Sequence[str]) -> Path:
    with atomic_open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(columns))
        writer.writeheader()
        writer.writerows(rows)
    return path


def _mean_std(values: Sequence[float]) -> str:
    """``mean ± std`` (sample std over seeds); the mean alone for one value."""
    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        return f"{values.mean():.3f}"
    return f"{values.mean():.3f} ± {values.std(ddof=1):.3f}"


def _group(results: Sequence[dict[str, Any]], key: Callable[[dict], Any]) -> dict[Any, list[dict]]:
    groups: dict[Any, list[dict]] = {}
    for r in results:
        groups.setdefault(key(r), []).append(r)
    return groups


def summary_table(results: Sequence[dict[str, Any]], key: Callable[[dict], Any], key_headers: Sequence[str],
                  key_cells: Callable[[Any], Sequence[str]], n_scales: int) -> str:
    """A markdown table, one row per group of runs: mean ± std over its seeds of the accuracy as a
    fraction of the oracle's (joint, per scale), the mean oracle accuracy, and the mean final
    training accuracy (joint; near 1 when a run has fitted its training set; † below :data:`FITTED`).

    The statistics are over the runs that finished (``seeds``); where some failed, a ``failed``
    column counts them per group (a group with no finished run shows ``—``)."""
    accessors = _accessors(n_scales)
    any_failed = any(failed(r) for r in results)
    headers = [*key_headers, "seeds", *(["failed"] if any_failed else []),
               *[f"{name} / oracle" for name, _ in accessors], *[f"oracle {name}" for name, _ in accessors],
               "train joint"]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for k, everything in _group(results, key).items():
        group = [r for r in everything if not failed(r)]
        cells = [*key_cells(k), str(len(group))] + ([str(len(everything) - len(group))] if any_failed else [])
        if not group:
            lines.append("| " + " | ".join(cells + ["—"] * (2 * len(accessors) + 1)) + " |")
            continue
        cells += [_mean_std([ratio(r, get) for r in group]) for _, get in accessors]
        cells += [f"{np.mean([get(r['oracle_accuracy']) for r in group]):.3f}" for _, get in accessors]
        unfitted = sum(not run_fitted(r) for r in group)
        cells.append(f"{np.mean([r['train_accuracy']['joint'] for r in group]):.3f}"
                     + (f" † ({len(group) - unfitted} of {len(group)} fitted)" if unfitted else ""))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def failed_list(results: Sequence[dict[str, Any]]) -> str:
    """The failed runs and their reasons, as markdown lines (empty when none failed)."""
    lines = [f"- {r['name']}: {r['reason']}" for r in results if failed(r)]
    return ("\nFailed runs (recorded in their result.json, left out of the statistics):\n\n" + "\n".join(lines) + "\n"
            if lines else "")


def _interval(row: dict[str, Any]) -> str:
    mark = " *" if row["effect"] else ""
    return f"{row['mean']:+.3f} [{row['low']:+.3f}, {row['high']:+.3f}]{mark}"


def comparison_table(rows: Sequence[dict[str, Any]], n_scales: int) -> str:
    """One line per (method, reference, size): mean paired difference [95% interval] per accuracy;
    ``*`` marks an interval that excludes zero; the last column says whether both cells fitted their
    training sets (``no †``: the difference is not a result)."""
    names = [name for name, _ in _accessors(n_scales)]
    headers = ["method", "masks", "minus", "per class", "seeds", *names, "both fitted"]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for key, group in _group(rows, lambda r: (r["method"], r["masks"], r["reference"], r["per_class"])).items():
        by_name = {r["accuracy"]: r for r in group}
        lines.append("| " + " | ".join([*map(str, key), str(group[0]["n"]), *[_interval(by_name[n]) for n in names],
                                        "yes" if group[0]["fitted"] else "no †"]) + " |")
    return "\n".join(lines) + "\n"


def _epochs_rule(plan: ExperimentPlan) -> str:
    rule = f"Epochs = max({plan.min_epochs}, ceil(B / n_train)), B = {plan.images} training images"
    return rule + "".join(f"; {'every method' if m == '*' else m} at {n} per class: {images}"
                          for m, n, images in plan.budgets)


def _describe(plan: ExperimentPlan) -> str:
    s = plan.spec
    lengths = "; ".join(" / ".join(f"{v:g}" for v in row) for row in s.length_scales)
    return (f"Data: {s.size}^{s.ndim} px, {s.n_scales} scales (length scales {lengths} px), "
            f"normalize={s.normalize}; training file seed {s.seed}, test file seed {plan.test_seed} "
            f"({plan.n_test} images, all scored). {_epochs_rule(plan)}, "
            f"batch min({plan.batch_size}, n_train), AdamW peak lr {plan.lr:g} with warm-up and cosine decay. "
            f"backdrop: {plan.backdrop.describe()}; series: {plan.series.describe()}; crop: {plan.crop}² crops. "
            f"Seeds: {plan.small_seeds} up to {plan.small_max} images per class, {plan.seeds} above.\n")


def _comparisons(plan: ExperimentPlan, results: Sequence[dict[str, Any]], methods: Sequence[str],
                 sizes: Sequence[int], masks_of: Callable[[dict], Any] = lambda r: None) -> list[dict[str, Any]]:
    K = plan.spec.n_scales
    rows = []
    for n in sizes:
        for reference in REFERENCES:
            for method in methods:
                # Each pair once: augment - no-backdrop, not also its negative.
                if method != reference and not (method in REFERENCES and REFERENCES.index(method) < REFERENCES.index(reference)):
                    rows += compare(results, method, reference, n, K, masks_of)
    return rows


COMPARISON_COLUMNS = ["method", "masks", "reference", "per_class", "accuracy", "n", "mean", "low", "high", "effect", "fitted"]


def write_outputs(plan: ExperimentPlan, out: Path, results: Sequence[dict[str, Any]],
                  sweep: Sequence[dict[str, Any]]) -> dict[str, Path]:
    """The tables and figures of recorded runs (see :func:`run_experiment`): the csv files list
    every run, failed ones with their reason; the statistics, comparisons and figures are over the
    runs that finished, and the markdown tables count and list the failed ones."""
    K = plan.spec.n_scales
    finished = [r for r in results if not failed(r)]
    finished_sweep = [r for r in sweep if not failed(r)]
    written = {"results.csv": write_csv([_row(r, K) for r in results], out / "results.csv", _columns(K))}
    table = summary_table(results, lambda r: (r["method"], r["per_class"]), ["method", "per class"],
                          lambda k: [k[0], str(k[1])], K)
    written["results.md"] = _write_text(
        out / "results.md", "# Accuracy as a fraction of the oracle's, by method and training-set size\n\n"
        + _describe(plan) + "\n" + table + failed_list(results))
    rows = _comparisons(plan, finished, plan.methods, plan.sizes)
    written["comparisons.csv"] = write_csv(rows, out / "comparisons.csv", COMPARISON_COLUMNS)
    written["comparisons.md"] = _write_text(
        out / "comparisons.md",
        "# Paired differences in test accuracy (method minus reference, same seeds)\n\n" + _describe(plan)
        + "Mean difference [95% t interval]; * marks an interval that excludes zero; no † where the runs of a "
        f"method or reference did not fit their training set (mean final training accuracy below {FITTED}), "
        "so the difference is not a result.\n\n" + comparison_table(rows, K))
    figures = {"input_gradient.png": plot_input_gradient}
    if finished:  # with every run failed there is nothing to draw
        figures["efficiency.png"] = lambda f: plot_efficiency(finished, f, K)
    if sweep:
        written["sweep.csv"] = write_csv([_row(r, K) for r in sweep], out / "sweep.csv", _columns(K))
        settings = [r["masks"] for r in finished_sweep if r["masks"]]
        rows = []
        for setting in dict.fromkeys(settings):
            for method in ("backdrop", "series"):
                rows += _comparisons(plan, finished_sweep, [method], [plan.sweep_size], lambda r, m=setting: m)
        table = summary_table(sweep, lambda r: (r["method"], r["masks"] or ""), ["method", "masks"],
                              lambda k: list(k), K)
        written["sweep.md"] = _write_text(
            out / "sweep.md", f"# Backdrop settings at {plan.sweep_size} training images per class\n\n"
            + _describe(plan) + "\n" + table + failed_list(sweep)
            + "\nPaired differences in test accuracy; * marks an interval that excludes zero.\n\n"
            + comparison_table(rows, K))
        if finished_sweep:
            figures["sweep.png"] = lambda f: plot_sweep(finished_sweep, f, K)
    # The tables need nothing beyond the base install; the figures need the plot extra.
    try:
        pyplot()
    except PlotUnavailable:
        return written
    for name, draw in figures.items():
        with atomic_open(out / name, "wb") as f:
            draw(f)
        written[name] = out / name
    return written


def _write_text(path: Path, text: str) -> Path:
    atomic_write(path, text)
    return path


# Figures -------------------------------------------------------------------------------------------

def plot_efficiency(results: Sequence[dict[str, Any]], path: Path | BinaryIO, n_scales: int) -> Path | BinaryIO:
    """Accuracy as a fraction of the oracle's against training images per class, one panel per
    scale and one joint, one line per method (mean; bars: 95% t interval of the mean over seeds;
    hollow markers: mean final training accuracy below :data:`FITTED`)."""
    plt = pyplot()
    panels = _accessors(n_scales)
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.4), constrained_layout=True)
    sizes_all = sorted({r["per_class"] for r in results})
    for ax, (name, get) in zip(axes, panels):
        for i, (method, group) in enumerate(_group(results, lambda r: r["method"]).items()):
            by_size = _group(group, lambda r: r["per_class"])
            sizes = sorted(by_size)
            values = [np.array([ratio(r, get) for r in by_size[n]]) for n in sizes]
            half = [stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v)) if len(v) > 1 else 0
                    for v in values]
            shift = 1.0 + 0.03 * (i - 1.5)  # side by side, so the bars do not hide each other
            line = ax.errorbar([n * shift for n in sizes], [v.mean() for v in values], yerr=half, marker="o",
                               ms=4, capsize=2, label=method)
            unfitted = [(n * shift, v.mean()) for n, v in zip(sizes, values) if not fitted(by_size[n])]
            if unfitted:  # hollow: the runs did not fit their training set, so the cell is not compared
                ax.plot(*zip(*unfitted), "o", ms=5, mfc="white", color=line[0].get_color(), zorder=3)
        ax.axhline(1.0, color="k", ls=":", label="oracle")
        ax.set(xscale="log", xlabel="training images per class", title=name)
        ax.set_xticks(sizes_all)
        ax.set_xticklabels([str(n) for n in sizes_all])
        ax.minorticks_off()  # the log axis's minor labels would overprint the sizes
    axes[0].set_ylabel("accuracy / oracle accuracy")
    axes[-1].legend(fontsize=7, title=f"hollow: training accuracy < {FITTED}", title_fontsize=6)
    fig.savefig(path, dpi=80, format="png")
    plt.close(fig)
    return path


def plot_sweep(sweep: Sequence[dict[str, Any]], path: Path | BinaryIO, n_scales: int) -> Path | BinaryIO:
    """Accuracy / oracle of every setting of the sweep (mean and 95% interval over seeds), per scale."""
    plt = pyplot()
    panels = _accessors(n_scales)
    groups = _group(sweep, lambda r: r["method"] + (f": {r['masks']}" if r["masks"] else ""))
    labels = list(groups)
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 0.5 + 0.35 * len(labels)),
                             constrained_layout=True, sharey=True)
    for ax, (name, get) in zip(axes, panels):
        for y, label in enumerate(labels):
            v = np.array([ratio(r, get) for r in groups[label]])
            half = stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v)) if len(v) > 1 else 0
            ax.errorbar([v.mean()], [y], xerr=[half], marker="o", capsize=3, color=f"C{y % 10}")
        ax.axvline(1.0, color="k", ls=":")
        ax.set(title=name, xlabel="accuracy / oracle")
    axes[0].set_yticks(range(len(labels)))
    axes[0].set_yticklabels(labels, fontsize=7)
    axes[0].invert_yaxis()
    fig.savefig(path, dpi=80, format="png")
    plt.close(fig)
    return path


def input_gradient(size: int = 64, probs: tuple[float, float] = (0.5, 0.75), seed: int = 0
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """|d loss / d input| through a linear conv stack with two Backdrop layers, and their masks.

    The stack is a 3×3 conv at full resolution, Backdrop, two 3×3 stride-2 convs, Backdrop (at 1/4
    resolution), a 3×3 conv; every kernel is a positive average so that the gradient of the sum of
    the output (a loss of ones) shows the masks alone: the fine mask times the coarse one, blurred
    by the convolutions. Returns ``(gradient, mask_1, mask_2)``, the masks upsampled to ``size``.
    """
    generator = torch.Generator().manual_seed(seed)

    def conv(stride: int) -> torch.nn.Conv2d:
        layer = torch.nn.Conv2d(1, 1, 3, stride=stride, padding=1, bias=False)
        torch.nn.init.constant_(layer.weight, 1 / 9)
        return layer

    fine, coarse = Backdrop(probs[0], generator=generator), Backdrop(probs[1], generator=generator)
    net = torch.nn.Sequential(conv(1), fine, conv(2), conv(2), coarse, conv(1))
    x = torch.zeros(1, 1, size, size, requires_grad=True)
    net(x).sum().backward()

    def upsample(mask: torch.Tensor) -> np.ndarray:
        factor = size // mask.shape[-1]
        return mask[0, 0].repeat_interleave(factor, 0).repeat_interleave(factor, 1).numpy()

    return x.grad[0, 0].abs().numpy(), upsample(fine.last_mask), upsample(coarse.last_mask)


def plot_input_gradient(path: Path | BinaryIO, size: int = 64, probs: tuple[float, float] = (0.5, 0.75), seed: int = 0) -> Path | BinaryIO:
    """``input_gradient.png``: the two masks and the gradient that reaches the input (the
    "product of two masks" picture of the paper)."""
    plt = pyplot()
    grad, fine, coarse = input_gradient(size, probs, seed)
    fig, axes = plt.subplots(1, 3, figsize=(9, 3.2), constrained_layout=True)
    for ax, image, title in ((axes[0], fine, f"mask 1 (full resolution, p={probs[0]:g})"),
                             (axes[1], coarse, f"mask 2 (1/4 resolution, p={probs[1]:g})"),
                             (axes[2], grad, "|gradient at the input|")):
        ax.imshow(image, cmap="magma", interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.set_axis_off()
    fig.savefig(path, dpi=80, format="png")
    plt.close(fig)
    return path
