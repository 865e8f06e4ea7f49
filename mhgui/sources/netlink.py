"""rtnetlink source (pyroute2, asyncio): links, addresses with flags and lifetimes, default routes.

Netlink is the truth for links and addresses: NetworkManager defers carrier
loss by seconds and does not give address flags or lifetimes
(``../shared/domain/protocol.md``, "Design facts").

Order of work (as bleak does for D-Bus): bind the event socket first and keep
reading it, then dump; the events that arrived while the dump ran are newer than
the dump's entries for their keys and are merged into it
(:func:`~mhgui.core.state.merge_dump`) before the store reconciles the result
with the model, so each difference is announced once. A dump that the kernel
marks as interrupted (``NLM_F_DUMP_INTR``: the table changed between two parts,
entries may be skipped) is done again. A lost event (``ENOBUFS``: the socket's
receive buffer overflowed, RFC 3549 section 2.3.3.1 / rtnetlink(7)) leads to a
full re-dump the same way, never to a stale table.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import select
import time
from typing import Callable

from ..core.model import Address, Interface, effective_flags, lifetime_deadline, normalise_address
from ..core.state import (
    AddressRemoved, AddressUpsert, Event, LinkRemoved, LinkUpsert, NetlinkSnapshot, RoutersSnapshot, SourceStatus,
    merge_dump,
)
from ..core.model import AddressKey

from ..i18n import _
from ..tasks import cancel_and_wait

log = logging.getLogger(__name__)

# rtnetlink multicast groups (include/uapi/linux/rtnetlink.h)
RTMGRP_LINK = 0x1
RTMGRP_IPV4_IFADDR = 0x10
RTMGRP_IPV6_IFADDR = 0x100
RTMGRP_IPV6_ROUTE = 0x400
GROUPS = RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR | RTMGRP_IPV6_ROUTE

RTM_NEWLINK, RTM_DELLINK, RTM_NEWADDR, RTM_DELADDR, RTM_NEWROUTE, RTM_DELROUTE = 16, 17, 20, 21, 24, 25
#: nlmsghdr flag: the dump was interrupted by a change of the table (include/uapi/linux/netlink.h)
NLM_F_DUMP_INTR = 0x10

RT_TABLE_MAIN = 254
AF_INET6 = 10

# link facts and kinds (moved to linkinfo, which the iproute2 JSON reader shares; re-exported here)
from .linkinfo import (  # noqa: F401
    ARPHRD_ETHER, ARPHRD_IP6GRE, ARPHRD_IPGRE, ARPHRD_LOOPBACK, ARPHRD_NONE, ARPHRD_PPP, ARPHRD_RAWIP, ARPHRD_SIT,
    ARPHRD_TUNNEL, ARPHRD_TUNNEL6, IFF_LOWER_UP, IFF_UP, VIRTUAL_KINDS, _TUNNEL_KINDS, _TUNNEL_TYPES, ifname_text,
    link_kind, read_devtype,
)

#: How long to wait before re-dumping after a failure, seconds (doubles up to 30 s).
RETRY_FIRST, RETRY_MAX = 0.5, 30.0
#: Interrupted dumps are done again at once this many times, then after a pause of
#: INTR_PAUSE seconds that doubles up to INTR_PAUSE_MAX (the table is churning).
INTR_AT_ONCE, INTR_PAUSE, INTR_PAUSE_MAX = 3, 0.05, 2.0
#: Most event-loop turns spent waiting for the event socket to be read empty after a dump.
SETTLE_TURNS = 200_000
#: seconds of queued messages handled in one go before the loop's other callbacks run (half a frame)
FOLLOW_SLICE = 0.008


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
    (seconds, relative to the message) become deadlines relative to ``now``. A preferred
    lifetime of 0 makes the address deprecated from its first message on (see
    :func:`~mhgui.core.model.effective_flags`).
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
            flags=effective_flags(int(msg.get("flags") or 0), msg.get("IFA_FLAGS"), ci.get("ifa_preferred")),
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

    Every full dump (the first, after lost events, or asked for with :meth:`resync`) reaches
    the sink as one :class:`~mhgui.core.state.NetlinkSnapshot` that already includes the events
    received while it ran; the events after it follow one by one.
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
        self.resyncs = 0  # full re-dumps after the first one (lost events, resync())
        self.interrupted_dumps = 0  # dumps done again because the kernel flagged NLM_F_DUMP_INTR
        self._synced = False
        self._inbox: asyncio.Queue | None = None  # the current event socket's messages, oldest first
        self._waiters: list[asyncio.Future] = []  # resync() calls waiting for the next full dump
        self._routes_pending = False
        self._route_tasks: set[asyncio.Task] = set()
        self.first_snapshot = asyncio.Event()

    def _open(self):
        from pyroute2.iproute.linux import AsyncIPRoute  # the submodule alone (mhgui._pyroute2)
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
        waiters, self._waiters = self._waiters, []
        for w in waiters:
            w.cancel()

    async def resync(self) -> None:
        """Dump the kernel's tables again and reconcile them with the model, as after a lost event.

        Returns once a dump that started after this call has reached the sink (merged with the
        events that arrived meanwhile). Raises ``RuntimeError`` when the source is not running,
        ``asyncio.CancelledError`` when it is stopped first.
        """
        if self._task is None or self._task.done():
            raise RuntimeError("the netlink source is not running")
        fut = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        if self._inbox is not None:
            self._inbox.put_nowait(_RESYNC)
        await fut

    def _emit(self, ev: Event) -> None:
        try:
            self._sink(ev)
        except Exception:  # a consumer bug must not kill the source
            log.exception("netlink event consumer failed")

    async def _run(self) -> None:
        delay = RETRY_FIRST
        while True:
            mon = reader = None
            try:
                mon = self._open()
                await mon.bind(groups=GROUPS)
                self._inbox = inbox = asyncio.Queue()
                reader = asyncio.get_running_loop().create_task(self._read(mon, inbox), name="netlink-reader")
                if self._synced:
                    self._emit(SourceStatus("netlink", "resyncing", _("re-reading the kernel's tables after lost events")))
                await self._sync(mon, inbox)
                self._emit(SourceStatus("netlink", "ok"))
                self.first_snapshot.set()
                delay = RETRY_FIRST
                await self._follow(mon, inbox)
            except asyncio.CancelledError:
                raise
            except PermissionError as e:
                self._emit(SourceStatus("netlink", "no-access", _("cannot open a netlink socket: {why}").format(
                    why=e.strerror or e)))
            except Exception as e:  # ENOBUFS, a closed socket: re-dump
                code = getattr(e, "code", None) or getattr(e, "errno", None)
                if code == errno.ENOBUFS:
                    log.info("netlink: events lost (ENOBUFS); re-dumping")
                    delay = 0.0
                else:
                    log.warning("netlink: %s; re-dumping in %.1f s", e, delay)
                self._emit(SourceStatus("netlink", "resyncing", _("events were lost; re-reading the kernel's tables")))
            finally:
                self._inbox = None
                try:
                    await cancel_and_wait(reader)  # raises again if this task is being cancelled
                finally:
                    if mon is not None:
                        mon.close()
            await asyncio.sleep(delay)
            delay = min(max(delay * 2, RETRY_FIRST), RETRY_MAX)

    async def _read(self, mon, inbox: asyncio.Queue) -> None:
        """Move every message of the event socket into ``inbox``; a failure goes there too, last."""
        try:
            while True:
                async for msg in mon.get():
                    inbox.put_nowait(msg)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            inbox.put_nowait(e)

    async def _follow(self, mon, inbox: asyncio.Queue) -> None:
        turn = time.perf_counter()
        while True:
            if inbox.empty():
                item = await inbox.get()
                turn = time.perf_counter()
            else:  # a burst: the loop's other work (the window's input, paints) between slices (issue 14)
                if time.perf_counter() - turn > FOLLOW_SLICE:
                    await asyncio.sleep(0)
                    turn = time.perf_counter()
                item = inbox.get_nowait()
            if item is _RESYNC:
                await self._sync(mon, inbox)
                continue
            if isinstance(item, BaseException):
                raise item
            ev = await self._event_of(item)
            if ev is _ROUTES:
                self._schedule_routers()
            elif ev is not None:
                self._emit(ev)

    async def _sync(self, mon, inbox: asyncio.Queue) -> None:
        """Dump, wait for the events sent until then, hand the merged snapshot to the sink."""
        again = True
        while again:
            waiters, self._waiters = self._waiters, []
            try:
                snap = await self._dump()
                await self._settle(mon)
                events: list[Event] = []
                routes = again = False
                turn = time.perf_counter()
                for _ in range(inbox.qsize()):  # what came until now; later messages are _follow's
                    if time.perf_counter() - turn > FOLLOW_SLICE:  # a burst queued meanwhile: input between slices
                        await asyncio.sleep(0)
                        turn = time.perf_counter()
                    item = inbox.get_nowait()
                    if item is _RESYNC:
                        again = True  # asked for while this dump ran: one more
                    elif isinstance(item, BaseException):
                        raise item
                    elif (ev := await self._event_of(item)) is _ROUTES:
                        routes = True
                    elif ev is not None:
                        events.append(ev)
            except BaseException:
                self._waiters[:0] = waiters  # the next full dump answers them
                raise
            self._emit(merge_dump(snap, events))
            self.resyncs += self._synced
            self._synced = True
            if routes:  # the dump's default routes may be older than these events
                self._schedule_routers()
            for w in waiters:
                if not w.done():
                    w.set_result(None)

    async def _settle(self, mon) -> None:
        """Return once every message the kernel queued on ``mon`` so far has been moved to the inbox.

        The socket is read by the event loop one datagram per turn, then by :meth:`_read`; an
        event sent before the dump ended may still sit in the socket when the dump's last part
        arrives. Empty means: the socket has nothing to read (poll) and pyroute2's queue is empty.
        """
        try:
            fd = mon.socket.fileno()
            queue = mon.msg_queue.root
        except Exception:  # another socket object (tests, benchmarks): give its reader a few turns
            for _ in range(10):
                await asyncio.sleep(0)
            return
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        for _ in range(SETTLE_TURNS):
            await asyncio.sleep(0)
            if not poller.poll(0) and queue.empty():
                return
        log.warning("netlink: events kept arriving while settling a dump; going on")

    async def _kind_of(self, msg) -> str | None:
        ifindex = msg.get("index")
        if self._devtype is None or ifindex is None:
            return None
        if ifindex not in self._devtypes:
            name = msg.get("ifname") or b""
            self._devtypes[ifindex] = await asyncio.get_running_loop().run_in_executor(None, self._devtype, name)
        return self._devtypes[ifindex]

    async def _dump(self) -> NetlinkSnapshot:
        """A consistent dump of links, addresses and default routes (interrupted ones are done again)."""
        ipr = self._open()
        try:
            attempt = 0
            while True:
                snap = await dump_once(ipr, self._kind_of, self._clock)
                if snap is not None:
                    return snap
                self.interrupted_dumps += 1
                attempt += 1
                log.debug("netlink: dump interrupted by a change (NLM_F_DUMP_INTR); again (%d)", attempt)
                if attempt > INTR_AT_ONCE:
                    await asyncio.sleep(min(INTR_PAUSE * 2 ** (attempt - INTR_AT_ONCE - 1), INTR_PAUSE_MAX))
        finally:
            ipr.close()

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

    async def _event_of(self, msg) -> Event | object | None:
        """The event for one message, ``_ROUTES`` for a change of the IPv6 default routes, or None.

        A malformed message is logged and gives None.
        """
        try:
            t = msg["header"]["type"]
            if t == RTM_NEWLINK:
                i = parse_link(msg, await self._kind_of(msg))
                return None if i is None else LinkUpsert(i)
            if t == RTM_DELLINK:
                ifindex = msg.get("index")
                self._devtypes.pop(ifindex, None)
                return None if ifindex is None else LinkRemoved(int(ifindex))
            if t in (RTM_NEWADDR, RTM_DELADDR):
                a = parse_addr(msg, self._clock())
                if a is None:
                    return None
                return AddressUpsert(a) if t == RTM_NEWADDR else AddressRemoved(AddressKey(a.ifindex, a.address, a.prefixlen))
            if t in (RTM_NEWROUTE, RTM_DELROUTE) and _is_ipv6_default(msg):
                return _ROUTES
        except (asyncio.CancelledError, OSError):
            raise
        except Exception:  # one odd message must not stop the source
            log.exception("netlink: message ignored")
        return None


#: inbox marker: resync() was called
_RESYNC = object()
#: _event_of() result: the IPv6 default routes changed (re-read them)
_ROUTES = object()


def _flags(msg) -> int:
    try:
        return int(msg["header"].get("flags") or 0)
    except (KeyError, TypeError, ValueError, AttributeError):
        return 0


async def dump_once(ipr, kind_of: Callable, clock: Callable[[], float]) -> NetlinkSnapshot | None:
    """Links, addresses and IPv6 default routes from one dump over ``ipr`` (a pyroute2 ``AsyncIPRoute``).

    ``kind_of(msg)``: awaitable sysfs DEVTYPE of a link message; ``clock()``: seconds (lifetimes).
    None when the kernel flagged any part as interrupted (``NLM_F_DUMP_INTR``: the table changed
    between two parts, so entries may have been skipped or repeated); the dump is read to its
    end regardless, so that the socket can serve the next one.
    """
    links, addrs, routers = [], [], []
    intr = 0
    async for m in await ipr.link("dump"):
        intr |= _flags(m)
        i = parse_link(m, await kind_of(m))
        if i is not None:
            links.append(i)
    now = clock()
    turn = time.perf_counter()
    async for m in await ipr.addr("dump"):
        intr |= _flags(m)
        a = parse_addr(m, now)
        if a is not None:
            addrs.append(a)
        if time.perf_counter() - turn > FOLLOW_SLICE:  # thousands of addresses: the window's input between slices
            await asyncio.sleep(0)
            turn = time.perf_counter()
    async for m in await ipr.route("dump", family=AF_INET6):
        intr |= _flags(m)
        routers.extend(parse_default_route(m))
    if intr & NLM_F_DUMP_INTR:
        return None
    return NetlinkSnapshot(tuple(links), tuple(addrs), tuple(routers))


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
