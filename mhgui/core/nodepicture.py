"""The node as a picture (issue 15.2): pure data, no Qt and no I/O.

In the spirit of Figure 1 of draft-montavont-mobileip-multihoming-pb-statement-04 (section 4: home
addresses, care-of addresses, links, interfaces), extended along the path a packet takes to the home
agent. Six columns, left to right::

    home addresses (+ their flow bindings) -> bindings (BID) -> care-of addresses -> interfaces
        -> routers -> home agents

:func:`build_picture` turns the live state (:class:`~mhgui.core.model.NodeState` and its
:class:`~mhgui.core.analysis.Analysis`), the daemon's bindings (:class:`~mhgui.core.bindings.Binding`,
RFC 6275 section 11.1, RFC 5648 BIDs), the engine's uplinks (``GetUplinks``: probes), its raw bindings
(``GetBindings``: per-HoA ``backup`` lists, ``error``) and its flow bindings (``GetFlowBindings``, RFC 6089:
a flow bound to one or several BIDs) into a :class:`Picture`: columns of :class:`Node` (ids, labels,
states, tooltip lines) and :class:`Edge` (with states). Every input may be missing or malformed: what
cannot be read is left out, never raised. Ordering is deterministic: interfaces by ifindex, addresses
by (ifindex, family, value), bindings by (HoA, BID-PRI, BID, CoA), flows by (HoA, FID-PRI, FID).

:func:`layout` places a picture in a rectangle (pixels, floats): box and label rectangles that never
overlap, edge end points on the boxes' sides, column headers; it reports the size it needs when the
rectangle is too small (the view then scrolls). Text widths come from a ``measure`` callable.

States (:data:`STATES`): ``registered`` (acknowledged, carrying), ``waiting`` (a Binding Update awaits
its acknowledgement), ``refused`` (the home agent or the daemon refused), ``down`` (no carrier, gone,
unreachable), ``backup`` (works but does not carry the home address' default traffic: a further BID, an
uplink listed as backup, a reachable idle uplink), ``idle`` (exists, nothing to say).
"""

from __future__ import annotations

import ipaddress
import itertools
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

from ..i18n import N_, _
from .analysis import NON_ACCESS_KINDS, Analysis
from .bindings import Binding, BindingState

__all__ = ["COLUMNS", "STATES", "Edge", "Layout", "Node", "Picture", "Rect", "bezier_points", "build_picture",
           "curve", "layout", "legend_word", "state_word", "uplink_words"]

STATES = ("registered", "waiting", "refused", "down", "backup", "idle")
_STATE_WORDS = {"registered": N_("registered"), "waiting": N_("waiting for the home agent"),
                "refused": N_("refused"), "down": N_("down"), "backup": N_("backup"), "idle": N_("idle")}
#: column headers, left to right
COLUMNS = (N_("Home addresses"), N_("Bindings"), N_("Care-of addresses"), N_("Interfaces"), N_("Routers"),
           N_("Home agent"))
COL_HOA, COL_BINDING, COL_COA, COL_IF, COL_ROUTER, COL_HA = range(6)
MAX_FLOWS_PER_HOA = 4
MAX_PER_COLUMN = 40
MAX_LABEL = 80
_RANK = {"registered": 0, "waiting": 1, "backup": 2, "refused": 3, "down": 4, "idle": 5}
_BSTATE = {BindingState.REGISTERED: "registered", BindingState.CACHED: "registered",
           BindingState.WAITING_ACK: "waiting", BindingState.ERROR: "refused", BindingState.DYING: "down",
           BindingState.EXPIRED: "down"}
_FSTATE = {"bound": "registered", "waiting-ack": "waiting", "refused": "refused", "removing": "down"}


def state_word(state: str) -> str:
    """The state in words, translated (``registered``, ``waiting for the home agent``...)."""
    return _(_STATE_WORDS.get(state, state))


@dataclass(frozen=True, slots=True)
class Node:
    """One box. ``id``: unique and stable across refreshes; ``kind``: hoa, flow, binding, coa, interface,
    router, ha, note (a sentence where a column is empty) or more (what was left out); ``column``: 0..5;
    ``label``: one line; ``state``: one of :data:`STATES`; ``details``: tooltip lines; ``movable``: a HoA or
    a flow binding that can be dropped onto an interface; ``hoa``/``fid``/``ifname``/``ifindex``: what the
    node designates; ``indent``: 1 for a flow under its HoA."""

    id: str
    kind: str
    column: int
    label: str
    state: str = "idle"
    details: tuple[str, ...] = ()
    movable: bool = False
    hoa: str | None = None
    fid: int | None = None
    ifname: str | None = None
    ifindex: int | None = None
    indent: int = 0


@dataclass(frozen=True, slots=True)
class Edge:
    """A line from ``source`` (left) to ``target`` (the next column) in ``state``."""

    source: str
    target: str
    state: str


@dataclass(frozen=True)
class Picture:
    """``columns``: node ids per column, top to bottom; ``nodes``: by id; ``edges``: sorted; ``summary``:
    the picture in words (the view's accessible description)."""

    columns: tuple[tuple[str, ...], ...]
    nodes: Mapping[str, Node]
    edges: tuple[Edge, ...]
    summary: str

    def edges_of(self, node_id: str) -> list[Edge]:
        return [e for e in self.edges if node_id in (e.source, e.target)]

    def interfaces(self) -> list[Node]:
        return [self.nodes[i] for i in self.columns[COL_IF] if self.nodes[i].kind == "interface"]


def _clean(text: object, limit: int = MAX_LABEL) -> str:
    s = "".join(c if c.isprintable() else " " for c in str(text))
    return s if len(s) <= limit else s[:limit - 1] + "…"


def _addr_key(text: str) -> tuple:
    try:
        ip = ipaddress.ip_address(text)
        return (0, ip.version, int(ip), "")
    except ValueError:
        return (1, 0, 0, str(text))


def _canon(text: object) -> str | None:
    if not isinstance(text, str) or not text.strip():
        return None
    try:
        return ipaddress.ip_address(text.strip()).compressed
    except ValueError:
        return _clean(text.strip(), 64)


def _best(states: Iterable[str], default: str = "idle") -> str:
    return min(states, key=lambda s: _RANK.get(s, 9), default=default)


def _items(v: Any) -> tuple:
    """A JSON list (or tuple) as a tuple; anything else (a number, a string, None) as no items."""
    return tuple(v) if isinstance(v, (list, tuple)) else ()


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


def uplink_words(u: Mapping[str, Any] | None) -> str | None:
    """The engine's probe of one uplink in words ("home agent reachable, 23 ms, 0 % loss"), None without one."""
    if not isinstance(u, Mapping):
        return None
    r = u.get("reachable")
    parts = [_("home agent reachable") if r is True else _("home agent unreachable") if r is False
             else _("home agent not probed yet")]
    rtt = _num(u.get("srtt_ms")) if _num(u.get("srtt_ms")) is not None else _num(u.get("rtt_ms"))
    if rtt is not None:
        parts.append(_("{ms:.0f} ms").format(ms=rtt))
    loss = _num(u.get("loss"))
    if loss is not None:
        parts.append(_("{pct:.0f} % loss").format(pct=100 * min(1.0, max(0.0, loss))))
    return ", ".join(parts)


class _Builder:
    def __init__(self) -> None:
        self.cols: list[list[str]] = [[] for _c in COLUMNS]
        self.nodes: dict[str, Node] = {}
        self.edges: dict[tuple[str, str], str] = {}
        self.dropped = [0] * len(COLUMNS)

    def add(self, node: Node) -> bool:
        if node.id in self.nodes:
            return True
        if len(self.cols[node.column]) >= MAX_PER_COLUMN:
            self.dropped[node.column] += 1
            return False
        self.nodes[node.id] = node
        self.cols[node.column].append(node.id)
        return True

    def edge(self, a: str, b: str, state: str) -> None:
        if a in self.nodes and b in self.nodes:
            old = self.edges.get((a, b))
            self.edges[(a, b)] = state if old is None else _best((old, state))

    def finish(self, summary: str) -> Picture:
        for c, n in enumerate(self.dropped):
            if n:
                self.nodes[f"more:{c}"] = Node(f"more:{c}", "more", c, _("… {n} more").format(n=n),
                                               details=(_("{n} more not shown").format(n=n),))
                self.cols[c].append(f"more:{c}")
        edges = tuple(Edge(a, b, s) for (a, b), s in sorted(self.edges.items()))
        return Picture(tuple(tuple(c) for c in self.cols), dict(self.nodes), edges, summary)


def build_picture(state, analysis: Analysis | None, bindings: Iterable[Binding] = (), *,
                  uplinks: Iterable[Mapping[str, Any]] = (), engine_bindings: Iterable[Mapping[str, Any]] = (),
                  flow_bindings: Iterable[Mapping[str, Any]] = (), daemon: str | None = None,
                  connected: bool = False) -> Picture:
    """The :class:`Picture` of the node (module docstring).

    ``state``: a :class:`~mhgui.core.model.NodeState`; ``analysis``: its analysis (None: no CoA is known);
    ``bindings``: the daemon's (home registrations of the binding update list are drawn); ``uplinks``,
    ``engine_bindings``, ``flow_bindings``: the engine's ``GetUplinks``, ``GetBindings`` and
    ``GetFlowBindings`` ``flows`` objects; ``daemon``: its name ("engine", "umip") or None; ``connected``:
    it answers. Never raises on malformed items: they are skipped.
    """
    b = _Builder()
    connected = bool(connected)
    ifaces = dict(getattr(state, "interfaces", {}) or {})
    addrs = getattr(state, "addresses", {}) or {}
    homes = tuple(getattr(state, "home_addresses", ()) or ())
    up_by_name = {u["name"]: u for u in uplinks if isinstance(u, Mapping) and isinstance(u.get("name"), str)}
    raw = {}
    for r in engine_bindings:
        h = _canon(r.get("hoa")) if isinstance(r, Mapping) else None
        if h is not None:
            raw.setdefault(h, r)
    # ---- home registrations of the binding update list, each CoA found on an interface (by ifindex)
    regs = []
    for x in bindings:
        if not isinstance(x, Binding) or x.source != "bul" or not x.home_registration or x.coa == x.hoa:
            continue
        hoa, coa = _canon(x.hoa), _canon(x.coa)
        if hoa is None:
            continue
        regs.append((hoa, coa, x))
    # the interface holding each bound CoA (the lowest ifindex when several do); the whole address table is
    # read only for a bound CoA that is no usable CoA any more
    wanted = {c for _h, c, _x in regs if c is not None}
    coa_if: dict[str, int] = {}
    keys = [k for i, ks in (analysis.coa_keys.items() if analysis is not None else ()) for k in ks]
    for pool in (keys, addrs.values() if wanted - {k.address for k in keys} else ()):
        for a in pool:
            if a.address in wanted and a.ifindex in ifaces and a.ifindex < coa_if.get(a.address, a.ifindex + 1):
                coa_if[a.address] = a.ifindex
    regs.sort(key=lambda t: (_addr_key(t[0]), t[2].bid_priority if isinstance(t[2].bid_priority, int) else 0,
                             t[2].bid if isinstance(t[2].bid, int) else -1, _addr_key(t[1] or "")))
    # ---- interfaces shown: access links, and any that holds a bound CoA
    used_if = {coa_if[c] for _h, c, _x in regs if c in coa_if}
    shown_if = sorted(i for i, itf in ifaces.items() if itf.kind not in NON_ACCESS_KINDS or i in used_if)
    an_home = analysis.home_links if analysis is not None else frozenset()
    an_active = analysis.active if analysis is not None else frozenset()
    backup_names = {n for r in raw.values() for n in _items(r.get("backup")) if isinstance(n, str)}
    # ---- per-interface and per-CoA binding states
    if_states: dict[int, list[str]] = {}
    coa_states: dict[str, list[str]] = {}
    for hoa, coa, x in regs:
        s = _BSTATE.get(x.state, "idle")
        if coa is not None:
            coa_states.setdefault(coa, []).append(s)
            if coa in coa_if:
                if_states.setdefault(coa_if[coa], []).append(s)

    cx = _Ctx(b, state, analysis, ifaces, addrs, homes, up_by_name, raw, coa_if, regs, shown_if, an_home, an_active,
              backup_names, if_states, coa_states, connected)
    hoa_list, default_bid, flow_edges = _hoa_column(cx, flow_bindings)
    _binding_column(cx, hoa_list, default_bid, flow_edges)
    coas = _coa_column(cx)
    _ha_column(cx, _path_columns(cx, coas))
    return b.finish(_summary(b, regs, connected, daemon))


@dataclass
class _Ctx:
    """What the column builders share (see :func:`build_picture`)."""

    b: Any
    state: Any
    analysis: Any
    ifaces: Any
    addrs: Any
    homes: Any
    up_by_name: Any
    raw: Any
    coa_if: Any
    regs: Any
    shown_if: Any
    an_home: Any
    an_active: Any
    backup_names: Any
    if_states: Any
    coa_states: Any
    connected: Any


def _hoa_column(cx: _Ctx, flow_bindings: Iterable[Mapping[str, Any]]) -> tuple[dict, dict, list]:
    """Column 0: the home addresses, each followed by its flow bindings (RFC 6089), at most
    :data:`MAX_FLOWS_PER_HOA` of them. Returns (HoAs, default binding id per HoA, flows to draw edges from)."""
    b, state, analysis, ifaces, homes, raw, regs, connected = (
        cx.b, cx.state, cx.analysis, cx.ifaces, cx.homes, cx.raw, cx.regs, cx.connected)
    hoa_list: dict[str, Any] = {}
    for h in homes:
        c = _canon(getattr(h, "address", None))
        if c is not None:
            hoa_list.setdefault(c, h)
    for hoa, _c, _x in regs:
        hoa_list.setdefault(hoa, None)
    for hoa in raw:
        hoa_list.setdefault(hoa, None)
    at_home = {}
    if analysis is not None:
        for hs in analysis.homes:
            if hs.at_home:
                at_home[_canon(hs.hoa.address)] = hs.home_ifindex
    flows_by_hoa: dict[str, list[Mapping]] = {}
    for f in flow_bindings:
        if isinstance(f, Mapping) and isinstance(f.get("fid"), int) and not isinstance(f.get("fid"), bool):
            h = _canon(f.get("hoa"))
            if h is not None:
                flows_by_hoa.setdefault(h, []).append(f)
    default_bid: dict[str, str] = {}
    flow_edges: list[tuple[str, str, Mapping, str]] = []
    for hoa in sorted(hoa_list, key=_addr_key):
        mine = [x for h, _c, x in regs if h == hoa]
        states = [_BSTATE.get(x.state, "idle") for x in mine]
        r = raw.get(hoa) or {}
        details = [_("Home address {hoa}").format(hoa=hoa)]
        h = hoa_list[hoa]
        if h is not None and getattr(h, "home_agent", None):
            details.append(_("Home agent: {ha}").format(ha=h.home_agent))
        if hoa in at_home:
            itf = ifaces.get(at_home[hoa])
            details.append(_("At home on {iface}: no binding needed").format(iface=itf.name if itf else "?"))
            st = "idle"
        elif states:
            st = _best(states)
        elif r.get("state") == "refused" or r.get("error"):
            st = "refused"
        else:
            st = "down" if connected else "idle"
        if isinstance(r.get("error"), str) and r["error"]:
            details.append(_("The daemon says: {error}").format(error=_clean(r["error"], 200)))
        if not mine and hoa not in at_home:
            details.append(_("Not bound") if connected else _("No mobility daemon connected"))
        details.append(state_word(st))
        if connected:
            details.append(_("Drag it onto an interface, or press Enter, to move it."))
        b.add(Node(f"hoa:{hoa}", "hoa", COL_HOA, hoa, st, tuple(details), movable=connected, hoa=hoa))
        fl = sorted(flows_by_hoa.get(hoa, ()), key=lambda f: (f.get("priority") if isinstance(f.get("priority"), int)
                                                               else 0, f["fid"]))
        for f in fl[:MAX_FLOWS_PER_HOA]:
            fs = _FSTATE.get(f.get("state"), "idle") if isinstance(f.get("state"), str) else "idle"
            words = _clean(f.get("selector") or "", 60)
            det = [_("Flow binding {fid} of {hoa} (RFC 6089)").format(fid=f["fid"], hoa=hoa)]
            if words:
                det.append(words)
            where = [n for n in _items(f.get("bound_to")) if isinstance(n, str)]
            if where:
                det.append(_("Sent through {ifaces}").format(ifaces=", ".join(where)))
            if isinstance(f.get("error"), str) and f["error"]:
                det.append(_clean(f["error"], 200))
            det += [state_word(fs), _("Drag it onto an interface, or press Enter, to move it.")]
            label = _("FID {fid}").format(fid=f["fid"]) + (f" {words}" if words else "")
            if b.add(Node(f"flow:{hoa}:{f['fid']}", "flow", COL_HOA, label, fs, tuple(det), movable=connected,
                          hoa=hoa, fid=f["fid"], indent=1)):
                flow_edges.append((f"flow:{hoa}:{f['fid']}", hoa, f, fs))
        if len(fl) > MAX_FLOWS_PER_HOA:
            n = len(fl) - MAX_FLOWS_PER_HOA
            b.add(Node(f"flowmore:{hoa}", "more", COL_HOA, _("… {n} more flows").format(n=n),
                       details=(_("{n} more flow bindings of {hoa}").format(n=n, hoa=hoa),), indent=1))
        # the default path: the registered binding with the lowest BID-PRI (RFC 6089 section 4.1)
        best = [x for x in mine if x.state is BindingState.REGISTERED]
        if best:
            default_bid[hoa] = _bid_id(hoa, best[0])
    if not hoa_list:
        b.add(Node("note:hoa", "note", COL_HOA, _("no home address"),
                   details=(_("No home address is configured: this node is not a Mobile IPv6 node yet."),)))

    return hoa_list, default_bid, flow_edges


def _binding_column(cx: _Ctx, hoa_list: dict, default_bid: dict, flow_edges: list) -> None:
    """Column 1: one node per home registration (per BID with several CoAs, RFC 5648), the edges from the
    HoAs (the default path registered, the others backup) and from the flow bindings to their BIDs."""
    b, state, ifaces, coa_if, regs, backup_names, connected = (
        cx.b, cx.state, cx.ifaces, cx.coa_if, cx.regs, cx.backup_names, cx.connected)
    for hoa, coa, x in regs:
        nid = _bid_id(hoa, x)
        s = _BSTATE.get(x.state, "idle")
        label = _("BID {bid}").format(bid=x.bid) if isinstance(x.bid, int) else _("binding")
        det = [_("Binding of {hoa} to {coa}").format(hoa=hoa, coa=coa or "?")]
        if isinstance(x.bid, int):
            det.append(_("BID {bid}, BID-PRI {pri} (RFC 5648, RFC 6089)").format(
                bid=x.bid, pri=x.bid_priority if isinstance(x.bid_priority, int) else "—"))
        if x.peer:
            det.append(_("Home agent: {ha}").format(ha=x.peer))
        if isinstance(x.lifetime, int):
            det.append(_("Lifetime {s} s").format(s=x.lifetime))
        itf = ifaces.get(coa_if.get(coa or "")) if coa else None
        name = itf.name if itf is not None else x.interface
        edge_state = s
        if s == "registered" and default_bid.get(hoa) != nid:
            edge_state = "backup"
            det.append(_("A further path: carries the flows bound to it"))
        elif s == "registered" and name in backup_names:
            edge_state = "backup"
        det.append(state_word(s))
        if not b.add(Node(nid, "binding", COL_BINDING, label, s, tuple(det), hoa=hoa, ifname=name)):
            continue
        b.edge(f"hoa:{hoa}", nid, edge_state)
    for fid_node, hoa, f, fs in flow_edges:
        bids = [x for x in _items(f.get("bids")) if isinstance(x, int) and not isinstance(x, bool)]
        if bids:
            for bid in bids:
                b.edge(fid_node, f"bind:{hoa}:{bid}", fs)
        else:  # not confirmed yet: towards the uplinks asked for
            asked = {n for n in _items(f.get("uplinks")) if isinstance(n, str)}
            for hoa2, _c, x in regs:
                nid = _bid_id(hoa2, x)
                if hoa2 == hoa and b.nodes.get(nid) is not None and b.nodes[nid].ifname in asked:
                    b.edge(fid_node, nid, fs)
    if not regs:
        why = (_("no binding") if connected else _("no mobility daemon")) if hoa_list else _("nothing to bind")
        b.add(Node("note:bind", "note", COL_BINDING, why, details=(why,)))



def _coa_column(cx: _Ctx) -> dict:
    """Column 2: the analysis' usable care-of addresses and every bound one (a bound CoA no interface holds is
    down); returns ``{coa: (ifindex or None, Address or None)}``."""
    b, state, analysis, ifaces, addrs, coa_if, regs, shown_if, coa_states = (
        cx.b, cx.state, cx.analysis, cx.ifaces, cx.addrs, cx.coa_if, cx.regs, cx.shown_if, cx.coa_states)
    coas: dict[str, tuple[int | None, Any]] = {}
    if analysis is not None:
        for i, keys in analysis.coa_keys.items():
            for k in keys:
                a = addrs.get(k)
                if a is not None and i in ifaces:
                    coas.setdefault(a.address, (i, a))
    for _h, coa, _x in regs:
        if coa is not None and coa not in coas:
            coas[coa] = (coa_if.get(coa), None)
    order = {i: n for n, i in enumerate(shown_if)}

    def key(c: str) -> tuple:  # an Address' value is parsed already (thousands of CoAs: no parsing again)
        a = coas[c][1]
        ip = getattr(a, "ip", None)
        return (order.get(coas[c][0], 1 << 30), (0, ip.version, int(ip), "") if ip is not None else _addr_key(c))

    ranked = sorted(coas, key=key)
    if len(ranked) > MAX_PER_COLUMN:  # the bound CoAs are kept first (the path of each binding), then the others
        keep = set([c for c in ranked if c in coa_states][:MAX_PER_COLUMN])
        keep.update([c for c in ranked if c not in keep][:MAX_PER_COLUMN - len(keep)])
        b.dropped[COL_COA] += len(ranked) - len(keep)
        ranked = [c for c in ranked if c in keep]
    for coa in ranked:
        i, _a = coas[coa]
        itf = ifaces.get(i) if i is not None else None
        if itf is None:
            s = "down"
        elif not itf.up:
            s = "down"
        else:
            s = _best(coa_states.get(coa, ()))
        det = [_("Care-of address {coa}").format(coa=coa)]
        det.append(_("On {iface}").format(iface=itf.name) if itf else _("No interface holds it any more"))
        det.append(state_word(s))
        if b.add(Node(f"coa:{coa}", "coa", COL_COA, coa, s, tuple(det), ifindex=i)):
            for hoa, c2, x in regs:
                if c2 == coa:
                    b.edge(_bid_id(hoa, x), f"coa:{coa}", "down" if s == "down" else _BSTATE.get(x.state, "idle"))
    if not coas:
        b.add(Node("note:coa", "note", COL_COA, _("no care-of address"),
                   details=(_("No usable care-of address: no interface has a global address."),)))

    return coas


def _path_columns(cx: _Ctx, coas: dict) -> dict[int, list[str]]:
    """Columns 3 and 4: the access interfaces (by ifindex) and their default routers (a placeholder where
    none is known: an IPv4 gateway behind NAT, RFC 5555); returns ``{ifindex: router node ids}``."""
    b, state, ifaces, up_by_name, shown_if, an_home, an_active = (
        cx.b, cx.state, cx.ifaces, cx.up_by_name, cx.shown_if, cx.an_home, cx.an_active)
    backup_names, if_states, coa_states, connected = cx.backup_names, cx.if_states, cx.coa_states, cx.connected
    has: dict[int, list[str]] = {}
    for i in shown_if:
        itf = ifaces[i]
        u = up_by_name.get(itf.name)
        carried = if_states.get(i, ())
        if not itf.up:
            s = "down"
        elif carried:
            s = _best(carried)
        elif itf.name in backup_names or (u is not None and u.get("reachable") is True and connected):
            s = "backup"
        else:  # up, carrying nothing; an unreachable home agent shows on the way to it (router -> HA)
            s = "idle"
        det = [_("Interface {name} ({kind}), ifindex {i}").format(name=itf.name, kind=_(itf.kind.value), i=i),
               _("up") if itf.up else _("down or no carrier ({state})").format(state=itf.operstate)]
        if i in an_home:
            det.append(_("On a home link"))
        elif i not in an_active and itf.up:
            det.append(_("No usable care-of address"))
        if itf.name in backup_names:
            det.append(_("Listed as a backup uplink"))
        det.append(state_word(s))
        if not b.add(Node(f"if:{i}", "interface", COL_IF, _clean(itf.name, 20), s, tuple(det), ifname=itf.name,
                          ifindex=i)):
            continue
        for coa, (ci, _a) in coas.items():
            if ci == i:
                b.edge(f"coa:{coa}", f"if:{i}", "down" if s == "down" else _best(coa_states.get(coa, ())))
        if not itf.up:
            continue
        routers = sorted(getattr(state, "routers", {}).get(i, ()) or (), key=_addr_key)[:3]
        rids = []
        for r in routers:
            rid = f"rtr:{i}:{r}"
            if b.add(Node(rid, "router", COL_ROUTER, _clean(r, 45), s,
                          (_("Default router {r} on {iface}").format(r=r, iface=itf.name),), ifindex=i)):
                rids.append(rid)
        if not routers and (i in an_active or (u is not None and (u.get("coa6") or u.get("coa4")))):
            v4 = u is not None and u.get("family") == 4
            rid = f"rtr:{i}:-"
            label = _("IPv4 gateway") if v4 else _("no IPv6 router")
            tip = (_("{iface} reaches the home agent over IPv4 (RFC 5555)").format(iface=itf.name) if v4 else
                   _("No IPv6 default router was seen on {iface}").format(iface=itf.name))
            if b.add(Node(rid, "router", COL_ROUTER, label, s, (tip,), ifindex=i)):
                rids.append(rid)
        for rid in rids:
            b.edge(f"if:{i}", rid, s)
        has[i] = rids
    return has


def _ha_column(cx: _Ctx, has: dict[int, list[str]]) -> None:
    """Column 5: the home agents (configured, and the registrations' peers), reached from each router in the
    state of what goes through it: its registrations, else the engine's probe (reachable: backup)."""
    b, state, ifaces, homes, up_by_name, raw, coa_if, regs, connected = (
        cx.b, cx.state, cx.ifaces, cx.homes, cx.up_by_name, cx.raw, cx.coa_if, cx.regs, cx.connected)
    has_ha: dict[str, None] = {}
    for h in homes:
        c = _canon(getattr(h, "home_agent", None))
        if c is not None:
            has_ha.setdefault(c, None)
    for _h, _c, x in regs:
        c = _canon(x.peer)
        if c is not None:
            has_ha.setdefault(c, None)
    for r in raw.values():
        c = _canon(r.get("home_agent"))
        if c is not None:
            has_ha.setdefault(c, None)
    for ha in sorted(has_ha, key=_addr_key):
        peers = [_BSTATE.get(x.state, "idle") for _h, _c, x in regs if _canon(x.peer) == ha]
        s = _best(peers) if peers else ("down" if connected else "idle")
        det = [_("Home agent {ha}").format(ha=ha), state_word(s)]
        if not b.add(Node(f"ha:{ha}", "ha", COL_HA, ha, s, tuple(det))):
            continue
        for i, rids in has.items():
            itf = ifaces[i]
            via = [_BSTATE.get(x.state, "idle") for _h, c, x in regs
                   if coa_if.get(c or "") == i and _canon(x.peer) in (ha, None)]
            u = up_by_name.get(itf.name)
            if via:
                es = _best(via)
            elif u is not None and connected:
                es = {True: "backup", False: "down"}.get(u.get("reachable"), "idle")
            else:
                continue
            for rid in rids:
                b.edge(rid, f"ha:{ha}", es)
    if not has_ha:
        b.add(Node("note:ha", "note", COL_HA, _("no home agent"), details=(_("No home agent is known."),)))


def _bid_id(hoa: str, x: Binding) -> str:
    return f"bind:{hoa}:{x.bid}" if isinstance(x.bid, int) else f"bind:{hoa}:{_canon(x.coa)}"


def _summary(b: _Builder, regs, connected: bool, daemon: str | None) -> str:
    n = {k: sum(1 for x in b.nodes.values() if x.kind == k) for k in ("hoa", "binding", "coa", "interface", "flow")}
    parts = [_("{h} home addresses, {b} bindings, {c} care-of addresses, {i} interfaces, {f} flow bindings.").format(
        h=n["hoa"], b=n["binding"], c=n["coa"], i=n["interface"], f=n["flow"])]
    if not connected:
        parts.append(_("No mobility daemon connected."))
    for hoa, coa, x in regs:
        if x.state is BindingState.REGISTERED:
            bid = _(" (BID {bid})").format(bid=x.bid) if isinstance(x.bid, int) else ""
            parts.append(_("{hoa} registered through {iface}{bid}.").format(
                hoa=hoa, iface=b.nodes.get(_bid_id(hoa, x), Node("", "", 0, "")).ifname or coa, bid=bid))
    return " ".join(parts)


# --------------------------------------------------------------------------- layout
@dataclass(frozen=True, slots=True)
class Rect:
    x: float
    y: float
    w: float
    h: float

    @property
    def right(self) -> float:
        return self.x + self.w

    @property
    def bottom(self) -> float:
        return self.y + self.h

    def intersects(self, o: "Rect") -> bool:
        return self.x < o.right and o.x < self.right and self.y < o.bottom and o.y < self.bottom

    def contains(self, px: float, py: float) -> bool:
        return self.x <= px <= self.right and self.y <= py <= self.bottom

    def inside(self, o: "Rect") -> bool:
        return o.x <= self.x and o.y <= self.y and self.right <= o.right and self.bottom <= o.bottom


@dataclass(frozen=True)
class Layout:
    """``boxes``/``labels``: by node id (a label rectangle lies inside its box, after its state mark in
    ``marks``); ``headers``: (text, rectangle) per column; ``lines``: (edge, (x1, y1), (x2, y2)) from the
    source box's right side to the target box's left side; ``legend``: (state, sample rectangle, text
    rectangle) per state; ``width``/``height``: the size used (larger than asked when the picture needs
    more: the view then scrolls)."""

    boxes: Mapping[str, Rect]
    labels: Mapping[str, Rect]
    headers: tuple[tuple[str, Rect], ...]
    lines: tuple[tuple[Edge, tuple[float, float], tuple[float, float]], ...]
    width: float
    height: float
    marks: Mapping[str, Rect] = field(default_factory=dict)
    legend: tuple[tuple[str, Rect, Rect], ...] = ()
    #: "columns" (left to right) or "rows" (top to bottom)
    orientation: str = "columns"

    def node_at(self, x: float, y: float) -> str | None:
        return next((i for i, r in self.boxes.items() if r.contains(x, y)), None)


_LEGEND = {"registered": N_("registered"), "waiting": N_("waiting"), "refused": N_("refused"), "down": N_("down"),
           "backup": N_("backup"), "idle": N_("idle")}


def curve(lay: Layout, p1: tuple[float, float], p2: tuple[float, float]) -> tuple[tuple[float, float], ...]:
    """The control points of the cubic Bézier drawn from ``p1`` to ``p2``: it leaves and arrives across the
    gap between the two columns (rows), so it stays in that gap."""
    (x1, y1), (x2, y2) = p1, p2
    if lay.orientation == "rows":
        my = (y1 + y2) / 2
        return (x1, my), (x2, my)
    mx = (x1 + x2) / 2
    return (mx, y1), (mx, y2)


def bezier_points(lay: Layout, p1, p2, n: int = 16) -> list[tuple[float, float]]:
    """``n + 1`` points along the line from ``p1`` to ``p2`` (see :func:`curve`)."""
    c1, c2 = curve(lay, p1, p2)
    out = []
    for k in range(n + 1):
        t = k / n
        u = 1 - t
        out.append(tuple(u ** 3 * a + 3 * u * u * t * b + 3 * u * t * t * c + t ** 3 * d
                         for a, b, c, d in zip(p1, c1, c2, p2)))
    return out


def legend_word(state: str) -> str:
    """The state's word in the legend (short), translated."""
    return _(_LEGEND.get(state, state))


def layout(pic: Picture, width: float, height: float, measure: Callable[[str], float] = lambda s: 7.0 * len(s),
           line_height: float = 16.0, *, gap: float = 28.0) -> Layout:
    """Place ``pic`` in ``width`` × ``height`` pixels (module docstring), in one of two orientations:

    - ``columns`` (left to right) when the tallest column fits the height: columns get their labels'
      widths (the widest elided to a common cap when the sum does not fit), the spare width goes to the
      gaps (at most 6 × ``gap``); boxes are ``line_height + 2 pad`` high, ``sep`` apart (the roomiest of pad
      4..1, sep 4..1 that fits), spread evenly over the height; the legend goes under the nodes of the
      rightmost column with room for it, else in a row at the bottom;
    - ``rows`` (top to bottom, as the draft's Figure 1 draws it) when the columns do not fit but the six
      rows do (a wide, low page) with at least 12 characters of every label: row titles on the left, the
      fullest row spread evenly over the width, the others under (over) what they are drawn to; the legend
      at the right end of the row with room.

    When neither fits, ``columns`` with the height it needs (the view scrolls).
    """
    cols = _layout_columns(pic, width, height, measure, line_height, gap)
    if cols.height <= height and cols.width <= width:
        return cols
    return _layout_rows(pic, width, height, measure, line_height, gap) or cols


def _layout_columns(pic: Picture, width: float, height: float, measure: Callable[[str], float],
                    line_height: float, gap: float) -> Layout:
    ncol = len(pic.columns)
    margin = 4.0 if height >= 240 else 2.0
    header_h = line_height + 2
    top = margin + header_h + (2 if height >= 240 else 0)
    tallest = max((len(c) for c in pic.columns), default=0)
    avail_h = height - top - margin
    for pad, sep in ((4, 4), (3, 3), (2, 3), (2, 2), (1, 2), (1, 1)):  # the roomiest that fits
        if tallest * (line_height + 2 * pad + sep) <= avail_h:
            break
    box_h = line_height + 2 * pad
    pitch_min = box_h + sep
    mark = round(line_height * 0.5)
    indent_w = 14.0

    def natural(c: int) -> float:
        ws = [measure(pic.nodes[i].label) + mark + 3 * pad + 4 + indent_w * pic.nodes[i].indent
              for i in pic.columns[c]]
        return max(ws + [measure(_(COLUMNS[c])) * 1.15 + 2, 40.0])  # headers are bold

    widths = [natural(c) for c in range(ncol)]
    avail = width - 2 * margin - gap * (ncol - 1)
    if sum(widths) > avail:  # water-fill: the widest columns are elided to a common cap
        floor = 60.0
        lo, hi = floor, max(widths)
        for _i in range(40):
            mid = (lo + hi) / 2
            if sum(min(w, mid) for w in widths) > avail:
                hi = mid
            else:
                lo = mid
        widths = [max(min(w, lo), min(w, floor)) for w in widths]
    spare = max(0.0, width - 2 * margin - sum(widths))
    g = max(gap, min(gap * 6, spare / (ncol - 1))) if ncol > 1 else 0.0
    used_w = 2 * margin + sum(widths) + g * (ncol - 1)
    x0 = margin + max(0.0, (width - used_w) / 2)
    xs = list(itertools.accumulate([x0] + [w + g for w in widths[:-1]]))
    # the legend: a column with room under its nodes, else a row at the bottom
    sample = 22.0
    lpitch = line_height + 2
    words = {s: _(_LEGEND[s]) for s in STATES}
    leg_w = sample + 6 + max(measure(w) for w in words.values())
    leg_h = lpitch * len(STATES)
    used_h = max(height, top + margin + tallest * pitch_min)
    avail_h = used_h - top - margin
    leg_col = next((c for c in reversed(range(ncol)) if widths[c] >= leg_w
                    and len(pic.columns[c]) * pitch_min + leg_h + 8 <= avail_h), None)
    legend = []
    if leg_col is None:  # a row at the bottom, under every column
        used_h = max(height, top + margin + tallest * pitch_min + lpitch + 4)
        avail_h = used_h - top - margin - lpitch - 4
        lx, ly = x0, used_h - margin - lpitch
        for st in STATES:
            w = sample + 6 + measure(words[st])
            legend.append((st, Rect(lx, ly, sample, lpitch), Rect(lx + sample + 4, ly, w - sample - 4, lpitch)))
            lx += w + 12
        used_w = max(used_w, lx - 12 + margin)
    else:
        lx, ly = xs[leg_col], used_h - margin - leg_h
        for k, st in enumerate(STATES):
            legend.append((st, Rect(lx, ly + k * lpitch, sample, lpitch),
                           Rect(lx + sample + 4, ly + k * lpitch, leg_w - sample - 4, lpitch)))
    boxes: dict[str, Rect] = {}
    labels: dict[str, Rect] = {}
    marks: dict[str, Rect] = {}
    headers = []
    for c in range(ncol):
        x, w = xs[c], widths[c]
        headers.append((_(COLUMNS[c]), Rect(x, margin, w, header_h)))
        ids = pic.columns[c]
        n = len(ids)
        if not n:
            continue
        room = avail_h - (leg_h + 8 if c == leg_col else 0)
        pitch = max(pitch_min, min(room / n, box_h * 2.4))
        y = top + max(0.0, (room - pitch * n) / 2) + (pitch - box_h) / 2
        for k, nid in enumerate(ids):
            ind = indent_w * pic.nodes[nid].indent
            r = Rect(x + ind, y + k * pitch, w - ind, box_h)
            boxes[nid] = r
            marks[nid] = Rect(r.x + pad + 1, r.y + (box_h - mark) / 2, mark, mark)
            lx = r.x + 2 * pad + mark + 2
            labels[nid] = Rect(lx, r.y + pad, max(1.0, r.right - pad - lx), line_height)
    lines = []
    for e in pic.edges:
        a, bb = boxes.get(e.source), boxes.get(e.target)
        if a is None or bb is None:
            continue
        lines.append((e, (a.right, a.y + a.h / 2), (bb.x, bb.y + bb.h / 2)))
    return Layout(boxes, labels, tuple(headers), tuple(lines), max(width, used_w), used_h, marks, tuple(legend))


def _pack(ws: list[float], goal: list[float], lo: float, hi: float, sep: float) -> list[float]:
    """Left ends for boxes of widths ``ws``, in this order, centred as near ``goal`` as they can be, at least
    ``sep`` apart, within [lo, hi] (which holds them all)."""
    xs, prev = [], lo - sep
    for w, c in zip(ws, goal):
        x = max(c - w / 2, prev + sep, lo)
        xs.append(x)
        prev = x + w
    nxt = hi + sep
    for k in reversed(range(len(xs))):
        xs[k] = min(xs[k], nxt - sep - ws[k])
        nxt = xs[k]
    return xs


def _layout_rows(pic: Picture, width: float, height: float, measure: Callable[[str], float],
                 line_height: float, gap: float) -> Layout | None:
    """The ``rows`` orientation of :func:`layout`, or None when it does not fit ``width`` × ``height``."""
    nrow = len(pic.columns)
    margin = 2.0
    pad = 2 if height >= margin * 2 + nrow * (line_height + 4) + (nrow - 1) * 12 else 1
    box_h = line_height + 2 * pad
    row_gap = (height - 2 * margin - nrow * box_h) / (nrow - 1) if nrow > 1 else 0.0
    if row_gap < 8:
        return None
    row_gap = min(row_gap, box_h * 2)
    top = margin + max(0.0, (height - 2 * margin - nrow * box_h - (nrow - 1) * row_gap) / 2)
    title_w = max(measure(_(t)) * 1.15 for t in COLUMNS) + 10
    x0 = margin + title_w
    avail_w = width - x0 - margin
    mark = round(line_height * 0.5)
    sep = 6.0
    sample, lpitch = 22.0, line_height + 2
    words = {s: _(_LEGEND[s]) for s in STATES}
    leg_ws = [sample + 4 + measure(words[s]) for s in STATES]
    leg_w = sum(leg_ws) + 10 * (len(STATES) - 1)

    def natural(nid: str) -> float:
        return measure(pic.nodes[nid].label) + mark + 3 * pad + 4

    legible = measure("0" * 13) + mark + 3 * pad + 4  # an elided address still shows its first 12 characters

    def room(n: int, w: float) -> float:
        return (w - sep * (n - 1)) / n if n else w

    # the legend: the row whose boxes leave it room at its right end, fewest boxes first
    leg_row = None
    for r in sorted(range(nrow), key=lambda r: (len(pic.columns[r]), -r)):
        n = len(pic.columns[r])
        need = sum(min(natural(i), 200.0) for i in pic.columns[r]) + sep * max(0, n - 1)
        if need + leg_w + 24 <= avail_w and (n == 0 or room(n, avail_w - leg_w - 24) >= 60):
            leg_row = r
            break
    if leg_row is None:
        return None
    boxes: dict[str, Rect] = {}
    labels: dict[str, Rect] = {}
    marks: dict[str, Rect] = {}
    headers = []
    legend = []
    # widths, and where each row may go: [lo, hi)
    widths: dict[str, float] = {}
    span: list[tuple[float, float]] = []
    for r in range(nrow):
        ids = pic.columns[r]
        w_row = avail_w - (leg_w + 24 if r == leg_row else 0)
        span.append((x0, x0 + w_row))
        if ids:
            share = room(len(ids), w_row)
            for i in ids:
                widths[i] = min(natural(i), share)
                if widths[i] < min(natural(i), legible):  # too narrow to tell addresses apart: not rows
                    return None
    # centres: the fullest row evenly spread; the others under (over) the nodes they are drawn to, in order
    centre: dict[str, float] = {}
    anchor = max(range(nrow), key=lambda r: (sum(widths[i] for i in pic.columns[r]) + sep * len(pic.columns[r]), -r))
    nbrs: dict[str, list[str]] = {}
    for e in pic.edges:
        nbrs.setdefault(e.source, []).append(e.target)
        nbrs.setdefault(e.target, []).append(e.source)

    def place(r: int, want: dict[str, float] | None) -> None:
        ids = pic.columns[r]
        lo, hi = span[r]
        if not ids:
            return
        ws = [widths[i] for i in ids]
        slack = (hi - lo - sum(ws)) / len(ids)
        even, x = [], lo + slack / 2
        for w in ws:
            even.append(x + w / 2)
            x += w + slack
        goal = [want.get(i, c) if want else c for i, c in zip(ids, even)]
        for i, x in zip(ids, _pack(ws, goal, lo, hi, sep)):
            centre[i] = x + widths[i] / 2

    place(anchor, None)
    for order in (range(anchor + 1, nrow), range(anchor - 1, -1, -1)):
        for r in order:
            near = r - 1 if r > anchor else r + 1
            want = {}
            for i in pic.columns[r]:
                xs_ = [centre[j] for j in nbrs.get(i, ()) if j in centre and pic.nodes[j].column == near]
                if xs_:
                    want[i] = sum(xs_) / len(xs_)
            place(r, want)
    for r in range(nrow):
        y = top + r * (box_h + row_gap)
        headers.append((_(COLUMNS[r]), Rect(margin, y + (box_h - line_height - 2) / 2, title_w - 8, line_height + 2)))
        for nid in pic.columns[r]:
            w = widths[nid]
            rect = Rect(centre[nid] - w / 2, y, w, box_h)
            boxes[nid] = rect
            marks[nid] = Rect(rect.x + pad + 1, rect.y + (box_h - mark) / 2, mark, mark)
            lx = rect.x + 2 * pad + mark + 2
            labels[nid] = Rect(lx, rect.y + pad, max(1.0, rect.right - pad - lx), line_height)
        if r == leg_row:
            lx = x0 + avail_w - leg_w
            ly = y + (box_h - lpitch) / 2
            for st, w in zip(STATES, leg_ws):
                legend.append((st, Rect(lx, ly, sample, lpitch), Rect(lx + sample + 4, ly, w - sample - 4, lpitch)))
                lx += w + 10
    lines = []
    for e in pic.edges:
        a, bb = boxes.get(e.source), boxes.get(e.target)
        if a is None or bb is None:
            continue
        lines.append((e, (a.x + a.w / 2, a.bottom), (bb.x + bb.w / 2, bb.y)))
    return Layout(boxes, labels, tuple(headers), tuple(lines), width, height, marks, tuple(legend), "rows")
