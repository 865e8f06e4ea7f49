"""Mobility Header (RFC 6275 section 6.1) encoding and decoding, and the raw socket.

Wire format written here:

* Binding Update, MH type 5 (section 6.1.7): Payload Proto 59, Header Len in
  8-octet units minus one, checksum (filled in by the kernel, ``IPV6_CHECKSUM``
  offset 4), Sequence (u16), flags (A 0x8000, H 0x4000, L 0x2000, K 0x1000,
  R 0x0400), Lifetime in 4-second units, then mobility options padded to a
  multiple of 8 octets with Pad1/PadN.
* Binding Acknowledgement, MH type 6 (section 6.1.8): Status (u8), flags
  (K 0x80, R 0x40), Sequence, Lifetime in 4-second units, options.

**Where the home address travels (a deviation, on purpose).** A real mobile node
puts its HoA in a Home Address destination option (type 201) and the home
agent answers with a type 2 routing header. Both need ``CONFIG_IPV6_MIP6`` on
the *receiving* kernel: without it, option type 201 (top bits ``11``) makes the
kernel drop the packet and send an ICMPv6 Parameter Problem before any raw
socket sees it, and a type 2 routing header is dropped likewise. The kernels
here lack that option, so the double carries the HoA inside the Mobility
Header instead, in an RFC 5096 *Experimental Mobility Option* (type 18) whose
data is exactly the 16 octets of the home address. BU and BA both carry it;
a peer that does not know it skips it as an unknown option (RFC 6275 6.2.1).
The packets therefore go CoA -> HA (BU) and HA -> CoA (BA) with no extension
headers in front of the Mobility Header.
"""

from __future__ import annotations

import ctypes
import ipaddress
import socket
import struct
from dataclasses import dataclass, field

IPPROTO_MH = 135
NO_NEXT_HEADER = 59

MH_BRR, MH_HOTI, MH_COTI, MH_HOT, MH_COT, MH_BU, MH_BA, MH_BE = range(8)
MH_NAMES = {
    MH_BRR: "Binding Refresh Request",
    MH_HOTI: "Home Test Init",
    MH_COTI: "Care-of Test Init",
    MH_HOT: "Home Test",
    MH_COT: "Care-of Test",
    MH_BU: "Binding Update",
    MH_BA: "Binding Acknowledgement",
    MH_BE: "Binding Error",
}

BU_A = 0x8000
BU_H = 0x4000
BU_L = 0x2000
BU_K = 0x1000
BU_M = 0x0800
BU_R = 0x0400

BA_K = 0x80
BA_R = 0x40

OPT_PAD1 = 0
OPT_PADN = 1
OPT_ALTCOA = 3
OPT_EXPERIMENTAL = 18  # RFC 5096; data = 16-octet home address (see module docstring)

# Binding Acknowledgement status codes used here (RFC 6275 6.1.8)
BA_ACCEPTED = 0
BA_PROHIBITED = 129
BA_NOT_HOME_SUBNET = 132
BA_SEQ_OUT_OF_WINDOW = 135

MAX_LIFETIME_UNITS = 0xFFFF  # 262140 s


@dataclass
class Message:
    mh_type: int
    seq: int = 0
    flags: int = 0  # BU: 16-bit flags; BA: 8-bit flags
    lifetime_units: int = 0
    status: int = 0  # BA only
    hoa: ipaddress.IPv6Address | None = None  # from the experimental option
    alt_coa: ipaddress.IPv6Address | None = None
    options: list[tuple[int, bytes]] = field(default_factory=list)

    @property
    def lifetime(self) -> int:
        return self.lifetime_units * 4


def _pad(body: bytes) -> bytes:
    """Pad the whole MH (``body`` starts at the Payload Proto octet) to 8n octets."""
    missing = (-len(body)) % 8
    if missing == 1:
        return body + bytes([OPT_PAD1])
    if missing >= 2:
        return body + bytes([OPT_PADN, missing - 2]) + bytes(missing - 2)
    return body


def _padn_to(offset: int, want: int) -> bytes:
    """Padding so that an option starts at an offset ``== want (mod 8)``."""
    missing = (want - offset) % 8
    if missing == 0:
        return b""
    if missing == 1:
        return bytes([OPT_PAD1])
    return bytes([OPT_PADN, missing - 2]) + bytes(missing - 2)


def _options(msg: Message, offset: int) -> bytes:
    """Options starting at ``offset``; address options aligned 8n+6 as RFC 6275 asks."""
    out = b""
    addr_opts = []
    if msg.alt_coa is not None:
        addr_opts.append((OPT_ALTCOA, msg.alt_coa.packed))
    if msg.hoa is not None:
        addr_opts.append((OPT_EXPERIMENTAL, msg.hoa.packed))
    for typ, data in addr_opts:
        out += _padn_to(offset + len(out), 6)
        out += bytes([typ, 16]) + data
    for typ, data in msg.options:
        out += bytes([typ, len(data)]) + data
    return out


def encode(msg: Message) -> bytes:
    """The Mobility Header with a zero checksum (the kernel computes it)."""
    if msg.mh_type == MH_BU:
        data = struct.pack("!HHH", msg.seq & 0xFFFF, msg.flags & 0xFFFF, msg.lifetime_units)
    elif msg.mh_type == MH_BA:
        data = struct.pack("!BBHH", msg.status, msg.flags & 0xFF, msg.seq & 0xFFFF, msg.lifetime_units)
    else:
        raise ValueError(f"cannot encode MH type {msg.mh_type}")
    head = struct.pack("!BBBBH", NO_NEXT_HEADER, 0, msg.mh_type, 0, 0) + data
    body = _pad(head + _options(msg, len(head)))
    hdr_len = len(body) // 8 - 1
    return body[:1] + bytes([hdr_len]) + body[2:]


class DecodeError(ValueError):
    pass


def decode(buf: bytes) -> Message:
    if len(buf) < 6:
        raise DecodeError("short")
    proto, hdr_len, mh_type, _res, _csum = struct.unpack_from("!BBBBH", buf)
    if proto != NO_NEXT_HEADER:
        raise DecodeError("payload proto")
    if (hdr_len + 1) * 8 != len(buf):
        raise DecodeError("header length")
    if mh_type == MH_BU:
        if len(buf) < 12:
            raise DecodeError("short BU")
        seq, flags, lt = struct.unpack_from("!HHH", buf, 6)
        msg = Message(MH_BU, seq=seq, flags=flags, lifetime_units=lt)
    elif mh_type == MH_BA:
        if len(buf) < 12:
            raise DecodeError("short BA")
        status, flags, seq, lt = struct.unpack_from("!BBHH", buf, 6)
        msg = Message(MH_BA, seq=seq, flags=flags, lifetime_units=lt, status=status)
    else:
        return Message(mh_type)
    i = 12
    while i < len(buf):
        typ = buf[i]
        if typ == OPT_PAD1:
            i += 1
            continue
        if i + 2 > len(buf):
            raise DecodeError("option header")
        ln = buf[i + 1]
        data = buf[i + 2:i + 2 + ln]
        if len(data) != ln:
            raise DecodeError("option length")
        if typ == OPT_EXPERIMENTAL and ln == 16:
            msg.hoa = ipaddress.IPv6Address(data)
        elif typ == OPT_ALTCOA and ln == 16:
            msg.alt_coa = ipaddress.IPv6Address(data)
        elif typ != OPT_PADN:
            msg.options.append((typ, data))
        i += 2 + ln
    return msg


def _drop_all_filter(sock: socket.socket) -> None:
    """Attach the classic BPF program ``ret #0``: the socket never queues a packet."""
    insn = (ctypes.c_ubyte * 8).from_buffer_copy(struct.pack("=HBBI", 0x06, 0, 0, 0))  # BPF_RET|BPF_K, 0
    prog = struct.pack("@HP", 1, ctypes.addressof(insn))  # struct sock_fprog, native alignment
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, prog)


SO_ATTACH_FILTER = 26


class MHSocket:
    """Raw IPv6 sockets for protocol 135; the kernel fills and checks the MH checksum.

    One socket receives (unbound, ``IPV6_RECVPKTINFO``). Sending uses a second
    socket that never queues anything (a drop-all BPF filter) and is bound with
    ``SO_BINDTODEVICE`` to the interface of each BU: ``IPV6_PKTINFO``'s ifindex
    alone does not make the route lookup strict, so a BU meant for uplink B
    would follow the better default route of a dead uplink A.
    """

    def __init__(self) -> None:
        self.rx = socket.socket(socket.AF_INET6, socket.SOCK_RAW, IPPROTO_MH)
        self.tx = socket.socket(socket.AF_INET6, socket.SOCK_RAW, IPPROTO_MH)
        for s in (self.rx, self.tx):
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_CHECKSUM, 4)
            s.setblocking(False)
        self.rx.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
        _drop_all_filter(self.tx)
        self._bound = b""

    def fileno(self) -> int:
        return self.rx.fileno()

    def close(self) -> None:
        self.rx.close()
        self.tx.close()

    def send(self, payload: bytes, src: ipaddress.IPv6Address, dst: ipaddress.IPv6Address, ifindex: int = 0) -> None:
        """Send from ``src`` (out of ``ifindex`` when non-zero) to ``dst``; raises OSError."""
        dev = socket.if_indextoname(ifindex).encode() if ifindex else b""
        if dev != self._bound:
            self.tx.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, dev)
            self._bound = dev
        pktinfo = src.packed + struct.pack("@I", ifindex)
        self.tx.sendmsg([payload], [(socket.IPPROTO_IPV6, socket.IPV6_PKTINFO, pktinfo)], 0, (str(dst), 0))

    def recv(self) -> tuple[bytes, ipaddress.IPv6Address, ipaddress.IPv6Address | None, int]:
        """One datagram: (payload, source, destination or None, arrival ifindex)."""
        data, anc, _flags, addr = self.rx.recvmsg(4096, socket.CMSG_SPACE(20))
        dst = None
        ifindex = 0
        for level, typ, cdata in anc:
            if level == socket.IPPROTO_IPV6 and typ == socket.IPV6_PKTINFO and len(cdata) >= 20:
                dst = ipaddress.IPv6Address(cdata[:16])
                ifindex = struct.unpack("@I", cdata[16:20])[0]
        src = ipaddress.IPv6Address(addr[0].split("%")[0])
        return data, src, dst, ifindex
