"""Time per training step with Backdrop layers: against the same net without, and against the
layer as it was at an earlier revision (``--before``, read from git), on a small conv net and on
``msgp train``'s default network (3 scales, 128², backdrop at every head).

The nets have the same weights and see the same batches; the earlier layer replaces each Backdrop
module with its own settings and generator. Steps are timed in interleaved rounds (the order
within a round rotates), after warm-up, and the medians are compared; the result is printed as a
markdown table, with each ratio also taken per round (the steps of a round run back to back, so
that ratio is robust to load that drifts).

    python benchmarks/bench_backdrop.py                  # CPU, batch 16 of 1x128x128
    python benchmarks/bench_backdrop.py --before 337cd61 --rounds 100
    python benchmarks/bench_backdrop.py --device cuda --rounds 200
"""
from __future__ import annotations

import argparse
import copy
import importlib
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from backdrop import Backdrop
from backdrop.models import MultiScaleNet
from msgp.spec import DatasetSpec

ROOT = Path(__file__).resolve().parent.parent
# The last revision whose layer drew its masks in the forward pass and returned a view.
DEFAULT_BEFORE = "337cd61"


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


def layer_at(revision: str) -> type:
    """The ``Backdrop`` class of ``backdrop/layer.py`` at a git revision, imported from a copy."""
    folder = Path(tempfile.mkdtemp()) / "backdrop_before"
    folder.mkdir()
    (folder / "__init__.py").write_text("")
    for name in ("layer.py", "functional.py"):
        source = subprocess.run(["git", "-C", str(ROOT), "show", f"{revision}:backdrop/{name}"],
                                check=True, capture_output=True, text=True).stdout
        (folder / name).write_text(source)
    sys.path.insert(0, str(folder.parent))
    return importlib.import_module("backdrop_before.layer").Backdrop


def with_layer(net: nn.Module, layer_class: type) -> nn.Module:
    """A copy of ``net`` whose Backdrop modules are ``layer_class`` modules with the same settings."""
    net = copy.deepcopy(net)
    for module in list(net.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, Backdrop):
                dims = child.dims if child.dims is not None else (0, -2, -1)
                setattr(module, name, layer_class(child.p, dims=dims, rescale=child.rescale,
                                                  generator=child.generator, block=child.block))
    return net


def default_network(mask_prob: float | None, size: int) -> MultiScaleNet:
    """``msgp train``'s default network for ``--scales 3`` at ``size``, weights from seed 0."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return MultiScaleNet.from_spec(DatasetSpec.default(3, size, n=16), mask_prob=mask_prob,
                                       generators=None if mask_prob is None else
                                       [torch.Generator().manual_seed(s) for s in range(3)])


def make_step(net: nn.Module, device: torch.device, loss_fn):
    optimizer = torch.optim.SGD(net.parameters(), lr=1e-3)

    def step(x: torch.Tensor, y: torch.Tensor) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss_fn(net, x, y).backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    return step


def time_steps(steps: dict, x: torch.Tensor, y: torch.Tensor, rounds: int, warmup: int) -> dict:
    times = {name: [] for name in steps}
    names = list(steps)
    for r in range(warmup + rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            seconds = steps[name](x, y)
            if r >= warmup:
                times[name].append(seconds)
    return times


def table(title: str, times: dict, base: str) -> None:
    print(f"| {title} | median step (ms) | ratio of medians | median of per-round ratios |")
    print("|---|---:|---:|---:|")
    reference = statistics.median(times[base])
    for name, ts in times.items():
        median = statistics.median(ts)
        paired = statistics.median(b / a for a, b in zip(times[base], ts))
        print(f"| {name} | {1e3 * median:.2f} | {median / reference:.3f} | {paired:.3f} |")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--p", type=float, default=0.5, help="mask probability of the Backdrop layers")
    parser.add_argument("--rounds", type=int, default=100, help="timed steps of each net")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--before", default=DEFAULT_BEFORE, help="git revision of the earlier layer")
    args = parser.parse_args()

    device = torch.device(args.device)
    before = layer_at(args.before)
    threads = torch.get_num_threads() if device.type == "cpu" else "-"
    print(f"device: {device}, threads: {threads}, batch {args.batch} x 1 x {args.size} x {args.size}, "
          f"p = {args.p}, {args.rounds} interleaved rounds, torch {torch.__version__}, "
          f"earlier layer: {args.before}\n")
    x = torch.randn(args.batch, 1, args.size, args.size, device=device)

    torch.manual_seed(0)
    plain = conv_net(None).to(device)
    masked = conv_net(args.p).to(device)
    masked.load_state_dict(copy.deepcopy(plain.state_dict()))
    cross_entropy = nn.CrossEntropyLoss()
    def classify(net, x, y):
        return cross_entropy(net(x), y)

    steps = {"without Backdrop": make_step(plain, device, classify),
             "with 2 Backdrop layers": make_step(masked, device, classify),
             f"with 2 Backdrop layers at {args.before}": make_step(with_layer(masked, before), device, classify)}
    y = torch.randint(0, 8, (args.batch,), device=device)
    table("small conv net", time_steps(steps, x, y, args.rounds, args.warmup), "without Backdrop")

    def scale_losses(net, x, y):
        return net.scale_losses(net(x), y).sum()

    full = default_network(None, args.size).to(device)
    backdrop_net = default_network(args.p, args.size).to(device)
    steps = {"full gradient": make_step(full, device, scale_losses),
             "backdrop": make_step(backdrop_net, device, scale_losses),
             f"backdrop at {args.before}": make_step(with_layer(backdrop_net, before), device, scale_losses)}
    y = torch.randint(0, 2, (args.batch, 3), device=device)
    table("default network", time_steps(steps, x, y, args.rounds, args.warmup), "full gradient")


if __name__ == "__main__":
    main()
