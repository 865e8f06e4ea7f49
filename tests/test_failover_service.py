"""FailoverService: the policy on a live StateStore and a real asyncio loop; the failover journal on disk.

The store gets the events the netlink source would send; the steering setter
and the daemon driver are the service's injected adapters (the real helper and
the UMIP double are exercised end to end in test_failover_e2e.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import time

import pytest

from mhgui.core.analysis import analyse
from mhgui.core.bindings import BindingState
from mhgui.core.failover import Preferences
from mhgui.core.state import NetlinkSnapshot, StateStore
from mhgui.daemons.base import DaemonDriver, DaemonStatus
from mhgui.failover_service import (
    DaemonBack, DaemonLost, EntryChanged, FailoverDone, FailoverFailed, FailoverService, LinkLost,
)
from mhgui.sources.journal import FailoverJournal, read_journal
from test_failover import COA, IFACES, ROUTER, addr, bul, key, link

HOA = "2001:db8:100::10"


class Driver(DaemonDriver):
    """A daemon driver whose events the test sends (the service only subscribes and reads)."""

    name = "test"

    def __init__(self) -> None:
        super().__init__()
        self.hurried: list[float] = []

    def hurry(self, duration: float) -> None:
        self.hurried.append(duration)

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def plan_rebind(self, hoa, ifname, live):
        raise NotImplementedError

    async def rebind(self, plan, **kw):
        raise NotImplementedError


class World:
    def __init__(self, prefs: Preferences, *, steering=True, daemon: DaemonDriver | None = None,
                 journal: FailoverJournal | None = None, fail_steering: int = 0) -> None:
        self.store = StateStore()
        self.sent: list[tuple[float, dict]] = []
        self.fail_steering = fail_steering
        self.events: list = []
        self.store.apply(NetlinkSnapshot(
            tuple(link(n).iface for n in IFACES), tuple(addr(n).address for n in IFACES),
            tuple((IFACES[n][0], ROUTER) for n in IFACES)))
        self.svc = FailoverService(
            self.store, time.monotonic, lambda: analyse(self.store.state, time.monotonic()), prefs,
            daemon=daemon, steering=self._steer if steering else None, journal=journal)
        self.svc.subscribe(self.events.append)

    async def _steer(self, fallback) -> None:
        await asyncio.sleep(0.01)  # a D-Bus round trip
        if self.fail_steering:
            self.fail_steering -= 1
            raise RuntimeError("the helper said no")
        self.sent.append((time.monotonic(), dict(fallback)))
        return True

    def of(self, kind) -> list:
        return [e for e in self.events if isinstance(e, kind)]


async def until(pred, what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


PREFS = Preferences(["eth0", "wlan0", "wwan0"], holdup=0.3, churn_window=0.2)


@pytest.mark.asyncio
async def test_link_loss_moves_steering_rules_at_once_and_back_after_holdup(tmp_path):
    w = World(PREFS, journal=FailoverJournal(str(tmp_path / "failover.jsonl")))
    w.svc.start()
    await asyncio.sleep(0.05)
    assert w.sent == [] and w.svc.policy.current == "eth0"
    t0 = time.monotonic()
    w.store.apply(link("eth0", up=False))
    await until(lambda: w.sent, "the fallback to be sent")
    assert w.sent[0][1] == {"eth0": "wlan0"}
    assert w.sent[0][0] - t0 < 0.5
    [lost] = w.of(LinkLost)
    assert (lost.interface, lost.reason) == ("eth0", "link-down")
    [done] = w.of(FailoverDone)
    assert done.what == "steering" and 0 < done.took < 0.5 and done.entry.to_interface == "wlan0"
    # eth0 back: the rules wait for the hold-up, then return
    t1 = time.monotonic()
    w.store.apply(link("eth0"))
    await until(lambda: len(w.sent) == 2, "the rules to go back")
    assert w.sent[1][1] == {}
    assert w.sent[1][0] - t1 >= 0.3
    await w.svc.stop()
    w.svc.journal.close()
    got = read_journal(str(tmp_path / "failover.jsonl"))
    assert [(e["from"], e["to"], e["reason"]) for e in got.entries] == [
        ("eth0", "wlan0", "link-down"), ("wlan0", "eth0", "preferred-back")]
    assert got.entries[0]["wall"]["decision"] == pytest.approx(time.time(), abs=10)


@pytest.mark.asyncio
async def test_flapping_link_sends_one_fallback_and_one_return():
    w = World(PREFS)
    w.svc.start()
    w.store.apply(link("eth0", up=False))
    for _ in range(5):  # up 0.1 s, down again: never stable for 0.3 s
        await asyncio.sleep(0.05)
        w.store.apply(link("eth0"))
        await asyncio.sleep(0.1)
        w.store.apply(link("eth0", up=False))
    await asyncio.sleep(0.1)
    w.store.apply(link("eth0"))
    await until(lambda: len(w.sent) == 2, "the return")
    await asyncio.sleep(0.4)
    assert [m for _, m in w.sent] == [{"eth0": "wlan0"}, {}]
    await w.svc.stop()


@pytest.mark.asyncio
async def test_steering_failure_is_reported_and_retried_at_the_next_change():
    w = World(PREFS, fail_steering=1)
    w.svc.start()
    w.store.apply(link("eth0", up=False))
    await until(lambda: w.of(FailoverFailed), "the failure")
    assert "the helper said no" in w.of(FailoverFailed)[0].message and w.sent == []
    w.store.apply(link("wlan0", up=False))  # the next change: the new map goes out
    await until(lambda: w.sent, "the retry")
    assert w.sent[-1][1] == {"eth0": "wwan0", "wlan0": "wwan0"}
    await w.svc.stop()
    assert w.sent[-1][1] == {}  # stop() puts every rule back on its own interface


@pytest.mark.asyncio
async def test_no_usable_interface_is_a_failure_event():
    w = World(PREFS, steering=False)
    w.svc.start()
    for n in IFACES:
        w.store.apply(link(n, up=False))
    await until(lambda: w.of(FailoverFailed), "the failure")
    assert "no usable interface" in w.of(FailoverFailed)[0].message
    await w.svc.stop()


@pytest.mark.asyncio
async def test_daemon_move_is_timed_from_the_link_event_and_acknowledged():
    d = Driver()
    d._set_status(DaemonStatus("test", "mn", True, "connected"))
    w = World(PREFS, steering=False, daemon=d)
    w.svc.start()
    d._set_bindings((bul(HOA, COA["eth0"], "eth0"),))
    await asyncio.sleep(0.02)
    w.store.apply(link("eth0", up=False))
    await until(lambda: d.hurried, "the driver to be hurried")
    await asyncio.sleep(0.05)
    # the daemon moves by itself: a BU through wlan0, then the acknowledgement
    d._set_bindings((bul(HOA, COA["wlan0"], "wlan0", state=BindingState.WAITING_ACK),))
    await asyncio.sleep(0.05)
    d._set_bindings((bul(HOA, COA["wlan0"], "wlan0"),))
    await until(lambda: w.of(FailoverDone), "the failover to be done")
    [done] = w.of(FailoverDone)
    e = done.entry
    assert done.what == "daemon" and e.hoas == (HOA,)
    assert e.trigger_time <= e.decision_time <= e.bu_time < e.ack_time
    assert done.took == pytest.approx(e.ack_time - e.trigger_time)
    assert 0.09 < done.took < 1.0
    assert any(isinstance(x, EntryChanged) and x.entry.ack_time is not None for x in w.events)
    # the daemon stops answering
    d._set_status(DaemonStatus("test", None, False, "absent", "mip6d is not running"))
    [lost] = w.of(DaemonLost)
    assert lost.message == "mip6d is not running"
    assert not w.of(DaemonBack)
    # it answers again: "lost" is followed by "back" (issue 15.7), once
    d._set_status(DaemonStatus("test", "mn", True, "connected"))
    d._set_status(DaemonStatus("test", "mn", True, "connected"))
    [back] = w.of(DaemonBack)
    assert back.gone >= 0 and back.at >= lost.at
    from mhgui.core import notices
    n = notices.daemon_back("mip6d", back.gone)
    assert n.kind == notices.DAEMON_BACK and "back" in n.title and n.kind in notices.KINDS
    await w.svc.stop()


@pytest.mark.asyncio
async def test_unacknowledged_move_is_reported(monkeypatch):
    import mhgui.failover_service as fs

    monkeypatch.setattr(fs, "ACK_TIMEOUT", 0.2)
    d = Driver()
    d._set_status(DaemonStatus("test", "mn", True, "connected"))
    w = World(PREFS, steering=False, daemon=d)
    w.svc.start()
    d._set_bindings((bul(HOA, COA["eth0"], "eth0"),))
    w.store.apply(link("eth0", up=False))
    await asyncio.sleep(0.02)
    d._set_bindings((bul(HOA, COA["wlan0"], "wlan0", state=BindingState.WAITING_ACK),))
    await until(lambda: w.of(FailoverFailed), "the missing acknowledgement to be reported")
    assert "not acknowledged" in w.of(FailoverFailed)[0].message
    assert not w.of(FailoverDone)
    await w.svc.stop()


# --------------------------------------------------------------------------- journal
def test_journal_keeps_the_last_version_of_each_entry_and_skips_garbage(tmp_path):
    path = tmp_path / "state" / "mhgui" / "failover.jsonl"
    j = FailoverJournal(str(path), monotonic=lambda: 100.0, wall=lambda: 1_000_000.0)
    base = {"id": 1, "who": "daemon", "from": "eth0", "to": "wlan0", "reason": "link-down", "hoas": [],
            "trigger_time": 90.0, "decision_time": 90.5, "bu_time": None, "ack_time": None}
    j.append(base)
    j.append(dict(base, bu_time=90.6, ack_time=90.8))
    j.append(dict(base, id=2, reason="coa-lost"))
    j.close()
    with open(path, "ab") as f:
        f.write(b"{not json\n\xff\xfe\n[1,2]\n")
    got = read_journal(str(path))
    assert got.skipped == 3 and got.error == ""
    assert [(e["id"], e["ack_time"]) for e in got.entries] == [(1, 90.8), (2, None)]
    assert got.entries[0]["wall"] == {"trigger": 999990.0, "decision": 999990.5, "bu": 999990.6, "ack": 999990.8}
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"


def test_journal_missing_fifo_and_compaction(tmp_path, monkeypatch):
    assert read_journal(str(tmp_path / "none.jsonl")).entries == []
    fifo = tmp_path / "fifo.jsonl"
    os.mkfifo(fifo)
    assert "not a regular file" in read_journal(str(fifo)).error
    import mhgui.sources.journal as jm

    monkeypatch.setattr(jm, "MAX_BYTES", 2000)
    monkeypatch.setattr(jm, "KEEP", 5)
    path = tmp_path / "failover.jsonl"
    j = FailoverJournal(str(path))
    for i in range(1, 40):
        j.append({"id": i, "who": "app", "from": "a", "to": "b", "reason": "link-down", "hoas": [],
                  "trigger_time": float(i), "decision_time": float(i), "bu_time": None, "ack_time": None})
    j.close()
    assert os.path.getsize(path) < 4000
    got = read_journal(str(path))
    assert [e["id"] for e in got.entries][-1] == 39 and len(got.entries) < 20 and got.skipped == 0
    json.loads(path.read_text().splitlines()[0])


def test_journal_write_failure_is_logged_once(tmp_path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("")
    j = FailoverJournal(str(blocker / "sub" / "failover.jsonl"))  # a file where a directory must be
    for i in range(3):
        j.append({"id": i, "trigger_time": None, "decision_time": 1.0, "bu_time": None, "ack_time": None})
    j.close()
    assert len([r for r in caplog.records if "cannot write the failover journal" in r.message]) == 1


# --------------------------------------------------------------------------- mhctl log
def test_mhctl_log_text_and_json(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "failover.jsonl"
    j = FailoverJournal(str(path))
    j.append({"id": 1, "who": "daemon", "by": "daemon", "from": "eth0", "to": "wlan0", "reason": "link-down",
              "hoas": [HOA], "trigger_time": 10.0, "decision_time": 10.004, "bu_time": 10.1, "ack_time": 10.25,
              "after_trigger": {"decision": 0.004, "bu": 0.1, "ack": 0.25}})
    j.close()
    env = dict(os.environ, XDG_STATE_HOME=str(tmp_path / "empty"))
    run = lambda *a: subprocess.run([sys.executable, "-m", "mhgui.cli", "log", *a], capture_output=True,  # noqa: E731
                                    text=True, env=env, timeout=60)
    out = run("--file", str(path))
    assert out.returncode == 0, out.stderr
    line = out.stdout.splitlines()[1]
    assert "daemon" in line and "eth0 -> wlan0" in line and "link-down" in line
    assert "decision 4 ms" in line and "BU 100 ms" in line and "ack 250 ms" in line and HOA in line
    data = json.loads(run("--file", str(path), "--json").stdout)
    data = data["failovers"]  # one object since schema 1 (issue 15.9)
    assert data[0]["after_trigger"]["ack"] == 0.25 and data[0]["session"] == j.session
    empty = run()
    assert empty.returncode == 0 and "no failover recorded yet" in empty.stdout
    (tmp_path / "bad.jsonl").write_bytes(b"\x00garbage\n")
    bad = run("--file", str(tmp_path / "bad.jsonl"))
    assert bad.returncode == 0 and "1 unreadable line" in bad.stderr
    os.mkfifo(tmp_path / "fifo")
    fifo = run("--file", str(tmp_path / "fifo"))
    assert fifo.returncode == 1 and "not a regular file" in fifo.stderr


# --------------------------------------------------------------------------- the window's Failover tab
def test_failover_page_model_and_status(qtbot, qtmodeltester, qloop):
    from mhgui.ui.failover_view import FailoverLogModel, FailoverPage

    async def scenario():
        d = Driver()
        d._set_status(DaemonStatus("umip", "mn", True, "connected"))
        w = World(PREFS, daemon=d)
        w.svc.start()
        page = FailoverPage(w.svc)
        qtbot.addWidget(page)
        qtmodeltester.check(page.model)
        assert page.model.rowCount() == 0 and "uses eth0." in page.status.text()
        assert "moves the home addresses by itself" in page.status.text()
        inserted = []
        page.model.rowsInserted.connect(lambda *a: inserted.append(a[1:]))
        changed = []
        page.model.dataChanged.connect(lambda a, b, *r: changed.append((a.row(), b.row())))
        d._set_bindings((bul(HOA, COA["eth0"], "eth0"),))
        w.store.apply(link("eth0", up=False))
        await until(lambda: page.model.rowCount() == 1, "the app's entry")
        assert inserted == [(0, 0)]
        # one answer to "which uplink": the daemon's binding list (still eth0); mhgui's own choice apart
        assert "uses eth0 (the mobility daemon's binding list" in page.status.text()
        assert "mhgui's own order chose wlan0" in page.status.text()
        assert "Steering rules failed over: eth0 → wlan0" in page.status.text() or not w.sent
        d._set_bindings((bul(HOA, COA["wlan0"], "wlan0"),))  # BU and ack seen in one poll
        await until(lambda: page.model.entry(0).ack_time is not None, "the acknowledgement")
        page.refresh_status()
        assert "uses wlan0 (not the first choice)" in page.status.text()
        assert "mhgui's own order chose" not in page.status.text()
        assert set(changed) == {(0, 0)}  # the one row, never a reset
        m = page.model
        assert m.index(0, FailoverLogModel.COL_FROM).data() == "eth0"
        assert m.index(0, FailoverLogModel.COL_TO).data() == "wlan0"
        assert m.index(0, FailoverLogModel.COL_ACK).data().endswith(" ms")
        assert m.index(0, FailoverLogModel.COL_HOAS).data() == HOA
        qtmodeltester.check(m)
        w.store.apply(link("eth0"))
        await until(lambda: "after the hold-up" in page.status.text(), "the hold-up to be shown")
        await until(lambda: page.model.rowCount() == 2, "the way back")
        assert m.index(1, FailoverLogModel.COL_REASON).data() == "preferred-back"
        page.close_page()
        await w.svc.stop()

    qloop.run_until_complete(scenario())


# --------------------------------------------------------------------------- the helper misbehaving
@pytest.mark.asyncio
async def test_a_failed_call_the_helper_applied_anyway_is_undone():
    helper: dict = {}
    calls = []
    w = World(PREFS)

    async def steer(fb):
        calls.append(dict(fb))
        helper.clear()
        helper.update(fb)  # applied...
        if len(calls) == 1:
            raise RuntimeError("the mhgui helper did not answer SetSteeringFallback")  # ...the reply lost
        return True

    w.svc.steering = steer
    w.svc.start()
    w.store.apply(link("eth0", up=False))
    await until(lambda: calls, "the first call")
    w.store.apply(link("eth0"))
    await until(lambda: len(calls) == 2, "the rules sent back after the hold-up")
    assert helper == {}
    await w.svc.stop()


@pytest.mark.asyncio
async def test_stop_is_bounded_when_the_helper_hangs(monkeypatch):
    import mhgui.failover_service as fs

    monkeypatch.setattr(fs, "STOP_TIMEOUT", 0.2)
    n = []
    w = World(PREFS)

    async def steer(fb):
        n.append(fb)
        if len(n) >= 2:
            await asyncio.Event().wait()  # a wedged helper
        return True

    w.svc.steering = steer
    w.svc.start()
    w.store.apply(link("eth0", up=False))
    await until(lambda: n, "the fallback")
    t0 = time.monotonic()
    await asyncio.wait_for(w.svc.stop(), 5)
    assert time.monotonic() - t0 < 2 and n[-1] == {}


def test_journal_survives_a_fifo_and_a_big_file_and_mhctl_log_odd_values(tmp_path, monkeypatch):
    import subprocess
    import sys

    fifo = tmp_path / "fifo.jsonl"
    os.mkfifo(fifo)
    j = FailoverJournal(str(fifo))
    j.append({"id": 1, "trigger_time": None, "decision_time": 1.0, "bu_time": None, "ack_time": None})
    done = j._pool.submit(lambda: None)
    done.result(timeout=5)  # the writer did not block on the FIFO
    j.close()
    # a journal larger than what read_journal takes by default is compacted, never emptied
    import mhgui.sources.journal as jm

    monkeypatch.setattr(jm, "MAX_BYTES", 4000)
    path = tmp_path / "big.jsonl"
    line = json.dumps({"id": 0, "session": "s", "who": "app", "wall": {"decision": 1.0}, "pad": "x" * 25000})  # 5 MB: over what read_journal takes by default
    path.write_text("".join(line.replace('"id": 0', f'"id": {i}') + "\n" for i in range(1, 200)))
    j = FailoverJournal(str(path))
    j.append({"id": 500, "trigger_time": None, "decision_time": 2.0, "bu_time": None, "ack_time": None})
    j.close()
    got = read_journal(str(path), max_bytes=10 ** 7)
    assert got.entries and got.entries[-1]["id"] == 500 and len(got.entries) <= jm.KEEP
    # odd values in a hand-edited journal
    odd = tmp_path / "odd.jsonl"
    odd.write_text('{"id":1,"session":"a","wall":{"decision":1e20},"after_trigger":{"ack":NaN}}\n'
                   '{"id":true,"session":"a"}\n')
    out = subprocess.run([sys.executable, "-m", "mhgui.cli", "log", "--file", str(odd)], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    assert "1 unreadable line" in out.stderr
    data = json.loads(subprocess.run([sys.executable, "-m", "mhgui.cli", "log", "--file", str(odd), "--json"],
                                     capture_output=True, text=True, timeout=60).stdout)
    assert data["failovers"][0]["after_trigger"]["ack"] is None
    bad = subprocess.run([sys.executable, "-m", "mhgui.cli", "log", "-n", "-1"], capture_output=True, text=True,
                         timeout=60)
    assert bad.returncode == 2 and "0 or more" in bad.stderr


def test_failover_tab_shows_earlier_runs_from_the_journal(tmp_path, qtbot, qtmodeltester):
    from mhgui.sources.journal import past_entries
    from mhgui.ui.failover_view import FailoverLogModel

    path = tmp_path / "failover.jsonl"
    old = FailoverJournal(str(path), monotonic=lambda: 100.0, wall=lambda: 1_000_000.0)
    old.append({"id": 1, "who": "app", "from": "eth0", "to": "wlan0", "reason": "link-down", "hoas": [HOA],
                "trigger_time": 90.0, "decision_time": 90.004, "bu_time": 90.1, "ack_time": 90.2})
    old.close()
    with open(path, "a") as f:  # odd lines of a hand-edited journal are skipped
        f.write('{"id": 2, "session": "x", "who": "app", "wall": {"decision": "soon"}}\n'
                '{"id": 3, "session": "x", "who": "root", "wall": {"decision": 5}}\n')
    got = read_journal(str(path))
    past = past_entries(got.entries, lambda wall: wall - 999_000.0, skip_session="this-run")
    assert len(past) == 1
    e = past[0]
    assert e.id < 0 and (e.from_interface, e.to_interface, e.hoas) == ("eth0", "wlan0", (HOA,))
    assert e.ack_time - e.trigger_time == pytest.approx(0.2)
    assert past_entries(got.entries, lambda w: w, skip_session=old.session) == []
    m = FailoverLogModel(lambda t: t + 999_000.0)
    qtmodeltester.check(m)
    m.upsert(_entry_for_test())
    m.add_past(past)
    assert m.rowCount() == 2 and m.entry(0).id == e.id
    assert m.index(0, FailoverLogModel.COL_ACK).data() == "200 ms"
    qtmodeltester.check(m)


def _entry_for_test():
    from mhgui.core.failover import FailoverEntry
    return FailoverEntry(1, "app", "wlan0", "eth0", "preferred-back", 10.0, 15.0)


def test_runtime_shares_one_analysis_until_the_store_changes():
    from mhgui.runtime import Runtime

    t = [100.0]
    rt = Runtime(vt_port=None, use_networkmanager=False, clock=lambda: t[0])
    a = rt.analysis()
    assert rt.analysis() is a  # the tray, failover and the daemon's live view share it
    rt.store.apply(link("eth0"))
    rt.store.apply(addr("eth0", preferred_until=t[0] + 0.5, valid_until=t[0] + 60))
    b = rt.analysis()
    assert b is not a and b.roles[key("eth0")].role == "coa"
    t[0] += 1.0  # lifetimes run on: computed again (the CoA's preferred lifetime ended meanwhile)
    c = rt.analysis()
    assert c is not b and c.roles[key("eth0")].role == "unusable"
