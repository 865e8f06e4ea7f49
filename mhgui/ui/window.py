"""The main window: taxonomy header, goals and issues, interfaces, addresses, HoAs, bindings, sources."""

from __future__ import annotations

import time
from typing import Callable

import asyncio

from PySide6.QtCore import QEvent, QObject, QSortFilterProxyModel, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QIcon, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView, QGroupBox, QMenu, QMessageBox, QPushButton, QTabWidget, QHBoxLayout, QHeaderView, QLabel, QMainWindow, QSplitter, QTableView,
    QVBoxLayout, QWidget,
)

from .. import APP_NAME
from ..core.analysis import Analyser, Analysis, analyse
from ..core.bindings import in_use_fingerprint, in_use_text, resolve_interfaces, uplinks_in_use
from ..core.capabilities import NO_DAEMON, DaemonCapabilities
from ..core.engineprefs import hoa_uplinks
from ..core.renames import NameTracker
from ..core.report import headline, interface_notes, modem_rows, taxonomy
from ..core.state import Change, StateStore
from ..daemons.base import BindingsChanged, StatusChanged, plan_when_ready
from ..core.moves import MoveOutcome, bicast_outcome, interface_problem, move_outcome
from ..daemons.umip import HOA_AS_COA_REASON
from ..helper.client import HelperClient
from .columns import ColumnSizer
from .flowbinder import FlowBinder
from .flows_model import FLOW_MIME, FlowFilter, FlowModel
from .models import (
    HOA_MIME, AddressModel, BindingModel, HomeAddressModel, InterfaceModel, KeyRole, ListTableModel, RulesModel,
    SortRole,
)

SOURCE_ROLES = {
    "networkmanager": "device semantics",
    "netlink": "links, addresses, flags, lifetimes",
}


class LiveController(QObject):
    """Feeds store changes to the models at once and refreshes the analysis once per event-loop turn.

    ``refreshed`` is emitted with (analysis, taxonomy dict) after each refresh. :meth:`in_use` is the
    one answer to "which uplink carries each home address" (:func:`~mhgui.core.bindings.uplinks_in_use`):
    the binding table shows the same (its interface column is resolved the same way, by ifindex).
    ``names`` follows renames (:class:`~mhgui.core.renames.NameTracker`); :meth:`name_problems` says
    which configured names now designate another NIC (``config_names``: more ``{name: where}``, e.g.
    mip6d.conf's interfaces, given by the app shell).
    """

    refreshed = Signal(object, object)

    daemon_changed = Signal(object)  # DaemonStatus
    bindings_changed = Signal()  # the daemon's bindings changed (not for the lifetime countdown)

    def __init__(self, store: StateStore, clock: Callable[[], float], *, allow_ula: Callable[[], bool] = lambda: False,
                 daemon=None, flow_source=None, parent=None) -> None:
        super().__init__(parent)
        self.store = store
        self.clock = clock
        self._allow_ula = allow_ula
        self.daemon = daemon  # a DaemonDriver, or None
        self.interfaces = InterfaceModel(store, self)
        self.addresses = AddressModel(store, clock, self)
        self.homes = HomeAddressModel(store, self)
        self.bindings = BindingModel(clock, self._interface_of_coa, self)
        self.flows = FlowModel(self)
        self.flow_source = flow_source
        if flow_source is not None:
            flow_source.callback = self.flows.apply
        self._unsubscribe_daemon = daemon.subscribe(self._on_daemon) if daemon is not None else (lambda: None)
        self.analysis: Analysis | None = None
        self._analyser = Analyser()  # incremental: a refresh redoes only what changed (issue 14)
        self._notes_for: tuple = (None, None)  # (analysis, capabilities) the interface notes were made for
        self.tax: dict | None = None
        self.names = NameTracker(store.state.interfaces)
        #: names a daemon's configuration uses beyond what the controller knows itself: ``{name: where}``
        self.config_names: Callable[[], dict] = dict
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._cost = 0.0  # seconds the last refresh took
        self._timer.timeout.connect(self.refresh)
        self._tick = QTimer(self)
        self._tick.setInterval(1000)
        self._tick.timeout.connect(self._on_tick)
        self._tick.start()
        self._unsubscribe = store.subscribe(self._on_changes)
        self.refresh()

    def _caps(self) -> DaemonCapabilities:
        return self.daemon.capabilities if self.daemon is not None else NO_DAEMON

    def in_use(self) -> dict:
        """``{hoa: UplinkInUse}``: where the daemon has each home address now (none without a daemon)."""
        if self.daemon is None:
            return {}
        return uplinks_in_use(self.daemon.bindings(), self.store.state)

    def all_config_names(self) -> dict[str, str]:
        """``{interface name: where it is named}``: the HoAs' home links, the engine's per-HoA lists, and
        :attr:`config_names` (mip6d.conf's interfaces, from the shell)."""
        out: dict[str, str] = {}
        for h in self.store.state.home_addresses:
            if h.home_link:
                where = "mip6d.conf" if h.origin.startswith("mip6d.conf") else "the settings"
                out[h.home_link] = f"{where} (home link of {h.address})"
        d = self.daemon
        if d is not None and getattr(d, "name", None) == "engine":
            for u in hoa_uplinks(d.raw_bindings()):
                for n in sorted(u.listed):
                    out.setdefault(n, f"the engine's mn.toml (uplinks of {u.hoa})")
        try:
            extra = dict(self.config_names())
        except Exception:  # a broken provider must not take the window down
            extra = {}
        for n, where in extra.items():
            out.setdefault(n, where)
        return out

    def name_problems(self) -> list[str]:
        """Configured interface names that no longer designate the NIC they did (renamed, or taken)."""
        return self.names.config_problems(self.all_config_names())

    def _resolved(self, bindings) -> list:
        return resolve_interfaces(bindings, self.store.state)

    def _interface_of_coa(self, coa: str) -> str | None:
        for a in self.store.state.addresses.values():
            if a.address == coa:
                i = self.store.state.interfaces.get(a.ifindex)
                return i.name if i else None
        return None

    def _on_daemon(self, ev) -> None:
        if isinstance(ev, BindingsChanged):
            self.bindings.set_bindings(self._resolved(ev.bindings))
            self.bindings_changed.emit()
        elif isinstance(ev, StatusChanged):
            self.daemon_changed.emit(ev.status)
        if not self._timer.isActive():
            self._timer.start()

    def close(self) -> None:
        if self.flow_source is not None:
            self.flow_source.callback = None
        self._unsubscribe_daemon()
        self._unsubscribe()
        self._tick.stop()
        self._timer.stop()

    def _on_changes(self, changes: list[Change]) -> None:
        self.names.observe(changes)
        self.interfaces.apply(changes)
        self.addresses.apply(changes)
        if any(c.key is not None or c.kind.startswith("link-") for c in changes):
            # a bound CoA came or went, or an interface was renamed: the interface column is resolved again
            # (by ifindex); other address changes (a burst of them) cost nothing here
            bound = self.daemon.bindings() if self.daemon is not None else ()
            coas = {b.coa for b in bound}
            if bound and any(c.kind.startswith("link-") or (c.key is not None and c.key.address in coas)
                             for c in changes):
                self.bindings.set_bindings(self._resolved(bound))
            self.bindings.refresh_interfaces()
        if not self._timer.isActive():
            # the analysis runs over every address: during a burst, wait a few times
            # its own cost so that most time goes to applying events (at most 100 ms)
            self._timer.start(min(100, int(self._cost * 4000)))

    def _on_tick(self) -> None:
        self.addresses.tick()
        self.bindings.tick()
        # lifetimes may have run out: roles can change without an event
        self.refresh()

    def refresh(self) -> None:
        t0 = time.perf_counter()
        caps = self._caps()  # an engine that takes IPv4 CoAs (RFC 5555) makes IPv4 addresses count
        an = self._analyser.analyse(self.store.state, self.clock(), allow_ula=self._allow_ula(),
                                    ipv4_coas=caps.connected and caps.ipv4_coas)
        self.analysis = an
        self.interfaces.set_analysis(an)
        # the same analysis object (the incremental one: nothing changed) leaves the notes as they are
        if an is not self._notes_for[0] or caps != self._notes_for[1]:
            self._notes_for = (an, caps)
            self.interfaces.set_notes(interface_notes(self.store.state, an, caps))
        self.addresses.set_analysis(an)
        self.homes.set_analysis(an)
        self.flows.set_context(self.store.state, an, self.daemon.bindings() if self.daemon is not None else ())
        self.flows.set_flow_bindings(self.daemon.flow_bindings() if self.daemon is not None else ())
        tax = taxonomy(an, self._caps())
        self.tax = tax
        self.refreshed.emit(an, tax)
        self._cost = time.perf_counter() - t0


def _table(model, *, stretch_last: bool = True, sortable: bool = True) -> QTableView:
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
    return v


class AddressFilter(QSortFilterProxyModel):
    """Shows the addresses of the selected interface (all when none is selected)."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.ifindex: int | None = None
        self.setSortRole(SortRole)

    def set_ifindex(self, ifindex: int | None) -> None:
        qt610 = hasattr(self, "beginFilterChange")
        if qt610:
            self.beginFilterChange()
        self.ifindex = ifindex
        if qt610:
            self.endFilterChange()
        else:  # Qt < 6.10
            self.invalidateFilter()

    def filterAcceptsRow(self, row: int, parent) -> bool:
        if self.ifindex is None:
            return True
        key = self.sourceModel().index(row, 0, parent).data(KeyRole)
        return key is not None and key.ifindex == self.ifindex


class Rebinder(QObject):
    """Runs "bind HoA through interface" for the window: plan, confirm, rebind, report.

    ``confirm(plan, proceed)`` shows the plan and calls ``proceed()`` if the user
    agrees; the default opens a non-modal message box (never ``exec()`` inside
    a coroutine). ``progress(text, ok)`` reports each step; ``ok`` is None while
    running, True when confirmed, False on refusal or failure. ``last_result``
    holds the last :class:`~mhgui.daemons.base.RebindResult`.
    """

    progress = Signal(str, object)
    #: the user confirmed a plan: (plan, requested_at on the controller's clock); the app logs it as theirs
    started = Signal(object, float)
    #: (plan, RebindResult, or None when the driver raised)
    finished = Signal(object, object)

    def __init__(self, controller: LiveController, parent: QWidget | None = None,
                 confirm: Callable | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.confirm = confirm or self._ask
        self.last_result = None
        self.busy = False
        self._tasks: set[asyncio.Task] = set()

    def request(self, hoa: str, ifname: str, preface: str = "") -> None:
        """Plan, confirm (``preface`` is said first, e.g. which connections move) and rebind."""
        if self.busy:
            self.progress.emit("A rebind is already running.", False)
            return
        self.preface = preface
        self._spawn(self._plan(hoa, ifname))

    def _spawn(self, coro) -> None:
        task = asyncio.get_event_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _plan(self, hoa: str, ifname: str) -> None:
        daemon = self.controller.daemon
        if daemon is None:
            self.progress.emit("No mobility daemon: nothing to rebind.", False)
            return
        self.progress.emit(f"Planning: bind {hoa} through {ifname}…", None)

        def live():
            st = self.controller.store.state
            caps = self.controller._caps()
            return st, analyse(st, self.controller.clock(), ipv4_coas=caps.connected and caps.ipv4_coas)

        try:
            plan = await plan_when_ready(daemon, hoa, ifname, live, on_wait=lambda why: self.progress.emit(
                f"Waiting before binding {hoa} through {ifname}: {why}", None))
        except Exception as e:  # a driver or helper failure is a message, not a crash
            self.progress.emit(f"Cannot plan the rebind: {e}", False)
            return
        if not plan.allowed:
            self.progress.emit(f"Cannot bind {hoa} through {ifname}: {plan.refusal}", False)
            return
        self.confirm(plan, lambda: self._spawn(self._run(plan)))

    def _engine(self) -> bool:
        return getattr(self.controller.daemon, "name", None) == "engine"

    def _ask(self, plan, proceed) -> None:
        engine = self._engine()
        box = QMessageBox(self.parent())
        box.setIcon(QMessageBox.Icon.Question)
        box.setWindowTitle("Rebind home address" if engine else "Rebind home addresses")
        box.setText((getattr(self, "preface", "") + "\n\n" if getattr(self, "preface", "") else "")
                    + describe_plan(plan, engine=engine))
        box.setStandardButtons(QMessageBox.StandardButton.Ok | QMessageBox.StandardButton.Cancel)
        box.button(QMessageBox.StandardButton.Ok).setText(
            "Rebind" if engine else "Restart mip6d and rebind")
        box.finished.connect(lambda r: proceed() if r == QMessageBox.StandardButton.Ok else
                             self.progress.emit("Rebind cancelled: nothing was changed.", "neutral"))
        box.open()

    async def _run(self, plan) -> None:
        self.busy = True
        result = None
        self.started.emit(plan, float(self.controller.clock()))
        try:
            if self._engine():
                self.progress.emit(f"Rebinding through {plan.interface}: asking the mobility engine, waiting for "
                                   "the Binding Acknowledgement…", None)
            else:
                self.progress.emit(f"Rebinding through {plan.interface}: writing the preferences, restarting mip6d, "
                                   "waiting for the Binding Acknowledgement…", None)
            try:
                result = await self.controller.daemon.rebind(plan)
            except Exception as e:
                self.progress.emit(f"Rebind failed: {e}", False)
                return
            self.last_result = result
            if result.confirmed:
                # said from the one source of truth (the daemon's bindings, by ifindex), not from the plan
                where = in_use_text(self.controller.in_use(), plan.moves or (plan.hoa,), now=True)
                self.progress.emit(f"Confirmed in {result.elapsed_ms:.0f} ms: {where}.", True)
            else:
                self.progress.emit(f"Rebind failed after {result.elapsed_ms:.0f} ms: {result.reason}"
                                   + (" The previous configuration was restored." if result.rolled_back else ""),
                                   False)
        finally:
            self.busy = False
            self.finished.emit(plan, result)


def describe_plan(plan, *, engine: bool = False) -> str:
    """What a rebind will do, in the words shown before acting (issue: say it before acting).
    ``engine``: the plan is the mobility engine's (only that HoA moves, at once; its notes say so)."""
    if engine:
        return "\n".join([f"Bind {plan.hoa} through {plan.interface}: the mobility engine moves it at once, "
                          "nothing restarts."] + list(plan.notes))
    lines = [f"Bind {plan.hoa} through {plan.interface}.",
             "UMIP picks one interface for every home address, so these move together: " + ", ".join(plan.moves) + "."]
    if plan.staying:
        lines.append("At home, not moving: " + ", ".join(plan.staying) + ".")
    if plan.restart_required:
        lines.append("mip6d is restarted: every binding is interrupted for a few seconds (initial delay, router "
                     "discovery, Binding Update and Acknowledgement).")
    lines += [n for n in plan.notes if not n.startswith("mip6d restarts:")]  # said above
    return "\n".join(lines)


NO_HOA_UMIP = ("No home address configured, so this node is not a Mobile IPv6 node here. Add an "
               "<code>MnHomeLink</code> block to mip6d.conf, or a <code>[[home_address]]</code> table to "
               "~/.config/mhgui/settings.toml (see README).")
NO_HOA_ENGINE = ("No home address: the mobility engine registers those of its configuration. Add a "
                 "<code>[[home_address]]</code> table to /etc/mhgui/mn.toml (see README).")


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
        self.setWindowTitle(f"{APP_NAME} — Mobile IPv6 multihoming")
        if icon is not None:
            self.setWindowIcon(icon)
        self.resize(1200, 820)

        central = QWidget()
        root = QVBoxLayout(central)

        # ---- header: taxonomy, scenario, goals, issues
        self.headline = QLabel()
        self.headline.setObjectName("headline")
        f = self.headline.font()
        f.setPointSize(f.pointSize() + 4)
        f.setBold(True)
        self.headline.setFont(f)
        self.headline.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.banner = QLabel()
        self.banner.setWordWrap(True)
        self.banner.setStyleSheet("background:#fff3cd;color:#5d4200;padding:4px;border:1px solid #e0c36c;")
        self.banner.hide()
        root.addWidget(self.headline)
        root.addWidget(self.summary)
        root.addWidget(self.banner)

        self.goals_model = ListTableModel(("Goal (draft section 3)", "Reachable now?"), self)
        self.issues_model = ListTableModel(("Section", "Issue", "What it means"), self)
        top = QHBoxLayout()
        g = QGroupBox("Goals the draft allows here")
        QVBoxLayout(g).addWidget(_table(self.goals_model, sortable=False))
        i = QGroupBox("Issues that apply (draft sections 6 and 7)")
        il = QVBoxLayout(i)
        self.no_issue = QLabel("The draft names no open issue for this configuration.")
        self.no_issue.hide()
        il.addWidget(self.no_issue)
        self.issues_view = _table(self.issues_model, sortable=False)
        self.issues_view.setWordWrap(True)
        self.issues_view.horizontalHeader().setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        self.issues_model.modelReset.connect(self.issues_view.resizeRowsToContents)
        il.addWidget(self.issues_view)
        top.addWidget(g, 2)
        top.addWidget(i, 3)
        topw = QWidget()
        topw.setLayout(top)

        # ---- interfaces and their addresses
        self.interfaces_view = _table(controller.interfaces, stretch_last=False)
        self.interfaces_view.horizontalHeader().setSectionResizeMode(InterfaceModel.COL_ROUTER, QHeaderView.ResizeMode.Stretch)
        self.address_filter = AddressFilter(self)
        self.address_filter.setSourceModel(controller.addresses)
        self.addresses_view = QTableView()
        self.addresses_view.setModel(self.address_filter)
        self.addresses_view.setSortingEnabled(True)
        self.addresses_view.sortByColumn(0, Qt.SortOrder.AscendingOrder)
        self.addresses_view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.addresses_view.setAlternatingRowColors(True)
        self.addresses_view.verticalHeader().setVisible(False)
        self.addresses_view.verticalHeader().setDefaultSectionSize(self.addresses_view.fontMetrics().height() + 8)
        self.addresses_view.column_sizer = ColumnSizer(self.addresses_view)  # sized on a sample of rows
        self.addresses_view.horizontalHeader().setSectionResizeMode(AddressModel.COL_ADDR, QHeaderView.ResizeMode.Stretch)
        self.interfaces_view.selectionModel().selectionChanged.connect(self._on_iface_selected)

        ifs = QGroupBox("Interfaces (select one to filter its addresses)")
        ifs_layout = QVBoxLayout(ifs)
        ifs_layout.addWidget(self.interfaces_view)
        self.modems_label = QLabel()  # modems with no data interface yet (no kernel link: not in the table)
        self.modems_label.setObjectName("modems")
        self.modems_label.hide()
        ifs_layout.addWidget(self.modems_label)
        ads = QTabWidget()
        ads.addTab(self.addresses_view, "Addresses")
        ads.addTab(self._flows_page(), "Flows")
        ads.addTab(self._rules_page(), "Steering rules")
        self.tabs = ads
        hoas = QGroupBox("Home addresses")
        hl = QVBoxLayout(hoas)
        self.no_hoa = QLabel(NO_HOA_UMIP)
        self.no_hoa.setWordWrap(True)
        self.no_hoa.hide()
        hl.addWidget(self.no_hoa)
        self.homes_view = _table(controller.homes)
        hl.addWidget(self.homes_view)
        bind = QGroupBox("Binding table")
        bl = QVBoxLayout(bind)
        self.bindings_label = QLabel("No mobility daemon connected. The binding table (HoA, home agent, CoA, BID, "
                                     "interface, lifetime, state) appears here when the mobility engine "
                                     "(mhgui-mn) or UMIP's mip6d is reachable.")
        self.bindings_label.setWordWrap(True)
        self.bindings_label.setObjectName("bindings")
        bl.addWidget(self.bindings_label)
        self.bindings_view = _table(controller.bindings)
        self.bindings_view.hide()
        bl.addWidget(self.bindings_view)
        self.rebind_label = QLabel()
        self.rebind_label.setWordWrap(True)
        self.rebind_label.setObjectName("rebind")
        self.rebind_label.hide()
        #: the last rebind message's outcome, and the uplinks in use it described (a success is taken down
        #: once they change: a failover, new preferences, another client)
        self._rebind_ok, self._rebind_fp = None, None
        #: a success in the status bar and what it described: (text, describe(), what describe() gave)
        self._status_claim: tuple[str, Callable[[], object], object] | None = None
        #: a success in the Flows tab about a steering rule: (rule id, interface, destination)
        self._flow_rule: tuple[str, str, str] | None = None
        #: what a success in the rules tab said of a rule: (rule id, interface; None: removed)
        self._rules_claim: tuple[str, str | None] | None = None
        bl.addWidget(self.rebind_label)
        controller.daemon_changed.connect(self._on_daemon_status)
        controller.bindings_changed.connect(self._on_bindings_changed)
        if controller.daemon is not None:
            self._on_daemon_status(controller.daemon.status)
        # rebind a HoA: context menu on the home address, or drag it onto an interface
        self.homes_view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.homes_view.customContextMenuRequested.connect(self._homes_menu)
        self.homes_view.setDragEnabled(True)
        self.homes_view.setDragDropMode(QAbstractItemView.DragDropMode.DragOnly)
        self.interfaces_view.setAcceptDrops(True)
        self.interfaces_view.viewport().setAcceptDrops(True)
        self.interfaces_view.setDragDropMode(QAbstractItemView.DragDropMode.DropOnly)
        self.interfaces_view.setDropIndicatorShown(True)
        self.interfaces_view.viewport().installEventFilter(self)
        self.rebinder = Rebinder(controller, self)
        self.flowbinder = FlowBinder(controller, self)
        self.flowbinder.progress.connect(self._flow_message)
        #: makes a client of the privileged helper (app.py passes the system bus address)
        self.helper_factory = lambda: HelperClient(None)
        self.rebinder.progress.connect(self._on_rebind_progress)

        lower = QWidget()
        ll = QHBoxLayout(lower)
        ll.setContentsMargins(0, 0, 0, 0)
        ll.addWidget(hoas, 2)
        ll.addWidget(bind, 3)

        split = QSplitter(Qt.Orientation.Vertical)
        for w in (topw, ifs, ads, lower):
            split.addWidget(w)
        split.setSizes([200, 190, 250, 130])
        root.addWidget(split, 1)
        self.setCentralWidget(central)

        menu = self.menuBar().addMenu("&mhgui")
        act = menu.addAction("&Preferences…")
        act.setShortcut(QKeySequence("Ctrl+,"))
        act.triggered.connect(self.preferences_requested)
        self.preferences_action = act
        menu.addSeparator()
        act = menu.addAction("&Quit")
        act.setShortcut(QKeySequence.StandardKey.Quit)
        act.triggered.connect(self.quit_requested)
        self.quit_action = act

        self.sources_label = QLabel()
        self.sources_label.setObjectName("sources")
        self.statusBar().addWidget(self.sources_label, 1)

        controller.refreshed.connect(self._on_refreshed)
        if controller.analysis is not None:
            self._on_refreshed(controller.analysis, controller.tax)

    # ---- flows
    def _flows_page(self) -> QWidget:
        from ..sources.flows import own_sockets
        from .flows_page import FlowsPage
        page = FlowsPage(self.controller.flows, self)
        self.flow_filter: FlowFilter = page.flow_filter
        self.flow_search, self.flow_addr = page.flow_search, page.flow_addr
        self.show_own_flows, self.flow_count, self.flow_label = page.show_own, page.flow_count, page.flow_label
        # mhgui's own sockets (its terminal connections and their TIME-WAIT remains...) are hidden by default
        self.controller.flows.set_own(own_sockets(self.controller.daemon))
        page.show_all.clicked.connect(self.interfaces_view.clearSelection)
        self.show_all_flows = page.show_all
        v = self.flows_view = page.flows_view
        v.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        v.customContextMenuRequested.connect(lambda pos: self._flow_menu(v.indexAt(pos), v.viewport().mapToGlobal(pos)))
        move = QAction("Move to interface…", v)
        move.setShortcut(QKeySequence("Ctrl+M"))
        move.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)
        move.triggered.connect(self._flow_menu_for_selection)
        v.addAction(move)
        return page

    # ---- steering rules (new connections to a destination through an interface; the helper applies them)
    def _rules_page(self) -> QWidget:
        page = QWidget()
        lay = QVBoxLayout(page)
        lay.setContentsMargins(4, 4, 4, 4)
        self.rules_model = RulesModel(self)
        self.rules_view = _table(self.rules_model, sortable=False)
        self.rules_view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.rules_view.customContextMenuRequested.connect(self._rule_menu)
        lay.addWidget(self.rules_view, 1)
        bar = QHBoxLayout()
        self.rules_label = QLabel("Rules made from the Flows tab appear here. Right-click one to change or remove it.")
        self.rules_label.setWordWrap(True)
        refresh = QPushButton("Refresh")
        refresh.clicked.connect(lambda: self._spawn(self.reload_rules()))
        bar.addWidget(self.rules_label, 1)
        bar.addWidget(refresh)
        lay.addLayout(bar)
        self.steer_offer.connect(self._offer_steering)
        self._rules_timer = QTimer(self)
        self._rules_timer.setInterval(5000)
        self._rules_timer.timeout.connect(
            lambda: self._spawn(self.reload_rules()) if self.tabs.currentIndex() == 2 and self.isVisible() else None)
        self._rules_timer.start()
        return page

    def _spawn(self, coro) -> None:
        self.rebinder._spawn(coro)

    async def _helper_call(self, what: str, fn):
        """Run ``fn(client)`` against the privileged helper; a failure is a message, not a crash."""
        try:
            async with self.helper_factory() as client:
                return await fn(client)
        except Exception as e:  # HelperAbsent, NotAuthorized, SteeringConflict...
            self.rules_label.setText(f"{what} failed: {e}")
            self.rules_label.setStyleSheet("color:#b71c1c;")
            raise

    async def reload_rules(self) -> None:
        try:
            rules = await self._helper_call("Listing the steering rules", lambda c: c.list_steering_rules())
        except Exception:
            return
        self.rules_model.set_rules(rules)
        self._expire_rule_messages(rules)

    RULES_HINT = "Rules made from the Flows tab appear here. Right-click one to change or remove it."

    def _expire_rule_messages(self, rules: list) -> None:
        """A success said of a steering rule is replaced once the rules say otherwise (removed since, or
        leaving through another interface: a failover of its interface, another client's change)."""
        by_id = {r.get("id"): r for r in rules if isinstance(r, dict)}
        if self._flow_rule is not None:
            rid, iface, dest = self._flow_rule
            r = by_id.get(rid)
            via = (r.get("via") or r.get("interface")) if r is not None else None
            if r is None:
                self._flow_message(f"Steering rule {rid} (new connections to {dest} through {iface}) is gone.", None)
            elif via != iface:
                self._flow_message(f"Steering rule {rid}: new connections to {dest} go through {via} for now, "
                                   f"not {iface}" + (f" ({r.get('status')})" if r.get("status") else "") + ".", None)
        if self._rules_claim is not None:
            rid, iface = self._rules_claim
            r = by_id.get(rid)
            holds = r is None if iface is None else (r is not None and (r.get("via") or r.get("interface")) == iface)
            if not holds:
                self._rules_claim = None
                self.rules_label.setText(self.RULES_HINT)
                self.rules_label.setStyleSheet("")

    async def add_rule(self, destination: str, interface: str) -> str | None:
        try:
            rid = await self._helper_call("Adding the steering rule",
                                          lambda c: c.add_steering_rule(destination, interface))
        except Exception:
            self._flow_message(self.rules_label.text(), False)
            return None
        self._flow_message(f"Steering rule {rid}: new connections to {destination} now go through {interface} "
                           "(this connection is unchanged; reconnect to use it).", True)
        self._flow_rule = (rid, interface, destination)
        await self.reload_rules()
        return rid

    async def remove_rule(self, rid: str) -> None:
        try:
            await self._helper_call("Removing the steering rule", lambda c: c.remove_steering_rule(rid))
        except Exception:
            return
        self.rules_label.setText(f"Removed {rid}: connections it steered lose their route through its interface.")
        self.rules_label.setStyleSheet("")
        self._rules_claim = (rid, None)
        await self.reload_rules()

    async def change_rule(self, rid: str, interface: str) -> None:
        row = next((r for r in range(self.rules_model.rowCount()) if self.rules_model.rule_id(r) == rid), None)
        if row is None:
            return
        dest = self.rules_model.index(row, RulesModel.COL_DEST).data()
        await self.remove_rule(rid)
        new = await self.add_rule(dest.split(", ")[0], interface)
        if new is not None:
            self.rules_label.setText(f"{rid} replaced by {new}: new connections to {dest} now go through {interface}.")
            self._rules_claim = (new, interface)

    def _rule_menu(self, pos) -> None:
        idx = self.rules_view.indexAt(pos)
        if not idx.isValid():
            return
        rid = self.rules_model.rule_id(idx.row())
        current = self.rules_model.index(idx.row(), RulesModel.COL_IFACE).data()
        menu = QMenu(self)
        sub = menu.addMenu("Send through")
        an = self.controller.analysis or analyse(self.controller.store.state, self.controller.clock())
        for i in sorted(self.controller.store.state.interfaces.values(), key=lambda i: i.ifindex):
            if i.kind.value in ("loopback", "tunnel"):
                continue
            why = "current" if i.name == current else interface_problem(self.controller.store.state, an, i.name)
            act = sub.addAction(i.name + (f" ({why})" if why else ""))
            act.setEnabled(why is None)
            act.triggered.connect(lambda _=False, n=i.name: self._spawn(self.change_rule(rid, n)))
        menu.addAction("Remove").triggered.connect(lambda: self._spawn(self.remove_rule(rid)))
        self.show_menu(menu, self.rules_view.viewport().mapToGlobal(pos))

    def _offer_steering(self, out) -> None:
        box = QMessageBox(self)
        box.setIcon(QMessageBox.Icon.Warning)
        box.setWindowTitle("This connection cannot move")
        box.setText(out.summary)
        send = box.addButton(f"Send new connections to {out.destination} through {out.interface}",
                             QMessageBox.ButtonRole.AcceptRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.finished.connect(lambda _r: self._spawn(self.add_rule(out.destination, out.interface))
                             if box.clickedButton() is send else None)
        self.open_dialog(box)

    def open_dialog(self, box: QMessageBox) -> None:
        """Show a dialog without blocking (tests replace this)."""
        box.open()

    def _flow_menu_for_selection(self) -> None:
        rows = self.flows_view.selectionModel().selectedRows()
        if rows:
            rect = self.flows_view.visualRect(rows[0])
            self._flow_menu(rows[0], self.flows_view.viewport().mapToGlobal(rect.center()))

    def _flow_menu(self, index, where) -> QMenu | None:
        if not index.isValid():
            return None
        flow_id = index.data(KeyRole)
        menu = QMenu(self)
        sub = menu.addMenu("Move to interface")
        sub.setToolTipsVisible(True)
        st = self.controller.store.state
        an = self.controller.analysis or analyse(st, self.controller.clock())
        for ifindex in sorted(st.interfaces):
            i = st.interfaces[ifindex]
            if i.kind.value in ("loopback", "tunnel", "virtual"):
                continue
            problem = interface_problem(st, an, i.name)
            act = sub.addAction(i.name if problem is None else f"{i.name} ({problem})")
            act.setEnabled(problem is None)  # a down interface is shown, greyed out, with why
            act.triggered.connect(lambda _=False, f=flow_id, n=i.name: self.move_flow(f, n))
        if self.controller._caps().flow_bindings:
            menu.addAction("Send on every uplink (bicast)").triggered.connect(
                lambda _=False, f=flow_id: self.send_on_all(f))
        self._last_flow_menu = menu
        self.show_menu(menu, where)
        return menu

    def show_menu(self, menu: QMenu, where) -> None:
        """Pop a context menu up (tests replace this: offscreen Qt cannot grab the keyboard)."""
        menu.popup(where)

    def _flow_at(self, flow_id: str):
        """(flow, placement, analysis) of a listed connection, or None (said in the window) when it is gone."""
        m = self.controller.flows
        flow, place = m.flow(flow_id), m.placement(flow_id)
        if flow is None or place is None:
            self._flow_message("That connection is gone.", False)
            return None
        return flow, place, self.controller.analysis or analyse(self.controller.store.state, self.controller.clock())

    def move_flow(self, flow_id: str, ifname: str) -> MoveOutcome | None:
        """Say what moving the flow to ``ifname`` means, then offer what can be done (never silently)."""
        m = self.controller.flows
        got = self._flow_at(flow_id)
        if got is None:
            return None
        flow, place, an = got
        others = [(m.flow(i), m.placement(i)) for i in m.ids()]
        out = move_outcome(flow, place, ifname, self.controller.store.state, an, self.controller._caps(), others,
                           bound_to=m.bound_to(flow_id))
        self.last_move = out
        if out.action == "refuse":
            self._flow_message(out.summary, False)
        elif out.action == "rebind":
            self._flow_message(out.summary, None)
            listed = [m.flow(i) for i in out.also_moves[:8]]
            more = "".join(f"\n  • {f.process or '?'}: {f.id}" for f in listed if f is not None)
            if len(out.also_moves) > 8:
                more += f"\n  • … and {len(out.also_moves) - 8} more"
            # the dialog explains the rebind itself (describe_plan): the preface only says what is special here
            self.rebinder.request(out.hoa, ifname, preface=f"This connection keeps working: it uses the home address "
                                  f"{out.hoa}." + ("\nThese move too:" + more if more else ""))
        elif out.action == "steer":
            self._flow_message(out.summary, None)
            self.steer_offer.emit(out)
        else:  # flow-binding: the engine with several care-of addresses (RFC 5648/6089): this connection alone
            self._flow_message(out.summary, None)
            self.flowbinder.request(out)
        return out

    def send_on_all(self, flow_id: str) -> MoveOutcome | None:
        """Send the connection on every usable interface at once (bicast, e.g. a call), if the daemon can."""
        got = self._flow_at(flow_id)
        if got is None:
            return None
        flow, place, an = got
        st = self.controller.store.state
        targets = tuple(i.name for i in sorted(st.interfaces.values(), key=lambda i: i.ifindex)
                        if i.kind.value not in ("loopback", "tunnel") and interface_problem(st, an, i.name) is None)
        out = bicast_outcome(flow, place, targets, st, an, self.controller._caps())
        self.last_move = out
        if out.action == "refuse":
            self._flow_message(out.summary, False)
        else:
            self._flow_message(out.summary, None)
            self.flowbinder.request(out)
        return out

    def _flow_message(self, text: str, ok) -> None:
        self._flow_rule = None  # a new message: what the last one said of a rule is not shown any more
        self.flow_label.setText(text)
        colour = {True: "#2e7d32", False: "#b71c1c"}.get(ok, "#0d47a1")
        self.flow_label.setStyleSheet(f"color:{colour};")

    # ---- daemon and rebinding
    def _on_daemon_status(self, st) -> None:
        connected = st.reachable
        self.bindings_view.setVisible(connected)
        engine = st.name == "engine"
        self.no_hoa.setText(NO_HOA_ENGINE if engine else NO_HOA_UMIP)
        if connected and engine and self.controller._caps().multiple_coas:
            self.bindings_label.setText("mhgui's mobility engine, several care-of addresses: every uplink is "
                                        "registered at once (one BID each, the first row is the default); drag a "
                                        "connection onto an interface to move it alone.")
        elif connected and engine:
            self.bindings_label.setText("mhgui's mobility engine (mobile node): each home address has its own "
                                        "uplink, moved at once by a Binding Update (drag a home address onto an "
                                        "interface, or right-click it in the Home addresses table).")
        elif connected:
            node = {"mn": "mobile node", "ha": "home agent"}.get(st.node or "", st.node or "")
            self.bindings_label.setText(f"UMIP mip6d ({node}) on localhost: the daemon chooses one interface for "
                                        "every home address, by its interface preferences.")
        else:
            what = "mhgui's mobility engine" if engine else "UMIP mip6d"
            self.bindings_label.setText(f"No mobility daemon connected: {what} is {st.state}"
                                        + (f" — {st.error}" if st.error else "") + ".")

    def _on_bindings_changed(self) -> None:
        """A confirmation says where the HoAs are bound: once that changes (a failover, new preferences,
        another client), it no longer describes them, so it goes (stale messages, issue 13.11)."""
        self._expire_messages()

    def _expire_messages(self) -> None:
        if self._rebind_ok is True and in_use_fingerprint(self.controller.in_use()) != self._rebind_fp:
            self._rebind_ok = None
            self.rebind_label.hide()
        claim = self._status_claim
        if claim is not None:
            text, describe, then = claim
            bar = self.statusBar()
            if bar.currentMessage() != text:
                self._status_claim = None  # replaced, or timed out
            else:
                try:
                    now = describe()
                except Exception:  # what it described cannot be told any more: the message goes too
                    now = object()
                if now != then:
                    self._status_claim = None
                    bar.clearMessage()

    def note_status(self, text: str, describe: Callable[[], object] | None = None) -> None:
        """``text``, a success shown in the status bar, describes ``describe()`` (default: the uplinks in
        use): the message is cleared once that changes. Call it right after showing the message."""
        describe = describe or (lambda: in_use_fingerprint(self.controller.in_use()))
        self._status_claim = (text, describe, describe())

    def _on_rebind_progress(self, text: str, ok) -> None:
        self._rebind_ok = ok
        self._rebind_fp = in_use_fingerprint(self.controller.in_use()) if ok is True else None
        self.rebind_label.setText(text)
        colour = {True: "#2e7d32", False: "#b71c1c", "neutral": "#424242"}.get(ok, "#0d47a1")
        self.rebind_label.setStyleSheet(f"color:{colour};")
        self.rebind_label.show()

    def _hoa_at(self, pos) -> str | None:
        idx = self.homes_view.indexAt(pos)
        if not idx.isValid():
            return None
        text = idx.siblingAtColumn(0).data()
        return text.split("/", 1)[0] if text else None

    def _homes_menu(self, pos) -> None:
        hoa = self._hoa_at(pos)
        if hoa is None:
            return
        menu = QMenu(self)
        sub = menu.addMenu(f"Bind {hoa} through")
        in_use = self.controller.in_use()
        an = self.controller.analysis
        st = self.controller.store.state
        for ifindex in sorted(st.interfaces):
            i = st.interfaces[ifindex]
            if i.kind.value in ("loopback", "tunnel"):
                continue
            usable = an is not None and ifindex in an.active and ifindex not in an.home_links
            current = in_use.get(hoa) is not None and in_use[hoa].ifindex == ifindex
            act = sub.addAction(i.name + (" (current)" if current else "" if usable else " (no usable care-of address)"))
            act.setEnabled(usable and not current and self.controller.daemon is not None)
            act.triggered.connect(lambda _=False, h=hoa, n=i.name: self.rebinder.request(h, n))
        if self.controller.daemon is None:
            menu.addAction("No mobility daemon: nothing to rebind").setEnabled(False)
        caps = self.controller._caps()
        act = menu.addAction("Register another home address as its care-of address (draft 6.2.2)")
        act.setEnabled(False)
        act.setToolTip(HOA_AS_COA_REASON if not caps.hoa_as_coa else "")
        menu.setToolTipsVisible(True)
        self.show_menu(menu, self.homes_view.viewport().mapToGlobal(pos))

    def eventFilter(self, obj, event) -> bool:
        # a home address dropped onto an interface row asks for that rebind
        if obj is self.interfaces_view.viewport() and event.type() in (QEvent.Type.DragEnter, QEvent.Type.DragMove,
                                                                       QEvent.Type.Drop):
            md = event.mimeData()
            if not (md.hasFormat(HOA_MIME) or md.hasFormat(FLOW_MIME)):
                return False
            idx = self.interfaces_view.indexAt(event.position().toPoint())
            if event.type() == QEvent.Type.Drop:
                if idx.isValid():
                    ifname = idx.siblingAtColumn(InterfaceModel.COL_NAME).data()
                    if md.hasFormat(HOA_MIME):
                        self.rebinder.request(bytes(md.data(HOA_MIME)).decode(), ifname)
                    else:
                        self.tabs.setCurrentIndex(1)
                        self.move_flow(bytes(md.data(FLOW_MIME)).decode(), ifname)
                    event.acceptProposedAction()
                return True
            event.acceptProposedAction()
            return True
        return super().eventFilter(obj, event)

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

    def set_error(self, text: str | None) -> None:
        """Show (or clear, with None) a problem the user must know about, e.g. a malformed config file."""
        self._error = text
        self._update_banner()

    #: what this process cannot see (issue 6): app.py sets the runtime's (which knows the sandbox);
    #: this default works it out from the store alone
    access_problems: Callable[[], list] | None = None

    def _update_banner(self) -> None:
        from ..core.access import banner_lines, problems, taxonomy_is_node
        store = self.controller.store
        found = self.access_problems() if self.access_problems else problems(store.sources, store.state)
        parts = banner_lines(found)
        if getattr(self, "_error", None):
            parts.append(self._error)
        parts += self.controller.name_problems()  # a configured name now on another NIC (a rename)
        parts += list(store.notes)
        self.banner.setText("\n".join(parts))
        self.banner.setVisible(bool(parts))
        if self.controller.tax is not None:  # say so when the taxonomy shown is not this node's
            self.headline.setText(("" if taxonomy_is_node(found) else "Not this node's view: ")
                                  + headline(self.controller.tax))

    def _on_refreshed(self, an: Analysis, tax: dict) -> None:
        self.headline.setText(headline(tax))
        self.summary.setText(tax["summary"])
        avail = {g["goal"]: g for g in tax["goals_available"]}
        rows, tips, ok = [], [], []
        for goal in tax["goals"]:
            a = avail.get(goal, {"available": False, "reason": ""})
            reason = a["reason"]
            word = "yes" if a["available"] else "no"
            # the reasons for a "yes" already start with it ("yes: the daemon has ...")
            rows.append((goal, reason if reason.startswith(word) else f"{word}: {reason}"))
            tips.append(a["reason"])
            ok.append(a["available"])
        if not rows:
            rows, tips, ok = [("—", "the draft lists no goal for this configuration")], [tax["summary"]], [None]
        self.goals_model.set_rows(rows, tips, ok)
        issues = tax["issues"]
        self.issues_model.set_rows(
            [(i["section"], i["title"], i["explanation"] + (f"\n{i['mechanism'][0].upper()}{i['mechanism'][1:]}."
                                                            if i.get("mechanism") else "")) for i in issues],
            [i.get("mechanism") or i["explanation"] for i in issues],
            [True if i.get("mechanism") else None for i in issues])
        self._update_banner()
        src = self.controller.store.sources
        parts, tips = [], []
        for name, label in (("networkmanager", "NetworkManager"), ("netlink", "netlink")):
            state, detail = src.get(name, ("starting", ""))
            parts.append(f"{label}: {state}")
            tips.append(f"{label} ({SOURCE_ROLES[name]}): {state}" + (f" — {detail}" if detail else ""))
        self.sources_label.setText("   ·   ".join(parts) + "   (hover for details)")
        self.sources_label.setToolTip("\n".join(tips))
        self.no_hoa.setVisible(not tax["home_addresses"])
        self.no_issue.setVisible(not tax["issues"])
        waiting = [m for m in modem_rows(self.controller.store) if m["data_interface"] is None]
        self.modems_label.setText("\n".join(f"Modem {m['name']}: {m['state']}" for m in waiting))
        self.modems_label.setVisible(bool(waiting))
        self._expire_messages()
