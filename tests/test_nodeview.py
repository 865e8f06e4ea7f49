"""The Node tab (issue 15.2), pytest-qt offscreen: the picture at the window's default size, drops, the
keyboard, live updates without needless relayouts, the state colours' contrast."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt
from PySide6.QtGui import QColor, QDragEnterEvent, QDragMoveEvent, QDropEvent, QPalette
from PySide6.QtWidgets import QApplication

from mhgui.core.bindings import BindingState
from mhgui.core.capabilities import DaemonCapabilities
from mhgui.core.state import AddressUpsert, HomeAddressesSet, LinkUpsert, RoutersSnapshot, StateStore
from mhgui.daemons.base import BindingsChanged, DaemonDriver, DaemonStatus
from mhgui.ui.flows_model import FLOW_MIME
from mhgui.ui.models import HOA_MIME
from mhgui.ui.nodeview import FLOW_BINDING_MIME, contrast_ratio, state_colours
from mhgui.ui.window import LiveController, MainWindow
from test_nodepicture import COAS, FLOWS, HOAS, UPLINKS, assert_readable, mcoa_bindings, node_3x3x10

#: offscreen, a shown window
pytestmark = pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints")


class Engine(DaemonDriver):
    """The engine's driver as the window reads it, with several CoAs (RFC 5648) and flow bindings."""

    name = "engine"

    def __init__(self, bindings=None) -> None:
        super().__init__()
        self._bindings = tuple(mcoa_bindings() if bindings is None else bindings)
        self._set_status(DaemonStatus("engine", "mn", True, "connected"))

    @property
    def capabilities(self) -> DaemonCapabilities:
        return DaemonCapabilities("engine", connected=True, per_hoa_choice=True, multiple_coas=True,
                                  flow_bindings=True, runtime_rebind=True)

    def uplinks(self):
        return [dict(u) for u in UPLINKS]

    def raw_bindings(self):
        return [{"hoa": h, "state": "registered", "preference": [], "backup": [], "never": []} for h in HOAS]

    def flow_bindings(self):
        return [dict(f, match={"source_address": "2001:db8:c0::2", "destination_address": f["hoa"],
                               "source_port": 80 + f["fid"], "next_header": 6}) for f in FLOWS]

    def emit_bindings(self, bindings) -> None:
        self._bindings = tuple(bindings)
        self._emit(BindingsChanged(self._bindings))

    async def start(self): ...

    async def stop(self): ...

    async def plan_rebind(self, hoa, ifname, live): raise NotImplementedError

    async def rebind(self, plan): raise NotImplementedError


def fill(store: StateStore) -> None:
    st = node_3x3x10()
    for i in sorted(st.interfaces):
        store.apply(LinkUpsert(st.interfaces[i]))
    for a in st.addresses.values():
        store.apply(AddressUpsert(a))
    store.apply(RoutersSnapshot(tuple((i, r) for i, rs in st.routers.items() for r in sorted(rs))))
    store.apply(HomeAddressesSet(st.home_addresses))


@pytest.fixture
def win(qtbot):
    def make(daemon="engine"):
        store = StateStore()
        fill(store)
        d = Engine() if daemon == "engine" else None
        c = LiveController(store, lambda: 100.0, daemon=d)
        w = MainWindow(c)
        qtbot.addWidget(w)
        w.show()
        qtbot.waitExposed(w)
        page = w.lazy_tabs.ensure("Node")
        w.tabs.setCurrentWidget(page)
        qtbot.waitUntil(lambda: page.canvas.lay is not None and page.canvas.picture is not None)
        w.menus = []
        w.show_menu = lambda menu, where: w.menus.append(menu)  # offscreen Qt cannot grab the keyboard
        return w, page, d
    yield make


def center(page, nid) -> QPointF:
    r = page.canvas.lay.boxes[nid]
    return QPointF(r.x + r.w / 2, r.y + r.h / 2)


def drop(canvas, md: QMimeData, pos: QPointF) -> bool:
    actions = Qt.DropAction.MoveAction | Qt.DropAction.CopyAction
    enter = QDragEnterEvent(pos.toPoint(), actions, md, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(canvas, enter)
    move = QDragMoveEvent(pos.toPoint(), actions, md, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(canvas, move)
    ev = QDropEvent(pos, actions, md, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(canvas, ev)
    return move.isAccepted() and ev.isAccepted()


def check_page(page) -> dict:
    """What the Node page shows of the 3 x 3 x 10 node: the checks every size must pass (scrolling allowed)."""
    cv = page.canvas
    pic = cv.picture
    assert sum(n.kind == "coa" for n in pic.nodes.values()) == 10 and len(pic.interfaces()) == 3
    assert sum(n.kind == "hoa" for n in pic.nodes.values()) == 3
    assert cv.lay.width <= cv.width() and cv.lay.height <= cv.height()  # the canvas holds it all (it may scroll)
    assert_readable(pic, cv.lay, cv.width(), cv.height())
    fm = cv.metrics()
    shown = {}
    for nid, r in cv.lay.labels.items():  # what is drawn: the label elided to its rectangle
        shown[nid] = fm.elidedText(pic.nodes[nid].label, Qt.TextElideMode.ElideRight, r.w)
        assert fm.horizontalAdvance(shown[nid]) <= r.w + 0.5
    assert cv.accessibleName() and "3 home addresses" in cv.accessibleDescription()
    return {"orientation": cv.lay.orientation, "scrolls": cv.minimumHeight() > 0 or cv.minimumWidth() > 0,
            "page": [page.width(), page.height()],
            "coa_labels": [shown[i] for i in pic.columns[2]]}


def test_readable_in_the_test_window(win):
    """At the default size on the test session's offscreen screen (800 x 800: a narrow, low Node tab)."""
    _w, page, _d = win()
    got = check_page(page)
    assert all(len(t) >= 13 for t in got["coa_labels"]), got  # 12 characters and the ellipsis, at least
    assert not page.canvas.grab().isNull()


SCRIPT = """
import json, sys
sys.path.insert(0, {tests!r})
from PySide6.QtWidgets import QApplication
app = QApplication([])
import pytest
from test_nodeview import Engine, check_page, fill
from mhgui.core.state import StateStore
from mhgui.ui.window import LiveController, MainWindow
store = StateStore()
fill(store)
c = LiveController(store, lambda: 100.0, daemon=Engine())
w = MainWindow(c)
w.show()
page = w.lazy_tabs.ensure("Node")
w.tabs.setCurrentWidget(page)
for _ in range(5):
    app.processEvents()
page.refresh()
app.processEvents()
got = check_page(page)
got["window"] = [w.width(), w.height()]
print("REPORT" + json.dumps(got))
c.close()
"""


def test_readable_at_the_window_default_size_on_1366x720(tmp_path):
    """The window on a 1366x720 screen (Qt's offscreen platform given that screen, in a child process: the
    default size follows the screen): the Node tab shows the 3 x 3 x 10 node whole, without scrolling."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path
    conf = tmp_path / "screens.json"
    conf.write_text(json.dumps({"synchronousWindowSystemEvents": True, "windowFrameMargins": True,
                                "screens": [{"name": "test", "x": 0, "y": 0, "width": 1366, "height": 720,
                                             "logicalDpi": 96, "logicalBase": 96, "dpr": 1}]}))
    env = dict(os.environ, QT_QPA_PLATFORM=f"offscreen:configfile={conf}", DBUS_SESSION_BUS_ADDRESS="disabled:",
               XDG_CONFIG_HOME=str(tmp_path / "xdg"), LANGUAGE="en", LC_ALL="C.UTF-8")
    tests = str(Path(__file__).resolve().parent)
    p = subprocess.run([sys.executable, "-c", SCRIPT.format(tests=tests)], env=env, capture_output=True, text=True,
                       timeout=120)
    out = [line for line in p.stdout.splitlines() if line.startswith("REPORT")]
    assert p.returncode == 0 and out, f"{p.stdout}\n{p.stderr}"
    got = json.loads(out[-1][len("REPORT"):])
    assert got["window"] == [1350, 680] and not got["scrolls"], got
    assert all(len(t) >= 13 for t in got["coa_labels"]), got


def test_dropping_a_home_address_on_an_interface_asks_the_rebinder(win):
    w, page, _d = win()
    asked = []
    w.rebinder.request = lambda hoa, ifname, preface="": asked.append((hoa, ifname))
    md = page.mime_for(f"hoa:{HOAS[1]}")  # what a drag from the picture carries
    assert bytes(md.data(HOA_MIME)).decode() == HOAS[1]
    assert not drop(page.canvas, md, center(page, f"coa:{COAS[0][1]}"))  # not an interface: refused
    assert asked == []
    assert drop(page.canvas, md, center(page, "if:3"))
    assert asked == [(HOAS[1], "wlan0")]
    moved = []
    w.move_flow = lambda flow_id, ifname: moved.append((flow_id, ifname))
    md = QMimeData()
    md.setData(FLOW_MIME, b"tcp:1.2.3.4")  # a connection dragged from the Flows tab
    assert drop(page.canvas, md, center(page, "if:4"))
    assert moved == [("tcp:1.2.3.4", "wwan0")]


def test_dropping_a_flow_binding_moves_it_with_its_own_selector(win):
    w, page, _d = win()
    sent = []
    w.flowbinder.request = sent.append
    md = page.mime_for(f"flow:{HOAS[0]}:1")
    assert bytes(md.data(FLOW_BINDING_MIME)).decode() == f"{HOAS[0]} 1"
    assert drop(page.canvas, md, center(page, "if:2"))
    (out,) = sent
    assert out.action == "flow-binding" and out.hoa == HOAS[0] and out.interfaces == ("eth0",)
    assert out.selector.source_port == (81, 81) or out.selector.source_port == 81


def test_keyboard_tab_to_a_home_address_and_move_it(win, qtbot):
    w, page, _d = win()
    asked = []
    w.rebinder.request = lambda hoa, ifname, preface="": asked.append((hoa, ifname))
    cv = page.canvas
    cv.setFocus(Qt.FocusReason.TabFocusReason)
    qtbot.waitUntil(cv.hasFocus)
    assert cv.focused == f"hoa:{HOAS[0]}"
    qtbot.keyClick(cv, Qt.Key.Key_Tab)  # the next movable node: HoA 0's first flow binding
    assert cv.focused == f"flow:{HOAS[0]}:1"
    qtbot.keyClick(cv, Qt.Key.Key_Tab)
    qtbot.keyClick(cv, Qt.Key.Key_Tab)
    assert cv.focused == f"hoa:{HOAS[1]}"
    assert HOAS[1] in cv.accessibleDescription()  # a screen reader hears the focused node
    qtbot.keyClick(cv, Qt.Key.Key_Return)
    menu = w.menus[-1]
    acts = {a.text(): a for a in menu.actions()}
    assert set(acts) >= {"eth0 (in use)", "wlan0", "wwan0"} and not list(acts.values())[0].isEnabled()  # the title line
    assert not acts["eth0 (in use)"].isEnabled()  # where it is bound now is not offered (issue 15.8)
    acts["wwan0"].trigger()
    assert asked == [(HOAS[1], "wwan0")]
    # arrows follow the drawing: across to the nearest binding and back, along the HoA column (row)
    rows = cv.lay.orientation == "rows"
    across, back = (Qt.Key.Key_Down, Qt.Key.Key_Up) if rows else (Qt.Key.Key_Right, Qt.Key.Key_Left)
    qtbot.keyClick(cv, across)
    assert cv.picture.nodes[cv.focused].kind == "binding"
    qtbot.keyClick(cv, back)
    assert cv.picture.nodes[cv.focused].column == 0
    cv.set_focused(f"hoa:{HOAS[1]}")
    qtbot.keyClick(cv, Qt.Key.Key_Left if rows else Qt.Key.Key_Up)
    assert cv.focused == f"flow:{HOAS[0]}:2"
    qtbot.keyClick(cv, Qt.Key.Key_M)  # M opens "Move to…" too
    assert len(w.menus) == 2 and "flow binding 2" in w.menus[-1].actions()[0].text()


def test_a_down_interface_is_offered_greyed_out_with_why(win):
    w, page, d = win()
    st = w.controller.store
    i = st.state.interfaces[3]
    st.apply(LinkUpsert(i.with_(carrier=False, oper_up=False, operstate="down")))
    w.controller.refresh()
    page.refresh()
    assert page.canvas.picture.nodes["if:3"].state == "down"
    menu = page.open_menu(f"hoa:{HOAS[0]}", QPoint(0, 0))
    wlan = next(a for a in menu.actions() if a.text().startswith("wlan0"))
    assert not wlan.isEnabled() and "down" in wlan.text()


def test_live_updates_without_relayout_when_nothing_changed(win, qtbot):
    w, page, d = win()
    n = page.rebuilds
    for _i in range(5):
        w.controller.refresh()
        page.refresh()
    assert page.rebuilds == n  # the same picture: not laid out again
    b = mcoa_bindings({(2, 0): BindingState.WAITING_ACK})
    d.emit_bindings(b)
    qtbot.waitUntil(lambda: page.rebuilds == n + 1)
    assert page.canvas.picture.nodes[f"bind:{HOAS[2]}:1"].state == "waiting"
    # hidden: nothing is built until the page is shown again
    w.tabs.setCurrentIndex(0)
    d.emit_bindings(mcoa_bindings())
    QApplication.processEvents()
    assert page.rebuilds == n + 1
    w.tabs.setCurrentWidget(page)
    qtbot.waitUntil(lambda: page.rebuilds == n + 2)


def test_tooltips_say_the_details_and_the_probe(win):
    w, page, _d = win()
    tip = page.tooltip("if:2")
    assert "eth0" in tip and "12 ms" in tip and "registered" in tip
    assert HOAS[0] in page.tooltip(f"hoa:{HOAS[0]}")


def test_without_a_mobility_daemon(win):
    w, page, _d = win(daemon=None)
    pic = page.canvas.picture
    assert [pic.nodes[i].kind for i in pic.columns[1]] == ["note"]
    assert not any(n.movable for n in pic.nodes.values())
    assert "No mobility daemon" in page.canvas.accessibleDescription()
    menu = page.open_menu(f"hoa:{HOAS[0]}", QPoint(0, 0))
    assert all(not a.isEnabled() for a in menu.actions())  # details only: nothing to move
    md = QMimeData()
    md.setData(HOA_MIME, HOAS[0].encode())
    asked = []
    w.rebinder.request = lambda hoa, ifname, preface="": asked.append((hoa, ifname))
    drop(page.canvas, md, center(page, "if:2"))
    assert asked == [(HOAS[0], "eth0")]  # the rebinder says "no mobility daemon" itself


@pytest.mark.parametrize("base,text", [("#ffffff", "#000000"), ("#fcfcfc", "#232629"), ("#1b1e20", "#fcfcfc"),
                                       ("#000000", "#ffffff"), ("#808080", "#000000")])
def test_state_colours_contrast_with_the_base(base, text):
    pal = QPalette()
    pal.setColor(QPalette.ColorRole.Base, QColor(base))
    pal.setColor(QPalette.ColorRole.Text, QColor(text))
    cols = state_colours(pal)
    assert set(cols) == {"registered", "waiting", "refused", "down", "backup", "idle"}
    for st, c in cols.items():
        assert contrast_ratio(c, QColor(base)) >= 4.5, (st, c.name())
    if base != "#808080":  # hues stay apart where there is room for them
        assert len({c.name() for c in cols.values()}) == 6


def test_a_wide_low_page_draws_rows_as_figure_1_and_the_arrows_follow(win, qtbot):
    """The Node tab on a 1366x720 screen is wide and low (about 1330 x 150): the picture turns into rows,
    top to bottom as the draft's Figure 1, in a font one point smaller if needed; still nothing overlaps."""
    from mhgui.ui.nodeview import NodePage
    w, _page, _d = win()
    page = NodePage(w)
    qtbot.addWidget(page)
    page.resize(1328, 150)
    page.show()
    qtbot.waitUntil(lambda: page.canvas.lay is not None)
    cv = page.canvas
    assert cv.lay.orientation == "rows" and cv.minimumHeight() == 0
    assert_readable(cv.picture, cv.lay, cv.width(), cv.height())
    cv.setFocus()
    qtbot.waitUntil(cv.hasFocus)
    assert cv.focused == f"hoa:{HOAS[0]}"
    qtbot.keyClick(cv, Qt.Key.Key_Right)  # along the row: the next node of the home address row
    assert cv.focused == f"flow:{HOAS[0]}:1"
    qtbot.keyClick(cv, Qt.Key.Key_Down)  # across: the nearest binding under it
    assert cv.picture.nodes[cv.focused].kind == "binding"


@pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints", "This plugin does not support raise")
def test_hovering_shows_the_details(win, qtbot):
    from PySide6.QtGui import QHelpEvent
    from PySide6.QtWidgets import QToolTip
    w, page, _d = win()
    cv = page.canvas
    pos = center(page, "if:3").toPoint()
    QApplication.sendEvent(cv, QHelpEvent(QHelpEvent.Type.ToolTip, pos, cv.mapToGlobal(pos)))
    qtbot.waitUntil(QToolTip.isVisible)
    assert "wlan0" in QToolTip.text() and "30 ms" in QToolTip.text() and "10 % loss" in QToolTip.text()
    QToolTip.hideText()
