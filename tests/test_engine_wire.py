"""mhgui.engine.wire: vectors V1–V3 (shared/domain/engine.md), round trips, fuzzing, tshark cross-check."""

from __future__ import annotations

import ipaddress
import random
import shutil
import subprocess

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mhgui.engine import selectors as ts_mod
from mhgui.engine import wire as w
from test_engine_selectors import selectors
from pcap import udp_datagram_v4, udp_datagram_v6, write_pcap

HOA, HA, COA = "2001:db8:10::42", "2001:db8:10::1", "2001:db8:aa:1::9"
KEY = bytes(range(20))
V1 = bytes.fromhex("3b010500a1f20007c000009601020000")
V2 = bytes.fromhex("3b010600607300800007009601020000")
V3 = bytes.fromhex("3b060500ed210007c00000960810016d6e31406578616d706c652e6f72670102000009110100000100"
                   "b444049c2367133974d60aa7010100")
V3_AUTH = bytes.fromhex("b444049c2367133974d60aa7")


def _mh_sum_ok(mh: bytes, src: str, dst: str) -> bool:
    pseudo = w.addr16(src) + w.addr16(dst) + len(mh).to_bytes(4, "big") + b"\0\0\0\x87"
    return int.from_bytes(pseudo + mh, "big") % 0xFFFF == 0


def _fix_checksum(mh: bytearray, src: str, dst: str) -> None:
    mh[4:6] = b"\0\0"
    pseudo = w.addr16(src) + w.addr16(dst) + len(mh).to_bytes(4, "big") + b"\0\0\0\x87"
    mh[4:6] = ((-int.from_bytes(pseudo + mh, "big")) % 0xFFFF).to_bytes(2, "big")


# ------------------------------------------------------------------ vectors
def test_v1_binding_update():
    bu = w.BindingUpdate(7, w.BU_A | w.BU_H, 150)
    assert w.encode_mh(bu, HOA, HA) == V1
    assert w.decode_mh(V1, HOA, HA) == bu
    assert w.decode_mh(V1, w.addr16(HOA), w.addr16(HA)) == bu


def test_v2_binding_ack():
    ba = w.BindingAck(0, 7, 150, w.BA_K)
    assert w.encode_mh(ba, HA, HOA) == V2
    assert w.decode_mh(V2, HA, HOA) == ba


def test_v3_authenticated_binding_update():
    bu = w.BindingUpdate(7, w.BU_A | w.BU_H, 150)
    mh = w.encode_authenticated(bu, HOA, HA, coa=COA, key=KEY, spi=0x100, identity="mn1@example.org")
    assert mh == V3
    assert mh[4:6] == b"\xed\x21" and mh[41:53] == V3_AUTH and _mh_sum_ok(mh, HOA, HA)
    msg = w.decode_mh(V3, HOA, HA)
    assert (msg.seq, msg.flags, msg.lifetime) == (7, w.BU_A | w.BU_H, 150)
    assert msg.options == (w.MobileNodeId("mn1@example.org"), w.MobilityAuth(0x100, V3_AUTH))
    assert msg.option(w.MobilityAuth).spi == 256 and msg.option(w.AlternateCareOf) is None
    assert msg.options_of(w.MobileNodeId) == (w.MobileNodeId("mn1@example.org", 1),)


def test_v3_verify_authenticator():
    assert w.verify_authenticator(V3, coa=COA, hoa=HOA, key=KEY)
    assert w.verify_authenticator(V3, coa=w.addr16(COA), hoa=w.addr16(HOA), key=KEY)
    assert not w.verify_authenticator(V3, coa=COA, hoa=HOA, key=bytes([KEY[0] ^ 1]) + KEY[1:])
    for bit in (7 * 8, 8 * 8 + 3, 20 * 8, 38 * 8 + 1, 45 * 8 + 7):  # seq, flags, MN-ID, SPI, authenticator
        flipped = bytearray(V3)
        flipped[bit // 8] ^= 0x80 >> bit % 8
        assert not w.verify_authenticator(bytes(flipped), coa=COA, hoa=HOA, key=KEY), bit
    assert not w.verify_authenticator(V3, coa="2001:db8:aa:1::10", hoa=HOA, key=KEY)
    assert not w.verify_authenticator(V3, coa=None, hoa=HOA, key=KEY)
    assert not w.verify_authenticator(V3, coa=COA, hoa=HA, key=KEY)
    # the checksum field is zeroed for the authenticator: a changed checksum alone still verifies
    other_sum = V3[:4] + b"\0\0" + V3[6:]
    assert w.verify_authenticator(other_sum, coa=COA, hoa=HOA, key=KEY)


def test_verify_authenticator_never_raises():
    for junk in (b"", b"\x3b", V1, V3[:-8], V3 + b"\0", "text", None, 42):
        assert w.verify_authenticator(junk, coa=COA, hoa=HOA, key=KEY) is False
    assert w.verify_authenticator(V3, coa="not an address", hoa=HOA, key=KEY) is False
    assert w.verify_authenticator(V3, coa=COA, hoa=HOA, key="text key") is False
    assert w.verify_authenticator(V3, coa=COA, hoa=b"short", key=KEY) is False
    # the authentication option must be the last option
    bu = w.BindingUpdate(1, options=(w.MobilityAuth(1, bytes(12)), w.RestartCounter(1)))
    assert not w.verify_authenticator(w.encode_mh(bu, HOA, HA), coa=None, hoa=HOA, key=KEY)


def test_authenticated_binding_ack_from_home_agent_and_ipv4_coa():
    ba = w.BindingAck(0, 9, 100, options=(w.ReplayProtection(1 << 40), w.NatDetection(True, 20)))
    mh = w.encode_authenticated(ba, HA, HOA, coa="192.0.2.2", key=KEY, spi=7, identity="mn1@example.org", hoa=HOA)
    assert w.verify_authenticator(mh, coa="192.0.2.2", hoa=HOA, key=KEY)
    assert w.verify_authenticator(mh, coa="::ffff:192.0.2.2", hoa=HOA, key=KEY)
    assert not w.verify_authenticator(mh, coa="192.0.2.2", hoa=HA, key=KEY)  # hoa defaults to src only when not given
    got = w.decode_mh(mh, HA, HOA)
    assert got.options[:2] == ba.options and isinstance(got.options[-1], w.MobilityAuth)
    assert got.options[-2] == w.MobileNodeId("mn1@example.org")
    assert w.encode_authenticated(ba, HA, HOA, coa=None, key=KEY, spi=7)  # no identity, zero CoA
    with pytest.raises(w.WireError):
        w.encode_authenticated(got, HA, HOA, coa=None, key=KEY, spi=7)  # already authenticated
    with pytest.raises(w.WireError):
        w.encode_authenticated(ba, HA, HOA, coa=None, key=b"", spi=7)


def test_packet_framing():
    pkt = w.encode_packet(V3, HOA, HA)
    assert len(pkt) == 40 + len(V3) and pkt[0] >> 4 == 6 and pkt[6] == 135 and pkt[7] == 64
    assert w.decode_packet(pkt) == (w.addr16(HOA), w.addr16(HA), V3)
    assert w.encode_packet(V3, w.addr16(HOA), w.addr16(HA), hop_limit=1)[7] == 1
    bad = [pkt[:39], b"\x40" + pkt[1:], pkt[:6] + b"\x3a" + pkt[7:], pkt + b"\0", pkt[:-1], "x"]
    for b in bad:
        with pytest.raises(w.WireError):
            w.decode_packet(b)


def test_addr16():
    assert w.addr16("2001:db8::1") == ipaddress.IPv6Address("2001:db8::1").packed
    assert w.addr16("192.0.2.1") == ipaddress.IPv6Address("::ffff:192.0.2.1").packed
    assert w.addr16(bytearray(16)) == bytes(16)
    for junk in ("", "fe80::1%eth0", "1.2.3", "2001:db8::g", "01.2.3.4", b"\0" * 4, None, 5):
        with pytest.raises(w.WireError):
            w.addr16(junk)


def test_canonical_text_and_validation():
    assert w.AlternateCareOf("2001:DB8:0:0::1").address == "2001:db8::1"
    assert w.AlternateCareOf("::ffff:c000:201").address == "::ffff:192.0.2.1"
    assert w.BindingIdentifier(1, coa="2001:0db8::9").coa == "2001:db8::9"
    assert w.BindingError(2, HOA.upper()).home_address == HOA
    bad = [lambda: w.BindingUpdate(1 << 16), lambda: w.BindingAck(0, 1, flags=256), lambda: w.Heartbeat(-1),
           lambda: w.BindingUpdate(1, options=(1,)), lambda: w.BindingUpdate(1, options=5),
           lambda: w.AlternateCareOf("192.0.2.1"), lambda: w.IPv4CareOf("2001:db8::1"),
           lambda: w.IPv4HomeAddress("0.0.0.0", 33), lambda: w.MobileNodeId(""),
           lambda: w.MobileNodeId("x" * 254), lambda: w.MobileNodeId("\ud800"),
           lambda: w.MobilityAuth(1 << 32), lambda: w.VendorSpecific(0, 1, bytes(251)),
           lambda: w.BindingIdentifier(1, priority=128), lambda: w.UnknownOption(9, b""),
           lambda: w.UnknownOption(1, b""), lambda: w.BindingError(2, "192.0.2.1"),
           lambda: w.ReplayProtection(True), lambda: w.RestartCounter("1")]
    for make in bad:
        with pytest.raises(w.WireError):
            make()
    assert issubclass(w.WireError, ValueError)
    with pytest.raises(w.WireError):  # too long for Header Len
        w.encode_mh(w.BindingUpdate(1, options=(w.UnknownOption(200, bytes(255)),) * 8), HOA, HA)
    with pytest.raises(w.WireError):
        w.encode_mh("not a message", HOA, HA)


def test_status_text():
    assert set(w.BA_STATUS) == {0, 1, 4, 5, *range(128, 147), *range(164, 170), 174}
    assert w.ba_status_text(129) == "administratively prohibited"
    assert "MESG-ID" in w.ba_status_text(145) and "MIPV6-ID-MISMATCH" in w.ba_status_text(144)
    assert w.ba_status_text(250) == "unknown status 250"


def _option_offsets(mh: bytes, start: int):
    off = start
    while off < len(mh):
        if mh[off] == 0:
            off += 1
            continue
        if mh[off] != 1:
            yield mh[off], off
        off += 2 + mh[off + 1]


def test_layout_alignment_and_padding():
    opts = (w.MobileNodeId("a"), w.AlternateCareOf(COA), w.RestartCounter(3), w.IPv4CareOf("192.0.2.1"),
            w.BindingRefreshAdvice(5), w.NatDetection(False, 110), w.ReplayProtection(1), w.VendorSpecific(0, 1, b"x"),
            w.IPv4HomeAddress("0.0.0.0", 0, True), w.IPv4AddressAck(0, "198.51.100.1", 24),
            w.BindingIdentifier(1, coa=COA), w.MobilityAuth(1, bytes(12)))
    mh = w.encode_mh(w.BindingUpdate(1, options=opts), HOA, HA)
    assert len(mh) % 8 == 0 and mh[1] == len(mh) // 8 - 1 and _mh_sum_ok(mh, HOA, HA)
    seen = list(_option_offsets(mh, 12))
    assert [t for t, _ in seen] == [o.TYPE for o in opts]
    for (t, off), o in zip(seen, opts):
        x, y = o.ALIGN
        assert off % x == y % x, (t, off)
    hb = w.encode_mh(w.Heartbeat(1, response=True, options=(w.RestartCounter(9),)), HA, HOA)
    assert hb[12:14] == b"\x01\x00" and hb[14] == 28 and len(hb) == 24  # PadN 0, then 4n+2
    assert w.encode_mh(w.BindingRefreshRequest(), HA, HOA)[:4] == b"\x3b\x00\x00\x00"


def test_decode_rejects():
    def bad(mh: bytes, src=HOA, dst=HA, **kw):
        with pytest.raises(w.WireError) as e:
            w.decode_mh(mh, src, dst, **kw)
        return str(e.value)

    assert "offset 0" in bad(V1[:7])
    assert "Payload Proto" in bad(b"\x3a" + V1[1:])
    assert "Header Len" in bad(V1 + bytes(8))
    assert "checksum" in bad(V1, COA, HA)  # (swapping src and dst leaves the sum alone)
    assert w.decode_mh(V1, COA, HA, verify_checksum=False) == w.BindingUpdate(7, w.BU_A | w.BU_H, 150)
    unknown = bytearray(V1)
    unknown[2] = 1
    _fix_checksum(unknown, HOA, HA)
    with pytest.raises(w.UnknownMHType) as e:
        w.decode_mh(bytes(unknown), HOA, HA)
    assert e.value.mh_type == 1
    short = bytearray(b"\x3b\x00\x06\x00\x00\x00\x00\x00")  # BA needs 12 octets
    _fix_checksum(short, HA, HOA)
    assert "needs" in bad(bytes(short), HA, HOA)
    # an option running past the end; an option with a length wrong for its type
    for body in (b"\x0a\x09" + bytes(8) + b"\x00\x00", b"\x1c\x03\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00",
                 b"\x23\x05" + bytes(5) + bytes(5), b"\x08\x01\x01" + bytes(9), b"\x08\x03\x01\xff\xfe" + bytes(7)):
        mh = bytearray(b"\x3b\x02\x05\x00\x00\x00\x00\x07\x00\x00\x00\x00" + body)
        _fix_checksum(mh, HOA, HA)
        assert "option type" in bad(bytes(mh))
    with pytest.raises(w.WireError):
        w.decode_mh("text", HOA, HA)


def test_decode_ignores_pad_contents_reserved_and_keeps_unknown_options():
    mh = bytearray(b"\x3b\x01\x05\xff\x00\x00\x00\x07\xc0\x00\x00\x96" + b"\x01\x02\xab\xcd")
    _fix_checksum(mh, HOA, HA)
    assert w.decode_mh(bytes(mh), HOA, HA) == w.BindingUpdate(7, 0xC000, 150)
    mh = bytearray(b"\x3b\x01\x0d\x00\x00\x00\xfc\x03\x00\x00\x00\x05" + b"\xc8\x02\xaa\xbb")
    _fix_checksum(mh, HOA, HA)
    got = w.decode_mh(bytes(mh), HOA, HA)
    assert got == w.Heartbeat(5, True, True, (w.UnknownOption(200, b"\xaa\xbb"),))
    assert w.decode_mh(w.encode_mh(got, HOA, HA), HOA, HA) == got


# ------------------------------------------------------------------ round trips (hypothesis)
v6 = st.binary(min_size=16, max_size=16).map(lambda b: str(ipaddress.IPv6Address(b)))
v4 = st.binary(min_size=4, max_size=4).map(lambda b: str(ipaddress.IPv4Address(b)))
u8, u16, u32 = (st.integers(0, (1 << n) - 1) for n in (8, 16, 32))
nai = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=60).filter(
    lambda s: len(s.encode()) <= 253)
options = st.one_of(
    st.builds(w.BindingRefreshAdvice, u16),
    st.builds(w.AlternateCareOf, v6),
    st.builds(w.MobileNodeId, nai, u8),
    st.builds(w.MobilityAuth, u32, st.binary(max_size=250), u8),
    st.builds(w.ReplayProtection, st.integers(0, (1 << 64) - 1)),
    st.builds(w.VendorSpecific, u32, u8, st.binary(max_size=250)),
    st.builds(w.RestartCounter, u32),
    st.builds(w.IPv4HomeAddress, v4, st.integers(0, 32), st.booleans()),
    st.builds(w.IPv4AddressAck, u8, v4, st.integers(0, 32)),
    st.builds(w.NatDetection, st.booleans(), u32),
    st.builds(w.IPv4CareOf, v4),
    st.builds(w.BindingIdentifier, u16, u8, st.booleans(), st.integers(0, 127), st.none() | v4 | v6),
    st.builds(w.FlowIdentification, u16, u16, u8, st.none() | st.lists(u16, min_size=1, max_size=8).map(tuple),
              st.none() | selectors),
    st.builds(w.FlowSummary, st.lists(u16, min_size=1, max_size=127).map(tuple)),
    st.builds(w.UnknownOption, st.integers(2, 255).filter(lambda t: t not in w._OPTIONS), st.binary(max_size=255)),
)
opt_tuples = st.lists(options, max_size=6).map(tuple)
messages = st.one_of(
    st.builds(w.BindingRefreshRequest, opt_tuples),
    st.builds(w.BindingUpdate, u16, u16, u16, opt_tuples),
    st.builds(w.BindingAck, u8, u16, u16, u8, opt_tuples),
    st.builds(w.BindingError, u8, v6, opt_tuples),
    st.builds(w.Heartbeat, u32, st.booleans(), st.booleans(), opt_tuples),
)
FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(messages, v6, v6)
def test_round_trip(msg, src, dst):
    mh = w.encode_mh(msg, src, dst)
    assert len(mh) % 8 == 0 and _mh_sum_ok(mh, src, dst)
    assert w.decode_mh(mh, src, dst) == msg
    s16, d16, inner = w.decode_packet(w.encode_packet(mh, src, dst))
    assert (s16, d16, inner) == (w.addr16(src), w.addr16(dst), mh)


@FAST
@given(messages.filter(lambda m: not m.options_of(w.MobilityAuth)), v6, v6, st.none() | v6 | v4,
       st.binary(min_size=1, max_size=64), u32, st.none() | nai)
def test_authenticated_round_trip(msg, src, dst, coa, key, spi, identity):
    try:
        mh = w.encode_authenticated(msg, src, dst, coa=coa, key=key, spi=spi, identity=identity)
    except w.WireError:  # only when the message is too long for one MH
        assert len(w.encode_mh(msg, src, dst)) > 2048 - 300
        return
    got = w.decode_mh(mh, src, dst)
    assert got.options[:len(msg.options)] == msg.options and got.option(w.MobilityAuth).spi == spi
    assert isinstance(got.options[-1], w.MobilityAuth) and len(got.options[-1].authenticator) == 12
    assert w.verify_authenticator(mh, coa=coa, hoa=src, key=key)
    assert not w.verify_authenticator(mh, coa=coa, hoa=src, key=key + b"x")


# ------------------------------------------------------------------ fuzzing
_FUZZ_TS = ts_mod.TrafficSelector(source_address="2001:db8:c::1", destination_address=HOA,
                                  source_port=443, destination_port=(50000, 50100), next_header=6)
FUZZ_BASE = [
    w.BindingRefreshRequest((w.BindingRefreshAdvice(30),)),
    w.BindingUpdate(7, w.BU_A | w.BU_H, 150, (
        w.AlternateCareOf(COA), w.ReplayProtection(1 << 60), w.VendorSpecific(0, 1, bytes(24)),
        w.BindingIdentifier(2, coa="192.0.2.2"), w.IPv4HomeAddress("0.0.0.0", 0, True),
        w.MobileNodeId("mn1@example.org"), w.MobilityAuth(256, bytes(12)))),
    w.BindingAck(0, 7, 150, w.BA_K, (w.IPv4AddressAck(0, "198.51.100.7", 24), w.NatDetection(True, 20),
                                     w.BindingIdentifier(2, 0, True, 5, COA), w.RestartCounter(4))),
    w.BindingError(2, HOA, (w.UnknownOption(99, b"abc"),)),
    w.BindingUpdate(9, w.BU_A | w.BU_H, 150, (
        w.BindingIdentifier(1, coa=COA), w.BindingIdentifier(2, coa="192.0.2.2"),
        w.FlowIdentification(5, 10, bids=(1, 2), selector=_FUZZ_TS), w.FlowSummary((3, 4)))),
    w.Heartbeat(123456, False, True, (w.RestartCounter(3), w.MobileNodeId("x"), w.MobilityAuth(1, bytes(12)))),
]


def _mutate(rng: random.Random, base: bytes) -> bytes:
    b = bytearray(base)
    kind = rng.randrange(7)
    if kind == 0:  # bit flips
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(len(b) * 8)
            b[i // 8] ^= 1 << i % 8
    elif kind == 1:  # truncation
        del b[rng.randrange(len(b)):]
    elif kind == 2:  # extension
        b += rng.randbytes(rng.randint(1, 24))
    elif kind == 3:  # byte replacements
        for _ in range(rng.randint(1, 4)):
            b[rng.randrange(len(b))] = rng.randrange(256)
    elif kind == 4:  # a length field: Header Len or an option length
        i = 1 if rng.random() < 0.3 else rng.randrange(8, len(b))
        b[i] = rng.choice((0, 1, 2, 255, b[i] + 1 & 255, b[i] - 1 & 255, rng.randrange(256)))
    elif kind == 5:  # random bytes behind a plausible header
        n = rng.randrange(1, 40) * 8
        b = bytearray(b"\x3b" + bytes((n // 8 - 1, rng.choice((0, 5, 6, 7, 13)))) + rng.randbytes(n - 3))
    else:  # random bytes
        b = bytearray(rng.randbytes(rng.randrange(0, 80)))
    return bytes(b)


@pytest.mark.parametrize("base", FUZZ_BASE, ids=lambda m: type(m).__name__)
def test_fuzz_decoders_raise_only_wire_error(base):
    rng = random.Random(f"wire-fuzz-{type(base).__name__}")
    mh = w.encode_mh(base, HOA, HA)
    pkt = w.encode_packet(mh, HOA, HA)
    decoded = 0
    for i in range(10_000):
        data = _mutate(rng, mh)
        if i % 2 and len(data) >= 6:
            fixed = bytearray(data)
            _fix_checksum(fixed, HOA, HA)
            data = bytes(fixed)
        for kw in ({}, {"verify_checksum": False}):
            try:
                msg = w.decode_mh(data, HOA, HA, **kw)
            except w.WireError:
                continue
            decoded += 1
            assert w.decode_mh(w.encode_mh(msg, HOA, HA), HOA, HA) == msg
        assert w.verify_authenticator(data, coa=COA, hoa=HOA, key=KEY) in (True, False)
        try:
            src, dst, inner = w.decode_packet(_mutate(rng, pkt))
            w.decode_mh(inner, src, dst)
        except w.WireError:
            pass
    assert decoded > 1000  # the mutations reach the option parser, not only the framing checks


# ------------------------------------------------------------------ tshark
HA_OUTER6, HA_OUTER4, MN_OUTER4 = "2001:db8:f0::10", "203.0.113.10", "192.0.2.2"
TSHARK_FIELDS = ["mip6.mhtype", "mip6.csum", "mip6.bu.seqnr", "mip6.bu.a_flag", "mip6.bu.h_flag",
                 "mip6.bu.lifetime", "mip6.mnid.identifier", "mip6.auth.mobility_spi", "mip6.ipv4coa.addr",
                 "mip6.natd.f_flag", "mip6.natd.refresh_t", "mip6.bi.bid", "mip6.bi.coa_ipv4", "mip6.vsm.vendorId",
                 "mip6.vsm.subtype", "mip6.ba.status", "mip6.ba.seqnr", "mip6.ba.lifetime", "mip6.ba.k_flag",
                 "mip6.ipv4aa.sts", "mip6.ipv4ha.ha", "mip6.ipv4ha.preflen", "mip6.hb.r_flag", "mip6.hb.seqnr",
                 "mip6.rc", "udp.checksum.status", "ip.checksum.status"]


def _flag(v: str) -> str:
    return {"True": "1", "False": "0"}.get(v, v)


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")
def test_tshark_decodes_what_we_encode(tmp_path):
    bu = w.BindingUpdate(7, w.BU_A | w.BU_H, 150)
    v3 = w.encode_authenticated(bu, HOA, HA, coa=COA, key=KEY, spi=0x100, identity="mn1@example.org")
    bu4 = w.BindingUpdate(8, w.BU_A | w.BU_H, 75, (
        w.IPv4CareOf(MN_OUTER4), w.NatDetection(False, 110), w.BindingIdentifier(3, coa=MN_OUTER4),
        w.ReplayProtection(0x6000_0000 << 32), w.VendorSpecific(0, 1, bytes(24))))
    ba4 = w.BindingAck(0, 8, 75, w.BA_K, (w.IPv4AddressAck(0, "198.51.100.7", 24), w.NatDetection(True, 20)))
    hb = w.Heartbeat(99, response=True, options=(w.RestartCounter(5),))
    mh_bu4 = w.encode_authenticated(bu4, HOA, HA, coa=MN_OUTER4, key=KEY, spi=0x100, identity="mn1@example.org")
    packets = [
        udp_datagram_v6(COA, HA_OUTER6, 4191, 4191, w.encode_packet(v3, HOA, HA)),
        udp_datagram_v4(MN_OUTER4, HA_OUTER4, 4191, 4191, w.encode_packet(mh_bu4, HOA, HA)),
        udp_datagram_v4(HA_OUTER4, MN_OUTER4, 4191, 4191, w.encode_packet(w.encode_mh(ba4, HA, HOA), HA, HOA)),
        udp_datagram_v6(HA_OUTER6, COA, 4191, 4191, w.encode_packet(w.encode_mh(hb, HA, HOA), HA, HOA)),
    ]
    path = tmp_path / "wire.pcap"
    write_pcap(path, packets)
    cmd = ["tshark", "-n", "-r", str(path), "-d", "udp.port==4191,ip", "-o", "udp.check_checksum:TRUE",
           "-o", "ip.check_checksum:TRUE", "-T", "fields", "-E", "separator=/t", "-E", "occurrence=f"]
    for f in TSHARK_FIELDS:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True).stdout
    rows = [dict(zip(TSHARK_FIELDS, map(_flag, line.split("\t")))) for line in out.splitlines()]
    assert len(rows) == 4
    r = rows[0]
    assert (r["mip6.mhtype"], r["mip6.csum"], r["mip6.bu.seqnr"], r["mip6.bu.lifetime"]) == ("5", "0xed21", "7", "150")
    assert (r["mip6.bu.a_flag"], r["mip6.bu.h_flag"]) == ("1", "1")
    assert (r["mip6.mnid.identifier"], r["mip6.auth.mobility_spi"]) == ("mn1@example.org", "256")
    r = rows[1]
    assert (r["mip6.mhtype"], r["mip6.bu.seqnr"], r["mip6.bu.lifetime"]) == ("5", "8", "75")
    assert r["mip6.csum"] == f"0x{mh_bu4[4]:02x}{mh_bu4[5]:02x}"
    assert (r["mip6.ipv4coa.addr"], r["mip6.natd.f_flag"], r["mip6.natd.refresh_t"]) == (MN_OUTER4, "0", "110")
    assert (r["mip6.bi.bid"], r["mip6.bi.coa_ipv4"]) == ("3", MN_OUTER4)
    assert (r["mip6.vsm.vendorId"], r["mip6.vsm.subtype"]) == ("0", "1")
    assert (r["mip6.mnid.identifier"], r["mip6.auth.mobility_spi"]) == ("mn1@example.org", "256")
    r = rows[2]
    assert (r["mip6.mhtype"], r["mip6.ba.status"], r["mip6.ba.seqnr"], r["mip6.ba.lifetime"]) == ("6", "0", "8", "75")
    assert (r["mip6.ba.k_flag"], r["mip6.ipv4aa.sts"], r["mip6.ipv4ha.ha"]) == ("1", "0", "198.51.100.7")
    assert (r["mip6.ipv4ha.preflen"], r["mip6.natd.f_flag"], r["mip6.natd.refresh_t"]) == ("24", "1", "20")
    r = rows[3]
    assert (r["mip6.mhtype"], r["mip6.hb.r_flag"], r["mip6.hb.seqnr"], r["mip6.rc"]) == ("13", "1", "99", "5")
    for r in rows:  # our outer checksums (tests/pcap.py) are right
        assert r["udp.checksum.status"] == "1"
    assert rows[1]["ip.checksum.status"] == rows[2]["ip.checksum.status"] == "1"
