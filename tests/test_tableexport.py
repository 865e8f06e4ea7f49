"""Copy and export of every table (issue 15.5): the pure formatting, and the Qt glue on the window's real
models (the displayed columns and rows through the proxy, in display order)."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QFileDialog, QTableView, QTreeView

import desktopworld
from mhgui.atomicfile import TEMP_MARK
from mhgui.ui.models import BindingModel
from mhgui.ui.tableexport import JSON_SCHEMA, Table, as_csv, as_json, as_tsv, safe_cell, table_of

pytestmark = pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints")  # offscreen, shown

T = Table("Demo", ("Name", "Note", "Name"),
          (("eth0", "a\tb\nc", "x"), ("=cmd|' /C calc'!A0", "-1.5", "-x"), ("", "\"quoted\", comma", "@sum")))


def test_tsv_keeps_one_line_per_row():
    lines = as_tsv(T).splitlines()
    assert lines[0] == "Name\tNote\tName"
    assert lines[1] == "eth0\ta b c\tx"  # the tab and line break inside a cell are spaces
    assert len(lines) == 4 and all(line.count("\t") == 2 for line in lines)
    assert as_tsv(T, header=False).splitlines()[0].startswith("eth0")


def test_csv_round_trips_and_defuses_formulas():
    text = as_csv(T)
    assert "\r\n" in text
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows[0] == ["Name", "Note", "Name"]
    assert rows[1] == ["eth0", "a\tb\nc", "x"]
    assert rows[2] == ["'=cmd|' /C calc'!A0", "-1.5", "'-x"]  # a number stays a number
    assert rows[3] == ["", "\"quoted\", comma", "'@sum"]
    assert safe_cell("+1") == "'+1" and safe_cell("2001:db8::1") == "2001:db8::1"


def test_json_is_an_object_with_every_cell():
    doc = json.loads(as_json(T))
    assert doc["schema"] == JSON_SCHEMA and doc["table"] == "Demo"
    assert doc["columns"] == ["Name", "Note", "Name (2)"]
    assert doc["rows"][0] == {"Name": "eth0", "Note": "a\tb\nc", "Name (2)": "x"}
    assert doc["rows"][1]["Name"] == "=cmd|' /C calc'!A0"  # JSON is data, not a spreadsheet: kept as is


@pytest.fixture
def world(qtbot):
    win, c = desktopworld.window()
    qtbot.addWidget(win)
    win.resize(1350, 680)
    win.show()
    qtbot.waitExposed(win)
    yield win, c
    c.close()


def shown(view) -> list[list[str]]:
    """The cells as drawn: row by row from the top, columns left to right (by their on-screen position)."""
    m = view.model()
    h = view.horizontalHeader()
    cols = sorted((h.sectionViewportPosition(c), c) for c in range(h.count()) if not h.isSectionHidden(c))
    return [[str(m.index(r, c).data() or "") for _x, c in cols]
            for r in sorted(range(m.rowCount()), key=view.rowViewportPosition)]


def test_the_table_is_what_the_view_shows(world):
    win, c = world
    v = win.bindings_view
    v.sortByColumn(BindingModel.COL_COA, Qt.SortOrder.DescendingOrder)
    v.horizontalHeader().moveSection(BindingModel.COL_STATE, 0)  # the user dragged "State" to the front
    v.setColumnHidden(BindingModel.COL_HA, True)
    t = table_of(v)
    assert t.columns[0] == "State" and "Home agent" not in t.columns and len(t.columns) == 6
    assert [list(r) for r in t.rows] == shown(v)
    assert [r[t.columns.index("Care-of address")] for r in t.rows] == sorted(
        (b.coa for b in c.daemon.bindings()), reverse=True)
    assert t.name == "Binding table"


def test_filtered_rows_are_left_out(world):
    win, c = world
    iv = win.interfaces_view
    row = next(r for r in range(iv.model().rowCount()) if iv.model().index(r, 0).data() == "wlan0")
    iv.selectRow(row)  # the addresses table shows wlan0's only
    t = table_of(win.addresses_view)
    assert t.rows and {r[0] for r in t.rows} == {"wlan0"}
    assert len(t.rows) == sum(a.ifindex == 3 for a in c.store.state.addresses.values())


def test_copy_puts_the_selected_rows_on_the_clipboard(world, qtbot):
    win, _c = world
    v = win.bindings_view
    v.setFocus()
    v.selectRow(1)
    v.selectionModel().select(v.model().index(3, 0), v.selectionModel().SelectionFlag.Select
                              | v.selectionModel().SelectionFlag.Rows)
    QGuiApplication.clipboard().clear()
    qtbot.keyClick(v, Qt.Key.Key_C, Qt.KeyboardModifier.ControlModifier)  # the shortcut, as a user presses it
    lines = QGuiApplication.clipboard().text().splitlines()
    assert lines[0].split("\t") == list(table_of(v).columns)
    assert [line.split("\t") for line in lines[1:]] == [shown(v)[1], shown(v)[3]]


def test_every_view_of_the_window_has_copy_and_export(world):
    win, _c = world
    for i in range(win.tabs.count()):  # tabs may be built when first shown
        win.tabs.setCurrentIndex(i)
    views = [v for v in win.findChildren(QTableView) + win.findChildren(QTreeView) if v.isVisibleTo(win)
             or v.parentWidget() is not None]
    assert len(views) >= 8
    for v in views:
        te = getattr(v, "table_export", None)
        assert te is not None, f"{v.accessibleName() or v.objectName() or v} has no copy/export"
        assert [a.text() for a in te.actions()] == ["&Copy", "Export as &CSV…", "Export as &JSON…"] or \
            len(te.actions()) == 3


def test_context_menus_offer_export(world):
    win, _c = world
    shown_menus = []
    win.show_menu = lambda menu, where: shown_menus.append(menu)
    # a view with its own menu (home addresses: rebind) adds the three entries to it
    idx = win.homes_view.model().index(0, 0)
    win._homes_menu(win.homes_view.visualRect(idx).center())
    texts = [a.text() for a in shown_menus[-1].actions() if not a.isSeparator()]
    assert texts[-3:] == ["&Copy", "Export as &CSV…", "Export as &JSON…"] and texts[0].startswith("Bind ")
    # an empty part of it: the three alone
    win._homes_menu(win.homes_view.viewport().rect().bottomRight())
    assert [a.text() for a in shown_menus[-1].actions()] == ["&Copy", "Export as &CSV…", "Export as &JSON…"]


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_export_through_the_dialog_writes_the_file_atomically(world, qloop, tmp_path, fmt):
    win, _c = world
    v = win.bindings_view
    v.sortByColumn(BindingModel.COL_BID, Qt.SortOrder.DescendingOrder)
    te = v.table_export
    opened = []
    te.dialog_opener = opened.append  # the dialog is opened (never exec()), the test answers it
    (te.csv_action if fmt == "csv" else te.json_action).trigger()
    d = opened[0]
    assert isinstance(d, QFileDialog) and d.acceptMode() == QFileDialog.AcceptMode.AcceptSave
    assert d.defaultSuffix() == fmt
    target = tmp_path / f"bindings.{fmt}"
    target.write_text("old")
    d.fileSelected.emit(str(target))
    qloop.run_until_complete(asyncio.wait_for(asyncio.gather(*te._tasks), 10))
    text = target.read_text(encoding="utf-8")
    want = table_of(v, raw=True)  # an export writes the raw values (EXPORT_ROLE; "—" as an empty cell)
    if fmt == "csv":
        rows = list(csv.reader(io.StringIO(text, newline="")))
        assert rows == [list(want.columns)] + [list(r) for r in want.rows]
    else:
        doc = json.loads(text)
        assert [list(r.values()) for r in doc["rows"]] == [list(r) for r in want.rows]
    assert [r[want.columns.index("BID")] for r in want.rows][0].startswith("3")
    assert not [n for n in os.listdir(tmp_path) if TEMP_MARK in n]
    assert "Exported Binding table (6 rows)" in win.statusBar().currentMessage()


def test_an_export_that_cannot_be_written_says_why(world, qloop, tmp_path):
    win, _c = world
    te = win.interfaces_view.table_export
    ok = qloop.run_until_complete(te.save(str(tmp_path / "missing-dir" / "x.csv"), "csv"))
    assert ok is False
    assert "Could not export Interfaces" in win.statusBar().currentMessage()
    assert "No such file or directory" in win.statusBar().currentMessage()


def test_the_export_dialog_opens_in_documents_or_home_then_where_the_last_export_went(world, tmp_path,
                                                                                      monkeypatch):
    import mhgui.ui.tableexport as te_mod
    from PySide6.QtCore import QStandardPaths
    monkeypatch.setattr(te_mod, "_last_dir", None, raising=False)
    win, _c = world
    te = win.bindings_view.table_export
    opened = []
    te.dialog_opener = opened.append
    te.csv_action.trigger()
    start = os.path.realpath(opened[-1].directory().absolutePath())
    docs = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.DocumentsLocation)
    home = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.HomeLocation)
    want = docs if docs and os.path.isdir(docs) else home
    assert start == os.path.realpath(want) and start != os.path.realpath(os.getcwd()), (start, docs, home)
    (tmp_path / "out").mkdir()
    te.dialog_opener = lambda d: None  # answered below, nothing written
    te.csv_action.trigger()
    te.last_dialog.fileSelected.disconnect()  # only where it went is kept: no file needed for this test
    te_mod.remember_dir(str(tmp_path / "out" / "bindings.csv"))
    te.dialog_opener = opened.append
    win.interfaces_view.table_export.dialog_opener = opened.append
    win.interfaces_view.table_export.json_action.trigger()  # another table, the same session: that folder
    assert os.path.realpath(opened[-1].directory().absolutePath()) == os.path.realpath(tmp_path / "out")


def test_the_failover_log_exports_full_timestamps_numbers_and_empty_cells(qtbot, qloop, tmp_path):
    from datetime import datetime

    from mhgui.core.failover import FailoverEntry
    from mhgui.failover_service import EntryChanged
    from mhgui.ui.failover_view import FailoverLogModel, FailoverPage
    from test_failover_service import PREFS, World
    w = World(PREFS, steering=False)
    page = FailoverPage(w.svc, wall_of=lambda t: 1_780_000_000.0 + t)
    qtbot.addWidget(page)
    page._on_event(EntryChanged(FailoverEntry(1, "daemon", "eth0", "wlan0", "link-down", 10.0, 10.0125,
                                              bu_time=10.2, ack_time=None, hoas=("2001:db8:100::10",))))
    page._on_event(EntryChanged(FailoverEntry(2, "app", None, "eth0", "recovered", None, 20.0)))
    shown_when = page.model.index(0, FailoverLogModel.COL_WHEN).data()
    assert len(shown_when) == 8  # the display is unchanged: 12:34:56
    path = tmp_path / "failover.csv"
    assert qloop.run_until_complete(page.view.table_export.save(str(path), "csv"))
    rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))
    when = datetime.fromisoformat(rows[0]["When"])
    assert when.tzinfo is not None and when.timestamp() == pytest.approx(1_780_000_010.0125, abs=0.001)
    assert rows[0]["When"][:10] == when.date().isoformat() and "T" in rows[0]["When"]
    assert float(rows[0]["Decision"]) == pytest.approx(12.5) and float(rows[0]["BU seen"]) == pytest.approx(200)
    assert rows[0]["Acknowledged"] == ""  # not seen yet ("…" on screen)
    assert rows[1]["From"] == "" and rows[1]["Decision"] == "" and rows[1]["BU seen"] == ""  # "—" on screen
    assert page.model.index(1, FailoverLogModel.COL_FROM).data() == "—"
    js = tmp_path / "failover.json"
    assert qloop.run_until_complete(page.view.table_export.save(str(js), "json"))
    doc = json.loads(js.read_text(encoding="utf-8"))
    assert doc["rows"][0]["BU seen"] == pytest.approx(200) and isinstance(doc["rows"][0]["BU seen"], float)
    page.close_page()
