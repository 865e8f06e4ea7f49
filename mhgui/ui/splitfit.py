"""Sizes a vertical splitter's table sections to their rows (issue 15.5, 1366x720).

The window's splitter holds the interfaces (few rows: all of them should show), the tabs (the rest of the room)
and the binding table (its rows, at least four). Proportional stretch factors gave the interfaces two rows and
left the binding table mostly empty; :class:`SplitterFit` instead gives each fitted section what its rows need
and the free section what is left. Once the user drags a handle, their sizes are kept.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QEvent, QObject, QTimer
from PySide6.QtWidgets import QAbstractItemView, QSplitter


@dataclass
class Fitted:
    """A section sized to the rows of ``view`` (a table inside it): ``min_rows`` .. ``max_rows`` rows shown."""

    index: int
    view: QAbstractItemView
    min_rows: int
    max_rows: int


class SplitterFit(QObject):
    """Keeps ``splitter``'s ``fitted`` sections at the height their rows need; section ``free`` takes the rest but
    keeps ``free_share`` (0..1) of the height at least, the fitted sections giving up rows beyond their
    ``min_rows`` for it (the last listed first). Refits when the splitter is resized or a fitted model's row count changes."""

    def __init__(self, splitter: QSplitter, fitted: list[Fitted], free: int, free_share: float = 0.35) -> None:
        super().__init__(splitter)
        self.splitter, self.fitted, self.free, self.free_share = splitter, fitted, free, free_share
        self.user_sized = False
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(0)
        self._timer.timeout.connect(self.fit)
        splitter.splitterMoved.connect(self._on_user_moved)  # only a drag emits it, not setSizes()
        splitter.installEventFilter(self)
        for f in fitted:
            m = f.view.model()
            for sig in (m.rowsInserted, m.rowsRemoved, m.modelReset, m.layoutChanged):
                sig.connect(self._timer.start)

    def _on_user_moved(self, *_args) -> None:
        self.user_sized = True

    def eventFilter(self, obj, ev) -> bool:  # noqa: N802 (Qt's name)
        if obj is self.splitter and ev.type() in (QEvent.Type.Resize, QEvent.Type.Show, QEvent.Type.LayoutRequest):
            self._timer.start()
        return False

    def rows_shown(self, f: Fitted) -> int:
        """Whole rows ``f``'s table shows now."""
        v = f.view
        return v.viewport().height() // max(1, self._row_height(v))

    @staticmethod
    def _row_height(v) -> int:
        vh = getattr(v, "verticalHeader", None)
        return (v.rowHeight(0) if v.model().rowCount() else 0) or (vh().defaultSectionSize() if vh else 0) or \
            v.fontMetrics().height() + 8

    def wanted(self) -> list[int] | None:
        """The sizes :meth:`fit` would set (None: nothing to fit now: not shown, or sized by the user)."""
        sp = self.splitter
        if self.user_sized or not sp.isVisible():
            return None
        sizes = sp.sizes()
        total = sum(sizes)
        if total <= 0:
            return None
        need, floor = {}, {}
        for f in self.fitted:
            w = sp.widget(f.index)
            if not f.view.isVisible():  # e.g. the binding table hidden behind its "no daemon" text
                need[f.index] = floor[f.index] = max(w.minimumSizeHint().height(), min(sizes[f.index], w.sizeHint().height()))
                continue
            extra = sizes[f.index] - f.view.viewport().height()  # title, margins, header, labels, frame
            rh = self._row_height(f.view)
            rows = max(f.min_rows, min(f.max_rows, f.view.model().rowCount()))
            need[f.index] = extra + rows * rh + 2  # a little slack: a row's border must not be cut
            floor[f.index] = extra + min(rows, f.min_rows) * rh + 2
        free_min = max(sp.widget(self.free).minimumSizeHint().height(), int(total * self.free_share))
        over = sum(need.values()) + free_min - total
        if over > 0:  # give back rows beyond the minimum, the last listed section first
            for i in reversed(list(need)):
                give = min(over, need[i] - floor[i])
                need[i] -= give
                over -= give
        out = list(sizes)
        for i, h in need.items():
            out[i] = h
        out[self.free] = max(0, total - sum(need.values()))
        return out

    def fit(self) -> None:
        sizes = self.wanted()
        if sizes is not None and sizes != self.splitter.sizes():
            self.splitter.setSizes(sizes)
