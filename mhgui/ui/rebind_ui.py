"""Rebinding a home address from the window: :class:`Rebinder` (plan, confirm, rebind, report),
:func:`describe_plan` (what a rebind will do, said before acting), and :class:`HomeRebinding`, the Home
addresses table's "Bind through" menu and the drops onto the interfaces table (a home address: rebind it;
a connection: move it). Composed by :class:`~mhgui.ui.window.MainWindow` (``window.rebinder``,
``window.home_rebinding``); ``Rebinder`` and ``describe_plan`` are re-exported by :mod:`mhgui.ui.window`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:  # asyncio loads after the window's first frame (issue 14)
    import asyncio

    from .controller import LiveController

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtWidgets import QAbstractItemView, QMenu, QMessageBox, QWidget

from ..core.analysis import analyse
from ..core.bindings import in_use_text
from ..i18n import _
from .models import HOA_MIME, InterfaceModel


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


class HomeRebinding(QObject):
    """Rebind a HoA from ``window`` (a :class:`~mhgui.ui.window.MainWindow`): the context menu on a home
    address, or a drag of it onto an interface (a connection dragged there is moved: ``window.move_flow``).
    Wires the window's ``homes_view`` and ``interfaces_view``; acts through ``window.rebinder``."""

    def __init__(self, window) -> None:
        super().__init__(window)
        self.w = window
        homes, ifaces = window.homes_view, window.interfaces_view
        homes.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        homes.customContextMenuRequested.connect(lambda pos: self.w._homes_menu(pos))
        homes.setDragEnabled(True)
        homes.setDragDropMode(QAbstractItemView.DragDropMode.DragOnly)
        ifaces.setAcceptDrops(True)
        ifaces.viewport().setAcceptDrops(True)
        ifaces.setDragDropMode(QAbstractItemView.DragDropMode.DropOnly)
        ifaces.setDropIndicatorShown(True)
        ifaces.viewport().installEventFilter(self)

    def _hoa_at(self, pos) -> str | None:
        idx = self.w.homes_view.indexAt(pos)
        if not idx.isValid():
            return None
        text = idx.siblingAtColumn(0).data()
        return text.split("/", 1)[0] if text else None

    def _homes_menu(self, pos) -> None:
        hoa = self.w._hoa_at(pos)
        if hoa is None:
            self.w._export_menu(self.w.homes_view, self.w.homes_view.viewport().mapToGlobal(pos))
            return
        menu = QMenu(self.w)
        sub = menu.addMenu(_("Bind {hoa} through").format(hoa=hoa))
        in_use = self.w.controller.in_use()
        an = self.w.controller.analysis
        st = self.w.controller.store.state
        for ifindex in sorted(st.interfaces):
            i = st.interfaces[ifindex]
            if i.kind.value in ("loopback", "tunnel"):
                continue
            usable = an is not None and ifindex in an.active and ifindex not in an.home_links
            current = in_use.get(hoa) is not None and in_use[hoa].ifindex == ifindex
            act = sub.addAction(i.name + (" ({})".format(_("in use")) if current else "" if usable
                                          else _(" (no usable care-of address)")))
            act.setEnabled(usable and not current and self.w.controller.daemon is not None)
            act.triggered.connect(lambda _=False, h=hoa, n=i.name: self.w.rebinder.request(h, n))
        if self.w.controller.daemon is None:
            menu.addAction(_("No mobility daemon: nothing to rebind")).setEnabled(False)
        caps = self.w.controller._caps()
        act = menu.addAction(_("Register another home address as its care-of address (draft 6.2.2)"))
        act.setEnabled(False)
        from ..daemons.umip import HOA_AS_COA_REASON
        act.setToolTip(_(HOA_AS_COA_REASON) if not caps.hoa_as_coa else "")
        menu.setToolTipsVisible(True)
        self.w.homes_view.table_export.add_to(menu)
        self.w.show_menu(menu, self.w.homes_view.viewport().mapToGlobal(pos))

    def eventFilter(self, obj, event) -> bool:
        # a home address dropped onto an interface row asks for that rebind
        if obj is self.w.interfaces_view.viewport() and event.type() in (
                QEvent.Type.DragEnter, QEvent.Type.DragMove, QEvent.Type.Drop):
            from .flows_model import FLOW_MIME
            md = event.mimeData()
            if not (md.hasFormat(HOA_MIME) or md.hasFormat(FLOW_MIME)):
                return False
            idx = self.w.interfaces_view.indexAt(event.position().toPoint())
            if event.type() == QEvent.Type.Drop:
                if idx.isValid():
                    ifname = idx.siblingAtColumn(InterfaceModel.COL_NAME).data()
                    if md.hasFormat(HOA_MIME):
                        self.w.rebinder.request(bytes(md.data(HOA_MIME)).decode(), ifname)
                    else:
                        self.w.tabs.setCurrentWidget(self.w.flows_page)
                        self.w.move_flow(bytes(md.data(FLOW_MIME)).decode(), ifname)
                    event.acceptProposedAction()
                return True
            event.acceptProposedAction()
            return True
        return super().eventFilter(obj, event)
