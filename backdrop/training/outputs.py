"""The files of a run directory other than the checkpoint: config.json, metrics.jsonl, curves.png."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from msgp.atomic import atomic_open, atomic_write
from msgp.plotting import PlotUnavailable, pyplot

from ..models import MultiScaleNet
from .config import TrainConfig
from .data import Samples

def _write_config(path: Path, config: TrainConfig, spec, model: MultiScaleNet, train_data: Samples,
                  test_data: Samples, world: int) -> None:
    atomic_write(path, json.dumps({
        "train": config.to_dict(), "method": config.method, "dataset": spec.to_dict(),
        "model": model.config(), "world_size": world, "torch": torch.__version__,
        "train_indices": train_data.indices.tolist(), "test_indices": test_data.indices.tolist(),
    }, indent=2) + "\n")


def _truncate_metrics(path: Path, epochs: int, steps: int) -> None:
    """Keep the records of the ``epochs`` epochs and ``steps`` steps the checkpoint holds (a resumed
    run rewrites the rest)."""
    lines = [line for line in path.read_text().splitlines(keepends=True) if line.strip()] if path.exists() else []
    atomic_write(path, "".join(line for line, record in zip(lines, map(json.loads, lines))
                               if (record["step"] <= steps if _is_step(record) else record["epoch"] <= epochs)))


def _append_metrics(path: Path, *records: dict[str, Any]) -> None:
    """Add records to ``metrics.jsonl``, rewriting the small file whole so that a kill never leaves
    half a line."""
    atomic_write(path, (path.read_text() if path.exists() else "") + "".join(json.dumps(r) + "\n" for r in records))


def _is_step(record: dict[str, Any]) -> bool:
    # Epoch records have no kind: they are as they were before step records existed.
    return record.get("kind") == "step"


def read_metrics(run_dir: str | os.PathLike, kind: str = "epoch") -> list[dict[str, Any]]:
    """The records of ``run_dir``'s ``metrics.jsonl``, in the order written: ``kind="epoch"`` (one
    per epoch) or ``kind="step"`` (``{"kind": "step", "step": ..., ...}``, every
    ``config.log_every`` steps); empty when there is no such file."""
    if kind not in ("epoch", "step"):
        raise ValueError(f"kind must be 'epoch' or 'step', but got {kind!r}")
    path = Path(run_dir) / "metrics.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
    return [r for r in records if _is_step(r) == (kind == "step")]


def plot_curves(run_dir: str | os.PathLike) -> Path | None:
    """``curves.png``: loss and accuracy per epoch; ``None`` when matplotlib is not installed."""
    try:
        plt = pyplot()
    except PlotUnavailable:
        return None
    records = read_metrics(run_dir)
    epochs = [r["epoch"] for r in records]
    scored = [r for r in records if r["test_accuracy"] is not None]  # epochs with a test score
    scored_epochs = [r["epoch"] for r in scored]
    n_scales = len(records[0]["train_loss"])
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True, sharex=True)
    for s in range(n_scales):
        line, = ax_loss.plot(epochs, [r["train_loss"][s] for r in records], label=f"scale {s} train")
        ax_loss.plot(scored_epochs, [r["test_loss"][s] for r in scored], "--", marker=".", color=line.get_color(),
                     label=f"scale {s} test")
        ax_acc.plot(scored_epochs, [r["test_accuracy"]["scales"][s] for r in scored], marker=".",
                    color=line.get_color(), label=f"scale {s}")
    ax_acc.plot(scored_epochs, [r["test_accuracy"]["joint"] for r in scored], "k", marker=".", label="joint")
    summary = Path(run_dir) / "summary.json"
    if summary.exists():
        oracle_joint = json.loads(summary.read_text())["oracle_accuracy"]["joint"]
        ax_acc.axhline(oracle_joint, color="k", ls=":", label="oracle joint")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy (nats)", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="test accuracy", title="test accuracy", ylim=(0, 1.02))
    ax_loss.legend(fontsize=7)
    ax_acc.legend(fontsize=7)
    path = Path(run_dir) / "curves.png"
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png", dpi=100)
    plt.close(fig)
    return path
