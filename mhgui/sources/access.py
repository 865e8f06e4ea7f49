"""Probes for what this process may see (issue 6, item 2): the sandbox, the system bus, the helper.

:func:`read_sandbox` reads ``/.flatpak-info`` (``$MHGUI_FLATPAK_INFO`` or the
``path`` argument overrides it, for tests). :func:`probe_system_bus` connects
to the system bus once (dbus-fast, non-blocking, every step under one
timeout) and returns two :class:`~mhgui.core.state.SourceStatus` events:

``system-bus``  ``ok``; ``missing`` (no socket at that address: no bus here, or a
                sandbox without system bus access); ``refused`` (the bus rejected
                the connection: authentication or policy); ``unreachable``
                (anything else: bad address, nobody listening, timeout).
``helper``      ``present`` (its name is owned or activatable, and a
                ``Peer.Ping`` passed the bus policy); ``absent`` (neither owned nor
                activatable, or its activation failed); ``denied`` (the bus policy
                refused the call: ``AccessDenied``); ``unknown`` (no answer in time,
                or the bus was not reachable).

The ping goes to ``org.freedesktop.DBus.Peer``, which the helper's policy allows
to the same callers as its own interface. When the helper is only activatable,
the ping starts it, as the first real call would: dbus-daemon checks the policy
before it activates anything, so a caller it refuses starts nothing.

Nothing here raises: every failure becomes a status with a one-line detail.
"""

from __future__ import annotations

import asyncio
import logging

from dbus_fast import AuthError, BusType, Message, MessageFlag, MessageType
from dbus_fast.aio import MessageBus

from ..core.access import HELPER, HELPER_NAME, SYSTEM_BUS
from ..core.state import SourceStatus
from ..i18n import _
# no D-Bus there: shared with the fast `mhctl status` path, re-exported here
from .sandbox import FLATPAK_INFO, FLATPAK_INFO_ENV, flatpak_info_path, read_sandbox, system_bus_address  # noqa: F401

log = logging.getLogger(__name__)

HELPER_PATH = "/io/github/mhgui/MHGui/Helper1"
DEFAULT_TIMEOUT = 3.0

_DBUS = dict(destination="org.freedesktop.DBus", path="/org/freedesktop/DBus", interface="org.freedesktop.DBus")
_ABSENT_ERRORS = frozenset({"org.freedesktop.DBus.Error.ServiceUnknown", "org.freedesktop.DBus.Error.NameHasNoOwner"})


async def _call(bus: MessageBus, msg: Message) -> Message:
    reply = await bus.call(msg)
    if reply is None:
        raise ConnectionError("no reply")
    return reply


async def _probe_helper(bus: MessageBus) -> SourceStatus:
    owned = await _call(bus, Message(**_DBUS, member="NameHasOwner", signature="s", body=[HELPER_NAME]))
    names = await _call(bus, Message(**_DBUS, member="ListActivatableNames"))
    for r in (owned, names):
        if r.message_type is MessageType.ERROR:
            return SourceStatus(HELPER, "unknown", f"the bus answered {r.error_name}")
    has_owner = bool(owned.body and owned.body[0] is True)
    activatable = bool(names.body) and HELPER_NAME in names.body[0]
    if not has_owner and not activatable:
        return SourceStatus(HELPER, "absent", _("nobody owns io.github.mhgui.MHGui.Helper1 and no service file "
                                                "makes it activatable"))
    ping = Message(destination=HELPER_NAME, path=HELPER_PATH, interface="org.freedesktop.DBus.Peer", member="Ping",
                   flags=MessageFlag.NO_AUTOSTART if has_owner else MessageFlag.NONE)
    reply = await _call(bus, ping)
    if reply.message_type is not MessageType.ERROR:
        return SourceStatus(HELPER, "present", "running" if has_owner else "started on demand")
    name = reply.error_name or "?"
    text = reply.body[0] if reply.body and isinstance(reply.body[0], str) else ""
    if name == "org.freedesktop.DBus.Error.AccessDenied":
        return SourceStatus(HELPER, "denied", f"{name}")
    if name in _ABSENT_ERRORS or name.startswith("org.freedesktop.DBus.Error.Spawn."):
        return SourceStatus(HELPER, "absent", f"its activation failed: {name}: {text}".rstrip(": "))
    return SourceStatus(HELPER, "unknown", f"{name}: {text}".rstrip(": "))


async def probe_system_bus(bus_address: str | None = None, *,
                           timeout: float = DEFAULT_TIMEOUT) -> tuple[SourceStatus, SourceStatus]:
    """Connect to the system bus (``bus_address``: None → ``$DBUS_SYSTEM_BUS_ADDRESS`` or the default),
    look for the helper; returns the ``system-bus`` and ``helper`` statuses. Never raises (but cancellation)."""
    where = system_bus_address(bus_address)
    unknown = SourceStatus(HELPER, "unknown", "the system bus is not reachable")
    bus: MessageBus | None = None
    try:
        async with asyncio.timeout(timeout):
            bus = MessageBus(bus_address=bus_address, bus_type=BusType.SYSTEM)
            await bus.connect()
    except FileNotFoundError:
        return SourceStatus(SYSTEM_BUS, "missing", f"{where} does not exist"), unknown
    except (PermissionError, AuthError) as e:
        return SourceStatus(SYSTEM_BUS, "refused", f"{where}: {type(e).__name__}: {e}"), unknown
    except TimeoutError:
        await _close(bus)
        return SourceStatus(SYSTEM_BUS, "unreachable", f"{where} did not answer within {timeout:g} s"), unknown
    except asyncio.CancelledError:
        await asyncio.shield(_close(bus))
        raise
    except Exception as e:  # a malformed address, nobody listening, the bus hung up on us
        await _close(bus)
        # dbus-daemon hangs up after authentication when its policy refuses the user (<deny user=...>)
        if isinstance(e, (EOFError, BrokenPipeError, ConnectionResetError)) or "EOF" in str(e):
            return SourceStatus(SYSTEM_BUS, "refused", f"{where} closed the connection (its policy refused "
                                                       "this user?)"), unknown
        return SourceStatus(SYSTEM_BUS, "unreachable", f"{where}: {type(e).__name__}: {e}"), unknown
    bus_ok = SourceStatus(SYSTEM_BUS, "ok", "")
    try:
        async with asyncio.timeout(timeout):
            helper = await _probe_helper(bus)
    except TimeoutError:
        helper = SourceStatus(HELPER, "unknown", f"no answer within {timeout:g} s")
    except asyncio.CancelledError:
        raise
    except Exception as e:
        helper = SourceStatus(HELPER, "unknown", f"{type(e).__name__}: {e}")
    finally:
        await _close(bus)
    log.debug("access probe: %s, %s", bus_ok, helper)
    return bus_ok, helper


async def _close(bus: MessageBus | None) -> None:
    """Disconnect and wait (bounded) until the socket is closed."""
    if bus is None or not bus.connected:  # a failed connect() has closed its socket itself
        return
    try:
        bus.disconnect()
        async with asyncio.timeout(2.0):
            await bus.wait_for_disconnect()
    except (Exception, TimeoutError):  # already gone, or it ended with an error: either way closed
        pass


__all__ = ["read_sandbox", "probe_system_bus", "flatpak_info_path", "FLATPAK_INFO", "FLATPAK_INFO_ENV"]
