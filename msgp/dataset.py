"""A PyTorch view of an msgp file, and a class-balanced train/test split of it."""
from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

from . import io

TARGETS = ("class", "scales", "both")


class MSGPDataset(Dataset):
    """Samples of a complete msgp file as ``(field, target)`` pairs.

    Parameters
    ----------
    path : an msgp file (format 1, complete; a merged file reads like a single-run one).
    target : ``"class"``: the class label, an ``int``; ``"scales"``: the choice at each scale, an
        int64 tensor of shape (K,); ``"both"``: the tuple ``(label, choices)`` of those two.
    transform : a function applied to each field tensor.
    indices : sample indices of the file this dataset shows (default: all, in order).

    Attributes
    ----------
    spec : the file's :class:`~msgp.spec.DatasetSpec`.
    labels : (len(self),) int64 class labels of the samples shown.
    indices : (len(self),) int64 their indices in the file.

    Notes
    -----
    ``field`` is a float32 tensor of shape (1, *spec.shape): one channel. The HDF5 file is opened
    at the first item read in each process and kept open, never in ``__init__``, so the dataset
    pickles for ``DataLoader`` workers, and a worker forked after the parent has read items opens
    its own handle.
    """

    def __init__(self, path, target: str = "class", transform=None, indices=None):
        if target not in TARGETS:
            raise ValueError(f"target must be one of {', '.join(map(repr, TARGETS))}, but got {target!r}")
        self.path = Path(path)
        with io.open_file(self.path) as (f, spec):
            if io.shard_of(f) is not None:
                raise io.FormatError(f"{self.path} is shard {'{}/{}'.format(*io.shard_of(f))} of a dataset; "
                                     "merge the shards first (msgp merge)")
            labels = f["labels"][:]
        self.spec = spec
        self.indices = _check_indices(indices, spec.n)
        self.labels = labels[self.indices]
        self.target = target
        self.transform = transform
        self._file = None
        self._pid = None

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, item: int):
        field = torch.from_numpy(self._read(int(self.indices[item])).astype(np.float32, copy=False)).unsqueeze(0)
        if self.transform is not None:
            field = self.transform(field)
        label = int(self.labels[item])
        if self.target == "class":
            return field, label
        choices = torch.from_numpy(self.spec.choices(label).astype(np.int64))
        return field, (choices if self.target == "scales" else (label, choices))

    def _read(self, index: int) -> np.ndarray:
        # A handle inherited through fork belongs to the parent's HDF5 state: open our own.
        if self._pid != os.getpid():
            self._file = h5py.File(self.path, "r")
            self._pid = os.getpid()
            self._fields = self._file["fields"]
            self._raw_chunks = io.raw_rows(self._fields)
        if self._raw_chunks:
            out = np.empty(self._fields.shape[1:], self._fields.dtype)
            self._fields.id.read_direct_chunk((index,) + (0,) * self.spec.ndim, out=out.reshape(-1).view(np.uint8))
            return out
        return self._fields[index]

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_fields", None)
        state["_file"] = state["_pid"] = None
        return state

    def subset(self, indices) -> "MSGPDataset":
        """The samples ``indices`` (positions in this dataset), with the same target and transform."""
        positions = _check_indices(indices, len(self))
        return MSGPDataset(self.path, self.target, self.transform, self.indices[positions])

    def __repr__(self) -> str:
        return (f"MSGPDataset({str(self.path)!r}, target={self.target!r}, {len(self)} of {self.spec.n} samples, "
                f"{self.spec.n_classes} classes)")


def split(source, n_train: int, n_test: int, seed: int = 0, **options) -> tuple[MSGPDataset, MSGPDataset]:
    """Disjoint, class-balanced train and test subsets of an msgp file or dataset.

    Parameters
    ----------
    source : a path, or an :class:`MSGPDataset` (split within its samples, keeping its target and
        transform unless ``options`` say otherwise).
    n_train, n_test : sizes of the two subsets; each must be a multiple of the number of classes,
        so that every class has exactly ``n / n_classes`` samples in it.
    seed : which samples of each class go where.
    options : ``target`` and ``transform`` of the returned datasets.

    Returns
    -------
    (train, test) : two :class:`MSGPDataset`, their indices sorted.
    """
    dataset = source if isinstance(source, MSGPDataset) else MSGPDataset(source)
    C = dataset.spec.n_classes
    for name, count in (("n_train", n_train), ("n_test", n_test)):
        if not isinstance(count, (int, np.integer)) or count < 0:
            raise ValueError(f"{name} must be a non-negative integer, but got {count!r}")
        if count % C:
            below, above = count - count % C, count - count % C + C
            raise ValueError(f"{name}={count} cannot be balanced over {C} classes; "
                             f"use a multiple of {C}, e.g. {below} or {above}")
    if n_train + n_test > len(dataset):
        raise ValueError(f"n_train + n_test = {n_train + n_test} is more than the {len(dataset)} samples")
    rng = np.random.default_rng(seed)
    train, test = [], []
    per_train, per_test = n_train // C, n_test // C
    for c in range(C):
        members = np.flatnonzero(dataset.labels == c)
        if len(members) < per_train + per_test:
            raise ValueError(f"class {dataset.spec.class_names[c]} has {len(members)} samples, "
                             f"fewer than the {per_train} + {per_test} a balanced split needs")
        members = rng.permutation(members)
        train.append(members[:per_train])
        test.append(members[per_train:per_train + per_test])
    options = {"target": dataset.target, "transform": dataset.transform, **options}
    return tuple(MSGPDataset(dataset.path, indices=dataset.indices[np.sort(np.concatenate(part))], **options)
                 for part in (train, test))


def _check_indices(indices, n: int) -> np.ndarray:
    if indices is None:
        return np.arange(n, dtype=np.int64)
    array = np.asarray(indices)
    if array.ndim != 1 or not (array.size == 0 or np.issubdtype(array.dtype, np.integer)):
        raise ValueError("indices must be a 1-D sequence of integers")
    if array.size and (array.min() < 0 or array.max() >= n):
        raise IndexError(f"indices must lie in 0 to {n - 1}, but got {array.min()} to {array.max()}")
    return array.astype(np.int64)
