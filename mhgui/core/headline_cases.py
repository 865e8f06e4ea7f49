"""The node's answer, situation by situation (:func:`mhgui.core.headline.node_headline`): the daemon lost or
not running, no home registration, and the registered home addresses with the engine's probes. Pure: no
Qt, no I/O."""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

from mhgui.i18n import _, ngettext

from .analysis import Analysis
from .bindings import Binding, BindingState, UplinkInUse, canonical_address
from .headline_model import (
    ACTION_CONFIGURE, ACTION_PREFERENCES, ACTION_REBIND, ACTION_RESTART_DAEMON, Action, DaemonLike, Headline,
)
from .headline_backup import backups_down, backups_text
from .headline_words import coa_text, health, online_links, probe_of
from .model import NodeState

__all__ = ["bound", "lost", "not_bound", "reachable_other", "refused_hoas"]


def bound(state: NodeState, bindings: Sequence[Binding], bound: Sequence[UplinkInUse], unbound: Sequence[str],
          uplinks: Sequence[Mapping[str, Any]] | None, engine_available: bool) -> Headline:
    """Some home addresses have a home registration: through which uplink, how healthy, what else is wrong
    (``bound``: their uplinks in RFC 5952 order of the HoAs; ``unbound``: the HoAs away without one)."""
    main = next((u for u in bound if u.acknowledged), bound[0])
    iface = main.interface or _("an interface that no longer has it")
    if not main.acknowledged:
        text = _("Registering through {iface} ({coa}): waiting for the home agent").format(
            iface=iface, coa=coa_text(main.coa))
        if uplinks is None or health(probe_of(uplinks, main))[0] != "down":
            return Headline("warning", text, interface=main.interface, mobile=True)
        # the engine's probes: the home agent does not answer through this uplink (a wrong key or SPI, a
        # black hole): waiting longer does not help, say so and offer what does
        other = reachable_other(uplinks, main.interface)
        if other is not None:
            return Headline("error", text + _("; the home agent does not answer through it"),
                            Action(ACTION_REBIND, _("Move to {iface}").format(iface=other), (main.hoa, other)),
                            main.interface, True)
        return Headline("error", _("Registering through {iface} ({coa}): the home agent does not answer through "
                                   "any uplink (check its address, SPI and key)").format(
                            iface=iface, coa=coa_text(main.coa)),
                        Action(ACTION_CONFIGURE, _("Check the home agent settings…")) if engine_available else None,
                        main.interface, True)
    text = _("Connected via {iface} ({coa})").format(iface=iface, coa=coa_text(main.coa))
    level, action = "ok", None
    fit, words = health(probe_of(uplinks, main)) if uplinks is not None else (None, "")
    if uplinks is None:
        words = _("registered with the home agent")
    if fit == "down":
        level = "error"
        other = reachable_other(uplinks, main.interface)
        if other is not None:
            action = Action(ACTION_REBIND, _("Move to {iface}").format(iface=other), (main.hoa, other))
        else:
            action = Action(ACTION_CONFIGURE, _("Check the home agent settings…")) if engine_available else None
            words = _("the home agent does not answer through any uplink")
    elif fit == "lossy" or fit is None and uplinks is not None:
        level = "warning"
    text += ", " + words if words else ""
    others = [u for u in bound if u is not main]
    if others:
        vias = sorted({u.interface or "?" for u in others})
        text += ngettext("; {n} more home address via {ifaces}", "; {n} more home addresses via {ifaces}",
                         len(others)).format(n=len(others), ifaces=", ".join(vias))
        # the other home addresses' uplinks: one the home agent does not answer through is not "ok"
        dead = [u for u in others if uplinks is not None and health(probe_of(uplinks, u))[0] == "down"]
        if dead:
            level = "error" if level == "error" else "warning"
            text += _("; the home agent does not answer through {ifaces} ({hoas})").format(
                ifaces=", ".join(sorted({u.interface or "?" for u in dead})), hoas=", ".join(u.hoa for u in dead))
            alive = next((u.get("name") for u in uplinks or () if isinstance(u, Mapping)
                          and u.get("reachable") is True and isinstance(u.get("name"), str)), None)
            if action is None and alive is not None and alive != dead[0].interface:
                action = Action(ACTION_REBIND, _("Move {hoa} to {iface}").format(hoa=dead[0].hoa, iface=alive),
                                (dead[0].hoa, alive))
    # several care-of addresses: every other uplink is a registered backup; one that died is said (n1.2),
    # unless the other home addresses' dead uplinks above said it already
    said = {u.interface for u in others if uplinks is not None and health(probe_of(uplinks, u))[0] == "down"}
    gone = backups_down(bindings, uplinks, main, skip=said) if fit != "down" else []
    if gone:
        level = "error" if level == "error" else "warning"
        text += backups_text(gone)
    if unbound:
        level = "error" if level == "error" else "warning"
        # a refused one says so, as the binding table does (not "not bound": the home agent said no)
        refused = sorted(refused_hoas(bindings) & set(unbound))
        rest = [h for h in unbound if h not in refused]
        if refused:
            text += _("; the home agent refused {hoas}").format(hoas=", ".join(refused))
        if rest:
            text += ngettext("; {hoas} is not bound", "; {hoas} are not bound", len(rest)).format(
                hoas=", ".join(rest))
        if action is None:
            action = (Action(ACTION_CONFIGURE, _("Check the home agent settings…")) if refused and engine_available
                      else Action(ACTION_PREFERENCES, _("Open preferences")))
    return Headline(level, text, action, main.interface, True)


def reachable_other(uplinks: Sequence[Mapping[str, Any]] | None, interface: str | None) -> str | None:
    """The name of the first engine uplink (not ``interface``) through which the home agent answers."""
    return next((u["name"] for u in (uplinks or ()) if isinstance(u, Mapping) and u.get("reachable") is True
                 and isinstance(u.get("name"), str) and u.get("name") != interface), None)


def refused_hoas(bindings: Iterable[Binding]) -> set[str]:
    """The home addresses whose home registration the home agent refused (the daemon's BUL, state ERROR)."""
    out = set()
    for b in bindings:
        if b.source == "bul" and b.home_registration and b.state is BindingState.ERROR:
            try:
                out.add(canonical_address(b.hoa))
            except ValueError:
                out.add(b.hoa)
    return out


def lost(daemon: DaemonLike, dword: str, seen: bool = True) -> Headline:
    """The daemon does not answer (yet): connecting; not running (nothing there: ``absent``; the node is
    configured for it) with a start; else (there, but mute) lost with a restart (issue 15.7). Not running is
    said whether or not this process reached it before (``seen``: then the tooltip says it was lost), so
    the window and a one-shot ``mhctl status`` give the same answer (n1.8)."""
    if daemon.state in ("starting", "stopped"):  # not asked yet (the app starting up): nothing is lost yet
        return Headline("info", _("Connecting to {daemon}…").format(daemon=dword), mobile=True)
    if daemon.state == "absent":  # (not "no-terminal", "busy"...: there is a daemon, it is mute)
        why = daemon.error or daemon.state
        return Headline("error", _("Mobility daemon not running: {daemon} does not run on this node, which is "
                                   "configured for it; the home addresses are not kept alive").format(daemon=dword),
                        Action(ACTION_RESTART_DAEMON, _("Start the mobility daemon")), mobile=True,
                        detail=_("it answered earlier, then stopped: {why}").format(why=why) if seen else why)
    return Headline("error", _("Mobility daemon lost: {daemon} does not answer; the home addresses are not "
                               "kept alive").format(daemon=dword),
                    Action(ACTION_RESTART_DAEMON, _("Restart the mobility daemon")), mobile=True,
                    detail=daemon.error or daemon.state)


def not_bound(state: NodeState, analysis: Analysis, bindings: Iterable[Binding], unbound: list[str],
               daemon: DaemonLike | None, dword: str) -> Headline:
    """No home address has a live home registration: say why, with what fixes it."""
    engine = daemon is not None and daemon.name == "engine"
    refused = [b for b in bindings if b.source == "bul" and b.home_registration and b.state is BindingState.ERROR]
    hoas = ", ".join(unbound)
    if refused:
        return Headline("error", _("The home agent refused {hoas}").format(hoas=hoas),
                        Action(ACTION_CONFIGURE, _("Check the home agent settings…")) if engine
                        else Action(ACTION_PREFERENCES, _("Open preferences")), mobile=True)
    if analysis.z == 0:
        links = online_links(state, {i for i, f in state.interfaces.items() if f.name.startswith("mhmn")})
        if links and not any(link.v6 for link in links) and not engine:
            return Headline("error", _("No care-of address: {iface} has IPv4 only, and {daemon} takes IPv6 "
                                       "care-of addresses only").format(iface=links[0].name, daemon=dword),
                            mobile=True)  # (no button: no preference gives an IPv4-only link an IPv6 CoA)
        return Headline("error", _("No care-of address: no interface has a usable address, so {hoas} cannot "
                                   "be reached").format(hoas=hoas), mobile=True)
    return Headline("warning", _("{hoas} is not bound yet: {daemon} has not registered it").format(
        hoas=hoas, daemon=dword), Action(ACTION_PREFERENCES, _("Open preferences")), mobile=True)
