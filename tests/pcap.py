"""Test helper: classic pcap files and outer IPv4/IPv6 UDP datagrams with correct checksums.

For cross-checks with tshark (e.g. ``tshark -r FILE -d udp.port==4191,ip``). No I/O beyond the
file `write_pcap` writes; addresses are text.
"""

from __future__ import annotations

import ipaddress
import struct

LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101  # raw IP: version nibble says IPv4 or IPv6

_GLOBAL = struct.Struct("<IHHiIII")  # magic, version 2.4, thiszone, sigfigs, snaplen, linktype
_RECORD = struct.Struct("<IIII")  # seconds, microseconds, captured length, original length
_IP4 = struct.Struct(">BBHHHBBH4s4s")
_IP6 = struct.Struct(">IHBB16s16s")
_UDP = struct.Struct(">HHHH")


def write_pcap(path, packets: list[bytes], linktype: int = LINKTYPE_RAW, *, start: int = 1_700_000_000) -> None:
    """Write `packets` as a pcap file (microsecond timestamps one second apart from `start`)."""
    with open(path, "wb") as f:
        f.write(_GLOBAL.pack(0xA1B2C3D4, 2, 4, 0, 0, 262144, linktype))
        for i, p in enumerate(packets):
            f.write(_RECORD.pack(start + i, 0, len(p), len(p)))
            f.write(p)


def inet_checksum(data: bytes) -> int:
    """RFC 1071 Internet checksum (the value to put in the field)."""
    if len(data) % 2:
        data += b"\0"
    s = int.from_bytes(data, "big") % 0xFFFF
    return (-s) % 0xFFFF


def _udp(pseudo: bytes, sport: int, dport: int, payload: bytes) -> bytes:
    length = 8 + len(payload)
    # RFC 768: a computed 0 is sent as all ones
    csum = inet_checksum(pseudo + _UDP.pack(sport, dport, length, 0) + payload) or 0xFFFF
    return _UDP.pack(sport, dport, length, csum) + payload


def udp_datagram_v6(src: str, dst: str, sport: int, dport: int, payload: bytes, hop_limit: int = 64) -> bytes:
    """IPv6 header (next header 17) + UDP with its checksum over the RFC 8200 §8.1 pseudo-header."""
    s, d = ipaddress.IPv6Address(src).packed, ipaddress.IPv6Address(dst).packed
    length = 8 + len(payload)
    udp = _udp(s + d + struct.pack(">I3xB", length, 17), sport, dport, payload)
    return _IP6.pack(6 << 28, length, 17, hop_limit, s, d) + udp


def udp_datagram_v4(src: str, dst: str, sport: int, dport: int, payload: bytes, ttl: int = 64,
                    ident: int = 0) -> bytes:
    """IPv4 header (20 octets, DF, protocol 17, header checksum) + UDP with its checksum."""
    s, d = ipaddress.IPv4Address(src).packed, ipaddress.IPv4Address(dst).packed
    length = 8 + len(payload)
    udp = _udp(s + d + struct.pack(">xBH", 17, length), sport, dport, payload)
    header = _IP4.pack(0x45, 0, 20 + length, ident, 0x4000, ttl, 17, 0, s, d)
    header = header[:10] + struct.pack(">H", inet_checksum(header)) + header[12:]
    return header + udp
