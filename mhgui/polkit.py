"""Asking polkit whether a D-Bus caller may do something (used by the helper and the engine's control API).

``CheckAuthorization`` of org.freedesktop.PolicyKit1.Authority(5), with the
caller's unique bus name as the subject (``system-bus-name``), so that polkit
looks at the calling process itself and the user may be asked for a password
(``AllowUserInteraction``).
"""

from __future__ import annotations

import asyncio
import contextlib

from dbus_fast import Message, MessageType, Variant
from dbus_fast.aio import MessageBus

__all__ = ["NotAuthorized", "POLKIT_NAME", "caller_uid", "check_authorization"]

POLKIT_NAME = "org.freedesktop.PolicyKit1"
POLKIT_PATH = "/org/freedesktop/PolicyKit1/Authority"
POLKIT_IFACE = "org.freedesktop.PolicyKit1.Authority"
POLKIT_ALLOW_USER_INTERACTION = 1


class NotAuthorized(Exception):
    """polkit said no, could not be asked, or did not answer in time; the message says which, in one line."""


async def check_authorization(bus: MessageBus, sender: str, action: str, member: str, timeout: float) -> None:
    """Return when polkit authorizes ``sender`` (a unique bus name) for ``action``; :class:`NotAuthorized`
    otherwise. ``member``: the method asked for (for the message); ``timeout``: s (a password prompt)."""
    call = Message(
        destination=POLKIT_NAME, path=POLKIT_PATH, interface=POLKIT_IFACE, member="CheckAuthorization",
        signature="(sa{sv})sa{ss}us",
        body=[["system-bus-name", {"name": Variant("s", sender)}], action, {}, POLKIT_ALLOW_USER_INTERACTION, ""],
    )
    try:
        reply = await asyncio.wait_for(bus.call(call), timeout)
    except asyncio.TimeoutError:
        raise NotAuthorized(f"polkit did not answer within {timeout:g} s ({action})") from None
    except Exception as e:  # noqa: BLE001 - the bus went away, polkit is not there...
        raise NotAuthorized(f"cannot ask polkit about {action}: {e}") from None
    if reply is None or reply.message_type is MessageType.ERROR:
        text = reply.body[0] if reply is not None and reply.body and isinstance(reply.body[0], str) else ""
        name = reply.error_name if reply is not None else "no reply"
        raise NotAuthorized(f"cannot ask polkit about {action}: {name}: {text}")
    try:
        authorized, challenge, details = reply.body[0]
    except (TypeError, ValueError, IndexError):
        raise NotAuthorized(f"polkit gave an unexpected answer about {action}") from None
    if not authorized:
        why = "authentication was dismissed" if details.get("polkit.dismissed") else (
            "authentication is required" if challenge else "polkit denied it")
        raise NotAuthorized(f"not authorized to call {member} ({action}): {why}")


async def caller_uid(bus: MessageBus, sender: str) -> str:
    """The uid of the process behind ``sender`` as text, ``"?"`` when the bus does not say (for logs)."""
    with contextlib.suppress(Exception):
        reply = await bus.call(Message(
            destination="org.freedesktop.DBus", path="/org/freedesktop/DBus", interface="org.freedesktop.DBus",
            member="GetConnectionUnixUser", signature="s", body=[sender]))
        if reply is not None and reply.message_type is MessageType.METHOD_RETURN:
            return str(reply.body[0])
    return "?"
