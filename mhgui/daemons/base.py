"""The mobility-daemon driver interface the rest of the application uses.

A driver connects to one mobility daemon (UMIP's ``mip6d`` today, see
:mod:`mhgui.daemons.umip`), reports its status, its capabilities
(:class:`~mhgui.core.capabilities.DaemonCapabilities`) and its bindings
(:class:`~mhgui.core.bindings.Binding`), and carries out the user's requests:

- **rebind** a home address to an interface: :meth:`DaemonDriver.plan_rebind`
  says what would move, whether the daemon must restart and why it cannot be
  done; :meth:`DaemonDriver.rebind` executes a plan and confirms it from the
  daemon's own binding list (RFC 6275 section 11.1);
- **flow bindings** (RFC 6089): :meth:`DaemonDriver.set_flow_binding`, refused
  with :class:`CapabilityError` by drivers without the capability.

Configuration changes go through a :class:`ConfigWriter` (the privileged
helper implements it over D-Bus; :class:`FileConfigWriter` is a local-file
implementation for tests and unprivileged setups).
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import os
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Awaitable, Callable, Mapping, Protocol, Union, runtime_checkable

from mhgui.core.analysis import ROLE_COA, ROLE_TENTATIVE, Analysis, analyse
from mhgui.core.bindings import Binding
from mhgui.core.capabilities import NO_DAEMON, DaemonCapabilities
from mhgui.i18n import _
from mhgui.core.model import InterfaceKind, NodeState

from ..engine.selectors import FlowBinding, TrafficSelector  # re-exported: drivers and the app use them from here
from ..tasks import cancel_and_wait  # re-exported: the drivers use it from here

log = logging.getLogger(__name__)

__all__ = [
    "STATE_ABSENT",
    "STATE_BUSY",
    "STATE_CONNECTED",
    "STATE_ERROR",
    "STATE_NO_TERMINAL",
    "STATE_RECONNECTING",
    "STATE_STARTING",
    "STATE_STOPPED",
    "BindingsChanged",
    "CapabilityError",
    "ConfigWriter",
    "DaemonDriver",
    "DaemonMoved",
    "DaemonStatus",
    "DriverEvent",
    "FileConfigWriter",
    "FlowBinding",
    "FlowBindingResult",
    "LiveInterface",
    "LiveView",
    "RebindPlan",
    "RebindResult",
    "StatusChanged",
    "TrafficSelector",
    "as_live_view",
    "cancel_and_wait",
]

# DaemonStatus.state words
STATE_STOPPED = "stopped"  # the driver is not running
STATE_STARTING = "starting"  # first connection attempt in progress
STATE_CONNECTED = "connected"  # the control interface answers
STATE_ABSENT = "absent"  # nothing answers (the daemon is not running, or has no control interface)
STATE_NO_TERMINAL = "no-terminal"  # the daemon runs, but its control interface does not answer
STATE_BUSY = "busy"  # another client holds the control interface
STATE_RECONNECTING = "reconnecting"  # the connection dropped; retrying with backoff
STATE_ERROR = "error"  # the daemon answered something we cannot use


@dataclass(frozen=True, slots=True)
class DaemonStatus:
    """Where the driver stands with its daemon.

    ``name``: the driver (``"umip"``); ``node``: ``"mn"``, ``"ha"`` or None
    (unknown, or a correspondent node); ``reachable``: the control interface
    answers; ``state``: one of ``stopped``, ``starting``, ``connected``,
    ``absent``, ``no-terminal``, ``busy``, ``reconnecting``, ``error``;
    ``error``: one sentence for the user, or None.
    """

    name: str
    node: str | None = None
    reachable: bool = False
    state: str = STATE_STOPPED
    error: str | None = None


@dataclass(frozen=True, slots=True)
class StatusChanged:
    """Event: the driver's :class:`DaemonStatus` changed."""

    status: DaemonStatus


@dataclass(frozen=True, slots=True)
class BindingsChanged:
    """Event: the daemon's bindings changed (not sent for the lifetime countdown alone)."""

    bindings: tuple[Binding, ...]


@dataclass(frozen=True, slots=True)
class DaemonMoved:
    """Event: the daemon moved a home address to another interface and says why (mhgui's engine does; UMIP's
    moves are inferred from its binding list instead). ``reason``: the daemon's words ("rebind requested",
    "home agent unreachable", "link or address change", "preferences changed"...); times are seconds on the
    host's monotonic clock: the first BU of the move, the BU that was acknowledged, its acknowledgement."""

    hoa: str
    from_interface: str | None
    to_interface: str
    reason: str
    first_bu_at: float | None = None
    bu_at: float | None = None
    ack_at: float | None = None


DriverEvent = Union[StatusChanged, BindingsChanged, DaemonMoved]
Callback = Callable[[DriverEvent], None]


class CapabilityError(RuntimeError):
    """The daemon cannot do what was asked (the message says why, for the user)."""


# --------------------------------------------------------------------------- live view


@dataclass(frozen=True, slots=True)
class LiveInterface:
    """One interface as the rebind planner needs it.

    ``coas``: usable care-of addresses (analysis role ``coa``, RFC 5952);
    ``tentative``: global addresses still in DAD (RFC 4862 section 5.4);
    ``routers``: IPv6 default routers; ``home_link``: on a home link
    (draft section 6.2.3); ``tunnel``: a tunnel (UMIP then needs no router).
    """

    name: str
    ifindex: int | None = None
    up: bool = False
    coas: tuple[str, ...] = ()
    tentative: tuple[str, ...] = ()
    routers: tuple[str, ...] = ()
    home_link: bool = False
    tunnel: bool = False


@dataclass(frozen=True)
class LiveView:
    """The node's live interfaces by name, and the HoAs that are at home."""

    interfaces: Mapping[str, LiveInterface] = field(default_factory=dict)
    hoas_at_home: frozenset[str] = frozenset()

    @classmethod
    def from_state(cls, state: NodeState, analysis: Analysis | None = None, now: float | None = None) -> "LiveView":
        """Build from the model; ``analysis`` is computed at ``now`` (default ``time.monotonic()``) when not given."""
        if analysis is None:
            analysis = analyse(state, time.monotonic() if now is None else now)
        by_if: dict[int, dict[str, list[str]]] = {}
        for key, role in analysis.roles.items():
            addr = state.addresses.get(key)
            if addr is None:
                continue
            slot = by_if.setdefault(key.ifindex, {"coa": [], "tentative": []})
            if role.role == ROLE_COA:
                slot["coa"].append(addr.address)
            elif role.role == ROLE_TENTATIVE and addr.address_class in ("global", "ula"):
                slot["tentative"].append(addr.address)
        interfaces = {}
        for ifindex, iface in state.interfaces.items():
            slot = by_if.get(ifindex, {"coa": [], "tentative": []})
            interfaces[iface.name] = LiveInterface(
                name=iface.name,
                ifindex=ifindex,
                up=iface.up,
                coas=tuple(sorted(slot["coa"])),
                tentative=tuple(sorted(slot["tentative"])),
                routers=tuple(sorted(state.routers.get(ifindex, ()))),
                home_link=ifindex in analysis.home_links,
                tunnel=iface.kind is InterfaceKind.TUNNEL,
            )
        at_home = frozenset(h.hoa.address for h in analysis.homes if h.at_home)
        return cls(interfaces, at_home)

    def coa_interfaces(self) -> dict[str, str]:
        """``{coa: interface name}`` for every usable CoA (for :func:`~mhgui.core.bindings.fill_interfaces`)."""
        return {c: i.name for i in self.interfaces.values() for c in i.coas}


# --------------------------------------------------------------------------- rebind


@dataclass(frozen=True)
class RebindPlan:
    """What a rebind request "HoA -> interface" would do.

    - ``moves``: every HoA whose binding follows (with UMIP: all HoAs not at home);
    - ``staying``: configured HoAs that do not move (at home);
    - ``restart_required``: the daemon must restart for the change to apply;
    - ``refusal``: why it cannot be done, None when it can; ``pending``: the
      refusal may clear by itself (e.g. "not yet: DAD in progress", RFC 4862
      section 5.4), so the request can be retried;
    - ``target_coas``: the live CoAs of ``interface`` a confirmed binding must show;
    - ``preferences_before`` / ``preferences_after``: the daemon's interface
      preferences (UMIP ``MnIfPreference``) now and after the change;
    - ``notes``: further sentences for the user.
    """

    hoa: str
    interface: str
    moves: tuple[str, ...] = ()
    staying: tuple[str, ...] = ()
    restart_required: bool = False
    refusal: str | None = None
    pending: bool = False
    target_coas: tuple[str, ...] = ()
    preferences_before: Mapping[str, int] = field(default_factory=dict)
    preferences_after: Mapping[str, int] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def allowed(self) -> bool:
        return self.refusal is None

    @property
    def changes(self) -> dict[str, tuple[int | None, int]]:
        """``{interface: (old preference or None, new preference)}`` for what changes."""
        return {
            name: (self.preferences_before.get(name), pref)
            for name, pref in self.preferences_after.items()
            if self.preferences_before.get(name) != pref
        }


@dataclass(frozen=True)
class FlowBindingResult:
    """Outcome of a flow-binding request (RFC 6089): ``confirmed`` by the home agent after ``elapsed_ms``
    (the daemon's own measure: request to Binding Acknowledgement), ``fid`` (0 when none was assigned),
    ``reason`` in words when not confirmed."""

    confirmed: bool
    fid: int
    elapsed_ms: float
    reason: str | None = None


@dataclass(frozen=True)
class RebindResult:
    """Outcome of :meth:`DaemonDriver.rebind`.

    ``confirmed``: the daemon's bindings show the change; ``elapsed_ms``: from
    the request to confirmation (or failure); ``new_coa``: the CoA now bound
    for the plan's HoA; ``coas``: the CoA bound per moved HoA; ``reason``: why
    it failed, None when confirmed; ``rolled_back``: the previous
    configuration was restored (and the daemon restarted again).
    """

    confirmed: bool
    elapsed_ms: float
    new_coa: str | None = None
    reason: str | None = None
    rolled_back: bool = False
    coas: Mapping[str, str] = field(default_factory=dict)


@runtime_checkable
class ConfigWriter(Protocol):
    """Reads and writes the daemon's configuration file and restarts the daemon.

    The privileged helper implements this over D-Bus; :class:`FileConfigWriter`
    does it on a local file.
    """

    async def read_config(self) -> str: ...

    async def write_config(self, text: str) -> None: ...

    async def restart_daemon(self) -> None: ...


class FileConfigWriter:
    """:class:`ConfigWriter` on a local file; ``restart`` is an async callable (default: nothing).

    Writes are atomic (a temporary file in the same directory, then
    ``os.replace``), keeping the file's permission bits. ``restarts`` and
    ``writes`` count the calls (for tests and logs).
    """

    def __init__(self, path: str | os.PathLike[str], restart: Callable[[], Awaitable[None]] | None = None) -> None:
        self.path = Path(path)
        self._restart = restart
        self.restarts = 0
        self.writes = 0

    async def read_config(self) -> str:
        # bytes, not read_text(): no newline translation, so CRLF files come back unchanged
        return self.path.read_bytes().decode("utf-8")

    async def write_config(self, text: str) -> None:
        directory = self.path.parent
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
                f.write(text)
            try:
                os.chmod(tmp, self.path.stat().st_mode & 0o7777)
            except FileNotFoundError:
                pass
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        self.writes += 1

    async def restart_daemon(self) -> None:
        self.restarts += 1
        if self._restart is not None:
            await self._restart()


# --------------------------------------------------------------------------- flow bindings (RFC 6088/6089)


# TrafficSelector and FlowBinding live in mhgui.engine.selectors (the engine's codec uses them too).


# --------------------------------------------------------------------------- the driver


#: what ``plan_rebind`` accepts as the live state: a view, a model (analysed at the
#: driver's clock), or a model with its analysis
LiveInput = Union[LiveView, NodeState, tuple[NodeState, Analysis]]


def as_live_view(live: LiveInput, now: float | None = None) -> LiveView:
    """A :class:`LiveView` from any :data:`LiveInput`."""
    if isinstance(live, LiveView):
        return live
    if isinstance(live, NodeState):
        return LiveView.from_state(live, now=now)
    state, analysis = live
    return LiveView.from_state(state, analysis, now=now)


class DaemonDriver(abc.ABC):
    """Base of every mobility-daemon driver.

    Subclasses implement the abstract methods and call :meth:`_emit` (or
    :meth:`_set_status` / :meth:`_set_bindings`) when something changes.
    ``start``/``stop`` must be idempotent. Callbacks run in the event loop's
    thread; an exception in one is logged and does not stop the others.
    """

    name: str = "none"
    #: the driver emits :class:`DaemonMoved` for every move (its reason and times); without it, moves are
    #: inferred from the bindings
    reports_moves: bool = False

    def __init__(self) -> None:
        self._callbacks: list[Callback] = []
        self._status = DaemonStatus(self.name)
        self._bindings: tuple[Binding, ...] = ()

    # ---- state
    @property
    def status(self) -> DaemonStatus:
        return self._status

    @property
    def capabilities(self) -> DaemonCapabilities:
        """What the daemon can do now (``connected`` False while it does not answer)."""
        return NO_DAEMON

    def bindings(self) -> list[Binding]:
        """The daemon's bindings as last read (its BUL on a mobile node, its cache on an HA)."""
        return list(self._bindings)

    def hurry(self, duration: float) -> None:
        """Look at the daemon closely for ``duration`` seconds (a failover is under way, its moves are
        timed): drivers that poll poll at once and often. Default: nothing (the driver is event-driven)."""

    # ---- events
    def subscribe(self, callback: Callback) -> Callable[[], None]:
        """Call ``callback(event)`` on every :class:`StatusChanged` / :class:`BindingsChanged` /
        :class:`DaemonMoved`; returns an unsubscribe function."""
        self._callbacks.append(callback)

        def unsubscribe() -> None:
            if callback in self._callbacks:
                self._callbacks.remove(callback)

        return unsubscribe

    def _emit(self, event: DriverEvent) -> None:
        for cb in list(self._callbacks):
            try:
                cb(event)
            except Exception:  # a subscriber's bug must not stop the driver
                log.exception("driver subscriber failed on %r", event)

    def _set_status(self, status: DaemonStatus) -> None:
        if status != self._status:
            self._status = status
            self._emit(StatusChanged(status))

    def _set_bindings(self, bindings: tuple[Binding, ...]) -> None:
        old = self._bindings
        self._bindings = bindings
        changed = len(old) != len(bindings) or not all(a.same_content(b) for a, b in zip(old, bindings))
        if changed:
            self._emit(BindingsChanged(bindings))

    # ---- lifecycle
    @abc.abstractmethod
    async def start(self) -> None:
        """Start talking to the daemon (idempotent; returns at once, connecting goes on in the background)."""

    @abc.abstractmethod
    async def stop(self) -> None:
        """Stop and close the connection (idempotent)."""

    # ---- requests
    @abc.abstractmethod
    async def plan_rebind(self, hoa: str, ifname: str, live: LiveInput) -> RebindPlan:
        """What binding ``hoa`` to interface ``ifname`` would do (never raises for a refusal)."""

    @abc.abstractmethod
    async def rebind(self, plan: RebindPlan) -> RebindResult:
        """Carry out ``plan`` and confirm it from the daemon's bindings."""

    async def set_flow_binding(self, fb: FlowBinding, hoa: str | None = None) -> FlowBindingResult:
        """Install or change an RFC 6089 flow binding; :class:`CapabilityError` without the capability."""
        self._no_flows()
        raise NotImplementedError

    async def list_flow_bindings(self) -> list[dict]:
        """The daemon's flow bindings (see :meth:`mhgui.daemons.engine.EngineDriver.flow_bindings`);
        :class:`CapabilityError` without the capability."""
        self._no_flows()
        raise NotImplementedError

    async def remove_flow_binding(self, hoa: str, fid: int) -> FlowBindingResult:
        """Remove flow binding ``fid`` of ``hoa``; :class:`CapabilityError` without the capability."""
        self._no_flows()
        raise NotImplementedError

    def flow_bindings(self) -> list[dict]:
        """The flow bindings as last read ([] for a daemon without them)."""
        return []

    def _no_flows(self) -> None:
        if not self.capabilities.flow_bindings:
            raise CapabilityError(
                f"{self.name}: this daemon cannot bind flows (RFC 6089 flow bindings are not supported)"
            )


async def plan_when_ready(driver: DaemonDriver, hoa: str, ifname: str,
                          live: Callable[[], tuple[NodeState, Analysis]], *, timeout: float = 10.0,
                          interval: float = 0.25, on_wait: Callable[[str], None] | None = None) -> RebindPlan:
    """Plan a rebind, waiting while the interface's only candidate CoA is tentative.

    RFC 4862 section 5.4: an address is not used before duplicate address
    detection ends (about 1 s with the defaults). While the plan says
    ``pending``, it is made again every ``interval`` s for up to ``timeout``
    s (``on_wait(reason)`` is told once). If DAD fails for every tentative
    address of ``ifname`` meanwhile, the plan is refused with that reason.
    """
    from ..core.model import AddressFlag

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    state, an = live()
    plan = await driver.plan_rebind(hoa, ifname, (state, an))
    waiting: set[str] = set()
    told = False
    while True:
        iface = LiveView.from_state(state, an).interfaces.get(ifname)
        if plan.pending:
            waiting |= set(iface.tentative if iface else ())
        failed = {a.address for a in state.addresses.values()
                  if a.address in waiting and int(a.flags) & int(AddressFlag.DADFAILED)}
        if waiting and failed >= waiting and not plan.allowed:
            return replace(plan, pending=False, refusal=(
                _("duplicate address detection failed on {name} for {addresses}: another node uses that address, so "
                  "the interface has no care-of address (RFC 4862 section 5.4.5)").format(
                      name=ifname, addresses=", ".join(sorted(failed)))))
        if plan.allowed or not plan.pending:
            return plan
        if loop.time() >= deadline:
            return replace(plan, pending=False, refusal=(plan.refusal or "") + _(" (still so after {s} s)").format(
                s=f"{timeout:g}"))
        if not told and on_wait is not None:
            on_wait(plan.refusal or "waiting")
            told = True
        await asyncio.sleep(interval)
        state, an = live()
        plan = await driver.plan_rebind(hoa, ifname, (state, an))
