"""A sorting, filtering proxy over a keyed table model, sorted in Python (issue 14).

:class:`KeyedSortFilter` shows the rows of a :class:`~mhgui.ui.models._KeyedTable`
(``key_at(row)``, ``row_of(key)``, a ``SortRole``) that ``accepts(key)``, sorted by one
column. Each row's sort value is read once (``SortRole``) and kept with its key: sorting
and placing new rows compare those values in C (``sorted``, ``bisect``), never calling
back into Python per comparison. A ``QSortFilterProxyModel`` asks the source for two
indexes and two values per comparison: placing a burst of 5,000 new addresses among
1,000 cost about 60,000 comparisons, a third of a second of the GUI thread.

Signals stay narrow: source rows inserted or removed become one proxy insertion or removal
per run of adjacent proxy rows (more than :data:`MAX_RUNS` runs: one reset); changed
cells become one ``dataChanged`` per run; a change of the sorted column's values moves
the rows with one layout change (persistent indexes, e.g. the selection, follow their
rows). Flat tables only.
"""

from __future__ import annotations

import bisect

from PySide6.QtCore import QAbstractProxyModel, QModelIndex, QPersistentModelIndex, Qt

from .models import SortRole, runs

__all__ = ["KeyedSortFilter", "MAX_RUNS"]

Index = QModelIndex | QPersistentModelIndex
_ROOT = QModelIndex()
#: more runs of new or removed proxy rows than this in one source signal: one reset instead
MAX_RUNS = 64


def _value(v) -> tuple:
    """A sort value that compares with every other of its column (None, a missing row, sorts last)."""
    return (1, 0) if v is None else (0, v)


class KeyedSortFilter(QAbstractProxyModel):
    """The rows of a keyed table model that :meth:`accepts`, sorted by :meth:`sort`'s column.

    Until :meth:`sort` is called the rows are in the source's (key) order. Subclasses override
    :meth:`accepts` and call :meth:`refilter` when its answer changes.
    """

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._col = -1
        self._order = Qt.SortOrder.AscendingOrder
        self._rev = False  # descending: proxy row r is _items[-1 - r]
        self._items: list[tuple] = []  # (sort value, key), ascending; proxy row = index (reversed when descending)
        self._vals: dict = {}  # key -> its sort value in _items
        self._conns: list = []
        self._key_data = None

    # ---- what is shown
    def accepts(self, key) -> bool:
        """Whether the row of ``key`` is shown (all, by default)."""
        return True

    def refilter(self) -> None:
        """:meth:`accepts` changed: every row is checked again (one reset)."""
        self.beginResetModel()
        self._rebuild()
        self.endResetModel()

    # ---- source
    def setSourceModel(self, model) -> None:  # noqa: N802 - Qt's name
        self.beginResetModel()
        for sig, slot in self._conns:
            sig.disconnect(slot)
        self._conns = []
        super().setSourceModel(model)
        self._key_data = getattr(model, "key_data", None)
        if model is not None:
            for sig, slot in ((model.rowsAboutToBeInserted, self._noop3), (model.rowsInserted, self._on_inserted),
                              (model.rowsAboutToBeRemoved, self._on_removing),
                              (model.dataChanged, self._on_data_changed),
                              (model.modelAboutToBeReset, self.beginResetModel), (model.modelReset, self._on_reset),
                              (model.layoutAboutToBeChanged, self.layoutAboutToBeChanged),
                              (model.layoutChanged, self._on_layout), (model.headerDataChanged, self.headerDataChanged)):
                sig.connect(slot)
                self._conns.append((sig, slot))
        self._rebuild()
        self.endResetModel()

    def _noop3(self, *_):
        pass

    def _sort_value(self, key):
        src = self.sourceModel()
        if self._col < 0:
            return ()
        fast = getattr(src, "sort_value", None)  # the source's value by key, without an index
        if fast is not None:
            return _value(fast(key, self._col))
        row = src.row_of(key)
        return _value(None if row is None else src.index(row, self._col).data(SortRole))

    def _rebuild(self) -> None:
        src = self.sourceModel()
        keys = [] if src is None else [src.key_at(r) for r in range(src.rowCount())]
        keys = [k for k in keys if self.accepts(k)]
        vals = {k: self._sort_value(k) for k in keys}
        self._vals = vals
        self._items = sorted((v, k) for k, v in vals.items())

    # ---- rows: proxy row <-> position in _items
    def _desc(self) -> bool:
        return self._rev

    def _row_at(self, i: int) -> int:
        return len(self._items) - 1 - i if self._desc() else i

    def _pos_of(self, key) -> int | None:
        v = self._vals.get(key)
        if v is None:
            return None
        i = bisect.bisect_left(self._items, (v, key))
        return i if i < len(self._items) and self._items[i][1] == key else None

    def key_at(self, row: int):
        """The source key shown at proxy ``row``."""
        return self._items[self._row_at(row)][1]

    # ---- QAbstractItemModel
    def rowCount(self, parent: Index = _ROOT) -> int:  # noqa: N802
        return 0 if parent.isValid() else len(self._items)

    def columnCount(self, parent: Index = _ROOT) -> int:  # noqa: N802
        src = self.sourceModel()
        return 0 if parent.isValid() or src is None else src.columnCount()

    def index(self, row: int, column: int, parent: Index = _ROOT) -> QModelIndex:
        if not parent.isValid() and 0 <= row < len(self._items) and 0 <= column < self.columnCount():
            return self.createIndex(row, column)
        return QModelIndex()

    def parent(self, index: Index = _ROOT) -> QModelIndex:  # noqa: D401 - Qt's overloads
        return QModelIndex()

    def sibling(self, row: int, column: int, index: Index) -> QModelIndex:
        return self.index(row, column)

    def mapToSource(self, index: Index) -> QModelIndex:  # noqa: N802
        row = index.row()
        src = self.sourceModel()
        if src is None or not index.isValid() or row >= len(self._items):
            return QModelIndex()
        srow = src.row_of(self._items[self._row_at(row)][1])
        return QModelIndex() if srow is None else src.index(srow, index.column())

    def mapFromSource(self, index: Index) -> QModelIndex:  # noqa: N802
        src = self.sourceModel()
        if src is None or not index.isValid():
            return QModelIndex()
        i = self._pos_of(src.key_at(index.row()))
        return QModelIndex() if i is None else self.createIndex(self._row_at(i), index.column())

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole):
        row = index.row()
        n = len(self._items)
        if row < 0 or row >= n:
            return None
        key = self._items[n - 1 - row if self._rev else row][1]
        if self._key_data is not None:  # the source answers by key (AddressModel.key_data): no row look-up
            return self._key_data(key, index.column(), role)
        src = self.sourceModel()
        srow = src.row_of(key)
        return None if srow is None else src.data(src.index(srow, index.column()), role)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole):  # noqa: N802
        src = self.sourceModel()
        return None if src is None else src.headerData(section, orientation, role)

    def flags(self, index: Index) -> Qt.ItemFlag:
        src_index = self.mapToSource(index)
        return self.sourceModel().flags(src_index) if src_index.isValid() else Qt.ItemFlag.NoItemFlags

    def sortColumn(self) -> int:  # noqa: N802
        return self._col

    def sortOrder(self) -> Qt.SortOrder:  # noqa: N802
        return self._order

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        """Sort by ``column`` (its ``SortRole`` values; -1: the source's order); one layout change."""
        if column == self._col and order == self._order:
            return
        self._relayout(lambda: self._set_sort(column, order))

    def _set_sort(self, column: int, order: Qt.SortOrder) -> None:
        self._col, self._order = column, order
        self._rev = order == Qt.SortOrder.DescendingOrder and column >= 0
        self._vals = {k: self._sort_value(k) for k in self._vals}
        self._items = sorted((v, k) for k, v in self._vals.items())

    def _resort(self) -> None:
        self._items = sorted((self._vals[k], k) for _, k in self._items)

    def _relayout(self, change) -> None:
        """Run ``change()`` (same rows, new order) inside one layout change; persistent indexes follow their keys."""
        self.layoutAboutToBeChanged.emit()
        old = self.persistentIndexList()
        keys = [self.key_at(p.row()) if 0 <= p.row() < len(self._items) else None for p in old]
        change()
        new = []
        for p, k in zip(old, keys):
            i = None if k is None else self._pos_of(k)
            new.append(QModelIndex() if i is None else self.createIndex(self._row_at(i), p.column()))
        self.changePersistentIndexList(old, new)
        self.layoutChanged.emit()

    # ---- source signals
    def _on_reset(self) -> None:
        self._rebuild()
        self.endResetModel()

    def _on_layout(self, *_) -> None:
        self._relayout(lambda: None)  # keys are the identity: the proxy's own order is unchanged

    def _on_inserted(self, parent, first: int, last: int) -> None:
        if parent.isValid():
            return
        src = self.sourceModel()
        new = []
        for r in range(first, last + 1):
            k = src.key_at(r)
            if self.accepts(k):
                v = self._vals[k] = self._sort_value(k)
                new.append((v, k))
        if not new:
            return
        new.sort()
        groups: list[tuple[int, list]] = []  # (position in _items before the insertion, items)
        for item in new:
            at = bisect.bisect_left(self._items, item)
            if groups and groups[-1][0] == at:
                groups[-1][1].append(item)
            else:
                groups.append((at, [item]))
        if len(groups) > MAX_RUNS:
            self.beginResetModel()
            self._items = sorted(self._items + new)
            self.endResetModel()
            return
        desc = self._desc()
        for at, items in reversed(groups):  # from the end of _items: earlier positions hold
            n = len(self._items)
            row = n - at if desc else at
            self.beginInsertRows(_ROOT, row, row + len(items) - 1)
            self._items[at:at] = items
            self.endInsertRows()

    def _on_removing(self, parent, first: int, last: int) -> None:
        if parent.isValid():
            return
        src = self.sourceModel()
        gone = [i for r in range(first, last + 1) if (i := self._pos_of(src.key_at(r))) is not None]
        if not gone:
            return
        spans = runs(gone)
        if len(spans) > MAX_RUNS:
            self.beginResetModel()
            for i in sorted(gone, reverse=True):
                del self._vals[self._items[i][1]]
                del self._items[i]
            self.endResetModel()
            return
        desc = self._desc()
        for a, b in reversed(spans):
            n = len(self._items)
            lo, hi = (n - 1 - b, n - 1 - a) if desc else (a, b)
            self.beginRemoveRows(_ROOT, lo, hi)
            for i in range(b, a - 1, -1):
                del self._vals[self._items[i][1]]
            del self._items[a:b + 1]
            self.endRemoveRows()

    def _on_data_changed(self, top: QModelIndex, bottom: QModelIndex, roles=()) -> None:
        src = self.sourceModel()
        c0, c1 = top.column(), bottom.column()
        keys = [src.key_at(r) for r in range(top.row(), bottom.row() + 1)]
        if c0 <= self._col <= c1:
            moved = False
            for k in keys:
                if k in self._vals and self._vals[k] != (v := self._sort_value(k)):
                    self._vals[k] = v
                    moved = True
            if moved:
                self._relayout(self._resort)
        if not self._items:
            return
        if len(keys) > MAX_RUNS:  # many rows (a new analysis): one signal over every row, the view repaints what it shows
            self.dataChanged.emit(self.index(0, c0), self.index(len(self._items) - 1, c1), roles)
            return
        rows = [self._row_at(i) for k in keys if (i := self._pos_of(k)) is not None]
        for a, b in runs(rows):
            self.dataChanged.emit(self.index(a, c0), self.index(b, c1), roles)
