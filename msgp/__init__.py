"""msgp: exact multi-scale Gaussian-process texture datasets."""
from .errors import MSGPError
from .version import __version__

__all__ = ["DatasetSpec", "GeneratedDataset", "MSGPDataset", "MSGPError", "split", "__version__"]

# Loaded on first access: `import msgp.errors` (which the torch-only backdrop layer does) must not
# pay for numpy, and `msgp generate` and its worker processes must not pay for torch.
_LAZY = {"DatasetSpec": "spec", "GeneratedDataset": "dataset", "MSGPDataset": "dataset", "split": "dataset"}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'msgp' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
