"""Getting started (issue 15.3): connect this node to a home agent, or try the lab.

A normal machine (online, no home address) is not a Mobile IPv6 node yet. This dialog offers two ways on:

- **Connect to a home agent**, through mhgui's engine's configuration API (``ConfigureHomeAgent``,
  :mod:`mhgui.engine.mn_dbus`; polkit action ``io.github.mhgui.MHGui.engine-configure``): the home
  agent's outer addresses (one IPv6 and/or one IPv4), its address on the home prefix, this node's
  identity (an RFC 4283 NAI), the RFC 4285 SPI and the MN-HA key. The form is checked as you type
  (:func:`check_form`, the daemon's own rules); the key is read from a file (one line of hex, as the
  engine writes it, or 16..64 raw bytes) or generated here (32 random bytes), and can be saved for the
  home agent's administrator. The key is never logged or shown; the engine writes it root-only (0600).
  Without the engine running, the dialog says how to install and start it.
- **Try the lab**: from a clone, ``./scripts/run --lab`` builds network namespaces with a home agent, a
  correspondent and two uplinks and runs this app inside the lab's mobile node; installed (mhgui-host, pip),
  ``sudo mhctl lab up`` then ``sudo mhctl lab exec --user $USER -- mhgui`` do the same (:data:`LAB_TEXT`).

"Check the home agent settings…" opens the form filled in from the engine's ``GetStatus`` (its home agent,
outer addresses, port and this node's identity: :func:`~mhgui.ui.firstrun_form.prefill`; never the key).
"""

from __future__ import annotations

import asyncio
import logging

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QButtonGroup, QDialog, QDialogButtonBox, QFormLayout, QGroupBox, QHBoxLayout, QLabel, QLineEdit,
    QPushButton, QRadioButton, QTabWidget, QVBoxLayout, QWidget,
)

from ..helper.client import is_dismissed, polkit_refusal
from ..i18n import N_, _
from . import colours
from .firstrun_form import HomeAgentForm, Prefill, check_form, prefill
from .keyfile import KeyFileMixin, parse_key_file

log = logging.getLogger(__name__)

__all__ = ["FirstRunDialog", "HomeAgentForm", "INSTALL_TEXT", "LAB_TEXT", "check_form", "parse_key_file", "prefill"]

#: how to get the engine when it is not running
INSTALL_TEXT = N_(
    "mhgui's mobility engine is not running on this machine, so there is nothing to configure yet. "
    "Install it (the mhgui-host package; from a clone: sudo ./scripts/install-engine), write "
    "/etc/mhgui/mn.toml with your home address (README, \"The mobility engine\"), then start it: "
    "sudo systemctl start mhgui-mn. "
    "This dialog then sends the home agent and key to it.")
LAB_TEXT = N_(
    "The lab builds a small Mobile IPv6 network on this machine, in network namespaces: a home agent, a "
    "correspondent node, and a mobile node with two uplinks (up0 with IPv6, up1 with IPv4 behind NAT), "
    "running mhgui's engine. Nothing on your own network changes. It needs root and mhctl on the host.\n\n"
    "From a clone of mhgui's source:\n"
    "    ./scripts/run --lab        # builds the lab and runs this app inside its mobile node\n\n"
    "Installed (the mhgui-host package or pip; with the Flatpak, install mhctl from one of them):\n"
    "    sudo mhctl lab up --allow-user $USER\n"
    "    sudo --preserve-env=DISPLAY,XAUTHORITY,WAYLAND_DISPLAY,XDG_RUNTIME_DIR \\\n"
    "        mhctl lab exec --user $USER -- mhgui --no-networkmanager\n\n"
    "Then cut an uplink (sudo mhctl lab cut up0) and watch the home address move to the other one; "
    "sudo mhctl lab down removes the lab.")


class FirstRunDialog(KeyFileMixin, QDialog):
    """Getting started (module docstring). ``engine``: an :class:`~mhgui.daemons.engine.EngineDriver`, or
    None (then the form says how to get one). ``message(text, ok)``: the outcome for the window;
    ``sent``: emitted after the engine took the configuration."""

    message = Signal(str, object)
    sent = Signal()

    def __init__(self, engine=None, parent=None) -> None:
        super().__init__(parent)
        self.engine = engine
        self.key: bytes | None = None
        self.key_unsaved = False  # a generated key not yet saved for the home agent
        self._task: asyncio.Task | None = None
        self.setWindowTitle(_("Getting started with mhgui"))
        self.setAccessibleName(_("Getting started"))
        root = QVBoxLayout(self)
        intro = QLabel(_("Give mhgui's mobility engine the home agent it registers with, this node's identity "
                         "and key; it restarts with them. Or try everything in a lab first.")
                       if self.engine_ready() else
                       _("This machine has no home address: it is online, but not a Mobile IPv6 node yet. "
                         "Connect it to a home agent, or try everything in a lab first."))
        intro.setWordWrap(True)
        root.addWidget(intro)
        self.tabs = QTabWidget()
        self.tabs.setAccessibleName(_("Ways to start"))
        root.addWidget(self.tabs)
        self.tabs.addTab(self._connect_page(), _("Connect to a home agent"))
        lab = QWidget()
        ll = QVBoxLayout(lab)
        self.lab_text = QLabel(_(LAB_TEXT))
        self.lab_text.setWordWrap(True)
        self.lab_text.setObjectName("lab")
        self.lab_text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        ll.addWidget(self.lab_text)
        ll.addStretch(1)
        self.tabs.addTab(lab, _("Try the lab"))
        self.outcome = QLabel()  # (not "result": QDialog.result() stays callable)
        self.outcome.setWordWrap(True)
        self.outcome.setObjectName("result")
        self.outcome.setAccessibleName(_("Outcome"))
        self.outcome.hide()
        root.addWidget(self.outcome)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.connect_button = self.buttons.addButton(_("Connect"), QDialogButtonBox.ButtonRole.ActionRole)
        self.connect_button.setAccessibleName(_("Send the home agent settings to the mobility engine"))
        self.connect_button.clicked.connect(self.submit)
        self.buttons.rejected.connect(self.reject)
        self.finished.connect(self.forget_key)
        root.addWidget(self.buttons)
        self.connect_button.setDefault(True)  # (once in the dialog) Enter connects when it can, nothing else
        self.tabs.currentChanged.connect(lambda *_a: self.validate())
        # the engine coming or going while the dialog is open: the form follows (no silent dead Connect)
        subscribe = getattr(engine, "subscribe", None)
        self._unsubscribe = subscribe(self._on_engine_event) if callable(subscribe) else None
        self.finished.connect(self._stop_following)
        self.settings = Prefill()
        self.fill_from_engine()
        self.validate()

    def _on_engine_event(self, event) -> None:
        from ..daemons.base import StatusChanged
        if isinstance(event, StatusChanged):
            self.fill_from_engine()
            self.validate()

    def fill_from_engine(self) -> None:
        """The engine's current settings (its ``GetStatus``) into the fields still empty: "Check the home
        agent settings…" shows what the engine uses, for the user to correct (never the key: the engine
        does not give it out, it is read from a file or generated again)."""
        status = getattr(self.engine, "engine_status", None)
        got = prefill(status() if callable(status) else None)
        if got == Prefill():
            return
        self.settings = got
        for w, text in ((self.addresses, got.addresses), (self.home_agent, got.home_agent),
                        (self.identity, got.identity)):
            if text and not w.text():
                w.setText(text)
        self.port_note.setText(_("The engine talks to the home agent on UDP port {port}.").format(port=got.port)
                               if got.port is not None else "")
        self.port_note.setVisible(got.port is not None)

    def _stop_following(self, *_a) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    # ---- the form
    def _connect_page(self) -> QWidget:
        page = QWidget()
        v = QVBoxLayout(page)
        self.install_note = QLabel(_(INSTALL_TEXT))
        self.install_note.setWordWrap(True)
        self.install_note.setObjectName("install")
        v.addWidget(self.install_note)
        box = QGroupBox(_("Home agent"))
        form = QFormLayout(box)
        self.addresses = QLineEdit()
        self.addresses.setPlaceholderText("2001:db8:ffff::1, 192.0.2.1")
        self.home_agent = QLineEdit()
        self.home_agent.setPlaceholderText("2001:db8:1::1")
        self.identity = QLineEdit()
        self.identity.setPlaceholderText("laptop@example.org")
        self.spi = QLineEdit()
        self.spi.setPlaceholderText("256")
        for w, label, name in ((self.addresses, _("Its addresses on the Internet:"), _("Home agent addresses")),
                               (self.home_agent, _("Its address on the home prefix:"), _("Home agent address")),
                               (self.identity, _("This node's identity (NAI):"), _("Identity")),
                               (self.spi, _("SPI (as in the home agent's ha.toml):"), _("SPI"))):
            w.setAccessibleName(name)
            w.textChanged.connect(lambda *_a: self.validate())
            form.addRow(label, w)
        keys = QWidget()
        kl = QHBoxLayout(keys)
        kl.setContentsMargins(0, 0, 0, 0)
        self.key_from_file = QRadioButton(_("From a file…"))
        self.key_generate = QRadioButton(_("Generate a new one"))
        self.key_from_file.setAccessibleName(_("Read the key from a file"))
        self.key_generate.setAccessibleName(_("Generate a new key"))
        group = QButtonGroup(self)
        group.addButton(self.key_from_file)
        group.addButton(self.key_generate)
        self.key_from_file.clicked.connect(self.choose_key_file)
        self.key_generate.clicked.connect(self.generate_key)
        self.save_key = QPushButton(_("Save for the home agent…"))
        self.save_key.setAccessibleName(_("Save the generated key for the home agent's administrator"))
        self.save_key.clicked.connect(self.save_key_file)
        self.save_key.setEnabled(False)
        self.save_key.setAutoDefault(False)  # Enter must not open the save dialog
        for w in (self.key_from_file, self.key_generate, self.save_key):
            kl.addWidget(w)
        form.addRow(_("MN-HA key:"), keys)
        self.key_state = QLabel(_("no key yet"))
        self.key_state.setObjectName("key")
        form.addRow("", self.key_state)
        self.port_note = QLabel()
        self.port_note.setObjectName("port")
        self.port_note.setWordWrap(True)
        self.port_note.hide()
        form.addRow("", self.port_note)
        v.addWidget(box)
        self.problems = QLabel()
        self.problems.setWordWrap(True)
        self.problems.setObjectName("problems")
        self.problems.setAccessibleName(_("What is missing"))
        v.addWidget(self.problems)
        v.addStretch(1)
        self.form_box = box
        return page

    def show_page(self, lab: bool) -> None:
        self.tabs.setCurrentIndex(1 if lab else 0)

    def engine_ready(self) -> bool:
        return self.engine is not None and self.engine.status.reachable

    def checked(self) -> tuple[HomeAgentForm | None, list[str]]:
        form, problems = check_form(self.addresses.text(), self.home_agent.text(), self.identity.text(),
                                    self.spi.text(), self.key, self.settings.home_addresses)
        if self.key is not None and self.key_unsaved:  # else the home agent can never have the same key
            problems.append(_("Key: save the new key for the home agent first (its ha.toml needs the same key)"))
            form = None
        return form, problems

    def validate(self) -> None:
        ready = self.engine_ready()
        self.install_note.setVisible(not ready)
        self.form_box.setEnabled(ready)
        form, problems = self.checked()
        self.problems.setText("\n".join(problems) if ready else "")
        colours.set_tone(self.problems, "error" if problems else None)
        busy = self._task is not None and not self._task.done()
        self.connect_button.setVisible(self.tabs.currentIndex() == 0)
        self.connect_button.setEnabled(ready and form is not None and not busy)

    # ---- sending
    def _spawn(self, coro) -> asyncio.Task:
        task = asyncio.ensure_future(coro)
        self._keep = getattr(self, "_keep", set())
        self._keep.add(task)
        task.add_done_callback(self._keep.discard)
        return task

    def submit(self) -> asyncio.Task | None:
        form, _problems = self.checked()
        if form is None or not self.engine_ready():
            return None
        self._task = self._spawn(self.send(form))
        self.validate()
        return self._task

    def _show(self, text: str, ok) -> None:
        self.outcome.setText(text)
        colours.set_tone(self.outcome, {True: "ok", False: "error"}.get(ok, "info"))
        self.outcome.show()
        self.message.emit(text, ok)

    async def send(self, form: HomeAgentForm) -> bool:
        """``ConfigureHomeAgent`` on the engine; True when it took the settings (it then restarts)."""
        from ..daemons.engine import EngineCallError
        self._show(_("Sending the home agent settings to the mobility engine (it may ask for a password)…"), None)
        try:
            await self.engine.configure_home_agent(form.addresses, form.home_agent_address, form.identity,
                                                   form.spi, form.key)
        except EngineCallError as e:
            if e.error_name.endswith((".NotAuthorized", ".AccessDenied")):
                text = polkit_refusal(_("Changing the home agent and key of the mobility engine"),
                                      _("edit /etc/mhgui/mn.toml as root, then: sudo systemctl restart mhgui-mn"),
                                      bus_policy=e.error_name.endswith(".AccessDenied"),
                                      dismissed=is_dismissed(str(e)))
            else:
                text = _("The mobility engine did not take the settings: {why}").format(why=e)
            self._show(text, False)
            return False
        finally:
            self._task = None
            self.validate()
        self._show(_("The mobility engine took the settings and restarts with them: it registers with {ha} "
                     "in a moment.").format(ha=form.home_agent_address), True)
        self.sent.emit()
        return True
