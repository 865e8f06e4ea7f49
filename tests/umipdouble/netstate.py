"""What the kernel says about links, IPv6 addresses and default routers (rtnetlink, pyroute2).

The double reads the namespace it runs in. A snapshot is a full dump; events
only tell the mobile node *that* something changed, after which it re-dumps
(the same answer an ENOBUFS overflow needs, so no event can be lost).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from dataclasses import dataclass, field

from pyroute2 import AsyncIPRoute
from pyroute2.netlink.rtnl import RTMGRP_IPV6_IFADDR, RTMGRP_IPV6_ROUTE, RTMGRP_LINK

log = logging.getLogger("umipdouble")

IFF_UP = 0x1
IFF_LOOPBACK = 0x8
IFF_LOWER_UP = 0x10000

IFA_F_DADFAILED = 0x08
IFA_F_DEPRECATED = 0x20
IFA_F_TENTATIVE = 0x40
IFA_F_OPTIMISTIC = 0x04

RT_SCOPE_UNIVERSE = 0
AF_INET6 = 10
RT_TABLE_MAIN = 254
RTN_UNICAST = 1
RTNH_F_DEAD = 1


@dataclass
class Addr:
    address: ipaddress.IPv6Address
    plen: int
    flags: int
    preferred: int  # seconds, 0xFFFFFFFF = forever
    valid: int

    @property
    def usable(self) -> bool:
        """Global, not tentative, DAD not failed: a possible care-of address."""
        return not (self.flags & (IFA_F_TENTATIVE | IFA_F_DADFAILED))

    @property
    def preferred_now(self) -> bool:
        return self.usable and not (self.flags & IFA_F_DEPRECATED)

    @property
    def network(self) -> ipaddress.IPv6Network:
        return ipaddress.IPv6Network((self.address, self.plen), strict=False)


@dataclass
class Link:
    index: int
    name: str
    flags: int
    addrs: list[Addr] = field(default_factory=list)  # global scope only, dump order
    routers: list[ipaddress.IPv6Address] = field(default_factory=list)

    @property
    def up(self) -> bool:
        """Administratively up with carrier (IFF_UP and IFF_LOWER_UP)."""
        return bool(self.flags & IFF_UP) and bool(self.flags & IFF_LOWER_UP)


def _flags(msg) -> int:
    f = msg.get("IFA_FLAGS")
    return f if f is not None else msg.get("flags", 0)


async def snapshot() -> dict[int, Link]:
    """Links with their global IPv6 addresses and IPv6 default routers."""
    links: dict[int, Link] = {}
    async with AsyncIPRoute() as ipr:
        async for m in await ipr.link("dump"):
            links[m["index"]] = Link(m["index"], m.get("IFLA_IFNAME") or f"({m['index']})", m.get("flags", 0))
        async for m in await ipr.addr("dump", family=AF_INET6):
            if m.get("scope") != RT_SCOPE_UNIVERSE:
                continue
            link = links.get(m.get("index"))
            addr = m.get("IFA_ADDRESS") or m.get("IFA_LOCAL")
            if link is None or addr is None:
                continue
            ci = m.get("IFA_CACHEINFO") or {}
            link.addrs.append(Addr(ipaddress.IPv6Address(addr), m.get("prefixlen", 128), _flags(m),
                                   ci.get("ifa_preferred", 0xFFFFFFFF), ci.get("ifa_valid", 0xFFFFFFFF)))
        async for r in await ipr.route("dump", family=AF_INET6):
            if r.get("dst_len") != 0 or r.get("type") != RTN_UNICAST:
                continue
            table = r.get("RTA_TABLE") or r.get("table")
            if table != RT_TABLE_MAIN:
                continue
            hops = []
            if r.get("RTA_MULTIPATH"):
                for nh in r.get("RTA_MULTIPATH"):
                    if nh.get("flags", 0) & RTNH_F_DEAD:
                        continue
                    hops.append((nh.get("oif"), nh.get("RTA_GATEWAY")))
            else:
                hops.append((r.get("RTA_OIF"), r.get("RTA_GATEWAY")))
            for oif, gw in hops:
                if oif in links and gw:
                    links[oif].routers.append(ipaddress.IPv6Address(gw))
    return links


class Monitor:
    """Calls ``callback()`` (from the event loop) after every link, IPv6 address or IPv6 route event."""

    def __init__(self, callback) -> None:
        self.callback = callback
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        ready = asyncio.get_running_loop().create_future()
        self._task = asyncio.create_task(self._run(ready))
        await ready

    async def _run(self, ready: asyncio.Future) -> None:
        groups = RTMGRP_LINK | RTMGRP_IPV6_IFADDR | RTMGRP_IPV6_ROUTE
        while True:
            try:
                async with AsyncIPRoute() as mon:
                    await mon.bind(groups=groups)
                    if not ready.done():
                        ready.set_result(None)
                    while True:
                        async for _msg in mon.get():
                            self.callback()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # ENOBUFS and friends: re-open, and let the node re-dump
                log.debug("netlink monitor: %r; reopening", e)
                if not ready.done():
                    ready.set_result(None)
                self.callback()
                await asyncio.sleep(0.1)

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
