"""``results.csv``: one row per run, in a documented, stable column order (docs/methods.md), so
that results from other machines, plans or papers can be merged by anyone with a csv reader.

A run's scores are dicts ``{"joint": a, "scales": [a_0, ..., a_K-1]}``; in the csv each is a
group of columns ``<part>_joint, <part>_scale0, ...`` (:func:`flatten_scores`, read back by
:func:`unflatten_scores`)."""
from __future__ import annotations

from typing import Any

from .plans import ExperimentPlan
from .statistics import _accessors, failed, ratio

# Accuracies of a run, as (column prefix, result key): training, validation (where settings are
# chosen) and the oracle's there, the report set and the oracle's there; then accuracy / oracle on
# the report set.
_SCORES = (("train", "train_accuracy"), ("valid", "validation_accuracy"), ("valid_oracle", "validation_oracle_accuracy"),
           ("test", "test_accuracy"), ("oracle", "oracle_accuracy"))


def score_columns(part: str, n_scales: int) -> list[str]:
    """The columns of one score: ``<part>_joint``, then ``<part>_scale<s>`` for each scale.

    Examples
    --------
    >>> score_columns("test", 2)
    ['test_joint', 'test_scale0', 'test_scale1']
    """
    return [f"{part}_joint"] + [f"{part}_scale{s}" for s in range(n_scales)]


def flatten_scores(part: str, scores: dict[str, Any]) -> dict[str, Any]:
    """A score dict ``{"joint", "scales"}`` as the columns of :func:`score_columns`.

    Examples
    --------
    >>> flatten_scores("test", {"joint": 0.5, "scales": [0.9, 0.6]})
    {'test_joint': 0.5, 'test_scale0': 0.9, 'test_scale1': 0.6}
    """
    return dict(zip(score_columns(part, len(scores["scales"])), [scores["joint"], *scores["scales"]]))


def unflatten_scores(row: dict[str, str], part: str, n_scales: int) -> dict[str, Any]:
    """The score dict of a csv row's columns :func:`score_columns` (their text as floats)."""
    joint, *scales = (float(row[column]) for column in score_columns(part, n_scales))
    return {"joint": joint, "scales": scales}


def result_columns(n_scales: int) -> list[str]:
    """The columns of results.csv for data with ``n_scales`` scales, in their order: the run
    (method, masks, sizes, seed), the data (the seeds of its training samples, of the validation
    set and of the report set, their sizes, epochs), then the final training accuracy, the
    validation accuracy and the oracle's there, the report-set accuracy and the oracle's there,
    and their ratio (each joint, then per scale, finest first), the wall time and the status."""
    return (["method", "masks", "n_train", "per_class", "seed", "data_seed", "validation_seed", "test_seed",
             "n_validation", "n_test", "epochs"]
            + [column for part in [p for p, _ in _SCORES] + ["ratio"] for column in score_columns(part, n_scales)]
            + ["wall_s", "status", "reason"])


def result_row(result: dict[str, Any], plan: ExperimentPlan) -> dict[str, Any]:
    """A run's row of results.csv; a failed run's accuracies are empty and its reason is given.
    The seeds of the validation and report sets are the run's own where its result records them,
    else the plan's."""
    row = {k: result[k] for k in ("method", "n_train", "per_class", "seed", "data_seed")}
    row["masks"] = result["masks"] or ""
    row["epochs"] = "" if result.get("epochs") is None else result["epochs"]
    row["validation_seed"] = result.get("validation_seed", plan.validation_seed)
    row["test_seed"] = result.get("test_seed", plan.test_seed)
    row["n_validation"] = result.get("n_validation", "")
    row["n_test"] = result.get("n_test", "")
    row["wall_s"] = round(result["wall_s"], 2)
    row["status"], row["reason"] = result.get("status", "finished"), result.get("reason", "")
    if failed(result):
        return row
    for part, key in _SCORES:
        row.update(flatten_scores(part, result[key]))
    ratios = [round(ratio(result, get), 4) for _, get in _accessors(plan.spec.n_scales)]
    row.update(flatten_scores("ratio", {"joint": ratios[0], "scales": ratios[1:]}))
    return row
