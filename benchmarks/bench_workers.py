"""Generation speed-up of `io.write(..., workers=W)` over W = 1, to HDF5, in one run.

Each W writes the same file (bit-identical by construction) in interleaved rounds; the table
gives the median samples/s and the speed-up over W = 1. The worker start-up is included.

    python benchmarks/bench_workers.py                     # 256², 512 samples, W = 1, 2
    python benchmarks/bench_workers.py --size 1024 --n 64
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from msgp import io
from msgp.spec import DatasetSpec


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--n", type=int, default=512)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    spec = DatasetSpec.default(3, args.size, n=args.n)
    rates = {w: [] for w in args.workers}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.rounds):
            for w in args.workers:
                start = time.perf_counter()
                io.write(spec, Path(tmp) / f"w{w}.h5", overwrite=True, workers=w)
                rates[w].append(args.n / (time.perf_counter() - start))
    print(f"msgp generate --scales 3 --size {args.size} --n {args.n}, {os.cpu_count()} cores\n")
    print("| size | workers | samples/s | speed-up over 1 worker |")
    print("|---|---:|---:|---:|")
    base = statistics.median(rates[args.workers[0]])
    for w, values in rates.items():
        print(f"| {args.size}² | {w} | {statistics.median(values):,.1f} | {statistics.median(values) / base:.2f} |")


if __name__ == "__main__":
    main()
