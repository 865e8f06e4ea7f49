"""``mhctl status`` against ``python -c pass`` (same interpreter, same run), at 10 addresses and at 5,000 /128s.

Each figure is the wall time of one process, from spawn to exit (and its CPU
time, which a busy machine disturbs less), inside a
private network namespace (``ip netns exec``, for the floor too): one veth
interface ``up0`` with 10 global /64 addresses; then the same with 5,000 more
/128 addresses on it. Runs alternate (floor, status, ip -6 addr); min and
median printed. Goals (issue 14): status at 10 addresses ≤ 4× ``python -c
pass``; at 5,000 /128s ≤ 2× its own time at 10 addresses. ``ip -6 addr`` is
printed for comparison. The interpreter is the one running this script
(the venv's), so the floor counts the same start-up (site, .pth files).

Needs root. Usage: python benchmarks/mhctl_status.py [RUNS] (default 5; 3 at 5,000 addresses;
``MHCTL_BENCH_MANY=N`` sets how many /128s are added)
"""

from __future__ import annotations

import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from _common import on_sigterm_cleanup

MANY = int(os.environ.get("MHCTL_BENCH_MANY", "5000"))


def ip(*args: str, input: str | None = None) -> None:
    subprocess.run(["ip", *args], check=True, input=input, text=True, capture_output=True)


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)  # waited-for children and their waited-for children
    return r.ru_utime + r.ru_stime


def timed(cmd: list[str], env: dict) -> tuple[float, float]:
    """Wall time and CPU time (user + system, the process and what it waited for) of one run, seconds."""
    c0 = _cpu()
    t0 = time.perf_counter()
    p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, timeout=300)
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} → exit {p.returncode}: {p.stderr.decode()[-600:]}")
    return dt, _cpu() - c0


def stats(xs: list[float]) -> str:
    return f"min {min(xs) * 1000:7.1f} ms  median {statistics.median(xs) * 1000:7.1f} ms"


def main() -> None:
    if os.geteuid() != 0:
        print("mhctl status: skipped (needs root for a network namespace)")
        return
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    ns = f"mhbench-st-{os.getpid()}"
    on_sigterm_cleanup(lambda: subprocess.run(["ip", "netns", "del", ns]))
    tmp = tempfile.TemporaryDirectory(prefix="mhctl-status-")
    env = dict(os.environ, XDG_CONFIG_HOME=tmp.name, XDG_STATE_HOME=tmp.name)
    mhctl = os.path.join(os.path.dirname(sys.executable), "mhctl")
    status = [mhctl] if os.path.exists(mhctl) else [sys.executable, "-m", "mhgui.cli"]
    inside = ["ip", "netns", "exec", ns]
    cmds = {
        "python -c pass": inside + [sys.executable, "-c", "pass"],
        "mhctl status": inside + status + ["status", "--mip6d-conf", "/dev/null"],
        "ip -6 addr": inside + [shutil.which("ip") or "ip", "-6", "addr"],
    }
    ip("netns", "add", ns)
    try:
        ip("-n", ns, "link", "set", "lo", "up")
        ip("-n", ns, "link", "add", "up0", "type", "veth", "peer", "name", "up0p")
        ip("-n", ns, "link", "set", "up0", "up")
        ip("-n", ns, "link", "set", "up0p", "up")
        ip("-n", ns, "-batch", "-", input="".join(f"addr add 2001:db8:{i}::5/64 dev up0 nodad\n" for i in range(1, 11)))
        results: dict[str, dict[str, list[float]]] = {}
        for label, n in (("10 addresses", runs), (f"{MANY} /128s more", max(1, min(runs, 3)))):
            if label != "10 addresses":
                ip("-n", ns, "-batch", "-", input="".join(
                    f"addr add 2001:db8:ff::{i:x}/128 dev up0 nodad\n" for i in range(1, MANY + 1)))
            for c in cmds.values():  # warm the file cache
                timed(c, env)
            got: dict[str, list[float]] = {k: [] for k in cmds}
            cpu: dict[str, list[float]] = {k: [] for k in cmds}
            for _ in range(n):  # alternated: a slow phase of the shared machine hits every command
                for k, c in cmds.items():
                    wall, used = timed(c, env)
                    got[k].append(wall)
                    cpu[k].append(used)
            results[label] = got
            results[label + " cpu"] = cpu
            print(f"{label} ({n} runs each, inside a network namespace; wall, then CPU time):")
            for k, xs in got.items():
                print(f"  {k:16} {stats(xs)}   CPU {stats(cpu[k])}")
    finally:
        subprocess.run(["ip", "netns", "del", ns])
        tmp.cleanup()
    few, many = results["10 addresses"], results[f"{MANY} /128s more"]
    med = statistics.median
    r1 = med(few["mhctl status"]) / med(few["python -c pass"])
    r1m = min(few["mhctl status"]) / min(few["python -c pass"])
    r2 = med(many["mhctl status"]) / med(few["mhctl status"])
    fc = results["10 addresses cpu"]
    print(f"ratio mhctl status / python -c pass, 10 addresses: median {r1:.2f}  min {r1m:.2f}  (goal <= 4); "
          f"CPU time: median {med(fc['mhctl status']) / med(fc['python -c pass']):.2f}")
    print(f"ratio mhctl status at {MANY} /128s / at 10 addresses: median {r2:.2f}  (goal <= 2)")
    print(f"ratio mhctl status / ip -6 addr, 10 addresses: median "
          f"{med(few['mhctl status']) / med(few['ip -6 addr']):.0f}")


if __name__ == "__main__":
    main()
