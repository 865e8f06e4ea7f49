"""Rebinds asked by a user from another process (``mhctl rebind``), as the privileged helper announces them.

With UMIP a rebind is "rewrite ``MnIfPreference``, restart mip6d" through the helper
(:mod:`mhgui.daemons.umip`). When another process does it, the running app sees only mip6d going away and
coming back through another interface: without more, its failover log would say the daemon moved by
itself. The helper knows better: a write made with ``SetInterfacePreferencesForRebind(prefs, hoa,
interface)`` is a user's rebind, and when the same caller then restarts mip6d the helper emits::

    io.github.mhgui.MHGui.Helper1.RebindRequested(s hoa, s interface, u uid, s caller)

on ``/io/github/mhgui/MHGui/Helper1`` (:mod:`mhgui.helper.service`). :class:`RebindRequestWatcher`
subscribes to it on the system bus and calls ``on_request(RebindRequest)`` for each, so that the failover
service logs the move that follows as the user's (``user_action("user rebind", ...)``, timed from the
announcement; :class:`~mhgui.core.failover.FailoverLog` then gives that entry the move's times).

Trust: anyone may broadcast a signal on the system bus, but only root may own the helper's name (its
D-Bus policy). The match rule names the helper's well-known name as the sender (the bus delivers only what
its owner sent), and each signal's sender is compared with the owner the watcher looked up
(``GetNameOwner``, followed by ``NameOwnerChanged``): anything else is dropped, as is a body that is not
``(s, s, u, s)`` with an IPv6 address and an interface name. ``is_own(caller)`` drops the app's own
rebinds (already logged when the user asked, in the window or the tray).

No bus, or a bus that goes away: the watcher retries with backoff (0.5 s doubling to 10 s) until
:meth:`~RebindRequestWatcher.stop`; it never raises into the app.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import time
from dataclasses import dataclass
from typing import Callable

from dbus_fast import BusType, Message, MessageType
from dbus_fast.aio import MessageBus

__all__ = ["RebindRequest", "RebindRequestWatcher", "parse_request"]

log = logging.getLogger(__name__)

HELPER_NAME = "io.github.mhgui.MHGui.Helper1"
HELPER_PATH = "/io/github/mhgui/MHGui/Helper1"
HELPER_IFACE = "io.github.mhgui.MHGui.Helper1"
SIGNAL = "RebindRequested"
_DBUS = dict(destination="org.freedesktop.DBus", path="/org/freedesktop/DBus", interface="org.freedesktop.DBus")


@dataclass(frozen=True)
class RebindRequest:
    """One announced rebind: ``hoa`` (RFC 5952 text), ``interface``, the asking user's ``uid``, its unique bus
    name ``caller``, and ``at``: when the announcement arrived (seconds on the watcher's clock)."""

    hoa: str
    interface: str
    uid: int
    caller: str
    at: float


def parse_request(body: object, at: float) -> RebindRequest | None:
    """``RebindRequested``'s body → :class:`RebindRequest`; None when it is not what the helper sends."""
    if not isinstance(body, (list, tuple)) or len(body) != 4:
        return None
    hoa, interface, uid, caller = body
    if not (isinstance(hoa, str) and isinstance(interface, str) and isinstance(caller, str)):
        return None
    if isinstance(uid, bool) or not isinstance(uid, int) or not 0 <= uid <= 0xFFFFFFFF:
        return None
    try:
        hoa = ipaddress.IPv6Address(hoa).compressed
    except ValueError:
        return None
    if not 1 <= len(interface.encode("utf-8", "surrogatepass")) <= 15 or not interface.isprintable() \
            or any(c in "/: \"#" for c in interface) or not caller.startswith(":") or len(caller) > 255:
        return None
    return RebindRequest(hoa, interface, uid, caller, at)


class RebindRequestWatcher:
    """Follows the helper's ``RebindRequested`` signals (module docstring). ``bus_address``: the system bus
    (None: ``$DBUS_SYSTEM_BUS_ADDRESS`` or the default); ``on_request(RebindRequest)``: called in the loop;
    ``is_own(caller) -> bool``: the app's own requests, dropped; ``clock``: the model's monotonic clock."""

    def __init__(self, bus_address: str | None, on_request: Callable[[RebindRequest], None], *,
                 is_own: Callable[[str], bool] = lambda caller: False,
                 clock: Callable[[], float] = time.monotonic, backoff_max: float = 10.0) -> None:
        self.bus_address = bus_address
        self.on_request = on_request
        self.is_own = is_own
        self.clock = clock
        self.backoff_max = backoff_max
        self._task: asyncio.Task | None = None
        self._bus: MessageBus | None = None
        self._owner: str | None = None
        #: the subscription is in place (tests wait for it before asking for a rebind)
        self.subscribed = asyncio.Event()

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        bus, self._bus = self._bus, None
        if bus is not None and bus.connected:
            bus.disconnect()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(bus.wait_for_disconnect(), 2.0)

    async def _run(self) -> None:
        delay = 0.5
        while True:
            try:
                bus = self._bus = await MessageBus(bus_address=self.bus_address, bus_type=BusType.SYSTEM).connect()
                bus.add_message_handler(self._on_message)
                for rule in (f"type='signal',sender='{HELPER_NAME}',path='{HELPER_PATH}',interface='{HELPER_IFACE}',"
                             f"member='{SIGNAL}'",
                             "type='signal',sender='org.freedesktop.DBus',interface='org.freedesktop.DBus',"
                             f"member='NameOwnerChanged',arg0='{HELPER_NAME}'"):
                    reply = await bus.call(Message(**_DBUS, member="AddMatch", signature="s", body=[rule]))
                    if reply is None or reply.message_type is MessageType.ERROR:
                        raise ConnectionError(f"AddMatch refused: {reply.body if reply else 'no reply'}")
                reply = await bus.call(Message(**_DBUS, member="GetNameOwner", signature="s", body=[HELPER_NAME]))
                self._owner = (str(reply.body[0]) if reply is not None and reply.message_type is
                               MessageType.METHOD_RETURN and reply.body else None)
                self.subscribed.set()
                delay = 0.5
                await bus.wait_for_disconnect()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - no bus (yet): the app runs on, without this attribution
                log.debug("rebind announcements not followed: %s", e)
            finally:
                self.subscribed.clear()
                self._owner = None
                bus, self._bus = self._bus, None
                if bus is not None and bus.connected:
                    bus.disconnect()
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.backoff_max)

    def _on_message(self, msg: Message) -> None:
        if msg.message_type is not MessageType.SIGNAL:
            return None
        if (msg.member == "NameOwnerChanged" and msg.sender == "org.freedesktop.DBus" and len(msg.body) == 3
                and msg.body[0] == HELPER_NAME):
            self._owner = msg.body[2] or None
            return None
        if msg.member != SIGNAL or msg.interface != HELPER_IFACE or msg.path != HELPER_PATH:
            return None
        if self._owner is None or msg.sender != self._owner:
            log.warning("a RebindRequested signal not from the helper (%s) was ignored", msg.sender)
            return None
        req = parse_request(msg.body if msg.signature == "ssus" else None, self.clock())
        if req is None:
            log.warning("a malformed RebindRequested signal was ignored")
            return None
        if self.is_own(req.caller):
            return None
        try:
            self.on_request(req)
        except Exception:
            log.exception("rebind announcement listener failed")
        return None
