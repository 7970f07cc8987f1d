"""HDF5 format version 1: writing a dataset, opening one, and checking its integrity.

Layout (root of the file)::

    fields        (n, *shape)      float32 | float16   one sample per chunk
    labels        (n,)             int64               class label, sum_s choice_s * M**s
    scale_labels  (n, K)           uint8               choice of each scale
    components    (n, K, *shape)   float32 | float16   only with save_components

Root attributes: those of :meth:`DatasetSpec.to_attrs`, plus ``msgp_version``, ``n_written``
(samples written so far, in order), ``complete`` (true only after the last sample is written
and flushed) and ``file_id`` (a random identity drawn when the file is created and kept by
``--resume``; files written before it was introduced have none, and still read).

A shard file (``msgp generate --shard i/N``) holds samples ``shard_start`` to ``shard_stop`` of
the dataset of ``n`` samples its attributes describe, with ``shard_index`` and ``shard_count``;
its datasets have ``shard_stop - shard_start`` rows and ``n_written`` counts within the shard. A
merged file (``msgp merge``) has the layout and attributes of a single-run file, its datasets
virtual, mapping the shards' by relative paths.
"""
from __future__ import annotations

import errno
import itertools
import os
import shutil
import signal
import time
import uuid
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import shared_memory
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import h5py
import numpy as np

from .version import __version__
from .generate import Sampler
from .spec import FORMAT, FORMAT_VERSION, DatasetSpec, SpecError

DEFAULT_PATH = Path("data") / "msgp.h5"
# A batch is at most this many pixels (4 samples of 1024²): its float64 and complex work arrays
# then take about 100 MB per process, whatever the field size.
BATCH_PIXELS = 2**22


class MSGPError(ValueError):
    """A problem with a file or a path, described in one line for the user."""


class FormatError(MSGPError):
    """The file is not a readable msgp format-1 file, or is incomplete."""


class ReplacedFileError(FormatError):
    """The file at a dataset's path is no longer the one the dataset was made from."""


@dataclass
class WriteResult:
    path: Path
    n: int
    seconds: float
    bytes_on_disk: int
    class_counts: np.ndarray
    generated: int  # samples drawn by this run (fewer than n after a resume)


def sample_bytes(spec: DatasetSpec) -> int:
    """Uncompressed bytes per sample, all datasets together."""
    per_field = int(np.prod(spec.shape)) * np.dtype(spec.dtype).itemsize
    return per_field * (1 + (spec.n_scales if spec.save_components else 0)) + 8 + spec.n_scales


def _prepare_path(path: Path, spec: DatasetSpec, overwrite: bool, n: int) -> None:
    if path.exists() and not overwrite:
        raise MSGPError(f"{path} already exists; pass --overwrite to replace it")
    if path.is_dir():
        raise MSGPError(f"{path} is a directory, not a file")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise MSGPError(f"cannot create directory {path.parent}: {err.strerror or err}") from None
    if not os.access(path.parent, os.W_OK):
        raise MSGPError(f"directory {path.parent} is not writable")
    if spec.compression is None:
        needed = n * sample_bytes(spec)
        free = shutil.disk_usage(path.parent).free + (path.stat().st_size if path.exists() else 0)
        if needed > free:
            raise MSGPError(f"not enough disk space for {path}: needs {_human(needed)}, {_human(free)} free")


def shard_range(n: int, index: int, count: int) -> tuple[int, int]:
    """Samples ``[start, stop)`` of shard ``index`` of ``count``: contiguous, disjoint, sizes within 1."""
    if not 0 <= index < count:
        raise MSGPError(f"shard {index}/{count} does not exist: shards of {count} are numbered 0 to {count - 1}")
    if count > n:
        raise MSGPError(f"cannot split {n} samples into {count} shards; use at most {n} shards")
    return index * n // count, (index + 1) * n // count


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


def write(spec: DatasetSpec, path: str | os.PathLike = DEFAULT_PATH, *, overwrite: bool = False,
          resume: bool = False, shard: tuple[int, int] | None = None, workers: int = 1,
          device: str = "cpu", batch_size: int = 32, fft_workers: int = 1,
          progress: Callable[[int], None] | None = None) -> WriteResult:
    """Generate the dataset ``spec`` (or one shard of it) into ``path``.

    Parameters
    ----------
    spec : the dataset description.
    path : the HDF5 file to write.
    overwrite : replace an existing file.
    resume : finish an incomplete file written with the same ``spec`` and ``shard``; the samples
        after its ``n_written`` are generated again. A complete file is only read, and left as it
        is, whoever else reads it.
    shard : ``(index, count)``: write only the samples of :func:`shard_range`; ``msgp merge``
        (:func:`merge`) joins the shards into one file.
    workers : processes drawing samples; 1 draws in this process. The file is the same for any
        ``workers`` and ``batch_size``: sample i depends on (spec, i) alone.
    device : ``"cpu"``, or ``"cuda"`` for inverse FFTs on the GPU with torch (one process).
    batch_size : samples per batched inverse FFT, and per write; capped at ``BATCH_PIXELS`` pixels
        per batch so that memory stays bounded for large fields.
    fft_workers : threads for each batched inverse FFT.
    progress : ``progress(k)`` is called with the number of samples just added to the file, after
        they are flushed; on resume it is first called with the number already there.

    After every batch the data are flushed before ``n_written`` is raised and flushed, so a run
    stopped at any moment (an exception, a kill) leaves a file whose first ``n_written`` samples
    are final and ``complete=False``.
    """
    path = Path(path)
    if workers < 1:
        raise MSGPError(f"workers must be at least 1, but got {workers}")
    if batch_size < 1:
        raise MSGPError(f"batch_size must be at least 1, but got {batch_size}")
    start, stop = (0, spec.n) if shard is None else shard_range(spec.n, *shard)
    sampler = _device_sampler(spec, device, fft_workers)
    began = time.perf_counter()
    if resume:
        f = _reopen(path, spec, shard)
    else:
        _prepare_path(path, spec, overwrite, stop - start)
        # Created under another name and renamed when complete, so that a kill during creation
        # leaves the old file or none, never a half-made one at ``path``.
        partial = path.with_name(path.name + ".partial")
        try:
            create(partial, spec, shard).close()
            os.replace(partial, path)
        except OSError as err:
            partial.unlink(missing_ok=True)
            raise MSGPError(f"cannot write {path}: {_os_reason(err)}") from None
        f = open_h5(path, "r+")
    with f:
        complete = bool(f.attrs["complete"])
        written = int(f.attrs["n_written"])
        if written and progress is not None:
            progress(written)
        first = start + written
        batch_size = min(batch_size, max(1, BATCH_PIXELS // int(np.prod(spec.shape))))
        ranges = [(a, min(a + batch_size, stop)) for a in range(first, stop, batch_size)]
        try:
            for batch in _draw(spec, sampler, ranges, workers, fft_workers):
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
                written = b
                if progress is not None:
                    progress(b - a)
            if not complete:
                f.attrs.modify("complete", True)
                f.flush()
        except OSError as err:
            raise MSGPError(f"writing {path} failed after {written} of {stop - start} samples: {_os_reason(err)}; "
                            "the file is marked incomplete") from None
        counts = np.bincount(f["labels"][:], minlength=spec.n_classes)
    seconds = time.perf_counter() - began
    return WriteResult(path, stop - start, seconds, path.stat().st_size, counts, stop - first)


def raw_rows(dataset: h5py.Dataset) -> bool:
    """Whether each row of ``dataset`` is one unfiltered chunk of its own, so that a row can be read
    or written as raw chunk bytes, skipping HDF5's selection and conversion machinery (which costs
    more than the copy itself for small fields)."""
    return (not dataset.is_virtual and dataset.id.get_create_plist().get_nfilters() == 0
            and dataset.chunks == (1,) + dataset.shape[1:])


def _write_rows(dataset: h5py.Dataset, start: int, rows: np.ndarray) -> None:
    """``dataset[start:start + len(rows)] = rows``, as raw chunks where :func:`raw_rows` allows."""
    if raw_rows(dataset):
        zeros = (0,) * (dataset.ndim - 1)
        for i, row in enumerate(np.ascontiguousarray(rows, dtype=dataset.dtype)):
            dataset.id.write_direct_chunk((start + i,) + zeros, row)
    else:
        dataset[start:start + len(rows)] = rows


def _device_sampler(spec: DatasetSpec, device: str, fft_workers: int):
    """The sampler of this process: ``None`` for the CPU (built lazily, where it is used)."""
    if device == "cpu":
        return None
    if device != "cuda":
        raise MSGPError(f"device must be 'cpu' or 'cuda', but got {device!r}")
    from . import gpu

    try:
        return gpu.TorchSampler(spec, device="cuda")
    except gpu.DeviceUnavailable as err:
        raise MSGPError(str(err)) from None


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


def _reopen(path: Path, spec: DatasetSpec, shard: tuple[int, int] | None) -> h5py.File:
    """``path`` opened to be finished, after checking it holds ``spec`` (and ``shard``): for writing
    when samples are missing; read-only when it is complete, since then there is nothing to write
    and a writer could not open it while another process reads it."""
    try:
        f, stored = _open(path, require_complete=False)
    except FormatError as err:
        raise MSGPError(f"cannot resume: {err}") from None
    try:
        differences = _differences(stored, spec)
        if shard_of(f) != (None if shard is None else tuple(shard)):
            have = "no shard" if shard_of(f) is None else "shard {}/{}".format(*shard_of(f))
            want = "no shard" if shard is None else "shard {}/{}".format(*shard)
            differences.append(f"{have} instead of {want}")
        if differences:
            raise MSGPError(f"cannot resume {path}: it was written with other parameters "
                            f"({'; '.join(differences)}); pass --overwrite to start it again")
        if bool(f.attrs["complete"]):
            return f
    except BaseException:
        f.close()
        raise
    f.close()
    return open_h5(path, "r+")


def _differences(stored: DatasetSpec, wanted: DatasetSpec) -> list[str]:
    a, b = stored.to_dict(), wanted.to_dict()
    return [f"{key} {a[key]} instead of {b[key]}" for key in a if a[key] != b[key]]


def shard_of(f: h5py.File) -> tuple[int, int] | None:
    """``(index, count)`` of a shard file, ``None`` for a whole dataset."""
    if "shard_index" not in f.attrs:
        return None
    return int(f.attrs["shard_index"]), int(f.attrs["shard_count"])


def merge(shards, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Join complete shards of one dataset into ``path`` without copying: HDF5 virtual datasets.

    The shards must hold the same dataset description and together cover samples 0 to n once
    (contiguous, no overlap, no gap). The virtual datasets name the shards by paths relative to
    the directory of ``path``, so that directory can be moved together with the shards. The
    merged file has the attributes of a single-run file, and reads like one.
    """
    path = Path(path)
    if not shards:
        raise MSGPError("no shards to merge")
    if any(Path(shard).resolve() == path.resolve() for shard in shards):
        # Overwriting a shard with a map of itself would lose its samples (and crash HDF5 on reading).
        raise MSGPError(f"{path} is one of the shards to merge; write the merged file elsewhere")
    parts = []
    for shard in map(Path, shards):
        with open_file(shard, require_complete=False) as (f, spec):
            if shard_of(f) is None:
                raise MSGPError(f"{shard} is not a shard (no shard_index attribute); "
                                "write shards with msgp generate --shard i/N")
            start, stop = int(f.attrs["shard_start"]), int(f.attrs["shard_stop"])
            if not bool(f.attrs["complete"]):
                raise MSGPError(f"shard {shard} is incomplete ({int(f.attrs['n_written'])} of {stop - start} "
                                "samples written); finish it with --resume")
            parts.append((start, stop, shard, spec, str(f.attrs["msgp_version"])))
    parts.sort(key=lambda part: part[:2])
    spec = parts[0][3]
    for _, _, shard, other, _ in parts[1:]:
        differences = _differences(other, spec)
        if differences:
            raise MSGPError(f"{shard} belongs to another dataset than {parts[0][2]} ({'; '.join(differences)})")
    position = 0
    for start, stop, shard, _, _ in parts:
        if start > position:
            raise MSGPError(f"samples {position} to {start - 1} are missing: no shard holds them")
        if start < position:
            raise MSGPError(f"{shard} overlaps another shard (samples {start} to {position - 1} twice)")
        position = stop
    if position < spec.n:
        raise MSGPError(f"samples {position} to {spec.n - 1} are missing: no shard holds them")
    if path.exists() and not overwrite:
        raise MSGPError(f"{path} already exists; pass --overwrite to replace it")
    datasets = {"fields": (spec.shape, spec.dtype, np.nan), "labels": ((), np.int64, -1),
                "scale_labels": ((spec.n_scales,), np.uint8, 255)}
    if spec.save_components:
        datasets["components"] = ((spec.n_scales,) + spec.shape, spec.dtype, np.nan)
    with open_h5(path, "w") as f:
        try:
            f.attrs.update(spec.to_attrs())
            f.attrs["msgp_version"] = parts[0][4]
            # The merged file is a file of its own: a dataset made from it must notice if it is merged again.
            f.attrs["file_id"] = new_file_id()
            f.attrs["n_written"] = spec.n
            f.attrs["complete"] = True
            for name, (shape, dtype, fill) in datasets.items():
                layout = h5py.VirtualLayout((spec.n,) + shape, dtype)
                for start, stop, shard, _, _ in parts:
                    source = os.path.relpath(shard.resolve(), path.resolve().parent)
                    layout[start:stop] = h5py.VirtualSource(source, name, shape=(stop - start,) + shape)
                f.create_virtual_dataset(name, layout, fillvalue=fill)
        except OSError as err:
            raise MSGPError(f"cannot write {path}: {_os_reason(err)}") from None
    return path


def read_spec(path: str | os.PathLike, require_complete: bool = False) -> DatasetSpec:
    """The description stored in an msgp file."""
    with open_file(path, require_complete=require_complete) as (_, spec):
        return spec


class open_file:
    """Open an msgp file for reading: ``with open_file(path) as (h5file, spec): ...``.

    Raises :class:`FormatError` with a one-line reason when ``path`` is missing, not HDF5, not
    msgp format 1, or (with ``require_complete``) not completely written.
    """

    def __init__(self, path: str | os.PathLike, require_complete: bool = True):
        self.file, self.spec = _open(Path(path), require_complete)

    def __enter__(self):
        return self.file, self.spec

    def __exit__(self, *exc):
        self.file.close()


def open_h5(path: str | os.PathLike, mode: str = "r") -> h5py.File:
    """``h5py.File(path, mode)``, or the reason it cannot be opened in one line: a
    :class:`FormatError` for reading (``mode="r"``), an :class:`MSGPError` for writing. Every msgp
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
            raise MSGPError(f"cannot write {path}: another process has it open (HDF5 locks a file while it is "
                            "read or written); close it there, or wait until that process is done") from None
        if mode == "r":
            raise FormatError(f"{path} is not an HDF5 file (or is damaged)") from None
        raise MSGPError(f"cannot write {path}: {_os_reason(err)}") from None


def new_file_id() -> str:
    """A random identity for a file being created: 32 hexadecimal digits (a UUID4)."""
    return uuid.uuid4().hex


def file_id(f: h5py.File) -> str | None:
    """The identity ``f`` was given when it was created; ``None`` for a file written before msgp
    wrote one. A file written again at the same path (``--overwrite``, or ``msgp merge`` again) has
    another one; a resumed file keeps its own."""
    value = f.attrs.get("file_id")
    return None if value is None else value.decode() if isinstance(value, bytes) else str(value)


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
        for name in f:
            if isinstance(f[name], h5py.Dataset) and f[name].is_virtual:
                for source in {m.file_name for m in f[name].virtual_sources()}:
                    if not (path.parent / source).is_file():
                        raise FormatError(f"{path} is merged from shards, but its shard {source} is missing "
                                          "(keep the shards at the same place relative to the merged file)")
        if require_complete and not bool(attrs.get("complete", False)):
            written = int(attrs.get("n_written", 0))
            raise FormatError(f"{path} is incomplete ({written} of {spec.n} samples written); "
                              "generate it again (or resume it)")
    except Exception:
        f.close()
        raise
    return f, spec


def inspect(path: str | os.PathLike, regenerate: int = 1) -> dict:
    """Parameters, class counts, completeness and an integrity check of an msgp file.

    The integrity check verifies the datasets' shapes and dtypes against the attributes, that
    ``labels`` and ``scale_labels`` agree with each other and with the labels the seed
    determines, that the first ``regenerate`` samples are finite and regenerate from the seed
    (to float rounding), and that the file is complete.
    """
    with open_file(path, require_complete=False) as (f, spec):
        problems = []
        n_written = int(f.attrs.get("n_written", 0))
        complete = bool(f.attrs.get("complete", False))
        shard = shard_of(f)
        start, stop = (0, spec.n) if shard is None else shard_range(spec.n, *shard)
        rows = stop - start
        expected = {"fields": (rows,) + spec.shape, "labels": (rows,), "scale_labels": (rows, spec.n_scales)}
        if spec.save_components:
            expected["components"] = (rows, spec.n_scales) + spec.shape
        for name, shape in expected.items():
            if name not in f:
                problems.append(f"dataset {name!r} is missing")
            elif f[name].shape != shape:
                problems.append(f"dataset {name!r} has shape {f[name].shape}, expected {shape}")
        labels = f["labels"][:n_written] if "labels" in f else np.zeros(0, np.int64)
        sampler = Sampler(spec)
        if not problems and n_written:
            if not np.array_equal(labels, sampler.labels(start, start + n_written)):
                problems.append("labels differ from those the seed determines")
            if not np.array_equal(f["scale_labels"][:n_written], spec.choices(labels)):
                problems.append("scale_labels disagree with labels")
            k = min(regenerate, n_written)
            if k:
                stored = f["fields"][:k].astype(np.float64)
                fresh = sampler.batch(start, start + k).fields.astype(np.float64)
                if not np.all(np.isfinite(stored)):
                    problems.append("fields contain NaN or infinite values")
                elif np.max(np.abs(stored - fresh)) > 1e-3 * max(np.max(np.abs(fresh)), 1.0):
                    problems.append(f"the first {k} fields do not regenerate from the seed")
        if not complete:
            problems.append(f"incomplete: {n_written} of {rows} samples written")
        return {
            "path": str(path),
            "format_version": int(f.attrs["format_version"]),
            "msgp_version": str(f.attrs.get("msgp_version", "?")),
            "spec": spec.to_dict(),
            "class_names": list(spec.class_names),
            "class_counts": np.bincount(labels, minlength=spec.n_classes).tolist(),
            "n_written": n_written,
            "complete": complete,
            "file_id": file_id(f),
            "shard": None if shard is None else {"index": shard[0], "count": shard[1], "start": start, "stop": stop},
            "bytes_on_disk": Path(path).stat().st_size,
            "ok": not problems,
            "problems": problems,
        }


def _os_reason(err: OSError) -> str:
    if getattr(err, "errno", None) == errno.ENOSPC or "No space left" in str(err):
        return "no space left on device"
    return err.strerror or str(err).splitlines()[0]


def _human(nbytes: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(nbytes) < 1000 or unit == "TB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1000
    return f"{nbytes:.1f} TB"


human_bytes = _human
