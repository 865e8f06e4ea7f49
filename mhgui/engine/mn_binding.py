"""One home address's registration with the home agent (sans-I/O part of the mobile node).

Holds the Binding Update List entry of RFC 6275 §11.1 for one HoA: sequence
number (modulo 2^16, §9.5.1), the outstanding BU with its retransmission timer
(§11.8: 1.5 s for a first registration, 1 s after, doubled up to 32 s; each
retry takes a new sequence number, as UMIP does), the granted lifetime and the
refresh time, and the data session keyed by the nonces of the BU and the BA.
"""

from __future__ import annotations

import collections
import ipaddress
from dataclasses import dataclass, field

from . import dataplane as dp
from .selectors import FlowTable
from .session import SESSION_GRACE_S

__all__ = ["Bound", "HoaBinding", "MnFlow", "MnPath", "Pending", "UplinkPrefs",
           "INITIAL_BINDACK_TIMEOUT", "INITIAL_BINDACK_TIMEOUT_FIRST", "MAX_BINDACK_TIMEOUT"]

INITIAL_BINDACK_TIMEOUT_FIRST = 1.5  # s, RFC 6275 §13 InitialBindackTimeoutFirstReg
INITIAL_BINDACK_TIMEOUT = 1.0  # s, RFC 6275 §12
MAX_BINDACK_TIMEOUT = 32.0  # s, RFC 6275 §12
REFRESH_FRACTION = 0.8  # refresh at 80 % of the granted lifetime


@dataclass(frozen=True)
class UplinkPrefs:
    """Per-HoA choice of uplink (draft 7.1/7.2): ``preference`` in order, then unlisted interfaces, then
    ``backup`` (used only when nothing else works); ``never`` is never used. Names are interface names."""

    preference: tuple[str, ...] = ()
    backup: tuple[str, ...] = ()
    never: tuple[str, ...] = ()

    def rank(self, name: str) -> tuple[int, int] | None:
        """Sort key of an uplink for this HoA; None when it must not be used."""
        if name in self.never:
            return None
        if name in self.backup:
            return (2, self.backup.index(name))
        if name in self.preference:
            return (0, self.preference.index(name))
        return (1, 0)

    def with_first(self, name: str) -> "UplinkPrefs":
        """The same order with ``name`` first (a user's rebind: it stays the HoA's preferred uplink)."""
        return UplinkPrefs((name,) + tuple(n for n in self.preference if n != name),
                           tuple(n for n in self.backup if n != name), tuple(n for n in self.never if n != name))


@dataclass
class Pending:
    """The outstanding Binding Update: what it asked and when to retry."""

    seq: int
    ifindex: int
    family: int
    coa: str
    nonce: bytes
    index: int
    timestamp: int
    sent_at: float
    timeout: float
    first_sent_at: float
    lifetime: int  # requested, s (0 = deregistration)
    tries: int = 1
    reason: str = ""
    clock_retry: bool = False
    #: MCoA (RFC 5648): the paths this BU registers, (bid, ifindex, family, coa, priority), the first is ``ifindex``'s
    paths: tuple = ()
    #: RFC 6089: the flow state it carries, fid -> effective BIDs
    flows: dict = field(default_factory=dict)


@dataclass(frozen=True)
class MnPath:
    """One registered care-of address of a HoA (RFC 5648 BID): sent on ``ifindex`` with ``family``."""
    bid: int
    ifindex: int
    family: int
    coa: str
    priority: int


@dataclass
class MnFlow:
    """A flow binding the node asked for (RFC 6089): ``uplinks`` (interface names, several = n-cast) in the
    user's words; ``bids``: the BIDs it is bound to at the home agent now (None until confirmed);
    ``requested``: the BIDs the outstanding BU asks for."""
    fid: int
    priority: int
    selector: object
    uplinks: tuple[str, ...]
    bids: tuple[int, ...] | None = None
    requested: tuple[int, ...] | None = None
    error: str | None = None
    requested_at: float = 0.0
    request: int | None = None


@dataclass
class Bound:
    """The accepted registration: data goes out on ``ifindex`` with ``sender``."""

    ifindex: int
    family: int
    coa: str
    seq: int
    lifetime: int
    registered_at: float
    expires: float
    refresh_at: float
    nat: bool
    sender: dp.Sender = field(repr=False)
    receiver: dp.Receiver = field(repr=False)


@dataclass
class HoaBinding:
    """State of one HoA. ``hoa``: RFC 5952 text; ``prefix_len``: home prefix length."""

    hoa: str
    prefix_len: int
    prefs: UplinkPrefs
    default_route: bool = True
    seq: int = 0
    pending: Pending | None = None
    bound: Bound | None = None
    last_error: str | None = None
    refused_until: float = 0.0
    deregistered: bool = False
    stranded: bool = False  # no uplink can reach the home agent now (said once)
    old_receivers: list[tuple[dp.Receiver, float]] = field(default_factory=list)
    paths: dict[int, MnPath] = field(default_factory=dict)  # MCoA: bid -> registered path
    flows: dict[int, MnFlow] = field(default_factory=dict)  # fid -> flow binding
    up_table: FlowTable = field(default_factory=FlowTable, repr=False)  # upstream: flows -> BIDs now
    simple_up: bool = True  # every upstream packet goes on the bound path
    sticky: collections.OrderedDict = field(default_factory=collections.OrderedDict, repr=False)  # load sharing
    share_counts: dict[int, int] = field(default_factory=dict, repr=False)  # load sharing: flows per BID

    def __post_init__(self) -> None:
        self.hoa16 = ipaddress.IPv6Address(self.hoa).packed

    def next_seq(self) -> int:
        self.seq = (self.seq + 1) & 0xFFFF
        return self.seq

    def target(self) -> int | None:
        """The uplink the HoA is moving to or bound on (ifindex), None when neither."""
        if self.pending is not None and self.pending.lifetime:
            return self.pending.ifindex
        return self.bound.ifindex if self.bound is not None else None

    def first_timeout(self) -> float:
        return INITIAL_BINDACK_TIMEOUT if self.bound is not None else INITIAL_BINDACK_TIMEOUT_FIRST

    def retry_timeout(self) -> float:
        assert self.pending is not None
        return min(self.pending.timeout * 2, MAX_BINDACK_TIMEOUT)

    def accept(self, p: Pending, granted: int, ha_nonce: bytes, ha_index: int, key: bytes, nat: bool,
               now: float) -> Bound:
        """The BA for ``p`` accepted it with ``granted`` s: switch the data session (the old one's receiver
        stays open for :data:`SESSION_GRACE_S`)."""
        k_up, k_down = dp.derive_keys(key, p.nonce, ha_nonce)
        if self.bound is not None:
            self.old_receivers.append((self.bound.receiver, now + SESSION_GRACE_S))
        self.bound = Bound(p.ifindex, p.family, p.coa, p.seq, granted, now, now + granted,
                           now + granted * REFRESH_FRACTION, nat, dp.Sender(k_up, ha_index),
                           dp.Receiver(k_down, p.index))
        self.pending = None
        self.last_error = None
        self.deregistered = False
        return self.bound

    def drop_binding(self, now: float) -> None:
        if self.bound is not None:
            self.old_receivers.append((self.bound.receiver, now + SESSION_GRACE_S))
        self.bound = None

    def receivers(self, now: float) -> list[dp.Receiver]:
        self.old_receivers = [(r, t) for r, t in self.old_receivers if t > now]
        cur = [self.bound.receiver] if self.bound is not None else []
        return cur + [r for r, _ in self.old_receivers]
