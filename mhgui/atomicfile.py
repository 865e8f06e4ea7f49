"""Replacing a file atomically: temp file in the same directory, fsync, rename, fsync the directory.

Shared by the app's own files (failover preferences, the failover journal) and the
privileged helper (mip6d.conf, steering state). A reader sees the old file or the
new one, never a part; after a crash the old one is still there.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from typing import BinaryIO, Callable

__all__ = ["atomic_replace", "fsync_dir"]


def fsync_dir(directory: str) -> None:
    """fsync ``directory`` (makes a rename in it durable). Raises OSError."""
    fd = os.open(directory or ".", os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_replace(path: str, write: Callable[[BinaryIO], object], mode: int = 0o644,
                   owner: tuple[int, int] | None = None, *, sync_dir: bool = True) -> None:
    """Replace ``path`` with what ``write(binary file)`` writes, with ``mode`` (and ``owner`` (uid, gid),
    when the caller may set it). On any failure the temp file is removed and ``path`` is untouched;
    OSError (and whatever ``write`` raises) propagates."""
    directory, base = os.path.split(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=".tmp", dir=directory or ".")
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            if owner is not None:
                with contextlib.suppress(PermissionError):
                    os.fchown(f.fileno(), *owner)
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if sync_dir:
        fsync_dir(directory)
