"""Single instance across real processes: a second launch raises the first and exits 0; a stale socket is taken over."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from mhgui.ui.single import socket_path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = """
import sys
from PySide6.QtCore import QSocketNotifier
from PySide6.QtGui import QGuiApplication
from mhgui.ui.single import SingleInstance

app = QGuiApplication(sys.argv[:1])
si = SingleInstance(sys.argv[1] if len(sys.argv) > 1 else None)
if not si.acquire():
    print("SECOND", flush=True)
    sys.exit(0)
print("PRIMARY " + si.path, flush=True)
si.raiseRequested.connect(lambda: print("RAISED", flush=True))

def stdin_ready(*_):
    sys.stdin.readline()
    si.close()
    app.quit()

notifier = QSocketNotifier(0, QSocketNotifier.Type.Read)
notifier.activated.connect(stdin_ready)
sys.exit(app.exec())
"""


class Instance:
    def __init__(self, tmp: Path, *args: str) -> None:
        env = dict(os.environ, QT_QPA_PLATFORM="offscreen", XDG_RUNTIME_DIR=str(tmp), PYTHONPATH=str(ROOT))
        env.pop("FLATPAK_ID", None)
        self.proc = subprocess.Popen([sys.executable, "-c", SCRIPT, *args], env=env, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        with self.proc.stdout:
            for line in self.proc.stdout:
                self.lines.put(line.strip())
        self.lines.put("<EOF>")

    def next(self, timeout: float = 15.0) -> str:
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("no output from the instance") from None

    def end(self) -> int:
        if self.proc.poll() is None:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.flush()
        rc = self.proc.wait(10)
        self.proc.stdin.close()
        return rc


@pytest.fixture
def launch(tmp_path):
    started: list[Instance] = []

    def go(*args: str) -> Instance:
        i = Instance(tmp_path, *args)
        started.append(i)
        return i
    yield go
    for i in started:
        if i.proc.poll() is None:
            i.proc.kill()
        i.proc.wait()
        if not i.proc.stdin.closed:
            i.proc.stdin.close()


def test_second_launch_raises_the_first_and_exits_0(launch, tmp_path):
    first = launch()
    line = first.next()
    assert line.startswith("PRIMARY ")
    path = line.split(" ", 1)[1]
    assert path == str(tmp_path / f"io.github.mhgui.MHGui-{os.getuid()}.instance")
    for _ in range(2):
        second = launch()
        assert second.next() == "SECOND"
        assert second.proc.wait(10) == 0
        assert first.next() == "RAISED"
    assert first.end() == 0
    assert not os.path.exists(path)  # a clean exit removes the socket


def test_stale_socket_after_a_crash_is_taken_over(launch, tmp_path):
    first = launch()
    path = first.next().split(" ", 1)[1]
    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait()
    assert os.path.exists(path)  # the crash left the socket behind
    second = launch()
    assert second.next() == f"PRIMARY {path}"
    third = launch()
    assert third.next() == "SECOND"
    assert third.proc.wait(10) == 0
    assert second.next() == "RAISED"
    assert second.end() == 0


def test_socket_path_per_user_and_in_flatpak(tmp_path):
    uid = os.getuid()
    assert socket_path(env={"XDG_RUNTIME_DIR": str(tmp_path)}) == str(tmp_path / f"io.github.mhgui.MHGui-{uid}.instance")
    flat = socket_path(env={"XDG_RUNTIME_DIR": "/run/user/1000", "FLATPAK_ID": "io.github.mhgui.MHGui"})
    assert flat == f"/run/user/1000/app/io.github.mhgui.MHGui/io.github.mhgui.MHGui-{uid}.instance"
    import tempfile
    assert socket_path(env={}) == os.path.join(tempfile.gettempdir(), f"io.github.mhgui.MHGui-{uid}.instance")


def test_a_named_instance_has_its_own_socket(tmp_path):
    from mhgui.ui.single import socket_path
    env = {"XDG_RUNTIME_DIR": str(tmp_path)}
    assert socket_path(env=env) != socket_path(env={**env, "MHGUI_INSTANCE": "lab"})
    assert socket_path(env={**env, "MHGUI_INSTANCE": "../x y"}).endswith("-xy.instance")  # no path tricks


def _serve(path: str, behaviour: str):
    """A real Unix socket at ``path`` that behaves like a running instance (or not); returns a closer."""
    import socket as so
    if behaviour == "regular file":
        Path(path).write_text("")
        return lambda: None
    srv = so.socket(so.AF_UNIX, so.SOCK_STREAM)
    srv.bind(path)
    if behaviour == "stale":  # bound, nobody listening: what a killed instance leaves behind
        return srv.close
    srv.listen(4)
    stop = threading.Event()
    conns = []

    def run():
        srv.settimeout(0.05)
        while not stop.is_set():
            try:
                c, _ = srv.accept()
            except OSError:
                continue
            conns.append(c)
            if behaviour == "answers":
                c.recv(64)
                c.sendall(b"ok\n")
            elif behaviour == "hangs up":
                c.close()
            # "hangs": accepted, never answers

    t = threading.Thread(target=run, daemon=True)
    t.start()

    def close():
        stop.set()
        t.join()
        for c in conns:
            c.close()
        srv.close()
    return close


@pytest.mark.parametrize("behaviour,running", [
    ("nothing", False), ("regular file", False), ("stale", False),
    ("answers", True), ("hangs up", True), ("hangs", True),
])
def test_asking_a_running_instance_needs_no_qtnetwork(tmp_path, behaviour, running):
    """The question before any window exists is a plain socket (issue 14); what it concludes per behaviour of
    whatever is at the socket's path: only a listener is a running instance (one that hangs too: a second
    window would not help)."""
    path = str(tmp_path / "x.instance")
    close = _serve(path, behaviour) if behaviour != "nothing" else (lambda: None)
    try:
        script = ("import sys\nfrom mhgui.ui.single import SingleInstance\n"
                  f"r = SingleInstance({path!r}, timeout_ms=300).ask_running()\n"
                  "print(r, 'PySide6.QtNetwork' in sys.modules)\n")
        p = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30,
                           env=dict(os.environ, PYTHONPATH=str(ROOT)))
        assert p.returncode == 0, p.stderr
        assert p.stdout.split() == [str(running), "False"]
    finally:
        close()
