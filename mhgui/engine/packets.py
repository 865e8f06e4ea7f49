"""Inner IP packet helpers for the engine's data path: addresses of a packet, ICMP errors, checksums.

Pure (no I/O). Addresses are raw bytes (4 for IPv4, 16 for IPv6) as they appear on the wire.

- :func:`inner_addresses`: version, source and destination of an IPv4 (RFC 791) or IPv6 (RFC 8200)
  packet read from the TUN device or opened from a data frame.
- :func:`icmpv6_packet_too_big`: ICMPv6 Packet Too Big (RFC 4443 §3.2), written into the TUN toward
  an inner source whose packet does not fit the tunnel (``../shared/domain/engine.md`` §7, PMTU).
- :func:`icmpv4_frag_needed`: ICMP Destination Unreachable, "fragmentation needed and DF set"
  (RFC 792, next-hop MTU field from RFC 1191 §4), the IPv4 counterpart.
- :func:`ipv6_checksum`: the upper-layer checksum with the IPv6 pseudo-header (RFC 8200 §8.1).
"""

from __future__ import annotations

import struct

__all__ = [
    "IPV4_MIN_REPLY", "IPV6_MIN_MTU", "icmpv4_frag_needed", "icmpv6_packet_too_big", "inet_checksum",
    "inner_addresses", "ipv6_checksum",
]

#: RFC 8200 §5: every IPv6 link carries 1280-byte packets; an ICMPv6 error never exceeds it (RFC 4443 §2.4 (c))
IPV6_MIN_MTU = 1280
#: RFC 1812 §4.3.2.3: an ICMPv4 error carries as much of the original as fits in 576 bytes
IPV4_MIN_REPLY = 576

_NH_ICMPV6 = 58
_NH_UDP = 17
_ICMPV6_PACKET_TOO_BIG = 2
_ICMP_DEST_UNREACH, _ICMP_FRAG_NEEDED = 3, 4

_IPV6 = struct.Struct("!IHBB16s16s")  # version/class/flow, payload length, next header, hop limit, src, dst
_IPV4 = struct.Struct("!BBHHHBBH4s4s")  # ver/IHL, TOS, total length, id, flags/frag, TTL, proto, csum, src, dst
_ICMP_HEAD = struct.Struct("!BBHI")  # type, code, checksum, 4-byte field (MTU / unused + next-hop MTU)


def inet_checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071): one's complement of the one's complement sum of ``data`` as
    big-endian 16-bit words (odd length padded with a zero byte). 0..0xFFFF."""
    if len(data) % 2:
        data = bytes(data) + b"\x00"
    # 2**16 = 1 (mod 0xFFFF): the end-around-carry sum of the words is the number modulo 0xFFFF, except
    # that a non-zero sum congruent to 0 is 0xFFFF (one's complement "negative zero").
    n = int.from_bytes(data, "big")
    total = n % 0xFFFF
    if total == 0 and n:
        total = 0xFFFF
    return ~total & 0xFFFF


def ipv6_checksum(src: bytes, dst: bytes, next_header: int, payload: bytes) -> int:
    """The checksum of an upper-layer ``payload`` (its checksum field zeroed) over the IPv6 pseudo-header
    (RFC 8200 §8.1: ``src`` | ``dst`` (16 bytes each) | upper-layer length (u32) | 3 zero bytes |
    ``next_header``). For UDP (17) a computed 0 is returned as 0xFFFF, as §8.1 requires on the wire.
    ValueError for addresses that are not 16 bytes."""
    if len(src) != 16 or len(dst) != 16:
        raise ValueError("ipv6_checksum: addresses must be 16 bytes")
    pseudo = bytes(src) + bytes(dst) + struct.pack("!IxxxB", len(payload), next_header)
    csum = inet_checksum(pseudo + bytes(payload))
    if csum == 0 and next_header == _NH_UDP:
        return 0xFFFF
    return csum


def inner_addresses(packet: bytes) -> tuple[int, bytes, bytes] | None:
    """``(version, src, dst)`` of an IPv4 (4-byte addresses) or IPv6 (16-byte) packet; None when
    ``packet`` is not a well-formed header: too short, another version, an IPv4 IHL under 5 or beyond the
    packet, or a length field (IPv4 total length, IPv6 40 + payload length) larger than the packet.
    Trailing bytes past the stated length are tolerated (link padding)."""
    n = len(packet)
    if n < 20:
        return None
    version = packet[0] >> 4
    if version == 6:
        if n < 40:
            return None
        _vcf, plen, _nh, _hl, src, dst = _IPV6.unpack_from(packet)
        if 40 + plen > n:
            return None
        return 6, src, dst
    if version == 4:
        ihl = (packet[0] & 0x0F) * 4
        total = (packet[2] << 8) | packet[3]
        if ihl < 20 or ihl > total or total > n:
            return None
        return 4, bytes(packet[12:16]), bytes(packet[16:20])
    return None


def icmpv6_packet_too_big(src: bytes, dst: bytes, mtu: int, original: bytes) -> bytes:
    """A whole IPv6 packet from ``src`` to ``dst`` (16 bytes each; ``dst`` is normally the original's
    source): ICMPv6 Packet Too Big (type 2, code 0, RFC 4443 §3.2) with ``mtu`` (u32, bytes) and as
    much of ``original`` as keeps the packet within 1280 bytes (§2.4 (c)), hop limit 255, checksum over
    the pseudo-header (RFC 4443 §2.3, RFC 8200 §8.1). ValueError for bad addresses or MTU."""
    if len(src) != 16 or len(dst) != 16:
        raise ValueError("icmpv6_packet_too_big: addresses must be 16 bytes")
    if not 0 <= mtu <= 0xFFFFFFFF:
        raise ValueError(f"icmpv6_packet_too_big: MTU {mtu} is not a u32")
    body = bytes(original[:IPV6_MIN_MTU - 40 - 8])
    icmp = _ICMP_HEAD.pack(_ICMPV6_PACKET_TOO_BIG, 0, 0, mtu) + body
    csum = ipv6_checksum(src, dst, _NH_ICMPV6, icmp)
    icmp = icmp[:2] + csum.to_bytes(2, "big") + icmp[4:]
    return _IPV6.pack(6 << 28, len(icmp), _NH_ICMPV6, 255, bytes(src), bytes(dst)) + icmp


def icmpv4_frag_needed(src: bytes, dst: bytes, mtu: int, original: bytes) -> bytes:
    """A whole IPv4 packet from ``src`` to ``dst`` (4 bytes each): ICMP type 3 code 4, "fragmentation
    needed and DF set" (RFC 792), with the next-hop ``mtu`` (u16, RFC 1191 §4) and as much of
    ``original`` as keeps the packet within 576 bytes (RFC 1812 §4.3.2.3; RFC 792 requires at least the
    original header and 8 bytes). TTL 64, DF clear, both checksums set. ValueError for bad input."""
    if len(src) != 4 or len(dst) != 4:
        raise ValueError("icmpv4_frag_needed: addresses must be 4 bytes")
    if not 68 <= mtu <= 0xFFFF:
        raise ValueError(f"icmpv4_frag_needed: MTU {mtu} is not in 68..65535 (RFC 791 minimum 68)")
    body = bytes(original[:IPV4_MIN_REPLY - 20 - 8])
    icmp = _ICMP_HEAD.pack(_ICMP_DEST_UNREACH, _ICMP_FRAG_NEEDED, 0, mtu) + body
    icmp = icmp[:2] + inet_checksum(icmp).to_bytes(2, "big") + icmp[4:]
    header = _IPV4.pack(0x45, 0, 20 + len(icmp), 0, 0, 64, 1, 0, bytes(src), bytes(dst))
    header = header[:10] + inet_checksum(header).to_bytes(2, "big") + header[12:]
    return header + icmp
