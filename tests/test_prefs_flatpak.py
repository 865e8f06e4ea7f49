"""Inside a Flatpak the preferences dialog gets mip6d.conf's MnIfPreference values through the helper.

The sandbox does not see the host's /etc, so the app asks the privileged helper's
``GetInterfacePreferences() -> a{su}``: only ``{interface: value}`` (the file and its includes), never the
text (mip6d.conf can name IPsec key files). It is not secret, so polkit is not asked; ``ReadConfig``,
which returns the whole text, still is; the bus policy still refuses users outside its groups.

The real helper on a private system bus (tests/test_helper.py's recipe); the app (runtime, window, shell)
believes it is sandboxed (``$MHGUI_FLATPAK_INFO``) and has no file of its own (its default
/etc/mip6d.conf is made to point at a path that does not exist): the dialog shows the order in use
from the helper's file.
"""

from __future__ import annotations

import asyncio
import grp
import os

import pytest

from test_helper import (  # noqa: E402 (skips the module without root or the tools)
    ERR, HelperProc, _dbus_send, _write_conf,
)
from mhgui.helper.client import HelperClient, HelperError, NotAuthorized

#: the helper's file: wlan0 ranked before eth1 (the app's saved order says the opposite), wwan0 unused,
#: usb0's value in the included file
CONF = """\
NodeConfig MN;
UseMnHaIPsec enabled;
IPsecPolicySet { HomeAgentAddress 2001:db8:1::1; HomeAddress 2001:db8:1::100/64;
                 IPsecPolicy HomeRegBinding UseESP; }
include "extra-*.conf"
Interface "eth1" { MnIfPreference 2; }
Interface "wlan0" { MnIfPreference 1; }
Interface "wwan0" { MnIfPreference 0; }
MnHomeLink "lo" {
\tHomeAgentAddress 2001:db8:1::1;
\tHomeAddress 2001:db8:1::100/64;
}
"""
EXTRA = 'Interface "usb0" { MnIfPreference 3; }\n'
WANT = {"eth1": 2, "wlan0": 1, "wwan0": 0, "usb0": 3}


@pytest.fixture
def helper(helper_stack, tmp_path):
    helper_stack.reset()
    conf = _write_conf(tmp_path / "etc", CONF)
    (conf.parent / "extra-1.conf").write_text(EXTRA)
    h = HelperProc(helper_stack, conf).start()
    try:
        yield h
    finally:
        rc = h.stop()
    assert rc == 0 and "Traceback" not in h.log, h.log


@pytest.mark.asyncio
async def test_preferences_without_polkit_and_nothing_else_of_the_file(helper_stack, helper):
    helper_stack.allow()  # polkit says no to everything
    async with HelperClient(helper_stack.address) as client:
        assert await client.interface_preferences() == WANT
        with pytest.raises(NotAuthorized):
            await client.read_config()  # the whole text (IPsec policies, key paths) still needs polkit
    # a missing file: no values ({}), not an error; a broken one: InvalidConfig naming a line, no text
    helper.conf.rename(helper.conf.with_name("moved.conf"))
    async with HelperClient(helper_stack.address) as client:
        assert await client.interface_preferences() == {}
        helper.conf.write_text('Interface "eth1" { MnIfPreference 2; }\nMnHomeLink "secret-key-path" {\n')
        with pytest.raises(HelperError) as bad:
            await client.interface_preferences()
    assert bad.value.error_name == ERR + "InvalidConfig" and "secret-key-path" not in str(bad.value)


def test_groups_of_the_bus_policy_only(helper_stack, helper):
    helper_stack.allow()
    p = _dbus_send(helper_stack, "GetInterfacePreferences")  # nobody, in no group: the bus refuses
    assert p.returncode != 0 and "AccessDenied" in p.stderr, p.stderr
    try:
        netdev = grp.getgrnam("netdev").gr_gid
    except KeyError:
        pytest.skip("no group netdev here")
    p = _dbus_send(helper_stack, "GetInterfacePreferences", groups=f"--groups={netdev}")
    assert p.returncode == 0, p.stderr
    for name, value in WANT.items():
        assert f'string "{name}"' in p.stdout and f"uint32 {value}" in p.stdout
    p = _dbus_send(helper_stack, "ReadConfig", groups=f"--groups={netdev}")
    assert p.returncode != 0 and "NotAuthorized" in p.stderr, p.stderr


@pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints")
def test_sandboxed_dialog_shows_the_order_in_use_from_the_helper(helper_stack, helper, tmp_path, monkeypatch, qtbot, qloop):
    from mhgui.core.failover import Preferences
    from mhgui.core.prefsfile import FailoverSettings
    from mhgui.runtime import Runtime
    from mhgui.sources.journal import FailoverJournal
    from mhgui.sources.prefs_store import save_prefs
    from mhgui.ui.shell import AppShell
    from mhgui.ui.window import LiveController, MainWindow

    info = tmp_path / "flatpak-info"
    info.write_text("[Application]\nname=io.github.mhgui.MHGui\n\n[Context]\nsockets=system-bus;\n")
    monkeypatch.setenv("MHGUI_FLATPAK_INFO", str(info))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    # the host's /etc is not visible in the sandbox: the app's own default path leads nowhere
    monkeypatch.setattr("mhgui.sources.config.DEFAULT_MIP6D_CONF", str(tmp_path / "not-visible" / "mip6d.conf"))
    helper_stack.allow()  # no polkit needed for what the dialog reads
    prefs_path = tmp_path / "failover.toml"
    save_prefs(FailoverSettings(Preferences(("eth1", "wlan0"), holdup=1.0)), prefs_path)

    rt = Runtime(system_bus=helper_stack.address, use_networkmanager=False, vt_port=None)
    c = LiveController(rt.store, rt.clock, daemon=rt.daemon)
    win = MainWindow(c)
    qtbot.addWidget(win)
    shell = AppShell(rt, win, lambda: None, system_bus=helper_stack.address, tray=False,
                     journal=FailoverJournal(str(tmp_path / "failover.jsonl")), prefs_path=str(prefs_path))

    async def scenario():
        await rt.start()
        await shell.start()
        try:
            assert rt.sandbox.flatpak
            assert shell._current_mnif == WANT
            dlg = await shell._open_preferences()
            try:
                assert dlg.current_mnif == WANT
                # the file ranks wlan0 first: the dialog shows that order, and says why
                names = dlg.model.names()
                assert names.index("wlan0") < names.index("eth1") < names.index("usb0"), names
                assert dlg.order_label.text() and not dlg.order_label.isHidden()
            finally:
                dlg.reject()
        finally:
            await shell.stop()
            await rt.stop()

    try:
        qloop.run_until_complete(asyncio.wait_for(scenario(), 60))
    finally:
        c.close()
    assert not os.path.exists(tmp_path / "not-visible")
