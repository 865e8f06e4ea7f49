"""The tray icon through its real protocol: StatusNotifierItem + com.canonical.dbusmenu over a private session bus.

Recipe: /work/shared/domain/sni-tray.md. The in-process QApplication is
offscreen without a session bus, and Qt (6.7 and later) decides per
QSystemTrayIcon, when it is built, whether a D-Bus tray exists; so each test
runs tests/tray_driver.py (mhgui's TrayController) in a subprocess under Xvfb
(``-displayfd``) with ``QT_QPA_PLATFORM=xcb``, a private session dbus-daemon,
and the fake StatusNotifierWatcher (tests/sniwatcher.py) started before the
QApplication, or later, or never.
"""

from __future__ import annotations

import os
import queue
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from sniwatcher import SniWatcher, unwrap  # noqa: E402  (tests/ is on sys.path: rootdir conftest)

pytestmark = pytest.mark.skipif(shutil.which("Xvfb") is None or shutil.which("dbus-daemon") is None,
                                reason="needs Xvfb and dbus-daemon")

HERE = Path(__file__).resolve().parent
ITEM = "org.kde.StatusNotifierItem"
MENU = "com.canonical.dbusmenu"


def _read_fd_line(fd: int, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    buf = b""
    os.set_blocking(fd, False)
    while b"\n" not in buf:
        if time.monotonic() > deadline:
            raise TimeoutError("no line")
        try:
            chunk = os.read(fd, 256)
        except BlockingIOError:
            time.sleep(0.01)
            continue
        if not chunk:
            break
        buf += chunk
    return buf.decode().strip()


class Desktop:
    """Xvfb + a private session dbus-daemon (+ the fake watcher on demand); killed by PID."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.procs: list[subprocess.Popen] = []
        self.files = [open(tmp / "xvfb.log", "w"), open(tmp / "dbus.log", "w")]
        r, w = os.pipe()
        xvfb = subprocess.Popen(["Xvfb", "-displayfd", str(w), "-screen", "0", "1024x768x24", "-nolisten", "tcp"],
                                pass_fds=(w,), stderr=self.files[0])
        os.close(w)
        self.procs.append(xvfb)
        self.display = ":" + _read_fd_line(r)
        os.close(r)
        conf = tmp / "session.conf"
        conf.write_text(f"""<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig><type>session</type><listen>unix:dir={tmp}</listen>
<auth>EXTERNAL</auth>
<policy context="default"><allow send_destination="*" eavesdrop="true"/><allow eavesdrop="true"/>
<allow own="*"/></policy></busconfig>
""")
        bus = subprocess.Popen(["dbus-daemon", f"--config-file={conf}", "--nofork", "--print-address=1"],
                               stdout=subprocess.PIPE, stderr=self.files[1], text=True)
        self.procs.append(bus)
        self.address = bus.stdout.readline().strip()
        assert self.address, "dbus-daemon did not start"
        self.watcher: SniWatcher | None = None

    def start_watcher(self) -> SniWatcher:
        self.watcher = SniWatcher(self.address).start()
        return self.watcher

    def env(self) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("QT_", "WAYLAND", "XDG_SESSION"))}
        env.update(DISPLAY=self.display, DBUS_SESSION_BUS_ADDRESS=self.address, QT_QPA_PLATFORM="xcb",
                   XDG_RUNTIME_DIR=str(self.tmp), PYTHONPATH=str(HERE.parent),
                   QT_LOGGING_RULES="qt.qpa.tray*=false")
        return env

    def close(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()
        for p in reversed(self.procs):
            p.kill()
            p.wait()
            if p.stdout is not None:
                p.stdout.close()
        for f in self.files:
            f.close()


class Driver:
    """tests/tray_driver.py in a subprocess; its stdout lines arrive on a queue."""

    def __init__(self, desk: Desktop) -> None:
        self._err = open(desk.tmp / "driver.log", "w")
        self.proc = subprocess.Popen([sys.executable, str(HERE / "tray_driver.py")], env=desk.env(),
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self._err, text=True)
        self.log = desk.tmp / "driver.log"
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        with self.proc.stdout:
            for line in self.proc.stdout:
                self.lines.put(line.strip())
        self.lines.put("<EOF>")

    def expect(self, prefix: str, timeout: float = 15.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                line = self.lines.get(timeout=max(left, 0.01))
            except queue.Empty:
                raise AssertionError(f"driver never said {prefix!r}; said {self.seen}; log:\n"
                                     + self.log.read_text()) from None
            self.seen.append(line)
            if line == "<EOF>":
                raise AssertionError(f"driver ended before {prefix!r}; said {self.seen}; log:\n"
                                     + self.log.read_text())
            if line.startswith(prefix):
                return line

    def send(self, line: str) -> None:
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def close(self) -> int:
        if self.proc.poll() is None:
            try:
                self.send("quit")
            except BrokenPipeError:
                pass
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdin.close()
        self._err.close()
        return self.proc.returncode


@pytest.fixture
def desk(tmp_path):
    d = Desktop(tmp_path)
    yield d
    d.close()


@pytest.fixture
def driver(desk):
    started = []

    def start() -> Driver:
        drv = Driver(desk)
        started.append(drv)
        return drv
    yield start
    for drv in started:
        assert drv.close() == 0, drv.log.read_text()
        log = drv.log.read_text()
        assert "Traceback" not in log and "QSystemTrayIcon::" not in log, log


# ---------------------------------------------------------------- helpers over D-Bus
def props(w: SniWatcher, item: str) -> dict:
    service, path = item.split("/", 1)
    (d,) = w.call(service, "/" + path, "org.freedesktop.DBus.Properties", "GetAll", "s", [ITEM])
    return unwrap(d)


def layout(w: SniWatcher, item: str, menu_path: str) -> dict:
    """The dbusmenu tree as {"label", "id", "enabled", "toggle-state", "children": [...]}; AboutToShow first."""
    service = item.split("/", 1)[0]
    w.call(service, menu_path, MENU, "AboutToShow", "i", [0])
    _rev, tree = w.call(service, menu_path, MENU, "GetLayout", "iias", [0, -1, []])

    def node(t):
        ident, p, children = t
        p = unwrap(p)
        return {"id": ident, "label": p.get("label", ""), "enabled": p.get("enabled", True),
                "visible": p.get("visible", True), "type": p.get("type", "standard"),
                "toggle-state": p.get("toggle-state"), "children": [node(unwrap(c)) for c in children]}
    return node(tree)


def labels(n: dict) -> list[str]:
    return [c["label"] for c in n["children"] if c["visible"] and c["type"] != "separator"]


def find(n: dict, prefix: str) -> dict:
    for c in n["children"]:
        if c["label"].replace("_", "").startswith(prefix):
            return c
    raise AssertionError(f"no item {prefix!r} in {labels(n)}")


def click(w: SniWatcher, item: str, menu_path: str, ident: int) -> None:
    from dbus_fast import Variant
    service = item.split("/", 1)[0]
    w.call(service, menu_path, MENU, "Event", "isvu", [ident, "clicked", Variant("i", 0), 0])


# ---------------------------------------------------------------- tests
def test_item_registers_with_state_tooltip_and_menu(desk, driver):
    w = desk.start_watcher()
    drv = driver()
    assert drv.expect("READY") == "READY available=True close-keeps-running=True"
    item = w.wait_registration()
    p = props(w, item)
    assert p["Id"] == "mhgui" and p["Status"] == "Active"
    tip = p["ToolTip"][2]
    assert "mhgui — all links fine" in tip
    assert "(n,1,n) — 2 interfaces, 1 home address, 2 care-of addresses" in tip
    assert "2001:db8:1::100 → eth0" in tip
    icon_ok = p["IconPixmap"]
    assert icon_ok and all(len(data) == 4 * wd * ht for wd, ht, data in icon_ok)

    # the icon and tooltip follow the state
    drv.send("state backup")
    drv.expect("STATE backup")
    deadline = time.monotonic() + 5
    while True:
        p2 = props(w, item)
        if p2["IconPixmap"] != icon_ok or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert p2["IconPixmap"] != icon_ok
    assert "running on a backup interface" in p2["ToolTip"][2]
    assert "2001:db8:1::100 → wlan0" in p2["ToolTip"][2]
    drv.send("state no-daemon")
    drv.expect("STATE no-daemon")
    time.sleep(0.2)
    p3 = props(w, item)
    assert "mobility daemon not reachable" in p3["ToolTip"][2]
    assert p3["IconPixmap"] not in (icon_ok, p2["IconPixmap"])


def test_menu_layout_prefer_open_quit(desk, driver):
    w = desk.start_watcher()
    drv = driver()
    drv.expect("READY available=True close-keeps-running=True")
    item = w.wait_registration()
    menu_path = props(w, item)["Menu"]
    root = layout(w, item, menu_path)
    drv.expect("SHOWN")  # AboutToShow reached the QMenu: the menu was rebuilt from a snapshot
    names = labels(root)
    assert names[0] == "2001:db8:1::100 → eth0"
    assert root["children"][0]["enabled"] is False
    assert [n.replace("_", "") for n in names[1:]] == ["Prefer", "Open window", "Quit"]
    prefer = find(root, "Prefer")
    sub = labels(prefer)
    assert sub == ["eth0 (in use, first choice)",
                   "wlan0 — moves 2001:db8:1::100 and 1 steering rule; restarts mip6d"], sub
    assert find(prefer, "eth0")["toggle-state"] == 1 and find(prefer, "eth0")["enabled"] is False
    assert find(prefer, "wlan0")["enabled"] is True

    # Event(id, "clicked") on a Prefer entry calls on_prefer
    click(w, item, menu_path, find(prefer, "wlan0")["id"])
    assert drv.expect("PREFER") == "PREFER wlan0"
    click(w, item, menu_path, find(root, "Open")["id"])
    drv.expect("OPEN")

    # the menu follows the state when shown again
    drv.send("state backup")
    drv.expect("STATE backup")
    root = layout(w, item, menu_path)
    assert labels(root)[0] == "2001:db8:1::100 → wlan0"
    sub = labels(find(root, "Prefer"))
    assert sub == ["wlan0 (in use) — make it the first choice; restarts mip6d"], sub

    # a snapshot that changed without refresh(): the menu is rebuilt when the host asks to show it
    drv.send("quietly no-daemon")
    drv.expect("QUIETLY no-daemon")
    root = layout(w, item, menu_path)
    assert labels(root)[0] == "2001:db8:1::100 → not bound (mip6d not reachable)"

    # left click (Activate) toggles the window
    w.call(item.split("/", 1)[0], "/StatusNotifierItem", ITEM, "Activate", "ii", [0, 0])
    drv.expect("TOGGLE")

    click(w, item, menu_path, find(root, "Quit")["id"])
    drv.expect("QUIT")
    assert drv.proc.wait(10) == 0


def test_without_watcher_there_is_no_tray(desk, driver):
    drv = driver()
    assert drv.expect("READY") == "READY available=False close-keeps-running=False"
    drv.send("state backup")
    drv.expect("STATE backup")  # refresh without a tray is harmless


def test_watcher_started_later_gets_a_new_icon(desk, driver):
    drv = driver()
    assert drv.expect("READY") == "READY available=False close-keeps-running=False"
    w = desk.start_watcher()
    assert drv.expect("ICON") == "ICON available=True"
    assert "AVAILABLE True" in drv.seen
    item = w.wait_registration()
    assert "all links fine" in props(w, item)["ToolTip"][2]
    # the host goes away: the tray is no longer a way in
    w.stop()
    desk.watcher = None
    drv.expect("AVAILABLE False")
