"""Preferences dialog: interface order and marks, hold-up time, notifications (issue 5, item 2).

:class:`InterfaceOrderModel` is a table model over
:class:`~mhgui.core.prefsfile.OrderEntry` rows (best first). Rows move by
drag and drop (internal move, through :meth:`~InterfaceOrderModel.mimeData` /
:meth:`~InterfaceOrderModel.dropMimeData`, which call
:meth:`~InterfaceOrderModel.moveRows`), by Alt+Up / Alt+Down (or Ctrl+Up /
Ctrl+Down) in the list, and by the Move up / Move down buttons. The mark is
edited in the "Use" column (a combo box delegate: double-click or F2) or with
the "Use" combo box under the list (Alt+S).

:class:`PreferencesDialog` validates as the user edits (inline messages, OK
disabled while something is wrong), says before anything is applied when the
change rewrites ``MnIfPreference`` in mip6d.conf and restarts mip6d (a label,
and OK then reads "Apply and restart mip6d"), saves ``failover.toml`` in an
executor (:func:`~mhgui.sources.prefs_store.save_prefs_async`) and then emits
``applied(Preferences, notifications, restart_needed)``. Sending the values
to the daemon is the caller's job (:func:`mnif_changes` says which).

With mhgui's mobility engine (``driver`` whose name is ``"engine"``) the dialog edits the
engine's own preferences instead, per home address (a combo box chooses the HoA): the
same list with the same marks, initialised from the engine's values
(:meth:`~mhgui.daemons.engine.EngineDriver.raw_bindings`; interfaces its lists do not
name come after the listed ones, allowed). "Apply" sends each HoA whose lists changed
with :meth:`~mhgui.daemons.engine.EngineDriver.set_preferences` (used at once, no
restart, saved by the engine), shows a refusal (the engine's sentence, or polkit's "not
authorized") without closing, and never touches mip6d.conf; hold-up and notifications
are saved in ``failover.toml`` as before.

The order shown is the one in use (issue 13.8): when mip6d.conf's ``MnIfPreference`` values rank
the interfaces differently from the saved order (a rebind, ``mhctl`` or an edit changed them), the
file's order is shown, and said so (:func:`~mhgui.core.orderinuse.order_in_use`). Before anything
is written, the values the file would then hold are checked
(:func:`~mhgui.core.mip6conf.preference_order_problem`): a tie or a gap among the interfaces in use
(e.g. more than ten of them) is refused inline, OK disabled. With the engine, each home address's
lists are checked likewise (:func:`~mhgui.core.engineprefs.engine_problems`).

Never ``exec()``: open it with ``open()`` (or :func:`open_preferences`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
from typing import Any, Mapping, Sequence

from PySide6.QtCore import (QAbstractTableModel, QByteArray, QItemSelectionModel, QMimeData, QModelIndex,
                            QPersistentModelIndex, Qt, Signal)
from PySide6.QtGui import QFont, QKeyEvent
from PySide6.QtWidgets import (QAbstractItemView, QCheckBox, QComboBox, QDialog, QDialogButtonBox, QFormLayout,
                               QHBoxLayout, QLabel, QPushButton, QSizePolicy, QSpinBox, QTabWidget,
                               QStyledItemDelegate, QTreeView, QVBoxLayout, QWidget)

from ..core.capabilities import DaemonCapabilities
from ..core.mip6conf import preference_order_problem
from ..core.orderinuse import mnif_after, order_in_use
from ..core.engineprefs import UNLISTED, HoaUplinks, engine_lists, engine_problems, engine_rows, hoa_uplinks
from ..core.failover import Preferences, mnifpreference_values
from ..core.prefsfile import (DEFAULT_HOLDUP, HOLDUP_MAX, MARK_LABELS, MARKS, FailoverSettings, OrderEntry,
                              entries_to_prefs, merge_interfaces)
from ..core.prefsfile import mnif_changes as _mnif_changes
from ..core.prefsfile import restart_needed as _restart_needed
from ..sources import prefs_store
from ..i18n import N_, _
from .models import kind_text
from . import colours, tableexport
from .columns import ColumnSizer

__all__ = ["InterfaceOrderModel", "MarkDelegate", "PreferencesDialog", "engine_refusal", "mnif_changes",
           "open_preferences", "restart_notice"]

Index = QModelIndex | QPersistentModelIndex

#: custom roles (after the ones of :mod:`mhgui.ui.models` and :mod:`mhgui.ui.flows_model`)
NameRole = Qt.ItemDataRole.UserRole + 20     # the interface name
MarkRole = Qt.ItemDataRole.UserRole + 21     # "primary" | "backup" | "never"
PresentRole = Qt.ItemDataRole.UserRole + 22  # the interface exists now
UsableRole = Qt.ItemDataRole.UserRole + 23   # it could carry the node now

MARK_STYLE = {"primary": "ok-strong", "backup": "info", "never": "muted"}  # mark: tone (colours.TONES)


def mnif_changes(old: Preferences | None, new: Preferences, current: Mapping[str, int] | None = None) -> dict[str, int]:
    """``{interface: MnIfPreference}`` to send through the helper for ``new`` (only what changes);
    see :func:`mhgui.core.prefsfile.mnif_changes`."""
    return _mnif_changes(old, new, current)


def restart_notice(changes: Mapping[str, int], before: Mapping[str, int], mip6d_conf: str) -> str:
    """The sentence shown before a change that rewrites mip6d.conf and restarts mip6d."""
    def value(v: int | None) -> str:
        return _("not listed") if v is None else _("0 (never)") if v == 0 else str(v)

    what = ", ".join(f"{n} {value(before.get(n))} → {value(v)}" for n, v in changes.items())
    return _("Applying writes MnIfPreference to {path} through the helper and restarts mip6d: "
             "bindings re-register. ({changes})").format(path=mip6d_conf, changes=what)


# --------------------------------------------------------------------------- model
class InterfaceOrderModel(QAbstractTableModel):
    """The interface order, best first: one row per :class:`~mhgui.core.prefsfile.OrderEntry`.

    Columns: interface name, kind, mark ("Use", editable), the MnIfPreference
    the order gives, status (usable now, why not, "not present").
    """

    COL_NAME, COL_KIND, COL_MARK, COL_PREF, COL_STATUS = range(5)
    HEADERS = (N_("Interface"), N_("Kind"), N_("Use"), N_("MnIfPreference"), N_("Status"))
    MIME_TYPE = "application/x-mhgui-interface-order"

    def __init__(self, entries: Sequence[OrderEntry] = (), parent=None) -> None:
        super().__init__(parent)
        self._rows: list[OrderEntry] = list(entries)
        self._pref: dict[str, int] = {}
        self._recompute()

    # ---- reading
    def entries(self) -> list[OrderEntry]:
        return list(self._rows)

    def names(self) -> list[str]:
        return [r.name for r in self._rows]

    def marked(self) -> list[tuple[str, str]]:
        return [(r.name, r.mark) for r in self._rows]

    def row_of(self, name: str) -> int | None:
        for i, r in enumerate(self._rows):
            if r.name == name:
                return i
        return None

    def preferences(self, base: Preferences | None = None, *, holdup: float | None = None) -> Preferences:
        return entries_to_prefs(self.marked(), base, holdup=holdup)

    def set_entries(self, entries: Sequence[OrderEntry]) -> None:
        """Show other rows (the engine's dialog: another home address)."""
        self.beginResetModel()
        self._rows = list(entries)
        self._recompute()
        self.endResetModel()

    def _recompute(self) -> None:
        try:
            self._pref = mnifpreference_values(entries_to_prefs(self.marked()))
        except ValueError:
            self._pref = {}

    def _pref_changed(self) -> None:
        """The order or a mark changed: every row's MnIfPreference may have."""
        self._recompute()
        if self._rows:
            self.dataChanged.emit(self.index(0, self.COL_PREF), self.index(len(self._rows) - 1, self.COL_PREF),
                                  [Qt.ItemDataRole.DisplayRole])

    # ---- QAbstractItemModel
    def rowCount(self, parent: Index = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.HEADERS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole):
        if orientation != Qt.Orientation.Horizontal or not 0 <= section < len(self.HEADERS):
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return _(self.HEADERS[section])
        if role == Qt.ItemDataRole.ToolTipRole and section == self.COL_PREF:
            return _("The value UMIP gets in mip6d.conf: 1 is best, 0 means never used")
        return None

    def flags(self, index: Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.ItemIsDropEnabled  # drops land between rows, never on one
        f = (Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsDragEnabled
             | Qt.ItemFlag.ItemNeverHasChildren)
        if index.column() == self.COL_MARK:
            f |= Qt.ItemFlag.ItemIsEditable
        return f

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or index.parent().isValid() or not 0 <= index.row() < len(self._rows):
            return None
        r = self._rows[index.row()]
        col = index.column()
        if role == NameRole:
            return r.name
        if role == MarkRole:
            return r.mark
        if role == PresentRole:
            return r.present
        if role == UsableRole:
            return r.usable
        if role == Qt.ItemDataRole.DisplayRole:
            if col == self.COL_NAME:
                return r.name
            if col == self.COL_KIND:
                return kind_text(r.kind) if r.kind else "—"
            if col == self.COL_MARK:
                return _(MARK_LABELS[r.mark])
            if col == self.COL_PREF:
                v = self._pref.get(r.name)
                return "" if v is None else _("0 (never)") if v == 0 else str(v)
            if col == self.COL_STATUS:
                if not r.present:
                    return _("not present")
                return _("usable now") if r.usable and not r.note else r.note or _("not usable now")
            return None
        if role == Qt.ItemDataRole.EditRole:
            if col == self.COL_MARK:
                return r.mark
            return self.data(index, Qt.ItemDataRole.DisplayRole)
        if role == Qt.ItemDataRole.ToolTipRole:
            if col == self.COL_MARK:
                return {"primary": _("used in this order"),
                        "backup": _("used only when no primary interface is usable"),
                        "never": _("never used")}[r.mark]
            if not r.present:
                return _("{interface} is in your saved order but does not exist now; its place and mark are kept").format(
                    interface=r.name)
            return r.note or None
        if role == Qt.ItemDataRole.ForegroundRole:
            if col == self.COL_MARK:
                return colours.brush(MARK_STYLE[r.mark])
            if not r.present or (col == self.COL_STATUS and not r.usable):
                return colours.brush("muted")
            return None
        if role == Qt.ItemDataRole.FontRole and not r.present:
            f = QFont()
            f.setItalic(True)
            return f
        if role == Qt.ItemDataRole.TextAlignmentRole and col == self.COL_PREF:
            return int(Qt.AlignmentFlag.AlignCenter)
        return None

    def setData(self, index: Index, value: Any, role: int = Qt.ItemDataRole.EditRole) -> bool:
        """Set the mark of a row (``COL_MARK``, EditRole or :data:`MarkRole`): a mark or its label."""
        if (not index.isValid() or index.column() != self.COL_MARK
                or role not in (Qt.ItemDataRole.EditRole, MarkRole) or not 0 <= index.row() < len(self._rows)):
            return False
        labels = {v: k for k, v in MARK_LABELS.items()}
        mark = value if value in MARKS else labels.get(value)
        if mark is None:
            return False
        row = index.row()
        if self._rows[row].mark == mark:
            return True
        r = self._rows[row]
        self._rows[row] = OrderEntry(r.name, r.kind, r.usable, r.note, r.present, mark, r.saved)
        self.dataChanged.emit(self.index(row, 0), self.index(row, self.columnCount() - 1))
        self._pref_changed()
        return True

    def set_mark(self, row: int, mark: str) -> bool:
        return self.setData(self.index(row, self.COL_MARK), mark)

    def moveRows(self, sourceParent: Index, sourceRow: int, count: int, destinationParent: Index,
                 destinationChild: int) -> bool:
        """Move ``count`` rows from ``sourceRow`` to before ``destinationChild`` (Qt's convention)."""
        n = len(self._rows)
        if (sourceParent.isValid() or destinationParent.isValid() or count < 1 or sourceRow < 0
                or sourceRow + count > n or not 0 <= destinationChild <= n
                or sourceRow <= destinationChild <= sourceRow + count):
            return False
        if not self.beginMoveRows(QModelIndex(), sourceRow, sourceRow + count - 1, QModelIndex(), destinationChild):
            return False
        block = self._rows[sourceRow:sourceRow + count]
        del self._rows[sourceRow:sourceRow + count]
        at = destinationChild - count if destinationChild > sourceRow else destinationChild
        self._rows[at:at] = block
        self.endMoveRows()
        self._pref_changed()
        return True

    def move(self, row: int, delta: int) -> int | None:
        """Move ``row`` up (``delta`` < 0) or down; returns its new row, None when it cannot move."""
        to = row + delta
        if not 0 <= row < len(self._rows) or not 0 <= to < len(self._rows) or delta == 0:
            return None
        dest = to if delta < 0 else to + 1
        return to if self.moveRow(QModelIndex(), row, QModelIndex(), dest) else None

    def removeRows(self, row: int, count: int, parent: Index = QModelIndex()) -> bool:
        """Only interfaces that are not present can go (:meth:`forget`); a view's drag never removes rows."""
        return False

    def forget(self, row: int) -> bool:
        """Remove a saved interface that is not present now (UMIP then gets 0 for it)."""
        if not 0 <= row < len(self._rows) or self._rows[row].present:
            return False
        self.beginRemoveRows(QModelIndex(), row, row)
        del self._rows[row]
        self.endRemoveRows()
        self._pref_changed()
        return True

    # ---- drag and drop (internal move)
    def supportedDragActions(self) -> Qt.DropAction:
        return Qt.DropAction.MoveAction

    def supportedDropActions(self) -> Qt.DropAction:
        return Qt.DropAction.MoveAction

    def mimeTypes(self) -> list[str]:
        return [self.MIME_TYPE]

    def mimeData(self, indexes: Sequence[QModelIndex]) -> QMimeData:
        rows = sorted({i.row() for i in indexes if i.isValid() and 0 <= i.row() < len(self._rows)})
        data = QMimeData()
        payload = {"model": id(self), "pid": os.getpid(), "names": [self._rows[r].name for r in rows]}
        data.setData(self.MIME_TYPE, QByteArray(json.dumps(payload).encode()))
        return data

    def _names_from(self, data: QMimeData) -> list[str] | None:
        if data is None or not data.hasFormat(self.MIME_TYPE):
            return None
        try:
            payload = json.loads(bytes(data.data(self.MIME_TYPE).data()).decode())
        except (ValueError, UnicodeDecodeError):
            return None
        if not isinstance(payload, dict) or payload.get("model") != id(self) or payload.get("pid") != os.getpid():
            return None  # from another list or process: not a move within this one
        names = payload.get("names")
        if not isinstance(names, list) or not names or any(self.row_of(n) is None for n in names if isinstance(n, str)):
            return None
        return [n for n in names if isinstance(n, str)]

    def canDropMimeData(self, data: QMimeData, action: Qt.DropAction, row: int, column: int, parent: Index) -> bool:
        return action == Qt.DropAction.MoveAction and self._names_from(data) is not None

    def dropMimeData(self, data: QMimeData, action: Qt.DropAction, row: int, column: int, parent: Index) -> bool:
        """Move the dragged rows to before ``row`` (onto a row: before it; nowhere: to the end)."""
        if action == Qt.DropAction.IgnoreAction:
            return True
        names = self._names_from(data) if action == Qt.DropAction.MoveAction else None
        if names is None:
            return False
        dest = parent.row() if parent.isValid() else row
        if not 0 <= dest <= len(self._rows):
            dest = len(self._rows)
        for name in names:  # keep the dragged rows in their order, one after the other at dest
            src = self.row_of(name)
            assert src is not None
            if src == dest or src + 1 == dest:
                dest = src + 1
                continue
            self.moveRow(QModelIndex(), src, QModelIndex(), dest)
            now = self.row_of(name)
            dest = (now if now is not None else dest) + 1
        return True


class _EngineOrderModel(InterfaceOrderModel):
    """The rows of one home address of the engine: an unlisted interface marked backup or never says
    that applying lists it (not that it is allowed)."""

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        value = super().data(index, role)
        if (role == Qt.ItemDataRole.DisplayRole and index.isValid() and index.column() == self.COL_STATUS
                and isinstance(value, str) and value.endswith(UNLISTED)):
            r = self._rows[index.row()]
            if r.mark != "primary":
                value = value[:-len(UNLISTED)] + _("not listed yet: applying lists it as {mark}").format(
                    mark=_(MARK_LABELS[r.mark]))
            else:
                value = value[:-len(UNLISTED)] + _(UNLISTED)
        return value


class MarkDelegate(QStyledItemDelegate):
    """A combo box (primary / backup only / never) in the "Use" column."""

    def createEditor(self, parent: QWidget, option, index: QModelIndex) -> QWidget:
        combo = QComboBox(parent)
        for mark in MARKS:
            combo.addItem(_(MARK_LABELS[mark]), mark)
        combo.activated.connect(lambda _i, c=combo: (self.commitData.emit(c), self.closeEditor.emit(c)))
        return combo

    def setEditorData(self, editor: QWidget, index: QModelIndex) -> None:
        i = editor.findData(index.data(MarkRole))
        editor.setCurrentIndex(max(i, 0))

    def setModelData(self, editor: QWidget, model, index: QModelIndex) -> None:
        model.setData(index, editor.currentData(), Qt.ItemDataRole.EditRole)


class _OrderView(QTreeView):
    """The list: Alt+Up / Alt+Down (or Ctrl+Up / Ctrl+Down) move the current row."""

    moveRequested = Signal(int)  # -1 up, +1 down

    def keyPressEvent(self, event: QKeyEvent) -> None:
        mods = event.modifiers() & (Qt.KeyboardModifier.AltModifier | Qt.KeyboardModifier.ControlModifier
                                    | Qt.KeyboardModifier.ShiftModifier | Qt.KeyboardModifier.MetaModifier)
        if (event.key() in (Qt.Key.Key_Up, Qt.Key.Key_Down)
                and mods in (Qt.KeyboardModifier.AltModifier, Qt.KeyboardModifier.ControlModifier)):
            self.moveRequested.emit(-1 if event.key() == Qt.Key.Key_Up else 1)
            event.accept()
            return
        super().keyPressEvent(event)


# --------------------------------------------------------------------------- dialog
class PreferencesDialog(QDialog):
    """Failover preferences (module docstring).

    ``interfaces``: ``(name, kind, usable, note)`` for every interface now
    (:func:`mhgui.core.prefsfile.live_interface_rows` makes them from the live
    state); ``saved``: what ``failover.toml`` holds (None: no file yet);
    ``problems``: the file's problems, shown at the top; ``capabilities``: the
    daemon's (None: taken as mainline UMIP, which restarts to read
    preferences); ``current_mnif``: the ``MnIfPreference`` values in
    mip6d.conf now, when known (better than the saved file to tell whether a
    restart is needed); ``mip6d_conf``: its path, for the notice; ``path``:
    where to save (default ``$XDG_CONFIG_HOME/mhgui/failover.toml``);
    ``driver``: the connected mobility daemon's driver: when it is the engine
    (``driver.name == "engine"``), the dialog edits the engine's per-HoA
    preferences (module docstring) and :attr:`engine` is True.
    """

    #: (Preferences, notifications: bool, restart_needed: bool), after the file is saved
    applied = Signal(object, bool, bool)

    def __init__(self, interfaces: Sequence[tuple[str, str, bool, str]] = (), saved: FailoverSettings | None = None,
                 *, problems: Sequence[str] = (), capabilities: DaemonCapabilities | None = None,
                 current_mnif: Mapping[str, int] | None = None, mip6d_conf: str = "/etc/mip6d.conf",
                 path: str | os.PathLike | None = None, driver: Any = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(_("Failover preferences"))
        self.setObjectName("preferences")
        self.saved = saved
        self.capabilities = capabilities
        self.current_mnif = dict(current_mnif) if current_mnif is not None else None
        self.mip6d_conf = mip6d_conf
        self.path = path
        self.saved_result: prefs_store.SavedPrefs | None = None
        #: set just before ``applied``: the MnIfPreference values to send through the helper ({} for none)
        self.applied_mnif: dict[str, int] = {}
        self._task: asyncio.Task | None = None
        self._saving = False
        saved_prefs = saved.prefs if saved is not None and saved.prefs.order else None
        self.driver = driver
        #: editing the mobility engine's per-HoA preferences (not MnIfPreference)
        self.engine = driver is not None and getattr(driver, "name", None) == "engine"
        #: the engine's lists per HoA as last read or applied (what a change is compared with)
        self.engine_initial: dict[str, HoaUplinks] = {}
        #: the rows of each HoA (the shown one's are in the model)
        self._engine_rows: dict[str, list[OrderEntry]] = {}
        self._hoa: str | None = None
        #: said above the list when it shows mip6d.conf's order rather than the saved one ("" otherwise)
        self.order_note = ""
        #: set just before ``applied``: ``{hoa: (preference, backup, never)}`` sent to the engine
        self.applied_engine: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {}
        if self.engine:
            for u in hoa_uplinks(driver.raw_bindings()):
                self.engine_initial[u.hoa] = u
                self._engine_rows[u.hoa] = engine_rows(interfaces, u)
            self._hoa = next(iter(self.engine_initial), None)
            entries = self._engine_rows.get(self._hoa, []) if self._hoa is not None else []
        else:
            # the order in use: mip6d.conf's when it ranks the interfaces differently from the saved order
            saved_prefs, self.order_note = order_in_use(saved_prefs, self.current_mnif)
            entries = merge_interfaces(interfaces, saved_prefs, self.current_mnif)
        self.model = (_EngineOrderModel if self.engine else InterfaceOrderModel)(entries, self)
        # what the restart decision compares with: the saved order, else what the dialog opened with
        # (the engine's names need not be ones mip6d.conf can quote: no MnIfPreference baseline for it)
        self._baseline = saved_prefs if saved_prefs is not None else \
            Preferences(()) if self.engine else self.model.preferences()

        root = QVBoxLayout(self)
        self.problems_label = QLabel()
        self.problems_label.setObjectName("problems")
        self.problems_label.setWordWrap(True)
        self.problems_label.setTextFormat(Qt.TextFormat.PlainText)
        colours.set_banner(self.problems_label, "pending")
        if problems:
            self.problems_label.setText(_("Problems in the saved preferences (applying rewrites the file; the old "
                                          "one is kept beside it):") + "\n" + "\n".join(problems))
        self.problems_label.setVisible(bool(problems))
        root.addWidget(self.problems_label)
        self.order_label = QLabel(getattr(self, "order_note", ""))
        self.order_label.setObjectName("order-in-use")
        self.order_label.setWordWrap(True)
        colours.set_banner(self.order_label, "info")
        self.order_label.setVisible(bool(self.order_label.text()))
        root.addWidget(self.order_label)

        # the uplinks part: a tab beside the load-sharing weights when they are shown, so that the dialog fits
        # 1366x720 with a title bar and room to spare (issue 15.5)
        outer, body = root, QWidget()
        root = QVBoxLayout(body)
        hoa_row = QHBoxLayout()
        self.hoa_combo = QComboBox()
        self.hoa_combo.setObjectName("hoa")
        for hoa, u in self.engine_initial.items():
            where = {"registered": _(" (bound through {interface})"), "waiting-ack": _(" (registering through "
                     "{interface})")}.get(u.state or "", "").format(interface=u.interface) if u.interface else ""
            self.hoa_combo.addItem(hoa + where, hoa)
        self.hoa_combo.setEnabled(self.hoa_combo.count() > 1)
        self.hoa_combo.setToolTip(_("The home address whose uplinks are shown: the engine chooses an uplink for "
                                    "each home address by its own list"))
        self.hoa_label = QLabel(_("Home &address:"))
        self.hoa_label.setBuddy(self.hoa_combo)
        hoa_row.addWidget(self.hoa_label)
        hoa_row.addWidget(self.hoa_combo, 1)
        root.addLayout(hoa_row)
        self.hoa_combo.currentIndexChanged.connect(self._on_hoa)
        for w in (self.hoa_label, self.hoa_combo):
            w.setVisible(self.engine)
        self.no_hoa_label = QLabel(_("The mobility engine reports no home address now (is mhgui-mn running?): "
                                     "there are no uplink preferences to change."))
        self.no_hoa_label.setWordWrap(True)
        self.no_hoa_label.setVisible(self.engine and not self.engine_initial)
        root.addWidget(self.no_hoa_label)

        if self.engine:
            intro = QLabel(_("Uplinks of the home address, best first: the mobility engine uses the first usable "
                             "one (backup only: when nothing else works; never: not at all), and takes a change at "
                             "once. Interfaces its list does not name are allowed, after the listed ones. Drag a "
                             "row, or press Alt+Up / Alt+Down, to change the order."))
        else:
            intro = QLabel(_("Interfaces, best first. Drag a row, or press Alt+Up / Alt+Down, to change the order."))
        intro.setWordWrap(True)
        root.addWidget(intro)

        self.view = _OrderView()
        self.view.setObjectName("order")
        self.view.setModel(self.model)
        intro.setBuddy(self.view)
        self.view.setRootIsDecorated(False)
        self.view.setItemsExpandable(False)
        self.view.setUniformRowHeights(True)
        self.view.setAllColumnsShowFocus(True)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.setDragEnabled(True)
        self.view.setAcceptDrops(True)
        self.view.setDropIndicatorShown(True)
        self.view.setDragDropMode(QAbstractItemView.DragDropMode.InternalMove)
        self.view.setDefaultDropAction(Qt.DropAction.MoveAction)
        self.view.setDragDropOverwriteMode(False)
        self.view.setEditTriggers(QAbstractItemView.EditTrigger.DoubleClicked
                                  | QAbstractItemView.EditTrigger.EditKeyPressed
                                  | QAbstractItemView.EditTrigger.SelectedClicked)
        self.delegate = MarkDelegate(self.view)
        self.view.setItemDelegateForColumn(InterfaceOrderModel.COL_MARK, self.delegate)
        header = self.view.header()
        header.setStretchLastSection(True)
        # the columns before the status fit their contents, measured when rows change (not ResizeToContents,
        # which measures every row on every change)
        self.column_sizer = ColumnSizer(self.view)
        tableexport.install(self.view, _("Interface order"))  # copy, export as CSV / JSON (issue 15.5)
        # UMIP's value means nothing to the engine
        self.view.setColumnHidden(InterfaceOrderModel.COL_PREF, self.engine)
        self.view.moveRequested.connect(self.move_current)
        root.addWidget(self.view, 1)

        row = QHBoxLayout()
        self.up_button = QPushButton(_("Move &up"))
        self.up_button.setToolTip(_("Move the selected interface up (Alt+Up)"))
        self.down_button = QPushButton(_("Move &down"))
        self.down_button.setToolTip(_("Move the selected interface down (Alt+Down)"))
        self.up_button.clicked.connect(lambda: self.move_current(-1))
        self.down_button.clicked.connect(lambda: self.move_current(1))
        self.mark_combo = QComboBox()
        self.mark_combo.setObjectName("mark")
        for mark in MARKS:
            self.mark_combo.addItem(_(MARK_LABELS[mark]), mark)
        self.mark_combo.setToolTip(_("primary: used in this order; backup only: used only when no primary "
                                     "interface is usable; never: never used"))
        mark_label = QLabel(_("U&se:"))
        mark_label.setBuddy(self.mark_combo)
        self.mark_combo.activated.connect(self._on_mark_combo)
        self.forget_button = QPushButton(_("&Forget"))
        self.forget_button.setToolTip(_("Remove an interface that is not present from the list"))
        self.forget_button.clicked.connect(self.forget_current)
        for w in (self.up_button, self.down_button):
            row.addWidget(w)
        row.addSpacing(12)
        row.addWidget(mark_label)
        row.addWidget(self.mark_combo)
        row.addStretch(1)
        row.addWidget(self.forget_button)
        root.addLayout(row)

        form = QFormLayout()
        self.holdup = QSpinBox()
        self.holdup.setObjectName("holdup")
        self.holdup.setRange(0, HOLDUP_MAX)
        self.holdup.setSuffix(" s")
        self.holdup.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        self.holdup.setValue(int(round(saved.prefs.holdup)) if saved is not None else DEFAULT_HOLDUP)
        self.holdup.setToolTip(_("How long a better interface must stay usable before the node goes back to it "
                                 "(0 to {max} seconds), so that a flapping link does not cause a storm").format(
                                     max=HOLDUP_MAX))
        form.addRow(_("&Hold-up before going back:"), self.holdup)
        self.holdup_note = QLabel()
        self.holdup_note.setWordWrap(True)
        colours.set_tone(self.holdup_note, "muted")
        if self.engine:
            self.holdup_note.setText(_("Applies to steering rules. The mobility engine fails over by itself, at "
                                       "once, by each home address's list."))
        elif capabilities is None or not capabilities.runtime_rebind:
            self.holdup_note.setText(_("Applies to steering rules. UMIP goes back to a better interface at once "
                                       "by itself; it has no hold-up."))
        self.holdup_note.setVisible(bool(self.holdup_note.text()))
        form.addRow("", self.holdup_note)
        self.notifications = QCheckBox(_("Desktop &notifications on link loss and failover"))
        self.notifications.setChecked(saved.notifications if saved is not None else True)
        form.addRow("", self.notifications)
        self._add_autostart(form)
        root.addLayout(form)
        # the engine's load-sharing weights (several care-of addresses): mhgui.ui.weights_editor
        from .weights_editor import WeightsEditor, wants_weights
        self.weights = WeightsEditor(driver, self) if wants_weights(driver) else None
        root = outer
        if self.weights is not None:
            self.pages = QTabWidget()
            self.pages.setAccessibleName(_("Preferences pages"))
            self.pages.addTab(body, _("Uplinks"))
            weights_page = QWidget()  # the section at the top of its tab, not spread over it
            wl = QVBoxLayout(weights_page)
            wl.addWidget(self.weights)
            wl.addStretch(1)
            self.weights.setTitle("")  # the tab says it
            self.pages.addTab(weights_page, _("Load sharing"))
            root.addWidget(self.pages, 1)
        else:
            self.pages = None
            body.layout().setContentsMargins(0, 0, 0, 0)
            root.addWidget(body, 1)

        self.validation_label = QLabel()
        self.validation_label.setObjectName("validation")
        self.validation_label.setWordWrap(True)
        colours.set_tone(self.validation_label, "error")
        root.addWidget(self.validation_label)
        self.restart_label = QLabel()
        self.restart_label.setObjectName("restart")
        self.restart_label.setWordWrap(True)
        colours.set_banner(self.restart_label, "info")
        root.addWidget(self.restart_label)

        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.ok_button = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.buttons.accepted.connect(self._on_ok)
        self.buttons.rejected.connect(self.reject)
        root.addWidget(self.buttons)

        self.model.dataChanged.connect(self._update)
        self.model.rowsMoved.connect(self._update)
        self.model.rowsRemoved.connect(self._update)
        self.model.modelReset.connect(self._update)
        self.model.rowsMoved.connect(self._follow_move)
        self.holdup.valueChanged.connect(self._update)
        self.holdup.lineEdit().textChanged.connect(self._update)
        self.notifications.toggled.connect(self._update)
        self.view.selectionModel().currentRowChanged.connect(self._update)
        if self.model.rowCount():
            self.view.setCurrentIndex(self.model.index(0, 0))
        self.resize(640, 460)
        self._update()

    # ---- what the dialog would apply
    def holdup_valid(self) -> bool:
        return self.holdup.hasAcceptableInput() and 0 <= self.holdup.value() <= HOLDUP_MAX

    def preferences(self) -> Preferences:
        """The preferences as edited (raises ``ValueError`` only for a state :meth:`validation_problems` reports).
        With the engine, the list is the engine's: the app's own order stays as saved, with the new hold-up."""
        base = self.saved.prefs if self.saved is not None else None
        if self.engine:
            return dataclasses.replace(base if base is not None else FailoverSettings().prefs,
                                       holdup=float(self.holdup.value()))
        return self.model.preferences(base, holdup=float(self.holdup.value()))

    # ---- the engine's per-HoA preferences
    @property
    def hoa(self) -> str | None:
        """The home address shown (engine only)."""
        return self._hoa

    def _rows_of(self, hoa: str) -> list[OrderEntry]:
        return self.model.entries() if hoa == self._hoa else self._engine_rows.get(hoa, [])

    def engine_values(self) -> dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]]:
        """``{hoa: (preference, backup, never)}`` as edited, for every HoA of the engine."""
        return {hoa: engine_lists([(r.name, r.mark) for r in self._rows_of(hoa)], u.listed)
                for hoa, u in self.engine_initial.items()}

    def engine_changes(self) -> dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]]:
        """The HoAs whose lists differ from the engine's, with their new lists (what Apply sends)."""
        return {hoa: v for hoa, v in self.engine_values().items() if v != self.engine_initial[hoa].lists}

    def select_hoa(self, hoa: str) -> bool:
        i = self.hoa_combo.findData(hoa)
        if i < 0:
            return False
        self.hoa_combo.setCurrentIndex(i)
        return True

    def _on_hoa(self, _i: int) -> None:
        hoa = self.hoa_combo.currentData()
        if not self.engine or hoa is None or hoa == self._hoa:
            return
        if self._hoa is not None:
            self._engine_rows[self._hoa] = self.model.entries()
        self._hoa = hoa
        self.model.set_entries(self._engine_rows.get(hoa, []))
        if self.model.rowCount():
            self._select(0)
        self._update()

    def settings(self) -> FailoverSettings:
        """What OK saves: the edited preferences, notifications, and the file's unknown keys."""
        base = self.saved if self.saved is not None else FailoverSettings()
        return base.with_prefs(self.preferences(), self.notifications.isChecked())

    def validation_problems(self) -> list[str]:
        out = []
        marks = [m for _, m in self.model.marked()]
        if self.engine:
            values = self.engine_values()
            for hoa in self.engine_initial:
                out += engine_problems(hoa, [(r.name, r.mark) for r in self._rows_of(hoa)], values[hoa])
        elif not marks:
            out.append(_("No interface is listed: no interface may be used."))
        elif all(m == "never" for m in marks):
            out.append(_("Every interface is marked never: no interface may be used. "
                         "Mark at least one as primary or backup only."))
        else:
            problem = self.mnif_problem()
            if problem is not None:
                out.append(_("mip6d.conf cannot take this order: {why}.").format(why=problem))
        if not self.holdup_valid():
            out.append(_("Hold-up must be a whole number of seconds from 0 to {max}.").format(max=HOLDUP_MAX))
        return out

    def mnif_changes(self) -> dict[str, int]:
        """``{interface: MnIfPreference}`` that applying would change (empty while invalid; always with the
        engine, which has no MnIfPreference)."""
        if self.engine:
            return {}
        try:
            return _mnif_changes(self._baseline, self.preferences(), self.current_mnif)
        except ValueError:
            return {}

    def mnif_problem(self) -> str | None:
        """Why the ``MnIfPreference`` values mip6d.conf would hold once applied are not a clean order (a tie,
        a gap, more than ten interfaces in use: :func:`~mhgui.core.mip6conf.preference_order_problem`);
        None when they are, or when applying writes nothing."""
        if self.engine or not self.mnif_changes():
            return None
        try:
            return preference_order_problem(mnif_after(self.preferences(), self.current_mnif))
        except ValueError as e:
            return str(e)

    def restart_needed(self) -> bool:
        if self.engine:
            return False  # the engine takes its preferences at run time
        try:
            return _restart_needed(self._baseline, self.preferences(), self.capabilities, self.current_mnif)
        except ValueError:
            return False

    def _before(self) -> dict[str, int]:
        if self.current_mnif is not None:
            return dict(self.current_mnif)
        return mnifpreference_values(self._baseline)

    # ---- reacting
    def _update(self, *_args) -> None:
        problems = self.validation_problems()
        self.validation_label.setText("\n".join(problems))
        self.validation_label.setVisible(bool(problems))
        restart = not problems and self.restart_needed()
        changes = self.engine_changes() if self.engine and not problems else {}
        if changes:
            self.restart_label.setText(
                _("Applying sends the new list of {hoas} to the mobility engine: it uses it at "
                  "once (a Binding Update through the new first choice when that changes), no restart, and keeps "
                  "it in its own configuration.").format(hoas=", ".join(changes)))
        elif restart:
            self.restart_label.setText(restart_notice(self.mnif_changes(), self._before(), self.mip6d_conf))
        elif not problems and self.mnif_changes():
            self.restart_label.setText(_("The daemon takes the new order at run time: no restart."))
        else:
            self.restart_label.setText("")
        self.restart_label.setVisible(bool(self.restart_label.text()))
        self.ok_button.setText(_("Apply") if self.engine else _("Apply and restart mip6d") if restart else _("OK"))
        self.ok_button.setEnabled(not problems and not self._saving)
        cur = self.view.currentIndex()
        row = cur.row() if cur.isValid() else -1
        n = self.model.rowCount()
        self.up_button.setEnabled(not self._saving and row > 0)
        self.down_button.setEnabled(not self._saving and 0 <= row < n - 1)
        self.mark_combo.setEnabled(not self._saving and row >= 0)
        if row >= 0:
            self.mark_combo.setCurrentIndex(max(self.mark_combo.findData(self.model.index(row, 0).data(MarkRole)), 0))
        self.forget_button.setEnabled(not self._saving and row >= 0
                                      and not self.model.index(row, 0).data(PresentRole))
        self.hoa_combo.setEnabled(not self._saving and self.hoa_combo.count() > 1)

    def _follow_move(self, _parent, start: int, end: int, _dest_parent, dest: int) -> None:
        """Keep the moved row selected (a drag does not say where it went otherwise)."""
        new = dest if dest < start else dest - (end - start + 1)
        self._select(new)

    def _select(self, row: int) -> None:
        index = self.model.index(row, 0)
        self.view.selectionModel().setCurrentIndex(
            index, QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows)
        self.view.scrollTo(index)

    def move_current(self, delta: int) -> None:
        cur = self.view.currentIndex()
        if not cur.isValid() or self._saving:
            return
        new = self.model.move(cur.row(), delta)
        if new is not None:
            self._select(new)

    def forget_current(self) -> None:
        cur = self.view.currentIndex()
        if cur.isValid() and not self._saving and self.model.forget(cur.row()):
            if self.model.rowCount():
                self._select(min(cur.row(), self.model.rowCount() - 1))
            self._update()

    def _on_mark_combo(self, _i: int) -> None:
        cur = self.view.currentIndex()
        if cur.isValid():
            self.model.set_mark(cur.row(), self.mark_combo.currentData())

    # ---- start at login (issue 15.5; mhgui.ui.autostart)
    def _add_autostart(self, form: QFormLayout) -> None:
        self.autostart = QCheckBox(_("&Start in the tray at login"))
        self.autostart.setObjectName("autostart")
        self.autostart.setToolTip(_("Starts mhgui hidden in the tray when you log in (an XDG autostart entry; "
                                    "inside a Flatpak, asked of the desktop's Background portal)"))
        self.autostart.setEnabled(False)  # until set_autostart_state() says what it is now
        #: whether it was on when the dialog opened (None: unknown, nothing is changed)
        self.autostart_initial: bool | None = None
        self.autostart_result = None
        form.addRow("", self.autostart)

    def set_autostart_state(self, enabled: bool) -> None:
        """Whether the app starts at login now (read by :func:`open_preferences` in an executor)."""
        self.autostart_initial = bool(enabled)
        self.autostart.setChecked(bool(enabled))
        self.autostart.setEnabled(True)

    async def _apply_autostart(self) -> bool:
        """Turn starting at login on or off when the box changed; False (said inline) when it failed."""
        if self.autostart_initial is None or self.autostart.isChecked() == self.autostart_initial:
            return True
        from . import autostart
        r = self.autostart_result = await autostart.set_autostart(self.autostart.isChecked())
        if not r.ok:
            self.validation_label.setText(r.message)
            self.validation_label.setVisible(True)
            return False
        self.autostart_initial = r.enabled
        return True

    # ---- applying
    def _on_ok(self) -> None:
        if self._saving or self.validation_problems():
            return
        self._task = asyncio.ensure_future(self.apply())

    async def apply(self) -> bool:
        """Save the file (in an executor), emit :attr:`applied`, close. False (and the dialog stays open,
        with the reason shown) when it cannot be saved or something is invalid."""
        if self._saving or self.validation_problems():
            return False
        if not await self._apply_autostart():
            return False
        if self.weights is not None and not await self.weights.apply_pending():
            return False  # the refusal is shown under the weights
        if self.engine:
            return await self._apply_engine()
        prefs = self.preferences()
        settings = self.settings()
        restart = self.restart_needed()
        changes = self.mnif_changes()
        self._saving = True
        self._update()
        self.ok_button.setText(_("Saving…"))
        error = None
        try:
            self.saved_result = await prefs_store.save_prefs_async(settings, self.path)
        except prefs_store.PrefsStoreError as e:
            error = str(e)
        finally:
            self._saving = False
            self._update()
        if error is not None:
            self.validation_label.setText(_("Not applied: {why}").format(why=error))
            self.validation_label.setVisible(True)
            return False
        self.saved = settings
        self.applied_mnif = changes
        self.applied.emit(prefs, settings.notifications, restart)
        self.accept()
        return True


    async def _apply_engine(self) -> bool:
        """Send each changed HoA's lists to the engine (stopping at a refusal, shown inline), then save the
        file (hold-up, notifications), emit :attr:`applied` and close."""
        prefs = self.preferences()
        settings = self.settings()
        changes = self.engine_changes()
        self._saving = True
        self._update()
        self.ok_button.setText(_("Applying…"))
        error = None
        sent: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {}
        try:
            for hoa, (pref, backup, never) in changes.items():
                try:
                    await self.driver.set_preferences(hoa, pref, backup, never)
                except Exception as e:  # the engine's refusal, polkit's, the bus's: a sentence for the user
                    error = engine_refusal(hoa, e)
                    break
                sent[hoa] = (pref, backup, never)
                old = self.engine_initial[hoa]
                # what the engine has now: later changes are compared with it (nothing is sent twice)
                self.engine_initial[hoa] = dataclasses.replace(old, preference=pref, backup=backup, never=never)
            if error is None:
                try:
                    self.saved_result = await prefs_store.save_prefs_async(settings, self.path)
                except prefs_store.PrefsStoreError as e:
                    error = _("Not saved: {why}").format(why=e) + (
                        _(" (the engine has the new lists of {hoas})").format(hoas=", ".join(sent)) if sent else "")
        finally:
            self._saving = False
            self._update()
        if error is not None:
            self.validation_label.setText(error)
            self.validation_label.setVisible(True)
            return False
        self.saved = settings
        self.applied_mnif = {}
        self.applied_engine = sent
        self.applied.emit(prefs, settings.notifications, False)
        self.accept()
        return True


def engine_refusal(hoa: str, e: BaseException) -> str:
    """The line shown when the engine did not take the lists of ``hoa``."""
    name = getattr(e, "error_name", "") or ""
    text = str(e) or type(e).__name__
    if name.endswith((".NotAuthorized", ".AccessDenied")):
        return _("Not applied: not allowed to change the preferences of {hoa}: {why}").format(hoa=hoa, why=text)
    if name.endswith(".InvalidArgs"):
        return _("Not applied: the mobility engine refused the preferences of {hoa}: {why}").format(hoa=hoa, why=text)
    return _("Not applied: the preferences of {hoa} could not be sent to the mobility engine: {why}").format(
        hoa=hoa, why=text)


async def open_preferences(interfaces: Sequence[tuple[str, str, bool, str]], *,
                           capabilities: DaemonCapabilities | None = None,
                           current_mnif: Mapping[str, int] | None = None, mip6d_conf: str = "/etc/mip6d.conf",
                           path: str | os.PathLike | None = None, driver: Any = None,
                           parent: QWidget | None = None) -> PreferencesDialog:
    """Read ``failover.toml`` in an executor, build the dialog and ``open()`` it (window-modal, no ``exec()``).
    ``driver``: the engine's, to edit its per-HoA preferences (:class:`PreferencesDialog`)."""
    loaded = await prefs_store.load_prefs_async(path)
    dialog = PreferencesDialog(interfaces, loaded.settings, problems=loaded.problems, capabilities=capabilities,
                               current_mnif=current_mnif, mip6d_conf=mip6d_conf, path=loaded.path, driver=driver,
                               parent=parent)
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    from . import autostart
    dialog.set_autostart_state(await asyncio.get_running_loop().run_in_executor(None, autostart.is_enabled_any))
    dialog.open()
    return dialog
