"""The mobility daemon not running where the app cannot restart it (issue 15, a new user's n1.8): no privileged
helper (the lab has none), so no button that is bound to fail: the command that works, shown and copyable —
``mhctl lab restart`` in a lab, systemctl elsewhere — and the same words in ``mhctl status``."""

from __future__ import annotations

import pytest

pytest.importorskip("pytestqt")

from desktopworld import window  # noqa: E402

from mhgui.core.action_commands import action_command, restart_command  # noqa: E402
from mhgui.core.state import SourceStatus  # noqa: E402
from mhgui.daemons.base import DaemonStatus  # noqa: E402


def test_the_commands():
    assert restart_command("engine") == "sudo systemctl restart mhgui-mn"
    assert restart_command("umip") == "sudo systemctl restart mip6d"
    assert restart_command("engine", "q2a") == "sudo mhctl lab restart --prefix q2a"
    assert restart_command("engine", "mhlab") == "sudo mhctl lab restart"
    assert action_command("try-lab") == "sudo mhctl lab up --allow-user $USER"
    assert action_command("open-preferences") is None


@pytest.mark.parametrize("lab", [None, "q2a"])
def test_without_the_helper_the_window_offers_the_command(qtbot, monkeypatch, lab):
    from PySide6.QtWidgets import QApplication
    if lab:
        monkeypatch.setenv("MHGUI_LAB_PREFIX", lab)
    else:
        monkeypatch.delenv("MHGUI_LAB_PREFIX", raising=False)
    win, c = window()
    qtbot.addWidget(win)
    try:
        drv = c.daemon
        drv._status = DaemonStatus("engine", reachable=False, state="absent",
                                   error="nobody owns io.github.mhgui.MHGui.MobileNode1 on the system bus")
        c.store.apply(SourceStatus("helper", "absent", "nobody owns io.github.mhgui.MHGui.Helper1"))
        win._show_answer()
        cmd = "sudo mhctl lab restart --prefix q2a" if lab else "sudo systemctl restart mhgui-mn"
        assert win.answer_button.text() == "Copy the command" and win.answer_button.toolTip() == cmd
        assert not win.answer_note.isHidden() and win.answer_note.text().endswith(
            f"the privileged helper that would do it is not installed here; run this in a terminal: {cmd}")
        asked = []
        win.actions.run = asked.append  # the button must not try the helper
        win.answer_button.click()
        assert asked == [] and QApplication.clipboard().text() == cmd
        # the helper there: the button is the action again
        c.store.apply(SourceStatus("helper", "present", "started on demand"))
        win._show_answer()
        assert win.answer_button.text() == win._answer.action.label and win.answer_button.toolTip() == ""
        win.answer_button.click()
        assert asked == [win._answer.action]
    finally:
        c.close()
