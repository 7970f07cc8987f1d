"""Generation throughput beside the FFT lower bound (and gstools / powerbox when installed).

Every method is timed in the same run, in interleaved rounds, and reported as samples/s and, per
core it uses, as a ratio to the lower bound: one normal-RNG draw plus one inverse real FFT per
sample on one thread, in float64 (what msgp computes in) and in float32 (beside it, for scale).
msgp's samples have K = 3 scales (the `--scales 3` defaults for the size).

    python benchmarks/bench_generate.py                 # 128, 256, 1024 px; CLI run and memory
    python benchmarks/bench_generate.py --sizes 128 --no-cli
"""
from __future__ import annotations

import argparse
import inspect
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.fft

from msgp import io
from msgp.generate import Sampler
from msgp.spec import DatasetSpec


def rate(fn, seconds: float) -> float:
    """Samples per second of ``fn()`` (which returns how many samples it made), over ~``seconds``."""
    done, start = 0, time.perf_counter()
    while True:
        done += fn()
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return done / elapsed


def lower_bound(size: int, dtype=np.float64):
    rng = np.random.default_rng(0)
    half = np.zeros((size, size // 2 + 1), np.complex128 if dtype == np.float64 else np.complex64)

    def run():
        rng.standard_normal(size * size, dtype=dtype)
        scipy.fft.irfftn(half, s=(size, size), workers=1)
        return 1
    return run


def msgp_single(size: int):
    sampler = Sampler(DatasetSpec.default(3, size, n=10**9), fft_workers=1)
    batch = max(1, min(32, 2**20 // size**2))
    position = [0]

    def run():
        sampler.batch(position[0], position[0] + batch)
        position[0] += batch
        return batch
    return run


def msgp_all_cores(size: int, folder: Path):
    if "workers" not in inspect.signature(io.write).parameters:
        return None
    n = max(8 * os.cpu_count(), 2**26 // size**2)
    spec = DatasetSpec.default(3, size, n=n)

    def run():
        io.write(spec, folder / "all-cores.h5", overwrite=True, workers=os.cpu_count())
        return n
    return run


def gstools_field(size: int):
    try:
        import gstools
    except ImportError:
        return None
    length = DatasetSpec.default(3, size).length_scales[1][0]
    srf = gstools.SRF(gstools.Gaussian(dim=2, var=1.0, len_scale=length * np.sqrt(2)), seed=0)
    axis = np.arange(size, dtype=float)

    def run():
        srf.structured([axis, axis])
        return 1
    return run


def powerbox_field(size: int):
    try:
        import powerbox
    except ImportError:
        return None
    length = DatasetSpec.default(3, size).length_scales[1][0]
    seed = [0]

    def run():
        seed[0] += 1
        box = powerbox.PowerBox(N=size, dim=2, boxlength=float(size), seed=seed[0], nthreads=1,
                                pk=lambda k: np.exp(-(k * length) ** 2 / 2))
        box.delta_x()
        return 1
    return run


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants, in MB (from /proc)."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                rss_pages = int((entry / "statm").read_text().split()[1])
            except (OSError, IndexError):
                continue
            parents[int(entry.name)] = (int(fields[1]), rss_pages)
    family, total, changed = {pid}, 0, True
    while changed:
        changed = False
        for child, (parent, _) in parents.items():
            if parent in family and child not in family:
                family.add(child)
                changed = True
    total = sum(parents[p][1] for p in family if p in parents)
    return total * os.sysconf("SC_PAGE_SIZE") / 2**20


def cli_run(n: int, size: int, folder: Path) -> tuple[float, float]:
    """Wall time and peak resident memory (MB, the process and its workers together, sampled
    every 20 ms) of `msgp generate --scales 3` in a child process."""
    exe = shutil.which("msgp")
    command = [exe] if exe else [sys.executable, "-m", "cli"]
    out = folder / f"cli-{size}.h5"
    start = time.perf_counter()
    child = subprocess.Popen(command + ["generate", "--scales", "3", "--n", str(n), "--size", str(size),
                                        "-o", str(out), "--overwrite"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak = 0.0
    while child.poll() is None:
        peak = max(peak, tree_rss_mb(child.pid))
        time.sleep(0.02)
    seconds = time.perf_counter() - start
    if child.returncode:
        raise SystemExit(f"msgp generate failed with status {child.returncode}")
    out.unlink()
    return seconds, peak


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256, 1024])
    parser.add_argument("--seconds", type=float, default=2.0, help="time per method per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-cli", action="store_true", help="skip the 10000-sample CLI runs")
    args = parser.parse_args()

    print(f"cores: {os.cpu_count()}, numpy {np.__version__}, scipy {scipy.__version__}\n")
    print("| size | method | samples/s | cores | per core / float64 bound | per core / float32 bound |")
    print("|---|---|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for size in args.sizes:
            bound64, bound32 = "lower bound, float64 (1 thread)", "lower bound, float32 (1 thread)"
            methods = {
                bound64: lower_bound(size),
                bound32: lower_bound(size, np.float32),
                "msgp, K=3, 1 thread": msgp_single(size),
                "msgp generate, all cores, to HDF5": msgp_all_cores(size, folder),
                "gstools SRF (randomization, 1 field)": gstools_field(size),
                "powerbox PowerBox.delta_x (1 field)": powerbox_field(size),
            }
            methods = {name: fn for name, fn in methods.items() if fn is not None}
            for fn in methods.values():
                fn()  # warm caches (eigenvalues, FFT plans)
            rates = {name: [] for name in methods}
            for _ in range(args.rounds):
                for name, fn in methods.items():
                    rates[name].append(rate(fn, args.seconds))
            reference64, reference32 = statistics.median(rates[bound64]), statistics.median(rates[bound32])
            for name, values in rates.items():
                median = statistics.median(values)
                cores = os.cpu_count() if name == "msgp generate, all cores, to HDF5" else 1
                per_core = median / cores
                print(f"| {size}² | {name} | {median:,.1f} | {cores} | {per_core / reference64:.2f} | "
                      f"{per_core / reference32:.2f} |")
        if not args.no_cli:
            print("\n| command (all cores, oracle summary included) | wall time | peak memory, all processes |")
            print("|---|---:|---:|")
            for size, n in ((128, 10000), (256, 1000), (256, 10000)):
                seconds, peak = cli_run(n, size, folder)
                print(f"| `msgp generate --scales 3 --n {n} --size {size}` | {seconds:.1f} s | {peak:.0f} MB |")


if __name__ == "__main__":
    main()
