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
  ``RULE_PRIORITY + 1`` (and ``RULE_PRIORITY - 1`` on a link whose prefixes
  have different routers, see :func:`plan_kernel_state`); after UMIP's 1000..1004 so that home-address traffic
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
shows the pre-NAT address). Rules with a protocol, port or application
selector (issue 15.6, *marked* rules, :mod:`mhgui.core.steering_selectors`)
can only be expressed with marks: nftables table ``inet mhgui`` marks their
new connections (bits :data:`MARK_MASK`, ``0x3f000000``, value ``slot << 24``,
kept in the conntrack mark), a policy rule ``fwmark MARK/MASK lookup
SOURCE-TABLE`` at :data:`MARK_PRIORITY` sends them through the interface, and
they are masqueraded to its address (:mod:`mhgui.core.steering_nft`). Their
destinations are a filter, not routes: they may overlap plain rules' (the
marked rule wins: its policy rule comes first).

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

import bisect
import ipaddress
import json
import math
import re
from dataclasses import dataclass, field, replace
from typing import Iterable, Mapping, Union

from ..i18n import N_, _
from .nexthop import NextHop, next_hop
from .ra import Advert
from .steering_selectors import format_ports, parse_application, parse_ports, parse_protocol

__all__ = [
    "FIB_RULE_FIND_SADDR",
    "KernelPlan",
    "MARK_MASK",
    "MARK_PRIORITY",
    "MAX_MARK_SLOT",
    "MAX_CHANGE_BYTES",
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
    "check_request",
    "check_rule_id",
    "fallback_rule",
    "is_our_table",
    "mark_of_slot",
    "parse_change",
    "parse_destination",
    "parse_snapshot",
    "parse_source",
    "parse_state",
    "plan_kernel_state",
    "remove_rule",
    "render_change",
    "render_state",
    "replay",
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
#: Marked rules (protocol, ports, application: :mod:`mhgui.core.steering_nft`): bits 24..29, value
#: ``slot << 24`` (slots 1..63).
MARK_MASK = 0x3F00_0000
MAX_MARK_SLOT = 63
#: Priority of the ``fwmark SLOT<<24/MARK_MASK lookup SOURCE-TABLE`` rules: before the destination rules.
MARK_PRIORITY = RULE_PRIORITY - 2


def mark_of_slot(slot: int) -> int:
    """The packet mark of a slot's marked rules (``slot << 24``; ValueError outside 1..63)."""
    if not 1 <= slot <= MAX_MARK_SLOT:
        raise ValueError(f"slot {slot} has no mark (1..{MAX_MARK_SLOT})")
    return slot << 24
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
        raise SteeringError(_("the interface name is empty"))
    shown = ascii(name)
    if len(name.encode("utf-8", "surrogatepass")) > 15:
        raise SteeringError(_("interface name {name} is longer than 15 bytes").format(name=shown))
    if name in (".", ".."):
        raise SteeringError(_("interface name {name} is not allowed").format(name=shown))
    for ch in name:
        if ch in "/:" or ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F or not ch.isprintable():
            raise SteeringError(_("interface name {name} contains {char}, which the kernel does not allow").format(
                name=shown, char=ascii(ch)))
    return name


def check_rule_id(rule_id: object) -> str:
    if not isinstance(rule_id, str) or not _ID_RE.fullmatch(rule_id):
        raise SteeringError(_("{id} is not a rule id (1..64 of A-Z a-z 0-9 _ -)").format(id=ascii(rule_id)[:80]))
    return rule_id


def parse_destination(text: object, what: str = N_("destination")) -> Network:
    """An address or prefix (``2001:db8:5::/48``, ``192.0.2.7``) as a network; host bits must be zero.

    Refused (SteeringError): non-strings, more than 64 characters, zone indexes,
    prefixes with host bits set, and prefixes inside :data:`NEVER_STEERED`.
    ``what`` names the value in messages (``destination``, ``source``: marked with N_, translated here).
    """
    if not isinstance(text, str):
        raise SteeringError(_("a {what} must be a string, not {type}").format(what=_(what), type=type(text).__name__))
    if not text or len(text) > MAX_TEXT:
        raise SteeringError(_("{what} {value} must be 1..{max} characters").format(
            what=_(what), value=ascii(text[:MAX_TEXT]), max=MAX_TEXT))
    if "%" in text or not all(c in "0123456789abcdefABCDEF:./" for c in text):
        raise SteeringError(_("{what} {value} is not an IPv6 or IPv4 address or prefix").format(
            what=_(what), value=ascii(text)))
    try:
        net = ipaddress.ip_network(text, strict=True)
    except ValueError as e:
        if "host bits set" in str(e):
            raise SteeringError(_("{what} {value} has host bits set (did you mean {network}?)").format(
                what=_(what), value=text, network=ipaddress.ip_network(text, strict=False))) from None
        raise SteeringError(_("{what} {value} is not an IPv6 or IPv4 address or prefix").format(
            what=_(what), value=ascii(text))) from None
    for never in NEVER_STEERED:
        if net.version == never.version and net.subnet_of(never):  # type: ignore[arg-type]
            raise SteeringError(_("{what} {value} is inside {never}, which is never steered "
                                  "(unspecified, loopback, link-local, multicast or IPv4-mapped)").format(
                what=_(what), value=net, never=never))
    return net


def parse_source(text: object) -> Network:
    """A rule's source selector: one of the interface's addresses or a prefix of them
    (``2001:db8:b::/64``); the same syntax as :func:`parse_destination`, and not ``::/0``."""
    net = parse_destination(text, N_("source"))
    if net.prefixlen == 0:
        raise SteeringError(_("source {source} selects nothing: leave the source out to let the interface choose")
                            .format(source=net))
    return net


@dataclass(frozen=True)
class SteeringRule:
    """New connections to ``destinations`` leave through ``interface`` (with its own address as source).

    ``created``: seconds since the epoch. ``destinations``: 1..16 networks, IPv6
    and/or IPv4 (for example the AAAA and A addresses of one server), each at
    most in one rule. ``source``: None (the interface's preferred address), or
    an address or prefix of the interface's: the connections get an address
    from it, and leave through the router that advertised its prefix (two
    providers on one link); then every destination is of the source's family.
    """

    id: str
    destinations: tuple[Network, ...]
    interface: str
    created: float
    source: Network | None = None
    #: selectors of marked rules (:mod:`mhgui.core.steering_selectors`): "tcp"/"udp"/None,
    #: destination port ranges, "app:ID"/"cgroup:PATH"/None
    protocol: str | None = None
    ports: tuple[tuple[int, int], ...] = ()
    application: str | None = None

    @property
    def marked(self) -> bool:
        """Whether the rule is realised with nftables marks (it has a protocol, port or application
        selector; its destinations, if any, are a filter and not routes of their own)."""
        return bool(self.protocol or self.ports or self.application)

    def families(self) -> frozenset[int]:
        if self.marked and not self.destinations:
            return frozenset((6, 4))
        return frozenset(d.version for d in self.destinations)

    def to_json(self) -> dict:
        out = {"id": self.id, "destinations": [str(d) for d in self.destinations],
               "interface": self.interface, "created": self.created}
        if self.source is not None:
            out["source"] = str(self.source)
        # (keys only when set: rules without them are written as before, and older helpers read them)
        if self.protocol:
            out["protocol"] = self.protocol
        if self.ports:
            out["ports"] = format_ports(self.ports)
        if self.application:
            out["application"] = self.application
        return out

    @classmethod
    def from_json(cls, data: object) -> SteeringRule:
        if not isinstance(data, Mapping):
            raise SteeringError("a rule is not a JSON object", "corrupt")
        extra = set(data) - {"id", "destinations", "interface", "created", "source", "protocol", "ports",
                             "application"}
        if extra:
            raise SteeringError(f"a rule has unknown keys: {', '.join(sorted(map(str, extra)))}", "corrupt")
        created = data.get("created")
        if isinstance(created, bool) or not isinstance(created, (int, float)) or not math.isfinite(created) \
                or created < 0:
            raise SteeringError(f"rule {ascii(data.get('id'))[:80]}: created must be a non-negative number",
                                "corrupt")
        source = data.get("source")
        protocol, ports, application = _check_marks(data.get("protocol"), data.get("ports"), data.get("application"))
        marked = bool(protocol or ports or application)
        rule = cls(
            id=check_rule_id(data.get("id")),
            destinations=_check_destinations(data.get("destinations"), empty_ok=marked),
            interface=check_interface_name(data.get("interface")),
            created=float(created),
            source=None if source is None else parse_source(source),
            protocol=protocol, ports=ports, application=application,
        )
        _check_selectors(rule)
        return rule


def _check_marks(protocol: object, ports: object, application: object
                 ) -> tuple[str | None, tuple[tuple[int, int], ...], str | None]:
    """The selectors of a marked rule, checked (SteeringError naming the bad one)."""
    try:
        proto = parse_protocol(protocol)
    except ValueError as e:
        raise SteeringError(str(e)) from None
    try:
        got = parse_ports(ports)
    except ValueError as e:
        raise SteeringError(_("ports: {why}").format(why=e)) from None
    try:
        app = parse_application(application)
    except ValueError as e:
        raise SteeringError(_("application: {why}").format(why=e)) from None
    return proto, got, app


def _check_destinations(values: object, empty_ok: bool = False) -> tuple[Network, ...]:
    if isinstance(values, str):
        values = [values]
    if empty_ok and (values is None or values == [] or values == ()):
        return ()
    if not isinstance(values, (list, tuple)) or not values:
        raise SteeringError(_("a rule needs at least one destination"))
    if len(values) > MAX_DESTINATIONS:
        raise SteeringError(_("a rule has at most {max} destinations, not {n}").format(max=MAX_DESTINATIONS,
                                                                                      n=len(values)))
    nets = [parse_destination(v) for v in values]
    seen: set[Network] = set()
    for n in nets:
        if n in seen:
            raise SteeringError(_("destination {destination} is given twice").format(destination=n))
        seen.add(n)
    return tuple(nets)


#: Selectors other tools have that steering rules do not: named in the refusal.
_UNSUPPORTED_KEYS = frozenset({"proto", "ipproto", "port", "sport", "dport",
                               "source_port", "destination_port", "uid", "mark"})


def _check_selectors(rule: SteeringRule) -> None:
    """Refuse a rule whose selectors contradict each other (it could never match anything)."""
    if rule.marked and rule.source is not None:
        raise SteeringError(_("a source cannot be combined with a protocol, port or application: such "
                              "connections get the interface's own address"))
    if rule.source is None:
        return
    other = [d for d in rule.destinations if d.version != rule.source.version]
    if other:
        raise SteeringError(_(
            "source {source} is IPv{source_version} but destination {destination} is IPv{destination_version}: "
            "a connection has one address family, so that part of the rule could never match; "
            "make one rule per family").format(source=rule.source, source_version=rule.source.version,
                                               destination=other[0], destination_version=other[0].version))


def rule_from_request(request: Mapping[str, object], *, rule_id: str, now: float) -> SteeringRule:
    """A new rule from a caller's request: ``{"destination": str}`` or ``{"destinations": [str, ...]}``
    (not both), ``{"interface": str}`` and optionally ``{"source": str}``. Unknown keys, wrong types,
    bad values and selectors that contradict each other raise SteeringError (``invalid``).
    See :func:`check_request` for the checks against the node's interfaces."""
    if not isinstance(request, Mapping):
        raise SteeringError(_("the request is not a dictionary"))
    allowed = {"destination", "destinations", "interface", "source", "protocol", "ports", "application"}
    extra = [k for k in request if k not in allowed]
    unsupported = [k for k in extra if isinstance(k, str) and k.lower() in _UNSUPPORTED_KEYS]
    if unsupported:
        raise SteeringError(_("steering rules select by destination, source, protocol, destination ports "
                              "and application; {key} is not supported "
                              "(for destination ports use 'ports', for the protocol 'protocol')").format(
            key=ascii(unsupported[0])[:40]))
    if extra:
        raise SteeringError(_("unknown key(s) {keys}; allowed: "
                              "destination or destinations, interface, source, protocol, ports, application").format(
            keys=", ".join(ascii(k)[:40] for k in extra[:5])))
    protocol, ports, application = _check_marks(request.get("protocol"), request.get("ports"),
                                                request.get("application"))
    marked = bool(protocol or ports or application)
    if "destination" in request and "destinations" in request:
        raise SteeringError(_("give either destination (a string) or destinations (a list of strings)"))
    if "destination" not in request and "destinations" not in request and not marked:
        raise SteeringError(_("give either destination (a string) or destinations (a list of strings), "
                              "or a protocol, ports or an application to select by"))
    if "destination" in request:
        if not isinstance(request["destination"], str):
            raise SteeringError(_("destination must be a string"))
        dests = _check_destinations([request["destination"]])
    else:
        raw = request.get("destinations", [])
        if not isinstance(raw, (list, tuple)) or not all(isinstance(x, str) for x in raw):
            raise SteeringError(_("destinations must be a list of strings"))
        dests = _check_destinations(list(raw), empty_ok=marked)
    if "interface" not in request:
        raise SteeringError(_("the interface is missing"))
    source = parse_source(request["source"]) if request.get("source") not in (None, "") else None
    rule = SteeringRule(id=check_rule_id(rule_id), destinations=dests,
                        interface=check_interface_name(request["interface"]), created=float(now), source=source,
                        protocol=protocol, ports=ports, application=application)
    _check_selectors(rule)
    return rule


def check_request(request: Mapping[str, object], *, rule_id: str = "new", now: float = 0.0,
                  names: Iterable[str] | None = None,
                  uplinks: Mapping[str, Uplink] | None = None) -> SteeringRule:
    """The one validation of a new rule, for ``mhctl`` (before it asks the helper) and the helper.

    Everything :func:`rule_from_request` checks, and, when the node is known:

    - ``names`` (every interface name of the node): the interface exists;
    - ``uplinks`` (:func:`mhgui.helper.steering.discover_uplinks`): the source
      is an address or prefix of the interface's own addresses (when it has
      addresses of that family), and no destination lies on one of the node's
      own links (the kernel reaches those directly; a rule could never move them).

    Returns the rule; raises SteeringError (``invalid``) with one line naming the problem.
    """
    rule = rule_from_request(request, rule_id=rule_id, now=now)
    if names is not None:
        known = sorted(set(names))
        if rule.interface not in known:
            shown = ", ".join(known[:20]) + (" ..." if len(known) > 20 else "")
            raise SteeringError(_("there is no interface {name} on this node (interfaces: {names})").format(
                name=ascii(rule.interface)[1:-1], names=shown or _("none")))
    if uplinks is not None:
        up = uplinks.get(rule.interface)
        if rule.source is not None and up is not None:
            mine = [n for n in (_net(p, rule.source.version)
                                for p in (up.prefixes if rule.source.version == 6 else up.prefixes4)) if n]
            if mine and not any(rule.source.overlaps(n) for n in mine):  # type: ignore[arg-type]
                raise SteeringError(_("source {source} is not one of {interface}'s addresses (its prefixes: "
                                      "{prefixes})").format(source=rule.source, interface=rule.interface,
                                                            prefixes=", ".join(str(n) for n in mine)))
        for name, u in sorted(uplinks.items()):
            for p in (*u.prefixes, *u.prefixes4):
                for d in rule.destinations:
                    n = _net(p, d.version)
                    if n is not None and n.prefixlen > 0 and d.subnet_of(n):  # type: ignore[arg-type]
                        raise SteeringError(_("destination {destination} is on {interface}'s own link ({prefix}): "
                                              "the node reaches it directly, a steering rule could never move it")
                                            .format(destination=d, interface=name, prefix=n))
    return rule


# --------------------------------------------------------------------------- the persisted state


@dataclass(frozen=True)
class SteeringState:
    """What the helper persists: the rules, and the slot of each interface that has rules.

    Lookups by rule id and by destination go through an index that is built on first use and then
    handed from state to state by :func:`add_rule` and :func:`remove_rule`, so that one change costs
    the same at 10 and at 10,000 rules (issue 14). The index is a cache: not compared, not persisted.
    """

    rules: tuple[SteeringRule, ...] = ()
    slots: Mapping[str, int] = field(default_factory=dict)
    next_slot: int = 1
    _index: _Index | None = field(default=None, init=False, compare=False, repr=False)

    def rule(self, rule_id: str) -> SteeringRule | None:
        return self._idx().by_id.get(rule_id)

    def owner(self, destination: Network) -> SteeringRule | None:
        """The rule that steers ``destination`` (exactly that network), or None."""
        return self._idx().by_dest.get(destination)

    def _idx(self) -> _Index:
        if self._index is None:
            object.__setattr__(self, "_index", _Index.of(self.rules))
        return self._index  # type: ignore[return-value]

    def _hand_over(self) -> _Index:
        """This state's index, for a state made from it; this one builds its own again if it is asked."""
        idx = self._idx()
        object.__setattr__(self, "_index", None)
        return idx


@dataclass
class _Index:
    """Rule id -> rule, destination -> rule, interface -> number of rules, and where each rule is in the
    tuple of rules (ids numbered in order of addition; the numbers of the rules present, ascending, so
    that a rule's position is a binary search away)."""

    by_id: dict[str, SteeringRule]
    by_dest: dict[Network, SteeringRule]
    per_iface: dict[str, int]
    number: dict[str, int]
    numbers: list[int]

    @classmethod
    def of(cls, rules: Iterable[SteeringRule]) -> _Index:
        idx = cls({}, {}, {}, {}, [])
        for r in rules:
            idx.add(r)
        return idx

    def add(self, rule: SteeringRule) -> None:
        self.by_id[rule.id] = rule
        for d in () if rule.marked else rule.destinations:
            self.by_dest[d] = rule
        self.per_iface[rule.interface] = self.per_iface.get(rule.interface, 0) + 1
        n = self.numbers[-1] + 1 if self.numbers else 0
        self.number[rule.id] = n
        self.numbers.append(n)

    def remove(self, rule: SteeringRule) -> int:
        """Forget ``rule``; returns its position in the tuple of rules."""
        del self.by_id[rule.id]
        for d in () if rule.marked else rule.destinations:
            del self.by_dest[d]
        left = self.per_iface[rule.interface] - 1
        if left:
            self.per_iface[rule.interface] = left
        else:
            del self.per_iface[rule.interface]
        pos = bisect.bisect_left(self.numbers, self.number.pop(rule.id))
        del self.numbers[pos]
        return pos


def _assign_slots(rules: Iterable[SteeringRule], slots: Mapping[str, int], next_slot: int) -> tuple[dict[str, int], int]:
    """Keep the slots of interfaces that still have rules; give new ones the next free slot, round robin
    (a slot just released is the last to be used again)."""
    names = []
    seen: set[str] = set()
    for r in rules:
        if r.interface not in seen:
            seen.add(r.interface)
            names.append(r.interface)
    return _assign_names(names, slots, next_slot)


def _assign_names(names: Iterable[str], slots: Mapping[str, int], next_slot: int) -> tuple[dict[str, int], int]:
    """:func:`_assign_slots` for the interfaces ``names`` (in the order of their first rule)."""
    names = list(names)
    wanted = set(names)
    out = {n: s for n, s in slots.items() if n in wanted}
    used = set(out.values())
    nxt = next_slot if 1 <= next_slot <= MAX_SLOTS else 1
    for n in names:
        if n in out:
            continue
        if len(used) >= MAX_SLOTS:
            raise SteeringError(_("rules may name at most {max} interfaces").format(max=MAX_SLOTS), "limit")
        while nxt in used:
            nxt = nxt % MAX_SLOTS + 1
        out[n] = nxt
        used.add(nxt)
        nxt = nxt % MAX_SLOTS + 1
    return out, nxt


def add_rule(state: SteeringState, rule: SteeringRule) -> SteeringState:
    """``state`` with ``rule`` appended; its destinations must not be in another rule.

    SteeringError: ``conflict`` (the id or a destination is taken), ``limit`` (:data:`MAX_RULES` rules,
    or :data:`MAX_SLOTS` interfaces). Costs the same whatever the number of rules (the index).
    """
    idx = state._idx()
    if rule.id in idx.by_id:
        raise SteeringError(_("a rule with id {id} exists").format(id=rule.id), "conflict")
    if len(state.rules) >= MAX_RULES:
        raise SteeringError(_("there are already {max} rules").format(max=MAX_RULES), "limit")
    for d in () if rule.marked else rule.destinations:
        other = idx.by_dest.get(d)
        if other is not None:
            raise SteeringError(_("{destination} is already steered via {interface} by rule {id}; "
                                  "remove or edit that rule").format(destination=d, interface=other.interface,
                                                                     id=other.id), "conflict")
    names = list(idx.per_iface)
    if rule.interface not in idx.per_iface:
        names.append(rule.interface)
    if set(state.slots) == set(idx.per_iface):
        slots, nxt = _assign_names(names, state.slots, state.next_slot)
    else:  # a state put together by hand: the slots of every rule
        slots, nxt = _assign_slots(state.rules + (rule,), state.slots, state.next_slot)
    idx = state._hand_over()
    idx.add(rule)
    new = SteeringState(state.rules + (rule,), slots, nxt)
    object.__setattr__(new, "_index", idx)
    return new


def fallback_rule(rule: SteeringRule, fallback: Mapping[str, str]) -> SteeringRule:
    """``rule`` as the kernel gets it while ``fallback`` (``{interface: substitute}``) holds: through the
    substitute, without its source selector (a substitute has addresses of its own)."""
    sub = fallback.get(rule.interface)
    if sub is None or sub == rule.interface:
        return rule
    return replace(rule, interface=sub, source=None)


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
    if not fb or not any(n in fb for n in state._idx().per_iface):
        return state
    rules = tuple(fallback_rule(r, fb) for r in state.rules)
    slots, nxt = _assign_slots(rules, state.slots, state.next_slot)
    return SteeringState(rules, slots, nxt)


def remove_rule(state: SteeringState, rule_id: str) -> SteeringState:
    """``state`` without the rule ``rule_id`` (SteeringError ``not-found``). Costs the same whatever the
    number of rules (the index), but for copying the tuple of rules (C speed: about 10 µs at 10,000)."""
    rule = state.rule(rule_id)
    if rule is None:
        raise SteeringError(_("there is no rule {id}").format(id=rule_id), "not-found")
    by_hand = set(state.slots) != set(state._idx().per_iface)
    idx = state._hand_over()
    pos = idx.remove(rule)
    rules = state.rules[:pos] + state.rules[pos + 1:]
    if by_hand:  # a state put together by hand: the slots of every rule
        slots, nxt = _assign_slots(rules, state.slots, state.next_slot)
    else:
        slots, nxt = _assign_names(idx.per_iface, state.slots, state.next_slot)
    new = SteeringState(rules, slots, nxt)
    object.__setattr__(new, "_index", idx)
    return new


def render_state(state: SteeringState, seq: int = 0) -> str:
    """The state file's text. ``seq``: the number of the last journalled change it includes
    (:func:`render_change`; 0: none, and then the key is left out)."""
    data: dict = {
        "version": STATE_VERSION,
        "next_slot": state.next_slot,
        "slots": dict(sorted(state.slots.items())),
        "rules": [r.to_json() for r in state.rules],
    }
    if seq:
        data["seq"] = seq
    return json.dumps(data, indent=1, sort_keys=False) + "\n"


def parse_state(text: str) -> SteeringState:
    """The state file's text (from :func:`render_state`); SteeringError(kind="corrupt") for anything else."""
    return parse_snapshot(text)[0]


def parse_snapshot(text: str) -> tuple[SteeringState, int]:
    """:func:`parse_state`, and the number of the last journalled change the file includes (0: none)."""
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
            for d in () if rule.marked else rule.destinations:
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
    seq = data.get("seq", 0)
    if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq < 2**63:
        raise SteeringError("seq must be a number 0..2^63-1", "corrupt")
    # interfaces without a slot (a hand-edited file) get one; stale slots are dropped
    slots2, nxt2 = _assign_slots(rules, slots, nxt)
    return SteeringState(tuple(rules), slots2, nxt2), seq


# --------------------------------------------------------------------------- the journal

#: A journal line is at most this long (a rule of 16 destinations is about 1.3 KiB).
MAX_CHANGE_BYTES = 8192


def render_change(seq: int, *, add: SteeringRule | None = None, remove: str | None = None) -> bytes:
    """One line of the journal (UTF-8, newline-terminated): ``{"seq": N, "add": RULE}`` (the rule's
    :meth:`SteeringRule.to_json`) or ``{"seq": N, "remove": "ID"}``. Changes are numbered 1, 2, ...
    after the state file's ``seq``."""
    if (add is None) == (remove is None):
        raise ValueError("a change adds a rule or removes one")
    body = {"seq": seq, "add": add.to_json()} if add is not None else {"seq": seq, "remove": remove}
    return json.dumps(body, separators=(",", ":")).encode() + b"\n"


def parse_change(line: bytes) -> tuple[int, SteeringRule | str]:
    """A journal line (without its newline): (seq, the added rule or the removed rule's id).
    SteeringError ``corrupt`` for anything that :func:`render_change` does not write."""
    if len(line) > MAX_CHANGE_BYTES:
        raise SteeringError(f"longer than {MAX_CHANGE_BYTES} bytes", "corrupt")
    try:
        data = json.loads(line.decode("utf-8"))
    except (ValueError, RecursionError):
        raise SteeringError("not a JSON object", "corrupt") from None
    if not isinstance(data, dict) or set(data) not in ({"seq", "add"}, {"seq", "remove"}):
        raise SteeringError('not {"seq": N, "add": RULE} or {"seq": N, "remove": ID}', "corrupt")
    seq = data["seq"]
    if isinstance(seq, bool) or not isinstance(seq, int) or not 1 <= seq < 2**63:
        raise SteeringError("seq must be a number 1..2^63-1", "corrupt")
    try:
        return seq, SteeringRule.from_json(data["add"]) if "add" in data else check_rule_id(data["remove"])
    except SteeringError as e:
        raise SteeringError(str(e), "corrupt") from None


def replay(state: SteeringState, seq: int, lines: Iterable[tuple[str, int, bytes]]
           ) -> tuple[SteeringState, int, list[str]]:
    """``state`` (which includes the changes up to ``seq``) with the journalled changes after it.

    ``lines``: (file name, line number, line without its newline) from the journal files, in any
    order; a change may be in two files (a journal and its predecessor), identically. Changes
    ``seq + 1``, ``seq + 2``, ... are applied in order; earlier ones are already in ``state``.
    Returns (the state, the number of its last change, warnings: changes that cannot be reached
    because one before them is missing). SteeringError ``corrupt``, naming file and line: a line
    that is not a change, a number given to two different changes, a change that cannot be applied
    (a rule added twice, the removal of a rule that is not there).
    """
    found: dict[int, tuple[SteeringRule | str, str, bytes]] = {}
    for name, number, line in lines:
        try:
            n, change = parse_change(line)
        except SteeringError as e:
            raise SteeringError(f"{name} line {number}: {e}", "corrupt") from None
        if n <= seq:
            continue
        seen = found.get(n)
        if seen is not None and seen[2] != line:
            raise SteeringError(f"{name} line {number}: change {n} is also {seen[1]}, differently", "corrupt")
        found[n] = (change, f"{name} line {number}", line)
    while seq + 1 in found:
        change, where, _ = found.pop(seq + 1)
        try:
            state = remove_rule(state, change) if isinstance(change, str) else add_rule(state, change)
        except SteeringError as e:
            raise SteeringError(f"{where}: change {seq + 1} cannot be applied: {e}", "corrupt") from None
        seq += 1
    warnings = []
    if found:
        warnings.append(f"changes {min(found)}..{max(found)} are not applied: change {seq + 1}, before them, "
                        f"is missing ({found[min(found)][1]})")
    return state, seq, warnings


# --------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class Uplink:
    """What the planner needs to know about one interface (the helper reads it from the kernel).

    ``coa``/``addr4``: the source address steered connections get (None: no usable
    address of that family: rules of that family are not applied); ``router`` /
    ``router4``: the kernel's preferred default router of the link (None: none);
    ``prefixes`` / ``prefixes4``: the prefixes of all the interface's addresses
    (``2001:db8:b::/64``), for the policy rules' ``from`` and as on-link prefixes
    that are never steered.

    IPv6 next hops follow the source (:func:`mhgui.core.nexthop.next_hop`):
    ``addresses``: every usable IPv6 address, preferred first (default: ``coa``
    alone); ``routers``: the link's default routers, best first (default:
    ``router`` alone); ``adverts``: what routers of this link advertised
    (:class:`mhgui.core.ra.Advert`).
    """

    ifindex: int
    coa: str | None = None
    router: str | None = None
    prefixes: tuple[str, ...] = ()
    addr4: str | None = None
    router4: str | None = None
    prefixes4: tuple[str, ...] = ()
    addresses: tuple[str, ...] = ()
    routers: tuple[str, ...] = ()
    adverts: tuple[Advert, ...] = ()

    def v6_addresses(self) -> tuple[str, ...]:
        out = tuple(a for a in self.addresses if _addr_ok(a, 6))
        return out or ((self.coa,) if self.coa and _addr_ok(self.coa, 6) else ())

    def v6_routers(self) -> tuple[str, ...]:
        out = tuple(r for r in self.routers if _addr_ok(r, 6))
        return out or ((self.router,) if self.router and _addr_ok(self.router, 6) else ())


@dataclass(frozen=True, order=True)
class Route:
    """One route in one of mhgui's tables. ``kind``: ``unicast`` or ``throw``; ``dst``: prefix text.

    ``source``: a source prefix (IPv6 source-specific route, ``ip -6 route add DST from
    SOURCE``; "" for none); ``onlink``: the gateway is a neighbour on ``oif`` without a
    route to it in this table (``RTNH_F_ONLINK``).
    """

    family: int  # 6 or 4
    table: int
    dst: str
    kind: str = "unicast"
    oif: int = 0
    gateway: str = ""
    prefsrc: str = ""
    source: str = ""
    onlink: bool = False


@dataclass(frozen=True, order=True)
class PolicyRule:
    """``ip rule``: ``priority: from SRC lookup TABLE`` (+ ``FIB_RULE_FIND_SADDR`` when ``find_saddr``)."""

    family: int
    priority: int
    table: int
    src: str
    find_saddr: bool = False
    fwmark: int = 0
    fwmask: int = 0


@dataclass(frozen=True)
class KernelPlan:
    """The complete kernel state mhgui wants: every route in its tables and every one of its policy rules.

    ``needs[rule_id]``: the routes and policy rules that realise that rule
    (empty when it is not realised); ``reasons[rule_id]``: "" when the rule is
    fully realised, else why (not) or which part is not; ``refusals[rule_id]``:
    set when no next hop of the rule's interface takes its source (a new rule
    with a refusal is not accepted); ``notes[rule_id]``: what to know about a
    realised rule (its next hop was not confirmed by an advertisement).
    """

    routes: tuple[Route, ...] = ()
    rules: tuple[PolicyRule, ...] = ()
    slots: Mapping[str, int] = field(default_factory=dict)
    needs: Mapping[str, tuple[tuple[Route, ...], tuple[PolicyRule, ...]]] = field(default_factory=dict)
    reasons: Mapping[str, str] = field(default_factory=dict)
    refusals: Mapping[str, str] = field(default_factory=dict)
    notes: Mapping[str, str] = field(default_factory=dict)

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


def _onlink(family: int, gateway: str) -> bool:
    """Whether a route through ``gateway`` carries ``onlink``: IPv6 global gateways. The kernel checks a
    new route's gateway by a lookup in the route's own table, where a covering rule (``::/0``) and the
    ``throw`` of the gateway's on-link prefix make it unreachable ("No route to host"); the gateway is a
    neighbour on the interface (a default router of that link), so ``onlink`` states the truth. The
    kernel does not check link-local gateways; IPv4 lookups fall through ``throw`` routes."""
    return family == 6 and bool(gateway) and not ipaddress.ip_address(gateway).is_link_local


def _v6_choice(rule: SteeringRule, up: Uplink) -> tuple[str | None, NextHop | None, str, bool]:
    """(source address, next hop, problem, refused) for a rule's IPv6 destinations on ``up``: the first
    usable address (in the rule's source, if it has one) whose prefix has a next hop."""
    cands = up.v6_addresses()
    if rule.source is not None:
        cands = tuple(a for a in cands if ipaddress.ip_address(a) in rule.source)
    if not cands:
        where = f" in {rule.source}" if rule.source is not None else ""
        return None, None, f"{rule.interface} has no usable IPv6 address{where}", False
    first: NextHop | None = None
    for a in cands:
        nh = next_hop(a, rule.interface, up.v6_routers(), up.adverts)
        if not nh.refusal:
            return a, nh, "", False
        first = first or nh
    assert first is not None
    return None, None, first.refusal, True


def _prefix_hops(name: str, up: Uplink) -> dict[Network, NextHop]:
    """The next hop of each IPv6 prefix of ``up`` (for connections that already have a source in it)."""
    addrs = [ipaddress.ip_address(a) for a in up.v6_addresses()]
    out: dict[Network, NextHop] = {}
    for text in up.prefixes:
        q = _net(text, 6)
        if q is None or q.prefixlen == 0:
            continue
        probe = next((a for a in addrs if a in q), q.network_address)
        out[q] = next_hop(str(probe), name, up.v6_routers(), up.adverts)
    return out


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

    IPv6 source and next hop go together (draft 6.1.2): a rule's source is the
    interface's first usable address (in the rule's ``source``, if set) whose
    prefix has a next hop (:func:`mhgui.core.nexthop.next_hop`), and its routes
    go through that next hop. When the interface's prefixes have different
    next hops (two routers, each for its own prefix), connections that already
    have a source keep to their prefix's router: the source table holds one
    source-specific default per prefix (``default from PREFIX via ITS-ROUTER``),
    and a policy rule ``RULE_PRIORITY - 1: from PREFIX lookup SOURCE-TABLE``
    per prefix sends lookups that have a source there first (a lookup without a
    source does not match it). Source-specific routes stay out of the
    destination table: beside them, the kernel does not find a plain route for
    a lookup without a source.

    Computed by :class:`mhgui.core.steering_planner.SteeringPlanner`, which the helper keeps to change
    the plan one rule at a time; ValueError when two rules have the same id or destination (a
    persisted state never has either).
    """
    from .steering_planner import SteeringPlanner  # (that module builds on this one)

    rules = sorted(rules, key=lambda r: r.id)
    if slots is None:
        slots, _ = _assign_slots(rules, {}, 1)
    planner = SteeringPlanner(interfaces, slots)
    planner.add_all(rules)
    return planner.plan()


def state_with(rules: Iterable[SteeringRule]) -> SteeringState:
    """A state holding ``rules`` (slots assigned in order); SteeringError as :func:`add_rule`."""
    rules = tuple(rules)
    ids = [r.id for r in rules]
    if len(set(ids)) != len(ids):
        raise SteeringError("two rules have the same id", "conflict")
    dests = [d for r in rules if not r.marked for d in r.destinations]
    if len(set(dests)) != len(dests):
        raise SteeringError("a destination is in two rules", "conflict")
    if len(rules) > MAX_RULES:
        raise SteeringError(f"more than {MAX_RULES} rules", "limit")
    slots, nxt = _assign_slots(rules, {}, 1)
    return SteeringState(rules, slots, nxt)
