"""The status picture shared by the window, ``mhctl status`` and ``mhctl monitor``.

:func:`status` turns a :class:`~mhgui.core.state.StateStore` into one JSON-ready
dict (schema in README.md, "mhctl status --json"); :func:`render_text` prints
it for people. Lifetimes are whole seconds remaining, ``null`` for infinite.
"""

from __future__ import annotations

import functools
import math
from typing import Any

from ..i18n import N_, _, ngettext
from .access import AccessProblem, problems as access_problems, taxonomy_is_node
from .analysis import NON_ACCESS_KINDS, Analysis, analyse
from .capabilities import NO_DAEMON, DaemonCapabilities
from .model import Address, InterfaceKind, NodeState, flag_names
from .state import StateStore
from .taxonomy import goals_available, issue_mechanism, label_of, scenario_for

SOURCE_DEFAULTS = {"networkmanager": "absent", "netlink": "resyncing"}


#: flag names per (flags, family): a handful of distinct values, thousands of addresses
_flag_names = functools.lru_cache(maxsize=1024)(flag_names)


def _secs(v: float | None) -> int | None:
    return None if v is None else int(math.floor(v))


def taxonomy(an: Analysis, caps: DaemonCapabilities = NO_DAEMON) -> dict[str, Any]:
    """The ``taxonomy`` object: counts, 0/1/n label, draft scenario, goals and issues (draft sections 4-7)."""
    sc = scenario_for(an.x, an.y, an.z, an.at_home)
    return {
        "interfaces": an.x,
        "home_addresses": an.y,
        "care_of_addresses": an.z,
        "label": sc.label,
        "at_home": an.at_home,
        "scenario": sc.section,
        "nearest_scenario": sc.nearest,
        "title": sc.title,
        "summary": sc.summary,
        "multihomed": sc.multihomed,
        "goals": [g.value for g in sc.goals],
        "goals_available": [
            {"goal": g.value, "available": ok, "reason": why} for g, ok, why in goals_available(sc, caps)
        ],
        "issues": [
            {"section": i.section, "title": _(i.title), "explanation": _(i.explanation),
             "mechanism": issue_mechanism(i, caps)} for i in sc.issues
        ],
    }


def headline(tax: dict[str, Any]) -> str:
    """e.g. "(n,1,n) — 2 interfaces, 1 home address, 3 care-of addresses — scenario 5.6"."""
    where = (_("scenario {section}").format(section=tax["scenario"]) if tax["scenario"]
             else _("not named by the draft (nearest {section})").format(section=tax["nearest_scenario"])
             if tax["nearest_scenario"] else _("not named by the draft"))
    x, y, z = tax["interfaces"], tax["home_addresses"], tax["care_of_addresses"]
    counts = ", ".join((ngettext("{n} interface", "{n} interfaces", x).format(n=x),
                        ngettext("{n} home address", "{n} home addresses", y).format(n=y),
                        ngettext("{n} care-of address", "{n} care-of addresses", z).format(n=z)))
    return f"{tax['label']} — {counts} — {where}"


#: ``NMDeviceState`` numbers as words (NetworkManager's ``nm-dbus-interface.h``)
#: (marked for translation: the JSON keeps the English word, the text of ``mhctl status`` translates it)
NM_STATE_WORDS = {0: N_("unknown"), 10: N_("unmanaged"), 20: N_("unavailable"), 30: N_("disconnected"),
                  40: N_("preparing"), 50: N_("configuring"), 60: N_("needs authentication"),
                  70: N_("getting an IP configuration"), 80: N_("checking the IP configuration"),
                  90: N_("waiting for secondaries"), 100: N_("activated"), 110: N_("deactivating"), 120: N_("failed")}


def _usable_v4(a: Address) -> bool:
    """An IPv4 address an engine could register (RFC 5555): global scope, not link-local/loopback/multicast."""
    return a.family == 2 and a.scope == 0 and a.address_class in ("global", "other") and not a.ip.is_unspecified


def interface_notes(st: NodeState, an: Analysis, caps: DaemonCapabilities = NO_DAEMON,
                    by_link: dict[int, list[Address]] | None = None) -> dict[int, str]:
    """ifindex -> one line on what an **IPv4-only** access interface gives (issue 13.6).

    IPv4-only: up, an access link, with an IPv4 address of global scope (private ones too, behind NAT44)
    and no global or unique-local IPv6 address. With a daemon that takes IPv4 care-of addresses (RFC
    5555: mhgui's engine) that address is its CoA; otherwise the line says why there is none (UMIP, or
    no daemon, takes IPv6 care-of addresses only). ``by_link``: the addresses grouped by ifindex, if the
    caller has them. Other interfaces have no note.
    """
    if by_link is None:
        by_link = _by_link(st)
    notes: dict[int, str] = {}
    for ifindex, iface in st.interfaces.items():
        if not iface.up or iface.kind in NON_ACCESS_KINDS:
            continue
        addrs = by_link.get(ifindex, ())
        v4 = [a for a in addrs if _usable_v4(a) and an.roles[a.key].role != "vpn"]
        if not v4 or any(a.family == 10 and a.address_class in ("global", "ula") for a in addrs):
            continue
        counted = [a for a in v4 if an.roles[a.key].counted]
        what = _("IPv4-only modem link") if iface.kind is InterfaceKind.WWAN else _("IPv4-only link")
        if counted:
            notes[ifindex] = _("{what}: its IPv4 address {address} is the care-of address ({daemon}, RFC 5555)").format(
                what=what, address=counted[0].address, daemon=caps.name)
        elif caps.connected and caps.ipv4_coas:
            notes[ifindex] = f"{what}: {an.roles[v4[0].key].reason}"
        elif caps.connected:
            notes[ifindex] = _("{what}: no care-of address, {daemon} takes IPv6 care-of addresses only (mhgui's "
                               "engine would register {address}, RFC 5555)").format(
                what=what, daemon=caps.name, address=v4[0].address)
        else:
            notes[ifindex] = _("{what}: no IPv6 care-of address; no mobility daemon connected (mhgui's engine "
                               "would register {address}, RFC 5555)").format(what=what, address=v4[0].address)
    return notes


def modem_rows(store: StateStore) -> list[dict[str, Any]]:
    """Every modem NetworkManager knows, with its data interface or why it has none yet (issue 13.6).

    A modem's ``Interface`` is its control port; its data interface (``IpInterface``) exists only once
    its bearer is connected, and until then the modem has no kernel link (ifindex 0). Shape:
    ``{"name", "path", "networkmanager_state", "state", "data_interface", "ifindex"}``; ``state`` in words.
    """
    rows = []
    for dev in sorted(store.nm_devices.values(), key=lambda d: (d.name, d.path)):
        if dev.kind is not InterfaceKind.WWAN:
            continue
        nm = NM_STATE_WORDS.get(dev.state, str(dev.state))
        if dev.ifindex and dev.ifindex in store.state.interfaces:
            link = store.state.interfaces[dev.ifindex].name
            text = _("data interface {link} (NetworkManager: {state})").format(link=link, state=nm)
        else:
            link = None
            text = (_("no data interface yet: not connected (NetworkManager: {state})").format(state=nm)
                    if not dev.ip_interface
                    else _("data interface {link} not seen by the kernel (NetworkManager: {state})").format(
                        link=dev.ip_interface, state=nm))
        rows.append({"name": dev.name, "path": dev.path, "networkmanager_state": dev.state, "state": text,
                     "data_interface": link, "ifindex": dev.ifindex or None})
    return rows


def _by_link(st: NodeState) -> dict[int, list[Address]]:
    """The addresses of each ifindex, in display order (family, address, prefix length): one pass, one sort."""
    by_link: dict[int, list[Address]] = {}
    for a in sorted(st.addresses.values(), key=lambda a: (a.ifindex, a.family, a.address, a.prefixlen)):
        by_link.setdefault(a.ifindex, []).append(a)
    return by_link


def status(store: StateStore, now: float, *, allow_ula: bool = False,
           caps: DaemonCapabilities = NO_DAEMON, analysis: Analysis | None = None,
           access: list[AccessProblem] | None = None) -> dict[str, Any]:
    """The whole picture as one JSON-ready dict (``mhctl status --json``).

    ``access``: what this process cannot see (:func:`mhgui.core.access.problems`); by default
    worked out from the store alone (no sandbox known). When one of them means the taxonomy is
    not this node's (only a namespace's loopback is visible), ``taxonomy.of_node`` is false.
    """
    st = store.state
    if access is None:
        access = access_problems(store.sources, st)
    an = analysis or analyse(st, now, allow_ula=allow_ula, ipv4_coas=caps.connected and caps.ipv4_coas)
    sources = {k: store.sources.get(k, (v, ""))[0] for k, v in SOURCE_DEFAULTS.items()}
    details = {k: d for k, (_state, d) in store.sources.items() if d}
    by_link = _by_link(st)
    notes = interface_notes(st, an, caps, by_link)
    interfaces = []
    for ifindex in sorted(st.interfaces):
        i = st.interfaces[ifindex]
        addrs = []
        for a in by_link.get(ifindex, ()):
            r = an.roles[a.key]
            addrs.append({
                "address": a.address, "prefixlen": a.prefixlen,
                "family": "inet6" if a.family == 10 else "inet",
                "flags": list(_flag_names(a.flags, a.family)),
                "preferred_lft": _secs(a.preferred_remaining(now)),
                "valid_lft": _secs(a.valid_remaining(now)),
                "role": r.role, "reason": r.reason,
            })
        interfaces.append({
            "ifindex": ifindex, "name": i.name, "kind": i.kind.value, "up": i.up,
            "admin_up": i.admin_up, "carrier": i.carrier, "operstate": i.operstate,
            "networkmanager_state": i.nm_state,
            "networkmanager_state_name": None if i.nm_state is None else NM_STATE_WORDS.get(i.nm_state, "unknown"),
            "active": ifindex in an.active, "home_link": ifindex in an.home_links,
            "default_routers": sorted(st.routers.get(ifindex, ())),
            "note": notes.get(ifindex),
            "addresses": addrs,
        })
    return {
        "source": "networkmanager" if sources["networkmanager"] == "running" else "netlink",
        "sources": sources,
        "source_details": details,
        "interfaces": interfaces,
        "modems": modem_rows(store),
        "home_addresses": [
            {"address": h.hoa.address, "prefixlen": h.hoa.prefixlen, "home_agent": h.hoa.home_agent,
             "home_prefix": str(h.hoa.network), "home_link": h.hoa.home_link, "origin": h.hoa.origin,
             "at_home": h.at_home,
             "at_home_on": st.interfaces[h.home_ifindex].name if h.home_ifindex in st.interfaces else None}
            for h in an.homes
        ],
        "notes": list(store.notes),
        "daemon": {"name": caps.name, "connected": caps.connected},
        "access": [p.to_json() for p in access],
        "taxonomy": {**taxonomy(an, caps), "of_node": taxonomy_is_node(access)},
    }


def render_text(s: dict[str, Any]) -> str:
    """Human-readable form of :func:`status` (``mhctl status``), in the user's language (the JSON's keys and
    machine values, e.g. roles, kinds and flags, stay as they are)."""
    tax = s["taxonomy"]
    # the headline stays the first line; it disowns the taxonomy when this process cannot see the node's
    out = [("" if tax.get("of_node", True) else _("Not this node's taxonomy (see 'No access' below): "))
           + headline(tax)]
    for p in s.get("access", ()):
        out.append(_("No access [{code}]: {message}").format(code=p["code"], message=p["message"]))
        if p["permission"]:
            out.append("  " + _("Needs: {permission}").format(permission=p["permission"]))
        elif p["fix"]:
            out.append("  " + _("Fix: {fix}").format(fix=p["fix"]))
    out.append(f"  {tax['summary']}")
    if tax["goals"]:
        out.append("  " + _("Goals the draft allows: {goals}").format(goals=", ".join(_(g) for g in tax["goals"])))
        avail = [_(g["goal"]) for g in tax["goals_available"] if g["available"]]
        out.append("  " + _("Reachable with the current daemon: {goals}").format(
            goals=", ".join(avail) if avail else _("none") + (
                _(" (no mobility daemon connected)") if not s["daemon"]["connected"] else "")))
    for i in tax["issues"]:
        out.append(f"  [{i['section']}] {i['title']}: {i['explanation']}"
                   + (f" -> {i['mechanism']}" if i.get("mechanism") else ""))
    src, det = s["sources"], s.get("source_details", {})
    for key, label in (("networkmanager", "NetworkManager"), ("netlink", "netlink")):
        out.append(f"{label}: {_(src[key])}" + (f" — {det[key]}" if det.get(key) else ""))
    out.append("")
    width = max((len(f"{a['address']}/{a['prefixlen']}") for i in s["interfaces"] for a in i["addresses"]), default=0)
    for i in s["interfaces"]:
        state = _("up") if i["up"] else (_("no carrier") if i["admin_up"] else _("down"))
        tags = [t for t, on in ((_("active"), i["active"]), (_("home link"), i["home_link"])) if on]
        routers = (" " + _("router {routers}").format(routers=", ".join(i["default_routers"]))
                   if i["default_routers"] else "")
        if i.get("networkmanager_state_name"):  # NetworkManager's word for the device (NMDeviceState)
            state += " " + _("(NetworkManager: {state})").format(state=_(i["networkmanager_state_name"]))
        out.append(f"{i['ifindex']}: {i['name']} ({i['kind']}) {state}{' [' + ', '.join(tags) + ']' if tags else ''}{routers}")
        if i.get("note"):
            out.append(f"    {i['note']}")
        for a in i["addresses"]:
            lft = (_("forever") if a["valid_lft"] is None else _("valid {n}s").format(n=a["valid_lft"])) + (
                "" if a["preferred_lft"] is None else " " + _("preferred {n}s").format(n=a["preferred_lft"]))
            flags = " ".join(a["flags"])
            addr = f"{a['address']}/{a['prefixlen']}"
            out.append(f"    {addr:<{width}}  {a['role']:<15} {lft}{'  ' + flags if flags else ''}")
    for m in s.get("modems", ()):
        if m["data_interface"] is None:
            out.append(_("modem {name} (wwan): {state}").format(name=m["name"], state=m["state"]))
    out.append("")
    if s["home_addresses"]:
        out.append(_("Home addresses:"))
        for h in s["home_addresses"]:
            where = (_("at home on {interface}").format(interface=h["at_home_on"]) if h["at_home"]
                     else _("away from home"))
            out.append("  " + _("{address}/{prefixlen} home agent {home_agent} — {where} ({origin})").format(
                address=h["address"], prefixlen=h["prefixlen"], home_agent=h["home_agent"] or _("by DHAAD"),
                where=where, origin=h["origin"]))
    else:
        out.append(_("No home address configured: this node is not a Mobile IPv6 node (see README, "
                     "'Configuring home addresses')."))
    for n in s["notes"]:
        out.append(_("Note: {note}").format(note=n))
    out += binding_table_lines(s["daemon"], s.get("bindings"))
    return "\n".join(out)


def binding_line(b: dict[str, Any]) -> str:
    """One binding (:meth:`mhgui.core.bindings.Binding.to_json`) on one line: HoA → CoA, BID, interface,
    home agent, state, lifetime remaining/granted (seconds), sequence number."""
    rem = "?" if b["lifetime_remaining"] is None else f"{b['lifetime_remaining']}s"
    life = "  " + _("lifetime {remaining}/{granted}s").format(remaining=rem, granted=b["lifetime"]) \
        if b["lifetime"] is not None else ""
    bid = f" BID {b['bid']}" if b["bid"] is not None else ""
    return (f"{b['hoa']} → {b['coa']}{bid} " + _("via {interface}").format(interface=b["interface"] or "?")
            + f"  HA {b['peer']}  {b['state']}{life}  " + _("seq {seq}").format(seq=b["seq"]))


def binding_table_lines(daemon: dict[str, Any], bindings: list[dict[str, Any]] | None) -> list[str]:
    """The "Binding table" of ``mhctl status``: the daemon's bindings under its name, or why there are none.
    ``daemon``: ``{"name", "connected"}`` and optionally ``"error"``; ``bindings``: None when not read."""
    name = daemon["name"]
    if not daemon["connected"]:
        why = daemon.get("error")
        return [_("Binding table: no mobility daemon connected ({name}: {why})").format(name=name, why=why) if why
                else _("Binding table: no mobility daemon connected")]
    if bindings is None:
        return [_("Binding table ({name}): not read (mhctl bindings shows it)").format(name=name)]
    if not bindings:
        return [_("Binding table ({name}): no bindings").format(name=name)]
    return [_("Binding table ({name}):").format(name=name)] + ["  " + binding_line(b) for b in bindings]


__all__ = ["status", "render_text", "taxonomy", "headline", "label_of", "interface_notes", "modem_rows",
           "binding_line", "binding_table_lines"]
