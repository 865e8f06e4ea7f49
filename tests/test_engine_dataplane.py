"""The engine's data frames (mhgui/engine/dataplane.py) and inner packet helpers (mhgui/engine/packets.py).

Wire contract: docs/engine-design.md, "Data frame". The ICMP packets are checked with scapy, an
independent decoder.
"""

from __future__ import annotations

import ipaddress
import os
import random
import struct

import pytest
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from mhgui.engine import dataplane as dp
from mhgui.engine import packets

KEY = bytes(range(32))
KEY2 = bytes(range(1, 33))
HA = ipaddress.IPv6Address("2001:db8:10::1").packed
HOA = ipaddress.IPv6Address("2001:db8:10::42").packed
PEER = ipaddress.IPv6Address("2001:db8:99::7").packed


def _pair(index: int = 0x01020304, window: int = 2048) -> tuple[dp.Sender, dp.Receiver]:
    return dp.Sender(KEY, index), dp.Receiver(KEY, index, window)


def _ipv6(src: bytes = HOA, dst: bytes = PEER, payload: bytes = b"hello") -> bytes:
    return struct.pack("!IHBB16s16s", 6 << 28, len(payload), 59, 64, src, dst) + payload


# ---------------------------------------------------------------------------------------------- frames
def test_frame_layout_matches_the_design():
    s = dp.Sender(KEY, 0xA1B2C3D4)
    inner = _ipv6()
    frame = s.seal(inner)
    assert len(frame) == len(inner) + dp.OVERHEAD == len(inner) + 32
    assert frame[0] == dp.FRAME_DATA and frame[1:4] == b"\0\0\0"
    assert frame[4:8] == bytes.fromhex("a1b2c3d4")
    assert frame[8:16] == (1).to_bytes(8, "big")  # counters start at 1
    # independent check of nonce and AAD: 4 zero bytes | counter, AAD = header
    assert ChaCha20Poly1305(KEY).decrypt(b"\0" * 4 + frame[8:16], frame[16:], frame[:16]) == inner
    assert dp.is_data_frame(frame) and dp.frame_receiver_index(frame) == 0xA1B2C3D4


def test_seal_open_round_trip_and_keepalive():
    s, r = _pair()
    for i in range(1, 6):
        inner = _ipv6(payload=bytes([i]) * i * 100)
        assert r.open(s.seal(inner)) == (dp.FRAME_DATA, inner, i)
        assert r.last_counter == i
    ka = s.seal(b"", dp.FRAME_KEEPALIVE)
    assert len(ka) == dp.OVERHEAD
    assert r.open(ka) == (dp.FRAME_KEEPALIVE, b"", 6)
    assert r.open(s.seal(b"\x00\x02", dp.FRAME_KEEPALIVE)) == (dp.FRAME_KEEPALIVE, b"\x00\x02", 7)  # BID 2's path
    assert s.counter == 7 and not r.drops


def test_seal_refuses_bad_types():
    s = dp.Sender(KEY, 1)
    with pytest.raises(ValueError):
        s.seal(b"x", 0x03)
    with pytest.raises(ValueError):
        s.seal(b"x", dp.FRAME_KEEPALIVE)
    with pytest.raises(ValueError):
        dp.Sender(b"short", 1)
    with pytest.raises(ValueError):
        dp.Receiver(KEY, 2**32)
    assert s.counter == 0


def test_rekey_after_2_to_60_frames():
    s = dp.Sender(KEY, 1)
    s.counter = dp.REKEY_AFTER - 1
    s.seal(b"last")
    with pytest.raises(dp.RekeyNeeded):
        s.seal(b"one too many")
    assert s.counter == dp.REKEY_AFTER


def test_every_bit_flip_is_dropped():
    s, r = _pair(index=7)
    frame = s.seal(_ipv6(payload=b"0123456789"))
    for bit in range(len(frame) * 8):
        bad = bytearray(frame)
        bad[bit // 8] ^= 1 << (bit % 8)
        assert r.open(bytes(bad)) is None, bit
    total = len(frame) * 8
    assert sum(r.drops.values()) == total
    assert r.drops["index"] == 32 + 4  # 32 index bits, 4 high bits of the type
    assert r.drops["type"] == 4  # low nibble: 0x00, 0x03, 0x05, 0x09
    assert r.drops["replay"] == 1  # counter 1 -> 0, never valid
    assert r.drops["auth"] == total - 41
    assert set(r.drops) == {"index", "type", "replay", "auth"}
    # nothing was recorded: the genuine frame still opens
    assert r.open(frame) is not None and r.last_counter == 1


def test_replay_reorder_and_window():
    s, r = _pair(window=2048)
    frames = [s.seal(_ipv6(payload=i.to_bytes(4, "big"))) for i in range(1, 3001)]
    assert r.open(frames[9]) is not None  # counter 10
    assert r.open(frames[9]) is None and r.drops["replay"] == 1
    for f in reversed(frames[:9]):  # reordered, all in the window: accepted once each
        assert r.open(f) is not None
        assert r.open(f) is None
    assert r.last_counter == 10 and r.drops["replay"] == 10
    assert r.open(frames[2999]) is not None  # counter 3000
    assert r.last_counter == 3000
    assert r.open(frames[3000 - 2048 - 1]) is None  # counter 952: too old
    assert r.open(frames[3000 - 2048]) is not None  # counter 953: the oldest still tracked
    assert r.open(frames[2000]) is not None and r.last_counter == 3000  # older but fresh: accepted
    assert r.drops["replay"] == 11


def test_replay_window_directly():
    w = dp.ReplayWindow(64)
    assert not w.check(0) and not w.update(0)  # counter 0 is never valid
    assert not w.check(2**64)
    assert w.update(1) and not w.update(1)
    assert w.update(100) and w.highest == 100
    assert not w.check(36) and w.check(37)
    assert w.update(37) and not w.check(37)
    # a jump far ahead clears everything behind it
    assert w.update(10**6) and w.check(10**6 - 1) and not w.check(10**6 - 64)
    rng = random.Random(5)
    seen: set[int] = set()
    w = dp.ReplayWindow(2048)
    top = 0
    for _ in range(20000):
        c = max(1, top + rng.randint(-3000, 40))
        expected = c not in seen and (c > top or top - c < 2048)
        assert w.update(c) == expected, c
        if expected:
            seen.add(c)
            top = max(top, c)
    with pytest.raises(ValueError):
        dp.ReplayWindow(0)


def test_wrong_receiver_index_and_key():
    s = dp.Sender(KEY, 5)
    frame = s.seal(_ipv6())
    r = dp.Receiver(KEY, 6)
    assert r.open(frame) is None and r.drops == {"index": 1}
    r = dp.Receiver(KEY2, 5)
    assert r.open(frame) is None and r.drops == {"auth": 1}
    assert r.last_counter == 0


def test_short_and_non_data_frames():
    r = dp.Receiver(KEY, 0)
    assert r.open(b"") is None and r.open(bytes(31)) is None
    assert r.drops["short"] == 2
    assert dp.frame_receiver_index(bytes(31)) is None
    signalling = _ipv6(payload=bytes(40))  # starts with 0x60
    assert not dp.is_data_frame(signalling) and dp.frame_receiver_index(signalling) is None
    assert r.open(signalling) is None and r.drops["index"] == 1
    assert r.open(None) is None  # type: ignore[arg-type]
    assert r.open(bytearray(dp.Sender(KEY, 0).seal(b"x"))) is not None


def test_derive_keys():
    mn_nonce, ha_nonce = bytes(16), bytes(range(16))
    up, down = dp.derive_keys(KEY, mn_nonce, ha_nonce)
    assert len(up) == len(down) == 32 and up != down
    assert dp.derive_keys(KEY, mn_nonce, ha_nonce) == (up, down)  # both sides agree
    assert dp.derive_keys(KEY, ha_nonce, mn_nonce) != (up, down)
    assert dp.derive_keys(KEY2, mn_nonce, ha_nonce)[0] != up
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF
    expect = HKDF(hashes.SHA256(), 32, mn_nonce + ha_nonce, b"mhgui data v1 mn->ha").derive(KEY)
    assert up == expect
    # the MN seals with up, the HA opens with up (and the other way round with down)
    mn_tx, ha_rx = dp.Sender(up, 9), dp.Receiver(dp.derive_keys(KEY, mn_nonce, ha_nonce)[0], 9)
    assert ha_rx.open(mn_tx.seal(b"\x60")) is not None
    assert dp.Receiver(down, 9).open(dp.Sender(up, 9).seal(b"\x60")) is None
    for bad in (bytes(15), bytes(17), b""):
        with pytest.raises(ValueError):
            dp.derive_keys(KEY, bad, ha_nonce)
        with pytest.raises(ValueError):
            dp.derive_keys(KEY, mn_nonce, bad)


def test_random_junk_never_raises():
    rng = random.Random(20240917)
    s, r = _pair(index=3)
    genuine = s.seal(_ipv6())
    for i in range(10000):
        kind = i % 4
        if kind == 0:
            junk = rng.randbytes(rng.randint(0, 200))
        elif kind == 1:  # shaped like a data frame for our index
            junk = bytes([rng.randint(0, 15), 0, 0, 0]) + (3).to_bytes(4, "big") + rng.randbytes(rng.randint(0, 120))
        elif kind == 2:  # the genuine frame, mangled
            b = bytearray(genuine)
            for _ in range(rng.randint(1, 4)):
                b[rng.randrange(len(b))] = rng.randrange(256)
            junk = bytes(b[:rng.randint(0, len(b))])
        else:
            junk = genuine[:16] + rng.randbytes(rng.randint(0, 60))
        assert r.open(junk) is None or junk == genuine
        dp.is_data_frame(junk)
        dp.frame_receiver_index(junk)
        packets.inner_addresses(junk)
    assert sum(r.drops.values()) >= 9990


# ---------------------------------------------------------------------------------------------- packets
def test_inner_addresses():
    assert packets.inner_addresses(_ipv6()) == (6, HOA, PEER)
    v4 = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 28, 0, 0, 64, 17, 0, bytes([10, 0, 0, 1]),
                     bytes([192, 0, 2, 9])) + bytes(8)
    assert packets.inner_addresses(v4) == (4, bytes([10, 0, 0, 1]), bytes([192, 0, 2, 9]))
    assert packets.inner_addresses(v4 + b"pad") is not None
    assert packets.inner_addresses(v4[:27]) is None  # total length beyond the packet
    assert packets.inner_addresses(bytes([0x44]) + v4[1:]) is None  # IHL 4
    assert packets.inner_addresses(bytes([0x4F]) + v4[1:]) is None  # IHL 60 > total length
    assert packets.inner_addresses(_ipv6()[:-1]) is None  # payload length beyond the packet
    assert packets.inner_addresses(_ipv6()[:39]) is None
    for junk in (b"", b"\x60", bytes(40), b"\x50" + bytes(60), os.urandom(10)):
        assert packets.inner_addresses(junk) is None


def test_ipv6_checksum_known_value():
    # RFC 8200 §8.1 pseudo-header; the UDP header's checksum must make the total sum 0xFFFF
    src, dst = HOA, PEER
    udp = struct.pack("!HHHH", 1000, 2000, 12, 0) + b"abcd"
    csum = packets.ipv6_checksum(src, dst, 17, udp)
    filled = udp[:6] + csum.to_bytes(2, "big") + udp[8:]
    assert packets.ipv6_checksum(src, dst, 17, filled) in (0, 0xFFFF)
    with pytest.raises(ValueError):
        packets.ipv6_checksum(src[:4], dst, 17, udp)


@pytest.fixture(scope="module")
def scapy_all():
    """scapy (the test extra) as an independent decoder of what packets.py builds."""
    return pytest.importorskip("scapy.all")


def _scapy_checksum_ok(pkt, layer) -> bool:
    sent = pkt[layer].cksum if hasattr(pkt[layer], "cksum") else pkt[layer].chksum
    clone = pkt.copy()
    if hasattr(clone[layer], "cksum"):
        del clone[layer].cksum
    else:
        del clone[layer].chksum
    rebuilt = type(pkt)(bytes(clone))
    return (rebuilt[layer].cksum if hasattr(rebuilt[layer], "cksum") else rebuilt[layer].chksum) == sent


@pytest.mark.parametrize("size", [60, 1279, 1500, 9000])
def test_packet_too_big_decoded_by_scapy(size, scapy_all):
    IPv6, PTB, UDP = scapy_all.IPv6, scapy_all.ICMPv6PacketTooBig, scapy_all.UDP
    original = bytes(IPv6(src="2001:db8:10::42", dst="2001:db8:99::7") / UDP(sport=5000, dport=53)
                     / (b"q" * (size - 48)))
    out = packets.icmpv6_packet_too_big(HA, HOA, 1400, original)
    assert len(out) == min(1280, 48 + len(original))
    pkt = IPv6(out)
    assert pkt.src == "2001:db8:10::1" and pkt.dst == "2001:db8:10::42" and pkt.hlim == 255 and pkt.nh == 58
    assert pkt.plen == len(out) - 40
    assert pkt.haslayer(PTB) and pkt[PTB].type == 2 and pkt[PTB].code == 0 and pkt[PTB].mtu == 1400
    assert _scapy_checksum_ok(pkt, PTB)
    assert out[48:] == original[:1280 - 48]
    assert packets.ipv6_checksum(HA, HOA, 58, out[40:]) in (0, 0xFFFF)  # the filled sum verifies


def test_packet_too_big_rejects_bad_input():
    with pytest.raises(ValueError):
        packets.icmpv6_packet_too_big(HA[:4], HOA, 1280, b"")
    with pytest.raises(ValueError):
        packets.icmpv6_packet_too_big(HA, HOA, 2**32, b"")


def test_frag_needed_decoded_by_scapy(scapy_all):
    IP, ICMP, UDP = scapy_all.IP, scapy_all.ICMP, scapy_all.UDP
    original = bytes(IP(src="10.0.0.2", dst="192.0.2.9", flags="DF") / UDP(sport=1, dport=2) / (b"z" * 1400))
    out = packets.icmpv4_frag_needed(bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]), 1400, original)
    assert len(out) == 576
    pkt = IP(out)
    assert pkt.src == "10.0.0.1" and pkt.dst == "10.0.0.2" and pkt.proto == 1 and pkt.len == 576
    assert pkt[ICMP].type == 3 and pkt[ICMP].code == 4 and pkt[ICMP].nexthopmtu == 1400
    assert _scapy_checksum_ok(pkt, IP) and _scapy_checksum_ok(pkt, ICMP)
    assert out[28:] == original[:548]
    with pytest.raises(ValueError):
        packets.icmpv4_frag_needed(bytes(4), bytes(4), 67, original)
