"""Bindings as a mobility daemon reports them: pure data, no Qt and no I/O.

A :class:`Binding` is one entry of the mobile node's Binding Update List
(RFC 6275 section 11.1; UMIP ``bul``) or of a home agent's / correspondent's
Binding Cache (RFC 6275 section 9.1; UMIP ``bc``), with the Binding
Identifier of RFC 5648 section 3 / 4.1 when the daemon has one.

Addresses are RFC 5952 text (``ipaddress`` ``compressed``). Times are seconds;
``lifetime_remaining`` is what the daemon printed at ``observed_at`` (a
monotonic clock chosen by the caller), so :meth:`Binding.to_json` can give the
remaining lifetime at any later ``now``.

:func:`uplinks_in_use` is the one answer to "which uplink carries each home address now": the
daemon's home registrations, each CoA resolved to the interface (by ifindex) that holds it in the
live state. The binding table, a rebind's confirmation and the Failover tab all read it.

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

from ..i18n import _

__all__ = [
    "Binding",
    "BindingState",
    "UplinkInUse",
    "binding_graph_has_cycle",
    "bound_coas",
    "canonical_address",
    "cycle_path",
    "fill_interfaces",
    "in_use_fingerprint",
    "in_use_text",
    "resolve_interfaces",
    "uplinks_in_use",
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


# --------------------------------------------------------------------------- the uplink in use
#: states in which a home registration carries (or is about to carry) the home address
_IN_USE = (BindingState.REGISTERED, BindingState.WAITING_ACK)


@dataclass(frozen=True, slots=True)
class UplinkInUse:
    """Where one home address is bound now, by the daemon's own binding update list.

    ``coa``: the care-of address of its home registration (RFC 6275 section 11.1);
    ``ifindex``/``interface``: the interface that holds that CoA in the live state now (None
    when no interface has it: then ``interface`` is the name the daemon gave, if any);
    ``state``: REGISTERED (acknowledged) or WAITING_ACK (moving there).
    """

    hoa: str
    coa: str
    ifindex: int | None
    interface: str | None
    state: BindingState

    @property
    def acknowledged(self) -> bool:
        return self.state is BindingState.REGISTERED


def _holders(state, coas: Iterable[str]) -> dict[str, int]:
    """``{coa: ifindex}``: the interface holding each of ``coas`` in a :class:`~mhgui.core.model.NodeState`
    (the lowest ifindex when several do, so that the answer never depends on dict order). One pass over
    the addresses, whatever the number of bindings."""
    want = set(coas)
    out: dict[str, int] = {}
    if not want:
        return out
    for a in state.addresses.values():
        if a.address in want and a.ifindex in state.interfaces and a.ifindex < out.get(a.address, a.ifindex + 1):
            out[a.address] = a.ifindex
    return out


def resolve_interfaces(bindings: Iterable[Binding], state) -> list[Binding]:
    """``bindings`` with ``interface`` set to the name, now, of the interface (by ifindex) that holds
    each CoA in ``state``; a CoA no interface holds keeps the daemon's name. What the binding table shows,
    so that it says what :func:`uplinks_in_use` says (a renamed interface shows its new name)."""
    bindings = list(bindings)
    held = _holders(state, (b.coa for b in bindings))
    out = []
    for b in bindings:
        i = held.get(b.coa)
        name = state.interfaces[i].name if i is not None else b.interface
        out.append(b if name == b.interface else b.with_interface(name))
    return out


def uplinks_in_use(bindings: Iterable[Binding], state) -> dict[str, UplinkInUse]:
    """``{hoa: UplinkInUse}`` for each home address with a live home registration (REGISTERED, else
    WAITING_ACK), from the mobile node's binding update list (``source == "bul"``, H flag, CoA not the
    HoA) resolved against the live ``state`` (a :class:`~mhgui.core.model.NodeState`).

    With several registrations of one HoA (RFC 5648 multiple CoAs) the acknowledged one with the lowest
    BID-PRI (RFC 6089: the HoA's default path), then the lowest BID, wins. An empty dict: no daemon, a home agent's view, or nothing bound.
    """
    best: dict[str, tuple[tuple, UplinkInUse]] = {}
    homes = [b for b in bindings
             if b.source == "bul" and b.home_registration and b.coa != b.hoa and b.state in _IN_USE]
    held = _holders(state, (b.coa for b in homes))
    for b in homes:
        i = held.get(b.coa)
        name = state.interfaces[i].name if i is not None else b.interface
        use = UplinkInUse(_canon_or_same(b.hoa), _canon_or_same(b.coa), i, name, b.state)
        rank = (0 if b.state is BindingState.REGISTERED else 1, b.bid_priority or 0, -1 if b.bid is None else b.bid,
                use.coa, use.interface is None, use.interface or "")  # a total order: the same answer in any order
        if use.hoa not in best or rank < best[use.hoa][0]:
            best[use.hoa] = (rank, use)
    return {hoa: best[hoa][1] for hoa in sorted(best)}


def in_use_text(uses: Mapping[str, UplinkInUse], hoas: Iterable[str] | None = None, *, now: bool = False) -> str:
    """``"2001:db8:1::100 through upB (2001:db8:b::5)"`` for each HoA (``hoas``: only those, in that
    order; ``now``: "2001:db8:1::100 now bound through upB (...)", as a confirmation says it); a HoA with no
    registration says so."""
    parts = []
    for hoa in (list(hoas) if hoas is not None else list(uses)):
        u = uses.get(_canon_or_same(hoa))
        if u is None:
            parts.append(_("{hoa} is not bound").format(hoa=hoa))
            continue
        via = u.interface or _("an interface that no longer has {coa}").format(coa=u.coa)
        if now:
            text = (_("{hoa} now bound through {interface} ({coa})") if u.acknowledged
                    else _("{hoa} now bound through {interface} ({coa}, waiting for the home agent)"))
        else:
            text = (_("{hoa} through {interface} ({coa})") if u.acknowledged
                    else _("{hoa} through {interface} ({coa}, waiting for the home agent)"))
        parts.append(text.format(hoa=u.hoa, interface=via, coa=u.coa))
    return "; ".join(parts)


def in_use_fingerprint(uses: Mapping[str, UplinkInUse]) -> tuple:
    """What a message about the uplinks in use describes: changes exactly when one of them does."""
    return tuple((u.hoa, u.coa, u.ifindex, u.interface, u.state.value) for u in uses.values())


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
