"""Backdrop under DistributedDataParallel: every rank uses its rows of the one-process mask.

A :class:`~backdrop.Backdrop` layer draws its mask from the local batch it sees. Under DDP each
rank sees only its share of the global batch, so what the ranks draw depends on how their
generators are seeded:

* the same seed on every rank: the ranks draw the same numbers, so sample ``i`` of every rank's
  batch gets the same mask (a per-sample mask repeats ``W`` times across the global batch);
* a seed per rank: per-sample masks are independent across ranks, but a batch-shared mask
  (``dims`` without the batch dim 0) is shared only within a rank, and a mask with ``dims=(0,)``
  keeps at least one sample and rescales per rank, not per global batch.

:class:`GlobalBatchMasks` makes a distributed run draw what one process would draw for the whole
global batch: the mask of the global batch, of which each rank keeps its own rows. See
``docs/distributed-masks.md``.
"""
from __future__ import annotations

import functools

import torch
import torch.distributed as dist
from torch import nn

from .functional import BackdropValueError, draw_mask
from .layer import Backdrop

__all__ = ["GlobalBatchMasks"]


class GlobalBatchMasks:
    """Give every :class:`~backdrop.Backdrop` layer of ``model`` its rank's rows of the mask that one
    process would draw for the whole global batch.

    Each layer's ``mask_source`` is set to draw the mask of the global batch (``world`` times the
    local batch, the input's other dims unchanged) from the layer's own generator, with the
    layer's ``p``, ``dims``, ``rescale`` and ``block``, and to hand the layer this rank's rows of
    it. The layer calls it wherever it would draw its own mask (in the backward pass, see
    :class:`~backdrop.Backdrop`), so checkpointing and ``torch.no_grad`` behave as without it, and
    a ``fixed_mask`` the user sets still takes precedence. With masks per sample, rank ``r`` holds the rows of global images ``r, r + world,
    r + 2 * world, ...`` in that order, each image with ``rows_per_image`` consecutive rows: this
    is how :class:`torch.utils.data.DistributedSampler` deals a global batch out. A mask without
    the batch dim (``dims=(-2, -1)``, one mask for the batch) is used whole by every rank.

    Every rank draws the whole global mask, so the generators advance alike: every rank must seed
    each layer's generator identically (the same seed, or the same ``torch.Generator`` state) and
    run the same number of forwards with the same local batch size. A layer with
    ``generator=None`` draws from torch's default generator, which then must be in the same
    state on every rank. With identical seeds and DDP's gradient averaging (each rank's loss a
    mean over its local batch), the averaged gradient is the one-process gradient of the global
    batch, up to the order of float reductions.

    Nothing is drawn when the layer is in eval mode, when grad is disabled (``torch.no_grad``,
    ``torch.inference_mode``) or when the input does not require grad.

    Parameters
    ----------
    model : the module whose :class:`~backdrop.Backdrop` layers (``model.modules()``, the model
        itself included) get the global masks; the bare model or its DDP wrapper.
    rank : this process's rank in ``0 .. world - 1``; ``torch.distributed.get_rank()`` when a
        process group is initialised, else 0.
    world : the number of processes sharing the global batch;
        ``torch.distributed.get_world_size()`` when a process group is initialised, else 1.
    rows_per_image : consecutive rows of the local batch that come from one sampled image (the
        crops of an image); the local batch must be a multiple of it.

    The layers' ``mask_source`` is set when the object is made and stays until :meth:`remove`;
    used as a context manager, it is removed on exit.

    Example::

        >>> net = nn.Sequential(nn.Conv2d(1, 4, 3), Backdrop(0.5, generator=torch.Generator().manual_seed(0)))
        >>> with GlobalBatchMasks(net, rank=1, world=2):
        ...     net(torch.randn(3, 1, 8, 8)).sum().backward()
        >>> net[1].last_mask.shape   # rows 1, 3, 5 of the mask of 6 images
        torch.Size([3, 1, 6, 6])
    """

    def __init__(self, model: nn.Module, rank: int | None = None, world: int | None = None,
                 rows_per_image: int = 1) -> None:
        initialised = dist.is_available() and dist.is_initialized()
        if world is None:
            world = dist.get_world_size() if initialised else 1
        if rank is None:
            rank = dist.get_rank() if initialised else 0
        for name, value in (("world", world), ("rows_per_image", rows_per_image)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise BackdropValueError(f"{name} must be a positive int, but got {value!r}")
        if isinstance(rank, bool) or not isinstance(rank, int) or not 0 <= rank < world:
            raise BackdropValueError(f"rank must be an int in [0, {world}), but got {rank!r}")
        self.rank, self.world, self.rows_per_image = rank, world, rows_per_image
        self.layers = [m for m in model.modules() if isinstance(m, Backdrop)]
        for layer in self.layers:
            if layer.mask_source is not None:
                raise BackdropValueError(f"{layer!r} already has a mask_source (another GlobalBatchMasks?)")
            layer.mask_source = functools.partial(self._draw, layer)

    def remove(self) -> None:
        """Take the global draws off: the layers draw their own masks again."""
        for layer in self.layers:
            layer.mask_source = None
        self.layers = []

    def __enter__(self) -> GlobalBatchMasks:
        return self

    def __exit__(self, *exc_info) -> None:
        self.remove()

    def local_rows(self, mask: torch.Tensor) -> torch.Tensor:
        """This rank's rows of ``mask``, a mask of the global batch: all of it when it has one row
        (shared by the batch), else the rows of images ``rank, rank + world, ...``."""
        if mask.shape[0] == 1:
            return mask
        if mask.shape[0] % (self.world * self.rows_per_image):
            raise BackdropValueError(f"a global mask of {mask.shape[0]} rows does not split into {self.world} "
                             f"ranks of images of {self.rows_per_image} rows")
        per_image = mask.view(-1, self.rows_per_image, *mask.shape[1:])[self.rank::self.world]
        return per_image.reshape(-1, *mask.shape[1:])

    def _draw(self, layer: Backdrop, shape: torch.Size, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        if shape[0] % self.rows_per_image:
            raise BackdropValueError(f"a local batch of {shape[0]} rows is not made of images of "
                             f"{self.rows_per_image} rows")
        # The mask depends only on the input's shape, device and dtype: a zero-stride stand-in
        # describes the global batch without allocating it.
        stand_in = torch.empty((), dtype=dtype, device=device).expand(self.world * shape[0], *shape[1:])
        return self.local_rows(draw_mask(stand_in, layer.p, layer.dims, layer.rescale, layer.generator, layer.block))
