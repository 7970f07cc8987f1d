"""The tables (markdown and csv) and the figure of a plan's recorded runs: :func:`write_outputs`.

Every metric is given beside its ceiling (the likelihood ratio's, :mod:`.problems`); differences
between methods are paired by seed, with the 95% t interval of
:func:`backdrop.runner.paired_difference`, and Holm's correction over each table.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from msgp.atomic import atomic_open
from msgp.plotting import PlotUnavailable, pyplot

from ..runner import format_interval, holm_effects, mean_std, paired_difference, write_csv, write_text
from .training import LossRun


def _metric(plan) -> str:
    return "test_f1" if plan.loss == "f1" else "test_auc"


def _tag(result: dict[str, Any]) -> str:
    return LossRun(**result["settings"]).tag


def _label(tag: str) -> str:
    if tag.startswith("backdrop-p"):
        return f"large batch + backdrop p={tag[len('backdrop-p'):]}"
    if tag.startswith("small-"):
        return f"small batch ({tag[len('small-'):]})"
    return {"full": "large batch, full gradient", "ce": "cross-entropy (+ validation threshold for F1)"}[tag]


def _order(plan, problem: str) -> list[str]:
    setup = plan.setup(problem)
    return (["full"] + [f"backdrop-p{p:g}" for p in plan.probs] + [f"small-{setup.kept(p)}" for p in plan.probs]
            + ["ce"])


def _by_method(results: Sequence[dict[str, Any]], problem: str) -> dict[str, dict[int, dict]]:
    grouped: dict[str, dict[int, dict]] = {}
    for r in results:
        if r["settings"]["problem"] == problem:
            grouped.setdefault(_tag(r), {})[r["settings"]["seed"]] = r
    return grouped


def summary_rows(plan, results, limits, costs) -> list[dict[str, Any]]:
    """One row per problem and method: mean test metric, its ratio to the ceiling, the training
    time and how many runs had flattened."""
    metric = _metric(plan)
    rows = []
    for setup in plan.setups:
        problem = setup.problem.name
        ceiling = limits[problem][plan.loss]
        grouped = _by_method(results, problem)
        for tag in _order(plan, problem):
            runs = list(grouped.get(tag, {}).values())
            if not runs:
                continue
            values = [r[metric] for r in runs]
            rows.append({"problem": problem, "method": tag, "seeds": len(runs), "steps": runs[0]["settings"]["steps"],
                         "batch": runs[0]["settings"]["batch"], "mean": float(np.mean(values)),
                         "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
                         "ratio": float(np.mean(values)) / ceiling, "ceiling": ceiling,
                         "ceiling_se": limits[problem][f"{plan.loss}_se"], "oracle_test": limits[problem][metric],
                         "train_seconds": float(np.mean([r["train_seconds"] for r in runs])),
                         "ms_per_step": 1e3 * costs[problem][tag],
                         "converged": sum(r["converged"] for r in runs), "label": _label(tag), "values": values})
    return rows


def _pairs(plan, problem: str) -> list[tuple[str, str]]:
    setup = plan.setup(problem)
    pairs = []
    for p in plan.probs:
        pairs += [(f"backdrop-p{p:g}", "full"), (f"small-{setup.kept(p)}", "full"),
                  (f"backdrop-p{p:g}", f"small-{setup.kept(p)}"), (f"backdrop-p{p:g}", "ce")]
    return pairs + [("ce", "full")]


def _difference_row(problem, method, reference, ours, theirs, metric, ceiling) -> dict[str, Any] | None:
    seeds = sorted(set(ours) & set(theirs))
    if not seeds:
        return None
    diff = paired_difference([metric(ours[s]) for s in seeds], [metric(theirs[s]) for s in seeds])
    return {"problem": problem, "method": method, "reference": reference, **diff, "ceiling": ceiling}


def comparison_rows(plan, results, limits) -> list[dict[str, Any]]:
    """Paired differences at matched steps: backdrop and small batches against the full gradient,
    backdrop against the small batch of its kept count and against cross-entropy, and
    cross-entropy against the full gradient."""
    metric = _metric(plan)
    rows = []
    for setup in plan.setups:
        problem = setup.problem.name
        grouped = _by_method(results, problem)
        for method, reference in _pairs(plan, problem):
            row = _difference_row(problem, method, reference, grouped.get(method, {}), grouped.get(reference, {}),
                                  lambda r: r[metric], limits[problem][plan.loss])
            if row:
                rows.append(row)
    return rows


def metric_at(result: dict[str, Any], seconds: float, cost: float) -> float:
    """A run's test metric after ``seconds`` of training at ``cost`` seconds per step, interpolated
    between its checkpoints (before the first: the first checkpoint's, which flatters the run;
    after the last: its final metric)."""
    curve = result["curve"]
    return float(np.interp(seconds, np.asarray(curve["step"]) * cost, curve["test"]))


def equal_time_rows(plan, results, limits, costs) -> list[dict[str, Any]]:
    """Each method's final test metric minus the full gradient's after the same training time,
    paired by seed; time is steps times the method's cost per step (:func:`.timing.step_costs`)."""
    rows = []
    for setup in plan.setups:
        problem = setup.problem.name
        grouped = _by_method(results, problem)
        full = grouped.get("full", {})
        for tag in _order(plan, problem)[1:]:
            ours = grouped.get(tag, {})
            seeds = sorted(set(ours) & set(full))
            if not seeds:
                continue
            cost, full_cost = costs[problem][tag], costs[problem]["full"]
            diff = paired_difference([ours[s]["curve"]["test"][-1] for s in seeds],
                                     [metric_at(full[s], ours[s]["settings"]["steps"] * cost, full_cost) for s in seeds])
            time_ratio = cost / full_cost
            rows.append({"problem": problem, "method": tag, "reference": "full at the same time", **diff,
                         "time_ratio": time_ratio, "ceiling": limits[problem][plan.loss]})
    return rows


def _ceiling_lines(plan, limits) -> list[str]:
    name = _metric_name(plan)
    lines = []
    for setup in plan.setups:
        c = limits[setup.problem.name]
        lines.append(f"- **{setup.problem.name}**: {c['description']}. Ceiling {name} {c[plan.loss]:.4f} ± "
                     f"{c[plan.loss + '_se']:.4f} (Monte Carlo standard error, {c['n_per_class']:,} samples per class); "
                     f"the likelihood ratio on the {c['n_test']:,} test samples ({c['test_positives']} positive): "
                     f"{c['test_' + plan.loss]:.4f}. {setup.n_train:,} training samples, batches of {setup.batch}, "
                     f"{setup.steps} steps.")
    return lines


SUMMARY_COLUMNS = ["problem", "method", "seeds", "steps", "batch", "mean", "std", "ratio", "ceiling", "ceiling_se",
                   "oracle_test", "ms_per_step", "train_seconds", "converged"]
COMPARISON_COLUMNS = ["problem", "method", "reference", "n", "mean", "low", "high", "effect", "p", "holm_p",
                      "holm_effect", "time_ratio", "ceiling"]


def write_outputs(plan, out: Path, results: Sequence[dict[str, Any]], limits: dict[str, dict],
                  costs: dict[str, dict[str, float]]) -> dict[str, Path]:
    """Write ``results.csv/.md`` (each method beside the ceiling), ``comparisons.csv/.md`` (paired
    differences at matched steps and at equal training time) and ``curves.png`` (test metric /
    ceiling against training time; needs the plot extra). ``costs``: seconds per step of each
    problem's methods (:func:`.timing.step_costs`)."""
    out = Path(out)
    summary = summary_rows(plan, results, limits, costs)
    # Each table is one family for Holm's correction, as in the experiment's comparisons.
    matched = holm_effects(comparison_rows(plan, results, limits))
    timed = holm_effects(equal_time_rows(plan, results, limits, costs))
    written = {"results.csv": write_csv(summary, out / "results.csv", SUMMARY_COLUMNS),
               "comparisons.csv": write_csv(matched + timed, out / "comparisons.csv", COMPARISON_COLUMNS),
               "results.md": write_text(out / "results.md", _results_text(plan, summary, limits)),
               "comparisons.md": write_text(out / "comparisons.md", _comparisons_text(plan, matched, timed))}
    try:
        pyplot()
    except PlotUnavailable:
        return written
    with atomic_open(out / "curves.png", "wb") as f:
        plot_curves(plan, results, limits, costs, f)
    written["curves.png"] = out / "curves.png"
    return written


def _metric_name(plan) -> str:
    return "F1" if plan.loss == "f1" else "AUC"


def _results_text(plan, summary: Sequence[dict[str, Any]], limits: dict[str, dict]) -> str:
    """``results.md``: the ceilings, then each method's test metric beside them."""
    name = _metric_name(plan)
    md = [f"# Plan {plan.name}: test {name} beside its ceiling", ""] + _ceiling_lines(plan, limits) + [
        "", "ms per step: one thread, the methods timed in turn (median of 7 rounds); training s: the runs' "
        "own clocks, two at a time on a shared machine. Flattened: the training metric moved by less than "
        "1% from the first checkpoint at or past 3/4 of the steps to the last.", "",
        f"| problem | training | seeds | test {name} (mean ± std) | / ceiling | ms per step | training s | flattened |",
        "|---|---|---|---|---|---|---|---|"]
    md += [f"| {r['problem']} | {r['label']} | {r['seeds']} | {mean_std(r['values'], 4)} | {r['ratio']:.3f} | "
           f"{r['ms_per_step']:.2f} | {r['train_seconds']:.1f} | {r['converged']}/{r['seeds']} |" for r in summary]
    return "\n".join(md) + "\n"


def _comparisons_text(plan, matched: Sequence[dict[str, Any]], timed: Sequence[dict[str, Any]]) -> str:
    """``comparisons.md``: the paired differences at matched steps, then at equal training time."""
    md = [f"# Plan {plan.name}: paired differences in test {_metric_name(plan)}", "",
          f"Mean over seeds of the difference, and its 95% t interval; * marks an interval that excludes zero, "
          f"** one that is still an effect after Holm's correction over the intervals of its table ({len(matched)} "
          f"at matched steps, {len(timed)} at equal time; family-wise error rate 5%; comparisons.csv has each paired "
          "t test's p value and its Holm-adjusted one).", "",
          "## At matched steps", "", "| problem | method | reference | seeds | difference [95% interval] |",
          "|---|---|---|---|---|"]
    md += [f"| {r['problem']} | {_label(r['method'])} | {_label(r['reference'])} | {r['n']} | "
           f"{format_interval(r, 4)} |" for r in matched]
    md += ["", "## At equal training time", "",
           "Each method's final test metric minus the full gradient's after the same training time (steps "
           "times the cost per step; the full gradient's metric interpolated between its checkpoints).", "",
           "| problem | method | its time / full gradient's | seeds | difference [95% interval] |", "|---|---|---|---|---|"]
    md += [f"| {r['problem']} | {_label(r['method'])} | {r['time_ratio']:.2f} | {r['n']} | {format_interval(r, 4)} |"
           for r in timed]
    return "\n".join(md) + "\n"


def plot_curves(plan, results, limits, costs, path):
    """Test metric / ceiling against training seconds (steps times the cost per step), one panel per
    problem, one line per method (means over seeds at each checkpoint)."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(plan.setups), figsize=(5.2 * len(plan.setups), 3.8), constrained_layout=True,
                             squeeze=False)
    for ax, setup in zip(axes[0], plan.setups):
        problem = setup.problem.name
        grouped = _by_method(results, problem)
        ceiling = limits[problem][plan.loss]
        # Backdrop in reds and small batches in blues, darker as more of the batch is masked.
        shade = {p: 0.4 + 0.6 * i / max(1, len(plan.probs) - 1) for i, p in enumerate(plan.probs)}
        styles = {"full": dict(color="k", ls="-", lw=2.0), "ce": dict(color="tab:green", ls="-.", lw=1.5)}
        for p in plan.probs:
            styles[f"backdrop-p{p:g}"] = dict(color=plt.cm.Reds(shade[p]), ls="-", lw=1.2)
            styles[f"small-{setup.kept(p)}"] = dict(color=plt.cm.Blues(shade[p]), ls="--", lw=1.2)
        for tag in _order(plan, problem):
            runs = list(grouped.get(tag, {}).values())
            if not runs:
                continue
            seconds = np.asarray(runs[0]["curve"]["step"]) * costs[problem][tag]
            values = np.mean([r["curve"]["test"] for r in runs], axis=0) / ceiling
            ax.plot(seconds, values, marker=".", label=_label(tag), **styles[tag])
        ax.axhline(1.0, color="k", ls=":", label="ceiling (likelihood ratio)")
        ax.set(xscale="log", xlabel="training seconds (steps x cost per step, one thread)", title=problem)
        ax.xaxis.set_minor_formatter(plt.NullFormatter())  # minor labels would overprint each other
    axes[0][0].set_ylabel(f"test {_metric_name(plan)} / ceiling")
    axes[0][-1].legend(fontsize=6)
    fig.savefig(path, dpi=90, format="png")
    plt.close(fig)
    return path
