"""The node's answer, its action and the helper's RestartEngine attacked (issue 15.1, 15.7).

- the headline against hostile or partial engine data (an infinite RTT, an uplink the engine does not list,
  another home address whose uplink the home agent does not answer through);
- the action button clicked twice, and a stale "Restart" (an old notification's button) pressed while the
  daemon answers again: the real window, the real helper on a private system bus with polkit and systemd
  mocks (tests/test_helper.py's stack), the real engine driver against the engine's real control API served
  for a stand-in daemon (tests/enginebus.py);
- RestartEngine itself: not in the introspection data, an unprivileged caller, a caller naming a unit, an
  --engine-unit that is not a service name, a systemd that never answers (holding the change lock for ever);
- the wording of a dismissed password prompt.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
import xml.etree.ElementTree as ET

import pytest

from mhgui.core.analysis import analyse
from mhgui.core.bindings import BindingState
from mhgui.core.headline import ACTION_REBIND, ACTION_RESTART_DAEMON, Action, node_headline
from mhgui.helper.client import NotAuthorized, polkit_refusal
from test_headline import ENGINE, HOA, HOA2, mobile, probe, reg
from waiting import until

needs_bus = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("dbus-daemon") is None,
                               reason="needs root and dbus-daemon")


def _head(st, **kw):
    return node_headline(st, analyse(st, 0.0), daemon=ENGINE, engine_available=True, **kw)


# --------------------------------------------------------------------------- the headline
def test_an_infinite_or_nan_rtt_is_not_shown():
    st = mobile()
    for srtt in (float("inf"), float("nan"), -3.0):
        h = _head(st, bindings=[reg(HOA, "2001:db8:a1::2")], uplinks=[probe("eth0", 2, srtt=srtt)])
        assert h.text == "Connected via eth0 (CoA 2001:db8:a1::2), home agent reachable", h.text
    h = _head(st, bindings=[reg(HOA, "2001:db8:a1::2")], uplinks=[probe("eth0", 2, loss=float("inf"))])
    assert "inf" not in h.text and h.level == "ok", h.text


def test_a_warning_always_says_why():
    """The engine lists no uplink for the binding's interface (malformed, or not read yet): the answer was a
    yellow "Connected via eth0 (CoA …)" with no reason at all."""
    st = mobile()
    for uplinks in ([], [None, "x", {"ifindex": [2]}], [probe("wlan0", 3)]):
        h = _head(st, bindings=[reg(HOA, "2001:db8:a1::2")], uplinks=uplinks)
        assert h.level == "warning" and h.text.startswith("Connected via eth0 (CoA 2001:db8:a1::2), "), h.text
        assert "not probed" in h.text, h.text


def test_another_home_address_through_a_dead_uplink_is_not_ok():
    """Two HoAs, each on its own uplink; the home agent answers through eth0 only. The answer was a green
    "home agent reachable" while 2001:db8:2::100 was black-holed through wlan0 (its row in the binding table
    "registered", the engine's probes "unreachable")."""
    st = mobile(hoas=(HOA, HOA2))
    bindings = [reg(HOA, "2001:db8:a1::2"), reg(HOA2, "2001:db8:b1::3")]
    h = _head(st, bindings=bindings, uplinks=[probe("eth0", 2), probe("wlan0", 3, reachable=False)])
    assert h.level == "warning", h
    assert "does not answer through wlan0 (2001:db8:2::100)" in h.text, h.text
    assert h.action is not None and h.action.id == ACTION_REBIND and h.action.args == (HOA2, "eth0")
    # both alive: ok; both dead: the main one's error wins, its move stays the action
    h = _head(st, bindings=bindings, uplinks=[probe("eth0", 2), probe("wlan0", 3)])
    assert h.level == "ok" and h.action is None
    h = _head(st, bindings=bindings, uplinks=[probe("eth0", 2, reachable=False), probe("wlan0", 3, reachable=False)])
    assert h.level == "error" and (h.action is None or h.action.id != ACTION_REBIND), h
    # a waiting one is not judged by its probe
    h = _head(st, bindings=[reg(HOA, "2001:db8:a1::2"), reg(HOA2, "2001:db8:b1::3", BindingState.WAITING_ACK)],
              uplinks=[probe("eth0", 2), probe("wlan0", 3, reachable=None)])
    assert h.level == "ok", h


def test_waiting_for_a_home_agent_that_does_not_answer_is_not_just_waiting():
    """Seen in the lab after sending a new key the home agent does not have: the binding "waiting-ack" for ever,
    the engine's probes "unreachable, 100 % loss" on both uplinks; the answer stayed a yellow "waiting for the
    home agent" with no action."""
    st = mobile()
    waiting = [reg(HOA, "2001:db8:a1::2", BindingState.WAITING_ACK)]
    h = _head(st, bindings=waiting, uplinks=[probe("eth0", 2, reachable=False, srtt=None, loss=1.0),
                                             probe("wlan0", 3, reachable=False, srtt=None, loss=1.0)])
    assert h.level == "error" and "does not answer through any uplink" in h.text, h.text
    assert h.action is not None and h.action.label == "Check the home agent settings…"
    h = _head(st, bindings=waiting, uplinks=[probe("eth0", 2, reachable=False), probe("wlan0", 3)])
    assert h.level == "error" and h.action.id == ACTION_REBIND and h.action.args == (HOA, "wlan0"), h
    # not probed yet, or answering: just waiting
    for up in ([probe("eth0", 2, reachable=None)], [probe("eth0", 2)], None):
        h = node_headline(st, analyse(st, 0.0), daemon=ENGINE, bindings=waiting, uplinks=up)
        assert h.level == "warning" and h.text.endswith("waiting for the home agent") and h.action is None, h


def test_a_refused_home_address_next_to_a_bound_one_is_called_refused():
    """HoA 1 bound, HoA 2 refused by the home agent: the binding table says "error" (refused) for HoA 2, the
    answer said "is not bound" and offered the preferences (which change nothing about a refusal)."""
    st = mobile(hoas=(HOA, HOA2))
    bindings = (b for b in [reg(HOA, "2001:db8:a1::2"), reg(HOA2, "2001:db8:b1::3", BindingState.ERROR)])
    h = _head(st, bindings=bindings, uplinks=[probe("eth0", 2), probe("wlan0", 3)])  # a generator, too
    assert h.level == "warning" and h.text.endswith("; the home agent refused 2001:db8:2::100"), h.text
    assert h.action is not None and h.action.label == "Check the home agent settings…", h.action


def test_no_false_fix_for_an_ipv4_only_uplink_under_mip6d():
    """"Open preferences" was offered as "the one action that fixes it": no uplink order gives an IPv4-only
    link the IPv6 care-of address mip6d needs."""
    from mhgui.core.model import Address
    from test_headline import UMIP, iface, state
    st = state([iface(4, "wwan0")], [Address(4, "10.0.3.5", 24, family=2)], hoas=(HOA,))
    h = node_headline(st, analyse(st, 0.0), daemon=UMIP, daemon_configured=True)
    assert h.level == "error" and "wwan0 has IPv4 only" in h.text and h.action is None, h


def test_a_dismissed_password_prompt_is_not_called_a_policy_refusal():
    """The helper's and the engine's NotAuthorized say "authentication was dismissed" when the user closed
    polkit's prompt (mhgui.polkit): "ask an administrator" is the wrong thing to tell them."""
    e = NotAuthorized("not authorized to call RestartEngine (io.github.mhgui.MHGui.change-daemon): "
                      "authentication was dismissed", "io.github.mhgui.MHGui.Helper1.Error.NotAuthorized")
    text = e.explain("Restarting the mobility daemon", "sudo systemctl restart mhgui-mn")
    assert "administrator" not in text and "cancelled" in text, text
    denied = NotAuthorized("not authorized to call RestartEngine (io.github.mhgui.MHGui.change-daemon): "
                           "polkit denied it", "io.github.mhgui.MHGui.Helper1.Error.NotAuthorized")
    assert "ask an administrator" in denied.explain("Restarting the mobility daemon")
    assert "cancelled" in polkit_refusal("Moving this connection", None, dismissed=True)


# --------------------------------------------------------------------------- the window's action
dbus = pytest.importorskip("dbus")


@needs_bus
def test_a_double_click_restarts_once(qtbot, qloop, helper_stack, tmp_path):
    from mhgui.helper.service import ACTION_CHANGE
    from test_headline_gui import restart_window

    stack = helper_stack
    stack.reset()
    stack.allow(ACTION_CHANGE)
    helper, driver, c, win, notes = restart_window(stack, tmp_path, qtbot)

    async def scenario():
        await driver.start()
        try:
            # (the engine never ran here: "not running", with Start, which restarts the unit all the same)
            await until(lambda: win.answer.text().startswith("Mobility daemon not running"), win.answer.text())
            win.answer_button.click()
            win.answer_button.click()  # a double click
            win.actions.run(Action(ACTION_RESTART_DAEMON, "Restart"))  # and the notification's button
            await until(lambda: any(ok is True for _t, ok in notes), f"the restart, have {notes}")
            await asyncio.sleep(0.3)  # a second call would have reached the mock by now
        finally:
            await driver.stop()

    try:
        qloop.run_until_complete(scenario())
        assert stack.restart_calls() == [("mhgui-mn.service", "replace")]
        calls = stack.auth_calls()  # polkit asked once, about the GUI's own connection
        assert len(calls) == 1 and calls[0][0] == "system-bus-name" and calls[0][2] == ACTION_CHANGE, calls
    finally:
        c.close()
        assert helper.stop() == 0, helper.log


@needs_bus
def test_a_stale_restart_does_not_restart_a_daemon_that_answers(qtbot, qloop, engine_stack):
    """An old "Mobility daemon lost" notification's Restart, pressed after the engine came back: nothing is
    restarted (the helper is not even asked), and the window says why."""
    from enginebus import StandInDaemon
    from mhgui.core.state import StateStore
    from mhgui.daemons.engine import EngineDriver
    from mhgui.engine.mn_dbus import serve
    from mhgui.ui.window import LiveController, MainWindow

    stack = engine_stack
    stack.reset()
    driver = EngineDriver(bus_address=stack.address, backoff_initial=0.05, backoff_max=0.2)
    store = StateStore()
    c = LiveController(store, time.monotonic, daemon=driver)
    win = MainWindow(c)
    asked = []
    win.helper_factory = lambda: asked.append("helper") or (_ for _ in ()).throw(AssertionError("asked"))
    qtbot.addWidget(win)
    notes = []
    win.actions.message.connect(lambda text, ok: notes.append((text, ok)))

    async def scenario():
        service = await serve(StandInDaemon(), stack.address)
        await driver.start()
        try:
            await until(lambda: driver.status.reachable, "the driver to connect")
            win.actions.run(Action(ACTION_RESTART_DAEMON, "Restart"))
            await asyncio.sleep(0.2)
        finally:
            await driver.stop()
            await service.close()

    try:
        qloop.run_until_complete(scenario())
        assert asked == []
        assert notes and notes[-1][0].startswith("Not restarted: the mobility daemon is no longer lost"), notes
    finally:
        c.close()


# --------------------------------------------------------------------------- RestartEngine in the helper
@needs_bus
def test_restart_engine_is_introspectable_and_takes_no_unit_from_the_caller(helper_stack, tmp_path):
    from mhgui.helper.service import ACTION_CHANGE, BUS_NAME, INTERFACE, OBJECT_PATH
    from test_helper import HelperProc, _dbus_send, _write_conf

    stack = helper_stack
    stack.reset()
    stack.allow(ACTION_CHANGE)
    helper = HelperProc(stack, _write_conf(tmp_path / "etc")).start()
    try:
        xml = stack.conn.get_object(BUS_NAME, OBJECT_PATH).Introspect(
            dbus_interface="org.freedesktop.DBus.Introspectable")
        iface = next(i for i in ET.fromstring(str(xml)).iter("interface") if i.get("name") == INTERFACE)
        methods = {m.get("name") for m in iface.iter("method")}
        assert "RestartEngine" in methods, methods
        # a caller cannot name the unit: a wrong signature is refused before polkit is asked
        obj = stack.conn.get_object(BUS_NAME, OBJECT_PATH)
        with pytest.raises(dbus.exceptions.DBusException) as e:
            obj.RestartEngine("ssh.service", dbus_interface=INTERFACE, signature="s")
        assert stack.restart_calls() == []
        assert e.value.get_dbus_name() == "org.freedesktop.DBus.Error.InvalidArgs"
        # an unprivileged user is refused by the bus, polkit and systemd never hear of it
        r = _dbus_send(stack, "RestartEngine")
        assert r.returncode != 0 and "org.freedesktop.DBus.Error.AccessDenied" in r.stderr, r.stderr
        assert stack.auth_calls() == [] and stack.restart_calls() == []
    finally:
        assert helper.stop() == 0, helper.log


@pytest.mark.parametrize("unit", ["", "mip6d", "a b.service", "x.service\n", "../x.service"])
def test_engine_unit_must_be_a_service_name(unit):
    """An empty --engine-unit made RestartEngine restart --unit (mip6d.service): ``unit or self.opts.unit``."""
    from mhgui.helper.service import parse_args
    with pytest.raises(SystemExit):
        parse_args(["--engine-unit", unit])
    assert parse_args(["--engine-unit", "mhgui-mn@lab.service"]).engine_unit == "mhgui-mn@lab.service"


@needs_bus
def test_a_hung_systemd_does_not_hold_the_change_lock(qloop, tmp_path, monkeypatch):
    """systemd owns its name but never answers RestartUnit: RestartEngine fails with a sentence, and the
    helper's change lock (every SetInterfacePreferences, RestartDaemon...) is free again."""
    from dbus_fast import BusType, MessageType
    from dbus_fast.aio import MessageBus
    from mhgui.helper import service
    from test_helper import _start_stack

    stack = _start_stack(systemd=False)
    monkeypatch.setattr(service, "SYSTEMD_TIMEOUT", 0.5)
    heard = []

    async def scenario():
        hung = await MessageBus(bus_address=stack.address, bus_type=BusType.SYSTEM).connect()
        hung.add_message_handler(lambda m: heard.append(m.member) or True
                                 if m.message_type is MessageType.METHOD_CALL else None)  # never replies
        await hung.request_name(service.SYSTEMD_NAME)
        bus = await MessageBus(bus_address=stack.address, bus_type=BusType.SYSTEM).connect()
        h = service.Helper(bus, service.Options(mip6d_conf=str(tmp_path / "mip6d.conf"),
                                                state_dir=str(tmp_path / "state")))
        try:
            t0 = time.monotonic()
            with pytest.raises(service.HelperFailure) as e:
                await asyncio.wait_for(h.restart_engine(), 10)
            return e.value, time.monotonic() - t0, h._change_lock.locked()
        finally:
            bus.disconnect()
            hung.disconnect()

    try:
        err, took, locked = qloop.run_until_complete(scenario())
    finally:
        stack.stop()
    assert heard == ["RestartUnit"]
    assert err.name.endswith(".RestartFailed") and "did not answer" in err.message, err.message
    assert not locked and took < 5


# --------------------------------------------------------------------------- hostile engine data
@needs_bus
def test_hostile_engine_json_skips_the_bad_items(qloop, engine_stack):
    """GetBindings/GetUplinks items with lists for words, NaN and infinite numbers, a number for "paths": they
    used to raise TypeError/ValueError/OverflowError in the driver (the whole table gone, the daemon said "lost"
    and a restart offered; ``mhctl status``'s refresh() raising through). The good items stay, the bad are
    skipped, and the node's answer is computed."""
    from enginebus import HOA1, StandInDaemon
    from mhgui.daemons.engine import EngineDriver
    from mhgui.engine.mn_dbus import serve
    from test_headline import iface
    from mhgui.core.model import Address, NodeState

    daemon = StandInDaemon()
    good = daemon._bindings[0]
    daemon._bindings += [
        {**good, "hoa": "2001:db8:1::400", "state": ["registered"]},
        {**good, "hoa": "2001:db8:1::500", "lifetime": float("nan"), "remaining": float("inf")},
        {**good, "hoa": "2001:db8:1::600", "paths": 7},
        {**good, "hoa": "2001:db8:1::700", "state": "waiting-ack", "pending_interface": {"eth0": 1}},
    ]
    daemon._uplinks += [{"name": ["eth9"], "ifindex": 9, "reachable": True}, {"name": {}, "srtt_ms": float("inf")}]
    driver = EngineDriver(bus_address=engine_stack.address, backoff_initial=0.05, backoff_max=0.2)
    engine_stack.reset()

    async def scenario():
        service = await serve(daemon, engine_stack.address)
        await driver.start()
        try:
            await until(lambda: driver.status.reachable or driver.status.state == "error", "the driver")
            refreshed = await driver.refresh()
            return refreshed, driver.status, driver.bindings(), driver.uplinks()
        finally:
            await driver.stop()
            await service.close()

    refreshed, status, bindings, uplinks = qloop.run_until_complete(scenario())
    assert refreshed is True and status.reachable and status.state == "connected", status
    hoas = {b.hoa for b in bindings}
    assert HOA1 in hoas and "2001:db8:1::400" not in hoas, hoas
    assert next(b for b in bindings if b.hoa == "2001:db8:1::500").lifetime is None
    st = NodeState(interfaces={2: iface(2, "eth0")}, addresses={(a := Address(2, "2001:db8:a::5", 64)).key: a})
    node_headline(st, analyse(st, 0.0), bindings=bindings, uplinks=uplinks, daemon=status, engine_available=True)


@needs_bus
def test_no_helper_is_said_once(qtbot, qloop, engine_stack):
    """No helper on the system bus (the lab, a machine without mhgui-host): the note said "The mhgui helper is
    not available (the mhgui helper (…) is not available: …)"."""
    from mhgui.core.state import StateStore
    from mhgui.daemons.engine import EngineDriver
    from mhgui.helper.client import HelperClient
    from mhgui.ui.window import LiveController, MainWindow

    driver = EngineDriver(bus_address=engine_stack.address)
    c = LiveController(StateStore(), time.monotonic, daemon=driver)
    win = MainWindow(c)
    win.helper_factory = lambda: HelperClient(engine_stack.address)
    qtbot.addWidget(win)
    try:
        assert qloop.run_until_complete(win.actions.restart()) is False
        text = win.answer_note.text()
        # said once, in our words (the bus's own "was not provided by any .service files" goes to the log)
        assert text == ("Cannot restart the mobility daemon from here: the privileged helper "
                        "(io.github.mhgui.MHGui.Helper1) is not installed. Run it yourself: "
                        "sudo systemctl restart mhgui-mn"), text
    finally:
        c.close()
