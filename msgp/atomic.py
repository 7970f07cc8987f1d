"""Atomic writes: every file the trainer and the experiment write goes through :func:`atomic_write`.

The content is written to a temporary file in the target's directory (same file system, so the
rename is atomic), flushed and fsynced, then renamed over the target with :func:`os.replace`. A
reader therefore sees the old file or the complete new one, never a half-written one, whatever
moment a kill lands on; a kill leaves at most a stray ``.NAME.*.tmp`` beside it. The file gets the
permissions a plain ``open(path, "w")`` would give it: 0o666 less the umask (0644 under umask 022).
"""
from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from .errors import ArgumentError


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kwargs) -> Iterator[IO]:
    """Open a temporary file beside ``path`` for writing; on a clean exit of the block it replaces
    ``path``, on an exception it is removed and ``path`` is left as it was.

    ``mode`` is ``"w"`` or ``"wb"``; ``kwargs`` go to :func:`open` (``newline=""`` for csv).
    """
    if mode not in ("w", "wb"):
        raise ArgumentError(f"atomic_open writes whole files, mode 'w' or 'wb', but got {mode!r}")
    path = Path(path)
    fd, tmp = _create_beside(path)
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


def _create_beside(path: Path) -> tuple[int, Path]:
    """A new empty file ``.NAME.RANDOM.tmp`` beside ``path``, open for writing, and its path.

    Not :func:`tempfile.mkstemp`: its mode 0o600 survives the rename, so collaborators on a shared
    disk could not read the results. Created with mode 0o666, the kernel applies the umask (and a
    directory's default ACL) exactly as for any new file, with no process-wide ``os.umask`` call
    that another thread's files would see.
    """
    # O_EXCL: never an existing file (or a link planted under the name); O_BINARY (Windows only)
    # keeps the C runtime from translating newlines behind Python's own text layer.
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue


def atomic_write(path: str | os.PathLike, data: str | bytes) -> None:
    """Write ``data`` (text or bytes) to ``path`` atomically."""
    with atomic_open(path, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)
