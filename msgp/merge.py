"""Joining the shards of a dataset into one file (:func:`merge`), and checking any msgp file's
integrity (:func:`inspect`, what ``msgp info`` shows)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from .errors import FileError
from .format import check_output, file_id, new_file_id, open_file, open_h5, os_reason, shard_of, shard_range
from .generate import Sampler
from .spec import DatasetSpec

__all__ = ["inspect", "merge"]


@dataclass
class _Part:
    """One shard to merge: samples ``start:stop`` of the dataset ``spec``, in the file ``path``."""

    start: int
    stop: int
    path: Path
    spec: DatasetSpec
    msgp_version: str


def merge(shards, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Join complete shards of one dataset into ``path`` without copying: HDF5 virtual datasets.

    The shards must hold the same dataset description and together cover samples 0 to n once
    (contiguous, no overlap, no gap). The virtual datasets name the shards by paths relative to
    the directory of ``path``, so that directory can be moved together with the shards. The
    merged file has the attributes of a single-run file, and reads like one.

    Parameters
    ----------
    shards : the shard files (written with ``shard=(i, N)``), in any order.
    path : the merged file to write, in a directory that exists; not one of the shards.
    overwrite : replace an existing file at ``path``.
    """
    path = Path(path)
    if not shards:
        raise FileError("no shards to merge")
    if any(Path(shard).resolve() == path.resolve() for shard in shards):
        # Overwriting a shard with a map of itself would lose its samples (and crash HDF5 on reading).
        raise FileError(f"{path} is one of the shards to merge; write the merged file elsewhere")
    check_output(path, overwrite=True)  # a directory, or none to write in: refused before any shard is read
    parts = sorted((_read_part(Path(shard)) for shard in shards), key=lambda part: (part.start, part.stop))
    _check_cover(parts)
    check_output(path, overwrite)
    _write_virtual(path, parts)
    return path


def _read_part(shard: Path) -> _Part:
    with open_file(shard, require_complete=False) as (f, spec):
        if shard_of(f) is None:
            raise FileError(f"{shard} is not a shard (no shard_index attribute); merge the files written "
                            "with `shard=(i, N)`")
        start, stop = int(f.attrs["shard_start"]), int(f.attrs["shard_stop"])
        if not bool(f.attrs["complete"]):
            raise FileError(f"shard {shard} is incomplete ({int(f.attrs['n_written'])} of {stop - start} "
                            "samples written); finish it with `resume=True`")
        return _Part(start, stop, shard, spec, str(f.attrs["msgp_version"]))


def _check_cover(parts: list[_Part]) -> None:
    """Refuse ``parts`` (sorted by range) unless they are of one dataset and hold each sample once."""
    spec = parts[0].spec
    for part in parts[1:]:
        differences = part.spec.differences_from(spec)
        if differences:
            raise FileError(f"{part.path} belongs to another dataset than {parts[0].path} ({'; '.join(differences)})")
    position = 0
    for part in parts:
        if part.start > position:
            raise FileError(f"samples {position} to {part.start - 1} are missing: no shard holds them")
        if part.start < position:
            raise FileError(f"{part.path} overlaps another shard (samples {part.start} to {position - 1} twice)")
        position = part.stop
    if position < spec.n:
        raise FileError(f"samples {position} to {spec.n - 1} are missing: no shard holds them")


def _write_virtual(path: Path, parts: list[_Part]) -> None:
    """The merged file: a single run's attributes, and virtual datasets mapping the shards' rows."""
    spec = parts[0].spec
    datasets = {"fields": (spec.shape, spec.dtype, np.nan), "labels": ((), np.int64, -1),
                "scale_labels": ((spec.n_scales,), np.uint8, 255)}
    if spec.save_components:
        datasets["components"] = ((spec.n_scales,) + spec.shape, spec.dtype, np.nan)
    with open_h5(path, "w") as f:
        try:
            f.attrs.update(spec.to_attrs())
            f.attrs["msgp_version"] = parts[0].msgp_version
            # The merged file is a file of its own: a dataset made from it must notice if it is merged again.
            f.attrs["file_id"] = new_file_id()
            f.attrs["n_written"] = spec.n
            f.attrs["complete"] = True
            for name, (shape, dtype, fill) in datasets.items():
                layout = h5py.VirtualLayout((spec.n,) + shape, dtype)
                for part in parts:
                    source = os.path.relpath(part.path.resolve(), path.resolve().parent)
                    layout[part.start:part.stop] = h5py.VirtualSource(source, name, shape=(part.stop - part.start,) + shape)
                f.create_virtual_dataset(name, layout, fillvalue=fill)
        except OSError as err:
            raise FileError(f"cannot write {path}: {os_reason(err)}") from None


def inspect(path: str | os.PathLike, regenerate: int = 1) -> dict:
    """Parameters, class counts, completeness and an integrity check of an msgp file.

    The integrity check verifies the datasets' shapes and dtypes against the attributes, that
    ``labels`` and ``scale_labels`` agree with each other and with the labels the seed
    determines, that the first ``regenerate`` samples are finite and regenerate from the seed
    (to float rounding), and that the file is complete.
    """
    with open_file(path, require_complete=False) as (f, spec):
        n_written = int(f.attrs.get("n_written", 0))
        complete = bool(f.attrs.get("complete", False))
        shard = shard_of(f)
        start, stop = (0, spec.n) if shard is None else shard_range(spec.n, *shard)
        problems = _layout_problems(f, spec, stop - start)
        labels = f["labels"][:n_written] if "labels" in f else np.zeros(0, np.int64)
        if not problems and n_written:
            problems += _sample_problems(f, spec, labels, start, min(regenerate, n_written))
        if not complete:
            problems.append(f"incomplete: {n_written} of {stop - start} samples written")
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


def _layout_problems(f: h5py.File, spec: DatasetSpec, rows: int) -> list[str]:
    """The datasets that are missing or of another shape than ``rows`` samples of ``spec`` need."""
    expected = {"fields": (rows,) + spec.shape, "labels": (rows,), "scale_labels": (rows, spec.n_scales)}
    if spec.save_components:
        expected["components"] = (rows, spec.n_scales) + spec.shape
    problems = []
    for name, shape in expected.items():
        if name not in f:
            problems.append(f"dataset {name!r} is missing")
        elif f[name].shape != shape:
            problems.append(f"dataset {name!r} has shape {f[name].shape}, expected {shape}")
    return problems


def _sample_problems(f: h5py.File, spec: DatasetSpec, labels: np.ndarray, start: int, k: int) -> list[str]:
    """Labels that the seed does not give, and (of the first ``k``) fields that do not regenerate."""
    problems = []
    sampler = Sampler(spec)
    if not np.array_equal(labels, sampler.labels(start, start + len(labels))):
        problems.append("labels differ from those the seed determines")
    if not np.array_equal(f["scale_labels"][:len(labels)], spec.choices(labels)):
        problems.append("scale_labels disagree with labels")
    if k:
        stored = f["fields"][:k].astype(np.float64)
        fresh = sampler.batch(start, start + k).fields.astype(np.float64)
        if not np.all(np.isfinite(stored)):
            problems.append("fields contain NaN or infinite values")
        elif np.max(np.abs(stored - fresh)) > 1e-3 * max(np.max(np.abs(fresh)), 1.0):
            problems.append(f"the first {k} fields do not regenerate from the seed")
    return problems
