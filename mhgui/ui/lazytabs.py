"""Tab pages built when first shown (start-up cost, issue 14).

A :class:`LazyTabs` wraps a ``QTabWidget``: :meth:`LazyTabs.add` takes a title and a
factory (``lambda: page``) and adds an empty placeholder tab at once; the factory runs
the first time that tab becomes the current one while the tab widget is visible, or
when code asks for the page (:meth:`LazyTabs.page`, :meth:`LazyTabs.ensure`,
:meth:`LazyTabs.provide`). So the window's first frame builds only the page it shows.
The built page then takes the placeholder's place in the tab widget (same index,
title, tooltip; the current index is kept and no extra ``currentChanged`` is emitted):
from then on ``tabs.widget(i)``, ``indexOf(page)`` and ``setCurrentWidget(page)``
see the page itself, as with a page added directly.

A page that sets attributes on its owner (``self.flows_view = ...``) names them in
``provides``; :meth:`LazyTabs.provide` builds the page that provides a missing one
(``MainWindow.__getattr__`` calls it), so code written for eagerly built pages works
unchanged.

Usage (in ``MainWindow.__init__``, ``tabs`` a ``QTabWidget``)::

    self.lazy_tabs = LazyTabs(tabs)
    self.lazy_tabs.add("Addresses", lambda: self.addresses_view)  # the first: built at once
    self.lazy_tabs.add("Node", lambda: node_page(self))           # built when first shown
    # its module imported when first shown too (not at the top of window.py):
    self.lazy_tabs.add("Node", lazy_page("mhgui.ui.nodeview", "node_page", self))
"""

from __future__ import annotations

import logging
from typing import Callable, Iterable

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtWidgets import QTabWidget, QWidget

__all__ = ["LazyTabs", "lazy_page"]

log = logging.getLogger("mhgui.ui.lazytabs")

Factory = Callable[[], QWidget]


def lazy_page(module: str, function: str, *args) -> Factory:
    """A factory that imports ``module`` (absolute: ``"mhgui.ui.nodeview"``) when the page is first
    built and returns ``module.function(*args)``: the page's module (and what it imports) is not
    loaded before the window's first frame either. ``ImportError`` when the page is built."""
    def factory() -> QWidget:
        import importlib
        return getattr(importlib.import_module(module), function)(*args)
    return factory


class _Slot(QWidget):
    """A tab's placeholder until its page is built."""

    def __init__(self, factory: Factory, provides: tuple[str, ...]) -> None:
        super().__init__()
        self.factory: Factory | None = factory
        self.provides = provides
        self.page: QWidget | None = None
        self._error = None  # the QLabel saying why the page could not be built

    def show_error(self, error: BaseException, retry: Callable[[], None]) -> None:
        """Say in the tab that its page could not be built (``error``), with a "Try again" button (``retry``)."""
        from PySide6.QtWidgets import QLabel, QPushButton, QVBoxLayout
        from ..i18n import _
        text = _("This page could not be built: {error}").format(error=f"{type(error).__name__}: {error}"[:500])
        if self._error is not None:  # failed again: the same box says the latest error
            self._error.setText(text)
            return
        lay = QVBoxLayout(self)
        label = QLabel(text, self)
        label.setWordWrap(True)
        label.setTextInteractionFlags(label.textInteractionFlags() | Qt.TextInteractionFlag.TextSelectableByMouse)
        button = QPushButton(_("Try again"), self)
        button.setAccessibleName(_("Try again to build this page"))
        button.clicked.connect(retry)
        lay.addWidget(label)
        lay.addWidget(button, 0, Qt.AlignmentFlag.AlignLeft)
        lay.addStretch(1)
        self._error = label


class LazyTabs(QObject):
    """Tabs of ``tabs`` whose pages are made by a factory when first needed.

    ``built(index, page)`` is emitted after a page was built and put in its tab. A factory that
    raises leaves its placeholder and is tried again the next time (the exception propagates to
    the caller; for a tab switch it is logged and the tab says it, with a "Try again" button). A factory that returns None leaves
    the placeholder (an empty page).
    """

    built = Signal(int, QWidget)

    def __init__(self, tabs: QTabWidget) -> None:
        super().__init__(tabs)
        self.tabs = tabs
        self._slots: list[_Slot] = []  # placeholders of the pages not built yet
        tabs.currentChanged.connect(self._on_current)
        tabs.installEventFilter(self)  # Show: the current tab's page, once the tab widget is shown

    # ---- adding
    def add(self, title: str, factory: Factory, *, provides: Iterable[str] = (), index: int | None = None,
            eager: bool = False) -> int:
        """Add a tab titled ``title`` whose page is ``factory()``; returns the tab's index.

        ``provides``: names of attributes the factory sets on its owner (see :meth:`provide`);
        ``index``: insert there instead of appending; ``eager``: build the page now.
        The current tab's page is built when the tab widget is shown (or now, if it is visible).
        """
        slot = _Slot(factory, tuple(provides))
        self._slots.append(slot)
        i = self.tabs.addTab(slot, title) if index is None else self.tabs.insertTab(index, slot, title)
        if eager or (self.tabs.isVisible() and self.tabs.currentIndex() == i):
            self._build(slot)
        return self.tabs.indexOf(slot.page) if slot.page is not None else i

    # ---- asking for pages
    def is_built(self, index: int) -> bool:
        """True when tab ``index`` holds its page (a built lazy page, or a tab added directly)."""
        return not isinstance(self.tabs.widget(index), _Slot)

    def page(self, index: int) -> QWidget | None:
        """The page of tab ``index``, built now if it was not yet (None: no such tab)."""
        w = self.tabs.widget(index)
        return self._build(w) if isinstance(w, _Slot) else w

    def ensure(self, title: str) -> QWidget | None:
        """The page of the tab titled ``title`` (built now if needed); None when there is none."""
        for i in range(self.tabs.count()):
            if self.tabs.tabText(i).replace("&", "") == title.replace("&", ""):
                return self.page(i)
        return None

    def build_all(self) -> None:
        """Build every page not built yet (e.g. before a picture of each tab)."""
        for slot in list(self._slots):
            self._build(slot)

    def provide(self, owner: object, name: str):
        """``owner.name``, building the (first) unbuilt page that ``provides`` it; AttributeError when none
        does, or when the page was built and still did not set it."""
        for slot in list(self._slots):
            if slot.factory is not None and name in slot.provides:
                self._build(slot)
                return object.__getattribute__(owner, name)
        raise AttributeError(f"{type(owner).__name__!r} object has no attribute {name!r}")

    # ---- internals
    def _build(self, slot: _Slot) -> QWidget | None:
        factory = slot.factory
        if factory is None:  # built, or being built (a factory that asks for its own page)
            return slot.page
        slot.factory = None
        try:
            page = factory()
        except BaseException:
            slot.factory = factory
            raise
        if page is None:
            slot.page = slot
            self._slots.remove(slot)
            return slot
        slot.page = page
        self._slots.remove(slot)
        tabs = self.tabs
        i = tabs.indexOf(slot)
        if i >= 0:
            current = tabs.currentIndex()
            blocked = tabs.blockSignals(True)  # the same tab stays current: nothing to announce
            try:
                title, tip, icon, enabled = tabs.tabText(i), tabs.tabToolTip(i), tabs.tabIcon(i), tabs.isTabEnabled(i)
                what = tabs.tabWhatsThis(i)
                tabs.removeTab(i)
                tabs.insertTab(i, page, icon, title)
                tabs.setTabToolTip(i, tip)
                tabs.setTabWhatsThis(i, what)
                tabs.setTabEnabled(i, enabled)
                tabs.setCurrentIndex(current)
            finally:
                tabs.blockSignals(blocked)
        slot.deleteLater()
        self.built.emit(tabs.indexOf(page), page)
        return page

    def _on_current(self, index: int) -> None:
        if index >= 0 and self.tabs.isVisible():
            w = self.tabs.widget(index)
            if isinstance(w, _Slot):
                self._build_or_say(w)

    def _build_or_say(self, slot: _Slot) -> None:
        """Build ``slot``'s page for a tab switch; a factory that raises is logged and said in the tab."""
        try:
            self._build(slot)
        except Exception as e:  # noqa: BLE001 - any bug of a page: said, the rest of the window works on
            log.exception("the page of a tab could not be built")
            slot.show_error(e, lambda: self._build_or_say(slot))

    def eventFilter(self, obj, ev) -> bool:  # noqa: N802 - Qt's name
        if obj is self.tabs and ev.type() == QEvent.Type.Show and self._slots:
            self._on_current(self.tabs.currentIndex())
        return False
