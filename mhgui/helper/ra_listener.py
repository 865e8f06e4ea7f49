"""Router advertisements heard on the node's links, as root: a thin asyncio adapter.

:class:`RAListener` opens a raw ICMPv6 socket that passes only Router
Advertisements (``ICMP6_FILTER``, RFC 3542 section 3.2), receives each with
its link (``IPV6_PKTINFO``) and hop limit (``IPV6_HOPLIMIT``), and feeds the
pure :class:`mhgui.core.ra.RouterTable`: per link, router link-local address
-> the prefixes it advertised, with their lifetimes. At start it sends a
Router Solicitation on every link that is up, so that the routers answer now
rather than at their next periodic advertisement (up to 30 minutes); a link
that comes up later is solicited by the kernel itself, and the raw socket
hears the answer too. What ran out is dropped at its time (a timer at
:meth:`mhgui.core.ra.RouterTable.next_expiry`).

The steering engine (:mod:`mhgui.helper.steering`) reads :meth:`RAListener.adverts`
from its executor thread: an immutable tuple, replaced on the event loop.
``on_change`` is called on the event loop when what the routers advertised
changed (not when an advertisement only refreshed lifetimes).

Bad input (a forged or malformed advertisement) is counted and logged at
most once a minute, never raised. Without the privilege for a raw socket the
listener logs why and ends: next hops then come from the kernel's routes only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
import time
from typing import Callable

from mhgui.core.ra import (
    ICMP6_ROUTER_ADVERTISEMENT,
    Advert,
    RAError,
    RouterTable,
    check_envelope,
    parse_ra,
    router_solicitation,
)

__all__ = ["RAListener", "ra_filter"]

log = logging.getLogger("mhgui.helper.ra")

ICMP6_FILTER = 1  # <netinet/icmp6.h>, option level IPPROTO_ICMPV6
IPV6_PKTINFO = getattr(socket, "IPV6_PKTINFO", 50)
IPV6_HOPLIMIT = getattr(socket, "IPV6_HOPLIMIT", 52)
IPV6_RECVPKTINFO = getattr(socket, "IPV6_RECVPKTINFO", 49)
IPV6_RECVHOPLIMIT = getattr(socket, "IPV6_RECVHOPLIMIT", 51)
ALL_ROUTERS = "ff02::2"
#: Datagrams read per wake-up before yielding to the loop (a flood must not starve the helper).
BATCH = 64
PROBLEM_LOG_INTERVAL = 60.0


def ra_filter(*types: int) -> bytes:
    """``struct icmp6_filter`` passing only ``types``: a set bit blocks its type (RFC 3542 section 3.2)."""
    words = [0xFFFF_FFFF] * 8
    for t in types:
        words[t >> 5] &= ~(1 << (t & 31))
    return struct.pack("=8I", *words)


class RAListener:
    """Hears router advertisements; see the module docstring.

    ``netns``: a network namespace name (``ip netns``) to listen in instead of
    the process's own (tests); ``clock``: monotonic seconds; ``solicit``: send
    Router Solicitations at start.
    """

    def __init__(self, on_change: Callable[[], None] | None = None, *, netns: str | None = None,
                 clock: Callable[[], float] = time.monotonic, solicit: bool = True) -> None:
        self.on_change = on_change
        self.netns = netns
        self.clock = clock
        self.solicit = solicit
        self.table = RouterTable()
        self.heard = 0  # valid advertisements taken in
        self.problems = 0  # datagrams refused
        self.last_problem = ""
        self._adverts: tuple[Advert, ...] = ()
        self._timer: asyncio.TimerHandle | None = None
        self._logged_at = -PROBLEM_LOG_INTERVAL
        self._suppressed = 0
        self.ready = asyncio.Event()  # set once the socket listens (or could not be opened)

    def adverts(self) -> tuple[Advert, ...]:
        """What holds now (safe from any thread: an immutable snapshot)."""
        return self._adverts

    # ----------------------------------------------------------------- the socket

    def _open(self) -> socket.socket:
        if self.netns:
            from pyroute2.netns import create_socket

            sock = create_socket(self.netns, socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
        else:
            sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
        try:
            sock.setsockopt(socket.IPPROTO_ICMPV6, ICMP6_FILTER, ra_filter(ICMP6_ROUTER_ADVERTISEMENT))
            sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVPKTINFO, 1)
            sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVHOPLIMIT, 1)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, 255)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        return sock

    def _links_up(self) -> list[int]:
        from pyroute2 import IPRoute

        IFF_UP, IFF_LOOPBACK = 0x1, 0x8
        with (IPRoute(netns=self.netns) if self.netns else IPRoute()) as ipr:
            return [link["index"] for link in ipr.get_links()
                    if link["flags"] & IFF_UP and not link["flags"] & IFF_LOOPBACK]

    def _send_solicitations(self, sock: socket.socket, ifindexes: list[int]) -> None:
        for idx in ifindexes:
            try:
                sock.sendto(router_solicitation(), (ALL_ROUTERS, 0, 0, idx))
            except OSError as e:  # a link without an address yet, gone meanwhile...
                log.debug("no router solicitation on link %d: %s", idx, e)

    async def run(self) -> None:
        """Listen until cancelled."""
        try:
            sock = await asyncio.to_thread(self._open)
        except (OSError, TimeoutError) as e:
            log.warning("not listening for router advertisements (%s): next hops are matched to sources "
                        "from the kernel's routes only", e)
            self.ready.set()
            return
        loop = asyncio.get_running_loop()
        try:
            loop.add_reader(sock.fileno(), self._readable, sock)
            self.ready.set()
            if self.solicit:
                try:
                    links = await asyncio.to_thread(self._links_up)
                except Exception as e:
                    log.info("cannot list links to solicit routers: %s", e)
                    links = []
                self._send_solicitations(sock, links)
            await asyncio.Event().wait()
        finally:
            with contextlib.suppress(Exception):
                loop.remove_reader(sock.fileno())
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            sock.close()

    def _readable(self, sock: socket.socket) -> None:
        for _ in range(BATCH):
            try:
                data, anc, _flags, addr = sock.recvmsg(65535, 256)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                self._problem(f"receive failed: {e}")
                return
            ifindex, hop = 0, None
            for level, kind, value in anc:
                if level != socket.IPPROTO_IPV6:
                    continue
                if kind == IPV6_PKTINFO and len(value) >= 20:
                    ifindex = struct.unpack_from("=i", value, 16)[0]
                elif kind == IPV6_HOPLIMIT and len(value) >= 4:
                    hop = struct.unpack_from("=i", value)[0]
            if not ifindex and len(addr) >= 4:
                ifindex = addr[3]
            try:
                self.take(self.clock(), ifindex, addr[0], hop, data)
            except Exception as e:  # a bug here must not end the listening
                log.exception("router advertisement not taken in")
                self._problem(f"internal error: {e}")

    # ----------------------------------------------------------------- the pure part's driver

    def take(self, now: float, ifindex: int, source: str, hop_limit: int | None, data: bytes) -> bool:
        """One datagram: check, parse, feed the table (True: what holds changed; then publish and notify)."""
        try:
            router = check_envelope(source, hop_limit)
            ra = parse_ra(data)
            if not isinstance(ifindex, int) or ifindex <= 0:
                raise RAError(f"no link for an advertisement from {router}")
        except RAError as e:
            self._problem(f"from {ascii(source)[1:-1][:60]} on link {ifindex}: {e}")
            return False
        self.heard += 1
        changed = self.table.feed(now, ifindex, str(router), ra)
        if changed:
            self._publish(now)
        else:
            self._arm(now)
        return changed

    def _publish(self, now: float) -> None:
        self._adverts = self.table.adverts(now)
        log.info("router advertisements: %s", "; ".join(
            f"link {a.ifindex}: {a.router} {'' if a.default_router else '(not a default router) '}advertised "
            f"{a.prefix}" for a in self._adverts) or "none hold")
        self._arm(now)
        if self.on_change is not None:
            self.on_change()

    def _arm(self, now: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        nxt = self.table.next_expiry(now)
        if nxt is None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._timer = loop.call_later(max(0.0, nxt - now) + 0.01, self._expire)

    def _expire(self) -> None:
        self._timer = None
        now = self.clock()
        if self.table.expire(now):
            self._publish(now)
        else:
            self._arm(now)

    def _problem(self, text: str) -> None:
        self.problems += 1
        self.last_problem = text
        now = self.clock()
        if now - self._logged_at >= PROBLEM_LOG_INTERVAL:
            more = f" ({self._suppressed} more since the last report)" if self._suppressed else ""
            log.info("router advertisement refused: %s%s", text, more)
            self._logged_at, self._suppressed = now, 0
        else:
            self._suppressed += 1
