"""The oracle: exact likelihoods against dense Gaussians, calibration, the rounding floor, crops,
normalize=sample, a learned baseline, and the CLI."""
from __future__ import annotations

import itertools
import json
import re

import numpy as np
import pytest
from click.testing import CliRunner
from scipy.optimize import minimize
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

import cli
from msgp import io, oracle, spectral
from msgp.generate import Sampler
from msgp.kernels import get_kernel
from msgp.spec import DatasetSpec


def periodic_kernel_function(kernel: str, length: float, size: int, diff: np.ndarray) -> np.ndarray:
    """Unit-variance periodised kernel at pixel offsets ``diff`` (..., ndim), summed in real space
    over image shifts, independently of msgp.spectral."""
    k = get_kernel(kernel)
    ndim = diff.shape[-1]
    total = np.zeros(diff.shape[:-1])
    zero = 0.0
    reach = 8 if ndim < 3 else 4  # enough images for 1e-9 of the Matérn tails at these sizes
    for shift in itertools.product(range(-reach, reach + 1), repeat=ndim):
        offset = size * np.asarray(shift, dtype=float)
        total += k.covariance(np.linalg.norm(diff + offset, axis=-1), length)
        zero += float(k.covariance(np.linalg.norm(offset), length))
    return total / zero


def dense_class_covariance(spec: DatasetSpec, label: int, pixels: int, floor: float) -> np.ndarray:
    """Covariance of the ``pixels^ndim`` corner of class ``label`` (the whole field when
    ``pixels == size``), built pixel pair by pixel pair."""
    points = np.array(list(itertools.product(range(pixels), repeat=spec.ndim)), dtype=float)
    diff = points[:, None, :] - points[None, :, :]
    cov = (spec.noise**2 + floor) * np.eye(len(points))
    for s, m in enumerate(spec.choices(label)):
        cov += spec.amplitudes[s] ** 2 * periodic_kernel_function(spec.kernel, spec.length_scales[s][m], spec.size, diff)
    return cov


def dense_log_likelihoods(fields, spec, pixels, floor):
    x = np.asarray(fields, dtype=np.float64).reshape(len(fields), -1)
    return np.stack([multivariate_normal(cov=dense_class_covariance(spec, c, pixels, floor)).logpdf(x)
                     for c in range(spec.n_classes)], axis=1)


def accuracy(predicted, true) -> float:
    return float(np.mean(predicted == true))


# Exact likelihoods ------------------------------------------------------------------------------

@pytest.mark.parametrize("ndim, size, kernel", [(1, 7, "se"), (1, 8, "matern32"), (2, 5, "se"), (2, 6, "se"),
                                                (2, 6, "matern52"), (3, 4, "se")])
def test_fourier_log_likelihood_equals_dense_gaussian(ndim, size, kernel):
    """Even and odd sizes: the half-grid weights and the real self-conjugate modes are right."""
    spec = DatasetSpec(n=6, length_scales=[[1.0, 1.4], [1.6, 2.0]], amplitudes=[1.0, 0.7], size=size,
                       ndim=ndim, kernel=kernel, noise=0.1)
    fields = Sampler(spec).batch(0, 6).fields
    model = oracle.FourierModel(spec)
    fourier = model.log_likelihoods(fields)
    dense = dense_log_likelihoods(fields, spec, size, model.floor)
    np.testing.assert_allclose(fourier, dense, rtol=1e-8)
    np.testing.assert_allclose(oracle.log_likelihoods(fields, spec), fourier, rtol=1e-12)


@pytest.mark.parametrize("ndim, size, crop", [(1, 16, 5), (2, 12, 4), (2, 9, 3)])
def test_crop_log_likelihood_equals_dense_gaussian(ndim, size, crop):
    spec = DatasetSpec(n=5, length_scales=[[1.0, 1.5], [3.0, 4.5]], amplitudes=[0.6, 1.2], size=size, ndim=ndim)
    fields = Sampler(spec).batch(0, 5).fields
    floor = oracle.crop_floor(spec, crop)
    corner = fields[(slice(None),) + (slice(0, crop),) * ndim]
    dense = dense_log_likelihoods(corner, spec, crop, floor)
    np.testing.assert_allclose(oracle.crop_log_likelihoods(fields, spec, crop), dense, rtol=1e-8)
    np.testing.assert_allclose(oracle.log_likelihoods(corner, spec, crop=crop), dense, rtol=1e-8)


def test_crop_of_whole_field_equals_fourier_likelihood():
    """A crop as large as the field is the whole torus: both methods must agree."""
    spec = DatasetSpec(n=4, length_scales=[[1.0, 1.5], [3.0, 4.0]], amplitudes=[0.6, 1.2], size=10,
                       kernel="matern52", noise=0.05)
    fields = Sampler(spec).batch(0, 4).fields
    floor = oracle.crop_floor(spec, spec.size)
    np.testing.assert_allclose(oracle.crop_log_likelihoods(fields, spec, spec.size),
                               oracle.log_likelihoods(fields, spec, floor=floor), rtol=1e-9)


# The rounding floor -----------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_rounding_floor_bounds_the_true_rounding_noise(dtype):
    spec = DatasetSpec(n=1, length_scales=[[2.0, 3.0]], amplitudes=[1.5], size=64, noise=0.1, dtype=dtype)
    x = np.random.default_rng(0).normal(0.0, np.sqrt(oracle.total_variance(spec)), 200_000)
    error = x.astype(dtype).astype(np.float64) - x
    ratio = np.mean(error**2) / oracle.rounding_floor(spec)
    # About 0.54 for a Gaussian (the mean of 1/mantissa^2); never above 1.
    assert 0.4 < ratio < 0.7


@pytest.mark.parametrize("lengths", [[[7.5, 10.0]], [[1.19, 1.25], [7.5, 10.0], [17.5, 25.0]]])
def test_raising_the_floor_does_not_move_the_results(lengths):
    amplitudes = [1.0] if len(lengths) == 1 else [0.5, 1.0, 2.0]
    spec = DatasetSpec(n=200, length_scales=lengths, amplitudes=amplitudes, size=128)
    fields = Sampler(spec).batch(0, 200).fields
    base = oracle.posteriors(fields, spec)
    for factor in (10.0, 1000.0):
        raised = oracle.posteriors(fields, spec, floor=factor * oracle.rounding_floor(spec))
        np.testing.assert_array_equal(oracle.decide(raised).labels, oracle.decide(base).labels)
        np.testing.assert_array_equal(oracle.decide(raised).choices, oracle.decide(base).choices)
        assert np.max(np.abs(raised.joint - base.joint)) < 0.02


def test_a_floor_below_the_rounding_noise_reads_it_as_signal():
    """One smooth SE scale: most modes hold only rounding noise. With the floor the oracle is
    perfect; with a floor 1e6 times too small it reads the rounding noise as the heavier-tailed
    (shorter) length's signal and falls to chance."""
    spec = DatasetSpec(n=200, length_scales=[[7.5, 10.0]], amplitudes=[1.0], size=128)
    batch = Sampler(spec).batch(0, 200)
    assert accuracy(oracle.predict(batch.fields, spec).labels, batch.labels) > 0.98
    too_low = oracle.predict(batch.fields, spec, floor=1e-6 * oracle.rounding_floor(spec))
    assert accuracy(too_low.labels, batch.labels) < 0.6


# Calibration and optimality ---------------------------------------------------------------------

def test_posterior_is_calibrated():
    """Mean max-posterior equals accuracy within 4 Monte Carlo standard errors: for a calibrated
    posterior, correct_i - confidence_i has mean 0 and variance confidence_i (1 - confidence_i)."""
    spec = DatasetSpec.default(5, 128, n=1000)
    batch = Sampler(spec).batch(0, 1000)
    prediction = oracle.predict(batch.fields, spec)
    true_choices = spec.choices(batch.labels)
    checks = [(prediction.labels == batch.labels, prediction.confidence)]
    checks += [(prediction.choices[:, s] == true_choices[:, s], prediction.scale_confidence[:, s])
               for s in range(spec.n_scales)]
    assert 0.6 < np.mean(checks[0][0]) < 0.9  # informative: neither trivial nor hopeless
    for correct, confidence in checks:
        stderr = np.sqrt(np.sum(confidence * (1.0 - confidence))) / len(correct)
        assert abs(np.mean(correct) - np.mean(confidence)) <= 4.0 * stderr + 1e-12


def log_radial_power(fields: np.ndarray, size: int) -> np.ndarray:
    """Log of the power averaged over rings of integer radius |k| size."""
    weights = spectral.half_weights(size, 2)
    power = (weights * np.abs(spectral.analyze(fields, 2)) ** 2).reshape(len(fields), -1)
    freqs = spectral.frequencies(size, 2)
    radius = np.hypot(freqs[0][:, None], freqs[1][None, :]).ravel() * size
    ring = np.minimum(np.rint(radius).astype(int), size // 2)
    counts = np.bincount(ring, weights=weights.ravel())
    return np.log(np.stack([np.bincount(ring, weights=row) / counts for row in power]))


def fit_logistic_regression(features, labels, n_classes, l2=1e-3):
    """Multinomial logistic regression by L-BFGS; returns a predict function."""
    n, d = features.shape

    def loss(theta):
        weights, bias = theta[:d * n_classes].reshape(d, n_classes), theta[d * n_classes:]
        logits = features @ weights + bias
        norm = logsumexp(logits, axis=1)
        residual = np.exp(logits - norm[:, None])
        residual[np.arange(n), labels] -= 1.0
        value = np.mean(norm - logits[np.arange(n), labels]) + 0.5 * l2 * np.sum(weights**2)
        gradient = np.concatenate([(features.T @ residual / n + l2 * weights).ravel(), residual.mean(axis=0)])
        return value, gradient

    theta = minimize(loss, np.zeros(d * n_classes + n_classes), jac=True, method="L-BFGS-B",
                     options={"maxiter": 2000}).x
    weights, bias = theta[:d * n_classes].reshape(d, n_classes), theta[d * n_classes:]
    return lambda f: (f @ weights + bias).argmax(axis=1)


def test_oracle_beats_logistic_regression_on_radial_power_spectra():
    spec = DatasetSpec(n=1600, length_scales=[[1.5, 1.65], [4.0, 5.0]], amplitudes=[1.0, 1.0], size=32)
    batch = Sampler(spec).batch(0, 1600)
    train, test = slice(0, 600), slice(600, 1600)
    features = log_radial_power(batch.fields, spec.size)
    mean, std = features[train].mean(axis=0), features[train].std(axis=0)
    features = (features - mean) / std
    learned = fit_logistic_regression(features[train], batch.labels[train], spec.n_classes)
    learned_accuracy = accuracy(learned(features[test]), batch.labels[test])
    oracle_accuracy = accuracy(oracle.predict(batch.fields[test], spec).labels, batch.labels[test])
    assert learned_accuracy > 0.5  # the baseline works ...
    assert oracle_accuracy > learned_accuracy + 0.02  # ... and the Bayes rule is better


# Crops ------------------------------------------------------------------------------------------

def periodic_treatment_log_likelihoods(crops: np.ndarray, spec: DatasetSpec) -> np.ndarray:
    """The wrong model: a crop treated as a periodic field of its own size."""
    size = crops.shape[-1]
    small = [[spectral.eigenvalues(spec.kernel, length, size, spec.ndim) for length in row]
             for row in spec.length_scales]
    weights = spectral.half_weights(size, spec.ndim)
    power = np.abs(spectral.analyze(crops, spec.ndim)) ** 2
    out = []
    for choices in spec.choices(np.arange(spec.n_classes)):
        lam = sum(spec.amplitudes[s] ** 2 * small[s][m] for s, m in enumerate(choices)) + oracle.rounding_floor(spec)
        out.append(-0.5 * np.sum(weights * (power / lam + np.log(lam)), axis=(-2, -1)))
    return np.stack(out, axis=1)


def test_crop_is_not_treated_as_periodic():
    spec = DatasetSpec.default(3, 128, n=400)
    batch = Sampler(spec).batch(0, 400)
    crop = 16
    crops = batch.fields[:, :crop, :crop]
    exact = oracle.crop_log_likelihoods(crops, spec, crop)
    periodic = periodic_treatment_log_likelihoods(crops, spec)
    coarse = spec.choices(batch.labels)[:, -1]
    exact_choice = oracle.decide(oracle.posterior_from_log_likelihoods(exact, spec)).choices[:, -1]
    periodic_choice = oracle.decide(oracle.posterior_from_log_likelihoods(periodic, spec)).choices[:, -1]
    assert not np.allclose(exact, periodic, rtol=0.1)
    assert accuracy(exact_choice, coarse) > 0.57
    assert accuracy(exact_choice, coarse) > accuracy(periodic_choice, coarse) + 0.05


def test_crop_loses_accuracy_at_the_coarse_scale():
    spec = DatasetSpec.default(3, 128, n=400)
    batch = Sampler(spec).batch(0, 400)
    coarse = spec.choices(batch.labels)[:, -1]
    whole = oracle.predict(batch.fields, spec).choices[:, -1]
    cropped = oracle.predict(batch.fields, spec, crop=16).choices[:, -1]
    assert accuracy(whole, coarse) > accuracy(cropped, coarse) + 0.15


def test_crop_limits():
    spec = DatasetSpec.default(3, 128, n=10)
    fields = np.zeros((1,) + spec.shape, np.float32)
    with pytest.raises(oracle.OracleError, match="larger than the field"):
        oracle.log_likelihoods(fields, spec, crop=129)
    with pytest.raises(oracle.OracleError, match="at most 4096 pixels"):
        oracle.log_likelihoods(fields, spec, crop=65)


# normalize="sample" -----------------------------------------------------------------------------

def test_sample_normalisation_is_handled_by_profile_likelihood():
    results = {}
    for normalize in ("theory", "sample"):
        spec = DatasetSpec.default(3, 128, n=400, normalize=normalize)
        batch = Sampler(spec).batch(0, 400)
        results[normalize] = accuracy(oracle.predict(batch.fields, spec).labels, batch.labels)
    chance = 1.0 / 8
    assert results["sample"] > chance + 0.6
    stderr = np.sqrt(sum(p * (1 - p) / 400 for p in results.values()))
    assert abs(results["sample"] - results["theory"]) < max(4.0 * stderr, 0.05)


def test_sample_profile_on_crops_keeps_the_fine_scale():
    """Most directions of a smooth crop hold only the floor; a fitted amplitude that also scaled
    the floor (the closed form Q/N) would be dragged far below 1 by them and misjudge the fine
    length. The paper-2scale pattern at 256 px, on 16-px crops."""
    spec = DatasetSpec(n=60, length_scales=[[2.375, 2.5], [20.0, 35.0]], amplitudes=[0.75, 1.25], size=256,
                       normalize="sample")
    batch = Sampler(spec).batch(0, 60)
    prediction = oracle.predict(batch.fields, spec, crop=16)
    fine = spec.choices(batch.labels)[:, 0]
    assert accuracy(prediction.choices[:, 0], fine) > 0.95


def test_profile_likelihood_ignores_the_overall_amplitude():
    """normalize=sample fits the amplitude: rescaling a field leaves the posterior alone (up to
    the unscaled rounding floor)."""
    spec = DatasetSpec.default(2, 128, n=20, normalize="sample")
    fields = Sampler(spec).batch(0, 20).fields.astype(np.float64)
    base = oracle.posteriors(fields, spec).log_joint
    # Log-posteriors reach about -1000; the floor left unscaled moves them by 4e-8 at most.
    np.testing.assert_allclose(oracle.posteriors(3.0 * fields, spec).log_joint, base,
                               atol=1e-9 * np.abs(base).max())


# Posteriors -------------------------------------------------------------------------------------

def test_marginal_posteriors_sum_out_the_other_scales():
    spec = DatasetSpec.default(3, 128, n=16)
    posterior = oracle.posteriors(Sampler(spec).batch(0, 16).fields, spec)
    np.testing.assert_allclose(posterior.joint.sum(axis=1), 1.0)
    np.testing.assert_allclose(posterior.marginals.sum(axis=2), 1.0)
    choices = spec.choices(np.arange(spec.n_classes))
    for s in range(spec.n_scales):
        np.testing.assert_allclose(posterior.marginals[:, s, 1], posterior.joint[:, choices[:, s] == 1].sum(axis=1))


# CLI --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    path = tmp_path_factory.mktemp("oracle") / "three.h5"
    io.write(DatasetSpec.default(3, 128, n=96), path)
    return path


def test_cli_human_output(dataset):
    result = CliRunner().invoke(cli.main, ["oracle", str(dataset), "--indices", "8:72"])
    assert result.exit_code == 0, result.output
    assert "samples 8:72 (64), whole image" in result.output
    assert "exact Gaussian likelihood" in result.output
    # The joint line carries its Wilson interval, not a Wald standard error.
    assert re.search(r"joint    \d+\.\d% \[\d+\.\d, \d+\.\d\]", result.output), result.output
    assert result.output.count("confusion, rows true, columns predicted") == 3


def test_cli_json(dataset):
    result = CliRunner().invoke(cli.main, ["oracle", str(dataset), "--crop", "16", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)  # the progress goes to stderr
    assert {"path", "start", "stop", "n", "crop", "class_names", "model", "floor", "joint", "scales"} <= set(report)
    assert report["n"] == 96 and report["crop"] == 16
    assert set(report["joint"]) == {"accuracy", "low", "high", "mean_confidence", "chance"}
    assert len(report["scales"]) == 3
    for scale in report["scales"]:
        assert {"length_scales", "accuracy", "low", "high", "mean_confidence", "chance", "confusion"} <= set(scale)
        assert scale["low"] <= scale["accuracy"] <= scale["high"]
        assert np.sum(scale["confusion"]) == 96


def test_cli_says_when_it_fits_the_amplitude(tmp_path):
    path = tmp_path / "sample.h5"
    io.write(DatasetSpec.default(2, 128, n=16, normalize="sample"), path)
    result = CliRunner().invoke(cli.main, ["oracle", str(path)])
    assert result.exit_code == 0, result.output
    assert "per-sample amplitude fitted by maximum likelihood" in result.output


def test_generate_ends_with_the_oracle_accuracy(tmp_path):
    result = CliRunner().invoke(cli.main, ["generate", "--scales", "2", "--n", "40", "-o", str(tmp_path / "g.h5")])
    assert result.exit_code == 0, result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("  oracle   joint") and "first 40 samples" in last
