"""Checkpoints: written atomically after every epoch and on interruption, read back with checks."""
from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from msgp.spec import DatasetSpec

from ..models import MultiScaleNet, UserNetwork, build_network
from .config import CheckpointError

# The ``format`` entry of every checkpoint this trainer writes.
CHECKPOINT_FORMAT = "msgp-train-checkpoint"
# Version 2 stores the identity of the data and the train and test indices, and no backdrop
# generator states (the masks are reseeded at every step); version 1 is still read for evaluation.
CHECKPOINT_VERSION = 2
READABLE_VERSIONS = (1, 2)


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint written by :func:`train`, refusing damaged or foreign files."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch.load raises many types for damaged files; all mean the same here
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"{path} is not a readable checkpoint (damaged or not written by msgp train): "
                              f"{reason[:200]}") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not an msgp train checkpoint")
    if ckpt.get("version") not in READABLE_VERSIONS:
        raise CheckpointError(f"{path} is checkpoint version {ckpt.get('version')}; this msgp reads "
                              f"versions {', '.join(map(str, READABLE_VERSIONS))}")
    missing = [k for k in ("config", "model", "state", "spec", "epoch", "step") if k not in ckpt]
    if missing:
        raise CheckpointError(f"{path} is missing {', '.join(missing)}")
    return ckpt


def rebuild_model(ckpt: dict[str, Any]) -> MultiScaleNet | UserNetwork:
    """The network a checkpoint read by :func:`load_checkpoint` holds, its weights loaded: a
    :class:`~backdrop.models.MultiScaleNet`, or a network method's module built again from its
    file (:func:`~backdrop.models.build_network`); a :class:`CheckpointError` when it cannot be."""
    if "network" in ckpt["model"]:
        try:
            model = build_network(ckpt["model"]["network"], DatasetSpec(**ckpt["spec"]))
            model.load_state_dict(ckpt["state"])
        except (TypeError, ValueError, RuntimeError) as err:
            raise CheckpointError(f"the checkpoint's network cannot be rebuilt: {str(err).splitlines()[0]}") from None
        return model
    try:
        # Checkpoints written before padding and features were options.
        model = MultiScaleNet(**{"padding": "zeros", "features": "linear", **ckpt["model"]})
        model.load_state_dict(ckpt["state"])
    except (TypeError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"the checkpoint's network cannot be rebuilt: {str(err).splitlines()[0]}") from None
    return model


def _rng_states() -> dict[str, Any]:
    version, state, gauss = random.getstate()
    numpy_state = np.random.get_state(legacy=False)
    return {"torch": torch.get_rng_state(),
            "numpy": {"key": torch.from_numpy(numpy_state["state"]["key"].astype(np.int64)),
                      "pos": int(numpy_state["state"]["pos"])},
            "python": [version, list(state), gauss]}


def _restore_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    np.random.set_state({"bit_generator": "MT19937", "has_gauss": 0, "gauss": 0.0,
                         "state": {"key": states["numpy"]["key"].numpy().astype(np.uint32),
                                   "pos": states["numpy"]["pos"]}})
    version, state, gauss = states["python"]
    random.setstate((version, tuple(state), gauss))
