"""Qt model of the node's flows (model/view), applied incrementally per poll.

:class:`FlowModel` holds one row per :class:`~mhgui.core.flows.Flow` in
arrival order (the view sorts through :class:`FlowFilter`). Each poll's
table is applied as a diff: removed rows go with one ``beginRemoveRows`` per
contiguous run, new rows are appended with one ``beginInsertRows``, changed
rows signal ``dataChanged`` (per contiguous run); a poll never resets the
model. Cell texts and sort keys are computed once per change, so sorting and
filtering 10,000 rows reads prepared tuples.

:meth:`FlowModel.set_context` re-places every flow after the node's state,
analysis or bindings changed and signals only the rows whose placement moved.
"""

from __future__ import annotations

import functools
import ipaddress
from typing import Iterable, Mapping

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, QSortFilterProxyModel, Qt
from PySide6.QtGui import QBrush, QColor

from ..core.analysis import Analysis, analyse
from ..core.bindings import Binding
from ..core.flows import Classifier, Flow, FlowTable, Placement, diff, format_endpoint
from ..core.model import NodeState
from .models import KeyRole, SortRole

__all__ = ["FlowModel", "FlowFilter", "KeyRole", "SortRole", "MovableRole", "runs"]

Index = QModelIndex | QPersistentModelIndex

#: the "movable" word of the row ("transparent", "re-establish", "no")
MovableRole = Qt.ItemDataRole.UserRole + 10

MOVABLE_STYLE = {
    "transparent": ("transparent", "#1b5e20"),
    "re-establish": ("re-establish", "#e65100"),
    "no": ("no", "#757575"),
}
ROLE_LABEL = {"hoa": "HoA", "coa": "CoA", "other": "other"}


def runs(rows: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted, de-duplicated ``rows`` as ``(first, last)`` runs of consecutive numbers."""
    out: list[tuple[int, int]] = []
    for r in sorted(set(rows)):
        if out and out[-1][1] == r - 1:
            out[-1] = (out[-1][0], r)
        else:
            out.append((r, r))
    return out


@functools.lru_cache(maxsize=1 << 16)
def _addr_value(address: str) -> int:
    try:
        return int(ipaddress.ip_address(address))
    except ValueError:
        return 0


def _addr_sort(family: int, address: str, port: int) -> str:
    return f"{family:02d}{_addr_value(address):032x}{port:05d}"


_ROOT = QModelIndex()
_NCOLS = 9
_DISPLAY = int(Qt.ItemDataRole.DisplayRole)
_SORT = int(SortRole)


class _Row:
    """One flow, its placement, and its prepared cells (display texts and sort keys)."""

    __slots__ = ("id", "flow", "place", "text", "sort")

    def __init__(self, flow: Flow, place: Placement) -> None:
        self.id = flow.id
        self.flow = flow
        self.place = place
        self.text: tuple = ()
        self.sort: tuple = ()
        self.prepare()

    def prepare(self) -> None:
        f, p = self.flow, self.place
        remote = "*" if f.listening and f.remote_port == 0 else format_endpoint(f.remote_address, f.remote_port)
        iface = p.interface or ("unknown" if p.local_role == "hoa" else "—")
        proto = f.protocol.upper()
        self.text = (
            f.process if f.process is not None else "—",
            str(f.pid) if f.pid is not None else "—",
            proto,
            format_endpoint(f.local_address, f.local_port, f.bound_ifindex),
            remote,
            f.state,
            iface,
            ROLE_LABEL.get(p.local_role, p.local_role),
            MOVABLE_STYLE.get(p.movable, (p.movable,))[0],
        )
        self.sort = (
            (f.process or "\uffff").casefold(),
            f.pid if f.pid is not None else -1,
            proto,
            _addr_sort(f.family, f.local_address, f.local_port),
            _addr_sort(f.family, f.remote_address, f.remote_port),
            f.state,
            iface,
            p.local_role,
            p.movable,
        )


#: MIME type of a flow dragged from the flows table (its text: the flow id)
FLOW_MIME = "application/x-mhgui-flow"


class FlowModel(QAbstractTableModel):
    """One row per flow; columns below. Apply each poll with :meth:`apply`."""

    COL_APP, COL_PID, COL_PROTO, COL_LOCAL, COL_REMOTE, COL_STATE, COL_IFACE, COL_ROLE, COL_MOVABLE = range(9)
    HEADERS = ("Application", "PID", "Protocol", "Local", "Remote", "State", "Interface", "Role", "Movable")
    assert len(HEADERS) == _NCOLS

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._rows: list[_Row] = []
        self._index: dict[str, int] | None = {}
        self._classifier = Classifier(NodeState(), analyse(NodeState(), 0.0), ())
        self.process_visibility = "full"
        self.visibility_reason = ""
        self.problems: tuple[str, ...] = ()

    # ---- Qt API (called hundreds of thousands of times while the proxy sorts 10,000 rows: kept lean)
    def rowCount(self, parent: Index = _ROOT) -> int:
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: Index = _ROOT) -> int:
        return 0 if parent.isValid() else _NCOLS

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole):
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal \
                and 0 <= section < len(self.HEADERS):
            return self.HEADERS[section]
        return None

    def data(self, index: Index, role: int = _DISPLAY):
        r, c = index.row(), index.column()  # -1 for an invalid index
        if r < 0 or c < 0 or r >= len(self._rows) or c >= _NCOLS:
            return None
        row = self._rows[r]
        if role == _SORT:
            return row.sort[c]
        if role == _DISPLAY:
            return row.text[c]
        if role == KeyRole:
            return row.id
        if role == MovableRole:
            return row.place.movable
        if role == Qt.ItemDataRole.ToolTipRole:
            if c in (self.COL_APP, self.COL_PID) and row.flow.pid is None:
                why = self.visibility_reason or "the owning process is not readable"
                return f"owner unknown: {why}" if row.flow.inode else "no process holds this socket (TIME-WAIT)"
            return row.place.reason
        if role == Qt.ItemDataRole.ForegroundRole and c == self.COL_MOVABLE:
            return QBrush(QColor(MOVABLE_STYLE.get(row.place.movable, ("", "#424242"))[1]))
        return None

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

    # ---- look-ups
    def _idx(self) -> dict[str, int]:
        if self._index is None:
            self._index = {row.id: i for i, row in enumerate(self._rows)}
        return self._index

    def row_of(self, flow_id: str) -> int | None:
        return self._idx().get(flow_id)

    def flow_at(self, row: int) -> Flow:
        return self._rows[row].flow

    def placement_at(self, row: int) -> Placement:
        return self._rows[row].place

    def cells_at(self, row: int) -> tuple:
        """The display texts of ``row`` (one per column)."""
        return self._rows[row].text

    def flow(self, flow_id: str) -> Flow | None:
        i = self._idx().get(flow_id)
        return None if i is None else self._rows[i].flow

    def placement(self, flow_id: str) -> Placement | None:
        i = self._idx().get(flow_id)
        return None if i is None else self._rows[i].place

    def ids(self) -> list[str]:
        return [row.id for row in self._rows]

    def interfaces(self) -> list[str]:
        """Interface names that carry at least one flow (for a filter's choices)."""
        return sorted({row.place.interface for row in self._rows if row.place.interface})

    # ---- updates
    def apply(self, table: FlowTable | Mapping[str, Flow]) -> tuple[int, int, int]:
        """Bring the rows to ``table`` (a poll's :class:`FlowTable` or a ``{id: Flow}`` mapping).

        Returns ``(added, removed, changed)`` counts. Never resets the model.
        """
        if isinstance(table, FlowTable):
            flows = table.flows
            self.process_visibility = table.process_visibility
            self.visibility_reason = table.visibility_reason
            self.problems = table.problems
        else:
            flows = table
        current = {row.id: row.flow for row in self._rows}
        added, removed, changed = diff(current, flows)
        idx = self._idx()
        if removed:
            for first, last in reversed(runs(idx[k] for k in removed)):
                self.beginRemoveRows(QModelIndex(), first, last)
                del self._rows[first:last + 1]
                self._index = None
                self.endRemoveRows()
            idx = self._idx()
        if changed:
            rows = []
            for k in changed:
                i = idx[k]
                row = self._rows[i]
                row.flow = flows[k]
                row.place = self._classifier.classify(row.flow)
                row.prepare()
                rows.append(i)
            last_col = len(self.HEADERS) - 1
            for first, last in runs(rows):
                self.dataChanged.emit(self.index(first, 0), self.index(last, last_col))
        if added:
            n = len(self._rows)
            new = [_Row(flows[k], self._classifier.classify(flows[k])) for k in added]
            self.beginInsertRows(QModelIndex(), n, n + len(new) - 1)
            self._rows.extend(new)
            if self._index is not None:
                for j, row in enumerate(new, n):
                    self._index[row.id] = j
            self.endInsertRows()
        return len(added), len(removed), len(changed)

    def set_context(self, state: NodeState, analysis: Analysis, bindings: Iterable[Binding] = ()) -> int:
        """The node's state, analysis or bindings changed: re-place every flow.

        Signals ``dataChanged`` (placement columns) only for rows whose
        placement changed; returns how many.
        """
        self._classifier = Classifier(state, analysis, bindings)
        moved = []
        for i, row in enumerate(self._rows):
            p = self._classifier.classify(row.flow)
            if p != row.place:
                row.place = p
                row.prepare()
                moved.append(i)
        for first, last in runs(moved):
            self.dataChanged.emit(self.index(first, self.COL_IFACE), self.index(last, self.COL_MOVABLE))
        return len(moved)

    def clear(self) -> None:
        """Remove every row (one removal; e.g. when the source goes away)."""
        if self._rows:
            self.beginRemoveRows(QModelIndex(), 0, len(self._rows) - 1)
            self._rows = []
            self._index = {}
            self.endRemoveRows()


class FlowFilter(QSortFilterProxyModel):
    """Sorts a :class:`FlowModel` by :data:`SortRole` and filters it.

    - application: case-insensitive part of the process name, or a pid;
    - interface: an interface name exactly ("unknown" for HoA flows without a
      binding; empty: all);
    - address: case-insensitive part of the local or remote endpoint text
      (``[2001:db8::1]:443``, ``192.0.2.1:53``).
    """

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.application = ""
        self.interface = ""
        self.address = ""
        self.setSortRole(SortRole)
        self.setDynamicSortFilter(True)

    def _change(self, **kw) -> None:
        qt610 = hasattr(self, "beginFilterChange")
        if qt610:
            self.beginFilterChange()
        for k, v in kw.items():
            setattr(self, k, (v or "").strip())
        if qt610:
            self.endFilterChange()
        else:  # Qt < 6.10
            self.invalidateFilter()

    def set_application(self, text: str | None) -> None:
        self._change(application=text)

    def set_interface(self, name: str | None) -> None:
        self._change(interface=name)

    def set_address(self, text: str | None) -> None:
        self._change(address=text)

    def filterAcceptsRow(self, source_row: int, source_parent: Index) -> bool:
        m = self.sourceModel()
        if not isinstance(m, FlowModel) or source_parent.isValid() or not (0 <= source_row < m.rowCount()):
            return True
        if not (self.application or self.interface or self.address):
            return True
        row = m._rows[source_row]
        t = row.text
        if self.application:
            a = self.application
            if a.isdigit():
                if row.flow.pid != int(a):
                    return False
            elif a.casefold() not in (row.flow.process or "").casefold():
                return False
        if self.interface and t[FlowModel.COL_IFACE] != self.interface:
            return False
        if self.address:
            a = self.address.casefold()
            if a not in t[FlowModel.COL_LOCAL].casefold() and a not in t[FlowModel.COL_REMOTE].casefold():
                return False
        return True
