"""The mobile node core's clock-driven work (sans-I/O): probes, retransmissions, refreshes, keepalives,
suspend detection, re-registration.

Mixed into :class:`mhgui.engine.mn.MobileNodeCore`; timers follow RFC 6275 §11.8 (BU retransmission,
1.5 s first registration, 1 s after, doubling to 32 s) and the probe design of ``docs/engine-design.md``.
"""

from __future__ import annotations

from . import dataplane as dp
from . import wire
from .actions import Log
from .mn_actions import Changed, RebindDone, SendOn

__all__ = ["MobileNodeTimers", "REBIND_TIMEOUT", "SUSPEND_JUMP"]

REBIND_TIMEOUT = 10.0  # s a rebind request waits for its BA
SUSPEND_JUMP = 3.0  # s of wall-clock jump against the monotonic one that means "we slept"


class MobileNodeTimers:
    """Timers of :class:`mhgui.engine.mn.MobileNodeCore` (uses its state and its signalling helpers)."""

    def next_timer(self) -> float:
        """When :meth:`tick` next has something to do (core clock, s)."""
        times = [u.prober.next_event() for u in self.uplinks.values() if self.path_of(u.info) and u.info.carrier]
        for h in self.hoas.values():
            if h.pending is not None:
                times.append(h.pending.sent_at + h.pending.timeout)
            if h.bound is not None:
                times.append(h.bound.refresh_at)
                times.append(self._next_keepalive.get(h.hoa16, h.bound.refresh_at))
            if h.refused_until:
                times.append(h.refused_until)
        times += [t + REBIND_TIMEOUT for _h, _i, t in self._waiters.values()]
        times.append(self.flow_request_deadline())
        return min(times) if times else float("inf")

    def tick(self, now: float, wall: float) -> list:
        """Probes, retransmissions, refreshes, keepalives, suspend detection."""
        out: list = []
        if self._clock_pair is not None:
            jump = (wall - now) - (self._clock_pair[0] - self._clock_pair[1])
            if abs(jump) > SUSPEND_JUMP:
                out.append(Log("WARNING", f"the wall clock jumped {jump:+.0f} s (suspend/resume?): registering again"))
                for u in self.uplinks.values():
                    u.prober.reset()
                out += self.reregister_all(now, wall, "resumed")
        self._clock_pair = (wall, now)
        verdict = False
        for u in self.uplinks.values():
            if not u.info.carrier or self.path_of(u.info) is None:
                continue
            if u.prober.expire(now):
                verdict = True
                out += [Changed("uplinks", {"event": "unreachable", "uplink": u.info.name, "at": now}),
                        Log("WARNING", f"home agent unreachable through {u.info.name} "
                                       f"({u.prober.misses} probes unanswered)")]
            if u.prober.due(now):
                out += self._probe(u, now)
        for h in self.hoas.values():
            if h.refused_until and now >= h.refused_until:
                h.refused_until = 0.0
                verdict = True
            p = h.pending
            if p is not None and now >= p.sent_at + p.timeout:
                self.counters["bu-retransmitted"] += 1
                if p.ifindex in self.uplinks:
                    out += self._send_bu(h, p.ifindex, now, wall, p.reason, p.lifetime, h.retry_timeout())
                else:
                    h.pending = None
                    verdict = True
            elif p is None and h.bound is not None and now >= h.bound.refresh_at:
                out += self._send_bu(h, h.bound.ifindex, now, wall, "refresh")
            if h.bound is not None and now >= self._next_keepalive.get(h.hoa16, float("inf")):
                self._next_keepalive[h.hoa16] = now + self.keepalive
                if self.mcoa and h.paths:  # one per path, naming its BID: each NAT mapping stays, each path known
                    out += [SendOn(mp.ifindex, mp.family, h.bound.sender.seal(mp.bid.to_bytes(2, "big"),
                                                                              dp.FRAME_KEEPALIVE))
                            for mp in h.paths.values() if mp.ifindex in self.uplinks and mp.priority < 127]
                else:
                    out.append(SendOn(h.bound.ifindex, h.bound.family,
                                      h.bound.sender.seal(b"", dp.FRAME_KEEPALIVE)))
            if h.bound is not None and now >= h.bound.expires and p is None:
                h.drop_binding(now)
                verdict = True
        self._prune_indexes(now)
        for rid, (hoa16, _idx, t) in list(self._waiters.items()):
            if now - t >= REBIND_TIMEOUT:
                del self._waiters[rid]
                out.append(RebindDone(rid, self.hoas[hoa16].hoa, False, (now - t) * 1000, None, None,
                                      f"no Binding Acknowledgement within {REBIND_TIMEOUT:g} s"))
        out += self.expire_flow_requests(now)
        if verdict:
            out += self._evaluate(now, wall, "home agent unreachable")
        return out

    def _prune_indexes(self, now: float) -> None:
        """Forget receiver indexes of BUs that were answered or replaced and of retired sessions."""
        if len(self._by_index) <= 2 * len(self.hoas) + 8:
            return
        keep = {}
        for h in self.hoas.values():
            for r in h.receivers(now):
                keep[r.local_index] = h
            if h.pending is not None:
                keep[h.pending.index] = h
        self._by_index = keep

    def _probe(self, u, now: float) -> list:
        path = self.path_of(u.info)
        h = next(iter(self.hoas.values()), None)
        if path is None or h is None:
            return []
        seq = u.prober.request(now)
        msg = wire.Heartbeat(seq, options=(wire.RestartCounter(self.ha_restart or 0),))
        self.counters["probes-sent"] += 1
        return [self._signal(msg, h, None, u.info.ifindex, path[0])]

    def reregister_all(self, now: float, wall: float, reason: str) -> list:
        """Register every HoA again through its chosen uplink (the HA lost its cache, or we slept)."""
        out: list = []
        for h in self.hoas.values():
            if h.deregistered:
                continue
            h.pending = None
            h.drop_binding(now)
            h.refused_until = 0.0
        return out + self._evaluate(now, wall, reason)
