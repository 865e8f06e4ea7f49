"""The Health tab (pytest-qt, offscreen): readings shown with units, zoom, hover, export to PNG and CSV."""

from __future__ import annotations

import csv

import pytest
from PySide6.QtCore import QEvent, QPoint, QPointF, QRect, Qt
from PySide6.QtGui import QColor, QImage, QMouseEvent, QPalette, QWheelEvent
from PySide6.QtWidgets import QApplication, QFileDialog, QToolTip

from mhgui.core.bindings import Binding, BindingState
from mhgui.core.failover import FailoverEntry
from mhgui.core.health import LinkCounters, TimelineEvent
from mhgui.core.model import Interface, InterfaceKind
from mhgui.core.state import LinkRemoved, LinkUpsert, StateStore
from mhgui.daemons.base import BindingsChanged
from mhgui.failover_service import EntryChanged, LinkLost
from mhgui.sources.linkstats import StatsError, StatsTick
from mhgui.ui import colours
from mhgui.ui.health_view import HealthFeed, HealthPage, health_colours, health_feed
from mhgui.ui.window import LiveController, MainWindow

#: offscreen, a shown window
pytestmark = pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints")

NOW = [1000.0]


def clock():
    return NOW[0]


class FakeSource:
    """What the feed needs of LinkStatsSource: ``sink``, ``active``, ``set_active``."""

    def __init__(self):
        self.sink = None
        self.active = False
        self.calls: list[bool] = []

    def set_active(self, on: bool) -> None:
        self.calls.append(on)
        self.active = on


class FakeDaemon:
    def __init__(self):
        self.cbs = []

    def bindings(self):
        return []

    def subscribe(self, cb):
        self.cbs.append(cb)
        return lambda: self.cbs.remove(cb)

    def emit(self, ev):
        for cb in list(self.cbs):
            cb(ev)


class FakeFailover:
    def __init__(self, entries=()):
        self.log = type("Log", (), {"entries": list(entries)})()
        self.cbs = []

    def subscribe(self, cb):
        self.cbs.append(cb)
        return lambda: self.cbs.remove(cb)


def iface(ifindex, name, up=True, kind=InterfaceKind.ETHERNET):
    return Interface(ifindex, name, kind, up, up, up, "up" if up else "down")


@pytest.fixture
def win(qtbot):
    NOW[0] = 1000.0
    store = StateStore()
    store.apply(LinkUpsert(iface(1, "lo", kind=InterfaceKind.LOOPBACK)))
    store.apply(LinkUpsert(iface(2, "up0")))
    store.apply(LinkUpsert(iface(3, "up1")))
    c = LiveController(store, clock)
    w = MainWindow(c)
    qtbot.addWidget(w)
    w.resize(1366, 720)
    yield w
    c.close()


def feed_ticks(source, n=30, start=1000.0, rate_up0=1_000_000, rate_up1=8000):
    """``n`` readings a second apart: up0 receives ``rate_up0`` bit/s, up1 sends ``rate_up1`` bit/s."""
    for i in range(n):
        t = start + i
        NOW[0] = t
        links = (LinkCounters(1, "lo", 0, 0), LinkCounters(2, "up0", i * rate_up0 // 8, 0, i * 100, 0),
                 LinkCounters(3, "up1", 0, i * rate_up1 // 8, 0, i))
        ups = ({"name": "up0", "ifindex": 2, "reachable": True, "rtt_ms": 2.0 + i % 3, "srtt_ms": 2.5, "loss": 0.0,
                "probes_sent": 4 * i, "probes_answered": 4 * i},
               {"name": "up1", "ifindex": 3, "reachable": i < n - 5, "rtt_ms": 7.0, "srtt_ms": 7.1, "loss": 0.25,
                "probes_sent": 4 * i, "probes_answered": 3 * i})
        source.sink(StatsTick(t, links, ups))


def open_page(win, qtbot) -> HealthPage:
    page = win.lazy_tabs.ensure("Health")
    assert isinstance(page, HealthPage)
    win.show()
    win.tabs.setCurrentWidget(page)
    qtbot.waitExposed(win)
    return page


def test_the_window_has_a_health_tab_that_shows_rates_rtt_and_loss_with_units(win, qtbot):
    page = open_page(win, qtbot)
    src = FakeSource()
    health_feed(win).attach(src, FakeFailover())
    qtbot.waitUntil(lambda: src.active)  # the window is shown: polling on
    feed_ticks(src)
    page.refresh()
    texts = {lab.accessibleName(): lab.text() for lab in page.metrics.findChildren(type(page.span_label))
             if lab.accessibleName()}
    assert texts["up0 receive rate"] == "↓ 1 Mbit/s" and texts["up0 send rate"] == "↑ 0 bit/s"
    assert texts["up1 send rate"] == "↑ 8 kbit/s"
    assert texts["up0 round-trip time value"] == "4 ms (2.5 ms)"  # the last reading: 2 + 29 % 3
    assert texts["up1 round-trip time value"] == "unreachable"
    tones = {lab.accessibleName(): colours.tone_of(lab) for lab in page.metrics.findChildren(type(page.span_label))}
    assert tones["up1 round-trip time value"] == "error" and tones["up0 round-trip time value"] == "ok"
    loss = texts["up1 loss value"]  # the percentage and its window agree; the totals are in the tooltip
    assert loss == "25 % of the last 20", loss
    tip = page.metrics.rows[("up", 3)][3].toolTip()
    assert "25 % of the last 20 probes" in tip and "87 of 116 answered since the engine started" in tip, tip
    assert not any("lo " in n for n in texts)  # loopback is no uplink
    # the sparklines hold the points of the visible range
    rx = page.metrics.rows[("if", 2)][0]
    assert len(rx.points) >= 20 and rx.vmax == pytest.approx(1_000_000)
    # no readings for a while (the engine went away): the figures are not shown as current
    NOW[0] += 10
    page.refresh()
    assert page.metrics.rows[("up", 2)][1].text() == "no recent reading"
    assert colours.tone_of(page.metrics.rows[("up", 2)][1]) == "info"
    # up1's loss of its probes' answers is an event on the timeline
    assert [e.kind for e in health_feed(win).health.events] == ["unreachable"]


def test_polling_follows_the_window(win, qtbot):
    page = open_page(win, qtbot)
    src = FakeSource()
    health_feed(win).attach(src)
    qtbot.waitUntil(lambda: src.active)
    win.hide()
    qtbot.waitUntil(lambda: not src.active)
    page.refresh()
    win.show()
    qtbot.waitUntil(lambda: src.active)
    assert src.calls == [True, False, True]


def test_store_binding_and_failover_events_reach_the_timeline(win, qtbot):
    open_page(win, qtbot)
    daemon = FakeDaemon()
    c = win.controller
    feed = HealthFeed(win, c.store, daemon, clock)  # health_feed(win) takes the controller's daemon
    fo = FakeFailover([FailoverEntry(1, "app", "up0", "up1", "link-down", 999.0, 999.01)])
    feed.attach(None, fo)
    c.store.apply(LinkUpsert(iface(2, "up0", up=False)))
    b = Binding("2001:db8:10::42", "192.0.2.2", state=BindingState.REGISTERED, interface="up1")
    daemon.emit(BindingsChanged((b,)))
    fo.cbs[0](LinkLost("up0", "carrier", 1000.5))
    c.store.apply(LinkRemoved(3))
    kinds = [(e.category, e.kind) for e in feed.health.events]
    assert kinds == [("failover", "failover"), ("link", "link-down"), ("binding", "binding-added"),
                     ("link", "link-removed"), ("failover", "link-lost")]
    entry = fo.log.entries[0]
    entry.ack_time = 999.05
    fo.cbs[0](EntryChanged(entry))
    assert [e.kind for e in feed.health.events].count("failover") == 1  # updated in place


def test_zoom_with_buttons_wheel_and_keys_changes_the_visible_range(win, qtbot):
    page = open_page(win, qtbot)
    tl = page.timeline
    seen = []
    tl.range_changed.connect(lambda a, b: seen.append(b - a))
    assert tl.visible_range()[1] - tl.visible_range()[0] == 120.0
    qtbot.mouseClick(page.zoom_in_button, Qt.MouseButton.LeftButton)
    assert tl.span == 60.0
    qtbot.mouseClick(page.zoom_out_button, Qt.MouseButton.LeftButton)
    qtbot.mouseClick(page.zoom_out_button, Qt.MouseButton.LeftButton)
    assert tl.span == 300.0
    centre = QPointF(tl.width() / 2, tl.height() / 2)
    wheel = QWheelEvent(centre, tl.mapToGlobal(centre), QPoint(), QPoint(0, 120), Qt.MouseButton.NoButton,
                        Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(tl, wheel)
    assert tl.span == 120.0
    tl.setFocus()
    qtbot.keyClick(tl, Qt.Key.Key_Plus)
    assert tl.span == 60.0
    qtbot.keyClick(tl, Qt.Key.Key_Minus)
    assert tl.span == 120.0
    qtbot.keyClick(tl, Qt.Key.Key_Left)
    t0, t1 = tl.visible_range()
    assert tl.end is not None and t1 == pytest.approx(NOW[0] - 30.0) and t1 - t0 == 120.0
    qtbot.keyClick(tl, Qt.Key.Key_End)
    assert tl.end is None and tl.visible_range()[1] == NOW[0]
    assert seen == [60.0, 120.0, 300.0, 120.0, 60.0, 120.0, 120.0, 120.0]
    for _ in range(10):
        tl.zoom_in()
    assert tl.span == 15.0  # the smallest level
    # the sparklines follow the range
    assert page.metrics.rows == {} or all(w[0].t1 - w[0].t0 == 15.0 for w in page.metrics.rows.values())


@pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints", "This plugin does not support raise")  # offscreen
def test_hover_shows_the_event_in_a_tooltip(win, qtbot):
    page = open_page(win, qtbot)
    feed = health_feed(win)
    src = FakeSource()
    feed.attach(src)
    feed_ticks(src, n=30)
    page.refresh()
    tl = page.timeline
    (ev,) = [e for e in tl.visible_events() if e.kind == "unreachable"]
    plot = tl._plot()
    pos = QPointF(tl._x(ev.t, plot), tl._lane_y(ev.category, plot))
    assert tl.event_at(pos) is ev
    assert tl.event_at(pos + QPointF(0, 40)) is None
    move = QMouseEvent(QEvent.Type.MouseMove, pos, tl.mapToGlobal(pos), Qt.MouseButton.NoButton,
                       Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(tl, move)
    qtbot.waitUntil(lambda: QToolTip.isVisible() and "unreachable through up1" in QToolTip.text())
    assert "Probes" in QToolTip.text()
    assert "unreachable through up1" in tl.accessibleDescription()
    # markers that overlap (events close in time) are all in the tooltip
    feed.health.record(TimelineEvent(ev.t + 0.05, "probe", "reachable", "up0", "home agent reachable again through up0"))
    tl.set_data(feed.health.events, NOW[0])
    assert [e.subject for e in tl.events_at(pos)] == ["up1", "up0"]
    QApplication.sendEvent(tl, QMouseEvent(QEvent.Type.MouseMove, pos + QPointF(1, 0), tl.mapToGlobal(pos),
                                           Qt.MouseButton.NoButton, Qt.MouseButton.NoButton,
                                           Qt.KeyboardModifier.NoModifier))
    qtbot.waitUntil(lambda: "through up0" in QToolTip.text() and "through up1" in QToolTip.text())


def test_export_png_writes_a_picture_that_loads(win, qtbot, tmp_path):
    page = open_page(win, qtbot)
    src = FakeSource()
    health_feed(win).attach(src)
    feed_ticks(src)
    page.refresh()
    path = str(tmp_path / "health.png")
    with qtbot.waitSignal(page.exported, timeout=5000) as sig:
        page.export_png(path)
    assert sig.args == [path, ""]
    img = QImage(path)
    assert not img.isNull() and img.width() == page.width() * page.devicePixelRatio() and img.height() > 150
    # what was drawn: the sparklines' colour is in the picture
    rx = health_colours(page.palette())["rx"]
    spark = page.metrics.rows[("if", 2)][0]
    box = QRect(spark.mapTo(page, QPoint(0, 0)), spark.size())

    def near(x, y):  # the line's hue (antialiasing blends its edges with the background)
        c = img.pixelColor(x, y)
        return c.hslSaturationF() > 0.3 and abs(c.hslHue() - rx.hslHue()) <= 8

    drawn = sum(near(x, y) for x in range(box.left(), box.right()) for y in range(box.top(), box.bottom()))
    assert drawn >= box.width() * 29 / 120  # a line across the 29 s of readings in the 120 s shown
    assert [p.name for p in tmp_path.iterdir()] == ["health.png"]  # no temp file left
    assert "Saved health.png" in page.status.text()


def test_export_csv_through_the_dialog_writes_csv_that_parses(win, qtbot, tmp_path):
    page = open_page(win, qtbot)
    src = FakeSource()
    health_feed(win).attach(src)
    feed_ticks(src, n=10)
    dlg = page.ask_csv()
    assert isinstance(dlg, QFileDialog) and dlg.isVisible()  # open(), not exec(): we are here while it shows
    path = str(tmp_path / "h.csv")
    with qtbot.waitSignal(page.exported, timeout=5000):
        dlg.fileSelected.emit(path)
    dlg.close()
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    up0_rx = [float(r["value"]) for r in rows if r["record"] == "throughput" and r["subject"] == "up0"
              and r["metric"] == "rx"]
    assert len(up0_rx) == 9 and set(up0_rx) == {1_000_000.0}
    assert any(r["record"] == "probe" and r["metric"] == "loss" and r["value"] == "0.25" for r in rows)
    assert any(r["record"] == "event" and r["metric"] == "probe/unreachable" for r in rows)


def test_an_export_that_cannot_be_written_says_why(win, qtbot, tmp_path):
    page = open_page(win, qtbot)
    path = str(tmp_path / "missing-dir" / "h.csv")
    with qtbot.waitSignal(page.exported, timeout=5000) as sig:
        page.export_csv(path)
    assert sig.args[0] == path and sig.args[1]
    assert "Could not save h.csv" in page.status.text()


def test_errors_and_missing_engine_are_explained(win, qtbot):
    page = open_page(win, qtbot)
    src = FakeSource()
    health_feed(win).attach(src)
    src.sink(StatsError("netlink", "cannot read the interface counters: Operation not permitted"))
    page.refresh()
    assert "Operation not permitted" in page.status.text() and "mhgui-mn" in page.status.text()


def _palette(dark: bool) -> QPalette:
    p = QPalette()
    base, text, window = (("#1e1e1e", "#e8e8e8", "#2b2b2b") if dark else ("#ffffff", "#1a1a1a", "#efefef"))
    for group in (QPalette.ColorGroup.Active, QPalette.ColorGroup.Inactive):
        p.setColor(group, QPalette.ColorRole.Base, QColor(base))
        p.setColor(group, QPalette.ColorRole.AlternateBase, QColor(base).lighter(110) if dark else QColor("#f5f5f5"))
        p.setColor(group, QPalette.ColorRole.Text, QColor(text))
        p.setColor(group, QPalette.ColorRole.Window, QColor(window))
        p.setColor(group, QPalette.ColorRole.WindowText, QColor(text))
        p.setColor(group, QPalette.ColorRole.Highlight, QColor("#3daee9" if dark else "#308cc6"))
        p.setColor(group, QPalette.ColorRole.Link, QColor("#2980b9"))
    return p


@pytest.mark.parametrize("dark", [False, True])
def test_every_health_colour_is_readable_on_its_background(qapp, dark):
    pal = _palette(dark)
    c = health_colours(pal)
    for name in ("text", "rx", "tx", "rtt", "loss", "good", "bad", "warning", "info"):
        ratio = colours.contrast_ratio(c[name], c["background"])
        assert ratio >= 4.5, f"{name} {c[name].name()} on {c['background'].name()}: {ratio:.2f}"
    assert len({c[n].name() for n in ("good", "bad", "warning")}) == 3
