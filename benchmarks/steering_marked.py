"""Marked steering rules (protocol, ports, application; issue 15.6): one more costs the same at 10 and at
N marked rules.

A marked rule is one nft rule line (and, for its slot's first rule, a restore and a masquerade line)
appended with one ``nft --echo --handle`` call, and removed by handle; the table is rebuilt only at
start-up or when slots change. In a private network namespace (``h5c-bn-PID``, one uplink by veth to
``h5c-br-PID``), with 10 and then N port rules present: the median time of one marked rule added and
removed through the engine (journal with fsync, netlink, nft) and their ratio (the goal: 1.0). The
floor, in the same run: one bare ``nft add rule`` + ``nft delete rule`` (two nft processes), which is
what a change costs at least.

Known: the engine's own part (planner, journal, netlink, the nft text) is flat, and so is a removal
(by handle); an add's ``nft --echo --handle`` (for the new lines' handles) makes nft read the whole
table into its cache, which grows with it (measured here: about +6 ms at 300 marked rules against 10;
without ``--echo`` the same add is flat). Marked rules are few on a desktop (applications, ports);
destination rules never touch nft (benchmarks/steering_rules.py).

Needs root and nft. Usage: python benchmarks/steering_marked.py [N] [REPEATS]
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from _common import on_sigterm_cleanup  # (benchmarks/_common.py: run as a script)

HERE = os.path.abspath(__file__)


def sh(*cmd: str) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def inside(n: int, repeats: int) -> None:
    sys.path.insert(0, os.path.join(os.path.dirname(HERE), ".."))
    from mhgui.helper.steering import SteeringEngine

    def median_change(eng, base: int) -> tuple[float, float]:
        adds, removes = [], []
        for i in range(repeats):
            t = time.perf_counter()
            r = eng.add({"interface": "u0", "protocol": "tcp", "ports": str(base + i)})
            adds.append(time.perf_counter() - t)
            assert eng.marks.last_change == "add", eng.marks.last_change
            t = time.perf_counter()
            eng.remove(r.id)
            removes.append(time.perf_counter() - t)
            assert eng.marks.last_change == "remove", eng.marks.last_change
        return statistics.median(adds), statistics.median(removes), min(adds), min(removes)

    results = {}
    for count in (10, n):
        d = tempfile.mkdtemp(prefix="h5c-bench-")
        eng = SteeringEngine(d)
        try:
            for i in range(count):
                eng.add({"interface": "u0", "protocol": "tcp", "ports": str(20000 + i)})
            lines = sh("nft", "list", "chain", "inet", "mhgui", "select").count("mhgui:")
            assert lines == 2 * count, lines  # one line per family
            results[count] = median_change(eng, 40000)
        finally:
            eng.clear_kernel()
            shutil.rmtree(d)
    sh("nft", "add", "table", "inet", "h5cfloor")
    sh("nft", "add", "chain", "inet", "h5cfloor", "c")
    floor = []
    for i in range(repeats):
        t = time.perf_counter()
        out = sh("nft", "--echo", "--handle", "add", "rule", "inet", "h5cfloor", "c", "tcp", "dport", str(1 + i),
                 "return")
        sh("nft", "delete", "rule", "inet", "h5cfloor", "c", "handle", out.rsplit("# handle ", 1)[1].split()[0])
        floor.append(time.perf_counter() - t)
    # (the floor's table is nearly empty: nft's own cost of a change in a big table is part of the measure)
    sh("nft", "delete", "table", "inet", "h5cfloor")
    f = statistics.median(floor)
    print(f"marked steering rules: one change with 10 and with {n} marked rules present (median of {repeats})")
    print(f"  floor: a bare nft add rule + delete rule (two nft processes): {f * 1e3:.2f} ms")
    for count, (a, r, ba, br) in results.items():
        print(f"  {count:6d} marked rules: add {a * 1e3:6.2f} ms (best {ba * 1e3:.2f}), remove {r * 1e3:6.2f} ms "
              f"(best {br * 1e3:.2f}); add+remove {(a + r) / f:4.1f}x floor")
    a10, r10, ba10, br10 = results[10]
    an, rn, ban, brn = results[n]
    print(f"  => one add with {n} / with 10: {an / a10:.2f}x (best against best {ban / ba10:.2f}x); "
          f"one remove: {rn / r10:.2f}x (best {brn / br10:.2f}x) (goal 1.0; a loaded machine makes medians noisy)")


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--inside":
        inside(int(sys.argv[2]), int(sys.argv[3]))
        return 0
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 15
    if os.geteuid() != 0 or not shutil.which("nft") or not shutil.which("nsenter"):
        print("needs root, nft and nsenter", file=sys.stderr)
        return 2
    node, peer = f"h5c-bn-{os.getpid()}", f"h5c-br-{os.getpid()}"

    def cleanup() -> None:
        for ns in (node, peer):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    on_sigterm_cleanup(cleanup)
    try:
        for ns in (node, peer):
            sh("ip", "netns", "add", ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "-n", node, "link", "add", "u0", "type", "veth", "peer", "name", "p0", "netns", peer)
        sh("ip", "netns", "exec", node, "sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0",
           "net.ipv6.conf.default.accept_dad=0")
        sh("ip", "-n", node, "link", "set", "u0", "up")
        sh("ip", "-n", peer, "link", "set", "p0", "up")
        sh("ip", "-n", node, "-6", "addr", "add", "2001:db8:b::2/64", "dev", "u0", "nodad")
        sh("ip", "-n", node, "addr", "add", "10.2.0.2/24", "dev", "u0")
        sh("ip", "-n", node, "-6", "route", "add", "default", "via", "2001:db8:b::1", "dev", "u0")
        sh("ip", "-n", node, "route", "add", "default", "via", "10.2.0.1", "dev", "u0")
        # the engine runs in a process inside the namespace, as the helper does
        p = subprocess.run(["nsenter", f"--net=/run/netns/{node}", sys.executable, HERE, "--inside", str(n),
                            str(repeats)], text=True)
        return p.returncode
    finally:
        cleanup()


if __name__ == "__main__":
    sys.exit(main())
