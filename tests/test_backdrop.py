"""Backdrop: identity forward, exactly masked gradient backward, the mask's law, and its settings."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from backdrop import Backdrop, backdrop, draw_mask, mask_gradient

SHAPES_AND_DIMS = [
    ((5, 3, 7, 6), (0, -2, -1)),
    ((5, 3, 7, 6), (0,)),
    ((5, 3, 7, 6), (1,)),
    ((5, 3, 7, 6), (-1,)),
    ((5, 3, 7, 6), (0, 1, 2, 3)),
    ((4, 9), (0, 1)),
    ((4, 9), (-1,)),
    ((6, 2, 5, 4, 3), (0, 2, -1)),
    ((11,), (0,)),
]


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def groups_of(mask: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
    """The mask as (groups, positions): one row per sample when dims hold 0 and another dim."""
    resolved = {d % mask.ndim for d in dims}
    per_sample = 0 in resolved and len(resolved) > 1
    return mask.reshape(mask.shape[0] if per_sample else 1, -1)


def soft_f1_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """1 - soft F1 of the batch: a loss that does not decompose into a sum over samples."""
    prob = torch.sigmoid(logits)
    tp = (prob * labels).sum()
    return 1 - 2 * tp / (prob.sum() + labels.sum())


# --- forward and gradient --------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_forward_is_the_input_bit_for_bit_in_a_copy(dtype):
    x = torch.randn(3, 2, 5, 4).to(dtype).requires_grad_()
    layer = Backdrop(0.5, generator=seeded())
    y = layer(x)
    assert torch.equal(y, x) and y.dtype == dtype and y.shape == x.shape and y.stride() == x.stride()
    # A copy, so that in-place operations after the layer are allowed and leave x alone.
    assert y.data_ptr() != x.data_ptr()
    y.mul_(2)
    assert not torch.equal(y, x)


@pytest.mark.parametrize("shape,dims", SHAPES_AND_DIMS)
def test_gradient_is_upstream_times_mask_exactly(shape, dims):
    gen = seeded(sum(shape))
    x = torch.randn(shape, generator=gen, requires_grad=True)
    upstream = torch.randn(shape, generator=gen)
    layer = Backdrop(0.6, dims=dims, generator=gen)
    layer(x).backward(upstream)
    mask = layer.last_mask
    expected_shape = [s if d in {k % len(shape) for k in dims} else 1 for d, s in enumerate(shape)]
    assert list(mask.shape) == expected_shape
    assert torch.equal(x.grad, upstream * mask)


@pytest.mark.parametrize("shape,dims", SHAPES_AND_DIMS)
def test_rescaled_entries_are_positions_over_kept(shape, dims):
    x = torch.zeros(shape, dtype=torch.float64)
    for seed in range(5):
        rows = groups_of(draw_mask(x, 0.5, dims, generator=seeded(seed)), dims)
        for row in rows:
            kept = int((row != 0).sum())
            assert kept >= 1
            assert torch.equal(row[row != 0], torch.full((kept,), row.numel() / kept, dtype=torch.float64))


def test_default_dims_rescale_and_keep_per_sample():
    mask = draw_mask(torch.zeros(8, 3, 4, 4), 0.7, generator=seeded(1))
    assert mask.shape == (8, 1, 4, 4)
    torch.testing.assert_close(mask.sum(dim=(1, 2, 3)), torch.full((8,), 16.0))


def test_without_rescale_the_mask_is_zeros_and_ones():
    mask = draw_mask(torch.zeros(6, 2, 9, 9), 0.4, rescale=False, generator=seeded(2))
    assert set(mask.unique().tolist()) == {0.0, 1.0}


def test_at_least_one_position_kept_per_group():
    x = torch.zeros(200, 3, 2, 2)
    forced = torch.zeros(2, 2)
    for seed in range(20):
        mask = draw_mask(x, 0.999, generator=seeded(seed))
        kept = (mask != 0).sum(dim=(1, 2, 3))
        assert torch.all(kept >= 1)
        torch.testing.assert_close(mask.sum(dim=(1, 2, 3)), torch.full((200,), 4.0))
        forced += (mask[:, 0] != 0).sum(dim=0)
    # Nearly every kept position is the forced one; all four positions get chosen.
    assert torch.all(forced > 0)
    whole = draw_mask(torch.zeros(3, 5), 0.999, dims=(1,), generator=seeded(3))
    assert int((whole != 0).sum()) >= 1


def test_p_zero_keeps_everything():
    mask = draw_mask(torch.zeros(4, 3, 5, 5), 0.0, generator=seeded())
    assert torch.equal(mask, torch.ones(4, 1, 5, 5))


def test_fraction_kept_matches_one_minus_p():
    p, n = 0.3, 64 * 128 * 128
    mask = draw_mask(torch.zeros(64, 1, 128, 128), p, rescale=False, generator=seeded(4))
    sigma = math.sqrt(p * (1 - p) / n)
    assert abs(float(mask.mean()) - (1 - p)) < 5 * sigma


def test_generator_makes_masks_reproducible():
    x = torch.zeros(4, 2, 16, 16)
    a = Backdrop(0.5, generator=seeded(7))
    b = Backdrop(0.5, generator=seeded(7))
    c = Backdrop(0.5, generator=seeded(8))
    for layer in (a, b, c):
        layer(x.requires_grad_()).sum().backward()
    assert torch.equal(a.last_mask, b.last_mask)
    assert not torch.equal(a.last_mask, c.last_mask)
    torch.manual_seed(5)
    first = draw_mask(x, 0.5)
    torch.manual_seed(5)
    assert torch.equal(first, draw_mask(x, 0.5))


def test_eval_mode_is_the_identity_for_gradients_too():
    gen = seeded(9)
    layer = Backdrop(0.9, generator=gen).eval()
    x = torch.randn(3, 2, 4, 4, requires_grad=True)
    state = gen.get_state()
    y = layer(x)
    assert y is x
    upstream = torch.randn(3, 2, 4, 4)
    y.backward(upstream)
    assert torch.equal(x.grad, upstream)
    assert torch.equal(gen.get_state(), state) and layer.last_mask is None
    assert backdrop(x, 0.9, training=False) is x


def test_fixed_mask_is_used_until_cleared():
    layer = Backdrop(0.5, generator=seeded(10))
    fixed = torch.tensor([0.0, 3.0, 0.5]).view(1, 1, 1, 3)
    layer.fixed_mask = fixed
    for _ in range(2):
        x = torch.randn(2, 2, 2, 3, requires_grad=True)
        layer(x).sum().backward()
        assert torch.equal(x.grad, fixed.expand(2, 2, 2, 3)) and layer.last_mask is fixed
    layer.fixed_mask = None
    x = torch.randn(2, 2, 2, 3, requires_grad=True)
    layer(x).sum().backward()
    assert layer.last_mask is not fixed and layer.last_mask.shape == (2, 1, 2, 3)
    assert torch.equal(x.grad, layer.last_mask.expand(2, 2, 2, 3))


# --- the gradient of a network ---------------------------------------------------------------


def test_conv_net_weight_gradient_is_the_masked_vjp():
    torch.manual_seed(11)
    conv1, conv2 = nn.Conv2d(2, 4, 3, padding=1).double(), nn.Conv2d(4, 3, 3).double()
    layer = Backdrop(0.5, generator=seeded(12))
    x = torch.randn(3, 2, 8, 8, dtype=torch.float64)

    def head(y):
        return (torch.tanh(conv2(y)) ** 2).mean()

    head(layer(conv1(x))).backward()
    mask = layer.last_mask

    y = conv1(x)
    upstream, = torch.autograd.grad(head(y), y)
    unmasked, = torch.autograd.grad(y, conv1.weight, upstream, retain_graph=True)
    expected = torch.autograd.grad(y, (conv1.weight, conv1.bias), upstream * mask)
    assert torch.equal(conv1.weight.grad, expected[0]) and torch.equal(conv1.bias.grad, expected[1])
    assert not torch.equal(conv1.weight.grad, unmasked)


def test_batch_backdrop_on_a_non_decomposable_loss():
    gen = seeded(13)
    n = 1024
    net = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 1)).double()
    x = torch.randn(n, 8, generator=gen, dtype=torch.float64)
    labels = (torch.rand(n, generator=gen) < 0.1).double()
    layer = Backdrop(0.75, dims=(0,), generator=gen)

    logits = net(x).squeeze(-1)
    loss = soft_f1_loss(layer(logits), labels)
    assert torch.equal(loss, soft_f1_loss(logits, labels))  # the forward pass sees every sample
    got = torch.autograd.grad(loss, list(net.parameters()), retain_graph=True)

    keep = layer.last_mask != 0
    kept = int(keep.sum())
    assert 0 < kept < n and torch.all(layer.last_mask[keep] == n / kept)
    partial = soft_f1_loss(torch.where(keep, logits, logits.detach()), labels)
    expected = torch.autograd.grad(partial, list(net.parameters()))
    for g, e in zip(got, expected):
        torch.testing.assert_close(g, n / kept * e, rtol=1e-12, atol=0)


def test_batch_backdrop_exact_with_a_power_of_two_scale():
    torch.manual_seed(14)
    net = nn.Linear(4, 1)
    x, labels = torch.randn(64, 4), (torch.rand(64) < 0.2).float()
    keep = torch.zeros(64, dtype=torch.bool)
    keep[torch.randperm(64)[:16]] = True
    layer = Backdrop(0.75, dims=(0,))
    layer.fixed_mask = keep * 4.0
    logits = net(x).squeeze(-1)
    got = torch.autograd.grad(soft_f1_loss(layer(logits), labels), net.weight, retain_graph=True)[0]
    partial = soft_f1_loss(torch.where(keep, logits, logits.detach()), labels)
    assert torch.equal(got, 4.0 * torch.autograd.grad(partial, net.weight)[0])


# --- block masks -----------------------------------------------------------------------------


@pytest.mark.parametrize("block,size", [(2, (8, 8)), (3, (8, 7)), ((4, 1), (9, 5)), ((2, 5), (6, 12))])
def test_block_masks_are_constant_on_blocks(block, size):
    bh, bw = (block, block) if isinstance(block, int) else block
    for seed in range(4):
        mask = draw_mask(torch.zeros(3, 2, *size), 0.6, block=block, generator=seeded(seed))
        assert mask.shape == (3, 1, *size)
        for i in range(0, size[0], bh):
            for j in range(0, size[1], bw):
                tile = mask[:, :, i:i + bh, j:j + bw]
                assert torch.equal(tile, tile[:, :, :1, :1].expand_as(tile))
        for row in mask.reshape(3, -1):
            kept = int((row != 0).sum())
            assert kept >= 1 and torch.all(row[row != 0] == row.numel() / kept)


def test_block_one_is_the_plain_mask():
    x = torch.zeros(2, 3, 6, 6)
    assert torch.equal(draw_mask(x, 0.5, block=1, generator=seeded(15)),
                       draw_mask(x, 0.5, generator=seeded(15)))


# --- arguments -------------------------------------------------------------------------------


# Wrong types and values of every argument: tests/test_arguments.py. What only the input can
# tell is checked at the forward:


@pytest.mark.parametrize("dims,match", [((4,), "dim 4 is out of range"), ((-5,), "dim -5 is out of range"),
                                        ((3, -1), r"\(3, -1\) name the same dimension")])
def test_dims_out_of_range_for_the_input_raise_at_forward(dims, match):
    layer = Backdrop(0.5, dims=dims)
    with pytest.raises(ValueError, match=match):
        layer(torch.zeros(2, 3, 4, 4))


def test_block_that_does_not_fit_the_input_raises_at_forward():
    with pytest.raises(ValueError, match=r"one size per masked non-batch dim \(2, 3\), but got \(2, 2, 2\)"):
        Backdrop(0.5, block=(2, 2, 2))(torch.zeros(2, 3, 4, 4))


def test_mask_that_does_not_broadcast_raises():
    with pytest.raises(ValueError, match=r"\(2, 3\) does not broadcast"):
        mask_gradient(torch.zeros(4, 3), torch.ones(2, 3))


def test_extra_repr():
    assert repr(Backdrop(0.25)) == "Backdrop(p=0.25)"
    assert repr(Backdrop(0.5, dims=[0], rescale=False)) == "Backdrop(p=0.5, dims=(0,), rescale=False)"
    assert repr(Backdrop(0.5, dims=(0, -2, -1), block=(2, 4))) == "Backdrop(p=0.5, dims=(0, -2, -1), block=(2, 4))"


# --- autograd corners, dtypes, compile -------------------------------------------------------


def test_no_grad():
    layer = Backdrop(0.5, generator=seeded(16))
    x = torch.randn(2, 3, 4, 4, requires_grad=True)
    with torch.no_grad():
        y = layer(x)
        z = mask_gradient(x, torch.zeros(1))
    # Nothing is recorded and nothing drawn: the output is the input itself, as nn.Identity's.
    assert y is x and z is x and layer.last_mask is None
    assert torch.equal(layer.generator.get_state(), seeded(16).get_state())


def test_mask_gets_no_gradient():
    x = torch.randn(3, 4, requires_grad=True)
    mask = torch.rand(1, 4, requires_grad=True)
    mask_gradient(x, mask).sum().backward()
    assert mask.grad is None and torch.equal(x.grad, mask.detach().expand(3, 4))


def test_double_backward_masks_on_both_sides():
    x = torch.randn(3, 5, dtype=torch.float64, requires_grad=True)
    mask = torch.rand(3, 1, dtype=torch.float64)
    grad, = torch.autograd.grad((mask_gradient(x, mask) ** 2).sum(), x, create_graph=True)
    assert torch.equal(grad, 2 * x.detach() * mask)
    # d/dx of mask * 2y passes through the masking node again: diag(mask) H diag(mask), H = 2.
    second, = torch.autograd.grad(grad.sum(), x)
    assert torch.equal(second, (2 * mask * mask).expand(3, 5))
    # The backward is linear in the incoming gradient, with derivative mask.
    upstream = torch.randn(3, 5, dtype=torch.float64, requires_grad=True)
    grad, = torch.autograd.grad(mask_gradient(x, mask), x, upstream, create_graph=True)
    assert torch.equal(torch.autograd.grad(grad.sum(), upstream)[0], mask.expand(3, 5))
    assert torch.autograd.gradgradcheck(lambda t: mask_gradient(t, mask) * 3.0, (x,))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_uses_a_float32_mask(dtype):
    x = torch.randn(4, 2, 6, 6).to(dtype).requires_grad_()
    upstream = torch.randn(4, 2, 6, 6).to(dtype)
    layer = Backdrop(0.3, generator=seeded(17))
    layer(x).backward(upstream)
    assert layer.last_mask.dtype == torch.float32 and x.grad.dtype == dtype
    assert torch.equal(x.grad, (upstream.float() * layer.last_mask).to(dtype))


def test_float64_mask():
    x = torch.randn(4, 2, 6, 6, dtype=torch.float64, requires_grad=True)
    layer = Backdrop(0.3, generator=seeded(18))
    layer(x).sum().backward()
    assert layer.last_mask.dtype == torch.float64 and x.grad.dtype == torch.float64
    assert torch.equal(x.grad, layer.last_mask.expand_as(x))


def test_torch_compile_gradient_equals_eager():
    # aot_eager runs dynamo and AOTAutograd over the Function, which is what can break; inductor
    # also works here but its first CPU compile takes ~20 s, too slow for the suite.
    torch._dynamo.reset()
    torch.manual_seed(19)
    net = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), Backdrop(0.5), nn.Conv2d(2, 1, 3, padding=1))
    x = torch.randn(3, 1, 6, 6)
    torch.compile(net, backend="aot_eager", fullgraph=True)(x).sum().backward()
    compiled = [p.grad.clone() for p in net.parameters()]
    mask = net[1].last_mask
    kept = (mask != 0).sum(dim=(1, 2, 3), keepdim=True)
    assert mask.shape == (3, 1, 6, 6) and torch.allclose(mask.sum(dim=(1, 2, 3)), torch.full((3,), 36.0))
    assert torch.all((mask == 0) | torch.isclose(mask, 36.0 / kept))

    net.zero_grad()
    net[1].fixed_mask = mask
    net(x).sum().backward()
    # Near-zero gradients are known to one float32 step of the largest at best.
    for c, e in zip(compiled, [p.grad for p in net.parameters()]):
        torch.testing.assert_close(c, e, rtol=1e-6, atol=torch.finfo(torch.float32).eps * e.abs().max().item())

    def f(x, w, m):
        return (mask_gradient(torch.tanh(x @ w), m) ** 2).sum()

    w = torch.randn(5, 3, requires_grad=True)
    x, m = torch.randn(4, 5), torch.rand(4, 1)
    eager, = torch.autograd.grad(f(x, w, m), w)
    compiled, = torch.autograd.grad(torch.compile(f, backend="aot_eager", fullgraph=True)(x, w, m), w)
    torch.testing.assert_close(compiled, eager, rtol=1e-6, atol=torch.finfo(torch.float32).eps * eager.abs().max().item())


def test_batch_scope_is_the_reference_estimator_exactly():
    """dims over the positions alone: one mask of shape (1, 1, H, W), shared by every sample and
    channel of the batch, each position kept when its uniform draw is at least p, and the kept
    ones rescaled over the whole mask, (H W) / kept: the 2018 reference's mask, by hand."""
    x = torch.randn(3, 5, 6, 7, requires_grad=True)
    upstream = torch.randn(3, 5, 6, 7)
    layer = Backdrop(0.6, dims=(-2, -1), generator=torch.Generator().manual_seed(11))
    (layer(x) * upstream).sum().backward()
    u = torch.rand(1, 1, 6, 7, generator=torch.Generator().manual_seed(11))
    keep = (u >= 0.6).float()
    assert 0 < keep.sum() < 42  # the draw masks some positions and keeps some
    assert torch.equal(x.grad, upstream * (keep * (42 / keep.sum())))


def test_a_network_with_batch_scope_shares_each_head_mask_over_the_batch():
    from backdrop.models import MultiScaleNet

    generators = [torch.Generator().manual_seed(s) for s in range(2)]
    model = MultiScaleNet(2, 2, (1, 2), mask_prob=0.5, generators=generators, mask_scope="batch")
    model.scale_losses(model(torch.randn(4, 1, 16, 16, requires_grad=True)), torch.zeros(4, 2, dtype=torch.long)).sum().backward()
    masks = [head[0].last_mask for head in model.heads]
    assert [tuple(m.shape) for m in masks] == [(1, 1, 8, 8), (1, 1, 4, 4)]
    assert all(m.sum().item() == pytest.approx(m.numel()) for m in masks)  # rescaled over the whole mask
    assert MultiScaleNet(**model.config()).mask_scope == "batch"
    with pytest.raises(ValueError, match="mask_scope must be one of sample, batch"):
        MultiScaleNet(2, 2, (1,), mask_prob=0.5, mask_scope="channel")
