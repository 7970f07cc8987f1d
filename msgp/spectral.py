"""The one module that owns msgp's Fourier conventions.

Fields live on a periodic grid of ``size`` pixels along each of ``ndim`` axes. Their spectra live
on the half grid of ``numpy.fft.rfftn``: shape ``(size,) * (ndim - 1) + (size // 2 + 1,)``, with
frequencies in cycles per pixel from ``fftfreq`` on the leading axes and ``rfftfreq`` on the last.
All transforms use ``norm="ortho"``, so a field ``x`` and its spectrum ``X = rfftn(x)`` satisfy

* for a stationary field with eigenvalues ``lam`` (the periodised spectral density, normalised to
  mean 1 over the full grid), ``E|X_k|^2 = lam_k``, and ``x = irfftn(sqrt(lam) * Z)`` has covariance
  ``ifftn(lam)`` (circulant) when ``Z`` is drawn by :func:`white_spectrum`;
* ``sum(x**2) == sum(half_weights * |X|^2)`` (Parseval on the half grid).

Everything is computed in float64; callers round once to the stored dtype.
"""
from __future__ import annotations

import functools
import math

import numpy as np
import scipy.fft

from .kernels import get_kernel


def half_shape(size: int, ndim: int) -> tuple[int, ...]:
    """Shape of the rfftn half grid for a ``size ** ndim`` field."""
    return (size,) * (ndim - 1) + (size // 2 + 1,)


def frequencies(size: int, ndim: int) -> list[np.ndarray]:
    """Per-axis frequencies (cycles/pixel) of the half grid."""
    return [np.fft.fftfreq(size)] * (ndim - 1) + [np.fft.rfftfreq(size)]


@functools.lru_cache(maxsize=16)
def half_weights(size: int, ndim: int) -> np.ndarray:
    """How many full-grid modes each half-grid mode stands for: 1 on the self-conjugate planes
    (last-axis frequency 0, and Nyquist for even ``size``), 2 elsewhere."""
    w = np.full(half_shape(size, ndim), 2.0)
    w[..., 0] = 1.0
    if size % 2 == 0:
        w[..., -1] = 1.0
    w.setflags(write=False)
    return w


@functools.lru_cache(maxsize=64)
def eigenvalues(kernel: str, length_scale: float, size: int, ndim: int) -> np.ndarray:
    """Eigenvalues of the unit-variance periodic covariance of ``kernel`` on the half grid.

    The periodised spectral density (a sum of positive terms, accurate to relative precision in
    the tail), scaled so that its mean over the full grid, the marginal variance, is exactly 1.
    Read-only and cached: the generator and the oracle share them.
    """
    lam = get_kernel(kernel).periodized_spectrum(frequencies(size, ndim), float(length_scale))
    lam = lam / (np.sum(half_weights(size, ndim) * lam) / size**ndim)
    lam.setflags(write=False)
    return lam


def class_power(spec, label: int, root_eigenvalues, noise: bool = True) -> np.ndarray:
    """Eigenvalues of class ``label``'s field: ``sum_s (a_s * sqrt(lam_s))**2 + noise**2``, where
    ``lam_s`` is scale ``s``'s candidate picked by the label and ``root_eigenvalues[s][m]`` holds
    ``sqrt(lam)`` of scale ``s``, candidate ``m`` (the square roots, as the generator keeps them,
    so its spectra are bit for bit those of this sum). ``noise=False`` leaves out the white noise.
    The one place the per-class spectrum is written: the generator, the oracle and the preview use it.
    """
    power = np.full(np.shape(root_eigenvalues[0][0]), spec.noise**2 if noise else 0.0)
    for s, c in enumerate(spec.choices(label)):
        power += (spec.amplitudes[s] * root_eigenvalues[s][c]) ** 2
    return power


def component_eigenvalues(spec, scale: int, choice: int) -> np.ndarray:
    """Half-grid eigenvalues of the unit-variance component of ``scale`` with candidate ``choice``;
    for ``normalize="sample"``, of the standardised component: mode 0 removed, the rest rescaled
    to sum to N over the full grid."""
    lam = eigenvalues(spec.kernel, spec.length_scales[scale][choice], spec.size, spec.ndim)
    if spec.normalize == "theory":
        return lam
    n_pixels = spec.size**spec.ndim
    lam = lam * (n_pixels / (n_pixels - lam.flat[0]))
    lam.flat[0] = 0.0
    return lam


def class_signal(spec) -> np.ndarray:
    """Eigenvalues ``S_c = sum_s a_s^2 lam_s`` of the components' sum for every class,
    ``(C, *half_shape)`` (field units squared), without noise or floor: the oracle's class
    spectra, and the mean spectrum the network's whitening flattens."""
    roots = [[np.sqrt(component_eigenvalues(spec, s, m)) for m in range(spec.n_choices)] for s in range(spec.n_scales)]
    return np.stack([class_power(spec, c, roots, noise=False) for c in range(spec.n_classes)])


@functools.lru_cache(maxsize=16)
def _conjugate_planes(size: int, ndim: int):
    """Last-axis indices of the self-conjugate planes, the flat index of each plane entry's
    mirror ``-k mod size``, and the scale that gives the drawn spectrum its variances."""
    planes = [0] if size % 2 else [0, size // 2]
    lead = (size,) * (ndim - 1)
    grid = np.indices(lead).reshape(ndim - 1, -1) if ndim > 1 else np.zeros((0, 1), dtype=int)
    mirror = np.ravel_multi_index(tuple((-grid) % size), lead) if ndim > 1 else np.zeros(1, dtype=int)
    scale = np.full(half_shape(size, ndim), math.sqrt(0.5))
    scale[..., planes] = 0.5
    scale.setflags(write=False)
    return planes, mirror, scale


def white_spectrum(rng: np.random.Generator, size: int, ndim: int) -> np.ndarray:
    """Half-grid spectrum of real white noise of unit variance, drawn directly.

    Equal in distribution to ``rfftn(rng.standard_normal((size,) * ndim), norm="ortho")``: complex
    entries with independent real and imaginary parts of variance 1/2, except that on the
    self-conjugate planes the entries pair up as conjugates (``Z[-k] = conj(Z[k])``) and the
    self-conjugate modes are real with variance 1.
    """
    planes, mirror, scale = _conjugate_planes(size, ndim)
    z = rng.standard_normal(half_shape(size, ndim) + (2,)).view(np.complex128)[..., 0]
    for j in planes:
        plane = z[..., j].ravel()
        z[..., j] = (plane + np.conj(plane[mirror])).reshape(z.shape[:-1])
    z *= scale
    return z


def synthesize(spectrum: np.ndarray, size: int, ndim: int, workers: int = 1) -> np.ndarray:
    """Real fields from half-grid spectra (the trailing ``ndim`` axes), float64."""
    axes = tuple(range(-ndim, 0))
    return scipy.fft.irfftn(spectrum, s=(size,) * ndim, axes=axes, norm="ortho", workers=workers)


def analyze(fields: np.ndarray, ndim: int, workers: int = 1) -> np.ndarray:
    """Half-grid spectra of real fields (the trailing ``ndim`` axes), computed in float64."""
    axes = tuple(range(-ndim, 0))
    return scipy.fft.rfftn(np.asarray(fields, dtype=np.float64), axes=axes, norm="ortho", workers=workers)


def covariance_function(lam: np.ndarray, size: int, ndim: int) -> np.ndarray:
    """The periodic covariance function ``c(r)`` on the full grid of the stationary field whose
    half-grid eigenvalues are ``lam``: ``c[r]`` is the covariance of pixels ``r`` apart (per axis,
    modulo ``size``); ``c[0]`` is the marginal variance."""
    return synthesize(lam, size, ndim) / math.sqrt(size**ndim)
