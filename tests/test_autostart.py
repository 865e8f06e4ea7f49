"""Autostart in the tray at login (issue 15.5): the XDG autostart entry (desktop-file-validate), the preferences
dialog's box, the ``--tray`` start option, and inside a Flatpak the Background portal (a python-dbusmock template
of org.freedesktop.portal.Background on a private session bus, written from the portal's documentation)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path

import pytest

from mhgui.ui import autostart
from mhgui.ui.app import parser

PORTAL_TEMPLATE = '''
"""org.freedesktop.portal.Background, as its documentation describes it: RequestBackground(s parent_window,
a{sv} options) -> o handle; the answer is the Response(u response, a{sv} results) signal of the
org.freedesktop.portal.Request object at /org/freedesktop/portal/desktop/request/SENDER/TOKEN, sent after
the reply. Parameters: "response" (0 granted, 1 cancelled, 2 other; default 0), "early" (answer before the
reply, which the documentation warns a client about)."""
import ctypes

import dbus
from dbusmock import mockobject

_glib = ctypes.cdll.LoadLibrary("libglib-2.0.so.0")  # dbusmock's main loop is GLib's (no PyGObject needed)
_SOURCE_FUNC = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p)
_pending = []  # the callbacks GLib holds

BUS_NAME = "org.freedesktop.portal.Desktop"
MAIN_OBJ = "/org/freedesktop/portal/desktop"
MAIN_IFACE = "org.freedesktop.portal.Background"
SYSTEM_BUS = False
REQUEST_IFACE = "org.freedesktop.portal.Request"
TEST_IFACE = "org.freedesktop.DBus.Mock.Portal"


def load(mock, parameters):
    mock.response = int(parameters.get("response", 0))
    mock.early = bool(parameters.get("early", False))  # answer before the method's reply (a fast portal)
    mock.requests = []
    mock.AddProperties(MAIN_IFACE, {"version": dbus.UInt32(2)})


@dbus.service.method(MAIN_IFACE, in_signature="sa{sv}", out_signature="o", sender_keyword="sender")
def RequestBackground(self, parent_window, options, sender):
    token = str(options.get("handle_token", "t%d" % len(self.requests)))
    path = "/org/freedesktop/portal/desktop/request/%s/%s" % (sender[1:].replace(".", "_"), token)
    self.requests.append({"parent_window": parent_window, "reason": str(options.get("reason", "")),
                          "autostart": bool(options.get("autostart", False)),
                          "commandline": [str(a) for a in options.get("commandline", [])],
                          "dbus-activatable": bool(options.get("dbus-activatable", False))})
    self.AddObject(path, REQUEST_IFACE, {}, [])
    granted = self.response == 0
    results = {"background": dbus.Boolean(granted),
               "autostart": dbus.Boolean(granted and bool(options.get("autostart", False)))}

    def answer(_data):
        mockobject.objects[path].EmitSignal(REQUEST_IFACE, "Response", "ua{sv}",
                                            [dbus.UInt32(self.response), dbus.Dictionary(results, signature="sv")])
        return 0  # G_SOURCE_REMOVE

    if self.early:
        answer(None)
        return dbus.ObjectPath(path)
    cb = _SOURCE_FUNC(answer)
    _pending.append(cb)
    _glib.g_timeout_add(30, cb, None)  # after the reply, as the real portal (the client subscribed before)
    return dbus.ObjectPath(path)


@dbus.service.method(TEST_IFACE, in_signature="", out_signature="s")
def Requests(self):
    import json
    return json.dumps(self.requests)
'''

needs_bus = pytest.mark.skipif(shutil.which("dbus-daemon") is None, reason="needs dbus-daemon")


def validate(path: Path) -> str:
    """desktop-file-validate's complaints about ``path`` ("" when none)."""
    p = subprocess.run(["desktop-file-validate", str(path)], capture_output=True, text=True, timeout=30)
    return (p.stdout + p.stderr).strip() if p.returncode or p.stdout.strip() or p.stderr.strip() else ""


@pytest.mark.skipif(shutil.which("desktop-file-validate") is None, reason="needs desktop-file-validate")
@pytest.mark.parametrize("argv", [["mhgui", "--tray"], ["/home/a user/.venv/bin/mhgui", "--tray"],
                                  ["/opt/$weird`dir\\/100%/mhgui", "--tray"]])
def test_the_entry_is_a_valid_desktop_file(tmp_path, argv):
    f = tmp_path / autostart.ENTRY_NAME
    f.write_text(autostart.desktop_entry(argv))
    assert validate(f) == ""
    text = f.read_text()
    assert "Type=Application" in text and "X-GNOME-Autostart-enabled=true" in text
    exec_line = next(line for line in text.splitlines() if line.startswith("Exec="))
    assert exec_line.endswith(" --tray")
    # the spec's two unescaping steps give the arguments back
    value = exec_line[len("Exec="):].replace("\\\\", "\\")
    assert unquote_exec(value) == argv


def unquote_exec(value: str) -> list[str]:
    """The Desktop Entry Specification's Exec key split into arguments (quoting and %% only)."""
    out, cur, i, quoted, had = [], "", 0, False, False
    while i < len(value):
        ch = value[i]
        if quoted:
            if ch == "\\" and i + 1 < len(value):
                cur += value[i + 1]
                i += 1
            elif ch == '"':
                quoted = False
            else:
                cur += ch
        elif ch == '"':
            quoted, had = True, True
        elif ch == " ":
            if cur or had:
                out.append(cur)
            cur, had = "", False
        else:
            cur += ch
        i += 1
    if cur or had:
        out.append(cur)
    return [a.replace("%%", "%") for a in out]


def test_a_line_break_cannot_be_put_in_the_entry():
    with pytest.raises(ValueError):
        autostart.desktop_entry(["mhgui", "--settings", "a\nb"])


def test_the_autostart_directory_follows_xdg(tmp_path):
    assert autostart.entry_path({"XDG_CONFIG_HOME": str(tmp_path)}) == str(tmp_path / "autostart" /
                                                                            "io.github.mhgui.MHGui.desktop")
    assert autostart.autostart_dir({"XDG_CONFIG_HOME": "relative"}).endswith("/.config/autostart")
    assert autostart.in_flatpak({"FLATPAK_ID": "io.github.mhgui.MHGui"}, info=str(tmp_path / "none"))
    assert not autostart.in_flatpak({}, info=str(tmp_path / "none"))


def test_the_app_has_a_start_in_the_tray_option():
    assert parser().parse_args(["--tray"]).tray is True
    assert parser().parse_args([]).tray is False
    assert autostart.command()[-1] == autostart.TRAY_FLAG == "--tray"


def test_on_and_off_through_the_file(qloop, tmp_path, monkeypatch):
    env = {"XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    r = qloop.run_until_complete(autostart.set_autostart(True, flatpak=False, environ=env))
    path = Path(autostart.entry_path(env))
    assert r.ok and r.enabled and r.how == "file" and str(path) in r.message
    assert path.is_file() and autostart.is_enabled(env)
    if shutil.which("desktop-file-validate"):
        assert validate(path) == ""
    assert "--tray" in path.read_text()
    path.write_text(path.read_text() + "Hidden=true\n")  # the spec's "deleted" mark: off
    assert not autostart.is_enabled(env)
    r = qloop.run_until_complete(autostart.set_autostart(False, flatpak=False, environ=env))
    assert r.ok and not r.enabled and not path.exists()
    r = qloop.run_until_complete(autostart.set_autostart(False, flatpak=False, environ=env))
    assert r.ok  # already off: nothing to do, not an error


def test_a_directory_that_cannot_be_written_is_said(qloop, tmp_path):
    blocker = tmp_path / "cfg"
    blocker.write_text("a file where the directory should be")
    env = {"XDG_CONFIG_HOME": str(blocker)}
    r = qloop.run_until_complete(autostart.set_autostart(True, flatpak=False, environ=env))
    assert not r.ok and not r.enabled and "Could not change the start at login" in r.message


@pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints")  # offscreen, the dialog is opened
def test_the_preferences_box_writes_and_removes_the_entry(qtbot, qloop, tmp_path):
    from mhgui.ui.preferences import PreferencesDialog, open_preferences
    d = qloop.run_until_complete(open_preferences([("eth0", "ethernet", True, "")], path=tmp_path / "f.toml"))
    qtbot.addWidget(d)
    assert d.autostart.isEnabled() and not d.autostart.isChecked()  # read from the (absent) file
    d.autostart.setChecked(True)
    assert qloop.run_until_complete(d.apply())
    assert autostart.is_enabled() and d.autostart_result.how == "file"
    d2 = PreferencesDialog([("eth0", "ethernet", True, "")], path=tmp_path / "f.toml")
    qtbot.addWidget(d2)
    d2.set_autostart_state(autostart.is_enabled())
    assert d2.autostart.isChecked()
    d2.autostart.setChecked(False)
    assert qloop.run_until_complete(d2.apply())
    assert not Path(autostart.entry_path()).exists()


# ------------------------------------------------------------------------------ the portal (Flatpak)
@pytest.fixture
def portal(tmp_path, monkeypatch, request):
    """A private session bus with the Background portal mock; yields (bus address, mock)."""
    import os
    from dbusmock import SpawnedMock
    from dbusmock.testcase import BusType, PrivateDBus
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", os.environ.get("DBUS_SESSION_BUS_ADDRESS", "disabled:"))
    bus = PrivateDBus(BusType.SESSION)
    bus.start()
    try:
        template = tmp_path / "background_portal.py"
        template.write_text(PORTAL_TEMPLATE)
        params = getattr(request, "param", {})
        mock = SpawnedMock.spawn_with_template(str(template), params, bustype=BusType.SESSION,
                                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            yield bus.address, mock
        finally:
            mock.terminate()
            mock.process.wait()
    finally:
        bus.stop()  # also when the mock did not start


def requests_of(mock) -> list[dict]:
    import json
    return json.loads(str(mock.obj.Requests(dbus_interface="org.freedesktop.DBus.Mock.Portal")))


@needs_bus
@pytest.mark.parametrize("portal", [{}, {"early": True}], indirect=True, ids=["answer-after", "answer-before"])
def test_inside_a_flatpak_the_portal_is_asked(qloop, portal, tmp_path):
    address, mock = portal
    env = {"XDG_CONFIG_HOME": str(tmp_path / "cfg"), "FLATPAK_ID": "io.github.mhgui.MHGui"}
    r = qloop.run_until_complete(asyncio.wait_for(
        autostart.set_autostart(True, bus_address=address, environ=env), 20))
    assert r.ok and r.enabled and r.how == "portal", r
    [req] = requests_of(mock)
    assert req["autostart"] is True and req["commandline"] == ["mhgui", "--tray"] and req["reason"]
    assert not Path(autostart.entry_path(env)).exists()  # the sandbox writes no autostart file itself
    assert autostart.is_enabled_any(env)  # the granted answer is remembered for the dialog
    r = qloop.run_until_complete(asyncio.wait_for(
        autostart.set_autostart(False, bus_address=address, environ=env), 20))
    assert r.ok and not r.enabled
    assert [q["autostart"] for q in requests_of(mock)] == [True, False]
    assert not autostart.is_enabled_any(env)


@needs_bus
@pytest.mark.parametrize("portal", [{"response": 1}], indirect=True)
def test_a_refusal_is_said(qloop, portal, tmp_path):
    address, _mock = portal
    r = qloop.run_until_complete(asyncio.wait_for(
        autostart.set_autostart(True, flatpak=True, bus_address=address,
                                environ={"XDG_CONFIG_HOME": str(tmp_path)}), 20))
    assert not r.ok and not r.enabled and "not allowed" in r.message


@needs_bus
def test_no_portal_on_the_bus_is_said(qloop, tmp_path, monkeypatch):
    import os
    from dbusmock.testcase import BusType, PrivateDBus
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", os.environ.get("DBUS_SESSION_BUS_ADDRESS", "disabled:"))
    bus = PrivateDBus(BusType.SESSION)
    bus.start()
    try:
        r = qloop.run_until_complete(asyncio.wait_for(
            autostart.set_autostart(True, flatpak=True, bus_address=bus.address,
                                    environ={"XDG_CONFIG_HOME": str(tmp_path)}), 20))
    finally:
        bus.stop()
    assert not r.ok and r.how == "portal" and "ServiceUnknown" in r.message


APP_SCRIPT = """
import sys
from PySide6.QtCore import QTimer
from mhgui.ui.app import main

def on_window(win):
    def check():
        print("VISIBLE", win.isVisible(), flush=True)
        win.quit_requested.emit()
    QTimer.singleShot(int(sys.argv[1]), check)

sys.exit(main(sys.argv[2:], on_window=on_window))
"""


@needs_bus
@pytest.mark.skipif(shutil.which("Xvfb") is None, reason="needs Xvfb")
@pytest.mark.parametrize("tray_host", [True, False])
def test_started_with_tray_the_window_waits_in_the_tray(tmp_path, tray_host):
    """``mhgui --tray`` (what the autostart entry runs): with a tray host only the icon shows; without one
    the window does (else there would be no way in)."""
    from test_tray import Desktop
    import sys
    desk = Desktop(tmp_path)
    try:
        if tray_host:
            desk.start_watcher()
        env = dict(desk.env(), XDG_CONFIG_HOME=str(tmp_path / "cfg"))
        p = subprocess.run([sys.executable, "-c", APP_SCRIPT, "4000", "--tray", "--no-networkmanager",
                            "--settings", str(tmp_path / "settings.toml")],
                           env=env, capture_output=True, text=True, timeout=60)
        assert f"VISIBLE {not tray_host}" in p.stdout, p.stdout + p.stderr
        if tray_host:
            assert desk.watcher.items or any(e[0] == "registered" for e in desk.watcher.events)
    finally:
        desk.close()
