"""Carrier loss as seen by netlink and by NetworkManager, with NetworkManager's default settings.

A real NetworkManager (tests/nmlab.py, default carrier-wait-timeout) manages a veth
in a namespace; the peer end goes down N times. For each: time from the command to
the netlink RTM_NEWLINK without carrier (pyroute2, in the namespace), to
NetworkManager's Device.Wired Carrier=false, and to its device StateChanged
(activated → unavailable). Needs root. Usage: python benchmarks/carrier_loss.py [N]
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


from _common import on_sigterm_cleanup  # noqa: E402


def main() -> None:
    if os.geteuid() != 0:
        print("carrier loss: skipped (needs root)")
        return
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    on_sigterm_cleanup()
    from nmlab import NmLab, missing_requirements
    why = missing_requirements()
    if why:
        print(f"carrier loss: skipped ({why})")
        return
    lab = NmLab(default_carrier_wait=True).setup()
    try:
        asyncio.run(run(lab, n))
    finally:
        lab.teardown()


async def run(lab, n: int) -> None:
    from mhgui.core.state import StateStore
    from mhgui.sources.netlink import NetlinkSource
    from mhgui.sources.networkmanager import NetworkManagerSource

    store = StateStore()
    nl = NetlinkSource(store.apply, netns=lab.ns)
    nm = NetworkManagerSource(store.apply, lab.address, ifindex_of=lab.ifindex_or_none)
    await nl.start()
    await nm.start()
    ifindex = lab.ifindex("veth-nm")
    # an address makes NetworkManager activate the device (external connection)
    lab.ip("-6", "addr", "add", "2001:db8:42::1/64", "dev", "veth-nm", "nodad")

    def dev():
        return next((d for d in store.nm_devices.values() if d.name == "veth-nm"), None)

    async def until(pred, timeout=20.0):
        t0 = time.monotonic()
        while not pred():
            if time.monotonic() - t0 > timeout:
                return None
            await asyncio.sleep(0.001)
        return time.monotonic()

    await until(lambda: dev() is not None and dev().state == 100)
    rows = []
    for _ in range(n):
        t0 = time.monotonic()
        subprocess.run(["ip", "-n", lab.peer_ns, "link", "set", "veth-peer", "down"], check=True)
        t_nl = await until(lambda: not store.state.interfaces[ifindex].carrier)
        t_carrier = await until(lambda: dev() is not None and dev().carrier is False)
        t_state = await until(lambda: dev() is not None and dev().state < 100)
        rows.append(tuple(None if t is None else (t - t0) * 1000 for t in (t_nl, t_carrier, t_state)))
        subprocess.run(["ip", "-n", lab.peer_ns, "link", "set", "veth-peer", "up"], check=True)
        await until(lambda: dev() is not None and dev().state == 100)
    await nm.stop()
    await nl.stop()

    def med(i):
        vals = [r[i] for r in rows if r[i] is not None]
        return f"{statistics.median(vals):.1f} ms" if vals else "not seen"

    print(f"carrier loss, {len(rows)} times, medians: netlink {med(0)}, NetworkManager Carrier=false {med(1)}, "
          f"NetworkManager device state leaving 'activated' {med(2)} (NetworkManager's default carrier-wait-timeout "
          "is 6000 ms; it applies while it waits for the carrier to come back)")


if __name__ == "__main__":
    main()
