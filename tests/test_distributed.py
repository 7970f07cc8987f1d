"""Backdrop under DistributedDataParallel: real DDP on 2 CPU processes (gloo).

With :class:`backdrop.distributed.GlobalBatchMasks` every rank's masks are its rows of the mask
one process draws for the global batch, and the all-reduced gradient is that process's gradient.
Without it, ranks whose generators share a seed draw the same masks, and a seed per rank splits
a batch-shared mask into one mask per rank.
"""
from __future__ import annotations

import datetime
import os

import pytest
import torch
import torch.multiprocessing as mp
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.checkpoint import checkpoint

from backdrop import Backdrop, draw_mask
from backdrop.distributed import GlobalBatchMasks

WORLD = 2
ROWS = 8  # rows of the global batch
STEPS = 2  # the second step checks that the ranks' generators stay in step
SEED = 7
EPS32 = torch.finfo(torch.float32).eps

# name: (dims, rows_per_image, with the helper, a seed per rank); dims None is the layer's default.
SCENARIOS = {
    "sample": (None, 1, True, False),
    "crops": (None, 2, True, False),
    "whole samples": ((0,), 1, True, False),
    "batch": ((-2, -1), 1, True, False),
    "sample, one seed, no helper": (None, 1, False, False),
    "batch, one seed, no helper": ((-2, -1), 1, False, False),
    "sample, a seed per rank": (None, 1, False, True),
    "batch, a seed per rank": ((-2, -1), 1, False, True),
}
HELPED = [name for name, (_, _, helper, _) in SCENARIOS.items() if helper]


def tiny_net(dims, seed: int = SEED) -> nn.Sequential:
    """Conv2d -> Backdrop -> Conv2d, the same weights in every process."""
    torch.manual_seed(0)
    settings = {} if dims is None else {"dims": dims}
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1),
                         Backdrop(0.5, generator=torch.Generator().manual_seed(seed), **settings),
                         nn.Conv2d(4, 2, 3, padding=1))


def batches() -> torch.Tensor:
    return torch.randn(STEPS, ROWS, 1, 8, 8, generator=torch.Generator().manual_seed(1))


def rank_rows(rank: int, rows_per_image: int) -> list[int]:
    """The global rows a DistributedSampler deals to ``rank``: images rank, rank + WORLD, ..."""
    images = ROWS // rows_per_image
    return [i * rows_per_image + j for i in range(rank, images, WORLD) for j in range(rows_per_image)]


def steps(net: nn.Module, layer: Backdrop, rows: list[int]) -> list[dict]:
    """Gradient and mask of each step: mean loss of ``net`` on ``rows`` of each batch."""
    records = []
    for x in batches():
        net.zero_grad()
        net(x[rows]).mean().backward()
        records.append({"grads": [p.grad.clone() for p in layer_params(net)], "mask": layer.last_mask.clone()})
    return records


def layer_params(net: nn.Module) -> list[torch.Tensor]:
    return list((net.module if isinstance(net, DistributedDataParallel) else net).parameters())


def _worker(rank: int, init_file: str, out: str) -> None:
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD,
                                         timeout=datetime.timedelta(seconds=60))
    results = {}
    for name, (dims, rows_per_image, helper, seed_per_rank) in SCENARIOS.items():
        net = tiny_net(dims, SEED + rank if seed_per_rank else SEED)
        masks = GlobalBatchMasks(net, rows_per_image=rows_per_image) if helper else None
        results[name] = steps(DistributedDataParallel(net), net[1], rank_rows(rank, rows_per_image))
        if masks is not None:
            masks.remove()
    torch.save(results, os.path.join(out, f"rank{rank}.pt"))
    torch.distributed.barrier()
    # As in test_train: tearing the gloo group down at exit can abort after the work is done.
    os._exit(0)


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    """Each rank's per-step gradients and masks for every scenario, from one 2-process DDP run."""
    tmp = tmp_path_factory.mktemp("ddp")
    mp.spawn(_worker, args=(str(tmp / "init"), str(tmp)), nprocs=WORLD)
    return [torch.load(tmp / f"rank{r}.pt") for r in range(WORLD)]


def one_process(name: str) -> list[dict]:
    dims, rows_per_image, _, _ = SCENARIOS[name]
    net = tiny_net(dims)
    return steps(net, net[1], list(range(ROWS)))


def assert_close(got: torch.Tensor, want: torch.Tensor) -> None:
    # An n-term float32 sum rounds by at most about n * eps of its terms' size; the longest sums
    # here are the weight gradients, over the global batch's rows times 8 x 8 positions.
    tol = ROWS * 64 * EPS32 * want.abs().max().item()
    assert (got - want).abs().max().item() <= tol


@pytest.mark.slow
@pytest.mark.parametrize("name", HELPED)
def test_with_the_helper_every_rank_has_the_one_process_masks_and_gradient(ranks, name):
    _, rows_per_image, _, _ = SCENARIOS[name]
    for step, want in enumerate(one_process(name)):
        for rank, results in enumerate(ranks):
            got = results[name][step]
            if name == "batch":  # one mask for the global batch, used whole by every rank
                assert got["mask"].shape[0] == 1
                assert torch.equal(got["mask"], want["mask"])
            else:
                assert torch.equal(got["mask"], want["mask"][rank_rows(rank, rows_per_image)])
            for g, w in zip(got["grads"], want["grads"]):
                assert_close(g, w)


@pytest.mark.slow
def test_without_the_helper_ranks_with_one_seed_draw_the_same_masks(ranks):
    """Sample i of rank 0 and sample i of rank 1 share a mask: seed per rank, or use the helper."""
    name = "sample, one seed, no helper"
    for step in range(STEPS):
        assert torch.equal(ranks[0][name][step]["mask"], ranks[1][name][step]["mask"])
        assert not torch.equal(ranks[0]["sample"][step]["mask"], ranks[1]["sample"][step]["mask"])


@pytest.mark.slow
def test_without_the_helper_a_batch_shared_mask_from_one_seed_is_already_the_one_process_mask(ranks):
    """Its shape does not depend on the batch, so every rank draws the numbers one process draws."""
    for step, want in enumerate(one_process("batch")):
        for results in ranks:
            assert torch.equal(results["batch, one seed, no helper"][step]["mask"], want["mask"])


@pytest.mark.slow
def test_a_seed_per_rank_gives_each_rank_its_own_masks_even_a_batch_shared_one(ranks):
    for name in ("sample, a seed per rank", "batch, a seed per rank"):
        for step in range(STEPS):
            assert not torch.equal(ranks[0][name][step]["mask"], ranks[1][name][step]["mask"])
    assert ranks[0]["batch, a seed per rank"][0]["mask"].shape[0] == 1


# One process: what the helper draws, when, and what it leaves behind ----------------------------

def test_in_one_process_the_helper_draws_what_the_layer_draws():
    x = batches()[0]
    for dims in (None, (0,), (-2, -1)):
        plain, helped = tiny_net(dims), tiny_net(dims)
        with GlobalBatchMasks(helped) as masks:
            assert (masks.rank, masks.world) == (0, 1)
            plain(x).sum().backward()
            helped(x).sum().backward()
        assert torch.equal(plain[1].last_mask, helped[1].last_mask)


def test_the_helper_draws_nothing_in_eval_mode_without_grad_or_for_inputs_without_grad():
    generator = torch.Generator().manual_seed(0)
    layer = Backdrop(0.5, generator=generator)
    x = torch.randn(4, 3, 8, 8)
    before = generator.get_state()
    with GlobalBatchMasks(layer, rank=1, world=2):
        layer(x)  # the input does not require grad
        with torch.no_grad():
            layer(x.requires_grad_())
        with torch.inference_mode():
            layer(torch.randn(4, 3, 8, 8))
        layer.eval()
        layer(x).sum().backward()
        assert torch.equal(generator.get_state(), before) and layer.last_mask is None
        layer.train()
        layer(x).sum().backward()
        assert layer.last_mask.shape == (4, 1, 8, 8) and not torch.equal(generator.get_state(), before)


def test_the_users_fixed_mask_wins_and_remove_gives_the_layer_its_own_draws():
    layer = Backdrop(0.5, generator=torch.Generator().manual_seed(0))
    own = torch.ones(1, 1, 8, 8)
    layer.fixed_mask = own
    x = torch.randn(4, 3, 8, 8, requires_grad=True)
    with GlobalBatchMasks(layer, rank=0, world=2):
        layer(x).sum().backward()
        assert layer.last_mask is own
        layer.fixed_mask = None
        layer(x).sum().backward()
        # Rows 0 and 2 of the mask of 8 images, drawn from the layer's seed.
        global_mask = draw_mask(torch.empty(8, 3, 8, 8), 0.5, generator=torch.Generator().manual_seed(0))
        assert torch.equal(layer.last_mask, global_mask[0::2])
    assert layer.mask_source is None
    layer(x).sum().backward()  # the helper is gone: the layer draws for its own batch
    assert layer.last_mask.shape == (4, 1, 8, 8)


def test_activation_checkpointing_with_the_helper_gives_the_gradient_without_it():
    x = batches()[0].requires_grad_()
    grads = []
    for use_checkpoint in (False, True):
        net = tiny_net(None)
        with GlobalBatchMasks(net, rank=1, world=2):
            for _ in range(2):  # the second step: the generator was not advanced by the recomputation
                net.zero_grad()
                out = checkpoint(net, x, use_reentrant=False) if use_checkpoint else net(x)
                out.sum().backward()
                grads.append([p.grad.clone() for p in net.parameters()])
    for a, b in zip(grads[:2], grads[2:]):
        for g, h in zip(a, b):
            assert torch.equal(g, h)


def test_bad_settings_are_refused_with_the_bad_value():
    layer = Backdrop(0.5)
    for kwargs, match in [({"rank": 2, "world": 2}, "rank must be an int in \\[0, 2\\), but got 2"),
                          ({"rank": 0, "world": 0}, "world must be a positive int, but got 0"),
                          ({"rows_per_image": 0}, "rows_per_image must be a positive int, but got 0")]:
        with pytest.raises(ValueError, match=match):
            GlobalBatchMasks(layer, **kwargs)
    with GlobalBatchMasks(layer, rank=0, world=2, rows_per_image=2):
        with pytest.raises(ValueError, match="already has a mask_source"):
            GlobalBatchMasks(layer)
        with pytest.raises(ValueError, match="local batch of 3 rows is not made of images of 2 rows"):
            layer(torch.randn(3, 1, 8, 8, requires_grad=True)).sum().backward()
