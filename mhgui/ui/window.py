"""The main window: taxonomy header, goals and issues, interfaces, addresses, HoAs, bindings, sources."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:  # asyncio loads after the window's first frame (issue 14)
    import asyncio

    from ..core.moves import MoveOutcome
    from .flows_model import FlowFilter, FlowModel

from PySide6.QtCore import QEvent, QObject, QRect, QSize, QSortFilterProxyModel, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QIcon, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView, QGroupBox, QMenu, QMessageBox, QPushButton, QTabWidget, QHBoxLayout, QHeaderView, QLabel, QMainWindow, QSplitter, QTableView,
    QVBoxLayout, QWidget,
)

from .. import APP_NAME
from ..core.analysis import Analyser, Analysis, analyse
from ..core.bindings import in_use_fingerprint, in_use_text, resolve_interfaces, uplinks_in_use
from ..core.capabilities import NO_DAEMON, DaemonCapabilities
from ..core.renames import NameTracker
from ..core.report import headline, interface_notes, modem_rows, taxonomy
from ..core.state import Change, StateStore
# the daemons' and the helper's modules (D-Bus, asyncio) load where they are used: the window is
# built and painted without them (issue 14)
from ..i18n import N_, _, ngettext
from . import colours, tableexport
from .columns import ColumnSizer
from .lazytabs import LazyTabs, lazy_page
from .sortfilter import KeyedSortFilter
from .splitfit import Fitted, SplitterFit
from .header import TONE, ActionRunner, answer_of, summary_of, typed_command
from .flowbinder import FlowBinder
# the flows' modules (core.flows, core.moves, flows_model) load at the flows model's first use: after the
# window's first frame (LiveController.flows; issue 14)
from .models import (
    HOA_MIME, AddressModel, BindingModel, HomeAddressModel, InterfaceModel, KeyRole, ListTableModel, RulesModel,
    SortRole,
)

SOURCE_ROLES = {
    "networkmanager": N_("device semantics"),
    "netlink": N_("links, addresses, flags, lifetimes"),
}
#: the sources' states (StateStore.sources) as shown
SOURCE_STATES = {"starting": N_("starting"), "running": N_("running"), "absent": N_("absent"),
                 "resyncing": N_("resyncing"), "ok": N_("ok"), "no-access": N_("no-access"),
                 "stopped": N_("stopped"), "failed": N_("failed"), "error": N_("error"), "unknown": N_("unknown"),
                 "present": N_("present"), "missing": N_("missing")}


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
        self.analysis: Analysis | None = None
        self._flows: FlowModel | None = None  # made on first use (the flows property)
        self.flow_source = flow_source
        if flow_source is not None:
            flow_source.callback = self.flows.apply
        self._unsubscribe_daemon = daemon.subscribe(self._on_daemon) if daemon is not None else (lambda: None)
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
                where = "mip6d.conf" if h.origin.startswith("mip6d.conf") else _("the settings")
                out[h.home_link] = _("{where} (home link of {hoa})").format(where=where, hoa=h.address)
        d = self.daemon
        if d is not None and getattr(d, "name", None) == "engine":
            from ..core.engineprefs import hoa_uplinks  # tomllib and the failover's modules: not before the first frame
            for u in hoa_uplinks(d.raw_bindings()):
                for n in sorted(u.listed):
                    out.setdefault(n, _("the engine's mn.toml (uplinks of {hoa})").format(hoa=u.hoa))
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

    def attach(self, *, daemon=None, flow_source=None) -> None:
        """Give the controller the daemon's driver and the socket table's source once they exist (the app
        makes them after the window's first frame, issue 14): as if they had been given to ``__init__``.
        ``daemon_changed`` tells the window the daemon's status; raises ``RuntimeError`` when the
        controller has one already."""
        if daemon is not None:
            if self.daemon is not None:
                raise RuntimeError("the controller has a daemon already")
            self.daemon = daemon
            self._unsubscribe_daemon = daemon.subscribe(self._on_daemon)
            self.daemon_changed.emit(daemon.status)
        if flow_source is not None:
            if self.flow_source is not None:
                self.flow_source.callback = None
            self.flow_source = flow_source
            flow_source.callback = self.flows.apply
        self.refresh()

    def _on_daemon(self, ev) -> None:
        from ..daemons.base import BindingsChanged, StatusChanged  # loaded with the daemon's driver
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

    @property
    def flows(self) -> FlowModel:
        """The flows model (:class:`~mhgui.ui.flows_model.FlowModel`), made on first use (the flow source's
        attach, the Flows tab): its modules load after the window's first frame (issue 14)."""
        if self._flows is None:
            from .flows_model import FlowModel
            self._flows = FlowModel(self)
            if self.analysis is not None:
                self._flow_context(self.analysis)
        return self._flows

    def _flow_context(self, an: Analysis) -> None:
        self._flows.set_context(self.store.state, an, self.daemon.bindings() if self.daemon is not None else ())
        self._flows.set_flow_bindings(self.daemon.flow_bindings() if self.daemon is not None else ())

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
        if self._flows is not None:
            self._flow_context(an)
        tax = taxonomy(an, self._caps())
        self.tax = tax
        self.refreshed.emit(an, tax)
        self._cost = time.perf_counter() - t0


def default_size(available: QRect) -> QSize:
    """The window's first size on a screen whose free area (less panels) is ``available``: all of it,
    less room for the window manager's frame (title bar, borders), capped at 1400x900. On 1366x768
    with a 48-pixel panel (1366x720 free) that is 1350x680 (issue 15.5: nothing cut)."""
    return QSize(max(640, min(1400, available.width() - 16)), max(480, min(900, available.height() - 40)))


def _default_helper():
    """A client of the privileged helper on the default system bus (app.py gives the window its own factory)."""
    from ..helper.client import HelperClient
    return HelperClient(None)


def _table(model, *, stretch_last: bool = True, sortable: bool = True, export_menu: bool = True) -> QTableView:
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


class AddressFilter(KeyedSortFilter):
    """Shows the addresses of the selected interface (all when none is selected), sorted in Python
    (:class:`~mhgui.ui.sortfilter.KeyedSortFilter`: a burst of new rows costs no Python call per comparison)."""

    def __init__(self, parent=None) -> None:
        self.ifindex: int | None = None
        super().__init__(parent)

    def set_ifindex(self, ifindex: int | None) -> None:
        if ifindex != self.ifindex:
            self.ifindex = ifindex
            self.refilter()

    def accepts(self, key) -> bool:
        return self.ifindex is None or key.ifindex == self.ifindex


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
            self.progress.emit(_("A rebind is already running."), False)
            return
        self.preface = preface
        self._spawn(self._plan(hoa, ifname))

    def _spawn(self, coro) -> None:
        import asyncio  # (asyncio loads after the window's first frame, issue 14)
        task = asyncio.get_event_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _plan(self, hoa: str, ifname: str) -> None:
        daemon = self.controller.daemon
        if daemon is None:
            self.progress.emit(_("No mobility daemon: nothing to rebind."), False)
            return
        self.progress.emit(_("Planning: bind {hoa} through {interface}…").format(hoa=hoa, interface=ifname), None)

        def live():
            st = self.controller.store.state
            caps = self.controller._caps()
            return st, analyse(st, self.controller.clock(), ipv4_coas=caps.connected and caps.ipv4_coas)

        try:
            from ..daemons.base import plan_when_ready
            plan = await plan_when_ready(daemon, hoa, ifname, live, on_wait=lambda why: self.progress.emit(
                _("Waiting before binding {hoa} through {interface}: {why}").format(hoa=hoa, interface=ifname, why=why),
                None))
        except Exception as e:  # a driver or helper failure is a message, not a crash
            self.progress.emit(_("Cannot plan the rebind: {why}").format(why=e), False)
            return
        if not plan.allowed:
            self.progress.emit(_("Cannot bind {hoa} through {interface}: {why}").format(
                hoa=hoa, interface=ifname, why=plan.refusal), False)
            return
        self.confirm(plan, lambda: self._spawn(self._run(plan)))

    def _engine(self) -> bool:
        return getattr(self.controller.daemon, "name", None) == "engine"

    def _ask(self, plan, proceed) -> None:
        engine = self._engine()
        box = QMessageBox(self.parent())
        box.setIcon(QMessageBox.Icon.Question)
        box.setWindowTitle(_("Rebind home address") if engine else _("Rebind home addresses"))
        box.setText((getattr(self, "preface", "") + "\n\n" if getattr(self, "preface", "") else "")
                    + describe_plan(plan, engine=engine))
        box.setStandardButtons(QMessageBox.StandardButton.Ok | QMessageBox.StandardButton.Cancel)
        box.button(QMessageBox.StandardButton.Ok).setText(
            _("Rebind") if engine else _("Restart mip6d and rebind"))
        box.finished.connect(lambda r: proceed() if r == QMessageBox.StandardButton.Ok else
                             self.progress.emit(_("Rebind cancelled: nothing was changed."), "neutral"))
        box.open()

    async def _run(self, plan) -> None:
        self.busy = True
        result = None
        self.started.emit(plan, float(self.controller.clock()))
        try:
            if self._engine():
                self.progress.emit(_("Rebinding through {interface}: asking the mobility engine, waiting for "
                                     "the Binding Acknowledgement…").format(interface=plan.interface), None)
            else:
                self.progress.emit(_("Rebinding through {interface}: writing the preferences, restarting mip6d, "
                                     "waiting for the Binding Acknowledgement…").format(interface=plan.interface),
                                   None)
            try:
                result = await self.controller.daemon.rebind(plan)
            except Exception as e:
                self.progress.emit(_("Rebind failed: {why}").format(why=e), False)
                return
            self.last_result = result
            if result.confirmed:
                # said from the one source of truth (the daemon's bindings, by ifindex), not from the plan
                where = in_use_text(self.controller.in_use(), plan.moves or (plan.hoa,), now=True)
                self.progress.emit(_("Confirmed in {ms} ms: {where}.").format(
                    ms=f"{result.elapsed_ms:.0f}", where=where), True)
            else:
                self.progress.emit(_("Rebind failed after {ms} ms: {why}").format(
                    ms=f"{result.elapsed_ms:.0f}", why=result.reason)
                                   + (_(" The previous configuration was restored.") if result.rolled_back else ""),
                                   False)
        finally:
            self.busy = False
            self.finished.emit(plan, result)


def describe_plan(plan, *, engine: bool = False) -> str:
    """What a rebind will do, in the words shown before acting (issue: say it before acting).
    ``engine``: the plan is the mobility engine's (only that HoA moves, at once; its notes say so)."""
    if engine:
        return "\n".join([_("Bind {hoa} through {interface}: the mobility engine moves it at once, "
                            "nothing restarts.").format(hoa=plan.hoa, interface=plan.interface)] + list(plan.notes))
    lines = [_("Bind {hoa} through {interface}.").format(hoa=plan.hoa, interface=plan.interface),
             _("UMIP picks one interface for every home address, so these move together: {hoas}.").format(
                 hoas=", ".join(plan.moves))]
    if plan.staying:
        lines.append(_("At home, not moving: {hoas}.").format(hoas=", ".join(plan.staying)))
    if plan.restart_required:
        lines.append(_("mip6d is restarted: every binding is interrupted for a few seconds (initial delay, router "
                       "discovery, Binding Update and Acknowledgement)."))
    from ..daemons.umip import RESTART_NOTE
    lines += [n for n in plan.notes if n != _(RESTART_NOTE)]  # said above
    return "\n".join(lines)


NO_HOA_UMIP = N_("No home address configured, so this node is not a Mobile IPv6 node here. Add an "
                 "<code>MnHomeLink</code> block to mip6d.conf, or a <code>[[home_address]]</code> table to "
                 "{path} (see README).")
NO_HOA_ENGINE = N_("No home address: the mobility engine registers those of its configuration. Add a "
                   "<code>[[home_address]]</code> table to /etc/mhgui/mn.toml (see README).")


#: what :meth:`MainWindow._flows_page` and :meth:`MainWindow._rules_page` set on the window (lazytabs)
FLOWS_PAGE_ATTRS = ("flows_page", "flow_filter", "flow_search", "flow_addr", "show_own_flows", "flow_count",
                    "flow_label", "show_all_flows", "flows_view")
RULES_PAGE_ATTRS = ("rules_model", "rules_view", "rules_label", "rules_add", "_rules_timer")


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
        self.setWindowTitle(_("{app} — Mobile IPv6 multihoming").format(app=APP_NAME))
        if icon is not None:
            self.setWindowIcon(icon)
        self.resize(default_size(self.screen().availableGeometry()))

        central = QWidget()
        root = QVBoxLayout(central)

        # ---- header: the node's answer and the one action that fixes it (issue 15.1); then, secondary,
        # the taxonomy, scenario, goals, issues
        self.answer = QLabel()
        self.answer.setObjectName("answer")
        self.answer.setAccessibleName(_("Status of this node"))
        self.answer.setWordWrap(True)
        f = self.answer.font()
        f.setPointSize(f.pointSize() + 4)
        f.setBold(True)
        self.answer.setFont(f)
        self.answer.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.answer_icon = QLabel()
        self.answer_icon.setObjectName("answer-icon")
        self.answer_button = QPushButton()
        self.answer_button.setObjectName("answer-action")
        self.answer_button.hide()
        self.answer_button.clicked.connect(self._on_answer_button)
        self.answer_note = QLabel()  # what the action did (a refusal says what to do)
        self.answer_note.setObjectName("answer-note")
        self.answer_note.setWordWrap(True)
        self.answer_note.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)  # (commands in it)
        self.answer_note.hide()
        self._answer = None
        self._answer_command: str | None = None  # what to run instead of the button (typed_command)
        self.actions = ActionRunner(self)
        self.actions.message.connect(self._on_action_message)
        answer_row = QHBoxLayout()
        answer_row.addWidget(self.answer_icon)
        answer_row.addWidget(self.answer, 1)
        answer_row.addWidget(self.answer_button)
        root.addLayout(answer_row)
        root.addWidget(self.answer_note)
        self.headline = QLabel()  # the draft's taxonomy: secondary
        self.headline.setObjectName("headline")
        f = self.headline.font()
        f.setPointSize(f.pointSize() + 1)
        self.headline.setFont(f)
        self.headline.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.banner = QLabel()
        self.banner.setWordWrap(True)
        colours.set_banner(self.banner, "pending")
        self.banner.hide()
        root.addWidget(self.headline)
        root.addWidget(self.summary)
        root.addWidget(self.banner)

        self.goals_model = ListTableModel((N_("Goal (draft section 3)"), N_("Reachable now?")), self)
        self.issues_model = ListTableModel((N_("Section"), N_("Issue"), N_("What it means")), self)
        top = QHBoxLayout()
        g = QGroupBox(_("Goals the draft allows here"))
        self.goals_view = _table(self.goals_model, sortable=False)
        QVBoxLayout(g).addWidget(self.goals_view)
        i = QGroupBox(_("Issues that apply (draft sections 6 and 7)"))
        il = QVBoxLayout(i)
        self.no_issue = QLabel(_("The draft names no open issue for this configuration."))
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
        tableexport.install(self.addresses_view)
        self.addresses_view.horizontalHeader().setSectionResizeMode(AddressModel.COL_ADDR, QHeaderView.ResizeMode.Stretch)
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
        self.analysis_page = topw  # the draft's goals and issues: a tab of their own (fits 1366x720)
        ads.addTab(topw, _("Draft analysis"))
        self.tabs = ads
        hoas = QGroupBox(_("Home addresses"))
        hl = QVBoxLayout(hoas)
        self.no_hoa = QLabel(self._no_hoa_text(engine=False))
        self.no_hoa.setWordWrap(True)
        self.no_hoa.hide()
        hl.addWidget(self.no_hoa)
        self.homes_view = _table(controller.homes, export_menu=False)
        hl.addWidget(self.homes_view)
        bind = QGroupBox(_("Binding table"))
        bl = QVBoxLayout(bind)
        self.bindings_label = QLabel(_("No mobility daemon connected. The binding table (HoA, home agent, CoA, BID, "
                                       "interface, lifetime, state) appears here when the mobility engine "
                                       "(mhgui-mn) or UMIP's mip6d is reachable."))
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

        menu = self.menuBar().addMenu("&mhgui")
        act = menu.addAction(_("&Preferences…"))
        act.setShortcut(QKeySequence("Ctrl+,"))
        act.triggered.connect(self.preferences_requested)
        self.preferences_action = act
        menu.addSeparator()
        act = menu.addAction(_("&Quit"))
        act.setShortcut(QKeySequence.StandardKey.Quit)
        act.triggered.connect(self.quit_requested)
        self.quit_action = act
        self._help_menu()

        self.sources_label = QLabel()
        self.sources_label.setObjectName("sources")
        self.statusBar().addWidget(self.sources_label, 1)
        self._name_controls()

        controller.refreshed.connect(self._on_refreshed)
        if controller.analysis is not None:
            self._on_refreshed(controller.analysis, controller.tax)

    # ---- flows
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
        v = self.flows_view = page.flows_view
        tableexport.install(v, menu=False)  # in the flow menu below
        v.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        v.customContextMenuRequested.connect(lambda pos: self._flow_menu(v.indexAt(pos), v.viewport().mapToGlobal(pos)))
        move = QAction(_("Move to interface…"), v)
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
        self.rules_view = _table(self.rules_model, sortable=False, export_menu=False)
        self.rules_view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.rules_view.customContextMenuRequested.connect(self._rule_menu)
        lay.addWidget(self.rules_view, 1)
        bar = QHBoxLayout()
        self.rules_label = QLabel(_(self.RULES_HINT))
        self.rules_label.setWordWrap(True)
        refresh = QPushButton(_("Refresh"))
        refresh.clicked.connect(lambda: self._spawn(self.reload_rules()))
        add = self.rules_add = QPushButton(_("Add…"))
        add.setAccessibleName(_("Add a steering rule"))
        add.clicked.connect(self.open_rule_form)
        bar.addWidget(self.rules_label, 1)
        bar.addWidget(add)
        bar.addWidget(refresh)
        lay.addLayout(bar)
        self._rules_timer = QTimer(self)
        self._rules_timer.setInterval(5000)
        self._rules_timer.timeout.connect(
            lambda: self._spawn(self.reload_rules()) if self.tabs.currentWidget() is page and self.isVisible() else None)
        self._rules_timer.start()
        self._update_rules_access()
        return page

    def _spawn(self, coro) -> None:
        self.rebinder._spawn(coro)

    async def _helper_call(self, what: str, fn):
        """Run ``fn(client)`` against the privileged helper; a failure is a message, not a crash."""
        try:
            async with self.helper_factory() as client:
                return await fn(client)
        except Exception as e:  # HelperAbsent, NotAuthorized, SteeringConflict...
            blocked = self._update_rules_access(e)
            if blocked is not None:  # worded as the banner words it; the bus's own text in the tooltip
                self.rules_label.setText(blocked)
                self.rules_label.setToolTip(str(e))
                colours.set_tone(self.rules_label, "warning")
            else:
                self.rules_label.setText(_("{what} failed: {why}").format(what=what, why=e))
                self.rules_label.setToolTip("")
                colours.set_tone(self.rules_label, "error")
            raise

    def _update_rules_access(self, failed: Exception | None = None) -> str | None:
        """Add… disabled, its tooltip saying why, while steering rules cannot work: the access problem the
        banner shows (:func:`mhgui.core.access.steering_blocker`), or ``failed``, a call that found the helper
        absent before the access probe said so. Returns that sentence (None: not blocked)."""
        if failed is None and "rules_add" not in self.__dict__:
            return None  # nothing to show it on yet
        from ..core.access import HELPER, problems, sentence, steering_blocker
        store = self.controller.store
        found = self.access_problems() if self.access_problems else problems(store.sources, store.state)
        p = steering_blocker(found)
        if p is None and failed is not None and type(failed).__name__ == "HelperAbsent":
            p = steering_blocker(problems({**store.sources, HELPER: ("absent", "")}, store.state))
        why = sentence(p) if p is not None else None
        if "rules_add" in self.__dict__:  # (the page is built when first shown)
            self.rules_add.setEnabled(why is None)
            self.rules_add.setToolTip(_("Adding is unavailable: {why}").format(why=why) if why else "")
        return why

    async def reload_rules(self) -> None:
        try:
            rules = await self._helper_call(_("Listing the steering rules"), lambda c: c.list_steering_rules())
        except Exception:
            return
        self._update_rules_access()
        self._listed_rules = {r.get("id"): r for r in rules if isinstance(r, dict)}
        self.rules_model.set_rules(rules)
        self._expire_rule_messages(rules)

    RULES_HINT = N_("Rules made from the Flows tab appear here. Right-click one to change or remove it.")

    def _expire_rule_messages(self, rules: list) -> None:
        """A success said of a steering rule is replaced once the rules say otherwise (removed since, or
        leaving through another interface: a failover of its interface, another client's change)."""
        by_id = {r.get("id"): r for r in rules if isinstance(r, dict)}
        if self._flow_rule is not None:
            rid, iface, dest = self._flow_rule
            r = by_id.get(rid)
            via = (r.get("via") or r.get("interface")) if r is not None else None
            if r is None:
                self._flow_message(_("Steering rule {rule} (new connections to {destination} through {interface}) "
                                     "is gone.").format(rule=rid, destination=dest, interface=iface), None)
            elif via != iface:
                self._flow_message(_("Steering rule {rule}: new connections to {destination} go through {via} for "
                                     "now, not {interface}").format(rule=rid, destination=dest, via=via, interface=iface)
                                   + (f" ({r.get('status')})" if r.get("status") else "") + ".", None)
        if self._rules_claim is not None:
            rid, iface = self._rules_claim
            r = by_id.get(rid)
            holds = r is None if iface is None else (r is not None and (r.get("via") or r.get("interface")) == iface)
            if not holds:
                self._rules_claim = None
                self.rules_label.setText(_(self.RULES_HINT))
                colours.set_tone(self.rules_label, None)

    async def add_rule(self, destination: str, interface: str) -> str | None:
        try:
            rid = await self._helper_call(_("Adding the steering rule"),
                                          lambda c: c.add_steering_rule(destination, interface))
        except Exception:
            self._flow_message(self.rules_label.text(), False)
            return None
        self._flow_message(_("Steering rule {rule}: new connections to {destination} now go through {interface} "
                             "(this connection is unchanged; reconnect to use it).").format(
                                 rule=rid, destination=destination, interface=interface), True)
        self._flow_rule = (rid, interface, destination)
        await self.reload_rules()
        return rid

    async def remove_rule(self, rid: str) -> None:
        try:
            await self._helper_call(_("Removing the steering rule"), lambda c: c.remove_steering_rule(rid))
        except Exception:
            return
        self.rules_label.setText(_("Removed {rule}: connections it steered lose their route through its interface.")
                                 .format(rule=rid))
        colours.set_tone(self.rules_label, None)
        self._rules_claim = (rid, None)
        await self.reload_rules()

    async def change_rule(self, rid: str, interface: str) -> None:
        row = next((r for r in range(self.rules_model.rowCount()) if self.rules_model.rule_id(r) == rid), None)
        if row is None:
            return
        dest = self.rules_model.index(row, RulesModel.COL_DEST).data()
        listed = getattr(self, "_listed_rules", {}).get(rid, {})
        if listed.get("protocol") or listed.get("ports") or listed.get("application"):  # issue 15.6: keep them
            await self.remove_rule(rid)
            new = await self.add_rule_from_request(listed, interface)
        else:
            await self.remove_rule(rid)
            new = await self.add_rule(dest.split(", ")[0], interface)
        if new is not None:
            self.rules_label.setText(_("{rule} replaced by {new}: new connections to {destination} now go through "
                                       "{interface}.").format(rule=rid, new=new, destination=dest, interface=interface))
            self._rules_claim = (new, interface)

    def open_rule_form(self) -> None:
        """The non-modal "Add steering rule" form (mhgui.ui.steering_form); running apps are read off the GUI thread."""
        from ..core.moves import interface_problem
        from ..sources.cgroups import list_running_apps_found
        from .steering_form import SteeringForm

        state = self.controller.store.state
        an = self.controller.analysis or analyse(state, self.controller.clock())
        ifaces = [i for i in state.interfaces.values() if i.kind.value not in ("loopback", "tunnel")]
        # usable interfaces first (as the rules' "Send through" menu judges them), then the others
        names = [i.name for i in sorted(ifaces, key=lambda i: (interface_problem(state, an, i.name) is not None,
                                                               i.ifindex))]
        form = getattr(self, "rule_form", None)
        if form is None:
            from ..sources.resolve import resolve_host

            form = self.rule_form = SteeringForm(names, self, resolver=resolve_host)
            form.submitted.connect(lambda v: self._spawn(self.add_rule_from_form(v)))
        else:
            form.set_interfaces(names)

        async def apps() -> None:
            try:
                found = await list_running_apps_found()
            except Exception as e:  # cgroupfs unreadable: nothing offered, typing still works
                form.set_apps([], str(e))
            else:
                form.set_apps(found.scopes, found.where)
        self._spawn(apps())
        form.show()
        form.raise_()

    async def add_rule_from_form(self, v: dict) -> str | None:
        """Resolve the form's host name (asyncio, with a timeout) and ask the helper for the rule."""
        from ..core.steering_selectors import classify_destination
        from ..sources.resolve import resolve_host

        form = self.rule_form
        try:
            kind, value = classify_destination(v["destination"])
            dests = await resolve_host(value) if kind == "host" else [value] if kind == "network" else []
            rid = await self._helper_call(_("Adding the steering rule"), lambda c: c.add_steering_rule(
                dests, v["interface"], protocol=v["protocol"] or None, ports=v["ports"] or None,
                application=v["application"] or None))
        except Exception as e:  # ResolveError, NotAuthorized, InvalidArguments...
            blocked = self._update_rules_access(e) if type(e).__name__ == "HelperAbsent" else None
            form.finished_adding(False, _("Not added: {why}").format(why=blocked or e))
            form.message.setToolTip(str(e) if blocked else "")
            return None
        form.finished_adding(True, _("Added rule {id}.").format(id=rid))
        await self.reload_rules()
        return rid

    async def add_rule_from_request(self, r: dict, interface: str) -> str | None:
        """A listed rule with its selectors (destinations, protocol, ports, application) through ``interface``."""
        try:
            return await self._helper_call(_("Adding the steering rule"), lambda c: c.add_steering_rule(
                list(r.get("destinations") or ()), interface, protocol=r.get("protocol") or None,
                ports=r.get("ports") or None, application=r.get("application") or None))
        except Exception:
            return None

    def _rule_menu(self, pos) -> None:
        idx = self.rules_view.indexAt(pos)
        if not idx.isValid():
            self._export_menu(self.rules_view, self.rules_view.viewport().mapToGlobal(pos))
            return
        from ..core.moves import interface_problem
        rid = self.rules_model.rule_id(idx.row())
        current = self.rules_model.index(idx.row(), RulesModel.COL_IFACE).data()
        menu = QMenu(self)
        sub = menu.addMenu(_("Send through"))
        an = self.controller.analysis or analyse(self.controller.store.state, self.controller.clock())
        for i in sorted(self.controller.store.state.interfaces.values(), key=lambda i: i.ifindex):
            if i.kind.value in ("loopback", "tunnel"):
                continue
            why = _("current") if i.name == current else interface_problem(self.controller.store.state, an, i.name)
            act = sub.addAction(i.name + (f" ({why})" if why else ""))
            act.setEnabled(why is None)
            act.triggered.connect(lambda _=False, n=i.name: self._spawn(self.change_rule(rid, n)))
        menu.addAction(_("Remove")).triggered.connect(lambda: self._spawn(self.remove_rule(rid)))
        self.rules_view.table_export.add_to(menu)
        self.show_menu(menu, self.rules_view.viewport().mapToGlobal(pos))

    def _offer_steering(self, out) -> None:
        box = QMessageBox(self)
        box.setIcon(QMessageBox.Icon.Warning)
        box.setWindowTitle(_("This connection cannot move"))
        box.setText(out.summary)
        send = box.addButton(_("Send new connections to {destination} through {interface}").format(
                                 destination=out.destination, interface=out.interface),
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
            if where is not None:
                self._export_menu(self.flows_view, where)
            return None
        from ..core.moves import target_problem
        flow_id = index.data(KeyRole)
        menu = QMenu(self)
        sub = menu.addMenu(_("Move to interface"))
        sub.setToolTipsVisible(True)
        st = self.controller.store.state
        an = self.controller.analysis or analyse(st, self.controller.clock())
        fm = self.controller.flows
        place = fm.placement(flow_id)
        on = tuple(fm.bound_to(flow_id)) or ((place.interface,) if place is not None and place.interface else ())
        for ifindex in sorted(st.interfaces):
            i = st.interfaces[ifindex]
            if i.kind.value in ("loopback", "tunnel", "virtual"):
                continue
            problem = target_problem(st, an, i.name, on)  # where it is now: "(in use)"
            act = sub.addAction(i.name if problem is None else f"{i.name} ({problem})")
            act.setEnabled(problem is None)  # a down interface is shown, greyed out, with why
            act.triggered.connect(lambda _=False, f=flow_id, n=i.name: self.move_flow(f, n))
        if self.controller._caps().flow_bindings:
            menu.addAction(_("Send on every uplink (bicast)")).triggered.connect(
                lambda _=False, f=flow_id: self.send_on_all(f))
        self.flows_view.table_export.add_to(menu)
        self._last_flow_menu = menu
        self.show_menu(menu, where)
        return menu

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

    # ---- Help and About (issue 15.5)
    def _help_menu(self) -> None:
        help_menu = self.menuBar().addMenu(_("&Help"))
        self.help_action = help_menu.addAction(_("{app} &Help").format(app=APP_NAME))
        self.help_action.setShortcut(QKeySequence(QKeySequence.StandardKey.HelpContents))  # F1
        self.help_action.triggered.connect(self.show_help)
        self.about_action = help_menu.addAction(_("&About {app}").format(app=APP_NAME))
        self.about_action.setMenuRole(QAction.MenuRole.AboutRole)
        self.about_action.triggered.connect(self.show_about)
        self.help_dialog = None

    def show_help(self):
        """The in-app help page (:mod:`.about`), not modal; one dialog, raised again."""
        from .about import HelpDialog
        if self.help_dialog is None:
            self.help_dialog = HelpDialog(self)
        self.help_dialog.show()
        self.help_dialog.raise_()
        self.help_dialog.activateWindow()
        return self.help_dialog

    def show_about(self):
        """The About box: version, licence, links, the draft the window follows (``open()``: not modal)."""
        from .about import about_box
        box = about_box(self)
        box.finished.connect(box.deleteLater)
        self.about_box = box
        self.open_dialog(box)
        return box

    def _export_menu(self, view, where) -> QMenu:
        """The context menu of an empty part of a table with its own menu: copy and export only."""
        menu = QMenu(self)
        view.table_export.add_to(menu)
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
            self._flow_message(_("That connection is gone."), False)
            return None
        return flow, place, self.controller.analysis or analyse(self.controller.store.state, self.controller.clock())

    def move_flow(self, flow_id: str, ifname: str) -> MoveOutcome | None:
        """Say what moving the flow to ``ifname`` means, then offer what can be done (never silently)."""
        from ..core.moves import move_outcome
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
                more += "\n  • " + _("… and {n} more").format(n=len(out.also_moves) - 8)
            # the dialog explains the rebind itself (describe_plan): the preface only says what is special here
            self.rebinder.request(out.hoa, ifname, preface=_("This connection keeps working: it uses the home "
                                                             "address {hoa}.").format(hoa=out.hoa)
                                  + ("\n" + _("These move too:") + more if more else ""))
        elif out.action == "steer":
            self._flow_message(out.summary, None)
            self.steer_offer.emit(out)
        else:  # flow-binding: the engine with several care-of addresses (RFC 5648/6089): this connection alone
            self._flow_message(out.summary, None)
            self.flowbinder.request(out)
        return out

    def send_on_all(self, flow_id: str) -> MoveOutcome | None:
        """Send the connection on every usable interface at once (bicast, e.g. a call), if the daemon can."""
        from ..core.moves import bicast_outcome, interface_problem
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
        colours.set_tone(self.flow_label, {True: "ok", False: "error"}.get(ok, "info"))

    # ---- daemon and rebinding
    #: the settings file given on the command line (``--settings``; app.py sets it), None: the XDG default
    settings_file: str | None = None

    def _no_hoa_text(self, engine: bool) -> str:
        """Where to add a home address; for UMIP it names the settings file this app reads (``--settings``,
        else ``$XDG_CONFIG_HOME/mhgui/settings.toml``), not a fixed ``~/.config``."""
        if engine:
            return _(NO_HOA_ENGINE)
        import html

        from ..sources.paths import settings_path  # (not ..sources.config: its imports, 7 ms before the first frame)
        return _(NO_HOA_UMIP).format(path=html.escape(self.settings_file or str(settings_path())))

    def _on_daemon_status(self, st) -> None:
        connected = st.reachable
        self.bindings_view.setVisible(connected)
        engine = st.name == "engine"
        self.no_hoa.setText(self._no_hoa_text(engine))
        if connected and engine and self.controller._caps().multiple_coas:
            self.bindings_label.setText(_("mhgui's mobility engine, several care-of addresses: every uplink is "
                                          "registered at once (one BID each, the first row is the default); drag a "
                                          "connection onto an interface to move it alone."))
        elif connected and engine:
            self.bindings_label.setText(_("mhgui's mobility engine (mobile node): each home address has its own "
                                          "uplink, moved at once by a Binding Update (drag a home address onto an "
                                          "interface, or right-click it in the Home addresses table)."))
        elif connected:
            node = {"mn": _("mobile node"), "ha": _("home agent")}.get(st.node or "", st.node or "")
            self.bindings_label.setText(_("UMIP mip6d ({node}) on localhost: the daemon chooses one interface for "
                                          "every home address, by its interface preferences.").format(node=node))
        elif engine:
            self.bindings_label.setText(_("No mobility daemon connected: {daemon} is {state}").format(
                daemon=_("mhgui's mobility engine"), state=st.state) + (f" — {st.error}" if st.error else "") + ".")
        else:  # the app looks for mhgui's engine first: UMIP's terminal is asked when the engine is not there
            self.bindings_label.setText(_("No mobility daemon: mhgui's engine (mhgui-mn) is not running and UMIP's "
                                          "mip6d is {state}").format(state=st.state)
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
        colours.set_tone(self.rebind_label, {True: "ok", False: "error", "neutral": "neutral"}.get(ok, "info"))
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
            self._export_menu(self.homes_view, self.homes_view.viewport().mapToGlobal(pos))
            return
        menu = QMenu(self)
        sub = menu.addMenu(_("Bind {hoa} through").format(hoa=hoa))
        in_use = self.controller.in_use()
        an = self.controller.analysis
        st = self.controller.store.state
        for ifindex in sorted(st.interfaces):
            i = st.interfaces[ifindex]
            if i.kind.value in ("loopback", "tunnel"):
                continue
            usable = an is not None and ifindex in an.active and ifindex not in an.home_links
            current = in_use.get(hoa) is not None and in_use[hoa].ifindex == ifindex
            act = sub.addAction(i.name + (" ({})".format(_("in use")) if current else "" if usable
                                          else _(" (no usable care-of address)")))
            act.setEnabled(usable and not current and self.controller.daemon is not None)
            act.triggered.connect(lambda _=False, h=hoa, n=i.name: self.rebinder.request(h, n))
        if self.controller.daemon is None:
            menu.addAction(_("No mobility daemon: nothing to rebind")).setEnabled(False)
        caps = self.controller._caps()
        act = menu.addAction(_("Register another home address as its care-of address (draft 6.2.2)"))
        act.setEnabled(False)
        from ..daemons.umip import HOA_AS_COA_REASON
        act.setToolTip(_(HOA_AS_COA_REASON) if not caps.hoa_as_coa else "")
        menu.setToolTipsVisible(True)
        self.homes_view.table_export.add_to(menu)
        self.show_menu(menu, self.homes_view.viewport().mapToGlobal(pos))

    def eventFilter(self, obj, event) -> bool:
        # a home address dropped onto an interface row asks for that rebind
        if obj is self.interfaces_view.viewport() and event.type() in (QEvent.Type.DragEnter, QEvent.Type.DragMove,
                                                                       QEvent.Type.Drop):
            from .flows_model import FLOW_MIME
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
                        self.tabs.setCurrentWidget(self.flows_page)
                        self.move_flow(bytes(md.data(FLOW_MIME)).decode(), ifname)
                    event.acceptProposedAction()
                return True
            event.acceptProposedAction()
            return True
        return super().eventFilter(obj, event)

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
        self._update_rules_access()  # Add… follows what the banner says of the helper
        self.banner.setText("\n".join(parts))
        self.banner.setVisible(bool(parts))
        if self.controller.tax is not None:  # say so when the taxonomy shown is not this node's
            self.headline.setText(("" if taxonomy_is_node(found) else _("Not this node's view: "))
                                  + headline(self.controller.tax))

    #: False: the answer's icon waits for :meth:`show_answer_icon` (app.py calls it after the window's first
    #: frame: QStyle's enums and its standard icons cost about 10 ms before it, issue 14)
    answer_icons = True

    def show_answer_icon(self) -> None:
        """The answer's level as the style's standard icon, one line of text high (when :attr:`answer_icons`)."""
        if not self.answer_icons or self._answer is None:
            return
        from PySide6.QtWidgets import QStyle
        icon = {"ok": QStyle.StandardPixmap.SP_DialogApplyButton, "info": QStyle.StandardPixmap.SP_MessageBoxInformation,
                "warning": QStyle.StandardPixmap.SP_MessageBoxWarning,
                "error": QStyle.StandardPixmap.SP_MessageBoxCritical}[self._answer.level]
        size = self.answer.fontMetrics().height()
        self.answer_icon.setPixmap(self.style().standardIcon(icon).pixmap(size, size))

    def _show_answer(self, an: Analysis | None = None) -> None:
        """The node's answer at the top, with its action as a button (issue 15.1)."""
        h = answer_of(self.controller, an)
        cmd = typed_command(self.controller, h.action)
        if h == self._answer and cmd == self._answer_command:
            return
        if self._answer is not None and h.action != self._answer.action:
            self.answer_note.hide()  # what the last action did is about an answer that changed (e.g. daemon back)
        self._answer, self._answer_command = h, cmd
        self.answer.setText(h.text)
        self.answer.setToolTip(h.detail)
        colours.set_tone(self.answer, TONE.get(h.level))
        self.show_answer_icon()
        self.answer_icon.setAccessibleName(h.level)
        self.answer_button.setVisible(h.action is not None)
        if h.action is not None:
            # the app cannot take it here (no privileged helper, e.g. the lab): what works, shown and copyable
            label = _("Copy the command") if cmd else h.action.label
            self.answer_button.setText(label)
            self.answer_button.setAccessibleName(label)
            self.answer_button.setToolTip(cmd or "")
        if cmd:
            self.answer_note.setText(_("{action}: the privileged helper that would do it is not installed here; run "
                                       "this in a terminal: {command}").format(action=h.action.label, command=cmd))
            colours.set_tone(self.answer_note, "info")
            self.answer_note.show()

    def _on_answer_button(self) -> None:
        if self._answer_command:
            from PySide6.QtWidgets import QApplication
            QApplication.clipboard().setText(self._answer_command)
            self.statusBar().showMessage(_("Copied: {command}").format(command=self._answer_command), 10000)
            return
        self.actions.run(self._answer.action if self._answer else None)

    def _on_action_message(self, text: str, ok) -> None:
        self.answer_note.setText(text)
        colours.set_tone(self.answer_note, {True: "ok", False: "error"}.get(ok, "info"))
        self.answer_note.show()

    def _on_refreshed(self, an: Analysis, tax: dict) -> None:
        self._show_answer(an)
        self.headline.setText(headline(tax))
        self.summary.setText(summary_of(self._answer, tax))  # (not "Not a Mobile IPv6 node" under "daemon lost")
        avail = {g["goal"]: g for g in tax["goals_available"]}
        rows, tips, ok = [], [], []
        for goal in tax["goals"]:
            a = avail.get(goal, {"available": False, "reason": ""})
            reason = a["reason"]
            word = _("yes") if a["available"] else _("no")
            # the reasons for a "yes" already start with it ("yes: the daemon has ...")
            rows.append((_(goal), reason if reason.startswith(word) else f"{word}: {reason}"))
            tips.append(a["reason"])
            ok.append(a["available"])
        if not rows:
            rows, tips, ok = [("—", _("the draft lists no goal for this configuration"))], [tax["summary"]], [None]
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
            state = _(SOURCE_STATES[state]) if state in SOURCE_STATES else state
            parts.append(f"{label}: {state}")
            tips.append(f"{label} ({_(SOURCE_ROLES[name])}): {state}" + (f" — {detail}" if detail else ""))
        self.sources_label.setText("   ·   ".join(parts) + _("   (hover for details)"))
        self.sources_label.setToolTip("\n".join(tips))
        self.no_hoa.setVisible(not tax["home_addresses"])
        self.no_issue.setVisible(not tax["issues"])
        waiting = [m for m in modem_rows(self.controller.store) if m["data_interface"] is None]
        self.modems_label.setText("\n".join(_("Modem {name}: {state}").format(name=m["name"], state=m["state"])
                                            for m in waiting))
        self.modems_label.setVisible(bool(waiting))
        self._expire_messages()
