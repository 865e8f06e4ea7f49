"""The top of the window: the node's answer (:func:`mhgui.core.headline.node_headline`) with the one
action that fixes what is wrong, as a button (issue 15.1, 15.3, 15.7).

:func:`answer_of` computes the answer from a :class:`~mhgui.ui.window.LiveController` (state, analysis,
the daemon's bindings, status and, for mhgui's engine, its uplinks' probes). :class:`ActionRunner` runs
an :class:`~mhgui.core.headline.Action`: a rebind, the preferences dialog, the first-run dialog, or a
restart of the mobility daemon through the privileged helper (``RestartEngine`` for mhgui-mn,
``RestartDaemon`` for mip6d), saying what polkit refused and what to do instead.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:  # asyncio loads after the window's first frame (issue 14)
    import asyncio

from PySide6.QtCore import QObject, Signal

from ..core.headline import (
    ACTION_CONFIGURE, ACTION_PREFERENCES, ACTION_REBIND, ACTION_RESTART_DAEMON, ACTION_TRY_LAB, Action, Headline,
    node_headline,
)
from ..i18n import _

log = logging.getLogger(__name__)

__all__ = ["ActionRunner", "TONE", "answer_of", "restart_command", "summary_of", "typed_command"]

#: the colour tone (mhgui.ui.colours) of each headline level
TONE = {"ok": "ok", "info": None, "warning": "warning", "error": "error"}


def answer_of(controller, analysis=None) -> Headline:
    """The node's answer for ``controller`` (a LiveController) and its last analysis."""
    an = analysis if analysis is not None else controller.analysis
    d = controller.daemon
    engine = d is not None and getattr(d, "name", None) == "engine"
    st = controller.store.state
    return node_headline(
        st, an, bindings=d.bindings() if d is not None else (),
        uplinks=d.uplinks() if engine else None,
        daemon=d.status if d is not None else None,
        daemon_configured=bool(st.home_addresses),
        sources=controller.store.sources,
        engine_available=bool(engine and d.status.reachable),
        daemon_seen=d is None or getattr(d, "generation", 1) > 0)  # (never reached: "not running", "Start")


def summary_of(answer: Headline | None, tax: dict) -> str:
    """The window's taxonomy summary line, not contradicting ``answer``: with the home addresses gone with
    a lost (or not running) daemon, the draft's taxonomy counts none and its summary says "Not a Mobile IPv6
    node"; the node is one, and its answer says what is wrong."""
    if answer is not None and answer.mobile and not tax.get("home_addresses"):
        return _("The draft's taxonomy counts no home address now: this node's come from its mobility daemon, "
                 "which does not answer (see above).")
    return tax["summary"]


def restart_command(daemon_name: str | None) -> str:
    """What an administrator runs to restart the daemon by hand: ``mhctl lab restart`` in a lab (its daemons
    are no systemd units), else systemctl (:func:`mhgui.core.action_commands.restart_command`)."""
    import os

    from ..core.action_commands import LAB_PREFIX_ENV, restart_command as command
    return command(daemon_name, os.environ.get(LAB_PREFIX_ENV))


def typed_command(controller, action: Action | None) -> str | None:
    """The command to run instead of ``action``'s button when the app cannot take it: a restart of the
    mobility daemon while the privileged helper is out of reach (the lab has none); None: the button works."""
    from ..core.access import helper_unreachable
    if action is None or action.id != ACTION_RESTART_DAEMON or not helper_unreachable(controller.store.sources):
        return None
    return restart_command(getattr(controller.daemon, "name", None))


class ActionRunner(QObject):
    """Runs the headline's actions for ``window`` (a MainWindow). ``message(text, ok)``: the outcome
    (ok None while under way); ``first_run``: the first-run dialog opened (for tests)."""

    message = Signal(str, object)
    first_run = Signal(object)

    def __init__(self, window, helper_factory: Callable[[], object] | None = None) -> None:
        super().__init__(window)
        self.window = window
        self._helper_factory = helper_factory
        self._tasks: set[asyncio.Task] = set()
        self.dialog = None

    def run(self, action: Action | None) -> None:
        if action is None:
            return
        w = self.window
        if action.id == ACTION_REBIND and len(action.args) == 2:
            w.rebinder.request(action.args[0], action.args[1])
        elif action.id == ACTION_PREFERENCES:
            w.preferences_requested.emit()
        elif action.id in (ACTION_CONFIGURE, ACTION_TRY_LAB):
            self.open_first_run(lab=action.id == ACTION_TRY_LAB)
        elif action.id == ACTION_RESTART_DAEMON:
            if any(not t.done() for t in self._tasks):
                return  # one restart at a time: a double click, or the notification's button as well
            now = answer_of(w.controller)
            if now.action is None or now.action.id != ACTION_RESTART_DAEMON:
                # a stale button (an old "daemon lost" notification, a menu built before it came back): a
                # daemon that answers again is not restarted under the user's feet
                self.message.emit(_("Not restarted: the mobility daemon is no longer lost ({answer})").format(
                    answer=now.text), None)
                return
            import asyncio  # (asyncio loads after the window's first frame, issue 14)
            task = asyncio.ensure_future(self.restart())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def open_first_run(self, lab: bool = False) -> None:
        from .firstrun import FirstRunDialog
        d = self.window.controller.daemon
        engine = d if d is not None and getattr(d, "name", None) == "engine" else None
        if self.dialog is None or not self.dialog.isVisible():
            self.dialog = FirstRunDialog(engine, self.window)
            self.dialog.message.connect(self.message)
        self.dialog.show_page(lab)
        self.dialog.open()  # never exec(): the event loop runs the engine's calls
        self.first_run.emit(self.dialog)

    async def restart(self) -> bool:
        """Restart the mobility daemon through the helper; True when the helper took it."""
        d = self.window.controller.daemon
        name = getattr(d, "name", None)
        what = _("Restarting the mobility daemon")
        cmd = restart_command(name)
        factory = self._helper_factory or self.window.helper_factory
        self.message.emit(_("Restarting the mobility daemon through the mhgui helper…"), None)
        # the helper's client (dbus_fast) loads when first used, not before the window's first frame (issue 14)
        from ..helper.client import HelperAbsent, HelperError, NotAuthorized
        try:
            client = factory()
            async with client as h:
                job = await (h.restart_engine() if name == "engine" else h.restart_daemon())
        except NotAuthorized as e:
            self.message.emit(e.explain(what, cmd), False)
            return False
        except HelperAbsent as e:  # (the bus's own words go to the log, not into the sentence)
            log.info("restart of the mobility daemon: %s", e)
            self.message.emit(_("Cannot restart the mobility daemon from here: the privileged helper ({helper}) "
                                "is not installed. Run it yourself: {command}").format(
                                    helper="io.github.mhgui.MHGui.Helper1", command=cmd), False)
            return False
        except HelperError as e:
            if (e.error_name or "").endswith(".RestartFailed"):  # its message says what to do
                self.message.emit(_("Restarting the mobility daemon failed: {error}").format(error=e), False)
            else:
                self.message.emit(_("Restarting the mobility daemon failed: {error}; try: {command}").format(
                    error=e, command=cmd), False)
            return False
        log.info("restart of the mobility daemon asked (%s)", job)
        self.message.emit(_("Restart asked ({job}); waiting for the mobility daemon to answer…").format(job=job),
                          True)
        return True
