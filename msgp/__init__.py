"""msgp: exact multi-scale Gaussian-process texture datasets."""
__version__ = "0.1.0"

from .spec import DatasetSpec  # noqa: E402  (io reads __version__ above)

__all__ = ["DatasetSpec", "GeneratedDataset", "MSGPDataset", "split", "__version__"]


def __getattr__(name):
    # The dataset needs torch; importing it only when asked keeps `msgp generate` and its worker
    # processes from paying for torch.
    if name in ("GeneratedDataset", "MSGPDataset", "split"):
        from . import dataset

        return getattr(dataset, name)
    raise AttributeError(f"module 'msgp' has no attribute {name!r}")
