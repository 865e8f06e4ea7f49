"""Marked steering rules never take home-address connections (issue 15.6, the mobility contract).

A marked rule (here ``tcp`` via up0) realised with nft marks and masquerade took a socket bound to the
home address out natively, masqueraded to the care-of address: outside the home agent's tunnel and the
engine's encryption, and dead at the next move. :mod:`mhgui.core.steering_nft` now returns early for a
packet whose route leaves through a TUN device with one of that device's own addresses as source (see
its docstring, "Home addresses", also for unbound sockets: on the engine's node they get the HoA from
``connect()`` and then are HoA connections, so they stay in the tunnel too).

Pure: the ruleset text (the line, its place before every rule's line, nft's check mode accepts it).
Real: ``mhctl lab`` (engine MN and HA, CN) with the helper's steering engine working in the MN's
namespace (nft through ``nsenter --net``): the CN sees the HoA for a socket bound to it and for an
unbound one, the home agent's wire carries their packets (tshark), the bound one survives a move of
the binding off up0 (up0 cut); a socket bound to up0's care-of address follows the rule (the rule's
counter counts it, and only it).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mhgui.core import steering as core
from mhgui.core.steering_nft import (
    HOME_DEVICE_KINDS,
    KEEP_MASK,
    MARK_MASK,
    MarkedRule,
    home_line,
    render_add,
    render_ruleset,
)

sys.path.insert(0, str(Path(__file__).parent))


# --------------------------------------------------------------------------- pure


def test_the_ruleset_leaves_home_addresses_alone_before_any_rule():
    m = core.check_request({"interface": "up0", "protocol": "tcp"}, rule_id="t1", now=1.0)
    n = core.check_request({"interface": "up1", "protocol": "udp", "ports": "53"}, rule_id="u1", now=1.0)
    text = render_ruleset([MarkedRule(m, 1, "up0", frozenset({4, 6})), MarkedRule(n, 2, "up1", frozenset({4}))])
    select = text.split("  chain select {\n", 1)[1].split("  }\n", 1)[0].splitlines()
    assert "tun" in HOME_DEVICE_KINDS
    home = [i for i, line in enumerate(select) if "meta oifkind" in line]
    marks = [i for i, line in enumerate(select) if "ct mark set" in line]
    assert len(home) == 1 and marks and home[0] < min(marks), select
    assert select[home[0]].strip() == home_line() == 'meta oifkind "tun" fib saddr . oif type local return'
    # a rule appended later goes to the end of select: after the home line, never before it
    assert all(line.startswith("add rule inet mhgui select ") or "chain" in line or "set" in line
               for line in render_add(MarkedRule(n, 2, "up1", frozenset({4}))).splitlines())
    # the named masks: mhgui's bits and the bits it keeps for others
    assert MARK_MASK == core.MARK_MASK == 0x3F00_0000 and KEEP_MASK == 0xC0FF_FFFF and MARK_MASK & KEEP_MASK == 0
    assert all(core.mark_of_slot(s) & ~MARK_MASK == 0 for s in (1, core.MAX_MARK_SLOT))
    if shutil.which("nft"):  # nft itself accepts it (check mode, no kernel change)
        p = subprocess.run(["nft", "-c", "-f", "-"], input=render_ruleset(
            [MarkedRule(m, 1, "up0", frozenset({4, 6}))], exists=False), capture_output=True, text=True)
        assert p.returncode == 0, p.stderr


# --------------------------------------------------------------------------- the lab

from enginelab import (  # noqa: E402
    CN_ADDRESS, HOA, UP, Capture, LabHandle, end, lab_up, ns_popen, read_line, tshark_rows, why_not,
)
from mhgui.lab import Lab  # noqa: E402

PREFIX = os.environ.get("MHGUI_HOA_LAB_PREFIX") or f"hoa{os.getpid() % 1000}"
COA0 = UP["up0"][1]

#: CN: accept connections; answer each line with the peer address the CN sees.
PEER_SERVER = r"""
import socket, sys, threading
ls = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind((sys.argv[1], 0))
ls.listen(16)
print(ls.getsockname()[1], flush=True)
def serve(c, peer):
    f = c.makefile("rwb")
    for line in f:
        f.write(peer[0].encode() + b"\n")
        f.flush()
while True:
    c, peer = ls.accept()
    threading.Thread(target=serve, args=(c, peer), daemon=True).start()
"""

#: MN: "open NAME BIND" (BIND "-" = unbound) connects to the CN and prints "NAME LOCAL-ADDR PORT";
#: "ask NAME" prints "NAME PEER" (the address the CN saw) or "NAME error ...".
PEER_CLIENT = r"""
import socket, sys
host, port = sys.argv[1], int(sys.argv[2])
socks = {}
for line in sys.stdin:
    cmd, name, *rest = line.split()
    try:
        if cmd == "open":
            s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            if rest[0] != "-":
                s.bind((rest[0], 0))
            s.settimeout(10)
            s.connect((host, port))
            socks[name] = (s, s.makefile("rwb"))
            print(name, *s.getsockname()[:2], flush=True)
        else:
            s, f = socks[name]
            f.write(b"?\n")
            f.flush()
            print(name, f.readline().decode().strip() or "error: closed", flush=True)
    except Exception as e:
        print(name, "error", type(e).__name__, e, flush=True)
"""


@pytest.fixture(scope="module")
def lab():
    if why_not():
        pytest.skip(why_not())
    if shutil.which("nsenter") is None:
        pytest.skip("needs nsenter")
    with lab_up(PREFIX) as handle:
        yield handle


class Peers:
    """The CN's peer server and the MN's client (see the scripts above)."""

    def __init__(self, lab: LabHandle) -> None:
        self.server = ns_popen(lab.ns("cn"), PEER_SERVER, CN_ADDRESS)
        try:
            self.port = int(read_line(self.server))
            self.client = ns_popen(lab.ns("mn"), PEER_CLIENT, CN_ADDRESS, str(self.port))
        except BaseException:
            end(self.server)
            raise

    def _say(self, line: str) -> list[str]:
        self.client.stdin.write(line + "\n")
        self.client.stdin.flush()
        return read_line(self.client, 15).split()

    def open(self, name: str, bind: str | None) -> tuple[str, int]:
        got = self._say(f"open {name} {bind or '-'}")
        assert got[0] == name and got[1] != "error", got
        return got[1], int(got[2])

    def ask(self, name: str) -> str:
        got = self._say(f"ask {name}")
        assert got[0] == name and got[1] != "error", f"the connection {name} failed: {got}"
        return got[1]

    def close(self) -> None:
        end(self.client)
        end(self.server)


def _nft(lab: LabHandle, *args: str) -> str:
    return subprocess.run(["nsenter", f"--net=/run/netns/{lab.ns('mn')}", "nft", *args], capture_output=True,
                          text=True, check=True).stdout


def _rule_packets(lab: LabHandle, rule_id: str) -> int:
    text = _nft(lab, "list", "chain", "inet", "mhgui", "select")
    (line,) = [x for x in text.splitlines() if f'"mhgui:{rule_id}"' in x]
    return int(line.split("counter packets ", 1)[1].split()[0])


@pytest.mark.netns
def test_a_tcp_rule_leaves_home_address_connections_in_the_tunnel(lab, tmp_path):
    from mhgui.helper.steering import SteeringEngine

    eng = SteeringEngine(str(tmp_path / "state"), netns=lab.ns("mn"))
    peers = cap = None
    try:
        rule = eng.add({"interface": "up0", "protocol": "tcp"})
        assert eng.kernel_matches()[rule.id], eng.listing()
        assert home_line().replace(" return", "") in _nft(lab, "list", "chain", "inet", "mhgui", "select")
        peers = Peers(lab)
        cap = Capture(lab.ns("ha"), "wan0", tmp_path / "ha.pcapng").start()
        _, hoa_port = peers.open("hoa", HOA)
        _, free_port = peers.open("free", None)
        assert peers.ask("hoa") == HOA  # the CN sees the home address: through the tunnel, not masqueraded
        assert peers.ask("free") == HOA  # unbound: connect() chose the HoA (the default source): stays too
        assert _rule_packets(lab, rule.id) == 0  # neither was marked
        local, coa_port = peers.open("coa", COA0)
        assert local == COA0 and peers.ask("coa") == COA0
        assert _rule_packets(lab, rule.id) >= 1  # the care-of socket follows the rule
        time.sleep(0.5)  # (dumpcap writes what it got when stopped; give the last packets time to arrive)
        cap.stop()
        rows = tshark_rows(cap.path, ["ipv6.src", "tcp.srcport"], decode_as=False,
                           display_filter=f"tcp.dstport == {peers.port}")
        via_ha = {(r["ipv6.src"], int(r["tcp.srcport"])) for r in rows}
        assert (HOA, hoa_port) in via_ha and (HOA, free_port) in via_ha, \
            (via_ha, subprocess.run(["tshark", "-n", "-r", str(cap.path)], capture_output=True,
                                    text=True).stdout[-2000:])
        assert not any(port == coa_port for _, port in via_ha), via_ha  # the CoA one went direct
        # the binding moves off up0 (up0 cut): the home-address connection goes on through up1
        Lab.cut(lab.prefix, "up0")
        lab.wait_registered("up1", timeout=15)
        assert peers.ask("hoa") == HOA and peers.ask("free") == HOA
        # and back with the engine's Rebind (the lab's restore of up0 when Rebind is refused)
        Lab.restore(lab.prefix, "up0")
        lab.move("up0")
        assert peers.ask("hoa") == HOA and peers.ask("free") == HOA and peers.ask("coa") == COA0
    finally:
        if cap is not None and cap.proc is not None:
            cap.stop()
        if peers is not None:
            peers.close()
        eng.clear_kernel()
        Lab.restore(lab.prefix, "up0")

