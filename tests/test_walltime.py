"""Wall-clock times across a suspend: CLOCK_MONOTONIC stops while the machine sleeps, the wall clock does not.

An injected clock simulates a suspend (monotonic pauses while wall advances). Whatever was recorded before it
keeps its true wall time in the Health CSV and timeline, in the failover log's "When" column and export, in
the journal and in ``mhctl log``; what comes after has its own.
"""

from __future__ import annotations

import csv
import math
import time
from datetime import datetime, timezone

import pytest
from PySide6.QtWidgets import QWidget

from mhgui.core.analysis import analyse
from mhgui.core.health import Health, LinkCounters, csv_text, events_of_changes
from mhgui.core.model import Interface, InterfaceKind
from mhgui.core.state import Change, LinkUpsert, NetlinkSnapshot, StateStore
from mhgui.core.walltime import WallMap
from mhgui.daemons.base import DaemonMoved
from mhgui.sources.journal import FailoverJournal, read_journal
from mhgui.sources.linkstats import StatsTick

W0 = 1_780_000_000.0  # the wall clock at monotonic 1000 s
SLEEP = 3600.0  # the suspend


class SuspendClock:
    """Monotonic and wall clocks that move together, except during :meth:`suspend` (only the wall moves)."""

    def __init__(self, mono: float = 1000.0, wall: float = W0) -> None:
        self.m, self.w = mono, wall

    def mono(self) -> float:
        return self.m

    def wall(self) -> float:
        return self.w

    def advance(self, s: float) -> None:
        self.m += s
        self.w += s

    def suspend(self, s: float) -> None:
        self.w += s


def iso(wall: float) -> str:
    return datetime.fromtimestamp(wall, timezone.utc).isoformat(timespec="milliseconds")


# --------------------------------------------------------------------------- the map itself (pure)
def test_times_before_a_suspend_keep_their_offset_and_times_after_get_the_new_one():
    clk, m = SuspendClock(), WallMap()
    with pytest.raises(LookupError):
        m.wall_of(1000.0)
    m.note(clk.mono(), clk.wall())
    clk.advance(5.0)  # something recorded at 1005, noted in the same step
    m.note(clk.mono(), clk.wall())
    assert len(m) == 1  # same offset: one segment
    clk.suspend(SLEEP)
    clk.advance(0.5)
    m.note(clk.mono(), clk.wall())  # the first step after the resume
    assert len(m) == 2
    assert m.wall_of(1000.0) == W0 and m.wall_of(1005.0) == W0 + 5.0
    assert m.wall_of(1005.5) == W0 + 5.5 + SLEEP
    assert m.wall_of(2000.0) == 2000.0 - 1000.0 + W0 + SLEEP  # later than any note: the latest offset
    assert m.wall_of(0.0) == W0 - 1000.0  # earlier than any note: the first
    assert m.mono_of(W0 + SLEEP + 5.5) == pytest.approx(1005.5)


def test_a_note_going_backwards_or_not_finite_is_ignored_and_segments_are_bounded():
    m = WallMap(max_segments=3)
    m.note(10.0, 110.0)
    m.note(5.0, 999.0)
    m.note(math.nan, 1.0)
    m.note(11.0, math.inf)
    assert len(m) == 1 and m.wall_of(10.0) == 110.0
    for i in range(1, 6):  # five suspends of 100 s, 1 s apart
        m.note(10.0 + i, 110.0 + i + 100 * i)
    assert len(m) == 3
    assert m.wall_of(15.0) == 15.0 + 600.0
    assert m.wall_of(13.0) == 13.0 + 400.0


def test_slow_drift_within_the_tolerance_extends_one_segment():
    m = WallMap(tolerance=0.005)
    for i in range(100):  # 20 ppm of slew: 2 ms over 100 s
        m.note(float(i), 1000.0 + i * (1 + 20e-6))
    assert len(m) == 1
    assert m.wall_of(50.0) == pytest.approx(1050.0, abs=0.005)


# --------------------------------------------------------------------------- Health (core)
def test_health_csv_gives_samples_and_events_before_a_suspend_their_true_time():
    clk, h = SuspendClock(), Health()
    h.add_counters(clk.mono(), [LinkCounters(2, "up0", 0, 0)])
    h.note_wall(clk.mono(), clk.wall())
    clk.advance(1.0)
    h.add_counters(clk.mono(), [LinkCounters(2, "up0", 1000, 0)])
    h.record_all(events_of_changes(clk.mono(), [Change("link-down", ifindex=2)], {2: "up0"}))
    h.note_wall(clk.mono(), clk.wall())
    clk.suspend(SLEEP)
    clk.advance(1.0)
    h.add_counters(clk.mono(), [LinkCounters(2, "up0", 3000, 0)])
    h.note_wall(clk.mono(), clk.wall())
    rows = list(csv.DictReader(csv_text(h).splitlines()))
    by_t = {}
    for r in rows:
        by_t.setdefault(r["t_s"], set()).add(r["time_utc"])
    assert by_t == {"1001.000": {iso(W0 + 1.0)}, "1002.000": {iso(W0 + 2.0 + SLEEP)}}
    assert any(r["record"] == "event" and r["t_s"] == "1001.000" for r in rows)
    assert csv_text(h, wall_offset=0.0).splitlines()[1].startswith(iso(1001.0))  # a fixed offset still works


# --------------------------------------------------------------------------- Health tab (Qt)
class FakeSource:
    def __init__(self):
        self.sink = None
        self.active = False

    def set_active(self, on: bool) -> None:
        self.active = on


def _iface(up: bool) -> Interface:
    return Interface(2, "up0", InterfaceKind.ETHERNET, up, up, up, "up" if up else "down")


def test_health_tab_export_and_timeline_keep_the_wall_time_across_a_suspend(qtbot, monkeypatch, tmp_path):
    from mhgui.ui.health_view import HealthFeed, HealthPage
    clk = SuspendClock()
    monkeypatch.setattr(time, "time", clk.wall)
    host = QWidget()
    qtbot.addWidget(host)
    store = StateStore()
    store.apply(LinkUpsert(_iface(True)))
    feed = HealthFeed(host, store, None, clk.mono)
    page = HealthPage(feed)
    qtbot.addWidget(page)
    src = FakeSource()
    feed.attach(src)
    src.sink(StatsTick(clk.mono(), (LinkCounters(2, "up0", 0, 0),), None))
    clk.advance(1.0)
    src.sink(StatsTick(clk.mono(), (LinkCounters(2, "up0", 1000, 0),), None))
    store.apply(LinkUpsert(_iface(False)))  # link-down at 1001
    clk.suspend(SLEEP)
    clk.advance(1.0)
    store.apply(LinkUpsert(_iface(True)))  # link-up at 1002, after the resume
    path = str(tmp_path / "health.csv")
    with qtbot.waitSignal(page.exported, timeout=5000):
        page.export_csv(path)
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    when = {r["metric"]: r["time_utc"] for r in rows if r["record"] == "event"}
    assert when["link/link-down"] == iso(W0 + 1.0), when
    assert when["link/link-up"] == iso(W0 + 2.0 + SLEEP), when
    assert {r["time_utc"] for r in rows if r["record"] == "throughput"} == {iso(W0 + 1.0)}
    assert page._wall_of(1001.0) == W0 + 1.0  # the timeline's tooltips and axis labels
    assert page._wall_of(1002.0) == W0 + 2.0 + SLEEP


# --------------------------------------------------------------------------- failover log, journal, mhctl log
def test_failover_when_export_journal_and_mhctl_log_keep_the_time_of_a_move_before_a_suspend(
        qtbot, qloop, monkeypatch, tmp_path):
    from mhgui.cli import format_log_entry
    from mhgui.core.failover import Preferences
    from mhgui.failover_service import FailoverService
    from mhgui.ui.failover_view import FailoverLogModel, FailoverPage
    from mhgui.ui.tableexport import EXPORT_ROLE
    from test_failover import IFACES, ROUTER, addr, link
    from test_failover_service import HOA, Driver

    clk = SuspendClock()
    monkeypatch.setattr(time, "time", clk.wall)
    store = StateStore()
    store.apply(NetlinkSnapshot(tuple(link(n).iface for n in IFACES), tuple(addr(n).address for n in IFACES),
                                tuple((IFACES[n][0], ROUTER) for n in IFACES)))
    driver = Driver()
    journal = FailoverJournal(str(tmp_path / "failover.jsonl"), monotonic=clk.mono, wall=clk.wall)
    svc = FailoverService(store, clk.mono, lambda: analyse(store.state, clk.mono()),
                          Preferences(["eth0", "wlan0", "wwan0"]), daemon=driver, journal=journal)
    page = FailoverPage(svc)
    qtbot.addWidget(page)

    async def run():
        svc.start()
        clk.advance(1.0)
        e = svc.user_action("user rebind", "wlan0", hoas=(HOA,))  # at 1001
        clk.suspend(SLEEP)  # the laptop sleeps before the home agent answers
        clk.advance(1.0)
        driver._emit(DaemonMoved(HOA, "eth0", "wlan0", "rebind requested", clk.mono() - 0.1, clk.mono() - 0.1,
                                 clk.mono()))
        return e

    e = qloop.run_until_complete(run())
    assert e.decision_time == 1001.0 and e.ack_time == 1002.0
    model = page.model
    row = next(r for r in range(model.rowCount()) if model.entry(r).id == e.id)
    shown = model.index(row, FailoverLogModel.COL_WHEN).data()
    assert shown == time.strftime("%H:%M:%S", time.localtime(W0 + 1.0))
    exported = datetime.fromisoformat(model.index(row, FailoverLogModel.COL_WHEN).data(EXPORT_ROLE))
    assert exported.timestamp() == pytest.approx(W0 + 1.0, abs=0.001)
    page.close_page()
    qloop.run_until_complete(svc.stop())
    journal.close()
    got = read_journal(journal.path)
    last = [x for x in got.entries if x["id"] == e.id][-1]
    assert last["wall"]["decision"] == pytest.approx(W0 + 1.0, abs=0.001)  # written again after the resume
    assert last["wall"]["ack"] == pytest.approx(W0 + 2.0 + SLEEP, abs=0.001)
    assert format_log_entry(last).startswith(time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(W0 + 1.0)))


def test_earlier_runs_failovers_keep_their_time_after_a_suspend(qtbot, qloop, monkeypatch, tmp_path):
    """The window's history (the journal's earlier runs, loaded at the start) is not moved by a later suspend."""
    import json
    from types import SimpleNamespace

    from mhgui.ui.failover_view import FailoverLogModel, FailoverPage
    from mhgui.ui.shell import AppShell
    from mhgui.ui.tableexport import EXPORT_ROLE

    clk = SuspendClock()
    monkeypatch.setattr(time, "time", clk.wall)
    path = tmp_path / "failover.jsonl"
    earlier = {"id": 3, "session": "1-1", "who": "app", "by": "mhgui", "from": "eth0", "to": "wlan0",
               "reason": "link-down", "hoas": [], "wall": {"trigger": W0 - 600.0, "decision": W0 - 599.9,
                                                           "bu": None, "ack": None}}
    path.write_text(json.dumps(earlier) + "\n", encoding="utf-8")
    store = StateStore()
    rt = SimpleNamespace(store=store, clock=clk.mono, analysis=lambda: analyse(store.state, clk.mono()), daemon=None)
    host = QWidget()
    qtbot.addWidget(host)
    shell = AppShell(rt, host, lambda: None, tray=False,
                     journal=FailoverJournal(str(path), monotonic=clk.mono, wall=clk.wall))
    shell.page = FailoverPage(shell.svc)
    qtbot.addWidget(shell.page)
    qloop.run_until_complete(shell._load_history())
    clk.advance(10.0)
    clk.suspend(SLEEP)
    clk.advance(1.0)
    m = shell.page.model
    assert m.rowCount() == 1
    assert m.index(0, FailoverLogModel.COL_WHEN).data() == time.strftime("%H:%M:%S", time.localtime(W0 - 599.9))
    exported = datetime.fromisoformat(m.index(0, FailoverLogModel.COL_WHEN).data(EXPORT_ROLE))
    assert exported.timestamp() == pytest.approx(W0 - 599.9, abs=0.001)
    shell.page.close_page()
    shell.journal.close()
