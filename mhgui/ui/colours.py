"""Every colour the app shows, derived from the palette and checked for contrast (issue 15.5).

The app names *tones* (``"ok"``, ``"error"``, ``"warning"``, ...), never colours. A tone has a
seed hue (the Material colour it used to be hard-coded as); :func:`foreground` moves the seed's
lightness, keeping its hue, until its WCAG 2.x contrast ratio against every background it is
drawn on (the palette's Base and AlternateBase for table cells, Window for labels) is at least
:data:`MIN_CONTRAST` — darker on a light theme, lighter on a dark one. When no lightness of that
hue reaches it (a mid-grey background), the palette's own text colour is used. So a light and a
dark theme both get readable state colours, and a theme change is followed (the models compute
their brushes from the application's palette at paint time; labels are re-toned by
:func:`refresh` on ``QEvent.PaletteChange``).

Pure colour arithmetic (:func:`relative_luminance`, :func:`contrast_ratio`) follows WCAG 2.2,
"relative luminance" and "contrast ratio" definitions (sRGB, 0.04045 threshold).
"""

from __future__ import annotations

from functools import lru_cache

from PySide6.QtCore import QObject
from PySide6.QtGui import QBrush, QColor, QGuiApplication, QPalette
from PySide6.QtWidgets import QFrame, QLabel, QWidget

__all__ = ["MIN_CONTRAST", "TONES", "banner_colours", "brush", "contrast_ratio", "foreground",
           "refresh", "relative_luminance", "set_banner", "set_tone", "state_colours"]

#: WCAG 2.x level AA for normal text
MIN_CONTRAST = 4.5
_TARGET = MIN_CONTRAST + 0.1  # a margin for 8-bit rounding

#: tone: seed colour (hue and saturation kept; lightness adapted to the background)
TONES: dict[str, str] = {
    "ok": "#2e7d32",          # registered, up, confirmed
    "ok-strong": "#1b5e20",   # home addresses, primary interfaces, transparent moves
    "info": "#0d47a1",        # care-of addresses, backups, messages under way
    "warning": "#e65100",     # deprecated CoAs, dying bindings, re-established connections
    "pending": "#f57f17",     # tentative addresses, waiting for an acknowledgement
    "error": "#b71c1c",       # down, expired, refused
    "muted": "#757575",       # link-local, absent, never used
    "neutral": "#424242",     # other, cancelled
    "vpn": "#4a148c",
}

#: the Python property a toned widget carries (its tone, re-applied by :func:`refresh`)
_TONE_PROP = "mhgui_tone"
_BANNER_PROP = "mhgui_banner"


def _linear(c: float) -> float:
    return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4


def relative_luminance(colour: QColor | str) -> float:
    """WCAG relative luminance of an sRGB colour, 0.0 (black) to 1.0 (white)."""
    c = QColor(colour)
    return 0.2126 * _linear(c.redF()) + 0.7152 * _linear(c.greenF()) + 0.0722 * _linear(c.blueF())


def contrast_ratio(a: QColor | str, b: QColor | str) -> float:
    """WCAG contrast ratio of two opaque colours, 1.0 to 21.0 (order does not matter)."""
    la, lb = relative_luminance(a), relative_luminance(b)
    hi, lo = max(la, lb), min(la, lb)
    return (hi + 0.05) / (lo + 0.05)


@lru_cache(maxsize=512)
def _derive(seed: str, backgrounds: tuple[str, ...], text: str) -> str:
    bgs = [QColor(b) for b in backgrounds]
    base = QColor(seed)
    if all(contrast_ratio(base, b) >= _TARGET for b in bgs):
        return base.name()
    dark_bg = sum(relative_luminance(b) for b in bgs) / len(bgs) < relative_luminance(text)
    h, s, light, _a = base.getHslF()
    h = max(h, 0.0)  # achromatic: -1
    steps = range(int(light * 200), 201) if dark_bg else range(int(light * 200), -1, -1)
    for i in steps:
        c = QColor.fromHslF(h, s, i / 200.0)
        if all(contrast_ratio(c, b) >= _TARGET for b in bgs):
            return c.name()
    return QColor(text).name()  # the palette's own text colour: the theme made it readable


def _palette(palette: QPalette | None) -> QPalette:
    return palette if palette is not None else QGuiApplication.palette()


def foreground(tone: str, palette: QPalette | None = None,
               backgrounds: tuple[QPalette.ColorRole, ...] = (QPalette.ColorRole.Base, QPalette.ColorRole.AlternateBase),
               *, on: tuple[QColor, ...] = ()) -> QColor:
    """The colour of ``tone`` for text drawn on ``backgrounds`` (palette roles) and the colours ``on``,
    with a contrast ratio of at least :data:`MIN_CONTRAST` against each. ``palette``: the application's
    when None. Raises KeyError for an unknown tone."""
    p = _palette(palette)
    bgs = tuple(p.color(QPalette.ColorGroup.Active, r).name() for r in backgrounds) + tuple(QColor(c).name() for c in on)
    text = p.color(QPalette.ColorGroup.Active, QPalette.ColorRole.Text if QPalette.ColorRole.Base in backgrounds
                   else QPalette.ColorRole.WindowText)
    return QColor(_derive(TONES[tone], bgs, text.name()))


_BRUSHES: dict[tuple[int, str], QBrush] = {}


def brush(tone: str | None) -> QBrush | None:
    """A brush of ``tone`` for a table cell (ForegroundRole) in the application's palette now (None: None)."""
    if tone is None:
        return None
    p = QGuiApplication.palette()
    key = (p.cacheKey(), tone)
    b = _BRUSHES.get(key)
    if b is None:
        if len(_BRUSHES) > 256:
            _BRUSHES.clear()
        b = _BRUSHES[key] = QBrush(foreground(tone, p))
    return b


def state_colours(palette: QPalette) -> list[tuple[str, QColor, QColor]]:
    """Every (name, foreground, background) pair this module makes in ``palette``: each tone on Base,
    AlternateBase and Window, and each banner's text on its own background (for the contrast test)."""
    out = []
    for tone in TONES:
        for role in (QPalette.ColorRole.Base, QPalette.ColorRole.AlternateBase):
            out.append((f"{tone} on {role.name}", foreground(tone, palette), palette.color(role)))
        out.append((f"{tone} on Window", foreground(tone, palette, (QPalette.ColorRole.Window,)),
                    palette.color(QPalette.ColorRole.Window)))
        bg, fg, _border = banner_colours(tone, palette)
        out.append((f"{tone} banner", fg, bg))
    return out


def banner_colours(tone: str, palette: QPalette | None = None) -> tuple[QColor, QColor, QColor]:
    """(background, text, border) of a banner of ``tone``: the window colour tinted with the tone's
    seed (more on a dark theme), text of the tone readable on it."""
    p = _palette(palette)
    window = p.color(QPalette.ColorRole.Window)
    seed = QColor(TONES[tone])
    dark = relative_luminance(window) < relative_luminance(p.color(QPalette.ColorRole.WindowText))
    k = 0.28 if dark else 0.14

    def mix(a: QColor, b: QColor, t: float) -> QColor:
        return QColor.fromRgbF(a.redF() * (1 - t) + b.redF() * t, a.greenF() * (1 - t) + b.greenF() * t,
                               a.blueF() * (1 - t) + b.blueF() * t)

    bg = mix(window, seed, k)
    fg = foreground(tone, p, (), on=(bg,))
    return bg, fg, mix(window, seed, 2 * k)


def set_tone(label: QWidget, tone: str | None) -> None:
    """Draw ``label``'s text in ``tone`` (None: the palette's own text colour again)."""
    label.setProperty(_TONE_PROP, tone or "")
    label.setProperty(_BANNER_PROP, False)
    _apply(label)


def set_banner(label: QLabel, tone: str | None) -> None:
    """Show ``label`` as a banner of ``tone``: tinted background, framed, text readable on it."""
    label.setProperty(_TONE_PROP, tone or "")
    label.setProperty(_BANNER_PROP, True)
    if isinstance(label, QFrame):
        label.setFrameShape(QFrame.Shape.StyledPanel)
    if isinstance(label, QLabel):
        label.setMargin(4)
    _apply(label)


def tone_of(widget: QWidget) -> str | None:
    """The tone set on ``widget`` by :func:`set_tone` / :func:`set_banner` (None: none)."""
    return widget.property(_TONE_PROP) or None


def _apply(w: QWidget) -> None:
    tone = w.property(_TONE_PROP) or None
    parent = w.parentWidget()
    base = parent.palette() if parent is not None else QGuiApplication.palette()
    if tone is None:
        w.setAutoFillBackground(False)
        w.setPalette(QPalette())  # nothing set: inherits again
        return
    p = QPalette(base)
    if w.property(_BANNER_PROP):
        bg, fg, _border = banner_colours(tone, base)
        p.setColor(QPalette.ColorRole.Window, bg)
        p.setColor(QPalette.ColorRole.WindowText, fg)
        w.setAutoFillBackground(True)
    else:
        p.setColor(QPalette.ColorRole.WindowText, foreground(tone, base, (QPalette.ColorRole.Window,)))
        w.setAutoFillBackground(False)
    w.setPalette(p)


def refresh(root: QObject) -> None:
    """Re-apply the tones of ``root`` and its children (call on ``QEvent.PaletteChange``: a theme change)."""
    widgets = [root] if isinstance(root, QWidget) else []
    widgets += root.findChildren(QWidget)
    for w in widgets:
        if w.property(_TONE_PROP):
            _apply(w)
