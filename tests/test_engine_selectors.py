"""Traffic selectors and flow bindings (RFC 6088/6089): byte layout against engine.md §4, round trips,
strict decoding, the Flow Identification option's per-flow problems, and FlowTable against a naive oracle."""

from __future__ import annotations

import ipaddress
import random
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mhgui.engine import selectors as S
from mhgui.engine import wire as w

HOA, HA, CN = "2001:db8:10::42", "2001:db8:10::1", "2001:db8:c::5"


def _pair(strategy):
    return st.one_of(st.none(), strategy.map(lambda v: (v, v)),
                     st.tuples(strategy, strategy).map(lambda p: (min(p), max(p))))


_addr = st.binary(min_size=16, max_size=16).map(lambda b: ipaddress.IPv6Address(b))


def _addr_pair():
    return st.one_of(st.none(), _addr.map(lambda a: (a.compressed, a.compressed)),
                     st.tuples(_addr, _addr).map(lambda p: (min(p).compressed, max(p).compressed)))


selectors = st.builds(
    S.TrafficSelector, source_address=_addr_pair(), destination_address=_addr_pair(),
    spi=_pair(st.integers(0, 0xFFFFFFFF)), flow_label=_pair(st.integers(0, 0xFFFFF)),
    source_port=_pair(st.integers(0, 0xFFFF)), destination_port=_pair(st.integers(0, 0xFFFF)),
    traffic_class=_pair(st.integers(0, 255)), next_header=st.one_of(st.none(), st.sampled_from([(6, 6), (17, 17)])))
FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ------------------------------------------------------------------ byte layout (engine.md §4, RFC 6088 §3.2)
def test_flow_identification_byte_layout():
    ts = S.TrafficSelector(source_address=CN, destination_address=HOA, source_port=443,
                           destination_port=(50000, 50010), next_header=6)
    opt = w.FlowIdentification(0x0102, 0x0304, bids=(1, 2), selector=ts)
    mh = w.encode_mh(w.BindingUpdate(1, w.BU_A | w.BU_H, 10, (opt,)), HOA, HA)
    i = mh.index(bytes((45,)), 12)  # after the BU's 6-octet body, any padding
    assert i % 2 == 0  # alignment 2n
    length = mh[i + 1]
    d = mh[i + 2:i + 2 + length]
    assert d[0:2] == b"\x01\x02" and d[2:4] == b"\x03\x04"  # FID, FID-PRI
    assert d[4] == 0 and d[5] == 0  # reserved, status
    assert d[6:8] == b"\x02\x04" and d[8:12] == b"\x00\x01\x00\x02"  # Binding Reference: BIDs 1, 2
    assert d[12] == 3 and d[14] == 2 and d[15] == 0  # Traffic Selector: TS format 2 (IPv6), reserved
    sel = d[16:16 + d[13] - 2]
    flags = struct.unpack(">H", sel[:2])[0]
    # A (start src), C (start dst), I (start sport), K + L (dport range), O (start next header)
    assert flags == (1 << 15) | (1 << 13) | (1 << 7) | (1 << 5) | (1 << 4) | (1 << 1)
    assert sel[2:4] == b"\0\0"
    body = sel[4:]
    assert body[0:16] == ipaddress.IPv6Address(CN).packed and body[16:32] == ipaddress.IPv6Address(HOA).packed
    assert body[32:34] == (443).to_bytes(2, "big")
    assert body[34:38] == (50000).to_bytes(2, "big") + (50010).to_bytes(2, "big")
    assert body[38] == 6 and len(body) == 39
    assert length == 16 + len(sel) - 2 + 2  # nothing after the selector
    assert w.decode_mh(mh, HOA, HA).options == (opt,)


def test_flow_summary_byte_layout():
    mh = w.encode_mh(w.BindingUpdate(1, 0, 10, (w.FlowSummary((7, 0x1234)),)), HOA, HA)
    i = mh.index(bytes((44, 4)), 12)
    assert mh[i + 2:i + 6] == b"\x00\x07\x12\x34" and i % 2 == 0


def test_flow_label_is_three_octets_and_spi_four():
    ts = S.TrafficSelector(spi=(1, 2), flow_label=0xABCDE, traffic_class=(1, 9))
    b = S.encode_selector(ts)
    assert struct.unpack(">H", b[:2])[0] == (1 << 11) | (1 << 10) | (1 << 9) | (1 << 3) | (1 << 2)
    assert b[4:12] == b"\0\0\0\x01\0\0\0\x02" and b[12:15] == b"\x0a\xbc\xde" and b[15:] == b"\x01\x09"
    assert S.decode_selector(b) == ts


@FAST
@given(selectors)
def test_selector_round_trip(ts):
    b = S.encode_selector(ts)
    assert S.decode_selector(b) == ts
    assert S.decode_selector(b).flags() == ts.flags()


@pytest.mark.parametrize("data, words", [
    (b"", "at least 4"),
    (struct.pack(">HH", 1 << 14, 0) + bytes(16), "end without a start"),
    (struct.pack(">HH", 1 << 15, 0) + bytes(8), "runs past"),
    (struct.pack(">HH", 0, 0) + b"x", "after the last"),
    (struct.pack(">HH", (1 << 7) | (1 << 6), 0) + b"\0\x09\0\x01", "after end"),  # source ports 9..1
    (struct.pack(">HH", (1 << 9), 0) + b"\x10\0\0", "outside"),  # flow label 0x100000 > 20 bits
])
def test_decode_selector_refuses(data, words):
    with pytest.raises(S.SelectorError, match=words):
        S.decode_selector(data)


def test_selector_that_can_never_match_is_refused():
    with pytest.raises(ValueError, match="never match"):
        S.TrafficSelector(destination_port=53, next_header=58)  # ICMPv6 has no ports


# ------------------------------------------------------------------ Flow Identification: problems are per flow
def _fid_option(body: bytes) -> bytes:
    """An MH (BU) carrying one type-45 option with raw ``body``."""
    raw = bytearray(w.encode_mh(w.BindingUpdate(1, 0, 10, (w.UnknownOption(99, body),)), HOA, HA))
    i = raw.index(bytes((99, len(body))), 12)
    raw[i] = 45
    raw[4:6] = b"\0\0"
    pseudo = w.addr16(HOA) + w.addr16(HA) + len(raw).to_bytes(4, "big") + b"\0\0\0\x87"
    raw[4:6] = ((-int.from_bytes(pseudo + raw, "big")) % 0xFFFF).to_bytes(2, "big")
    return bytes(raw)


@pytest.mark.parametrize("sub, status, words", [
    (b"\x03\x02\x01\x00", 133, "format 1"),  # IPv4 binary selector: not for our IPv6 home addresses
    (b"\x03\x06\x02\x00" + struct.pack(">HH", 1 << 14, 0), 130, "end without"),
    (b"\x02\x03\x00\x01\x00", 130, "odd length"),
    (b"\x09\x00", 130, "unknown sub-option"),
    (b"\x02\x08\x00\x01", 130, "runs past"),
])
def test_flow_identification_bad_sub_options_are_a_status_not_a_drop(sub, status, words):
    msg = w.decode_mh(_fid_option(struct.pack(">HHBB", 7, 1, 0, 0) + sub), HOA, HA)
    fid = msg.option(w.FlowIdentification)
    assert fid.fid == 7 and fid.problem_status == status and words in fid.problem


def test_flow_identification_option_too_long_for_its_length_octet():
    ts = S.TrafficSelector(source_address=("::1", "::2"), destination_address=("::3", "::4"), spi=(1, 2),
                           flow_label=(1, 2), source_port=(1, 2), destination_port=(1, 2), traffic_class=(1, 2),
                           next_header=(6, 6))
    w.FlowIdentification(1, 1, bids=tuple(range(1, 60)), selector=ts)  # constructible
    with pytest.raises(w.WireError, match="at most 255"):
        w.encode_mh(w.BindingUpdate(1, 0, 1, (w.FlowIdentification(1, 1, bids=tuple(range(1, 80)), selector=ts),)),
                    HOA, HA)


def test_flow_identification_fuzz_raises_only_wire_error():
    rng = random.Random("fid-fuzz")
    base = struct.pack(">HHBB", 7, 1, 0, 0) + b"\x02\x02\x00\x01" + b"\x03\x08\x02\x00" + struct.pack(">HH", 0, 0) \
        + b"\x00\x00"
    for _ in range(3000):
        b = bytearray(base)
        for _ in range(rng.randint(1, 4)):
            b[rng.randrange(len(b))] = rng.randrange(256)
        del b[rng.randrange(6, len(b) + 1):]
        try:
            fid = w.decode_mh(_fid_option(bytes(b)), HOA, HA).option(w.FlowIdentification)
        except w.WireError:
            continue
        assert fid is None or fid.problem is None or fid.problem_status in (130, 133)


# ------------------------------------------------------------------ FlowTable against a naive oracle
def _packet(src, dst, nh=6, sport=1000, dport=2000, tc=0, fl=0) -> bytes:
    head = bytes([0x60 | tc >> 4, (tc & 0xF) << 4 | fl >> 16, fl >> 8 & 0xFF, fl & 0xFF]) + struct.pack(">HBB", 20, nh, 64)
    return head + ipaddress.IPv6Address(src).packed + ipaddress.IPv6Address(dst).packed + \
        struct.pack(">HH", sport, dport) + bytes(16)


def _oracle(bindings, pkt, upstream):
    """Independent reading of RFC 6089 §3.1: the lowest FID-PRI whose selector matches every field it names."""
    src = ipaddress.IPv6Address(pkt[8:24])
    dst = ipaddress.IPv6Address(pkt[24:40])
    nh = pkt[6]
    sport, dport = struct.unpack(">HH", pkt[40:44]) if nh in (6, 17) else (None, None)
    if upstream:
        src, dst, sport, dport = dst, src, dport, sport
    tc = (pkt[0] & 0xF) << 4 | pkt[1] >> 4
    fl = (pkt[1] & 0xF) << 16 | pkt[2] << 8 | pkt[3]

    def inr(r, v, conv=lambda x: x):
        return r is None or (v is not None and conv(r[0]) <= v <= conv(r[1]))
    ok = []
    for fb in bindings:
        t = fb.selector
        if (inr(t.source_address, src, ipaddress.IPv6Address) and inr(t.destination_address, dst, ipaddress.IPv6Address)
                and inr(t.source_port, sport) and inr(t.destination_port, dport) and inr(t.next_header, nh)
                and inr(t.traffic_class, tc) and inr(t.flow_label, fl) and t.spi is None):
            ok.append(fb)
    return min(ok, key=lambda f: f.fid_priority).bid_refs if ok else None


ADDRS = ["2001:db8:c::5", "2001:db8:c::6", HOA, "2001:db8:10::43"]
_small_sel = st.builds(
    S.TrafficSelector, source_address=st.none() | st.sampled_from(ADDRS[:2]),
    destination_address=st.none() | st.sampled_from(ADDRS[2:]),
    source_port=st.none() | st.sampled_from([1000, (990, 1010), 3000]),
    destination_port=st.none() | st.sampled_from([2000, (1500, 2500)]),
    next_header=st.none() | st.sampled_from([6, 17]), traffic_class=st.none() | st.sampled_from([0, (0, 8)]))


@FAST
@given(st.lists(st.tuples(_small_sel, st.lists(st.integers(1, 4), min_size=1, max_size=2, unique=True)),
                max_size=8),
       st.sampled_from(ADDRS[:2]), st.sampled_from(ADDRS[2:]), st.sampled_from([6, 17, 58]),
       st.sampled_from([1000, 3000, 5]), st.sampled_from([2000, 2600]), st.booleans())
def test_flow_table_matches_the_oracle(specs, cn, hoa, nh, cport, hport, upstream):
    bindings = [S.FlowBinding(i + 1, 100 - i if i % 2 else i + 1, tuple(b), ts) for i, (ts, b) in enumerate(specs)]
    table = S.FlowTable(bindings)
    pkt = _packet(hoa, cn, nh, hport, cport) if upstream else _packet(cn, hoa, nh, cport, hport)
    want = _oracle(bindings, pkt, upstream)
    assert table.lookup(S.packet_key(pkt), upstream) == want
    assert table.lookup_packet(pkt, upstream) == want


def test_flow_table_exact_entries_are_hashed():
    bindings = [S.FlowBinding(i + 1, i + 1, (1 + i % 2,), S.TrafficSelector(
        source_address=CN, destination_address=HOA, source_port=443, destination_port=40000 + i, next_header=6))
        for i in range(2000)]
    table = S.FlowTable(bindings)
    assert not table._ranged and len(table._exact_down) == 2000
    assert table.lookup(S.packet_key(_packet(CN, HOA, 6, 443, 41999))) == (2,)
    assert table.lookup(S.packet_key(_packet(HOA, CN, 6, 41999, 443)), upstream=True) == (2,)
    assert table.lookup(S.packet_key(_packet(CN, HOA, 17, 443, 41999))) is None


def test_packet_key_of_short_or_non_ipv6():
    assert S.packet_key(b"\x45" + bytes(60)) is None and S.packet_key(b"\x60" + bytes(10)) is None
    k = S.packet_key(_packet(CN, HOA, 58)[:40] + b"\x80\0\0\0")  # ICMPv6: no ports
    assert k[3] == k[4] == -1


@pytest.mark.parametrize("text, words", [
    ("[" * 5000 + "]" * 5000, "longer than"),
    ("[" * 1000 + "]" * 1000, "nested too deeply"),
    ('{"source_port": null}', "null"),
    ('{"source_address": "2001:db8:c0::2%eth0"}', "zone"),
    ('{"source_address": ["2001:db8::1", "2001:db8::2%\\u202eX"]}', "zone"),
    ("{}", "empty selector"),
])
def test_selector_json_refusals(text, words):
    from mhgui.engine.flowspec import selector_from_json
    with pytest.raises(ValueError, match=words):
        selector_from_json(text)


def test_ports_are_found_past_extension_headers_and_not_in_later_fragments():
    base = _packet(CN, HOA, 6, 443, 50000)
    hbh = bytearray(base[:40]) + bytes([6, 0]) + bytes(6) + base[40:]  # hop-by-hop (8 octets) then TCP
    hbh[6] = 0
    frag1 = bytearray(base[:40]) + bytes([6, 0, 0, 0, 0, 0, 0, 1]) + base[40:]  # first fragment: ports there
    frag1[6] = 44
    frag2 = bytearray(frag1)
    frag2[43] = 8  # offset 1 (x 8 octets): a later fragment, no ports
    table = S.FlowTable([S.FlowBinding(1, 1, (2,), S.TrafficSelector(source_address=CN, destination_address=HOA,
                                                                      source_port=443, destination_port=50000,
                                                                      next_header=6))])
    for p in (base, bytes(hbh), bytes(frag1)):
        assert S.packet_key(p)[:5] == (6, w.addr16(CN), w.addr16(HOA), 443, 50000)
        assert table.lookup_packet(p) == (2,)
    assert S.packet_key(bytes(frag2))[3] == -1 and table.lookup_packet(bytes(frag2)) is None
    assert S.packet_key(bytes(hbh)[:45])[3] == -1  # truncated: no ports, no crash
