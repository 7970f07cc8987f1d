"""The hand-written F1, ROC AUC and F1-optimal thresholds of backdrop.nondecomposable against
scikit-learn's, on random scores with ties and with class imbalance."""
from __future__ import annotations

import numpy as np
import pytest

from backdrop.nondecomposable.losses import auc_score, best_threshold, f1_from_rates, f1_score, roc_auc
from backdrop.nondecomposable.problems import best_rate_threshold

metrics = pytest.importorskip("sklearn.metrics")

# (positive fraction, decimals the scores are rounded to: few decimals, many ties)
CASES = [(0.5, 6), (0.5, 1), (0.1, 1), (0.03, 2), (0.9, 0)]
SEEDS = range(5)


def draw(seed: int, prior: float, decimals: int, n: int = 400):
    """Labels with about ``prior`` positives (at least one of each class) and scores that rank
    positives higher on average, rounded so that many are tied."""
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < prior).astype(float)
    labels[:2] = [1.0, 0.0]
    scores = np.round(rng.normal(size=n) + 1.2 * labels, decimals)
    return scores, labels


def sklearn_best_f1(scores, labels) -> float:
    precision, recall, _ = metrics.precision_recall_curve(labels, scores)
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    return float(f1.max())


@pytest.mark.parametrize("prior, decimals", CASES)
def test_f1_score_is_sklearns(prior, decimals):
    for seed in SEEDS:
        scores, labels = draw(seed, prior, decimals)
        # Thresholds on tied scores (sklearn predicts with the same strict '>' once given the
        # predictions), below all and above all (nothing predicted: F1 0, sklearn's zero_division).
        for threshold in [*np.quantile(scores, [0.1, 0.5, 0.9]), scores[3], scores.min() - 1, scores.max() + 1]:
            ours = f1_score(scores, labels, threshold)
            theirs = metrics.f1_score(labels > 0.5, scores > threshold, zero_division=0.0)
            assert ours == pytest.approx(theirs, rel=1e-12, abs=1e-15)
    # No positive and nothing predicted: both 0.
    assert f1_score(np.zeros(4), np.zeros(4)) == metrics.f1_score(np.zeros(4), np.zeros(4), zero_division=0.0) == 0.0


@pytest.mark.parametrize("prior, decimals", CASES)
def test_auc_is_sklearns(prior, decimals):
    for seed in SEEDS:
        scores, labels = draw(seed, prior, decimals)
        # Ties between a positive and a negative count one half in both.
        assert auc_score(scores, labels) == pytest.approx(metrics.roc_auc_score(labels, scores), rel=1e-12)
        auc, se = roc_auc(scores[labels > 0.5], scores[labels <= 0.5], standard_error=True)
        assert auc == pytest.approx(metrics.roc_auc_score(labels, scores), rel=1e-12) and se > 0


@pytest.mark.parametrize("prior, decimals", CASES)
def test_best_threshold_reaches_sklearns_best_f1(prior, decimals):
    for seed in SEEDS:
        scores, labels = draw(seed, prior, decimals)
        best = sklearn_best_f1(scores, labels)
        threshold = best_threshold(scores, labels)
        # The threshold is a cut a threshold can make (not inside a run of tied scores) and it
        # reaches the best F1 over every cut of sklearn's precision-recall curve.
        assert f1_score(scores, labels, threshold) == pytest.approx(best, rel=1e-12)
        assert not np.any(scores == threshold)
        # The population F1 at the sample's own prior is the sample F1, so the rate threshold agrees.
        positive, negative = scores[labels > 0.5], scores[labels <= 0.5]
        rate = best_rate_threshold(positive, negative, float(labels.mean()))
        assert f1_score(scores, labels, rate) == pytest.approx(best, rel=1e-12)
        tpr, fpr = float((positive > rate).mean()), float((negative > rate).mean())
        f1, _ = f1_from_rates(tpr, fpr, float(labels.mean()), len(positive), len(negative))
        assert f1 == pytest.approx(best, rel=1e-12)
