"""Backdrop as functions: the gradient-masking autograd Function, and the mask it is given.

:func:`mask_gradient` is the identity in the forward pass and multiplies the incoming gradient by a
mask in the backward pass. :func:`draw_mask` draws the random mask of backdrop (Golkar & Cranmer,
arXiv:1806.01337), and :func:`backdrop` puts the two together, as ``F.dropout`` does for dropout.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch

LOW_PRECISION = (torch.float16, torch.bfloat16)


class _MaskGradient(torch.autograd.Function):
    """``y = x`` forward, ``grad_x = grad_y * mask`` backward.

    The backward is written with ordinary tensor operations, so autograd can differentiate it:
    the double backward of this linear map is the same masking, applied to the grad-of-grad.
    """

    @staticmethod
    def forward(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return x.view_as(x)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        _, mask = inputs
        ctx.save_for_backward(mask)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        mask, = ctx.saved_tensors
        # A float32 mask on a half-precision gradient: multiply in float32, round once.
        return (grad * mask).to(grad.dtype), None


def mask_gradient(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Return ``x`` unchanged, with its gradient multiplied by ``mask`` in the backward pass.

    The output is a view of ``x`` (no copy, no arithmetic). In the backward pass the gradient
    reaching ``x`` is ``grad * mask``, ``mask`` broadcast to ``x``; ``mask`` itself gets no
    gradient. The function runs under ``torch.no_grad`` (where it records nothing) and
    ``torch.compile``.

    Double backward is defined: the backward is made of differentiable operations, so with
    ``create_graph=True`` the gradient is a function of ``x`` and of the incoming gradient whose
    derivative with respect to the incoming gradient is ``mask``. The layer acts as a linear map
    with Jacobian ``diag(mask)``, so a second derivative taken through it is masked on both sides:
    for ``L(y)`` with ``y = mask_gradient(x, mask)`` the Hessian seen by ``x`` is
    ``diag(mask) H diag(mask)``.

    Args:
        x: any floating-point tensor.
        mask: a tensor that broadcasts to ``x.shape`` (moved to ``x``'s device if it is elsewhere).
            A float32 mask on a float16/bfloat16 ``x`` is multiplied in float32 and the product is
            rounded once to ``x``'s dtype.

    Shape:
        - x: ``(*)``, mask: broadcastable to ``(*)``, output: ``(*)``, same as ``x``.

    Example::

        >>> x = torch.ones(2, 3, requires_grad=True)
        >>> mask_gradient(x, torch.tensor([0.0, 2.0, 1.0])).sum().backward()
        >>> x.grad[0]
        tensor([0., 2., 1.])
    """
    try:
        fits = torch.broadcast_shapes(mask.shape, x.shape) == x.shape
    except RuntimeError:
        fits = False
    if not fits:
        raise ValueError(f"mask of shape {tuple(mask.shape)} does not broadcast to the input's "
                         f"shape {tuple(x.shape)}")
    return _MaskGradient.apply(x, mask.to(device=x.device))


def check_p(p: float) -> float:
    """``p`` as a float, or a ValueError if it is not in [0, 1)."""
    if not 0.0 <= p < 1.0:
        raise ValueError(f"backdrop mask probability has to be in [0, 1), but got {p}")
    return float(p)


def check_dims(dims: Sequence[int]) -> tuple[int, ...]:
    """``dims`` as a tuple of ints, or a ValueError if it is empty, not ints, or repeats a dim."""
    dims = tuple(dims)
    if not dims:
        raise ValueError("backdrop dims must name at least one dimension, but got ()")
    for d in dims:
        if isinstance(d, bool) or not isinstance(d, int):
            raise ValueError(f"backdrop dims must be ints, but got {d!r} in {dims}")
    if len(set(dims)) != len(dims):
        raise ValueError(f"backdrop dims must not repeat a dimension, but got {dims}")
    return dims


def check_block(block: int | Sequence[int] | None, dims: Sequence[int]) -> tuple[int, ...] | None:
    """``block`` as a tuple with one size per entry of ``dims`` other than 0, or a ValueError."""
    if block is None:
        return None
    spatial = [d for d in dims if d != 0]
    if not spatial:
        raise ValueError(f"block={block} needs a masked non-batch dim, but dims are {tuple(dims)}")
    sizes = (block,) * len(spatial) if isinstance(block, int) else tuple(block)
    if len(sizes) != len(spatial):
        raise ValueError(f"block needs one size per masked non-batch dim {tuple(spatial)}, but got {block}")
    for b in sizes:
        try:
            check_block_size(b)
        except ValueError:
            raise ValueError(f"block sizes must be positive ints, but got {block}") from None
    return sizes


def check_block_size(size: int) -> int:
    """``size``, the side of a block of positions masked together, or a ValueError if it is not a
    positive int."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"block sizes must be positive ints, but got {size!r}")
    return size


def _resolve_dims(dims: Sequence[int], ndim: int) -> tuple[int, ...]:
    resolved = []
    for d in dims:
        if not -ndim <= d < ndim:
            raise ValueError(f"backdrop dim {d} is out of range for an input with {ndim} dims")
        resolved.append(d % ndim)
    if len(set(resolved)) != len(resolved):
        raise ValueError(f"backdrop dims {tuple(dims)} name the same dimension twice for an input "
                         f"with {ndim} dims")
    return tuple(resolved)


def draw_mask(x: torch.Tensor, p: float, dims: Sequence[int] = (0, -2, -1), rescale: bool = True,
              generator: torch.Generator | None = None,
              block: int | Sequence[int] | None = None) -> torch.Tensor:
    """Draw a backdrop mask for ``x``: 1 (or the rescaling factor) where the gradient is kept, 0 where it is masked.

    Each position along ``dims`` is masked with probability ``p``; the mask has the size of ``x``
    along ``dims`` and size 1 along the other dims, which it is broadcast over.

    *Groups.* When ``dims`` holds the batch dim 0 together with other dims, each sample's slice of
    the mask is a group; otherwise the whole mask is one group. At least one position of every
    group is kept (when all are masked, one uniformly chosen position is kept), and with
    ``rescale`` the kept entries of a group equal (positions in the group) / (kept in the group),
    so every sample's gradient keeps its magnitude.

    Args:
        x: the tensor to be masked; gives the shape, device and dtype.
        p: probability that a position's gradient is masked, in [0, 1).
        dims: the dims that get a mask entry per position; negative dims count from ``x.ndim``.
        rescale: scale the kept entries so that the mask sums to its number of positions per group.
        generator: the random stream of the mask (torch's default generator when ``None``).
        block: masks ``b x b`` blocks of positions together: one size per entry of ``dims`` that
            is not the batch dim, in the order given, or one int for all of them. A coarse mask of
            ``ceil(size / b)`` per dim is drawn and each entry repeated ``b`` times (the last
            block cropped); rescaling counts the fine positions.

    Returns:
        The mask, in ``x``'s dtype (float32 for float16 and bfloat16 ``x``), on ``x``'s device.

    Shape:
        - x: ``(N, *)``; output: ``x.shape`` with size 1 along the dims not in ``dims``.

    Example::

        >>> x = torch.randn(4, 3, 8, 8)
        >>> mask = draw_mask(x, 0.75, generator=torch.Generator().manual_seed(0))
        >>> mask.shape
        torch.Size([4, 1, 8, 8])
    """
    p = check_p(p)
    dims = _resolve_dims(check_dims(dims), x.ndim)
    blocks = dict(zip([d for d in dims if d != 0], check_block(block, dims) or ()))
    dtype = torch.float32 if x.dtype in LOW_PRECISION or not x.is_floating_point() else x.dtype
    shape = [x.shape[d] if d in dims else 1 for d in range(x.ndim)]
    coarse = [math.ceil(s / blocks.get(d, 1)) for d, s in enumerate(shape)]
    per_sample = 0 in dims and len(dims) > 1
    groups = coarse[0] if per_sample else 1

    # Keeping u >= p keeps each position with probability 1 - p; also keeping each group's largest
    # u leaves the mask unchanged unless all were masked, and then keeps one uniformly chosen position.
    u = torch.rand(coarse, generator=generator, device=x.device, dtype=torch.float32).view(groups, -1)
    keep = (u >= p) | (u == u.amax(dim=1, keepdim=True))
    mask = keep.view(coarse).to(dtype)
    for d, b in blocks.items():
        if b > 1:
            mask = mask.repeat_interleave(b, dim=d).narrow(d, 0, shape[d])
    if rescale:
        flat = mask.reshape(groups, -1)
        kept = flat.sum(dim=1, keepdim=True)
        # A true division (``number / tensor`` would multiply by a rounded reciprocal).
        mask = (flat * torch.full_like(kept, flat.shape[1]).div_(kept)).view(shape)
    return mask


def backdrop(x: torch.Tensor, p: float, dims: Sequence[int] = (0, -2, -1), training: bool = True,
             rescale: bool = True, generator: torch.Generator | None = None,
             block: int | Sequence[int] | None = None) -> torch.Tensor:
    """Backdrop: ``x`` unchanged, its gradient masked by a fresh :func:`draw_mask` mask.

    Args:
        x: input tensor.
        p, dims, rescale, generator, block: as in :func:`draw_mask`.
        training: when ``False``, return ``x`` itself and draw nothing.

    Shape:
        - x: ``(N, *)``; output: same as ``x``.

    Example::

        >>> x = torch.randn(4, 3, 8, 8, requires_grad=True)
        >>> backdrop(x, 0.5).sum().backward()
        >>> x.grad.shape
        torch.Size([4, 3, 8, 8])
    """
    if not training:
        return x
    return mask_gradient(x, draw_mask(x, p, dims, rescale, generator, block))
