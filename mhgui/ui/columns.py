"""Column widths of table and tree views, measured on a sample of rows, not on every change.

``QHeaderView.ResizeToContents`` measures every row of every such column again
whenever the model changes (an insertion, a ``dataChanged``): with 1,000
addresses each netlink event and each tick of the lifetime countdown cost
about 100 ms of the GUI thread. :class:`ColumnSizer` makes the columns
``Interactive`` (the user can drag them; a column the user resized is left
alone) and fits them to at most ``sample`` rows spread over the model:

- when rows first appear, and again whenever the row count has doubled or
  halved since the last fit;
- on any change at all while the model has at most ``sample`` rows (then the
  sample is every row, and a fit costs what one ResizeToContents pass did);

each fit runs once, ``delay_ms`` after the first change that asks for it (so a
burst of changes costs one fit). Columns in ``Stretch`` mode, and the last one
when the header stretches it, are left to the header.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, QTimer
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableView, QTreeView

__all__ = ["ColumnSizer"]


class ColumnSizer(QObject):
    """Fits the columns of ``view`` (a QTableView or QTreeView with its model set) to a sample of rows.

    ``sample``: rows measured per fit (the first rows, then evenly spread); ``delay_ms``: how long
    after a change the fit runs; ``max_width``: no fitted column is wider (pixels). ``fits`` counts
    the fits done (for tests and benchmarks).
    """

    def __init__(self, view: QAbstractItemView, *, sample: int = 64, delay_ms: int = 150,
                 max_width: int = 480) -> None:
        super().__init__(view)
        self.view = view
        self.sample = max(2, sample)
        self.max_width = max_width
        self.fits = 0
        self._header: QHeaderView = view.horizontalHeader() if isinstance(view, QTableView) else view.header()
        self._header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self._fitted_rows: int | None = None  # row count at the last fit
        self._user: set[int] = set()  # columns the user resized
        self._fitting = False
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(delay_ms)
        self._timer.timeout.connect(self.fit)
        self._header.sectionResized.connect(self._on_resized)
        model = view.model()
        for sig in (model.rowsInserted, model.rowsRemoved):
            sig.connect(self._on_rows)
        for sig in (model.modelReset, model.layoutChanged):
            sig.connect(self._on_rows)
        model.dataChanged.connect(self._on_data)
        # also with no rows yet: the headers are fitted to their titles (an empty Steering rules table showed
        # "ew connections" for "New connections to" at the default section width)
        self._schedule()

    # ---- when to fit
    def _schedule(self) -> None:
        if not self._timer.isActive():  # a burst of changes: one fit, delay_ms after the first
            self._timer.start()

    def _on_rows(self, *_) -> None:
        n = self.view.model().rowCount()
        last = self._fitted_rows
        if last is None or n <= self.sample or n >= 2 * last or 2 * n <= last:
            self._schedule()

    def _on_data(self, *_) -> None:
        if self.view.model().rowCount() <= self.sample:
            self._schedule()

    def _on_resized(self, logical: int, _old: int, _new: int) -> None:
        if self._fitting:
            return
        h = self._header
        try:
            by_user = (h.sectionResizeMode(logical) == QHeaderView.ResizeMode.Interactive
                       and not (h.stretchLastSection() and h.logicalIndex(h.count() - 1) == logical))
        except RuntimeError:  # the view is being torn down (its sections go as its model does)
            return
        if by_user:
            self._user.add(logical)

    # ---- fitting
    def sample_rows(self, n: int) -> list[int]:
        """The rows measured for ``n`` rows: all of them up to ``sample``, else the first quarter of
        the sample and the rest evenly spread (the first rows are the ones seen first)."""
        if n <= self.sample:
            return list(range(n))
        head = self.sample // 4
        rest = self.sample - head
        spread = {head + round(i * (n - 1 - head) / (rest - 1)) for i in range(rest)}
        return sorted(set(range(head)) | spread)

    def fit(self) -> None:
        """Fit the columns now (normally called by the timer)."""
        self._timer.stop()
        view, header = self.view, self._header
        model = view.model()
        if model is None:
            return
        n = model.rowCount()
        rows = self.sample_rows(n)
        ncols = model.columnCount()
        last_visible = max((c for c in range(ncols) if not header.isSectionHidden(c)), default=-1)
        indent = view.indentation() if isinstance(view, QTreeView) and view.rootIsDecorated() else 0
        self._fitting = True
        try:
            for col in range(ncols):
                if (col in self._user or header.isSectionHidden(col)
                        or header.sectionResizeMode(col) != QHeaderView.ResizeMode.Interactive
                        or (col == last_visible and header.stretchLastSection())):
                    continue
                width = header.sectionSizeHint(col)
                for r in rows:
                    width = max(width, view.sizeHintForIndex(model.index(r, col)).width() + (indent if col == 0 else 0))
                header.resizeSection(col, min(width + 2, self.max_width))
        finally:
            self._fitting = False
        self._fitted_rows = n
        self.fits += 1
