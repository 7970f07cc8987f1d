"""What an experiment runs: an :class:`ExperimentPlan` (the dataset, the training-set sizes, the
seeds, the methods, the sweep of backdrop settings, the validation and report sets, the training
budgets) and the network family's named plans (:data:`PLANS`, which
:func:`backdrop.runner.plans` lists with the other family's for ``msgp experiment --plan``).

Methods (:data:`METHODS`): ``no-backdrop`` (the full gradient, one head per scale), ``backdrop``
(one head per scale, each behind its own mask), ``series`` (the paper's topology: the masks in
series along one trunk, one classifier), ``backdrop-batch`` and ``series-batch`` (the same with the
2018 reference's estimator: one mask shared by the batch and the channels, rescaled over the whole
mask), ``series-nomask`` (the series topology without masks: the control that separates the
topology's cost from the masks' effect), ``augment`` (random periodic shifts, flips and axis
permutations, exact symmetries of the data, full gradient), ``augment+backdrop`` and ``crop``
(random crops, whole test images scored by their tiles). :data:`ANCHORS`, fitted rather than
trained (:mod:`.anchors`): ``whittle`` (the spectral plug-in classifier) and ``scattering`` (wavelet
scattering and a logistic regression). A plan's ``extra`` methods come from the user's files
(:mod:`.methods`).

The four backdrop methods (:data:`BACKDROP_METHODS`) run every setting of the plan's sweep that is
theirs at every size; at each size the setting with the best validation accuracy is that method's
row, and the best of all of them is the ``best-backdrop`` row (:data:`BEST`).
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

from msgp.checks import Checks
from msgp.spec import DatasetSpec, load_preset

from ..runner import RunnerError

# The methods with backdrop's masks, each with its settings swept and chosen per size.
BACKDROP_METHODS = ("backdrop", "series", "backdrop-batch", "series-batch")
# Every built-in network method.
METHODS = ("no-backdrop", *BACKDROP_METHODS, "series-nomask", "augment", "augment+backdrop", "crop")
ANCHORS = ("whittle", "scattering")  # fitted methods that are not networks (see .anchors)
REFERENCES = ("no-backdrop", "augment")  # what every other method is compared with
BEST = "best-backdrop"  # at each size, the backdrop setting (any topology, any scope) best on validation
CONTROLS = (("series", "series-nomask"), ("series-batch", "series-nomask"))  # masks' effect within the series topology
SCOPES = ("sample", "batch")


class ExperimentError(RunnerError):
    """An output directory or plan that cannot be used; the message is one line for the user.
    A :class:`msgp.MSGPError` and a ``ValueError``."""


_checks = Checks(ExperimentError, ExperimentError, quote=True)


@dataclass(frozen=True)
class Masks:
    """A backdrop setting: topology, mask probability per scale, mask block side per scale, and
    the mask's scope (``sample``: each sample its own mask; ``batch``: the reference's, one mask
    shared by the batch)."""

    topology: str
    probs: tuple[float, ...]
    blocks: tuple[int, ...]
    scope: str = "sample"

    @property
    def tag(self) -> str:
        # Sample scope adds nothing, so run directories named before scopes existed keep their names.
        tag = f"{self.topology}-p" + "_".join(f"{p:g}" for p in self.probs)
        tag += "-b" + "_".join(str(b) for b in self.blocks) if any(b > 1 for b in self.blocks) else ""
        return tag + ("-batch" if self.scope == "batch" else "")

    @property
    def method(self) -> str:
        """The backdrop method this setting belongs to (one of :data:`BACKDROP_METHODS`)."""
        return ("backdrop" if self.topology == "heads" else "series") + ("-batch" if self.scope == "batch" else "")

    def describe(self) -> str:
        text = f"{self.topology}, p {'/'.join(f'{p:g}' for p in self.probs)}"
        text += f", blocks {'/'.join(str(b) for b in self.blocks)}" if any(b > 1 for b in self.blocks) else ""
        return text + (", batch masks" if self.scope == "batch" else "")


def masks(topology: str, probs: Sequence[float], blocks: Sequence[int] | None = None, scope: str = "sample") -> Masks:
    """A backdrop setting (:class:`Masks`), checked: ``blocks`` default to 1 at every scale.

    Examples
    --------
    >>> masks("heads", (0.5, 0.9)).describe()
    'heads, p 0.5/0.9'
    """
    if topology not in ("heads", "series") or scope not in SCOPES:
        raise ExperimentError(f"a mask setting needs topology heads or series and scope sample or batch, "
                              f"but got {topology!r} and {scope!r}")
    probs = tuple(float(p) for p in probs)
    return Masks(topology, probs, tuple(int(b) for b in blocks) if blocks is not None else (1,) * len(probs), scope)


@dataclass(frozen=True)
class ExperimentPlan:
    """Everything an experiment runs.

    The run of seed ``s`` trains on samples of the training distribution (``spec`` with seed
    ``spec.seed + s``) that no other seed's runs see: sample i of a description is drawn from its
    own random stream of (seed, i), so descriptions with different seeds share no image. Its
    training set at ``n`` per class is the first ``n`` samples per class of them
    (:meth:`train_spec`), so the size-n set is the beginning of the size-2n one and the size curves
    of a seed stay paired, and a plan given more sizes keeps the sets of the old ones. Every choice
    (the backdrop setting per size) is made on the validation set; the report set scores the
    tables only. Neither has a training seed's seed.

    Parameters
    ----------
    spec : the training distribution and the root ``spec.seed`` of the training seeds; ``n`` is
        ignored (each run generates its own training samples).
    sizes : training-set sizes, in samples per class.
    seeds : seeds at sizes above ``small_max`` (seeds ``0 .. seeds-1``); each picks the training
        samples, the initialisation, the order, the masks, the crops and the symmetries of a run.
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
    backdrop : the setting of ``augment+backdrop``, and of ``backdrop`` (``backdrop-batch`` with
        batch scope) when the sweep has no setting of that method.
    series : the setting of ``series`` (``series-batch``) when the sweep has none of that method.
    crop : side of the random crops of the ``crop`` method.
    sweep : backdrop settings; each runs, as the method of its topology and scope, at every size
        with every seed of the size, and the best on the validation set is chosen per size.
    n_validation, validation_seed : the validation set (``spec`` with this seed and ``n``, all
        scored by the trainer after its last epoch): every choice is made on it.
    n_test, test_seed : the report set (all scored after training): the tables report it only.
    batch_size : images per step (at most the training-set size).
    lr, width, device : as in :class:`~backdrop.training.TrainConfig`.
    """

    spec: DatasetSpec
    sizes: tuple[int, ...]
    seeds: int = 5
    small_seeds: int = 10
    small_max: int = 8
    methods: tuple[str, ...] = ("no-backdrop", "backdrop", "series", "series-nomask", "augment")
    images: int = 2048
    budgets: tuple[tuple[str, int, int], ...] = ()
    min_epochs: int = 16
    backdrop: Masks | None = None
    series: Masks | None = None
    crop: int = 32
    sweep: tuple[Masks, ...] = ()
    n_validation: int = 512
    validation_seed: int = 1000
    n_test: int = 2048
    test_seed: int = 2000
    batch_size: int = 16
    lr: float = 2e-3
    width: int = 16
    device: str = "auto"
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
            raise ExperimentError(f"`sizes` must be positive integers (samples per class), but got {self.sizes}")
        for name in ("seeds", "small_seeds", "images", "min_epochs"):
            _checks.integer(name, getattr(self, name), 1)
        for name in ("n_validation", "n_test"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < C or value % C:
                raise ExperimentError(f"`{name}` must be a positive multiple of the {C} classes, but got {value}")
        training = range(self.spec.seed, self.spec.seed + self.n_seeds)
        if self.validation_seed == self.test_seed or {self.validation_seed, self.test_seed} & set(training):
            raise ExperimentError(f"the validation and report sets need another seed each than the training seeds "
                                  f"({training.start} to {training.stop - 1}), but got {self.validation_seed} "
                                  f"and {self.test_seed}")
        for setting in (self.backdrop, self.series, *self.sweep):
            if len(setting.probs) != K or len(setting.blocks) != K:
                raise ExperimentError(f"mask setting {setting.describe()} needs one value per scale ({K})")
        if self.backdrop.topology != "heads" or self.series.topology != "series":
            raise ExperimentError("the backdrop setting needs the heads topology and the series setting the series one")
        for method, per_class, images in self.budgets:
            if (method != "*" and method not in self.methods) or per_class not in self.sizes \
                    or not isinstance(images, int) or images < 1:
                raise ExperimentError(f"budget ({method}, {per_class}, {images}) needs a method (or *) and a size "
                                      "of the plan and a positive number of images")

    @property
    def n_seeds(self) -> int:
        """Seeds of the largest cell: the training seeds are ``spec.seed`` to ``spec.seed + n_seeds - 1``."""
        return max(len(self.seeds_at(n)) for n in self.sizes)

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

    def settings(self, method: str) -> tuple[Masks, ...]:
        """The mask settings a backdrop method runs at every size: the sweep's of its topology and
        scope, else the plan's ``backdrop`` or ``series`` setting in its scope."""
        swept = tuple(m for m in self.sweep if m.method == method)
        if swept:
            return swept
        if method not in BACKDROP_METHODS:
            return (self.backdrop,) if method == "augment+backdrop" else ()
        setting = self.series if method.startswith("series") else self.backdrop
        scope = "batch" if method.endswith("-batch") else "sample"
        return (Masks(setting.topology, setting.probs, setting.blocks, scope),)

    def train_spec(self, seed: int, per_class: int) -> DatasetSpec:
        """The training set of seed ``seed`` at ``per_class``: the first ``per_class`` samples per
        class of the seed's own description (class-balanced: each run of ``n_classes`` samples
        holds every class once), so the set of a size is the beginning of every larger one's."""
        return self.spec.replace(seed=self.spec.seed + seed, n=per_class * self.spec.n_classes)

    @property
    def validation_spec(self) -> DatasetSpec:
        return self.spec.replace(seed=self.validation_seed, n=self.n_validation)

    @property
    def test_spec(self) -> DatasetSpec:
        return self.spec.replace(seed=self.test_seed, n=self.n_test)


def paper128_sweep(lean: bool = False) -> tuple[Masks, ...]:
    """paper128's backdrop settings: the two best of the earlier sweep at 4 per class (p 0.25/0.25
    and 0.5/0.5, heads), the setting the earlier tables used (0.5/0.9), and the series topology at
    the paper's p 0.3/0.95, each of the last with the reference's batch masks too. Seven settings,
    so that each costs a fraction of the plan; ``lean`` keeps five (one per method, plus 0.5/0.9)."""
    heads = [masks("heads", (0.25, 0.25)), masks("heads", (0.5, 0.9))] + ([] if lean else [masks("heads", (0.5, 0.5))])
    batch = [masks("heads", (0.25, 0.25), scope="batch")]
    batch += [] if lean else [masks("heads", (0.5, 0.5), scope="batch")]
    return (*heads, *batch, masks("series", (0.3, 0.95)), masks("series", (0.3, 0.95), scope="batch"))


def paper128_plan() -> ExperimentPlan:
    """The paper's two-scale statistics at 128² (the ``paper-2scale`` length scales divided by 8, so
    an image holds the paper's number of blobs per scale), 2 to 64 images per class; 10 seeds up to
    8 per class, 5 above; the seven backdrop settings of :func:`paper128_sweep` at every size, and the
    two anchors beside the networks. The series topology (masked or not) sees 16384 images (512
    epochs) at 8 per class. 450 network runs; :func:`paper128_lean_plan` is the cut for 2 CPU cores
    (their budgets and estimated times: docs/results.md)."""
    spec = DatasetSpec.default(2, 128, normalize="sample", n=4, seed=0)
    series = ("series", "series-batch", "series-nomask")
    return ExperimentPlan(spec=spec, sizes=(2, 4, 8, 16, 32, 64), small_max=8, device="cpu", seeds=5,
                          methods=("no-backdrop", *BACKDROP_METHODS, "series-nomask", "augment", *ANCHORS),
                          backdrop=masks("heads", (0.5, 0.9)), series=masks("series", (0.3, 0.95)),
                          budgets=tuple((m, 8, 16384) for m in series), sweep=paper128_sweep())


def paper128_lean_plan() -> ExperimentPlan:
    """:func:`paper128_plan` cut for 2 CPU cores: five backdrop settings (``paper128_sweep(lean=True)``:
    one per method, and the earlier tables' 0.5/0.9) and sizes 2 to 32 per class (at 64 per class
    every method of the earlier tables was within 0.01 of the full gradient). 320 network runs."""
    full = paper128_plan()
    return ExperimentPlan(**{**{f: getattr(full, f) for f in full.__dataclass_fields__},
                             "sizes": (2, 4, 8, 16, 32), "sweep": paper128_sweep(lean=True)})


def default3_plan() -> ExperimentPlan:
    """The default three-scale dataset (``msgp generate``: 128², normalize=theory) at 2, 8 and 32
    images per class (10 seeds at 2 and 8, 5 at 32): the full gradient, augmentation, the series
    control and five backdrop settings (heads p 0.25 and 0.5/0.5/0.9, heads with the reference's
    batch masks, series at 0.3/0.5/0.95 with either scope). At 8 per class a run sees 15360 images,
    the default training's 960 steps of 16 (the finest scale needs hundreds of steps to leave
    chance), and at 32 per class 30720. The sweep has heads at p 0.25 (where the trainer's
    ``--backdrop`` defaults) and at the earlier tables' 0.5/0.5/0.9, and one setting of each other
    backdrop method. 200 network runs, a night's on 2 CPU cores or a GPU's (the budgets' reasons
    and the estimated time: docs/results.md). The two anchors run beside the networks."""
    spec = DatasetSpec.default(3, 128, n=8, seed=0)
    sweep = (masks("heads", (0.25, 0.25, 0.25)), masks("heads", (0.5, 0.5, 0.9)),
             masks("heads", (0.25, 0.25, 0.25), scope="batch"),
             masks("series", (0.3, 0.5, 0.95)), masks("series", (0.3, 0.5, 0.95), scope="batch"))
    return ExperimentPlan(spec=spec, sizes=(2, 8, 32), small_max=8, seeds=5, device="cpu",
                          budgets=(("*", 8, 15360), ("*", 32, 30720)),
                          methods=("no-backdrop", *BACKDROP_METHODS, "series-nomask", "augment", *ANCHORS),
                          backdrop=masks("heads", (0.5, 0.5, 0.9)), series=masks("series", (0.3, 0.5, 0.95)),
                          sweep=sweep)


def paper_plan() -> ExperimentPlan:
    """The ``paper-2scale`` preset at 1024², 4 to 64 images per class, for a GPU."""
    return ExperimentPlan(spec=load_preset("paper-2scale"), sizes=(4, 16, 64), seeds=3, small_seeds=10,
                          small_max=4, images=4096, crop=256, device="auto",
                          methods=("no-backdrop", "backdrop", "series", "series-nomask", "augment", "crop"),
                          backdrop=masks("heads", (0.5, 0.9)), series=masks("series", (0.3, 0.95)))


def smoke_plan() -> ExperimentPlan:
    """Four runs of seconds each on 32² images (the full gradient and backdrop, 2 images per class,
    2 seeds, 8 epochs): checks that the whole pipeline works here, and is what
    ``benchmarks/fault_injection.py`` kills and resumes. Its numbers mean nothing."""
    spec = DatasetSpec(n=8, length_scales=[[1.5, 2.0], [5.0, 8.0]], amplitudes=[1.0, 1.0], size=32, seed=0)
    return ExperimentPlan(spec=spec, sizes=(2,), small_seeds=2, small_max=2, methods=("no-backdrop", "backdrop"),
                          images=8, min_epochs=8, n_validation=32, n_test=32, batch_size=4, width=8, device="cpu",
                          backdrop=masks("heads", (0.5, 0.5)))


# The network family's named plans (``msgp experiment --plan``, :func:`backdrop.runner.plans`).
PLANS = {"paper128": paper128_plan, "paper128-lean": paper128_lean_plan, "default3": default3_plan,
         "paper": paper_plan, "smoke": smoke_plan}
