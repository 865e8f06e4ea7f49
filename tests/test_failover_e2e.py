"""End to end (issue 5): the primary uplink is cut in a namespace lab; the daemon fails over by itself,
the app records it with its timings, notifies, moves a steering rule, brings it back after the hold-up,
and the order set in the preferences dialog reaches mip6d.conf and the daemon.

The lab is test_rebind_e2e's World (node namespace with upA, upB; peer with the home agent stand-in;
the UMIP double as mip6d, started and restarted by the real helper on a private system bus with the
real policy file and dbusmock polkit). Notifications go to python-dbusmock's notification_daemon on a
private session bus. The window runs in this process, its sockets made inside the node namespace.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import time

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from test_helper import CHANGE, READ
from test_rebind_e2e import HOA, in_netns, world  # noqa: F401 (fixture)
from test_umip_double import TwoUplinkLab

pytestmark = [pytest.mark.netns]

STEER = "io.github.mhgui.MHGui.steer"
FALLBACK = "io.github.mhgui.MHGui.steer-fallback"
MOCK_IFACE = "org.freedesktop.DBus.Mock"


@pytest.fixture
def notifications(monkeypatch):
    from dbusmock import SpawnedMock
    from dbusmock.testcase import BusType, PrivateDBus

    import os
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", os.environ.get("DBUS_SESSION_BUS_ADDRESS", "disabled:"))
    bus = PrivateDBus(BusType.SESSION)
    bus.start()
    mock = SpawnedMock.spawn_with_template("notification_daemon", bustype=BusType.SESSION,
                                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield bus.address, mock
    finally:
        mock.terminate()
        mock.process.wait()
        bus.stop()


def summaries(mock) -> list[str]:
    return [str(args[3]) for _ts, args in mock.obj.GetMethodCalls("Notify", dbus_interface=MOCK_IFACE)]


def route_dev(w, prefix: str) -> str | None:
    out = subprocess.run(["ip", "-n", w.lab.ns, "-6", "route", "show", "table", "all"], capture_output=True,
                         text=True, check=True).stdout
    for line in out.splitlines():
        if line.startswith(prefix + " "):
            m = re.search(r" dev (\S+)", line)
            return m.group(1) if m else None
    return None


async def ip(*args: str) -> None:
    """`ip ARGS` without blocking the event loop (the app keeps reading netlink meanwhile)."""
    p = await asyncio.create_subprocess_exec("ip", *args)
    assert await p.wait() == 0


@pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints")  # offscreen, any shown dialog
def test_cutting_the_primary_uplink(world, notifications, qtbot, qloop, tmp_path):  # noqa: F811
    from mhgui.core.failover import Preferences
    from mhgui.core.prefsfile import FailoverSettings
    from mhgui.failover_service import FailoverDone
    from mhgui.helper.client import HelperClient
    from mhgui.runtime import Runtime
    from mhgui.sources.journal import FailoverJournal, read_journal
    from mhgui.sources.prefs_store import save_prefs
    from mhgui.ui.failover_view import FailoverLogModel
    from mhgui.ui.shell import AppShell
    from mhgui.ui.window import LiveController, MainWindow

    w = world
    session, mock = notifications
    w.wait_registered(TwoUplinkLab.COA_A)
    w.stack.allow(READ, CHANGE, STEER, FALLBACK)
    prefs_path = tmp_path / "failover.toml"
    save_prefs(FailoverSettings(Preferences(("upA", "upB"), holdup=1.5)), prefs_path)
    journal_path = tmp_path / "failover.jsonl"
    loop = qloop
    events = []

    async def until(pred, timeout, what):
        deadline = loop.time() + timeout
        while not pred():
            if loop.time() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            await asyncio.sleep(0.02)

    with in_netns(w.lab.ns):
        rt = Runtime(mip6d_conf=str(w.conf), system_bus=w.stack.address, use_networkmanager=False,
                     poll_interval=0.5)
        c = LiveController(rt.store, rt.clock, daemon=rt.daemon)
        win = MainWindow(c)
        qtbot.addWidget(win)
        shell = AppShell(rt, win, lambda: None, system_bus=w.stack.address, session_bus=session, tray=False,
                         journal=FailoverJournal(str(journal_path)), prefs_path=str(prefs_path),
                         mip6d_conf=str(w.conf))

        async def scenario():
            await rt.start()
            await shell.start()
            shell.svc.subscribe(events.append)
            try:
                async with HelperClient(w.stack.address) as admin:
                    await admin.add_steering_rule("2001:db8:5::/48", "upA")
                await until(lambda: route_dev(w, "2001:db8:5::/48") == "upA", 10, "the steering rule on upA")
                await until(lambda: shell.svc.policy.current == "upA" and rt.daemon.status.reachable, 10,
                            "the app and the daemon on upA")
                await until(lambda: any(b.coa == TwoUplinkLab.COA_A for b in rt.daemon.bindings()), 10,
                            "the binding through upA")
                assert shell.tray_view().state == "ok"

                # ---- the primary uplink's peer goes down (keeping its addresses, as a router's port
                # that loses its cable does: IPv6 flushes them on admin down otherwise)
                await ip("netns", "exec", w.lab.peer, "sysctl", "-qw", "net.ipv6.conf.p-upA.keep_addr_on_down=1")
                t_cut = time.monotonic()
                await ip("-n", w.lab.peer, "link", "set", "p-upA", "down")
                try:
                    await until(lambda: [e for e in events if isinstance(e, FailoverDone) and e.what == "daemon"],
                                20, "the daemon's failover to be acknowledged")
                except AssertionError:
                    raise AssertionError(f"events: {events!r}; bindings: {rt.daemon.bindings()!r}") from None
                done = next(e for e in events if isinstance(e, FailoverDone) and e.what == "daemon")
                entry = done.entry
                # one failover: the app's decision (steering) and the daemon's own move, joined (who comes
                # first in the log's view depends on whether the daemon's move was polled before the link
                # event reached the app)
                assert entry.who in ("app", "daemon"), events
                assert (entry.from_interface, entry.to_interface) == ("upA", "upB")
                assert len([e for e in shell.svc.log.entries if e.to_interface == "upB"]) == 1
                assert entry.hoas == (HOA,)
                # the kernel batches carrier notifications (linkwatch, up to 1 s): the daemon, which re-reads
                # the links on any netlink message, may move before the link-down event reaches the app
                assert entry.bu_time <= entry.ack_time and entry.trigger_time - t_cut < 1.5
                assert entry.decision_time <= entry.bu_time
                if entry.trigger_time <= entry.decision_time:
                    assert 0 <= done.took < 10, events
                else:
                    assert done.took is None and done.late > 0
                # the steering rule followed at once, through the helper
                await until(lambda: route_dev(w, "2001:db8:5::/48") == "upB", 5, "the rule on upB")
                # shown in the window's Failover tab, with the time it took
                m = shell.page.model
                row = next(r for r in range(m.rowCount()) if m.entry(r).id == entry.id)
                assert m.index(row, FailoverLogModel.COL_WHO).data() in ("mhgui+daemon", "daemon")
                ack_cell = m.index(row, FailoverLogModel.COL_ACK).data()
                assert ack_cell == (f"{done.took * 1000:.0f} ms" if done.took is not None else
                                    f"before ({(entry.trigger_time - entry.ack_time) * 1000:.0f} ms)")
                assert "uses upB (not the first choice)" in shell.page.status.text()
                assert "Steering rules failed over: upA → upB" in shell.page.status.text()
                # what the tray shows
                view = shell.tray_view()
                assert view.state == "backup"
                # a desktop notification with the time
                await until(lambda: any(s.startswith("Failover done: upA → upB") for s in summaries(mock)),
                            5, "the notification")
                note = next(s for s in summaries(mock) if s.startswith("Failover done"))
                if done.took is not None:
                    assert f"in {done.took * 1000:.0f} ms" in note, (note, done)

                # ---- upA comes back: the daemon returns at once, the steering rule after the hold-up
                t_up = time.monotonic()
                await ip("-n", w.lab.peer, "link", "set", "p-upA", "up")
                await until(lambda: any(b.coa == TwoUplinkLab.COA_A and b.state.value == "registered"
                                        for b in rt.daemon.bindings()), 20, "the daemon back on upA")
                t_daemon_back = time.monotonic()
                await until(lambda: route_dev(w, "2001:db8:5::/48") == "upA", 10, "the rule back on upA")
                t_rule_back = time.monotonic()
                assert t_rule_back - t_up >= 1.5  # the hold-up
                assert t_daemon_back - t_up < t_rule_back - t_up  # UMIP does not wait
                await until(lambda: shell.tray_view().state == "ok", 5, "the tray back to ok")
                await asyncio.sleep(1.0)  # a notification burst is told after a short quiet time
                assert not [s for s in summaries(mock) if s.startswith("Link lost: upB")], summaries(mock)
                back = [e for e in shell.svc.log.entries if e.to_interface == "upA"]
                assert back and all(e.trigger_time is not None for e in back), back  # dated from the link-up
                assert "home0" not in shell.page.status.text()  # never-marked, down: no fallback for it
                n_notes = len(summaries(mock))

                # ---- the order set in the dialog reaches mip6d.conf and the daemon
                dlg = await shell._open_preferences()
                assert dlg.model.names()[:2] == ["upA", "upB"]
                dlg.view.setCurrentIndex(dlg.model.index(1, 0))
                QTest.keyClick(dlg.view, Qt.Key.Key_Up, Qt.KeyboardModifier.AltModifier)  # upB first
                assert dlg.ok_button.text() == "Apply and restart mip6d"
                QTest.mouseClick(dlg.ok_button, Qt.MouseButton.LeftButton)
                await until(lambda: "upB" in w.conf.read_text() and re.search(
                    r'Interface "upB" \{ MnIfPreference 1; \}', w.conf.read_text()), 20, "mip6d.conf rewritten")
                assert re.search(r'Interface "upA" \{ MnIfPreference 2; \}', w.conf.read_text())
                await until(lambda: any(b.coa == TwoUplinkLab.COA_B and b.state.value == "registered"
                                        for b in rt.daemon.bindings()), 30, "the restarted daemon on upB")
                assert shell.svc.policy.prefs.order[:2] == ("upB", "upA")
                moved = [e for e in shell.svc.log.entries if e.reason == "preferences"]
                assert moved and moved[-1].to_interface == "upB"
                # the user's doing (issue 13.10), timed from the request to the daemon's acknowledgement
                assert (moved[-1].who, moved[-1].by, moved[-1].from_interface) == ("user", "user", "upA"), moved
                await until(lambda: moved[-1].ack_time is not None, 10, f"the move acknowledged in the log: {moved}")
                assert moved[-1].trigger_time <= moved[-1].decision_time <= moved[-1].bu_time <= moved[-1].ack_time
                assert len(moved) == 1, moved
                await asyncio.sleep(1.0)
                later = summaries(mock)[n_notes:]
                assert not [s for s in later if "lost" in s], later  # our own restart is not news
                assert "upB" in prefs_path.read_text()
            finally:
                await shell.stop()
                await rt.stop()

        try:
            loop.run_until_complete(scenario())
        finally:
            c.close()
    # the journal mhctl log reads
    got = read_journal(str(journal_path))
    assert [(e["from"], e["to"]) for e in got.entries][:1] == [("upA", "upB")]
    assert got.entries[0]["ack_time"] is not None and got.entries[0]["trigger_time"] is not None
