"""The status picture shared by the window, ``mhctl status`` and ``mhctl monitor``.

:func:`status` turns a :class:`~mhgui.core.state.StateStore` into one JSON-ready
dict (schema in README.md, "mhctl status --json"); :func:`render_text` prints
it for people. Lifetimes are whole seconds remaining, ``null`` for infinite.
"""

from __future__ import annotations

import math
from typing import Any

from .access import AccessProblem, problems as access_problems, taxonomy_is_node
from .analysis import Analysis, analyse
from .capabilities import NO_DAEMON, DaemonCapabilities
from .model import flag_names
from .state import StateStore
from .taxonomy import goals_available, label_of, scenario_for

SOURCE_DEFAULTS = {"networkmanager": "absent", "netlink": "resyncing"}


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
            {"section": i.section, "title": i.title, "explanation": i.explanation} for i in sc.issues
        ],
    }


def headline(tax: dict[str, Any]) -> str:
    """e.g. "(n,1,n) — 2 interfaces, 1 home address, 3 care-of addresses — scenario 5.6"."""
    def n(count: int, word: str) -> str:
        return f"{count} {word}{'' if count == 1 else 'es' if word.endswith('ss') else 's'}"

    where = (f"scenario {tax['scenario']}" if tax["scenario"]
             else f"not named by the draft (nearest {tax['nearest_scenario']})" if tax["nearest_scenario"]
             else "not named by the draft")
    return (f"{tax['label']} — {n(tax['interfaces'], 'interface')}, {n(tax['home_addresses'], 'home address')}, "
            f"{n(tax['care_of_addresses'], 'care-of address')} — {where}")


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
    an = analysis or analyse(st, now, allow_ula=allow_ula)
    sources = {k: store.sources.get(k, (v, ""))[0] for k, v in SOURCE_DEFAULTS.items()}
    details = {k: d for k, (_, d) in store.sources.items() if d}
    interfaces = []
    for ifindex in sorted(st.interfaces):
        i = st.interfaces[ifindex]
        addrs = []
        for a in st.addresses_of(ifindex):
            r = an.roles[a.key]
            addrs.append({
                "address": a.address, "prefixlen": a.prefixlen,
                "family": "inet6" if a.family == 10 else "inet",
                "flags": flag_names(a.flags, a.family),
                "preferred_lft": _secs(a.preferred_remaining(now)),
                "valid_lft": _secs(a.valid_remaining(now)),
                "role": r.role, "reason": r.reason,
            })
        interfaces.append({
            "ifindex": ifindex, "name": i.name, "kind": i.kind.value, "up": i.up,
            "admin_up": i.admin_up, "carrier": i.carrier, "operstate": i.operstate,
            "networkmanager_state": i.nm_state,
            "active": ifindex in an.active, "home_link": ifindex in an.home_links,
            "default_routers": sorted(st.routers.get(ifindex, ())),
            "addresses": addrs,
        })
    return {
        "source": "networkmanager" if sources["networkmanager"] == "running" else "netlink",
        "sources": sources,
        "source_details": details,
        "interfaces": interfaces,
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
    """Human-readable form of :func:`status` (``mhctl status``)."""
    tax = s["taxonomy"]
    # the headline stays the first line; it disowns the taxonomy when this process cannot see the node's
    out = [("" if tax.get("of_node", True) else "Not this node's taxonomy (see 'No access' below): ") + headline(tax)]
    for p in s.get("access", ()):
        out.append(f"No access [{p['code']}]: {p['message']}")
        if p["permission"]:
            out.append(f"  Needs: {p['permission']}")
        elif p["fix"]:
            out.append(f"  Fix: {p['fix']}")
    out.append(f"  {tax['summary']}")
    if tax["goals"]:
        out.append("  Goals the draft allows: " + ", ".join(tax["goals"]))
        avail = [g["goal"] for g in tax["goals_available"] if g["available"]]
        out.append("  Reachable with the current daemon: " + (", ".join(avail) if avail else "none"
                                                                 + (" (no mobility daemon connected)" if not s["daemon"]["connected"] else "")))
    for i in tax["issues"]:
        out.append(f"  [{i['section']}] {i['title']}: {i['explanation']}")
    src, det = s["sources"], s.get("source_details", {})
    for key, label in (("networkmanager", "NetworkManager"), ("netlink", "netlink")):
        out.append(f"{label}: {src[key]}" + (f" — {det[key]}" if det.get(key) else ""))
    out.append("")
    width = max((len(f"{a['address']}/{a['prefixlen']}") for i in s["interfaces"] for a in i["addresses"]), default=0)
    for i in s["interfaces"]:
        state = "up" if i["up"] else ("no carrier" if i["admin_up"] else "down")
        tags = [t for t, on in (("active", i["active"]), ("home link", i["home_link"])) if on]
        routers = f" router {', '.join(i['default_routers'])}" if i["default_routers"] else ""
        out.append(f"{i['ifindex']}: {i['name']} ({i['kind']}) {state}{' [' + ', '.join(tags) + ']' if tags else ''}{routers}")
        for a in i["addresses"]:
            lft = ("forever" if a["valid_lft"] is None else f"valid {a['valid_lft']}s") + (
                "" if a["preferred_lft"] is None else f" preferred {a['preferred_lft']}s")
            flags = " ".join(a["flags"])
            addr = f"{a['address']}/{a['prefixlen']}"
            out.append(f"    {addr:<{width}}  {a['role']:<15} {lft}{'  ' + flags if flags else ''}")
    out.append("")
    if s["home_addresses"]:
        out.append("Home addresses:")
        for h in s["home_addresses"]:
            where = f"at home on {h['at_home_on']}" if h["at_home"] else "away from home"
            out.append(f"  {h['address']}/{h['prefixlen']} home agent {h['home_agent'] or 'by DHAAD'} — {where} ({h['origin']})")
    else:
        out.append("No home address configured: this node is not a Mobile IPv6 node (see README, 'Configuring home addresses').")
    for n in s["notes"]:
        out.append(f"Note: {n}")
    out.append("Binding table: " + ("from " + s["daemon"]["name"] if s["daemon"]["connected"] else "no mobility daemon connected"))
    return "\n".join(out)


__all__ = ["status", "render_text", "taxonomy", "headline", "label_of"]
