"""Tab pages are built when first shown (issue 14, start-up): counted factory calls, never timed.

- a page's factory does not run until its tab is the current one of a shown tab widget, or
  the page (or an attribute it provides) is asked for; it runs once;
- the built page takes the placeholder's place: same index, title, tooltip, current tab;
- the main window builds only the Addresses page before it is shown, and its lazily built
  pages' attributes (``flows_view``, ``rules_model``) build them on first use.
"""

from __future__ import annotations

import pytest
from PySide6.QtWidgets import QLabel, QTabWidget, QWidget

from mhgui.ui.lazytabs import LazyTabs

pytestmark = pytest.mark.gui


class Owner:
    pass


def make(calls: list, name: str, owner=None):
    def factory():
        calls.append(name)
        page = QLabel(name)
        if owner is not None:
            setattr(owner, name, page)
        return page
    return factory


def test_built_when_first_current_and_shown(qapp):
    tabs = QTabWidget()
    lazy = LazyTabs(tabs)
    calls: list = []
    first = QLabel("first")
    tabs.addTab(first, "First")
    i = lazy.add("Second", make(calls, "second"))
    j = lazy.add("Third", make(calls, "third"))
    tabs.setTabToolTip(i, "the second page")
    assert (i, j) == (1, 2) and calls == []
    tabs.setCurrentIndex(i)  # not shown yet: nothing built
    assert calls == [] and not lazy.is_built(i)
    changes = []
    tabs.currentChanged.connect(changes.append)
    tabs.show()
    qapp.processEvents()
    assert calls == ["second"] and lazy.is_built(i) and not lazy.is_built(j)
    page = tabs.widget(i)
    assert isinstance(page, QLabel) and page.text() == "second"
    assert tabs.currentIndex() == i and tabs.currentWidget() is page
    assert tabs.tabText(i) == "Second" and tabs.tabToolTip(i) == "the second page"
    assert changes == []  # replacing the placeholder announced no tab switch
    tabs.setCurrentIndex(0)
    tabs.setCurrentIndex(i)
    assert calls == ["second"]  # once
    tabs.setCurrentIndex(j)
    assert calls == ["second", "third"] and tabs.indexOf(tabs.currentWidget()) == j
    tabs.close()


def test_asked_for_page_or_attribute(qapp):
    tabs = QTabWidget()
    lazy = LazyTabs(tabs)
    owner = Owner()
    calls: list = []
    lazy.add("A", make(calls, "a_view", owner), provides=("a_view",))
    lazy.add("B", make(calls, "b_view", owner), provides=("b_view",))
    assert lazy.provide(owner, "b_view").text() == "b_view"
    assert calls == ["b_view"]
    with pytest.raises(AttributeError):
        lazy.provide(owner, "nothing_provides_this")
    assert calls == ["b_view"]
    assert lazy.ensure("A").text() == "a_view" and calls == ["b_view", "a_view"]
    assert lazy.page(1) is owner.b_view and lazy.page(5) is None
    lazy.build_all()
    assert calls == ["b_view", "a_view"]


def test_a_failing_factory_is_tried_again(qapp):
    tabs = QTabWidget()
    lazy = LazyTabs(tabs)
    tries = []

    def factory():
        tries.append(1)
        if len(tries) == 1:
            raise RuntimeError("not yet")
        return QWidget()

    i = lazy.add("Flaky", factory)
    with pytest.raises(RuntimeError):
        lazy.page(i)
    assert not lazy.is_built(i)
    assert lazy.page(i) is tabs.widget(i) and len(tries) == 2


@pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints")  # offscreen, a shown window
def test_main_window_builds_hidden_tabs_on_first_use(qapp):
    from mhgui.core.state import StateStore
    from mhgui.ui.window import LiveController, MainWindow

    ctl = LiveController(StateStore(), lambda: 0.0)
    win = MainWindow(ctl)
    try:
        lazy = win.lazy_tabs
        titles = [win.tabs.tabText(i) for i in range(win.tabs.count())]
        flows, rules = titles.index("Flows"), titles.index("Steering rules")
        assert not lazy.is_built(flows) and not lazy.is_built(rules)
        assert "flows_view" not in vars(win) and "rules_model" not in vars(win)
        win.show()
        qapp.processEvents()
        assert not lazy.is_built(flows) and not lazy.is_built(rules)  # the Addresses tab is the one shown
        assert win.flows_view.model() is win.flow_filter  # asking builds the page
        assert lazy.is_built(flows) and not lazy.is_built(rules)
        assert win.flows_view.accessibleName()  # named once built
        assert win.tabs.widget(flows) is win.flows_page
        win.tabs.setCurrentIndex(rules)
        assert lazy.is_built(rules) and win.rules_model.rowCount() == 0
        with pytest.raises(AttributeError):
            win.no_such_attribute
    finally:
        win.close()
        ctl.close()
