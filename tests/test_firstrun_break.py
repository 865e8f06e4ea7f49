"""The getting-started dialog attacked (issue 15.3): hostile key files (a FIFO, a device, a directory, blanks),
a key saved over a file others can read, the form accepting what the engine refuses, the key kept after the
dialog closed, a generated key sent before it was saved for the home agent, Enter opening a file dialog.

Real parts: the real file system (FIFOs, /dev/zero, modes), the engine's own argument check
(:func:`mhgui.engine.mn_dbus.check_home_agent_setting`), Qt's real key handling (offscreen).
"""

from __future__ import annotations

import asyncio
import os
import stat
from types import SimpleNamespace

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog

from mhgui.engine.mn_dbus import ControlFailure, check_home_agent_setting
from mhgui.ui.firstrun import FirstRunDialog, check_form, parse_key_file

KEY = bytes(range(32))
HA = "2001:db8:1::1"

pytestmark = pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints")  # offscreen dialogs


class Engine:
    """The two things the dialog uses of an EngineDriver: its status and ConfigureHomeAgent (recorded)."""

    def __init__(self) -> None:
        self.status = SimpleNamespace(reachable=True)
        self.sent: list[tuple] = []

    async def configure_home_agent(self, *args) -> None:
        self.sent.append(args)


def _fill(dlg: FirstRunDialog, addresses="2001:db8:ffff::1", ha=HA, identity="mn@example.org", spi="300") -> None:
    dlg.addresses.setText(addresses)
    dlg.home_agent.setText(ha)
    dlg.identity.setText(identity)
    dlg.spi.setText(spi)


# --------------------------------------------------------------------------- hostile key files
def test_a_fifo_device_or_directory_is_refused_at_once(qtbot, qloop, tmp_path):
    """A FIFO chosen as the key file used to block the reading thread forever (and the app's exit, which joins
    the executor's threads); /dev/zero and a directory are not key files either."""
    dlg = FirstRunDialog(None)
    qtbot.addWidget(dlg)
    fifo = tmp_path / "key.fifo"
    os.mkfifo(fifo)
    good = tmp_path / "real.key"
    good.write_text(KEY.hex() + "\n")
    link = tmp_path / "link.key"
    link.symlink_to(good)  # the user's own choice: a link to a key file is fine
    big = tmp_path / "big.key"
    big.write_bytes(b"0" * 5000)

    async def scenario():
        out = {}
        for p in (fifo, "/dev/zero", tmp_path, big, link):
            try:
                out[str(p)] = (await asyncio.wait_for(dlg.load_key_file(str(p)), 3.0), dlg.key_state.text())
            except asyncio.TimeoutError:
                out[str(p)] = ("hung", "")
        return out

    try:
        out = qloop.run_until_complete(scenario())
    finally:  # a reader stuck in open() is let go (else the test session could not end)
        try:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass
    assert out[str(fifo)][0] is False and "not a regular file" in out[str(fifo)][1], out
    assert out["/dev/zero"][0] is False and "not a regular file" in out["/dev/zero"][1], out
    assert out[str(tmp_path)][0] is False, out
    assert out[str(big)][0] is False and "larger than 1 KiB" in out[str(big)][1], out
    assert out[str(link)][0] is True and dlg.key == KEY
    assert KEY.hex() not in dlg.key_state.text()


def test_blank_files_are_not_raw_keys():
    """16..64 bytes of spaces or newlines are an empty text file, not a binary key."""
    for data in (b" " * 20, b"\n" * 16, b"\r\n" * 10, b"\t \n" * 8):
        with pytest.raises(ValueError):
            parse_key_file(data)
    assert parse_key_file(b"\n" + bytes(range(200, 232))) == b"\n" + bytes(range(200, 232))  # binary stays


def test_saving_the_key_never_leaves_it_readable_by_others(qtbot, qloop, tmp_path):
    """Saving over an existing file of mode 0644 kept that mode (the key readable by every user) while the dialog
    said "mode 0600"; a FIFO there blocked the writing thread."""
    dlg = FirstRunDialog(None)
    qtbot.addWidget(dlg)
    dlg.generate_key()
    key = dlg.key
    old = tmp_path / "for-the-ha.key"
    old.write_text("an old note\n")
    old.chmod(0o644)
    fifo = tmp_path / "pipe.key"
    os.mkfifo(fifo)

    async def scenario():
        first = await dlg.write_key_file(str(old))
        said = dlg.key_state.text()
        try:
            second = await asyncio.wait_for(dlg.write_key_file(str(fifo)), 3.0)
        except asyncio.TimeoutError:
            second = "hung"
        return first, said, second

    try:
        first, said, second = qloop.run_until_complete(scenario())
    finally:
        try:  # a writer stuck in open() is let go
            fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
            os.close(fd)
        except OSError:
            pass
    assert first is True and "0600" in said
    assert stat.S_IMODE(old.stat().st_mode) == 0o600, oct(old.stat().st_mode)
    assert old.read_text() == key.hex() + "\n"
    assert second != "hung"
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # no temp file left behind


# --------------------------------------------------------------------------- the form and the engine's rules
@pytest.mark.parametrize("addresses,ha", [
    ("2001:db8:ffff::1", "fe80::1"),               # link-local home agent: the engine refuses it
    ("2001:db8:ffff::1", "2001:db8:1::1%eth0"),    # a zone: no meaning for an address on the home prefix
    ("2001:db8:ffff::1%eth0", HA),                 # nor for one on the Internet
])
def test_the_form_refuses_what_the_engine_refuses_or_cannot_mean(addresses, ha):
    form, problems = check_form(addresses, ha, "mn@example.org", "300", KEY)
    assert form is None and len(problems) == 1, problems


def test_whatever_the_form_takes_the_engine_takes():
    """Every form that passes the dialog's check passes the engine's own (no "OK" here, "InvalidArgs" there)."""
    outer = ["2001:db8:ffff::1", "192.0.2.1", "2001:db8:ffff::1, 192.0.2.1", "::ffff:192.0.2.1"]
    has = [HA, "fe80::1", "fe80::1%eth0", "2001:db8:1::1%2", "ff02::1", "::1", "::", "2001:db8:1::"]
    ids = ["mn@example.org", "ü@example.org", "a" * 253]
    spis = ["256", "0x100", "1_000", "4294967295"]
    for a in outer:
        for h in has:
            for i in ids:
                for s in spis:
                    form, _problems = check_form(a, h, i, s, KEY)
                    if form is None:
                        continue
                    try:
                        check_home_agent_setting(list(form.addresses), form.home_agent_address, form.identity,
                                                 form.spi, form.key)
                    except ControlFailure as e:
                        raise AssertionError(f"the form took {(a, h, i, s)} but the engine refuses it: {e}") from None


# --------------------------------------------------------------------------- the key's life
def test_the_key_goes_when_the_dialog_closes(qtbot):
    dlg = FirstRunDialog(Engine())
    qtbot.addWidget(dlg)
    dlg.set_key(KEY, "a key")
    dlg.open()
    dlg.reject()
    assert dlg.key is None and dlg.key_state.text() == "no key yet"
    assert isinstance(dlg.result(), int)  # QDialog.result() is not shadowed by a label


def test_a_generated_key_is_saved_before_it_is_sent(qtbot, qloop, tmp_path):
    """A generated key sent before it was saved cannot reach the home agent's ha.toml: the node could never
    register, and the key is then only in a root-only file."""
    eng = Engine()
    dlg = FirstRunDialog(eng)
    qtbot.addWidget(dlg)
    _fill(dlg)
    dlg.generate_key()
    assert not dlg.connect_button.isEnabled() and "save" in dlg.problems.text().lower(), dlg.problems.text()
    assert dlg.submit() is None and eng.sent == []
    assert qloop.run_until_complete(dlg.write_key_file(str(tmp_path / "ha.key")))
    assert dlg.connect_button.isEnabled(), dlg.problems.text()
    # a key read from a file needs no saving
    dlg.set_key(KEY, "a key from a file")
    assert dlg.connect_button.isEnabled()


def test_enter_in_the_form_connects_it_does_not_open_a_file_dialog(qtbot, qloop, tmp_path):
    eng = Engine()
    dlg = FirstRunDialog(eng)
    qtbot.addWidget(dlg)
    dlg.open()
    dlg.generate_key()
    _fill(dlg, spi="")
    dlg.spi.setFocus()
    qtbot.keyClicks(dlg.spi, "300")
    qtbot.keyClick(dlg.spi, Qt.Key.Key_Return)
    assert [w for w in dlg.findChildren(QFileDialog) if w.isVisible()] == []
    assert dlg.isVisible()
    assert qloop.run_until_complete(dlg.write_key_file(str(tmp_path / "ha.key")))
    dlg.spi.setFocus()
    qtbot.keyClick(dlg.spi, Qt.Key.Key_Return)

    async def settle():
        for _ in range(100):
            if eng.sent:
                return
            await asyncio.sleep(0.01)

    qloop.run_until_complete(settle())
    assert len(eng.sent) == 1 and eng.sent[0][3] == 300
    assert [w for w in dlg.findChildren(QFileDialog) if w.isVisible()] == []
    dlg.close()


# --------------------------------------------------------------------------- the engine coming and going
needs_bus = pytest.mark.skipif(os.geteuid() != 0 or not __import__("shutil").which("dbus-daemon"),
                               reason="needs root and dbus-daemon")


@needs_bus
def test_the_form_follows_the_engine_while_open(qtbot, qloop, engine_stack):
    """Opened before the engine ran, the form stayed disabled with "not running" after it started (nothing was
    typed, so nothing re-checked it); opened with it, Connect stayed enabled after it went, and did nothing."""
    from enginebus import StandInDaemon
    from waiting import until
    from mhgui.daemons.engine import EngineDriver
    from mhgui.engine.mn_dbus import serve

    engine_stack.reset()
    driver = EngineDriver(bus_address=engine_stack.address, backoff_initial=0.05, backoff_max=0.2)
    dlg = FirstRunDialog(driver)
    qtbot.addWidget(dlg)
    dlg.open()
    _fill(dlg)
    dlg.set_key(KEY, "a key from a file")

    async def scenario():
        await driver.start()
        try:
            await until(lambda: driver.status.state == "absent", "no engine yet")
            assert not dlg.install_note.isHidden() and not dlg.connect_button.isEnabled()
            service = await serve(StandInDaemon(), engine_stack.address)
            try:
                await until(lambda: dlg.connect_button.isEnabled(), "the form to open up by itself")
                assert dlg.install_note.isHidden() and dlg.form_box.isEnabled()
            finally:
                await service.close()
            await until(lambda: not dlg.connect_button.isEnabled(), "Connect to go with the engine")
            assert not dlg.install_note.isHidden()
        finally:
            await driver.stop()

    qloop.run_until_complete(scenario())
    following = len(driver._callbacks)
    dlg.reject()  # (outside the loop: the last window closing stops a test's loop)
    assert len(driver._callbacks) == following - 1  # the closed dialog no longer listens to the driver


@pytest.mark.qt_log_ignore("This plugin does not support raise", "This plugin does not support propagateSizeHints")
def test_a_double_click_opens_one_file_dialog(qtbot):
    dlg = FirstRunDialog(Engine())
    qtbot.addWidget(dlg)
    dlg.open()
    dlg.key_from_file.click()
    dlg.key_from_file.click()
    assert len([w for w in dlg.findChildren(QFileDialog) if w.isVisible()]) == 1
    for w in dlg.findChildren(QFileDialog):
        w.reject()
    dlg.generate_key()
    dlg.save_key.click()
    dlg.save_key.click()
    assert len([w for w in dlg.findChildren(QFileDialog) if w.isVisible()]) == 1
    for w in dlg.findChildren(QFileDialog):
        w.reject()
    dlg.close()


@pytest.mark.skipif(not __import__("shutil").which("xgettext"), reason="needs GNU gettext")
def test_the_long_texts_reach_the_catalogue():
    """INSTALL_TEXT and LAB_TEXT were translated with _() where shown but never marked: xgettext did not see
    them, so no catalogue could have them (a German window showed them in English)."""
    import subprocess
    from pathlib import Path
    from mhgui.ui import firstrun
    src = Path(firstrun.__file__)
    out = subprocess.run(["xgettext", "-o", "-", "-L", "Python", "--from-code=UTF-8", "--keyword=", "--keyword=_",
                          "--keyword=N_", "--keyword=ngettext:1,2", "--omit-header", str(src)],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    flat = "".join(line[1:-1] for line in out.splitlines() if line.startswith('"') or line.startswith("msgid \""))
    for text in (firstrun.INSTALL_TEXT, firstrun.LAB_TEXT):
        assert text[:60].replace('"', '\\"') in flat, text[:60]
