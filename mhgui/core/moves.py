"""What moving a flow to another interface means, said honestly before anything is done.

Pure: :func:`move_outcome` looks at the flow's placement (:mod:`mhgui.core.flows`),
the target interface in the live analysis and the daemon's capabilities, and
returns one :class:`MoveOutcome`:

- ``refuse``: the move cannot be done (the target is down or has no usable
  care-of address, the flow is not movable, it is already there, no daemon...);
- ``flow-binding``: a HoA flow and a daemon with RFC 6089 flow bindings: just
  this flow moves (a traffic selector bound to the target's BID);
- ``rebind``: a HoA flow and a daemon without flow bindings (mainline UMIP):
  the HoA is rebound through the target, and with UMIP every HoA follows one
  interface choice, so every HoA-bound flow moves (listed in ``also_moves``);
  the flows keep working (draft 7.3: a HoA survives a change of interface);
- ``steer``: a flow whose local address is a CoA (or another address) cannot
  move: it breaks if its address goes away (draft 5.6, 7.3). What can be done
  is to send *new* connections to the same destination through the target
  (a steering rule), which the application must re-establish.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from ..engine.selectors import TrafficSelector
from ..i18n import _, ngettext
from .analysis import Analysis
from .capabilities import DaemonCapabilities
from .flows import Flow, Placement
from .model import NodeState


@dataclass(frozen=True, slots=True)
class MoveOutcome:
    """``action``: refuse | flow-binding | rebind | steer. ``summary``: the sentence shown first.

    ``hoa``: the home address that is rebound (rebind, flow-binding);
    ``destination``: the remote address new connections go to (steer);
    ``also_moves``: ids of the other flows that move with it (rebind);
    ``interfaces``: flow-binding: every interface the flow goes through (several = a copy on each);
    ``selector``: flow-binding: the flow as the home agent sees it (RFC 6088).
    """

    action: str
    summary: str
    interface: str
    hoa: str | None = None
    destination: str | None = None
    also_moves: tuple[str, ...] = ()
    interfaces: tuple[str, ...] = ()
    selector: TrafficSelector | None = None


def match_key(match) -> tuple | None:
    """A hashable form of a selector as JSON (:func:`mhgui.engine.flowspec.selector_to_json`), None if it is not one."""
    if not isinstance(match, dict):
        return None
    try:
        return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in match.items()))
    except TypeError:
        return None


def flow_match_key(flow: Flow) -> tuple:
    """The :func:`match_key` of :func:`flow_selector` of ``flow``, without building the selector."""
    return tuple(sorted((("source_address", flow.remote_address), ("destination_address", flow.local_address),
                         ("source_port", flow.remote_port), ("destination_port", flow.local_port),
                         ("next_header", 6 if flow.protocol == "tcp" else 17))))


def bound_flows(flow_bindings) -> dict[tuple, dict]:
    """The daemon's flow bindings (``flow_bindings()`` dicts with ``match``) by :func:`match_key`."""
    out = {}
    for f in flow_bindings:
        k = match_key(f.get("match")) if isinstance(f, dict) else None
        if k is not None:
            out[k] = f
    return out


def flow_selector(flow: Flow) -> TrafficSelector:
    """The RFC 6088 selector of exactly this connection, written as the home agent sees it: source = the
    correspondent (remote address and port), destination = the home address and the local port.
    ValueError for an IPv4 flow (the engine's home addresses are IPv6)."""
    return TrafficSelector(source_address=flow.remote_address, destination_address=flow.local_address,
                           source_port=flow.remote_port, destination_port=flow.local_port,
                           next_header=6 if flow.protocol == "tcp" else 17)


def interface_problem(state: NodeState, analysis: Analysis, ifname: str) -> str | None:
    """Why ``ifname`` cannot carry a moved flow (down, no usable CoA, home link, unknown), or None."""
    iface = next((i for i in state.interfaces.values() if i.name == ifname), None)
    if iface is None:
        return _("there is no interface {name}").format(name=ifname)
    if not iface.up:
        return _("{name} is down or has no carrier").format(name=ifname)
    if iface.ifindex in analysis.home_links:
        return _("{name} is on a home link: it holds no care-of address").format(name=ifname)
    if iface.ifindex not in analysis.active:
        return _("{name} has no usable care-of address").format(name=ifname)
    return None


def target_problem(state: NodeState, analysis: Analysis, ifname: str, in_use: Iterable[str] = ()) -> str | None:
    """Why a "Move to" menu (the Flows tab's, the home addresses', the node picture's) greys ``ifname`` out, or
    None to offer it: "in use" when the connection or home address is on it already (``in_use``: the names of
    the interfaces it is on now), else :func:`interface_problem` (down, no usable care-of address...)."""
    if ifname in set(in_use):
        return _("in use")
    return interface_problem(state, analysis, ifname)


def move_outcome(flow: Flow, place: Placement, target: str, state: NodeState, analysis: Analysis,
                 caps: DaemonCapabilities, others: list[tuple[Flow, Placement]] = (),
                 bound_to: tuple[str, ...] = ()) -> MoveOutcome:
    """What moving ``flow`` (placed at ``place``) to interface ``target`` would do (module docstring).

    ``others``: every flow with its placement, to list what moves along with a rebind; ``bound_to``: the
    interfaces a flow binding of exactly this connection sends it through now (it is where the flow is).
    """
    def refuse(why: str) -> MoveOutcome:
        return MoveOutcome("refuse", why, target)

    if place.movable == "no":
        return refuse(_("This connection cannot move: {why}").format(why=place.reason))
    problem = interface_problem(state, analysis, target)
    if problem:
        return refuse(_("Cannot move to {interface}: {why}.").format(interface=target, why=problem))
    if (tuple(bound_to) or (place.interface,)) == (target,):
        return refuse(_("This connection already goes through {interface}.").format(interface=target))
    if place.local_role == "hoa":
        hoa = flow.local_address
        if not caps.connected:
            return refuse(_("This connection uses the home address {hoa}, so it could move without "
                            "breaking, but no mobility daemon is connected to rebind it.").format(hoa=hoa))
        if caps.flow_bindings:
            try:
                sel = flow_selector(flow)
            except ValueError as e:
                return refuse(_("This connection cannot be bound alone: {why}.").format(why=e))
            return MoveOutcome("flow-binding", _("Only this connection moves to {interface} (an RFC 6089 flow "
                                                 "binding at the home agent); it keeps working.").format(
                                                     interface=target), target, hoa=hoa,
                               interfaces=(target,), selector=sel)
        moving = tuple(f.id for f, p in others if p.local_role == "hoa" and f.id != flow.id)
        more = " " + ngettext("{n} other connection(s) on home addresses move with it.",
                              "{n} other connection(s) on home addresses move with it.",
                              len(moving)).format(n=len(moving)) if moving else ""
        return MoveOutcome(
            "rebind",
            _("This connection keeps working: it uses the home address {hoa}. {daemon} cannot move one "
              "connection alone: every home address is rebound through {interface}, so every connection on a "
              "home address moves.{more} The daemon restarts, which pauses them for a few seconds.").format(
                  hoa=hoa, daemon=caps.name, interface=target, more=more),
            target, hoa=hoa, also_moves=moving)
    remote = flow.remote_address
    return MoveOutcome(
        "steer",
        _("This connection will not survive: its local address {address} belongs to "
          "{interface}, and a connection cannot change its address. "
          "New connections to {remote} can be sent through {target} instead (a steering rule); "
          "the application has to reconnect.").format(
              address=flow.local_address, interface=place.interface or _("another interface"), remote=remote,
              target=target),
        target, destination=remote)


def bicast_outcome(flow: Flow, place: Placement, targets: tuple[str, ...], state: NodeState, analysis: Analysis,
                   caps: DaemonCapabilities) -> MoveOutcome:
    """What "send this connection on each of ``targets``" (bicast, e.g. a call) means: a flow binding to
    several BIDs (RFC 6089 §3.2: n-casting) with a daemon that has them, else a refusal that says why."""
    label = _(" and ").join(targets)

    def refuse(why: str) -> MoveOutcome:
        return MoveOutcome("refuse", why, label)

    if len(targets) < 2:
        return refuse(_("Sending on several interfaces needs at least two usable ones."))
    if place.local_role != "hoa":
        return refuse(_("Only a connection on a home address can be sent on several interfaces: this one's "
                        "address {address} belongs to one interface.").format(address=flow.local_address))
    if not caps.flow_bindings:
        hint = _(" (the engine: multiple_care_of = true in mn.toml)") if caps.name == "engine" else ""
        if caps.connected:
            return refuse(_("Sending one connection on several interfaces needs flow bindings (RFC 6089), which "
                            "{daemon} does not have{hint}.").format(daemon=caps.name, hint=hint))
        return refuse(_("Sending one connection on several interfaces needs flow bindings (RFC 6089), which "
                        "no connected daemon offers{hint}.").format(hint=hint))
    for t in targets:
        problem = interface_problem(state, analysis, t)
        if problem:
            return refuse(_("Cannot send on {interface}: {why}.").format(interface=t, why=problem))
    try:
        sel = flow_selector(flow)
    except ValueError as e:
        return refuse(_("This connection cannot be bound alone: {why}.").format(why=e))
    return MoveOutcome("flow-binding", _("Each packet of this connection goes out on {interfaces} and comes back "
                                         "on both; the other end keeps the first copy, so it goes on if one of "
                                         "them fails.").format(interfaces=label),
                       targets[0], hoa=flow.local_address, interfaces=tuple(targets), selector=sel)
