"""Atomic writes: every file the trainer and the experiment write goes through :func:`atomic_write`.

The content is written to a temporary file in the target's directory (same file system, so the
rename is atomic), flushed and fsynced, then renamed over the target with :func:`os.replace`. A
reader therefore sees the old file or the complete new one, never a half-written one, whatever
moment a kill lands on; a kill leaves at most a stray ``.NAME.*.tmp`` beside it.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kwargs) -> Iterator[IO]:
    """Open a temporary file beside ``path`` for writing; on a clean exit of the block it replaces
    ``path``, on an exception it is removed and ``path`` is left as it was.

    ``mode`` is ``"w"`` or ``"wb"``; ``kwargs`` go to :func:`open` (``newline=""`` for csv).
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes whole files, mode 'w' or 'wb', but got {mode!r}")
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with open(fd, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write(path: str | os.PathLike, data: str | bytes) -> None:
    """Write ``data`` (text or bytes) to ``path`` atomically."""
    with atomic_open(path, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)
