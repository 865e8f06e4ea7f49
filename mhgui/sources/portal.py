"""The XDG Background portal over the session bus (dbus-fast, asyncio): start at login inside a Flatpak.

A sandboxed app cannot write ``~/.config/autostart``; it asks the portal
(``org.freedesktop.portal.Desktop`` at ``/org/freedesktop/portal/desktop``, interface
``org.freedesktop.portal.Background``, method ``RequestBackground(s parent_window, a{sv} options)
-> o handle``). Options used: ``handle_token`` (s), ``reason`` (s), ``autostart`` (b),
``commandline`` (as), ``dbus-activatable`` (b). The answer comes as the ``Response(u response,
a{sv} results)`` signal of ``org.freedesktop.portal.Request`` at the handle (response 0: success, 1:
cancelled by the user, 2: other; results ``background`` (b) and ``autostart`` (b)). As the portal
documentation says, the client subscribes to the handle it expects
(``/org/freedesktop/portal/desktop/request/SENDER/TOKEN``, SENDER the caller's unique name without
the leading ``:`` and with ``.`` as ``_``) before calling, so a quick answer is not missed.
Only a ``Response`` sent by the portal itself (the unique name that answered the call) is taken: any
client on the bus may emit a signal on that path.

Source: XDG Desktop Portal documentation, "org.freedesktop.portal.Background" and
"org.freedesktop.portal.Request".
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from typing import Sequence

from dbus_fast import BusType, Message, MessageType, Variant
from dbus_fast.aio import MessageBus

__all__ = ["BUS_NAME", "OBJECT_PATH", "BACKGROUND_IFACE", "REQUEST_IFACE", "BackgroundResult", "PortalError",
           "request_background", "request_path"]

BUS_NAME = "org.freedesktop.portal.Desktop"
OBJECT_PATH = "/org/freedesktop/portal/desktop"
BACKGROUND_IFACE = "org.freedesktop.portal.Background"
REQUEST_IFACE = "org.freedesktop.portal.Request"


class PortalError(RuntimeError):
    """The portal could not be asked (no session bus, no portal, an error reply, no answer in time)."""


@dataclass(frozen=True)
class BackgroundResult:
    """The portal's answer: ``response`` (0 granted, 1 cancelled, 2 other), ``background`` (may run in
    the background), ``autostart`` (will be started at login)."""

    response: int
    background: bool
    autostart: bool

    @property
    def ok(self) -> bool:
        return self.response == 0


def request_path(unique_name: str, token: str) -> str:
    """The Request object path the portal uses for ``token`` asked by ``unique_name`` (":1.42")."""
    sender = unique_name.lstrip(":").replace(".", "_")
    return f"{OBJECT_PATH}/request/{sender}/{token}"


async def request_background(*, autostart: bool, commandline: Sequence[str], reason: str = "",
                             bus_address: str | None = None, parent_window: str = "",
                             timeout: float = 120.0) -> BackgroundResult:
    """Ask the Background portal to run the app in the background and start it at login with
    ``commandline`` (``autostart`` False: no longer start it at login). The user may be asked (hence
    the long ``timeout``, seconds). Raises :class:`PortalError`; a refusal is a result, not an error."""
    try:
        bus = await (MessageBus(bus_address=bus_address) if bus_address else
                     MessageBus(bus_type=BusType.SESSION)).connect()
    except Exception as e:  # no session bus, a malformed address
        raise PortalError(f"no session bus: {e}") from e
    try:
        token = "mhgui" + secrets.token_hex(6)
        path = request_path(bus.unique_name, token)
        # Responses on the request's path, by sender: any client may emit a signal on any path, only the
        # portal's (the unique name that answered RequestBackground) counts; one may come before that reply
        got: list[tuple[str, object]] = []
        arrived = asyncio.Event()
        owner: list[str] = []

        def on_message(msg: Message) -> None:
            if (msg.message_type == MessageType.SIGNAL and msg.path == path and msg.interface == REQUEST_IFACE
                    and msg.member == "Response" and (not owner or msg.sender == owner[0])):
                got.append((msg.sender, msg.body))
                arrived.set()

        async def answer():
            while True:
                for sender, body in got:
                    if sender == owner[0]:
                        return body
                got.clear()
                arrived.clear()
                await arrived.wait()

        bus.add_message_handler(on_message)
        match = f"type='signal',interface='{REQUEST_IFACE}',member='Response',path='{path}'"
        await bus.call(Message(destination="org.freedesktop.DBus", path="/org/freedesktop/DBus",
                               interface="org.freedesktop.DBus", member="AddMatch", signature="s", body=[match]))
        options = {"handle_token": Variant("s", token), "reason": Variant("s", reason),
                   "autostart": Variant("b", bool(autostart)), "commandline": Variant("as", list(commandline)),
                   "dbus-activatable": Variant("b", False)}
        reply = await bus.call(Message(destination=BUS_NAME, path=OBJECT_PATH, interface=BACKGROUND_IFACE,
                                       member="RequestBackground", signature="sa{sv}",
                                       body=[parent_window, options]))
        if reply is None or reply.message_type == MessageType.ERROR:
            err = (reply.body[0] if reply is not None and reply.body else "") if reply is not None else ""
            name = reply.error_name if reply is not None else "no reply"
            raise PortalError(f"the Background portal refused the request: {name}" + (f": {err}" if err else ""))
        owner.append(reply.sender or "")
        handle = reply.body[0] if reply.body else path
        if handle != path:  # an old portal: its own path; its answer may have come already (then it is lost)
            path = handle
            await bus.call(Message(destination="org.freedesktop.DBus", path="/org/freedesktop/DBus",
                                   interface="org.freedesktop.DBus", member="AddMatch", signature="s",
                                   body=[f"type='signal',interface='{REQUEST_IFACE}',member='Response',"
                                         f"path='{path}'"]))
        try:
            response, results = await asyncio.wait_for(answer(), timeout)
        except TimeoutError as e:
            raise PortalError(f"the Background portal did not answer within {timeout:g} s") from e
        if not isinstance(response, int) or not isinstance(results, dict):
            raise PortalError("the Background portal's answer is malformed")

        def flag(name: str) -> bool:
            v = results.get(name)
            return bool(v.value) if isinstance(v, Variant) and isinstance(v.value, bool) else False

        return BackgroundResult(response, flag("background"), flag("autostart"))
    except PortalError:
        raise
    except Exception as e:  # the bus went away, a malformed reply (outside input: said, not a crash)
        raise PortalError(f"the Background portal could not be asked: {e}") from e
    finally:
        bus.disconnect()
