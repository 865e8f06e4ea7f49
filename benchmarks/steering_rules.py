"""Steering rules at scale: one more rule costs the same at 10 and at 10,000 rules (issue 14).

In a private network namespace with two uplinks (veth pairs to a second
namespace that drops what it gets; the routers' link-layer addresses are
static neighbour entries, so no neighbour discovery is timed), N destination
prefixes steered to the second uplink:

- **one change**: the time of one rule added through the engine (it reads the
  interfaces, plans that rule, appends one journal line with fsync, and sends
  the routes that change), and of one removed, with 10 and with N rules
  present: median of several, and their ratio (the goal: 1.0). The floor, in
  the same run: a bare pyroute2 route add of one route into a table, on a
  socket opened for it (as the engine opens one per call), and on one kept
  open. Also: the start-up (the whole plan applied, the kernel read back) and
  the rewrite of the state file (done once every max(1,024, N) changes).
  The engine runs in a process inside the namespace, as the helper does
  (pyroute2's ``netns=`` forks per socket, which would dominate).
- **per packet** (not with ``--short``): unconnected UDP ``sendto()`` from an
  unbound socket to an address of the LAST destination, mhgui's design against
  N ``ip rule`` entries (``to PREFIX lookup TABLE``; rule lookup is linear), with
  no steering as the baseline; each run checks that the packets left through
  the steered uplink.

Needs root. Usage: python benchmarks/steering_rules.py [--short] [N] [SENDS]
(``--short`` or MHGUI_BENCH_SHORT=1: the change costs only, fewer repetitions; well under a minute.)
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from _common import on_sigterm_cleanup  # (benchmarks/_common.py: run as a script)

COA_A, COA_B = "2001:db8:a::2", "2001:db8:b::2"
ROUTER_B = "2001:db8:b::1"
HERE = os.path.abspath(__file__)


def sh(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True)


def prefix(i: int) -> str:
    return f"2001:db8:{0x1000 + i:x}::/48"


def extra(i: int) -> str:
    """Destinations added during the measurement (outside the N installed ones)."""
    return f"2001:db9:{i:x}::/48"


# --------------------------------------------------------------------------- in the namespace


def _time_phases(eng) -> dict[str, list[float]]:
    """Time the parts of the engine's changes (each call's seconds, by part)."""
    from mhgui.core import steering as core
    from mhgui.core import steering_planner
    from mhgui.helper import steering as hs

    times: dict[str, list[float]] = {}

    def wrap(obj, name: str, label: str) -> None:
        fn = getattr(obj, name)

        def timed(*args, **kwargs):
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                times.setdefault(label, []).append(time.perf_counter() - t)

        setattr(obj, name, timed)

    wrap(eng, "_ipr", "open a netlink socket")
    wrap(hs, "read_node", "read links, addresses, main table")
    wrap(hs, "discover_uplinks", "read links, addresses, main table")
    wrap(core, "add_rule", "state: add")
    wrap(core, "remove_rule", "state: remove")
    wrap(steering_planner.SteeringPlanner, "add", "plan: add")
    wrap(steering_planner.SteeringPlanner, "remove", "plan: remove")
    wrap(eng.store, "record", "journal (fsync)")
    wrap(hs, "apply_change", "kernel: the difference")
    return times


def child(n: int) -> None:
    """Serve measurements in this namespace with ``n`` rules installed: read a command per line on stdin
    (``add``, ``remove``, ``floor``, ``calls``, ``check``, ``quit``), answer one JSON line."""
    from pyroute2 import IPRoute

    from mhgui.core import steering as core
    from mhgui.helper.steering import SteeringEngine

    with IPRoute() as ipr:
        oif = ipr.link_lookup(ifname="b0")[0]
    floor_args = {"family": socket.AF_INET6, "dst_len": 48, "table": 1000, "oif": oif, "gateway": ROUTER_B,
                  "prefsrc": COA_B, "proto": 4}
    state_dir = tempfile.mkdtemp(prefix="mhgui-steer-bench-")
    try:
        rules = [core.rule_from_request({"destination": prefix(i), "interface": "b0"}, rule_id=f"r{i}", now=0.0)
                 for i in range(n)]
        eng = SteeringEngine(state_dir)
        t0 = time.perf_counter()
        eng.store.rewrite(core.state_with(rules))
        t1 = time.perf_counter()
        plan = eng.reconcile()  # what the helper does at start-up
        t2 = time.perf_counter()
        for i in range(2):  # warm up
            eng.remove(eng.add({"destination": extra(0xff00 + i), "interface": "b0"}).id)
        phases = _time_phases(eng)
        print(json.dumps({"rewrite_ms": (t1 - t0) * 1e3, "startup_ms": (t2 - t1) * 1e3, "routes": len(plan.routes),
                          "policy": len(plan.rules)}), flush=True)
        added: list[str] = []
        count = 0
        for line in sys.stdin:
            cmd = line.strip()
            t = time.perf_counter()
            if cmd == "add":
                added.append(eng.add({"destination": extra(count), "interface": "b0"}).id)
                count += 1
            elif cmd == "remove":
                eng.remove(added.pop())
            elif cmd == "floor":  # one route added by pyroute2 on a socket opened for it, as the engine does
                with IPRoute() as ipr:
                    ipr.route("add", dst=f"2001:dba:{count:x}::", **floor_args)
                count += 1
            elif cmd == "calls":  # the work of one add and one remove, in Python function calls (not timed)
                import cProfile
                import pstats

                prof = cProfile.Profile()
                prof.enable()
                eng.remove(eng.add({"destination": extra(0xfe00 + count), "interface": "b0"}).id)
                prof.disable()
                count += 1
                print(json.dumps({"calls": pstats.Stats(prof).total_calls}), flush=True)  # type: ignore[attr-defined]
                continue
            elif cmd == "check":
                ok = all(eng.kernel_matches().values()) and len(eng.load().rules) == n + len(added)
                t3 = time.perf_counter()
                eng.clear_kernel()
                print(json.dumps({"ok": ok, "clear_ms": (time.perf_counter() - t3) * 1e3,
                                  "phases": {k: statistics.median(v) * 1e3 for k, v in phases.items()}}), flush=True)
                continue
            else:
                break
            print(json.dumps({"ms": (time.perf_counter() - t) * 1e3}), flush=True)
    finally:
        shutil.rmtree(state_dir, ignore_errors=True)
        subprocess.run(["ip", "-6", "route", "flush", "table", "1000"], capture_output=True, check=False)


# --------------------------------------------------------------------------- the parent


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
                                       text=True, check=False).stdout.strip()
                raise SystemExit(f"only {sent} of {sends} datagrams to {dst} left through b0 "
                                 f"({tx_packets(ns, 'a0') - before_a} through a0; {dt:.2f} s; route: {route})")
            best = min(best, dt / sends * 1e6)
        return best
    finally:
        s.close()


def make_node(ns: str) -> None:
    """Namespace ``ns`` with uplinks a0 and b0 (veth pairs to ``ns-p``), two default routers (a0's preferred)."""
    peer = ns + "-p"
    for x in (ns, peer):
        sh("ip", "netns", "add", x)
        sh("ip", "netns", "exec", x, "sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0",
           "net.ipv6.conf.default.accept_dad=0")
        sh("ip", "-n", x, "link", "set", "lo", "up")
    for dev, coa, router in (("a0", COA_A, "2001:db8:a::1"), ("b0", COA_B, ROUTER_B)):
        sh("ip", "-n", ns, "link", "add", dev, "type", "veth", "peer", "name", dev, "netns", peer)
        sh("ip", "-n", ns, "link", "set", dev, "up")
        sh("ip", "-n", peer, "link", "set", dev, "up")
        sh("ip", "-n", ns, "-6", "addr", "add", coa + "/64", "dev", dev, "nodad")
        # the router's link-layer address, so that no neighbour discovery gets in the way
        sh("ip", "-n", ns, "-6", "neigh", "replace", router, "lladdr", "02:00:00:00:00:01", "dev", dev,
           "nud", "permanent")
    sh("ip", "-n", ns, "-6", "route", "add", "default", "via", "2001:db8:a::1", "dev", "a0", "metric", "1024")
    sh("ip", "-n", ns, "-6", "route", "add", "default", "via", ROUTER_B, "dev", "b0", "metric", "2048")


def main() -> None:
    args = sys.argv[1:]
    if args[:1] == ["--child"]:
        child(int(args[1]))
        return
    if os.geteuid() != 0:
        print("steering rules: skipped (needs root for a network namespace)")
        return
    short = "--short" in args or os.environ.get("MHGUI_BENCH_SHORT") == "1"
    nums = [int(a) for a in args if a != "--short"]
    n = nums[0] if nums else 10_000
    sends = nums[1] if len(nums) > 1 else 20_000
    small_ns, big_ns = f"mhbench-steer-{os.getpid()}-s", f"mhbench-steer-{os.getpid()}"
    spaces = (small_ns, small_ns + "-p", big_ns, big_ns + "-p")
    # `timeout` sends SIGTERM: turn it into an exception so that the namespaces are removed
    on_sigterm_cleanup()
    try:
        make_node(small_ns)
        make_node(big_ns)
        changes(small_ns, big_ns, n, 30 if short else 80)
        if not short:
            per_packet(big_ns, n, sends)
    finally:
        for x in spaces:
            subprocess.run(["ip", "netns", "del", x], capture_output=True, check=False)


class Child:
    """A measuring process in namespace ``ns`` with ``n`` rules (:func:`child`)."""

    def __init__(self, ns: str, n: int) -> None:
        self.p = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, HERE, "--child", str(n)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.setup = self._answer()

    def _answer(self) -> dict:
        line = self.p.stdout.readline()  # type: ignore[union-attr]
        if not line:
            raise SystemExit(f"the measuring process failed (exit status {self.p.wait()})")
        return json.loads(line)

    def ask(self, cmd: str) -> dict:
        self.p.stdin.write(cmd + "\n")  # type: ignore[union-attr]
        self.p.stdin.flush()  # type: ignore[union-attr]
        return self._answer()

    def close(self) -> None:
        if self.p.poll() is None:
            self.p.stdin.write("quit\n")  # type: ignore[union-attr]
            self.p.stdin.close()  # type: ignore[union-attr]
            try:
                self.p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.p.stdout.close()  # type: ignore[union-attr]


def changes(small_ns: str, big_ns: str, n: int, repeats: int) -> None:
    small = 10
    print(f"steering rules: the cost of one change with {small} and with {n} rules present (median of {repeats}, "
          f"the two alternated; each engine in a process inside its namespace, as the helper runs)", flush=True)
    a = Child(small_ns, small)
    try:
        b = Child(big_ns, n)
        try:
            got: dict[str, list[float]] = {k: [] for k in ("floor", "add_s", "add_b", "remove_s", "remove_b")}
            for _ in range(repeats):
                got["floor"].append(a.ask("floor")["ms"])
                got["add_s"].append(a.ask("add")["ms"])
                got["add_b"].append(b.ask("add")["ms"])
                got["floor"].append(b.ask("floor")["ms"])
            for _ in range(repeats):
                got["remove_b"].append(b.ask("remove")["ms"])
                got["remove_s"].append(a.ask("remove")["ms"])
            calls = {small: a.ask("calls")["calls"], n: b.ask("calls")["calls"]}
            checks = {small: a.ask("check"), n: b.ask("check")}
        finally:
            b.close()
    finally:
        a.close()
    med = {k: statistics.median(v) for k, v in got.items()}
    floor = med["floor"]
    print(f"  floor: a bare pyroute2 route add of one route, on a socket opened for it: {floor:.2f} ms")
    best = {k: min(v) for k, v in got.items()}
    for size, child_, key in ((small, a, "s"), (n, b, "b")):
        st, ck = child_.setup, checks[size]
        print(f"  {size:>6} rules: add {med['add_' + key]:6.2f} ms ({med['add_' + key] / floor:4.1f}x floor; best "
              f"{best['add_' + key]:5.2f}, worst {max(got['add_' + key]):5.1f}), remove {med['remove_' + key]:6.2f} ms; "
              f"start-up {st['startup_ms']:6.0f} ms ({st['routes']} routes, {st['policy']} policy rules), "
              f"state file rewrite {st['rewrite_ms']:5.1f} ms (once per {max(1024, size)} changes: "
              f"{st['rewrite_ms'] / max(1024, size) * 1e3:.1f} us a change), remove all {ck['clear_ms']:.0f} ms"
              f"{'' if ck['ok'] else '  [THE KERNEL DID NOT MATCH THE RULES]'}")
    for size in (small, n):
        print(f"  {size:>6} rules, median ms by part: "
              + ", ".join(f"{k} {v:.2f}" for k, v in checks[size]["phases"].items()))
    print(f"  Python function calls for one add and one remove: {calls[small]} with {small} rules, {calls[n]} with {n}")
    print(f"  => one add with {n} rules / with {small}: {med['add_b'] / med['add_s']:.2f}x (goal 1.0; best against "
          f"best {best['add_b'] / best['add_s']:.2f}x); one remove: {med['remove_b'] / med['remove_s']:.2f}x "
          f"(best {best['remove_b'] / best['remove_s']:.2f}x)", flush=True)


def per_packet(ns: str, n: int, sends: int) -> None:
    from pyroute2 import IPRoute

    from mhgui.core import steering as core
    from mhgui.helper.steering import SteeringEngine

    last = prefix(n - 1).split("/")[0] + "1"
    print(f"steering rules, per packet: {n} destination prefixes, {sends} unconnected UDP sends per measurement "
          f"(best of 3), to {last} (in the last prefix)")
    # the default path, for the destination's address, before anything is installed
    sh("ip", "-n", ns, "-6", "route", "add", prefix(n - 1), "via", ROUTER_B, "dev", "b0")
    base = send_cost(ns, last, sends)
    sh("ip", "-n", ns, "-6", "route", "del", prefix(n - 1), "via", ROUTER_B, "dev", "b0")
    print(f"  baseline (main table route, no policy rules):           {base:8.2f} us per send")
    state_dir = tempfile.mkdtemp(prefix="mhgui-steer-bench-")
    try:
        rules = [core.rule_from_request({"destination": prefix(i), "interface": "b0"}, rule_id=f"r{i}", now=0.0)
                 for i in range(n)]
        eng = SteeringEngine(state_dir, netns=ns)
        eng.store.rewrite(core.state_with(rules))
        eng.reconcile()
        ours = send_cost(ns, last, sends)
        print(f"  mhgui design with {n} rules:                          {ours:8.2f} us per send")
        eng.clear_kernel()
    finally:
        shutil.rmtree(state_dir, ignore_errors=True)
    # one ip rule per destination
    table = 1000
    with IPRoute(netns=ns) as ipr:
        ipr.route("add", family=socket.AF_INET6, dst="default", gateway=ROUTER_B,
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
