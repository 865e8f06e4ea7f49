"""The node's answer in one line: which uplink carries it and whether that is healthy, or what is wrong
and the one action that fixes it (issue 15.1, 15.3, 15.7). Pure: no Qt, no I/O.

:func:`node_headline` reads what the app already has:

- the live :class:`~mhgui.core.model.NodeState` (interfaces, addresses, IPv6 default routers) and its
  :class:`~mhgui.core.analysis.Analysis` (home addresses, at home or not, the care-of count);
- the daemon's bindings, through :func:`~mhgui.core.bindings.uplinks_in_use`, the same answer as the
  binding table, the failover log and the tray (issue 13.9);
- mhgui's engine's uplinks (``GetUplinks``: ``name``, ``ifindex``, ``reachable`` (None: not known yet),
  ``srtt_ms``, ``loss`` 0..1; :mod:`mhgui.engine.mn_dbus`): its probes of the home agent per uplink;
- the daemon's status (anything with ``name``, ``reachable``, ``state``, ``error``, e.g.
  :class:`~mhgui.daemons.base.DaemonStatus`) and the sources' health (``{source: (status, detail)}``).

It gives a :class:`Headline`: a level, one sentence, and at most one :class:`Action` (an id from
:data:`ACTIONS` and a label the UI turns into a button). A normal machine without a home address is
"online, not yet a Mobile IPv6 node", never "offline" (issue 15.3): IPv4 and unique-local IPv6 count
as connectivity here, even though the draft's taxonomy counts only care-of addresses.

Several home addresses: the sentence is about the first one in RFC 5952 order whose binding is live,
and says how many more there are and where.

mhgui's engine configured on this node (its mn.toml: :func:`mhgui.runtime.choose_driver` then drives the
engine even while it is stopped) but never reached: "Mobility daemon not running", with "Start the
mobility daemon"; reached before and gone: "Mobility daemon lost", with "Restart" (issue 15.7).

The answer's parts: :mod:`~mhgui.core.headline_model` (:class:`Headline`, :class:`Action`, the action
ids), :mod:`~mhgui.core.headline_words` (online interfaces, probes in words),
:mod:`~mhgui.core.headline_cases` (the daemon lost or not running, no registration, registered).
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

from mhgui.i18n import _, ngettext

from .analysis import Analysis
from .bindings import Binding, uplinks_in_use
from .headline_cases import bound as bound_case, lost, not_bound
from .headline_model import (
    ACTION_CONFIGURE, ACTION_PREFERENCES, ACTION_REBIND, ACTION_RESTART_DAEMON, ACTION_TRY_LAB, ACTIONS, LEVELS,
    Action, DaemonLike, Headline,
)
from .headline_words import LinkSummary, addresses_text, daemon_word, online_links
from .model import NodeState

__all__ = [
    "ACTIONS",
    "ACTION_CONFIGURE",
    "ACTION_PREFERENCES",
    "ACTION_REBIND",
    "ACTION_RESTART_DAEMON",
    "ACTION_TRY_LAB",
    "LEVELS",
    "Action",
    "Headline",
    "LinkSummary",
    "node_headline",
    "online_links",
]


def node_headline(
    state: NodeState,
    analysis: Analysis,
    *,
    bindings: Iterable[Binding] = (),
    uplinks: Sequence[Mapping[str, Any]] | None = None,
    daemon: DaemonLike | None = None,
    daemon_configured: bool = False,
    sources: Mapping[str, tuple[str, str]] | None = None,
    engine_available: bool = False,
    daemon_seen: bool = True,
) -> Headline:
    """The one answer for the whole app (module docstring).

    ``bindings``: the daemon's (:meth:`~mhgui.daemons.base.DaemonDriver.bindings`); ``uplinks``: the
    engine's ``GetUplinks`` list (None: not the engine, no probes); ``daemon``: its status (None: no
    driver); ``daemon_configured``: a mobility daemon is expected (home addresses are configured for
    it); ``sources``: the store's ``{source: (status, detail)}``; ``engine_available``: mhgui's engine
    can be configured here (its driver is the app's), so "Connect to a home agent…" is offered;
    ``daemon_seen``: the driver has reached its daemon at least once (``generation`` > 0): one that does not
    answer then was *lost* ("Restart"); one never reached is *not running* ("Start": mhctl status, or the
    app started while the engine is stopped on a node configured for it).
    """
    sources = sources or {}
    bindings = tuple(bindings)  # read more than once below (a generator would be empty the second time)
    nl_status, nl_detail = sources.get("netlink", ("ok", ""))
    if nl_status == "no-access":
        return Headline("error", _("Cannot read this machine's network state (netlink: {detail})").format(
            detail=nl_detail or nl_status))
    if not state.interfaces and nl_status != "ok":
        return Headline("info", _("Reading the network state…"))

    daemon_up = daemon is not None and daemon.reachable
    mobile = analysis.y > 0
    dword = daemon_word(daemon)
    own_tuns = {i for i, f in state.interfaces.items() if f.name.startswith("mhmn")}  # the engine's TUN device

    # ---- mhgui's engine gone: its home addresses (they come from it) went with it, so this is not "no
    # home address" but a lost daemon (the app chose the engine because it ran: it is this node's)
    if daemon is not None and daemon.name == "engine" and not daemon_up and not mobile:
        return lost(daemon, dword, daemon_seen)

    # ---- not a Mobile IPv6 node (yet): online or not, honestly (issue 15.3)
    if not mobile:
        links = online_links(state, own_tuns)
        configure = Action(ACTION_CONFIGURE, _("Connect to a home agent…"))
        lab = Action(ACTION_TRY_LAB, _("Try the lab"))
        if daemon is not None and daemon.name == "engine" and daemon_up:
            return Headline("warning", _("The mobility engine runs but has no home address: connect it to a "
                                         "home agent"), configure)
        if not links:
            return Headline("error", _("Offline: no interface is up with an address beyond its link; "
                                       "not a Mobile IPv6 node"), lab)
        first = links[0]
        where = _("Online via {iface} ({addresses})").format(iface=first.name, addresses=addresses_text(first))
        if len(links) > 1:
            where += ngettext(" and {n} other interface", " and {n} other interfaces",
                              len(links) - 1).format(n=len(links) - 1)
        return Headline("info", where + _(" — not a Mobile IPv6 node yet (no home address)"),
                        configure if engine_available else lab, first.name)

    hoas = [h for h in analysis.homes]
    away = [h for h in hoas if not h.at_home]

    # ---- the daemon
    if daemon is None and daemon_configured and away:
        return Headline("error", _("No mobility daemon: the home addresses are not kept alive"),
                        Action(ACTION_RESTART_DAEMON, _("Start the mobility daemon")), mobile=True)
    if daemon is not None and not daemon_up and away:
        return lost(daemon, dword, daemon_seen)

    # ---- at home
    if not away:
        names = sorted({state.interfaces[h.home_ifindex].name for h in hoas
                        if h.home_ifindex in state.interfaces})
        return Headline("ok", _("At home on {iface}: the home address is used directly, no binding needed").format(
            iface=", ".join(names) or "?"), interface=names[0] if len(names) == 1 else None, mobile=True)

    # ---- bound or not
    uses = uplinks_in_use(bindings, state)
    bound = [uses[h.hoa.address] for h in sorted(away, key=lambda h: h.hoa.address) if h.hoa.address in uses]
    unbound = sorted(h.hoa.address for h in away if h.hoa.address not in uses)
    if not bound:
        return not_bound(state, analysis, bindings, unbound, daemon, dword)
    return bound_case(state, bindings, bound, unbound, uplinks, engine_available)
