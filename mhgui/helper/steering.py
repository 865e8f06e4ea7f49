"""Steering rules in the kernel, as root: the helper's side of :mod:`mhgui.core.steering`.

:class:`SteeringEngine` keeps the rules (:class:`mhgui.helper.steering_store.StateStore`:
``STATE_DIR/steering.json`` and a journal of the changes since, one line per
change), reads the interfaces from the kernel (:func:`discover_uplinks`), plans
the kernel state (:class:`mhgui.core.steering_planner.SteeringPlanner`) and
makes the kernel match it with pyroute2 (rtnetlink): routes in mhgui's tables
and mhgui's policy rules only (:func:`mhgui.core.steering.is_our_table`), so
applying is idempotent and the empty plan removes everything mhgui ever added
and nothing else.

Adding or removing one rule costs the same at 10 and at 10,000 rules (issue
14): the interfaces are read (a few netlink dumps, none of them of mhgui's
tables), the rule is planned alone, one journal line is appended, and only the
routes and policy rules that change are sent to the kernel. The planner is kept
between calls as long as the interfaces and the failover fallback stay as they
were; otherwise (start-up, a change of links, addresses, routes or
advertisements: :meth:`SteeringEngine.reconcile`) everything is planned again
and the kernel is read back.

Order of changes: new and changed routes first (a table is complete before a
rule points to it), then new policy rules, then stale policy rules, then stale
routes. A failure is collected and the rest still applied; the call then
raises :class:`SteeringFailure` (``KernelFailed``) and the previous state is
put back. When a one-rule change finds the kernel other than last left (a
route already there, or gone), the kernel is read back and made whole.

``netns``: the name of a network namespace (``ip netns``) to work in
instead of the helper's own (tests, benchmarks).

The engine is synchronous and not thread-safe: the helper runs it in an
executor, one call at a time. The netlink sockets are opened per call in the
calling thread (test-lab.md: a pyroute2 socket used from another thread than
the one that made it silently gets nothing).
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import secrets
import socket
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from mhgui.core import steering as core
from mhgui.core.ra import Advert
from mhgui.core.steering import (
    KernelPlan,
    PolicyRule,
    Route,
    SteeringRule,
    SteeringState,
    Uplink,
)
from mhgui.core.steering_planner import Change, SteeringPlanner
from mhgui.helper.steering_apps import MarkedSteering, NftFailed, marked_rules
from mhgui.helper.steering_store import (
    COMPACT_AFTER,
    MAX_STATE_BYTES,
    STATE_FILE,
    StateStore,
)

__all__ = [
    "MAX_STATE_BYTES",
    "STATE_FILE",
    "SteeringEngine",
    "SteeringFailure",
    "apply_change",
    "apply_difference",
    "apply_full",
    "discover_uplinks",
    "link_names",
    "read_kernel",
    "read_node",
]

log = logging.getLogger("mhgui.helper.steering")

_FAMILY = {6: socket.AF_INET6, 4: socket.AF_INET}
_VERSION = {socket.AF_INET6: 6, socket.AF_INET: 4}
RTN_UNICAST = 1
RTN_THROW = 9
RTPROT_STATIC = 4
RT_TABLE_MAIN = 254
IFF_UP = 0x1
IFF_LOWER_UP = 0x10000
IFA_F_TEMPORARY = 0x01
IFA_F_NODAD = 0x02
IFA_F_DADFAILED = 0x08
IFA_F_HOMEADDRESS = 0x10
IFA_F_DEPRECATED = 0x20
IFA_F_TENTATIVE = 0x40
RT_SCOPE_UNIVERSE = 0
RTNH_F_ONLINK = 0x4


class SteeringFailure(Exception):
    """``kind``: ``InvalidArgs``, ``Conflict``, ``NoSuchRule``, ``LimitReached``, ``StateCorrupt``,
    ``WriteFailed`` or ``KernelFailed``; ``message``: one line for the user."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


_KIND = {"invalid": "InvalidArgs", "conflict": "Conflict", "not-found": "NoSuchRule",
         "limit": "LimitReached", "corrupt": "StateCorrupt"}


def _failure(e: core.SteeringError) -> SteeringFailure:
    return SteeringFailure(_KIND.get(e.kind, "InvalidArgs"), str(e))


# --------------------------------------------------------------------------- reading the kernel


def _flags(msg) -> int:
    f = msg.get("IFA_FLAGS")
    return int(f) if f is not None else int(msg["flags"])


def link_names(ipr: IPRoute) -> dict[int, str]:
    """Every interface of the node: ifindex -> name."""
    out: dict[int, str] = {}
    for link in ipr.get_links():
        name = link.get("ifname")
        if isinstance(name, str):
            out[link["index"]] = name
    return out


def _main_routes(ipr: IPRoute, family: int):
    """The main table's routes of ``family``. The kernel filters the dump by table (strict checking,
    ``RTA_TABLE`` in the request); pyroute2's ``get_routes(table=...)`` filters in Python, after
    decoding every route of every table: thousands of steering routes. The caller checks the table
    again, for kernels that ignore the filter."""
    return ipr.route("dump", family=family, table=RT_TABLE_MAIN, dump_filter=None)


def discover_uplinks(ipr: IPRoute, adverts: Iterable[Advert] = ()) -> dict[str, Uplink]:
    """Every interface with a global address, as the planner needs it.

    The source address for steered traffic (``coa``/``addr4``): a global
    (scope universe; ULA included) address that is not tentative, DAD-failed,
    deprecated or temporary, on an interface that is up with carrier; among
    several, one without the home-address flag, then the lowest
    (``addresses``: all of them in that order). The router: the main table's
    default route through that interface with the lowest metric (None:
    on-link); ``routers``: every default router of the interface, best first.
    ``prefixes``: every global address's prefix (temporary and deprecated ones
    included: the kernel may still pick them). ``adverts``: what the RA
    listener heard (:class:`mhgui.core.ra.Advert`), each given to its link.
    Reads links, addresses and the main table only: the cost does not grow
    with the number of steering routes.
    """
    return read_node(ipr, adverts)[1]


def read_node(ipr: IPRoute, adverts: Iterable[Advert] = ()) -> tuple[dict[int, str], dict[str, Uplink]]:
    """(:func:`link_names`, :func:`discover_uplinks`) from one dump of the links."""
    names: dict[int, str] = {}
    running: dict[int, bool] = {}
    for link in ipr.get_links():
        idx = link["index"]
        name = link.get("ifname")
        if isinstance(name, str):
            names[idx] = name
            running[idx] = bool(link["flags"] & IFF_UP) and bool(link["flags"] & IFF_LOWER_UP)
    addrs: dict[tuple[int, int], list[tuple[tuple, str]]] = {}
    prefixes: dict[tuple[int, int], set[str]] = {}
    for a in ipr.get_addr():
        fam = _VERSION.get(a["family"])
        idx = a["index"]
        addr = a.get("IFA_LOCAL") or a.get("IFA_ADDRESS") if fam == 4 else a.get("IFA_ADDRESS")
        if fam is None or idx not in names or not addr or a["scope"] != RT_SCOPE_UNIVERSE:
            continue
        try:
            iface = ipaddress.ip_interface(f"{addr}/{a['prefixlen']}")
        except ValueError:
            continue
        prefixes.setdefault((idx, fam), set()).add(str(iface.network))
        flags = _flags(a)
        if flags & (IFA_F_TENTATIVE | IFA_F_DADFAILED | IFA_F_DEPRECATED | IFA_F_TEMPORARY):
            continue
        if fam == 6 and iface.ip.is_link_local:
            continue
        addrs.setdefault((idx, fam), []).append(((bool(flags & IFA_F_HOMEADDRESS), int(iface.ip)), str(iface.ip)))
    routers: dict[tuple[int, int], tuple[int, str]] = {}
    all_routers: dict[int, set[tuple[int, str]]] = {}  # IPv6: ifindex -> {(metric, gateway)}
    for fam in (6, 4):
        for r in _main_routes(ipr, _FAMILY[fam]):
            if r["dst_len"] != 0 or r["type"] != RTN_UNICAST or r.get("RTA_TABLE", r["table"]) != RT_TABLE_MAIN:
                continue
            metric = r.get("RTA_PRIORITY") or 0
            hops = [(r.get("RTA_OIF"), r.get("RTA_GATEWAY"))]
            for nh in r.get("RTA_MULTIPATH") or ():
                hops.append((nh["oif"], nh.get("RTA_GATEWAY")))
            for oif, gw in hops:
                if oif is None or not gw:
                    continue
                key = (oif, fam)
                if key not in routers or (metric, gw) < routers[key]:
                    routers[key] = (metric, gw)
                if fam == 6:
                    all_routers.setdefault(oif, set()).add((metric, gw))
    by_link: dict[int, list[Advert]] = {}
    for ad in adverts:
        by_link.setdefault(ad.ifindex, []).append(ad)
    out: dict[str, Uplink] = {}
    for idx, name in names.items():
        p6 = tuple(sorted(prefixes.get((idx, 6), ())))
        p4 = tuple(sorted(prefixes.get((idx, 4), ())))
        if not p6 and not p4:
            continue
        up = running.get(idx, False)
        usable6 = tuple(a for _, a in sorted(addrs.get((idx, 6), ()))) if up else ()
        a4 = min(addrs[(idx, 4)])[1] if up and addrs.get((idx, 4)) else None
        gws: list[str] = []
        for _, gw in sorted(all_routers.get(idx, ())):
            if gw not in gws:
                gws.append(gw)
        out[name] = Uplink(
            ifindex=idx, coa=usable6[0] if usable6 else None, router=routers.get((idx, 6), (0, None))[1],
            prefixes=p6, addr4=a4, router4=routers.get((idx, 4), (0, None))[1], prefixes4=p4,
            addresses=usable6, routers=tuple(gws), adverts=tuple(sorted(by_link.get(idx, ()))),
        )
    return names, out


def _route_of(msg) -> Route | None:
    fam = _VERSION.get(msg["family"])
    table = msg.get("RTA_TABLE", msg["table"])
    if fam is None or not core.is_our_table(table):
        return None
    dst = msg.get("RTA_DST")
    plen = msg["dst_len"]
    if not dst:
        dst = "::" if fam == 6 else "0.0.0.0"
    net = str(ipaddress.ip_network(f"{dst}/{plen}", strict=False))
    if msg["type"] == RTN_THROW:
        return Route(fam, table, net, "throw")
    if msg["type"] != RTN_UNICAST:
        return Route(fam, table, net, f"type{msg['type']}")
    gw = msg.get("RTA_GATEWAY") or ""
    src = msg.get("RTA_PREFSRC") or ""
    from_ = ""
    if msg["src_len"]:
        from_ = str(ipaddress.ip_network(f"{msg.get('RTA_SRC') or '::'}/{msg['src_len']}", strict=False))
    return Route(fam, table, net, "unicast", msg.get("RTA_OIF") or 0,
                 str(ipaddress.ip_address(gw)) if gw else "", str(ipaddress.ip_address(src)) if src else "",
                 from_, bool(msg["flags"] & RTNH_F_ONLINK))


def _rule_of(msg) -> tuple[PolicyRule, dict] | None:
    """(our rule, the attributes that identify it for deletion) or None when it is not in our tables."""
    fam = _VERSION.get(msg["family"])
    table = msg.get("FRA_TABLE", msg["table"])
    if fam is None or not core.is_our_table(table):
        return None
    src = msg.get("FRA_SRC")
    plen = msg["src_len"]
    if src is None:
        src = "::" if fam == 6 else "0.0.0.0"
    net = str(ipaddress.ip_network(f"{src}/{plen}", strict=False))
    prio = msg.get("FRA_PRIORITY", 0)
    ident = {"family": msg["family"], "priority": prio, "table": table}
    if plen:
        ident.update(src=msg.get("FRA_SRC"), src_len=plen)
    for key, attr in (("dst", "FRA_DST"), ("fwmark", "FRA_FWMARK"), ("fwmask", "FRA_FWMASK"),
                      ("iifname", "FRA_IIFNAME"), ("oifname", "FRA_OIFNAME")):
        v = msg.get(attr)
        if v is not None:
            ident[key] = v
            if key == "dst":
                ident["dst_len"] = msg["dst_len"]
    mark, mask = msg.get("FRA_FWMARK") or 0, msg.get("FRA_FWMASK") or 0
    if mark and mask == core.MARK_MASK and not plen and msg.get("FRA_DST") is None \
            and not msg.get("FRA_IIFNAME") and not msg.get("FRA_OIFNAME"):
        return PolicyRule(fam, prio, table, net, False, mark, mask), ident
    if msg.get("FRA_DST") is not None or msg.get("FRA_FWMARK") or msg.get("FRA_IIFNAME") or msg.get("FRA_OIFNAME"):
        # something else put a rule into one of our tables: never equal to a planned one, so it is removed
        return PolicyRule(fam, prio, table, net + "+other", False), ident
    return PolicyRule(fam, prio, table, net, bool(msg["flags"] & core.FIB_RULE_FIND_SADDR)), ident


def read_kernel(ipr: IPRoute) -> tuple[dict[Route, Route], dict[PolicyRule, dict]]:
    """The routes in mhgui's tables and the policy rules that point to them."""
    routes: dict[Route, Route] = {}
    for fam in (6, 4):
        for msg in ipr.route("dump", family=_FAMILY[fam]):
            r = _route_of(msg)
            if r is not None:
                routes[r] = r
    rules: dict[PolicyRule, dict] = {}
    for fam in (6, 4):
        for msg in ipr.get_rules(family=_FAMILY[fam]):
            got = _rule_of(msg)
            if got is not None:
                rules[got[0]] = got[1]
    return routes, rules


def _route_args(r: Route) -> dict:
    net = ipaddress.ip_network(r.dst)
    args: dict = {"family": _FAMILY[r.family], "table": r.table, "dst": str(net.network_address),
                  "dst_len": net.prefixlen, "proto": RTPROT_STATIC}
    if r.source:
        src = ipaddress.ip_network(r.source)
        args.update(src=str(src.network_address), src_len=src.prefixlen)
    if r.kind == "throw":
        args["type"] = "throw"
        return args
    args["oif"] = r.oif
    if r.gateway:
        args["gateway"] = r.gateway
    if r.prefsrc:
        args["prefsrc"] = r.prefsrc
    if r.onlink:
        args["flags"] = RTNH_F_ONLINK
    return args


def _rule_args(p: PolicyRule) -> dict:
    net = ipaddress.ip_network(p.src)
    args: dict = {"family": _FAMILY[p.family], "priority": p.priority, "table": p.table, "action": "to_tbl"}
    if net.prefixlen:
        args.update(src=str(net.network_address), src_len=net.prefixlen)
    if p.fwmark:
        args.update(fwmark=p.fwmark, fwmask=p.fwmask)
    if p.find_saddr:
        args["flags"] = core.FIB_RULE_FIND_SADDR
    return args


def _route_key(r: Route) -> tuple:
    return (r.family, r.table, r.dst, r.source)


# --------------------------------------------------------------------------- changing the kernel


def apply_difference(ipr: IPRoute, old: KernelPlan, new: KernelPlan) -> bool:
    """Change the kernel from ``old`` to ``new`` without reading it back; False (after a partial
    change) when the kernel turned out not to be ``old``."""
    old_routes, new_routes = set(old.routes), set(new.routes)
    return apply_change(ipr, Change(frozenset(new_routes - old_routes), frozenset(old_routes - new_routes),
                                frozenset(set(new.rules) - set(old.rules)),
                                frozenset(set(old.rules) - set(new.rules))))


def apply_change(ipr: IPRoute, change: Change) -> bool:
    """Send ``change`` to the kernel as it is; False (after a partial change) when the kernel turned
    out not to be as last left."""
    removed_keys = {_route_key(r) for r in change.routes_removed}
    added_keys = {_route_key(r) for r in change.routes_added}
    try:
        for r in sorted(change.routes_added):
            ipr.route("replace" if _route_key(r) in removed_keys else "add", **_route_args(r))
        for p in sorted(change.rules_added):
            ipr.rule("add", **_rule_args(p))
        for p in sorted(change.rules_removed):
            ipr.rule("del", **_rule_args(p))
        for r in sorted(change.routes_removed):
            if _route_key(r) not in added_keys:
                ipr.route("del", **{k: v for k, v in _route_args(r).items() if k != "proto"})
    except NetlinkError as e:
        log.info("the kernel was not as last left (%s): reading it back", e)
        return False
    return True


def apply_full(ipr: IPRoute, plan: KernelPlan) -> None:
    """Read mhgui's part of the kernel back and change what differs from ``plan``. A failure is collected
    and the rest still applied; then SteeringFailure ``KernelFailed`` naming the first three."""
    errors: list[str] = []
    have_routes, have_rules = read_kernel(ipr)
    want_routes = set(plan.routes)
    have_by_key = {_route_key(r): r for r in have_routes}
    want_keys = {_route_key(r) for r in want_routes}

    def do(what: str, fn: Callable[[], object]) -> None:
        try:
            fn()
        except NetlinkError as e:
            errors.append(f"{what}: {os.strerror(e.code) if e.code > 0 else e}")

    for r in sorted(want_routes - set(have_routes)):
        verb = "replace" if _route_key(r) in have_by_key else "add"
        do(f"{verb} route {r.dst} table {r.table}", lambda r=r, v=verb: ipr.route(v, **_route_args(r)))
    for p in sorted(set(plan.rules) - set(have_rules)):
        do(f"add rule from {p.src} table {p.table}", lambda p=p: ipr.rule("add", **_rule_args(p)))
    for p, ident in sorted(have_rules.items()):
        if p not in plan.rules:
            do(f"delete rule from {p.src} table {p.table}", lambda ident=ident: ipr.rule("del", **ident))
    for r in sorted(have_routes):
        if _route_key(r) not in want_keys:
            do(f"delete route {r.dst} table {r.table}",
               lambda r=r: ipr.route("del", **{k: v for k, v in _route_args(r).items() if k != "proto"}))
    if errors:
        more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
        raise SteeringFailure("KernelFailed", "; ".join(errors[:3]) + more)


# --------------------------------------------------------------------------- the engine


def _describe(rule: SteeringRule) -> str:
    """A rule's selectors in one line (for the log)."""
    parts = [", ".join(map(str, rule.destinations)) or "any destination"]
    if rule.protocol:
        parts.append(rule.protocol)
    if rule.ports:
        parts.append("ports " + core.format_ports(rule.ports))
    if rule.application:
        parts.append(rule.application)
    return " ".join(parts)


@dataclass(frozen=True)
class Listed:
    rule: SteeringRule
    in_kernel: bool
    status: str  # when in the kernel: "" or a note on its next hop; else why not
    via: str = ""  # the interface the rule leaves through now (its own, or a failover substitute)


class SteeringEngine:
    """Persisted steering rules and their kernel state (see the module docstring).

    ``compact_after``: the journal is folded into the state file after this many changes (or as many
    as the state file has rules, whichever is more; :mod:`mhgui.helper.steering_store`).
    """

    def __init__(self, state_dir: str, *, netns: str | None = None,
                 clock: Callable[[], float] = time.time,
                 adverts: Callable[[], Iterable[Advert]] | None = None,
                 compact_after: int = COMPACT_AFTER) -> None:
        self.state_dir = state_dir
        #: what routers advertised, now (:meth:`mhgui.helper.ra_listener.RAListener.adverts`); called from
        #: the executor thread, so it must only read an immutable snapshot. None: nothing heard.
        self.adverts = adverts
        self.store = StateStore(state_dir, compact_after)
        self.path = self.store.path
        self.netns = netns
        self.clock = clock
        self._state: SteeringState | None = None
        # the plan the kernel holds as far as the engine knows (None: read it back before trusting it),
        # made for its interfaces (planner.uplinks) and for this fallback
        self._planner: SteeringPlanner | None = None
        self._planned_fallback: dict[str, str] = {}
        #: {interface: substitute} set by the app's failover policy (not persisted: a helper that
        #: starts afresh puts every rule on its own interface)
        self.fallback: dict[str, str] = {}
        #: nftables for the marked rules (protocol, ports, application), and their ids in order
        self.marks = MarkedSteering(netns)
        self._marked: dict[str, None] = {}

    # ----------------------------------------------------------------- netlink

    def _ipr(self) -> IPRoute:
        # strict_check: the kernel filters route dumps by table (a dump of main does not
        # carry thousands of steering routes)
        if self.netns:
            return IPRoute(netns=self.netns, strict_check=True)
        return IPRoute(strict_check=True)

    def _heard(self) -> tuple[Advert, ...]:
        if self.adverts is None:
            return ()
        try:
            return tuple(self.adverts())
        except Exception:  # the listener's trouble must not stop steering
            log.exception("cannot read the router advertisements heard")
            return ()

    def uplinks(self) -> dict[str, Uplink]:
        with self._ipr() as ipr:
            return discover_uplinks(ipr, self._heard())

    # ----------------------------------------------------------------- state

    def load(self) -> SteeringState:
        """The persisted state (cached). A damaged file falls back to its backup; with neither
        readable: SteeringFailure ``StateCorrupt`` (nothing is changed until the file is fixed)."""
        if self._state is None:
            try:
                self._state = self.store.load()
            except core.SteeringError as e:
                raise SteeringFailure("StateCorrupt", str(e)) from None
            self._marked = {r.id: None for r in self._state.rules if r.marked}
        return self._state

    def _record(self, new: SteeringState, **change: object) -> None:
        """Persist one change (``add=RULE`` or ``remove=ID``) that leads to ``new``."""
        try:
            self.store.record(new, **change)  # type: ignore[arg-type]
        except OSError as e:
            raise SteeringFailure("WriteFailed", f"cannot write {self.store.journal}: {e.strerror or e}") from None
        self._state = new
        added = change.get("add")
        if isinstance(added, SteeringRule) and added.marked:
            self._marked[added.id] = None
        elif isinstance(change.get("remove"), str):
            self._marked.pop(change["remove"], None)  # type: ignore[arg-type]

    def _sync_marks(self, planner: SteeringPlanner) -> None:
        """Make table ``inet mhgui`` hold the realised marked rules (nothing to do without any)."""
        state = self.load()
        rules = [core.fallback_rule(r, self.fallback) for r in (state.rule(i) for i in self._marked) if r]
        try:
            self.marks.set_rules(marked_rules(rules, planner))
        except NftFailed as e:
            raise SteeringFailure("KernelFailed", f"nft: {e}") from None

    @property
    def has_marked_rules(self) -> bool:
        """Whether a persisted rule has a protocol, port or application selector (known once loaded)."""
        return bool(self._marked)

    def follow_apps(self) -> bool:
        """Add the scopes started since the last call to the application rules (see
        :meth:`mhgui.helper.steering_apps.MarkedSteering.follow`); True when something changed."""
        if not self._marked:
            return False
        try:
            return self.marks.follow()
        except NftFailed as e:
            raise SteeringFailure("KernelFailed", f"nft: {e}") from None

    # ----------------------------------------------------------------- the plan

    def _current(self, uplinks: Mapping[str, Uplink]) -> SteeringPlanner | None:
        """The kept planner, when it was made for these interfaces and the present fallback."""
        p = self._planner
        if p is not None and p.uplinks == uplinks and self._planned_fallback == self.fallback:
            return p
        return None

    def _effective_slots(self, state: SteeringState) -> Mapping[str, int]:
        return core.with_fallback(state, self.fallback).slots if self.fallback else state.slots

    def _planner_for(self, state: SteeringState, uplinks: Mapping[str, Uplink]) -> SteeringPlanner:
        """A new planner holding ``state`` with the fallback applied (O(n))."""
        eff = core.with_fallback(state, self.fallback)
        planner = SteeringPlanner(uplinks, eff.slots)
        planner.add_all(eff.rules)
        planner.take_change()  # (a new planner is applied whole)
        return planner

    def plan(self, state: SteeringState | None = None, uplinks: Mapping[str, Uplink] | None = None) -> KernelPlan:
        """The kernel state for ``state`` (default: the persisted one) with the fallback applied."""
        uplinks = uplinks if uplinks is not None else self.uplinks()
        if state is None:
            kept = self._current(uplinks)
            if kept is not None:
                return kept.plan()
            state = self.load()
        return self._planner_for(state, uplinks).plan()

    # ----------------------------------------------------------------- the kernel

    def set_fallback(self, fallback: Mapping[str, str]) -> KernelPlan:
        """Steer the rules of each key through its value for now (validated names), and apply."""
        clean: dict[str, str] = {}
        try:
            for k, v in fallback.items():
                core.check_interface_name(k)
                core.check_interface_name(v)
                if k != v:
                    clean[k] = v
        except core.SteeringError as e:
            raise _failure(e) from None
        if len(clean) > core.MAX_SLOTS:
            raise SteeringFailure("InvalidArgs", f"at most {core.MAX_SLOTS} interfaces may be failed over")
        if clean == self.fallback:
            return self.plan()
        old, self.fallback = self.fallback, clean
        try:
            return self.reconcile(full=False)
        except SteeringFailure:
            self.fallback = old
            with contextlib.suppress(SteeringFailure):
                self.reconcile()
            raise

    def apply(self, plan: KernelPlan, uplinks: Mapping[str, Uplink] | None = None) -> None:
        """Make mhgui's tables and policy rules exactly ``plan``'s (SteeringFailure ``KernelFailed``).

        Reads mhgui's part of the kernel back and changes only what differs. ``uplinks``: unused
        (kept for callers); the engine plans afresh at its next change.
        """
        self._planner = None
        with self._ipr() as ipr:
            apply_full(ipr, plan)

    def _commit(self, ipr: IPRoute, planner: SteeringPlanner, in_kernel: bool) -> None:
        """Send the planner's change to the kernel (``in_kernel``: the kernel holds the planner's previous
        plan; else, or when it turns out not to, the whole plan is applied after reading the kernel back)."""
        change = planner.take_change()
        self._planner = None
        if not in_kernel or not apply_change(ipr, change):
            apply_full(ipr, planner.plan())
        self._sync_marks(planner)
        self._planner, self._planned_fallback = planner, dict(self.fallback)

    def _put_back(self, ipr: IPRoute, old: SteeringState, uplinks: Mapping[str, Uplink]) -> None:
        """After a failed change: persist ``old`` again and make the kernel match it (errors logged)."""
        try:
            self.store.rewrite(old)
            self._state = old
        except OSError as e:
            log.error("cannot put the previous steering state back in %s: %s", self.path, e.strerror or e)
        try:
            planner = self._planner_for(self.load(), uplinks)
            apply_full(ipr, planner.plan())
            self.marks.forget()
            self._sync_marks(planner)
            self._planner, self._planned_fallback = planner, dict(self.fallback)
        except SteeringFailure as e:
            log.error("cannot put the previous steering state back: %s", e.message)

    def reconcile(self, *, full: bool = True) -> KernelPlan:
        """Make the kernel match the persisted rules and the interfaces as they are now (plans everything).

        ``full=False``: when the interfaces and the fallback are as they were at the last change, trust that
        the kernel still holds that plan (a change elsewhere, e.g. a route in main, needs nothing); when
        they changed, send the difference without reading the kernel back.
        """
        state = self.load()
        with self._ipr() as ipr:
            uplinks = discover_uplinks(ipr, self._heard())
            kept = self._current(uplinks)
            if not full and kept is not None:
                return kept.plan()
            old = self._planner
            planner = self._planner_for(state, uplinks)
            self._planner = None
            if full or old is None or not apply_difference(ipr, old.plan(), planner.plan()):
                apply_full(ipr, planner.plan())
            if full:
                self.marks.forget()
            self._sync_marks(planner)
            self._planner, self._planned_fallback = planner, dict(self.fallback)
        return planner.plan()

    def clear_kernel(self) -> None:
        """Remove every route, policy rule and nftables rule mhgui added (the rules stay persisted)."""
        self.apply(KernelPlan())
        try:
            self.marks.set_rules([])
        except NftFailed as e:
            raise SteeringFailure("KernelFailed", f"nft: {e}") from None

    def kernel_matches(self, rules: Iterable[SteeringRule] | None = None) -> dict[str, bool]:
        """For each rule: whether everything that realises it is in the kernel now."""
        return {x.rule.id: x.in_kernel for x in self.listing(rules)}

    def listing(self, rules: Iterable[SteeringRule] | None = None) -> list[Listed]:
        state = self.load()
        rules = list(rules) if rules is not None else list(state.rules)
        with self._ipr() as ipr:
            uplinks = discover_uplinks(ipr, self._heard())
            have_routes, have_rules = read_kernel(ipr)
        planner = self._current(uplinks) or self._planner_for(state, uplinks)
        out = []
        for r in rules:
            known = r.id in planner and state.rule(r.id) is not None
            routes, prules = planner.needs(r.id) if known else ((), ())
            reason = planner.reason(r.id) if known else "not a persisted rule"
            present = bool(routes) and all(x in have_routes for x in routes) and all(p in have_rules for p in prules)
            if not reason and not present:
                reason = "not in the kernel (yet): the helper re-applies the rules when interfaces change"
            via = self.fallback.get(r.interface, r.interface)
            if known and r.marked and present and not reason:
                reason = self._marks_status(r)
                if not reason and r.application:
                    n = len(self.marks.scopes(r.id))
                    out.append(Listed(r, True, f"matches {n} running cgroup(s); follows new ones", via))
                    continue
            in_kernel = present and not reason
            # a rule in the kernel may still carry a note (its next hop is the link's only router,
            # not one that advertised the source's prefix)
            out.append(Listed(r, in_kernel, planner.note(r.id) if in_kernel else reason, via))
        return out

    def _marks_status(self, r: SteeringRule) -> str:
        """"" when a realised marked rule is in nft, else why not."""
        if r.application and self.marks.tree.problem:
            return self.marks.tree.problem
        if r.application and not self.marks.scopes(r.id):
            what = r.application.partition(":")[2]
            return f"no running cgroup of {what} yet: it is added when one starts"
        if not self.marks.ok:
            return "not in nftables (yet): the helper applies it again when interfaces change"
        return ""

    # ----------------------------------------------------------------- changes

    def add(self, request: Mapping[str, object]) -> SteeringRule:
        """Validate, persist and apply a new rule (``destination``/``destinations``, ``interface``,
        optionally ``source``).

        Refused (SteeringFailure ``InvalidArgs``, nothing changes): what
        :func:`mhgui.core.steering.check_request` refuses against the node's
        interfaces now (a rule that could never match), and a rule whose source
        no router of its interface takes (:attr:`mhgui.core.steering.KernelPlan.refusals`).
        ``Conflict``/``LimitReached``: :func:`mhgui.core.steering.add_rule`;
        ``WriteFailed``: nothing changed; ``KernelFailed``: the previous state is put back.
        """
        state = self.load()
        rule_id = secrets.token_hex(6)
        while state.rule(rule_id) is not None:
            rule_id = secrets.token_hex(6)
        with self._ipr() as ipr:
            names, uplinks = read_node(ipr, self._heard())
            try:
                rule = core.check_request(request, rule_id=rule_id, now=self.clock(), names=names.values(),
                                          uplinks=uplinks)
                new = core.add_rule(state, rule)
            except core.SteeringError as e:
                raise _failure(e) from None
            planner = self._current(uplinks)
            in_kernel = planner is not None
            if planner is None:
                planner = self._planner_for(state, uplinks)
            before = dict(planner.slots)
            planner.set_slots(self._effective_slots(new))
            _reason, refusal = planner.preview(core.fallback_rule(rule, self.fallback))
            if refusal:
                planner.set_slots(before)
                raise SteeringFailure("InvalidArgs", f"not added: {refusal}")
            try:
                self._record(new, add=rule)
            except SteeringFailure:
                planner.set_slots(before)
                raise
            planner.add(core.fallback_rule(rule, self.fallback))
            try:
                self._commit(ipr, planner, in_kernel)
            except SteeringFailure:
                self._put_back(ipr, state, uplinks)
                raise
        log.info("steering rule %s: %s via %s", rule.id, _describe(rule), rule.interface)
        return rule

    def remove(self, rule_id: str) -> None:
        """Remove the rule ``rule_id`` (SteeringFailure ``InvalidArgs``, ``NoSuchRule``, ``WriteFailed``,
        ``KernelFailed`` as :meth:`add`)."""
        state = self.load()
        try:
            core.check_rule_id(rule_id)
            new = core.remove_rule(state, rule_id)
        except core.SteeringError as e:
            raise _failure(e) from None
        with self._ipr() as ipr:
            uplinks = discover_uplinks(ipr, self._heard())
            planner = self._current(uplinks)
            in_kernel = planner is not None
            if planner is None:
                planner = self._planner_for(state, uplinks)
            self._record(new, remove=rule_id)
            planner.remove(rule_id)
            planner.set_slots(self._effective_slots(new))
            try:
                self._commit(ipr, planner, in_kernel)
            except SteeringFailure:
                self._put_back(ipr, state, uplinks)
                raise
        log.info("steering rule %s removed", rule_id)
