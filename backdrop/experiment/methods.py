"""Methods from the user's own file, and the experiment's fitted methods.

A method is a function marked with one of two decorators (``msgp experiment --method
path/to/file.py:name`` or ``module:name`` adds it to a plan, under the function's name):

* :func:`network`: ``build(spec) -> torch.nn.Module``, a network whose forward pass maps fields
  ``(batch, 1, *shape)`` to per-scale logits ``(batch, K, M)``, like
  :class:`~backdrop.models.MultiScaleNet`. :class:`~backdrop.models.UserNetwork` gives it what the
  trainer asks of a model (per-scale losses, joint log-probabilities, calibration of any
  :class:`~backdrop.models.BatchStandardize` it holds), and the project's loop trains it with
  everything a built-in run has (pairing by seed, augmentation if its settings ask for it,
  calibration, checkpoints, resume). The decorator's keywords are :class:`TrainConfig` fields that
  replace the plan's for its runs.
* :func:`fitted`: ``fit(fields, labels, spec) -> predict``, with ``fields`` a float32 array
  ``(n, *shape)``, ``labels`` the joint class labels ``(n,)`` (``spec.choices(labels)`` gives the
  per-scale choices) and ``predict(fields) -> log_probs`` returning per-scale log-probabilities,
  one floating array ``(n, K, M)`` whose rows each sum to 1 after ``exp``. No torch needed.

A run records the method's source (the file's absolute path, and the function) and the SHA-256 of
the file's content, so a run trained with another version of the file is refused, not resumed
(:func:`check_recorded`). The decorators only set the attribute ``msgp_method`` on the
function: ``{"kind": "network" | "fitted", "settings": {...}}``. Loading a method from its file,
the hash check and building a network method's module are :mod:`backdrop.models.user`'s, so that
the trainer rebuilds a checkpoint's network without the experiment; :func:`load_method` adds the
plan's own rule (no method may take a built-in method's name).
"""
from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import fields as dataclass_fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from msgp.atomic import atomic_write
from msgp.spec import DatasetSpec

from .. import training
# MethodError is backdrop.models', which loading a method's file raises, so that one class (an
# msgp.MSGPError and a ValueError) catches every error of a method, loaded, built or fitted.
from ..models import Method, MethodError, build_network, check_unchanged, file_hash, import_method
from ..models.user import MARKER, first_line
from ..training import Samples, learned, load_samples, open_data, oracle_scores, other_samples, run_subsets
from .plans import ANCHORS, METHODS, ExperimentError

__all__ = ["Method", "MethodError", "check_log_probs", "check_methods", "check_recorded", "file_hash",
           "fit_and_score", "fitted", "fitted_method", "is_fitted", "load_method", "network", "report_samples",
           "run_samples"]


def network(function: Callable | None = None, **settings):
    """Mark ``build(spec) -> torch.nn.Module`` as a network method; ``settings`` are TrainConfig
    fields (``lr=1e-3``, ``augment=True``, ...) that replace the plan's for its runs. Use as
    ``@network`` or ``@network(lr=1e-3)``."""
    names = {f.name for f in dataclass_fields(training.TrainConfig)}
    unknown = [k for k in settings if k not in names or k in _PLAN_OWNED]
    if unknown:
        raise MethodError(f"{unknown[0]!r} is not a training setting a method may set; choose from "
                          f"{', '.join(sorted(names - set(_PLAN_OWNED)))}")

    def mark(fn: Callable) -> Callable:
        setattr(fn, MARKER, {"kind": "network", "settings": dict(settings)})
        return fn

    return mark if function is None else mark(function)


def fitted(function: Callable) -> Callable:
    """Mark ``fit(fields, labels, spec) -> predict`` as a fitted method."""
    setattr(function, MARKER, {"kind": "fitted", "settings": {}})
    return function


# What a run of the plan is (its data, samples and seed, and the network method's own source): a
# method's settings may not change them, or its runs would not pair with the others.
_PLAN_OWNED = ("data", "test_data", "n_train", "n_test", "seed", "network")


def load_method(text: str) -> Method:
    """The method ``text`` names, ``path/to/file.py:function`` or ``module:function``
    (:func:`backdrop.models.import_method`), refused when it has a built-in method's name.

    Raises
    ------
    MethodError : no such file or module, a file that does not import (its syntax error or
        exception in one line), no such function, not callable, not marked by :func:`network`
        or :func:`fitted`, or the name of a built-in method.
    """
    method = import_method(text)
    if method.name in METHODS or method.name in ANCHORS:
        raise MethodError(f"method {method.name!r} from {method.source.rpartition(':')[0]} has the name of a "
                          "built-in method; rename the function")
    return method


# Fitted methods -----------------------------------------------------------------------------------

def check_log_probs(log_probs: Any, n: int, spec: DatasetSpec, where: str) -> np.ndarray:
    """``log_probs`` as float64 ``(n, K, M)``, or a MethodError naming what is wrong: not an array,
    shape, dtype, non-finite values, or rows whose probabilities do not sum to 1 (to within
    8 M float32 epsilons: a float32 log-softmax is accurate to a few)."""
    expected = (n, spec.n_scales, spec.n_choices)
    if not isinstance(log_probs, np.ndarray):
        raise MethodError(f"{where} must return a numpy array of log-probabilities {expected}, "
                          f"but returned a {type(log_probs).__name__}")
    if log_probs.shape != expected:
        raise MethodError(f"{where} must return log-probabilities of shape (n, {spec.n_scales} scales, "
                          f"{spec.n_choices} choices) = {expected}, but returned {log_probs.shape}")
    if not np.issubdtype(log_probs.dtype, np.floating):
        raise MethodError(f"{where} must return floating log-probabilities, but returned dtype {log_probs.dtype}")
    values = log_probs.astype(np.float64)
    if not np.isfinite(values).all():
        raise MethodError(f"{where} returned non-finite log-probabilities (use a floor, not log 0)")
    total = np.logaddexp.reduce(values, axis=-1).ravel()
    tolerance = 8 * spec.n_choices * float(np.finfo(np.float32).eps)
    if total.size and np.abs(total).max() > tolerance:
        worst = total[np.abs(total).argmax()]
        raise MethodError(f"{where} returned log-probabilities that are not normalised: a row's "
                          f"probabilities sum to {math.exp(worst):.6g}, not 1")
    return values


def run_samples(config: training.TrainConfig) -> tuple[Samples, Samples]:
    """The training and validation samples of ``config`` (its ``data`` and ``test_data``), chosen
    exactly as the trainer chooses a new run's (:func:`~backdrop.training.run_subsets`), in
    memory: a fitted run fits on the very images a network run of the same seed and size trains on."""
    data = open_data(config.data)
    test_file = None if config.test_data is None else open_data(config.test_data)
    config = training.resolve_sizes(config, data.spec.n_classes, len(data),
                                    None if test_file is None else len(test_file))
    train_set, test_set = run_subsets(config, data, test_file)
    return load_samples(train_set), load_samples(test_set)


def report_samples(config: training.TrainConfig, report_path: Path, n: int) -> Samples:
    """The ``n`` samples of the report file that :func:`~backdrop.training.evaluate` scores a
    network run of ``config`` on, in memory."""
    return load_samples(other_samples(open_data(report_path), config, n))


def _scores(log_probs: np.ndarray, choices: np.ndarray) -> dict[str, Any]:
    """``{"joint", "scales"}`` accuracies of per-scale decisions, as the trainer scores a network
    (joint: every scale right)."""
    right = log_probs.argmax(-1) == choices
    return {"joint": float(right.all(1).mean()), "scales": right.mean(0).tolist()}


def _fit(fit: Callable, where: str, data: Samples) -> Callable:
    """``fit`` on the samples ``data``: its ``predict``, or a MethodError naming what went wrong."""
    try:
        predict = fit(data.fields[:, 0].numpy(), data.labels, data.spec)
    except MethodError:
        raise
    except Exception as err:
        raise MethodError(f"{where} failed to fit: {type(err).__name__}: {first_line(err)}") from None
    if not callable(predict):
        raise MethodError(f"{where} must return a predict function, but returned a {type(predict).__name__}")
    return predict


def _predict(predict: Callable, where: str, data: Samples) -> np.ndarray:
    """``predict`` on the samples ``data``, checked (:func:`check_log_probs`), float64."""
    try:
        log_probs = predict(data.fields[:, 0].numpy())
    except Exception as err:
        raise MethodError(f"{where}'s predict failed: {type(err).__name__}: {first_line(err)}") from None
    return check_log_probs(log_probs, len(data.fields), data.spec, f"{where}'s predict")


def fit_and_score(method: Method, fit: Callable, config: training.TrainConfig, run_dir: Path, report_path: Path,
                  n_report: int) -> dict[str, Any]:
    """Fit ``fit`` on the run's training samples, score it on the validation samples and on
    ``n_report`` samples of the report file, each beside the oracle on the same samples, and return
    the keys of a network run's result that come from training and scoring (``learned`` judged on
    the validation set, as the trainer judges it); ``method.json`` records the method and the
    samples' settings."""
    train_data, validation_data = run_samples(config)
    report_data = report_samples(config, report_path, n_report)
    spec = train_data.spec
    predict = _fit(fit, method.source, train_data)
    parts = {"train": train_data, "validation": validation_data, "test": report_data}
    scored = {part: _predict(predict, method.source, data) for part, data in parts.items()}
    accuracy = {part: _scores(scored[part], data.choices.numpy()) for part, data in parts.items()}
    losses = F.cross_entropy(torch.from_numpy(scored["train"]).transpose(1, 2),
                             train_data.choices, reduction="none").mean(0).tolist()
    oracle = {}
    for part in ("validation", "test"):
        scores = oracle_scores(parts[part])
        oracle[part] = {"joint": scores["joint"]["accuracy"], "scales": [s["accuracy"] for s in scores["scales"]]}
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(run_dir / "method.json", json.dumps({"method": method.name, "kind": "fitted",
                                                      **method.record(), "train": config.to_dict()}, indent=2) + "\n")
    return {"status": "finished", "n_validation": len(validation_data.fields),
            "validation_accuracy": accuracy["validation"], "validation_oracle_accuracy": oracle["validation"],
            "n_test": len(report_data.fields), "test_accuracy": accuracy["test"], "oracle_accuracy": oracle["test"],
            "train_accuracy": accuracy["train"], "train_loss": losses,
            "learned": learned(losses, accuracy["validation"]["scales"], oracle["validation"]["scales"],
                               spec.n_choices, len(validation_data.fields))}


def check_recorded(method: Method, run_dir: Path, config: training.TrainConfig) -> None:
    """Refuse a run directory whose fitted run was made with another version of the method's file,
    or on other samples than ``config`` names (a plan changed under an old output directory)."""
    try:
        stored = json.loads((run_dir / "method.json").read_text())
    except (FileNotFoundError, UnicodeDecodeError, json.JSONDecodeError):
        return
    if method.sha256 and stored.get("sha256") not in (None, method.sha256):
        check_unchanged(method, stored["sha256"], f"{run_dir} was run")
    trained = (stored.get("train") or {}).get("data")
    if trained is not None and trained != config.data:
        raise ExperimentError(f"{run_dir} holds a fitted run on other samples than this plan's; remove it or choose "
                              "another `out`")


# A plan's methods ---------------------------------------------------------------------------------

def _user_method(plan, name: str) -> Method | None:
    return next((m for m in plan.extra if m.name == name), None)


def fitted_method(plan, name: str, out: Path) -> tuple[Method, Callable] | None:
    """The method and its ``fit`` for a fitted method of ``plan`` (an anchor, or one from the
    user's file), ``None`` for a network; the scattering anchor caches its coefficients in
    ``out/cache``."""
    from . import anchors

    if name == "whittle":
        return Method(name, "fitted", anchors.whittle, "backdrop.experiment.anchors:whittle", ""), anchors.whittle
    if name == "scattering":
        if not anchors.scattering_available():
            raise MethodError("the scattering method needs kymatio and scikit-learn: pip install -e '.[scattering]'")

        def fit(fields, labels, spec):
            return anchors.scattering(fields, labels, spec, cache=out / "cache")

        return Method(name, "fitted", fit, "backdrop.experiment.anchors:scattering", ""), fit
    method = _user_method(plan, name)
    if method is not None and method.kind == "fitted":
        return method, method.function
    return None


def is_fitted(plan, name: str) -> bool:
    """Whether ``name`` is a fitted method of ``plan`` (no training steps to time or count)."""
    from .plans import ANCHORS

    method = _user_method(plan, name)
    return name in ANCHORS or (method is not None and method.kind == "fitted")


def check_methods(plan, validation_path: Path, report_path: Path) -> None:
    """Try every method from the user's files before the plan trains anything, so that a bad one
    is refused in one line at once rather than after hours of other runs (and refuse a plan with
    the scattering anchor where its extra is not installed): a network method is
    built for the data and given two images; a fitted method is fitted on its first run's
    training samples and its predictions on the validation samples checked (its runs fit again)."""
    from . import anchors
    from .runs import main_runs

    if "scattering" in plan.methods and not anchors.scattering_available():
        raise MethodError("the plan's scattering method needs kymatio and scikit-learn: "
                          "pip install -e '.[scattering]'")
    for method in plan.extra:
        if method.kind == "network":
            build_network(method.record(), plan.spec)
            continue
        run = next(r for r in main_runs(plan) if r.method == method.name)
        train_data, validation_data = run_samples(run.config(plan, validation_path))
        _predict(_fit(method.function, method.source, train_data), method.source, validation_data)
