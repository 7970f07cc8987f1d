"""Stationary covariance kernels: a name, a covariance function and a periodised spectral density.

Lengths and distances are in pixels; frequencies are in cycles per pixel. The spectral density of
a kernel k is its Fourier transform ``S(xi) = integral k(x) exp(-2 pi i xi.x) dx``. On a periodic
grid of N pixels per axis the covariance matrix is circulant, and its eigenvalues are the
*periodised* spectral density ``sum_m S(xi + m)`` over integer vectors m (Poisson summation). Each
kernel computes that sum directly, as a sum of positive terms, so that the eigenvalues keep their
relative precision far into the spectral tail, where an FFT of the kernel would return round-off.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import gammaln

from .errors import ArgumentError

# Terms of a periodisation sum below this fraction of the largest are dropped.
_TAIL_EXPONENT = 45.0  # exp(-45) ~ 3e-20, below float64 resolution.


def _periodized_gaussian(freq: np.ndarray, t: float) -> np.ndarray:
    """``sum_m exp(-4 pi^2 t (freq + m)^2)`` for 1-D ``freq`` in [-1/2, 1/2], all terms positive.

    For small t the direct sum needs many terms, so its Poisson dual
    ``(4 pi t)^(-1/2) sum_n exp(-n^2 / (4t)) cos(2 pi n freq)`` is used instead; there the n = 0 term
    dominates and the cosines cannot cancel it.
    """
    if t < 0.05:
        n = np.arange(1, 9)[:, None]
        terms = np.exp(-(n**2) / (4.0 * t)) * np.cos(2.0 * np.pi * n * freq[None, :])
        return (1.0 + 2.0 * terms.sum(axis=0)) / math.sqrt(4.0 * math.pi * t)
    m_max = int(math.ceil(0.5 + math.sqrt(_TAIL_EXPONENT / (4.0 * math.pi**2 * t)))) + 1
    m = np.arange(-m_max, m_max + 1)[:, None]
    return np.exp(-4.0 * math.pi**2 * t * (freq[None, :] + m) ** 2).sum(axis=0)


def _outer_product(factors: list[np.ndarray]) -> np.ndarray:
    out = factors[0]
    for f in factors[1:]:
        out = np.multiply.outer(out, f)
    return out


@dataclass(frozen=True)
class Kernel:
    """A stationary, isotropic kernel with unit variance at distance 0."""

    name: str

    def covariance(self, r: np.ndarray, length_scale: float) -> np.ndarray:
        """Covariance at distance ``r`` (pixels) for length scale ``length_scale`` (pixels)."""
        raise NotImplementedError

    def spectral_density(self, freq_sq: np.ndarray, length_scale: float, ndim: int) -> np.ndarray:
        """``S(xi)`` at squared frequency ``|xi|^2`` (cycles/pixel squared) in ``ndim`` dimensions."""
        raise NotImplementedError

    def periodized_spectrum(self, freqs: list[np.ndarray], length_scale: float) -> np.ndarray:
        """``sum_m S(xi + m)`` on the grid ``freqs[0] x freqs[1] x ...`` (one 1-D array per axis)."""
        raise NotImplementedError


@dataclass(frozen=True)
class SquaredExponential(Kernel):
    """``k(r) = exp(-r^2 / (2 l^2))``, as in arXiv:1806.01337. Separable, so the periodised
    density is a product of 1-D theta sums."""

    name: str = "se"

    def covariance(self, r, length_scale):
        return np.exp(-0.5 * (np.asarray(r, dtype=float) / length_scale) ** 2)

    def spectral_density(self, freq_sq, length_scale, ndim):
        l2 = length_scale**2
        return (2.0 * math.pi * l2) ** (ndim / 2) * np.exp(-2.0 * math.pi**2 * l2 * np.asarray(freq_sq))

    def periodized_spectrum(self, freqs, length_scale):
        t = length_scale**2 / 2.0
        factor = math.sqrt(2.0 * math.pi) * length_scale
        return _outer_product([factor * _periodized_gaussian(f, t) for f in freqs])


@dataclass(frozen=True)
class Matern(Kernel):
    """Matérn kernel of smoothness ``nu`` (3/2 or 5/2), unit variance.

    The periodised density ``C sum_m (2 nu / l^2 + 4 pi^2 |xi + m|^2)^(-p)``, ``p = nu + ndim/2``,
    decays only algebraically in m, so it is written as a Gaussian scale mixture,
    ``a^(-p) = Gamma(p)^-1 integral t^(p-1) exp(-t a) dt``, whose periodisation is a product of 1-D
    theta sums. The integral over ``log t`` is done by the trapezoid rule, which converges
    geometrically for this smooth, rapidly decaying integrand; every term is positive.
    """

    name: str = "matern32"
    nu: float = 1.5
    quadrature_step: float = 0.1

    def covariance(self, r, length_scale):
        s = math.sqrt(2.0 * self.nu) * np.asarray(r, dtype=float) / length_scale
        if self.nu == 1.5:
            return (1.0 + s) * np.exp(-s)
        if self.nu == 2.5:
            return (1.0 + s + s**2 / 3.0) * np.exp(-s)
        raise ArgumentError(f"Matérn smoothness must be 1.5 or 2.5, but got {self.nu}")

    def _log_constant(self, length_scale, ndim):
        nu = self.nu
        return (ndim * math.log(2.0) + 0.5 * ndim * math.log(math.pi) + gammaln(nu + ndim / 2)
                + nu * math.log(2.0 * nu) - gammaln(nu) - 2.0 * nu * math.log(length_scale))

    def spectral_density(self, freq_sq, length_scale, ndim):
        p = self.nu + ndim / 2
        alpha = 2.0 * self.nu / length_scale**2
        return np.exp(self._log_constant(length_scale, ndim)) * (
            alpha + 4.0 * math.pi**2 * np.asarray(freq_sq)) ** (-p)

    def periodized_spectrum(self, freqs, length_scale):
        ndim = len(freqs)
        p = self.nu + ndim / 2
        alpha = 2.0 * self.nu / length_scale**2
        # Below t_lo the integrand is ~ t^nu (4 pi t)^(-ndim/2) and contributes under 1e-17 of the
        # smallest eigenvalue; above t_hi exp(-t alpha) is negligible.
        smallest = (alpha + math.pi**2 * ndim) ** (-p) * math.exp(gammaln(p))
        t_lo = (1e-17 * smallest * self.nu * (4 * math.pi) ** (ndim / 2)) ** (1.0 / self.nu)
        t_hi = 60.0 / alpha
        log_t = np.arange(math.log(t_lo), math.log(t_hi) + self.quadrature_step, self.quadrature_step)
        total = np.zeros(tuple(len(f) for f in freqs))
        for u in log_t:
            t = math.exp(u)
            weight = math.exp(p * u - t * alpha)
            if weight == 0.0:
                continue
            total += weight * _outer_product([_periodized_gaussian(f, t) for f in freqs])
        return total * self.quadrature_step * math.exp(self._log_constant(length_scale, ndim) - gammaln(p))


KERNELS: dict[str, Kernel] = {
    "se": SquaredExponential(),
    "matern32": Matern(name="matern32", nu=1.5),
    "matern52": Matern(name="matern52", nu=2.5),
}


def get_kernel(name: str) -> Kernel:
    """The kernel called ``name`` (one of ``se``, ``matern32``, ``matern52``)."""
    try:
        return KERNELS[name]
    except KeyError:
        raise ArgumentError(f"unknown kernel {name!r}; choose one of {', '.join(KERNELS)}") from None
