"""Rebind and failover times of the engine (mhgui-mn / mhgui-ha) in one `mhctl lab` of its own.

1. Rebind request -> Binding Acknowledgement seen by the app: rebinds of the HoA
   alternately up0 <-> up1 through EngineDriver.rebind (the app's path: D-Bus
   Rebind, then the bindings read again), client round trip and the daemon's own
   elapsed_ms; dumpcap on both access routers' dn0 checks that each rebind put
   exactly one BU and one BA on the wire. Alternating with batches of the UMIP
   double's restart rebind (benchmarks/rebind_time.py's measurement, 50 ms
   confirmation poll), as context.
2. Carrier loss -> BU on the next uplink: the router's side of up0 goes down
   (Lab.cut); the rtnetlink link event in the MN namespace (a reader timestamping
   with CLOCK_REALTIME right after recv) to the BU leaving on up1 (dumpcap on the
   MN's up1, kernel timestamps). Goal: p50 <= 5 ms. Also command -> event (the
   kernel's link watch holds a non-urgent link event up to 1 s; cuts start
   LINKWATCH_GAP after the previous one so that ours is not held back by our own).
3. Blackholed uplink -> failover with the default probes (250 ms, 3 missed):
   Lab.blackhole(up0) to the BU on up1 (capture) and to the binding showing up1
   (GetBindings every 10 ms). Goal: <= 1 s.
4. Longest stall across failovers: a paced TCP stream HoA -> CN (1 KB chunks,
   1000/s; the receiver records arrival times), alternately cut up0 (failover to
   up1) and restore (move back to up0); the longest gap between received chunks
   per failover, and the longest gap of the stream before the first failover as
   the floor. Goal: < 1 s.

Needs root. Usage: python benchmarks/engine_failover.py [--rebinds N] [--umip-rebinds N] [--cuts N]
[--blackholes N] [--failovers N]
"""

from __future__ import annotations

import argparse
import array
import asyncio
import json
import math
import os
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from _common import on_sigterm_cleanup  # noqa: E402

PREFIX = f"bf{os.getpid() % 1000}"
GOAL_EVENT_TO_BU_MS = 5.0
GOAL_BLACKHOLE_S = 1.0
GOAL_STALL_S = 1.0
UMIP_LAST_KNOWN = "≈1.1 s (benchmarks/rebind_time.py)"
#: seconds between a link-down event and the next cut (see benchmarks/failover.py: a flap costs two of the
#: kernel's link-watch slots, one a second host-wide; later, our own cut's event is not held back by them)
LINKWATCH_GAP = 2.5
STREAM_PORT = 5201
IFF_LOWER_UP = 0x10000
MH_BU, MH_BA = 5, 6
BUS_NAME = "io.github.mhgui.MHGui.MobileNode1"
OBJECT_PATH = "/io/github/mhgui/MHGui/MobileNode1"

# pids to end and callables to run, by _cleanup (finally, and the SIGTERM handler)
_pids: list[int] = []
_undo: list[Callable[[], None]] = []


def _cleanup() -> None:
    for pid in list(_pids):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            os.waitpid(pid, 0)  # SIGKILL: at once
        except ChildProcessError:  # reaped already
            pass
    _pids.clear()
    while _undo:
        fn = _undo.pop()
        try:
            fn()
        except Exception as e:  # keep cleaning
            print(f"cleanup failed: {e}", file=sys.stderr)


# --------------------------------------------------------------------------- helpers (run in namespaces)
def helper_nlmon() -> None:
    """rtnetlink link events of this namespace: one line each, ``wall type ifindex name flags carrier``."""
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    s.bind((0, 1))  # RTMGRP_LINK
    out = sys.stdout
    out.write("ready\n")
    out.flush()
    while True:
        data = s.recv(1 << 16)
        t = time.clock_gettime(time.CLOCK_REALTIME)
        off = 0
        while off + 16 <= len(data):
            length, typ = struct.unpack_from("=IH", data, off)
            if length < 16:
                break
            if typ in (16, 17) and off + 32 <= len(data):  # RTM_NEWLINK, RTM_DELLINK
                _fam, _pad, _type, index, flags, _change = struct.unpack_from("=BBHiII", data, off + 16)
                name, carrier = "?", -1
                a, end = off + 32, min(off + length, len(data))
                while a + 4 <= end:
                    alen, atype = struct.unpack_from("=HH", data, a)
                    if alen < 4:
                        break
                    atype &= 0x3FFF
                    if atype == 3:  # IFLA_IFNAME
                        name = data[a + 4:a + alen].split(b"\0", 1)[0].decode(errors="replace")
                    elif atype == 33 and alen >= 5:  # IFLA_CARRIER
                        carrier = data[a + 4]
                    a += (alen + 3) & ~3
                out.write(f"{t:.6f} {typ} {index} {name} {flags} {carrier}\n")
            off += (length + 3) & ~3
        out.flush()


def helper_sink(addr: str, port: int, path: str) -> None:
    """TCP receiver: the CLOCK_REALTIME of every recv() that returned data, written to ``path`` at EOF."""
    srv = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((addr, port))
    srv.listen(1)
    print("ready", flush=True)
    conn, _ = srv.accept()
    times, sizes = array.array("d"), array.array("q")
    buf = bytearray(1 << 16)
    try:
        while True:
            n = conn.recv_into(buf)
            t = time.clock_gettime(time.CLOCK_REALTIME)
            if not n:
                break
            times.append(t)
            sizes.append(n)
    except OSError:
        pass
    with open(path, "wb") as f:
        times.tofile(f)
    print(f"received {sum(sizes)} bytes in {len(times)} reads", flush=True)


def helper_source(dst: str, port: int, bind: str, rate: float, size: int) -> None:
    """Paced TCP sender (``rate`` chunks of ``size`` bytes a second) from ``bind`` until SIGTERM."""
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.bind((bind, 0))
    s.connect((dst, port))
    print("ready", flush=True)
    chunk, period = b"x" * size, 1.0 / rate
    t0, i = time.monotonic(), 0
    while not stop:
        i += 1
        d = t0 + i * period - time.monotonic()
        if d > 0:
            time.sleep(d)
        try:
            s.sendall(chunk)
        except InterruptedError:
            pass
    s.close()


HELPERS = {"nlmon": helper_nlmon, "sink": helper_sink, "source": helper_source}


# --------------------------------------------------------------------------- small helpers
def pct(vals: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    s = sorted(vals)
    return s[max(0, math.ceil(p / 100 * len(s)) - 1)]


def dist(vals: list[float], unit: str = "ms", digits: int = 1) -> str:
    if not vals:
        return "not seen"
    return (f"p50 {pct(vals, 50):.{digits}f} {unit}, p95 {pct(vals, 95):.{digits}f} {unit}, "
            f"max {max(vals):.{digits}f} {unit} (n={len(vals)})")


def med(vals: list[float], digits: int = 1) -> str:
    return f"{statistics.median(vals):.{digits}f} ms" if vals else "not seen"


def goal(ok: bool) -> str:
    return "met" if ok else "MISSED"


def spawn(ns: str, *argv: str, **kw) -> subprocess.Popen:
    p = subprocess.Popen(["ip", "netns", "exec", ns, *argv], **kw)
    _pids.append(p.pid)
    return p


def helper(ns: str, name: str, *args: str, **kw) -> subprocess.Popen:
    return spawn(ns, sys.executable, str(Path(__file__).resolve()), "--helper", name, *args, **kw)


def end(p: subprocess.Popen, timeout: float = 5.0) -> None:
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    if p.pid in _pids:
        _pids.remove(p.pid)


def read_line(p: subprocess.Popen, stream, timeout: float) -> str:
    """The next line of ``stream`` (a pipe of ``p``) within ``timeout`` s, "" if none."""
    import select
    deadline = time.monotonic() + timeout
    buf = b""
    fd = stream.fileno()
    while time.monotonic() < deadline:
        r, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not r:
            break
        ch = os.read(fd, 1)
        if not ch:
            break
        if ch == b"\n":
            return buf.decode(errors="replace")
        buf += ch
    return buf.decode(errors="replace")


# --------------------------------------------------------------------------- captures
class Packet:
    __slots__ = ("t", "src", "dst", "mh", "seq", "status")

    def __init__(self, t, src, dst, mh, seq, status) -> None:
        self.t, self.src, self.dst, self.mh, self.seq, self.status = t, src, dst, mh, seq, status


def parse_pcap(path: Path) -> list[Packet]:
    """Mobility Header messages in UDP (RFC 5555 framing: IPv6 header + MH) of a classic pcap file."""
    data = path.read_bytes() if path.exists() else b""
    if len(data) < 24:
        return []
    magic = struct.unpack_from("<I", data)[0]
    end_ = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    frac = 1e-9 if magic in (0xA1B23C4D, 0x4D3CB2A1) else 1e-6
    linktype = struct.unpack_from(end_ + "I", data, 20)[0]
    out, off = [], 24
    while off + 16 <= len(data):
        sec, sub, incl, _orig = struct.unpack_from(end_ + "IIII", data, off)
        pkt = data[off + 16:off + 16 + incl]
        off += 16 + incl
        if linktype == 1:
            if len(pkt) < 14:
                continue
            ethertype, l3 = struct.unpack_from(">H", pkt, 12)[0], pkt[14:]
        elif linktype == 101 and pkt:
            ethertype, l3 = (0x86DD if pkt[0] >> 4 == 6 else 0x0800), pkt
        else:
            continue
        if ethertype == 0x0800 and len(l3) >= 20:
            ihl = (l3[0] & 15) * 4
            proto, src, dst, udp = l3[9], socket.inet_ntop(socket.AF_INET, l3[12:16]), \
                socket.inet_ntop(socket.AF_INET, l3[16:20]), l3[ihl:]
        elif ethertype == 0x86DD and len(l3) >= 40:
            proto, src, dst, udp = l3[6], socket.inet_ntop(socket.AF_INET6, l3[8:24]), \
                socket.inet_ntop(socket.AF_INET6, l3[24:40]), l3[40:]
        else:
            continue
        if proto != 17 or len(udp) < 8:
            continue
        pl = udp[8:]
        if len(pl) < 52 or pl[0] >> 4 != 6 or pl[6] != 135:  # not an IPv6 packet carrying a Mobility Header
            continue
        mh = pl[40:]
        mtype = mh[2]
        seq = struct.unpack_from(">H", mh, 6)[0] if mtype == MH_BU else struct.unpack_from(">H", mh, 8)[0]
        out.append(Packet(sec + sub * frac, src, dst, mtype, seq, mh[6] if mtype == MH_BA else None))
    return out


class Capture:
    """dumpcap on ``iface`` in namespace ``ns``, UDP port 4191 (kernel timestamps), into ``path``."""

    def __init__(self, ns: str, iface: str, path: Path) -> None:
        self.ns, self.iface, self.path = ns, iface, path
        self.p = spawn(ns, "dumpcap", "-q", "-i", iface, "-f", "udp port 4191", "-P", "-s", "256", "-w", str(path),
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def wait_ready(self) -> None:
        line = read_line(self.p, self.p.stderr, 15.0)
        if "Capturing on" not in line:
            raise RuntimeError(f"dumpcap on {self.ns}/{self.iface} did not start: {line!r}")

    def stop(self) -> list[Packet]:
        time.sleep(0.1)
        end(self.p)
        self.p.stderr.close()
        return parse_pcap(self.path)


# --------------------------------------------------------------------------- the daemon's control API
class Ctl:
    """A dbus-fast connection to the lab's bus: the MN's bindings, uplinks, and its Changed signals (timestamped)."""

    def __init__(self) -> None:
        self.bus = None
        self.events: list[tuple[float, str, dict]] = []

    async def connect(self, address: str) -> None:
        from dbus_fast import BusType, Message
        from dbus_fast.aio import MessageBus
        self.bus = await MessageBus(bus_address=address, bus_type=BusType.SYSTEM).connect()
        self.bus.add_message_handler(self._on_message)
        rule = f"type='signal',sender='{BUS_NAME}',path='{OBJECT_PATH}',interface='{BUS_NAME}',member='Changed'"
        await self.bus.call(Message(destination="org.freedesktop.DBus", path="/org/freedesktop/DBus",
                                    interface="org.freedesktop.DBus", member="AddMatch", signature="s", body=[rule]))

    def _on_message(self, msg) -> None:
        from dbus_fast import MessageType
        if msg.message_type is MessageType.SIGNAL and msg.member == "Changed" and msg.interface == BUS_NAME:
            t = time.time()
            try:
                detail = json.loads(msg.body[1])
            except (ValueError, IndexError, TypeError):
                detail = {}
            self.events.append((t, msg.body[0], detail))

    def close(self) -> None:
        if self.bus is not None:
            self.bus.disconnect()

    async def call(self, member: str, signature: str = "", body: list | None = None) -> list:
        from dbus_fast import Message, MessageType
        reply = await self.bus.call(Message(destination=BUS_NAME, path=OBJECT_PATH, interface=BUS_NAME, member=member,
                                            signature=signature, body=body or []))
        if reply.message_type is MessageType.ERROR:
            raise RuntimeError(f"{member}: {reply.error_name}: {reply.body[0] if reply.body else ''}")
        return reply.body

    async def binding(self) -> dict:
        from mhgui.lab import HOA
        items = json.loads((await self.call("GetBindings"))[0])
        return next((b for b in items if b.get("hoa") == HOA), {})

    async def uplink(self, name: str) -> dict:
        items = json.loads((await self.call("GetUplinks"))[0])
        return next((u for u in items if u.get("name") == name), {})

    async def wait_bound(self, iface: str, timeout: float, poll: float = 0.01) -> float | None:
        """time.time() when the HoA shows registered through ``iface`` (polled), None after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while True:
            b = await self.binding()
            if b.get("state") == "registered" and b.get("interface") == iface:
                return time.time()
            if time.monotonic() > deadline:
                return None
            await asyncio.sleep(poll)

    async def settle_on(self, iface: str, timeout: float = 15.0) -> None:
        """Bound through ``iface`` and its probes answered (the starting point of a run)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if await self.wait_bound(iface, max(0.1, deadline - time.monotonic()), 0.05) is not None:
                if (await self.uplink(iface)).get("reachable") is True:
                    return
            await asyncio.sleep(0.05)
        raise TimeoutError(f"the HoA is not bound through {iface} with its probes answered within {timeout:g} s: "
                           f"{await self.binding()}")

    def first_event(self, after: float, pred) -> float | None:
        return next((t for t, what, d in self.events if t >= after and pred(what, d)), None)


class NlMon:
    """The rtnetlink link events of the MN namespace (helper_nlmon), collected by a thread as they come."""

    def __init__(self, ns: str) -> None:
        self.ns = ns
        self.events: list[tuple[float, str, int, int]] = []  # (wall, name, flags, carrier)
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        import threading
        # real-time priority: the reader wakes at once on the event, even when both cores are busy
        rt = ["chrt", "-f", "10"] if shutil.which("chrt") else []
        self.proc = spawn(self.ns, *rt, sys.executable, str(Path(__file__).resolve()), "--helper", "nlmon",
                          stdout=subprocess.PIPE)
        line = read_line(self.proc, self.proc.stdout, 15)
        if line != "ready":
            raise RuntimeError(f"the netlink reader did not start: {line!r}")
        threading.Thread(target=self._read, args=(self.proc.stdout,), daemon=True).start()

    def _read(self, stream) -> None:
        for line in stream:
            parts = line.decode(errors="replace").split()
            if len(parts) == 6 and parts[1] == "16":
                self.events.append((float(parts[0]), parts[3], int(parts[4]), int(parts[5])))

    def down_after(self, name: str, after: float) -> float | None:
        return next((t for t, n, flags, carrier in list(self.events)
                     if t >= after and n == name and (not flags & IFF_LOWER_UP or carrier == 0)), None)

    async def wait_down(self, name: str, after: float, timeout: float) -> float | None:
        deadline = time.monotonic() + timeout
        while (t := self.down_after(name, after)) is None and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        return t

    def stop(self) -> None:
        if self.proc is not None:
            end(self.proc)


async def linkwatch_gap(last_down: float | None) -> None:
    if last_down is not None:
        await asyncio.sleep(max(0.0, last_down + LINKWATCH_GAP - time.time()))


# --------------------------------------------------------------------------- 1. rebinds
def umip_start() -> tuple[object, Path]:
    """The UMIP double's end-to-end lab of tests/test_rebind_e2e.py (as benchmarks/rebind_time.py builds it)."""
    sys.path.insert(0, str(HERE.parent / "tests"))
    from test_helper import CHANGE, READ
    from test_rebind_e2e import World
    tmp = Path(tempfile.mkdtemp(prefix="mhgui-bench-failover-umip-"))
    _undo.append(lambda: shutil.rmtree(tmp, ignore_errors=True))
    tmp.chmod(0o755)
    world = World(tmp)
    _undo.append(world.close)
    world.stack.allow(READ, CHANGE)
    world.wait_registered(world.lab.COA_A)
    return world, tmp


def umip_batch(world, n: int) -> list[tuple[float, float]]:
    """``n`` restart rebinds of the double (50 ms confirmation poll, as rebind_time.py's fastest):
    (client round trip, the driver's elapsed_ms) each. Runs in its own thread and namespace."""
    from test_rebind_e2e import HOA, in_netns

    from mhgui.runtime import Runtime
    with in_netns(world.lab.ns):
        rt = Runtime(mip6d_conf=str(world.conf), system_bus=world.stack.address, use_networkmanager=False,
                     poll_interval=1.0)
        rt.daemon.confirm_interval = 0.05

        async def run():
            out = []
            await rt.start()
            try:
                deadline = time.monotonic() + 20
                while not rt.daemon.connected and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
                for i in range(n):
                    target = "upB" if i % 2 == 0 else "upA"
                    if [b.interface for b in rt.daemon.bindings()] == [target]:
                        target = "upA" if target == "upB" else "upB"
                    plan = await rt.daemon.plan_rebind(HOA, target, rt.live_view())
                    if not plan.allowed:
                        raise RuntimeError(f"UMIP double: rebind to {target} refused: {plan.refusal}")
                    t0 = time.perf_counter()
                    r = await rt.daemon.rebind(plan)
                    rtt = (time.perf_counter() - t0) * 1000
                    if not r.confirmed:
                        raise RuntimeError(f"UMIP double: rebind to {target} not confirmed: {r.reason}")
                    out.append((rtt, r.elapsed_ms))
            finally:
                await rt.stop()
            return out

        return asyncio.run(run())


def refused(reason: object) -> bool:
    """The daemon (or the bus) would not let us rebind: NotAuthorized, AccessDenied."""
    text = str(reason)
    return "NotAuthorized" in text or "AccessDenied" in text or text.startswith("not allowed")


async def engine_batch(driver, ctl: Ctl, targets: list[str]) -> list[dict]:
    from mhgui.daemons.base import LiveView
    from mhgui.lab import HOA
    rows = []
    for target in targets:
        await ctl.settle_on("up1" if target == "up0" else "up0")
        await asyncio.sleep(0.1)
        t0 = time.perf_counter()
        await ctl.binding()  # the floor: one D-Bus round trip to the daemon (GetBindings)
        floor = (time.perf_counter() - t0) * 1000
        if driver is not None:
            plan = await driver.plan_rebind(HOA, target, LiveView())
            if plan.refusal:
                rows.append({"target": target, "ok": False, "reason": f"plan refused: {plan.refusal}"})
                continue
            w0, t0 = time.time(), time.perf_counter()
            r = await driver.rebind(plan)
            rtt, w1 = (time.perf_counter() - t0) * 1000, time.time()
            ok, daemon_ms, reason = r.confirmed, r.elapsed_ms, r.reason
        else:  # the driver cannot connect: the control API directly
            w0, t0 = time.time(), time.perf_counter()
            try:
                ok, daemon_ms, _coa, _if, reason = await ctl.call("Rebind", "ss", [HOA, target])
                await ctl.binding()  # what the app does next: read the bindings
            except RuntimeError as e:
                ok, daemon_ms, reason = False, 0.0, str(e)
            rtt, w1 = (time.perf_counter() - t0) * 1000, time.time()
        rows.append({"target": target, "ok": ok, "rtt": rtt, "daemon": daemon_ms, "w0": w0, "w1": w1,
                     "reason": reason, "floor": floor})
        if not ok and refused(reason):
            break
    return rows


async def part1(ctl: Ctl, driver, n: int, umip_n: int, ar_caps: list[Capture]) -> list[str]:
    how = ("EngineDriver.rebind (Rebind + bindings re-read)" if driver.connected else
           f"the control API directly (EngineDriver did not connect: {driver.status.error})")
    if not driver.connected:
        driver = None
    n += n % 2  # end on up0, the first preference of what follows
    targets = ["up1" if i % 2 == 0 else "up0" for i in range(n)]
    halves = [targets[:n // 2], targets[n // 2:]]
    rows: list[dict] = []
    umip: list[tuple[float, float]] = []
    umip_note = ""
    world = None
    try:
        for half in halves:
            rows += await engine_batch(driver, ctl, half)
            if any(not r["ok"] for r in rows):
                break
            if umip_n <= 0:
                continue
            try:
                if world is None:
                    world, _tmp = await asyncio.to_thread(umip_start)
                umip += await asyncio.to_thread(umip_batch, world, umip_n)
            except Exception as e:  # noqa: BLE001 - context only: say why it is missing
                umip_note = f"not measured ({type(e).__name__}: {e})"
                umip_n = 0
    finally:
        if world is not None:
            await asyncio.to_thread(_undo_now, world.close)
    await asyncio.sleep(0.3)
    pkts = []
    for c in ar_caps:
        role = c.ns.rsplit("-", 1)[1]
        pkts += [(role, p) for p in await asyncio.to_thread(c.stop)]
    pkts.sort(key=lambda x: x[1].t)
    lines = [f"1. rebind request -> BA seen by the app ({how}), HoA alternately up0 <-> up1, {len(rows)} rebinds"
             + (" in 2 batches alternating with the UMIP double's:" if umip else ":")]
    bad = [r for r in rows if not r["ok"]]
    if bad:
        lines.append(f"   {len(bad)} of {len(rows)} not confirmed: {bad[0]['target']}: {bad[0]['reason']}")
        if any(refused(r["reason"]) for r in bad):
            lines.append("   (the daemon refuses Rebind from root on the lab's bus, which has no polkit: its root "
                         "exemption is missing; part 1 needs it)")
    good = [r for r in rows if r["ok"]]
    if good:
        lines.append(f"   engine, client round trip:   {dist([r['rtt'] for r in good], digits=2)}")
        lines.append(f"   engine, daemon's elapsed_ms: {dist([r['daemon'] for r in good], digits=2)}")
        lines.append(f"   floor, one D-Bus round trip to the daemon (GetBindings, before each rebind): "
                     f"{dist([r['floor'] for r in rows if 'floor' in r], digits=2)}; the app's rebind is a Rebind call "
                     "and a GetBindings call")
        # the wire: exactly one BU and one BA per rebind, each window until the next rebind starts
        starts = [r["w0"] for r in rows if "w0" in r] + [float("inf")]
        per, wire_ms, wrong_router = [], [], 0
        for i, r in enumerate(r for r in rows if "w0" in r):
            win = [(role, p) for role, p in pkts if starts[i] - 0.001 <= p.t < starts[i + 1]]
            bus = [(role, p) for role, p in win if p.mh == MH_BU]
            bas = [(role, p) for role, p in win if p.mh == MH_BA]
            per.append((len(bus), len(bas)))
            want = "ar1" if r["target"] == "up0" else "ar2"
            wrong_router += sum(1 for role, _ in bus if role != want)
            if bus and bas:
                wire_ms.append((bas[-1][1].t - bus[0][1].t) * 1000)
        exact = sum(1 for x in per if x == (1, 1))
        lines.append(f"   on the wire (dumpcap on ar1 and ar2 dn0): exactly one BU and one BA in {exact} of "
                     f"{len(per)} rebinds" + ("" if exact == len(per) else
                                              f"; (BUs, BAs) per rebind: {per}")
                     + (f"; {wrong_router} BUs through the other router" if wrong_router else ""))
        lines.append(f"   on the wire, BU -> BA at the access router: {dist(wire_ms, digits=2)}")
    if umip:
        lines.append(f"   UMIP double (restart rebind, 50 ms confirmation poll), context: client round trip "
                     f"{dist([u[0] for u in umip], digits=0)}; the driver's elapsed_ms median "
                     f"{med([u[1] for u in umip], 0)}")
        if good:
            lines.append(f"   UMIP double / engine (client round trip medians): "
                         f"{statistics.median(u[0] for u in umip) / statistics.median(r['rtt'] for r in good):.0f}x")
    else:
        lines.append(f"   UMIP double (context): {umip_note or 'not measured'}; last known {UMIP_LAST_KNOWN}")
    return lines


def _undo_now(fn) -> None:
    if fn in _undo:
        _undo.remove(fn)
    fn()


# --------------------------------------------------------------------------- 2. carrier loss
async def part2(lab, ctl: Ctl, nl: NlMon, n: int) -> tuple[list[dict], float | None]:
    from mhgui.lab import Lab
    rows = []
    last_down = None
    for _ in range(n):
        await ctl.settle_on("up0")
        await linkwatch_gap(last_down)
        w_cmd = time.time()
        await asyncio.to_thread(Lab.cut, lab.prefix, "up0")
        w_cmd_done = time.time()
        ev = await nl.wait_down("up0", w_cmd, 5.0)
        bound = await ctl.wait_bound("up1", 5.0)
        await asyncio.to_thread(Lab.restore, lab.prefix, "up0")
        rows.append({"cmd": w_cmd, "cmd_done": w_cmd_done, "event": ev, "bound": bound})
        last_down = ev if ev is not None else w_cmd
        if await ctl.wait_bound("up0", 10.0, 0.02) is None:
            raise TimeoutError(f"not back on up0 10 s after the restore: {await ctl.binding()}")
    return rows, last_down


def moving_reason(ctl: Ctl, after: float, to: str) -> str | None:
    """The reason of the daemon's first "moving" event to ``to`` after ``after`` (its Changed signal)."""
    return next((d.get("reason") for t, what, d in ctl.events
                 if t >= after and what == "bindings" and d.get("event") == "moving" and d.get("to") == to), None)


def part2_lines(rows: list[dict], up1: list[Packet], ctl: Ctl) -> list[str]:
    bus = [p for p in up1 if p.mh == MH_BU and p.src == "192.0.2.2"]
    bas = [p for p in up1 if p.mh == MH_BA]
    ev_bu, cmd_ev, ev_ba, missing, early, by_probes = [], [], [], 0, 0, []
    for r in rows:
        bu = next((p for p in bus if p.t >= r["cmd"]), None)
        if r["event"] is not None:
            cmd_ev.append((r["event"] - r["cmd"]) * 1000)
        if bu is None or r["event"] is None or r["bound"] is None:
            missing += 1
            continue
        reason = moving_reason(ctl, r["cmd"], "up1")
        if reason != "link or address change":  # the probes saw it first (the event was held back)
            by_probes.append(((bu.t - r["cmd"]) * 1000, (r["event"] - r["cmd"]) * 1000, reason))
            continue
        d = (bu.t - r["event"]) * 1000
        early += d < 0
        ev_bu.append(d)
        ba = next((p for p in bas if p.t >= bu.t), None)
        if ba is not None:
            ev_ba.append((ba.t - r["event"]) * 1000)
    p50 = pct(ev_bu, 50) if ev_bu else float("inf")
    lines = [f"2. carrier loss on up0 (Lab.cut: the router's dn0 down) -> BU on up1, {len(rows)} cuts:",
             f"   netlink link-down event -> BU leaving on up1: {dist(ev_bu, digits=2)}"
             + (f", min {min(ev_bu):.2f} ms" if ev_bu else "") + "   "
             f"[goal p50 <= {GOAL_EVENT_TO_BU_MS:g} ms: {goal(p50 <= GOAL_EVENT_TO_BU_MS)}]",
             f"   netlink event -> BA arriving on up1: {dist(ev_ba, digits=2)} (context)",
             f"   cut command -> netlink event: {dist(cmd_ev)} (context: the kernel's link watch sends a non-urgent "
             f"link event at most once a second host-wide; cuts start {LINKWATCH_GAP:g} s after the previous one, "
             "other link changes on the host can still hold one back)"]
    if by_probes:
        lines.append(f"   {len(by_probes)} cut{'s' * (len(by_probes) > 1)} moved on the probes' verdict before the link event came (not counted "
                     "above): " + "; ".join(f"BU {b:.0f} ms after the command, event {e:.0f} ms ({why})"
                                            for b, e, why in by_probes))
    if missing:
        lines.append(f"   {missing} of {len(rows)} cuts without an event, a BU on up1 or the binding on up1 "
                     "within 5 s")
    if early:
        lines.append(f"   in {early} cuts the BU left before the reader's timestamp of the event (the reader's "
                     "wake-up was later than the daemon's)")
    return lines


# --------------------------------------------------------------------------- 3. blackhole
async def part3(lab, ctl: Ctl, n: int) -> list[dict]:
    from mhgui.lab import Lab
    rows = []
    for _ in range(n):
        await ctl.settle_on("up0")
        await asyncio.sleep(0.2)
        w_before = time.time()
        await asyncio.to_thread(Lab.blackhole, lab.prefix, "up0")
        w0 = time.time()
        bound = await ctl.wait_bound("up1", 5.0, 0.01)
        await asyncio.to_thread(Lab.restore, lab.prefix, "up0")
        rows.append({"before": w_before, "t0": w0, "bound": bound})
        if await ctl.wait_bound("up0", 10.0, 0.02) is None:
            raise TimeoutError(f"not back on up0 10 s after the blackhole ended: {await ctl.binding()}")
    return rows


def part3_lines(rows: list[dict], up1: list[Packet], ctl: Ctl) -> list[str]:
    bus = [p for p in up1 if p.mh == MH_BU and p.src == "192.0.2.2"]
    to_bu, to_bound, to_verdict, cmd_ms, missing = [], [], [], [], 0
    for r in rows:
        cmd_ms.append((r["t0"] - r["before"]) * 1000)
        bu = next((p for p in bus if p.t >= r["before"]), None)
        verdict = ctl.first_event(r["before"], lambda what, d: what == "uplinks" and d.get("event") == "unreachable"
                                  and d.get("uplink") == "up0")
        if bu is None or r["bound"] is None:
            missing += 1
            continue
        to_bu.append(bu.t - r["t0"])
        to_bound.append(r["bound"] - r["t0"])
        if verdict is not None:
            to_verdict.append((verdict - r["t0"]) * 1000)
    worst = max(to_bound) if to_bound else float("inf")
    lines = [f"3. blackholed up0 (Lab.blackhole: its router drops everything) -> failover, default probes "
             f"(250 ms, 3 missed), {len(rows)} times:",
             f"   blackhole in place -> BU leaving on up1:        {dist(to_bu, 's', 3)}",
             f"   blackhole in place -> binding shows up1 (10 ms poll): {dist(to_bound, 's', 3)}   "
             f"[goal <= {GOAL_BLACKHOLE_S:g} s: {goal(worst <= GOAL_BLACKHOLE_S)} (max)]",
             f"   where the time goes: blackhole -> 'unreachable' signal (3rd probe timed out; the BU goes in the same "
             f"step) {med(to_verdict, 0)}, the nft command itself {med(cmd_ms)} (medians); expected: the first lost "
             "probe 0..250 ms after, then two re-probes sent at once, each given max(100 ms, 4 srtt): about "
             "0.3..0.55 s"]
    if missing:
        lines.append(f"   {missing} of {len(rows)} without a BU on up1 or the binding on up1 within 5 s")
    return lines


# --------------------------------------------------------------------------- 4. stall
async def part4(lab, ctl: Ctl, nl: NlMon, failovers: int, tmp: Path, last_down: float | None) -> list[str]:
    from mhgui.lab import CN_ADDRESS, HOA, Lab
    await ctl.settle_on("up0")
    times_file = tmp / "arrivals.bin"
    sink = helper(lab.netns("cn"), "sink", CN_ADDRESS, str(STREAM_PORT), str(times_file), stdout=subprocess.PIPE)
    if read_line(sink, sink.stdout, 15) != "ready":
        raise RuntimeError("the stream's receiver did not start")
    source = helper(lab.netns("mn"), "source", CN_ADDRESS, str(STREAM_PORT), HOA, "1000", "1024",
                    stdout=subprocess.PIPE)
    if read_line(source, source.stdout, 15) != "ready":
        raise RuntimeError("the stream's sender did not connect")
    t_start = time.time()
    await asyncio.sleep(2.0)
    acts: list[dict] = []
    try:
        for k in range(failovers):
            if k % 2 == 0:
                await linkwatch_gap(last_down)
                srtt = (await ctl.uplink("up0")).get("srtt_ms")
                w = time.time()
                await asyncio.to_thread(Lab.cut, lab.prefix, "up0")
                ev = await nl.wait_down("up0", w, 5.0)
                bound = await ctl.wait_bound("up1", 5.0)
                last_down = ev if ev is not None else w
                acts.append({"kind": "cut", "w": w, "ev": ev, "bound": bound, "srtt": srtt})
            else:
                w = time.time()
                await asyncio.to_thread(Lab.restore, lab.prefix, "up0")
                acts.append({"kind": "back", "w": w, "ev": None, "bound": await ctl.wait_bound("up0", 10.0)})
            await asyncio.sleep(max(0.0, w + 1.2 - time.time()))
        await asyncio.sleep(1.0)
        if failovers % 2:
            await asyncio.to_thread(Lab.restore, lab.prefix, "up0")
    finally:
        t_stop = time.time()
        end(source)
        try:
            sink.wait(15)
        except subprocess.TimeoutExpired:
            pass
        end(sink)
    arr = array.array("d")
    if times_file.exists():
        arr.frombytes(times_file.read_bytes())
    t = list(arr)
    gaps = [(t[i - 1], t[i] - t[i - 1]) for i in range(1, len(t))]
    first = acts[0]["w"] if acts else t_stop
    quiet = [g for s, g in gaps if t_start + 0.3 <= s < first]
    ends = [a["w"] for a in acts] + [t_stop]
    for i, a in enumerate(acts):
        g = [(gap, s) for s, gap in gaps if a["w"] - 0.005 <= s < ends[i + 1]]
        a["stall"], a["resumed"] = (max(g)[0], sum(max(g))) if g else (None, None)
        # what moved the binding: the daemon's "moving" event (its reason) and the probes' verdict on up0
        a["why"] = next((d.get("reason") for tt, what, d in ctl.events
                         if tt >= a["w"] and what == "bindings" and d.get("event") == "moving"), None)
        a["verdict"] = ctl.first_event(a["w"], lambda what, d: what == "uplinks" and d.get("event") == "unreachable"
                                       and d.get("uplink") == "up0")
    stalls = [a["stall"] for a in acts if a["stall"] is not None]
    worst = max(stalls) if stalls else float("inf")
    cuts = [a for a in acts if a["kind"] == "cut"]
    backs = [a for a in acts if a["kind"] == "back"]
    ms = lambda xs: [x * 1000 for x in xs]  # noqa: E731
    stall_ms = lambda acts: ms(a["stall"] for a in acts if a["stall"] is not None)  # noqa: E731
    lines = [f"4. longest stall of a paced TCP stream HoA -> CN (1000 chunks/s of 1 KB), {len(acts)} failovers "
             f"(cut up0 -> up1, restore -> back to up0, alternately):",
             f"   floor: longest gap in the {first - t_start - 0.3:.1f} s before the first failover: "
             f"{max(quiet) * 1000 if quiet else float('nan'):.1f} ms",
             "   longest gap per failover (ms): " + ", ".join(
                 f"{a['kind']} {a['stall'] * 1000:.0f}" if a["stall"] is not None else f"{a['kind']} -" for a in acts),
             f"   max over the {len(acts)}: {worst * 1000:.0f} ms   [goal < {GOAL_STALL_S * 1000:.0f} ms: "
             f"{goal(worst < GOAL_STALL_S)}]; cuts: {dist(stall_ms(cuts), digits=0)}; "
             f"moves back: {dist(stall_ms(backs), digits=0)}",
             f"   the cuts: command -> netlink event {dist(ms(a['ev'] - a['w'] for a in cuts if a['ev']))}; "
             f"command -> binding shows up1 (polled) {dist(ms(a['bound'] - a['w'] for a in cuts if a['bound']))}; "
             f"up0's smoothed probe RTT under the stream: median "
             f"{med([a['srtt'] for a in cuts if a['srtt'] is not None])}",
             f"   the cuts: netlink event -> stream flowing again: "
             f"{dist(ms(a['resumed'] - a['ev'] for a in cuts if a['ev'] and a['resumed']), digits=0)} (the engine's "
             "move plus TCP's retransmission timer, backed off for every retransmission lost before the event)"]
    for a in cuts:
        if a["stall"] is None or a["stall"] <= 0.1:
            continue
        ev = f"{(a['ev'] - a['w']) * 1000:.0f} ms" if a["ev"] else "not seen"
        bound = f"{(a['bound'] - a['w']) * 1000:.0f} ms" if a["bound"] else "not seen"
        verdict = (f", probes' verdict {(a['verdict'] - a['w']) * 1000:.0f} ms"
                   if a["verdict"] and a["bound"] and a["verdict"] <= a["bound"] + 0.05 else "")
        lines.append(f"   a cut that stalled {a['stall'] * 1000:.0f} ms: after the command, link event {ev}{verdict}, "
                     f"binding on up1 {bound} (moved for: {a['why']}); the rest is TCP's retransmission backoff")
    if t and acts and t[-1] < acts[-1]["w"]:
        lines.append("   the stream did not resume after the last failover")
    lines.append(f"   ({len(t)} reads received in {t_stop - t_start:.1f} s)")
    return lines


# --------------------------------------------------------------------------- main
async def captures(*specs: tuple[str, str, Path]) -> list[Capture]:
    caps = [Capture(*spec) for spec in specs]
    for c in caps:
        await asyncio.to_thread(c.wait_ready)
    return caps


async def run(lab, args, tmp: Path) -> None:
    from mhgui.daemons.engine import EngineDriver
    ctl = Ctl()
    await ctl.connect(lab.bus_address)
    nl = NlMon(lab.netns("mn"))
    nl.start()
    # the app's driver follows the daemon through the whole run, as the app would during failovers
    driver = EngineDriver(bus_address=lab.bus_address)
    await driver.start()
    mn_up1 = (lab.netns("mn"), "up1", tmp / "mn-up1.pcap")
    last_down = None
    try:
        deadline = time.monotonic() + 10
        while not driver.connected and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        await ctl.settle_on("up0", 20)
        if args.rebinds > 0:
            t = time.monotonic()
            caps = await captures((lab.netns("ar1"), "dn0", tmp / "ar1-dn0.pcap"),
                                  (lab.netns("ar2"), "dn0", tmp / "ar2-dn0.pcap"))
            lines = await part1(ctl, driver, args.rebinds, args.umip_rebinds, caps)
            print("\n".join(lines) + f"\n   ({time.monotonic() - t:.0f} s)", flush=True)
        if args.cuts > 0:
            t = time.monotonic()
            (cap,) = await captures(mn_up1)
            rows, last_down = await part2(lab, ctl, nl, args.cuts)
            up1 = await asyncio.to_thread(cap.stop)
            print("\n".join(part2_lines(rows, up1, ctl)) + f"\n   ({time.monotonic() - t:.0f} s)", flush=True)
        if args.blackholes > 0:
            t = time.monotonic()
            (cap,) = await captures(mn_up1)
            rows = await part3(lab, ctl, args.blackholes)
            up1 = await asyncio.to_thread(cap.stop)
            print("\n".join(part3_lines(rows, up1, ctl)) + f"\n   ({time.monotonic() - t:.0f} s)", flush=True)
        if args.failovers > 0:
            t = time.monotonic()
            lines = await part4(lab, ctl, nl, args.failovers, tmp, last_down)
            print("\n".join(lines) + f"\n   ({time.monotonic() - t:.0f} s)", flush=True)
    finally:
        await driver.stop()
        nl.stop()
        ctl.close()
        # whatever is left (e.g. a reader a driver's stop() did not end) must not hold up asyncio.run's end
        left = asyncio.all_tasks() - {asyncio.current_task()}
        for task in left:
            task.cancel()
        if left:
            await asyncio.wait(left, timeout=2.0)


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--helper":
        fn = HELPERS[sys.argv[2]]
        args = sys.argv[3:]
        if fn is helper_sink:
            fn(args[0], int(args[1]), args[2])
        elif fn is helper_source:
            fn(args[0], int(args[1]), args[2], float(args[3]), int(args[4]))
        else:
            fn()
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rebinds", type=int, default=10, help="engine rebinds in part 1 (default 10)")
    ap.add_argument("--umip-rebinds", type=int, default=3,
                    help="UMIP double rebinds per batch in part 1, 2 batches (default 3; 0: do not measure)")
    ap.add_argument("--cuts", type=int, default=20, help="carrier losses in part 2 (default 20)")
    ap.add_argument("--blackholes", type=int, default=10, help="blackholes in part 3 (default 10)")
    ap.add_argument("--failovers", type=int, default=20, help="failovers under the TCP stream in part 4 (default 20)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("engine failover: skipped (needs root for network namespaces)")
        return
    missing = [t for t in ("ip", "nft", "dumpcap", "dbus-daemon") if shutil.which(t) is None]
    if missing:
        print(f"engine failover: skipped ({', '.join(missing)} not installed)")
        return
    from mhgui.lab import Lab
    t_start = time.monotonic()
    on_sigterm_cleanup(_cleanup)
    tmp = Path(tempfile.mkdtemp(prefix="mhgui-bench-failover-"))
    _undo.append(lambda: shutil.rmtree(tmp, ignore_errors=True))
    Lab.down(PREFIX)
    _undo.append(lambda: Lab.down(PREFIX))
    try:
        lab = Lab.up(PREFIX)
        print(f"engine failover (lab {PREFIX}, probes every 250 ms, 3 missed = dead):", flush=True)
        asyncio.run(run(lab, args, tmp))
    finally:
        _cleanup()
    print(f"engine failover benchmark: {time.monotonic() - t_start:.0f} s in all")


if __name__ == "__main__":
    main()
