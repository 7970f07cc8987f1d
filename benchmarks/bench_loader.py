"""Training-loader throughput: MSGPDataset against a numpy.memmap of the same raw float32 bytes.

Both go through the same DataLoader settings (batch_size=64, shuffle=True: random access, as in
training; persistent workers, after one warm-up epoch), in interleaved rounds, and return the
same items: a (1, size, size) float32 tensor and an int label. The files are in the page cache,
so this measures the per-sample cost of each reader, not the disk.

    python benchmarks/bench_loader.py                       # 256², 1024 samples, workers 0 and 2
    python benchmarks/bench_loader.py --size 128 --n 4096
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

from msgp import MSGPDataset, io
from msgp.spec import DatasetSpec


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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--n", type=int, default=1024)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        spec = DatasetSpec.default(3, args.size, n=args.n)
        path = io.write(spec, folder / "data.h5", workers=os.cpu_count()).path
        with io.open_file(path) as (f, _):
            fields, labels = f["fields"][:], f["labels"][:]
        raw = folder / "fields.f32"
        fields.tofile(raw)
        del fields
        datasets = {"numpy.memmap": MemmapDataset(raw, labels, spec.shape), "MSGPDataset": MSGPDataset(path)}
        print(f"{args.n} samples of {args.size}², float32, DataLoader(batch_size=64, shuffle=True), "
              f"torch {torch.__version__}, {os.cpu_count()} cores\n")
        print("| size | num_workers | numpy.memmap samples/s | MSGPDataset samples/s | ratio |")
        print("|---|---:|---:|---:|---:|")
        for workers in args.workers:
            loaders = {name: DataLoader(ds, batch_size=64, shuffle=True, num_workers=workers,
                                        persistent_workers=workers > 0) for name, ds in datasets.items()}
            rates = {name: [] for name in loaders}
            for loader in loaders.values():
                epoch_rate(loader)  # warm-up: worker start, page cache, HDF5 metadata
            for _ in range(args.rounds):
                for name, loader in loaders.items():
                    rates[name].append(epoch_rate(loader))
            base, ours = (statistics.median(rates[name]) for name in ("numpy.memmap", "MSGPDataset"))
            print(f"| {args.size}² | {workers} | {base:,.0f} | {ours:,.0f} | {ours / base:.2f} |")
            del loaders


if __name__ == "__main__":
    main()
