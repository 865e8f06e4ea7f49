"""Steering rules in the kernel, as root: the helper's side of :mod:`mhgui.core.steering`.

:class:`SteeringEngine` keeps the rules in ``STATE_DIR/steering.json``
(written atomically, the previous version in ``steering.json.bak``), reads
the interfaces from the kernel (:func:`discover_uplinks`), asks the pure
planner for the kernel state, and makes the kernel match it with pyroute2
(rtnetlink): routes in mhgui's tables and mhgui's policy rules only
(:func:`mhgui.core.steering.is_our_table`), so applying is idempotent and the
empty plan removes everything mhgui ever added and nothing else.

Order of changes: new and changed routes first (a table is complete before a
rule points to it), then new policy rules, then stale policy rules, then stale
routes. A failure is collected and the rest still applied; the call then
raises :class:`SteeringFailure` (``KernelFailed``) and the caller puts the
previous state back.

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
from mhgui.core.steering import KernelPlan, PolicyRule, Route, SteeringRule, SteeringState, Uplink

__all__ = [
    "STATE_FILE",
    "SteeringEngine",
    "SteeringFailure",
    "discover_uplinks",
    "read_kernel",
]

log = logging.getLogger("mhgui.helper.steering")

STATE_FILE = "steering.json"
MAX_STATE_BYTES = 64 << 20

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


def discover_uplinks(ipr: IPRoute) -> dict[str, Uplink]:
    """Every interface with a global address, as the planner needs it.

    The source address for steered traffic (``coa``/``addr4``): a global
    (scope universe; ULA included) address that is not tentative, DAD-failed,
    deprecated or temporary, on an interface that is up with carrier; among
    several, one without the home-address flag, then the lowest. The router:
    the main table's default route through that interface with the lowest
    metric (None: on-link). ``prefixes``: every global address's prefix
    (temporary and deprecated ones included: the kernel may still pick them).
    """
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
    for fam in (6, 4):
        for r in ipr.get_routes(family=_FAMILY[fam], table=RT_TABLE_MAIN):
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
    out: dict[str, Uplink] = {}
    for idx, name in names.items():
        p6 = tuple(sorted(prefixes.get((idx, 6), ())))
        p4 = tuple(sorted(prefixes.get((idx, 4), ())))
        if not p6 and not p4:
            continue
        up = running.get(idx, False)
        coa = min(addrs[(idx, 6)])[1] if up and addrs.get((idx, 6)) else None
        a4 = min(addrs[(idx, 4)])[1] if up and addrs.get((idx, 4)) else None
        out[name] = Uplink(
            ifindex=idx, coa=coa, router=routers.get((idx, 6), (0, None))[1], prefixes=p6,
            addr4=a4, router4=routers.get((idx, 4), (0, None))[1], prefixes4=p4,
        )
    return out


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
    return Route(fam, table, net, "unicast", msg.get("RTA_OIF") or 0,
                 str(ipaddress.ip_address(gw)) if gw else "", str(ipaddress.ip_address(src)) if src else "")


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
    if r.kind == "throw":
        args["type"] = "throw"
        return args
    args["oif"] = r.oif
    if r.gateway:
        args["gateway"] = r.gateway
    if r.prefsrc:
        args["prefsrc"] = r.prefsrc
    return args


def _rule_args(p: PolicyRule) -> dict:
    net = ipaddress.ip_network(p.src)
    args: dict = {"family": _FAMILY[p.family], "priority": p.priority, "table": p.table, "action": "to_tbl",
                  "src": str(net.network_address), "src_len": net.prefixlen}
    if p.find_saddr:
        args["flags"] = core.FIB_RULE_FIND_SADDR
    return args


def _route_key(r: Route) -> tuple:
    return (r.family, r.table, r.dst)


# --------------------------------------------------------------------------- the engine


@dataclass(frozen=True)
class Listed:
    rule: SteeringRule
    in_kernel: bool
    status: str  # "" when in the kernel, else why not
    via: str = ""  # the interface the rule leaves through now (its own, or a failover substitute)


class SteeringEngine:
    """Persisted steering rules and their kernel state (see the module docstring)."""

    def __init__(self, state_dir: str, *, netns: str | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.state_dir = state_dir
        self.path = os.path.join(state_dir, STATE_FILE)
        self.netns = netns
        self.clock = clock
        self._state: SteeringState | None = None
        # the plan last applied in full and the interfaces it was made for: a change made right
        # after it is applied as the difference between the two plans, without reading back
        self._applied: tuple[KernelPlan, dict[str, Uplink]] | None = None
        #: {interface: substitute} set by the app's failover policy (not persisted: a helper that
        #: starts afresh puts every rule on its own interface)
        self.fallback: dict[str, str] = {}

    # ----------------------------------------------------------------- netlink

    def _ipr(self) -> IPRoute:
        # strict_check: the kernel filters route dumps by table (a dump of main does not
        # carry thousands of steering routes)
        if self.netns:
            return IPRoute(netns=self.netns, strict_check=True)
        return IPRoute(strict_check=True)

    def uplinks(self) -> dict[str, Uplink]:
        with self._ipr() as ipr:
            return discover_uplinks(ipr)

    # ----------------------------------------------------------------- state

    def _read_state_file(self, path: str) -> SteeringState | None:
        try:
            with open(path, "rb") as f:
                data = f.read(MAX_STATE_BYTES + 1)
        except FileNotFoundError:
            return None
        except OSError as e:
            raise SteeringFailure("StateCorrupt", f"cannot read {path}: {e.strerror or e}") from None
        if len(data) > MAX_STATE_BYTES:
            raise SteeringFailure("StateCorrupt", f"{path} is larger than {MAX_STATE_BYTES} bytes")
        try:
            return core.parse_state(data.decode("utf-8"))
        except UnicodeDecodeError:
            raise SteeringFailure("StateCorrupt", f"{path} is not UTF-8") from None
        except core.SteeringError as e:
            raise SteeringFailure("StateCorrupt", f"{path}: {e}") from None

    def load(self) -> SteeringState:
        """The persisted state (cached). A damaged file falls back to its backup; with neither
        readable: SteeringFailure ``StateCorrupt`` (nothing is changed until the file is fixed)."""
        if self._state is not None:
            return self._state
        try:
            state = self._read_state_file(self.path)
        except SteeringFailure as first:
            try:
                state = self._read_state_file(self.path + ".bak")
            except SteeringFailure:
                state = None
            if state is None:
                raise first from None
            log.warning("%s; using the backup %s.bak", first.message, self.path)
        self._state = state if state is not None else SteeringState()
        return self._state

    def _save(self, state: SteeringState) -> None:
        from mhgui.helper.service import atomic_write  # (service imports this module)

        try:
            os.makedirs(self.state_dir, mode=0o755, exist_ok=True)
            try:
                with open(self.path, "rb") as f:
                    old = f.read(MAX_STATE_BYTES + 1)
            except FileNotFoundError:
                old = None
            if old is not None:
                atomic_write(self.path + ".bak", old)
            atomic_write(self.path, core.render_state(state).encode("utf-8"))
        except OSError as e:
            raise SteeringFailure("WriteFailed", f"cannot write {self.path}: {e.strerror or e}") from None
        self._state = state

    # ----------------------------------------------------------------- the kernel

    def plan(self, state: SteeringState | None = None, uplinks: Mapping[str, Uplink] | None = None) -> KernelPlan:
        """The kernel state for ``state`` (default: the persisted one) with the fallback applied."""
        state = core.with_fallback(state if state is not None else self.load(), self.fallback)
        return core.plan_kernel_state(state.rules, uplinks if uplinks is not None else self.uplinks(), state.slots)

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

    def _apply_difference(self, old: KernelPlan, new: KernelPlan) -> bool:
        """Change the kernel from ``old`` to ``new`` without reading it back; False (after a partial
        change) when the kernel turned out not to be ``old``."""
        old_routes = {_route_key(r): r for r in old.routes}
        new_keys = {_route_key(r) for r in new.routes}
        try:
            with self._ipr() as ipr:
                for r in new.routes:
                    prev = old_routes.get(_route_key(r))
                    if prev != r:
                        ipr.route("replace" if prev is not None else "add", **_route_args(r))
                for p in set(new.rules) - set(old.rules):
                    ipr.rule("add", **_rule_args(p))
                for p in set(old.rules) - set(new.rules):
                    ipr.rule("del", **_rule_args(p))
                for key, r in old_routes.items():
                    if key not in new_keys:
                        ipr.route("del", **{k: v for k, v in _route_args(r).items() if k != "proto"})
        except NetlinkError as e:
            log.info("the kernel was not as last left (%s): reading it back", e)
            return False
        return True

    def apply(self, plan: KernelPlan, uplinks: Mapping[str, Uplink] | None = None) -> None:
        """Make mhgui's tables and policy rules exactly ``plan``'s (SteeringFailure ``KernelFailed``).

        Reads mhgui's part of the kernel back and changes only what differs.
        ``uplinks``: the interfaces ``plan`` was made for (remembered for quicker changes).
        """
        self._applied = None
        errors: list[str] = []
        with self._ipr() as ipr:
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
        if uplinks is not None:
            self._applied = (plan, dict(uplinks))

    def reconcile(self, *, full: bool = True) -> KernelPlan:
        """Make the kernel match the persisted rules and the interfaces as they are now.

        ``full=False``: when the interfaces are as they were at the last apply, trust that the
        kernel still holds that plan (a change elsewhere, e.g. a route in main, needs nothing).
        """
        uplinks = self.uplinks()
        plan = self.plan(uplinks=uplinks)
        if not full and self._applied is not None and self._applied == (plan, uplinks):
            return plan
        self.apply(plan, uplinks)
        return plan

    def clear_kernel(self) -> None:
        """Remove every route and policy rule mhgui added (the rules stay persisted)."""
        self.apply(KernelPlan())

    def kernel_matches(self, rules: Iterable[SteeringRule] | None = None) -> dict[str, bool]:
        """For each rule: whether everything that realises it is in the kernel now."""
        return {x.rule.id: x.in_kernel for x in self.listing(rules)}

    def listing(self, rules: Iterable[SteeringRule] | None = None) -> list[Listed]:
        state = self.load()
        rules = list(rules) if rules is not None else list(state.rules)
        with self._ipr() as ipr:
            plan = self.plan(state, discover_uplinks(ipr))
            have_routes, have_rules = read_kernel(ipr)
        out = []
        for r in rules:
            routes, prules = plan.needs.get(r.id, ((), ()))
            reason = plan.reasons.get(r.id, "not a persisted rule")
            present = bool(routes) and all(x in have_routes for x in routes) and all(p in have_rules for p in prules)
            if not reason and not present:
                reason = "not in the kernel (yet): the helper re-applies the rules when interfaces change"
            via = self.fallback.get(r.interface, r.interface)
            out.append(Listed(r, present and not reason, reason, via))
        return out

    # ----------------------------------------------------------------- changes

    def _change(self, new: SteeringState) -> None:
        old = self.load()
        uplinks = self.uplinks()
        plan = self.plan(new, uplinks)
        self._save(new)
        applied, self._applied = self._applied, None
        try:
            if applied is None or applied[1] != uplinks or not self._apply_difference(applied[0], plan):
                self.apply(plan)
            self._applied = (plan, uplinks)
        except SteeringFailure:
            try:
                self._save(old)
                self.apply(self.plan(old, uplinks), uplinks)
            except SteeringFailure as e:
                log.error("cannot put the previous steering state back: %s", e.message)
            raise

    def add(self, request: Mapping[str, object]) -> SteeringRule:
        """Validate, persist and apply a new rule (``destination``/``destinations``, ``interface``)."""
        state = self.load()
        rule_id = secrets.token_hex(6)
        while state.rule(rule_id) is not None:
            rule_id = secrets.token_hex(6)
        try:
            rule = core.rule_from_request(request, rule_id=rule_id, now=self.clock())
            new = core.add_rule(state, rule)
        except core.SteeringError as e:
            raise _failure(e) from None
        self._change(new)
        log.info("steering rule %s: %s via %s", rule.id, ", ".join(map(str, rule.destinations)), rule.interface)
        return rule

    def remove(self, rule_id: str) -> None:
        try:
            core.check_rule_id(rule_id)
            new = core.remove_rule(self.load(), rule_id)
        except core.SteeringError as e:
            raise _failure(e) from None
        self._change(new)
        log.info("steering rule %s removed", rule_id)
