"""The main window: taxonomy header, goals and issues, interfaces, addresses, HoAs, bindings, sources.

:class:`MainWindow` composes its parts (one module each): the header ``answer_bar`` (:mod:`.answer_bar`),
the ``messages`` (:mod:`.window_messages`), the ``menus`` (:mod:`.window_menus`), the draft's
``analysis_page`` (:mod:`.analysis_page`), the HoAs and bindings (:mod:`.bindings_panel`), rebinding
(:mod:`.rebind_ui`), and, built when their tabs are first shown, the Flows tab's ``flow_actions``
(:mod:`.flows_actions`) and the Steering rules tab (``rules``, :mod:`.rules_page`). The window's
methods and attributes of the parts' names delegate to them (:class:`~mhgui.ui.parts.Delegate`).
:class:`LiveController` and :class:`AddressFilter` live in :mod:`.controller`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from .flows_model import FlowFilter

from PySide6.QtCore import QEvent, QRect, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import (
    QGroupBox, QHeaderView, QLabel, QMainWindow, QMenu, QMessageBox, QSplitter, QTabWidget,
    QVBoxLayout, QWidget,
)

from .. import APP_NAME
from ..core.analysis import Analysis
from ..core.report import headline, modem_rows
# the daemons' and the helper's modules (D-Bus, asyncio) load where they are used: the window is
# built and painted without them (issue 14)
from ..i18n import _
from . import colours
from .analysis_page import AnalysisPage
from .answer_bar import AnswerBar
from .bindings_panel import BindingsPanel
# the window's parts; the Flows and Steering rules tabs' (flows_actions, rules_page) load with their pages
from .controller import AddressFilter, LiveController
from .flowbinder import FlowBinder
from .header import ActionRunner, summary_of
from .lazytabs import LazyTabs, lazy_page
# the flows' modules (core.flows, core.moves, flows_model) load at the flows model's first use: after the
# window's first frame (LiveController.flows; issue 14)
from .models import InterfaceModel, KeyRole
from .parts import Delegate
from .rebind_ui import HomeRebinding, Rebinder, describe_plan
from .splitfit import Fitted, SplitterFit
from .tables import address_table, table as _table
from .window_menus import WindowMenus
from .window_messages import NO_HOA_ENGINE, NO_HOA_UMIP, SOURCE_ROLES, SOURCE_STATES, WindowMessages

#: also importable from here (tests, the app and other modules import them from mhgui.ui.window)
__all__ = ["MainWindow", "LiveController", "AddressFilter", "Rebinder", "describe_plan", "default_size",
           "NO_HOA_ENGINE", "NO_HOA_UMIP", "SOURCE_ROLES", "SOURCE_STATES", "FLOWS_PAGE_ATTRS", "RULES_PAGE_ATTRS"]

def default_size(available: QRect) -> QSize:
    """The window's first size on a screen whose free area (less panels) is ``available``: all of it,
    less room for the window manager's frame (title bar, borders), capped at 1400x900. On 1366x768
    with a 48-pixel panel (1366x720 free) that is 1350x680 (issue 15.5: nothing cut)."""
    return QSize(max(640, min(1400, available.width() - 16)), max(480, min(900, available.height() - 40)))


def _default_helper():
    """A client of the privileged helper on the default system bus (app.py gives the window its own factory)."""
    from ..helper.client import HelperClient
    return HelperClient(None)


#: what :meth:`MainWindow._flows_page` and :meth:`MainWindow._rules_page` set on the window (lazytabs)
FLOWS_PAGE_ATTRS = ("flow_actions", "flows_page", "flow_filter", "flow_search", "flow_addr", "show_own_flows",
                    "flow_count", "flow_label", "show_all_flows", "flows_view")
RULES_PAGE_ATTRS = ("rules", "rules_model", "rules_view", "rules_label", "rules_add", "_rules_timer")


class MainWindow(QMainWindow):
    """The main window. Everything shown comes from :class:`LiveController`'s models.

    ``closed`` is emitted when the user closes the window; ``steer_offer``
    (a :class:`~mhgui.core.moves.MoveOutcome`) when moving a connection means
    offering a steering rule for new connections.
    """

    closed = Signal()
    steer_offer = Signal(object)
    #: the user asked for the preferences dialog (menu, Ctrl+,)
    preferences_requested = Signal()
    #: the user asked to quit (menu, Ctrl+Q): unlike closing the window, this ends the app even with a tray
    quit_requested = Signal()
    #: asked by closeEvent: True = hide the window and keep running (a tray icon is the way back in)
    close_to_tray: Callable[[], bool] | None = None

    def __init__(self, controller: LiveController, icon: QIcon | None = None) -> None:
        super().__init__()
        self.controller = controller
        if controller.parent() is None:
            controller.setParent(self)  # the models live exactly as long as the views on them
        self.messages = WindowMessages(self)  # the banner, the daemon's status, stale successes
        self.setWindowTitle(_("{app} — Mobile IPv6 multihoming").format(app=APP_NAME))
        if icon is not None:
            self.setWindowIcon(icon)
        self.resize(default_size(self.screen().availableGeometry()))

        central = QWidget()
        root = QVBoxLayout(central)

        # ---- header: the node's answer and the one action that fixes it (issue 15.1); then, secondary,
        # the taxonomy, scenario, banner (answer_bar.py); the draft's goals and issues are a tab
        bar = self.answer_bar = AnswerBar(self, root)
        self.answer, self.answer_icon, self.answer_button, self.answer_note = (
            bar.answer, bar.answer_icon, bar.answer_button, bar.answer_note)
        self.headline, self.summary, self.banner = bar.headline, bar.summary, bar.banner
        self.actions = ActionRunner(self)
        self.actions.message.connect(self._on_action_message)

        page = self.analysis_page = AnalysisPage(self)  # the draft's goals and issues: a tab (fits 1366x720)
        self.goals_model, self.issues_model, self.goals_view, self.issues_view, self.no_issue = (
            page.goals_model, page.issues_model, page.goals_view, page.issues_view, page.no_issue)

        # ---- interfaces and their addresses
        self.interfaces_view = _table(controller.interfaces, stretch_last=False)
        self.interfaces_view.horizontalHeader().setSectionResizeMode(InterfaceModel.COL_ROUTER, QHeaderView.ResizeMode.Stretch)
        self.address_filter = AddressFilter(self)
        self.address_filter.setSourceModel(controller.addresses)
        self.addresses_view = address_table(self.address_filter)
        self.interfaces_view.selectionModel().selectionChanged.connect(self._on_iface_selected)

        ifs = QGroupBox(_("Interfaces (select one to filter its addresses)"))
        ifs_layout = QVBoxLayout(ifs)
        ifs_layout.addWidget(self.interfaces_view)
        self.modems_label = QLabel()  # modems with no data interface yet (no kernel link: not in the table)
        self.modems_label.setObjectName("modems")
        self.modems_label.hide()
        ifs_layout.addWidget(self.modems_label)
        ads = QTabWidget()
        ads.addTab(self.addresses_view, _("Addresses"))
        # pages built when first shown (issue 14); what they set on the window is built on first use too
        self.lazy_tabs = LazyTabs(ads)
        self.lazy_tabs.built.connect(lambda *_: self._name_controls())  # a page built later names its controls
        self.lazy_tabs.add(_("Flows"), self._flows_page, provides=FLOWS_PAGE_ATTRS)
        self.lazy_tabs.add(_("Steering rules"), self._rules_page, provides=RULES_PAGE_ATTRS)
        # throughput, probes, timeline (issue 15.4); their modules load when first shown (lazy_page)
        self.lazy_tabs.add(_("Health"), lazy_page("mhgui.ui.health_view", "health_page", self))
        self.lazy_tabs.add(_("Node"), lazy_page("mhgui.ui.nodeview", "node_page", self),  # the node as a picture (15.2)
                           provides=("node_page",))
        self.steer_offer.connect(self._offer_steering)  # before the rules page exists
        ads.addTab(self.analysis_page, _("Draft analysis"))
        self.tabs = ads
        # ---- the home addresses and the binding table (bindings_panel.py)
        panel = BindingsPanel(controller, self._no_hoa_text(engine=False))
        hoas, bind = panel.homes_box, panel.bindings_box
        self.no_hoa, self.homes_view, self.bindings_label, self.bindings_view, self.rebind_label = (
            panel.no_hoa, panel.homes_view, panel.bindings_label, panel.bindings_view, panel.rebind_label)
        #: a success in the Flows tab about a steering rule: (rule id, interface, destination)
        self._flow_rule: tuple[str, str, str] | None = None
        controller.daemon_changed.connect(self._on_daemon_status)
        controller.bindings_changed.connect(self._on_bindings_changed)
        if controller.daemon is not None:
            self._on_daemon_status(controller.daemon.status)
        # rebind a HoA: context menu on the home address, or drag it onto an interface
        self.home_rebinding = HomeRebinding(self)
        self.rebinder = Rebinder(controller, self)
        self.flowbinder = FlowBinder(controller, self)
        self.flowbinder.progress.connect(lambda text, ok: self._flow_message(text, ok))  # (the page: when shown)
        #: makes a client of the privileged helper (app.py passes the system bus address)
        self.helper_factory = _default_helper
        self.rebinder.progress.connect(self._on_rebind_progress)

        # fits 1366x720 (issue 15.5): the two short tables side by side, the binding table across the window
        upper = QSplitter(Qt.Orientation.Horizontal)
        upper.setChildrenCollapsible(False)
        upper.addWidget(ifs)
        upper.addWidget(hoas)
        upper.setStretchFactor(0, 3)
        upper.setStretchFactor(1, 2)
        upper.setSizes([780, 520])
        for box in (ifs, hoas, bind):
            box.layout().setContentsMargins(6, 4, 6, 6)
        root.setContentsMargins(6, 6, 6, 2)
        root.setSpacing(4)

        split = QSplitter(Qt.Orientation.Vertical)
        split.setChildrenCollapsible(False)  # no section can be dragged away to nothing
        for n, w in enumerate((upper, ads, bind)):
            split.addWidget(w)
            split.setStretchFactor(n, (0, 1, 0)[n])  # the tabs take what the window gains or loses
        split.setSizes([170, 230, 230])  # until shown: then the interfaces and bindings are fitted to their rows
        # at 1366x720: every interface (up to 5) shows, the binding table its rows (4 at least), the tabs the rest
        self.splitter_fit = SplitterFit(split, [Fitted(0, self.interfaces_view, 2, 5),
                                                Fitted(2, self.bindings_view, 4, 8)], free=1)
        self.splitter = split
        root.addWidget(split, 1)
        self.setCentralWidget(central)

        menus = self.menus = WindowMenus(self)  # mhgui (Preferences…, Quit), Help (F1, About)
        self.preferences_action, self.quit_action = menus.preferences_action, menus.quit_action
        self.help_action, self.about_action = menus.help_action, menus.about_action

        self.sources_label = QLabel()
        self.sources_label.setObjectName("sources")
        self.statusBar().addWidget(self.sources_label, 1)
        self._name_controls()

        controller.refreshed.connect(self._on_refreshed)
        if controller.analysis is not None:
            self._on_refreshed(controller.analysis, controller.tax)

    # ---- the Flows tab (flows_page.py; its actions: flows_actions.py, window.flow_actions, built with it)
    def _flows_page(self) -> QWidget:
        from ..sources.flows import own_sockets
        from .flows_page import FlowsPage
        page = self.flows_page = FlowsPage(self.controller.flows, self)
        self.flow_filter: FlowFilter = page.flow_filter
        self.flow_search, self.flow_addr = page.flow_search, page.flow_addr
        self.show_own_flows, self.flow_count, self.flow_label = page.show_own, page.flow_count, page.flow_label
        # mhgui's own sockets (its terminal connections and their TIME-WAIT remains...) are hidden by default
        self.controller.flows.set_own(own_sockets(self.controller.daemon))
        page.show_all.clicked.connect(self.interfaces_view.clearSelection)
        self.show_all_flows = page.show_all
        self.flows_view = page.flows_view
        from .flows_actions import FlowActions
        self.flow_actions = FlowActions(self, page)  # its context menu, Ctrl+M, moving a connection
        return page

    _flow_menu_for_selection = Delegate("flow_actions")
    _flow_menu = Delegate("flow_actions")
    _flow_at = Delegate("flow_actions")
    move_flow = Delegate("flow_actions")
    send_on_all = Delegate("flow_actions")
    _flow_message = Delegate("flow_actions")

    # ---- steering rules (rules_page.RulesPage: window.rules, built when the tab is first shown)
    def _rules_page(self) -> QWidget:
        from .rules_page import RulesPage
        page = self.rules = RulesPage(self)
        self.rules_model, self.rules_view, self.rules_label, self.rules_add, self._rules_timer = (
            page.rules_model, page.rules_view, page.rules_label, page.rules_add, page._rules_timer)
        return page

    def _spawn(self, coro) -> None:
        self.rebinder._spawn(coro)

    def _update_rules_access(self, failed: Exception | None = None) -> str | None:
        """The rules page's Add… follows the access problems (:meth:`RulesPage._update_rules_access`); None
        while the page is not built."""
        rules = self.__dict__.get("rules")
        return rules._update_rules_access(failed) if rules is not None else None

    def _offer_steering(self, out) -> None:
        from .rules_page import offer_steering
        offer_steering(self, out)

    _helper_call = Delegate("rules")
    reload_rules = Delegate("rules")
    _expire_rule_messages = Delegate("rules")
    add_rule = Delegate("rules")
    remove_rule = Delegate("rules")
    change_rule = Delegate("rules")
    open_rule_form = Delegate("rules")
    add_rule_from_form = Delegate("rules")
    add_rule_from_request = Delegate("rules")
    _rule_menu = Delegate("rules")
    rule_form = Delegate("rules")

    def open_dialog(self, box: QMessageBox) -> None:
        """Show a dialog without blocking (tests replace this)."""
        box.open()

    def _name_controls(self) -> None:
        """Accessible names of the controls whose text does not say what they are (issue 15.5): what a
        screen reader announces, and the name of a table's export."""
        # the controls of tab pages not built yet (lazytabs) are named when built (lazy_tabs.built)
        built = vars(self)
        for attr, name in (("goals_view", _("Goals the draft allows here")),
                           ("issues_view", _("Issues that apply")),
                           ("interfaces_view", _("Interfaces")),
                           ("addresses_view", _("Addresses")),
                           ("homes_view", _("Home addresses")),
                           ("bindings_view", _("Binding table")),
                           ("rules_view", _("Steering rules")),
                           ("flows_view", _("Connections")),
                           ("tabs", _("Addresses, connections, rules and more")),
                           ("flow_search", _("Filter connections by application or port")),
                           ("flow_addr", _("Filter connections by address"))):
            widget = built.get(attr)
            if widget is not None and not widget.accessibleName():
                widget.setAccessibleName(name)

    # ---- menus (window_menus.py)
    show_help = Delegate("menus")
    show_about = Delegate("menus")
    help_dialog = Delegate("menus")

    def _export_menu(self, view, where) -> QMenu:
        """The context menu of an empty part of a table with its own menu: copy and export only."""
        menu = QMenu(self)
        view.table_export.add_to(menu)
        self.show_menu(menu, where)
        return menu

    def show_menu(self, menu: QMenu, where) -> None:
        """Pop a context menu up (tests replace this: offscreen Qt cannot grab the keyboard)."""
        menu.popup(where)

    # ---- messages: banner, daemon status, rebind progress, stale successes (window_messages.py)
    #: the settings file given on the command line (``--settings``; app.py sets it), None: the XDG default
    settings_file: str | None = None
    #: what this process cannot see (issue 6): app.py sets the runtime's (which knows the sandbox);
    #: None: worked out from the store alone
    access_problems: Callable[[], list] | None = None
    _no_hoa_text = Delegate("messages")
    _on_daemon_status = Delegate("messages")
    _on_bindings_changed = Delegate("messages")
    _expire_messages = Delegate("messages")
    note_status = Delegate("messages")
    _on_rebind_progress = Delegate("messages")
    set_error = Delegate("messages")
    _update_banner = Delegate("messages")

    # ---- rebinding a home address: its menu, drops on the interfaces (rebind_ui.py)
    _hoa_at = Delegate("home_rebinding")
    _homes_menu = Delegate("home_rebinding")

    def changeEvent(self, event) -> None:
        if event.type() == QEvent.Type.PaletteChange:  # a theme change: the toned labels follow it, once
            QTimer.singleShot(0, self, lambda: colours.refresh(self))  # every child has the new palette
        super().changeEvent(event)

    def __getattr__(self, name: str):
        # an attribute a lazily built tab page sets (FLOWS_PAGE_ATTRS...): asking for it builds the page
        lazy = self.__dict__.get("lazy_tabs")
        if lazy is None:
            raise AttributeError(f"'MainWindow' object has no attribute {name!r}")
        return lazy.provide(self, name)

    def closeEvent(self, event) -> None:
        if self.close_to_tray is not None and self.close_to_tray():
            event.ignore()  # the tray icon is the way back in
            self.hide()
            return
        self.closed.emit()
        super().closeEvent(event)

    def _on_iface_selected(self, *_):
        rows = self.interfaces_view.selectionModel().selectedRows()
        self.address_filter.set_ifindex(rows[0].data(KeyRole) if rows else None)
        # the flows tab follows the same selection (by interface name)
        self.flow_filter.set_interface(rows[0].siblingAtColumn(InterfaceModel.COL_NAME).data() if rows else None)
        self.flow_filter.counts_changed.emit()  # the count says which interface it is filtered by

    # ---- the header: the node's answer and its action (answer_bar.py)
    #: False: the answer's icon waits for :meth:`show_answer_icon` (app.py calls it after the window's first
    #: frame: QStyle's enums and its standard icons cost about 10 ms before it, issue 14)
    answer_icons = True

    show_answer_icon = Delegate("answer_bar")
    _show_answer = Delegate("answer_bar")
    _on_answer_button = Delegate("answer_bar")
    _on_action_message = Delegate("answer_bar")
    _answer = Delegate("answer_bar")
    _answer_command = Delegate("answer_bar")

    def _on_refreshed(self, an: Analysis, tax: dict) -> None:
        self._show_answer(an)
        self.headline.setText(headline(tax))
        self.summary.setText(summary_of(self._answer, tax))  # (not "Not a Mobile IPv6 node" under "daemon lost")
        self.analysis_page.show_taxonomy(tax)
        self._update_banner()
        self.messages.show_sources()
        self.no_hoa.setVisible(not tax["home_addresses"])
        waiting = [m for m in modem_rows(self.controller.store) if m["data_interface"] is None]
        self.modems_label.setText("\n".join(_("Modem {name}: {state}").format(name=m["name"], state=m["state"])
                                            for m in waiting))
        self.modems_label.setVisible(bool(waiting))
        self._expire_messages()
