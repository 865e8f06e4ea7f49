"""NetworkManager as ``mhctl status``'s fast path reads it (issue 14): the first enumeration of
:class:`mhgui.sources.networkmanager.NetworkManagerSource`, over :class:`mhgui.status_bus.BusRead`'s
blocking connection, with the same decisions (a device that vanished, failed or is malformed is left out;
a carrier that cannot be read is None; an ``IP6Config`` that vanished or failed has no addresses) and the
same status sentences.

Round 1 (sent by :class:`~mhgui.status_bus.BusRead`): NetworkManager's owner, ``GetDevices``,
``ActiveConnections``; round 2: each device's ``Device`` properties and each active connection's; round 3:
``Device.Wired`` of Ethernet and veth devices, each ``IP6Config`` and the VPNs' configurations. Replies:
jeepney's values (a variant is ``(signature, value)``); 5 s per round trip (the source's per-call timeout).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from .sources import nm_facts
from .sources.nm_facts import BOOL_SIGS as _BOOL, DENIED_ERRORS as _DENIED, PATH_SIGS as _PATH
from .sources.nm_facts import STR_SIGS as _STR, VANISHED_ERRORS as _VANISHED, WIRED_TYPES as _WIRED_TYPES
from .sources.nm_facts import device_kind
from .status_bus import _NM_MATCHES, NM, NM_PATH, NM_TIMEOUT, PROPS, _fallback

if TYPE_CHECKING:
    from .sources.dbus_sync import Reply
    from .status_bus import BusRead

__all__ = ["networkmanager_events"]

DEVICE_IFACE = NM + ".Device"
WIRED_IFACE = NM + ".Device.Wired"
IP6_IFACE, IP4_IFACE = NM + ".IP6Config", NM + ".IP4Config"
ACTIVE_IFACE = NM + ".Connection.Active"

#: NetworkManager's reply has not the documented shape (the source's ``_BadReply``)
_Bad = nm_facts.BadReply


class _Failed(Exception):
    """A call to NetworkManager failed (the source's ``_CallError``): ``name`` is the D-Bus error or None."""

    def __init__(self, text: str, name: str | None = None) -> None:
        super().__init__(text)
        self.name = name


def _unwrap(v: Any) -> tuple[str, Any] | None:
    """jeepney's variant, ``(signature, value)``, as :data:`~mhgui.sources.nm_facts.Unwrap` wants it."""
    return (v[0], v[1]) if isinstance(v, tuple) and len(v) == 2 else None


def _prop(props: dict, key: str, sigs: frozenset[str]) -> Any:
    return nm_facts.prop(props, key, sigs, _unwrap)


def _checked(r: Reply | None, what: str, signature: str | None) -> tuple:
    if r is None:
        raise _Failed(f"{what}: no reply within {NM_TIMEOUT:g} s")
    if r.error is not None:
        raise _Failed(f"{what}: {r.error}: {r.text}", r.error)
    if signature is not None and r.signature != signature:
        raise _Bad(f"{what} replied with signature {r.signature!r}, expected {signature!r}")
    return r.body


def networkmanager_events(read: BusRead, ifindex_of: Callable[[str], int | None]) -> list:
    """The events NetworkManager's source sends on its first enumeration (module docstring)."""
    from .core.state import NmDevice, NmSnapshot, NmVpn, NmVpnsSet, SourceStatus
    from .i18n import _

    for i in range(len(_NM_MATCHES)):
        r = read.reply(f"match{i}")
        if r is None or r.error is not None:
            raise _fallback("the bus did not take NetworkManager's match rules")
    owner = read.reply("nm_owner")
    if owner is None or (owner.error is not None and owner.error not in _VANISHED):
        raise _fallback("the bus did not say who owns NetworkManager's name")
    if owner.error is not None:
        return [SourceStatus("networkmanager", "absent", _(
            "NetworkManager is not running (nobody owns org.freedesktop.NetworkManager on the "
            "system bus); waiting for it to start."))]
    what = f"{NM}.GetDevices on {NM_PATH}"
    try:
        (paths,) = _checked(read.reply("devices"), what, "ao")
    except _Failed as e:
        if e.name in _VANISHED:
            raise _fallback("NetworkManager owns its name but its objects do not answer yet") from None
        if e.name in _DENIED:
            return [SourceStatus("networkmanager", "no-access", _(
                "The system bus policy does not let this user ask NetworkManager for its devices ({error})."
            ).format(error=e.name))]
        return [SourceStatus("networkmanager", "stopped",
                             _("NetworkManager does not answer properly ({why}).").format(why=e))]
    except _Bad as e:
        return [SourceStatus("networkmanager", "stopped",
                             _("NetworkManager does not answer properly ({why}).").format(why=e))]
    paths = list(dict.fromkeys(paths))

    def get_all(serial: int, what: str) -> dict:
        return _get_all(read, serial, what)

    # round 2: every device's properties, every active connection's
    dev_calls = {p: read.bus.call(NM, p, PROPS, "GetAll", "s", (DEVICE_IFACE,)) for p in paths}
    active = _active_paths(read)
    act_calls = {p: read.bus.call(NM, p, PROPS, "GetAll", "s", (ACTIVE_IFACE,)) for p in active or ()}
    read._wait([*dev_calls.values(), *act_calls.values()], NM_TIMEOUT)
    fields: dict[str, dict | None] = {}
    for p in paths:
        try:
            fields[p] = _device_fields(get_all(dev_calls[p], f"{PROPS}.GetAll on {p}"))
        except (_Failed, _Bad):  # vanished, failed or malformed: the source skips it
            fields[p] = None
    vpn_props: dict[str, dict] = {}
    for p in active or ():
        try:
            props = get_all(act_calls[p], f"{PROPS}.GetAll on {p}")
            if "Vpn" not in props or not _prop(props, "Vpn", _BOOL):
                continue
            vpn_props[p] = props
        except (_Failed, _Bad):
            continue
    # round 3: carriers, IPv6 configurations, the VPNs' configurations
    wired = {p: read.bus.call(NM, p, PROPS, "GetAll", "s", (WIRED_IFACE,))
             for p, f in fields.items() if f is not None and f["dtype"] in _WIRED_TYPES}
    ip6 = {p: read.bus.call(NM, f["ip6_path"], PROPS, "GetAll", "s", (IP6_IFACE,))
           for p, f in fields.items() if f is not None and f["ip6_path"] != "/"}
    vpn_cfg: dict[tuple[str, str], int] = {}
    for p, props in vpn_props.items():
        try:
            for key, iface in (("Ip4Config", IP4_IFACE), ("Ip6Config", IP6_IFACE)):
                cfg = _prop(props, key, _PATH) if key in props else "/"
                if cfg != "/":
                    vpn_cfg[(p, key)] = read.bus.call(NM, cfg, PROPS, "GetAll", "s", (iface,))
        except _Bad:
            pass  # the VPN is skipped below, as its props are read again there
    read._wait([*wired.values(), *ip6.values(), *vpn_cfg.values()], NM_TIMEOUT)

    def addresses(v: Any) -> tuple[tuple[str, int], ...]:
        return nm_facts.address_data(v, _unwrap)

    devices = []
    for p in paths:
        f = fields[p]
        if f is None:
            continue
        try:
            carrier = None
            if p in wired:
                try:
                    w = get_all(wired[p], f"{PROPS}.GetAll on {p}")
                    carrier = _prop(w, "Carrier", _BOOL) if "Carrier" in w else None
                except _Failed as e:
                    if e.name in _VANISHED:
                        continue  # the device went: the source skips it
                except _Bad:
                    pass
            addrs: tuple = ()
            if p in ip6:
                try:
                    props = get_all(ip6[p], f"{PROPS}.GetAll on {f['ip6_path']}")
                    addrs = addresses(props["AddressData"]) if "AddressData" in props else ()
                except _Failed:
                    addrs = ()
        except _Bad:
            continue  # malformed: the source skips the device
        devices.append(NmDevice(path=p, ifindex=_ifindex(f, ifindex_of), name=f["name"],
                                kind=device_kind(f["dtype"]), state=f["state"], managed=f["managed"],
                                ip6_addresses=addrs, carrier=carrier, ip_interface=f["ip_iface"]))
    events: list = [NmSnapshot(tuple(devices))]
    if active is not None:
        vpns = []
        for p, props in vpn_props.items():
            try:
                name = _prop(props, "Id", _STR) if "Id" in props else p.rsplit("/", 1)[-1]
                addrs_v: list = []
                for key, iface in (("Ip4Config", IP4_IFACE), ("Ip6Config", IP6_IFACE)):
                    if (_prop(props, key, _PATH) if key in props else "/") != "/":
                        try:
                            props2 = get_all(vpn_cfg[(p, key)], f"{PROPS}.GetAll")
                        except _Failed as e:
                            if e.name in _VANISHED:
                                continue
                            raise
                        addrs_v += addresses(props2["AddressData"]) if "AddressData" in props2 else ()
            except (_Failed, _Bad):
                continue
            vpns.append(NmVpn(p, str(name), tuple(addrs_v)))
        events.append(NmVpnsSet(tuple(vpns)))
    events.append(SourceStatus("networkmanager", "running"))
    return events


def _get_all(read: BusRead, serial: int, what: str) -> dict:
    (props,) = _checked(read.got.get(serial), what, "a{sv}")
    return props


def _active_paths(read: BusRead) -> list[str] | None:
    """``ActiveConnections`` (None when it cannot be read: the source then sends no VPN list)."""
    r = read.reply("active")
    if r is None or r.error is not None or r.signature != "v":
        return None
    v = r.body[0]
    if not (isinstance(v, tuple) and len(v) == 2 and v[0] == "ao"):
        return None
    return list(dict.fromkeys(v[1]))


def _device_fields(props: dict) -> dict[str, Any]:
    return nm_facts.device_fields(props, _unwrap, full=True)


def _ifindex(f: dict, ifindex_of: Callable[[str], int | None]) -> int:
    """The source's ``_resolve_ifindex``: the ``Ifindex`` property, else ``IpInterface`` then ``Interface``
    (a modem: ``IpInterface`` only) in this network namespace; 0 when unknown."""
    return nm_facts.resolve_ifindex(f["nm_ifindex"], f["ip_iface"], f["name"], f["dtype"], ifindex_of)
