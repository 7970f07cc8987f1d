"""Time per training step of a small conv net with two Backdrop layers against the same net without.

Both nets have the same weights and see the same batches. Steps are timed in interleaved rounds
(the order within a round alternates), after warm-up, and the medians are compared; the result is
printed as a markdown table.

    python benchmarks/bench_backdrop.py                  # CPU, batch 16 of 1x128x128
    python benchmarks/bench_backdrop.py --device cuda --rounds 200
"""
from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
from torch import nn

from backdrop import Backdrop


def conv_net(p: float | None) -> nn.Sequential:
    """Four 3x3 convolutions, two of stride 2, a pooled linear head; Backdrop after conv 2 and 3
    when ``p`` is given."""
    def mask() -> nn.Module:
        return nn.Identity() if p is None else Backdrop(p)

    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(), mask(),
        nn.Conv2d(32, 32, 3, stride=2, padding=1), nn.ReLU(), mask(),
        nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 8),
    )


def make_step(net: nn.Module, device: torch.device):
    optimizer = torch.optim.SGD(net.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()

    def step(x: torch.Tensor, y: torch.Tensor) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss_fn(net(x), y).backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--p", type=float, default=0.5, help="mask probability of both Backdrop layers")
    parser.add_argument("--rounds", type=int, default=100, help="timed steps of each net")
    parser.add_argument("--warmup", type=int, default=10)
    args = parser.parse_args()

    device = torch.device(args.device)
    torch.manual_seed(0)
    plain = conv_net(None).to(device)
    masked = conv_net(args.p).to(device)
    masked.load_state_dict(copy.deepcopy(plain.state_dict()))
    steps = {"without Backdrop": make_step(plain, device), "with 2 Backdrop layers": make_step(masked, device)}
    x = torch.randn(args.batch, 1, args.size, args.size, device=device)
    y = torch.randint(0, 8, (args.batch,), device=device)

    times = {name: [] for name in steps}
    for r in range(args.warmup + args.rounds):
        order = list(steps) if r % 2 == 0 else list(steps)[::-1]
        for name in order:
            seconds = steps[name](x, y)
            if r >= args.warmup:
                times[name].append(seconds)

    base = statistics.median(times["without Backdrop"])
    threads = torch.get_num_threads() if device.type == "cpu" else "-"
    print(f"device: {device}, threads: {threads}, batch {args.batch} x 1 x {args.size} x {args.size}, "
          f"p = {args.p}, {args.rounds} interleaved rounds, torch {torch.__version__}\n")
    # The two steps of a round run back to back, so their ratio is robust to load that drifts.
    paired = statistics.median(b / a for a, b in zip(*times.values()))
    print("| net | median step (ms) | ratio of medians | median of per-round ratios |")
    print("|---|---:|---:|---:|")
    for name, ts in times.items():
        median = statistics.median(ts)
        ratio = 1.0 if name == "without Backdrop" else paired
        print(f"| {name} | {1e3 * median:.2f} | {median / base:.3f} | {ratio:.3f} |")


if __name__ == "__main__":
    main()
