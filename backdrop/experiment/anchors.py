"""Two learners that are not networks, as fitted methods (:mod:`.methods`): anchors for how much
a network wastes of what its training images hold.

* :func:`whittle`: the spectral plug-in classifier. It knows that the fields are stationary,
  isotropic and Gaussian: each class's power spectrum is estimated from its training images,
  averaged over radial bins of ``|k|``, and a field is classified by the Whittle log-likelihood
  under each class's estimate (uniform prior); per-scale log-probabilities are the joint
  posterior marginalised over the other scales.
* :func:`scattering`: wavelet scattering (kymatio, the ``scattering`` extra) and, per scale, a
  logistic regression (scikit-learn) on the log of the spatially averaged coefficients: the
  standard small-sample texture learner. Coefficients are cached per image in the experiment's
  output directory, so the test images are transformed once per plan, not once per run.
"""
from __future__ import annotations

import hashlib
import importlib.util
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy import sparse
from scipy.special import log_softmax

from msgp import oracle, spectral
from msgp.atomic import atomic_open
from msgp.spec import DatasetSpec

Predict = Callable[[np.ndarray], np.ndarray]


# Inside this radius (in grid steps) every distinct |k| is its own bin; beyond it, unit-wide rings.
EXACT_SHELLS = 4


def radial_bins(size: int, ndim: int) -> np.ndarray:
    """Radial bin of every mode of the rfftn half grid, numbered outwards from the zero mode
    (alone in bin 0): one bin per distinct ``|k|`` up to :data:`EXACT_SHELLS` grid steps
    (``1/size``), then rings of unit width (``|k|`` rounded).

    A squared-exponential spectrum falls by a factor ``exp(4 pi^2 l^2 r / size^2)`` per grid step
    at radius ``r``: for a coarse scale, rounded ``|k|`` would pool modes whose power differs by
    half (``|k| = 1`` and ``sqrt 2`` at ``l = 8`` on 32 px), and exact shells everywhere would leave
    a few modes per bin at large ``|k|``; docs/methods.md gives the accuracies that chose this.
    """
    grids = np.meshgrid(*spectral.frequencies(size, ndim), indexing="ij")
    squared = np.rint(sum((g * size) ** 2 for g in grids)).astype(np.int64)  # |k|^2 in grid steps, exact
    rings = np.rint(np.sqrt(squared)).astype(np.int64)
    key = np.where(squared <= EXACT_SHELLS**2, squared, EXACT_SHELLS**2 + 1 + rings)
    return np.unique(key, return_inverse=True)[1].reshape(key.shape)


def _bin_matrix(spec: DatasetSpec) -> sparse.csr_matrix:
    """``(modes, bins)``: mode k's half-grid weight (how many full-grid modes it stands for) in the
    column of its radial bin; the zero mode is left out with ``normalize="sample"``, which
    removes it from every field."""
    bins = radial_bins(spec.size, spec.ndim).ravel()
    weights = spectral.half_weights(spec.size, spec.ndim).ravel().copy()
    if spec.normalize == "sample":
        weights[0] = 0.0
    return sparse.csr_matrix((weights, (np.arange(bins.size), bins)), shape=(bins.size, bins.max() + 1))


def _power(fields: np.ndarray, spec: DatasetSpec) -> np.ndarray:
    """``|X_k|^2`` of each field on the half grid, ``(n, modes)``; ``E|X_k|^2`` is the spectrum."""
    modes = spectral.analyze(fields, spec.ndim)
    return (modes.real**2 + modes.imag**2).reshape(len(fields), -1)


def whittle(fields: np.ndarray, labels: np.ndarray, spec: DatasetSpec) -> Predict:
    """Fit the spectral plug-in classifier: per class, the mean power of its training images in
    each radial bin of ``|k|`` (over the bin's full-grid modes, so a half-grid mode counts twice
    unless it is its own conjugate).

    The classifier's log-likelihood of a field under class ``c`` is the Whittle (Gaussian)
    likelihood over the full grid, ``-1/2 sum_k [log S_c(k) + |X_k|^2 / S_c(k)]`` (without the zero
    mode for ``normalize="sample"``), written on the half grid with its weights; ``predict``
    returns the per-scale log-marginals of the posterior ``(n, K, M)``.
    """
    labels = np.asarray(labels)
    missing = sorted(set(range(spec.n_classes)) - set(labels.tolist()))
    if missing:
        raise ValueError(f"the spectral classifier needs a training image of every class; class {missing[0]} has none")
    bins = _bin_matrix(spec)
    modes_per_bin = np.asarray(bins.sum(0)).ravel()
    binned = np.asarray(bins.T @ _power(fields, spec).T).T  # (n, bins): summed weighted power
    spectra = np.stack([binned[labels == c].mean(0) for c in range(spec.n_classes)])
    used = modes_per_bin > 0
    spectra, modes_per_bin = spectra[:, used], modes_per_bin[used]
    log_det = np.log(spectra / modes_per_bin) @ modes_per_bin  # (C,)
    inverse = modes_per_bin / spectra  # (C, bins): 1 / S_c per bin, S_c = mean power per mode

    def predict(test_fields: np.ndarray) -> np.ndarray:
        power = np.asarray(bins.T @ _power(test_fields, spec).T).T[:, used]  # summed weighted power
        log_lik = -0.5 * (log_det[None, :] + power @ inverse.T)
        return oracle.posterior_from_log_likelihoods(log_lik, spec).log_marginals

    return predict


# Wavelet scattering ------------------------------------------------------------------------------

def _import_kymatio():
    """``kymatio.torch``, importable with the current scipy.

    kymatio 0.3.0 imports ``scipy.special.sph_harm`` in its 3-D module (loaded by ``import
    kymatio.torch`` whatever the dimension), and scipy 1.17 removed that name in favour of
    ``sph_harm_y(n, m, theta, phi)``, the same function with its arguments reordered. Putting the
    old name back before the import is all kymatio needs.
    """
    import scipy.special

    if not hasattr(scipy.special, "sph_harm") and hasattr(scipy.special, "sph_harm_y"):
        def sph_harm(m, n, theta, phi):
            return scipy.special.sph_harm_y(n, m, phi, theta)

        scipy.special.sph_harm = sph_harm
    import kymatio.torch

    return kymatio.torch


def scattering_available() -> bool:
    try:
        _import_kymatio()
    except ImportError:
        return False
    return importlib.util.find_spec("sklearn") is not None


class ScatteringFeatures:
    """Log of the spatially averaged scattering coefficients of 1-D or 2-D fields, cached per image
    under ``cache`` (one ``.npy`` per image, named by a hash of its pixels and the transform's
    settings, written atomically) when it is given.

    ``J`` (the largest wavelet scale, ``2**J`` pixels) is at most 4 in 2-D (``L = 8`` angles) and
    8 in 1-D (``Q = 8`` wavelets per octave), and at most ``log2(size) - 2`` so that the averaged
    grid keeps at least 4 points per axis.
    """

    def __init__(self, spec: DatasetSpec, cache: Path | None = None):
        if spec.ndim not in (1, 2):
            raise ValueError(f"the scattering anchor handles 1-D and 2-D fields, not {spec.ndim}-D")
        kymatio = _import_kymatio()
        self.J = max(1, min(4 if spec.ndim == 2 else 8, int(math.log2(spec.size)) - 2))
        if spec.ndim == 2:
            self.transform = kymatio.Scattering2D(J=self.J, shape=(spec.size, spec.size), L=8)
            self.tag = f"2d-{spec.size}-J{self.J}-L8"
        else:
            # The low-pass's width T (kymatio's default 2**J) is capped at size / 8: a wider one
            # does not fit the signal and kymatio warns of border effects (from 256 samples on,
            # the cap avoids them; below 256 its Q = 8 filters are longer than the signal whatever
            # T is, and the warning stands). Against T = 2**J the features' logs move by a median
            # 0.01-0.03 (at 1024 and 256 samples; a few second-order ones by up to 1.5), where
            # they spread by about 1 between images.
            self.T = min(2 ** self.J, max(1, spec.size // 8))
            self.transform = kymatio.Scattering1D(J=self.J, shape=spec.size, Q=8, T=self.T)
            self.tag = f"1d-{spec.size}-J{self.J}-T{self.T}-Q8"
        self.ndim, self.cache = spec.ndim, None if cache is None else Path(cache) / self.tag

    def __call__(self, fields: np.ndarray) -> np.ndarray:
        import torch

        fields = np.ascontiguousarray(fields, dtype=np.float32)
        keys = [hashlib.sha256(f.tobytes()).hexdigest()[:32] for f in fields]
        out = [self._cached(k) for k in keys]
        todo = [i for i, v in enumerate(out) if v is None]
        for start in range(0, len(todo), 16):
            chunk = todo[start:start + 16]
            with torch.no_grad():
                coefficients = self.transform(torch.from_numpy(fields[chunk])).numpy()
            # (n, coefficients, *grid). The first coefficient (order 0) is the field's local mean,
            # of either sign and zero on average; the others are energies, whose grid mean's log
            # turns the image-to-image fluctuation of a component's amplitude into an offset.
            energies = coefficients[:, 1:].reshape(len(chunk), coefficients.shape[1] - 1, -1).mean(-1)
            features = np.log(energies + 1e-12)
            for i, value in zip(chunk, features):
                out[i] = value
                self._store(keys[i], value)
        return np.stack(out) if out else np.zeros((0, 0))

    def _cached(self, key: str) -> np.ndarray | None:
        if self.cache is None:
            return None
        try:
            return np.load(self.cache / f"{key}.npy")
        except (FileNotFoundError, ValueError, OSError):
            return None

    def _store(self, key: str, value: np.ndarray) -> None:
        if self.cache is None:
            return
        self.cache.mkdir(parents=True, exist_ok=True)
        with atomic_open(self.cache / f"{key}.npy", "wb") as f:
            np.save(f, value)


def scattering(fields: np.ndarray, labels: np.ndarray, spec: DatasetSpec, cache: Path | None = None) -> Predict:
    """Fit the scattering anchor: :class:`ScatteringFeatures`, standardised with the training
    images' mean and spread, and one L2-regularised multinomial logistic regression per scale
    (scikit-learn's defaults: C = 1) on that scale's choice; ``predict`` returns their
    log-probabilities ``(n, K, M)`` (a choice absent from the training images gets none of the
    probability mass but a floor)."""
    from sklearn.linear_model import LogisticRegression

    features = ScatteringFeatures(spec, cache)
    train = features(fields)
    mean, std = train.mean(0), train.std(0) + 1e-8
    choices = spec.choices(np.asarray(labels))
    models = []
    for s in range(spec.n_scales):
        if len(np.unique(choices[:, s])) < 2:
            models.append(int(choices[0, s]))  # every training image has one choice: nothing to regress
            continue
        models.append(LogisticRegression(max_iter=2000).fit((train - mean) / std, choices[:, s]))

    def predict(test_fields: np.ndarray) -> np.ndarray:
        x = (features(test_fields) - mean) / std
        out = np.full((len(x), spec.n_scales, spec.n_choices), math.log(1e-12))
        for s, model in enumerate(models):
            if isinstance(model, int):
                out[:, s, model] = 0.0
            else:
                # From the decision function: predict_log_proba takes the log of probabilities
                # that underflow to 0 (-inf) for images far from the boundary.
                scores = model.decision_function(x)
                if scores.ndim == 1:  # two choices: the logit of the second
                    scores = np.stack([np.zeros_like(scores), scores], axis=1)
                out[:, s, model.classes_] = log_softmax(scores, axis=1)
        out -= np.logaddexp.reduce(out, axis=-1, keepdims=True)
        return out

    return predict
