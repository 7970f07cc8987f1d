"""The experiment's figures: accuracy against training-set size (:func:`plot_efficiency`), the
sweep of backdrop settings (:func:`plot_sweep`) and the gradient that two masks let through to the
input (:func:`plot_input_gradient`). They need the ``plot`` extra (matplotlib)."""
from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch
from scipy import stats

from msgp.plotting import pyplot

from ..layer import Backdrop
from .statistics import FITTED, _accessors, _group, fitted, ratio


def plot_efficiency(results: Sequence[dict[str, Any]], path: Path | BinaryIO, n_scales: int) -> Path | BinaryIO:
    """Accuracy as a fraction of the oracle's against training images per class, one panel per
    scale and one joint, one line per method (mean; bars: 95% t interval of the mean over seeds;
    hollow markers: a cell in which a run did not fit, :func:`~.statistics.fitted`)."""
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
    axes[-1].legend(fontsize=7, title=f"hollow: a run did not fit\n(training accuracy < {FITTED} × oracle\nor a scale at chance in training)", title_fontsize=6)
    fig.savefig(path, dpi=80, format="png")
    plt.close(fig)
    return path


def plot_sweep(sweep: Sequence[dict[str, Any]], path: Path | BinaryIO, n_scales: int) -> Path | BinaryIO:
    """Accuracy / oracle on the validation set, where settings are chosen, of every setting of the
    sweep at every size (mean and 95% interval over seeds), per scale."""
    plt = pyplot()
    panels = _accessors(n_scales)
    groups = _group(sorted(sweep, key=lambda r: r["per_class"]),
                    lambda r: f"{r['per_class']}/class {r['method']}" + (f": {r['masks']}" if r["masks"] else ""))
    labels = list(groups)
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 0.5 + 0.35 * len(labels)),
                             constrained_layout=True, sharey=True)
    for ax, (name, get) in zip(axes, panels):
        for y, label in enumerate(labels):
            v = np.array([ratio(r, get, "validation") for r in groups[label]])
            half = stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v)) if len(v) > 1 else 0
            ax.errorbar([v.mean()], [y], xerr=[half], marker="o", capsize=3, color=f"C{y % 10}")
        ax.axvline(1.0, color="k", ls=":")
        ax.set(title=name, xlabel="validation accuracy / oracle")
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
