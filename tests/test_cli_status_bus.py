"""``mhctl status``'s fast path with a system bus (:mod:`mhgui.status_bus`, one blocking jeepney connection)
against the full path (asyncio, dbus-fast, NetworkManager's source, the engine's driver), on a private
system bus: NetworkManager from python-dbusmock's template, the engine and the helper as dbusmock objects,
in a namespace with real links; then services that answer with the wrong types, huge strings or not at
all (issue 14). Each case runs both paths and compares their JSON and text; ``MHCTL_STATUS_PATH=fast``
makes a fall back to the full path an error, so each case also says which path answered."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys

import dbus
import dbus.bus
import pytest
from dbusmock import SpawnedMock
from dbusmock.testcase import BusType, PrivateDBus

from netns import netns_available, run
from test_cli_status_fast import IP, _same, _text_without_seconds

pytestmark = pytest.mark.netns

NM = "org.freedesktop.NetworkManager"
DEVICE = NM + ".Device"
IP6 = NM + ".IP6Config"
PROPS = "org.freedesktop.DBus.Properties"
MOCK = "org.freedesktop.DBus.Mock"
ENGINE = "io.github.mhgui.MHGui.MobileNode1"
ENGINE_PATH = "/io/github/mhgui/MHGui/MobileNode1"
HELPER = "io.github.mhgui.MHGui.Helper1"
HA = "2001:db8:100::1"
HOA, HOA2, HOA3 = "2001:db8:100::10", "2001:db8:100::20", "2001:db8:100::30"
_counter = itertools.count()


@pytest.fixture
def node():
    """Namespace ``s1b-…`` with eth0 (2001:db8:1::5/64, default router) and wlan0 (192.0.2.5/24), both up."""
    why = netns_available()
    if why:
        pytest.skip(why)
    ns = f"s1b-{os.getpid()}-{next(_counter)}"
    run("ip", "netns", "add", ns)
    try:
        run("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0")
        run("ip", "-n", ns, "link", "set", "lo", "up")
        for name in ("eth0", "wlan0"):
            run("ip", "-n", ns, "link", "add", name, "type", "veth", "peer", "name", "p-" + name)
            run("ip", "-n", ns, "link", "set", "p-" + name, "up")
            run("ip", "-n", ns, "link", "set", name, "up")
        subprocess.run(["ip", "-n", ns, "-batch", "-"], text=True, check=True, capture_output=True, input=(
            "addr add 2001:db8:1::5/64 dev eth0 nodad\naddr add 192.0.2.5/24 dev wlan0\n"
            "route add default via 2001:db8:1::1 dev eth0\n"))
        yield ns
    finally:
        run("ip", "netns", "del", ns, check=False)


class Bus:
    """A private system bus and the dbusmock services a test starts on it (ended by :meth:`close`)."""

    def __init__(self) -> None:
        self.private = PrivateDBus(BusType.SYSTEM)
        self.private.__enter__()
        self.address = self.private.address
        self.mocks: list[SpawnedMock] = []
        self.conn = dbus.bus.BusConnection(self.address)

    def _spawn(self, make) -> None:
        before = os.environ.get("DBUS_SYSTEM_BUS_ADDRESS")
        os.environ["DBUS_SYSTEM_BUS_ADDRESS"] = self.address  # where SpawnedMock connects
        try:
            self.mocks.append(make())
        finally:
            if before is None:
                del os.environ["DBUS_SYSTEM_BUS_ADDRESS"]
            else:
                os.environ["DBUS_SYSTEM_BUS_ADDRESS"] = before

    def networkmanager(self):
        self._spawn(lambda: SpawnedMock.spawn_with_template("networkmanager", bustype=BusType.SYSTEM,
                                                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        return self.conn.get_object(NM, "/org/freedesktop")

    def service(self, name: str, path: str, iface: str, methods: dict[str, tuple[str, str]] = {}):
        """A dbusmock object owning ``name``; ``methods``: {member: (out signature, code setting ``ret``)}."""
        self._spawn(lambda: SpawnedMock.spawn_for_name(name, path, iface, BusType.SYSTEM,
                                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        obj = self.conn.get_object(name, path)
        for member, (sig, code) in methods.items():
            obj.AddMethod(iface, member, "", sig, code, dbus_interface=MOCK)
        return obj

    def engine(self, status: object, uplinks: object, bindings: object, **more: tuple[str, str]):
        methods = {m: ("s", f"ret = {json.dumps(v)!r}") if not isinstance(v, tuple) else v
                   for m, v in (("GetStatus", status), ("GetUplinks", uplinks), ("GetBindings", bindings))}
        return self.service(ENGINE, ENGINE_PATH, ENGINE, {**methods, **more})

    def close(self) -> None:
        self.conn.close()
        for m in self.mocks:
            m.terminate()
            if m.process.poll() is None:
                m.process.kill()
            m.process.wait()
        self.private.__exit__(None, None, None)


@pytest.fixture
def bus():
    b = Bus()
    try:
        yield b
    finally:
        b.close()


def status(ns: str, bus: Bus, path: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    env = dict(os.environ, MHCTL_STATUS_PATH=path, DBUS_SYSTEM_BUS_ADDRESS=bus.address)
    env.pop("XDG_CONFIG_HOME", None)
    return subprocess.run([IP, "netns", "exec", ns, sys.executable, "-m", "mhgui.cli", "status", "--mip6d-conf",
                           os.devnull, *args], capture_output=True, text=True, timeout=timeout, env=env)


def both(ns: str, bus: Bus, *, fast: str = "fast") -> dict:
    """Both paths' JSON and text: equal (but counted-down seconds); returns the fast path's JSON."""
    f = status(ns, bus, fast, "--json")
    assert f.returncode == 0, f.stderr
    r = status(ns, bus, "runtime", "--json")
    assert r.returncode == 0, r.stderr
    got, full = json.loads(f.stdout), json.loads(r.stdout)
    assert _same(got, full) == []
    ft, rt = status(ns, bus, fast).stdout, status(ns, bus, "runtime").stdout
    assert _text_without_seconds(ft) == _text_without_seconds(rt)
    return got


def eth_device(bus: Bus, nm, *addresses: tuple[str, int]) -> str:
    dev = str(nm.AddEthernetDevice("mock_Ethernet1", "eth0", 100, dbus_interface=MOCK))
    if addresses:
        cfg = "/org/freedesktop/NetworkManager/IP6Config/1"
        nm.AddObject(cfg, IP6, {"AddressData": dbus.Array(
            [dbus.Dictionary({"address": a, "prefix": dbus.UInt32(p)}, signature="sv") for a, p in addresses],
            signature="a{sv}")}, dbus.Array([], signature="(ssss)"), dbus_interface=MOCK)
        bus.conn.get_object(NM, dev).AddProperty(DEVICE, "Ip6Config", dbus.ObjectPath(cfg), dbus_interface=MOCK)
    return dev


# ------------------------------------------------------------------------------------------- well-behaved


def test_no_networkmanager_no_engine_no_helper(node, bus):
    got = both(node, bus)
    assert got["sources"]["networkmanager"] == "absent"
    assert got["daemon"]["name"] == "umip" and got["daemon"]["state"] == "absent"
    assert [p["code"] for p in got["access"]] == ["helper-absent"]


def test_networkmanager_devices_and_addresses(node, bus):
    nm = bus.networkmanager()
    eth_device(bus, nm, ("2001:db8:1::5", 64))
    nm.AddWiFiDevice("mock_WiFi1", "wlan0", 30, dbus_interface=MOCK)
    nm.AddEthernetDevice("mock_Ethernet2", "gone0", 20, dbus_interface=MOCK)  # no such link here: ifindex 0
    got = both(node, bus)
    assert got["sources"]["networkmanager"] == "running"
    by = {i["name"]: i for i in got["interfaces"]}
    assert by["eth0"]["networkmanager_state"] == 100 and by["wlan0"]["kind"] == "wifi"
    assert by["wlan0"]["networkmanager_state"] == 30


def test_networkmanager_only_and_no_networkmanager_option(node, bus):
    nm = bus.networkmanager()
    eth_device(bus, nm)
    f = status(node, bus, "fast", "--json", "--no-networkmanager")
    r = status(node, bus, "runtime", "--json", "--no-networkmanager")
    assert f.returncode == r.returncode == 0, f.stderr + r.stderr
    assert _same(json.loads(f.stdout), json.loads(r.stdout)) == []
    assert json.loads(f.stdout)["sources"]["networkmanager"] == "absent"


def test_the_engine_its_bindings_and_a_running_helper(node, bus):
    nm = bus.networkmanager()
    eth_device(bus, nm, ("2001:db8:1::5", 64))
    bus.service(HELPER, "/io/github/mhgui/MHGui/Helper1", HELPER)  # libdbus answers Peer.Ping itself
    bus.engine({"home_agent": HA, "multiple_care_of": False},
               [{"name": "eth0", "coa6": "2001:db8:1::5", "coa4": None, "family": 6, "carrier": True,
                 "reachable": True},
                {"name": "wlan0", "coa6": None, "coa4": "192.0.2.5", "family": 4, "carrier": True,
                 "reachable": None}],
               [{"hoa": HOA, "prefix_len": 64, "home_agent": HA, "state": "registered", "coa": "2001:db8:1::5",
                 "lifetime": 600, "remaining": 500.5, "seq": 3},  # no interface: named from the live model
                {"hoa": HOA2, "prefix_len": 64, "home_agent": HA, "state": "waiting-ack",
                 "pending_interface": "wlan0"},
                {"hoa": HOA3, "prefix_len": 64, "state": "unbound"}, "not an object"])
    got = both(node, bus)
    assert got["daemon"] == {"name": "engine", "connected": True, "state": "connected", "error": None}
    assert [(b["hoa"], b["state"], b["interface"]) for b in got["bindings"]] == [
        (HOA, "registered", "eth0"), (HOA2, "waiting-ack", "wlan0")]
    assert {h["address"] for h in got["home_addresses"]} == {HOA, HOA2, HOA3}
    assert "helper-absent" not in [p["code"] for p in got["access"]]


def test_an_engine_with_several_care_of_addresses_reads_its_flow_bindings(node, bus):
    bus.engine({"home_agent": HA, "multiple_care_of": True},
               [{"name": "eth0", "coa6": "2001:db8:1::5", "family": 6, "carrier": True, "reachable": True}],
               [{"hoa": HOA, "prefix_len": 64, "state": "registered", "coa": "2001:db8:1::5", "interface": "eth0",
                 "lifetime": 600, "remaining": 400, "paths": [
                     {"bid": 1, "coa": "2001:db8:1::5", "interface": "eth0", "priority": 1},
                     {"bid": 2, "coa": "192.0.2.5", "interface": "wlan0", "priority": 127}]}],
               GetFlowBindings=("s", "ret = '{\"flows\": []}'"))
    got = both(node, bus)
    assert got["daemon"]["connected"] and [b["interface"] for b in got["bindings"]] == ["eth0"]


# ------------------------------------------------------------------------------------------------ hostile


def test_networkmanager_with_wrong_types_and_huge_strings(node, bus):
    nm = bus.networkmanager()
    good = eth_device(bus, nm, ("2001:db8:1::5", 64))
    bad = str(nm.AddWiFiDevice("mock_WiFi1", "wlan0", 100, dbus_interface=MOCK))
    bus.conn.get_object(NM, bad).Set(DEVICE, "State", dbus.String("activated"), dbus_interface=PROPS)
    huge = str(nm.AddEthernetDevice("mock_Ethernet2", "x" * 300_000, 100, dbus_interface=MOCK))
    got = both(node, bus)
    by = {i["name"]: i for i in got["interfaces"]}
    assert by["eth0"]["networkmanager_state"] == 100
    assert by["wlan0"]["networkmanager_state"] is None  # its device was skipped, as the source does
    assert good and huge and got["sources"]["networkmanager"] == "running"


def test_networkmanager_that_answers_get_devices_wrongly(node, bus):
    bus.service(NM, "/org/freedesktop/NetworkManager", NM, {"GetDevices": ("as", "ret = ['not a path']")})
    got = both(node, bus)
    assert got["sources"]["networkmanager"] == "stopped"


def test_an_engine_whose_answers_are_not_json_or_of_the_wrong_type(node, bus):
    bus.engine(("i", "ret = 7"), ("s", "ret = 'x' * 1_000_000"), [])
    got = both(node, bus)
    assert got["daemon"]["state"] == "error" and got["daemon"]["error"] == "the engine's GetUplinks is not JSON"
    assert got["bindings"] == []


def test_an_engine_that_refuses(node, bus):
    bus.engine({}, [], ("s", "raise dbus.exceptions.DBusException('not today', "
                              "name='io.github.mhgui.MHGui.MobileNode1.Error.Failed')"))
    got = both(node, bus)
    assert got["daemon"]["state"] == "error" and got["daemon"]["error"] == "not today"


def test_an_engine_that_does_not_answer_is_left_to_the_full_path(node, bus):
    """GetStatus never answers in time: the fast path gives up (after its 5 s) and the full path answers."""
    bus.engine(("s", "import time; time.sleep(12); ret = '{}'"), [], [])
    f = status(node, bus, "fast", "--json", timeout=120)
    assert f.returncode == 1 and "the engine did not answer GetStatus in time" in f.stderr


# ------------------------------------------------------------------------------------ what it loads; real NM


MODULES = """
import json, sys
sys.argv = ["mhctl", "status", "--mip6d-conf", "/dev/null"]
from mhgui import cli
rc = cli.main()
print(json.dumps({"rc": rc, "modules": sorted(sys.modules)}), file=sys.stderr)
"""


def test_with_a_bus_the_fast_path_loads_no_loop_no_dbus_fast_no_pyroute2(node, bus):
    nm = bus.networkmanager()
    eth_device(bus, nm)
    bus.engine({"home_agent": HA}, [], [])
    env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=bus.address, MHCTL_STATUS_PATH="fast")
    p = subprocess.run([IP, "netns", "exec", node, sys.executable, "-c", MODULES], capture_output=True, text=True,
                       timeout=60, env=env)
    assert p.returncode == 0, p.stderr
    got = json.loads(p.stderr.strip().splitlines()[-1])
    assert got["rc"] == 0 and "Binding table (engine)" in p.stdout
    heavy = [m for m in got["modules"] if m.split(".")[0] in ("asyncio", "dbus_fast", "pyroute2", "PySide6")]
    assert heavy == [] and "mhgui.status_bus" in got["modules"]


@pytest.mark.nm
def test_a_real_networkmanager_gives_both_paths_the_same_answer():
    from nmlab import NmLab, missing_requirements
    why = missing_requirements()
    if why:
        pytest.skip(f"real NetworkManager lab unavailable: {why}")
    lab = NmLab().setup()
    try:
        lab.ip("-6", "addr", "add", "2001:db8:1::10/64", "dev", "veth-nm", "nodad")

        def status(path: str, *args: str) -> subprocess.CompletedProcess:
            env = dict(os.environ, MHCTL_STATUS_PATH=path)
            return subprocess.run([IP, "netns", "exec", lab.ns, sys.executable, "-m", "mhgui.cli", "status", *args,
                                   "--system-bus", lab.address, "--mip6d-conf", os.devnull],
                                  capture_output=True, text=True, timeout=60, env=env)
        f, r = status("fast", "--json"), status("runtime", "--json")
        assert f.returncode == r.returncode == 0, f.stderr + r.stderr
        got = json.loads(f.stdout)
        assert _same(got, json.loads(r.stdout)) == []
        assert got["sources"]["networkmanager"] == "running"
        by = {i["name"]: i for i in got["interfaces"]}
        assert by["veth-um"]["networkmanager_state"] == 10 and by["veth-nm"]["networkmanager_state"] is not None
        assert _text_without_seconds(status("fast").stdout) == _text_without_seconds(status("runtime").stdout)
    finally:
        lab.teardown()


# ------------------------------------------------------------------------------------------ the client itself


def test_the_blocking_client_pipelines_calls_and_leaves_out_late_replies(bus):
    from mhgui.sources.dbus_sync import DBUS, SyncBus
    bus.service(ENGINE, ENGINE_PATH, ENGINE, {"Quick": ("s", "ret = 'x' * 200_000"),
                                              "Slow": ("s", "import time; time.sleep(1.5); ret = 'late'")})
    with SyncBus(bus.address, 3.0) as c:
        quick = c.call(ENGINE, ENGINE_PATH, ENGINE, "Quick")
        owner = c.call(*DBUS, "NameHasOwner", "s", (ENGINE,))
        slow = c.call(ENGINE, ENGINE_PATH, ENGINE, "Slow")
        missing = c.call(*DBUS, "GetNameOwner", "s", ("org.example.Nobody",))
        got = c.replies([quick, owner, slow, missing], 0.5)
        assert set(got) == {quick, owner, missing}  # Slow's reply is late: left out, no exception
        assert got[quick].body == ("x" * 200_000,) and got[quick].error is None
        assert got[owner].body == (True,) and got[owner].signature == "b"
        assert got[missing].error == "org.freedesktop.DBus.Error.NameHasNoOwner" and got[missing].text
        assert c.replies([slow], 5.0)[slow].body == ("late",)  # it comes later on the same connection
        # NO_AUTO_START goes out: the bus does not look for a service to start (ServiceUnknown) but says no owner
        speculative = c.call("org.example.Nobody", "/", "org.example.Nobody", "Ping", autostart=False)
        activating = c.call("org.example.Nobody", "/", "org.example.Nobody", "Ping")
        got = c.replies([speculative, activating], 3.0)
        assert got[speculative].error == "org.freedesktop.DBus.Error.NameHasNoOwner"
        assert got[activating].error == "org.freedesktop.DBus.Error.ServiceUnknown"
