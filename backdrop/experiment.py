"""The experiment behind the 2018 paper's claim: backdrop against the full gradient and random crops.

An :class:`ExperimentPlan` names a dataset, the training-set sizes, the seeds, the methods and a
mask-probability sweep. :func:`run_experiment` generates (or reuses) a training file and a separate
test file with the same statistics, trains every planned run in its own directory, scores each on
the whole test file beside the Bayes-optimal oracle, and rebuilds the tables and figures from the
run directories, so an interrupted experiment rerun with the same plan repeats nothing that was
finished. :func:`quick_plan` (small, 2 CPU cores) and :func:`paper_plan` (the paper's 1024² data,
for a GPU) are the two presets of ``msgp experiment``.

Scoring. :func:`backdrop.training.train` scores its test set after every epoch; with hundreds of
epochs for the smallest training sets, scoring the 512-image test file each time would cost more
than the training. Each run therefore monitors a few images of the training file during training
(``monitor_per_class`` per class, disjoint from the training subset) and is scored once, at the
end, by :func:`backdrop.training.evaluate` on every sample of the test file; the oracle is scored
on the same samples.
"""
from __future__ import annotations

import csv
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from msgp import io
from msgp.plotting import PlotUnavailable, pyplot
from msgp.spec import DatasetSpec, load_preset

from . import training
from .layer import Backdrop

METHODS = ("backdrop", "no-backdrop", "crop")
Progress = Callable[[str, dict], None]


class ExperimentError(ValueError):
    """An output directory or plan that cannot be used; the message is one line for the user."""


@dataclass(frozen=True)
class ExperimentPlan:
    """Everything an experiment runs.

    Parameters
    ----------
    spec : the training data; its ``n`` is raised if needed to hold the largest training set and
        the monitoring images. The test file is ``spec`` with ``seed=test_seed`` and ``n=n_test``.
    sizes : training-set sizes, in samples per class.
    seeds : training seeds; each picks the training subset, the initialisation, the order, the
        crops and the masks of a run.
    methods : any of ``backdrop``, ``no-backdrop`` and ``crop``.
    images : training images seen per run, the same for every size (so a smaller training set gets
        more epochs): ``epochs = ceil(images / n_train)``.
    crop : side of the random crops of the ``crop`` method (trained without backdrop).
    mask_prob : mask probability of every head for the ``backdrop`` method, or one per scale.
    n_test : samples in the test file, every one scored (a multiple of the number of classes).
    test_seed : seed of the test file (must differ from ``spec.seed``).
    monitor_per_class : images per class of the training file scored after every epoch (see the
        module docstring); they never enter the training subset.
    batch_size : images per step (at most the training-set size).
    lr, width, device : as in :class:`~backdrop.training.TrainConfig`.
    sweep_size : training-set size (per class) of the mask-probability sweep; ``None``: no sweep.
    sweep_probs : the values each head's mask probability takes in the sweep, one head at a time,
        the others held at ``mask_prob``.
    sweep_seeds : the sweep's seeds.
    """

    spec: DatasetSpec
    sizes: tuple[int, ...]
    seeds: tuple[int, ...]
    methods: tuple[str, ...] = METHODS
    images: int = 3072
    crop: int = 32
    mask_prob: float | tuple[float, ...] = 0.5
    n_test: int = 512
    test_seed: int = 1000
    monitor_per_class: int = 4
    batch_size: int = 16
    lr: float = 2e-3
    width: int = 16
    device: str = "auto"
    sweep_size: int | None = None
    sweep_probs: tuple[float, ...] = (0.0, 0.5, 0.9)
    sweep_seeds: tuple[int, ...] = ()

    def __post_init__(self):
        for name in ("sizes", "seeds", "methods", "sweep_probs", "sweep_seeds"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if isinstance(self.mask_prob, (list, tuple)):
            object.__setattr__(self, "mask_prob", tuple(float(p) for p in self.mask_prob))
        C = self.spec.n_classes
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            raise ExperimentError(f"unknown method {unknown[0]!r}; choose from {', '.join(METHODS)}")
        if not self.sizes or any(not isinstance(n, int) or n < 1 for n in self.sizes):
            raise ExperimentError(f"sizes must be positive integers (samples per class), but got {self.sizes}")
        if not self.seeds or any(not isinstance(s, int) or s < 0 for s in self.seeds):
            raise ExperimentError(f"seeds must be non-negative integers, but got {self.seeds}")
        if self.n_test < C or self.n_test % C:
            raise ExperimentError(f"n_test must be a positive multiple of the {C} classes, but got {self.n_test}")
        if self.test_seed == self.spec.seed:
            raise ExperimentError(f"the test file needs another seed than the training file ({self.spec.seed})")
        if self.images < 1 or self.monitor_per_class < 1:
            raise ExperimentError("images and monitor_per_class must be positive")
        if self.sweep_size is not None and not self.sweep_seeds:
            raise ExperimentError("a sweep needs at least one seed (sweep_seeds)")

    @property
    def train_spec(self) -> DatasetSpec:
        needed = (max(self.sizes + ((self.sweep_size,) if self.sweep_size else ())) + self.monitor_per_class) \
            * self.spec.n_classes
        return self.spec.replace(n=max(self.spec.n, needed))

    @property
    def test_spec(self) -> DatasetSpec:
        return self.spec.replace(seed=self.test_seed, n=self.n_test)

    def head_probs(self) -> tuple[float, ...]:
        """The backdrop method's mask probability of each head."""
        K = self.spec.n_scales
        return self.mask_prob if isinstance(self.mask_prob, tuple) else (float(self.mask_prob),) * K


def quick_plan() -> ExperimentPlan:
    """The ``--quick`` plan, sized for 2 CPU cores in under 30 minutes.

    The paper's two-scale dataset scaled to 128² (length scales 1.19 / 1.25 px and 10 / 17.5 px,
    standardised per sample), 2, 8 and 32 training images per class, 3 seeds, 2048 training
    images seen per run, 512 test images, one monitoring image per class; the sweep at 8 per class.
    """
    spec = DatasetSpec.default(2, 128, normalize="sample", n=4, seed=0)
    return ExperimentPlan(spec=spec, sizes=(2, 8, 32), seeds=(0, 1, 2), images=2048, crop=32,
                          monitor_per_class=1, sweep_size=8, sweep_seeds=(0, 1, 2), device="cpu")


def paper_plan() -> ExperimentPlan:
    """The ``--paper`` plan: the ``paper-2scale`` preset at 1024², 4 to 256 images per class, for a GPU."""
    return ExperimentPlan(spec=load_preset("paper-2scale"), sizes=(4, 16, 64, 256), seeds=(0, 1, 2),
                          images=16384, crop=256, sweep_size=16, sweep_seeds=(0, 1, 2), device="auto")


@dataclass(frozen=True)
class Run:
    """One training run of the plan: its directory name and its training settings."""

    name: str
    method: str
    per_class: int
    seed: int
    mask_prob: tuple[float, ...] | None = None  # the backdrop method's, one per head

    def config(self, plan: ExperimentPlan, data: Path) -> training.TrainConfig:
        C = plan.spec.n_classes
        n_train = self.per_class * C
        return training.TrainConfig(
            data=str(data), backdrop=self.method == "backdrop",
            mask_prob=self.mask_prob if self.mask_prob is not None else 0.5,
            crop=plan.crop if self.method == "crop" else None, n_train=n_train,
            n_test=plan.monitor_per_class * C, epochs=math.ceil(plan.images / n_train),
            batch_size=min(plan.batch_size, n_train), lr=plan.lr, device=plan.device, seed=self.seed,
            width=plan.width)


def _run(method: str, per_class: int, seed: int, probs: tuple[float, ...] | None = None) -> Run:
    if method == "backdrop":
        tag = "backdrop-p" + "_".join(f"{p:g}" for p in probs)
    else:
        tag = method
    return Run(f"{tag}-n{per_class}-s{seed}", method, per_class, seed, probs)


def main_runs(plan: ExperimentPlan) -> list[Run]:
    """Every method at every size and seed."""
    return [_run(m, n, s, plan.head_probs() if m == "backdrop" else None)
            for n in plan.sizes for m in plan.methods for s in plan.seeds]


def sweep_settings(plan: ExperimentPlan) -> list[tuple[float, ...]]:
    """The sweep's mask probabilities, one tuple per setting: the plan's, then each head varied alone."""
    if plan.sweep_size is None:
        return []
    base = plan.head_probs()
    settings = [base]
    for head in range(len(base)):
        for p in plan.sweep_probs:
            probs = base[:head] + (float(p),) + base[head + 1:]
            if probs not in settings:
                settings.append(probs)
    return settings


def sweep_runs(plan: ExperimentPlan) -> list[Run]:
    """Backdrop runs of the sweep; the plan's own setting shares its directories with the main runs."""
    return [_run("backdrop", plan.sweep_size, s, probs) for probs in sweep_settings(plan) for s in plan.sweep_seeds]


def prepare_data(plan: ExperimentPlan, out: Path, progress: Progress | None = None) -> tuple[Path, Path]:
    """The training and test files in ``out/data``, generated unless a complete file with the same
    description is there (an incomplete one is finished)."""
    notify = progress or (lambda event, info: None)
    paths = []
    for name, spec in (("train", plan.train_spec), ("test", plan.test_spec)):
        path = out / "data" / f"{name}.h5"
        reused = False
        if path.exists():
            try:
                stored = io.read_spec(path)
            except io.MSGPError as err:
                raise ExperimentError(f"{path} cannot be reused ({err}); remove it or choose another --out") from None
            if stored != spec:
                raise ExperimentError(f"{path} holds another dataset than this plan's (another experiment?); "
                                      "remove it or choose another --out")
            try:
                io.read_spec(path, require_complete=True)
                reused = True
            except io.MSGPError:
                pass  # incomplete: io.write(resume=True) below finishes it
        if not reused:
            notify("generate", {"path": str(path), "n": spec.n})
            io.write(spec, path, resume=path.exists())
        else:
            notify("reuse", {"path": str(path), "n": spec.n})
        paths.append(path)
    return paths[0], paths[1]


def execute(run: Run, plan: ExperimentPlan, out: Path, train_path: Path, test_path: Path,
            progress: Progress | None = None) -> dict[str, Any]:
    """Train ``run`` unless its ``summary.json`` exists (resuming an interrupted one), score it on
    the test file unless its ``result.json`` exists, and return that result."""
    notify = progress or (lambda event, info: None)
    run_dir = out / "runs" / run.name
    result_path = run_dir / "result.json"
    if result_path.exists():
        notify("skip", {"run": run.name})
        return json.loads(result_path.read_text())
    config = run.config(plan, train_path)
    started = time.perf_counter()
    train_seconds = 0.0
    if not (run_dir / "summary.json").exists():
        notify("train", {"run": run.name, "epochs": config.epochs, "n_train": config.n_train})
        resume = (run_dir / "checkpoint.pt").exists()
        training.train(config, run_dir, resume=resume,
                       progress=lambda event, info: notify(f"train-{event}", {"run": run.name, **info}))
        train_seconds = time.perf_counter() - started
    scored = training.evaluate(run_dir, test_path, n=plan.n_test, device=plan.device)
    result = {
        "method": run.method, "n_train": config.n_train, "per_class": run.per_class, "seed": run.seed,
        "mask_prob": list(run.mask_prob) if run.mask_prob is not None else None, "epochs": config.epochs,
        "n_test": scored["n"],
        "test_accuracy": {"joint": scored["network"]["joint"]["accuracy"],
                          "scales": [s["accuracy"] for s in scored["network"]["scales"]]},
        "oracle_accuracy": {"joint": scored["oracle"]["joint"]["accuracy"],
                            "scales": [s["accuracy"] for s in scored["oracle"]["scales"]]},
        # Training plus scoring; 0 training seconds when only the scoring was left to do.
        "wall_s": time.perf_counter() - started,
        "train_s": train_seconds,
    }
    result_path.write_text(json.dumps(result, indent=2) + "\n")
    notify("done", {"run": run.name, **result})
    return result


def run_experiment(plan: ExperimentPlan, out: str | Path, progress: Progress | None = None) -> dict[str, Path]:
    """Run (or finish) the whole plan into ``out`` and write the tables and figures.

    Parameters
    ----------
    plan : what to run.
    out : output directory: ``data/`` (the two HDF5 files), ``runs/<name>/`` (one per run: the
        trainer's files and ``result.json``), and the outputs listed below.
    progress : ``progress(event, info)`` with events ``generate``/``reuse`` (a data file),
        ``train`` (a run starts training; ``train-<event>`` forwards the trainer's events), ``skip``
        (a finished run), ``done`` (a run scored), ``plan`` (``{"runs": count}``, first).

    Returns
    -------
    The written files by name: ``results.csv``, ``results.md``, ``accuracy_vs_ntrain.png``,
    ``input_gradient.png`` and, with a sweep, ``mask_prob_sweep.csv``/``.md``/``.png``.
    """
    out = Path(out)
    notify = progress or (lambda event, info: None)
    runs = main_runs(plan)
    sweep = sweep_runs(plan)
    unique = list(dict.fromkeys(runs + sweep))
    notify("plan", {"runs": len(unique)})
    train_path, test_path = prepare_data(plan, out, progress)
    results = {run: execute(run, plan, out, train_path, test_path, progress) for run in unique}
    return write_outputs(plan, out, [results[r] for r in runs], [results[r] for r in sweep])


# Tables --------------------------------------------------------------------------------------------

def _columns(n_scales: int) -> list[str]:
    accs = ["test_joint"] + [f"test_scale{s}" for s in range(n_scales)]
    oracle = ["oracle_joint"] + [f"oracle_scale{s}" for s in range(n_scales)]
    return ["method", "n_train", "per_class", "seed", "mask_prob", "epochs", *accs, *oracle, "wall_s"]


def _row(result: dict[str, Any]) -> dict[str, Any]:
    test, orc = result["test_accuracy"], result["oracle_accuracy"]
    row = {k: result[k] for k in ("method", "n_train", "per_class", "seed", "epochs")}
    row["mask_prob"] = "" if result["mask_prob"] is None else "/".join(f"{p:g}" for p in result["mask_prob"])
    row["test_joint"] = test["joint"]
    row.update({f"test_scale{s}": a for s, a in enumerate(test["scales"])})
    row["oracle_joint"] = orc["joint"]
    row.update({f"oracle_scale{s}": a for s, a in enumerate(orc["scales"])})
    row["wall_s"] = round(result["wall_s"], 2)
    return row


def write_csv(results: Sequence[dict[str, Any]], path: Path, n_scales: int) -> Path:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=_columns(n_scales))
        writer.writeheader()
        writer.writerows(_row(r) for r in results)
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
    """A markdown table: one row per group of runs, mean ± std over its seeds of each accuracy."""
    headers = [*key_headers, "seeds", "joint", *[f"scale {s}" for s in range(n_scales)], "oracle joint",
               *[f"oracle scale {s}" for s in range(n_scales)]]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for k, group in _group(results, key).items():
        cells = [*key_cells(k), str(len(group)), _mean_std([r["test_accuracy"]["joint"] for r in group])]
        cells += [_mean_std([r["test_accuracy"]["scales"][s] for r in group]) for s in range(n_scales)]
        cells.append(_mean_std([r["oracle_accuracy"]["joint"] for r in group]))
        cells += [_mean_std([r["oracle_accuracy"]["scales"][s] for r in group]) for s in range(n_scales)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _describe(plan: ExperimentPlan) -> str:
    s = plan.spec
    lengths = "; ".join(" / ".join(f"{v:g}" for v in row) for row in s.length_scales)
    return (f"Data: {s.size}^{s.ndim} px, {s.n_scales} scales (length scales {lengths} px), "
            f"normalize={s.normalize}; training file seed {s.seed}, test file seed {plan.test_seed} "
            f"({plan.n_test} images, all scored). {plan.images} training images seen per run "
            f"(epochs = ceil({plan.images} / n_train)), batch min({plan.batch_size}, n_train), lr {plan.lr:g}; backdrop "
            f"mask probability {'/'.join(f'{p:g}' for p in plan.head_probs())}; crop = random "
            f"{plan.crop}² crops without backdrop. Accuracies: mean ± sample std over seeds.\n")


def write_outputs(plan: ExperimentPlan, out: Path, results: Sequence[dict[str, Any]],
                  sweep: Sequence[dict[str, Any]]) -> dict[str, Path]:
    """The tables and figures of finished runs (see :func:`run_experiment`)."""
    K = plan.spec.n_scales
    written = {"results.csv": write_csv(results, out / "results.csv", K)}
    table = summary_table(results, lambda r: (r["method"], r["per_class"]), ["method", "n_train (per class)"],
                          lambda k: [k[0], str(k[1])], K)
    (out / "results.md").write_text("# Test accuracy by method and training-set size\n\n" + _describe(plan)
                                    + "\n" + table)
    written["results.md"] = out / "results.md"
    figures = {"accuracy_vs_ntrain.png": lambda path: plot_accuracy(results, path, K),
               "input_gradient.png": plot_input_gradient}
    if sweep:
        written["mask_prob_sweep.csv"] = write_csv(sweep, out / "mask_prob_sweep.csv", K)
        table = summary_table(sweep, lambda r: tuple(r["mask_prob"]), [f"p head {s}" for s in range(K)],
                              lambda k: [f"{p:g}" for p in k], K)
        (out / "mask_prob_sweep.md").write_text(
            f"# Mask-probability sweep at {plan.sweep_size} training images per class\n\n" + _describe(plan)
            + "Each head's mask probability varied alone, the others at the plan's.\n\n" + table)
        written["mask_prob_sweep.md"] = out / "mask_prob_sweep.md"
        figures["mask_prob_sweep.png"] = lambda path: plot_sweep(plan, sweep, path)
    # The tables need nothing beyond the base install; the figures need the plot extra.
    try:
        pyplot()
    except PlotUnavailable:
        return written
    for name, draw in figures.items():
        written[name] = draw(out / name)
    return written


# Figures -------------------------------------------------------------------------------------------

def _panels(n_scales: int):
    """(name, accessor) of the joint accuracy and each scale's."""
    return [("joint", lambda a: a["joint"])] + [(f"scale {s}", lambda a, s=s: a["scales"][s]) for s in range(n_scales)]


def plot_accuracy(results: Sequence[dict[str, Any]], path: Path, n_scales: int) -> Path:
    """Test accuracy against training-set size, one panel per scale and one joint, one line per
    method (mean, bars: std over seeds), the oracle's accuracy on the same test set dotted."""
    plt = pyplot()
    panels = _panels(n_scales)
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.2), constrained_layout=True)
    for ax, (name, get) in zip(axes, panels):
        for method, group in _group(results, lambda r: r["method"]).items():
            by_size = _group(group, lambda r: r["per_class"])
            sizes = sorted(by_size)
            values = [np.array([get(r["test_accuracy"]) for r in by_size[n]]) for n in sizes]
            ax.errorbar(sizes, [v.mean() for v in values], yerr=[v.std(ddof=1) if len(v) > 1 else 0 for v in values],
                        marker="o", capsize=3, label=method)
        oracle = np.mean([get(r["oracle_accuracy"]) for r in results])
        ax.axhline(oracle, color="k", ls=":", label="oracle")
        ax.set(xscale="log", xlabel="training images per class", title=name, ylim=(0, 1.02))
        ax.set_xticks(sorted({r["per_class"] for r in results}))
        ax.set_xticklabels([str(n) for n in sorted({r["per_class"] for r in results})])
        ax.minorticks_off()  # the log axis's minor labels would overprint the sizes
    axes[0].set_ylabel("test accuracy")
    axes[-1].legend(fontsize=7)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def plot_sweep(plan: ExperimentPlan, sweep: Sequence[dict[str, Any]], path: Path) -> Path:
    """Test accuracy against one head's mask probability (the others at the plan's), per scale."""
    plt = pyplot()
    K = plan.spec.n_scales
    base = plan.head_probs()
    panels = _panels(K)
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.2), constrained_layout=True)
    for ax, (name, get) in zip(axes, panels):
        for head in range(K):
            # The settings that differ from the plan's at most in this head.
            groups = _group([r for r in sweep if all(p == b for i, (p, b) in enumerate(zip(r["mask_prob"], base))
                                                     if i != head)], lambda r: r["mask_prob"][head])
            ps = sorted(groups)
            values = [np.array([get(r["test_accuracy"]) for r in groups[p]]) for p in ps]
            ax.errorbar(ps, [v.mean() for v in values], yerr=[v.std(ddof=1) if len(v) > 1 else 0 for v in values],
                        marker="o", capsize=3, label=f"vary head {head}")
        ax.axhline(np.mean([get(r["oracle_accuracy"]) for r in sweep]), color="k", ls=":", label="oracle")
        ax.set(xlabel="mask probability", title=name, ylim=(0, 1.02))
    axes[0].set_ylabel(f"test accuracy ({plan.sweep_size} per class)")
    axes[-1].legend(fontsize=7)
    fig.savefig(path, dpi=80)
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


def plot_input_gradient(path: Path, size: int = 64, probs: tuple[float, float] = (0.5, 0.75), seed: int = 0) -> Path:
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
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
