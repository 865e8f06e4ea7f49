"""The health page's timeline: link, address, router, binding, failover, probe and daemon events in lanes.

Zoom with the wheel, the page's buttons or the keyboard (``+``/``-``; ``Left``/``Right`` move back and
forth in time; ``End`` follows the present again). Hovering a marker shows the event's time and text.
Colours come from :func:`~mhgui.ui.health_view.health_colours` (the palette, made readable).
"""

from __future__ import annotations

import math
import time
from typing import Callable

from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QPainter, QPen
from PySide6.QtWidgets import QSizePolicy, QToolTip, QWidget

from ..core.health import CATEGORIES, KEEP, TimelineEvent
from ..i18n import N_, _

__all__ = ["SPANS", "TimelineView", "LANE_NAMES"]

#: the zoom levels: seconds shown across the widget
SPANS = (15.0, 30.0, 60.0, 120.0, 300.0, 600.0)
#: the lanes' names as shown
LANE_NAMES = {"link": N_("Links"), "address": N_("Addresses"), "router": N_("Routers"), "binding": N_("Bindings"),
              "failover": N_("Failover"), "probe": N_("Probes"), "daemon": N_("Daemon")}
LANE_H = 18
AXIS_H = 20
MARK_R = 4.5
HOVER_PX = 7.0
#: events listed in one tooltip at most
MAX_TIP = 6


def _nice_step(span: float, width: float) -> float:
    """Seconds between two axis ticks: about one every 90 px."""
    want = span / max(1.0, width / 90.0)
    for step in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600):
        if step >= want:
            return float(step)
    return 600.0


class TimelineView(QWidget):
    """Events over time in one lane per category (:data:`~mhgui.core.health.CATEGORIES`).

    ``colours()``: the colour map (``health_colours``) for the widget's palette; ``wall_of(t)``: wall-clock
    seconds of a monotonic time, as noted when it was recorded (axis labels and tooltips; right across a
    suspend, :mod:`mhgui.core.walltime`). ``range_changed(t0, t1)`` is emitted when zoom
    or scrolling change the visible range.
    """

    range_changed = Signal(float, float)

    def __init__(self, colours: Callable[[], dict], wall_of: Callable[[float], float], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._colours = colours
        self._wall_of = wall_of
        self.events: list[TimelineEvent] = []
        self.now = 0.0
        self.span = 120.0
        #: the right edge of the visible range; None: the present (follows new events)
        self.end: float | None = None
        self.setMouseTracking(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setAccessibleName(_("Event timeline"))
        self.setMinimumHeight(len(CATEGORIES) * LANE_H + AXIS_H + 4)

    # ---- data and range
    def set_data(self, events: list[TimelineEvent], now: float) -> None:
        self.events = events
        before = self.visible_range()
        self.now = now
        if self.visible_range() != before:
            self.range_changed.emit(*self.visible_range())
        self._describe()
        self.update()

    def visible_range(self) -> tuple[float, float]:
        """(t0, t1): the monotonic seconds shown from the left to the right edge of the plot."""
        t1 = self.now if self.end is None else self.end
        return t1 - self.span, t1

    def _set(self, span: float, end: float | None) -> None:
        before = self.visible_range()
        self.span = span
        if end is not None and end >= self.now:
            end = None  # scrolled to the present: follow it again
        if end is not None:
            end = max(end, self.now - KEEP + span)  # nothing older than the kept history
        self.end = end
        if self.visible_range() != before:
            self.range_changed.emit(*self.visible_range())
        self._describe()
        self.update()

    def zoom_in(self) -> None:
        """Show half as much time (down to :data:`SPANS`' first), around the same right edge."""
        smaller = [s for s in SPANS if s < self.span]
        if smaller:
            self._set(smaller[-1], self.end)

    def zoom_out(self) -> None:
        larger = [s for s in SPANS if s > self.span]
        if larger:
            self._set(larger[0], self.end)

    def pan(self, fraction: float) -> None:
        """Move the visible range by ``fraction`` of its width (negative: back in time)."""
        t1 = self.visible_range()[1] + fraction * self.span
        self._set(self.span, min(t1, self.now))

    def follow(self) -> None:
        """Show the present again (the range moves with time)."""
        self._set(self.span, None)

    # ---- geometry
    def _plot(self) -> QRectF:
        label_w = max(self.fontMetrics().horizontalAdvance(_(LANE_NAMES[c])) for c in CATEGORIES) + 10
        return QRectF(label_w, 2, max(10.0, self.width() - label_w - 6), len(CATEGORIES) * LANE_H)

    def _x(self, t: float, plot: QRectF) -> float:
        t0, t1 = self.visible_range()
        return plot.left() + (t - t0) / (t1 - t0) * plot.width()

    def _lane_y(self, category: str, plot: QRectF) -> float:
        i = CATEGORIES.index(category) if category in CATEGORIES else len(CATEGORIES) - 1
        return plot.top() + i * LANE_H + LANE_H / 2

    def visible_events(self) -> list[TimelineEvent]:
        t0, t1 = self.visible_range()
        return [e for e in self.events if t0 <= e.t <= t1]

    def events_at(self, pos: QPointF) -> list[TimelineEvent]:
        """The events whose markers are within a few pixels of ``pos``, nearest first (markers of events close
        in time overlap: the tooltip lists them all)."""
        plot = self._plot()
        near = []
        for e in self.visible_events():
            d = math.hypot(self._x(e.t, plot) - pos.x(), self._lane_y(e.category, plot) - pos.y())
            if d <= HOVER_PX:
                near.append((d, e.t, e))
        return [e for _d, _t, e in sorted(near, key=lambda x: (x[0], x[1]))]

    def event_at(self, pos: QPointF) -> TimelineEvent | None:
        """The event whose marker is nearest ``pos`` (within a few pixels), else None."""
        found = self.events_at(pos)
        return found[0] if found else None

    def describe(self, e: TimelineEvent) -> str:
        """An event as its tooltip shows it: the time, the lane and the sentence."""
        stamp = time.strftime("%H:%M:%S", time.localtime(self._wall_of(e.t)))
        frac = f"{self._wall_of(e.t) % 1:.3f}"[1:]
        return f"{stamp}{frac} · {_(LANE_NAMES.get(e.category, e.category))}\n{e.text}"

    def _describe(self) -> None:
        vis = self.visible_events()
        t0, t1 = self.visible_range()
        text = _("{n} events in the last {span:.0f} s shown").format(n=len(vis), span=t1 - t0)
        if vis:
            text += ". " + _("Latest: {text}").format(text=vis[-1].text)
        self.setAccessibleDescription(text)

    # ---- Qt events
    def sizeHint(self):  # noqa: N802 - Qt's name
        s = super().sizeHint()
        s.setHeight(len(CATEGORIES) * LANE_H + AXIS_H + 8)
        s.setWidth(500)
        return s

    def wheelEvent(self, ev) -> None:  # noqa: N802
        dy = ev.angleDelta().y()
        if dy > 0:
            self.zoom_in()
        elif dy < 0:
            self.zoom_out()
        ev.accept()

    def keyPressEvent(self, ev) -> None:  # noqa: N802
        k = ev.key()
        if k in (Qt.Key.Key_Plus, Qt.Key.Key_Equal):
            self.zoom_in()
        elif k in (Qt.Key.Key_Minus, Qt.Key.Key_Underscore):
            self.zoom_out()
        elif k == Qt.Key.Key_Left:
            self.pan(-0.25)
        elif k == Qt.Key.Key_Right:
            self.pan(0.25)
        elif k == Qt.Key.Key_End:
            self.follow()
        else:
            super().keyPressEvent(ev)
            return
        ev.accept()

    def mouseMoveEvent(self, ev) -> None:  # noqa: N802
        found = self.events_at(ev.position())
        if not found:
            QToolTip.hideText()
        else:
            shown = sorted(found[:MAX_TIP], key=lambda e: e.t)
            text = "\n\n".join(self.describe(e) for e in shown)
            if len(found) > MAX_TIP:
                text += "\n" + _("and {n} more (zoom in)").format(n=len(found) - MAX_TIP)
            QToolTip.showText(ev.globalPosition().toPoint(), text, self)
        super().mouseMoveEvent(ev)

    def paintEvent(self, _ev) -> None:  # noqa: N802
        c = self._colours()
        plot = self._plot()
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.fillRect(self.rect(), c["background"])
        fm = self.fontMetrics()
        # lanes
        for i, cat in enumerate(CATEGORIES):
            y = plot.top() + i * LANE_H
            p.setPen(QPen(c["grid"], 1))
            p.drawLine(QPointF(plot.left(), y + LANE_H), QPointF(plot.right(), y + LANE_H))
            p.setPen(c["text"])
            p.drawText(QRectF(2, y, plot.left() - 6, LANE_H), Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignRight,
                       _(LANE_NAMES[cat]))
        # time axis: ticks evenly spaced on the monotonic x axis, round in the wall time at the left edge; each
        # label is its own wall time (wall_of), so those past a suspend in view say when they really were
        t0, t1 = self.visible_range()
        step = _nice_step(t1 - t0, plot.width())
        w0 = self._wall_of(t0)
        first = math.ceil(w0 / step) * step
        axis_y = plot.bottom() + 2
        k = first
        while k - w0 <= t1 - t0 + 1e-6:
            x = plot.left() + (k - w0) / (t1 - t0) * plot.width()
            p.setPen(QPen(c["grid"], 1, Qt.PenStyle.DotLine))
            p.drawLine(QPointF(x, plot.top()), QPointF(x, plot.bottom()))
            label = time.strftime("%H:%M:%S", time.localtime(self._wall_of(t0 + (k - w0))))
            lw = fm.horizontalAdvance(label)
            p.setPen(c["text"])
            p.drawText(QPointF(min(max(plot.left(), x - lw / 2), plot.right() - lw), axis_y + fm.ascent()), label)
            k += step
        # markers
        p.setClipRect(plot.adjusted(-MARK_R, -1, MARK_R, 1))
        for e in self.visible_events():
            colour = c.get(e.severity, c["info"])
            p.setPen(QPen(c["text"], 0.8))
            p.setBrush(colour)
            p.drawEllipse(QPointF(self._x(e.t, plot), self._lane_y(e.category, plot)), MARK_R, MARK_R)
        if self.end is None:  # the present
            p.setPen(QPen(c["text"], 1, Qt.PenStyle.DashLine))
            p.drawLine(QPointF(plot.right(), plot.top()), QPointF(plot.right(), plot.bottom()))
        if self.hasFocus():
            p.setClipping(False)
            p.setPen(QPen(c["text"], 1, Qt.PenStyle.DotLine))
            p.setBrush(Qt.BrushStyle.NoBrush)
            p.drawRect(self.rect().adjusted(0, 0, -1, -1))
        p.end()
