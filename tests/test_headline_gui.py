"""The node's answer at the top of the window, its action button, and the tray (issue 15.1, 15.3, 15.7).

Real parts: a network namespace with a veth uplink read by the real netlink source (a normal machine:
IPv4 and a ULA, no home address); the real privileged helper on a private system bus with polkit and
systemd mocks (tests/test_helper.py's stack), asked by the window's "Restart the mobility daemon"
button, refused by polkit and then allowed; the real engine driver finding no engine on that bus.
"""

from __future__ import annotations

import time

import pytest

from mhgui.core.headline import ACTION_RESTART_DAEMON, ACTION_TRY_LAB
from mhgui.core.model import HomeAddress
from mhgui.core.state import HomeAddressesSet, StateStore
from mhgui.core.trayview import build_tray_view
from mhgui.sources.netlink import NetlinkSource
from mhgui.ui.header import answer_of
from mhgui.ui.window import LiveController, MainWindow
from netns import lab  # noqa: F401  (fixture)
from waiting import until

HOA = "2001:db8:1::100"


@pytest.mark.netns
@pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints")  # offscreen, a shown dialog
def test_a_normal_machine_is_online_and_offers_a_way_on(qtbot, qloop, lab):  # noqa: F811
    """Ethernet up with IPv4 and a ULA, no home address: online, not a Mobile IPv6 node yet, not "Offline"."""
    store = StateStore()
    c = LiveController(store, time.monotonic)
    win = MainWindow(c)
    qtbot.addWidget(win)
    src = NetlinkSource(store.apply, netns=lab.ns)

    async def scenario():
        await src.start()
        try:
            lab.uplink("eth0")
            lab.ip("addr", "add", "192.168.1.23/24", "dev", "eth0")
            lab.ip("-6", "addr", "add", "fd00:1:2::23/64", "dev", "eth0", "nodad")
            await until(lambda: win.answer.text().startswith("Online via eth0"), what=f"online, have "
                        f"{win.answer.text()!r}")
        finally:
            await src.stop()

    try:
        qloop.run_until_complete(scenario())
        text = win.answer.text()
        assert text == ("Online via eth0 (IPv4 192.168.1.23, IPv6 fd00:1:2::23) — not a Mobile IPv6 node yet "
                        "(no home address)")
        # the taxonomy is the secondary line, and it does not say offline either
        assert win.headline.text().startswith("(0,0,0)")
        assert "Offline" not in win.summary.text() and "does not mean offline" in win.summary.text()
        assert win.headline.font().pointSize() < win.answer.font().pointSize()
        # no engine to configure here: the way on is the lab
        assert not win.answer_button.isHidden() and win.answer_button.text() == "Try the lab"
        assert win.answer_button.accessibleName() == "Try the lab"
        opened = []
        win.actions.first_run.connect(opened.append)
        win.answer_button.click()
        assert len(opened) == 1 and opened[0].tabs.currentIndex() == 1
        assert "mhctl lab up" in opened[0].lab_text.text()
        opened[0].close()
        # the tray says the same, and a machine without a home address is not in the "no-coa" state
        h = answer_of(c)
        view = build_tray_view(store.state, c.analysis, answer=h)
        assert view.tooltip.splitlines()[0] == f"mhgui — {text}"
        assert view.state == "ok" and view.action.id == ACTION_TRY_LAB
        assert build_tray_view(store.state, c.analysis).state == "no-coa"  # what it said before
    finally:
        c.close()


# --------------------------------------------------------------------------- the daemon lost, restarted
pytest.importorskip("dbus")


def restart_window(stack, tmp_path, qtbot):
    """A node with a home address from the engine, which is not running, and the window that restarts it through
    the real helper (started here, on ``stack``, tests/test_helper.py's): ``(helper, driver, controller,
    window, notes)``, ``notes`` the window's messages as ``(text, ok)``."""
    from mhgui.daemons.engine import EngineDriver
    from mhgui.helper.client import HelperClient
    from test_helper import HelperProc, _write_conf

    helper = HelperProc(stack, _write_conf(tmp_path / "etc")).start()
    driver = EngineDriver(bus_address=stack.address, backoff_initial=0.05, backoff_max=0.2)
    store = StateStore()
    store.apply(HomeAddressesSet((HomeAddress(HOA, 64, "2001:db8:1::1", None, origin="engine"),)))
    c = LiveController(store, time.monotonic, daemon=driver)
    win = MainWindow(c)
    win.helper_factory = lambda: HelperClient(stack.address)
    qtbot.addWidget(win)
    notes: list[tuple[str, bool]] = []
    win.actions.message.connect(lambda text, ok: notes.append((text, ok)))
    return helper, driver, c, win, notes


def test_daemon_lost_offers_a_restart_that_polkit_refuses_then_allows(qtbot, qloop, helper_stack, tmp_path):
    from mhgui.helper.service import ACTION_CHANGE

    stack = helper_stack
    stack.reset()
    helper, driver, c, win, notes = restart_window(stack, tmp_path, qtbot)

    async def scenario():
        await driver.start()
        try:
            # nobody owns the engine's name on this bus, and it never did: the engine is not running, and the
            # answer says so, with a start (a restart of its unit)
            await until(lambda: driver.status.state == "absent", what="the driver to find no engine")
            await until(lambda: win.answer.text().startswith("Mobility daemon not running"), what=win.answer.text())
            assert "the mobility engine does not run" in win.answer.text()
            assert win.answer_button.text() == "Start the mobility daemon"
            assert win._answer.action.id == ACTION_RESTART_DAEMON
            # polkit says no (the mock denies what is not allowed)
            win.answer_button.click()
            await until(lambda: notes and notes[-1][1] is False, what=f"the refusal, have {notes}")
            assert notes[-1][0] == ("Restarting the mobility daemon was refused by your system's policy (polkit): "
                                    "ask an administrator, or run: sudo systemctl restart mhgui-mn")
            assert win.answer_note.text() == notes[-1][0] and not win.answer_note.isHidden()
            assert stack.restart_calls() == []
            # allowed: systemd is asked to restart the engine's unit (not mip6d's)
            stack.allow(ACTION_CHANGE)
            win.answer_button.click()
            await until(lambda: notes[-1][1] is True, what=f"the restart, have {notes}")
            assert notes[-1][0].startswith("Restart asked (")
            assert stack.restart_calls() == [("mhgui-mn.service", "replace")]
        finally:
            await driver.stop()

    try:
        qloop.run_until_complete(scenario())
    finally:
        c.close()
        assert helper.stop() == 0, helper.log


def test_restart_without_systemd_says_what_to_run(qtbot, qloop, bare_helper_stack, tmp_path):
    """No systemd on the bus (the lab, a container): the helper cannot restart the engine, and the window says
    what to run instead."""
    from mhgui.daemons.engine import EngineDriver
    from mhgui.helper.client import HelperClient
    from mhgui.helper.service import ACTION_CHANGE
    from test_helper import HelperProc, _write_conf

    stack = bare_helper_stack
    stack.reset()
    stack.allow(ACTION_CHANGE)
    helper = HelperProc(stack, _write_conf(tmp_path / "etc")).start()
    driver = EngineDriver(bus_address=stack.address)
    store = StateStore()
    c = LiveController(store, time.monotonic, daemon=driver)
    win = MainWindow(c)
    win.helper_factory = lambda: HelperClient(stack.address)
    qtbot.addWidget(win)

    async def scenario():
        return await win.actions.restart()

    try:
        assert qloop.run_until_complete(scenario()) is False
        assert win.answer_note.text() == (
            "Restarting the mobility daemon failed: cannot restart mhgui-mn.service: systemd is not on the bus; "
            "start the engine again yourself (as root: mhgui-mn --config /etc/mhgui/mn.toml)")
    finally:
        c.close()
        assert helper.stop() == 0, helper.log


def test_the_tray_menu_offers_the_answers_action_first(qtbot):
    """The engine gone: the tray's menu starts with "Start the mobility daemon" (as the window and `mhctl status`
    say it, n1.8), and choosing it runs it."""
    from mhgui.core.analysis import analyse
    from mhgui.core.headline import node_headline
    from mhgui.core.model import Address, Interface, InterfaceKind, NodeState
    from mhgui.daemons.base import DaemonStatus
    from mhgui.ui.tray import TrayController

    st = NodeState(interfaces={2: Interface(2, "up0", InterfaceKind.ETHERNET, True, True, True, "up")},
                   addresses={(a := Address(2, "2001:db8:a1::2", 64)).key: a})
    an = analyse(st, 0.0)
    lost = DaemonStatus("engine", None, False, "absent", "nobody owns io.github.mhgui.MHGui.MobileNode1")
    view = build_tray_view(st, an, answer=node_headline(st, an, daemon=lost))
    ran = []
    tray = TrayController(lambda: view, on_prefer=lambda n: None, on_open=lambda: None, on_quit=lambda: None,
                          watch=False, on_action=ran.append)
    try:
        tray._create_icon()
        first = tray._menu.actions()[0]
        assert first.text() == "Start the mobility daemon" and first.objectName() == "trayAnswerAction"
        first.trigger()
        assert [a.id for a in ran] == [ACTION_RESTART_DAEMON]
        assert tray._icon.toolTip().startswith("mhgui — Mobility daemon not running: the mobility engine does not run")
    finally:
        tray._drop_icon()
