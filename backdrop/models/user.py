"""Networks from a user's own file: loading a marked function by name, checking that its file has
not changed, and the module the trainer trains in place of :class:`~backdrop.models.MultiScaleNet`.

A method is a function named ``path/to/file.py:function`` or ``module:function`` and marked by
one of the decorators of :mod:`backdrop.experiment.methods` (``@network`` or ``@fitted``), which
set the attribute ``msgp_method`` on it: ``{"kind": "network" | "fitted", "settings": {...}}``.
A training run records a network method as ``{"source": ..., "sha256": ...}`` (its
:class:`~backdrop.training.TrainConfig` ``network`` field), the file's absolute path and the
SHA-256 of its content, so that a checkpoint is rebuilt from the same file (:func:`build_network`)
and a file that changed since is refused rather than resumed.
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from msgp.errors import MSGPError
from msgp.spec import DatasetSpec, choices_of

from .multiscale import MultiScaleNet
from .parts import BatchStandardize

# The attribute the decorators set on a method's function.
MARKER = "msgp_method"
# The kinds of method: a network the trainer trains, or a fitted method with fit and predict.
KINDS = ("network", "fitted")


class MethodError(MSGPError, ValueError):
    """A method file or function that cannot be used; the message is one line naming what is wrong."""


@dataclass(frozen=True)
class Method:
    """A loaded method: ``name`` (the function's), ``kind``, the function, its ``source``
    (``/abs/path/file.py:function`` or ``module:function``) and the file's ``sha256``."""

    name: str
    kind: str
    function: Callable = field(compare=False, repr=False)
    source: str
    sha256: str
    settings: dict[str, Any] = field(default_factory=dict, compare=False)

    def __reduce__(self):
        # Spawned worker processes cannot import a function from a file by reference: they load
        # the file again, and a file changed in between is refused.
        return _reload, (self.source, self.sha256)

    def record(self) -> dict[str, str]:
        """What a run stores to recognise this method: its source and the file's content hash."""
        return {"source": self.source, "sha256": self.sha256}


def import_method(text: str) -> Method:
    """The method ``text`` names, ``path/to/file.py:function`` or ``module:function``, imported.

    Raises
    ------
    MethodError : a name of another form, no such file or module, a file that does not import
        (its syntax error or exception in one line), no such function, not callable, or not
        marked as a method.
    """
    where, sep, name = str(text).rpartition(":")
    if not sep or not where or not name.isidentifier():
        raise MethodError(f"{text!r} names no method: it must be path/to/file.py:function or module:function")
    if where.endswith(".py") or "/" in where or Path(where).exists():
        path = Path(where).expanduser().resolve()
        if not path.is_file():
            raise MethodError(f"method file {where} does not exist")
        module = _import_file(path)
        source = f"{path}:{name}"
    else:
        module, path = _import_module(where, text)
        source = f"{where}:{name}"
    if not hasattr(module, name):
        raise MethodError(f"{where} has no function {name!r}")
    function = getattr(module, name)
    if not callable(function):
        raise MethodError(f"{where}:{name} is not callable (it is a {type(function).__name__})")
    marker = getattr(function, MARKER, None)
    if not isinstance(marker, dict) or marker.get("kind") not in KINDS:
        raise MethodError(f"{where}:{name} is not marked as a method; decorate it with @network or @fitted "
                          "from backdrop.experiment.methods")
    return Method(name, marker["kind"], function, source, file_hash(path), dict(marker.get("settings") or {}))


def file_hash(path: str | Path) -> str:
    """The SHA-256 of the file's content, in hex."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def check_unchanged(method: Method, recorded: str, since: str = "the experiment started") -> None:
    """Refuse ``method`` when its file's hash is no longer ``recorded``, the hash ``since`` saw."""
    if method.sha256 != recorded:
        raise MethodError(f"{method.source.rpartition(':')[0]} changed since {since} (content hash "
                          f"{recorded[:12]}, now {method.sha256[:12]}); restore it or choose another `out`")


def _import_file(path: Path):
    module_name = f"msgp_method_{hashlib.sha256(str(path).encode()).hexdigest()[:12]}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None:
        raise MethodError(f"method file {path} is not a Python file (.py)")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except SyntaxError as err:
        raise MethodError(f"method file {path} has a syntax error at line {err.lineno}: {err.msg}") from None
    except Exception as err:
        raise MethodError(f"method file {path} fails to import: {type(err).__name__}: {first_line(err)}") from None
    sys.modules[module_name] = module
    return module


def _import_module(where: str, text: str):
    """The module ``where`` and its source file, or a MethodError."""
    try:
        module = importlib.import_module(where)
    except ImportError as err:
        raise MethodError(f"cannot import module {where!r} for the method {text}: {err}") from None
    except Exception as err:
        raise MethodError(f"module {where} fails to import: {type(err).__name__}: {first_line(err)}") from None
    if not getattr(module, "__file__", None):
        raise MethodError(f"module {where} has no source file to record")
    return module, Path(module.__file__)


def first_line(err: BaseException) -> str:
    """The first line of an exception's message (empty for none): what a one-line error quotes."""
    text = str(err).strip()
    return text.splitlines()[0] if text else ""


def _reload(source: str, sha256: str) -> Method:
    method = import_method(source)
    check_unchanged(method, sha256)
    return method


def load_network(record: dict[str, str]) -> Method:
    """The network method a TrainConfig's ``network`` field records, refused when its file changed
    since the run was configured."""
    method = import_method(record["source"])
    check_unchanged(method, record["sha256"], "the run was configured")
    if method.kind != "network":
        raise MethodError(f"{record['source']} is a {method.kind} method, not a network")
    return method


class UserNetwork(nn.Module):
    """A network method's module, with what the trainer asks of a model: per-scale losses, joint
    log-probabilities and calibration, as :class:`~backdrop.models.MultiScaleNet` has them."""

    head_stages: tuple[int, ...] = ()

    def __init__(self, net: nn.Module, spec: DatasetSpec, record: dict[str, str]):
        super().__init__()
        self.net, self.record = net, dict(record)
        self.n_choices, self._n_scales = spec.n_choices, spec.n_scales
        choices = torch.from_numpy(choices_of(np.arange(spec.n_classes), spec.n_scales, spec.n_choices))
        self.register_buffer("_choices", choices, persistent=False)

    @property
    def n_scales(self) -> int:
        return self._n_scales

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def calibrate(self, batches) -> None:
        """The exact statistics of the images in ``batches`` for every BatchStandardize the
        network holds (see :meth:`MultiScaleNet.calibrate`); nothing to do without one."""
        if any(isinstance(m, BatchStandardize) for m in self.modules()):
            MultiScaleNet.calibrate(self, batches)

    scale_losses = MultiScaleNet.scale_losses
    joint_log_probs = MultiScaleNet.joint_log_probs

    def config(self) -> dict[str, Any]:
        return {"network": self.record}


def build_network(record: dict[str, str], spec: DatasetSpec) -> UserNetwork:
    """The module the network method ``record`` names (:func:`load_network`) builds for ``spec``,
    checked on two zero images (:func:`check_logits`)."""
    method = load_network(record)
    try:
        net = method.function(spec)
    except Exception as err:
        raise MethodError(f"{method.source} failed to build its network: {type(err).__name__}: "
                          f"{first_line(err)}") from None
    if not isinstance(net, nn.Module):
        raise MethodError(f"{method.source} must return a torch.nn.Module, but returned a {type(net).__name__}")
    model = UserNetwork(net, spec, record)
    check_logits(net, spec, method.source)
    return model


def check_logits(net: nn.Module, spec: DatasetSpec, where: str) -> None:
    """Refuse a network whose logits of two zero images (in eval mode) are not a floating, finite
    ``(2, K, M)`` tensor, in one line naming ``where`` it comes from."""
    probe = torch.zeros(2, 1, *spec.shape)
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            logits = net(probe)
    except Exception as err:
        raise MethodError(f"{where}'s network fails on a batch of shape {tuple(probe.shape)}: "
                          f"{type(err).__name__}: {first_line(err)}") from None
    finally:
        net.train(was_training)
    expected = (2, spec.n_scales, spec.n_choices)
    if not torch.is_tensor(logits) or tuple(logits.shape) != expected:
        got = tuple(logits.shape) if torch.is_tensor(logits) else type(logits).__name__
        raise MethodError(f"{where}'s network must return logits of shape (batch, {spec.n_scales} scales, "
                          f"{spec.n_choices} choices) = {expected}, but returned {got}")
    if not logits.is_floating_point():
        raise MethodError(f"{where}'s network must return floating logits, but returned {logits.dtype}")
    if not torch.isfinite(logits).all():
        raise MethodError(f"{where}'s network returned non-finite logits")
