"""The window's Failover tab: what carries the node now, and every failover with its timings.

:class:`FailoverLogModel` (QAbstractTableModel) holds one row per
:class:`~mhgui.core.failover.FailoverEntry`, newest last: a new entry is one
``rowsInserted``, a timing filled in is ``dataChanged`` for that row only.
:class:`FailoverPage` puts a one-paragraph status (current interface, steering
fallback, hold-up under way, what the daemon does by itself) above the table. Where the home addresses
are bound comes from :func:`~mhgui.core.bindings.uplinks_in_use`, the same answer as the window's binding
table and a rebind's confirmation; mhgui's own choice (what steering rules follow) is said apart when it
differs. Interface names that now designate another NIC (a rename) are said too.
"""

from __future__ import annotations

import time
from typing import Callable

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt, QTimer
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import QAbstractItemView, QLabel, QTableView, QVBoxLayout, QWidget

from ..core.bindings import BindingState, in_use_text, uplinks_in_use
from ..core.failover import FailoverEntry
from ..failover_service import EntryChanged, FailoverService
from .columns import ColumnSizer

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
            if e.who == "system" or e.reason.endswith(" failed"):
                return QBrush(QColor("#e65100"))
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
        waits = e.who == "daemon" or (e.who == "user" and not e.reason.endswith(" failed"))
        if c == self.COL_BU:
            return _ms(e.bu_time, e.trigger_time) if e.bu_time is not None or waits else "—"
        if c == self.COL_ACK:
            return _ms(e.ack_time, e.trigger_time) if e.bu_time is not None or waits else "—"
        return ", ".join(e.hoas)

    @staticmethod
    def _tip(e: FailoverEntry) -> str:
        if e.who == "system":
            return e.note or "an interface name changed"
        if e.who == "user":
            what = "you asked for this move" if e.reason.startswith("user rebind") else "your new preferences"
            return (f"{what}; times from the request: sent to the daemon, Binding Update through the new "
                    "interface seen, home registration acknowledged" + (f". {e.note}" if e.note else ""))
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
        self.column_sizer = ColumnSizer(self.view)  # fitted to a sample of rows, not on every change
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
            self.view.scrollToBottom()
        self.refresh_status()

    def in_use(self) -> dict:
        """Where the daemon has each home address (:func:`~mhgui.core.bindings.uplinks_in_use`)."""
        d = self.service.daemon
        if d is None or not d.status.reachable:
            return {}
        return uplinks_in_use(d.bindings(), self.service.store.state)

    def status_text(self) -> str:
        return " ".join([self._status()] + self.service.name_problems())

    def _status(self) -> str:
        p = self.service.policy
        d = self.service.daemon
        if d is not None and d.status.reachable and getattr(d, "reports_moves", False):
            return self._engine_status(d)
        parts = []
        uses = self.in_use()
        if uses:
            used = sorted({u.interface or u.coa for u in uses.values()})
            ranking = p.prefs.ranking
            worse = any(n in p.prefs.backup or (ranking and n != ranking[0]) for n in used)
            parts.append(f"The node uses {', '.join(used)}" + (" (not the first choice)" if worse else "")
                         + f" (the mobility daemon's binding list: {in_use_text(uses)}).")
            if p.current is not None and p.current not in used:
                parts.append(f"mhgui's own order chose {p.current} (steering rules follow it); the mobility "
                             "daemon has not moved there.")
            elif p.current is None:
                parts.append("mhgui's own order has no usable interface: steering rules keep theirs.")
        elif p.current is None:
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
        parts = []
        homes = [b for b in d.bindings() if b.home_registration]
        uses = self.in_use()
        for b in homes:
            u = uses.get(b.hoa)
            where = (u.interface if u is not None and u.coa == b.coa else b.interface) or b.coa
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
