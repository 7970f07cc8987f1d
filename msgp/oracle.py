"""The Bayes-optimal classifier of an msgp dataset: exact class likelihoods from its own metadata.

A ``normalize="theory"`` sample of class c is a stationary Gaussian field on the torus whose
circulant covariance has eigenvalues ``Lam_c = sum_s a_s^2 lam_{s, choice_s(c)} + noise^2``
(:func:`msgp.spectral.eigenvalues`, the generator's own code). With ``X = rfftn(x, norm="ortho")``
(orthonormal, Jacobian 1) and the half-grid weights ``w`` (2 for a mode that stands for itself and
its conjugate mirror, 1 for a real, self-conjugate mode)::

    log p(x | c) = -1/2 sum_half w_k (|X_k|^2 / Lam_ck + log Lam_ck) - N/2 log(2 pi),   N = size^ndim

which is the full-grid sum ``-1/2 sum_k (|Y_k|^2 / Lam_k + log Lam_k)`` written on the half grid.
Per sample this costs one forward real FFT and one matrix product of the squared spectrum
``(n, modes)`` against the precomputed ``w / Lam`` ``(modes, C)``.

**Rounding floor.** Stored fields are rounded once to float32 or float16, which adds nearly white
noise: rounding ``x`` to a dtype with machine epsilon ``eps`` errs uniformly within half a unit in
the last place, ``ulp(x) = eps 2^floor(log2 |x|) <= eps |x|``, so the per-pixel variance is
``E[ulp^2] / 12 <= eps^2 sigma_x^2 / 12`` (``sigma_x^2 = sum_s a_s^2 + noise^2``, the total
variance). The model adds exactly this bound, :func:`rounding_floor`, as white noise; for Gaussian
``x`` the true rounding variance is about 0.54 of it. Without a floor, SE eigenvalues that
underflow (or fall far below the rounding noise) would make the likelihood read rounding noise as
signal, and a floor below the true rounding noise does just that: fine-scale accuracy drops. Above
it, the floor changes nothing measurable (tests raise it 10x and 1000x).

**normalize="sample".** Each component is standardised per sample, which is not exactly Gaussian:
the zero-frequency mode is removed and each component's amplitude is fixed per sample. The oracle
then uses, for each component, its eigenvalues without mode 0 rescaled so that the rest sum to N
(the standardised component's expected power), drops mode 0, and fits one amplitude ``sigma`` of
the components per sample and class by maximum likelihood (profile likelihood). Without a white
part the fit is closed-form, ``sigma^2 = Q_c / N'`` (``Q_c`` the quadratic form, ``N' = N - 1``
modes) and ``log p ~ -N'/2 log(Q_c / N') - 1/2 sum_{k != 0} w_k log Lam_ck``; but the floor and the
noise are not part of the standardised components, and the many modes that hold only rounding noise
would drag that closed-form ``sigma^2`` far below 1 (to ~0.15 on 32-px crops of ``paper-2scale``,
where it then picks the wrong fine length for every sample). So the amplitude scales the components
only, ``Lam_c(sigma) = sigma^2 S_c + noise^2 + floor``, and ``log sigma^2`` is fitted by Fisher
scoring (a few passes over the modes per class: sample datasets cost several times a theory one).

**Crops.** :func:`crop_log_likelihoods` gives the exact Gaussian likelihood of a ``crop^ndim``
corner of each sample: a crop of a periodic field is not periodic, so it uses the dense crop
covariance (the periodic covariance restricted to the crop, ``Sigma_c = sum_s a_s^2 K_s + floor I``)
and one Cholesky factorisation per class, up to :data:`MAX_CROP_PIXELS` pixels. The fields are
stationary, so the corner at the origin is as good as any other offset.
"""
from __future__ import annotations

import math
import os
import signal
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from contextlib import closing
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.linalg
from scipy.special import logsumexp

from . import spectral
from .checks import Checks
from .errors import OracleError
from .format import open_file
from .intervals import wilson
from .spec import DatasetSpec
from .spectral import class_signal

# Dense crop covariances are factorised per class: 4096 pixels (64^2, 16^3) takes ~1 s per class.
MAX_CROP_PIXELS = 4096
# A float64 Cholesky of a P x P covariance resolves variances down to about P eps64 ||Sigma||
# (backward error), and ||Sigma|| reaches P sigma_x^2 for smooth fields: below that the crop model's
# white floor would be numerical noise rather than a model of the data.
_CHOLESKY_FLOOR_FACTOR = 4.0
SAMPLE_NOTE = ("normalize=sample is not exactly Gaussian: per-sample amplitude fitted by maximum "
               "likelihood (profile likelihood), zero-frequency mode excluded")
_ARGS = Checks(OracleError, quote=True)


def total_variance(spec: DatasetSpec) -> float:
    """Expected per-pixel variance of a sample, ``sum_s a_s^2 + noise^2`` (field units squared)."""
    return float(sum(a**2 for a in spec.amplitudes) + spec.noise**2)


def rounding_floor(spec: DatasetSpec) -> float:
    """Upper bound of the per-pixel variance of rounding a sample to ``spec.dtype``.

    Returns
    -------
    float
        ``eps^2 sigma_x^2 / 12`` in field units squared, with ``eps = np.finfo(spec.dtype).eps`` and
        ``sigma_x^2`` the :func:`total_variance`; about 1.85 times the true mean rounding variance
        of a Gaussian field (see the module docstring).
    """
    eps = float(np.finfo(np.dtype(spec.dtype)).eps)
    return eps**2 * total_variance(spec) / 12.0


def _profile_log_likelihood(power: np.ndarray, signal: np.ndarray, white: float, weights: np.ndarray,
                            tolerance: float = 1e-7, max_iterations: int = 50) -> np.ndarray:
    """Gaussian log-likelihood maximised over the components' amplitude ``sigma``.

    Parameters
    ----------
    power : ``(n, M)`` squared projections of each sample on the model's modes.
    signal : ``(M,)`` the components' variance in each mode (``sigma = 1``).
    white : variance of the unscaled white part, noise and floor, in each mode.
    weights : ``(M,)`` how many modes each entry stands for (0 drops it).

    Returns
    -------
    ``(n,)`` profile log-likelihoods, in nats.
    """
    # Start from the closed form on the modes the components dominate: a few steps then suffice.
    dominant = weights * (signal > 1e3 * white)
    if dominant.sum() > 0:
        log_scale = np.log(np.maximum((power @ (dominant / np.maximum(signal, white))) / dominant.sum(), 1e-300))
    else:
        log_scale = np.zeros(len(power))
    for _ in range(max_iterations):
        lam = np.exp(log_scale)[:, None] * signal + white
        fraction = 1.0 - white / lam
        # Fisher scoring in log sigma^2: score / expected information.
        step = ((weights * fraction * (power / lam - 1.0)).sum(axis=1)
                / (weights * fraction**2).sum(axis=1))
        log_scale += np.clip(step, -2.0, 2.0)
        if np.max(np.abs(step)) < tolerance:
            break
    lam = np.exp(log_scale)[:, None] * signal + white
    return -0.5 * (weights * (power / lam + np.log(lam))).sum(axis=1) - 0.5 * weights.sum() * math.log(2.0 * math.pi)


class FourierModel:
    """Exact whole-image class log-likelihoods of one dataset description, precomputed.

    Parameters
    ----------
    spec : the dataset description.
    floor : white-noise variance per pixel modelling the storage rounding (field units squared);
        default :func:`rounding_floor`.
    workers : threads of each forward FFT (``scipy.fft`` workers).
    """

    def __init__(self, spec: DatasetSpec, floor: float | None = None, workers: int = 1):
        self.spec = spec
        self.floor = rounding_floor(spec) if floor is None else float(floor)
        self.workers = workers
        self.profile = spec.normalize == "sample"
        self.white = spec.noise**2 + self.floor
        self.signal = class_signal(spec).reshape(spec.n_classes, -1)
        power = self.signal + self.white
        weights = spectral.half_weights(spec.size, spec.ndim).ravel().copy()
        if self.profile:
            weights[0] = 0.0  # standardisation removed the mean
        self.weights = weights
        self.n_modes = float(weights.sum())
        self.log_det = (weights * np.log(power)).sum(axis=1)
        # Real and imaginary parts of a mode share its weight: rows interleave as the float64 view
        # of the complex spectrum does.
        self._inverse = np.repeat((weights / power).T, 2, axis=0)

    def quadratic_forms(self, fields: np.ndarray) -> np.ndarray:
        """``Q_c = x^T Sigma_c^-1 x`` for fields ``(n, *shape)``: ``(n, C)``."""
        spectra = spectral.analyze(fields, self.spec.ndim, self.workers)
        flat = spectra.reshape(len(spectra), -1).view(np.float64)
        np.square(flat, out=flat)
        return flat @ self._inverse

    def log_likelihoods(self, fields: np.ndarray) -> np.ndarray:
        """Class log-likelihoods ``(n, C)`` (nats) of fields ``(n, *shape)``; profile likelihoods
        for ``normalize="sample"``."""
        fields = _check_fields(fields, self.spec.shape)
        if not self.profile:
            q = self.quadratic_forms(fields)
            return -0.5 * (q + self.log_det) - 0.5 * self.n_modes * math.log(2.0 * math.pi)
        spectra = spectral.analyze(fields, self.spec.ndim, self.workers).reshape(len(fields), -1)
        power = spectra.real**2 + spectra.imag**2
        return np.stack([_profile_log_likelihood(power, signal, self.white, self.weights)
                         for signal in self.signal], axis=1)


def _check_fields(fields, shape) -> np.ndarray:
    fields = np.asarray(fields)
    if fields.shape[1:] != tuple(shape):
        raise OracleError(f"fields have shape {fields.shape[1:]} per sample, expected {tuple(shape)}")
    return fields


# Crops ------------------------------------------------------------------------------------------

def check_crop(spec: DatasetSpec, crop: int) -> None:
    """Raise :class:`OracleError` unless a ``crop^ndim`` crop is supported for ``spec``."""
    _ARGS.integer("crop", crop, 1, what="at least 1 pixel")
    if crop > spec.size:
        raise OracleError(f"`crop={crop}` is larger than the field ({spec.size} px per axis)")
    pixels = crop**spec.ndim
    if pixels > MAX_CROP_PIXELS:
        largest = int(math.floor(MAX_CROP_PIXELS ** (1.0 / spec.ndim) + 1e-9))
        raise OracleError(f"`crop={crop}` gives {pixels} pixels in {spec.ndim}-D; the exact crop likelihood "
                          f"factorises a dense covariance and supports at most {MAX_CROP_PIXELS} pixels "
                          f"(`crop={largest}` in {spec.ndim}-D)")


def crop_floor(spec: DatasetSpec, crop: int, floor: float | None = None) -> float:
    """White-noise variance per pixel of the crop model: the rounding floor, raised where needed
    to what a float64 Cholesky of the ``crop^ndim`` covariance resolves (field units squared)."""
    floor = rounding_floor(spec) if floor is None else float(floor)
    numerical = _CHOLESKY_FLOOR_FACTOR * crop**spec.ndim * np.finfo(np.float64).eps * total_variance(spec)
    return max(floor, numerical)


def _crop_index(size: int, crop: int, ndim: int) -> tuple[np.ndarray, ...]:
    """Indices into a full-grid covariance function that give the dense crop covariance,
    axes ordered (row pixel axes..., column pixel axes...)."""
    offsets = (np.arange(crop)[:, None] - np.arange(crop)[None, :]) % size
    index = []
    for axis in range(ndim):
        shape = [1] * (2 * ndim)
        shape[axis], shape[ndim + axis] = crop, crop
        index.append(offsets.reshape(shape))
    return tuple(index)


def crop_covariances(spec: DatasetSpec, crop: int, white: float, classes: Iterable[int] | None = None):
    """Dense covariance of a ``crop^ndim`` corner crop for each class, one at a time.

    Yields ``(P, P)`` float64 matrices, ``P = crop^ndim``, in the order of ``classes`` (labels;
    default all, in label order): the periodic covariance of the components' sum restricted to the
    crop, plus ``white`` (field units squared) on the diagonal.
    """
    # Covariance functions c(r) on the full grid, from the same eigenvalues as the whole-image model.
    functions = [[spectral.covariance_function(spectral.component_eigenvalues(spec, s, m), spec.size, spec.ndim)
                  for m in range(spec.n_choices)] for s in range(spec.n_scales)]
    index = _crop_index(spec.size, crop, spec.ndim)
    pixels = crop**spec.ndim
    for choices in spec.choices(np.arange(spec.n_classes) if classes is None else np.asarray(list(classes))):
        function = sum(spec.amplitudes[s] ** 2 * functions[s][m] for s, m in enumerate(choices))
        cov = function[index].reshape(pixels, pixels)
        cov[np.diag_indices(pixels)] += white
        yield cov


def crop_log_likelihoods(fields: np.ndarray, spec: DatasetSpec, crop: int, floor: float | None = None,
                         classes: Iterable[int] | None = None) -> np.ndarray:
    """Exact class log-likelihoods ``(n, C)`` (nats) of the ``crop^ndim`` corner of each sample.

    Parameters
    ----------
    fields : ``(n, *spec.shape)`` whole samples, or ``(n, crop, ...)`` crops already taken at the
        origin corner.
    spec : the dataset description.
    crop : crop side in pixels (at most ``spec.size``, ``crop^ndim <= MAX_CROP_PIXELS``).
    floor : rounding floor (field units squared), default :func:`rounding_floor`; raised to what
        float64 resolves, see :func:`crop_floor`.
    classes : the labels of the columns to compute (default all): each class's column is the same
        whichever others are computed with it.

    Returns
    -------
    ``(n, len(classes))`` log-likelihoods; profile likelihoods (one fitted amplitude per sample and
    class) for ``normalize="sample"``.
    """
    check_crop(spec, crop)
    fields = np.asarray(fields)
    window = (crop,) * spec.ndim
    if fields.shape[1:] == spec.shape:
        fields = fields[(slice(None),) + tuple(slice(0, crop) for _ in range(spec.ndim))]
    fields = _check_fields(fields, window)
    x = fields.reshape(len(fields), -1).astype(np.float64).T
    white = spec.noise**2 + crop_floor(spec, crop, floor)
    classes = list(range(spec.n_classes) if classes is None else classes)
    out = np.empty((x.shape[1], len(classes)))
    if spec.normalize == "sample":
        # The fitted amplitude scales the components only, so each class needs its eigenbasis.
        # Eigenvalues below float64 resolution come out slightly negative: they are 0 plus noise.
        for c, cov in enumerate(crop_covariances(spec, crop, 0.0, classes)):
            signal, basis = scipy.linalg.eigh(cov, overwrite_a=True, check_finite=False)
            power = (basis.T @ x).T ** 2
            out[:, c] = _profile_log_likelihood(power, np.maximum(signal, 0.0), white, np.ones(len(signal)))
        return out
    for c, cov in enumerate(crop_covariances(spec, crop, white, classes)):
        try:
            factor = scipy.linalg.cholesky(cov, lower=True, overwrite_a=True, check_finite=False)
        except np.linalg.LinAlgError:
            raise OracleError(f"the crop covariance of class {spec.class_names[classes[c]]} is not positive definite "
                              "in float64; use a smaller `crop`") from None
        z = scipy.linalg.solve_triangular(factor, x, lower=True, check_finite=False)
        log_det = 2.0 * np.log(np.diag(factor)).sum()
        out[:, c] = -0.5 * (np.einsum("pn,pn->n", z, z) + log_det + x.shape[0] * math.log(2.0 * math.pi))
    return out


# Posteriors and predictions ---------------------------------------------------------------------

def log_likelihoods(fields: np.ndarray, meta: DatasetSpec, *, crop: int | None = None,
                    floor: float | None = None, workers: int = 1) -> np.ndarray:
    """Exact class log-likelihoods ``(n, C)`` (nats) of fields ``(n, *meta.shape)``.

    Parameters
    ----------
    fields : samples as stored (any float dtype).
    meta : the dataset's description (kernel, length scales, amplitudes, noise, size, ndim, dtype).
    crop : if given, the likelihood of the ``crop^ndim`` corner only (:func:`crop_log_likelihoods`).
    floor : white-noise variance per pixel standing for the rounding to ``meta.dtype``; default
        :func:`rounding_floor`.
    workers : threads of each forward FFT.
    """
    if crop is not None:
        return crop_log_likelihoods(fields, meta, crop, floor)
    return FourierModel(meta, floor, workers).log_likelihoods(fields)


@dataclass
class Posterior:
    """Class posteriors under a uniform prior.

    ``log_joint`` ``(n, C)``: log posterior of each class (label order); ``log_marginals``
    ``(n, K, M)``: log posterior of each scale's choice, the other scales summed out.
    """

    log_joint: np.ndarray
    log_marginals: np.ndarray

    @property
    def joint(self) -> np.ndarray:
        return np.exp(self.log_joint)

    @property
    def marginals(self) -> np.ndarray:
        return np.exp(self.log_marginals)


def posterior_from_log_likelihoods(log_lik: np.ndarray, meta: DatasetSpec) -> Posterior:
    """The :class:`Posterior` of class log-likelihoods ``(n, C)`` under a uniform prior."""
    log_joint = log_lik - logsumexp(log_lik, axis=1, keepdims=True)
    choices = meta.choices(np.arange(meta.n_classes))
    marginals = np.empty((len(log_lik), meta.n_scales, meta.n_choices))
    for s in range(meta.n_scales):
        for m in range(meta.n_choices):
            marginals[:, s, m] = logsumexp(log_joint[:, choices[:, s] == m], axis=1)
    return Posterior(log_joint, marginals)


def posteriors(fields: np.ndarray, meta: DatasetSpec, **options) -> Posterior:
    """Joint and per-scale marginal posteriors of fields ``(n, *meta.shape)``; ``options`` as for
    :func:`log_likelihoods`."""
    return posterior_from_log_likelihoods(log_likelihoods(fields, meta, **options), meta)


@dataclass
class Prediction:
    """Bayes decisions: ``labels`` ``(n,)`` maximise the joint posterior, ``choices`` ``(n, K)``
    each scale's marginal posterior (the per-scale optimum); ``confidence`` ``(n,)`` and
    ``scale_confidence`` ``(n, K)`` are the posteriors of those decisions."""

    labels: np.ndarray
    choices: np.ndarray
    confidence: np.ndarray
    scale_confidence: np.ndarray


def decide(posterior: Posterior) -> Prediction:
    """Bayes decisions from a :class:`Posterior`."""
    return Prediction(
        labels=posterior.log_joint.argmax(axis=1),
        choices=posterior.log_marginals.argmax(axis=2),
        # Log-sum-exp rounding can leave a log posterior a few ulps above 0.
        confidence=np.minimum(np.exp(posterior.log_joint.max(axis=1)), 1.0),
        scale_confidence=np.minimum(np.exp(posterior.log_marginals.max(axis=2)), 1.0),
    )


def predict(fields: np.ndarray, meta: DatasetSpec, **options) -> Prediction:
    """Bayes-optimal predictions for fields ``(n, *meta.shape)``; ``options`` as for
    :func:`log_likelihoods`."""
    return decide(posteriors(fields, meta, **options))


# Evaluating a file ------------------------------------------------------------------------------

class _Scorer:
    """Class log-likelihoods of samples ``start:stop`` of one file, by piece: ``(a, b)`` is samples
    ``a:b`` (whole images, ``(b - a, C)``) or classes ``a:b`` of every sample (crops, ``(n, b - a)``).

    Picklable until first called; the file is opened then, in the process that calls it.
    """

    def __init__(self, path, start: int, stop: int, crop: int | None, floor: float | None):
        self.path, self.start, self.stop, self.crop, self.floor = path, start, stop, crop, floor
        self._opened = None

    def __call__(self, piece: tuple[int, int]) -> np.ndarray:
        if self._opened is None:
            self._opened = open_file(self.path)
            self._h5, self._spec = self._opened.file, self._opened.spec
            if self.crop is None:
                self._model = FourierModel(self._spec, self.floor)
            else:
                corner = (slice(self.start, self.stop),) + (slice(0, self.crop),) * self._spec.ndim
                self._corners = self._h5["fields"][corner]
        a, b = piece
        if self.crop is None:
            return self._model.log_likelihoods(self._h5["fields"][a:b])
        return crop_log_likelihoods(self._corners, self._spec, self.crop, self.floor, classes=range(a, b))

    def close(self) -> None:
        if self._opened is not None:
            self._opened.file.close()
            self._opened = None


_worker: dict = {}


def _init_worker(scorer: _Scorer) -> None:
    # The parent alone answers Ctrl-C: it cancels the pieces not started, and each worker finishes
    # its own instead of printing a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _worker["scorer"] = scorer


def _worker_piece(piece: tuple[int, int]) -> np.ndarray:
    return _worker["scorer"](piece)


def _score_pieces(scorer: _Scorer, pieces: list[tuple[int, int]], workers: int):
    """The scorer's blocks of ``pieces``, in order: in this process, or in ``workers`` processes."""
    if workers == 1 or len(pieces) == 1:
        try:
            for piece in pieces:
                yield scorer(piece)
        finally:
            scorer.close()
        return
    pool = ProcessPoolExecutor(min(workers, len(pieces)), initializer=_init_worker, initargs=(scorer,))
    try:
        yield from pool.map(_worker_piece, pieces)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _accuracy(correct: np.ndarray) -> dict[str, float]:
    low, high = wilson(int(np.count_nonzero(correct)), len(correct))
    return {"accuracy": float(np.mean(correct)), "low": low, "high": high}


def score(prediction: Prediction, labels: np.ndarray, meta: DatasetSpec) -> dict[str, Any]:
    """Joint and per-scale accuracy with 95% Wilson intervals (``low``, ``high``:
    :func:`msgp.intervals.wilson`), confusion matrices
    (rows: true choice, columns: predicted) and mean confidence (≈ accuracy when calibrated)."""
    true_choices = meta.choices(labels)
    scales = []
    for s in range(meta.n_scales):
        confusion = np.zeros((meta.n_choices, meta.n_choices), dtype=np.int64)
        np.add.at(confusion, (true_choices[:, s], prediction.choices[:, s]), 1)
        scales.append({
            "length_scales": list(meta.length_scales[s]),
            **_accuracy(prediction.choices[:, s] == true_choices[:, s]),
            "mean_confidence": float(prediction.scale_confidence[:, s].mean()),
            "chance": 1.0 / meta.n_choices,
            "confusion": confusion.tolist(),
        })
    return {
        "joint": {**_accuracy(prediction.labels == labels), "mean_confidence": float(prediction.confidence.mean()),
                  "chance": 1.0 / meta.n_classes},
        "scales": scales,
    }


def score_file(path: str | os.PathLike, indices: tuple[int | None, int | None] = (None, None), *,
             crop: int | None = None, floor: float | None = None, batch_size: int = 64,
             workers: int = 1, progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """The oracle's accuracy on samples ``indices[0]:indices[1]`` of an msgp file.

    Parameters
    ----------
    path : a complete msgp file.
    indices : ``(start, stop)`` sample range; ``None`` means the start or the end of the file.
    crop : if given, use only the ``crop^ndim`` corner of each sample.
    floor : rounding floor (field units squared), default :func:`rounding_floor`.
    batch_size : samples read and transformed at a time (whole-image model).
    workers : processes scoring the samples (1: this process alone): batches of ``batch_size``
        samples, or with ``crop`` one class each. The pieces are the same for any count, so the
        result is too, to the bit.
    progress : called as ``progress(done, total)`` before the first piece and after each one, in
        samples (whole images) or classes (crops).

    Returns
    -------
    dict with the path, the range, the number of samples, the model and floor used, and the
    :func:`score` (``joint`` and per-scale accuracies, 95% Wilson intervals, confusion matrices).
    """
    _ARGS.integer("workers", workers, 1, what="at least 1")
    _ARGS.integer("batch_size", batch_size, 1, what="at least 1")
    with open_file(path) as (h5, spec):
        start, stop = _sample_range(spec, indices, path)
        if crop is not None:
            check_crop(spec, crop)
        labels = h5["labels"][start:stop]
    log_lik = _score_file(_Scorer(path, start, stop, crop, floor), spec, batch_size, workers,
                          progress or (lambda done, total: None))
    prediction = decide(posterior_from_log_likelihoods(log_lik, spec))
    return {
        "path": str(path),
        "start": start,
        "stop": stop,
        "n": stop - start,
        "crop": crop,
        "class_names": list(spec.class_names),
        "model": "exact Gaussian likelihood" if spec.normalize == "theory" else SAMPLE_NOTE,
        "floor": _model_floor(spec, crop, floor),
        **score(prediction, labels, spec),
    }


def _sample_range(spec: DatasetSpec, indices: tuple[int | None, int | None], path) -> tuple[int, int]:
    """``indices`` as ``(start, stop)`` within the file's samples, ``None`` standing for its ends."""
    start = 0 if indices[0] is None else int(indices[0])
    stop = spec.n if indices[1] is None else int(indices[1])
    if not 0 <= start < stop <= spec.n:
        raise OracleError(f"`indices` {start}:{stop} is not a non-empty range within the "
                          f"{spec.n} samples of {path}")
    return start, stop


def _model_floor(spec: DatasetSpec, crop: int | None, floor: float | None) -> float:
    """The white floor per pixel the model adds (field units squared): :func:`crop_floor` for a
    crop, else ``floor`` or :func:`rounding_floor`."""
    if crop is not None:
        return crop_floor(spec, crop, floor)
    return rounding_floor(spec) if floor is None else float(floor)


def _score_file(scorer: _Scorer, spec: DatasetSpec, batch_size: int, workers: int, progress) -> np.ndarray:
    """The class log-likelihoods of the scorer's samples, ``(n, C)``, scored piece by piece: batches
    of samples for whole images, one class at a time for crops."""
    start, stop = scorer.start, scorer.stop
    if scorer.crop is None:
        pieces = [(i, min(i + batch_size, stop)) for i in range(start, stop, batch_size)]
        total = stop - start
    else:
        pieces = [(c, c + 1) for c in range(spec.n_classes)]
        total = spec.n_classes
    progress(0, total)
    blocks = []
    with closing(_score_pieces(scorer, pieces, workers)) as scored:
        for (_, end), block in zip(pieces, scored):
            blocks.append(block)
            progress(end - start if scorer.crop is None else end, total)
    return np.concatenate(blocks, axis=0 if scorer.crop is None else 1)
