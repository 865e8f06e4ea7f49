"""The "Add steering rule" form (issue 15.6): non-modal, validated as you type.

Fields: destination (a host name, resolved when the rule is added, an address or a prefix; may be
left empty when ports, a protocol or an application select), interface, protocol, destination
ports, application (the running ones are offered: :func:`mhgui.sources.cgroups.list_running_apps`).
Validation is :func:`mhgui.core.steering_selectors.check_form` (pure); each field's problem is shown
under the form and Add stays disabled until there is none. Add emits :attr:`SteeringForm.submitted`
with ``{"destination", "interface", "protocol", "ports", "application"}`` (texts); the window
resolves the name (:func:`mhgui.sources.resolve.resolve_host`), asks the helper and reports back
with :meth:`SteeringForm.finished_adding`.
"""

from __future__ import annotations

import asyncio
from typing import Awaitable, Callable, Iterable

from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QVBoxLayout,
    QWidget,
)

from ..core.cgroups import AppScope
from ..core.steering_selectors import check_form, classify_destination
from ..i18n import N_, _
from . import colours

__all__ = ["SteeringForm"]

_FIELD_NAMES = {"destination": N_("Destination"), "ports": N_("Ports"), "application": N_("Application"),
                "protocol": N_("Protocol"), "rule": N_("Rule")}


class SteeringForm(QDialog):
    """See the module docstring. ``interfaces``: names offered (the first is selected). ``resolver``: an
    async ``name -> [address, ...]`` (:func:`mhgui.sources.resolve.resolve_host`) that shows what a host
    name resolves to while typing (after a pause of :attr:`RESOLVE_DELAY_MS`); None: not shown."""

    submitted = Signal(dict)
    RESOLVE_DELAY_MS = 600

    def __init__(self, interfaces: Iterable[str], parent: QWidget | None = None,
                 resolver: Callable[[str], Awaitable[list[str]]] | None = None) -> None:
        super().__init__(parent)
        self.resolver = resolver
        self._resolving: asyncio.Task | None = None
        self.setModal(False)
        self.setMinimumWidth(460)
        self.setWindowTitle(_("Add steering rule"))
        self.setAccessibleName(_("Add steering rule"))
        lay = QVBoxLayout(self)
        intro = QLabel(_("New connections that match every field you fill in leave through the interface. "
                         "Running connections keep their path."))
        intro.setWordWrap(True)
        lay.addWidget(intro)
        form = QFormLayout()
        self.destination = QLineEdit()
        self.destination.setPlaceholderText(_("host name, address or prefix (e.g. example.org, 2001:db8::/32)"))
        self.interface = QComboBox()
        self.interface.addItems(list(interfaces))
        self.protocol = QComboBox()
        for label, value in ((_("Any"), ""), ("TCP", "tcp"), ("UDP", "udp")):
            self.protocol.addItem(label, value)
        self.ports = QLineEdit()
        self.ports.setPlaceholderText(_("e.g. 443, 8000-8100"))
        self.application = QComboBox()
        self.application.setEditable(True)
        self.application.addItem("", "")
        self.application.lineEdit().setPlaceholderText(_("an application id (firefox) or cgroup:PATH"))
        rows = ((_("&Destination:"), self.destination, _("Destination")),
                (_("&Interface:"), self.interface, _("Interface")),
                (_("P&rotocol:"), self.protocol, _("Protocol")),
                (_("&Ports:"), self.ports, _("Destination ports")),
                (_("A&pplication:"), self.application, _("Application")))
        for label, widget, name in rows:
            widget.setAccessibleName(name)
            form.addRow(label, widget)
        lay.addLayout(form)
        self.apps_note = QLabel()  # why the Application list offers nothing (set_apps)
        self.apps_note.setWordWrap(True)
        self.apps_note.setAccessibleName(_("About the application list"))
        self.apps_note.hide()
        lay.addWidget(self.apps_note)
        self.resolved = QLabel()
        self.resolved.setWordWrap(True)
        self.resolved.setAccessibleName(_("What the host name resolves to"))
        self.resolved.hide()
        lay.addWidget(self.resolved)
        self._resolve_timer = QTimer(self)
        self._resolve_timer.setSingleShot(True)
        self._resolve_timer.setInterval(self.RESOLVE_DELAY_MS)
        self._resolve_timer.timeout.connect(self._resolve_now)
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.message.setAccessibleName(_("Problems with the rule"))
        lay.addWidget(self.message)
        self.buttons = QDialogButtonBox()
        self.add_button = self.buttons.addButton(_("Add"), QDialogButtonBox.ButtonRole.AcceptRole)
        self.add_button.setAccessibleName(_("Add the rule"))
        close = self.buttons.addButton(QDialogButtonBox.StandardButton.Close)
        close.setText(_("Close"))
        close.setAccessibleName(_("Close the form"))
        self.buttons.accepted.connect(self._submit)
        self.buttons.rejected.connect(self.close)
        lay.addWidget(self.buttons)
        self.destination.textChanged.connect(self.validate)
        self.destination.textChanged.connect(self._destination_changed)
        self.ports.textChanged.connect(self.validate)
        self.application.editTextChanged.connect(self.validate)
        self.protocol.currentIndexChanged.connect(self.validate)
        self.interface.currentIndexChanged.connect(self.validate)
        self.busy = False
        self.validate()

    # ----------------------------------------------------------------- values

    def application_text(self) -> str:
        data = self.application.currentData()
        text = self.application.currentText().strip()
        # an offered app is shown as "firefox (2 running)" and carries "app:firefox"
        if data and self.application.itemText(self.application.currentIndex()) == self.application.currentText():
            return str(data)
        return text

    def values(self) -> dict[str, str]:
        return {"destination": self.destination.text().strip(), "interface": self.interface.currentText(),
                "protocol": self.protocol.currentData() or "", "ports": self.ports.text().strip(),
                "application": self.application_text()}

    def set_interfaces(self, names: Iterable[str]) -> None:
        """Offer ``names`` (best first), keeping the chosen one when it is still there."""
        current = self.interface.currentText()
        self.interface.blockSignals(True)
        self.interface.clear()
        self.interface.addItems(list(names))
        if current:
            self.interface.setCurrentText(current)
        self.interface.blockSignals(False)
        self.validate()

    def set_apps(self, scopes: Iterable[AppScope], where: str = "") -> None:
        """Offer the applications running now (``scopes`` from :func:`mhgui.sources.cgroups.running_apps`).
        ``where``: the cgroups looked in (:attr:`mhgui.sources.cgroups.AppsFound.where`), said when none is found."""
        counts: dict[str, int] = {}
        for s in scopes:
            counts[s.app_id] = counts.get(s.app_id, 0) + 1
        typed = self.application.currentText()
        self.application.blockSignals(True)
        self.application.clear()
        self.application.addItem("", "")
        for app, n in sorted(counts.items(), key=lambda x: x[0].lower()):
            self.application.addItem(_("{app} ({n} running)").format(app=app, n=n), f"app:{app}")
        self.application.setEditText(typed)
        self.application.blockSignals(False)
        if counts:
            self.application.setToolTip(_("Applications running in your session: {n}").format(n=len(counts)))
            self.apps_note.hide()
        else:
            empty = (_("No running applications found in your session's cgroups ({where}); an application id "
                       "can still be typed.").format(where=where) if where else
                     _("No running applications found in your session's cgroups; an application id can still "
                       "be typed."))
            self.application.setToolTip(empty)
            self.apps_note.setText(empty)
            colours.set_tone(self.apps_note, "muted")
            self.apps_note.show()
        self.validate()

    # ----------------------------------------------------------------- validation

    def validate(self) -> dict[str, str]:
        """Check the fields now; show the problems, enable Add only without any. Returns the problems."""
        v = self.values()
        problems = {} if self.interface.currentText() else {"rule": _("there is no interface to steer through")}
        problems.update(check_form(v["destination"], v["ports"], v["application"], v["protocol"]))
        lines = []
        for k, p in problems.items():
            field = _(_FIELD_NAMES[k])
            # (core messages often start with the field's own name: "destination fe80::1 is ...")
            lines.append(p[:1].upper() + p[1:] if p.lower().startswith(field.lower() + " ") else
                         _("{field}: {problem}").format(field=field, problem=p))
        self.message.setText("\n".join(lines))
        colours.set_tone(self.message, "error" if problems else None)
        self.add_button.setEnabled(not problems and not self.busy)
        for key, widget in (("destination", self.destination), ("ports", self.ports)):
            widget.setToolTip(problems.get(key, ""))
        return problems

    # ----------------------------------------------------------------- the host name, live

    def _destination_changed(self) -> None:
        self._resolve_timer.stop()
        if self._resolving is not None:
            self._resolving.cancel()
            self._resolving = None
        self.resolved.hide()
        try:
            kind, _value = classify_destination(self.destination.text())
        except ValueError:
            return
        if kind == "host" and self.resolver is not None:
            self._resolve_timer.start()

    def _resolve_now(self) -> None:
        try:
            kind, name = classify_destination(self.destination.text())
        except ValueError:
            return
        if kind != "host" or self.resolver is None:
            return
        self.resolved.setText(_("Looking up {name}…").format(name=name))
        colours.set_tone(self.resolved, "muted")
        self.resolved.show()
        self._resolving = asyncio.ensure_future(self._resolve(name))

    async def _resolve(self, name: str) -> None:
        try:
            addrs = await self.resolver(name)  # type: ignore[misc]
        except asyncio.CancelledError:
            raise
        except Exception as e:  # ResolveError: said, not raised (Add would say it again)
            text, tone = _("Cannot resolve {why}").format(why=e), "warning"
        else:
            text, tone = _("{name} is {addresses}").format(name=name, addresses=", ".join(addrs)), "muted"
        try:
            current = classify_destination(self.destination.text())
        except ValueError:
            return
        if current == ("host", name):
            self.resolved.setText(text)
            colours.set_tone(self.resolved, tone)
            self.resolved.show()

    def hideEvent(self, event) -> None:  # noqa: N802 (Qt)
        self._resolve_timer.stop()
        if self._resolving is not None:
            self._resolving.cancel()
            self._resolving = None
        super().hideEvent(event)

    def _submit(self) -> None:
        if self.validate():
            return
        self.busy = True
        self.add_button.setEnabled(False)
        self.message.setText(_("Adding…"))
        colours.set_tone(self.message, None)
        self.submitted.emit(self.values())

    def finished_adding(self, ok: bool, text: str) -> None:
        """The window's answer: ``text`` shown in the form (an error in the error tone)."""
        self.busy = False
        self.validate()
        self.message.setText(text)
        colours.set_tone(self.message, "ok" if ok else "error")
