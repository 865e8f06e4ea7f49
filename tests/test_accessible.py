"""Accessible names on every control (issue 15.5): every interactive widget of the main window (all its tabs
built), the preferences dialog, the help and about boxes, and every entry of the tray menu has a name a
screen reader can say: its accessibleName, its own text, or a label whose buddy it is."""

from __future__ import annotations

import asyncio

import pytest
from PySide6.QtWidgets import (QAbstractButton, QAbstractItemView, QAbstractSpinBox, QComboBox, QHeaderView, QLabel,
                               QLineEdit, QMenu, QPlainTextEdit, QTabWidget, QTextEdit, QWidget)

import desktopworld

# offscreen: a shown window or dialog
pytestmark = pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints",
                                       r"This plugin does not support raise\(\)")

INTERACTIVE = (QAbstractButton, QAbstractItemView, QLineEdit, QComboBox, QAbstractSpinBox, QTabWidget, QTextEdit,
               QPlainTextEdit)


def _text(s: str) -> str:
    return s.replace("&&", "\0").replace("&", "").replace("\0", "&").strip()


def unnamed(root: QWidget) -> list[str]:
    """The interactive widgets under ``root`` (itself included) with no name: each as "Class 'objectName'
    in parent"."""
    buddies = {id(lab.buddy()) for lab in root.findChildren(QLabel) if lab.buddy() is not None and _text(lab.text())}
    out = []
    for w in [root] + root.findChildren(QWidget):
        if not isinstance(w, INTERACTIVE) or isinstance(w, QHeaderView) or w.objectName().startswith("qt_"):
            continue  # Qt's own parts (a menu bar's overflow button) name themselves
        if w.isHidden():
            continue  # hidden on purpose (e.g. an action button with no action now): checked when shown
        p = w.parentWidget()
        inner = False
        while p is not None and p is not root.parentWidget():
            if isinstance(p, INTERACTIVE):  # a part of another control (a spin box's line edit, a corner button)
                inner = True
                break
            p = p.parentWidget()
        if inner:
            continue
        name = w.accessibleName().strip()
        if not name and isinstance(w, QAbstractButton):
            name = _text(w.text())
        if not name and id(w) in buddies:
            name = "label"
        if not name:
            where = w.parentWidget()
            out.append(f"{type(w).__name__} {w.objectName()!r} in {type(where).__name__} "
                       f"{where.objectName() if where else ''!r} (tooltip {w.toolTip()[:40]!r})")
    return out


def menu_entries(menu: QMenu, path: str = "") -> list[tuple[str, str]]:
    """(path, text) of every action of ``menu`` and its submenus, separators left out."""
    out = []
    for a in menu.actions():
        if a.isSeparator():
            continue
        out.append((path, _text(a.text())))
        if a.menu() is not None:
            out += menu_entries(a.menu(), f"{path}/{_text(a.text())}")
    return out


def test_the_main_window(qtbot):
    win, c = desktopworld.window()
    qtbot.addWidget(win)
    win.show()
    for i in range(win.tabs.count()):  # pages built when first shown: all of them
        win.tabs.setCurrentIndex(i)
    qtbot.waitExposed(win)
    assert len([w for w in win.findChildren(QWidget) if isinstance(w, INTERACTIVE)]) > 15
    missing = unnamed(win)
    assert not missing, "no accessible name:\n" + "\n".join(missing)
    for m in win.menuBar().findChildren(QMenu):
        assert all(text for _p, text in menu_entries(m)), m.title()
    c.close()


def test_the_preferences_dialog(qtbot):
    from mhgui.ui.preferences import PreferencesDialog
    d = PreferencesDialog([("eth0", "ethernet", True, ""), ("wlan0", "wifi", False, "no care-of address")])
    qtbot.addWidget(d)
    d.set_autostart_state(False)
    d.show()
    qtbot.waitExposed(d)
    missing = unnamed(d)
    assert not missing, "no accessible name:\n" + "\n".join(missing)


def test_help_and_about(qtbot):
    win, c = desktopworld.window(flows=False)
    qtbot.addWidget(win)
    opened = []
    win.open_dialog = opened.append
    h = win.show_help()
    assert not unnamed(h), unnamed(h)
    box = win.show_about()
    assert opened == [box] and not unnamed(box), unnamed(box)
    c.close()


def test_the_tray_menu(qtbot, qloop):
    from mhgui.ui.tray import TrayController
    from tray_driver import views
    view = views()["ok"]
    tray = TrayController(lambda: view, on_prefer=lambda n: None, on_open=lambda: None, on_quit=lambda: None,
                          watch=False)
    qloop.run_until_complete(asyncio.wait_for(tray.start(), 10))
    try:
        entries = menu_entries(tray.menu)
        assert len(entries) >= 4
        assert all(text for _p, text in entries), entries
    finally:
        qloop.run_until_complete(asyncio.wait_for(tray.stop(), 10))
