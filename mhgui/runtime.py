"""Wiring shared by the GUI and ``mhctl``: store, sources, configuration.

sources (netlink, NetworkManager, config files) → :class:`StateStore` →
subscribers (Qt models, the monitor printer). Runs on one asyncio loop
(qasync's in the GUI); blocking file reads go to the default executor.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import time
from typing import TYPE_CHECKING, Callable

from ._pyroute2 import defer_package_init
from .core.analysis import Analyser, Analysis
from .core.capabilities import NO_DAEMON, DaemonCapabilities
from .i18n import _
from .core.access import NO_SANDBOX, AccessProblem, Sandbox, problems as access_problems
from .core.state import HomeAddressesSet, SourceStatus, StateStore
from .sources.config import ConfigError, LoadedConfig, load_config
from .sources.netlink import NetlinkSource, can_open_netlink

# Imported where they are used (issue 14): `mhctl status` needs none of the drivers' or the flows'
# modules, and the window is shown before the daemon driver and the flows source start.
if TYPE_CHECKING:
    from .daemons.base import DaemonDriver, LiveView
    from .daemons.umip import UmipDriver
    from .sources.flows import FlowSource

# pyroute2's package __init__ imports every socket it has (ndb, ipdb, conntrack, nftables...): the
# netlink source imports only the modules it uses, and the package's names load when first asked for
defer_package_init()

log = logging.getLogger(__name__)

#: seconds an analysis is reused while the store does not change (addresses' lifetimes count down meanwhile)
ANALYSIS_REUSE = 0.05


class EventBatcher:
    """A source's sink that applies its events to ``store`` once per event-loop turn, as one batch.

    ``batcher(event)`` queues the event and, for the first one of a turn, schedules
    :meth:`flush` (``loop.call_soon``): the store applies them in order with
    :meth:`~mhgui.core.state.StateStore.apply_batch`, so its subscribers (the window's models)
    hear one change set per turn instead of one per event: a burst of 5,000 netlink
    messages read in one turn is one insertion of 5,000 rows (issue 14). Must be called on
    the loop's thread, inside a running loop. :meth:`flush` may be called at any time.
    """

    def __init__(self, store: StateStore) -> None:
        self.store = store
        self._pending: list = []
        self._handle: asyncio.Handle | None = None
        #: batches applied and the largest one (events): for benchmarks and tests
        self.batches = 0
        self.largest = 0

    def __call__(self, event) -> None:
        self._pending.append(event)
        if self._handle is None:
            self._handle = asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        """Apply what is queued now (nothing when nothing is)."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        events, self._pending = self._pending, []
        if events:
            self.batches += 1
            self.largest = max(self.largest, len(events))
            self.store.apply_batch(events)


def umip_driver(system_bus: str | None = None, vt_port: int = 7777, poll_interval: float = 1.0) -> UmipDriver:
    """UMIP's driver: mip6d's terminal on localhost ``vt_port``; rebinds through the privileged helper."""
    from .daemons.umip import UmipDriver
    from .helper.client import HelperClient, HelperConfigWriter
    writer = HelperConfigWriter(HelperClient(bus_address=system_bus))
    return UmipDriver(port=vt_port, config_writer=writer, poll_interval=poll_interval)


async def choose_driver(system_bus: str | None = None, *, vt_port: int | None = 7777, poll_interval: float = 1.0,
                        timeout: float = 2.0, mn_config: str | None = None) -> DaemonDriver | None:
    """The driver of the mobility daemon this node runs, for :class:`Runtime`'s ``daemon``.

    mhgui's engine (:class:`~mhgui.daemons.engine.EngineDriver`) when its bus name
    ``io.github.mhgui.MHGui.MobileNode1`` is owned on the system bus (``system_bus``, else
    ``$DBUS_SYSTEM_BUS_ADDRESS``, else the default; asked for at most ``timeout`` s), and also when it is
    not but this node is configured for it: its configuration file exists (``mn_config``, default
    :func:`mhgui.engine.paths.mn_config_path`: ``/etc/mhgui/mn.toml``, or the lab's). The engine's driver
    then says "not running" and offers to start it, and follows it when it starts. Otherwise UMIP's
    (:func:`umip_driver`), or None when ``vt_port`` is None.
    """
    from .daemons.engine import EngineDriver, engine_present
    if await engine_present(system_bus, timeout):
        log.info("mobility daemon: mhgui's engine (io.github.mhgui.MHGui.MobileNode1)")
        return EngineDriver(bus_address=system_bus)
    from .engine.paths import engine_configured, mn_config_path
    mn_config = mn_config if mn_config is not None else mn_config_path()
    if await asyncio.get_running_loop().run_in_executor(None, engine_configured, mn_config):
        log.info("mobility daemon: mhgui's engine, configured in %s but not running (yet)", mn_config)
        return EngineDriver(bus_address=system_bus)
    return umip_driver(system_bus, vt_port, poll_interval) if vt_port is not None else None


class Runtime:
    """The live node state and its sources.

    ``mip6d_conf``: path given by the user (missing → :class:`ConfigError`).
    ``system_bus``: D-Bus address of the system bus (None: the default).
    ``use_networkmanager``: False skips NetworkManager (netlink alone).
    ``daemon``: the mobility daemon's driver (:func:`choose_driver`); None: UMIP's on ``vt_port``,
    or none when ``vt_port`` is None.
    ``linkstats``: make :attr:`linkstats` (interface counters and the engine's probe figures for the
    window's Health tab; it polls only while its consumer activates it).
    ``store``: the store to fill (the window's controller may exist first); None: a new one.
    ``batch_events``: netlink's events reach the store once per event-loop turn, as one batch
    (:class:`EventBatcher`; the window: a burst is one change set); False: each one at once (``mhctl``).
    """

    def __init__(self, *, mip6d_conf: str | None = None, settings_file: str | None = None,
                 system_bus: str | None = None, use_networkmanager: bool = True,
                 netns: str | None = None, clock: Callable[[], float] = time.monotonic,
                 vt_port: int | None = 7777, poll_interval: float = 1.0, flows: bool = False,
                 daemon: DaemonDriver | None = None, linkstats: bool = False,
                 batch_events: bool = False, store: StateStore | None = None) -> None:
        self.store = store if store is not None else StateStore()
        # first subscriber: every later one that asks for the analysis sees this change counted
        self._generation = 0  # store changes seen (the analysis cache's key)
        self._analysis: tuple[int, float, Analysis] | None = None
        self._analyser = Analyser()  # incremental: redoes only what changed (issue 14)
        self._changed = asyncio.Event()  # set at each store change (start() waits on it)
        self.store.subscribe(self._count_change, first=True)
        self.clock = clock
        self.mip6d_conf = mip6d_conf
        self.settings_file = settings_file
        self.config: LoadedConfig = LoadedConfig()
        #: netlink's sink when ``batch_events`` (else None: the store's apply)
        self.batcher = EventBatcher(self.store) if batch_events else None
        self.netlink = NetlinkSource(self.batcher or self.store.apply, netns=netns, clock=clock)
        self.nm = None
        if use_networkmanager:
            from .sources.networkmanager import NetworkManagerSource
            self.nm = NetworkManagerSource(self.store.apply, bus_address=system_bus)
        # the mobility daemon: ``daemon`` (see choose_driver), else UMIP's terminal on localhost
        # (rebinds through the privileged helper) unless vt_port is None
        self.daemon: DaemonDriver | None = None
        self._live_pending = False
        if daemon is None and vt_port is not None:
            daemon = umip_driver(system_bus, vt_port, poll_interval)
        if daemon is not None:
            self.attach_daemon(daemon)
        #: the socket table, polled for the window's flows view (``flows=True``); callbacks set later
        self.flows: FlowSource | None = None
        if flows:
            from .sources.flows import FlowSource
            self.flows = FlowSource(interval=1.0, netns=netns)
        self.linkstats = None
        if linkstats:
            from .sources.linkstats import LinkStatsSource
            self.linkstats = LinkStatsSource(netns=netns, clock=clock, uplinks=self._engine_uplinks)
        self.system_bus = system_bus
        #: the sandbox (``/.flatpak-info``), read in :meth:`start`; the access probe's task
        self.sandbox: Sandbox = NO_SANDBOX
        self._access_task: asyncio.Task | None = None

    async def _engine_uplinks(self) -> list | None:
        """The engine's ``GetUplinks`` now (RTT and loss per uplink), None without a connected engine."""
        read = getattr(self.daemon, "read_uplinks", None)
        if read is None or not self.caps.connected:
            return None
        return await read()

    def attach_daemon(self, daemon: DaemonDriver) -> None:
        """Use ``daemon``'s driver from now on (made after the runtime: the window starts netlink first);
        before :meth:`start`, which starts it. ``RuntimeError`` when there is one already."""
        if self.daemon is not None:
            raise RuntimeError("the runtime has a daemon driver already")
        self.daemon = daemon
        daemon.subscribe(self._on_daemon)
        self.store.subscribe(self._on_store)
        if self.store.state.interfaces or self.store.state.addresses:
            self._on_store([])  # what the store holds already: the driver hears it (next loop turn)

    async def start_netlink(self) -> None:
        """Start the netlink source now (its snapshot is the window's first frame with addresses); :meth:`start`
        does it too. Says so in the store when this process may not open a netlink socket."""
        if can_open_netlink():
            await self.netlink.start()
        else:
            self.store.apply(SourceStatus("netlink", "no-access", _("this process may not open a netlink socket")))

    @property
    def caps(self) -> DaemonCapabilities:
        return self.daemon.capabilities if self.daemon is not None else NO_DAEMON

    def live_view(self) -> LiveView:
        from .daemons.base import LiveView
        return LiveView.from_state(self.store.state, self.analysis())

    def _on_daemon(self, ev) -> None:
        from .core.bindings import bound_coas
        from .core.state import BoundCoAsSet
        from .daemons.base import BindingsChanged, StatusChanged
        if isinstance(ev, BindingsChanged):
            self.store.apply(BoundCoAsSet(bound_coas(ev.bindings)))
        elif isinstance(ev, StatusChanged):
            st = ev.status
            self.store.apply(SourceStatus(st.name, st.state, st.error or ""))
        self._apply_home_addresses()

    def _apply_home_addresses(self) -> None:
        """The configured HoAs, plus those of a daemon that reports its own (the engine): its entry wins
        for an address both name, since it is what the daemon registers."""
        if self.config is None:
            return
        event = self.config.event()
        own = getattr(self.daemon, "home_addresses", None)
        mine = tuple(own()) if callable(own) and self.daemon.status.reachable else ()
        if mine:
            names = {h.address for h in mine}
            event = HomeAddressesSet(mine + tuple(h for h in event.home_addresses if h.address not in names),
                                     event.notes)
        self.store.apply(event)

    def _count_change(self, changes) -> None:
        self._generation += 1
        self._changed.set()

    def _on_store(self, changes) -> None:
        # the driver names each binding's interface from the live model: refresh it once per loop turn
        if not self._live_pending and self.daemon is not None:
            self._live_pending = True
            asyncio.get_running_loop().call_soon(self.push_live)

    def push_live(self) -> None:
        self._live_pending = False
        if self.daemon is not None:
            self.daemon.set_live(self.live_view())

    @property
    def allow_ula(self) -> bool:
        return bool(self.config.settings and self.config.settings.allow_ula)

    def analysis(self) -> Analysis:
        """The analysis of the store's state now; shared by its users (the daemon's live view, failover,
        the tray) until the store changes or :data:`ANALYSIS_REUSE` seconds pass (lifetimes run on)."""
        now = self.clock()
        cached = self._analysis
        if cached is not None and cached[0] == self._generation and now - cached[1] < ANALYSIS_REUSE:
            return cached[2]
        caps = self.caps  # an engine that takes IPv4 CoAs (RFC 5555) makes IPv4 addresses count
        an = self._analyser.analyse(self.store.state, now, allow_ula=self.allow_ula,
                                    ipv4_coas=caps.connected and caps.ipv4_coas)
        self._analysis = (self._generation, now, an)
        return an

    async def load_config(self) -> None:
        """(Re)read the configuration files in an executor; problems land in ``config.errors``
        (and in the store's notes, for the window), never as an exception. Inside a Flatpak sandbox,
        unless ``mip6d_conf`` was given, the daemon's file comes through the helper (the host's /etc
        is not visible there: :func:`mhgui.sources.config.read_daemon_config`)."""
        loop = asyncio.get_running_loop()
        daemon = None
        if self.mip6d_conf is None:
            from .sources.access import flatpak_info_path
            if await loop.run_in_executor(None, os.path.exists, flatpak_info_path()):
                from .sources.config import read_daemon_config
                daemon = await read_daemon_config(self.system_bus)
        self.config = await loop.run_in_executor(
            None, functools.partial(load_config, self.mip6d_conf, self.settings_file, strict=False, daemon=daemon))
        self._apply_home_addresses()

    async def start(self, *, wait: float = 5.0, strict: bool = False) -> None:
        """Load config, start the sources, wait up to ``wait`` s until both have reported, then start
        the flows source (when there is one).

        ``strict``: raise :class:`ConfigError` with the first configuration
        problem before starting anything (``mhctl``); otherwise the problems
        are shown and everything that could be read is used (the window).
        """
        await self.load_config()
        if strict and self.config.errors:
            raise ConfigError(self.config.errors[0])
        await self.start_access_probe()
        await self.start_netlink()
        if self.daemon is not None:
            await self.daemon.start()
        if self.nm is not None:
            await self.nm.start()
        else:
            self.store.apply(SourceStatus("networkmanager", "absent", _("not used (--no-networkmanager)")))
        # both sources have said something (a snapshot or why not), or time is up: woken by each store
        # change and by the end of the access probe (no polling: `mhctl status` returns as soon as it can)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while not self._settled():
            left = deadline - loop.time()
            if left <= 0:
                log.warning("sources not settled after %.1f s: %s", wait, self.store.sources)
                break
            self._changed.clear()
            changed = loop.create_task(self._changed.wait())
            try:
                await asyncio.wait({changed, self._access_task}, timeout=left, return_when=asyncio.FIRST_COMPLETED)
            finally:
                changed.cancel()
        # the socket table last: the window shows the node's addresses before the first poll of a
        # table that may hold tens of thousands of sockets (issue 14)
        if self.flows is not None:
            await self.flows.start()

    def _settled(self) -> bool:
        return all(s in self.store.sources and self.store.sources[s][0] != "resyncing"
                   for s in ("netlink", "networkmanager")) and self._access_task.done()

    # ---- what this process may see (issue 6): sandbox, system bus, helper
    async def start_access_probe(self) -> None:
        """Read the sandbox, then probe the system bus and the helper in a task (its statuses go to the store)."""
        from .sources.access import probe_system_bus, read_sandbox
        self.sandbox = await asyncio.get_running_loop().run_in_executor(None, read_sandbox)

        async def probe() -> None:
            try:
                for ev in await probe_system_bus(self.system_bus):
                    self.store.apply(ev)
            except Exception:  # a subscriber's failure must not become "exception never retrieved"
                log.exception("access probe")
        self._access_task = asyncio.create_task(probe(), name="access-probe")

    def access_problems(self) -> list[AccessProblem]:
        """What this process cannot see, now (README, ``mhctl status --json``, ``access``)."""
        return access_problems(self.store.sources, self.store.state, self.sandbox,
                               networkmanager_wanted=self.nm is not None,
                               engine=self.caps.connected and self.caps.name == "engine")

    async def stop(self) -> None:
        if self._access_task is not None and not self._access_task.done():
            self._access_task.cancel()
            await asyncio.wait([self._access_task])
        if self.flows is not None:
            await self.flows.stop()
        if self.linkstats is not None:
            await self.linkstats.stop()
        if self.daemon is not None:
            await self.daemon.stop()
        await self.netlink.stop()
        if self.batcher is not None:
            self.batcher.flush()
        if self.nm is not None:
            await self.nm.stop()


__all__ = ["Runtime", "ConfigError", "EventBatcher", "choose_driver", "umip_driver"]
