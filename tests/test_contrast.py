"""Colours from the palette with a contrast of at least 4.5:1 in a light and a dark theme (issue 15.5, WCAG 2.x
AA): every foreground a model gives a table cell, every toned label and banner, every colour table of the UI
modules (``state_colours``-style functions), against the backgrounds they are drawn on."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest
from PySide6.QtGui import QColor, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication, QLabel, QStyleFactory, QWidget

import desktopworld
from mhgui.core.bindings import Binding, BindingState
from mhgui.core.failover import FailoverEntry
from mhgui.core.prefsfile import OrderEntry
from mhgui.ui import colours
from mhgui.ui.colours import MIN_CONTRAST, contrast_ratio

pytestmark = pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints")  # offscreen, shown

UI = Path(colours.__file__).parent
R = QPalette.ColorRole

#: a dark theme as desktops ship it (KDE Breeze Dark's colours)
DARK = {R.Window: "#202326", R.WindowText: "#fcfcfc", R.Base: "#141618", R.AlternateBase: "#1d1f22",
        R.Text: "#fcfcfc", R.Button: "#292c30", R.ButtonText: "#fcfcfc", R.Highlight: "#3daee9",
        R.HighlightedText: "#fcfcfc", R.Link: "#1d99f3", R.LinkVisited: "#9b59b6", R.ToolTipBase: "#292c30",
        R.ToolTipText: "#fcfcfc", R.PlaceholderText: "#a1a9b1", R.BrightText: "#ffffff", R.Light: "#3b4045",
        R.Midlight: "#31363b", R.Mid: "#1e2124", R.Dark: "#0f1012", R.Shadow: "#000000"}


def dark_palette() -> QPalette:
    p = QPalette()
    for role, colour in DARK.items():
        p.setColor(role, QColor(colour))
    return p


def light_palette() -> QPalette:
    return QStyleFactory.create("Fusion").standardPalette()


PALETTES = {"light": light_palette, "dark": dark_palette}


@pytest.fixture(params=sorted(PALETTES))
def themed(request, qapp):
    """The application in a light or dark palette (Fusion), restored after the test."""
    old_style, old_palette = qapp.style().name(), QPalette(qapp.palette())
    qapp.setStyle("Fusion")
    p = PALETTES[request.param]()
    yield request.param, p
    qapp.setPalette(old_palette)
    qapp.setStyle(old_style)


def test_the_wcag_arithmetic():
    assert contrast_ratio("#000000", "#ffffff") == pytest.approx(21.0)
    assert contrast_ratio("#777777", "#ffffff") == pytest.approx(4.48, abs=0.01)  # the classic near miss
    assert contrast_ratio("#767676", "#ffffff") >= 4.5


def check(pairs) -> list[str]:
    return [f"{name}: {QColor(fg).name()} on {QColor(bg).name()} = {contrast_ratio(fg, bg):.2f}"
            for name, fg, bg in pairs if contrast_ratio(fg, bg) < MIN_CONTRAST]


def ui_colour_tables(palette: QPalette):
    """(name, fg, bg) from every ``*_colours(palette)`` function of the UI modules that publishes one:
    colours.state_colours (pairs), nodeview.state_colours ({state: colour} on Base), health_view's
    health_colours ({name: colour} on its ``background``; ``grid`` is a faint line, not text)."""
    base = palette.color(R.Base)
    pairs = list(colours.state_colours(palette))
    for mod, fn in (("nodeview", "state_colours"), ("health_view", "health_colours")):
        try:
            got = getattr(importlib.import_module(f"mhgui.ui.{mod}"), fn)(palette)
        except (ImportError, AttributeError):
            continue  # not there (yet)
        bg = got.get("background", base)
        pairs += [(f"{mod}.{fn} {k}", c, bg) for k, c in got.items() if k not in ("background", "grid")]
    return pairs


def test_every_colour_table_reaches_4_5_to_1(themed, qapp):
    _name, p = themed
    qapp.setPalette(p)
    bad = check(ui_colour_tables(p))
    assert not bad, "\n".join(bad)


def foregrounds(model):
    """(cell, brush colour) of every cell of ``model`` that has a foreground of its own."""
    from PySide6.QtCore import Qt
    for r in range(model.rowCount()):
        for c in range(model.columnCount()):
            b = model.index(r, c).data(Qt.ItemDataRole.ForegroundRole)
            if b is not None:
                yield f"{type(model).__name__}[{r},{c}] {model.index(r, c).data()!r}", QColor(b.color())


def all_states_bindings():
    return [Binding("2001:db8:100::10", f"2001:db8:a::{i + 1}", "2001:db8:100::1", bid=i + 1, state=s,
                    lifetime=600, lifetime_remaining=100, flags=("A", "H"))
            for i, s in enumerate(BindingState)]


def test_table_cells_and_labels_in_light_and_dark(themed, qapp, qtbot):
    """The window is built in the default palette and then switched (a theme change while running)."""
    from mhgui.ui.failover_view import FailoverLogModel
    from mhgui.ui.preferences import InterfaceOrderModel
    name, p = themed
    win, c = desktopworld.window()
    qtbot.addWidget(win)
    c.bindings.set_bindings(all_states_bindings())
    log = FailoverLogModel(lambda t: 1.7e9 + t)
    for i, (who, to, reason) in enumerate((("app", "wlan0", "link down"), ("system", "eth1", "renamed"),
                                           ("daemon", None, "no uplink"), ("user", "eth0", "rebind failed"))):
        log.upsert(FailoverEntry(i + 1, who, "eth0", to, reason, 1.0, 1.5, 1.6, 1.9 if to else None))
    order = InterfaceOrderModel([OrderEntry("eth0", "ethernet", True), OrderEntry("wlan0", "wifi", False, "no CoA",
                                                                                  mark="backup"),
                                 OrderEntry("wwan0", "wwan", False, present=False, mark="never")])
    for i in range(win.tabs.count()):
        win.tabs.setCurrentIndex(i)  # every page built
    win.show()
    qtbot.waitExposed(win)
    win.set_error("A malformed configuration file")  # toned in the palette before the switch
    win._on_rebind_progress("x", False)
    qapp.setPalette(p)  # the theme changes under the running window
    qtbot.waitUntil(lambda: win.banner.palette().color(R.Window) == colours.banner_colours("pending", p)[0])
    assert win.rebind_label.palette().color(R.WindowText) == colours.foreground("error", p, (R.Window,))
    models = [c.interfaces, c.addresses, c.homes, c.bindings, c.flows, win.goals_model, win.issues_model,
              win.rules_model, log, order]
    cells = [cell for m in models for cell in foregrounds(m)]
    assert len(cells) > 30 and len({col.name() for _n, col in cells}) >= 5
    bad = check((n, col, p.color(bg)) for n, col in cells for bg in (R.Base, R.AlternateBase))
    assert not bad, f"{name} theme, table cells:\n" + "\n".join(bad)
    # the toned labels: every outcome of a rebind, a flow move, the banner
    for ok in (True, False, None, "neutral"):
        win._on_rebind_progress("x", ok)
        win._flow_message("y", ok if ok != "neutral" else None)
        for lab in (win.rebind_label, win.flow_label):
            bad += check([(f"{lab.objectName() or 'flow_label'} ({ok})", lab.palette().color(R.WindowText),
                           lab.palette().color(R.Window))])
    win.set_error("A malformed configuration file")
    bad += check([("banner", win.banner.palette().color(R.WindowText), win.banner.palette().color(R.Window))])
    assert not bad, f"{name} theme, labels:\n" + "\n".join(bad)
    assert win.banner.autoFillBackground()  # its own background, from the palette
    # toned before the switch and after it: the same as made in the new palette from the start
    assert win.flow_label.palette().color(R.WindowText) == colours.foreground("info", p, (R.Window,))
    for w in [win] + win.findChildren(QWidget):
        assert not re.search(r"(?i)colou?r|background|#[0-9a-f]{3}", w.styleSheet()), (w, w.styleSheet())
    c.close()


def test_no_colour_is_hard_coded_outside_the_colours_module():
    """A colour in a style sheet or a literal QColor/QBrush bypasses the palette (and this test)."""
    pattern = re.compile(r"""setStyleSheet\(\s*f?["'][^"']*(colou?r|background|#[0-9a-fA-F]{3})"""
                         r"""|Q(Color|Brush)\(\s*["']#|QColor\(\s*Qt\.GlobalColor\.(?!black|white)""")
    offenders = []
    for f in sorted(UI.glob("*.py")):
        if f.name in ("colours.py", "theme.py"):  # the tones; a palette's own definition (mhgui --color-scheme)
            continue
        for n, line in enumerate(f.read_text().splitlines(), 1):
            if pattern.search(line):
                offenders.append(f"{f.name}:{n}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


def test_a_mid_grey_background_falls_back_to_the_palettes_text(qapp):
    p = QPalette(light_palette())
    for role in (R.Base, R.AlternateBase):
        p.setColor(role, QColor("#777777"))
    p.setColor(R.Text, QColor("#000000"))
    got = colours.foreground("pending", p)
    assert contrast_ratio(got, "#777777") >= MIN_CONTRAST


def test_set_tone_none_gives_the_palette_back(qapp, qtbot):
    w = QWidget()
    qtbot.addWidget(w)
    lab = QLabel("x", w)
    colours.set_tone(lab, "error")
    assert lab.palette().color(R.WindowText) != w.palette().color(R.WindowText)
    colours.set_tone(lab, None)
    assert lab.palette().color(R.WindowText) == w.palette().color(R.WindowText)
    assert QGuiApplication.palette() is not None
    assert isinstance(QApplication.instance(), QApplication)
