"""Mobile node protocol core (sans-I/O): uplinks and events in, Binding Updates, probes and frames out.

Feed it the uplinks as netlink shows them (:meth:`MobileNodeCore.uplinks_changed`),
datagrams received on each uplink, packets read from the TUN device, the
user's requests, and :meth:`tick` at :meth:`next_timer`; it returns
:class:`SendOn` (a UDP payload for the home agent through one uplink),
:class:`WriteTun`, :class:`SetMtu`, :class:`RebindDone`, :class:`Changed` and
:class:`~mhgui.engine.actions.Log`. The adapter (:mod:`mhgui.engine.mnd`) does
the I/O. Design: ``docs/engine-design.md``.

Behaviour (RFC 6275 §11, RFC 4285, RFC 5555, RFC 5847, draft-montavont §7.1-7.3):

- each HoA is registered through one uplink, chosen by its preferences among
  uplinks with carrier and a usable care-of address whose probes do not say the
  home agent is unreachable; uplinks whose probes answered come first;
- a change of that choice (carrier lost, CoA gone, probes dead, a user's
  rebind, new preferences) sends a Binding Update through the new uplink at once;
- BUs are retransmitted with back-off, refreshed at 80 % of the granted
  lifetime, re-sent at once after a home agent restart (restart counter) or a
  suspend (the wall clock jumped against the monotonic one), and a home agent
  that says our clock is off (status 144 with its time) costs one more round trip;
- data: packets from a HoA read from the TUN are sealed to the home agent on the
  bound uplink; frames from the home agent are opened and written to the TUN
  only when their inner destination is one of our HoAs.
"""

from __future__ import annotations

import collections
import os
from typing import Callable

from . import dataplane as dp
from . import wire
from .actions import Log
from .mn_binding import HoaBinding, Pending
from .mn_actions import Changed, RebindDone, SendOn, SetMtu, UplinkInfo, WriteTun
from .mn_control import MobileNodeControl
from .mn_flows import MobileNodeFlows
from .mn_timers import MobileNodeTimers
from .packets import icmpv6_packet_too_big, inner_addresses
from .probes import Prober
from .session import parse_session_option, session_option

__all__ = ["Changed", "MobileNodeCore", "RebindDone", "SendOn", "SetMtu", "UplinkInfo", "WriteTun",
           "UDP_OVERHEAD"]

#: outer IP + UDP + data frame header and tag, per family (bytes)
UDP_OVERHEAD = {6: 40 + 8 + dp.OVERHEAD, 4: 20 + 8 + dp.OVERHEAD}
MIN_IPV6_MTU = 1280


class _Uplink:
    __slots__ = ("info", "prober")

    def __init__(self, info: UplinkInfo, prober: Prober) -> None:
        self.info = info
        self.prober = prober


class MobileNodeCore(MobileNodeTimers, MobileNodeControl, MobileNodeFlows):
    """The mobile node. ``key``: the MN-HA key; ``ha_home``: the HA's address on the home prefix;
    ``ha_families``: the families the HA listens on (6 and/or 4); ``hoas``: one :class:`HoaBinding` each;
    ``lifetime``: requested binding lifetime (s); probe ``interval``/``metered_interval`` (s), ``misses``;
    ``keepalive``: s between NAT keepalives on the bound uplink; ``mcoa``: register every usable uplink at
    once (RFC 5648 bulk registration, one BID each) so that flows can be moved, bicast and shared (RFC 6089)."""

    def __init__(self, *, identity: str, spi: int, key: bytes, ha_home: str, ha_families: set[int],
                 hoas: list[HoaBinding], lifetime: int = 600, interval: float = 0.25, misses: int = 3,
                 metered_interval: float = 5.0, keepalive: float = 20.0, mcoa: bool = False,
                 random: Callable[[int], bytes] = os.urandom) -> None:
        self.identity, self.spi, self.key = identity, spi, key
        self.ha_home = wire.addr16(ha_home)
        self.ha_families = set(ha_families)
        self.hoas = {h.hoa16: h for h in hoas}
        self.lifetime = lifetime
        self.interval, self.misses, self.metered_interval, self.keepalive = interval, misses, metered_interval, keepalive
        self._random = random
        self.uplinks: dict[int, _Uplink] = {}
        self.counters: collections.Counter[str] = collections.Counter()
        self.ha_restart: int | None = None
        self.clock_offset = 0.0  # s to add to our wall clock for the HA (learnt from status 144)
        self._last_ts = 0
        self._clock_pair: tuple[float, float] | None = None
        self._mtu = 0
        self._waiters: dict[int, tuple[bytes, int, float]] = {}  # request -> (hoa16, ifindex, requested at)
        self._next_keepalive: dict[bytes, float] = {}
        self._by_index: dict[int, HoaBinding] = {}
        self.mcoa = mcoa
        self._init_flows()

    # ------------------------------------------------------------------ views
    def uplink_by_name(self, name: str) -> _Uplink | None:
        return next((u for u in self.uplinks.values() if u.info.name == name), None)

    def path_of(self, info: UplinkInfo) -> tuple[int, str] | None:
        """(family, CoA) this uplink would register with: IPv6 first, then IPv4 (RFC 5555)."""
        if info.coa6 and 6 in self.ha_families:
            return 6, info.coa6
        if info.coa4 and 4 in self.ha_families:
            return 4, info.coa4
        return None

    def usable(self, u: _Uplink) -> bool:
        return u.info.carrier and self.path_of(u.info) is not None and u.prober.reachable is not False

    def uplink_order(self, h: HoaBinding) -> list[int]:
        """The uplinks (ifindex) that can carry ``h`` now, best first: by its preferences (backup last),
        those whose probes answered before those not known yet."""
        ranked = []
        for idx, u in self.uplinks.items():
            rank = h.prefs.rank(u.info.name)
            if rank is not None and self.usable(u):
                ranked.append(((rank[0] == 2, u.prober.reachable is not True, rank, idx), idx))
        return [idx for _k, idx in sorted(ranked)]

    def choose(self, h: HoaBinding) -> int | None:
        """The uplink (ifindex) ``h`` should use now, None when none can carry it."""
        order = self.uplink_order(h)
        return order[0] if order else None

    def _timestamp(self, wall: float) -> int:
        ts = max(self._last_ts + 1, int((wall + self.clock_offset) * (1 << 32)))
        self._last_ts = ts
        return ts

    # ------------------------------------------------------------------ signalling out
    def _signal(self, msg, h: HoaBinding, coa, ifindex: int, family: int) -> SendOn:
        mh = wire.encode_authenticated(msg, h.hoa16, self.ha_home, coa=coa, key=self.key, spi=self.spi,
                                       identity=self.identity, hoa=h.hoa16)
        return SendOn(ifindex, family, wire.encode_packet(mh, h.hoa16, self.ha_home))

    def _send_bu(self, h: HoaBinding, ifindex: int, now: float, wall: float, reason: str,
                 lifetime: int | None = None, timeout: float | None = None) -> list:
        u = self.uplinks[ifindex]
        path = self.path_of(u.info)
        if path is None:
            return []
        family, coa = path
        lifetime = self.lifetime if lifetime is None else lifetime
        seq = h.next_seq()
        nonce, index = self._random(16), int.from_bytes(self._random(4), "big") or 1
        ts = self._timestamp(wall)
        paths: tuple = ()
        flows: dict = {}
        if self.mcoa and lifetime:  # RFC 5648 bulk registration: every path in one BU, this uplink's first
            paths = self.wanted_paths(h, ifindex)
            flows = self.wanted_flows(h, paths)
            opts = [wire.BindingIdentifier(bid, 0, False, pri, p_coa) for bid, _i, _f, p_coa, pri in paths]
            opts += self.flow_options(h, flows)
        else:
            opts = [wire.AlternateCareOf(coa) if family == 6 else wire.IPv4CareOf(coa)]
        msg = wire.BindingUpdate(seq, wire.BU_A | wire.BU_H, lifetime // 4,
                                 options=tuple(opts) + (wire.ReplayProtection(ts), session_option(nonce, index)))
        first = h.pending.first_sent_at if h.pending is not None and h.pending.ifindex == ifindex else now
        tries = h.pending.tries + 1 if h.pending is not None and h.pending.ifindex == ifindex else 1
        h.pending = Pending(seq, ifindex, family, coa, nonce, index, ts, now, timeout or h.first_timeout(), first,
                            lifetime, tries, reason, paths=paths, flows=flows)
        self._by_index[index] = h
        self.counters["bu-sent"] += 1
        return [self._signal(msg, h, coa, ifindex, family)]

    def _evaluate(self, now: float, wall: float, reason: str) -> list:
        """Send a BU for every HoA whose chosen uplink differs from where it is (going)."""
        out: list = []
        for h in self.hoas.values():
            if h.deregistered or now < h.refused_until:
                continue
            choice = self.choose(h)
            if choice is None:
                # keep the binding (and send on it): probes may be late because the home agent is busy, and a
                # link that is really gone costs nothing more; a usable uplink brings a BU at once
                if (h.bound is not None or h.pending is not None) and not h.stranded:
                    h.stranded = True
                    out.append(Changed("bindings", {"event": "no-uplink", "hoa": h.hoa, "reason": reason}))
                    out.append(Log("WARNING", f"{h.hoa}: no uplink can reach the home agent now ({reason})"))
                continue
            h.stranded = False
            if choice == h.target() and (h.pending is not None or h.bound is not None):
                bound_coa = h.bound.coa if h.bound is not None else None
                path = self.path_of(self.uplinks[choice].info)
                if h.pending is not None or path is None:
                    continue
                if path[1] != bound_coa:
                    reason = "care-of address changed"
                else:
                    reason = self.mcoa_change(h, choice) if self.mcoa else None
                    if reason is None:
                        continue
            old = h.target()
            out += self._send_bu(h, choice, now, wall, reason)
            out.append(Changed("bindings", {
                "event": "moving", "hoa": h.hoa, "reason": reason, "at": now,
                "from": self.uplinks[old].info.name if old in self.uplinks else None,
                "to": self.uplinks[choice].info.name}))
        self.rebuild_upstream()
        return out + self._mtu_actions()

    def _mtu_actions(self) -> list:
        mtus = [u.info.mtu - UDP_OVERHEAD[p[0]] for u in self.uplinks.values()
                if u.info.carrier and (p := self.path_of(u.info)) is not None]
        mtu = max(MIN_IPV6_MTU, min(mtus)) if mtus else 0
        if mtu and mtu != self._mtu:
            self._mtu = mtu
            return [SetMtu(mtu)]
        return []

    # ------------------------------------------------------------------ events in
    def uplinks_changed(self, infos: list[UplinkInfo], now: float, wall: float) -> list:
        """The access interfaces as they are now (all of them; missing ones are gone)."""
        seen = set()
        changed = False
        for info in infos:
            seen.add(info.ifindex)
            u = self.uplinks.get(info.ifindex)
            if u is None:
                interval = self.metered_interval if info.metered else self.interval
                # a random first sequence number: a reply recorded earlier (before a restart) matches nothing
                first = int.from_bytes(self._random(4), "big") or 1
                self.uplinks[info.ifindex] = _Uplink(info, Prober(interval, self.misses, next_seq=first))
                changed = True
            elif u.info != info:
                if (u.info.carrier, u.info.coa6, u.info.coa4) != (info.carrier, info.coa6, info.coa4):
                    u.prober.reset()
                u.prober.interval = self.metered_interval if info.metered else self.interval
                u.info = info
                changed = True
        for idx in set(self.uplinks) - seen:
            del self.uplinks[idx]
            changed = True
        if not changed:
            return []
        return [Changed("uplinks", {})] + self._evaluate(now, wall, "link or address change")

    def datagram(self, ifindex: int, payload: bytes, now: float, wall: float) -> list:
        """A UDP payload from the home agent received on uplink ``ifindex``."""
        if len(payload) >= dp.OVERHEAD and payload[0] >> 4 == 0:
            return self._data(payload, now)
        if payload[:1] and payload[0] >> 4 == 6:
            return self._signalling(ifindex, payload, now, wall)
        self.counters["malformed"] += 1
        return []

    def _data(self, frame: bytes, now: float) -> list:
        idx = dp.frame_receiver_index(frame)
        h = self._by_index.get(idx) if idx is not None else None
        if h is None:
            self.counters["data-unknown-session"] += 1
            return []
        for r in h.receivers(now):
            if r.local_index == idx:
                opened = r.open(frame)
                break
        else:
            opened = None
        if opened is None:
            self.counters["data-unauthenticated"] += 1
            return []
        ftype, inner, _ctr = opened
        if ftype != dp.FRAME_DATA:
            return []
        addrs = inner_addresses(inner)
        if addrs is None or addrs[0] != 6 or addrs[2] not in self.hoas:
            self.counters["data-not-for-hoa"] += 1
            return []
        self.counters["down-packets"] += 1
        return [WriteTun(inner)]

    def _signalling(self, ifindex: int, payload: bytes, now: float, wall: float) -> list:
        try:
            src, dst, mh = wire.decode_packet(payload)
            msg = wire.decode_mh(mh, src, dst)
        except wire.WireError:
            self.counters["malformed"] += 1
            return []
        h = self.hoas.get(dst)
        auth = msg.option(wire.MobilityAuth)
        if src != self.ha_home or h is None or auth is None or auth.spi != self.spi:
            self.counters["signalling-not-ours"] += 1
            return []
        coa = h.pending.coa if isinstance(msg, wire.BindingAck) and h.pending is not None else None
        if not wire.verify_authenticator(mh, coa=coa, hoa=dst, key=self.key):
            self.counters["auth-failed"] += 1
            return []
        if isinstance(msg, wire.Heartbeat):
            return self._heartbeat(ifindex, msg, now, wall)
        if isinstance(msg, wire.BindingAck):
            return self._binding_ack(h, msg, now, wall)
        self.counters["unexpected-type"] += 1
        return []

    def _heartbeat(self, ifindex: int, msg: wire.Heartbeat, now: float, wall: float) -> list:
        u = self.uplinks.get(ifindex)
        if not msg.response or u is None:
            return []
        out: list = []
        became = u.prober.reply(msg.seq, now)
        if became is None:  # not an answer to a request of ours on this uplink (a replay): nothing from it counts
            self.counters["heartbeat-unexpected"] += 1
            return []
        if became:
            out += [Changed("uplinks", {"event": "reachable", "uplink": u.info.name})]
            out += self._evaluate(now, wall, f"home agent reachable through {u.info.name}")
        rc = msg.option(wire.RestartCounter)
        if rc is not None:
            if self.ha_restart is not None and rc.counter != self.ha_restart:
                out.append(Log("WARNING", "the home agent restarted (restart counter "
                                          f"{self.ha_restart} -> {rc.counter}): registering again"))
                self.ha_restart = rc.counter
                out += self.reregister_all(now, wall, "home agent restarted")
            self.ha_restart = rc.counter
        return out

    def _binding_ack(self, h: HoaBinding, ba: wire.BindingAck, now: float, wall: float) -> list:
        p = h.pending
        if p is None or ba.seq != p.seq and ba.status != 135:
            self.counters["ba-unexpected"] += 1
            return []
        u = self.uplinks.get(p.ifindex)
        name = u.info.name if u else str(p.ifindex)
        if ba.status == 144 and not p.clock_retry:  # RFC 4285: our timestamp was off; the BA has the HA's time
            rp = ba.option(wire.ReplayProtection)
            if rp is not None and u is not None:
                self.clock_offset = rp.timestamp / (1 << 32) - wall
                self._last_ts = 0  # follow the HA's time from now on, also when our clock was ahead
                out = self._send_bu(h, p.ifindex, now, wall, p.reason, p.lifetime, p.timeout)
                h.pending.clock_retry = True
                return out + [Log("WARNING", f"the home agent's clock differs from ours by {self.clock_offset:+.1f} s:"
                                             " using its time for replay protection")]
        if ba.status == 135 and p.tries < 4 and u is not None:  # sequence out of window: take the HA's
            h.seq = ba.seq
            return self._send_bu(h, p.ifindex, now, wall, p.reason, p.lifetime, p.timeout)
        if ba.status >= 128:
            words = wire.ba_status_text(ba.status)
            h.pending = None
            self.flows_refused(h, p, f"the home agent refused the binding: {words} ({ba.status})", now)
            h.last_error = f"the home agent refused the binding: {words} ({ba.status})"
            h.refused_until = now + 30.0
            self.counters[f"ba-{ba.status}"] += 1
            return [Changed("bindings", {"event": "refused", "hoa": h.hoa, "status": ba.status, "words": words}),
                    Log("ERROR", f"{h.hoa}: {h.last_error}")] + self._finish_waiters(h, now, False, h.last_error)
        rp = ba.option(wire.ReplayProtection)
        if rp is None or rp.timestamp != p.timestamp:  # RFC 4285 §6: the BA echoes our BU's timestamp
            self.counters["ba-stale"] += 1
            return []
        if p.lifetime == 0:
            h.pending = None
            h.drop_binding(now)
            h.paths = {}
            self.rebuild_upstream()
            return [Changed("bindings", {"event": "deregistered", "hoa": h.hoa})]
        sess = parse_session_option(ba.option(wire.VendorSpecific))
        if sess is None:
            self.counters["ba-without-session"] += 1
            return []
        nat = ba.option(wire.NatDetection)
        moved_from = h.bound.ifindex if h.bound is not None else None
        b = h.accept(p, ba.lifetime * 4, sess[0], sess[1], self.key, bool(nat and nat.udp_forced), now)
        self._next_keepalive[h.hoa16] = now + self.keepalive
        self.counters["registrations"] += 1
        extra = self.accept_paths_and_flows(h, p, ba, now) if self.mcoa else []
        from_name = (self.uplinks[moved_from].info.name if moved_from in self.uplinks else None) \
            if moved_from is not None else None
        detail = {"event": "registered", "hoa": h.hoa, "uplink": name, "from": from_name, "coa": b.coa,
                  "lifetime": b.lifetime,
                  "nat": b.nat, "bu_sent_at": p.sent_at, "first_bu_at": p.first_sent_at, "ack_at": now,
                  "reason": p.reason, "moved": moved_from != b.ifindex}
        out = [Changed("bindings", detail)] + extra + self._finish_waiters(h, now, True, None)
        return out + (self._evaluate(now, wall, "changed while registering") if self.mcoa else [])

    def tun_packet(self, packet: bytes, now: float) -> list:
        """An IPv6 packet the node sent from a HoA (read from the TUN)."""
        if len(packet) < 40 or packet[0] >> 4 != 6:
            self.counters["tun-not-ipv6"] += 1
            return []
        h = self.hoas.get(packet[8:24])
        if h is None:
            self.counters["tun-foreign-source"] += 1
            return []
        b = h.bound
        if b is None:
            self.counters["tun-no-binding"] += 1
            return []
        u = self.uplinks.get(b.ifindex)
        limit = (u.info.mtu if u else 1500) - UDP_OVERHEAD[b.family]
        if len(packet) > limit:  # the path got smaller than the TUN: tell the sender (RFC 8201)
            self.counters["packet-too-big"] += 1
            return [WriteTun(icmpv6_packet_too_big(self.ha_home, packet[8:24], max(limit, MIN_IPV6_MTU), packet))]
        self.counters["up-packets"] += 1
        if not h.paths or h.simple_up:
            return [SendOn(b.ifindex, b.family, b.sender.seal(packet))]
        frame = b.sender.seal(packet)  # sealed once: copies carry one counter, the HA delivers the first
        return [SendOn(p.ifindex, p.family, frame) for p in self.upstream_paths(h, packet)]
