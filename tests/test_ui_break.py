"""Trying to break the new UI work of issue 15 (the node picture, health, desktop conventions) as an adversary
and a picky user: hostile engine answers, forged drops from other applications, odd paths, a hostile
D-Bus peer, a page that fails while it is built. Each test failed before its fix."""

from __future__ import annotations

import asyncio
import shutil

import pytest
from PySide6.QtCore import QMimeData

from mhgui.core.analysis import analyse
from mhgui.core.nodepicture import build_picture, layout
from mhgui.ui import autostart
from mhgui.ui.models import HOA_MIME
from mhgui.ui.nodeview import FLOW_BINDING_MIME
from test_nodepicture import HOAS, mcoa_bindings, node_3x3x10
from test_nodeview import center, drop, win  # noqa: F401 - win: the fixture

pytestmark = pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints")


# ------------------------------------------------------------------------------------ the node picture
#: GetBindings / GetFlowBindings / GetUplinks objects whose fields have the wrong JSON type (an engine bug, a
#: version skew, a hostile peer on the bus): a number where a list of names is expected, a list for a state
HOSTILE = {
    "backup is a number": dict(engine_bindings=[{"hoa": HOAS[0], "backup": 5}]),
    "bound_to is a number": dict(flow_bindings=[{"hoa": HOAS[0], "fid": 1, "bound_to": 7}]),
    "bids is a number": dict(flow_bindings=[{"hoa": HOAS[0], "fid": 1, "bids": 7}]),
    "uplinks is a number": dict(flow_bindings=[{"hoa": HOAS[0], "fid": 1, "uplinks": 7}]),
    "state is a list": dict(flow_bindings=[{"hoa": HOAS[0], "fid": 1, "state": ["bound"]}]),
    "backup is a string": dict(engine_bindings=[{"hoa": HOAS[0], "backup": "eth0"}]),
}


@pytest.mark.parametrize("kw", HOSTILE.values(), ids=HOSTILE.keys())
def test_engine_fields_of_the_wrong_type_are_skipped_not_raised(kw):
    st = node_3x3x10()
    p = build_picture(st, analyse(st, 0.0), mcoa_bindings(), daemon="engine", connected=True, **kw)
    layout(p, 900, 500)
    assert len(p.interfaces()) == 3 and f"hoa:{HOAS[0]}" in p.nodes
    # a string is no list of interface names: "eth0" does not make e, t, h and 0 backups, nor eth0
    if "backup" in str(kw):
        assert "Listed as a backup uplink" not in "".join(d for n in p.interfaces() for d in n.details)


def test_with_a_thousand_care_of_addresses_the_bound_ones_stay_in_the_picture():
    """1,000 more CoAs on eth0 whose addresses sort before the bound ones: the column keeps 40, and those must
    include every bound CoA (else the bindings lose their edge and the picture no longer shows the path)."""
    import ipaddress
    from mhgui.core.model import Address
    st = node_3x3x10()
    for n in range(1000):
        a = Address(2, str(ipaddress.IPv6Address("2001:db8:1::") + n), 64)
        st.addresses[a.key] = a
    bindings = mcoa_bindings()
    p = build_picture(st, analyse(st, 0.0), bindings, daemon="engine", connected=True)
    coas = [p.nodes[i] for i in p.columns[2]]
    assert len(coas) == 41 and coas[-1].kind == "more" and "970" in coas[-1].label
    shown = {n.label for n in coas}
    assert {x.coa for x in bindings} <= shown
    bound_edges = [e for e in p.edges if e.source.startswith("bind:") and e.target.startswith("coa:")]
    assert len(bound_edges) == len(bindings)


def test_the_move_menu_survives_a_flow_binding_with_a_malformed_bound_to(win):  # noqa: F811
    w, page, d = win()
    d.flow_bindings = lambda: [{"hoa": HOAS[0], "fid": 1, "bound_to": 7, "state": "bound", "bids": [2]}]
    page.refresh()
    nid = f"flow:{HOAS[0]}:1"
    assert nid in page.canvas.picture.nodes
    names = [n for n, _why in page.choices(nid)]
    assert names == ["eth0", "wlan0", "wwan0"]


def forged(fmt: str, payload: bytes) -> QMimeData:
    md = QMimeData()
    md.setData(fmt, payload)
    return md


@pytest.mark.parametrize("payload", [f"{HOAS[0]} ²".encode(), f"{HOAS[0]} ١".encode(), b"\xff\xfe 1" * 3,
                                     f"{HOAS[0]} 99999999999999999999999".encode()],
                         ids=["superscript-two", "arabic-indic-one", "not-utf8", "huge"])
def test_a_forged_flow_binding_drop_is_refused_in_words(win, payload):  # noqa: F811
    """Another application drops our private MIME type with garbage: "²".isdigit() is True but int("²")
    raises; nothing may be moved, the window says why, nothing raises."""
    w, page, _d = win()
    sent, said = [], []
    w.flowbinder.request = sent.append
    w.move_flow = lambda *a: sent.append(a)
    page._say = lambda text, ok: said.append(text)
    # refused, not accepted: a "move" accepted tells the other application to delete what it dragged
    assert not drop(page.canvas, forged(FLOW_BINDING_MIME, payload), center(page, "if:2"))
    assert sent == [] and said


@pytest.mark.parametrize("payload", [b"rm -rf /" * 10000, b"2001:db8:dead::1", b"\x00\x01", b""],
                         ids=["huge", "not-ours", "binary", "empty"])
def test_a_forged_home_address_drop_is_not_sent_to_the_daemon(win, payload):  # noqa: F811
    """Only a home address of this node is moved; a text/uri-list or garbage is refused at the door."""
    w, page, _d = win()
    asked, said = [], []
    w.rebinder.request = lambda hoa, ifname, preface="": asked.append((hoa, ifname))
    page._say = lambda text, ok: said.append(text)
    assert not drop(page.canvas, forged(HOA_MIME, payload), center(page, "if:3"))
    assert asked == [] and said and max(map(len, said)) < 300
    uri = QMimeData()
    uri.setUrls([__import__("PySide6.QtCore", fromlist=["QUrl"]).QUrl("file:///etc/passwd")])
    assert not drop(page.canvas, uri, center(page, "if:3"))
    # the table's own drag (its address, written as configured) still works
    drop(page.canvas, forged(HOA_MIME, HOAS[1].upper().encode()), center(page, "if:3"))
    assert asked == [(HOAS[1], "wlan0")]


# ------------------------------------------------------------------------------------ autostart
@pytest.mark.parametrize("argv", [["/tmp/a\nb/mhgui", "--tray"], ["/opt/caf\udce9/mhgui", "--tray"]],
                         ids=["line-break", "not-utf8"])
def test_an_unwritable_command_is_said_not_raised(qloop, tmp_path, monkeypatch, argv):
    """set_autostart "never raises": an install path with a line break or bytes that are not UTF-8 (a
    surrogate-escaped sys.argv[0]) cannot go in a desktop entry; the user is told."""
    monkeypatch.setattr(autostart, "command", lambda: list(argv))
    env = {"XDG_CONFIG_HOME": str(tmp_path)}
    r = qloop.run_until_complete(autostart.set_autostart(True, flatpak=False, environ=env))
    assert not r.ok and not r.enabled and r.how == "file" and r.message
    assert not autostart.is_enabled(env)


# ------------------------------------------------------------------------------------ lazily built tabs
def test_a_page_that_fails_while_built_shows_the_error_and_can_be_retried(qtbot):
    """A page whose factory raises (a module that cannot be imported: an update half-installed) leaves an empty
    tab and a traceback on the terminal only; it must say so in the tab, and "Try again" must build it."""
    from PySide6.QtWidgets import QLabel, QPushButton, QTabWidget
    from mhgui.ui.lazytabs import LazyTabs, lazy_page
    tabs = QTabWidget()
    qtbot.addWidget(tabs)
    lazy = LazyTabs(tabs)
    tabs.addTab(QLabel("first"), "First")
    broken = {"yes": True}

    def factory():
        if broken["yes"]:
            return lazy_page("mhgui.ui.no_such_page_module", "page")()
        return QLabel("built")
    i = lazy.add("Second", factory)
    tabs.show()
    qtbot.waitExposed(tabs)
    tabs.setCurrentIndex(i)  # an exception escaping here fails the test (pytest-qt)
    slot = tabs.widget(i)
    texts = " ".join(w.text() for w in slot.findChildren(QLabel))
    assert "no_such_page_module" in texts and not lazy.is_built(i)
    (retry,) = [b for b in slot.findChildren(QPushButton)]
    assert retry.accessibleName()
    tabs.setCurrentIndex(0)
    tabs.setCurrentIndex(i)  # tried again: fails again, said again (once)
    assert len(tabs.widget(i).findChildren(QPushButton)) == 1
    broken["yes"] = False
    retry.click()
    assert lazy.is_built(i) and tabs.widget(i).text() == "built" and tabs.currentIndex() == i


# ------------------------------------------------------------------------------------ the Background portal
needs_bus = pytest.mark.skipif(shutil.which("dbus-daemon") is None, reason="needs dbus-daemon")


async def _fake_portal_and_forger(address: str, forged_response: int, real_response: int) -> None:
    """On the bus at ``address``: a Background portal that answers ``real_response`` 0.2 s after the reply,
    and another client that, as soon as the request is made, sends a Response of its own on the request's
    path (it learnt the path from the bus, as a monitor can)."""
    from dbus_fast import Message, MessageType, Variant
    from dbus_fast.aio import MessageBus
    portal = await MessageBus(bus_address=address).connect()
    forger = await MessageBus(bus_address=address).connect()
    await portal.request_name("org.freedesktop.portal.Desktop")

    def response(path: str, code: int, granted: bool) -> Message:
        return Message.new_signal(path, "org.freedesktop.portal.Request", "Response", "ua{sv}",
                                  [code, {"background": Variant("b", granted), "autostart": Variant("b", granted)}])

    def handler(msg: Message):
        if msg.message_type != MessageType.METHOD_CALL or msg.member != "RequestBackground":
            return None
        token = msg.body[1]["handle_token"].value
        path = "/org/freedesktop/portal/desktop/request/%s/%s" % (msg.sender[1:].replace(".", "_"), token)
        forger.send(response(path, forged_response, True))  # first: the forgery
        asyncio.get_running_loop().call_later(0.2, lambda: portal.send(response(path, real_response, False)))
        return Message.new_method_return(msg, "o", [path])

    portal.add_message_handler(handler)
    return portal, forger


@needs_bus
def test_a_portal_response_from_another_sender_is_ignored(qloop, tmp_path, monkeypatch):
    """Anyone on the session bus may emit a signal on any path: only the portal's own Response counts (a forged
    "granted" must not turn on the start at login when the user cancelled)."""
    import os
    from dbusmock.testcase import BusType, PrivateDBus
    from mhgui.sources.portal import request_background
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", os.environ.get("DBUS_SESSION_BUS_ADDRESS", "disabled:"))
    bus = PrivateDBus(BusType.SESSION)
    bus.start()
    try:
        async def run():
            portal, forger = await _fake_portal_and_forger(bus.address, 0, 1)
            try:
                return await request_background(autostart=True, commandline=["mhgui", "--tray"],
                                                bus_address=bus.address, timeout=10)
            finally:
                portal.disconnect()
                forger.disconnect()
        r = qloop.run_until_complete(asyncio.wait_for(run(), 20))
    finally:
        bus.stop()
    assert r.response == 1 and not r.ok and not r.autostart


def test_an_entry_turned_off_by_the_desktop_is_not_shown_as_on(tmp_path):
    """GNOME's Startup Applications (and Tweaks) turn an entry off with X-GNOME-Autostart-enabled=false, without
    deleting it; the desktop then does not start the app, so the box must not say it does."""
    env = {"XDG_CONFIG_HOME": str(tmp_path)}
    path = autostart.write_entry(["mhgui", "--tray"], env)
    assert autostart.is_enabled(env)
    with open(path) as f:
        text = f.read()
    with open(path, "w") as f:
        f.write(text.replace("X-GNOME-Autostart-enabled=true", "X-GNOME-Autostart-enabled = false"))
    assert not autostart.is_enabled(env)


def test_a_drop_follows_the_move_menu_an_interface_it_greys_out_is_refused(win):  # noqa: F811
    """The keyboard's "Move to…" greys out the interface a HoA is already on ("in use") and down ones; a drag
    onto the same interface asked "Bind it through up1?" and said in the same dialog that it is bound there
    already (seen in the lab). A drop must be refused the same way, with the same reason."""
    w, page, _d = win()
    asked, said = [], []
    w.rebinder.request = lambda hoa, ifname, preface="": asked.append((hoa, ifname))
    page._say = lambda text, ok: said.append(text)
    hoa = HOAS[0]
    choices = dict(page.choices(f"hoa:{hoa}"))
    greyed = [n for n, why in choices.items() if why is not None]
    fine = [n for n, why in choices.items() if why is None]
    assert greyed and fine
    ifnode = {n.ifname: n.id for n in page.canvas.picture.interfaces()}
    assert not drop(page.canvas, page.mime_for(f"hoa:{hoa}"), center(page, ifnode[greyed[0]]))
    assert asked == [] and said and choices[greyed[0]] in said[-1]
    assert drop(page.canvas, page.mime_for(f"hoa:{hoa}"), center(page, ifnode[fine[0]]))
    assert asked == [(hoa, fine[0])]


def test_in_the_window_a_failing_page_is_said_and_the_other_tabs_work(win, monkeypatch):  # noqa: F811
    from PySide6.QtWidgets import QLabel
    import mhgui.ui.health_view as hv
    w, page, _d = win()

    def broken(window):
        raise RuntimeError("the health page broke")
    monkeypatch.setattr(hv, "health_page", broken)
    i = next(k for k in range(w.tabs.count()) if w.tabs.tabText(k).replace("&", "") == "Health")
    w.tabs.setCurrentIndex(i)
    assert "the health page broke" in " ".join(x.text() for x in w.tabs.widget(i).findChildren(QLabel))
    w.tabs.setCurrentWidget(page)  # the rest goes on
    assert w.tabs.currentWidget() is page and page.canvas.picture is not None


@pytest.mark.parametrize("path", ["/opt/a\tb/mhgui", "/opt/a\x01b/mhgui", "/opt/a\x7fb/mhgui"], ids=["tab", "soh", "del"])
def test_a_control_character_in_the_command_is_refused_not_written(path, tmp_path, qloop, monkeypatch):
    """The Desktop Entry Specification allows no control character in a string value (desktop-file-validate:
    "contains invalid characters"): a tab in the install path gave an entry the desktop may reject."""
    with pytest.raises(ValueError):
        autostart.desktop_entry([path, "--tray"])
    monkeypatch.setattr(autostart, "command", lambda: [path, "--tray"])
    env = {"XDG_CONFIG_HOME": str(tmp_path)}
    r = qloop.run_until_complete(autostart.set_autostart(True, flatpak=False, environ=env))
    assert not r.ok and not autostart.is_enabled(env)


def test_a_drop_on_an_interface_that_went_away_during_the_drag_moves_nothing(win, qtbot):  # noqa: F811
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QDragEnterEvent, QDragMoveEvent, QDropEvent
    from PySide6.QtWidgets import QApplication
    from mhgui.core.state import LinkRemoved
    w, page, _d = win()
    asked, said = [], []
    w.rebinder.request = lambda hoa, ifname, preface="": asked.append((hoa, ifname))
    page._say = lambda text, ok: said.append(text)
    cv = page.canvas
    md = page.mime_for(f"hoa:{HOAS[0]}")
    pos = center(page, "if:4")  # wwan0
    acts = Qt.DropAction.MoveAction | Qt.DropAction.CopyAction
    args = (acts, md, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(cv, QDragEnterEvent(pos.toPoint(), *args))
    QApplication.sendEvent(cv, QDragMoveEvent(pos.toPoint(), *args))
    assert cv.drop_target == "if:4"
    w.controller.store.apply(LinkRemoved(4))  # the modem is unplugged while the mouse button is held
    w.controller.refresh()
    qtbot.waitUntil(lambda: "if:4" not in cv.picture.nodes)
    ev = QDropEvent(pos, *args)
    QApplication.sendEvent(cv, ev)
    assert not any(i == "wwan0" for _h, i in asked)
    assert cv.drop_target is None
    cv.grab()  # paints without the vanished target
