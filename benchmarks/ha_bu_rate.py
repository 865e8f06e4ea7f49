"""Binding Updates the home agent handles per second with 1,000 mobile nodes registered.

Two measurements, each beside its floor in the same run:
- **core**: :class:`~mhgui.engine.ha.HomeAgentCore` fed authenticated BUs
  (refreshes of 1,000 registered nodes) as bytes; floor: the unavoidable wire
  work alone (decode the IPv6 packet and the Mobility Header, verify the
  RFC 4285 authenticator) on the same BUs;
- **daemon**: `mhgui-ha` in a network namespace, 1,000 nodes in its ha.toml with
  their key files, BUs sent over UDP on the namespace's loopback in windows of
  64; BAs counted by the sender.
Needs root for the daemon part. Usage: python benchmarks/ha_bu_rate.py [NODES] [ROUNDS]
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from _common import on_sigterm_cleanup  # noqa: E402

from mhgui.engine import wire  # noqa: E402
from mhgui.engine.ha import HaNode, HomeAgentCore  # noqa: E402
from mhgui.engine.session import session_option  # noqa: E402

HA_HOME = "2001:db8:10::1"
PREFIX = "2001:db8:10::/64"


def node(i: int) -> tuple[str, bytes, str]:
    return f"mn{i}@bench.mhgui.invalid", (i.to_bytes(4, "big") * 8), str(ipaddress.IPv6Address("2001:db8:10::") + 0x1000 + i)


def make_bus(nodes: int, per_node: int, wall: float, seq0: int = 1) -> list[bytes]:
    """``per_node`` BUs for each node, interleaved, timestamps increasing per node, all within the skew."""
    out = []
    ha16 = wire.addr16(HA_HOME)
    for k in range(per_node):
        for i in range(nodes):
            ident, key, hoa = node(i)
            coa = str(ipaddress.IPv6Address("2001:db8:aa::") + i)
            ts = int((wall + k * 0.001) * (1 << 32)) + i
            msg = wire.BindingUpdate(seq0 + k, wire.BU_A | wire.BU_H, 150, options=(
                wire.AlternateCareOf(coa), wire.ReplayProtection(ts), session_option(os.urandom(16), i + 1)))
            hoa16 = wire.addr16(hoa)
            mh = wire.encode_authenticated(msg, hoa16, ha16, coa=coa, key=key, spi=256 + i, identity=ident, hoa=hoa16)
            out.append(wire.encode_packet(mh, hoa16, ha16))
    return out


def core_rate(nodes: int) -> tuple[float, float]:
    """(BUs/s through the core, BUs/s of the floor), 1,000 registered nodes refreshing."""
    wall = time.time()
    ha_nodes = [HaNode(node(i)[0], frozenset({wire.addr16(node(i)[2])}), {256 + i: node(i)[1]}) for i in range(nodes)]
    core = HomeAgentCore(address=HA_HOME, home_prefix=PREFIX, nodes=ha_nodes, start_wall=wall - 10,
                         restart_counter=1, max_lifetime=600)
    first = make_bus(nodes, 1, wall)
    for p in first:
        core.datagram(p, ("2001:db8:aa::1", 4191), 0.0, wall)
    assert len(core.cache) == nodes, f"only {len(core.cache)} of {nodes} registered"
    bus = make_bus(nodes, 3, wall + 0.5, seq0=2)
    keys = {wire.addr16(node(i)[2]): node(i)[1] for i in range(nodes)}

    def floor() -> None:
        for p in bus:
            src, dst, mh = wire.decode_packet(p)
            msg = wire.decode_mh(mh, src, dst)
            wire.verify_authenticator(mh, coa=msg.option(wire.AlternateCareOf).address, hoa=src, key=keys[src])

    t0 = time.perf_counter()
    floor()
    t_floor = time.perf_counter() - t0
    t0 = time.perf_counter()
    for p in bus:
        core.datagram(p, ("2001:db8:aa::1", 4191), 1.0, wall + 1)
    t_core = time.perf_counter() - t0
    refused = sum(v for k, v in core.counters.items() if k.startswith("ba-1"))
    assert core.counters["registrations"] == nodes + len(bus) and not refused, dict(core.counters)
    return len(bus) / t_core, len(bus) / t_floor


def daemon_rate(nodes: int) -> float | None:
    """BAs/s from a real mhgui-ha with ``nodes`` nodes configured and registered."""
    if os.geteuid() != 0:
        return None
    ns = f"mhbu{os.getpid() % 10000}"
    tmp = Path(tempfile.mkdtemp(prefix="mhgui-bench-ha-"))
    proc = None

    def cleanup() -> None:
        if proc is not None and proc.poll() is None:
            proc.terminate()
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)

    on_sigterm_cleanup(cleanup)
    try:
        subprocess.run(["ip", "netns", "add", ns], check=True)
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        keys = tmp / "keys"
        keys.mkdir(mode=0o700)
        lines = ['[home_agent]', 'listen = ["::1"]', 'port = 4191', f'address = "{HA_HOME}"',
                 f'home_prefix = "{PREFIX}"', 'tun = "mhha0"', 'max_lifetime = 600', 'skew = 7',
                 f'state_dir = "{tmp / "state"}"', 'log_rate_s = 60']
        for i in range(nodes):
            ident, key, hoa = node(i)
            kf = keys / f"n{i}.key"
            fd = os.open(kf, os.O_WRONLY | os.O_CREAT, 0o600)
            os.write(fd, key.hex().encode() + b"\n")
            os.close(fd)
            lines += ["[[node]]", f'identity = "{ident}"', f'home_addresses = ["{hoa}"]', "[[node.key]]",
                      f"spi = {256 + i}", f'file = "{kf}"']
        (tmp / "ha.toml").write_text("\n".join(lines) + "\n")
        exe = Path(sys.executable).parent / "mhgui-ha"
        cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "mhgui.engine.had"]
        proc = subprocess.Popen(["ip", "netns", "exec", ns, *cmd, "--config", str(tmp / "ha.toml")],
                                stdout=subprocess.DEVNULL, stderr=open(tmp / "ha.log", "w"))
        sender = [sys.executable, str(HERE / "ha_bu_rate.py"), "--send", str(nodes)]
        deadline = time.monotonic() + 20
        while not (tmp / "state" / "bindings.json").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        out = subprocess.run(["ip", "netns", "exec", ns, *sender], capture_output=True, text=True, timeout=300)
        if out.returncode != 0:
            print(out.stderr[-2000:], (tmp / "ha.log").read_text()[-2000:], file=sys.stderr)
            return None
        return float(out.stdout.split()[-1])
    finally:
        cleanup()


def send(nodes: int) -> None:
    """(In the namespace) register every node, then send 3 refreshes each in windows of 64; print BAs/s."""
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.bind(("::1", 0))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    s.settimeout(2.0)
    wall = time.time()

    def blast(packets: list[bytes]) -> tuple[int, float]:
        got = 0
        t0 = time.perf_counter()
        for i in range(0, len(packets), 64):
            window = packets[i:i + 64]
            for p in window:
                s.sendto(p, ("::1", 4191))
            for _ in window:
                try:
                    s.recv(4096)
                    got += 1
                except socket.timeout:
                    break
        return got, time.perf_counter() - t0

    got, _ = blast(make_bus(nodes, 1, wall))
    if got != nodes:
        sys.exit(f"only {got} of {nodes} registrations acknowledged")
    got, elapsed = blast(make_bus(nodes, 3, wall + 0.5, seq0=2))
    print(f"{got / elapsed:.0f}")


def main() -> None:
    if sys.argv[1:2] == ["--send"]:
        send(int(sys.argv[2]))
        return
    nodes = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    core, floor, daemon = [], [], []
    for _ in range(rounds):
        c, f = core_rate(nodes)
        core.append(c)
        floor.append(f)
        d = daemon_rate(nodes)
        if d is not None:
            daemon.append(d)
    print(f"home agent Binding Updates per second, {nodes} nodes registered ({rounds} runs, medians):")
    print(f"  core   {statistics.median(core):8.0f} BU/s; floor (decode + verify only) {statistics.median(floor):8.0f}"
          f" BU/s; core / floor = {statistics.median(core) / statistics.median(floor):.2f}")
    if daemon:
        print(f"  daemon {statistics.median(daemon):8.0f} BU/s answered over UDP (runs: "
              f"{', '.join(f'{x:.0f}' for x in daemon)}); daemon / core = "
              f"{statistics.median(daemon) / statistics.median(core):.2f}")
    else:
        print("  daemon: skipped (needs root for a network namespace)")


if __name__ == "__main__":
    main()
