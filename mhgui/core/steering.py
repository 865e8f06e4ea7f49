"""Steering rules ("send new connections to this destination via INTERFACE"): pure data, no I/O.

A CoA flow (a connection whose local address is a care-of address) does not
survive a handover; the user may instead ask that *new* connections to a
destination leave through a chosen interface. This module validates such
rules, keeps their persisted form (JSON), and plans the kernel state that
realises them; :mod:`mhgui.helper.steering` applies the plan as root.

Kernel design (the numbers are mhgui's; nothing else on a node uses them)
----------------------------------------------------------------------------

Each interface that has at least one rule gets a **slot** ``s`` (1..255,
remembered in the state file so that it does not change while rules exist)
and, per address family it has rules for, two routing tables and a few
policy rules. Tables ``0x6d680000`` .. ``0x6d6801ff`` ("mh" in ASCII) are all
mhgui's: far from main 254, local 255, default 253, UMIP's 252 and the small
numbers of ``/etc/iproute2/rt_tables``.

- **destination table** ``TABLE_BASE + s`` (``0x6d680001`` .. ``0x6d6800ff``):
  one route per steered destination prefix, ``PREFIX via ROUTER dev IF src
  COA`` (``dev IF`` alone when the interface has no router). **The route
  carries the source**: the kernel gives a new connection the interface's
  own CoA, and its packets leave the chosen interface with that interface's
  address; no address translation. Prefixes that must not follow a covering
  rule get ``throw`` routes in that table (a more specific rule for another
  interface, the node's on-link prefixes, link-local, multicast, loopback,
  IPv4-mapped): the kernel then goes on with the next policy rule, so the
  longest matching prefix wins across tables.
- **source table** ``TABLE_BASE + 0x100 + s``: ``default via ROUTER dev IF
  src COA`` and the interface's on-link prefixes: where packets whose source
  is already one of the interface's addresses go (connections steered
  earlier, when a rule changes under them: they stay on their interface).
- **policy rules**, at priority :data:`RULE_PRIORITY` (28008, ``0x6d68``) and
  ``RULE_PRIORITY + 1``; after UMIP's 1000..1004 so that home-address traffic
  keeps going through the daemon's tunnel, before ``main`` at 32766:

  - IPv6: ``28008: from Q lookup DESTINATION-TABLE`` with
    ``FIB_RULE_FIND_SADDR``, and ``28009: from Q lookup SOURCE-TABLE``, for
    each prefix ``Q`` of the interface's own addresses. A lookup that already
    has a source (an established connection, a bound socket) matches only
    when that source is one of the interface's own, so connections opened
    through another interface never move. A lookup *without* a source
    (``connect()``/``sendto()`` of an unbound socket) matches the first
    provisionally: the kernel looks in the table and keeps the result only
    when the source it would use on the route's interface is in ``Q``; the
    route's ``src`` then becomes the connection's source. (``ip rule`` does
    not print that flag.)
  - IPv4 has no ``FIND_SADDR``: ``28008: from 0.0.0.0/32 lookup
    DESTINATION-TABLE`` (a lookup without source: a new connection) and
    ``28009: from Q lookup SOURCE-TABLE`` (``connect()`` looks up a second time
    with the source it chose; established connections from that address).

  So the cost stays flat as rules grow: a few policy rules per interface and
  a longest-prefix lookup in a routing table (a trie), never one ``ip rule``
  per destination (rule lookup is linear).

Marks and nftables are **not** used by destination rules: a mark is set
after the source is chosen and needs source NAT to fix it, which hides the
real source from the application and from mhgui's own flow list (sock_diag
shows the pre-NAT address). Reserved for application rules (later), which
only marks can express: mark bits :data:`MARK_MASK` (``0x3f000000``, value
``slot << 24``), nftables table ``inet mhgui``, policy rule ``fwmark
MARK/MASK lookup TABLE``.

What happens to connections
---------------------------

- A connection opened *before* a rule keeps its path: its source address is
  another interface's, so none of the new lookups match.
- A connection steered by a rule keeps its path while its interface has any
  rule (its source is the interface's CoA: the source table sends it there),
  also when its own rule is removed or a more specific rule for another
  interface is added. When the interface's last rule is removed, its tables
  go and such connections fall back to the default path with a source of
  the other link, which ingress filtering drops: say so before removing.

A rule is realised when its interface exists and has a usable address of the
destination's family (:class:`Uplink`); otherwise it is kept, listed as not
in the kernel with the reason, and applied when the interface comes back.
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
from dataclasses import dataclass, field, replace
from typing import Iterable, Mapping, Union

__all__ = [
    "FIB_RULE_FIND_SADDR",
    "KernelPlan",
    "MARK_MASK",
    "MAX_DESTINATIONS",
    "MAX_RULES",
    "MAX_SLOTS",
    "NEVER_STEERED",
    "PolicyRule",
    "Route",
    "RULE_PRIORITY",
    "SOURCE_TABLE_BASE",
    "STATE_VERSION",
    "SteeringError",
    "SteeringRule",
    "SteeringState",
    "TABLE_BASE",
    "Uplink",
    "add_rule",
    "check_interface_name",
    "check_rule_id",
    "is_our_table",
    "parse_destination",
    "parse_state",
    "plan_kernel_state",
    "remove_rule",
    "render_state",
    "rule_from_request",
    "state_with",
    "table_of_slot",
    "with_fallback",
]

Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]

#: First of mhgui's routing tables ("mh" = 0x6d68); a slot's table is ``TABLE_BASE + slot``.
TABLE_BASE = 0x6D68_0000
#: Slots 1..255 (tables ``TABLE_BASE + 1`` .. ``TABLE_BASE + 0xff``); table ``TABLE_BASE`` itself is never used.
MAX_SLOTS = 255
#: A slot's source table is ``SOURCE_TABLE_BASE + slot``.
SOURCE_TABLE_BASE = TABLE_BASE + 0x100
#: Priority of the destination-table rules (after UMIP's 1000..1004, before main's 32766);
#: the source-table rules have ``RULE_PRIORITY + 1``.
RULE_PRIORITY = 0x6D68  # 28008
#: ``include/uapi/linux/fib_rules.h``: match a lookup without source provisionally, check the source it gets.
FIB_RULE_FIND_SADDR = 0x0001_0000
#: Reserved for application rules (marks, later): bits 24..29, value ``slot << 24`` (slots 1..63).
MARK_MASK = 0x3F00_0000
#: Limits on what a caller may ask for (every input can be hostile).
MAX_RULES = 65_536
MAX_DESTINATIONS = 16
MAX_TEXT = 64  # characters of one destination
STATE_VERSION = 1

#: Never steered: taken out of any covering rule with ``throw`` routes; a rule inside one is refused.
NEVER_STEERED: tuple[Network, ...] = tuple(ipaddress.ip_network(n) for n in (
    "::/128", "::1/128", "::ffff:0:0/96", "fe80::/10", "ff00::/8",
    "0.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "224.0.0.0/4", "255.255.255.255/32",
))

_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")


class SteeringError(ValueError):
    """A request, rule or state file is not acceptable. ``kind``: ``invalid``, ``conflict``,
    ``not-found``, ``limit`` or ``corrupt``."""

    def __init__(self, message: str, kind: str = "invalid") -> None:
        super().__init__(message)
        self.kind = kind


# --------------------------------------------------------------------------- validation


def check_interface_name(name: object) -> str:
    """``name`` if the kernel would accept it as an interface name (``dev_valid_name``), else SteeringError."""
    if not isinstance(name, str) or not name:
        raise SteeringError("the interface name is empty")
    shown = ascii(name)
    if len(name.encode("utf-8", "surrogatepass")) > 15:
        raise SteeringError(f"interface name {shown} is longer than 15 bytes")
    if name in (".", ".."):
        raise SteeringError(f"interface name {shown} is not allowed")
    for ch in name:
        if ch in "/:" or ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F or not ch.isprintable():
            raise SteeringError(f"interface name {shown} contains {ascii(ch)}, which the kernel does not allow")
    return name


def check_rule_id(rule_id: object) -> str:
    if not isinstance(rule_id, str) or not _ID_RE.fullmatch(rule_id):
        raise SteeringError(f"{ascii(rule_id)[:80]} is not a rule id (1..64 of A-Z a-z 0-9 _ -)")
    return rule_id


def parse_destination(text: object) -> Network:
    """An address or prefix (``2001:db8:5::/48``, ``192.0.2.7``) as a network; host bits must be zero.

    Refused: non-strings, more than 64 characters, zone indexes, prefixes with
    host bits set, and prefixes inside :data:`NEVER_STEERED`.
    """
    if not isinstance(text, str):
        raise SteeringError(f"a destination must be a string, not {type(text).__name__}")
    if not text or len(text) > MAX_TEXT:
        raise SteeringError(f"destination {ascii(text[:MAX_TEXT])} must be 1..{MAX_TEXT} characters")
    if "%" in text or not all(c in "0123456789abcdefABCDEF:./" for c in text):
        raise SteeringError(f"destination {ascii(text)} is not an IPv6 or IPv4 address or prefix")
    try:
        net = ipaddress.ip_network(text, strict=True)
    except ValueError as e:
        if "host bits set" in str(e):
            raise SteeringError(f"destination {text} has host bits set (did you mean "
                                f"{ipaddress.ip_network(text, strict=False)}?)") from None
        raise SteeringError(f"destination {ascii(text)} is not an IPv6 or IPv4 address or prefix") from None
    for never in NEVER_STEERED:
        if net.version == never.version and net.subnet_of(never):  # type: ignore[arg-type]
            raise SteeringError(f"destination {net} is inside {never}, which is never steered "
                                f"(unspecified, loopback, link-local, multicast or IPv4-mapped)")
    return net


@dataclass(frozen=True)
class SteeringRule:
    """New connections to ``destinations`` leave through ``interface`` (with its own address as source).

    ``created``: seconds since the epoch. ``destinations``: 1..16 networks, IPv6
    and/or IPv4 (for example the AAAA and A addresses of one server), each at
    most in one rule.
    """

    id: str
    destinations: tuple[Network, ...]
    interface: str
    created: float

    def families(self) -> frozenset[int]:
        return frozenset(d.version for d in self.destinations)

    def to_json(self) -> dict:
        return {"id": self.id, "destinations": [str(d) for d in self.destinations],
                "interface": self.interface, "created": self.created}

    @classmethod
    def from_json(cls, data: object) -> "SteeringRule":
        if not isinstance(data, Mapping):
            raise SteeringError("a rule is not a JSON object", "corrupt")
        extra = set(data) - {"id", "destinations", "interface", "created"}
        if extra:
            raise SteeringError(f"a rule has unknown keys: {', '.join(sorted(map(str, extra)))}", "corrupt")
        created = data.get("created")
        if isinstance(created, bool) or not isinstance(created, (int, float)) or not math.isfinite(created) \
                or created < 0:
            raise SteeringError(f"rule {ascii(data.get('id'))[:80]}: created must be a non-negative number",
                                "corrupt")
        return cls(
            id=check_rule_id(data.get("id")),
            destinations=_check_destinations(data.get("destinations")),
            interface=check_interface_name(data.get("interface")),
            created=float(created),
        )


def _check_destinations(values: object) -> tuple[Network, ...]:
    if isinstance(values, str):
        values = [values]
    if not isinstance(values, (list, tuple)) or not values:
        raise SteeringError("a rule needs at least one destination")
    if len(values) > MAX_DESTINATIONS:
        raise SteeringError(f"a rule has at most {MAX_DESTINATIONS} destinations, not {len(values)}")
    nets = [parse_destination(v) for v in values]
    seen: set[Network] = set()
    for n in nets:
        if n in seen:
            raise SteeringError(f"destination {n} is given twice")
        seen.add(n)
    return tuple(nets)


def rule_from_request(request: Mapping[str, object], *, rule_id: str, now: float) -> SteeringRule:
    """A new rule from a caller's request: ``{"destination": str}`` or ``{"destinations": [str, ...]}``
    (not both) and ``{"interface": str}``. Unknown keys, wrong types and bad values raise SteeringError."""
    if not isinstance(request, Mapping):
        raise SteeringError("the request is not a dictionary")
    allowed = {"destination", "destinations", "interface"}
    extra = [k for k in request if k not in allowed]
    if extra:
        raise SteeringError(f"unknown key(s) {', '.join(ascii(k)[:40] for k in extra[:5])}; "
                            f"allowed: destination or destinations, interface")
    if ("destination" in request) == ("destinations" in request):
        raise SteeringError("give either destination (a string) or destinations (a list of strings)")
    if "destination" in request:
        if not isinstance(request["destination"], str):
            raise SteeringError("destination must be a string")
        dests = _check_destinations([request["destination"]])
    else:
        raw = request["destinations"]
        if not isinstance(raw, (list, tuple)) or not all(isinstance(x, str) for x in raw):
            raise SteeringError("destinations must be a list of strings")
        dests = _check_destinations(list(raw))
    if "interface" not in request:
        raise SteeringError("the interface is missing")
    return SteeringRule(id=check_rule_id(rule_id), destinations=dests,
                        interface=check_interface_name(request["interface"]), created=float(now))


# --------------------------------------------------------------------------- the persisted state


@dataclass(frozen=True)
class SteeringState:
    """What the helper persists: the rules, and the slot of each interface that has rules."""

    rules: tuple[SteeringRule, ...] = ()
    slots: Mapping[str, int] = field(default_factory=dict)
    next_slot: int = 1

    def rule(self, rule_id: str) -> SteeringRule | None:
        for r in self.rules:
            if r.id == rule_id:
                return r
        return None


def _assign_slots(rules: Iterable[SteeringRule], slots: Mapping[str, int], next_slot: int) -> tuple[dict[str, int], int]:
    """Keep the slots of interfaces that still have rules; give new ones the next free slot, round robin
    (a slot just released is the last to be used again)."""
    names = []
    for r in rules:
        if r.interface not in names:
            names.append(r.interface)
    out = {n: s for n, s in slots.items() if n in names}
    used = set(out.values())
    nxt = next_slot if 1 <= next_slot <= MAX_SLOTS else 1
    for n in names:
        if n in out:
            continue
        if len(used) >= MAX_SLOTS:
            raise SteeringError(f"rules may name at most {MAX_SLOTS} interfaces", "limit")
        while nxt in used:
            nxt = nxt % MAX_SLOTS + 1
        out[n] = nxt
        used.add(nxt)
        nxt = nxt % MAX_SLOTS + 1
    return out, nxt


def add_rule(state: SteeringState, rule: SteeringRule) -> SteeringState:
    """``state`` with ``rule`` appended; its destinations must not be in another rule."""
    if state.rule(rule.id) is not None:
        raise SteeringError(f"a rule with id {rule.id} exists", "conflict")
    if len(state.rules) >= MAX_RULES:
        raise SteeringError(f"there are already {MAX_RULES} rules", "limit")
    taken = {d: r for r in state.rules for d in r.destinations}
    for d in rule.destinations:
        if d in taken:
            other = taken[d]
            raise SteeringError(f"{d} is already steered via {other.interface} by rule {other.id}; "
                                f"remove or edit that rule", "conflict")
    rules = state.rules + (rule,)
    slots, nxt = _assign_slots(rules, state.slots, state.next_slot)
    return SteeringState(rules, slots, nxt)


def with_fallback(state: SteeringState, fallback: Mapping[str, str]) -> SteeringState:
    """The state the kernel gets while interfaces are failed over; the persisted state is unchanged.

    ``fallback``: ``{interface: substitute}`` (from the app's failover policy,
    :class:`mhgui.core.failover.SteeringFallback`): each rule naming a key
    leaves through the substitute instead, with the substitute's own CoA as
    source (seed draft section 3, fault recovery: "redirect traffic" to the
    backup interface). Interfaces keep their persisted slots; a substitute
    without rules of its own gets a free slot for as long as it substitutes.
    Keys without rules and identity pairs change nothing.
    """
    fb = {k: v for k, v in fallback.items() if k != v}
    if not fb or not any(r.interface in fb for r in state.rules):
        return state
    rules = tuple(replace(r, interface=fb.get(r.interface, r.interface)) for r in state.rules)
    slots, nxt = _assign_slots(rules, state.slots, state.next_slot)
    return SteeringState(rules, slots, nxt)


def remove_rule(state: SteeringState, rule_id: str) -> SteeringState:
    if state.rule(rule_id) is None:
        raise SteeringError(f"there is no rule {rule_id}", "not-found")
    rules = tuple(r for r in state.rules if r.id != rule_id)
    slots, nxt = _assign_slots(rules, state.slots, state.next_slot)
    return SteeringState(rules, slots, nxt)


def render_state(state: SteeringState) -> str:
    return json.dumps({
        "version": STATE_VERSION,
        "next_slot": state.next_slot,
        "slots": dict(sorted(state.slots.items())),
        "rules": [r.to_json() for r in state.rules],
    }, indent=1, sort_keys=False) + "\n"


def parse_state(text: str) -> SteeringState:
    """The state file's text (from :func:`render_state`); SteeringError(kind="corrupt") for anything else."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise SteeringError(f"not JSON: {e}", "corrupt") from None
    if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
        raise SteeringError(f"not a version {STATE_VERSION} steering state", "corrupt")
    raw_rules = data.get("rules")
    if not isinstance(raw_rules, list) or len(raw_rules) > MAX_RULES:
        raise SteeringError("rules must be a list of at most %d rules" % MAX_RULES, "corrupt")
    rules: list[SteeringRule] = []
    ids: set[str] = set()
    taken: set[Network] = set()
    try:
        for raw in raw_rules:
            rule = SteeringRule.from_json(raw)
            if rule.id in ids:
                raise SteeringError(f"rule id {rule.id} appears twice", "corrupt")
            ids.add(rule.id)
            for d in rule.destinations:
                if d in taken:
                    raise SteeringError(f"destination {d} is in two rules", "corrupt")
                taken.add(d)
            rules.append(rule)
    except SteeringError as e:
        raise SteeringError(str(e), "corrupt") from None
    slots = data.get("slots", {})
    nxt = data.get("next_slot", 1)
    if not isinstance(slots, dict) or not all(
            isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= MAX_SLOTS
            for k, v in slots.items()) or len(set(slots.values())) != len(slots):
        raise SteeringError("slots must map interface names to distinct numbers 1..255", "corrupt")
    if isinstance(nxt, bool) or not isinstance(nxt, int):
        raise SteeringError("next_slot must be a number", "corrupt")
    # interfaces without a slot (a hand-edited file) get one; stale slots are dropped
    slots2, nxt2 = _assign_slots(rules, slots, nxt)
    return SteeringState(tuple(rules), slots2, nxt2)


# --------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class Uplink:
    """What the planner needs to know about one interface (the helper reads it from the kernel).

    ``coa``/``addr4``: the source address steered connections get (None: no usable
    address of that family: rules of that family are not applied); ``router`` /
    ``router4``: the next hop (None: destinations are on-link); ``prefixes`` /
    ``prefixes4``: the prefixes of all the interface's addresses (``2001:db8:b::/64``),
    for the policy rules' ``from`` and as on-link prefixes that are never steered.
    """

    ifindex: int
    coa: str | None = None
    router: str | None = None
    prefixes: tuple[str, ...] = ()
    addr4: str | None = None
    router4: str | None = None
    prefixes4: tuple[str, ...] = ()


@dataclass(frozen=True, order=True)
class Route:
    """One route in one of mhgui's tables. ``kind``: ``unicast`` or ``throw``; ``dst``: prefix text."""

    family: int  # 6 or 4
    table: int
    dst: str
    kind: str = "unicast"
    oif: int = 0
    gateway: str = ""
    prefsrc: str = ""


@dataclass(frozen=True, order=True)
class PolicyRule:
    """``ip rule``: ``priority: from SRC lookup TABLE`` (+ ``FIB_RULE_FIND_SADDR`` when ``find_saddr``)."""

    family: int
    priority: int
    table: int
    src: str
    find_saddr: bool = False


@dataclass(frozen=True)
class KernelPlan:
    """The complete kernel state mhgui wants: every route in its tables and every one of its policy rules.

    ``needs[rule_id]``: the routes and policy rules that realise that rule
    (empty when it is not realised); ``reasons[rule_id]``: "" when the rule is
    fully realised, else why (not) or which part is not.
    """

    routes: tuple[Route, ...] = ()
    rules: tuple[PolicyRule, ...] = ()
    slots: Mapping[str, int] = field(default_factory=dict)
    needs: Mapping[str, tuple[tuple[Route, ...], tuple[PolicyRule, ...]]] = field(default_factory=dict)
    reasons: Mapping[str, str] = field(default_factory=dict)

    @property
    def tables(self) -> frozenset[tuple[int, int]]:
        """(family, table) pairs in use."""
        return frozenset((r.family, r.table) for r in self.routes)


def table_of_slot(slot: int) -> int:
    if not 1 <= slot <= MAX_SLOTS:
        raise ValueError(f"slot {slot} is outside 1..{MAX_SLOTS}")
    return TABLE_BASE + slot


def is_our_table(table: int | None) -> bool:
    """Whether a table number is in mhgui's range (``TABLE_BASE`` .. ``TABLE_BASE + 0x1ff``)."""
    return table is not None and TABLE_BASE <= table <= TABLE_BASE + 0x1FF


def _net(text: str, version: int) -> Network | None:
    try:
        n = ipaddress.ip_network(text, strict=False)
    except (ValueError, TypeError):
        return None
    return n if n.version == version else None


def _addr_ok(text: str | None, version: int) -> bool:
    if not text:
        return False
    try:
        return ipaddress.ip_address(text).version == version
    except ValueError:
        return False


def plan_kernel_state(
    rules: Iterable[SteeringRule],
    interfaces: Mapping[str, Uplink | tuple],
    slots: Mapping[str, int] | None = None,
) -> KernelPlan:
    """The kernel state for ``rules`` on a node whose interfaces are ``interfaces``.

    ``interfaces``: every interface with addresses, ``{name: Uplink}`` (or the
    short ``{name: (ifindex, coa, router)}`` for IPv6 only); interfaces that
    have no rule still matter: their on-link prefixes are never steered.
    ``slots``: the persisted slot of each interface (default: interfaces in
    name order get 1, 2, ...). The result is deterministic and independent of
    the order of ``rules``.
    """
    rules = sorted(rules, key=lambda r: r.id)
    ups: dict[str, Uplink] = {}
    for name, u in interfaces.items():
        if isinstance(u, tuple):
            ifindex, coa, router = u
            prefixes = (str(ipaddress.ip_interface(f"{coa}/64").network),) if _addr_ok(coa, 6) else ()
            u = Uplink(ifindex=ifindex, coa=coa, router=router, prefixes=prefixes)
        ups[name] = u
    if slots is None:
        slots, _ = _assign_slots(rules, {}, 1)
    reasons: dict[str, str] = {}
    # (family) -> {network: (slot, rule id)} of realised destinations
    owned: dict[int, dict[Network, tuple[int, str]]] = {6: {}, 4: {}}
    for r in rules:
        up = ups.get(r.interface)
        slot = slots.get(r.interface)
        missing: list[str] = []
        for d in r.destinations:
            if up is None:
                continue
            if slot is None or not 1 <= slot <= MAX_SLOTS:
                missing.append(f"{d}: no slot for {r.interface}")
                continue
            if (d.version == 6 and not _addr_ok(up.coa, 6)) or (d.version == 4 and not _addr_ok(up.addr4, 4)):
                missing.append(f"{d}: {r.interface} has no usable IPv{d.version} address")
                continue
            owned[d.version][d] = (slot, r.id)
        if up is None:
            reasons[r.id] = (f"{r.interface} is not usable now (missing, down, or without a care-of address "
                             "and a default router); the rule waits for it")
        elif missing:
            reasons[r.id] = "; ".join(missing)
        else:
            reasons[r.id] = ""

    # prefixes that are never steered: fixed ones and every on-link prefix of the node
    never: dict[int, set[Network]] = {6: set(), 4: set()}
    for n in NEVER_STEERED:
        never[n.version].add(n)
    for u in ups.values():
        for text in u.prefixes:
            n = _net(text, 6)
            if n is not None and n.prefixlen > 0:
                never[6].add(n)
        for text in u.prefixes4:
            n = _net(text, 4)
            if n is not None and n.prefixlen > 0:
                never[4].add(n)

    routes: set[Route] = set()
    per_rule_routes: dict[str, list[Route]] = {}
    slot_iface = {s: n for n, s in slots.items()}
    used: dict[int, set[int]] = {6: set(), 4: set()}  # family -> slots with routes
    for fam in (6, 4):
        own = owned[fam]
        # a destination inside (or equal to) an on-link prefix is not steered
        for d in sorted(own, key=lambda n: (n.prefixlen, n)):
            inside = [n for n in never[fam] if d.subnet_of(n)]  # type: ignore[arg-type]
            if inside:
                slot, rid = own.pop(d)
                note = f"{d}: inside the on-link prefix {inside[0]}, not steered"
                reasons[rid] = f"{reasons[rid]}; {note}" if reasons[rid] else note
        lengths = sorted({n.prefixlen for n in own})
        for d, (slot, rid) in own.items():
            up = ups[slot_iface[slot]]
            gw = up.router if fam == 6 else up.router4
            src = up.coa if fam == 6 else up.addr4
            rt = Route(fam, table_of_slot(slot), str(d), "unicast", up.ifindex,
                       str(ipaddress.ip_address(gw)) if _addr_ok(gw, fam) else "",
                       str(ipaddress.ip_address(src)))  # type: ignore[arg-type]
            routes.add(rt)
            per_rule_routes.setdefault(rid, []).append(rt)
            used[fam].add(slot)
        # throw routes: a more specific prefix of another slot, or a never-steered one, inside a slot's prefix

        def covering_slots(n: Network) -> set[int]:
            out = set()
            for plen in lengths:
                if plen >= n.prefixlen:
                    break
                sup = n.supernet(new_prefix=plen)
                hit = own.get(sup)
                if hit is not None:
                    out.add(hit[0])
            return out

        for d, (slot, _rid) in own.items():
            for s in covering_slots(d) - {slot}:
                routes.add(Route(fam, table_of_slot(s), str(d), "throw"))
        for n in never[fam]:
            for s in covering_slots(n):
                routes.add(Route(fam, table_of_slot(s), str(n), "throw"))

    policy: set[PolicyRule] = set()
    per_slot: dict[tuple[int, int], tuple[list[Route], list[PolicyRule]]] = {}
    for fam in (6, 4):
        for slot in sorted(used[fam]):
            up = ups[slot_iface[slot]]
            table, stable = table_of_slot(slot), SOURCE_TABLE_BASE + slot
            src = up.coa if fam == 6 else up.addr4
            gw = up.router if fam == 6 else up.router4
            host = ipaddress.ip_network(f"{src}/{128 if fam == 6 else 32}")
            prefixes = {_net(p, fam) for p in (up.prefixes if fam == 6 else up.prefixes4)} - {None}
            if not any(host.subnet_of(p) for p in prefixes):  # type: ignore[arg-type]
                prefixes.add(host)
            srt = [Route(fam, stable, "::/0" if fam == 6 else "0.0.0.0/0", "unicast", up.ifindex,
                         str(ipaddress.ip_address(gw)) if _addr_ok(gw, fam) else "",
                         str(ipaddress.ip_address(src)))]  # type: ignore[arg-type]
            srt += [Route(fam, stable, str(p), "unicast", up.ifindex)
                    for p in sorted(prefixes) if p.prefixlen < p.max_prefixlen]  # type: ignore[union-attr, type-var]
            if fam == 6:
                mine = [PolicyRule(6, RULE_PRIORITY, table, str(p), True) for p in sorted(prefixes)]  # type: ignore[type-var]
            else:
                mine = [PolicyRule(4, RULE_PRIORITY, table, "0.0.0.0/32", False)]
            mine += [PolicyRule(fam, RULE_PRIORITY + 1, stable, str(p), False) for p in sorted(prefixes)]  # type: ignore[type-var]
            routes.update(srt)
            policy.update(mine)
            per_slot[(fam, slot)] = (srt, mine)

    needs: dict[str, tuple[tuple[Route, ...], tuple[PolicyRule, ...]]] = {}
    for r in rules:
        own_routes = per_rule_routes.get(r.id, ())
        rts: set[Route] = set(own_routes)
        prs: set[PolicyRule] = set()
        for rt in own_routes:
            srt, mine = per_slot.get((rt.family, rt.table - TABLE_BASE), ([], []))
            rts.update(srt)
            prs.update(mine)
        needs[r.id] = (tuple(sorted(rts)), tuple(sorted(prs)))
    return KernelPlan(
        routes=tuple(sorted(routes)),
        rules=tuple(sorted(policy)),
        slots={n: s for n, s in slots.items() if any(s in used[f] for f in (6, 4))},
        needs=needs,
        reasons=reasons,
    )


def state_with(rules: Iterable[SteeringRule]) -> SteeringState:
    """A state holding ``rules`` (slots assigned in order); SteeringError as :func:`add_rule`."""
    rules = tuple(rules)
    ids = [r.id for r in rules]
    if len(set(ids)) != len(ids):
        raise SteeringError("two rules have the same id", "conflict")
    dests = [d for r in rules for d in r.destinations]
    if len(set(dests)) != len(dests):
        raise SteeringError("a destination is in two rules", "conflict")
    if len(rules) > MAX_RULES:
        raise SteeringError(f"more than {MAX_RULES} rules", "limit")
    slots, nxt = _assign_slots(rules, {}, 1)
    return SteeringState(rules, slots, nxt)
