"""msgp's files: write a dataset, open one, merge shards, check integrity, in one namespace.

The work is done in three modules, one concern each:

* :mod:`msgp.format`: the HDF5 layout (format version 1), opening a file to read it
  (:func:`open_file`, :func:`open_h5`, :func:`read_spec`), shards' ranges, sizes in bytes;
* :mod:`msgp.writer`: :func:`write`, which draws the samples (in worker processes, or on a GPU)
  into a new or a resumed file;
* :mod:`msgp.merge`: :func:`merge`, which joins shards into one file, and :func:`inspect`, the
  integrity check ``msgp info`` prints.

Their public names are gathered here, so ``from msgp import io`` is all a caller needs::

    io.write(spec, "data/msgp.h5")
    with io.open_file("data/msgp.h5") as (h5, spec):
        first = h5["fields"][0]

A problem with a file raises :class:`FileError` (a ``ValueError``), or its subclass
:class:`FormatError` for a file that is not a readable, complete msgp file; both derive from
:class:`MSGPError`, the base class of every error a user of msgp can cause.
"""
from .errors import FileError, FormatError, MSGPError, ReplacedFileError
from .format import (DEFAULT_PATH, check_output, file_id, human_bytes, new_file_id, open_file, open_h5, raw_rows,
                     read_spec, sample_bytes, shard_of, shard_range)
from .generate import BATCH_PIXELS
from .merge import inspect, merge
from .writer import WriteResult, create, write

__all__ = ["BATCH_PIXELS", "DEFAULT_PATH", "FileError", "FormatError", "MSGPError", "ReplacedFileError",
           "WriteResult", "check_output", "create", "file_id", "human_bytes", "inspect", "merge", "new_file_id",
           "open_file", "open_h5", "raw_rows", "read_spec", "sample_bytes", "shard_of", "shard_range", "write"]
