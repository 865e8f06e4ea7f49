"""``mhctl status``'s fast path (:mod:`mhgui.status_fast`: iproute2's JSON, no asyncio, D-Bus or pyroute2)
against the full runtime path, on a real namespace with real addresses; and what happens when ``ip`` is
missing or prints something else (issue 14)."""

from __future__ import annotations

import itertools
import json
import os
import pickle
import re
import shutil
import socket
import stat
import subprocess
import sys
import textwrap
import time

import pytest

from mhgui.core.model import AddressFlag
from mhgui.sources.iproute_json import IpJsonError, parse_addr_dump, parse_default_routes, read_snapshot
from mhgui.status_fast import Fallback, collect, missing_bus_socket, vt_answers
from netns import netns_available, run

_counter = itertools.count()

CONF = """\
NodeConfig MN;
Interface "up0" { MnIfPreference 1; }
Interface "up1" { MnIfPreference 2; }
MnHomeLink "up0" {
    HomeAgentAddress 2001:db8:100::1;
    HomeAddress 2001:db8:100::10/64;
}
"""
#: /128s on up0 (NetworkManager's DHCPv6 addresses look like this; the benchmark uses 5,000)
MANY = 400
NO_BUS = "unix:path=/nonexistent/mhgui-test-no-bus"
#: the real ``ip`` (a test puts a fake one first on the child's PATH)
IP = shutil.which("ip") or "ip"


@pytest.fixture
def node(tmp_path):
    """Namespace ``h1c-…`` with up0 (IPv6: /64s, a ULA, lifetimes, many /128s, a default router), up1
    (IPv4 only, a second default router: ECMP), up2 (down); peers in ``h1c-…p``."""
    why = netns_available()
    if why:
        pytest.skip(why)
    ns = f"h1c-{os.getpid()}-{next(_counter)}"
    peer = ns + "p"
    run("ip", "netns", "add", ns)
    run("ip", "netns", "add", peer)
    try:
        for n in (ns, peer):
            run("ip", "netns", "exec", n, "sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0")
            run("ip", "-n", n, "link", "set", "lo", "up")
        for name in ("up0", "up1", "up2"):
            run("ip", "-n", ns, "link", "add", name, "type", "veth", "peer", "name", "p-" + name, "netns", peer)
            run("ip", "-n", peer, "link", "set", "p-" + name, "up")
        for name in ("up0", "up1"):
            run("ip", "-n", ns, "link", "set", name, "up")
        batch = [
            "addr add 2001:db8:a::5/64 dev up0 nodad",
            "addr add 2001:db8:a::99/64 dev up0 nodad valid_lft 3600 preferred_lft 1800",
            "addr add 2001:db8:a::98/64 dev up0 nodad valid_lft 600 preferred_lft 0",
            "addr add fd00:1::5/64 dev up0 nodad noprefixroute",
            "addr add 192.0.2.5/24 dev up1",
            "addr add 2001:db8:c::5/64 dev up2 nodad",
            "route add default via 2001:db8:a::1 dev up0 metric 1024",
            "route append default via fe80::1 dev up1 metric 1024",
        ] + [f"addr add 2001:db8:ff::{i:x}/128 dev up0 nodad" for i in range(1, MANY + 1)]
        subprocess.run(["ip", "-n", ns, "-batch", "-"], input="\n".join(batch) + "\n", text=True, check=True,
                       capture_output=True)
        conf = tmp_path / "mip6d.conf"
        conf.write_text(CONF)
        yield ns, conf
    finally:
        run("ip", "netns", "del", ns, check=False)
        run("ip", "netns", "del", peer, check=False)


def mhctl_in(ns: str, tmp_path, *args: str, path: str, extra_env: dict | None = None,
             check: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ, MHCTL_STATUS_PATH=path, DBUS_SYSTEM_BUS_ADDRESS=NO_BUS,
               XDG_CONFIG_HOME=str(tmp_path / "cfg"), XDG_STATE_HOME=str(tmp_path / "state"), **(extra_env or {}))
    p = subprocess.run([IP, "netns", "exec", ns, sys.executable, "-m", "mhgui.cli", "status", *args],
                       capture_output=True, text=True, timeout=120, env=env)
    if check and p.returncode != 0:
        raise AssertionError(f"mhctl status {args} ({path}) → {p.returncode}: {p.stderr}")
    return p


#: counted-down seconds: two runs a moment apart (a loaded machine: seconds) may differ by what passed
_SECONDS = ("valid_lft", "preferred_lft", "lifetime_remaining")
_SLACK = 5


def _same(fast, full, where="", ignore=()) -> list[str]:
    """Differences between two status objects (``ignore``: paths whose values may differ)."""
    if where in ignore:
        return []
    if isinstance(fast, dict) and isinstance(full, dict):
        out = [f"{where}/{k}: only in {'full' if k in full else 'fast'}" for k in set(fast) ^ set(full)]
        for k in set(fast) & set(full):
            if k in _SECONDS and isinstance(fast[k], int) and isinstance(full[k], int):
                if abs(fast[k] - full[k]) > _SLACK:
                    out.append(f"{where}/{k}: {fast[k]} != {full[k]}")
                continue
            out += _same(fast[k], full[k], f"{where}/{k}", ignore)
        return out
    if isinstance(fast, list) and isinstance(full, list):
        if len(fast) != len(full):
            return [f"{where}: {len(fast)} items != {len(full)}"]
        return [d for i, (a, b) in enumerate(zip(fast, full)) for d in _same(a, b, f"{where}[{i}]", ignore)]
    return [] if fast == full else [f"{where}: {fast!r} != {full!r}"]


def _text_without_seconds(text: str) -> str:
    return re.sub(r"(valid|preferred) \d+s", r"\1 Ns", text)


@pytest.mark.netns
@pytest.mark.parametrize("opts", [(), ("--no-networkmanager",)])
def test_fast_path_gives_the_runtime_paths_answer(node, tmp_path, opts):
    ns, conf = node
    fast = json.loads(mhctl_in(ns, tmp_path, "--json", "--mip6d-conf", str(conf), *opts, path="fast").stdout)
    full = json.loads(mhctl_in(ns, tmp_path, "--json", "--mip6d-conf", str(conf), *opts, path="runtime").stdout)
    assert _same(fast, full) == []
    # it is the node's picture, not two empty ones
    up0 = next(i for i in fast["interfaces"] if i["name"] == "up0")
    assert len(up0["addresses"]) >= MANY + 4
    assert sorted(up0["default_routers"]) == ["2001:db8:a::1"]
    up1 = next(i for i in fast["interfaces"] if i["name"] == "up1")
    assert up1["default_routers"] == ["fe80::1"] and up1["note"]  # ECMP's second hop; IPv4-only link
    a99 = next(a for a in up0["addresses"] if a["address"] == "2001:db8:a::99")
    assert 3590 <= a99["valid_lft"] <= 3600 and 1790 <= a99["preferred_lft"] <= 1800
    a98 = next(a for a in up0["addresses"] if a["address"] == "2001:db8:a::98")
    assert "deprecated" in a98["flags"]
    assert fast["home_addresses"][0]["address"] == "2001:db8:100::10"
    assert fast["daemon"]["state"] == "absent" and fast["bindings"] == []
    assert fast["sources"]["netlink"] == "ok"
    text_fast = mhctl_in(ns, tmp_path, "--mip6d-conf", str(conf), *opts, path="fast").stdout
    text_full = mhctl_in(ns, tmp_path, "--mip6d-conf", str(conf), *opts, path="runtime").stdout
    assert _text_without_seconds(text_fast) == _text_without_seconds(text_full)
    assert "2001:db8:ff::1/128" in text_fast and "Binding table: no mobility daemon connected" in text_fast


MODULES = """
import json, sys
sys.argv = ["mhctl", "status", *sys.argv[2:]]
from mhgui import cli
rc = cli.main()
with open(OUT, "w") as f:
    json.dump({"rc": rc, "modules": sorted(sys.modules)}, f)
"""


@pytest.mark.netns
def test_fast_path_loads_no_loop_no_dbus_no_pyroute2(node, tmp_path):
    ns, conf = node
    out = tmp_path / "modules.json"
    env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=NO_BUS, MHCTL_STATUS_PATH="fast")
    p = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", f"OUT = {str(out)!r}\n" + MODULES, "x",
                        "--mip6d-conf", str(conf)], capture_output=True, text=True, timeout=60, env=env)
    assert p.returncode == 0, p.stderr
    got = json.loads(out.read_text())
    assert got["rc"] == 0 and "2001:db8:ff::1/128" in p.stdout
    heavy = [m for m in got["modules"] if m.split(".")[0] in ("asyncio", "dbus_fast", "pyroute2", "PySide6")]
    assert heavy == []
    assert "mhgui.sources.iproute_json" in got["modules"]


# ---------------------------------------------------------------------------------------------- `ip` itself


def fake_ip(tmp_path, script: str) -> str:
    """A directory holding an ``ip`` that runs ``script`` (sh); put it first on PATH."""
    d = tmp_path / "fake-bin"
    d.mkdir(exist_ok=True)
    f = d / "ip"
    f.write_text("#!/bin/sh\n" + textwrap.dedent(script))
    f.chmod(f.stat().st_mode | stat.S_IXUSR)
    return str(d)


REAL = json.dumps([{"ifindex": 1, "ifname": "lo", "flags": ["LOOPBACK", "UP", "LOWER_UP"], "operstate": "UNKNOWN",
                    "link_type": "loopback", "address": "00:00:00:00:00:00",
                    "addr_info": [{"family": "inet6", "local": "::1", "prefixlen": 128, "scope": "host",
                                   "valid_life_time": 4294967295, "preferred_life_time": 4294967295}]}])


@pytest.fixture(params=["memfd", "pipes"])
def runner(request, monkeypatch):
    """Both ways ``ip`` is run: memory files and pidfds, and pipes where the kernel has no pidfd."""
    if request.param == "pipes":
        monkeypatch.delattr(os, "pidfd_open")
    return request.param


@pytest.mark.parametrize("script, words", [
    ("echo 'not json at all'\n", "is not JSON"),
    (f"printf '%s' '{REAL[:len(REAL) // 2]}'\n", "is not JSON"),  # truncated
    ("echo '{\"ifindex\": 1}'\n", "not a list"),
    ("echo 'RTNETLINK answers: Operation not permitted' >&2; exit 2\n",
     "failed (exit 2): RTNETLINK answers: Operation not permitted"),
    ("printf '\\377\\376 binary'\n", "is not JSON"),
])
def test_ip_output_that_is_not_the_tables_is_an_error_that_says_so(tmp_path, monkeypatch, runner, script, words):
    monkeypatch.setenv("PATH", fake_ip(tmp_path, script))
    with pytest.raises(IpJsonError, match=re.escape(words)) as e:
        read_snapshot(devtype=None)
    assert "`ip " in str(e.value)  # it names the command


def test_ip_missing_or_hanging(tmp_path, monkeypatch, runner):
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(IpJsonError, match="not installed or not on PATH"):
        read_snapshot(devtype=None)
    monkeypatch.setenv("PATH", fake_ip(tmp_path, "exec /bin/sleep 30\n"))
    t0 = time.monotonic()
    with pytest.raises(IpJsonError, match=r"gave no answer within 0\.5 s"):
        read_snapshot(devtype=None, timeout=0.5)
    assert time.monotonic() - t0 < 5


@pytest.mark.netns
def test_both_ways_of_running_ip_read_the_same_tables(node, runner):
    ns, _conf = node
    script = ("import sys, pickle, os\n"
              + ("del os.pidfd_open\n" if runner == "pipes" else "")
              + "from mhgui.sources.iproute_json import read_snapshot\n"
              "s = read_snapshot(lambda: 0.0)\n"
              "sys.stdout.buffer.write(pickle.dumps((s.interfaces, s.addresses, s.routers)))\n")
    p = subprocess.run([IP, "netns", "exec", ns, sys.executable, "-c", script], capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr
    links, addrs, routers = pickle.loads(p.stdout)
    assert {i.name for i in links} == {"lo", "up0", "up1", "up2"}
    assert len(addrs) >= MANY + 6 and len(routers) == 2


def test_malformed_entries_are_skipped_and_flags_lifetimes_read():
    dump = [
        "not an object",
        {"ifindex": "2", "ifname": "bad"},  # ifindex not a number
        {"ifname": "no-index"},
        {"ifindex": 3, "ifname": "wlXXan", "flags": ["BROADCAST", "UP", "LOWER_UP"], "operstate": "DORMANT",
         "link_type": "ether", "linkinfo": {"info_kind": "macvlan"}, "addr_info": "not a list"},
        {"ifindex": 4, "ifname": "eth0", "flags": ["UP"], "operstate": "DOWN", "link_type": "[65534]",
         "addr_info": [
             {"family": "inet6", "local": "zz::1", "prefixlen": 64},  # not an address
             {"family": "inet6", "prefixlen": 64},  # no address
             {"family": "ipx", "local": "2001:db8::1", "prefixlen": 64},  # unknown family
             {"family": "inet6", "local": "2001:db8::1", "prefixlen": "64"},  # prefix length not a number
             {"family": "inet6", "local": "2001:0DB8:0:0::7", "prefixlen": 64, "scope": "global", "dynamic": True,
              "mngtmpaddr": True, "valid_life_time": 100, "preferred_life_time": 0},
             {"family": "inet6", "local": "fe80::1", "prefixlen": 64, "scope": "link", "tentative": True,
              "valid_life_time": 4294967295, "preferred_life_time": 4294967295},
             {"family": "inet", "local": "10.0.0.1", "address": "10.0.0.2", "prefixlen": 32, "scope": "253",
              "secondary": True},
         ]},
    ]
    raw = json.dumps(dump).encode().replace(b"wlXXan", b"wl\xffan")  # a name that is not UTF-8
    links, addrs = parse_addr_dump(raw, now=1000.0)
    assert [(i.ifindex, i.name) for i in links] == [(3, "wl\\xffan"), (4, "eth0")]
    wl, eth = links
    assert wl.kind.value == "virtual" and wl.carrier and wl.operstate == "dormant" and not wl.up
    assert eth.kind.value == "tunnel" and eth.admin_up and not eth.carrier  # ARPHRD_NONE: IP-less link
    by = {a.address: a for a in addrs}
    assert sorted(by) == ["10.0.0.1", "2001:db8::7", "fe80::1"]  # RFC 5952 text
    g = by["2001:db8::7"]
    assert g.flags == AddressFlag.MANAGETEMPADDR | AddressFlag.DEPRECATED  # preferred 0: deprecated
    assert (g.valid_until, g.preferred_until) == (1100.0, 1000.0)
    ll = by["fe80::1"]
    assert ll.flags == AddressFlag.TENTATIVE | AddressFlag.PERMANENT and ll.scope == 253 and ll.valid_until is None
    v4 = by["10.0.0.1"]  # IFA_LOCAL, not the peer
    assert v4.family == 2 and v4.scope == 253 and v4.flags == AddressFlag.TEMPORARY | AddressFlag.PERMANENT


def test_default_routes_single_and_ecmp():
    out = json.dumps([
        {"dst": "default", "gateway": "fe80::1", "dev": "wlan0", "metric": 600},
        {"dst": "default", "metric": 1024, "nexthops": [{"gateway": "2001:DB8::1", "dev": "eth0"},
                                                        {"gateway": "fe80::2", "dev": "gone0"},
                                                        {"dev": "eth0"}]},
        {"dst": "2001:db8::/64", "gateway": "fe80::9", "dev": "eth0"},
        {"dst": "default", "type": "unreachable", "dev": "lo"},
        "junk",
    ]).encode()
    assert parse_default_routes(out, {"wlan0": 3, "eth0": 2, "lo": 1}) == ((3, "fe80::1"), (2, "2001:db8::1"))


# ------------------------------------------------------------------------- when the fast path does not answer


def test_bus_address_decides():
    assert missing_bus_socket(NO_BUS)
    assert not missing_bus_socket("unix:path=/")  # something is there: ask it (full path)
    assert not missing_bus_socket("unix:abstract=/tmp/dbus-x")
    assert not missing_bus_socket(NO_BUS + ";unix:path=/run/other")
    assert not missing_bus_socket("tcp:host=localhost,port=1")
    with pytest.raises(Fallback, match="system bus"):
        collect(system_bus="unix:path=" + __file__, mip6d_conf="/dev/null")


def test_a_terminal_that_answers_is_read_on_the_full_path():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        port = srv.getsockname()[1]
        assert vt_answers(port, hosts=("127.0.0.1",))
        with pytest.raises(Fallback, match=f"port {port}"):
            collect(system_bus=NO_BUS, vt_port=port, mip6d_conf="/dev/null")
    assert not vt_answers(port, hosts=("127.0.0.1",))


@pytest.mark.netns
def test_broken_ip_falls_back_to_the_full_path(node, tmp_path):
    """A broken ``ip`` costs speed, not the answer: the full path (pyroute2) gives it; asked for the fast
    path alone, mhctl says why it cannot."""
    ns, conf = node
    fake = fake_ip(tmp_path, "echo '[{\"ifindex\": 1, \"ifname\"'\n")
    env = {"PATH": fake + os.pathsep + os.environ.get("PATH", "")}
    p = mhctl_in(ns, tmp_path, "--mip6d-conf", str(conf), path="fast", extra_env=env, check=False)
    assert p.returncode == 1 and p.stdout == ""
    assert "the fast status path cannot answer: `ip -d -j addr show` printed something that is not JSON" \
        in p.stderr
    got = json.loads(mhctl_in(ns, tmp_path, "--json", "--mip6d-conf", str(conf), path="", extra_env=env).stdout)
    full = json.loads(mhctl_in(ns, tmp_path, "--json", "--mip6d-conf", str(conf), path="runtime").stdout)
    assert _same(got, full) == []
    assert any(a["address"] == "2001:db8:ff::1" for i in got["interfaces"] for a in i["addresses"])



# ------------------------------------------------------------------------------ with a bus and mhgui's engine


@pytest.mark.netns
def test_in_the_lab_the_engines_binding_table_and_the_same_answer(tmp_path):
    """The lab has a system bus and mhgui's engine: status takes the fast path (one blocking D-Bus connection,
    iproute2's JSON: mhgui.status_bus) and gives the answer of the full path (asyncio, dbus-fast, the engine's
    driver, the rtnetlink source)."""
    why = netns_available()
    if why:
        pytest.skip(why)
    prefix = "h1c"
    mhctl = [sys.executable, "-m", "mhgui.cli", "lab", "--prefix", prefix]
    up = subprocess.run([*mhctl, "up"], capture_output=True, text=True, timeout=180)
    try:
        assert up.returncode == 0, up.stderr

        def status(path: str, *args: str) -> subprocess.CompletedProcess:
            env = dict(os.environ, MHCTL_STATUS_PATH=path, XDG_CONFIG_HOME=str(tmp_path / "cfg"))
            return subprocess.run([*mhctl, "exec", "--", sys.executable, "-m", "mhgui.cli", "status", *args],
                                  capture_output=True, text=True, timeout=120, env=env)

        deadline = time.monotonic() + 60
        while True:  # the engine registers within seconds of `lab up`
            got = json.loads(status("", "--json").stdout)
            if any(b["state"] == "registered" for b in got["bindings"]) or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert got["daemon"]["name"] == "engine" and got["daemon"]["connected"]
        assert [b["state"] for b in got["bindings"]] == ["registered"]
        fast = status("fast", "--json")  # the fast path alone: an error if it could not answer
        assert fast.returncode == 0, fast.stderr
        full = json.loads(status("runtime", "--json").stdout)
        # the probes' round-trip times are live figures: the headline's words about them may differ
        assert _same(json.loads(fast.stdout), full, ignore=("/headline/text", "/headline/detail")) == []

        def words(text: str) -> list[str]:
            return [re.sub(r"lifetime \d+s/", "lifetime Ns/", _text_without_seconds(line))
                    for line in text.splitlines() if not line.startswith("Node: ")]
        assert words(status("fast").stdout) == words(status("runtime").stdout)
        text = status("").stdout
        assert "Binding table (engine):" in text and " registered " in text
    finally:
        subprocess.run([*mhctl, "down"], capture_output=True, text=True, timeout=120)
