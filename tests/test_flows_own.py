"""mhgui's own sockets in the flows view (issue 13, item 12): recognised by process and by endpoint
(TIME-WAIT remains of the daemon's terminal connections have no owner), hidden by default, shown by a
toggle in the Flows tab, left out by ``mhctl flows`` unless ``--all``; and the sorted, filtered view
model kept in step with its source through random polls (issue 14: no proxy, no reset)."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PySide6.QtCore import QPersistentModelIndex, Qt
from PySide6.QtTest import QAbstractItemModelTester

from mhgui.core.flows import (
    MHGUI_PROCESSES, Flow, FlowTable, OwnSockets, dbus_tcp_endpoints, make_flow, own_flow_ids, service_endpoints,
)
from mhgui.sources.flows import FlowSource, own_sockets
from mhgui.ui.flows_model import KeyRole, FlowFilter, FlowModel
from mhgui.ui.flows_page import SHOW_OWN_TEXT, count_text
from netns import lab  # noqa: F401  (fixture)

TESTS = Path(__file__).resolve().parent
OWN_PID, OTHER_PID = 4242, 17
VT = 7777
SERVICES = frozenset({("tcp", "::1", VT), ("tcp", "127.0.0.1", VT)})
OWN = OwnSockets(frozenset({OWN_PID}), MHGUI_PROCESSES, SERVICES)
LISTENING = ("LISTEN", "UNCONN")


# --------------------------------------------------------------------------- the rules, against a brute-force oracle
def plain(a: str) -> str:
    ip = ipaddress.ip_address(a)
    if ip.version == 6 and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


def oracle(flows: list[Flow]) -> set[str]:
    """The three rules of own_flow_ids, written the slow and obvious way."""
    def direct(f: Flow) -> bool:
        if f.pid == OWN_PID or f.process in MHGUI_PROCESSES:
            return True
        if f.inode or f.state in LISTENING:
            return False
        return any((f.protocol, plain(a), p) in SERVICES
                   for a, p in ((f.local_address, f.local_port), (f.remote_address, f.remote_port)))

    own = {f.id for f in flows if direct(f)}
    out = set(own)
    for g in flows:
        if g.id not in own or g.state in LISTENING:
            continue
        for f in flows:
            if f.state not in LISTENING and f.protocol == g.protocol \
                    and (plain(f.local_address), f.local_port) == (plain(g.remote_address), g.remote_port) \
                    and (plain(f.remote_address), f.remote_port) == (plain(g.local_address), g.local_port):
                out.add(f.id)
    return out


ADDRS = ["::1", "127.0.0.1", "::ffff:127.0.0.1", "2001:db8::5", "192.0.2.7", "::"]
PORTS = [VT, VT + 1, 40000, 40001, 0]


@st.composite
def flows_st(draw) -> Flow:
    local, remote = draw(st.sampled_from(ADDRS)), draw(st.sampled_from(ADDRS))
    if (":" in local) != (":" in remote):
        remote = "::ffff:" + remote if ":" in local else "127.0.0.1"
    proto = draw(st.sampled_from(["tcp", "udp"]))
    state = draw(st.sampled_from(["ESTAB", "TIME-WAIT", "FIN-WAIT-2", "LISTEN", "CLOSE-WAIT"] if proto == "tcp"
                                 else ["ESTAB", "UNCONN"]))
    owner = draw(st.sampled_from([(None, None), (OWN_PID, "python3"), (OTHER_PID, "sshd"), (OTHER_PID, "mhgui-mn"),
                                  (OTHER_PID + 1, "telnet")]))
    inode = 0 if owner[0] is None and draw(st.booleans()) else draw(st.integers(1, 10 ** 6))
    return Flow(proto, 10 if ":" in local else 2, local, draw(st.sampled_from(PORTS)), remote,
                draw(st.sampled_from(PORTS)), state, inode=inode, pid=owner[0], process=owner[1])


@settings(max_examples=400, deadline=None)
@given(st.lists(flows_st(), max_size=30, unique_by=lambda f: f.id))
def test_own_flows_follow_the_three_rules(flows):
    assert own_flow_ids(flows, OWN) == oracle(flows)
    assert own_flow_ids(flows, None) == set()


def test_time_wait_to_the_terminal_is_own_from_either_side_and_in_either_family():
    tw = dict(state="TIME-WAIT", inode=0, pid=None, process=None)
    cases = [
        Flow("tcp", 10, "::1", 40000, "::1", VT, **tw),  # the app closed first
        Flow("tcp", 10, "::1", VT, "::1", 40001, **tw),  # the daemon closed first (``quit``)
        Flow("tcp", 2, "127.0.0.1", 40002, "127.0.0.1", VT, **tw),
        Flow("tcp", 10, "::ffff:127.0.0.1", VT, "::ffff:127.0.0.1", 40003, **tw),  # a dual-stack listener
    ]
    assert own_flow_ids(cases, OWN) == {f.id for f in cases}
    # not own: another port, a socket a process holds (someone's telnet to the terminal), a listener
    others = [Flow("tcp", 10, "::1", 40004, "::1", VT + 1, **tw),
              Flow("tcp", 10, "::1", 40005, "::1", VT, "ESTAB", inode=9, pid=OTHER_PID + 1, process="telnet"),
              Flow("tcp", 10, "::1", VT, "::", 0, "LISTEN", inode=0)]
    assert own_flow_ids(others, OWN) == set()
    # the daemon's end of the app's own terminal connection is own too, whoever holds it
    mine = Flow("tcp", 10, "::1", 40006, "::1", VT, "ESTAB", inode=5, pid=OWN_PID, process="python3")
    theirs = Flow("tcp", 10, "::1", VT, "::1", 40006, "ESTAB", inode=6, pid=OTHER_PID, process="mip6d")
    assert own_flow_ids([mine, theirs, *others], OWN) == {mine.id, theirs.id}


HOSTS = {"127.0.0.1": ["127.0.0.1"], "::1": ["::1"], "localhost": ["::1", "127.0.0.1"], "%3A%3A1": ["::1"],
         "example.org": [], "fe80::1%252": [], "": []}


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60), st.sampled_from(["tcp", "nonce-tcp", "unix", "TCP"]), st.sampled_from(sorted(HOSTS)),
       st.one_of(st.integers(-5, 70000), st.sampled_from(["x", "", "1e3"])))
def test_dbus_addresses_give_their_tcp_endpoints_and_never_raise(noise, transport, host, port):
    entry = f"{transport}:host={host},port={port},family=ipv6"
    got = dbus_tcp_endpoints(f"{noise};{entry};unix:path=/run/x")
    ok = transport in ("tcp", "nonce-tcp") and isinstance(port, int) and 0 < port < 65536
    assert got == dbus_tcp_endpoints(noise) + ([("tcp", a, port) for a in HOSTS[host]] if ok else [])
    assert all(p == "tcp" and 0 < n < 65536 for p, _, n in got)


def test_service_endpoints_take_addresses_and_localhost_only():
    assert dbus_tcp_endpoints(None) == [] and dbus_tcp_endpoints("tcp:port=5") == [("tcp", "::1", 5),
                                                                                  ("tcp", "127.0.0.1", 5)]
    assert service_endpoints("tcp", ["localhost", "bogus", "::ffff:127.0.0.1", "fe80::1%eth0"], 80) == \
        [("tcp", "::1", 80), ("tcp", "127.0.0.1", 80), ("tcp", "127.0.0.1", 80)]
    assert service_endpoints("tcp", ["::1"], 0) == [] and service_endpoints("tcp", ["::1"], 65536) == []


def test_own_sockets_names_this_process_the_terminal_and_tcp_buses():
    from mhgui.daemons.umip import UmipDriver
    spec = own_sockets(UmipDriver(port=7999), ["tcp:host=127.0.0.1,port=5555"],
                       environ={"DBUS_SYSTEM_BUS_ADDRESS": "unix:path=/run/dbus/system_bus_socket",
                                "DBUS_SESSION_BUS_ADDRESS": "tcp:host=::1,port=6666"})
    assert spec.pids == {os.getpid()} and "mhgui-mn" in spec.processes
    assert spec.services == {("tcp", "::1", 7999), ("tcp", "127.0.0.1", 7999), ("tcp", "127.0.0.1", 5555),
                             ("tcp", "::1", 6666)}
    assert own_sockets(None, environ={}).services == frozenset()


# --------------------------------------------------------------------------- the view model, through random polls
def sort_key(column: int):
    if column == FlowModel.COL_APP:
        return lambda f: (f.process or "\uffff").casefold()
    if column == FlowModel.COL_PID:
        return lambda f: f.pid if f.pid is not None else -1
    if column == FlowModel.COL_LOCAL:
        return lambda f: (f.family, int(ipaddress.ip_address(f.local_address)), f.local_port)
    return None


POOL = [make_flow("tcp", 10, "::1", 40000 + i, "::1", VT if i % 3 == 0 else 443, "ESTAB" if i % 4 else "TIME-WAIT",
                  inode=i if i % 4 else 0, pid=(OWN_PID if i % 7 == 0 else 100 + i % 5) if i % 4 else None,
                  process=(("python3" if i % 7 == 0 else f"app{i % 5}") if i % 4 else None))
        for i in range(160)]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sets(st.integers(0, len(POOL) - 1)), st.sampled_from([-1, 0, 1, 3]),
                          st.booleans(), st.booleans(), st.sampled_from(["", "app1", "10"])), min_size=1, max_size=6))
def test_filter_model_stays_sorted_filtered_and_in_step_through_random_polls(qapp, steps):
    m = FlowModel()
    m.set_own(OWN)
    p = FlowFilter()
    p.setSourceModel(m)
    tester = QAbstractItemModelTester(p, QAbstractItemModelTester.FailureReportingMode.Warning)  # noqa: F841
    resets = []
    p.modelReset.connect(lambda: resets.append(1))
    arrival: dict[str, int] = {}
    seq = 0
    for picks, column, descending, show_own, app in steps:
        # a poll: some flows stay, some go, some come, some change state
        table = {}
        for i in sorted(picks):
            f = POOL[i]
            if i % 5 == 0 and len(picks) % 2:
                f = make_flow(f.protocol, f.family, f.local_address, f.local_port, f.remote_address, f.remote_port,
                              "CLOSE-WAIT", f.inode, 0, f.pid, f.process)
            table[f.id] = f
        for k in list(arrival):
            if k not in table:
                del arrival[k]
        for k in table:
            if k not in arrival:
                arrival[k] = seq
                seq += 1
        m.apply(FlowTable(table))
        order = Qt.SortOrder.DescendingOrder if descending else Qt.SortOrder.AscendingOrder
        p.sort(column, order)
        p.set_show_own(show_own)
        p.set_application(app)
        own = own_flow_ids(table.values(), OWN)
        want = {k for k, f in table.items() if (show_own or k not in own)
                and (not app or (f.pid == int(app) if app.isdigit() else app in (f.process or "")))}
        shown = [p.index(r, 0).data(KeyRole) for r in range(p.rowCount())]
        assert len(shown) == len(set(shown)) and set(shown) == want
        assert m.own_count == len(own) and {m.index(r, 0).data(KeyRole) for r in range(m.rowCount())} == set(table)
        key = sort_key(column) if column >= 0 else (lambda f: arrival[f.id])
        keys = [key(table[k]) for k in shown]
        assert keys == sorted(keys, reverse=descending)
        for r in range(p.rowCount()):
            src = p.mapToSource(p.index(r, 2))
            assert src.data(KeyRole) == shown[r] and p.mapFromSource(src).row() == r
        assert p.counts() == (len(shown), len(table), 0 if show_own else len(own))
    assert resets == [1] or resets == []  # at most setSourceModel's, never a poll's


@pytest.mark.parametrize("seed", range(4))
def test_many_scattered_changes_keep_the_selection_on_its_row(qtmodeltester, seed):
    """Past MAX_RUNS runs a poll moves rows with one layout change: persistent indexes follow their rows."""
    rnd = random.Random(seed)
    pool = [make_flow("tcp", 10, "::1", 20000 + i, "::1", 443, "ESTAB", inode=i + 1, pid=100, process="app")
            for i in range(600)]
    m = FlowModel()
    p = FlowFilter()
    p.setSourceModel(m)
    p.sort(FlowModel.COL_LOCAL, Qt.SortOrder.DescendingOrder if seed % 2 else Qt.SortOrder.AscendingOrder)
    qtmodeltester.check(p, force_py=True)
    m.apply({f.id: f for f in pool[::2]})
    keep = pool[300]
    held = [p.index(r, 0) for r in range(p.rowCount()) if p.index(r, 0).data(KeyRole) == keep.id]
    pin = QPersistentModelIndex(held[0])
    layouts = []
    p.layoutChanged.connect(lambda *a: layouts.append(1))
    for _ in range(3):
        picks = {f.id: f for f in pool if rnd.random() < 0.5} | {keep.id: keep}
        m.apply(picks)
        assert pin.isValid() and pin.data(KeyRole) == keep.id
        shown = [p.index(r, 0).data(KeyRole) for r in range(p.rowCount())]
        assert set(shown) == set(picks) and pin.row() == shown.index(keep.id)
    assert layouts  # 600 flows half-replaced at random: far more than MAX_RUNS runs
    # hundreds at once, placed by one merge rather than one search each
    m.apply({f.id: f for f in pool})
    shown = [p.index(r, 0).data(KeyRole) for r in range(p.rowCount())]
    ports = [m.flow(x).local_port for x in shown]
    assert len(shown) == len(pool) and ports == sorted(ports, reverse=bool(seed % 2))
    assert pin.isValid() and pin.row() == shown.index(keep.id)


# --------------------------------------------------------------------------- real sockets, the window, mhctl
TERMINAL = r"""
import socket, sys, threading
port = int(sys.argv[1])
srv = socket.socket(socket.AF_INET6); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("::1", port)); srv.listen(16)
other = socket.socket(socket.AF_INET6); other.bind(("::1", port + 1)); other.listen(16)
def serve(s):
    while True:
        c, _ = s.accept()
        def talk(c=c):
            while c.recv(100):   # until the client closes: the client's side ends in TIME-WAIT
                pass
            c.close()
        threading.Thread(target=talk, daemon=True).start()
for s in (srv, other):
    threading.Thread(target=serve, args=(s,), daemon=True).start()
print("listening", flush=True)
sys.stdin.readline()
"""

USER = r"""
import socket, sys
port = int(sys.argv[1])
held = socket.create_connection(("::1", port))           # someone's telnet to the terminal: held, not own
c = socket.create_connection(("::1", port + 1)); c.close()   # a user's connection to another port, closed
print("ready", held.getsockname()[1], flush=True)
sys.stdin.readline()
"""


async def _time_wait_to_terminal(port: int) -> int:
    """The app's own path to the daemon's terminal (VtClient), closed by the app: TIME-WAIT on its side."""
    from mhgui.daemons.umip import VtClient
    client = VtClient(port, ("::1",), greeting_timeout=0.05)
    await client.connect()
    local = client._writer.get_extra_info("sockname")[1]
    await client.close()
    return local


@pytest.mark.netns
def test_window_hides_the_apps_terminal_time_wait_and_the_toggle_shows_it(lab, qtbot, qloop):  # noqa: F811
    from test_flows import Proc
    from test_rebind_e2e import in_netns

    from mhgui.core.state import StateStore
    from mhgui.daemons.umip import UmipDriver
    from mhgui.ui.window import LiveController, MainWindow

    port = 7990
    term = Proc(lab.ns, TERMINAL, str(port))
    user = None
    loop = qloop
    try:
        assert term.line() == "listening"
        src = FlowSource(netns=lab.ns)

        async def scenario():
            with in_netns(lab.ns):
                mine = await _time_wait_to_terminal(port)
            for _ in range(100):  # the listener closes after our FIN: then our side is in TIME-WAIT
                table = await src.poll()
                tw = [f for f in table.flows.values() if f.local_port == mine and f.state == "TIME-WAIT"]
                if tw:
                    return table, tw[0]
                await asyncio.sleep(0.02)
            raise AssertionError("no TIME-WAIT on the app's side")

        user = Proc(lab.ns, USER, str(port))
        held_port = int(user.line().split()[1])
        try:
            table, tw = loop.run_until_complete(scenario())
        finally:
            loop.run_until_complete(src.stop())
        assert (tw.pid, tw.inode, tw.remote_port) == (None, 0, port)
        users = [f for f in table.flows.values() if f.pid == user.pid or
                 (f.state == "TIME-WAIT" and f.remote_port == port + 1)]
        assert any(f.local_port == held_port for f in users) and any(f.remote_port == port + 1 for f in users)

        c = LiveController(StateStore(), lambda: 0.0, daemon=UmipDriver(port=port, hosts=("::1",)))
        win = MainWindow(c)
        qtbot.addWidget(win)
        c.flows.apply(table)
        view = win.flows_view.model()

        def shown() -> set[str]:
            return {view.index(r, 0).data(KeyRole) for r in range(view.rowCount())}

        assert tw.id not in shown() and c.flows.is_own(tw.id)
        assert {f.id for f in users} <= shown()  # someone else's connections, to the terminal or not, stay
        hidden = c.flows.own_count
        assert hidden >= 1 and f"{hidden:,} of mhgui's own hidden" in win.flow_count.text()
        assert win.show_own_flows.text() == SHOW_OWN_TEXT and not win.show_own_flows.isChecked()
        win.show_own_flows.click()
        assert tw.id in shown() and view.rowCount() == len(table.flows)
        assert win.flow_count.text() == count_text(len(table.flows), len(table.flows), 0)
        win.show_own_flows.click()
        assert tw.id not in shown() and {f.id for f in users} <= shown()
        c.close()
    finally:
        if user is not None:
            user.stop()
        term.stop()


@pytest.mark.netns
def test_mhctl_flows_leaves_out_the_apps_own_unless_all(lab, tmp_path):  # noqa: F811
    from test_flows import Proc

    port = 7991
    conf = tmp_path / "mip6d.conf"
    conf.write_text("NodeConfig MN;\n")
    daemon = subprocess.Popen(["ip", "netns", "exec", lab.ns, sys.executable, "-m", "umipdouble", "-c", str(conf),
                               "--vt-service", str(port)], cwd=TESTS, env=dict(os.environ, PYTHONPATH=str(TESTS)),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    other = Proc(lab.ns, TERMINAL, str(port + 10))  # a server that is not the terminal, on port + 11 too
    try:
        assert other.line() == "listening"
        # two earlier terminal sessions, one closed by the client, one by the daemon (``quit``), and a
        # user's connection elsewhere, closed: three TIME-WAIT sockets, one of them not mhgui's
        session = r"""
import socket, sys, time
port, quit_ = int(sys.argv[1]), sys.argv[2] == "quit"
for _ in range(200):
    try:
        s = socket.create_connection(("127.0.0.1", port)); break  # where getaddrinfo("localhost") says
    except OSError:
        time.sleep(0.05)
buf = b""
while not buf.endswith(b"mip6d> "):
    buf += s.recv(100)
if quit_:
    s.sendall(b"quit\r\n")
    while s.recv(100):
        pass
s.close()
print("done", flush=True)
"""
        for how in ("close", "quit"):
            p = subprocess.run(["ip", "netns", "exec", lab.ns, sys.executable, "-c", session, str(port), how],
                               capture_output=True, text=True, timeout=30)
            assert p.stdout.strip() == "done", p.stderr
        p = subprocess.run(["ip", "netns", "exec", lab.ns, sys.executable, "-c",
                            "import socket; c = socket.create_connection(('::1', %d)); c.close()" % (port + 11)],
                           timeout=30)

        def mhctl(*extra):
            r = subprocess.run(["ip", "netns", "exec", lab.ns, sys.executable, "-m", "mhgui.cli", "flows", "--json",
                                "--no-networkmanager", "--vt-port", str(port), *extra],
                               capture_output=True, text=True, timeout=60)
            assert r.returncode == 0, r.stderr
            return json.loads(r.stdout)

        def terminal_tw(out):
            return [f for f in out["flows"] if f["state"] == "TIME-WAIT" and port in (f["local"]["port"],
                                                                                     f["remote"]["port"])]

        everything = mhctl("--all")
        assert len(terminal_tw(everything)) >= 2 and everything["own_hidden"] == 0
        default = mhctl()
        assert terminal_tw(default) == [] and default["own_hidden"] >= 2
        # the user's connection elsewhere is still listed, the terminal's listener (mip6d's) too
        assert any(f["remote"]["port"] == port + 11 and f["state"] == "TIME-WAIT" for f in default["flows"])
        assert any(f["local"]["port"] == port and f["state"] == "LISTEN" for f in default["flows"])
        # the readable table says what it left out
        r = subprocess.run(["ip", "netns", "exec", lab.ns, sys.executable, "-m", "mhgui.cli", "flows",
                            "--no-networkmanager", "--vt-port", str(port)], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0 and "of mhgui's own connection(s) not shown: --all shows them" in r.stdout
    finally:
        other.stop()
        daemon.terminate()
        try:
            daemon.wait(10)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
