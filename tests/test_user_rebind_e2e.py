"""End to end (issue 13, items 8-11): the user rebinds a home address from the window, with UMIP.

The lab is test_rebind_e2e's World (the UMIP double as mip6d, restarted by the real helper on a private
system bus with the real policy and dbusmock polkit). The window and the app shell run in this process,
their sockets made in the node namespace. After the rebind:

- one answer to "which uplink is in use": the confirmation, the binding table and the Failover tab all
  name upB (item 9);
- the failover log says the user did it, timed from the request (item 10);
- the preferences dialog shows the order in use, upB first (item 8);
- a success message goes once what it said is no longer so (item 11): the status bar's confirmation
  after another client moves the home address back, the Flows tab's steering-rule success after the
  rule is removed.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

import pytest

from test_helper import CHANGE, READ
from test_rebind_e2e import HOA, TESTS, drop_hoa_on_interface, in_netns, world  # noqa: F401 (fixture)
from test_umip_double import TwoUplinkLab

pytestmark = [pytest.mark.netns]

STEER = "io.github.mhgui.MHGui.steer"


async def mhctl(w, *args: str, attempts: int = 6) -> str:
    """mhctl in the node namespace, as another client, without blocking the window's loop. mip6d's terminal
    takes one client at a time: while the window's driver polls it, mhctl is told it is busy and tries again."""
    for _ in range(attempts):
        p = await asyncio.create_subprocess_exec(
            "ip", "netns", "exec", w.lab.ns, sys.executable, "-m", "mhgui.cli", *args, "--system-bus",
            w.stack.address, "--mip6d-conf", str(w.conf), "--no-networkmanager", stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env=dict(os.environ, PYTHONPATH=str(TESTS.parent)))
        out, err = await asyncio.wait_for(p.communicate(), 90)
        if p.returncode == 0 or b"does not answer" not in err:
            break
        await asyncio.sleep(0.5)
    assert p.returncode == 0, (args, out, err)
    return out.decode()


@pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints")  # offscreen, any shown dialog
def test_rebind_from_the_window_one_answer_who_did_it_order_and_stale_messages(world, qtbot, qloop, tmp_path):  # noqa: F811
    from mhgui.core.failover import Preferences
    from mhgui.core.prefsfile import FailoverSettings
    from mhgui.runtime import Runtime
    from mhgui.sources.journal import FailoverJournal, read_journal
    from mhgui.sources.prefs_store import load_prefs, save_prefs
    from mhgui.ui.failover_view import FailoverLogModel
    from mhgui.ui.shell import AppShell
    from mhgui.ui.window import LiveController, MainWindow

    w = world
    w.wait_registered(TwoUplinkLab.COA_A)
    w.stack.allow(READ, CHANGE, STEER)
    prefs_path = tmp_path / "failover.toml"
    save_prefs(FailoverSettings(Preferences(("upA", "upB"), holdup=1.0)), prefs_path)
    journal_path = tmp_path / "failover.jsonl"
    loop = qloop

    async def until(pred, timeout, what):
        deadline = loop.time() + timeout
        while not pred():
            if loop.time() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            await asyncio.sleep(0.02)

    with in_netns(w.lab.ns):
        rt = Runtime(mip6d_conf=str(w.conf), system_bus=w.stack.address, use_networkmanager=False,
                     poll_interval=0.3)
        c = LiveController(rt.store, rt.clock, daemon=rt.daemon)
        win = MainWindow(c)
        qtbot.addWidget(win)
        from mhgui.helper.client import HelperClient
        win.helper_factory = lambda: HelperClient(w.stack.address)
        shell = AppShell(rt, win, lambda: None, system_bus=w.stack.address, tray=False,
                         journal=FailoverJournal(str(journal_path)), prefs_path=str(prefs_path),
                         mip6d_conf=str(w.conf))
        # as the app wires it (mhgui.ui.app): the shell's messages in the status bar
        shell.message.connect(lambda text, ok: win.statusBar().showMessage(text, 15000))
        win.rebinder.confirm = lambda plan, proceed: proceed()  # the user agrees to the plan shown

        def table():
            m = c.bindings
            return [(m.index(r, m.COL_COA).data(), m.index(r, m.COL_IFACE).data(), m.index(r, m.COL_STATE).data())
                    for r in range(m.rowCount())]

        async def scenario():
            await rt.start()
            await shell.start()
            try:
                await until(lambda: (TwoUplinkLab.COA_A, "upA", "registered") in table() and
                            shell.svc.policy.current == "upA", 15, "upA in use")

                # ---- the user drags the home address onto upB
                drop_hoa_on_interface(win, HOA, "upB")
                await until(lambda: win.rebinder.last_result is not None, 40, "the rebind")
                assert win.rebinder.last_result.confirmed, win.rebinder.last_result.reason
                await until(lambda: shell.svc.policy.current == "upB", 10, "the app's order following")
                shell.page.refresh_status()

                # item 9: one answer, read everywhere
                said = win.rebind_label.text()
                assert said.startswith("Confirmed in ") and "through upB" in said and TwoUplinkLab.COA_B in said, said
                assert (TwoUplinkLab.COA_B, "upB", "registered") in table()
                assert shell.page.status.text().startswith("The node uses upB"), shell.page.status.text()
                assert "upA" not in shell.page.status.text().split("(the mobility daemon's", 1)[0]

                # item 10: the user did it, timed from the request
                entry = next(e for e in reversed(shell.svc.log.entries) if e.to_interface == "upB")
                await until(lambda: entry.ack_time is not None, 10, f"the acknowledgement in the log {shell.svc.log.entries}")
                assert (entry.who, entry.by, entry.reason, entry.from_interface) == ("user", "user", "user rebind", "upA")
                assert entry.hoas == (HOA,)
                assert entry.trigger_time <= entry.decision_time <= entry.bu_time <= entry.ack_time
                assert len([e for e in shell.svc.log.entries if e.to_interface == "upB"]) == 1, shell.svc.log.entries
                m = shell.page.model
                row = next(r for r in range(m.rowCount()) if m.entry(r).id == entry.id)
                assert m.index(row, FailoverLogModel.COL_WHO).data() == "user"
                assert m.index(row, FailoverLogModel.COL_ACK).data().endswith(" ms")

                # item 8: the dialog shows the order in use; the saved order follows
                dlg = await shell._open_preferences()
                assert dlg.model.names()[:2] == ["upB", "upA"], dlg.model.names()
                assert dlg.ok_button.text() == "OK" and dlg.restart_label.isHidden()  # nothing to write
                dlg.reject()
                assert load_prefs(prefs_path).settings.prefs.order[:2] == ("upB", "upA")

                # item 11: the status bar's confirmation goes once the binding moves elsewhere
                await mhctl(w, "rebind", HOA, "upA", "--yes")  # another client moves it back
                await until(lambda: (TwoUplinkLab.COA_A, "upA", "registered") in table() and
                            rt.daemon.status.reachable and rt.daemon.status.state == "connected", 20, "back on upA")
                said_meanwhile: list = []
                shell.message.connect(lambda text, ok: said_meanwhile.append((text, ok)))
                result = await shell._rebind_hoa(HOA, "upB")  # the tray's way: a message in the status bar
                assert result is not None and result.confirmed, (result, said_meanwhile, rt.daemon.status)
                shown = win.statusBar().currentMessage()
                assert shown.startswith("Confirmed in ") and "through upB" in shown, shown
                await mhctl(w, "rebind", HOA, "upA", "--yes")
                await until(lambda: (TwoUplinkLab.COA_A, "upA", "registered") in table(), 20, "back on upA")
                await until(lambda: win.statusBar().currentMessage() == "", 5,
                            f"the stale confirmation to go, still {win.statusBar().currentMessage()!r}")
                assert win.rebind_label.isHidden()

                # ... and the Flows tab's steering-rule success once the rule is gone
                rid = await win.add_rule("2001:db8:77::/48", "upA")
                assert rid is not None and "now go through upA" in win.flow_label.text()
                async with HelperClient(w.stack.address) as admin:
                    await admin.remove_steering_rule(rid)
                await win.reload_rules()
                assert "now go through upA" not in win.flow_label.text()
                assert rid in win.flow_label.text() and "gone" in win.flow_label.text()
            finally:
                await shell.stop()
                await rt.stop()

        try:
            loop.run_until_complete(scenario())
        finally:
            c.close()
    # mhctl log reads who did it
    got = read_journal(str(journal_path))
    by = [(e["by"], e["reason"]) for e in got.entries if e["to"] == "upB"]
    assert ("user", "user rebind") in by, json.dumps(got.entries, indent=1)
