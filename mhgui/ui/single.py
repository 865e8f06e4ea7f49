"""Single instance: a second launch raises the running instance and exits 0.

QLocalServer/QLocalSocket (a Unix socket), not a D-Bus name: it needs no
session bus (a sandbox or a headless session may have none) and works in a
Flatpak sandbox, where ``$XDG_RUNTIME_DIR/app/$FLATPAK_ID`` is shared by every
instance of the app (and is the host's ``/run/user/UID/app/ID``). Outside
Flatpak the socket is in ``$XDG_RUNTIME_DIR`` (per user, mode 0700), else in
the temporary directory with the uid in its name; the name always carries the
uid, so two users never meet. ``MHGUI_INSTANCE=NAME`` makes a separate instance
(``./scripts/run --lab`` sets ``lab``: the lab's window shows another node and
runs beside the host's).

A stale socket (left by an instance that crashed or was killed) is detected
by connecting to it: nobody answers, so it is removed and this launch
becomes the running instance.

Protocol: the second launch connects and writes one line, ``raise\\n``; the
first answers ``ok\\n`` and emits :attr:`SingleInstance.raiseRequested`.

Start-up (issue 14): the question to a running instance is a plain Unix socket
(the standard library's), so the app asks it before any window exists without
loading QtNetwork; the server (QLocalServer, QtNetwork) is set up by
:meth:`SingleInstance.listen` once the window is on screen.
"""

from __future__ import annotations

import logging
import os
import socket
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal

if TYPE_CHECKING:  # QtNetwork is imported by listen(), after the window is shown
    from PySide6.QtNetwork import QLocalServer, QLocalSocket

log = logging.getLogger(__name__)

__all__ = ["SingleInstance", "socket_path"]

APP_ID = "io.github.mhgui.MHGui"


def socket_path(app_id: str = APP_ID, env: dict | None = None) -> str:
    """Where the running instance listens (module docstring)."""
    env = os.environ if env is None else env
    uid = os.getuid()
    runtime = env.get("XDG_RUNTIME_DIR")
    flatpak = env.get("FLATPAK_ID")
    if runtime and flatpak:
        base = Path(runtime) / "app" / flatpak
    elif runtime and os.path.isdir(runtime):
        base = Path(runtime)
    else:
        base = Path(tempfile.gettempdir())
    name = "".join(c for c in env.get("MHGUI_INSTANCE", "") if c.isalnum() or c in "-_")[:32]
    return str(base / f"{app_id}-{uid}{'-' + name if name else ''}.instance")


class SingleInstance(QObject):
    """Claim the single-instance socket (module docstring).

    ``acquire()``: True when this process is now the running instance (it
    listens); False when another instance answered (it was asked to raise its
    window: exit 0). Local socket only, before the window exists, with a short
    timeout: it never waits on the network. The app does it in two steps:
    :meth:`ask_running` before the window exists, :meth:`listen` after it is shown.
    """

    raiseRequested = Signal()

    def __init__(self, path: str | None = None, *, timeout_ms: int = 1000, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.path = path or socket_path()
        self.timeout_ms = timeout_ms
        self._server: QLocalServer | None = None
        self._clients: list[QLocalSocket] = []

    @property
    def primary(self) -> bool:
        return self._server is not None and self._server.isListening()

    def acquire(self) -> bool:
        return not self.ask_running() and self.listen()

    def listen(self) -> bool:
        """Become the running instance: listen on :attr:`path`. False when another launch won the race
        meanwhile (it answered our "raise"); True otherwise, also when listening is impossible (logged:
        the app then runs without single-instance)."""
        from PySide6.QtNetwork import QLocalServer
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        server = QLocalServer(self)
        server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
        if not server.listen(self.path):
            # nobody answered, so whatever is there is stale (a crash): remove it and listen again
            QLocalServer.removeServer(self.path)
            if not server.listen(self.path):
                if self.ask_running():  # another launch won the race meanwhile
                    return False
                log.warning("single instance: cannot listen on %s (%s); running without it",
                            self.path, server.errorString())
                return True
        server.newConnection.connect(self._accept)
        self._server = server
        return True

    def close(self) -> None:
        if self._server is not None:
            self._server.close()  # removes the socket file
            self._server = None

    def ask_running(self) -> bool:
        """True when an instance runs: it accepted our "raise" (and was asked to raise its window).

        False when nobody listens on :attr:`path` (no file, or a stale one: connection refused).
        Blocks at most about ``timeout_ms`` (connect and answer); standard library only (no QtNetwork).
        """
        if not os.path.exists(self.path):
            return False
        deadline = time.monotonic() + self.timeout_ms / 1000
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        answered = False
        try:
            sock.settimeout(self.timeout_ms / 1000)
            try:
                sock.connect(self.path)
            except OSError:  # refused (stale), gone meanwhile, not a socket, or no answer in time
                return False
            try:
                sock.sendall(b"raise\n")
                buf = b""
                while b"ok" not in buf and (left := deadline - time.monotonic()) > 0:
                    sock.settimeout(left)
                    chunk = sock.recv(64)
                    if not chunk:
                        break
                    buf += chunk
                answered = b"ok" in buf
            except OSError:  # reset, or no answer in time
                pass
        finally:
            sock.close()
        if not answered:
            # connected but no answer: an instance holds the socket but hangs; a second one would not help
            log.warning("single instance: %s accepted but did not answer", self.path)
        return True

    def _accept(self) -> None:
        while self._server is not None and self._server.hasPendingConnections():
            sock = self._server.nextPendingConnection()
            self._clients.append(sock)
            sock.readyRead.connect(lambda s=sock: self._read(s))
            sock.disconnected.connect(lambda s=sock: self._drop(s))
            self._read(sock)  # what arrived before readyRead was connected

    def _read(self, sock: QLocalSocket) -> None:
        while sock.canReadLine():
            line = bytes(sock.readLine().data()).strip()
            if line == b"raise":
                sock.write(b"ok\n")
                sock.flush()
                self.raiseRequested.emit()

    def _drop(self, sock: QLocalSocket) -> None:
        if sock in self._clients:
            self._clients.remove(sock)
        sock.deleteLater()
