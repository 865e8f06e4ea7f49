"""The main window's messages: the banner (access problems, errors, renames, notes), the daemon's status
over the binding table, the rebind's progress, and successes that are taken down once what they said is
no longer true (stale messages, issue 13.11). Composed by :class:`~mhgui.ui.window.MainWindow` as
``window.messages``; the window's methods of the same names delegate here."""

from __future__ import annotations

from typing import Callable

from PySide6.QtCore import QObject

from ..core.bindings import in_use_fingerprint
from ..core.report import headline
from ..i18n import N_, _
from . import colours

NO_HOA_UMIP = N_("No home address configured, so this node is not a Mobile IPv6 node here. Add an "
                 "<code>MnHomeLink</code> block to mip6d.conf, or a <code>[[home_address]]</code> table to "
                 "{path} (see README).")
NO_HOA_ENGINE = N_("No home address: the mobility engine registers those of its configuration. Add a "
                   "<code>[[home_address]]</code> table to /etc/mhgui/mn.toml (see README).")

SOURCE_ROLES = {
    "networkmanager": N_("device semantics"),
    "netlink": N_("links, addresses, flags, lifetimes"),
}
#: the sources' states (StateStore.sources) as shown
SOURCE_STATES = {"starting": N_("starting"), "running": N_("running"), "absent": N_("absent"),
                 "resyncing": N_("resyncing"), "ok": N_("ok"), "no-access": N_("no-access"),
                 "stopped": N_("stopped"), "failed": N_("failed"), "error": N_("error"), "unknown": N_("unknown"),
                 "present": N_("present"), "missing": N_("missing")}


class WindowMessages(QObject):
    """What the window says of its state, for ``window`` (a :class:`~mhgui.ui.window.MainWindow`: its
    ``banner``, ``headline``, ``bindings_label``, ``rebind_label``, ``no_hoa``, status bar)."""

    def __init__(self, window) -> None:
        super().__init__(window)
        self.w = window
        self.controller = window.controller
        #: the last rebind message's outcome, and the uplinks in use it described (a success is taken down
        #: once they change: a failover, new preferences, another client)
        self._rebind_ok, self._rebind_fp = None, None
        #: a success in the status bar and what it described: (text, describe(), what describe() gave)
        self._status_claim: tuple[str, Callable[[], object], object] | None = None
        self._error: str | None = None

    def _no_hoa_text(self, engine: bool) -> str:
        """Where to add a home address; for UMIP it names the settings file this app reads (``--settings``,
        else ``$XDG_CONFIG_HOME/mhgui/settings.toml``), not a fixed ``~/.config``."""
        if engine:
            return _(NO_HOA_ENGINE)
        import html

        from ..sources.paths import settings_path  # (not ..sources.config: its imports, 7 ms before the first frame)
        return _(NO_HOA_UMIP).format(path=html.escape(self.w.settings_file or str(settings_path())))

    def _on_daemon_status(self, st) -> None:
        w = self.w
        connected = st.reachable
        w.bindings_view.setVisible(connected)
        engine = st.name == "engine"
        w.no_hoa.setText(self._no_hoa_text(engine))
        if connected and engine and self.controller._caps().multiple_coas:
            w.bindings_label.setText(_("mhgui's mobility engine, several care-of addresses: every uplink is "
                                       "registered at once (one BID each, the first row is the default); drag a "
                                       "connection onto an interface to move it alone."))
        elif connected and engine:
            w.bindings_label.setText(_("mhgui's mobility engine (mobile node): each home address has its own "
                                       "uplink, moved at once by a Binding Update (drag a home address onto an "
                                       "interface, or right-click it in the Home addresses table)."))
        elif connected:
            node = {"mn": _("mobile node"), "ha": _("home agent")}.get(st.node or "", st.node or "")
            w.bindings_label.setText(_("UMIP mip6d ({node}) on localhost: the daemon chooses one interface for "
                                       "every home address, by its interface preferences.").format(node=node))
        elif engine:
            w.bindings_label.setText(_("No mobility daemon connected: {daemon} is {state}").format(
                daemon=_("mhgui's mobility engine"), state=st.state) + (f" — {st.error}" if st.error else "") + ".")
        else:  # the app looks for mhgui's engine first: UMIP's terminal is asked when the engine is not there
            w.bindings_label.setText(_("No mobility daemon: mhgui's engine (mhgui-mn) is not running and UMIP's "
                                       "mip6d is {state}").format(state=st.state)
                                     + (f" — {st.error}" if st.error else "") + ".")

    def _on_bindings_changed(self) -> None:
        """A confirmation says where the HoAs are bound: once that changes (a failover, new preferences,
        another client), it no longer describes them, so it goes (stale messages, issue 13.11)."""
        self._expire_messages()

    def _expire_messages(self) -> None:
        if self._rebind_ok is True and in_use_fingerprint(self.controller.in_use()) != self._rebind_fp:
            self._rebind_ok = None
            self.w.rebind_label.hide()
        claim = self._status_claim
        if claim is not None:
            text, describe, then = claim
            bar = self.w.statusBar()
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
        label = self.w.rebind_label
        label.setText(text)
        colours.set_tone(label, {True: "ok", False: "error", "neutral": "neutral"}.get(ok, "info"))
        label.show()

    def set_error(self, text: str | None) -> None:
        """Show (or clear, with None) a problem the user must know about, e.g. a malformed config file."""
        self._error = text
        self._update_banner()

    def _update_banner(self) -> None:
        from ..core.access import banner_lines, problems, taxonomy_is_node
        w = self.w
        store = self.controller.store
        found = w.access_problems() if w.access_problems else problems(store.sources, store.state)
        parts = banner_lines(found)
        if self._error:
            parts.append(self._error)
        parts += self.controller.name_problems()  # a configured name now on another NIC (a rename)
        parts += list(store.notes)
        w._update_rules_access()  # Add… follows what the banner says of the helper
        w.banner.setText("\n".join(parts))
        w.banner.setVisible(bool(parts))
        if self.controller.tax is not None:  # say so when the taxonomy shown is not this node's
            w.headline.setText(("" if taxonomy_is_node(found) else _("Not this node's view: "))
                               + headline(self.controller.tax))

    def show_sources(self) -> None:
        """The sources' states in the status bar (the window's ``sources_label``), details in its tooltip."""
        src = self.controller.store.sources
        parts, tips = [], []
        for name, label in (("networkmanager", "NetworkManager"), ("netlink", "netlink")):
            state, detail = src.get(name, ("starting", ""))
            state = _(SOURCE_STATES[state]) if state in SOURCE_STATES else state
            parts.append(f"{label}: {state}")
            tips.append(f"{label} ({_(SOURCE_ROLES[name])}): {state}" + (f" — {detail}" if detail else ""))
        self.w.sources_label.setText("   ·   ".join(parts) + _("   (hover for details)"))
        self.w.sources_label.setToolTip("\n".join(tips))
