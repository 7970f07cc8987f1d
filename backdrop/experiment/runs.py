"""A plan's runs and running them: the training and test files (:func:`prepare_data`), one run
trained, resumed or found recorded in its own directory (:func:`execute`), and the whole plan,
``jobs`` runs at a time (:func:`run_experiment`)."""
from __future__ import annotations

import fcntl
import json
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Iterator

import torch

from msgp import io
from msgp.atomic import atomic_write
from msgp.spec import DatasetSpec

from .. import training
from .plans import REFERENCES, ExperimentError, ExperimentPlan, Masks
from .report import write_outputs

Progress = Callable[[str, dict], None]


@dataclass(frozen=True)
class Run:
    """One training run of the plan: its directory name and its training settings."""

    name: str
    method: str
    per_class: int
    seed: int
    masks: Masks | None = None  # the backdrop setting, for methods with backdrop

    def config(self, plan: ExperimentPlan, train_path: Path, test_path: Path) -> training.TrainConfig:
        n_train = self.per_class * plan.spec.n_classes
        setting = self.masks
        return training.TrainConfig(
            data=str(train_path), test_data=str(test_path), n_train=n_train, n_test=plan.n_test,
            backdrop=setting is not None,
            mask_prob=setting.probs if setting else 0.5, mask_block=setting.blocks if setting else 1,
            topology=setting.topology if setting else "heads", augment=self.method.startswith("augment"),
            crop=plan.crop if self.method == "crop" else None, epochs=plan.epochs(n_train, self.method),
            batch_size=min(plan.batch_size, n_train), lr=plan.lr, device=plan.device, seed=self.seed,
            width=plan.width, eval_every=0)


def make_run(method: str, per_class: int, seed: int, setting: Masks | None = None) -> Run:
    tag = method if setting is None else f"{method}-{setting.tag}"
    return Run(f"{tag}-n{per_class}-s{seed}", method, per_class, seed, setting)


def _setting(plan: ExperimentPlan, method: str) -> Masks | None:
    return {"backdrop": plan.backdrop, "augment+backdrop": plan.backdrop, "series": plan.series}.get(method)


def main_runs(plan: ExperimentPlan) -> list[Run]:
    """Every method at every size and seed."""
    return [make_run(m, n, s, _setting(plan, m)) for n in plan.sizes for m in plan.methods for s in plan.seeds_at(n)]


def sweep_runs(plan: ExperimentPlan) -> list[Run]:
    """The sweep's backdrop settings and its two references, at ``sweep_size`` with ``small_seeds`` seeds."""
    if plan.sweep_size is None:
        return []
    n, seeds = plan.sweep_size, range(plan.small_seeds)
    runs = [make_run(m, n, s) for m in REFERENCES for s in seeds]
    runs += [make_run("series" if m.topology == "series" else "backdrop", n, s, m) for m in plan.sweep for s in seeds]
    return runs


def prepare_data(plan: ExperimentPlan, out: Path, progress: Progress | None = None) -> tuple[Path, Path]:
    """The training and test files in ``out/data``, generated unless a complete file with the same
    description is there (an incomplete one is finished)."""
    notify = progress or (lambda event, info: None)
    paths = []
    for name, spec in (("train", plan.train_spec), ("test", plan.test_spec)):
        path = out / "data" / f"{name}.h5"
        if path.exists():
            try:
                stored = io.read_spec(path)
            except io.MSGPError as err:
                raise ExperimentError(f"{path} cannot be reused ({err}); remove it or choose another --out") from None
            if stored != spec:
                raise ExperimentError(f"{path} holds another dataset than this plan's (another experiment?); "
                                      "remove it or choose another --out")
        # An incomplete file is not reusable as it is: io.write(resume=True) finishes it.
        if not _reusable(path, spec):
            notify("generate", {"path": str(path), "n": spec.n})
            io.write(spec, path, resume=path.exists())
        else:
            notify("reuse", {"path": str(path), "n": spec.n})
        paths.append(path)
    return paths[0], paths[1]


def _check_same_run(run_dir: Path, config: training.TrainConfig) -> None:
    """Refuse to reuse or resume a run directory whose run had other settings (a plan changed
    under an old ``--out``): its result would be reported as this plan's."""
    if not (run_dir / "config.json").exists():
        return
    try:
        stored = training.read_config(run_dir)
    except training.CheckpointError:
        return  # damaged: the trainer's own checks report it when it resumes
    changed = config.changed_from(stored)
    if changed:
        k = changed[0]
        raise ExperimentError(f"{run_dir} holds a run with other settings ({k} {getattr(stored, k)!r}, this plan "
                              f"{getattr(config, k)!r}); remove it or choose another --out")


def read_result(run_dir: Path) -> dict[str, Any] | None:
    """The run's ``result.json``, or ``None`` when the run has not finished: no file, or one that
    cannot be read (cut short by a crash before writes were atomic, or damaged), so the run is
    finished again rather than stopping the experiment."""
    try:
        result = json.loads((run_dir / "result.json").read_text())
    except (FileNotFoundError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return result if isinstance(result, dict) and "name" in result else None


def _read_summary(run_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((run_dir / "summary.json").read_text())
    except (FileNotFoundError, UnicodeDecodeError, json.JSONDecodeError):
        return None


def execute(run: Run, plan: ExperimentPlan, out: Path, train_path: Path, test_path: Path) -> dict[str, Any]:
    """Train ``run`` (resuming an interrupted one) unless its ``result.json`` exists, and return
    the result: the trainer scores the whole test file once, after the last epoch, beside the
    oracle on the same samples.

    A run whose training fails (:class:`~backdrop.training.TrainingError`: a non-finite loss) is
    recorded as failed, with the reason, in its ``result.json``, and the experiment goes on; its
    training is deterministic, so a rerun keeps the record rather than repeating the failure
    (remove ``runs/<name>/`` to train it again from the start)."""
    run_dir = out / "runs" / run.name
    result_path = run_dir / "result.json"
    config = run.config(plan, train_path, test_path)
    _check_same_run(run_dir, config)
    recorded = read_result(run_dir)
    if recorded is not None:
        return {**recorded, "skipped": True}
    started = time.perf_counter()
    result = {"name": run.name, "method": run.method, "n_train": config.n_train, "per_class": run.per_class,
              "seed": run.seed, "masks": None if run.masks is None else run.masks.describe(), "epochs": config.epochs}
    summary = _read_summary(run_dir)
    if summary is None:
        resume = (run_dir / "checkpoint.pt").exists()
        if not resume and (run_dir / "config.json").exists():
            (run_dir / "config.json").unlink()  # died before its first checkpoint: start it again
        try:
            summary = training.train(config, run_dir, resume=resume)
        except training.TrainingError as err:
            result.update(status="failed", reason=str(err), wall_s=time.perf_counter() - started)
            run_dir.mkdir(parents=True, exist_ok=True)
            atomic_write(result_path, json.dumps(result, indent=2) + "\n")
            return result
    last = training.read_metrics(run_dir)[-1]
    result.update({
        "status": "finished", "n_test": summary["n_test"],
        "test_accuracy": summary["test_accuracy"], "oracle_accuracy": summary["oracle_accuracy"],
        "train_accuracy": summary["train_accuracy"], "train_loss": last["train_loss"],
        "learned": summary["learned"], "wall_s": time.perf_counter() - started,
    })
    atomic_write(result_path, json.dumps(result, indent=2) + "\n")
    return result


def _execute_one_thread(*args) -> dict[str, Any]:
    torch.set_num_threads(1)
    return execute(*args)


def plan_runs(plan: ExperimentPlan) -> list[Run]:
    """Every run of the plan once, the sweep first (it picks the backdrop setting); the order
    shards split."""
    return list(dict.fromkeys(sweep_runs(plan) + main_runs(plan)))


def check_shard(shard: tuple[int, int]) -> None:
    index, count = shard
    if not (isinstance(index, int) and isinstance(count, int) and 0 <= index < count):
        raise ExperimentError(f"shard must be I/N with 0 <= I < N, but got {index}/{count}")


def shard_runs(runs: list[Run], shard: tuple[int, int] | None) -> list[Run]:
    """The runs one shard trains: every N-th run from the I-th, so the shards of a plan partition
    it and each gets a mix of sizes and methods."""
    if shard is None:
        return runs
    check_shard(shard)
    index, count = shard
    return runs[index::count]


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


def run_experiment(plan: ExperimentPlan, out: str | Path, progress: Progress | None = None,
                   jobs: int = 1, report_only: bool = False, shard: tuple[int, int] | None = None) -> dict[str, Path]:
    """Run (or finish) the whole plan into ``out`` and write the tables and figures.

    Parameters
    ----------
    plan : what to run.
    out : output directory: ``data/`` (the two HDF5 files), ``runs/<name>/`` (one per run: the
        trainer's files and ``result.json``), and the outputs listed below.
    progress : ``progress(event, info)`` with events ``plan`` (``{"runs", "to_train"}``, first),
        ``generate``/``reuse`` (a data file) and ``done`` (a run finished, failed, or found
        recorded: its result, whose ``status`` is ``finished`` or ``failed``).
    jobs : runs trained at once, each in its own process with one thread (1: in this process,
        with torch's threads).
    report_only : train nothing; write the tables and figures of the runs recorded so far. A run
        trained with other settings than the plan's is refused, as a rerun refuses it.
    shard : ``(I, N)``: train only every N-th run of the plan from the I-th (N processes on a
        cluster, one ``out`` on a shared file system), then write the tables of every run recorded
        in ``out`` so far, this shard's and the others'. The last shard to finish writes the
        complete tables; ``report_only`` rebuilds them at any time.

    Returns
    -------
    The written files by name: ``results.csv``, ``results.md``, ``comparisons.csv``,
    ``comparisons.md``, ``efficiency.png``, ``input_gradient.png`` and, with a sweep,
    ``sweep.csv``, ``sweep.md``, ``sweep.png``.
    """
    if not isinstance(jobs, int) or jobs < 1:
        raise ExperimentError(f"jobs must be a positive integer, but got {jobs}")
    out = Path(out)
    notify = progress or (lambda event, info: None)
    runs, sweep = main_runs(plan), sweep_runs(plan)
    mine = shard_runs(plan_runs(plan), shard)
    if report_only:
        return _report(plan, out, runs, sweep)
    todo = [r for r in mine if read_result(out / "runs" / r.name) is None]
    notify("plan", {"runs": len(mine), "to_train": len(todo)})
    train_path, test_path = prepare_shared_data(plan, out, progress)
    results = {}
    if jobs == 1:
        for run in mine:
            results[run] = execute(run, plan, out, train_path, test_path)
            notify("done", results[run])
    else:
        with ProcessPoolExecutor(jobs, mp_context=get_context("spawn")) as pool:
            futures = {pool.submit(_execute_one_thread, run, plan, out, train_path, test_path): run for run in mine}
            for future in as_completed(futures):
                results[futures[future]] = future.result()
                notify("done", results[futures[future]])
    if shard is not None:
        return _report(plan, out, runs, sweep)
    return write_outputs(plan, out, [results[r] for r in runs], [results[r] for r in sweep])


def _report(plan: ExperimentPlan, out: Path, runs: list[Run], sweep: list[Run]) -> dict[str, Path]:
    """The tables and figures of the runs recorded in ``out`` (by this process or by others)."""
    recorded = {r: read_result(out / "runs" / r.name) for r in dict.fromkeys(sweep + runs)}
    if all(result is None for result in recorded.values()):
        raise ExperimentError(f"{out} holds no finished run of this plan")
    # The check execute applies: a run trained with other settings is not this plan's result.
    data = out / "data"
    for r, result in recorded.items():
        if result is not None:
            _check_same_run(out / "runs" / r.name, r.config(plan, data / "train.h5", data / "test.h5"))
    return write_outputs(plan, out, [recorded[r] for r in runs if recorded[r] is not None],
                         [recorded[r] for r in sweep if recorded[r] is not None])


def _reusable(path: Path, spec: DatasetSpec) -> bool:
    """Whether :func:`prepare_data` would reuse ``path`` as it is (complete, same description)."""
    try:
        return path.exists() and io.read_spec(path, require_complete=True) == spec
    except io.MSGPError:
        return False
