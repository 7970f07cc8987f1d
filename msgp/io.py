"""HDF5 format version 1: writing a dataset, opening one, and checking its integrity.

Layout (root of the file)::

    fields        (n, *shape)      float32 | float16   one sample per chunk
    labels        (n,)             int64               class label, sum_s choice_s * M**s
    scale_labels  (n, K)           uint8               choice of each scale
    components    (n, K, *shape)   float32 | float16   only with save_components

Root attributes: those of :meth:`DatasetSpec.to_attrs`, plus ``msgp_version``, ``n_written``
(samples written so far, in order) and ``complete`` (true only after the last sample is written
and flushed).
"""
from __future__ import annotations

import errno
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import h5py
import numpy as np

from . import __version__
from .generate import Sampler
from .spec import FORMAT, FORMAT_VERSION, DatasetSpec, SpecError

DEFAULT_PATH = Path("data") / "msgp.h5"


class MSGPError(ValueError):
    """A problem with a file or a path, described in one line for the user."""


class FormatError(MSGPError):
    """The file is not a readable msgp format-1 file, or is incomplete."""


@dataclass
class WriteResult:
    path: Path
    n: int
    seconds: float
    bytes_on_disk: int
    class_counts: np.ndarray


def sample_bytes(spec: DatasetSpec) -> int:
    """Uncompressed bytes per sample, all datasets together."""
    per_field = int(np.prod(spec.shape)) * np.dtype(spec.dtype).itemsize
    return per_field * (1 + (spec.n_scales if spec.save_components else 0)) + 8 + spec.n_scales


def _prepare_path(path: Path, spec: DatasetSpec, overwrite: bool) -> None:
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
        needed = spec.n * sample_bytes(spec)
        free = shutil.disk_usage(path.parent).free + (path.stat().st_size if path.exists() else 0)
        if needed > free:
            raise MSGPError(f"not enough disk space for {path}: needs {_human(needed)}, {_human(free)} free")


def create(path: Path, spec: DatasetSpec) -> h5py.File:
    """A new file with every dataset allocated and ``complete=False``."""
    f = h5py.File(path, "w")
    f.attrs.update(spec.to_attrs())
    f.attrs["msgp_version"] = __version__
    f.attrs["n_written"] = 0
    f.attrs["complete"] = False
    options = {"compression": spec.compression} if spec.compression else {}
    f.create_dataset("fields", (spec.n,) + spec.shape, dtype=spec.dtype, chunks=(1,) + spec.shape, **options)
    f.create_dataset("labels", (spec.n,), dtype=np.int64)
    f.create_dataset("scale_labels", (spec.n, spec.n_scales), dtype=np.uint8)
    if spec.save_components:
        f.create_dataset("components", (spec.n, spec.n_scales) + spec.shape, dtype=spec.dtype,
                         chunks=(1, spec.n_scales) + spec.shape, **options)
    f.flush()
    return f


def write(spec: DatasetSpec, path: str | os.PathLike = DEFAULT_PATH, *, overwrite: bool = False,
          batch_size: int = 32, fft_workers: int = 1,
          progress: Callable[[int], None] | None = None) -> WriteResult:
    """Generate the dataset ``spec`` into ``path``.

    ``progress(k)`` is called after each batch with the number of samples just written. If the
    run stops early (an exception, a kill), the file keeps ``complete=False``.
    """
    path = Path(path)
    _prepare_path(path, spec, overwrite)
    sampler = Sampler(spec, fft_workers=fft_workers)
    started = time.perf_counter()
    try:
        f = create(path, spec)
    except OSError as err:
        raise MSGPError(f"cannot write {path}: {_os_reason(err)}") from None
    with f:
        written = 0
        try:
            for start in range(0, spec.n, batch_size):
                batch = sampler.batch(start, min(start + batch_size, spec.n))
                stop = start + len(batch.labels)
                f["fields"][start:stop] = batch.fields
                f["labels"][start:stop] = batch.labels
                f["scale_labels"][start:stop] = batch.scale_labels
                if batch.components is not None:
                    f["components"][start:stop] = batch.components
                f.attrs["n_written"] = stop
                written = stop
                if progress is not None:
                    progress(stop - start)
            f.flush()
            f.attrs["complete"] = True
            f.flush()
        except OSError as err:
            raise MSGPError(f"writing {path} failed after {written} of {spec.n} samples: {_os_reason(err)}; "
                            "the file is marked incomplete") from None
    seconds = time.perf_counter() - started
    counts = np.bincount(sampler.labels(0, spec.n), minlength=spec.n_classes)
    return WriteResult(path, spec.n, seconds, path.stat().st_size, counts)


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


def _open(path: Path, require_complete: bool):
    if not path.exists():
        raise FormatError(f"{path} does not exist")
    if path.is_dir():
        raise FormatError(f"{path} is a directory, not an msgp file")
    try:
        f = h5py.File(path, "r")
    except OSError:
        raise FormatError(f"{path} is not an HDF5 file (or is damaged)") from None
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
        expected = {"fields": (spec.n,) + spec.shape, "labels": (spec.n,), "scale_labels": (spec.n, spec.n_scales)}
        if spec.save_components:
            expected["components"] = (spec.n, spec.n_scales) + spec.shape
        for name, shape in expected.items():
            if name not in f:
                problems.append(f"dataset {name!r} is missing")
            elif f[name].shape != shape:
                problems.append(f"dataset {name!r} has shape {f[name].shape}, expected {shape}")
        labels = f["labels"][:n_written] if "labels" in f else np.zeros(0, np.int64)
        sampler = Sampler(spec)
        if not problems and n_written:
            if not np.array_equal(labels, sampler.labels(0, n_written)):
                problems.append("labels differ from those the seed determines")
            if not np.array_equal(f["scale_labels"][:n_written], spec.choices(labels)):
                problems.append("scale_labels disagree with labels")
            k = min(regenerate, n_written)
            if k:
                stored = f["fields"][:k].astype(np.float64)
                fresh = sampler.batch(0, k).fields.astype(np.float64)
                if not np.all(np.isfinite(stored)):
                    problems.append("fields contain NaN or infinite values")
                elif np.max(np.abs(stored - fresh)) > 1e-3 * max(np.max(np.abs(fresh)), 1.0):
                    problems.append(f"the first {k} fields do not regenerate from the seed")
        if not complete:
            problems.append(f"incomplete: {n_written} of {spec.n} samples written")
        return {
            "path": str(path),
            "format_version": int(f.attrs["format_version"]),
            "msgp_version": str(f.attrs.get("msgp_version", "?")),
            "spec": spec.to_dict(),
            "class_names": list(spec.class_names),
            "class_counts": np.bincount(labels, minlength=spec.n_classes).tolist(),
            "n_written": n_written,
            "complete": complete,
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
