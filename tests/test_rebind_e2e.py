"""End to end: a HoA moves from one uplink to another, from mhctl and from the window.

The lab: a node namespace with two uplinks (upA preferred, upB) and a peer
namespace holding the home agent stand-in (tests/umipdouble, written from
umip.md alone); a private system bus with the project's real D-Bus policy,
polkit from python-dbusmock, and the privileged helper as its own root process,
restarting the double through its plain-process fallback (no systemd here).
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mhgui.helper.client import HelperClient
from test_helper import CHANGE, READ, HelperProc, _start_stack
from test_umip_double import TESTS, TwoUplinkLab, netns_skip_reason, run_double, stop

pytestmark = [pytest.mark.netns]

HOA = TwoUplinkLab.HOA
MN_CONF = """\
NodeConfig MN;
DebugLevel 1;
UseMnHaIPsec disabled;
InterfaceInitialInitDelay 0.2;
MnMaxHaBindingLife 3600;
# preferred uplink first
Interface "upA" {{ MnIfPreference 1; }}
Interface "upB" {{ MnIfPreference 2; }}
MnHomeLink "home0" {{ HomeAgentAddress {ha}; HomeAddress {hoa}/64; }}
"""


class World:
    """Lab + bus + helper + the double as mobile node (started exactly as the helper restarts it)."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.lab = TwoUplinkLab()
        self.stack = None
        self.helper = None
        self.ha = None
        self._logs = []
        try:
            self.conf = tmp / "mip6d.conf"
            self.conf.write_text(MN_CONF.format(ha=TwoUplinkLab.HA, hoa=HOA))
            ha_conf = tmp / "ha.conf"
            ha_conf.write_text('NodeConfig HA;\nInterface "home";\nHaMaxBindingLife 3600;\n')
            self.ha = run_double("-c", str(ha_conf), "--ha-stand-in", "--vt-service", "7778", ns=self.lab.peer,
                                 stdout=self._log("ha.log"), stderr=subprocess.STDOUT)
            self.pidfile = tmp / "mip6d.pid"
            # no systemd here: the helper runs mip6d (the double) itself, in the node namespace
            self.command = f"env PYTHONPATH={TESTS} {sys.executable} -m umipdouble -c {self.conf}"
            self.stack = _start_stack(systemd=False)
            self.helper = HelperProc(self.stack, self.conf, "--restart-method", "command", "--mip6d-command",
                                     self.command, "--pidfile", str(self.pidfile),
                                     "--state-dir", str(tmp / "helper-state"),
                                     wrapper=("ip", "netns", "exec", self.lab.ns)).start()
            self.stack.allow(READ, CHANGE)
            asyncio.run(self.restart())  # the first start, as an administrator would
            self.stack.reset()
        except BaseException:
            self.close()
            raise

    async def restart(self) -> None:
        async with HelperClient(self.stack.address) as client:
            await client.restart_daemon()

    def _log(self, name: str):
        f = open(self.tmp / name, "wb")  # noqa: SIM115 (closed in close())
        self._logs.append(f)
        return f

    def mhctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        p = subprocess.run(["ip", "netns", "exec", self.lab.ns, sys.executable, "-m", "mhgui.cli", *args,
                            "--system-bus", self.stack.address, "--mip6d-conf", str(self.conf), "--no-networkmanager"],
                           capture_output=True, text=True, timeout=90, env=dict(os.environ, PYTHONPATH=str(TESTS.parent)))
        if check and p.returncode != 0:
            raise AssertionError(f"mhctl {args}: {p.returncode}\n{p.stdout}\n{p.stderr}")
        return p

    def binding(self) -> dict | None:
        out = json.loads(self.mhctl("bindings", "--json").stdout)
        regs = [b for b in out["bindings"] if b["hoa"] == HOA]
        return regs[0] if regs else None

    def wait_registered(self, coa: str, timeout: float = 20.0) -> dict:
        deadline = time.monotonic() + timeout
        b = None
        while time.monotonic() < deadline:
            b = self.binding()
            if b and b["coa"] == coa and b["state"] == "registered":
                return b
            time.sleep(0.3)
        raise AssertionError(f"no registered binding through {coa}; last {b}")

    def close(self) -> None:
        if self.helper is not None:
            self.helper.stop()
        if self.stack is not None:
            self.stack.stop()
        # the double the helper started last is recorded in the pidfile
        try:
            pid = int(self.pidfile.read_text())
            os.kill(pid, 15)
        except (OSError, ValueError, AttributeError):
            pass
        stop(self.ha)
        for f in self._logs:
            f.close()
        self.lab.close()


@pytest.fixture
def world(tmp_path):
    why = netns_skip_reason()
    if why:
        pytest.skip(why)
    tmp_path.chmod(0o755)
    w = World(tmp_path)
    try:
        yield w
    finally:
        w.close()


def test_mhctl_rebind_moves_the_hoa_and_polkit_can_refuse(world):
    w = world
    b = w.wait_registered(TwoUplinkLab.COA_A)
    assert b["interface"] == "upA" and b["peer"] == TwoUplinkLab.HA
    before = w.conf.read_text()

    # polkit says no: nothing changes
    w.stack.reset()
    p = w.mhctl("rebind", HOA, "upB", "--yes", check=False)
    assert p.returncode == 1 and "not authorized" in p.stderr.lower(), p.stderr
    assert w.conf.read_text() == before
    assert w.binding()["coa"] == TwoUplinkLab.COA_A

    # allowed: the preferences change, mip6d restarts, the new CoA is acknowledged
    w.stack.allow(READ, CHANGE)
    p = w.mhctl("rebind", HOA, "upB", "--yes")
    assert "moves every home address" in p.stdout and HOA in p.stdout
    assert "confirmed in" in p.stdout and TwoUplinkLab.COA_B in p.stdout
    after = w.conf.read_text()
    assert 'Interface "upB" { MnIfPreference 1; }' in after and "# preferred uplink first" in after
    b = w.wait_registered(TwoUplinkLab.COA_B, timeout=5)
    assert b["interface"] == "upB"

    # the same order again is refused, with the reason
    p = w.mhctl("rebind", HOA, "upB", "--yes", check=False)
    assert p.returncode == 1 and "cannot bind" in p.stderr


# ------------------------------------------------------------------ the window, in the node namespace
def drop_hoa_on_interface(win, hoa: str, ifname: str) -> None:
    """A drag from the home address table onto an interface row, as Qt delivers it (test-lab.md section 4)."""
    from PySide6.QtCore import QPointF, Qt
    from PySide6.QtGui import QDragEnterEvent, QDragMoveEvent, QDropEvent
    from PySide6.QtWidgets import QApplication

    homes = win.homes_view.model()
    row = next(r for r in range(homes.rowCount()) if homes.index(r, 0).data().startswith(hoa + "/"))
    md = homes.mimeData([homes.index(row, 0)])
    view = win.interfaces_view
    model = view.model()
    target = next(r for r in range(model.rowCount()) if model.index(r, 0).data() == ifname)
    pos = QPointF(view.visualRect(model.index(target, 0)).center())
    vp = view.viewport()
    buttons, mods = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    for ev in (QDragEnterEvent(pos.toPoint(), Qt.DropAction.CopyAction, md, buttons, mods),
               QDragMoveEvent(pos.toPoint(), Qt.DropAction.CopyAction, md, buttons, mods),
               QDropEvent(pos, Qt.DropAction.CopyAction, md, buttons, mods)):
        QApplication.sendEvent(vp, ev)
        assert ev.isAccepted()

_libc = ctypes.CDLL(None, use_errno=True)


class in_netns:
    """Run this thread in namespace ``ns`` (setns(2)); sockets made meanwhile stay in it."""

    def __init__(self, ns: str) -> None:
        self.ns = ns

    def __enter__(self):
        self.old = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        fd = os.open(f"/run/netns/{self.ns}", os.O_RDONLY)
        try:
            if _libc.setns(fd, 0x40000000) != 0:
                raise OSError(ctypes.get_errno(), "setns")
        finally:
            os.close(fd)

    def __exit__(self, *exc):
        _libc.setns(self.old, 0x40000000)
        os.close(self.old)


def test_window_rebinds_and_survives_a_daemon_restart(world, qtbot, qloop):

    from mhgui.runtime import Runtime
    from mhgui.ui.window import LiveController, MainWindow

    w = world
    w.wait_registered(TwoUplinkLab.COA_A)
    w.stack.allow(READ, CHANGE)
    loop = qloop
    confirmed = []

    async def until(pred, timeout, what):
        deadline = loop.time() + timeout
        while not pred():
            if loop.time() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            await asyncio.sleep(0.05)

    def coa_shown():
        m = c.bindings
        return [(m.index(r, m.COL_COA).data(), m.index(r, m.COL_IFACE).data(), m.index(r, m.COL_STATE).data())
                for r in range(m.rowCount())]

    with in_netns(w.lab.ns):
        rt = Runtime(mip6d_conf=str(w.conf), system_bus=w.stack.address, use_networkmanager=False,
                     poll_interval=0.3)
        c = LiveController(rt.store, rt.clock, daemon=rt.daemon)
        win = MainWindow(c)
        qtbot.addWidget(win)
        # the user is shown the plan and agrees
        win.rebinder.confirm = lambda plan, proceed: (confirmed.append(plan), proceed())

        async def scenario():
            await rt.start()
            try:
                await until(lambda: (TwoUplinkLab.COA_A, "upA", "registered") in coa_shown(), 10, "binding on upA")
                assert win.bindings_view.isVisible() or not win.isVisible()
                # the user drags the home address onto upB in the interface table
                drop_hoa_on_interface(win, HOA, "upB")
                await until(lambda: win.rebinder.last_result is not None, 40, "the rebind")
                r = win.rebinder.last_result
                assert r.confirmed, r.reason
                assert confirmed and HOA in confirmed[0].moves and confirmed[0].restart_required
                assert win.rebind_label.text().startswith("Confirmed in ")
                await until(lambda: (TwoUplinkLab.COA_B, "upB", "registered") in coa_shown(), 10, "binding on upB")
                # the daemon dies: the window says so; it comes back: the table is right again
                pid = int(w.pidfile.read_text())
                os.kill(pid, 9)
                await until(lambda: not rt.daemon.status.reachable, 10, "daemon lost")
                await until(lambda: c.bindings.rowCount() == 0, 5, "table emptied")
                assert win.bindings_label.text().startswith("No mobility daemon")
                await w.restart()
                await until(lambda: (TwoUplinkLab.COA_B, "upB", "registered") in coa_shown(), 20, "binding back")
            finally:
                await rt.stop()

        try:
            loop.run_until_complete(scenario())
        finally:
            c.close()
