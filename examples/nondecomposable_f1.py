"""Backdrop for a loss that does not decompose over samples, one seed at a time.

The measured comparison (every method, 10-20 seeds, two problems, paired 95% intervals, each
metric beside its exact ceiling) is ``msgp experiment --plan f1`` (and ``--plan auc``); this
example trains three of its runs on the Gaussian problem and prints their test F1 beside the
best achievable F1:

    python examples/nondecomposable_f1.py             # seed 0, p = 0.875, about half a minute
    python examples/nondecomposable_f1.py --seed 3 --p 0.75
"""
from __future__ import annotations

import argparse

import torch

from backdrop import nondecomposable as nd
from backdrop.nondecomposable.plans import TEST_STREAM, TRAIN_STREAM


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--p", type=float, default=0.875, help="batch backdrop mask probability")
    args = parser.parse_args()
    torch.set_num_threads(1)  # the net is tiny: threads cost more than they save

    plan = nd.f1_plan()
    setup = plan.setup("gaussian")
    problem = setup.problem
    train = problem.draw(setup.n_train, TRAIN_STREAM + args.seed)
    test = problem.draw(setup.n_test, TEST_STREAM)
    ceiling = nd.ceilings(problem, 100_000)
    print(f"{problem.describe()}\nbest achievable F1 {ceiling['f1']:.4f} ± {ceiling['f1_se']:.4f}\n")
    common = dict(problem="gaussian", loss="f1", seed=args.seed, steps=setup.steps, lr=setup.lr,
                  n_train=setup.n_train, n_test=setup.n_test, checkpoints=4)
    for run in (nd.LossRun(method="full", batch=setup.batch, **common),
                nd.LossRun(method="backdrop", batch=setup.batch, p=args.p, **common),
                nd.LossRun(method="small", batch=setup.kept(args.p), **common)):
        result = nd.train_run(run, train, test, problem.prior)
        print(f"{run.tag:>18}: test F1 {result['test_f1']:.4f} ({result['test_f1'] / ceiling['f1']:.3f} of the "
              f"ceiling), {result['train_seconds']:.1f} s")


if __name__ == "__main__":
    main()
