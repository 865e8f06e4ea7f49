"""The link statistics source against a real veth pair between two namespaces, with real traffic.

UDP datagrams are sent from the node's namespace to the peer's; the rates the core computes from the
source's readings, integrated over time, must account for exactly the bytes the kernel counted, and
those must be at least what was sent and at most that plus a little neighbour discovery. Counts, not
timings.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from mhgui.core.health import Health
from mhgui.sources.linkstats import LinkStatsSource, StatsError, StatsTick, counters_of
from netns import lab, run  # noqa: F401  (fixture)
from waiting import until

pytestmark = [pytest.mark.netns]

#: datagrams, UDP payload bytes; on the wire each is payload + 8 (UDP) + 40 (IPv6) + 14 (Ethernet)
COUNT, PAYLOAD = 3000, 1000
WIRE = PAYLOAD + 8 + 40 + 14
#: bytes of other traffic allowed on the link while the test runs (neighbour discovery, MLD reports)
SLACK = 4000

BLAST = """
import socket, sys
n, size = int(sys.argv[1]), int(sys.argv[2])
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 22)
for i in range(n):
    s.sendto(bytes(size), ("fd00:44::2", 9))
"""


def kernel_bytes(ns: str, dev: str) -> tuple[int, int]:
    out = run("ip", "-n", ns, "-s", "-j", "link", "show", "dev", dev)
    import json
    st = json.loads(out)[0]["stats64"]
    return st["rx"]["bytes"], st["tx"]["bytes"]


@pytest.fixture
def pair(lab):  # noqa: F811
    lab.uplink("h4v0", "h4v1")
    lab.ip("addr", "add", "fd00:44::1/64", "dev", "h4v0", "nodad")
    lab.ip("addr", "add", "fd00:44::2/64", "dev", "h4v1", "nodad", ns=lab.peer)
    # resolve the neighbour before counting, so that only a few ND packets can come during the test
    run("ip", "netns", "exec", lab.ns, sys.executable, "-c", BLAST, "1", "8")
    return lab


def blast(lab, count: int = COUNT) -> None:
    subprocess.run(["ip", "netns", "exec", lab.ns, sys.executable, "-c", BLAST, str(count), str(PAYLOAD)], check=True)


def integrated(series, t_from: float) -> tuple[float, float]:
    """Bytes the rate points after ``t_from`` account for: sum of rate * interval / 8."""
    rx = tx = 0.0
    prev_t = None
    for p in series.points:
        if prev_t is not None and p.t > t_from and not p.gap:
            rx += p.rx_bps * (p.t - prev_t) / 8
            tx += p.tx_bps * (p.t - prev_t) / 8
        prev_t = p.t
    return rx, tx


@pytest.mark.asyncio
async def test_rates_account_for_the_traffic_sent_through_a_veth(pair):
    lab = pair
    node, peer = Health(), Health()
    ticks: list = []

    def sink_of(h):
        def sink(item):
            ticks.append(item)
            if isinstance(item, StatsTick):
                h.add_counters(item.t, item.links)
        return sink

    a = LinkStatsSource(sink_of(node), netns=lab.ns, interval=0.2)
    b = LinkStatsSource(sink_of(peer), netns=lab.peer, interval=0.2)
    ifa, ifb = lab.ifindex("h4v0"), lab.ifindex("h4v1", ns=lab.peer)
    try:
        a.set_active(True)
        b.set_active(True)
        await until(lambda: len(node.interfaces.get(ifa, _Empty).points) >= 1
                    and len(peer.interfaces.get(ifb, _Empty).points) >= 1, what="first rate points")
        start_a, start_b = node.interfaces[ifa].last, peer.interfaces[ifb].last
        await asyncio.get_running_loop().run_in_executor(None, blast, lab)
        # every byte the kernel has counted by now must show up in a later reading
        want_a, want_b = kernel_bytes(lab.ns, "h4v0"), kernel_bytes(lab.peer, "h4v1")
        await until(lambda: node.interfaces[ifa].last[2] >= want_a[1] and peer.interfaces[ifb].last[1] >= want_b[0],
                    what="readings after the blast")
        polls = a.polls
        await until(lambda: a.polls >= polls + 2, what="two more polls")
    finally:
        await a.stop()
        await b.stop()
    assert not [t for t in ticks if isinstance(t, StatsError)]
    sa, sb = node.interfaces[ifa], peer.interfaces[ifb]
    assert sa.name == "h4v0" and sb.name == "h4v1" and sa.resets == sb.resets == 0
    sent_a = sa.last[2] - start_a[2]
    got_b = sb.last[1] - start_b[1]
    assert COUNT * WIRE <= sent_a <= COUNT * WIRE + SLACK
    assert COUNT * WIRE <= got_b <= COUNT * WIRE + SLACK
    # the rates, integrated over time, are those bytes (floating point rounding aside)
    _rx, tx = integrated(sa, start_a[0])
    rx, _tx = integrated(sb, start_b[0])
    assert tx == pytest.approx(sent_a, rel=1e-9)
    assert rx == pytest.approx(got_b, rel=1e-9)
    # packets too
    assert COUNT <= sa.last[4] - start_a[4] <= COUNT + 40
    assert max(p.tx_bps for p in sa.points) > 0 and max(p.rx_bps for p in sb.points) > 0


class _Empty:
    points = ()


@pytest.mark.asyncio
async def test_a_renamed_nic_keeps_its_series_and_a_new_one_gets_its_own(pair):
    lab = pair
    h = Health()
    src = LinkStatsSource(lambda it: h.add_counters(it.t, it.links) if isinstance(it, StatsTick) else None,
                          netns=lab.ns, interval=0.1)
    ifa = lab.ifindex("h4v0")
    try:
        src.set_active(True)
        await until(lambda: ifa in h.interfaces and h.interfaces[ifa].points, what="first point")
        lab.ip("link", "set", "h4v0", "down")
        lab.ip("link", "set", "h4v0", "name", "h4ren")
        lab.ip("link", "set", "h4ren", "up")
        await until(lambda: h.interfaces[ifa].name == "h4ren", what="the new name")
        lab.ip("link", "del", "h4ren")
        h.forget_interface(ifa)  # what the feed does on RTM_DELLINK
        new = lab.uplink("h4v2", "h4v3")
        await until(lambda: new in h.interfaces and h.interfaces[new].points, what="the new NIC's series")
    finally:
        await src.stop()
    assert new != ifa and ifa not in h.interfaces and h.interfaces[new].name == "h4v2"
    assert h.interfaces[new].resets == 0


@pytest.mark.asyncio
async def test_polls_only_while_active_and_reads_the_engines_uplinks(lab):  # noqa: F811
    items: list = []
    calls = 0

    async def uplinks():
        nonlocal calls
        calls += 1
        if calls == 2:
            raise RuntimeError("engine gone")
        return [{"name": "up0", "ifindex": 2, "rtt_ms": 1.5, "reachable": True}]

    src = LinkStatsSource(items.append, netns=lab.ns, interval=0.05, uplinks=uplinks)
    try:
        src.set_active(True)
        await until(lambda: src.polls >= 3, what="three polls")
        src.set_active(False)
        assert not src.active
        polls = src.polls
        await asyncio.sleep(0.3)
        assert src.polls == polls  # paused: nothing read
        src.set_active(True)
        src.set_active(True)  # idempotent
        await until(lambda: src.polls >= polls + 2, what="polls again")
    finally:
        await src.stop()
    src.set_active(True)  # stopped for good
    assert not src.active
    ticks = [i for i in items if isinstance(i, StatsTick)]
    errors = [i for i in items if isinstance(i, StatsError)]
    assert [e.what for e in errors] == ["uplinks"] and "engine gone" in errors[0].message
    assert ticks[0].uplinks == ({"name": "up0", "ifindex": 2, "rtt_ms": 1.5, "reachable": True},)
    assert sum(t.uplinks is None for t in ticks) == 1  # the failed read: counters without probe figures
    assert all(any(c.name == "lo" for c in t.links) for t in ticks)


@pytest.mark.asyncio
async def test_a_netlink_failure_is_reported_and_polling_goes_on():
    opened = 0

    class Broken:
        def close(self):
            pass

        async def link(self, what):
            raise PermissionError(1, "Operation not permitted")

    def factory():
        nonlocal opened
        opened += 1
        return Broken()

    items: list = []
    src = LinkStatsSource(items.append, interval=0.05, ipr_factory=factory)
    src.set_active(True)
    try:
        await until(lambda: len(items) >= 3, what="three errors")
    finally:
        await src.stop()
    assert all(isinstance(i, StatsError) and i.what == "netlink" and "not permitted" in i.message for i in items)
    assert opened >= 3  # a new socket after each failure


def test_counters_of_messages():
    class Msg(dict):
        def get(self, k, d=None):
            return super().get(k, d)

    m = Msg(index=4, ifname=b"w\xfflan0", IFLA_STATS64={"rx_bytes": 1, "tx_bytes": 2, "rx_packets": 3, "tx_packets": 4})
    c = counters_of(m)
    assert (c.ifindex, c.name, c.rx_bytes, c.tx_packets, c.width) == (4, "w\\xfflan0", 1, 4, 64)
    m32 = Msg(index=4, ifname="x", IFLA_STATS={"rx_bytes": 1, "tx_bytes": 2, "rx_packets": 3, "tx_packets": 4})
    assert counters_of(m32).width == 32
    assert counters_of(Msg(index=4, ifname="x")) is None
    assert counters_of(Msg(ifname="x")) is None
    assert counters_of(Msg(index=4, IFLA_STATS64={"rx_bytes": "x"})) is None
