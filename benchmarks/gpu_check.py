"""Every GPU check of msgp in one run of at most 8 minutes, ending in one summary table.

    python benchmarks/gpu_check.py                            # a machine with one CUDA GPU
    PYTHONPATH=. python3 benchmarks/gpu_check.py --out DIR     # from a plain checkout, no install
    python benchmarks/gpu_check.py --device cpu --tiny        # the same code at tiny sizes (tests)

1. generation: the device sampler of ``msgp generate --device`` against the CPU's for the same
   seed (labels equal; fields at most one float32 ulp apart, :func:`float32_ulps`), and samples/s
   at two sizes beside one inverse FFT per sample timed on the same device in the same run;
2. training: :class:`~backdrop.models.MultiScaleNet` images/s at three sizes with and without
   backdrop, steps timed in interleaved rounds, and backdrop's overhead (target: under 3%);
3. precision: images/s at fp32, tf32 and bf16, and whether the precision changes the test
   accuracy of the same short run;
4. experiment: ``msgp experiment --plan paper`` reduced to fit the time left, chosen from rates
   measured here (:func:`~backdrop.experiment.measure_rates`), its data written by the device
   sampler, its tables and figures copied to ``OUT/experiment``.

A section that raises is recorded as failed and the next one still runs, so one short GPU window
gives every answer it can. Writes ``OUT/summary.md`` (the table), ``OUT/summary.json`` (every
number), ``OUT/experiment/`` and, when a section raised, ``OUT/errors.txt``; the data and run
directories stay in a temporary directory that is removed. Exit status: 0 when every check
passed, 1 when one failed, 2 for bad options.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import resource
import shutil
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# A plain checkout has no installed msgp: import the packages beside this folder.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from backdrop import experiment, training  # noqa: E402
from msgp import io  # noqa: E402
from msgp.generate import Batch, Sampler  # noqa: E402
from msgp.gpu import TorchSampler  # noqa: E402
from msgp.spec import DatasetSpec  # noqa: E402

OVERHEAD_TARGET = 1.03  # backdrop step time / plain step time


@dataclass(frozen=True)
class Settings:
    """Sizes and repetitions of one mode (the GPU's, or the tiny CPU one the tests run)."""

    budget: float  # seconds, default of --budget
    generation_checks: tuple[tuple[int, str, int], ...]  # (size, normalize, samples) compared with the CPU
    generation_sizes: tuple[int, ...]  # samples/s measured here
    rate_seconds: float  # per measured rate
    train_sizes: tuple[int, ...]
    train_batch: int
    rounds: int  # interleaved rounds of timed training steps
    round_seconds: float  # per step function and round
    precision_size: int  # data of the precision runs
    precision_train: int
    precision_test: int
    precision_epochs: int
    precision_batch: int
    experiment_size: int | None  # None: the paper plan's 1024²
    lengths: tuple[tuple[float, float], ...] | None = None  # None: paper-2scale's, scaled to the size

    def spec(self, size: int, **values) -> DatasetSpec:
        """paper-2scale's statistics at ``size`` px (normalize=sample unless ``values`` say otherwise)."""
        return DatasetSpec.default(2, size, **{"normalize": "sample", "length_scales": self.lengths, **values})


GPU = Settings(budget=480, generation_checks=((256, "theory", 16), (1024, "sample", 4)),
               generation_sizes=(256, 1024), rate_seconds=1.0, train_sizes=(128, 256, 1024), train_batch=16,
               rounds=15, round_seconds=0.25, precision_size=128, precision_train=128, precision_test=256,
               precision_epochs=16, precision_batch=16, experiment_size=None)
# Below 109 px paper-2scale's finest length scale falls under a pixel: tiny mode keeps its
# amplitudes and a fine and a coarse scale far enough apart for the series topology's distinct
# head stages at 64 px.
TINY = Settings(budget=120, generation_checks=((32, "theory", 8), (64, "sample", 4)),
                generation_sizes=(32, 64), rate_seconds=0.05, train_sizes=(16, 32, 64), train_batch=4,
                rounds=3, round_seconds=0.02, precision_size=32, precision_train=16, precision_test=32,
                precision_epochs=2, precision_batch=8, experiment_size=64, lengths=((1.5, 2.0), (5.0, 8.0)))


# Results -----------------------------------------------------------------------------------------

class Report:
    """The rows of the summary table and every number behind them.

    A row's status is ``ok`` or ``FAIL`` for a check, ``miss`` for a performance target not met
    (timings on a shared machine are no reason to fail the run), empty for a measurement.
    """

    def __init__(self):
        self.rows: list[dict] = []
        self.errors: list[str] = []

    def add(self, section: str, what: str, value: str, status: str = "", **numbers) -> None:
        self.rows.append({"section": section, "what": what, "value": value, "status": status, **numbers})
        print(f"[{section}] {what}: {value} {status}".rstrip(), file=sys.stderr, flush=True)

    @property
    def failed(self) -> bool:
        return any(row["status"] == "FAIL" for row in self.rows)

    def table(self) -> str:
        lines = ["| section | check or measurement | result | status |", "|---|---|---|---|"]
        lines += [f"| {r['section']} | {r['what']} | {r['value']} | {r['status']} |" for r in self.rows]
        return "\n".join(lines) + "\n"


def run_section(report: Report, name: str, fn: Callable, *args) -> None:
    """Run one section; any exception becomes a failed row with its one-line reason (the
    traceback goes to errors.txt), because losing the later sections would waste the window."""
    try:
        fn(*args)
    except Exception as err:  # noqa: BLE001  (see above)
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        report.add(name, "section stopped", f"{type(err).__name__}: {reason}", "FAIL")
        report.errors.append(f"== {name}\n{traceback.format_exc()}")
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def float32_ulps(reference: np.ndarray, other: np.ndarray) -> float:
    """The largest ``|reference - other|`` in float32 ulps (units in the last place).

    A pair's ulp is that of the larger of its two magnitudes, floored at ``2**-20`` times the
    root mean square of ``reference``: two float64 FFTs of the same spectrum differ by about
    ``1e-16`` of the rms, which is below a float32 ulp of every value except those near zero.
    Two float64 values that close, each rounded once to float32, are at most 1 ulp apart.
    """
    a, b = np.asarray(reference, np.float64), np.asarray(other, np.float64)
    floor = math.sqrt(float(np.mean(a * a))) * 2.0**-20
    ulp = np.spacing(np.maximum(np.maximum(np.abs(a), np.abs(b)), floor).astype(np.float32))
    return float(np.max(np.abs(a - b) / ulp)) if a.size else 0.0


def per_second(run: Callable[[], float], items: int, seconds: float) -> float:
    """``items`` per second of ``run()``, which returns its own seconds, for about ``seconds``."""
    spent, done = 0.0, 0
    while done == 0 or spent < seconds:
        spent += run()
        done += items
    return done / spent


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# 1. Generation -----------------------------------------------------------------------------------

def compare_samples(spec: DatasetSpec, batch: Batch) -> tuple[bool, float, float]:
    """``(labels equal, largest field difference in float32 ulps, fraction identical)`` of the
    samples in ``batch`` against the CPU sampler's."""
    reference = Sampler(spec).batch(batch.start, batch.start + len(batch.labels))
    labels = (np.array_equal(reference.labels, batch.labels)
              and np.array_equal(reference.scale_labels, batch.scale_labels))
    fields = np.asarray(batch.fields)
    return labels, float32_ulps(reference.fields, fields), float(np.mean(reference.fields == fields))


def check_generation(s: Settings, device: str, report: Report) -> None:
    for size, normalize, n in s.generation_checks:
        spec = s.spec(size, normalize=normalize, n=n, seed=7)
        labels, ulps, same = compare_samples(spec, TorchSampler(spec, device).batch(0, n))
        report.add("generation", f"torch sampler on {device} vs the CPU sampler, {size}², normalize={normalize}, {n} samples",
                   f"labels {'equal' if labels else 'DIFFER'}; fields at most {ulps:.2g} float32 ulp apart "
                   f"({same:.0%} identical)", "ok" if labels and ulps <= 1 else "FAIL",
                   labels_equal=labels, max_ulps=ulps, identical=same)
    dev = torch.device(device)
    for size in s.generation_sizes:
        spec = s.spec(size, normalize="theory", n=10**6)  # one inverse FFT per sample
        batch = max(1, min(32, io.BATCH_PIXELS // size**2))  # what io.write batches
        rates = {}
        for name, sampler in (("sampler", TorchSampler(spec, device)), ("cpu_sampler", Sampler(spec))):
            position = [0]

            def draw(sampler=sampler, position=position) -> float:
                started = time.perf_counter()
                sampler.batch(position[0], position[0] + batch)
                position[0] += batch
                return time.perf_counter() - started

            draw()
            rates[name] = per_second(draw, batch, s.rate_seconds)
        spectra = torch.zeros((batch, size, size // 2 + 1), dtype=torch.complex128, device=dev)

        def inverse_fft() -> float:
            _synchronize(dev)
            started = time.perf_counter()
            torch.fft.irfftn(spectra, s=(size, size), dim=(-2, -1), norm="ortho")
            _synchronize(dev)
            return time.perf_counter() - started

        inverse_fft()
        rates["fft_bound"] = per_second(inverse_fft, batch, s.rate_seconds)
        report.add("generation", f"samples/s at {size}², normalize=theory (torch sampler on {device} / one float64 "
                   f"inverse FFT per sample on {device} / CPU sampler, one process)",
                   f"{rates['sampler']:,.0f} / {rates['fft_bound']:,.0f} / {rates['cpu_sampler']:,.0f} "
                   f"({rates['sampler'] / rates['fft_bound']:.0%} of the bound)", size=size, **rates)


# 2. Training throughput --------------------------------------------------------------------------

def interleaved(steps: dict[Any, Callable[[], float]], rounds: int, round_seconds: float) -> dict[Any, list[float]]:
    """Mean seconds per call of each step function in each round. Every round runs each function
    the same number of times, in an order that alternates between rounds, so a load that drifts
    during the measurement weighs on all of them alike."""
    first = {name: step() for name, step in steps.items()}  # warm-up: allocator, kernel choice
    repeat = max(1, round(round_seconds / max(min(first.values()), 1e-6)))
    times = {name: [] for name in steps}
    for r in range(rounds):
        for name in (list(steps) if r % 2 == 0 else list(steps)[::-1]):
            times[name].append(sum(steps[name]() for _ in range(repeat)) / repeat)
    return times


def _config(device: str, batch: int, **values) -> training.TrainConfig:
    """The paper plan's backdrop setting, for timing (no data is read)."""
    return training.TrainConfig(**{"device": device, "n_train": batch, "batch_size": batch, "augment": False,
                                   "mask_prob": experiment.paper_plan().backdrop.probs, **values})


def check_training(s: Settings, device: str, report: Report) -> None:
    dev = torch.device(device)
    for size in s.train_sizes:
        spec = s.spec(size)
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)
        timers = {b: experiment.StepTimer(_config(device, s.train_batch, backdrop=b), spec) for b in (False, True)}
        times = interleaved({b: t.train_step for b, t in timers.items()}, s.rounds, s.round_seconds)
        plain, masked = (s.train_batch / statistics.median(times[b]) for b in (False, True))
        ratio = statistics.median(b / a for a, b in zip(times[False], times[True]))
        memory = torch.cuda.max_memory_allocated(dev) / 2**30 if dev.type == "cuda" else math.nan
        report.add("training", f"images/s at {size}², batch {s.train_batch} (no backdrop / backdrop); "
                   "backdrop's step time over the plain one, target under 3%",
                   f"{plain:,.1f} / {masked:,.1f}; {ratio - 1:+.1%}"
                   + (f"; peak GPU memory {memory:.1f} GiB" if dev.type == "cuda" else ""),
                   "ok" if ratio <= OVERHEAD_TARGET else "miss", size=size, plain=plain, backdrop=masked,
                   ratio=ratio, gpu_memory_gib=memory)
    size = s.train_sizes[-1]
    spec = s.spec(size)
    timers = {p: experiment.StepTimer(_config(device, s.train_batch, precision=p), spec) for p in training.PRECISIONS}
    times = interleaved({p: t.train_step for p, t in timers.items()}, s.rounds, s.round_seconds)
    rates = {p: s.train_batch / statistics.median(t) for p, t in times.items()}
    report.add("precision", f"images/s at {size}², backdrop ({' / '.join(rates)})",
               " / ".join(f"{r:,.1f}" for r in rates.values()), size=size, **rates)


# 3. Precision and accuracy -----------------------------------------------------------------------

def check_precision(s: Settings, device: str, work: Path, report: Report) -> None:
    """The same short run (paper-2scale statistics, backdrop) at each precision, scored on the same
    test file. One seed: a difference within two binomial standard errors reads as no change."""
    spec = s.spec(s.precision_size, n=s.precision_train)
    train_path, test_path = work / "precision-train.h5", work / "precision-test.h5"
    io.write(spec, train_path, device=device)
    io.write(spec.replace(seed=1000, n=s.precision_test), test_path, device=device)
    joint = {}
    for precision in training.PRECISIONS:
        config = training.TrainConfig(data=train_path, test_data=test_path, n_train=s.precision_train,
                                      n_test=s.precision_test, epochs=s.precision_epochs,
                                      batch_size=s.precision_batch, device=device, precision=precision,
                                      backdrop=True, augment=False,
                                      mask_prob=experiment.paper_plan().backdrop.probs, eval_every=0)
        summary = training.train(config, work / f"precision-{precision}")
        joint[precision] = summary["test_accuracy"]["joint"]
        oracle_joint = summary["oracle_accuracy"]["joint"]
    p = joint["fp32"]
    se = math.sqrt(2 * max(p * (1 - p), 1 / s.precision_test) / s.precision_test)
    changed = [q for q in joint if abs(joint[q] - p) > 2 * se]
    verdict = (f"changes accuracy: {', '.join(changed)}" if changed else "no change") + f" (2 s.e. = {2 * se:.3f})"
    report.add("precision", f"test joint accuracy ({' / '.join(joint)}), {s.precision_size}², "
               f"{s.precision_train} training and {s.precision_test} test images, one seed; oracle {oracle_joint:.3f}",
               " / ".join(f"{a:.3f}" for a in joint.values()) + f"; {verdict}", "ok",
               accuracy=joint, oracle=oracle_joint, changed=changed, two_se=2 * se)


# 4. The paper experiment, sized to the time left ---------------------------------------------------

def base_plan(s: Settings, device: str) -> experiment.ExperimentPlan:
    """The paper plan on ``device`` (in tiny mode with its statistics at ``experiment_size``), its
    training file cut to the largest training set: the preset's 100 samples would cost a reduced
    plan more to generate than it trains on."""
    plan = experiment.paper_plan()
    spec = plan.spec if s.experiment_size is None else s.spec(s.experiment_size)
    crop = plan.crop * spec.size // plan.spec.size
    return dataclasses.replace(plan, spec=spec.replace(n=1), crop=crop, device=device)


def ladder(base: experiment.ExperimentPlan) -> list[experiment.ExperimentPlan]:
    """The plan and smaller versions of it, largest first: fewer seeds, then fewer sizes, training
    and test images, and last two methods only. Every limit only ever lowers the base's value."""

    def smaller(sizes: int | None = None, methods: tuple[str, ...] | None = None, **limits):
        values = {name: min(getattr(base, name), limit) for name, limit in limits.items()}
        return dataclasses.replace(base, sizes=base.sizes[:sizes], methods=methods or base.methods, **values)

    return [
        base,
        smaller(small_seeds=3),
        smaller(small_seeds=3, seeds=2, sizes=2, images=2048, min_epochs=1, n_test=256),
        smaller(small_seeds=3, seeds=2, sizes=2, images=1024, min_epochs=1, n_test=128),
        smaller(small_seeds=2, seeds=1, sizes=2, images=1024, min_epochs=1, n_test=128),
        smaller(small_seeds=2, seeds=1, sizes=1, images=1024, min_epochs=1, n_test=128),
        smaller(small_seeds=2, seeds=1, sizes=1, images=256, min_epochs=1, n_test=64),
        smaller(small_seeds=2, seeds=1, sizes=1, images=64, min_epochs=1, n_test=64,
                methods=tuple(m for m in base.methods if m in ("no-backdrop", "backdrop"))),
    ]


def choose(plans: list[experiment.ExperimentPlan], rates: experiment.Rates, seconds: float
           ) -> tuple[experiment.ExperimentPlan, float]:
    """The first plan whose estimated time fits in ``seconds`` (else the last), and its estimate."""
    for plan in plans:
        total = experiment.estimate(plan, rates)["total"]
        if total <= seconds:
            return plan, total
    return plan, total


def describe(plan: experiment.ExperimentPlan) -> str:
    runs = len(set(experiment.main_runs(plan) + experiment.sweep_runs(plan)))
    return (f"{len(plan.methods)} methods at {'/'.join(map(str, plan.sizes))} per class, {plan.small_seeds} seeds "
            f"up to {plan.small_max} per class and {plan.seeds} above, {plan.images} images per run, "
            f"{plan.n_test} test images: {runs} runs")


def run_experiment(s: Settings, device: str, work: Path, out: Path, report: Report, deadline: float,
                   margin: float) -> None:
    base = base_plan(s, device)
    rates = experiment.measure_rates(base, seconds=s.rate_seconds)
    # The data are written by the device sampler, not by the CPU one the estimate assumes.
    sampler, position = TorchSampler(base.train_spec(0, max(base.sizes)), device), [0]

    def draw() -> float:
        started = time.perf_counter()
        sampler.batch(position[0], position[0] + 1)
        position[0] += 1
        return time.perf_counter() - started

    rates = dataclasses.replace(rates, generate=per_second(draw, 1, s.rate_seconds))
    left = deadline - time.perf_counter() - margin
    plan, estimated = choose(ladder(base), rates, left)
    folder = work / "experiment"
    (out / "experiment").mkdir(parents=True, exist_ok=True)
    (out / "experiment" / "plan.md").write_text(experiment.describe_plan(plan, folder, rates=rates))
    started = time.perf_counter()
    for name, spec in (("validation", plan.validation_spec), ("test", plan.test_spec)):
        path = folder / "data" / f"{name}.h5"
        path.parent.mkdir(parents=True, exist_ok=True)
        io.write(spec, path, device=device)  # what `msgp generate --device` writes; the experiment reuses it
    with io.open_file(folder / "data" / "validation.h5") as (h5, spec):
        n = min(2, spec.n)
        stored = Batch(start=0, fields=h5["fields"][:n], labels=h5["labels"][:n], scale_labels=h5["scale_labels"][:n])
        labels, ulps, _ = compare_samples(spec, stored)
    report.add("experiment", f"validation file written by io.write(device={device!r}) vs the CPU sampler, first {n} samples",
               f"labels {'equal' if labels else 'DIFFER'}; fields at most {ulps:.2g} float32 ulp apart",
               "ok" if labels and ulps <= 1 else "FAIL", labels_equal=labels, max_ulps=ulps)
    results = []

    def progress(event: str, info: dict) -> None:
        if event == "done":
            results.append(info)
            print(f"[experiment] {len(results)} {info['name']}: joint {info['test_accuracy']['joint']:.3f} "
                  f"(oracle {info['oracle_accuracy']['joint']:.3f}), {info['wall_s']:.1f} s", file=sys.stderr, flush=True)

    written = experiment.run_experiment(plan, folder, progress=progress)
    took = time.perf_counter() - started
    for path in written.values():
        shutil.copy2(path, out / "experiment" / path.name)
    expected = len(set(experiment.main_runs(plan) + experiment.sweep_runs(plan)))
    finite = all(math.isfinite(r["test_accuracy"]["joint"]) for r in results)
    ok = len(results) == expected and finite and {"results.md", "results.csv", "comparisons.md"} <= set(written)
    report.add("experiment", f"msgp experiment --plan paper, {plan.spec.size}², sized to {left:.0f} s: {describe(plan)}",
               f"estimated {estimated:.0f} s, took {took:.0f} s; {len(written)} tables and figures in "
               f"{out / 'experiment'}", "ok" if ok else "FAIL", estimated_s=estimated, took_s=took,
               runs=len(results), files=sorted(written))
    smallest = min(plan.sizes)
    ratios = {}
    for r in results:
        if r["per_class"] == smallest:
            ratios.setdefault(r["method"], []).append(experiment.ratio(r, lambda a: a["joint"]))
    report.add("experiment", f"joint accuracy / oracle at {smallest} per class, mean over seeds",
               ", ".join(f"{m} {np.mean(v):.3f}" for m, v in ratios.items()),
               ratios={m: float(np.mean(v)) for m, v in ratios.items()})


# The run -----------------------------------------------------------------------------------------

def environment(device: str) -> str:
    dev = torch.device(device)
    name = f"{torch.cuda.get_device_name(dev)}, CUDA {torch.version.cuda}" if dev.type == "cuda" else "CPU"
    return (f"{name}; torch {torch.__version__}, numpy {np.__version__}, Python {sys.version.split()[0]}, "
            f"{torch.get_num_threads()} torch threads")


def _bad_input(message: str) -> int:
    print(f"gpu_check: {message}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda", help="cuda (default) or cpu")
    parser.add_argument("--tiny", action="store_true", help="tiny sizes, for a CPU and the tests")
    parser.add_argument("--budget", type=float, help=f"seconds in all (default {GPU.budget:g}; {TINY.budget:g} with --tiny)")
    parser.add_argument("--out", type=Path, default=Path("runs/gpu_check"), help="summary, tables and figures")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    settings = TINY if args.tiny else GPU
    budget = settings.budget if args.budget is None else args.budget
    if args.device == "cuda" and not torch.cuda.is_available():
        return _bad_input("no CUDA device is available; run with --device cpu --tiny")
    if not budget > 0:
        return _bad_input(f"--budget must be a positive number of seconds, but got {budget:g}")
    deadline = started + budget
    # Kept for the experiment's figures, copying and the error of its estimate.
    margin = 0.1 * budget
    report = Report()
    header = (f"gpu_check on {args.device} ({'tiny' if args.tiny else 'full'} sizes): {environment(args.device)}; "
              f"budget {budget:g} s")
    print(header, file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory(prefix="gpu_check-") as work:
        work = Path(work)
        run_section(report, "generation", check_generation, settings, args.device, report)
        run_section(report, "training", check_training, settings, args.device, report)
        run_section(report, "precision", check_precision, settings, args.device, work, report)
        run_section(report, "experiment", run_experiment, settings, args.device, work, args.out, report,
                    deadline, margin)
    wall = time.perf_counter() - started
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux
    report.add("total", "wall time; peak host memory (RSS)", f"{wall:.0f} s of {budget:g} s; {rss:.1f} GiB",
               "ok" if wall <= budget else "FAIL", wall_s=wall, budget_s=budget, peak_rss_gib=rss)
    verdict = "FAILED: " + "; ".join(f"{r['section']}: {r['what']}" for r in report.rows if r["status"] == "FAIL") \
        if report.failed else "every check passed"
    text = f"{header}\n\n{report.table()}\n{verdict}\n"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.md").write_text(text)
    (args.out / "summary.json").write_text(json.dumps(
        {"device": args.device, "tiny": args.tiny, "environment": environment(args.device), "budget_s": budget,
         "wall_s": wall, "ok": not report.failed, "rows": report.rows}, indent=2, default=str) + "\n")
    errors = args.out / "errors.txt"
    if report.errors:
        errors.write_text("\n".join(report.errors))
    elif errors.exists():
        errors.unlink()  # from an earlier run into the same folder
    print(text, end="")
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
