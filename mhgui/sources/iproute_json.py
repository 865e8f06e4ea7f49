"""The kernel's links, addresses and IPv6 default routers from iproute2's JSON output (``ip -j``).

For one-shot readers (``mhctl status``): one ``ip -d -j addr show`` (links with their
``linkinfo`` and every address, one process) and one ``ip -6 -j route show table main
default``, run side by side, parsed into the same :class:`~mhgui.core.state.NetlinkSnapshot`
the rtnetlink source (:mod:`mhgui.sources.netlink`) makes from its own dump. iproute2 decodes
the netlink messages in C, so thousands of addresses cost milliseconds, and importing this
module loads neither asyncio nor pyroute2.

Field mapping (iproute2 ``ip/ipaddress.c``, ``ip/iproute.c``; kernel
``include/uapi/linux/if_addr.h``, ``if_arp.h``):

- link: ``ifindex``, ``ifname``, ``flags`` (names: ``UP`` = IFF_UP, ``LOWER_UP`` =
  IFF_LOWER_UP), ``operstate`` (``UP``...), ``link_type`` (ARPHRD_* as iproute2 names it,
  ``[N]`` for a number it has no name for), ``linkinfo.info_kind`` (IFLA_INFO_KIND, with
  ``-d``), ``address`` (IFLA_ADDRESS);
- address: ``family`` (``inet``/``inet6``), ``local`` (IFA_LOCAL, else IFA_ADDRESS: as the
  rtnetlink source takes it), ``prefixlen``, ``scope`` (a name of ``rt_scopes`` or a
  number), one boolean per IFA_F_* flag set (``temporary``/``secondary`` for 0x01; the
  permanent bit is printed the other way round, as ``dynamic`` when it is *not* set),
  ``valid_life_time``/``preferred_life_time`` (IFA_CACHEINFO, seconds, 4294967295 = forever);
- default route: ``dst`` ``default`` in the main table, ``gateway`` and ``dev``, or
  ``nexthops`` (ECMP: each with ``gateway`` and ``dev``).

Errors: :class:`IpJsonError` (a sentence) when ``ip`` is missing, fails, times out, or prints
something that is not the JSON described above. Malformed single entries are skipped, as the
rtnetlink source skips malformed messages.
"""

from __future__ import annotations

import json
import time
from typing import Callable

from ..core.model import Address, Interface, effective_flags, lifetime_deadline, normalise_address
from ..core.state import NetlinkSnapshot
from .iproute_run import IP_TIMEOUT, IpJsonError, IpRun
from .linkinfo import (
    ARPHRD_ETHER, ARPHRD_IP6GRE, ARPHRD_IPGRE, ARPHRD_LOOPBACK, ARPHRD_NONE, ARPHRD_PPP, ARPHRD_RAWIP, ARPHRD_SIT,
    ARPHRD_TUNNEL, ARPHRD_TUNNEL6, IFF_LOWER_UP, IFF_UP, ifname_text, link_kind, read_devtype,
)

__all__ = ["IpJsonError", "IpJsonOnce", "IpRun", "IP_TIMEOUT", "read_snapshot", "snapshot_of", "parse_addr_dump",
           "parse_default_routes", "LINK_TYPES"]


#: iproute2's names of the ARPHRD_* types the interface kind depends on (lib/ll_types.c)
LINK_TYPES = {"ether": ARPHRD_ETHER, "loopback": ARPHRD_LOOPBACK, "ppp": ARPHRD_PPP, "rawip": ARPHRD_RAWIP,
              "tunnel": ARPHRD_TUNNEL, "tunnel6": ARPHRD_TUNNEL6, "sit": ARPHRD_SIT, "gre": ARPHRD_IPGRE,
              "ip6gre": ARPHRD_IP6GRE, "none": ARPHRD_NONE}
#: a link type iproute2 names but the kind does not depend on (``ieee802.11``, ``infiniband``...)
_OTHER_TYPE = -1

#: IFA_F_* bit of each flag name iproute2 prints (``permanent`` is printed as ``dynamic`` when unset)
_ADDR_FLAGS = {"secondary": 0x01, "temporary": 0x01, "nodad": 0x02, "optimistic": 0x04, "dadfailed": 0x08,
               "home": 0x10, "deprecated": 0x20, "tentative": 0x40, "mngtmpaddr": 0x100, "noprefixroute": 0x200,
               "autojoin": 0x400, "stable-privacy": 0x800}
_PERMANENT = 0x80
_FAMILIES = {"inet": 2, "inet6": 10}
#: rtnetlink scope numbers of iproute2's scope names (/etc/iproute2/rt_scopes)
_SCOPES = {"global": 0, "universe": 0, "site": 200, "link": 253, "host": 254, "nowhere": 255}


def _text(raw: str) -> str:
    """A name as the rtnetlink source shows it: bytes that are not UTF-8 as ``\\xNN`` escapes
    (stdout is decoded with ``surrogateescape``)."""
    return ifname_text(raw.encode("utf-8", "surrogateescape")) if isinstance(raw, str) else str(raw)


def _link_type(v: object) -> int:
    if isinstance(v, str):
        if v in LINK_TYPES:
            return LINK_TYPES[v]
        if v.startswith("[") and v.endswith("]") and v[1:-1].isdigit():
            return int(v[1:-1])
    return _OTHER_TYPE


def _scope(v: object) -> int:
    if isinstance(v, bool):
        raise ValueError(v)
    if isinstance(v, int):
        return v
    if isinstance(v, str):
        return _SCOPES[v] if v in _SCOPES else int(v)
    raise ValueError(v)


def parse_link(entry: dict, devtype: str | None = None) -> Interface | None:
    """One link of ``ip -d -j addr show`` as :class:`Interface` (as :func:`mhgui.sources.netlink.parse_link`
    makes it from RTM_NEWLINK); None when malformed."""
    try:
        ifindex = entry.get("ifindex")
        if type(ifindex) is not int:
            return None
        names = entry.get("flags") or ()
        if not isinstance(names, list):
            return None
        flags = (IFF_UP if "UP" in names else 0) | (IFF_LOWER_UP if "LOWER_UP" in names else 0)
        name = _text(entry.get("ifname") or f"if{ifindex}")
        operstate = str(entry.get("operstate") or "unknown").lower()
        info = entry.get("linkinfo")
        info_kind = info.get("info_kind") if isinstance(info, dict) else None
        mac = entry.get("address")
    except (AttributeError, TypeError, ValueError):
        return None
    return Interface(
        ifindex=ifindex, name=name, kind=link_kind(_link_type(entry.get("link_type")), info_kind, devtype),
        admin_up=bool(flags & IFF_UP), oper_up=operstate in ("up", "unknown"), carrier=bool(flags & IFF_LOWER_UP),
        operstate=operstate, mac=mac if isinstance(mac, str) else None,
    )


#: effective flags per (IFA_F_* bits, preferred lifetime 0): a handful of values, thousands of addresses
_FLAGS: dict = {}
_HEX = frozenset("0123456789abcdef:")


def _canonical(text: str, family: int) -> str:
    """RFC 5952 text of an address as ``ip`` prints it. iproute2 prints with ``inet_ntop``, whose IPv6
    text is already RFC 5952's (lower case, no leading zeros, the first longest run of two or more zero
    groups as ``::``) except the dotted forms (``::ffff:1.2.3.4``): those, and anything unexpected,
    go through :func:`normalise_address`, which also validates."""
    if family == 10 and _HEX.issuperset(text) and ":::" not in text:
        return text
    return normalise_address(text)


def parse_address(ifindex: int, a: dict, now: float) -> Address | None:
    """One ``addr_info`` entry as :class:`Address` (as :func:`mhgui.sources.netlink.parse_addr`); None when
    malformed. ``now``: the clock reading the lifetimes count from."""
    try:
        family = _FAMILIES[a["family"]]
        raw = a.get("local") or a.get("address")
        prefixlen = a["prefixlen"]
        if not isinstance(raw, str) or type(prefixlen) is not int:
            return None
        bits = 0 if a.get("dynamic") else _PERMANENT
        for k, v in a.items():
            if v is True and k in _ADDR_FLAGS:
                bits |= _ADDR_FLAGS[k]
        preferred, valid = a.get("preferred_life_time"), a.get("valid_life_time")
        if type(preferred) is not int or preferred < 0:
            preferred = None
        if type(valid) is not int or valid < 0:
            valid = None
        memo = (bits, preferred == 0)
        flags = _FLAGS.get(memo)
        if flags is None:
            flags = _FLAGS[memo] = effective_flags(bits, bits, preferred)
        scope = a.get("scope", 0)
        return Address(
            ifindex=ifindex, address=_canonical(raw, family), prefixlen=prefixlen, family=family,
            scope=_SCOPES[scope] if scope in _SCOPES else _scope(scope), flags=flags,
            preferred_until=lifetime_deadline(preferred, now), valid_until=lifetime_deadline(valid, now),
        )
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


def _loads(out: bytes, what: str) -> list:
    try:
        value = json.loads(out.decode("utf-8", "surrogateescape"))
    except ValueError as e:  # JSONDecodeError, and UnicodeDecodeError cannot happen with surrogateescape
        raise IpJsonError(f"`{what}` printed something that is not JSON ({e}): {out[:80]!r}") from None
    if not isinstance(value, list):
        raise IpJsonError(f"`{what}` printed a JSON {type(value).__name__}, not a list")
    return value


def parse_addr_dump(out: bytes, now: float, devtype: Callable[[str], str | None] | None = None,
                    what: str = "ip -d -j addr show") -> tuple[tuple[Interface, ...], tuple[Address, ...]]:
    """``ip -d -j addr show``'s output: the links and their addresses. ``devtype(name)``: the sysfs DEVTYPE
    of a link (None: not read). Raises :class:`IpJsonError` when the output is not a JSON list."""
    links, addrs = [], []
    for entry in _loads(out, what):
        if not isinstance(entry, dict):
            continue
        raw_name = entry.get("ifname")
        dt = devtype(raw_name) if devtype is not None and isinstance(raw_name, str) else None
        i = parse_link(entry, dt)
        if i is None:
            continue
        links.append(i)
        info = entry.get("addr_info") or ()
        if not isinstance(info, list):
            continue
        for a in info:
            if isinstance(a, dict):
                addr = parse_address(i.ifindex, a, now)
                if addr is not None:
                    addrs.append(addr)
    return tuple(links), tuple(addrs)


def parse_default_routes(out: bytes, ifindex_of: dict[str, int],
                         what: str = "ip -6 -j route show table main default") -> tuple[tuple[int, str], ...]:
    """``ip -6 -j route show table main default``'s output as (ifindex, router) pairs, as
    :func:`mhgui.sources.netlink.parse_default_route` gives them; ``ifindex_of``: link name → ifindex."""
    routers = []
    for r in _loads(out, what):
        if not isinstance(r, dict) or r.get("dst") != "default":
            continue
        hops = [r] + [h for h in (r.get("nexthops") or ()) if isinstance(h, dict)] \
            if isinstance(r.get("nexthops") or (), list) else [r]
        for h in hops:
            gw, dev = h.get("gateway"), h.get("dev")
            if isinstance(gw, str) and isinstance(dev, str) and dev in ifindex_of:
                try:
                    routers.append((ifindex_of[dev], normalise_address(gw)))
                except ValueError:
                    continue
    return tuple(routers)


def read_snapshot(clock: Callable[[], float] = time.monotonic, *, timeout: float = IP_TIMEOUT,
                  devtype: Callable[[str], str | None] | None = read_devtype) -> NetlinkSnapshot:
    """Links, addresses and IPv6 default routers of this network namespace, from two ``ip`` processes run
    side by side. ``clock``: seconds (the lifetimes' deadlines); ``devtype``: sysfs DEVTYPE reader
    (None: not read). Raises :class:`IpJsonError`."""
    return snapshot_of(IpRun(), clock(), timeout=timeout, devtype=devtype)


def snapshot_of(run: IpRun, now: float, *, timeout: float = IP_TIMEOUT,
                devtype: Callable[[str], str | None] | None = read_devtype) -> NetlinkSnapshot:
    """:func:`read_snapshot` from ``ip`` processes started earlier (:class:`~mhgui.sources.iproute_run.IpRun`,
    e.g. before a program's imports); ``now``: the clock when they were started."""
    out_a, out_r = run.outputs(timeout)
    links, addrs = parse_addr_dump(out_a, now, devtype)
    routers = parse_default_routes(out_r, {i.name: i.ifindex for i in links})
    return NetlinkSnapshot(links, addrs, routers)


class IpJsonOnce:
    """A stand-in for :class:`~mhgui.sources.netlink.NetlinkSource` in one-shot readers on the full path
    (``mhctl status`` when a system bus or a daemon has to be asked): :meth:`start` reads one
    :func:`read_snapshot` (in the loop's executor) and hands the sink the snapshot and
    ``SourceStatus("netlink", "ok")``, as the source's first dump does; nothing follows. When ``ip``
    cannot give the tables, ``fallback`` (the rtnetlink source) is started instead and does the work.
    """

    def __init__(self, sink: Callable, fallback, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._sink = sink
        self._fallback = fallback
        self._clock = clock
        self._started_fallback = False

    async def start(self) -> None:
        import asyncio

        from ..core.state import SourceStatus
        try:
            snap = await asyncio.get_running_loop().run_in_executor(None, read_snapshot, self._clock)
        except IpJsonError as e:
            import logging
            logging.getLogger(__name__).info("iproute2's JSON: %s; reading netlink with pyroute2", e)
            self._started_fallback = True
            await self._fallback.start()
            return
        self._sink(snap)
        self._sink(SourceStatus("netlink", "ok"))

    async def stop(self) -> None:
        if self._started_fallback:
            await self._fallback.stop()
