"""``results.csv``: one row per run, in a documented, stable column order (docs/methods.md), so
that results from other machines, plans or papers can be merged by anyone with a csv reader."""
from __future__ import annotations

from typing import Any

from .plans import ExperimentPlan
from .statistics import _accessors, failed, ratio

# Accuracies of a run, as (column prefix, result key): training, validation (where settings are
# chosen) and the oracle's there, the report set and the oracle's there; then accuracy / oracle on
# the report set.
_SCORES = (("train", "train_accuracy"), ("valid", "validation_accuracy"), ("valid_oracle", "validation_oracle_accuracy"),
           ("test", "test_accuracy"), ("oracle", "oracle_accuracy"))


def result_columns(n_scales: int) -> list[str]:
    """The columns of results.csv for data with ``n_scales`` scales, in their order: the run
    (method, masks, sizes, seed), the data (the seeds of its training samples, of the validation
    set and of the report set, their sizes, epochs), then the final training accuracy, the
    validation accuracy and the oracle's there, the report-set accuracy and the oracle's there,
    and their ratio (each joint, then per scale, finest first), the wall time and the status."""
    names = ["joint"] + [f"scale{s}" for s in range(n_scales)]
    return (["method", "masks", "n_train", "per_class", "seed", "data_seed", "validation_seed", "test_seed",
             "n_validation", "n_test", "epochs"]
            + [f"{part}_{n}" for part in [p for p, _ in _SCORES] + ["ratio"] for n in names]
            + ["wall_s", "status", "reason"])


def result_row(result: dict[str, Any], plan: ExperimentPlan) -> dict[str, Any]:
    """A run's row of results.csv; a failed run's accuracies are empty and its reason is given.
    The seeds of the validation and report sets are the run's own where its result records them,
    else the plan's."""
    K = plan.spec.n_scales
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
    for (_, get), col in zip(_accessors(K), ["joint"] + [f"scale{s}" for s in range(K)]):
        for part, key in _SCORES:
            row[f"{part}_{col}"] = get(result[key])
        row[f"ratio_{col}"] = round(ratio(result, get), 4)
    return row
