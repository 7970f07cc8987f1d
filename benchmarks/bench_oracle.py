"""Oracle throughput beside one forward real FFT of the same batch.

The oracle's whole-image likelihood costs one ``rfftn`` per sample plus one matrix product of the
squared spectra against the precomputed inverse eigenvalues of the C classes. Both are timed in the
same run, in interleaved rounds, on the same float32 batch (``--scales 3`` defaults, 8 classes),
one FFT thread; the ratio is oracle samples/s over rfftn samples/s (target: at least 0.5).

    python benchmarks/bench_oracle.py
    python benchmarks/bench_oracle.py --sizes 128 --rounds 5
"""
from __future__ import annotations

import argparse
import statistics
import time

from msgp import oracle, spectral
from msgp.generate import Sampler
from msgp.spec import DatasetSpec

BATCH = {128: 256, 256: 64, 512: 16, 1024: 8}


def seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(size: int, n_scales: int, rounds: int) -> dict:
    """Median samples/s of the oracle and of ``spectral.analyze`` (float64 rfftn) on one batch."""
    batch_size = BATCH.get(size, 8)
    spec = DatasetSpec.default(n_scales, size, n=batch_size)
    fields = Sampler(spec).batch(0, batch_size).fields
    model = oracle.FourierModel(spec)
    model.log_likelihoods(fields)  # warm the FFT plan cache
    fft, full = [], []
    for _ in range(rounds):
        fft.append(seconds(lambda: spectral.analyze(fields, spec.ndim)))
        full.append(seconds(lambda: model.log_likelihoods(fields)))
    fft_rate = batch_size / statistics.median(fft)
    oracle_rate = batch_size / statistics.median(full)
    return {"size": size, "classes": spec.n_classes, "batch": batch_size, "fft": fft_rate,
            "oracle": oracle_rate, "ratio": oracle_rate / fft_rate}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 1024])
    parser.add_argument("--scales", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    print("| size | classes | batch | rfftn samples/s | oracle samples/s | oracle / rfftn |")
    print("|---|---|---|---|---|---|")
    for size in args.sizes:
        r = measure(size, args.scales, args.rounds)
        print(f"| {r['size']}² | {r['classes']} | {r['batch']} | {r['fft']:.0f} | {r['oracle']:.0f} | {r['ratio']:.2f} |")


if __name__ == "__main__":
    main()
