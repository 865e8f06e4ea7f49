"""Router advertisements: which router advertised which prefix (pure: bytes and times in, facts out).

The kernel keeps the default routers of a link and the prefixes of a link, but
not which router advertised which prefix. With two routers on one link, each
for its own prefix (two providers on one LAN), a packet must leave through the
router that advertised its source's prefix, or the provider's ingress filter
drops it (draft-montavont-mobileip-multihoming-pb-statement section 6.1.2;
RFC 8028 section 3: "select default routers for each prefix"). This module
learns that from the advertisements themselves; :mod:`mhgui.helper.ra_listener`
feeds it from a raw ICMPv6 socket.

- :func:`parse_ra`: an ICMPv6 Router Advertisement (RFC 4861 section 4.2) with
  its options (section 4.6: Source Link-Layer Address 4.6.1, Prefix
  Information 4.6.2, MTU 4.6.4; others are skipped), from the ICMPv6 header
  on. Malformed input raises :class:`RAError` with one line saying what is
  wrong; never anything else.
- :func:`check_envelope`: the IP-level validity checks of section 6.1.2
  (link-local source, hop limit 255).
- :class:`RouterTable`: per link (ifindex), router link-local address ->
  advertised prefixes, with the router lifetime and each prefix's valid
  lifetime (section 6.3.4); :meth:`RouterTable.adverts` lists what holds at a
  given time. Bounded against floods of forged routers and prefixes.
- :func:`router_solicitation`: the bytes of a Router Solicitation (section
  4.1), so that routers answer right away instead of at their next periodic
  advertisement.

Times are seconds of a monotonic clock (``time.monotonic()``); lifetimes in
the messages are seconds, ``0xffffffff`` meaning infinity.
"""

from __future__ import annotations

import ipaddress
import math
import struct
from dataclasses import dataclass

__all__ = [
    "INFINITY",
    "MAX_LINKS",
    "MAX_PREFIXES_PER_ROUTER",
    "MAX_ROUTERS_PER_LINK",
    "Advert",
    "PrefixInfo",
    "RAError",
    "RouterAdvertisement",
    "RouterTable",
    "check_envelope",
    "parse_ra",
    "router_solicitation",
]

ICMP6_ROUTER_SOLICITATION = 133
ICMP6_ROUTER_ADVERTISEMENT = 134
OPT_SOURCE_LLADDR = 1
OPT_PREFIX_INFO = 3
OPT_MTU = 5
#: A lifetime of all ones is infinity (RFC 4861 section 4.6.2).
INFINITY = 0xFFFF_FFFF
#: Bounds of :class:`RouterTable`: what a link of forged advertisements can make it hold.
MAX_ROUTERS_PER_LINK = 16
MAX_PREFIXES_PER_ROUTER = 16
MAX_LINKS = 1024
_LINK_LOCAL = ipaddress.ip_network("fe80::/10")
_PREFERENCE = {0: "medium", 1: "high", 2: "reserved", 3: "low"}


class RAError(ValueError):
    """A router advertisement that is not acceptable; the message says why (one line)."""


@dataclass(frozen=True)
class PrefixInfo:
    """A Prefix Information option (RFC 4861 section 4.6.2). Lifetimes in seconds (:data:`INFINITY`)."""

    prefix: ipaddress.IPv6Network
    on_link: bool
    autonomous: bool
    valid_lifetime: int
    preferred_lifetime: int


@dataclass(frozen=True)
class RouterAdvertisement:
    """A parsed Router Advertisement (RFC 4861 section 4.2).

    ``router_lifetime``: seconds as a default router (0: not a default router);
    ``reachable_time``/``retrans_timer``: milliseconds (0: unspecified);
    ``preference``: RFC 4191 section 2.2 (``high``, ``medium``, ``low``,
    ``reserved``); ``source_lladdr``: the router's link-layer address, when the
    option is present; ``mtu``: the MTU option's value.
    """

    cur_hop_limit: int
    managed: bool
    other: bool
    preference: str
    router_lifetime: int
    reachable_time: int
    retrans_timer: int
    prefixes: tuple[PrefixInfo, ...] = ()
    source_lladdr: bytes | None = None
    mtu: int | None = None


def parse_ra(data: bytes) -> RouterAdvertisement:
    """The Router Advertisement in ``data`` (the ICMPv6 message: type, code, checksum, ...).

    Checks (RFC 4861 section 6.1.2): type 134, code 0, at least 16 bytes, every
    option complete and of non-zero length; a Prefix Information option of
    length 4 (32 bytes) with a prefix length of at most 128, a Source
    Link-Layer Address option of at least 8 bytes, an MTU option of length 1.
    Bits of a prefix beyond its length are ignored (section 4.6.2). The
    checksum is not verified here: the kernel verifies it for raw ICMPv6
    sockets. Raises :class:`RAError`.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise RAError(f"a router advertisement is bytes, not {type(data).__name__}")
    data = bytes(data)
    if len(data) < 16:
        raise RAError(f"a router advertisement has at least 16 bytes, this has {len(data)}")
    mtype, code = data[0], data[1]
    if mtype != ICMP6_ROUTER_ADVERTISEMENT:
        raise RAError(f"ICMPv6 type {mtype} is not a router advertisement (134)")
    if code != 0:
        raise RAError(f"a router advertisement has code 0, not {code}")
    hop, flags, lifetime, reachable, retrans = struct.unpack_from("!BBHII", data, 4)
    prefixes: list[PrefixInfo] = []
    lladdr: bytes | None = None
    mtu: int | None = None
    off = 16
    while off < len(data):
        if off + 2 > len(data):
            raise RAError(f"option at byte {off} is cut short (1 byte left)")
        otype, olen = data[off], data[off + 1]
        if olen == 0:
            raise RAError(f"option {otype} at byte {off} has length 0 (RFC 4861 section 4.6: discard the packet)")
        end = off + olen * 8
        if end > len(data):
            raise RAError(f"option {otype} at byte {off} claims {olen * 8} bytes, only {len(data) - off} remain")
        body = data[off:end]
        if otype == OPT_PREFIX_INFO:
            if olen != 4:
                raise RAError(f"prefix information option at byte {off} has length {olen}, not 4")
            plen, pflags, valid, preferred = struct.unpack_from("!BBII", body, 2)
            if plen > 128:
                raise RAError(f"prefix information option at byte {off} has prefix length {plen} (> 128)")
            raw = int.from_bytes(body[16:32], "big")
            net = ipaddress.IPv6Network((raw, plen), strict=False)
            prefixes.append(PrefixInfo(net, bool(pflags & 0x80), bool(pflags & 0x40), valid, preferred))
        elif otype == OPT_SOURCE_LLADDR:
            lladdr = bytes(body[2:])  # 6 bytes on Ethernet; other link layers pad to 8-byte units
        elif otype == OPT_MTU:
            if olen != 1:
                raise RAError(f"MTU option at byte {off} has length {olen}, not 1")
            mtu = struct.unpack_from("!I", body, 4)[0]
        off = end
    return RouterAdvertisement(
        cur_hop_limit=hop, managed=bool(flags & 0x80), other=bool(flags & 0x40),
        preference=_PREFERENCE[(flags >> 3) & 0x3], router_lifetime=lifetime,
        reachable_time=reachable, retrans_timer=retrans, prefixes=tuple(prefixes),
        source_lladdr=lladdr, mtu=mtu,
    )


def check_envelope(source: object, hop_limit: object) -> ipaddress.IPv6Address:
    """The router's address, if the IP header of an advertisement is valid (RFC 4861 section 6.1.2):
    a link-local source address and a hop limit of 255 (so that it was sent on this link). ``source``
    may carry a zone (``fe80::1%eth0``). Raises :class:`RAError`."""
    if hop_limit != 255:
        raise RAError(f"hop limit {hop_limit!r} is not 255: not sent on this link")
    text = source.split("%", 1)[0] if isinstance(source, str) else source
    try:
        addr = ipaddress.IPv6Address(text)  # type: ignore[arg-type]
    except (ValueError, TypeError):
        raise RAError(f"source {ascii(source)[:60]} is not an IPv6 address") from None
    if addr not in _LINK_LOCAL:
        raise RAError(f"source {addr} is not link-local (RFC 4861 section 6.1.2)")
    return addr


def router_solicitation() -> bytes:
    """A Router Solicitation (RFC 4861 section 4.1) without options; the kernel fills in the checksum
    of a raw ICMPv6 socket. Send it to ff02::2 with hop limit 255."""
    return struct.pack("!BBHI", ICMP6_ROUTER_SOLICITATION, 0, 0, 0)


# --------------------------------------------------------------------------- the table


@dataclass(frozen=True, order=True)
class Advert:
    """"Router ``router`` on link ``ifindex`` advertised ``prefix``" (text forms), holding now.

    ``default_router``: whether its router lifetime still runs (RFC 4861 section
    6.3.4: a router lifetime of 0 says it is not a default router: it must not
    be a next hop for destinations off the link).
    """

    ifindex: int
    router: str
    prefix: str
    default_router: bool


class _Router:
    __slots__ = ("prefixes", "seen", "until")

    def __init__(self) -> None:
        self.until = -math.inf  # end of the router lifetime
        self.prefixes: dict[ipaddress.IPv6Network, float] = {}  # prefix -> end of its valid lifetime
        self.seen = -math.inf


def _until(now: float, lifetime: int) -> float:
    return math.inf if lifetime == INFINITY else now + lifetime


class RouterTable:
    """Routers and the prefixes each advertised, per link (RFC 4861 section 6.3.4).

    Feed it each valid advertisement (:meth:`feed`); ask :meth:`adverts` what
    holds at a time; call :meth:`expire` at :meth:`next_expiry` to drop what ran
    out. A prefix option with valid lifetime 0 ends that router's prefix; a
    preferred lifetime above the valid one makes the option invalid (RFC 4862
    section 5.5.3 c) and a link-local prefix is ignored (RFC 4861 section
    6.3.4). A router whose router lifetime and prefixes all ran out is
    forgotten. At most :data:`MAX_ROUTERS_PER_LINK` routers per link,
    :data:`MAX_PREFIXES_PER_ROUTER` prefixes per router and :data:`MAX_LINKS`
    links: newcomers beyond are ignored (:attr:`refused` counts them) while
    the known ones stay.
    """

    def __init__(self) -> None:
        self._links: dict[int, dict[str, _Router]] = {}
        self._last: frozenset[Advert] = frozenset()  # what the last feed/expire saw
        self.refused = 0

    def _changed(self, now: float) -> bool:
        view = self._view(now)
        changed, self._last = view != self._last, view
        return changed

    def _view(self, now: float) -> frozenset[Advert]:
        return frozenset(self._adverts(now))

    def _adverts(self, now: float):
        for ifindex, routers in self._links.items():
            for addr, r in routers.items():
                for prefix, until in r.prefixes.items():
                    if until > now:
                        yield Advert(ifindex, addr, str(prefix), r.until > now)

    def adverts(self, now: float) -> tuple[Advert, ...]:
        """What holds at ``now``, sorted."""
        return tuple(sorted(self._adverts(now)))

    def feed(self, now: float, ifindex: int, router: str, ra: RouterAdvertisement) -> bool:
        """Take in ``ra``, received at ``now`` on link ``ifindex`` from ``router`` (its link-local
        address, checked by :func:`check_envelope`). True when :meth:`adverts` changed (not when
        an advertisement only refreshed lifetimes)."""
        if not isinstance(ifindex, int) or ifindex <= 0:
            raise ValueError(f"ifindex {ifindex!r} is not a positive number")
        routers = self._links.get(ifindex)
        if routers is None:
            if len(self._links) >= MAX_LINKS:
                self.refused += 1
                return self._changed(now)
            routers = self._links[ifindex] = {}
        key = str(ipaddress.IPv6Address(router.split("%", 1)[0]))
        r = routers.get(key)
        if r is None:
            if len(routers) >= MAX_ROUTERS_PER_LINK:
                self._expire_link(routers, now)
            if len(routers) >= MAX_ROUTERS_PER_LINK:
                self.refused += 1
                return self._changed(now)
            r = routers[key] = _Router()
        r.seen = now
        r.until = _until(now, ra.router_lifetime) if ra.router_lifetime else -math.inf
        for p in ra.prefixes:
            if p.prefix.subnet_of(_LINK_LOCAL) or p.preferred_lifetime > p.valid_lifetime:
                continue
            if p.valid_lifetime == 0:
                r.prefixes.pop(p.prefix, None)
                continue
            if p.prefix not in r.prefixes and len(r.prefixes) >= MAX_PREFIXES_PER_ROUTER:
                self.refused += 1
                continue
            r.prefixes[p.prefix] = _until(now, p.valid_lifetime)
        self._expire_link(routers, now)
        if not routers:
            del self._links[ifindex]
        return self._changed(now)

    @staticmethod
    def _expire_link(routers: dict[str, _Router], now: float) -> None:
        for addr in list(routers):
            r = routers[addr]
            for p in [p for p, until in r.prefixes.items() if until <= now]:
                del r.prefixes[p]
            if r.until <= now and not r.prefixes:
                del routers[addr]

    def expire(self, now: float) -> bool:
        """Drop what ran out by ``now``; True when :meth:`adverts` changed since the last
        :meth:`feed` or :meth:`expire`."""
        for ifindex in list(self._links):
            self._expire_link(self._links[ifindex], now)
            if not self._links[ifindex]:
                del self._links[ifindex]
        return self._changed(now)

    def forget_link(self, ifindex: int) -> bool:
        """The link is gone (its ifindex may be reused by another): forget its routers. True when
        :meth:`adverts` changed."""
        if self._links.pop(ifindex, None) is None:
            return False
        self._last = frozenset(a for a in self._last if a.ifindex != ifindex)
        return True

    def next_expiry(self, now: float = -math.inf) -> float | None:
        """The earliest time after ``now`` at which something runs out (None: nothing will)."""
        times = [t for routers in self._links.values() for r in routers.values()
                 for t in (r.until, *r.prefixes.values()) if math.isfinite(t) and t > now]
        return min(times) if times else None
