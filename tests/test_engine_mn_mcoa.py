"""Mobile node and home agent cores with several care-of addresses (RFC 5648) and flow bindings (RFC 6089),
end to end through tests/enginesim.py: registration of both uplinks, one flow moved, bicast, per-BID
failover and return, refusals, load sharing."""

from __future__ import annotations

import struct

from mhgui.engine import wire
from mhgui.engine.mn import UplinkInfo
from mhgui.engine.mn_actions import FlowDone, SendOn
from mhgui.engine.selectors import TrafficSelector

from enginesim import CN, HOA, HOA16, OUTER, UP0, UP1, Sim


def tcp(src, dst, sport, dport, payload=b"x") -> bytes:
    seg = struct.pack(">HH", sport, dport) + bytes(16) + payload
    return bytes([0x60, 0, 0, 0]) + len(seg).to_bytes(2, "big") + bytes([6, 64]) + wire.addr16(src) + \
        wire.addr16(dst) + seg


def flow(port: int) -> TrafficSelector:
    """The connection HOA:port <-> CN:443, as the home agent sees it."""
    return TrafficSelector(source_address=CN, destination_address=HOA, source_port=443, destination_port=port,
                           next_header=6)


def started(**kw) -> Sim:
    sim = Sim(mcoa=True, **kw)
    sim.start()
    sim.advance(0.5)
    return sim


def done(sim: Sim) -> list[FlowDone]:
    return [e for e in sim.events if isinstance(e, FlowDone)]


def up_paths(sim: Sim, packet: bytes) -> list[int]:
    """The uplinks (ifindex) an upstream packet leaves on."""
    before = len(sim.wire_log)
    sim.run(sim.mn.tun_packet(packet, sim.t))
    return [i for d, i, _p in sim.wire_log[before:] if d == "up"]


def down_paths(sim: Sim, packet: bytes) -> list[int]:
    before = len(sim.wire_log)
    sim.run([("ha", a) for a in sim.ha.tun_packet(packet, sim.t)])
    return [i for d, i, _p in sim.wire_log[before:] if d == "down"]


def test_both_uplinks_registered_in_one_bulk_binding_update():
    sim = started()
    [bu] = [m for d, _i, m in sim.signalling("up") if isinstance(m, wire.BindingUpdate)]
    bids = bu.options_of(wire.BindingIdentifier)
    assert [(b.coa, b.priority) for b in bids] == [(UP0.coa6, 1), (UP1.coa4, 2)]
    assert bu.option(wire.AlternateCareOf) is None
    e = sim.ha.cache[HOA16]
    assert e.mcoa and {p.coa: p.peer for p in e.paths.values()} == {UP0.coa6: OUTER[2], UP1.coa4: OUTER[3]}
    assert e.paths[bids[1].bid].nat  # learnt from the keepalive the node sent on up1 at once
    assert set(sim.mn.hoas[HOA16].paths) == {b.bid for b in bids}
    assert up_paths(sim, tcp(HOA, CN, 50000, 443)) == [2] and down_paths(sim, tcp(CN, HOA, 443, 50000)) == [2]


def test_move_one_connection_the_other_stays():
    sim = started()
    sim.run(sim.mn.add_flow(7, HOA, flow(50000), ["up1"], sim.t, sim.mn_wall))
    [d] = done(sim)
    assert d.confirmed and d.request == 7 and d.fid == 1, d
    assert up_paths(sim, tcp(HOA, CN, 50000, 443)) == [3] and down_paths(sim, tcp(CN, HOA, 443, 50000)) == [3]
    assert up_paths(sim, tcp(HOA, CN, 50001, 443)) == [2] and down_paths(sim, tcp(CN, HOA, 443, 50001)) == [2]
    fid_opt = [m for d, _i, m in sim.signalling("up") if isinstance(m, wire.BindingUpdate)][-1].option(
        wire.FlowIdentification)
    assert fid_opt.selector == flow(50000) and fid_opt.bids == (sim.mn.bid_of(3),)
    view = sim.mn.flows_view()
    assert view[0]["state"] == "bound" and view[0]["bound_to"] == ["up1"]
    sim.run(sim.mn.remove_flow(8, HOA, 1, sim.t, sim.mn_wall))
    assert done(sim)[-1].confirmed and not sim.ha.cache[HOA16].flows.bindings and sim.mn.flows_view() == []
    assert up_paths(sim, tcp(HOA, CN, 50000, 443)) == [2] and down_paths(sim, tcp(CN, HOA, 443, 50000)) == [2]


def test_bicast_both_ways_each_packet_delivered_once():
    sim = started()
    sim.run(sim.mn.add_flow(1, HOA, flow(5060), ["up0", "up1"], sim.t, sim.mn_wall))
    assert done(sim)[-1].confirmed
    sim.delivered.clear()
    assert sorted(up_paths(sim, tcp(HOA, CN, 5060, 443, b"voice"))) == [2, 3]
    assert sim.delivered == [tcp(HOA, CN, 5060, 443, b"voice")]
    sim.tun.clear()
    assert sorted(down_paths(sim, tcp(CN, HOA, 443, 5060, b"voice"))) == [2, 3]
    assert sim.tun == [tcp(CN, HOA, 443, 5060, b"voice")]
    # the application's own duplicate is a new packet: both arrive
    sim.run(sim.mn.tun_packet(tcp(HOA, CN, 5060, 443, b"voice"), sim.t))
    assert len(sim.delivered) == 2
    # one uplink cut mid-stream: nothing lost
    sim.cut.add(3)
    for i in range(20):
        sim.run(sim.mn.tun_packet(tcp(HOA, CN, 5060, 443, bytes([i])), sim.t))
    assert len(sim.delivered) == 22


def test_when_an_uplink_dies_only_its_flows_move_in_one_bu_and_return():
    sim = started()
    sim.run(sim.mn.add_flow(1, HOA, flow(50000), ["up1"], sim.t, sim.mn_wall))
    n_bu = len([m for _d, _i, m in sim.signalling("up") if isinstance(m, wire.BindingUpdate)])
    sim.set_uplink(UplinkInfo(3, "up1", False, coa4="192.0.2.2", mtu=1500))  # carrier lost
    bus = [m for _d, _i, m in sim.signalling("up") if isinstance(m, wire.BindingUpdate)]
    assert len(bus) == n_bu + 1  # one BU
    last = bus[-1]
    bid0, bid1 = sim.mn.bid_of(2), sim.mn.bid_of(3)
    assert last.option(wire.FlowIdentification).bids == (bid0,)
    assert {(b.bid, b.priority) for b in last.options_of(wire.BindingIdentifier)} == {(bid0, 1), (bid1, 127)}
    assert down_paths(sim, tcp(CN, HOA, 443, 50000)) == [2] and up_paths(sim, tcp(HOA, CN, 50000, 443)) == [2]
    assert sim.mn.flows_view()[0]["uplinks"] == ["up1"]  # the user's wish stays
    sim.set_uplink(UP1)  # back
    sim.advance(1.0)
    assert down_paths(sim, tcp(CN, HOA, 443, 50000)) == [3] and up_paths(sim, tcp(HOA, CN, 50000, 443)) == [3]


def test_flow_refusals_say_why():
    sim = started()
    sim.run(sim.mn.add_flow(1, HOA, flow(1), ["wlan9"], sim.t, sim.mn_wall))
    sim.run(sim.mn.add_flow(2, HOA, flow(2), [], sim.t, sim.mn_wall))
    sim.run(sim.mn.add_flow(3, HOA, TrafficSelector(destination_address="2001:db8:10::99"), ["up0"], sim.t,
                            sim.mn_wall))
    reasons = [d.reason for d in done(sim)]
    assert "wlan9 is not an access interface" in reasons[0] and "at least one" in reasons[1]
    assert "not 2001:db8:10::42" in reasons[2]
    single = Sim()
    single.start()
    single.run(single.mn.add_flow(4, HOA, flow(4), ["up0"], single.t, single.mn_wall))
    assert "multiple_care_of" in [e for e in single.events if isinstance(e, FlowDone)][0].reason


def test_the_per_node_limit_is_one_binding_update():
    sim = started()
    n = 0
    while True:
        sim.run(sim.mn.add_flow(100 + n, HOA, flow(20000 + n), ["up1"], sim.t, sim.mn_wall))
        sim.advance(0.15)  # the home agent takes 10 registrations a second from one node
        [last] = [d for d in done(sim) if d.request == 100 + n]
        if not last.confirmed:
            break
        n += 1
        assert n < 200
    assert "2048 bytes" in last.reason and f"({n} fit)" in last.reason
    assert len(sim.ha.cache[HOA16].flows.bindings) == n  # nothing else changed
    assert down_paths(sim, tcp(CN, HOA, 443, 20000)) == [3]


def test_a_home_agent_refusal_of_one_flow_leaves_the_others():
    sim = started()
    sim.run(sim.mn.add_flow(1, HOA, flow(1000), ["up1"], sim.t, sim.mn_wall))
    import mhgui.engine.ha_binding as hb
    old = hb.MAX_FLOW_BINDINGS
    hb.MAX_FLOW_BINDINGS = 1
    try:
        sim.run(sim.mn.add_flow(2, HOA, flow(1001), ["up1"], sim.t, sim.mn_wall))
    finally:
        hb.MAX_FLOW_BINDINGS = old
    d = done(sim)[-1]
    assert not d.confirmed and "(129)" in d.reason
    assert [f["fid"] for f in sim.mn.flows_view()] == [1] and set(sim.ha.cache[HOA16].flows.bindings) == {1}


def test_load_sharing_spreads_flows_never_the_packets_of_one():
    sim = started()
    sim.run(sim.mn.set_weights({"up0": 1, "up1": 1}, sim.t, sim.mn_wall))
    seen = {}
    for port in range(40000, 40064):
        for _ in range(3):
            paths = up_paths(sim, tcp(HOA, CN, port, 443))
            assert len(paths) == 1
            seen.setdefault(port, set()).update(paths)
    assert all(len(v) == 1 for v in seen.values())
    counts = [sum(1 for v in seen.values() if v == {i}) for i in (2, 3)]
    assert counts == [32, 32], counts  # equal weights: half the flows each
    for port, v in seen.items():  # the home agent sends each flow's replies the way its upstream came
        assert down_paths(sim, tcp(CN, HOA, 443, port)) == list(v)
    sim.run(sim.mn.set_weights({}, sim.t, sim.mn_wall))
    assert up_paths(sim, tcp(HOA, CN, 40001, 443)) == [2]
    sim.run(sim.mn.set_weights({"up0": 1, "up1": 3}, sim.t, sim.mn_wall))
    got = [up_paths(sim, tcp(HOA, CN, port, 443))[0] for port in range(30000, 30040)]
    assert (got.count(2), got.count(3)) == (10, 30)  # by weight
    sim.set_uplink(UplinkInfo(3, "up1", False, coa4="192.0.2.2", mtu=1500))  # its flows move, each one stays put
    assert all(up_paths(sim, tcp(HOA, CN, port, 443)) == [2] for port in range(30000, 30040))


def test_a_flow_removed_while_its_bu_is_out_is_removed_at_the_home_agent_too():
    sim = started()
    held = []
    for a in sim.mn.add_flow(1, HOA, flow(50000), ["up1"], sim.t, sim.mn_wall):  # the BU reaches the HA ...
        if isinstance(a, SendOn):
            held += [x for x in sim.ha.datagram(a.payload, OUTER[a.ifindex], sim.t, sim.wall)]
        else:
            sim.events.append(a)
    assert 1 in sim.ha.cache[HOA16].flows.bindings
    sim.run(sim.mn.remove_flow(2, HOA, 1, sim.t, sim.mn_wall))  # ... and the user removes it before the BA
    sim.run([("ha", x) for x in held])  # now the BA
    sim.advance(0.5)
    ends = {d.request: d for d in done(sim)}
    assert not ends[1].confirmed and "superseded" in ends[1].reason
    assert ends[2].confirmed
    assert not sim.ha.cache[HOA16].flows.bindings and sim.mn.flows_view() == []
    assert down_paths(sim, tcp(CN, HOA, 443, 50000)) == [2]


def test_a_second_request_on_a_flow_ends_the_first_in_words():
    sim = started()
    sim.run(sim.mn.add_flow(1, HOA, flow(50000), ["up1"], sim.t, sim.mn_wall))
    sim.lose_bus = True
    sim.run(sim.mn.change_flow(2, HOA, 1, ["up0"], sim.t, sim.mn_wall))
    sim.run(sim.mn.change_flow(3, HOA, 1, ["up0", "up1"], sim.t, sim.mn_wall))
    sim.lose_bus = False
    sim.advance(3.0)
    ends = {d.request: d for d in done(sim)}
    assert not ends[2].confirmed and "superseded" in ends[2].reason
    assert ends[3].confirmed and sim.mn.flows_view()[0]["bound_to"] == ["up0", "up1"]


def test_a_flow_names_at_most_four_uplinks():
    sim = started()
    sim.run(sim.mn.add_flow(1, HOA, flow(1), ["up0", "up1", "a", "b", "c"], sim.t, sim.mn_wall))
    assert "at most 4" in done(sim)[0].reason


def test_a_rebind_changes_the_default_path_in_one_bu_and_keeps_both():
    from mhgui.engine.mn import RebindDone
    sim = started()
    n_bu = len([m for _d, _i, m in sim.signalling("up") if isinstance(m, wire.BindingUpdate)])
    sim.run(sim.mn.rebind(9, HOA, "up1", sim.t, sim.mn_wall))
    [d] = [e for e in sim.events if isinstance(e, RebindDone)]
    assert d.confirmed and d.interface == "up1"
    bus = [m for _d, _i, m in sim.signalling("up") if isinstance(m, wire.BindingUpdate)]
    assert len(bus) == n_bu + 1
    assert [(b.coa, b.priority) for b in bus[-1].options_of(wire.BindingIdentifier)] == [(UP1.coa4, 1), (UP0.coa6, 2)]
    assert down_paths(sim, tcp(CN, HOA, 443, 1)) == [3] and up_paths(sim, tcp(HOA, CN, 1, 443)) == [3]
    assert len(sim.ha.cache[HOA16].paths) == 2


def test_a_flow_on_a_dead_uplink_is_refused_a_change_needing_no_bu_ends_at_once_and_watchers_hear_of_moves():
    sim = started()
    sim.run(sim.mn.add_flow(1, HOA, flow(50000), ["up1"], sim.t, sim.mn_wall))
    sim.events.clear()
    sim.set_uplink(UplinkInfo(3, "up1", False, coa4="192.0.2.2", mtu=1500))  # carrier lost: the flow moves to up0
    assert any(getattr(e, "what", None) == "flows" and e.detail.get("event") == "moved" for e in sim.events)
    sim.run(sim.mn.change_flow(2, HOA, 1, ["up1"], sim.t, sim.mn_wall))
    d = done(sim)[-1]
    assert not d.confirmed and "cannot carry it now" in d.reason
    n_bu = len([m for _d, _i, m in sim.signalling("up") if isinstance(m, wire.BindingUpdate)])
    sim.run(sim.mn.change_flow(3, HOA, 1, ["up0", "up1"], sim.t, sim.mn_wall))  # up1 back later; up0 already
    d = done(sim)[-1]
    assert d.request == 3 and d.confirmed and d.elapsed_ms == 0.0  # no Binding Update needed: answered at once
    assert len([m for _d, _i, m in sim.signalling("up") if isinstance(m, wire.BindingUpdate)]) == n_bu
    sim.set_uplink(UP1)
    sim.advance(1.0)
    assert sorted(down_paths(sim, tcp(CN, HOA, 443, 50000))) == [2, 3]  # both, now that up1 works
