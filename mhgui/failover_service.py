"""Failover at run time: the pure policy (:mod:`mhgui.core.failover`) wired to the live sources and drivers.

Data flow (one way): the :class:`~mhgui.core.state.StateStore`'s change
batches → :class:`~mhgui.core.failover.FailoverPolicy` → actions →

- :class:`~mhgui.core.failover.SteeringFallback` → the privileged helper's
  ``SetSteeringFallback`` (latest map wins; one call at a time; a failure is a
  "failover failed" event and is retried at the next change);
- :class:`~mhgui.core.failover.SwitchTo` with a daemon that rebinds at run
  time (``capabilities.runtime_rebind``) → a rebind of every HoA. UMIP does not
  (umip.md): it moves every HoA to the best remaining interface by
  ``MnIfPreference`` by itself, at once, and back at once; the app never races
  it and only measures it: after any trigger the driver polls its binding
  update list closely (:meth:`~mhgui.daemons.base.DaemonDriver.hurry`), and
  :meth:`~mhgui.core.failover.FailoverLog.observe_bindings` records the move
  with its timings (first sign, Binding Update seen, acknowledged).

The policy is asked again at its ``next_deadline`` (a loop timer). Every
entry that changes goes to the listeners (:class:`EntryChanged`) and to the
journal (:mod:`mhgui.sources.journal`) for ``mhctl log``.

Events for listeners (window log, tray, notifications): :class:`EntryChanged`,
:class:`LinkLost`, :class:`FailoverDone`, :class:`FailoverFailed`,
:class:`DaemonLost`, :class:`Decided`. Times are seconds on the model's monotonic clock.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Awaitable, Callable, Mapping, Union

from .core.analysis import Analysis
from .core.failover import (
    USER_REASONS, FailoverEntry, FailoverPolicy, NoUsableInterface, Preferences, StayPending, SteeringFallback,
    SwitchTo,
)
from .core.state import Change, StateStore
from .core.walltime import WallMap
from .daemons.base import BindingsChanged, DaemonDriver, DaemonMoved, StatusChanged
from .i18n import _
from .tasks import cancel_and_wait

log = logging.getLogger(__name__)

__all__ = [
    "DaemonBack", "DaemonLost", "Decided", "EntryChanged", "FailoverDone", "FailoverEvent", "FailoverFailed", "FailoverService", "LinkLost",
    "ACK_TIMEOUT",
]

#: SwitchTo reasons that are not the loss of the interface left (going back, the user's new order, a NIC
#: renamed or a listed name taken by another NIC: the link itself is fine, the name moved)
NOT_A_LOSS = frozenset({"initial", "recovered", "preferred-back", "preferences", "renamed", "name-reused"})

#: seconds stop() waits for the helper to put the steering rules back (it also does when the app leaves the bus)
STOP_TIMEOUT = 3.0

#: A move seen in the binding update list that is not acknowledged within this many seconds is reported failed.
ACK_TIMEOUT = 30.0


@dataclass(frozen=True)
class EntryChanged:
    """A failover log entry was recorded or its timings filled in."""

    entry: FailoverEntry


@dataclass(frozen=True)
class LinkLost:
    """The interface carrying the node stopped being usable (``reason``: the policy's trigger word)."""

    interface: str
    reason: str
    at: float


@dataclass(frozen=True)
class FailoverDone:
    """A failover completed: ``took`` seconds from the link event to the last step
    (acknowledgement by the home agent, or steering rules applied); None when the daemon's move was
    seen before the link event reached the app (the kernel batches carrier notifications, up to 1 s:
    ``late`` says by how many seconds), so there is no start to time it from."""

    entry: FailoverEntry
    took: float | None
    what: str  # "daemon" (bindings acknowledged) or "steering" (rules moved)
    late: float | None = None


@dataclass(frozen=True)
class FailoverFailed:
    """No usable interface, the steering rules could not be moved, or no acknowledgement in time."""

    interface: str | None
    message: str
    at: float


@dataclass(frozen=True)
class DaemonLost:
    """The mobility daemon stopped answering (its driver's state), ``message`` says how."""

    message: str
    at: float


@dataclass(frozen=True)
class DaemonBack:
    """The mobility daemon answers again after a :class:`DaemonLost`; ``gone``: for how long (s)."""

    gone: float
    at: float


@dataclass(frozen=True)
class Decided:
    """The policy acted (a switch, a hold-up started, a new steering fallback): ``actions`` as it returned them."""

    actions: tuple


FailoverEvent = Union[EntryChanged, LinkLost, FailoverDone, FailoverFailed, DaemonLost, DaemonBack, Decided]
Listener = Callable[[FailoverEvent], None]
#: sets the helper's steering fallback; returns whether a rule actually moved (or came back)
SteeringSetter = Callable[[Mapping[str, str]], Awaitable[bool]]


class FailoverService:
    """Runs the failover policy on the live node (module docstring).

    ``store``/``clock``: the runtime's; ``analysis()``: the analysis of the
    store's state now; ``prefs``: the user's :class:`Preferences`; ``daemon``:
    the mobility daemon's driver, or None; ``steering``: an async callable
    that sets the helper's steering fallback (None: no steering); ``journal``:
    an object with ``append(entry_json, wall_of=...)`` (None: not kept on disk).

    ``wall``: the wall clock (s since 1970). :attr:`walls` (:class:`~mhgui.core.walltime.WallMap`) notes it
    against ``clock`` after every step that takes times (policy run, log entry, event), so that
    :meth:`wall_of` gives each time the wall time it had when recorded: CLOCK_MONOTONIC stops during a
    suspend, an offset taken when reading would shift what came before it by the suspend's length.
    """

    def __init__(self, store: StateStore, clock: Callable[[], float], analysis: Callable[[], Analysis],
                 prefs: Preferences, *, daemon: DaemonDriver | None = None,
                 steering: SteeringSetter | None = None, journal=None, hurry_for: float = 10.0,
                 wall: Callable[[], float] | None = None) -> None:
        self.store = store
        self.clock = clock
        self.wall = wall if wall is not None else time.time  # looked up now: tests may patch time.time
        self.walls = WallMap()
        self.note_wall()
        self._analysis = analysis
        self.policy = FailoverPolicy(prefs, clock)
        self.daemon = daemon
        self.steering = steering
        self.journal = journal
        self.hurry_for = hurry_for
        self._listeners: list[Listener] = []
        self._pending: list[Change] = []
        self._flush_handle: asyncio.Handle | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._unsubs: list[Callable[[], None]] = []
        self._steer_want: dict[str, str] | None = None  # the map to send (None: nothing to send)
        self._steer_sent: dict[str, str] | None = {}  # None: unknown (a call failed or was cancelled)
        self._steer_task: asyncio.Task | None = None
        self._steer_entry: FailoverEntry | None = None
        self._daemon_up: bool | None = None
        self._acks: dict[int, asyncio.TimerHandle] = {}
        self._done: set[int] = set()  # entries whose FailoverDone was emitted
        #: the app's entries not logged (yet): nothing moved for them, no home address, no steering rule
        self._unlogged: set[int] = set()
        self._steered_for: set[int] = set()  # the app's entries whose steering rules the helper moved
        #: the steering fallback in effect that moved rules ({interface: substitute}; empty: none moved)
        self.steered: dict[str, str] = {}
        self.started = False

    def note_wall(self) -> None:
        """Note the wall clock against the model clock now (call it after taking times, same step)."""
        self.walls.note(self.clock(), self.wall())

    def wall_of(self, t: float) -> float:
        """Seconds since 1970 for model-clock ``t`` (seconds): the wall time when it was recorded."""
        self.note_wall()
        return self.walls.wall_of(t)

    # ------------------------------------------------------------------ lifecycle
    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(event)`` for every :data:`FailoverEvent`; returns an unsubscribe function."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def start(self) -> None:
        """Subscribe to the store and the daemon, and take the state as it is now (idempotent)."""
        if self.started:
            return
        self.started = True
        self._unsubs.append(self.store.subscribe(self._on_changes))
        if self.daemon is not None:
            self._daemon_up = self.daemon.status.reachable
            self._unsubs.append(self.daemon.subscribe(self._on_daemon))
            self.log.observe_bindings(self.daemon.bindings(), self.clock())  # the baseline
        self._flush()

    async def stop(self) -> None:
        """Unsubscribe, cancel timers, and put every steering rule back on its own interface."""
        for u in self._unsubs:
            u()
        self._unsubs.clear()
        for h in (self._flush_handle, self._timer, *self._acks.values()):
            if h is not None:
                h.cancel()
        self._acks.clear()
        self.started = False
        task = self._steer_task
        if task is not None and not task.done():
            self._steer_sent = None  # a call may have been under way
        await cancel_and_wait(task)
        if self.steering is not None and self._steer_sent != {}:
            try:
                async with asyncio.timeout(STOP_TIMEOUT):
                    await self.steering({})
            except (Exception, TimeoutError) as e:  # the helper clears it anyway when this client leaves the bus
                log.info("steering fallback not cleared at exit: %s", e or "no answer")

    def set_preferences(self, prefs: Preferences, at: float | None = None, *, by_user: bool = True) -> None:
        """New preferences (the user's, from the dialog or the tray; ``by_user`` False: the app's own, an order
        derived again): decided on at once; a switch they cause is logged as the user's, timed from ``at``
        (the request, model clock; default now)."""
        self.policy.set_preferences(prefs, at, by_user=by_user)
        self._schedule_flush()

    def user_action(self, reason: str, to_interface: str | None, hoas=(), requested_at: float | None = None,
                    from_interface: str | None = None) -> FailoverEntry:
        """The user asked for a move (``reason``: "user rebind" or "preferences"; ``requested_at``: when, on
        the model clock, default now): logged at once as the user's; the daemon's move it causes fills in
        the entry's times (Binding Update seen, acknowledged). Returns the entry (for :meth:`user_failed`)."""
        now = self.clock()
        e = self.log.user_action(reason, to_interface, hoas, now if requested_at is None else requested_at, now,
                                 from_interface=from_interface)
        self._entry(e)
        return e

    def user_failed(self, e: FailoverEntry, why: str) -> None:
        """The user's request ``e`` did not happen: its entry says so (and why)."""
        self._entry(self.log.user_failed(e, why))

    def set_config_names(self, names: Mapping[str, str]) -> None:
        """The names a daemon's configuration uses, ``{name: where}`` (mip6d.conf, the engine's mn.toml): flagged
        in the log and :meth:`name_problems` when they stop designating the NIC they did (a rename)."""
        self.policy.config_names = dict(names)

    def analysis(self):
        """The node's current analysis (:class:`~mhgui.core.analysis.Analysis`), as the policy sees it."""
        return self._analysis()

    def name_problems(self) -> list[str]:
        """Names in the preferences or a daemon's configuration that now designate another NIC, or none."""
        return self.policy.name_problems()

    @property
    def log(self):
        """The policy's :class:`~mhgui.core.failover.FailoverLog`."""
        return self.policy.log

    # ------------------------------------------------------------------ inputs
    def _on_changes(self, changes: list[Change]) -> None:
        self._pending += changes
        self._schedule_flush()

    def _schedule_flush(self) -> None:
        if self._flush_handle is None:
            self._flush_handle = asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_handle = None
        changes, self._pending = self._pending, []
        last = self._last_id()
        actions = self.policy.observe(changes, self.store.state, self._analysis())
        self.note_wall()
        self._after(actions, last)

    def _tick(self) -> None:
        self._timer = None
        last = self._last_id()
        actions = self.policy.tick(self.store.state, self._analysis())
        self.note_wall()
        self._after(actions, last)

    def _last_id(self) -> tuple[int, dict[int, float | None]]:
        tail = self.log.entries[-3:]
        return (self.log.entries[-1].id if self.log.entries else 0), {e.id: e.trigger_time for e in tail}

    def _after(self, actions: list, last: tuple[int, dict[int, float | None]]) -> None:
        # the loss first: an entry completed by this decision (a daemon move seen before the link
        # event) is told after the link loss that explains it
        for a in actions:
            if isinstance(a, (SwitchTo, NoUsableInterface)) and a.previous is not None \
                    and a.reason not in NOT_A_LOSS:
                self._emit(LinkLost(a.previous, a.reason, a.trigger_time))
        last_id, triggers = last
        for e in self.log.entries:  # recorded by this decision, or dated by it (a daemon move seen first)
            if e.id > last_id or (e.id in triggers and triggers[e.id] != e.trigger_time):
                self._entry(e)
        for a in actions:
            if isinstance(a, SwitchTo):
                self._hurry()
                self._rebind(a)
            elif isinstance(a, NoUsableInterface):
                why = (_("the preferences leave no usable interface (every usable one is marked never, or not "
                         "listed)") if a.reason == "preferences" else
                       _("{interface} was renamed: the failover order names it no more, and no other listed "
                         "interface is usable").format(interface=a.previous) if a.reason == "renamed" else
                       _("no usable interface: every listed link is down, has no care-of address or no default "
                         "router"))
                self._emit(FailoverFailed(a.previous, why, a.trigger_time))
                self._hurry()
            elif isinstance(a, SteeringFallback):
                self._steer(a)
            elif isinstance(a, StayPending):
                pass  # shown by the window from policy.pending
        if actions:
            self._emit(Decided(tuple(actions)))
        self._arm_timer()

    def _arm_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        d = self.policy.next_deadline
        if d is not None and self.started:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_at(loop.time() + max(0.0, d - self.clock()) + 0.001, self._tick)

    def _on_daemon(self, ev) -> None:
        if isinstance(ev, DaemonMoved):
            self._entry(self.log.record_move(ev.hoa, ev.from_interface, ev.to_interface, ev.reason,
                                             ev.first_bu_at, ev.bu_at, ev.ack_at, self.clock()))
        elif isinstance(ev, BindingsChanged):
            if getattr(self.daemon, "reports_moves", False):
                return  # its DaemonMoved events say what moved, why and when
            for e in self.log.observe_bindings(ev.bindings, self.clock()):
                self._entry(e)
        elif isinstance(ev, StatusChanged):
            up = ev.status.reachable
            if self._daemon_up and not up:
                self._lost_at = self.clock()
                self._emit(DaemonLost(ev.status.error or f"{ev.status.name} is {ev.status.state}", self.clock()))
            elif up and not self._daemon_up and getattr(self, "_lost_at", None) is not None:
                self._emit(DaemonBack(self.clock() - self._lost_at, self.clock()))
                self._lost_at = None
            self._daemon_up = up

    # ------------------------------------------------------------------ actions
    def _hurry(self) -> None:
        if self.daemon is not None:
            self.daemon.hurry(self.hurry_for)

    def _rebind(self, a: SwitchTo) -> None:
        # neither daemon is raced: UMIP moves by MnIfPreference, the engine by each HoA's own list and its
        # probes; their moves are measured from their bindings
        if self.daemon is not None and self.daemon.capabilities.runtime_rebind:
            log.debug("the app's choice is %s; the mobility daemon chooses for itself", a.interface)

    def _steer(self, a: SteeringFallback) -> None:
        if self.steering is None:
            return
        self._steer_want = a.as_dict()
        entries = [e for e in self.log.entries if e.who == "app" and e.to_interface is not None]
        self._steer_entry = entries[-1] if entries and entries[-1].decision_time == a.decision_time else None
        if self._steer_task is None or self._steer_task.done():
            self._steer_task = asyncio.get_running_loop().create_task(self._send_steering())

    async def _send_steering(self) -> None:
        while self._steer_want is not None:
            want, self._steer_want = self._steer_want, None
            entry = self._steer_entry
            if want == self._steer_sent:
                continue
            try:
                moved = await self.steering(want)  # type: ignore[misc]
            except Exception as e:
                self._steer_sent = None  # the helper may have applied it anyway: send the next map
                msg = _("steering rules not moved: {why}").format(why=e)
                log.warning("%s", msg)
                self._emit(FailoverFailed(next(iter(want), None), msg, self.clock()))
                continue
            self._steer_sent = want
            self.steered = dict(want) if moved else {}
            if moved and entry is not None:  # rules moved away, or came back
                self._steered_for.add(entry.id)
                self._entry(entry)  # logged now that it moved something
            if moved and entry is not None and want and entry.trigger_time is not None:
                took = self.clock() - entry.trigger_time
                if not self._daemon_moves():
                    self._emit(FailoverDone(entry, took, "steering"))

    def _daemon_moves(self) -> bool:
        """A daemon is connected with home registrations: its acknowledgement ends the failover."""
        if self.daemon is None or not self.daemon.status.reachable:
            return False
        return any(b.source == "bul" and b.home_registration for b in self.daemon.bindings())

    # ------------------------------------------------------------------ events
    def entries(self) -> list[FailoverEntry]:
        """The log as shown and journalled: without the app's decisions that moved nothing."""
        return [e for e in self.log.entries if e.id not in self._unlogged]

    def _moved_nothing(self, e: FailoverEntry) -> bool:
        """``e`` is the app's decision and nothing followed it: no home address moved with it (the daemon's
        move joins it), no steering rule moved (none exist, or no helper); an outage (nothing usable) is
        logged unless the daemon reports its own moves."""
        if e.who != "app" or e.hoas or e.id in self._steered_for:
            return False
        return e.to_interface is not None or getattr(self.daemon, "reports_moves", False)

    def _entry(self, e: FailoverEntry) -> None:
        self.note_wall()
        if self._moved_nothing(e):
            self._unlogged.add(e.id)
            return
        self._unlogged.discard(e.id)
        if self.journal is not None:
            self.journal.append(e.to_json(), wall_of=self.walls.wall_of)
        self._emit(EntryChanged(e))
        if e.who in ("user", "system"):
            return  # the user's own move (its result is told where it was asked), or a flag: no failover
        if e.ack_time is not None:
            h = self._acks.pop(e.id, None)
            if h is not None:
                h.cancel()
            if e.reason in USER_REASONS:  # the user's own move: logged, not announced as a failover
                self._done.add(e.id)
            elif e.trigger_time is not None and e.bu_time is not None and e.id not in self._done:
                self._done.add(e.id)
                if e.trigger_time <= e.decision_time:
                    self._emit(FailoverDone(e, e.ack_time - e.trigger_time, "daemon"))
                else:  # the daemon's move was seen first: no start to time it from
                    self._emit(FailoverDone(e, None, "daemon", late=e.trigger_time - e.decision_time))
        elif e.bu_time is not None and e.id not in self._acks and self.started:
            loop = asyncio.get_running_loop()
            self._acks[e.id] = loop.call_later(ACK_TIMEOUT, self._ack_timeout, e)

    def _ack_timeout(self, e: FailoverEntry) -> None:
        self._acks.pop(e.id, None)
        if e.ack_time is None:
            self._emit(FailoverFailed(e.to_interface, _("the move to {interface} was not acknowledged within {s} s")
                                      .format(interface=e.to_interface, s=f"{ACK_TIMEOUT:g}"), self.clock()))

    def _emit(self, ev: FailoverEvent) -> None:
        self.note_wall()
        for cb in list(self._listeners):
            try:
                cb(ev)
            except Exception:
                log.exception("failover listener failed")
