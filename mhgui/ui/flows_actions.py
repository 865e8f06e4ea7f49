"""The Flows tab's actions: its context menu ("Move to interface", bicast), the Ctrl+M shortcut, and
moving a connection (:func:`~mhgui.core.moves.move_outcome`: refuse, rebind its home address, offer a
steering rule, or bind the flow alone), said in the tab's message line.

:class:`FlowActions` is ``window.flow_actions``, made with the Flows tab's page (:mod:`.lazytabs`); the
window's ``move_flow``, ``send_on_all``, ``_flow_menu``... delegate here. Where these call back into the
window (``move_flow``, ``show_menu``, ``rebinder``...) they go through it, so a replacement there (tests)
is what runs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMenu

from ..core.analysis import analyse
from ..i18n import _
from . import colours, tableexport
from .models import KeyRole

if TYPE_CHECKING:
    from ..core.moves import MoveOutcome


class FlowActions(QObject):
    """The actions on the flows of ``window`` (a :class:`~mhgui.ui.window.MainWindow`) shown in ``page``
    (a :class:`~mhgui.ui.flows_page.FlowsPage`): wires the page's context menu and Ctrl+M."""

    def __init__(self, window, page) -> None:
        super().__init__(window)
        self.w = window
        v = page.flows_view
        tableexport.install(v, menu=False)  # in the flow menu below
        v.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        v.customContextMenuRequested.connect(lambda pos: self._flow_menu(v.indexAt(pos), v.viewport().mapToGlobal(pos)))
        move = QAction(_("Move to interface…"), v)
        move.setShortcut(QKeySequence("Ctrl+M"))
        move.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)
        move.triggered.connect(self._flow_menu_for_selection)
        v.addAction(move)

    def _flow_menu_for_selection(self) -> None:
        rows = self.w.flows_view.selectionModel().selectedRows()
        if rows:
            rect = self.w.flows_view.visualRect(rows[0])
            self._flow_menu(rows[0], self.w.flows_view.viewport().mapToGlobal(rect.center()))

    def _flow_menu(self, index, where) -> QMenu | None:
        if not index.isValid():
            if where is not None:
                self.w._export_menu(self.w.flows_view, where)
            return None
        from ..core.moves import target_problem
        flow_id = index.data(KeyRole)
        menu = QMenu(self.w)
        sub = menu.addMenu(_("Move to interface"))
        sub.setToolTipsVisible(True)
        st = self.w.controller.store.state
        an = self.w.controller.analysis or analyse(st, self.w.controller.clock())
        fm = self.w.controller.flows
        place = fm.placement(flow_id)
        on = tuple(fm.bound_to(flow_id)) or ((place.interface,) if place is not None and place.interface else ())
        for ifindex in sorted(st.interfaces):
            i = st.interfaces[ifindex]
            if i.kind.value in ("loopback", "tunnel", "virtual"):
                continue
            problem = target_problem(st, an, i.name, on)  # where it is now: "(in use)"
            act = sub.addAction(i.name if problem is None else f"{i.name} ({problem})")
            act.setEnabled(problem is None)  # a down interface is shown, greyed out, with why
            act.triggered.connect(lambda _=False, f=flow_id, n=i.name: self.w.move_flow(f, n))
        if self.w.controller._caps().flow_bindings:
            menu.addAction(_("Send on every uplink (bicast)")).triggered.connect(
                lambda _=False, f=flow_id: self.w.send_on_all(f))
        self.w.flows_view.table_export.add_to(menu)
        self.w._last_flow_menu = menu
        self.w.show_menu(menu, where)
        return menu

    def _flow_at(self, flow_id: str):
        """(flow, placement, analysis) of a listed connection, or None (said in the window) when it is gone."""
        m = self.w.controller.flows
        flow, place = m.flow(flow_id), m.placement(flow_id)
        if flow is None or place is None:
            self._flow_message(_("That connection is gone."), False)
            return None
        c = self.w.controller
        return flow, place, c.analysis or analyse(c.store.state, c.clock())

    def move_flow(self, flow_id: str, ifname: str) -> MoveOutcome | None:
        """Say what moving the flow to ``ifname`` means, then offer what can be done (never silently)."""
        from ..core.moves import move_outcome
        m = self.w.controller.flows
        got = self._flow_at(flow_id)
        if got is None:
            return None
        flow, place, an = got
        others = [(m.flow(i), m.placement(i)) for i in m.ids()]
        out = move_outcome(flow, place, ifname, self.w.controller.store.state, an, self.w.controller._caps(), others,
                           bound_to=m.bound_to(flow_id))
        self.w.last_move = out
        if out.action == "refuse":
            self._flow_message(out.summary, False)
        elif out.action == "rebind":
            self._flow_message(out.summary, None)
            listed = [m.flow(i) for i in out.also_moves[:8]]
            more = "".join(f"\n  • {f.process or '?'}: {f.id}" for f in listed if f is not None)
            if len(out.also_moves) > 8:
                more += "\n  • " + _("… and {n} more").format(n=len(out.also_moves) - 8)
            # the dialog explains the rebind itself (describe_plan): the preface only says what is special here
            self.w.rebinder.request(out.hoa, ifname, preface=_("This connection keeps working: it uses the home "
                                                                  "address {hoa}.").format(hoa=out.hoa)
                                       + ("\n" + _("These move too:") + more if more else ""))
        elif out.action == "steer":
            self._flow_message(out.summary, None)
            self.w.steer_offer.emit(out)
        else:  # flow-binding: the engine with several care-of addresses (RFC 5648/6089): this connection alone
            self._flow_message(out.summary, None)
            self.w.flowbinder.request(out)
        return out

    def send_on_all(self, flow_id: str) -> MoveOutcome | None:
        """Send the connection on every usable interface at once (bicast, e.g. a call), if the daemon can."""
        from ..core.moves import bicast_outcome, interface_problem
        got = self._flow_at(flow_id)
        if got is None:
            return None
        flow, place, an = got
        st = self.w.controller.store.state
        targets = tuple(i.name for i in sorted(st.interfaces.values(), key=lambda i: i.ifindex)
                        if i.kind.value not in ("loopback", "tunnel") and interface_problem(st, an, i.name) is None)
        out = bicast_outcome(flow, place, targets, st, an, self.w.controller._caps())
        self.w.last_move = out
        if out.action == "refuse":
            self._flow_message(out.summary, False)
        else:
            self._flow_message(out.summary, None)
            self.w.flowbinder.request(out)
        return out

    def _flow_message(self, text: str, ok) -> None:
        self.w._flow_rule = None  # a new message: what the last one said of a rule is not shown any more
        self.w.flow_label.setText(text)
        colours.set_tone(self.w.flow_label, {True: "ok", False: "error"}.get(ok, "info"))
