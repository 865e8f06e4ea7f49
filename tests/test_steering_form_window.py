"""The rules page's "Add…" button: the form opens non-modal, a host name is resolved (asyncio, off the GUI
thread) and the rule goes to the real helper on a private system bus, whose refusals the form shows."""

from __future__ import annotations


import pytest

pytest.importorskip("pytestqt")
pytest.importorskip("dbus")

from desktopworld import window  # noqa: E402

from mhgui.ui import colours  # noqa: E402
from waiting import until  # noqa: E402

pytestmark = pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints",
                                       "This plugin does not support raise")  # offscreen, shown


def test_add_button_opens_the_form_and_the_helper_answers(qtbot, qloop, bare_helper_stack, tmp_path):
    from mhgui.helper.client import HelperClient
    from mhgui.helper.service import ACTION_READ, ACTION_STEER
    from test_helper import HelperProc, _write_conf

    stack = bare_helper_stack
    stack.reset()
    helper = HelperProc(stack, _write_conf(tmp_path / "etc"), "--state-dir", str(tmp_path / "state")).start()
    win, c = window()
    win.helper_factory = lambda: HelperClient(stack.address)
    qtbot.addWidget(win)
    win.show()

    async def scenario():
        win.open_rule_form()
        form = win.rule_form
        assert form.isVisible() and not form.isModal()
        assert form.interface.currentText() in {"eth0", "wlan0"}  # usable ones first, not the down wwan0
        qtbot.keyClicks(form.destination, "localhost")
        qtbot.keyClicks(form.ports, "443")
        form.protocol.setCurrentIndex(1)
        assert form.add_button.isEnabled()
        # the name is looked up while typing (asyncio, after a pause): what it resolves to is shown
        await until(lambda: form.resolved.text().startswith("localhost is "), what=form.resolved.text())
        assert "127.0.0.1" in form.resolved.text() or "::1" in form.resolved.text()
        # polkit says no: the form says so, and Add can be tried again
        stack.allow(ACTION_READ)
        form.add_button.click()
        await until(lambda: form.message.text().startswith("Not added"), what=form.message.text())
        assert "not authorized" in form.message.text().lower() or "polkit" in form.message.text().lower(), \
            form.message.text()
        assert form.add_button.isEnabled()
        # allowed: the name was resolved and its addresses sent; the helper refuses loopback (nothing changes)
        stack.allow(ACTION_READ, ACTION_STEER)
        form.add_button.click()
        await until(lambda: "never steered" in form.message.text(), what=form.message.text())
        assert "127.0.0.1/32" in form.message.text() or "::1/128" in form.message.text()
        # this node has no such interface: the helper's own check
        form.destination.setText("2001:db8:9::1")
        form.interface.addItem("nosuch0")
        form.interface.setCurrentText("nosuch0")
        form.add_button.click()
        await until(lambda: "nosuch0" in form.message.text(), what=form.message.text())
        assert "there is no interface nosuch0 on this node" in form.message.text()
        # a name that does not resolve: said before anything is asked
        form.destination.setText("nonexistent.invalid")
        await until(lambda: form.resolved.text().startswith("Cannot resolve nonexistent.invalid"),
                    what=form.resolved.text())
        assert colours.tone_of(form.resolved) == "warning"
        form.add_button.click()
        await until(lambda: "nonexistent.invalid" in form.message.text(), what=form.message.text())
        assert form.message.text().startswith("Not added: nonexistent.invalid")

    try:
        qloop.run_until_complete(scenario())
    finally:
        win.rule_form.close()
        c.close()
        assert helper.stop() == 0, helper.log


def test_absent_helper_is_worded_like_the_banner_and_add_is_disabled(qtbot, qloop, bare_helper_stack):
    """No helper on the bus (the lab): the rules page says so as the access banner does, not the bus's raw
    "was not provided by any .service files" in red (that goes to the tooltip), and Add… is disabled with
    the reason in its tooltip (issue 15 n1.9)."""
    from mhgui.helper.client import HelperClient

    stack = bare_helper_stack
    stack.reset()  # nobody owns the helper's name, no service file
    win, c = window()
    win.helper_factory = lambda: HelperClient(stack.address)
    qtbot.addWidget(win)
    win.show()
    try:
        win.lazy_tabs.ensure("Steering rules")
        qloop.run_until_complete(win.reload_rules())
        text = win.rules_label.text()
        assert text.startswith("The privileged helper (io.github.mhgui.MHGui.Helper1) is not installed"), text
        assert "steering rules are unavailable" in text and "Fix: install the helper on the host" in text
        assert ".service files" not in text and ".service files" in win.rules_label.toolTip()
        assert colours.tone_of(win.rules_label) == "warning"
        assert not win.rules_add.isEnabled()
        assert win.rules_add.toolTip().startswith("Adding is unavailable: The privileged helper"), \
            win.rules_add.toolTip()
    finally:
        c.close()
