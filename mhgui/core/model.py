"""The node's network state: interfaces, addresses, default routers, home addresses.

Pure data, no Qt and no I/O. Interfaces are keyed by ifindex; addresses by
``AddressKey = (ifindex, address, prefixlen)`` where ``address`` is the
RFC 5952 text form (``ipaddress`` ``compressed``).

Times are seconds on a monotonic clock chosen by the caller (the sources use
``time.monotonic()``); lifetimes are stored as absolute deadlines on that clock
so that the remaining lifetime can be computed at any later ``now``.
"""

from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass, field, fields, replace
# the C module: the `socket` wrapper's enums cost start-up time and only inet_pton is used (issue 14)
from _socket import AF_INET6 as _AF_INET6, inet_pton as _inet_pton
from typing import NamedTuple

from ..i18n import _

#: The kernel's "infinite" lifetime (``INFINITY_LIFE_TIME`` in
#: ``include/net/addrconf.h``): 0xFFFFFFFF seconds.
INFINITE_LIFETIME = 0xFFFFFFFF


class AddressFlag(enum.IntFlag):
    """Kernel ``IFA_F_*`` address flags (``include/uapi/linux/if_addr.h``).

    The 8-bit ``ifa_flags`` field of ``struct ifaddrmsg`` carries the low
    eight; the 32-bit ``IFA_FLAGS`` attribute carries all and wins when present.
    """

    TEMPORARY = 0x01  # IFA_F_TEMPORARY (== IFA_F_SECONDARY for IPv4)
    NODAD = 0x02
    OPTIMISTIC = 0x04
    DADFAILED = 0x08
    HOMEADDRESS = 0x10
    DEPRECATED = 0x20
    TENTATIVE = 0x40
    PERMANENT = 0x80
    MANAGETEMPADDR = 0x100
    NOPREFIXROUTE = 0x200
    MCAUTOJOIN = 0x400
    STABLE_PRIVACY = 0x800


#: Names used in JSON and in the UI, in display order.
FLAG_NAMES: dict[AddressFlag, str] = {
    AddressFlag.TENTATIVE: "tentative",
    AddressFlag.DEPRECATED: "deprecated",
    AddressFlag.TEMPORARY: "temporary",
    AddressFlag.DADFAILED: "dadfailed",
    AddressFlag.HOMEADDRESS: "home",
    AddressFlag.PERMANENT: "permanent",
    AddressFlag.NOPREFIXROUTE: "noprefixroute",
    AddressFlag.MANAGETEMPADDR: "mngtmpaddr",
    AddressFlag.NODAD: "nodad",
    AddressFlag.OPTIMISTIC: "optimistic",
    AddressFlag.STABLE_PRIVACY: "stable-privacy",
    AddressFlag.MCAUTOJOIN: "autojoin",
}


def effective_flags(ifa_flags: int, ifa_flags_attr: int | None, preferred_lft: int | None = None) -> AddressFlag:
    """Combine the 8-bit ``ifa_flags`` header field and the ``IFA_FLAGS`` attribute.

    ``IFA_FLAGS`` (32 bits, Linux 3.14+) wins when present; otherwise only the
    8-bit field is known. Unknown bits are dropped.

    ``preferred_lft``: the remaining preferred lifetime of ``IFA_CACHEINFO`` in seconds, if
    known. 0 means deprecated (RFC 4862 section 5.5.4) whatever the flag says: the kernel sets
    ``IFA_F_DEPRECATED`` only in its next address check, so an address an RA creates with a
    preferred lifetime of 0 first arrives without it, and each refresh of such a prefix sends the
    address once with the flag cleared and once with it set again (``addrconf_prefix_rcv_add_addr``
    clears it and notifies before ``addrconf_verify`` runs).
    """
    raw = ifa_flags_attr if ifa_flags_attr is not None else (ifa_flags & 0xFF)
    known = 0
    for f in AddressFlag:
        known |= f.value
    flags = AddressFlag(raw & known)
    if preferred_lft == 0:
        flags |= AddressFlag.DEPRECATED
    return flags


def flag_names(flags: AddressFlag, family: int = 10) -> list[str]:
    """Flag names in display order (see :data:`FLAG_NAMES`).

    For IPv4 (``family`` 2) bit 0x01 is ``IFA_F_SECONDARY``, not "temporary".
    """
    names = [name for f, name in FLAG_NAMES.items() if flags & f]
    if family == 2:
        names = ["secondary" if n == "temporary" else n for n in names]
    return names


class InterfaceKind(str, enum.Enum):
    ETHERNET = "ethernet"
    WIFI = "wifi"
    WWAN = "wwan"
    TUNNEL = "tunnel"
    LOOPBACK = "loopback"
    #: a virtual link that is no access link: bridge, macvlan/ipvlan, ifb, dummy, vrf, vxlan...
    #: (netlink ``IFLA_INFO_KIND``, NetworkManager ``DeviceType``)
    VIRTUAL = "virtual"
    OTHER = "other"


class AddressKey(NamedTuple):
    ifindex: int
    address: str  # RFC 5952 text
    prefixlen: int


def normalise_address(text: str) -> str:
    """RFC 5952 form of an IPv6 (or dotted IPv4) address; raises ``ValueError``."""
    return ipaddress.ip_address(text.split("%", 1)[0]).compressed


@dataclass(frozen=True, slots=True)
class Interface:
    """One network interface (RTM_NEWLINK), keyed by ``ifindex``.

    ``oper_up``: IFF_UP set and operational state not down; ``carrier``:
    IFF_LOWER_UP (RFC 2863 lowerLayerUp). ``nm_state`` is NetworkManager's
    ``NMDeviceState`` number when NetworkManager knows the device, else None.
    """

    ifindex: int
    name: str
    kind: InterfaceKind = InterfaceKind.OTHER
    admin_up: bool = False
    oper_up: bool = False
    carrier: bool = False
    operstate: str = "unknown"
    mac: str | None = None
    nm_state: int | None = None
    nm_managed: bool | None = None
    kind_source: str = "netlink"  # who told us the kind: "netlink" or "networkmanager"

    @property
    def up(self) -> bool:
        """Up with carrier: what the counting rules call an active interface."""
        # dormant: an 802.1X/WPA handshake has not finished (RFC 2863 section 3.1.12)
        return self.admin_up and self.carrier and self.operstate not in ("down", "lowerlayerdown", "notpresent",
                                                                         "dormant")

    def with_(self, **kw) -> "Interface":
        return replace(self, **kw)


@dataclass(frozen=True, slots=True)
class Address:
    """One address (RTM_NEWADDR).

    ``preferred_until`` / ``valid_until``: absolute deadlines in seconds on the
    model clock, ``None`` for the kernel's infinite lifetime.
    ``scope``: rtnetlink scope number (0 global, 253 link, 254 host).
    """

    ifindex: int
    address: str
    prefixlen: int
    family: int = 10  # AF_INET6
    scope: int = 0
    flags: AddressFlag = AddressFlag(0)
    preferred_until: float | None = None
    valid_until: float | None = None
    # parsed once: the analysis runs over every address after each change
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address = field(init=False, compare=False, repr=False)
    #: what kind of address this is, from its value alone: "global", "ula", "link-local",
    #: "loopback", "multicast" or "other" (RFC 4291 section 2.4, RFC 4193; 2001:db8::/32 counts as global)
    address_class: str = field(init=False, compare=False, repr=False)
    #: :attr:`network`, made on first use (a /128 rarely needs its own: thousands of them cost ms, issue 14)
    _network: ipaddress.IPv4Network | ipaddress.IPv6Network | None = field(
        init=False, compare=False, repr=False, default=None)

    #: :attr:`key`, made once (the store and the analysis ask for it several times per address)
    _key: AddressKey | None = field(init=False, compare=False, repr=False, default=None)

    def __post_init__(self) -> None:
        ip = _parse_ip(self.address)
        object.__setattr__(self, "ip", ip)
        object.__setattr__(self, "address_class", _address_class(ip))
        object.__setattr__(self, "_key", AddressKey(self.ifindex, self.address, self.prefixlen))

    @property
    def network(self) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
        """The prefix ``address/prefixlen`` (host bits cleared)."""
        net = self._network
        if net is None:
            # the family's class, from the address as an int: ip_network((ip, len)) tries IPv4Network first
            # and prints the address to parse it again (30x the cost; most of a new address's analysis, issue 14)
            net = (ipaddress.IPv6Network if self.ip.version == 6 else ipaddress.IPv4Network)(
                (int(self.ip), self.prefixlen), strict=False)
            object.__setattr__(self, "_network", net)
        return net

    @property
    def key(self) -> AddressKey:
        return self._key

    def preferred_remaining(self, now: float) -> float | None:
        """Seconds of preferred lifetime left at ``now`` (never negative); None = infinite."""
        return None if self.preferred_until is None else max(0.0, self.preferred_until - now)

    def valid_remaining(self, now: float) -> float | None:
        """Seconds of valid lifetime left at ``now`` (never negative); None = infinite."""
        return None if self.valid_until is None else max(0.0, self.valid_until - now)


#: the fields of :class:`Address` that only count down (see :func:`address_changed`)
_LIFETIME_FIELDS = ("preferred_until", "valid_until")
_STATE_FIELDS = tuple(f.name for f in fields(Address) if f.compare and f.name not in _LIFETIME_FIELDS)


def address_changed(old: Address, new: Address) -> bool:
    """True when ``new`` differs from ``old`` in more than where its lifetimes end.

    Lifetimes count down and every router advertisement that refreshes a prefix restarts them:
    a new deadline alone is no change (the model keeps the newer one quietly). Everything else
    counts: flags (deprecated included, see :func:`effective_flags`), scope, and a lifetime that
    becomes finite or infinite. The kernel reports the moments that matter as flags or removals
    (deprecation sets ``IFA_F_DEPRECATED``, the end of the valid lifetime removes the address).
    """
    if any(getattr(old, n) != getattr(new, n) for n in _STATE_FIELDS):
        return True
    return any((getattr(old, n) is None) != (getattr(new, n) is None) for n in _LIFETIME_FIELDS)


_ULA = ipaddress.IPv6Network("fc00::/7")
_DOC = ipaddress.IPv6Network("2001:db8::/32")


def _parse_ip(text) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """``ipaddress.ip_address(text)``, faster for the plain IPv6 text the kernel's tools print: parsed by
    ``inet_pton(3)`` (same value), anything else (a scope ``%id``, IPv4, an int, a bad text: its error)
    by :mod:`ipaddress` as before."""
    if isinstance(text, str) and ":" in text and "%" not in text:
        try:
            return ipaddress.IPv6Address(int.from_bytes(_inet_pton(_AF_INET6, text), "big"))
        except OSError:  # not an IPv6 address for inet_pton: ipaddress says why
            pass
    return ipaddress.ip_address(text)


def _address_class(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    x = int(ip)
    if ip.version == 6 and (x >> 32) != 0xFFFF:  # not IPv4-mapped: prefix tests on the integer
        if (x >> 118) == 0x3FA:  # fe80::/10 (ipaddress' is_link_local)
            return "link-local"
        if x == 1:  # ::1
            return "loopback"
        if (x >> 120) == 0xFF:  # ff00::/8
            return "multicast"
        if (x >> 121) == 0x7E:  # fc00::/7
            return "ula"
        if (x >> 96) == 0x20010DB8 or ip.is_global:  # 2001:db8::/32 first: is_global scans a list
            return "global"
        return "other"
    if ip.is_link_local:
        return "link-local"
    if ip.is_loopback:
        return "loopback"
    if ip.is_multicast:
        return "multicast"
    if ip.version == 6 and ip in _ULA:
        return "ula"
    if (ip.version == 6 and ip in _DOC) or ip.is_global:  # the cheap test first (is_global scans a list)
        return "global"  # RFC 3849 documentation prefix too, so labs and examples work
    return "other"


def lifetime_deadline(lft: int | None, received_at: float) -> float | None:
    """Absolute deadline for a kernel lifetime ``lft`` (seconds; 0xFFFFFFFF = infinite)."""
    if lft is None or lft >= INFINITE_LIFETIME:
        return None
    return received_at + lft


@dataclass(frozen=True, slots=True)
class HomeAddress:
    """A configured home address (RFC 6275 section 2), e.g. from ``MnHomeLink``.

    ``home_prefix`` is the home subnet prefix (``HomePrefix``, else the
    ``HomeAddress`` prefix length); ``home_agent`` is None for ``::`` (DHAAD).
    ``origin``: ``"mip6d.conf:LINE"`` or ``"settings"``.
    """

    address: str
    prefixlen: int
    home_agent: str | None
    home_link: str | None = None  # MnHomeLink interface name
    home_prefix: str | None = None  # "2001:db8:1::/64"
    origin: str = "settings"

    @property
    def network(self) -> ipaddress.IPv6Network:
        if self.home_prefix:
            return ipaddress.IPv6Network(self.home_prefix, strict=False)
        return ipaddress.IPv6Network(f"{self.address}/{self.prefixlen}", strict=False)


#: shortest home prefix accepted: a shorter one would make nearly every address "at home"
MIN_HOME_PREFIXLEN = 16


def home_address_problem(h: HomeAddress) -> str | None:
    """Why ``h`` cannot be a home address, or None.

    A HoA is a global unicast (or ULA) address (RFC 6275 section 2: "a unicast
    routable address"); its home prefix contains it and is at least
    :data:`MIN_HOME_PREFIXLEN` bits long.
    """
    try:
        ip = ipaddress.IPv6Address(h.address)
        net = h.network
    except ValueError as e:
        return _("not an IPv6 address or prefix ({why})").format(why=e)
    cls = _address_class(ip)
    if cls not in ("global", "ula"):
        return _("{address} is a {kind} address, not a routable unicast address").format(address=h.address, kind=cls)
    if ip not in net:
        return _("home prefix {prefix} does not contain {address}").format(prefix=net, address=h.address)
    if net.prefixlen < MIN_HOME_PREFIXLEN or h.prefixlen < MIN_HOME_PREFIXLEN:
        return _("prefix length /{n} is shorter than /{min}").format(n=min(net.prefixlen, h.prefixlen),
                                                                     min=MIN_HOME_PREFIXLEN)
    return None


@dataclass(slots=True)
class NodeState:
    """Everything known about the node. Mutable only through :class:`~mhgui.core.state.StateStore`."""

    interfaces: dict[int, Interface] = field(default_factory=dict)
    addresses: dict[AddressKey, Address] = field(default_factory=dict)
    #: ifindex -> set of IPv6 default router addresses (RFC 5952 text)
    routers: dict[int, frozenset[str]] = field(default_factory=dict)
    home_addresses: tuple[HomeAddress, ...] = ()
    #: CoAs the mobility daemon has bound (from its binding update list); empty without a daemon
    bound_coas: frozenset[str] = frozenset()
    #: addresses (RFC 5952 text) that belong to a VPN connection, with its name (NetworkManager's
    #: active VPN connections, whose addresses may sit on an access interface): never care-of addresses
    vpn_addresses: dict[str, str] = field(default_factory=dict)

    def addresses_of(self, ifindex: int) -> list[Address]:
        return sorted(
            (a for a in self.addresses.values() if a.ifindex == ifindex),
            key=lambda a: (a.family, a.address, a.prefixlen),
        )
