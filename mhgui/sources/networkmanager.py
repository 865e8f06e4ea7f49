"""NetworkManager as a source of device facts, read over D-Bus (dbus-fast, asyncio).

What it reports
    One :class:`~mhgui.core.state.NmSnapshot` after every (re-)enumeration,
    then one :class:`~mhgui.core.state.NmDevice` per change of a device and
    :class:`~mhgui.core.state.NmDeviceRemoved` when NetworkManager drops one;
    one :class:`~mhgui.core.state.NmVpnsSet` (the active VPN connections and
    their addresses) after each enumeration and whenever they change;
    plus :class:`~mhgui.core.state.SourceStatus` for source ``"networkmanager"``:

    ``running``    NetworkManager answered and the snapshot was sent.
    ``absent``     NetworkManager is not on the bus (its name has no owner);
                   the source keeps watching and enumerates when it appears.
    ``stopped``    NetworkManager left the bus (or stopped answering); the
                   device data sent earlier is stale.
    ``no-access``  the system bus cannot be reached, refused us, or the
                   connection dropped (a reconnect with backoff follows).

Where the data comes from (NetworkManager D-Bus API reference,
https://networkmanager.dev/docs/api/latest/spec.html, version 1.42):

- ``org.freedesktop.NetworkManager.GetDevices() -> ao`` on
  ``/org/freedesktop/NetworkManager``; signals ``DeviceAdded(o)`` and
  ``DeviceRemoved(o)`` on the same object.
- ``org.freedesktop.NetworkManager.Device`` properties, read with
  ``org.freedesktop.DBus.Properties.GetAll``: ``Interface`` (s, kernel name
  or, for modems, the control port), ``IpInterface`` (s, the data interface
  once activated, else ""), ``DeviceType`` (u, ``NMDeviceType``), ``State``
  (u, ``NMDeviceState``), ``Managed`` (b) and ``Ip6Config`` (o; ``"/"`` = no
  IPv6 configuration).
- The kernel ifindex: NetworkManager's ``Device`` interface has **no**
  ifindex property (none in the 1.42 introspection data, checked against a
  running 1.42.4). The source therefore resolves ``IpInterface`` (when set),
  else ``Interface``, with ``if_nametoindex(3)`` in its own network namespace
  (NetworkManager's, in production); 0 when there is no such link. An
  ``Ifindex`` property (i), where a service provides one, wins. A modem's
  ``Interface`` is its control port (``cdc-wdm0``, ``ttyUSB2``), never its data
  link: a modem resolves by ``IpInterface`` only, so it has ifindex 0 until
  its bearer is connected and its data interface exists.
- VPNs: ``ActiveConnections`` (ao) of ``/org/freedesktop/NetworkManager``;
  for each, ``org.freedesktop.NetworkManager.Connection.Active`` properties
  ``Vpn`` (b), ``Id`` (s), ``Ip4Config`` and ``Ip6Config`` (o), whose
  ``IP4Config``/``IP6Config`` ``AddressData`` are the VPN's addresses. A VPN
  without an interface of its own (IPsec: libreswan, strongswan) has them on
  the access interface it runs over. Re-read when ``ActiveConnections``, a VPN
  connection or one of its IP configurations changes.
- ``org.freedesktop.NetworkManager.Device.Wired.Carrier`` (b), read only for
  Ethernet and veth devices (the only types that implement ``Device.Wired``).
- ``org.freedesktop.NetworkManager.IP6Config.AddressData`` (aa{sv}): one
  dict per address with ``address`` (s) and ``prefix`` (u, bits).
- ``org.freedesktop.DBus.Properties.PropertiesChanged(sa{sv}as)`` from
  NetworkManager, and the bus's ``NameOwnerChanged(sss)`` for
  ``org.freedesktop.NetworkManager``.

Signals are received through ``AddMatch`` rules and a raw message handler
rather than introspected proxies, so they do not depend on the service's
introspection data declaring them (python-dbusmock's template declares none).
The match rules are added *before* the enumeration, so nothing that happens
while enumerating is lost; all signals are then handled strictly in arrival
order by one worker task.

Errors: nothing raised by a call, by a malformed or hostile reply or by the
sink escapes into the event loop. A call on an object that vanished meanwhile
(``org.freedesktop.DBus.Error.UnknownObject``, ``UnknownMethod``,
``ServiceUnknown``, ``NameHasNoOwner``) counts as "the device is gone";
properties of the wrong D-Bus type are logged and the device is skipped (or,
for a ``PropertiesChanged``, the update is ignored). Every call has a timeout,
so nothing waits forever on a hung service.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from dataclasses import dataclass, replace
from typing import Any, Callable, Sequence

from dbus_fast import AuthError, BusType, Message, MessageType, Variant
from dbus_fast.aio import MessageBus

from ..core.state import Event, NmDevice, NmDeviceRemoved, NmSnapshot, NmVpn, NmVpnsSet, SourceStatus
from ..i18n import _
from . import nm_facts
from .nm_facts import DENIED_ERRORS, DEVICE_KEYS as _DEVICE_KEYS, VANISHED_ERRORS, WIRED_TYPES
from .nm_facts import BOOL_SIGS as _BOOL_SIGS, PATH_SIGS as _PATH_SIGS, STR_SIGS as _STR_SIGS
from .nm_facts import BadReply as _BadReply
from .nm_facts import DEVICE_KINDS, device_kind  # noqa: F401 (re-exported: shared with mhctl status)

log = logging.getLogger(__name__)

__all__ = ["NetworkManagerSource", "DEVICE_KINDS", "device_kind"]

SOURCE = "networkmanager"

NM_NAME = "org.freedesktop.NetworkManager"
NM_PATH = "/org/freedesktop/NetworkManager"
NM_IFACE = "org.freedesktop.NetworkManager"
DEVICE_IFACE = "org.freedesktop.NetworkManager.Device"
WIRED_IFACE = "org.freedesktop.NetworkManager.Device.Wired"
IP6_IFACE = "org.freedesktop.NetworkManager.IP6Config"
IP4_IFACE = "org.freedesktop.NetworkManager.IP4Config"
ACTIVE_IFACE = "org.freedesktop.NetworkManager.Connection.Active"
PROPS_IFACE = "org.freedesktop.DBus.Properties"
DBUS_NAME = "org.freedesktop.DBus"
DBUS_PATH = "/org/freedesktop/DBus"
DBUS_IFACE = "org.freedesktop.DBus"

#: When more signals than this wait unprocessed, they are dropped and NetworkManager
#: is enumerated again instead (a flood must not eat memory).
_QUEUE_LIMIT = 10_000
_RESYNC = object()  # queue marker
#: NetworkManager owns its name a moment before its objects answer: retry GetDevices
#: this often, this many seconds apart (10 s in all), before waiting for the next NameOwnerChanged
_EARLY_RETRIES, _EARLY_RETRY_DELAY = 50, 0.2


# --------------------------------------------------------------------------- errors
class _CallError(Exception):
    """A D-Bus call failed (error reply, timeout, lost connection)."""

    def __init__(self, text: str, error_name: str | None = None) -> None:
        super().__init__(text)
        self.error_name = error_name


class _Vanished(_CallError):
    """The object or service called is gone."""


class _Denied(_CallError):
    """The bus policy or the service refused the call."""


# --------------------------------------------------------------------------- parsing
def _unwrap(v: Any) -> tuple[str, Any] | None:
    """dbus-fast's variant as :data:`~mhgui.sources.nm_facts.Unwrap` wants it."""
    return (v.signature, v.value) if isinstance(v, Variant) else None


def _prop(props: dict, key: str, sigs: frozenset[str]) -> Any:
    return nm_facts.prop(props, key, sigs, _unwrap)


def _device_fields(props: Any, *, full: bool) -> dict[str, Any]:
    """Fields of :class:`_Dev` from a ``Device`` property dict (:func:`mhgui.sources.nm_facts.device_fields`)."""
    return nm_facts.device_fields(props, _unwrap, full=full)


def _address_data(v: Any) -> tuple[tuple[str, int], ...]:
    """``AddressData`` (:func:`mhgui.sources.nm_facts.address_data`); raises :class:`_BadReply`."""
    return nm_facts.address_data(v, _unwrap)


@dataclass(frozen=True, slots=True)
class _Dev:
    """What is cached of one device: the event fields plus where its IPv6 config lives."""

    path: str
    name: str
    ip_iface: str  # IpInterface: the data interface once activated (modems: wwan0, ppp0), else ""
    nm_ifindex: int | None  # an Ifindex property, where the service has one
    dtype: int
    state: int
    managed: bool | None
    ip6_path: str
    ip6_addresses: tuple[tuple[str, int], ...] = ()
    carrier: bool | None = None
    ifindex: int = 0  # resolved, see NetworkManagerSource._resolve_ifindex

    def event(self) -> NmDevice:
        return NmDevice(
            path=self.path,
            ifindex=self.ifindex,
            name=self.name,
            kind=device_kind(self.dtype),
            state=self.state,
            managed=self.managed,
            ip6_addresses=self.ip6_addresses,
            carrier=self.carrier,
            ip_interface=self.ip_iface,
        )


# --------------------------------------------------------------------------- one connection
class _Session:
    """One connection to the bus and everything learnt through it.

    Thrown away as a whole when the connection drops; the next one starts from scratch.
    """

    def __init__(self, src: NetworkManagerSource, bus: MessageBus) -> None:
        self.src = src
        self.bus = bus
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.owner: str | None = None  # NetworkManager's unique name
        self.devices: dict[str, _Dev] = {}
        self.ip6_index: dict[str, str] = {}  # IP6Config path -> device path
        self.vpns: tuple[NmVpn, ...] | None = None  # the VPNs last sent
        self.vpn_paths: frozenset[str] = frozenset()  # their active connections and IP configurations
        self.worker: asyncio.Task | None = None
        self.early_retries = 0  # resyncs retried because NetworkManager owned its name before its objects
        #: done when the connection is gone; result None, or the error that ended it
        self.disconnected: asyncio.Task = asyncio.ensure_future(self._wait_disconnect())

    async def _wait_disconnect(self) -> Exception | None:
        try:
            await self.bus.wait_for_disconnect()
        except Exception as e:  # the error is the result: nobody has to "retrieve" it
            return e
        return None

    # ---- plumbing
    async def call(
        self, dest: str, path: str, iface: str, member: str, signature: str = "", body: Sequence[Any] = (),
        reply_signature: str | None = None,
    ) -> list[Any]:
        """One method call with a timeout; returns the reply body. Raises ``_CallError`` and subclasses, ``_BadReply``."""
        what = f"{iface}.{member} on {path}"
        msg = Message(destination=dest, path=path, interface=iface, member=member, signature=signature, body=list(body))
        try:
            # asyncio.timeout, not wait_for: wait_for (3.11) can swallow a cancellation
            # when the reply lands at the same moment, and stop() would then wait forever
            async with asyncio.timeout(self.src.call_timeout):
                reply = await self.bus.call(msg)
        except TimeoutError:
            raise _CallError(f"{what}: no reply within {self.src.call_timeout:g} s") from None
        except asyncio.CancelledError:
            raise
        except Exception as e:  # connection lost, bus closed
            raise _CallError(f"{what}: {e}") from None
        if reply is None:
            raise _CallError(f"{what}: no reply")
        if reply.message_type is MessageType.ERROR:
            name = reply.error_name or "?"
            text = reply.body[0] if reply.body and isinstance(reply.body[0], str) else ""
            cls = _Vanished if name in VANISHED_ERRORS else _Denied if name in DENIED_ERRORS else _CallError
            raise cls(f"{what}: {name}: {text}", name)
        if reply_signature is not None and reply.signature != reply_signature:
            raise _BadReply(f"{what} replied with signature {reply.signature!r}, expected {reply_signature!r}")
        return reply.body

    async def get_all(self, path: str, iface: str) -> dict[str, Variant]:
        (props,) = await self.call(NM_NAME, path, PROPS_IFACE, "GetAll", "s", [iface], reply_signature="a{sv}")
        return props

    def on_message(self, msg: Message) -> None:
        """Raw bus handler: queue the signals we asked for, in arrival order. Never raises."""
        try:
            if msg.message_type is not MessageType.SIGNAL:
                return None
            if msg.member not in ("NameOwnerChanged", "DeviceAdded", "DeviceRemoved", "PropertiesChanged"):
                return None
            if self.queue.qsize() >= _QUEUE_LIMIT:
                log.warning("NetworkManager: %d signals pending; dropping them and enumerating again", _QUEUE_LIMIT)
                while not self.queue.empty():
                    self.queue.get_nowait()
                self.queue.put_nowait(_RESYNC)
            self.queue.put_nowait(msg)
        except Exception:  # pragma: no cover - defensive
            log.exception("NetworkManager: could not queue a signal")
        return None

    async def subscribe(self) -> None:
        """Install the handler and the match rules (before any enumeration)."""
        self.bus.add_message_handler(self.on_message)
        rules = (
            f"type='signal',sender='{DBUS_NAME}',path='{DBUS_PATH}',interface='{DBUS_IFACE}',"
            f"member='NameOwnerChanged',arg0='{NM_NAME}'",
            f"type='signal',sender='{NM_NAME}',path='{NM_PATH}',interface='{NM_IFACE}',member='DeviceAdded'",
            f"type='signal',sender='{NM_NAME}',path='{NM_PATH}',interface='{NM_IFACE}',member='DeviceRemoved'",
            f"type='signal',sender='{NM_NAME}',interface='{PROPS_IFACE}',member='PropertiesChanged'",
        )
        for rule in rules:
            await self.call(DBUS_NAME, DBUS_PATH, DBUS_IFACE, "AddMatch", "s", [rule])

    async def close(self) -> None:
        """Stop the worker and close the connection (waits for the socket to be closed)."""
        worker, self.worker = self.worker, None
        while worker is not None and not worker.done():
            worker.cancel()  # repeated: a cancellation swallowed by library code must not hang us
            await asyncio.wait([worker], timeout=0.5)
        with contextlib.suppress(Exception):
            self.bus.remove_message_handler(self.on_message)
        with contextlib.suppress(Exception):
            self.bus.disconnect()
        # wait (bounded) until the socket is closed
        await asyncio.wait([self.disconnected], timeout=2.0)
        if not self.disconnected.done():
            self.disconnected.cancel()

    # ---- the worker
    async def run(self) -> None:
        """Handle queued signals one by one, forever (until cancelled)."""
        while True:
            msg = await self.queue.get()
            try:
                if msg is _RESYNC:
                    await self.resync()
                else:
                    await self.dispatch(msg)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("NetworkManager: failed to handle %s", getattr(msg, "member", msg))

    async def dispatch(self, msg: Message) -> None:
        member = msg.member
        if member == "NameOwnerChanged":
            if msg.sender != DBUS_NAME or msg.interface != DBUS_IFACE or msg.signature != "sss":
                return
            name, _old, new = msg.body
            if name != NM_NAME:
                return
            if new:
                log.info("NetworkManager appeared on the bus as %s; enumerating", new)
                await self.resync()
            else:
                log.info("NetworkManager left the bus")
                self.forget()
                self.src._emit(SourceStatus(SOURCE, "stopped", _("NetworkManager left the bus; device data is stale")))
            return
        if self.owner is None or msg.sender != self.owner:
            return
        if member in ("DeviceAdded", "DeviceRemoved"):
            if msg.interface != NM_IFACE or msg.path != NM_PATH or msg.signature != "o":
                return
            (path,) = msg.body
            if member == "DeviceAdded":
                await self.add_device(path)
            else:
                self.remove_device(path)
        elif member == "PropertiesChanged":
            if msg.interface != PROPS_IFACE or msg.signature != "sa{sv}as":
                return
            iface, changed, invalidated = msg.body
            await self.properties_changed(msg.path, iface, changed, invalidated)

    # ---- enumeration
    def forget(self) -> None:
        self.owner = None
        self.devices.clear()
        self.ip6_index.clear()
        self.vpns = None
        self.vpn_paths = frozenset()

    async def resync(self) -> None:
        """Enumerate from scratch: owner, GetDevices, every device; emit snapshot + status."""
        self.forget()
        try:
            (owner,) = await self.call(
                DBUS_NAME, DBUS_PATH, DBUS_IFACE, "GetNameOwner", "s", [NM_NAME], reply_signature="s"
            )
        except _Vanished:
            self.src._emit(
                SourceStatus(
                    SOURCE, "absent",
                    _("NetworkManager is not running (nobody owns org.freedesktop.NetworkManager on the "
                      "system bus); waiting for it to start."),
                )
            )
            return
        self.owner = owner
        try:
            (paths,) = await self.call(NM_NAME, NM_PATH, NM_IFACE, "GetDevices", reply_signature="ao")
        except _Vanished:
            # Either it left between the two calls (the queued NameOwnerChanged reports that), or
            # it is starting: NetworkManager takes its bus name before it exports its objects.
            # Ask again shortly; a departure in between makes the retry find no owner.
            self.owner = None
            if self.early_retries < _EARLY_RETRIES:
                self.early_retries += 1
                asyncio.get_running_loop().call_later(_EARLY_RETRY_DELAY, self.queue.put_nowait, _RESYNC)
            return
        except _Denied as e:
            self.owner = None
            self.src._emit(
                SourceStatus(
                    SOURCE, "no-access",
                    _("The system bus policy does not let this user ask NetworkManager for its devices ({error}).").format(
                        error=e.error_name),
                )
            )
            return
        except (_CallError, _BadReply) as e:
            self.owner = None
            self.src._emit(SourceStatus(SOURCE, "stopped", _("NetworkManager does not answer properly ({why}).").format(
                why=e)))
            return
        devs = await asyncio.gather(*(self.read_device(p) for p in dict.fromkeys(paths)))
        for dev in devs:
            if dev is not None:
                self.register(dev)
        self.early_retries = 0
        self.src._emit(NmSnapshot(tuple(d.event() for d in devs if d is not None)))
        await self.refresh_vpns()
        self.src._emit(SourceStatus(SOURCE, "running"))

    async def read_device(self, path: str) -> _Dev | None:
        """GetAll on a device (and its Wired and IP6Config parts); None if gone or malformed."""
        try:
            f = _device_fields(await self.get_all(path, DEVICE_IFACE), full=True)
            carrier = None
            if f["dtype"] in WIRED_TYPES:
                try:
                    wired = await self.get_all(path, WIRED_IFACE)
                    carrier = _prop(wired, "Carrier", _BOOL_SIGS) if "Carrier" in wired else None
                except _Vanished:
                    raise
                except _CallError as e:
                    log.info("NetworkManager: no carrier for %s: %s", path, e)
                except _BadReply as e:
                    log.warning("NetworkManager: ignoring the carrier of %s: %s", path, e)
            addrs = await self.read_ip6(f["ip6_path"])
            dev = _Dev(path=path, carrier=carrier, ip6_addresses=addrs, **f)
            return replace(dev, ifindex=self.src._resolve_ifindex(dev))
        except _Vanished as e:
            log.debug("NetworkManager: device %s vanished: %s", path, e)
        except (_CallError, _BadReply) as e:
            log.warning("NetworkManager: skipping device %s: %s", path, e)
        return None

    async def read_ip6(self, ip6_path: str) -> tuple[tuple[str, int], ...]:
        """AddressData of an IP6Config object; () for "/" or a config that vanished. Raises ``_BadReply``."""
        if ip6_path == "/":
            return ()
        try:
            props = await self.get_all(ip6_path, IP6_IFACE)
        except _Vanished:
            return ()  # replaced meanwhile: the device's Ip6Config change is on its way
        except _CallError as e:
            log.warning("NetworkManager: cannot read %s: %s", ip6_path, e)
            return ()
        return _address_data(props["AddressData"]) if "AddressData" in props else ()

    # ---- VPNs
    async def refresh_vpns(self) -> None:
        """Read the active VPN connections and their addresses; emit :class:`NmVpnsSet` when they changed.

        Never raises for NetworkManager's answers: a connection that vanished meanwhile is left out (its
        removal is on its way), a malformed one is logged and left out, an unreadable list keeps the last one.
        """
        try:
            (v,) = await self.call(NM_NAME, NM_PATH, PROPS_IFACE, "Get", "ss", [NM_IFACE, "ActiveConnections"],
                                   reply_signature="v")
            if not isinstance(v, Variant) or v.signature != "ao":
                raise _BadReply(f"ActiveConnections has D-Bus type {v.signature if isinstance(v, Variant) else '?'}")
            paths = list(dict.fromkeys(v.value))
        except _Vanished:
            return
        except (_CallError, _BadReply) as e:
            log.warning("NetworkManager: cannot list the active connections: %s", e)
            return
        vpns: list[NmVpn] = []
        watched: set[str] = set()
        for path in paths:
            try:
                props = await self.get_all(path, ACTIVE_IFACE)
                if "Vpn" not in props or not _prop(props, "Vpn", _BOOL_SIGS):
                    continue
                watched.add(path)
                name = _prop(props, "Id", _STR_SIGS) if "Id" in props else path.rsplit("/", 1)[-1]
                addrs: list[tuple[str, int]] = []
                for key, ip_iface in (("Ip4Config", IP4_IFACE), ("Ip6Config", IP6_IFACE)):
                    cfg = _prop(props, key, _PATH_SIGS) if key in props else "/"
                    if cfg != "/":
                        watched.add(cfg)
                        addrs += await self.read_addresses(cfg, ip_iface)
            except _Vanished:
                continue
            except (_CallError, _BadReply) as e:
                log.warning("NetworkManager: skipping the active connection %s: %s", path, e)
                continue
            vpns.append(NmVpn(path, str(name), tuple(addrs)))
        self.vpn_paths = frozenset(watched)
        out = tuple(vpns)
        if out != self.vpns:
            self.vpns = out
            self.src._emit(NmVpnsSet(out))

    async def read_addresses(self, cfg_path: str, iface: str) -> tuple[tuple[str, int], ...]:
        """AddressData of an IP4Config/IP6Config; () for a config that vanished. Raises ``_BadReply``."""
        try:
            props = await self.get_all(cfg_path, iface)
        except _Vanished:
            return ()
        return _address_data(props["AddressData"]) if "AddressData" in props else ()

    # ---- cache
    def register(self, dev: _Dev) -> None:
        self.devices[dev.path] = dev
        if dev.ip6_path != "/":
            self.ip6_index[dev.ip6_path] = dev.path

    def unregister(self, path: str) -> _Dev | None:
        dev = self.devices.pop(path, None)
        if dev is not None and self.ip6_index.get(dev.ip6_path) == path:
            del self.ip6_index[dev.ip6_path]
        return dev

    def update(self, old: _Dev, new: _Dev) -> None:
        self.unregister(old.path)
        self.register(new)
        ev = new.event()
        if ev != old.event():
            self.src._emit(ev)

    async def add_device(self, path: str) -> None:
        dev = await self.read_device(path)
        if dev is None:
            return
        old = self.devices.get(path)
        if old is None:
            self.register(dev)
            self.src._emit(dev.event())
        else:
            self.update(old, dev)

    def remove_device(self, path: str) -> None:
        if self.unregister(path) is not None:
            self.src._emit(NmDeviceRemoved(path))

    async def properties_changed(self, path: str, iface: str, changed: dict, invalidated: list[str]) -> None:
        if (path == NM_PATH and iface == NM_IFACE and ("ActiveConnections" in changed
                                                      or "ActiveConnections" in invalidated)) \
                or path in self.vpn_paths:
            await self.refresh_vpns()
            if path not in self.devices and path not in self.ip6_index:
                return
        dev = self.devices.get(path)
        if dev is not None:
            if iface == DEVICE_IFACE:
                if _DEVICE_KEYS.intersection(invalidated):
                    new = await self.read_device(path)
                    if new is not None:
                        self.update(dev, new)
                    return
                try:
                    f = _device_fields(changed, full=False)
                except _BadReply as e:
                    log.warning("NetworkManager: ignoring a change of %s: %s", path, e)
                    return
                new = replace(dev, **f)
                if new.ifindex == 0 or (new.name, new.ip_iface, new.nm_ifindex) != (
                    dev.name, dev.ip_iface, dev.nm_ifindex
                ):
                    new = replace(new, ifindex=self.src._resolve_ifindex(new))
                if new.ip6_path != dev.ip6_path:
                    try:
                        new = replace(new, ip6_addresses=await self.read_ip6(new.ip6_path))
                    except _BadReply as e:
                        log.warning("NetworkManager: bad IPv6 config %s of %s: %s", new.ip6_path, path, e)
                        new = replace(new, ip6_addresses=())
                self.update(dev, new)
            elif iface == WIRED_IFACE and ("Carrier" in changed or "Carrier" in invalidated):
                try:
                    if "Carrier" in changed:
                        carrier = _prop(changed, "Carrier", _BOOL_SIGS)
                    else:
                        carrier = _prop(await self.get_all(path, WIRED_IFACE), "Carrier", _BOOL_SIGS)
                except (_CallError, _BadReply, KeyError) as e:
                    log.warning("NetworkManager: ignoring a carrier change of %s: %s", path, e)
                    return
                self.update(dev, replace(dev, carrier=carrier))
            return
        devpath = self.ip6_index.get(path)
        if devpath is not None and iface == IP6_IFACE and devpath in self.devices:
            dev = self.devices[devpath]
            try:
                if "AddressData" in changed:
                    addrs = _address_data(changed["AddressData"])
                elif "AddressData" in invalidated:
                    addrs = await self.read_ip6(path)
                else:
                    return
            except _BadReply as e:
                log.warning("NetworkManager: ignoring an IPv6 change of %s (%s): %s", devpath, path, e)
                return
            self.update(dev, replace(dev, ip6_addresses=addrs))


# --------------------------------------------------------------------------- the source
class NetworkManagerSource:
    """Watches NetworkManager on the D-Bus system bus and feeds events to ``sink``.

    ``sink(event)`` receives :class:`NmSnapshot`, :class:`NmDevice`,
    :class:`NmDeviceRemoved` and :class:`SourceStatus` events (see the module
    docstring), always on the event loop's thread, e.g. ``StateStore.apply``.
    An exception from the sink is logged and otherwise ignored.

    ``bus_address``: a D-Bus address such as ``unix:path=/run/dbus/system_bus_socket``;
    None means the system bus (``DBUS_SYSTEM_BUS_ADDRESS``, else the default socket).
    ``call_timeout``: seconds to wait for any single reply (and for connecting).
    ``reconnect_delays``: seconds between reconnect attempts after the connection
    dropped; the last value repeats, so the delay is bounded by it.
    ``max_reconnect_attempts``: give up (status ``no-access``) after this many
    failed attempts; None = keep trying until :meth:`stop`.
    ``ifindex_of``: kernel ifindex of an interface name (``socket.if_nametoindex``,
    i.e. in this process's network namespace, which in production is
    NetworkManager's); may raise ``OSError`` or return None/0 for "no such link".
    Needed because NetworkManager's ``Device`` interface has no ifindex property
    (none up to at least 1.42; see :meth:`_resolve_ifindex`).
    """

    def __init__(
        self,
        sink: Callable[[Event], None],
        bus_address: str | None = None,
        *,
        call_timeout: float = 5.0,
        reconnect_delays: Sequence[float] = (0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0),
        max_reconnect_attempts: int | None = None,
        ifindex_of: Callable[[str], int | None] = socket.if_nametoindex,
    ) -> None:
        if not reconnect_delays:
            raise ValueError("reconnect_delays must not be empty")
        self._sink = sink
        self._bus_address = bus_address
        self.call_timeout = call_timeout
        self._reconnect_delays = tuple(reconnect_delays)
        self._max_reconnect_attempts = max_reconnect_attempts
        self._ifindex_of = ifindex_of
        self._lock = asyncio.Lock()
        self._session: _Session | None = None
        self._supervisor: asyncio.Task | None = None
        self._stopping = False
        #: the last status sent, e.g. ("running", "")
        self.status: tuple[str, str] | None = None

    @property
    def bus_address(self) -> str:
        """The address connected to (resolved from the environment when none was given)."""
        from .access import system_bus_address
        return system_bus_address(self._bus_address)

    @property
    def running(self) -> bool:
        """True between a successful :meth:`start` and :meth:`stop` (also while reconnecting)."""
        return self._supervisor is not None

    async def start(self) -> None:
        """Connect, subscribe, enumerate. Idempotent; never raises for bus or NetworkManager problems.

        Returns after the first snapshot (status ``running``), or after status
        ``absent`` (NetworkManager not on the bus; it is picked up when it
        starts), or after status ``no-access`` (bus unreachable or refused; the
        source stays stopped and ``start()`` may be called again later).
        """
        async with self._lock:
            if self._supervisor is not None:
                return
            session = await self._open(report=True)
            if session is None:
                return
            self._session = session
            self._supervisor = asyncio.create_task(self._supervise(), name="networkmanager-supervisor")

    async def stop(self) -> None:
        """Stop watching: cancel any reconnect, close the connection. Sends no event. Idempotent."""
        async with self._lock:
            self._stopping = True
            try:
                sup, self._supervisor = self._supervisor, None
                while sup is not None and not sup.done():
                    sup.cancel()
                    await asyncio.wait([sup], timeout=0.5)
                session, self._session = self._session, None
                if session is not None:
                    await session.close()
            finally:
                self._stopping = False

    # ---- internals
    def _resolve_ifindex(self, dev: _Dev) -> int:
        """The kernel ifindex of a device: its ``Ifindex`` property where the service
        has one, else ``ifindex_of(IpInterface or Interface)``; 0 when unknown.
        A modem resolves by ``IpInterface`` only (its ``Interface`` is a control
        port, no network link): 0 until its data interface exists."""
        return nm_facts.resolve_ifindex(
            dev.nm_ifindex, dev.ip_iface, dev.name, dev.dtype, self._ifindex_of,
            lambda name: log.exception("NetworkManager source: ifindex_of(%r) failed", name))

    def _emit(self, ev: Event) -> None:
        if isinstance(ev, SourceStatus):
            self.status = (ev.status, ev.detail)
            log.debug("NetworkManager source: %s %s", ev.status, ev.detail)
        try:
            self._sink(ev)
        except Exception:
            log.exception("NetworkManager source: the sink failed on %r", ev)

    async def _open(self, *, report: bool) -> _Session | None:
        """Connect, subscribe, enumerate; start the worker. None (and, if ``report``, a status) on failure."""
        addr = self.bus_address

        def fail(detail: str, status: str = "no-access") -> None:
            log.info("NetworkManager source: %s", detail)
            if report:
                self._emit(SourceStatus(SOURCE, status, detail))

        try:
            bus = MessageBus(bus_address=self._bus_address, bus_type=BusType.SYSTEM)
        except Exception as e:
            fail(f"The D-Bus system bus address {addr!r} is not usable ({e}).")
            return None
        try:
            async with asyncio.timeout(self.call_timeout):
                await bus.connect()
        except (PermissionError, AuthError) as e:
            fail(f"The D-Bus system bus at {addr} refused this user ({type(e).__name__}: {e}).")
            return None
        except TimeoutError:
            fail(f"The D-Bus system bus at {addr} did not answer within {self.call_timeout:g} s.")
            return None
        except FileNotFoundError:
            # no system bus at all on this machine (or in this namespace): no NetworkManager either
            fail(f"No D-Bus system bus here ({addr} does not exist), so no NetworkManager: using netlink alone.",
                 "absent")
            return None
        except Exception as e:
            fail(
                f"Cannot reach the D-Bus system bus at {addr} ({type(e).__name__}: {e}); "
                "is dbus-daemon running, and is DBUS_SYSTEM_BUS_ADDRESS right?"
            )
            return None
        session = _Session(self, bus)
        try:
            try:
                await session.subscribe()
            except _Denied as e:
                fail(f"The D-Bus system bus at {addr} does not let this user watch NetworkManager's signals ({e}).")
                await session.close()
                return None
            except (_CallError, _BadReply) as e:
                fail(f"Could not subscribe to NetworkManager's signals on {addr} ({e}).")
                await session.close()
                return None
            await session.resync()
            session.worker = asyncio.create_task(session.run(), name="networkmanager-worker")
            return session
        except BaseException:
            await asyncio.shield(session.close())
            raise

    async def _supervise(self) -> None:
        """Wait for the connection to drop; then report it and reconnect with backoff."""
        try:
            while True:
                session = self._session
                assert session is not None
                # asyncio.wait: cancelling this task must not cancel the waiter
                await asyncio.wait([session.disconnected])
                err = None if session.disconnected.cancelled() else session.disconnected.result()
                if self._stopping:
                    return
                await session.close()
                self._session = None
                why = f" ({err})" if err else ""
                self._emit(
                    SourceStatus(
                        SOURCE, "no-access",
                        _("Lost the connection to the D-Bus system bus at {address}{why}; "
                          "NetworkManager device data is stale. Reconnecting.").format(address=self.bus_address, why=why),
                    )
                )
                attempt = 0
                while self._session is None:
                    if self._max_reconnect_attempts is not None and attempt >= self._max_reconnect_attempts:
                        self._emit(
                            SourceStatus(
                                SOURCE, "no-access",
                                _("Gave up reconnecting to the D-Bus system bus at {address} after {n} attempts.")
                                .format(address=self.bus_address, n=attempt),
                            )
                        )
                        self._supervisor = None
                        return
                    await asyncio.sleep(self._reconnect_delays[min(attempt, len(self._reconnect_delays) - 1)])
                    attempt += 1
                    self._session = await self._open(report=False)
        except asyncio.CancelledError:
            raise
        except Exception:  # pragma: no cover - defensive: never let the supervisor die silently
            log.exception("NetworkManager source: supervisor failed")
            self._supervisor = None
