"""Exact sampling of multi-scale GP fields: spec -> spectra -> fields.

Sample i is a function of (spec, i) alone. Its class comes from a balanced shuffle of each block of
``n_classes`` consecutive samples, so every prefix of a dataset is as balanced as it can be. Its
field is drawn from its own random stream, ``SeedSequence(seed, spawn_key=(stream, i))``, so any
subset of samples can be generated in any order, by any process, with identical results.

With ``normalize="theory"`` the sum of independent Gaussian components is itself Gaussian with
eigenvalues ``sum_s a_s^2 lam_s + noise^2``, so a field costs one white-spectrum draw and one
inverse FFT whatever the number of scales. Saving the components does not change the fields: they
are drawn afterwards, from a separate stream, conditionally on the field (Matheron's rule).
With ``normalize="sample"`` every component is drawn and standardised on its own, as in the 2018
paper.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import spectral
from .spec import DatasetSpec

FIELD_STREAM, COMPONENT_STREAM, LABEL_STREAM = 0, 1, 2
_CLASS_CACHE_BYTES = 512 * 2**20
# A batch is at most this many pixels (4 samples of 1024²): its float64 and complex work arrays
# then take about 100 MB per process, whatever the field size. The writer, the generated Dataset
# and the trainer's oracle all batch by it (:func:`batch_rows`).
BATCH_PIXELS = 2**22


def batch_rows(shape: tuple[int, ...], pixels: int | None = None) -> int:
    """Samples of ``shape`` in one batch: as many as ``pixels`` (default :data:`BATCH_PIXELS`) hold,
    at least 1."""
    return max(1, (BATCH_PIXELS if pixels is None else pixels) // math.prod(shape))


def rng_for(seed: int, stream: int, index: int) -> np.random.Generator:
    """The random stream ``stream`` of sample (or label block) ``index``."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(stream, index))))


def labels_of(spec: DatasetSpec, indices) -> np.ndarray:
    """Class labels (int64) of the samples ``indices``, in any order: each comes from the shuffle
    of its block of ``n_classes`` samples, drawn once per block asked for."""
    indices = np.asarray(indices, dtype=np.int64)
    C = spec.n_classes
    blocks, where = np.unique(indices // C, return_inverse=True)
    shuffles = np.zeros((len(blocks), C), dtype=np.int64)
    for row, block in zip(shuffles, blocks):
        row[:] = rng_for(spec.seed, LABEL_STREAM, int(block)).permutation(C)
    return shuffles[where.reshape(indices.shape), indices % C]


@dataclass
class Batch:
    """Samples ``start`` to ``start + len(labels)`` of a dataset, as stored."""

    start: int
    fields: np.ndarray  # (B, *shape), spec.dtype
    labels: np.ndarray  # (B,) int64
    scale_labels: np.ndarray  # (B, K) uint8
    components: np.ndarray | None = None  # (B, K, *shape), spec.dtype


class Sampler:
    """Draws the samples of one dataset description.

    Parameters
    ----------
    spec : the dataset description.
    fft_workers : threads for each batched inverse FFT (``scipy.fft`` workers).
    """

    def __init__(self, spec: DatasetSpec, fft_workers: int = 1):
        self.spec = spec
        self.fft_workers = fft_workers
        self._sqrt_lam = [[np.sqrt(spectral.eigenvalues(spec.kernel, length, spec.size, spec.ndim))
                           for length in row] for row in spec.length_scales]
        half_bytes = 8 * math.prod(spectral.half_shape(spec.size, spec.ndim))
        self._cache_classes = spec.n_classes * half_bytes <= _CLASS_CACHE_BYTES
        self._class_sqrt = {}

    # Labels ---------------------------------------------------------------------------------------
    def labels(self, start: int, stop: int) -> np.ndarray:
        """Class labels of samples ``start`` to ``stop`` (int64)."""
        return labels_of(self.spec, np.arange(start, stop))

    # Fields ---------------------------------------------------------------------------------------
    def spectrum_sqrt(self, label: int) -> np.ndarray:
        """``sqrt(sum_s a_s^2 lam_s + noise^2)`` for class ``label``: the field's spectral amplitude."""
        if label in self._class_sqrt:
            return self._class_sqrt[label]
        root = np.sqrt(spectral.class_power(self.spec, label, self._sqrt_lam))
        if self._cache_classes:
            self._class_sqrt[label] = root
        return root

    def batch(self, start: int, stop: int) -> Batch:
        """Samples ``start`` to ``stop``, rounded once to the storage dtype."""
        spec = self.spec
        labels = self.labels(start, stop)
        fields, components = self._draw(np.arange(start, stop), labels, spec.save_components)
        dtype = np.dtype(spec.dtype)
        return Batch(
            start=start,
            fields=fields.astype(dtype),
            labels=labels,
            scale_labels=spec.choices(labels).astype(np.uint8),
            components=None if components is None else components.astype(dtype),
        )

    def fields(self, indices, labels) -> np.ndarray:
        """The fields of samples ``indices`` (any order), whose labels are ``labels``, rounded once to
        the storage dtype: bit for bit the rows :meth:`batch` gives them, whatever the batch."""
        fields, _ = self._draw(np.asarray(indices, dtype=np.int64), np.asarray(labels), components=False)
        return fields.astype(self.spec.dtype)

    def _draw(self, indices: np.ndarray, labels: np.ndarray, components: bool):
        """float64 fields, and the components if ``components``, of samples ``indices``."""
        spec = self.spec
        choices = spec.choices(labels)
        if spec.normalize == "sample":
            fields, parts = self._standardised_sums(indices, choices)
            return fields, (parts if components else None)
        spectra = np.empty((len(indices),) + spectral.half_shape(spec.size, spec.ndim), np.complex128)
        for j, i in enumerate(indices):
            z = spectral.white_spectrum(rng_for(spec.seed, FIELD_STREAM, int(i)), spec.size, spec.ndim)
            spectra[j] = self.spectrum_sqrt(int(labels[j])) * z
        fields = self._synthesize(spectra)
        return fields, (self._conditional_components(indices, spectra, choices) if components else None)

    def _synthesize(self, spectra: np.ndarray) -> np.ndarray:
        """Real float64 fields from half-grid spectra (the one step a device sampler replaces)."""
        return spectral.synthesize(spectra, self.spec.size, self.spec.ndim, self.fft_workers)

    def _conditional_components(self, indices, spectra, choices) -> np.ndarray:
        """Unit-variance components f_s with sum_s a_s f_s + noise equal to the drawn field.

        Matheron's rule per Fourier mode: with parts ``b_s W_s`` (independent, ``b_s`` the part's
        spectral amplitude) and the field's spectrum ``X``, ``b_s W_s + (b_s^2 / B^2)(X - sum_t b_t W_t)``
        has the joint law of the parts given their sum ``X`` (``B^2 = sum_t b_t^2``).
        """
        spec = self.spec
        K = spec.n_scales
        out = np.empty((len(spectra), K) + spectral.half_shape(spec.size, spec.ndim), np.complex128)
        for j, x in enumerate(spectra):
            rng = rng_for(spec.seed, COMPONENT_STREAM, int(indices[j]))
            parts = [spec.amplitudes[s] * self._sqrt_lam[s][c] for s, c in enumerate(choices[j])]
            parts.append(np.full_like(parts[0], spec.noise))
            draws = [b * spectral.white_spectrum(rng, spec.size, spec.ndim) for b in parts]
            total = sum(b**2 for b in parts)
            residual = np.divide(x - sum(draws), total, out=np.zeros_like(x), where=total > 0)
            for s in range(K):
                out[j, s] = (draws[s] + parts[s] ** 2 * residual) / spec.amplitudes[s]
        return self._synthesize(out)

    def _standardised_sums(self, indices, choices):
        """The fields, and the standardised components they sum, of samples ``indices``."""
        spec = self.spec
        K = spec.n_scales
        half = spectral.half_shape(spec.size, spec.ndim)
        spectra = np.empty((len(indices), K) + half, np.complex128)
        noise = np.empty((len(indices),) + spec.shape)
        for j, i in enumerate(indices):
            rng = rng_for(spec.seed, FIELD_STREAM, int(i))
            for s, c in enumerate(choices[j]):
                spectra[j, s] = self._sqrt_lam[s][c] * spectral.white_spectrum(rng, spec.size, spec.ndim)
            noise[j] = rng.standard_normal(spec.shape)
        components = self._synthesize(spectra)
        axes = tuple(range(2, 2 + spec.ndim))
        components -= components.mean(axis=axes, keepdims=True)
        components /= components.std(axis=axes, keepdims=True)
        amplitudes = np.asarray(spec.amplitudes).reshape((1, K) + (1,) * spec.ndim)
        fields = (amplitudes * components).sum(axis=1) + spec.noise * noise
        return fields, components
