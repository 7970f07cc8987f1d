"""Training throughput of `msgp train`'s methods: backdrop, no backdrop, and random crops.

One training step is what :func:`backdrop.training.train` does per batch: forward, the per-scale
losses, backward, Adam. The network is the default one (`--width 16`, heads placed for the
`--scales 3` defaults at each size) on random fields (speed does not depend on the values). The
crop baseline takes `(size // crop)**2` crops per image, as `msgp train --crop` does, so a step
sees as many pixels; images/s counts whole images in every row. Methods are timed in interleaved
rounds and the median round is reported, with the torch threads given by `--threads`.

    python benchmarks/bench_train.py                   # 128 and 256 px, markdown table
    python benchmarks/bench_train.py --sizes 128 --rounds 3
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from backdrop.models import MultiScaleNet
from backdrop.training import take_crops
from msgp.spec import DatasetSpec


def step_fn(size: int, method: str, batch: int, crop: int, seed: int = 0):
    """A closure running one training step; returns the images it consumed."""
    spec = DatasetSpec.default(3, size, n=batch)
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = MultiScaleNet.from_spec(spec, mask_prob=0.5 if method == "backdrop" else None,
                                        generators=[torch.Generator().manual_seed(s) for s in range(3)]
                                        if method == "backdrop" else None)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    fields = torch.randn(batch, 1, size, size, generator=generator)
    choices = torch.randint(0, 2, (batch, 3), generator=generator)
    per_image = (size // crop) ** 2

    def run() -> int:
        x, y = fields, choices
        if method.startswith("crop"):
            offsets = torch.randint(0, size, (batch, per_image, 2), generator=generator)
            x, y = take_crops(fields, offsets, crop), choices.repeat_interleave(per_image, dim=0)
        optimizer.zero_grad(set_to_none=True)
        model.scale_losses(model(x), y).sum().backward()
        optimizer.step()
        return batch
    return run


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--batch", type=int, default=16, help="images per step (the msgp train default)")
    parser.add_argument("--crop", type=int, default=32, help="crop side of the crop baseline")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=2.0, help="per method and round")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    methods = ["backdrop", "no backdrop", f"crop {args.crop}"]
    print(f"torch {torch.__version__}, {args.threads} threads, batch {args.batch} images, median of "
          f"{args.rounds} rounds of {args.seconds:g} s\n")
    print("| size | " + " | ".join(f"{m} (images/s)" for m in methods) + " | backdrop / no backdrop |")
    print("|---|" + "---|" * (len(methods) + 1))
    for size in args.sizes:
        runs = {m: step_fn(size, m, args.batch, args.crop) for m in methods}
        for run in runs.values():  # warm-up: allocator, oneDNN primitives
            run()
        rates = {m: [] for m in methods}
        for _ in range(args.rounds):
            for m, run in runs.items():
                done, start = 0, time.perf_counter()
                while time.perf_counter() - start < args.seconds:
                    done += run()
                rates[m].append(done / (time.perf_counter() - start))
        median = {m: statistics.median(r) for m, r in rates.items()}
        print(f"| {size}² | " + " | ".join(f"{median[m]:.1f}" for m in methods)
              + f" | {median['backdrop'] / median['no backdrop']:.2f} |")


if __name__ == "__main__":
    main()
