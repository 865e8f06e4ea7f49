"""The preferences dialog and the tray's "Prefer" items with mhgui's mobility engine (pytest-qt, offscreen).

The real :class:`~mhgui.daemons.engine.EngineDriver` talks to the real control API
(:func:`mhgui.engine.mn_dbus.serve`) serving tests/enginebus.py's stand-in daemon on a private
system bus with the engine's real D-Bus policy and dbusmock polkitd, all on the session's qasync
loop: the dialog starts from the engine's per-HoA lists, Apply sends ``SetPreferences`` for the
HoAs that changed (the stand-in records it), refusals (polkit, the engine's InvalidArgs) are
shown inline; a tray item moves only its home address, through the engine's Rebind.
"""

from __future__ import annotations

import asyncio
import os

import pytest

from enginebus import HOA1, HOA2, HOA3, StandInDaemon  # noqa: E402 (skips without root or tools)

from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402
from PySide6.QtWidgets import QAbstractButton, QLabel, QMessageBox  # noqa: E402

from mhgui.core.engineprefs import HoaUplinks, engine_lists, engine_problems, hoa_uplinks, uplink_order  # noqa: E402
from mhgui.core.model import Address, Interface, InterfaceKind  # noqa: E402
from mhgui.core.state import AddressUpsert, LinkUpsert, RoutersSnapshot  # noqa: E402
from mhgui.core.trayview import build_tray_view  # noqa: E402
from mhgui.daemons.base import STATE_CONNECTED  # noqa: E402
from mhgui.daemons.engine import EngineDriver  # noqa: E402
from mhgui.engine.mn_dbus import ACTION_PREFERENCES, ACTION_REBIND, serve  # noqa: E402
from mhgui.sources.prefs_store import load_prefs  # noqa: E402
from mhgui.ui.preferences import InterfaceOrderModel, PreferencesDialog  # noqa: E402
from mhgui.ui.window import describe_plan  # noqa: E402

# what the node has: the stand-in engine's four uplinks, and eth1, which no list of the engine names
LIVE = [("eth0", "ethernet", True, ""), ("wlan0", "wifi", True, ""), ("wwan0", "wwan", True, ""),
        ("usb0", "ethernet", False, "no usable care-of address"), ("eth1", "ethernet", True, "")]


def run(loop, coro, timeout: float = 20.0):
    return loop.run_until_complete(asyncio.wait_for(coro, timeout))


async def until(pred, what: str, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not pred():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(0.01)


@pytest.fixture
def engine(engine_stack, qloop):
    """(stand-in daemon, connected EngineDriver) on the private bus, in the qasync loop."""
    engine_stack.reset()
    daemon = StandInDaemon()
    daemon.service = run(qloop, serve(daemon, engine_stack.address))
    drv = EngineDriver(bus_address=engine_stack.address, backoff_initial=0.05, backoff_max=0.2)
    try:
        async def connect():
            await drv.start()
            await until(lambda: drv.status.state == STATE_CONNECTED and len(drv.raw_bindings()) == 3,
                        "the driver to connect")
        run(qloop, connect())
        yield daemon, drv
    finally:
        run(qloop, drv.stop())
        run(qloop, daemon.service.close())


def texts(widget) -> list[str]:
    """Every label's and button's text in ``widget``."""
    return [w.text() for w in widget.findChildren(QLabel) + widget.findChildren(QAbstractButton)]


def dialog(qtbot, drv, **kw) -> PreferencesDialog:
    d = PreferencesDialog(LIVE, None, capabilities=drv.capabilities, driver=drv, **kw)
    qtbot.addWidget(d)
    return d


# --------------------------------------------------------------------------- the pure part
def test_lists_round_trip_and_problems():
    u = HoaUplinks(HOA1, ("eth0", "wlan0"), ("wwan0",), ("usb0",))
    marked = [("eth0", "primary"), ("wlan0", "primary"), ("wwan0", "backup"), ("usb0", "never"),
              ("eth1", "primary")]
    assert engine_lists(marked, u.listed) == u.lists  # untouched: the engine's own lists (eth1 stays unlisted)
    moved = [("eth0", "primary"), ("eth1", "primary"), ("wlan0", "primary"), ("wwan0", "backup"), ("usb0", "never")]
    assert engine_lists(moved, u.listed) == (("eth0", "eth1", "wlan0"), ("wwan0",), ("usb0",))
    assert engine_problems(HOA1, marked, u.lists) == []
    assert engine_problems(HOA1, [("eth0", "never")], ((), (), ("eth0",))) == [
        f"{HOA1}: no interface may be used (every one is marked never): the engine could not bind this home "
        "address. Mark at least one as primary or backup only."]
    assert engine_problems(HOA1, marked, (("eth0",), (), ("eth0",))) == [
        f"{HOA1}: eth0 is both used and marked never."]
    assert uplink_order(u, {"wwan0", "eth1", "usb0", "eth0", "aa0"}) == ["eth0", "aa0", "eth1", "wwan0", "usb0"]
    got = hoa_uplinks([{"hoa": "2001:DB8:1::100", "state": "registered", "interface": "eth0",
                        "preference": ["eth0", 3, "eth0"], "backup": "x"}, "junk", {"state": "unbound"}])
    assert got == [HoaUplinks(HOA1, ("eth0",), (), (), "eth0", "registered")]


# --------------------------------------------------------------------------- the dialog
def test_the_dialog_starts_from_the_engines_values(qtbot, engine, qloop):
    daemon, drv = engine
    d = dialog(qtbot, drv)
    assert d.engine
    assert [d.hoa_combo.itemData(i) for i in range(d.hoa_combo.count())] == [HOA1, HOA2, HOA3]
    assert d.hoa_combo.itemText(0) == f"{HOA1} (bound through eth0)"
    assert d.hoa_combo.itemText(1) == f"{HOA2} (registering through wlan0)"
    assert d.hoa_combo.isEnabled() and d.hoa == HOA1
    # the engine's lists (preference eth0, wlan0; backup wwan0), then the node's other interfaces, allowed
    assert d.model.marked() == [("eth0", "primary"), ("wlan0", "primary"), ("wwan0", "backup"),
                                ("usb0", "primary"), ("eth1", "primary")]
    status = [d.model.index(r, InterfaceOrderModel.COL_STATUS).data() for r in range(5)]
    assert status[:3] == ["usable now"] * 3
    assert status[3] == "no usable care-of address; not listed: allowed after the listed ones"
    assert status[4] == "usable now; not listed: allowed after the listed ones"
    assert d.view.isColumnHidden(InterfaceOrderModel.COL_PREF)  # MnIfPreference means nothing here
    assert d.ok_button.text() == "Apply" and d.ok_button.isEnabled()
    assert d.engine_changes() == {} and d.restart_label.isHidden() and d.validation_label.isHidden()
    assert not [t for t in texts(d) if "mip6d" in t or "MnIfPreference" in t]
    d.model.set_mark(3, "never")  # usb0, not listed: it would be listed as never
    assert d.model.index(3, InterfaceOrderModel.COL_STATUS).data() == \
        "no usable care-of address; not listed yet: applying lists it as never"
    d.model.set_mark(3, "primary")
    assert d.model.index(3, InterfaceOrderModel.COL_STATUS).data() == status[3]
    # another HoA's own lists
    d.select_hoa(HOA3)
    assert d.hoa == HOA3 and d.model.names()[:3] == ["eth0", "wlan0", "wwan0"]
    # one home address: nothing to choose
    one = daemon.bindings()[:1]
    one[0]["never"] = ["usb0"]
    one[0]["preference"] = ["wlan0", "eth0"]
    daemon.set_bindings(one)
    run(qloop, until(lambda: len(drv.raw_bindings()) == 1, "the engine's new bindings"))
    d1 = dialog(qtbot, drv)
    assert d1.hoa_combo.count() == 1 and not d1.hoa_combo.isEnabled() and d1.hoa == HOA1
    assert d1.model.marked() == [("wlan0", "primary"), ("eth0", "primary"), ("wwan0", "backup"),
                                 ("usb0", "never"), ("eth1", "primary")]


def test_apply_sends_set_preferences_for_the_changed_home_address_only(qtbot, engine, qloop, engine_stack, tmp_path):
    daemon, drv = engine
    engine_stack.allow(ACTION_PREFERENCES)
    conf = tmp_path / "mip6d.conf"
    d = dialog(qtbot, drv, mip6d_conf=str(conf))
    got, finished = [], []
    d.applied.connect(lambda *a: got.append(a))
    d.finished.connect(finished.append)
    d.select_hoa(HOA2)
    d.view.setCurrentIndex(d.model.index(1, 0))  # wlan0
    QTest.keyClick(d.view, Qt.Key.Key_Up, Qt.KeyboardModifier.AltModifier)
    assert d.model.names()[:2] == ["wlan0", "eth0"]
    d.model.set_mark(d.model.row_of("usb0"), "never")
    assert d.engine_changes() == {HOA2: (("wlan0", "eth0"), ("wwan0",), ("usb0",))}
    assert not d.restart_label.isHidden()
    assert d.restart_label.text().startswith(f"Applying sends the new list of {HOA2} to the mobility engine: it uses "
                                             "it at once")
    assert "no restart" in d.restart_label.text()
    # the edits of a HoA survive looking at another one
    d.select_hoa(HOA1)
    assert d.model.names()[:2] == ["eth0", "wlan0"]
    d.select_hoa(HOA2)
    assert d.model.names()[:2] == ["wlan0", "eth0"]
    d.holdup.setValue(9)

    async def scenario():
        QTest.mouseClick(d.ok_button, Qt.MouseButton.LeftButton)
        await until(lambda: got, "applied")

    run(qloop, scenario())
    assert daemon.calls == [("set_preferences", HOA2, ["wlan0", "eth0"], ["wwan0"], ["usb0"])]
    assert ACTION_PREFERENCES in [a for _k, _n, a, _f in engine_stack.auth_calls()]
    two = next(b for b in drv.raw_bindings() if b["hoa"] == HOA2)  # the driver read the engine again
    assert (two["preference"], two["backup"], two["never"]) == (["wlan0", "eth0"], ["wwan0"], ["usb0"])
    prefs, notifications, restart = got[0]
    assert prefs.holdup == 9 and prefs.order == () and restart is False
    assert finished == [1]
    assert d.applied_engine == {HOA2: (("wlan0", "eth0"), ("wwan0",), ("usb0",))}
    assert d.applied_mnif == {}
    assert load_prefs().settings.prefs.holdup == 9  # hold-up and notifications: the app's own file
    assert not conf.exists()  # never mip6d.conf


def test_refusals_are_shown_inline_and_the_dialog_stays(qtbot, engine, qloop, engine_stack):
    daemon, drv = engine
    d = dialog(qtbot, drv)
    got, finished = [], []
    d.applied.connect(lambda *a: got.append(a))
    d.finished.connect(finished.append)
    d.model.set_mark(d.model.row_of("wwan0"), "primary")  # HoA1: wwan0 no longer backup only

    # polkit (the mock) says no
    assert run(qloop, d.apply()) is False
    text = d.validation_label.text()
    assert text.startswith(f"Not applied: not allowed to change the preferences of {HOA1}: "), text
    assert ACTION_PREFERENCES in text
    assert not d.validation_label.isHidden() and d.ok_button.isEnabled() and d.ok_button.text() == "Apply"
    assert got == [] and finished == [] and daemon.calls == []

    # the engine's own refusal (InvalidArgs): it restarted meanwhile without that home address
    engine_stack.allow(ACTION_PREFERENCES)
    original = daemon.bindings()
    daemon.set_bindings(original[1:])
    run(qloop, until(lambda: len(drv.raw_bindings()) == 2, "the engine's new bindings"))
    assert run(qloop, d.apply()) is False
    assert d.validation_label.text() == (f"Not applied: the mobility engine refused the preferences of {HOA1}: "
                                         f"{HOA1} is not one of this node's home addresses")
    assert got == [] and finished == []
    assert [c[:2] for c in daemon.calls] == [("set_preferences", HOA1)]

    # back: the same dialog applies
    daemon.set_bindings(original)
    run(qloop, until(lambda: len(drv.raw_bindings()) == 3, "the engine's bindings back"))
    assert run(qloop, d.apply()) is True
    assert daemon.calls[-1] == ("set_preferences", HOA1, ["eth0", "wlan0", "wwan0"], [], [])
    assert finished == [1] and len(got) == 1


def test_lists_the_engine_cannot_use_are_refused_before_sending(qtbot, engine):
    daemon, drv = engine
    d = dialog(qtbot, drv)
    d.select_hoa(HOA3)
    for r in range(d.model.rowCount()):
        d.model.set_mark(r, "never")
    d.select_hoa(HOA1)  # a problem in another home address's list still counts
    assert not d.ok_button.isEnabled()
    assert d.validation_label.text() == (
        f"{HOA3}: no interface may be used (every one is marked never): the engine could not bind this home "
        "address. Mark at least one as primary or backup only.")
    d.select_hoa(HOA3)
    d.model.set_mark(2, "backup")
    assert d.ok_button.isEnabled() and d.validation_label.isHidden()
    assert daemon.calls == []


def test_screenshot_of_the_dialog_with_the_engine(qtbot, engine):
    _daemon, drv = engine
    d = dialog(qtbot, drv)
    d.select_hoa(HOA2)
    d.view.setCurrentIndex(d.model.index(1, 0))
    QTest.keyClick(d.view, Qt.Key.Key_Up, Qt.KeyboardModifier.AltModifier)
    d.model.set_mark(d.model.row_of("usb0"), "never")
    d.resize(760, 520)
    assert not d.grab().isNull()
    if os.environ.get("MHGUI_SCREENSHOT"):
        d.grab().save(os.environ["MHGUI_SCREENSHOT"])


# --------------------------------------------------------------------------- the tray and the shell
def _node(rt) -> None:
    """The stand-in engine's uplinks as the node's interfaces, each with a global address and a router."""
    names = {2: ("eth0", InterfaceKind.ETHERNET, "2001:db8:a::5"), 3: ("wlan0", InterfaceKind.WIFI, "2001:db8:b::5"),
             4: ("wwan0", InterfaceKind.OTHER, "2001:db8:c::9"), 5: ("usb0", InterfaceKind.ETHERNET, None)}
    for i, (name, kind, addr) in names.items():
        rt.store.apply(LinkUpsert(Interface(i, name, kind, True, True, True, "up")))
        if addr:
            rt.store.apply(AddressUpsert(Address(i, addr, 64)))
    rt.store.apply(RoutersSnapshot(tuple((i, f"fe80::{i}") for i in names)))


@pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints")
def test_tray_prefer_moves_only_that_home_address_and_the_shell_opens_the_engines_dialog(
        qtbot, qloop, engine_stack, tmp_path):
    from mhgui.runtime import Runtime
    from mhgui.sources.journal import FailoverJournal
    from mhgui.ui.shell import AppShell
    from mhgui.ui.tray import TrayController
    from mhgui.ui.window import LiveController, MainWindow

    engine_stack.reset()
    engine_stack.allow(ACTION_REBIND, ACTION_PREFERENCES)
    daemon = StandInDaemon()
    daemon.service = run(qloop, serve(daemon, engine_stack.address))
    drv = EngineDriver(bus_address=engine_stack.address, backoff_initial=0.05, backoff_max=0.2)
    rt = Runtime(system_bus=engine_stack.address, use_networkmanager=False, vt_port=None, daemon=drv)
    c = LiveController(rt.store, rt.clock, daemon=drv)
    win = MainWindow(c)
    qtbot.addWidget(win)
    messages = []
    shell = AppShell(rt, win, lambda: None, system_bus=engine_stack.address, tray=False,
                     journal=FailoverJournal(str(tmp_path / "failover.jsonl")),
                     prefs_path=str(tmp_path / "failover.toml"), mip6d_conf=str(tmp_path / "mip6d.conf"))
    shell.message.connect(lambda text, ok: messages.append((text, ok)))
    tray = None
    try:
        async def start():
            _node(rt)  # (the runtime reacts to the store in the loop)
            await drv.start()
            await until(lambda: drv.connected and len(rt.store.state.home_addresses) == 3, "the engine's HoAs")
            await shell.start()
        run(qloop, start())
        assert shell.daemon_name() == "the mobility engine"
        assert "the mobility engine" in win.no_hoa.text() and "mn.toml" in win.no_hoa.text()
        # the window's rebind question: the engine's words, no restart of mip6d
        plan = run(qloop, drv.plan_rebind(HOA2, "eth0", rt.live_view()))
        assert plan.allowed, plan.refusal
        words = describe_plan(plan, engine=True)
        assert words.startswith(f"Bind {HOA2} through eth0: the mobility engine moves it at once, nothing restarts.")
        assert f"only {HOA2} moves" in words and "mip6d" not in words and "UMIP" not in words
        win.rebinder._ask(plan, lambda: None)
        box = win.findChildren(QMessageBox)[-1]
        assert box.button(QMessageBox.StandardButton.Ok).text() == "Rebind" and "mip6d" not in box.text()
        box.reject()

        view = shell.tray_view()
        one = [p for p in view.prefer if p.hoa == HOA1]
        assert [(p.interface, p.text, p.enabled) for p in one] == [
            ("eth0", "eth0 (in use)", False),
            ("wlan0", f"wlan0 — moves {HOA1} only, no restart", True),
            ("wwan0", f"wwan0 — moves {HOA1} only, no restart", True),  # its backup: last
        ]
        assert {p.hoa for p in view.prefer} == {HOA1, HOA2, HOA3}
        assert not [p for p in view.prefer if "mip6d" in p.text or p.restarts]

        # the menu: a submenu per home address; choosing an item rebinds that HoA only
        tray = TrayController(shell.tray_view, on_prefer=shell.prefer, on_rebind=shell.rebind_hoa,
                              on_open=lambda: None, on_quit=lambda: None, watch=False, parent=shell)
        run(qloop, tray.start())
        prefer = tray._prefer_menu
        subs = [a.menu() for a in prefer.actions() if a.menu() is not None]
        assert [m.title() for m in subs] == [HOA1, HOA2, HOA3]
        item = next(a for a in subs[0].actions() if a.data() == "wlan0")
        assert item.text() == f"wlan0 — moves {HOA1} only, no restart" and item.isEnabled()
        before = {b["hoa"]: (b["state"], b["interface"], b["pending_interface"]) for b in daemon.bindings()}
        item.trigger()
        run(qloop, until(lambda: messages and messages[-1][1] is not None, "the rebind"))
        assert messages[-1] == (f"Confirmed in 12 ms: {HOA1} now bound through wlan0 (10.0.3.5).", True), messages
        assert daemon.calls == [("rebind", HOA1, "wlan0")]
        after = {b["hoa"]: (b["state"], b["interface"], b["pending_interface"]) for b in daemon.bindings()}
        assert after[HOA1] == ("registered", "wlan0", None)
        assert after[HOA2] == before[HOA2] and after[HOA3] == before[HOA3]  # the others stay

        # the preferences dialog through the shell: the engine's, and the shell keeps the order derived
        async def prefs():
            dlg = await shell._open_preferences()
            assert dlg.engine and dlg.hoa == HOA1
            dlg.holdup.setValue(11)
            dlg.model.set_mark(dlg.model.row_of("wwan0"), "never")
            assert await dlg.apply()
            await until(lambda: messages[-1] == ("Preferences applied.", True), "the shell's apply")
            return dlg
        run(qloop, prefs())
        # (the stand-in's rebind does not reorder its lists, as the real engine does: eth0 is still first)
        assert daemon.calls[-1] == ("set_preferences", HOA1, ["eth0", "wlan0"], [], ["wwan0"])
        assert shell.settings is None and shell.svc.policy.prefs.holdup == 11
        assert set(shell.svc.policy.prefs.order) == {"eth0", "wlan0", "wwan0", "usb0"}
        assert not (tmp_path / "mip6d.conf").exists()
    finally:
        async def stop():
            if tray is not None:
                await tray.stop()
            await shell.stop()
            await drv.stop()
            await daemon.service.close()
        run(qloop, stop())
        c.close()


def test_tray_view_without_the_engine_keeps_umips_items():
    from mhgui.core.analysis import analyse
    from mhgui.core.capabilities import DaemonCapabilities
    from mhgui.core.failover import Preferences
    from mhgui.core.model import HomeAddress, NodeState

    ifs = {2: Interface(2, "eth0", InterfaceKind.ETHERNET, True, True, True, "up"),
           3: Interface(3, "wlan0", InterfaceKind.WIFI, True, True, True, "up")}
    addrs = [Address(2, "2001:db8:a::5", 64), Address(3, "2001:db8:b::5", 64)]
    st = NodeState(interfaces=ifs, addresses={a.key: a for a in addrs}, routers={2: frozenset({"fe80::1"}),
                   3: frozenset({"fe80::1"})}, home_addresses=(HomeAddress(HOA1, 64, "2001:db8:1::1", "eth0"),))
    kw = dict(prefs=Preferences(("eth0", "wlan0")), policy_current="eth0", daemon_name="mip6d",
              daemon_configured=True, daemon_reachable=True)
    umip = build_tray_view(st, analyse(st, 0.0), caps=DaemonCapabilities(name="umip", connected=True), **kw)
    assert [p.text for p in umip.prefer] == ["eth0 (in use, first choice)",
                                             f"wlan0 — moves {HOA1}; restarts mip6d"]
    assert all(p.hoa is None for p in umip.prefer)
    eng = build_tray_view(st, analyse(st, 0.0), caps=DaemonCapabilities(name="engine", connected=True,
                          per_hoa_choice=True, runtime_rebind=True), hoa_uplinks=[HoaUplinks(HOA1, ("wlan0",))],
                          **kw)
    assert [p.text for p in eng.prefer] == [f"wlan0 — moves {HOA1} only, no restart",
                                            f"eth0 — moves {HOA1} only, no restart"]
    assert [p.hoa for p in eng.prefer] == [HOA1, HOA1]


def test_failover_tab_says_where_the_engine_has_each_home_address_and_which_uplinks_answer(engine, qtbot, qloop):
    import time as _time
    from mhgui.core.analysis import analyse
    from mhgui.core.failover import Preferences
    from mhgui.core.state import StateStore
    from mhgui.failover_service import FailoverService
    from mhgui.ui.failover_view import FailoverPage
    _daemon, drv = engine

    async def uplinks_read():
        await drv.refresh()
        await until(lambda: len(drv.uplinks()) == 4, "the uplinks")
    run(qloop, uplinks_read())
    store = StateStore()
    svc = FailoverService(store, _time.monotonic, lambda: analyse(store.state, _time.monotonic()),
                          Preferences(order=("eth0",)), daemon=drv)
    page = FailoverPage(svc)
    qtbot.addWidget(page)
    text = page.status_text()
    assert "through eth0" in text or "through wlan0" in text  # each HoA, where the engine has it
    assert "The home agent answers through eth0, wlan0, not through wwan0." in text
    assert "No usable interface" not in text and "The node uses" not in text
    page.close_page()
