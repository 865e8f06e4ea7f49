"""Live health against the real engine in ``mhctl lab``: counters of the mobile node's interfaces while iperf3
runs through the engine, RTT and loss of both uplinks from the engine's probes, and the timeline events of an
uplink that goes dark.

Needs root, iproute2, nftables, dbus-daemon and iperf3 (skipped otherwise). The lab's prefix is
``$MHGUI_HEALTH_LAB_PREFIX`` or ``hl<pid>``.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess

import pytest

from mhgui.core.health import Health
from mhgui.daemons.engine import EngineCallError, EngineDriver
from mhgui.lab import CN_ADDRESS, Lab
from mhgui.sources.linkstats import LinkStatsSource, StatsTick
from netns import lab_why_not
from waiting import until

TOOLS = ("ip", "nft", "dbus-daemon", "iperf3")


def why_not() -> str | None:
    return lab_why_not(TOOLS)


pytestmark = [pytest.mark.netns, pytest.mark.skipif(why_not() is not None, reason=why_not() or "")]

PREFIX = os.environ.get("MHGUI_HEALTH_LAB_PREFIX") or f"hl{os.getpid() % 1000}"
#: iperf3's rate and duration: ~1.5 MB of TCP payload
RATE, SECONDS = "4M", 3


@pytest.fixture(scope="module")
def lab():
    if Lab.is_up(PREFIX):
        Lab.down(PREFIX)
    try:
        yield Lab.up(PREFIX)
    finally:
        Lab.down(PREFIX)


def series_named(h: Health, name: str):
    found = [s for s in h.interfaces.values() if s.name == name]
    return found[0] if found else None


@pytest.mark.asyncio
async def test_throughput_probes_and_a_dark_uplink_in_the_lab(lab):
    h = Health()
    driver = EngineDriver(bus_address=lab.bus_address)
    with pytest.raises(EngineCallError, match="not connected"):
        await driver.read_uplinks()
    await driver.start()

    async def uplinks():
        return await driver.read_uplinks() if driver.connected else None

    def sink(item):
        if isinstance(item, StatsTick):
            h.add_counters(item.t, item.links)
            if item.uplinks is not None:
                h.add_uplinks(item.t, list(item.uplinks))

    src = LinkStatsSource(sink, netns=lab.netns("mn"), interval=0.25, uplinks=uplinks)
    server = subprocess.Popen(["ip", "netns", "exec", lab.netns("cn"), "iperf3", "-s", "-1", "-B", CN_ADDRESS],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        src.set_active(True)
        await until(lambda: {"up0", "up1"} <= {u.name for u in h.uplinks.values()}
                    and all(u.latest().reachable for u in h.uplinks.values()), timeout=20, what="both uplinks reachable")
        for u in h.uplinks.values():
            p = u.latest()
            assert p.rtt_ms is not None and 0 < p.rtt_ms < 1000 and p.loss is not None and p.sent >= p.answered > 0
        await until(lambda: series_named(h, "mhmn0") and series_named(h, "up0"), timeout=10, what="the TUN's and up0's counters")
        tun0, up00 = series_named(h, "mhmn0").last, series_named(h, "up0").last
        client = await asyncio.get_running_loop().run_in_executor(None, lambda: subprocess.run(
            ["ip", "netns", "exec", lab.netns("mn"), "iperf3", "-c", CN_ADDRESS, "-t", str(SECONDS), "-b", RATE,
             "--json"], capture_output=True, text=True, timeout=60))
        assert client.returncode == 0, client.stdout[-500:] + client.stderr
        sent = json.loads(client.stdout)["end"]["sum_sent"]["bytes"]
        polls = src.polls
        await until(lambda: src.polls >= polls + 2, timeout=5, what="two more readings")
        tun, up0 = series_named(h, "mhmn0"), series_named(h, "up0")
        tun_tx, up0_tx = tun.last[2] - tun0[2], up0.last[2] - up00[2]
        # TCP payload + its headers through the TUN; + the engine's UDP/IP and AEAD on up0 (and the probes)
        assert sent <= tun_tx <= sent * 1.1 + 100_000, (sent, tun_tx)
        assert tun_tx <= up0_tx <= sent * 1.25 + 200_000, (sent, up0_tx)
        assert max(p.tx_bps for p in up0.points) > 1e6  # iperf3's 4 Mbit/s, seen as a rate
        print(f"iperf3 sent {sent} B; counted: TUN tx {tun_tx} B, up0 tx {up0_tx} B; RTT "
              + ", ".join(f"{u.name} {u.latest().rtt_ms:.2f} ms" for u in h.uplinks.values()))
        # up0 goes dark (its router drops everything): the probes say so, then it comes back
        Lab.blackhole(PREFIX, "up0")
        await until(lambda: any(e.kind == "unreachable" and e.subject == "up0" for e in h.events), timeout=15,
                    what="up0 unreachable on the timeline")
        Lab.restore(PREFIX, "up0")
        await until(lambda: any(e.kind == "reachable" and e.subject == "up0" for e in h.events), timeout=15,
                    what="up0 reachable again on the timeline")
        assert not any(e.subject == "up1" for e in h.events)
    finally:
        await src.stop()
        await driver.stop()
        server.terminate()
        server.wait(5)
