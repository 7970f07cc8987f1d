"""What an experiment runs: an :class:`ExperimentPlan` (the dataset, the training-set sizes, the
seeds, the methods, each backdrop method's :class:`Masks`, a sweep of mask settings, the training
budgets) and the named plans of ``msgp experiment --plan`` (:data:`PLANS`).

Methods (:data:`METHODS`): ``no-backdrop`` (the full gradient), ``backdrop`` (one head per
scale, each behind its own mask), ``series`` (the paper's topology: the masks in series along one
trunk, one classifier), ``augment`` (random periodic shifts, flips and axis permutations, exact
symmetries of the data, full gradient), ``augment+backdrop`` and ``crop`` (random crops, whole
test images scored by their tiles). :data:`ANCHORS`, fitted rather than trained
(:mod:`.anchors`): ``whittle`` (the spectral plug-in classifier) and ``scattering`` (wavelet
scattering and a logistic regression). A plan's ``extra`` methods come from the user's files
(:mod:`.methods`).
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

from msgp.spec import DatasetSpec, load_preset

METHODS = ("no-backdrop", "backdrop", "series", "augment", "augment+backdrop", "crop")
ANCHORS = ("whittle", "scattering")  # fitted methods that are not networks (see .anchors)
REFERENCES = ("no-backdrop", "augment")  # what every other method is compared with


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
    methods : any of :data:`METHODS` and :data:`ANCHORS`, and the names of ``extra``.
    extra : methods from the user's own files (:func:`~backdrop.experiment.methods.load_method`).
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
    extra: tuple = ()

    def __post_init__(self):
        for name in ("sizes", "methods", "sweep", "budgets", "extra"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        K = self.spec.n_scales
        if self.backdrop is None:
            object.__setattr__(self, "backdrop", masks("heads", (0.5,) * K))
        if self.series is None:
            object.__setattr__(self, "series", masks("series", (0.5,) * K))
        C = self.spec.n_classes
        known = METHODS + ANCHORS + tuple(m.name for m in self.extra)
        unknown = [m for m in self.methods if m not in known]
        if unknown:
            raise ExperimentError(f"unknown method {unknown[0]!r}; choose from {', '.join(known)}")
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

    def with_methods(self, extra: Sequence) -> "ExperimentPlan":
        """The plan with the methods ``extra`` (loaded from the user's files) added to its own."""
        names = [m.name for m in extra]
        taken = next((n for n in names if n in self.methods or names.count(n) > 1), None)
        if taken:
            raise ExperimentError(f"method {taken!r} is given twice; rename one of the functions")
        return dataclasses.replace(self, methods=self.methods + tuple(names), extra=self.extra + tuple(extra))

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
    at 8 per class sees 16384 images (512 epochs), where 2048 left it short of fitting its training set.
    The two anchors run beside the networks."""
    spec = DatasetSpec.default(2, 128, normalize="sample", n=4, seed=0)
    return ExperimentPlan(spec=spec, sizes=(2, 4, 8, 16, 32, 64), small_max=8, device="cpu",
                          backdrop=masks("heads", (0.5, 0.9)), series=masks("series", (0.3, 0.95)),
                          seeds=5, sweep_size=4, budgets=(("series", 8, 16384),),
                          methods=("no-backdrop", "backdrop", "series", "augment", "whittle", "scattering"),
                          sweep=(masks("heads", (0.25, 0.25)), masks("heads", (0.5, 0.5)), masks("heads", (0.5, 0.9)),
                                 masks("heads", (0.5, 0.97)), masks("heads", (0.5, 0.97), (1, 2)),
                                 masks("series", (0.3, 0.95))))


def default3_plan() -> ExperimentPlan:
    """The default three-scale dataset (``msgp generate``: 128², normalize=theory) at 2, 8 and 32
    images per class (10 seeds at 2 and 8, 3 at 32): the full gradient, backdrop and augmentation.
    At 8 per class a run sees 15360 images, the default training's 960 steps of 16: the finest scale
    needs hundreds of steps to leave chance. At 32 per class every run sees 30720: with 15360
    backdrop's coarse head (p 0.9) was still learning (training accuracy 0.96, loss falling). The two
    anchors run beside the networks."""
    spec = DatasetSpec.default(3, 128, n=8, seed=0)
    return ExperimentPlan(spec=spec, sizes=(2, 8, 32), small_max=8, seeds=3, device="cpu",
                          budgets=(("*", 8, 15360), ("*", 32, 30720)),
                          methods=("no-backdrop", "backdrop", "augment", "whittle", "scattering"),
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
