"""The counting rules as they were before issue 14 (and before issue 13.5): a test oracle, never used by the app.

Kept verbatim from commit 0dc5c04: ``_on_link_prefix`` scans and sorts every address of the interface for
each /128 (quadratic: 9.2 s at 5,000 /128s); the tests check that mhgui.core.analysis, linear and
incremental, gives the same answer wherever the rules did not change (no VPN, no virtual links).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from mhgui.core.model import Address, AddressFlag, AddressKey, HomeAddress, Interface, InterfaceKind, NodeState

AF_INET6 = 10
ROLE_HOA = "hoa"
ROLE_COA = "coa"
ROLE_COA_DEPRECATED = "coa-deprecated"
ROLE_HOME_LINK = "home-link"
ROLE_TEMPORARY = "temporary"
ROLE_TENTATIVE = "tentative"
ROLE_LINK_LOCAL = "link-local"
ROLE_UNUSABLE = "unusable"
ROLE_OTHER = "other"

_NON_ACCESS = (InterfaceKind.TUNNEL, InterfaceKind.LOOPBACK)


@dataclass(frozen=True, slots=True)
class AddressRole:
    """The role of one address and a one-line reason for the user."""

    role: str
    reason: str
    counted: bool  # contributes to z


@dataclass(frozen=True, slots=True)
class HomeStatus:
    hoa: HomeAddress
    at_home: bool
    home_ifindex: int | None  # the interface on the home link, when at home


@dataclass(frozen=True, slots=True)
class Analysis:
    """Result of :func:`analyse`.

    ``x``, ``y``, ``z``: counts; ``roles``: role per address key;
    ``coa_prefixes``: the (ifindex, prefix) pairs counted in z (IPv4 prefixes only with ``ipv4_coas``);
    ``active``: ifindexes counted in x; ``home_links``: ifindexes on a home link.
    """

    x: int
    y: int
    z: int
    roles: dict[AddressKey, AddressRole]
    coa_prefixes: frozenset[tuple[int, ipaddress.IPv6Network | ipaddress.IPv4Network]]
    active: frozenset[int]
    home_links: frozenset[int]
    homes: tuple[HomeStatus, ...]


def _is_link_up(iface: Interface | None) -> bool:
    return iface is not None and iface.up


def _home_of(addr: Address, hoa_nets: list) -> HomeAddress | None:
    if addr.family != AF_INET6:
        return None
    ip = addr.ip
    for h, net in hoa_nets:
        if ip in net:
            return h
    return None


def _alive(addr: Address, now: float) -> bool:
    """Valid, not tentative, not DAD-failed."""
    if int(addr.flags) & (_TENTATIVE | _DADFAILED):
        return False
    rem = addr.valid_remaining(now)
    return rem is None or rem > 0


def analyse(state: NodeState, now: float, *, allow_ula: bool = False, ipv4_coas: bool = False) -> Analysis:
    """Apply the counting rules (module docstring) to ``state`` at time ``now`` (seconds, model clock).

    ``allow_ula``: unique local addresses may be CoAs (the user's setting); ``ipv4_coas``: the
    connected daemon registers IPv4 care-of addresses (RFC 5555), so IPv4 addresses count too.
    """
    hoas = state.home_addresses
    hoa_ips = {ipaddress.ip_address(h.address) for h in hoas}
    hoa_nets = [(h, h.network) for h in hoas]

    # home links: up non-tunnel interfaces with a live address in a home prefix
    home_links: dict[int, list[HomeAddress]] = {}
    for a in state.addresses.values():
        iface = state.interfaces.get(a.ifindex)
        if not _is_link_up(iface) or iface.kind in _NON_ACCESS or not _alive(a, now):
            continue
        h = _home_of(a, hoa_nets)
        if h is not None:
            home_links.setdefault(a.ifindex, []).append(h)

    roles: dict[AddressKey, AddressRole] = {}
    counted: list[Address] = []
    for key, a in state.addresses.items():
        iface = state.interfaces.get(a.ifindex)
        if a.family != AF_INET6 and ipv4_coas:
            r = _role_v4(a, iface, now, a.ifindex in home_links)
        else:
            r = _role(a, iface, now, hoa_ips, a.ifindex in home_links, state.bound_coas, allow_ula)
        roles[key] = r
        if r.counted:
            counted.append(a)
    if ipv4_coas:  # a dual-stack uplink is one path: its IPv4 CoA is the engine's fallback, not another CoA
        with_v6 = {a.ifindex for a in counted if a.family == AF_INET6}
        for a in [a for a in counted if a.family != AF_INET6 and a.ifindex in with_v6]:
            roles[a.key] = AddressRole(ROLE_COA, "IPv4 care-of address (RFC 5555), used when the home agent "
                                       "has no IPv6 address: not counted, this link counts by its IPv6 one", False)
            counted.remove(a)
    coa_prefixes = {(a.ifindex, _on_link_prefix(a, state)) for a in counted}

    coa_ifaces = {i for i, _ in coa_prefixes}
    active = {
        i for i, iface in state.interfaces.items()
        if iface.up and iface.kind not in _NON_ACCESS and (i in coa_ifaces or i in home_links)
    }
    homes = []
    for h in hoas:
        where = next((i for i, hs in sorted(home_links.items()) if h in hs), None)
        homes.append(HomeStatus(h, where is not None, where))
    return Analysis(
        x=len(active), y=len(hoas), z=len(coa_prefixes), roles=roles,
        coa_prefixes=frozenset(coa_prefixes), active=frozenset(active),
        home_links=frozenset(home_links), homes=tuple(homes),
    )


def _on_link_prefix(a: Address, state: NodeState) -> ipaddress.IPv6Network | ipaddress.IPv4Network:
    """The prefix a CoA belongs to, for counting z.

    A /128 (DHCPv6 IA_NA, RFC 8415; NetworkManager installs them so) carries no
    prefix of its own: it belongs to the most specific shorter prefix of another
    address on the same interface that contains it, else to its /64 (RFC 4291
    section 2.5.4: global unicast interface identifiers are 64 bits).
    """
    if a.family != AF_INET6 or a.prefixlen < 128:
        return a.network
    best = None
    for other in state.addresses_of(a.ifindex):
        if other.family == AF_INET6 and other.prefixlen < 128 and a.ip in other.network:
            if best is None or other.prefixlen > best.prefixlen:
                best = other.network
    return best or ipaddress.IPv6Network((a.ip, 64), strict=False)


_TENTATIVE, _DADFAILED = int(AddressFlag.TENTATIVE), int(AddressFlag.DADFAILED)
_HOME, _TEMPORARY, _DEPRECATED = int(AddressFlag.HOMEADDRESS), int(AddressFlag.TEMPORARY), int(AddressFlag.DEPRECATED)


def _role(a: Address, iface: Interface | None, now: float, hoa_ips: set, on_home_link: bool,
          bound: frozenset[str], allow_ula: bool) -> AddressRole:
    def no(role: str, reason: str) -> AddressRole:
        return AddressRole(role, reason, False)

    if a.family != AF_INET6:
        return no(ROLE_OTHER, "IPv4 address: Mobile IPv6 care-of addresses are IPv6")
    flags = int(a.flags)
    cls = a.address_class
    if flags & _DADFAILED:
        return no(ROLE_UNUSABLE, "duplicate address detection failed: another node uses this address")
    if a.ip in hoa_ips or flags & _HOME:
        return no(ROLE_HOA, "home address (permanent address of the mobile node)")
    if flags & _TENTATIVE:
        return no(ROLE_TENTATIVE, "tentative: duplicate address detection has not finished")
    if cls == "link-local":
        return no(ROLE_LINK_LOCAL, "link-local: not routable beyond the link")
    if iface is None:
        return no(ROLE_OTHER, "interface unknown")
    if iface.kind is InterfaceKind.LOOPBACK or cls == "loopback":
        return no(ROLE_OTHER, "loopback")
    if iface.kind is InterfaceKind.TUNNEL:
        return no(ROLE_OTHER, "on a tunnel (the mobility daemon's, not an access link)")
    if cls == "multicast":
        return no(ROLE_OTHER, "multicast")
    if on_home_link:
        return no(ROLE_HOME_LINK, "on a home link: addresses here are not care-of addresses (draft 6.2.3)")
    if flags & _TEMPORARY:
        return no(ROLE_TEMPORARY, "temporary (privacy) address: listed, never a care-of address")
    if cls == "ula" and not allow_ula:
        return no(ROLE_OTHER, "unique local address (ULA): not a care-of address unless allowed in settings")
    if cls not in ("global", "ula"):
        return no(ROLE_OTHER, "not a global address")
    if not iface.up:
        return no(ROLE_UNUSABLE, "interface is down or has no carrier")
    valid = a.valid_remaining(now)
    if valid is not None and valid <= 0:
        return no(ROLE_UNUSABLE, "valid lifetime ended")
    pref = a.preferred_remaining(now)
    if flags & _DEPRECATED or (pref is not None and pref <= 0):
        if a.address in bound:
            return AddressRole(ROLE_COA_DEPRECATED, "deprecated but still bound by the mobility daemon: "
                               "counted until its valid lifetime ends", True)
        return no(ROLE_UNUSABLE, "deprecated (preferred lifetime ended): not used for new bindings")
    return AddressRole(ROLE_COA, "usable care-of address", True)


def _role_v4(a: Address, iface: Interface | None, now: float, on_home_link: bool) -> AddressRole:
    """The role of an IPv4 address with a daemon that takes IPv4 care-of addresses (RFC 5555)."""
    def no(role: str, reason: str) -> AddressRole:
        return AddressRole(role, reason, False)

    flags = int(a.flags)
    cls = a.address_class
    if flags & _DADFAILED:
        return no(ROLE_UNUSABLE, "duplicate address detection failed: another node uses this address")
    if flags & _TENTATIVE:
        return no(ROLE_TENTATIVE, "tentative: duplicate address detection has not finished")
    if cls == "link-local":
        return no(ROLE_LINK_LOCAL, "link-local (169.254.0.0/16): not routable beyond the link")
    if iface is None:
        return no(ROLE_OTHER, "interface unknown")
    if iface.kind is InterfaceKind.LOOPBACK or cls == "loopback":
        return no(ROLE_OTHER, "loopback")
    if iface.kind is InterfaceKind.TUNNEL:
        return no(ROLE_OTHER, "on a tunnel (the mobility daemon's, not an access link)")
    if cls == "multicast" or a.ip.is_unspecified:
        return no(ROLE_OTHER, "not a unicast address")
    if a.scope != 0:
        return no(ROLE_OTHER, "not a global-scope address")
    if on_home_link:
        return no(ROLE_HOME_LINK, "on a home link: addresses here are not care-of addresses (draft 6.2.3)")
    if not iface.up:
        return no(ROLE_UNUSABLE, "interface is down or has no carrier")
    valid = a.valid_remaining(now)
    if valid is not None and valid <= 0:
        return no(ROLE_UNUSABLE, "valid lifetime ended")
    if cls == "global":
        return AddressRole(ROLE_COA, "usable IPv4 care-of address (RFC 5555)", True)
    return AddressRole(ROLE_COA, "usable IPv4 care-of address (RFC 5555), private: the home agent is "
                       "reached through NAT44", True)
