"""Source prefix and next hop go together (issue 13.2; draft 6.1.2 ingress filtering; RFC 8028).

Pure: :func:`mhgui.core.nexthop.next_hop` and the planner over generated links (routers,
advertised prefixes, addresses). Kernel: a lab with ONE link, a bridge in namespace L,
carrying the node N (e0) and two routers R1 and R2, each advertising its own prefix with
real router advertisements sent from its namespace on a raw ICMPv6 socket (built with
scapy): R1 2001:db8:1::/64, R2 2001:db8:2::/64. The node's kernel takes them in
(accept_ra=2: SLAAC addresses in both prefixes, default routes through both routers),
and so does mhgui's RA listener (:mod:`mhgui.helper.ra_listener`) in N. Each router
forwards only its own prefix's sources (ingress filtering, as a provider does) to the
server S behind both. What leaves the node is captured on e0 (AF_PACKET): the
destination MAC says which router a packet went to.
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from netns import netns_available, run

from mhgui.core import steering as core
from mhgui.core.nexthop import next_hop
from mhgui.core.ra import Advert
from mhgui.core.steering import SOURCE_TABLE_BASE, TABLE_BASE, Uplink

NEED = netns_available()
netns_only = pytest.mark.skipif(NEED is not None, reason=NEED or "")

# --------------------------------------------------------------------------- pure: next_hop


def _lls(n: int) -> list[str]:
    return [f"fe80::{i + 1:x}" for i in range(n)]


link_st = st.integers(1, 4).flatmap(lambda n: st.tuples(
    st.just(_lls(n)),
    # which routers advertise which of prefixes 2001:db8:0..3::/64, and whether they are default routers
    st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, 3), st.booleans()), max_size=8),
    st.lists(st.integers(0, n - 1), unique=True, max_size=n),  # the kernel's default routers (order = rank)
    st.integers(0, 4),  # the source's prefix (4: one nobody advertises)
))


@settings(max_examples=500, deadline=None)
@given(link_st)
def test_next_hop_is_a_router_that_advertised_the_source_prefix(link):
    routers, ads, kernel, which = link
    adverts = [Advert(2, routers[r], f"2001:db8:{p}::/64", d) for r, p, d in ads]
    source = str(ipaddress.IPv6Address(f"2001:db8:{which}::5"))
    nh = next_hop(source, "e0", [routers[i] for i in kernel], adverts)
    mine = [a for a in adverts if ipaddress.ip_address(source) in ipaddress.ip_network(a.prefix)]
    if any(a.default_router for a in mine):
        assert not nh.refusal and not nh.note
        assert any(a.router == nh.router and a.default_router for a in mine)  # never another provider's
        ranked = [routers[i] for i in kernel if any(a.router == routers[i] and a.default_router for a in mine)]
        if ranked:
            assert nh.router == ranked[0]  # the kernel's preference among the right ones
    elif mine:
        assert nh.router is None and "router lifetime 0" in nh.refusal
    else:
        on_link = {routers[i] for i in kernel} | {a.router for a in adverts if a.default_router}
        if not on_link:
            assert nh == next_hop(source, "e0", [], [])  # no router: on-link, as before
            assert nh.router is None and not nh.refusal
        elif len(on_link) == 1:
            assert nh.router in on_link and "one router" in nh.note and not nh.refusal
        else:
            assert nh.router is None and f"{len(on_link)} routers" in nh.refusal and source in nh.refusal


def test_next_hop_prefers_the_longest_advertised_prefix():
    ads = [Advert(2, "fe80::1", "2001:db8::/32", True), Advert(2, "fe80::2", "2001:db8:1::/64", True)]
    assert next_hop("2001:db8:1::5", "e0", ["fe80::1", "fe80::2"], ads).router == "fe80::2"
    assert next_hop("2001:db8:9::5", "e0", ["fe80::1", "fe80::2"], ads).router == "fe80::1"


# --------------------------------------------------------------------------- pure: the planner

plan_st = st.tuples(
    st.integers(2, 4),  # routers, router i advertising 2001:db8:i::/64
    st.lists(st.integers(0, 5), min_size=1, max_size=6, unique=True),  # the node's prefixes (4, 5: static)
    st.integers(0, 6),  # the rule's source: a prefix index, or 6: none
    st.booleans(),  # the kernel's first router is the last one
)


@settings(max_examples=300, deadline=None)
@given(plan_st)
def test_planned_routes_pair_each_source_with_its_router(case):
    n, have, src_i, reverse = case
    routers = _lls(n)
    addrs = tuple(str(ipaddress.IPv6Address(f"2001:db8:{i}::5")) for i in sorted(have))
    pfx = {i: str(ipaddress.IPv6Network(f"2001:db8:{i}::/64")) for i in range(6)}
    up = Uplink(2, addrs[0], routers[-1] if reverse else routers[0], tuple(pfx[i] for i in have),
                addresses=addrs, routers=tuple(reversed(routers)) if reverse else tuple(routers),
                adverts=tuple(Advert(2, routers[i], pfx[i], True) for i in range(n)))
    request = {"destination": "2001:db8:f000::/36", "interface": "e0"}
    if src_i < 6:
        request["source"] = pfx[src_i]
    rule = core.rule_from_request(request, rule_id="r", now=0)
    plan = core.plan_kernel_state([rule], {"e0": up})
    advertiser = {pfx[i]: routers[i] for i in range(n)}

    def router_of(addr: str) -> str | None:
        return advertiser.get(str(ipaddress.ip_interface(f"{addr}/64").network))

    def in_source(addr: str) -> bool:
        return src_i == 6 or ipaddress.ip_address(addr) in ipaddress.ip_network(pfx[src_i])

    served = [a for a in addrs if router_of(a) and in_source(a)]
    main = [r for r in plan.routes if r.table == TABLE_BASE + 1 and r.kind == "unicast"]
    if not served:  # nothing pairs: refused (or waiting for an address in the source)
        assert main == [] and plan.reasons["r"]
        if any(in_source(a) for a in addrs):
            assert "routers" in plan.refusals["r"] and "ingress filter" in plan.refusals["r"]
        return
    assert len(main) == 1 and main[0].prefsrc == served[0] and main[0].gateway == router_of(served[0])
    assert not main[0].source  # (beside a source-specific route the kernel would not find it without a source)
    # a connection that already has a source keeps to its prefix's router, whatever the destination
    routed = sorted(p for p in advertiser if p in up.prefixes)
    first = {r.src for r in plan.rules if r.priority == core.RULE_PRIORITY - 1}
    assert first == (set(routed) if len(routed) > 1 else set())
    assert all(r.table == SOURCE_TABLE_BASE + 1 for r in plan.rules if r.priority == core.RULE_PRIORITY - 1)
    # the source table: each prefix through its own router (one default when they all share one)
    for r in plan.routes:
        if r.table == SOURCE_TABLE_BASE + 1 and r.dst == "::/0":
            if r.source:
                assert r.gateway == advertiser[r.source]
            else:
                assert {router_of(a) for a in addrs if router_of(a)} == {r.gateway}


# --------------------------------------------------------------------------- the lab

_counter = itertools.count()
PFX1, PFX2 = "2001:db8:1::/64", "2001:db8:2::/64"
SERVER6 = "2001:db8:5::1"
PORT = 7000


def _sock(ns: str, family: int, kind: int, proto: int = 0) -> socket.socket:
    from pyroute2.netns import create_socket

    return create_socket(ns, family, kind, proto)


def _wait_for(pred, what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.02)


def _ra_bytes(mac: str, prefix: str, lifetime: int = 1800, valid: int = 86400, preferred: int = 14400,
              autonomous: bool = True) -> bytes:
    from scapy.layers.inet6 import (
        ICMPv6ND_RA,
        ICMPv6NDOptPrefixInfo,
        ICMPv6NDOptSrcLLAddr,
    )

    net = ipaddress.ip_network(prefix)
    return bytes(ICMPv6ND_RA(cksum=0, chlim=64, routerlifetime=lifetime)
                 / ICMPv6NDOptSrcLLAddr(lladdr=mac)
                 / ICMPv6NDOptPrefixInfo(prefixlen=net.prefixlen, L=1, A=int(autonomous), validlifetime=valid,
                                         preferredlifetime=preferred, prefix=str(net.network_address)))


class Router:
    """A router namespace on the link: its link-local address, MAC, prefix, and an RA sender."""

    def __init__(self, lab: "OneLinkLab", ns: str, ll: str, prefix: str, up_addr: str) -> None:
        self.lab, self.ns, self.ll, self.prefix, self.up_addr = lab, ns, ll, prefix, up_addr
        self.mac = ""
        self.ifindex = 0
        self.solicited: list[tuple[str, int]] = []  # (source, hop limit) of router solicitations heard
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.autonomous = True

    def advertise(self, **kw) -> None:
        """One router advertisement to all nodes (ff02::1), hop limit 255, from the router's link-local."""
        kw.setdefault("autonomous", self.autonomous)
        s = _sock(self.ns, socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
        try:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
            s.sendto(_ra_bytes(self.mac, self.prefix, **kw), ("ff02::1", 0, 0, self.ifindex))
        finally:
            s.close()

    def answer_solicitations(self) -> None:
        """Answer each router solicitation with an advertisement (as routers do, RFC 4861 6.2.6)."""
        from mhgui.helper.ra_listener import ICMP6_FILTER, ra_filter

        s = _sock(self.ns, socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
        s.setsockopt(socket.IPPROTO_ICMPV6, ICMP6_FILTER, ra_filter(133))
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT, 1)
        s.settimeout(0.05)

        def loop() -> None:
            with s:
                while not self._stop.is_set():
                    try:
                        _data, anc, _f, addr = s.recvmsg(1500, 64)
                    except (socket.timeout, OSError):
                        continue
                    hop = next((struct.unpack("=i", v[:4])[0] for lvl, k, v in anc
                                if lvl == socket.IPPROTO_IPV6 and k == socket.IPV6_HOPLIMIT), None)
                    self.solicited.append((addr[0].split("%")[0], hop))
                    self.advertise()

        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)


class OneLinkLab:
    """N (e0) + R1 + R2 on one bridged link; S behind both routers."""

    def __init__(self, ll1: str = "fe80::b", ll2: str = "fe80::a") -> None:
        n = f"{os.getpid()}-{next(_counter)}"
        self.node, self.link, ns1, ns2, self.srv = (f"mhr-{x}-{n}" for x in ("n", "l", "a", "b", "s"))
        self.r1 = Router(self, ns1, ll1, PFX1, "2001:db8:11::")
        self.r2 = Router(self, ns2, ll2, PFX2, "2001:db8:12::")
        self.all = (self.node, self.link, ns1, ns2, self.srv)
        self.sockets: list[socket.socket] = []
        try:
            self._build()
        except BaseException:
            self.close()
            raise

    def ip(self, ns: str, *args: str, check: bool = True) -> str:
        return run("ip", "-n", ns, *args, check=check)

    def sysctl(self, ns: str, *settings: str) -> None:
        run("ip", "netns", "exec", ns, "sysctl", "-qw", *settings)

    def _build(self) -> None:
        for ns in self.all:
            run("ip", "netns", "add", ns)
            self.sysctl(ns, "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0")
            self.ip(ns, "link", "set", "lo", "up")
        self.sysctl(self.node, "net.ipv6.conf.all.accept_ra=2", "net.ipv6.conf.default.accept_ra=2",
                    "net.ipv6.conf.default.use_tempaddr=0")
        for r in (self.r1, self.r2):
            self.sysctl(r.ns, "net.ipv6.conf.all.forwarding=1", "net.ipv6.conf.all.accept_ra=0",
                        "net.ipv6.conf.default.accept_ra=0")
        self.ip(self.link, "link", "add", "br0", "type", "bridge", "mcast_snooping", "0")
        self.ip(self.link, "link", "set", "br0", "up")

        def veth(a_ns: str, a: str, b_ns: str, b: str, *, bridge: bool = False, ll: str | None = None) -> None:
            self.ip(a_ns, "link", "add", a, "type", "veth", "peer", "name", b, "netns", b_ns)
            if ll is not None:
                self.ip(a_ns, "link", "set", a, "addrgenmode", "none")
            self.ip(a_ns, "link", "set", a, "up")
            if bridge:
                self.ip(b_ns, "link", "set", b, "master", "br0")
            self.ip(b_ns, "link", "set", b, "up")
            if ll is not None:
                self.ip(a_ns, "-6", "addr", "add", f"{ll}/64", "dev", a)

        veth(self.node, "e0", self.link, "pn", bridge=True)
        for i, r in enumerate((self.r1, self.r2), 1):
            veth(r.ns, "n0", self.link, f"p{i}", bridge=True, ll=r.ll)
            veth(r.ns, "s0", self.srv, f"s{i}")
            gw = ipaddress.ip_network(r.prefix).network_address + 1
            self.ip(r.ns, "-6", "addr", "add", f"{gw}/64", "dev", "n0", "nodad")
            self.ip(r.ns, "-6", "addr", "add", f"{r.up_addr}1/64", "dev", "s0", "nodad")
            self.ip(self.srv, "-6", "addr", "add", f"{r.up_addr}2/64", "dev", f"s{i}", "nodad")
            self.ip(r.ns, "-6", "route", "add", "2001:db8:4::/46", "via", f"{r.up_addr}2")
            self.ip(self.srv, "-6", "route", "add", r.prefix, "via", f"{r.up_addr}1")
            # ingress filtering: from the node's link, only this router's prefix is forwarded
            # (neighbour discovery and link-local traffic to the router itself still pass)
            for sel in (("from", "fe80::/10"), ("to", "fe80::/10"), ("to", "ff00::/8"), ("from", r.prefix)):
                self.ip(r.ns, "-6", "rule", "add", "pref", "10", "iif", "n0", *sel, "lookup", "main")
            self.ip(r.ns, "-6", "rule", "add", "pref", "11", "iif", "n0", "prohibit")
            link = json.loads(self.ip(r.ns, "-j", "link", "show", "dev", "n0"))[0]
            r.mac, r.ifindex = link["address"], link["ifindex"]
        self.ip(self.srv, "-6", "addr", "add", f"{SERVER6}/128", "dev", "lo")
        self.e0 = json.loads(self.ip(self.node, "-j", "link", "show", "dev", "e0"))[0]["ifindex"]

    def node_addresses(self) -> list[str]:
        out = []
        for link in json.loads(self.ip(self.node, "-j", "-6", "addr", "show", "dev", "e0")):
            out += [a["local"] for a in link.get("addr_info", []) if a.get("scope") == "global"]
        return out

    def address_in(self, prefix: str) -> str:
        return next(a for a in self.node_addresses() if ipaddress.ip_address(a) in ipaddress.ip_network(prefix))

    def default_routers(self) -> set[str]:
        return {r.get("gateway") for r in json.loads(self.ip(self.node, "-j", "-6", "route", "show", "default"))}

    def advertise_both(self) -> None:
        self.r1.advertise()
        self.r2.advertise()
        _wait_for(lambda: {self.r1.ll, self.r2.ll} <= self.default_routers()
                  and all(any(ipaddress.ip_address(a) in ipaddress.ip_network(p) for a in self.node_addresses())
                          for p in (PFX1, PFX2) if self.r1.autonomous),
                  "the node's kernel to take both advertisements in")

    def close(self) -> None:
        for r in (self.r1, self.r2):
            r.close()
        for s in self.sockets:
            s.close()
        for ns in self.all:
            run("ip", "netns", "del", ns, check=False)


class Hearing:
    """mhgui's RA listener in the node namespace, on an event loop of its own thread."""

    def __init__(self, ns: str, solicit: bool = False) -> None:
        from mhgui.helper.ra_listener import RAListener

        self.changes = 0
        self.listener = RAListener(on_change=self._changed, netns=ns, solicit=solicit)
        self.loop = asyncio.new_event_loop()
        self._task: asyncio.Task | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        _wait_for(lambda: self.listener.ready.is_set(), "the RA listener's socket")

    def _changed(self) -> None:
        self.changes += 1

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self._task = self.loop.create_task(self.listener.run())
        try:
            self.loop.run_until_complete(self._task)
        except asyncio.CancelledError:
            pass
        finally:
            self.loop.close()

    def routers_of(self, prefix: str) -> set[str]:
        return {a.router for a in self.listener.adverts() if a.prefix == prefix and a.default_router}

    def close(self) -> None:
        if self._task is not None:
            self.loop.call_soon_threadsafe(self._task.cancel)
        self.thread.join(5)


class Capture:
    """Frames the node sends on e0 (AF_PACKET, outgoing): (destination MAC, source, destination, sport)."""

    def __init__(self, lab: OneLinkLab) -> None:
        # ETH_P_ALL: only such sockets see what the node sends
        self.sock = _sock(lab.node, socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
        self.sock.bind(("e0", 0))
        self.sock.settimeout(0.05)
        self.frames: list[tuple[str, str, str, int]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                frame, addr = self.sock.recvfrom(65536)
            except (socket.timeout, OSError):
                continue
            if addr[2] != socket.PACKET_OUTGOING or len(frame) < 58 or frame[12:14] != b"\x86\xdd" or frame[20] != 6:
                continue
            dmac = ":".join(f"{b:02x}" for b in frame[0:6])
            src = str(ipaddress.IPv6Address(frame[22:38]))
            dst = str(ipaddress.IPv6Address(frame[38:54]))
            with self._lock:
                self.frames.append((dmac, src, dst, struct.unpack("!H", frame[54:56])[0]))

    def of(self, port: int) -> list[tuple[str, str, str, int]]:
        with self._lock:
            return [f for f in self.frames if f[3] == port]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


class Echo:
    """A TCP echo server on S."""

    def __init__(self, ns: str) -> None:
        self.sock = _sock(ns, socket.AF_INET6, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((SERVER6, PORT))
        self.sock.listen(16)
        self.sock.settimeout(0.05)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                c, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c: socket.socket) -> None:
        c.settimeout(10)
        with c:
            while True:
                try:
                    data = c.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                c.sendall(data)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


def _connect(lab: OneLinkLab) -> socket.socket:
    s = _sock(lab.node, socket.AF_INET6, socket.SOCK_STREAM)
    lab.sockets.append(s)
    s.settimeout(5)
    s.connect((SERVER6, PORT))
    return s


def _echo(s: socket.socket, data: bytes = b"ping") -> None:
    s.sendall(data)
    got = b""
    while len(got) < len(data):
        chunk = s.recv(65536)
        assert chunk, "the connection was closed"
        got += chunk
    assert got == data


@pytest.fixture
def one_link(request):
    if NEED:
        pytest.skip(NEED)
    pytest.importorskip("scapy.layers.inet6")
    ll1, ll2 = getattr(request, "param", ("fe80::b", "fe80::a"))
    lab = OneLinkLab(ll1, ll2)
    hearing = echo = cap = None
    try:
        hearing = Hearing(lab.node)
        echo, cap = Echo(lab.srv), Capture(lab)
        yield lab, hearing, cap
    finally:
        for x in (cap, echo, hearing):
            if x is not None:
                x.close()
        lab.close()


def _engine(lab: OneLinkLab, hearing: Hearing, tmp_path: Path):
    from mhgui.helper.steering import SteeringEngine

    return SteeringEngine(str(tmp_path / "state"), netns=lab.node, adverts=hearing.listener.adverts)


def _table(lab: OneLinkLab, table: int) -> list[str]:
    return lab.ip(lab.node, "-6", "route", "show", "table", str(table)).splitlines()


def _steered(lab: OneLinkLab, eng) -> str:
    """The route of 2001:db8:4::/46 in e0's destination table."""
    table = TABLE_BASE + eng.load().slots["e0"]
    return next(x for x in _table(lab, table) if x.startswith("2001:db8:4::/46 via"))


# the link-local addresses decide which default route the kernel lists first: both orders
@netns_only
@pytest.mark.parametrize("one_link", [("fe80::b", "fe80::a"), ("fe80::a", "fe80::b")], indirect=True,
                         ids=["r2-sorts-first", "r1-sorts-first"])
def test_steered_flow_leaves_through_the_router_that_advertised_its_source(one_link, tmp_path):
    lab, hearing, cap = one_link
    lab.advertise_both()
    _wait_for(lambda: hearing.routers_of(PFX1) == {lab.r1.ll} and hearing.routers_of(PFX2) == {lab.r2.ll},
              "the listener to hear both routers")
    a1, a2 = lab.address_in(PFX1), lab.address_in(PFX2)
    eng = _engine(lab, hearing, tmp_path)
    for source, addr, router in [(None, a1, lab.r1), (PFX2, a2, lab.r2), (PFX1, a1, lab.r1), (f"{a2}/128", a2, lab.r2)]:
        request = {"destination": "2001:db8:4::/46", "interface": "e0"}
        if source:
            request["source"] = source
        rule = eng.add(request)
        [listed] = eng.listing()
        assert listed.in_kernel and listed.status == "", listed.status
        # the route carries the source and goes through the router that advertised its prefix
        line = _steered(lab, eng)
        assert f"via {router.ll} dev e0" in line and f"src {addr}" in line, line
        s = _connect(lab)
        _echo(s, b"x" * 5000)  # the handshake and data pass the router's ingress filter
        port = s.getsockname()[1]
        assert s.getsockname()[0] == addr
        s.close()
        _wait_for(lambda port=port: len(cap.of(port)) >= 3, "the connection's frames")
        assert {(f[0], f[1]) for f in cap.of(port)} == {(router.mac, addr)}
        eng.remove(rule.id)


@netns_only
def test_established_connection_keeps_its_router_when_the_rule_changes_source(one_link, tmp_path):
    lab, hearing, cap = one_link
    lab.advertise_both()
    _wait_for(lambda: hearing.routers_of(PFX2) == {lab.r2.ll} and hearing.routers_of(PFX1), "both routers heard")
    a1, a2 = lab.address_in(PFX1), lab.address_in(PFX2)
    eng = _engine(lab, hearing, tmp_path)
    first = eng.add({"destination": "2001:db8:4::/46", "interface": "e0", "source": PFX2})
    old = _connect(lab)
    _echo(old)
    assert old.getsockname()[0] == a2
    eng.remove(first.id)
    eng.add({"destination": "2001:db8:4::/46", "interface": "e0", "source": PFX1})
    stable = SOURCE_TABLE_BASE + eng.load().slots["e0"]
    assert f"{core.RULE_PRIORITY - 1}:\tfrom {PFX2} lookup {stable}" in lab.ip(lab.node, "-6", "rule")
    assert any(x.startswith(f"default from {PFX2} via {lab.r2.ll}") for x in _table(lab, stable))
    n = len(cap.of(old.getsockname()[1]))
    _echo(old, b"after the change")  # still through R2: R1 would drop its source
    new = _connect(lab)
    _echo(new)
    assert new.getsockname()[0] == a1
    _wait_for(lambda: len(cap.of(old.getsockname()[1])) > n and len(cap.of(new.getsockname()[1])) >= 3, "frames")
    assert {f[0] for f in cap.of(old.getsockname()[1])} == {lab.r2.mac}
    assert {f[0] for f in cap.of(new.getsockname()[1])} == {lab.r1.mac}
    # the last rule gone: nothing of mhgui's is left, the per-prefix rules included
    for r in eng.load().rules:
        eng.remove(r.id)
    assert f"{core.RULE_PRIORITY - 1}:" not in lab.ip(lab.node, "-6", "rule")
    assert "table 18355" not in lab.ip(lab.node, "-6", "route", "show", "table", "all")


@netns_only
def test_a_source_no_router_advertised_is_refused(one_link, tmp_path):
    from mhgui.helper.steering import SteeringFailure

    lab, hearing, _cap = one_link
    lab.advertise_both()
    _wait_for(lambda: hearing.routers_of(PFX1) and hearing.routers_of(PFX2), "both routers heard")
    lab.ip(lab.node, "-6", "addr", "add", "2001:db8:3::5/64", "dev", "e0", "nodad")  # static, nobody's
    eng = _engine(lab, hearing, tmp_path)
    clean = lab.ip(lab.node, "-6", "rule", "show")
    with pytest.raises(SteeringFailure) as e:
        eng.add({"destination": "2001:db8:4::/46", "interface": "e0", "source": "2001:db8:3::/64"})
    assert e.value.kind == "InvalidArgs"
    msg = e.value.message
    assert "e0 has 2 routers" in msg and "2001:db8:3::5" in msg and PFX1 in msg and PFX2 in msg, msg
    assert lab.ip(lab.node, "-6", "rule", "show") == clean and eng.load().rules == ()
    # without a source the rule takes an address whose prefix a router advertised
    eng.add({"destination": "2001:db8:4::/46", "interface": "e0"})
    line = _steered(lab, eng)
    assert f"via {lab.r1.ll}" in line and f"src {lab.address_in(PFX1)}" in line


@netns_only
def test_without_advertised_addresses_two_routers_refuse_and_one_router_is_used_with_a_note(one_link, tmp_path):
    """Routers that advertise their prefixes without autoconfiguration (A=0): the node's only global
    address is static, so no advertisement names its prefix."""
    from mhgui.helper.steering import SteeringFailure

    lab, hearing, _cap = one_link
    lab.r1.autonomous = lab.r2.autonomous = False
    lab.advertise_both()
    _wait_for(lambda: hearing.routers_of(PFX1) and hearing.routers_of(PFX2), "both routers heard")
    lab.ip(lab.node, "-6", "addr", "add", "2001:db8:3::5/64", "dev", "e0", "nodad")
    eng = _engine(lab, hearing, tmp_path)
    with pytest.raises(SteeringFailure) as e:
        eng.add({"destination": "2001:db8:4::/46", "interface": "e0"})
    assert e.value.kind == "InvalidArgs" and "none advertised a prefix holding source 2001:db8:3::5" in e.value.message
    # R2 leaves (router lifetime 0, its prefix withdrawn): one router remains, and is used, with a note
    lab.r2.advertise(lifetime=0, valid=0, preferred=0)
    _wait_for(lambda: not hearing.routers_of(PFX2) and lab.r2.ll not in lab.default_routers(), "R2 to be gone")
    rule = eng.add({"destination": "2001:db8:4::/46", "interface": "e0"})
    [listed] = eng.listing()
    assert listed.rule.id == rule.id and listed.in_kernel
    assert f"e0 has one router, {lab.r1.ll}, which is used" in listed.status
    line = _steered(lab, eng)
    assert f"via {lab.r1.ll}" in line and "src 2001:db8:3::5" in line


@netns_only
def test_listener_solicits_routers_and_forgets_what_runs_out(tmp_path):
    if NEED:
        pytest.skip(NEED)
    pytest.importorskip("scapy.layers.inet6")
    lab = OneLinkLab()
    hearing = None
    try:
        for r in (lab.r1, lab.r2):
            r.answer_solicitations()
        hearing = Hearing(lab.node, solicit=True)  # started after the routers: it asks them
        _wait_for(lambda: hearing.routers_of(PFX1) == {lab.r1.ll} and hearing.routers_of(PFX2) == {lab.r2.ll},
                  "answers to the listener's solicitations")
        node_lls = {a["local"] for link in json.loads(lab.ip(lab.node, "-j", "-6", "addr", "show", "dev", "e0"))
                    for a in link["addr_info"] if a["local"].startswith("fe80")}
        assert any(src in node_lls | {"::"} and hop == 255 for src, hop in lab.r1.solicited), lab.r1.solicited
        # a prefix given 1 s of valid lifetime is dropped when it runs out, without another message
        changes = hearing.changes
        lab.r2.advertise(valid=1, preferred=1)
        _wait_for(lambda: not hearing.routers_of(PFX2), "R2's prefix to run out")
        assert hearing.changes > changes and hearing.routers_of(PFX1) == {lab.r1.ll}
        # forged and broken advertisements are counted, not taken in
        problems = hearing.listener.problems
        s = _sock(lab.r1.ns, socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
        with s:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 64)  # not 255: from off the link
            s.sendto(_ra_bytes(lab.r1.mac, "2001:db8:66::/64"), ("ff02::1", 0, 0, lab.r1.ifindex))
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
            s.sendto(_ra_bytes(lab.r1.mac, "2001:db8:67::/64")[:16] + b"\x03\x00" + b"\0" * 30,
                     ("ff02::1", 0, 0, lab.r1.ifindex))
        _wait_for(lambda: hearing.listener.problems >= problems + 2, "the bad advertisements to be refused")
        assert not {a.prefix for a in hearing.listener.adverts()} & {"2001:db8:66::/64", "2001:db8:67::/64"}
        assert "hop limit 64" in hearing.listener.last_problem or "length 0" in hearing.listener.last_problem
    finally:
        if hearing is not None:
            hearing.close()
        lab.close()


# --------------------------------------------------------------------------- the helper and mhctl


@pytest.fixture(scope="module")
def bus_stack():
    if NEED:
        pytest.skip(NEED)
    pytest.importorskip("dbus")
    pytest.importorskip("scapy.layers.inet6")
    from test_helper import _start_stack

    s = _start_stack(systemd=False)
    yield s
    s.stop()


@netns_only
def test_helper_and_mhctl_pair_sources_with_routers(bus_stack, tmp_path):
    """The real helper in the node namespace hears the routers (it solicits them at start), refuses a
    source no router takes (the message a caller shows), and steers a source to its own router."""
    from test_helper import READ, HelperProc

    lab = OneLinkLab()
    h = echo = None
    try:
        for r in (lab.r1, lab.r2):
            r.answer_solicitations()
        lab.advertise_both()
        lab.ip(lab.node, "-6", "addr", "add", "2001:db8:3::5/64", "dev", "e0", "nodad")
        echo = Echo(lab.srv)
        bus_stack.reset()
        bus_stack.allow(READ, "io.github.mhgui.MHGui.steer")
        conf = tmp_path / "etc" / "mip6d.conf"
        conf.parent.mkdir()
        h = HelperProc(bus_stack, conf, "--state-dir", str(tmp_path / "state"),
                       wrapper=("ip", "netns", "exec", lab.node)).start()

        def mhctl(*args: str) -> subprocess.CompletedProcess:
            return subprocess.run([sys.executable, "-m", "mhgui.cli", "rules", *args, "--system-bus",
                                   bus_stack.address], check=False, capture_output=True, text=True, timeout=60)

        # refused by mhctl itself, before the helper is asked
        p = mhctl("add", "10.5.0.0/24", "e0", "--source", PFX2)
        assert p.returncode == 2 and "is IPv6 but destination 10.5.0.0/24 is IPv4" in p.stderr, p.stderr
        # refused by the helper: no router advertised 2001:db8:3::/64
        p = mhctl("add", "2001:db8:4::/46", "e0", "--source", "2001:db8:3::/64")
        assert p.returncode == 1 and "e0 has 2 routers" in p.stderr and "2001:db8:3::5" in p.stderr, p.stderr
        p = mhctl("add", "2001:db8:4::/46", "nosuch0")
        assert p.returncode == 1 and "no interface nosuch0" in p.stderr, p.stderr
        # R2's prefix as source: through R2 (once the helper heard R2's answer to its solicitation)
        _wait_for(lambda: bool(lab.r2.solicited), "the helper's router solicitation")
        _wait_for(lambda: mhctl("add", "2001:db8:4::/46", "e0", "--source", PFX2).returncode == 0,
                  "the helper to accept R2's prefix as source")
        listed = json.loads(mhctl("--json").stdout)["rules"]
        assert [(r["source"], r["in_kernel"], r["status"]) for r in listed] == [(PFX2, True, "")]
        line = next(x for x in _table(lab, TABLE_BASE + 1) if x.startswith("2001:db8:4::/46 via"))
        assert f"via {lab.r2.ll}" in line and f"src {lab.address_in(PFX2)}" in line
        s = _connect(lab)
        _echo(s)
        assert s.getsockname()[0] == lab.address_in(PFX2)
        s.close()
        p = mhctl("edit", listed[0]["id"], "e0", "--source", "2001:db8:3::/64")  # refused: the old rule stays
        assert p.returncode == 1 and "e0 has 2 routers" in p.stderr
        assert [r["source"] for r in json.loads(mhctl("--json").stdout)["rules"]] == [PFX2]
    finally:
        rc = h.stop() if h is not None else 0
        if echo is not None:
            echo.close()
        lab.close()
    assert rc == 0, h.log if h is not None else ""
    assert "Traceback" not in (h.log if h is not None else "")
