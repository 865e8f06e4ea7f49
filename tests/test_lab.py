"""``mhgui.lab``: the Mobile IPv6 test lab, checked for real (root, namespaces, nftables, a private bus).

The engine daemons may not exist yet: the lab is brought up with ``daemons=False`` (``--no-daemons``),
and the daemon start path is checked with small stand-in daemons.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import textwrap
import time
import tomllib
from pathlib import Path

import pytest

import mhgui.lab as labmod
from mhgui.lab import (CN_ADDRESS, HA_ADDRESSES, HOA, MN_BUS_NAME, Lab, LabDaemonError, LabError, LabInfo,
                       Topology)
from mhgui.lab.cli import main as lab_main
from mhgui.lab.topology import lab_namespaces, validate_prefix

_TOOLS = ("ip", "nft", "sysctl", "dbus-daemon", "dbus-send", "setpriv")


def _why_not() -> str | None:
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    missing = [t for t in _TOOLS if shutil.which(t) is None]
    return f"needs {', '.join(missing)}" if missing else None




def lab_test(f):
    """Marks a test as needing the lab (root, namespaces, nftables, dbus-daemon); skipped otherwise."""
    return pytest.mark.netns(pytest.mark.skipif(_why_not() is not None, reason=_why_not() or "")(f))


_BASE = f"t{os.getpid() % 10000:04d}"  # unique per test run; + one letter per lab

PING6 = """
import os, socket, struct, sys, time
dst, src, timeout = sys.argv[1], sys.argv[2], float(sys.argv[3])
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
s.bind((src, 0))
ident, seq, deadline = os.getpid() & 0xFFFF, 0, time.monotonic() + timeout
while time.monotonic() < deadline:
    seq += 1
    s.sendto(struct.pack("!BBHHH", 128, 0, 0, ident, seq) + b"mhlab", (dst, 0))
    s.settimeout(min(0.3, max(0.01, deadline - time.monotonic())))
    try:
        while True:
            data, peer = s.recvfrom(2048)
            if data[0] == 129 and struct.unpack("!H", data[4:6])[0] == ident:
                sys.exit(0)
    except socket.timeout:
        pass
sys.exit(1)
"""

UDP_SERVER = """
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("203.0.113.10", 0))
s.settimeout(5)
print(s.getsockname()[1], flush=True)
data, peer = s.recvfrom(100)
print(peer[0], data.decode(), flush=True)
"""

UDP_CLIENT = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("192.0.2.2", 0))
s.sendto(b"hello", ("203.0.113.10", int(sys.argv[1])))
"""


def _py(ns: str, code: str, *args: str, timeout: float = 10) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", code, *args],
                          capture_output=True, text=True, timeout=timeout)


def _ping6(prefix: str, dst: str = CN_ADDRESS, src: str = "2001:db8:a1::2", timeout: float = 2.0) -> bool:
    return _py(f"{prefix}-mn", PING6, dst, src, str(timeout)).returncode == 0


def _link(ns: str, dev: str) -> dict:
    return json.loads(subprocess.run(["ip", "-n", ns, "-j", "link", "show", "dev", dev], check=True,
                                     capture_output=True, text=True).stdout)[0]


def main_rc(argv: list[str]) -> int:
    """``mhctl lab ARGV`` in this process; its exit status."""
    return lab_main(argv)


def _wait(cond, timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


@pytest.fixture(scope="module")
def lab():
    if _why_not():
        pytest.skip(_why_not())
    prefix = f"{_BASE}a"
    Lab.down(prefix)
    try:
        yield Lab.up(prefix, daemons=False)
    finally:
        Lab.down(prefix)


# ---- pure parts (no root)

def test_prefix_validation_and_names():
    assert validate_prefix("mhlab") == "mhlab" and validate_prefix("a-1") == "a-1"
    for bad in ("", "MhLab", "toolong12", "a_b", "a b", "a/b"):
        with pytest.raises(ValueError):
            validate_prefix(bad)
    t = Topology("p")
    assert t.namespaces == ["p-mn", "p-ar1", "p-ar2", "p-inet", "p-ha", "p-cn"]
    assert all(len(i) <= 15 for pair in t.veths for _, i in pair)
    d = LabInfo("p", "/run/mhgui-lab/p", "unix:path=/run/mhgui-lab/p/bus").as_dict()
    assert d["uplinks"][1] == {"name": "up1", "family": 4, "coa": "192.0.2.2", "gateway": "192.0.2.1",
                               "router_netns": "p-ar2", "router_interface": "dn0", "nat": True}
    assert LabInfo.from_dict(json.loads(json.dumps(d))) == LabInfo("p", "/run/mhgui-lab/p",
                                                                   "unix:path=/run/mhgui-lab/p/bus")


# ---- one lab for the network checks

@lab_test
def test_state_files_and_bus(lab):
    state = Path(lab.state_dir)
    assert stat.S_IMODE(state.stat().st_mode) == 0o711
    key = state / "keys" / "mn1.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and stat.S_IMODE(key.parent.stat().st_mode) == 0o700
    assert len(bytes.fromhex(key.read_text().strip())) == 32
    ha = tomllib.loads((state / "ha.toml").read_text())
    assert ha["home_agent"]["state_dir"] == f"{state}/ha-state" and ha["home_agent"]["port"] == 4191
    assert ha["node"] == [{"identity": "mn1@lab.mhgui.invalid", "home_addresses": [HOA],
                           "key": [{"spi": 256, "file": str(key)}]}]
    mn = tomllib.loads((state / "mn.toml").read_text())
    assert mn["node"]["key_file"] == str(key) and mn["home_agent"]["addresses"] == list(HA_ADDRESSES)
    assert mn["home_address"][0]["preference"] == ["up0", "up1"] and mn["tunnel"]["table"] == 4191
    assert (state / "system.d" / "io.github.mhgui.MHGui.Helper1.conf").exists()
    recorded = json.loads(Path(f"{state}.json").read_text())
    assert recorded["pids"] == lab.pids and set(recorded["namespaces"]) == set(lab_namespaces(lab.prefix))
    # the bus answers from inside a namespace (a path socket), and the MN name has no owner
    r = Lab.exec_in_mn(lab.prefix, ["dbus-send", "--system", "--print-reply", "--dest=org.freedesktop.DBus", "/",
                                    "org.freedesktop.DBus.NameHasOwner", f"string:{MN_BUS_NAME}"],
                       capture_output=True, text=True)
    assert r.returncode == 0 and "boolean false" in r.stdout
    st = Lab.status(lab.prefix)
    assert st["up"] and not st["missing_namespaces"] and st["processes"]["bus"]["alive"]
    assert st["mn_registered"] is False and [u["cut"] or u["blackholed"] for u in st["uplinks"]] == [False, False]


@lab_test
def test_ipv6_from_mn_reaches_cn(lab):
    assert _ping6(lab.prefix)


@lab_test
def test_ipv4_from_mn_reaches_ha_natted(lab):
    server = subprocess.Popen(["ip", "netns", "exec", lab.netns("ha"), sys.executable, "-c", UDP_SERVER],
                              stdout=subprocess.PIPE, text=True)
    try:
        port = server.stdout.readline().strip()
        assert _py(lab.netns("mn"), UDP_CLIENT, port).returncode == 0
        assert server.stdout.readline().split() == ["198.51.100.2", "hello"]
    finally:
        server.kill()
        server.wait()
        server.stdout.close()


@lab_test
def test_home_prefix_source_is_dropped_at_ar1(lab):
    mn = lab.netns("mn")
    before = Lab.counter(lab.prefix, "ar1", "home_ingress")
    subprocess.run(["ip", "-n", mn, "addr", "add", f"{HOA}/128", "dev", "up0", "nodad"], check=True)
    try:
        assert not _ping6(lab.prefix, src=HOA, timeout=0.8)
    finally:
        subprocess.run(["ip", "-n", mn, "addr", "del", f"{HOA}/128", "dev", "up0"], check=True)
    assert Lab.counter(lab.prefix, "ar1", "home_ingress") > before
    assert _ping6(lab.prefix)  # the CoA still works


@lab_test
def test_cut_and_restore(lab):
    mn = lab.netns("mn")
    Lab.cut(lab.prefix, "up0")
    try:
        assert _wait(lambda: "NO-CARRIER" in _link(mn, "up0")["flags"])
        assert _link(mn, "up0")["operstate"] == "DOWN"
        assert Lab.status(lab.prefix)["uplinks"][0]["cut"]
        assert not _ping6(lab.prefix, timeout=0.5)
    finally:
        Lab.restore(lab.prefix, "up0")
    assert _wait(lambda: "NO-CARRIER" not in _link(mn, "up0")["flags"] and _link(mn, "up0")["operstate"] == "UP")
    assert _ping6(lab.prefix)


@lab_test
def test_blackhole_and_restore(lab):
    before = Lab.counter(lab.prefix, "ar1", "blackhole")
    assert main_rc(["blackhole", "--prefix", lab.prefix, "up0"]) == 0
    try:
        assert _link(lab.netns("mn"), "up0")["operstate"] == "UP"
        assert not _ping6(lab.prefix, timeout=0.8)
        assert Lab.counter(lab.prefix, "ar1", "blackhole") > before
        assert Lab.status(lab.prefix)["uplinks"][0]["blackholed"]
    finally:
        assert main_rc(["restore", "--prefix", lab.prefix, "up0"]) == 0
    assert _ping6(lab.prefix)


@lab_test
def test_exec_in_mn(lab, capfd):
    r = Lab.exec_in_mn(lab.prefix, ["sh", "-c", 'echo "$DBUS_SYSTEM_BUS_ADDRESS"; id -u; ip -br link'],
                       user="nobody", capture_output=True, text=True)
    lines = r.stdout.splitlines()
    assert r.returncode == 0 and lines[:2] == [lab.bus_address, "65534"] and "up0" in r.stdout
    assert main_rc(["exec", "--prefix", lab.prefix, "--", "sh", "-c", "exit 7"]) == 7
    assert main_rc(["exec", "--prefix", lab.prefix, "--user", "no-such-user-x", "--", "true"]) == 1
    assert "no such user" in capfd.readouterr().err


# ---- more labs

@lab_test
def test_cli_json_second_lab_coexists_and_down_is_idempotent(lab):
    prefix = f"{_BASE}b"
    cli = [sys.executable, "-m", "mhgui.lab.cli"]
    r = subprocess.run([*cli, "up", "--json", "--no-daemons", "--prefix", prefix], capture_output=True, text=True)
    try:
        assert r.returncode == 0, r.stderr
        d = json.loads(r.stdout)
        for key in ("hoa", "cn_address", "cn_netns", "ha_netns", "mn_netns", "ha_port", "bus_address", "state_dir",
                    "prefix", "uplinks"):
            assert key in d
        assert (d["prefix"], d["mn_netns"], d["hoa"], d["ha_port"]) == (prefix, f"{prefix}-mn", HOA, 4191)
        assert d["uplinks"][0] == {"name": "up0", "family": 6, "coa": "2001:db8:a1::2", "gateway": "2001:db8:a1::1",
                                   "router_netns": f"{prefix}-ar1", "router_interface": "dn0", "nat": False}
        assert d["bus_address"] == f"unix:path=/run/mhgui-lab/{prefix}/bus"
        again = subprocess.run([*cli, "up", "--no-daemons", "--prefix", prefix], capture_output=True, text=True)
        assert again.returncode == 1 and "already up" in again.stderr
        assert _ping6(prefix) and _ping6(lab.prefix)  # two labs side by side
        st = json.loads(subprocess.run([*cli, "status", "--json", "--prefix", prefix], capture_output=True,
                                       text=True, check=True).stdout)
        assert st["up"] and st["processes"]["bus"]["alive"]
    finally:
        down = subprocess.run([*cli, "down", "--prefix", prefix], capture_output=True, text=True)
    assert down.returncode == 0 and "removed" in down.stdout
    assert lab_namespaces(prefix) == [] and not Path(f"/run/mhgui-lab/{prefix}").exists()
    assert not labmod._alive(d["pids"]["bus"])
    down = subprocess.run([*cli, "down", "--prefix", prefix], capture_output=True, text=True)
    assert down.returncode == 0 and "nothing to remove" in down.stdout
    assert lab_namespaces(lab.prefix)  # the other lab is untouched


@lab_test
@pytest.mark.parametrize("damage", ["missing", "corrupt"])
def test_down_after_a_crash(damage):
    prefix = f"{_BASE}c"
    other = f"{prefix}-x-mn"  # not a namespace of this lab (it would be lab "{prefix}-x"'s)
    subprocess.run(["ip", "netns", "add", other], check=True)
    try:
        info = Lab.up(prefix, daemons=False)
        with pytest.raises(LabError, match="already up"):
            Lab.up(prefix, daemons=False)
        state_file = Path(f"{info.state_dir}.json")
        if damage == "missing":
            state_file.unlink()
        else:
            state_file.write_text("{not json")
        assert Lab.down(prefix) is True
        assert lab_namespaces(prefix) == [] and not Path(info.state_dir).exists() and not state_file.exists()
        assert not labmod._alive(info.pids["bus"])
        assert Lab.down(prefix) is False
        assert other in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    finally:
        Lab.down(prefix)
        subprocess.run(["ip", "netns", "del", other])


# ---- the daemon start path, with stand-in daemons

FAKE_DAEMON = """
import asyncio, os, sys, time
role = sys.argv[1]
print("fake", role, sys.argv[sys.argv.index("--config") + 1], os.environ["DBUS_SYSTEM_BUS_ADDRESS"], flush=True)
if role == "fail":
    print("boom: cannot do it", flush=True)
    sys.exit(3)
if role == "mn":
    from dbus_fast import BusType
    from dbus_fast.aio import MessageBus
    async def main():
        bus = await MessageBus(bus_type=BusType.SYSTEM).connect()
        await bus.request_name(sys.argv[2])
        await asyncio.sleep(3600)
    asyncio.run(main())
time.sleep(3600)
"""

POLICY = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig><policy user="root"><allow own="{name}"/><allow send_destination="{name}"/></policy></busconfig>
"""


@lab_test
@pytest.mark.parametrize("mn_role", ["mn", "fail"])
def test_daemons_start_in_their_namespaces_on_the_lab_bus(mn_role, tmp_path, monkeypatch):
    prefix = f"{_BASE}d"
    script = tmp_path / "fake.py"
    script.write_text(textwrap.dedent(FAKE_DAEMON))
    policy = tmp_path / f"{MN_BUS_NAME}.conf"
    policy.write_text(POLICY.format(name=MN_BUS_NAME))
    roles = {"mhgui-ha": ["ha"], "mhgui-mn": [mn_role, MN_BUS_NAME]}
    monkeypatch.setattr(labmod, "_daemon_command", lambda exe, module: [sys.executable, str(script), *roles[exe]])
    real_policies = labmod._policy_files
    monkeypatch.setattr(labmod, "_policy_files", lambda: [*real_policies(), policy])
    monkeypatch.setattr(labmod, "REGISTRATION_TIMEOUT", 5.0)
    try:
        if mn_role == "fail":
            with pytest.raises(LabDaemonError, match="(?s)mobile node daemon exited.*boom: cannot do it"):
                Lab.up(prefix)
            assert Lab.status(prefix)["up"]  # left up for `down`
        else:
            info = Lab.up(prefix)
            state = Path(info.state_dir)
            assert (state / "mn.log").read_text().split()[:4] == ["fake", "mn", f"{state}/mn.toml", info.bus_address]
            assert (state / "ha.log").read_text().split()[:3] == ["fake", "ha", f"{state}/ha.toml"]
            st = Lab.status(prefix)
            assert st["mn_registered"] is True and all(p["alive"] for p in st["processes"].values())
            assert set(st["processes"]) == {"bus", "authority", "ha", "mn"}
            # each daemon runs in its own namespace
            for role in ("ha", "mn"):
                netns_inode = os.stat(f"/run/netns/{prefix}-{role}").st_ino
                assert os.readlink(f"/proc/{info.pids[role]}/ns/net") == f"net:[{netns_inode}]"
            pids = dict(info.pids)
    finally:
        assert Lab.down(prefix) is True
    if mn_role == "mn":
        assert not any(labmod._alive(p) for p in pids.values())
    assert lab_namespaces(prefix) == []
