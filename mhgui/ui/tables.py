"""The window's read-only tables (:func:`table`): sorted through a proxy, sized on a sample of rows,
with copy and export."""

from __future__ import annotations

from PySide6.QtCore import QSortFilterProxyModel, Qt
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableView

from . import tableexport
from .columns import ColumnSizer
from .models import AddressModel, SortRole


def table(model, *, stretch_last: bool = True, sortable: bool = True, export_menu: bool = True) -> QTableView:
    """A read-only table of ``model`` (sorted through a proxy when ``sortable``), with copy and export
    (:mod:`.tableexport`; ``export_menu`` False: the caller's own context menu adds them)."""
    v = QTableView()
    if sortable:
        proxy = QSortFilterProxyModel(v)
        proxy.setSourceModel(model)
        proxy.setSortRole(SortRole)
        v.setModel(proxy)
        v.setSortingEnabled(True)
        v.sortByColumn(0, Qt.SortOrder.AscendingOrder)
    else:
        v.setModel(model)
    v.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    v.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    v.setAlternatingRowColors(True)
    v.verticalHeader().setVisible(False)
    v.verticalHeader().setDefaultSectionSize(v.fontMetrics().height() + 8)
    v.horizontalHeader().setStretchLastSection(stretch_last)
    v.column_sizer = ColumnSizer(v)  # not ResizeToContents: that measures every row on every change
    v.setWordWrap(False)
    tableexport.install(v, menu=export_menu)
    return v


def address_table(model) -> QTableView:
    """The addresses' table on ``model`` (an :class:`~mhgui.ui.controller.AddressFilter`: it sorts, in
    Python), sized on a sample of rows, its address column stretched, with copy and export."""
    v = QTableView()
    v.setModel(model)
    v.setSortingEnabled(True)
    v.sortByColumn(0, Qt.SortOrder.AscendingOrder)
    v.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    v.setAlternatingRowColors(True)
    v.verticalHeader().setVisible(False)
    v.verticalHeader().setDefaultSectionSize(v.fontMetrics().height() + 8)
    v.column_sizer = ColumnSizer(v)  # sized on a sample of rows
    tableexport.install(v)
    v.horizontalHeader().setSectionResizeMode(AddressModel.COL_ADDR, QHeaderView.ResizeMode.Stretch)
    return v
