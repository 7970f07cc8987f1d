"""Where a run computes: the device, the precision, and the processes of a distributed run.

Distributed runs with ``W`` processes and global batch ``B`` see the same batches as one process:
rank ``r`` takes batch positions ``r, r + W, ...``, the DistributedSampler's interleaving, and the
gradient is averaged over ranks. Each backdrop layer draws the mask of the whole global batch on
every rank, from generators seeded alike on every rank, and keeps its own rows
(:class:`backdrop.distributed.GlobalBatchMasks`). The result matches one process up to the order
of float reductions.
"""
from __future__ import annotations

import contextlib
import os
from typing import Any

import torch
import torch.distributed as dist

from .config import ConfigError

def resolve_device(device: str) -> torch.device:
    """``auto`` means CUDA when available; ranks of a distributed CUDA run use ``LOCAL_RANK``."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("device 'cuda' was asked for, but CUDA is not available")
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device("cpu")


@contextlib.contextmanager
def precision_context(precision: str, device: torch.device, autocast: bool = True):
    """Run the enclosed operations on ``device`` at ``precision``.

    Parameters
    ----------
    precision : ``fp32``: IEEE float32 throughout (on CUDA this also turns off the TF32
        convolutions torch allows by default); ``tf32``: CUDA matrix products and convolutions in
        TensorFloat-32 (10-bit mantissa), everything else in float32, so on CPU it is ``fp32``;
        ``bf16``: ``torch.autocast`` to bfloat16 (the weights, the optimiser and the operations
        autocast keeps in float32 stay float32; bfloat16's range needs no loss scaling).
    device : where the operations run.
    autocast : enter ``torch.autocast`` for ``bf16``; false around a backward pass, which runs
        each operation in the dtype its forward used.

    The TF32 switches are process-wide in torch: they are set on entry and restored on exit.
    """
    switches = _tf32_switches() if device.type == "cuda" else []
    saved = [getattr(owner, name) for owner, name, _ in switches]
    try:
        for owner, name, values in switches:
            setattr(owner, name, values[precision == "tf32"])
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast and precision == "bf16"):
            yield
    finally:
        for (owner, name, _), value in zip(switches, saved):
            setattr(owner, name, value)


def _tf32_switches() -> list[tuple[Any, str, tuple[Any, Any]]]:
    """``(owner, attribute, (off, on))`` of torch's TF32 switches for CUDA matmuls and cuDNN.

    Torch 2.9 added per-backend ``fp32_precision`` settings and deprecated ``allow_tf32``; it
    refuses to read a switch whose two APIs disagree, so only one API is ever written: the new
    one where it exists, for convolutions and RNNs alike (torch also checks those two agree).
    """
    cuda, cudnn = torch.backends.cuda, torch.backends.cudnn
    if hasattr(cudnn, "conv") and hasattr(cudnn.conv, "fp32_precision"):
        return [(cuda.matmul, "fp32_precision", ("ieee", "tf32")),
                (cudnn.conv, "fp32_precision", ("ieee", "tf32")),
                (cudnn.rnn, "fp32_precision", ("ieee", "tf32"))]
    return [(cuda.matmul, "allow_tf32", (False, True)), (cudnn, "allow_tf32", (False, True))]


def init_distributed(device: str = "auto") -> bool:
    """Join the process group described by torchrun's environment (``WORLD_SIZE`` > 1).

    Uses nccl for CUDA and gloo for CPU. Returns whether a process group is now initialised.
    """
    if dist.is_initialized():
        return True
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    cuda = resolve_device(device).type == "cuda"
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    dist.init_process_group("nccl" if cuda else "gloo")
    return True


def _world() -> tuple[int, int]:
    return (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)


def _all_sum(tensor: torch.Tensor) -> torch.Tensor:
    if dist.is_initialized():
        dist.all_reduce(tensor)
    return tensor
