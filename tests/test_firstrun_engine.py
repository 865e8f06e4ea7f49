"""The first-run form and the engine agree on the home agent's address (review of issue 15.3), the form is
filled from the engine's own settings, and the lab text works for a clone and for an installed mhgui.

- A zone (``%eth0``) on a home agent address, and a home agent address equal to one of the node's home
  addresses, are refused by the engine's control API (``ConfigureHomeAgent``, checked before polkit asks
  anyone: the real service on a private system bus) and by mn.toml's loader, with one clear sentence; the
  form refuses them too, and anything the form takes the engine takes.
- "Check the home agent settings…" opens the form prefilled from ``GetStatus`` (never the key).
"""

from __future__ import annotations

import json
import os
import shutil
from types import SimpleNamespace

import pytest

from mhgui.engine import config as engine_config
from mhgui.engine.mn_dbus import ControlFailure, check_home_agent_setting
from mhgui.ui.firstrun import LAB_TEXT, FirstRunDialog, check_form

KEY = bytes(range(32))
HA = "2001:db8:1::1"
HOA = "2001:db8:1::100"

pytestmark = pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints")  # offscreen dialogs


# --------------------------------------------------------------------------- the engine's rules
@pytest.mark.parametrize("addresses,ha,words", [
    (["2001:db8:ffff::1%eth0"], HA, "has a zone"),
    (["192.0.2.1", "2001:db8:ffff::1%2"], HA, "has a zone"),
    (["2001:db8:ffff::1"], "2001:db8:1::1%eth0", "has a zone"),
    (["2001:db8:ffff::1"], HOA, "own home address"),
    (["2001:db8:ffff::1"], "2001:DB8:1:0::100", "own home address"),  # the same address, written otherwise
])
def test_the_engine_refuses_a_zone_and_its_own_home_address(addresses, ha, words):
    with pytest.raises(ControlFailure) as e:
        check_home_agent_setting(addresses, ha, "mn@example.org", 300, KEY, home_addresses=[HOA + "/64", "x"])
    assert e.value.name.endswith(".InvalidArgs")
    assert words in str(e.value) and "\n" not in str(e.value), str(e.value)
    # and the form says it too, in one sentence
    form, problems = check_form(", ".join(addresses), ha, "mn@example.org", "300", KEY, [HOA])
    assert form is None and len(problems) == 1, problems


def test_whatever_the_form_takes_the_engine_takes_with_home_addresses():
    homes = [HOA, "2001:db8:2::5/64"]
    outer = ["2001:db8:ffff::1", "192.0.2.1", "2001:db8:ffff::1%eth0, 192.0.2.1", "192.0.2.1%1"]
    has = [HA, HOA, "2001:db8:2::5", "2001:db8:1::1%eth0", "2001:db8:1::1%2", "fe80::1"]
    taken = 0
    for a in outer:
        for h in has:
            form, _problems = check_form(a, h, "mn@example.org", "300", KEY, homes)
            if form is None:
                continue
            taken += 1
            try:
                check_home_agent_setting(list(form.addresses), form.home_agent_address, form.identity, form.spi,
                                         form.key, home_addresses=homes)
            except ControlFailure as e:
                raise AssertionError(f"the form took {(a, h)} but the engine refuses it: {e}") from None
    assert taken == 2  # HA with the two good outer addresses: the rest is refused by both


MN_TOML = """\
[node]
identity = "mn@example.net"
spi = 300
key_file = "{key}"

[home_agent]
addresses = [{outer}]
address = "{ha}"

[[home_address]]
address = "2001:db8:1::100/64"
"""


@pytest.mark.parametrize("outer,ha,words", [
    ('"2001:db8:ffff::1%eth0"', HA, "has a zone"),
    ('"2001:db8:ffff::1"', "2001:db8:1::1%eth0", "has a zone"),
    ('"2001:db8:ffff::1"', HOA, "also a [[home_address]]"),
])
def test_mn_toml_with_a_zone_or_the_home_address_as_home_agent_is_refused(tmp_path, outer, ha, words):
    key = tmp_path / "mn.key"
    engine_config.write_key_file(str(key), KEY)
    path = tmp_path / "mn.toml"
    path.write_text(MN_TOML.format(key=key, outer=outer, ha=ha))
    with pytest.raises(engine_config.EngineConfigError) as e:
        engine_config.load_mn_config(str(path))
    assert words in str(e.value) and str(path) in str(e.value), str(e.value)
    path.write_text(MN_TOML.format(key=key, outer='"2001:db8:ffff::1"', ha=HA))
    assert engine_config.load_mn_config(str(path)).home_agent.address == HA  # the good one loads


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("dbus-daemon") is None,
                    reason="the engine's D-Bus service needs root and dbus-daemon")
def test_configure_home_agent_over_dbus_refuses_the_home_address_before_polkit(qloop):
    """The real service on a private system bus (tests/enginebus.py), called as a client would."""
    pytest.importorskip("dbus")
    from dbus_fast import BusType, Message, MessageType
    from dbus_fast.aio import MessageBus
    from enginebus import HOA1, StandInDaemon, start_stack
    from mhgui.engine.mn_dbus import ACTION_CONFIGURE, BUS_NAME, INTERFACE, OBJECT_PATH, serve

    stack = start_stack()

    async def scenario():
        stack.reset()
        stack.allow(ACTION_CONFIGURE)
        d = StandInDaemon()
        service = await serve(d, stack.address)
        bus = await MessageBus(bus_address=stack.address, bus_type=BusType.SYSTEM).connect()
        try:
            replies = []
            for ha, outer in ((HOA1, "2001:db8:ffff::1"), (HA, "2001:db8:ffff::1%eth0")):
                replies.append(await bus.call(Message(
                    destination=BUS_NAME, path=OBJECT_PATH, interface=INTERFACE, member="ConfigureHomeAgent",
                    signature="asssuay", body=[[outer], ha, "mn@example.net", 4242, KEY])))
            return replies, d
        finally:
            bus.disconnect()
            await service.close()

    try:
        replies, d = qloop.run_until_complete(scenario())
        for reply, words in zip(replies, ("own home address", "has a zone")):
            assert reply.message_type is MessageType.ERROR and reply.error_name.endswith("InvalidArgs"), reply.body
            assert words in reply.body[0], reply.body
        assert d.restarts == 0 and stack.auth_calls() == []  # refused before anyone was asked
    finally:
        stack.stop()


# --------------------------------------------------------------------------- prefilled from GetStatus
class Engine:
    """An EngineDriver's face for the dialog: status, its last GetStatus object, ConfigureHomeAgent."""

    def __init__(self, status: dict) -> None:
        self.status = SimpleNamespace(reachable=True)
        self._json = status
        self.sent: list[tuple] = []

    def engine_status(self) -> dict:
        return dict(self._json)

    async def configure_home_agent(self, *args) -> None:
        self.sent.append(args)


STATUS = {"api_version": "1", "identity": "mn1@example.net", "home_agent": HA,
          "home_agent_addresses": ["2001:db8:ffff::1", "192.0.2.1"], "port": 4191, "home_addresses": [HOA],
          "config_path": "/etc/mhgui/mn.toml", "key": "00" * 32, "spi": 300}


def test_check_the_settings_opens_the_form_filled_from_the_engine(qtbot):
    dlg = FirstRunDialog(Engine(STATUS))
    qtbot.addWidget(dlg)
    assert dlg.addresses.text() == "2001:db8:ffff::1, 192.0.2.1"
    assert dlg.home_agent.text() == HA and dlg.identity.text() == "mn1@example.net"
    assert "4191" in dlg.port_note.text() and not dlg.port_note.isHidden()
    assert dlg.key is None and dlg.key_state.text() == "no key yet"  # never a key from anywhere but a file
    assert dlg.spi.text() == ""  # GetStatus does not give the SPI: the user types it (the one in ha.toml)
    # the node's own home address as the home agent: refused here as the engine would
    dlg.home_agent.setText(HOA)
    dlg.set_key(KEY, "a key")
    assert "own home address" in dlg.problems.text() and not dlg.connect_button.isEnabled()
    dlg.home_agent.setText(HA)
    dlg.spi.setText("300")
    assert dlg.connect_button.isEnabled(), dlg.problems.text()


def test_prefill_takes_only_text_from_a_hostile_status():
    from mhgui.ui.firstrun import prefill
    p = prefill({"identity": ["x"], "home_agent": "2001:db8::1\n[evil]", "home_agent_addresses": "not a list",
                 "port": True, "home_addresses": [1, HOA]})
    assert p.identity == "" and p.home_agent == "" and p.addresses == "" and p.port is None
    assert p.home_addresses == (HOA,)
    assert prefill(None) == prefill(json.loads("[]")) == prefill({})


def test_what_the_user_typed_is_not_overwritten(qtbot):
    eng = Engine({})
    dlg = FirstRunDialog(eng)
    qtbot.addWidget(dlg)
    dlg.identity.setText("typed@example.org")
    eng._json = STATUS
    dlg.fill_from_engine()  # the engine answered later (its StatusChanged)
    assert dlg.identity.text() == "typed@example.org" and dlg.home_agent.text() == HA


# --------------------------------------------------------------------------- the lab, for both kinds of install
def test_the_lab_text_works_from_a_clone_and_installed():
    text = LAB_TEXT
    assert "./scripts/run --lab" in text  # from a clone
    assert ".venv" not in text  # a package install has no .venv
    installed = text[text.index("Installed"):]
    assert "sudo mhctl lab up" in installed and "mhctl lab exec" in installed and "-- mhgui" in installed
    assert "./scripts" not in installed
