"""msgp: exact multi-scale Gaussian-process texture datasets."""
__version__ = "0.1.0"
