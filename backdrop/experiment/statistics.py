"""Accuracy as a fraction of the oracle's, paired differences between methods, whether a run
fitted its training set, and the backdrop setting chosen per size on the validation set.

Runs of two methods with the same seed share the training subset (and the validation and report
files), so differences are paired by seed (:func:`compare`, with the runner's
:func:`~backdrop.runner.paired_difference`, and Holm's correction over a table,
:func:`~backdrop.runner.holm_effects`). Failed runs (:func:`failed`) are left out of the
statistics. :func:`choose` reads validation scores only, so the report set scores a choice it never
made.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..runner import paired_difference


def _accessors(n_scales: int) -> list[tuple[str, Callable[[dict], float]]]:
    """(name, accuracy getter) of the joint accuracy and each scale's."""
    return [("joint", lambda a: a["joint"])] + [(f"scale {s}", lambda a, s=s: a["scales"][s]) for s in range(n_scales)]


SCORED = {"test": ("test_accuracy", "oracle_accuracy"),
          "validation": ("validation_accuracy", "validation_oracle_accuracy")}


def ratio(result: dict[str, Any], get: Callable[[dict], float], on: str = "test") -> float:
    """A run's accuracy as a fraction of the oracle's on the same samples of the report set
    (``on="test"``) or of the validation set."""
    network, best = SCORED[on]
    return get(result[network]) / get(result[best])


def failed(result: dict[str, Any]) -> bool:
    """Whether a run's result records a failure (results written before failures were recorded
    have no status: they finished)."""
    return result.get("status", "finished") == "failed"


def _group(results: Sequence[dict[str, Any]], key: Callable[[dict], Any]) -> dict[Any, list[dict]]:
    """The results (or runs) by ``key``, the groups and their members in the order first met."""
    groups: dict[Any, list[dict]] = {}
    for r in results:
        groups.setdefault(key(r), []).append(r)
    return groups


# Below FITTED times the oracle's joint accuracy (on the report set) a run has not fitted its
# training set. Relative to the oracle, because where the Bayes-optimal rule itself is right on only
# 93% of images (default3's coarsest scale), a run that learned that rule instead of memorising its
# images is at about 0.93 on them too (with 256 images, ± 0.016): against a bare 0.9 the runs that
# generalised best were the ones flagged. Where the oracle is right on every image (paper128) the
# floor is 0.9. A cell with such a run, or with a run one of whose scales stayed at chance in
# training (the trainer's verdict in summary.json, on the training loss), is marked † in the
# tables, hollow in the figure, and not to be compared. A run that fitted its training set but
# stays at chance on a scale of the validation set has converged: that is what it learned from
# its images, and it is compared.
FITTED = 0.9


def _unlearned_in_training(verdict: dict[str, Any]) -> bool:
    # Records written before verdicts had a basis say it in their reason.
    basis = verdict.get("basis") or ("training" if str(verdict.get("reason") or "").startswith("training") else "test")
    return not verdict["learned"] and basis == "training"


def fit_floor(result: dict[str, Any]) -> float:
    """The final training accuracy (joint) below which ``result`` has not fitted its training set:
    :data:`FITTED` times the oracle's joint accuracy on the report set (times 1 without one)."""
    return FITTED * (result.get("oracle_accuracy") or {}).get("joint", 1.0)


def run_fitted(result: dict[str, Any]) -> bool:
    """Whether one run fitted its training set: final training accuracy ≥ :func:`fit_floor` and no
    scale whose training loss stayed at chance (the trainer's verdict on the test set, a scale at
    chance there, is an outcome, not a failure to fit; runs recorded before the verdict count as
    fitted)."""
    return (result["train_accuracy"]["joint"] >= fit_floor(result)
            and not any(_unlearned_in_training(v) for v in result.get("learned") or []))


def fitted(runs: Sequence[dict[str, Any]]) -> bool:
    """Whether every run of a cell fitted (:func:`run_fitted`): one seed that did not is not hidden
    by the others' mean."""
    return all(run_fitted(r) for r in runs)


def compare(results: Sequence[dict[str, Any]], method: str, reference: str, per_class: int,
            n_scales: int, masks_of: Callable[[dict], Any] = lambda r: None) -> list[dict[str, Any]]:
    """Paired differences ``method - reference`` in accuracy at one size, joint and per scale,
    over the seeds both have (``masks_of`` picks one backdrop setting of the method)."""
    ours = {r["seed"]: r for r in results if r["method"] == method and r["per_class"] == per_class
            and masks_of(r) in (None, r["masks"])}
    theirs = {r["seed"]: r for r in results if r["method"] == reference and r["per_class"] == per_class}
    seeds = sorted(set(ours) & set(theirs))
    if not seeds:
        return []
    both_fitted = fitted([ours[s] for s in seeds]) and fitted([theirs[s] for s in seeds])
    rows = []
    for name, get in _accessors(n_scales):
        diff = paired_difference([get(ours[s]["test_accuracy"]) for s in seeds],
                                 [get(theirs[s]["test_accuracy"]) for s in seeds])
        rows.append({"method": method, "masks": ours[seeds[0]]["masks"] or "", "reference": reference,
                     "per_class": per_class, "accuracy": name, **diff, "fitted": both_fitted})
    return rows


def choose(results: Sequence[dict[str, Any]], per_class: int, method: str | None = None) -> str | None:
    """The backdrop setting (its description) whose runs at ``per_class`` have the best mean joint
    accuracy on the validation set, among the settings of ``method`` (``None``: of every backdrop
    method); ``None`` when none has a run.

    A setting whose runs all finished is preferred to one with a failed run, and among those one
    whose cell fitted (:func:`fitted`) to any that did not; the mean is over the runs that
    finished. Report-set scores are never read."""
    cells = _group([r for r in results if r["per_class"] == per_class and r["masks"]
                    and (method is None or r["method"] == method)], lambda r: r["masks"])
    scored = {k: [r for r in g if not failed(r)] for k, g in cells.items()}
    scored = {k: g for k, g in scored.items() if g}
    whole = {k: g for k, g in scored.items() if len(g) == len(cells[k])}
    pool = {k: g for k, g in whole.items() if fitted(g)} or whole or scored
    if not pool:
        return None
    return max(pool, key=lambda k: np.mean([r["validation_accuracy"]["joint"] for r in pool[k]]))


def chosen(results: Sequence[dict[str, Any]], methods: Sequence[str], best: str) -> tuple[list[dict], list[dict]]:
    """Each backdrop method's runs at its setting chosen per size, and those of the best setting of
    all of them relabelled ``best``; and the choices, one ``{"per_class", "method", "masks",
    "validation_joint", "settings"}`` per size and method (``best`` last), made on every seed.

    The rows are cross-fitted: each seed's run is the one at the setting chosen on the *other*
    seeds' validation scores (:func:`held_out_choices`), so a seed's luck in training, which its
    validation and report scores share, never picks its own row. Where every seed's choice is the
    same, a row's ``masks`` is that setting; otherwise it says how many seeds took which."""
    rows, choices = [], []
    for n in sorted({r["per_class"] for r in results}):
        for method in (*methods, best):
            scope = None if method == best else method
            setting = choose(results, n, scope)
            if setting is None:
                continue
            picks = held_out_choices(results, n, scope)
            label = _label(picks)
            for seed, pick in picks.items():
                rows += [{**r, "method": best if method == best else r["method"], "masks": label}
                         for r in results if r["per_class"] == n and r["seed"] == seed and r["masks"] == pick]
            finished = [r for r in results if r["per_class"] == n and r["masks"] == setting and not failed(r)]
            candidates = {r["masks"] for r in results if r["per_class"] == n and r["masks"]
                          and (method == best or r["method"] == method)}
            choices.append({"per_class": n, "method": method, "masks": setting, "settings": len(candidates),
                            "validation_joint": float(np.mean([r["validation_accuracy"]["joint"] for r in finished]))})
    return rows, choices


def held_out_choices(results: Sequence[dict[str, Any]], per_class: int, method: str | None = None) -> dict[int, str]:
    """Each seed's setting at ``per_class``, chosen (:func:`choose`) on the validation scores of
    every other seed's runs; on every seed's, its own included, where the others give nothing to
    choose on (a single seed, or the others' runs all failed)."""
    seeds = sorted({r["seed"] for r in results if r["per_class"] == per_class and r["masks"]
                    and (method is None or r["method"] == method)})
    everyone = choose(results, per_class, method)
    return {s: choose([r for r in results if r["seed"] != s], per_class, method) or everyone for s in seeds}


def _label(picks: dict[int, str]) -> str:
    counts = Counter(picks.values())
    if len(counts) == 1:
        return next(iter(counts))
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return "per seed: " + "; ".join(f"{k} ({c} seed{'s' * (c > 1)})" for k, c in ranked)
