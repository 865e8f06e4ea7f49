"""A private system bus for the engine's control API tests (tests/test_engine_dbus.py, test_engine_driver.py).

Recipe: /work/shared/domain/helper-dbus.md, as tests/test_helper.py: a dbus-daemon of
``<type>system</type>`` with Debian's default policy, the REAL
``resources/io.github.mhgui.MHGui.MobileNode1.conf`` and ``tests/dbus/system.d/test-mocks.conf``;
polkit is python-dbusmock's ``polkitd`` template (decides by action id). A stand-in for
``MobileNodeDaemon`` (:class:`StandInDaemon`, recording calls) is served in the test's own event
loop by the real :func:`mhgui.engine.mn_dbus.serve`; unprivileged callers are ``dbus-send`` run
through ``setpriv`` (as asyncio subprocesses: the service answers in the same loop).
"""

from __future__ import annotations

import asyncio
import collections
import copy
import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

# importing this module skips the importing test module where the engine's private bus cannot run
if os.geteuid() != 0:
    pytest.skip("the engine tests need root (only root may own the engine's bus name)", allow_module_level=True)
for _tool in ("dbus-daemon", "dbus-send", "setpriv"):
    if shutil.which(_tool) is None:
        pytest.skip(f"{_tool} is not installed", allow_module_level=True)
pytest.importorskip("dbus")

from privatebus import PrivateBus  # noqa: E402
from mhgui.engine.mn import RebindDone

REPO = Path(__file__).resolve().parent.parent
POLICY_CONF = REPO / "resources" / "io.github.mhgui.MHGui.MobileNode1.conf"
NOBODY = 65534

HOA1 = "2001:db8:1::100"
HOA2 = "2001:db8:1::200"
HOA3 = "2001:db8:1::300"
HA = "2001:db8:1::1"
ELAPSED_MS = 12.5  # what the stand-in says every confirmed rebind took


class Stack(PrivateBus):
    """dbus-daemon (system type, the engine's real policy) + dbusmock polkitd."""

    def __init__(self) -> None:
        super().__init__(POLICY_CONF, polkit=True, systemd=False, prefix="mhgui-engine-bus-")


def start_stack() -> Stack:
    stack = Stack()
    try:
        return stack.start()
    except BaseException:  # helper-dbus.md pitfall 5: no teardown runs for a failed set-up
        stack.stop()
        raise


async def dbus_send(stack: Stack, member: str, *args: str, groups: str | None = None,
                    dest: str = "io.github.mhgui.MHGui.MobileNode1", path: str = "/io/github/mhgui/MHGui/MobileNode1",
                    iface: str = "io.github.mhgui.MHGui.MobileNode1") -> tuple[int, str, str]:
    """dbus-send as nobody (no groups, or ``groups`` = "--groups=GID"): (status, stdout, stderr)."""
    who = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", groups or "--clear-groups"]
    proc = await asyncio.create_subprocess_exec(
        *who, "dbus-send", "--system", "--print-reply", f"--dest={dest}", path, f"{iface}.{member}", *args,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "DBUS_SYSTEM_BUS_ADDRESS": stack.address, "LANG": "C"},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    return proc.returncode, out.decode(), err.decode()


# --------------------------------------------------------------------------- the stand-in daemon


def _binding(hoa: str, state: str, coa: str | None, interface: str | None, **kw) -> dict:
    b = {"hoa": hoa, "state": state, "coa": coa, "interface": interface, "ifindex": None, "family": None,
         "seq": 7, "lifetime": None, "remaining": None, "nat": False, "error": None, "pending_interface": None,
         "preference": ["eth0", "wlan0"], "backup": ["wwan0"], "never": [], "default_route": hoa == HOA1}
    b.update(kw)
    return b


class StandInDaemon:
    """What :func:`mhgui.engine.mn_dbus.serve` needs of a ``MobileNodeDaemon``, recording every call.

    Uplinks: eth0 (IPv6), wlan0 (IPv4 behind NAT), wwan0 (dual stack, probes lost), usb0 (no address).
    HoA1 is registered through eth0, HoA2 waits for its BA through wlan0, HoA3 is unbound.
    """

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.gate: asyncio.Event | None = None
        self.listeners: list = []
        self.restarts = 0
        self.port = 4191
        self.core = SimpleNamespace(counters=collections.Counter({"bu-sent": 3, "auth-failed": 1}))
        self.cfg = SimpleNamespace(
            identity="mn1@example.net",
            home_agent=SimpleNamespace(address=HA, addresses=("2001:db8:ffff::1", "192.0.2.1"), port=4191),
            home_addresses=(SimpleNamespace(address=HOA1), SimpleNamespace(address=HOA2), SimpleNamespace(address=HOA3)))
        self._uplinks = [
            {"name": "eth0", "ifindex": 2, "carrier": True, "coa6": "2001:db8:a::5", "coa4": None, "family": 6,
             "mtu": 1500, "metered": False, "reachable": True, "rtt_ms": 1.5, "srtt_ms": 1.4, "loss": 0.0,
             "probe_interval_ms": 250.0, "probes_sent": 40, "probes_answered": 40},
            {"name": "wlan0", "ifindex": 3, "carrier": True, "coa6": None, "coa4": "10.0.3.5", "family": 4,
             "mtu": 1500, "metered": False, "reachable": True, "rtt_ms": 9.0, "srtt_ms": 8.5, "loss": 0.0,
             "probe_interval_ms": 250.0, "probes_sent": 40, "probes_answered": 40},
            {"name": "wwan0", "ifindex": 4, "carrier": True, "coa6": "2001:db8:c::9", "coa4": "100.64.0.9",
             "family": 6, "mtu": 1400, "metered": True, "reachable": False, "rtt_ms": None, "srtt_ms": None,
             "loss": 1.0, "probe_interval_ms": 5000.0, "probes_sent": 4, "probes_answered": 0},
            {"name": "usb0", "ifindex": 5, "carrier": True, "coa6": None, "coa4": None, "family": None,
             "mtu": 1500, "metered": False, "reachable": None, "rtt_ms": None, "srtt_ms": None, "loss": 0.0,
             "probe_interval_ms": 250.0, "probes_sent": 0, "probes_answered": 0},
        ]
        self._bindings = [
            _binding(HOA1, "registered", "2001:db8:a::5", "eth0", ifindex=2, family=6, lifetime=600,
                     remaining=598.7),
            _binding(HOA2, "waiting-ack", None, None, pending_interface="wlan0"),
            _binding(HOA3, "unbound", None, None),
        ]

    # ---- the API the service uses
    def bindings(self) -> list[dict]:
        return copy.deepcopy(self._bindings)

    def uplinks(self) -> list[dict]:
        return copy.deepcopy(self._uplinks)

    def subscribe(self, listener) -> None:
        self.listeners.append(listener)

    async def rebind(self, hoa: str, ifname: str) -> RebindDone:
        self.calls.append(("rebind", hoa, ifname))
        await asyncio.sleep(0)
        if self.gate is not None:  # a test holds the answer (a home agent that takes its time)
            await self.gate.wait()
        b = next((b for b in self._bindings if b["hoa"] == hoa), None)
        u = next((u for u in self._uplinks if u["name"] == ifname), None)
        if b is None:
            return RebindDone(1, hoa, False, 0.0, None, ifname, f"{hoa} is not one of this node's home addresses")
        if u is None:
            return RebindDone(1, hoa, False, 0.0, None, ifname, f"{ifname} is not an access interface of this node")
        coa = u["coa6"] if u["family"] == 6 else u["coa4"]
        b.update(state="registered", coa=coa, interface=ifname, ifindex=u["ifindex"], family=u["family"],
                 lifetime=600, remaining=600.0, pending_interface=None, seq=b["seq"] + 1)
        self.emit("bindings", {"event": "registered", "hoa": hoa, "uplink": ifname, "coa": coa,
                               "nat": u["family"] == 4, "lifetime": 600})
        return RebindDone(1, hoa, True, ELAPSED_MS, coa, ifname, None)

    def set_preferences(self, hoa: str, preference, backup, never) -> None:
        self.calls.append(("set_preferences", hoa, list(preference), list(backup), list(never)))
        b = next((b for b in self._bindings if b["hoa"] == hoa), None)
        if b is None:
            raise ValueError(f"{hoa} is not one of this node's home addresses")
        both = (set(preference) | set(backup)) & set(never)
        if both:
            raise ValueError(f"{', '.join(sorted(both))}: both used and marked 'never'")
        b.update(preference=list(preference), backup=list(backup), never=list(never))
        self.emit("preferences", {"hoa": hoa})

    def request_restart(self) -> None:
        self.restarts += 1

    # ---- for the tests
    def emit(self, what: str, detail: dict) -> None:
        for listener in list(self.listeners):
            listener(what, detail)

    def set_bindings(self, bindings: list[dict]) -> None:
        self._bindings = copy.deepcopy(bindings)
        self.emit("bindings", {"event": "test"})
