"""A blocking, one-shot D-Bus client for ``mhctl status`` (issue 14): pipelined method calls, one deadline each.

The app and the daemons speak D-Bus with dbus-fast on asyncio; importing those two alone costs about
twice what ``mhctl status`` may take in all. This client sends method calls on one blocking Unix socket
and reads their replies, several in flight at once (D-Bus replies carry the serial of their call, so a
batch of calls costs one round trip): the few reads of the status (the access probe, NetworkManager,
the engine) take three round trips in all. The wire format is jeepney's (pure Python, blocking; its
import costs about 5 ms).

Shapes: a reply is a :class:`Reply`: ``error`` (the D-Bus error name, None for a method return),
``signature`` (the body's D-Bus signature, "" for none) and ``body`` (a tuple, as jeepney decodes it:
a variant is ``(signature, value)``, a dict is a dict, an array of structs a list of tuples).

Errors: :class:`SyncBus` raises OSError (FileNotFoundError: no socket at the address; PermissionError;
ConnectionError: the bus hung up), TimeoutError (no authentication within the timeout) or
:class:`BusAddressError` when connecting; :meth:`SyncBus.replies` leaves out the calls whose reply did
not come in time, and raises ConnectionError when the bus hangs up meanwhile, ValueError for bytes that
are not D-Bus messages. Nothing here retries.
"""

from __future__ import annotations

import _socket
import time
from typing import Any, Iterable, Sequence

from jeepney.bus import get_connectable_addresses
from jeepney.io.blocking import prep_socket
from jeepney.low_level import Header, HeaderFields, Message, MessageFlag, MessageType, Parser

__all__ = ["BusAddressError", "Reply", "SyncBus", "DBUS"]

#: the bus itself: (destination, path, interface)
DBUS = ("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus")


class BusAddressError(ValueError):
    """The address names no transport this client can use (only ``unix:path=``/``unix:abstract=``)."""


class Reply:
    """One method return or error (module docstring)."""

    __slots__ = ("error", "signature", "body")

    def __init__(self, error: str | None, signature: str, body: tuple) -> None:
        self.error, self.signature, self.body = error, signature, body

    @property
    def text(self) -> str:
        """An error's first string argument ("" when it has none), as the D-Bus libraries show it."""
        return self.body[0] if self.body and isinstance(self.body[0], str) else ""

    def __repr__(self) -> str:
        return f"Reply({self.error!r}, {self.signature!r}, {self.body!r:.200})"


class SyncBus:
    """One connection to the bus at ``address`` (a D-Bus address; the first unix transport in it is used).

    ``timeout``: seconds for connecting and authenticating. The ``Hello`` call goes out with the first
    batch of calls (its reply is not waited for on its own). Use as a context manager or :meth:`close`.
    """

    def __init__(self, address: str, timeout: float) -> None:
        try:
            target = next(get_connectable_addresses(address))
        except (RuntimeError, ValueError, StopIteration) as e:
            raise BusAddressError(f"{address}: {e}") from None
        self._sock = prep_socket(target, False, timeout=timeout)
        self._parser = Parser()
        self._serial = 0
        self._out: list[bytes] = []
        self._got: dict[int, Reply] = {}
        self.call(*DBUS, "Hello")

    def __enter__(self) -> SyncBus:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._sock.close()

    def call(self, destination: str, path: str, interface: str, member: str, signature: str = "",
             body: Sequence[Any] = (), *, autostart: bool = True) -> int:
        """Queue a method call (sent by the next :meth:`replies`); returns its serial. ``autostart=False``:
        the bus must not start (activate) the destination for it."""
        self._serial += 1
        fields = {HeaderFields.path: path, HeaderFields.destination: destination,
                  HeaderFields.interface: interface, HeaderFields.member: member}
        if signature:
            fields[HeaderFields.signature] = signature
        flags = MessageFlag(0) if autostart else MessageFlag.no_auto_start
        header = Header(_little(), MessageType.method_call, flags, 1, 0, -1, fields)
        self._out.append(Message(header, tuple(body)).serialise(serial=self._serial))
        return self._serial

    def replies(self, serials: Iterable[int], timeout: float) -> dict[int, Reply]:
        """Send what is queued, then read until every one of ``serials`` has its reply or ``timeout`` seconds
        have passed; ``{serial: Reply}`` of those that came (module docstring for the errors)."""
        want = set(serials)
        if self._out:
            data, self._out = b"".join(self._out), []
            self._sock.settimeout(max(timeout, 1.0))  # (0: "send, do not wait for replies")
            try:
                self._sock.sendall(data)
            except _socket.timeout:
                return {}
        deadline = time.monotonic() + timeout
        while not want.issubset(self._got):
            msg = self._parser.get_next_message()
            if msg is not None:
                self._keep(msg)
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self._sock.settimeout(left)
            try:
                data = self._sock.recv(65536)
            except _socket.timeout:
                break
            if not data:
                raise ConnectionResetError("the bus closed the connection")
            self._parser.add_data(data)
        return {s: self._got[s] for s in want if s in self._got}

    def _keep(self, msg: Message) -> None:
        h = msg.header
        if h.message_type not in (MessageType.method_return, MessageType.error):
            return  # a signal (NameAcquired): nothing here asked for one
        serial = h.fields.get(HeaderFields.reply_serial)
        if isinstance(serial, int):
            error = h.fields.get(HeaderFields.error_name, "?") if h.message_type is MessageType.error else None
            self._got[serial] = Reply(error, h.fields.get(HeaderFields.signature, ""), tuple(msg.body))


def _little():
    from jeepney.low_level import Endianness
    return Endianness.little
