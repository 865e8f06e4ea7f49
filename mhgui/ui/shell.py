"""The running app: runtime, window, failover, preferences, tray and notifications, wired together.

Data flows one way: sources → :class:`~mhgui.runtime.Runtime`'s store →
:class:`~mhgui.failover_service.FailoverService` (policy → steering fallback
through the helper; the daemon's own moves measured) → events → the window's
Failover tab, the tray (:class:`~mhgui.ui.tray.TrayController`) and desktop
notifications (:class:`~mhgui.ui.notify.DesktopNotifier`).

Preferences (issue 5): loaded from ``$XDG_CONFIG_HOME/mhgui/failover.toml``
(:mod:`mhgui.sources.prefs_store`); without that file, the order is the
daemon's ``MnIfPreference`` order from mip6d.conf, else every access
interface present (re-derived when interfaces come and go, until the user
saves an order). Applying the dialog (or "Prefer" in the tray) saves the
file; when the ``MnIfPreference`` values change and the daemon cannot rebind
at run time (UMIP), they are written through the helper and the daemon is
restarted, as the dialog said before it was applied.

With mhgui's mobility engine (the driver named ``"engine"``) the dialog edits the
engine's own per-HoA preferences (sent by the dialog, no restart); the file keeps
hold-up and notifications (and an order saved earlier). The tray's "Prefer" items
then each move one home address: :meth:`AppShell.rebind_hoa` plans and runs the
engine's rebind at once. The window and notifications name "the mobility engine",
not mip6d.

Who did it (issue 13.10): a rebind from the window or the tray, and new preferences, are
logged in the failover log as the user's (:meth:`~mhgui.failover_service.FailoverService.user_action`),
timed from the request; the daemon's move they cause fills in the times. A rebind from the
window with UMIP rewrites ``MnIfPreference`` (the interface first): the app's order follows
(saved, as the tray's "Prefer" does), so that the preferences dialog shows the order in use.
``MnIfPreference`` values are checked before they are written
(:func:`~mhgui.core.mip6conf.preference_order_problem`: no tie, no gap), against the file as it
is now. A success in the status bar goes once what it said changes (:meth:`MainWindow.note_status`).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Callable

from PySide6.QtCore import QObject, Signal

from ..i18n import N_, _
from ..core import mip6conf, notices
from ..core.bindings import in_use_text, uplinks_in_use
from ..core.engineprefs import hoa_uplinks
from ..core.failover import Preferences, usable_interfaces
from ..core.prefsfile import (
    FailoverSettings, entries_to_prefs, live_interface_rows, merge_interfaces, mnif_changes, restart_needed,
)
from ..core.trayview import build_tray_view, preferring
from ..daemons.base import plan_when_ready
from ..failover_service import (
    DaemonBack, DaemonLost, Decided, FailoverDone, FailoverFailed, FailoverService, LinkLost,
)
from ..helper.client import HelperAbsent, HelperClient
from ..sources import prefs_store
from ..sources.config import default_mip6d_conf
from ..sources.journal import FailoverJournal, past_entries, read_journal
from .header import answer_of

log = logging.getLogger(__name__)

__all__ = ["AppShell", "RESTART_QUIET"]

#: seconds after a restart of the daemon that mhgui asked for, during which its absence is not notified
RESTART_QUIET = 10.0
#: how the user is told about each daemon
ENGINE_NAME = N_("the mobility engine")


class AppShell(QObject):
    """Everything the app is while it runs (module docstring).

    ``rt``: a :class:`~mhgui.runtime.Runtime` (not started); ``win``: its
    :class:`~mhgui.ui.window.MainWindow`; ``quit()``: ends the app;
    ``system_bus``: the helper's bus address; ``session_bus``: where the tray
    host and the notification server are (None: the environment's);
    ``tray``: False to run without a tray icon; ``journal``: where failovers
    are kept (None: the default file); ``prefs_path``: the preferences file.
    """

    #: a line for the user about failover settings being applied (text, ok: bool | None)
    message = Signal(str, object)

    def __init__(self, rt, win, quit: Callable[[], None], *, system_bus: str | None = None,
                 session_bus: str | None = None, tray: bool = True, journal: FailoverJournal | None = None,
                 prefs_path: str | None = None, mip6d_conf: str | None = None) -> None:
        super().__init__(win)
        self.rt = rt
        self.win = win
        self._quit = quit
        self.system_bus = system_bus
        self.session_bus = session_bus
        self.prefs_path = prefs_path
        self.mip6d_conf = mip6d_conf or default_mip6d_conf()
        self.journal = journal if journal is not None else FailoverJournal()
        self.settings: FailoverSettings | None = None  # None: no saved preferences (derived order)
        #: failover.toml without an order (the engine's dialog saves only hold-up and notifications): their source
        self._file_settings: FailoverSettings | None = None
        self.notifications = True
        self._current_mnif: dict[str, int] | None = None
        self._fallback_client: HelperClient | None = None
        self._helper_absent_logged = False
        self._tasks: set[asyncio.Task] = set()
        self._quiet_until = float("-inf")  # no "daemon lost" notification before (our own restart)
        self._rebind_entry = None  # the log entry of the window's rebind under way (the user's)
        self.svc = FailoverService(rt.store, rt.clock, rt.analysis, Preferences(()), daemon=rt.daemon,
                                   steering=self._set_fallback, journal=self.journal)
        self.tray = None
        self._want_tray = tray
        self.notifier = None
        self.page = None

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Load the preferences, start failover, the tray and notifications (after ``rt.start()``)."""
        from .failover_view import FailoverPage
        from .notify import DesktopNotifier

        loaded = await prefs_store.load_prefs_async(self.prefs_path)
        for p in loaded.problems:
            self.message.emit(_("Preferences: {problem}").format(problem=p), False)
        self._current_mnif = await self._read_mnif()
        if loaded.settings is not None and loaded.settings.prefs.order:
            self.settings = loaded.settings
            self.notifications = loaded.settings.notifications
            self.svc.policy.set_preferences(loaded.settings.prefs)
        else:
            if loaded.settings is not None:  # hold-up and notifications without an order: still the user's
                self._file_settings = loaded.settings
                self.notifications = loaded.settings.notifications
            self.svc.policy.set_preferences(self._derived_prefs())
            self.rt.store.subscribe(self._maybe_rederive)
        self._refresh_names()
        self.win.controller.config_names = self._config_names
        self.win.controller.refreshed.connect(lambda *a: self._refresh_names())
        rebinder = getattr(self.win, "rebinder", None)
        if rebinder is not None:  # the window's own rebinds are the user's: logged as theirs
            rebinder.started.connect(self._window_rebind_started)
            rebinder.finished.connect(self._window_rebind_finished)
        self.svc.start()
        if getattr(self.rt.daemon, "name", None) == "umip":  # another process's rebinds (mhctl): the user's too
            from ..sources.rebind_requests import RebindRequestWatcher
            self.rebind_requests = RebindRequestWatcher(self.system_bus, self._remote_rebind,
                                                        is_own=self._own_caller, clock=self.rt.clock)
            self.rebind_requests.start()
        self.page = FailoverPage(self.svc, parent=self.win)
        self.win.tabs.addTab(self.page, _("Failover"))
        self._spawn(self._load_history())
        self.notifier = DesktopNotifier(bus_address=self.session_bus, enabled=self.notifications)
        self.notifier.on_action = self._notification_action  # "Restart" on "Mobility daemon lost" (issue 15.7)
        self.svc.subscribe(self._on_failover)
        self.win.preferences_requested.connect(self.show_preferences)
        self.win.quit_requested.connect(self._quit)
        if self._want_tray:
            from .tray import TrayController
            self.tray = TrayController(self.tray_view, on_prefer=self.prefer, on_rebind=self.rebind_hoa,
                                       on_open=self.show_window, on_toggle=self.toggle_window, on_quit=self._quit,
                                       on_action=getattr(getattr(self.win, "actions", None), "run", None),
                                       bus_address=self.session_bus, parent=self)
            await self.tray.start()
            self.win.close_to_tray = self.tray.keeps_running_on_close
            self.win.controller.refreshed.connect(lambda *a: self.tray.refresh())

    async def stop(self) -> None:
        if getattr(self, "rebind_requests", None) is not None:
            await self.rebind_requests.stop()
        await self.svc.stop()
        if self.page is not None:
            self.page.close_page()
        if self.tray is not None:
            await self.tray.stop()
        if self.notifier is not None:
            await self.notifier.close()
        if self._fallback_client is not None:
            await self._fallback_client.close()
        await asyncio.get_running_loop().run_in_executor(None, self.journal.close)

    async def _load_history(self) -> None:
        """Earlier runs' failovers from the journal, in the Failover tab (read in an executor)."""
        got = await asyncio.get_running_loop().run_in_executor(None, read_journal, self.journal.path)
        if got.error:
            self.message.emit(_("Failover history not shown: {why}").format(why=got.error), False)
            return
        self.svc.note_wall()  # journal wall times onto this run's clock, with the offset now (the start)
        past = past_entries(got.entries, self.svc.walls.mono_of, skip_session=self.journal.session)
        if self.page is not None:
            self.page.model.add_past(past)

    def _spawn(self, coro) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _tell(self, text: str, ok, describe=None) -> None:
        """``message``, and for a success, what it describes (``describe()``; default the uplinks in use): the
        window takes it down once that changes (stale messages, issue 13.11)."""
        self.message.emit(text, ok)
        if ok is True and hasattr(self.win, "note_status"):
            self.win.note_status(text, describe)

    def _prefs_now(self):
        return (self.svc.policy.prefs, tuple(sorted((self._current_mnif or {}).items())))

    # ------------------------------------------------------------------ names (renamed interfaces)
    def _config_names(self) -> dict[str, str]:
        """mip6d.conf's interfaces (``{name: "mip6d.conf"}``) when UMIP is the daemon (with the engine, its
        own lists are the window's; mip6d.conf is not used)."""
        if self.engine() is not None:
            return {}
        return {n: "mip6d.conf" for n in (self._current_mnif or {})}

    def _refresh_names(self) -> None:
        """The failover log flags the names the daemon's configuration uses: the window's list of them."""
        self.svc.set_config_names(self.win.controller.all_config_names()
                                  if hasattr(self.win.controller, "all_config_names") else self._config_names())

    # ------------------------------------------------------------------ the user's rebinds from the window
    def _window_rebind_started(self, plan, requested_at: float) -> None:
        self._rebind_entry = self.svc.user_action("user rebind", plan.interface, tuple(plan.moves or (plan.hoa,)),
                                                  requested_at, from_interface=self._in_use_of(plan.hoa))
        if getattr(plan, "restart_required", False):
            self._quiet_until = float("inf")  # mip6d going away now is this restart, not news

    async def _read_mnif(self) -> dict[str, int] | None:
        """mip6d.conf's MnIfPreference values now: inside a Flatpak sandbox (no file given), where the host's
        /etc is not visible, through the helper (:func:`~mhgui.sources.daemon_prefs.read_mnif`)."""
        from ..sources.daemon_prefs import read_mnif
        sandboxed = getattr(getattr(self.rt, "sandbox", None), "flatpak", False)
        return await read_mnif(self.mip6d_conf, system_bus=self.system_bus,
                               via_helper=bool(sandboxed) and getattr(self.rt, "mip6d_conf", None) is None)

    def _remote_rebind(self, req) -> None:
        """The helper announced a rebind another process asked for (``mhctl rebind``; a
        :class:`~mhgui.sources.rebind_requests.RebindRequest`): logged as the user's, timed from now; UMIP moves
        every home address. mip6d going away for it is not news either."""
        d = self.rt.daemon
        hoas = tuple(dict.fromkeys((req.hoa, *uplinks_in_use(d.bindings(), self.rt.store.state))))
        self.svc.user_action("user rebind", req.interface, hoas, req.at, from_interface=self._in_use_of(req.hoa))
        self._quiet_until = max(self._quiet_until, self.rt.clock() + RESTART_QUIET)

    def _own_caller(self, caller: str) -> bool:
        """Whether ``caller`` is this app's own connection to the helper (its rebinds are logged when asked)."""
        client = getattr(getattr(self.rt.daemon, "config_writer", None), "client", None)
        return caller == getattr(client, "unique_name", None)

    def _window_rebind_finished(self, plan, result) -> None:
        entry, self._rebind_entry = self._rebind_entry, None
        if getattr(plan, "restart_required", False):
            self._quiet_until = self.rt.clock() + RESTART_QUIET
        if result is None or not result.confirmed:
            if entry is not None:
                self.svc.user_failed(entry, (result.reason if result is not None else None) or "the rebind failed")
            return
        if plan.preferences_after:  # UMIP: MnIfPreference now puts the interface first; the app's order follows
            self._current_mnif = dict(self._current_mnif or {}, **dict(plan.preferences_after))
            self._spawn(self._follow_rebind(plan.interface, entry.trigger_time if entry is not None else None))

    async def _follow_rebind(self, ifname: str, requested_at: float | None) -> None:
        """After a rebind from the window that rewrote MnIfPreference: the app's order puts ``ifname`` first
        too (saved when there is a saved order), so that the dialog and the policy show the order in use."""
        if self.settings is None:
            self.svc.set_preferences(self._derived_prefs(), requested_at)
            return
        new = preferring(self.settings.prefs, ifname)
        settings = FailoverSettings(prefs=new, notifications=self.settings.notifications, extra=self.settings.extra,
                                    interface_extra=self.settings.interface_extra)
        try:
            await prefs_store.save_prefs_async(settings, self.prefs_path)
        except prefs_store.PrefsStoreError as e:
            self.message.emit(_("Preferences not saved: {why}").format(why=e), False)
        self.settings = settings
        self.svc.set_preferences(new, requested_at)

    def _in_use_of(self, hoa: str) -> str | None:
        d = self.rt.daemon
        u = uplinks_in_use(d.bindings(), self.rt.store.state).get(hoa) if d is not None else None
        return u.interface if u is not None else None

    # ------------------------------------------------------------------ preferences
    def engine(self):
        """The engine's driver when it is the mobility daemon, else None."""
        d = self.rt.daemon
        return d if d is not None and getattr(d, "name", None) == "engine" else None

    def daemon_name(self) -> str:
        """The mobility daemon as the user is told about it."""
        return _(ENGINE_NAME) if self.engine() is not None else "mip6d"

    def _derived_prefs(self) -> Preferences:
        st = self.rt.store.state
        rows = live_interface_rows(st, self.rt.analysis())
        entries = merge_interfaces(rows, None, self._current_mnif)
        base = self.settings.prefs if self.settings is not None else \
            self._file_settings.prefs if self._file_settings is not None else None
        return entries_to_prefs([(e.name, e.mark) for e in entries], base)

    def _maybe_rederive(self, changes) -> None:
        if self.settings is not None:
            return
        if any(c.kind in ("link-added", "link-removed") for c in changes):
            self.svc.set_preferences(self._derived_prefs(), by_user=False)  # interfaces came or went

    def show_preferences(self) -> None:
        self._spawn(self._open_preferences())

    async def _open_preferences(self):
        from .preferences import open_preferences

        # the order in use: mip6d.conf as it is now (a rebind, mhctl or an editor may have changed it)
        fresh = await self._read_mnif()
        if fresh is not None:
            self._current_mnif = fresh
        rows = live_interface_rows(self.rt.store.state, self.rt.analysis())
        engine = self.engine()
        dlg = await open_preferences(rows, capabilities=self.rt.caps, current_mnif=self._current_mnif,
                                     mip6d_conf=self.mip6d_conf, path=self.prefs_path, driver=engine, parent=self.win)
        if engine is not None:  # the dialog sent the engine its lists; the file has hold-up and notifications
            dlg.applied.connect(lambda prefs, notify, restart, d=dlg:
                                self._spawn(self.apply(prefs, notify, {}, settings=d.saved)))
        else:
            dlg.applied.connect(lambda prefs, notify, restart, d=dlg:
                                self._spawn(self.apply(prefs, notify, dict(d.applied_mnif or {}) if restart else {})))
        self.dialog = dlg
        return dlg

    def prefer(self, ifname: str) -> None:
        """The tray's "Prefer IFNAME": that interface first, saved, and sent to the daemon when needed."""
        self._spawn(self._prefer(ifname))

    async def _prefer(self, ifname: str) -> None:
        new = preferring(self.svc.policy.prefs, ifname)
        settings = FailoverSettings(prefs=new, notifications=self.notifications) if self.settings is None else \
            FailoverSettings(prefs=new, notifications=self.settings.notifications, extra=self.settings.extra,
                             interface_extra=self.settings.interface_extra)
        try:
            await prefs_store.save_prefs_async(settings, self.prefs_path)
        except prefs_store.PrefsStoreError as e:
            self.message.emit(_("Preferences not saved: {why}").format(why=e), False)
            return
        # only a configured daemon with home addresses gets new MnIfPreference values (what the tray says)
        daemon = self.rt.daemon is not None and bool(self.rt.store.state.home_addresses)
        changes = mnif_changes(None, new, self._current_mnif or {}) \
            if daemon and restart_needed(None, new, self.rt.caps, self._current_mnif or {}) else {}
        await self.apply(new, settings.notifications, changes, settings=settings)

    def rebind_hoa(self, hoa: str, ifname: str) -> None:
        """The tray's "Prefer IFNAME" for one home address (the engine): only that HoA moves, at once."""
        self._spawn(self._rebind_hoa(hoa, ifname))

    async def _rebind_hoa(self, hoa: str, ifname: str):
        """Plan and run the engine's rebind of ``hoa`` through ``ifname``; says how it went (``message``).
        Returns the :class:`~mhgui.daemons.base.RebindResult` (None when refused before asking)."""
        d = self.rt.daemon
        if d is None:
            self.message.emit(_("No mobility daemon: nothing to rebind."), False)
            return None
        entry = self.svc.user_action("user rebind", ifname, (hoa,), from_interface=self._in_use_of(hoa))
        self.message.emit(_("Binding {hoa} through {interface} ({daemon}, no restart)…").format(
            hoa=hoa, interface=ifname, daemon=self.daemon_name()), None)
        try:
            # (waits while the interface's only care-of address is tentative)
            plan = await plan_when_ready(d, hoa, ifname, lambda: (self.rt.store.state, self.rt.analysis()),
                                         on_wait=lambda why: self.message.emit(
                                             _("Waiting before binding {hoa} through {interface}: {why}").format(
                                                 hoa=hoa, interface=ifname, why=why), None))
            if not plan.allowed:
                self.message.emit(_("Cannot bind {hoa} through {interface}: {why}").format(
                    hoa=hoa, interface=ifname, why=plan.refusal), False)
                self.svc.user_failed(entry, plan.refusal or "refused")
                return None
            result = await d.rebind(plan)
        except Exception as e:  # a driver failure is a message, not a crash
            self.message.emit(_("Rebind failed: {why}").format(why=e), False)
            self.svc.user_failed(entry, str(e))
            return None
        if result.confirmed:
            # said from the one source of truth: the daemon's bindings, resolved by ifindex
            where = in_use_text(uplinks_in_use(d.bindings(), self.rt.store.state), (hoa,), now=True)
            self._tell(_("Confirmed in {ms} ms: {where}.").format(ms=f"{result.elapsed_ms:.0f}", where=where), True)
        else:
            self.message.emit(_("Rebind of {hoa} through {interface} failed: {why}").format(
                hoa=hoa, interface=ifname, why=result.reason), False)
            self.svc.user_failed(entry, result.reason or "not confirmed")
        if self.tray is not None:
            self.tray.refresh()
        return result

    async def apply(self, prefs: Preferences, notify: bool, mnif: dict[str, int],
                    settings: FailoverSettings | None = None) -> bool:
        """Use ``prefs`` now; with ``mnif`` (``{iface: MnIfPreference}``), write them through the helper
        and restart the daemon. True when everything was applied.

        The values written are worked out again against mip6d.conf as it is now, and refused (nothing
        written, the message says why) when the file would then rank its interfaces with a tie or a gap
        (:func:`~mhgui.core.mip6conf.preference_order_problem`)."""
        requested_at = self.rt.clock()
        if mnif:
            fresh = await self._read_mnif()
            if fresh is not None:
                self._current_mnif = fresh
                mnif = mnif_changes(None, prefs, fresh)
            merged = dict(self._current_mnif or {}, **mnif)
            problem = mip6conf.preference_order_problem(merged)
            if problem is not None:
                self.message.emit(_("MnIfPreference not written: {why}").format(why=problem), False)
                return False
        if settings is not None and not settings.prefs.order:
            # hold-up and notifications only (the engine's dialog, no order saved): the order stays derived
            self._file_settings, self.settings = settings, None
            prefs = self._derived_prefs()
        else:
            self.settings = settings or FailoverSettings(prefs=prefs, notifications=notify)
        self.notifications = notify
        if self.notifier is not None:
            self.notifier.enabled = notify
        entry = self._expect_move(prefs, requested_at) if mnif else None
        self.svc.set_preferences(prefs, requested_at)
        if self.tray is not None:
            self.tray.refresh()
        if not mnif:
            self._tell(_("Preferences applied."), True, self._prefs_now)
            return True
        self.message.emit(_("Writing MnIfPreference to mip6d.conf and restarting mip6d…"), None)
        # the daemon going away now is our restart, not news for a notification
        self._quiet_until = float("inf")
        try:
            async with HelperClient(self.system_bus) as h:
                await h.set_interface_preferences(mnif)
                await h.restart_daemon()
        except Exception as e:
            self.message.emit(_("MnIfPreference not applied: {why}").format(why=e), False)
            if entry is not None:
                self.svc.user_failed(entry, str(e))
            return False
        finally:
            self._quiet_until = self.rt.clock() + RESTART_QUIET
        self._current_mnif = dict(self._current_mnif or {}, **mnif)
        self._tell(_("MnIfPreference written to mip6d.conf; mip6d restarted."), True, self._prefs_now)
        return True

    def _expect_move(self, prefs: Preferences, requested_at: float):
        """New MnIfPreference values make UMIP move when their first usable interface is not the one in use:
        the user's entry in the log, made now, gets the move's times. None when nothing should move."""
        st = self.rt.store.state
        usable = usable_interfaces(st, self.rt.analysis(), require_router=prefs.require_router)
        to = next((n for n in prefs.ranking if n in usable), None)
        d = self.rt.daemon
        uses = uplinks_in_use(d.bindings(), st) if d is not None else {}
        if to is None or not uses or all(u.interface == to for u in uses.values()):
            return None
        return self.svc.user_action("preferences", to, tuple(uses), requested_at,
                                    from_interface=next(iter(uses.values())).interface)

    # ------------------------------------------------------------------ steering fallback (helper)
    async def _set_fallback(self, fallback) -> bool:
        """The service's steering setter: True when a rule actually moved (or came back)."""
        if self._fallback_client is None:
            self._fallback_client = HelperClient(self.system_bus)
        try:
            rules = await self._fallback_client.list_steering_rules()
            if not rules and not fallback:
                return False
            await self._fallback_client.set_steering_fallback(dict(fallback))
        except HelperAbsent as e:
            if not self._helper_absent_logged:
                self._helper_absent_logged = True
                log.info("no steering fallback: %s", e)
            return False
        return any(r.get("interface") in fallback for r in rules) or not fallback and bool(rules)

    # ------------------------------------------------------------------ tray, window, notifications
    def tray_view(self):
        st = self.rt.store.state
        d = self.rt.daemon
        rules = ()  # (which steering rules follow a "Prefer": not known without asking the helper)
        engine = self.engine()
        return build_tray_view(
            st, self.rt.analysis(), prefs=self.svc.policy.prefs, policy_current=self.svc.policy.current,
            bindings=d.bindings() if d is not None else (), caps=self.rt.caps, daemon_name=self.daemon_name(),
            daemon_configured=d is not None and bool(st.home_addresses),
            daemon_reachable=bool(d is not None and d.status.reachable), following_rules=rules,
            failed_over=self.svc.policy.failed_over(),
            hoa_uplinks=hoa_uplinks(engine.raw_bindings()) if engine is not None else None,
            answer=answer_of(self.win.controller, self.rt.analysis()) if hasattr(self.win, "controller") else None)

    def show_window(self) -> None:
        self.win.showNormal()
        self.win.raise_()
        self.win.activateWindow()

    def toggle_window(self) -> None:
        if self.win.isVisible() and self.win.isActiveWindow():
            self.win.hide()
        else:
            self.show_window()

    def _notification_action(self, key: str) -> None:
        """A notification's button: run it as the window's headline action (and show the window, where the
        outcome is said)."""
        from ..core.headline import ACTION_RESTART_DAEMON, Action
        from ..i18n import _
        actions = getattr(self.win, "actions", None)
        if key == ACTION_RESTART_DAEMON and actions is not None:
            self.show_window()
            actions.run(Action(ACTION_RESTART_DAEMON, _("Restart the mobility daemon")))

    def _on_failover(self, ev) -> None:
        n = self.notifier
        if isinstance(ev, LinkLost):
            n.notify(notices.link_lost(ev.interface, ev.reason))
        elif isinstance(ev, FailoverDone):
            p = self.svc.policy.prefs
            to = ev.entry.to_interface or "?"
            n.notify(notices.failover_done(
                ev.entry.from_interface, to, None if ev.took is None else ev.took * 1000, ev.entry.hoas,
                on_backup=to in p.backup or (bool(p.order) and to != p.order[0]),
                late_ms=None if ev.late is None else ev.late * 1000))
        elif isinstance(ev, FailoverFailed):
            n.notify(notices.failover_failed(ev.interface, ev.message))
        elif isinstance(ev, DaemonLost):
            if self.rt.clock() >= self._quiet_until:
                self._told_lost = True
                n.notify(notices.daemon_lost(self.daemon_name(), ev.message))
        elif isinstance(ev, DaemonBack):
            if getattr(self, "_told_lost", False):  # only a loss the user was told of is followed by "back"
                self._told_lost = False
                n.notify(notices.daemon_back(self.daemon_name(), ev.gone))
        if self.tray is not None and not isinstance(ev, Decided):
            self.tray.refresh()

