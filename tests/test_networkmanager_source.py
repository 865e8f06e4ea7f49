"""Tests of mhgui.sources.networkmanager.

Two back ends:

- a REAL NetworkManager 1.42 in a network namespace on a private system bus
  (``tests/nmlab.py``, started once per module; marked ``nm`` and ``netns``);
- python-dbusmock's ``networkmanager`` template, only for what the real one
  cannot show here (Wi-Fi, modems, IP6Config objects appearing and going, hostile
  replies), plus private dbus-daemons for "no access", "absent" and a dropped bus.

Every test feeds a :class:`StateStore` and waits on conditions with a timeout.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import dbus
import pytest
import pytest_asyncio
from dbusmock import MOCK_IFACE, SpawnedMock
from dbusmock.testcase import BusType

from mhgui.core.analysis import analyse
from mhgui.core.model import Address, Interface, InterfaceKind
from mhgui.core.state import (
    AddressUpsert, LinkUpsert, NmDevice, NmDeviceRemoved, NmSnapshot, NmVpnsSet, SourceStatus, StateStore,
)
from mhgui.sources.networkmanager import DEVICE_KINDS, NetworkManagerSource, device_kind

try:
    from nmlab import NmLab, missing_requirements
except ImportError:  # tests/ imported as a package
    from tests.nmlab import NmLab, missing_requirements

NM = "org.freedesktop.NetworkManager"
NM_PATH = "/org/freedesktop/NetworkManager"
DEVICE_IFACE = "org.freedesktop.NetworkManager.Device"
WIRED_IFACE = "org.freedesktop.NetworkManager.Device.Wired"
IP6_IFACE = "org.freedesktop.NetworkManager.IP6Config"
IP4_IFACE = "org.freedesktop.NetworkManager.IP4Config"
ACTIVE_IFACE = "org.freedesktop.NetworkManager.Connection.Active"
PROPS = "org.freedesktop.DBus.Properties"


# --------------------------------------------------------------------------- helpers
async def wait_until(pred, what: str, timeout: float = 5.0, interval: float = 0.01) -> float:
    """Poll ``pred()`` until true; returns the seconds it took. Fails with ``what`` on timeout."""
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    while not pred():
        if loop.time() - t0 > timeout:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(interval)
    return loop.time() - t0


@dataclass
class Harness:
    """A source feeding a store; records every event and every loop exception."""

    store: StateStore = field(default_factory=StateStore)
    events: list = field(default_factory=list)
    loop_errors: list = field(default_factory=list)
    src: NetworkManagerSource | None = None
    lab: NmLab | None = None

    def sink(self, ev) -> None:
        self.events.append(ev)
        self.store.apply(ev)

    def make(self, address: str | None, **kw) -> NetworkManagerSource:
        self.src = NetworkManagerSource(self.sink, address, **kw)
        return self.src

    @property
    def status(self) -> tuple[str, str] | None:
        return self.store.sources.get("networkmanager")

    def statuses(self) -> list[str]:
        return [e.status for e in self.events if isinstance(e, SourceStatus)]

    def dev(self, name: str) -> NmDevice | None:
        found = [d for d in self.store.nm_devices.values() if d.name == name]
        assert len(found) <= 1, found
        return found[0] if found else None

    def snapshots(self) -> list[NmSnapshot]:
        return [e for e in self.events if isinstance(e, NmSnapshot)]


@pytest_asyncio.fixture
async def harness(caplog):
    """A Harness; after the test: source stopped, no loop exception, no ERROR log from the source."""
    caplog.set_level(logging.DEBUG, logger="mhgui")
    h = Harness()
    loop = asyncio.get_running_loop()
    old = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, ctx: h.loop_errors.append(ctx))
    try:
        yield h
        if h.src is not None:
            await h.src.stop()
        await asyncio.sleep(0)
        assert h.loop_errors == [], h.loop_errors
        errors = [r for r in caplog.records if r.name.startswith("mhgui") and r.levelno >= logging.ERROR]
        assert errors == [], [r.getMessage() for r in errors]
    finally:
        if h.src is not None:
            await h.src.stop()
        loop.set_exception_handler(old)


class PrivateBus:
    """A dbus-daemon on a socket of our own (so it can be killed and restarted)."""

    def __init__(self, auth: str = "EXTERNAL") -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="mhgui-bus-"))
        self.socket = self.dir / "sock"
        self.address = f"unix:path={self.socket}"
        extra = "<allow_anonymous/>" if auth == "ANONYMOUS" else ""
        (self.dir / "bus.conf").write_text(
            f"""<busconfig><type>system</type><listen>{self.address}</listen><auth>{auth}</auth>{extra}
            <policy context="default"><allow user="*"/><allow send_destination="*"/>
            <allow receive_sender="*"/><allow own="*"/></policy></busconfig>"""
        )
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.socket.unlink(missing_ok=True)
        self.proc = subprocess.Popen(
            ["dbus-daemon", f"--config-file={self.dir / 'bus.conf'}", "--nofork", "--print-address=1"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline().strip(), "dbus-daemon did not start"
        self.proc.stdout.close()

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def cleanup(self) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def private_bus():
    if shutil.which("dbus-daemon") is None:
        pytest.skip("dbus-daemon is not installed")
    bus = PrivateBus()
    bus.start()
    yield bus
    bus.cleanup()


# --------------------------------------------------------------------------- dbusmock helpers
def _system_conn():
    return BusType.SYSTEM.get_connection()


def _wait_name_free(timeout: float = 5.0) -> None:
    conn = _system_conn()
    deadline = time.monotonic() + timeout
    while conn.name_has_owner(NM):
        assert time.monotonic() < deadline, "a previous NetworkManager mock still owns the name"
        time.sleep(0.01)


def _spawn_mock() -> SpawnedMock:
    _wait_name_free()
    return SpawnedMock.spawn_with_template(
        "networkmanager", bustype=BusType.SYSTEM, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def _end_mock(mock: SpawnedMock) -> None:
    mock.terminate()
    if mock.process.poll() is None:
        mock.process.kill()
    mock.process.wait()


@pytest.fixture
def nm_mock(dbusmock_system):
    mock = _spawn_mock()
    yield mock
    _end_mock(mock)


def _obj(path: str):
    return _system_conn().get_object(NM, path)


def _mock_call(path: str, method: str, *args):
    return getattr(_obj(path), method)(*args, dbus_interface=MOCK_IFACE)


def _set(path: str, iface: str, name: str, value) -> None:
    """Standard Properties.Set on a mock object: it emits a standard PropertiesChanged."""
    _obj(path).Set(iface, name, value, dbus_interface=PROPS)


def _address_data(*pairs: tuple[str, int]):
    return dbus.Array(
        [dbus.Dictionary({"address": a, "prefix": dbus.UInt32(p)}, signature="sv") for a, p in pairs],
        signature="a{sv}",
    )


def _add_ip6config(path: str, *pairs: tuple[str, int]) -> None:
    _mock_call(NM_PATH, "AddObject", path, IP6_IFACE, {"AddressData": _address_data(*pairs)},
               dbus.Array([], signature="(ssss)"))


def _emit_device_signal(member: str, path: str, signature: str = "o") -> None:
    _mock_call(NM_PATH, "EmitSignal", NM, member, signature, [path])


# --------------------------------------------------------------------------- the real NetworkManager
@pytest.fixture(scope="module")
def nm_lab():
    why = missing_requirements()
    if why:
        pytest.skip(f"real NetworkManager lab unavailable: {why}")
    # `timeout pytest ...` ends pytest with SIGTERM, which skips fixture teardown and would
    # leave NetworkManager, the bus and the namespaces behind: turn it into KeyboardInterrupt
    old_term = None
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        old_term = signal.signal(signal.SIGTERM, _sigterm_to_interrupt)
    try:
        lab = NmLab().setup()
        try:
            yield lab
        finally:
            lab.teardown()
    finally:
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)


def _sigterm_to_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


@pytest_asyncio.fixture
async def real(nm_lab, harness):
    # NetworkManager runs in another netns than this process: resolve names there
    harness.make(nm_lab.address, ifindex_of=nm_lab.ifindex_or_none)
    await harness.src.start()
    harness.lab = nm_lab
    return harness


@pytest.mark.nm
@pytest.mark.netns
@pytest.mark.asyncio
async def test_real_devices_listed_at_start(real):
    lab = real.lab
    assert real.statuses() == ["running"]
    assert len(real.snapshots()) == 1
    snap_names = {d.name for d in real.snapshots()[0].devices}
    assert {"lo", "veth-nm", "veth-um"} <= snap_names
    veth = real.dev("veth-nm")
    assert veth is not None
    assert veth.ifindex == lab.ifindex("veth-nm")
    assert veth.kind is InterfaceKind.ETHERNET
    assert veth.managed is True
    assert veth.state >= 20  # unavailable/disconnected/activated, not unmanaged
    assert veth.carrier is True  # the peer is up
    assert veth.path.startswith("/org/freedesktop/NetworkManager/Devices/")
    um = real.dev("veth-um")
    assert um is not None and um.managed is False and um.state == 10
    assert um.ifindex == lab.ifindex("veth-um")
    lo = real.dev("lo")
    assert lo is not None and lo.kind is InterfaceKind.LOOPBACK and lo.ifindex == 1
    assert ("::1", 128) in lo.ip6_addresses


@pytest.mark.nm
@pytest.mark.netns
@pytest.mark.asyncio
async def test_real_device_added_and_removed(real):
    lab = real.lab
    lab.ip("link", "add", "veth-x", "type", "veth", "peer", "name", "veth-xp", "netns", lab.peer_ns)
    try:
        took = await wait_until(lambda: real.dev("veth-x") is not None, "veth-x to appear")
        dev = real.dev("veth-x")
        assert dev.ifindex == lab.ifindex("veth-x")
        assert dev.kind is InterfaceKind.ETHERNET
        print(f"\nveth-x seen {took * 1000:.0f} ms after 'ip link add'")
    finally:
        lab.ip("link", "del", "veth-x")
    path = dev.path
    took = await wait_until(lambda: path not in real.store.nm_devices, "veth-x to go")
    assert NmDeviceRemoved(path) in real.events
    print(f"veth-x gone {took * 1000:.0f} ms after 'ip link del'")


@pytest.mark.nm
@pytest.mark.netns
@pytest.mark.asyncio
async def test_real_state_changes(real):
    lab = real.lab
    assert real.dev("veth-nm").managed is True
    lab.nmcli("device", "set", "veth-nm", "managed", "no")
    try:
        took = await wait_until(
            lambda: real.dev("veth-nm").state == 10 and real.dev("veth-nm").managed is False,
            "veth-nm unmanaged (state 10)",
        )
        print(f"\nunmanaged seen after {took * 1000:.0f} ms")
    finally:
        lab.nmcli("device", "set", "veth-nm", "managed", "yes")
    took = await wait_until(
        lambda: real.dev("veth-nm").state >= 20 and real.dev("veth-nm").managed is True,
        "veth-nm managed again",
    )
    print(f"managed again after {took * 1000:.0f} ms (state {real.dev('veth-nm').state})")


@pytest.mark.nm
@pytest.mark.netns
@pytest.mark.asyncio
async def test_real_ipv6_address_added_and_removed(real):
    lab = real.lab
    want = ("2001:db8:1::10", 64)
    assert want not in real.dev("veth-nm").ip6_addresses
    lab.ip("-6", "addr", "add", "2001:db8:1:0::0010/64", "dev", "veth-nm", "nodad")
    try:
        took = await wait_until(lambda: want in real.dev("veth-nm").ip6_addresses, "2001:db8:1::10/64 on veth-nm")
        print(f"\naddress seen after {took * 1000:.0f} ms")
    finally:
        lab.ip("-6", "addr", "del", "2001:db8:1::10/64", "dev", "veth-nm")
    took = await wait_until(lambda: want not in real.dev("veth-nm").ip6_addresses, "2001:db8:1::10 to go")
    print(f"address gone after {took * 1000:.0f} ms")


@pytest.mark.nm
@pytest.mark.netns
@pytest.mark.asyncio
async def test_real_carrier_loss(real):
    lab = real.lab
    dev = lambda: real.dev("veth-nm")  # noqa: E731
    # NetworkManager defers carrier loss only on an activated device: an address added
    # from outside makes it activate an in-memory "external" connection (state 100)
    lab.ip("-6", "addr", "add", "2001:db8:2::1/64", "dev", "veth-nm", "nodad")
    try:
        await wait_until(lambda: dev().carrier is True and dev().state == 100, "veth-nm activated with carrier")
        lab.ip("link", "set", "veth-peer", "down", ns=lab.peer_ns)
        t_carrier = await wait_until(lambda: dev().carrier is False, "carrier False")
        assert dev().state == 100  # carrier loss is deferred by carrier-wait-timeout
        t_state = await wait_until(lambda: dev().state == 20, "state 20 (unavailable)", timeout=5)
        print(f"\ncarrier False after {t_carrier * 1000:.0f} ms; state 100->20 {t_state * 1000:.0f} ms later")
        # the lab sets carrier-wait-timeout=1000 ms (NetworkManager's default is 6000 ms)
        assert 0.5 < t_state < 4.0
    finally:
        lab.ip("link", "set", "veth-peer", "up", ns=lab.peer_ns)
        lab.ip("-6", "addr", "del", "2001:db8:2::1/64", "dev", "veth-nm")
    took = await wait_until(lambda: dev().carrier is True and dev().state >= 30, "carrier back and state >= 30")
    print(f"carrier back and state {dev().state} after {took * 1000:.0f} ms")


@pytest.mark.nm
@pytest.mark.netns
@pytest.mark.asyncio
async def test_real_networkmanager_stopped_and_restarted(real):
    lab = real.lab
    ifindex = real.dev("veth-nm").ifindex
    assert real.store.nm_devices
    lab.stop_nm()
    took = await wait_until(lambda: real.status and real.status[0] == "stopped", "status stopped")
    assert real.status == ("stopped", "NetworkManager left the bus; device data is stale")
    assert real.store.nm_devices == {}
    print(f"\nstopped seen {took * 1000:.0f} ms after NetworkManager exited")
    t0 = time.monotonic()
    lab.start_nm()
    await wait_until(lambda: real.status == ("running", ""), "status running again")
    await wait_until(lambda: real.dev("veth-nm") is not None, "veth-nm re-enumerated")
    assert real.dev("veth-nm").ifindex == ifindex
    assert len(real.snapshots()) == 2
    assert real.statuses()[-2:] == ["stopped", "running"]
    print(f"re-enumerated {(time.monotonic() - t0) * 1000:.0f} ms after starting NetworkManager")


# --------------------------------------------------------------------------- dbusmock: what the real one cannot show
@pytest.mark.asyncio
async def test_mock_wifi_and_modem(dbusmock_system, nm_mock, harness):
    wifi = str(_mock_call("/org/freedesktop", "AddWiFiDevice", "wlan0", "wlp2s0", 100))
    harness.make(dbusmock_system.address)
    await harness.src.start()
    assert harness.statuses() == ["running"]
    w = harness.dev("wlp2s0")
    assert w is not None and w.kind is InterfaceKind.WIFI and w.path == wifi and w.state == 100
    assert w.ifindex == 0  # the template sets no Ifindex
    assert w.carrier is None and w.ip6_addresses == ()

    modem = "/org/freedesktop/NetworkManager/Devices/wwan0"
    _mock_call(NM_PATH, "AddObject", modem, DEVICE_IFACE, {
        "DeviceType": dbus.UInt32(8), "Interface": "cdc-wdm0", "IpInterface": "", "State": dbus.UInt32(30),
        "Managed": True, "Ip6Config": dbus.ObjectPath("/"),
    }, dbus.Array([], signature="(ssss)"))
    _emit_device_signal("DeviceAdded", modem)
    await wait_until(lambda: harness.dev("cdc-wdm0") is not None, "the modem")
    m = harness.dev("cdc-wdm0")
    assert m.kind is InterfaceKind.WWAN and m.path == modem and m.state == 30 and m.managed is True
    assert m.ifindex == 0  # a control port is no network link
    # activated: its data interface (IpInterface) gives the ifindex; "lo" stands in for wwan0 here
    _set(modem, DEVICE_IFACE, "IpInterface", "lo")
    await wait_until(lambda: harness.dev("cdc-wdm0").ifindex == socket.if_nametoindex("lo"), "the modem's ifindex")

    _emit_device_signal("DeviceRemoved", modem)
    await wait_until(lambda: harness.dev("cdc-wdm0") is None, "the modem to go")
    assert NmDeviceRemoved(modem) in harness.events
    assert harness.dev("wlp2s0") is not None


@pytest.mark.asyncio
async def test_mock_ip6config_follows_path(dbusmock_system, nm_mock, harness):
    eth = str(_mock_call("/org/freedesktop", "AddEthernetDevice", "eth0", "eth0", 100))
    _mock_call(eth, "AddProperty", DEVICE_IFACE, "Ip6Config", dbus.ObjectPath("/"))
    _mock_call(eth, "AddProperty", DEVICE_IFACE, "Ifindex", dbus.Int32(7))
    harness.make(dbusmock_system.address)
    await harness.src.start()
    d = harness.dev("eth0")
    assert d.ip6_addresses == () and d.ifindex == 7 and d.kind is InterfaceKind.ETHERNET
    assert d.carrier is False  # the template's Wired.Carrier

    ip6a = "/org/freedesktop/NetworkManager/IP6Config/1"
    ip6b = "/org/freedesktop/NetworkManager/IP6Config/2"
    _add_ip6config(ip6a, ("2001:db8:1:0:0:0:0:10", 64), ("fe80::1", 64))
    _add_ip6config(ip6b, ("2001:db8:2::1", 48))
    dev = lambda: harness.dev("eth0")  # noqa: E731

    _set(eth, DEVICE_IFACE, "Ip6Config", dbus.ObjectPath(ip6a))
    await wait_until(lambda: dev().ip6_addresses == (("2001:db8:1::10", 64), ("fe80::1", 64)), "IP6Config/1")

    _set(ip6a, IP6_IFACE, "AddressData", _address_data(("2001:db8:1::11", 64)))
    await wait_until(lambda: dev().ip6_addresses == (("2001:db8:1::11", 64),), "AddressData change on IP6Config/1")

    _set(eth, DEVICE_IFACE, "Ip6Config", dbus.ObjectPath(ip6b))
    await wait_until(lambda: dev().ip6_addresses == (("2001:db8:2::1", 48),), "IP6Config/2")

    _set(eth, DEVICE_IFACE, "Ip6Config", dbus.ObjectPath("/"))
    await wait_until(lambda: dev().ip6_addresses == (), "Ip6Config '/'")

    # configs no longer followed must not touch the device; a later State change is the barrier
    _set(ip6a, IP6_IFACE, "AddressData", _address_data(("2001:db8:9::9", 64)))
    _set(ip6b, IP6_IFACE, "AddressData", _address_data(("2001:db8:9::8", 64)))
    _set(eth, DEVICE_IFACE, "State", dbus.UInt32(30))
    await wait_until(lambda: dev().state == 30, "state 30")
    assert dev().ip6_addresses == ()

    _set(eth, WIRED_IFACE, "Carrier", True)
    await wait_until(lambda: dev().carrier is True, "carrier True")


@pytest.mark.asyncio
async def test_mock_hostile_replies_are_skipped(dbusmock_system, nm_mock, harness, caplog):
    good = str(_mock_call("/org/freedesktop", "AddEthernetDevice", "eth0", "eth0", 100))
    bad = "/org/freedesktop/NetworkManager/Devices/bad0"
    _mock_call(NM_PATH, "AddObject", bad, DEVICE_IFACE, {
        "DeviceType": "banana", "Interface": "bad0", "State": dbus.UInt32(100),
    }, dbus.Array([], signature="(ssss)"))
    harness.make(dbusmock_system.address)
    await harness.src.start()
    assert harness.statuses() == ["running"]
    assert [d.name for d in harness.snapshots()[0].devices] == ["eth0"]
    assert any("bad0" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)

    # wrong types in a PropertiesChanged: ignored; a later good change is the barrier
    _set(good, DEVICE_IFACE, "State", "activated")
    _mock_call(good, "AddProperty", DEVICE_IFACE, "Ip6Config", dbus.ObjectPath("/"))
    _set(good, DEVICE_IFACE, "Ip6Config", "/not/a/path/type")
    # a device whose IP6Config holds garbage: skipped when added
    ip6 = "/org/freedesktop/NetworkManager/IP6Config/9"
    _mock_call(NM_PATH, "AddObject", ip6, IP6_IFACE, {"AddressData": _address_data(("not-an-ip", 64))},
               dbus.Array([], signature="(ssss)"))
    evil = "/org/freedesktop/NetworkManager/Devices/evil0"
    _mock_call(NM_PATH, "AddObject", evil, DEVICE_IFACE, {
        "DeviceType": dbus.UInt32(1), "Interface": "evil0", "State": dbus.UInt32(100),
        "Ip6Config": dbus.ObjectPath(ip6),
    }, dbus.Array([], signature="(ssss)"))
    _emit_device_signal("DeviceAdded", evil)
    # DeviceAdded for an object that does not exist (vanished): no device, no error
    _emit_device_signal("DeviceAdded", "/org/freedesktop/NetworkManager/Devices/ghost")
    # DeviceAdded with the wrong signature: ignored
    _emit_device_signal("DeviceAdded", "eth0", signature="s")
    _set(good, DEVICE_IFACE, "State", dbus.UInt32(20))
    await wait_until(lambda: harness.dev("eth0").state == 20, "state 20")
    assert harness.dev("eth0").ip6_addresses == ()
    assert {d.name for d in harness.store.nm_devices.values()} == {"eth0"}
    assert harness.status == ("running", "")
    assert any("evil0" in r.getMessage() and "not-an-ip" in r.getMessage() for r in caplog.records)


@pytest.mark.asyncio
async def test_absent_then_running_then_stopped(dbusmock_system, harness, monkeypatch):
    # bus_address None: the system bus from DBUS_SYSTEM_BUS_ADDRESS
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", dbusmock_system.address)
    _wait_name_free()
    harness.make(None)
    await harness.src.start()
    assert harness.statuses() == ["absent"]
    assert "NetworkManager is not running" in harness.status[1]
    assert harness.src.running
    mock = _spawn_mock()
    try:
        await wait_until(lambda: harness.status == ("running", ""), "running after the mock appeared")
        assert harness.snapshots() == [NmSnapshot(())]
        _mock_call("/org/freedesktop", "AddWiFiDevice", "wlan0", "wlan0", 30)
        await wait_until(lambda: harness.dev("wlan0") is not None, "wlan0")
    finally:
        _end_mock(mock)
    await wait_until(lambda: harness.status[0] == "stopped", "stopped after the mock left")
    assert harness.store.nm_devices == {}
    assert harness.statuses() == ["absent", "running", "stopped"]


@pytest.mark.asyncio
async def test_start_is_idempotent_and_stop_ends_it(dbusmock_system, nm_mock, harness):
    eth = str(_mock_call("/org/freedesktop", "AddEthernetDevice", "eth0", "eth0", 100))
    src = harness.make(dbusmock_system.address)
    await asyncio.gather(src.start(), src.start())
    await src.start()
    assert len(harness.snapshots()) == 1 and harness.statuses() == ["running"]
    _set(eth, DEVICE_IFACE, "State", dbus.UInt32(30))
    await wait_until(lambda: harness.dev("eth0").state == 30, "state 30")
    await src.stop()
    await src.stop()
    assert not src.running
    n = len(harness.events)
    _set(eth, DEVICE_IFACE, "State", dbus.UInt32(100))
    await asyncio.sleep(0.2)
    assert len(harness.events) == n, harness.events[n:]
    await src.start()  # startable again after stop
    assert harness.dev("eth0").state == 100


@pytest.mark.asyncio
async def test_no_access_when_the_bus_is_unreachable(harness, tmp_path):
    import socket
    # no system bus at all: NetworkManager is absent, said plainly
    missing = tmp_path / "no-such-socket"
    src = harness.make(f"unix:path={missing}")
    await src.start()
    assert harness.statuses() == ["absent"]
    assert "No D-Bus system bus here" in harness.status[1] and str(missing) in harness.status[1]
    assert not src.running
    # a socket file nobody listens on: the bus is there but cannot be reached
    sock = tmp_path / "nobody-listens"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(sock))
    s.close()
    src = harness.make(f"unix:path={sock}")
    await src.start()
    assert harness.status[0] == "no-access"
    detail = harness.status[1]
    assert "Cannot reach the D-Bus system bus" in detail and str(sock) in detail
    assert not src.running
    # an address that is not an address
    h2 = NetworkManagerSource(harness.sink, "bogus-transport:x=1")
    await h2.start()
    assert harness.status[0] == "no-access" and "bogus-transport" in harness.status[1]


@pytest.mark.asyncio
async def test_no_access_when_the_bus_refuses_us(harness):
    bus = PrivateBus(auth="ANONYMOUS")  # rejects our EXTERNAL authentication
    bus.start()
    try:
        src = harness.make(bus.address)
        await src.start()
        assert harness.statuses() == ["no-access"]
        assert "refused this user" in harness.status[1]
        assert not src.running
    finally:
        bus.cleanup()


@pytest.mark.asyncio
async def test_bus_drop_reports_and_reconnects(private_bus, harness):
    src = harness.make(private_bus.address, reconnect_delays=(0.05, 0.1))
    await src.start()
    assert harness.statuses() == ["absent"]
    private_bus.kill()
    await wait_until(lambda: harness.status[0] == "no-access", "no-access after the bus died")
    assert "Lost the connection" in harness.status[1]
    await asyncio.sleep(0.3)  # a few failed attempts while the bus is down
    private_bus.start()
    took = await wait_until(lambda: harness.status[0] == "absent", "reconnected (absent again)")
    assert harness.statuses() == ["absent", "no-access", "absent"]
    assert src.running
    print(f"\nreconnected {took * 1000:.0f} ms after the bus came back")


@pytest.mark.asyncio
async def test_stop_cancels_the_reconnect_backoff(private_bus, harness):
    src = harness.make(private_bus.address, reconnect_delays=(60.0,))
    await src.start()
    assert harness.statuses() == ["absent"]  # connected to a bus without NetworkManager
    private_bus.kill()
    await wait_until(lambda: harness.status[0] == "no-access", "no-access after the bus died")
    t0 = time.monotonic()
    await asyncio.wait_for(src.stop(), 2)
    assert time.monotonic() - t0 < 1.0
    assert not src.running


@pytest.mark.asyncio
async def test_reconnect_gives_up_after_max_attempts(private_bus, harness):
    src = harness.make(private_bus.address, reconnect_delays=(0.01,), max_reconnect_attempts=3)
    await src.start()
    assert harness.statuses() == ["absent"]
    private_bus.kill()
    await wait_until(lambda: "Gave up" in (harness.status or ("", ""))[1], "giving up")
    assert "after 3 attempts" in harness.status[1]
    assert not src.running


def test_device_type_numbers():
    # NMDeviceType, nm-dbus-interface.h
    assert device_kind(1) is InterfaceKind.ETHERNET
    assert device_kind(20) is InterfaceKind.ETHERNET
    assert device_kind(2) is InterfaceKind.WIFI
    assert device_kind(8) is InterfaceKind.WWAN
    for tunnel in (16, 17, 29):  # tun, ip tunnel, wireguard
        assert device_kind(tunnel) is InterfaceKind.TUNNEL
    assert device_kind(32) is InterfaceKind.LOOPBACK
    # bridge, macvlan, vxlan, dummy, OVS interface/port/bridge, vrf, ipvlan, geneve: no access links
    for virtual in (13, 18, 19, 22, 24, 25, 26, 31, 34, 35):
        assert device_kind(virtual) is InterfaceKind.VIRTUAL
    # bluetooth, infiniband, bond, vlan, adsl, generic, team, macsec, ppp, wifi-p2p, unknown: access links
    for other in (0, 5, 9, 10, 11, 12, 14, 15, 21, 23, 30, 999):
        assert device_kind(other) is InterfaceKind.OTHER
    assert set(DEVICE_KINDS) == {1, 2, 8, 13, 16, 17, 18, 19, 20, 22, 24, 25, 26, 29, 31, 32, 34, 35}


# --------------------------------------------------------------------------- issue 13.5 and 13.6
def _add_active(path: str, props: dict) -> None:
    _mock_call(NM_PATH, "AddObject", path, ACTIVE_IFACE, props, dbus.Array([], signature="(ssss)"))


def _add_ipconfig(path: str, iface: str, *pairs: tuple[str, int]) -> None:
    _mock_call(NM_PATH, "AddObject", path, iface, {"AddressData": _address_data(*pairs)},
               dbus.Array([], signature="(ssss)"))


def _set_active_connections(*paths: str) -> None:
    _mock_call(NM_PATH, "SetProperty", NM_PATH, NM, "ActiveConnections",
               dbus.Array([dbus.ObjectPath(p) for p in paths], signature="o"))


@pytest.mark.asyncio
async def test_mock_vpn_without_an_interface_of_its_own(dbusmock_system, nm_mock, harness):
    """An IPsec VPN (libreswan, strongswan) has no device: its Connection.Active object's own Ip4Config and
    Ip6Config hold its addresses, which sit on the Ethernet interface. They are the VPN's, not CoAs."""
    eth = str(_mock_call("/org/freedesktop", "AddEthernetDevice", "eth0", "eth0", 100))
    _mock_call(eth, "AddProperty", DEVICE_IFACE, "Ifindex", dbus.Int32(2))
    wired = "/org/freedesktop/NetworkManager/ActiveConnection/1"
    vpn = "/org/freedesktop/NetworkManager/ActiveConnection/2"
    ip4, ip6 = "/org/freedesktop/NetworkManager/IP4Config/9", "/org/freedesktop/NetworkManager/IP6Config/9"
    _add_active(wired, {"Vpn": False, "Id": "Wired", "Type": "802-3-ethernet", "State": dbus.UInt32(2),
                        "Devices": dbus.Array([dbus.ObjectPath(eth)], signature="o"),
                        "Ip4Config": dbus.ObjectPath("/"), "Ip6Config": dbus.ObjectPath("/")})
    _add_ipconfig(ip4, IP4_IFACE, ("172.16.9.7", 32))
    _add_ipconfig(ip6, IP6_IFACE, ("2001:db8:f:0::7", 64))
    _add_active(vpn, {"Vpn": True, "Id": "Office", "Type": "vpn", "State": dbus.UInt32(2),
                      "Devices": dbus.Array([dbus.ObjectPath(eth)], signature="o"),
                      "Ip4Config": dbus.ObjectPath(ip4), "Ip6Config": dbus.ObjectPath(ip6)})
    hostile = "/org/freedesktop/NetworkManager/ActiveConnection/3"  # Vpn of the wrong type: left out, logged
    _add_active(hostile, {"Vpn": "yes", "Id": "Bad", "Ip4Config": dbus.ObjectPath(ip4)})
    _set_active_connections(wired, vpn, hostile, "/org/freedesktop/NetworkManager/ActiveConnection/gone")
    harness.make(dbusmock_system.address)
    await harness.src.start()
    store = harness.store
    assert store.state.vpn_addresses == {"172.16.9.7": "Office", "2001:db8:f::7": "Office"}
    sets = [e for e in harness.events if isinstance(e, NmVpnsSet)]
    assert len(sets) == 1 and sets[0].vpns[0].path == vpn

    # what netlink reports for eth0: its own CoA and the VPN's addresses on it
    store.apply(LinkUpsert(Interface(2, "eth0", InterfaceKind.ETHERNET, admin_up=True, oper_up=True, carrier=True,
                                     operstate="up")))
    coa, inner6, inner4 = (Address(2, "2001:db8:a::5", 64), Address(2, "2001:db8:f::7", 64),
                           Address(2, "172.16.9.7", 32, family=2))
    for a in (coa, inner6, inner4):
        store.apply(AddressUpsert(a))
    an = analyse(store.state, 0.0, ipv4_coas=True)
    assert (an.x, an.z) == (1, 1)
    assert an.roles[inner6.key].role == an.roles[inner4.key].role == "vpn"
    assert an.roles[coa.key].role == "coa"

    # the VPN's IPv6 address changes; then the VPN goes down
    _set(ip6, IP6_IFACE, "AddressData", _address_data(("2001:db8:f::8", 64)))
    await wait_until(lambda: "2001:db8:f::8" in store.state.vpn_addresses, "the VPN's new IPv6 address")
    assert "2001:db8:f::7" not in store.state.vpn_addresses
    assert analyse(store.state, 0.0).z == 2  # f::7 is no longer the VPN's: an address of eth0's own
    _set_active_connections(wired)
    await wait_until(lambda: store.state.vpn_addresses == {}, "the VPN gone")
    # NetworkManager leaving the bus makes its VPN data stale: forgotten with the devices
    _set_active_connections(wired, vpn)
    await wait_until(lambda: store.state.vpn_addresses != {}, "the VPN back")
    nm_mock.terminate()
    nm_mock.process.wait()
    await wait_until(lambda: harness.status and harness.status[0] != "running", "NetworkManager gone")
    assert store.state.vpn_addresses == {}


@pytest.mark.asyncio
async def test_mock_modem_control_port_is_never_taken_for_its_data_link(dbusmock_system, nm_mock, harness):
    """A modem's Interface is its control port; a network link that happens to have that name (here
    "lo") is another link. Until its bearer is connected (IpInterface set) it has no link of its own."""
    modem = "/org/freedesktop/NetworkManager/Devices/9"
    _mock_call(NM_PATH, "AddObject", modem, DEVICE_IFACE, {
        "DeviceType": dbus.UInt32(8), "Interface": "lo", "IpInterface": "", "State": dbus.UInt32(30),
        "Managed": True, "Ip6Config": dbus.ObjectPath("/"),
    }, dbus.Array([], signature="(ssss)"))
    harness.make(dbusmock_system.address)
    await harness.src.start()
    m = harness.dev("lo")
    assert m.kind is InterfaceKind.WWAN and m.ifindex == 0 and m.ip_interface == ""
    _set(modem, DEVICE_IFACE, "IpInterface", "lo")  # connected: its data interface (lo stands in for wwan0)
    await wait_until(lambda: harness.dev("lo").ifindex == socket.if_nametoindex("lo"), "the data interface")
    assert harness.dev("lo").ip_interface == "lo"
    _set(modem, DEVICE_IFACE, "IpInterface", "")  # disconnected again
    await wait_until(lambda: harness.dev("lo").ifindex == 0, "no data interface again")


@pytest.mark.nm
@pytest.mark.netns
@pytest.mark.asyncio
async def test_real_bridge_and_macvlan_are_virtual_by_device_type(real):
    """A real NetworkManager's DeviceType (13 bridge, 18 macvlan) gives the kind, whatever the names."""
    lab = real.lab
    lab.ip("link", "add", "eth42", "type", "bridge")
    lab.ip("link", "add", "wlan42", "link", "veth-um", "type", "macvlan", "mode", "bridge")
    try:
        await wait_until(lambda: real.dev("eth42") is not None and real.dev("wlan42") is not None,
                         "the bridge and the macvlan", timeout=10)
        assert real.dev("eth42").kind is InterfaceKind.VIRTUAL
        assert real.dev("wlan42").kind is InterfaceKind.VIRTUAL
        assert real.dev("veth-um").kind is InterfaceKind.ETHERNET
    finally:
        lab.ip("link", "del", "wlan42")
        lab.ip("link", "del", "eth42")
        await wait_until(lambda: real.dev("eth42") is None and real.dev("wlan42") is None, "both gone", timeout=10)
