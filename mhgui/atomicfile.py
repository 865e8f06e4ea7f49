"""Replacing a file atomically: temp file in the same directory, fsync, rename, fsync the directory.

Shared by the app's own files (failover preferences, the failover journal) and the
privileged helper (mip6d.conf, steering state). A reader sees the old file or the
new one, never a part; after a crash the old one is still there.

The temp file is named ``.<name>.mhgui-tmp.<pid>.<8 random characters>.tmp``
(``pid``: the writing process) and is ``flock``-ed by its writer from its
creation until it is renamed or removed. A writer killed mid-write leaves it
behind: :func:`remove_stale_temp_files`, called where a writer starts, removes
those whose writer is gone (no live process with that pid, nobody holding the
lock), and nothing else.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import stat
import tempfile
from typing import BinaryIO, Callable, Iterable

__all__ = ["TEMP_MARK", "atomic_replace", "fsync_dir", "is_temp_name", "remove_stale_temp_files"]

log = logging.getLogger("mhgui.atomicfile")

#: Between the target's name and the writer's pid in every temp file's name.
TEMP_MARK = ".mhgui-tmp."
# mkstemp's random part: 8 of "abcdefghijklmnopqrstuvwxyz0123456789_"
_TEMP_RE = re.compile(r"\.(?P<base>.+)" + re.escape(TEMP_MARK) + r"(?P<pid>[1-9][0-9]{0,9})\.[a-z0-9_]{8}\.tmp\Z", re.S)


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
    OSError (and whatever ``write`` raises) propagates. The temp file is named and locked as the module
    docstring says, until it has been renamed over ``path``."""
    directory, base = os.path.split(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{base}{TEMP_MARK}{os.getpid()}.", suffix=".tmp", dir=directory or ".")
    try:
        with os.fdopen(fd, "wb") as f:
            with contextlib.suppress(OSError):  # (no flock on this file system: the pid alone then tells)
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.fchmod(f.fileno(), mode)
            if owner is not None:
                with contextlib.suppress(PermissionError):
                    os.fchown(f.fileno(), *owner)
            write(f)
            f.flush()
            os.fsync(f.fileno())
            os.replace(tmp, path)  # still open and locked: no cleaner takes it for a stale one first
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if sync_dir:
        fsync_dir(directory)


def is_temp_name(name: str, target: str | None = None) -> int | None:
    """The writer's pid when ``name`` is one of :func:`atomic_replace`'s temp file names (for a file
    named ``target``, when given), else None."""
    m = _TEMP_RE.match(name)
    if m is None or (target is not None and m.group("base") != target):
        return None
    return int(m.group("pid"))


def _process_gone(pid: int) -> bool:
    """No process ``pid`` in this pid namespace (a zombie counts as gone: its files are closed)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError):
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return False
    return data[data.rfind(b")") + 2: data.rfind(b")") + 3] in (b"Z", b"X")


def remove_stale_temp_files(directory: str, targets: Iterable[str] | None = None) -> list[str]:
    """Remove the temp files that killed writers of :func:`atomic_replace` left in ``directory``.

    Only names of the temp file pattern (for the file names in ``targets``,
    when given) are considered, and such a file is removed only when it is a
    regular file owned by this process's user, the pid in its name is not a
    live process, and no one holds its lock (a writer in another pid
    namespace). Never raises: a directory that cannot be read removes
    nothing, a file that cannot be removed is logged. Returns the removed
    paths. Blocking (a directory listing): not on the GUI thread.
    """
    wanted = set(targets) if targets is not None else None
    removed: list[str] = []
    try:
        names = os.listdir(directory or ".")
    except OSError as e:
        log.debug("no stale temp files removed from %s: %s", directory, e)
        return removed
    me = os.geteuid()
    for name in names:
        pid = is_temp_name(name)
        if pid is None or (wanted is not None and _TEMP_RE.match(name).group("base") not in wanted):  # type: ignore[union-attr]
            continue
        if not _process_gone(pid):
            continue
        path = os.path.join(directory, name)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
        except OSError:
            continue  # a symlink, gone already, not readable: not ours to judge
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_uid != me:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a live writer holds it
            except OSError:
                pass  # no flock here: the pid said it
            same = os.lstat(path)
            if (same.st_dev, same.st_ino) != (st.st_dev, st.st_ino):
                continue  # replaced meanwhile
            os.unlink(path)
            removed.append(path)
            log.info("removed %s, left by a writer (pid %d) that is gone", path, pid)
        except OSError as e:
            log.warning("cannot remove the stale temp file %s: %s", path, e.strerror or e)
        finally:
            os.close(fd)
    return removed
