"""Backdrop (Golkar & Cranmer, arXiv:1806.01337): masking the gradient, not the activations.

:class:`Backdrop` is a layer that is the identity in the forward pass and multiplies the gradient
by a random mask in the backward pass; :mod:`backdrop.functional` holds the math it calls, and
:mod:`backdrop.distributed` the masks of a DistributedDataParallel run.
"""
import importlib

from .functional import backdrop, draw_mask, mask_gradient
from .layer import Backdrop

__all__ = ["Backdrop", "backdrop", "draw_mask", "mask_gradient", "models"]

# Submodules loaded on first access: the models, the trainer and the experiments read msgp's
# datasets (h5py, scipy), which the layer alone does not need.
_LAZY = ("distributed", "experiment", "models", "nondecomposable", "runner", "training")


def __getattr__(name):
    if name in _LAZY:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'backdrop' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
