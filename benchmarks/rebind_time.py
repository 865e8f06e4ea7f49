"""Request-to-confirmed rebind time with the UMIP double, and the driver's poll interval's share of it.

Builds the end-to-end lab of tests/test_rebind_e2e.py (two uplinks, the UMIP double
as mobile node and home agent, the privileged helper on a private system bus with
polkit allowing), then rebinds the HoA back and forth N times for each confirmation
poll interval. Needs root. Usage: python benchmarks/rebind_time.py [N]
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1] / "tests"
sys.path.insert(0, str(TESTS))


from _common import on_sigterm_cleanup  # noqa: E402


def main() -> None:
    if os.geteuid() != 0:
        print("rebind time: skipped (needs root for namespaces and the helper)")
        return
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 6
    on_sigterm_cleanup()
    from test_helper import CHANGE, READ
    from test_rebind_e2e import HOA, World, in_netns

    from mhgui.runtime import Runtime

    tmp = Path(tempfile.mkdtemp(prefix="mhgui-bench-rebind-"))
    tmp.chmod(0o755)
    world = World(tmp)
    try:
        world.stack.allow(READ, CHANGE)
        world.wait_registered(world.lab.COA_A)
        results = {}
        with in_netns(world.lab.ns):
            for interval in (0.05, 0.2, 0.5):
                rt = Runtime(mip6d_conf=str(world.conf), system_bus=world.stack.address, use_networkmanager=False,
                             poll_interval=1.0)
                rt.daemon.confirm_interval = interval

                async def run():
                    await rt.start()
                    times = []
                    try:
                        while not rt.daemon.connected:
                            await asyncio.sleep(0.05)
                        for i in range(n):
                            target = "upB" if i % 2 == 0 else "upA"
                            cur = [b.interface for b in rt.daemon.bindings()]
                            if cur == [target]:
                                target = "upA" if target == "upB" else "upB"
                            plan = await rt.daemon.plan_rebind(HOA, target, rt.live_view())
                            assert plan.allowed, plan.refusal
                            r = await rt.daemon.rebind(plan)
                            assert r.confirmed, r.reason
                            times.append(r.elapsed_ms)
                    finally:
                        await rt.stop()
                    return times

                results[interval] = asyncio.run(run())
        for interval, times in results.items():
            med = statistics.median(times)
            print(f"rebind request → acknowledged in bul, confirmation poll every {interval * 1000:.0f} ms, "
                  f"{len(times)} rebinds: median {med:.0f} ms, min {min(times):.0f}, max {max(times):.0f}; "
                  f"the poll can add at most {interval * 1000:.0f} ms, {interval * 500:.0f} ms on average")
        fast, slow = statistics.median(results[0.05]), statistics.median(results[0.5])
        print(f"measured poll share: median at 500 ms polling minus at 50 ms = {slow - fast:.0f} ms")
    finally:
        world.close()


if __name__ == "__main__":
    main()
