"""rtnetlink source (pyroute2, asyncio): links, addresses with flags and lifetimes, default routes.

Netlink is the truth for links and addresses: NetworkManager defers carrier
loss by seconds and does not give address flags or lifetimes
(``../shared/domain/protocol.md``, "Design facts").

Order of work (as bleak does for D-Bus): bind the event socket first, then dump,
then apply the queued events; a lost event (``ENOBUFS``: the socket's receive
buffer overflowed, RFC 3549 section 2.3.3.1 / rtnetlink(7)) leads to a full
re-dump that is reconciled against the model, never to a stale table.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import time
import os
from typing import Callable

from ..core.model import Address, Interface, InterfaceKind, effective_flags, lifetime_deadline, normalise_address
from ..core.state import (
    AddressRemoved, AddressUpsert, Event, LinkRemoved, LinkUpsert, NetlinkSnapshot, RoutersSnapshot, SourceStatus,
)
from ..core.model import AddressKey

from ..tasks import cancel_and_wait

log = logging.getLogger(__name__)

# rtnetlink multicast groups (include/uapi/linux/rtnetlink.h)
RTMGRP_LINK = 0x1
RTMGRP_IPV4_IFADDR = 0x10
RTMGRP_IPV6_IFADDR = 0x100
RTMGRP_IPV6_ROUTE = 0x400
GROUPS = RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR | RTMGRP_IPV6_ROUTE

RTM_NEWLINK, RTM_DELLINK, RTM_NEWADDR, RTM_DELADDR, RTM_NEWROUTE, RTM_DELROUTE = 16, 17, 20, 21, 24, 25

IFF_UP = 0x1
IFF_LOWER_UP = 0x10000
RT_TABLE_MAIN = 254
AF_INET6 = 10

# ARPHRD_* (include/uapi/linux/if_arp.h)
ARPHRD_ETHER = 1
ARPHRD_PPP = 512
ARPHRD_RAWIP = 519
ARPHRD_TUNNEL, ARPHRD_TUNNEL6, ARPHRD_LOOPBACK, ARPHRD_SIT, ARPHRD_IPGRE, ARPHRD_IP6GRE = 768, 769, 772, 776, 778, 823
ARPHRD_NONE = 0xFFFE
_TUNNEL_TYPES = {ARPHRD_TUNNEL, ARPHRD_TUNNEL6, ARPHRD_SIT, ARPHRD_IPGRE, ARPHRD_IP6GRE}
_TUNNEL_KINDS = {"ip6tnl", "ipip", "sit", "gre", "ip6gre", "gretap", "ip6gretap", "vti", "vti6", "wireguard", "ipip6",
                 "xfrm", "tun"}

#: How long to wait before re-dumping after a failure, seconds (doubles up to 30 s).
RETRY_FIRST, RETRY_MAX = 0.5, 30.0


def link_kind(ifi_type: int, info_kind: str | None, devtype: str | None) -> InterfaceKind:
    """Interface kind from ``ifi_type`` (ARPHRD_*), ``IFLA_INFO_KIND`` and sysfs ``DEVTYPE``.

    ``devtype`` is the ``DEVTYPE=`` line of ``/sys/class/net/NAME/uevent``
    ("wlan", "wwan", "bridge", ...), or None when unknown.
    """
    if ifi_type == ARPHRD_LOOPBACK:
        return InterfaceKind.LOOPBACK
    if devtype == "wlan":
        return InterfaceKind.WIFI
    if devtype == "wwan" or ifi_type == ARPHRD_RAWIP:
        return InterfaceKind.WWAN
    # tun/tap devices (OpenVPN, wireguard-go...) and IP-less links are VPNs, not access links
    if ifi_type in _TUNNEL_TYPES or ifi_type == ARPHRD_NONE or (info_kind or "") in _TUNNEL_KINDS:
        return InterfaceKind.TUNNEL
    if ifi_type == ARPHRD_ETHER and info_kind in (None, "veth"):
        return InterfaceKind.ETHERNET
    return InterfaceKind.OTHER


def ifname_text(raw) -> str:
    """An interface name as text: the kernel allows any bytes but ``/``, ``:`` and white space;
    bytes that are not UTF-8 are shown as ``\\xNN`` escapes."""
    if isinstance(raw, bytes):
        return raw.decode("utf-8", "backslashreplace")
    return str(raw)


def read_devtype(ifname: str | bytes) -> str | None:
    """``DEVTYPE`` from ``/sys/class/net/IFNAME/uevent`` (blocking: call in an executor)."""
    name = os.fsencode(ifname)
    if not name or b"/" in name or name in (b".", b".."):
        return None
    try:
        with open(b"/sys/class/net/" + name + b"/uevent", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("DEVTYPE="):
                    return line.strip().split("=", 1)[1]
    except OSError:
        return None
    return None


def parse_link(msg, devtype: str | None = None) -> Interface | None:
    """RTM_NEWLINK message (pyroute2 ``ifinfmsg``) to :class:`Interface`; None if malformed."""
    try:
        ifindex = int(msg["index"])
        flags = int(msg.get("flags") or 0)
        name = ifname_text(msg.get("ifname") or f"if{ifindex}")
        operstate = str(msg.get("operstate") or "unknown").lower()
        info_kind = msg.get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND")
        ifi_type = int(msg.get("ifi_type") or 0)
    except (KeyError, TypeError, ValueError):
        log.warning("malformed link message ignored")
        return None
    return Interface(
        ifindex=ifindex, name=str(name), kind=link_kind(ifi_type, info_kind, devtype),
        admin_up=bool(flags & IFF_UP), oper_up=operstate in ("up", "unknown"),
        carrier=bool(flags & IFF_LOWER_UP), operstate=operstate, mac=msg.get("address"),
    )


def parse_addr(msg, now: float) -> Address | None:
    """RTM_NEWADDR/RTM_DELADDR message (pyroute2 ``ifaddrmsg``) to :class:`Address`; None if malformed.

    ``IFA_FLAGS`` wins over the 8-bit ``ifa_flags``; lifetimes from ``IFA_CACHEINFO``
    (seconds, relative to the message) become deadlines relative to ``now``.
    """
    try:
        family = int(msg["family"])
        # IFA_LOCAL is our address; IFA_ADDRESS is the peer's on point-to-point links
        raw = msg.get("local") or msg.get("address")
        address = normalise_address(raw)
        ci = msg.get("IFA_CACHEINFO") or {}
        return Address(
            ifindex=int(msg["index"]), address=address, prefixlen=int(msg["prefixlen"]),
            family=family, scope=int(msg.get("scope") or 0),
            flags=effective_flags(int(msg.get("flags") or 0), msg.get("IFA_FLAGS")),
            preferred_until=lifetime_deadline(ci.get("ifa_preferred"), now),
            valid_until=lifetime_deadline(ci.get("ifa_valid"), now),
        )
    except (KeyError, TypeError, ValueError, AttributeError):
        log.warning("malformed address message ignored")
        return None


def _is_ipv6_default(msg) -> bool:
    try:
        return int(msg["family"]) == AF_INET6 and int(msg["dst_len"]) == 0
    except (KeyError, TypeError, ValueError):
        return False


def parse_default_route(msg) -> list[tuple[int, str]]:
    """IPv6 default routes (``::/0`` in the main table) as (oif, gateway) pairs; [] otherwise."""
    try:
        if int(msg["family"]) != AF_INET6 or int(msg["dst_len"]) != 0:
            return []
        table = msg.get("RTA_TABLE") or msg.get("table")
        if table != RT_TABLE_MAIN:
            return []
        out = []
        gw, oif = msg.get("RTA_GATEWAY"), msg.get("RTA_OIF")
        if gw and oif:
            out.append((int(oif), normalise_address(gw)))
        for hop in msg.get("RTA_MULTIPATH") or ():
            hgw = hop.get("RTA_GATEWAY")
            if hgw:
                out.append((int(hop["oif"]), normalise_address(hgw)))
        return out
    except (KeyError, TypeError, ValueError, AttributeError):
        return []


Factory = Callable[..., object]


class NetlinkSource:
    """Feeds :mod:`mhgui.core.state` events from rtnetlink.

    ``sink(event)`` receives each event on the event loop's thread.
    ``netns``: a named network namespace (pyroute2 opens its sockets there);
    None for the current one. ``clock``: seconds, monotonic (lifetimes).
    ``devtype``: blocking reader of sysfs DEVTYPE, run in the default executor
    (only used when ``netns`` is None, since /sys shows the namespace it was mounted in).
    """

    def __init__(self, sink: Callable[[Event], None], *, netns: str | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 devtype: Callable[[str], str | None] | None = read_devtype,
                 rcvbuf: int = 1 << 20, ipr_factory: Factory | None = None) -> None:
        self._sink = sink
        self._netns = netns
        self._clock = clock
        self._devtype = devtype if netns is None else None
        self._devtypes: dict[int, str | None] = {}
        self._rcvbuf = rcvbuf
        self._factory = ipr_factory
        self._task: asyncio.Task | None = None
        self._lock = asyncio.Lock()
        self.resyncs = 0  # full re-dumps after the first one (lost events)
        self._routes_pending = False
        self._route_tasks: set[asyncio.Task] = set()
        self.first_snapshot = asyncio.Event()

    def _open(self):
        from pyroute2 import AsyncIPRoute
        if self._factory is not None:
            return self._factory()
        kw = {"rcvbuf": self._rcvbuf}
        if self._netns:
            kw["netns"] = self._netns
        return AsyncIPRoute(**kw)

    async def start(self) -> None:
        """Start watching (idempotent). Returns at once; the first snapshot follows."""
        async with self._lock:
            if self._task is None or self._task.done():
                self._task = asyncio.get_running_loop().create_task(self._run(), name="netlink-source")

    async def stop(self) -> None:
        for t in list(self._route_tasks):
            t.cancel()
        async with self._lock:
            task, self._task = self._task, None
        await cancel_and_wait(task)

    def _emit(self, ev: Event) -> None:
        try:
            self._sink(ev)
        except Exception:  # a consumer bug must not kill the source
            log.exception("netlink event consumer failed")

    async def _run(self) -> None:
        delay = RETRY_FIRST
        first = True
        while True:
            mon = None
            try:
                mon = self._open()
                await mon.bind(groups=GROUPS)
                if not first:
                    self._emit(SourceStatus("netlink", "resyncing", "re-reading the kernel's tables after lost events"))
                await self._snapshot()
                self._emit(SourceStatus("netlink", "ok"))
                self.first_snapshot.set()
                first = False
                delay = RETRY_FIRST
                await self._events(mon)
            except asyncio.CancelledError:
                raise
            except PermissionError as e:
                self._emit(SourceStatus("netlink", "no-access", f"cannot open a netlink socket: {e.strerror or e}"))
            except Exception as e:  # ENOBUFS, a closed socket: re-dump
                code = getattr(e, "code", None) or getattr(e, "errno", None)
                if code == errno.ENOBUFS:
                    log.info("netlink: events lost (ENOBUFS); re-dumping")
                    delay = 0.0
                else:
                    log.warning("netlink: %s; re-dumping in %.1f s", e, delay)
                self._emit(SourceStatus("netlink", "resyncing", "events were lost; re-reading the kernel's tables"))
                self.resyncs += not first
            finally:
                if mon is not None:
                    mon.close()
            first = False
            await asyncio.sleep(delay)
            delay = min(max(delay * 2, RETRY_FIRST), RETRY_MAX)

    async def _kind_of(self, msg) -> str | None:
        ifindex = msg.get("index")
        if self._devtype is None or ifindex is None:
            return None
        if ifindex not in self._devtypes:
            name = msg.get("ifname") or b""
            self._devtypes[ifindex] = await asyncio.get_running_loop().run_in_executor(None, self._devtype, name)
        return self._devtypes[ifindex]

    async def _snapshot(self) -> None:
        ipr = self._open()
        try:
            links, addrs, routers = [], [], []
            async for m in await ipr.link("dump"):
                i = parse_link(m, await self._kind_of(m))
                if i is not None:
                    links.append(i)
            now = self._clock()
            async for m in await ipr.addr("dump"):
                a = parse_addr(m, now)
                if a is not None:
                    addrs.append(a)
            async for m in await ipr.route("dump", family=AF_INET6):
                routers.extend(parse_default_route(m))
        finally:
            ipr.close()
        self._emit(NetlinkSnapshot(tuple(links), tuple(addrs), tuple(routers)))

    async def _events(self, mon) -> None:
        while True:
            async for msg in mon.get():
                try:
                    await self._handle(msg)
                except (asyncio.CancelledError, OSError):
                    raise
                except Exception:  # one odd message must not stop the source
                    log.exception("netlink: message ignored")

    async def _routers(self) -> None:
        """Re-read the IPv6 default routes: route events carry metrics and NLM_F_REPLACE, and a
        dump is the simple way to stay equal to the kernel (default routes change rarely)."""
        self._routes_pending = False
        ipr = self._open()
        try:
            routers = []
            async for m in await ipr.route("dump", family=AF_INET6):
                routers.extend(parse_default_route(m))
        finally:
            ipr.close()
        self._emit(RoutersSnapshot(tuple(routers)))

    def _schedule_routers(self) -> None:
        if not self._routes_pending:
            self._routes_pending = True
            task = asyncio.get_running_loop().create_task(self._routers(), name="netlink-routes")
            self._route_tasks.add(task)
            task.add_done_callback(self._route_done)

    def _route_done(self, task: asyncio.Task) -> None:
        self._route_tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._routes_pending = False
            log.warning("netlink: route dump failed: %s", task.exception())

    async def _handle(self, msg) -> None:
        t = msg["header"]["type"]
        if t == RTM_NEWLINK:
            i = parse_link(msg, await self._kind_of(msg))
            if i is not None:
                self._emit(LinkUpsert(i))
        elif t == RTM_DELLINK:
            ifindex = msg.get("index")
            self._devtypes.pop(ifindex, None)
            if ifindex is not None:
                self._emit(LinkRemoved(int(ifindex)))
        elif t == RTM_NEWADDR:
            a = parse_addr(msg, self._clock())
            if a is not None:
                self._emit(AddressUpsert(a))
        elif t == RTM_DELADDR:
            a = parse_addr(msg, self._clock())
            if a is not None:
                self._emit(AddressRemoved(AddressKey(a.ifindex, a.address, a.prefixlen)))
        elif t in (RTM_NEWROUTE, RTM_DELROUTE):
            if _is_ipv6_default(msg):
                self._schedule_routers()


def can_open_netlink() -> bool:
    """True when this process may open a NETLINK_ROUTE socket (sandboxes may forbid it)."""
    import socket
    try:
        s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
    except OSError:
        return False
    s.close()
    return True


__all__ = ["NetlinkSource", "parse_link", "parse_addr", "parse_default_route", "link_kind", "can_open_netlink"]
