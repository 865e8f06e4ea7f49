"""Interface counters and the engine's probe figures, polled about once a second while someone looks.

Each poll dumps the links (``RTM_GETLINK`` with ``NLM_F_DUMP``, rtnetlink(7)) through pyroute2 and reads
``IFLA_STATS64`` (``struct rtnl_link_stats64``, include/uapi/linux/if_link.h): bytes and packets
received and sent, 64-bit. A kernel or driver that gives only ``IFLA_STATS`` (32-bit, wraps every
4 GiB) is read with ``width`` 32. Counters are keyed by ifindex; those that go backwards (a driver
reset, an ifindex reused by another NIC) are the core's business (:mod:`mhgui.core.health`).

With ``uplinks`` (an async callable returning the engine's ``GetUplinks`` list, see
:mod:`mhgui.engine.mn_dbus`), the same tick also reads the engine's per-uplink RTT and loss: they
change with every probe and the engine signals only reachability changes.

Polling runs only while :meth:`LinkStatsSource.set_active` says so (the window is shown); it stops
otherwise and holds no socket then. Errors (no netlink access, a failed read) are reported to the sink
as :class:`StatsError` and polling goes on at the next tick.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Awaitable, Callable, Union

from ..core.health import LinkCounters
from ..tasks import cancel_and_wait

log = logging.getLogger(__name__)

__all__ = ["LinkStatsSource", "StatsError", "StatsTick", "counters_of"]

#: seconds between two polls
INTERVAL = 1.0
#: seconds the engine may take to answer GetUplinks before the tick goes on without it
UPLINKS_TIMEOUT = 0.8


@dataclass(frozen=True, slots=True)
class StatsTick:
    """One poll: ``t`` (the source's monotonic clock, taken when the dump's answer came), the counters of
    every link, and the engine's uplinks (``GetUplinks`` objects; None when not asked or not answered)."""

    t: float
    links: tuple[LinkCounters, ...]
    uplinks: tuple | None = None


@dataclass(frozen=True, slots=True)
class StatsError:
    """A poll failed: ``what`` is ``"netlink"`` or ``"uplinks"``, ``message`` a sentence for the user."""

    what: str
    message: str


Sink = Callable[[Union[StatsTick, StatsError]], None]


def counters_of(msg) -> LinkCounters | None:
    """The counters of one RTM_NEWLINK message (pyroute2 ``ifinfmsg``); None without stats or when malformed."""
    try:
        ifindex = int(msg["index"])
        raw = msg.get("ifname")
        name = raw.decode("utf-8", "backslashreplace") if isinstance(raw, bytes) else str(raw or f"if{ifindex}")
        stats, width = msg.get("IFLA_STATS64"), 64
        if not stats:
            stats, width = msg.get("IFLA_STATS"), 32
        if not stats:
            return None
        return LinkCounters(ifindex, name, int(stats["rx_bytes"]), int(stats["tx_bytes"]),
                            int(stats["rx_packets"]), int(stats["tx_packets"]), width)
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


class LinkStatsSource:
    """Polls link counters (and the engine's uplinks) every ``interval`` s while active (module docstring).

    ``sink(item)``: a :class:`StatsTick` per poll, a :class:`StatsError` when a part failed; called on
    the event loop's thread (may be set after construction: :attr:`sink`). ``netns``: a named network
    namespace (None: this one). ``uplinks``: async callable giving ``GetUplinks``' list, or None when
    there is no engine now; None: not asked. ``clock``: monotonic seconds.
    """

    def __init__(self, sink: Sink | None = None, *, netns: str | None = None, interval: float = INTERVAL,
                 uplinks: Callable[[], Awaitable[list | None]] | None = None,
                 clock: Callable[[], float] = time.monotonic, ipr_factory: Callable[[], object] | None = None) -> None:
        self.sink = sink
        self._netns = netns
        self.interval = interval
        self._uplinks = uplinks
        self._clock = clock
        self._factory = ipr_factory
        self._task: asyncio.Task | None = None
        self._stopped = False
        self.polls = 0  # completed polls (tests, the view's status)

    @property
    def active(self) -> bool:
        return self._task is not None and not self._task.done()

    def set_active(self, active: bool) -> None:
        """Start polling (at once) or stop it; idempotent. Needs a running event loop to start."""
        if active and not self.active and not self._stopped:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="linkstats")
        elif not active and self._task is not None:
            self._task.cancel()
            self._task = None

    async def stop(self) -> None:
        """Stop polling for good (the app is leaving); waits for the poll under way to end."""
        self._stopped = True
        task, self._task = self._task, None
        await cancel_and_wait(task)

    def _emit(self, item) -> None:
        sink = self.sink
        if sink is None:
            return
        try:
            sink(item)
        except Exception:  # a consumer's bug must not stop the polls
            log.exception("link statistics consumer failed")

    def _open(self):
        if self._factory is not None:
            return self._factory()
        from pyroute2.iproute.linux import AsyncIPRoute  # the submodule alone (mhgui._pyroute2)
        return AsyncIPRoute(netns=self._netns) if self._netns else AsyncIPRoute()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        ipr = None
        try:
            while True:
                started = loop.time()
                try:
                    if ipr is None:
                        ipr = self._open()
                    links = await self._dump(ipr)
                except asyncio.CancelledError:
                    raise
                except Exception as e:
                    if ipr is not None:
                        ipr.close()
                        ipr = None
                    why = e.strerror if isinstance(e, OSError) and e.strerror else str(e) or type(e).__name__
                    self._emit(StatsError("netlink", f"cannot read the interface counters: {why}"))
                    links = None
                if links is not None:
                    t = self._clock()
                    ups = await self._read_uplinks()
                    self.polls += 1
                    self._emit(StatsTick(t, links, ups))
                await asyncio.sleep(max(0.05, self.interval - (loop.time() - started)))
        finally:
            if ipr is not None:
                ipr.close()

    async def _dump(self, ipr) -> tuple[LinkCounters, ...]:
        out = []
        async for m in await ipr.link("dump"):
            c = counters_of(m)
            if c is not None:
                out.append(c)
        return tuple(out)

    async def _read_uplinks(self) -> tuple | None:
        if self._uplinks is None:
            return None
        try:
            got = await asyncio.wait_for(self._uplinks(), UPLINKS_TIMEOUT)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # the engine went, a timeout, a malformed answer: the counters still count
            self._emit(StatsError("uplinks", f"the engine's probe figures could not be read: {e or type(e).__name__}"))
            return None
        return tuple(got) if isinstance(got, (list, tuple)) else None
