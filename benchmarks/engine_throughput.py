"""TCP throughput HoA -> correspondent through the engine, against a floor relay measured in the same run.

In one `mhctl lab` (its own prefix): iperf3 TCP from the mobile node's home
address to the correspondent, through
- **engine**: `mhgui-mn` and `mhgui-ha`, as a user runs them;
- **floor**: `benchmarks/_relay.py`, one blocking thread per direction, same
  TUN MTU, same AEAD frames, over the same IPv6 uplink (up0) — what the engine's
  data path cannot go below in Python;
- **plain routing** (context): iperf3 from the uplink's CoA, no tunnel.
Runs alternate (floor, engine, floor, engine, ...) and medians are printed.
Goal (issue 11): engine >= 70 % of the floor. Needs root. Usage: python benchmarks/engine_throughput.py [ROUNDS] [SECONDS]
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from _common import on_sigterm_cleanup  # noqa: E402

PREFIX = f"bt{os.getpid() % 1000}"


def iperf(lab, seconds: int, bind: str | None = None) -> float:
    """Mbit/s of one iperf3 TCP run from the MN to the CN (receiver side)."""
    from mhgui.lab import CN_ADDRESS
    server = subprocess.Popen(["ip", "netns", "exec", lab.netns("cn"), "iperf3", "-s", "-1", "-B", CN_ADDRESS],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.3)
        cmd = ["ip", "netns", "exec", lab.netns("mn"), "iperf3", "-c", CN_ADDRESS, "-t", str(seconds), "-J"]
        if bind:
            cmd += ["-B", bind]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30)
        doc = json.loads(out.stdout)
        return doc["end"]["sum_received"]["bits_per_second"] / 1e6
    finally:
        server.wait(timeout=10)


class Floor:
    """The floor relay in the MN and HA namespaces of a lab whose daemons are stopped."""

    def __init__(self, lab) -> None:
        from mhgui.lab import CN_ADDRESS, HA_ADDRESSES, HA_HOME_ADDRESS, HOA, HOME_PREFIX, PORT
        key = os.urandom(64).hex()
        py = sys.executable
        cn_prefix = CN_ADDRESS.rsplit(":", 1)[0] + ":/64"
        self.procs = [
            subprocess.Popen(["ip", "netns", "exec", lab.netns("ha"), py, str(HERE / "_relay.py"), "ha", "mhha0",
                              HA_HOME_ADDRESS, HOME_PREFIX, str(PORT), "1420", key], stdout=subprocess.PIPE, text=True),
            subprocess.Popen(["ip", "netns", "exec", lab.netns("mn"), py, str(HERE / "_relay.py"), "mn", "mhmn0", HOA,
                              lab.uplinks[0].coa, HA_ADDRESSES[0], str(PORT), cn_prefix, "1420", key],
                             stdout=subprocess.PIPE, text=True),
        ]
        for p in self.procs:
            if p.stdout.readline().strip() != "ready":
                raise RuntimeError("floor relay did not start")

    def stop(self) -> None:
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            p.wait(timeout=10)


def main() -> None:
    if os.geteuid() != 0:
        print("engine throughput: skipped (needs root for namespaces)")
        return
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    seconds = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    from mhgui.lab import HOA, Lab
    on_sigterm_cleanup(lambda: Lab.down(PREFIX))
    Lab.down(PREFIX)
    lab = Lab.up(PREFIX, daemons=False)
    results: dict[str, list[float]] = {"floor": [], "engine": [], "plain": []}
    try:
        for _ in range(rounds):
            floor = Floor(lab)
            try:
                results["floor"].append(iperf(lab, seconds, HOA))
            finally:
                floor.stop()
            lab = Lab.start_daemons(PREFIX)
            try:
                results["engine"].append(iperf(lab, seconds, HOA))
            finally:
                Lab.stop_daemons(PREFIX)
            results["plain"].append(iperf(lab, seconds, lab.uplinks[0].coa))
    finally:
        Lab.down(PREFIX)
    med = {k: statistics.median(v) for k, v in results.items()}
    print(f"engine throughput (TCP HoA -> CN, {rounds} alternating runs of {seconds} s, medians):")
    for k in ("floor", "engine", "plain"):
        print(f"  {k:7s} {med[k]:8.0f} Mbit/s   runs: {', '.join(f'{x:.0f}' for x in results[k])}")
    print(f"  engine / floor = {med['engine'] / med['floor']:.2f} (goal >= 0.70); "
          f"floor / plain routing = {med['floor'] / med['plain']:.3f} (context)")


if __name__ == "__main__":
    main()
