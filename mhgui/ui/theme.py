"""The app's colour scheme when asked for one (``mhgui --color-scheme``, or ``MHGUI_COLOR_SCHEME``).

By default (``system``) the desktop's style and palette are used as they are. ``light`` or ``dark``
asks Qt for that scheme (:meth:`QStyleHints.setColorScheme`, Qt 6.8 and later); a platform that
ignores the request (no desktop theme, e.g. under Xvfb or a bare window manager) gets Qt's Fusion
style with a palette of that scheme instead: Fusion's own for light, KDE Breeze Dark's colours for
dark. The views take their colours from the palette (:mod:`mhgui.ui.colours`), so both read well.
"""

from __future__ import annotations

import os

__all__ = ["SCHEMES", "DARK", "apply_color_scheme", "dark_palette", "requested_scheme"]

SCHEMES = ("system", "light", "dark")
#: environment variable read when no --color-scheme is given
ENV = "MHGUI_COLOR_SCHEME"

#: a dark palette as desktops ship it (KDE Breeze Dark's colours): role name -> colour
DARK = {"Window": "#202326", "WindowText": "#fcfcfc", "Base": "#141618", "AlternateBase": "#1d1f22",
        "Text": "#fcfcfc", "Button": "#292c30", "ButtonText": "#fcfcfc", "Highlight": "#3daee9",
        "HighlightedText": "#fcfcfc", "Link": "#1d99f3", "LinkVisited": "#9b59b6", "ToolTipBase": "#292c30",
        "ToolTipText": "#fcfcfc", "PlaceholderText": "#a1a9b1", "BrightText": "#ffffff", "Light": "#3b4045",
        "Midlight": "#31363b", "Mid": "#1e2124", "Dark": "#0f1012", "Shadow": "#000000"}


def requested_scheme(option: str | None) -> str:
    """``option`` (the command line's), else ``$MHGUI_COLOR_SCHEME``, else ``system``. Raises ValueError for
    a value that is none of :data:`SCHEMES`."""
    value = (option or os.environ.get(ENV) or "system").strip().lower()
    if value not in SCHEMES:
        raise ValueError(f"unknown colour scheme {value!r}: one of {', '.join(SCHEMES)}")
    return value


def dark_palette():
    """A QPalette with :data:`DARK`'s colours (disabled text dimmed)."""
    from PySide6.QtGui import QColor, QPalette
    p = QPalette()
    for name, colour in DARK.items():
        p.setColor(getattr(QPalette.ColorRole, name), QColor(colour))
    for role in (QPalette.ColorRole.WindowText, QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText):
        p.setColor(QPalette.ColorGroup.Disabled, role, QColor("#6e7175"))
    return p


def _is_dark(app) -> bool:
    from PySide6.QtGui import QPalette
    p = app.palette()
    return p.color(QPalette.ColorRole.Window).lightnessF() < p.color(QPalette.ColorRole.WindowText).lightnessF()


def apply_color_scheme(app, scheme: str) -> None:
    """Give ``app`` (a QApplication) the ``scheme`` ("system", "light" or "dark"); see the module docstring."""
    if scheme == "system":
        return
    from PySide6.QtCore import Qt
    want_dark = scheme == "dark"
    hints = app.styleHints()
    if hasattr(hints, "setColorScheme"):  # Qt 6.8+
        hints.setColorScheme(Qt.ColorScheme.Dark if want_dark else Qt.ColorScheme.Light)
        app.processEvents()
    if _is_dark(app) == want_dark and app.style().name().lower() == "fusion":
        return
    app.setStyle("Fusion")
    if want_dark:
        app.setPalette(dark_palette())
    else:
        app.setPalette(app.style().standardPalette())
