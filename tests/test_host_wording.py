"""What the window says on a host without a mobility daemon (issue 15, a new user's n1.12): the settings file
it really reads, and both daemons it looked for."""

from __future__ import annotations

import pytest

pytest.importorskip("pytestqt")

from desktopworld import window  # noqa: E402

from mhgui.daemons.base import DaemonStatus  # noqa: E402


def test_no_daemon_on_the_host_names_both_daemons_and_the_real_settings_file(qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    win, c = window(daemon=False)
    qtbot.addWidget(win)
    try:
        win._on_daemon_status(DaemonStatus("umip", state="absent", error="nothing answers on localhost port 7777"))
        hint = win.no_hoa.text()
        assert f"{tmp_path}/cfg/mhgui/settings.toml" in hint and "~/.config" not in hint, hint
        assert win.bindings_label.text() == (
            "No mobility daemon: mhgui's engine (mhgui-mn) is not running and UMIP's mip6d is absent — nothing "
            "answers on localhost port 7777."), win.bindings_label.text()
        win.settings_file = "/etc/x <y>/settings.toml"  # --settings: that file, escaped in the rich text
        win._on_daemon_status(DaemonStatus("umip", state="absent"))
        assert "/etc/x &lt;y&gt;/settings.toml" in win.no_hoa.text()
    finally:
        c.close()
