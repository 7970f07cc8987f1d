"""Inverse FFTs on a torch device (``msgp generate --device cuda``).

The random streams, labels and spectral amplitudes are the CPU sampler's, so a sample differs
from the CPU one only by the rounding of a different float64 FFT (then rounded once to the stored
dtype): the same fields to within float32 rounding, not bit for bit.
"""
from __future__ import annotations

import numpy as np

from . import spectral
from .generate import FIELD_STREAM, Batch, Sampler, rng_for
from .spec import DatasetSpec


class DeviceUnavailable(RuntimeError):
    """The requested torch device does not exist on this machine; the message is one line."""


def check_device(device: str) -> None:
    """Raise :class:`DeviceUnavailable` unless torch can run on ``device``."""
    import torch

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise DeviceUnavailable(f"--device {device}: no CUDA device is available")


class TorchSampler(Sampler):
    """A :class:`~msgp.generate.Sampler` whose inverse FFTs run in float64 on a torch device.

    Parameters
    ----------
    spec : the dataset description.
    device : a torch device, e.g. ``"cuda"`` or ``"cuda:1"`` (``"cpu"`` works, for testing).
    """

    def __init__(self, spec: DatasetSpec, device: str = "cuda"):
        import torch

        check_device(str(device))
        super().__init__(spec)
        self.device = torch.device(device)

    def _synthesize(self, spectra: np.ndarray) -> np.ndarray:
        import torch

        spec = self.spec
        axes = tuple(range(-spec.ndim, 0))
        x = torch.fft.irfftn(torch.from_numpy(spectra).to(self.device), s=spec.shape, dim=axes, norm="ortho")
        return x.cpu().numpy()

    def batch(self, start: int, stop: int) -> Batch:
        spec = self.spec
        labels = self.labels(start, stop)
        choices = spec.choices(labels)
        half = spectral.half_shape(spec.size, spec.ndim)
        components = None
        if spec.normalize == "theory":
            spectra = np.empty((stop - start,) + half, np.complex128)
            for j, i in enumerate(range(start, stop)):
                z = spectral.white_spectrum(rng_for(spec.seed, FIELD_STREAM, i), spec.size, spec.ndim)
                spectra[j] = self.spectrum_sqrt(int(labels[j])) * z
            fields = self._synthesize(spectra)
            if spec.save_components:
                components = self._conditional_components(start, spectra, choices)
        else:
            fields, components = self._standardised_sums_on_device(start, stop, choices)
        dtype = np.dtype(spec.dtype)
        return Batch(start=start, fields=fields.astype(dtype), labels=labels, scale_labels=choices.astype(np.uint8),
                     components=None if components is None else components.astype(dtype))

    def _standardised_sums_on_device(self, start, stop, choices):
        spec = self.spec
        K = spec.n_scales
        spectra = np.empty((stop - start, K) + spectral.half_shape(spec.size, spec.ndim), np.complex128)
        noise = np.empty((stop - start,) + spec.shape)
        for j, i in enumerate(range(start, stop)):
            rng = rng_for(spec.seed, FIELD_STREAM, i)
            for s, c in enumerate(choices[j]):
                spectra[j, s] = self._sqrt_lam[s][c] * spectral.white_spectrum(rng, spec.size, spec.ndim)
            noise[j] = rng.standard_normal(spec.shape)
        components = self._synthesize(spectra)
        axes = tuple(range(2, 2 + spec.ndim))
        components -= components.mean(axis=axes, keepdims=True)
        components /= components.std(axis=axes, keepdims=True)
        amplitudes = np.asarray(spec.amplitudes).reshape((1, K) + (1,) * spec.ndim)
        fields = (amplitudes * components).sum(axis=1) + spec.noise * noise
        return fields, (components if spec.save_components else None)
