"""Losses that do not decompose over samples, and the metrics they stand in for.

:func:`soft_f1_loss` is one minus F1 with the sigmoid probabilities in place of the hard
predictions; :func:`pairwise_auc_loss` is the logistic loss of every (positive, negative) pair's
score difference, a smooth surrogate of one minus ROC AUC. Both are functions of the whole batch.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from scipy.stats import rankdata


def soft_f1_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``1 - 2 sum(p y) / (sum(p) + sum(y))`` with ``p = sigmoid(logits)``."""
    prob = torch.sigmoid(logits)
    return 1 - 2 * (prob * labels).sum() / (prob.sum() + labels.sum())


def pairwise_auc_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean over (positive, negative) pairs of ``log(1 + exp(-(s_pos - s_neg)))``.

    A batch without a positive or without a negative has no pair: the loss is zero, with a zero
    gradient (kept in the graph so every batch takes the same path).
    """
    positive = labels > 0.5
    if not positive.any() or positive.all():
        return logits.sum() * 0.0
    margin = logits[positive][:, None] - logits[~positive][None, :]
    return torch.nn.functional.softplus(-margin).mean()


def cross_entropy_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.binary_cross_entropy_with_logits(logits, labels)


LOSSES = {"f1": soft_f1_loss, "auc": pairwise_auc_loss, "ce": cross_entropy_loss}


def f1_score(scores: np.ndarray, labels: np.ndarray, threshold: float = 0.0) -> float:
    """F1 of the predictions ``scores > threshold`` (0 when nothing is predicted or positive)."""
    predicted = scores > threshold
    tp = float((predicted & (labels > 0.5)).sum())
    denominator = float(predicted.sum() + (labels > 0.5).sum())
    return 2 * tp / denominator if denominator else 0.0


def best_threshold(scores: np.ndarray, labels: np.ndarray) -> float:
    """The threshold on ``scores`` that maximises F1 on these labelled samples (midway between the
    last score predicted positive and the next)."""
    order = np.argsort(-scores, kind="stable")
    is_pos = (labels[order] > 0.5).astype(float)
    f1 = 2 * np.cumsum(is_pos) / (np.arange(1, len(scores) + 1) + is_pos.sum())
    return best_cut(scores[order], f1)


def best_cut(ranked: np.ndarray, value: np.ndarray) -> float:
    """The threshold that keeps the top ``i + 1`` of the descending scores ``ranked`` for the ``i``
    of largest ``value``, among the cuts a threshold can make: not inside a run of tied scores."""
    cuttable = np.append(ranked[1:] < ranked[:-1], True)
    best = int(np.flatnonzero(cuttable)[np.argmax(value[cuttable])])
    below = ranked[best + 1] if best + 1 < len(ranked) else ranked[best] - 1.0
    return float(0.5 * (ranked[best] + below))


def roc_auc(positive: np.ndarray, negative: np.ndarray, standard_error: bool = False):
    """ROC AUC of scores of positives against negatives (ties count one half): the Mann–Whitney
    statistic; with ``standard_error``, also DeLong's standard error, ``(auc, se)``."""
    m, n = len(positive), len(negative)
    if m == 0 or n == 0:
        raise ValueError("the AUC needs at least one positive and one negative")
    ranks = rankdata(np.concatenate([positive, negative]))
    rank_pos = ranks[:m]
    auc = float((rank_pos.sum() - m * (m + 1) / 2) / (m * n))
    if not standard_error:
        return auc
    # DeLong: each positive's fraction of negatives below it, each negative's of positives above.
    v10 = (rank_pos - rankdata(positive)) / n
    v01 = 1.0 - (ranks[m:] - rankdata(negative)) / m
    se = math.sqrt(v10.var(ddof=1) / m + v01.var(ddof=1) / n)
    return auc, se


def auc_score(scores: np.ndarray, labels: np.ndarray) -> float:
    return roc_auc(scores[labels > 0.5], scores[labels <= 0.5])


def f1_from_rates(tpr: float, fpr: float, prior: float, n_pos: int, n_neg: int) -> tuple[float, float]:
    """Population F1 at ``prior`` of a (TPR, FPR) point measured on ``n_pos`` positives and
    ``n_neg`` negatives, and its delta-method standard error."""
    denominator = prior * tpr + prior + (1 - prior) * fpr
    f1 = 2 * prior * tpr / denominator
    d_tpr = 2 * prior * (prior + (1 - prior) * fpr) / denominator**2
    d_fpr = -2 * prior * tpr * (1 - prior) / denominator**2
    variance = d_tpr**2 * tpr * (1 - tpr) / n_pos + d_fpr**2 * fpr * (1 - fpr) / n_neg
    return f1, math.sqrt(variance)
