"""The Health tab (issue 15.4): throughput per interface, the home agent's RTT and loss per uplink, a timeline.

- :class:`HealthFeed` (one per window, :func:`health_feed`) keeps a :class:`~mhgui.core.health.Health` fed
  from the state store's changes, the daemon's bindings, the failover service and the link statistics
  source (:mod:`mhgui.sources.linkstats`), which it runs only while the window is shown (not hidden to
  the tray, not minimised).
- :class:`HealthPage` (:func:`health_page`) shows it: sparklines painted with QPainter, their values with
  units beside them, the timeline (:class:`~mhgui.ui.health_timeline.TimelineView`), zoom buttons, and
  "Export PNG…"/"Export CSV…" (a file dialog opened with ``open()``; the file written atomically in a
  worker thread, :func:`mhgui.atomicfile.atomic_replace`).
- :func:`health_colours` is every colour the page paints, from the palette and made readable on it
  (contrast >= 4.5:1, WCAG 2.x): the contrast test calls it.
"""

from __future__ import annotations

import os
import time
from typing import Callable

from PySide6.QtCore import QBuffer, QByteArray, QEvent, QIODevice, QObject, QPointF, QRunnable, Qt, QThreadPool, QTimer, Signal
from PySide6.QtGui import QColor, QPainter, QPainterPath, QPalette, QPen
from PySide6.QtWidgets import (
    QApplication, QFileDialog, QFrame, QGridLayout, QHBoxLayout, QLabel, QPushButton, QScrollArea, QSizePolicy, QSplitter, QVBoxLayout,
    QWidget,
)

from ..core.health import Health, csv_text, event_of_entry, event_of_failover, events_of_bindings, events_of_changes
from ..core.health import format_ms, format_rate, loss_text
from ..i18n import _
from . import colours
from .colours import MIN_CONTRAST, contrast_ratio, relative_luminance
from .health_timeline import TimelineView

__all__ = ["HealthFeed", "HealthPage", "MetricsPanel", "Sparkline", "health_colours", "health_feed", "health_page", "readable"]


# --------------------------------------------------------------------------- colours
#: seconds after which an uplink's last probe figures are not shown as current (the engine went away)
STALE = 5.0
#: the timeline's severities as :mod:`mhgui.ui.colours` tones
SEVERITY_TONES = {"good": "ok", "bad": "error", "warning": "warning", "info": "info"}
#: the series' seeds: palette roles where one fits, else a fixed hue (its lightness adapted)
_SERIES = {"rx": QPalette.ColorRole.Highlight, "tx": "#8e44ad", "rtt": QPalette.ColorRole.Link, "loss": "#c62828"}


def readable(colour: QColor, background: QColor, minimum: float = MIN_CONTRAST) -> QColor:
    """``colour`` with its lightness moved away from ``background``'s until the contrast is at least
    ``minimum`` (the hue is kept); black or white when no lightness of that hue gets there."""
    if contrast_ratio(colour, background) >= minimum + 0.05:
        return QColor(colour)
    h, s, light, _a = colour.getHslF()
    darker = relative_luminance(background) > 0.18
    for i in range(1, 201):
        ll = light - i * light / 200 if darker else light + i * (1 - light) / 200
        c = QColor.fromHslF(max(h, 0.0), s, min(max(ll, 0.0), 1.0))
        if contrast_ratio(c, background) >= minimum + 0.05:
            return c
    return QColor(Qt.GlobalColor.black if darker else Qt.GlobalColor.white)


_CACHE: dict[int, dict[str, QColor]] = {}


def health_colours(palette: QPalette) -> dict[str, QColor]:
    """Every colour the health page paints, for ``palette``: ``background`` (Base), ``text``, ``grid``,
    the series (``rx``, ``tx``, ``rtt``, ``loss``) and the timeline's severities (``good``, ``bad``,
    ``warning``, ``info``: :mod:`mhgui.ui.colours` tones).

    All but ``background`` and ``grid`` have a contrast of at least 4.5:1 against ``background`` in any
    palette, light or dark (the contrast test calls this); ``grid`` is a faint line, no text is drawn in it.
    """
    key = palette.cacheKey()
    got = _CACHE.get(key)
    if got is not None:
        return dict(got)
    bg = palette.color(QPalette.ColorRole.Base)
    text = palette.color(QPalette.ColorRole.Text)
    grid = QColor(text)
    grid.setAlphaF(0.25)
    out = {"background": QColor(bg), "grid": grid, "text": readable(text, bg)}
    for name, seed in _SERIES.items():
        out[name] = readable(palette.color(seed) if isinstance(seed, QPalette.ColorRole) else QColor(seed), bg)
    for severity, tone in SEVERITY_TONES.items():
        out[severity] = colours.foreground(tone, palette, (QPalette.ColorRole.Base,))
    if len(_CACHE) > 32:
        _CACHE.clear()
    _CACHE[key] = out
    return dict(out)


# --------------------------------------------------------------------------- sparkline
class Sparkline(QWidget):
    """A small line chart of (t, value) points between ``t0`` and ``t1``, 0..``vmax``; a value None or a point
    with ``gap`` breaks the line. ``role`` names its colour in :func:`health_colours`."""

    def __init__(self, role: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.role = role
        self.points: list[tuple[float, float | None, bool]] = []
        self.t0, self.t1, self.vmax, self.scale = 0.0, 1.0, 1.0, 1.15
        self.setMinimumSize(90, 22)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def sizeHint(self):  # noqa: N802 - Qt's name
        s = super().sizeHint()
        s.setWidth(150)
        s.setHeight(26)
        return s

    def set_points(self, points: list[tuple[float, float | None, bool]], t0: float, t1: float, vmax: float) -> None:
        self.points, self.t0, self.t1, self.vmax = points, t0, t1, max(vmax, 1e-9)
        self.scale = self.vmax * 1.15  # the highest value a little below the top edge
        self.update()

    def paintEvent(self, _ev) -> None:  # noqa: N802
        c = health_colours(self.palette())
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        r = self.rect().adjusted(1, 2, -1, -2)
        p.fillRect(self.rect(), c["background"])
        p.setPen(QPen(c["grid"], 1))
        p.drawLine(r.bottomLeft(), r.bottomRight())
        span = max(self.t1 - self.t0, 1e-9)
        path = QPainterPath()
        pen_down = False
        for t, v, gap in self.points:
            if t < self.t0 or t > self.t1 or v is None:
                pen_down = False
                continue
            x = r.left() + (t - self.t0) / span * r.width()
            y = r.bottom() - min(v / self.scale, 1.0) * r.height()
            if pen_down and not gap:
                path.lineTo(QPointF(x, y))
            else:
                path.moveTo(QPointF(x, y))
                path.lineTo(QPointF(x + 0.5, y))  # a lone point stays visible
            pen_down = True
        p.setPen(QPen(c[self.role], 1.6))
        p.drawPath(path)
        p.end()


# --------------------------------------------------------------------------- the feed
class HealthFeed(QObject):
    """The window's :class:`~mhgui.core.health.Health` and what feeds it (module docstring).

    ``store``, ``daemon`` (a driver or None) and ``clock`` are the window controller's; ``wall``: the wall
    clock (s since 1970), read with ``clock`` after each recording (:meth:`~mhgui.core.health.Health.note_wall`)
    so that times keep their wall time across a suspend. ``updated`` is emitted after new readings or events.
    :meth:`attach` connects the link statistics source and the failover service, which exist once the runtime
    has started.
    """

    updated = Signal()

    def __init__(self, window: QWidget, store, daemon, clock: Callable[[], float],
                 wall: Callable[[], float] | None = None) -> None:
        super().__init__(window)
        self.window = window
        self.store = store
        self.daemon = daemon
        self.clock = clock
        self.wall = wall if wall is not None else time.time  # looked up now: tests may patch time.time
        self.health = Health()
        self.note_wall()
        self.source = None
        #: the last error of each part ("netlink", "uplinks"), cleared by a good reading
        self.errors: dict[str, str] = {}
        self.engine_seen = False
        self._bindings = tuple(daemon.bindings()) if daemon is not None else ()
        self._unsubs = [store.subscribe(self._on_changes)]
        if daemon is not None:
            self._unsubs.append(daemon.subscribe(self._on_daemon))
        window.installEventFilter(self)

    def note_wall(self) -> None:
        """Note the wall clock against ``clock`` now (after each recording, and when read)."""
        self.health.note_wall(self.clock(), self.wall())

    def wall_of(self, t: float) -> float:
        """Seconds since 1970 for monotonic ``t``: the wall time noted when it was recorded (not the offset now,
        which differs by every suspend since)."""
        self.note_wall()
        return self.health.walls.wall_of(t)

    def attach(self, source=None, failover=None) -> None:
        """Take readings from ``source`` (a :class:`~mhgui.sources.linkstats.LinkStatsSource`) and events from
        ``failover`` (a :class:`~mhgui.failover_service.FailoverService`, its log's entries so far included)."""
        if failover is not None:
            shown = failover.entries() if hasattr(failover, "entries") else failover.log.entries  # what moved
            for e in shown:
                self.health.record(event_of_entry(e))
            self.note_wall()
            self._unsubs.append(failover.subscribe(self._on_failover))
        if source is not None:
            self.source = source
            source.sink = self._on_stats
            self._update_active()
        self.updated.emit()

    def close(self) -> None:
        for u in self._unsubs:
            u()
        self._unsubs = []
        if self.source is not None:
            self.source.set_active(False)
            self.source.sink = None

    # ---- inputs
    def _on_changes(self, changes) -> None:
        t = self.clock()
        names = {i: iface.name for i, iface in self.store.state.interfaces.items()}
        self.health.record_all(events_of_changes(t, changes, names))
        self.note_wall()
        for c in changes:
            if c.kind == "link-removed" and c.ifindex is not None:
                self.health.forget_interface(c.ifindex)
        self.updated.emit()

    def _on_daemon(self, ev) -> None:
        if type(ev).__name__ == "BindingsChanged":
            after = tuple(ev.bindings)
            self.health.record_all(events_of_bindings(self.clock(), self._bindings, after))
            self.note_wall()
            self._bindings = after
            self.updated.emit()

    def _on_failover(self, ev) -> None:
        e = event_of_failover(ev)
        if e is not None:
            self.health.record(e)
            self.note_wall()
            self.updated.emit()

    def _on_stats(self, item) -> None:
        if type(item).__name__ == "StatsError":
            self.errors[item.what] = item.message
        else:
            self.errors.pop("netlink", None)
            self.health.add_counters(item.t, item.links)
            if item.uplinks is not None:
                self.errors.pop("uplinks", None)
                self.engine_seen = True
                self.health.add_uplinks(item.t, list(item.uplinks))
            self.note_wall()
        self.updated.emit()

    # ---- polling only while the window is shown
    def eventFilter(self, obj, ev) -> bool:  # noqa: N802 - Qt's name
        if obj is self.window and ev.type() in (QEvent.Type.Show, QEvent.Type.Hide, QEvent.Type.WindowStateChange):
            QTimer.singleShot(0, self._update_active)
        return False

    def shown(self) -> bool:
        return self.window.isVisible() and not self.window.isMinimized()

    def _update_active(self) -> None:
        if self.source is None:
            return
        want = self.shown()
        if want == self.source.active:
            return
        try:
            self.source.set_active(want)
        except RuntimeError:  # no running event loop (a window shown before the app's loop runs)
            return
        if not want:
            self.health.pause()


def health_feed(window) -> HealthFeed:
    """The window's :class:`HealthFeed`, made at the first call (by the page, or by the app wiring the source)."""
    feed = getattr(window, "_health_feed", None)
    if feed is None:
        c = window.controller
        feed = HealthFeed(window, c.store, c.daemon, c.clock)
        window._health_feed = feed
    return feed


# --------------------------------------------------------------------------- file writing off the GUI thread
class _Writer(QObject):
    """Writes files atomically (:func:`~mhgui.atomicfile.atomic_replace`) in Qt's thread pool; ``done(path,
    error)`` comes back on the GUI thread ("" = written)."""

    done = Signal(str, str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._jobs: list = []  # kept until they have run (Qt must not delete a job under its thread)

    def write(self, path: str, data: bytes) -> None:
        from ..atomicfile import atomic_replace
        writer = self

        class Job(QRunnable):
            finished = False

            def run(self) -> None:
                try:
                    atomic_replace(path, lambda f: f.write(data))
                except OSError as e:
                    error = e.strerror or str(e)
                else:
                    error = ""
                self.finished = True
                writer.done.emit(path, error)

        self._jobs = [j for j in self._jobs if not j.finished]
        job = Job()
        job.setAutoDelete(False)
        self._jobs.append(job)
        QThreadPool.globalInstance().start(job)


class MetricsPanel(QWidget):
    """The left of the Health tab: per interface, received and sent rates (sparkline and value); per uplink of
    the engine, the home agent's round-trip time and the probes' loss. ``rows``: the widgets of each row,
    by ``("if", ifindex)`` or ``("up", uplink key)``."""

    def __init__(self, feed: HealthFeed, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.feed = feed
        self.rows_key: tuple = ()
        self.rows: dict = {}
        self.grid = QGridLayout(self)
        self.grid.setContentsMargins(4, 4, 4, 4)
        self.grid.setHorizontalSpacing(8)
        self.grid.setVerticalSpacing(2)

    def _interfaces(self) -> list:
        state = self.feed.store.state.interfaces
        out = []
        for s in self.feed.health.interfaces.values():
            iface = state.get(s.ifindex)
            if (iface is not None and iface.kind.value == "loopback") or s.name == "lo":
                continue
            out.append(s)
        return sorted(out, key=lambda s: (s.name, s.ifindex))

    def rebuild(self) -> None:
        """Rows for the interfaces and uplinks that have readings (made again only when that set changes)."""
        ifs = self._interfaces()
        ups = sorted(self.feed.health.uplinks.values(), key=lambda u: u.name)
        key = (tuple((s.ifindex, s.name) for s in ifs), tuple((u.key, u.name) for u in ups))
        if key == self.rows_key:
            return
        self.rows_key = key
        while self.grid.count():
            w = self.grid.takeAt(0).widget()
            if w is not None:
                w.hide()  # gone from the next frame on, not only once deleted
                w.deleteLater()
        self.rows = {}
        row = 0

        def header(text: str) -> None:
            nonlocal row
            lab = QLabel(f"<b>{text}</b>")
            self.grid.addWidget(lab, row, 0, 1, 5)
            row += 1

        def value_label(name: str) -> QLabel:
            lab = QLabel("–")
            lab.setAccessibleName(name)
            lab.setMinimumWidth(self.fontMetrics().horizontalAdvance("↓ 888 Mbit/s "))
            lab.setSizePolicy(QSizePolicy.Policy.Minimum, QSizePolicy.Policy.Preferred)
            return lab

        header(_("Throughput per interface (received ↓, sent ↑)"))
        if not ifs:
            self.grid.addWidget(QLabel(_("No readings yet.")), row, 0, 1, 5)
            row += 1
        def add_row(label: str, key: tuple, kinds: tuple[str, str], names: tuple[str, str, str, str]) -> None:
            nonlocal row
            a, b = Sparkline(kinds[0]), Sparkline(kinds[1])
            a.setAccessibleName(names[0])
            b.setAccessibleName(names[1])
            av, bv = value_label(names[2]), value_label(names[3])
            for col, w in enumerate((QLabel(label), a, av, b, bv)):
                self.grid.addWidget(w, row, col)
            self.rows[key] = (a, av, b, bv)
            row += 1

        for s in ifs:
            add_row(s.name, ("if", s.ifindex), ("rx", "tx"),
                    (_("{iface} received").format(iface=s.name), _("{iface} sent").format(iface=s.name),
                     _("{iface} receive rate").format(iface=s.name), _("{iface} send rate").format(iface=s.name)))
        if ups:
            header(_("Home agent through each uplink: round-trip time (smoothed), loss (of the last probes)"))
        for u in ups:
            add_row(u.name, ("up", u.key), ("rtt", "loss"),
                    (_("{uplink} round-trip time").format(uplink=u.name), _("{uplink} loss").format(uplink=u.name),
                     _("{uplink} round-trip time value").format(uplink=u.name),
                     _("{uplink} loss value").format(uplink=u.name)))
        self.grid.setColumnStretch(1, 1)
        self.grid.setColumnStretch(3, 1)
        self.grid.setRowStretch(row, 1)
        for i in range(self.grid.count()):  # now, not at the layout's next activation (a grab right after)
            w = self.grid.itemAt(i).widget()
            if w is not None:
                w.show()

    def show_range(self, t0: float, t1: float) -> None:
        """The sparklines from ``t0`` to ``t1`` (the timeline's range) and the latest values."""
        for s in self._interfaces():
            widgets = self.rows.get(("if", s.ifindex))
            if widgets is None:
                continue
            rx, rxv, tx, txv = widgets
            pts = [p for p in s.points if t0 <= p.t <= t1]
            vmax = max([1000.0] + [max(p.rx_bps, p.tx_bps) for p in pts])  # one scale for both: comparable
            rx.set_points([(p.t, p.rx_bps, p.gap) for p in pts], t0, t1, vmax)
            tx.set_points([(p.t, p.tx_bps, p.gap) for p in pts], t0, t1, vmax)
            last = s.latest()
            rxv.setText("↓ " + format_rate(last.rx_bps if last else None))
            txv.setText("↑ " + format_rate(last.tx_bps if last else None))
            for w in (rx, tx):
                w.setToolTip(_("{iface}: scale 0 to {max}").format(iface=s.name, max=format_rate(vmax)))
        for u in self.feed.health.uplinks.values():
            widgets = self.rows.get(("up", u.key))
            if widgets is None:
                continue
            rtt, rttv, loss, lossv = widgets
            pts = [p for p in u.points if t0 <= p.t <= t1]
            vmax = max([1.0] + [p.rtt_ms for p in pts if p.rtt_ms is not None])
            rtt.set_points([(p.t, p.rtt_ms if p.reachable is not False else None, False) for p in pts], t0, t1, vmax)
            loss.set_points([(p.t, p.loss, False) for p in pts], t0, t1, 1.0)
            rtt.setToolTip(_("{uplink}: scale 0 to {max}").format(uplink=u.name, max=format_ms(vmax)))
            loss.setToolTip(_("{uplink}: scale 0 to 100 %").format(uplink=u.name))
            last = u.latest()
            if last is None:
                continue
            if self.feed.clock() - last.t > STALE:
                rttv.setText(_("no recent reading"))
                state = "info"
            elif last.reachable is False:
                rttv.setText(_("unreachable"))
                state = "bad"
            elif last.reachable is None:  # not probed (no carrier, not started): its last numbers are old news
                rttv.setText(_("not known now"))
                state = "info"
            else:
                rttv.setText(f"{format_ms(last.rtt_ms)} ({format_ms(last.srtt_ms)})")
                state = "good" if last.reachable else "info"
            colours.set_tone(rttv, SEVERITY_TONES[state])
            word = {"bad": _("unreachable"), "good": _("reachable"), "info": _("not known now")}[state]
            rttv.setToolTip(_("{uplink}: home agent {state}; last round trip {rtt}, smoothed {srtt}").format(
                uplink=u.name, state=word, rtt=format_ms(last.rtt_ms), srtt=format_ms(last.srtt_ms)))
            value, tip = loss_text(last, u.name)  # the percentage and its window: the same probes (issue 15.4)
            lossv.setText(value)
            lossv.setToolTip(tip)


class HealthPage(QWidget):
    """The Health tab (module docstring). ``exported(path, error)`` follows each export ("" = written)."""

    exported = Signal(str, str)

    def __init__(self, feed: HealthFeed, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.feed = feed
        self.setWindowTitle(_("Health"))
        self.setAccessibleName(_("Health"))
        self._dialog: QFileDialog | None = None
        self._writer = _Writer(self)
        self._writer.done.connect(self._written)
        self._note: tuple[str, float] | None = None  # (what an export said, until when: monotonic s)

        # ---- left: throughput and probes
        self.metrics = MetricsPanel(feed)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.metrics)
        scroll.setAccessibleName(_("Throughput and home agent probes"))

        # ---- right: timeline and its controls
        self.timeline = TimelineView(lambda: health_colours(self.timeline.palette()), self._wall_of)
        self.timeline.range_changed.connect(self.metrics.show_range)
        buttons = QHBoxLayout()
        buttons.setContentsMargins(0, 0, 0, 0)

        def button(text: str, name: str, slot, tip: str) -> QPushButton:
            b = QPushButton(text)
            b.setAccessibleName(name)
            b.setToolTip(tip)
            b.clicked.connect(slot)
            buttons.addWidget(b)
            return b

        self.zoom_in_button = button("+", _("Zoom in"), self.timeline.zoom_in, _("Show less time (+, wheel up)"))
        self.zoom_out_button = button("−", _("Zoom out"), self.timeline.zoom_out, _("Show more time (−, wheel down)"))
        self.live_button = button(_("Now"), _("Follow the present"), self.timeline.follow,
                                  _("Back to the present (End); Left and Right move in time"))
        self.span_label = QLabel()
        buttons.addWidget(self.span_label, 1)
        self.png_button = button(_("Export PNG…"), _("Export PNG"), self.ask_png, _("Save a picture of this tab"))
        self.csv_button = button(_("Export CSV…"), _("Export CSV"), self.ask_csv,
                                 _("Save the samples and events as CSV (RFC 4180)"))
        right = QWidget()
        rl = QVBoxLayout(right)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.addLayout(buttons)
        rl.addWidget(self.timeline, 1)
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.status.setTextFormat(Qt.TextFormat.PlainText)
        self.status.setAccessibleName(_("Health status"))
        rl.addWidget(self.status)

        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(scroll)
        split.addWidget(right)
        split.setStretchFactor(0, 1)
        split.setStretchFactor(1, 1)
        split.setSizes([680, 520])
        # scrolls rather than asking the window for its timeline's height: at 1366x720 the interfaces and the
        # binding table above and below the tabs keep their rows (issue 15.5)
        outer = QScrollArea()
        outer.setWidgetResizable(True)
        outer.setFrameShape(QFrame.Shape.NoFrame)
        outer.setWidget(split)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addWidget(outer)

        self._pending = False
        feed.updated.connect(self._schedule)
        self._clock_timer = QTimer(self)  # the timeline moves with time even without readings
        self._clock_timer.setInterval(1000)
        self._clock_timer.timeout.connect(self.refresh)
        self._clock_timer.start()
        self.refresh()

    def _wall_of(self, t: float) -> float:
        return self.feed.wall_of(t)

    def _schedule(self) -> None:
        if not self._pending:
            self._pending = True
            QTimer.singleShot(0, self.refresh)

    # ---- showing
    def refresh(self) -> None:
        """Redraw from the feed's data (coalesced: once per event-loop turn, and once a second)."""
        self._pending = False
        if not self.isVisible() and self.metrics.rows:
            return  # a hidden tab is redrawn when shown
        h = self.feed.health
        self.metrics.rebuild()
        self.timeline.set_data(h.events, self.feed.clock())
        t0, t1 = self.timeline.visible_range()
        self.metrics.show_range(t0, t1)
        live = _("live") if self.timeline.end is None else _("scrolled back")
        self.span_label.setText(_("{span:.0f} s shown ({live})").format(span=t1 - t0, live=live))
        notes = list(self.feed.errors.values())
        if self.feed.source is None:
            notes.append(_("Throughput appears once the app's sources have started."))
        elif not self.feed.source.active:
            notes.append(_("Readings are paused while the window is hidden."))
        if not h.uplinks:
            notes.append(_("Round-trip time and loss to the home agent come from mhgui's engine (mhgui-mn), "
                           "which probes it through each uplink; UMIP's mip6d does not measure them."))
        if self._note is not None and time.monotonic() < self._note[1]:
            notes.insert(0, self._note[0])
        self.status.setText(" ".join(notes))
        self.status.setVisible(bool(notes))

    def showEvent(self, ev) -> None:  # noqa: N802
        super().showEvent(ev)
        self.refresh()

    # ---- export
    def _dialog_for(self, title: str, name: str, filter_: str, suffix: str, slot) -> QFileDialog:
        if self._dialog is not None:
            self._dialog.close()
            self._dialog.deleteLater()
        from .tableexport import export_dir, remember_dir  # the session's export folder, shared with the tables
        d = QFileDialog(self, title, os.path.join(export_dir(), name), filter_)
        d.fileSelected.connect(remember_dir)
        d.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
        d.setOption(QFileDialog.Option.DontUseNativeDialog, True)
        d.setDefaultSuffix(suffix)
        d.setAccessibleName(title)
        d.fileSelected.connect(slot)
        self._dialog = d
        d.open()  # never exec(): the event loop goes on
        return d

    def ask_png(self) -> QFileDialog:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        return self._dialog_for(_("Export PNG"), f"mhgui-health-{stamp}.png", _("PNG images (*.png)"), "png",
                                self.export_png)

    def ask_csv(self) -> QFileDialog:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        return self._dialog_for(_("Export CSV"), f"mhgui-health-{stamp}.csv", _("CSV files (*.csv)"), "csv",
                                self.export_csv)

    def png_bytes(self) -> bytes:
        """This tab as it is drawn now, as PNG."""
        QApplication.sendPostedEvents(None, QEvent.Type.LayoutRequest)  # values changed since the last layout
        data = QByteArray()
        buf = QBuffer(data)
        buf.open(QIODevice.OpenModeFlag.WriteOnly)
        self.grab().toImage().save(buf, "PNG")
        buf.close()
        return bytes(data)

    def export_png(self, path: str) -> None:
        """Write :meth:`png_bytes` to ``path`` (atomically, off the GUI thread); ``exported`` follows."""
        if path:
            self._writer.write(path, self.png_bytes())

    def export_csv(self, path: str) -> None:
        """Write every sample and event kept (:func:`~mhgui.core.health.csv_text`) to ``path``; ``exported`` follows."""
        if path:
            text = csv_text(self.feed.health, wall_of=self.feed.wall_of)
            self._writer.write(path, text.encode("utf-8"))

    def _written(self, path: str, error: str) -> None:
        name = os.path.basename(path)
        text = (_("Saved {file}").format(file=name) if not error
                else _("Could not save {file}: {error}").format(file=name, error=error))
        self._note = (text, time.monotonic() + 15.0)
        self.status.setText(text)
        self.status.show()
        self.exported.emit(path, error)


def health_page(window) -> QWidget:
    """The Health tab for ``window`` (a :class:`~mhgui.ui.window.MainWindow`: its controller's store, daemon
    and clock); its title is :meth:`~QWidget.windowTitle`."""
    return HealthPage(health_feed(window))
