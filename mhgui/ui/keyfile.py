"""The MN-HA key's files for the first-run dialog (issue 15.3): read one the home agent's administrator
gave, save a generated one for them.

:func:`parse_key_file`, :func:`read_small` and :func:`write_key` block: they run in an executor, never on
the GUI thread. :class:`KeyFileMixin` is the dialog's side (the key's radio buttons, file dialogs opened
with ``open()``, never ``exec()``).

The key is never logged, shown or quoted in an error (RFC 4285 §5: it is the node's long-term secret).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import stat

from PySide6.QtWidgets import QFileDialog

from ..atomicfile import atomic_replace
from ..i18n import _

__all__ = ["KeyFileMixin", "parse_key_file", "read_small", "write_key"]

#: the largest key file read (a key is at most 64 bytes, 128 hex digits)
MAX_KEY_FILE = 1024


def parse_key_file(data: bytes) -> bytes:
    """The key in a key file's bytes: one line of 32..128 hex digits (as the engine writes it), or 16..64 raw
    binary bytes. Text that is not such a hex line is refused (a mistyped hex key must not become a raw key).
    ValueError with one sentence otherwise (never quoting the file)."""
    text = data.strip()
    if not text:  # empty, or only blanks and newlines: an empty text file, not a binary key
        pass
    elif all(32 < c < 127 for c in text):  # text: it must be hex
        if len(text) % 2 == 0 and all(c in b"0123456789abcdefABCDEF" for c in text) and 32 <= len(text) <= 128:
            return bytes.fromhex(text.decode("ascii"))
    elif 16 <= len(data) <= 64:
        return bytes(data)
    raise ValueError(_("not a key file: one line of 32 to 128 hex digits, or 16 to 64 bytes, was expected"))


def read_small(path: str) -> bytes:
    """At most :data:`MAX_KEY_FILE` bytes of the regular file ``path``; never waits on a FIFO or device
    (opened non-blocking, checked with fstat). OSError, or ValueError with one sentence."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError(_("not a regular file: not a key file"))
        data = os.read(fd, MAX_KEY_FILE + 1)
    finally:
        os.close(fd)
    if len(data) > MAX_KEY_FILE:
        raise ValueError(_("larger than 1 KiB: not a key file"))
    return data


def write_key(path: str, key: bytes) -> None:
    """A new file of mode 0600 (the key as one line of hex) renamed over ``path`` (never an existing file's
    looser mode, never into a FIFO or through a symbolic link). OSError when it cannot be written."""
    atomic_replace(path, lambda f: f.write(key.hex().encode() + b"\n"), mode=0o600)


class KeyFileMixin:
    """The key of :class:`~mhgui.ui.firstrun.FirstRunDialog` (never logged, never shown): ``key`` (bytes or
    None), ``key_unsaved`` (a generated key not yet saved for the home agent). The dialog provides
    ``key_state`` (a label), ``save_key`` (a button), ``validate()`` and ``_spawn(coro)``."""

    def set_key(self, key: bytes | None, how: str, *, unsaved: bool = False) -> None:
        self.key = key
        self.key_unsaved = unsaved
        self.key_state.setText(how)
        self.validate()

    def forget_key(self) -> None:
        """The dialog closed: the key is not kept in memory any longer than it is needed."""
        self.save_key.setEnabled(False)
        self.set_key(None, _("no key yet"))

    def generate_key(self) -> None:
        self.set_key(secrets.token_bytes(32), _("a new 32-byte key; save it for the home agent (its ha.toml "
                                                "needs the same key)"), unsaved=True)
        self.save_key.setEnabled(True)

    def _file_dialog(self, title: str) -> QFileDialog | None:
        """A new file dialog, or None when one is open already (a double click: that one is raised)."""
        old = getattr(self, "_files", None)
        if old is not None:
            if old.isVisible():
                old.raise_()
                return None
            old.deleteLater()
        self._files = QFileDialog(self, title)
        return self._files

    def choose_key_file(self) -> None:
        dlg = self._file_dialog(_("The MN-HA key file"))
        if dlg is None:
            return
        dlg.setFileMode(QFileDialog.FileMode.ExistingFile)
        dlg.fileSelected.connect(lambda p: self._spawn(self.load_key_file(p)))
        dlg.open()

    async def load_key_file(self, path: str) -> bool:
        """Read the key in ``path`` (in an executor); True when it is one."""
        try:
            data = await asyncio.get_running_loop().run_in_executor(None, read_small, path)
            key = parse_key_file(data)
        except (OSError, ValueError) as e:
            why = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
            self.set_key(None, _("{path}: {why}").format(path=path, why=why))
            return False
        self.save_key.setEnabled(False)
        self.set_key(key, _("a {n}-byte key from {path}").format(n=len(key), path=path))
        return True

    def save_key_file(self) -> None:
        dlg = self._file_dialog(_("Save the key for the home agent"))
        if dlg is None:
            return
        dlg.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
        dlg.fileSelected.connect(lambda p: self._spawn(self.write_key_file(p)))
        dlg.open()

    async def write_key_file(self, path: str) -> bool:
        if self.key is None:
            return False
        try:
            await asyncio.get_running_loop().run_in_executor(None, write_key, path, self.key)
        except OSError as e:
            self.key_state.setText(_("{path}: cannot write: {why}").format(path=path, why=e.strerror or e))
            return False
        self.key_unsaved = False
        self.key_state.setText(_("key saved in {path} (mode 0600): give it to the home agent's administrator")
                               .format(path=path))
        self.validate()
        return True
