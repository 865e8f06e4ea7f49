"""Steering rules at scale: mhgui's design against one ``ip rule`` per destination, in one run.

In a private network namespace with two uplinks (veth pairs to a second
namespace that drops what it gets; the routers' link-layer addresses are
static neighbour entries, so no neighbour discovery is timed), for N destination
prefixes (default 10,000) all steered to the second uplink:

- install time: mhgui's engine (plan + rtnetlink: one route per destination in
  the interface's table, a few policy rules), and N ``ip rule`` entries
  (``to PREFIX lookup TABLE``, pyroute2, one request each);
- the time of one more rule added through the engine with N present (it reads
  the interfaces, plans, saves, and applies the difference to the last plan);
- the per-packet cost: unconnected UDP ``sendto()`` from an unbound socket to
  an address of the LAST destination (for ``ip rule`` the worst case: rule
  lookup is linear), averaged over many sends, with no steering at all as the
  baseline. Each run checks that the packets did leave through the steered
  uplink.

Needs root. Usage: python benchmarks/steering_rules.py [N] [SENDS]
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time

from _common import on_sigterm_cleanup  # (benchmarks/_common.py: run as a script)

COA_A, COA_B = "2001:db8:a::2", "2001:db8:b::2"


def sh(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True)


def prefix(i: int) -> str:
    return f"2001:db8:{0x1000 + i:x}::/48"


def tx_packets(ns: str, dev: str) -> int:
    out = subprocess.run(["ip", "netns", "exec", ns, "cat", f"/sys/class/net/{dev}/statistics/tx_packets"],
                         check=True, capture_output=True, text=True).stdout
    return int(out)


def send_cost(ns: str, dst: str, sends: int) -> float:
    """Microseconds per unconnected sendto() (best of 3 runs); checks that they left through b0."""
    from pyroute2.netns import create_socket

    s = create_socket(ns, socket.AF_INET6, socket.SOCK_DGRAM)
    try:
        s.bind(("::", 0))
        payload = b"x" * 32
        addr = (dst, 9)
        for _ in range(1000):  # warm up
            s.sendto(payload, addr)
        best = float("inf")
        for _ in range(3):
            before, before_a = tx_packets(ns, "b0"), tx_packets(ns, "a0")
            t0 = time.perf_counter()
            for _ in range(sends):
                s.sendto(payload, addr)
            dt = time.perf_counter() - t0
            sent = tx_packets(ns, "b0") - before
            if sent < sends:
                route = subprocess.run(["ip", "-n", ns, "-6", "route", "get", dst], capture_output=True,
                                       text=True).stdout.strip()
                raise SystemExit(f"only {sent} of {sends} datagrams to {dst} left through b0 "
                                 f"({tx_packets(ns, 'a0') - before_a} through a0; {dt:.2f} s; route: {route})")
            best = min(best, dt / sends * 1e6)
        return best
    finally:
        s.close()



def main() -> None:
    if os.geteuid() != 0:
        print("steering rules: skipped (needs root for a network namespace)")
        return
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    sends = int(sys.argv[2]) if len(sys.argv) > 2 else 20_000
    ns = f"mhbench-steer-{os.getpid()}"
    peer = ns + "-p"
    # `timeout` sends SIGTERM: turn it into an exception so that the namespaces are removed
    on_sigterm_cleanup()
    state_dir = tempfile.mkdtemp(prefix="mhgui-steer-bench-")
    try:
        for x in (ns, peer):
            sh("ip", "netns", "add", x)
            sh("ip", "netns", "exec", x, "sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0",
               "net.ipv6.conf.default.accept_dad=0")
            sh("ip", "-n", x, "link", "set", "lo", "up")
        for dev, coa, router in (("a0", COA_A, "2001:db8:a::1"), ("b0", COA_B, "2001:db8:b::1")):
            sh("ip", "-n", ns, "link", "add", dev, "type", "veth", "peer", "name", dev, "netns", peer)
            sh("ip", "-n", ns, "link", "set", dev, "up")
            sh("ip", "-n", peer, "link", "set", dev, "up")
            sh("ip", "-n", ns, "-6", "addr", "add", coa + "/64", "dev", dev, "nodad")
            # the router's link-layer address, so that no neighbour discovery gets in the way
            sh("ip", "-n", ns, "-6", "neigh", "replace", router, "lladdr", "02:00:00:00:00:01", "dev", dev,
               "nud", "permanent")
        # two default routers, the first uplink's preferred
        sh("ip", "-n", ns, "-6", "route", "add", "default", "via", "2001:db8:a::1", "dev", "a0", "metric", "1024")
        sh("ip", "-n", ns, "-6", "route", "add", "default", "via", "2001:db8:b::1", "dev", "b0", "metric", "2048")
        run(ns, n, sends, state_dir)
    finally:
        for x in (ns, peer):
            subprocess.run(["ip", "netns", "del", x], capture_output=True)
        subprocess.run(["rm", "-rf", state_dir])


def run(ns: str, n: int, sends: int, state_dir: str) -> None:
    from pyroute2 import IPRoute

    from mhgui.core import steering as core
    from mhgui.helper.steering import SteeringEngine

    last = prefix(n - 1).split("/")[0] + "1"
    print(f"steering rules: {n} destination prefixes, {sends} unconnected UDP sends per measurement "
          f"(best of 3), to {last} (in the last prefix)")

    # the default path, for the destination's address, before anything is installed
    sh("ip", "-n", ns, "-6", "route", "add", prefix(n - 1), "via", "2001:db8:b::1", "dev", "b0")
    base = send_cost(ns, last, sends)
    sh("ip", "-n", ns, "-6", "route", "del", prefix(n - 1), "via", "2001:db8:b::1", "dev", "b0")
    print(f"  baseline (main table route, no policy rules):           {base:8.2f} us per send")

    # mhgui: rules -> plan -> kernel
    rules = [core.rule_from_request({"destination": prefix(i), "interface": "b0"}, rule_id=f"r{i}", now=0.0)
             for i in range(n)]
    eng = SteeringEngine(state_dir, netns=ns)
    t0 = time.perf_counter()
    state = core.state_with(rules)
    uplinks = eng.uplinks()
    plan = eng.plan(state, uplinks)
    t1 = time.perf_counter()
    eng._save(state)
    t2 = time.perf_counter()
    eng.apply(plan, uplinks)
    t3 = time.perf_counter()
    with IPRoute(netns=ns) as ipr:
        n_rules = sum(1 for r in ipr.get_rules(family=socket.AF_INET6)
                      if core.is_our_table(r.get("FRA_TABLE", r["table"])))
    print(f"  mhgui install: plan {(t1 - t0) * 1e3:7.0f} ms, save {(t2 - t1) * 1e3:5.0f} ms, "
          f"kernel {(t3 - t2) * 1e3:7.0f} ms ({len(plan.routes)} routes, {n_rules} policy rules)")
    t4 = time.perf_counter()
    extra = eng.add({"destination": "2001:db8:ffff::/48", "interface": "b0"})
    t5 = time.perf_counter()
    print(f"  mhgui: one more rule with {n} present (read the interfaces, plan, save, apply the difference): "
          f"{(t5 - t4) * 1e3:.0f} ms")
    eng.remove(extra.id)
    ours = send_cost(ns, last, sends)
    print(f"  mhgui design with {n} rules:                          {ours:8.2f} us per send")
    t6 = time.perf_counter()
    eng.clear_kernel()
    t7 = time.perf_counter()
    print(f"  mhgui remove all: {(t7 - t6) * 1e3:.0f} ms")

    # one ip rule per destination
    table = 1000
    with IPRoute(netns=ns) as ipr:
        ipr.route("add", family=socket.AF_INET6, dst="default", gateway="2001:db8:b::1",
                  oif=ipr.link_lookup(ifname="b0")[0], prefsrc=COA_B, table=table)
        t8 = time.perf_counter()
        for i in range(n):
            net = prefix(i).split("/")[0]
            ipr.rule("add", family=socket.AF_INET6, priority=20000 + i, dst=net, dst_len=48, table=table)
        t9 = time.perf_counter()
    print(f"  {n} ip rules install: {(t9 - t8) * 1e3:.0f} ms")
    per_rule = send_cost(ns, last, sends)
    print(f"  {n} ip rules (last one matches):                     {per_rule:8.2f} us per send")
    print(f"  => per send: mhgui {ours - base:+.2f} us over the baseline, ip rules {per_rule - base:+.2f} us "
          f"({per_rule / ours:.1f}x mhgui's)")


if __name__ == "__main__":
    main()
