"""Inverse FFTs on a torch device (``msgp generate --device cuda``).

Only the inverse FFTs move: the random streams, labels, spectral amplitudes, Matheron
components and standardisation are the CPU sampler's, so a sample differs
from the CPU one only by the rounding of a different float64 FFT (then rounded once to the stored
dtype): the same fields to within float32 rounding, not bit for bit.
"""
from __future__ import annotations

import numpy as np

from .errors import DeviceUnavailable
from .generate import Sampler
from .spec import DatasetSpec

__all__ = ["DeviceUnavailable", "TorchSampler", "check_device"]


def check_device(device: str) -> None:
    """Raise :class:`DeviceUnavailable` unless torch can run on ``device``."""
    import torch

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise DeviceUnavailable(f"`device={device}`: no CUDA device is available")


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
