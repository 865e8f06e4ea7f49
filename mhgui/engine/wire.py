"""Mobile IPv6 Mobility Header codec (RFC 6275 §6.1/§6.2 and the option RFCs named below).

Pure: no I/O. Messages and options are frozen dataclasses; `encode_mh` lays the options out
(alignment, Pad1/PadN, 8-octet padding, Header Len, checksum) and `decode_mh` parses strictly.
Addresses are given as text (IPv6, or IPv4 where a field is IPv4) or 16 packed bytes, and come
back as RFC 5952 canonical text (IPv4-mapped addresses as ``::ffff:a.b.c.d``).
Every malformed, truncated or unsupported input raises `WireError`, never anything else.

Wire facts and test vectors: ``shared/domain/engine.md`` (§1, §2, §3, §5, §6, vectors V1–V3).

Cost (CPython 3.11, 2 vCPU dev VM, timeit): a BindingUpdate with 4 options (AlternateCareOf,
ReplayProtection, VendorSpecific, BindingIdentifier) encodes in ~3.5 µs and decodes (checksum
included) in ~7.5 µs; encode_authenticated of it (+ MN-ID, + HMAC-SHA1) ~10 µs,
verify_authenticator ~5 µs.
"""

from __future__ import annotations

import hmac
import ipaddress
import struct
from dataclasses import dataclass
from functools import lru_cache
from typing import Union

from . import selectors as _sel


class WireError(ValueError):
    """The codec's one error: any malformed, truncated or unsupported input raises it (the message
    says what and at which offset)."""


class UnknownMHType(WireError):
    """A well-framed MH of a type this codec does not handle; `mh_type` lets a node answer with a
    Binding Error (status 2, RFC 6275 §9.2)."""

    def __init__(self, mh_type: int):
        super().__init__(f"unsupported MH type {mh_type} at offset 2")
        self.mh_type = mh_type


MH_BRR = 0
MH_BU = 5
MH_BA = 6
MH_BE = 7
MH_HEARTBEAT = 13
IPPROTO_MH = 135
_NO_NEXT_HEADER = 59
_MAX_MH = 2048  # Header Len is one octet: (255 + 1) * 8

# Binding Update flags (u16 at MH offset 8): RFC 6275, 5380 (M), 3963 (R), 5213 (P), 5555 (F), 5845 (T), 6602 (B)
BU_A, BU_H, BU_L, BU_K = 0x8000, 0x4000, 0x2000, 0x1000
BU_M, BU_R, BU_P, BU_F = 0x0800, 0x0400, 0x0200, 0x0100
BU_T, BU_B = 0x0080, 0x0040
# Binding Acknowledgement flags (u8 at MH offset 7)
BA_K, BA_R, BA_P, BA_T, BA_B = 0x80, 0x40, 0x20, 0x10, 0x08

# Binding Acknowledgement status (RFC 6275 §6.1.8; 3963; 4285 §8; 5648 §6.2): < 128 accepted
BA_STATUS: dict[int, str] = {
    0: "accepted", 1: "accepted, prefix discovery necessary",
    4: "accepted, but not every binding of the registration was created (MCoA: see each BID's status)",
    5: "accepted: returned home without neighbour discovery (MCoA)",
    128: "reason unspecified", 129: "administratively prohibited",
    130: "insufficient resources", 131: "home registration not supported",
    132: "not home subnet", 133: "not home agent for this mobile node",
    134: "duplicate address detection failed", 135: "sequence number out of window",
    136: "expired home nonce index", 137: "expired care-of nonce index",
    138: "expired nonces", 139: "registration type change disallowed",
    140: "mobile router operation not permitted (NEMO)", 141: "invalid prefix (NEMO)",
    142: "not authorized for prefix (NEMO)", 143: "forwarding setup failed (NEMO)",
    # RFC 4285 §6/§8: "ID" is the Replay Protection (MESG-ID) timestamp, as in Mobile IPv4's
    # "registration Identification mismatch"; the BA carries the home agent's own time.
    144: "registration timestamp mismatch: clock skew or replay (MIPV6-ID-MISMATCH)",
    145: "replay protection (MESG-ID) option required but missing (MIPV6-MESG-ID-REQD)",
    146: "authentication failed (MIPV6-AUTH-FAIL)",
    164: "MCoA: malformed binding identifier", 165: "MCoA: a non-MCoA binding exists",
    166: "MCoA: multiple care-of addresses prohibited",
    167: "MCoA: unknown care-of address for this binding identifier",
    168: "MCoA: bulk registration prohibited",
    169: "MCoA: simultaneous home and foreign attachment prohibited",
    174: "invalid care-of address",
}


def ba_status_text(code: int) -> str:
    """Words for a Binding Acknowledgement status, or ``"unknown status N"``."""
    return BA_STATUS.get(code, f"unknown status {code}")


# ---------------------------------------------------------------------------------- addresses
_V4MAPPED = b"\0" * 10 + b"\xff\xff"
_ZERO16 = bytes(16)


@lru_cache(maxsize=4096)
def _text16(a: str) -> bytes:
    try:
        if ":" in a:
            if "%" in a:
                raise ValueError
            return ipaddress.IPv6Address(a).packed
        return _V4MAPPED + ipaddress.IPv4Address(a).packed
    except ValueError:
        raise WireError(f"not an IP address: {a!r}") from None


def addr16(a: str | bytes) -> bytes:
    """16 packed bytes from IPv6 text, 16 bytes, or IPv4 text (-> IPv4-mapped ::ffff:a.b.c.d); WireError on junk."""
    if isinstance(a, str):
        return _text16(a)
    if isinstance(a, (bytes, bytearray, memoryview)) and len(a) == 16:
        return bytes(a)
    raise WireError(f"not an IPv6 address (text or 16 bytes): {a!r}")


@lru_cache(maxsize=4096)
def ntop6(b: bytes) -> str:
    """RFC 5952 text of 16 packed bytes (IPv4-mapped as ``::ffff:a.b.c.d``); cached."""
    if b[:12] == _V4MAPPED:  # RFC 5952 §5
        return "::ffff:" + ".".join(map(str, b[12:]))
    return ipaddress.IPv6Address(b).compressed


@lru_cache(maxsize=4096)
def _ntop4(b: bytes) -> str:
    return ".".join(map(str, b))


def _canon6(a, what: str) -> str:
    if not isinstance(a, (str, bytes, bytearray, memoryview)) or isinstance(a, str) and ":" not in a:
        raise WireError(f"{what} must be an IPv6 address, got {a!r}")
    return ntop6(addr16(a))


@lru_cache(maxsize=1024)
def _pack4(a: str) -> bytes:
    try:
        return ipaddress.IPv4Address(a).packed
    except ValueError:
        raise WireError(f"not an IPv4 address: {a!r}") from None


def _canon4(a, what: str) -> str:
    if not isinstance(a, str):
        raise WireError(f"{what} must be IPv4 text, got {a!r}")
    return _ntop4(_pack4(a))


def _bytes(obj, name: str, limit: int) -> None:
    v = getattr(obj, name)
    if not isinstance(v, (bytes, bytearray)) or len(v) > limit:
        raise WireError(f"{name} must be bytes of at most {limit} octets, got {v!r}")
    _set(obj, name, bytes(v))


_set = object.__setattr__
_new = object.__new__
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")


# ---------------------------------------------------------------------------------- options
# Alignment (x, y): the option's Type octet sits at x*n + y from the MH start (RFC 6275 §6.2).
# Our readings, where the RFC text was not at hand: RFC 6275 BRA 2n, Alternate CoA 8n+6;
# RFC 4283 MN-ID none; RFC 4285 Replay Protection 8n+2, Mobility Message Authentication 8n+2
# (the project's decision, vector V3; scapy's table says 4n+1); RFC 5094 Vendor-Specific 4n+2;
# RFC 5847 Restart Counter 4n+2 (its u32 on 4n); RFC 5555 options 4n (their IPv4 address on 4n);
# RFC 5648 Binding Identifier 2n. Decoding accepts any alignment.
class _Fields:
    """Constructor checks from class specs: _U (field, max) integers 0..max, _B bools, _V4/_V6 address text."""
    __slots__ = ()
    _U: tuple = ()
    _B: tuple = ()
    _V4: tuple = ()
    _V6: tuple = ()

    def __post_init__(self):
        for name, top in self._U:
            v = getattr(self, name)
            if type(v) is not int or not 0 <= v <= top:
                raise WireError(f"{name} must be an integer 0..{top}, got {v!r}")
        for name in self._B:
            _set(self, name, bool(getattr(self, name)))
        for name in self._V4:
            _set(self, name, _canon4(getattr(self, name), name))
        for name in self._V6:
            _set(self, name, _canon6(getattr(self, name), name))
        self._norm()

    def _norm(self) -> None:  # any further checks
        pass


class _Option(_Fields):
    __slots__ = ()
    TYPE, ALIGN = -1, (1, 0)


_AUTH_HEAD, _VSO_HEAD = struct.Struct(">BI"), struct.Struct(">IB")
_V4_HEAD, _ACK_BODY = struct.Struct(">H4s"), struct.Struct(">BB4s")
_NATD, _BID_HEAD = struct.Struct(">HI"), struct.Struct(">HBB")


@dataclass(frozen=True, slots=True)
class BindingRefreshAdvice(_Option):
    """Type 2 (RFC 6275 §6.2.4): refresh interval, raw u16 in units of 4 seconds."""
    interval: int
    TYPE, ALIGN, _U = 2, (2, 0), (("interval", 0xFFFF),)

    def _data(self):
        return _U16.pack(self.interval)


@dataclass(frozen=True, slots=True)
class AlternateCareOf(_Option):
    """Type 3 (RFC 6275 §6.2.5): IPv6 care-of address (text, normalised to RFC 5952)."""
    address: str
    TYPE, ALIGN, _V6 = 3, (8, 6), ("address",)

    def _data(self):
        return _text16(self.address)


@dataclass(frozen=True, slots=True)
class MobileNodeId(_Option):
    """Type 8 (RFC 4283 §3): subtype (1 = NAI) and identifier, UTF-8, 1..253 octets."""
    identifier: str
    subtype: int = 1
    TYPE, _U = 8, (("subtype", 0xFF),)

    def _norm(self):
        try:
            n = len(self.identifier.encode("utf-8"))
        except (AttributeError, UnicodeEncodeError):
            n = 0
        if not isinstance(self.identifier, str) or not 1 <= n <= 253:
            raise WireError(f"identifier must be text of 1..253 UTF-8 octets, got {self.identifier!r}")

    def _data(self):
        return bytes((self.subtype,)) + self.identifier.encode("utf-8")


@dataclass(frozen=True, slots=True)
class MobilityAuth(_Option):
    """Type 9 (RFC 4285 §5): subtype (1 MN-HA, 2 MN-AAA), u32 SPI, authenticator (12 octets for HMAC-SHA1-96)."""
    spi: int
    authenticator: bytes = b""
    subtype: int = 1
    TYPE, ALIGN, _U = 9, (8, 2), (("spi", 0xFFFF_FFFF), ("subtype", 0xFF))

    def _norm(self):
        _bytes(self, "authenticator", 250)

    def _data(self):
        return _AUTH_HEAD.pack(self.subtype, self.spi) + self.authenticator


@dataclass(frozen=True, slots=True)
class ReplayProtection(_Option):
    """Type 10 (RFC 4285 §6): u64 timestamp (ours: seconds since 1970 << 32 | fraction)."""
    timestamp: int
    TYPE, ALIGN, _U = 10, (8, 2), (("timestamp", 0xFFFF_FFFF_FFFF_FFFF),)

    def _data(self):
        return _U64.pack(self.timestamp)


@dataclass(frozen=True, slots=True)
class VendorSpecific(_Option):
    """Type 19 (RFC 5094 §3): u32 vendor id, u8 subtype, data (at most 250 octets)."""
    vendor_id: int
    subtype: int
    data: bytes
    TYPE, ALIGN, _U = 19, (4, 2), (("vendor_id", 0xFFFF_FFFF), ("subtype", 0xFF))

    def _norm(self):
        _bytes(self, "data", 250)

    def _data(self):
        return _VSO_HEAD.pack(self.vendor_id, self.subtype) + self.data


@dataclass(frozen=True, slots=True)
class RestartCounter(_Option):
    """Type 28 (RFC 5847 §5.2): u32 restart counter."""
    counter: int
    TYPE, ALIGN, _U = 28, (4, 2), (("counter", 0xFFFF_FFFF),)

    def _data(self):
        return _U32.pack(self.counter)


@dataclass(frozen=True, slots=True)
class IPv4HomeAddress(_Option):
    """Type 29 (RFC 5555 §3.1.1): IPv4 home address (0.0.0.0 = assign one), prefix length 0..32,
    P = request a mobile network prefix. Wire: prefix-len:6 P:1 reserved:9, address."""
    address: str
    prefix_len: int = 0
    p: bool = False
    TYPE, ALIGN, _U, _B, _V4 = 29, (4, 0), (("prefix_len", 32),), ("p",), ("address",)

    def _data(self):
        return _V4_HEAD.pack(self.prefix_len << 10 | self.p << 9, _pack4(self.address))


@dataclass(frozen=True, slots=True)
class IPv4AddressAck(_Option):
    """Type 30 (RFC 5555 §3.2.1): u8 status (0 success, >= 128 refused), prefix length 0..32
    (wire: prefix-len:6 reserved:2), IPv4 home address."""
    status: int
    address: str
    prefix_len: int = 0
    TYPE, ALIGN, _U, _V4 = 30, (4, 0), (("status", 0xFF), ("prefix_len", 32)), ("address",)

    def _data(self):
        return _ACK_BODY.pack(self.status, self.prefix_len << 2, _pack4(self.address))


@dataclass(frozen=True, slots=True)
class NatDetection(_Option):
    """Type 31 (RFC 5555 §3.2.2): F = UDP encapsulation forced (wire: F:1 reserved:15); refresh
    time u32 seconds (0 = ignore, 0xFFFFFFFF = no NAT, no keepalives needed)."""
    udp_forced: bool
    refresh: int
    TYPE, ALIGN, _U, _B = 31, (4, 0), (("refresh", 0xFFFF_FFFF),), ("udp_forced",)

    def _data(self):
        return _NATD.pack(self.udp_forced << 15, self.refresh)


@dataclass(frozen=True, slots=True)
class IPv4CareOf(_Option):
    """Type 32 (RFC 5555 §3.1.2): IPv4 care-of address (wire: reserved u16, address)."""
    address: str
    TYPE, ALIGN, _V4 = 32, (4, 0), ("address",)

    def _data(self):
        return _V4_HEAD.pack(0, _pack4(self.address))


@dataclass(frozen=True, slots=True)
class BindingIdentifier(_Option):
    """Type 35 (RFC 5648 §6.1; BID-PRI from RFC 6089): u16 BID (0 is reserved: the caller's check),
    u8 status (in a BA), H flag, 7-bit priority, care-of address (IPv4 or IPv6 text) or None.
    Wire: BID, status, H:1 BID-PRI:7, CoA; Length 4, 8 or 20."""
    bid: int
    status: int = 0
    h: bool = False
    priority: int = 0
    coa: str | None = None
    TYPE, ALIGN, _B = 35, (2, 0), ("h",)
    _U = (("bid", 0xFFFF), ("status", 0xFF), ("priority", 0x7F))

    def _norm(self):
        c = self.coa
        if c is not None:
            _set(self, "coa", _canon6(c, "coa") if not isinstance(c, str) or ":" in c else _canon4(c, "coa"))

    def _data(self):
        head, c = _BID_HEAD.pack(self.bid, self.status, self.h << 7 | self.priority), self.coa
        return head if c is None else head + (_text16(c) if ":" in c else _pack4(c))


# RFC 6089 §4.1/§4.2: Flow Identification sub-options
FID_SUB_BID_REFERENCE, FID_SUB_TRAFFIC_SELECTOR = 2, 3
# RFC 6089 §6.2: per-flow status in a BA's Flow Identification option
FID_STATUS: dict[int, str] = {
    0: "flow binding successful", 128: "administratively prohibited", 129: "flow binding rejected",
    130: "flow identification option malformed", 131: "BID not found", 132: "FID not found",
    133: "traffic selector format not supported",
}
_FID_HEAD = struct.Struct(">HHBB")


@dataclass(frozen=True, slots=True)
class FlowIdentification(_Option):
    """Type 45 (RFC 6089 §4.1): u16 FID (0 reserved), u16 FID-PRI, reserved u8, u8 status (in a BA), then
    sub-options: Binding Reference (type 2, u16 BIDs: ``bids``, None when absent) and Traffic Selector
    (type 3: TS format u8, reserved u8, the selector: ``selector``, a
    :class:`~mhgui.engine.selectors.TrafficSelector`, None when absent). Decoding is strict about the
    option's own 6 octets but not about its sub-options: a bad one leaves ``problem`` (words) and
    ``problem_status`` (130 malformed, 133 TS format not supported) set, so a home agent can answer that
    flow with its status instead of dropping the whole Binding Update (RFC 6089 §5.2.1)."""
    fid: int
    priority: int = 0
    status: int = 0
    bids: tuple | None = None
    selector: object = None
    problem: str | None = None
    problem_status: int = 0
    raw_subs: bytes | None = None  # the sub-options as received, kept when they had a problem (re-encoded as is)
    TYPE, ALIGN = 45, (2, 0)
    _U = (("fid", 0xFFFF), ("priority", 0xFFFF), ("status", 0xFF), ("problem_status", 0xFF))

    def _norm(self):
        if self.bids is not None:
            bids = tuple(self.bids)
            if not bids or any(type(b) is not int or not 0 <= b <= 0xFFFF for b in bids):
                raise WireError(f"bids must be u16 integers (at least one), got {self.bids!r}")
            _set(self, "bids", bids)
        if self.selector is not None and not isinstance(self.selector, _sel.TrafficSelector):
            raise WireError(f"selector must be a TrafficSelector, got {self.selector!r}")

    def _data(self):
        out = bytearray(_FID_HEAD.pack(self.fid, self.priority, 0, self.status))
        if self.raw_subs is not None:
            return bytes(out) + self.raw_subs
        if self.bids is not None:
            out += bytes((FID_SUB_BID_REFERENCE, 2 * len(self.bids)))
            for b in self.bids:
                out += _U16.pack(b)
        if self.selector is not None:
            ts = _sel.encode_selector(self.selector)
            out += bytes((FID_SUB_TRAFFIC_SELECTOR, 2 + len(ts), _sel.TS_FORMAT_IPV6, 0)) + ts
        if len(out) > 255:
            raise WireError(f"flow identification option of {len(out)} octets, at most 255 fit")
        return bytes(out)


@dataclass(frozen=True, slots=True)
class FlowSummary(_Option):
    """Type 44 (RFC 6089 §4.3): the FIDs (u16 each) the node keeps without restating them."""
    fids: tuple
    TYPE, ALIGN = 44, (2, 0)

    def _norm(self):
        fids = tuple(self.fids)
        if not fids or len(fids) > 127 or any(type(f) is not int or not 0 <= f <= 0xFFFF for f in fids):
            raise WireError(f"fids must be 1..127 u16 integers, got {self.fids!r}")
        _set(self, "fids", fids)

    def _data(self):
        return b"".join(_U16.pack(f) for f in self.fids)


@dataclass(frozen=True, slots=True)
class UnknownOption(_Option):
    """Any other option type (2..255 except the types above), kept raw so messages round-trip."""
    type: int
    data: bytes

    def _norm(self):
        if type(self.type) is not int or not 2 <= self.type <= 255 or self.type in _OPTIONS:
            raise WireError(f"UnknownOption type must be 2..255 and not a known option type, got {self.type!r}")
        _bytes(self, "data", 255)

    def _data(self):
        return self.data


Option = Union[BindingRefreshAdvice, AlternateCareOf, MobileNodeId, MobilityAuth, ReplayProtection,
               VendorSpecific, RestartCounter, IPv4HomeAddress, IPv4AddressAck, NatDetection, IPv4CareOf,
               BindingIdentifier, FlowIdentification, FlowSummary, UnknownOption]


def _raw(cls, *values):
    """An instance built from decoded values, skipping the constructor checks: the decoders below
    produce only values those checks accept (canonical addresses, in-range integers, bools)."""
    o = _new(cls)
    for name, v in zip(cls.__slots__, values):
        _set(o, name, v)
    return o


def _dec_mnid(d: bytes) -> MobileNodeId:
    try:
        return _raw(MobileNodeId, d[1:].decode("utf-8"), d[0])
    except UnicodeDecodeError:
        raise WireError("identifier is not UTF-8") from None


def _dec_v4(cls, prefix_len: int, *values):
    if prefix_len > 32:
        raise WireError(f"prefix length {prefix_len}, at most 32 allowed")
    return _raw(cls, *values)


def _dec_bid(d: bytes) -> BindingIdentifier:
    if len(d) not in (4, 8, 20):
        raise WireError(f"length {len(d)}, must be 4, 8 or 20")
    bid, status, hp = _BID_HEAD.unpack_from(d)
    coa = None if len(d) == 4 else _ntop4(d[4:]) if len(d) == 8 else ntop6(d[4:])
    return _raw(BindingIdentifier, bid, status, bool(hp & 0x80), hp & 0x7F, coa)


def _dec_summary(d: bytes) -> FlowSummary:
    if len(d) % 2:
        raise WireError(f"length {len(d)} is odd (u16 FIDs)")
    return _raw(FlowSummary, tuple(_U16.unpack_from(d, i)[0] for i in range(0, len(d), 2)))


def _dec_fid(d: bytes) -> FlowIdentification:
    fid, pri, _rsvd, status = _FID_HEAD.unpack_from(d)
    bids = selector = problem = None
    problem_status, off = 0, 6
    while off < len(d) and problem is None:
        t = d[off]
        if t == 0:  # Pad1
            off += 1
            continue
        if off + 2 > len(d) or off + 2 + d[off + 1] > len(d):
            problem, problem_status = f"sub-option {t} at offset {off} runs past the option", 130
            break
        body, off = d[off + 2:off + 2 + d[off + 1]], off + 2 + d[off + 1]
        if t == 1:  # PadN
            continue
        if t == FID_SUB_BID_REFERENCE:
            if bids is not None or not body or len(body) % 2:
                problem, problem_status = "Binding Reference sub-option repeated, empty or of odd length", 130
            else:
                bids = tuple(_U16.unpack_from(body, i)[0] for i in range(0, len(body), 2))
        elif t == FID_SUB_TRAFFIC_SELECTOR:
            if selector is not None or len(body) < 2:
                problem, problem_status = "Traffic Selector sub-option repeated or shorter than 2 octets", 130
            elif body[0] != _sel.TS_FORMAT_IPV6:
                problem, problem_status = f"traffic selector format {body[0]} not supported (IPv6 binary, 2)", 133
            else:
                try:
                    selector = _sel.decode_selector(body[2:])
                except _sel.SelectorError as e:
                    problem, problem_status = f"traffic selector malformed: {e}", 130
        else:
            problem, problem_status = f"unknown sub-option type {t}", 130
    return _raw(FlowIdentification, fid, pri, status, bids, selector, problem, problem_status,
                d[6:] if problem is not None else None)


# Option Type -> (shortest and longest valid data length, decoder of the data after Type/Length)
_OPTIONS = {
    2: (2, 2, lambda d: _raw(BindingRefreshAdvice, *_U16.unpack(d))),
    3: (16, 16, lambda d: _raw(AlternateCareOf, ntop6(d))),
    8: (2, 254, _dec_mnid),
    9: (5, 255, lambda d: _raw(MobilityAuth, _U32.unpack_from(d, 1)[0], d[5:], d[0])),
    10: (8, 8, lambda d: _raw(ReplayProtection, *_U64.unpack(d))),
    19: (5, 255, lambda d: _raw(VendorSpecific, *_VSO_HEAD.unpack_from(d), d[5:])),
    28: (4, 4, lambda d: _raw(RestartCounter, *_U32.unpack(d))),
    29: (6, 6, lambda d: _dec_v4(IPv4HomeAddress, d[0] >> 2, _ntop4(d[2:]), d[0] >> 2, bool(d[0] & 2))),
    30: (6, 6, lambda d: _dec_v4(IPv4AddressAck, d[1] >> 2, d[0], _ntop4(d[2:]), d[1] >> 2)),
    31: (6, 6, lambda d: _raw(NatDetection, bool(d[0] & 0x80), _U32.unpack_from(d, 2)[0])),
    32: (6, 6, lambda d: _raw(IPv4CareOf, _ntop4(d[2:]))),
    35: (4, 20, _dec_bid),
    44: (2, 254, lambda d: _dec_summary(d)),
    45: (6, 255, lambda d: _dec_fid(d)),
}
_PADS = [b"", b"\0"] + [b"\x01" + bytes((n - 2,)) + bytes(n - 2) for n in range(2, 8)]


# ---------------------------------------------------------------------------------- messages
class _Message(_Fields):
    __slots__ = ()
    MH_TYPE, _BODY = -1, struct.Struct("")

    def _norm(self):
        opts = self.options
        if type(opts) is not tuple:
            if isinstance(opts, (str, bytes)) or not hasattr(opts, "__iter__"):
                raise WireError(f"options must be a sequence of options, got {opts!r}")
            _set(self, "options", opts := tuple(opts))
        for o in opts:
            if not isinstance(o, _Option):
                raise WireError(f"not a mobility option: {o!r}")

    def option(self, cls):
        """The first option of class `cls`, or None."""
        for o in self.options:
            if isinstance(o, cls):
                return o
        return None

    def options_of(self, cls) -> tuple:
        """Every option of class `cls`, in order."""
        return tuple(o for o in self.options if isinstance(o, cls))


@dataclass(frozen=True, slots=True)
class BindingRefreshRequest(_Message):
    """MH type 0 (RFC 6275 §6.1.2): reserved u16, options."""
    options: tuple = ()
    MH_TYPE, _BODY = MH_BRR, struct.Struct(">2x")

    def _body(self):
        return b"\0\0"

    @classmethod
    def _from_wire(cls, f, options):
        return _raw(cls, options)


@dataclass(frozen=True, slots=True)
class BindingUpdate(_Message):
    """MH type 5 (RFC 6275 §6.1.7): u16 sequence, u16 flags (BU_*), requested lifetime raw u16 (4 s units)."""
    seq: int
    flags: int = 0
    lifetime: int = 0
    options: tuple = ()
    MH_TYPE, _BODY, _U = MH_BU, struct.Struct(">HHH"), (("seq", 0xFFFF), ("flags", 0xFFFF), ("lifetime", 0xFFFF))

    def _body(self):
        return self._BODY.pack(self.seq, self.flags, self.lifetime)

    @classmethod
    def _from_wire(cls, f, options):
        return _raw(cls, f[0], f[1], f[2], options)


@dataclass(frozen=True, slots=True)
class BindingAck(_Message):
    """MH type 6 (RFC 6275 §6.1.8): u8 status (BA_STATUS), u16 sequence, granted lifetime raw u16
    (4 s units), u8 flags (BA_*). Wire: status, flags, seq, lifetime."""
    status: int
    seq: int
    lifetime: int = 0
    flags: int = 0
    options: tuple = ()
    MH_TYPE, _BODY = MH_BA, struct.Struct(">BBHH")
    _U = (("status", 0xFF), ("seq", 0xFFFF), ("lifetime", 0xFFFF), ("flags", 0xFF))

    def _body(self):
        return self._BODY.pack(self.status, self.flags, self.seq, self.lifetime)

    @classmethod
    def _from_wire(cls, f, options):
        return _raw(cls, f[0], f[2], f[3], f[1], options)


@dataclass(frozen=True, slots=True)
class BindingError(_Message):
    """MH type 7 (RFC 6275 §6.1.9): u8 status (1 unknown binding for a HAO, 2 unknown MH type), home address."""
    status: int
    home_address: str
    options: tuple = ()
    MH_TYPE, _BODY, _U, _V6 = MH_BE, struct.Struct(">Bx16s"), (("status", 0xFF),), ("home_address",)

    def _body(self):
        return self._BODY.pack(self.status, _text16(self.home_address))

    @classmethod
    def _from_wire(cls, f, options):
        return _raw(cls, f[0], ntop6(f[1]), options)


@dataclass(frozen=True, slots=True)
class Heartbeat(_Message):
    """MH type 13 (RFC 5847 §5.1): u32 sequence, U (unsolicited) and R (response) flags.
    Wire: reserved u8, flags u8 (U 0x02, R 0x01), seq."""
    seq: int
    unsolicited: bool = False
    response: bool = False
    options: tuple = ()
    MH_TYPE, _BODY, _U = MH_HEARTBEAT, struct.Struct(">xBI"), (("seq", 0xFFFF_FFFF),)
    _B = ("unsolicited", "response")

    def _body(self):
        return self._BODY.pack(self.unsolicited << 1 | self.response, self.seq)

    @classmethod
    def _from_wire(cls, f, options):
        return _raw(cls, f[1], bool(f[0] & 2), bool(f[0] & 1), options)


Message = Union[BindingRefreshRequest, BindingUpdate, BindingAck, BindingError, Heartbeat]
_MESSAGES = {c.MH_TYPE: c for c in Message.__args__}


# ---------------------------------------------------------------------------------- codec
_PSEUDO_TAIL = struct.Struct(">I3xB")


def _sum(src16: bytes, dst16: bytes, mh) -> int:
    """Ones-complement sum of pseudo-header (RFC 8200 §8.1) + MH, modulo 0xFFFF (0 means 0xFFFF: valid)."""
    return int.from_bytes(src16 + dst16 + _PSEUDO_TAIL.pack(len(mh), IPPROTO_MH) + mh, "big") % 0xFFFF


def _layout(msg, options) -> tuple[bytearray, int]:
    """The MH with checksum 0 and final Header Len, and the offset of the last option (-1 if none)."""
    if not isinstance(msg, _Message):
        raise WireError(f"not a mobility message: {msg!r}")
    buf = bytearray(b"\x3b\0\0\0\0\0")
    buf += msg._body()
    last = -1
    for o in options:
        x, y = o.ALIGN
        if x > 1:
            pad = (y - len(buf)) % x
            if pad:
                buf += _PADS[pad]
        last = len(buf)
        data = o._data()
        buf.append(o.TYPE if o.TYPE >= 0 else o.type)
        buf.append(len(data))
        buf += data
    buf += _PADS[-len(buf) % 8]
    n = len(buf)
    if n > _MAX_MH:
        raise WireError(f"mobility header of {n} octets is longer than {_MAX_MH}")
    buf[1] = (n >> 3) - 1
    buf[2] = msg.MH_TYPE
    return buf, last


def _finish(buf: bytearray, src, dst) -> bytes:
    buf[4:6] = _U16.pack(-_sum(addr16(src), addr16(dst), buf) % 0xFFFF)
    return bytes(buf)


def encode_mh(msg: Message, src: str | bytes, dst: str | bytes) -> bytes:
    """The Mobility Header for `msg`: options aligned and padded, length a multiple of 8, checksum
    over the IPv6 pseudo-header with `src`/`dst` (the inner IPv6 addresses). WireError if too long."""
    buf, _ = _layout(msg, getattr(msg, "options", ()))
    return _finish(buf, src, dst)


def _walk(data: bytes, off: int) -> list:
    """[(type, offset, data)] of the options from `off` to the end, Pad1/PadN left out."""
    n, out = len(data), []
    while off < n:
        t = data[off]
        if t == 0:
            off += 1
            continue
        if off + 2 > n:
            raise WireError(f"option type {t} at offset {off} truncated")
        end = off + 2 + data[off + 1]
        if end > n:
            raise WireError(f"option type {t} at offset {off}: length {data[off + 1]} runs past the MH end ({n})")
        if t != 1:
            out.append((t, off, data[off + 2:end]))
        off = end
    return out


def _frame(data) -> tuple[bytes, type]:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise WireError(f"mobility header must be bytes, got {type(data).__name__}")
    data = bytes(data)
    n = len(data)
    if n < 8:
        raise WireError(f"mobility header truncated: {n} octets at offset 0, at least 8 needed")
    if data[0] != _NO_NEXT_HEADER:
        raise WireError(f"Payload Proto {data[0]} at offset 0, must be 59")
    if (data[1] + 1) * 8 != n:
        raise WireError(f"Header Len {data[1]} at offset 1 says {(data[1] + 1) * 8} octets, got {n}")
    cls = _MESSAGES.get(data[2])
    if cls is None:
        raise UnknownMHType(data[2])
    if 6 + cls._BODY.size > n:
        raise WireError(f"MH type {data[2]} needs {6 + cls._BODY.size} octets, got {n}")
    return data, cls


def decode_mh(data: bytes, src, dst, *, verify_checksum: bool = True) -> Message:
    """Parse one Mobility Header (`src`/`dst`: the IPv6 addresses for the checksum). Strict:
    Payload Proto 59, Header Len matching len(data), known MH type, checksum (unless told not to),
    every option inside the MH with a length valid for its type. Pad contents are ignored, so are
    Reserved fields and option alignment. Raises WireError (UnknownMHType for other MH types)."""
    data, cls = _frame(data)
    if verify_checksum and _sum(addr16(src), addr16(dst), data) != 0:
        raise WireError(f"checksum 0x{data[4]:02x}{data[5]:02x} at offset 4 does not verify")
    fields = cls._BODY.unpack_from(data, 6)
    opts = []
    for t, off, d in _walk(data, 6 + cls._BODY.size):
        spec = _OPTIONS.get(t)
        if spec is None:
            opts.append(_raw(UnknownOption, t, d))
            continue
        lo, hi, dec = spec
        try:
            if not lo <= len(d) <= hi:
                raise WireError(f"length {len(d)}, must be {lo}" + (f"..{hi}" if hi > lo else ""))
            opts.append(dec(d))
        except WireError as e:
            raise WireError(f"option type {t} at offset {off}: {e}") from None
    return cls._from_wire(fields, tuple(opts))


def _authenticator(key, coa, hoa, covered) -> bytes:
    coa16 = _ZERO16 if coa is None else addr16(coa)
    return hmac.digest(key, coa16 + addr16(hoa) + bytes(covered), "sha1")[:12]


def encode_authenticated(msg: Message, src, dst, *, coa, key: bytes, spi: int,
                         identity: str | None = None, hoa=None) -> bytes:
    """`encode_mh` plus RFC 4283/4285 authentication: appends MobileNodeId(identity) when given,
    then MobilityAuth(spi) last (8n+2), whose authenticator is First(96, HMAC-SHA1(key, CoA |
    HoA | MH from octet 0 through the SPI, checksum field 0, Header Len final)); then the checksum.
    `coa`: IPv6 text/16 bytes, IPv4 text (as ::ffff:a.b.c.d) or None (16 zero octets). `hoa`: the
    mobile node's home address, default `src` (a home agent passes dst). WireError on bad input."""
    if not isinstance(key, (bytes, bytearray)) or not key:
        raise WireError("key must be non-empty bytes")
    if not isinstance(msg, _Message):
        raise WireError(f"not a mobility message: {msg!r}")
    if any(isinstance(o, MobilityAuth) for o in msg.options):
        raise WireError("message already carries a Mobility Message Authentication option")
    extra = (MobileNodeId(identity),) if identity is not None else ()
    buf, last = _layout(msg, msg.options + extra + (MobilityAuth(spi, bytes(12)),))
    spi_end = last + 7  # Type, Length, Subtype, SPI
    buf[spi_end:spi_end + 12] = _authenticator(key, coa, src if hoa is None else hoa, buf[:spi_end])
    return _finish(buf, src, dst)


def verify_authenticator(mh: bytes, *, coa, hoa, key: bytes) -> bool:
    """True when the MH's last option is an MN-HA Mobility Message Authentication option (subtype
    1, 12-octet authenticator) that verifies for `key`, `coa` (as in encode_authenticated) and
    `hoa`. Never raises: malformed input, addresses or key give False."""
    try:
        data, cls = _frame(mh)
        last = None
        for last in _walk(data, 6 + cls._BODY.size):
            pass
        if last is None:
            return False
        t, off, d = last
        if t != 9 or len(d) != 17 or d[0] != 1:
            return False
        spi_end = off + 7
        covered = data[:4] + b"\0\0" + data[6:spi_end]
        return hmac.compare_digest(_authenticator(key, coa, hoa, covered), d[5:])
    except (WireError, TypeError, ValueError):
        return False


_IP6 = struct.Struct(">IHBB16s16s")


def encode_packet(mh: bytes, src, dst, hop_limit: int = 64) -> bytes:
    """IPv6 header (version 6, traffic class and flow label 0, next header 135) + `mh`."""
    if type(hop_limit) is not int or not 0 <= hop_limit <= 255:
        raise WireError(f"hop_limit must be an integer 0..255, got {hop_limit!r}")
    if len(mh) > 0xFFFF:
        raise WireError(f"payload of {len(mh)} octets does not fit an IPv6 packet")
    return _IP6.pack(6 << 28, len(mh), IPPROTO_MH, hop_limit, addr16(src), addr16(dst)) + bytes(mh)


def decode_packet(data: bytes) -> tuple[bytes, bytes, bytes]:
    """(src16, dst16, mh) of an IPv6 packet whose next header is 135 and whose payload length
    matches its size exactly; WireError otherwise (extension headers are not accepted)."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise WireError(f"packet must be bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) < 40:
        raise WireError(f"IPv6 packet truncated: {len(data)} octets, 40 needed at offset 0")
    vtf, plen, nh, _hlim, src, dst = _IP6.unpack_from(data)
    if vtf >> 28 != 6:
        raise WireError(f"IP version {vtf >> 28} at offset 0, must be 6")
    if nh != IPPROTO_MH:
        raise WireError(f"next header {nh} at offset 6, must be 135 (mobility header)")
    if plen != len(data) - 40:
        raise WireError(f"payload length {plen} at offset 4, the packet carries {len(data) - 40}")
    return src, dst, data[40:]
