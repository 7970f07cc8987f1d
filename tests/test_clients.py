"""The layer inside other people's PyTorch code: each test plays a client program.

Every client checks the two promises of the layer: the forward pass equals ``nn.Identity``'s bit
for bit, and the gradient below the layer is the incoming gradient times the documented mask (a
mask of shape ``(N, 1, *positions)`` by default, each sample keeping at least one position, its
kept entries equal to positions / kept). Where PyTorch cannot keep the custom backward (export,
TorchScript in training mode, a reentrant checkpoint replaying torch's default random state), the
client checks that the layer refuses in one line instead of giving a wrong gradient.
"""
from __future__ import annotations

import contextlib
import copy
import io
import pickle
import re
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from backdrop import Backdrop, draw_mask, mask_gradient


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def check_mask(mask: torch.Tensor, shape: tuple[int, ...]) -> None:
    """``mask`` is a default-layout backdrop mask for an input of ``shape``: one entry per sample
    and position, shared by the channels, each sample keeping one position or more, its kept
    entries positions / kept."""
    assert tuple(mask.shape) == (shape[0], 1, *shape[2:])
    rows = mask.reshape(shape[0], -1)
    for row in rows:
        kept = int((row != 0).sum())
        assert kept >= 1
        torch.testing.assert_close(row[row != 0], torch.full((kept,), row.numel() / kept, dtype=row.dtype),
                                   rtol=4 * torch.finfo(row.dtype).eps, atol=0)


class Block(nn.Module):
    """A torchvision-style BasicBlock with the layer before the residual add (``out += identity``)."""

    def __init__(self, channels: int, layer: nn.Module):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.mask = layer

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.mask(self.bn2(self.conv2(out)))
        out += x
        return self.relu(out)


def sequential(layer: nn.Module, channels: int = 4) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, channels, 3, padding=1), layer, nn.ReLU(inplace=True),
                         nn.Conv2d(channels, 1, 3, padding=1))


def residual(layer: nn.Module) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), Block(4, layer), nn.Conv2d(4, 1, 1))


def with_identity(net: nn.Module) -> nn.Module:
    """A copy of ``net`` with every backdrop layer replaced by ``nn.Identity``."""
    twin = copy.deepcopy(net)
    for name, module in list(twin.named_modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, Backdrop):
                setattr(module, child_name, nn.Identity())
    return twin


def backdrop_of(net: nn.Module) -> Backdrop:
    return next(m for m in net.modules() if isinstance(m, Backdrop))


def gradients(net: nn.Module, x: torch.Tensor, upstream: torch.Tensor, run=None) -> list[torch.Tensor]:
    """Parameter gradients of ``(run or net)(x)`` against ``upstream``, the output also returned."""
    net.zero_grad(set_to_none=True)
    out = (run or net)(x)
    out.backward(upstream)
    return out.detach(), [p.grad.clone() for p in net.parameters()]


def same_as_fixed_mask(net: nn.Module, x: torch.Tensor, upstream: torch.Tensor, grads, mask, exact=True):
    """``grads`` equal the gradients of ``net`` with its backdrop layer told to use ``mask``."""
    layer = backdrop_of(net)
    layer.fixed_mask = mask
    try:
        _, expected = gradients(net, x, upstream)
    finally:
        layer.fixed_mask = None
    for got, want in zip(grads, expected):
        if exact:
            assert torch.equal(got, want)
        else:
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6 * want.abs().max().item())


def identity_forward(net: nn.Module, x: torch.Tensor, out: torch.Tensor) -> None:
    """``out`` is what ``net`` with ``nn.Identity`` in the layer's place computes, bit for bit."""
    assert torch.equal(out, with_identity(net)(x).detach())


# --- in-place operations, residual adds, dtypes and memory formats -------------------------


@pytest.mark.parametrize("build", [sequential, residual], ids=["relu-inplace", "residual-add"])
def test_in_place_operations_after_the_layer(build):
    net = build(Backdrop(0.5, generator=seeded(1)))
    x, upstream = torch.randn(3, 1, 8, 8), torch.randn(3, 1, 8, 8)
    out, grads = gradients(net, x, upstream)
    identity_forward(net, x, out)
    mask = backdrop_of(net).last_mask
    check_mask(mask, (3, 4, 8, 8))
    same_as_fixed_mask(net, x, upstream, grads, mask)


def test_gradient_below_the_layer_is_incoming_times_mask_in_a_residual_block():
    layer = Backdrop(0.5, generator=seeded(2))
    block = Block(4, layer)
    x = torch.randn(2, 4, 6, 6, requires_grad=True)
    seen = {}
    # Tensor hooks, registered before ``out += x`` modifies the layer's output in place, see the
    # gradients of the values before it (module backward hooks would forbid the in-place add).
    def keep(name):
        def hook(module, args, out):
            out.register_hook(lambda g: seen.update({name: g}))
        return hook

    block.bn2.register_forward_hook(keep("below"))
    layer.register_forward_hook(keep("above"))
    block(x).sum().backward()
    check_mask(layer.last_mask, (2, 4, 6, 6))
    assert torch.equal(seen["below"], seen["above"] * layer.last_mask)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("channels_last", [False, True])
def test_dtypes_and_channels_last(dtype, channels_last):
    net = sequential(Backdrop(0.5, generator=seeded(3))).to(dtype)
    x, upstream = torch.randn(3, 1, 8, 8, dtype=dtype), torch.randn(3, 1, 8, 8, dtype=dtype)
    if channels_last:
        net, x = net.to(memory_format=torch.channels_last), x.to(memory_format=torch.channels_last)
    out, grads = gradients(net, x, upstream)
    identity_forward(net, x, out)
    mask = backdrop_of(net).last_mask
    assert mask.dtype == dtype
    check_mask(mask, (3, 4, 8, 8))
    same_as_fixed_mask(net, x, upstream, grads, mask)


def test_the_output_keeps_the_memory_format():
    x = torch.randn(2, 3, 4, 5).to(memory_format=torch.channels_last).requires_grad_()
    y = Backdrop(0.5)(x)
    assert y.stride() == x.stride() and torch.equal(y, x)


def test_bfloat16_autocast():
    net = sequential(Backdrop(0.5, generator=seeded(4)))
    x, upstream = torch.randn(3, 1, 8, 8), torch.randn(3, 1, 8, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = net(x)
        plain = with_identity(net)(x)
    assert out.dtype == torch.bfloat16 and torch.equal(out, plain)
    net.zero_grad()
    out.float().backward(upstream)
    grads = [p.grad.clone() for p in net.parameters()]
    mask = backdrop_of(net).last_mask
    assert mask.dtype == torch.float32  # the input of the layer is bfloat16: the mask stays float32
    check_mask(mask, (3, 4, 8, 8))
    layer = backdrop_of(net)
    layer.fixed_mask = mask
    net.zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        again = net(x)
    again.float().backward(upstream)
    layer.fixed_mask = None
    for got, want in zip(grads, [p.grad for p in net.parameters()]):
        assert torch.equal(got, want)


# --- torch.compile ---------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("dynamic", [None, True], ids=["default", "dynamic"])
def test_torch_compile_with_a_smaller_last_batch(dynamic):
    # aot_eager runs Dynamo and AOTAutograd over the layer, which is what can break; inductor's
    # first CPU compile takes tens of seconds, too slow for the suite.
    torch._dynamo.reset()
    net = sequential(Backdrop(0.5, generator=seeded(5)))
    compiled = torch.compile(net, backend="aot_eager", dynamic=dynamic)
    for n in (4, 4, 3, 1):  # a loop without drop_last ends on a smaller batch
        x, upstream = torch.randn(n, 1, 6, 6), torch.randn(n, 1, 6, 6)
        out, grads = gradients(net, x, upstream, run=compiled)
        identity_forward(net, x, out)
        mask = backdrop_of(net).last_mask
        check_mask(mask, (n, 4, 6, 6))
        same_as_fixed_mask(net, x, upstream, grads, mask, exact=False)


def test_torch_compile_draws_the_eager_masks_of_a_seeded_generator():
    # Dynamo cannot put a torch.Generator into a graph: the draw runs eagerly between two graphs
    # (a graph break), so fullgraph=True needs generator=None.
    torch._dynamo.reset()
    eager = Backdrop(0.5, generator=seeded(6))
    compiled_layer = Backdrop(0.5, generator=seeded(6))
    compiled = torch.compile(compiled_layer, backend="aot_eager")
    for _ in range(3):
        x = torch.randn(2, 3, 5, 5, requires_grad=True)
        eager(x).sum().backward()
        compiled(x).sum().backward()
        assert torch.equal(eager.last_mask, compiled_layer.last_mask)


# --- torch.func --------------------------------------------------------------------------------


def test_vmap_per_sample_gradients():
    """Per-sample gradients with torch.func: each sample's gradient below the layer is the
    incoming gradient times a mask of the documented law, drawn per sample."""
    layer = Backdrop(0.5)
    # Powers of two, so that dividing the gradient by them gives the mask exactly.
    weight = torch.exp2(torch.randint(-3, 4, (1, 3, 6, 6)).float())

    def loss(x):
        return (layer(x.unsqueeze(0)) * weight).sum()

    x = torch.randn(5, 3, 6, 6)
    torch.manual_seed(7)
    grads = torch.func.vmap(torch.func.grad(loss), randomness="different")(x)
    masks = grads / weight
    assert torch.equal(masks[:, :1].expand_as(masks), masks)  # shared by the channels
    check_mask(masks[:, :1], (5, 3, 6, 6))
    assert not all(torch.equal(masks[0], m) for m in masks[1:])  # "different": a mask per sample
    with pytest.raises(RuntimeError, match="randomness"):
        torch.func.vmap(torch.func.grad(loss))(x)  # torch's own message: choose a randomness


def test_vmap_with_a_fixed_mask_equals_a_loop():
    torch.manual_seed(8)
    net = sequential(Backdrop(0.5))
    mask = draw_mask(torch.empty(1, 4, 6, 6), 0.5, generator=seeded(8))
    backdrop_of(net).fixed_mask = mask
    params = {k: v.detach() for k, v in net.named_parameters()}
    x, target = torch.randn(4, 1, 6, 6), torch.randn(4, 1, 6, 6)

    def loss(params, x, t):
        return ((torch.func.functional_call(net, params, (x.unsqueeze(0),)) - t) ** 2).sum()

    batched = torch.func.vmap(torch.func.grad(loss), in_dims=(None, 0, 0))(params, x, target)
    for i in range(4):
        one = torch.func.grad(loss)(params, x[i], target[i])
        for name in params:
            torch.testing.assert_close(batched[name][i], one[name], rtol=1e-5, atol=1e-6 * one[name].abs().max().item())
        net.zero_grad()
        loss(dict(net.named_parameters()), x[i], target[i]).backward()
        for name, p in net.named_parameters():
            torch.testing.assert_close(one[name], p.grad, rtol=1e-5, atol=1e-6 * p.grad.abs().max().item())


def test_func_grad_with_functional_call():
    layer = Backdrop(0.5, generator=seeded(9))
    x, upstream = torch.randn(3, 2, 4, 4), torch.exp2(torch.randint(-3, 4, (3, 2, 4, 4)).float())
    g = torch.func.grad(lambda t: (layer(t) * upstream).sum())(x)
    mask = g / upstream
    check_mask(mask[:, :1], (3, 2, 4, 4))
    assert torch.equal(mask, draw_mask(x, 0.5, generator=seeded(9)).expand_as(x))


# --- activation checkpointing ---------------------------------------------------------------


def two_steps(net: nn.Module, generator: torch.Generator | None, run) -> list[torch.Tensor]:
    """Parameter gradients of two steps, torch's generator and ``generator`` seeded before the first."""
    torch.manual_seed(10)
    if generator is not None:
        generator.manual_seed(10)
    data = torch.Generator().manual_seed(11)
    grads = []
    for _ in range(2):
        x = torch.randn(3, 1, 8, 8, generator=data)
        net.zero_grad()
        run(x).sum().backward()
        grads += [p.grad.clone() for p in net.parameters()]
    return grads


def checkpointed_net(generator):
    """Two backdrop layers sharing a generator, and a dropout that draws from torch's stream."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.Dropout(0.2), Backdrop(0.5, generator=generator),
                         nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1), Backdrop(0.5, generator=generator),
                         nn.Conv2d(4, 1, 3, padding=1))


@pytest.mark.parametrize("explicit", [True, False], ids=["explicit-generator", "default-generator"])
@pytest.mark.parametrize("use_reentrant", [False, True], ids=["non-reentrant", "reentrant"])
def test_activation_checkpointing_gives_the_gradient_without_it(use_reentrant, explicit):
    generator = seeded(0) if explicit else None
    net = checkpointed_net(generator)
    plain = two_steps(net, generator, net)

    def run(x):
        h = checkpoint(net[:4], x.requires_grad_(use_reentrant), use_reentrant=use_reentrant)
        return checkpoint(net[4:], h, use_reentrant=use_reentrant)

    if use_reentrant and not explicit:
        with pytest.raises(RuntimeError, match="use_reentrant=False"):
            two_steps(net, generator, run)
        return
    for got, want in zip(two_steps(net, generator, run), plain):
        assert torch.equal(got, want)


# --- export, ONNX, TorchScript ---------------------------------------------------------------


def test_torch_export_refuses_training_mode_and_exports_eval_mode():
    net = sequential(Backdrop(0.5))
    x = torch.randn(2, 1, 6, 6)
    with pytest.raises(RuntimeError, match=r"export the model in eval mode"):
        torch.export.export(net, (x,))
    exported = torch.export.export(net.eval(), (x,)).module()
    assert torch.equal(exported(x), with_identity(net)(x))


@pytest.mark.slow
def test_onnx_export_refuses_training_mode_and_exports_eval_mode(tmp_path):
    net = sequential(Backdrop(0.5))
    x = torch.randn(2, 1, 6, 6)
    with pytest.raises(Exception, match=r"export the model in eval mode"):
        torch.onnx.export(net, (x,), tmp_path / "train.onnx")
    program = torch.onnx.export(net.eval(), (x,), tmp_path / "eval.onnx")
    assert (tmp_path / "eval.onnx").stat().st_size > 0
    assert not any(node.op_type == "RandomUniform" for node in program.model_proto.graph.node)


def test_jit_script_runs_eval_mode_and_refuses_training_mode():
    net = sequential(Backdrop(0.5))
    x = torch.randn(2, 1, 6, 6)
    scripted = torch.jit.script(net)
    with pytest.raises(torch.jit.Error, match="TorchScript cannot run the layer's custom backward"):
        scripted(x)
    scripted.eval()
    assert torch.equal(scripted(x), with_identity(net).eval()(x))
    buffer = io.BytesIO()
    torch.jit.save(scripted, buffer)
    buffer.seek(0)
    assert torch.equal(torch.jit.load(buffer)(x), with_identity(net).eval()(x))


def test_jit_trace_draws_a_new_mask_at_each_call():
    generator = seeded(12)
    net = sequential(Backdrop(0.5, generator=generator))
    x, upstream = torch.randn(3, 1, 6, 6), torch.randn(3, 1, 6, 6)
    traced = torch.jit.trace(net, x, check_trace=False)
    masks = []
    for seed in (13, 14):
        generator.manual_seed(seed)
        out, grads = gradients(net, x, upstream, run=traced)
        identity_forward(net, x, out)
        # The traced graph draws from the layer's generator, as the eager layer does.
        mask = draw_mask(torch.empty(3, 4, 6, 6), 0.5, generator=seeded(seed))
        same_as_fixed_mask(net, x, upstream, grads, mask, exact=False)
        masks.append(mask)
    assert not torch.equal(*masks)


# --- copies, pickles, state dicts -----------------------------------------------------------


@pytest.mark.parametrize("copier", [copy.deepcopy, lambda m: pickle.loads(pickle.dumps(m))], ids=["deepcopy", "pickle"])
def test_a_copy_draws_what_the_original_draws(copier):
    net = sequential(Backdrop(0.5, generator=seeded(15), dims=(0, 2, 3), block=2))
    twin = copier(net)
    assert repr(twin) == repr(net)
    x = torch.randn(2, 1, 8, 8)
    for model in (net, twin):
        model(x).sum().backward()
    assert torch.equal(backdrop_of(net).last_mask, backdrop_of(twin).last_mask)
    for a, b in zip(net.parameters(), twin.parameters()):
        assert torch.equal(a.grad, b.grad)


def test_state_dict_round_trip_holds_no_layer_state():
    net = sequential(Backdrop(0.5))
    assert not any("1." in key for key in net.state_dict())  # the layer has no parameters or buffers
    other = sequential(Backdrop(0.25))
    other.load_state_dict(net.state_dict())
    x = torch.randn(2, 1, 6, 6)
    assert torch.equal(other.eval()(x), net.eval()(x))


# --- higher-order gradients, no_grad, repeated backward ---------------------------------------


def test_double_backward_through_a_model():
    layer = Backdrop(0.5, generator=seeded(16))
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    y = layer(x)
    grad, = torch.autograd.grad((y ** 3).sum(), x, create_graph=True)
    mask = layer.last_mask
    assert torch.equal(grad, 3 * x.detach() ** 2 * mask)
    second, = torch.autograd.grad(grad.sum(), x)
    # d/dx sum(mask * 3 y^2) passes back through the layer: mask * 6 y * mask.
    assert torch.allclose(second, 6 * x.detach() * mask * mask, rtol=1e-12, atol=0)


def test_no_grad_validation_in_training_mode_leaves_the_stream_alone():
    generator = seeded(17)
    net = sequential(Backdrop(0.5, generator=generator))
    x = torch.randn(2, 1, 6, 6)
    before = generator.get_state()
    with torch.no_grad():
        out = net(x)
    identity_forward(net, x, out)
    assert torch.equal(generator.get_state(), before) and backdrop_of(net).last_mask is None


def test_two_backward_passes_through_one_graph_share_the_mask():
    layer = Backdrop(0.5, generator=seeded(18))
    x = torch.randn(3, 2, 5, 5, requires_grad=True)
    y = layer(x)
    first, = torch.autograd.grad(y.sum(), x, retain_graph=True)
    mask = layer.last_mask
    second, = torch.autograd.grad((2 * y).sum(), x)
    assert torch.equal(first, mask.expand_as(x)) and torch.equal(second, 2 * first)
    assert layer.last_mask is mask


# --- the layout rule ---------------------------------------------------------------------


@pytest.mark.parametrize("shape,mask_shape", [((6, 3), (6, 1)), ((6, 3, 10), (6, 1, 10)),
                                              ((6, 3, 5, 4), (6, 1, 5, 4)), ((6, 3, 2, 5, 4), (6, 1, 2, 5, 4)),
                                              ((6,), (6,))],
                         ids=["N-C", "N-C-L", "N-C-H-W", "N-C-D-H-W", "N"])
def test_default_layout_for_every_shape(shape, mask_shape):
    layer = Backdrop(0.5, generator=seeded(19))
    x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    upstream = torch.randn(shape, dtype=torch.float64)
    layer(x).backward(upstream)
    mask = layer.last_mask
    assert tuple(mask.shape) == mask_shape and torch.equal(x.grad, upstream * mask)
    if len(shape) > 2:  # positions: each sample is a group of its own
        check_mask(mask, shape)
    else:  # no positions: whole samples are masked and the batch is the group
        kept = int((mask != 0).sum())
        assert kept >= 1 and torch.equal(mask[mask != 0], torch.full((kept,), shape[0] / kept, dtype=mask.dtype))


# --- the example in docs/backdrop.md ------------------------------------------------------------


def test_the_documented_residual_network_trains_in_a_plain_loop():
    page = (Path(__file__).resolve().parent.parent / "docs" / "backdrop.md").read_text()
    section = page[page.index("## Using the layer in your own model"):]
    code = re.search(r"```python\n(.*?)```", section, flags=re.S).group(1)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, "docs/backdrop.md", "exec"), {"__name__": "docs_example"})
    loss, shape = re.fullmatch(r"loss (\S+), mask of the last step (.*)\n", printed.getvalue()).groups()
    assert float(loss) < 2.0 and shape == "(8, 1, 16, 16)"
