"""Training-loader throughput: MSGPDataset and GeneratedDataset against a numpy.memmap.

The three return the same items, a (1, size, size) float32 tensor and an int label: the memmap
and MSGPDataset read the same samples (raw float32 bytes; the HDF5 file), GeneratedDataset draws
them. All go through the same DataLoader settings (shuffle=True: random access, as in training;
batches of 64 images, fewer at large sizes, at most 16 Mpixels; persistent workers, after one
warm-up epoch), in interleaved rounds. The files are in the page cache, so this measures the
per-sample cost of each reader, not the disk. Beside them: the images/s a training step of
`msgp train`'s default network consumes at that size (benchmarks/bench_train.py's step, with
backdrop), in this process with --threads torch threads.

By default each size writes and reads about the same bytes: 1024 samples at 128², fewer at larger
sizes; --n sets the samples at every size.

    python benchmarks/bench_loader.py                       # 128² and 1024², workers 0 and 2
    python benchmarks/bench_loader.py --sizes 256 --n 1024  # the earlier default: 1024 samples of 256²
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from bench_train import step_fn
from msgp import GeneratedDataset, MSGPDataset, io
from msgp.spec import DatasetSpec

BATCH_PIXELS = 2**24  # a DataLoader batch holds at most this many pixels (16 images of 1024²)


class MemmapDataset(Dataset):
    """The baseline: fields from a raw float32 file, opened lazily per process like MSGPDataset."""

    def __init__(self, path: Path, labels: np.ndarray, shape: tuple[int, ...]):
        self.path, self.labels, self.shape = path, labels, shape
        self._array = None

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        if self._array is None:
            self._array = np.memmap(self.path, np.float32, "r", shape=(len(self.labels),) + self.shape)
        return torch.from_numpy(np.array(self._array[i])).unsqueeze(0), int(self.labels[i])

    def __getstate__(self):
        return {**self.__dict__, "_array": None}


def epoch_rate(loader: DataLoader) -> float:
    start, done = time.perf_counter(), 0
    for fields, _ in loader:
        done += len(fields)
    return done / (time.perf_counter() - start)


def training_rate(size: int, seconds: float) -> float:
    """Images/s that training steps of the default network with backdrop consume at ``size``."""
    batch = min(16, max(1, 2**21 // size**2))  # msgp train's 16 images, fewer where memory needs it
    run = step_fn(size, "backdrop", batch, crop=size)
    run()  # warm-up: allocator, oneDNN primitives
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        done += run()
    return done / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 1024])
    parser.add_argument("--n", type=int, help="samples at every size (default: 1024 x 128²/size²)")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--train-seconds", type=float, default=3.0, help="time the training steps run, per size")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(),
                        help="torch threads of the training step")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    print(f"DataLoader(shuffle=True), float32, torch {torch.__version__}, {os.cpu_count()} cores, training with "
          f"{args.threads} threads; samples/s, the median of {args.rounds} rounds\n")
    print("| size | samples | batch | num_workers | numpy.memmap | MSGPDataset (HDF5) | GeneratedDataset "
          "| generated / HDF5 | training consumes | generated / training |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for size in args.sizes:
        batch = min(64, max(1, BATCH_PIXELS // size**2))
        n = args.n or max(2 * batch, 1024 * 128**2 // size**2)
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            spec = DatasetSpec.default(3, size, n=n)
            path = io.write(spec, folder / "data.h5", workers=os.cpu_count()).path
            with io.open_file(path) as (f, _):
                fields, labels = f["fields"][:], f["labels"][:]
            raw = folder / "fields.f32"
            fields.tofile(raw)
            del fields
            datasets = {"numpy.memmap": MemmapDataset(raw, labels, spec.shape), "MSGPDataset": MSGPDataset(path),
                        "GeneratedDataset": GeneratedDataset(spec)}
            consumed = training_rate(size, args.train_seconds)
            for workers in args.workers:
                loaders = {name: DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers,
                                            persistent_workers=workers > 0) for name, ds in datasets.items()}
                rates = {name: [] for name in loaders}
                for loader in loaders.values():
                    epoch_rate(loader)  # warm-up: worker start, page cache, HDF5 metadata, spectra
                for _ in range(args.rounds):
                    for name, loader in loaders.items():
                        rates[name].append(epoch_rate(loader))
                memmap, hdf5, generated = (statistics.median(r) for r in rates.values())
                print(f"| {size}² | {n} | {batch} | {workers} | {memmap:,.0f} | {hdf5:,.0f} | {generated:,.0f} "
                      f"| {generated / hdf5:.2f} | {consumed:,.1f} | {generated / consumed:.1f} |", flush=True)
                del loaders


if __name__ == "__main__":
    main()
