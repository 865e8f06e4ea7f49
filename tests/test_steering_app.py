"""Steering rules with protocol, ports and application selectors (issue 15.6).

Pure: the selectors' validation, the cgroup parsing, the planner's fwmark rules, nft's text and the
state file (old files still load). Real: the engine in a namespace lab (tests/test_steering.py's
SteerLab: node with a0 -> router A and b0 -> router B, ingress filtering on both) steers TCP to one
port through b0 while other ports keep a0, checked on the routers' wires; the helper on a private
system bus (run with ``nsenter --net`` so that it sees cgroupfs) steers the processes of an
application's cgroups, also of a scope started after the rule; polkit can refuse the new call.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mhgui.core import cgroups as cg
from mhgui.core import steering as core
from mhgui.core.steering import SteeringError, Uplink
from mhgui.core.steering_nft import MarkedRule, parse_echo, render_add, render_delete, render_elements, render_ruleset
from mhgui.core.steering_planner import SteeringPlanner
from mhgui.core.steering_selectors import format_ports, parse_application, parse_ports, parse_protocol

sys.path.insert(0, str(Path(__file__).parent))
from test_steering import (  # noqa: E402
    ADDR4_A, ADDR4_B, COA_A, COA_B, NEED, PORT, SERVER4, SERVER6, SteerLab, Wire, _sock, _wait_for,
    bus_stack,  # noqa: F401 (fixture: the helper's bus without systemd)
)

_count = itertools.count()


# --------------------------------------------------------------------------- pure


@pytest.mark.parametrize("text, expected", [
    ("443", ((443, 443),)), ("443, 80", ((80, 80), (443, 443))), ("8000-8100,8050-8200", ((8000, 8200),)),
    (["22", "80-81"], ((22, 22), (80, 81))), ("", ()), (None, ()), ("1-2,3", ((1, 3),)),
])
def test_ports_parse_and_merge(text, expected):
    assert parse_ports(text) == expected
    assert parse_ports(format_ports(expected)) == expected


@pytest.mark.parametrize("text, words", [
    ("0", "outside 1..65535"), ("65536", "outside"), ("90-80", "end is before the start"), ("http", "not a port"),
    ("4 43", "not a port") if False else ("4x", "not a port"), (",".join(str(i) for i in range(1, 18)), "at most 16"),
    (5, "must be a string"), ("１２", "not a port"),
])
def test_bad_ports_are_named(text, words):
    with pytest.raises(ValueError) as e:
        parse_ports(text)
    assert words in str(e.value)


def test_protocol_and_application():
    assert parse_protocol("TCP") == "tcp" and parse_protocol("") is None
    with pytest.raises(ValueError, match="tcp or udp"):
        parse_protocol("icmp")
    assert parse_application("firefox") == "app:firefox"
    assert parse_application("app:org.mozilla.firefox") == "app:org.mozilla.firefox"
    assert parse_application("/user.slice/x.scope") == "cgroup:user.slice/x.scope"
    for bad, words in (("fire fox", "not an application id"), ("cgroup:a/../b", "not allowed"),
                       ('cgroup:a"b', "not allowed"), ("app:", "not an application id")):
        with pytest.raises(ValueError, match=words):
            parse_application(bad)


@pytest.mark.parametrize("unit, expected", [
    ("app-firefox-1234.scope", ("firefox", "")),
    ("app-gnome-firefox-1234.scope", ("firefox", "gnome")),
    ("app-flatpak-org.mozilla.firefox-99.scope", ("org.mozilla.firefox", "flatpak")),
    ("app-org.kde.konsole@ab12cd34ef.service", ("org.kde.konsole", "")),
    ("app-gnome-org.gnome.Terminal-5.scope", ("org.gnome.Terminal", "gnome")),
    ("app.slice", None), ("session-2.scope", None), ("app-.scope", None),
])
def test_unit_names(unit, expected):
    assert cg.app_of_unit(unit) == expected


def test_scopes_sessions_and_mounts():
    base = "user.slice/user-1000.slice/user@1000.service"
    paths = [f"{base}/app.slice", f"{base}/app.slice/app-firefox-1.scope",
             f"{base}/app.slice/app-gnome-org.mozilla.firefox-2.scope", f"{base}/session.slice/dbus.service",
             f"{base}/app.slice/app-gnome-foot-3.scope/sub", "system.slice/app-fake-1.scope"]
    scopes = cg.scopes_of(paths)
    assert [(s.app_id, s.level) for s in scopes] == [("firefox", 5), ("org.mozilla.firefox", 5)]
    assert all(cg.matches("firefox", s) for s in scopes) and not cg.matches("fox", scopes[0])
    assert cg.parse_proc_cgroup("12:pids:/x\n0::/" + base + "/app.slice/a.scope\n") == base + "/app.slice/a.scope"
    assert cg.own_session(base + "/app.slice/a.scope") == base and cg.own_session("system.slice") is None
    info = ("35 25 0:30 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw\n"
            "36 25 0:31 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n")
    assert cg.cgroup2_mount(info) == "/sys/fs/cgroup/unified" and cg.nft_prefix("/sys/fs/cgroup/unified") == "unified/"
    assert cg.nft_prefix("/sys/fs/cgroup") == "" and cg.nft_prefix("/mnt/cg") is None
    assert cg.cgroup2_mount("36 25 0:31 / /x rw - cgroup cgroup rw\n") is None


def test_requests_with_selectors():
    r = core.check_request({"interface": "b0", "protocol": "tcp", "ports": ["443", "8000-8100"]}, now=1.0)
    assert r.marked and r.destinations == () and r.families() == {6, 4}
    r2 = core.check_request({"destination": "2001:db8:5::/48", "interface": "b0", "application": "firefox"})
    assert r2.application == "app:firefox" and r2.families() == {6}
    for req, words in [
        ({"interface": "b0"}, "either destination"),
        ({"interface": "b0", "ports": "0"}, "ports: port 0 is outside"),
        ({"interface": "b0", "application": "a b"}, "application: "),
        ({"interface": "b0", "protocol": "tcp", "source": "2001:db8:b::/64"}, "source cannot be combined"),
        ({"interface": "b0", "dport": "443"}, "use 'ports'"),
    ]:
        with pytest.raises(SteeringError, match=words):
            core.check_request(req)


def test_state_file_keeps_old_rules_and_round_trips_new_ones():
    old = {"version": 1, "next_slot": 2, "slots": {"b0": 1},
           "rules": [{"id": "r1", "destinations": ["2001:db8:5::/48"], "interface": "b0", "created": 1.0}]}
    st = core.parse_state(json.dumps(old))
    assert st.rules[0].protocol is None and not st.rules[0].marked
    assert core.render_state(st) == core.render_state(core.parse_state(core.render_state(st)))
    assert "protocol" not in core.render_state(st)  # older helpers read what we write for old rules
    # a marked rule may name a destination that a plain rule has (it is a filter, not a route)
    m = core.rule_from_request({"destination": "2001:db8:5::/48", "interface": "a0", "ports": "443",
                                "protocol": "tcp"}, rule_id="m1", now=2.0)
    st2 = core.add_rule(st, m)
    back = core.parse_state(core.render_state(st2))
    assert back.rule("m1") == m and back.owner(m.destinations[0]).id == "r1"
    line = core.render_change(7, add=m)
    assert core.parse_change(line[:-1]) == (7, m)
    st3 = core.remove_rule(st2, "m1")
    assert st3.rules == st.rules


UPS = {
    "a0": Uplink(ifindex=2, coa=COA_A, router="fe80::a", prefixes=("2001:db8:a::/64",), addr4=ADDR4_A,
                 router4="10.1.0.1", prefixes4=("10.1.0.0/24",)),
    "b0": Uplink(ifindex=3, coa=COA_B, router="fe80::b", prefixes=("2001:db8:b::/64",), addr4=ADDR4_B,
                 router4="10.2.0.1", prefixes4=("10.2.0.0/24",)),
}


def test_planner_gives_marked_rules_a_fwmark_rule_and_the_source_table():
    m = core.check_request({"interface": "b0", "protocol": "tcp", "ports": "7000"}, rule_id="m1", now=1.0)
    plain = core.check_request({"destination": "2001:db8:5::/48", "interface": "b0"}, rule_id="p1", now=1.0)
    planner = SteeringPlanner(UPS, {"b0": 1})
    planner.add(m)
    change = planner.take_change()
    marks = {p for p in change.rules_added if p.fwmark}
    assert marks == {core.PolicyRule(6, core.MARK_PRIORITY, core.SOURCE_TABLE_BASE + 1, "::/0", False, 1 << 24,
                                     core.MARK_MASK),
                     core.PolicyRule(4, core.MARK_PRIORITY, core.SOURCE_TABLE_BASE + 1, "0.0.0.0/0", False,
                                     1 << 24, core.MARK_MASK)}
    assert not any(r.table == core.TABLE_BASE + 1 for r in change.routes_added)  # no destination routes
    assert planner.marked_slot("m1") == (1, "b0", frozenset({4, 6})) and planner.reason("m1") == ""
    # the same plan as planning afresh, in any order; and removing it leaves nothing
    planner.add(plain)
    fresh = core.plan_kernel_state([plain, m], UPS, {"b0": 1})
    assert (planner.plan().routes, planner.plan().rules) == (fresh.routes, fresh.rules)
    planner.remove("m1")
    planner.remove("p1")
    assert planner.plan().routes == () and planner.plan().rules == ()


def test_nft_text():
    m = core.check_request({"destinations": ["2001:db8:5::/48", "10.5.0.0/24"], "interface": "b0",
                            "protocol": "tcp", "ports": "443,8000-8100", "application": "app:firefox"},
                           rule_id="m-1", now=1.0)
    text = render_ruleset([MarkedRule(m, 1, "b0", frozenset({4, 6}), (5,))],
                          {("m-1", 5): ["unified/u.slice/app.slice/app-firefox-1.scope"]})
    assert "set a_m_1_5 { typeof socket cgroupv2 level 5; elements = { \"unified/u.slice/app.slice/" in text
    assert ("meta nfproto ipv6 ip6 daddr { 2001:db8:5::/48 } tcp dport { 443, 8000-8100 } "
            "socket cgroupv2 level 5 @a_m_1_5 ct mark set ct mark & 0xc0ffffff | 0x01000000") in text
    assert "meta nfproto ipv4 ip daddr { 10.5.0.0/24 }" in text
    assert 'meta mark & 0x3f000000 == 0x01000000 oifname "b0" fib saddr . oif type != local masquerade' in text
    assert render_ruleset([]) == "table inet mhgui {}\ndelete table inet mhgui\n"
    # no scope yet: the set and its rule line wait
    assert "socket cgroupv2" not in render_ruleset([MarkedRule(m, 1, "b0", frozenset({6}))])
    assert render_elements("m-1", 5, ["b", "a"]) == 'add element inet mhgui a_m_1_5 { "a", "b" }\n'
    if shutil.which("nft"):  # nft itself accepts the text (check mode, no kernel change)
        p = subprocess.run(["nft", "-c", "-f", "-"], input=render_ruleset(
            [MarkedRule(m, 1, "b0", frozenset({4, 6}))], exists=False), capture_output=True, text=True)
        assert p.returncode == 0, p.stderr


def test_nft_one_rule_changes_and_echo():
    m = core.check_request({"interface": "b0", "protocol": "udp", "application": "cgroup:a.slice/b"},
                           rule_id="m2", now=1.0)
    mr = MarkedRule(m, 2, "b0", frozenset({6}), (2,))
    text = render_add(mr, {("m2", 2): ["unified/a.slice/b"]}, new_slot=True)
    assert text.splitlines() == [
        "add set inet mhgui a_m2_2 { typeof socket cgroupv2 level 2; }",
        'add element inet mhgui a_m2_2 { "unified/a.slice/b" }',
        "add rule inet mhgui select meta nfproto ipv6 meta l4proto udp socket cgroupv2 level 2 @a_m2_2 "
        'ct mark set ct mark & 0xc0ffffff | 0x02000000 counter return comment "mhgui:m2"',
        "add rule inet mhgui out ct mark & 0x3f000000 == 0x02000000 meta mark set meta mark & 0xc0ffffff | "
        '0x02000000 comment "slot:2"',
        'add rule inet mhgui post meta mark & 0x3f000000 == 0x02000000 oifname "b0" fib saddr . oif type != local '
        'masquerade comment "slot:2"']
    assert render_delete([("select", 8)], ["a_m2_2"]) == \
        "delete rule inet mhgui select handle 8\ndelete set inet mhgui a_m2_2\n"
    echo = ('add rule inet mhgui select handle 7 meta nfproto ipv6 tcp dport 443 counter return comment "mhgui:m1" '
            '# handle 8\nadd rule inet mhgui post meta mark & 0x3f000000 == 0x01000000 oifname "b0" masquerade '
            'comment "slot:1" # handle 12\nadd rule inet mhgui select fib daddr type local return # handle 5\n')
    assert parse_echo(echo) == [("select", "mhgui", "m1", 8), ("post", "slot", "1", 12)]


def test_running_apps_of_the_callers_session(tmp_path):
    from mhgui.sources.cgroups import running_apps

    root = tmp_path / "cg"
    mine = root / "user.slice/user-1000.slice/user@1000.service"
    for d in ("app.slice/app-firefox-11.scope", "app.slice/app-gnome-firefox-12.scope",
              "app.slice/app-org.gnome.Nautilus.slice/app-gnome-org.gnome.Nautilus-13.scope",
              "session.slice/pipewire.service"):
        (mine / d).mkdir(parents=True)
    (root / "user.slice/user-1001.slice/user@1001.service/app.slice/app-other-1.scope").mkdir(parents=True)
    info = tmp_path / "mountinfo"
    info.write_text(f"35 25 0:30 / {root} rw,nosuid - cgroup2 cgroup2 rw\n")
    proc = tmp_path / "cgroup"
    proc.write_text("0::/user.slice/user-1000.slice/user@1000.service/app.slice/app-foot-1.scope\n")
    got = running_apps(str(proc), str(info))
    assert [(s.app_id, s.launcher) for s in got] == [("firefox", ""), ("firefox", "gnome"),
                                                     ("org.gnome.Nautilus", "gnome")]
    proc.write_text("0::/system.slice/ssh.service\n")  # not in a session: every user's apps
    assert {s.app_id for s in running_apps(str(proc), str(info))} == {"firefox", "org.gnome.Nautilus", "other"}
    info.write_text("36 25 0:31 / /x rw - cgroup cgroup rw,cpu\n")  # no cgroup2: nothing, no error
    assert running_apps(str(proc), str(info)) == []
    assert running_apps(str(tmp_path / "missing"), str(info)) == []


@pytest.mark.parametrize("seed", range(3))
def test_incremental_plan_equals_a_fresh_one_with_marked_rules(seed):
    import random

    rnd = random.Random(seed)
    rules = []
    for i in range(40):
        req: dict = {"interface": rnd.choice(["a0", "b0"])}
        if rnd.random() < 0.5:
            req["destination"] = f"2001:db8:{rnd.randrange(1, 9)}{i:02x}::/48" if rnd.random() < 0.7 else \
                f"10.{rnd.randrange(5, 9)}.{i}.0/24"
        if rnd.random() < 0.5 or "destination" not in req:
            req.update(rnd.choice([{"protocol": "tcp", "ports": "443"}, {"application": "app:x"}, {"ports": "53"}]))
        rules.append(core.check_request(req, rule_id=f"r{i}", now=1.0))
    planner = SteeringPlanner(UPS, {"a0": 1, "b0": 2})
    live = []
    for _ in range(120):
        r = rnd.choice(rules)
        if r.id in planner:
            planner.remove(r.id)
            live.remove(r)
        elif r.marked or not any(d in (d2 for x in live if not x.marked for d2 in x.destinations)
                                 for d in r.destinations):
            planner.add(r)
            live.append(r)
    fresh = core.plan_kernel_state(live, UPS, {"a0": 1, "b0": 2})
    assert (planner.plan().routes, planner.plan().rules) == (fresh.routes, fresh.rules)


# --------------------------------------------------------------------------- real traffic

netns_only = pytest.mark.skipif(NEED is not None, reason=NEED or "")
CG2 = cg.cgroup2_mount(Path("/proc/self/mountinfo").read_text())
cgroup_only = pytest.mark.skipif(CG2 is None or cg.nft_prefix(CG2) is None or shutil.which("nsenter") is None,
                                 reason="needs cgroup v2 under /sys/fs/cgroup and nsenter")


class AppLab(SteerLab):
    """SteerLab with this helper's namespace names (h5a-...)."""

    def __init__(self) -> None:
        n = f"{os.getpid() % 100000}-{next(_count)}"
        self.node, self.ra, self.rb, self.srv = (f"h5a-{x}{n}" for x in ("n", "a", "b", "s"))
        self.all = (self.node, self.ra, self.rb, self.srv)
        self.sockets: list[socket.socket] = []
        try:
            self._build()
        except BaseException:
            self.close()
            raise


@pytest.fixture
def alab():
    if NEED:
        pytest.skip(NEED)
    lab = AppLab()
    listeners = []
    wa = wb = None
    try:
        for addr, port in ((SERVER6, PORT), (SERVER6, PORT + 1), (SERVER4, PORT)):
            # the kernel completes the handshake; nothing needs to accept
            s = _sock(lab.srv, socket.AF_INET6 if ":" in addr else socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((addr, port))
            s.listen(64)
            listeners.append(s)
        wa, wb = Wire(lab.ra), Wire(lab.rb)
        yield lab, wa, wb
    finally:
        for w in (wa, wb):
            if w is not None:
                w.close()
        for s in listeners:
            s.close()
        lab.close()


def _syn_path(wa: Wire, wb: Wire, dport: int, sport: int) -> tuple[set[str], set[str]]:
    """Sources of the node's packets to ``dport`` from ``sport`` seen on A's and B's wires."""
    def on(w: Wire) -> set[str]:
        with w._lock:
            return {p[0] for p in w.packets if p[2] == 6 and p[4] == dport and p[3] == sport}
    _wait_for(lambda: on(wa) or on(wb), f"the connection to port {dport} on a wire")
    time.sleep(0.1)
    return on(wa), on(wb)


def _connect(lab: AppLab, port: int, server: str = SERVER6) -> tuple[str, int]:
    s = _sock(lab.node, socket.AF_INET6 if ":" in server else socket.AF_INET, socket.SOCK_STREAM)
    lab.sockets.append(s)
    s.settimeout(5)
    s.connect((server, port))
    return s.getsockname()[:2]


def _nft(lab: AppLab, *args: str) -> str:
    return subprocess.run(["nsenter", f"--net=/run/netns/{lab.node}", "nft", *args], capture_output=True, text=True,
                          check=True).stdout


def _handles(listing: str, rule_id: str) -> list[int]:
    return [int(line.rsplit("# handle ", 1)[1]) for line in listing.splitlines() if f'"mhgui:{rule_id}"' in line]


@netns_only
def test_a_port_rule_steers_that_port_only(alab, tmp_path):
    from mhgui.helper.steering import SteeringEngine

    lab, wa, wb = alab
    eng = SteeringEngine(str(tmp_path / "state"), netns=lab.node)
    try:
        rule = eng.add({"interface": "b0", "protocol": "tcp", "ports": str(PORT)})
        [listed] = eng.listing()
        assert listed.in_kernel, listed.status
        local, sport = _connect(lab, PORT)  # steered: leaves b0, masqueraded to b0's address
        assert _syn_path(wa, wb, PORT, sport) == (set(), {COA_B})
        local2, sport2 = _connect(lab, PORT + 1)  # another port: the default path, a0
        assert (local2, _syn_path(wa, wb, PORT + 1, sport2)) == (COA_A, ({COA_A}, set()))
        local4, sport4 = _connect(lab, PORT, SERVER4)  # IPv4 too: the socket chose a0's address, NAT fixes it
        assert (local4, _syn_path(wa, wb, PORT, sport4)) == (ADDR4_A, (set(), {ADDR4_B}))
        counters = _nft(lab, "-a", "list", "chain", "inet", "mhgui", "select")
        assert f'comment "mhgui:{rule.id}"' in counters and "counter packets 1 " in counters, counters
        assert eng.marks.last_change == "rebuild"  # the first marked rule makes the table
        # one more marked rule is appended (the first one's lines keep their handles), and taken out again
        first = _handles(counters, rule.id)
        other = eng.add({"interface": "a0", "protocol": "udp", "ports": "53"})
        assert eng.marks.last_change == "add"
        now = _nft(lab, "-a", "list", "chain", "inet", "mhgui", "select")
        assert _handles(now, rule.id) == first and len(_handles(now, other.id)) == 2, now
        assert 'oifname "a0" fib saddr . oif type != local masquerade' in _nft(lab, "list", "chain", "inet", "mhgui",
                                                                               "post")
        eng.remove(other.id)
        assert eng.marks.last_change == "remove"
        now = _nft(lab, "-a", "list", "table", "inet", "mhgui")
        assert _handles(now, rule.id) == first and not _handles(now, other.id) and '"a0"' not in now, now
        assert [x.in_kernel for x in eng.listing()] == [True]
        eng.remove(rule.id)
        gone = subprocess.run(["nsenter", f"--net=/run/netns/{lab.node}", "nft", "list", "tables"],
                              capture_output=True, text=True, check=True).stdout
        assert "mhgui" not in gone
        _, sport3 = _connect(lab, PORT)
        assert _syn_path(wa, wb, PORT, sport3) == ({COA_A}, set())
    finally:
        eng.clear_kernel()


# --------------------------------------------------------------------------- the helper, applications


class Scope:
    """A fake user session's application scope under the cgroup2 root: ``h5a-N.slice/user@0.service/
    app.slice/app-h5aapp-K.scope``; removed (after its processes ended) on close."""

    def __init__(self, root: str, app: str, k: int) -> None:
        self.root = root
        self.rel = f"{root}/user@0.service/app.slice/app-{app}-{k}.scope"
        self.path = Path(CG2) / self.rel
        self.path.mkdir(parents=True)

    def connect(self, lab: AppLab, port: int) -> int:
        """Run a process in this cgroup, in the node's namespace, that connects; its local port."""
        code = ("import socket,sys; s=socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5); "
                "print(s.getsockname()[1])")
        script = (f'echo $$ > "{self.path}/cgroup.procs" && exec nsenter --net=/run/netns/{lab.node} '
                  f'"{sys.executable}" -c "{code}" {SERVER6} {port}')
        return int(subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True,
                                  timeout=20).stdout)

    def close(self) -> None:
        for p in sorted((q for q in self.path.rglob("*") if q.is_dir()), reverse=True):
            p.rmdir()
        self.path.rmdir()


def _rmtree_cg(top: Path) -> None:
    if top.exists():
        for p in sorted((q for q in top.rglob("*") if q.is_dir()), key=lambda q: -len(q.parts)):
            p.rmdir()
        top.rmdir()


@netns_only
@cgroup_only
@pytest.mark.asyncio
async def test_helper_steers_an_application_and_its_later_scopes(bus_stack, alab, tmp_path):
    from test_helper import READ, HelperProc

    from mhgui.helper.client import HelperClient, NotAuthorized

    lab, wa, wb = alab
    bus_stack.reset()
    top = f"h5a-{os.getpid()}-{next(_count)}.slice"
    conf = tmp_path / "etc" / "mip6d.conf"
    conf.parent.mkdir()
    helper = HelperProc(bus_stack, conf, "--state-dir", str(tmp_path / "state"),
                        wrapper=("nsenter", f"--net=/run/netns/{lab.node}")).start()
    scopes: list[Scope] = []
    try:
        async with HelperClient(bus_stack.address) as client:
            # polkit says no: nothing is added
            bus_stack.allow(READ)
            with pytest.raises(NotAuthorized):
                await client.add_steering_rule([], "b0", application="app:h5aapp", protocol="tcp")
            assert await client.list_steering_rules() == []
            bus_stack.allow(READ, "io.github.mhgui.MHGui.steer")
            scopes.append(Scope(top, "h5aapp", 1))
            other = Scope(top, "h5aother", 1)
            scopes.append(other)
            rid = await client.add_steering_rule([], "b0", application="h5aapp")
            [r] = await client.list_steering_rules()
            assert (r["application"], r["in_kernel"], r["status"]) == (
                "app:h5aapp", True, "matches 1 running cgroup(s); follows new ones"), r
            sport = scopes[0].connect(lab, PORT)
            assert _syn_path(wa, wb, PORT, sport) == (set(), {COA_B})
            sport = other.connect(lab, PORT)  # another application: the default path
            assert _syn_path(wa, wb, PORT, sport) == ({COA_A}, set())
            _, sport = await asyncio.to_thread(_connect, lab, PORT)  # a process outside any scope
            assert _syn_path(wa, wb, PORT, sport) == ({COA_A}, set())
            # launched after the rule: the helper's poll adds the new scope
            later = Scope(top, "h5aapp", 2)
            scopes.append(later)

            async def followed() -> bool:
                [r] = await client.list_steering_rules()
                return r["status"].startswith("matches 2 ")
            deadline = time.monotonic() + 10
            while not await followed():
                assert time.monotonic() < deadline, "the helper did not follow the new scope"
                await asyncio.sleep(0.2)
            sport = later.connect(lab, PORT)
            assert _syn_path(wa, wb, PORT, sport) == (set(), {COA_B})
            await client.remove_steering_rule(rid)
            assert await client.list_steering_rules() == []
    finally:
        helper.stop()
        lab_log = helper.log
        for s in scopes:
            try:
                s.close()
            except OSError:
                pass
        _rmtree_cg(Path(CG2) / top)
    assert "Traceback" not in lab_log, lab_log
    assert "cgroup directories for new application scopes" in lab_log  # inotify, not only the poll
    assert f"follows {top}/user@0.service/app.slice/app-h5aapp-2.scope" in lab_log, lab_log


@cgroup_only
def test_the_cgroup_watch_sees_new_scopes_and_new_slices():
    from mhgui.helper.steering_apps import CgroupWatch

    top = Path(CG2) / f"h5b-{os.getpid()}-{next(_count)}.slice"
    top.mkdir()
    try:
        watch = CgroupWatch(CG2)
        try:
            assert watch.read() == []
            (top / "user@0.service").mkdir()  # a user logs in: its manager is watched from now on
            (top / "user@0.service/app.slice").mkdir()
            (top / "user@0.service/app.slice/app-h5bapp-1.scope").mkdir()
            got = watch.read()
            rel = top.name + "/user@0.service"
            assert rel in got
            # created before the watch of its parent existed, or after: either way it is seen by the next reads
            (top / "user@0.service/app.slice/app-h5bapp-2.scope").mkdir()
            got += watch.read()
            assert f"{rel}/app.slice/app-h5bapp-2.scope" in got, got
            assert not watch.overflowed
        finally:
            watch.close()
    finally:
        _rmtree_cg(top)


def test_where_running_apps_were_looked_for_is_said(tmp_path):
    """An empty application list says which cgroups were read (issue 15 n1.9), or why none could be."""
    from mhgui.sources.cgroups import find_running_apps

    root = tmp_path / "cg"
    (root / "user.slice/user-1000.slice/user@1000.service/app.slice").mkdir(parents=True)
    info = tmp_path / "mountinfo"
    info.write_text(f"35 25 0:30 / {root} rw,nosuid - cgroup2 cgroup2 rw\n")
    proc = tmp_path / "cgroup"
    proc.write_text("0::/user.slice/user-1000.slice/user@1000.service/session.slice/foot.service\n")
    got = find_running_apps(str(proc), str(info))
    assert got.scopes == [] and got.where == f"{root}/user.slice/user-1000.slice/user@1000.service/app.slice"
    proc.write_text("0::/\n")  # a root shell in a container: no session anywhere
    (root / "user.slice/user-1000.slice").rename(root / "gone")
    assert find_running_apps(str(proc), str(info)).where == f"{root}/user.slice: no user session there"
    info.write_text("36 25 0:31 / /x rw - cgroup cgroup rw,cpu\n")
    assert find_running_apps(str(proc), str(info)).where == "cgroup v2 is not mounted"
    missing = find_running_apps(str(tmp_path / "missing"), str(info))
    assert missing.scopes == [] and "missing is not readable: No such file or directory" in missing.where
