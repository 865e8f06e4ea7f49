"""Getting started (mhgui.ui.firstrun, issue 15.3): the form checked as you type, the key read from a file,
``ConfigureHomeAgent`` sent to the engine's real control API and refused by polkit (dbusmock's polkitd on a
private system bus, the engine's real D-Bus policy), then taken; and sent to the real engine of a lab
(``mhctl lab up``), which restarts with it and registers again."""

from __future__ import annotations

import asyncio
import os
import shutil
import stat

import pytest

from mhgui.ui.firstrun import FirstRunDialog, check_form, parse_key_file
from netns import lab_why_not

KEY = bytes(range(32))
HA = "2001:db8:1::1"


def test_check_form_says_what_is_missing_field_by_field():
    form, problems = check_form("2001:db8:ffff::1, 192.0.2.1", HA, "laptop@example.org", "4242", KEY)
    assert problems == [] and form.addresses == ("2001:db8:ffff::1", "192.0.2.1") and form.spi == 4242
    assert "key" not in repr(form) or KEY.hex() not in repr(form)
    assert KEY.hex() not in repr(form) and str(KEY) not in repr(form)
    form, problems = check_form("", "", "", "", None)
    assert form is None and [p.split(":")[0] for p in problems] == [
        "Home agent addresses", "Home agent address", "Identity", "SPI", "Key"]
    bad = [
        (("ha.example.net", HA, "a@b", "256", KEY), "is not an IP address"),
        (("2001:db8::1 2001:db8::2", HA, "a@b", "256", KEY), "two IPv6 addresses"),
        (("192.0.2.1 192.0.2.2 2001:db8::1", HA, "a@b", "256", KEY), "at most two"),
        (("ff02::1", HA, "a@b", "256", KEY), "not a unicast address"),
        (("192.0.2.1", "192.0.2.9", "a@b", "256", KEY), "Home agent address: its IPv6 address"),
        (("192.0.2.1", HA, "a b@c", "256", KEY), "Identity"),
        (("192.0.2.1", HA, "x" * 254, "256", KEY), "Identity"),
        (("192.0.2.1", HA, "a@b", "255", KEY), "SPI"),
        (("192.0.2.1", HA, "a@b", "4294967296", KEY), "SPI"),
        (("192.0.2.1", HA, "a@b", "0x100", bytes(15)), "Key: 15 bytes"),
    ]
    for args, want in bad:
        form, problems = check_form(*args)
        assert form is None and len(problems) == 1 and want in problems[0], (args, problems)
    assert check_form("192.0.2.1", HA, "a@b", "0x100", KEY)[0].spi == 256


def test_key_files():
    assert parse_key_file(KEY.hex().encode() + b"\n") == KEY  # as the engine writes it
    assert parse_key_file(bytes(range(200, 232))) == bytes(range(200, 232))  # raw binary bytes
    assert parse_key_file(bytes(range(16))) == bytes(range(16))
    # text that is not a hex key (a typo) is refused, never taken as raw bytes
    for data in (b"", b"abc", b"zz" * 20, bytes(65), KEY.hex()[:-1].encode(), b"0" * 30, b"0" * 130):
        with pytest.raises(ValueError) as e:
            parse_key_file(data)
        assert "not a key file" in str(e.value) and "zz" not in str(e.value)


def _fill(dlg: FirstRunDialog, addresses: str, ha: str, identity: str, spi: str) -> None:
    dlg.addresses.setText(addresses)
    dlg.home_agent.setText(ha)
    dlg.identity.setText(identity)
    dlg.spi.setText(spi)


# --------------------------------------------------------------------------- the engine's control API
needs_bus = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("dbus-daemon") is None,
                               reason="needs root and dbus-daemon (the engine's bus name is root's)")


@needs_bus
@pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints")  # offscreen, a shown dialog
def test_dialog_refused_by_polkit_then_taken(qtbot, qloop, engine_stack, tmp_path):
    from enginebus import StandInDaemon
    from waiting import until
    from mhgui.daemons.engine import EngineDriver
    from mhgui.engine import config as engine_config
    from mhgui.engine.mn_dbus import ACTION_CONFIGURE, serve
    from test_engine_dbus import MN_TOML

    stack = engine_stack
    stack.reset()
    keydir = tmp_path / "keys"
    key = keydir / "mn.key"
    engine_config.write_key_file(str(key), b"\x01" * 32)
    path = tmp_path / "etc" / "mn.toml"
    path.parent.mkdir()
    path.write_text(MN_TOML.format(key=key))
    given = tmp_path / "from-the-ha-admin.key"
    given.write_text(KEY.hex() + "\n")
    before = path.read_bytes()
    daemon = StandInDaemon()
    driver = EngineDriver(bus_address=stack.address)
    dlg = FirstRunDialog(driver)
    qtbot.addWidget(dlg)
    outcomes = []
    dlg.message.connect(lambda text, ok: outcomes.append((text, ok)))

    async def scenario():
        service = await serve(daemon, stack.address, config_path=str(path))
        await driver.start()
        try:
            await until(lambda: driver.status.reachable, "the driver to connect")
            dlg.validate()
            assert dlg.install_note.isHidden() and dlg.form_box.isEnabled()
            assert not dlg.connect_button.isEnabled() and "Home agent addresses" in dlg.problems.text()
            _fill(dlg, "2001:DB8:FFFF::10 192.0.2.10", "2001:db8:1::2", "mn7@example.net", "4242")
            assert not dlg.connect_button.isEnabled() and dlg.problems.text().startswith("Key:")
            assert await dlg.load_key_file(str(given))
            assert dlg.connect_button.isEnabled() and dlg.problems.text() == ""
            assert KEY.hex() not in dlg.key_state.text()  # the key is never shown
            # polkit says no: nothing is written, and the dialog says what was refused and what to do
            task = dlg.submit()
            assert task is not None
            assert await task is False
            text, ok = outcomes[-1]
            assert ok is False and text.startswith(
                "Changing the home agent and key of the mobility engine was refused by your system's policy "
                "(polkit): ask an administrator, or run: ")
            assert path.read_bytes() == before and daemon.restarts == 0
            assert [c[2] for c in stack.auth_calls()] == [ACTION_CONFIGURE]
            # allowed: the engine writes mn.toml and the key (root-only) and restarts
            stack.allow(ACTION_CONFIGURE)
            assert await dlg.submit() is True
            assert outcomes[-1][1] is True and "restarts" in outcomes[-1][0]
        finally:
            await driver.stop()
            await service.close()

    qloop.run_until_complete(scenario())
    cfg = engine_config.load_mn_config(str(path))
    assert cfg.identity == "mn7@example.net" and cfg.spi == 4242
    assert cfg.home_agent.addresses == ("2001:db8:ffff::10", "192.0.2.10") and cfg.home_agent.address == "2001:db8:1::2"
    assert engine_config.read_key_file(str(key)) == KEY
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and key.stat().st_uid == 0
    assert daemon.restarts == 1


def test_without_the_engine_the_dialog_says_how_to_get_it(qtbot):
    dlg = FirstRunDialog(None)
    qtbot.addWidget(dlg)
    _fill(dlg, "192.0.2.1", HA, "a@b", "256")
    dlg.set_key(KEY, "a key")
    assert not dlg.install_note.isHidden() and "install-engine" in dlg.install_note.text()
    assert not dlg.form_box.isEnabled() and not dlg.connect_button.isEnabled()
    assert dlg.submit() is None


# --------------------------------------------------------------------------- a real engine, in a lab
LAB_PREFIX = "h2a"


@pytest.mark.netns
@pytest.mark.skipif(lab_why_not() is not None, reason=lab_why_not() or "")
@pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints")
def test_dialog_configures_the_lab_engine_which_restarts_and_registers_again(qtbot, qloop):
    """The lab's mobile node runs the real engine (its bus, its polkit authority: root is allowed). The dialog
    sends the lab's home agent, identity, SPI and the key read from the lab's key file; the engine rewrites
    mn.toml, restarts (a new owner of its name) and registers its home address again."""
    from mhgui.daemons.engine import EngineDriver
    from mhgui.lab import HA_ADDRESSES, HA_HOME_ADDRESS, HOA, IDENTITY, SPI, Lab

    if Lab.is_up(LAB_PREFIX):
        Lab.down(LAB_PREFIX)
    info = Lab.up(LAB_PREFIX)
    driver = EngineDriver(bus_address=info.bus_address, backoff_initial=0.05, backoff_max=0.5)
    dlg = FirstRunDialog(driver)
    qtbot.addWidget(dlg)

    def registered() -> bool:
        return any(b.get("hoa") == HOA and b.get("state") == "registered" for b in driver.raw_bindings())

    async def until(pred, what, timeout=30.0):
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not pred():
            assert loop.time() < deadline, f"timed out waiting for {what}"
            await asyncio.sleep(0.05)

    async def scenario():
        await driver.start()
        try:
            await until(registered, "the lab's first registration")
            generation = driver.generation
            _fill(dlg, ", ".join(HA_ADDRESSES), HA_HOME_ADDRESS, IDENTITY, str(SPI))
            assert await dlg.load_key_file(str(info.path("keys/mn1.key")))
            assert dlg.connect_button.isEnabled(), dlg.problems.text()
            assert await dlg.submit() is True
            await until(lambda: driver.generation > generation and registered(), "the restarted engine to register")
        finally:
            await driver.stop()

    try:
        qloop.run_until_complete(scenario())
        assert info.path("mn.toml.bak").exists()  # the engine wrote mn.toml (the previous one kept)
        key = info.path("keys/mn1.key")
        assert stat.S_IMODE(key.stat().st_mode) == 0o600 and key.stat().st_uid == 0
    finally:
        Lab.down(LAB_PREFIX)
