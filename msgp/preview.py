"""A picture of a dataset: samples per class, and each scale's power spectrum against the kernel's."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from . import spectral
from .atomic import atomic_open
from .checks import Checks
from .errors import FileError
from .format import check_output, open_file
from .plotting import picture_formats, pyplot
from .spec import DatasetSpec

MAX_CLASSES_SHOWN = 16
SPECTRUM_SAMPLES = 256
_ARGS = Checks(quote=True)


def radial_power(spectra: np.ndarray, size: int, ndim: int, n_bins: int | None = None):
    """Radially averaged power of half-grid spectra (..., *half): bin centres and mean power.

    Bins are in |frequency| (cycles/pixel) up to the Nyquist frequency 1/2; each half-grid mode
    counts with its :func:`spectral.half_weights` weight, as in the full grid.
    """
    freqs = np.meshgrid(*spectral.frequencies(size, ndim), indexing="ij")
    radius = np.sqrt(sum(f**2 for f in freqs)).ravel()
    weights = spectral.half_weights(size, ndim).ravel()
    n_bins = n_bins or size // 2
    edges = np.linspace(0.0, 0.5, n_bins + 1)
    which = np.clip(np.digitize(radius, edges) - 1, 0, n_bins - 1)
    keep = radius <= 0.5
    power = np.abs(spectra.reshape(spectra.shape[: spectra.ndim - ndim] + (-1,))) ** 2
    totals = np.zeros(power.shape[:-1] + (n_bins,))
    counts = np.bincount(which[keep], weights=weights[keep], minlength=n_bins)
    for b in range(n_bins):
        sel = keep & (which == b)
        totals[..., b] = (power[..., sel] * weights[sel]).sum(axis=-1)
    centres = 0.5 * (edges[1:] + edges[:-1])
    filled = counts > 0
    return centres[filled], totals[..., filled] / counts[filled]


def _image(field: np.ndarray, ndim: int) -> np.ndarray:
    return field[field.shape[0] // 2] if ndim == 3 else field


def draw(path: str | Path, output: str | Path, per_class: int = 3, *, overwrite: bool = False) -> Path:
    """Write a picture with ``per_class`` samples of each class (up to 16 classes) and, for each
    scale, the empirical radially averaged power spectrum of the samples of each candidate length
    scale beside its expectation from the kernel's eigenvalues.

    Parameters
    ----------
    path : a complete msgp file.
    output : the picture to write, in a directory that exists; its suffix names the format
        (``png``, ``pdf``, ``svg``, ...: :func:`~msgp.plotting.picture_formats`).
    per_class : samples shown per class, at least 1.
    overwrite : replace an existing picture at ``output``; written whole or not at all, so an
        interrupted draw leaves the picture that was there intact.

    Raises :class:`~msgp.plotting.PlotUnavailable` without matplotlib.
    """
    output = Path(output)
    _ARGS.integer("per_class", per_class, 1, what="at least 1")
    check_output(output, overwrite=True)
    formats = picture_formats()
    if output.suffix.lstrip(".").lower() not in formats:
        raise FileError(f"cannot write {output}: `output` must end in a picture format, one of {', '.join(formats)}")
    check_output(output, overwrite)
    plt = pyplot()
    with open_file(path) as (f, spec):
        labels = f["labels"][:]
        classes = list(range(min(spec.n_classes, MAX_CLASSES_SHOWN)))
        picks = {c: np.flatnonzero(labels == c)[:per_class] for c in classes}
        shown = {c: f["fields"][np.sort(idx)] if len(idx) else None for c, idx in picks.items()}
        n_spec = min(spec.n, SPECTRUM_SAMPLES)
        fields = f["fields"][:n_spec]
    spectra = spectral.analyze(fields, spec.ndim)
    choices = spec.choices(labels[:n_spec])

    rows = len(classes)
    fig = plt.figure(figsize=(2.0 * max(per_class, spec.n_scales * 1.5), 2.0 * rows + 3.0), layout="constrained")
    grid = fig.add_gridspec(rows + 2, max(per_class, spec.n_scales))
    lo, hi = np.percentile(fields, [1, 99])
    for r, c in enumerate(classes):
        for j in range(per_class):
            ax = fig.add_subplot(grid[r, j])
            data = shown[c]
            if data is not None and j < len(data):
                if spec.ndim == 1:
                    ax.plot(data[j], lw=0.6)
                    ax.set_ylim(lo, hi)
                else:
                    ax.imshow(_image(data[j], spec.ndim), cmap="RdBu_r", vmin=lo, vmax=hi)
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(spec.class_names[c], fontsize=7)
    if spec.n_classes > MAX_CLASSES_SHOWN:
        fig.suptitle(f"first {MAX_CLASSES_SHOWN} of {spec.n_classes} classes", fontsize=9)
    spectrum_row = grid[rows:, :].subgridspec(1, spec.n_scales)
    for s in range(spec.n_scales):
        ax = fig.add_subplot(spectrum_row[0, s])
        _plot_scale_spectrum(ax, spec, s, spectra, choices)
    with atomic_open(output, "wb") as f:
        fig.savefig(f, dpi=72, format=output.suffix.lstrip(".").lower())
    plt.close(fig)
    return output


def _plot_scale_spectrum(ax, spec: DatasetSpec, scale: int, spectra: np.ndarray, choices: np.ndarray) -> None:
    all_choices = spec.choices(np.arange(spec.n_classes))
    roots = [[np.sqrt(spectral.eigenvalues(spec.kernel, length, spec.size, spec.ndim)) for length in row]
             for row in spec.length_scales]
    for c, length in enumerate(spec.length_scales[scale]):
        members = choices[:, scale] == c
        if not members.any():
            continue
        freq, empirical = radial_power(spectra[members], spec.size, spec.ndim)
        classes = np.flatnonzero(all_choices[:, scale] == c)
        expected = np.mean([spectral.class_power(spec, label, roots) for label in classes], axis=0)
        _, theory = radial_power(np.sqrt(expected), spec.size, spec.ndim)
        line, = ax.semilogy(freq, theory, lw=1, label=f"ℓ={length:g} px ({members.sum()} samples)")
        ax.semilogy(freq, empirical.mean(axis=0), "o", ms=2, color=line.get_color())
    ax.set_title(f"scale {scale}: samples (dots), kernel (lines)", fontsize=8)
    ax.set_xlabel("|frequency| (cycles/px)", fontsize=7)
    ax.tick_params(labelsize=6)
    ax.legend(fontsize=6)
