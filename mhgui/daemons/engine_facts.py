"""mhgui's engine as ``mhctl status`` reads it, without asyncio or dbus-fast (issue 14).

The driver (:mod:`mhgui.daemons.engine`) and the fast status path (:mod:`mhgui.status_bus`) share
these: the daemon's bus names (:mod:`mhgui.engine.mn_dbus`), the sentence for "not running", the
mapping of its ``GetBindings`` JSON to :class:`~mhgui.core.bindings.Binding` and its capabilities.
"""

from __future__ import annotations

import ipaddress
import math
from typing import Any, Iterable, Mapping

from mhgui.core.bindings import Binding, BindingState
from mhgui.core.capabilities import DaemonCapabilities

__all__ = ["BUS_NAME", "OBJECT_PATH", "INTERFACE", "bindings_from_json", "engine_capabilities",
           "engine_home_addresses"]

# the daemon's names (mhgui/engine/mn_dbus.py; repeated so that the app does not import the engine)
BUS_NAME = "io.github.mhgui.MHGui.MobileNode1"
OBJECT_PATH = "/io/github/mhgui/MHGui/MobileNode1"
INTERFACE = "io.github.mhgui.MHGui.MobileNode1"

_ABSENT_TEXT = ("the mobility engine is not running: nobody owns " + BUS_NAME + " on the system bus "
                "(start mhgui-mn)")

_STATES = {
    "registered": BindingState.REGISTERED,
    "waiting-ack": BindingState.WAITING_ACK,
    "refused": BindingState.ERROR,
}


def _canon(text: object) -> str:
    if not isinstance(text, str):
        return ""
    try:
        return ipaddress.ip_address(text.strip()).compressed
    except ValueError:
        return text.strip()


def _finite(v: object) -> bool:
    """A JSON number that is a number (not a bool, NaN or infinite): the engine's JSON may carry anything."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def bindings_from_json(items: Iterable[Mapping[str, Any]], *, peer: str | None = None,
                       uplinks: Iterable[Mapping[str, Any]] = (), observed_at: float | None = None) -> tuple[Binding, ...]:
    """The engine's ``GetBindings`` list as :class:`Binding` objects (source ``"bul"``, flags A and H).

    - ``registered`` → REGISTERED with its CoA, interface, granted ``lifetime`` and
      ``remaining`` (s, floored; counted down from ``observed_at``, the caller's monotonic clock);
    - ``waiting-ack`` → WAITING_ACK: its CoA is the one being registered (``pending_coa`` when the
      daemon gives it, else the CoA of ``pending_interface`` from ``uplinks`` in the family that
      uplink uses, else the one still bound, else ""); interface = ``pending_interface``;
    - ``refused`` → ERROR (the home agent refused, or nothing can carry it);
    - ``unbound`` → no binding (the HoA has none, like a BUL without its entry);
    - with several care-of addresses (``paths``, RFC 5648) a registered HoA gives one binding per BID, with
      its CoA, interface and BID-PRI, the default path (lowest BID-PRI) first; a path the engine gave up
      (BID-PRI 127: its uplink stopped working, left to expire at the home agent) is not shown.

    ``peer``: the home agent's address (``GetStatus`` ``home_agent``). Items that are not
    objects, or have no ``hoa``, are skipped.
    """
    by_name = {u.get("name"): u for u in uplinks if isinstance(u, Mapping) and isinstance(u.get("name"), str)}
    out = []
    for b in items:
        if not isinstance(b, Mapping) or not isinstance(b.get("hoa"), str):
            continue
        state = _STATES.get(b.get("state")) if isinstance(b.get("state"), str) else None
        if state is None:
            continue
        coa = b.get("coa") or ""
        interface = b.get("interface")
        if state is BindingState.WAITING_ACK:
            pending = b.get("pending_interface")
            u = by_name.get(pending) if isinstance(pending, str) else None
            guess = (u.get("coa4") if u.get("family") == 4 else u.get("coa6") or u.get("coa4")) if u else None
            coa = b.get("pending_coa") or guess or coa
            interface = pending or interface
        elif state is BindingState.ERROR:
            interface = interface or b.get("pending_interface")
        lifetime = b.get("lifetime")
        remaining = b.get("remaining")
        seq = b.get("seq")
        common = dict(
            hoa=_canon(b["hoa"]),
            peer=_canon(peer) if peer else None,
            lifetime=int(lifetime) if _finite(lifetime) else None,
            lifetime_remaining=(math.floor(remaining) if _finite(remaining) and state is BindingState.REGISTERED
                                else None),
            seq=int(seq) if isinstance(seq, int) and not isinstance(seq, bool) else None,
            state=state, flags=("A", "H"), source="bul", observed_at=observed_at)
        raw_paths = b.get("paths") if isinstance(b.get("paths"), list) else ()
        paths = [p for p in raw_paths if isinstance(p, Mapping) and isinstance(p.get("bid"), int)
                 and not isinstance(p.get("bid"), bool) and isinstance(p.get("coa"), str)
                 and not (isinstance(p.get("priority"), int) and p["priority"] >= 127)]  # 127: given up, expiring
        if paths and state is BindingState.REGISTERED:  # several CoAs (RFC 5648): one row per BID, default first
            for p in sorted(paths, key=lambda p: (p.get("priority") if isinstance(p.get("priority"), int) else 0,
                                                  p["bid"])):
                name = p.get("interface")
                pri = p.get("priority")
                out.append(Binding(coa=_canon(p["coa"]), bid=p["bid"],
                                   bid_priority=pri if isinstance(pri, int) and not isinstance(pri, bool) else None,
                                   interface=name if isinstance(name, str) and name else None, **common))
            continue
        out.append(Binding(coa=_canon(coa), interface=interface if isinstance(interface, str) and interface else None,
                           **common))
    return tuple(out)



def engine_capabilities(status: Mapping[str, Any], reachable: bool) -> DaemonCapabilities:
    """Per-HoA choice, runtime rebind, failover (its own, draft 7.3) and IPv4 CoAs while connected; several
    CoAs per HoA and flow bindings (RFC 5648/6089) when ``status`` (its ``GetStatus``) says
    ``multiple_care_of``."""
    mcoa = reachable and bool(status.get("multiple_care_of"))
    return DaemonCapabilities(name="engine", connected=reachable, per_hoa_choice=True, runtime_rebind=True,
                              failover=reachable, ipv4_coas=True, multiple_coas=mcoa, flow_bindings=mcoa)


def engine_home_addresses(raw: Iterable[Mapping[str, Any]]) -> tuple:
    """The engine's home addresses (its ``GetBindings`` objects ``raw``: ``hoa``, ``prefix_len``,
    ``home_agent``) as :class:`~mhgui.core.model.HomeAddress` (origin ``"engine"``); entries that do not
    make an IPv6 prefix are left out."""
    from mhgui.core.model import HomeAddress
    out = []
    for b in raw:
        try:
            hoa = _canon(b.get("hoa"))
            plen = int(b.get("prefix_len", 64))
            ha = b.get("home_agent")
            ha = _canon(ha) if isinstance(ha, str) else None
            net = ipaddress.IPv6Network(f"{hoa}/{plen}", strict=False)
        except (ValueError, TypeError):
            continue
        out.append(HomeAddress(hoa, plen, ha, None, str(net), origin="engine"))
    return tuple(out)
