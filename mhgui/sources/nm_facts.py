"""NetworkManager's facts without D-Bus or asyncio: its device types as mhgui's interface kinds, the errors
that mean gone or refused, and the checks of its replies (device properties, ``AddressData``, the ifindex
of a device), shared by its source (:mod:`mhgui.sources.networkmanager`, dbus-fast) and ``mhctl status``'s
fast path (:mod:`mhgui.status_nm`, jeepney)."""

from __future__ import annotations

from typing import Any, Callable

from ..core.model import InterfaceKind, normalise_address

__all__ = [
    "BOOL_SIGS", "DENIED_ERRORS", "DEVICE_KEYS", "DEVICE_KINDS", "DEVICE_PROPS", "INT_SIGS", "MODEM_TYPE",
    "PATH_SIGS", "STR_SIGS", "VANISHED_ERRORS", "WIRED_TYPES", "BadReply", "Unwrap", "address_data",
    "device_fields", "device_kind", "prop", "resolve_ifindex",
]

#: ``NMDeviceType`` numbers (NetworkManager's ``nm-dbus-interface.h``, enum
#: ``NMDeviceType``) mapped to our kinds; every other type is ``OTHER`` (an access
#: link of no particular kind: bond, VLAN, team, InfiniBand, Bluetooth, ADSL, PPP...).
DEVICE_KINDS: dict[int, InterfaceKind] = {
    1: InterfaceKind.ETHERNET,  # NM_DEVICE_TYPE_ETHERNET
    20: InterfaceKind.ETHERNET,  # NM_DEVICE_TYPE_VETH
    2: InterfaceKind.WIFI,  # NM_DEVICE_TYPE_WIFI
    8: InterfaceKind.WWAN,  # NM_DEVICE_TYPE_MODEM
    16: InterfaceKind.TUNNEL,  # NM_DEVICE_TYPE_TUN (OpenVPN, wireguard-go...)
    17: InterfaceKind.TUNNEL,  # NM_DEVICE_TYPE_IP_TUNNEL (ip6tnl, sit, gre, ...)
    29: InterfaceKind.TUNNEL,  # NM_DEVICE_TYPE_WIREGUARD
    32: InterfaceKind.LOOPBACK,  # NM_DEVICE_TYPE_LOOPBACK (NetworkManager >= 1.42)
    # virtual links, no access links
    13: InterfaceKind.VIRTUAL,  # NM_DEVICE_TYPE_BRIDGE
    18: InterfaceKind.VIRTUAL,  # NM_DEVICE_TYPE_MACVLAN (macvtap too)
    19: InterfaceKind.VIRTUAL,  # NM_DEVICE_TYPE_VXLAN
    22: InterfaceKind.VIRTUAL,  # NM_DEVICE_TYPE_DUMMY
    24: InterfaceKind.VIRTUAL,  # NM_DEVICE_TYPE_OVS_INTERFACE
    25: InterfaceKind.VIRTUAL,  # NM_DEVICE_TYPE_OVS_PORT
    26: InterfaceKind.VIRTUAL,  # NM_DEVICE_TYPE_OVS_BRIDGE
    31: InterfaceKind.VIRTUAL,  # NM_DEVICE_TYPE_VRF
    34: InterfaceKind.VIRTUAL,  # NM_DEVICE_TYPE_IPVLAN (NetworkManager >= 1.52)
    35: InterfaceKind.VIRTUAL,  # NM_DEVICE_TYPE_GENEVE (NetworkManager >= 1.58)
}


def device_kind(device_type: int) -> InterfaceKind:
    """Our :class:`InterfaceKind` for an ``NMDeviceType`` number (see :data:`DEVICE_KINDS`)."""
    return DEVICE_KINDS.get(device_type, InterfaceKind.OTHER)


# ------------------------------------------------------------------ replies, in either D-Bus library's values
# The source reads NetworkManager with dbus-fast (a variant is a ``Variant``), ``mhctl status``'s fast path
# with jeepney (a variant is a ``(signature, value)`` tuple): each passes its ``unwrap``, which gives
# ``(signature, value)`` for a variant and None for anything else.
Unwrap = Callable[[Any], "tuple[str, Any] | None"]

#: Errors that mean "the object (or NetworkManager itself) is gone", not a failure.
VANISHED_ERRORS = frozenset(
    {
        "org.freedesktop.DBus.Error.UnknownObject",
        "org.freedesktop.DBus.Error.UnknownMethod",
        "org.freedesktop.DBus.Error.ServiceUnknown",
        "org.freedesktop.DBus.Error.NameHasNoOwner",
    }
)
#: Errors that mean the bus policy or NetworkManager refuses us.
DENIED_ERRORS = frozenset(
    {
        "org.freedesktop.DBus.Error.AccessDenied",
        "org.freedesktop.DBus.Error.AuthFailed",
        "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired",
        "org.freedesktop.NetworkManager.PermissionDenied",
    }
)

#: ``NM_DEVICE_TYPE_MODEM``: ``Interface`` is a control port, only ``IpInterface`` names a network link
MODEM_TYPE = 8
#: Device types whose objects implement ``org.freedesktop.NetworkManager.Device.Wired``
#: (NMDeviceVeth is a subclass of NMDeviceEthernet).
WIRED_TYPES = frozenset({1, 20})

INT_SIGS = frozenset("ynqiuxt")
STR_SIGS = frozenset({"s"})
BOOL_SIGS = frozenset({"b"})
PATH_SIGS = frozenset({"o"})

#: ``Device`` properties read: (D-Bus name, field name, accepted signatures)
DEVICE_PROPS: tuple[tuple[str, str, frozenset[str]], ...] = (
    ("Interface", "name", STR_SIGS),
    ("IpInterface", "ip_iface", STR_SIGS),
    ("Ifindex", "nm_ifindex", INT_SIGS),
    ("DeviceType", "dtype", INT_SIGS),
    ("State", "state", INT_SIGS),
    ("Managed", "managed", BOOL_SIGS),
    ("Ip6Config", "ip6_path", PATH_SIGS),
)
DEVICE_KEYS = frozenset(k for k, _, _ in DEVICE_PROPS)


class BadReply(ValueError):
    """A reply or signal of NetworkManager's did not have the documented shape."""


def prop(props: dict, key: str, sigs: frozenset[str], unwrap: Unwrap) -> Any:
    """``props[key]``'s value when it is a variant of one of the signatures ``sigs``; raises KeyError
    when absent, :class:`BadReply` for another type."""
    v = props[key]
    sv = unwrap(v)
    if sv is None or sv[0] not in sigs:
        got = sv[0] if sv is not None else type(v).__name__
        raise BadReply(f"property {key} has D-Bus type {got!r}, expected one of {sorted(sigs)}")
    return sv[1]


def device_fields(props: Any, unwrap: Unwrap, *, full: bool) -> dict[str, Any]:
    """The fields of :data:`DEVICE_PROPS` (``name``, ``ip_iface``, ``nm_ifindex``, ``dtype``, ``state``,
    ``managed``, ``ip6_path``) from a ``Device`` property dict (GetAll or PropertiesChanged).

    ``full``: a GetAll reply, where ``Interface``, ``DeviceType`` and ``State`` are required and the rest
    get defaults (``IpInterface`` "", ``Ifindex`` None, ``Managed`` None, ``Ip6Config`` "/"). Raises
    :class:`BadReply`.
    """
    if not isinstance(props, dict):
        raise BadReply(f"properties are {type(props).__name__}, not a dict")
    out: dict[str, Any] = {}
    for key, field, sigs in DEVICE_PROPS:
        if key in props:
            out[field] = prop(props, key, sigs, unwrap)
    if full:
        missing = [k for k in ("Interface", "DeviceType", "State") if k not in props]
        if missing:
            raise BadReply(f"device lacks {', '.join(missing)}")
        out.setdefault("ip_iface", "")
        out.setdefault("nm_ifindex", None)
        out.setdefault("managed", None)
        out.setdefault("ip6_path", "/")
    if (out.get("nm_ifindex") or 0) < 0:
        raise BadReply(f"negative Ifindex {out['nm_ifindex']}")
    return out


def address_data(v: Any, unwrap: Unwrap) -> tuple[tuple[str, int], ...]:
    """``IP6Config.AddressData`` or ``IP4Config.AddressData`` (aa{sv}) as ``(("2001:db8::1", 64), ...)``
    (addresses normalised, RFC 5952); raises :class:`BadReply`."""
    sv = unwrap(v)
    if sv is None or sv[0] != "aa{sv}":
        got = sv[0] if sv is not None else type(v).__name__
        raise BadReply(f"AddressData has D-Bus type {got!r}, expected 'aa{{sv}}'")
    out: list[tuple[str, int]] = []
    for entry in sv[1]:
        try:
            addr = prop(entry, "address", STR_SIGS, unwrap)
            prefix = prop(entry, "prefix", INT_SIGS, unwrap)
        except KeyError as e:
            raise BadReply(f"AddressData entry lacks {e}") from None
        try:
            addr = normalise_address(addr)
        except ValueError:
            raise BadReply(f"AddressData address {addr!r} is not an IP address") from None
        if not 0 <= prefix <= 128:
            raise BadReply(f"AddressData prefix {prefix} out of range")
        out.append((addr, prefix))
    return tuple(out)


def resolve_ifindex(
    nm_ifindex: int | None,
    ip_iface: str,
    name: str,
    dtype: int,
    ifindex_of: Callable[[str], int | None],
    on_error: Callable[[str], None] | None = None,
) -> int:
    """The kernel ifindex of a device: its ``Ifindex`` property (``nm_ifindex``) where the service has
    one, else ``ifindex_of(IpInterface or Interface)``; 0 when unknown. A modem resolves by ``IpInterface``
    only (its ``Interface`` is a control port, no network link): 0 until its data interface exists.
    ``ifindex_of`` raising OSError or ValueError means "no such link"; anything else it raises is passed
    (with the name) to ``on_error``, called inside the ``except`` block, and counts as no link too."""
    if nm_ifindex is not None:
        return nm_ifindex
    # a modem's Interface is its control port: a netdev of that name is some other link
    names = (ip_iface,) if dtype == MODEM_TYPE else (ip_iface, name)
    for n in dict.fromkeys(n for n in names if n):
        try:
            idx = ifindex_of(n)
        except (OSError, ValueError):
            continue
        except Exception:
            if on_error is not None:
                on_error(n)
            continue
        if isinstance(idx, int) and idx > 0:
            return idx
    return 0
