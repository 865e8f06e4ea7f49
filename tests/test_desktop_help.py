"""Help and About (issue 15.5): a Help menu with the in-app help (F1) and the About box, no network needed."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

import desktopworld
from mhgui import __version__
from mhgui.ui import about

pytestmark = pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints",
                                       r"This plugin does not support raise\(\)")


def test_help_menu_has_help_on_f1_and_about(qtbot):
    win, c = desktopworld.window(flows=False)
    qtbot.addWidget(win)
    menus = {m.title(): m for m in (a.menu() for a in win.menuBar().actions()) if m is not None}
    assert "&Help" in menus
    texts = [a.text() for a in menus["&Help"].actions()]
    assert texts == ["mhgui &Help", "&About mhgui"]
    assert win.help_action.shortcut().toString() == "F1"
    win.show()
    qtbot.waitExposed(win)
    win.activateWindow()
    qtbot.waitUntil(win.isActiveWindow)  # a window shortcut needs its window active
    win.interfaces_view.setFocus()
    qtbot.keyClick(win.interfaces_view, Qt.Key.Key_F1)  # as a user presses it, anywhere in the window
    qtbot.waitUntil(lambda: win.help_dialog is not None and win.help_dialog.isVisible())
    text = win.help_dialog.browser.toPlainText()
    assert "Draft analysis" in text and "Ctrl+C" in text and "CSV or JSON" in text
    assert win.show_help() is win.help_dialog  # one dialog, raised again
    c.close()


def test_about_says_version_licence_links_and_the_draft(qtbot):
    win, c = desktopworld.window(flows=False)
    qtbot.addWidget(win)
    opened = []
    win.open_dialog = opened.append  # open(), never exec()
    win.about_action.trigger()
    box = opened[0]
    assert isinstance(box, QMessageBox) and box.textFormat() == Qt.TextFormat.RichText
    t = box.text()
    for needle in (__version__, "GPL-3.0-or-later", "https://github.com/mhgui/mhgui",
                   "draft-montavont-mobileip-multihoming-pb-statement-04", "Analysis of Multihoming in Mobile IPv6"):
        assert needle in t, needle
    c.close()


def test_help_links_a_local_readme_when_there_is_one(tmp_path):
    readme = tmp_path / "README.md"
    assert about.readme_path((str(readme),)) is None
    readme.write_text("# mhgui\n")
    assert about.readme_path((str(tmp_path / "nope"), str(readme))) == str(readme)
    assert f'href="file://{readme}"' in about.help_html(str(readme))
    assert "file://" not in about.help_html(None)
    # the draft the app follows is the one shipped in docs/
    from pathlib import Path
    assert (Path(__file__).resolve().parents[1] / "docs" / f"{about.DRAFT}.txt").is_file()
