"""Qt models of the node's flows (model/view), applied incrementally per poll.

:class:`FlowModel` holds one row per :class:`~mhgui.core.flows.Flow` in
arrival order. Each poll's table is applied as a diff: removed rows go with one
``beginRemoveRows`` per contiguous run, new rows are appended with one
``beginInsertRows``, changed rows signal ``dataChanged`` (per contiguous run);
a poll never resets the model. It also knows which flows are mhgui's own
(:meth:`FlowModel.set_own`, rules in :func:`mhgui.core.flows.own_flow_ids`).

:class:`FlowFilter` is what the view shows: the rows sorted and filtered
(application, interface, address; mhgui's own connections hidden unless
:meth:`FlowFilter.set_show_own`). It sorts in Python over one key per row
and column, computed once (a ``QSortFilterProxyModel`` calls back into
Python twice per comparison: about 1.6 million calls to sort 50,000 rows), and
hears one :attr:`FlowModel.applied` signal per poll rather than one per row
run, so a poll costs O(rows) once, however scattered its changes.

Cell texts are made when a row is first painted (a view of 50,000 rows paints
about 40). :meth:`FlowModel.set_context` re-places only the flows whose
placement answer changed (:meth:`mhgui.core.flows.Classifier.changed_keys`).

Both models keep row-level signals narrow while few runs change; past
:data:`MAX_RUNS` runs in one poll they move the affected rows together with one
layout change (persistent indexes, e.g. the selection, follow their rows) and
then insert or remove one run: still no reset.
"""

from __future__ import annotations

import bisect
import functools
import ipaddress
from typing import Callable, Iterable, Mapping

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt, Signal

from ..core.analysis import Analysis, analyse
from ..core.bindings import Binding
from ..core.flows import Classifier, Flow, FlowTable, OwnSockets, Placement, format_endpoint
from ..core.moves import bound_flows, flow_match_key
from .models import runs
from ..core.model import NodeState
from ..gcpause import gc_paused
from ..i18n import N_, _
from . import colours
from .models import KeyRole, SortRole

__all__ = ["FlowModel", "FlowFilter", "KeyRole", "SortRole", "MovableRole", "OwnRole", "runs", "MAX_RUNS"]

Index = QModelIndex | QPersistentModelIndex

#: the "movable" word of the row ("transparent", "re-establish", "no")
MovableRole = Qt.ItemDataRole.UserRole + 10
#: True when the row is one of mhgui's own connections
OwnRole = Qt.ItemDataRole.UserRole + 11

#: more row runs than this in one update: one layout change and one run instead (see the module docstring)
MAX_RUNS = 24

MOVABLE_STYLE = {
    # movable: (label, tone (colours.TONES))
    "transparent": (N_("transparent"), "ok-strong"),
    "re-establish": (N_("re-establish"), "warning"),
    "no": (N_("no"), "muted"),
}
ROLE_LABEL = {"hoa": N_("HoA"), "coa": N_("CoA"), "other": N_("other")}


@functools.lru_cache(maxsize=1 << 16)
def _addr_value(address: str) -> int:
    try:
        return int(ipaddress.ip_address(address))
    except ValueError:
        return 0


_ROOT = QModelIndex()
_NCOLS = 9
_DISPLAY = int(Qt.ItemDataRole.DisplayRole)
_SORT = int(SortRole)
_KEY = int(KeyRole)
_TOOLTIP = int(Qt.ItemDataRole.ToolTipRole)
_FOREGROUND = int(Qt.ItemDataRole.ForegroundRole)
_MOVABLE = int(MovableRole)
_OWN = int(OwnRole)
COL_APP, COL_PID, COL_PROTO, COL_LOCAL, COL_REMOTE, COL_STATE, COL_IFACE, COL_ROLE, COL_MOVABLE = range(_NCOLS)


class _Row:
    """One flow, its placement, whether it is mhgui's own, and its display texts (made on first use)."""

    __slots__ = ("id", "flow", "place", "pkey", "seq", "own", "direct", "fb", "_text")

    def __init__(self, flow: Flow, place: Placement, pkey: tuple, seq: int) -> None:
        self.id = flow.id
        self.flow = flow
        self.place = place
        self.pkey = pkey  # Classifier.key(flow)
        self.seq = seq  # arrival order
        self.own = False  # mhgui's own (own_flow_ids' three rules)
        self.direct = False  # own by rule 1 or 2 (the flow alone)
        self.fb: dict | None = None  # the daemon's flow binding of exactly this connection (RFC 6089), if any
        self._text: tuple | None = None

    def iface(self) -> str:
        fb = self.fb
        if fb is not None and fb.get("bound_to"):
            return f"{'+'.join(fb['bound_to'])} (FID {fb.get('fid')})"
        p = self.place
        return p.interface or (_("unknown") if p.local_role == "hoa" else "—")

    @property
    def text(self) -> tuple:
        """The display texts, one per column."""
        t = self._text
        if t is None:
            f, p = self.flow, self.place
            remote = "*" if f.listening and f.remote_port == 0 else format_endpoint(f.remote_address, f.remote_port)
            t = self._text = (
                f.process if f.process is not None else "—",
                str(f.pid) if f.pid is not None else "—",
                f.protocol.upper(),
                format_endpoint(f.local_address, f.local_port, f.bound_ifindex),
                remote,
                f.state,
                self.iface(),
                _(ROLE_LABEL[p.local_role]) if p.local_role in ROLE_LABEL else p.local_role,
                _(MOVABLE_STYLE[p.movable][0]) if p.movable in MOVABLE_STYLE else p.movable,
            )
        return t


class _Reverse:
    """A sort key compared the other way round (bisect in a list sorted in descending order)."""

    __slots__ = ("k",)

    def __init__(self, k) -> None:
        self.k = k

    def __lt__(self, other: "_Reverse") -> bool:
        return other.k < self.k


def _addr_key(family: int, address: str, port: int) -> int:
    return (family << 144) | (_addr_value(address) << 16) | port


@functools.lru_cache(maxsize=1 << 12)
def _fold(name: str | None) -> str:
    return (name or "\uffff").casefold()  # no name (owner unknown): last


#: per column, the row's sort key (numbers where the text would sort wrongly: pids, addresses, ports)
_SORT_KEYS: tuple[Callable[[_Row], object], ...] = (
    lambda r: _fold(r.flow.process),
    lambda r: r.flow.pid if r.flow.pid is not None else -1,
    lambda r: r.flow.protocol,
    lambda r: _addr_key(r.flow.family, r.flow.local_address, r.flow.local_port),
    lambda r: _addr_key(r.flow.family, r.flow.remote_address, r.flow.remote_port),
    lambda r: r.flow.state,
    lambda r: r.iface(),
    lambda r: r.place.local_role,
    lambda r: r.place.movable,
)


def _sort_value(row: _Row, column: int):
    """:data:`SortRole` data: the sort key, addresses as fixed-width hex text (a QVariant holds 64 bits)."""
    k = _SORT_KEYS[column](row)
    return f"{k:038x}" if column in (COL_LOCAL, COL_REMOTE) else k


def _cell(row: _Row, c: int, role: int, visibility_reason: str):
    if role == _DISPLAY:
        return row.text[c]
    if role == _SORT:
        return _sort_value(row, c)
    if role == _KEY:
        return row.id
    if role == _MOVABLE:
        return row.place.movable
    if role == _OWN:
        return row.own
    if role == _TOOLTIP:
        if c in (COL_APP, COL_PID) and row.flow.pid is None:
            why = visibility_reason or _("the owning process is not readable")
            return (_("owner unknown: {why}").format(why=why) if row.flow.inode
                    else _("no process holds this socket (TIME-WAIT)"))
        if row.own:
            return _("one of mhgui's own connections. {why}").format(why=row.place.reason)
        if c == COL_IFACE and row.fb is not None:
            fb = row.fb
            paths = ", ".join(_("BID {bid} on {interface}").format(bid=b, interface=n)
                              for b, n in zip(fb.get("bids") or (), fb.get("bound_to") or ()))
            return _("bound alone at the home agent (RFC 6089 flow binding {fid}): {paths}; the home "
                     "address's other connections do not follow it").format(fid=fb.get("fid"), paths=paths)
        return row.place.reason
    if role == _FOREGROUND and c == COL_MOVABLE:
        return colours.brush(MOVABLE_STYLE.get(row.place.movable, ("", "neutral"))[1])
    return None


#: MIME type of a flow dragged from the flows table (its text: the flow id)
FLOW_MIME = "application/x-mhgui-flow"

HEADERS = (N_("Application"), N_("PID"), N_("Protocol"), N_("Local"), N_("Remote"), N_("State"), N_("Interface"),
           N_("Role"), N_("Movable"))


class _RowsModel(QAbstractTableModel):
    """A table over ``self._rows`` (a list of :class:`_Row`), with the signal plumbing both models share."""

    COL_APP, COL_PID, COL_PROTO, COL_LOCAL, COL_REMOTE, COL_STATE, COL_IFACE, COL_ROLE, COL_MOVABLE = range(_NCOLS)
    HEADERS = HEADERS

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._rows: list[_Row] = []
        self._pos: dict[_Row, int] | None = {}

    # ---- Qt API (kept lean: views call these often)
    def rowCount(self, parent: Index = _ROOT) -> int:
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: Index = _ROOT) -> int:
        return 0 if parent.isValid() else _NCOLS

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole):
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal \
                and 0 <= section < _NCOLS:
            return _(HEADERS[section])
        return None

    def _reason(self) -> str:
        return ""

    def data(self, index: Index, role: int = _DISPLAY):
        r, c = index.row(), index.column()  # -1 for an invalid index
        if r < 0 or c < 0 or r >= len(self._rows) or c >= _NCOLS:
            return None
        return _cell(self._rows[r], c, role, self._reason())

    # ---- drag: a flow dropped onto an interface row asks to move it there
    def flags(self, index: Index) -> Qt.ItemFlag:
        f = super().flags(index)
        return f | Qt.ItemFlag.ItemIsDragEnabled if index.isValid() else f

    def mimeTypes(self) -> list[str]:
        return [FLOW_MIME]

    def mimeData(self, indexes):
        from PySide6.QtCore import QMimeData
        rows = sorted({i.row() for i in indexes if i.isValid() and i.row() < len(self._rows)})
        if not rows:
            return None
        md = QMimeData()
        md.setData(FLOW_MIME, self._rows[rows[0]].id.encode())
        return md

    # ---- positions
    def _positions(self) -> dict[_Row, int]:
        if self._pos is None:
            self._pos = {row: i for i, row in enumerate(self._rows)}
        return self._pos

    # ---- structural changes, narrow while few runs change
    def _relayout(self, new: list[_Row]) -> None:
        """Reorder the rows to ``new`` (the same rows) with one layout change; persistent indexes follow."""
        self.layoutAboutToBeChanged.emit()
        olds = self.persistentIndexList()
        if olds:
            where = {row: i for i, row in enumerate(new)}
            rows = self._rows
            news = []
            for i in olds:
                r = i.row()
                j = where.get(rows[r]) if 0 <= r < len(rows) else None
                news.append(self.index(j, i.column()) if j is not None else QModelIndex())
            self.changePersistentIndexList(olds, news)
        self._rows[:] = new
        self._pos = None
        self.layoutChanged.emit()

    def _remove(self, gone: set[_Row]) -> None:
        """Remove the rows in ``gone`` (those present)."""
        pos = self._positions()
        at = sorted(pos[r] for r in gone if r in pos)
        if not at:
            return
        rr = runs(at)
        rows = self._rows
        if len(rr) <= MAX_RUNS:
            for first, last in reversed(rr):
                self.beginRemoveRows(_ROOT, first, last)
                del rows[first:last + 1]
                self._pos = None
                self.endRemoveRows()
            return
        # many runs: move them to the end together (one layout change), then remove one run
        doomed = set(rows[i] for i in at)
        keep = [r for r in rows if r not in doomed]
        self._relayout(keep + [rows[i] for i in at])
        n = len(keep)
        self.beginRemoveRows(_ROOT, n, len(rows) - 1)
        del rows[n:]
        self._pos = None
        self.endRemoveRows()

    def _insert_placed(self, placed: list[tuple[int, _Row]]) -> None:
        """Insert rows at their final indexes: ``placed`` = ``(index, row)`` ascending by index, an index
        counting the rows before it once all are in (current rows keep their order)."""
        if not placed:
            return
        rows = self._rows
        if not rows:
            self.beginInsertRows(_ROOT, 0, len(placed) - 1)
            rows.extend(r for _, r in placed)
            self._pos = None
            self.endInsertRows()
            return
        rr = runs(i for i, _ in placed)
        if len(rr) <= MAX_RUNS:
            k = 0
            for first, last in rr:
                self.beginInsertRows(_ROOT, first, last)
                rows[first:first] = [r for _, r in placed[k:k + last - first + 1]]
                k += last - first + 1
                self._pos = None
                self.endInsertRows()
            return
        merged: list[_Row] = []
        prev = 0
        for j, (i, r) in enumerate(placed):
            merged.extend(rows[prev:i - j])  # the current rows before it
            merged.append(r)
            prev = i - j
        merged.extend(rows[prev:])
        n = len(rows)
        self.beginInsertRows(_ROOT, n, n + len(placed) - 1)
        rows.extend(r for _, r in placed)
        self._pos = None
        self.endInsertRows()
        self._relayout(merged)

    def _changed_runs(self, changed: Iterable[_Row], first_col: int = 0, last_col: int = _NCOLS - 1) -> None:
        pos = self._positions()
        for first, last in runs(pos[r] for r in changed if r in pos):
            self.dataChanged.emit(self.index(first, first_col), self.index(last, last_col))


class FlowModel(_RowsModel):
    """One row per flow, in arrival order; columns :data:`HEADERS`. Apply each poll with :meth:`apply`.

    ``applied(added, removed, changed)`` (lists of rows) is emitted once per
    :meth:`apply`, :meth:`set_context`, :meth:`set_own` and :meth:`clear`
    that changed something; ``changed`` rows changed in place (their flow,
    placement or own flag).
    """

    applied = Signal(object, object, object)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._by_id: dict[str, _Row] = {}
        self._seq = 0
        self._classifier = Classifier(NodeState(), analyse(NodeState(), 0.0), ())
        self._own_spec: OwnSockets | None = None
        self._mirrors: set[tuple] = set()
        self.own_count = 0
        self._fbs: dict[tuple, dict] = {}  # the daemon's flow bindings by selector (set_flow_bindings)
        self._fb_rows = 0
        self.process_visibility = "full"
        self.visibility_reason = ""
        self.problems: tuple[str, ...] = ()

    def _reason(self) -> str:
        return self.visibility_reason

    # ---- look-ups
    def row_of(self, flow_id: str) -> int | None:
        r = self._by_id.get(flow_id)
        return None if r is None else self._positions().get(r)

    def flow_at(self, row: int) -> Flow:
        return self._rows[row].flow

    def placement_at(self, row: int) -> Placement:
        return self._rows[row].place

    def cells_at(self, row: int) -> tuple:
        """The display texts of ``row`` (one per column)."""
        return self._rows[row].text

    def flow(self, flow_id: str) -> Flow | None:
        r = self._by_id.get(flow_id)
        return None if r is None else r.flow

    def bound_to(self, flow_id: str) -> tuple[str, ...]:
        """The interfaces a flow binding of exactly this connection sends it through (``()`` when none)."""
        r = self._by_id.get(flow_id)
        return tuple(r.fb.get("bound_to") or ()) if r is not None and r.fb is not None else ()

    def placement(self, flow_id: str) -> Placement | None:
        r = self._by_id.get(flow_id)
        return None if r is None else r.place

    def is_own(self, flow_id: str) -> bool:
        """True when the flow is one of mhgui's own (see :meth:`set_own`)."""
        r = self._by_id.get(flow_id)
        return r is not None and r.own

    def ids(self) -> list[str]:
        return [row.id for row in self._rows]

    def interfaces(self) -> list[str]:
        """Interface names that carry at least one flow (for a filter's choices)."""
        return sorted({row.place.interface for row in self._rows if row.place.interface})

    # ---- own connections
    def set_own(self, own: OwnSockets | None) -> int:
        """What makes a flow mhgui's own (None: nothing); re-marks every row, returns how many changed."""
        self._own_spec = own
        rows = self._rows
        for r in rows:
            r.direct = own is not None and own.direct(r.flow)
        flipped = self._mark_own(rows, rows, everything=True)
        self._signal_changed(flipped, 0, _NCOLS - 1)
        if flipped:
            self.applied.emit([], [], flipped)
        return len(flipped)

    def _mark_own(self, fresh: list[_Row], universe: list[_Row], everything: bool = False) -> list[_Row]:
        """Set ``own`` on the ``fresh`` rows (new or changed, ``direct`` already set), and on every row of
        ``universe`` when the mirrors of the own connections changed; returns the rows whose ``own``
        flipped (new rows count as flipped when own) and keeps :attr:`own_count`."""
        own = self._own_spec
        mirrors = set()
        if own is not None:
            mirror = own.mirror
            for r in universe:
                if r.direct and not r.flow.listening:
                    mirrors.add(mirror(r.flow))
        if mirrors != self._mirrors:
            self._mirrors = mirrors
            everything = True
        flipped = []
        ports = {m[2] for m in mirrors}
        key = OwnSockets.key
        n = self.own_count
        for r in (universe if everything else fresh):
            f = r.flow
            o = r.direct or (f.local_port in ports and not f.listening and key(f) in mirrors)
            if o != r.own:
                r.own = o
                n += 1 if o else -1
                flipped.append(r)
        self.own_count = n
        return flipped

    # ---- updates
    def apply(self, table: FlowTable | Mapping[str, Flow]) -> tuple[int, int, int]:
        """Bring the rows to ``table`` (a poll's :class:`FlowTable` or a ``{id: Flow}`` mapping).

        Returns ``(added, removed, changed)`` counts. Never resets the model.
        """
        with gc_paused():  # tens of thousands of rows, no reference cycles: no collection passes meanwhile
            return self._apply(table)

    def _apply(self, table: FlowTable | Mapping[str, Flow]) -> tuple[int, int, int]:
        if isinstance(table, FlowTable):
            flows = table.flows
            self.process_visibility = table.process_visibility
            self.visibility_reason = table.visibility_reason
            self.problems = table.problems
        else:
            flows = table
        by_id = self._by_id
        removed = [r for k, r in by_id.items() if k not in flows]
        added: list[Flow] = []
        changed: list[_Row] = []
        for k, f in flows.items():
            r = by_id.get(k)
            if r is None:
                added.append(f)
            elif r.flow is not f and r.flow != f:
                changed.append(r)
        if not (removed or added or changed):
            return 0, 0, 0
        if removed:
            self._remove(set(removed))
            for r in removed:
                del by_id[r.id]
                if r.own:
                    self.own_count -= 1
        classify, own = self._classifier.classify_keyed, self._own_spec
        direct = own.direct if own is not None else (lambda f: False)
        for r in changed:
            f = r.flow = flows[r.id]
            r.pkey, r.place = classify(f)
            r.direct = direct(f)
            r._text = None
        new = []
        seq = self._seq
        for f in added:
            k, p = classify(f)
            row = _Row(f, p, k, seq)
            seq += 1
            row.direct = direct(f)
            if self._fbs and p.local_role == "hoa":
                row.fb = self._fbs.get(flow_match_key(f))
            new.append(row)
            by_id[row.id] = row
        self._seq = seq
        flipped = self._mark_own(changed + new, self._rows + new) if own is not None or self.own_count else []
        first_new = self._seq - len(new)
        touched = list({*changed, *(r for r in flipped if r.seq < first_new)})  # new rows are not "changed"
        self._signal_changed(touched, 0, _NCOLS - 1)
        if new:
            n = len(self._rows)
            self.beginInsertRows(_ROOT, n, n + len(new) - 1)
            self._rows.extend(new)
            if self._pos is not None:
                for j, row in enumerate(new, n):
                    self._pos[row] = j
            self.endInsertRows()
        if len(self._classifier._memo) > 2 * len(by_id) + 256:
            self._classifier.forget_except(r.pkey for r in self._rows)
        self.applied.emit(new, removed, touched)
        return len(added), len(removed), len(changed)

    def _signal_changed(self, rows: list[_Row], first_col: int, last_col: int) -> None:
        if rows:
            self._changed_runs(rows, first_col, last_col)

    def set_context(self, state: NodeState, analysis: Analysis, bindings: Iterable[Binding] = ()) -> int:
        """The node's state, analysis or bindings changed: re-place the flows whose placement changed.

        Costs O(distinct placement keys) when nothing moved; signals
        ``dataChanged`` (placement columns) only for rows whose placement
        changed; returns how many.
        """
        old, new = self._classifier, Classifier(state, analysis, bindings)
        self._classifier = new
        keys = new.changed_keys(old)
        if not keys:
            return 0
        moved = []
        for row in self._rows:
            if row.pkey in keys:
                p = new.classify(row.flow)
                if p != row.place:
                    row.place = p
                    row._text = None
                    moved.append(row)
        self._signal_changed(moved, COL_IFACE, COL_MOVABLE)
        if moved:
            self.applied.emit([], [], moved)
        return len(moved)

    def set_flow_bindings(self, bindings: Iterable[dict]) -> int:
        """The daemon's flow bindings (``EngineDriver.flow_bindings()``: dicts with ``match``, ``fid``, ``bids``,
        ``bound_to``): a connection bound alone shows its uplink(s) and BID(s) in the Interface column.
        Signals only the rows whose binding changed; returns how many."""
        fbs = bound_flows(bindings)
        self._fbs = fbs
        if not fbs and not self._fb_rows:
            return 0
        moved = []
        for row in self._rows:
            fb = fbs.get(flow_match_key(row.flow)) if fbs and row.place.local_role == "hoa" else None
            if fb != row.fb:
                row.fb = fb
                row._text = None
                moved.append(row)
        self._fb_rows = sum(1 for r in self._rows if r.fb is not None)
        self._signal_changed(moved, COL_IFACE, COL_IFACE)
        if moved:
            self.applied.emit([], [], moved)
        return len(moved)

    def clear(self) -> None:
        """Remove every row (one removal; e.g. when the source goes away)."""
        if self._rows:
            gone = list(self._rows)
            self.beginRemoveRows(_ROOT, 0, len(self._rows) - 1)
            self._rows = []
            self._by_id = {}
            self._pos = {}
            self.own_count = 0
            self.endRemoveRows()
            self.applied.emit([], gone, [])


class FlowFilter(_RowsModel):
    """What the flows view shows: the rows of a :class:`FlowModel`, filtered and sorted.

    - application: case-insensitive part of the process name, or a pid;
    - interface: an interface name exactly ("unknown" for HoA flows without a
      binding; empty: all);
    - address: case-insensitive part of the local or remote endpoint text
      (``[2001:db8::1]:443``, ``192.0.2.1:53``);
    - mhgui's own connections: hidden unless :meth:`set_show_own` (True).

    :meth:`sort` (called by a view with sorting enabled) orders by one
    column's sort key (numbers for pids, addresses and ports); column -1 is
    arrival order. ``counts_changed`` is emitted when :meth:`counts` may have
    changed.
    """

    counts_changed = Signal()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._src: FlowModel | None = None
        self._key: dict[_Row, object] = {}
        self._col = -1
        self._order = Qt.SortOrder.AscendingOrder
        self.application = ""
        self.interface = ""
        self.address = ""
        self.show_own = False

    def _reason(self) -> str:
        return self._src.visibility_reason if self._src is not None else ""

    # ---- the source
    def setSourceModel(self, model: FlowModel) -> None:
        if self._src is not None:
            self._src.applied.disconnect(self._on_applied)
        self.beginResetModel()  # once, when the view is built
        self._src = model
        self._rows = []
        self._key = {}
        self._pos = {}
        if model is not None:
            model.applied.connect(self._on_applied)
            self._rows = self._wanted()
        self._pos = None
        self.endResetModel()
        self.counts_changed.emit()

    def sourceModel(self) -> FlowModel | None:
        return self._src

    def mapFromSource(self, index: Index) -> QModelIndex:
        if self._src is None or not index.isValid() or not 0 <= index.row() < len(self._src._rows):
            return QModelIndex()
        j = self._positions().get(self._src._rows[index.row()])
        return QModelIndex() if j is None else self.index(j, index.column())

    def mapToSource(self, index: Index) -> QModelIndex:
        if self._src is None or not index.isValid() or not 0 <= index.row() < len(self._rows):
            return QModelIndex()
        j = self._src._positions().get(self._rows[index.row()])
        return QModelIndex() if j is None else self._src.index(j, index.column())

    def sortColumn(self) -> int:
        return self._col

    def sortOrder(self) -> Qt.SortOrder:
        return self._order

    def counts(self) -> tuple[int, int, int]:
        """``(shown, total, own_hidden)``: rows shown, flows in the source, own connections hidden."""
        if self._src is None:
            return 0, 0, 0
        return len(self._rows), len(self._src._rows), 0 if self.show_own else self._src.own_count

    # ---- what is shown, in which order
    def _filtering(self) -> bool:
        return bool(self.application or self.interface or self.address)

    def _accepted(self, rows: Iterable[_Row]) -> list[_Row]:
        """The rows of ``rows`` shown, in their order."""
        if not self._filtering():
            return list(rows) if self.show_own else [r for r in rows if not r.own]
        acc = self._accepts
        return [r for r in rows if acc(r)]

    def _accepts(self, row: _Row) -> bool:
        if row.own and not self.show_own:
            return False
        if not (self.application or self.interface or self.address):
            return True
        if self.application:
            a = self.application
            if a.isdigit():
                if row.flow.pid != int(a):
                    return False
            elif a.casefold() not in (row.flow.process or "").casefold():
                return False
        if self.interface and row.iface() != self.interface:
            return False
        if self.address:
            a = self.address.casefold()
            t = row.text
            if a not in t[COL_LOCAL].casefold() and a not in t[COL_REMOTE].casefold():
                return False
        return True

    def _keyf(self) -> Callable[[_Row], object]:
        if self._col < 0:
            return lambda r: r.seq
        return _SORT_KEYS[self._col]

    def _sorted(self, rows: list[_Row]) -> list[_Row]:
        """``rows`` in display order; their keys remembered."""
        kf = self._keyf()
        key = self._key
        if key:
            key.update({r: kf(r) for r in rows if r not in key})
        else:
            key.update({r: kf(r) for r in rows})
        return sorted(rows, key=key.__getitem__, reverse=self._order == Qt.SortOrder.DescendingOrder)

    def _wanted(self) -> list[_Row]:
        src = self._src
        if src is None:
            return []
        return self._sorted(self._accepted(src._rows))

    def _place(self, come: list[_Row]) -> list[tuple[int, _Row]]:
        """Where the rows of ``come`` (not shown yet) go among the rows shown: ``(final index, row)``,
        ascending; after the rows shown with an equal key, in ``come``'s order among themselves."""
        kf = self._keyf()
        key = self._key
        for r in come:
            key[r] = kf(r)
        get = key.__getitem__
        desc = self._order == Qt.SortOrder.DescendingOrder
        come = sorted(come, key=get, reverse=desc)
        rows = self._rows
        if len(come) > 256 or not rows:
            merged = sorted(rows + come, key=get, reverse=desc) if rows else come
            new = set(come)
            return [(i, r) for i, r in enumerate(merged) if r in new]
        if desc:
            at = [bisect.bisect_right(rows, _Reverse(get(r)), key=lambda x: _Reverse(get(x))) for r in come]
        else:
            at = [bisect.bisect_right(rows, get(r), key=get) for r in come]
        return [(p + j, r) for j, (p, r) in enumerate(zip(at, come))]

    def _drop_keys(self, rows: Iterable[_Row]) -> None:
        key = self._key
        for r in rows:
            key.pop(r, None)

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        column = column if 0 <= column < _NCOLS else -1
        self._col, self._order = column, order
        self._key = {}
        self._relayout(self._sorted(self._rows))

    def _change(self, **kw) -> None:
        for k, v in kw.items():
            setattr(self, k, (v or "").strip() if isinstance(v, str) or v is None else v)
        src_rows = self._src._rows if self._src is not None else []
        keep = set(self._accepted(src_rows))
        cur = set(self._rows)
        gone = cur - keep
        self._remove(gone)
        self._drop_keys(gone)
        self._insert_placed(self._place([r for r in src_rows if r in keep and r not in cur]))
        self.counts_changed.emit()

    def set_application(self, text: str | None) -> None:
        self._change(application=text)

    def set_interface(self, name: str | None) -> None:
        self._change(interface=name)

    def set_address(self, text: str | None) -> None:
        self._change(address=text)

    def set_show_own(self, show: bool) -> None:
        """Show mhgui's own connections too (True) or hide them (False, the default)."""
        if bool(show) != self.show_own:
            self._change(show_own=bool(show))

    # ---- one poll
    def _on_applied(self, added: list[_Row], removed: list[_Row], changed: list[_Row]) -> None:
        pos = self._positions()
        key = self._key
        gone = {r for r in removed if r in pos}
        come: list[_Row] = []
        dirty: list[_Row] = []
        acc = self._accepts
        kf = self._keyf()
        for r in changed:
            ok = acc(r)
            if r in pos:
                if not ok:
                    gone.add(r)
                else:
                    k = kf(r)
                    if k != key[r]:
                        gone.add(r)  # re-inserted at its new place
                        come.append(r)
                    else:
                        dirty.append(r)
            elif ok:
                come.append(r)
        come.extend(self._accepted(added))
        if gone:
            self._remove(gone)
            self._drop_keys(gone)
        if come:
            self._insert_placed(self._place(come))
        if dirty:
            self._changed_runs(dirty)
        self.counts_changed.emit()
