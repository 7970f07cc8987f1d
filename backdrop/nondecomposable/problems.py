"""The two problems, each with a rare positive class and the exact log-likelihood ratio of its
samples, and the ceilings that ratio sets: the best achievable F1 and the exact ROC AUC.

The likelihood ratio is the Bayes-optimal score: thresholding it is the most powerful test at every
false-positive rate (Neyman–Pearson), so its ROC curve lies above every classifier's, which makes
its AUC the largest achievable, and the F1 of a classifier is a function of its (TPR, FPR) point,
increasing in TPR and decreasing in FPR, so the best F1 is reached on the ratio's ROC curve, at
one threshold. Both ceilings are computed on large class-conditional samples
(:func:`ceilings`), with their Monte Carlo standard errors.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch
from scipy.special import logsumexp

from msgp import spectral
from msgp.generate import Sampler
from msgp.oracle import FourierModel
from msgp.spec import DatasetSpec

from .losses import best_cut, f1_from_rates, roc_auc


@dataclass(frozen=True)
class Sample:
    """``n`` samples of one problem drawn together: inputs ``x`` (float32), labels ``y`` (0/1
    float32) and the exact log-likelihood ratio ``llr`` of each sample (float64 numpy)."""

    x: torch.Tensor
    y: torch.Tensor
    llr: np.ndarray


@dataclass(frozen=True)
class GaussianProblem:
    """Imbalanced binary classification of Gaussian features.

    Negatives are ``N(0, I)``; positives are ``N(mu, I + c P)``: shifted by ``shift`` along each of
    ``n_shift`` orthonormal directions and stretched by ``stretch`` along ``n_stretch`` others
    (``P`` their projector, ``c = stretch^2 - 1``), so the classes are not linearly separable. The
    directions are fixed by ``problem_seed``; samples of different streams are independent.
    """

    features: int = 40
    prior: float = 0.05
    n_shift: int = 8
    shift: float = 0.75
    n_stretch: int = 4
    stretch: float = 1.5
    problem_seed: int = 1000
    name: str = "gaussian"

    @cached_property
    def _geometry(self) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(self.problem_seed)
        basis, _ = np.linalg.qr(rng.standard_normal((self.features, self.features)))
        mu = self.shift * basis[:, :self.n_shift].sum(axis=1)
        return mu, basis[:, self.n_shift:self.n_shift + self.n_stretch]

    def sample_class(self, n: int, positive: bool, rng: np.random.Generator) -> np.ndarray:
        """``n`` samples of one class, float64 ``(n, features)``."""
        mu, directions = self._geometry
        z = rng.standard_normal((n, self.features))
        if not positive:
            return z
        return z + (self.stretch - 1.0) * (z @ directions) @ directions.T + mu

    def llr(self, x: np.ndarray) -> np.ndarray:
        """Exact ``log p(x | positive) - log p(x | negative)``, ``(n,)``."""
        mu, directions = self._geometry
        c = self.stretch**2 - 1.0
        d = x - mu
        along = d @ directions
        quadratic = (d * d).sum(axis=1) - c / (1.0 + c) * (along * along).sum(axis=1)
        return -0.5 * quadratic - 0.5 * self.n_stretch * math.log1p(c) + 0.5 * (x * x).sum(axis=1)

    def draw(self, n: int, stream: int) -> Sample:
        """``n`` samples with labels drawn at the prior, from random stream ``stream``."""
        rng = np.random.default_rng([self.problem_seed, stream])
        y = rng.random(n) < self.prior
        x = np.empty((n, self.features))
        x[y] = self.sample_class(int(y.sum()), True, rng)
        x[~y] = self.sample_class(int((~y).sum()), False, rng)
        return Sample(torch.from_numpy(x).float(), torch.from_numpy(y).float(), self.llr(x))

    def class_llr(self, n: int, positive: bool, stream: int) -> np.ndarray:
        """The log-likelihood ratio of ``n`` samples of one class (for the ceilings)."""
        rng = np.random.default_rng([self.problem_seed, stream, int(positive)])
        return np.concatenate([self.llr(self.sample_class(m, positive, rng)) for m in _chunks(n)])

    def describe(self) -> str:
        return (f"{self.features} Gaussian features, {self.prior:.0%} positives shifted by {self.shift} along "
                f"{self.n_shift} directions and stretched {self.stretch}x along {self.n_stretch} others")


@dataclass(frozen=True)
class MSGPProblem:
    """Is an msgp texture's coarse scale the rarer candidate length?

    Images are msgp fields of ``spec`` (two scales); the positive class is "the coarse scale has its
    second candidate length", drawn with probability ``prior``, and the fine scale's candidate is
    drawn uniformly, so it is a nuisance. :class:`msgp.oracle.FourierModel` gives each class's exact
    likelihood, and the log-likelihood ratio sums the fine scale out (its two candidates are equally
    likely in both classes).

    The network sees each image's power spectrum averaged over ``bins`` rings of equal width in
    radial frequency (the corners beyond Nyquist join the last ring), each ring's divided by its
    expected value over all classes. The kernels are isotropic, so a class's log-likelihood is a
    linear function of the image's power at each radial frequency: the rings lose only what
    averaging neighbouring radii together loses, and the ceilings, which use the whole image,
    bound the networks from above.
    """

    spec: DatasetSpec = DatasetSpec(n=1, length_scales=((1.5, 2.0), (3.5, 6.0)), amplitudes=(1.0, 1.0),
                                    size=32, seed=2026)
    prior: float = 0.08
    bins: int = 16
    name: str = "msgp"

    @cached_property
    def _models(self) -> tuple[Sampler, FourierModel, np.ndarray]:
        coarse = self.spec.choices(np.arange(self.spec.n_classes))[:, -1]
        return Sampler(self.spec), FourierModel(self.spec), coarse

    def _fields(self, y: np.ndarray, stream: int) -> tuple[np.ndarray, np.ndarray]:
        """Fields of labels ``y`` (positive: coarse candidate 1) from stream ``stream``, with their llr."""
        sampler, model, coarse = self._models
        rng = np.random.default_rng([self.spec.seed, stream])
        choices = np.stack([rng.integers(0, self.spec.n_choices, len(y)), y.astype(int)], axis=1)
        labels = self.spec.labels(choices)
        # Sample indices of disjoint streams never meet: each stream owns 2^32 indices.
        indices = (np.int64(stream) << 32) + np.arange(len(y), dtype=np.int64)
        fields = sampler.fields(indices, labels)
        ll = model.log_likelihoods(fields)
        llr = logsumexp(ll[:, coarse == 1], axis=1) - logsumexp(ll[:, coarse == 0], axis=1)
        return fields, llr

    def draw(self, n: int, stream: int) -> Sample:
        y = np.random.default_rng([self.spec.seed, stream, 1]).random(n) < self.prior
        fields, llr = self._fields(y, stream)
        return Sample(torch.from_numpy(self.ring_power(fields)).float(), torch.from_numpy(y).float(), llr)

    def ring_power(self, fields: np.ndarray) -> np.ndarray:
        """``(n, bins)``: each image's mean power on each ring of radial frequency, over its expectation."""
        size, ndim = self.spec.size, self.spec.ndim
        radius = np.sqrt(sum(f**2 for f in np.meshgrid(*spectral.frequencies(size, ndim), indexing="ij")))
        ring = np.minimum((radius / 0.5 * self.bins).astype(int), self.bins - 1).ravel()
        weights = spectral.half_weights(size, ndim).ravel()
        spectra = spectral.analyze(fields, ndim).reshape(len(fields), -1)
        power = (spectra.real**2 + spectra.imag**2) * weights
        # One matrix product sums each image's weighted power over every ring.
        rings = np.zeros((len(weights), self.bins))
        rings[np.arange(len(weights)), ring] = 1.0
        _, model, _ = self._models
        expected = ((model.signal + model.white).mean(axis=0) * weights) @ rings
        return (power @ rings) / expected

    def class_llr(self, n: int, positive: bool, stream: int) -> np.ndarray:
        """The log-likelihood ratio of ``n`` samples of one class (for the ceilings), drawn in chunks,
        chunk ``i`` from stream ``256 stream + 2 i + positive``: the ceilings' streams 7 and 8 share
        no sample with the plans' training and test streams (all below 1792)."""
        return np.concatenate([self._fields(np.full(m, positive), (stream << 8) + 2 * i + int(positive))[1]
                               for i, m in enumerate(_chunks(n, 20_000))])

    def describe(self) -> str:
        lengths = self.spec.length_scales
        return (f"{self.spec.size}² msgp textures, fine length {lengths[0][0]:g} or {lengths[0][1]:g} px (uniform), "
                f"positive when the coarse length is {lengths[1][1]:g} px rather than {lengths[1][0]:g} "
                f"({self.prior:.0%} of samples)")


def _chunks(n: int, size: int = 100_000) -> list[int]:
    """Sizes of the chunks that ``n`` samples are drawn in, to bound the memory of one draw."""
    return [min(size, n - start) for start in range(0, n, size)]


def ceilings(problem, n: int, stream: int = 7) -> dict[str, float]:
    """The best achievable F1 and the exact AUC of ``problem``, with Monte Carlo standard errors.

    Two independent samples of ``n`` per class: the F1-optimal threshold of the log-likelihood
    ratio is chosen on the first and its F1 is measured on the second, so the estimate is unbiased
    for that threshold's F1 (which is within second order of the optimum, the F1 curve being flat
    there); its standard error is the delta method's on the two rates. The AUC is the Mann–Whitney
    statistic of both samples together, with DeLong's standard error.

    Returns ``{"f1", "f1_se", "threshold", "auc", "auc_se", "n_per_class"}``.
    """
    pos_a, neg_a = problem.class_llr(n, True, stream), problem.class_llr(n, False, stream)
    pos_b, neg_b = problem.class_llr(n, True, stream + 1), problem.class_llr(n, False, stream + 1)
    threshold = best_rate_threshold(pos_a, neg_a, problem.prior)
    tpr, fpr = float((pos_b > threshold).mean()), float((neg_b > threshold).mean())
    f1, f1_se = f1_from_rates(tpr, fpr, problem.prior, n, n)
    auc, auc_se = roc_auc(np.concatenate([pos_a, pos_b]), np.concatenate([neg_a, neg_b]), standard_error=True)
    return {"f1": f1, "f1_se": f1_se, "threshold": float(threshold), "auc": auc, "auc_se": auc_se,
            "n_per_class": 2 * n}


def best_rate_threshold(positive: np.ndarray, negative: np.ndarray, prior: float) -> float:
    """The threshold on class-conditional scores that maximises the population F1 at ``prior``."""
    scores = np.concatenate([positive, negative])
    order = np.argsort(-scores, kind="stable")
    is_pos = np.concatenate([np.ones(len(positive)), np.zeros(len(negative))])[order]
    tpr = np.cumsum(is_pos) / len(positive)
    fpr = np.cumsum(1 - is_pos) / len(negative)
    return best_cut(scores[order], 2 * prior * tpr / (prior * tpr + prior + (1 - prior) * fpr))
