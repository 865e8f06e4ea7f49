"""The UMIP test double (tests/umipdouble) against umip.md, in and out of network namespaces.

The netns tests build a node namespace with two uplinks (veth pairs into a peer
namespace that routes for both and holds the home agent address), run the
double as a mobile node there and as a home-agent stand-in in the peer, and talk
to the VT with a plain TCP socket.
"""

from __future__ import annotations

import asyncio
import ctypes
import ipaddress
import itertools
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from umipdouble import config as uconfig
from umipdouble import mh
from umipdouble.daemon import Stats
from umipdouble.ha import HomeAgent
from umipdouble.mn import MobileNode
from umipdouble.netstate import IFA_F_DEPRECATED, IFA_F_TENTATIVE, IFF_LOWER_UP, IFF_UP, Addr, Link
from umipdouble.vt import Command, Session, VTServer, common_commands, dispatch, nip6
from test_mip6conf import MINIMAL_MN as UMIP_MD_EXAMPLE  # umip.md section 2, verbatim

TESTS = Path(__file__).resolve().parent
CLONE_NEWNET = 0x40000000
_counter = itertools.count()


def run_double(*args: str, ns: str | None = None, **kw) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "umipdouble", *args]
    if ns:
        cmd = ["ip", "netns", "exec", ns, *cmd]
    env = dict(os.environ, PYTHONPATH=str(TESTS))
    return subprocess.Popen(cmd, cwd=TESTS, env=env, **kw)


def run_double_to_end(*args: str, timeout: float = 20) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(TESTS))
    return subprocess.run([sys.executable, "-m", "umipdouble", *args], cwd=TESTS, env=env,
                          capture_output=True, text=True, timeout=timeout)


# --------------------------------------------------------------------------------------------
# configuration: grammar, error line, exit codes (no root needed)


def write(tmp_path: Path, text: str, name: str = "mip6d.conf") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_config_error_line_format_and_exit_1(tmp_path):
    f = write(tmp_path, "NodeConfig MN;\n# a comment\nInterfaceInitialInitDelay 2;\n")
    r = run_double_to_end("-c", str(f))
    assert r.returncode == 1
    assert r.stderr == f"Error in configuration file {f} at line 3: syntax error at '2'\n"


def test_config_unknown_keyword_and_preference_range(tmp_path):
    f = write(tmp_path, 'NodeConfig MN;\nFrobnicate 1;\n')
    with pytest.raises(uconfig.ConfigError) as e:
        uconfig.load(str(f))
    assert str(e.value) == f"Error in configuration file {f} at line 2: syntax error at 'Frobnicate'"
    f = write(tmp_path, 'Interface "eth1" {\n  MnIfPreference 11;\n}\n')
    with pytest.raises(uconfig.ConfigError) as e:
        uconfig.load(str(f))
    assert (e.value.line, e.value.msg, e.value.tok) == (2, "invalid preference", "11")


def test_missing_config_file_exits_1(tmp_path):
    r = run_double_to_end("-c", str(tmp_path / "absent.conf"))
    assert r.returncode == 1
    assert "absent.conf" in r.stderr


def test_missing_home_link_interface_exits_1(tmp_path):
    f = write(tmp_path, 'NodeConfig MN;\nMnHomeLink "nosuch0" {\n HomeAgentAddress 2001:db8:1::1;\n'
                        ' HomeAddress 2001:db8:1::100/64;\n}\n')
    r = run_double_to_end("-c", str(f))
    assert r.returncode == 1
    assert r.stderr == f"Error in configuration file {f} at line 2: invalid interface at '\"nosuch0\"'\n"


def test_config_grammar_example_include_and_defaults(tmp_path):
    write(tmp_path, 'Interface "wwan0";\nInterface "lte0" { MnIfPreference 0; Tunnel enabled; }\n', "extra.conf")
    main = write(tmp_path, UMIP_MD_EXAMPLE + f'include "{tmp_path}/extra*.conf"\nMnMaxHaBindingLife 3600;\n')
    c = uconfig.load(str(main), check_interfaces=False)
    assert c.node == "MN" and c.use_mn_ha_ipsec is False and c.interface_initial_init_delay == 2.0
    assert {n: i.preference for n, i in c.interfaces.items()} == {"eth1": 1, "wlan0": 2, "wwan0": 10, "lte0": 0}
    assert c.interfaces["lte0"].tunnel is True
    assert [(str(h.hoa), str(h.ha), str(h.prefix)) for h in c.home_links] == [
        ("2001:db8:1::100", "2001:db8:1::1", "2001:db8:1::/64"),
        ("2001:db8:2::100", "2001:db8:2::1", "2001:db8:2::/64")]
    assert c.mn_max_ha_binding_life == 3600
    assert c.initial_bindack_timeout_first_reg == 1.5 and c.initial_bindack_timeout_rereg == 1.0
    # an error inside an included file names that file and its line
    bad = write(tmp_path, 'Interface "x" { MnIfPreference 1.0; }\n', "bad.conf")
    top = write(tmp_path, f'NodeConfig MN;\ninclude "{bad}"\n', "top.conf")
    with pytest.raises(uconfig.ConfigError) as e:
        uconfig.load(str(top))
    assert str(e.value) == f"Error in configuration file {bad} at line 1: syntax error at '1.0'"


# --------------------------------------------------------------------------------------------
# Mobility Header and VT text, in process


def test_binding_update_wire_format():
    hoa = ipaddress.IPv6Address("2001:db8:1::100")
    raw = mh.encode(mh.Message(mh.MH_BU, seq=0x1234, flags=mh.BU_A | mh.BU_H, lifetime_units=900, hoa=hoa))
    assert len(raw) % 8 == 0
    assert raw[0] == 59 and raw[1] == len(raw) // 8 - 1 and raw[2] == 5
    assert raw[6:12] == bytes.fromhex("1234c0000384")
    # PadN(0) puts the experimental option at 8n+6
    assert raw[12:14] == bytes([1, 0]) and raw[14:16] == bytes([18, 16]) and raw[16:32] == hoa.packed
    back = mh.decode(raw)
    assert (back.seq, back.flags, back.lifetime, back.hoa) == (0x1234, 0xC000, 3600, hoa)
    ba = mh.decode(mh.encode(mh.Message(mh.MH_BA, seq=7, status=0, lifetime_units=900, hoa=hoa)))
    assert (ba.mh_type, ba.status, ba.seq, ba.lifetime, ba.hoa) == (6, 0, 7, 3600, hoa)


def test_nip6_and_vt_dispatch():
    assert nip6(ipaddress.IPv6Address("2001:db8:1::100")) == "2001:db8:1:0:0:0:0:100"
    assert nip6(ipaddress.IPv6Address("2001:db8:a:0:0:0:0:5")) == "2001:db8:a:0:0:0:0:5"
    tree = common_commands()
    for name in ("bul", "rr", "bc", "nonce", "stats"):
        tree[name] = Command(lambda s, r: "X\n")
    vt = VTServer(tree, "0", lambda: None)
    s = Session()
    assert vt.handle(s, b"fancy no\r\n") == b"no\nmip6d> \0"
    assert vt.handle(s, b"bul\nbc\n") == b"unknown args\nmip6d> \0"
    assert vt.handle(s, b"bul\n") == b"X\nmip6d> \0"
    assert vt.handle(s, b"frob\r\n") == b'unknown command: "frob"\nmip6d> \0'
    assert vt.handle(s, b"frob\n") == b'unknown command: "(null)"\nmip6d> \0'
    assert vt.handle(s, b"bul") == b'unknown command: "(null)"\nmip6d> \0'  # "bu" + NUL
    assert vt.handle(s, b"help\r\n") == b"bc bul fancy nonce prompt quit rr stats verbose\nmip6d> \0"
    assert vt.handle(s, b"prompt no\r\n") == b"no\n\0"
    assert vt.handle(s, b"quit\r\n") is None
    assert dispatch(tree, s, "verbose yes\r") == "yes\n" and s.verbose


def _link(index, name, pref_flags=IFF_UP | IFF_LOWER_UP, addrs=(), routers=("fe80::1",)):
    return Link(index, name, pref_flags,
                [Addr(ipaddress.IPv6Address(a), 64, fl, 0xFFFFFFFF, 0xFFFFFFFF) for a, fl in addrs],
                [ipaddress.IPv6Address(r) for r in routers])


def test_coa_choice_by_preference():
    conf = uconfig.parse_text('NodeConfig MN;\nInterface "a" { MnIfPreference 1; }\n'
                              'Interface "b" { MnIfPreference 2; }\nInterface "c" { MnIfPreference 2; }\n'
                              'Interface "z" { MnIfPreference 0; }\n', check_interfaces=False)
    mn = MobileNode(conf, None, None)
    A, B, C, Z = "2001:db8:a::5", "2001:db8:b::5", "2001:db8:c::5", "2001:db8:f::5"
    links = {2: _link(2, "a", addrs=[(A, 0)]), 3: _link(3, "b", addrs=[(B, 0)]),
             4: _link(4, "c", addrs=[(C, 0)]), 5: _link(5, "z", addrs=[(Z, 0)])}
    assert mn.choose(links) == (2, "a", ipaddress.IPv6Address(A))
    links[2] = _link(2, "a", IFF_UP, addrs=[(A, 0)])  # no carrier
    mn.current = mn.choose(links)
    assert mn.current[:2] == (3, "b")
    mn.current = (4, "c", ipaddress.IPv6Address(C))  # a tie keeps the current interface
    assert mn.choose(links)[:2] == (4, "c")
    links[4] = _link(4, "c", addrs=[(C, 0)], routers=())  # no default router: not a candidate
    assert mn.choose(links)[:2] == (3, "b")
    links[3] = _link(3, "b", addrs=[(B, IFA_F_TENTATIVE)])  # tentative only: not a candidate
    assert mn.choose(links) is None
    # deprecated: kept only when nothing preferred is on the chosen interface
    links[3] = _link(3, "b", addrs=[(B, IFA_F_DEPRECATED), ("2001:db8:b::6", 0)])
    assert mn.choose(links)[2] == ipaddress.IPv6Address("2001:db8:b::6")
    links[3] = _link(3, "b", addrs=[(B, IFA_F_DEPRECATED)])
    assert mn.choose(links)[2] == ipaddress.IPv6Address(B)


class FakeMHSocket:
    def __init__(self) -> None:
        self.sent: list[tuple[mh.Message, ipaddress.IPv6Address, ipaddress.IPv6Address, int]] = []

    def send(self, payload, src, dst, ifindex=0) -> None:
        self.sent.append((mh.decode(payload), src, dst, ifindex))


def test_deregisters_at_home_and_refreshes_state():
    hoa, ha = ipaddress.IPv6Address("2001:db8:1::100"), ipaddress.IPv6Address("2001:db8:1::1")

    async def scenario() -> None:
        conf = uconfig.parse_text('NodeConfig MN;\nInterface "a" { MnIfPreference 1; }\n'
                                  'Interface "b" { MnIfPreference 2; }\nMnMaxHaBindingLife 600;\n'
                                  'MnHomeLink "h" { HomeAgentAddress 2001:db8:1::1; HomeAddress 2001:db8:1::100/64; }\n',
                                  check_interfaces=False)
        sock = FakeMHSocket()
        mn = MobileNode(conf, sock, Stats())
        sess = Session(fancy=False)
        try:
            mn._decide({2: _link(2, "a", addrs=[("2001:db8:a::5", 0)])})
            bu, src, dst, ifindex = sock.sent[-1]
            assert (bu.mh_type, bu.flags, bu.lifetime, bu.hoa) == (5, mh.BU_A | mh.BU_H, 600, hoa)
            assert (str(src), dst, ifindex) == ("2001:db8:a::5", ha, 2)
            assert " ack wait\n" in mn.dump_bul(sess) and " lifetime = 600,  delay = 1500\n" in mn.dump_bul(sess)
            mn._on_ba(mh.Message(mh.MH_BA, seq=bu.seq, lifetime_units=100, hoa=hoa), ha, src)
            text = mn.dump_bul(sess)
            assert " ack ready\n" in text and " lifetime = 400,  delay = 380000\n" in text  # granted 400, 95 %
            # a home-prefix address on the better interface: at home, deregister (lifetime 0, CoA = HoA)
            mn._decide({2: _link(2, "a", addrs=[("2001:db8:1::100", 0)])})
            bu, src, dst, _ = sock.sent[-1]
            assert (bu.lifetime, bu.hoa, str(src)) == (0, hoa, "2001:db8:1::100")
            text = mn.dump_bul(sess)
            assert "Care-of address 2001:db8:1:0:0:0:0:100\n" in text and " lifetime = 0,  delay = 1000\n" in text
            mn._on_ba(mh.Message(mh.MH_BA, seq=bu.seq, lifetime_units=0, hoa=hoa), ha, src)
            assert mn.dump_bul(sess) == ""
            # away again: a first registration (1.5 s) once more
            mn._decide({3: _link(3, "b", addrs=[("2001:db8:b::5", 0)])})
            assert " lifetime = 600,  delay = 1500\n" in mn.dump_bul(sess)
        finally:
            for e in mn.bul.values():
                e.cancel()

    asyncio.run(scenario())


def test_home_agent_sequence_window_and_lifetime():
    async def scenario() -> None:
        conf = uconfig.parse_text("NodeConfig HA;\nHaMaxBindingLife 1000;\n", check_interfaces=False)
        agent = HomeAgent(conf, FakeMHSocket(), Stats())
        a = ipaddress.IPv6Address
        hoa, coa, local = a("2001:db8:1::100"), a("2001:db8:a::5"), a("2001:db8:1::1")
        assert agent.process(hoa, coa, local, mh.BU_A | mh.BU_H, 65535, 3600) == (0, 65535, 1000)
        assert agent.process(hoa, coa, local, mh.BU_A | mh.BU_H, 65535, 3600) == (135, 65535, 0)
        assert agent.process(hoa, coa, local, mh.BU_A | mh.BU_H, 40000, 3600) == (135, 65535, 0)
        assert agent.process(hoa, coa, local, mh.BU_A | mh.BU_H, 3, 3600) == (0, 3, 1000)  # wraps
        text = agent.dump_bc(Session(fancy=False))
        assert re.fullmatch("hoa 2001:db8:1:0:0:0:0:100 status registered\n coa 2001:db8:a:0:0:0:0:5 flags AH--\n"
                            " local 2001:db8:1:0:0:0:0:1\n lifetime (999|1000) / 1000 seq 3 unreach 0 mpa - / 0 retry -2\n",
                            text), text  # remaining = floor(lifetime - elapsed)
        sess = Session(fancy=False)
        assert agent._bc_change(sess, "hoa 2001:db8:1::100 local 2001:db8:1::1 flags H lifetime 60", True) \
            == agent._bc_change(sess, "", True)  # no whitespace after the last value: usage
        assert agent._bc_change(sess, "hoa 2001:db8:1::100 local 2001:db8:1::1 flags H\r", False) == "bc status=0\n"
        assert agent.dump_bc(sess) == ""

    asyncio.run(scenario())


# --------------------------------------------------------------------------------------------
# network namespaces


def _ip(*args: str, check: bool = True) -> str:
    p = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and p.returncode:
        raise RuntimeError(f"ip {' '.join(args)}: {p.stderr.strip()}")
    return p.stdout


def netns_skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    if shutil.which("ip") is None:
        return "needs iproute2"
    return None


class TwoUplinkLab:
    """Node ``ns`` (upA, upB, home0) and peer ``peer`` (routes for both uplinks, HA address on ``home``)."""

    HA = "2001:db8:1::1"
    HOA = "2001:db8:1::100"
    COA_A = "2001:db8:a::5"
    COA_B = "2001:db8:b::5"

    def __init__(self) -> None:
        n = f"{os.getpid()}-{next(_counter)}"
        self.ns, self.peer = f"ud-n-{n}", f"ud-p-{n}"
        self.made: list[str] = []
        for ns in (self.ns, self.peer):
            _ip("netns", "add", ns)
            self.made.append(ns)
            subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0",
                            "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.all.forwarding=1"], check=True)
            _ip("-n", ns, "link", "set", "lo", "up")
        N, P = self.ns, self.peer
        for up in ("upA", "upB"):
            _ip("-n", N, "link", "add", up, "type", "veth", "peer", "name", f"p-{up}", "netns", P)
            _ip("-n", N, "link", "set", up, "up")
            _ip("-n", P, "link", "set", f"p-{up}", "up")
        _ip("-n", N, "link", "add", "home0", "type", "veth", "peer", "name", "home0p")  # the MnHomeLink, down
        _ip("-n", P, "link", "add", "home", "type", "veth", "peer", "name", "home-p")
        _ip("-n", P, "link", "set", "home", "up")
        _ip("-n", P, "link", "set", "home-p", "up")
        _ip("-n", N, "addr", "add", f"{self.COA_A}/64", "dev", "upA", "nodad")
        _ip("-n", N, "addr", "add", f"{self.COA_B}/64", "dev", "upB", "nodad")
        _ip("-n", P, "addr", "add", "2001:db8:a::1/64", "dev", "p-upA", "nodad")
        _ip("-n", P, "addr", "add", "2001:db8:b::1/64", "dev", "p-upB", "nodad")
        _ip("-n", P, "addr", "add", f"{self.HA}/64", "dev", "home", "nodad")
        _ip("-n", N, "-6", "route", "add", "default", "via", "2001:db8:a::1", "dev", "upA", "metric", "100")
        _ip("-n", N, "-6", "route", "add", "default", "via", "2001:db8:b::1", "dev", "upB", "metric", "200")

    def close(self) -> None:
        for ns in self.made:
            _ip("netns", "del", ns, check=False)


def socket_in_netns(ns: str, family: int = socket.AF_INET) -> socket.socket:
    """A TCP socket created inside ``ns`` (setns in a short-lived thread; the socket keeps the namespace)."""
    out: dict = {}

    def make() -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
            try:
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns")
            finally:
                os.close(fd)
            out["sock"] = socket.socket(family, socket.SOCK_STREAM)
        except BaseException as e:  # handed to the caller
            out["error"] = e

    t = threading.Thread(target=make)
    t.start()
    t.join()
    if "error" in out:
        raise out["error"]
    return out["sock"]


class VTClient:
    def __init__(self, ns: str, port: int, family: int = socket.AF_INET, timeout: float = 10.0) -> None:
        host = socket.getaddrinfo("localhost", port, family, socket.SOCK_STREAM)[0][4][0]
        deadline = time.monotonic() + timeout
        while True:
            s = socket_in_netns(ns, family)
            s.settimeout(2.0)
            try:
                s.connect((host, port))
                break
            except OSError:
                s.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        self.sock = s

    def read_exact(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            d = self.sock.recv(n - len(buf))
            if not d:
                break
            buf += d
        return buf

    def cmd(self, line: bytes) -> bytes:
        """Send one line, return the reply up to and including its NUL."""
        self.sock.sendall(line)
        buf = b""
        while not buf.endswith(b"\0"):
            d = self.sock.recv(8192)
            if not d:
                raise ConnectionError(f"closed after {buf!r}")
            buf += d
        return buf

    def close(self) -> None:
        self.sock.close()


def wait_for(pred, timeout: float, step: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            return v
        time.sleep(step)


BUL_RE = re.compile(
    r"== BUL_ENTRY ==\n"
    r"Home address    (?P<hoa>\S+)\n"
    r"Care-of address (?P<coa>\S+)\n"
    r"CN address      (?P<cn>\S+)\n"
    r" lifetime = (?P<life>\d+),  delay = (?P<delay_ms>\d+)\n"
    r" flags: IP6_MH_BU_HOME IP6_MH_BU_ACK \n"
    r" ack (?P<ack>wait|ready)\n"
    r"(?: dev (?P<dev>\S+) last_coa (?P<last>\S+)\n)?"
    r" lifetime (?P<rem>-?\d+) / (?P<life2>\d+) seq (?P<seq>\d+) resend (?P<resend>\d+) "
    r"delay (?P<delay>\d+)\(after (?P<after>-?\d+)s\)\n"
    r"\n")


def parse_bul(reply: bytes) -> list[dict]:
    assert reply.endswith(b"mip6d> \0") and reply.count(b"\0") == 1
    text = reply[:-len(b"mip6d> \0")].decode()
    entries, pos = [], 0
    while pos < len(text):
        m = BUL_RE.match(text, pos)
        assert m, f"bul text not as documented at {pos}: {text[pos:]!r}"
        entries.append(m.groupdict())
        pos = m.end()
    return entries


@pytest.fixture
def two_uplinks():
    why = netns_skip_reason()
    if why:
        pytest.skip(why)
    lab = TwoUplinkLab()
    try:
        yield lab
    finally:
        lab.close()


def stop(p: subprocess.Popen | None) -> int | None:
    if p is None:
        return None
    if p.poll() is None:
        p.terminate()
    try:
        return p.wait(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()
        return p.wait()


@pytest.mark.netns
def test_mobile_node_registers_then_moves_to_uplink_b(two_uplinks, tmp_path):
    lab = two_uplinks
    mn_conf = write(tmp_path, f"""\
NodeConfig MN;
DebugLevel 1;
UseMnHaIPsec disabled;
InterfaceInitialInitDelay 0.2;
MnMaxHaBindingLife 3600;
Interface "upA" {{ MnIfPreference 1; }}
Interface "upB" {{ MnIfPreference 2; }}
MnHomeLink "home0" {{ HomeAgentAddress {lab.HA}; HomeAddress {lab.HOA}/64; }}
""", "mn.conf")
    ha_conf = write(tmp_path, 'NodeConfig HA;\nInterface "home";\nHaMaxBindingLife 3600;\n', "ha.conf")
    mn_log, ha_log = open(tmp_path / "mn.log", "w"), open(tmp_path / "ha.log", "w")
    mn = ha = None
    clients: list[VTClient] = []
    try:
        mn = run_double("-c", str(mn_conf), ns=lab.ns, stdout=mn_log, stderr=subprocess.STDOUT)
        vt = VTClient(lab.ns, 7777)
        clients.append(vt)
        assert vt.read_exact(7) == b"mip6d> "  # greeting, no NUL

        # one client at a time, on every localhost address (127.0.0.1, and ::1 where /etc/hosts says so)
        families = {ai[0] for ai in socket.getaddrinfo("localhost", 7777, socket.AF_UNSPEC, socket.SOCK_STREAM)}
        for fam in sorted(families):
            second = VTClient(lab.ns, 7777, fam)
            clients.append(second)
            assert second.read_exact(100) == b"Too many connections\n"  # then closed
            second.close()

        r = vt.cmd(b"fancy no\r\n")
        assert r == b"no\nmip6d> \0"

        # no home agent yet: the BU stays unanswered, "ack wait"
        entries = wait_for(lambda: parse_bul(vt.cmd(b"bul\r\n")), 5)
        assert len(entries) == 1
        e = entries[0]
        assert e["ack"] == "wait"
        assert (e["hoa"], e["coa"], e["cn"]) == ("2001:db8:1:0:0:0:0:100", "2001:db8:a:0:0:0:0:5",
                                                 "2001:db8:1:0:0:0:0:1")
        resend = int(e["resend"])
        assert e["life"] == e["life2"] == "3600"
        assert int(e["delay_ms"]) == 1500 * 2 ** resend  # InitialBindackTimeoutFirstReg, doubling
        assert int(e["delay"]) == int(1.5 * 2 ** resend)
        assert 0 <= int(e["after"]) <= int(e["delay"])
        assert 3590 <= int(e["rem"]) <= 3600

        # the home agent appears: a resend gets acknowledged
        ha = run_double("-c", str(ha_conf), "--ha-stand-in", "--vt-service", "7778", ns=lab.peer,
                        stdout=ha_log, stderr=subprocess.STDOUT)
        acked = wait_for(lambda: parse_bul(vt.cmd(b"bul\r\n"))[0]["ack"] == "ready", 8)
        assert acked, "no Binding Acknowledgement"
        reply = vt.cmd(b"bul\r\n")
        e = parse_bul(reply)[0]
        assert 3590 <= int(e["rem"]) <= 3600 and 3410 <= int(e["after"]) <= 3420
        seq = int(e["seq"])
        assert reply.decode() == (  # byte for byte, with the numbers that move taken from the reply
            "== BUL_ENTRY ==\n"
            "Home address    2001:db8:1:0:0:0:0:100\n"
            "Care-of address 2001:db8:a:0:0:0:0:5\n"
            "CN address      2001:db8:1:0:0:0:0:1\n"
            " lifetime = 3600,  delay = 3420000\n"
            " flags: IP6_MH_BU_HOME IP6_MH_BU_ACK \n"
            " ack ready\n"
            f" lifetime {e['rem']} / 3600 seq {seq} resend 0 delay 3420(after {e['after']}s)\n"
            "\n"
            "mip6d> \0")

        # the home agent's binding cache, fancy on by default there
        hvt = VTClient(lab.peer, 7778)
        clients.append(hvt)
        assert hvt.read_exact(7) == b"mip6d> "
        bc = hvt.cmd(b"bc\r\n").decode()
        m = re.fullmatch(
            r"\x1b\[1;4mhoa 2001:db8:1:0:0:0:0:100\x1b\[0m\x1b\[1m status registered\x1b\[0m\n"
            r" coa 2001:db8:a:0:0:0:0:5 flags AH--\n"
            r" local 2001:db8:1:0:0:0:0:1\n"
            r" lifetime (\d+) / 3600 seq (\d+) unreach 0 mpa - / 0 retry -2\n"
            r"mip6d> \x00", bc)
        assert m, repr(bc)
        assert int(m.group(2)) == seq
        assert hvt.cmd(b"help\r\n") == b"bc fancy hal nonce pl prompt quit stats thread verbose\nmip6d> \0"

        # uplink A's peer goes down: the node moves to B by itself and gets acknowledged
        _ip("-n", lab.peer, "link", "set", "p-upA", "down")
        assert vt.cmd(b"verbose yes\r\n") == b"yes\nmip6d> \0"

        def moved():
            es = parse_bul(vt.cmd(b"bul\r\n"))
            return es and es[0]["coa"] == "2001:db8:b:0:0:0:0:5" and es[0]["ack"] == "ready" and es[0]
        e = wait_for(moved, 8)
        assert e, vt.cmd(b"bul\r\n")
        assert (e["dev"], e["last"]) == ("upB", "2001:db8:a:0:0:0:0:5")
        assert int(e["seq"]) != seq
        bc = hvt.cmd(b"fancy no\r\n") and hvt.cmd(b"bc\r\n").decode()
        assert " coa 2001:db8:b:0:0:0:0:5 flags AH--\n" in bc and f"seq {e['seq']} " in bc

        # without a home agent, uplink A comes back: the better interface is taken again at once, and the
        # unanswered re-registration backs off from InitialBindackTimeoutReReg (1.0 s), doubling
        rc_ha_early = stop(ha)
        assert rc_ha_early == 0, (tmp_path / "ha.log").read_text()
        _ip("-n", lab.peer, "link", "set", "p-upA", "up")

        def back_on_a():
            es = parse_bul(vt.cmd(b"bul\r\n"))
            return es and es[0]["coa"] == "2001:db8:a:0:0:0:0:5" and es[0]
        e = wait_for(back_on_a, 5)
        assert e and e["ack"] == "wait" and (e["dev"], e["last"]) == ("upA", "2001:db8:b:0:0:0:0:5")
        assert int(e["delay_ms"]) == 1000 * 2 ** int(e["resend"])
        e = wait_for(lambda: [x for x in parse_bul(vt.cmd(b"bul\r\n")) if x["resend"] != "0"], 4)
        assert e and int(e[0]["delay_ms"]) == 1000 * 2 ** int(e[0]["resend"]) and e[0]["ack"] == "wait"

        # quit: closed without prompt or NUL; the slot is free again
        vt.sock.sendall(b"quit\r\n")
        assert vt.read_exact(1) == b""
        again = VTClient(lab.ns, 7777)
        clients.append(again)
        assert again.read_exact(7) == b"mip6d> "
        assert again.cmd(b"frob\r\n") == b'unknown command: "frob"\nmip6d> \0'

        # SIGHUP re-reads the Interface list and keeps running
        mn.send_signal(signal.SIGHUP)
        assert again.cmd(b"prompt\r\n") == b"yes\nmip6d> \0"
        assert mn.poll() is None
    finally:
        for c in clients:
            c.close()
        rc_mn, rc_ha = stop(mn), stop(ha)
        mn_log.close()
        ha_log.close()
    assert rc_mn == 0, (tmp_path / "mn.log").read_text()
    assert rc_ha == 0, (tmp_path / "ha.log").read_text()  # stop() of an ended process returns its code
