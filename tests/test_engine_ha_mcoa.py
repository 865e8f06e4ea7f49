"""The home agent core with several care-of addresses (RFC 5648) and flow bindings (RFC 6089).

A mobile node written here from the wire codec alone (not mhgui's mobile node core) sends the Binding
Updates; the home agent's answers are decoded and its forwarding decisions checked packet by packet."""

from __future__ import annotations

import struct

import pytest

from mhgui.engine import dataplane as dp
from mhgui.engine import ha_binding, wire
from mhgui.engine.ha import BindingChanged, Deliver, HaNode, HomeAgentCore, Send
from mhgui.engine.selectors import TrafficSelector
from mhgui.engine.session import parse_session_option, session_option

from enginesim import HOA, HOA16, IDENTITY, KEY, SPI, seeded

HA_HOME = "2001:db8:10::1"
CN, CN2 = "2001:db8:c0::2", "2001:db8:c0::3"
COA1, COA2 = "2001:db8:a1::2", "192.0.2.2"
PEER1, PEER2 = (COA1, 40000), ("198.51.100.2", 40001)  # BID 2 is behind NAT44


def tcp(src, dst, sport, dport, payload=b"x") -> bytes:
    seg = struct.pack(">HH", sport, dport) + bytes(16) + payload
    return bytes([0x60, 0, 0, 0]) + len(seg).to_bytes(2, "big") + bytes([6, 64]) + wire.addr16(src) + \
        wire.addr16(dst) + seg


class Node:
    """A minimal MCoA mobile node built on the codec: BUs, the data session, keepalives."""

    def __init__(self) -> None:
        self.t, self.wall = 1000.0, 1_800_000_000.0
        self.ha = HomeAgentCore(address=HA_HOME, home_prefix="2001:db8:10::/64",
                                nodes=[HaNode(IDENTITY, frozenset({HOA16}), {SPI: KEY})],
                                start_wall=self.wall - 60, restart_counter=1, random=seeded(5))
        self.seq, self.ts = 0, int(self.wall * 2**32)
        self.sender = self.receiver = None
        self.sizes: list[tuple[int, int]] = []

    def bu(self, options, lifetime=150, peer=PEER1, coa=None, raw=False):
        self.seq += 1
        self.ts += 1
        nonce = bytes([self.seq]) * 16
        opts = list(options) + [wire.ReplayProtection(self.ts), session_option(nonce, 1000 + self.seq)]
        msg = wire.BindingUpdate(self.seq, wire.BU_A | wire.BU_H, lifetime // 4, options=tuple(opts))
        first = next((o for o in options if isinstance(o, wire.BindingIdentifier)), None)
        coa = coa or (first.coa if first is not None else COA1)
        mh = wire.encode_authenticated(msg, HOA16, wire.addr16(HA_HOME), coa=coa, key=KEY, spi=SPI,
                                       identity=IDENTITY, hoa=HOA16)
        pkt = wire.encode_packet(mh, HOA16, wire.addr16(HA_HOME))
        if raw:
            return pkt
        out = self.ha.datagram(pkt, peer, self.t, self.wall)
        sends = [a for a in out if isinstance(a, Send)]
        assert len(sends) == 1, out
        self.sizes.append((len(pkt), len(sends[0].payload)))
        src, dst, mh_ba = wire.decode_packet(sends[0].payload)
        ba = wire.decode_mh(mh_ba, src, dst)
        sess = parse_session_option(ba.option(wire.VendorSpecific))
        if sess is not None:
            up, down = dp.derive_keys(KEY, nonce, sess[0])
            self.sender, self.receiver = dp.Sender(up, sess[1]), dp.Receiver(down, 1000 + self.seq)
        return ba

    def up(self, packet, peer):
        return self.ha.datagram(self.sender.seal(packet), peer, self.t, self.wall)

    def keepalive(self, bid, peer):
        return self.ha.datagram(self.sender.seal(bid.to_bytes(2, "big"), dp.FRAME_KEEPALIVE), peer, self.t,
                                self.wall)

    def down(self, packet) -> list[tuple[str, int]]:
        """Where the home agent sends a packet for the home address (outer peers), checked to open."""
        out = self.ha.tun_packet(packet, self.t)
        frames = {a.payload for a in out}
        assert len(frames) <= 1  # sealed once, the same frame on every path
        return [a.peer for a in out]

    @property
    def entry(self):
        return self.ha.cache[HOA16]


def two_bids(node: Node, prio=(1, 2)):
    ba = node.bu([wire.BindingIdentifier(1, priority=prio[0], coa=COA1),
                  wire.BindingIdentifier(2, priority=prio[1], coa=COA2)])
    node.keepalive(2, PEER2)  # the NATed path's outer address comes from its first authenticated packet
    return ba


FLOW_A = TrafficSelector(source_address=CN, destination_address=HOA, source_port=443, destination_port=50000,
                         next_header=6)
FLOW_B = TrafficSelector(source_address=CN, destination_address=HOA, source_port=443, destination_port=50001,
                         next_header=6)


def fid(n, bids, sel=FLOW_A, pri=None):
    return wire.FlowIdentification(n, pri or n, bids=tuple(bids), selector=sel)


# ------------------------------------------------------------------ MCoA registration
def test_bulk_registration_of_two_care_of_addresses():
    node = Node()
    ba = node.bu([wire.BindingIdentifier(1, priority=1, coa=COA1), wire.BindingIdentifier(2, priority=2, coa=COA2)])
    assert ba.status == 0 and ba.lifetime * 4 == 148
    assert [(o.bid, o.status, o.priority, o.coa) for o in ba.options_of(wire.BindingIdentifier)] == \
        [(1, 0, 1, None), (2, 0, 2, None)]
    e = node.entry
    assert e.mcoa and set(e.paths) == {1, 2}
    assert e.paths[1].peer == PEER1 and e.paths[2].peer is None  # not seen yet on BID 2's uplink
    assert node.down(tcp(CN, HOA, 1, 2)) == [PEER1]
    out = node.keepalive(2, PEER2)
    assert any(isinstance(a, BindingChanged) for a in out)
    assert e.paths[2].peer == PEER2 and e.paths[2].nat and not e.paths[1].nat
    assert node.sizes[0][1] <= node.sizes[0][0]  # the BA is never longer than the BU


def test_default_path_follows_bid_priority():
    node = Node()
    two_bids(node, prio=(2, 1))
    assert node.down(tcp(CN, HOA, 1, 2)) == [PEER2]
    node.bu([wire.BindingIdentifier(1, priority=1, coa=COA1), wire.BindingIdentifier(2, priority=2, coa=COA2)])
    assert node.down(tcp(CN, HOA, 1, 2)) == [PEER1]  # one BU moves the default: no restart, no new CoA


def test_one_bid_deregistered_the_other_stays_and_each_expires_alone():
    node = Node()
    two_bids(node)
    node.bu([wire.BindingIdentifier(1)], lifetime=0)
    assert set(node.entry.paths) == {2} and node.down(tcp(CN, HOA, 1, 2)) == [PEER2]
    node.bu([wire.BindingIdentifier(1, priority=1, coa=COA1)], lifetime=40)  # BID 1 back, shorter lifetime
    assert set(node.entry.paths) == {1, 2}
    node.t += 41
    out = node.ha.tick(node.t)
    assert set(node.entry.paths) == {2} and any(isinstance(a, BindingChanged) for a in out)
    node.t += 200
    node.ha.tick(node.t)
    assert HOA16 not in node.ha.cache


@pytest.mark.parametrize("opts, status", [
    ([wire.BindingIdentifier(0, coa=COA1)], 164),
    ([wire.BindingIdentifier(1, coa=COA1), wire.BindingIdentifier(1, coa=COA2)], 164),
    ([wire.BindingIdentifier(1, coa=COA1), wire.BindingIdentifier(2)], 164),
])
def test_malformed_binding_identifiers_are_refused(opts, status):
    node = Node()
    ba = node.bu(opts)
    assert ba.status == status and HOA16 not in node.ha.cache


def test_mcoa_over_a_binding_without_bid_is_refused_the_other_way_replaces():
    node = Node()
    node.bu([wire.AlternateCareOf(COA1)])
    assert not node.entry.mcoa
    assert node.bu([wire.BindingIdentifier(1, coa=COA1)]).status == 165
    assert not node.entry.mcoa and set(node.entry.paths) == {0}
    node.bu([wire.AlternateCareOf(COA1)], lifetime=0)
    assert node.bu([wire.BindingIdentifier(1, coa=COA1)]).status == 0
    assert node.bu([wire.AlternateCareOf(COA1)]).status == 0  # a BU without BID replaces MCoA bindings
    assert not node.entry.mcoa and set(node.entry.paths) == {0}


def test_keepalive_naming_an_unknown_bid_or_replayed_moves_nothing():
    node = Node()
    two_bids(node)
    ka = node.sender.seal((7).to_bytes(2, "big"), dp.FRAME_KEEPALIVE)
    node.ha.datagram(ka, ("203.0.113.9", 1), node.t, node.wall)
    ka2 = node.sender.seal((2).to_bytes(2, "big"), dp.FRAME_KEEPALIVE)
    node.ha.datagram(ka2, PEER2, node.t, node.wall)
    node.ha.datagram(ka2, ("203.0.113.9", 1), node.t, node.wall)  # captured and replayed elsewhere
    assert node.entry.paths[2].peer == PEER2 and node.entry.paths[1].peer == PEER1


# ------------------------------------------------------------------ flow bindings
def test_a_flow_binding_moves_one_flow_and_leaves_the_others():
    node = Node()
    two_bids(node)
    ba = node.bu([wire.BindingIdentifier(1, priority=1, coa=COA1), fid(1, [2])])
    assert [(o.fid, o.status) for o in ba.options_of(wire.FlowIdentification)] == [(1, 0)]
    assert node.down(tcp(CN, HOA, 443, 50000)) == [PEER2]  # the bound flow
    assert node.down(tcp(CN, HOA, 443, 50001)) == [PEER1]  # another flow: the default path
    assert node.down(tcp(CN2, HOA, 443, 50000)) == [PEER1]


def test_bicast_one_sealed_frame_on_both_paths_and_upstream_copies_delivered_once():
    node = Node()
    two_bids(node)
    node.bu([wire.BindingIdentifier(1, priority=1, coa=COA1), fid(1, [1, 2])])
    out = node.ha.tun_packet(tcp(CN, HOA, 443, 50000, b"call"), node.t)
    assert sorted(a.peer for a in out) == sorted([PEER1, PEER2]) and len({a.payload for a in out}) == 1
    opened = [node.receiver.open(a.payload) for a in out]
    assert opened[0] is not None and opened[1] is None  # the second copy is a replay for the receiver
    frame = node.sender.seal(tcp(HOA, CN, 50000, 443, b"up"))
    got = node.ha.datagram(frame, PEER1, node.t, node.wall) + node.ha.datagram(frame, PEER2, node.t, node.wall)
    assert [a for a in got if isinstance(a, Deliver)] == [Deliver(tcp(HOA, CN, 50000, 443, b"up"))]
    dup = node.sender.seal(tcp(HOA, CN, 50000, 443, b"up"))  # the application's own duplicate: a new counter
    assert any(isinstance(a, Deliver) for a in node.ha.datagram(dup, PEER2, node.t, node.wall))


def test_flow_binding_refusals_say_why_and_change_nothing_else(monkeypatch):
    node = Node()
    two_bids(node)
    node.bu([wire.BindingIdentifier(1, priority=1, coa=COA1), fid(1, [2])])
    before = dict(node.entry.flows.bindings)
    bad_ts = wire.FlowIdentification(3, 3, problem="x", problem_status=130,
                                     raw_subs=b"\x02\x02\x00\x01\x03\x06\x02\x00" + struct.pack(">HH", 1 << 14, 0))
    v4_ts = wire.FlowIdentification(4, 4, raw_subs=b"\x02\x02\x00\x01\x03\x02\x01\x00", problem="x",
                                    problem_status=133)
    ba = node.bu([wire.BindingIdentifier(1, priority=1, coa=COA1), fid(1, [9]), fid(2, [7], FLOW_B),
                  bad_ts, v4_ts, fid(5, [1], FLOW_B, pri=1)])
    got = {o.fid: o.status for o in ba.options_of(wire.FlowIdentification)}
    assert got == {1: 131, 2: 131, 3: 130, 4: 133, 5: 129}  # FID-PRI 1 is FID 1's
    assert node.entry.flows.bindings == before  # FID 1 keeps BID 2; nothing was added
    assert node.down(tcp(CN, HOA, 443, 50000)) == [PEER2]
    monkeypatch.setattr(ha_binding, "MAX_FLOW_BINDINGS", 2)
    ba = node.bu([wire.BindingIdentifier(1, priority=1, coa=COA1), fid(1, [2]), fid(2, [1], FLOW_B),
                  fid(3, [1], TrafficSelector(source_port=22, next_header=6))])
    assert {o.fid: o.status for o in ba.options_of(wire.FlowIdentification)} == {1: 0, 2: 0, 3: 129}
    assert set(node.entry.flows.bindings) == {1, 2}


def test_the_bu_carries_the_whole_flow_state_summary_keeps_absent_removes():
    node = Node()
    two_bids(node)
    node.bu([wire.BindingIdentifier(1, priority=1, coa=COA1), fid(1, [2]), fid(2, [2], FLOW_B)])
    ba = node.bu([wire.BindingIdentifier(1, priority=1, coa=COA1), wire.FlowSummary((1, 9))])
    assert {o.fid: o.status for o in ba.options_of(wire.FlowIdentification)} == {9: 132}
    assert set(node.entry.flows.bindings) == {1}  # 2 was left out: removed
    assert node.down(tcp(CN, HOA, 443, 50001)) == [PEER1]
    node.bu([wire.BindingIdentifier(1, priority=1, coa=COA1)])
    assert not node.entry.flows.bindings and node.down(tcp(CN, HOA, 443, 50000)) == [PEER1]


def test_a_path_without_outer_address_gets_no_copy_and_a_flow_falls_back_to_default():
    node = Node()
    node.bu([wire.BindingIdentifier(1, priority=1, coa=COA1), wire.BindingIdentifier(2, priority=2, coa=COA2),
             fid(1, [2])])
    assert node.down(tcp(CN, HOA, 443, 50000)) == [PEER1]  # BID 2 not reachable yet: the default
    node.keepalive(2, PEER2)
    assert node.down(tcp(CN, HOA, 443, 50000)) == [PEER2]


# ------------------------------------------------------------------ load sharing: downstream follows upstream
def test_downstream_follows_the_path_of_the_flows_authenticated_upstream():
    node = Node()
    two_bids(node)
    node.up(tcp(HOA, CN, 50000, 443), PEER2)
    node.up(tcp(HOA, CN, 50001, 443), PEER1)
    assert node.down(tcp(CN, HOA, 443, 50000)) == [PEER2]
    assert node.down(tcp(CN, HOA, 443, 50001)) == [PEER1]
    assert node.down(tcp(CN, HOA, 443, 50002)) == [PEER1]  # no upstream seen: the default
    node.up(tcp(HOA, CN, 50000, 443), PEER1)  # the node moved that flow: its replies follow
    assert node.down(tcp(CN, HOA, 443, 50000)) == [PEER1]
    node.bu([wire.BindingIdentifier(2)], lifetime=0)  # the path it learnt is gone: the default
    node.up(tcp(HOA, CN, 50003, 443), PEER2)  # from an address no path has: learns nothing
    assert node.down(tcp(CN, HOA, 443, 50003)) == [PEER1]


def test_learned_flows_are_bounded(monkeypatch):
    monkeypatch.setattr(ha_binding, "LEARNED_FLOWS_MAX", 50)
    node = Node()
    two_bids(node)
    for port in range(1000, 1200):
        node.up(tcp(HOA, CN, port, 443), PEER2)
    assert len(node.entry.learned) == 50
    assert node.down(tcp(CN, HOA, 443, 1199)) == [PEER2] and node.down(tcp(CN, HOA, 443, 1000)) == [PEER1]


def test_replayed_bulk_binding_update_is_refused():
    node = Node()
    pkt = node.bu([wire.BindingIdentifier(1, coa=COA1), wire.BindingIdentifier(2, coa=COA2)], raw=True)
    first = node.ha.datagram(pkt, PEER1, node.t, node.wall)
    again = node.ha.datagram(pkt, ("203.0.113.9", 5), node.t, node.wall)
    assert any(isinstance(a, BindingChanged) for a in first)
    assert not any(isinstance(a, BindingChanged) for a in again)
    assert node.entry.paths[1].peer == PEER1


# ------------------------------------------------------------------ what one node may make the home agent do
def test_copies_are_bounded_one_per_outer_address_and_per_flow(monkeypatch):
    node = Node()
    opts = [wire.BindingIdentifier(b, priority=b, coa=COA1 if b == 1 else f"192.0.2.{b}") for b in range(1, 9)]
    node.bu(opts)
    for b in range(2, 9):  # every other path's outer address is one victim host (other ports)
        node.keepalive(b, ("203.0.113.66", 1000 + b))
    ba = node.bu(opts[:1] + [fid(1, range(1, 9))])
    assert {o.fid: o.status for o in ba.options_of(wire.FlowIdentification)} == {1: 129}  # at most 4 BIDs
    node.bu(opts[:1] + [fid(1, [2, 3, 4, 5])])
    assert node.down(tcp(CN, HOA, 443, 50000)) == [("203.0.113.66", 1002)]  # one copy per host, not four
    assert node.bu(opts + [wire.BindingIdentifier(9, priority=9, coa="192.0.2.9")]).status == 130  # 9 paths: no
    assert len(node.entry.paths) == 8


def test_a_flow_summary_too_long_to_answer_gets_an_answer_not_a_crash():
    node = Node()
    two_bids(node)
    summary = [wire.FlowSummary(tuple(range(1000 + 127 * i, 1000 + 127 * (i + 1)))) for i in range(3)]
    ba = node.bu([wire.BindingIdentifier(1, priority=1, coa=COA1)] + summary)
    assert ba.status == 0 and node.sizes[-1][1] <= node.sizes[-1][0]
    got = ba.options_of(wire.FlowIdentification)
    assert got and all(o.status == 132 for o in got)  # as many refusals as fit, none claimed bound


def test_a_path_learns_its_outer_address_while_data_overtakes_its_hello():
    node = Node()
    node.bu([wire.BindingIdentifier(1, priority=1, coa=COA1), wire.BindingIdentifier(2, priority=2, coa=COA2)])
    hello = node.sender.seal((2).to_bytes(2, "big"), dp.FRAME_KEEPALIVE)
    for i in range(20):  # upstream data on the fast path, sealed after the hello
        node.up(tcp(HOA, CN, 50000, 443, bytes([i])), PEER1)
    node.ha.datagram(hello, PEER2, node.t, node.wall)
    assert node.entry.paths[2].peer == PEER2
    # once known, the path moves only on a keepalive newer than what came through it
    old = node.sender.seal((2).to_bytes(2, "big"), dp.FRAME_KEEPALIVE)
    node.up(tcp(HOA, CN, 50001, 443), PEER2)
    node.ha.datagram(old, ("203.0.113.9", 7), node.t, node.wall)
    assert node.entry.paths[2].peer == PEER2


def test_load_shared_flows_keep_their_path_across_a_refresh():
    node = Node()
    two_bids(node)
    node.up(tcp(HOA, CN, 50000, 443), PEER2)
    node.bu([wire.BindingIdentifier(1, priority=1, coa=COA1), wire.BindingIdentifier(2, priority=2, coa=COA2)])
    assert node.down(tcp(CN, HOA, 443, 50000)) == [PEER2]
    node.bu([wire.BindingIdentifier(1, priority=1, coa=COA1), wire.BindingIdentifier(2, priority=127, coa=COA2)])
    assert node.down(tcp(CN, HOA, 443, 50000)) == [PEER1]  # its path was given up: the default
