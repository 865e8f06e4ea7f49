"""Qt table models over the live state (model/view; narrow ``dataChanged``).

Each model keeps its own row list in a stable order and applies
:class:`~mhgui.core.state.Change` lists incrementally: inserts and removals
touch only their rows, changes emit ``dataChanged`` for one row; the
analysis (roles, at-home) is refreshed for the rows whose result changed.
"""

from __future__ import annotations

import bisect
from typing import Any, Callable

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QBrush, QColor, QFont

from ..core.analysis import Analysis, AddressRole
from ..core.model import Address, AddressKey, Interface, flag_names
from ..core.state import Change, StateStore

Index = QModelIndex | QPersistentModelIndex

#: custom roles
KeyRole = Qt.ItemDataRole.UserRole + 1      # the row's key (ifindex or AddressKey)
SortRole = Qt.ItemDataRole.UserRole + 2     # a sortable value
AddrRoleRole = Qt.ItemDataRole.UserRole + 3  # the address role string ("coa", ...)

ROLE_STYLE: dict[str, tuple[str, str, bool]] = {
    # role: (label, colour, bold)
    "hoa": ("HoA", "#1b5e20", True),
    "coa": ("CoA", "#0d47a1", True),
    "coa-deprecated": ("CoA (deprecated)", "#e65100", False),
    "home-link": ("home link", "#2e7d32", False),
    "temporary": ("temporary", "#616161", False),
    "tentative": ("tentative (DAD)", "#f57f17", False),
    "link-local": ("link-local", "#757575", False),
    "unusable": ("unusable", "#b71c1c", False),
    "other": ("other", "#424242", False),
}


def _fmt_lft(seconds: float | None) -> str:
    if seconds is None:
        return "forever"
    s = int(seconds)
    if s >= 86400:
        return f"{s // 86400}d {s % 86400 // 3600}h"
    if s >= 3600:
        return f"{s // 3600}h {s % 3600 // 60}m"
    if s >= 60:
        return f"{s // 60}m {s % 60}s"
    return f"{s}s"


class _Table(QAbstractTableModel):
    """Flat table: ``HEADERS`` name the columns, ``_rows`` holds one entry per row."""

    HEADERS: tuple[str, ...] = ()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._rows: list[Any] = []

    def rowCount(self, parent: Index = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.HEADERS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole):
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal and 0 <= section < len(self.HEADERS):
            return self.HEADERS[section]
        return None

    def _replace(self, rows: list) -> None:
        """Small tables: replace every row (one reset) when something differs."""
        if rows != self._rows:
            self.beginResetModel()
            self._rows = rows
            self.endResetModel()


class _KeyedTable(_Table):
    """A table whose rows are sorted keys (``_keys``); subclasses give cell values."""

    @property
    def _keys(self) -> list[Any]:
        return self._rows

    @_keys.setter
    def _keys(self, value: list[Any]) -> None:
        self._rows = value

    def key_at(self, row: int):
        return self._keys[row]

    def row_of(self, key) -> int | None:
        i = bisect.bisect_left(self._keys, key)
        return i if i < len(self._keys) and self._keys[i] == key else None

    # --- incremental edits
    def _insert(self, key) -> None:
        if self.row_of(key) is not None:
            self._changed(key)
            return
        i = bisect.bisect_left(self._keys, key)
        self.beginInsertRows(QModelIndex(), i, i)
        self._keys.insert(i, key)
        self.endInsertRows()

    def _remove(self, key) -> None:
        i = self.row_of(key)
        if i is None:
            return
        self.beginRemoveRows(QModelIndex(), i, i)
        del self._keys[i]
        self.endRemoveRows()

    def _changed(self, key, first_col: int = 0, last_col: int | None = None) -> None:
        i = self.row_of(key)
        if i is not None:
            last = self.columnCount() - 1 if last_col is None else last_col
            self.dataChanged.emit(self.index(i, first_col), self.index(i, last))

    def _reset(self, keys) -> None:
        self.beginResetModel()
        self._keys = sorted(keys)
        self.endResetModel()


class InterfaceModel(_KeyedTable):
    """One row per interface (key: ifindex)."""

    COL_NAME, COL_KIND, COL_STATE, COL_NM, COL_USE, COL_ROUTER, COL_ADDRS = range(7)
    HEADERS = ("Interface", "Kind", "Link", "NetworkManager", "Use", "Default router", "Addresses")

    NM_STATES = {10: "unmanaged", 20: "unavailable", 30: "disconnected", 40: "prepare", 50: "config",
                 60: "need auth", 70: "ip config", 80: "ip check", 90: "secondaries", 100: "activated",
                 110: "deactivating", 120: "failed"}

    def __init__(self, store: StateStore, parent=None) -> None:
        super().__init__(parent)
        self._store = store
        self._an: Analysis | None = None
        self._use: dict[int, str] = {}
        self._reset(store.state.interfaces)

    def set_analysis(self, an: Analysis) -> None:
        old, self._an = self._an, an
        before, after = self._use, self._use_of(an)
        self._use = after
        for k in set(before) | set(after):
            if before.get(k) != after.get(k):
                self._changed(k, self.COL_USE, self.COL_USE)

    @staticmethod
    def _use_of(an: Analysis) -> dict[int, str]:
        """ifindex -> the "Use" text: home link, or how many CoAs (interface, prefix pairs) it holds."""
        use = {i: "home link" for i in an.home_links}
        counts: dict[int, int] = {}
        for i, _ in an.coa_prefixes:
            counts[i] = counts.get(i, 0) + 1
        for i in an.active - an.home_links:
            n = counts.get(i, 0)
            use[i] = f"{n} CoA" + ("s" if n != 1 else "")
        return use

    def apply(self, changes: list[Change]) -> None:
        st = self._store.state
        for c in changes:
            if c.kind == "link-added":
                self._insert(c.ifindex)
            elif c.kind == "link-removed":
                self._remove(c.ifindex)
            elif c.kind in ("link-up", "link-down", "link-changed"):
                self._changed(c.ifindex)
            elif c.kind in ("router-added", "router-removed"):
                self._changed(c.ifindex, self.COL_ROUTER, self.COL_ROUTER)
            elif c.kind in ("address-added", "address-removed"):
                self._changed(c.ifindex, self.COL_ADDRS, self.COL_ADDRS)
        # a batch may leave links behind that netlink never reported removed
        if len(self._keys) != len(st.interfaces):
            self._reset(st.interfaces)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or index.row() >= len(self._keys):
            return None
        ifindex = self._keys[index.row()]
        st = self._store.state
        i: Interface | None = st.interfaces.get(ifindex)
        if i is None:
            return None
        col = index.column()
        if role == KeyRole:
            return ifindex
        if role in (Qt.ItemDataRole.DisplayRole, SortRole):
            if col == self.COL_NAME:
                return i.name if role == Qt.ItemDataRole.DisplayRole else ifindex
            if col == self.COL_KIND:
                return i.kind.value
            if col == self.COL_STATE:
                return "up" if i.up else ("no carrier" if i.admin_up else "down")
            if col == self.COL_NM:
                if i.nm_state is None:
                    return "—"
                return self.NM_STATES.get(i.nm_state, str(i.nm_state))
            if col == self.COL_USE:
                return self._use.get(ifindex, "")
            if col == self.COL_ROUTER:
                return ", ".join(sorted(st.routers.get(ifindex, ()))) or "—"
            if col == self.COL_ADDRS:
                n = sum(1 for k in st.addresses if k.ifindex == ifindex)
                return n if role == SortRole else str(n)
        if role == Qt.ItemDataRole.ToolTipRole and col == self.COL_NAME:
            return f"ifindex {ifindex}, {i.operstate}, MAC {i.mac or '—'}; kind from {i.kind_source}"
        if role == Qt.ItemDataRole.ForegroundRole and col == self.COL_STATE:
            return QBrush(QColor("#2e7d32" if i.up else "#b71c1c"))
        return None


class AddressModel(_KeyedTable):
    """One row per address (key: :class:`AddressKey`, ordered by ifindex then address)."""

    COL_IFACE, COL_ADDR, COL_ROLE, COL_FLAGS, COL_PREF, COL_VALID = range(6)
    HEADERS = ("Interface", "Address", "Role", "Flags", "Preferred", "Valid")

    def __init__(self, store: StateStore, clock: Callable[[], float], parent=None) -> None:
        super().__init__(parent)
        self._store = store
        self._clock = clock
        self._roles: dict[AddressKey, AddressRole] = {}
        self._reset(store.state.addresses)

    def set_analysis(self, an: Analysis) -> None:
        old, self._roles = self._roles, an.roles
        for k, r in an.roles.items():
            if old.get(k) != r:
                # the address cell is styled by its role too
                self._changed(k, self.COL_ADDR, self.COL_ROLE)

    def tick(self) -> None:
        """Lifetimes count down: refresh only the lifetime columns of finite rows."""
        st = self._store.state
        rows = [i for i, k in enumerate(self._keys)
                if (a := st.addresses.get(k)) is not None and a.valid_until is not None]
        if rows:
            self.dataChanged.emit(self.index(rows[0], self.COL_PREF), self.index(rows[-1], self.COL_VALID))

    def apply(self, changes: list[Change]) -> None:
        for c in changes:
            if c.kind == "address-added":
                self._insert(c.key)
            elif c.kind == "address-removed":
                self._remove(c.key)
            elif c.kind == "address-changed":
                self._changed(c.key)
            elif c.kind in ("link-changed", "link-up", "link-down") and c.before and c.after and c.before.name != c.after.name:
                for k in [k for k in self._keys if k.ifindex == c.ifindex]:
                    self._changed(k, self.COL_IFACE, self.COL_IFACE)
        if len(self._keys) != len(self._store.state.addresses):
            self._reset(self._store.state.addresses)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or index.row() >= len(self._keys):
            return None
        key = self._keys[index.row()]
        st = self._store.state
        a: Address | None = st.addresses.get(key)
        if a is None:
            return None
        col = index.column()
        r = self._roles.get(key)
        role_name = r.role if r else "other"
        if role == KeyRole:
            return key
        if role == AddrRoleRole:
            return role_name
        if role in (Qt.ItemDataRole.DisplayRole, SortRole):
            now = self._clock()
            if col == self.COL_IFACE:
                if role == SortRole:  # interface, then family, then address value
                    return f"{a.ifindex:010d} {a.family:02d} {int(a.ip):032x} {a.prefixlen:03d}"
                i = st.interfaces.get(a.ifindex)
                return i.name if i else f"if{a.ifindex}"
            if col == self.COL_ADDR and role == SortRole:
                return f"{a.family:02d} {int(a.ip):032x} {a.prefixlen:03d}"
            if col == self.COL_ADDR:
                return f"{a.address}/{a.prefixlen}"
            if col == self.COL_ROLE:
                return ROLE_STYLE[role_name][0]
            if col == self.COL_FLAGS:
                return " ".join(flag_names(a.flags, a.family))
            if col in (self.COL_PREF, self.COL_VALID):
                v = a.preferred_remaining(now) if col == self.COL_PREF else a.valid_remaining(now)
                if role == SortRole:
                    return float("inf") if v is None else v
                return _fmt_lft(v)
        if role == Qt.ItemDataRole.ToolTipRole:
            return r.reason if r else None
        if role == Qt.ItemDataRole.ForegroundRole and col in (self.COL_ADDR, self.COL_ROLE):
            return QBrush(QColor(ROLE_STYLE[role_name][1]))
        if role == Qt.ItemDataRole.FontRole and col in (self.COL_ADDR, self.COL_ROLE):
            f = QFont()
            f.setBold(ROLE_STYLE[role_name][2])
            f.setStrikeOut(role_name == "unusable")
            f.setItalic(role_name in ("tentative", "coa-deprecated"))
            return f
        return None


#: MIME type of a home address dragged from the home address table (its text: the address)
HOA_MIME = "application/x-mhgui-home-address"


class HomeAddressModel(_Table):
    """Configured HoAs with their at-home status (small: replaced on change)."""

    COL_HOA, COL_HA, COL_PREFIX, COL_WHERE, COL_ORIGIN = range(5)
    HEADERS = ("Home address", "Home agent", "Home prefix", "Where", "Configured in")

    def __init__(self, store: StateStore, parent=None) -> None:
        super().__init__(parent)
        self._store = store

    def set_analysis(self, an: Analysis) -> None:
        st = self._store.state
        rows = []
        for h in an.homes:
            where = ("at home on " + st.interfaces[h.home_ifindex].name) if h.at_home and h.home_ifindex in st.interfaces else "away from home"
            rows.append((f"{h.hoa.address}/{h.hoa.prefixlen}", h.hoa.home_agent or ":: (DHAAD)",
                         str(h.hoa.network), where, h.hoa.origin))
        self._replace(rows)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or index.row() >= len(self._rows):
            return None
        if role in (Qt.ItemDataRole.DisplayRole, SortRole):
            return self._rows[index.row()][index.column()]
        if role == Qt.ItemDataRole.ToolTipRole:
            return "Right-click, or drag onto an interface, to bind this home address through another interface"
        return None

    def flags(self, index: Index) -> Qt.ItemFlag:
        f = super().flags(index)
        return f | Qt.ItemFlag.ItemIsDragEnabled if index.isValid() else f

    def mimeTypes(self) -> list[str]:
        return [HOA_MIME]

    def mimeData(self, indexes):
        from PySide6.QtCore import QMimeData
        rows = sorted({i.row() for i in indexes if i.isValid()})
        if not rows:
            return None
        md = QMimeData()
        md.setData(HOA_MIME, self._rows[rows[0]][0].split("/", 1)[0].encode())
        return md


class ListTableModel(_Table):
    """A small read-only table of strings (goals, issues) with a tooltip and a yes/no colour per row."""

    def __init__(self, headers: tuple[str, ...], parent=None) -> None:
        super().__init__(parent)
        self.HEADERS = headers

    def set_rows(self, rows: list[tuple], tips: list[str | None] | None = None, ok: list[bool | None] | None = None) -> None:
        tips = tips or [None] * len(rows)
        ok = ok or [None] * len(rows)
        self._replace([(tuple(r), t, o) for r, t, o in zip(rows, tips, ok)])

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or index.row() >= len(self._rows):
            return None
        cells, tip, ok = self._rows[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return cells[index.column()]
        if role == Qt.ItemDataRole.ToolTipRole:
            return tip
        if role == Qt.ItemDataRole.ForegroundRole and ok is not None:
            return QBrush(QColor("#2e7d32" if ok else "#9e9e9e"))
        return None


class BindingModel(_KeyedTable):
    """The mobility daemon's bindings (key: :attr:`Binding.key`), one row each.

    ``set_bindings`` applies a new list incrementally: rows appear and go,
    a changed binding signals its own row only; ``tick`` refreshes the
    lifetime column as it counts down. ``interface_of(coa)`` names the
    interface holding a CoA in the live model (UMIP prints it only in verbose mode).
    """

    COL_HOA, COL_HA, COL_COA, COL_BID, COL_IFACE, COL_LIFETIME, COL_STATE = range(7)
    HEADERS = ("Home address", "Home agent", "Care-of address", "BID", "Interface", "Lifetime", "State")

    STATE_COLOURS = {"registered": "#2e7d32", "waiting-ack": "#f57f17", "cached": "#2e7d32", "dying": "#e65100",
                     "expired": "#b71c1c", "error": "#b71c1c", "unknown": "#616161"}

    def __init__(self, clock: Callable[[], float], interface_of: Callable[[str], str | None] = lambda coa: None,
                 parent=None) -> None:
        super().__init__(parent)
        self._clock = clock
        self._interface_of = interface_of
        self._by_key: dict = {}

    @staticmethod
    def _sort_key(key) -> tuple:
        hoa, peer, bid, source = key
        return (hoa, peer or "", -1 if bid is None else bid, source)

    def set_bindings(self, bindings) -> None:
        new = {self._sort_key(b.key): b for b in bindings}
        for k in [k for k in self._keys if k not in new]:
            self._by_key.pop(k, None)
            self._remove(k)
        for k, b in new.items():
            old = self._by_key.get(k)
            self._by_key[k] = b
            if old is None:
                self._insert(k)
            elif old != b:
                self._changed(k)

    def binding_at(self, row: int):
        return self._by_key[self._keys[row]]

    def tick(self) -> None:
        if self._keys:
            self.dataChanged.emit(self.index(0, self.COL_LIFETIME), self.index(len(self._keys) - 1, self.COL_LIFETIME))

    def refresh_interfaces(self) -> None:
        """The live model changed: the interface column may name another interface now."""
        if self._keys:
            self.dataChanged.emit(self.index(0, self.COL_IFACE), self.index(len(self._keys) - 1, self.COL_IFACE))

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or index.row() >= len(self._keys):
            return None
        b = self._by_key[self._keys[index.row()]]
        col = index.column()
        if role == KeyRole:
            return b.key
        if role in (Qt.ItemDataRole.DisplayRole, SortRole):
            if col == self.COL_HOA:
                return b.hoa
            if col == self.COL_HA:
                return b.peer or "—"
            if col == self.COL_COA:
                return b.coa
            if col == self.COL_BID:
                return "—" if b.bid is None else (f"{b.bid} (priority {b.bid_priority})" if b.bid_priority is not None else str(b.bid))
            if col == self.COL_IFACE:
                return b.interface or self._interface_of(b.coa) or "?"
            if col == self.COL_LIFETIME:
                rem = b.remaining_at(self._clock())
                if role == SortRole:
                    return -1e18 if rem is None else rem
                if rem is None:
                    return "broken"
                total = f" / {_fmt_lft(b.lifetime)}" if b.lifetime is not None else ""
                return (f"expired {_fmt_lft(-rem)} ago" if rem < 0 else _fmt_lft(rem)) + total
            if col == self.COL_STATE:
                return b.state.value
        if role == Qt.ItemDataRole.ForegroundRole and col == self.COL_STATE:
            return QBrush(QColor(self.STATE_COLOURS.get(b.state.value, "#616161")))
        if role == Qt.ItemDataRole.ToolTipRole:
            return f"seq {b.seq}, flags {''.join(b.flags) or '—'}, from the daemon's {b.source}"
        return None


class RulesModel(_Table):
    """Steering rules as the privileged helper lists them (small: replaced when it differs)."""

    COL_ID, COL_DEST, COL_IFACE, COL_KERNEL = range(4)
    HEADERS = ("Rule", "New connections to", "Go through", "In the kernel")

    def set_rules(self, rules: list[dict]) -> None:
        self._replace([(r["id"], ", ".join(r["destinations"]), r["interface"],
                        "yes" if r["in_kernel"] else f"no: {r.get('status') or 'unknown'}") for r in rules])

    def rule_id(self, row: int) -> str:
        return self._rows[row][0]

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or index.row() >= len(self._rows):
            return None
        if role in (Qt.ItemDataRole.DisplayRole, SortRole):
            return self._rows[index.row()][index.column()]
        if role == Qt.ItemDataRole.ForegroundRole and index.column() == self.COL_KERNEL:
            return QBrush(QColor("#2e7d32" if self._rows[index.row()][3] == "yes" else "#b71c1c"))
        return None
