"""Support for ``tests/test_engine_lab.py``: the engine daemons in ``mhctl lab``, checked on real sockets.

- :class:`Capture`: dumpcap on an interface of a lab namespace, started with a readiness wait;
  :func:`tshark_rows` decodes a capture file (``-d udp.port==4191,ip``) into dicts;
- :func:`dbus_call` / :func:`rebind`: the mobile node's control API through ``dbus-send --system``
  on the lab's private bus (``DBUS_SYSTEM_BUS_ADDRESS``);
- :class:`LabHandle`: one lab (namespaces + daemons) with waits on the MN's and the HA's views;
- scripts run with ``ip netns exec <ns> python -c``: a paced TCP pattern stream (client in the MN,
  verifying server in the CN), a TCP echo server, a UDP datagram sender that also checks TCP.

Every process started here is ended by its pid and reaped (pytest runs with warnings as errors).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import signal
import struct
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

import mhgui.lab as labmod
from mhgui.engine import wire
from mhgui.engine.session import parse_session_option
from mhgui.lab import CN_ADDRESS, HA_HOME_ADDRESS, HOA, Lab, LabInfo
from netns import lab_why_not

MN_NAME = "io.github.mhgui.MHGui.MobileNode1"
MN_PATH = "/io/github/mhgui/MHGui/MobileNode1"
TOOLS = ("ip", "nft", "sysctl", "dbus-daemon", "dbus-send", "tshark", "dumpcap", "iperf3")
PY = sys.executable
UP = {"up0": ("ar1", "2001:db8:a1::2"), "up1": ("ar2", "192.0.2.2")}  # uplink -> (router role, CoA)


def why_not() -> str | None:
    """None when the lab tests can run here, else why not."""
    return lab_why_not(TOOLS)


def wait_for(pred, timeout: float, what: str, interval: float = 0.02):
    """``pred()``'s first truthy value within ``timeout`` s; AssertionError naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def end(p: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 5.0) -> None:
    """End a process we started (by its pid) and reap it."""
    if p.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p.pid, sig)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(p.pid, signal.SIGKILL)
            p.wait(5)
    for f in (p.stdin, p.stdout, p.stderr):
        if f is not None:
            f.close()


def pid_alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


# ----------------------------------------------------------------------------- capture and decode

class Capture:
    """``dumpcap -i iface -w path`` in namespace ``ns``; :meth:`start` returns once it captures."""

    def __init__(self, ns: str, iface: str, path: Path) -> None:
        self.ns, self.iface, self.path = ns, iface, Path(path)
        self.proc: subprocess.Popen | None = None
        self.stderr = ""

    def start(self, timeout: float = 10.0) -> Capture:
        self.proc = subprocess.Popen(["ip", "netns", "exec", self.ns, "dumpcap", "-q", "-i", self.iface,
                                      "-w", str(self.path)], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        fd = self.proc.stderr.fileno()
        deadline = time.monotonic() + timeout
        buf = b""
        while b"Capturing on" not in buf:
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                end(self.proc)
                raise AssertionError(f"dumpcap on {self.ns}/{self.iface} did not start: {buf.decode(errors='replace')}")
            if select.select([fd], [], [], left)[0]:
                chunk = os.read(fd, 4096)
                if not chunk:
                    continue
                buf += chunk
        self.stderr = buf.decode(errors="replace")
        time.sleep(0.1)  # "Capturing on" comes right after the handle is active; a little margin
        return self

    def stop(self) -> Path:
        """SIGINT (dumpcap flushes and closes the file); the file's path."""
        p, self.proc = self.proc, None
        if p is not None:
            time.sleep(0.1)  # the last packets of interest reach the capture buffer
            with contextlib.suppress(ProcessLookupError):
                os.kill(p.pid, signal.SIGINT)
            try:
                _out, err = p.communicate(timeout=10)
                self.stderr += err.decode(errors="replace")
            finally:
                end(p)
        assert self.path.exists(), f"no capture file {self.path}: {self.stderr}"
        return self.path


@contextlib.contextmanager
def capturing(lab: "LabHandle", roles: tuple[str, ...], directory: Path, tag: str = ""):
    """Captures on ``dn0`` of each access router in ``roles`` (the router's side of the MN's uplink) for the
    ``with`` block; yields the :class:`Capture` objects, always stopped (files complete) on exit."""
    caps: list[Capture] = []
    try:
        for r in roles:
            caps.append(Capture(lab.ns(r), "dn0", Path(directory) / f"{tag}{r}.pcapng").start())
        yield caps
    finally:
        for c in caps:
            c.stop()


def tshark_rows(path: Path, fields: list[str], *, decode_as: bool = True, display_filter: str | None = None,
                occurrence: str = "a") -> list[dict[str, str]]:
    """One dict per frame of ``path``: field -> text ('' when absent; several occurrences joined by ',')."""
    cmd = ["tshark", "-n", "-r", str(path)]
    if decode_as:
        cmd += ["-d", "udp.port==4191,ip"]
    if display_filter:
        cmd += ["-Y", display_filter]
    cmd += ["-T", "fields", "-E", "separator=\t", "-E", f"occurrence={occurrence}", "-E", "aggregator=,"]
    for f in fields:
        cmd += ["-e", f]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, f"{' '.join(cmd)} failed: {p.stderr}"
    rows = []
    for line in p.stdout.splitlines():
        values = line.split("\t")
        rows.append(dict(zip(fields, values + [""] * (len(fields) - len(values)))))
    return rows


# ----------------------------------------------------------------------------- D-Bus (dbus-send)

class DBusError(Exception):
    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name, self.message = name, message


def dbus_call(bus_address: str, method: str, *args: str, literal: bool = False, timeout: float = 15.0) -> str:
    """``dbus-send --system --print-reply`` of ``method`` on the MN's object; its stdout, or DBusError."""
    cmd = ["dbus-send", "--system", "--print-reply=literal" if literal else "--print-reply",
           f"--reply-timeout={int(timeout * 1000)}", f"--dest={MN_NAME}", MN_PATH, f"{MN_NAME}.{method}", *args]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 5,
                       env=dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=bus_address))
    if p.returncode != 0:
        m = re.match(r"Error (\S+): (.*)", p.stderr.strip(), re.S)
        raise DBusError(m.group(1), m.group(2)) if m else DBusError("dbus-send", p.stderr.strip())
    return p.stdout


def dbus_json(bus_address: str, method: str):
    """A method returning one JSON string (GetBindings, GetUplinks, GetStatus), decoded."""
    return json.loads(dbus_call(bus_address, method, literal=True).strip())


def flow_reply(out: str) -> dict:
    """A flow-binding method's reply (``dbus-send --print-reply``): confirmed, fid, elapsed_ms, reason."""
    vals = []
    for line in out.splitlines()[1:]:
        m = re.match(r"\s+(boolean|uint16|double|string) (.*)$", line)
        if m:
            t, v = m.groups()
            vals.append(v == "true" if t == "boolean" else int(v) if t == "uint16" else float(v)
                        if t == "double" else v[1:-1])
    assert len(vals) == 4, out
    return dict(zip(("confirmed", "fid", "elapsed_ms", "reason"), vals))


def rebind(bus_address: str, hoa: str, iface: str) -> dict:
    """``Rebind(s hoa, s iface) -> (b confirmed, d elapsed_ms, s coa, s iface, s reason)``."""
    out = dbus_call(bus_address, "Rebind", f"string:{hoa}", f"string:{iface}")
    vals = []
    for line in out.splitlines()[1:]:
        m = re.match(r"\s+(boolean|double|string) (.*)$", line)
        if m:
            t, v = m.groups()
            vals.append(v == "true" if t == "boolean" else float(v) if t == "double" else v[1:-1])
    assert len(vals) == 5, f"unexpected Rebind reply: {out!r}"
    return dict(zip(("confirmed", "elapsed_ms", "coa", "iface", "reason"), vals))


# ----------------------------------------------------------------------------- the lab

@dataclass
class Move:
    """One move of the binding: ``how`` ("rebind", or "cut"/"restore" when Rebind was refused),
    monotonic ``t_request``/``t_done``, their wall-clock twins (capture timestamps), Rebind's reply."""
    to: str
    how: str
    t_request: float
    t_done: float
    wall_request: float
    wall_done: float
    reply: dict = field(default_factory=dict)


class LabHandle:
    """The module's lab: ``prefix``, ``info`` (LabInfo) and helpers on it."""

    def __init__(self, prefix: str, info: LabInfo) -> None:
        self.prefix, self.info = prefix, info
        self.state = Path(info.state_dir)
        self.bus = info.bus_address
        self.rebind_refused: str | None = None  # Rebind's NotAuthorized message, once seen

    def ns(self, role: str) -> str:
        return f"{self.prefix}-{role}"

    # ---- views
    def mn_binding(self) -> dict:
        (b,) = [b for b in dbus_json(self.bus, "GetBindings") if b["hoa"] == HOA]
        return b

    def mn_uplinks(self) -> dict[str, dict]:
        return {u["name"]: u for u in dbus_json(self.bus, "GetUplinks")}

    def ha_status(self) -> dict:
        """The home agent's ``bindings.json`` (rewritten by it at most once a second)."""
        for _ in range(20):
            with contextlib.suppress(OSError, ValueError):
                return json.loads((self.state / "ha-state" / "bindings.json").read_text())
            time.sleep(0.05)
        raise AssertionError("cannot read the home agent's bindings.json")

    def ha_binding(self) -> dict | None:
        bs = [b for b in self.ha_status()["bindings"] if b["hoa"] == HOA]
        return bs[0] if bs else None

    def registered_on(self, iface: str) -> bool:
        b = self.mn_binding()
        return b["state"] == "registered" and b["interface"] == iface and b["pending_interface"] is None

    def wait_registered(self, iface: str, timeout: float = 10.0) -> float:
        """Until the MN says the HoA is registered through ``iface``; the monotonic time it was seen."""
        wait_for(lambda: self.registered_on(iface), timeout, f"the binding to be registered through {iface}",
                 interval=0.01)
        return time.monotonic()

    def wait_ha_coa(self, coa: str, timeout: float = 5.0) -> dict:
        def ok():
            b = self.ha_binding()
            return b if b is not None and b["coa"] == coa else None
        return wait_for(ok, timeout, f"bindings.json to show the CoA {coa}", interval=0.1)

    def settle(self, timeout: float = 15.0) -> None:
        """Both uplinks restored, the HoA registered through up0 and the HA reachable through both."""
        for u in UP:
            Lab.restore(self.prefix, u)
        if self.rebind_refused is None and not self.registered_on("up0"):
            with contextlib.suppress(DBusError, AssertionError):
                self.move("up0")

        def settled():
            ups = self.mn_uplinks()
            return self.registered_on("up0") and all(ups[u]["reachable"] is True for u in UP)
        wait_for(settled, timeout, "the binding on up0 with both uplinks reachable", interval=0.05)

    def move(self, to: str, timeout: float = 10.0) -> Move:
        """Move the binding to uplink ``to`` with Rebind; when Rebind is refused (NotAuthorized), with the
        lab instead: to up1 = cut up0, to up0 = restore up0 (the MN's first preference comes back)."""
        t0, w0 = time.monotonic(), time.time()
        if self.rebind_refused is None:
            try:
                reply = rebind(self.bus, HOA, to)
            except DBusError as e:
                if not e.name.endswith("NotAuthorized"):
                    raise
                self.rebind_refused = e.message
                t0, w0 = time.monotonic(), time.time()
            else:
                t1, w1 = time.monotonic(), time.time()
                assert reply["confirmed"], f"Rebind to {to} not confirmed: {reply}"
                assert reply["iface"] == to and reply["coa"] == UP[to][1], reply
                assert self.registered_on(to), self.mn_binding()
                return Move(to, "rebind", t0, t1, w0, w1, reply)
        if to == "up1":
            Lab.cut(self.prefix, "up0")
            how = "cut"
        else:
            Lab.restore(self.prefix, "up0")
            how = "restore"
        t1 = self.wait_registered(to, timeout)
        return Move(to, how, t0, t1, w0, time.time())

    # ---- the home agent daemon
    def ha_pid(self) -> int:
        return self.info.pids["ha"]

    def restart_ha(self) -> int:
        """SIGTERM the home agent and start it again exactly as the lab does (``ip netns exec <P>-ha
        <venv>/bin/mhgui-ha --config <state>/ha.toml``, log appended to ha.log); the new pid."""
        old = self.ha_pid()
        os.kill(old, signal.SIGTERM)
        wait_for(lambda: not labmod._alive(old), 10, "the home agent to stop")  # _alive reaps the lab's child
        cmd = labmod._daemon_command("mhgui-ha", "mhgui.engine.had")
        pid = labmod._start_daemon(self.ns("ha"), cmd, self.state / "ha.toml", self.state / "ha.log", self.bus)
        self.info.pids["ha"] = pid
        Lab._save(self.info)
        return pid

    def log(self, role: str) -> str:
        return (self.state / f"{role}.log").read_text(errors="replace")


# ----------------------------------------------------------------------------- namespace scripts

@contextlib.contextmanager
def lab_up(prefix: str, **up):
    """A module's lab, settled: ``mhctl lab up`` with ``prefix`` (``up``: :meth:`mhgui.lab.Lab.up`'s options)
    as a :class:`LabHandle`; a leftover of a crashed run with the same prefix is taken down first, and the lab
    is taken down at the end, also when it did not come up."""
    if Lab.is_up(prefix):
        Lab.down(prefix)
    try:
        handle = LabHandle(prefix, Lab.up(prefix, **up))
        handle.settle()
        yield handle
    finally:
        Lab.down(prefix)


def ns_popen(ns: str, script: str, *args: str, **kw) -> subprocess.Popen:
    """``ip netns exec ns python -c script args`` with pipes for stdin/stdout (text)."""
    return subprocess.Popen(["ip", "netns", "exec", ns, PY, "-c", script, *args], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def read_line(p: subprocess.Popen, timeout: float = 10.0) -> str:
    """One line of ``p``'s stdout within ``timeout`` s (its stderr in the error otherwise)."""
    if select.select([p.stdout], [], [], timeout)[0]:
        line = p.stdout.readline()
        if line:
            return line.strip()
    end(p)
    raise AssertionError(f"no output from {p.args[:5]}: {p.stderr.read() if p.stderr else ''}")


PATTERN = r"""
import sys
from array import array
def pattern(off, n):
    # the stream is the sequence of 64-bit big-endian counters 0, 1, 2, ...: bytes off .. off+n
    w0 = off // 8
    a = array("Q", range(w0, (off + n + 7) // 8))
    if sys.byteorder == "little":
        a.byteswap()
    s = off - w0 * 8
    return a.tobytes()[s:s + n]
"""

STREAM_SERVER = PATTERN + r"""
import json, socket, time
host = sys.argv[1]
ls = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind((host, 0))
ls.listen(1)
print(ls.getsockname()[1], flush=True)
ls.settimeout(30)
out = {"received": 0, "ok": True, "bad_at": None, "error": None, "peer": None, "times": []}
times, off = out["times"], 0
try:
    c, peer = ls.accept()
    out["peer"] = peer[0]
    c.settimeout(60)
    buf = bytearray(1 << 18)
    while True:
        n = c.recv_into(buf)
        if n == 0:
            break
        times.append(round(time.monotonic(), 5))
        if out["ok"]:
            got, want = bytes(buf[:n]), pattern(off, n)
            if got != want:
                out["ok"] = False
                out["bad_at"] = off + next(i for i in range(n) if got[i] != want[i])
        off += n
    c.close()
except Exception as e:
    out["error"] = f"{type(e).__name__}: {e}"
out["received"] = off
print(json.dumps(out), flush=True)
"""

STREAM_CLIENT = PATTERN + r"""
import json, select, socket, time
host, port, rate, limit = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
out = {"sent": 0, "error": None, "local": None}
chunk, off = 16384, 0
try:
    s = socket.create_connection((host, port), timeout=10)
    out["local"] = s.getsockname()[0]
    s.settimeout(30)
    print("connected", s.getsockname()[1], flush=True)
    start = time.monotonic()
    while True:
        if select.select([sys.stdin], [], [], 0)[0]:
            break
        now = time.monotonic()
        if now - start > limit:
            out["error"] = "ran longer than the limit"
            break
        due = rate * (now - start)
        if off >= due:
            time.sleep(min(0.004, (off - due) / rate))
            continue
        if due - off > rate * 0.25:  # after a stall, catch up by at most 0.25 s worth of data
            start = now - (off + rate * 0.25) / rate
        s.sendall(pattern(off, chunk))
        off += chunk
    s.shutdown(socket.SHUT_WR)
    while s.recv(4096):
        pass
    s.close()
except Exception as e:
    out["error"] = f"{type(e).__name__}: {e}"
out["sent"] = off
print(json.dumps(out), flush=True)
"""


class Stream:
    """A paced TCP pattern stream MN (HoA, the default source) -> CN, verified byte by byte at the CN."""

    def __init__(self, lab: LabHandle, rate: float = 3e6, limit: float = 120.0) -> None:
        self.server = ns_popen(lab.ns("cn"), STREAM_SERVER, CN_ADDRESS)
        port = read_line(self.server)
        self.server_port = int(port)
        self.client = ns_popen(lab.ns("mn"), STREAM_CLIENT, CN_ADDRESS, port, str(rate), str(limit))
        try:
            line = read_line(self.client)
            assert line.startswith("connected "), f"the stream client did not connect: {line}"
            self.client_port = int(line.split()[1])
        except BaseException:
            end(self.server)
            raise
        self.result: dict | None = None

    def stop(self) -> dict:
        """End the stream; ``{"client": ..., "server": ...}`` (server: received, ok, bad_at, error, peer, times)."""
        try:
            c_out, c_err = self.client.communicate("stop\n", timeout=60)
            s_out, s_err = self.server.communicate(timeout=60)
        finally:
            end(self.client)
            end(self.server)
        assert c_out.strip() and s_out.strip(), f"stream ended without a report: {c_err} {s_err}"
        self.result = {"client": json.loads(c_out.strip().splitlines()[-1]),
                       "server": json.loads(s_out.strip().splitlines()[-1])}
        return self.result

    def close(self) -> None:
        end(self.client)
        end(self.server)

    def longest_stall(self, start: float, stop: float) -> float:
        """Largest gap between two consecutive arrivals at the CN that begins in [start, stop) (monotonic s;
        consecutive phases do not share a gap); inf when nothing arrived then."""
        t = self.result["server"]["times"]
        gaps = [b - a for a, b in zip(t, t[1:]) if start <= a < stop]
        return max(gaps) if gaps else float("inf")


ECHO_SERVER = r"""
import socket, sys, threading
ls = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind((sys.argv[1], 0))
ls.listen(16)
print(ls.getsockname()[1], flush=True)
def serve(c):
    with c:
        c.settimeout(10)
        try:
            while True:
                d = c.recv(65536)
                if not d:
                    return
                c.sendall(d)
        except OSError:
            pass
while True:
    c, _ = ls.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"""

# stdin: {"bind": [addr, port], "to": [addr, port], "datagrams": [hex...], "listen": s, "echo": [addr, port]}
# stdout: {"sent": [len...], "replies": [[len, hex]...], "tcp": {"ok", "local", "error"}}
SENDER = r"""
import json, os, socket, sys, time
req = json.loads(sys.stdin.read())
fam = socket.AF_INET6 if ":" in req["to"][0] else socket.AF_INET
s = socket.socket(fam, socket.SOCK_DGRAM)
s.bind(tuple(req["bind"]))
out = {"sent": [], "replies": [], "tcp": None}
for h in req["datagrams"]:
    d = bytes.fromhex(h)
    s.sendto(d, tuple(req["to"]))
    out["sent"].append(len(d))
    time.sleep(0.002)
deadline = time.monotonic() + req["listen"]
while True:
    left = deadline - time.monotonic()
    if left <= 0:
        break
    s.settimeout(left)
    try:
        data, peer = s.recvfrom(65535)
    except socket.timeout:
        break
    except OSError as e:  # e.g. an ICMP error queued on the socket
        out["replies"].append([-1, str(e)])
        continue
    out["replies"].append([len(data), data.hex()])
tcp = {"ok": False, "local": None, "error": None}
try:
    c = socket.create_connection(tuple(req["echo"]), timeout=5)
    tcp["local"] = c.getsockname()[0]
    c.settimeout(5)
    blob = os.urandom(65536)
    c.sendall(blob)
    got = b""
    while len(got) < len(blob):
        d = c.recv(65536)
        if not d:
            break
        got += d
    c.close()
    tcp["ok"] = got == blob
except Exception as e:
    tcp["error"] = f"{type(e).__name__}: {e}"
out["tcp"] = tcp
print(json.dumps(out), flush=True)
"""

# a UDP listener: prints {"port": n}, then after argv[2] s {"got": [[src, data hex]...]}
UDP_LISTENER = r"""
import json, socket, sys, time
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 0))
print(json.dumps({"port": s.getsockname()[1]}), flush=True)
got, deadline = [], time.monotonic() + float(sys.argv[2])
while True:
    left = deadline - time.monotonic()
    if left <= 0:
        break
    s.settimeout(left)
    try:
        d, peer = s.recvfrom(65535)
    except socket.timeout:
        break
    got.append([peer[0], d.hex()])
print(json.dumps({"got": got}), flush=True)
"""


def send_datagrams(lab: LabHandle, datagrams: list[bytes], echo_port: int, *, bind: str = UP["up0"][1],
                   to: str = "2001:db8:f0::10", listen: float = 0.3) -> dict:
    """Send ``datagrams`` from a UDP socket in the MN bound to ``bind`` to the HA (port 4191), collect
    replies for ``listen`` s, then check a TCP echo round trip MN -> CN; the sender's report."""
    req = {"bind": [bind, 0], "to": [to, 4191], "datagrams": [d.hex() for d in datagrams], "listen": listen,
           "echo": [CN_ADDRESS, echo_port]}
    p = subprocess.run(["ip", "netns", "exec", lab.ns("mn"), PY, "-c", SENDER], input=json.dumps(req),
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, f"sender failed: {p.stderr}"
    return json.loads(p.stdout.strip().splitlines()[-1])


__all__ = ["CN_ADDRESS", "Capture", "capturing", "DBusError", "ECHO_SERVER", "HA_HOME_ADDRESS", "HOA", "LabHandle", "Move",
           "Stream", "UDP_LISTENER", "UP", "dbus_call", "dbus_json", "end", "ns_popen", "pid_alive", "read_line",
           "rebind", "send_datagrams", "tshark_rows", "wait_for", "why_not"]


# ----------------------------------------------------------------------------- decrypting the data plane (MCoA tests, benchmarks)
FRAME_FIELDS = ["frame.time_epoch", "ip.src", "ipv6.src", "udp.srcport", "udp.dstport", "udp.payload"]


def udp_frames(path: Path) -> list[dict]:
    return tshark_rows(path, FRAME_FIELDS, decode_as=False, display_filter="udp.port == 4191")


def _hkdf(key: bytes, salt: bytes, info: bytes) -> bytes:
    return HKDF(hashes.SHA256(), 32, salt, info).derive(key)


class Decryptor:
    """Opens the data frames of a capture (docs/engine-design.md, "Data frame"): keys from the nonces of the
    captured BU/BA pairs and the node's key; frames are keyed by their receiver index."""

    def __init__(self, key: bytes) -> None:
        self.key = key
        self.by_index: dict[int, ChaCha20Poly1305] = {}
        self.bus: dict[int, tuple[bytes, int]] = {}  # BU seq -> (mn nonce, mn index)

    def signalling(self, payload: bytes) -> None:
        src, dst, mh = wire.decode_packet(payload)
        msg = wire.decode_mh(mh, src, dst)
        sess = parse_session_option(msg.option(wire.VendorSpecific))
        if sess is None:
            return
        if isinstance(msg, wire.BindingUpdate):
            self.bus[msg.seq] = sess
        elif isinstance(msg, wire.BindingAck) and msg.seq in self.bus:
            (mn_nonce, mn_index), (ha_nonce, ha_index) = self.bus[msg.seq], sess
            salt = mn_nonce + ha_nonce
            self.by_index[ha_index] = ChaCha20Poly1305(_hkdf(self.key, salt, b"mhgui data v1 mn->ha"))
            self.by_index[mn_index] = ChaCha20Poly1305(_hkdf(self.key, salt, b"mhgui data v1 ha->mn"))

    def open(self, frame: bytes) -> bytes | None:
        if len(frame) < 32 or frame[0] != 1:
            return None
        aead = self.by_index.get(struct.unpack_from(">I", frame, 4)[0])
        if aead is None:
            return None
        try:
            return aead.decrypt(b"\0" * 4 + frame[8:16], frame[16:], frame[:16])
        except InvalidTag:
            return None


def opened_frames(key: bytes, captures: dict[str, Path]):
    """(link, tshark row, inner packet) of every data frame of the captures that opens with the session keys
    of the BU/BA pairs captured on any of the links (signalling first, on whichever link it went)."""
    rows = {link: udp_frames(p) for link, p in captures.items()}
    dec = Decryptor(key)
    for rs in rows.values():
        for r in rs:
            payload = bytes.fromhex(r["udp.payload"])
            if payload and payload[0] >> 4 == 6:
                dec.signalling(payload)
    for link, rs in rows.items():
        for r in rs:
            inner = dec.open(bytes.fromhex(r["udp.payload"]))
            if inner is not None:
                yield link, r, inner


def flows_on_the_wire(key: bytes, captures: dict[str, Path], after: float) -> dict:
    """{(link, direction, (src port, dst port) of the inner TCP/UDP packet)}: count} for every data frame after
    ``after`` (epoch s) that opens. Direction "up" = towards the home agent."""
    seen: dict = {}
    for link, r, inner in opened_frames(key, captures):
        if float(r["frame.time_epoch"]) < after or len(inner) < 44 or inner[6] not in (6, 17):
            continue
        direction = "up" if r["udp.dstport"] == "4191" else "down"
        k = (link, direction, struct.unpack_from(">HH", inner, 40))
        seen[k] = seen.get(k, 0) + 1
    return seen


UDP_PEER = r"""
import json, socket, sys, time
mine, port, peer, peer_port, n, rate = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6])
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
s.bind((mine, port))
s.setblocking(False)
print("ready", flush=True)
sys.stdin.readline()
got, dups, sent, intended = set(), 0, 0, 0
start = time.monotonic()
last_send = None
while True:
    now = time.monotonic()
    if sent < n and now - start >= sent / rate:
        d = sent.to_bytes(4, "big") + b"x" * 100
        s.sendto(d, (peer, peer_port))
        if sent % 100 == 50:  # 1 % intentional duplicates: the application sends the same datagram twice
            s.sendto(d, (peer, peer_port))
            intended += 1
        sent += 1
        last_send = now
        continue
    if sent >= n and now - last_send > 2.0:
        break
    try:
        data, _a = s.recvfrom(2048)
    except BlockingIOError:
        time.sleep(0.0005)
        continue
    k = int.from_bytes(data[:4], "big")
    if k in got:
        dups += 1
    got.add(k)
print(json.dumps({"sent": sent, "intended": intended, "received": len(got), "dups": dups,
                  "missing": sorted(set(range(n)) - got)[:20]}), flush=True)
"""
