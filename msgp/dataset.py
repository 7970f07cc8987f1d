"""PyTorch views of an msgp dataset: read from a file (:class:`MSGPDataset`) or generated on the
fly from its description (:class:`GeneratedDataset`), item for item the same; and a
class-balanced train/test split of either."""
from __future__ import annotations

import copy
import os
from pathlib import Path

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

from .checks import Checks
from .errors import ArgumentError, ArgumentIndexError, ArgumentTypeError, FormatError, ReplacedFileError, SplitError
from .format import file_id, open_file, open_h5, raw_rows, shard_of
from .generate import Sampler, batch_rows, labels_of
from .spec import DatasetSpec

__all__ = ["GeneratedDataset", "MSGPDataset", "SplitError", "TARGETS", "split"]

TARGETS = ("class", "scales", "both")

_ARGS = Checks()
_SPLIT_ARGS = Checks(SplitError)


class _Samples(Dataset):
    """What the file and the generated dataset share: the target, the transforms, the item format."""

    def __init__(self, target: str, transform, target_transform):
        self.target = _ARGS.choice("target", target, TARGETS, "one of " + ", ".join(map(repr, TARGETS)))
        if transform is not None and not callable(transform):
            raise ArgumentTypeError(f"transform must be a function of the field tensor, or None, but got {transform!r}")
        if target_transform is not None and not callable(target_transform):
            raise ArgumentTypeError(f"target_transform must be a function of the target, or None, but got "
                            f"{target_transform!r}")
        self.transform = transform
        self.target_transform = target_transform

    @property
    def classes(self) -> list[str]:
        """The class names, label ``c`` at position ``c``: each scale's chosen length scale, finest
        first, such as ``"1.19-7.5-17.5"``."""
        return list(self.spec.class_names)

    def _item(self, field: np.ndarray, label):
        """``(field, target)`` from a stored field and its class label."""
        field = torch.from_numpy(field.astype(np.float32, copy=False)).unsqueeze(0)
        if self.transform is not None:
            field = self.transform(field)
        label = int(label)
        if self.target == "class":
            target = label
        else:
            choices = torch.from_numpy(self.spec.choices(label).astype(np.int64))
            target = choices if self.target == "scales" else (label, choices)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return field, target


class MSGPDataset(_Samples):
    """Samples of a complete msgp file as ``(field, target)`` pairs.

    Parameters
    ----------
    path : an msgp file (format 1, complete; a merged file reads like a single-run one).
    target : ``"class"``: the class label, an ``int``; ``"scales"``: the choice at each scale, an
        int64 tensor of shape (K,); ``"both"``: the tuple ``(label, choices)`` of those two.
    transform : a function applied to each field tensor.
    target_transform : a function applied to each target (the ``int``, the tensor or the tuple).
    indices : sample indices of the file this dataset shows (default: all, in order).

    Attributes
    ----------
    spec : the file's :class:`~msgp.spec.DatasetSpec`.
    classes : the class names (``spec.class_names`` as a list), label ``c`` at position ``c``.
    labels : (len(self),) int64 class labels of the samples shown.
    indices : (len(self),) int64 their indices in the file.

    Notes
    -----
    ``field`` is a float32 tensor of shape (1, *spec.shape): one channel. The HDF5 file is opened
    at the first item read in each process and kept open, never in ``__init__``, so the dataset
    pickles for ``DataLoader`` workers, and a worker forked after the parent has read items opens
    its own handle.

    The labels are read in ``__init__`` and the fields later, so a process that opens the file
    checks that it is still the file the labels came from (its ``file_id``; for a file written
    before msgp wrote one, its description, completeness and labels). A file written anew at
    ``path`` since (written again with ``overwrite=True``) raises :class:`~msgp.io.ReplacedFileError`,
    rather than give its fields with the old file's labels: make the dataset again. A file that
    another process is writing raises :class:`~msgp.io.FormatError` saying so.
    """

    def __init__(self, path, target: str = "class", transform=None, target_transform=None, indices=None):
        self.path = Path(_ARGS.path("path", path))
        super().__init__(target, transform, target_transform)
        with open_file(self.path) as (f, spec):
            if shard_of(f) is not None:
                raise FormatError(f"{self.path} is shard {'{}/{}'.format(*shard_of(f))} of a dataset; "
                                     "merge the shards first (msgp merge)")
            labels = f["labels"][:]
            self._file_id = file_id(f)
        self.spec = spec
        self.indices = _check_indices(indices, spec.n)
        self.labels = labels[self.indices]
        self._file = None
        self._pid = None

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, item: int):
        return self._item(self._read(int(self.indices[item])), self.labels[item])

    def _read(self, index: int) -> np.ndarray:
        # A handle inherited through fork belongs to the parent's HDF5 state: open our own.
        if self._pid != os.getpid():
            self._file = self._open()
            self._pid = os.getpid()
            self._fields = self._file["fields"]
            self._raw_chunks = raw_rows(self._fields)
        if self._raw_chunks:
            out = np.empty(self._fields.shape[1:], self._fields.dtype)
            self._fields.id.read_direct_chunk((index,) + (0,) * self.spec.ndim, out=out.reshape(-1).view(np.uint8))
            return out
        return self._fields[index]

    def _open(self) -> h5py.File:
        """The file, opened in this process, if it is still the one this dataset was made from."""
        f = open_h5(self.path)
        try:
            if not self._same_file(f):
                raise ReplacedFileError(
                    f"{self.path} was replaced after this dataset was made (another file was written in its "
                    "place, e.g. written again with `overwrite=True`), so its fields would not match the labels "
                    "read before; make the dataset again")
        except BaseException:
            f.close()
            raise
        return f

    def _same_file(self, f: h5py.File) -> bool:
        if file_id(f) is not None or self._file_id is not None:
            return file_id(f) == self._file_id
        # Both written before files had an identity: the same description, complete, and the same
        # label for every sample shown, so that no field comes with another sample's label.
        try:
            return (DatasetSpec.from_attrs(f.attrs) == self.spec and bool(f.attrs["complete"])
                    and np.array_equal(f["labels"][:][self.indices], self.labels))
        except (KeyError, ValueError, TypeError):
            return False

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_fields", None)
        state["_file"] = state["_pid"] = None
        return state

    def subset(self, indices) -> "MSGPDataset":
        """The samples ``indices`` (positions in this dataset), with the same target and transforms."""
        return self._select(_check_indices(indices, len(self)), self.target, self.transform, self.target_transform)

    def _select(self, positions, target, transform, target_transform) -> "MSGPDataset":
        """The samples at ``positions`` in this dataset. The labels are this dataset's, not read
        again, and the file must stay the one they came from."""
        view = copy.copy(self)  # through __getstate__: without this process's file handle
        _Samples.__init__(view, target, transform, target_transform)
        view.indices, view.labels = self.indices[positions], self.labels[positions]
        return view

    def __repr__(self) -> str:
        return (f"MSGPDataset({str(self.path)!r}, target={self.target!r}, {len(self)} of {self.spec.n} samples, "
                f"{self.spec.n_classes} classes)")


class GeneratedDataset(_Samples):
    """The samples of a dataset description, drawn when they are read: no file.

    Item ``i`` is bit for bit item ``i`` of :class:`MSGPDataset` on the file ``msgp generate``
    writes for ``spec`` (sample i is a function of the spec and i alone), with the same targets.

    Parameters
    ----------
    spec : the dataset description; ``len`` is ``spec.n`` (which may be far more than would fit
        on a disk). Its storage settings matter only as they would in a file: ``dtype`` rounds the
        fields, ``compression`` and ``save_components`` are ignored.
    target : ``"class"``, ``"scales"`` or ``"both"``, as for :class:`MSGPDataset`.
    transform : a function applied to each field tensor.
    target_transform : a function applied to each target (the ``int``, the tensor or the tuple).
    indices : sample indices of the dataset this one shows (default: all, in order).

    Attributes
    ----------
    spec : the :class:`~msgp.spec.DatasetSpec`.
    classes : the class names (``spec.class_names`` as a list), label ``c`` at position ``c``.
    labels : (len(self),) int64 class labels of the samples shown, computed at first use (about
        1 s per million samples; :func:`split` needs them, reading items does not).
    indices : (len(self),) int64 their indices in the dataset.

    Notes
    -----
    Reading a batch (``__getitems__``, which a ``DataLoader`` with a ``batch_size`` or a
    ``batch_sampler`` calls) draws the batch's fields with batched inverse FFTs, at most
    :data:`msgp.generate.BATCH_PIXELS` pixels at a time, so each item costs about what ``msgp generate``
    spends on one. The sampler is built at the first item read in each process and not pickled,
    so ``DataLoader`` workers build their own.

    Examples
    --------
    >>> from torch.utils.data import DataLoader
    >>> spec = DatasetSpec.default(3, 128, n=10**9)
    >>> loader = DataLoader(GeneratedDataset(spec), batch_size=64, num_workers=2)
    >>> fields, labels = next(iter(loader))  # samples 0 to 63 of the file it would write
    """

    def __init__(self, spec: DatasetSpec, target: str = "class", transform=None, target_transform=None,
                 indices=None):
        if not isinstance(spec, DatasetSpec):
            raise ArgumentTypeError(f"spec must be a DatasetSpec, but got {spec!r}")
        super().__init__(target, transform, target_transform)
        self.spec = spec
        # None stands for all samples, so that a dataset of 10**9 samples costs nothing until read.
        self._indices = None if indices is None else _check_indices(indices, spec.n)
        self._labels = None
        self._sampler = None

    @property
    def indices(self) -> np.ndarray:
        return np.arange(self.spec.n, dtype=np.int64) if self._indices is None else self._indices

    @property
    def labels(self) -> np.ndarray:
        if self._labels is None:
            self._labels = labels_of(self.spec, self.indices)
        return self._labels

    def __len__(self) -> int:
        return self.spec.n if self._indices is None else len(self._indices)

    def __getitem__(self, item: int):
        return self.__getitems__([item])[0]

    def __getitems__(self, items) -> list:
        """The items at positions ``items``, their fields drawn together."""
        indices = self._at(items)
        labels = labels_of(self.spec, indices)
        if self._sampler is None:
            self._sampler = Sampler(self.spec)
        step = batch_rows(self.spec.shape)
        out = []
        for a in range(0, len(indices), step):
            fields = self._sampler.fields(indices[a:a + step], labels[a:a + step])
            out += [self._item(field, label) for field, label in zip(fields, labels[a:a + step])]
        return out

    def _at(self, positions) -> np.ndarray:
        """Dataset indices of ``positions`` in this one (negative ones count from the end)."""
        positions = np.asarray(positions, dtype=np.int64)
        n = len(self)
        if positions.size and not (-n <= positions.min() and positions.max() < n):
            bad = positions.min() if positions.min() < -n else positions.max()
            raise ArgumentIndexError(f"index {bad} is out of range for {n} samples")
        positions = np.where(positions < 0, positions + n, positions)
        return positions if self._indices is None else self._indices[positions]

    def __getstate__(self):
        # The sampler's spectra are larger than the dataset and quick to rebuild in a worker.
        return {**self.__dict__, "_sampler": None}

    def subset(self, indices) -> "GeneratedDataset":
        """The samples ``indices`` (positions in this dataset), with the same target and transforms."""
        return self._select(_check_indices(indices, len(self)), self.target, self.transform, self.target_transform)

    def _select(self, positions, target, transform, target_transform) -> "GeneratedDataset":
        """The samples at ``positions`` in this dataset."""
        return GeneratedDataset(self.spec, target, transform, target_transform, self._at(positions))

    def __repr__(self) -> str:
        spec = self.spec
        return (f"GeneratedDataset({spec.ndim}-D, {spec.size} px, seed={spec.seed}, target={self.target!r}, "
                f"{len(self)} of {spec.n} samples, {spec.n_classes} classes)")


def split(source, n_train: int, n_test: int, seed: int = 0, **options) -> tuple[_Samples, _Samples]:
    """Disjoint, class-balanced train and test subsets of an msgp file, description or dataset.

    Parameters
    ----------
    source : a path (read with :class:`MSGPDataset`), a :class:`~msgp.spec.DatasetSpec`
        (generated with :class:`GeneratedDataset`: the same subsets as from its file), or a
        dataset of either kind (split within its samples, keeping its target and transforms
        unless ``options`` say otherwise).
    n_train, n_test : sizes of the two subsets; each must be a multiple of the number of classes,
        so that every class has exactly ``n / n_classes`` samples in it.
    seed : which samples of each class go where.
    options : ``target``, ``transform`` and ``target_transform`` of the returned datasets.

    Returns
    -------
    (train, test) : two datasets of the kind ``source`` gives, their indices sorted.
    """
    for name, count in (("n_train", n_train), ("n_test", n_test)):
        _SPLIT_ARGS.integer(name, count, 0)
    _SPLIT_ARGS.integer("seed", seed, 0)
    unknown = sorted(set(options) - {"target", "transform", "target_transform"})
    if unknown:
        raise ArgumentTypeError(f"split's options are target, transform and target_transform, but got "
                        f"{', '.join(map(repr, unknown))}")
    if isinstance(source, _Samples):
        dataset = source
    elif isinstance(source, DatasetSpec):
        dataset = GeneratedDataset(source)
    elif isinstance(source, (str, os.PathLike)):
        dataset = MSGPDataset(source)
    else:
        raise ArgumentTypeError(f"source must be a path, a DatasetSpec, an MSGPDataset or a GeneratedDataset, "
                        f"but got {source!r}")
    C = dataset.spec.n_classes
    for name, count in (("n_train", n_train), ("n_test", n_test)):
        if count % C:
            below, above = count - count % C, count - count % C + C
            raise SplitError(f"{name}={count} cannot be balanced over {C} classes; "
                             f"use a multiple of {C}, e.g. {below} or {above}")
    if n_train + n_test > len(dataset):
        raise SplitError(f"n_train + n_test = {n_train} + {n_test} = {n_train + n_test} is more than the "
                         f"{len(dataset)} samples")
    rng = np.random.default_rng(seed)
    train, test = [], []
    per_train, per_test = n_train // C, n_test // C
    for c in range(C):
        members = np.flatnonzero(dataset.labels == c)
        if len(members) < per_train + per_test:
            raise SplitError(f"class {dataset.spec.class_names[c]} has {len(members)} samples, "
                             f"fewer than the {per_train} + {per_test} a balanced split needs")
        members = rng.permutation(members)
        train.append(members[:per_train])
        test.append(members[per_train:per_train + per_test])
    options = {"target": dataset.target, "transform": dataset.transform,
               "target_transform": dataset.target_transform, **options}
    return tuple(dataset._select(np.sort(np.concatenate(part)), **options) for part in (train, test))


def _check_indices(indices, n: int) -> np.ndarray:
    """``indices`` as an int64 array; a TypeError unless they are integers, a ValueError unless they
    are 1-D, and (as a list would) an IndexError for one beyond ``0`` to ``n - 1``."""
    if indices is None:
        return np.arange(n, dtype=np.int64)
    what = "a 1-D sequence of sample indices (integers)"
    array = np.asarray(indices) if not isinstance(indices, (str, bytes)) else None
    if array is None or array.ndim == 0 or not (array.size == 0 or np.issubdtype(array.dtype, np.integer)):
        raise ArgumentTypeError(f"indices must be {what}, but got {indices!r}")
    if array.ndim != 1:
        raise ArgumentError(f"indices must be {what}, but got an array of shape {array.shape}")
    if array.size and (array.min() < 0 or array.max() >= n):
        raise ArgumentIndexError(f"indices must lie in 0 to {n - 1}, but got {array.min()} to {array.max()}")
    return array.astype(np.int64)
