"""The dataset description: one validated dataclass, written to and read from HDF5 attributes.

:meth:`DatasetSpec.from_options` builds it from ``msgp generate``'s options, the writer stores it,
the Dataset, the oracle and the trainer read it back. Its errors are :class:`SpecError` (and
:class:`SpecTypeError` for a wrong type), of the :class:`msgp.MSGPError` family.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from .checks import Checks, is_number, is_sequence
from .errors import SpecError, SpecTypeError
from .kernels import KERNELS

FORMAT = "msgp"
FORMAT_VERSION = 1
MAX_SCALES = 5
MIN_LENGTH = 1.0  # pixels; below this a length scale is not resolved by the grid
DTYPES = ("float32", "float16")
NORMALIZE = ("theory", "sample")
COMPRESSION = (None, "gzip", "lzf")
# Package data, so that a checkout, an editable install and a wheel all find them.
PRESETS = resources.files(__package__) / "presets"

# The 2018 paper's datasets, at 1024 px. Two and three scales use them scaled by size/1024.
PAPER_LENGTHS = {2: ((9.5, 10.0), (80.0, 140.0)), 3: ((9.5, 10.0), (60.0, 80.0), (140.0, 200.0))}
PAPER_AMPLITUDES = {2: (0.75, 1.25), 3: (0.5, 1.0, 2.0)}


def choices_of(labels, n_scales: int, n_choices: int) -> np.ndarray:
    """Per-scale choices ``(..., K)`` of class labels: ``label = sum_s choice_s * M**s``, scale 0
    (the finest) the fastest-varying digit. The one place this encoding is written, with
    :func:`label_of`."""
    labels = np.asarray(labels)
    return (labels[..., None] // n_choices ** np.arange(n_scales)) % n_choices


def label_of(choices, n_choices: int) -> np.ndarray:
    """Class labels of per-scale choices ``(..., K)``; the inverse of :func:`choices_of`."""
    choices = np.asarray(choices)
    return choices @ (n_choices ** np.arange(choices.shape[-1]))


_ARGS = Checks(SpecError, SpecTypeError)
# For the choices msgp generate's options make, which the command line words as its flags.
_OPTIONS = Checks(SpecError, SpecTypeError, quote=True)
LENGTH_TABLE = "one row of candidate length scales (pixels) per scale, as many in each row, e.g. [[1.5, 4.0], [6.0, 16.0]]"


def default_lengths(n_scales: int, size: int) -> tuple[tuple[float, ...], ...]:
    """Default candidate length scales (pixels) for ``n_scales`` scales on a ``size`` grid.

    K = 2, 3: the paper's presets scaled by size/1024. Other K follow the same pattern at 1024 px:
    scale centres log-spaced from 9.75 px (finest) to 170 px (coarsest); the two candidates of
    scale s are centre * r_s^(-1/2) and centre * r_s^(1/2), with the ratio r_s log-spaced from
    1.05 (finest: many blobs per image carry the evidence) to 1.43 (coarsest: few blobs); K = 1 is
    the paper's middle scale, (60, 80). Everything is scaled by size/1024 and rounded to 3 digits.
    """
    _ARGS.integer("n_scales", n_scales, 1, MAX_SCALES)
    factor = size / 1024
    if n_scales in PAPER_LENGTHS:
        base = PAPER_LENGTHS[n_scales]
    elif n_scales == 1:
        base = ((60.0, 80.0),)
    else:
        centres = np.geomspace(9.75, 170.0, n_scales)
        ratios = np.geomspace(1.05, 1.43, n_scales)
        base = tuple((c / math.sqrt(r), c * math.sqrt(r)) for c, r in zip(centres, ratios))
    return tuple(tuple(float(f"{v * factor:.3g}") for v in pair) for pair in base)


def default_amplitudes(n_scales: int) -> tuple[float, ...]:
    """Default amplitudes: the paper's for K = 2, 3; otherwise log-spaced from 0.5 to 2 (K = 1: 1)."""
    if n_scales in PAPER_AMPLITUDES:
        return PAPER_AMPLITUDES[n_scales]
    if n_scales == 1:
        return (1.0,)
    return tuple(float(f"{a:.3g}") for a in np.geomspace(0.5, 2.0, n_scales))


def format_length(length: float) -> str:
    return f"{length:g}"


@dataclass(frozen=True)
class DatasetSpec:
    """Everything that defines an msgp dataset; sample i is a function of this and i alone.

    Parameters
    ----------
    n : number of samples.
    length_scales : (K, M) candidate length scales, in pixels; row s is scale s, finest first.
    amplitudes : (K,) standard deviation of each scale's component in the sum.
    size : pixels per axis.
    ndim : 1, 2 or 3.
    kernel : ``se``, ``matern32`` or ``matern52``.
    noise : standard deviation of white observation noise added after the sum.
    normalize : ``theory`` (each component has variance 1 in expectation) or ``sample`` (each
        component standardised per sample to mean 0, std 1, as in the 2018 paper).
    seed : the root of every random stream.
    dtype : storage dtype of the fields, ``float32`` or ``float16``.
    compression : ``None``, ``gzip`` or ``lzf`` (storage only).
    save_components : also store each scale's unit-variance component field.
    """

    n: int
    length_scales: tuple[tuple[float, ...], ...]
    amplitudes: tuple[float, ...]
    size: int = 128
    ndim: int = 2
    kernel: str = "se"
    noise: float = 0.0
    normalize: str = "theory"
    seed: int = 0
    dtype: str = "float32"
    compression: str | None = None
    save_components: bool = False

    def __post_init__(self):
        checked = {
            "length_scales": _length_table(self.length_scales),
            "amplitudes": _ARGS.numbers("amplitudes", self.amplitudes, "a sequence of numbers, one per scale"),
            "n": _ARGS.integer("n", self.n, 1),
            "ndim": _ARGS.integer("ndim", self.ndim, 1, 3, "1, 2 or 3"),
            "size": _ARGS.integer("size", self.size, 4, what="an integer of at least 4 pixels"),
            "kernel": _ARGS.choice("kernel", self.kernel, tuple(KERNELS)),
            "noise": _ARGS.number("noise", self.noise, "a number >= 0", lambda v: v >= 0),
            "normalize": _ARGS.choice("normalize", self.normalize, NORMALIZE, "'theory' or 'sample'"),
            "seed": _ARGS.integer("seed", self.seed, 0),
            "dtype": _ARGS.choice("dtype", self.dtype, DTYPES, "float32 or float16"),
            "compression": None if self.compression is None else
            _ARGS.choice("compression", self.compression, COMPRESSION[1:], "None, 'gzip' or 'lzf'"),
            "save_components": _ARGS.flag("save_components", self.save_components),
        }
        for name, value in checked.items():
            object.__setattr__(self, name, value)
        K, M = self.n_scales, self.n_choices
        _check(1 <= K <= MAX_SCALES, f"the number of scales must be between 1 and {MAX_SCALES}, but got {K}")
        _check(M >= 2, f"each scale needs at least 2 candidate length scales, but scale 0 has {M}")
        _check(len(self.amplitudes) == K, f"got {len(self.amplitudes)} amplitudes for {K} scales")
        for a in self.amplitudes:
            _check(a > 0 and math.isfinite(a), f"amplitudes must be positive, but got {a:g}")
        for s, row in enumerate(self.length_scales):
            for v in row:
                _check(math.isfinite(v) and v > 0, f"length scales must be positive, but scale {s} has {v:g}")
                _check(v >= MIN_LENGTH, f"length scale {v:g} px at scale {s} is below {MIN_LENGTH:g} px "
                       "and cannot be resolved by the grid")
                _check(v <= self.size / 2, f"length scale {v:g} px at scale {s} is beyond the image "
                       f"(at most size/2 = {self.size / 2:g} px)")
            _check(all(a < b for a, b in zip(row, row[1:])),
                   f"candidate length scales of scale {s} must be increasing, but got {_fmt_row(row)}")
        for s in range(K - 1):
            lo, hi = self.length_scales[s], self.length_scales[s + 1]
            _check(max(lo) < min(hi), f"scales must be increasing and not overlap, but scale {s} "
                   f"({_fmt_row(lo)}) reaches scale {s + 1} ({_fmt_row(hi)})")

    # Derived quantities -------------------------------------------------------------------------
    @property
    def n_scales(self) -> int:
        return len(self.length_scales)

    @property
    def n_choices(self) -> int:
        return len(self.length_scales[0])

    @property
    def n_classes(self) -> int:
        return self.n_choices**self.n_scales

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.size,) * self.ndim

    def choices(self, labels) -> np.ndarray:
        """Per-scale choices (..., K) of class labels (:func:`choices_of`)."""
        return choices_of(labels, self.n_scales, self.n_choices)

    def labels(self, choices) -> np.ndarray:
        """Class labels of per-scale choices (..., K) (:func:`label_of`)."""
        return label_of(choices, self.n_choices)

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple("-".join(format_length(self.length_scales[s][c]) for s, c in enumerate(ch))
                     for ch in self.choices(np.arange(self.n_classes)))

    def statistics(self) -> dict[str, Any]:
        """The parameters that fix the distribution of the data (not n, seed or storage)."""
        return {k: v for k, v in self.to_dict().items()
                if k in ("ndim", "size", "kernel", "length_scales", "amplitudes", "noise", "normalize", "dtype")}

    def replace(self, **changes) -> "DatasetSpec":
        return dataclasses.replace(self, **changes)

    def differences_from(self, other: "DatasetSpec") -> list[str]:
        """``"name mine instead of theirs"`` for each parameter whose value here differs from
        ``other``'s, in field order: what a stored file holds in place of the description asked for.

        Examples
        --------
        >>> spec = DatasetSpec.default(2, 128, n=100)
        >>> spec.replace(seed=3).differences_from(spec)
        ['seed 3 instead of 0']
        """
        mine, theirs = self.to_dict(), other.to_dict()
        return [f"{key} {mine[key]} instead of {theirs[key]}" for key in mine if mine[key] != theirs[key]]

    # Serialisation --------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "DatasetSpec":
        """The description a dict of its parameters gives (a preset, a stored or given description);
        a :class:`SpecError` names any unknown or missing parameter in one line."""
        fields = [f for f in dataclasses.fields(cls) if f.init]
        unknown = sorted(set(values) - {f.name for f in fields})
        if unknown:
            raise SpecError(f"unknown parameters {', '.join(unknown)}; known: {', '.join(f.name for f in fields)}")
        missing = [f.name for f in fields if f.default is dataclasses.MISSING and f.name not in values]
        if missing:
            raise SpecError(f"lacks {', '.join(missing)}, required dataset parameter(s)")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["length_scales"] = [list(row) for row in self.length_scales]
        d["amplitudes"] = list(self.amplitudes)
        return d

    def to_attrs(self) -> dict[str, Any]:
        """HDF5 root attributes (format v1), without ``complete`` and ``msgp_version``."""
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "ndim": self.ndim,
            "size": self.size,
            "kernel": self.kernel,
            "length_scales": np.asarray(self.length_scales, dtype=np.float64),
            "amplitudes": np.asarray(self.amplitudes, dtype=np.float64),
            "noise": self.noise,
            "normalize": self.normalize,
            "seed": self.seed,
            "n": self.n,
            "dtype": self.dtype,
            "compression": self.compression or "none",
            "save_components": self.save_components,
            "class_names": list(self.class_names),
        }

    @classmethod
    def from_attrs(cls, attrs) -> "DatasetSpec":
        compression = _py(attrs["compression"])
        return cls(
            n=int(attrs["n"]),
            length_scales=np.asarray(attrs["length_scales"]).tolist(),
            amplitudes=np.asarray(attrs["amplitudes"]).tolist(),
            size=int(attrs["size"]),
            ndim=int(attrs["ndim"]),
            kernel=_py(attrs["kernel"]),
            noise=float(attrs["noise"]),
            normalize=_py(attrs["normalize"]),
            seed=int(attrs["seed"]),
            dtype=_py(attrs["dtype"]),
            compression=None if compression == "none" else compression,
            save_components=bool(attrs["save_components"]),
        )

    @classmethod
    def default(cls, n_scales: int = 3, size: int = 128, **overrides) -> "DatasetSpec":
        """The documented defaults for ``n_scales`` scales at ``size`` pixels."""
        _ARGS.integer("size", size, 4, what="an integer of at least 4 pixels")
        lengths = default_lengths(n_scales, size)
        if overrides.get("length_scales") is None and lengths[0][0] < MIN_LENGTH:
            minimum = math.ceil(MIN_LENGTH / lengths[0][0] * size)
            raise SpecError(f"the default length scales for {n_scales} scales fall below {MIN_LENGTH:g} px at "
                            f"size {size}; use `size={minimum}` or more, or pass `length_scales`")
        values = {"length_scales": lengths, "amplitudes": default_amplitudes(n_scales), "size": size, "n": 10000}
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    @classmethod
    def from_options(cls, preset: str | None = None, n_scales: int | None = None, **values) -> "DatasetSpec":
        """The description that ``msgp generate``'s options give.

        Parameters
        ----------
        preset : a preset's name or a .json path (:func:`load_preset`), whose parameters ``values``
            replace; ``n_scales`` is then not used, the preset's length scales giving the number.
        n_scales : without a preset, the number of scales whose default length scales and
            amplitudes (:meth:`default`) ``values`` replace: by default as many as the rows of
            ``length_scales``, else 3. It must agree with ``length_scales`` when both are given.
        values : parameters of the description (``n``, ``size``, ``length_scales``, ``amplitudes``,
            ...); a ``None`` is one not given.

        Examples
        --------
        >>> DatasetSpec.from_options(n_scales=2, size=128, n=100).length_scales
        ((1.19, 1.25), (10.0, 17.5))
        >>> DatasetSpec.from_options("paper-2scale", n=100).size
        1024
        """
        values = {k: v for k, v in values.items() if v is not None}
        if preset is not None:
            return load_preset(preset, **values)
        rows = values.get("length_scales")
        if is_sequence(rows):
            if n_scales is not None and n_scales != len(rows):
                raise SpecError(f"`n_scales` {n_scales} disagrees with `length_scales`, which gives {len(rows)} scales")
            n_scales = len(rows)
        n_scales = 3 if n_scales is None else n_scales
        _OPTIONS.integer("n_scales", n_scales, 1, MAX_SCALES, what=f"between 1 and {MAX_SCALES}")
        return cls.default(n_scales, **values)


def preset_names() -> list[str]:
    return sorted(p.name.removesuffix(".json") for p in PRESETS.iterdir() if p.name.endswith(".json"))


def load_preset(name: str, **overrides) -> DatasetSpec:
    """The preset ``name`` shipped in ``msgp/presets/`` (or a path to a JSON file), with overrides."""
    path = Path(name)
    if path.suffix != ".json":
        path = PRESETS / f"{name}.json"
        if not path.is_file():
            raise SpecError(f"unknown preset {name!r}; choose one of {', '.join(preset_names())} or give a .json path")
    elif not path.is_file():
        raise SpecError(f"{path} does not exist")
    try:
        values = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise SpecError(f"preset {path} is not valid JSON: {err}") from None
    if not isinstance(values, dict):
        raise SpecError(f"preset {path} must hold a JSON object of dataset parameters")
    values.pop("description", None)
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return DatasetSpec.from_dict(values)
    except SpecError as err:
        raise SpecError(f"preset {path}: {err}") from None


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise SpecError(message)


def _fmt_row(row) -> str:
    return ",".join(format_length(v) for v in row)


def _length_table(value) -> tuple[tuple[float, ...], ...]:
    """``length_scales`` as a tuple of rows of floats, or a SpecTypeError (not rows of numbers) or a
    SpecError (no rows, an empty row, or rows of different lengths) that shows it."""
    if not (is_sequence(value) and all(is_sequence(row) and all(map(is_number, row)) for row in value)):
        raise SpecTypeError(f"length_scales must be {LENGTH_TABLE}, but got {value!r}")
    if len(value) == 0 or len({len(row) for row in value}) != 1 or len(value[0]) == 0:
        raise SpecError(f"length_scales must give every scale the same, non-zero number of candidate length "
                        f"scales, but got {value!r}")
    return tuple(tuple(float(v) for v in row) for row in value)


def _py(value):
    return value.decode() if isinstance(value, bytes) else str(value)
