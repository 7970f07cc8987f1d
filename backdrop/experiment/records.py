"""``results.csv``: one row per run, in a documented, stable column order (docs/methods.md), so
that results from other machines, plans or papers can be merged by anyone with a csv reader."""
from __future__ import annotations

from typing import Any

from .plans import ExperimentPlan
from .statistics import _accessors, failed, ratio


def result_columns(n_scales: int) -> list[str]:
    """The columns of results.csv for data with ``n_scales`` scales, in their order: the run
    (method, masks, sizes, seed), the data (training and test file seeds, test images, epochs), the
    final training accuracy, the test accuracy, the oracle's on the same test images and their
    ratio (each joint, then per scale, finest first), the wall time and the status."""
    names = ["joint"] + [f"scale{s}" for s in range(n_scales)]
    return (["method", "masks", "n_train", "per_class", "seed", "data_seed", "test_seed", "n_test", "epochs"]
            + [f"{part}_{n}" for part in ("train", "test", "oracle", "ratio") for n in names]
            + ["wall_s", "status", "reason"])


def result_row(result: dict[str, Any], plan: ExperimentPlan) -> dict[str, Any]:
    """A run's row of results.csv; a failed run's accuracies are empty and its reason is given.
    The seeds of the data are the run's own where its result records them, else the plan's files'."""
    K = plan.spec.n_scales
    row = {k: result[k] for k in ("method", "n_train", "per_class", "seed")}
    row["masks"] = result["masks"] or ""
    row["epochs"] = "" if result.get("epochs") is None else result["epochs"]
    row["data_seed"] = result.get("data_seed", plan.train_spec.seed)
    row["test_seed"] = result.get("test_seed", plan.test_seed)
    row["n_test"] = result.get("n_test", "")
    row["wall_s"] = round(result["wall_s"], 2)
    row["status"], row["reason"] = result.get("status", "finished"), result.get("reason", "")
    if failed(result):
        return row
    for (_, get), col in zip(_accessors(K), ["joint"] + [f"scale{s}" for s in range(K)]):
        row[f"train_{col}"] = get(result["train_accuracy"])
        row[f"test_{col}"] = get(result["test_accuracy"])
        row[f"oracle_{col}"] = get(result["oracle_accuracy"])
        row[f"ratio_{col}"] = round(ratio(result, get), 4)
    return row
