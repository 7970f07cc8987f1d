"""Backdrop as functions: the gradient-masking autograd Functions, and the mask they use.

:func:`mask_gradient` is the identity in the forward pass and multiplies the incoming gradient by a
given mask in the backward pass. :func:`draw_mask` draws the random mask of backdrop (Golkar &
Cranmer, arXiv:1806.01337), and :func:`backdrop` puts the two together, as ``F.dropout`` does for
dropout.

*Layout.* Inputs are ``(N, C, *positions)``: dim 0 is the batch, dim 1 the channels (features),
and every dim after it a position (``L``; ``H, W``; ``D, H, W``). By default every sample has its
own mask over its positions, shared by the channels; an input without positions, ``(N,)`` or
``(N, C)``, has its whole samples masked.

*When the mask is drawn.* :func:`backdrop` draws its mask in the backward pass, the first time the
gradient reaches it, and nothing when no backward pass can reach it (``torch.no_grad``, an input
that does not require grad). Activation checkpointing, which runs a forward pass again during the
backward pass, therefore needs no care: the mask is a property of the backward pass, not of the
forward pass that was replayed. Inside ``torch.compile`` and the ``torch.func`` transforms, which
trace the backward pass or run it on wrapped tensors, the mask is drawn in the forward pass from
the same generator instead. ``torch.export`` and ONNX export keep no custom backward, so a
training-mode export is refused; in eval mode the layer is the identity and exports as one.
"""
from __future__ import annotations

import reprlib
from collections.abc import Callable, Sequence
from numbers import Real

import torch

from msgp.errors import MSGPError

__all__ = ["BackdropTypeError", "BackdropValueError", "backdrop", "draw_mask", "layout_dims", "mask_gradient"]

LOW_PRECISION = (torch.float16, torch.bfloat16)

EXPORT_REFUSED = ("backdrop: torch.export and ONNX export keep no custom backward, so an exported "
                  "training-mode backdrop would give unmasked gradients; export the model in eval "
                  "mode (model.eval()), where backdrop is the identity")
REENTRANT_REFUSED = ("backdrop: a reentrant torch.utils.checkpoint replays torch's default random "
                     "state, so a mask drawn from it would repeat; pass use_reentrant=False to the "
                     "checkpoint or give the backdrop layer its own torch.Generator")


class BackdropTypeError(MSGPError, TypeError):
    """An argument of backdrop's layer or functions of the wrong type: a TypeError that is also an
    :class:`msgp.MSGPError`."""


class BackdropValueError(MSGPError, ValueError):
    """An argument of backdrop's layer or functions with a value it cannot take (a probability
    outside [0, 1), dims that repeat, a mask that does not broadcast): a ValueError that is also an
    :class:`msgp.MSGPError`."""


def layout_dims(ndim: int) -> tuple[int, ...]:
    """The default mask dims of an ``ndim``-dim input: the batch and every position dim."""
    return (0,) + tuple(range(2, ndim))


def _grad_can_reach(x: torch.Tensor) -> bool:
    return torch.is_grad_enabled() and x.requires_grad


def _transformed() -> bool:
    """Whether this runs inside a ``torch.func`` transform (vmap, grad, jacrev, ...), whose
    wrapped tensors must not leave it. (Dynamo, tracing, answers as if inside one.)"""
    return not torch.compiler.is_compiling() and torch._C._functorch.peek_interpreter_stack() is not None


def _traced() -> bool:
    """Whether the graph is being recorded (torch.compile, torch.jit.trace) or runs on functorch's
    wrapped tensors, where a mask must be an ordinary tensor of the graph, drawn in the forward
    pass, rather than drawn by Python code in the backward pass."""
    return torch.compiler.is_compiling() or torch.jit.is_tracing() or _transformed()


def _refuse_export() -> None:
    if torch.compiler.is_exporting() or torch.onnx.is_in_onnx_export():
        raise RuntimeError(EXPORT_REFUSED)


def _backward(grad: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    # A float32 mask on a half-precision gradient: multiply in float32, round once.
    return (grad * mask).to(grad.dtype)


class _MaskGradient(torch.autograd.Function):
    """``y = x`` forward, ``grad_x = grad_y * mask`` backward, for a given mask tensor.

    The forward returns a copy: a view made inside a custom Function may not be modified in
    place, and a ``ReLU(inplace=True)`` or ``out += identity`` after the layer must work. The
    backward is written with ordinary tensor operations, so autograd can differentiate it (double
    backward) and ``torch.func.vmap`` can batch it.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return x.clone()

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        _, mask = inputs
        ctx.save_for_backward(mask)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        mask, = ctx.saved_tensors
        return _backward(grad, mask), None


MaskSource = Callable[[torch.Size, torch.dtype, torch.device], torch.Tensor]


class _LazyMask:
    """The mask of one node of the graph, drawn by ``source`` when its backward pass first needs it.

    A node is kept until the graph is freed, so a second backward pass through the same graph
    (``retain_graph=True``) uses the same mask.
    """

    __slots__ = ("source", "default_generator", "on_draw", "mask")

    def __init__(self, source: MaskSource, default_generator: bool, on_draw):
        self.source, self.default_generator, self.on_draw = source, default_generator, on_draw
        self.mask = None

    def draw(self, shape: torch.Size, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        if self.mask is None:
            self.mask = self.source(shape, dtype, device)
            if self.on_draw is not None:
                self.on_draw(self.mask)
        return self.mask


class _MaskGradientLazily(torch.autograd.Function):
    """``y = x`` forward (a copy, as in :class:`_MaskGradient`); the backward draws the mask."""

    @staticmethod
    def forward(x: torch.Tensor, lazy: _LazyMask) -> torch.Tensor:
        return x.clone()

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        x, lazy = inputs
        ctx.lazy = lazy
        ctx.input = (x.shape, x.dtype, x.device)
        # A forward pass run during a backward pass is a checkpoint's recomputation. Only a
        # reentrant checkpoint runs the backward of the nodes it makes, inside a fork of torch's
        # default random state.
        ctx.recomputed = torch._C._current_graph_task_id() != -1

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        if ctx.recomputed and ctx.lazy.default_generator:
            raise RuntimeError(REENTRANT_REFUSED)
        return _backward(grad, ctx.lazy.draw(*ctx.input)), None


def mask_gradient(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Return ``x`` unchanged, with its gradient multiplied by ``mask`` in the backward pass.

    The output equals ``x`` bit for bit; it is a copy (so in-place operations after it work)
    when a backward pass can reach ``x``, and ``x`` itself otherwise (under ``torch.no_grad``, or
    when ``x`` does not require grad). In the backward pass the gradient reaching ``x`` is
    ``grad * mask``, ``mask`` broadcast to ``x``; ``mask`` itself gets no gradient.

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
    for name, value in (("x", x), ("mask", mask)):
        if not isinstance(value, torch.Tensor):
            raise BackdropTypeError(f"mask_gradient: {name} must be a tensor, but got {_describe(value)}")
    try:
        fits = torch.broadcast_shapes(mask.shape, x.shape) == x.shape
    except RuntimeError:
        fits = False
    if not fits:
        raise BackdropValueError(f"mask of shape {tuple(mask.shape)} does not broadcast to the input's "
                         f"shape {tuple(x.shape)}")
    if not _grad_can_reach(x):
        return x
    _refuse_export()
    return _MaskGradient.apply(x, mask.to(device=x.device))


def _describe(value) -> str:
    """The value and its type, on one short line."""
    return f"{' '.join(reprlib.repr(value).split())} ({type(value).__name__})"


def check_p(p: float) -> float:
    """``p`` as a float: a TypeError if it is not a real number, a ValueError if not in [0, 1)."""
    if isinstance(p, bool) or not isinstance(p, Real):
        raise BackdropTypeError(f"backdrop p, the probability that a position's gradient is masked, must be "
                        f"a number in [0, 1), but got {_describe(p)}")
    if not 0.0 <= p < 1.0:
        raise BackdropValueError(f"backdrop p, the probability that a position's gradient is masked, has to "
                         f"be in [0, 1), but got {p}")
    return float(p)


def check_dims(dims: Sequence[int] | None) -> tuple[int, ...] | None:
    """``dims`` as a tuple of ints (``None``, the default layout, stays ``None``): a TypeError if it
    is not a sequence of ints, a ValueError if it is empty or repeats a dim."""
    if dims is None:
        return None
    if isinstance(dims, (str, bytes)) or not isinstance(dims, Sequence):
        raise BackdropTypeError(f"backdrop dims must be a sequence of ints such as (0, 2, 3), but got {_describe(dims)}")
    dims = tuple(dims)
    for d in dims:
        if isinstance(d, bool) or not isinstance(d, int):
            raise BackdropTypeError(f"backdrop dims must be ints, but got {_describe(d)} in dims={dims}")
    if not dims:
        raise BackdropValueError("backdrop dims must name at least one dimension, but got ()")
    if len(set(dims)) != len(dims):
        raise BackdropValueError(f"backdrop dims must not repeat a dimension, but got {dims}")
    return dims


def check_rescale(rescale: bool) -> bool:
    """``rescale``, or a TypeError if it is not a bool."""
    if not isinstance(rescale, bool):
        raise BackdropTypeError(f"backdrop rescale must be True or False, but got {_describe(rescale)}")
    return rescale


def check_generator(generator: torch.Generator | None) -> torch.Generator | None:
    """``generator``, or a TypeError if it is neither ``None`` nor a ``torch.Generator``."""
    if generator is not None and not isinstance(generator, torch.Generator):
        raise BackdropTypeError(f"backdrop generator must be a torch.Generator or None, but got {_describe(generator)}")
    return generator


def check_block_size(size: int) -> int:
    """``size``, the side of a block of positions masked together: a TypeError if it is not an
    int, a ValueError if it is not positive."""
    if isinstance(size, bool) or not isinstance(size, int):
        raise BackdropTypeError(f"backdrop block sizes must be positive ints, but got {_describe(size)}")
    if size < 1:
        raise BackdropValueError(f"backdrop block sizes must be positive ints, but got {size}")
    return size


def check_block(block: int | Sequence[int] | None, dims: Sequence[int] | None,
                ndim: int | None = None) -> tuple[int, ...] | None:
    """``block`` as a tuple with one size per masked non-batch dim, or a TypeError/ValueError.

    With the default ``dims=None`` the masked dims are known only for an input of ``ndim`` dims;
    without ``ndim`` only the sizes themselves are checked.
    """
    if block is None:
        return None
    if isinstance(block, int) and not isinstance(block, bool):
        sizes = (check_block_size(block),)
    elif isinstance(block, Sequence) and not isinstance(block, (str, bytes)):
        sizes = tuple(check_block_size(b) for b in block)
    else:
        raise BackdropTypeError(f"backdrop block must be an int or a sequence of ints, but got {_describe(block)}")
    if dims is None and ndim is None:
        return sizes
    masked = [d for d in (layout_dims(ndim) if dims is None else dims) if d != 0]
    if not masked:
        raise BackdropValueError(f"backdrop block={block} needs a masked non-batch dim, but the masked dims are "
                         f"{tuple(dims) if dims is not None else (0,)}")
    if isinstance(block, int):
        return sizes * len(masked)
    if len(sizes) != len(masked):
        raise BackdropValueError(f"backdrop block needs one size per masked non-batch dim {tuple(masked)}, but got {block}")
    return sizes


def block_setting(block: int | Sequence[int] | None, dims: Sequence[int] | None) -> int | tuple[int, ...] | None:
    """``block`` checked against ``dims`` (:func:`check_block`), kept as given: an int, a tuple or ``None``."""
    check_block(block, dims)
    return block if block is None or isinstance(block, int) else tuple(block)


def _resolve_dims(dims: Sequence[int] | None, ndim: int) -> tuple[int, ...]:
    if dims is None:
        return layout_dims(ndim)
    resolved = []
    for d in dims:
        if not -ndim <= d < ndim:
            raise BackdropValueError(f"backdrop dim {d} is out of range for an input with {ndim} dims")
        resolved.append(d % ndim)
    if len(set(resolved)) != len(resolved):
        raise BackdropValueError(f"backdrop dims {tuple(dims)} name the same dimension twice for an input "
                         f"with {ndim} dims")
    return tuple(resolved)


def draw_mask(x: torch.Tensor, p: float, dims: Sequence[int] | None = None, rescale: bool = True,
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
            ``None``: the batch dim and every dim after the channel dim 1, ``(0, 2, ..., x.ndim -
            1)``: a mask per sample over its positions, shared by the channels (``(0,)``, whole
            samples, for an input of one or two dims).
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
    if not isinstance(x, torch.Tensor):
        raise BackdropTypeError(f"draw_mask: x must be a tensor, but got {_describe(x)}")
    p, dims = check_p(p), check_dims(dims)
    check_block(block, dims)
    return _draw(x.shape, x.dtype, x.device, p, dims, check_rescale(rescale), check_generator(generator), block)


def _draw(shape: Sequence[int], dtype: torch.dtype, device: torch.device, p: float,
          dims: Sequence[int] | None, rescale: bool, generator: torch.Generator | None,
          block: int | Sequence[int] | None) -> torch.Tensor:
    """:func:`draw_mask` for a tensor of ``shape``, ``dtype`` and ``device``, settings checked."""
    ndim = len(shape)
    dims = _resolve_dims(dims, ndim)
    blocks = dict(zip([d for d in dims if d != 0], check_block(block, dims) or ()))
    dtype = torch.float32 if dtype in LOW_PRECISION or not dtype.is_floating_point else dtype
    shape = [shape[d] if d in dims else 1 for d in range(ndim)]
    # Integer ceiling: ``math.ceil(s / b)`` is a float division, which torch.compile cannot keep
    # symbolic when the shape is dynamic.
    coarse = [-(-s // blocks.get(d, 1)) for d, s in enumerate(shape)]
    per_sample = 0 in dims and len(dims) > 1
    groups = coarse[0] if per_sample else 1

    # Keeping u >= p keeps each position with probability 1 - p; also keeping each group's largest
    # u leaves the mask unchanged unless all were masked, and then keeps one uniformly chosen position.
    # ``generator=None`` is not passed on: torch.compile cannot trace that overload with dynamic shapes.
    options = {} if generator is None else {"generator": generator}
    u = torch.rand(coarse, device=device, dtype=torch.float32, **options).view(groups, -1)
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


def masked(x: torch.Tensor, p: float, dims: tuple[int, ...] | None, rescale: bool,
           generator: torch.Generator | None, block: int | tuple[int, ...] | None,
           on_draw: Callable[[torch.Tensor], None] | None = None,
           source: MaskSource | None = None) -> torch.Tensor:
    """:func:`backdrop` in training mode, settings checked; ``on_draw`` is called with each mask
    drawn (not under the ``torch.func`` transforms, whose tensors must not leave them, nor while
    ``torch.jit.trace`` records, whose replays call no Python). ``source(shape, dtype, device)``,
    when given, draws the mask instead of :func:`draw_mask` with these settings (it must draw from
    ``generator``)."""
    # Settings that do not fit the input are refused whether or not a mask is needed.
    _resolve_dims(dims, x.ndim)
    check_block(block, dims, x.ndim)
    if not _grad_can_reach(x):
        return x
    _refuse_export()
    if source is None:
        def source(shape, dtype, device):
            return _draw(shape, dtype, device, p, dims, rescale, generator, block)
    if _traced():
        mask = source(x.shape, x.dtype, x.device)
        if on_draw is not None and not (_transformed() or torch.jit.is_tracing()):
            on_draw(mask)
        return _MaskGradient.apply(x, mask)
    return _MaskGradientLazily.apply(x, _LazyMask(source, generator is None, on_draw))


def backdrop(x: torch.Tensor, p: float, dims: Sequence[int] | None = None, training: bool = True,
             rescale: bool = True, generator: torch.Generator | None = None,
             block: int | Sequence[int] | None = None) -> torch.Tensor:
    """Backdrop: ``x`` unchanged, its gradient masked by a fresh :func:`draw_mask` mask.

    The mask is drawn when the backward pass first reaches it (see the module's notes), so under
    ``torch.no_grad``, or for an ``x`` that does not require grad, nothing is drawn and ``x``
    itself is returned.

    Args:
        x: input tensor, ``(N, C, *positions)``.
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
    if not isinstance(x, torch.Tensor):
        raise BackdropTypeError(f"backdrop: x must be a tensor, but got {_describe(x)}")
    p, dims = check_p(p), check_dims(dims)
    rescale, generator = check_rescale(rescale), check_generator(generator)
    block = block_setting(block, dims)
    if not isinstance(training, bool):
        raise BackdropTypeError(f"backdrop training must be True or False, but got {_describe(training)}")
    if not training:
        return x
    return masked(x, p, dims, rescale, generator, block)
