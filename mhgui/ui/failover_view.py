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
from datetime import datetime, timezone
from typing import Callable

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt, QTimer
from PySide6.QtWidgets import QAbstractItemView, QLabel, QTableView, QVBoxLayout, QWidget

from ..core.bindings import BindingState, in_use_text, uplinks_in_use
from ..core.failover import FailoverEntry, no_usable_text
from ..failover_service import EntryChanged, FailoverService
from ..i18n import N_, _
from . import colours, tableexport
from .columns import ColumnSizer
from .tableexport import EXPORT_ROLE

Index = QModelIndex | QPersistentModelIndex

#: custom role: the entry's id
EntryIdRole = Qt.ItemDataRole.UserRole + 1

#: the log's reasons (mhgui.core.failover: one word each, or the engine's in ENGINE_REASONS) in the user's
#: language; a reason not listed is shown as it is
REASON_WORDS = {
    "initial": N_("initial"), "recovered": N_("recovered"), "preferred-back": N_("preferred-back"),
    "preferences": N_("preferences"),
    "user rebind": N_("user rebind"), "link-removed": N_("link-removed"), "link-down": N_("link-down"),
    "networkmanager": N_("networkmanager"), "home-link": N_("home-link"), "coa-lost": N_("coa-lost"),
    "coa-removed": N_("coa-removed"), "coa-changed": N_("coa-changed"), "router-gone": N_("router-gone"),
    "renamed": N_("renamed"), "name-reused": N_("name-reused"), "resumed": N_("resumed"),
    "daemon": N_("daemon"), "probes: home agent unreachable": N_("probes: home agent unreachable"),
    "link or address change": N_("link or address change"), "home agent restarted": N_("home agent restarted"),
}
#: who moved (FailoverEntry.by)
WHO_WORDS = {"user": N_("user"), "mhgui": N_("mhgui"), "mhgui+daemon": N_("mhgui+daemon"),
             "daemon": N_("daemon"), "system": N_("system")}


def reason_text(reason: str) -> str:
    """A log reason in the user's language ("link-down failed" too)."""
    if reason.endswith(" failed"):
        base = reason[: -len(" failed")]
        return _("{reason} failed").format(reason=_(REASON_WORDS[base]) if base in REASON_WORDS else base)
    return _(REASON_WORDS[reason]) if reason in REASON_WORDS else reason

def _ms(t: float | None, since: float | None) -> str:
    """Time after the link event; "…" not seen yet, "—" no link event to time it from, "before" seen
    before the link event reached mhgui (the kernel batches carrier notifications, up to 1 s)."""
    if since is None:
        return "—"
    if t is None:
        return "…"
    if t < since:
        return _("before ({ms} ms)").format(ms=f"{(since - t) * 1000:.0f}")
    return _("{ms} ms").format(ms=f"{(t - since) * 1000:.0f}")


class FailoverLogModel(QAbstractTableModel):
    """Failover entries, oldest first (at most ``limit`` rows; the oldest row goes first).

    ``wall_of(t)``: seconds since the epoch for a model-clock time (for the When column), the wall time
    noted when it was recorded (:meth:`~mhgui.failover_service.FailoverService.wall_of`; not the offset
    between the clocks now, which every suspend since has changed).
    """

    COL_WHEN, COL_WHO, COL_FROM, COL_TO, COL_REASON, COL_DECISION, COL_BU, COL_ACK, COL_HOAS = range(9)
    HEADERS = (N_("When"), N_("By"), N_("From"), N_("To"), N_("Reason"), N_("Decision"), N_("BU seen"),
               N_("Acknowledged"), N_("Home addresses"))

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
            return _(self.HEADERS[section])
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
        if role == EXPORT_ROLE:
            return self._raw(e, c)
        if role == Qt.ItemDataRole.ToolTipRole:
            return self._tip(e)
        if role == Qt.ItemDataRole.ForegroundRole:
            if e.who == "system" or e.reason.endswith(" failed"):
                return colours.brush("warning")
            if e.to_interface is None:
                return colours.brush("error")
            if c == self.COL_ACK and e.ack_time is not None and e.trigger_time is not None:
                return colours.brush("ok")
        return None

    def _text(self, e: FailoverEntry, c: int) -> str:
        if c == self.COL_WHEN:
            return time.strftime("%H:%M:%S", time.localtime(self._wall_of(e.decision_time)))
        if c == self.COL_WHO:
            return _(WHO_WORDS[e.by]) if e.by in WHO_WORDS else e.by
        if c == self.COL_FROM:
            return e.from_interface or "—"
        if c == self.COL_TO:
            return e.to_interface or _("none usable")
        if c == self.COL_REASON:
            return reason_text(e.reason)
        if c == self.COL_DECISION:
            return _ms(e.decision_time, e.trigger_time)
        waits = e.who == "daemon" or (e.who == "user" and not e.reason.endswith(" failed"))
        if c == self.COL_BU:
            return _ms(e.bu_time, e.trigger_time) if e.bu_time is not None or waits else "—"
        if c == self.COL_ACK:
            return _ms(e.ack_time, e.trigger_time) if e.bu_time is not None or waits else "—"
        return ", ".join(e.hoas)

    def _raw(self, e: FailoverEntry, c: int):
        """What an export writes (:data:`~mhgui.ui.tableexport.EXPORT_ROLE`): the time in full ISO 8601 (date,
        milliseconds, the UTC offset), the timings in milliseconds from the link event (a number, negative:
        seen before it; "" not seen or nothing to time from), "" for no interface; None: the shown text."""
        if c == self.COL_WHEN:
            wall = datetime.fromtimestamp(self._wall_of(e.decision_time), tz=timezone.utc).astimezone()
            return wall.isoformat(timespec="milliseconds")
        if c in (self.COL_FROM, self.COL_TO):
            return (e.from_interface if c == self.COL_FROM else e.to_interface) or ""
        if c in (self.COL_DECISION, self.COL_BU, self.COL_ACK):
            t = {self.COL_DECISION: e.decision_time, self.COL_BU: e.bu_time, self.COL_ACK: e.ack_time}[c]
            if t is None or e.trigger_time is None or self._text(e, c) == "—":
                return ""
            return round((t - e.trigger_time) * 1000, 1)
        return None

    @staticmethod
    def _tip(e: FailoverEntry) -> str:
        if e.who == "system":
            return e.note or _("an interface name changed")
        if e.who == "user":
            what = _("you asked for this move") if e.reason.startswith("user rebind") else _("your new preferences")
            return (_("{what}; times from the request: sent to the daemon, Binding Update through the new "
                      "interface seen, home registration acknowledged").format(what=what)
                    + (f". {e.note}" if e.note else ""))
        if e.who == "app" and e.bu_time is not None:
            who = _("mhgui decided (steering rules follow it) and the mobility daemon moved the home "
                    "addresses the same way (seen in its binding update list)")
        elif e.who == "app":
            who = _("mhgui decided (steering rules follow it)")
        else:
            who = _("the mobility daemon moved by itself (seen in its binding update list)")
        return _("{who}; times from the link event ({reason}): decision or first sign of the move, "
                 "Binding Update through the new interface seen, home registration acknowledged").format(
                     who=who, reason=reason_text(e.reason))


class FailoverPage(QWidget):
    """The Failover tab: status paragraph and the log (see the module docstring)."""

    def __init__(self, service: FailoverService, *, wall_of: Callable[[float], float] | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.service = service
        # the wall time noted when each time was recorded (FailoverService.wall_of), right across a suspend
        self._wall_of = wall_of or service.wall_of
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
        self.view.setAccessibleName(_("Failover log"))
        tableexport.install(self.view)  # copy, export as CSV / JSON (issue 15.5)
        lay.addWidget(self.view, 1)
        # the newest entry shows (at the end): on open, and on new entries while the user is at the end
        self._at_end = True
        bar = self.view.verticalScrollBar()
        bar.valueChanged.connect(self._note_position)
        bar.rangeChanged.connect(self._keep_end)
        for e in service.entries():
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

    def _note_position(self, value: int) -> None:
        self._at_end = value >= self.view.verticalScrollBar().maximum()

    def _keep_end(self, _low: int, high: int) -> None:
        """Rows added (this run's or the journal's) or the view resized: still at the end if it was."""
        if self._at_end:
            self.view.verticalScrollBar().setValue(high)

    def at_end(self) -> bool:
        """Whether the log shows its newest entry and follows new ones."""
        return self._at_end

    def _on_event(self, ev) -> None:
        if isinstance(ev, EntryChanged):
            self.model.upsert(ev.entry)
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
            parts.append((_("The node uses {interfaces} (not the first choice) (the mobility daemon's binding "
                            "list: {bindings}).") if worse else
                          _("The node uses {interfaces} (the mobility daemon's binding list: {bindings}).")).format(
                              interfaces=", ".join(used), bindings=in_use_text(uses)))
            if p.current is not None and p.current not in used:
                parts.append(_("mhgui's own order chose {interface} (steering rules follow it); the mobility "
                               "daemon has not moved there.").format(interface=p.current))
            elif p.current is None:
                parts.append(_("mhgui's own order has no usable interface: steering rules keep theirs."))
        elif p.current is None:  # online without a home address is not "every link is down" (issue 15.3)
            parts.append(no_usable_text(self.service.store.state, self.service.analysis()))
        else:
            ranking = [n for n in p.prefs.ranking]
            best = ranking[0] if ranking else None
            on_backup = p.current in p.prefs.backup or (best is not None and p.current != best)
            parts.append((_("The node uses {interface} (not the first choice).") if on_backup
                          else _("The node uses {interface}.")).format(interface=p.current))
        if p.pending is not None:
            name, until = p.pending
            left = max(0.0, until - self.service.clock())
            parts.append(_("{interface} is back: steering rules go back to it after the hold-up, in {seconds} s.")
                         .format(interface=name, seconds=f"{left:.0f}"))
        if self.service.steered:  # rules the helper moved: none without rules or without the helper
            moved = ", ".join(f"{a} → {b}" for a, b in sorted(self.service.steered.items()))
            parts.append(_("Steering rules failed over: {moves}.").format(moves=moved))
        if d is not None and d.status.reachable and not d.capabilities.runtime_rebind:
            parts.append(_("{daemon} moves the home addresses by itself "
                           "(by MnIfPreference), at once, and goes back at once: it has no hold-up; "
                           "mhgui records its moves below.").format(
                               daemon=d.name.upper() if d.name == "umip" else d.name))
        return " ".join(parts)

    def _engine_status(self, d) -> str:
        """With mhgui's engine: where each HoA is bound (its own choice, by its list and its probes)."""
        parts = []
        homes = [b for b in d.bindings() if b.home_registration]
        uses = self.in_use()
        bound: dict[str, list[str]] = {}  # one sentence per HoA, naming each of its uplinks (several CoAs)
        for b in homes:
            u = uses.get(b.hoa)
            where = (u.interface if u is not None and u.coa == b.coa else b.interface) or b.coa
            if b.state is BindingState.REGISTERED:
                if b.hoa not in bound:
                    bound[b.hoa] = []
                    parts.append(b.hoa)  # the sentence, made below once all its uplinks are known
                if where not in bound[b.hoa]:
                    bound[b.hoa].append(where)
            elif b.state is BindingState.WAITING_ACK:
                parts.append(_("{hoa} is moving to {where} (waiting for the home agent).").format(
                    hoa=b.hoa, where=where))
            else:
                parts.append(f"{b.hoa}: {b.state.value}.")
        parts = [_("{hoa} is bound through {where}.").format(hoa=p, where=", ".join(bound[p])) if p in bound else p
                 for p in parts]
        if not homes:
            parts.append(_("No home address is registered: the home agent does not answer through any uplink, "
                           "or no uplink has a care-of address."))
        uplinks = getattr(d, "uplinks", lambda: [])()
        ok = [u.get("name") for u in uplinks if u.get("reachable") is True]
        dead = [u.get("name") for u in uplinks if u.get("reachable") is False and u.get("carrier")]
        if ok:
            parts.append((_("The home agent answers through {ok}, not through {dead}.") if dead
                          else _("The home agent answers through {ok}.")).format(
                              ok=", ".join(map(str, ok)), dead=", ".join(map(str, dead))))
        elif dead:
            parts.append(_("The home agent does not answer through {dead}.").format(dead=", ".join(map(str, dead))))
        parts.append(_("The mobility engine moves each home address by itself, at once, by its own list and its "
                       "probes of the home agent; mhgui records its moves below."))
        steered = getattr(self.service, "steered", {})  # rules the helper moved (none: no rules, no helper)
        if steered:
            moved = ", ".join(f"{a} → {b}" for a, b in sorted(steered.items()))
            parts.append(_("Steering rules failed over: {moves}.").format(moves=moved))
        return " ".join(parts)

    def refresh_status(self) -> None:
        text = self.status_text()
        if self.status.text() != text:
            self.status.setText(text)
