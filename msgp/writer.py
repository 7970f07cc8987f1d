"""Writing an msgp file (:func:`write`): the samples of a description, or of one shard of it,
drawn in batches by this process or by worker processes, into the layout of :mod:`msgp.format`.

A file is made under another name and renamed once every dataset is allocated, so a kill during
creation leaves the old file or none. After every batch the data are flushed before ``n_written``
is raised and flushed, so a run stopped at any moment (an exception, a kill) leaves a file whose
first ``n_written`` samples are final and ``complete=False``, which ``resume=True`` finishes.
"""
from __future__ import annotations

import itertools
import os
import shutil
import signal
import time
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import shared_memory
from pathlib import Path
from typing import Callable

import h5py
import numpy as np

from .checks import Checks
from .errors import ArgumentError, FileError, FormatError
from .format import DEFAULT_PATH, check_output, human_bytes, new_file_id, open_file, open_h5, os_reason, raw_rows, \
    sample_bytes, shard_of, shard_range
from .generate import Batch, Sampler, batch_rows
from .spec import DatasetSpec
from .version import __version__

__all__ = ["DEVICES", "WriteResult", "create", "write"]

DEVICES = ("cpu", "cuda")
_ARGS = Checks(quote=True)


@dataclass
class WriteResult:
    path: Path
    n: int
    seconds: float
    bytes_on_disk: int
    class_counts: np.ndarray
    generated: int  # samples drawn by this run (fewer than n after a resume)


def write(spec: DatasetSpec, path: str | os.PathLike = DEFAULT_PATH, *, overwrite: bool = False,
          resume: bool = False, shard: tuple[int, int] | None = None, workers: int = 1,
          device: str = "cpu", batch_size: int = 32, fft_workers: int = 1,
          progress: Callable[[int], None] | None = None) -> WriteResult:
    """Generate the dataset ``spec`` (or one shard of it) into ``path``.

    Parameters
    ----------
    spec : the dataset description.
    path : the HDF5 file to write; its directory is made if it is missing.
    overwrite : replace an existing file.
    resume : finish an incomplete file written with the same ``spec`` and ``shard``; the samples
        after its ``n_written`` are generated again. A complete file is only read, and left as it
        is, whoever else reads it. Not with ``overwrite``.
    shard : ``(index, count)``: write only the samples of :func:`~msgp.format.shard_range`;
        :func:`~msgp.merge.merge` joins the shards into one file.
    workers : processes drawing samples; 1 draws in this process. The file is the same for any
        ``workers`` and ``batch_size``: sample i depends on (spec, i) alone.
    device : ``"cpu"``, or ``"cuda"`` for inverse FFTs on the GPU with torch (one process).
    batch_size : samples per batched inverse FFT, and per write; capped at
        :data:`~msgp.generate.BATCH_PIXELS` pixels per batch so that memory stays bounded for
        large fields.
    fft_workers : threads for each batched inverse FFT.
    progress : ``progress(k)`` is called with the number of samples just added to the file, after
        they are flushed; on resume it is first called with the number already there.

    Raises
    ------
    ArgumentError : a bad argument; FileError : a path that cannot be written (there without
    ``overwrite``, no space, locked), or a file to resume that holds another dataset;
    DeviceUnavailable : ``device="cuda"`` without a CUDA device.
    """
    path = Path(path)
    _check_arguments(overwrite, resume, workers, device, batch_size, fft_workers)
    start, stop = (0, spec.n) if shard is None else shard_range(spec.n, *shard)
    sampler = _device_sampler(spec, device)
    began = time.perf_counter()
    f = _reopen(path, spec, shard) if resume else _create_at(path, spec, shard, overwrite)
    with f:
        first = start + int(f.attrs["n_written"])
        if first > start and progress is not None:
            progress(first - start)
        rows = min(batch_size, batch_rows(spec.shape))
        ranges = [(a, min(a + rows, stop)) for a in range(first, stop, rows)]
        _fill(f, path, spec, _draw(spec, sampler, ranges, workers, fft_workers), start, stop, progress)
        counts = np.bincount(f["labels"][:], minlength=spec.n_classes)
    seconds = time.perf_counter() - began
    return WriteResult(path, stop - start, seconds, path.stat().st_size, counts, stop - first)


def _check_arguments(overwrite: bool, resume: bool, workers: int, device: str, batch_size: int,
                     fft_workers: int) -> None:
    if _ARGS.flag("resume", resume) and _ARGS.flag("overwrite", overwrite):
        raise ArgumentError("`resume=True` and `overwrite=True` contradict each other; pass one")
    for name, value in (("workers", workers), ("batch_size", batch_size), ("fft_workers", fft_workers)):
        _ARGS.integer(name, value, 1, what="at least 1")
    _ARGS.choice("device", device, DEVICES, "'cpu' or 'cuda'")


def _fill(f: h5py.File, path: Path, spec: DatasetSpec, batches, start: int, stop: int, progress) -> None:
    """Append ``batches`` to ``f`` (whose row 0 is sample ``start``), then mark it complete."""
    written = int(f.attrs["n_written"])
    try:
        for batch in batches:
            a, written = batch.start - start, _append(f, batch, start)
            if progress is not None:
                progress(written - a)
        if not bool(f.attrs["complete"]):
            f.attrs.modify("complete", True)
            f.flush()
    except OSError as err:
        raise FileError(f"writing {path} failed after {written} of {stop - start} samples: {os_reason(err)}; "
                        "the file is marked incomplete") from None


def _append(f: h5py.File, batch: Batch, start: int) -> int:
    """Write ``batch`` at its rows, flush, then raise ``n_written`` to its end (returned) and flush."""
    a = batch.start - start
    b = a + len(batch.labels)
    _write_rows(f["fields"], a, batch.fields)
    f["labels"][a:b] = batch.labels
    f["scale_labels"][a:b] = batch.scale_labels
    if batch.components is not None:
        _write_rows(f["components"], a, batch.components)
    f.flush()
    f.attrs.modify("n_written", b)
    f.flush()
    return b


def _write_rows(dataset: h5py.Dataset, start: int, rows: np.ndarray) -> None:
    """``dataset[start:start + len(rows)] = rows``, as raw chunks where :func:`raw_rows` allows."""
    if raw_rows(dataset):
        zeros = (0,) * (dataset.ndim - 1)
        for i, row in enumerate(np.ascontiguousarray(rows, dtype=dataset.dtype)):
            dataset.id.write_direct_chunk((start + i,) + zeros, row)
    else:
        dataset[start:start + len(rows)] = rows


# A new file -----------------------------------------------------------------------------------

def create(path: Path, spec: DatasetSpec, shard: tuple[int, int] | None = None) -> h5py.File:
    """A new file with every dataset allocated and ``complete=False``.

    With ``shard=(index, count)`` the file holds only that shard's samples, and records the range
    in the attributes ``shard_index``, ``shard_count``, ``shard_start`` and ``shard_stop``.
    """
    start, stop = (0, spec.n) if shard is None else shard_range(spec.n, *shard)
    rows = stop - start
    f = h5py.File(path, "w")
    f.attrs.update(spec.to_attrs())
    f.attrs["msgp_version"] = __version__
    f.attrs["file_id"] = new_file_id()
    if shard is not None:
        f.attrs.update({"shard_index": shard[0], "shard_count": shard[1], "shard_start": start, "shard_stop": stop})
    f.attrs["n_written"] = 0
    f.attrs["complete"] = False
    options = {"compression": spec.compression} if spec.compression else {"dcpl": _early_allocation()}
    f.create_dataset("fields", (rows,) + spec.shape, dtype=spec.dtype, chunks=(1,) + spec.shape,
                     fill_time="never", **options)
    f.create_dataset("labels", (rows,), dtype=np.int64)
    f.create_dataset("scale_labels", (rows, spec.n_scales), dtype=np.uint8)
    if spec.save_components:
        options = {"compression": spec.compression} if spec.compression else {"dcpl": _early_allocation()}
        f.create_dataset("components", (rows, spec.n_scales) + spec.shape, dtype=spec.dtype,
                         chunks=(1, spec.n_scales) + spec.shape, fill_time="never", **options)
    f.flush()
    return f


def _early_allocation():
    # Every chunk gets its place in the file, and the chunk index its final form, before the
    # first sample is written. Afterwards a batch only writes raw data and rewrites n_written in
    # place, so a process killed at any moment leaves consistent metadata behind.
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
    return dcpl


def _create_at(path: Path, spec: DatasetSpec, shard: tuple[int, int] | None, overwrite: bool) -> h5py.File:
    """``path`` made anew for ``spec`` (or its shard) and opened for writing. Created under another
    name and renamed when every dataset is allocated, so that a kill during creation leaves the
    old file or none, never a half-made one at ``path``."""
    start, stop = (0, spec.n) if shard is None else shard_range(spec.n, *shard)
    _check_room(path, spec, overwrite, stop - start)
    partial = path.with_name(path.name + ".partial")
    try:
        create(partial, spec, shard).close()
        os.replace(partial, path)
    except OSError as err:
        partial.unlink(missing_ok=True)
        raise FileError(f"cannot write {path}: {os_reason(err)}") from None
    return open_h5(path, "r+")


def _check_room(path: Path, spec: DatasetSpec, overwrite: bool, n: int) -> None:
    """Refuse ``path`` unless ``n`` samples can be written there: not a directory, not there
    without ``overwrite``, its directory made and writable and, uncompressed, room on its disk."""
    check_output(path, overwrite, parent_must_exist=False)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise FileError(f"cannot create directory {path.parent}: {err.strerror or err}") from None
    if not os.access(path.parent, os.W_OK):
        raise FileError(f"directory {path.parent} is not writable")
    if spec.compression is None:
        needed = n * sample_bytes(spec)
        free = shutil.disk_usage(path.parent).free + (path.stat().st_size if path.exists() else 0)
        if needed > free:
            raise FileError(f"not enough disk space for {path}: needs {human_bytes(needed)}, {human_bytes(free)} free")


# Resuming -------------------------------------------------------------------------------------

def _reopen(path: Path, spec: DatasetSpec, shard: tuple[int, int] | None) -> h5py.File:
    """``path`` opened to be finished, after checking it holds ``spec`` (and ``shard``): for writing
    when samples are missing; read-only when it is complete, since then there is nothing to write
    and a writer could not open it while another process reads it."""
    try:
        opened = open_file(path, require_complete=False)
    except FormatError as err:
        raise FileError(f"cannot resume: {err}") from None
    f = opened.file
    try:
        differences = opened.spec.differences_from(spec)
        if shard_of(f) != (None if shard is None else tuple(shard)):
            have = "no shard" if shard_of(f) is None else "shard {}/{}".format(*shard_of(f))
            want = "no shard" if shard is None else "shard {}/{}".format(*shard)
            differences.append(f"{have} instead of {want}")
        if differences:
            raise FileError(f"cannot resume {path}: it was written with other parameters "
                            f"({'; '.join(differences)}); pass `overwrite=True` to start it again")
        if bool(f.attrs["complete"]):
            return f
    except BaseException:
        f.close()
        raise
    f.close()
    return open_h5(path, "r+")


# Drawing the samples: in this process, on a device, or in worker processes ---------------------

def _device_sampler(spec: DatasetSpec, device: str):
    """The sampler of this process: ``None`` for the CPU (built lazily, where it is used)."""
    if device == "cpu":
        return None
    from . import gpu

    return gpu.TorchSampler(spec, device="cuda")


def _draw(spec: DatasetSpec, sampler, ranges, workers: int, fft_workers: int):
    """The batches of ``ranges``, in order; with several workers at most 2 per worker in flight.

    Worker processes hand their fields over through shared memory, one slot per batch in flight:
    pickling them through a pipe costs about as much as drawing them.
    """
    if sampler is not None or workers == 1 or len(ranges) <= 1:
        sampler = sampler or Sampler(spec, fft_workers=fft_workers)
        for a, b in ranges:
            yield sampler.batch(a, b)
        return
    rows = max(b - a for a, b in ranges)
    slots = [shared_memory.SharedMemory(create=True, size=_slot_bytes(spec, rows)) for _ in range(2 * workers)]
    pool = ProcessPoolExecutor(min(workers, len(ranges)), initializer=_init_worker,
                               initargs=(spec, fft_workers, [slot.name for slot in slots], rows))
    try:
        todo = iter(ranges)
        pending = deque(pool.submit(_worker_batch, a, b, k) for k, (a, b) in zip(range(len(slots)), todo))
        while pending:
            batch, k = pending.popleft().result()
            fields, components = _slot_arrays(spec, slots[k].buf, rows)
            n = len(batch.labels)
            batch.fields = fields[:n]
            batch.components = None if components is None else components[:n]
            del fields, components
            yield batch
            # The consumer is done with the slot: drop every view of it before it is reused
            # (and before it is closed, which views would forbid).
            batch.fields = batch.components = None
            for a, b in itertools.islice(todo, 1):
                pending.append(pool.submit(_worker_batch, a, b, k))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        for slot in slots:
            slot.close()
            slot.unlink()


def _slot_bytes(spec: DatasetSpec, rows: int) -> int:
    per_field = int(np.prod(spec.shape)) * np.dtype(spec.dtype).itemsize
    return rows * per_field * (1 + (spec.n_scales if spec.save_components else 0))


def _slot_arrays(spec: DatasetSpec, buffer, rows: int):
    """Views of a shared-memory slot as the fields ``(rows, *shape)`` and the components."""
    fields = np.ndarray((rows,) + spec.shape, spec.dtype, buffer=buffer)
    if not spec.save_components:
        return fields, None
    components = np.ndarray((rows, spec.n_scales) + spec.shape, spec.dtype, buffer=buffer, offset=fields.nbytes)
    return fields, components


_worker: dict = {}


def _init_worker(spec: DatasetSpec, fft_workers: int, slot_names: list[str], rows: int) -> None:
    # Ctrl-C reaches every process of the terminal's job; the parent alone answers it (it cancels
    # the batches not started, keeping the file resumable), so a worker does not print a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _worker["sampler"] = Sampler(spec, fft_workers=fft_workers)
    _worker["slots"] = [shared_memory.SharedMemory(name=name) for name in slot_names]
    _worker["rows"] = rows


def _worker_batch(start: int, stop: int, slot: int):
    """Draw samples ``start`` to ``stop`` into shared-memory slot ``slot``; return the labels."""
    sampler = _worker["sampler"]
    batch = sampler.batch(start, stop)
    fields, components = _slot_arrays(sampler.spec, _worker["slots"][slot].buf, _worker["rows"])
    fields[: len(batch.labels)] = batch.fields
    if components is not None:
        components[: len(batch.labels)] = batch.components
    batch.fields = batch.components = None
    return batch, slot
