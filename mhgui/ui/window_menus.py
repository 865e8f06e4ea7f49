"""The main window's menu bar: "mhgui" (Preferences…, Quit) and Help (the in-app help page on F1, About;
issue 15.5). :class:`WindowMenus` is ``window.menus``; its actions are the window's
``preferences_action``, ``quit_action``, ``help_action``, ``about_action``; the window's ``show_help``,
``show_about`` and ``help_dialog`` delegate here."""

from __future__ import annotations

from PySide6.QtCore import QObject
from PySide6.QtGui import QAction, QKeySequence

from .. import APP_NAME
from ..i18n import _


class WindowMenus(QObject):
    """The menus of ``window`` (a :class:`~mhgui.ui.window.MainWindow`: its ``preferences_requested`` and
    ``quit_requested`` signals, ``open_dialog``)."""

    def __init__(self, window) -> None:
        super().__init__(window)
        self.w = window
        menu = window.menuBar().addMenu("&mhgui")
        act = menu.addAction(_("&Preferences…"))
        act.setShortcut(QKeySequence("Ctrl+,"))
        act.triggered.connect(window.preferences_requested)
        self.preferences_action = act
        menu.addSeparator()
        act = menu.addAction(_("&Quit"))
        act.setShortcut(QKeySequence.StandardKey.Quit)
        act.triggered.connect(window.quit_requested)
        self.quit_action = act
        help_menu = window.menuBar().addMenu(_("&Help"))
        self.help_action = help_menu.addAction(_("{app} &Help").format(app=APP_NAME))
        self.help_action.setShortcut(QKeySequence(QKeySequence.StandardKey.HelpContents))  # F1
        self.help_action.triggered.connect(lambda: self.w.show_help())
        self.about_action = help_menu.addAction(_("&About {app}").format(app=APP_NAME))
        self.about_action.setMenuRole(QAction.MenuRole.AboutRole)
        self.about_action.triggered.connect(lambda: self.w.show_about())
        self.help_dialog = None

    def show_help(self):
        """The in-app help page (:mod:`.about`), not modal; one dialog, raised again."""
        from .about import HelpDialog
        if self.help_dialog is None:
            self.help_dialog = HelpDialog(self.w)
        self.help_dialog.show()
        self.help_dialog.raise_()
        self.help_dialog.activateWindow()
        return self.help_dialog

    def show_about(self):
        """The About box: version, licence, links, the draft the window follows (``open()``: not modal)."""
        from .about import about_box
        box = about_box(self.w)
        box.finished.connect(box.deleteLater)
        self.w.about_box = box
        self.w.open_dialog(box)
        return box
