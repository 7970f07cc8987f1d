"""Backdrop (Golkar & Cranmer, arXiv:1806.01337): masking the gradient, not the activations.

:class:`Backdrop` is a layer that is the identity in the forward pass and multiplies the gradient
by a random mask in the backward pass; :mod:`backdrop.functional` holds the math it calls.
"""
from .functional import backdrop, draw_mask, mask_gradient
from .layer import Backdrop
from . import models

__all__ = ["Backdrop", "backdrop", "draw_mask", "mask_gradient", "models"]
