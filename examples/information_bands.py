"""Where in the spectrum a scale's candidates differ: each radial frequency band's share of the
Kullback–Leibler divergence between the scale's two candidates, per image, with the other scales at
their candidates' mean spectrum. A head placed by the length scale reads the band near 1/length;
docs/results/generality.md uses this to explain why the Matérn kernels' coarsest scale is missed.

    python examples/information_bands.py                          # the default dataset, three kernels
    python examples/information_bands.py --scale 1 --size 256
"""
from __future__ import annotations

import argparse

import numpy as np

from msgp import spectral
from msgp.spec import DatasetSpec


def band_shares(spec: DatasetSpec, scale: int, edges: np.ndarray) -> np.ndarray:
    """Share of the divergence between ``scale``'s first two candidates in each band of ``edges``
    (cycles/pixel, radial)."""
    size, ndim = spec.size, spec.ndim
    radius = np.sqrt(sum(np.meshgrid(*[f ** 2 for f in spectral.frequencies(size, ndim)], indexing="ij")))
    power = {(s, v): a ** 2 * spectral.eigenvalues(spec.kernel, v, size, ndim)
             for s, (row, a) in enumerate(zip(spec.length_scales, spec.amplitudes)) for v in row}
    others = sum(np.mean([power[s, v] for v in row], axis=0)
                 for s, row in enumerate(spec.length_scales) if s != scale)
    ratio = (others + power[scale, spec.length_scales[scale][1]]) / (others + power[scale, spec.length_scales[scale][0]])
    divergence = spectral.half_weights(size, ndim) * (ratio - 1 - np.log(ratio))
    shares = np.array([divergence[(radius > lo) & (radius <= hi)].sum() for lo, hi in zip(edges, edges[1:])])
    return shares / divergence.sum()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", type=int, default=3)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--scale", type=int, default=-1, help="which scale (default: the coarsest)")
    args = parser.parse_args()
    edges = np.geomspace(1 / args.size, 0.71, 12)
    print("band (cycles/px): " + " ".join(f"{lo:.3f}-{hi:.3f}" for lo, hi in zip(edges, edges[1:])))
    for kernel in ("se", "matern52", "matern32"):
        spec = DatasetSpec.default(args.scales, args.size, kernel=kernel)
        scale = args.scale % spec.n_scales
        print(f"{kernel:>9}, scale {scale}: " + " ".join(f"{x:11.2f}" for x in band_shares(spec, scale, edges)))


if __name__ == "__main__":
    main()
