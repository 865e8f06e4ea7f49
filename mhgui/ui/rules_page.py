"""The Steering rules tab (new connections to a destination through an interface; the privileged helper
applies them): the rules' table, Add… (:mod:`.steering_form`), change and remove from the context menu,
and what the Flows tab and this tab say of a rule, taken down once the listed rules say otherwise.

Built when the tab is first shown (:mod:`.lazytabs`): :class:`RulesPage` is ``window.rules``; the window's
``rules_model``, ``rules_view``, ``rules_label``, ``rules_add`` are its widgets, and the window's
``add_rule``, ``reload_rules``... delegate here."""

from __future__ import annotations

from PySide6.QtCore import QTimer, Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QMenu, QMessageBox, QPushButton, QVBoxLayout, QWidget

from ..core.analysis import analyse
from ..i18n import N_, _
from . import colours
from .models import RulesModel
from .tables import table as _table


class RulesPage(QWidget):
    """The tab's page for ``window`` (a :class:`~mhgui.ui.window.MainWindow`: its ``helper_factory``,
    ``access_problems``, ``controller``, ``show_menu``, ``open_dialog``, ``_flow_message``)."""

    RULES_HINT = N_("Rules made from the Flows tab appear here. Right-click one to change or remove it.")

    def __init__(self, window) -> None:
        super().__init__()
        self.w = window
        self.rule_form = None  # the "Add steering rule" form, made when first opened
        self._listed_rules: dict = {}  # {rule id: rule} as last listed
        #: what a success in the rules tab said of a rule: (rule id, interface; None: removed)
        self._rules_claim: tuple[str, str | None] | None = None
        lay = QVBoxLayout(self)
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
            lambda: self._spawn(self.reload_rules()) if window.tabs.currentWidget() is self and window.isVisible()
            else None)
        self._rules_timer.start()
        self._update_rules_access()

    def _spawn(self, coro) -> None:
        self.w._spawn(coro)

    async def _helper_call(self, what: str, fn):
        """Run ``fn(client)`` against the privileged helper; a failure is a message, not a crash."""
        try:
            async with self.w.helper_factory() as client:
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
        from ..core.access import HELPER, problems, sentence, steering_blocker
        store = self.w.controller.store
        found = self.w.access_problems() if self.w.access_problems else problems(store.sources, store.state)
        p = steering_blocker(found)
        if p is None and failed is not None and type(failed).__name__ == "HelperAbsent":
            p = steering_blocker(problems({**store.sources, HELPER: ("absent", "")}, store.state))
        why = sentence(p) if p is not None else None
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

    def _expire_rule_messages(self, rules: list) -> None:
        """A success said of a steering rule is replaced once the rules say otherwise (removed since, or
        leaving through another interface: a failover of its interface, another client's change)."""
        by_id = {r.get("id"): r for r in rules if isinstance(r, dict)}
        if self.w._flow_rule is not None:
            rid, iface, dest = self.w._flow_rule
            r = by_id.get(rid)
            via = (r.get("via") or r.get("interface")) if r is not None else None
            if r is None:
                self.w._flow_message(_("Steering rule {rule} (new connections to {destination} through {interface}) "
                                          "is gone.").format(rule=rid, destination=dest, interface=iface), None)
            elif via != iface:
                self.w._flow_message(_("Steering rule {rule}: new connections to {destination} go through {via} for "
                                          "now, not {interface}").format(rule=rid, destination=dest, via=via,
                                                                         interface=iface)
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
            self.w._flow_message(self.rules_label.text(), False)
            return None
        self.w._flow_message(_("Steering rule {rule}: new connections to {destination} now go through {interface} "
                                  "(this connection is unchanged; reconnect to use it).").format(
                                      rule=rid, destination=destination, interface=interface), True)
        self.w._flow_rule = (rid, interface, destination)
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
        listed = self._listed_rules.get(rid, {})
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

        state = self.w.controller.store.state
        an = self.w.controller.analysis or analyse(state, self.w.controller.clock())
        ifaces = [i for i in state.interfaces.values() if i.kind.value not in ("loopback", "tunnel")]
        # usable interfaces first (as the rules' "Send through" menu judges them), then the others
        names = [i.name for i in sorted(ifaces, key=lambda i: (interface_problem(state, an, i.name) is not None,
                                                               i.ifindex))]
        form = self.rule_form
        if form is None:
            from ..sources.resolve import resolve_host

            form = self.rule_form = SteeringForm(names, self.w, resolver=resolve_host)
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
            self.w._export_menu(self.rules_view, self.rules_view.viewport().mapToGlobal(pos))
            return
        from ..core.moves import interface_problem
        rid = self.rules_model.rule_id(idx.row())
        current = self.rules_model.index(idx.row(), RulesModel.COL_IFACE).data()
        menu = QMenu(self.w)
        sub = menu.addMenu(_("Send through"))
        an = self.w.controller.analysis or analyse(self.w.controller.store.state, self.w.controller.clock())
        for i in sorted(self.w.controller.store.state.interfaces.values(), key=lambda i: i.ifindex):
            if i.kind.value in ("loopback", "tunnel"):
                continue
            why = _("current") if i.name == current else interface_problem(self.w.controller.store.state, an, i.name)
            act = sub.addAction(i.name + (f" ({why})" if why else ""))
            act.setEnabled(why is None)
            act.triggered.connect(lambda _=False, n=i.name: self._spawn(self.change_rule(rid, n)))
        menu.addAction(_("Remove")).triggered.connect(lambda: self._spawn(self.remove_rule(rid)))
        self.rules_view.table_export.add_to(menu)
        self.w.show_menu(menu, self.rules_view.viewport().mapToGlobal(pos))


def offer_steering(window, out) -> None:
    box = QMessageBox(window)
    box.setIcon(QMessageBox.Icon.Warning)
    box.setWindowTitle(_("This connection cannot move"))
    box.setText(out.summary)
    send = box.addButton(_("Send new connections to {destination} through {interface}").format(
                             destination=out.destination, interface=out.interface),
                         QMessageBox.ButtonRole.AcceptRole)
    box.addButton(QMessageBox.StandardButton.Cancel)
    box.finished.connect(lambda _r: window._spawn(window.add_rule(out.destination, out.interface))
                         if box.clickedButton() is send else None)
    window.open_dialog(box)

