"""The Flows tab's widgets: filters, the own-connections toggle, the sorted table of flows and its count.

:class:`FlowsPage` shows a :class:`~mhgui.ui.flows_model.FlowModel` through a
:class:`~mhgui.ui.flows_model.FlowFilter`. The table is virtualised (a view
asks only for the rows it paints) and its columns have fixed starting widths
(``ResizeToContents`` would measure rows on every change; the user can still
drag them). The window wires the context menu and the move action
(:meth:`mhgui.ui.window.MainWindow._flows_page`).
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView, QCheckBox, QHBoxLayout, QHeaderView, QLabel, QLineEdit, QPushButton, QTableView, QVBoxLayout,
    QWidget,
)

from ..i18n import N_, _, ngettext
from .flows_model import FlowFilter, FlowModel

__all__ = ["FlowsPage", "SHOW_OWN_TEXT", "count_text"]

SHOW_OWN_TEXT = N_("Show mhgui's own connections")

#: a sample of each column's text, for its starting width
_SAMPLES = ("firefox-esr-web", "4194304", "Protocol", "", "", "FIN-WAIT-1", "wlp0s20f3", "other", "re-establish")


def count_text(shown: int, total: int, own_hidden: int) -> str:
    """The count under the table: ``"1,234 connections"``; ``"12 of 1,234 connections shown"`` when a
    filter hides some; then ``" (5 of mhgui's own hidden)"`` when the toggle hides some of the app's own.
    ``total`` counts every flow, own ones included."""
    others = total - own_hidden
    if shown == others:
        text = ngettext("{n} connection", "{n} connections", others).format(n=f"{shown:,}")
    else:
        text = ngettext("{shown} of {n} connection shown", "{shown} of {n} connections shown", others).format(
            shown=f"{shown:,}", n=f"{others:,}")
    if own_hidden:
        text += _(" ({n} of mhgui's own hidden)").format(n=f"{own_hidden:,}")
    return text


class FlowsPage(QWidget):
    """Filters (application or pid, address), the toggle for mhgui's own connections, the table, the count
    and a line for what a move means (``flow_label``)."""

    def __init__(self, flows: FlowModel, parent=None) -> None:
        super().__init__(parent)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        self.flow_filter = FlowFilter(self)
        self.flow_filter.setSourceModel(flows)
        bar = QHBoxLayout()
        self.flow_search = QLineEdit()
        self.flow_search.setPlaceholderText(_("Filter by application or pid…"))
        self.flow_search.textChanged.connect(self.flow_filter.set_application)
        self.flow_addr = QLineEdit()
        self.flow_addr.setPlaceholderText(_("Filter by address…"))
        self.flow_addr.textChanged.connect(self.flow_filter.set_address)
        self.show_own = QCheckBox(_(SHOW_OWN_TEXT))
        self.show_own.setToolTip(_("mhgui's own sockets: its connections to the mobility daemon's terminal (and "
                                   "what is left of them in TIME-WAIT), its D-Bus connections over TCP, the "
                                   "mobility engine's sockets"))
        self.show_own.toggled.connect(self.flow_filter.set_show_own)
        bar.addWidget(self.flow_search)
        bar.addWidget(self.flow_addr)
        bar.addWidget(self.show_own)
        lay.addLayout(bar)
        v = self.flows_view = QTableView()
        v.setModel(self.flow_filter)
        v.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        v.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        v.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        v.setWordWrap(False)
        vh = v.verticalHeader()
        vh.setVisible(False)
        vh.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        vh.setDefaultSectionSize(v.fontMetrics().height() + 8)
        hh = v.horizontalHeader()
        hh.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        fm = v.fontMetrics()
        for col, sample in enumerate(_SAMPLES):
            if sample:
                head = _(FlowModel.HEADERS[col])
                hh.resizeSection(col, max(fm.horizontalAdvance(sample), fm.horizontalAdvance(head)) + 24)
        for col in (FlowModel.COL_LOCAL, FlowModel.COL_REMOTE):
            hh.setSectionResizeMode(col, QHeaderView.ResizeMode.Stretch)
        v.setSortingEnabled(True)
        v.sortByColumn(FlowModel.COL_APP, Qt.SortOrder.AscendingOrder)
        v.setDragEnabled(True)
        v.setDragDropMode(QAbstractItemView.DragDropMode.DragOnly)
        lay.addWidget(v, 1)
        self.flow_count = QLabel()
        self.flow_count.setObjectName("flowcount")
        count_row = QHBoxLayout()
        count_row.addWidget(self.flow_count, 1)
        # selecting an interface filters the flows: this undoes it in one click (no Ctrl+click on the row)
        self.show_all = QPushButton(_("Show every interface's connections"))
        self.show_all.setObjectName("showall")
        self.show_all.setAccessibleName(_("Show the connections of every interface"))
        self.show_all.hide()
        count_row.addWidget(self.show_all)
        lay.addLayout(count_row)
        self.flow_label = QLabel(_("Drag a connection onto an interface, or select it and press Ctrl+M, to move it."))
        self.flow_label.setWordWrap(True)
        self.flow_label.setObjectName("flowmove")
        lay.addWidget(self.flow_label)
        self.flow_filter.counts_changed.connect(self._on_counts)
        self._on_counts()

    def _on_counts(self) -> None:
        self.flow_count.setText(count_text(*self.flow_filter.counts())
                                + (_(" on {interface}").format(interface=self.flow_filter.interface)
                                   if self.flow_filter.interface else ""))
        self.show_all.setVisible(bool(self.flow_filter.interface))
