"""The steering planner as it was before issue 14: a test oracle, never used by the app.

Kept verbatim (the composition of :func:`plan_kernel_state`, as the router-advertisement work of
issue 13.2 left it): it re-plans every rule from scratch, O(n log n) per change. The tests check that
:class:`mhgui.core.steering_planner.SteeringPlanner`, which changes only what one rule changes, ends
in the same plan after any sequence of additions and removals, and that the indexed
:func:`mhgui.core.steering.add_rule` and ``remove_rule`` give the states these linear ones gave. The per-rule helpers (``_v6_choice``,
``_prefix_hops``, next hops) are shared with the app: they decide one rule, not the composition.
"""

from __future__ import annotations

import ipaddress
from typing import Iterable, Mapping

from mhgui.core.nexthop import NextHop
from mhgui.core.steering import (
    MAX_RULES,
    MAX_SLOTS,
    NEVER_STEERED,
    RULE_PRIORITY,
    SOURCE_TABLE_BASE,
    TABLE_BASE,
    KernelPlan,
    Network,
    PolicyRule,
    Route,
    SteeringError,
    SteeringRule,
    SteeringState,
    Uplink,
    _addr_ok,
    _net,
    _onlink,
    _prefix_hops,
    _v6_choice,
    table_of_slot,
)


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
    refusals: dict[str, str] = {}
    notes: dict[str, str] = {}
    # (family) -> {network: (slot, rule id, source address, gateway)} of realised destinations
    owned: dict[int, dict[Network, tuple[int, str, str, str]]] = {6: {}, 4: {}}
    for r in rules:
        up = ups.get(r.interface)
        slot = slots.get(r.interface)
        if up is None:
            reasons[r.id] = (f"{r.interface} is not usable now (missing, down, or without a care-of address "
                             "and a default router); the rule waits for it")
            continue
        if slot is None or not 1 <= slot <= MAX_SLOTS:
            reasons[r.id] = "; ".join(f"{d}: no slot for {r.interface}" for d in r.destinations)
            continue
        missing: list[str] = []
        v6 = [d for d in r.destinations if d.version == 6]
        if v6:
            src, nh, problem, refused = _v6_choice(r, up)
            if refused:
                refusals[r.id] = problem
                missing.append(problem)
            elif src is None or nh is None:
                missing += [f"{d}: {problem}" for d in v6]
            else:
                for d in v6:
                    owned[6][d] = (slot, r.id, src, nh.router or "")
                if nh.note:
                    notes[r.id] = nh.note
        for d in (d for d in r.destinations if d.version == 4):
            src4 = up.addr4 if _addr_ok(up.addr4, 4) else None
            if src4 is not None and r.source is not None and ipaddress.ip_address(src4) not in r.source:
                src4 = None
            if src4 is None:
                where = f" in {r.source}" if r.source is not None else ""
                missing.append(f"{d}: {r.interface} has no usable IPv4 address{where}")
                continue
            owned[4][d] = (slot, r.id, src4, up.router4 if _addr_ok(up.router4, 4) else "")  # type: ignore[assignment]
        reasons[r.id] = "; ".join(missing)

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

    slot_iface = {s: n for n, s in slots.items()}
    hops_cache: dict[str, dict[Network, NextHop]] = {}

    def split_hops(name: str) -> dict[Network, NextHop]:
        """The prefixes' next hops when they differ (else {}: one next hop serves the whole link)."""
        if name not in hops_cache:
            hops = _prefix_hops(name, ups[name])
            distinct = {h.router for h in hops.values() if not h.refusal}
            hops_cache[name] = hops if len(distinct) > 1 else {}
        return hops_cache[name]

    routes: set[Route] = set()
    per_rule_routes: dict[str, list[Route]] = {}
    used: dict[int, set[int]] = {6: set(), 4: set()}  # family -> slots with routes
    sources: dict[tuple[int, int], set[str]] = {}  # (family, slot) -> source addresses of its routes
    for fam in (6, 4):
        own = owned[fam]
        # a destination inside (or equal to) an on-link prefix is not steered
        for d in sorted(own, key=lambda n: (n.prefixlen, n)):
            inside = [n for n in never[fam] if d.subnet_of(n)]  # type: ignore[arg-type]
            if inside:
                rid = own.pop(d)[1]
                note = f"{d}: inside the on-link prefix {inside[0]}, not steered"
                reasons[rid] = f"{reasons[rid]}; {note}" if reasons[rid] else note
        lengths = sorted({n.prefixlen for n in own})
        for d, (slot, rid, src, gw) in own.items():
            name = slot_iface[slot]
            up = ups[name]
            table = table_of_slot(slot)
            rt = Route(fam, table, str(d), "unicast", up.ifindex, gw, src, "", _onlink(fam, gw))
            routes.add(rt)
            per_rule_routes.setdefault(rid, []).append(rt)
            used[fam].add(slot)
            sources.setdefault((fam, slot), set()).add(src)
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

        for d, (slot, *_rest) in own.items():
            for s in covering_slots(d) - {slot}:
                routes.add(Route(fam, table_of_slot(s), str(d), "throw"))
        for n in never[fam]:
            for s in covering_slots(n):
                routes.add(Route(fam, table_of_slot(s), str(n), "throw"))

    policy: set[PolicyRule] = set()
    per_slot: dict[tuple[int, int], tuple[list[Route], list[PolicyRule]]] = {}
    for fam in (6, 4):
        for slot in sorted(used[fam]):
            name = slot_iface[slot]
            up = ups[name]
            table, stable = table_of_slot(slot), SOURCE_TABLE_BASE + slot
            src = up.coa if fam == 6 else up.addr4
            if not _addr_ok(src, fam):
                src = min(sources[(fam, slot)])
            prefixes = {_net(p, fam) for p in (up.prefixes if fam == 6 else up.prefixes4)} - {None}
            for a in sorted(sources[(fam, slot)] | {src}):  # type: ignore[operator]
                host = ipaddress.ip_network(f"{a}/{128 if fam == 6 else 32}")
                if not any(host.subnet_of(p) for p in prefixes):  # type: ignore[arg-type]
                    prefixes.add(host)
            split = split_hops(name) if fam == 6 else {}
            if split:  # each prefix through its own router
                srt = [Route(6, stable, "::/0", "unicast", up.ifindex, hop.router or "", "", str(q),
                             _onlink(6, hop.router or ""))
                       for q, hop in sorted(split.items()) if not hop.refusal]
            else:
                gws = {gw for (_s, _r, _a, gw) in (v for v in owned[fam].values() if v[0] == slot)}
                gw = min(gws) if gws else ""
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
        refusals=refusals,
        notes={k: v for k, v in notes.items() if k in per_rule_routes},
    )


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
    if any(r.id == rule.id for r in state.rules):
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


def remove_rule(state: SteeringState, rule_id: str) -> SteeringState:
    if not any(r.id == rule_id for r in state.rules):
        raise SteeringError(f"there is no rule {rule_id}", "not-found")
    rules = tuple(r for r in state.rules if r.id != rule_id)
    slots, nxt = _assign_slots(rules, state.slots, state.next_slot)
    return SteeringState(rules, slots, nxt)
