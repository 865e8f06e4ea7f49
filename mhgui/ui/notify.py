"""Desktop notifications: org.freedesktop.Notifications.Notify over the session bus (dbus-fast, async).

:class:`DesktopNotifier` takes :class:`~mhgui.core.notices.Notice` s, lets the
pure :class:`~mhgui.core.notices.NoticeCoalescer` decide when and what to
tell (a burst makes one notification; a rate limit per window), and sends
it with ``app_name`` "mhgui", the tray icon of the state (by icon name inside a Flatpak, as a
file URI elsewhere), and ``replaces_id``
of the previous notification when the coalescer says it replaces it. It runs
on the app's asyncio (qasync) loop and never blocks.

A notice with actions (a lost mobility daemon: "Restart", issue 15.7) is sent with them as buttons;
the server's ``ActionInvoked`` signal for one of our notifications calls :attr:`DesktopNotifier.on_action`
with the action's key (a :data:`mhgui.core.headline.ACTIONS` id); its ``NotificationClosed`` retires
that notification's buttons. Both count only when they come from the current owner of
``org.freedesktop.Notifications`` (followed with ``NameOwnerChanged``): any other program on the
session bus can send a signal with that interface, and must not restart the daemon for the user.

When notifications are switched off (:attr:`DesktopNotifier.enabled`)
notices are dropped. When the notification server cannot be reached (no
session bus, no server, an error reply), that is logged once and never raised
into the GUI; the next notification tries again.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path
from typing import Callable

from ..core.notices import Notice, NoticeCoalescer, Notification

log = logging.getLogger(__name__)

__all__ = ["DesktopNotifier"]

BUS_NAME = "org.freedesktop.Notifications"
PATH = "/org/freedesktop/Notifications"
IFACE = "org.freedesktop.Notifications"
_DBUS = {"destination": "org.freedesktop.DBus", "path": "/org/freedesktop/DBus", "interface": "org.freedesktop.DBus"}


def _default_icon(state: str) -> str:
    """``app_icon`` for a tray state: inside a Flatpak (``$FLATPAK_ID``) the icon-theme name that the
    manifest exports (``io.github.mhgui.MHGui-STATE-light``): the notification server runs on the host,
    where a path inside the sandbox's /app does not exist; elsewhere the package's SVG as a file URI
    (a pip install exports no icon names). "" for an unknown state."""
    from .tray import tray_icon_name, tray_icon_path
    try:
        if os.environ.get("FLATPAK_ID"):
            return tray_icon_name(state, "light")
        return Path(tray_icon_path(state, "light")).as_uri()
    except ValueError:
        return ""


class DesktopNotifier:
    """Sends coalesced notices as desktop notifications (module docstring).

    ``bus_address``: the session bus (None: the environment's);
    ``clock``: monotonic seconds, the coalescer's clock (the asyncio loop's
    timers are armed from it); ``coalescer``: a ready-made one (default: a
    :class:`NoticeCoalescer` on ``clock``); ``icon_for(state)``: the
    ``app_icon`` for a tray state (default :func:`_default_icon`: the exported icon name in a
    Flatpak, else the tray's SVG as a file URI);
    ``expire_ms``: ``expire_timeout`` (-1: the server's default);
    ``desktop_entry``: the ``desktop-entry`` hint.
    """

    def __init__(self, *, bus_address: str | None = None, enabled: bool = True,
                 clock: Callable[[], float] = time.monotonic, coalescer: NoticeCoalescer | None = None,
                 icon_for: Callable[[str], str] = _default_icon, app_name: str = "mhgui",
                 expire_ms: int = -1, desktop_entry: str = "io.github.mhgui.MHGui") -> None:
        self._bus_address = bus_address
        self._enabled = enabled
        self._clock = clock
        self.coalescer = coalescer or NoticeCoalescer(clock)
        self._icon_for = icon_for
        self._app_name = app_name
        self._expire_ms = expire_ms
        self._desktop_entry = desktop_entry
        self._bus = None
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task] = set()
        self._last_id = 0
        self._failure_logged = False
        #: notifications sent, with the id the server gave (for tests and the event log)
        self.sent: list[tuple[int, Notification]] = []
        #: called with an action's key when the user presses a notification's button (None: no buttons sent)
        self.on_action: Callable[[str], None] | None = None
        self._actions_by_id: dict[int, tuple[str, ...]] = {}
        #: the unique bus name of the notification server now (None: not known): signals come only from it
        self._server: str | None = None

    # ---- switch
    @property
    def enabled(self) -> bool:
        return self._enabled

    @enabled.setter
    def enabled(self, on: bool) -> None:
        self._enabled = bool(on)
        if not on:
            self.coalescer.clear()
            self._cancel_timer()

    # ---- input
    def notify(self, notice: Notice) -> None:
        """Tell the user about ``notice`` (coalesced; dropped when switched off). Call from the loop's thread."""
        if not self._enabled:
            return
        self.coalescer.add(notice)
        self._arm()

    async def drain(self) -> None:
        """Wait until nothing is held or being sent (tests, and before quitting)."""
        while self.coalescer.pending or self._tasks:
            if self._tasks:
                await asyncio.gather(*list(self._tasks), return_exceptions=True)
            else:
                await asyncio.sleep(0.02)

    async def close(self) -> None:
        """Stop the timer, wait for sends in flight, close the bus connection."""
        self._cancel_timer()
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        bus, self._bus = self._bus, None
        if bus is not None:
            bus.disconnect()

    # ---- internals
    @staticmethod
    def _loop() -> asyncio.AbstractEventLoop:
        try:
            return asyncio.get_running_loop()
        except RuntimeError:  # a Qt slot between two loop iterations: the app's (qasync) loop
            return asyncio.get_event_loop()  # (the loop qasync set; the policy API is deprecated in 3.14)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _arm(self) -> None:
        self._cancel_timer()
        due = self.coalescer.next_deadline
        if due is None:
            return
        loop = self._loop()
        self._timer = loop.call_later(max(0.0, due - self._clock()), self._due)

    def _due(self) -> None:
        self._timer = None
        n = self.coalescer.poll()
        if n is not None:
            task = self._loop().create_task(self._send(n))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        self._arm()

    async def _connect(self):
        from dbus_fast.aio import MessageBus
        if self._bus is None or not self._bus.connected:
            self._bus = await MessageBus(bus_address=self._bus_address).connect()
            self._server = None  # a new connection: who the server is now is asked again
            await self._watch_actions(self._bus)
        return self._bus

    async def _watch_actions(self, bus) -> None:
        """Hear ``ActionInvoked`` and ``NotificationClosed`` (the Desktop Notifications spec) from the server,
        and follow who the server is (``NameOwnerChanged`` of its name, ``GetNameOwner`` now)."""
        from dbus_fast import Message, MessageType
        bus.add_message_handler(self._on_signal)
        rules = [f"type='signal',sender='{BUS_NAME}',interface='{IFACE}',member='{m}'"
                 for m in ("ActionInvoked", "NotificationClosed")]
        rules.append("type='signal',sender='org.freedesktop.DBus',interface='org.freedesktop.DBus',"
                     f"member='NameOwnerChanged',arg0='{BUS_NAME}'")
        try:
            for rule in rules:
                await bus.call(Message(**_DBUS, member="AddMatch", signature="s", body=[rule]))
            reply = await bus.call(Message(**_DBUS, member="GetNameOwner", signature="s", body=[BUS_NAME]))
            if reply.message_type is MessageType.METHOD_RETURN and reply.body and self._server is None:
                self._server = str(reply.body[0])  # (no owner yet: a server started on demand; Notify's reply)
        except Exception as e:  # no buttons then; notifications still work
            log.debug("cannot watch notification actions: %s", e)

    def _on_signal(self, msg) -> None:
        """A signal on our connection. Only the current owner of org.freedesktop.Notifications speaks for
        the server: anyone on the session bus can send a signal with its interface and member (even to
        our unique name, past every match rule), and must not press "Restart" for the user."""
        from dbus_fast import MessageType
        if msg.message_type is not MessageType.SIGNAL:
            return None
        if msg.member == "NameOwnerChanged" and msg.sender == "org.freedesktop.DBus" \
                and msg.interface == "org.freedesktop.DBus" and len(msg.body) == 3 and msg.body[0] == BUS_NAME:
            new = str(msg.body[2]) or None
            if new != self._server:
                self._server = new
                self._actions_by_id.clear()  # ids are the old server's: none of ours is on screen any more
            return None
        if msg.interface != IFACE or msg.path != PATH or msg.member not in ("ActionInvoked", "NotificationClosed"):
            return None
        if self._server is None or msg.sender != self._server:
            log.info("ignored %s from %s: not the notification server (%s)", msg.member, msg.sender,
                     self._server or "none")
            return None
        if msg.member == "NotificationClosed":
            if msg.signature == "uu":
                self._actions_by_id.pop(msg.body[0], None)  # closed: its buttons can no longer be pressed
            return None
        if msg.signature != "us":
            return None
        nid, key = msg.body
        if key in self._actions_by_id.get(nid, ()) and self.on_action is not None:
            try:
                self.on_action(str(key))
            except Exception:  # a callback's bug must not reach dbus-fast's dispatch
                log.exception("notification action %s failed", key)
        return None

    async def _send(self, n: Notification) -> None:
        from dbus_fast import Message, MessageType, Variant
        try:
            bus = await self._connect()
            actions = [x for key, label in n.actions for x in (key, label)] if self.on_action is not None else []
            hints = {"urgency": Variant("y", n.urgency), "desktop-entry": Variant("s", self._desktop_entry),
                     "category": Variant("s", "network")}
            reply = await bus.call(Message(
                destination=BUS_NAME, path=PATH, interface=IFACE, member="Notify", signature="susssasa{sv}i",
                body=[self._app_name, self._last_id if n.replace else 0, self._icon_for(n.icon_state),
                      n.title, n.body, actions, hints, self._expire_ms]))
            if reply.message_type is MessageType.ERROR:
                raise RuntimeError(f"{reply.error_name}: {reply.body[0] if reply.body else ''}")
            self._last_id = int(reply.body[0])
            if reply.sender and self._server is None:
                self._server = reply.sender  # the bus says who answered: the server, started for this call
            if actions:
                self._actions_by_id[self._last_id] = tuple(key for key, _label in n.actions)
                while len(self._actions_by_id) > 16:  # only the recent notifications can still be clicked
                    del self._actions_by_id[next(iter(self._actions_by_id))]
            self.sent.append((self._last_id, n))
            self._failure_logged = False
        except Exception as e:  # never into the GUI: logged once until it works again
            if self._bus is not None and not self._bus.connected:
                self._bus = None
            if not self._failure_logged:
                self._failure_logged = True
                log.warning("desktop notifications unavailable (%s); not telling: %s", e, n.title)
            else:
                log.debug("notification not sent (%s): %s", e, n.title)
