"""Arguments checked like torch.nn.Dropout's: every public constructor and function of the data
side (DatasetSpec, the Datasets, split), the trainer's settings (TrainConfig) and the backdrop
layer (Backdrop, backdrop, draw_mask, mask_gradient) answers a wrong type with one TypeError and
a wrong value with one ValueError (IndexError for an index beyond the samples, as a list has it),
whose one-line message names the argument and shows the value.

CASES is the table: ``pytest.param(callable, kwargs, error, pattern, id=...)``, ``pattern`` a
regex the message must match. Rows for any other callable are added to it the same way; FILE in
``kwargs`` stands for a small msgp file (tests/tiny.py, written once).
"""
from __future__ import annotations

import inspect
import json
import math
import re

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import cli
from backdrop import Backdrop, backdrop, draw_mask, mask_gradient
from backdrop.training import ConfigError, TrainConfig
from msgp import GeneratedDataset, MSGPDataset, MSGPError, split
from msgp.spec import DatasetSpec, SpecError
from tiny import tiny_spec


class _File:
    def __repr__(self) -> str:
        return "FILE"


FILE = _File()
SPEC = {"n": 8, "length_scales": [[1.5, 4.0], [6.0, 16.0]], "amplitudes": [1.0, 1.0], "size": 32}
TINY = tiny_spec()  # 320 samples, 4 classes


def bad(call, error, base=None, shown=None, pattern=None, **argument):
    """The row of ``call(**base, name=value)``: ``error``, whose message names ``name`` and shows
    ``repr(value)``, or ``shown`` (a regex) where it shows one bad entry of the value; ``pattern``
    replaces both where the message names the entry in words ("length scale 0.5 px at scale 0")."""
    (name, value), = argument.items()
    if pattern is None:
        pattern = re.escape(name) + ".*" + (shown if shown is not None else re.escape(repr(value)))
    label = getattr(call, "__qualname__", repr(call))
    return pytest.param(call, {**(base or {}), name: value}, error, pattern, id=f"{label}-{name}={value!r}")


def spec_rows():
    T, V = TypeError, ValueError
    rows = [bad(DatasetSpec, T, SPEC, n=v) for v in ("10", None, 10.0, True, [8])]
    rows += [bad(DatasetSpec, V, SPEC, n=v) for v in (0, -1)]
    rows += [bad(DatasetSpec, T, SPEC, length_scales=v) for v in ("1.5,4", None, [[1.5, "4"]], [1.5, 4.0], [[True, 4.0]])]
    rows += [bad(DatasetSpec, V, SPEC, length_scales=v) for v in ([[1.5, 4.0], [6.0]], [], [[]])]
    rows += [bad(DatasetSpec, V, SPEC, length_scales=[[0.5, 4.0], [6.0, 16.0]], pattern=r"length scale 0\.5 px"),
             bad(DatasetSpec, V, SPEC, length_scales=[[-1.0, 4.0], [6.0, 16.0]], pattern="length scales .* has -1"),
             bad(DatasetSpec, V, SPEC, length_scales=[[4.0, 1.5], [6.0, 16.0]], pattern="length scales .* got 4,1.5"),
             bad(DatasetSpec, V, SPEC, length_scales=[[1.5, 4.0], [24.0, 30.0]], pattern="length scale 24 px"),
             bad(DatasetSpec, V, SPEC, length_scales=[[1.5, 8.0], [6.0, 16.0]], pattern=r"scale 0 \(1\.5,8\)"),
             bad(DatasetSpec, V, SPEC, length_scales=[[1.5], [6.0]], pattern="2 candidate length scales.* has 1"),
             bad(DatasetSpec, V, SPEC, length_scales=[[1.5, 2.0]] * 6, pattern="number of scales .* got 6")]
    rows += [bad(DatasetSpec, T, SPEC, amplitudes=v) for v in ("1,1", None, [1.0, "x"], 1.0)]
    rows += [bad(DatasetSpec, V, SPEC, amplitudes=[1.0], pattern="got 1 amplitudes for 2 scales"),
             bad(DatasetSpec, V, SPEC, amplitudes=[1.0, -1.0], shown="-1"),
             bad(DatasetSpec, V, SPEC, amplitudes=[1.0, math.inf], shown="inf")]
    rows += [bad(DatasetSpec, T, SPEC, size=v) for v in ("32", 32.0, None)]
    rows += [bad(DatasetSpec, V, SPEC, size=v) for v in (3, -8)]
    rows += [bad(DatasetSpec, T, SPEC, ndim=v) for v in (2.0, "2", None)]
    rows += [bad(DatasetSpec, V, SPEC, ndim=v) for v in (0, 4)]
    rows += [bad(DatasetSpec, T, SPEC, kernel=v) for v in (1, ["se"], None)]
    rows += [bad(DatasetSpec, V, SPEC, kernel=v) for v in ("rbf", "SE", "")]
    rows += [bad(DatasetSpec, T, SPEC, noise=v) for v in ("0", None, [0.1])]
    rows += [bad(DatasetSpec, V, SPEC, noise=v) for v in (-0.1, math.nan, math.inf)]
    rows += [bad(DatasetSpec, T, SPEC, normalize=v) for v in (None, 1)]
    rows += [bad(DatasetSpec, V, SPEC, normalize=v) for v in ("both", "THEORY")]
    rows += [bad(DatasetSpec, T, SPEC, seed=v) for v in (1.5, "0", True, None)]
    rows += [bad(DatasetSpec, V, SPEC, seed=-1)]
    rows += [bad(DatasetSpec, T, SPEC, dtype=v) for v in (np.float32, None)]
    rows += [bad(DatasetSpec, V, SPEC, dtype=v) for v in ("float64", "int8")]
    rows += [bad(DatasetSpec, T, SPEC, compression=v) for v in (1, True)]
    rows += [bad(DatasetSpec, V, SPEC, compression=v) for v in ("zip", "none")]
    rows += [bad(DatasetSpec, T, SPEC, save_components=v) for v in (1, "yes", None)]
    rows += [bad(DatasetSpec.default, T, n_scales=v) for v in (2.0, "3", None, True)]
    rows += [bad(DatasetSpec.default, V, n_scales=v) for v in (0, 6)]
    rows += [bad(DatasetSpec.default, T, size=v) for v in ("128", 128.0)]
    rows += [bad(DatasetSpec.default, V, size=3)]
    return rows


def dataset_rows():
    T, V, I = TypeError, ValueError, IndexError
    rows = [bad(MSGPDataset, T, path=v) for v in (None, 5, ["tiny.h5"])]
    for call, base in ((MSGPDataset, {"path": FILE}), (GeneratedDataset, {"spec": TINY})):
        rows += [bad(call, T, base, target=v) for v in (None, ["class"], 0)]
        rows += [bad(call, V, base, target=v) for v in ("label", "Class")]
        rows += [bad(call, T, base, transform=v) for v in ("flip", 1)]
        rows += [bad(call, T, base, target_transform=v) for v in ("one_hot", 1, ["int"])]
        rows += [bad(call, T, base, indices=v) for v in ("0:3", [0.5], 3, [True, False])]
        rows += [bad(call, V, base, indices=[[0, 1]], shown=r"shape \(1, 2\)")]
        rows += [bad(call, I, base, indices=[0, 320], shown="320"), bad(call, I, base, indices=[-1], shown="-1")]
    rows += [bad(GeneratedDataset, T, spec=v) for v in (None, "tiny.json", {"n": 8})]
    base = {"source": FILE, "n_train": 8, "n_test": 8}
    rows += [bad(split, T, base, source=v) for v in (None, 5, [FILE])]
    for name in ("n_train", "n_test"):
        rows += [bad(split, T, base, **{name: v}) for v in ("8", 8.0, None, True)]
        rows += [bad(split, V, base, **{name: v}) for v in (-4, 6, 400)]
    rows += [bad(split, T, base, seed=v) for v in ("0", 0.5, None)]
    rows += [bad(split, V, base, seed=-1)]
    rows += [bad(split, T, base, colour="red", pattern="options .* got 'colour'"), bad(split, V, base, target="label"),
             bad(split, T, base, transform="flip"), bad(split, T, base, target_transform=3)]
    return rows


def config_rows():
    T, V = TypeError, ValueError
    rows = [bad(TrainConfig, T, data=v) for v in (None, 5, ["a.h5"])]
    rows += [bad(TrainConfig, V, data={"n": 8}, shown="description"),
             bad(TrainConfig, T, data={**SPEC, "n": "8"}, shown="description.*'8'"),
             bad(TrainConfig, T, test_data=5)]
    for name in ("backdrop", "augment", "whiten"):
        rows += [bad(TrainConfig, T, **{name: v}) for v in ("yes", 1, None)]
    rows += [bad(TrainConfig, T, mask_prob=v) for v in ("0.5", None, [0.5, "x"], True)]
    rows += [bad(TrainConfig, V, mask_prob=v) for v in (1.5, -0.1, math.nan, ())]
    rows += [bad(TrainConfig, V, mask_prob=(0.5, 1.0), shown="1.0")]
    rows += [bad(TrainConfig, T, mask_block=v) for v in (2.0, "2", None, [1, 2.5])]
    rows += [bad(TrainConfig, V, mask_block=v) for v in (0, -1, ())]
    rows += [bad(TrainConfig, V, mask_block=[1, 0], shown="0")]
    for name, good in (("mask_scope", "sample"), ("topology", "heads"), ("device", "cpu"), ("precision", "fp32")):
        rows += [bad(TrainConfig, T, **{name: v}) for v in (None, 1, [good])]
        rows += [bad(TrainConfig, V, **{name: v}) for v in ("", good.upper(), "other")]
    rows += [bad(TrainConfig, T, crop=v) for v in (2.5, "8", True)]
    rows += [bad(TrainConfig, V, crop=v) for v in (1, 0)]
    for name in ("n_train", "n_test", "epochs", "width", "eval_batch_size"):
        rows += [bad(TrainConfig, T, **{name: v}) for v in ("64", 64.0, True)]
        rows += [bad(TrainConfig, V, **{name: v}) for v in (0, -1)]
    rows += [bad(TrainConfig, T, batch_size=v) for v in ("16", 16.0, True, None)]
    rows += [bad(TrainConfig, V, batch_size=v) for v in (1, 0)]
    rows += [bad(TrainConfig, V, {"n_train": 8}, batch_size=16)]
    for name, wrong in (("lr", (0, -1.0, math.inf, math.nan)), ("warmup", (1.0, -0.1, math.nan)),
                        ("weight_decay", (-1.0, math.inf)), ("clip_grad", (0, -1.0, math.nan)),
                        ("rf_factor", (0, -2.0, math.inf))):
        rows += [bad(TrainConfig, T, **{name: v}) for v in ("1", [0.1], True)]
        rows += [bad(TrainConfig, V, **{name: v}) for v in wrong]
    rows += [bad(TrainConfig, T, lr=None)]
    rows += [bad(TrainConfig, T, eval_every=v) for v in (1.5, "1", True, None)]
    rows += [bad(TrainConfig, V, eval_every=-1)]
    rows += [bad(TrainConfig, T, log_every=v) for v in (1.5, "10", True, None)]
    rows += [bad(TrainConfig, V, log_every=-1)]
    rows += [bad(TrainConfig, T, seed=v) for v in (1.5, "0", True, None)]
    rows += [bad(TrainConfig, V, seed=-1)]
    rows += [bad(TrainConfig, T, head_stages=v) for v in ("12", [1.5, 2], 3, [True, 2])]
    rows += [bad(TrainConfig, V, head_stages=())]
    rows += [bad(TrainConfig, T, network=v) for v in ("file.py:net", ["file.py:net"])]
    rows += [bad(TrainConfig, V, network={"source": "file.py:net"})]
    return rows


def layer_rows():
    T, V = TypeError, ValueError
    x = torch.zeros(2, 3, 4, 4)
    rows = []
    for call, base in ((Backdrop, {}), (backdrop, {"x": x}), (draw_mask, {"x": x})):
        rows += [bad(call, T, base, p=v) for v in ("0.5", None, True, [0.5])]
        rows += [bad(call, V, base, p=v) for v in (1.5, 1.0, -0.1, float("nan"))]
        base = {"p": 0.5, **base}
        rows += [bad(call, T, base, dims=v) for v in (1, "0,2", (1.5,), (0, True))]
        rows += [bad(call, V, base, dims=v) for v in ((), (1, 1))]
        rows += [bad(call, T, base, rescale=v) for v in ("yes", 1, None)]
        rows += [bad(call, T, base, generator=v) for v in (0, "seed")]
        rows += [bad(call, T, base, block=v) for v in (1.5, "2")]
        rows += [bad(call, T, base, block=[2, 1.5], shown=r"1\.5"), bad(call, V, base, block=0)]
        rows += [bad(call, V, {**base, "dims": (0, -2, -1)}, block=(2, 2, 2))]
    rows += [bad(backdrop, T, {"x": x, "p": 0.5}, training=v) for v in ("yes", None)]
    rows += [bad(call, T, {"p": 0.5}, x=v) for call in (backdrop, draw_mask) for v in (None, [[1.0]])]
    rows += [bad(mask_gradient, T, {"mask": torch.ones(1)}, x=v) for v in (None, [1.0])]
    rows += [bad(mask_gradient, T, {"x": x}, mask=v) for v in (None, [1.0])]
    rows += [bad(mask_gradient, V, {"x": x}, mask=torch.ones(3, 3), shown=r"\(3, 3\)")]
    return rows


CASES = spec_rows() + dataset_rows() + config_rows() + layer_rows()


@pytest.mark.parametrize("call, kwargs, error, pattern", CASES)
def test_a_bad_argument_is_one_error_that_names_it(data, call, kwargs, error, pattern):
    kwargs = {name: data if value is FILE else value for name, value in kwargs.items()}
    with pytest.raises(error) as caught:
        call(**kwargs)
    message = str(caught.value)
    assert re.search(pattern, message), message
    assert "\n" not in message
    assert isinstance(caught.value, MSGPError), repr(caught.value)  # the one family a caller catches
    if error is ValueError:  # a value of the right type: not a TypeError as well
        assert not isinstance(caught.value, TypeError), repr(caught.value)


def test_the_table_covers_every_argument():
    """Every parameter of the data side's callables, of TrainConfig and of the layer has a wrong-type row, so
    that a parameter added without rows fails here."""
    rows = {(p.values[0], p.id.split("-", 1)[1].split("=", 1)[0]) for p in CASES if p.values[2] is TypeError}
    for call in (DatasetSpec, DatasetSpec.default, MSGPDataset, GeneratedDataset, split, TrainConfig,
                 Backdrop, backdrop, draw_mask, mask_gradient):
        for name, parameter in inspect.signature(call).parameters.items():
            if parameter.kind is not parameter.VAR_KEYWORD:
                assert (call, name) in rows, f"no wrong-type row for {call.__qualname__}({name}=...)"


def test_a_wrong_type_is_also_the_error_the_command_line_catches(tmp_path, monkeypatch):
    """SpecTypeError and ConfigTypeError are TypeErrors and also SpecError and ConfigError, so a
    preset with ``"n": "ten"`` is one `Error:` line of the CLI, not a traceback."""
    with pytest.raises(SpecError):
        DatasetSpec(**{**SPEC, "n": "ten"})
    with pytest.raises(ConfigError):
        TrainConfig(lr="fast")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "spec.json").write_text(json.dumps({**SPEC, "n": "ten"}))
    for args in (["generate", "--preset", "spec.json", "-o", "d.h5"], ["train", "spec.json", "--out", "run"]):
        result = CliRunner().invoke(cli.main, args)
        assert result.exit_code == 2, result.output
        assert result.output.strip().splitlines() == ["Error: preset spec.json: n must be a positive integer, "
                                                      "but got 'ten'"]
