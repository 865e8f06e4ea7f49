"""The engine's routing in real namespaces: the HoA is the default source, a steered flow stays direct,
and the home agent's on-link home prefix mode (proxy NDP).

Order of rules (mhgui/engine/routing.py): the helper's steering rules (28008/28009) come before the
engine's (28090..28100), so a flow steered out of an uplink keeps that uplink's CoA and goes direct.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from netns import netns_available

pytestmark = pytest.mark.netns

PREFIX = f"r{os.getpid() % 10000}"


def _ns_python(ns: str, code: str, timeout: float = 15) -> str:
    out = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=timeout)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


@pytest.fixture(scope="module")
def lab():
    why = netns_available()
    if why:
        pytest.skip(why)
    from mhgui.lab import Lab
    Lab.down(PREFIX)
    info = Lab.up(PREFIX)
    try:
        yield info
    finally:
        Lab.down(PREFIX)


CONNECT = """
import socket, sys
s = socket.create_connection(("2001:db8:c0::2", 7), timeout=5)
print(s.getsockname()[0])
"""


def _echo_server(lab):
    return subprocess.Popen(["ip", "netns", "exec", lab.netns("cn"), sys.executable, "-c", """
import socket
s = socket.socket(socket.AF_INET6); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("2001:db8:c0::2", 7)); s.listen(8); print("ready", flush=True)
while True:
    c, a = s.accept(); print(a[0], flush=True); c.close()
"""], stdout=subprocess.PIPE, text=True)


def test_the_home_address_is_the_default_source_and_a_steered_flow_stays_direct(lab, tmp_path):
    from mhgui.helper.steering import SteeringEngine
    server = _echo_server(lab)
    try:
        assert server.stdout.readline().strip() == "ready"
        # a new connection leaves from the HoA, through the tunnel: the CN sees the HoA
        assert _ns_python(lab.netns("mn"), CONNECT) == "2001:db8:10::42"
        assert server.stdout.readline().strip() == "2001:db8:10::42"
        rules = subprocess.run(["ip", "-n", lab.netns("mn"), "-6", "rule"], capture_output=True, text=True).stdout
        assert [ln.split(":")[0] for ln in rules.splitlines()][:8] == [
            "0", "28085", "28090", "28091", "28095", "28096", "28100", "32766"]
        # the helper steers the CN's prefix out of up0: the flow keeps up0's CoA and goes direct
        eng = SteeringEngine(str(tmp_path), netns=lab.netns("mn"))
        rule = eng.add({"destination": "2001:db8:c0::/64", "interface": "up0"})
        try:
            assert _ns_python(lab.netns("mn"), CONNECT) == "2001:db8:a1::2"
            assert server.stdout.readline().strip() == "2001:db8:a1::2"
            route = subprocess.run(["ip", "-n", lab.netns("mn"), "-6", "route", "get", "2001:db8:c0::2"],
                                   capture_output=True, text=True).stdout
            assert "dev up0" in route and "mhmn0" not in route
        finally:
            eng.remove(rule.id)
        assert _ns_python(lab.netns("mn"), CONNECT) == "2001:db8:10::42"
    finally:
        server.kill()
        server.wait()
        server.stdout.close()


def test_a_route_the_access_network_adds_does_not_pull_traffic_out_of_the_tunnel(lab):
    """TunnelVision: a router advertisement's on-link prefix (here 2000::/3 on up0, as a hostile RA's PIO
    would add) must not send HoA traffic, or new connections, outside the tunnel."""
    mn = lab.netns("mn")
    subprocess.run(["ip", "-n", mn, "-6", "route", "add", "2000::/3", "dev", "up0"], check=True)
    try:
        for args in (["2001:db8:c0::2"], ["2606:4700::1111"], ["2606:4700::1111", "from", "2001:db8:10::42"]):
            route = subprocess.run(["ip", "-n", mn, "-6", "route", "get", *args], capture_output=True,
                                   text=True).stdout
            assert "dev mhmn0" in route and "up0" not in route, (args, route)
        # the uplink's own subnet and link-local stay direct
        for dst in ("2001:db8:a1::1", "fe80::1"):
            route = subprocess.run(["ip", "-n", mn, "-6", "route", "get", dst, "oif", "up0"] if dst.startswith("fe80")
                                   else ["ip", "-n", mn, "-6", "route", "get", dst], capture_output=True,
                                   text=True).stdout
            assert "dev up0" in route, (dst, route)
    finally:
        subprocess.run(["ip", "-n", mn, "-6", "route", "del", "2000::/3", "dev", "up0"], check=False)


HA_TOML = """[home_agent]
listen = ["::1"]
port = 4191
address = "2001:db8:10::1"
home_prefix = "2001:db8:10::/64"
tun = "mhha0"
state_dir = "{state}"
home_link = "home0"
[[node]]
identity = "mn1@lab.mhgui.invalid"
home_addresses = ["2001:db8:10::42"]
[[node.key]]
spi = 256
file = "{key}"
"""

SEND_BU = """
import os, socket, sys, time
from mhgui.engine import wire
from mhgui.engine.session import session_option
key = bytes.fromhex(open(sys.argv[1]).read().strip())
lifetime = int(sys.argv[2])
hoa, ha = wire.addr16("2001:db8:10::42"), wire.addr16("2001:db8:10::1")
msg = wire.BindingUpdate(int(time.time() * 1000) & 0xFFFF, wire.BU_A | wire.BU_H, lifetime, options=(
    wire.AlternateCareOf("2001:db8:a1::2"), wire.ReplayProtection(int(time.time() * 2**32)),
    session_option(os.urandom(16), 9)))
mh = wire.encode_authenticated(msg, hoa, ha, coa="2001:db8:a1::2", key=key, spi=256,
                               identity="mn1@lab.mhgui.invalid", hoa=hoa)
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); s.settimeout(5)
s.sendto(wire.encode_packet(mh, hoa, ha), ("::1", 4191))
src, dst, mh = wire.decode_packet(s.recv(2048))
print(wire.decode_mh(mh, src, dst).status)
"""


def test_home_agent_on_an_on_link_home_prefix_answers_for_bound_home_addresses(tmp_path):
    why = netns_available()
    if why:
        pytest.skip(why)
    from mhgui.engine import config
    ns, peer = f"{PREFIX}-hl", f"{PREFIX}-hp"
    for n in (ns, peer):
        subprocess.run(["ip", "netns", "del", n], capture_output=True)
        subprocess.run(["ip", "netns", "add", n], check=True)
        subprocess.run(["ip", "-n", n, "link", "set", "lo", "up"], check=True)
    proc = None
    try:
        subprocess.run(["ip", "-n", ns, "link", "add", "home0", "type", "veth", "peer", "name", "p0", "netns", peer],
                       check=True)
        for n, dev in ((ns, "home0"), (peer, "p0")):
            subprocess.run(["ip", "-n", n, "link", "set", dev, "up"], check=True)
        keys = tmp_path / "keys"
        keys.mkdir(mode=0o700)
        config.write_key_file(str(keys / "mn1.key"), os.urandom(32))
        (tmp_path / "ha.toml").write_text(HA_TOML.format(state=tmp_path / "state", key=keys / "mn1.key"))
        exe = Path(sys.executable).parent / "mhgui-ha"
        cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "mhgui.engine.had"]
        with open(tmp_path / "ha.log", "w") as log:
            proc = subprocess.Popen(["ip", "netns", "exec", ns, *cmd, "--config", str(tmp_path / "ha.toml")],
                                    stderr=log)
        deadline = time.monotonic() + 15
        while not (tmp_path / "state" / "bindings.json").exists():
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "ha.log").read_text()
            time.sleep(0.05)
        send = [sys.executable, "-c", SEND_BU, str(keys / "mn1.key")]
        out = subprocess.run(["ip", "netns", "exec", ns, *send, "150"], capture_output=True, text=True, timeout=20)
        assert out.stdout.strip() == "0", out.stderr + (tmp_path / "ha.log").read_text()

        def proxied() -> str:
            return subprocess.run(["ip", "-n", ns, "-6", "neigh", "show", "proxy"], capture_output=True,
                                  text=True).stdout

        deadline = time.monotonic() + 5
        while "2001:db8:10::42" not in proxied() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "2001:db8:10::42 dev home0" in proxied()
        route = subprocess.run(["ip", "-n", ns, "-6", "route", "show", "2001:db8:10::42/128"], capture_output=True,
                               text=True).stdout
        assert "dev mhha0" in route
        sysctl = subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-n", "net.ipv6.conf.home0.proxy_ndp"],
                                capture_output=True, text=True).stdout.strip()
        assert sysctl == "1"
        # deregistration removes the entry
        out = subprocess.run(["ip", "netns", "exec", ns, *send, "0"], capture_output=True, text=True, timeout=20)
        assert out.stdout.strip() == "0", out.stderr
        deadline = time.monotonic() + 5
        while "2001:db8:10::42" in proxied() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "2001:db8:10::42" not in proxied()
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=10)
        for n in (ns, peer):
            subprocess.run(["ip", "netns", "del", n], capture_output=True)
