"""Copy and export of every table: the rows as shown, as TSV (clipboard), CSV or JSON (issue 15.5).

Two halves. The pure functions (:func:`as_tsv`, :func:`as_csv`, :func:`as_json`) turn a
:class:`Table` (column titles and rows of cell texts) into text and import no Qt. The Qt glue
(:func:`install`, :func:`table_of`) reads what a view shows — through its proxy model, the visible
columns in their on-screen order, the rows in the sorted and filtered order — and adds to the view
the actions "Copy" (the selected rows, Ctrl+C), "Export as CSV…" and "Export as JSON…" (a
non-modal file dialog, opened with ``open()``; the file is written in an executor through
:func:`mhgui.atomicfile.atomic_replace`: a reader sees the old file or the whole new one).

Copy takes the texts as shown; an export takes each cell's :data:`ExportRole` value where a model gives one
(a full ISO 8601 timestamp for a time shown as 12:34:56, a duration in milliseconds as a number), and an
empty cell for a shown placeholder ("—"). The file dialog opens in the user's Documents folder (else the
home folder), then where the last export of the session went.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from dataclasses import dataclass
from typing import Callable

from ..i18n import _

__all__ = ["EXPORT_ROLE", "JSON_SCHEMA", "PLACEHOLDERS", "Table", "TableExport", "as_csv", "as_json", "as_tsv", "install", "safe_cell",
           "table_of", "write_file"]

log = logging.getLogger("mhgui.ui.tableexport")

#: the ``schema`` value of the JSON export (raised when its shape changes)
JSON_SCHEMA = "mhgui-table/1"
#: a model's data role for the value exported (Qt.ItemDataRole.UserRole + 90): a str, int or float, or None to
#: export the shown text; a model gives it where its display text loses something (a time without its date)
EXPORT_ROLE = 0x0100 + 90
#: shown texts that mean "nothing here": exported as empty cells
PLACEHOLDERS = frozenset({"—", "–", "-"})
#: where the last export of this session went (the next export dialog opens there)
_last_dir: str | None = None


@dataclass(frozen=True)
class Table:
    """What a table shows: ``name`` (e.g. "Binding table"), ``columns`` (titles, in display order) and
    ``rows`` (one tuple of cell texts per row, same length as ``columns``)."""

    name: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str | int | float, ...], ...]  # numbers only in an export (EXPORT_ROLE)


def _tsv_cell(text) -> str:
    text = str(text)
    return " ".join(text.replace("\t", " ").split("\n")).replace("\r", "")


def as_tsv(table: Table, *, header: bool = True) -> str:
    """Tab-separated lines (a spreadsheet pastes them into cells): tabs and line breaks inside a cell
    become spaces; the header line first when ``header``; ends with a newline (empty string: nothing)."""
    lines = ["\t".join(_tsv_cell(c) for c in table.columns)] if header else []
    lines += ["\t".join(_tsv_cell(c) for c in row) for row in table.rows]
    return "".join(line + "\n" for line in lines)


def safe_cell(text: str) -> str:
    """``text``, with a leading apostrophe when a spreadsheet would run it as a formula (starts with
    ``=``, ``+``, ``@``, a tab or carriage return, or ``-`` not followed by a number): a process or
    host name is outside input (OWASP "CSV injection")."""
    if not isinstance(text, str):
        return str(text)  # a number from EXPORT_ROLE
    if not text:
        return text
    first = text[0]
    if first in "=+@\t\r":
        return "'" + text
    if first == "-":
        try:
            float(text)
        except ValueError:
            return "'" + text
    return text


def as_csv(table: Table) -> str:
    """RFC 4180 CSV (CRLF line ends, quoted where needed), the header row first; cells that a
    spreadsheet would take for formulas are defused (:func:`safe_cell`)."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow([safe_cell(c) for c in table.columns])
    w.writerows([safe_cell(c) for c in row] for row in table.rows)
    return out.getvalue()


def as_json(table: Table) -> str:
    """A JSON object: ``{"schema": JSON_SCHEMA, "table": name, "columns": [...], "rows": [{column:
    cell}, ...]}``; a repeated column title gets `` (2)``, `` (3)``... so no cell is lost."""
    keys: list[str] = []
    for c in table.columns:
        k, n = c, 1
        while k in keys:
            n += 1
            k = f"{c} ({n})"
        keys.append(k)
    doc = {"schema": JSON_SCHEMA, "table": table.name, "columns": keys,
           "rows": [dict(zip(keys, row)) for row in table.rows]}
    return json.dumps(doc, ensure_ascii=False, indent=1) + "\n"


def write_file(path: str, text: str) -> None:
    """Replace ``path`` with ``text`` (UTF-8) atomically. Blocking: run it in an executor. Raises OSError."""
    from ..atomicfile import atomic_replace
    data = text.encode("utf-8")
    atomic_replace(path, lambda f: f.write(data), mode=0o644)


# ---------------------------------------------------------------------------------------------- Qt glue
def table_of(view, *, selected_only: bool = False, name: str = "", raw: bool = False) -> Table:
    """What ``view`` (a QTableView or QTreeView, top-level rows) shows: the visible columns in their
    on-screen order and the rows in the view's (sorted, filtered) order, as display texts; only the
    selected rows when ``selected_only``. ``raw`` (an export): each cell's :data:`EXPORT_ROLE` value where
    the model gives one, else its text, a placeholder (:data:`PLACEHOLDERS`) as an empty cell."""
    from PySide6.QtCore import QModelIndex, Qt
    from PySide6.QtWidgets import QTableView
    model = view.model()
    header = view.horizontalHeader() if isinstance(view, QTableView) else view.header()
    cols = [header.logicalIndex(v) for v in range(header.count())]
    cols = [c for c in cols if not header.isSectionHidden(c)]
    titles = tuple(str(model.headerData(c, Qt.Orientation.Horizontal, Qt.ItemDataRole.DisplayRole) or "")
                   for c in cols)
    if selected_only and view.selectionModel() is not None:
        rows = sorted({i.row() for i in view.selectionModel().selectedIndexes()}
                      | {i.row() for i in view.selectionModel().selectedRows()})
        if not rows and view.currentIndex().isValid():
            rows = [view.currentIndex().row()]
    else:
        rows = range(model.rowCount(QModelIndex()))

    def text(r: int, c: int):
        i = model.index(r, c)
        if raw:
            v = i.data(EXPORT_ROLE)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                return v
            if v is not None:
                return str(v)
        v = i.data(Qt.ItemDataRole.DisplayRole)
        v = "" if v is None else str(v)
        return "" if raw and v.strip() in PLACEHOLDERS else v

    out = tuple(tuple(text(r, c) for c in cols) for r in rows if not _hidden(view, r))
    return Table(name or view.accessibleName() or view.objectName() or _("Table"), titles, out)


def _hidden(view, row: int) -> bool:
    from PySide6.QtCore import QModelIndex
    from PySide6.QtWidgets import QTableView
    return view.isRowHidden(row) if isinstance(view, QTableView) else view.isRowHidden(row, QModelIndex())


class TableExport:
    """The copy/export actions of one view (made by :func:`install`; kept as ``view.table_export``).

    ``actions()``: Copy, Export as CSV…, Export as JSON… (to add to a view's own context menu).
    ``save(path, fmt)`` writes the table now (``fmt``: "csv" or "json"; a coroutine, the writing in an
    executor; OSError is said by ``on_message`` and returns False). ``dialog_opener(dialog)`` shows the
    file dialog (default ``dialog.open()``; tests replace it).
    """

    FORMATS = {"csv": (as_csv, "text/csv", ".csv"), "json": (as_json, "application/json", ".json")}

    def __init__(self, view, name: Callable[[], str] | str = "", *,
                 on_message: Callable[[str, bool], None] | None = None) -> None:
        from PySide6.QtGui import QAction, QKeySequence
        from PySide6.QtCore import Qt
        self.view = view
        self._name = name
        self.on_message = on_message or self._tell
        self.dialog_opener: Callable = lambda d: d.open()
        self.last_dialog = None
        self._tasks: set = set()
        self.copy_action = QAction(_("&Copy"), view)
        self.copy_action.setShortcut(QKeySequence(QKeySequence.StandardKey.Copy))
        self.copy_action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self.copy_action.triggered.connect(self.copy)
        self.csv_action = QAction(_("Export as &CSV…"), view)
        self.csv_action.triggered.connect(lambda: self.ask("csv"))
        self.json_action = QAction(_("Export as &JSON…"), view)
        self.json_action.triggered.connect(lambda: self.ask("json"))
        view.addAction(self.copy_action)  # the shortcut works while the view has the focus

    def _tell(self, text: str, ok: bool) -> None:
        """Default ``on_message``: the status bar of the view's main window, else the log."""
        from PySide6.QtWidgets import QMainWindow
        win = self.view.window()
        if isinstance(win, QMainWindow):
            win.statusBar().showMessage(text, 15000)
        else:
            (log.info if ok else log.warning)("%s", text)

    def name(self) -> str:
        n = self._name() if callable(self._name) else self._name
        return n or self.view.accessibleName() or _("Table")

    def actions(self) -> list:
        return [self.copy_action, self.csv_action, self.json_action]

    def add_to(self, menu) -> None:
        """Append the three actions to ``menu`` (after a separator when it has entries already)."""
        if menu.actions():
            menu.addSeparator()
        for a in self.actions():
            menu.addAction(a)

    def table(self, selected_only: bool = False, raw: bool = False) -> Table:
        return table_of(self.view, selected_only=selected_only, name=self.name(), raw=raw)

    def copy(self) -> str:
        """Put the selected rows (all, when none is selected) on the clipboard as TSV with a header line."""
        from PySide6.QtGui import QGuiApplication
        t = self.table(selected_only=True)
        if not t.rows:
            t = self.table()
        text = as_tsv(t)
        QGuiApplication.clipboard().setText(text)
        return text

    def ask(self, fmt: str) -> None:
        """Ask where to save (a file dialog, not modal), then :meth:`save` there."""
        from PySide6.QtWidgets import QFileDialog
        _f, _mime, suffix = self.FORMATS[fmt]
        d = QFileDialog(self.view.window(), _("Export {table}").format(table=self.name()))
        d.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
        d.setFileMode(QFileDialog.FileMode.AnyFile)
        d.setDefaultSuffix(suffix[1:])
        d.setNameFilters([_("CSV files (*.csv)") if fmt == "csv" else _("JSON files (*.json)"), _("All files (*)")])
        d.setDirectory(export_dir())
        d.selectFile(self.name().lower().replace(" ", "-") + suffix)
        d.fileSelected.connect(remember_dir)
        d.fileSelected.connect(lambda path: self._spawn(self.save(path, fmt)))
        d.finished.connect(d.deleteLater)
        self.last_dialog = d
        self.dialog_opener(d)

    def _spawn(self, coro) -> None:
        import asyncio  # (asyncio loads after the window's first frame, issue 14)
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def save(self, path: str, fmt: str) -> bool:
        fn, _mime, _suffix = self.FORMATS[fmt]
        t = self.table(raw=True)  # read on the GUI thread, written in an executor
        text = fn(t)
        import asyncio
        try:
            await asyncio.get_running_loop().run_in_executor(None, write_file, path, text)
        except OSError as e:
            self.on_message(_("Could not export {table} to {path}: {error}").format(
                table=t.name, path=path, error=e.strerror or e), False)
            return False
        self.on_message(_("Exported {table} ({rows} rows) to {path}.").format(
            table=t.name, rows=len(t.rows), path=path), True)
        return True


def export_dir() -> str:
    """Where an export dialog opens: the folder of this session's last export, else the user's Documents
    folder (QStandardPaths; when it exists), else the home folder."""
    import os
    from PySide6.QtCore import QStandardPaths
    if _last_dir and os.path.isdir(_last_dir):
        return _last_dir
    docs = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.DocumentsLocation)
    if docs and os.path.isdir(docs):
        return docs
    return QStandardPaths.writableLocation(QStandardPaths.StandardLocation.HomeLocation) or os.path.expanduser("~")


def remember_dir(path: str) -> None:
    """An export went to ``path`` (a file): the next export dialog of this session opens in its folder."""
    import os
    global _last_dir
    if path:
        _last_dir = os.path.dirname(os.path.abspath(path))


def install(view, name: Callable[[], str] | str = "", *, on_message=None, menu: bool = True) -> TableExport:
    """Give ``view`` copy and export (kept as ``view.table_export``). With ``menu``, a view without a
    context menu of its own gets one with the three actions; a view with its own
    (``CustomContextMenu``) adds them there with ``view.table_export.add_to(menu)``."""
    from PySide6.QtCore import Qt
    te = TableExport(view, name, on_message=on_message)
    view.table_export = te
    if menu and view.contextMenuPolicy() != Qt.ContextMenuPolicy.CustomContextMenu:
        view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        view.customContextMenuRequested.connect(lambda pos: _menu(te, pos))
    return te


def _menu(te: TableExport, pos) -> None:
    from PySide6.QtWidgets import QMenu
    m = QMenu(te.view)
    te.add_to(m)
    te.last_menu = m
    m.popup(te.view.viewport().mapToGlobal(pos))
