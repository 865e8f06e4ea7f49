"""The kernel state of steering rules, kept up to date one rule at a time (pure: rules in, routes out).

:func:`mhgui.core.steering.plan_kernel_state` describes the kernel design; this
module computes it. :class:`SteeringPlanner` holds the plan for a set of rules
on a given node (its interfaces and slots) and changes it when a rule is added
or removed, touching only what that rule changes, so that one change costs the
same at 10 and at 10,000 rules (issue 14; it was a full re-plan, O(n log n) per
rule):

- a rule's destinations: one route each in the slot's destination table;
- ``throw`` routes: the destination inside the covering prefixes of other
  slots (found with a dictionary per prefix length, at most 129 look-ups), and
  what lies inside the destination (the never-steered prefixes, a short list;
  other rules' destinations, a range of a sorted index): as many as there are
  such prefixes, which is what the kernel must be told anyway;
- a slot's source table and policy rules: from the counts of the sources and
  gateways its routes use, recomputed (a few routes) when they change.

The result is the same as planning all the rules afresh, whatever the order of
the changes (a property test checks it against the planner as it was before).
Each changed route and policy rule is recorded until :meth:`SteeringPlanner.take_change`
hands the difference to the kernel adapter.
"""

from __future__ import annotations

import bisect
import ipaddress
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping

from ..i18n import _

from .nexthop import NextHop
from .steering import (
    MARK_MASK,
    MARK_PRIORITY,
    MAX_MARK_SLOT,
    MAX_SLOTS,
    NEVER_STEERED,
    RULE_PRIORITY,
    SOURCE_TABLE_BASE,
    TABLE_BASE,
    KernelPlan,
    Network,
    PolicyRule,
    Route,
    SteeringRule,
    Uplink,
    _addr_ok,
    _net,
    _onlink,
    _prefix_hops,
    _v6_choice,
    mark_of_slot,
    table_of_slot,
)

__all__ = ["Change", "SteeringPlanner"]


@dataclass(frozen=True)
class Change:
    """What the kernel must be told: routes and policy rules that appeared and that went, since the
    last :meth:`SteeringPlanner.take_change`. A route whose key (family, table, destination, source)
    is in both ``routes_added`` and ``routes_removed`` changed (``replace``)."""

    routes_added: frozenset[Route] = frozenset()
    routes_removed: frozenset[Route] = frozenset()
    rules_added: frozenset[PolicyRule] = frozenset()
    rules_removed: frozenset[PolicyRule] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.routes_added or self.routes_removed or self.rules_added or self.rules_removed)


@dataclass(frozen=True)
class _Realised:
    """One rule on this node: the destinations it owns (family, network, source address, gateway,
    the route), why (part of) it is not realised, a refusal, and a note on its next hop."""

    slot: int | None
    kept: tuple[tuple[int, Network, str, str, Route], ...]
    reason: str
    refusal: str = ""
    note: str = ""
    #: a marked rule's use of its slot: (family, source address, gateway) per family it can leave by
    marks: tuple[tuple[int, str, str], ...] = ()


@dataclass
class _Slot:
    """The routes of one (family, slot): how many, and how often each source address and gateway is used."""

    count: int = 0
    sources: dict[str, int] = field(default_factory=dict)
    gateways: dict[str, int] = field(default_factory=dict)
    marked: int = 0  # how many of them are marked rules (no route of their own; a fwmark policy rule)


def _bump(counts: dict[str, int], key: str, by: int) -> None:
    n = counts.get(key, 0) + by
    if n:
        counts[key] = n
    else:
        del counts[key]


def _slot_routes(fam: int, slot: int, up: Uplink, use: _Slot, split: Mapping[Network, NextHop]
                 ) -> tuple[tuple[Route, ...], tuple[PolicyRule, ...]]:
    """The source table and the policy rules of a slot whose interface is ``up`` and that has routes of family
    ``fam`` (``use``: their sources and gateways; ``split``: the next hop of each prefix when they differ)."""
    table, stable = table_of_slot(slot), SOURCE_TABLE_BASE + slot
    src = up.coa if fam == 6 else up.addr4
    if not _addr_ok(src, fam):
        src = min(use.sources)
    prefixes = {_net(p, fam) for p in (up.prefixes if fam == 6 else up.prefixes4)} - {None}
    for a in sorted(set(use.sources) | {src}):  # type: ignore[arg-type]
        host = ipaddress.ip_network(f"{a}/{128 if fam == 6 else 32}")
        if not any(host.subnet_of(p) for p in prefixes):  # type: ignore[arg-type]
            prefixes.add(host)
    if split:  # each prefix through its own router
        srt = [Route(6, stable, "::/0", "unicast", up.ifindex, hop.router or "", "", str(q),
                     _onlink(6, hop.router or ""))
               for q, hop in sorted(split.items()) if not hop.refusal]
    else:
        gw = min(use.gateways) if use.gateways else ""
        srt = [Route(fam, stable, "::/0" if fam == 6 else "0.0.0.0/0", "unicast", up.ifindex, gw,
                     str(ipaddress.ip_address(src)), "", _onlink(fam, gw))]  # type: ignore[arg-type]
    srt += [Route(fam, stable, str(p), "unicast", up.ifindex)
            for p in sorted(prefixes) if p.prefixlen < p.max_prefixlen]  # type: ignore[union-attr, type-var]
    if fam == 6:
        mine = [PolicyRule(6, RULE_PRIORITY, table, str(p), True) for p in sorted(prefixes)]  # type: ignore[type-var]
        # a connection that already has a source in q keeps to q's router, whatever the destination
        mine += [PolicyRule(6, RULE_PRIORITY - 1, stable, str(q), False)
                 for q, hop in sorted(split.items()) if not hop.refusal]
    else:
        mine = [PolicyRule(4, RULE_PRIORITY, table, "0.0.0.0/32", False)]
    mine += [PolicyRule(fam, RULE_PRIORITY + 1, stable, str(p), False) for p in sorted(prefixes)]  # type: ignore[type-var]
    if use.marked:  # packets nftables marked for this slot (mhgui.core.steering_nft) take its source table
        mine.append(PolicyRule(fam, MARK_PRIORITY, stable, "::/0" if fam == 6 else "0.0.0.0/0", False,
                               mark_of_slot(slot), MARK_MASK))
    return tuple(srt), tuple(mine)


def _realise(r: SteeringRule, up: Uplink | None, slot: int | None, never: Mapping[int, set[Network]],
             v6_choice: Callable[[SteeringRule, Uplink], tuple[str | None, NextHop | None, str, bool]]) -> _Realised:
    """What rule ``r`` contributes on its interface ``up`` (None: not there) with ``slot``; ``never``: the
    never-steered prefixes by family; ``v6_choice``: :func:`mhgui.core.steering._v6_choice` (cached)."""
    if up is None:
        return _Realised(None, (), _("{interface} is not usable now (missing, down, or without a care-of "
                                     "address and a default router); the rule waits for it").format(
            interface=r.interface))
    if slot is None or not 1 <= slot <= MAX_SLOTS:
        return _Realised(None, (), "; ".join(_("{destination}: no slot for {interface}").format(
            destination=d, interface=r.interface) for d in r.destinations))
    if r.marked:
        return _realise_marked(r, up, slot, v6_choice)
    missing: list[str] = []
    refusal = note = ""
    owned: list[tuple[int, Network, str, str]] = []
    v6 = [d for d in r.destinations if d.version == 6]
    if v6:
        src, nh, problem, refused = v6_choice(r, up)
        if refused:
            refusal = problem
            missing.append(problem)
        elif src is None or nh is None:
            missing += [f"{d}: {problem}" for d in v6]
        else:
            owned += [(6, d, src, nh.router or "") for d in v6]
            note = nh.note
    for d in (d for d in r.destinations if d.version == 4):
        src4 = up.addr4 if _addr_ok(up.addr4, 4) else None
        if src4 is not None and r.source is not None and ipaddress.ip_address(src4) not in r.source:
            src4 = None
        if src4 is None:
            where = _(" in {source}").format(source=r.source) if r.source is not None else ""
            missing.append(_("{destination}: {interface} has no usable IPv4 address").format(
                destination=d, interface=r.interface) + where)
            continue
        owned.append((4, d, src4, up.router4 if _addr_ok(up.router4, 4) else ""))  # type: ignore[arg-type]
    kept: list[tuple[int, Network, str, str, Route]] = []
    for fam in (6, 4):  # a destination inside (or equal to) an on-link prefix is not steered
        for _f, d, src, gw in sorted((o for o in owned if o[0] == fam), key=lambda o: (o[1].prefixlen, o[1])):
            inside = [n for n in never[fam] if d.subnet_of(n)]  # type: ignore[arg-type]
            if inside:
                missing.append(_("{destination}: inside the on-link prefix {prefix}, not steered").format(
                    destination=d, prefix=inside[0]))
                continue
            rt = Route(fam, table_of_slot(slot), str(d), "unicast", up.ifindex, gw, src, "", _onlink(fam, gw))
            kept.append((fam, d, src, gw, rt))
    return _Realised(slot, tuple(kept), "; ".join(missing), refusal, note)


def _realise_marked(r: SteeringRule, up: Uplink, slot: int,
                    v6_choice: Callable[[SteeringRule, Uplink], tuple[str | None, NextHop | None, str, bool]]
                    ) -> _Realised:
    """A marked rule: no routes of its own, a use of its slot's source table in each family it can
    leave by (the rule's destinations' families, both when it has none)."""
    if slot > MAX_MARK_SLOT:
        return _Realised(None, (), _("{interface} has slot {slot}; rules with a protocol, port or application "
                                     "need one of the first {max} slots").format(
            interface=r.interface, slot=slot, max=MAX_MARK_SLOT))
    marks: list[tuple[int, str, str]] = []
    missing: list[str] = []
    note = ""
    if 6 in r.families():
        src, nh, problem, _refused = v6_choice(r, up)
        if src is None or nh is None:
            missing.append(f"IPv6: {problem}")
        else:
            marks.append((6, src, nh.router or ""))
            note = nh.note
    if 4 in r.families():
        if _addr_ok(up.addr4, 4):
            marks.append((4, up.addr4, up.router4 if _addr_ok(up.router4, 4) else ""))  # type: ignore[arg-type]
        else:
            missing.append("IPv4: " + _("{interface} has no usable IPv4 address").format(interface=r.interface))
    if not marks:
        return _Realised(None, (), "; ".join(missing))
    # a rule for both families that can use one of them is realised; the other waits silently
    reason = "; ".join(missing) if len(r.families()) == 1 or r.destinations else ""
    return _Realised(slot, (), reason, "", note, tuple(marks))


class _Nesting:
    """The realised destinations of one family, by prefix: which of them strictly contain a prefix (one
    look-up per prefix length in use) and which lie strictly inside one (a range of a sorted index)."""

    def __init__(self) -> None:
        self.slot_of: dict[Network, int] = {}
        self._cover: dict[tuple[int, int], int] = {}  # (network as int, length) -> slot
        self._sorted: list[tuple[int, int]] = []  # (network as int, length), sorted
        self._lengths: dict[int, int] = {}  # prefix length -> destinations
        self._length_list: list[int] = []  # the lengths in use, sorted

    def add(self, d: Network, slot: int) -> None:
        key = (int(d.network_address), d.prefixlen)
        self.slot_of[d] = slot
        self._cover[key] = slot
        bisect.insort(self._sorted, key)
        n = self._lengths.get(d.prefixlen, 0)
        if not n:
            bisect.insort(self._length_list, d.prefixlen)
        self._lengths[d.prefixlen] = n + 1

    def remove(self, d: Network) -> None:
        key = (int(d.network_address), d.prefixlen)
        del self.slot_of[d]
        del self._cover[key]
        del self._sorted[bisect.bisect_left(self._sorted, key)]
        n = self._lengths[d.prefixlen] - 1
        if n:
            self._lengths[d.prefixlen] = n
        else:
            del self._lengths[d.prefixlen]
            self._length_list.remove(d.prefixlen)

    def covering(self, n: Network) -> set[int]:
        """The slots of the destinations that strictly contain ``n``."""
        bits, addr = n.max_prefixlen, int(n.network_address)
        out = set()
        for plen in self._length_list:
            if plen >= n.prefixlen:
                break
            hit = self._cover.get((addr >> (bits - plen) << (bits - plen), plen))
            if hit is not None:
                out.add(hit)
        return out

    def inside(self, d: Network) -> list[tuple[Network, int]]:
        """The destinations strictly inside ``d``, with their slots."""
        out = []
        lo, hi = int(d.network_address), int(d.broadcast_address)
        index, cls = self._sorted, type(d)
        i = bisect.bisect_left(index, (lo, -1))
        while i < len(index) and index[i][0] <= hi:
            addr, plen = index[i]
            i += 1
            if plen > d.prefixlen:
                x = cls((addr, plen))
                out.append((x, self.slot_of[x]))
        return out


class SteeringPlanner:
    """The kernel plan of a set of rules on one node, changed one rule at a time.

    ``interfaces``: ``{name: Uplink}`` (or ``(ifindex, coa, router)``, as
    :func:`mhgui.core.steering.plan_kernel_state` takes them), fixed for the
    planner's life: when the node changes, make a new planner. ``slots``: the
    slot of each interface (:meth:`set_slots` changes them).

    :meth:`add` and :meth:`remove` raise ValueError for a rule id that is (not)
    there or a destination that another rule already has (the persisted state
    never has either: :func:`mhgui.core.steering.add_rule` refuses them).
    """

    def __init__(self, interfaces: Mapping[str, Uplink | tuple], slots: Mapping[str, int]) -> None:
        ups: dict[str, Uplink] = {}
        for name, u in interfaces.items():
            if isinstance(u, tuple):
                ifindex, coa, router = u
                prefixes = (str(ipaddress.ip_interface(f"{coa}/64").network),) if _addr_ok(coa, 6) else ()
                u = Uplink(ifindex=ifindex, coa=coa, router=router, prefixes=prefixes)
            ups[name] = u
        self.uplinks: dict[str, Uplink] = ups
        self._slots: dict[str, int] = dict(slots)
        self._slot_iface = {s: n for n, s in self._slots.items()}
        # never steered: the fixed prefixes and every on-link prefix (in this order: the first that holds a
        # destination is named in its reason)
        self._never: dict[int, set[Network]] = {6: set(), 4: set()}
        for n in NEVER_STEERED:
            self._never[n.version].add(n)
        for u in ups.values():
            for fam, texts in ((6, u.prefixes), (4, u.prefixes4)):
                for text in texts:
                    n = _net(text, fam)
                    if n is not None and n.prefixlen > 0:
                        self._never[fam].add(n)
        self._rules: dict[str, SteeringRule] = {}
        self._real: dict[str, _Realised] = {}
        self._by_iface: dict[str, set[str]] = {}
        # family -> destination -> (slot, rule id, source, gateway, route) of the realised destinations
        self._owned: dict[int, dict[Network, tuple[int, str, str, str, Route]]] = {6: {}, 4: {}}
        self._nest = {6: _Nesting(), 4: _Nesting()}
        self._slot_use: dict[tuple[int, int], _Slot] = {}
        self._slot_part: dict[tuple[int, int], tuple[tuple[Route, ...], tuple[PolicyRule, ...]]] = {}
        self._slot_sig: dict[tuple[int, int], tuple[frozenset[str], str]] = {}
        self._routes: dict[Route, int] = {}
        self._policy: dict[PolicyRule, int] = {}
        self._was_routes: dict[Route, bool] = {}  # touched since take_change: present before?
        self._was_policy: dict[PolicyRule, bool] = {}
        self._choice: dict[tuple[str, Network | None], tuple[str | None, NextHop | None, str, bool]] = {}
        self._hops: dict[str, dict[Network, NextHop]] = {}
        self._plan: KernelPlan | None = None

    # ----------------------------------------------------------------- queries

    def __len__(self) -> int:
        return len(self._rules)

    def __contains__(self, rule_id: object) -> bool:
        return rule_id in self._rules

    @property
    def slots(self) -> Mapping[str, int]:
        return self._slots

    def reason(self, rule_id: str) -> str:
        return self._real[rule_id].reason

    def refusal(self, rule_id: str) -> str:
        return self._real[rule_id].refusal

    def note(self, rule_id: str) -> str:
        """The rule's note on its next hop, when it has routes ("" else)."""
        real = self._real[rule_id]
        return real.note if real.kept or real.marks else ""

    def needs(self, rule_id: str) -> tuple[tuple[Route, ...], tuple[PolicyRule, ...]]:
        """The routes and policy rules that realise the rule (``((), ())`` when it is not realised)."""
        real = self._real.get(rule_id)
        if real is None or not (real.kept or real.marks):
            return (), ()
        rts: set[Route] = set()
        prs: set[PolicyRule] = set()
        for fam, _src, _gw in real.marks:
            srt, mine = self._slot_part.get((fam, real.slot), ((), ()))  # type: ignore[arg-type]
            rts.update(srt)
            prs.update(mine)
        for fam, _d, _src, _gw, rt in real.kept:
            rts.add(rt)
            srt, mine = self._slot_part.get((fam, rt.table - TABLE_BASE), ((), ()))
            rts.update(srt)
            prs.update(mine)
        return tuple(sorted(rts)), tuple(sorted(prs))

    def preview(self, rule: SteeringRule) -> tuple[str, str]:
        """(reason, refusal) that ``rule`` would have here, without adding it."""
        real = self._realise(rule)
        return real.reason, real.refusal

    def plan(self) -> KernelPlan:
        """The whole plan (O(n log n); kept until the next change)."""
        if self._plan is None:
            used = {s for (_f, s), u in self._slot_use.items() if u.count}
            reals = self._real.items()
            self._plan = KernelPlan(
                routes=tuple(sorted(self._routes)),
                rules=tuple(sorted(self._policy)),
                slots={n: s for n, s in self._slots.items() if s in used},
                needs={rid: self.needs(rid) for rid in self._rules},
                reasons={rid: real.reason for rid, real in reals},
                refusals={rid: real.refusal for rid, real in reals if real.refusal},
                notes={rid: real.note for rid, real in reals if real.note and (real.kept or real.marks)},
            )
        return self._plan

    def take_change(self) -> Change:
        """The routes and policy rules that appeared and went since the last call (or since the start)."""
        ra = frozenset(r for r, was in self._was_routes.items() if not was and r in self._routes)
        rr = frozenset(r for r, was in self._was_routes.items() if was and r not in self._routes)
        pa = frozenset(p for p, was in self._was_policy.items() if not was and p in self._policy)
        pr = frozenset(p for p, was in self._was_policy.items() if was and p not in self._policy)
        self._was_routes.clear()
        self._was_policy.clear()
        return Change(ra, rr, pa, pr)

    # ----------------------------------------------------------------- changes

    def add(self, rule: SteeringRule) -> None:
        """Add ``rule`` to the plan (ValueError: its id or one of its destinations is taken)."""
        if rule.id in self._rules:
            raise ValueError(f"rule {rule.id} is planned already")
        real = self._realise(rule)
        for fam, d, *_rest in real.kept:
            if d in self._owned[fam]:
                raise ValueError(f"{d} is planned already")
        self._rules[rule.id] = rule
        self._real[rule.id] = real
        self._by_iface.setdefault(rule.interface, set()).add(rule.id)
        self._plan = None
        for fam, d, src, gw, rt in real.kept:
            self._own(fam, d, real.slot, rule.id, src, gw, rt)  # type: ignore[arg-type]
        for fam, src, gw in real.marks:
            self._use_mark(fam, real.slot, src, gw, 1)  # type: ignore[arg-type]
        for fam in {k[0] for k in real.kept} | {k[0] for k in real.marks}:
            self._refresh_slot(fam, real.slot)  # type: ignore[arg-type]

    def marked_slot(self, rule_id: str) -> tuple[int, str, frozenset[int]] | None:
        """(slot, interface name, families) of a realised marked rule: what nftables needs; None otherwise."""
        real = self._real.get(rule_id)
        if real is None or not real.marks or real.slot is None:
            return None
        return real.slot, self._rules[rule_id].interface, frozenset(f for f, _s, _g in real.marks)

    def add_all(self, rules: Iterable[SteeringRule]) -> None:
        for r in rules:
            self.add(r)

    def remove(self, rule_id: str) -> SteeringRule:
        """Take the rule out of the plan; returns it (ValueError: no such rule)."""
        rule = self._rules.pop(rule_id, None)
        if rule is None:
            raise ValueError(f"rule {rule_id} is not planned")
        real = self._real.pop(rule_id)
        ids = self._by_iface[rule.interface]
        ids.discard(rule_id)
        if not ids:
            del self._by_iface[rule.interface]
        self._plan = None
        for fam, d, *_rest in real.kept:
            self._disown(fam, d)
        for fam, src, gw in real.marks:
            self._use_mark(fam, real.slot, src, gw, -1)  # type: ignore[arg-type]
        for fam in {k[0] for k in real.kept} | {k[0] for k in real.marks}:
            self._refresh_slot(fam, real.slot)  # type: ignore[arg-type]
        return rule

    def set_slots(self, slots: Mapping[str, int]) -> None:
        """Use ``slots`` from now on: the rules of an interface whose slot changed are planned again."""
        slots = dict(slots)
        changed = {n for n in set(self._slots) | set(slots) if self._slots.get(n) != slots.get(n)}
        if not changed:
            return
        again = [self._rules[rid] for n in sorted(changed) for rid in sorted(self._by_iface.get(n, ()))]
        for r in again:
            self.remove(r.id)
        self._slots = slots
        self._slot_iface = {s: n for n, s in slots.items()}
        self._plan = None
        for r in again:
            self.add(r)

    # ----------------------------------------------------------------- one rule

    def _v6_choice(self, rule: SteeringRule, up: Uplink) -> tuple[str | None, NextHop | None, str, bool]:
        key = (rule.interface, rule.source)  # (the choice depends on nothing else of the rule)
        got = self._choice.get(key)
        if got is None:
            got = self._choice[key] = _v6_choice(rule, up)
        return got

    def _realise(self, r: SteeringRule) -> _Realised:
        return _realise(r, self.uplinks.get(r.interface), self._slots.get(r.interface), self._never,
                        self._v6_choice)

    # ----------------------------------------------------------------- one destination

    def _inside(self, fam: int, d: Network) -> list[tuple[Network, int | None]]:
        """What lies strictly inside ``d``: realised destinations (with their slots) and never-steered prefixes
        (slot None)."""
        out: list[tuple[Network, int | None]] = [(n, None) for n in self._never[fam]
                                                 if n.prefixlen > d.prefixlen and n.subnet_of(d)]  # type: ignore[arg-type]
        return out + self._nest[fam].inside(d)  # type: ignore[operator]

    def _own(self, fam: int, d: Network, slot: int, rid: str, src: str, gw: str, rt: Route) -> None:
        nest = self._nest[fam]
        # d inside covering destinations of other slots: thrown out of their tables
        for s in nest.covering(d) - {slot}:
            self._put_route(Route(fam, table_of_slot(s), str(d), "throw"), 1)
        # what lies inside d (another slot's destination, a never-steered prefix) is thrown out of d's table,
        # unless another destination of d's slot covers it already
        for x, sx in self._inside(fam, d):
            if sx != slot and slot not in nest.covering(x):
                self._put_route(Route(fam, table_of_slot(slot), str(x), "throw"), 1)
        self._owned[fam][d] = (slot, rid, src, gw, rt)
        nest.add(d, slot)
        self._put_route(rt, 1)
        use = self._slot_use.setdefault((fam, slot), _Slot())
        use.count += 1
        _bump(use.sources, src, 1)
        _bump(use.gateways, gw, 1)

    def _use_mark(self, fam: int, slot: int, src: str, gw: str, by: int) -> None:
        use = self._slot_use.setdefault((fam, slot), _Slot())
        use.count += by
        use.marked += by
        _bump(use.sources, src, by)
        _bump(use.gateways, gw, by)
        if not use.count:
            del self._slot_use[(fam, slot)]

    def _disown(self, fam: int, d: Network) -> None:
        nest = self._nest[fam]
        slot, _rid, src, gw, rt = self._owned[fam].pop(d)
        nest.remove(d)
        self._put_route(rt, -1)
        for s in nest.covering(d) - {slot}:
            self._put_route(Route(fam, table_of_slot(s), str(d), "throw"), -1)
        for x, sx in self._inside(fam, d):
            if sx != slot and slot not in nest.covering(x):
                self._put_route(Route(fam, table_of_slot(slot), str(x), "throw"), -1)
        use = self._slot_use[(fam, slot)]
        use.count -= 1
        _bump(use.sources, src, -1)
        _bump(use.gateways, gw, -1)
        if not use.count:
            del self._slot_use[(fam, slot)]

    # ----------------------------------------------------------------- one slot

    def _split_hops(self, name: str) -> dict[Network, NextHop]:
        """The prefixes' next hops when they differ (else {}: one next hop serves the whole link)."""
        if name not in self._hops:
            hops = _prefix_hops(name, self.uplinks[name])
            distinct = {h.router for h in hops.values() if not h.refusal}
            self._hops[name] = hops if len(distinct) > 1 else {}
        return self._hops[name]

    def _refresh_slot(self, fam: int, slot: int) -> None:  # noqa: C901
        use = self._slot_use.get((fam, slot))
        # the slot's part depends on the set of sources and the lowest gateway only
        sig = None if use is None else (frozenset(use.sources), min(use.gateways) if use.gateways else "",
                                        bool(use.marked))
        if sig is not None and self._slot_sig.get((fam, slot)) == sig:
            return
        if sig is None:
            self._slot_sig.pop((fam, slot), None)
        else:
            self._slot_sig[(fam, slot)] = sig
        old = self._slot_part.pop((fam, slot), ((), ()))
        if use is None:
            new: tuple[tuple[Route, ...], tuple[PolicyRule, ...]] = ((), ())
        else:
            name = self._slot_iface[slot]
            new = _slot_routes(fam, slot, self.uplinks[name], use, self._split_hops(name) if fam == 6 else {})
        if new != old:
            for rt in set(old[0]) - set(new[0]):
                self._put_route(rt, -1)
            for rt in set(new[0]) - set(old[0]):
                self._put_route(rt, 1)
            for p in set(old[1]) - set(new[1]):
                self._put_policy(p, -1)
            for p in set(new[1]) - set(old[1]):
                self._put_policy(p, 1)
        if use is not None:
            self._slot_part[(fam, slot)] = new

    # ----------------------------------------------------------------- bookkeeping

    def _put_route(self, rt: Route, by: int) -> None:
        n = self._routes.get(rt, 0)
        if rt not in self._was_routes:
            self._was_routes[rt] = n > 0
        n += by
        if n:
            self._routes[rt] = n
        else:
            del self._routes[rt]

    def _put_policy(self, p: PolicyRule, by: int) -> None:
        n = self._policy.get(p, 0)
        if p not in self._was_policy:
            self._was_policy[p] = n > 0
        n += by
        if n:
            self._policy[p] = n
        else:
            del self._policy[p]
