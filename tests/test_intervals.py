"""Wilson intervals for accuracies, Holm's correction over a table of paired differences, and the
rebuilding of a committed comparisons table from its results.csv."""
from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from backdrop.experiment.plans import PLANS
from backdrop.experiment.report import rebuild_comparisons
from backdrop.runner import holm, holm_effects, paired_difference
from msgp.intervals import format_accuracy, wilson
from msgp.oracle import Prediction, score
from msgp.spec import DatasetSpec

RESULTS = Path(__file__).resolve().parents[1] / "results"


@pytest.mark.parametrize("correct, n", [(0, 10), (10, 10), (5, 10), (37, 512), (64, 64), (1, 3)])
def test_wilson_matches_scipy(correct, n):
    reference = stats.binomtest(correct, n).proportion_ci(confidence_level=0.95, method="wilson")
    low, high = wilson(correct, n)
    assert low == pytest.approx(reference.low, rel=1e-12, abs=1e-15)
    assert high == pytest.approx(reference.high, rel=1e-12, abs=1e-15)
    reference = stats.binomtest(correct, n).proportion_ci(confidence_level=0.9, method="wilson")
    assert wilson(correct, n, 0.9) == pytest.approx((reference.low, reference.high), rel=1e-12, abs=1e-15)


def test_wilson_is_not_empty_where_wald_is():
    # Where the accuracy is 0 or 1 the Wald interval has width zero; Wilson's reaches n / (n + z^2).
    z = stats.norm.ppf(0.975)
    assert wilson(64, 64) == (pytest.approx(64 / (64 + z * z), rel=1e-12), 1.0)
    assert wilson(0, 64) == (0.0, pytest.approx(z * z / (64 + z * z), rel=1e-12))
    assert format_accuracy({"accuracy": 1.0, "low": 64 / (64 + z * z), "high": 1.0}) == "100.0% [94.3, 100.0]"


@pytest.mark.parametrize("correct, n, level", [(3, 0, 0.95), (11, 10, 0.95), (-1, 10, 0.95), (2.5, 10, 0.95),
                                               (5, 10, 1.0), (5, 10, 0.0)])
def test_wilson_rejects_bad_arguments(correct, n, level):
    with pytest.raises(ValueError, match="must be"):
        wilson(correct, n, level)


def test_oracle_scores_carry_wilson_intervals():
    spec = DatasetSpec.default(2, 128, n=8)
    labels = np.arange(8) % spec.n_classes
    choices = spec.choices(labels).copy()
    choices[:3, 1] = 1 - choices[:3, 1]  # scale 1 wrong on 3 of the 8
    prediction = Prediction(labels=labels, choices=choices, confidence=np.ones(8), scale_confidence=np.ones((8, 2)))
    scored = score(prediction, labels, spec)
    assert (scored["scales"][0]["low"], scored["scales"][0]["high"]) == wilson(8, 8)
    assert (scored["scales"][1]["low"], scored["scales"][1]["high"]) == wilson(5, 8)
    assert "stderr" not in scored["joint"]


def test_holm_by_hand():
    # p sorted: 0.005 (x4 = 0.02), 0.01 (x3 = 0.03), 0.03 (x2 = 0.06), 0.04 (x1 = 0.04, raised to 0.06).
    assert holm([0.03, 0.005, 0.04, 0.01]) == pytest.approx([0.06, 0.02, 0.06, 0.03], rel=1e-12)
    # A family of one is not corrected; adjusted values never exceed 1.
    assert holm([0.2]) == [0.2]
    assert holm([0.5, 0.9]) == [1.0, 1.0]
    rows = [{"p": p} for p in (0.03, 0.005, 0.04, 0.01)]
    assert [r["holm_effect"] for r in holm_effects(rows)] == [False, True, False, True]


def test_paired_difference_p_value_is_the_paired_t_test():
    rng = np.random.default_rng(1)
    a, b = rng.normal(0.8, 0.05, 8), rng.normal(0.78, 0.05, 8)
    assert paired_difference(a, b)["p"] == pytest.approx(stats.ttest_rel(a, b).pvalue, rel=1e-9)
    assert paired_difference([1.0, 1.0], [1.0, 1.0])["p"] == 1.0   # no difference and no spread
    assert paired_difference([1.0, 1.0], [0.9, 0.9])["p"] == 0.0   # the same difference every time
    assert paired_difference([1.0], [0.9])["p"] == 1.0             # one pair: no test


def test_rebuilt_comparisons_match_the_committed_intervals(tmp_path):
    # The committed paper128-v2 table made again from its results.csv alone: every interval as
    # committed, the raw marks the old ones, and ** only where Holm over the whole table keeps one.
    shutil.copy(RESULTS / "paper128-v2" / "results.csv", tmp_path / "results.csv")
    rebuild_comparisons(PLANS["paper128-lean"](), tmp_path)
    with open(tmp_path / "comparisons.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    with open(RESULTS / "paper128-v2" / "comparisons.csv", newline="") as f:
        committed = list(csv.DictReader(f))
    assert [(r["method"], r["reference"], r["per_class"], r["accuracy"]) for r in rows] == \
        [(r["method"], r["reference"], r["per_class"], r["accuracy"]) for r in committed]
    for r, c in zip(rows, committed):
        assert float(r["mean"]) == pytest.approx(float(c["mean"]), rel=1e-9, abs=1e-12)
        assert r["effect"] == c["effect"]
    adjusted = holm([float(r["p"]) for r in rows])
    assert [r["holm_effect"] == "True" for r in rows] == [q < 0.05 for q in adjusted]
    assert all(r["effect"] == "True" for r in rows if r["holm_effect"] == "True")
    assert (tmp_path / "comparisons.md").read_text().count("] **") == sum(r["holm_effect"] == "True" for r in rows)
