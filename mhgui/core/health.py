"""Live health of the node (issue 15.4), sans-I/O: throughput, home-agent probes, a timeline of events.

What goes in, from the adapters (no Qt, no I/O here):

- interface counters (:class:`LinkCounters`, from ``RTM_GETLINK``'s ``IFLA_STATS64``, rtnetlink(7),
  ``struct rtnl_link_stats64`` in include/uapi/linux/if_link.h), read about once a second by
  :mod:`mhgui.sources.linkstats`; :meth:`Health.add_counters` turns two readings into rates in
  bit/s and packets/s, keyed by ifindex;
- the engine's uplinks (``GetUplinks`` of ``io.github.mhgui.MHGui.MobileNode1``, see
  :mod:`mhgui.engine.mn_dbus`: ``reachable``, ``rtt_ms``, ``srtt_ms``, ``loss`` 0..1,
  ``probes_sent``/``probes_answered``; RFC 5847 heartbeats): :meth:`Health.add_uplinks`;
- the state store's changes (:class:`~mhgui.core.state.Change`), the daemon's bindings and the
  failover service's events: :func:`events_of_changes`, :func:`events_of_bindings`,
  :func:`event_of_failover`, recorded with :meth:`Health.record`.

Memory is bounded: at most :data:`KEEP` seconds and :data:`MAX_POINTS` points per series (10 min at
1 Hz), :data:`MAX_SERIES` series of each kind and :data:`MAX_EVENTS` timeline events; older data is
dropped first. Times are seconds on the caller's monotonic clock (durations, order); their wall-clock
times come from :attr:`Health.walls` (:class:`~mhgui.core.walltime.WallMap`), which the caller feeds with
:meth:`Health.note_wall` each time it records: CLOCK_MONOTONIC stops during a suspend, so an offset taken
when the data is read would shift everything recorded before a suspend by its length.
"""

from __future__ import annotations

import bisect
import collections
import csv
import io
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Mapping

from ..engine.probes import HISTORY as LOSS_WINDOW  # the engine's loss figure: its last 20 settled probes
from ..i18n import _, ngettext
from .walltime import WallMap

__all__ = [
    "CATEGORIES", "KEEP", "MAX_EVENTS", "MAX_POINTS", "Health", "InterfaceSeries", "LinkCounters", "ProbePoint",
    "RatePoint", "TimelineEvent", "UplinkSeries", "csv_text", "event_of_entry", "event_of_failover", "events_of_bindings",
    "events_of_changes", "format_rate", "format_ms",
]

#: seconds of history kept per series
KEEP = 600.0
#: points kept per series (10 minutes at one reading a second)
MAX_POINTS = 600
#: timeline events kept (the oldest go first)
MAX_EVENTS = 2000
#: interfaces (and uplinks) followed at most: a host with thousands of links (containers) keeps the first ones
MAX_SERIES = 256
#: a reading more than this many seconds after the previous one starts a new segment (polling was paused)
MAX_GAP = 5.0
#: largest value a 64-bit counter can hold
U64 = (1 << 64) - 1
#: longest name or text kept from an external source (interface names are at most 15 bytes; IFNAMSIZ)
MAX_TEXT = 200

#: timeline lanes, top to bottom
CATEGORIES = ("link", "address", "router", "binding", "failover", "probe", "daemon")
#: how an event reads: good news, bad news, something to look at, or plain information
SEVERITIES = ("info", "good", "warning", "bad")


def _clean_text(value: object, limit: int = MAX_TEXT) -> str:
    """Text from an external source, shown and exported: control characters become U+FFFD, at most ``limit``."""
    text = value if isinstance(value, str) else ("" if value is None else str(value))
    text = "".join(c if c.isprintable() else "\ufffd" for c in text[:limit])
    return text


def _counter(value: object) -> int | None:
    """A counter (int 0..2**64-1) or None (missing, negative, not an integer, a bool)."""
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if 0 <= value <= U64 else None


def _finite(value: object, lo: float = 0.0, hi: float = math.inf) -> float | None:
    """A finite number in [lo, hi] or None (missing, NaN, infinite, a bool, out of range, not a number)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    v = float(value)
    return v if math.isfinite(v) and lo <= v <= hi else None


# --------------------------------------------------------------------------- throughput
@dataclass(frozen=True, slots=True)
class LinkCounters:
    """One reading of an interface's counters (``IFLA_STATS64``; ``width`` 32 for the old ``IFLA_STATS``).

    Bytes and packets since the interface was created (or its driver reset them); ``name`` is a label
    only (the key is ``ifindex``: a renamed NIC keeps its series).
    """

    ifindex: int
    name: str
    rx_bytes: int
    tx_bytes: int
    rx_packets: int = 0
    tx_packets: int = 0
    width: int = 64


@dataclass(frozen=True, slots=True)
class RatePoint:
    """Rates over the interval that ends at ``t``: bit/s and packets/s. ``gap``: no point joins it to the
    previous one (polling was paused, or the counters were reset)."""

    t: float
    rx_bps: float
    tx_bps: float
    rx_pps: float
    tx_pps: float
    gap: bool = False


@dataclass(slots=True)
class InterfaceSeries:
    """Rates of one interface (by ifindex), oldest first, at most :data:`MAX_POINTS`."""

    ifindex: int
    name: str
    points: collections.deque = field(default_factory=lambda: collections.deque(maxlen=MAX_POINTS))
    #: the last reading: (t, rx_bytes, tx_bytes, rx_packets, tx_packets, width)
    last: tuple | None = None
    #: counters seen going backwards (the driver reset them, or the ifindex now names another NIC)
    resets: int = 0
    #: 32-bit counters seen wrapping around
    wraps: int = 0
    _gap: bool = True

    def latest(self) -> RatePoint | None:
        return self.points[-1] if self.points else None


def _delta(old: int, new: int, width: int) -> tuple[int | None, bool]:
    """(new - old, wrapped) for a counter of ``width`` bits; (None, False) when it went backwards (a reset).

    A 64-bit counter never wraps in practice (580 years at 1 Tbit/s), so going back is a reset; a 32-bit
    one (``IFLA_STATS``) wraps every 4 GiB (3.4 s at 10 Gbit/s) and is read modulo 2**32, which cannot
    tell a reset from a wrap.
    """
    if new >= old:
        return new - old, False
    if width == 32 and old < (1 << 32):
        return new + (1 << 32) - old, True
    return None, False


# --------------------------------------------------------------------------- probes
@dataclass(frozen=True, slots=True)
class ProbePoint:
    """What the engine said of one uplink at ``t``: ``reachable`` (None: not known yet), ``rtt_ms`` (the
    last round trip), ``srtt_ms`` (smoothed, RFC 6298 alpha 1/8), ``loss`` (0..1, the engine's last 20
    probes), ``sent``/``answered`` (totals); each None when missing or malformed."""

    t: float
    reachable: bool | None
    rtt_ms: float | None
    srtt_ms: float | None
    loss: float | None
    sent: int | None
    answered: int | None


@dataclass(slots=True)
class UplinkSeries:
    """Probe readings of one uplink, keyed by its ifindex (its name when the engine gave none)."""

    key: int | str
    name: str
    ifindex: int | None
    points: collections.deque = field(default_factory=lambda: collections.deque(maxlen=MAX_POINTS))

    def latest(self) -> ProbePoint | None:
        return self.points[-1] if self.points else None


def parse_uplink(item: object, t: float) -> tuple[int | str, str, int | None, ProbePoint] | None:
    """One object of ``GetUplinks`` as (key, name, ifindex, point); None when it names no uplink.

    Every field is checked: a missing or malformed one becomes None, never an exception.
    """
    if not isinstance(item, Mapping):
        return None
    name = _clean_text(item.get("name"), 64) if isinstance(item.get("name"), str) else ""
    ifindex = item.get("ifindex")
    ifindex = ifindex if isinstance(ifindex, int) and not isinstance(ifindex, bool) and 0 < ifindex < 1 << 31 else None
    if not name and ifindex is None:
        return None
    reachable = item.get("reachable")
    sent, answered = _counter(item.get("probes_sent")), _counter(item.get("probes_answered"))
    if sent is not None and answered is not None and answered > sent:
        answered = None  # more answers than requests: not a figure to show
    point = ProbePoint(t, reachable if isinstance(reachable, bool) else None,
                       _finite(item.get("rtt_ms"), 0.0, 3_600_000.0), _finite(item.get("srtt_ms"), 0.0, 3_600_000.0),
                       _finite(item.get("loss"), 0.0, 1.0), sent, answered)
    return (ifindex if ifindex is not None else name), name or f"if{ifindex}", ifindex, point


# --------------------------------------------------------------------------- timeline
@dataclass(frozen=True, slots=True)
class TimelineEvent:
    """One event on the timeline: ``t`` (monotonic seconds), ``category`` (:data:`CATEGORIES`), ``kind``
    (e.g. ``link-down``), ``subject`` (an interface, address or home address), ``text`` (a sentence for
    the user), ``severity`` (:data:`SEVERITIES`), ``ref``: an identity for events that are updated in
    place (a failover log entry whose timings come in later), else None."""

    t: float
    category: str
    kind: str
    subject: str
    text: str
    severity: str = "info"
    ref: object = None


def events_of_changes(t: float, changes: Iterable[Any], names: Mapping[int, str] | None = None) -> list[TimelineEvent]:
    """Timeline events for a batch of :class:`~mhgui.core.state.Change` (links, addresses, routers, sources).

    ``names``: interface names by ifindex for changes that carry none (a removed address). Changes that
    are no news on a timeline (a link's other attributes, ``home-addresses-changed``) give nothing.
    """
    names = names or {}
    out: list[TimelineEvent] = []

    def ifname(c) -> str:
        for obj in (c.after, c.before):
            n = getattr(obj, "name", None)
            if isinstance(n, str) and getattr(obj, "ifindex", None) == c.ifindex:
                return _clean_text(n, 64)
        return _clean_text(names.get(c.ifindex, f"if{c.ifindex}"), 64)

    for c in changes:
        kind = getattr(c, "kind", "")
        if kind in ("link-added", "link-removed", "link-up", "link-down"):
            n = ifname(c)
            text = {"link-added": _("{iface} appeared"), "link-removed": _("{iface} was removed"),
                    "link-up": _("{iface} is up"), "link-down": _("{iface} went down")}[kind].format(iface=n)
            sev = {"link-down": "bad", "link-removed": "warning", "link-up": "good"}.get(kind, "info")
            out.append(TimelineEvent(t, "link", kind, n, text, sev))
        elif kind == "link-changed":
            old, new = getattr(c.before, "name", None), getattr(c.after, "name", None)
            if isinstance(old, str) and isinstance(new, str) and old != new:
                text = _("{old} was renamed {new}").format(old=_clean_text(old, 64), new=_clean_text(new, 64))
                out.append(TimelineEvent(t, "link", "link-renamed", _clean_text(new, 64), text, "warning"))
        elif kind in ("address-added", "address-removed", "address-changed") and c.key is not None:
            a = f"{c.key.address}/{c.key.prefixlen}"
            n = ifname(c)
            text = {"address-added": _("{address} added on {iface}"),
                    "address-removed": _("{address} removed from {iface}"),
                    "address-changed": _("{address} on {iface} changed")}[kind].format(address=a, iface=n)
            sev = "warning" if kind == "address-removed" else "info"
            out.append(TimelineEvent(t, "address", kind, a, text, sev))
        elif kind in ("router-added", "router-removed"):
            r = _clean_text(c.after if kind == "router-added" else c.before, 64)
            n = ifname(c)
            text = (_("router {router} on {iface}") if kind == "router-added"
                    else _("router {router} on {iface} gone")).format(router=r, iface=n)
            out.append(TimelineEvent(t, "router", kind, n, text, "info" if kind == "router-added" else "warning"))
        elif kind in ("source-lost", "source-back"):
            out.append(TimelineEvent(t, "daemon", kind, "", _clean_text(c.detail),
                                     "bad" if kind == "source-lost" else "good"))
    return out


def _binding_key(b) -> tuple[str, int | None]:
    return (b.hoa, b.bid)


def _state(b) -> str:
    return str(getattr(b.state, "value", b.state))


def events_of_bindings(t: float, before: Iterable[Any], after: Iterable[Any]) -> list[TimelineEvent]:
    """Timeline events for a change of the daemon's bindings (:class:`~mhgui.core.bindings.Binding`, keyed
    by (HoA, BID)): new ones, moves to another CoA or interface, state changes, bindings gone.

    The lifetime counting down is no event.
    """
    old = {_binding_key(b): b for b in before}
    new = {_binding_key(b): b for b in after}
    out: list[TimelineEvent] = []

    def where(b) -> str:
        coa = _clean_text(b.coa, 64)
        return f"{coa} ({_clean_text(b.interface, 64)})" if b.interface else coa

    for key, b in new.items():
        hoa = _clean_text(b.hoa, 64) + (f" BID {b.bid}" if b.bid is not None else "")
        st = _state(b)
        sev = {"registered": "good", "waiting-ack": "info", "error": "bad", "expired": "warning"}.get(st, "info")
        o = old.get(key)
        if o is None:
            out.append(TimelineEvent(t, "binding", "binding-added", hoa,
                                     _("{hoa} bound to {where}: {state}").format(hoa=hoa, where=where(b), state=st), sev))
        elif (o.coa, o.interface) != (b.coa, b.interface):
            out.append(TimelineEvent(t, "binding", "binding-moved", hoa,
                                     _("{hoa} moved from {old} to {new}: {state}").format(
                                         hoa=hoa, old=where(o), new=where(b), state=st), sev))
        elif _state(o) != st:
            out.append(TimelineEvent(t, "binding", "binding-state", hoa,
                                     _("{hoa} via {where}: {old} → {new}").format(
                                         hoa=hoa, where=where(b), old=_state(o), new=st), sev))
    for key, o in old.items():
        if key not in new:
            hoa = _clean_text(o.hoa, 64) + (f" BID {o.bid}" if o.bid is not None else "")
            out.append(TimelineEvent(t, "binding", "binding-removed", hoa,
                                     _("{hoa}: binding via {where} gone").format(hoa=hoa, where=where(o)), "warning"))
    return out


def event_of_entry(e) -> TimelineEvent:
    """The timeline event of one failover log entry (:class:`~mhgui.core.failover.FailoverEntry`), ``ref``
    ``("failover", id)``: recording a later version of the entry replaces it."""
    frm, to = _clean_text(e.from_interface or "?", 64), _clean_text(e.to_interface or "?", 64)
    text = _("failover {frm} → {to} ({reason}, by {by})").format(frm=frm, to=to, reason=_clean_text(e.reason, 64),
                                                                    by=_clean_text(e.by, 32))
    steps = []
    if e.trigger_time is not None:
        for label, at in ((_("decided"), e.decision_time), (_("BU sent"), e.bu_time), (_("acknowledged"), e.ack_time)):
            if at is not None:
                steps.append(_("{step} after {ms} ms").format(step=label, ms=round((at - e.trigger_time) * 1000)))
    if steps:
        text += "; " + ", ".join(steps)
    if e.note:
        text += ". " + _clean_text(e.note)
    at = e.trigger_time if e.trigger_time is not None else e.decision_time
    # going back to the preferred uplink is good news; leaving one because it failed is not
    reason = str(e.reason)
    severity = ("bad" if reason.endswith(" failed") else "good" if reason in ("recovered", "preferred-back")
                else "info" if e.who == "user" or reason == "initial" else "warning")
    return TimelineEvent(at, "failover", "failover", to, text, severity, ref=("failover", e.id))


def event_of_failover(ev: Any) -> TimelineEvent | None:
    """The timeline event of one :mod:`mhgui.failover_service` event (matched by class name, so that the core
    does not import the service); None for ``Decided`` and anything unknown.

    ``EntryChanged`` gives an event with ``ref`` ``("failover", id)``: recording it again replaces the
    earlier one (its timings came in).
    """
    name = type(ev).__name__
    try:
        if name == "EntryChanged":
            return event_of_entry(ev.entry)
        if name == "LinkLost":
            n = _clean_text(ev.interface, 64)
            return TimelineEvent(ev.at, "failover", "link-lost", n,
                                 _("{iface} lost ({reason})").format(iface=n, reason=_clean_text(ev.reason, 64)), "bad")
        if name == "FailoverDone":
            e = ev.entry
            to = _clean_text(e.to_interface or "?", 64)
            took = _("took {ms} ms").format(ms=round(ev.took * 1000)) if ev.took is not None else _("time unknown")
            at = e.ack_time if e.ack_time is not None else e.decision_time
            return TimelineEvent(at, "failover", "failover-done", to,
                                 _("failover to {to} done ({took})").format(to=to, took=took), "good")
        if name == "FailoverFailed":
            n = _clean_text(ev.interface or "", 64)
            return TimelineEvent(ev.at, "failover", "failover-failed", n, _clean_text(ev.message), "bad")
        if name == "DaemonLost":
            return TimelineEvent(ev.at, "daemon", "daemon-lost", "",
                                 _("mobility daemon lost: {why}").format(why=_clean_text(ev.message)), "bad")
        if name == "DaemonBack":
            return TimelineEvent(ev.at, "daemon", "daemon-back", "",
                                 _("mobility daemon back after {s:.1f} s").format(s=float(ev.gone)), "good")
    except (AttributeError, TypeError, ValueError):
        return None
    return None


# --------------------------------------------------------------------------- the whole
class Health:
    """Series and timeline of the node's health (module docstring). ``keep``: seconds of history."""

    def __init__(self, *, keep: float = KEEP, max_points: int = MAX_POINTS, max_events: int = MAX_EVENTS,
                 max_series: int = MAX_SERIES, max_gap: float = MAX_GAP) -> None:
        self.keep = keep
        self.max_points = max_points
        self.max_events = max_events
        self.max_series = max_series
        self.max_gap = max_gap
        self.interfaces: dict[int, InterfaceSeries] = {}
        self.uplinks: dict[int | str, UplinkSeries] = {}
        self.events: list[TimelineEvent] = []  # sorted by t
        self._refs: dict[object, TimelineEvent] = {}
        #: readings refused as malformed (kept for the view's "ignored" note and for tests)
        self.rejected = 0
        #: wall-clock times of the monotonic times recorded (:meth:`note_wall`; :func:`csv_text`, the timeline)
        self.walls = WallMap()

    def note_wall(self, now: float, wall: float) -> None:
        """The wall clock ``wall`` (s since 1970) read together with monotonic ``now`` (s): call it right after
        recording (same step), so that what was recorded keeps its wall time across a later suspend."""
        self.walls.note(now, wall)

    # ---- throughput
    def add_counters(self, t: float, readings: Iterable[object]) -> list[RatePoint]:
        """Take one poll's readings (:class:`LinkCounters`) at ``t``; returns the new rate points.

        A first reading, one after a pause longer than ``max_gap`` and one whose counters went backwards
        (reset, or the ifindex now names another NIC) only set the baseline: the next point is marked
        ``gap``. A reading at the same or an earlier ``t`` than the last is ignored. Malformed readings
        (wrong type, negative or non-integer counters) are counted in :attr:`rejected` and skipped.
        """
        if _finite(t, -math.inf) is None:
            self.rejected += 1
            return []
        out = []
        for r in readings:
            if not isinstance(r, LinkCounters) or not self._valid(r):
                self.rejected += 1
                continue
            s = self.interfaces.get(r.ifindex)
            if s is None:
                if len(self.interfaces) >= self.max_series:
                    continue
                s = self.interfaces[r.ifindex] = InterfaceSeries(
                    r.ifindex, _clean_text(r.name, 64), collections.deque(maxlen=self.max_points))
            s.name = _clean_text(r.name, 64) or s.name
            p = self._step(s, t, r)
            if p is not None:
                out.append(p)
        self.prune(t)
        return out

    @staticmethod
    def _valid(r: LinkCounters) -> bool:
        return (isinstance(r.ifindex, int) and not isinstance(r.ifindex, bool) and r.ifindex > 0
                and r.width in (32, 64)
                and all(_counter(v) is not None for v in (r.rx_bytes, r.tx_bytes, r.rx_packets, r.tx_packets)))

    def _step(self, s: InterfaceSeries, t: float, r: LinkCounters) -> RatePoint | None:
        now = (t, r.rx_bytes, r.tx_bytes, r.rx_packets, r.tx_packets, r.width)
        last, s.last = s.last, now
        if last is None or last[5] != r.width:
            s._gap = True
            return None
        dt = t - last[0]
        if dt <= 0:
            s.last = last  # a reading at the same time again, or from the past: keep the older one
            return None
        if dt > self.max_gap:
            s._gap = True
            return None
        deltas = []
        for old, new in zip(last[1:5], now[1:5]):
            d, wrapped = _delta(old, new, r.width)
            if d is None:
                s.resets += 1
                s._gap = True
                return None
            s.wraps += wrapped
            deltas.append(d)
        p = RatePoint(t, deltas[0] * 8 / dt, deltas[1] * 8 / dt, deltas[2] / dt, deltas[3] / dt, s._gap)
        s._gap = False
        s.points.append(p)
        return p

    def forget_interface(self, ifindex: int) -> None:
        """The link is gone (``RTM_DELLINK``): its series goes with it (a new NIC with the ifindex starts anew)."""
        self.interfaces.pop(ifindex, None)

    def pause(self) -> None:
        """Polling stops for a while: the next readings only set baselines (no rate across the pause)."""
        for s in self.interfaces.values():
            s.last = None
            s._gap = True

    # ---- probes
    def add_uplinks(self, t: float, items: object) -> list[TimelineEvent]:
        """Take one ``GetUplinks`` answer (a list of objects) at ``t``; returns (and records) the timeline events
        of reachability changes ("home agent unreachable through up0", "... reachable again").

        Not a list, or items that name no uplink: counted in :attr:`rejected`, nothing else happens.
        """
        if not isinstance(items, (list, tuple)) or _finite(t, -math.inf) is None:
            self.rejected += 1
            return []
        events = []
        for item in items[: self.max_series]:
            parsed = parse_uplink(item, t)
            if parsed is None:
                self.rejected += 1
                continue
            key, name, ifindex, point = parsed
            s = self.uplinks.get(key)
            if s is None:
                if len(self.uplinks) >= self.max_series:
                    continue
                s = self.uplinks[key] = UplinkSeries(key, name, ifindex, collections.deque(maxlen=self.max_points))
            s.name = name
            prev = s.latest()
            if prev is not None and t <= prev.t:
                continue
            if point.reachable is not None and (prev.reachable if prev is not None else None) != point.reachable:
                if point.reachable:
                    if prev is not None and prev.reachable is False:
                        events.append(TimelineEvent(t, "probe", "reachable", name,
                                                    _("home agent reachable again through {uplink}").format(uplink=name),
                                                    "good"))
                else:
                    events.append(TimelineEvent(t, "probe", "unreachable", name,
                                                _("home agent unreachable through {uplink}").format(uplink=name), "bad"))
            s.points.append(point)
        for e in events:
            self.record(e)
        self.prune(t)
        return events

    # ---- timeline
    def record(self, event: TimelineEvent) -> None:
        """Add one event in time order (an event with the ``ref`` of an earlier one replaces it)."""
        if not isinstance(event, TimelineEvent) or _finite(event.t, -math.inf) is None:
            self.rejected += 1
            return
        if event.ref is not None:
            old = self._refs.pop(event.ref, None)
            if old is not None:
                i = bisect.bisect_left(self.events, old.t, key=lambda e: e.t)
                while i < len(self.events) and self.events[i] is not old:
                    i += 1
                if i < len(self.events):
                    del self.events[i]
            self._refs[event.ref] = event
        bisect.insort_right(self.events, event, key=lambda e: e.t)
        if len(self.events) > self.max_events:
            for gone in self.events[: len(self.events) - self.max_events]:
                if gone.ref is not None and self._refs.get(gone.ref) is gone:
                    del self._refs[gone.ref]
            del self.events[: len(self.events) - self.max_events]

    def record_all(self, events: Iterable[TimelineEvent]) -> None:
        for e in events:
            self.record(e)

    def events_between(self, t0: float, t1: float) -> list[TimelineEvent]:
        """The events with ``t0 <= t <= t1``, oldest first."""
        lo = bisect.bisect_left(self.events, t0, key=lambda e: e.t)
        hi = bisect.bisect_right(self.events, t1, key=lambda e: e.t)
        return self.events[lo:hi]

    # ---- bounds
    def prune(self, now: float) -> None:
        """Drop points older than ``keep`` seconds, and series with nothing left (an interface gone, an uplink
        the engine no longer lists). Events are bounded by count (:attr:`max_events`) and age (``keep``)."""
        cut = now - self.keep
        for table in (self.interfaces, self.uplinks):
            for key in list(table):
                pts = table[key].points
                while pts and pts[0].t < cut:
                    pts.popleft()
                last = getattr(table[key], "last", None)
                if not pts and (last is None or last[0] < cut):
                    del table[key]
        if self.events and self.events[0].t < cut:
            n = bisect.bisect_left(self.events, cut, key=lambda e: e.t)
            for gone in self.events[:n]:
                if gone.ref is not None and self._refs.get(gone.ref) is gone:
                    del self._refs[gone.ref]
            del self.events[:n]


# --------------------------------------------------------------------------- presentation and export
def format_rate(bps: float | None) -> str:
    """``12.3 Mbit/s`` (SI prefixes, 3 significant digits); ``–`` for None."""
    if bps is None or not math.isfinite(bps):
        return "–"
    for div, unit in ((1e9, "Gbit/s"), (1e6, "Mbit/s"), (1e3, "kbit/s")):
        if bps >= div:
            v = bps / div
            return f"{v:.3g} {unit}" if v < 1000 else f"{v:.0f} {unit}"
    return f"{bps:.0f} bit/s"


def loss_text(point: ProbePoint, uplink: str) -> tuple[str, str]:
    """(value, tooltip) for the loss of ``point`` (an uplink's latest probe reading): the percentage and the
    window it is measured on (the engine's last :data:`LOSS_WINDOW` settled probes, fewer at its start), so
    that the numbers shown agree: "100 % of the last 20", not "100 % (463/484)" with totals since the engine
    started (those are in the tooltip)."""
    if point.loss is None:
        return "–", _("{uplink}: the engine gave no loss figure").format(uplink=uplink)
    pct = f"{point.loss * 100:.0f} %"
    n = LOSS_WINDOW if point.sent is None else max(1, min(LOSS_WINDOW, point.sent))
    value = ngettext("{pct} of the last {n}", "{pct} of the last {n}", n).format(pct=pct, n=n)
    tip = ngettext("{uplink}: {pct} of the last probe to the home agent lost (the engine's window: its last {n} "
                   "probe)", "{uplink}: {pct} of the last {n} probes to the home agent lost (the engine's "
                   "window: its last {n} probes)", n).format(uplink=uplink, pct=pct, n=n)
    if point.sent is not None and point.answered is not None:
        tip += "; " + _("{answered} of {sent} answered since the engine started").format(
            answered=point.answered, sent=point.sent)
    return value, tip


def format_ms(ms: float | None) -> str:
    """``1.23 ms``, ``250 ms``; ``–`` for None."""
    if ms is None or not math.isfinite(ms):
        return "–"
    return f"{ms:.3g} ms" if ms < 1000 else f"{ms:.0f} ms"


#: CSV columns (RFC 4180, one header line)
CSV_COLUMNS = ("time_utc", "t_s", "record", "subject", "ifindex", "metric", "value", "unit", "detail")


def _safe_cell(text: str) -> str:
    """A text cell that a spreadsheet will not run as a formula (OWASP "CSV injection"): a leading
    ``= + - @`` (or tab, carriage return) gets a ``'`` before it."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def csv_text(health: Health, *, wall_of: Callable[[float], float] | None = None, wall_offset: float | None = None,
             t0: float = -math.inf, t1: float = math.inf) -> str:
    """Everything in ``health`` between ``t0`` and ``t1`` as CSV text (RFC 4180: CRLF line ends, quotes
    where needed; :data:`CSV_COLUMNS`), in time order, one value a row ("long" format):

    - ``throughput``: ``rx``/``tx`` in ``bit/s`` and ``rx_packets``/``tx_packets`` in ``packet/s`` per
      interface (``subject`` its name, ``ifindex``), ``detail`` ``gap`` where a segment starts;
    - ``probe``: ``rtt``/``srtt`` in ``ms``, ``loss`` as a ``ratio`` 0..1, ``reachable`` (``true``,
      ``false``, empty when unknown), ``probes_sent``/``probes_answered`` per uplink;
    - ``event``: ``metric`` the event's ``category/kind``, ``value`` its severity, ``detail`` its text.

    ``time_utc`` (ISO 8601, milliseconds): ``wall_of(t)`` (seconds since 1970 for monotonic ``t``), by default
    ``health.walls.wall_of`` (the wall time noted when the row was recorded, right across a suspend); or a
    fixed ``wall_offset`` (wall minus monotonic seconds) when given. Empty when unknown (nothing noted).
    ``t_s`` is the monotonic time itself.
    Text that comes from outside (names, messages) cannot start a spreadsheet formula (:func:`_safe_cell`).
    """
    rows: list[tuple[float, int, tuple]] = []
    order = 0

    def add(t: float, record: str, subject: str, ifindex, metric: str, value, unit: str, detail: str = "") -> None:
        nonlocal order
        if not (t0 <= t <= t1):
            return
        rows.append((t, order, (record, _safe_cell(subject), "" if ifindex is None else str(ifindex), metric,
                                value, unit, _safe_cell(detail))))
        order += 1

    def num(v) -> str:
        return "" if v is None else repr(round(v, 6)) if isinstance(v, float) else str(v)

    for s in health.interfaces.values():
        for p in s.points:
            gap = "gap" if p.gap else ""
            add(p.t, "throughput", s.name, s.ifindex, "rx", num(p.rx_bps), "bit/s", gap)
            add(p.t, "throughput", s.name, s.ifindex, "tx", num(p.tx_bps), "bit/s", gap)
            add(p.t, "throughput", s.name, s.ifindex, "rx_packets", num(p.rx_pps), "packet/s", gap)
            add(p.t, "throughput", s.name, s.ifindex, "tx_packets", num(p.tx_pps), "packet/s", gap)
    for u in health.uplinks.values():
        for p in u.points:
            add(p.t, "probe", u.name, u.ifindex, "rtt", num(p.rtt_ms), "ms")
            add(p.t, "probe", u.name, u.ifindex, "srtt", num(p.srtt_ms), "ms")
            add(p.t, "probe", u.name, u.ifindex, "loss", num(p.loss), "ratio")
            add(p.t, "probe", u.name, u.ifindex, "reachable",
                "" if p.reachable is None else ("true" if p.reachable else "false"), "")
            add(p.t, "probe", u.name, u.ifindex, "probes_sent", num(p.sent), "")
            add(p.t, "probe", u.name, u.ifindex, "probes_answered", num(p.answered), "")
    for e in health.events:
        add(e.t, "event", e.subject, None, f"{e.category}/{e.kind}", e.severity, "", e.text)
    rows.sort(key=lambda r: (r[0], r[1]))
    if wall_offset is not None:
        wall_of = (lambda t: t + wall_offset)  # noqa: E731
    elif wall_of is None:
        wall_of = health.walls.wall_of
    buf = io.StringIO(newline="")
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(CSV_COLUMNS)
    for t, _order, rest in rows:
        try:
            stamp = datetime.fromtimestamp(wall_of(t), timezone.utc).isoformat(timespec="milliseconds")
        except (LookupError, OverflowError, OSError, ValueError):
            stamp = ""
        w.writerow((stamp, f"{t:.3f}") + rest)
    return buf.getvalue()
