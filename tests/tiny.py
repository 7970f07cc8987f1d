"""The small two-scale dataset the trainer's tests share."""
from msgp.spec import DatasetSpec

LENGTHS = [[1.5, 4.0], [6.0, 16.0]]


def tiny_spec(**values) -> DatasetSpec:
    """Two well-separated scales on a 32-pixel grid."""
    return DatasetSpec(**{"n": 320, "length_scales": LENGTHS, "amplitudes": [1.0, 1.0], "size": 32, **values})
