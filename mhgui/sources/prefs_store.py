"""Reading and writing ``$XDG_CONFIG_HOME/mhgui/failover.toml`` (file I/O adapter for :mod:`mhgui.core.prefsfile`).

Blocking functions :func:`load_prefs` and :func:`save_prefs`, and their
coroutines :func:`load_prefs_async` and :func:`save_prefs_async`, which run
them in the event loop's default executor. The GUI uses only the coroutines:
the file is small, but ``fsync`` (of the file and of the directory) can take
seconds on a busy or network-mounted home directory.

Loading never raises: a missing file is "no preferences yet"; anything else
that cannot be used (not a regular file, a FIFO, a directory, too large, not
UTF-8, not TOML, bad values) gives the defaults or what could be read, and one
problem line each, naming the file (and the line).

Saving is atomic: the new text goes to a temporary file in the same
directory, which is fsync'ed and renamed over the file, then the directory is
fsync'ed; a reader sees the old file or the new one, never a mix. The previous
version is kept as ``failover.toml.bak`` (written the same way); when the
previous version had problems that lose something on reading (it would not be
written back as it was), it is also kept as ``failover.toml.broken``, which a
later save does not overwrite with a good file. A symlinked file is updated
at its target. Something other than a regular file in the file's place is
never replaced: :class:`PrefsStoreError`.
"""

from __future__ import annotations

import asyncio
import functools
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from ..atomicfile import atomic_replace, fsync_dir, remove_stale_temp_files
from ..core.prefsfile import FailoverSettings, ParsedPrefs, parse_prefs, render_prefs
from ..i18n import _
from .config import config_dir

__all__ = [
    "FILE_NAME",
    "LoadedPrefs",
    "MAX_PREFS_BYTES",
    "PrefsStoreError",
    "SavedPrefs",
    "load_prefs",
    "load_prefs_async",
    "prefs_path",
    "save_prefs",
    "save_prefs_async",
]

FILE_NAME = "failover.toml"
#: the file is a few hundred bytes; anything over this is refused rather than read into memory
MAX_PREFS_BYTES = 1 << 20


def prefs_path() -> Path:
    """``$XDG_CONFIG_HOME/mhgui/failover.toml`` (default ``~/.config/mhgui/failover.toml``)."""
    return config_dir() / FILE_NAME


class PrefsStoreError(Exception):
    """The file could not be written; ``str()`` is one line naming the file. The file is unchanged."""


@dataclass(frozen=True)
class LoadedPrefs:
    """What :func:`load_prefs` found.

    ``settings``: what the file says (None when there is no file, or when nothing
    could be read from it); ``problems``: one line each (``PATH:LINE: message``);
    ``exists``: something is at the path; ``lossy``: a problem means saving
    would not write back what the file says (see :attr:`ParsedPrefs.lossy`).
    """

    path: str
    settings: FailoverSettings | None = None
    problems: tuple[str, ...] = ()
    exists: bool = False
    lossy: bool = False


@dataclass(frozen=True)
class SavedPrefs:
    """Where :func:`save_prefs` wrote: the file, its ``backup`` (None: there was no previous file)
    and ``broken`` (the previous file also kept there because it had problems), and the text written."""

    path: str
    backup: str | None
    broken: str | None
    text: str


class _Unusable(Exception):
    """The file is there but cannot be read as text; ``str()`` is the reason."""


def _read_text(path: str) -> str:
    """The file's text (blocking). Raises ``OSError`` or :class:`_Unusable`.

    Opened non-blocking and checked with ``fstat`` on the open descriptor, so a
    FIFO put in the file's place never blocks and a swap between a check and the
    open cannot fool it.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise _Unusable(_("is a directory, not a file"))
        if not stat.S_ISREG(st.st_mode):
            raise _Unusable(_("is not a regular file (a FIFO, socket or device)"))
        if st.st_size > MAX_PREFS_BYTES:
            raise _Unusable(_("is too large ({size} bytes; at most {max})").format(size=st.st_size, max=MAX_PREFS_BYTES))
        chunks, size = [], 0
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            size += len(chunk)
            if size > MAX_PREFS_BYTES:
                raise _Unusable(_("is too large (over {max} bytes)").format(max=MAX_PREFS_BYTES))
            chunks.append(chunk)
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]  # a byte order mark is harmless here
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise _Unusable(_("line {line}: is not UTF-8 text (byte 0x{byte})").format(
            line=line, byte=f"{data[e.start]:02x}")) from None


def _parse_file(path: str) -> tuple[ParsedPrefs | None, str | None]:
    """(parsed, None) or (None, why it cannot be read); raises nothing but FileNotFoundError for a missing file."""
    try:
        text = _read_text(path)
    except FileNotFoundError:
        if os.path.lexists(path):  # a dangling symlink
            return None, _("cannot read: it is a symbolic link to a file that does not exist")
        raise
    except _Unusable as e:
        return None, str(e)
    except OSError as e:
        return None, _("cannot read: {why}").format(why=e.strerror or e)
    return parse_prefs(text, path), None


def load_prefs(path: str | os.PathLike | None = None) -> LoadedPrefs:
    """Read the preferences (blocking: use :func:`load_prefs_async` on the GUI thread). Never raises."""
    p = str(path) if path is not None else str(prefs_path())
    # at start: what a save killed mid-write left (issue 13, 14f; never raises)
    base = os.path.basename(os.path.realpath(p))
    remove_stale_temp_files(os.path.dirname(os.path.realpath(p)), [base, base + ".bak", base + ".broken"])
    try:
        parsed, why = _parse_file(p)
    except FileNotFoundError:
        return LoadedPrefs(p)
    if parsed is None:
        return LoadedPrefs(p, None, (_("{path}: {why}; the defaults are used").format(path=p, why=why),), exists=True,
                           lossy=True)
    return LoadedPrefs(p, parsed.settings, tuple(str(x) for x in parsed.problems), exists=True, lossy=parsed.lossy)


# --------------------------------------------------------------------------- writing
def _replace_with(path: str, write, mode: int) -> None:
    """Atomically replace ``path`` with what ``write(fileobj)`` writes (:func:`mhgui.atomicfile.atomic_replace`)."""
    atomic_replace(path, write, mode, sync_dir=False)


def _copy_atomically(src: str, dst: str, mode: int) -> None:
    def write(f) -> None:
        with open(src, "rb") as s:
            while chunk := s.read(65536):
                f.write(chunk)

    # a regular file, checked by the caller; a non-regular dst (a directory) makes os.replace fail
    _replace_with(dst, write, mode)


def save_prefs(settings: FailoverSettings, path: str | os.PathLike | None = None) -> SavedPrefs:
    """Write ``settings`` atomically, keeping the previous version (module docstring).

    Blocking: use :func:`save_prefs_async` on the GUI thread. Raises
    :class:`PrefsStoreError` (one line, naming the file) when it cannot; the
    file is then as it was.
    """
    p = str(path) if path is not None else str(prefs_path())
    try:
        text = render_prefs(settings)
    except (RecursionError, ValueError, TypeError) as e:  # an unknown value tomli-w cannot write
        raise PrefsStoreError(_("{path}: cannot write these preferences: {why}").format(path=p, why=e)) from None
    target = os.path.realpath(p)  # a symlinked file is updated at its target
    directory = os.path.dirname(target)
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
    except OSError as e:
        raise PrefsStoreError(_("{path}: cannot create the directory {directory}: {why}").format(
            path=p, directory=directory, why=e.strerror or e)) from None
    try:
        st = os.stat(target)
    except FileNotFoundError:
        st = None
    except OSError as e:
        raise PrefsStoreError(_("{path}: cannot look at the file: {why}").format(path=p, why=e.strerror or e)) from None
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise PrefsStoreError((_("{path}: is a directory; not replaced (move it away, then apply again)")
                               if stat.S_ISDIR(st.st_mode) else
                               _("{path}: is not a regular file; not replaced (move it away, then apply again)"))
                              .format(path=p))
    mode = stat.S_IMODE(st.st_mode) if st is not None else 0o644
    backup = broken = None
    try:
        if st is not None:
            parsed, why = _parse_file(target)
            backup = target + ".bak"
            _copy_atomically(target, backup, mode)
            if parsed is None or parsed.lossy:
                broken = target + ".broken"
                _copy_atomically(target, broken, mode)
        _replace_with(target, lambda f: f.write(text.encode("utf-8")), mode)
        fsync_dir(directory)
    except FileNotFoundError as e:
        raise PrefsStoreError(_("{path}: changed while being saved ({why}); try again").format(
            path=p, why=e.strerror or e)) from None
    except OSError as e:
        raise PrefsStoreError(_("{path}: cannot save: {why}").format(path=p, why=e.strerror or e)) from None
    return SavedPrefs(p, backup, broken, text)


# --------------------------------------------------------------------------- for the event loop
async def load_prefs_async(path: str | os.PathLike | None = None) -> LoadedPrefs:
    """:func:`load_prefs` in the running loop's default executor."""
    return await asyncio.get_running_loop().run_in_executor(None, functools.partial(load_prefs, path))


async def save_prefs_async(settings: FailoverSettings, path: str | os.PathLike | None = None) -> SavedPrefs:
    """:func:`save_prefs` in the running loop's default executor; raises :class:`PrefsStoreError`."""
    return await asyncio.get_running_loop().run_in_executor(None, functools.partial(save_prefs, settings, path))
