"""Qt table models over the live state (model/view; narrow, batched signals).

Each model keeps its own row list in a stable order and applies a
:class:`~mhgui.core.state.Change` list as one batch: removed rows go with one
``beginRemoveRows`` per run of adjacent rows, new rows come with one
``beginInsertRows`` per run of adjacent new keys, changed rows signal one
``dataChanged`` per run of adjacent rows, over the columns that changed only;
the analysis (roles, at-home) is refreshed for the rows whose result changed,
the same way. No cell reads more than its own row: the Interfaces "Addresses"
count is kept per ifindex, the lifetime countdown signals one range of rows
for the two lifetime columns.
"""

from __future__ import annotations

import bisect
from typing import Any, Callable, Iterable

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QBrush, QFont

from ..core.analysis import Analysis, AddressRole
from ..core.model import Address, AddressKey, Interface, flag_names
from ..core.state import Change, StateStore
from ..i18n import N_, _, ngettext
from . import colours

Index = QModelIndex | QPersistentModelIndex

#: custom roles
KeyRole = Qt.ItemDataRole.UserRole + 1      # the row's key (ifindex or AddressKey)
SortRole = Qt.ItemDataRole.UserRole + 2     # a sortable value
AddrRoleRole = Qt.ItemDataRole.UserRole + 3  # the address role string ("coa", ...)

#: InterfaceKind values as shown (translate with _())
KIND_WORDS = {"ethernet": N_("ethernet"), "wifi": N_("wifi"), "wwan": N_("wwan"), "tunnel": N_("tunnel"),
              "loopback": N_("loopback"), "virtual": N_("virtual"), "other": N_("other")}


def kind_text(kind: str) -> str:
    """An interface kind (InterfaceKind value) in the user's language; an unknown one as it is."""
    return _(KIND_WORDS[kind]) if kind in KIND_WORDS else kind


ROLE_STYLE: dict[str, tuple[str, str, bool]] = {
    # role: (label, tone (colours.TONES), bold)
    "hoa": (N_("HoA"), "ok-strong", True),
    "coa": (N_("CoA"), "info", True),
    "coa-deprecated": (N_("CoA (deprecated)"), "warning", False),
    "home-link": (N_("home link"), "ok", False),
    "temporary": (N_("temporary"), "muted", False),
    "tentative": (N_("tentative (DAD)"), "pending", False),
    "link-local": (N_("link-local"), "muted", False),
    "vpn": (N_("VPN"), "vpn", False),
    "unusable": (N_("unusable"), "error", False),
    "other": (N_("other"), "neutral", False),
}


_DISPLAY = Qt.ItemDataRole.DisplayRole
_SORT = SortRole
_FONT = Qt.ItemDataRole.FontRole
_FOREGROUND = Qt.ItemDataRole.ForegroundRole
_TOOLTIP = Qt.ItemDataRole.ToolTipRole


def runs(rows: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted, de-duplicated ``rows`` as ``(first, last)`` runs of consecutive numbers."""
    out: list[tuple[int, int]] = []
    for r in sorted(set(rows)):
        if out and out[-1][1] == r - 1:
            out[-1] = (out[-1][0], r)
        else:
            out.append((r, r))
    return out


def _lft_step(until: float | None, now: float) -> int | None:
    """Which text :func:`_fmt_lft` shows for a deadline ``until`` at ``now``, as a number: it changes
    exactly when the text does (each second below an hour, each minute below a day, then each hour)."""
    if until is None:
        return None
    s = int(max(0.0, until - now))
    if s >= 86400:
        return s // 3600 * 3600
    if s >= 3600:
        return s // 60 * 60
    return s


def _fmt_lft(seconds: float | None) -> str:
    if seconds is None:
        return _("forever")
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

    def index(self, row: int, column: int, parent: Index = QModelIndex()) -> QModelIndex:
        # one Python call where QAbstractTableModel's would make two (rowCount and columnCount):
        # a sorting proxy asks for an index at each comparison
        if 0 <= row < len(self._rows) and 0 <= column < len(self.HEADERS) and not parent.isValid():
            return self.createIndex(row, column)
        return QModelIndex()

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole):
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal and 0 <= section < len(self.HEADERS):
            return _(self.HEADERS[section])
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

    # --- incremental edits, one batch at a time
    def _edit(self, present: Callable[[Any], bool], touched: Iterable,
              columns: Callable[[Any], tuple[int, int]] | None = None) -> None:
        """Bring the rows of the ``touched`` keys in line with ``present(key)`` in one batch.

        A touched key that is present and already has a row is changed: ``columns(key)`` gives
        its ``(first, last)`` columns (default: the whole row). Removals signal one
        ``beginRemoveRows`` per run of adjacent rows (from the bottom), insertions one
        ``beginInsertRows`` per run of new keys that land next to each other, changes one
        ``dataChanged`` per run of adjacent rows with the same columns.
        """
        keys = self._keys
        gone: list[int] = []
        new: list = []
        changed: list = []
        for k in set(touched):
            row = self.row_of(k)
            if present(k):
                (new if row is None else changed).append(k)
            elif row is not None:
                gone.append(row)
        for first, last in reversed(runs(gone)):
            self.beginRemoveRows(QModelIndex(), first, last)
            del keys[first:last + 1]
            self.endRemoveRows()
        if new:
            new.sort()
            # keys that go in at the same place form one run; insert from the bottom so places hold
            groups: list[tuple[int, list]] = []
            for k in new:
                at = bisect.bisect_left(keys, k)
                if groups and groups[-1][0] == at:
                    groups[-1][1].append(k)
                else:
                    groups.append((at, [k]))
            for at, ks in reversed(groups):
                self.beginInsertRows(QModelIndex(), at, at + len(ks) - 1)
                keys[at:at] = ks
                self.endInsertRows()
        if changed:
            full = (0, self.columnCount() - 1)
            by_cols: dict[tuple[int, int], list[int]] = {}
            for k in changed:
                by_cols.setdefault(columns(k) if columns else full, []).append(self.row_of(k))
            for (c0, c1), rows in by_cols.items():
                self._signal_rows(rows, c0, c1)

    def _signal_rows(self, rows: Iterable[int], first_col: int, last_col: int) -> None:
        """One ``dataChanged`` per run of adjacent ``rows``, columns ``first_col``..``last_col``."""
        for first, last in runs(rows):
            self.dataChanged.emit(self.index(first, first_col), self.index(last, last_col))

    def _reset(self, keys) -> None:
        self.beginResetModel()
        self._keys = sorted(keys)
        self.endResetModel()


class InterfaceModel(_KeyedTable):
    """One row per interface (key: ifindex)."""

    COL_NAME, COL_KIND, COL_STATE, COL_NM, COL_USE, COL_ROUTER, COL_ADDRS = range(7)
    HEADERS = (N_("Interface"), N_("Kind"), N_("Link"), N_("NetworkManager"), N_("Use"), N_("Default router"),
               N_("Addresses"))

    NM_STATES = {10: N_("unmanaged"), 20: N_("unavailable"), 30: N_("disconnected"), 40: N_("prepare"),
                 50: N_("config"), 60: N_("need auth"), 70: N_("ip config"), 80: N_("ip check"),
                 90: N_("secondaries"), 100: N_("activated"), 110: N_("deactivating"), 120: N_("failed")}

    def __init__(self, store: StateStore, parent=None) -> None:
        super().__init__(parent)
        self._store = store
        self._an: Analysis | None = None
        self._use: dict[int, str] = {}
        self._notes: dict[int, str] = {}
        self._reset(store.state.interfaces)

    def _reset(self, keys) -> None:
        super()._reset(keys)
        self._count_addresses()

    def _count_addresses(self) -> None:
        """The "Addresses" column: how many addresses each ifindex has (one pass over the addresses)."""
        counts: dict[int, int] = {}
        for k in self._store.state.addresses:
            counts[k.ifindex] = counts.get(k.ifindex, 0) + 1
        self._naddr = counts

    def set_analysis(self, an: Analysis) -> None:
        self._an = an
        before, after = self._use, self._use_of(an)
        self._use = after
        self._signal_rows([r for k in set(before) | set(after)
                           if before.get(k) != after.get(k) and (r := self.row_of(k)) is not None],
                          self.COL_USE, self.COL_USE)

    def set_notes(self, notes: dict[int, str]) -> None:
        """ifindex -> what an interface gives that the counts do not say (an IPv4-only link: its IPv4 CoA, or
        why it has none; :func:`mhgui.core.report.interface_notes`): the Use cell's tooltip, and its text
        when it holds no CoA."""
        before, self._notes = self._notes, dict(notes)
        self._signal_rows([r for k in set(before) | set(notes)
                           if before.get(k) != notes.get(k) and (r := self.row_of(k)) is not None],
                          self.COL_USE, self.COL_USE)

    @staticmethod
    def _use_of(an: Analysis) -> dict[int, str]:
        """ifindex -> the "Use" text: home link, or how many CoAs (interface, prefix pairs) it holds."""
        home = _("home link")
        use = {i: home for i in an.home_links}
        counts: dict[int, int] = {}
        for i, _prefix in an.coa_prefix_ids:  # as ids: no network objects made
            counts[i] = counts.get(i, 0) + 1
        for i in an.active - an.home_links:
            n = counts.get(i, 0)
            use[i] = ngettext("{n} CoA", "{n} CoAs", n).format(n=n)
        return use

    _COLUMNS_OF = {"link-added": (0, COL_ADDRS), "link-up": (0, COL_ADDRS), "link-down": (0, COL_ADDRS),
                   "link-changed": (0, COL_ADDRS), "router-added": (COL_ROUTER, COL_ROUTER),
                   "router-removed": (COL_ROUTER, COL_ROUTER), "address-added": (COL_ADDRS, COL_ADDRS),
                   "address-removed": (COL_ADDRS, COL_ADDRS)}

    def apply(self, changes: list[Change]) -> None:
        """Apply one batch of store changes: one signal per run of rows (see :meth:`_KeyedTable._edit`)."""
        st = self._store.state
        cols: dict[int, tuple[int, int]] = {}
        naddr = self._naddr
        for c in changes:
            span = self._COLUMNS_OF.get(c.kind)
            if c.kind == "link-removed":
                cols.setdefault(c.ifindex, (0, self.COL_ADDRS))
            elif span is not None and c.ifindex is not None:
                old = cols.get(c.ifindex)
                cols[c.ifindex] = span if old is None else (min(old[0], span[0]), max(old[1], span[1]))
                if c.kind == "address-added":
                    naddr[c.ifindex] = naddr.get(c.ifindex, 0) + 1
                elif c.kind == "address-removed":
                    naddr[c.ifindex] = naddr.get(c.ifindex, 0) - 1
        if sum(naddr.values()) != len(st.addresses) or any(v < 0 for v in naddr.values()):
            self._count_addresses()  # a change this model never saw: count again, once
        if cols:
            self._edit(st.interfaces.__contains__, cols, cols.__getitem__)
        # a batch may leave links behind that netlink never reported removed
        if len(self._keys) != len(st.interfaces):
            self._reset(st.interfaces)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole):
        row = index.row()  # -1 for an invalid index
        if row < 0 or row >= len(self._keys):
            return None
        ifindex = self._keys[row]
        st = self._store.state
        i: Interface | None = st.interfaces.get(ifindex)
        if i is None:
            return None
        col = index.column()
        if role == KeyRole:
            return ifindex
        if role == _DISPLAY or role == _SORT:
            if col == self.COL_NAME:
                return i.name if role == _DISPLAY else ifindex
            if col == self.COL_KIND:
                return kind_text(i.kind.value)
            if col == self.COL_STATE:
                return _("up") if i.up else (_("no carrier") if i.admin_up else _("down"))
            if col == self.COL_NM:
                if i.nm_state is None:
                    return "—"
                return _(self.NM_STATES[i.nm_state]) if i.nm_state in self.NM_STATES else str(i.nm_state)
            if col == self.COL_USE:
                use = self._use.get(ifindex, "")
                if ifindex in self._notes and use in ("", ngettext("{n} CoA", "{n} CoAs", 0).format(n=0)):
                    return _("IPv4 only: no CoA")
                return use
            if col == self.COL_ROUTER:
                return ", ".join(sorted(st.routers.get(ifindex, ()))) or "—"
            if col == self.COL_ADDRS:
                n = self._naddr.get(ifindex, 0)
                return n if role == _SORT else str(n)
        if role == _TOOLTIP and col == self.COL_NAME:
            return _("ifindex {ifindex}, {operstate}, MAC {mac}; kind from {source}").format(
                ifindex=ifindex, operstate=i.operstate, mac=i.mac or "—", source=i.kind_source)
        if role == _TOOLTIP and col == self.COL_USE:
            return self._notes.get(ifindex)
        if role == _FOREGROUND and col == self.COL_STATE:
            return _brush("ok" if i.up else "error")
        return None


_FONTS: dict[str, QFont] = {}


def _brush(tone: str) -> QBrush:
    """A brush of ``tone`` (:data:`mhgui.ui.colours.TONES`) readable on the palette's table background."""
    return colours.brush(tone)


def _role_font(role_name: str) -> QFont:
    f = _FONTS.get(role_name)
    if f is None:
        f = QFont()
        f.setBold(ROLE_STYLE[role_name][2])
        f.setStrikeOut(role_name == "unusable")
        f.setItalic(role_name in ("tentative", "coa-deprecated"))
        _FONTS[role_name] = f
    return f


class AddressModel(_KeyedTable):
    """One row per address (key: :class:`AddressKey`, ordered by ifindex then address).

    The texts that depend on the address alone (address, flags, sort keys) are made once per
    address object; lifetimes are computed when asked (they count down). :meth:`tick` signals
    the lifetime columns of the rows whose lifetime text changed since it was shown.
    """

    COL_IFACE, COL_ADDR, COL_ROLE, COL_FLAGS, COL_PREF, COL_VALID = range(6)
    HEADERS = (N_("Interface"), N_("Address"), N_("Role"), N_("Flags"), N_("Preferred"), N_("Valid"))

    def __init__(self, store: StateStore, clock: Callable[[], float], parent=None) -> None:
        super().__init__(parent)
        self._store = store
        self._clock = clock
        self._roles: dict[AddressKey, AddressRole] = {}
        #: keys whose valid lifetime is finite (they count down)
        self._finite: set[AddressKey] = set()
        #: key -> (the Address, "addr/len", flags text): made when first shown, again when the address changes
        self._cells: dict[AddressKey, tuple] = {}
        #: key -> (interface column sort key, address column sort key): they depend on the key alone
        self._sorts: dict[AddressKey, tuple[str, str]] = {}
        #: key -> the lifetime texts last signalled, as :func:`_lft_step` numbers (finite keys only)
        self._shown: dict[AddressKey, tuple] = {}
        self._reset(store.state.addresses)

    def _reset(self, keys) -> None:
        super()._reset(keys)
        self._finite = set()
        self._shown = {}
        self._cells = {}
        self._sorts = {}
        self._note_lifetimes(self._keys)

    def _note_lifetimes(self, keys: Iterable[AddressKey]) -> None:
        """``keys`` were just (re)signalled: their lifetime texts are the ones shown now."""
        addrs = self._store.state.addresses
        now = self._clock()
        for k in keys:
            a = addrs.get(k)
            if a is not None and a.valid_until is not None:
                self._finite.add(k)
                self._shown[k] = (_lft_step(a.preferred_until, now), _lft_step(a.valid_until, now))
            else:
                self._finite.discard(k)
                self._shown.pop(k, None)

    def set_analysis(self, an: Analysis) -> None:
        old, new = self._roles, an.roles
        self._roles = new
        # the address cell is styled by its role too
        rows = [r for k in set(old) | set(new) if old.get(k) != new.get(k) and (r := self.row_of(k)) is not None]
        self._signal_rows(rows, self.COL_ADDR, self.COL_ROLE)

    def tick(self) -> None:
        """Lifetimes count down: signal the two lifetime columns of the rows whose text changed (one
        ``dataChanged`` per run of adjacent rows; none when no text changed, e.g. lifetimes shown in
        hours change once a minute). Reads only the addresses with a finite lifetime."""
        if not self._finite:
            return
        now = self._clock()
        addrs = self._store.state.addresses
        shown = self._shown
        rows = []
        for k in self._finite:
            a = addrs.get(k)
            if a is None:
                continue
            step = (_lft_step(a.preferred_until, now), _lft_step(a.valid_until, now))
            if shown.get(k) != step:
                shown[k] = step
                if (r := self.row_of(k)) is not None:
                    rows.append(r)
        self._signal_rows(rows, self.COL_PREF, self.COL_VALID)

    def apply(self, changes: list[Change]) -> None:
        """Apply one batch of store changes: one signal per run of rows (see :meth:`_KeyedTable._edit`)."""
        addrs = self._store.state.addresses
        touched: set[AddressKey] = set()
        renamed: set[int] = set()
        for c in changes:
            if c.kind in ("address-added", "address-removed", "address-changed"):
                touched.add(c.key)
            elif c.kind in ("link-changed", "link-up", "link-down") and c.before and c.after \
                    and c.before.name != c.after.name:
                renamed.add(c.ifindex)
        if touched:
            for k in touched:
                self._cells.pop(k, None)
                if k not in addrs:
                    self._sorts.pop(k, None)
            self._note_lifetimes(touched)
            self._edit(addrs.__contains__, touched)
        for ifindex in renamed:  # the interface column of its rows: they are adjacent (keys start with ifindex)
            lo = bisect.bisect_left(self._keys, (ifindex,))
            hi = bisect.bisect_left(self._keys, (ifindex + 1,))
            self._signal_rows(range(lo, hi), self.COL_IFACE, self.COL_IFACE)
        if len(self._keys) != len(addrs):
            self._reset(addrs)

    def _prepared(self, key: AddressKey, a: Address) -> tuple:
        c = self._cells.get(key)
        if c is None or c[0] is not a:
            c = self._cells[key] = (a, f"{a.address}/{a.prefixlen}", " ".join(flag_names(a.flags, a.family)))
        return c

    def _sort_keys(self, key: AddressKey) -> tuple[str, str] | None:
        s = self._sorts.get(key)
        if s is None:
            a = self._store.state.addresses.get(key)
            if a is None:
                return None
            value = f"{a.family:02d} {int(a.ip):032x} {a.prefixlen:03d}"  # family, then address value
            s = self._sorts[key] = (f"{a.ifindex:010d} {value}", value)
        return s

    def sort_value(self, key: AddressKey, column: int):
        """The ``SortRole`` value of ``key``'s cell in ``column`` (None when the address is gone): what the
        window's sorting filter (:class:`~mhgui.ui.sortfilter.KeyedSortFilter`) reads once per row."""
        if column <= self.COL_ADDR:
            s = self._sort_keys(key)
            return None if s is None else s[column]
        return self.key_data(key, column, _SORT)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole):
        row = index.row()  # -1 for an invalid index
        keys = self._rows
        if row < 0 or row >= len(keys):
            return None
        return self.key_data(keys[row], index.column(), role)

    def key_data(self, key: AddressKey, col: int, role: int):
        """:meth:`data` of ``key``'s row, column ``col`` (the window's sorting filter asks by key: no row look-up)."""
        # called for every visible cell and role at each paint: the common roles come first and read only
        # their own row
        if role == _SORT and col <= self.COL_ADDR:
            s = self._sort_keys(key)
            return None if s is None else s[col]
        if role == _DISPLAY or role == _SORT:
            st = self._store.state
            a: Address | None = st.addresses.get(key)
            if a is None:
                return None
            if col == self.COL_PREF or col == self.COL_VALID:
                now = self._clock()
                v = a.preferred_remaining(now) if col == self.COL_PREF else a.valid_remaining(now)
                if role == _SORT:
                    return float("inf") if v is None else v
                return _fmt_lft(v)
            if col == self.COL_ROLE:
                r = self._roles.get(key)
                return _(ROLE_STYLE[r.role if r else "other"][0])
            if col == self.COL_IFACE:
                i = st.interfaces.get(a.ifindex)
                return i.name if i else f"if{a.ifindex}"
            if col == self.COL_ADDR:
                return self._prepared(key, a)[1]
            if col == self.COL_FLAGS:
                return self._prepared(key, a)[2]
            return None
        if role == KeyRole:
            return key
        if role == AddrRoleRole:
            r = self._roles.get(key)
            return r.role if r else "other"
        if role == _TOOLTIP:
            r = self._roles.get(key)
            return r.reason if r else None
        if (role == _FOREGROUND or role == _FONT) and (col == self.COL_ADDR or col == self.COL_ROLE):
            r = self._roles.get(key)
            name = r.role if r else "other"
            return _brush(ROLE_STYLE[name][1]) if role == _FOREGROUND else _role_font(name)
        return None


#: MIME type of a home address dragged from the home address table (its text: the address)
HOA_MIME = "application/x-mhgui-home-address"


class HomeAddressModel(_Table):
    """Configured HoAs with their at-home status (small: replaced on change)."""

    COL_HOA, COL_HA, COL_PREFIX, COL_WHERE, COL_ORIGIN = range(5)
    HEADERS = (N_("Home address"), N_("Home agent"), N_("Home prefix"), N_("Where"), N_("Configured in"))

    def __init__(self, store: StateStore, parent=None) -> None:
        super().__init__(parent)
        self._store = store

    def set_analysis(self, an: Analysis) -> None:
        st = self._store.state
        rows = []
        for h in an.homes:
            where = (_("at home on {interface}").format(interface=st.interfaces[h.home_ifindex].name)
                     if h.at_home and h.home_ifindex in st.interfaces else _("away from home"))
            rows.append((f"{h.hoa.address}/{h.hoa.prefixlen}", h.hoa.home_agent or ":: (DHAAD)",
                         str(h.hoa.network), where, h.hoa.origin))
        self._replace(rows)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or index.row() >= len(self._rows):
            return None
        if role in (Qt.ItemDataRole.DisplayRole, SortRole):
            return self._rows[index.row()][index.column()]
        if role == Qt.ItemDataRole.ToolTipRole:
            return _("Right-click, or drag onto an interface, to bind this home address through another interface")
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
            return _brush("ok" if ok else "muted")
        return None


class BindingModel(_KeyedTable):
    """The mobility daemon's bindings (key: :attr:`Binding.key`), one row each.

    ``set_bindings`` applies a new list incrementally: rows appear and go,
    a changed binding signals its own row only; ``tick`` refreshes the
    lifetime column as it counts down. ``interface_of(coa)`` names the
    interface holding a CoA in the live model (UMIP prints it only in verbose mode).
    """

    COL_HOA, COL_HA, COL_COA, COL_BID, COL_IFACE, COL_LIFETIME, COL_STATE = range(7)
    HEADERS = (N_("Home address"), N_("Home agent"), N_("Care-of address"), N_("BID"), N_("Interface"),
               N_("Lifetime"), N_("State"))
    #: binding states (BindingState values) as shown
    STATES = {"registered": N_("registered"), "waiting-ack": N_("waiting-ack"), "cached": N_("cached"),
              "dying": N_("dying"), "expired": N_("expired"), "error": N_("error"), "unknown": N_("unknown")}

    #: binding state: tone (:data:`mhgui.ui.colours.TONES`)
    STATE_TONES = {"registered": "ok", "waiting-ack": "pending", "cached": "ok", "dying": "warning",
                   "expired": "error", "error": "error", "unknown": "muted"}

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
        old = self._by_key
        touched = [k for k in old if k not in new] + [k for k, b in new.items() if old.get(k) != b]
        self._by_key = {**old, **new}  # rows being removed still answer until they are gone
        self._edit(new.__contains__, touched)
        self._by_key = new

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
                return "—" if b.bid is None else (_("{bid} (priority {priority})").format(
                    bid=b.bid, priority=b.bid_priority) if b.bid_priority is not None else str(b.bid))
            if col == self.COL_IFACE:
                return b.interface or self._interface_of(b.coa) or "?"
            if col == self.COL_LIFETIME:
                rem = b.remaining_at(self._clock())
                if role == SortRole:
                    return -1e18 if rem is None else rem
                if rem is None:
                    return _("broken")
                total = f" / {_fmt_lft(b.lifetime)}" if b.lifetime is not None else ""
                return (_("expired {time} ago").format(time=_fmt_lft(-rem)) if rem < 0 else _fmt_lft(rem)) + total
            if col == self.COL_STATE:
                v = b.state.value
                return _(self.STATES[v]) if role != SortRole and v in self.STATES else v
        if role == Qt.ItemDataRole.ForegroundRole and col == self.COL_STATE:
            return _brush(self.STATE_TONES.get(b.state.value, "muted"))
        if role == Qt.ItemDataRole.ToolTipRole:
            return _("seq {seq}, flags {flags}, from the daemon's {source}").format(
                seq=b.seq, flags="".join(b.flags) or "—", source=b.source)
        return None


class RulesModel(_Table):
    """Steering rules as the privileged helper lists them (small: replaced when it differs)."""

    COL_ID, COL_DEST, COL_IFACE, COL_KERNEL = range(4)
    HEADERS = (N_("Rule"), N_("New connections to"), N_("Go through"), N_("In the kernel"))

    def set_rules(self, rules: list[dict]) -> None:
        from ..core.steering_selectors import describe_rule  # (with protocol, ports, application: issue 15.6)

        self._replace([(r["id"], describe_rule(r), r["interface"],
                        _("yes") if r["in_kernel"] else _("no: {status}").format(status=r.get("status") or _("unknown")))
                       for r in rules])

    def rule_id(self, row: int) -> str:
        return self._rows[row][0]

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or index.row() >= len(self._rows):
            return None
        if role in (Qt.ItemDataRole.DisplayRole, SortRole):
            return self._rows[index.row()][index.column()]
        if role == Qt.ItemDataRole.ForegroundRole and index.column() == self.COL_KERNEL:
            return _brush("ok" if self._rows[index.row()][3] == _("yes") else "error")
        return None
