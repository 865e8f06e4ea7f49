"""A populated main window for the desktop-convention tests (layout, contrast, accessible names, export):
three interfaces, two home addresses, a connected daemon driver with several care-of addresses
(BIDs, RFC 5648) and six bindings, flows, rules, a failover log.
"""

from __future__ import annotations

from mhgui.core.bindings import Binding, BindingState
from mhgui.core.capabilities import DaemonCapabilities
from mhgui.core.model import Address, AddressFlag, HomeAddress, Interface, InterfaceKind
from mhgui.core.state import AddressUpsert, HomeAddressesSet, LinkUpsert, StateStore
from mhgui.daemons.base import DaemonDriver, DaemonStatus

NOW = [100.0]
HOAS = ("2001:db8:100::10", "2001:db8:100::11")
COAS = {2: "2001:db8:a::5", 3: "2001:db8:b::5", 4: "2001:db8:c::5"}


def clock() -> float:
    return NOW[0]


class ShownDriver(DaemonDriver):
    """A connected engine-like driver whose bindings the test sets (nothing is asked of a daemon)."""

    name = "engine"

    def __init__(self, bindings=()) -> None:
        super().__init__()
        self._status = DaemonStatus("engine", node="mn", reachable=True, state="connected")
        self._bindings = tuple(bindings)

    @property
    def capabilities(self) -> DaemonCapabilities:
        return DaemonCapabilities(name="engine", connected=True, per_hoa_choice=True, multiple_coas=True,
                                  runtime_rebind=True, failover=True)

    def raw_bindings(self) -> list:
        return []

    def uplinks(self) -> list[dict]:  # the engine's GetUplinks as last read
        return [{"name": n, "coa6": COAS[i], "family": 6, "reachable": i != 4, "rtt_ms": 12.0 + i, "loss": 0.0}
                for i, n in ((2, "eth0"), (3, "wlan0"), (4, "wwan0"))]

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def plan_rebind(self, hoa, ifname, live):
        raise NotImplementedError

    async def rebind(self, plan, **kw):
        raise NotImplementedError


def bindings() -> list[Binding]:
    out = []
    states = (BindingState.REGISTERED, BindingState.WAITING_ACK, BindingState.REGISTERED)
    for h in HOAS:
        for bid, (ifindex, coa) in enumerate(COAS.items(), start=1):
            out.append(Binding(h, coa, "2001:db8:100::1", bid=bid, bid_priority=10 * bid, lifetime=600,
                               lifetime_remaining=500 - bid, seq=bid, state=states[bid - 1], flags=("A", "H"),
                               observed_at=NOW[0]))
    return out


def fill(store: StateStore) -> None:
    store.apply(LinkUpsert(Interface(2, "eth0", InterfaceKind.ETHERNET, True, True, True, "up")))
    store.apply(LinkUpsert(Interface(3, "wlan0", InterfaceKind.WIFI, True, True, True, "up")))
    store.apply(LinkUpsert(Interface(4, "wwan0", InterfaceKind.WWAN, False, False, False, "down")))
    store.apply(HomeAddressesSet(tuple(HomeAddress(h, 64, "2001:db8:100::1") for h in HOAS)))
    for ifindex, coa in COAS.items():
        store.apply(AddressUpsert(Address(ifindex, coa, 64, valid_until=7200.0, preferred_until=3600.0)))
        store.apply(AddressUpsert(Address(ifindex, "fe80::" + str(ifindex), 64)))
    store.apply(AddressUpsert(Address(3, "2001:db8:b::99", 64, flags=AddressFlag.TEMPORARY)))
    store.apply(AddressUpsert(Address(2, "2001:db8:a::77", 64, flags=AddressFlag.TENTATIVE)))


def window(*, daemon: bool = True, flows: bool = True):
    """(MainWindow, LiveController) with the world above, not shown."""
    from mhgui.core.flows import Flow
    from mhgui.ui.window import LiveController, MainWindow
    store = StateStore()
    fill(store)
    drv = ShownDriver(bindings()) if daemon else None
    c = LiveController(store, clock, daemon=drv)
    if drv is not None:
        c.bindings.set_bindings(c._resolved(drv.bindings()))
    win = MainWindow(c)
    if drv is not None:
        win._on_daemon_status(drv.status)
    if flows:
        fl = [Flow("tcp", 10 + i, COAS[2 + i % 2], 40000 + i, "2001:db8:9::1", 443, "ESTAB", inode=1 + i)
              for i in range(6)]
        c.flows.apply({f.id: f for f in fl})
    win.rules_model.set_rules([{"id": "r1", "destinations": ["2001:db8:9::/48"], "interface": "wlan0",
                                "in_kernel": True},
                               {"id": "r2", "destinations": ["198.51.100.7"], "interface": "wwan0",
                                "in_kernel": False, "status": "interface down"}])
    c.refresh()
    return win, c


def layout_report(win) -> dict:
    """What is cut at the window's current size (issue 15.5): ``problems`` (one line each; empty: nothing),
    ``binding_rows`` (whole rows the binding table shows), ``checked`` (what was looked at)."""
    from PySide6.QtWidgets import QAbstractItemView, QGroupBox, QTableView, QTreeView
    problems, checked = [], []
    screen = win.screen().availableGeometry()
    if not screen.contains(win.frameGeometry()):
        problems.append(f"the window {win.frameGeometry()} is not inside the screen's free area {screen}")
    central = win.centralWidget()

    def visible_part(w):
        """The part of ``w`` (its coordinates) not clipped by any of its parents up to the window."""
        from PySide6.QtCore import QPoint, QRect
        r = QRect(w.mapTo(win, QPoint(0, 0)), w.size())
        p = w.parentWidget()
        while p is not None and p is not win:
            r = r.intersected(QRect(p.mapTo(win, QPoint(0, 0)), p.size()))
            p = p.parentWidget()
        r = r.intersected(win.rect())
        return r.translated(-w.mapTo(win, QPoint(0, 0)))

    def inside(w, name: str) -> None:
        checked.append(name)
        if not w.isVisible():
            return
        r = w.rect().translated(w.mapTo(central, w.rect().topLeft()))
        if not central.rect().contains(r):
            problems.append(f"{name} {r} is outside the window's area {central.rect()}")
        if w.height() < max(8, w.minimumSizeHint().height()) or w.width() < w.minimumSizeHint().width():
            problems.append(f"{name} is squeezed: {w.size()} < its minimum {w.minimumSizeHint()}")
        if visible_part(w) != w.rect():
            problems.append(f"{name} is partly hidden: visible {visible_part(w)} of {w.rect()}")

    for g in central.findChildren(QGroupBox):
        inside(g, f"group '{g.title()}'")
    inside(win.tabs, "the tabs")
    for lab in (win.headline, win.summary):
        inside(lab, f"label {lab.objectName() or lab.text()[:20]!r}")
    for i in range(win.tabs.count()):
        win.tabs.setCurrentIndex(i)
        from PySide6.QtWidgets import QApplication
        QApplication.processEvents()
        for v in central.findChildren(QAbstractItemView):
            if not isinstance(v, (QTableView, QTreeView)) or not v.isVisible():
                continue
            h = v.horizontalHeader() if isinstance(v, QTableView) else v.header()
            name = f"table '{v.accessibleName() or v.objectName()}' (tab {win.tabs.tabText(i)!r})"
            inside(v, name)
            if h.isHidden() or h.height() <= 0:
                problems.append(f"{name}: its header is not shown")
            elif visible_part(h) != h.rect():
                problems.append(f"{name}: its header is cut ({visible_part(h)} of {h.rect()})")
            if v.viewport().height() < v.fontMetrics().height() + 4:
                problems.append(f"{name}: no room for a row ({v.viewport().height()} px)")
    win.tabs.setCurrentIndex(0)
    bv = win.bindings_view
    rows = bv.viewport().height() // max(1, bv.rowHeight(0) or bv.verticalHeader().defaultSectionSize())
    if rows < 4:
        problems.append(f"the binding table shows {rows} rows (at least 4 wanted)")
    iv = win.interfaces_view
    if_rows = iv.viewport().height() // max(1, iv.rowHeight(0) or iv.verticalHeader().defaultSectionSize())
    return {"problems": problems, "binding_rows": rows, "checked": checked,
            "interface_rows": [if_rows, iv.model().rowCount()], "bindings": bv.model().rowCount(),
            "size": [win.width(), win.height()], "screen": [screen.width(), screen.height()],
            "minimum": [win.minimumSizeHint().width(), win.minimumSizeHint().height()]}
