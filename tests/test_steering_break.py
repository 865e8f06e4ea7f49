"""Marked steering rules attacked (issue 15.6): hostile cgroup names, a user's own cgroup tree used to
starve the helper's scan and inotify watches, scopes that vanish between the scan and nft, rules across
user sessions, selectors at their limits.

Real parts: cgroups made under the host's cgroup2 root (as a user can in the tree systemd delegates to
their session), nft in a network namespace of its own (``nsenter --net``), inotify on cgroupfs and tmpfs.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from mhgui.core import cgroups as cg
from mhgui.core import steering as core
from mhgui.core.steering_nft import MarkedRule
from mhgui.core.steering_selectors import parse_application, parse_ports, parse_protocol

CG2 = cg.cgroup2_mount(Path("/proc/self/mountinfo").read_text())
_count = itertools.count()
real_cgroups = pytest.mark.skipif(
    CG2 is None or cg.nft_prefix(CG2) is None or os.geteuid() != 0 or shutil.which("nft") is None
    or shutil.which("nsenter") is None, reason="needs root, nft, nsenter and cgroup v2 under /sys/fs/cgroup")


@pytest.fixture
def netns():
    name = f"b2b-{os.getpid() % 100000}-{next(_count)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


@pytest.fixture
def cgtop():
    """A slice of this test under the cgroup2 root (a stand-in for ``user.slice``), removed after."""
    top = Path(CG2 or "/nonexistent") / f"b2b-{os.getpid()}-{next(_count)}.slice"
    top.mkdir()
    try:
        yield top
    finally:
        for p in sorted((q for q in top.rglob("*") if q.is_dir()), key=lambda q: -len(q.parts)):
            p.rmdir()
        top.rmdir()


def _app_rule(app: str, rule_id: str = "r1") -> MarkedRule:
    rule = core.check_request({"interface": "lo", "protocol": "tcp", "application": app}, rule_id=rule_id, now=1.0)
    return MarkedRule(rule, 1, "lo", frozenset({4, 6}))


def _set(netns: str, rule_id: str = "r1") -> str:
    return subprocess.run(["nsenter", f"--net=/run/netns/{netns}", "nft", "list", "table", "inet", "mhgui"],
                          capture_output=True, text=True, check=True).stdout


# --------------------------------------------------------------------------- hostile names


@real_cgroups
@pytest.mark.parametrize("name", ['x".slice', "x\\.slice", "a\tb.slice"])
def test_a_users_oddly_named_slice_does_not_break_marked_rules(netns, cgtop, name):
    """A user may name the slices of their own session tree almost anything (kernfs refuses only / and a
    newline):
    a quote or a newline must not reach nft, nor stop the rule for everybody else's scopes."""
    from mhgui.helper.steering_apps import CgroupTree, MarkedSteering

    mine = cgtop / "user@0.service/app.slice/app-b2bapp-1.scope"
    mine.mkdir(parents=True)
    (cgtop / "user@1.service" / name / "app.slice/app-b2bapp-2.scope").mkdir(parents=True)
    ms = MarkedSteering(netns, CgroupTree())
    ms.set_rules([_app_rule("app:b2bapp")])  # ValueError before: '... cannot be put in an nft string'
    assert ms.ok and ms.scopes("r1") == [str(mine.relative_to(CG2))]
    assert str(mine.relative_to(CG2)) in _set(netns)
    (cgtop / "user@0.service/app.slice/app-b2bapp-3.scope").mkdir()
    (cgtop / "user@1.service" / name / "app.slice/app-b2bapp-4.scope").mkdir()
    assert ms.follow()  # (also not raising)
    assert len(ms.scopes("r1")) == 2 and "app-b2bapp-3.scope" in _set(netns)


def test_cgroup_selectors_refuse_traversal_and_nft_syntax():
    for bad in ("cgroup:../../etc", "cgroup:a/../b", "cgroup:./a", 'cgroup:a"b', "cgroup:a\nb", "cgroup:a\\b",
                "cgroup:" + "a/" * 600, "app:fire fox", "app:a;b", "app:a}b", 'app:a"', "app:é", "app:" + "a" * 129):
        with pytest.raises(ValueError):
            parse_application(bad)
    # what nft reads inside a quoted string is taken as it is (a cgroup of that name, if one exists)
    assert parse_application("cgroup:/a;b}{ #$x.slice/") == "cgroup:a;b}{ #$x.slice"


@pytest.mark.parametrize("ports, ok", [("0", False), ("65536", False), ("65535", True), ("1", True),
                                       ("100-10", False), ("10-10", True), ("-5", False), ("5-", False),
                                       ("1-2-3", False), ("\u0664\u0664\u0663", False), ("00443", True),
                                       (",".join(str(p) for p in range(1, 18)), False), ("1-65535", True)])
def test_port_limits(ports, ok):
    if ok:
        assert parse_ports(ports)
    else:
        with pytest.raises(ValueError):
            parse_ports(ports)


def test_protocol_values():
    assert parse_protocol(" TCP ") == "tcp" and parse_protocol("") is None
    for bad in ("sctp", "6", "tcp;", 6, ["tcp"]):
        with pytest.raises(ValueError):
            parse_protocol(bad)


# --------------------------------------------------------------------------- sessions


def test_an_application_rule_takes_that_application_in_every_session(tmp_path):
    """Decided: ``app:ID`` is a node-wide rule, like a destination rule (the steer action needs an
    administrator, auth_admin), so it takes the application in every user's session, not only the
    caller's. (``cgroup:PATH`` names one cgroup, whoever's.)"""
    from mhgui.helper.steering_apps import CgroupTree

    for uid in (1000, 1001):
        (tmp_path / f"user.slice/user-{uid}.slice/user@{uid}.service/app.slice/app-firefox-{uid}.scope").mkdir(
            parents=True)
    tree = CgroupTree(str(tmp_path))
    got = tree.matching("app:firefox", tree.scan())
    assert [cg.own_session(p) for p in got] == ["user.slice/user-1000.slice/user@1000.service",
                                                "user.slice/user-1001.slice/user@1001.service"]


# --------------------------------------------------------------------------- one user starves the others


def test_a_user_with_many_slices_does_not_hide_other_users_scopes(tmp_path):
    """Each user may make cgroups in their own session tree: 25 000 empty slices there (past the scan's
    20 000 directories) must not stop the helper from finding another user's application."""
    from mhgui.helper.steering_apps import CgroupTree

    users = tmp_path / "user.slice"
    for uid in (1000, 1001):
        (users / f"user-{uid}.slice").mkdir(parents=True)
    # the scan goes depth first, last listed first: the flood is in the user it visits first
    first, victim = (e.name.split("-")[1].split(".")[0] for e in reversed(list(os.scandir(users))))
    flood = users / f"user-{first}.slice/user@{first}.service/app.slice"
    flood.mkdir(parents=True)
    for i in range(25_000):
        (flood / f"f{i}.slice").mkdir()
    (users / f"user-{victim}.slice/user@{victim}.service/app.slice/app-firefox-1.scope").mkdir(parents=True)
    tree = CgroupTree(str(tmp_path))
    assert [s.path for s in tree.scan()] == [f"user.slice/user-{victim}.slice/user@{victim}.service/app.slice/"
                                             "app-firefox-1.scope"]


def test_a_user_with_many_slices_does_not_take_every_inotify_watch(tmp_path):
    """The watch has a bounded number of watches: one user's 5 000 slices must not use them all, so a
    user logging in later is still watched (their applications found at once, not by the poll)."""
    from mhgui.helper.steering_apps import CgroupWatch

    users = tmp_path / "user.slice"
    flood = users / "user-1001.slice/user@1001.service/app.slice"
    flood.mkdir(parents=True)
    for i in range(5_000):
        (flood / f"f{i}.slice").mkdir()
    watch = CgroupWatch(str(tmp_path))
    try:
        (users / "user-1000.slice").mkdir()
        (users / "user-1000.slice/user@1000.service").mkdir()
        watch.read()
        (users / "user-1000.slice/user@1000.service/app.slice").mkdir()
        watch.read()
        (users / "user-1000.slice/user@1000.service/app.slice/app-firefox-1.scope").mkdir()
        assert "user.slice/user-1000.slice/user@1000.service/app.slice/app-firefox-1.scope" in watch.read()
    finally:
        watch.close()


# --------------------------------------------------------------------------- races


@real_cgroups
def test_a_scope_that_ends_between_the_scan_and_nft_does_not_keep_others_out(netns, cgtop):
    """A user can start and end scopes named like the application all the time: one that is gone when
    nft resolves it fails nft's whole transaction, which must not keep the live scopes (or the whole
    table) out of the kernel."""
    from mhgui.helper.steering_apps import CgroupTree, MarkedSteering

    class Racy(CgroupTree):  # a scope that ended right after each scan
        def scan(self):
            gone = cg.AppScope("b2bapp", f"{cgtop.name}/user@1.service/app.slice/app-b2bapp-99.scope",
                               "app-b2bapp-99.scope")
            return sorted([*super().scan(), gone])

    live = cgtop / "user@0.service/app.slice/app-b2bapp-1.scope"
    live.mkdir(parents=True)
    ms = MarkedSteering(netns, Racy())
    ms.set_rules([_app_rule("app:b2bapp")])  # NftFailed before: cgroupv2 path fails
    assert ms.ok and "app-b2bapp-1.scope" in _set(netns) and "app-b2bapp-99" not in _set(netns)
    (cgtop / "user@0.service/app.slice/app-b2bapp-2.scope").mkdir()
    ms.follow()
    assert "app-b2bapp-2.scope" in _set(netns), "a live scope was not added with a vanished one"


# --------------------------------------------------------------------------- mhctl


def test_mhctl_rules_add_takes_the_selectors_and_refuses_bad_ones_itself(capsys):
    from mhgui import cli

    for argv, words in [
        (["rules", "add", "b0", "--ports", "0"], "ports: port 0 is outside"),
        (["rules", "add", "b0", "--app", "cgroup:../../etc"], "application: "),
        (["rules", "add", "b0"], "takes 2 argument"),  # without a selector a destination is needed
        (["rules", "remove", "x", "--ports", "443"], "go with rules add"),
    ]:
        assert cli.main(argv) == 2, argv
        assert words in capsys.readouterr().err, argv
    with pytest.raises(SystemExit):
        cli.main(["rules", "add", "b0", "--protocol", "sctp"])
    capsys.readouterr()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (namespaces)")
def test_mhctl_rules_add_list_and_edit_keep_the_selectors(tmp_path):
    """mhctl against the real helper (private system bus, the helper in a namespace with two uplinks):
    a rule with --protocol/--ports is added, listed with its selectors, and `edit` moves it to the other
    interface with them (before, edit re-added the destinations alone: refused for such a rule)."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from test_steering import NEED, SteerLab

    if NEED:
        pytest.skip(NEED)
    pytest.importorskip("dbus")
    from test_helper import READ, HelperProc, _start_stack

    class Lab(SteerLab):
        def __init__(self) -> None:
            n = f"{os.getpid() % 100000}-{next(_count)}"
            self.node, self.ra, self.rb, self.srv = (f"b2c-{x}{n}" for x in ("n", "a", "b", "s"))
            self.all = (self.node, self.ra, self.rb, self.srv)
            self.sockets = []
            try:
                self._build()
            except BaseException:
                self.close()
                raise

    stack = _start_stack(systemd=False)
    lab = helper = None
    try:
        lab = Lab()
        stack.allow(READ, "io.github.mhgui.MHGui.steer")
        conf = tmp_path / "etc" / "mip6d.conf"
        conf.parent.mkdir()
        helper = HelperProc(stack, conf, "--state-dir", str(tmp_path / "state"),
                            wrapper=("nsenter", f"--net=/run/netns/{lab.node}")).start()

        def mhctl(*argv: str) -> subprocess.CompletedProcess:
            return subprocess.run([sys.executable, "-m", "mhgui.cli", *argv, "--system-bus", stack.address],
                                  capture_output=True, text=True, timeout=60)

        p = mhctl("rules", "add", "b0", "--protocol", "tcp", "--ports", "443,8000-8100")
        assert p.returncode == 0, p.stderr
        assert "any destination, tcp ports 443,8000-8100 go through b0" in p.stdout, p.stdout
        rid = p.stdout.split()[1].rstrip(":")
        p = mhctl("rules")
        assert f"{rid}  any destination, tcp ports 443,8000-8100 → b0" in p.stdout, p.stdout
        p = mhctl("rules", "edit", rid, "a0")
        assert p.returncode == 0, p.stdout + p.stderr
        [line] = mhctl("rules").stdout.splitlines()
        assert "any destination, tcp ports 443,8000-8100 → a0" in line, line
    finally:
        if helper is not None:
            helper.stop()
        if lab is not None:
            lab.close()
        stack.stop()


# --------------------------------------------------------------------------- running connections


@pytest.fixture
def blab():
    """test_steering_app's lab (a node with uplinks a0 and b0, a server, wires seen on both) under b2a- names."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from test_steering import NEED, SteerLab, Wire

    if NEED:
        pytest.skip(NEED)
    from test_steering_app import AppLab

    class Lab(AppLab):
        def __init__(self) -> None:
            n = f"{os.getpid() % 100000}-{next(_count)}"
            self.node, self.ra, self.rb, self.srv = (f"b2a-{x}{n}" for x in ("n", "a", "b", "s"))
            self.all = (self.node, self.ra, self.rb, self.srv)
            self.sockets = []
            try:
                SteerLab._build(self)
            except BaseException:
                self.close()
                raise

    import socket

    from test_steering import PORT, SERVER6, _sock

    lab = Lab()
    listeners, wires = [], []
    try:
        s = _sock(lab.srv, socket.AF_INET6, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((SERVER6, PORT))
        s.listen(64)
        listeners.append(s)
        wires = [Wire(lab.ra), Wire(lab.rb)]
        yield lab, wires[0], wires[1]
    finally:
        for w in wires:
            w.close()
        for s in listeners:
            s.close()
        lab.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (namespaces)")
def test_running_connections_when_marked_rules_are_removed(blab, tmp_path):
    """A steered connection keeps its path while its interface has a marked rule (its conntrack mark is
    restored), also when its own rule goes. When the interface's last marked rule goes, the table's
    masquerade and the fwmark rule go with it: its next packets leave by the default path with the
    address the socket chose (never the other uplink's address on this wire: nothing leaks), and the
    peer resets it. (steering_nft's docstring promised "never moves a running connection": corrected.)"""
    import socket

    from test_steering import COA_A, COA_B, PORT, SERVER6, _sock, _wait_for

    from mhgui.helper.steering import SteeringEngine

    lab, wa, wb = blab
    eng = SteeringEngine(str(tmp_path / "state"), netns=lab.node)

    def next_packet(s: socket.socket, sport: int) -> tuple[set[str], set[str]]:
        wa.clear()
        wb.clear()
        s.send(b"x")
        _wait_for(lambda: wa.tcp(sport) or wb.tcp(sport), "the connection's next packet on a wire")
        return {p[0] for p in wa.tcp(sport)}, {p[0] for p in wb.tcp(sport)}
    try:
        rule = eng.add({"interface": "b0", "protocol": "tcp", "ports": str(PORT)})
        other = eng.add({"interface": "b0", "protocol": "udp", "ports": "53"})
        s = _sock(lab.node, socket.AF_INET6, socket.SOCK_STREAM)
        lab.sockets.append(s)
        s.settimeout(5)
        s.connect((SERVER6, PORT))
        sport = s.getsockname()[1]
        _wait_for(lambda: wb.tcp(sport), "the steered handshake on b0's wire")
        assert not wa.tcp(sport) and {p[0] for p in wb.tcp(sport)} == {COA_B}
        eng.remove(rule.id)  # b0 keeps a marked rule: the connection stays
        assert next_packet(s, sport) == (set(), {COA_B})
        eng.remove(other.id)  # the last one: the default path, with the socket's own address
        assert next_packet(s, sport) == ({COA_A}, set())
        with pytest.raises(ConnectionResetError):
            s.recv(10)
    finally:
        eng.clear_kernel()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (namespaces)")
@pytest.mark.parametrize("bound", ["2001:db8:b::3", "2001:db8:b::2"])
def test_a_socket_with_the_interfaces_own_address_is_not_masqueraded(blab, tmp_path, bound):
    """A socket that already has one of the interface's addresses (the engine's sockets, bound to each
    care-of address and device; two CoAs on one link with multiple care-of addresses) must keep it:
    masquerading rewrote it to the interface's preferred address (and may change its port)."""
    import socket

    from test_steering import PORT, SERVER6, _sock, _wait_for

    from mhgui.helper.steering import SteeringEngine

    lab, wa, wb = blab
    subprocess.run(["ip", "-n", lab.node, "addr", "add", "2001:db8:b::3/64", "dev", "b0", "nodad"], check=True)
    eng = SteeringEngine(str(tmp_path / "state"), netns=lab.node)
    try:
        eng.add({"interface": "b0", "protocol": "tcp", "ports": str(PORT)})
        s = _sock(lab.node, socket.AF_INET6, socket.SOCK_STREAM)
        lab.sockets.append(s)
        s.settimeout(5)
        s.bind((bound, 0))
        sport = s.getsockname()[1]
        try:
            s.connect((SERVER6, PORT))
        except OSError:
            pass  # (the answer comes back to the address the packet carried)
        _wait_for(lambda: wb.tcp(sport) or [p for p in wb.packets if p[2] == 6 and p[4] == PORT],
                  "the SYN on b0's wire")
        syns = [p for p in wb.packets if p[2] == 6 and p[4] == PORT]
        assert {(p[0], p[3]) for p in syns} == {(bound, sport)}, syns
    finally:
        eng.clear_kernel()


# --------------------------------------------------------------------------- nft missing, the helper restarting


def _kernel(netns: str) -> tuple[str, str]:
    rules = subprocess.run(["ip", "-n", netns, "-6", "rule"], capture_output=True, text=True, check=True).stdout
    tables = subprocess.run(["nsenter", f"--net=/run/netns/{netns}", "nft", "list", "tables"], capture_output=True,
                            text=True, check=True).stdout
    return rules, tables


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (namespaces)")
def test_without_nft_a_marked_rule_is_refused_and_nothing_is_left(blab, tmp_path, monkeypatch):
    from mhgui.helper.steering import SteeringEngine, SteeringFailure

    lab, _wa, _wb = blab
    eng = SteeringEngine(str(tmp_path / "state"), netns=lab.node)
    try:
        plain = eng.add({"destination": "2001:db8:5::/48", "interface": "b0"})
        before = _kernel(lab.node)
        empty = tmp_path / "bin"
        empty.mkdir()
        (empty / "nsenter").symlink_to(shutil.which("nsenter"))  # nsenter is there, nft is not
        monkeypatch.setenv("PATH", str(empty))
        with pytest.raises(SteeringFailure) as e:
            eng.add({"interface": "b0", "protocol": "tcp", "ports": "443"})
        assert e.value.kind == "KernelFailed" and "nft" in e.value.message
        monkeypatch.undo()
        assert [r.id for r in eng.load().rules] == [plain.id]
        assert _kernel(lab.node) == before  # no fwmark rule, no table
        assert [x.in_kernel for x in eng.listing()] == [True]
    finally:
        monkeypatch.undo()
        eng.clear_kernel()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (namespaces)")
def test_a_restarted_helper_puts_the_same_table_back(blab, tmp_path):
    """The helper restarting (a new engine on the same state directory, full reconcile at start): the table
    is made again whole (one transaction), equal to what it was, and the marked rule is listed in the
    kernel; running connections keep their conntrack marks (the restore lines are the same)."""
    from mhgui.helper.steering import SteeringEngine

    lab, _wa, _wb = blab
    eng = SteeringEngine(str(tmp_path / "state"), netns=lab.node)
    try:
        eng.add({"interface": "b0", "protocol": "tcp", "ports": "443"})
        eng.add({"interface": "a0", "protocol": "udp", "ports": "53"})

        def table() -> str:
            text = subprocess.run(["nsenter", f"--net=/run/netns/{lab.node}", "nft", "list", "table", "inet",
                                   "mhgui"], capture_output=True, text=True, check=True).stdout
            return "\n".join(x for x in text.splitlines() if "counter" not in x)
        before, rules_before = table(), _kernel(lab.node)[0]
        again = SteeringEngine(str(tmp_path / "state"), netns=lab.node)
        again.reconcile(full=True)
        assert again.marks.last_change == "rebuild" and table() == before and _kernel(lab.node)[0] == rules_before
        assert [x.in_kernel for x in again.listing()] == [True, True]
    finally:
        eng.clear_kernel()


def test_a_cgroup_deeper_than_nft_can_match_is_refused():
    """nft (the kernel's nft_socket) matches cgroup levels 0..255: a rule at level 256 failed the whole
    table's transaction, so every marked rule left the kernel. 256 short components fit in 1024
    characters: refused when the rule is made."""
    deep = "/".join(["a"] * 256)
    with pytest.raises(ValueError, match="255"):
        parse_application("cgroup:" + deep)
    assert parse_application("cgroup:" + deep[2:]) == "cgroup:" + deep[2:]
    if shutil.which("nft") and os.geteuid() == 0:  # the bound is nft's own (check mode, no kernel change)
        for level, ok in ((255, True), (256, False)):
            text = (f"table inet b2bdeep {{\n set s {{ typeof socket cgroupv2 level {level}; }}\n"
                    f" chain c {{ type filter hook output priority 0; socket cgroupv2 level {level} @s accept; }}\n}}\n")
            assert (subprocess.run(["nft", "-c", "-f", "-"], input=text.encode(), capture_output=True).returncode == 0) is ok
