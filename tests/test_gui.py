"""The window (pytest-qt, offscreen): models pass qtmodeltester; the header follows netlink."""

from __future__ import annotations

import asyncio

import pytest
from PySide6.QtCore import Qt

from mhgui.core.model import Address, AddressFlag, HomeAddress, Interface, InterfaceKind
from mhgui.core.state import AddressRemoved, AddressUpsert, HomeAddressesSet, LinkUpsert, NetlinkSnapshot, StateStore
from mhgui.sources.netlink import NetlinkSource
from mhgui.ui.models import AddressModel, InterfaceModel, KeyRole
from mhgui.ui.window import LiveController, MainWindow
from netns import lab  # noqa: F401  (fixture)

NOW = [100.0]


def clock():
    return NOW[0]


def fill(store: StateStore) -> None:
    store.apply(LinkUpsert(Interface(2, "eth0", InterfaceKind.ETHERNET, True, True, True, "up")))
    store.apply(LinkUpsert(Interface(3, "wlan0", InterfaceKind.WIFI, True, True, True, "up")))
    store.apply(HomeAddressesSet((HomeAddress("2001:db8:100::10", 64, "2001:db8:100::1"),)))
    store.apply(AddressUpsert(Address(2, "2001:db8:a::5", 64, valid_until=160.0, preferred_until=130.0)))
    store.apply(AddressUpsert(Address(3, "2001:db8:b::5", 64)))
    store.apply(AddressUpsert(Address(3, "2001:db8:b::99", 64, flags=AddressFlag.TEMPORARY)))


def test_models_pass_qtmodeltester(qtbot, qtmodeltester):
    store = StateStore()
    fill(store)
    c = LiveController(store, clock)
    win = MainWindow(c)
    # the tester disconnects from the models at its teardown: keep them alive until then
    qtmodeltester.keep_alive = (c, win)
    for m in (c.interfaces, c.addresses, c.homes, win.goals_model, win.issues_model):
        assert m.rowCount() > 0
        qtmodeltester.check(m, force_py=True)
    c.close()


@pytest.mark.parametrize("which", ["interfaces", "addresses"])
def test_models_stay_consistent_through_batches_renames_and_the_countdown(qtbot, qtmodeltester, which):
    """The tester watches every signal while one re-dump inserts, removes and changes many rows at once
    (issue 14: one signal per run of rows), an interface is renamed and lifetimes count down."""
    now = [100.0]
    store = StateStore()
    fill(store)
    c = LiveController(store, lambda: now[0])
    qtmodeltester.keep_alive = c
    qtmodeltester.check(getattr(c, which), force_py=True)  # one model per tester: it follows its signals
    links = tuple(store.state.interfaces.values()) + (Interface(4, "wwan0", InterfaceKind.WWAN, True, True, True, "up"),)
    addrs = [Address(i, f"2001:db8:{i}:{n:x}::5", 64, valid_until=100.0 + 60 * n, preferred_until=100.0 + 30 * n)
             for i in (2, 3, 4) for n in range(0, 40, 3)]
    addrs.append(Address(3, "2001:db8:b::99", 64, flags=AddressFlag.TEMPORARY | AddressFlag.DEPRECATED))
    store.apply(NetlinkSnapshot(links, tuple(addrs)))
    assert [c.addresses.key_at(r) for r in range(c.addresses.rowCount())] == sorted(store.state.addresses)
    assert c.interfaces.index(c.interfaces.row_of(4), InterfaceModel.COL_ADDRS).data() == str(
        sum(a.ifindex == 4 for a in addrs))
    store.apply(LinkUpsert(Interface(4, "wwan1", InterfaceKind.WWAN, True, True, True, "up")))
    for dt in (1, 30, 600, 5000):
        now[0] += dt
        c.addresses.tick()
    c.refresh()
    store.apply(NetlinkSnapshot(links[:2], tuple(a for a in addrs if a.ifindex == 2 or a.key.address.endswith("::5"))))
    assert c.interfaces.row_of(4) is None and c.addresses.rowCount() == len(store.state.addresses)
    c.close()


def test_window_follows_store(qtbot):
    store = StateStore()
    c = LiveController(store, clock)
    win = MainWindow(c)
    qtbot.addWidget(win)
    fill(store)
    qtbot.waitUntil(lambda: win.headline.text().startswith("(n,1,n)"))
    assert "scenario 5.6" in win.headline.text()
    assert "2 care-of addresses" in win.headline.text()
    # the temporary address is listed, with its role
    roles = {c.addresses.index(r, 0).data(KeyRole).address: c.addresses.index(r, AddressModel.COL_ROLE).data()
             for r in range(c.addresses.rowCount())}
    assert roles["2001:db8:b::99"] == "temporary" and roles["2001:db8:a::5"] == "CoA"
    store.apply(AddressRemoved(next(k for k in store.state.addresses if k.address == "2001:db8:b::5")))
    # wlan0 keeps only a temporary address: it is no longer an active interface
    qtbot.waitUntil(lambda: win.headline.text().startswith("(1,1,1)"))
    assert "scenario 5.1" in win.headline.text()
    # the preferred lifetime ends: the address stops counting without any event
    NOW[0] = 140.0
    qtbot.waitUntil(lambda: win.headline.text().startswith("(0,1,0)"), timeout=3000)
    NOW[0] = 100.0
    c.close()


def test_only_changed_rows_are_signalled(qtbot):
    store = StateStore()
    fill(store)
    c = LiveController(store, clock)
    m = c.addresses
    seen = []
    m.dataChanged.connect(lambda a, b, *_: seen.append((a.row(), b.row())))
    m.modelReset.connect(lambda: seen.append("reset"))
    key = next(k for k in store.state.addresses if k.address == "2001:db8:b::5")
    store.apply(AddressUpsert(Address(3, "2001:db8:b::5", 64, flags=AddressFlag.DEPRECATED)))
    row = m.row_of(key)
    assert seen and all(s != "reset" and s[0] == s[1] == row for s in seen)
    c.close()


async def until(pred, timeout: float = 5.0, what: str = "condition") -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not pred():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


@pytest.mark.netns
def test_header_and_interfaces_follow_a_real_netlink_change(qtbot, qloop, lab):  # noqa: F811
    """Runs as the app does: one qasync loop drives Qt and the netlink source together."""
    import time
    store = StateStore()
    c = LiveController(store, time.monotonic)
    win = MainWindow(c)
    qtbot.addWidget(win)
    src = NetlinkSource(store.apply, netns=lab.ns)
    head = win.headline.text

    async def scenario():
        await src.start()
        try:
            up0 = lab.uplink("up0")
            up1 = lab.uplink("up1")
            await until(lambda: c.interfaces.row_of(up1) is not None, what="rows for up0 and up1")
            await until(lambda: head().startswith("(0,0,0)"), what="(0,0,0)")
            lab.ip("-6", "addr", "add", "2001:db8:1::10/64", "dev", "up0", "nodad")
            lab.ip("-6", "addr", "add", "2001:db8:2::10/64", "dev", "up1", "nodad")
            await until(lambda: head().startswith("(n,0,n)"), what=f"(n,0,n), have {head()}")
            assert c.interfaces.index(c.interfaces.row_of(up0), InterfaceModel.COL_USE).data() == "1 CoA"
            lab.ip("link", "set", "p-up1", "down", ns=lab.peer)
            await until(lambda: head().startswith("(1,0,1)"), what=f"(1,0,1), have {head()}")
            state = c.interfaces.index(c.interfaces.row_of(up1), InterfaceModel.COL_STATE).data()
            assert state == "no carrier"
        finally:
            await src.stop()

    loop = qloop
    try:
        loop.run_until_complete(scenario())
    finally:
        c.close()


def test_config_notes_and_errors_show_in_the_banner(qtbot):
    store = StateStore()
    c = LiveController(store, clock)
    win = MainWindow(c)
    qtbot.addWidget(win)
    assert win.banner.isHidden()
    note = "2001:db8:1::100: mip6d.conf (/etc/mip6d.conf:12) overrides the app settings (home agent 2001:db8:1::2 ignored)"
    store.apply(HomeAddressesSet((HomeAddress("2001:db8:1::100", 64, "2001:db8:1::1"),), (note,)))
    qtbot.waitUntil(lambda: not win.banner.isHidden())
    assert note in win.banner.text()
    win.set_error("Configuration problem: /etc/mip6d.conf:3: missing ';'")
    assert "mip6d.conf:3" in win.banner.text() and note in win.banner.text()
    c.close()


def test_address_cell_restyles_when_its_role_changes(qtbot):
    store = StateStore()
    fill(store)
    c = LiveController(store, clock)
    m = c.addresses
    key = next(k for k in store.state.addresses if k.address == "2001:db8:b::5")
    row = m.row_of(key)
    assert m.index(row, AddressModel.COL_ADDR).data(Qt.ItemDataRole.FontRole).bold()
    spans = []
    m.dataChanged.connect(lambda a, b, *_: spans.append((a.row(), a.column(), b.column())))
    store.apply(LinkUpsert(Interface(3, "wlan0", InterfaceKind.WIFI, True, False, False, "lowerlayerdown")))
    qtbot.waitUntil(lambda: m.index(row, AddressModel.COL_ROLE).data() == "unusable")
    assert (row, AddressModel.COL_ADDR, AddressModel.COL_ROLE) in spans
    assert m.index(row, AddressModel.COL_ADDR).data(Qt.ItemDataRole.FontRole).strikeOut()
    c.close()


def test_use_column_follows_the_coa_count(qtbot):
    store = StateStore()
    fill(store)
    c = LiveController(store, clock)
    m = c.interfaces
    use = lambda: m.index(m.row_of(3), InterfaceModel.COL_USE).data()  # noqa: E731
    assert use() == "1 CoA"
    store.apply(AddressUpsert(Address(3, "2001:db8:c::5", 64)))
    qtbot.waitUntil(lambda: use() == "2 CoAs")
    store.apply(AddressUpsert(Address(3, "2001:db8:c::6", 64)))  # same /64: still two CoAs
    c.refresh()
    assert use() == "2 CoAs"
    c.close()


def test_an_ipv4_only_link_and_a_waiting_modem_say_what_they_give(qtbot):
    """Issue 13.6 on screen: an IPv4-only interface's row says why it holds no CoA (UMIP takes IPv6 CoAs only),
    and a modem whose data interface does not exist yet is listed with that state."""
    from mhgui.core.state import NmDevice
    store = StateStore()
    fill(store)
    store.apply(LinkUpsert(Interface(5, "wwan0", InterfaceKind.WWAN, True, True, True, "up")))
    store.apply(AddressUpsert(Address(5, "100.64.7.9", 24, family=2, scope=0)))
    store.apply(NmDevice("/org/freedesktop/NetworkManager/Devices/9", 0, "cdc-wdm1", InterfaceKind.WWAN, 30))
    c = LiveController(store, clock)
    win = MainWindow(c)
    qtbot.addWidget(win)
    c.refresh()
    m = c.interfaces
    row = next(r for r in range(m.rowCount()) if m.index(r, m.COL_NAME).data() == "wwan0")
    cell = m.index(row, m.COL_USE)
    assert cell.data() == "IPv4 only: no CoA"
    assert "IPv4-only modem link" in cell.data(Qt.ItemDataRole.ToolTipRole)
    assert "Modem cdc-wdm1: no data interface yet: not connected" in win.modems_label.text()
    assert not win.modems_label.isHidden()
    c.close()


def test_small_things_users_hit(qtbot):
    """Issue 15.8: the Move-to menu greys out interfaces that cannot take a connection (saying why), one
    button shows every interface's connections again, a cancelled rebind is not shown as a failure."""
    from mhgui.core.flows import Flow
    store = StateStore()
    fill(store)
    store.apply(LinkUpsert(Interface(4, "wwan0", InterfaceKind.WWAN, False, False, False, "down")))
    c = LiveController(store, clock)
    win = MainWindow(c)
    qtbot.addWidget(win)
    shown = []
    win.show_menu = lambda menu, where: shown.append(menu)
    c.refresh()
    f = Flow("tcp", 10, "2001:db8:a::5", 40000, "2001:db8:9::1", 443, "ESTAB", inode=1)
    c.flows.apply({f.id: f})
    c.refresh()
    src = c.flows.index(c.flows.row_of(f.id), 0)
    menu = win._flow_menu(src, None)
    items = {a.text(): a.isEnabled() for a in menu.actions()[0].menu().actions()}
    assert items["wlan0"] and not items["eth0 (in use)"]  # the connection is on eth0: not offered again
    down = next(t for t in items if t.startswith("wwan0"))
    assert not items[down] and "down or has no carrier" in down
    iv = win.interfaces_view
    row = next(r for r in range(iv.model().rowCount()) if iv.model().index(r, 0).data() == "wlan0")
    iv.selectRow(row)
    assert win.flow_filter.interface == "wlan0" and not win.show_all_flows.isHidden()
    assert "on wlan0" in win.flow_count.text()
    win.show_all_flows.click()
    assert win.flow_filter.interface == "" and win.show_all_flows.isHidden()
    win.rebinder.progress.emit("Rebind cancelled: nothing was changed.", "neutral")
    from mhgui.ui.colours import tone_of
    assert tone_of(win.rebind_label) == "neutral"  # not the refusal's red (issue 15.8)
    c.close()


def test_the_rebind_dialog_says_each_thing_once(qtbot, monkeypatch):
    """Issue 15.8: moving a home-address flow with UMIP repeated in the dialog what the plan says below it."""
    from mhgui.core.flows import Flow
    from mhgui.core.moves import MoveOutcome
    store = StateStore()
    fill(store)
    c = LiveController(store, clock)
    win = MainWindow(c)
    qtbot.addWidget(win)
    f = Flow("tcp", 10, "2001:db8:100::10", 40000, "2001:db8:9::1", 443, "ESTAB", inode=1)
    c.flows.apply({f.id: f})
    summary = ("This connection keeps working: it uses the home address 2001:db8:100::10. umip cannot move one "
               "connection alone: every home address is rebound through wlan0, so every connection on a home "
               "address moves. The daemon restarts, which pauses them for a few seconds.")
    import mhgui.core.moves as moves  # the window imports it where it moves a flow (issue 14)
    monkeypatch.setattr(moves, "move_outcome", lambda *a, **k: MoveOutcome("rebind", summary, "wlan0",
                                                                            hoa="2001:db8:100::10"))
    asked = []
    win.rebinder.request = lambda hoa, ifname, preface="": asked.append(preface)
    win.move_flow(f.id, "wlan0")
    assert asked and "home address 2001:db8:100::10" in asked[0]
    assert "restarts" not in asked[0] and "every home address" not in asked[0]  # describe_plan says those
    c.close()


def test_a_refresh_redoes_only_what_changed(qtbot):
    """Issue 14: the window's refresh (every change and every second) keeps an incremental analysis: with
    nothing changed it is the same analysis, and after a change it equals a fresh one."""
    from mhgui.core.analysis import analyse
    store = StateStore()
    fill(store)
    c = LiveController(store, clock)
    c.refresh()
    first = c.analysis
    c.refresh()
    assert c.analysis is first  # nothing changed: nothing redone
    store.apply(AddressUpsert(Address(3, "2001:db8:b::7", 64)))
    c.refresh()
    fresh = analyse(store.state, clock())
    assert c.analysis is not first and (c.analysis.x, c.analysis.y, c.analysis.z, c.analysis.roles) == \
        (fresh.x, fresh.y, fresh.z, fresh.roles)
    c.close()
