import pytest

from msgp import io
from tiny import tiny_spec


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """The tiny dataset (tests/tiny.py) written to a file, once per test module."""
    path = tmp_path_factory.mktemp("data") / "tiny.h5"
    io.write(tiny_spec(), path)
    return path
