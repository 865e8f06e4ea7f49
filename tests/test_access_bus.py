"""The "no access" states with real parts: private system buses whose policy refuses or hides
things, an address where no bus listens, a network namespace with only ``lo``, a bus with no
helper; checked in ``mhctl status --json`` (a subprocess, as a user runs it) and in the window's
banner (pytest-qt, offscreen, a real Runtime on the session's qasync loop).

Every bus is a private ``dbus-daemon`` of ``<type>system</type>`` with Debian's default policy
(tests/dbuspolicy.py) plus the policy under test. NetworkManager's and the helper's names are
owned by bare python-dbusmock objects: the bus and its policy decide what the caller sees, which
is what is under test. The caller is root, so the policies deny root (helper-dbus.md: root is
subject to the send policy like everyone else; a non-root Python cannot run from /root's venv).
A Flatpak is simulated by a ``/.flatpak-info`` file given through ``$MHGUI_FLATPAK_INFO``.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from netns import lab  # noqa: F401  (fixture)

dbus = pytest.importorskip("dbus")
import dbus.bus  # noqa: E402

from dbuspolicy import DEFAULT_POLICY  # noqa: E402
from test_helper import _wait  # noqa: E402

pytestmark = [pytest.mark.netns]

if os.geteuid() != 0:
    pytest.skip("needs root (network namespaces, owning names on the test bus)", allow_module_level=True)
if shutil.which("dbus-daemon") is None:
    pytest.skip("dbus-daemon is not installed", allow_module_level=True)

REPO = Path(__file__).resolve().parent.parent
HELPER_CONF = REPO / "resources" / "io.github.mhgui.MHGui.Helper1.conf"
NM = ("org.freedesktop.NetworkManager", "/org/freedesktop/NetworkManager", "org.freedesktop.NetworkManager")
HELPER = ("io.github.mhgui.MHGui.Helper1", "/io/github/mhgui/MHGui/Helper1", "io.github.mhgui.MHGui.Helper1")

#: root may own both names, and may send to neither (the default policy denies method calls)
DENY_BOTH = f"""<policy user="root"><allow own="{NM[0]}"/><allow own="{HELPER[0]}"/></policy>"""
#: root may own NetworkManager's name; the helper's real policy file decides the rest
REAL_HELPER_POLICY = f"""<policy user="root"><allow own="{NM[0]}"/></policy><include>{HELPER_CONF}</include>"""

FLATPAK_NO_PERMISSIONS = """\
[Application]
name=io.github.mhgui.MHGui

[Context]
shared=ipc;
sockets=wayland;fallback-x11;
"""


class Bus:
    """A private system bus with ``policy`` added to the default one; ``own(name)`` puts a dbusmock object on it."""

    def __init__(self, policy: str, *, default_policy: str = DEFAULT_POLICY) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="mhgui-access-bus-"))
        self.dir.chmod(0o755)
        self.mocks: dict[str, subprocess.Popen] = {}
        self.conn = None
        self.proc: subprocess.Popen | None = None
        (self.dir / "bus.conf").write_text(f"""<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <auth>EXTERNAL</auth>
  <listen>unix:path={self.dir / 'system_bus_socket'}</listen>
  {default_policy}
  {policy}
</busconfig>
""")
        self.log = open(self.dir / "dbus-daemon.log", "wb")  # noqa: SIM115 (closed in stop())
        self.proc = subprocess.Popen(
            ["dbus-daemon", f"--config-file={self.dir / 'bus.conf'}", "--nofork", "--print-address=1"],
            stdout=subprocess.PIPE, stderr=self.log, text=True)
        self.address = self.proc.stdout.readline().strip()
        self.proc.stdout.close()
        assert self.address, (self.dir / "dbus-daemon.log").read_text()

    def _conn(self):
        if self.conn is None:
            self.conn = dbus.bus.BusConnection(self.address)
        return self.conn

    def own(self, obj: tuple[str, str, str]) -> None:
        env = {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": self.address}
        self.mocks[obj[0]] = subprocess.Popen([sys.executable, "-m", "dbusmock", "--system", *obj], env=env,
                                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait(lambda: self._conn().name_has_owner(obj[0]), f"{obj[0]} on the test bus")

    def disown(self, name: str) -> None:
        p = self.mocks.pop(name)
        p.terminate()
        p.wait(10)
        _wait(lambda: not self._conn().name_has_owner(name), f"{name} to be released")

    def stop(self) -> None:
        if self.conn is not None:
            self.conn.close()
        for name in list(self.mocks):
            p = self.mocks.pop(name)
            p.terminate()
            p.wait(10)
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def make_bus():
    buses: list[Bus] = []

    def make(policy: str, **kw) -> Bus:
        b = Bus(policy, **kw)
        buses.append(b)
        return b
    yield make
    for b in buses:
        b.stop()


@pytest.fixture
def uplinked(lab):  # noqa: F811
    """The node namespace with one real uplink and a global address: loopback is not all there is."""
    lab.uplink("up0")
    lab.ip("-6", "addr", "add", "2001:db8:a::5/64", "dev", "up0", "nodad")
    return lab


def mhctl_status(lab, bus_address: str, *extra: str, flatpak_info: Path | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "MHGUI_FLATPAK_INFO"}
    if flatpak_info is not None:
        env["MHGUI_FLATPAK_INFO"] = str(flatpak_info)
    p = subprocess.run(["ip", "netns", "exec", lab.ns, sys.executable, "-m", "mhgui.cli", "status", "--json",
                        "--system-bus", bus_address, "--vt-port", "1", *extra],
                       capture_output=True, text=True, timeout=60, env=env)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def by_code(s: dict) -> dict[str, dict]:
    return {p["code"]: p for p in s["access"]}


# --------------------------------------------------------------------------- 1. no system bus
def test_no_system_bus_where_none_listens(uplinked, tmp_path):
    s = mhctl_status(uplinked, f"unix:path={tmp_path}/no-bus-here")
    assert list(by_code(s)) == ["no-system-bus"]
    p = by_code(s)["no-system-bus"]
    assert "cannot be reached" in p["message"] and "no-bus-here" in p["message"] and p["permission"] is None
    assert s["taxonomy"]["of_node"] is True


def test_no_system_bus_in_a_flatpak_names_the_finish_arg(uplinked, tmp_path):
    info = tmp_path / "flatpak-info"
    info.write_text(FLATPAK_NO_PERMISSIONS)
    s = mhctl_status(uplinked, f"unix:path={tmp_path}/no-bus-here", flatpak_info=info)
    p = by_code(s)["no-system-bus"]
    assert p["permission"] == "--system-talk-name=org.freedesktop.NetworkManager"
    assert "sandbox gives this app no system bus" in p["message"]


def test_a_bus_that_refuses_this_user(uplinked, make_bus):
    bus = make_bus("", default_policy='<policy context="default"><deny user="root"/><allow user="nobody"/></policy>')
    s = mhctl_status(uplinked, bus.address)
    assert list(by_code(s)) == ["no-system-bus"]
    p = by_code(s)["no-system-bus"]
    assert "refused this user" in p["message"] and "policy" in p["permission"]


# --------------------------------------------------------------------------- 2. NetworkManager not reachable
def test_networkmanager_denied_by_the_policy_not_when_it_is_not_running(uplinked, make_bus):
    bus = make_bus(DENY_BOTH)
    bus.own(NM)
    s = mhctl_status(uplinked, bus.address)
    assert s["sources"]["networkmanager"] == "no-access"
    p = by_code(s)["networkmanager-denied"]
    assert "AccessDenied" in p["message"] and "org.freedesktop.NetworkManager" in p["permission"]
    # the same bus without NetworkManager: not installed / not running is not an access problem
    bus.disown(NM[0])
    s = mhctl_status(uplinked, bus.address)
    assert s["sources"]["networkmanager"] == "absent"
    assert "networkmanager-denied" not in by_code(s)
    # unless a Flatpak hides the name: then absence is the sandbox's doing
    info = uplinked_info = Path(bus.dir) / "flatpak-info"
    uplinked_info.write_text(FLATPAK_NO_PERMISSIONS)
    s = mhctl_status(uplinked, bus.address, flatpak_info=info)
    assert by_code(s)["networkmanager-denied"]["permission"] == "--system-talk-name=org.freedesktop.NetworkManager"
    # and --no-networkmanager asks for none
    s = mhctl_status(uplinked, bus.address, "--no-networkmanager", flatpak_info=info)
    assert "networkmanager-denied" not in by_code(s)


# --------------------------------------------------------------------------- 4. the helper
def test_no_helper_on_the_bus(uplinked, make_bus):
    bus = make_bus(REAL_HELPER_POLICY)
    s = mhctl_status(uplinked, bus.address)
    assert list(by_code(s)) == ["helper-absent"]
    p = by_code(s)["helper-absent"]
    assert "scripts/install-helper" in p["fix"] and set(p["affects"]) == {"rebind", "steering"}


def test_helper_denied_by_the_policy_and_present_under_its_real_policy(uplinked, make_bus):
    denying = make_bus(DENY_BOTH)
    denying.own(HELPER)
    s = mhctl_status(uplinked, denying.address)
    assert list(by_code(s)) == ["helper-denied"]
    assert "netdev" in by_code(s)["helper-denied"]["permission"]
    real = make_bus(REAL_HELPER_POLICY)  # root may call it (resources/io.github.mhgui.MHGui.Helper1.conf)
    real.own(HELPER)
    s = mhctl_status(uplinked, real.address)
    assert s["access"] == [] and s["source_details"]["helper"] == "running"


# --------------------------------------------------------------------------- 3. only loopback
def test_only_loopback_visible(lab, make_bus, tmp_path):  # noqa: F811
    bus = make_bus(REAL_HELPER_POLICY)
    bus.own(HELPER)
    s = mhctl_status(lab, bus.address)
    assert [i["name"] for i in s["interfaces"]] == ["lo"]
    assert list(by_code(s)) == ["loopback-only"] and s["taxonomy"]["of_node"] is False
    assert by_code(s)["loopback-only"]["permission"] is None
    info = tmp_path / "flatpak-info"
    info.write_text(FLATPAK_NO_PERMISSIONS + "\n[System Bus Policy]\nio.github.mhgui.MHGui.Helper1=talk\n")
    s = mhctl_status(lab, bus.address, "--no-networkmanager", flatpak_info=info)
    assert list(by_code(s)) == ["loopback-only"]
    assert by_code(s)["loopback-only"]["permission"] == "--share=network"
    text = subprocess.run(["ip", "netns", "exec", lab.ns, sys.executable, "-m", "mhgui.cli", "status",
                           "--system-bus", bus.address, "--vt-port", "1"],
                          capture_output=True, text=True, timeout=60).stdout
    assert "No access [loopback-only]" in text and "Not this node's taxonomy" in text
    # an uplink appears: the taxonomy is the node's again
    lab.uplink("up0")
    lab.ip("-6", "addr", "add", "2001:db8:a::5/64", "dev", "up0", "nodad")
    s = mhctl_status(lab, bus.address)
    assert s["access"] == [] and s["taxonomy"]["of_node"] is True


# --------------------------------------------------------------------------- the window
def test_window_banner_in_a_sandbox_that_sees_nothing(qtbot, qloop, lab, make_bus, tmp_path, monkeypatch):  # noqa: F811
    """As the app runs: the Runtime's probes and sources on the session loop, the window's banner."""
    from mhgui.runtime import Runtime
    from mhgui.ui.window import LiveController, MainWindow
    bus = make_bus(DENY_BOTH)
    bus.own(NM)
    bus.own(HELPER)
    info = tmp_path / "flatpak-info"
    info.write_text(FLATPAK_NO_PERMISSIONS + "\n[System Bus Policy]\norg.freedesktop.NetworkManager=talk\n"
                    "io.github.mhgui.MHGui.Helper1=talk\n")
    monkeypatch.setenv("MHGUI_FLATPAK_INFO", str(info))
    rt = Runtime(system_bus=bus.address, netns=lab.ns, vt_port=None,
                 settings_file=str(tmp_path / "none.toml"), mip6d_conf=None)

    async def until(pred, what: str, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not pred():
            assert time.monotonic() < deadline, f"timed out waiting for {what}; banner: {win.banner.text()!r}"
            await asyncio.sleep(0.02)

    async def scenario() -> None:
        await rt.start()
        c.refresh()
        text = win.banner.text()
        assert not win.banner.isHidden()
        assert "Only the loopback interface is visible: the Flatpak sandbox" in text
        assert "Needs: --share=network" in text
        assert "NetworkManager is not reachable" in text and "AccessDenied" in text
        assert "does not let this user call the privileged helper" in text
        assert win.headline.text().startswith("Not this node's view: (0,0,0)")
        # the node's network appears (as with --share=network): the loopback line and the disclaimer go
        lab.uplink("up0")
        lab.ip("-6", "addr", "add", "2001:db8:a::5/64", "dev", "up0", "nodad")
        await until(lambda: "loopback" not in win.banner.text(), "the loopback line to go")
        await until(lambda: win.headline.text().startswith("(1,0,1)"), "(1,0,1)")
        assert "NetworkManager is not reachable" in win.banner.text()

    c = LiveController(rt.store, rt.clock, allow_ula=lambda: rt.allow_ula)
    win = MainWindow(c)
    qtbot.addWidget(win)
    win.access_problems = rt.access_problems
    try:
        qloop.run_until_complete(scenario())
    finally:
        c.close()
        qloop.run_until_complete(rt.stop())
