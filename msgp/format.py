"""HDF5 format version 1: what an msgp file holds, and opening one to read it.

Layout (root of the file)::

    fields        (n, *shape)      float32 | float16   one sample per chunk
    labels        (n,)             int64               class label, sum_s choice_s * M**s
    scale_labels  (n, K)           uint8               choice of each scale
    components    (n, K, *shape)   float32 | float16   only with save_components

Root attributes: those of :meth:`DatasetSpec.to_attrs`, plus ``msgp_version``, ``n_written``
(samples written so far, in order), ``complete`` (true only after the last sample is written
and flushed) and ``file_id`` (a random identity drawn when the file is created and kept by a
resumed write; files written before it was introduced have none, and still read).

A shard file (written with ``shard=(i, N)``) holds samples ``shard_start`` to ``shard_stop`` of
the dataset of ``n`` samples its attributes describe, with ``shard_index`` and ``shard_count``;
its datasets have ``shard_stop - shard_start`` rows and ``n_written`` counts within the shard. A
merged file (:func:`msgp.merge.merge`) has the layout and attributes of a single-run file, its
datasets virtual, mapping the shards' by relative paths.

Writing is :mod:`msgp.writer`'s, merging and checking a file's integrity :mod:`msgp.merge`'s;
:mod:`msgp.io` gathers the three.
"""
from __future__ import annotations

import errno
import os
import uuid
from pathlib import Path

import h5py
import numpy as np

from .checks import Checks
from .errors import ArgumentError, FileError, FormatError, SpecError
from .spec import FORMAT, FORMAT_VERSION, DatasetSpec

__all__ = ["DEFAULT_PATH", "check_output", "file_id", "human_bytes", "new_file_id", "open_file", "open_h5",
           "os_reason", "raw_rows", "read_spec", "sample_bytes", "shard_of", "shard_range"]

DEFAULT_PATH = Path("data") / "msgp.h5"
_ARGS = Checks(quote=True)


def sample_bytes(spec: DatasetSpec) -> int:
    """Uncompressed bytes per sample, all datasets together."""
    per_field = int(np.prod(spec.shape)) * np.dtype(spec.dtype).itemsize
    return per_field * (1 + (spec.n_scales if spec.save_components else 0)) + 8 + spec.n_scales


def shard_range(n: int, index: int, count: int) -> tuple[int, int]:
    """Samples ``[start, stop)`` of shard ``index`` of ``count``: contiguous, disjoint, sizes within 1."""
    index, count = _ARGS.shard("shard", (index, count))
    if count > n:
        raise ArgumentError(f"cannot split {n} samples into {count} shards; use at most {n} shards")
    return index * n // count, (index + 1) * n // count


def shard_of(f: h5py.File) -> tuple[int, int] | None:
    """``(index, count)`` of a shard file, ``None`` for a whole dataset."""
    if "shard_index" not in f.attrs:
        return None
    return int(f.attrs["shard_index"]), int(f.attrs["shard_count"])


def new_file_id() -> str:
    """A random identity for a file being created: 32 hexadecimal digits (a UUID4)."""
    return uuid.uuid4().hex


def file_id(f: h5py.File) -> str | None:
    """The identity ``f`` was given when it was created; ``None`` for a file written before msgp
    wrote one. A file written again at the same path (``overwrite=True``, or merged again) has
    another one; a resumed file keeps its own."""
    value = f.attrs.get("file_id")
    return None if value is None else value.decode() if isinstance(value, bytes) else str(value)


def raw_rows(dataset: h5py.Dataset) -> bool:
    """Whether each row of ``dataset`` is one unfiltered chunk of its own, so that a row can be read
    or written as raw chunk bytes, skipping HDF5's selection and conversion machinery (which costs
    more than the copy itself for small fields)."""
    return (not dataset.is_virtual and dataset.id.get_create_plist().get_nfilters() == 0
            and dataset.chunks == (1,) + dataset.shape[1:])


def check_output(path: Path, overwrite: bool, *, parent_must_exist: bool = True) -> None:
    """Refuse to write a new file at ``path`` that names a directory, or a file that is there
    without ``overwrite``, or (with ``parent_must_exist``) a file in a directory that does not exist."""
    if path.is_dir():
        raise FileError(f"{path} is a directory, not a file")
    if path.exists() and not overwrite:
        raise FileError(f"{path} already exists; pass `overwrite=True` to replace it")
    if parent_must_exist and not path.parent.is_dir():
        raise FileError(f"cannot write {path}: the directory {path.parent} does not exist")


def read_spec(path: str | os.PathLike, require_complete: bool = False) -> DatasetSpec:
    """The description stored in an msgp file."""
    with open_file(path, require_complete=require_complete) as (_, spec):
        return spec


class open_file:
    """Open an msgp file for reading: ``with open_file(path) as (h5file, spec): ...``.

    Raises :class:`FormatError` with a one-line reason when ``path`` is missing, not HDF5, not
    msgp format 1, or (with ``require_complete``) not completely written. The open file and its
    description are also the attributes ``file`` and ``spec``, for a caller that keeps the file
    open beyond a ``with`` block (and closes it).
    """

    def __init__(self, path: str | os.PathLike, require_complete: bool = True):
        self.file, self.spec = _open(Path(path), require_complete)

    def __enter__(self):
        return self.file, self.spec

    def __exit__(self, *exc):
        self.file.close()


def open_h5(path: str | os.PathLike, mode: str = "r") -> h5py.File:
    """``h5py.File(path, mode)``, or the reason it cannot be opened in one line: a
    :class:`FormatError` for reading (``mode="r"``), a :class:`FileError` for writing. Every msgp
    file is opened here.

    HDF5 locks a file while it is open: shared by readers, exclusive to a writer. msgp keeps that
    locking (h5py's default; ``locking=False`` would turn it off): it is what keeps a reader from
    reading samples a writer has not finished, and a writer from changing a file under a reader.
    A file that is locked against us is reported as such, with what to do about it.
    """
    path = Path(path)
    if mode != "w" and not path.exists():
        raise FormatError(f"{path} does not exist")
    if path.is_dir():
        raise FormatError(f"{path} is a directory, not an msgp file")
    try:
        return h5py.File(path, mode)
    except OSError as err:
        # h5py raises BlockingIOError (errno EAGAIN) when HDF5 cannot take the lock; the text is
        # checked too, for a build that reports it as a plain OSError.
        locked = (isinstance(err, BlockingIOError) or err.errno in (errno.EAGAIN, errno.EWOULDBLOCK)
                  or "unable to lock file" in str(err))
        if locked and mode == "r":
            raise FormatError(f"{path} is being written by another process (HDF5 locks a file while it is "
                              "written); wait until that process is done, e.g. until msgp generate has "
                              "finished the file, and try again") from None
        if locked:
            raise FileError(f"cannot write {path}: another process has it open (HDF5 locks a file while it is "
                            "read or written); close it there, or wait until that process is done") from None
        if mode == "r":
            raise FormatError(f"{path} is not an HDF5 file (or is damaged)") from None
        raise FileError(f"cannot write {path}: {os_reason(err)}") from None


def _open(path: Path, require_complete: bool):
    f = open_h5(path)
    try:
        attrs = f.attrs
        if attrs.get("format") not in (FORMAT, FORMAT.encode()):
            raise FormatError(f"{path} is not an msgp file (no format='msgp' attribute)")
        version = int(attrs.get("format_version", -1))
        if version != FORMAT_VERSION:
            raise FormatError(f"{path} is msgp format version {version}; this msgp reads version {FORMAT_VERSION}")
        try:
            spec = DatasetSpec.from_attrs(attrs)
        except (KeyError, SpecError, ValueError, TypeError) as err:
            raise FormatError(f"{path} has damaged msgp attributes: {err}") from None
        _check_shards_present(path, f)
        if require_complete and not bool(attrs.get("complete", False)):
            written = int(attrs.get("n_written", 0))
            raise FormatError(f"{path} is incomplete ({written} of {spec.n} samples written); "
                              "generate it again (or resume it)")
    except Exception:
        f.close()
        raise
    return f, spec


def _check_shards_present(path: Path, f: h5py.File) -> None:
    """Refuse a merged file one of whose shards is missing."""
    for name in f:
        if isinstance(f[name], h5py.Dataset) and f[name].is_virtual:
            for source in {m.file_name for m in f[name].virtual_sources()}:
                if not (path.parent / source).is_file():
                    raise FormatError(f"{path} is merged from shards, but its shard {source} is missing "
                                      "(keep the shards at the same place relative to the merged file)")


def os_reason(err: OSError) -> str:
    """Why an operation on a file failed, in a few words: ``"no space left on device"``, or the
    system's text."""
    if getattr(err, "errno", None) == errno.ENOSPC or "No space left" in str(err):
        return "no space left on device"
    return err.strerror or str(err).splitlines()[0]


def human_bytes(nbytes: float) -> str:
    """``nbytes`` in decimal units: ``"512 B"``, ``"1.5 MB"``."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(nbytes) < 1000 or unit == "TB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1000
    return f"{nbytes:.1f} TB"
