"""Backdrop for a loss that does not decompose over samples: a soft-F1 loss on large batches.

F1 is a property of a whole set of predictions, so its surrogate is computed on a large batch (1024
samples) to be a faithful estimate. Batch backdrop, ``Backdrop(p, dims=(0,))`` on the per-sample
logits, keeps that forward pass (the loss value still uses every sample) while the weight
gradient flows back only through a random ~(1 - p) fraction of the samples, which gives the
update the noise of a small batch (Golkar & Cranmer, arXiv:1806.01337, section 3).

The problem: imbalanced binary classification (5% positives) of Gaussian features, where the
positives' mean is shifted along a few directions, learned by a 2-layer MLP from a small
training set. Three runs per seed, same initial weights and batch order:

- ``large batch``: soft-F1 on batches of 1024, full gradient;
- ``large batch + backdrop``: the same, with batch backdrop of probability ``p`` on the logits;
- ``small batch``: soft-F1 on batches of ``round(1024 * (1 - p))``, as many steps per epoch as
  that batch size gives (for reference: the same gradient count per step as backdrop, but a
  noisier loss estimate).

    python examples/nondecomposable_f1.py                # 10 seeds, test F1 mean +- std
    python examples/nondecomposable_f1.py --seeds 10 --epochs 60 --p 0.75
"""
from __future__ import annotations

import argparse
import statistics

import torch
from torch import nn

from backdrop import Backdrop

FEATURES = 40
POSITIVE_FRACTION = 0.05
TRAIN, TEST = 8192, 50000
BATCH = 1024


def make_problem(seed: int) -> tuple[torch.Tensor, ...]:
    """Train and test sets: N(0, I) features; positives shifted by 0.75 along 8 random directions
    and scaled by 1.5 along 4 others (so the classes are not linearly separable)."""
    gen = torch.Generator().manual_seed(1000 + seed)
    basis, _ = torch.linalg.qr(torch.randn(FEATURES, FEATURES, generator=gen))
    shift = 0.75 * basis[:, :8].sum(dim=1)
    stretch = basis[:, 8:12]

    def draw(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        labels = (torch.rand(n, generator=gen) < POSITIVE_FRACTION).float()
        x = torch.randn(n, FEATURES, generator=gen)
        along = x @ stretch
        positive = labels[:, None]
        x = x + positive * (shift + 0.5 * along @ stretch.T)
        return x, labels

    return *draw(TRAIN), *draw(TEST)


def soft_f1_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """1 - soft F1, with sigmoid probabilities standing in for the hard predictions."""
    prob = torch.sigmoid(logits)
    tp = (prob * labels).sum()
    return 1 - 2 * tp / (prob.sum() + labels.sum())


def f1_score(logits: torch.Tensor, labels: torch.Tensor) -> float:
    predicted = (logits > 0).float()
    tp = float((predicted * labels).sum())
    return 2 * tp / max(float(predicted.sum() + labels.sum()), 1.0)


def train(seed: int, epochs: int, batch: int, p: float | None) -> float:
    """Test F1 of an MLP trained with the soft-F1 loss; batch backdrop on the logits when ``p``."""
    x, labels, x_test, labels_test = make_problem(seed)
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(FEATURES, 64), nn.ReLU(), nn.Linear(64, 1))
    mask = nn.Identity() if p is None else Backdrop(p, dims=(0,), generator=torch.Generator().manual_seed(seed))
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    order = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for idx in torch.randperm(TRAIN, generator=order).split(batch):
            if len(idx) < batch:
                continue
            loss = soft_f1_loss(mask(net(x[idx]).squeeze(-1)), labels[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        return f1_score(net(x_test).squeeze(-1), labels_test)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10, help="number of seeds (problems and initialisations)")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--p", type=float, default=0.875, help="batch backdrop mask probability")
    args = parser.parse_args()
    torch.set_num_threads(1)  # the nets are tiny: threads cost more than they save

    small = round(BATCH * (1 - args.p))
    runs = {"large batch (1024)": (BATCH, None),
            f"large batch (1024) + backdrop p={args.p}": (BATCH, args.p),
            f"small batch ({small})": (small, None)}
    scores = {name: [] for name in runs}
    for seed in range(args.seeds):
        for name, (batch, p) in runs.items():
            scores[name].append(train(seed, args.epochs, batch, p))
        print(f"seed {seed}: " + ", ".join(f"{s[-1]:.4f}" for s in scores.values()), flush=True)

    print(f"\n{TRAIN} training samples, {POSITIVE_FRACTION:.0%} positives, {args.epochs} epochs, "
          f"test F1 on {TEST} samples over {args.seeds} seeds\n")
    print("| training | test F1 (mean ± std) |")
    print("|---|---|")
    for name, s in scores.items():
        std = statistics.stdev(s) if len(s) > 1 else 0.0
        print(f"| {name} | {statistics.mean(s):.4f} ± {std:.4f} |")
    if args.seeds > 1:
        plain, masked = list(scores.values())[:2]
        gain = [b - a for a, b in zip(plain, masked)]
        print(f"\nbackdrop - large batch, paired by seed: {statistics.mean(gain):+.4f} "
              f"± {statistics.stdev(gain) / len(gain) ** 0.5:.4f} (standard error)")


if __name__ == "__main__":
    main()
