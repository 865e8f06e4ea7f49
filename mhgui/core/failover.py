"""Failover policy: which interface carries the node, and when to change it. Pure: no Qt, no I/O.

The policy is fed what the :class:`~mhgui.core.state.StateStore` publishes (its
:class:`~mhgui.core.state.Change` lists, the :class:`~mhgui.core.model.NodeState`
and :func:`~mhgui.core.analysis.analyse` of it) and returns *actions*; time comes
from an injected clock (a zero-argument callable returning seconds on the same
monotonic clock as the model). Whoever carries an action out (steering rules, a
daemon that rebinds at run time) is not this module's business.

Preferences
-----------

One user-ordered list of interface names (best first), each optionally marked
*backup only* (used only when no primary is usable) or *never* (never used).
An interface that is not in the list is never chosen: the user places new
interfaces first. For UMIP the list becomes ``MnIfPreference`` values
(:func:`mnifpreference_values`), written through the helper only when the user
changes the list (mainline UMIP reads them at start and switches by itself;
its own switch back is immediate, there is no hold-up to configure).

Usable interface
----------------

:func:`usable_interfaces`: the interface is counted active by the counting
rules (up with carrier, not a tunnel or loopback, holds a usable CoA, so the
CoA is valid, preferred, not tentative and not DAD-failed), is not on a home
link, has an IPv6 default router (``require_router``; UMIP needs one too), and
NetworkManager, when it manages the device, does not say it is unavailable,
deactivating or failed (:data:`NM_DOWN_STATES`): NetworkManager
is a second opinion that can only take an interface away, never give one,
because it reports carrier loss only after its carrier-wait timeout (about
6 s) while netlink tells at once.

Decisions (:meth:`FailoverPolicy.observe`)
-----------------------------------------

- **Trigger** (the current interface stops being usable): the best usable
  interface by preference (primaries in order, then backups in order) is
  chosen at once: :class:`SwitchTo`; none: :class:`NoUsableInterface` (once,
  until something is usable again, which is then chosen at once).
- **Going back** to a better interface waits until it has been usable without
  interruption for ``holdup`` seconds: :class:`StayPending` says until when (it
  is emitted once per wait); a link that goes down during the wait starts it
  again, so a flapping link causes one switch away and, once it is stable, one
  switch back, never a storm.
- **Address churn is not link loss**: when an interface loses its CoA only
  because the address was *removed* (the link still up with carrier and its
  router, as in a DHCPv6 renewal that deletes and re-adds the address), it
  stays usable for ``churn_window`` seconds; back within the window, nothing
  happens; still gone at the end, it is a trigger dated from the removal. A
  CoA that is still there but deprecated, expired or DAD-failed is a trigger
  at once. Temporary addresses are never CoAs, so their rotation changes
  nothing; a new address counts only once DAD has finished (the analysis
  does not count tentative addresses).
- **Steering fallback** (:class:`SteeringFallback`): a steering rule names
  one interface; while that interface is not usable, the rule leaves through
  the policy's current interface instead, at once; once the interface is
  usable again, the rule goes back to it only after ``holdup`` seconds of
  uninterrupted use (the same hold-up as above, so a flapping link moves the
  rules once away and once back). Only interfaces in the preference list,
  or that were usable once, fall back. The action carries the whole map
  ``{interface: substitute}`` and is emitted whenever the map changes; an
  empty map means every rule uses its own interface.
- The caller asks again (:meth:`FailoverPolicy.tick`) at
  :attr:`FailoverPolicy.next_deadline`: the end of a hold-up or churn window,
  or the next end of a CoA's preferred or valid lifetime (lifetimes end
  without any netlink event).

Every decision is recorded in :attr:`FailoverPolicy.log`, a :class:`FailoverLog`
that also records the daemon's own moves, from its binding update list, with
their timings: link event, decision (or first sign of the daemon moving), new
Binding Update seen, acknowledged. Each entry names its actor (:data:`ACTORS`):
the **user** (a rebind, new preferences: timed from the request), mhgui's own
**app** policy, the **daemon** moving by itself, or the **system** (an interface
renamed, a name taken by another NIC).

Renamed interfaces
------------------

The preferences name interfaces, as mip6d.conf and the engine's mn.toml do; what the
policy remembers of an interface (usable since, lost, its CoAs) follows the NIC, by
ifindex (:class:`~mhgui.core.renames.NameTracker`). When the current interface's NIC is
renamed, the node leaves it (reason ``renamed``: its name is not the one listed any more);
when another NIC takes a listed name, choosing it is ``name-reused``, never ``recovered`` or
``preferred-back``; both are flagged in the log by a ``system`` entry.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable, Iterable, Union

from ..i18n import _
from .analysis import ROLE_COA, Analysis
from .bindings import Binding, BindingState
from .model import InterfaceKind, NodeState
from .renames import NameTaken, NameTracker, Renamed, describe_move
from .state import Change

__all__ = [
    "ACTORS",
    "Action",
    "ENGINE_REASONS",
    "USER_REASONS",
    "FailoverEntry",
    "FailoverLog",
    "FailoverPolicy",
    "MAX_MNIF_PREFERENCE",
    "NM_DOWN_STATES",
    "NoUsableInterface",
    "Preferences",
    "StayPending",
    "SteeringFallback",
    "SwitchTo",
    "mnifpreference_values",
    "usable_interfaces",
]

#: seconds: a link event older than this does not explain a daemon move seen now
TRIGGER_WINDOW = 30.0

#: seconds: a daemon move seen this long before the app's own decision for the same move is the same failover
JOIN_WINDOW = 2.0

#: who made a move: the user (a rebind, new preferences), mhgui's own policy, the mobility daemon by itself,
#: or the system (a NIC renamed, a name taken by another NIC: flags, not moves)
ACTORS = ("user", "app", "daemon", "system")

#: UMIP's largest (worst) usable MnIfPreference (``POL_MN_IF_MIN_PREFERENCE``); 0 = never used.
MAX_MNIF_PREFERENCE = 10

#: NMDeviceState values in which NetworkManager says the device carries nothing:
#: 20 unavailable (no carrier), 110 deactivating, 120 failed. Not 30 (disconnected): a device
#: configured by hand (or by another tool) stays "disconnected" for NetworkManager while the
#: kernel shows carrier, a usable CoA and a router; it is NetworkManager's bookkeeping, not the link.
NM_DOWN_STATES = frozenset({20, 110, 120})

#: kinds of interface that never carry a steering rule's traffic by themselves
_NOT_ACCESS = frozenset({InterfaceKind.LOOPBACK, InterfaceKind.TUNNEL, InterfaceKind.VIRTUAL})

_IFNAME = re.compile(r'^[^\s/:"#]{1,15}$')  # IFNAMSIZ - 1; no whitespace, '/', ':'; no '"' or '#' (mip6d.conf)


def valid_interface_name(name: object) -> bool:
    """A name the kernel takes (at most 15 bytes, no whitespace, '/' or ':') that mip6d.conf can quote."""
    return (isinstance(name, str) and bool(_IFNAME.match(name)) and len(name.encode("utf-8", "surrogatepass")) <= 15
            and name not in (".", "..") and name.isprintable())


# --------------------------------------------------------------------------- preferences
@dataclass(frozen=True, slots=True)
class Preferences:
    """The user's interface preferences and the policy's timings.

    ``order``: interface names, best first; ``backup``: names in ``order`` used
    only when no primary is usable; ``never``: names in ``order`` never used.
    ``holdup``: seconds a better interface must stay usable before going back
    to it; ``churn_window``: seconds a removed CoA may take to come back before
    its loss counts; ``require_router``: an interface without an IPv6 default
    router is not usable. Raises ``ValueError`` on a bad value.
    """

    order: tuple[str, ...]
    backup: frozenset[str] = frozenset()
    never: frozenset[str] = frozenset()
    holdup: float = 5.0
    churn_window: float = 2.0
    require_router: bool = True

    def __post_init__(self) -> None:
        for name in ("order", "backup", "never"):
            if isinstance(getattr(self, name), str):
                raise ValueError(f"{name} must be a list of interface names, not a string")
        order_t = tuple(self.order)
        object.__setattr__(self, "order", order_t)
        object.__setattr__(self, "backup", frozenset(self.backup))
        object.__setattr__(self, "never", frozenset(self.never))
        holdup, churn_window = self.holdup, self.churn_window
        for n in order_t:
            if not valid_interface_name(n):
                raise ValueError(f"not an interface name: {n!r}")
        if len(set(order_t)) != len(order_t):
            dup = sorted({n for n in order_t if order_t.count(n) > 1})
            raise ValueError(f"interface listed twice: {', '.join(dup)}")
        for name, marks in (("backup", self.backup), ("never", self.never)):
            missing = sorted(marks - set(order_t))
            if missing:
                raise ValueError(f"{name} names interfaces that are not in the list: {', '.join(missing)}")
        both = sorted(self.backup & self.never)
        if both:
            raise ValueError(f"marked both 'backup only' and 'never': {', '.join(both)}")
        for name, v in (("holdup", holdup), ("churn_window", churn_window)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < float("inf"):
                raise ValueError(f"{name} must be a finite number of seconds >= 0, not {v!r}")

    @property
    def primaries(self) -> tuple[str, ...]:
        return tuple(n for n in self.order if n not in self.backup and n not in self.never)

    @property
    def backups(self) -> tuple[str, ...]:
        return tuple(n for n in self.order if n in self.backup)

    @property
    def ranking(self) -> tuple[str, ...]:
        """Every name the policy may choose, best first: primaries in order, then backups in order."""
        return self.primaries + self.backups


def mnifpreference_values(prefs: Preferences) -> dict[str, int]:
    """UMIP ``MnIfPreference`` for every listed interface (1 best, 0 never used).

    Primaries get 1, 2, ... in order, then backups the next values, so every
    backup comes after every primary; ``never`` gets 0. Values stop at
    :data:`MAX_MNIF_PREFERENCE` (10): the last interfaces then tie. To keep
    backups after every primary, when there are backups the primaries stop at
    9 and the backups that do not fit below 10 share 10.
    E.g. ``order=[eth0, wlan0, wwan0], backup={eth0}, never={wlan0}`` gives
    ``{wwan0: 1, eth0: 2, wlan0: 0}``.
    """
    out: dict[str, int] = {}
    primary_cap = MAX_MNIF_PREFERENCE - 1 if prefs.backups else MAX_MNIF_PREFERENCE
    for i, n in enumerate(prefs.primaries):
        out[n] = min(i + 1, primary_cap)
    first_backup = min(len(prefs.primaries), primary_cap) + 1
    for i, n in enumerate(prefs.backups):
        out[n] = min(first_backup + i, MAX_MNIF_PREFERENCE)
    for n in prefs.never:
        out[n] = 0
    return {n: out[n] for n in prefs.order}


# --------------------------------------------------------------------------- usability
def _nm_down(iface) -> bool:
    return iface.nm_managed is not False and iface.nm_state in NM_DOWN_STATES


def usable_interfaces(state: NodeState, analysis: Analysis, *, require_router: bool = True) -> set[str]:
    """Names of the interfaces a failover may choose (module docstring, "Usable interface")."""
    out = set()
    for i in analysis.active - analysis.home_links:
        iface = state.interfaces.get(i)
        if iface is None or _nm_down(iface):
            continue
        if require_router and not state.routers.get(i):
            # the router check is about IPv6 default routers: an uplink that is active by an IPv4 care-of
            # address alone (an engine that takes them, RFC 5555) needs none (its counted addresses only:
            # every IPv6 CoA is counted)
            if any(":" in k.address and analysis.roles[k].role == ROLE_COA for k in analysis.coa_keys.get(i, ())):
                continue
        out.add(iface.name)
    return out


def _why_unusable(name: str, state: NodeState, analysis: Analysis, prefs: Preferences) -> str:
    """One word for why ``name`` is not usable (the trigger's reason)."""
    if name in prefs.never or name not in prefs.order:
        return "preferences"
    iface = next((i for i in state.interfaces.values() if i.name == name), None)
    if iface is None:
        return "link-removed"
    if not iface.up:
        return "link-down"
    if _nm_down(iface):
        return "networkmanager"
    if iface.ifindex in analysis.home_links:
        return "home-link"
    if iface.ifindex not in analysis.active:
        return "coa-lost"
    return "router-gone"


# --------------------------------------------------------------------------- actions
@dataclass(frozen=True, slots=True)
class SwitchTo:
    """Use ``interface`` from now on. ``previous``: the interface left (None at start or after none).

    ``reason``: initial | recovered | preferred-back | link-down | link-removed |
    networkmanager | coa-lost | coa-removed | router-gone | home-link | preferences.
    ``trigger_time``: when the cause was seen; ``decision_time``: when decided.
    """

    interface: str
    previous: str | None
    reason: str
    trigger_time: float
    decision_time: float


@dataclass(frozen=True, slots=True)
class StayPending:
    """``interface`` is better than the current one; going back waits for the hold-up, until ``until``."""

    interface: str
    current: str
    until: float
    reason: str = "hold-up"


@dataclass(frozen=True, slots=True)
class NoUsableInterface:
    """No listed interface is usable (all links lost). ``previous``: the interface lost."""

    previous: str | None
    reason: str
    trigger_time: float


@dataclass(frozen=True, slots=True)
class SteeringFallback:
    """Steering rules of each ``interface`` in ``fallback`` leave through its substitute for now.

    ``fallback``: sorted ``(interface, substitute)`` pairs; empty: every rule
    uses its own interface again. ``decision_time``: model clock, seconds.
    """

    fallback: tuple[tuple[str, str], ...]
    decision_time: float

    def as_dict(self) -> dict[str, str]:
        return dict(self.fallback)


Action = Union[SwitchTo, StayPending, NoUsableInterface, SteeringFallback]


# --------------------------------------------------------------------------- log
#: the engine's reasons for a move (mhgui.engine.mn) in this log's words; "user rebind" and "preferences"
#: are the user's own moves, not failovers
ENGINE_REASONS = {
    "rebind requested": "user rebind",
    "preferences changed": "preferences",
    "home agent unreachable": "probes: home agent unreachable",
    "link or address change": "link or address change",
    "care-of address changed": "coa-changed",
    "home agent restarted": "home agent restarted",
    "resumed": "resumed",
}
USER_REASONS = frozenset({"user rebind", "preferences"})
#: reasons of the system's entries: flags about interface names, not moves
NAME_REASONS = frozenset({"renamed", "name-reused"})


@dataclass(slots=True)
class FailoverEntry:
    """One failover and its timings (seconds on the model clock; None = not seen yet).

    ``who`` (:data:`ACTORS`): "user" (the user's rebind or new preferences: ``trigger_time`` is the
    request), "app" (this policy decided), "daemon" (the mobility daemon moved by itself, seen in its
    binding update list) or "system" (an interface renamed or its name taken: ``reason`` ``renamed`` /
    ``name-reused``, ``note`` says what it means for the configuration). ``trigger_time``: the link
    event or the request; ``decision_time``: the decision, or the first sign of the daemon moving;
    ``bu_time``: a Binding Update through the new interface seen; ``ack_time``: acknowledged (home
    registration accepted) for every HoA moved. ``note``: a sentence for the user, or "".
    """

    id: int
    who: str
    from_interface: str | None
    to_interface: str | None
    reason: str
    trigger_time: float | None
    decision_time: float
    bu_time: float | None = None
    ack_time: float | None = None
    hoas: tuple[str, ...] = ()
    note: str = ""
    _unacked: set[str] = field(default_factory=set, repr=False, compare=False)

    @property
    def by(self) -> str:
        """``user``, ``mhgui``, ``mhgui+daemon`` (the app decided, and the daemon moved the same way),
        ``daemon`` or ``system``."""
        if self.who == "app":
            return "mhgui+daemon" if self.bu_time is not None else "mhgui"
        return self.who

    def to_json(self) -> dict:
        """Times, and durations since the trigger (``after_trigger``, seconds, 3 decimals)."""
        def after(t: float | None) -> float | None:
            if t is None or self.trigger_time is None:
                return None
            return round(t - self.trigger_time, 3)

        return {
            "id": self.id, "who": self.who, "by": self.by, "from": self.from_interface, "to": self.to_interface,
            "reason": self.reason, "hoas": list(self.hoas), "note": self.note,
            "trigger_time": self.trigger_time, "decision_time": self.decision_time,
            "bu_time": self.bu_time, "ack_time": self.ack_time,
            "after_trigger": {"decision": after(self.decision_time), "bu": after(self.bu_time),
                              "ack": after(self.ack_time)},
        }


@dataclass
class FailoverLog:
    """Every failover, whoever made it, with its timings (:class:`FailoverEntry`).

    :meth:`record` adds the app's decisions (the policy calls it);
    :meth:`note_trigger` remembers link events so that a move the daemon makes
    by itself is dated from its cause; :meth:`observe_bindings` follows the
    daemon's home registrations (binding update list) and fills ``bu_time`` /
    ``ack_time``, or records a daemon entry when no decision of the app explains
    the move. ``limit``: entries kept (oldest dropped).
    """

    limit: int = 200
    entries: list[FailoverEntry] = field(default_factory=list)
    _next_id: int = 1
    #: interface -> (time, reason) of its last trigger
    _triggers: dict[str, tuple[float, str]] = field(default_factory=dict)
    #: hoa -> (coa, interface) last seen in the binding update list
    _bound: dict[str, tuple[str, str | None]] = field(default_factory=dict)

    def record(self, who: str, from_interface: str | None, to_interface: str | None, reason: str,
               trigger_time: float | None, decision_time: float) -> FailoverEntry:
        if who not in ACTORS:
            raise ValueError(f"who must be one of {', '.join(ACTORS)}, not {who!r}")
        if who == "user" and to_interface is not None:
            # the user's request is already logged (user_action): the policy following it, or the daemon's
            # move it asked for, is the same entry, timed from the request
            e = self._open_user(to_interface, decision_time, done_too=True)
            if e is not None:
                return e
        if who == "app" and to_interface is not None:
            # the daemon's move was seen before the link event reached the app (its binding update
            # list polled first): one failover, dated from the app's trigger; its BU/ack times then
            # come out before the trigger (negative durations), which is what was observed
            for e in reversed(self.entries[-3:]):
                if (e.who == "daemon" and e.trigger_time is None and e.from_interface == from_interface
                        and e.to_interface == to_interface and 0 <= decision_time - e.decision_time <= JOIN_WINDOW):
                    e.trigger_time, e.reason = trigger_time, reason
                    return e
        e = FailoverEntry(self._next_id, who, from_interface, to_interface, reason, trigger_time, decision_time)
        self._next_id += 1
        self.entries.append(e)
        del self.entries[:-self.limit]
        return e

    def note_trigger(self, interface: str, reason: str, at: float) -> None:
        self._triggers[interface] = (at, reason)

    def _open_user(self, to_interface: str | None, now: float, hoa: str | None = None,
                   done_too: bool = False) -> FailoverEntry | None:
        """The user's latest request still waiting for its move to ``to_interface`` (or for ``hoa``'s),
        made within :data:`TRIGGER_WINDOW` seconds of ``now``; ``done_too``: or already acknowledged (the
        policy following the same request)."""
        for e in reversed(self.entries):
            if e.who != "user" or (e.ack_time is not None and not done_too) or e.reason not in USER_REASONS:
                continue
            if e.trigger_time is not None and not 0 <= now - e.trigger_time <= TRIGGER_WINDOW:
                continue
            if (to_interface is not None and e.to_interface == to_interface) or (
                    hoa is not None and hoa in e.hoas and e.to_interface in (None, to_interface)):
                return e
        return None

    def user_action(self, reason: str, to_interface: str | None, hoas: Iterable[str], requested_at: float,
                    decided_at: float | None = None, from_interface: str | None = None) -> FailoverEntry:
        """The user asked for a move (``reason``: "user rebind" or "preferences"): an entry by "user", timed
        from ``requested_at`` (the request; seconds on the model clock); ``decided_at``: when it was sent to
        the daemon (default: the request). The move that follows (the daemon's Binding Update through
        ``to_interface``, its acknowledgement, or the policy's switch) fills this entry's times."""
        if reason not in USER_REASONS:
            raise ValueError(f"a user's action is one of {', '.join(sorted(USER_REASONS))}, not {reason!r}")
        e = FailoverEntry(self._next_id, "user", from_interface, to_interface, reason, requested_at,
                          requested_at if decided_at is None else decided_at, hoas=tuple(hoas))
        self._next_id += 1
        self.entries.append(e)
        del self.entries[:-self.limit]
        return e

    def user_failed(self, e: FailoverEntry, why: str) -> FailoverEntry:
        """The user's request ``e`` did not happen (refused, failed, rolled back): said in its entry."""
        if not e.reason.endswith(" failed"):
            e.reason = f"{e.reason} failed"
        e.note = why
        return e

    def note_names(self, reason: str, from_interface: str | None, to_interface: str | None, note: str,
                   at: float) -> FailoverEntry:
        """A flag by the system: an interface renamed (``renamed``) or a name taken by another NIC
        (``name-reused``); ``note`` says what it means for the configuration that names it."""
        e = self.record("system", from_interface, to_interface, reason, at, at)
        e.note = note
        return e

    def record_move(self, hoa: str, from_interface: str | None, to_interface: str, reason: str,
                    first_bu_at: float | None, bu_at: float | None, ack_at: float | None,
                    now: float) -> FailoverEntry:
        """A move the daemon reported itself, with its reason and times (mhgui's engine; seconds on the same
        monotonic clock): trigger = decision = its first BU (the engine sends it in the step that saw the
        cause), then the BU acknowledged and the acknowledgement. ``reason`` is translated into this log's
        words (:data:`ENGINE_REASONS`)."""
        words = ENGINE_REASONS.get(reason)
        if words is None:
            words = "recovered" if reason.startswith("home agent reachable") else reason
        start = first_bu_at if first_bu_at is not None else (bu_at if bu_at is not None else now)
        if words in USER_REASONS:
            # the user's own move: the entry made at the request, timed from it, when there is one
            e = self._open_user(to_interface, now, hoa)
            if e is None:
                e = FailoverEntry(self._next_id, "user", from_interface, to_interface, words, start, start)
                self._next_id += 1
                self.entries.append(e)
                del self.entries[:-self.limit]
            if e.from_interface is None:
                e.from_interface = from_interface
            e.to_interface = to_interface
            if hoa not in e.hoas:
                e.hoas += (hoa,)
            e.bu_time = bu_at if bu_at is not None else start
            if ack_at is not None:
                e.ack_time = ack_at if e.ack_time is None else max(e.ack_time, ack_at)
            return e
        e = self.record("daemon", from_interface, to_interface, words, start, start)
        e.hoas = (hoa,)
        e.bu_time = bu_at if bu_at is not None else start
        e.ack_time = ack_at
        return e

    def observe_bindings(self, bindings: Iterable[Binding], now: float) -> list[FailoverEntry]:
        """Follow the home registrations of a binding update list polled at ``now``; returns entries changed.

        The first poll only sets the baseline. A HoA whose CoA changes is a
        move: the open app entry (no ``bu_time`` yet) for the same target
        interface gets ``bu_time``; without one, a daemon entry is recorded
        (decision = first sign = now, trigger = the last trigger noted on the
        interface it left). An entry is acknowledged when every HoA it moved
        is REGISTERED.
        """
        changed: dict[int, FailoverEntry] = {}
        homes = [b for b in bindings if b.source == "bul" and b.home_registration and b.coa != b.hoa]
        for b in _primary_paths(homes):
            old = self._bound.get(b.hoa)
            self._bound[b.hoa] = (b.coa, b.interface)
            if old is not None and old[0] != b.coa:
                e = self._entry_for_move(b, old[1], now)
                if b.hoa not in e.hoas:
                    e.hoas += (b.hoa,)
                e._unacked.add(b.hoa)
                changed[e.id] = e
        for b in homes:  # acknowledged once every HoA moved is registered
            if b.state is BindingState.REGISTERED:
                for e in self.entries:
                    if b.hoa in e._unacked:
                        e._unacked.discard(b.hoa)
                        if not e._unacked and e.ack_time is None:
                            e.ack_time = now
                            changed[e.id] = e
        return list(changed.values())

    def _entry_for_move(self, b: Binding, left: str | None, now: float) -> FailoverEntry:
        e = self._open_user(b.interface, now, b.hoa)  # the move the user asked for (every HoA it moves)
        if e is not None:
            if e.bu_time is None:
                e.bu_time = now
            if e.from_interface is None:
                e.from_interface = left
            if e.to_interface is None:
                e.to_interface = b.interface
            return e
        for e in reversed(self.entries):
            if e.to_interface is not None and e.to_interface == b.interface and (e.bu_time is None or e.bu_time == now) \
                    and now - e.decision_time <= TRIGGER_WINDOW:  # an old open decision explains nothing now
                if e.bu_time is None:
                    e.bu_time = now
                return e
        trig = None
        for name in (left, b.interface):  # the link lost, or the better one back
            t = self._triggers.get(name) if name else None
            if t is not None and 0 <= now - t[0] <= TRIGGER_WINDOW and (trig is None or t[0] > trig[0]):
                trig = t
        e = self.record("daemon", left, b.interface, trig[1] if trig else "daemon",
                        trig[0] if trig else None, now)
        e.bu_time = now
        return e

    def to_json(self) -> list[dict]:
        """Entries, oldest first, for ``mhctl log --json``."""
        return [e.to_json() for e in self.entries]


def _primary_paths(homes: list[Binding]) -> list[Binding]:
    """One registration per HoA: with several care-of addresses (RFC 5648) a HoA has one binding per BID,
    and the one it follows is its primary path, the lowest BID-PRI (RFC 6089's field of the BID option: a
    lower value is preferred, 1 = the HoA's default in mhgui/engine/mn_flows.py; list order among equals).
    Another BID of the same HoA is not a move."""
    best: dict[str, tuple[tuple[int, int], Binding]] = {}
    for i, b in enumerate(homes):
        rank = (b.bid_priority if isinstance(b.bid_priority, int) else 256, i)
        if b.hoa not in best or rank < best[b.hoa][0]:
            best[b.hoa] = (rank, b)
    return [b for _, b in best.values()]


# --------------------------------------------------------------------------- policy
Clock = Callable[[], float]


class FailoverPolicy:
    """The failover decisions (module docstring). ``clock()``: seconds on the model's monotonic clock."""

    def __init__(self, prefs: Preferences, clock: Clock, log: FailoverLog | None = None) -> None:
        self.prefs = prefs
        self.clock = clock
        self.log = log if log is not None else FailoverLog()
        self.current: str | None = None
        #: the hold-up wait in progress: (better interface, until), or None
        self.pending: tuple[str, float] | None = None
        #: when to call :meth:`tick` at the latest, or None
        self.next_deadline: float | None = None
        self._started = False
        self._none_reported = False
        self._since: dict[str, float] = {}  # name -> usable without interruption since
        self._soft: dict[str, float] = {}  # name -> CoA removed at (link still fine), within churn_window
        self._coas: dict[str, frozenset] = {}  # name -> address keys counted as CoAs at the last observe
        self._lost: set[str] = set()  # names that stopped being usable and are not steered to again yet
        self._known: set[str] = set()  # every interface name seen
        self._ever_usable: set[str] = set()  # names usable at some point
        self._prefs_changed = False  # set_preferences since the last decision
        self._prefs_at: float | None = None  # when the user set them (the request), model clock
        self._prefs_by = "user"  # who set the preferences last: "user", or "app" (derived again)
        #: which NIC each name designates (made from the state at the first observe)
        self.names: NameTracker | None = None
        self._current_ifindex: int | None = None  # the NIC chosen as current, by ifindex
        #: names that a daemon's configuration uses, ``{name: where}`` (e.g. "mip6d.conf"): flagged when
        #: they stop designating the NIC they did; the preference order's names always are
        self.config_names: dict[str, str] = {}
        #: the steering fallback last emitted ({interface: substitute})
        self.fallback: dict[str, str] = {}

    def failed_over(self) -> bool:
        """The node runs on a worse interface than one it used before and lost (or waits for its hold-up)."""
        cur = self.current
        if cur is None:
            return False
        if self.pending is not None or cur in self.prefs.backup:
            return True
        ranking = self.prefs.ranking
        if cur not in ranking:
            return False
        better = ranking[:ranking.index(cur)]
        return any(n in self._lost and n in self._ever_usable for n in better)

    def set_preferences(self, prefs: Preferences, at: float | None = None, *, by_user: bool = True) -> None:
        """New preferences; they apply at the next :meth:`observe` / :meth:`tick`: a better interface by the
        new order is chosen at once (no hold-up: the user asked), reason ``preferences``, logged as the
        user's (``by_user``; False: the app's, e.g. an order derived again as interfaces come and go), timed
        from ``at`` (the request; default now)."""
        if prefs != self.prefs:
            self._prefs_changed = True
            self._prefs_at = self.clock() if at is None else at
            self._prefs_by = "user" if by_user else "app"
        self.prefs = prefs

    def name_problems(self) -> list[str]:
        """Sentences for the names of the preferences and of :attr:`config_names` that no longer designate
        the NIC they designated (:meth:`~mhgui.core.renames.NameTracker.config_problems`)."""
        if self.names is None:
            return []
        return self.names.config_problems(self._named())

    def _named(self) -> dict[str, str]:
        order = _("the failover order")
        out = {n: order for n in self.prefs.order}
        for n, where in self.config_names.items():
            out[n] = where if n not in out else _("{where} (and the failover order)").format(where=where)
        return out

    def _follow_names(self, changes: list[Change], state: NodeState, now: float) -> None:
        """Renames: what the policy remembers of a NIC follows it to its new name; flags in the log."""
        if self.names is None:
            self.names = NameTracker(state.interfaces)
        named = self._named()
        for ev in self.names.observe(changes):
            if isinstance(ev, Renamed):
                for d in (self._since, self._soft, self._coas):
                    if ev.old in d:
                        d[ev.new] = d.pop(ev.old)
                for st in (self._lost, self._known, self._ever_usable):
                    if ev.old in st:
                        st.discard(ev.old)
                        st.add(ev.new)
                if ev.old in named or ev.new in named or ev.old == self.current:
                    where = named.get(ev.old)
                    note = (_("the NIC {old} (ifindex {ifindex}) is now called {new}").format(
                                old=ev.old, ifindex=ev.ifindex, new=ev.new)
                            + (_(": {where} names {old}, which no longer designates it").format(where=where, old=ev.old)
                               if where else ""))
                    self.log.note_names("renamed", ev.old, ev.new, note + ".", now)
            elif isinstance(ev, NameTaken) and ev.name in named:
                m = self.names.moved(ev.name)
                if m is not None:
                    self.log.note_names("name-reused", ev.previous_now, ev.name, describe_move(m, named[ev.name]), now)

    def _name_reused(self, name: str) -> bool:
        """``name`` designates another NIC than the one it designated first."""
        m = self.names.moved(name) if self.names is not None else None
        return m is not None and m.holder is not None

    def tick(self, state: NodeState, analysis: Analysis) -> list[Action]:
        """:meth:`observe` without changes: call it at :attr:`next_deadline`."""
        return self.observe([], state, analysis)

    def observe(self, changes: Iterable[Change], state: NodeState, analysis: Analysis) -> list[Action]:
        """Take one batch of store changes with the state and analysis after them; returns the actions."""
        now = self.clock()
        changes = list(changes)
        self._follow_names(changes, state, now)
        prefs = self.prefs
        names = {i.ifindex: i.name for i in state.interfaces.values()}
        bounced: dict[str, str] = {}  # name -> link-down | link-removed in this batch, even if up again now
        for c in changes:
            if c.kind in ("link-down", "link-removed"):
                bounced[getattr(c.before, "name", None) or names.get(c.ifindex, "")] = c.kind
        coas: dict[str, frozenset] = {}  # the analysis keeps these per interface (issue 14: no scan of every role)
        for i, keys in analysis.coa_keys.items():
            if i in names:
                n = names[i]
                coas[n] = coas[n] | keys if n in coas else keys
        usable = usable_interfaces(state, analysis, require_router=prefs.require_router)

        # which interfaces count as usable, churn taken into account
        effective: set[str] = set()
        churn_lost: dict[str, float] = {}  # name -> when its CoA was removed, the window now over
        for name in set(self._since) | usable:
            if name in usable and name not in bounced:
                self._soft.pop(name, None)
                self._since.setdefault(name, now)
                effective.add(name)
                continue
            if name in usable:  # down and up again within this batch: the wait starts again
                self._soft.pop(name, None)
                self._since[name] = now
                effective.add(name)
                continue
            if name not in bounced and self._address_churn(name, state, analysis):
                start = self._soft.setdefault(name, now)
                if now - start < prefs.churn_window:
                    effective.add(name)
                    continue
                churn_lost[name] = start
            self._since.pop(name, None)
        for name in list(self._soft):
            if name not in self._since:
                self._soft.pop(name)
        self._coas = coas
        for name, kind in bounced.items():
            self.log.note_trigger(name, kind, now)

        actions = self._decide(now, effective, churn_lost, state, analysis)
        self._prefs_changed = False
        for c in changes:  # a link back: a move the daemon makes onto it is dated from here
            if c.kind == "link-up":
                self.log.note_trigger(getattr(c.after, "name", None) or names.get(c.ifindex, ""), "link-up", now)
        access = {i.name for i in state.interfaces.values() if i.kind not in _NOT_ACCESS}
        fb = self._steering(now, effective, access | (set(bounced) & self._known))
        if fb is not None:
            actions.append(fb)
        self._set_deadline(now, state, analysis)
        return actions

    def _steering(self, now: float, effective: set[str], present: set[str]) -> SteeringFallback | None:
        """The steering fallback map after this batch; an action when it changed."""
        self._known |= present
        self._ever_usable |= effective
        for name in self._known:
            if name not in effective:
                if self._started:
                    self._lost.add(name)
            elif name in self._lost and now >= self._since[name] + self.prefs.holdup:
                self._lost.discard(name)  # usable again for the whole hold-up: its rules go back
        cur = self.current
        # interfaces the user listed, or that carried traffic once: not every down port (or home link)
        ranked = set(self.prefs.ranking)
        candidates = {n for n in self._lost if n in ranked or (n in self._ever_usable and n not in self.prefs.never)}
        fallback = {} if cur is None else {n: cur for n in candidates if n != cur}
        if fallback == self.fallback:
            return None
        self.fallback = fallback
        return SteeringFallback(tuple(sorted(fallback.items())), now)

    # ---- internals
    def _address_churn(self, name: str, state: NodeState, analysis: Analysis) -> bool:
        """``name`` lost its CoA only because every CoA address was removed, the link being fine."""
        if name in self._soft:
            pass
        elif name not in self._coas:
            return False
        elif any(k in state.addresses for k in self._coas[name]):
            return False  # still there: deprecated, expired or DAD-failed, a real trigger
        iface = next((i for i in state.interfaces.values() if i.name == name), None)
        if iface is None or not iface.up or _nm_down(iface) or iface.ifindex in analysis.home_links:
            return False
        return not (self.prefs.require_router and not state.routers.get(iface.ifindex))

    def _decide(self, now: float, effective: set[str], churn_lost: dict[str, float], state: NodeState,
                analysis: Analysis) -> list[Action]:
        ranking = [n for n in self.prefs.ranking if n in effective]
        # an interface kept only by the churn grace (its CoA removed a moment ago) may keep the node,
        # but is not moved to while another one is usable for real
        waiting = self.pending[0] if self.pending is not None else None  # a running hold-up is kept too
        firm = [n for n in ranking if n not in self._soft or n == waiting]
        best = firm[0] if firm else (ranking[0] if ranking else None)
        cur = self.current
        # the NIC chosen is not called ``cur`` any more (renamed; another NIC may have taken the name)
        now_called = self.names.name_of(self._current_ifindex) \
            if self.names is not None and self._current_ifindex is not None else None
        renamed = cur is not None and now_called is not None and now_called != cur
        if cur is not None and cur in ranking and not renamed:
            self._none_reported = False
            if best == cur or best is None or ranking.index(best) > ranking.index(cur):
                self.pending = None
                return []
            if self._prefs_changed:
                return [self._switch(best, "preferences", self._prefs_at if self._prefs_at is not None else now,
                                     now)]
            until = self._since[best] + self.prefs.holdup
            if now >= until:
                why = "name-reused" if self._name_reused(best) else "preferred-back"
                return [self._switch(best, why, self._since[best], now)]
            if self.pending != (best, until):
                self.pending = (best, until)
                return [StayPending(best, cur, until)]
            return []
        # no current choice, or the current one is lost: choose at once, among interfaces usable for real
        strict = [n for n in ranking if n not in self._soft]
        best = strict[0] if strict else (ranking[0] if ranking else None)
        self.pending = None
        if cur is None:
            trigger, reason = now, ("initial" if not self._started else "recovered")
            if self._started and best is not None and self._name_reused(best):
                reason = "name-reused"  # another NIC under a listed name: not the one lost coming back
        else:
            reason = "renamed" if renamed else _why_unusable(cur, state, analysis, self.prefs)
            if cur in churn_lost and not renamed:
                trigger, reason = churn_lost[cur], "coa-removed"
            elif reason == "preferences" and self._prefs_at is not None:
                trigger = self._prefs_at  # the user's request
            else:
                trigger = now
            self.log.note_trigger(cur, reason, trigger)
        if best is None:
            self.current = None
            if self._none_reported:
                return []
            self._none_reported = True
            self._current_ifindex = None
            if reason != "initial":
                self.log.record(self._prefs_by if reason == "preferences" else "app", cur, None, reason, trigger, now)
            return [NoUsableInterface(cur, reason, trigger)]
        self._none_reported = False
        return [self._switch(best, reason, trigger, now)]

    def _switch(self, to: str, reason: str, trigger: float, now: float) -> SwitchTo:
        prev = self.current
        self.current = to
        self._current_ifindex = self.names.ifindex_of(to) if self.names is not None else None
        self._started = True
        self.pending = None
        if reason != "initial":  # the first choice is not a failover
            # new preferences are the user's doing: the policy only follows them
            self.log.record(self._prefs_by if reason == "preferences" else "app", prev, to, reason, trigger, now)
        return SwitchTo(to, prev, reason, trigger, now)

    def _set_deadline(self, now: float, state: NodeState, analysis: Analysis) -> None:
        times = [t + self.prefs.churn_window for t in self._soft.values()]
        if self.pending is not None:
            times.append(self.pending[1])
        for name in self._lost:  # a steering rule goes back at the end of its interface's hold-up
            if name in self._since:
                times.append(self._since[name] + self.prefs.holdup)
        # the next end of a CoA's lifetime: the analysis knows the first one after its own time
        first = analysis.coa_deadline
        if first is not None and first > now:
            times.append(first)
        elif first is not None:  # an analysis older than now: look further
            for key, role in analysis.roles.items():
                if role.counted:
                    a = state.addresses.get(key)
                    for t in (a.preferred_until, a.valid_until) if a is not None else ():
                        if t is not None and t > now:
                            times.append(t)
        self.next_deadline = min(times) if times else None


def no_usable_text(state: NodeState, analysis: Analysis) -> str:
    """What the Failover tab says when the policy has no usable interface (``current`` None) and no home
    address is bound: in the headline's words (:func:`mhgui.core.headline.node_headline`) when the machine is
    online without being a Mobile IPv6 node (no home address: issue 15.3), so that the tab does not call a
    normal machine's Ethernet "down"; else that every listed link is unusable. One sentence or two."""
    from .headline_words import addresses_text, online_links
    links = online_links(state, {i for i, f in state.interfaces.items() if f.name.startswith("mhmn")})
    if analysis.y > 0 or not links:
        return _("No usable interface: every listed link is down, or has no care-of address "
                 "or no default router.")
    where = _("Online via {iface} ({addresses})").format(iface=links[0].name, addresses=addresses_text(links[0]))
    return where + ". " + _("Not a Mobile IPv6 node yet (no home address): there is no home address to fail "
                            "over, and steering rules have no uplink to follow (none has a global IPv6 "
                            "address and a default router).")
