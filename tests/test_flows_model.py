"""The flows view's Qt model (pytest-qt, offscreen): model tester, incremental updates (never a reset),
filters and sorting, and 10,000 real sockets in a network namespace kept in step with ``ss``."""

from __future__ import annotations

import asyncio
import subprocess
import time

import pytest
from PySide6.QtCore import Qt

from mhgui.core.analysis import analyse
from mhgui.core.bindings import Binding, BindingState
from mhgui.core.flows import Flow, FlowTable
from mhgui.core.model import Address, AddressFlag, HomeAddress, Interface, InterfaceKind, NodeState
from mhgui.sources.flows import FlowSource
from mhgui.ui.flows_model import FlowFilter, FlowModel, KeyRole, MovableRole, SortRole, runs
from netns import lab  # noqa: F401  (fixture)

HOA, COA, COA2 = "2001:db8:1::100", "2001:db8:2::10", "2001:db8:3::10"


def node() -> NodeState:
    s = NodeState()
    s.interfaces = {1: Interface(1, "lo", InterfaceKind.LOOPBACK, True, True, True, "unknown"),
                    2: Interface(2, "eth0", InterfaceKind.ETHERNET, True, True, True, "up"),
                    3: Interface(3, "wlan0", InterfaceKind.WIFI, True, True, True, "up")}
    for a in (Address(1, "::1", 128, scope=254), Address(2, COA, 64), Address(3, COA2, 64),
              Address(1, HOA, 128, flags=AddressFlag.HOMEADDRESS)):
        s.addresses[a.key] = a
    s.home_addresses = (HomeAddress(HOA, 64, "2001:db8:1::1"),)
    return s


def fl(lport, local=COA, remote="2001:db8:9::1", rport=443, state="ESTAB", pid=100, process="firefox", **kw):
    return Flow("tcp", 10, local, lport, remote, rport, state, inode=lport, pid=pid, process=process, **kw)


def table(flows) -> dict[str, Flow]:
    return {f.id: f for f in flows}


class Signals:
    """Counts a model's structural signals."""

    def __init__(self, m) -> None:
        self.removed, self.inserted, self.changed, self.resets, self.layouts = [], [], [], [], []
        m.rowsAboutToBeRemoved.connect(lambda p, a, b: self.removed.append((a, b)))
        m.rowsInserted.connect(lambda p, a, b: self.inserted.append((a, b)))
        m.dataChanged.connect(lambda a, b, *r: self.changed.append((a.row(), b.row(), a.column(), b.column())))
        m.modelAboutToBeReset.connect(lambda: self.resets.append(1))
        m.modelReset.connect(lambda: self.resets.append(2))
        m.layoutChanged.connect(lambda *a: self.layouts.append(1))


def context(m: FlowModel, bindings=()) -> NodeState:
    s = node()
    m.set_context(s, analyse(s, 0.0), bindings)
    return s


def test_runs_groups_consecutive_rows():
    assert runs([5, 1, 2, 3, 9, 8, 2]) == [(1, 3), (5, 5), (8, 9)]
    assert runs([]) == []


def test_models_pass_qtmodeltester(qtmodeltester):
    m = FlowModel()
    context(m, [Binding(HOA, COA2, state=BindingState.REGISTERED, source="bul")])
    m.apply(table([fl(1), fl(2, local=HOA, pid=None, process=None), fl(3, local="::1", remote="::1"),
                   fl(4, local="::", remote="::", rport=0, state="LISTEN")]))
    qtmodeltester.check(m, force_py=True)
    p = FlowFilter()
    p.setSourceModel(m)
    p.sort(FlowModel.COL_LOCAL)
    qtmodeltester.keep_alive = (m, p)
    qtmodeltester.check(p, force_py=True)


def test_cells_roles_and_tooltips():
    m = FlowModel()
    context(m, [Binding(HOA, COA2, state=BindingState.REGISTERED, source="bul")])
    m.apply(FlowTable(table([fl(1), fl(2, local=HOA, pid=None, process=None),
                             fl(4, local="::", remote="::", rport=0, state="LISTEN", pid=7, process="sshd")]),
                      "partial", "3 processes' file descriptors are not readable"))
    cells = {m.flow_at(r).local_port: m.cells_at(r) for r in range(m.rowCount())}
    assert cells[1] == ("firefox", "100", "TCP", f"[{COA}]:1", "[2001:db8:9::1]:443", "ESTAB", "eth0", "CoA",
                        "re-establish")
    assert cells[2][:2] == ("—", "—") and cells[2][6:] == ("wlan0", "HoA", "transparent")
    assert cells[4][4] == "*" and cells[4][6:] == ("—", "other", "no")
    hoa_flow = fl(2, local=HOA, pid=None, process=None)
    r = m.row_of(hoa_flow.id)
    assert m.index(r, 0).data(KeyRole) == hoa_flow.id
    assert m.index(r, 0).data(MovableRole) == "transparent"
    assert "not readable" in m.index(r, FlowModel.COL_PID).data(Qt.ItemDataRole.ToolTipRole)
    assert "bound to care-of address" in m.index(r, FlowModel.COL_IFACE).data(Qt.ItemDataRole.ToolTipRole)
    assert m.index(r, FlowModel.COL_PID).data(SortRole) == -1
    assert m.process_visibility == "partial"
    assert m.headerData(FlowModel.COL_MOVABLE, Qt.Orientation.Horizontal) == "Movable"
    assert m.interfaces() == ["eth0", "wlan0"]


def test_a_poll_applies_as_row_runs_and_never_resets():
    m = FlowModel()
    context(m)
    flows = [fl(i) for i in range(20)]
    sig = Signals(m)
    assert m.apply(table(flows)) == (20, 0, 0)
    assert sig.inserted == [(0, 19)] and sig.resets == []
    # remove 3, 4 and 10; 7 changes state; two new ones
    new = [f for f in flows if f.local_port not in (3, 4, 10)]
    new[new.index(flows[7])] = fl(7, state="CLOSE-WAIT")
    new += [fl(100), fl(101)]
    sig.inserted.clear()
    assert m.apply(table(new)) == (2, 3, 1)
    assert sig.removed == [(10, 10), (3, 4)]  # one removal per contiguous run, from the bottom
    assert sig.inserted == [(17, 18)]  # appended in one run
    assert [c[:2] for c in sig.changed] == [(5, 5)]  # row 7 is row 5 after two removals above it
    assert sig.resets == [] and sig.layouts == []
    assert m.ids() == [f.id for f in new if f.local_port not in (100, 101)] + [fl(100).id, fl(101).id]
    assert m.flow(fl(7).id).state == "CLOSE-WAIT"
    # the same table again: nothing at all
    sig.changed.clear()
    assert m.apply(table(new)) == (0, 0, 0) and sig.changed == []
    # an empty poll removes everything, still without a reset
    m.apply({})
    assert m.rowCount() == 0 and sig.resets == []


def test_context_change_signals_only_the_rows_that_moved():
    m = FlowModel()
    context(m, [Binding(HOA, COA2, state=BindingState.REGISTERED, source="bul")])
    m.apply(table([fl(1), fl(2, local=HOA), fl(3), fl(4, local=HOA)]))
    hoa_rows = sorted(m.row_of(fl(p, local=HOA).id) for p in (2, 4))
    sig = Signals(m)
    s = node()
    assert m.set_context(s, analyse(s, 0.0), [Binding(HOA, COA, state=BindingState.REGISTERED, source="bul")]) == 2
    assert sorted(c[0] for c in sig.changed) == hoa_rows
    assert all((c[2], c[3]) == (FlowModel.COL_IFACE, FlowModel.COL_MOVABLE) for c in sig.changed)
    assert m.placement(fl(2, local=HOA).id).interface == "eth0"
    sig.changed.clear()
    assert m.set_context(s, analyse(s, 0.0), [Binding(HOA, COA, state=BindingState.REGISTERED, source="bul")]) == 0
    assert sig.changed == [] and sig.resets == []


def visible(p: FlowFilter) -> set[int]:
    m = p.sourceModel()
    return {m.flow(p.index(r, 0).data(KeyRole)).local_port for r in range(p.rowCount())}


def test_filter_by_application_interface_and_address():
    m = FlowModel()
    context(m, [Binding(HOA, COA2, state=BindingState.REGISTERED, source="bul")])
    m.apply(table([fl(1), fl(2, pid=200, process="Thunderbird"), fl(3, local=HOA, remote="2001:db8:7::7"),
                   fl(4, pid=None, process=None, remote="198.51.100.9")]))
    p = FlowFilter()
    p.setSourceModel(m)
    assert visible(p) == {1, 2, 3, 4}
    p.set_application("thunder")
    assert visible(p) == {2}
    p.set_application("200")  # a pid
    assert visible(p) == {2}
    p.set_application("")
    p.set_interface("wlan0")  # the HoA flow, through its binding
    assert visible(p) == {3}
    p.set_interface(None)
    p.set_address("2001:DB8:7:")
    assert visible(p) == {3}
    p.set_address("]:1")  # part of a local endpoint (port 1)
    assert visible(p) == {1}
    p.set_address("198.51")
    p.set_application("firefox")  # combined: both must hold
    assert visible(p) == set()
    p.set_application(None)
    assert visible(p) == {4}
    # rows arriving later are filtered too
    m.apply(table([fl(1), fl(2, pid=200, process="Thunderbird"), fl(3, local=HOA, remote="2001:db8:7::7"),
                   fl(4, pid=None, process=None, remote="198.51.100.9"), fl(5, remote="198.51.100.10")]))
    assert visible(p) == {4, 5}


def test_sorting_uses_numbers_not_text():
    m = FlowModel()
    context(m)
    m.apply(table([fl(1, pid=10), fl(2, pid=9), fl(3, pid=100, remote="2001:db8:9::10"),
                   fl(4, pid=None, process=None, remote="2001:db8:9::9")]))
    p = FlowFilter()
    p.setSourceModel(m)

    def order(col, how=Qt.SortOrder.AscendingOrder):
        p.sort(col, how)
        return [p.sourceModel().flow(p.index(r, 0).data(KeyRole)).local_port for r in range(p.rowCount())]

    assert order(FlowModel.COL_PID) == [4, 2, 1, 3]  # unknown first, then 9 < 10 < 100
    remote = order(FlowModel.COL_REMOTE)
    assert remote.index(4) < remote.index(3)  # ::9 before ::10
    assert order(FlowModel.COL_LOCAL) == [1, 2, 3, 4]  # port 1 < 2 < 3 < 4 on one address
    assert order(FlowModel.COL_APP)[-1] == 4  # unknown application last


# --------------------------------------------------------------------------- 10,000 real sockets
from socketopener import OPENER  # noqa: E402


def ss_tuples(ns: str) -> set[tuple]:
    """(protocol, local, lport, remote, rport) of every TCP and UDP socket ``ss`` lists in ``ns``."""
    def split(ep: str) -> tuple[str, int]:
        host, _, port = ep.rpartition(":")
        host = host.strip("[]").split("%", 1)[0]
        if host in ("*", "::", "0.0.0.0"):
            host = "*"
        return host, 0 if port == "*" else int(port)

    out = set()
    for proto, flag in (("tcp", "-tanH"), ("udp", "-uanH")):
        text = subprocess.run(["ip", "netns", "exec", ns, "ss", flag], capture_output=True, text=True,
                              check=True).stdout
        for line in text.splitlines():
            f = line.split()
            if len(f) >= 5:
                out.add((proto, *split(f[3]), *split(f[4])))
    return out


def model_tuples(m: FlowModel) -> set[tuple]:
    def host(a):
        return "*" if a in ("::", "0.0.0.0") else a
    return {(f.protocol, host(f.local_address), f.local_port, host(f.remote_address), f.remote_port)
            for f in (m.flow_at(r) for r in range(m.rowCount()))}


@pytest.mark.netns
def test_ten_thousand_kernel_sockets_stay_in_step_without_resets(qtbot, qloop, lab):  # noqa: F811
    from test_flows import Proc  # the line-by-line helper process of the other flow tests

    n = 5000  # connections over loopback: 10,000 sockets, plus two listeners
    opener = Proc(lab.ns, OPENER, str(n))
    m = FlowModel()
    proxy = FlowFilter()
    proxy.setSourceModel(m)
    proxy.sort(FlowModel.COL_LOCAL)
    sig, psig = Signals(m), Signals(proxy)
    applied: list[tuple[int, int, int]] = []
    src = FlowSource(lambda t: applied.append(m.apply(t)), interval=0.2, netns=lab.ns)

    async def in_step(what: str, timeout: float = 60.0):
        deadline = time.monotonic() + timeout
        want = got = set()
        while time.monotonic() < deadline:
            polls = len(applied)
            want = ss_tuples(lab.ns)
            while len(applied) == polls and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            got = model_tuples(m)
            if got == want and want == ss_tuples(lab.ns):
                return
        raise AssertionError(f"{what}: model != ss: ss only {sorted(want - got)[:5]}, "
                             f"model only {sorted(got - want)[:5]}")

    async def scenario():
        assert opener.line(timeout=120) == "ready"
        await src.start()
        try:
            await in_step("10,000 sockets")
            assert m.rowCount() >= 2 * n + 2 and proxy.rowCount() == m.rowCount()
            assert m.process_visibility == "full"
            mine = [m.flow_at(r) for r in range(m.rowCount())]
            assert sum(1 for f in mine if f.pid == opener.pid) == 2 * n + 2
            scans = src.resolver.scans
            # a poll with no change: no /proc scan, no signal
            sig.changed.clear()
            polls = len(applied)
            await until(lambda: len(applied) >= polls + 2)
            assert src.resolver.scans == scans and applied[-1] == (0, 0, 0) and sig.changed == []
            # a few changes: 5 connections closed (10 sockets), 3 opened, 2 UDP sockets
            inserted, removed = len(sig.inserted), len(sig.removed)
            for cmd in ("close 5", "open 3", "udp 2"):
                opener.say(cmd)
                assert opener.line() == "ok"
            await in_step("after a few changes")
            assert len(sig.inserted) > inserted and len(sig.removed) > removed
            assert sum(a for a, _, _ in applied[-20:]) >= 8  # 6 TCP sockets + 2 UDP
            # the new sockets' owner was found in the process already known, not by a walk of /proc
            assert src.resolver.last_scan_pids == 1
            assert src.resolver.last_scan_reads < 100  # of its 10,000 descriptors, the new and reused ones
            assert m.flow(next(iter(f.id for f in mine if f.state == "LISTEN"))) is not None
            proxy.set_application(str(opener.pid))
            assert proxy.rowCount() == m.rowCount()
        finally:
            await src.stop()
        assert sig.resets == [] and psig.resets == []

    loop = qloop
    try:
        loop.run_until_complete(scenario())
    finally:
        opener.stop()


async def until(pred, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.02)


def test_a_connection_bound_alone_shows_its_uplinks_and_bids(qtmodeltester):
    from mhgui.core.moves import flow_selector
    from mhgui.engine.flowspec import selector_to_json
    m = FlowModel()
    context(m, [Binding(HOA, COA2, state=BindingState.REGISTERED, source="bul")])
    m.apply(table([fl(1), fl(2, local=HOA), fl(3, local=HOA)]))
    qtmodeltester.check(m)
    sig = Signals(m)
    fb = {"fid": 7, "bids": [1, 2], "bound_to": ["eth0", "wlan0"], "match": selector_to_json(flow_selector(
        fl(2, local=HOA)))}
    assert m.set_flow_bindings([fb, {"fid": 9, "match": "junk"}, "junk"]) == 1
    row = m.row_of(fl(2, local=HOA).id)
    assert m.index(row, m.COL_IFACE).data() == "eth0+wlan0 (FID 7)"
    assert "BID 1 on eth0, BID 2 on wlan0" in m.index(row, m.COL_IFACE).data(Qt.ItemDataRole.ToolTipRole)
    assert m.index(m.row_of(fl(3, local=HOA).id), m.COL_IFACE).data() == "wlan0"  # its HoA's
    assert sig.changed == [(row, row, m.COL_IFACE, m.COL_IFACE)] and not sig.resets
    m.apply(table([fl(1), fl(2, local=HOA), fl(3, local=HOA), fl(2, local=COA)]))  # a CoA flow: never bound
    assert m.index(m.row_of(fl(2, local=COA).id), m.COL_IFACE).data() == "eth0"
    assert m.set_flow_bindings([fb]) == 0
    assert m.set_flow_bindings([]) == 1 and m.index(row, m.COL_IFACE).data() == "wlan0"
