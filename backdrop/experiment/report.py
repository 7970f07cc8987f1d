"""The tables (csv and markdown) and figures of an experiment's recorded runs: :func:`write_outputs`.
The sweep's table is of validation scores, where the setting per size is chosen; every other table
is of report-set scores."""
from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from msgp.atomic import atomic_open
from msgp.plotting import PlotUnavailable, pyplot

from ..runner import format_interval, holm_effects, mean_std, write_csv, write_text
from .figures import plot_efficiency, plot_input_gradient, plot_sweep
from .plans import BACKDROP_METHODS, BEST, CONTROLS, METHODS, REFERENCES, ExperimentPlan
from .records import _SCORES, result_columns, result_row, unflatten_scores
from .statistics import FITTED, _accessors, _group, chosen, compare, failed, ratio, run_fitted


def summary_table(results: Sequence[dict[str, Any]], key: Callable[[dict], Any], key_headers: Sequence[str],
                  key_cells: Callable[[Any], Sequence[str]], n_scales: int, on: str = "test") -> str:
    """A markdown table, one row per group of runs: mean ± std over its seeds of the accuracy as a
    fraction of the oracle's (joint, per scale) on the report set (``on="test"``) or the
    validation set, the mean oracle accuracy there, and the mean final training accuracy (joint;
    near 1 when a run has fitted its training set; † below :func:`fit_floor`, FITTED times the
    oracle's).

    The statistics are over the runs that finished (``seeds``); where some failed, a ``failed``
    column counts them per group (a group with no finished run shows ``—``)."""
    accessors = _accessors(n_scales)
    any_failed = any(failed(r) for r in results)
    headers = [*key_headers, "seeds", *(["failed"] if any_failed else []),
               *[f"{name} / oracle" for name, _ in accessors], *[f"oracle {name}" for name, _ in accessors],
               "train joint"]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for k, everything in _group(results, key).items():
        group = [r for r in everything if not failed(r)]
        cells = [*key_cells(k), str(len(group))] + ([str(len(everything) - len(group))] if any_failed else [])
        if not group:
            lines.append("| " + " | ".join(cells + ["—"] * (2 * len(accessors) + 1)) + " |")
            continue
        oracle = "oracle_accuracy" if on == "test" else "validation_oracle_accuracy"
        cells += [mean_std([ratio(r, get, on) for r in group]) for _, get in accessors]
        cells += [f"{np.mean([get(r[oracle]) for r in group]):.3f}" for _, get in accessors]
        unfitted = sum(not run_fitted(r) for r in group)
        cells.append(f"{np.mean([r['train_accuracy']['joint'] for r in group]):.3f}"
                     + (f" † ({len(group) - unfitted} of {len(group)} fitted)" if unfitted else ""))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def failed_list(results: Sequence[dict[str, Any]]) -> str:
    """The failed runs and their reasons, as markdown lines (empty when none failed)."""
    lines = [f"- {r['name']}: {r['reason']}" for r in results if failed(r)]
    return ("\nFailed runs (recorded in their result.json, left out of the statistics):\n\n" + "\n".join(lines) + "\n"
            if lines else "")


def comparison_table(rows: Sequence[dict[str, Any]], n_scales: int) -> str:
    """One line per (method, reference, size): mean paired difference [95% interval] per accuracy;
    ``*`` marks an interval that excludes zero, ``**`` one whose difference is still an effect
    after Holm's correction over every interval of the table (:func:`backdrop.runner.holm_effects`:
    the table is the family); the last column says whether both cells fitted their training sets
    (``no †``: the difference is not a result)."""
    names = [name for name, _ in _accessors(n_scales)]
    headers = ["method", "masks", "minus", "per class", "seeds", *names, "both fitted"]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    rows = holm_effects(rows)
    for key, group in _group(rows, lambda r: (r["method"], r["masks"], r["reference"], r["per_class"])).items():
        by_name = {r["accuracy"]: r for r in group}
        lines.append("| " + " | ".join([*map(str, key), str(group[0]["n"]), *[format_interval(by_name[n]) for n in names],
                                        "yes" if group[0]["fitted"] else "no †"]) + " |")
    return "\n".join(lines) + "\n"


def _epochs_rule(plan: ExperimentPlan) -> str:
    rule = f"Epochs = max({plan.min_epochs}, ceil(B / n_train)), B = {plan.images} training images"
    return rule + "".join(f"; {'every method' if m == '*' else m} at {n} per class: {images}"
                          for m, n, images in plan.budgets)


def plan_summary(plan: ExperimentPlan) -> str:
    """The plan in the paragraph every table begins with: the data, each seed's training samples,
    the validation and report sets, the epochs and batch, the backdrop settings and the seeds."""
    s = plan.spec
    lengths = "; ".join(" / ".join(f"{v:g}" for v in row) for row in s.length_scales)
    settings = "; ".join(f"{m}: " + ", ".join(x.describe() for x in plan.settings(m))
                         for m in plan.methods if m in BACKDROP_METHODS)
    extra = f"augment+backdrop: {plan.backdrop.describe()}; " if "augment+backdrop" in plan.methods else ""
    seeds = plan.n_seeds
    return (f"Data: {s.size}^{s.ndim} px, {s.n_scales} scales (length scales {lengths} px), "
            f"normalize={s.normalize}. Training samples: seed i's own, generated with seed {s.seed} + i "
            f"({s.seed} to {s.seed + seeds - 1}, none shared between seeds), at n per class its first n per class, "
            "so the size-n set begins the size-2n one. "
            f"Validation set: seed {plan.validation_seed}, {plan.n_validation} images, on which every setting is "
            f"chosen; report set: seed {plan.test_seed}, {plan.n_test} images, which every table reports and no "
            f"choice reads. {_epochs_rule(plan)}, batch min({plan.batch_size}, n_train), AdamW peak lr "
            f"{plan.lr:g} with warm-up and cosine decay. Backdrop settings (each method's best per size on "
            f"validation; {BEST}: the best of all): {settings or 'none'}; {extra}crop: {plan.crop}² crops. "
            f"Seeds: {plan.small_seeds} up to {plan.small_max} images per class, {plan.seeds} above.\n")


def _comparisons(plan: ExperimentPlan, results: Sequence[dict[str, Any]], methods: Sequence[str],
                 sizes: Sequence[int]) -> list[dict[str, Any]]:
    """Every method against both references at each size, then the controls (:data:`CONTROLS`):
    the series topology with masks against it without, which the comparison of ``series-nomask``
    with ``no-backdrop`` complements (the topology's cost)."""
    K = plan.spec.n_scales
    rows = []
    for n in sizes:
        for reference in REFERENCES:
            for method in methods:
                # Each pair once: augment - no-backdrop, not also its negative.
                if method != reference and not (method in REFERENCES and REFERENCES.index(method) < REFERENCES.index(reference)):
                    rows += compare(results, method, reference, n, K)
        for method, control in CONTROLS:
            if method in methods and control in methods:
                rows += compare(results, method, control, n, K)
    return rows


# The columns of comparisons.csv, in their order.
COMPARISON_COLUMNS = ["method", "masks", "reference", "per_class", "accuracy", "n", "mean", "low", "high", "effect",
                      "p", "holm_p", "holm_effect", "fitted"]


def _choices_table(choices: Sequence[dict[str, Any]]) -> str:
    lines = ["| per class | method | chosen setting | of settings | validation joint accuracy |", "|---|---|---|---:|---:|"]
    lines += [f"| {c['per_class']} | {c['method']} | {c['masks']} | {c['settings']} | {c['validation_joint']:.3f} |"
              for c in choices]
    return "\n".join(lines) + "\n"


def _write_comparisons(plan: ExperimentPlan, out: Path, finished: Sequence[dict[str, Any]],
                       with_best: bool) -> dict[str, Path]:
    """``comparisons.csv`` and ``comparisons.md`` of the finished runs of the tables (each backdrop
    method at its chosen setting, and ``best-backdrop`` when ``with_best``)."""
    K = plan.spec.n_scales
    methods = [BEST] * with_best + [m for m in plan.methods if m not in REFERENCES]
    rows = _comparisons(plan, finished, [*REFERENCES, *methods], plan.sizes)
    written = {"comparisons.csv": write_csv(holm_effects(rows), out / "comparisons.csv", COMPARISON_COLUMNS)}
    written["comparisons.md"] = write_text(
        out / "comparisons.md",
        "# Paired differences in report-set accuracy (method minus reference, same seeds)\n\n" + plan_summary(plan)
        + "Mean difference [95% t interval]; * marks an interval that excludes zero, ** one that is still an "
        f"effect after Holm's correction over all {len(rows)} intervals of this table (family-wise error rate 5%: "
        "the chance that any ** in the table is a false effect is at most 5%; comparisons.csv has each paired t "
        "test's p value and its Holm-adjusted one); no † where a run of the "
        f"method or of the reference did not fit its training set (final training accuracy below {FITTED} times "
        "the oracle's joint accuracy) or "
        "left a scale at chance in training (its training loss), so the difference is not a result. Backdrop "
        "methods at their setting chosen per size on the validation set, each seed's run at the setting chosen "
        "on the other seeds' scores (results.md, sweep.md); series minus series-nomask is the masks' effect within "
        "the series topology, series-nomask minus no-backdrop the topology's cost.\n\n" + comparison_table(rows, K))
    return written


def write_outputs(plan: ExperimentPlan, out: Path, results: Sequence[dict[str, Any]],
                  sweep: Sequence[dict[str, Any]]) -> dict[str, Path]:
    """The tables and figures of recorded runs (see :func:`~.execution.run_experiment`):
    ``results`` are the runs of the methods without a sweep, ``sweep`` every backdrop setting's.
    Each backdrop method enters the main tables with its setting chosen per size on the validation
    set, and ``best-backdrop`` with the best of them; the csv files list every run, failed ones
    with their reason; the statistics, comparisons and figures are over the runs that finished,
    and the markdown tables count and list the failed ones."""
    K = plan.spec.n_scales
    best_rows, choices = chosen(sweep, [m for m in plan.methods if m in BACKDROP_METHODS], BEST)
    order = [*REFERENCES, BEST, *BACKDROP_METHODS, *METHODS, *plan.methods]  # then anchors, user methods
    table_runs = sorted([*results, *best_rows], key=lambda r: (r["per_class"], order.index(r["method"])))
    finished = [r for r in table_runs if not failed(r)]
    written = _write_results(plan, out, table_runs, [*results, *sweep])
    written.update(_write_comparisons(plan, out, finished, bool(best_rows)))
    figures = {"input_gradient.png": plot_input_gradient}
    if finished:  # with every run failed there is nothing to draw
        figures["efficiency.png"] = lambda f: plot_efficiency(finished, f, K)
    if sweep:
        written.update(_write_sweep(plan, out, sweep, choices))
        finished_sweep = [r for r in sweep if not failed(r)]
        if finished_sweep:
            figures["sweep.png"] = lambda f: plot_sweep(finished_sweep, f, K)
    written.update(_draw(out, figures))
    return written


def _write_results(plan: ExperimentPlan, out: Path, table_runs: Sequence[dict[str, Any]],
                   every: Sequence[dict[str, Any]]) -> dict[str, Path]:
    """``results.csv`` (every run) and ``results.md`` (the runs of the tables, by method and size)."""
    K = plan.spec.n_scales
    written = {"results.csv": write_csv([result_row(r, plan) for r in every], out / "results.csv", result_columns(K))}
    table = summary_table(table_runs, lambda r: (r["method"], r["per_class"], r["masks"] or ""),
                          ["method", "per class", "masks (chosen on validation)"], lambda k: [k[0], str(k[1]), k[2]], K)
    written["results.md"] = write_text(
        out / "results.md", "# Accuracy on the report set as a fraction of the oracle's, by method and "
        "training-set size\n\n" + plan_summary(plan) + "\n" + table + failed_list(every))
    return written


def _write_sweep(plan: ExperimentPlan, out: Path, sweep: Sequence[dict[str, Any]],
                 choices: Sequence[dict[str, Any]]) -> dict[str, Path]:
    """``sweep.md`` (every backdrop setting on the validation set, and the choices) and ``choices.csv``."""
    table = summary_table(sweep, lambda r: (r["per_class"], r["method"], r["masks"] or ""),
                          ["per class", "method", "masks"], lambda k: [str(k[0]), k[1], k[2]], plan.spec.n_scales,
                          on="validation")
    written = {"sweep.md": write_text(
        out / "sweep.md", "# Backdrop settings on the validation set, by training-set size\n\n" + plan_summary(plan)
        + "\nThe setting chosen per size for each method, and for best-backdrop, by mean joint accuracy on the "
        "validation set (among the settings whose runs all fitted, when any did), on every seed; the report set is "
        "not read. The tables' rows are cross-fitted: each seed's run is the one at the setting chosen on the "
        "other seeds' validation scores, so where those choices differ the tables say how many seeds took "
        "which:\n\n" + _choices_table(choices) + "\nEvery setting, accuracy on the validation set:\n\n"
        + table + failed_list(sweep))}
    written["choices.csv"] = write_csv(choices, out / "choices.csv",
                                       ["per_class", "method", "masks", "settings", "validation_joint"])
    return written


def _draw(out: Path, figures: dict[str, Callable[[Any], Any]]) -> dict[str, Path]:
    """Each figure drawn into ``out/<name>``; none without the plot extra, which the tables do not need."""
    try:
        pyplot()
    except PlotUnavailable:
        return {}
    written = {}
    for name, draw in figures.items():
        with atomic_open(out / name, "wb") as f:
            draw(f)
        written[name] = out / name
    return written


def read_results_csv(path: Path, n_scales: int) -> list[dict[str, Any]]:
    """The runs of a ``results.csv`` as the result records the tables are made of. A csv row keeps
    every score the comparisons read but not the trainer's per-scale verdicts (``learned``), so a
    run counts as fitted on its final training accuracy alone (:func:`.statistics.run_fitted`)."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    results = []
    for row in rows:
        result = {"method": row["method"], "masks": row["masks"] or None, "per_class": int(row["per_class"]),
                  "seed": int(row["seed"]), "status": row["status"], "reason": row["reason"]}
        if not failed(result):
            result |= {key: unflatten_scores(row, part, n_scales) for part, key in _SCORES}
        results.append(result)
    return results


def rebuild_comparisons(plan: ExperimentPlan, out: Path) -> dict[str, Path]:
    """``comparisons.csv`` and ``comparisons.md`` of ``out`` made again from its ``results.csv``
    alone, training nothing: for a copy of an experiment whose runs' directories are not at hand
    (the committed tables under results/). The backdrop methods' runs are the sweep, as in
    :func:`write_outputs`."""
    out = Path(out)
    runs = read_results_csv(out / "results.csv", plan.spec.n_scales)
    best_rows, _ = chosen([r for r in runs if r["method"] in BACKDROP_METHODS],
                          [m for m in plan.methods if m in BACKDROP_METHODS], BEST)
    finished = [r for r in runs if r["method"] not in BACKDROP_METHODS and not failed(r)] + best_rows
    return _write_comparisons(plan, out, finished, bool(best_rows))
