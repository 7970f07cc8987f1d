"""The backdrop layer: identity forward, randomly masked gradient backward."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .functional import check_block, check_dims, check_p, draw_mask, mask_gradient

DEFAULT_DIMS = (0, -2, -1)


class Backdrop(nn.Module):
    """Masks the gradient that flows back through it; the forward pass is the identity.

    In training mode each forward draws a mask (see :func:`backdrop.draw_mask`) that masks each
    position along ``dims`` with probability ``p`` and broadcasts over the other dims, and the
    gradient reaching the input in the backward pass is the incoming gradient times that mask. In
    eval mode the layer returns its input itself and draws nothing.

    With the default ``dims=(0, -2, -1)`` every sample has its own mask over the last two
    (spatial) dims, shared by the channels; at least one position per sample is kept and, with
    ``rescale``, the kept entries equal (positions per sample) / (kept in that sample). With
    ``dims=(0,)`` whole samples are masked and the count runs over the batch, which is the use for
    losses that do not decompose over samples.

    Args:
        p: probability that a position's gradient is masked, in [0, 1) (``mask_prob`` of the paper).
        dims: dims that get one mask entry per position; negative dims are resolved against the
            input's ndim at each forward.
        rescale: scale the kept entries so the gradient keeps its magnitude.
        generator: ``torch.Generator`` for the masks (torch's default generator when ``None``); it
            must live on the input's device.
        block: mask ``b x b`` blocks of positions together: one size per entry of ``dims`` other
            than 0, or one int for all of them.

    Attributes:
        last_mask: the mask, rescaled, used by the latest training-mode forward (``None`` before).
        fixed_mask: when set to a tensor, training-mode forwards use it as is instead of drawing
            one, until it is set back to ``None``.

    Shape:
        - Input: ``(N, *)``; Output: same as input (the input tensor, viewed).

    Example::

        >>> layer = Backdrop(0.75)
        >>> y = layer(torch.randn(4, 16, 32, 32, requires_grad=True))
        >>> layer.last_mask.shape
        torch.Size([4, 1, 32, 32])
    """

    def __init__(self, p: float, dims: Sequence[int] = DEFAULT_DIMS, rescale: bool = True,
                 generator: torch.Generator | None = None,
                 block: int | Sequence[int] | None = None) -> None:
        super().__init__()
        self.p = check_p(p)
        self.dims = check_dims(dims)
        self.rescale = bool(rescale)
        self.generator = generator
        self.block = block if block is None or isinstance(block, int) else tuple(block)
        check_block(self.block, self.dims)
        self.last_mask: torch.Tensor | None = None
        self.fixed_mask: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        if self.fixed_mask is None:
            mask = draw_mask(x, self.p, self.dims, self.rescale, self.generator, self.block)
        else:
            mask = self.fixed_mask
        self.last_mask = mask
        return mask_gradient(x, mask)

    def extra_repr(self) -> str:
        settings = f"p={self.p}, dims={self.dims}"
        if self.block is not None:
            settings += f", block={self.block}"
        if not self.rescale:
            settings += ", rescale=False"
        return settings
