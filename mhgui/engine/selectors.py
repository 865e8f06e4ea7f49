"""Flow bindings and traffic selectors (RFC 6089, RFC 6088): the model, the binary format, matching.

Pure: no I/O. :class:`TrafficSelector` is RFC 6088's IPv6 binary traffic
selector (TS Format 2), :class:`FlowBinding` one RFC 6089 flow binding (a
selector bound to one or more BIDs). :func:`encode_selector` and
:func:`decode_selector` are the wire format (the bytes after the Traffic
Selector sub-option's TS Format and Reserved octets); :class:`FlowTable` finds
the binding of a packet in constant time for exact five-tuple selectors and in
one pass over the others.

A selector is written the way the home agent sees the flow (RFC 6088 §3.2):
``source_*`` is the correspondent, ``destination_*`` the mobile node's home
address. The mobile node matches its own (upstream) packets with the two
swapped (:meth:`FlowTable.lookup` ``upstream=True``).
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

__all__ = ["FlowBinding", "FlowTable", "PacketKey", "SelectorError", "TrafficSelector", "decode_selector",
           "encode_selector", "packet_key", "TS_FORMAT_IPV4", "TS_FORMAT_IPV6"]

TS_FORMAT_IPV4 = 1  # RFC 6088 §3.1 (not carried by the engine: its home addresses are IPv6)
TS_FORMAT_IPV6 = 2  # RFC 6088 §3.2

_PORT_PROTOCOLS = frozenset((6, 17, 33, 132, 136))  # TCP, UDP, DCCP, SCTP, UDP-Lite: ports in the first 4 octets
_ESP = 50


class SelectorError(ValueError):
    """A selector that cannot be decoded or built (the message says what)."""


# ----------------------------------------------------------------------------------- model
def _range(name: str, value, lo: int, hi: int) -> tuple[int, int] | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value, value)
    try:
        start, end = value
    except (TypeError, ValueError):
        raise ValueError(f"{name}: a value or a (start, end) pair, not {value!r}") from None
    for v in (start, end):
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise ValueError(f"{name}: {v!r} is outside {lo}..{hi}")
    if start > end:
        raise ValueError(f"{name}: start {start} is after end {end} (ranges are inclusive, RFC 6088 section 3.2)")
    return (start, end)


def _addr_range(name: str, value) -> tuple[str, str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = (value, value)
    try:
        start, end = value
    except (TypeError, ValueError):
        raise ValueError(f"{name}: an address or a (start, end) pair, not {value!r}") from None
    if any(isinstance(x, str) and "%" in x for x in (start, end)):
        raise ValueError(f"{name}: a zone (%...) has no place in a selector: the home agent sees global addresses")
    try:
        a, b = ipaddress.IPv6Address(start), ipaddress.IPv6Address(end)
    except ValueError as e:
        raise ValueError(f"{name}: {e}") from None
    if a > b:
        raise ValueError(f"{name}: start {a} is after end {b}")
    return (a.compressed, b.compressed)


_FIELDS = ("source_address", "destination_address", "spi", "flow_label", "source_port", "destination_port",
           "traffic_class", "next_header")


@dataclass(frozen=True)
class TrafficSelector:
    """RFC 6088 section 3.2 IPv6 binary traffic selector (TS Format 2).

    Each field is None (absent) or an inclusive ``(start, end)`` range; a
    single value may be given and becomes ``(v, v)``. RFC 6088 flags:
    A/B ``source_address`` (the correspondent, as the HA sees it), C/D
    ``destination_address`` (the MN's HoA), E/F ``spi`` (IPsec SPI, 32 bits),
    G/H ``flow_label`` (a 24-bit field; IPv6 labels are 20 bits, RFC 8200
    section 6, so larger values are refused), I/J ``source_port``, K/L
    ``destination_port`` (16 bits), M/N ``traffic_class``, O/P
    ``next_header`` (8 bits). The format cannot express an end without its
    start, so a range always carries both. Raises ValueError on a bad field.
    """

    source_address: tuple[str, str] | None = None
    destination_address: tuple[str, str] | None = None
    spi: tuple[int, int] | None = None
    flow_label: tuple[int, int] | None = None
    source_port: tuple[int, int] | None = None
    destination_port: tuple[int, int] | None = None
    traffic_class: tuple[int, int] | None = None
    next_header: tuple[int, int] | None = None

    TS_FORMAT = TS_FORMAT_IPV6

    def __post_init__(self) -> None:
        s = object.__setattr__
        s(self, "source_address", _addr_range("source_address", self.source_address))
        s(self, "destination_address", _addr_range("destination_address", self.destination_address))
        s(self, "spi", _range("spi", self.spi, 0, 0xFFFFFFFF))
        s(self, "flow_label", _range("flow_label", self.flow_label, 0, 0xFFFFF))
        s(self, "source_port", _range("source_port", self.source_port, 0, 0xFFFF))
        s(self, "destination_port", _range("destination_port", self.destination_port, 0, 0xFFFF))
        s(self, "traffic_class", _range("traffic_class", self.traffic_class, 0, 0xFF))
        s(self, "next_header", _range("next_header", self.next_header, 0, 0xFF))
        if (self.source_port is not None or self.destination_port is not None) and self.next_header is not None \
                and not any(self.next_header[0] <= p <= self.next_header[1] for p in _PORT_PROTOCOLS):
            raise ValueError(f"ports with next header {self.next_header[0]}..{self.next_header[1]}: no packet of "
                             "that protocol carries ports, the selector could never match")

    def flags(self) -> str:
        """The RFC 6088 A-P flags this selector sets, e.g. ``"CDKL"``."""
        out = []
        for (start, end), value in zip(("AB", "CD", "EF", "GH", "IJ", "KL", "MN", "OP"),
                                       (getattr(self, f) for f in _FIELDS)):
            if value is not None:
                out.append(start)
                if value[0] != value[1]:
                    out.append(end)
        return "".join(out)

    def exact_key(self) -> tuple | None:
        """(next header, source, destination, source port, destination port) when the selector names one
        transport flow exactly and nothing else, else None."""
        if self.spi or self.flow_label or self.traffic_class:
            return None
        vals = (self.next_header, self.source_address, self.destination_address, self.source_port,
                self.destination_port)
        if any(v is None or v[0] != v[1] for v in vals):
            return None
        nh, src, dst, sp, dp = (v[0] for v in vals)
        if nh not in _PORT_PROTOCOLS:
            return None
        return (nh, ipaddress.IPv6Address(src).packed, ipaddress.IPv6Address(dst).packed, sp, dp)

    def describe(self) -> str:
        """Short words for a person: ``tcp [2001:db8::5]:443 ↔ home :50000``."""
        proto = {6: "tcp", 17: "udp", 58: "icmpv6"}.get(self.next_header[0], f"proto {self.next_header[0]}") \
            if self.next_header and self.next_header[0] == self.next_header[1] else "any"

        def end(addr, port):
            a = "*" if addr is None else addr[0] if addr[0] == addr[1] else f"{addr[0]}-{addr[1]}"
            p = "" if port is None else f":{port[0]}" if port[0] == port[1] else f":{port[0]}-{port[1]}"
            return f"[{a}]{p}" if p else a
        return f"{proto} {end(self.source_address, self.source_port)} ↔ " \
               f"{end(self.destination_address, self.destination_port)}"


@dataclass(frozen=True)
class FlowBinding:
    """One RFC 6089 flow binding (FID mobility option, section 4.1).

    ``fid``: Flow Identifier (u16, 0 reserved); ``fid_priority``: FID-PRI
    (u16, 0 reserved, lower is matched first, unique per MN); ``bid_refs``:
    the Binding Reference sub-option (section 4.2), the BIDs (RFC 5648) the
    flow goes to: one = forward, several = n-cast (section 3.2);
    ``selector``: the Traffic Selector sub-option (exactly one per new flow,
    RFC 6089 section 5.2.1). Raises ValueError on a bad field.
    """

    fid: int
    fid_priority: int
    bid_refs: tuple[int, ...]
    selector: TrafficSelector

    def __post_init__(self) -> None:
        for name in ("fid", "fid_priority"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 0xFFFF:
                raise ValueError(f"{name} must be in 1..65535 (0 is reserved, RFC 6089 section 4.1), not {v!r}")
        refs = tuple(self.bid_refs)
        if not refs:
            raise ValueError("a flow binding needs at least one BID (Binding Reference, RFC 6089 section 4.2)")
        for b in refs:
            if isinstance(b, bool) or not isinstance(b, int) or not 1 <= b <= 0xFFFF:
                raise ValueError(f"BID must be in 1..65535 (0 is reserved, RFC 5648 section 6.1), not {b!r}")
        if len(set(refs)) != len(refs):
            raise ValueError("a BID is listed twice in the Binding Reference")
        object.__setattr__(self, "bid_refs", refs)
        if not isinstance(self.selector, TrafficSelector):
            raise ValueError("selector must be a TrafficSelector")


# ----------------------------------------------------------------------------------- wire
# (field, size in octets) in RFC 6088 §3.2 order; flag bit 15 - 2i is the start, 14 - 2i the end
_LAYOUT = (("source_address", 16), ("destination_address", 16), ("spi", 4), ("flow_label", 3),
           ("source_port", 2), ("destination_port", 2), ("traffic_class", 1), ("next_header", 1))
_HEAD = struct.Struct(">HH")


def _to_bytes(value, size: int) -> bytes:
    if size == 16:
        return ipaddress.IPv6Address(value).packed
    return value.to_bytes(size, "big")


def encode_selector(ts: TrafficSelector) -> bytes:
    """The RFC 6088 §3.2 selector: flags A-P (u16), reserved (u16), then each flagged value in order.
    A single value is sent as a start without an end."""
    flags, body = 0, bytearray()
    for i, (name, size) in enumerate(_LAYOUT):
        v = getattr(ts, name)
        if v is None:
            continue
        flags |= 1 << (15 - 2 * i)
        body += _to_bytes(v[0], size)
        if v[0] != v[1]:
            flags |= 1 << (14 - 2 * i)
            body += _to_bytes(v[1], size)
    return _HEAD.pack(flags, 0) + bytes(body)


def decode_selector(data: bytes) -> TrafficSelector:
    """Parse the bytes :func:`encode_selector` makes. Strict: every flagged field present, nothing after
    them, no end without its start, values in range. Raises SelectorError."""
    if len(data) < 4:
        raise SelectorError(f"traffic selector of {len(data)} octets, at least 4 (flags, reserved) needed")
    flags = _HEAD.unpack_from(data)[0]
    off, fields = 4, {}
    for i, (name, size) in enumerate(_LAYOUT):
        has_start, has_end = flags >> (15 - 2 * i) & 1, flags >> (14 - 2 * i) & 1
        if has_end and not has_start:
            raise SelectorError(f"{name}: an end without a start (flags 0x{flags:04x})")
        if not has_start:
            continue
        n = size * (2 if has_end else 1)
        if off + n > len(data):
            raise SelectorError(f"{name} runs past the selector's end at offset {off}")
        raw = data[off:off + n]
        off += n
        if size == 16:
            vals = [ipaddress.IPv6Address(raw[j:j + 16]).compressed for j in range(0, n, 16)]
        else:
            vals = [int.from_bytes(raw[j:j + size], "big") for j in range(0, n, size)]
        fields[name] = (vals[0], vals[-1])
    if off != len(data):
        raise SelectorError(f"{len(data) - off} octets after the last flagged field")
    try:
        return TrafficSelector(**fields)
    except ValueError as e:
        raise SelectorError(str(e)) from None


# ----------------------------------------------------------------------------------- matching
class PacketKey(tuple):
    """(next header, source 16 B, destination 16 B, source port or -1, destination port or -1, traffic class,
    flow label, SPI or -1) of an IPv6 packet as its first header shows it."""
    __slots__ = ()


_EXTENSIONS = frozenset((0, 43, 60))  # hop-by-hop, routing, destination options (RFC 8200 §4.3-4.6)
_FRAGMENT = 44


def five_tuple(packet: bytes) -> tuple | None:
    """(next header, source 16 B, destination 16 B, source port, destination port) of an IPv6 packet whose
    first header is followed directly by TCP, UDP, DCCP, SCTP or UDP-Lite; None otherwise (the fast path:
    :func:`packet_key` handles the rest)."""
    if len(packet) < 44 or packet[6] not in _PORT_PROTOCOLS:
        return None
    return (packet[6], packet[8:24], packet[24:40], packet[40] << 8 | packet[41], packet[42] << 8 | packet[43])


def _transport(packet: bytes) -> tuple[int, int]:
    """(upper-layer protocol, offset of its header) past the extension headers (RFC 8200 §4); offset -1 when
    its header is not in this packet (a later fragment, or truncated)."""
    nh, off = packet[6], 40
    for _ in range(8):  # a bounded walk: no packet needs more
        if nh in _EXTENSIONS:
            if off + 2 > len(packet):
                return nh, -1
            nh, off = packet[off], off + 8 + packet[off + 1] * 8
        elif nh == _FRAGMENT:
            if off + 8 > len(packet):
                return nh, -1
            first = (packet[off + 2] << 8 | packet[off + 3]) & 0xFFF8 == 0
            nh, off = packet[off], (off + 8 if first else -1)
            if off < 0:
                return nh, -1
        else:
            return nh, off
    return nh, -1


def packet_key(packet: bytes) -> PacketKey | None:
    """The :class:`PacketKey` of an IPv6 packet, None if it is not one (shorter than its header). The
    upper-layer protocol and ports are found past extension headers; a later fragment has no ports."""
    if len(packet) < 40 or packet[0] >> 4 != 6:
        return None
    nh, off = _transport(packet)
    tc = (packet[0] & 0x0F) << 4 | packet[1] >> 4
    fl = (packet[1] & 0x0F) << 16 | packet[2] << 8 | packet[3]
    sp = dp = spi = -1
    if off >= 0 and len(packet) >= off + 4:
        if nh in _PORT_PROTOCOLS:
            sp, dp = packet[off] << 8 | packet[off + 1], packet[off + 2] << 8 | packet[off + 3]
        elif nh == _ESP:
            spi = int.from_bytes(packet[off:off + 4], "big")
    return PacketKey((nh, packet[8:24], packet[24:40], sp, dp, tc, fl, spi))


def _in(r, v) -> bool:
    return r is None or r[0] <= v <= r[1]


class _Compiled:
    __slots__ = ("priority", "bids", "nh", "src", "dst", "sp", "dp", "tc", "fl", "spi", "fid")

    def __init__(self, fb: FlowBinding) -> None:
        ts = fb.selector
        self.fid, self.priority, self.bids = fb.fid, fb.fid_priority, fb.bid_refs

        def addr(r):
            return None if r is None else (ipaddress.IPv6Address(r[0]).packed, ipaddress.IPv6Address(r[1]).packed)
        self.nh, self.src, self.dst = ts.next_header, addr(ts.source_address), addr(ts.destination_address)
        self.sp, self.dp, self.tc, self.fl, self.spi = (ts.source_port, ts.destination_port, ts.traffic_class,
                                                        ts.flow_label, ts.spi)

    def matches(self, k: PacketKey, upstream: bool) -> bool:
        nh, a, b, pa, pb, tc, fl, spi = k
        if upstream:  # our own packet: its source is the selector's destination (the home address)
            a, b, pa, pb = b, a, pb, pa
        return (_in(self.nh, nh) and _in(self.src, a) and _in(self.dst, b) and _in(self.tc, tc)
                and _in(self.fl, fl) and (self.sp is None or pa >= 0 and _in(self.sp, pa))
                and (self.dp is None or pb >= 0 and _in(self.dp, pb))
                and (self.spi is None or spi >= 0 and _in(self.spi, spi)))


class FlowTable:
    """The flow bindings of one node, for per-packet lookups.

    ``lookup(key, upstream)`` returns the matching binding's BIDs (the one with the lowest FID-PRI when
    several match, RFC 6089 §3.1) or None. Exact five-tuple selectors are found by hashing; the others
    are tried in priority order, so the cost is flat in the number of exact bindings.
    """

    __slots__ = ("_exact_down", "_exact_up", "_ranged", "bindings")

    def __init__(self, bindings=()) -> None:
        self.bindings: dict[int, FlowBinding] = {}
        self._exact_down: dict[tuple, _Compiled] = {}
        self._exact_up: dict[tuple, _Compiled] = {}
        self._ranged: list[_Compiled] = []
        for fb in bindings:
            self.bindings[fb.fid] = fb
        self._build()

    def _build(self) -> None:
        self._exact_down.clear()
        self._exact_up.clear()
        ranged = []
        for fb in self.bindings.values():
            c = _Compiled(fb)
            k = fb.selector.exact_key()
            if k is None:
                ranged.append(c)
                continue
            nh, src, dst, sp, dp = k
            for table, key in ((self._exact_down, (nh, src, dst, sp, dp)), (self._exact_up, (nh, dst, src, dp, sp))):
                old = table.get(key)
                if old is None or c.priority < old.priority:
                    table[key] = c
        ranged.sort(key=lambda c: c.priority)
        self._ranged = ranged

    def replace(self, bindings) -> None:
        """Take ``bindings`` (FlowBinding iterable) as the whole set."""
        self.bindings = {fb.fid: fb for fb in bindings}
        self._build()

    def __len__(self) -> int:
        return len(self.bindings)

    def lookup_packet(self, packet: bytes, upstream: bool = False) -> tuple[int, ...] | None:
        """:meth:`lookup` for an IPv6 packet: the exact five-tuple first (built without the full key), the
        full :func:`packet_key` only when ranged selectors exist."""
        if not self.bindings or len(packet) < 44:
            return None if not self._ranged else self._lookup_key(packet, upstream)
        k = five_tuple(packet)
        if k is not None:
            c = (self._exact_up if upstream else self._exact_down).get(k)
            if c is not None and (not self._ranged or self._ranged[0].priority > c.priority):
                return c.bids
            return self._lookup_key(packet, upstream) if self._ranged else None
        return self._lookup_key(packet, upstream)  # extension headers, ESP, ICMPv6...

    def _lookup_key(self, packet: bytes, upstream: bool) -> tuple[int, ...] | None:
        k = packet_key(packet)
        return self.lookup(k, upstream) if k is not None else None

    def lookup(self, k: PacketKey, upstream: bool = False) -> tuple[int, ...] | None:
        """BIDs of the best binding for the packet with key ``k``, or None when no binding matches."""
        if not self.bindings:
            return None
        best = (self._exact_up if upstream else self._exact_down).get((k[0], k[1], k[2], k[3], k[4]))
        for c in self._ranged:
            if best is not None and c.priority >= best.priority:
                break
            if c.matches(k, upstream):
                best = c
                break
        return best.bids if best is not None else None
