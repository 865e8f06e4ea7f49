"""One home address's entry in the home agent's binding cache, with its care-of addresses and flows.

Pure (sans-I/O), used by :mod:`mhgui.engine.ha`. RFC 6275 §9.1 gives one entry
per home address; RFC 5648 (MCoA) one per (home address, BID): here one
:class:`HaBinding` per home address holds a :class:`HaPath` per BID (BID 0 for
a registration without a Binding Identifier option) and one data session. RFC
6089 flow bindings steer flows to BIDs (:class:`~mhgui.engine.selectors.FlowTable`).

Downstream choice, per packet (docs/engine-design.md, "Several care-of addresses"):

1. a flow binding that matches (the lowest FID-PRI) → its BIDs, each live one gets
   a copy of the same sealed frame (bicast / n-cast);
2. otherwise the BID on which this flow's authenticated upstream last arrived
   (load sharing follows the mobile node's choice, with no signalling per flow);
3. otherwise the default path: the live BID with the lowest BID-PRI, then lowest BID.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field

from . import dataplane as dp
from .selectors import FlowBinding, FlowTable, five_tuple, packet_key

__all__ = ["HaBinding", "HaPath", "LEARNED_FLOWS_MAX", "MAX_FLOW_BINDINGS", "MAX_FLOW_BIDS", "MAX_PATHS"]

#: flow bindings one home address may hold (RFC 6089 §5.2.1 lets the HA refuse more: status 129)
MAX_FLOW_BINDINGS = 128
#: care-of addresses (BIDs) of one home address: each may get a copy of a packet (RFC 5648 lets us refuse)
MAX_PATHS = 8
#: BIDs one flow binding may name (n-casting, RFC 6089 §3.2): copies per packet are bounded
MAX_FLOW_BIDS = 4
#: BID-PRI the mobile node gives a path it stopped using (mhgui.engine.mn_flows): only flows bound to it go there
BID_PRI_UNUSED = 127
#: flows whose upstream arrival path is remembered per home address (least recently used go first)
LEARNED_FLOWS_MAX = 4096


@dataclass
class HaPath:
    """One care-of address of a home address (RFC 5648: one BID). ``peer``: the outer (address, port)
    frames go to, None until an authenticated packet arrived on that path; ``priority``: BID-PRI (lower is
    preferred); times on the core's clock (s)."""
    bid: int
    coa: str
    peer: tuple[str, int] | None
    lifetime: int
    expires: float
    nat: bool
    priority: int = 0
    registered_at: float = 0.0
    last_counter: int = 0  # the newest data counter that came through this path (its outer address moves only newer)


@dataclass
class HaBinding:
    """The binding cache entry of one home address. ``paths``: BID → :class:`HaPath`; ``mcoa``: registered
    with Binding Identifier options; ``flows``: its flow bindings; ``sender``/``receiver``/``index``: the data
    session of the latest accepted registration. ``coa``, ``peer``, ``lifetime``, ``expires``, ``nat`` are
    those of the default path."""
    hoa: str
    identity: str
    seq: int
    registered_at: float
    sender: dp.Sender = field(repr=False)
    receiver: dp.Receiver = field(repr=False)
    index: int = 0
    paths: dict[int, HaPath] = field(default_factory=dict)
    mcoa: bool = False
    flows: FlowTable = field(default_factory=FlowTable, repr=False)
    learned: collections.OrderedDict = field(default_factory=collections.OrderedDict, repr=False)

    # --------------------------------------------------------------- the default path
    def default_path(self) -> HaPath | None:
        """The live path with the lowest BID-PRI (then BID); one demoted to 127 only when nothing else is left."""
        best = None
        for p in self.paths.values():
            if p.peer is not None and (best is None or (p.priority, p.bid) < (best.priority, best.bid)):
                best = p
        return best

    @property
    def coa(self) -> str:
        p = self.default_path() or next(iter(self.paths.values()), None)
        return p.coa if p else ""

    @property
    def peer(self) -> tuple[str, int] | None:
        p = self.default_path()
        return p.peer if p else None

    @property
    def lifetime(self) -> int:
        return max((p.lifetime for p in self.paths.values()), default=0)

    @property
    def expires(self) -> float:
        return max((p.expires for p in self.paths.values()), default=0.0)

    @property
    def nat(self) -> bool:
        p = self.default_path()
        return bool(p and p.nat)

    @property
    def simple(self) -> bool:
        """One path and no flow bindings: every packet goes the same way (the fast path)."""
        return len(self.paths) == 1 and not self.flows.bindings

    # --------------------------------------------------------------- per packet
    def paths_for(self, packet: bytes, now: float) -> list[HaPath]:
        """The live paths a downstream packet (an inner IPv6 packet to this home address) goes on."""
        if self.simple:
            p = next(iter(self.paths.values()))
            return [p] if p.peer is not None and p.expires > now else []
        if self.flows.bindings:
            bids = self.flows.lookup_packet(packet)
            if bids is not None:
                out = [p for b in bids if (p := self.paths.get(b)) is not None and p.peer is not None
                       and p.expires > now]
                if out:
                    return out
        if self.learned and len(packet) >= 44:
            k = five_tuple(packet) or _key(packet)
            bid = self.learned.get(k[:5]) if k is not None and k[3] >= 0 else None
            if bid is not None:
                p = self.paths.get(bid)
                if p is not None and p.peer is not None and p.expires > now and p.priority < BID_PRI_UNUSED:
                    return [p]
        p = self.default_path()
        return [p] if p is not None and p.expires > now else []

    def learn_upstream(self, packet: bytes, peer: tuple[str, int], counter: int = 0) -> None:
        """An authenticated upstream packet (frame ``counter``) arrived from ``peer``: its path saw that counter,
        and its flow's downstream follows that path."""
        if len(self.paths) < 2:
            return
        path = next((p for p in self.paths.values() if p.peer == peer), None)
        if path is None:
            return
        if counter > path.last_counter:
            path.last_counter = counter
        key = _key(packet)
        if key is None or key[3] < 0:
            return
        bid = path.bid
        down = (key[0], key[2], key[1], key[4], key[3])  # the reply's five-tuple
        learned = self.learned
        if learned.get(down) != bid:
            learned[down] = bid
            if len(learned) > LEARNED_FLOWS_MAX:
                learned.popitem(last=False)
        else:
            learned.move_to_end(down)

    # --------------------------------------------------------------- flows
    def apply_flows(self, offered: list, summary: tuple[int, ...]) -> list[tuple[int, int, int, str]]:
        """Take a Binding Update's flow state (RFC 6089 §5.2): ``offered`` = its Flow Identification options
        (:class:`~mhgui.engine.wire.FlowIdentification`), ``summary`` = the FIDs of its Flow Summary. FIDs
        named in neither are removed; a refused option leaves that FID as it was. Returns
        [(fid, priority, status, words)] for the BA (status 0 = bound)."""
        old = self.flows.bindings
        new: dict[int, FlowBinding] = {}
        result = []
        summary = tuple(dict.fromkeys(summary))  # a FID named twice is answered once
        for fid in summary:
            if fid in old:
                new[fid] = old[fid]
            else:
                result.append((fid, 0, 132, "FID not found"))
        for o in offered:
            status, words = 0, "bound"
            fb = None
            if o.fid == 0:
                status, words = 130, "FID 0 is reserved"
            elif o.problem is not None:
                status, words = o.problem_status, o.problem
            elif o.bids is None or o.selector is None and o.fid not in old:
                status, words = 130, "a new flow binding needs a Binding Reference and a Traffic Selector"
            elif len(o.bids) > MAX_FLOW_BIDS or len(set(o.bids)) != len(o.bids):
                status, words = 129, f"a flow binding names at most {MAX_FLOW_BIDS} different BIDs"
            else:
                missing = [b for b in o.bids if b not in self.paths]
                if missing:
                    status, words = 131, f"BID {missing[0]} is not registered"
                else:
                    sel = o.selector if o.selector is not None else old[o.fid].selector
                    try:
                        fb = FlowBinding(o.fid, o.priority, o.bids, sel)
                    except ValueError as e:
                        status, words = 130, str(e)
            if fb is not None and len(new) >= MAX_FLOW_BINDINGS and o.fid not in new:
                fb, status, words = None, 129, f"more than {MAX_FLOW_BINDINGS} flow bindings for one home address"
            if fb is not None and any(f.fid_priority == fb.fid_priority and f.fid != fb.fid for f in new.values()):
                fb, status, words = None, 129, f"FID-PRI {fb.fid_priority} is used by another flow binding"
            if fb is not None:
                new[o.fid] = fb
            elif o.fid in old and o.fid not in new:
                new[o.fid] = old[o.fid]  # refused: the flow keeps its binding
            result.append((o.fid, o.priority, status, words))
        if new != old:
            self.flows.replace(new.values())
        return result


_key = packet_key
