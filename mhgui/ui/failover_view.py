"""The window's Failover tab: what carries the node now, and every failover with its timings.

:class:`FailoverLogModel` (QAbstractTableModel) holds one row per
:class:`~mhgui.core.failover.FailoverEntry`, newest last: a new entry is one
``rowsInserted``, a timing filled in is ``dataChanged`` for that row only.
:class:`FailoverPage` puts a one-paragraph status (current interface, steering
fallback, hold-up under way, what the daemon does by itself) above the table.
"""

from __future__ import annotations

import time
from typing import Callable

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt, QTimer
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QLabel, QTableView, QVBoxLayout, QWidget

from ..core.failover import FailoverEntry
from ..failover_service import EntryChanged, FailoverService

Index = QModelIndex | QPersistentModelIndex

#: custom role: the entry's id
EntryIdRole = Qt.ItemDataRole.UserRole + 1

def _ms(t: float | None, since: float | None) -> str:
    """Time after the link event; "…" not seen yet, "—" no link event to time it from, "before" seen
    before the link event reached mhgui (the kernel batches carrier notifications, up to 1 s)."""
    if since is None:
        return "—"
    if t is None:
        return "…"
    if t < since:
        return f"before ({(since - t) * 1000:.0f} ms)"
    return f"{(t - since) * 1000:.0f} ms"


class FailoverLogModel(QAbstractTableModel):
    """Failover entries, oldest first (at most ``limit`` rows; the oldest row goes first).

    ``wall_of(t)``: seconds since the epoch for a model-clock time (for the When column).
    """

    COL_WHEN, COL_WHO, COL_FROM, COL_TO, COL_REASON, COL_DECISION, COL_BU, COL_ACK, COL_HOAS = range(9)
    HEADERS = ("When", "By", "From", "To", "Reason", "Decision", "BU seen", "Acknowledged", "Home addresses")

    def __init__(self, wall_of: Callable[[float], float], limit: int = 500, parent=None) -> None:
        super().__init__(parent)
        self._wall_of = wall_of
        self.limit = limit
        self._rows: list[FailoverEntry] = []
        self._row_of: dict[int, int] = {}

    # ---- updates
    def upsert(self, e: FailoverEntry) -> None:
        """Add ``e`` or refresh its row (narrow dataChanged)."""
        row = self._row_of.get(e.id)
        if row is not None:
            self._rows[row] = e
            self.dataChanged.emit(self.index(row, 0), self.index(row, len(self.HEADERS) - 1))
            return
        if len(self._rows) >= self.limit:
            self.beginRemoveRows(QModelIndex(), 0, 0)
            self._rows.pop(0)
            self._row_of = {x.id: i for i, x in enumerate(self._rows)}
            self.endRemoveRows()
        n = len(self._rows)
        self.beginInsertRows(QModelIndex(), n, n)
        self._rows.append(e)
        self._row_of[e.id] = n
        self.endInsertRows()

    def add_past(self, entries: list[FailoverEntry]) -> None:
        """Earlier runs' failovers (from the journal), before this run's rows; one insert."""
        entries = [e for e in entries if e.id not in self._row_of][-self.limit:]
        if not entries:
            return
        self.beginInsertRows(QModelIndex(), 0, len(entries) - 1)
        self._rows[:0] = entries
        self._row_of = {x.id: i for i, x in enumerate(self._rows)}
        self.endInsertRows()

    def entry(self, row: int) -> FailoverEntry:
        return self._rows[row]

    # ---- Qt
    def rowCount(self, parent: Index = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.HEADERS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole):
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole and 0 <= section < len(self.HEADERS):
            return self.HEADERS[section]
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or not 0 <= index.row() < len(self._rows) or not 0 <= index.column() < len(self.HEADERS):
            return None
        e = self._rows[index.row()]
        c = index.column()
        if role == EntryIdRole:
            return e.id
        if role == Qt.ItemDataRole.DisplayRole:
            return self._text(e, c)
        if role == Qt.ItemDataRole.ToolTipRole:
            return self._tip(e)
        if role == Qt.ItemDataRole.ForegroundRole:
            if e.to_interface is None:
                return QBrush(QColor("#b71c1c"))
            if c == self.COL_ACK and e.ack_time is not None and e.trigger_time is not None:
                return QBrush(QColor("#2e7d32"))
        return None

    def _text(self, e: FailoverEntry, c: int) -> str:
        if c == self.COL_WHEN:
            return time.strftime("%H:%M:%S", time.localtime(self._wall_of(e.decision_time)))
        if c == self.COL_WHO:
            return e.by
        if c == self.COL_FROM:
            return e.from_interface or "—"
        if c == self.COL_TO:
            return e.to_interface or "none usable"
        if c == self.COL_REASON:
            return e.reason
        if c == self.COL_DECISION:
            return _ms(e.decision_time, e.trigger_time)
        if c == self.COL_BU:
            return _ms(e.bu_time, e.trigger_time) if e.bu_time is not None or e.who == "daemon" else "—"
        if c == self.COL_ACK:
            return _ms(e.ack_time, e.trigger_time) if e.bu_time is not None or e.who == "daemon" else "—"
        return ", ".join(e.hoas)

    @staticmethod
    def _tip(e: FailoverEntry) -> str:
        if e.who == "app" and e.bu_time is not None:
            who = ("mhgui decided (steering rules follow it) and the mobility daemon moved the home "
                   "addresses the same way (seen in its binding update list)")
        elif e.who == "app":
            who = "mhgui decided (steering rules follow it)"
        else:
            who = "the mobility daemon moved by itself (seen in its binding update list)"
        return (f"{who}; times from the link event ({e.reason}): decision or first sign of the move, "
                "Binding Update through the new interface seen, home registration acknowledged")


class FailoverPage(QWidget):
    """The Failover tab: status paragraph and the log (see the module docstring)."""

    def __init__(self, service: FailoverService, *, wall_of: Callable[[float], float] | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.service = service
        clock = service.clock
        self._wall_of = wall_of or (lambda t: time.time() - (clock() - t))
        self.model = FailoverLogModel(self._wall_of, parent=self)
        lay = QVBoxLayout(self)
        self.status = QLabel(self)
        self.status.setWordWrap(True)
        self.status.setTextFormat(Qt.TextFormat.PlainText)
        lay.addWidget(self.status)
        self.view = QTableView(self)
        self.view.setModel(self.model)
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.verticalHeader().setVisible(False)
        self.view.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.view.horizontalHeader().setStretchLastSection(True)
        lay.addWidget(self.view, 1)
        for e in service.log.entries:
            self.model.upsert(e)
        self._unsub = service.subscribe(self._on_event)
        self._timer = QTimer(self)  # the hold-up countdown
        self._timer.setInterval(1000)
        self._timer.timeout.connect(self.refresh_status)
        self._timer.start()
        self.refresh_status()

    def close_page(self) -> None:
        self._timer.stop()
        self._unsub()

    def _on_event(self, ev) -> None:
        if isinstance(ev, EntryChanged):
            self.model.upsert(ev.entry)
            self.view.resizeColumnsToContents()
            self.view.scrollToBottom()
        self.refresh_status()

    def status_text(self) -> str:
        p = self.service.policy
        d = self.service.daemon
        if d is not None and d.status.reachable and getattr(d, "reports_moves", False):
            return self._engine_status(d)
        parts = []
        if p.current is None:
            parts.append("No usable interface: every listed link is down, or has no care-of address "
                         "or no default router.")
        else:
            ranking = [n for n in p.prefs.ranking]
            best = ranking[0] if ranking else None
            on_backup = p.current in p.prefs.backup or (best is not None and p.current != best)
            parts.append(f"The node uses {p.current}" + (" (not the first choice)." if on_backup else "."))
        if p.pending is not None:
            name, until = p.pending
            left = max(0.0, until - self.service.clock())
            parts.append(f"{name} is back: steering rules go back to it after the hold-up, in {left:.0f} s.")
        if p.fallback:
            moved = ", ".join(f"{a} → {b}" for a, b in sorted(p.fallback.items()))
            parts.append(f"Steering rules failed over: {moved}.")
        if d is not None and d.status.reachable and not d.capabilities.runtime_rebind:
            parts.append(f"{d.name.upper() if d.name == 'umip' else d.name} moves the home addresses by itself "
                         "(by MnIfPreference), at once, and goes back at once: it has no hold-up; "
                         "mhgui records its moves below.")
        return " ".join(parts)

    def _engine_status(self, d) -> str:
        """With mhgui's engine: where each HoA is bound (its own choice, by its list and its probes)."""
        from ..core.bindings import BindingState
        parts = []
        homes = [b for b in d.bindings() if b.home_registration]
        for b in homes:
            where = b.interface or b.coa
            if b.state is BindingState.REGISTERED:
                parts.append(f"{b.hoa} is bound through {where}.")
            elif b.state is BindingState.WAITING_ACK:
                parts.append(f"{b.hoa} is moving to {where} (waiting for the home agent).")
            else:
                parts.append(f"{b.hoa}: {b.state.value}.")
        if not homes:
            parts.append("No home address is registered: the home agent does not answer through any uplink, "
                         "or no uplink has a care-of address.")
        uplinks = getattr(d, "uplinks", lambda: [])()
        ok = [u.get("name") for u in uplinks if u.get("reachable") is True]
        dead = [u.get("name") for u in uplinks if u.get("reachable") is False and u.get("carrier")]
        if ok:
            parts.append(f"The home agent answers through {', '.join(map(str, ok))}"
                         + (f", not through {', '.join(map(str, dead))}." if dead else "."))
        elif dead:
            parts.append(f"The home agent does not answer through {', '.join(map(str, dead))}.")
        parts.append("The mobility engine moves each home address by itself, at once, by its own list and its "
                     "probes of the home agent; mhgui records its moves below.")
        p = self.service.policy
        if p.fallback and self.service.steering is not None:
            moved = ", ".join(f"{a} → {b}" for a, b in sorted(p.fallback.items()))
            parts.append(f"Steering rules failed over: {moved}.")
        return " ".join(parts)

    def refresh_status(self) -> None:
        text = self.status_text()
        if self.status.text() != text:
            self.status.setText(text)
