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

Two cases, each printing its ratios: "no system bus" (its address names a socket that does not exist)
and "system bus": a private dbus-daemon with NetworkManager (python-dbusmock's template, one Ethernet
device ``up0``) and a stand-in for mhgui's engine (a dbusmock object owning
``io.github.mhgui.MHGui.MobileNode1`` whose GetStatus/GetUplinks/GetBindings return one registered
binding through up0), as on a desktop or in the lab. ``mhctl status`` takes its fast path in both
(:mod:`mhgui.status_fast`; with a bus, :mod:`mhgui.status_bus` reads it over one blocking connection);
"mhctl status (runtime)" is the full path (``MHCTL_STATUS_PATH=runtime``: asyncio, pyroute2, dbus-fast,
the daemon driver), measured in the same run for comparison.

The children write and reuse compiled bytecode in a temporary ``PYTHONPYCACHEPREFIX`` (and
``PYTHONDONTWRITEBYTECODE`` is dropped for them): an installed mhgui has its ``.pyc`` files, and
without them every run compiles each of its modules again (a third of the time measured before).

Needs root. Usage: python benchmarks/mhctl_status.py [RUNS] (default 5; 3 at 5,000 addresses;
``--short`` or MHGUI_BENCH_SHORT=1: 3 and 2; ``MHCTL_BENCH_MANY=N`` sets how many /128s are added)
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
NO_BUS = "unix:path=/nonexistent/mhctl-bench-no-bus"
ENGINE = "io.github.mhgui.MHGui.MobileNode1"
ENGINE_PATH = "/io/github/mhgui/MHGui/MobileNode1"
MOCK = "org.freedesktop.DBus.Mock"


class BusWorld:
    """A private system bus (dbus-daemon) with NetworkManager (dbusmock's template, an Ethernet device
    named ``iface``) and an engine stand-in (a dbusmock object with the engine's three reads). Its socket
    is a path, so clients in another network namespace reach it."""

    def __init__(self, iface: str = "up0") -> None:
        import json
        import dbus
        import dbus.bus
        from dbusmock import SpawnedMock
        from dbusmock.testcase import BusType, PrivateDBus
        self._bus = PrivateDBus(BusType.SYSTEM)
        self._bus.__enter__()
        self.address = self._bus.address
        self._mocks = []
        try:
            env_before = os.environ.get("DBUS_SYSTEM_BUS_ADDRESS")
            os.environ["DBUS_SYSTEM_BUS_ADDRESS"] = self.address  # where SpawnedMock connects
            try:
                self._mocks.append(SpawnedMock.spawn_with_template(
                    "networkmanager", bustype=BusType.SYSTEM, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
                self._mocks.append(SpawnedMock.spawn_for_name(
                    ENGINE, ENGINE_PATH, ENGINE, BusType.SYSTEM, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            finally:
                if env_before is None:
                    os.environ.pop("DBUS_SYSTEM_BUS_ADDRESS", None)
                else:
                    os.environ["DBUS_SYSTEM_BUS_ADDRESS"] = env_before
            conn = dbus.bus.BusConnection(self.address)
            conn.get_object("org.freedesktop.NetworkManager", "/org/freedesktop").AddEthernetDevice(
                "mock_Ethernet1", iface, 100, dbus_interface=MOCK)
            engine = conn.get_object(ENGINE, ENGINE_PATH)
            replies = {
                "GetStatus": {"home_agent": "2001:db8:100::1", "multiple_care_of": False},
                "GetUplinks": [{"name": iface, "coa6": "2001:db8:1::5", "coa4": None, "family": 6, "carrier": True,
                                "reachable": True}],
                "GetBindings": [{"hoa": "2001:db8:100::10", "prefix_len": 64, "home_agent": "2001:db8:100::1",
                                 "state": "registered", "coa": "2001:db8:1::5", "interface": iface, "lifetime": 600,
                                 "remaining": 500, "seq": 3}],
            }
            for member, value in replies.items():
                engine.AddMethod(ENGINE, member, "", "s", f"ret = {json.dumps(value)!r}", dbus_interface=MOCK)
            conn.close()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        for m in self._mocks:
            m.terminate()
            m.process.wait()
        self._mocks = []
        self._bus.__exit__(None, None, None)


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
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    short = "--short" in sys.argv[1:] or os.environ.get("MHGUI_BENCH_SHORT") == "1"
    runs = int(args[0]) if args else (3 if short else 5)
    ns = f"mhbench-st-{os.getpid()}"
    tmp = tempfile.TemporaryDirectory(prefix="mhctl-status-")
    env = dict(os.environ, XDG_CONFIG_HOME=tmp.name, XDG_STATE_HOME=tmp.name,
               PYTHONPYCACHEPREFIX=os.path.join(tmp.name, "pyc"))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.pop("MHCTL_STATUS_PATH", None)
    mhctl = os.path.join(os.path.dirname(sys.executable), "mhctl")
    status = [mhctl] if os.path.exists(mhctl) else [sys.executable, "-m", "mhgui.cli"]
    inside = ["ip", "netns", "exec", ns]
    world = BusWorld()
    on_sigterm_cleanup(lambda: subprocess.run(["ip", "netns", "del", ns]), world.close)
    cases = {"no system bus": dict(env, DBUS_SYSTEM_BUS_ADDRESS=NO_BUS),
             "system bus": dict(env, DBUS_SYSTEM_BUS_ADDRESS=world.address)}
    cmds = {"python -c pass": (inside + [sys.executable, "-c", "pass"], env)}
    for case, e in cases.items():
        # "fast": a fall back to the full path fails the run instead of hiding in the figures
        cmds[f"mhctl status [{case}]"] = (inside + status + ["status", "--mip6d-conf", "/dev/null"],
                                          dict(e, MHCTL_STATUS_PATH="fast"))
        cmds[f"mhctl status (runtime) [{case}]"] = (inside + status + ["status", "--mip6d-conf", "/dev/null"],
                                                   dict(e, MHCTL_STATUS_PATH="runtime"))
    cmds["ip -6 addr"] = (inside + [shutil.which("ip") or "ip", "-6", "addr"], env)
    ip("netns", "add", ns)
    try:
        ip("-n", ns, "link", "set", "lo", "up")
        ip("-n", ns, "link", "add", "up0", "type", "veth", "peer", "name", "up0p")
        ip("-n", ns, "link", "set", "up0", "up")
        ip("-n", ns, "link", "set", "up0p", "up")
        ip("-n", ns, "-batch", "-", input="".join(f"addr add 2001:db8:{i}::5/64 dev up0 nodad\n" for i in range(1, 11)))
        results: dict[str, dict[str, list[float]]] = {}
        for label, n in (("10 addresses", runs), (f"{MANY} /128s more", max(1, min(runs, 2 if short else 3)))):
            if label != "10 addresses":
                ip("-n", ns, "-batch", "-", input="".join(
                    f"addr add 2001:db8:ff::{i:x}/128 dev up0 nodad\n" for i in range(1, MANY + 1)))
            for c, e in cmds.values():  # warm the file cache (and write the bytecode)
                timed(c, e)
            got: dict[str, list[float]] = {k: [] for k in cmds}
            cpu: dict[str, list[float]] = {k: [] for k in cmds}
            for _ in range(n):  # alternated: a slow phase of the shared machine hits every command
                for k, (c, e) in cmds.items():
                    wall, used = timed(c, e)
                    got[k].append(wall)
                    cpu[k].append(used)
            results[label] = got
            results[label + " cpu"] = cpu
            print(f"{label} ({n} runs each, inside a network namespace; wall, then CPU time):")
            for k, xs in got.items():
                print(f"  {k:40} {stats(xs)}   CPU {stats(cpu[k])}")
    finally:
        subprocess.run(["ip", "netns", "del", ns])
        world.close()
        tmp.cleanup()
    few, many = results["10 addresses"], results[f"{MANY} /128s more"]
    fc, mc = results["10 addresses cpu"], results[f"{MANY} /128s more cpu"]
    med = statistics.median
    for key in (k for k in cmds if k.startswith("mhctl status")):
        r1 = med(few[key]) / med(few["python -c pass"])
        r1m = min(few[key]) / min(few["python -c pass"])
        r2 = med(many[key]) / med(few[key])
        r2m = min(many[key]) / min(few[key])
        print(f"{key}: ratio to python -c pass, 10 addresses: median {r1:.2f}  min {r1m:.2f}  (goal <= 4); "
              f"CPU time: median {med(fc[key]) / med(fc['python -c pass']):.2f}")
        print(f"{key}: ratio at {MANY} /128s / at 10 addresses: median {r2:.2f}  min {r2m:.2f}  (goal <= 2); "
              f"CPU time: median {med(mc[key]) / med(fc[key]):.2f}")
    print(f"ratio mhctl status / ip -6 addr, 10 addresses: median "
          f"{med(few['mhctl status [no system bus]']) / med(few['ip -6 addr']):.0f} (no system bus), "
          f"{med(few['mhctl status [system bus]']) / med(few['ip -6 addr']):.0f} (system bus)")


if __name__ == "__main__":
    main()
