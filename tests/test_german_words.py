"""German words a new user tripped over (issue 15, n1.14): one word for two things, Qt's key names, and the
D-Bus's English in the middle of a German sentence."""

from __future__ import annotations

import pytest

pytest.importorskip("pytestqt")

from test_i18n import language  # noqa: E402

from mhgui import i18n  # noqa: E402


@pytest.fixture
def german():
    with language("de"):
        yield


def test_the_health_tab_and_the_state_column_are_not_the_same_word(german):
    health, state = i18n._("Health"), i18n._("State")
    assert health != "Health" and state != "State" and health != state, (health, state)


def test_help_names_the_keys_as_qt_does_in_german(qapp, german):
    from PySide6.QtCore import QTranslator

    from mhgui.ui.about import help_html
    from mhgui.ui.qt_i18n import install_qt_translations
    assert install_qt_translations(qapp)
    try:
        text = help_html()
        assert "Strg+M" in text and "Strg+Q" in text and "Ctrl+" not in text
    finally:
        for t in qapp.findChildren(QTranslator):
            qapp.removeTranslator(t)
            t.deleteLater()


def test_an_absent_helper_is_said_in_german_with_the_bus_words_in_the_tooltip(qtbot, german):
    from desktopworld import window

    from mhgui.core.state import SourceStatus
    win, c = window()
    qtbot.addWidget(win)
    try:
        c.store.apply(SourceStatus("helper", "absent", ""))
        win._update_banner()
        tip = win.rules_add.toolTip()
        assert not win.rules_add.isEnabled() and tip.startswith("Hinzufügen ist nicht möglich: "), tip
        assert "Helfer" in tip and "not" not in tip.split(), tip
    finally:
        c.close()
