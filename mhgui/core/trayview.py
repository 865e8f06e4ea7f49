"""What the tray icon shows: pure data built from what the app knows. No Qt, no I/O.

:func:`build_tray_view` turns the live model, its analysis, the daemon's
bindings and status, the failover preferences and the policy's current
interface into a :class:`TrayView`; :mod:`mhgui.ui.tray` only draws it.

The tooltip's first line is the node's answer (:func:`~mhgui.core.headline.node_headline`, issue 15.1),
the same as the window's: "mhgui — Connected via wlan0 (CoA …), home agent reachable, 23 ms"; the
draft's taxonomy follows. A node without a home address (not a Mobile IPv6 node yet) is ``ok`` when
it is online, ``no-coa`` when it is not (issue 15.3: a normal machine is not "offline"). The answer's
action (restart the daemon, connect to a home agent…) is :attr:`TrayView.action`, a menu item.

Overall state (:data:`STATES`), most severe first:

- ``no-coa``: no usable care-of address and no home address at home: the node
  has no way out (the analysis' z is 0 and nothing is on a home link);
- ``no-daemon``: a mobility daemon is configured but its control interface
  does not answer: the home addresses are not being kept alive;
- ``backup``: the node runs on a backup: the current interface (the failover
  policy's choice, else the interface of the daemon's home registrations) is
  marked "backup only", or is not the first usable primary of the preference
  order;
- ``ok``: all fine.

With the node's answer (:func:`~mhgui.core.headline.node_headline`) the icon follows it
(:func:`following_answer`), so that the window, the tooltip, the icon and ``mhctl status`` say the same:
an ``error`` answer is ``no-daemon`` when its action restarts the daemon, ``no-coa`` when the node has no
way out, else ``error`` (a refused home address, a home agent that answers through no uplink); a
``warning`` answer is ``warning`` (waiting for the home agent, loss, a home address not bound); an
``ok`` or ``info`` answer is ``ok``, or ``backup`` when the node runs on a backup.

"Prefer" items: one per usable interface (:func:`~mhgui.core.failover.usable_interfaces`),
in preference order (primaries, backups, then interfaces the list does not
name). Preferring an interface puts it first in the order as a primary
(:func:`preferring`). The item says what that moves: with a daemon that picks
one interface for every home address (mainline UMIP), every HoA not at home;
and the steering rules that follow the failover choice (given by the caller).
It says whether the daemon restarts: UMIP reads ``MnIfPreference`` from
mip6d.conf only at start (:func:`~mhgui.core.failover.mnifpreference_values`),
so a change of those values is applied by restarting mip6d; a daemon with
``runtime_rebind`` needs no restart.

With mhgui's mobility engine (``hoa_uplinks`` given: each HoA's own uplink lists,
:func:`~mhgui.core.engineprefs.hoa_uplinks`) the items are per home address
(:attr:`PreferItem.hoa`): choosing one rebinds only that HoA, at once (the engine
then keeps that uplink first for it), and says so: "wlan0 — moves 2001:db8:10::42
only, no restart". Per HoA they come in the engine's order (preferred, unlisted,
backups); one marked never for that HoA is shown, disabled.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

from ..i18n import N_, _, ngettext
from .analysis import Analysis
from .bindings import Binding, BindingState, uplinks_in_use
from .capabilities import NO_DAEMON, DaemonCapabilities
from .engineprefs import HoaUplinks, uplink_order
from .failover import Preferences, mnifpreference_values, usable_interfaces
from .headline import ACTION_RESTART_DAEMON, Action, Headline
from .model import NodeState
from .report import headline, taxonomy
from .steering import SteeringRule

__all__ = [
    "STATES",
    "STATE_BACKUP",
    "STATE_ERROR",
    "STATE_NO_COA",
    "STATE_NO_DAEMON",
    "STATE_OK",
    "STATE_WARNING",
    "HoaEntry",
    "PreferItem",
    "TrayView",
    "build_tray_view",
    "current_interface",
    "following_answer",
    "overall_state",
    "preferring",
]

STATE_OK = "ok"
STATE_BACKUP = "backup"
STATE_NO_COA = "no-coa"
STATE_NO_DAEMON = "no-daemon"
STATE_ERROR = "error"
STATE_WARNING = "warning"
#: every overall state; the tray has one icon per state
STATES = (STATE_OK, STATE_BACKUP, STATE_NO_COA, STATE_NO_DAEMON, STATE_ERROR, STATE_WARNING)

STATE_TEXT = {
    STATE_OK: N_("all links fine"),
    STATE_BACKUP: N_("running on a backup interface"),
    STATE_NO_COA: N_("no usable care-of address"),
    STATE_NO_DAEMON: N_("mobility daemon not reachable"),
    STATE_ERROR: N_("something is wrong"),
    STATE_WARNING: N_("working, but not as it should"),
}


@dataclass(frozen=True, slots=True)
class HoaEntry:
    """One home address and where it is now.

    ``interface``: the interface its home registration uses (None: not bound,
    or at home); ``at_home``: on its home link (``interface`` is then that
    link); ``state``: the binding's state word, or None; ``text``: the menu
    label, e.g. ``2001:db8:1::100 → wlan0``.
    """

    hoa: str
    interface: str | None
    at_home: bool
    state: str | None
    text: str


@dataclass(frozen=True, slots=True)
class PreferItem:
    """One entry of the "Prefer" submenu.

    ``current``: the node uses this interface now; ``moves_hoas`` /
    ``moves_rules``: what preferring it moves (HoA addresses, steering rule
    ids); ``restarts``: the mobility daemon restarts to apply it;
    ``enabled``: choosing it changes something; ``text``: the menu label;
    ``hoa``: the one home address it rebinds (a daemon that chooses per HoA,
    the engine), None: it changes the preference order (UMIP).
    """

    interface: str
    text: str
    current: bool
    moves_hoas: tuple[str, ...]
    moves_rules: tuple[str, ...]
    restarts: bool
    enabled: bool
    hoa: str | None = None


@dataclass(frozen=True, slots=True)
class TrayView:
    """Everything the tray shows. ``state``: one of :data:`STATES`; ``headline``: the taxonomy headline."""

    state: str
    state_text: str
    headline: str
    tooltip: str
    current: str | None
    hoas: tuple[HoaEntry, ...]
    prefer: tuple[PreferItem, ...]
    #: a sentence shown as a disabled item when the Prefer list is empty or limited
    prefer_note: str | None = None
    #: the node's answer (:func:`~mhgui.core.headline.node_headline`), when the caller gave it
    answer: Headline | None = None

    @property
    def action(self) -> Action | None:
        """The answer's action: what the menu offers first (None: nothing to fix from here)."""
        return self.answer.action if self.answer is not None else None


# --------------------------------------------------------------------------- helpers
def _home_registrations(bindings: Iterable[Binding]) -> dict[str, Binding]:
    """The latest home registration per HoA from the binding update list (de-registrations left out)."""
    out: dict[str, Binding] = {}
    for b in bindings:
        if b.source == "bul" and b.home_registration and b.coa != b.hoa:
            out[b.hoa] = b
    return out


def _coa_interfaces(state: NodeState) -> dict[str, str]:
    out = {}
    for a in state.addresses.values():
        iface = state.interfaces.get(a.ifindex)
        if iface is not None:
            out[a.address] = iface.name
    return out


def current_interface(policy_current: str | None, bindings: Iterable[Binding], state: NodeState) -> str | None:
    """The interface the node uses now: the one the daemon's live home registrations go through
    (:func:`~mhgui.core.bindings.uplinks_in_use`, the same answer as the binding table and the Failover tab,
    issue 13.9); the policy's choice only when the daemon has none; None when the home addresses use
    different interfaces."""
    names = sorted({u.interface for u in uplinks_in_use(bindings, state).values()} - {None})
    if names:
        return names[0] if len(names) == 1 else None
    return policy_current


def preferring(prefs: Preferences | None, ifname: str) -> Preferences:
    """The preferences after "Prefer ``ifname``": first in the order, as a primary (backup/never marks dropped)."""
    if prefs is None:
        return Preferences(order=(ifname,))
    return Preferences(
        order=(ifname,) + tuple(n for n in prefs.order if n != ifname),
        backup=prefs.backup - {ifname}, never=prefs.never - {ifname},
        holdup=prefs.holdup, churn_window=prefs.churn_window, require_router=prefs.require_router,
    )


def overall_state(analysis: Analysis, usable: set[str], prefs: Preferences | None, current: str | None,
                  *, daemon_configured: bool, daemon_reachable: bool, failed_over: bool = False) -> str:
    """One of :data:`STATES` (module docstring). ``failed_over``: the policy left a better interface
    that it has not gone back to (:meth:`~mhgui.core.failover.FailoverPolicy.failed_over`)."""
    if analysis.z == 0 and not analysis.home_links:
        return STATE_NO_COA
    if daemon_configured and not daemon_reachable:
        return STATE_NO_DAEMON
    if failed_over:
        return STATE_BACKUP
    if prefs is not None and current is not None:
        if current in prefs.backup:
            return STATE_BACKUP
        first = next((n for n in prefs.primaries if n in usable), None)
        if first is not None and current != first:
            return STATE_BACKUP
    return STATE_OK


def following_answer(answer: Headline, state: str) -> str:
    """The tray state for the node's ``answer`` given the ``state`` :func:`overall_state` found (module
    docstring): the answer's level decides; the state only refines it (which error; ok or backup)."""
    if answer.level == "error":
        if answer.action is not None and answer.action.id == ACTION_RESTART_DAEMON:
            return STATE_NO_DAEMON
        return STATE_NO_COA if state == STATE_NO_COA else STATE_ERROR
    if answer.level == "warning":
        return STATE_WARNING
    return STATE_BACKUP if state == STATE_BACKUP else STATE_OK


def _ordered(usable: set[str], prefs: Preferences | None) -> list[str]:
    ranked = list(prefs.ranking) if prefs is not None else []
    out = [n for n in ranked if n in usable]
    never = [n for n in (prefs.never if prefs is not None else ()) if n in usable]
    return out + sorted(usable - set(out) - set(never)) + sorted(never)


def _per_hoa_items(hoas: Sequence[HoaEntry], movable: Sequence[str], usable: set[str],
                   uplinks: Sequence[HoaUplinks], reachable: bool) -> list[PreferItem]:
    """The engine's Prefer items: per movable HoA, each usable interface in that HoA's order."""
    by_hoa = {u.hoa: u for u in uplinks}
    out: list[PreferItem] = []
    for h in hoas:
        if h.hoa not in movable:
            continue
        u = by_hoa.get(h.hoa)
        for name in uplink_order(u, usable):
            current = h.interface == name and h.state == BindingState.REGISTERED.value
            if current:
                text, enabled = _("{interface} (in use)").format(interface=name), False
            elif u is not None and name in u.never:
                text, enabled = _("{interface} — marked never for {hoa}").format(interface=name, hoa=h.hoa), False
            else:
                text, enabled = _("{interface} — moves {hoa} only, no restart").format(interface=name, hoa=h.hoa), \
                    reachable
            out.append(PreferItem(name, text, current, () if current else (h.hoa,), (), False, enabled, h.hoa))
    return out


# --------------------------------------------------------------------------- the view
def build_tray_view(
    state: NodeState,
    analysis: Analysis,
    *,
    prefs: Preferences | None = None,
    policy_current: str | None = None,
    bindings: Sequence[Binding] = (),
    caps: DaemonCapabilities = NO_DAEMON,
    daemon_name: str | None = None,
    daemon_configured: bool = False,
    daemon_reachable: bool = False,
    following_rules: Sequence[SteeringRule] = (),
    failed_over: bool = False,
    hoa_uplinks: Sequence[HoaUplinks] | None = None,
    answer: Headline | None = None,
) -> TrayView:
    """The tray's picture of the node.

    ``prefs``: the user's failover preferences (None: none set yet);
    ``policy_current``: :attr:`~mhgui.core.failover.FailoverPolicy.current`;
    ``bindings``: the daemon's bindings (:meth:`~mhgui.daemons.base.DaemonDriver.bindings`);
    ``caps``: its capabilities; ``daemon_name``: its name for the user
    (``"mip6d"``); ``daemon_configured``: a mobility daemon is expected
    (mip6d.conf names home addresses); ``daemon_reachable``: its control
    interface answers (``DaemonStatus.reachable``); ``following_rules``: the
    steering rules that follow the failover choice (they move to the
    preferred interface; rules already on it do not); ``failed_over``: the
    policy runs on a worse interface after losing a better one;
    ``hoa_uplinks``: the engine's per-HoA lists: Prefer items per home address
    (module docstring); ``answer``: the node's answer (:func:`~mhgui.core.headline.node_headline`): the
    tooltip's first line, and what the state follows (:func:`following_answer`).
    """
    require_router = prefs.require_router if prefs is not None else True
    usable = usable_interfaces(state, analysis, require_router=require_router)
    current = current_interface(policy_current, bindings, state)
    st = overall_state(analysis, usable, prefs, current,
                       daemon_configured=daemon_configured, daemon_reachable=daemon_reachable,
                       failed_over=failed_over)
    if answer is not None:  # the one answer decides (issue 15.1): never "all links fine" under an error
        st = following_answer(answer, st)
    head = headline(taxonomy(analysis, caps))
    dname = daemon_name or (caps.name if caps.name != "none" else _("the mobility daemon"))

    # home addresses
    regs = _home_registrations(bindings)
    where = _coa_interfaces(state)
    hoas: list[HoaEntry] = []
    for h in analysis.homes:
        addr = h.hoa.address
        if h.at_home:
            link = state.interfaces[h.home_ifindex].name if h.home_ifindex in state.interfaces else None
            hoas.append(HoaEntry(addr, link, True, None, f"{addr} → " + _("at home") + (f" ({link})" if link else "")))
            continue
        b = regs.get(addr)
        if b is None or b.state in (BindingState.EXPIRED, BindingState.DYING):
            why = _("not bound") if daemon_reachable else _("not bound ({daemon} not reachable)").format(daemon=dname) \
                if daemon_configured else _("not bound (no mobility daemon)")
            hoas.append(HoaEntry(addr, None, False, b.state.value if b else None, f"{addr} → {why}"))
            continue
        iface = b.interface or where.get(b.coa)
        extra = {BindingState.WAITING_ACK: _(" (waiting for the home agent)"),
                 BindingState.ERROR: _(" (error)")}.get(b.state, "")
        hoas.append(HoaEntry(addr, iface, False, b.state.value, f"{addr} → {iface or b.coa}{extra}"))

    # Prefer items
    movable_hoas = tuple(h.hoa for h in hoas if not h.at_home) if daemon_configured or caps.connected else ()
    before = mnifpreference_values(prefs) if prefs is not None else {}
    items: list[PreferItem] = []
    if hoa_uplinks is not None:
        items = _per_hoa_items(hoas, movable_hoas, usable, hoa_uplinks, daemon_reachable)
    for name in _ordered(usable, prefs) if hoa_uplinks is None else ():
        after = mnifpreference_values(preferring(prefs, name))
        restarts = bool(daemon_configured and not caps.runtime_rebind and movable_hoas and after != before)
        is_current = name == current
        hoas_moved = () if is_current else tuple(h for h in movable_hoas
                                                  if next(e for e in hoas if e.hoa == h).interface != name)
        if caps.per_hoa_choice:
            hoas_moved = ()  # such a daemon keeps each HoA's own choice: rebinding is per HoA, not here
        rules_moved = tuple(r.id for r in following_rules if r.interface != name)
        if is_current:
            rules_moved = ()
        n_rules = ngettext("{n} steering rule", "{n} steering rules", len(rules_moved)).format(n=len(rules_moved))
        if hoas_moved:
            moved = (hoas_moved[0] if len(hoas_moved) == 1 else
                     ngettext("{n} home address", "{n} home addresses", len(hoas_moved)).format(n=len(hoas_moved)))
            what = (_("moves {hoas} and {rules}").format(hoas=moved, rules=n_rules) if rules_moved
                    else _("moves {hoas}").format(hoas=moved))
        elif rules_moved:
            what = _("moves {rules}").format(rules=n_rules)
        else:
            what = _("moves nothing now")
        if restarts:
            what += _("; restarts {daemon}").format(daemon=dname)
        elif hoas_moved and caps.runtime_rebind:
            what += _(", no restart")
        changes = after != before or bool(hoas_moved) or bool(rules_moved)
        if is_current and prefs is not None and prefs.order and prefs.order[0] == name:
            text, enabled = _("{interface} (in use, first choice)").format(interface=name), False
        elif is_current:
            text = _("{interface} (in use) — make it the first choice").format(interface=name) + (
                _("; restarts {daemon}").format(daemon=dname) if restarts else "")
            enabled = changes
        else:
            if prefs is not None and name in prefs.never:
                what += _("; it is marked never")
            text, enabled = f"{name} — {what}", changes
        items.append(PreferItem(name, text, is_current, hoas_moved, rules_moved, restarts, enabled))
    note = None
    if not items:
        note = _("no usable interface") if not usable or hoa_uplinks is None else _("no home address to move")

    lines = [f"mhgui — {answer.text if answer is not None else _(STATE_TEXT[st])}", head]
    if current:
        lines.append(_("using {interface}").format(interface=current))
    lines += [e.text for e in hoas]
    return TrayView(st, _(STATE_TEXT[st]), head, "\n".join(lines), current, tuple(hoas), tuple(items), note, answer)
