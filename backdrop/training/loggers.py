"""Loggers: where :func:`~backdrop.training.train` sends its numbers besides ``metrics.jsonl``.

A logger is any object with the three methods of :class:`Logger`. The trainer calls
``log_step(step, scalars)`` after every ``config.log_every``-th optimiser step,
``log_epoch(step, scalars)`` after every epoch, and ``close()`` once when training ends, finished,
interrupted or failed. ``step`` counts the optimiser steps the run has taken (1 after its first), so
that step and epoch records share one axis; ``scalars`` maps names to floats, as :func:`scalars`
names the fields of a ``metrics.jsonl`` record (``train_loss/scale_0``, ``lr``,
``test_accuracy/joint``, ...).

The trainer calls loggers on rank 0 only. The built-in ones, :class:`TensorBoardLogger` and
:class:`CSVLogger`, create nothing until their first record, so a distributed script may build
them on every rank. Both continue what their destination already holds, hiding or dropping what it
holds from the step of their first record on: a resumed run's curves go on from its checkpoint
without the steps an interrupted process logged past it. Give each fresh run a destination of its own.

Example::

    from backdrop.training import CSVLogger, TensorBoardLogger, TrainConfig, train
    train(TrainConfig(data="data/msgp.h5"), "runs/a",
          loggers=[TensorBoardLogger("tb/a"), CSVLogger("runs/a/scalars.csv")])
"""
from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Any, Protocol

from msgp.atomic import atomic_write
from msgp.errors import MSGPError


class Logger(Protocol):
    """What the trainer calls on a logger (see the module's description)."""

    def log_step(self, step: int, scalars: dict[str, float]) -> None: ...

    def log_epoch(self, step: int, scalars: dict[str, float]) -> None: ...

    def close(self) -> None: ...


class LoggerError(MSGPError, ValueError):
    """A logger that cannot write where it was asked, or whose package is missing; one line for the user."""


def scalars(record: dict[str, Any]) -> dict[str, float]:
    """The numbers of a ``metrics.jsonl`` record by flat names, the form loggers receive.

    Nested fields join with ``/`` and per-scale lists become ``scale_<s>`` (a ``scales`` field
    joins its parent: ``test_accuracy/scale_0`` beside ``test_accuracy/joint``); ``None`` (an epoch
    without a test score) is left out, and so are ``kind`` and ``step``, which say what the record is.
    """
    flat: dict[str, float] = {}

    def walk(name: str, value: Any) -> None:
        if value is None:
            return
        if isinstance(value, dict):
            for key, item in value.items():
                walk(name if key == "scales" else f"{name}/{key}", item)
        elif isinstance(value, (list, tuple)):
            for s, item in enumerate(value):
                walk(f"{name}/scale_{s}", item)
        else:
            flat[name] = float(value)

    for key, value in record.items():
        if key not in ("kind", "step"):
            walk(key, value)
    return flat


def _check_destination(path: Path, kind: str) -> Path:
    """``path``, refused when it or its nearest existing parent cannot be the ``kind`` (``file`` or
    ``directory``) it is to be."""
    if path.exists() and path.is_dir() != (kind == "directory"):
        raise LoggerError(f"{path} is a {'file' if kind == 'directory' else 'directory'}, not a {kind}")
    parent = next(p for p in path.parents if p.exists())
    if not parent.is_dir():
        raise LoggerError(f"{path} cannot be made: {parent} is a file, not a directory")
    return path


class TensorBoardLogger:
    """TensorBoard event files in ``log_dir`` (created at the first record): step records under
    ``step/<name>``, epoch records under ``epoch/<name>``, both against the optimiser step.

    Needs the ``tensorboard`` package (``pip install 'msgp[tensorboard]'``): without it, and for a
    ``log_dir`` that is a file, :class:`LoggerError`. The first record hides, in TensorBoard, what
    ``log_dir`` held from its step on (``SummaryWriter``'s ``purge_step``).
    """

    def __init__(self, log_dir: str | os.PathLike):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise LoggerError("TensorBoard logging needs the tensorboard package: "
                              "pip install 'msgp[tensorboard]'") from None
        self._summary_writer = SummaryWriter
        self.log_dir = _check_destination(Path(log_dir), "directory")
        self._writer = None

    def _write(self, group: str, step: int, values: dict[str, float]) -> None:
        if self._writer is None:
            self._writer = self._summary_writer(str(self.log_dir), purge_step=step)
        for name, value in values.items():
            self._writer.add_scalar(f"{group}/{name}", value, step)

    def log_step(self, step: int, scalars: dict[str, float]) -> None:
        self._write("step", step, scalars)

    def log_epoch(self, step: int, scalars: dict[str, float]) -> None:
        self._write("epoch", step, scalars)
        # SummaryWriter writes every two minutes by default; an epoch's end is when a reader looks.
        self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()

    def __repr__(self) -> str:
        return f"TensorBoardLogger({str(self.log_dir)!r})"


class CSVLogger:
    """One CSV file at ``path``, a row per record: ``kind`` (``step`` or ``epoch``), ``step``, then a
    column per name in the order first seen, empty where a record has no such number.

    Rewritten whole (atomically) after every epoch and at the end. A file already at ``path`` is
    continued: its rows from the step of the first record on are dropped.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = _check_destination(Path(path), "file")
        self._rows: list[dict[str, Any]] | None = None  # read or started at the first record
        self._columns: list[str] = ["kind", "step"]

    def _add(self, kind: str, step: int, values: dict[str, float]) -> None:
        if self._rows is None:
            self._rows = []
            if self.path.exists():
                with self.path.open(newline="") as f:
                    reader = csv.DictReader(f)
                    if "step" not in (reader.fieldnames or ()):
                        raise LoggerError(f"{self.path} is not a CSVLogger's file (it has no step column)")
                    self._columns = list(reader.fieldnames)
                    self._rows = [row for row in reader if int(row["step"]) < step]
        self._columns += [name for name in values if name not in self._columns]
        self._rows.append({"kind": kind, "step": step, **values})

    def log_step(self, step: int, scalars: dict[str, float]) -> None:
        self._add("step", step, scalars)

    def log_epoch(self, step: int, scalars: dict[str, float]) -> None:
        self._add("epoch", step, scalars)
        self._save()

    def close(self) -> None:
        if self._rows is not None:
            self._save()

    def _save(self) -> None:
        text = io.StringIO()
        writer = csv.DictWriter(text, self._columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self._rows)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path, text.getvalue())

    def __repr__(self) -> str:
        return f"CSVLogger({str(self.path)!r})"
