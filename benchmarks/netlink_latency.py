"""Time from a netlink address event to the model row being updated (p50, p95 over N events).

Runs the real path of the app in one qasync loop: NetlinkSource → StateStore →
LiveController → AddressModel (rowsInserted). Addresses are added in a private
network namespace with pyroute2 from the same process; the clock starts just
before the RTM_NEWADDR request is sent, so the figure includes the kernel's work.
Needs root. Usage: python benchmarks/netlink_latency.py [N]
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import signal
import statistics
import subprocess
import sys
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


from _common import on_sigterm_cleanup  # noqa: E402


def main() -> None:
    if os.geteuid() != 0:
        print("netlink latency: skipped (needs root for a network namespace)")
        return
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    ns = f"mhbench-{os.getpid()}"
    # `timeout` sends SIGTERM: turn it into an exception so that the namespace is removed
    on_sigterm_cleanup(lambda: subprocess.run(["ip", "netns", "del", ns]))
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(["ip", "-n", ns, "link", "add", "b0", "type", "veth", "peer", "name", "b1"], check=True)
        subprocess.run(["ip", "-n", ns, "link", "set", "b0", "up"], check=True)
        subprocess.run(["ip", "-n", ns, "link", "set", "b1", "up"], check=True)
        run(ns, n)
    finally:
        subprocess.run(["ip", "netns", "del", ns])


def run(ns: str, n: int) -> None:
    import qasync
    from PySide6.QtWidgets import QApplication
    from pyroute2 import AsyncIPRoute

    from mhgui.core.state import StateStore
    from mhgui.sources.netlink import NetlinkSource
    from mhgui.ui.window import LiveController

    app = QApplication.instance() or QApplication([])
    store = StateStore()
    ctl = LiveController(store, time.monotonic)
    src = NetlinkSource(store.apply, netns=ns)
    sent: dict[str, float] = {}
    lat: list[float] = []

    def inserted(parent, first, last):
        now = time.perf_counter()
        for r in range(first, last + 1):
            key = ctl.addresses.key_at(r)
            t0 = sent.pop(key.address, None)
            if t0 is not None:
                lat.append(now - t0)

    ctl.addresses.rowsInserted.connect(inserted)

    async def body():
        await src.start()
        while store.sources.get("netlink", ("",))[0] != "ok":
            await asyncio.sleep(0.01)
        async with AsyncIPRoute(netns=ns) as ipr:
            idx = [l["index"] async for l in await ipr.link("dump") if l.get("ifname") == "b0"][0]
            for i in range(n):
                addr = ipaddress.IPv6Address(f"2001:db8:{i // 256:x}:{i % 256:x}::1").compressed
                sent[addr] = time.perf_counter()
                await ipr.addr("add", index=idx, address=addr, prefixlen=64, flags=0x02)  # IFA_F_NODAD
                # let the event arrive before the next one, as single events do in real life
                deadline = time.perf_counter() + 1.0
                while addr in sent and time.perf_counter() < deadline:
                    await asyncio.sleep(0)
        await src.stop()

    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    with loop:
        loop.run_until_complete(body())
    ctl.close()
    lat.sort()
    p50 = statistics.median(lat) * 1000
    p95 = lat[int(len(lat) * 0.95) - 1] * 1000
    print(f"netlink RTM_NEWADDR → AddressModel row inserted, {len(lat)} events: p50 {p50:.3f} ms, p95 {p95:.3f} ms, "
          f"max {lat[-1] * 1000:.3f} ms (lost: {n - len(lat)})")
    if sent:
        print("  not seen:", sorted(sent)[:5])


if __name__ == "__main__":
    main()
