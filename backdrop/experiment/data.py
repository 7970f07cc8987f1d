"""An experiment's data files: the validation and report files in ``out/data``, generated once
and reused by every run (:func:`prepare_data`; :func:`prepare_shared_data` for shards started
together). Each run generates its own training samples."""
from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from msgp import io
from msgp.errors import MSGPError
from msgp.spec import DatasetSpec

from ..training import Progress
from .plans import ExperimentError, ExperimentPlan


def data_specs(plan: ExperimentPlan) -> dict[str, DatasetSpec]:
    """The plan's data files by name (``out/data/<name>.h5``): the validation and report sets."""
    return {"validation": plan.validation_spec, "test": plan.test_spec}


def reusable(path: Path, spec: DatasetSpec) -> bool:
    """Whether :func:`prepare_data` would reuse ``path`` as it is (complete, same description)."""
    try:
        return path.exists() and io.read_spec(path, require_complete=True) == spec
    except MSGPError:
        return False


def refuse_earlier_design(out: Path) -> None:
    """Refuse an output directory of the earlier design, whose seeds shared one training file."""
    if (out / "data" / "train.h5").exists():
        raise ExperimentError(f"{out} holds an experiment of the earlier design, whose seeds shared one training "
                              "file (data/train.h5); its runs are not comparable with these: choose another `out`")


def prepare_data(plan: ExperimentPlan, out: Path, progress: Progress | None = None) -> tuple[Path, Path]:
    """The validation and report files in ``out/data``, generated unless a complete file with the
    same description is there (an incomplete one is finished). Both are checked before either is
    written, and an output directory of the earlier design (one training file that every seed
    shared) is refused, so its runs are never mixed with these."""
    notify = progress or (lambda event, info: None)
    refuse_earlier_design(out)
    specs = data_specs(plan)
    for name, spec in specs.items():
        path = out / "data" / f"{name}.h5"
        if path.exists():
            try:
                stored = io.read_spec(path)
            except MSGPError as err:
                raise ExperimentError(f"{path} cannot be reused ({err}); remove it or choose another `out`") from None
            if stored != spec:
                raise ExperimentError(f"{path} holds another dataset than this plan's (another experiment?); "
                                      "remove it or choose another `out`")
    paths = []
    for name, spec in specs.items():
        path = out / "data" / f"{name}.h5"
        # An incomplete file is not reusable as it is: io.write(resume=True) finishes it.
        if not reusable(path, spec):
            notify("generate", {"path": str(path), "n": spec.n})
            io.write(spec, path, resume=path.exists())
        else:
            notify("reuse", {"path": str(path), "n": spec.n})
        paths.append(path)
    return paths[0], paths[1]


@contextmanager
def _data_lock(out: Path) -> Iterator[None]:
    (out / "data").mkdir(parents=True, exist_ok=True)
    with open(out / "data" / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def prepare_shared_data(plan: ExperimentPlan, out: Path, progress: Progress | None = None) -> tuple[Path, Path]:
    """:func:`prepare_data` under a lock on ``out/data/.lock``: shards started together on a shared
    file system would otherwise all write the same files at once; under it, the first generates
    them and the others reuse them."""
    with _data_lock(out):
        return prepare_data(plan, out, progress)
