"""The mobile node core's care-of addresses and flows (sans-I/O): RFC 5648 paths, RFC 6089 flow bindings,
bicast, load sharing.

Mixed into :class:`mhgui.engine.mn.MobileNodeCore` when it runs with ``mcoa=True``:

- every usable uplink is a path (one BID each, stable for the daemon's life), registered together in one
  bulk Binding Update sent on the HoA's chosen uplink; BID-PRI orders them (1 = the HoA's default), and an
  uplink that stopped working is sent once with BID-PRI :data:`BID_PRI_UNUSED` so that the home agent stops
  using it at once, then left to expire;
- a flow binding names uplinks (one = move the flow, several = send on each); its BIDs are those uplinks'
  when usable, else the HoA's default path (per-BID failover: when an uplink dies only its flows move, in
  the same one BU, and they return when it comes back). The BU carries the node's whole flow state; the
  home agent confirms or refuses each flow with a status (RFC 6089 §6.2);
- upstream, a packet of a bound flow goes on its paths (one sealed frame, the same bytes on each: the
  receiver's replay window keeps the first copy); with load sharing, other flows are spread by weight,
  each flow staying on its path (never the packets of one flow); the rest on the default path. The home
  agent sends each flow's downstream the way its authenticated upstream last came (docs/engine-design.md).
"""

from __future__ import annotations

import ipaddress

from . import wire
from .actions import Log
from .mn_actions import Changed, FlowDone, SendOn
from .mn_binding import MnFlow, MnPath
from .flowspec import selector_to_json
from .selectors import FlowBinding, FlowTable, TrafficSelector, packet_key
from . import dataplane as dp

__all__ = ["BID_PRI_UNUSED", "FLOW_REQUEST_TIMEOUT", "MobileNodeFlows", "STICKY_FLOWS_MAX"]

BID_PRI_UNUSED = 127  # the lowest BID-PRI: "send nothing here unless a flow binding names it"
STICKY_FLOWS_MAX = 4096
FLOW_REQUEST_TIMEOUT = 10.0  # s a flow request waits for the home agent's answer
MAX_FLOW_UPLINKS = 4  # the home agent takes at most 4 BIDs per flow binding (mhgui.engine.ha_binding)  # load-shared flows remembered per HoA (least recently used go first)
_MAX_MH = 2048


class MobileNodeFlows:
    """Paths and flows of :class:`mhgui.engine.mn.MobileNodeCore` (uses its state and helpers)."""

    def _init_flows(self) -> None:
        self._bids: dict[int, int] = {}  # ifindex -> BID
        self.weights: dict[str, int] = {}  # load sharing: uplink name -> weight (empty = off)

    def bid_of(self, ifindex: int) -> int:
        """The BID of an uplink (RFC 5648 §6.1: 1..65535, stable while the daemon runs)."""
        bid = self._bids.get(ifindex)
        if bid is None:
            used = set(self._bids.values())
            bid = next(b for b in range(1, 0x10000) if b not in used)
            self._bids[ifindex] = bid
        return bid

    # ------------------------------------------------------------------ what a BU carries
    def wanted_paths(self, h, first: int) -> tuple:
        """(bid, ifindex, family, coa, BID-PRI) of every path the HoA should have, ``first`` first."""
        order = self.uplink_order(h)
        if first in order:
            order.remove(first)
        order.insert(0, first)
        out = []
        for pri, idx in enumerate(order, 1):
            path = self.path_of(self.uplinks[idx].info)
            if path is not None:
                out.append((self.bid_of(idx), idx, path[0], path[1], min(pri, BID_PRI_UNUSED - 1)))
        named = {p[0] for p in out}
        for bid, mp in h.paths.items():  # stopped working: tell the home agent once, then let it expire
            if bid not in named and mp.priority < BID_PRI_UNUSED:
                out.append((bid, mp.ifindex, mp.family, mp.coa, BID_PRI_UNUSED))
        return tuple(out)

    def wanted_flows(self, h, paths: tuple) -> dict[int, tuple[int, ...]]:
        """fid -> the BIDs each flow should be bound to over ``paths`` (removed flows left out)."""
        live = {p[0]: p for p in paths if p[4] < BID_PRI_UNUSED}
        default = paths[0][0] if paths else None
        out = {}
        for f in h.flows.values():
            if not f.uplinks:  # being removed
                continue
            bids = []
            for name in f.uplinks:
                u = self.uplink_by_name(name)
                if u is not None and (bid := self._bids.get(u.info.ifindex)) in live and bid not in bids:
                    bids.append(bid)
            if not bids and default is not None:
                bids = [default]
            if bids:
                out[f.fid] = tuple(bids)
        return out

    def flow_options(self, h, flows: dict) -> list:
        return [wire.FlowIdentification(fid, h.flows[fid].priority, bids=bids, selector=h.flows[fid].selector)
                for fid, bids in sorted(flows.items())]

    def mcoa_change(self, h, choice: int) -> str | None:
        """Why the HoA needs a BU although its default path is right (paths or flows differ), or None."""
        paths = self.wanted_paths(h, choice)
        named = {p[0] for p in paths}
        registered = tuple((p.bid, p.coa, p.priority) for p in h.paths.values()
                           if p.priority < BID_PRI_UNUSED or p.bid in named)  # the others expire quietly
        if tuple((p[0], p[3], p[4]) for p in paths) != registered:
            return "care-of addresses changed"
        flows = self.wanted_flows(h, paths)
        confirmed = {f.fid: f.bids for f in h.flows.values() if f.bids is not None and f.uplinks}
        if flows != confirmed or any(not f.uplinks for f in h.flows.values()):
            return "flow bindings changed"
        return None

    # ------------------------------------------------------------------ the BA
    def accept_paths_and_flows(self, h, p, ba, now: float) -> list:
        """A BA accepted the bulk registration ``p``: take its paths, the per-flow statuses, and say hello on
        each other path (the home agent learns its outer address from that authenticated keepalive)."""
        h.paths = {bid: MnPath(bid, idx, fam, coa, pri) for bid, idx, fam, coa, pri in p.paths}
        out: list = []
        for mp in h.paths.values():
            if mp.ifindex != p.ifindex and mp.priority < BID_PRI_UNUSED and mp.ifindex in self.uplinks:
                out.append(SendOn(mp.ifindex, mp.family, h.bound.sender.seal(mp.bid.to_bytes(2, "big"),
                                                                             dp.FRAME_KEEPALIVE)))
        statuses = {o.fid: o.status for o in ba.options_of(wire.FlowIdentification)}
        for fid, f in list(h.flows.items()):
            if not f.uplinks:  # removal confirmed by its absence from the BU (else the next BU leaves it out)
                if fid not in p.flows:
                    del h.flows[fid]
                    out += self._flow_done(h, f, True, None, now)
                elif statuses.get(fid, 0) == 0:
                    f.bids = p.flows[fid]
                continue
            if fid not in p.flows:
                continue
            status = statuses.get(fid, 0)
            if status == 0:
                first = f.bids is None or f.request is not None
                if f.bids != p.flows[fid] and not first:  # moved by a failover or a return: tell the watchers
                    out.append(Changed("flows", {"hoa": h.hoa, "fid": fid, "event": "moved"}))
                f.bids, f.error = p.flows[fid], None
                if first:
                    out += self._flow_done(h, f, True, None, now)
                continue
            words = f"the home agent refused flow binding {fid}: {wire.FID_STATUS.get(status, 'status')} ({status})"
            f.error = words
            out.append(Log("WARNING", f"{h.hoa}: {words}"))
            out += self._flow_done(h, f, False, words, now)
            if f.bids is None:
                del h.flows[fid]
        self.rebuild_upstream()
        return out

    def flows_refused(self, h, p, reason: str, now: float) -> None:
        """The whole BU was refused: new flows it carried are dropped (their requests end later in words)."""
        for fid in list(p.flows):
            f = h.flows.get(fid)
            if f is not None and f.bids is None:
                del h.flows[fid]

    def _flow_done(self, h, f: MnFlow, ok: bool, reason: str | None, now: float) -> list:
        if f.request is None:
            return []
        rid, f.request = f.request, None
        return [FlowDone(rid, h.hoa, f.fid, ok, (now - f.requested_at) * 1000, f.uplinks, reason),
                Changed("flows", {"hoa": h.hoa, "fid": f.fid, "ok": ok})]

    def flow_request_deadline(self) -> float:
        """When the oldest unanswered flow request times out (core clock), inf when none."""
        return min((f.requested_at + FLOW_REQUEST_TIMEOUT for h in self.hoas.values() for f in h.flows.values()
                    if f.request is not None), default=float("inf"))

    def expire_flow_requests(self, now: float) -> list:
        """Flow requests unanswered for :data:`FLOW_REQUEST_TIMEOUT` s end (the change stays asked for: a
        later Binding Acknowledgement still applies it)."""
        out: list = []
        for h in self.hoas.values():
            for f in h.flows.values():
                if f.request is not None and now - f.requested_at >= FLOW_REQUEST_TIMEOUT:
                    out += self._flow_done(h, f, False, f"no Binding Acknowledgement within "
                                                        f"{FLOW_REQUEST_TIMEOUT:g} s (still asked for)", now)
        return out

    # ------------------------------------------------------------------ upstream
    def rebuild_upstream(self) -> None:
        """Recompute each HoA's upstream flow table from the flows it wants now (used at once: upstream is
        ours to choose; the HA takes a frame from any registered path)."""
        for h in self.hoas.values():
            if not self.mcoa or not h.paths:
                h.up_table, h.simple_up = FlowTable(), True
                continue
            target = h.target()
            paths = self.wanted_paths(h, target) if target in self.uplinks else tuple(
                (mp.bid, mp.ifindex, mp.family, mp.coa, mp.priority) for mp in h.paths.values())
            flows = self.wanted_flows(h, paths)
            h.up_table = FlowTable([FlowBinding(fid, h.flows[fid].priority, bids, h.flows[fid].selector)
                                    for fid, bids in flows.items()])
            shared = sum(1 for n, w in self.weights.items() if w > 0) >= 2
            h.simple_up = len(h.paths) <= 1 and not flows and not shared

    def upstream_paths(self, h, packet: bytes) -> list:
        """The paths (objects with ``ifindex`` and ``family``) one upstream packet of ``h`` goes on."""
        if h.up_table.bindings:
            bids = h.up_table.lookup_packet(packet, upstream=True)
            if bids is not None:
                out = [mp for b in bids if (mp := h.paths.get(b)) is not None and mp.ifindex in self.uplinks
                       and self.usable(self.uplinks[mp.ifindex])]
                if out:
                    return out
        key = packet_key(packet) if self.weights else None
        if key is not None and key[3] >= 0:
            mp = self._shared_path(h, key)
            if mp is not None:
                return [mp]
        return [h.bound]

    def _shared_path(self, h, key) -> MnPath | None:
        """Load sharing: a flow's path, chosen at its first packet and kept (never the packets of one flow on
        two paths). A new flow goes to the path whose share of flows is lowest against its weight (weighted
        least-count: four flows over two equal uplinks are two and two, where a hash could give four and none)."""
        flow = (key[0], key[1], key[2], key[3], key[4])
        sticky = h.sticky
        bid = sticky.get(flow)
        mp = h.paths.get(bid) if bid is not None else None
        if mp is not None and mp.ifindex in self.uplinks and self.usable(self.uplinks[mp.ifindex]):
            sticky.move_to_end(flow)
            return mp
        best = None
        counts = h.share_counts
        for mp in h.paths.values():
            u = self.uplinks.get(mp.ifindex)
            w = self.weights.get(u.info.name, 0) if u is not None else 0
            if w > 0 and mp.priority < BID_PRI_UNUSED and self.usable(u):
                k = ((counts.get(mp.bid, 0) + 1) / w, mp.priority, mp.bid)
                if best is None or k < best[0]:
                    best = (k, mp)
        if best is None:
            return None
        mp = best[1]
        if bid is not None:  # its earlier path stopped working: it moves
            counts[bid] = max(0, counts.get(bid, 0) - 1)
        sticky[flow] = mp.bid
        counts[mp.bid] = counts.get(mp.bid, 0) + 1
        if len(sticky) > STICKY_FLOWS_MAX:
            _f, old = sticky.popitem(last=False)
            counts[old] = max(0, counts.get(old, 0) - 1)
        return mp

    # ------------------------------------------------------------------ requests
    def add_flow(self, request: int, hoa: str, selector: TrafficSelector, uplinks, now: float, wall: float) -> list:
        """Bind the flow ``selector`` (RFC 6088, written as the home agent sees it) of ``hoa`` to ``uplinks``
        (interface names; several = a copy on each). Ends with a :class:`FlowDone` (refused at once, with a
        reason in words, when it cannot work)."""
        names = tuple(uplinks)
        try:
            h = self._hoa(hoa)
        except ValueError as e:
            return [FlowDone(request, hoa, 0, False, 0.0, names, str(e))]
        why = self._flow_refusal(h, selector, names)
        if why is None:
            fid = next(f for f in range(1, 0x10000) if f not in h.flows)
            used = {f.priority for f in h.flows.values()}
            pri = next(p for p in range(fid, 0x10000) if p not in used)
            f = MnFlow(fid, pri, selector, names, requested_at=now, request=request)
            h.flows[fid] = f
            why = self._too_big(h)
            if why is not None:
                del h.flows[fid]
        if why is not None:
            return [FlowDone(request, h.hoa, 0, False, 0.0, names, why)]
        return [Changed("flows", {"hoa": h.hoa, "fid": fid, "event": "requested"})] + \
            self._evaluate(now, wall, "flow bindings changed")

    def change_flow(self, request: int, hoa: str, fid: int, uplinks, now: float, wall: float) -> list:
        """Move flow binding ``fid`` of ``hoa`` to ``uplinks`` (FlowDone when the home agent confirmed it)."""
        names = tuple(uplinks)
        try:
            h = self._hoa(hoa)
        except ValueError as e:
            return [FlowDone(request, hoa, fid, False, 0.0, names, str(e))]
        f = h.flows.get(fid)
        why = "no flow binding with that FID" if f is None or not f.uplinks else self._flow_refusal(h, f.selector,
                                                                                                  names, fid)
        if why is not None:
            return [FlowDone(request, h.hoa, fid, False, 0.0, names, why)]
        out = self._superseded(h, f, now)
        f.uplinks, f.requested_at, f.request = names, now, request
        out += self._evaluate(now, wall, "flow bindings changed")
        if h.pending is None and f.request == request:  # the home agent already has it this way: nothing to send
            out += self._flow_done(h, f, True, None, now)
        return out

    def remove_flow(self, request: int, hoa: str, fid: int, now: float, wall: float) -> list:
        try:
            h = self._hoa(hoa)
        except ValueError as e:
            return [FlowDone(request, hoa, fid, False, 0.0, (), str(e))]
        f = h.flows.get(fid)
        if f is None:
            return [FlowDone(request, h.hoa, fid, False, 0.0, (), "no flow binding with that FID")]
        out = self._superseded(h, f, now)
        if f.bids is None and (h.pending is None or fid not in h.pending.flows):  # nothing at the home agent
            del h.flows[fid]
            self.rebuild_upstream()
            return out + [FlowDone(request, h.hoa, fid, True, 0.0, (), None)]
        # bound, or on its way in the outstanding BU: the home agent must be told (after that BA, if need be)
        f.uplinks, f.requested_at, f.request = (), now, request
        return out + self._evaluate(now, wall, "flow bindings changed")

    def _superseded(self, h, f: MnFlow, now: float) -> list:
        """A new request on a flow ends the one still waiting on it, in words."""
        if f.request is None:
            return []
        rid, f.request = f.request, None
        return [FlowDone(rid, h.hoa, f.fid, False, (now - f.requested_at) * 1000, f.uplinks,
                         "superseded by a newer request on the same flow binding")]

    def set_weights(self, weights: dict[str, int], now: float, wall: float) -> list:
        """Load sharing: spread new flows over the uplinks by these weights (0 or absent = not used for
        sharing); an empty map turns it off. ValueError with a sentence when invalid."""
        for name, w in weights.items():
            if not isinstance(name, str) or isinstance(w, bool) or not isinstance(w, int) or not 0 <= w <= 1000:
                raise ValueError(f"weight of {name!r} must be an integer 0..1000, not {w!r}")
        self.weights = {n: w for n, w in weights.items() if w}
        for h in self.hoas.values():
            h.sticky.clear()
            h.share_counts.clear()
        self.rebuild_upstream()
        return [Changed("preferences", {"weights": dict(self.weights)})]

    def _flow_refusal(self, h, selector, names: tuple, fid: int | None = None) -> str | None:
        if not self.mcoa:
            return "flow bindings need several care-of addresses at once: set multiple_care_of = true in mn.toml"
        if not isinstance(selector, TrafficSelector):
            return "not a traffic selector"
        if not names:
            return "name at least one uplink"
        if len(set(names)) != len(names):
            return "an uplink is named twice"
        if len(names) > MAX_FLOW_UPLINKS:
            return f"a flow goes through at most {MAX_FLOW_UPLINKS} uplinks at once"
        for n in names:
            u = self.uplink_by_name(n)
            if u is None:
                return f"{n} is not an access interface of this node"
            if n in h.prefs.never:
                return f"{n} is marked 'never' for {h.hoa}"
        if not any(self.usable(self.uplink_by_name(n)) for n in names):
            return (f"{' and '.join(names)} cannot carry it now (no carrier, no care-of address, or the home agent "
                    "does not answer through it)")
        if selector.destination_address is not None and not _addr_in(h.hoa, selector.destination_address):
            return f"the selector's destination is not {h.hoa} (selectors are written as the home agent sees the flow)"
        for other in h.flows.values():
            if other.fid != fid and other.uplinks and other.selector == selector:
                return f"flow binding {other.fid} has the same selector"
        return None

    def _too_big(self, h) -> str | None:
        """Why the HoA's whole flow state does not fit in one Binding Update, or None."""
        target = h.target() or next(iter(self.uplinks), None)
        paths = self.wanted_paths(h, target) if target in self.uplinks else ()
        flows = {f.fid: (1,) for f in h.flows.values() if f.uplinks}
        opts = [wire.BindingIdentifier(p[0], 0, False, p[4], p[3]) for p in paths]
        opts += [wire.FlowIdentification(fid, h.flows[fid].priority, bids=tuple(range(1, max(2, len(paths)) + 1)),
                                         selector=h.flows[fid].selector) for fid in flows]
        msg = wire.BindingUpdate(1, wire.BU_A | wire.BU_H, 1, options=tuple(opts) + (
            wire.ReplayProtection(1), wire.VendorSpecific(0, 1, bytes(23))))
        try:
            wire.encode_authenticated(msg, h.hoa16, self.ha_home, coa=None, key=self.key, spi=self.spi,
                                      identity=self.identity, hoa=h.hoa16)
        except wire.WireError:
            return (f"{h.hoa} cannot hold more flow bindings: the node's whole flow state must fit in one "
                    f"Binding Update of at most {_MAX_MH} bytes ({len(flows) - 1} fit); remove one first")
        return None

    def flows_view(self) -> list[dict]:
        """One dict per flow binding: ``hoa``, ``fid``, ``priority``, ``selector`` (words), ``match`` (the selector
        as JSON, :mod:`mhgui.engine.flowspec`), ``uplinks``,
        ``bids`` (confirmed, or None), ``state`` (bound, waiting-ack, removing, refused), ``error``."""
        out = []
        for h in self.hoas.values():
            for f in sorted(h.flows.values(), key=lambda f: f.priority):
                state = ("removing" if not f.uplinks else "waiting-ack" if f.request is not None or f.bids is None
                         else "refused" if f.error else "bound")
                ifaces = {mp.bid: (self.uplinks[mp.ifindex].info.name if mp.ifindex in self.uplinks else None)
                          for mp in h.paths.values()}
                out.append({"hoa": h.hoa, "fid": f.fid, "priority": f.priority, "selector": f.selector.describe(),
                            "match": selector_to_json(f.selector),
                            "uplinks": list(f.uplinks), "bids": list(f.bids) if f.bids else None,
                            "bound_to": [ifaces.get(b) for b in f.bids] if f.bids else [],
                            "state": state, "error": f.error})
        return out


def _addr_in(addr: str, rng: tuple[str, str]) -> bool:
    a = ipaddress.IPv6Address(addr)
    return ipaddress.IPv6Address(rng[0]) <= a <= ipaddress.IPv6Address(rng[1])

