"""The backdrop layer: identity forward, randomly masked gradient backward."""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from .functional import block_setting, check_dims, check_generator, check_p, check_rescale, masked, mask_gradient

class Backdrop(nn.Module):
    """Masks the gradient that flows back through it; the forward pass is the identity.

    In training mode the gradient reaching the input in the backward pass is the incoming
    gradient times a random mask (see :func:`backdrop.draw_mask`) that masks each position along
    ``dims`` with probability ``p`` and broadcasts over the other dims. In eval mode the layer
    returns its input itself and draws nothing.

    *Layout.* The input is ``(N, C, *positions)``: batch, channels, then the positions (none,
    ``L``, ``H, W`` or ``D, H, W``). With the default ``dims=None`` every sample has its own mask
    over its positions, shared by the channels: the mask has shape ``(N, 1, *positions)``, each
    sample keeps at least one position and, with ``rescale``, its kept entries equal (positions
    per sample) / (kept in that sample). An input without positions, ``(N,)`` or ``(N, C)``, has
    whole samples masked (mask ``(N,)`` or ``(N, 1)``), the count running over the batch: the use
    for losses that do not decompose over samples. Other ``dims`` choose other layouts:
    ``(-2, -1)`` draws one mask of the positions for the whole batch.

    *When the mask is drawn.* The mask is drawn when the backward pass first reaches the layer,
    from ``generator``: nothing is drawn under ``torch.no_grad`` or for an input that does not
    require grad, so a validation pass without ``.eval()`` leaves the random stream as it was,
    and activation checkpointing gives the gradient of the same model without it. Under
    ``torch.compile`` and ``torch.func`` the mask is drawn in the forward pass instead.

    Args:
        p: probability that a position's gradient is masked, in [0, 1) (``mask_prob`` of the paper).
        dims: dims that get one mask entry per position (``None``: the layout above); negative
            dims are resolved against the input's ndim at each forward.
        rescale: scale the kept entries so the gradient keeps its magnitude.
        generator: ``torch.Generator`` for the masks (torch's default generator when ``None``); it
            must live on the input's device.
        block: mask ``b x b`` blocks of positions together: one size per masked dim other than 0,
            or one int for all of them.

    Attributes:
        last_mask: the mask, rescaled, used by the latest backward pass through the layer
            (``None`` before; not set inside ``torch.func`` transforms).
        fixed_mask: when set to a tensor, training-mode forwards use it as is instead of drawing
            one, until it is set back to ``None``.
        mask_source: when set, a function ``(shape, dtype, device) -> mask`` that draws the
            layer's masks, from its generator, in place of :func:`backdrop.draw_mask` with its
            settings (:class:`backdrop.distributed.GlobalBatchMasks` sets it); ``None`` by default.

    Shape:
        - Input: ``(N, C, *positions)``; Output: same as input (equal to it, bit for bit).

    Example::

        >>> layer = Backdrop(0.75)
        >>> layer(torch.randn(4, 16, 32, 32, requires_grad=True)).sum().backward()
        >>> layer.last_mask.shape
        torch.Size([4, 1, 32, 32])
    """

    def __init__(self, p: float, dims: Sequence[int] | None = None, rescale: bool = True,
                 generator: torch.Generator | None = None,
                 block: int | Sequence[int] | None = None) -> None:
        super().__init__()
        self.p = check_p(p)
        self.dims = check_dims(dims)
        self.rescale = check_rescale(rescale)
        self.generator = check_generator(generator)
        self.block = block_setting(block, self.dims)
        self.last_mask: torch.Tensor | None = None
        self.fixed_mask: torch.Tensor | None = None
        self.mask_source: Callable[[torch.Size, torch.dtype, torch.device], torch.Tensor] | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        if torch.jit.is_scripting():
            # A literal: TorchScript reads no module-level strings.
            raise RuntimeError("backdrop: TorchScript cannot run the layer's custom backward; script the model "
                               "in eval mode (where backdrop is the identity), or use torch.compile or torch.jit.trace")
        return self._masked(x)

    @torch.jit.unused
    def _masked(self, x: torch.Tensor) -> torch.Tensor:
        if self.fixed_mask is None:
            return masked(x, self.p, self.dims, self.rescale, self.generator, self.block, self._drew,
                          self.mask_source)
        y = mask_gradient(x, self.fixed_mask)
        if y is not x:
            self.last_mask = self.fixed_mask
        return y

    def _drew(self, mask: torch.Tensor) -> None:
        self.last_mask = mask

    def extra_repr(self) -> str:
        settings = f"p={self.p}"
        if self.dims is not None:
            settings += f", dims={self.dims}"
        if self.block is not None:
            settings += f", block={self.block}"
        if not self.rescale:
            settings += ", rescale=False"
        return settings
