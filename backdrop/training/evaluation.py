"""Scoring: the network on whole test images (or their tiles), beside the oracle on the same samples."""
from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from msgp import io, oracle
from msgp.dataset import split
from msgp.spec import DatasetSpec

from ..models import MultiScaleNet
from .checkpoints import load_checkpoint, rebuild_model
from .config import CheckpointError, ConfigError, TrainConfig, read_config
from .data import (IncompatibleDataError, Samples, _check_same_data, _spec_from_dict, check_compatible, load_samples,
                   open_data, take_crops)
from .devices import _all_sum, _world, precision_context, resolve_device


def _accuracies(correct: torch.Tensor, count: float) -> dict[str, Any]:
    """``{"joint": p, "scales": [p_0, ...]}`` from counts ``(K + 1,)``: per scale, then joint."""
    values = (correct / max(count, 1.0)).tolist()
    return {"joint": values[-1], "scales": values[:-1]}


def _correct(model: MultiScaleNet, logits: torch.Tensor, choices: torch.Tensor) -> torch.Tensor:
    """Correct predictions per scale and joint, ``(K + 1,)`` float64."""
    per_scale = logits.argmax(-1) == choices
    return torch.cat([per_scale.sum(0), per_scale.all(1).sum()[None]]).double()


@torch.no_grad()
def _predict(model: MultiScaleNet, fields: torch.Tensor, device: torch.device, batch_size: int,
             crop: int | None = None) -> torch.Tensor:
    """Logits ``(n, K, M)`` of whole images, in eval mode (no masks).

    A network trained on crops (``crop``) scores a whole image as the mean of the per-scale
    log-probabilities of its ``(size // crop)**ndim`` tiles: fed the whole image at once, its zero
    padding would cover a smaller fraction of the field than in training and shift the pooled
    features past its standardisation statistics (docs/training.md, **Splits and baselines**).
    """
    was_training = model.training
    model.eval()
    out = []
    for x in _eval_inputs(fields, device, batch_size, crop):
        if crop is None:
            out.append(model(x).float().cpu())
            continue
        log_probs = F.log_softmax(model(x).float().cpu(), dim=-1)
        tiles = (fields.shape[-1] // crop) ** (fields.ndim - 2)
        out.append(log_probs.view(-1, tiles, *log_probs.shape[1:]).mean(1))
    model.train(was_training)
    return torch.cat(out) if out else torch.zeros(0, model.n_scales, model.n_choices)


def _eval_inputs(fields: torch.Tensor, device: torch.device, batch_size: int, crop: int | None = None):
    """The network's inputs at test time, ``batch_size`` images at a time: whole images, or the
    ``(size // crop)**ndim`` tiles of each image for a network trained on crops."""
    if crop is not None:
        size, ndim = fields.shape[-1], fields.ndim - 2
        corners = torch.cartesian_prod(*[torch.arange(0, size - crop + 1, crop)] * ndim).view(1, -1, ndim)
    for i in range(0, len(fields), batch_size):
        x = fields[i:i + batch_size]
        if crop is not None:
            x = take_crops(x, corners.expand(len(x), -1, -1), crop)
        yield x.to(device)


def calibrate(model: MultiScaleNet, data: Samples, device: torch.device, batch_size: int,
              crop: int | None = None) -> None:
    """Fit the logit standardisation to the current weights on the training images (each rank
    its own slice), as :meth:`MultiScaleNet.calibrate` explains; called before every evaluation."""
    rank, world = _world()
    model.calibrate(_eval_inputs(data.fields[rank::world], device, batch_size, crop))


def _test_metrics(model: MultiScaleNet, data: Samples, device: torch.device, batch_size: int,
                  crop: int | None = None) -> dict[str, Any]:
    """Test loss per scale and accuracy; each rank scores a slice and the counts are summed."""
    rank, world = _world()
    part = slice(rank, None, world)
    logits = _predict(model, data.fields[part], device, batch_size, crop)
    choices = data.choices[part]
    totals = torch.zeros(2 * model.n_scales + 2, dtype=torch.float64)
    if len(logits):
        losses = F.cross_entropy(logits.transpose(1, 2), choices, reduction="none").sum(0)
        totals[:model.n_scales] = losses.double()
        totals[model.n_scales:-1] = _correct(model, logits, choices)
    totals[-1] = len(logits)
    totals = _all_sum(totals.to(device)).cpu()
    n = totals[-1].item()
    return {"loss": (totals[:model.n_scales] / n).tolist(), **_accuracies(totals[model.n_scales:-1], n)}


def _oracle_predict(data: Samples, pixels: int = io.BATCH_PIXELS) -> oracle.Prediction:
    """The Bayes-optimal decisions on the samples of ``data``, about ``pixels`` pixels at a time as
    ``msgp oracle`` reads them: a whole test set at 1024² would take GBs of float64 spectra."""
    model = oracle.FourierModel(data.spec)
    batch = max(1, pixels // math.prod(data.spec.shape))
    fields = data.fields[:, 0]
    log_lik = np.concatenate([model.log_likelihoods(fields[i:i + batch].numpy())
                              for i in range(0, len(fields), batch)])
    return oracle.decide(oracle.posterior_from_log_likelihoods(log_lik, data.spec))


_ORACLE_SCORES: dict[tuple[str, bytes], dict[str, Any]] = {}


def oracle_scores(data: Samples) -> dict[str, Any]:
    """The Bayes-optimal classifier's scores on the samples ``data`` (:func:`msgp.oracle.score`:
    joint and per-scale accuracy, confusion matrices, confidence).

    Sample i is a function of the description and i alone, so the score of a set of samples is
    kept for the life of the process: an experiment's runs share one test file, and at 1024² its
    oracle costs more than a run's training on a GPU.
    """
    key = (json.dumps(data.spec.to_dict(), sort_keys=True), np.asarray(data.indices, dtype=np.int64).tobytes())
    if key not in _ORACLE_SCORES:
        if len(_ORACLE_SCORES) >= 8:
            _ORACLE_SCORES.pop(next(iter(_ORACLE_SCORES)))
        _ORACLE_SCORES[key] = oracle.score(_oracle_predict(data), data.labels, data.spec)
    return _ORACLE_SCORES[key]


# A scale whose final training loss is above (1 - LOSS_MARGIN) ln M has not left chance on its own
# training images: a network that learned anything loses at least a few percent of ln M there.
LOSS_MARGIN = 0.05


def learned(train_loss: Sequence[float], test_scales: Sequence[float], oracle_scales: Sequence[float],
            n_choices: int, n_test: int) -> list[dict[str, Any]]:
    """Whether each scale was learned, with the reason when it was not: ``{"learned": bool, "reason":
    str|None, "basis": None|"training"|"test"}`` (``basis``: which verdict failed, the training
    loss or the test accuracy).

    A scale was not learned when its final training loss is within ``LOSS_MARGIN`` of ln M (chance),
    or when its test accuracy is within two standard errors of chance, ``1/M + 2 sqrt((1/M)(1 - 1/M)
    / n_test)``, while the oracle's on the same samples is above that line (so the data could
    tell the classes apart).
    """
    chance = 1.0 / n_choices
    line = chance + 2.0 * math.sqrt(chance * (1.0 - chance) / max(n_test, 1))
    verdicts = []
    for loss, acc, best in zip(train_loss, test_scales, oracle_scales, strict=True):
        reason, basis = None, None
        if loss > (1.0 - LOSS_MARGIN) * math.log(n_choices):
            reason, basis = (f"training loss {loss:.3f} is within {LOSS_MARGIN:.0%} of chance "
                             f"(ln {n_choices} = {math.log(n_choices):.3f})"), "training"
        elif acc < line <= best:
            reason, basis = (f"test accuracy {acc:.3f} is within two standard errors of chance ({line:.3f} on "
                             f"{n_test} images) while the oracle's is {best:.3f}"), "test"
        verdicts.append({"learned": reason is None, "reason": reason, "basis": basis})
    return verdicts


def _summary(config: TrainConfig, spec, test_data: Samples, last: dict[str, Any], world: int) -> dict[str, Any]:
    scored = oracle_scores(test_data)
    oracle_scales = [s["accuracy"] for s in scored["scales"]]
    return {
        "method": config.method,
        "epochs": last["epoch"],
        "n_train": config.n_train,
        "n_test": len(test_data.fields),
        "test_accuracy": last["test_accuracy"],
        "oracle_accuracy": {"joint": scored["joint"]["accuracy"], "scales": oracle_scales},
        "chance": {"joint": 1.0 / spec.n_classes, "scales": [1.0 / spec.n_choices] * spec.n_scales},
        "train_accuracy": last["train_accuracy"],
        "learned": learned(last["train_loss"], last["test_accuracy"]["scales"], oracle_scales, spec.n_choices,
                           len(test_data.fields)),
        "images_per_s": last["images_per_s"],
        "world_size": world,
    }


def other_samples(dataset, config: TrainConfig, n: int):
    """The ``n`` samples of ``dataset`` (not the run's own data) that :func:`evaluate` scores a run of
    ``config`` on: class-balanced, drawn with the run's seed. Fitted methods of the experiment are
    scored on the same ones."""
    return split(dataset, 0, n, seed=config.seed)[1]


def evaluate(run_dir: str | os.PathLike, data: str | os.PathLike | None = None, *, n: int | None = None,
             device: str = "auto", batch_size: int | None = None) -> dict[str, Any]:
    """Score the network of a run beside the oracle, on the same samples.

    The network is calibrated first exactly as the trainer calibrates it before scoring (its logit
    standardisation set to the statistics of the run's training images under the checkpoint's
    weights, in float32), so an interrupted run, or an epoch ``eval_every`` skipped, is scored as
    the trainer would have scored it, not with the running averages. This reads the training data.

    Parameters
    ----------
    run_dir : a directory written by :func:`train` (its ``checkpoint.pt`` is scored, finished or not).
    data : an msgp file with the training data's statistics (``spec.statistics()``; seed and n may
        differ), or such a description as the dict of a :class:`~msgp.spec.DatasetSpec` (its samples
        generated as they are read). ``None``, or the training file itself: the run's own test samples (generated
        again for a run on a dataset description).
    n : class-balanced samples drawn from ``data`` (default: the run's ``n_test``); ignored when the
        run's own test samples are used.
    device : ``auto``, ``cpu`` or ``cuda``.
    batch_size : images per forward pass (default: the run's ``eval_batch_size``).

    Returns
    -------
    ``{"data", "n", "epoch", "network", "oracle"}``; ``network`` and ``oracle`` each hold
    :func:`msgp.oracle.score` (joint and per-scale accuracy with 95% Wilson intervals, per-scale
    confusion matrices, mean confidence) plus ``joint_confusion`` (rows: true class, columns:
    predicted, label order).

    Raises
    ------
    CheckpointError : ``run_dir`` holds no run, or a damaged checkpoint.
    IncompatibleDataError : ``data`` of other statistics than the training data's, or with the
        training data's seed (its samples are the training samples), or training data that
        changed since the run trained.
    ConfigError : ``n`` below 1.

    Example::

        report = evaluate("runs/first", "data/other-seed.h5", n=256)
        report["network"]["joint"]["accuracy"], report["oracle"]["joint"]["accuracy"]
    """
    run_dir = Path(run_dir)
    config = read_config(run_dir)
    ckpt = load_checkpoint(run_dir / "checkpoint.pt")
    model = rebuild_model(ckpt)
    trained = _spec_from_dict(ckpt["spec"])
    data = (config.test_data or config.data) if data is None else data
    test_data = load_samples(_samples_to_score(run_dir, config, ckpt, trained, data, n))
    train_data = _training_data(run_dir, config, ckpt)
    device = resolve_device(device)
    batch_size = config.eval_batch_size if batch_size is None else batch_size
    model.to(device)
    with precision_context("fp32", device):
        calibrate(model, train_data, device, config.eval_batch_size, config.crop)
        logits = _predict(model, test_data.fields, device, batch_size, config.crop)
    name = f"the generated dataset (seed {data['seed']})" if isinstance(data, dict) else str(data)
    result = {"data": name, "n": len(test_data.fields), "epoch": ckpt["epoch"]}
    for key, prediction in (("network", _network_prediction(model.cpu(), logits)),
                            ("oracle", _oracle_predict(test_data))):
        result[key] = _scored(prediction, test_data)
    return result


def _samples_to_score(run_dir: Path, config: TrainConfig, ckpt: dict[str, Any], trained: DatasetSpec,
                      data: str | os.PathLike | dict[str, Any], n: int | None):
    """The samples of ``data`` that :func:`evaluate` scores: the run's own test samples when
    ``data`` is where they came from, else ``n`` (default: the run's ``n_test``) class-balanced
    samples of it (:func:`other_samples`); data of another distribution, or with the training
    data's seed (whose samples are the training samples), are refused."""
    own_file = config.test_data or config.data
    dataset = open_data(data)
    check_compatible(trained, dataset.spec)
    if n is not None and n < 1:
        raise ConfigError(f"`n` must be a positive integer, but got {n}")
    same_samples = dataset.spec.seed == trained.seed or config.test_data is not None
    own_samples = (data == own_file if isinstance(own_file, dict) or isinstance(data, dict)
                   else Path(data).resolve() == Path(own_file).resolve())
    if own_samples and same_samples:
        return dataset.subset(_stored_indices(run_dir, ckpt, "test"))
    if dataset.spec.seed == trained.seed:
        raise IncompatibleDataError(
            f"{data if not isinstance(data, dict) else 'the generated data'} has the training data's seed "
            f"({trained.seed}), so its samples are the training samples; score the run on its own test samples "
            "or on data generated with another seed")
    return other_samples(dataset, config, config.n_test if n is None else n)


def _network_prediction(model: MultiScaleNet, logits: torch.Tensor) -> oracle.Prediction:
    """The network's decisions from its logits, in the oracle's terms: the joint class of the
    highest summed log-probability, each scale's choice, and their probabilities."""
    log_joint = model.joint_log_probs(logits)
    log_marginals = F.log_softmax(logits, dim=-1)
    return oracle.Prediction(labels=log_joint.argmax(1).numpy(), choices=logits.argmax(-1).numpy(),
                             confidence=log_joint.max(1).values.exp().numpy(),
                             scale_confidence=log_marginals.max(-1).values.exp().numpy())


def _scored(prediction: oracle.Prediction, samples: Samples) -> dict[str, Any]:
    """:func:`msgp.oracle.score` of ``prediction`` on ``samples``, with its ``joint_confusion``."""
    truth, n_classes = samples.labels, samples.spec.n_classes
    confusion = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(confusion, (truth, prediction.labels), 1)
    return {**oracle.score(prediction, truth, samples.spec), "joint_confusion": confusion.tolist()}


def _training_data(run_dir: Path, config: TrainConfig, ckpt: dict[str, Any]) -> Samples:
    """The images the run trained on, to calibrate with: its stored training indices of its
    training data, refused when those data are not the ones it was trained on."""
    dataset = open_data(config.data)
    # Checkpoints before version 2 store the training data's description as "spec".
    _check_same_data(ckpt.get("data", {}).get("train", ckpt["spec"]), dataset.spec, "training data")
    return load_samples(dataset.subset(_stored_indices(run_dir, ckpt, "train")))


def _stored_indices(run_dir: Path, ckpt: dict[str, Any], part: str) -> list[int]:
    """The run's ``train`` or ``test`` sample indices: the checkpoint's, or, in checkpoints before
    version 2, those of ``config.json``."""
    if f"{part}_indices" in ckpt:
        return ckpt[f"{part}_indices"]
    try:
        return json.loads((run_dir / "config.json").read_text())[f"{part}_indices"]
    except (KeyError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{run_dir / 'config.json'} is damaged: {err}") from None
