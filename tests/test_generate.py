"""The generator: exact statistics, Fourier conventions, determinism, the HDF5 schema, the CLI."""
from __future__ import annotations

import errno
import itertools
import json
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

import cli
from msgp import io, spectral
from msgp.generate import Sampler
from msgp.kernels import KERNELS, get_kernel
from msgp.spec import DatasetSpec, SpecError, default_lengths

KERNEL_NAMES = sorted(KERNELS)


def small_spec(**values) -> DatasetSpec:
    """Two scales, two candidates each, on a 64-pixel grid."""
    return DatasetSpec(**{"n": 10, "length_scales": [[1.5, 2.0], [6.0, 9.0]], "amplitudes": [1.0, 2.0],
                          "size": 64, **values})


def dense_periodic_kernel(kernel: str, length: float, size: int, ndim: int) -> np.ndarray:
    """The periodised kernel matrix built in real space, independently of msgp.spectral:
    C[i, j] = sum over image shifts m of k(|x_i - x_j + m size|), normalised to unit variance."""
    k = get_kernel(kernel)
    points = np.array(list(itertools.product(range(size), repeat=ndim)), dtype=float)
    diff = points[:, None, :] - points[None, :, :]
    cov = np.zeros((len(points), len(points)))
    for shift in itertools.product(range(-6, 7), repeat=ndim):
        cov += k.covariance(np.linalg.norm(diff + size * np.asarray(shift), axis=-1), length)
    return cov / cov[0, 0]


# Fourier conventions --------------------------------------------------------------------------------

@pytest.mark.parametrize("size", [6, 7])
@pytest.mark.parametrize("kernel", KERNEL_NAMES)
def test_monte_carlo_covariance_matches_dense_periodic_kernel(size, kernel):
    """Entry by entry, on even and odd tiny grids: catches Hermitian-symmetry mistakes in drawing
    the half spectrum directly (they change the variance of the self-conjugate planes)."""
    n, length = 40000, 1.5
    rng = np.random.default_rng(1)
    root = np.sqrt(spectral.eigenvalues(kernel, length, size, 2))
    white = np.stack([spectral.white_spectrum(rng, size, 2) for _ in range(n)])
    x = spectral.synthesize(root * white, size, 2).reshape(n, -1)
    empirical = x.T @ x / n
    dense = dense_periodic_kernel(kernel, length, size, 2)
    # Var(x_i x_j) = C_ii C_jj + C_ij^2 for zero-mean Gaussians.
    standard_error = np.sqrt((1.0 + dense**2) / n)
    assert np.max(np.abs(empirical - dense) / standard_error) < 5.0


@pytest.mark.parametrize("size,ndim", [(6, 1), (7, 1), (6, 2), (5, 2), (4, 3), (5, 3)])
def test_white_spectrum_is_rfft_of_white_noise(size, ndim):
    rng = np.random.default_rng(2)
    n = 20000
    x = spectral.synthesize(np.stack([spectral.white_spectrum(rng, size, ndim) for _ in range(n)]), size, ndim)
    cov = np.cov(x.reshape(n, -1).T)
    assert np.max(np.abs(cov - np.eye(size**ndim))) < 5.0 * np.sqrt(2.0 / n)


def test_parseval_on_half_grid():
    rng = np.random.default_rng(3)
    for size, ndim in [(8, 1), (9, 2), (6, 3)]:
        x = rng.standard_normal((size,) * ndim)
        X = spectral.analyze(x, ndim)
        assert np.isclose(np.sum(spectral.half_weights(size, ndim) * np.abs(X) ** 2), np.sum(x**2))
        assert np.allclose(spectral.synthesize(X, size, ndim), x)


@pytest.mark.parametrize("kernel", KERNEL_NAMES)
@pytest.mark.parametrize("ndim", [1, 2])
def test_eigenvalues_equal_fft_of_dense_kernel_where_it_is_well_conditioned(kernel, ndim):
    size, length = 10, 1.3
    lam = spectral.eigenvalues(kernel, length, size, ndim)
    row = dense_periodic_kernel(kernel, length, size, ndim)[0].reshape((size,) * ndim)
    reference = np.fft.rfftn(row).real
    # An FFT of n terms rounds to n * eps of the sum of their sizes (the largest eigenvalue); the
    # tail eigenvalues below that are round-off in the reference, not in lam.
    n, eps = size**ndim, np.finfo(np.float64).eps
    assert np.allclose(lam, reference, rtol=1e-9, atol=n * eps * np.abs(row).sum())
    assert np.allclose(spectral.covariance_function(lam, size, ndim), row, rtol=0, atol=n * eps * np.abs(row).max())


def test_se_eigenvalues_keep_relative_precision_in_the_far_tail():
    """Where an FFT of the kernel returns round-off (~1e-16 of the peak), the periodised density
    still agrees with a direct lattice sum computed in log space to 1e-12 relative."""
    size, length = 64, 6.0
    lam = get_kernel("se").periodized_spectrum([np.fft.rfftfreq(size)], length)
    m = np.arange(-5, 6)[:, None]
    log_terms = np.log(np.sqrt(2 * np.pi) * length) - 2 * np.pi**2 * length**2 * (np.fft.rfftfreq(size)[None] + m) ** 2
    direct = np.exp(log_terms).sum(axis=0)
    assert lam[-1] < 1e-50  # far below what an FFT of the kernel can resolve
    assert np.allclose(lam, direct, rtol=1e-12, atol=0)


@pytest.mark.parametrize("kernel", ["matern32", "matern52"])
def test_matern_eigenvalues_match_a_long_direct_lattice_sum(kernel):
    size, length = 32, 5.0
    k = get_kernel(kernel)
    freq = np.fft.rfftfreq(size)
    lam = k.periodized_spectrum([freq], length)
    m = np.arange(-20000, 20001)[:, None]
    direct = k.spectral_density((freq[None] + m) ** 2, length, 1).sum(axis=0)
    # The truncated sum misses sum_{|m|>20000} S ~ 2 C (2 pi)^(-2p) M^(1-2p) / (2p-1): far below 1e-10.
    assert np.allclose(lam, direct, rtol=1e-10, atol=0)


def test_eigenvalues_have_unit_mean():
    for kernel in KERNEL_NAMES:
        for size, ndim in [(16, 1), (9, 2), (8, 3)]:
            lam = spectral.eigenvalues(kernel, 2.0, size, ndim)
            assert np.isclose(np.sum(spectral.half_weights(size, ndim) * lam), size**ndim)


# Statistics of generated samples --------------------------------------------------------------------

@pytest.mark.parametrize("kernel", KERNEL_NAMES)
@pytest.mark.parametrize("ndim,size,n", [(1, 64, 3000), (2, 24, 600), (3, 12, 300)])
def test_variance_and_autocorrelation_match_kernel(kernel, ndim, size, n):
    """One scale with two candidates; for the samples of each candidate the covariance at lags
    0, 1, 2, 4 along every axis matches the unit-variance periodic kernel within 5 Monte Carlo
    standard errors (per-sample averages are independent across samples)."""
    spec = DatasetSpec(n=n, length_scales=[[1.5, 3.0]], amplitudes=[1.0], size=size, ndim=ndim, kernel=kernel)
    batch = Sampler(spec).batch(0, n)
    x = batch.fields.astype(np.float64)
    for choice, length in enumerate(spec.length_scales[0]):
        samples = x[batch.labels == choice]
        row = dense_periodic_kernel(kernel, length, size, 1)[0] if ndim == 1 else None
        for lag in (0, 1, 2, 4):
            expected = _lag_covariance(kernel, length, size, lag, row)
            for axis in range(1, ndim + 1):
                per_sample = (samples * np.roll(samples, lag, axis=axis)).mean(axis=tuple(range(1, ndim + 1)))
                error = per_sample.std(ddof=1) / np.sqrt(len(per_sample))
                assert abs(per_sample.mean() - expected) < 5 * error, (choice, lag, axis)


def _lag_covariance(kernel, length, size, lag, row):
    """c(lag along one axis) of the unit-variance periodised kernel, from real-space image sums."""
    k = get_kernel(kernel)
    shifts = np.arange(-8, 9)
    if row is not None:
        return row[lag]
    # For ndim > 1 the lag vector is (lag, 0, ...); images along the other axes enter c(0) and c(lag).
    other = np.array(list(itertools.product(shifts * size, repeat=2)))
    def c(r):
        return sum(k.covariance(np.sqrt((r + m * size) ** 2 + np.sum(other**2, axis=1)), length).sum() for m in shifts)
    # The ratio is the same for ndim 2 and 3 up to images beyond two periods, negligible at these lengths.
    return c(lag) / c(0)


def test_sum_of_scales_has_the_sum_of_variances():
    spec = DatasetSpec(n=800, length_scales=[[1.5, 2.0], [5.0, 7.0]], amplitudes=[0.5, 1.5], size=32, noise=0.3)
    x = Sampler(spec).batch(0, spec.n).fields.astype(np.float64)
    per_sample = (x**2).mean(axis=(1, 2))
    expected = 0.5**2 + 1.5**2 + 0.3**2
    assert abs(per_sample.mean() - expected) < 5 * per_sample.std(ddof=1) / np.sqrt(spec.n)


def test_components_leave_fields_unchanged_and_sum_to_them():
    spec = DatasetSpec(n=200, length_scales=[[1.5, 2.0], [5.0, 7.0]], amplitudes=[0.5, 1.5], size=32, noise=0.2)
    plain = Sampler(spec).batch(0, spec.n)
    full = Sampler(spec.replace(save_components=True)).batch(0, spec.n)
    assert np.array_equal(plain.fields, full.fields)
    comps = full.components.astype(np.float64)
    residual = full.fields - (np.asarray(spec.amplitudes)[None, :, None, None] * comps).sum(axis=1)
    # What is left is the observation noise, of standard deviation 0.2.
    assert abs(residual.std() - 0.2) < 0.01
    per_sample = (comps**2).mean(axis=(2, 3))
    for s in range(2):
        assert abs(per_sample[:, s].mean() - 1) < 5 * per_sample[:, s].std(ddof=1) / np.sqrt(spec.n)


def test_normalize_sample_standardises_each_component():
    spec = DatasetSpec(n=20, length_scales=[[1.5, 2.0], [5.0, 7.0]], amplitudes=[0.5, 1.5], size=32,
                       normalize="sample", save_components=True)
    batch = Sampler(spec).batch(0, spec.n)
    comps = batch.components.astype(np.float64)
    assert np.allclose(comps.mean(axis=(2, 3)), 0, atol=1e-6)
    assert np.allclose(comps.std(axis=(2, 3)), 1, atol=1e-5)
    assert np.allclose(batch.fields, (np.asarray(spec.amplitudes)[None, :, None, None] * comps).sum(axis=1), atol=1e-5)


@pytest.mark.parametrize("n_classes_per_scale,n_scales", [(2, 3), (3, 2)])
def test_every_prefix_is_as_balanced_as_it_can_be(n_classes_per_scale, n_scales):
    lengths = [[1.5 * 4**s * (1 + 0.2 * c) for c in range(n_classes_per_scale)] for s in range(n_scales)]
    spec = DatasetSpec(n=100, length_scales=lengths, amplitudes=[1.0] * n_scales, size=128)
    labels = Sampler(spec).labels(0, 100)
    for prefix in range(1, 101):
        counts = np.bincount(labels[:prefix], minlength=spec.n_classes)
        assert counts.max() - counts.min() <= 1
    assert not np.array_equal(labels[: spec.n_classes], np.arange(spec.n_classes)) or \
        not np.array_equal(labels[spec.n_classes: 2 * spec.n_classes], np.arange(spec.n_classes))


def test_samples_depend_only_on_seed_index_and_parameters():
    spec = small_spec(n=20)
    sampler = Sampler(spec)
    whole = sampler.batch(0, 20)
    pieces = [sampler.batch(a, b) for a, b in [(0, 3), (3, 11), (11, 20)]]
    assert np.array_equal(whole.fields, np.concatenate([p.fields for p in pieces]))
    assert np.array_equal(whole.labels, np.concatenate([p.labels for p in pieces]))
    other = Sampler(spec.replace(seed=1)).batch(0, 20)
    assert not np.array_equal(whole.fields, other.fields)


# Spec and defaults ----------------------------------------------------------------------------------

def test_default_lengths_follow_the_paper_at_128():
    assert default_lengths(3, 128) == ((1.19, 1.25), (7.5, 10.0), (17.5, 25.0))
    assert default_lengths(2, 1024) == ((9.5, 10.0), (80.0, 140.0))
    for k in range(1, 6):
        spec = DatasetSpec.default(k, 128)
        assert spec.n_scales == k and spec.n_classes == 2**k


def test_spec_round_trips_through_attributes():
    spec = DatasetSpec(n=7, length_scales=[[1.5, 2.0, 2.5], [6, 8, 10]], amplitudes=[1, 2], size=32, ndim=3,
                       kernel="matern52", noise=0.1, normalize="sample", seed=5, dtype="float16",
                       compression="gzip", save_components=True)
    assert DatasetSpec.from_attrs(spec.to_attrs()) == spec
    assert spec.class_names[0] == "1.5-6" and spec.class_names[-1] == "2.5-10"


# HDF5 files -----------------------------------------------------------------------------------------

def test_first_samples_of_a_longer_run_are_bit_identical(tmp_path):
    spec = small_spec(n=10)
    io.write(spec, tmp_path / "a.h5")
    io.write(spec.replace(n=20), tmp_path / "b.h5")
    with h5py.File(tmp_path / "a.h5") as a, h5py.File(tmp_path / "b.h5") as b:
        for name in ("fields", "labels", "scale_labels"):
            assert np.array_equal(a[name][:], b[name][:10])


@pytest.mark.parametrize("dtype,compression,components", [("float32", None, False), ("float16", "gzip", True),
                                                          ("float32", "lzf", True)])
def test_schema(tmp_path, dtype, compression, components):
    spec = small_spec(n=9, dtype=dtype, compression=compression, save_components=components)
    io.write(spec, tmp_path / "d.h5")
    with h5py.File(tmp_path / "d.h5") as f:
        assert f["fields"].shape == (9, 64, 64) and f["fields"].dtype == np.dtype(dtype)
        assert f["fields"].chunks == (1, 64, 64)
        assert f["fields"].compression == compression
        assert f["labels"].dtype == np.int64 and f["labels"].shape == (9,)
        assert f["scale_labels"].dtype == np.uint8 and f["scale_labels"].shape == (9, 2)
        assert ("components" in f) == components
        if components:
            assert f["components"].shape == (9, 2, 64, 64)
        attrs = dict(f.attrs)
        for key in ("format", "format_version", "msgp_version", "ndim", "size", "kernel", "length_scales",
                    "amplitudes", "noise", "normalize", "seed", "n", "class_names", "complete"):
            assert key in attrs, key
        assert attrs["format"] == "msgp" and attrs["format_version"] == 1 and bool(attrs["complete"])
        assert attrs["length_scales"].shape == (2, 2) and attrs["amplitudes"].shape == (2,)
        assert list(attrs["class_names"]) == list(spec.class_names)
        assert np.array_equal(f["scale_labels"][:], spec.choices(f["labels"][:]))
    assert io.read_spec(tmp_path / "d.h5") == spec
    assert io.inspect(tmp_path / "d.h5")["ok"]


def test_interrupted_write_is_marked_incomplete(tmp_path):
    spec = small_spec(n=100)
    calls = []

    def stop_after_two_batches(k):
        calls.append(k)
        if len(calls) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        io.write(spec, tmp_path / "d.h5", batch_size=10, progress=stop_after_two_batches)
    report = io.inspect(tmp_path / "d.h5")
    assert not report["complete"] and report["n_written"] == 20 and not report["ok"]
    with pytest.raises(io.FormatError, match="incomplete"):
        io.read_spec(tmp_path / "d.h5", require_complete=True)
    result = CliRunner().invoke(cli.main, ["info", str(tmp_path / "d.h5")])
    assert result.exit_code == 1 and "INCOMPLETE" in result.output and "20 of 100" in result.output


def test_disk_filling_up_during_write_is_one_clean_error(tmp_path, monkeypatch):
    real_batch = Sampler.batch

    def failing(self, start, stop):
        if start >= 20:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_batch(self, start, stop)

    monkeypatch.setattr(Sampler, "batch", failing)
    result = CliRunner().invoke(cli.main, ["generate", "--lengths", "1.5,2;6,9", "--size", "64", "--n", "50",
                                           "--batch-size", "10", "--workers", "1", "-o", str(tmp_path / "d.h5")])
    assert result.exit_code == 2
    assert "no space left on device" in result.output and "Traceback" not in result.output
    assert not io.inspect(tmp_path / "d.h5")["complete"]


# CLI ------------------------------------------------------------------------------------------------

def test_generate_info_preview(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    result = runner.invoke(cli.main, ["generate", "--scales", "2", "--size", "128", "--n", "40"])
    assert result.exit_code == 0, result.output
    assert "data/msgp.h5" in result.output and "samples/s" in result.output
    assert (tmp_path / "data" / "msgp.h5").exists()
    assert result.output.count("class ") == 4
    info = runner.invoke(cli.main, ["info", "--json"])
    assert info.exit_code == 0
    report = json.loads(info.output)
    assert report["complete"] and report["ok"] and report["class_counts"] == [10, 10, 10, 10]
    text = runner.invoke(cli.main, ["info"])
    assert text.exit_code == 0 and "integrity     ok" in text.output
    shown = runner.invoke(cli.main, ["preview", "-o", "grid.png"])
    assert shown.exit_code == 0, shown.output
    assert (tmp_path / "grid.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_preview_without_matplotlib_is_one_line(tmp_path, monkeypatch):
    from msgp import plotting, preview

    def unavailable():
        raise plotting.PlotUnavailable("pictures need matplotlib: pip install 'msgp[plot]'")

    io.write(small_spec(), tmp_path / "d.h5")
    monkeypatch.setattr(preview, "pyplot", unavailable)
    result = CliRunner().invoke(cli.main, ["preview", str(tmp_path / "d.h5"), "-o", str(tmp_path / "g.png")])
    assert result.exit_code == 2 and result.output.strip() == "Error: pictures need matplotlib: pip install 'msgp[plot]'"


def test_an_interrupted_preview_leaves_the_old_picture(tmp_path, monkeypatch):
    import matplotlib.figure

    from msgp import preview

    io.write(small_spec(), tmp_path / "d.h5")
    picture = tmp_path / "g.png"
    picture.write_bytes(b"the old picture")

    def interrupted(fig, f, **kwargs):
        f.write(b"\x89PNG half")
        raise KeyboardInterrupt

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", interrupted)
    with pytest.raises(io.FileError, match="g.png already exists; pass `overwrite=True` to replace it"):
        preview.draw(tmp_path / "d.h5", picture)
    with pytest.raises(KeyboardInterrupt):
        preview.draw(tmp_path / "d.h5", picture, overwrite=True)
    assert picture.read_bytes() == b"the old picture"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.h5", "g.png"]


def test_lengths_amplitudes_and_preset_options(tmp_path):
    runner = CliRunner()
    out = tmp_path / "x.h5"
    result = runner.invoke(cli.main, ["generate", "--lengths", "1.5,2;6,9", "--amplitudes", "1,2", "--size", "32",
                                      "--n", "8", "--kernel", "matern32", "--ndim", "1", "-o", str(out)])
    assert result.exit_code == 0, result.output
    spec = io.read_spec(out)
    assert spec.length_scales == ((1.5, 2.0), (6.0, 9.0)) and spec.kernel == "matern32" and spec.ndim == 1
    result = runner.invoke(cli.main, ["generate", "--preset", "paper-2scale", "--size", "512", "--n", "4",
                                      "-o", str(tmp_path / "p.h5")])
    assert result.exit_code == 0, result.output
    spec = io.read_spec(tmp_path / "p.h5")
    assert spec.normalize == "sample" and spec.length_scales == ((9.5, 10.0), (80.0, 140.0)) and spec.size == 512


def test_cli_as_a_real_subprocess(tmp_path):
    executable = shutil.which("msgp")
    assert executable, "the msgp console script is not installed (pip install -e .)"
    out = tmp_path / "s.h5"
    done = subprocess.run([executable, "generate", "--size", "32", "--scales", "1", "--n", "6", "-o", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    bad = subprocess.run([executable, "generate", "--n", "0", "-o", str(tmp_path / "t.h5")],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0 and "Traceback" not in bad.stderr
    info = subprocess.run([sys.executable, "-m", "cli", "info", str(out)], capture_output=True, text=True, timeout=120)
    assert info.returncode == 0 and "integrity     ok" in info.stdout


def test_existing_output_is_not_overwritten_without_flag(tmp_path):
    out = tmp_path / "d.h5"
    args = ["generate", "--scales", "1", "--size", "32", "--n", "4", "-o", str(out)]
    assert CliRunner().invoke(cli.main, args).exit_code == 0
    before = out.read_bytes()
    result = CliRunner().invoke(cli.main, args + ["--seed", "3"])
    assert result.exit_code == 2 and "already exists; pass --overwrite" in result.output
    assert out.read_bytes() == before
    assert CliRunner().invoke(cli.main, args + ["--seed", "3", "--overwrite"]).exit_code == 0
    assert io.read_spec(out).seed == 3


def test_unwritable_directory_and_full_disk_are_refused_up_front(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = CliRunner().invoke(cli.main, ["generate", "--size", "32", "--scales", "1", "--n", "4",
                                           "-o", str(blocker / "sub" / "d.h5")])
    assert result.exit_code == 2 and "cannot create directory" in result.output
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9 - 1000, 1000))
    result = CliRunner().invoke(cli.main, ["generate", "--size", "32", "--scales", "1", "--n", "4",
                                           "-o", str(tmp_path / "d.h5")])
    assert result.exit_code == 2 and "not enough disk space" in result.output
    assert not (tmp_path / "d.h5").exists()


def test_spec_errors_name_the_bad_value():
    with pytest.raises(SpecError, match="got 7"):
        DatasetSpec(n=7, length_scales=[[1.5, 2]], amplitudes=[1], ndim=7)
