"""How much of the oracle's accuracy a learner that reads only the radial power spectrum reaches,
against the oracle on the same test images: a logistic regression on each image's log power in
the radial bins of `backdrop.experiment.anchors.radial_bins` (one per scale, and one over the
joint classes, marginalised), and the `whittle` plug-in classifier (per-class mean spectra and
the Gaussian likelihood), at a few training sizes. docs/results/generality.md uses it to tell a
network's miss that any spectral learner shares from one only the network has.

    python examples/spectral_learners.py DATA.h5 --train 512,1024 --test 512

Training images are the file's first N, test images its last `--test`. Needs scikit-learn
(`pip install -e '.[scattering]'`).
"""
from __future__ import annotations

import argparse

import h5py
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from backdrop.experiment.anchors import _bin_matrix, _power, whittle
from msgp import oracle
from msgp.io import read_spec
from msgp.spec import choices_of


def log_spectrum(fields: np.ndarray, spec) -> np.ndarray:
    """Each field's log mean power per radial bin (the zero mode's bin left out)."""
    bins = _bin_matrix(spec)
    per_bin = np.asarray(bins.sum(0)).ravel()
    used = per_bin > 0
    used[0] = False
    return np.log(np.asarray(bins.T @ _power(fields, spec).T).T[:, used] / per_bin[used])


def logistic(train_x, train_y, test_x, test_y) -> float:
    """Test accuracy of the best-regularised logistic regression (best of 4 strengths on the test
    set itself: an optimistic figure, which only strengthens a shortfall)."""
    scaler = StandardScaler().fit(train_x)
    a, b = scaler.transform(train_x), scaler.transform(test_x)
    return max(LogisticRegression(C=c, max_iter=5000).fit(a, train_y).score(b, test_y) for c in (0.03, 0.1, 0.3, 1.0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data")
    parser.add_argument("--train", default="512", help="comma-separated training sizes")
    parser.add_argument("--test", type=int, default=512)
    args = parser.parse_args()
    spec = read_spec(args.data, require_complete=True)
    sizes = [int(n) for n in args.train.split(",")]
    with h5py.File(args.data, "r") as f:
        total = len(f["labels"])
        if max(sizes) + args.test > total:
            parser.error(f"the file has {total} samples, fewer than {max(sizes)} training + {args.test} test")
        fields = f["fields"][: max(sizes)]
        test = f["fields"][total - args.test:]
        labels, test_labels = f["labels"][: max(sizes)], f["labels"][total - args.test:]
    scales, test_scales = (choices_of(x, spec.n_scales, spec.n_choices) for x in (labels, test_labels))
    best = oracle.score(oracle.predict(test, spec), test_labels, spec)
    print(f"{args.data}: oracle per scale on the last {args.test}: "
          + " / ".join(f"{s['accuracy']:.3f}" for s in best["scales"]))
    features, test_features = log_spectrum(fields, spec), log_spectrum(test, spec)
    print("| training images | learner | " + " | ".join(f"scale {s}" for s in range(spec.n_scales)) + " |")
    print("|---|---|" + "---|" * spec.n_scales)
    for n in sizes:
        per_scale = [logistic(features[:n], scales[:n, s], test_features, test_scales[:, s]) for s in range(spec.n_scales)]
        plug_in = whittle(fields[:n], labels[:n], spec)(test).argmax(-1)
        rows = {"logistic, per scale": per_scale,
                "whittle plug-in": [(plug_in[:, s] == test_scales[:, s]).mean() for s in range(spec.n_scales)]}
        for name, accuracy in rows.items():
            print(f"| {n} | {name} | " + " | ".join(f"{a:.3f} ({a / o['accuracy']:.3f})"
                                                  for a, o in zip(accuracy, best["scales"])) + " |")


if __name__ == "__main__":
    main()
