"""The two anchors that are not networks: the spectral plug-in (Whittle) classifier against the
exact oracle in 1-D, 2-D and 3-D, and wavelet scattering (skipped only where kymatio or
scikit-learn is not installed: the ``scattering`` extra, which CI need not install)."""
from __future__ import annotations

import csv
import json
import math
from dataclasses import replace

import numpy as np
import pytest

from backdrop import experiment
from backdrop.experiment import anchors, methods
from msgp import oracle, spectral
from msgp.generate import Sampler
from msgp.spec import DatasetSpec

needs_scattering = pytest.mark.skipif(
    not anchors.scattering_available(),
    reason="kymatio and scikit-learn (pip install -e '.[scattering]') are not installed")


def draw(spec: DatasetSpec, n: int, start: int = 0):
    batch = Sampler(spec).batch(start, start + n)
    return batch.fields, batch.labels


@pytest.mark.parametrize("ndim, size, lengths, n_train", [
    (1, 256, [[1.5, 2.0], [5.0, 8.0]], 8000),
    (2, 32, [[1.5, 2.0], [5.0, 8.0]], 4000),
    (3, 16, [[1.0, 1.5], [3.0, 5.0]], 1600),
])
def test_whittle_with_many_training_images_approaches_the_oracle(ndim, size, lengths, n_train):
    spec = DatasetSpec(n=n_train + 800, length_scales=lengths, amplitudes=[1.0, 1.0], size=size, ndim=ndim, seed=3)
    fields, labels = draw(spec, n_train)
    test_fields, test_labels = draw(spec, 800, start=n_train)
    log_probs = anchors.whittle(fields, labels, spec)(test_fields)
    methods.check_log_probs(log_probs, len(test_fields), spec, "whittle")
    truth = spec.choices(test_labels)
    ours = (log_probs.argmax(-1) == truth).all(1).astype(float)
    best = (oracle.predict(test_fields, spec).choices == truth).all(1).astype(float)
    # Paired on the same images: the difference's Monte Carlo standard error from the disagreements.
    gap = best.mean() - ours.mean()
    error = max((best - ours).std(ddof=1), 1.0 / len(ours)) / math.sqrt(len(ours))
    assert gap < 3 * error, (ours.mean(), best.mean(), error)
    assert ours.mean() > 1.0 / spec.n_classes + 5 * math.sqrt(0.25 / len(ours))  # far from chance


def test_whittle_bins_are_shells_covering_every_mode_with_its_full_grid_weight():
    for size, ndim in ((8, 1), (9, 2), (8, 3)):
        bins = anchors._bin_matrix(DatasetSpec(n=4, length_scales=[[1.0, 2.0]], amplitudes=[1.0], size=size,
                                               ndim=ndim, normalize="theory"))
        # Every full-grid mode counted once (the half grid's weights), the zero mode alone in bin 0.
        assert bins.sum() == size**ndim
        radial = anchors.radial_bins(size, ndim)
        assert radial.flat[0] == 0 and np.count_nonzero(radial == 0) == 1
        # Bins are shells: the modes of one bin have one |k| inside EXACT_SHELLS, |k| within 1/2 beyond.
        grids = np.meshgrid(*spectral.frequencies(size, ndim), indexing="ij")
        radius = np.sqrt(sum(g**2 for g in grids)) * size
        for b in np.unique(radial):
            r = radius[radial == b]
            assert np.ptp(r) < (1e-9 if r.max() <= anchors.EXACT_SHELLS else 1.0 + 1e-9)
    sample = DatasetSpec(n=4, length_scales=[[1.0, 2.0]], amplitudes=[1.0], size=8, normalize="sample")
    assert anchors._bin_matrix(sample).sum() == 8**2 - 1  # its zero mode is removed from every field


def test_whittle_refuses_a_class_without_training_images():
    spec = DatasetSpec(n=8, length_scales=[[1.0, 2.0]], amplitudes=[1.0], size=16)
    fields, _ = draw(spec, 4)
    with pytest.raises(ValueError, match="class 1 has none"):
        anchors.whittle(fields, np.zeros(4, dtype=int), spec)


@pytest.mark.slow
def test_whittle_runs_in_a_plan_beside_networks_and_the_oracle(tmp_path):
    plan = replace(experiment.smoke_plan(), methods=("no-backdrop", "whittle"))
    written = experiment.run_experiment(plan, tmp_path)
    assert "| whittle | 2 |" in written["results.md"].read_text()
    with open(written["comparisons.csv"], newline="") as f:
        rows = {(r["method"], r["reference"], r["accuracy"]) for r in csv.DictReader(f)}
    assert ("whittle", "no-backdrop", "joint") in rows
    # A fitted run records no epochs and the method it ran.
    assert (tmp_path / "runs" / "whittle-n2-s0" / "method.json").is_file()


def test_a_fitted_run_recorded_on_other_samples_is_refused(tmp_path):
    plan = replace(experiment.smoke_plan(), methods=("whittle",))
    experiment.run_experiment(plan, tmp_path)
    record = tmp_path / "runs" / "whittle-n2-s1" / "method.json"
    stored = json.loads(record.read_text())
    assert stored["train"]["data"] == plan.train_spec(1, 2).to_dict()
    stored["train"]["data"]["seed"] = 7  # as if the plan's training seeds had changed under this --out
    record.write_text(json.dumps(stored))
    with pytest.raises(experiment.ExperimentError, match="fitted run on other samples"):
        experiment.run_experiment(plan, tmp_path)


@needs_scattering
def test_kymatio_imports_with_the_current_scipy_and_the_stand_in_has_the_old_argument_order():
    import scipy.special

    anchors._import_kymatio()
    # sph_harm(m, n, azimuth, polar): Y_1^0 = sqrt(3 / 4 pi) cos(polar), whatever the azimuth.
    value = scipy.special.sph_harm(0, 1, 0.3, 0.7)
    assert value == pytest.approx(math.sqrt(3 / (4 * math.pi)) * math.cos(0.7), rel=1e-12)


@needs_scattering
def test_scattering_learns_and_caches_each_image_once(tmp_path):
    spec = DatasetSpec(n=64, length_scales=[[1.5, 4.0]], amplitudes=[1.0], size=32, seed=1)
    fields, labels = draw(spec, 24)
    test_fields, test_labels = draw(spec, 24, start=24)
    predict = anchors.scattering(fields, labels, spec, cache=tmp_path)
    log_probs = predict(test_fields)
    methods.check_log_probs(log_probs, len(test_fields), spec, "scattering")
    # Far from the decision boundary (every energy 1e8 times the training images'), a choice's
    # probability underflows float32's (the features' dtype) to 0; its log-probability stays finite.
    far = predict(test_fields[:2] * 1e4)
    methods.check_log_probs(far, 2, spec, "scattering")
    assert far.min() < math.log(np.finfo(np.float32).tiny)
    accuracy = (log_probs.argmax(-1) == spec.choices(test_labels)).mean()
    assert accuracy > 0.5 + 3 * math.sqrt(0.25 / len(test_fields)), accuracy  # well separated lengths
    cached = sorted(tmp_path.rglob("*.npy"))
    assert len(cached) == 50
    # The second time, every coefficient comes from the cache: the transform is not called.
    features = anchors.ScatteringFeatures(spec, cache=tmp_path)
    fresh = features(test_fields[:4])  # from the cache
    features.transform = None
    assert np.array_equal(features(test_fields[:4]), fresh)
    assert np.array_equal(fresh, anchors.ScatteringFeatures(spec)(test_fields[:4]))


@needs_scattering
def test_scattering_in_a_plan_transforms_each_image_once_across_seeds_and_sets(tmp_path, monkeypatch):
    """Each seed's generated training images, the validation set and the report set are cached by
    content: no two images share an entry, and the sets every run scores are transformed once per
    plan, not once per run."""
    stored = []
    store = anchors.ScatteringFeatures._store
    monkeypatch.setattr(anchors.ScatteringFeatures, "_store",
                        lambda self, key, value: (stored.append(key), store(self, key, value)))
    plan = replace(experiment.smoke_plan(), methods=("scattering",))
    experiment.run_experiment(plan, tmp_path)
    seeds, n_train = len(plan.seeds_at(2)), 2 * plan.spec.n_classes
    images = seeds * n_train + plan.n_validation + plan.n_test
    assert len(stored) == len(set(stored)) == images
    assert len(list((tmp_path / "cache").rglob("*.npy"))) == images
    for seed in range(seeds):
        result = experiment.read_result(tmp_path / "runs" / f"scattering-n2-s{seed}")
        assert result["data_seed"] == seed and result["n_validation"] == plan.n_validation
        assert result["n_test"] == plan.n_test and 0 <= result["test_accuracy"]["joint"] <= 1
    # A rerun of a scored run's sets computes nothing.
    (tmp_path / "runs" / "scattering-n2-s1" / "result.json").unlink()
    experiment.run_experiment(plan, tmp_path)
    assert len(stored) == images


@needs_scattering
def test_scattering_works_in_1d():
    spec = DatasetSpec(n=64, length_scales=[[1.5, 6.0]], amplitudes=[1.0], size=256, ndim=1, seed=2)
    fields, labels = draw(spec, 32)
    log_probs = anchors.scattering(fields, labels, spec)(fields)
    assert (log_probs.argmax(-1) == spec.choices(labels)).mean() > 0.9


@needs_scattering
@pytest.mark.parametrize("size", [256, 1024])
def test_1d_scattering_filters_fit_the_signal(size, recwarn):
    """kymatio warns of border effects when its low-pass is wider than the signal (as it was with
    T = 2**J at 256 samples); from 256 samples on the anchor's T keeps it quiet."""
    spec = DatasetSpec(n=8, length_scales=[[1.5, 6.0]], amplitudes=[1.0], size=size, ndim=1)
    features = anchors.ScatteringFeatures(spec)
    assert not [w for w in recwarn if "border effects" in str(w.message)]
    assert features.T <= size // 8
