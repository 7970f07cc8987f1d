"""One run: a network trained on one problem with one loss and one way of batching it.

Methods, each trained for the same number of steps:

- ``full``: the loss on batches of ``batch``, full gradient;
- ``backdrop``: the same loss value on batches of ``batch``, with the weight gradient flowing back
  only through a random ``1 - p`` of the samples (batch backdrop, ``Backdrop(p, dims=(0,))`` on the
  logits, rescaled by batch / kept);
- ``small``: the loss on batches of the kept count, ``round(batch (1 - p))``;
- ``ce``: cross-entropy on batches of ``batch`` (it decomposes over samples), then, for F1, the
  threshold that maximises F1 on a validation quarter held out of the same training samples.

Randomness is explicit, as in the main trainer: a run draws its initial weights, its batch order
and its masks from three streams of its seed, ``numpy.random.SeedSequence(seed, spawn_key=(k,))``
for the purposes ``k`` of :data:`INIT`, :data:`ORDER` and :data:`MASKS`, each a ``torch.Generator``
of its own (:func:`streams`); no global generator is seeded or read. Runs of one seed share their
streams whatever their method, so they start from the same weights and, at the same batch size,
see the same batches. A result records the scheme (``"streams": 2``, :data:`STREAMS`); results
without it were drawn with the earlier scheme 1 (torch's global generator seeded with the seed for
the weights, ``seed`` for the order and ``seed + 1`` for the masks, so that seed s's masks were
seed s + 1's order), and the runner never mixes the two.

Backdrop is trained as :func:`backdrop_logits` computes it: one forward pass of the whole batch
without a graph, then a forward and backward pass of the kept samples only, whose logits replace
theirs in the loss. That is the gradient of the Backdrop layer on the logits (the tests check it),
at the cost the method promises: the backward pass of the masked samples is skipped, not
multiplied by zero.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ..functional import draw_mask, mask_gradient
from ..training import stream_seed
from .losses import LOSSES, auc_score, best_threshold, f1_score
from .problems import Sample

# A run's training metric has flattened when it moved by less than this fraction of its final value
# between the first checkpoint at or past 3/4 of the steps and the last.
FLAT = 0.01

# The purposes of a run's random streams (the spawn keys of its seed's SeedSequence), and the
# scheme a result records: 2 for these; 1, the earlier global seeding, where none is recorded.
INIT, ORDER, MASKS = 0, 1, 2
STREAMS = 2


@dataclass(frozen=True)
class LossRun:
    """One training run of a non-decomposable loss: its problem, the metric it is scored by, and
    its method.

    ``loss`` is the non-decomposable loss of the plan (``f1`` or ``auc``): the loss trained by
    ``full``, ``backdrop`` and ``small``, and the metric every method is scored by.
    """

    problem: str
    loss: str
    method: str
    seed: int
    batch: int
    steps: int
    lr: float
    n_train: int
    n_test: int
    checkpoints: int
    p: float | None = None

    @property
    def tag(self) -> str:
        if self.method == "backdrop":
            return f"backdrop-p{self.p:g}"
        if self.method == "small":
            return f"small-{self.batch}"
        return self.method

    @property
    def name(self) -> str:
        return f"{self.problem}-{self.loss}-{self.tag}-s{self.seed}"

    def settings(self) -> dict[str, Any]:
        return asdict(self)


def streams(seed: int) -> dict[int, torch.Generator]:
    """The CPU generators of a run of seed ``seed``, by purpose (:data:`INIT`, :data:`ORDER`,
    :data:`MASKS`): each seeded by :func:`backdrop.training.stream_seed` ``(seed, purpose)``, as
    the main trainer seeds its own streams.

    Examples
    --------
    >>> g = streams(0)
    >>> torch.equal(torch.rand(3, generator=g[ORDER]), torch.rand(3, generator=streams(0)[ORDER]))
    True
    """
    return {purpose: torch.Generator().manual_seed(stream_seed(seed, purpose)) for purpose in (INIT, ORDER, MASKS)}


def make_network(in_features: int, prior: float, generator: torch.Generator) -> nn.Module:
    """A 2-layer MLP (no normalisation layer, so samples do not interact in the forward pass) whose
    output bias starts at the prior's log-odds: every method starts from predicting the base rate,
    rather than from a soft-F1 that is best served by calling everything positive. The other
    weights are drawn from ``generator`` as torch draws a ``Linear``'s by default (Kaiming-uniform
    weights, biases uniform within ``1 / sqrt(fan_in)``)."""
    net = nn.Sequential(nn.Linear(in_features, 64, device="meta"), nn.ReLU(),
                        nn.Linear(64, 1, device="meta")).to_empty(device="cpu")
    with torch.no_grad():
        for layer in (net[0], net[2]):
            nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
            bound = 1 / math.sqrt(layer.in_features)
            nn.init.uniform_(layer.bias, -bound, bound, generator=generator)
        net[-1].bias.fill_(math.log(prior / (1 - prior)))
    return net


def logits_of(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return net(x).squeeze(-1)


def backdrop_logits(net: nn.Module, x: torch.Tensor, p: float, generator: torch.Generator | None = None,
                    mask: torch.Tensor | None = None) -> torch.Tensor:
    """The logits of the batch ``x``, whose gradient flows back only through the kept samples.

    The values are the whole batch's logits; the gradient is that of ``Backdrop(p, dims=(0,))`` on
    them: kept samples' logits get the incoming gradient times batch / kept, the others none. Only
    the kept samples are run with a graph. ``mask`` (as :func:`backdrop.draw_mask` draws it, shape
    ``(N,)``) replaces the random draw.
    """
    with torch.no_grad():
        values = logits_of(net, x)
    if mask is None:
        mask = draw_mask(values, p, dims=(0,), generator=generator)
    kept = mask.nonzero().squeeze(-1)
    return values.index_put((kept,), mask_gradient(logits_of(net, x[kept]), mask[kept]))


def training_step(run: LossRun, net: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
                  masks: torch.Generator) -> float:
    """One step of ``run``'s method on the batch ``(x, y)``; returns the loss."""
    if run.method == "backdrop":
        logits = backdrop_logits(net, x, run.p, masks)
    else:
        logits = logits_of(net, x)
    loss = LOSSES["ce" if run.method == "ce" else run.loss](logits, y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return float(loss.detach())


def _scores(net: nn.Module, x: torch.Tensor, chunk: int = 4096) -> np.ndarray:
    with torch.no_grad():
        return torch.cat([logits_of(net, part) for part in x.split(chunk)]).double().numpy()


def _metrics(loss: str, scores: np.ndarray, labels: np.ndarray, threshold: float) -> float:
    return f1_score(scores, labels, threshold) if loss == "f1" else auc_score(scores, labels)


def _batches(n: int, batch: int, order: torch.Generator):
    """Indices of whole batches of ``n`` samples, epoch after epoch, each epoch in a new order."""
    while True:
        yield from (b for b in torch.randperm(n, generator=order).split(batch) if len(b) == batch)


def train_run(run: LossRun, train: Sample, test: Sample, prior: float) -> dict[str, Any]:
    """Train ``run`` on ``train`` and score it on ``test`` at ``run.checkpoints`` evenly spaced steps.

    Returns the run's result: its settings, the final test F1 and AUC (F1 at logit 0, or at the
    validation threshold for ``ce``), the curves of training seconds, training and test metric at
    each checkpoint, the training seconds in all (the steps alone, not the evaluations), whether
    the training metric had flattened (:data:`FLAT`) and the scheme of its random streams
    (:data:`STREAMS`).
    """
    x, y = train.x, train.y
    x_val = y_val = None
    if run.method == "ce":  # its threshold is chosen on a quarter of the training samples held out
        n_val = len(y) // 4
        x, x_val, y, y_val = x[n_val:], x[:n_val], y[n_val:], y[:n_val]
    generators = streams(run.seed)
    net = make_network(x.shape[1], prior, generators[INIT])
    optimizer = torch.optim.Adam(net.parameters(), lr=run.lr)
    # Cosine decay to zero: the steps end where the metric has settled, not where a constant
    # step size keeps it jittering.
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, run.steps)
    checkpoints = {round(run.steps * (i + 1) / run.checkpoints) for i in range(run.checkpoints)}
    curve: dict[str, list[float]] = {"step": [], "seconds": [], "train": [], "test": []}
    batches = _batches(len(y), run.batch, generators[ORDER])
    seconds, threshold = 0.0, 0.0
    for step in range(1, run.steps + 1):
        start = time.perf_counter()
        idx = next(batches)
        training_step(run, net, optimizer, x[idx], y[idx], generators[MASKS])
        schedule.step()
        seconds += time.perf_counter() - start
        if step in checkpoints:
            if run.method == "ce":
                threshold = best_threshold(_scores(net, x_val), y_val.numpy())
            curve["step"].append(step)
            curve["seconds"].append(seconds)
            curve["train"].append(_metrics(run.loss, _scores(net, x), y.numpy(), threshold))
            curve["test"].append(_metrics(run.loss, _scores(net, test.x), test.y.numpy(), threshold))
    scores, labels = _scores(net, test.x), test.y.numpy()
    last, quarter = curve["train"][-1], curve["train"][max(0, math.ceil(0.75 * run.checkpoints) - 1)]
    return {"name": run.name, "status": "finished", "settings": run.settings(),
            "test_f1": f1_score(scores, labels, threshold), "test_auc": auc_score(scores, labels),
            "threshold": threshold, "train_seconds": seconds, "curve": curve,
            "converged": bool(abs(last - quarter) <= FLAT * abs(last)), "torch_threads": torch.get_num_threads(),
            "streams": STREAMS}
