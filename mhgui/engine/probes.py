"""Per-uplink home-agent probes (sans-I/O): heartbeat timing, RTT, loss, reachability.

RFC 5847 heartbeats (Mobility Header type 13) with our own timers: every
``interval`` s (250 ms by default, RFC 5847's 60 s would take minutes to see a
failure), an uplink whose last ``misses`` requests went unanswered is
unreachable. A reply for any outstanding request counts; RTT is measured per request.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field

__all__ = ["Prober", "ProbeStats"]

#: settled requests remembered for the loss figure
HISTORY = 20


@dataclass(frozen=True, slots=True)
class ProbeStats:
    """What the probes say of one uplink.

    ``reachable``: None before the first answer or miss verdict, then bool;
    ``rtt_ms``: the last measured round trip (None before one); ``srtt_ms``:
    smoothed (RFC 6298 α = 1/8); ``loss``: the fraction of the last
    :data:`HISTORY` settled requests that went unanswered (0..1); ``sent``,
    ``answered``: totals.
    """

    reachable: bool | None
    rtt_ms: float | None
    srtt_ms: float | None
    loss: float
    sent: int
    answered: int


@dataclass
class Prober:
    """Probe state of one uplink. ``interval``: s between requests; ``misses``: unanswered in a row = dead."""

    interval: float
    misses: int
    next_seq: int = 1
    next_due: float = 0.0
    reachable: bool | None = None
    rtt_ms: float | None = None
    srtt_ms: float | None = None
    sent: int = 0
    answered: int = 0
    consecutive_missed: int = 0
    outstanding: dict[int, float] = field(default_factory=dict)  # seq -> sent at
    settled: collections.deque = field(default_factory=lambda: collections.deque(maxlen=HISTORY))

    def due(self, now: float) -> bool:
        return now >= self.next_due

    def request(self, now: float) -> int:
        """Record a request sent at ``now``; returns its sequence number (u32). Expires old ones first."""
        self.expire(now)
        seq = self.next_seq
        self.next_seq = (self.next_seq + 1) & 0xFFFFFFFF or 1
        self.outstanding[seq] = now
        self.sent += 1
        self.next_due = now + self.interval
        return seq

    def timeout(self) -> float:
        """How long a request waits for its reply (s): four smoothed RTTs, at least 100 ms, at most the interval."""
        if self.srtt_ms is None:
            return self.interval
        return min(self.interval, max(0.1, 4 * self.srtt_ms / 1000.0))

    def expire(self, now: float) -> bool:
        """Settle requests older than :meth:`timeout` as missed; True when that made the uplink unreachable
        (``misses`` in a row). After a miss the next request goes at once, so a blackhole is seen within
        about one interval plus ``misses`` timeouts (0.25 + 3 x 0.1 s by default on a fast path)."""
        limit = self.timeout()
        became_dead = False
        for seq, t in sorted(self.outstanding.items(), key=lambda kv: kv[1]):
            if now - t >= limit:
                del self.outstanding[seq]
                self.settled.append(False)
                self.consecutive_missed += 1
                if self.consecutive_missed >= self.misses and self.reachable is not False:
                    self.reachable = False
                    became_dead = True
                elif self.reachable is not False:
                    # a miss: ask again at once instead of an interval later (as BFD's poll does), so that
                    # ``misses`` losses in a row are seen about ``interval + misses * timeout`` after a failure
                    self.next_due = min(self.next_due, now)
        return became_dead

    def next_event(self) -> float:
        """When :meth:`expire` or :meth:`request` next has something to do (core clock)."""
        t = self.next_due
        if self.outstanding:
            t = min(t, min(self.outstanding.values()) + self.timeout())
        return t

    def reply(self, seq: int, now: float) -> bool | None:
        """A reply for ``seq`` came at ``now``; True when that made the uplink reachable (again), False when it
        already was; None for a ``seq`` we are not waiting for (a replayed or late reply: to be ignored)."""
        t = self.outstanding.pop(seq, None)
        if t is None:
            return None
        self.answered += 1
        self.settled.append(True)
        self.consecutive_missed = 0
        self.rtt_ms = (now - t) * 1000.0
        self.srtt_ms = self.rtt_ms if self.srtt_ms is None else self.srtt_ms + (self.rtt_ms - self.srtt_ms) / 8
        was = self.reachable
        self.reachable = True
        return was is not True

    def reset(self) -> None:
        """The uplink changed (new CoA, carrier back): forget the verdict, probe at once."""
        self.outstanding.clear()
        self.consecutive_missed = 0
        self.reachable = None
        self.next_due = 0.0

    def stats(self) -> ProbeStats:
        loss = (sum(1 for ok in self.settled if not ok) / len(self.settled)) if self.settled else 0.0
        return ProbeStats(self.reachable, self.rtt_ms, self.srtt_ms, loss, self.sent, self.answered)
