"""Bindings as a mobility daemon reports them: pure data, no Qt and no I/O.

A :class:`Binding` is one entry of the mobile node's Binding Update List
(RFC 6275 section 11.1; UMIP ``bul``) or of a home agent's / correspondent's
Binding Cache (RFC 6275 section 9.1; UMIP ``bc``), with the Binding
Identifier of RFC 5648 section 3 / 4.1 when the daemon has one.

Addresses are RFC 5952 text (``ipaddress`` ``compressed``). Times are seconds;
``lifetime_remaining`` is what the daemon printed at ``observed_at`` (a
monotonic clock chosen by the caller), so :meth:`Binding.to_json` can give the
remaining lifetime at any later ``now``.

Also here: :func:`binding_graph_has_cycle`, the circular-reference rule of
RFC 6275 section 9.5.1 that decides whether a home address may be registered as
the care-of address of another (draft-montavont-mobileip-multihoming-pb-statement-04
section 6.2.2).
"""

from __future__ import annotations

import enum
import ipaddress
import math
from dataclasses import dataclass, replace
from typing import Iterable, Mapping

__all__ = [
    "Binding",
    "BindingState",
    "binding_graph_has_cycle",
    "bound_coas",
    "canonical_address",
    "cycle_path",
    "fill_interfaces",
]


class BindingState(str, enum.Enum):
    """State of one binding, the same words for a BUL entry and a BCE.

    - ``WAITING_ACK``: a Binding Update was sent and its Binding Acknowledgement
      has not come (RFC 6275 section 11.7.1; UMIP ``ack wait``), or the HA is
      still running DAD for the home address (UMIP ``bc`` status ``dad``,
      RFC 6275 section 10.3.1) or the return routability test is running.
    - ``REGISTERED``: accepted home registration (UMIP ``ack ready`` with the
      H flag; ``bc`` status ``registered``).
    - ``CACHED``: accepted correspondent (route optimisation) binding
      (RFC 6275 section 9.5; ``bc`` status ``cached``; ``bul`` ``ack ready``
      without the H flag).
    - ``DYING``: the cache entry is being removed (``bc`` status ``dying``).
    - ``EXPIRED``: the lifetime ran out, or a de-registration (lifetime 0) was
      acknowledged; ``bc`` ``nonce-block`` entries (a placeholder kept after a
      binding ended, so that its nonces are not reused) are EXPIRED too.
    - ``ERROR``: the daemon could not tell the lifetime (``(broken)`` /
      ``(error)``), or the peer is unreachable / not MIPv6-capable
      (``UNREACH_ENTRY`` / ``NON_MIP_CN_ENTRY``).
    - ``UNKNOWN``: anything else (``bc`` status ``(unknown)``, an entry whose
      status line was missing).
    """

    WAITING_ACK = "waiting-ack"
    REGISTERED = "registered"
    CACHED = "cached"
    DYING = "dying"
    EXPIRED = "expired"
    ERROR = "error"
    UNKNOWN = "unknown"


def canonical_address(text: str) -> str:
    """RFC 5952 text of an IPv6 (or IPv4) address; ``ValueError`` when it is not one.

    ``2001:db8:1:0:0:0:0:100`` -> ``2001:db8:1::100``.
    """
    return ipaddress.ip_address(text.strip()).compressed


def _canon_or_same(text: str) -> str:
    try:
        return canonical_address(text)
    except ValueError:
        return text.strip().lower()


@dataclass(frozen=True, slots=True)
class Binding:
    """One binding (a BUL entry on a mobile node, a BCE on a home agent or correspondent).

    - ``hoa``, ``coa``: home and care-of address (RFC 5952).
    - ``peer``: the node holding the binding as seen from the MN (the HA for a
      home registration, else the CN); for a ``bc`` entry, the ``local``
      address of the node that printed it (the HA or CN itself).
    - ``bid``, ``bid_priority``: RFC 5648 Binding Identifier and RFC 6089
      section 4.1 BID-PRI, None without multiple care-of addresses.
    - ``lifetime``: the lifetime granted/requested in seconds (RFC 6275
      section 6.1.7), None when unknown.
    - ``lifetime_remaining``: seconds left as printed at ``observed_at``; may be
      negative (a BCE past its lifetime); None for ``(broken)``/``(error)``/``-``.
    - ``seq``: sequence number (RFC 6275 section 9.5.1, modulo 2**16).
    - ``flags``: Binding Update flag letters in RFC order: ``A`` (ack), ``H``
      (home registration), ``L`` (link-local compatibility), ``K`` (key
      management mobility), ``R`` (mobile router, RFC 3963); an unknown flag
      word is kept as printed.
    - ``interface``: the interface of the CoA (from the daemon, e.g. UMIP's
      verbose ``dev``, or filled from the live model by :func:`fill_interfaces`).
    - ``source``: ``"bul"`` or ``"bc"``.
    """

    hoa: str
    coa: str
    peer: str | None = None
    bid: int | None = None
    bid_priority: int | None = None
    lifetime: int | None = None
    lifetime_remaining: int | None = None
    seq: int | None = None
    state: BindingState = BindingState.UNKNOWN
    flags: tuple[str, ...] = ()
    interface: str | None = None
    source: str = "bul"
    #: when the daemon printed ``lifetime_remaining`` (caller's monotonic clock); None = unknown
    observed_at: float | None = None

    @property
    def home_registration(self) -> bool:
        """H flag set: a registration with the home agent (RFC 6275 section 6.1.7)."""
        return "H" in self.flags

    @property
    def key(self) -> tuple[str, str | None, int | None, str]:
        """What identifies the binding across polls: (hoa, peer, bid, source) (RFC 5648 section 4.1)."""
        return (self.hoa, self.peer, self.bid, self.source)

    def remaining_at(self, now: float | None) -> int | None:
        """Seconds of lifetime left at ``now`` (may be negative); None when unknown.

        Counts down from ``lifetime_remaining`` since ``observed_at`` as a countdown does: the figure
        the daemon printed holds until a whole second has passed (1000 printed, 0.3 s later: 1000, not
        999); without either clock value the printed figure is returned as is.
        """
        if self.lifetime_remaining is None:
            return None
        if now is None or self.observed_at is None:
            return self.lifetime_remaining
        elapsed = max(0.0, now - self.observed_at)
        # ceil, with a nanosecond of slack so that exactly n seconds later it reads printed - n
        return math.ceil(self.lifetime_remaining - elapsed - 1e-9)

    def with_interface(self, interface: str | None) -> "Binding":
        return replace(self, interface=interface)

    def same_content(self, other: "Binding") -> bool:
        """Equal except for the countdown (``lifetime_remaining``, ``observed_at``)."""
        return replace(self, lifetime_remaining=None, observed_at=None) == replace(
            other, lifetime_remaining=None, observed_at=None
        )

    def to_json(self, now: float | None = None) -> dict:
        """The binding as a JSON-ready dict (``mhctl status --json``, issue 3).

        Keys: ``hoa``, ``coa``, ``peer``, ``bid``, ``bid_priority``,
        ``lifetime_remaining`` (at ``now``, see :meth:`remaining_at`),
        ``lifetime``, ``seq``, ``state`` (the :class:`BindingState` value),
        ``flags`` (list), ``interface``. Addresses are RFC 5952.
        """
        return {
            "hoa": _canon_or_same(self.hoa),
            "coa": _canon_or_same(self.coa),
            "peer": None if self.peer is None else _canon_or_same(self.peer),
            "bid": self.bid,
            "bid_priority": self.bid_priority,
            "lifetime_remaining": self.remaining_at(now),
            "lifetime": self.lifetime,
            "seq": self.seq,
            "state": BindingState(self.state).value,
            "flags": list(self.flags),
            "interface": self.interface,
        }


def fill_interfaces(bindings: Iterable[Binding], coa_interface: Mapping[str, str]) -> list[Binding]:
    """Bindings whose ``interface`` is None get the interface holding their CoA.

    ``coa_interface`` maps RFC 5952 CoA text to an interface name (from the
    live model). An interface already set (from the daemon) is kept.
    """
    out = []
    for b in bindings:
        if b.interface is None and b.coa in coa_interface:
            b = b.with_interface(coa_interface[b.coa])
        out.append(b)
    return out


def bound_coas(bindings: Iterable[Binding]) -> frozenset[str]:
    """CoAs the daemon has bound or is binding (REGISTERED, CACHED or WAITING_ACK).

    What :class:`~mhgui.core.state.BoundCoAsSet` carries. A CoA equal to its
    HoA (RFC 5648 section 5.6 home binding, or a de-registration) is left out.
    """
    live = {BindingState.REGISTERED, BindingState.CACHED, BindingState.WAITING_ACK}
    return frozenset(b.coa for b in bindings if b.state in live and b.coa != b.hoa)


# --------------------------------------------------------------------------- circular references


def cycle_path(bindings: Mapping[str, str], new: tuple[str, str]) -> list[str] | None:
    """The circular reference ``new`` would create, as ``[hoa, coa, ..., hoa]``, or None.

    RFC 6275 section 9.5.1 (as RFC 3775 section 9.5.1, quoted in
    draft-montavont-mobileip-multihoming-pb-statement-04 section 6.2.2): a
    Binding Update "MUST be silently discarded if the care-of address appears
    as a home address in an existing Binding Cache entry, with its current
    location creating a circular reference back to the home address specified
    in the Binding Update (possibly through additional entries)".

    ``bindings`` is the receiver's cache as ``{hoa: coa}``; ``new`` is the
    Binding Update's ``(hoa, coa)``. The chain is followed from the new CoA
    through existing entries; the entry for the new HoA itself is ignored (the
    update replaces it). Addresses are compared in RFC 5952 form. A CoA equal
    to the HoA is no circular reference: RFC 3775 (and UMIP) read it as a
    de-registration, RFC 5648 section 5.6 as a home binding.
    """
    hoa, coa = (_canon_or_same(a) for a in new)
    if hoa == coa:
        return None
    cache = {_canon_or_same(h): _canon_or_same(c) for h, c in bindings.items()}
    cache.pop(hoa, None)
    path = [hoa, coa]
    seen = {coa}
    cur = coa
    while cur in cache:
        cur = cache[cur]
        path.append(cur)
        if cur == hoa:
            return path
        if cur in seen:  # an existing loop that does not come back to ``hoa``
            return None
        seen.add(cur)
    return None


def binding_graph_has_cycle(bindings: Mapping[str, str], new: tuple[str, str]) -> bool:
    """True when registering ``new = (hoa, coa)`` would close a circular reference.

    See :func:`cycle_path` (RFC 6275 section 9.5.1; draft section 6.2.2).
    With the draft's examples: new ``addr1 -> addr2`` over ``{addr2: addr3,
    addr3: addr1}`` is a cycle (the BU is discarded); over ``{addr2: addr3}``
    alone it is not (the BU should be accepted).
    """
    return cycle_path(bindings, new) is not None
