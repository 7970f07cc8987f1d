"""The samples a run trains and tests on, held in memory, and what a training step does to them:
crops, and the symmetries of the torus used for augmentation."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from msgp import io
from msgp.dataset import GeneratedDataset, MSGPDataset, split
from msgp.spec import DatasetSpec

from .config import CheckpointError, IncompatibleDataError, TrainConfig


@dataclass
class Samples:
    """Samples of a run held in memory: the data's description ``spec``, the ``fields``
    ``(n, 1, *shape)`` float32, their per-scale ``choices`` ``(n, K)`` int64, and their
    ``indices``, the sample numbers in the data they come from."""

    spec: Any
    fields: torch.Tensor
    choices: torch.Tensor
    indices: np.ndarray

    @property
    def labels(self) -> np.ndarray:
        """The joint class labels ``(n,)``."""
        return self.spec.labels(self.choices.numpy())


def load_samples(dataset: MSGPDataset | GeneratedDataset) -> Samples:
    """All samples of a subset in memory: a few hundred images, read once instead of every epoch.
    The per-scale choices come from the subset's labels, whatever its ``target``."""
    loader = torch.utils.data.DataLoader(dataset, batch_size=256)
    fields = torch.cat([x.float() for x, _ in loader])
    choices = torch.from_numpy(dataset.spec.choices(np.asarray(dataset.labels)).astype(np.int64))
    return Samples(dataset.spec, fields, choices, np.asarray(dataset.indices))


def open_data(source: str | os.PathLike | dict[str, Any]) -> MSGPDataset | GeneratedDataset:
    """The dataset a config's ``data`` or ``test_data`` names, read by per-scale choices: an msgp
    file, or a description (the dict of a DatasetSpec) to generate the samples of."""
    if isinstance(source, dict):
        return GeneratedDataset(DatasetSpec(**source), target="scales")
    if not Path(source).exists():
        raise io.FormatError(f"{source} does not exist; run `msgp generate` first to create a dataset")
    return MSGPDataset(source, target="scales")


def check_compatible(trained, other, what: str = "dataset") -> None:
    """Refuse data whose distribution differs from the training data's (seed and n may differ)."""
    details = _differences(trained.statistics(), other.statistics())
    if details:
        raise IncompatibleDataError(f"the {what} has other parameters than the training data: {details}")


def _differences(trained: dict[str, Any], now: dict[str, Any]) -> str:
    """``"key now (trained on was), ..."`` for every key whose value differs, or ``""``."""
    return ", ".join(f"{k} {now.get(k)} (trained on {trained.get(k)})"
                     for k in dict.fromkeys([*trained, *now]) if trained.get(k) != now.get(k))


def run_subsets(config: TrainConfig, data: MSGPDataset | GeneratedDataset,
             test_file: MSGPDataset | GeneratedDataset | None, saved: dict[str, Any] | None = None
             ) -> tuple[MSGPDataset | GeneratedDataset, MSGPDataset | GeneratedDataset]:
    """The training and test subsets of ``config``, from ``data`` and ``test_file`` (its ``data`` and
    ``test_data``, :func:`open_data`): drawn from the config's seed for a new run, or, for a resumed one, the
    ``train_indices`` and ``test_indices`` of the checkpoint ``saved``, after checking that the data
    are the ones it was trained on (:func:`data_identity`)."""
    if saved is not None:
        tested = data if test_file is None else test_file
        for what, source, stored in (("training data", data, saved["data"]["train"]),
                                     ("test data", tested, saved["data"]["test"])):
            _check_same_data(stored, source.spec, what)
        return data.subset(saved["train_indices"]), tested.subset(saved["test_indices"])
    if test_file is None:
        return split(data, config.n_train, config.n_test, seed=config.seed)
    check_compatible(data.spec, test_file.spec, "test data")
    if test_file.spec.seed == data.spec.seed:
        raise IncompatibleDataError(
            f"the test data have the training data's seed ({data.spec.seed}), so sample i is the same image in "
            "both and the test would score training samples; generate the test data with another `seed`")
    train_set, _ = split(data, config.n_train, 0, seed=config.seed)
    _, test_set = split(test_file, 0, config.n_test, seed=config.seed)
    return train_set, test_set


def data_identity(train_spec: DatasetSpec, test_spec: DatasetSpec) -> dict[str, dict[str, Any]]:
    """What a run's samples are: the whole description of the training and the test source, seed
    and n included (sample i is a function of the description and i), stored in the checkpoint."""
    return {"train": train_spec.to_dict(), "test": test_spec.to_dict()}


def _check_same_data(stored: dict[str, Any], spec: DatasetSpec, what: str) -> None:
    """Refuse data other than those a run was trained on: its stored indices would name other
    images, and a test index could name an image the run trained on."""
    details = _differences(stored, spec.to_dict())
    if details:
        raise IncompatibleDataError(f"the {what} changed since the run was trained: {details}; its sample "
                                    "indices name images of the data as they were, so use those")


def _spec_from_dict(values: dict[str, Any]) -> DatasetSpec:
    """The dataset description stored (as a dict) in a checkpoint."""
    try:
        return DatasetSpec(**values)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"the checkpoint's dataset description is damaged: {err}") from None


def take_crops(x: torch.Tensor, offsets: torch.Tensor, crop: int) -> torch.Tensor:
    """Crops ``(B * n, 1, crop, ...)`` of images ``(B, 1, *shape)`` at ``offsets`` ``(B, n, ndim)``,
    wrapping around the torus the fields live on."""
    batch, n, ndim = offsets.shape
    size = x.shape[-1]
    offsets = offsets.reshape(batch * n, ndim)
    steps = torch.arange(crop)
    index = [torch.arange(batch).repeat_interleave(n).view(-1, *[1] * ndim)]
    for d in range(ndim):
        shape = [batch * n] + [1] * ndim
        shape[1 + d] = crop
        index.append(((offsets[:, d].view(-1, *[1] * ndim) + steps.view(shape[1:]).unsqueeze(0)) % size).view(shape))
    return x[:, 0][tuple(index)].unsqueeze(1)


def draw_symmetries(batch: int, ndim: int, size: int, generator: torch.Generator
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``batch`` random symmetries of a stationary, isotropic field on a ``size**ndim`` torus:
    an axis permutation ``(batch, ndim)``, a flip of each axis with probability 1/2 ``(batch,
    ndim)`` and a periodic shift uniform over the grid ``(batch, ndim)``; see :func:`apply_symmetries`."""
    axes = torch.argsort(torch.rand(batch, ndim, generator=generator), dim=1)
    flips = torch.rand(batch, ndim, generator=generator) < 0.5
    shifts = torch.randint(0, size, (batch, ndim), generator=generator)
    return axes, flips, shifts


def apply_symmetries(x: torch.Tensor, axes: torch.Tensor, flips: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """Image ``i`` of ``x`` ``(B, 1, *shape)`` (square) with its axes permuted by ``axes[i]``, the
    axes where ``flips[i]`` is true reversed, then rolled by ``shifts[i]`` pixels."""
    ndim = x.ndim - 2
    out = torch.empty_like(x)
    for i in range(len(x)):
        y = x[i, 0].permute(*axes[i].tolist())
        flipped = [d for d in range(ndim) if flips[i, d]]
        if flipped:
            y = y.flip(flipped)
        out[i, 0] = torch.roll(y, shifts[i].tolist(), dims=tuple(range(ndim)))
    return out
